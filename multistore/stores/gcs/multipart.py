# -*- test-case-name: tests.unit.test_gcs_store -*-
"""
Multipart uploads to Google Cloud Storage: the L{Multipart} mixin of
L{multistore.stores.gcs.store.GcsStore}.

Multipart uploads live in the bucket, so they survive restarts: a marker
object ``.multistore-uploads/uploads/ID`` carries the key and the object's
headers, each part is an object ``.multistore-uploads/parts/ID/NNNNN``, and
completion composes the parts (32 at a time, in rounds for more) into the
object and deletes them. Listings never show ``.multistore-uploads/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore

from multistore.bodies import BytesProducer
from multistore.headers import HeaderList
from multistore.model import (
    CompletedPart,
    CopyResult,
    ObjectResponse,
    ObjectWrite,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
)
from multistore.s3.dates import parse_iso8601
from multistore.s3.errors import S3Error
from multistore.stores.common import DELETE_CONCURRENCY, deferred
from multistore.stores.gcs.common import (
    _KEY_METADATA,
    _MARKERS,
    _PARTS,
    _RESOURCE_METADATA,
    ETAG_METADATA,
    GcsStoreBase,
    _page_items,
    _part_name,
    _size,
    _updated,
    etag_of,
    object_resource,
)

#: Most sources of one ``compose``.
COMPOSE_LIMIT: Final = 32


#: Most parts in an upload.
MAX_PARTS: Final = 10_000


#: Most listing pages read to find an upload's parts or the uploads.
MAX_SCAN_PAGES: Final = 100


def _multipart_etag(etags: Iterable[str]) -> str:
    """
    :return: the S3 multipart ETag (unquoted) of parts with these ETags.
    """
    digest = hashlib.md5(usedforsecurity=False)
    count = 0
    for etag in etags:
        opaque = etag.strip('"')
        try:
            digest.update(bytes.fromhex(opaque))
        except ValueError:
            digest.update(opaque.encode("utf-8"))
        count += 1
    return f"{digest.hexdigest()}-{count}"


def _same_etag(a: str, b: str) -> bool:
    return a.strip().strip('"') == b.strip().strip('"')


def _valid_upload_id(upload_id: str) -> bool:
    return 0 < len(upload_id) <= 64 and all(c in "0123456789abcdef" for c in upload_id)


class Multipart(GcsStoreBase):
    """
    The store's multipart uploads (see the module docstring).
    """

    __slots__ = ()

    @deferred
    async def create_multipart_upload(self, key: str, headers: HeaderList) -> str:
        """
        Start an upload: a marker object holding the key and the object's
        headers.

        :return: the upload id (32 hex digits).
        """
        upload_id = os.urandom(16).hex()
        resource = object_resource(headers)
        marker = {
            "name": _MARKERS + upload_id,
            "metadata": {
                _KEY_METADATA: key,
                _RESOURCE_METADATA: json.dumps(resource, sort_keys=True),
            },
        }
        boundary = "multistore-" + os.urandom(8).hex()
        document = (
            f"--{boundary}\r\n"
            "Content-Type: application/json; charset=UTF-8\r\n\r\n"
            f"{json.dumps(marker)}\r\n"
            f"--{boundary}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
            f"\r\n--{boundary}--\r\n"
        ).encode()
        response = await self._send(
            "POST",
            self.url(
                self._bucket_path() + "/o", [("uploadType", "multipart")], upload=True
            ),
            HeaderList([("content-type", f"multipart/related; boundary={boundary}")]),
            BytesProducer(document),
        )
        if response.status not in (200, 201):
            raise await self._error(response, {404: "NoSuchBucket"})
        response.body.discard()
        return upload_id

    async def _marker(self, key: str, upload_id: str) -> dict[str, Any]:
        """
        :return: the upload's marker resource.
        :raise S3Error: ``NoSuchUpload`` if there is no such upload of ``key``.
        """
        if not _valid_upload_id(upload_id):
            raise S3Error("NoSuchUpload")
        marker = await self._metadata(_MARKERS + upload_id)
        metadata = (marker or {}).get("metadata") or {}
        if marker is None or metadata.get(_KEY_METADATA) != key:
            raise S3Error("NoSuchUpload")
        return marker

    @deferred
    async def upload_part(
        self, write: ObjectWrite, upload_id: str, part_number: int
    ) -> ObjectResponse:
        """
        Store a part as an object of its own; its ETag is its MD5.

        :raise S3Error: ``MissingContentLength`` for a body of unknown
            length; ``NoSuchUpload``.
        """
        if not isinstance(write.body.length, int):
            raise S3Error("MissingContentLength")
        if not 1 <= part_number <= MAX_PARTS:
            raise S3Error("InvalidArgument", "Part number must be from 1 to 10000.")
        await self._marker(write.key, upload_id)
        resource = await self._store(
            _part_name(upload_id, part_number), {}, (), write.body
        )
        return ObjectResponse(200, HeaderList([("etag", etag_of(resource))]))

    async def _scan(
        self, prefix: str, start_offset: str | None = None
    ) -> list[dict[str, Any]]:
        """
        :return: every object under ``prefix`` (from ``start_offset``), in
            name order, over at most L{MAX_SCAN_PAGES} pages.
        """
        found: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(MAX_SCAN_PAGES):
            query = [("prefix", prefix), ("projection", "noAcl")]
            if start_offset:
                query.append(("startOffset", start_offset))
            if token:
                query.append(("pageToken", token))
            response = await self._send(
                "GET", self.url(self._bucket_path() + "/o", query)
            )
            if response.status != 200:
                raise await self._error(response, {404: "NoSuchBucket"})
            document = await self._document(response)
            found.extend(_page_items(document))
            next_token = document.get("nextPageToken")
            if not isinstance(next_token, str) or not next_token:
                return found
            token = next_token
        raise S3Error("ServiceUnavailable", "Too many objects to scan.")

    async def _parts(self, upload_id: str) -> dict[int, dict[str, Any]]:
        """
        :return: an upload's parts by number.
        """
        prefix = f"{_PARTS}{upload_id}/"
        parts = {}
        for item in await self._scan(prefix):
            suffix = item["name"][len(prefix) :]
            if len(suffix) == 5 and suffix.isdigit():
                parts[int(suffix)] = item
        return parts

    @deferred
    async def list_parts(
        self, key: str, upload_id: str, max_parts: int, part_number_marker: int
    ) -> PartsPage:
        await self._marker(key, upload_id)
        parts = await self._parts(upload_id)
        numbers = sorted(n for n in parts if n > part_number_marker)
        shown = numbers[:max_parts]
        truncated = len(numbers) > len(shown)
        return PartsPage(
            tuple(
                PartInfo(n, etag_of(parts[n]), _size(parts[n]), _updated(parts[n]))
                for n in shown
            ),
            truncated,
            shown[-1] if truncated and shown else None,
        )

    async def _compose(
        self,
        destination: str,
        sources: Sequence[str],
        resource: Mapping[str, Any],
        query: Sequence[tuple[str, str]],
    ) -> dict[str, Any]:
        response = await self._send_json(
            "POST",
            self.url(self._object_path(destination) + "/compose", query),
            {
                "sourceObjects": [{"name": name} for name in sources],
                "destination": dict(resource),
            },
        )
        if response.status != 200:
            raise await self._error(response, {404: "InvalidPart"})
        return await self._document(response)

    @deferred
    async def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart],
        headers: HeaderList,
    ) -> CopyResult:
        """
        Compose the parts into the object (in rounds of L{COMPOSE_LIMIT}),
        with the upload's headers and the multipart ETag, then delete the
        parts and the marker.
        """
        marker = await self._marker(key, upload_id)
        if not parts:
            raise S3Error("MalformedXML")
        numbers = [p.part_number for p in parts]
        if numbers != sorted(set(numbers)):
            raise S3Error("InvalidPartOrder")
        stored = await self._parts(upload_id)
        for index, part in enumerate(parts):
            found = stored.get(part.part_number)
            if found is None or not _same_etag(etag_of(found), part.etag):
                raise S3Error("InvalidPart")
            if index < len(parts) - 1 and _size(found) < self._min_part_size:
                raise S3Error("EntityTooSmall")
        query = await self._write_preconditions(key, headers)
        try:
            resource = json.loads(marker["metadata"].get(_RESOURCE_METADATA, "{}"))
        except ValueError:
            resource = {}
        etag = _multipart_etag(etag_of(stored[n]) for n in numbers)
        resource.setdefault("metadata", {})[ETAG_METADATA] = etag
        sources = [_part_name(upload_id, n) for n in numbers]
        intermediates: list[str] = []
        round_number = 0
        while len(sources) > COMPOSE_LIMIT:
            round_number += 1
            combined = []
            for start in range(0, len(sources), COMPOSE_LIMIT):
                name = f"{_PARTS}{upload_id}/c{round_number}-{start // COMPOSE_LIMIT}"
                await self._compose(
                    name, sources[start : start + COMPOSE_LIMIT], {}, ()
                )
                combined.append(name)
            intermediates.extend(combined)
            sources = combined
        result = await self._compose(key, sources, resource, query)
        await self._clean_up(
            [*(_part_name(upload_id, n) for n in stored), *intermediates],
            _MARKERS + upload_id,
        )
        return CopyResult(etag_of(result), _updated(result))

    async def _clean_up(self, names: Sequence[str], marker: str) -> None:
        """
        Delete an upload's part objects, then its marker; failures are
        logged (leftover parts are never listed).
        """
        semaphore = DeferredSemaphore(DELETE_CONCURRENCY)
        deletions = [
            semaphore.run(lambda n: Deferred.fromCoroutine(self._delete(n)), name)
            for name in names
        ]
        results = await DeferredList(deletions, consumeErrors=True)
        for ok, failure in results:
            if not ok:
                self.log.failure(
                    "could not delete a part in bucket {bucket}",
                    failure,
                    bucket=self.bucket.name,
                )
        try:
            await self._delete(marker)
        except S3Error:
            self.log.failure(
                "could not delete an upload marker in bucket {bucket}",
                bucket=self.bucket.name,
            )

    @deferred
    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """
        Delete an upload's parts and marker.
        """
        await self._marker(key, upload_id)
        parts = await self._scan(f"{_PARTS}{upload_id}/")
        await self._clean_up([item["name"] for item in parts], _MARKERS + upload_id)

    @deferred
    async def list_multipart_uploads(
        self,
        prefix: str,
        delimiter: str | None,
        key_marker: str | None,
        upload_id_marker: str | None,
        max_uploads: int,
    ) -> UploadsPage:
        """
        List the uploads' markers (every marker is read: this is meant for
        buckets with few uploads in progress at a time).
        """
        entries = []
        for item in await self._scan(_MARKERS):
            metadata = item.get("metadata") or {}
            key = metadata.get(_KEY_METADATA)
            upload_id = item["name"][len(_MARKERS) :]
            if isinstance(key, str) and key.startswith(prefix):
                created = item.get("timeCreated")
                initiated = (
                    parse_iso8601(created)
                    if isinstance(created, str)
                    else _updated(item)
                )
                entries.append(UploadInfo(key, upload_id, initiated))
        entries.sort(key=lambda u: (u.key, u.upload_id))
        if key_marker:
            entries = [
                u
                for u in entries
                if u.key > key_marker
                or (
                    u.key == key_marker
                    and upload_id_marker is not None
                    and u.upload_id > upload_id_marker
                )
            ]
        uploads: list[UploadInfo] = []
        common: list[str] = []
        truncated = False
        # The page's last entry, where the next page starts: an upload's key
        # and id, or a common prefix (a key marker after all of it).
        last: tuple[str, str | None] | None = None
        for upload in entries:
            at = upload.key.find(delimiter, len(prefix)) if delimiter else -1
            rolled = (
                upload.key[: at + len(delimiter)] if delimiter and at >= 0 else None
            )
            if rolled is not None and (
                rolled == key_marker or (common and common[-1] == rolled)
            ):
                continue
            if len(uploads) + len(common) >= max_uploads:
                truncated = True
                break
            if rolled is not None:
                common.append(rolled)
                last = (rolled, None)
            else:
                uploads.append(upload)
                last = (upload.key, upload.upload_id)
        if not truncated:
            last = None
        return UploadsPage(
            tuple(uploads),
            tuple(common),
            truncated,
            last[0] if last else None,
            last[1] if last else None,
        )
