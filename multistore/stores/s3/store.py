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
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from attrs import evolve, frozen
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from multistore.auth.canonical import EMPTY_SHA256, UNSIGNED_PAYLOAD, uri_encode
from multistore.auth.signing import sign_request
from multistore.bodies import BytesProducer, read_body
from multistore.config import BucketConfig
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import IForwarder, IObjectStore
from multistore.model import (
    BackendRequest,
    BackendResponse,
    CompletedPart,
    CopyResult,
    CopySource,
    DeleteOutcome,
    ListPage,
    ListRequest,
    ObjectRead,
    ObjectResponse,
    ObjectWrite,
    PartsPage,
    UploadsPage,
)
from multistore.s3.errors import STATUS_OF, S3Error
from multistore.s3.xml import MAX_DELETE_KEYS, parse_untrusted, xml_can_carry
from multistore.stores.failures import failed, refused
from multistore.stores.s3.xml import (
    complete_request_document,
    create_bucket_document,
    delete_request_document,
    parse_complete_result,
    parse_copy_result,
    parse_delete_result,
    parse_error_document,
    parse_initiate_result,
    parse_list_objects_v2,
    parse_list_parts,
    parse_list_uploads,
)
from multistore.stores.streaming import (
    CHECKSUM_VALUES,
    CONDITIONS,
    OBJECT_REQUEST_HEADERS,
    OBJECT_REQUEST_PREFIXES,
    AllowList,
    Chunks,
    PartBuffer,
    allowed_headers,
    cannot_copy,
    deferred,
    deleted,
    error_body,
    finish_quietly,
    held,
    now,
    object_headers,
    on_same_service,
    service_root,
    shielded,
    write_response_headers,
)

#: Largest listing read from a backend (a page of 1000 keys of 1024 bytes,
#: url-encoded, with their metadata, fits several times over); also the
#: limit for ListParts, ListMultipartUploads and DeleteObjects answers.
MAX_LISTING: Final = 8 * 1024 * 1024

#: Largest answer to CreateMultipartUpload, CopyObject, UploadPartCopy or
#: CompleteMultipartUpload read from a backend (S3 pads the answers of long
#: copies and completions with whitespace while it works).
MAX_RESULT_DOCUMENT: Final = 1024 * 1024

#: Size of every part but the last of an upload of unknown length that
#: L{S3Store.put_object} sends in parts; the most of such a body held in
#: memory while it fills (above the 5 MiB S3 asks of a part).
PART_SIZE: Final = 8 * 1024 * 1024

#: Most parts in one upload (S3's limit): a body of unknown length may be
#: up to C{MAX_PARTS * PART_SIZE} bytes.
MAX_PARTS: Final = 10_000

_CUSTOMER_KEY: Final = "x-amz-server-side-encryption-customer-"
_SOURCE_CUSTOMER_KEY: Final = "x-amz-copy-source-server-side-encryption-customer-"

#: The request headers each write passes on.
_PUT_HEADERS: Final = AllowList(
    OBJECT_REQUEST_HEADERS
    | CHECKSUM_VALUES
    | CONDITIONS
    | {"content-md5", "x-amz-sdk-checksum-algorithm"},
    OBJECT_REQUEST_PREFIXES,
)
_CREATE_UPLOAD_HEADERS: Final = AllowList(
    OBJECT_REQUEST_HEADERS | {"x-amz-checksum-algorithm", "x-amz-checksum-type"},
    OBJECT_REQUEST_PREFIXES,
)
_PART_HEADERS: Final = AllowList(
    CHECKSUM_VALUES | {"content-md5", "x-amz-sdk-checksum-algorithm"},
    (_CUSTOMER_KEY,),
)
_COMPLETE_HEADERS: Final = AllowList(
    CHECKSUM_VALUES | CONDITIONS | {"x-amz-checksum-type", "x-amz-mp-object-size"},
    (_CUSTOMER_KEY,),
)
_COPY_HEADERS: Final = AllowList(
    OBJECT_REQUEST_HEADERS
    | CONDITIONS
    | {
        "x-amz-checksum-algorithm",
        "x-amz-metadata-directive",
        "x-amz-tagging-directive",
    },
    (*OBJECT_REQUEST_PREFIXES, _SOURCE_CUSTOMER_KEY),
)
#: What the parts and completion of an object of unknown length sent in
#: parts pass on from its write: the customer's encryption key, which every
#: part needs, and the conditions, which the completion checks. The
#: object's own digests describe no part and are verified by the gateway.
_BUFFERED_PART_HEADERS: Final = AllowList(frozenset(), (_CUSTOMER_KEY,))
_BUFFERED_COMPLETE_HEADERS: Final = AllowList(CONDITIONS, (_CUSTOMER_KEY,))
_PART_COPY_HEADERS: Final = AllowList(
    frozenset(), (_CUSTOMER_KEY, _SOURCE_CUSTOMER_KEY)
)
_COPY_CONDITIONS: Final = AllowList(
    frozenset(
        {
            "x-amz-copy-source-if-match",
            "x-amz-copy-source-if-none-match",
            "x-amz-copy-source-if-modified-since",
            "x-amz-copy-source-if-unmodified-since",
        }
    )
)

