"""
L{multistore.stores.s3.store.S3Store}'s writes, driven directly (no daemon)
against real SeaweedFS and moto servers, through a real
L{multistore.forwarder.agent.AgentForwarder}; what the store did is
checked with boto3 talking to the backend itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IDelayedCall
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from multistore.config import BucketConfig
from multistore.forwarder.agent import AgentForwarder
from multistore.headers import HeaderList
from multistore.interfaces import IForwarder
from multistore.model import (
    BackendRequest,
    BackendResponse,
    CompletedPart,
    CopySource,
    ObjectWrite,
)
from multistore.s3.errors import S3Error
from multistore.stores.s3.store import PART_SIZE, S3Store
from tests.integration.servers import S3Server, error_code, unique_bucket_name

reactor: Any = _global_reactor

MiB = 1024 * 1024

#: Keys that need encoding everywhere they appear.
ODD_KEYS = ("dir/a b+c%d=e&f", "café/ünï ~*'()!", "semi;colon:at@[x]", "x" * 200)


def inline(
    f: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., Deferred[None]]:
    """
    Run an C{async def} test method as a Deferred.
    """

    @wraps(f)
    def run(*args: Any, **kwargs: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(f(*args, **kwargs))

    return run


def sleep(seconds: float) -> Deferred[None]:
    """
    Wait on the reactor.
    """
    return deferLater(reactor, seconds, lambda: None)


class BodyFailed(Exception):
    """
    The failure a test body ends with (a digest that does not match, a
    client that went away).
    """


@implementer(IBodyProducer)
class StreamedBody:
    """
    A request body written in chunks on later turns of the reactor,
    honouring pause and resume, that can fail after a given number of bytes
    (at once, or after a delay that lets the transport send them all).

    :ivar written: the bytes written so far.
    :ivar stopped: whether C{stopProducing} was called.
    :ivar pauses: how many times C{pauseProducing} was called.
    :ivar most_ahead: if C{sent} was given, the most bytes written before
        the backend had been sent them, at any write.
    """

    def __init__(
        self,
        data: bytes,
        *,
        chunk: int = 64 * 1024,
        fail_at: int | None = None,
        fail_delay: float = 0.0,
        unknown_length: bool = False,
        sent: Callable[[], int] | None = None,
        on_fail: Callable[[], object] | None = None,
    ) -> None:
        """
        :param sent: how many bytes of the body the backend has been sent.
        :param on_fail: called just after the body fails (to cancel the
            write at once, as the gateway does when a client goes away).
        """
        self.length: object = UNKNOWN_LENGTH if unknown_length else len(data)
        self.written = 0
        self.stopped = False
        self.started = False
        self.pauses = 0
        self.most_ahead = 0
        self._sent = sent
        self._on_fail = on_fail
        self._data = data
        self._chunk = chunk
        self._fail_at = fail_at
        self._fail_delay = fail_delay
        self._paused = False
        self._consumer: IConsumer | None = None
        self._done: Deferred[None] | None = None
        self._call: IDelayedCall | None = None
        self._waited = False

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """
        Start writing to ``consumer`` on the next turn of the reactor.
        """
        self.started = True
        self._consumer = consumer
        self._done = Deferred(lambda _: self.stopProducing())
        self._schedule()
        return self._done

    def _schedule(self, delay: float = 0.0) -> None:
        if self._call is None and not self._paused and not self.stopped:
            self._call = reactor.callLater(delay, self._step)

    def _step(self) -> None:
        self._call = None
        if self.stopped or self._paused:
            return
        assert self._done is not None and self._consumer is not None
        end = len(self._data) if self._fail_at is None else self._fail_at
        if self.written >= end:
            if self._fail_delay and not self._waited:
                # Give the transport time to send everything written so far.
                self._waited = True
                self._schedule(self._fail_delay)
                return
            self.stopped = True
            if self._fail_at is None:
                self._done.callback(None)
            else:
                self._done.errback(BodyFailed("the body did not verify"))
                if self._on_fail is not None:
                    self._on_fail()
            return
        piece = self._data[self.written : min(end, self.written + self._chunk)]
        self.written += len(piece)
        self._consumer.write(piece)
        if self._sent is not None:
            self.most_ahead = max(self.most_ahead, self.written - self._sent())
        self._schedule()

    def pauseProducing(self) -> None:
        """
        Stop writing until resumed.
        """
        self.pauses += 1
        self._paused = True
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def resumeProducing(self) -> None:
        """
        Carry on writing.
        """
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        """
        Stop for good; the result never fires.
        """
        self.stopped = True
        if self._call is not None:
            self._call.cancel()
            self._call = None


@implementer(IForwarder)
class CountingForwarder:
    """
    Forwards through another forwarder, counting the body bytes of the PUTs
    it sends.
    """

    def __init__(self, inner: IForwarder) -> None:
        self._inner = inner
        self._sent = 0

    def sent(self) -> int:
        """
        The body bytes of every PUT forwarded so far.
        """
        return self._sent

    def forward(self, request: BackendRequest) -> Deferred[BackendResponse]:
        """
        Count, then forward.
        """
        if request.method == "PUT" and request.body is not None:
            length = request.body.length
            assert isinstance(length, int)
            self._sent += length
        return self._inner.forward(request)


def md5_header(data: bytes) -> str:
    """
    The ``Content-MD5`` of ``data``.
    """
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def crc32_header(data: bytes) -> str:
    """
    The ``x-amz-checksum-crc32`` of ``data``.
    """
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


class _WriteTests:
    """
    Mixed into a trial C{TestCase}: the write path of L{S3Store} against the
    backend named by C{server_fixture}, in a fresh bucket per test.
    """

    server_fixture = "seaweedfs"
    timeout = 120

    server: S3Server
    bucket_name: str

    # Provided by TestCase.
    addCleanup: Callable[..., None]
    assertEqual: Callable[..., None]
    assertIn: Callable[..., None]
    assertTrue: Callable[..., None]
    assertFalse: Callable[..., None]
    assertIsInstance: Callable[..., None]
    fail: Callable[..., Any]

    @pytest.fixture(autouse=True)
    def _backend(self, request: pytest.FixtureRequest) -> None:
        self.server = request.getfixturevalue(self.server_fixture)
        self.client = self.server.client()
        self.bucket_name = self.server.create_bucket(unique_bucket_name("writes"))
        self._forwarder: AgentForwarder | None = None

    def store(self, bucket_name: str | None = None, **options: str) -> S3Store:
        """
        A store on ``bucket_name`` (the test's bucket by default), sharing
        one forwarder that is closed after the test.
        """
        if self._forwarder is None:
            self._forwarder = AgentForwarder.create(
                reactor,
                connect_timeout=5.0,
                timeout=30.0,
                max_connections_per_host=4,
                user_agent="multistore-test/1",
            )
            self.addCleanup(self._forwarder.close)
        name = bucket_name or self.bucket_name
        bucket = BucketConfig(
            name="virtual",
            backend_type="s3",
            backend_options=self.server.backend_options(name, **options),
        )
        return S3Store(bucket, self._forwarder, reactor)

    def exists(self, key: str, bucket: str | None = None) -> bool:
        """
        Whether the backend has ``key``.
        """
        try:
            self.client.head_object(Bucket=bucket or self.bucket_name, Key=key)
        except ClientError as error:
            if error_code(error) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def read(self, key: str, bucket: str | None = None) -> bytes:
        """
        The backend's copy of ``key``.
        """
        response = self.client.get_object(Bucket=bucket or self.bucket_name, Key=key)
        data: bytes = response["Body"].read()
        return data

    async def put(
        self, key: str, data: bytes, *headers: tuple[str, str], **kwargs: Any
    ) -> HeaderList:
        """
        Put ``data`` through the store.

        :return: the response headers.
        """
        body = StreamedBody(data, **kwargs)
        write = ObjectWrite(key=key, body=body, headers=HeaderList(headers))
        response = await self.store().put_object(write)
        self.assertEqual(response.status, 200)
        return response.headers

    async def error_of(self, d: Deferred[Any]) -> S3Error:
        """
        :return: the L{S3Error} ``d`` fails with.
        """
        try:
            await d
        except S3Error as error:
            return error
        self.fail("no error")
        raise AssertionError("unreachable")

    # --- PutObject ------------------------------------------------------------

    @inline
    async def test_put_with_headers(self) -> None:
        """
        An object and everything it carries arrive: content headers,
        metadata, tagging, a Content-MD5 and a CRC32 checksum the backend
        verifies; the answer carries the ETag (and the checksum).
        """
        data = os.urandom(300_000)
        key = "dir/with headers é+%"
        headers = await self.put(
            key,
            data,
            ("content-type", "application/x-test"),
            ("content-disposition", 'attachment; filename="x.bin"'),
            ("content-language", "fr"),
            ("cache-control", "max-age=60"),
            ("content-encoding", "identity"),
            ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
            ("x-amz-meta-owner", "someone"),
            ("x-amz-meta-empty", ""),
            ("x-amz-tagging", "a=1&b=two"),
            ("content-md5", md5_header(data)),
            ("x-amz-checksum-crc32", crc32_header(data)),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
        )
        self.assertEqual(headers.get("etag"), f'"{hashlib.md5(data).hexdigest()}"')
        self.assertFalse({"content-length", "x-amz-request-id"} & headers.names())
        self.assertEqual(self.read(key), data)
        head = self.client.head_object(Bucket=self.bucket_name, Key=key)
        self.assertEqual(head["ContentType"], "application/x-test")
        self.assertEqual(head["ContentDisposition"], 'attachment; filename="x.bin"')
        self.assertEqual(head["ContentLanguage"], "fr")
        self.assertEqual(head["CacheControl"], "max-age=60")
        self.assertEqual(head["Metadata"].get("owner"), "someone")
        tags = self.client.get_object_tagging(Bucket=self.bucket_name, Key=key)
        self.assertEqual(
            sorted((t["Key"], t["Value"]) for t in tags["TagSet"]),
            [("a", "1"), ("b", "two")],
        )

    @inline
    async def test_put_odd_keys(self) -> None:
        """
        Keys that need encoding are stored under exactly that key.
        """
        for key in ODD_KEYS:
            await self.put(key, key.encode())
            self.assertEqual(self.read(key), key.encode())

    @inline
    async def test_put_empty(self) -> None:
        """
        An empty body makes an empty object.
        """
        await self.put("empty", b"")
        self.assertEqual(self.read("empty"), b"")

    @inline
    async def test_put_large(self) -> None:
        """
        A body of several MiB in small chunks arrives whole.
        """
        data = os.urandom(12 * MiB + 7)
        await self.put("large", data, chunk=16 * 1024)
        self.assertEqual(
            hashlib.sha256(self.read("large")).digest(), hashlib.sha256(data).digest()
        )

    @inline
    async def test_conditional_put(self) -> None:
        """
        ``If-None-Match: *`` on an existing key and ``If-Match`` with another
        ETag are ``PreconditionFailed``; the object is unchanged.
        """
        await self.put("cond", b"first")
        for condition in (("if-none-match", "*"), ("if-match", '"0000"')):
            error = await self.error_of(
                self.store().put_object(
                    ObjectWrite(
                        key="cond",
                        body=StreamedBody(b"second"),
                        headers=HeaderList([condition]),
                    )
                )
            )
            self.assertEqual((error.code, error.status), ("PreconditionFailed", 412))
        self.assertEqual(self.read("cond"), b"first")
        etag = f'"{hashlib.md5(b"first").hexdigest()}"'
        await self.put("cond", b"third", ("if-match", etag))
        await self.put("new", b"fresh", ("if-none-match", "*"))
        self.assertEqual((self.read("cond"), self.read("new")), (b"third", b"fresh"))

    @inline
    async def test_body_fails_midway(self) -> None:
        """
        A body that fails half-way fails the put with the body's own error,
        and the backend has no object.
        """
        data = os.urandom(2 * MiB)
        body = StreamedBody(data, fail_at=MiB)
        d = self.store().put_object(ObjectWrite(key="half", body=body))
        with pytest.raises(BodyFailed):
            await d
        await sleep(0.5)
        self.assertFalse(self.exists("half"))

    @inline
    async def test_body_fails_at_the_end(self) -> None:
        """
        A body that fails after producing every byte (a trailing checksum
        that does not match) still leaves no object: its last byte was never
        sent.
        """
        for size in (1, 10, 300_000):
            data = os.urandom(size)
            body = StreamedBody(data, fail_at=size, fail_delay=0.3)
            d = self.store().put_object(ObjectWrite(key=f"end-{size}", body=body))
            with pytest.raises(BodyFailed):
                await d
            self.assertEqual(body.written, size)
        await sleep(0.5)
        for size in (1, 10, 300_000):
            self.assertFalse(self.exists(f"end-{size}"))

    @inline
    async def test_empty_body_fails(self) -> None:
        """
        An empty body that fails leaves no object either.
        """
        body = StreamedBody(b"", fail_at=0, fail_delay=0.3)
        with pytest.raises(BodyFailed):
            await self.store().put_object(ObjectWrite(key="empty-bad", body=body))
        self.assertFalse(self.exists("empty-bad"))

    def uploads_of(self, key: str) -> list[str]:
        """
        The ids of the backend's multipart uploads of ``key``.
        """
        listing = self.client.list_multipart_uploads(Bucket=self.bucket_name)
        return [u["UploadId"] for u in listing.get("Uploads", []) if u["Key"] == key]

    @inline
    async def test_unknown_length_whole(self) -> None:
        """
        A body of unknown length no longer than a part is stored as one
        object once it has ended, with its headers and its MD5 as ETag.
        """
        for size in (0, 1, 300_000, PART_SIZE):
            data = os.urandom(size)
            key = f"chunked é+%/{size}"
            headers = await self.put(
                key,
                data,
                ("content-type", "application/x-chunked"),
                ("content-md5", md5_header(data)),
                unknown_length=True,
            )
            self.assertEqual(headers.get("etag"), f'"{hashlib.md5(data).hexdigest()}"')
            self.assertEqual(self.read(key), data)
            head = self.client.head_object(Bucket=self.bucket_name, Key=key)
            self.assertEqual(head["ContentType"], "application/x-chunked")
        self.assertEqual(self.uploads_of(key), [])

    @inline
    async def test_unknown_length_in_parts(self) -> None:
        """
        A 20 MiB body of unknown length arrives byte for byte, as a
        multipart upload of 8 MiB parts that leaves no upload behind; the
        object has its headers and a multipart ETag; the body is paused
        while a part is full and never read more than two parts ahead of
        the backend.
        """
        data = os.urandom(20 * MiB)
        key = "chunked/big é+%"
        plain = self.store()
        forwarder = CountingForwarder(plain.forwarder)
        store = S3Store(plain.bucket, forwarder, reactor)
        body = StreamedBody(data, unknown_length=True, sent=forwarder.sent)
        write = ObjectWrite(
            key=key,
            body=body,
            headers=HeaderList(
                [
                    ("content-type", "application/x-big"),
                    ("x-amz-meta-kind", "chunked"),
                    ("x-amz-tagging", "a=1"),
                ]
            ),
        )
        response = await store.put_object(write)
        etag = response.headers.get("etag") or ""
        self.assertTrue(etag.endswith('-3"'), etag)
        stored = self.read(key)
        self.assertEqual(len(stored), len(data))
        self.assertEqual(hashlib.sha256(stored).digest(), hashlib.sha256(data).digest())
        head = self.client.head_object(Bucket=self.bucket_name, Key=key)
        self.assertEqual(head["ContentType"], "application/x-big")
        self.assertEqual(head["Metadata"].get("kind"), "chunked")
        self.assertEqual(head["ETag"], etag)
        self.assertEqual(self.uploads_of(key), [])
        self.assertEqual(forwarder.sent(), len(data))
        self.assertTrue(body.pauses >= 2, body.pauses)
        self.assertTrue(
            body.most_ahead <= 2 * PART_SIZE + 64 * 1024, (body.most_ahead, PART_SIZE)
        )

    @inline
    async def test_unknown_length_fails(self) -> None:
        """
        A body of unknown length that fails, in its first part, half-way
        through a later one, or after its last byte, fails the put with its
        own error and leaves neither an object nor an upload.
        """
        size = 20 * MiB
        for fail_at, delay in ((MiB, 0.0), (12 * MiB, 0.0), (size, 0.3)):
            key = f"chunked-bad/{fail_at}"
            body = StreamedBody(
                os.urandom(size),
                fail_at=fail_at,
                fail_delay=delay,
                unknown_length=True,
            )
            with pytest.raises(BodyFailed):
                await self.store().put_object(ObjectWrite(key=key, body=body))
            self.assertEqual(body.written, fail_at)
            self.assertFalse(self.exists(key))
            self.assertEqual(self.uploads_of(key), [])

    @inline
    async def test_unknown_length_client_gone(self) -> None:
        """
        A client that goes away half-way through a body of unknown length
        (its body fails and its write is cancelled at once) leaves neither
        an object nor an upload.
        """
        key = "chunked-gone"
        putting: Deferred[Any] | None = None

        def cancel() -> None:
            assert putting is not None
            putting.cancel()

        body = StreamedBody(
            os.urandom(20 * MiB), fail_at=12 * MiB, unknown_length=True, on_fail=cancel
        )
        putting = self.store().put_object(ObjectWrite(key=key, body=body))
        with pytest.raises(BodyFailed):
            await putting
        for _ in range(50):
            if not self.uploads_of(key):
                break
            await sleep(0.1)
        self.assertEqual(self.uploads_of(key), [])
        self.assertFalse(self.exists(key))

    @inline
    async def test_unknown_length_conditional(self) -> None:
        """
        ``If-None-Match: *`` holds for a body of unknown length sent in
        parts: an existing key is ``PreconditionFailed``, unchanged, with no
        upload left behind.
        """
        await self.put("cond-big", b"first")
        body = StreamedBody(os.urandom(9 * MiB), unknown_length=True)
        error = await self.error_of(
            self.store().put_object(
                ObjectWrite(
                    key="cond-big",
                    body=body,
                    headers=HeaderList([("if-none-match", "*")]),
                )
            )
        )
        self.assertEqual((error.code, error.status), ("PreconditionFailed", 412))
        self.assertEqual(self.read("cond-big"), b"first")
        self.assertEqual(self.uploads_of("cond-big"), [])

    @inline
    async def test_unknown_length_part(self) -> None:
        """
        A part of unknown length is refused with 411, as S3 does, and the
        upload is untouched.
        """
        store = self.store()
        upload_id = await store.create_multipart_upload("chunked-part", HeaderList())
        with self.assertRaises(S3Error) as raised:
            await store.upload_part(
                ObjectWrite(
                    key="chunked-part",
                    body=StreamedBody(b"x" * 100, unknown_length=True),
                ),
                upload_id,
                1,
            )
        self.assertEqual(raised.exception.code, "MissingContentLength")
        page = await store.list_parts("chunked-part", upload_id, 1000, 0)
        self.assertEqual(page.parts, ())
        await store.abort_multipart_upload("chunked-part", upload_id)

    # --- multipart ------------------------------------------------------------

    @inline
    async def test_multipart(self) -> None:
        """
        An upload is created with metadata, listed, its parts uploaded and
        listed, and completed into the object.
        """
        store = self.store()
        key = "multi/part é+%"
        upload_id = await store.create_multipart_upload(
            key,
            HeaderList(
                [("content-type", "application/x-parts"), ("x-amz-meta-kind", "mp")]
            ),
        )
        self.assertTrue(upload_id)
        uploads = await store.list_multipart_uploads("multi/", None, None, None, 100)
        self.assertIn((key, upload_id), [(u.key, u.upload_id) for u in uploads.uploads])
        rolled = await store.list_multipart_uploads("", "/", None, None, 100)
        self.assertEqual(rolled.common_prefixes, ("multi/",))
        first, second = os.urandom(5 * MiB), os.urandom(1234)
        etags = []
        for number, data in ((1, first), (2, second)):
            response = await store.upload_part(
                ObjectWrite(
                    key=key,
                    body=StreamedBody(data),
                    headers=HeaderList([("content-md5", md5_header(data))]),
                ),
                upload_id,
                number,
            )
            etag = response.headers.get("etag")
            self.assertEqual(etag, f'"{hashlib.md5(data).hexdigest()}"')
            etags.append(etag or "")
        page = await store.list_parts(key, upload_id, 1000, 0)
        self.assertEqual(
            [(p.part_number, p.etag, p.size) for p in page.parts],
            [(1, etags[0], len(first)), (2, etags[1], len(second))],
        )
        self.assertFalse(page.truncated)
        one = await store.list_parts(key, upload_id, 1, 0)
        self.assertEqual([p.part_number for p in one.parts], [1])
        self.assertTrue(one.truncated)
        self.assertEqual(one.next_part_number_marker, 1)
        rest = await store.list_parts(key, upload_id, 1, 1)
        self.assertEqual([p.part_number for p in rest.parts], [2])
        result = await store.complete_multipart_upload(
            key,
            upload_id,
            [CompletedPart(1, etags[0]), CompletedPart(2, etags[1])],
            HeaderList(),
        )
        self.assertTrue(result.etag.endswith('-2"'), result.etag)
        self.assertEqual(self.read(key), first + second)
        head = self.client.head_object(Bucket=self.bucket_name, Key=key)
        self.assertEqual(head["ContentType"], "application/x-parts")
        self.assertEqual(head["Metadata"].get("kind"), "mp")
        after = await store.list_multipart_uploads("multi/", None, None, None, 100)
        self.assertEqual(after.uploads, ())

    @inline
    async def test_abort(self) -> None:
        """
        An aborted upload is gone: no longer listed, its parts not listable.
        """
        store = self.store()
        upload_id = await store.create_multipart_upload("aborted", HeaderList())
        await store.upload_part(
            ObjectWrite(key="aborted", body=StreamedBody(b"part")), upload_id, 1
        )
        await store.abort_multipart_upload("aborted", upload_id)
        uploads = await store.list_multipart_uploads("", None, None, None, 100)
        self.assertEqual(uploads.uploads, ())
        error = await self.error_of(store.list_parts("aborted", upload_id, 10, 0))
        self.assertEqual((error.code, error.status), ("NoSuchUpload", 404))
        # Aborting again is NoSuchUpload on S3 and moto; SeaweedFS accepts it.
        try:
            await store.abort_multipart_upload("aborted", upload_id)
        except S3Error as again:
            self.assertEqual(again.code, "NoSuchUpload")
        self.assertFalse(self.exists("aborted"))

    @inline
    async def test_bad_completions(self) -> None:
        """
        Completing with an unknown part is ``InvalidPart``; with a small part
        that is not the last, ``EntityTooSmall``.
        """
        store = self.store()
        upload_id = await store.create_multipart_upload("bad", HeaderList())
        etags = []
        for number in (1, 2):
            response = await store.upload_part(
                ObjectWrite(key="bad", body=StreamedBody(b"small part")),
                upload_id,
                number,
            )
            etags.append(response.headers.get("etag") or "")
        error = await self.error_of(
            store.complete_multipart_upload(
                "bad", upload_id, [CompletedPart(1, '"' + "0" * 32 + '"')], HeaderList()
            )
        )
        self.assertEqual(error.code, "InvalidPart")
        error = await self.error_of(
            store.complete_multipart_upload(
                "bad",
                upload_id,
                [CompletedPart(1, etags[0]), CompletedPart(2, etags[1])],
                HeaderList(),
            )
        )
        self.assertEqual(error.code, "EntityTooSmall")
        self.assertFalse(self.exists("bad"))

    @inline
    async def test_upload_part_copy(self) -> None:
        """
        A part copied from a range of an object becomes part of the new
        object.
        """
        store = self.store()
        source_data = os.urandom(6 * MiB)
        await self.put("source", source_data)
        upload_id = await store.create_multipart_upload("assembled", HeaderList())
        source = CopySource(
            bucket=store.bucket, key="source", range=f"bytes=0-{5 * MiB - 1}"
        )
        copied = await store.upload_part_copy(source, "assembled", upload_id, 1)
        tail = await store.upload_part(
            ObjectWrite(key="assembled", body=StreamedBody(b"tail")), upload_id, 2
        )
        await store.complete_multipart_upload(
            "assembled",
            upload_id,
            [
                CompletedPart(1, copied.etag),
                CompletedPart(2, tail.headers.get("etag") or ""),
            ],
            HeaderList(),
        )
        self.assertEqual(self.read("assembled"), source_data[: 5 * MiB] + b"tail")

    # --- CopyObject -----------------------------------------------------------

    @inline
    async def test_copy(self) -> None:
        """
        A copy keeps the source's metadata by default and replaces it with
        ``x-amz-metadata-directive: REPLACE``; odd keys on both sides work.
        """
        store = self.store()
        source_key = ODD_KEYS[0]
        await self.put(
            source_key,
            b"copied bytes",
            ("content-type", "text/x-source"),
            ("x-amz-meta-origin", "source"),
        )
        source = CopySource(bucket=store.bucket, key=source_key)
        kept = await store.copy_object(source, ODD_KEYS[1], HeaderList())
        self.assertEqual(kept.etag, f'"{hashlib.md5(b"copied bytes").hexdigest()}"')
        head = self.client.head_object(Bucket=self.bucket_name, Key=ODD_KEYS[1])
        self.assertEqual(head["ContentType"], "text/x-source")
        self.assertEqual(head["Metadata"], {"origin": "source"})
        await store.copy_object(
            source,
            "replaced",
            HeaderList(
                [
                    ("x-amz-metadata-directive", "REPLACE"),
                    ("content-type", "text/x-new"),
                    ("x-amz-meta-fresh", "yes"),
                ]
            ),
        )
        head = self.client.head_object(Bucket=self.bucket_name, Key="replaced")
        self.assertEqual(head["ContentType"], "text/x-new")
        self.assertEqual(head["Metadata"], {"fresh": "yes"})
        self.assertEqual(self.read("replaced"), b"copied bytes")

    @inline
    async def test_copy_missing_source(self) -> None:
        """
        A copy from a missing source is ``NoSuchKey``.
        """
        store = self.store()
        missing = CopySource(bucket=store.bucket, key="missing")
        error = await self.error_of(store.copy_object(missing, "dst", HeaderList()))
        self.assertEqual((error.code, error.status), ("NoSuchKey", 404))
        self.assertFalse(self.exists("dst"))

    @inline
    async def test_copy_between_buckets(self) -> None:
        """
        A copy from another bucket on the same service, with the same
        credentials, happens on the server; from another service it is
        ``NotImplemented``.
        """
        other = self.server.create_bucket(unique_bucket_name("source"))
        self.client.put_object(Bucket=other, Key="there", Body=b"from elsewhere")
        store = self.store()
        source = CopySource(bucket=self.store(other).bucket, key="there")
        await store.copy_object(source, "here", HeaderList())
        self.assertEqual(self.read("here"), b"from elsewhere")
        elsewhere = BucketConfig(
            name="far",
            backend_type="s3",
            backend_options=self.server.backend_options(
                other, endpoint="http://127.0.0.2:1"
            ),
        )
        error = await self.error_of(
            store.copy_object(
                CopySource(bucket=elsewhere, key="there"), "x", HeaderList()
            )
        )
        self.assertEqual(error.code, "NotImplemented")

    # --- deletes --------------------------------------------------------------

    @inline
    async def test_delete(self) -> None:
        """
        Deleting a key removes it; deleting it again still succeeds.
        """
        await self.put("doomed", b"x")
        store = self.store()
        for _ in range(2):
            response = await store.delete_object("doomed", None)
            self.assertEqual(response.status, 204)
            self.assertFalse(self.exists("doomed"))

    @inline
    async def test_delete_objects(self) -> None:
        """
        A batch delete removes every key named, odd ones included, and
        reports each (a missing key as deleted too).
        """
        keys = [*ODD_KEYS, "plain"]
        for key in keys:
            await self.put(key, b"x")
        outcomes = await self.store().delete_objects(
            [(key, None) for key in [*keys, "never-there"]]
        )
        self.assertEqual(
            sorted((o.key, o.error) for o in outcomes),
            sorted((key, None) for key in [*keys, "never-there"]),
        )
        for key in keys:
            self.assertFalse(self.exists(key))

    # --- buckets --------------------------------------------------------------

    @inline
    async def test_buckets(self) -> None:
        """
        A bucket is created, cannot be deleted while it holds an object, and
        then is deleted; it cannot be deleted twice.
        """
        name = unique_bucket_name("made")
        store = self.store(name)
        await store.create_bucket()
        self.client.head_bucket(Bucket=name)
        try:
            # In us-east-1, S3 (and moto) answer 200 to creating one's own
            # bucket again; elsewhere it is BucketAlreadyOwnedByYou.
            await store.create_bucket()
        except S3Error as again:
            self.assertEqual(
                (again.code, again.status), ("BucketAlreadyOwnedByYou", 409)
            )
        self.client.put_object(Bucket=name, Key="k", Body=b"x")
        error = await self.error_of(store.delete_bucket())
        self.assertEqual((error.code, error.status), ("BucketNotEmpty", 409))
        await store.delete_object("k", None)
        await store.delete_bucket()
        error = await self.error_of(store.delete_bucket())
        self.assertEqual((error.code, error.status), ("NoSuchBucket", 404))


class _StrictWriteTests(_WriteTests):
    """
    What only backends that check more than moto does can show: digests,
    copy conditions, completions of unknown uploads.
    """

    @inline
    async def test_bad_md5(self) -> None:
        """
        A Content-MD5 that does not match is ``BadDigest``, and no object
        appears.
        """
        data = b"some bytes"
        error = await self.error_of(
            self.store().put_object(
                ObjectWrite(
                    key="bad-md5",
                    body=StreamedBody(data),
                    headers=HeaderList([("content-md5", md5_header(b"other"))]),
                )
            )
        )
        self.assertEqual((error.code, error.status), ("BadDigest", 400))
        self.assertFalse(self.exists("bad-md5"))

    @inline
    async def test_copy_conditions(self) -> None:
        """
        An ``x-amz-copy-source-if-match`` that does not hold is
        ``PreconditionFailed``.
        """
        store = self.store()
        await self.put("src", b"data")
        source = CopySource(
            bucket=store.bucket,
            key="src",
            conditions=HeaderList([("x-amz-copy-source-if-match", '"0000"')]),
        )
        error = await self.error_of(store.copy_object(source, "dst", HeaderList()))
        self.assertEqual((error.code, error.status), ("PreconditionFailed", 412))
        self.assertFalse(self.exists("dst"))

    @inline
    async def test_complete_unknown_upload(self) -> None:
        """
        Completing an upload that does not exist is ``NoSuchUpload``.
        """
        error = await self.error_of(
            self.store().complete_multipart_upload(
                "k", "no-such-upload", [CompletedPart(1, '"abc"')], HeaderList()
            )
        )
        self.assertEqual((error.code, error.status), ("NoSuchUpload", 404))


class SeaweedFSWriteTests(_StrictWriteTests, TestCase):
    """
    The write path against SeaweedFS, which verifies signatures.
    """

    server_fixture = "seaweedfs"


class MotoWriteTests(_WriteTests, TestCase):
    """
    The write path against moto (which does not check Content-MD5 or copy
    conditions, and fails with a 500 to complete an unknown upload).
    """

    server_fixture = "moto_server"
