# -*- test-case-name: tests.unit.test_sigv4 -*-
"""
The canonical encoding of AWS Signature Version 4, shared by verification
(L{multistore.auth.sigv4}), outbound signing (L{multistore.auth.signing})
and ``aws-chunked`` chunk signatures (L{multistore.s3.framing}).

Everything here is pure: no I/O, no clock, no Twisted. It follows the AWS
SigV4 specification as S3 applies it: the path is neither normalised nor
encoded twice. Header values, the raw path and the raw query are handled as
text holding one character per wire byte (the ISO-8859-1 decoding, as
L{multistore.headers.HeaderList} keeps them); text that cannot be
ISO-8859-1 is taken as UTF-8.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote, unquote_to_bytes

from multistore.headers import HeaderList
from multistore.model import CredentialScope

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


_AMZ_DATE = re.compile(r"\A[0-9]{8}T[0-9]{6}Z\Z")


_HEADER_SPACE = re.compile(r"[ \t]+")


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


def assemble_canonical_request(
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
    return assemble_canonical_request(
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
    return aware_utc(when).strftime("%Y%m%dT%H%M%SZ")


def format_server_time(when: datetime) -> str:
    """
    :param when: an aware time.
    :return: ``when`` in UTC as ``YYYY-MM-DDTHH:MM:SSZ``, the form S3 error
        documents use.
    """
    return aware_utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def aware_utc(when: datetime) -> datetime:
    """
    :param when: an aware time.
    :return: the same time in UTC.
    :raise ValueError: if ``when`` is naive (its zone would be a guess).
    """
    if when.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return when.astimezone(UTC)


#: A payload hash or checksum written as 64 hex digits.
HEX_SHA256 = re.compile(r"\A[0-9a-fA-F]{64}\Z")
