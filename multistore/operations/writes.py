# -*- test-case-name: tests.unit.test_writes -*-
"""
The write operations: PutObject, CopyObject, deletes, and multipart uploads.

An upload's body reaches its store as it arrives. On the way it is decoded
(``aws-chunked`` framing) and verified (the signed payload hash, chunk and
trailer signatures, ``Content-MD5``, ``x-amz-checksum-*``): the verifying
bodies hold back the last bytes until everything matched, so a body that
fails verification never completes a write, and the client gets the error
AWS would send.

Like the read handlers, these work in virtual key space and hand stores
backend keys; XML answers name the virtual bucket and key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote_to_bytes

from attrs import evolve
from twisted.web.iweb import IBodyProducer

from multistore.auth import sigv4
from multistore.bodies import BodyAsProducer, BytesProducer, collect
from multistore.headers import HeaderList
from multistore.interfaces import IObjectStore
from multistore.model import (
    CopyResult,
    CopySource,
    DeleteOutcome,
    DispatchContext,
    ObjectRead,
    ObjectWrite,
    Operation,
    ResolvedBucket,
    Response,
)
from multistore.s3.checksums import (
    algorithm_of,
    check_checksum_value,
    check_content_md5,
    new_checksum,
)
from multistore.s3.errors import S3Error
from multistore.s3.framing import AWS_CHUNKED_MODES, AwsChunkedBody, VerifyingBody
from multistore.s3.keys import check_key, from_backend, to_backend
from multistore.s3.request import parse_part_number
from multistore.s3.xml import (
    complete_multipart_document,
    copy_object_document,
    copy_part_document,
    delete_result_document,
    initiate_multipart_document,
    list_parts_document,
    list_uploads_document,
    parse_complete_request,
    parse_delete_request,
)

if TYPE_CHECKING:
    from multistore.operations.table import Dispatcher

_XML: Final = ("content-type", "application/xml")

#: Request headers an object (or upload) keeps.
_WRITE_HEADERS: Final = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-md5",
        "content-type",
        "expires",
        "if-match",
        "if-none-match",
        "x-amz-sdk-checksum-algorithm",
        "x-amz-storage-class",
        "x-amz-tagging",
        "x-amz-website-redirect-location",
    }
)
_WRITE_PREFIXES: Final = (
    "x-amz-meta-",
    "x-amz-checksum-",
    "x-amz-server-side-encryption",
    "x-amz-object-lock-",
)

#: Headers a copy passes to the destination store as they are.
_COPY_HEADERS: Final = frozenset(
    {"x-amz-metadata-directive", "x-amz-tagging-directive"}
)

_HEX64: Final = re.compile(r"[0-9a-fA-F]{64}")

#: Object headers a streamed copy takes from the source when metadata is
#: copied.
_COPIED_FROM_SOURCE: Final = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-type",
        "expires",
        "x-amz-storage-class",
        "x-amz-website-redirect-location",
    }
)


def write_headers(headers: HeaderList) -> HeaderList:
    """
    :return: the request headers that describe the object being written,
        with ``aws-chunked`` (framing, not content) taken out of
        ``Content-Encoding``.
    """
    kept = []
    for name, value in headers:
        if name == "content-encoding":
            codings = [
                c.strip()
                for c in value.split(",")
                if c.strip().lower() != "aws-chunked"
            ]
            if codings:
                kept.append((name, ", ".join(codings)))
        elif name in _WRITE_HEADERS or name.startswith(_WRITE_PREFIXES):
            kept.append((name, value))
    return HeaderList(kept)


def _decimal(value: str | None, name: str) -> int | None:
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
    declared = _decimal(headers.get("content-length"), "Content-Length")
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
        decoded = _decimal(
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
    if content_sha is not None and content_sha != sigv4.UNSIGNED_PAYLOAD:
        if not _HEX64.fullmatch(content_sha):
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


async def _payload(
    context: DispatchContext, max_size: int
) -> tuple[IBodyProducer, HeaderList]:
    """
    An upload's verified body, and the headers the object keeps (a trailer's
    checksum is verified on the way and cannot go to a store ahead of the
    body, so it is not among them).
    """
    body = await verified_body(context, max_size)
    kept = write_headers(context.request.headers)
    trailer = _trailer(context.request.headers)
    if trailer:
        kept = kept.without(*trailer, "x-amz-sdk-checksum-algorithm")
    return body, kept


async def put_object(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    PutObject: stream the body to the store.
    """
    key = _key(context)
    store, prefix = dispatcher.store(context)
    body, headers = await _payload(context, dispatcher.max_object_size)
    answer = await store.put_object(ObjectWrite(to_backend(prefix, key), body, headers))
    return Response(200, answer.headers)


