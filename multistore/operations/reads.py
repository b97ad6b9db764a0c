# -*- test-case-name: tests.unit.test_gateway -*-
"""
The read operations: ListBuckets, GetBucketLocation, ListObjects (V1 and
V2), GetObject and HeadObject.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from attrs import evolve

from multistore.headers import HeaderList
from multistore.model import DispatchContext, ListPage, ObjectRead, Response
from multistore.operations.dispatcher import XML_HEADER, Dispatcher, allowed_keys
from multistore.s3.documents import (
    list_buckets_document,
    list_objects_document,
    location_document,
)
from multistore.s3.errors import S3Error
from multistore.s3.keys import from_backend, to_backend
from multistore.s3.listing import (
    empty_result,
    list_result,
    parse_list_params,
    store_request,
)
from multistore.s3.request import parse_part_number
from multistore.s3.tokens import open_store_token, seal_store_token

#: ``response-*`` query parameters and the header each one overrides.
RESPONSE_OVERRIDES: Final = {
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
    "response-content-language": "content-language",
    "response-content-type": "content-type",
    "response-expires": "expires",
}


def _part_number(params: Mapping[str, str]) -> int | None:
    raw = params.get("partNumber")
    return None if raw is None else parse_part_number(raw)


def _check_header_value(header: str, value: str) -> None:
    """
    Refuse a ``response-*`` override that cannot be a header value: control
    characters would split the response, and HTTP/1.1 header bytes are
    ISO-8859-1.
    """
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        ok = False
    else:
        ok = not any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value)
    if not ok:
        raise S3Error(
            "InvalidArgument",
            f"The value of {header} cannot be sent as a header; "
            "percent-encode it (RFC 5987 for Content-Disposition).",
            extra=(("ArgumentName", f"response-{header}"),),
        )


async def list_buckets(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    ListBuckets: the buckets the caller may use.
    """
    entries = await dispatcher.buckets.list_buckets(context.identity)
    prefix = context.operation.params.get("prefix")
    if prefix:
        entries = [e for e in entries if e.name.startswith(prefix)]
    owner_id, owner_name = dispatcher.owner
    body = list_buckets_document(owner_id, owner_name, entries)
    return Response(200, HeaderList([XML_HEADER]), body)


async def get_bucket_location(
    dispatcher: Dispatcher, context: DispatchContext
) -> Response:
    """
    GetBucketLocation: the gateway's region.
    """
    return Response(200, HeaderList([XML_HEADER]), location_document(dispatcher.region))


async def list_objects(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    ListObjects and ListObjectsV2, in virtual key space.
    """
    operation = context.operation
    assert context.bucket is not None
    version = 2 if operation.name == "ListObjectsV2" else 1
    params = parse_list_params(operation.params, version)
    display_name = context.bucket.display_name
    if params.max_keys == 0:
        result = empty_result(params, display_name, dispatcher.owner)
    else:
        config = context.bucket.config
        store, backend_prefix = dispatcher.store(context)
        request = store_request(params, backend_prefix)
        if request.token is not None:
            request = evolve(
                request,
                token=open_store_token(config, request.token, dispatcher.token_secret),
            )
        page = await store.list_objects(request)
        if page.next_token is not None and version == 2:
            page = evolve(
                page,
                next_token=seal_store_token(
                    config, page.next_token, dispatcher.token_secret
                ),
            )
        result = list_result(
            params,
            page,
            backend_prefix,
            display_name,
            dispatcher.owner,
            allowed=await _listing_filter(dispatcher, context, page, backend_prefix),
        )
    return Response(200, HeaderList([XML_HEADER]), list_objects_document(result))


async def _listing_filter(
    dispatcher: Dispatcher,
    context: DispatchContext,
    page: ListPage,
    backend_prefix: str,
) -> Callable[[str], bool] | None:
    """
    What a listing may show the caller. Authorization checked the listing's
    ``prefix``, but a scope prefix without a trailing ``/`` covers ``data``
    and ``data/...``, not ``data-private/...``, which a listing of
    ``prefix=data`` also returns: each key (and common prefix) of the page is
    checked on its own, in one call to the registry, unless the bucket is
    public.
    """
    bucket = context.bucket
    assert bucket is not None
    if bucket.config.anonymous_access:
        return None
    names = [o.key for o in page.objects] + list(page.common_prefixes)
    virtual = [v for n in names if (v := from_backend(backend_prefix, n)) is not None]
    allowed = await allowed_keys(dispatcher, context, "list_bucket", virtual)
    return allowed.__contains__


async def get_object(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    GetObject and HeadObject, streamed from the store.
    """
    operation = context.operation
    headers = context.request.headers
    assert operation.key is not None
    overrides = {
        header: operation.params[param]
        for param, header in RESPONSE_OVERRIDES.items()
        if param in operation.params
    }
    if overrides and context.identity.anonymous:
        raise S3Error(
            "InvalidRequest",
            "Request specific response headers cannot be used for anonymous GET requests.",
        )
    for header, value in overrides.items():
        _check_header_value(header, value)
    part_number = _part_number(operation.params)
    if part_number is not None and "range" in headers:
        raise S3Error(
            "InvalidRequest",
            "Cannot specify both Range header and partNumber query parameter.",
        )
    store, backend_prefix = dispatcher.store(context)
    read = ObjectRead(
        key=to_backend(backend_prefix, operation.key),
        head=operation.name == "HeadObject",
        range=headers.get("range"),
        if_match=headers.get("if-match"),
        if_none_match=headers.get("if-none-match"),
        if_modified_since=headers.get("if-modified-since"),
        if_unmodified_since=headers.get("if-unmodified-since"),
        version_id=operation.params.get("versionId"),
        part_number=part_number,
    )
    answer = await store.get_object(read)
    out = answer.headers
    if answer.status in (200, 206):
        for header, value in overrides.items():
            out = out.with_(header, value)
    return Response(answer.status, out, answer.body)
