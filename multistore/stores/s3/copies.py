# -*- test-case-name: tests.unit.test_s3_store -*-
"""
The S3 store's copies: L{Copies}, which
L{multistore.stores.s3.store.S3Store} inherits (CopyObject and
UploadPartCopy, made on the server side within one S3 service).
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred

from multistore.auth.canonical import uri_encode
from multistore.config import BucketConfig
from multistore.headers import HeaderList
from multistore.model import CopyResult, CopySource
from multistore.stores.common import cannot_copy, on_same_service, service_root
from multistore.stores.object_headers import write_response_headers
from multistore.stores.s3.backend import (
    _COPY_CONDITIONS,
    _COPY_HEADERS,
    _PART_COPY_HEADERS,
    S3Backend,
    forwarded_headers,
)
from multistore.stores.s3.xml import parse_copy_result


def _service(bucket: BucketConfig) -> tuple[str, str] | None:
    """
    :return: what identifies the S3 service a bucket is on, and who the
        gateway is there: ``(endpoint, access key id)``; ``None`` for a
        bucket that is not on an S3 service.
    """
    if bucket.backend_type != "s3":
        return None
    endpoint = bucket.option("endpoint")
    if endpoint:
        where = service_root(endpoint)
    else:
        where = "aws:" + (bucket.option("region", "us-east-1") or "us-east-1")
    signed = (
        bucket.option("access_key_id")
        and bucket.option("secret_access_key")
        and not bucket.flag("skip_signature")
    )
    return where, (bucket.option("access_key_id") or "") if signed else ""


class Copies(S3Backend):
    """
    The copy operations of L{multistore.stores.s3.store.S3Store}.
    """

    __slots__ = ()

    def can_copy(self, source: CopySource) -> bool:
        """
        Copies are made on the server side from a bucket on the same S3
        service as this store, reached with the same credentials (a store
        cannot tell whether its credentials may read another's bucket).
        """
        return on_same_service(_service, self.bucket, source.bucket, "bucket_name")

    def _copy_source(self, source: CopySource) -> str:
        """
        :return: the ``x-amz-copy-source`` of ``source``.
        :raise S3Error: ``NotImplemented`` for a source L{can_copy} refuses.
        """
        if not self.can_copy(source):
            raise cannot_copy()
        value = f"/{source.bucket.option('bucket_name')}/"
        value += uri_encode(source.key, keep_slash=True)
        if source.version_id is not None:
            value += f"?versionId={uri_encode(source.version_id, keep_slash=False)}"
        return value

    async def _copy(
        self,
        source: CopySource,
        key: str,
        query: Sequence[tuple[str, str]],
        headers: HeaderList,
    ) -> CopyResult:
        copy_headers = HeaderList([("x-amz-copy-source", self._copy_source(source))])
        if source.range is not None:
            copy_headers = copy_headers.plus(
                [("x-amz-copy-source-range", source.range)]
            )
        copy_headers = copy_headers.plus(
            forwarded_headers(source.conditions, _COPY_CONDITIONS)
        ).plus(headers)
        response = await self._send("PUT", key, query, copy_headers)
        body = await self._result_document(response)
        etag, last_modified = parse_copy_result(body)
        return CopyResult(etag, last_modified, write_response_headers(response.headers))

    def copy_object(
        self, source: CopySource, key: str, headers: HeaderList
    ) -> Deferred[CopyResult]:
        """
        Copy on the server side, signed with this (the destination) bucket's
        credentials.
        """
        return Deferred.fromCoroutine(
            self._copy(source, key, (), forwarded_headers(headers, _COPY_HEADERS))
        )

    def upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> Deferred[CopyResult]:
        """
        Copy a part on the server side (with ``source.range`` as
        ``x-amz-copy-source-range``).
        """
        query = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        return Deferred.fromCoroutine(
            self._copy(
                source,
                key,
                query,
                forwarded_headers(source.conditions, _PART_COPY_HEADERS),
            )
        )
