# -*- test-case-name: tests.unit.test_sigv2 -*-
"""
AWS Signature Version 2 for S3 (HMAC-SHA1), for the older clients that
still use it: ``Authorization: AWS AKID:signature`` headers and query
authentication with ``AWSAccessKeyId``, ``Signature`` and ``Expires``
(boto3's default presigner in ``us-east-1`` makes these).

Pure code, like L{multistore.auth.sigv4}, with the same handling of text:
header values, paths and queries hold one character per wire byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from attrs import frozen

from multistore.auth.canonical import (
    aware_utc,
    canonical_uri,
    format_server_time,
    parse_amz_date,
    percent_decode,
    readable_text,
    wire_text,
)
from multistore.auth.sigv4 import DEFAULT_MAX_SKEW, check_skew, hex_bytes
from multistore.headers import HeaderList
from multistore.s3.dates import parse_http_date
from multistore.s3.errors import S3Error

if TYPE_CHECKING:
    from multistore.model import IncomingRequest

#: The query parameters ("sub-resources") that are part of the signed
#: resource, as S3 clients sign them.
SUB_RESOURCES: Final = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "defaultObjectAcl",
        "delete",
        "inventory",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "partNumber",
        "policy",
        "replication",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "select",
        "select-type",
        "storageClass",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    }
)


@frozen
class SigV2Authorization:
    """
    A SigV2 signature as a client sent it.

    :ivar access_key_id: the access key the request claims.
    :ivar signature: the base64 signature.
    :ivar expires: for query authentication, ``Expires`` as sent (seconds
        since the epoch, in decimal); ``None`` for header authentication.
    """

    access_key_id: str
    signature: str
    expires: str | None = None

    @property
    def expires_epoch(self) -> int | None:
        """
        ``Expires`` as a number, for query authentication.
        """
        return None if self.expires is None else int(self.expires)


def parse_authorization_v2(value: str) -> SigV2Authorization | None:
    """
    Parse an ``Authorization: AWS AKID:signature`` header.

    :return: the signature, or ``None`` if the scheme is not ``AWS``.
    :raise S3Error: ``InvalidArgument`` if it is, but the rest is not
        ``AKID:signature``.
    """
    scheme, _, credentials = value.strip().partition(" ")
    if scheme != "AWS":
        return None
    access_key_id, colon, signature = credentials.strip().rpartition(":")
    if not colon or not access_key_id or not signature:
        raise S3Error(
            "InvalidArgument",
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
            extra=(("ArgumentName", "Authorization"), ("ArgumentValue", value)),
        )
    return SigV2Authorization(access_key_id, signature)


def parse_presigned_v2(
    params: Sequence[tuple[str, str]],
) -> SigV2Authorization | None:
    """
    Recognise SigV2 query authentication.

    :param params: the request's query parameters, percent-decoded, in order.
    :return: the signature, or ``None`` if none of ``AWSAccessKeyId``,
        ``Signature`` and ``Expires`` is present.
    :raise S3Error: ``AccessDenied`` if only some are, or ``Expires`` is not
        a number.
    """
    wanted = ("AWSAccessKeyId", "Signature", "Expires")
    found: dict[str, str] = {}
    for name, value in params:
        if name in wanted:
            found.setdefault(name, value)
    if not found:
        return None
    if len(found) != len(wanted) or not all(found.values()):
        raise S3Error(
            "AccessDenied",
            "Query-string authentication requires the Signature, Expires and "
            "AWSAccessKeyId parameters",
        )
    expires = found["Expires"]
    if not expires.isascii() or not expires.isdigit() or len(expires) > 12:
        raise S3Error(
            "AccessDenied",
            f"Invalid date (should be seconds since epoch): {expires[:40]}",
        )
    # Base64 has no spaces: a space is a "+" that a form decoder read.
    signature = found["Signature"].replace(" ", "+")
    return SigV2Authorization(found["AWSAccessKeyId"], signature, expires)


def _decoded(value: str) -> str:
    return percent_decode(value, plus_is_space=False).decode("latin-1")


def _sub_resource_pairs(raw_query: str) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    for piece in wire_text(raw_query).split("&"):
        name, equals, value = piece.partition("=")
        if name in SUB_RESOURCES:
            pairs.append((name, _decoded(value) if equals else None))
    # Sorted by name only: repeated names keep their order.
    return sorted(pairs, key=lambda pair: pair[0])


def canonical_resource(path: str, raw_query: str, *, bare_empty: bool = False) -> str:
    """
    The canonicalized resource: ``path`` followed by the signed
    sub-resources, sorted by name, with their decoded values.

    :param path: the path as sent, with ``/bucket`` in front for
        virtual-hosted requests.
    :param raw_query: the query as sent, without ``?``.
    :param bare_empty: write a sub-resource with an empty value as ``name``
        rather than ``name=`` (clients differ).
    """
    parts = []
    for name, value in _sub_resource_pairs(raw_query):
        if value is None or (bare_empty and not value):
            parts.append(name)
        else:
            parts.append(f"{name}={value}")
    resource = wire_text(path) or "/"
    return f"{resource}?{'&'.join(parts)}" if parts else resource


def _amz_headers(fields: Iterable[tuple[str, str]]) -> str:
    grouped: dict[str, list[str]] = {}
    for name, value in fields:
        if name.startswith("x-amz-"):
            grouped.setdefault(name, []).append(wire_text(value).strip())
    return "".join(f"{name}:{','.join(grouped[name])}\n" for name in sorted(grouped))


def _query_fields(raw_query: str) -> list[tuple[str, str]]:
    fields = []
    for piece in wire_text(raw_query).split("&"):
        name, _, value = piece.partition("=")
        fields.append((_decoded(name).lower(), _decoded(value)))
    return fields


def string_to_sign_v2(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: HeaderList,
    expires: str | None,
    *,
    date: str | None = None,
    bare_empty: bool = False,
) -> str:
    """
    The SigV2 string to sign: the method, ``Content-MD5``, ``Content-Type``,
    the date (``Expires`` for query authentication; empty when
    ``x-amz-date`` is sent, else ``Date``), the ``x-amz-*`` headers
    (lower-case, sorted, repeated values joined with ``,``) and the
    canonicalized resource.

    For query authentication, ``x-amz-*`` query parameters (such as
    ``x-amz-security-token``) count as headers, and ``Content-MD5`` and
    ``Content-Type`` may be given in the query when not sent as headers.

    :param raw_path: the path as sent (``/bucket`` + path for
        virtual-hosted requests).
    :param raw_query: the query as sent, without ``?``.
    :param expires: ``Expires`` as sent, for query authentication.
    :param date: the date line to use instead of the rule above.
    :param bare_empty: see L{canonical_resource}.
    """
    amz_fields: list[tuple[str, str]] = list(headers)
    standard: Mapping[str, str | None] = {
        "content-md5": headers.get("content-md5"),
        "content-type": headers.get("content-type"),
    }
    if expires is not None:
        query = _query_fields(raw_query)
        amz_fields += query
        standard = {
            name: value if value is not None else dict(query).get(name)
            for name, value in standard.items()
        }
        date_line = expires
    elif "x-amz-date" in headers:
        date_line = ""
    else:
        date_line = headers.get("date") or ""
    if date is not None:
        date_line = date
    return "".join(
        (
            f"{method}\n",
            f"{wire_text(standard['content-md5'] or '').strip()}\n",
            f"{wire_text(standard['content-type'] or '').strip()}\n",
            f"{wire_text(date_line).strip()}\n",
            _amz_headers(amz_fields),
            canonical_resource(raw_path, raw_query, bare_empty=bare_empty),
        )
    )


def sign_v2(string_to_sign: str, secret: str) -> str:
    """
    :return: the base64 HMAC-SHA1 of ``string_to_sign`` under ``secret``.
    """
    digest = hmac.new(
        secret.encode("utf-8"),
        wire_text(string_to_sign).encode("latin-1"),
        hashlib.sha1,
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_v2(string_to_sign: str, secret: str, signature: str) -> bool:
    """
    :return: whether ``signature`` is the signature of ``string_to_sign``,
        compared in constant time.
    """
    expected = sign_v2(string_to_sign, secret).encode("ascii")
    return hmac.compare_digest(expected, signature.encode("utf-8"))


def _header_variants(
    headers: HeaderList,
) -> list[tuple[HeaderList, str | None]]:
    """
    :return: the headers and date line to sign with, in the order to try
        them: the specification's (with ``x-amz-date``, an empty date line);
        ``Date`` signed as well (some clients do); the published S3 example's
        (``x-amz-date`` in the date line, not among the ``x-amz-*`` lines).
    """
    variants: list[tuple[HeaderList, str | None]] = [(headers, None)]
    amz_date = headers.get("x-amz-date")
    if amz_date is not None:
        date = headers.get("date")
        if date is not None:
            variants.append((headers, date))
        variants.append((headers.without("x-amz-date"), amz_date))
    return variants


def verify_v2_request(
    request: IncomingRequest,
    auth: SigV2Authorization,
    secret: str,
    now: datetime,
    *,
    resource_path: str | None = None,
    max_skew: int = DEFAULT_MAX_SKEW,
) -> None:
    """
    Verify a SigV2-signed request, by header or by query.

    :param request: the request as received.
    :param auth: from L{parse_authorization_v2} or L{parse_presigned_v2}.
    :param secret: the secret access key of ``auth.access_key_id``.
    :param now: the current time, aware.
    :param resource_path: the path the client signed, when it is not the
        request path: ``/bucket`` + path for virtual-hosted requests, still
        percent-encoded.
    :param max_skew: for header authentication, the largest difference
        allowed between the request time and ``now``, in seconds.
    :raise S3Error: ``AccessDenied`` (no valid date, or expired),
        ``RequestTimeTooSkewed``, ``SignatureDoesNotMatch``.
    """
    if auth.expires is None:
        _check_header_time(request.headers, now, max_skew)
        variants = _header_variants(request.headers)
    else:
        _check_expiry(auth, now)
        variants = [(request.headers, None)]
    raw_path = (
        resource_path
        if resource_path is not None
        else request.raw_path.decode("latin-1")
    )
    raw_query = request.raw_query.decode("latin-1")
    paths = (wire_text(raw_path) or "/", canonical_uri(raw_path))
    candidates = dict.fromkeys(
        string_to_sign_v2(
            request.method,
            path,
            raw_query,
            headers,
            auth.expires,
            date=date,
            bare_empty=bare_empty,
        )
        for path in paths
        for bare_empty in (False, True)
        for headers, date in variants
    )
    if any(verify_v2(sts, secret, auth.signature) for sts in candidates):
        return
    first = next(iter(candidates))
    raise S3Error(
        "SignatureDoesNotMatch",
        extra=(
            ("AWSAccessKeyId", auth.access_key_id),
            ("StringToSign", readable_text(first)),
            ("SignatureProvided", auth.signature),
            ("StringToSignBytes", hex_bytes(first)),
        ),
    )


def _check_header_time(headers: HeaderList, now: datetime, max_skew: int) -> None:
    sent = (headers.get("x-amz-date") or headers.get("date") or "").strip()
    when = (parse_http_date(sent) or parse_amz_date(sent)) if sent else None
    if when is None:
        raise S3Error(
            "AccessDenied",
            "AWS authentication requires a valid Date or x-amz-date header",
        )
    check_skew(when, sent, now, max_skew)


def _check_expiry(auth: SigV2Authorization, now: datetime) -> None:
    expires = auth.expires_epoch
    assert expires is not None
    now = aware_utc(now)
    if now.timestamp() > expires:
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            extra=(
                ("Expires", format_server_time(datetime.fromtimestamp(expires, UTC))),
                ("ServerTime", format_server_time(now)),
            ),
        )
