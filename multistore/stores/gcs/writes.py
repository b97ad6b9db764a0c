# -*- test-case-name: tests.unit.test_gcs_store -*-
"""
Writes to Google Cloud Storage: the L{Writes} mixin of
L{multistore.stores.gcs.store.GcsStore}.

Uploads are resumable sessions: the object's resource (metadata and
preconditions) opens the session, then the body streams into it. A body of
known length is sent in one request with its last byte held back until it
has been verified (L{multistore.stores.streaming.LastByteHeld}): a body that
fails leaves the session unfinished and no object appears; the session is
then cancelled. A body of unknown length goes in chunks of L{CHUNK_SIZE}
bytes, one in memory at a time, and the session is finished only once the
body has ended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.web.iweb import IBodyProducer

from multistore.bodies import BytesProducer
from multistore.headers import HeaderList
from multistore.model import BackendResponse, ObjectResponse, ObjectWrite
from multistore.s3.conditions import evaluate
from multistore.s3.errors import S3Error
from multistore.stores.common import deferred
from multistore.stores.gcs.common import (
    GcsStoreBase,
    _updated,
    etag_of,
    object_resource,
)
from multistore.stores.streaming import PartBuffer, finish_quietly, held

#: Bytes in each chunk of an upload of unknown length (a multiple of the
#: 256 KiB GCS asks of a chunk); also the most of such a body held.
CHUNK_SIZE: Final = 8 * 1024 * 1024


def _origin(url: str) -> tuple[str, str]:
    """
    :return: the scheme and authority of ``url``, lower-cased.
    """
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class Writes(GcsStoreBase):
    """
    The store's writes, and the preconditions copies and multipart
    uploads check too.
    """

    __slots__ = ()

    async def _write_preconditions(
        self, name: str, headers: HeaderList
    ) -> list[tuple[str, str]]:
        """
        Check a write's ``if-match`` / ``if-none-match`` against the object
        and pin the write to what was checked.

        :return: the ``ifGenerationMatch`` query parameter, if any.
        :raise S3Error: ``PreconditionFailed``; ``NoSuchKey`` for
            ``if-match`` on a missing object.
        """
        if_match = headers.get("if-match")
        if_none_match = headers.get("if-none-match")
        if not (if_match or if_none_match):
            return []
        resource = await self._metadata(name)
        if resource is None:
            if if_match:
                raise S3Error("NoSuchKey")
            return [("ifGenerationMatch", "0")]
        evaluate(
            etag_of(resource),
            _updated(resource),
            if_match=if_match,
            if_none_match=if_none_match,
            method="PUT",
            now=self._now(),
        )
        return [("ifGenerationMatch", str(resource.get("generation", "0")))]

    async def _open_session(
        self, name: str, resource: Mapping[str, Any], query: Sequence[tuple[str, str]]
    ) -> str:
        """
        Start a resumable upload.

        :return: the session URL.
        """
        response = await self._send_json(
            "POST",
            self.url(
                self._bucket_path() + "/o",
                [("uploadType", "resumable"), ("name", name), *query],
                upload=True,
            ),
            {**resource, "name": name},
        )
        if response.status not in (200, 201):
            raise await self._error(response, {404: "NoSuchBucket"})
        response.body.discard()
        session = response.headers.get("location") or ""
        if _origin(session) != _origin(self._endpoint):
            # The session must be on the service the bucket names: the
            # bucket's credentials go with every chunk.
            self.log.warn(
                "backend of bucket {bucket} opened an upload elsewhere: {where}",
                bucket=self.bucket.name,
                where=_origin(session),
            )
            raise S3Error("ServiceUnavailable", "The bucket's backend store failed.")
        return session

    async def _cancel_session(self, session: str) -> None:
        """
        Cancel an unfinished upload; a failure is logged. Not cancelled with
        its caller.
        """

        cancelling = Deferred.fromCoroutine(self._send("DELETE", session))
        cancelling.addCallback(lambda response: response.body.discard())
        await finish_quietly(
            cancelling,
            self.log,
            "could not cancel an upload in bucket {bucket}",
            bucket=self.bucket.name,
        )

    async def _finished(self, response: BackendResponse) -> dict[str, Any]:
        if response.status not in (200, 201):
            raise await self._error(response, {404: "NoSuchUpload"})
        return await self._document(response)

    async def _store(
        self,
        name: str,
        resource: Mapping[str, Any],
        query: Sequence[tuple[str, str]],
        body: IBodyProducer,
    ) -> dict[str, Any]:
        """
        Upload a body into object ``name``.

        :return: the new object's resource.
        """
        whole = isinstance(body.length, int)
        sent = await held(body) if whole else None
        session = await self._open_session(name, resource, query)
        try:
            if not whole:
                return await self._store_chunked(session, body)
            response = await self._send(
                "PUT", session, body=BytesProducer(b"") if sent is None else sent
            )
            return await self._finished(response)
        except BaseException:
            await self._cancel_session(session)
            raise

    async def _store_chunked(self, session: str, body: IBodyProducer) -> dict[str, Any]:
        """
        Send a body of unknown length into a session, a chunk at a time; the
        last chunk, which finishes the upload, is sent only once the body
        has ended.
        """
        buffer = PartBuffer(body, CHUNK_SIZE)
        buffer.start()
        offset = 0
        try:
            await buffer.fill()
            while True:
                buffer.check()
                last = buffer.holds_rest
                data = b"".join(buffer.take())
                buffer.resume()
                if last:
                    total = offset + len(data)
                    span = f"{offset}-{total - 1}" if data else "*"
                    content_range = f"bytes {span}/{total}"
                else:
                    content_range = f"bytes {offset}-{offset + len(data) - 1}/*"
                response = await buffer.watch(
                    Deferred.fromCoroutine(
                        self._send(
                            "PUT",
                            session,
                            HeaderList([("content-range", content_range)]),
                            BytesProducer(data),
                        )
                    )
                )
                offset += len(data)
                del data
                if last:
                    return await self._finished(response)
                if response.status != 308:
                    raise await self._error(response, {404: "NoSuchUpload"})
                response.body.discard()
                await buffer.fill()
        except BaseException:
            buffer.stop()
            buffer.check()
            raise

    @deferred
    async def put_object(self, write: ObjectWrite) -> ObjectResponse:
        """
        Upload an object in a resumable session (see the module's
        description), with its content headers and metadata, honouring
        ``if-match`` / ``if-none-match``.
        """
        query = await self._write_preconditions(write.key, write.headers)
        resource = await self._store(
            write.key, object_resource(write.headers), query, write.body
        )
        return ObjectResponse(200, HeaderList([("etag", etag_of(resource))]))
