# -*- test-case-name: tests.unit.test_azure_store -*-
"""
Writes to Azure Blob Storage: the L{Writes} mixin of
L{multistore.stores.azure.store.AzureStore} (Put Blob, Put Block, Put
Block List).

An upload of known length up to L{MAX_PUT_BLOB} bytes is one Put Blob,
streamed, its last byte held back until the body has been verified
(L{multistore.stores.streaming.LastByteHeld}): Azure creates no blob from a
request that ends early. A longer upload, or one of unknown length, is read
a block (L{BLOCK_SIZE}) at a time
(L{multistore.stores.streaming.PartBuffer}) and sent as Put Block requests,
committed with Put Block List only once the body has ended; if the body
fails nothing is committed, and the uncommitted blocks expire (after a week
on Azure). A body of unknown length that ends within its first block is sent
as one Put Blob once it has ended. ``If-Match`` and ``If-None-Match`` go
with the Put Blob or the Put Block List (Azure answers ``BlobAlreadyExists``
or ``ConditionNotMet``, both ``PreconditionFailed``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final

from twisted.internet.defer import Deferred
from twisted.web.iweb import IBodyProducer

from multistore.headers import NO_HEADERS, HeaderList
from multistore.model import BackendResponse, CopyResult, ObjectResponse, ObjectWrite
from multistore.s3.dates import parse_http_date
from multistore.s3.errors import S3Error
from multistore.stores.azure.common import AzureStoreBase, _quoted, object_properties
from multistore.stores.azure.multipart import block_id
from multistore.stores.azure.xml import block_list_document
from multistore.stores.common import deferred
from multistore.stores.object_headers import conditions
from multistore.stores.streaming import Chunks, PartBuffer, held

#: The largest blob sent as one Put Blob (Azure's limit, 5000 MiB).
MAX_PUT_BLOB: Final = 5000 * 1024 * 1024


#: The size of every block but the last of an upload sent in blocks; the
#: most of its body held in memory at once (twice, while one is sent).
BLOCK_SIZE: Final = 8 * 1024 * 1024


#: Most blocks in one blob (Azure's limit).
MAX_BLOCKS: Final = 50_000


class Writes(AzureStoreBase):
    """
    The store's writes, and the Put Block and Put Block List requests
    multipart uploads share.
    """

    __slots__ = ()

    async def _put_blob(
        self, key: str, headers: HeaderList, body: IBodyProducer | None
    ) -> ObjectResponse:
        """
        One Put Blob.
        """
        request_headers = HeaderList([("x-ms-blob-type", "BlockBlob")])
        request_headers = request_headers.plus(object_properties(headers))
        md5 = headers.get("content-md5")
        if md5:
            request_headers = request_headers.plus([("content-md5", md5)])
        request_headers = request_headers.plus(conditions(headers))
        response = await self._send("PUT", key, (), request_headers, body)
        if response.status not in (200, 201):
            raise await self._error(response, statuses={404: "NoSuchBucket"})
        response.body.discard()
        return ObjectResponse(200, self._write_headers(response.headers))

    def _write_headers(self, headers: HeaderList) -> HeaderList:
        etag = headers.get("etag")
        if not etag:
            return NO_HEADERS
        return HeaderList([("etag", _quoted(etag))])

    @deferred
    async def put_object(self, write: ObjectWrite) -> ObjectResponse:
        """
        Put Blob, streamed, for a body of known length up to
        L{MAX_PUT_BLOB}; otherwise blocks committed once the body has ended
        (see the module docstring).
        """
        length = write.body.length
        if isinstance(length, int) and length <= MAX_PUT_BLOB:
            body = await held(write.body)
            return await self._put_blob(write.key, write.headers, body)
        return await self._put_in_blocks(write)

    async def _put_block(
        self, key: str, block: str, body: IBodyProducer | None
    ) -> BackendResponse:
        response = await self._send(
            "PUT", key, [("comp", "block"), ("blockid", block)], NO_HEADERS, body
        )
        if response.status not in (200, 201):
            raise await self._error(response, statuses={404: "NoSuchBucket"})
        response.body.discard()
        return response

    async def _put_in_blocks(self, write: ObjectWrite) -> ObjectResponse:
        """
        Send a body a block at a time and commit the blocks once it has
        ended; commit nothing if it fails. A body that ends within the first
        block is sent as one Put Blob once it has ended.
        """
        nonce = os.urandom(8).hex()
        buffer = PartBuffer(write.body, self.block_size)
        buffer.start()
        blocks: list[str] = []
        try:
            await buffer.fill()
            if buffer.holds_rest:
                # The body ended within a block: one Put Blob.
                chunks = buffer.take()
                return await self._put_blob(
                    write.key, write.headers, Chunks(chunks) if chunks else None
                )
            while True:
                buffer.check()
                if len(blocks) >= MAX_BLOCKS:
                    raise S3Error("EntityTooLarge")
                last = buffer.holds_rest
                chunks = buffer.take()
                buffer.resume()
                if chunks:
                    block = block_id(nonce, len(blocks) + 1)
                    await buffer.watch(
                        Deferred.fromCoroutine(
                            self._put_block(write.key, block, Chunks(chunks))
                        )
                    )
                    blocks.append(block)
                del chunks
                if last:
                    break
                await buffer.fill()
        except BaseException:
            buffer.stop()
            buffer.check()
            raise
        result = await self._commit(write.key, blocks, write.headers, write.headers)
        return ObjectResponse(200, HeaderList([("etag", result.etag)]))

    async def _commit(
        self,
        key: str,
        blocks: Sequence[str],
        object_headers: HeaderList,
        condition_headers: HeaderList,
    ) -> CopyResult:
        """
        Put Block List: commit ``blocks`` as the blob, with the object's
        properties and metadata and the write's conditions.
        """
        headers = object_properties(object_headers)
        md5 = object_headers.get("content-md5")
        if md5:
            headers = headers.plus([("x-ms-blob-content-md5", md5)])
        headers = headers.plus(conditions(condition_headers))
        response = await self._send(
            "PUT", key, [("comp", "blocklist")], headers, block_list_document(blocks)
        )
        if response.status not in (200, 201):
            raise await self._error(response, statuses={404: "NoSuchBucket"})
        response.body.discard()
        etag = _quoted(response.headers.get("etag") or "")
        modified = parse_http_date(response.headers.get("last-modified")) or self._now()
        return CopyResult(etag, modified)
