"""
Tests for L{multistore.stores.local}.

Most tests run against a real temporary directory with a fake thread pool
that queues calls until the test runs them (L{QueuedPool}), so every step is
deterministic; L{RealPoolTests} repeat the essentials on a real
L{ThreadPool} and the real reactor.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from multistore.bodies import DeliveryStopped, IBody
from multistore.config import BucketConfig
from multistore.interfaces import IObjectStore
from multistore.model import ListPage, ListRequest, ObjectRead, ObjectResponse
from multistore.s3.dates import format_http_date
from multistore.s3.errors import S3Error
from multistore.stores.local import (
    FileBody,
    LocalStore,
    guess_content_type,
    synthetic_etag,
)
from multistore.testing import CollectingConsumer

NOW = 1_900_000_000.0


# --- fakes -------------------------------------------------------------------


class InlineReactor:
    """
    The reactor as a store sees it: C{callFromThread} runs at once (the fake
    pool's "threads" are the test's own), C{seconds} is fixed.
    """

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)

    def seconds(self) -> float:
        return self.now

    def getThreadPool(self) -> ThreadPool:
        return QueuedPool()


class QueuedPool(ThreadPool):
    """
    A thread pool whose calls wait in a queue until the test runs them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[
            tuple[Callable[..., None], Callable[..., Any], tuple[Any, ...]]
        ] = []
        self.names: list[str] = []

    def callInThreadWithCallback(
        self,
        onResult: Callable[..., None],
        func: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        assert not kwargs
        self.queue.append((onResult, func, args))
        self.names.append(getattr(func, "__name__", repr(func)))

    def run_one(self) -> None:
        """
        Run the oldest queued call and report its result.
        """
        on_result, func, args = self.queue.pop(0)
        try:
            result = func(*args)
        except BaseException:
            on_result(False, Failure())
        else:
            on_result(True, result)

    def run_all(self, limit: int = 10_000) -> int:
        """
        Run queued calls (including those they queue) until none is left.

        :return: how many ran.
        """
        count = 0
        while self.queue:
            assert count < limit, "the pool never went idle"
            self.run_one()
            count += 1
        return count


class FakeFile:
    """
    A L{multistore.stores.local.ReadableFile} over bytes that records how
    it is used.
    """

    def __init__(self, data: bytes, fail_at: int | None = None) -> None:
        self.data = data
        self.reads: list[tuple[int, int]] = []
        self.closes = 0
        self.fail_at = fail_at
        #: Reads after the close (a body may swallow an exception raised
        #: here, so misuse is recorded and checked by the tests).
        self.late_reads = 0

    def read_at(self, offset: int, size: int) -> bytes:
        if self.closes:
            self.late_reads += 1
        self.reads.append((offset, size))
        if self.fail_at is not None and offset >= self.fail_at:
            raise OSError(5, "Input/output error")
        return self.data[offset : offset + size]

    def close(self) -> None:
        self.closes += 1


def _open_files_under(root: str) -> list[str]:
    """
    The files this process holds open below ``root``.
    """
    found = []
    real = os.path.realpath(root)
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith(real + os.sep):
            found.append(target)
    return found


class _TreeMixin:
    """
    A temporary root directory and helpers to fill it.
    """

    root: str
    addCleanup: Callable[..., None]

    def make_root(self) -> str:
        root = tempfile.mkdtemp(prefix="multistore-local-")
        self.addCleanup(shutil.rmtree, root, True)
        return root

    def put(self, key: str, data: bytes = b"x", *, root: str | None = None) -> str:
        path = os.path.join(root or self.root, *key.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path


# --- FileBody ------------------------------------------------------------------


class FileBodyTests(SynchronousTestCase):
    """
    Tests for L{FileBody}.
    """

    def setUp(self) -> None:
        self.pool = QueuedPool()
        self.reactor = InlineReactor()

    def body(
        self, file: FakeFile, offset: int = 0, length: int | None = None, chunk: int = 4
    ) -> FileBody:
        return FileBody(
            file=file,
            offset=offset,
            length=len(file.data) - offset if length is None else length,
            reactor=self.reactor,  # type: ignore[arg-type]
            threadpool=self.pool,
            chunk_size=chunk,
        )

    def assert_closed_once(self, file: FakeFile) -> None:
        """
        Assert that ``file`` was closed exactly once and never read after.
        """
        self.assertEqual((file.closes, file.late_reads), (1, 0))

    def test_interfaces(self) -> None:
        """
        A body provides L{IBody} and L{IPushProducer}.
        """
        body = self.body(FakeFile(b"abc"))
        self.assertTrue(verifyObject(IBody, body))
        self.assertTrue(verifyObject(IPushProducer, body))
        self.assertEqual(body.length, 3)

    def test_deliver(self) -> None:
        """
        The body registers as a streaming producer before writing, writes
        every chunk in order, closes the file once, unregisters, and then
        fires with the byte count.
        """
        file = FakeFile(b"0123456789")
        body = self.body(file)
        consumer = CollectingConsumer(strict=True)
        delivered = body.deliver(consumer)
        self.assertEqual(consumer.events, ["register"])
        self.assertIs(consumer.producer, body)
        self.assertTrue(consumer.streaming)
        consumer.events.append("pool ran")
        self.pool.run_all()
        self.assertEqual(self.successResultOf(delivered), 10)
        self.assertEqual(consumer.value(), b"0123456789")
        self.assertEqual(consumer.chunks, [b"0123", b"4567", b"89"])
        self.assertEqual(consumer.events[-1], "unregister")
        self.assert_closed_once(file)
        self.assertEqual(file.reads, [(0, 4), (4, 4), (8, 2)])

    def test_closed_before_fired(self) -> None:
        """
        The Deferred fires only after the file has been closed.
        """
        file = FakeFile(b"ab")
        delivered = self.body(file).deliver(CollectingConsumer(strict=True))
        self.pool.run_one()  # the read
        self.assertNoResult(delivered)
        self.assertEqual(self.pool.names, ["read_at", "close"])
        self.pool.run_one()  # the close
        self.assertEqual(self.successResultOf(delivered), 2)

    def test_range(self) -> None:
        """
        Only ``length`` bytes from ``offset`` are read and written.
        """
        file = FakeFile(b"0123456789")
        consumer = CollectingConsumer(strict=True)
        delivered = self.body(file, offset=3, length=5).deliver(consumer)
        self.pool.run_all()
        self.assertEqual(self.successResultOf(delivered), 5)
        self.assertEqual(consumer.value(), b"34567")
        self.assertEqual(file.reads, [(3, 4), (7, 1)])

    def test_empty(self) -> None:
        """
        An empty body registers, writes nothing, closes the file and fires
        with 0.
        """
        file = FakeFile(b"")
        consumer = CollectingConsumer(strict=True)
        delivered = self.body(file).deliver(consumer)
        self.pool.run_all()
        self.assertEqual(self.successResultOf(delivered), 0)
        self.assertEqual(consumer.events, ["register", "unregister"])
        self.assertEqual((file.reads, file.closes), ([], 1))

    def test_pause_stops_reads(self) -> None:
        """
        A consumer that pauses during a write gets no further read started
        until it resumes; the data arrives intact.
        """
        file = FakeFile(bytes(range(50)))
        consumer = CollectingConsumer(strict=True, pause_on_write=True)
        delivered = self.body(file, chunk=7).deliver(consumer)
        for _ in range(100):
            self.pool.run_all()
            reads = len(file.reads)
            # Paused: nothing queued, nothing read, however long we wait.
            self.assertEqual(self.pool.queue, [])
            self.pool.run_all()
            self.assertEqual(len(file.reads), reads)
            if delivered.called:
                break
            consumer.producer.resumeProducing()
        self.assertEqual(self.successResultOf(delivered), 50)
        self.assertEqual(consumer.value(), bytes(range(50)))
        self.assert_closed_once(file)

    def test_pause_during_read(self) -> None:
        """
        A chunk read while paused is held, not written, and no further read
        starts until the consumer resumes.
        """
        file = FakeFile(b"abcdefgh")
        consumer = CollectingConsumer(strict=True)
        body = self.body(file)
        delivered = body.deliver(consumer)
        body.pauseProducing()
        self.pool.run_all()
        self.assertEqual((consumer.chunks, file.reads), ([], [(0, 4)]))
        body.resumeProducing()
        self.assertEqual(consumer.chunks, [b"abcd"])
        self.pool.run_all()
        self.assertEqual(self.successResultOf(delivered), 8)
        self.assertEqual(consumer.value(), b"abcdefgh")

    def test_cancel_while_paused(self) -> None:
        """
        Cancelling closes the file, unregisters, and fails with
        C{CancelledError}.
        """
        file = FakeFile(b"abcdefgh")
        consumer = CollectingConsumer(strict=True, pause_on_write=True)
        body = self.body(file)
        delivered = body.deliver(consumer)
        self.pool.run_all()
        delivered.cancel()
        self.failureResultOf(delivered, CancelledError)
        self.assertEqual(consumer.events, ["register", "write", "unregister"])
        self.pool.run_all()
        self.assert_closed_once(file)
        body.resumeProducing()
        self.assertEqual(self.pool.run_all(), 0)
        self.assertEqual(consumer.chunks, [b"abcd"])

    def test_cancel_during_read(self) -> None:
        """
        Cancelling while a read is in flight closes the file only once that
        read has returned, and writes nothing more.
        """
        file = FakeFile(b"abcdefgh")
        consumer = CollectingConsumer(strict=True)
        body = self.body(file)
        delivered = body.deliver(consumer)
        delivered.cancel()
        self.failureResultOf(delivered, CancelledError)
        self.assertEqual(self.pool.names, ["read_at"])
        self.pool.run_one()
        self.assertEqual(self.pool.names, ["read_at", "close"])
        self.pool.run_all()
        self.assertEqual((file.closes, consumer.chunks), (1, []))
        body.resumeProducing()
        self.assertEqual(self.pool.run_all(), 0)

    def test_cancel_after_last_write(self) -> None:
        """
        Cancelling while the file is being closed after the last write still
        closes it once and fails with C{CancelledError}.
        """
        file = FakeFile(b"ab")
        consumer = CollectingConsumer(strict=True)
        delivered = self.body(file).deliver(consumer)
        self.pool.run_one()
        delivered.cancel()
        self.pool.run_all()
        self.failureResultOf(delivered, CancelledError)
        self.assert_closed_once(file)
        self.assertEqual(consumer.events.count("unregister"), 1)

    def test_stop_producing(self) -> None:
        """
        C{stopProducing} closes the file and fails the delivery with
        L{DeliveryStopped}; the body does not call back into the consumer.
        """
        file = FakeFile(b"abcdefgh")
        consumer = CollectingConsumer(strict=True, pause_on_write=True)
        body = self.body(file)
        delivered = body.deliver(consumer)
        self.pool.run_all()
        body.stopProducing()
        self.failureResultOf(delivered, DeliveryStopped)
        self.pool.run_all()
        self.assert_closed_once(file)
        self.assertEqual(consumer.events, ["register", "write"])
        body.resumeProducing()
        body.stopProducing()
        self.assertEqual(self.pool.run_all(), 0)
        self.assert_closed_once(file)

    def test_stop_producing_during_read(self) -> None:
        """
        C{stopProducing} with a read in flight closes the file after it.
        """
        file = FakeFile(b"abcdefgh")
        body = self.body(file)
        delivered = body.deliver(CollectingConsumer(strict=True))
        body.stopProducing()
        self.failureResultOf(delivered, DeliveryStopped)
        self.assertEqual(file.closes, 0)
        self.pool.run_all()
        self.assert_closed_once(file)

    def test_read_error(self) -> None:
        """
        A failed read fails the delivery with that error, after closing the
        file and unregistering.
        """
        file = FakeFile(b"abcdefgh", fail_at=4)
        consumer = CollectingConsumer(strict=True)
        delivered = self.body(file).deliver(consumer)
        self.pool.run_all()
        self.failureResultOf(delivered, OSError)
        self.assertEqual(consumer.chunks, [b"abcd"])
        self.assertEqual(consumer.events[-1], "unregister")
        self.assert_closed_once(file)

    def test_file_shrank(self) -> None:
        """
        A file that ends before the promised length fails the delivery.
        """
        file = FakeFile(b"abcdef")
        delivered = self.body(file, length=10).deliver(CollectingConsumer(strict=True))
        self.pool.run_all()
        failure = self.failureResultOf(delivered, OSError)
        self.assertIn("ended", str(failure.value))
        self.assert_closed_once(file)

    def test_consumer_raises(self) -> None:
        """
        A consumer whose C{write} raises fails the delivery and the file is
        closed.
        """
        file = FakeFile(b"abcdefgh")
        consumer = CollectingConsumer(strict=True)

        def explode(_: CollectingConsumer) -> None:
            raise ValueError("no room")

        consumer.on_write = explode
        delivered = self.body(file).deliver(consumer)
        self.pool.run_all()
        self.failureResultOf(delivered, ValueError)
        self.assertEqual((file.closes, len(file.reads)), (1, 1))

    def test_discard(self) -> None:
        """
        L{FileBody.discard} closes the file once, without reading; a later
        delivery fails.
        """
        file = FakeFile(b"abc")
        body = self.body(file)
        body.discard()
        body.discard()
        self.pool.run_all()
        self.assertEqual((file.closes, file.reads), (1, []))
        self.assertRaises(RuntimeError, body.deliver, CollectingConsumer(strict=True))

    def test_discard_after_deliver(self) -> None:
        """
        L{FileBody.discard} once delivery started leaves the file to the
        delivery, which still closes it exactly once.
        """
        file = FakeFile(b"abc")
        body = self.body(file)
        delivered = body.deliver(CollectingConsumer(strict=True))
        body.discard()
        self.pool.run_all()
        self.assertEqual(self.successResultOf(delivered), 3)
        self.assert_closed_once(file)

    @settings(max_examples=200)
    @given(
        data=st.binary(max_size=300),
        chunk=st.integers(min_value=1, max_value=64),
        offset=st.integers(min_value=0, max_value=50),
        moves=st.lists(
            st.sampled_from(["run", "pause", "resume", "cancel", "stop"]), max_size=40
        ),
    )
    def test_any_schedule(
        self, data: bytes, chunk: int, offset: int, moves: list[str]
    ) -> None:
        """
        Whatever the interleaving of pool progress, pauses, resumes,
        cancellation and stops: no read starts while paused, the bytes
        written are a prefix of the range (all of it on success), nothing is
        written after the outcome, and the file is closed exactly once.
        """
        offset = min(offset, len(data))
        pool = QueuedPool()
        file = FakeFile(data)
        body = FileBody(
            file=file,
            offset=offset,
            length=len(data) - offset,
            reactor=self.reactor,  # type: ignore[arg-type]
            threadpool=pool,
            chunk_size=chunk,
        )
        consumer = CollectingConsumer(strict=True)
        delivered = body.deliver(consumer)
        outcome: list[object] = []
        writes_at_outcome: list[int] = []

        def settled(result: object) -> None:
            outcome.append(result)
            writes_at_outcome.append(len(consumer.chunks))

        delivered.addBoth(settled)
        paused = False
        reads_at_pause = 0
        for move in moves:
            if move == "run" and pool.queue:
                pool.run_one()
            elif move == "pause":
                body.pauseProducing()
                if not paused:
                    reads_at_pause = pool.names.count("read_at")
                paused = True
            elif move == "resume":
                body.resumeProducing()
                paused = False
            elif move == "cancel":
                delivered.cancel()
            elif move == "stop":
                body.stopProducing()
            # At most one read in flight; none started while paused.
            self.assertLessEqual(
                sum(1 for _, f, _ in pool.queue if f == file.read_at), 1
            )
            if paused:
                self.assertEqual(pool.names.count("read_at"), reads_at_pause)
        body.resumeProducing()
        pool.run_all()
        self.assertEqual(len(outcome), 1)
        self.assertEqual(len(consumer.chunks), writes_at_outcome[0])
        self.assert_closed_once(file)
        expected = data[offset:]
        self.assertTrue(expected.startswith(consumer.value()))
        if isinstance(outcome[0], int):
            self.assertEqual((outcome[0], consumer.value()), (len(expected), expected))
            self.assertEqual(consumer.events[-1], "unregister")
        else:
            assert isinstance(outcome[0], Failure)
            outcome[0].trap(CancelledError, DeliveryStopped)


# --- LocalStore over the queued pool -------------------------------------------


class LocalStoreTestsMixin(_TreeMixin):
    """
    Shared set-up for the L{LocalStore} tests on the queued pool.
    """

    successResultOf: Callable[..., Any]
    failureResultOf: Callable[..., Any]
    assertEqual: Callable[..., None]

    def setUp(self) -> None:
        self.root = self.make_root()
        self.pool = QueuedPool()
        self.reactor = InlineReactor()
        self.store = LocalStore(
            root=self.root,
            reactor=self.reactor,  # type: ignore[arg-type]
            threadpool=self.pool,
            clock=self.reactor,  # type: ignore[arg-type]
            chunk_size=5,
        )

    def result(self, d: Deferred[Any]) -> Any:
        self.pool.run_all()
        return self.successResultOf(d)

    def error(self, d: Deferred[Any]) -> S3Error:
        self.pool.run_all()
        failure = self.failureResultOf(d, S3Error)
        error = failure.value
        assert isinstance(error, S3Error)
        return error

    def get(self, key: str, **kwargs: Any) -> ObjectResponse:
        response = self.result(self.store.get_object(ObjectRead(key=key, **kwargs)))
        assert isinstance(response, ObjectResponse)
        return response

    def get_error(self, key: str, **kwargs: Any) -> str:
        return self.error(self.store.get_object(ObjectRead(key=key, **kwargs))).code

    def read_body(self, response: ObjectResponse) -> bytes:
        assert response.body is not None
        consumer = CollectingConsumer(strict=True)
        delivered = response.body.deliver(consumer)
        self.assertEqual(self.result(delivered), len(consumer.value()))
        return consumer.value()

    def list(self, **kwargs: Any) -> ListPage:
        page = self.result(self.store.list_objects(ListRequest(**kwargs)))
        assert isinstance(page, ListPage)
        return page


class LocalStoreGetTests(LocalStoreTestsMixin, SynchronousTestCase):
    """
    Tests for L{LocalStore.get_object}.
    """

    def test_interface(self) -> None:
        """
        The store provides L{IObjectStore}.
        """
        self.assertTrue(verifyObject(IObjectStore, self.store))

    def test_for_bucket(self) -> None:
        """
        L{LocalStore.for_bucket} takes the root from the bucket's options and
        the reactor's own thread pool by default.
        """
        self.put("k", b"hello")
        bucket = BucketConfig(
            name="b", backend_type="file", backend_options={"root": self.root}
        )
        reactor = InlineReactor()
        store = LocalStore.for_bucket(bucket, reactor, reactor)  # type: ignore[arg-type]
        self.assertTrue(verifyObject(IObjectStore, store))
        missing = BucketConfig(name="b", backend_type="file")
        error = self.assertRaises(
            S3Error,
            LocalStore.for_bucket,
            missing,
            reactor,  # type: ignore[arg-type]
            reactor,  # type: ignore[arg-type]
        )
        self.assertEqual(error.code, "InternalError")

    def test_no_io_on_call(self) -> None:
        """
        Nothing touches the file system until the pool runs.
        """
        self.put("k", b"hello")
        d = self.store.get_object(ObjectRead(key="k"))
        self.assertNoResult(d)
        self.assertEqual(len(self.pool.queue), 1)

    def test_get(self) -> None:
        """
        A GET answers 200 with the object's headers and streams its bytes.
        """
        path = self.put("dir/hello.txt", b"hello, world")
        os.utime(path, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
        status = os.stat(path)
        response = self.get("dir/hello.txt")
        self.assertEqual(response.status, 200)
        self.assertEqual(
            dict(response.headers),
            {
                "content-type": "text/plain",
                "etag": synthetic_etag(status),
                "last-modified": "Tue, 14 Nov 2023 22:13:20 GMT",
                "accept-ranges": "bytes",
                "content-length": "12",
            },
        )
        self.assertEqual(self.read_body(response), b"hello, world")
        self.assertEqual(_open_files_under(self.root), [])

    def test_etag(self) -> None:
        """
        The ETag is the quoted MD5 of device, inode, size and modification
        time in nanoseconds, with ``-1``: never 32 bare hex digits.
        """
        path = self.put("k", b"data")
        status = os.stat(path)
        seed = f"{status.st_dev}:{status.st_ino}:{status.st_size}:{status.st_mtime_ns}"
        expected = '"' + hashlib.md5(seed.encode()).hexdigest() + '-1"'
        etag = self.get("k").headers.get("etag")
        self.assertEqual(etag, expected)
        assert etag is not None
        self.assertIsNotNone(re.fullmatch(r'"[0-9a-f]{32}-1"', etag))
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1))
        self.assertNotEqual(self.get("k").headers.get("etag"), expected)

    def test_content_type(self) -> None:
        """
        The media type is guessed from the file name alone.
        """
        self.assertEqual(guess_content_type("a/b/page.html"), "text/html")
        self.assertEqual(guess_content_type("a/b.txt/c"), "application/octet-stream")
        self.assertEqual(guess_content_type("x.tar.gz"), "application/gzip")
        self.assertEqual(
            guess_content_type("unknown.zzqqx"), "application/octet-stream"
        )
        self.assertEqual(
            guess_content_type("data:text/html,x"), "application/octet-stream"
        )
        self.assertEqual(guess_content_type("a#b.txt"), "text/plain")

    def test_empty_file(self) -> None:
        """
        An empty file is a 200 with an empty body.
        """
        self.put("empty", b"")
        response = self.get("empty")
        self.assertEqual(
            (response.status, response.headers.get("content-length")), (200, "0")
        )
        self.assertEqual(self.read_body(response), b"")

    def test_range(self) -> None:
        """
        A range answers 206 with ``Content-Range`` and only those bytes.
        """
        self.put("k", b"0123456789abcdef")
        response = self.get("k", range="bytes=2-12")
        self.assertEqual(response.status, 206)
        self.assertEqual(response.headers.get("content-range"), "bytes 2-12/16")
        self.assertEqual(response.headers.get("content-length"), "11")
        self.assertEqual(self.read_body(response), b"23456789abc")

    def test_suffix_range(self) -> None:
        """
        A suffix range gives the last bytes.
        """
        self.put("k", b"0123456789")
        response = self.get("k", range="bytes=-3")
        self.assertEqual(response.headers.get("content-range"), "bytes 7-9/10")
        self.assertEqual(self.read_body(response), b"789")

    def test_ignored_range(self) -> None:
        """
        Several ranges are ignored: 200 with the whole object.
        """
        self.put("k", b"0123456789")
        response = self.get("k", range="bytes=0-1,3-4")
        self.assertEqual(response.status, 200)
        self.assertNotIn("content-range", response.headers)
        self.assertEqual(self.read_body(response), b"0123456789")

    def test_unsatisfiable_range(self) -> None:
        """
        A range past the end fails with ``InvalidRange`` and the file is
        closed.
        """
        self.put("k", b"0123456789")
        d = self.store.get_object(ObjectRead(key="k", range="bytes=10-"))
        error = self.error(d)
        self.assertEqual(error.code, "InvalidRange")
        self.assertEqual(error.headers, (("content-range", "bytes */10"),))
        self.assertEqual(_open_files_under(self.root), [])

    def test_head(self) -> None:
        """
        HEAD gives GET's headers and no body; the file is closed.
        """
        self.put("k", b"0123456789")
        response = self.get("k", head=True)
        self.assertEqual(response.status, 200)
        self.assertIsNone(response.body)
        self.assertEqual(response.headers.get("content-length"), "10")
        self.assertEqual(_open_files_under(self.root), [])
        ranged = self.get("k", head=True, range="bytes=0-3")
        self.assertEqual(
            (ranged.status, ranged.headers.get("content-length")), (206, "4")
        )

    def test_not_modified(self) -> None:
        """
        A matching ``If-None-Match`` or a current ``If-Modified-Since``
        answers 304 with the ETag and Last-Modified and no body.
        """
        path = self.put("k", b"0123456789")
        os.utime(path, (1_700_000_000, 1_700_000_000))
        etag = self.get("k", head=True).headers.get("etag")
        for read in [
            {"if_none_match": etag},
            {"if_modified_since": "Tue, 14 Nov 2023 22:13:20 GMT"},
        ]:
            with self.subTest(read=read):
                response = self.get("k", **read)
                self.assertEqual(response.status, 304)
                self.assertIsNone(response.body)
                self.assertEqual(
                    dict(response.headers),
                    {"etag": etag, "last-modified": "Tue, 14 Nov 2023 22:13:20 GMT"},
                )
        self.assertEqual(_open_files_under(self.root), [])

    def test_modified_since_in_future(self) -> None:
        """
        ``If-Modified-Since`` later than the store's clock is ignored.
        """
        path = self.put("k", b"0123456789")
        os.utime(path, (1_700_000_000, 1_700_000_000))
        future = format_http_date(datetime.fromtimestamp(NOW + 60, UTC))
        self.assertEqual(self.get("k", if_modified_since=future).status, 200)
        self.reactor.now = NOW + 120
        self.assertEqual(self.get("k", if_modified_since=future).status, 304)

    def test_precondition_failed(self) -> None:
        """
        A failing ``If-Match`` or ``If-Unmodified-Since`` fails with 412.
        """
        path = self.put("k", b"0123456789")
        os.utime(path, (1_700_000_000, 1_700_000_000))
        self.assertEqual(self.get_error("k", if_match='"nope"'), "PreconditionFailed")
        self.assertEqual(
            self.get_error("k", if_unmodified_since="Tue, 14 Nov 2023 22:13:19 GMT"),
            "PreconditionFailed",
        )
        self.assertEqual(_open_files_under(self.root), [])

    def test_missing(self) -> None:
        """
        A key with no file is ``NoSuchKey``.
        """
        self.put("a/b", b"x")
        for key in ["nothing", "a/nothing", "a/b/c", "nothing/deeper"]:
            with self.subTest(key=key):
                self.assertEqual(self.get_error(key), "NoSuchKey")

    def test_not_a_file_name(self) -> None:
        """
        Keys with an empty segment, or ending in ``/``, and directories are
        ``NoSuchKey``.
        """
        self.put("a/b", b"x")
        for key in ["a", "a/", "a//b", "/a/b", "a/b/", "", "a\x00b"]:
            with self.subTest(key=key):
                self.assertEqual(self.get_error(key), "NoSuchKey")

    def test_reserved(self) -> None:
        """
        Keys under ``.multistore`` (at the top) are refused with
        ``InvalidArgument``; so are ``.`` and ``..`` segments.
        """
        self.put(".multistore/meta", b"secret")
        for key in [".multistore", ".multistore/meta", "../x", "a/./b", "a/.."]:
            with self.subTest(key=key):
                self.assertEqual(self.get_error(key), "InvalidArgument")
        self.put("sub/.multistore", b"fine")
        self.assertEqual(self.get("sub/.multistore").status, 200)

    def test_symlink_escape(self) -> None:
        """
        Symbolic links that lead outside the root (or into the reserved
        tree) are ``NoSuchKey``; links within it are followed.
        """
        outside = self.make_root()
        self.put("secret", b"secret", root=outside)
        self.put("inside", b"inside")
        self.put(".multistore/meta", b"meta")
        os.symlink(os.path.join(outside, "secret"), os.path.join(self.root, "file-out"))
        os.symlink(outside, os.path.join(self.root, "dir-out"))
        os.symlink(
            os.path.join(self.root, ".multistore"), os.path.join(self.root, "meta")
        )
        os.symlink("inside", os.path.join(self.root, "file-in"))
        os.symlink(
            "../" * 10 + outside.lstrip("/"), os.path.join(self.root, "relative")
        )
        for key in ["file-out", "dir-out/secret", "meta/meta", "relative/secret"]:
            with self.subTest(key=key):
                self.assertEqual(self.get_error(key), "NoSuchKey")
        self.assertEqual(self.read_body(self.get("file-in")), b"inside")

    def test_special_file(self) -> None:
        """
        A named pipe is not an object (and opening it does not block).
        """
        os.mkfifo(os.path.join(self.root, "pipe"))
        self.assertEqual(self.get_error("pipe"), "NoSuchKey")

    def test_unreadable(self) -> None:
        """
        A file the daemon may not read is ``AccessDenied``.
        """
        path = self.put("locked", b"x")
        os.chmod(path, 0)
        self.addCleanup(os.chmod, path, 0o600)
        if os.access(path, os.R_OK):
            # Running as root: permissions do not apply; nothing to test.
            self.assertEqual(self.get("locked").status, 200)
            return
        self.assertEqual(self.get_error("locked"), "AccessDenied")

    def test_unexpected_error(self) -> None:
        """
        An unexpected failure to open a file is logged and reported as
        ``InternalError``, without detail.
        """
        self.put("k")

        def broken(path: bytes, flags: int, *args: Any) -> int:
            raise OSError(errno.EIO, "Input/output error")

        self.patch(os, "open", broken)
        error = self.error(self.store.get_object(ObjectRead(key="k")))
        self.assertEqual(error.code, "InternalError")
        self.assertNotIn("Input/output", error.message)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_missing_root(self) -> None:
        """
        If the root has gone, reads are ``NoSuchBucket``.
        """
        shutil.rmtree(self.root)
        self.assertEqual(self.get_error("k"), "NoSuchBucket")

    def test_odd_keys(self) -> None:
        """
        Keys with characters that need care in URLs or shells are stored
        and served as they are.
        """
        keys = [
            "with space",
            "per%cent",
            "plus+sign",
            "caf\u00e9/\u65e5\u672c/\U0001f600",
            "star*",
            "hash#tag",
            "tilde~",
            "[brackets]",
            "eq=uals",
            "q?uestion&amp",
            "back\\slash",
            "quote\"'",
            "new\nline",
        ]
        for number, key in enumerate(keys):
            self.put(key, str(number).encode())
        for number, key in enumerate(keys):
            with self.subTest(key=key):
                self.assertEqual(self.read_body(self.get(key)), str(number).encode())
        listed = [info.key for info in self.list().objects]
        self.assertEqual(listed, sorted(keys, key=lambda k: k.encode("utf-8")))

    def test_version_id(self) -> None:
        """
        The version ``null`` is the object; any other is ``NoSuchVersion``.
        """
        self.put("k", b"x")
        self.assertEqual(self.get("k", version_id="null").status, 200)
        self.assertEqual(self.get_error("k", version_id="3HL4kqtJ"), "NoSuchVersion")

    def test_part_number(self) -> None:
        """
        Part 1 of a file is the whole file as a 206 with ``Content-Range``
        (as S3 answers for an object not uploaded in parts).
        """
        self.put("k", b"0123456789")
        response = self.get("k", part_number=1)
        self.assertEqual(response.status, 206)
        self.assertEqual(response.headers.get("content-range"), "bytes 0-9/10")
        self.assertEqual(response.headers.get("content-length"), "10")
        self.assertNotIn("x-amz-mp-parts-count", response.headers)
        self.assertEqual(self.read_body(response), b"0123456789")
        self.assertEqual(self.get("k", part_number=1, head=True).status, 206)

    def test_part_number_errors(self) -> None:
        """
        Other part numbers fail: ``InvalidPartNumber`` within S3's bounds,
        ``InvalidArgument`` outside them, ``InvalidRequest`` with a range.
        """
        self.put("k", b"0123456789")
        self.assertEqual(self.get_error("k", part_number=2), "InvalidPartNumber")
        self.assertEqual(self.get_error("k", part_number=10000), "InvalidPartNumber")
        self.assertEqual(self.get_error("k", part_number=0), "InvalidArgument")
        self.assertEqual(self.get_error("k", part_number=10001), "InvalidArgument")
        self.assertEqual(
            self.get_error("k", part_number=1, range="bytes=0-1"), "InvalidRequest"
        )
        self.assertEqual(_open_files_under(self.root), [])

    def test_part_number_empty(self) -> None:
        """
        Part 1 of an empty file is the empty file, 200.
        """
        self.put("k", b"")
        response = self.get("k", part_number=1)
        self.assertEqual(
            (response.status, response.headers.get("content-length")), (200, "0")
        )

    def test_cancel_while_opening(self) -> None:
        """
        Cancelling a read while the file is being opened fails it with
        C{CancelledError} and the file is closed once the open completes.
        """
        self.put("k", b"0123456789")
        d = self.store.get_object(ObjectRead(key="k"))
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.pool.run_one()
        self.assertEqual(self.pool.names[-1], "close")
        self.pool.run_all()
        self.assertEqual(_open_files_under(self.root), [])

    def test_discard(self) -> None:
        """
        Discarding a GET's body closes the file.
        """
        self.put("k", b"0123456789")
        response = self.get("k")
        self.assertEqual(len(_open_files_under(self.root)), 1)
        assert response.body is not None
        response.body.discard()
        self.pool.run_all()
        self.assertEqual(_open_files_under(self.root), [])

    def test_same_file(self) -> None:
        """
        The response describes the file that was opened, even if the name
        is replaced before the body is read.
        """
        self.put("k", b"old contents")
        response = self.get("k")
        replacement = self.put("k.new", b"new!")
        os.replace(replacement, os.path.join(self.root, "k"))
        self.assertEqual(response.headers.get("content-length"), "12")
        self.assertEqual(self.read_body(response), b"old contents")


class LocalStoreBucketTests(LocalStoreTestsMixin, SynchronousTestCase):
    """
    Tests for L{LocalStore.head_bucket}.
    """

    def test_exists(self) -> None:
        """
        An existing root directory is a bucket.
        """
        self.assertIsNone(self.result(self.store.head_bucket()))

    def test_missing(self) -> None:
        """
        A missing root, or a file, is ``NoSuchBucket``.
        """
        shutil.rmtree(self.root)
        self.assertEqual(self.error(self.store.head_bucket()).code, "NoSuchBucket")
        with open(self.root, "wb"):
            pass
        self.addCleanup(os.remove, self.root)
        self.assertEqual(self.error(self.store.head_bucket()).code, "NoSuchBucket")


def _keys(page: ListPage) -> list[str]:
    return [info.key for info in page.objects]


class LocalStoreListTests(LocalStoreTestsMixin, SynchronousTestCase):
    """
    Tests for L{LocalStore.list_objects}.
    """

    def test_order(self) -> None:
        """
        Keys come in UTF-8 byte order, a directory sorting as its name plus
        ``/``.
        """
        for key in [
            "d0",
            "d/y",
            "d-x",
            "d/y0/z",
            "d/y-",
            "e\u00e9",
            "e\U0001f600",
            "eZ",
        ]:
            self.put(key)
        self.assertEqual(
            _keys(self.list()),
            ["d-x", "d/y", "d/y-", "d/y0/z", "d0", "eZ", "e\u00e9", "e\U0001f600"],
        )

    def test_object_info(self) -> None:
        """
        Each object has its size, modification time (aware UTC, whole
        seconds), the same ETag as a GET, and storage class ``STANDARD``.
        """
        path = self.put("k", b"12345")
        os.utime(path, ns=(1_700_000_000_900_000_000, 1_700_000_000_900_000_000))
        (info,) = self.list().objects
        self.assertEqual(info.size, 5)
        self.assertEqual(
            info.last_modified, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
        )
        self.assertEqual(info.etag, self.get("k", head=True).headers.get("etag"))
        self.assertEqual(info.storage_class, "STANDARD")

    def test_reserved_hidden(self) -> None:
        """
        The top-level ``.multistore`` tree never appears, with or without a
        delimiter; the name is ordinary deeper down.
        """
        self.put(".multistore/a/b")
        self.put(".multistorf")
        self.put("sub/.multistore/c")
        self.assertEqual(_keys(self.list()), [".multistorf", "sub/.multistore/c"])
        page = self.list(delimiter="/")
        self.assertEqual(
            (_keys(page), page.common_prefixes), ([".multistorf"], ("sub/",))
        )

    def test_prefix(self) -> None:
        """
        Only keys starting with the prefix are listed, whether it ends at a
        directory boundary or not.
        """
        for key in ["a/b/c", "a/b/d", "a/bc", "a/c", "ab", "b"]:
            self.put(key)
        self.assertEqual(_keys(self.list(prefix="a/b")), ["a/b/c", "a/b/d", "a/bc"])
        self.assertEqual(_keys(self.list(prefix="a/b/")), ["a/b/c", "a/b/d"])
        self.assertEqual(
            _keys(self.list(prefix="a")), ["a/b/c", "a/b/d", "a/bc", "a/c", "ab"]
        )
        self.assertEqual(_keys(self.list(prefix="zzz")), [])
        self.assertEqual(_keys(self.list(prefix="a/b/c")), ["a/b/c"])

    def test_delimiter(self) -> None:
        """
        With ``/`` keys below the prefix's level roll up into common
        prefixes; empty directories are not prefixes.
        """
        for key in ["a/b/c", "a/x", "b", "c/d/e/f"]:
            self.put(key)
        os.makedirs(os.path.join(self.root, "empty/deeper/still"))
        page = self.list(delimiter="/")
        self.assertEqual((_keys(page), page.common_prefixes), (["b"], ("a/", "c/")))
        page = self.list(delimiter="/", prefix="a/")
        self.assertEqual((_keys(page), page.common_prefixes), (["a/x"], ("a/b/",)))
        page = self.list(delimiter="/", prefix="a")
        self.assertEqual((_keys(page), page.common_prefixes), ([], ("a/",)))
        self.assertFalse(page.truncated)

    def test_delimiter_not_slash(self) -> None:
        """
        Any delimiter works, including one that spans a ``/``.
        """
        for key in ["a-1", "a-2/x", "a/b-c", "b", "x/y/z"]:
            self.put(key)
        page = self.list(delimiter="-")
        self.assertEqual(
            (_keys(page), page.common_prefixes), (["b", "x/y/z"], ("a-", "a/b-"))
        )
        page = self.list(delimiter="/y")
        self.assertEqual(
            (_keys(page), page.common_prefixes),
            (["a-1", "a-2/x", "a/b-c", "b"], ("x/y",)),
        )

    def test_start_after(self) -> None:
        """
        Only keys strictly after ``start_after`` are listed.
        """
        for key in ["a", "b/c", "b/d", "c"]:
            self.put(key)
        self.assertEqual(_keys(self.list(start_after="b/c")), ["b/d", "c"])
        self.assertEqual(_keys(self.list(start_after="b")), ["b/c", "b/d", "c"])
        self.assertEqual(_keys(self.list(start_after="b0")), ["c"])
        self.assertEqual(_keys(self.list(start_after="")), ["a", "b/c", "b/d", "c"])

    def test_start_after_common_prefix(self) -> None:
        """
        A common prefix at or before ``start_after`` is not repeated, so a
        listing resumes after it.
        """
        for key in ["a/1", "a/2", "b"]:
            self.put(key)
        page = self.list(delimiter="/", start_after="a/")
        self.assertEqual((_keys(page), page.common_prefixes), (["b"], ()))
        page = self.list(delimiter="/", start_after="a/1")
        self.assertEqual((_keys(page), page.common_prefixes), (["b"], ()))
        page = self.list(delimiter="/", start_after="a")
        self.assertEqual((_keys(page), page.common_prefixes), (["b"], ("a/",)))

    def test_max_keys(self) -> None:
        """
        A page holds at most ``max_keys`` objects and common prefixes, and
        is truncated only if something follows.
        """
        for key in ["a", "b/1", "c", "d/2"]:
            self.put(key)
        page = self.list(delimiter="/", max_keys=2)
        self.assertEqual(
            (_keys(page), page.common_prefixes, page.truncated), (["a"], ("b/",), True)
        )
        page = self.list(delimiter="/", max_keys=4)
        self.assertFalse(page.truncated)
        self.assertIsNone(page.next_token)
        page = self.list(delimiter="/", max_keys=3, start_after="b/")
        self.assertEqual(
            (_keys(page), page.common_prefixes, page.truncated), (["c"], ("d/",), False)
        )

    def test_max_keys_zero(self) -> None:
        """
        ``max_keys`` 0 gives an empty page that is not truncated, as S3
        does.
        """
        self.put("a")
        self.assertEqual(self.list(max_keys=0), ListPage())

    def test_skips(self) -> None:
        """
        Names that are not UTF-8, special files, broken links and links that
        lead outside the root are not listed.
        """
        outside = self.make_root()
        self.put("secret", root=outside)
        self.put("ok")
        fd = os.open(
            os.path.join(os.fsencode(self.root), b"bad\xff"), os.O_CREAT | os.O_WRONLY
        )
        os.close(fd)
        os.makedirs(os.path.join(os.fsencode(self.root), b"dir\xfe"))
        with open(os.path.join(os.fsencode(self.root), b"dir\xfe", b"inside"), "wb"):
            pass
        os.mkfifo(os.path.join(self.root, "pipe"))
        os.symlink("nowhere", os.path.join(self.root, "broken"))
        os.symlink(outside, os.path.join(self.root, "out"))
        os.symlink(os.path.join(outside, "secret"), os.path.join(self.root, "out-file"))
        self.assertEqual(_keys(self.list()), ["ok"])
        self.assertEqual(_keys(self.list(delimiter="/")), ["ok"])

    def test_skipped_names_logged_once(self) -> None:
        """
        Names that are not UTF-8 are reported once per listing, at debug
        level, with their count.
        """
        for name in [b"bad\xff", b"worse\xfe"]:
            os.close(os.open(os.path.join(os.fsencode(self.root), name), os.O_CREAT))
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.assertEqual(_keys(self.list()), [])
        mine = [e for e in events if e.get("log_namespace", "").endswith("LocalStore")]
        self.assertEqual(len(mine), 1)
        self.assertEqual((mine[0]["log_level"], mine[0]["count"]), (LogLevel.debug, 2))

    def test_symlinks_inside(self) -> None:
        """
        Links to files and directories inside the root are listed through;
        a link back up the tree does not loop.
        """
        self.put("real/f", b"x")
        self.put("real/sub/g", b"y")
        os.symlink("real", os.path.join(self.root, "alias"))
        os.symlink("real/f", os.path.join(self.root, "link"))
        os.symlink("..", os.path.join(self.root, "real", "sub", "back"))
        os.symlink(".", os.path.join(self.root, "self"))
        os.symlink("..", os.path.join(self.root, "real", "up"))
        self.assertEqual(
            _keys(self.list()),
            ["alias/f", "alias/sub/g", "link", "real/f", "real/sub/g"],
        )
        self.assertEqual(self.read_body(self.get("alias/sub/g")), b"y")
        page = self.list(delimiter="/")
        self.assertEqual(
            (_keys(page), page.common_prefixes), (["link"], ("alias/", "real/"))
        )

    def test_missing_root(self) -> None:
        """
        A missing root is ``NoSuchBucket``.
        """
        shutil.rmtree(self.root)
        self.assertEqual(
            self.error(self.store.list_objects(ListRequest())).code, "NoSuchBucket"
        )

    def test_in_pool(self) -> None:
        """
        The walk runs in the pool, in one call.
        """
        self.put("a/b/c")
        d = self.store.list_objects(ListRequest())
        self.assertNoResult(d)
        self.assertEqual(self.pool.run_all(), 1)
        self.assertEqual(_keys(self.successResultOf(d)), ["a/b/c"])


# --- listings against a model ----------------------------------------------------

_SEGMENTS = [
    "a",
    "b",
    "a-b",
    "a0",
    "ab",
    "\u00e9",
    "\U0001f600",
    " ",
    "~",
    "A",
    "%",
    "a.b",
]


def _tree_keys() -> st.SearchStrategy[list[str]]:
    key = st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=3).map("/".join)

    def consistent(keys: list[str]) -> list[str]:
        # A key cannot be both a file and a directory.
        chosen: list[str] = []
        for k in sorted(set(keys)):
            if any(k.startswith(c + "/") or c.startswith(k + "/") for c in chosen):
                continue
            chosen.append(k)
        return chosen

    return st.lists(key, max_size=25).map(consistent)


