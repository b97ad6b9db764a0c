# -*- test-case-name: tests.unit.test_buckets -*-
"""
Whether a bucket exists, and the operations that make and end buckets.

Configured buckets always exist. A bucket a pattern stands for either has a
backend bucket (or directory) of its own, which the store creates and
deletes, or is a prefix of a shared backend bucket: such a bucket exists
while a zero-byte marker object at its prefix does. Every operation on one
checks the marker (remembered for L{KNOWN_BUCKET_SECONDS}), so a bucket that
was never created, or was deleted, answers ``NoSuchBucket`` as S3 would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from multistore.bodies import BytesProducer
from multistore.headers import HeaderList
from multistore.model import (
    DispatchContext,
    ListRequest,
    ObjectWrite,
    ResolvedBucket,
    Response,
)
from multistore.operations.presence import bucket_marker, marker_exists
from multistore.s3.errors import S3Error

if TYPE_CHECKING:
    from multistore.operations.dispatcher import Dispatcher


def _bucket(context: DispatchContext) -> ResolvedBucket:
    assert context.bucket is not None
    return context.bucket


async def head_bucket(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    HeadBucket: 200 if the bucket's store (or marker) is there.
    """
    bucket = _bucket(context)
    store, _ = dispatcher.store(context)
    marker = bucket_marker(bucket)
    if marker is None:
        await store.head_bucket()
    elif not await marker_exists(store, marker):
        raise S3Error("NoSuchBucket", extra=(("BucketName", bucket.name),))
    return Response(200, HeaderList([("x-amz-bucket-region", dispatcher.region)]))


async def create_bucket(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    CreateBucket, for buckets a pattern stands for: a bucket (or directory)
    of the store's own, or a marker at the bucket's prefix of a shared one.
    """
    bucket = _bucket(context)
    if bucket.pattern is None:
        raise S3Error("BucketAlreadyOwnedByYou", extra=(("BucketName", bucket.name),))
    store, _ = dispatcher.store(context)
    marker = bucket_marker(bucket)
    if marker is None:
        await store.create_bucket()
    else:
        exists_not = HeaderList([("if-none-match", "*")])
        try:
            await store.put_object(ObjectWrite(marker, BytesProducer(b""), exists_not))
        except S3Error as error:
            if error.code != "PreconditionFailed":
                raise
            if await marker_exists(store, marker):
                raise S3Error(
                    "BucketAlreadyOwnedByYou", extra=(("BucketName", bucket.name),)
                ) from None
            # Only a directory left behind by deleted keys (SeaweedFS) stood
            # in the condition's way.
            await store.put_object(ObjectWrite(marker, BytesProducer(b"")))
    return Response(200, HeaderList([("location", f"/{bucket.name}")]))


async def delete_bucket(dispatcher: Dispatcher, context: DispatchContext) -> Response:
    """
    DeleteBucket, for buckets a pattern stands for; configured buckets stay.
    A shared-prefix bucket must hold nothing but its marker: no objects and
    no uploads in progress (which whoever creates the name next could
    otherwise complete).
    """
    bucket = _bucket(context)
    if bucket.pattern is None:
        raise S3Error(
            "MethodNotAllowed",
            "A bucket named in the configuration cannot be deleted through S3.",
        )
    store, _ = dispatcher.store(context)
    marker = bucket_marker(bucket)
    if marker is None:
        await store.delete_bucket()
        return Response(204)
    not_empty = S3Error("BucketNotEmpty", extra=(("BucketName", bucket.name),))
    page = await store.list_objects(ListRequest(prefix=marker, max_keys=2))
    keys = {o.key for o in page.objects}
    if keys - {marker} or page.common_prefixes:
        raise not_empty
    if marker not in keys:
        raise S3Error("NoSuchBucket", extra=(("BucketName", bucket.name),))
    uploads = await store.list_multipart_uploads(marker, None, None, None, 1)
    if uploads.uploads:
        raise not_empty
    await store.delete_object(marker, None)
    dispatcher.presence.forget(bucket)
    return Response(204)