#: Backend error codes passed on as they are (others become 503).
_PASSED_CODES: Final = frozenset(
    {
        "NoSuchKey",
        "NoSuchBucket",
        "NoSuchVersion",
        "NoSuchUpload",
        "PreconditionFailed",
        "InvalidRange",
        "InvalidPartNumber",
        "InvalidArgument",
        "InvalidRequest",
        "InvalidObjectState",
        "SlowDown",
        "EntityTooLarge",
        "EntityTooSmall",
        "InvalidPart",
        "InvalidPartOrder",
        "BadDigest",
        "InvalidDigest",
        "KeyTooLongError",
        "MethodNotAllowed",
        "BucketNotEmpty",
        "BucketAlreadyOwnedByYou",
        "BucketAlreadyExists",
        "InvalidBucketName",
        "XAmzContentSHA256Mismatch",
        "MalformedXML",
        "IncompleteBody",
        "NotImplemented",
    }
)


def forwarded_headers(headers: HeaderList, allowed: AllowList) -> HeaderList:
    """
    Choose the request headers a write passes on to the backend.

    :param headers: the headers the caller gave.
    :param allowed: what this write passes on.
    :return: the allowed headers, in order, as L{allowed_headers} chooses
        them; ``x-amz-sdk-checksum-algorithm`` kept only with the
        ``x-amz-checksum-*`` header it names (S3 refuses it otherwise, and
        a trailing checksum is verified by the gateway, not sent on).
    """
    kept = allowed_headers(headers, allowed)
    present = kept.names()
    return HeaderList(
        (name, value)
        for name, value in kept
        if name != "x-amz-sdk-checksum-algorithm"
        or f"x-amz-checksum-{value.strip().lower()}" in present
    )


def _status_code(status: int) -> str:
    return {
        404: "NoSuchKey",
        409: "OperationAborted",
        412: "PreconditionFailed",
        416: "InvalidRange",
        403: "AccessDenied",
        400: "InvalidRequest",
        405: "MethodNotAllowed",
        503: "SlowDown",
    }.get(status, "ServiceUnavailable")


def _unsatisfied_range(error_body: bytes) -> str | None:
    """
    :return: ``bytes */SIZE`` from the ``ActualObjectSize`` of a backend's
        ``InvalidRange`` document, for backends that say the size there and
        not in a ``Content-Range`` header; ``None`` if it is not there.
    """
    root = parse_untrusted(error_body) if error_body else None
    if root is None:
        return None
    for element in root.iter("{*}ActualObjectSize"):
        size = (element.text or "").strip()
        if size.isascii() and size.isdigit():
            return f"bytes */{int(size)}"
    return None


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