def _model(
    keys: list[str], prefix: str, delimiter: str | None, start_after: str | None
) -> list[tuple[str, str]]:
    """
    The whole listing, as S3 defines it, from the sorted set of keys:
    ``("key", k)`` and ``("prefix", p)`` in order.
    """
    items: list[tuple[str, str]] = []
    after = (start_after or "").encode()
    for key in sorted(keys, key=lambda k: k.encode()):
        if not key.startswith(prefix) or key.encode() <= after:
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if common.encode() <= after:
                continue
            if not items or items[-1] != ("prefix", common):
                items.append(("prefix", common))
        else:
            items.append(("key", key))
    return items


def _page_items(page: ListPage) -> list[tuple[str, str]]:
    merged = [("key", info.key) for info in page.objects] + [
        ("prefix", p) for p in page.common_prefixes
    ]
    return sorted(merged, key=lambda item: item[1].encode())


class LocalStoreListModelTests(_TreeMixin, SynchronousTestCase):
    """
    Listings of random trees against a model computed from the sorted key
    set.
    """

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        keys=_tree_keys(),
        prefix=st.sampled_from(["", "a", "a/", "a-", "b/a", "\u00e9", "zz"]),
        delimiter=st.sampled_from([None, "/", "-", "a", "/a"]),
        start_after=st.one_of(
            st.none(), st.sampled_from(_SEGMENTS), st.text(max_size=4)
        ),
        max_keys=st.integers(min_value=1, max_value=6),
    )
    def test_paging(
        self,
        keys: list[str],
        prefix: str,
        delimiter: str | None,
        start_after: str | None,
        max_keys: int,
    ) -> None:
        """
        Paging through a listing, resuming after the greatest key or common
        prefix of each page, gives exactly the model's listing, each page
        full and truncated but the last.
        """
        root = tempfile.mkdtemp(prefix="multistore-model-")
        try:
            for key in keys:
                self.put(key, root=root)
            pool = QueuedPool()
            reactor = InlineReactor()
            store = LocalStore(
                root=root,
                reactor=reactor,  # type: ignore[arg-type]
                threadpool=pool,
                clock=reactor,  # type: ignore[arg-type]
            )
            expected = _model(keys, prefix, delimiter, start_after)
            seen: list[tuple[str, str]] = []
            cursor = start_after
            for _ in range(len(expected) + 2):
                d = store.list_objects(
                    ListRequest(
                        prefix=prefix,
                        delimiter=delimiter,
                        max_keys=max_keys,
                        start_after=cursor,
                    )
                )
                pool.run_all()
                page = self.successResultOf(d)
                items = _page_items(page)
                self.assertEqual(
                    len(page.objects) + len(page.common_prefixes), len(items)
                )
                self.assertLessEqual(len(items), max_keys)
                seen.extend(items)
                if not page.truncated:
                    break
                self.assertEqual(len(items), max_keys)
                cursor = items[-1][1]
            else:
                self.fail("the listing never ended")
            self.assertEqual(seen, expected)
        finally:
            shutil.rmtree(root)

    @settings(max_examples=50, deadline=None)
    @given(keys=_tree_keys(), max_keys=st.integers(min_value=1, max_value=30))
    def test_single_page(self, keys: list[str], max_keys: int) -> None:
        """
        One page is the head of the model's listing, truncated exactly when
        more follows.
        """
        root = tempfile.mkdtemp(prefix="multistore-model-")
        try:
            for key in keys:
                self.put(key, root=root)
            pool = QueuedPool()
            reactor = InlineReactor()
            store = LocalStore(
                root=root,
                reactor=reactor,  # type: ignore[arg-type]
                threadpool=pool,
                clock=reactor,  # type: ignore[arg-type]
            )
            d = store.list_objects(ListRequest(max_keys=max_keys))
            pool.run_all()
            page = self.successResultOf(d)
            expected = _model(keys, "", None, None)
            self.assertEqual(_page_items(page), expected[:max_keys])
            self.assertEqual(page.truncated, len(expected) > max_keys)
        finally:
            shutil.rmtree(root)


