# -*- test-case-name: tests.unit.test_sigv4 -*-
"""
Signing the requests multistore sends to S3 backends with AWS Signature
Version 4: in headers (L{sign_request}) or as a presigned URL
(L{presign_url}). Pure: the time is passed in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from multistore.auth.canonical import (
    ALGORITHM,
    MAX_PRESIGNED_EXPIRES,
    UNSIGNED_PAYLOAD,
    canonical_query,
    canonical_request,
    compute_signature,
    format_amz_date,
    signing_key,
    string_to_sign,
    uri_encode,
)
from multistore.headers import HeaderList
from multistore.model import CredentialScope

# Headers multistore never signs on its outbound requests: they are set or
# changed by the transport or by proxies on the way.
_UNSIGNABLE: Final = frozenset(
    {
        "authorization",
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _host_of(url: str) -> tuple[str, str, str]:
    """
    :return: the ``Host`` header value, the path and the query of ``url``.
    """
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    if not url.isascii():
        raise ValueError(f"the URL must be percent-encoded ASCII: {url!r}")
    host = parts.netloc.rpartition("@")[2]
    if parts.port == _DEFAULT_PORTS[parts.scheme]:
        host = host.rpartition(":")[0]
    return host, parts.path or "/", parts.query


def sign_request(
    method: str,
    url: str,
    headers: HeaderList,
    payload_hash: str,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    region: str,
    now: datetime,
    service: str = "s3",
) -> HeaderList:
    """
    Sign an outbound request in its ``Authorization`` header.

    Every header in ``headers`` is signed except those that the transport or
    proxies may change (``user-agent``, ``expect`` and the hop-by-hop
    headers); ``content-length`` is signed only if ``headers`` has it.

    :param method: the HTTP method, upper-case.
    :param url: the absolute URL, percent-encoded exactly as it will be sent
        (build it with L{uri_encode}). Its path is signed as it is.
    :param headers: the headers to send.
    :param payload_hash: the hex SHA-256 of the body, or a placeholder such as
        L{UNSIGNED_PAYLOAD}.
    :param session_token: the session token of temporary credentials, if any.
    :param now: the current time, aware.
    :return: ``headers`` with ``host``, ``x-amz-date``,
        ``x-amz-content-sha256``, ``x-amz-security-token`` (with a token) and
        ``authorization`` set; send exactly these.
    :raise ValueError: if ``url`` is not an absolute, ASCII http(s) URL.
    """
    host, path, query = _host_of(url)
    amz_date = format_amz_date(now)
    added = [
        ("host", host),
        ("x-amz-date", amz_date),
        ("x-amz-content-sha256", payload_hash),
    ]
    if session_token is not None:
        added.append(("x-amz-security-token", session_token))
    replaced = {name for name, _ in added} | {"authorization", "x-amz-security-token"}
    out = HeaderList(added).plus(headers.without(*replaced))
    signed = sorted(out.names() - _UNSIGNABLE)
    scope = CredentialScope(amz_date[:8], region, service)
    creq = canonical_request(
        method, path, canonical_query(query), out, signed, payload_hash
    )
    key = signing_key(secret_access_key, scope.date, region, service)
    signature = compute_signature(key, string_to_sign(amz_date, scope, creq))
    authorization = (
        f"{ALGORITHM} Credential={access_key_id}/{scope.text}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return out.plus([("authorization", authorization)])


def presign_url(
    method: str,
    url: str,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    region: str,
    now: datetime,
    expires: int,
    service: str = "s3",
) -> str:
    """
    Make a presigned URL, signing only the ``host`` header.

    :param url: the absolute URL, percent-encoded exactly as it will be sent.
    :param now: the current time, aware.
    :param expires: the URL's lifetime in seconds, 1 to 604800.
    :return: ``url`` with the ``X-Amz-*`` authentication parameters added.
    :raise ValueError: for a bad ``url`` or ``expires``.
    """
    if not 1 <= expires <= MAX_PRESIGNED_EXPIRES:
        raise ValueError(f"expires must be 1 to {MAX_PRESIGNED_EXPIRES} seconds")
    host, path, query = _host_of(url)
    amz_date = format_amz_date(now)
    scope = CredentialScope(amz_date[:8], region, service)
    params = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access_key_id}/{scope.text}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    if session_token is not None:
        params.append(("X-Amz-Security-Token", session_token))
    auth_query = "&".join(
        f"{name}={uri_encode(value, keep_slash=False)}" for name, value in params
    )
    query = f"{query}&{auth_query}" if query else auth_query
    creq = canonical_request(
        method,
        path,
        canonical_query(query),
        HeaderList([("host", host)]),
        ("host",),
        UNSIGNED_PAYLOAD,
    )
    key = signing_key(secret_access_key, scope.date, region, service)
    signature = compute_signature(key, string_to_sign(amz_date, scope, creq))
    base = url.partition("#")[0].partition("?")[0]
    return f"{base}?{query}&X-Amz-Signature={signature}"
