# -*- test-case-name: tests.unit.test_gcs_store -*-
"""
Reads from Google Cloud Storage: the L{Reads} mixin of
L{multistore.stores.gcs.store.GcsStore}, and the S3 headers of an object
resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multistore.headers import HeaderList
from multistore.model import ObjectRead, ObjectResponse
from multistore.s3.conditions import NotModified
from multistore.s3.dates import format_http_date
from multistore.s3.errors import S3Error
from multistore.s3.ranges import ByteRange, parse_range
from multistore.stores.common import check_read, deferred
from multistore.stores.gcs.common import (
    _CONTENT_FIELDS,
    _META,
    RESERVED_METADATA,
    GcsStoreBase,
    _generation,
    _header_of,
    _size,
    _updated,
    etag_of,
)


def response_headers(resource: Mapping[str, Any]) -> HeaderList:
    """
    :param resource: a GCS object resource.
    :return: the S3 headers of the whole object: length, content fields,
        ETag, Last-Modified and ``x-amz-meta-*``.
    """
    headers = [
        ("accept-ranges", "bytes"),
        ("content-length", str(_size(resource))),
        ("etag", etag_of(resource)),
        ("last-modified", format_http_date(_updated(resource))),
    ]
    for header, name in _CONTENT_FIELDS:
        value = resource.get(name)
        if isinstance(value, str) and value:
            headers.append((header, _header_of(value)))
    metadata = resource.get("metadata") or {}
    if isinstance(metadata, dict):
        for name, value in sorted(metadata.items()):
            if name not in RESERVED_METADATA and isinstance(value, str):
                headers.append((_META + name.lower(), _header_of(value)))
    return HeaderList(headers)


class Reads(GcsStoreBase):
    """
    The store's reads.
    """

    __slots__ = ()

    @deferred
    async def get_object(self, read: ObjectRead) -> ObjectResponse:
        """
        Read an object: its metadata first (conditions, range and headers are
        worked out from it), then its bytes, pinned to the generation whose
        metadata was read.
        """
        generation = _generation(read.version_id)
        resource = await self._metadata(read.key, generation)
        if resource is None:
            raise S3Error("NoSuchVersion" if generation else "NoSuchKey")
        headers = response_headers(resource)
        etag = etag_of(resource)
        try:
            check_read(read, etag, _updated(resource), self._now())
        except NotModified:
            return ObjectResponse(
                304,
                HeaderList(
                    (n, v) for n, v in headers if n in ("etag", "last-modified")
                ),
            )
        if read.part_number is not None and read.part_number != 1:
            raise S3Error("InvalidPartNumber")
        size = _size(resource)
        wanted: ByteRange | None
        if read.part_number == 1:
            # The only part is the whole object, sent as a range, as S3 does
            # (an empty object has no byte to put in one).
            wanted = ByteRange(0, size - 1, size) if size > 0 else None
        else:
            wanted = parse_range(read.range, size)
        if wanted is not None:
            headers = headers.with_("content-length", str(wanted.length)).with_(
                "content-range", wanted.content_range
            )
        status = 200 if wanted is None else 206
        if read.head:
            return ObjectResponse(status, headers)
        query = [("alt", "media")]
        if "generation" in resource:
            query.append(("generation", str(resource["generation"])))
        request_headers = HeaderList([("accept-encoding", "gzip")])
        if wanted is not None:
            request_headers = request_headers.with_(
                "range", f"bytes={wanted.start}-{wanted.end}"
            )
        response = await self._send(
            "GET", self.url(self._object_path(read.key), query), request_headers
        )
        if response.status not in (200, 206):
            raise await self._error(response)
        whole = wanted is None or (wanted.start == 0 and wanted.end == size - 1)
        if (response.status == 200 and not whole) or (
            response.status == 206 and wanted is None
        ):
            response.body.discard()
            self.log.warn(
                "backend of bucket {bucket} answered a read with {status}",
                bucket=self.bucket.name,
                status=response.status,
            )
            raise S3Error("ServiceUnavailable", "The bucket's backend store failed.")
        return ObjectResponse(status, headers, response.body)
