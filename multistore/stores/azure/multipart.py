# -*- test-case-name: tests.unit.test_azure_store -*-
"""
Multipart uploads to Azure Blob Storage: the L{Multipart} mixin of
L{multistore.stores.azure.store.AzureStore}, and the upload ids and block
ids it makes.

Azure keeps no upload sessions. An upload id (L{UploadId}) carries all an
upload needs, so uploads survive restarts of the daemon without a
database: a random part, a hash of the key, the time, and the object's
headers and metadata. Parts are Put Block requests whose block ids are made
of the random part and the part number, all the same length. A part's ETag
is a digest of its block id and size, not the MD5 of its bytes (Azure's
block lists say nothing else about a block), so CompleteMultipartUpload can check every part it is
given against the blob's uncommitted blocks, then commits them in order
with Put Block List (whose ETag, Azure's, is the object's). S3's 5 MiB
minimum part size is not enforced. Committing discards every other
uncommitted block of the blob, including those of other uploads to the
same key. AbortMultipartUpload commits nothing: Azure has no way to delete
uncommitted blocks, which expire on their own (a week on Azure) if the
blob is never committed. ListMultipartUploads finds the uploads of blobs
that have only uncommitted blocks, from their block ids; the ids it shows
can list parts and abort, but not complete (the object's headers are
stored nowhere but in the id CreateMultipartUpload made).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from attrs import frozen
from twisted.internet.defer import Deferred

from multistore.bodies import read_body
from multistore.headers import NO_HEADERS, HeaderList
from multistore.model import (
    CompletedPart,
    CopyResult,
    CopySource,
    ObjectResponse,
    ObjectWrite,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
)
from multistore.s3.errors import S3Error
from multistore.stores.azure.common import (
    _CONTENT_PROPERTIES,
    MAX_LISTING,
    AzureStoreBase,
    _quoted,
    _raise,
    _value,
)
from multistore.stores.azure.xml import parse_block_list
from multistore.stores.common import cannot_copy, deferred, open_source
from multistore.stores.streaming import held

#: The longest upload id made (object headers and metadata included).
MAX_UPLOAD_ID: Final = 4096


_UPLOAD_PREFIX: Final = "az1."


#: The most an upload id's document may inflate to.
_MAX_UPLOAD_DOCUMENT: Final = 64 * 1024


#: The latest creation time an upload id may carry (the end of year 9999,
#: the last a date holds).
_LATEST_CREATED: Final = 253_402_300_799


@frozen
class UploadId:
    """
    What a multipart upload id carries.

    :ivar nonce: the random part, 16 hexadecimal digits, shared by the
        upload's block ids.
    :ivar key_hash: the first 16 hexadecimal digits of the SHA-256 of the
        key (an id is refused for another key).
    :ivar created: when the upload was created, in seconds since the epoch.
    :ivar headers: the S3 headers the object will carry.
    :ivar listed: whether the id was made by ListMultipartUploads from the
        blob's blocks, not by CreateMultipartUpload: it does not know the
        object's headers, and cannot complete the upload.
    """

    nonce: str
    key_hash: str
    created: int
    headers: HeaderList = NO_HEADERS
    listed: bool = False

    def encode(self) -> str:
        """
        :return: the upload id: ``az1.`` and the URL-safe base64 of the
            deflated JSON of the fields.
        :raise S3Error: ``InvalidArgument`` if it would be longer than
            L{MAX_UPLOAD_ID}.
        """
        fields: list[object] = [
            self.nonce,
            self.key_hash,
            self.created,
            list(self.headers),
        ]
        if self.listed:
            fields.append(1)
        document = json.dumps(fields, separators=(",", ":")).encode("utf-8")
        packed = zlib.compress(document, 9)
        text = base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")
        upload_id = _UPLOAD_PREFIX + text
        if len(upload_id) > MAX_UPLOAD_ID:
            raise S3Error(
                "InvalidArgument",
                "The object's metadata and headers are too large for this store.",
            )
        return upload_id

    @classmethod
    def decode(cls, upload_id: str, key: str) -> UploadId:
        """
        :param upload_id: an upload id from L{encode}.
        :param key: the key it is used with.
        :return: what it carries.
        :raise S3Error: ``NoSuchUpload`` if it is not one, or is another
            key's.
        """
        missing = S3Error("NoSuchUpload")
        if not upload_id.startswith(_UPLOAD_PREFIX):
            raise missing
        text = upload_id[len(_UPLOAD_PREFIX) :]
        try:
            packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            inflater = zlib.decompressobj()
            document = inflater.decompress(packed, _MAX_UPLOAD_DOCUMENT)
            if inflater.unconsumed_tail or not inflater.eof:
                raise ValueError("not a whole upload id")
            fields = json.loads(document)
            if not isinstance(fields, list) or len(fields) not in (4, 5):
                raise ValueError("not an upload id document")
            nonce, key_hash, created, headers = fields[:4]
            if not isinstance(created, int) or not 0 <= created <= _LATEST_CREATED:
                raise ValueError("not a time an upload was created at")
            upload = cls(
                str(nonce),
                str(key_hash),
                created,
                HeaderList((str(n), str(v)) for n, v in headers),
                listed=len(fields) == 5,
            )
        except (ValueError, TypeError, RecursionError, binascii.Error, zlib.error):
            raise missing from None
        if upload.key_hash != key_hash_of(key) or not _NONCE.fullmatch(upload.nonce):
            raise missing
        return upload

    def block_id(self, part_number: int) -> str:
        """
        :return: the base64 block id of a part.
        """
        return block_id(self.nonce, part_number)


_NONCE: Final = re.compile(r"[0-9a-f]{16}", re.ASCII)


def key_hash_of(key: str) -> str:
    """
    :return: the key hash an upload id carries.
    """
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def block_id(nonce: str, number: int) -> str:
    """
    :param nonce: 16 hexadecimal digits.
    :param number: a part or block number, 1 to 99999.
    :return: the base64 block id (the same length for every number).
    """
    return base64.b64encode(f"{nonce}{number:05d}".encode("ascii")).decode("ascii")


def parse_block_id(value: str) -> tuple[str, int] | None:
    """
    :return: the ``(nonce, number)`` of a block id L{block_id} made, or
        ``None`` for another.
    """
    try:
        raw = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 21 or not _NONCE.fullmatch(raw[:16]) or not raw[16:].isdigit():
        return None
    return raw[:16], int(raw[16:])


def part_etag(block: str, size: int) -> str:
    """
    :return: the ETag of a part stored as block ``block`` of ``size``
        bytes, quoted.
    """
    digest = hashlib.md5(f"{block}:{size}".encode("ascii"), usedforsecurity=False)
    return f'"{digest.hexdigest()}"'


class Multipart(AzureStoreBase):
    """
    The store's multipart uploads (see the module docstring).
    """

    __slots__ = ()

    def create_multipart_upload(self, key: str, headers: HeaderList) -> Deferred[str]:
        """
        Make an upload id carrying the object's headers; Azure is not asked
        anything.
        """
        kept = HeaderList(
            (name, value)
            for name, value in headers
            if name in {s3 for s3, _ in _CONTENT_PROPERTIES}
            or name.startswith("x-amz-meta-")
        )
        upload = UploadId(
            os.urandom(8).hex(), key_hash_of(key), int(self.clock.seconds()), kept
        )
        try:
            return Deferred.fromCoroutine(_value(upload.encode()))
        except S3Error as error:
            return Deferred.fromCoroutine(_raise(error))

    @deferred
    async def upload_part(
        self, write: ObjectWrite, upload_id: str, part_number: int
    ) -> ObjectResponse:
        """
        Put Block, streamed; the part's ETag is L{part_etag}.
        """
        upload = UploadId.decode(upload_id, write.key)
        length = write.body.length
        if not isinstance(length, int):
            raise S3Error("MissingContentLength")
        if not 1 <= part_number <= 10_000:
            raise S3Error("InvalidArgument", "Part number must be 1 to 10000.")
        block = upload.block_id(part_number)
        await self._put_block(write.key, block, await held(write.body))
        return ObjectResponse(200, HeaderList([("etag", part_etag(block, length))]))

    @deferred
    async def upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> CopyResult:
        """
        Read the source blob (its range) and write it as the part's block:
        Azure copies no block on the server side (Put Block From URL needs
        the source readable by URL), so the bytes pass through the gateway,
        read with this store's credentials.

        :raise S3Error: ``NotImplemented`` for a source L{can_copy} refuses.
        """
        if not self.can_copy(source):
            raise cannot_copy()
        body, _ = await open_source(self._for_bucket(source.bucket), source)
        try:
            answer = await self.upload_part(
                ObjectWrite(key, body), upload_id, part_number
            )
        finally:
            body.release()
        return CopyResult(answer.headers.get("etag") or "", self._now())

    async def _uncommitted(self, key: str) -> tuple[tuple[str, int], ...]:
        """
        :return: the ``(block id, size)`` of the blob's uncommitted blocks;
            none if there is no blob.
        """
        response = await self._send(
            "GET", key, [("comp", "blocklist"), ("blocklisttype", "uncommitted")]
        )
        if response.status == 404:
            error = await self._error(response)
            if error.code == "NoSuchBucket":
                raise error
            return ()
        if response.status != 200:
            raise await self._error(response)
        _, uncommitted = parse_block_list(await read_body(response.body, MAX_LISTING))
        return tuple((block.block_id, block.size) for block in uncommitted)

    @deferred
    async def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart],
        headers: HeaderList,
    ) -> CopyResult:
        """
        Check the parts against the blob's uncommitted blocks and commit
        them in order (see the module docstring).
        """
        upload = UploadId.decode(upload_id, key)
        if upload.listed:
            raise S3Error(
                "InvalidRequest",
                "An upload id from ListMultipartUploads cannot complete an upload "
                "on this store; use the id CreateMultipartUpload returned.",
            )
        if not parts:
            raise S3Error(
                "MalformedXML", "You must specify at least one part to complete."
            )
        numbers = [part.part_number for part in parts]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise S3Error("InvalidPartOrder")
        sizes = dict(await self._uncommitted(key))
        blocks = []
        for part in parts:
            block = upload.block_id(part.part_number)
            size = sizes.get(block)
            if size is None or _quoted(part.etag) != part_etag(block, size):
                raise S3Error("InvalidPart")
            blocks.append(block)
        return await self._commit(key, blocks, upload.headers, headers)

    def abort_multipart_upload(self, key: str, upload_id: str) -> Deferred[None]:
        """
        Commit nothing (Azure cannot delete uncommitted blocks; they
        expire).

        :raise S3Error: ``NoSuchUpload`` for an id that is not this key's.
        """
        try:
            UploadId.decode(upload_id, key)
        except S3Error as error:
            return Deferred.fromCoroutine(_raise(error))
        return Deferred.fromCoroutine(_value(None))

    @deferred
    async def list_parts(
        self, key: str, upload_id: str, max_parts: int, part_number_marker: int
    ) -> PartsPage:
        """
        Get Block List (uncommitted), keeping the upload's blocks.
        """
        upload = UploadId.decode(upload_id, key)
        found: dict[int, PartInfo] = {}
        modified = datetime.fromtimestamp(upload.created, UTC)
        for block, size in await self._uncommitted(key):
            parsed = parse_block_id(block)
            if parsed is None or parsed[0] != upload.nonce:
                continue
            number = parsed[1]
            if number > part_number_marker:
                found[number] = PartInfo(number, part_etag(block, size), size, modified)
        ordered = [found[n] for n in sorted(found)]
        page = ordered[: max(max_parts, 0)]
        truncated = len(ordered) > len(page)
        return PartsPage(
            tuple(page),
            truncated,
            page[-1].part_number if truncated and page else None,
        )

    async def _uploads_of(self, key: str, created: datetime) -> list[UploadInfo]:
        """
        :return: the uploads whose blocks blob ``key`` holds uncommitted,
            one per block id nonce (one for blocks of other writers), with
            listed ids, in id order.
        """
        nonces: list[str] = []
        for block, _ in await self._uncommitted(key):
            parsed = parse_block_id(block)
            nonce = "0" * 16 if parsed is None else parsed[0]
            if nonce not in nonces:
                nonces.append(nonce)
        uploads = [
            UploadInfo(
                key,
                UploadId(
                    nonce, key_hash_of(key), int(created.timestamp()), listed=True
                ).encode(),
                created,
            )
            for nonce in nonces
        ]
        return sorted(uploads, key=lambda upload: upload.upload_id)

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
        Best effort: List Blobs with ``include=uncommittedblobs`` (and
        without, to tell which blobs have only uncommitted blocks: an
        upload to a key that exists as a blob is not seen), then Get Block
        List for each such blob, one upload per block id nonce. Listed ids
        can list the upload's parts and abort it, but not complete it (the
        object's headers are only in the id CreateMultipartUpload made).
        Up to L{MAX_LIST_PAGES} pages of blobs are read.
        """
        every, every_prefix = await self._all_blobs(
            prefix, delimiter, "uncommittedblobs"
        )
        committed, committed_prefixes = await self._all_blobs(prefix, delimiter, None)
        after = key_marker or ""
        candidates: list[tuple[str, bool]] = [
            (name, True)
            for name in set(every) - set(committed)
            if name > after or (name == after and upload_id_marker)
        ]
        candidates.extend(
            (rolled, False)
            for rolled in every_prefix - committed_prefixes
            if rolled > after
        )
        candidates.sort()
        wanted = max(max_uploads, 0)
        entries: list[UploadInfo | str] = []
        for name, is_key in candidates:
            if len(entries) > wanted:
                break
            if not is_key:
                entries.append(name)
                continue
            for upload in await self._uploads_of(name, every[name]):
                if name == after and upload.upload_id <= (upload_id_marker or ""):
                    continue
                entries.append(upload)
        page = entries[:wanted]
        truncated = len(entries) > len(page)
        next_key: str | None = None
        next_upload: str | None = None
        if truncated and page:
            last = page[-1]
            if isinstance(last, UploadInfo):
                next_key, next_upload = last.key, last.upload_id
            else:
                next_key = last
        return UploadsPage(
            tuple(entry for entry in page if isinstance(entry, UploadInfo)),
            tuple(entry for entry in page if isinstance(entry, str)),
            truncated,
            next_key,
            next_upload,
        )