# --- the real pool and reactor ---------------------------------------------------


class RealPoolTests(_TreeMixin, TestCase):
    """
    The store on a real L{ThreadPool} and the real reactor.
    """

    def setUp(self) -> None:
        self.root = self.make_root()
        self.pool = ThreadPool(minthreads=1, maxthreads=4, name="test-local")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.store = LocalStore(
            root=self.root,
            reactor=global_reactor,  # type: ignore[arg-type]
            threadpool=self.pool,
            clock=global_reactor,  # type: ignore[arg-type]
        )

    async def _wait_closed(self) -> None:
        for _ in range(200):
            if not _open_files_under(self.root):
                return
            await deferLater(global_reactor, 0.01, lambda: None)  # type: ignore[arg-type]
        self.fail(f"files left open: {_open_files_under(self.root)}")

    def test_get_large(self) -> Deferred[None]:
        """
        A multi-chunk file streams intact to a consumer that pauses after
        every chunk; no read starts while it is paused; the file is closed
        when the delivery fires.
        """
        data = os.urandom(3 * 256 * 1024 + 12345)
        self.put("big.bin", data)

        async def go() -> None:
            response = await self.store.get_object(ObjectRead(key="big.bin"))
            self.assertEqual(response.headers.get("content-length"), str(len(data)))
            body = response.body
            assert isinstance(body, FileBody)
            reads: list[int] = []
            original = body._file  # type: ignore[attr-defined]

            class Counting:
                def read_at(self, offset: int, size: int) -> bytes:
                    reads.append(offset)
                    return original.read_at(offset, size)  # type: ignore[no-any-return]

                def close(self) -> None:
                    original.close()

            body._file = Counting()  # type: ignore[attr-defined]
            consumer = CollectingConsumer(strict=True, pause_on_write=True)
            pauses: list[int] = []

            def resume_later(_: CollectingConsumer) -> None:
                started = len(reads)

                def resume() -> None:
                    pauses.append(len(reads) - started)
                    consumer.producer.resumeProducing()

                global_reactor.callLater(0.005, resume)  # type: ignore[attr-defined]

            consumer.on_write = resume_later
            count = await body.deliver(consumer)
            self.assertEqual(count, len(data))
            self.assertEqual(consumer.value(), data)
            self.assertEqual(len(consumer.chunks), 4)
            self.assertEqual(pauses, [0, 0, 0, 0])
            self.assertEqual(len(reads), 4)
            self.assertEqual(_open_files_under(self.root), [])

        return Deferred.fromCoroutine(go())

    def test_cancel_delivery(self) -> Deferred[None]:
        """
        Cancelling a delivery on the real pool closes the file.
        """
        self.put("big.bin", os.urandom(2 * 256 * 1024))

        async def go() -> None:
            response = await self.store.get_object(ObjectRead(key="big.bin"))
            assert response.body is not None
            consumer = CollectingConsumer(strict=True, pause_on_write=True)
            delivered = response.body.deliver(consumer)
            for _ in range(1000):
                if consumer.chunks:
                    break
                await deferLater(global_reactor, 0.005, lambda: None)  # type: ignore[arg-type]
            self.assertEqual(len(consumer.chunks), 1)
            delivered.cancel()
            with self.assertRaises(CancelledError):
                await delivered
            await self._wait_closed()

        return Deferred.fromCoroutine(go())

    def test_head_list_bucket(self) -> Deferred[None]:
        """
        HEAD, listing and the bucket check work on the real pool.
        """
        self.put("a/b", b"12")
        self.put("c", b"3")

        async def go() -> None:
            head = await self.store.get_object(ObjectRead(key="a/b", head=True))
            self.assertEqual(
                (head.status, head.headers.get("content-length")), (200, "2")
            )
            page = await self.store.list_objects(ListRequest(delimiter="/"))
            self.assertEqual((_keys(page), page.common_prefixes), (["c"], ("a/",)))
            await self.store.head_bucket()
            with self.assertRaises(S3Error):
                await self.store.get_object(ObjectRead(key="missing"))
            await self._wait_closed()

        return Deferred.fromCoroutine(go())
