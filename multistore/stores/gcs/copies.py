# -*- test-case-name: tests.unit.test_gcs_store -*-
"""
Copies within Google Cloud Storage: the L{Copies} mixin of
L{multistore.stores.gcs.store.GcsStore} (``rewrite``), and which sources
it can copy from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

from multistore.auth.canonical import uri_encode
from multistore.config import BucketConfig
from multistore.headers import HeaderList
from multistore.model import CopyResult, CopySource
from multistore.s3.conditions import NotModified
from multistore.s3.errors import S3Error
from multistore.stores.common import (
    cannot_copy,
    check_read,
    deferred,
    on_same_service,
    service_root,
    source_read,
)
from multistore.stores.gcs.common import (
    DEFAULT_ENDPOINT,
    GcsStoreBase,
    _generation,
    _part_name,
    _updated,
    etag_of,
    object_resource,
)

#: Most ``rewrite`` calls for one copy (GCS copies large objects in steps).
MAX_REWRITE_STEPS: Final = 1000


def _service(bucket: BucketConfig) -> tuple[str, str] | None:
    """
    :return: the GCS service a bucket is on and who the gateway is there;
        ``None`` for a bucket not on GCS.
    """
    if bucket.backend_type != "gcs":
        return None
    where = service_root(bucket.option("endpoint") or DEFAULT_ENDPOINT)
    if bucket.flag("skip_signature"):
        return where, ""
    key = bucket.option("service_account_key") or ""
    return where, hashlib.sha256(key.encode("utf-8")).hexdigest()


class Copies(GcsStoreBase):
    """
    The store's copies.
    """

    __slots__ = ()

    def can_copy(self, source: CopySource) -> bool:
        """
        Copies are made with ``rewrite`` from a bucket on the same GCS
        service, reached with the same credentials, and only of whole
        objects (``rewrite`` copies no range).
        """
        return source.range is None and on_same_service(
            _service, self.bucket, source.bucket, "bucket_name"
        )

    async def _source(self, source: CopySource) -> tuple[str, dict[str, Any]]:
        """
        Check that ``source`` can be copied here and that its conditions
        hold.

        :return: the source bucket's name and the source's resource.
        :raise S3Error: ``NotImplemented`` for a source L{can_copy} refuses;
            ``NoSuchKey``; ``PreconditionFailed``.
        """
        if not self.can_copy(source):
            raise cannot_copy()
        bucket_name = source.bucket.option("bucket_name") or ""
        path = "/b/" + uri_encode(bucket_name, keep_slash=False)
        path += "/o/" + uri_encode(source.key, keep_slash=False)
        query = [("projection", "noAcl")]
        generation = _generation(source.version_id)
        if generation is not None:
            query.append(("generation", generation))
        response = await self._send("GET", self.url(path, query))
        if response.status == 404:
            response.body.discard()
            raise S3Error("NoSuchVersion" if generation else "NoSuchKey")
        if response.status != 200:
            raise await self._error(response)
        resource = await self._document(response)
        try:
            check_read(
                source_read(source), etag_of(resource), _updated(resource), self._now()
            )
        except NotModified:
            raise S3Error("PreconditionFailed") from None
        return bucket_name, resource

    async def _rewrite(
        self,
        source_bucket: str,
        source: Mapping[str, Any],
        destination: str,
        resource: Mapping[str, Any] | None,
        query: Sequence[tuple[str, str]],
    ) -> dict[str, Any]:
        """
        Copy an object with ``rewrite``, step by step.

        :return: the new object's resource.
        """
        path = (
            "/b/"
            + uri_encode(source_bucket, keep_slash=False)
            + "/o/"
            + uri_encode(str(source["name"]), keep_slash=False)
            + "/rewriteTo"
            + self._object_path(destination)
        )
        base = [*query]
        if "generation" in source:
            base.append(("ifSourceGenerationMatch", str(source["generation"])))
        token: str | None = None
        for _ in range(MAX_REWRITE_STEPS):
            step = base + ([("rewriteToken", token)] if token else [])
            response = await self._send_json("POST", self.url(path, step), resource)
            if response.status != 200:
                raise await self._error(response)
            document = await self._document(response)
            if document.get("done") and isinstance(document.get("resource"), dict):
                result: dict[str, Any] = document["resource"]
                return result
            next_token = document.get("rewriteToken")
            if not isinstance(next_token, str) or not next_token:
                break
            token = next_token
        raise S3Error("ServiceUnavailable", "The bucket's backend store failed.")

    @deferred
    async def copy_object(
        self, source: CopySource, key: str, headers: HeaderList
    ) -> CopyResult:
        """
        Copy with ``rewrite`` when the source is on the same GCS service
        with the same credentials; metadata is copied, or replaced by the
        request's (``x-amz-metadata-directive: REPLACE``).

        :raise S3Error: ``NotImplemented`` for a source L{can_copy} refuses.
        """
        bucket_name, resource = await self._source(source)
        directive = (headers.get("x-amz-metadata-directive") or "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise S3Error("InvalidArgument", "Unknown metadata directive.")
        query = await self._write_preconditions(key, headers)
        replacement: dict[str, Any] | None = None
        if directive == "REPLACE":
            replacement = object_resource(headers)
            replacement.setdefault("metadata", {})
        result = await self._rewrite(bucket_name, resource, key, replacement, query)
        return CopyResult(etag_of(result), _updated(result))

    @deferred
    async def upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> CopyResult:
        """
        Copy a whole object into a part with ``rewrite``.

        :raise S3Error: ``NotImplemented`` for a source L{can_copy} refuses
            (a range, or a source elsewhere).
        """
        bucket_name, resource = await self._source(source)
        await self._marker(key, upload_id)
        result = await self._rewrite(
            bucket_name, resource, _part_name(upload_id, part_number), {}, ()
        )
        return CopyResult(etag_of(result), _updated(result))
