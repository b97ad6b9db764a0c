# -*- test-case-name: tests.unit.test_writes -*-
"""
The multipart upload operations that manage an upload as a whole:
CreateMultipartUpload, CompleteMultipartUpload, AbortMultipartUpload,
ListParts and ListMultipartUploads (its parts arrive through
L{multistore.operations.writes}).
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import evolve

from multistore.auth.canonical import uri_encode
from multistore.headers import HeaderList
from multistore.model import DispatchContext, Response
from multistore.operations.dispatcher import (
    XML_HEADER,
    Dispatcher,
    allowed_keys,
    operation_key,
    upload_id_of,
)
from multistore.operations.verify import decimal_param, xml_body
from multistore.operations.writes import write_headers
from multistore.s3.documents import (
    complete_multipart_document,
    initiate_multipart_document,
    list_parts_document,
    list_uploads_document,
)
from multistore.s3.errors import S3Error
from multistore.s3.keys import from_backend, to_backend
from multistore.s3.xml import parse_complete_request


async def create_multipart_upload(
    dispatcher: Dispatcher, context: DispatchContext
) -> Response:
    """
    CreateMultipartUpload.
    """
    key = operation_key(context)
    store, prefix = dispatcher.store(context)
    headers = write_headers(context.request.headers).without(
        "if-match", "if-none-match"
    )
    upload_id = await store.create_multipart_upload(to_backend(prefix, key), headers)
    assert context.bucket is not None
    return Response(
        200,
        HeaderList([XML_HEADER]),
        initiate_multipart_document(context.bucket.display_name, key, upload_id),
    )


async def complete_multipart_upload(
    dispatcher: Dispatcher, context: DispatchContext
) -> Response:
    """
    CompleteMultipartUpload.
    """
    key = operation_key(context)
    upload_id = upload_id_of(context.operation.params)
    parts = parse_complete_request(await xml_body(dispatcher, context))
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
        HeaderList([XML_HEADER, *result.headers]),
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
    quoted = uri_encode(key, keep_slash=True)
    if context.operation.virtual_host:
        return f"{scheme}://{request.host}/{quoted}"
    return f"{scheme}://{request.host}/{uri_encode(bucket.name, keep_slash=False)}/{quoted}"


async def abort_multipart_upload(
    dispatcher: Dispatcher, context: DispatchContext
) -> Response:
    """
    AbortMultipartUpload.
    """
    key = operation_key(context)
    store, prefix = dispatcher.store(context)
    await store.abort_multipart_upload(
        to_backend(prefix, key), upload_id_of(context.operation.params)
    )
    return Response(204)


def _count(params: Mapping[str, str], name: str, default: int, top: int) -> int:
    value = decimal_param(params.get(name), name)
    return default if value is None else min(value, top)


async def list_parts(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    ListParts.
    """
    key = operation_key(context)
    params = context.operation.params
    upload_id = upload_id_of(params)
    max_parts = _count(params, "max-parts", 1000, 1000)
    marker = _count(params, "part-number-marker", 0, 10000)
    store, prefix = dispatcher.store(context)
    page = await store.list_parts(to_backend(prefix, key), upload_id, max_parts, marker)
    assert context.bucket is not None
    return Response(
        200,
        HeaderList([XML_HEADER]),
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

    # Like a listing: each key and common prefix is checked on its own.
    names = [u.key for u in page.uploads] + list(page.common_prefixes)
    visible = (
        await allowed_keys(
            dispatcher,
            context,
            "create_multipart_upload",
            [v for n in names if (v := virtual(n)) is not None],
        )
    ).__contains__

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
        HeaderList([XML_HEADER]),
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
