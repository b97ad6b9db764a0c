# -*- test-case-name: tests.unit.test_testing -*-
"""
The multipart uploads of a L{multistore.testing.MemoryStore}: its other
half, which needs what the store provides.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.web.iweb import IBodyProducer

from multistore.headers import HeaderList
from multistore.model import (
    CompletedPart,
    CopyResult,
    CopySource,
    ObjectResponse,
    ObjectWrite,
    PartInfo,
    PartsPage,
    UploadsPage,
)
from multistore.s3.errors import S3Error
from multistore.stores.local import object_headers
from multistore.stores.local.meta import opaque
from multistore.stores.local.multipart import (
    UploadRecord,
    UploadsWanted,
    check_part_number,
    no_such_upload,
    uploads_page,
)
from multistore.stores.local.store import (
    check_version,
    copy_source_range,
)
from multistore.testing.memory import (
    _CHECKSUMS,
    _expected_md5,
    _md5,
    _Object,
    _Part,
    _Upload,
)

_T = TypeVar("_T")
_P = ParamSpec("_P")


class _MultipartUploads:
    """
    CreateMultipartUpload, UploadPart, UploadPartCopy,
    CompleteMultipartUpload, AbortMultipartUpload, ListParts and
    ListMultipartUploads for L{multistore.testing.MemoryStore}, over its
    uploads.
    """

    _uploads: dict[str, _Upload]
    _serial: int
    _min_part_size: int

    if TYPE_CHECKING:
        # Provided by the store.
        def _now(self) -> datetime: ...

        def _call(
            self, name: str, args: tuple[Any, ...], run: Callable[[], Deferred[_T]]
        ) -> Deferred[_T]: ...

        def _answer(
            self,
            name: str,
            run: Callable[_P, _T],
            *args: _P.args,
            **kwargs: _P.kwargs,
        ) -> Deferred[_T]: ...

        def _require_bucket(self) -> None: ...

        def _receive(self, key: str, body: IBodyProducer) -> Deferred[bytes]: ...

        def _source_object(self, source: CopySource) -> tuple[object, _Object]: ...

        def _source_store(self, source: CopySource) -> object: ...

        def _commit(
            self,
            key: str,
            new: _Object,
            if_match: str | None,
            if_none_match: str | None,
        ) -> None: ...

    def create_multipart_upload(self, key: str, headers: HeaderList) -> Deferred[str]:
        """
        Start an upload of an object that will carry ``headers``.

        :return: a Deferred firing with the upload id; it fails with
            ``NoSuchBucket`` and as L{put_object} does for headers.
        """
        return self._answer(
            "create_multipart_upload", self._create_upload, key, headers
        )

    def _create_upload(self, key: str, headers: HeaderList) -> str:
        self._require_bucket()
        stored = object_headers(headers)
        upload_id = secrets.token_urlsafe(24)
        self._serial += 1
        self._uploads[upload_id] = _Upload(
            upload_id=upload_id,
            key=key,
            headers=stored,
            initiated_ns=int(self._now().timestamp()) * 1_000_000_000 + self._serial,
        )
        return upload_id

    def _upload(self, key: str, upload_id: str) -> _Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise no_such_upload(upload_id)
        return upload

    def upload_part(
        self, write: ObjectWrite, upload_id: str, part_number: int
    ) -> Deferred[ObjectResponse]:
        """
        Store one part from its streamed body (a part replaces an earlier
        one of the same number).

        :return: a Deferred firing with a 200 response carrying the part's
            ``etag``; it fails with ``NoSuchUpload``, ``InvalidArgument``
            for a part number outside 1 to 10000, ``InvalidDigest``,
            ``BadDigest``, ``IncompleteBody`` or the body's own failure.
        """
        return self._call(
            "upload_part",
            (write, upload_id, part_number),
            lambda: Deferred.fromCoroutine(
                self._upload_part(write, upload_id, part_number)
            ),
        )

    async def _upload_part(
        self, write: ObjectWrite, upload_id: str, part_number: int
    ) -> ObjectResponse:
        check_part_number(part_number)
        self._upload(write.key, upload_id)
        expected = _expected_md5(write.headers)
        data = await self._receive(write.key, write.body)
        digest = _md5(data)
        if expected is not None and digest != expected:
            raise S3Error("BadDigest")
        checksums = tuple((n, v) for n, v in write.headers if n in _CHECKSUMS)
        part = _Part(
            data=data, etag=f'"{digest}"', modified=self._now(), checksums=checksums
        )
        # Looked up again: an abort or completion may have come meanwhile.
        self._upload(write.key, upload_id).parts[part_number] = part
        return ObjectResponse(200, HeaderList([("etag", part.etag), *checksums]))

    def upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> Deferred[CopyResult]:
        """
        Store one part copied from an object of this store or another of
        the same factory (a range of it with ``source.range``).

        :return: a Deferred firing with the part's ETag and time; it fails
            with ``NotImplemented`` for a source on another service,
            ``NoSuchUpload``, ``NoSuchKey``, ``InvalidArgument``,
            ``InvalidRange``, ``PreconditionFailed``.
        """
        return self._answer(
            "upload_part_copy",
            self._upload_part_copy,
            source,
            key,
            upload_id,
            part_number,
        )

    def _upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> CopyResult:
        self._source_store(source)
        check_version(source.version_id)
        check_part_number(part_number)
        upload = self._upload(key, upload_id)
        _, found = self._source_object(source)
        offset, length = copy_source_range(source.range, len(found.data))
        data = found.data[offset : offset + length]
        part = _Part(data=data, etag=f'"{_md5(data)}"', modified=self._now())
        upload.parts[part_number] = part
        return CopyResult(etag=part.etag, last_modified=part.modified)

    def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart],
        headers: HeaderList,
    ) -> Deferred[CopyResult]:
        """
        Assemble the object from ``parts`` and commit it as L{put_object}
        does (with ``If-Match``/``If-None-Match`` from ``headers``), then
        remove the upload.

        :return: a Deferred firing with the object's ETag
            (``"<hex MD5 of the parts' binary MD5s>-<count>"``) and time. It
            fails with ``MalformedXML`` for no parts, ``InvalidPartOrder``,
            ``InvalidPart`` (missing, another ETag, another checksum),
            ``EntityTooSmall`` (a part but the last under the minimum
            size), ``NoSuchUpload``, ``PreconditionFailed``.
        """
        return self._answer(
            "complete_multipart_upload",
            self._complete,
            key,
            upload_id,
            tuple(parts),
            headers,
        )

    def _chosen(self, upload: _Upload, chosen: CompletedPart) -> _Part:
        part = upload.parts.get(chosen.part_number)
        if (
            part is None
            or opaque(part.etag) != opaque(chosen.etag)
            or any(
                dict(part.checksums).get("x-amz-checksum-" + algorithm.lower())
                not in {None, value}
                for algorithm, value in chosen.checksums
            )
        ):
            raise S3Error(
                "InvalidPart",
                extra=(
                    ("UploadId", upload.upload_id),
                    ("PartNumber", str(chosen.part_number)),
                    ("ETag", chosen.etag),
                ),
            )
        return part

    def _complete(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart],
        headers: HeaderList,
    ) -> CopyResult:
        if not parts:
            raise S3Error("MalformedXML", "The request must name at least one part.")
        numbers = [part.part_number for part in parts]
        if any(later <= earlier for earlier, later in pairwise(numbers)):
            raise S3Error("InvalidPartOrder")
        upload = self._upload(key, upload_id)
        found = [(chosen.part_number, self._chosen(upload, chosen)) for chosen in parts]
        for number, part in found[:-1]:
            if len(part.data) < self._min_part_size:
                raise S3Error(
                    "EntityTooSmall",
                    extra=(
                        ("ProposedSize", str(len(part.data))),
                        ("MinSizeAllowed", str(self._min_part_size)),
                        ("PartNumber", str(number)),
                        ("ETag", part.etag),
                    ),
                )
        digests = b"".join(bytes.fromhex(opaque(part.etag)) for _, part in found)
        new = _Object(
            data=b"".join(part.data for _, part in found),
            etag=f'"{_md5(digests)}-{len(found)}"',
            modified=self._now(),
            headers=upload.headers,
            parts=tuple(len(part.data) for _, part in found),
        )
        self._commit(key, new, headers.get("if-match"), headers.get("if-none-match"))
        del self._uploads[upload_id]
        return CopyResult(etag=new.etag, last_modified=new.modified)

    def abort_multipart_upload(self, key: str, upload_id: str) -> Deferred[None]:
        """
        Abandon an upload and its parts.

        :return: a Deferred that fires once it is gone; it fails with
            ``NoSuchUpload``.
        """

        return self._answer("abort_multipart_upload", self._abort, key, upload_id)

    def _abort(self, key: str, upload_id: str) -> None:
        self._upload(key, upload_id)
        del self._uploads[upload_id]

    def list_parts(
        self, key: str, upload_id: str, max_parts: int, part_number_marker: int
    ) -> Deferred[PartsPage]:
        """
        List an upload's parts above ``part_number_marker``, in order.

        :return: a Deferred firing with up to ``max_parts`` parts; it fails
            with ``NoSuchUpload``.
        """
        return self._answer(
            "list_parts", self._parts, key, upload_id, max_parts, part_number_marker
        )

    def _parts(
        self, key: str, upload_id: str, max_parts: int, marker: int
    ) -> PartsPage:
        upload = self._upload(key, upload_id)
        numbers = sorted(n for n in upload.parts if n > marker)
        listed = [
            PartInfo(
                part_number=n,
                etag=upload.parts[n].etag,
                size=len(upload.parts[n].data),
                last_modified=upload.parts[n].modified,
            )
            for n in numbers[: max(max_parts, 0)]
        ]
        return PartsPage(
            parts=tuple(listed),
            truncated=len(numbers) > len(listed),
            next_part_number_marker=listed[-1].part_number if listed else None,
        )

    def list_multipart_uploads(
        self,
        prefix: str,
        delimiter: str | None,
        key_marker: str | None,
        upload_id_marker: str | None,
        max_uploads: int,
    ) -> Deferred[UploadsPage]:
        """
        List the uploads in progress under ``prefix``, by key (UTF-8 byte
        order) then time of initiation, after ``key_marker`` (and, within
        that key, after ``upload_id_marker``); with a delimiter, keys roll
        up into common prefixes.

        :return: a Deferred firing with up to ``max_uploads`` uploads and
            common prefixes together.
        """
        asked = (prefix, delimiter, key_marker, upload_id_marker, max_uploads)
        return self._call(
            "list_multipart_uploads",
            asked,
            lambda: succeed(self._uploads_page(UploadsWanted(*asked))),
        )

    def _uploads_page(self, wanted: UploadsWanted) -> UploadsPage:
        return uploads_page(
            [
                UploadRecord(u.upload_id, u.key, u.headers, u.initiated_ns)
                for u in self._uploads.values()
                if u.key.startswith(wanted.prefix)
            ],
            wanted,
        )