async def upload_part(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    UploadPart: stream one part to the store.
    """
    key = _key(context)
    upload_id, part_number = _part(context.operation.params)
    store, prefix = dispatcher.store(context)
    body, headers = await _payload(context, dispatcher.max_object_size)
    answer = await store.upload_part(
        ObjectWrite(to_backend(prefix, key), body, headers), upload_id, part_number
    )
    return Response(200, answer.headers)


def _key(context: DispatchContext) -> str:
    key = context.operation.key
    assert key is not None
    return key


def _upload_id(params: Mapping[str, str]) -> str:
    upload_id = params.get("uploadId", "")
    if not upload_id:
        raise S3Error(
            "InvalidArgument",
            "uploadId must not be empty.",
            extra=(("ArgumentName", "uploadId"),),
        )
    return upload_id


def _part(params: Mapping[str, str]) -> tuple[str, int]:
    return _upload_id(params), parse_part_number(params.get("partNumber", ""))


def parse_copy_source(value: str) -> tuple[str, str, str | None]:
    """
    Read ``x-amz-copy-source``: ``[/]bucket/key[?versionId=id]``, the key
    percent-encoded.

    :return: the bucket, the key and the version id.
    :raise S3Error: ``InvalidArgument`` when it names no bucket or key.
    """
    path, _, query = value.partition("?")
    version_id = None
    if query:
        for piece in query.split("&"):
            name, _, version = piece.partition("=")
            if name == "versionId" and version:
                version_id = _unquote(version)
    path = path.lstrip("/")
    bucket, slash, key = path.partition("/")
    if not bucket or not slash or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            extra=(
                ("ArgumentName", "x-amz-copy-source"),
                ("ArgumentValue", value[:256]),
            ),
        )
    return _unquote(bucket), _unquote(key), version_id


def _unquote(value: str) -> str:
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error(
            "InvalidArgument", "x-amz-copy-source is not valid UTF-8."
        ) from None


async def _copy_source(
    dispatcher: Dispatcher, context: DispatchContext
) -> tuple[ResolvedBucket, CopySource]:
    """
    The source of a copy, authorized as a read of it.
    """
    headers = context.request.headers
    raw = headers.get("x-amz-copy-source") or ""
    bucket_name, key, version_id = parse_copy_source(raw)
    check_key(key)
    read = Operation(
        name="GetObject",
        action="get_object_version" if version_id else "get_object",
        bucket=bucket_name,
        key=key,
    )
    source = await dispatcher.buckets.resolve(bucket_name, context.identity, read)
    await dispatcher.presence.require(
        source, dispatcher.stores.store_for(source.config)
    )
    conditions = HeaderList(
        (name, value)
        for name, value in headers
        if name.startswith("x-amz-copy-source-if-")
    )
    return source, CopySource(
        bucket=source.config,
        key=to_backend(source.config.backend_prefix, key),
        version_id=version_id,
        conditions=conditions,
        range=headers.get("x-amz-copy-source-range")
        if context.operation.name == "UploadPartCopy"
        else None,
    )


def _copy_headers(context: DispatchContext) -> HeaderList:
    headers = context.request.headers
    directive = (headers.get("x-amz-metadata-directive") or "COPY").upper()
    if directive not in {"COPY", "REPLACE"}:
        raise S3Error(
            "InvalidArgument",
            "Unknown metadata directive.",
            extra=(("ArgumentName", "x-amz-metadata-directive"),),
        )
    passed = HeaderList((n, v) for n, v in headers if n in _COPY_HEADERS)
    return passed.plus(write_headers(headers))


def _read_of(source: CopySource) -> ObjectRead:
    """
    The read that streams a copy's source, with the copy's conditions.
    """
    conditions = source.conditions
    return ObjectRead(
        key=source.key,
        range=source.range,
        if_match=conditions.get("x-amz-copy-source-if-match"),
        if_none_match=conditions.get("x-amz-copy-source-if-none-match"),
        if_modified_since=conditions.get("x-amz-copy-source-if-modified-since"),
        if_unmodified_since=conditions.get("x-amz-copy-source-if-unmodified-since"),
        version_id=source.version_id,
    )


async def _streamed_source(
    dispatcher: Dispatcher, source: CopySource
) -> tuple[BodyAsProducer, HeaderList]:
    """
    Open a copy's source on another service, to stream it.

    :return: the body and the source object's headers.
    """
    answer = await dispatcher.stores.store_for(source.bucket).get_object(
        _read_of(source)
    )
    if answer.status == 304 or answer.body is None:
        if answer.body is not None:
            answer.body.discard()
        raise S3Error(
            "PreconditionFailed",
            extra=(("Condition", "x-amz-copy-source-If-None-Match"),),
        )
    return BodyAsProducer(answer.body), answer.headers


async def copy_object(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    CopyObject: on the store's service when it can, else streamed through.
    """
    key = _key(context)
    store, prefix = dispatcher.store(context)
    source_bucket, source = await _copy_source(dispatcher, context)
    headers = _copy_headers(context)
    replace = (headers.get("x-amz-metadata-directive") or "COPY").upper() == "REPLACE"
    assert context.bucket is not None
    changes = {
        "x-amz-storage-class",
        "x-amz-website-redirect-location",
        "x-amz-server-side-encryption",
        "x-amz-tagging-directive",
    } & context.request.headers.names()
    if (
        not replace
        and not changes
        and source_bucket.name == context.bucket.name
        and source.key == to_backend(prefix, key)
        and source.version_id is None
    ):
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to "
            "itself without changing the object's metadata, storage class, website "
            "redirect location or encryption attributes.",
        )
    destination = to_backend(prefix, key)
    try:
        result = await store.copy_object(source, destination, headers)
    except S3Error as error:
        if error.code != "NotImplemented":
            raise
        result = await _copy_through(
            dispatcher, store, source, destination, headers, replace
        )
    return Response(
        200,
        HeaderList([_XML, *result.headers]),
        copy_object_document(result.etag, result.last_modified),
    )


