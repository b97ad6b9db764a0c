# -*- test-case-name: tests.unit.test_s3_store -*-
"""
Stores on any S3-compatible service.

Requests are path-style (``endpoint/bucket/key``) unless the bucket asks for
virtual-hosted style, signed with SigV4 by multistore's own signer using the
bucket's backend credentials (or sent unsigned when it has none), and sent
through the shared L{IForwarder}.

Only object headers on an allow-list are passed back to clients, so nothing
the backend says about itself (its request ids, its bucket, its lifecycle
rules) reaches them, and the backend's error documents are replaced by the
gateway's own.

Writes stream: an upload's body goes to the backend as it arrives, signed
``UNSIGNED-PAYLOAD`` (the gateway has verified the client's own signature
and digests as the bytes pass) with the body's length as ``Content-Length``.
The body's last byte is held back until the body has been verified in full
(L{multistore.stores.streaming.LastByteHeld}), so a body that fails, however
late, leaves the backend with an incomplete request that it never turns into
an object. Only the request headers on an allow-list reach the backend:
content headers, metadata, checksums, tagging, storage class, encryption and
the conditions, never the client's credentials, ACLs or framing.

S3 takes no upload without a length, so a body of unknown length (HTTP
chunked) is read into memory a part at a time
(L{multistore.stores.streaming.PartBuffer}), pausing the client while a part
is full, and sent once it has ended if it fits in one part, or else as a
multipart upload that is completed only when the body has ended and aborted
if it fails (see L{S3Store.put_object}).

This module holds L{S3Store} with its reads, writes, deletes and buckets;
what its operations share is in L{multistore.stores.s3.backend}, its
multipart uploads in L{multistore.stores.s3.multipart} and its copies in
L{multistore.stores.s3.copies}.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Final

from attrs import frozen
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from zope.interface import implementer

from multistore.auth.canonical import UNSIGNED_PAYLOAD
from multistore.bodies import read_body
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import IObjectStore
from multistore.model import (
    CompletedPart,
    DeleteOutcome,
    ListPage,
    ListRequest,
    ObjectRead,
    ObjectResponse,
    ObjectWrite,
)
from multistore.s3.errors import S3Error
from multistore.s3.xml import MAX_DELETE_KEYS, xml_can_carry
from multistore.stores.common import deferred, deleted
from multistore.stores.object_headers import object_headers, write_response_headers
from multistore.stores.s3.backend import (
    _BUFFERED_COMPLETE_HEADERS,
    _BUFFERED_PART_HEADERS,
    _PASSED_CODES,
    _PUT_HEADERS,
    MAX_LISTING,
    _status_code,
    forwarded_headers,
)

# Imported under their own names: they were defined here, and are still
# read from here.
from multistore.stores.s3.backend import (
    _COMPLETE_HEADERS as _COMPLETE_HEADERS,
)
from multistore.stores.s3.backend import (
    _COPY_HEADERS as _COPY_HEADERS,
)
from multistore.stores.s3.backend import (
    _CREATE_UPLOAD_HEADERS as _CREATE_UPLOAD_HEADERS,
)
from multistore.stores.s3.backend import (
    _PART_HEADERS as _PART_HEADERS,
)
from multistore.stores.s3.backend import (
    MAX_RESULT_DOCUMENT as MAX_RESULT_DOCUMENT,
)
from multistore.stores.s3.copies import Copies
from multistore.stores.s3.multipart import MultipartUploads
from multistore.stores.s3.xml import (
    create_bucket_document,
    delete_request_document,
    parse_delete_result,
    parse_list_objects_v2,
)
from multistore.stores.streaming import Chunks, PartBuffer, finish_quietly, shielded

#: Size of every part but the last of an upload of unknown length that
#: L{S3Store.put_object} sends in parts; the most of such a body held in
#: memory while it fills (above the 5 MiB S3 asks of a part).
PART_SIZE: Final = 8 * 1024 * 1024

#: Most parts in one upload (S3's limit): a body of unknown length may be
#: up to C{MAX_PARTS * PART_SIZE} bytes.
MAX_PARTS: Final = 10_000


def _content_md5(data: bytes) -> str:
    """
    :return: the ``Content-MD5`` of ``data`` (S3 requires one on
        DeleteObjects).
    """
    digest = hashlib.md5(data, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


@implementer(IObjectStore)
@frozen
class S3Store(MultipartUploads, Copies):
    """
    A virtual bucket's store on an S3-compatible service.

    :ivar bucket: the virtual bucket's configuration.
    :ivar forwarder: the HTTP transport.
    :ivar clock: the time source for signatures.
    """

    log = Logger()

    # --- reads ----------------------------------------------------------------

    @deferred
    async def get_object(self, read: ObjectRead) -> ObjectResponse:
        headers = [
            (name, value)
            for name, value in (
                ("range", read.range),
                ("if-match", read.if_match),
                ("if-none-match", read.if_none_match),
                ("if-modified-since", read.if_modified_since),
                ("if-unmodified-since", read.if_unmodified_since),
            )
            if value is not None
        ]
        query = []
        if read.part_number is not None:
            query.append(("partNumber", str(read.part_number)))
        if read.version_id is not None:
            query.append(("versionId", read.version_id))
        method = "HEAD" if read.head else "GET"
        response = await self._send(
            method, read.key, sorted(query), HeaderList(headers)
        )
        if response.status in (200, 206):
            body = None if read.head else response.body
            if body is None:
                response.body.discard()
            return ObjectResponse(
                response.status, object_headers(response.headers), body
            )
        if response.status == 304:
            response.body.discard()
            return ObjectResponse(304, object_headers(response.headers))
        raise await self._error(response, head=read.head)

    @deferred
    async def list_objects(self, request: ListRequest) -> ListPage:
        query = [
            ("encoding-type", "url"),
            ("list-type", "2"),
            ("max-keys", str(request.max_keys)),
        ]
        if request.prefix:
            query.append(("prefix", request.prefix))
        if request.delimiter:
            query.append(("delimiter", request.delimiter))
        if request.start_after:
            query.append(("start-after", request.start_after))
        if request.token:
            query.append(("continuation-token", request.token))
        response = await self._send("GET", None, sorted(query))
        if response.status == 404:
            # A listing has no key: whatever the backend says, its bucket is
            # missing.
            response.body.discard()
            raise S3Error("NoSuchBucket")
        if response.status != 200:
            raise await self._error(response)
        body = await read_body(response.body, MAX_LISTING)
        return parse_list_objects_v2(body)

    @deferred
    async def head_bucket(self) -> None:
        response = await self._send("HEAD", None)
        if response.status == 404:
            response.body.discard()
            raise S3Error("NoSuchBucket")
        if response.status != 200:
            raise await self._error(response, head=True)
        response.body.discard()

    async def _put_unknown_length(self, write: ObjectWrite) -> ObjectResponse:
        """
        PUT a body of unknown length: whole, once it has ended, if it is no
        longer than a part; otherwise in parts.
        """
        buffer = PartBuffer(write.body, PART_SIZE)
        buffer.start()
        try:
            await buffer.fill()
        except BaseException:
            buffer.stop()
            raise
        if not buffer.holds_rest:
            return await self._put_in_parts(write, buffer)
        chunks = buffer.take()
        return await self._put(
            write.key,
            (),
            write.headers,
            _PUT_HEADERS,
            {404: "NoSuchBucket"},
            Chunks(chunks) if chunks else None,
        )

    async def _put_in_parts(
        self, write: ObjectWrite, buffer: PartBuffer
    ) -> ObjectResponse:
        """
        PUT a body of unknown length as a multipart upload of the parts
        ``buffer`` holds one at a time, completed only once the body has
        ended; aborted if the body or anything else fails.
        """
        key = write.key
        upload_id: str | None = None
        creating = self.create_multipart_upload(key, write.headers)
        try:
            try:
                upload_id = await shielded(creating)
            except CancelledError:
                # The caller gave up while the upload was being created:
                # learn its id, to abort it.
                buffer.stop()
                upload_id = await creating
                raise
            self.log.debug(
                "sending a body of unknown length to {key} in parts of {size} bytes",
                key=key,
                size=PART_SIZE,
            )
            part_headers = forwarded_headers(write.headers, _BUFFERED_PART_HEADERS)
            parts: list[CompletedPart] = []
            while True:
                buffer.check()
                number = len(parts) + 1
                if number > MAX_PARTS:
                    raise S3Error(
                        "EntityTooLarge",
                        extra=(("MaxSizeAllowed", str(MAX_PARTS * PART_SIZE)),),
                    )
                last = buffer.holds_rest
                chunks = buffer.take()
                # Let the body fill the next part while this one is sent.
                buffer.resume()
                etag = await buffer.watch(
                    Deferred.fromCoroutine(
                        self._send_part(key, upload_id, number, part_headers, chunks)
                    )
                )
                del chunks
                parts.append(CompletedPart(number, etag))
                if last:
                    break
                await buffer.fill()
            result = await self.complete_multipart_upload(
                key,
                upload_id,
                parts,
                forwarded_headers(write.headers, _BUFFERED_COMPLETE_HEADERS),
            )
        except Exception:
            buffer.stop()
            if upload_id is not None:
                await self._abandon(key, upload_id)
            buffer.check()
            raise
        headers = HeaderList([("etag", result.etag)]).plus(
            result.headers.without("etag")
        )
        return ObjectResponse(200, headers)

    async def _send_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        headers: HeaderList,
        chunks: Sequence[bytes],
    ) -> str:
        """
        PUT one part held in memory.

        :return: its ETag.
        """
        query = [("partNumber", str(number)), ("uploadId", upload_id)]
        response = await self._send(
            "PUT", key, query, headers, Chunks(chunks), UNSIGNED_PAYLOAD
        )
        if response.status != 200:
            raise await self._error(response, statuses={404: "NoSuchUpload"})
        response.body.discard()
        etag = response.headers.get("etag")
        if not etag:
            self.log.warn(
                "backend of bucket {bucket} sent no ETag for a part",
                bucket=self.bucket.name,
            )
            raise S3Error("ServiceUnavailable", "The bucket's backend store failed.")
        return etag

    async def _abandon(self, key: str, upload_id: str) -> None:
        """
        Abort an upload that will not be completed. A failure to is logged,
        not raised (its parts remain until a lifecycle rule removes them).
        The abort is not cancelled with its caller (a put is cancelled when
        its client goes away, which is when the abort matters most): a
        cancelled caller stops waiting and the abort goes on.
        """
        await finish_quietly(
            self.abort_multipart_upload(key, upload_id),
            self.log,
            "could not abort upload {upload_id} of {key} in bucket {bucket}",
            upload_id=upload_id,
            key=key,
            bucket=self.bucket.name,
        )

    def put_object(self, write: ObjectWrite) -> Deferred[ObjectResponse]:
        """
        PUT an object.

        A body of known length is streamed (see
        L{multistore.stores.streaming.LastByteHeld}).

        A body of unknown length (HTTP chunked, without
        ``x-amz-decoded-content-length``) is read into memory a part
        (L{PART_SIZE}) at a time, the body paused while a part is full
        (L{multistore.stores.streaming.PartBuffer}). A body that ends within
        the first part is sent as one PUT, once it has ended. A longer one
        becomes a multipart upload on the backend: created with the write's
        object headers, a part sent for each L{PART_SIZE} bytes (with
        ``Content-Length``, signed ``UNSIGNED-PAYLOAD``; the body fills the
        next part while one is sent, so at most two parts are in memory, the
        one being sent and the one filling), and completed, with the write's
        ``if-match`` / ``if-none-match``, once the body has ended. Such an
        object's ETag is a multipart ETag (the MD5 of its parts' MD5s, ``-``
        and the number of parts), not the MD5 of its bytes; its
        ``Content-MD5`` and ``x-amz-checksum-*`` are verified by the gateway
        as the body passes, not sent to the backend, which does not store
        them. If the body or anything else fails, the backend upload is
        aborted, so no object and no parts remain.

        :raise S3Error: ``EntityTooLarge`` for a body of unknown length of
            more than L{MAX_PARTS} parts; the body's own failure if it
            fails.
        """
        if isinstance(write.body.length, int):
            return Deferred.fromCoroutine(
                self._upload(write, (), _PUT_HEADERS, {404: "NoSuchBucket"})
            )
        return Deferred.fromCoroutine(self._put_unknown_length(write))

    # --- deletes --------------------------------------------------------------

    @deferred
    async def delete_object(self, key: str, version_id: str | None) -> ObjectResponse:
        query = [] if version_id is None else [("versionId", version_id)]
        response = await self._send("DELETE", key, query)
        if response.status in (200, 204):
            response.body.discard()
            return ObjectResponse(204, write_response_headers(response.headers))
        code, message, _ = await self._error_code(response)
        if response.status == 404 and code in (None, "NoSuchKey"):
            # Deleting what is not there succeeds, as on S3.
            return ObjectResponse(204, NO_HEADERS)
        raise self._mapped(
            code or _status_code(response.status), message, response.status
        )

    def _outcome_error(self, key: str, code: str, message: str) -> tuple[str, str]:
        """
        :return: the ``(code, message)`` a client sees for a key the backend
            did not delete.
        """
        if code not in _PASSED_CODES and code != "AccessDenied":
            self.log.warn(
                "backend of bucket {bucket} did not delete a key ({code}: {message})",
                bucket=self.bucket.name,
                code=code,
                message=message,
            )
            code = "InternalError"
        return code, S3Error(code).message

    async def _delete_batch(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> list[DeleteOutcome]:
        document = delete_request_document(keys, quiet=False)
        response = await self._send_xml(
            "POST",
            None,
            [("delete", "")],
            document,
            HeaderList([("content-md5", _content_md5(document))]),
        )
        if response.status != 200:
            raise await self._error(response, statuses={404: "NoSuchBucket"})
        reported = parse_delete_result(await read_body(response.body, MAX_LISTING))
        wanted = Counter(key for key, _ in keys)
        outcomes = []
        for outcome in reported:
            if wanted[outcome.key] <= 0:
                continue  # not asked for: not the client's business
            wanted[outcome.key] -= 1
            if outcome.error is not None:
                outcome = DeleteOutcome(
                    outcome.key,
                    outcome.version_id,
                    error=self._outcome_error(outcome.key, *outcome.error),
                )
            outcomes.append(outcome)
        for key, version_id in keys:
            if wanted[key] > 0:
                wanted[key] -= 1
                outcomes.append(
                    DeleteOutcome(
                        key,
                        version_id,
                        error=self._outcome_error(
                            key, "Unreported", "the backend did not report the key"
                        ),
                    )
                )
        return outcomes

    @deferred
    async def delete_objects(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> Sequence[DeleteOutcome]:
        """
        Delete keys with DeleteObjects (in requests of up to 1000 keys, not
        quiet, so that every key's outcome is known); a key XML cannot carry
        is deleted on its own. The backend's messages are replaced by
        multistore's, and its unexpected codes by ``InternalError``.
        """
        carried: list[tuple[str, str | None]] = []
        alone: list[tuple[str, str | None]] = []
        for key, version_id in keys:
            if xml_can_carry(key) and xml_can_carry(version_id or ""):
                carried.append((key, version_id))
            else:
                alone.append((key, version_id))
        outcomes: list[DeleteOutcome] = []
        for start in range(0, len(carried), MAX_DELETE_KEYS):
            outcomes.extend(
                await self._delete_batch(carried[start : start + MAX_DELETE_KEYS])
            )
        for key, version_id in alone:
            # XML cannot name this key without naming another: delete it on
            # its own.
            outcomes.append(
                await deleted(key, version_id, self.delete_object(key, version_id))
            )
        return outcomes

    # --- buckets --------------------------------------------------------------

    @deferred
    async def create_bucket(self) -> None:
        """
        Create the backend bucket, in the bucket's region.
        """
        if self._region == "us-east-1":
            response = await self._send("PUT", None)
        else:
            response = await self._send_xml(
                "PUT", None, (), create_bucket_document(self._region)
            )
        if response.status != 200:
            raise await self._error(response, statuses={409: "BucketAlreadyOwnedByYou"})
        response.body.discard()

    @deferred
    async def delete_bucket(self) -> None:
        response = await self._send("DELETE", None)
        if response.status not in (200, 204):
            raise await self._error(
                response, statuses={404: "NoSuchBucket", 409: "BucketNotEmpty"}
            )
        response.body.discard()
