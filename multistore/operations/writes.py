# -*- test-case-name: tests.unit.test_writes -*-
"""
The write operations: PutObject, CopyObject, DeleteObject, DeleteObjects,
UploadPart and UploadPartCopy.

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

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote_to_bytes

from twisted.web.iweb import IBodyProducer

from multistore.bodies import BodyAsProducer
from multistore.headers import HeaderList
from multistore.interfaces import IObjectStore
from multistore.model import (
    CopyResult,
    CopySource,
    DeleteOutcome,
    DispatchContext,
    ObjectWrite,
    Operation,
    ResolvedBucket,
    Response,
)
from multistore.operations.dispatcher import (
    XML_HEADER,
    allowed_keys,
    operation_key,
    upload_id_of,
)
from multistore.operations.verify import _trailer, verified_body, xml_body
from multistore.s3.documents import (
    copy_object_document,
    copy_part_document,
    delete_result_document,
)
from multistore.s3.errors import S3Error
from multistore.s3.keys import check_key, from_backend, to_backend
from multistore.s3.request import parse_part_number
from multistore.s3.xml import parse_delete_request
from multistore.stores.common import open_source
from multistore.stores.object_headers import (
    OBJECT_WRITE,
    STREAMED_COPY,
    allowed_headers,
    conditions,
)

if TYPE_CHECKING:
    from multistore.operations.dispatcher import Dispatcher


#: Headers a copy passes to the destination store as they are.
_COPY_HEADERS: Final = frozenset(
    {"x-amz-metadata-directive", "x-amz-tagging-directive"}
)


def write_headers(headers: HeaderList) -> HeaderList:
    """
    :return: the request headers that describe the object being written,
        with ``aws-chunked`` (framing, not content) taken out of
        ``Content-Encoding``.
    """
    return allowed_headers(headers, OBJECT_WRITE)


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
    key = operation_key(context)
    store, prefix = dispatcher.store(context)
    body, headers = await _payload(context, dispatcher.max_object_size)
    answer = await store.put_object(ObjectWrite(to_backend(prefix, key), body, headers))
    return Response(200, answer.headers)


async def upload_part(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    UploadPart: stream one part to the store.
    """
    key = operation_key(context)
    upload_id, part_number = _part(context.operation.params)
    store, prefix = dispatcher.store(context)
    body, headers = await _payload(context, dispatcher.max_object_size)
    answer = await store.upload_part(
        ObjectWrite(to_backend(prefix, key), body, headers), upload_id, part_number
    )
    return Response(200, answer.headers)


def _part(params: Mapping[str, str]) -> tuple[str, int]:
    return upload_id_of(params), parse_part_number(params.get("partNumber", ""))


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
    for prepare in context.bucket_preparers:
        source = await prepare(source)
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


async def _streamed_source(
    dispatcher: Dispatcher, source: CopySource
) -> tuple[BodyAsProducer, HeaderList]:
    """
    Open a copy's source on its own store, to stream it.

    :return: the body and the source object's headers.
    """
    return await open_source(dispatcher.stores.store_for(source.bucket), source)


async def copy_object(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    CopyObject: by the destination's store when it says it can
    (L{IObjectStore.can_copy}), else streamed through the gateway.
    """
    key = operation_key(context)
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
    if store.can_copy(source):
        # A failure here, a backend's own 501 included, is the client's.
        result = await store.copy_object(source, destination, headers)
    else:
        result = await _copy_through(
            dispatcher, store, source, destination, headers, replace
        )
    return Response(
        200,
        HeaderList([XML_HEADER, *result.headers]),
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
        kept = STREAMED_COPY.kept(source_headers).plus(conditions(headers))
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
    UploadPartCopy: a part copied from an object, by the destination's store
    when it says it can (L{IObjectStore.can_copy}), else streamed through
    the gateway.
    """
    key = operation_key(context)
    upload_id, part_number = _part(context.operation.params)
    store, prefix = dispatcher.store(context)
    _, source = await _copy_source(dispatcher, context)
    destination = to_backend(prefix, key)
    if store.can_copy(source):
        # A failure here, a backend's own 501 included, is the client's.
        result = await store.upload_part_copy(
            source, destination, upload_id, part_number
        )
    else:
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
        HeaderList([XML_HEADER, *result.headers]),
        copy_part_document(result.etag, result.last_modified),
    )


async def delete_object(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    DeleteObject.
    """
    key = operation_key(context)
    store, prefix = dispatcher.store(context)
    answer = await store.delete_object(
        to_backend(prefix, key), context.operation.params.get("versionId")
    )
    return Response(204, answer.headers)


async def delete_objects(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    DeleteObjects: each key authorized, and deleted, on its own.
    """
    bucket = context.bucket
    assert bucket is not None
    quiet, objects = parse_delete_request(await xml_body(dispatcher, context))
    store, prefix = dispatcher.store(context)
    outcomes: list[DeleteOutcome] = []
    named: list[tuple[str, str | None]] = []
    for key, version_id in objects:
        try:
            check_key(key)
        except S3Error as error:
            outcomes.append(DeleteOutcome(key, version_id, (error.code, error.message)))
        else:
            named.append((key, version_id))
    permitted = await allowed_keys(
        dispatcher, context, "delete_object", [key for key, _ in named]
    )
    allowed: list[tuple[str, str | None]] = []
    for key, version_id in named:
        if key in permitted:
            allowed.append((to_backend(prefix, key), version_id))
        else:
            outcomes.append(
                DeleteOutcome(key, version_id, ("AccessDenied", "Access Denied"))
            )
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
    return Response(
        200, HeaderList([XML_HEADER]), delete_result_document(outcomes, quiet)
    )