async def _copy_through(
    dispatcher: Dispatcher,
    store: IObjectStore,
    source: CopySource,
    destination: str,
    headers: HeaderList,
    replace: bool,
) -> CopyResult:
    """
    Copy between services: stream the source into a write. The write keeps
    the request's conditions; the request's own digests describe no body,
    so they are not passed on.
    """
    body, source_headers = await _streamed_source(dispatcher, source)
    if replace:
        kept = write_headers(headers)
    else:
        kept = HeaderList(
            (n, v)
            for n, v in source_headers
            if n in _COPIED_FROM_SOURCE or n.startswith("x-amz-meta-")
        ).plus((n, v) for n, v in headers if n in {"if-match", "if-none-match"})
    kept = HeaderList(
        (n, v)
        for n, v in kept
        if n != "content-md5"
        and not n.startswith("x-amz-checksum-")
        and n != "x-amz-sdk-checksum-algorithm"
    )
    try:
        answer = await store.put_object(ObjectWrite(destination, body, kept))
    finally:
        body.release()
    return CopyResult(
        etag=answer.headers.get("etag") or "",
        last_modified=datetime.now(UTC),
        headers=answer.headers.without("etag", "content-length"),
    )


async def upload_part_copy(
    dispatcher: Dispatcher, context: DispatchContext
) -> Response:
    """
    UploadPartCopy: a part copied from an object.
    """
    key = _key(context)
    upload_id, part_number = _part(context.operation.params)
    store, prefix = dispatcher.store(context)
    _, source = await _copy_source(dispatcher, context)
    destination = to_backend(prefix, key)
    try:
        result = await store.upload_part_copy(
            source, destination, upload_id, part_number
        )
    except S3Error as error:
        if error.code != "NotImplemented":
            raise
        body, _ = await _streamed_source(dispatcher, source)
        try:
            answer = await store.upload_part(
                ObjectWrite(destination, body), upload_id, part_number
            )
        finally:
            body.release()
        result = CopyResult(
            etag=answer.headers.get("etag") or "", last_modified=datetime.now(UTC)
        )
    return Response(
        200,
        HeaderList([_XML, *result.headers]),
        copy_part_document(result.etag, result.last_modified),
    )


