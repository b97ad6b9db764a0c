# -*- test-case-name: tests.unit.test_sigv4 -*-
"""
AWS Signature Version 4: verifying the signatures clients put on requests,
and signing the requests multistore sends to S3 backends.

Everything here is pure: no I/O, no clock (the time is passed in), no
Twisted. It follows the AWS SigV4 specification as S3 applies it: the path
is neither normalised nor encoded twice.

Requests are verified over the bytes that were on the wire. Header values,
the raw path and the raw query are handled as text holding one character per
wire byte (the ISO-8859-1 decoding, as L{multistore.headers.HeaderList}
keeps them); text that cannot be ISO-8859-1 is taken as UTF-8.

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

import functools
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, unquote_to_bytes, urlsplit

from attrs import frozen

from multistore.headers import HeaderList
from multistore.model import CredentialScope, VerifiedSignature
from multistore.s3.dates import parse_http_date
from multistore.s3.errors import S3Error

if TYPE_CHECKING:
    from multistore.model import IncomingRequest

#: The only signing algorithm multistore accepts and uses.
ALGORITHM: Final = "AWS4-HMAC-SHA256"

#: The payload hash of a request whose body is not signed.
UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"

#: The payload hash of an ``aws-chunked`` body with signed chunks.
STREAMING_PAYLOAD: Final = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

#: The payload hash of an ``aws-chunked`` body with signed chunks and a
#: signed trailer.
STREAMING_PAYLOAD_TRAILER: Final = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"

#: The payload hash of an ``aws-chunked`` body with unsigned chunks and an
#: unsigned trailer.
STREAMING_UNSIGNED_PAYLOAD_TRAILER: Final = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

#: The hex SHA-256 of no bytes at all.
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()

#: The longest lifetime of a presigned URL, in seconds (a week).
MAX_PRESIGNED_EXPIRES: Final = 604800

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
_AMZ_DATE = re.compile(r"\A[0-9]{8}T[0-9]{6}Z\Z")
_SCOPE_DATE = re.compile(r"\A[0-9]{8}\Z")
_HEX64 = re.compile(r"\A[0-9a-fA-F]{64}\Z")
_HEADER_SPACE = re.compile(r"[ \t]+")
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


def uri_encode(value: str | bytes, *, keep_slash: bool) -> str:
    """
    Percent-encode with the AWS rule: every byte (of the UTF-8 encoding, for
    text) except the unreserved ``A-Za-z0-9-._~`` becomes ``%XX`` with
    upper-case hex digits.

    :param value: the text or bytes to encode.
    :param keep_slash: whether ``/`` stays as it is (for paths) rather than
        becoming ``%2F`` (for query names and values).
    :return: the encoded text, all ASCII.
    """
    data = value.encode("utf-8") if isinstance(value, str) else value
    return quote(data, safe="/" if keep_slash else "")


def wire_text(value: str) -> str:
    """
    Hold text as multistore holds wire bytes: one character per byte.

    :return: ``value`` with one character per wire byte: unchanged if it is
        ISO-8859-1 text already, else its UTF-8 bytes read as ISO-8859-1.
    """
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8").decode("latin-1")
    return value


def _wire_bytes(value: str) -> bytes:
    return wire_text(value).encode("latin-1")


def percent_decode(value: str, *, plus_is_space: bool) -> bytes:
    """
    Decode ``%XX`` escapes; a ``%`` not followed by two hex digits stays.

    :param value: wire text (see L{wire_text}).
    :param plus_is_space: read a bare ``+`` as a space, as form encoding does.
    :return: the decoded bytes.
    """
    data = _wire_bytes(value)
    if plus_is_space:
        data = data.replace(b"+", b" ")
    return unquote_to_bytes(data)


def readable_text(wire: str) -> str:
    """
    For error documents.

    :param wire: wire text (see L{wire_text}).
    :return: it shown as the UTF-8 text a client would have built.
    """
    return wire.encode("latin-1").decode("utf-8", errors="replace")


def _dedupe(candidates: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(candidates))


# -- canonical request --------------------------------------------------------


def canonical_uri(raw_path: str) -> str:
    """
    The normalised canonical URI of a path: percent-decoded once and
    re-encoded with the AWS rule (``/`` kept). S3 neither removes dot
    segments nor merges slashes.

    :param raw_path: the path as received, still percent-encoded.
    """
    return uri_encode(
        percent_decode(raw_path or "/", plus_is_space=False), keep_slash=True
    )


def canonical_uri_candidates(raw_path: str) -> tuple[str, ...]:
    """
    The canonical URIs a client may have signed, in the order to try them:
    the path exactly as received, then L{canonical_uri} if it differs.

    :param raw_path: the path as received, still percent-encoded.
    """
    raw = wire_text(raw_path) or "/"
    return _dedupe((raw, canonical_uri(raw)))


def _query_pairs(raw_query: str, exclude_signature: bool) -> list[tuple[str, str]]:
    pairs = []
    for piece in wire_text(raw_query).split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if exclude_signature and percent_decode(name, plus_is_space=True) == (
            b"X-Amz-Signature"
        ):
            continue
        pairs.append((name, value))
    return pairs


def canonical_query(raw_query: str, exclude_signature: bool = False) -> str:
    """
    The normalised canonical query string: each parameter percent-decoded
    (a bare ``+`` is a space) and re-encoded with the AWS rule, sorted by
    encoded name and then encoded value, joined as ``name=value`` with
    ``&``. A parameter without ``=`` has an empty value.

    :param raw_query: the query as received, without ``?``.
    :param exclude_signature: leave ``X-Amz-Signature`` out (for presigned
        URLs).
    """
    encoded = sorted(
        (
            uri_encode(percent_decode(name, plus_is_space=True), keep_slash=False),
            uri_encode(percent_decode(value, plus_is_space=True), keep_slash=False),
        )
        for name, value in _query_pairs(raw_query, exclude_signature)
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_query_candidates(
    raw_query: str, exclude_signature: bool = False
) -> tuple[str, ...]:
    """
    The canonical query strings a client may have signed, in the order to
    try them: L{canonical_query}; then the parameters exactly as sent,
    sorted by name and value; then the same sorted as whole ``name=value``
    strings.

    :param raw_query: the query as received, without ``?``.
    :param exclude_signature: leave ``X-Amz-Signature`` out (for presigned
        URLs).
    """
    pairs = _query_pairs(raw_query, exclude_signature)
    as_sent = [f"{name}={value}" for name, value in sorted(pairs)]
    return _dedupe(
        (
            canonical_query(raw_query, exclude_signature),
            "&".join(as_sent),
            "&".join(sorted(as_sent)),
        )
    )


def _trimall(value: str) -> str:
    return _HEADER_SPACE.sub(" ", value.strip(" \t"))


def canonical_headers(headers: HeaderList, signed_headers: Sequence[str]) -> str:
    """
    The canonical headers block: for each signed name, in the order given,
    ``name:value`` and a newline, where the value is every value of that
    header, trimmed, runs of spaces collapsed, joined with ``,``. A signed
    header that is absent has an empty value.

    :param headers: the request's headers.
    :param signed_headers: lower-case names, as listed by the signer.
    """
    lines = []
    for name in signed_headers:
        values = ",".join(_trimall(wire_text(v)) for v in headers.get_all(name))
        lines.append(f"{name}:{values}\n")
    return "".join(lines)


def _assemble(
    method: str,
    uri: str,
    query: str,
    headers_block: str,
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    return "\n".join(
        (method, uri, query, headers_block, ";".join(signed_headers), payload_hash)
    )


def canonical_request(
    method: str,
    canonical_uri: str,
    canonical_query: str,
    headers: HeaderList,
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """
    Assemble a canonical request.

    :param method: the HTTP method, upper-case.
    :param canonical_uri: the canonical URI (see L{canonical_uri_candidates}).
    :param canonical_query: the canonical query string (see
        L{canonical_query_candidates}).
    :param headers: the request's headers.
    :param signed_headers: lower-case names of the signed headers.
    :param payload_hash: the hex SHA-256 of the body, or a placeholder such as
        L{UNSIGNED_PAYLOAD}.
    """
    return _assemble(
        method,
        canonical_uri,
        canonical_query,
        canonical_headers(headers, signed_headers),
        signed_headers,
        payload_hash,
    )


def string_to_sign(
    amz_date: str, scope: CredentialScope, canonical_request: str
) -> str:
    """
    :param amz_date: the request time, ``YYYYMMDDTHHMMSSZ``.
    :param scope: the credential scope.
    :param canonical_request: the canonical request.
    :return: the string to sign for a request.
    """
    digest = hashlib.sha256(_wire_bytes(canonical_request)).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope.text}\n{digest}"


@functools.lru_cache(maxsize=256)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """
    Derive the signing key for a scope. It depends on nothing else, so it is
    cached: four HMACs per request, on both the verifying and the signing
    side, were a measurable share of a small GET.

    :param secret: the secret access key.
    :param date: the scope's day, ``YYYYMMDD``.
    """
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def compute_signature(key: bytes, string_to_sign: str) -> str:
    """
    :param key: a key from L{signing_key}.
    :return: the signature of ``string_to_sign``, lower-case hex.
    """
    return hmac.new(key, _wire_bytes(string_to_sign), hashlib.sha256).hexdigest()


# -- aws-chunked --------------------------------------------------------------


def chunk_string_to_sign(
    amz_date: str, scope: CredentialScope, previous_signature: str, chunk_sha256: str
) -> str:
    """
    The string to sign for one chunk of a ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``
    body (including the final empty chunk).

    :param amz_date: L{VerifiedSignature.amz_date}.
    :param scope: L{VerifiedSignature.scope}.
    :param previous_signature: the previous chunk's signature, or the seed
        signature for the first chunk.
    :param chunk_sha256: the hex SHA-256 of the chunk's data.
    """
    return (
        f"{ALGORITHM}-PAYLOAD\n{amz_date}\n{scope.text}\n"
        f"{previous_signature}\n{EMPTY_SHA256}\n{chunk_sha256}"
    )


def trailer_string_to_sign(
    amz_date: str, scope: CredentialScope, previous_signature: str, trailer_sha256: str
) -> str:
    """
    The string to sign for the trailer of a
    ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`` body.

    :param previous_signature: the final (empty) chunk's signature.
    :param trailer_sha256: the hex SHA-256 of the trailing header lines,
        each ``name:value`` followed by a newline, as signed.
    """
    return (
        f"{ALGORITHM}-TRAILER\n{amz_date}\n{scope.text}\n"
        f"{previous_signature}\n{trailer_sha256}"
    )


def chunk_signature(key: bytes, string_to_sign: str) -> str:
    """
    :param key: L{VerifiedSignature.signing_key}.
    :param string_to_sign: from L{chunk_string_to_sign} or
        L{trailer_string_to_sign}.
    :return: the chunk's (or trailer's) signature, lower-case hex.
    """
    return compute_signature(key, string_to_sign)


# -- times --------------------------------------------------------------------


def parse_amz_date(value: str) -> datetime | None:
    """
    :param value: an ISO 8601 basic time, ``YYYYMMDDTHHMMSSZ``.
    :return: the time in UTC, or ``None`` if ``value`` is not one.
    """
    if not _AMZ_DATE.match(value):
        return None
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def format_amz_date(when: datetime) -> str:
    """
    :param when: an aware time.
    :return: ``when`` in UTC as ``YYYYMMDDTHHMMSSZ``.
    """
    return as_utc(when).strftime("%Y%m%dT%H%M%SZ")


def format_iso8601(when: datetime) -> str:
    """
    :param when: an aware time.
    :return: ``when`` in UTC as ``YYYY-MM-DDTHH:MM:SSZ``, the form S3 error
        documents use.
    """
    return as_utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_utc(when: datetime) -> datetime:
    """
    :param when: an aware time.
    :return: the same time in UTC.
    :raise ValueError: if ``when`` is naive (its zone would be a guess).
    """
    if when.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return when.astimezone(UTC)


def check_skew(request_time: datetime, sent: str, now: datetime, max_skew: int) -> None:
    """
    Refuse a request whose time is too far from ours.

    :param request_time: the request's time.
    :param sent: the request time as sent, for the error document.
    :param now: the current time, aware.
    :param max_skew: the largest difference allowed, in seconds.
    :raise S3Error: ``RequestTimeTooSkewed``.
    """
    if abs((as_utc(now) - request_time).total_seconds()) > max_skew:
        raise S3Error(
            "RequestTimeTooSkewed",
            extra=(
                ("RequestTime", sent),
                ("ServerTime", format_iso8601(now)),
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
    if not _HEX64.match(signature):
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
    if not _HEX64.match(signature):
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
    if payload_hash in _PAYLOAD_HASH_WORDS or _HEX64.match(payload_hash):
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
            creq = _assemble(
                request.method, uri, query, headers_block, signed_headers, payload_hash
            )
            expected = compute_signature(key, string_to_sign(amz_date, scope, creq))
            if hmac.compare_digest(expected, signature):
                return
    creq = _assemble(
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
        presigned=False,
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
    now = as_utc(now)
    expires_at = when + timedelta(seconds=auth.expires)
    if now > expires_at:
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            extra=(
                ("X-Amz-Expires", str(auth.expires)),
                ("Expires", format_iso8601(expires_at)),
                ("ServerTime", format_iso8601(now)),
            ),
        )
    if when - now > timedelta(seconds=max_skew):
        raise S3Error("AccessDenied", "Request is not yet valid")
    payload_hash = (request.headers.get("x-amz-content-sha256") or "").strip()
    if payload_hash:
        _check_payload_hash(payload_hash)
    else:
        payload_hash = UNSIGNED_PAYLOAD
    _check_amz_headers_signed(request.headers, auth.signed_headers)
    key = signing_key(secret, auth.date, auth.region, auth.service)
    check_signature(
        request,
        access_key_id=auth.access_key_id,
        key=key,
        amz_date=auth.amz_date,
        scope=auth.scope,
        signed_headers=auth.signed_headers,
        payload_hash=payload_hash,
        signature=auth.signature,
        presigned=True,
    )
    return VerifiedSignature(
        access_key_id=auth.access_key_id,
        signing_key=key,
        amz_date=auth.amz_date,
        scope=auth.scope,
        seed_signature=auth.signature,
        payload_hash=payload_hash,
    )


# -- outbound signing ---------------------------------------------------------


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