def _content_md5(data: bytes) -> str:
    """
    :return: the ``Content-MD5`` of ``data`` (S3 requires one on
        DeleteObjects).
    """
    digest = hashlib.md5(data, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


@implementer(IObjectStore)
@frozen
class S3Store:
    """
    A virtual bucket's store on an S3-compatible service.

    :ivar bucket: the virtual bucket's configuration.
    :ivar forwarder: the HTTP transport.
    :ivar clock: the time source for signatures.
    """

    log = Logger()

    bucket: BucketConfig
    forwarder: IForwarder
    clock: IReactorTime

    @property
    def _region(self) -> str:
        return self.bucket.option("region", "us-east-1") or "us-east-1"

    def _now(self) -> datetime:
        return now(self.clock)

    def url(self, key: str | None, query: Sequence[tuple[str, str]] = ()) -> str:
        """
        :param query: ``(name, value)`` parameters; one with an empty value
            is sent as its name alone (``?uploads``).
        :return: the wire URL of ``key`` (or of the bucket, for ``None``).
        """
        bucket_name = self.bucket.option("bucket_name", "") or ""
        endpoint = (
            self.bucket.option("endpoint") or f"https://s3.{self._region}.amazonaws.com"
        )
        endpoint = endpoint.rstrip("/")
        object_path = "" if key is None else "/" + uri_encode(key, keep_slash=True)
        if self.bucket.flag("virtual_hosted_style_request"):
            parts = urlsplit(endpoint)
            path = f"{parts.scheme}://{bucket_name}.{parts.netloc}{parts.path}"
            path += object_path or "/"
        else:
            path = (
                f"{endpoint}/{uri_encode(bucket_name, keep_slash=False)}{object_path}"
            )
        if query:
            path += "?" + "&".join(
                uri_encode(n, keep_slash=False)
                + (f"={uri_encode(v, keep_slash=False)}" if v else "")
                for n, v in query
            )
        return path

    def _send(
        self,
        method: str,
        key: str | None,
        query: Sequence[tuple[str, str]] = (),
        headers: HeaderList = NO_HEADERS,
        body: IBodyProducer | None = None,
        payload_hash: str = EMPTY_SHA256,
    ) -> Deferred[BackendResponse]:
        """
        Sign (when the bucket has credentials) and send one request.

        :param payload_hash: the body's hex SHA-256, or ``UNSIGNED-PAYLOAD``
            for a streamed body.
        """
        url = self.url(key, query)
        access_key = self.bucket.option("access_key_id")
        secret = self.bucket.option("secret_access_key")
        if access_key and secret and not self.bucket.flag("skip_signature"):
            headers = sign_request(
                method,
                url,
                headers,
                payload_hash,
                access_key,
                secret,
                self.bucket.option("token"),
                self._region,
                self._now(),
            )
        return self.forwarder.forward(
            BackendRequest(method=method, url=url, headers=headers, body=body)
        )

    def _send_xml(
        self,
        method: str,
        key: str | None,
        query: Sequence[tuple[str, str]],
        document: bytes,
        headers: HeaderList = NO_HEADERS,
    ) -> Deferred[BackendResponse]:
        """
        Send a request whose body is an XML document built here, its hash
        signed.
        """
        return self._send(
            method,
            key,
            query,
            headers,
            BytesProducer(document),
            hashlib.sha256(document).hexdigest(),
        )

    def _mapped(
        self,
        code: str,
        message: str | None,
        status: int,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> S3Error:
        """
        The error a client gets for a backend's error ``code``: the code
        itself if it is the client's business (with multistore's own
        message, never the backend's), ``AccessDenied`` blaming the backend,
        or ``ServiceUnavailable``.
        """
        if code in _PASSED_CODES:
            return S3Error(code, headers=headers)
        if code == "AccessDenied" or status == 403:
            return refused(self.log, self.bucket.name, code, message)
        return failed(
            self.log,
            self.bucket.name,
            status,
            code,
            message,
            slow_down=code == "SlowDown",
        )

    async def _error_code(
        self, response: BackendResponse, head: bool = False
    ) -> tuple[str | None, str | None, bytes]:
        """
        Read a backend error response's document.

        :return: its ``(code, message, body)``; code and message are
            ``None`` if there is no S3 error document.
        """
        body = await error_body(response, head)
        if not body:
            return None, None, b""
        parsed = parse_error_document(body)
        if parsed is None:
            return None, None, body
        return parsed[0], parsed[1], body

    async def _error(
        self,
        response: BackendResponse,
        head: bool = False,
        statuses: Mapping[int, str] | None = None,
    ) -> S3Error:
        """
        Turn a backend error response into the error the client gets.

        :param statuses: the code for a status when the backend sent no
            error document, where it differs from a read's.
        """
        code, message, body = await self._error_code(response, head)
        if code is None:
            code = (statuses or {}).get(response.status) or _status_code(
                response.status
            )
        extra_headers: tuple[tuple[str, str], ...] = ()
        if code == "InvalidRange":
            content_range = response.headers.get("content-range") or _unsatisfied_range(
                body
            )
            if content_range:
                extra_headers = (("content-range", content_range),)
        return self._mapped(code, message, response.status, extra_headers)

    async def _result_document(
        self, response: BackendResponse, statuses: Mapping[int, str] | None = None
    ) -> bytes:
        """
        Read the XML answer of a write that S3 may answer ``200 OK`` and then
        fail in an ``<Error>`` document (copies, completions).

        :return: the answer, which is not an error document.
        :raise S3Error: the mapped error, whatever the status.
        """
        if response.status != 200:
            raise await self._error(response, statuses=statuses)
        body = await read_body(response.body, MAX_RESULT_DOCUMENT)
        parsed = parse_error_document(body)
        if parsed is not None:
            code, message = parsed
            raise self._mapped(code, message, STATUS_OF.get(code, 500))
        return body

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

    # --- uploads --------------------------------------------------------------

    async def _upload(
        self,
        write: ObjectWrite,
        query: Sequence[tuple[str, str]],
        allowed: AllowList,
        statuses: Mapping[int, str],
    ) -> ObjectResponse:
        """
        PUT a body of known length (an object or a part), streamed.

        :raise S3Error: ``MissingContentLength`` for a body of unknown
            length, as S3 answers an UploadPart without one.
        """
        if not isinstance(write.body.length, int):
            raise S3Error("MissingContentLength")
        body = await held(write.body)
        return await self._put(write.key, query, write.headers, allowed, statuses, body)

    async def _put(
        self,
        key: str,
        query: Sequence[tuple[str, str]],
        headers: HeaderList,
        allowed: AllowList,
        statuses: Mapping[int, str],
        body: IBodyProducer | None,
    ) -> ObjectResponse:
        """
        Send one PUT of a body, with the headers ``allowed``.
        """
        response = await self._send(
            "PUT",
            key,
            query,
            forwarded_headers(headers, allowed),
            body,
            UNSIGNED_PAYLOAD,
        )
        if response.status != 200:
            raise await self._error(response, statuses=statuses)
        response.body.discard()
        return ObjectResponse(200, write_response_headers(response.headers))

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

    # --- copies ---------------------------------------------------------------

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