async def delete_object(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    DeleteObject.
    """
    key = _key(context)
    store, prefix = dispatcher.store(context)
    answer = await store.delete_object(
        to_backend(prefix, key), context.operation.params.get("versionId")
    )
    return Response(204, answer.headers)


async def _xml_body(dispatcher: Dispatcher, context: DispatchContext) -> bytes:
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


async def delete_objects(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    DeleteObjects: each key authorized, and deleted, on its own.
    """
    bucket = context.bucket
    assert bucket is not None
    quiet, objects = parse_delete_request(await _xml_body(dispatcher, context))
    store, prefix = dispatcher.store(context)
    outcomes: list[DeleteOutcome] = []
    allowed: list[tuple[str, str | None]] = []
    for key, version_id in objects:
        try:
            check_key(key)
        except S3Error as error:
            outcomes.append(DeleteOutcome(key, version_id, (error.code, error.message)))
            continue
        action = "delete_object"
        if not dispatcher.buckets.authorize_key(bucket, context.identity, action, key):
            outcomes.append(
                DeleteOutcome(key, version_id, ("AccessDenied", "Access Denied"))
            )
            continue
        allowed.append((to_backend(prefix, key), version_id))
    if allowed:
        for outcome in await store.delete_objects(allowed):
            virtual = from_backend(prefix, outcome.key)
            if virtual is not None:
                outcomes.append(
                    DeleteOutcome(
                        virtual,
                        outcome.version_id,
                        outcome.error,
                        outcome.delete_marker,
                    )
                )
    return Response(200, HeaderList([_XML]), delete_result_document(outcomes, quiet))


async def create_multipart_upload(
    dispatcher: Dispatcher, context: DispatchContext
) -> Response:
    """
    CreateMultipartUpload.
    """
    key = _key(context)
    store, prefix = dispatcher.store(context)
    headers = write_headers(context.request.headers).without(
        "if-match", "if-none-match"
    )
    upload_id = await store.create_multipart_upload(to_backend(prefix, key), headers)
    assert context.bucket is not None
    return Response(
        200,
        HeaderList([_XML]),
        initiate_multipart_document(context.bucket.display_name, key, upload_id),
    )


async def complete_multipart_upload(
    dispatcher: Dispatcher, context: DispatchContext
) -> Response:
    """
    CompleteMultipartUpload.
    """
    key = _key(context)
    upload_id = _upload_id(context.operation.params)
    parts = parse_complete_request(await _xml_body(dispatcher, context))
    store, prefix = dispatcher.store(context)
    conditions = HeaderList(
        (n, v) for n, v in context.request.headers if n in {"if-match", "if-none-match"}
    )
    result = await store.complete_multipart_upload(
        to_backend(prefix, key), upload_id, parts, conditions
    )
    assert context.bucket is not None
    checksums = [
        (name[len("x-amz-checksum-") :].upper(), value)
        for name, value in result.headers
        if name.startswith("x-amz-checksum-") and name != "x-amz-checksum-type"
    ]
    return Response(
        200,
        HeaderList([_XML, *result.headers]),
        complete_multipart_document(
            _location(context, key),
            context.bucket.display_name,
            key,
            result.etag,
            checksums,
        ),
    )


def _location(context: DispatchContext, key: str) -> str:
    request = context.request
    scheme = "https" if request.secure else "http"
    bucket = context.bucket
    assert bucket is not None
    quoted = sigv4.uri_encode(key, keep_slash=True)
    if context.operation.virtual_host:
        return f"{scheme}://{request.host}/{quoted}"
    return f"{scheme}://{request.host}/{sigv4.uri_encode(bucket.name, keep_slash=False)}/{quoted}"


async def abort_multipart_upload(
    dispatcher: Dispatcher, context: DispatchContext
) -> Response:
    """
    AbortMultipartUpload.
    """
    key = _key(context)
    store, prefix = dispatcher.store(context)
    await store.abort_multipart_upload(
        to_backend(prefix, key), _upload_id(context.operation.params)
    )
    return Response(204)


def _count(params: Mapping[str, str], name: str, default: int, top: int) -> int:
    value = _decimal(params.get(name), name)
    return default if value is None else min(value, top)


async def list_parts(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    ListParts.
    """
    key = _key(context)
    params = context.operation.params
    upload_id = _upload_id(params)
    max_parts = _count(params, "max-parts", 1000, 1000)
    marker = _count(params, "part-number-marker", 0, 10000)
    store, prefix = dispatcher.store(context)
    page = await store.list_parts(to_backend(prefix, key), upload_id, max_parts, marker)
    assert context.bucket is not None
    return Response(
        200,
        HeaderList([_XML]),
        list_parts_document(
            context.bucket.display_name,
            key,
            upload_id,
            page,
            max_parts,
            marker,
            dispatcher.owner,
        ),
    )


async def list_multipart_uploads(
    dispatcher: Dispatcher, context: DispatchContext
) -> Response:
    """
    ListMultipartUploads, in virtual key space.
    """
    params = context.operation.params
    prefix = params.get("prefix", "")
    delimiter = params.get("delimiter") or None
    key_marker = params.get("key-marker") or None
    upload_id_marker = params.get("upload-id-marker") or None
    max_uploads = _count(params, "max-uploads", 1000, 1000)
    encoding = params.get("encoding-type")
    if encoding is not None and encoding != "url":
        raise S3Error(
            "InvalidArgument",
            "Invalid Encoding Method specified in Request",
            extra=(("ArgumentName", "encoding-type"),),
        )
    store, backend_prefix = dispatcher.store(context)
    page = await store.list_multipart_uploads(
        to_backend(backend_prefix, prefix),
        delimiter,
        None if key_marker is None else to_backend(backend_prefix, key_marker),
        upload_id_marker,
        max_uploads,
    )

    bucket = context.bucket
    assert bucket is not None

    def virtual(key: str | None) -> str | None:
        return None if key is None else from_backend(backend_prefix, key)

    def visible(key: str) -> bool:
        # Like a listing: each key and common prefix is checked on its own.
        return dispatcher.buckets.authorize_key(
            bucket, context.identity, "create_multipart_upload", key
        )

    uploads = tuple(
        evolve(u, key=v)
        for u in page.uploads
        if (v := virtual(u.key)) is not None and visible(v)
    )
    next_key_marker = virtual(page.next_key_marker)
    if page.truncated and next_key_marker is None and page.uploads:
        # The store's marker lies outside the prefix: resume after the last
        # upload it returned.
        next_key_marker = virtual(page.uploads[-1].key)
    page = evolve(
        page,
        uploads=uploads,
        common_prefixes=tuple(
            v
            for p in page.common_prefixes
            if (v := virtual(p)) is not None and visible(v)
        ),
        next_key_marker=next_key_marker,
    )
    assert context.bucket is not None
    return Response(
        200,
        HeaderList([_XML]),
        list_uploads_document(
            context.bucket.display_name,
            page,
            prefix,
            delimiter,
            key_marker,
            upload_id_marker,
            max_uploads,
            encoding,
            dispatcher.owner,
        ),
    )


WRITE_HANDLERS: Final = {
    "PutObject": put_object,
    "CopyObject": copy_object,
    "DeleteObject": delete_object,
    "DeleteObjects": delete_objects,
    "CreateMultipartUpload": create_multipart_upload,
    "UploadPart": upload_part,
    "UploadPartCopy": upload_part_copy,
    "CompleteMultipartUpload": complete_multipart_upload,
    "AbortMultipartUpload": abort_multipart_upload,
    "ListParts": list_parts,
    "ListMultipartUploads": list_multipart_uploads,
}
