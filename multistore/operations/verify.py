# -*- test-case-name: tests.unit.test_writes -*-
"""
Upload bodies verified as they stream: the signed payload hash,
``aws-chunked`` framing and chunk signatures, ``Content-MD5``,
``x-amz-checksum-*``, the length and the size limits. A body that does not
verify fails before its last byte reaches a store.
"""

from __future__ import annotations

from twisted.web.iweb import IBodyProducer

from multistore.auth.canonical import HEX_SHA256, UNSIGNED_PAYLOAD
from multistore.bodies import BytesProducer, collect
from multistore.headers import HeaderList
from multistore.model import DispatchContext
from multistore.operations.dispatcher import Dispatcher
from multistore.s3.checksums import (
    algorithm_of,
    check_checksum_value,
    check_content_md5,
    new_checksum,
)
from multistore.s3.errors import S3Error
from multistore.s3.framing import AWS_CHUNKED_MODES, AwsChunkedBody, VerifyingBody


def decimal_param(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 20):
        raise S3Error(
            "InvalidArgument",
            f"{name} must be a non-negative integer.",
            extra=(("ArgumentName", name), ("ArgumentValue", value[:64])),
        )
    return int(value)


def _trailer(headers: HeaderList) -> list[str]:
    """
    :return: the header names an ``aws-chunked`` body announces in its
        trailer.
    """
    return [
        t.strip().lower()
        for t in (headers.get("x-amz-trailer") or "").split(",")
        if t.strip()
    ]


def _checksum_header(headers: HeaderList) -> tuple[str, str] | None:
    """
    :return: the ``x-amz-checksum-*`` header as ``(algorithm, value)``.
    :raise S3Error: for an unknown algorithm, a malformed value, or several.
    """
    checksum = None
    for name, value in headers:
        if not name.startswith("x-amz-checksum-") or name == "x-amz-checksum-type":
            continue
        algorithm = algorithm_of(name)
        if algorithm is None:
            raise S3Error("InvalidRequest", f"{name} is not a checksum S3 knows.")
        if checksum is not None:
            raise S3Error(
                "InvalidRequest", "Expecting a single x-amz-checksum- header."
            )
        check_checksum_value(algorithm, value)
        checksum = (algorithm, value)
    return checksum


def _computable(algorithm: str) -> None:
    """
    Refuse a checksum this gateway cannot compute (its library is missing):
    taking it unverified would store a claim nobody checked.
    """
    if new_checksum(algorithm) is None:
        raise S3Error(
            "InvalidRequest",
            f"This gateway cannot verify {algorithm} checksums; use CRC32, SHA1 or "
            "SHA256.",
        )


async def verified_body(context: DispatchContext, max_size: int) -> IBodyProducer:
    """
    The request body, decoded (``aws-chunked``) and verified as it streams:
    the signed payload hash or chunk and trailer signatures, trailing
    checksums, ``Content-MD5`` and ``x-amz-checksum-*``, its length, and at
    most ``max_size`` bytes.

    :raise S3Error: for a body that is too large or announced wrongly.
    """
    request = context.request
    headers = request.headers
    body: IBodyProducer = request.body or BytesProducer(b"")
    declared = decimal_param(headers.get("content-length"), "Content-Length")
    content_sha = headers.get("x-amz-content-sha256")
    checksum = _checksum_header(headers)
    for algorithm in [checksum[0]] if checksum else []:
        _computable(algorithm)
    for name in _trailer(headers):
        trailing = algorithm_of(name)
        if trailing is not None:
            _computable(trailing)
    md5 = headers.get("content-md5")
    if md5 is not None:
        check_content_md5(md5)

    if content_sha is not None and content_sha.startswith("STREAMING-"):
        if content_sha not in AWS_CHUNKED_MODES:
            raise S3Error(
                "InvalidArgument",
                f"x-amz-content-sha256 {content_sha[:64]} is not a streaming mode S3 knows.",
                extra=(("ArgumentName", "x-amz-content-sha256"),),
            )
        decoded = decimal_param(
            headers.get("x-amz-decoded-content-length"), "x-amz-decoded-content-length"
        )
        if decoded is None:
            raise S3Error(
                "MissingContentLength",
                "You must provide the x-amz-decoded-content-length header.",
            )
        if decoded > max_size:
            raise S3Error("EntityTooLarge", extra=(("MaxSizeAllowed", str(max_size)),))
        signed = not content_sha.startswith("STREAMING-UNSIGNED")
        if signed and context.signature is None:
            raise S3Error(
                "InvalidRequest",
                f"{content_sha} needs a SigV4 Authorization header.",
            )
        body = AwsChunkedBody(
            body,
            decoded_length=decoded,
            mode=content_sha,
            signature=context.signature if signed else None,
            trailer_names=_trailer(headers),
        )
        if decoded == 0:
            # Nothing can be held back of an empty payload: verify it all
            # before any store is asked to write it.
            await collect(body, 0)
            body = BytesProducer(b"")
        declared = decoded
        content_sha = None
    elif declared is not None and declared > max_size:
        raise S3Error("EntityTooLarge", extra=(("MaxSizeAllowed", str(max_size)),))

    sha_hex = None
    if content_sha is not None and content_sha != UNSIGNED_PAYLOAD:
        if not HEX_SHA256.fullmatch(content_sha):
            raise S3Error(
                "InvalidArgument",
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a "
                "SHA-256 in hexadecimal",
                extra=(("ArgumentName", "x-amz-content-sha256"),),
            )
        sha_hex = content_sha.lower()
    return VerifyingBody(
        body,
        sha256_hex=sha_hex,
        md5_b64=md5,
        checksum=checksum,
        expected_length=declared,
        max_length=max_size,
    )


async def xml_body(dispatcher: Dispatcher, context: DispatchContext) -> bytes:
    """
    Read a small XML request body, verified like an upload's.
    """
    limit = dispatcher.max_xml_body_size
    try:
        body = await verified_body(context, limit)
        return await collect(body, limit)
    except S3Error as error:
        if error.code != "EntityTooLarge":
            raise
        raise S3Error(
            "MaxMessageLengthExceeded",
            f"Your request was too big: XML bodies may have {limit} bytes at most.",
        ) from None
