# -*- test-case-name: tests.unit.test_sigv4 -*-
"""
Verifying the AWS Signature Version 4 signatures clients put on requests:
the ``Authorization`` header and presigned URLs. Pure: no I/O, no clock (the
time is passed in), no Twisted; the canonical encoding is in
L{multistore.auth.canonical}.

Requests are verified over the bytes that were on the wire.

Clients disagree on how to encode a path and a query on the wire and on how
they encode them when signing. The verifier therefore tries a few canonical
forms of the same request, each a faithful rendering of what was received,
and accepts the request if any of them carries the signature:

 - the path exactly as received, then the path decoded and re-encoded with
   the AWS rule (L{canonical_uri_candidates});
 - the query decoded and re-encoded with the AWS rule (a bare ``+`` read as
   a space), then the query's pieces as sent, sorted
   (L{canonical_query_candidates}).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from attrs import frozen

from multistore.auth.canonical import (
    ALGORITHM,
    HEX_SHA256,
    MAX_PRESIGNED_EXPIRES,
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    UNSIGNED_PAYLOAD,
    assemble_canonical_request,
    aware_utc,
    canonical_headers,
    canonical_query,
    canonical_query_candidates,
    canonical_uri,
    canonical_uri_candidates,
    compute_signature,
    format_amz_date,
    format_server_time,
    parse_amz_date,
    readable_text,
    signing_key,
    string_to_sign,
)
from multistore.headers import HeaderList
from multistore.model import CredentialScope, VerifiedSignature
from multistore.s3.dates import parse_http_date
from multistore.s3.errors import S3Error

if TYPE_CHECKING:
    from multistore.model import IncomingRequest


#: How far the request time may be from ours, in seconds.
DEFAULT_MAX_SKEW: Final = 900

# The payload hash values S3 accepts besides a hex SHA-256.
_PAYLOAD_HASH_WORDS: Final = frozenset(
    {
        UNSIGNED_PAYLOAD,
        STREAMING_PAYLOAD,
        STREAMING_PAYLOAD_TRAILER,
        STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    }
)


_SCOPE_DATE = re.compile(r"\A[0-9]{8}\Z")
_CREDENTIAL_FORMAT: Final = (
    'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request"'
)


@frozen
class SigV4Authorization:
    """
    A parsed ``Authorization: AWS4-HMAC-SHA256 ...`` header.

    :ivar access_key_id: the access key the request claims.
    :ivar date: the credential scope's day, ``YYYYMMDD``.
    :ivar region: the credential scope's region.
    :ivar service: the credential scope's service.
    :ivar signed_headers: the signed header names, lower-case, as listed.
    :ivar signature: the signature, lower-case hex.
    """

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> CredentialScope:
        """
        The credential scope.
        """
        return CredentialScope(self.date, self.region, self.service)


@frozen
class SigV4Presigned:
    """
    The authentication carried by a presigned (query-signed) URL.

    :ivar access_key_id: the access key the request claims.
    :ivar date: the credential scope's day, ``YYYYMMDD``.
    :ivar region: the credential scope's region.
    :ivar service: the credential scope's service.
    :ivar amz_date: ``X-Amz-Date`` as sent, ``YYYYMMDDTHHMMSSZ``.
    :ivar expires: ``X-Amz-Expires``, seconds after C{amz_date}.
    :ivar signed_headers: the signed header names, lower-case, as listed.
    :ivar signature: the signature, lower-case hex.
    :ivar security_token: ``X-Amz-Security-Token``, if given.
    """

    access_key_id: str
    date: str
    region: str
    service: str
    amz_date: str
    expires: int
    signed_headers: tuple[str, ...]
    signature: str
    security_token: str | None = None

    @property
    def scope(self) -> CredentialScope:
        """
        The credential scope.
        """
        return CredentialScope(self.date, self.region, self.service)


# -- encoding -----------------------------------------------------------------


# -- canonical request --------------------------------------------------------


# -- aws-chunked --------------------------------------------------------------


# -- times --------------------------------------------------------------------


def check_skew(request_time: datetime, sent: str, now: datetime, max_skew: int) -> None:
    """
    Refuse a request whose time is too far from ours.

    :param request_time: the request's time.
    :param sent: the request time as sent, for the error document.
    :param now: the current time, aware.
    :param max_skew: the largest difference allowed, in seconds.
    :raise S3Error: ``RequestTimeTooSkewed``.
    """
    if abs((aware_utc(now) - request_time).total_seconds()) > max_skew:
        raise S3Error(
            "RequestTimeTooSkewed",
            extra=(
                ("RequestTime", sent),
                ("ServerTime", format_server_time(now)),
                ("MaxAllowedSkewMilliseconds", str(max_skew * 1000)),
            ),
        )


# -- parsing ------------------------------------------------------------------


def _parse_credential(value: str) -> tuple[str, CredentialScope] | None:
    parts = value.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        return None
    access_key_id, date, region, service, _ = parts
    if not _valid_scope_date(date):
        return None
    return access_key_id, CredentialScope(date, region, service)


def _valid_scope_date(date: str) -> bool:
    if not _SCOPE_DATE.match(date):
        return False
    try:
        datetime.strptime(date, "%Y%m%d")
    except ValueError:
        return False
    return True


def _parse_signed_headers(value: str) -> tuple[str, ...] | None:
    names = tuple(name.strip().lower() for name in value.split(";"))
    if not value.strip() or not all(names):
        return None
    return names


def _malformed(message: str) -> S3Error:
    return S3Error(
        "AuthorizationHeaderMalformed",
        f"The authorization header is malformed; {message}",
    )


def parse_authorization(value: str) -> SigV4Authorization:
    """
    Parse an ``Authorization`` header of the form
    ``AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/REGION/SERVICE/aws4_request,
    SignedHeaders=a;b;c, Signature=<hex>``. Components may come in any order,
    with or without spaces around ``,`` and ``=``.

    :raise S3Error: ``InvalidArgument`` for a scheme other than
        ``AWS4-HMAC-SHA256``; ``AuthorizationHeaderMalformed`` for a missing,
        repeated, unknown or malformed component.
    """
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        raise S3Error(
            "InvalidArgument",
            "Unsupported Authorization Type",
            extra=(("ArgumentName", "Authorization"), ("ArgumentValue", value)),
        )
    components: dict[str, str] = {}
    for piece in rest.split(","):
        if not piece.strip():
            continue
        name, equals, component = piece.partition("=")
        name = name.strip()
        if not equals:
            raise _malformed(f"the component {piece.strip()!r} has no '='.")
        if name not in {"Credential", "SignedHeaders", "Signature"}:
            raise _malformed(f"unknown component {name!r}.")
        if name in components:
            raise _malformed(f"the {name} component is given more than once.")
        components[name] = component.strip()
    for name in ("Credential", "SignedHeaders", "Signature"):
        if name not in components:
            raise _malformed(f"the {name} component is missing.")
    credential = _parse_credential(components["Credential"])
    if credential is None:
        raise _malformed(f"the Credential is mal-formed; {_CREDENTIAL_FORMAT}.")
    signed_headers = _parse_signed_headers(components["SignedHeaders"])
    if signed_headers is None:
        raise _malformed("SignedHeaders must list at least one header.")
    signature = components["Signature"]
    if not HEX_SHA256.match(signature):
        raise _malformed("the Signature must be 64 hexadecimal digits.")
    access_key_id, scope = credential
    return SigV4Authorization(
        access_key_id=access_key_id,
        date=scope.date,
        region=scope.region,
        service=scope.service,
        signed_headers=signed_headers,
        signature=signature.lower(),
    )


def _query_error(message: str) -> S3Error:
    return S3Error("AuthorizationQueryParametersError", message)


_PRESIGN_REQUIRED: Final = (
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)


def parse_presigned(params: Sequence[tuple[str, str]]) -> SigV4Presigned | None:
    """
    Recognise query-string authentication.

    :param params: the request's query parameters, percent-decoded, in order.
    :return: the authentication, or ``None`` if there is no
        ``X-Amz-Algorithm`` parameter.
    :raise S3Error: ``AuthorizationQueryParametersError`` naming the
        parameter that is missing, repeated or malformed, or an unsupported
        algorithm.
    """
    wanted = {"X-Amz-Algorithm", "X-Amz-Security-Token", *_PRESIGN_REQUIRED}
    found: dict[str, str] = {}
    for name, value in params:
        if name in wanted:
            if name in found:
                raise _query_error(f"{name} is given more than once.")
            found[name] = value
    algorithm = found.get("X-Amz-Algorithm")
    if algorithm is None:
        return None
    if algorithm != ALGORITHM:
        raise _query_error(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    for name in _PRESIGN_REQUIRED:
        if name not in found:
            raise _query_error(
                "Query-string authentication version 4 requires the "
                "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, "
                "X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires "
                f"parameters; {name} is missing."
            )
    credential = _parse_credential(found["X-Amz-Credential"])
    if credential is None:
        raise _query_error(
            "Error parsing the X-Amz-Credential parameter; the Credential is "
            f"mal-formed; {_CREDENTIAL_FORMAT}."
        )
    access_key_id, scope = credential
    amz_date = found["X-Amz-Date"]
    if parse_amz_date(amz_date) is None:
        raise _query_error(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        )
    if amz_date[:8] != scope.date:
        raise _query_error(
            "Error parsing the X-Amz-Credential parameter; the date in the "
            f"credential scope ({scope.date}) does not match X-Amz-Date "
            f"({amz_date})."
        )
    expires = _parse_expires(found["X-Amz-Expires"])
    signed_headers = _parse_signed_headers(found["X-Amz-SignedHeaders"])
    if signed_headers is None:
        raise _query_error("X-Amz-SignedHeaders must list at least one header.")
    signature = found["X-Amz-Signature"]
    if not HEX_SHA256.match(signature):
        raise _query_error("X-Amz-Signature must be 64 hexadecimal digits.")
    return SigV4Presigned(
        access_key_id=access_key_id,
        date=scope.date,
        region=scope.region,
        service=scope.service,
        amz_date=amz_date,
        expires=expires,
        signed_headers=signed_headers,
        signature=signature.lower(),
        security_token=found.get("X-Amz-Security-Token"),
    )


def _parse_expires(value: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise _query_error("X-Amz-Expires should be a number")
    if len(value) > len(str(MAX_PRESIGNED_EXPIRES)):
        raise _query_error(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800"
        )
    expires = int(value)
    if expires < 1:
        raise _query_error("X-Amz-Expires must be at least 1 second")
    if expires > MAX_PRESIGNED_EXPIRES:
        raise _query_error(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800"
        )
    return expires


# -- verification -------------------------------------------------------------


def _check_payload_hash(payload_hash: str) -> None:
    if payload_hash in _PAYLOAD_HASH_WORDS or HEX_SHA256.match(payload_hash):
        return
    raise S3Error(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
        extra=(
            ("ArgumentName", "x-amz-content-sha256"),
            ("ArgumentValue", payload_hash),
        ),
    )


def _check_amz_headers_signed(
    headers: HeaderList, signed_headers: Sequence[str]
) -> None:
    unsigned = sorted(
        name
        for name in headers.names()
        if name.startswith("x-amz-") and name not in signed_headers
    )
    if unsigned:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            extra=(("HeadersNotSigned", ", ".join(unsigned)),),
        )


def _request_time(headers: HeaderList) -> tuple[str, str, datetime]:
    """
    :return: the request time as sent, as signed (``YYYYMMDDTHHMMSSZ``) and
        parsed, from ``x-amz-date`` or else ``Date``.
    """
    amz_date = headers.get("x-amz-date")
    if amz_date is not None:
        sent = amz_date.strip()
        when = parse_amz_date(sent)
    else:
        sent = (headers.get("date") or "").strip()
        when = parse_http_date(sent) if sent else None
    if when is None:
        raise S3Error(
            "AccessDenied",
            "AWS authentication requires a valid Date or x-amz-date header",
        )
    return sent, format_amz_date(when), when


def check_signature(
    request: IncomingRequest,
    *,
    access_key_id: str,
    key: bytes,
    amz_date: str,
    scope: CredentialScope,
    signed_headers: Sequence[str],
    payload_hash: str,
    signature: str,
    presigned: bool,
) -> None:
    """
    Check a signature against every canonical form of ``request`` (see the
    module documentation), in constant time each.

    This is the step that both L{verify_header_auth} and L{verify_presigned}
    end with; it checks nothing else (no times, no payload).

    :param request: the request as received.
    :param access_key_id: the access key, for the error document.
    :param key: the signing key for ``scope``.
    :param amz_date: the request time as signed.
    :param signed_headers: lower-case names, as listed by the client.
    :param payload_hash: the payload hash to put in the canonical request.
    :param signature: the signature the client sent, lower-case hex.
    :param presigned: whether the signature came in the query, which is then
        signed without ``X-Amz-Signature``.
    :raise S3Error: ``SignatureDoesNotMatch``, carrying the normalised
        canonical request and string to sign.
    """
    raw_path = request.raw_path.decode("latin-1")
    raw_query = request.raw_query.decode("latin-1")
    headers_block = canonical_headers(request.headers, signed_headers)
    for uri in canonical_uri_candidates(raw_path):
        for query in canonical_query_candidates(raw_query, presigned):
            creq = assemble_canonical_request(
                request.method, uri, query, headers_block, signed_headers, payload_hash
            )
            expected = compute_signature(key, string_to_sign(amz_date, scope, creq))
            if hmac.compare_digest(expected, signature):
                return
    creq = assemble_canonical_request(
        request.method,
        canonical_uri(raw_path),
        canonical_query(raw_query, presigned),
        headers_block,
        signed_headers,
        payload_hash,
    )
    sts = string_to_sign(amz_date, scope, creq)
    raise S3Error(
        "SignatureDoesNotMatch",
        extra=(
            ("AWSAccessKeyId", access_key_id),
            ("StringToSign", sts),
            ("SignatureProvided", signature),
            ("StringToSignBytes", hex_bytes(sts)),
            ("CanonicalRequest", readable_text(creq)),
            ("CanonicalRequestBytes", hex_bytes(creq)),
        ),
    )


def hex_bytes(wire: str) -> str:
    """
    For error documents (AWS's ``StringToSignBytes``).

    :param wire: wire text (see L{wire_text}).
    :return: its bytes as space-separated two-digit hex.
    """
    return " ".join(f"{byte:02x}" for byte in wire.encode("latin-1"))


def verify_header_auth(
    request: IncomingRequest,
    auth: SigV4Authorization,
    secret: str,
    now: datetime,
    max_skew: int = DEFAULT_MAX_SKEW,
    *,
    payload_hash: str | None = None,
) -> VerifiedSignature:
    """
    Verify a request signed in its ``Authorization`` header.

    For S3, the payload hash is taken from ``x-amz-content-sha256`` as sent;
    it is not checked against the body here. Other services (STS) sign the
    hash of the body without sending it: the caller passes it.

    :param request: the request as received.
    :param auth: its parsed ``Authorization`` header.
    :param secret: the secret access key of ``auth.access_key_id``.
    :param now: the current time, aware.
    :param max_skew: the largest difference allowed between the request time
        and ``now``, in seconds.
    :param payload_hash: the hex SHA-256 of the body, for services whose
        requests do not carry ``x-amz-content-sha256``.
    :raise S3Error: ``AuthorizationHeaderMalformed`` (``host`` not signed,
        scope date not the request date), ``InvalidRequest`` (no
        ``x-amz-content-sha256``), ``InvalidArgument`` (a malformed one),
        ``AccessDenied`` (no valid request time, unsigned ``x-amz-*``
        headers), ``RequestTimeTooSkewed``, ``SignatureDoesNotMatch``.
    """
    if "host" not in auth.signed_headers:
        raise S3Error("AuthorizationHeaderMalformed", "The host header must be signed.")
    if payload_hash is None:
        payload_hash = request.headers.get("x-amz-content-sha256")
        if payload_hash is None:
            raise S3Error(
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
            )
        payload_hash = payload_hash.strip()
    _check_payload_hash(payload_hash)
    sent, amz_date, when = _request_time(request.headers)
    if amz_date[:8] != auth.date:
        raise _malformed(
            f"the date in the credential scope ({auth.date}) does not match "
            f"the request date ({amz_date[:8]})."
        )
    check_skew(when, sent, now, max_skew)
    return _verified(request, auth, secret, amz_date, payload_hash, presigned=False)


def _verified(
    request: IncomingRequest,
    auth: SigV4Authorization | SigV4Presigned,
    secret: str,
    amz_date: str,
    payload_hash: str,
    *,
    presigned: bool,
) -> VerifiedSignature:
    """
    The checks header and query signatures share, once their times are
    known to be good: every ``x-amz-*`` header signed, and the signature.

    :raise S3Error: ``AccessDenied`` (unsigned ``x-amz-*`` headers),
        ``SignatureDoesNotMatch``.
    """
    _check_amz_headers_signed(request.headers, auth.signed_headers)
    key = signing_key(secret, auth.date, auth.region, auth.service)
    check_signature(
        request,
        access_key_id=auth.access_key_id,
        key=key,
        amz_date=amz_date,
        scope=auth.scope,
        signed_headers=auth.signed_headers,
        payload_hash=payload_hash,
        signature=auth.signature,
        presigned=presigned,
    )
    return VerifiedSignature(
        access_key_id=auth.access_key_id,
        signing_key=key,
        amz_date=amz_date,
        scope=auth.scope,
        seed_signature=auth.signature,
        payload_hash=payload_hash,
    )


def verify_presigned(
    request: IncomingRequest,
    auth: SigV4Presigned,
    secret: str,
    now: datetime,
    max_skew: int = DEFAULT_MAX_SKEW,
) -> VerifiedSignature:
    """
    Verify a presigned (query-signed) request.

    The payload hash is ``UNSIGNED-PAYLOAD``, or ``x-amz-content-sha256`` if
    the request carries one.

    :param request: the request as received.
    :param auth: what L{parse_presigned} found in its query.
    :param secret: the secret access key of ``auth.access_key_id``.
    :param now: the current time, aware.
    :param max_skew: how far in the future ``X-Amz-Date`` may be, in seconds.
    :raise S3Error: ``AuthorizationQueryParametersError`` (``host`` not
        signed), ``InvalidArgument`` (a malformed ``x-amz-content-sha256``),
        ``AccessDenied`` (expired, not yet valid, unsigned ``x-amz-*``
        headers), ``SignatureDoesNotMatch``.
    """
    if "host" not in auth.signed_headers:
        raise _query_error("X-Amz-SignedHeaders must include host")
    when = parse_amz_date(auth.amz_date)
    if when is None:  # only for a value not made by parse_presigned
        raise _query_error("X-Amz-Date must be in the ISO8601 Long Format")
    now = aware_utc(now)
    expires_at = when + timedelta(seconds=auth.expires)
    if now > expires_at:
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            extra=(
                ("X-Amz-Expires", str(auth.expires)),
                ("Expires", format_server_time(expires_at)),
                ("ServerTime", format_server_time(now)),
            ),
        )
    if when - now > timedelta(seconds=max_skew):
        raise S3Error("AccessDenied", "Request is not yet valid")
    payload_hash = (request.headers.get("x-amz-content-sha256") or "").strip()
    if payload_hash:
        _check_payload_hash(payload_hash)
    else:
        payload_hash = UNSIGNED_PAYLOAD
    return _verified(request, auth, secret, auth.amz_date, payload_hash, presigned=True)


# -- outbound signing ---------------------------------------------------------
