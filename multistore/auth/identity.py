# -*- test-case-name: tests.unit.test_identity -*-
"""
Which authentication a request uses, and the identity a credential gives.

A request is anonymous when it carries no ``Authorization`` header and no
query authentication. Otherwise it must use exactly one of: SigV4 in the
``Authorization`` header, SigV4 query parameters (a presigned URL), SigV2 in
the header, or SigV2 query parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from attrs import frozen

from multistore.config import StoredCredential
from multistore.headers import HeaderList
from multistore.model import Identity
from multistore.s3.errors import S3Error

Scheme = Literal[
    "anonymous", "sigv4-header", "sigv4-query", "sigv2-header", "sigv2-query"
]


@frozen
class AuthScheme:
    """
    The authentication a request claims.

    :ivar scheme: which one.
    :ivar authorization: the ``Authorization`` header, for header schemes.
    """

    scheme: Scheme
    authorization: str | None = None


def detect_scheme(headers: HeaderList, query: Sequence[tuple[str, str]]) -> AuthScheme:
    """
    :return: the authentication scheme the request uses.
    :raise S3Error: ``InvalidArgument`` when it uses more than one, or an
        ``Authorization`` scheme S3 does not know.
    """
    names = {name for name, _ in query}
    query_v4 = "X-Amz-Algorithm" in names or "X-Amz-Signature" in names
    query_v2 = "AWSAccessKeyId" in names and "Signature" in names
    authorization = headers.get("authorization")
    found: list[AuthScheme] = []
    if authorization is not None:
        if authorization.startswith("AWS4-HMAC-SHA256"):
            found.append(AuthScheme("sigv4-header", authorization))
        elif authorization.startswith("AWS "):
            found.append(AuthScheme("sigv2-header", authorization))
        else:
            raise S3Error(
                "InvalidArgument",
                "Unsupported Authorization Type",
                extra=(
                    ("ArgumentName", "Authorization"),
                    ("ArgumentValue", authorization[:40]),
                ),
            )
    if query_v4:
        found.append(AuthScheme("sigv4-query"))
    if query_v2:
        found.append(AuthScheme("sigv2-query"))
    if len(found) > 1:
        raise S3Error(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be "
            "specified",
            extra=(("ArgumentName", "Authorization"),),
        )
    return found[0] if found else AuthScheme("anonymous")


def identity_for_credential(
    credential: StoredCredential | None, access_key_id: str, now: datetime
) -> Identity:
    """
    The identity a static credential grants.

    :raise S3Error: ``InvalidAccessKeyId`` for an unknown or disabled key,
        ``ExpiredToken`` for an expired one.
    """
    if credential is None or not credential.enabled:
        raise S3Error("InvalidAccessKeyId", extra=(("AWSAccessKeyId", access_key_id),))
    if credential.expires_at is not None and credential.expires_at <= now:
        raise S3Error("ExpiredToken", "The provided access key has expired.")
    return Identity(
        kind="static",
        principal=credential.principal_name,
        access_key_id=credential.access_key_id,
        scopes=credential.allowed_scopes,
    )
