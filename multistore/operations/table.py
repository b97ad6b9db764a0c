# -*- test-case-name: tests.unit.test_gateway -*-
"""
The table from each S3 operation to its handler, and dispatch through it.

Handlers (in L{multistore.operations.reads}, C{writes}, C{multipart} and
C{buckets}) work in virtual key space and hand the bucket's store backend
keys: the backend prefix is applied on the way in and removed on the way out
(by L{multistore.s3.listing}), so no store can leak it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from multistore.model import DispatchContext, Response
from multistore.operations.buckets import create_bucket, delete_bucket, head_bucket
from multistore.operations.dispatcher import Dispatcher, Handler
from multistore.operations.multipart import (
    abort_multipart_upload,
    complete_multipart_upload,
    create_multipart_upload,
    list_multipart_uploads,
    list_parts,
)
from multistore.operations.reads import (
    get_bucket_location,
    get_object,
    list_buckets,
    list_objects,
)
from multistore.operations.writes import (
    copy_object,
    delete_object,
    delete_objects,
    put_object,
    upload_part,
    upload_part_copy,
)
from multistore.s3.errors import S3Error

#: Operations that decide for themselves whether a bucket exists.
BUCKET_LIFECYCLE: Final = frozenset(
    {"CreateBucket", "DeleteBucket", "HeadBucket", "ListBuckets", "GetBucketLocation"}
)


HANDLERS: Final[Mapping[str, Handler]] = {
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
    "ListBuckets": list_buckets,
    "GetBucketLocation": get_bucket_location,
    "HeadBucket": head_bucket,
    "CreateBucket": create_bucket,
    "DeleteBucket": delete_bucket,
    "ListObjects": list_objects,
    "ListObjectsV2": list_objects,
    "GetObject": get_object,
    "HeadObject": get_object,
}


async def dispatch(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    Carry out ``context.operation`` with its handler from L{HANDLERS}.

    :raise S3Error: on failure, including ``NotImplemented`` for
        operations this version does not carry out.
    """
    name = context.operation.name
    handler = HANDLERS.get(name)
    if handler is None:
        raise S3Error(
            "NotImplemented",
            f"{name} is not implemented by this gateway.",
        )
    if context.bucket is not None and name not in BUCKET_LIFECYCLE:
        store, _ = dispatcher.store(context)
        await dispatcher.presence.require(context.bucket, store)
    return await handler(dispatcher, context)
