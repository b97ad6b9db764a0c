# -*- test-case-name: tests.unit.test_s3_store -*-
"""
The S3 store's multipart-upload operations: L{MultipartUploads}, which
L{multistore.stores.s3.store.S3Store} inherits (parts, creating,
completing, aborting and listing uploads).
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import evolve
from twisted.internet.defer import Deferred

from multistore.bodies import read_body
from multistore.headers import HeaderList
from multistore.model import (
    CompletedPart,
    CopyResult,
    ObjectResponse,
    ObjectWrite,
    PartsPage,
    UploadsPage,
)
from multistore.stores.common import deferred
from multistore.stores.object_headers import write_response_headers
from multistore.stores.s3.backend import (
    _COMPLETE_HEADERS,
    _CREATE_UPLOAD_HEADERS,
    _PART_HEADERS,
    MAX_LISTING,
    MAX_RESULT_DOCUMENT,
    S3Backend,
    forwarded_headers,
)
from multistore.stores.s3.xml import (
    complete_request_document,
    parse_complete_result,
    parse_initiate_result,
    parse_list_parts,
    parse_list_uploads,
)


def _within(page: UploadsPage, prefix: str, delimiter: str | None) -> UploadsPage:
    """
    Hold a store's page of uploads to what was asked, for stores that
    ignore ``prefix`` or ``delimiter`` (moto ignores both, SeaweedFS the
    delimiter): uploads outside ``prefix`` are dropped, and uploads whose
    key holds ``delimiter`` after it are rolled up into common prefixes.
    A page from a store that honoured both is returned unchanged.
    """
    uploads = []
    common = [p for p in page.common_prefixes if p.startswith(prefix)]
    for upload in page.uploads:
        if not upload.key.startswith(prefix):
            continue
        at = upload.key.find(delimiter, len(prefix)) if delimiter else -1
        if delimiter and at >= 0:
            rolled = upload.key[: at + len(delimiter)]
            if rolled not in common:
                common.append(rolled)
            continue
        uploads.append(upload)
    if len(uploads) == len(page.uploads) and len(common) == len(page.common_prefixes):
        return page
    return evolve(page, uploads=tuple(uploads), common_prefixes=tuple(sorted(common)))


class MultipartUploads(S3Backend):
    """
    The multipart-upload operations of L{multistore.stores.s3.store.S3Store}.
    """

    __slots__ = ()

    def upload_part(
        self, write: ObjectWrite, upload_id: str, part_number: int
    ) -> Deferred[ObjectResponse]:
        """
        PUT one part, streaming its body as L{put_object} does.

        :raise S3Error: ``MissingContentLength`` for a part of unknown length
            (as S3 answers), without reading it; the body's own failure if it
            fails.
        """
        query = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        return Deferred.fromCoroutine(
            self._upload(write, query, _PART_HEADERS, {404: "NoSuchUpload"})
        )

    @deferred
    async def create_multipart_upload(self, key: str, headers: HeaderList) -> str:
        response = await self._send(
            "POST",
            key,
            [("uploads", "")],
            forwarded_headers(headers, _CREATE_UPLOAD_HEADERS),
        )
        if response.status != 200:
            raise await self._error(response, statuses={404: "NoSuchBucket"})
        return parse_initiate_result(
            await read_body(response.body, MAX_RESULT_DOCUMENT)
        )

    @deferred
    async def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart],
        headers: HeaderList,
    ) -> CopyResult:
        """
        Complete an upload; its time is the gateway's clock (S3 does not say).
        """
        response = await self._send_xml(
            "POST",
            key,
            [("uploadId", upload_id)],
            complete_request_document(parts),
            forwarded_headers(headers, _COMPLETE_HEADERS),
        )
        body = await self._result_document(response, {404: "NoSuchUpload"})
        return CopyResult(
            parse_complete_result(body),
            self._now(),
            write_response_headers(response.headers),
        )

    @deferred
    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        response = await self._send("DELETE", key, [("uploadId", upload_id)])
        if response.status not in (200, 204):
            raise await self._error(response, statuses={404: "NoSuchUpload"})
        response.body.discard()

    @deferred
    async def list_parts(
        self, key: str, upload_id: str, max_parts: int, part_number_marker: int
    ) -> PartsPage:
        query = [("max-parts", str(max_parts)), ("uploadId", upload_id)]
        if part_number_marker:
            query.append(("part-number-marker", str(part_number_marker)))
        response = await self._send("GET", key, sorted(query))
        if response.status != 200:
            raise await self._error(response, statuses={404: "NoSuchUpload"})
        return parse_list_parts(await read_body(response.body, MAX_LISTING))

    @deferred
    async def list_multipart_uploads(
        self,
        prefix: str,
        delimiter: str | None,
        key_marker: str | None,
        upload_id_marker: str | None,
        max_uploads: int,
    ) -> UploadsPage:
        # Not encoding-type=url: SeaweedFS answers that it has encoded the
        # keys and sends them as they are, so "a+b" would read as "a b".
        query = [("max-uploads", str(max_uploads)), ("uploads", "")]
        for name, value in (
            ("prefix", prefix),
            ("delimiter", delimiter),
            ("key-marker", key_marker),
            ("upload-id-marker", upload_id_marker),
        ):
            if value:
                query.append((name, value))
        response = await self._send("GET", None, sorted(query))
        if response.status != 200:
            raise await self._error(response, statuses={404: "NoSuchBucket"})
        page = parse_list_uploads(await read_body(response.body, MAX_LISTING))
        return _within(page, prefix, delimiter)
