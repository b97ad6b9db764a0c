"""
Tests for the write half of L{multistore.stores.local.LocalStore}.

As in L{tests.unit.test_local}, most tests run against a real temporary
directory with a thread pool whose calls wait until the test runs them, so
every interleaving is chosen by the test; L{RealPoolWriteTests} repeat the
essentials on a real L{ThreadPool} and the real reactor.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IConsumer
from twisted.internet.task import deferLater
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer
from zope.interface.verify import verifyObject

from multistore.config import BucketConfig
from multistore.headers import HeaderList
from multistore.interfaces import IObjectStore
from multistore.model import (
    CompletedPart,
    CopySource,
    ListRequest,
    ObjectRead,
    ObjectResponse,
    ObjectWrite,
)
from multistore.s3.errors import S3Error
from multistore.stores.local import (
    MAX_SEGMENT_BYTES,
    KeyLocks,
    LocalStore,
    object_headers,
    synthetic_etag,
    write_key,
)
from multistore.stores.local.tree import _LOCKS
from multistore.testing import CollectingConsumer, ControlledProducer
from tests.unit.test_local import (
    NOW,
    InlineReactor,
    LocalStoreTestsMixin,
    _keys,
)

EMPTY_MD5 = '"d41d8cd98f00b204e9800998ecf8427e"'


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def multipart_etag(*parts: bytes) -> str:
    digests = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


# --- fakes -------------------------------------------------------------------


#: The pieces a body that arrives whole is sent in.
CHUNK = 7


def local_bucket(root: str, name: str = "src") -> BucketConfig:
    return BucketConfig(name=name, backend_type="file", backend_options={"root": root})


class WriteTestsMixin(LocalStoreTestsMixin):
    """
    Set-up and helpers for the write tests on the queued pool.
    """

    assertTrue: Callable[..., None]
    assertFalse: Callable[..., None]
    assertIn: Callable[..., None]
    assertNoResult: Callable[..., None]

    def setUp(self) -> None:
        super().setUp()
        self.store = self.make_store()

    def make_store(self, root: str | None = None, **kwargs: Any) -> LocalStore:
        options: dict[str, Any] = {"chunk_size": 5, "min_part_size": 10}
        options.update(kwargs)
        return LocalStore(
            root=root or self.root,
            reactor=self.reactor,  # type: ignore[arg-type]
            threadpool=self.pool,
            clock=self.reactor,  # type: ignore[arg-type]
            **options,
        )

    def path(self, *names: str) -> str:
        return os.path.join(self.root, *names)

    def write(
        self,
        key: str,
        data: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        store: LocalStore | None = None,
    ) -> ObjectResponse:
        body = ControlledProducer.sending(data, CHUNK)
        d = (store or self.store).put_object(
            ObjectWrite(key=key, body=body, headers=HeaderList(tuple(headers)))
        )
        response = self.result(d)
        assert isinstance(response, ObjectResponse)
        return response

    def write_error(
        self,
        key: str,
        data: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        body: ControlledProducer | None = None,
    ) -> S3Error:
        d = self.store.put_object(
            ObjectWrite(
                key=key,
                body=body
                if body is not None
                else ControlledProducer.sending(data, CHUNK),
                headers=HeaderList(tuple(headers)),
            )
        )
        return self.error(d)

    def read(self, key: str) -> bytes:
        return self.read_body(self.get(key))

    def leftovers(self) -> list[str]:
        """
        The temporary files in the store's housekeeping.
        """
        tmp = self.path(".multistore", "tmp")
        return sorted(os.listdir(tmp)) if os.path.isdir(tmp) else []

    def sidecar(self, *names: str) -> dict[str, Any]:
        with open(self.path(".multistore", "meta", *names)) as f:
            document = json.load(f)
        assert isinstance(document, dict)
        return document


# --- pure parts ----------------------------------------------------------------


class WriteKeyTests(SynchronousTestCase):
    """
    Tests for L{write_key}: which keys a directory store can hold.
    """

    def refused(self, key: str) -> S3Error:
        error = self.assertRaises(S3Error, write_key, key)
        self.assertEqual(error.code, "InvalidArgument")
        return error

    def test_plain(self) -> None:
        """
        An ordinary key is its segments, encoded.
        """
        key = write_key("a/b \u00e9/c.txt")
        self.assertEqual(key.segments, (b"a", "b \u00e9".encode(), b"c.txt"))
        self.assertFalse(key.marker)
        self.assertEqual(
            (key.directory, key.name), ((b"a", "b \u00e9".encode()), b"c.txt")
        )
        self.assertEqual(key.meta_name, b"c.txt.json")

    def test_marker(self) -> None:
        """
        A key ending in ``/`` is a directory marker: its segments are the
        directory's.
        """
        key = write_key("a/b/")
        self.assertTrue(key.marker)
        self.assertEqual((key.segments, key.directory), ((b"a", b"b"), (b"a", b"b")))
        self.assertEqual((key.name, key.meta_name), (b"", b".json"))

    def test_refused(self) -> None:
        """
        Empty segments, dot segments, NUL, lone surrogates, overlong
        segments and the empty key are refused with a message naming the
        key; reserved keys are refused as reserved.
        """
        for key in ["", "/", "a//b", "/a", "a//", "./a", "a/../b", "a\x00b", "\udc80"]:
            error = self.refused(key)
            self.assertIn(("ArgumentName", "key"), error.extra)
        self.assertIn("empty segment", self.refused("a//b").message)
        self.assertIn("'a//b'", self.refused("a//b").message)
        self.refused("x" * (MAX_SEGMENT_BYTES + 1))
        write_key("x" * MAX_SEGMENT_BYTES)
        self.assertIn("reserved", self.refused(".multistore/x").message)
        self.assertIn("reserved", self.refused(".multistore/").message)
        write_key("a/.multistore/b")

    @given(st.text(max_size=30))
    def test_any_key(self, key: str) -> None:
        """
        Any key is either refused with ``InvalidArgument`` or parsed into
        segments that spell it.
        """
        try:
            parsed = write_key(key)
        except S3Error as e:
            self.assertEqual(e.code, "InvalidArgument")
            return
        joined = "/".join(segment.decode("utf-8") for segment in parsed.segments)
        self.assertEqual(joined + ("/" if parsed.marker else ""), key)
        self.assertTrue(all(parsed.segments))


class ObjectHeadersTests(SynchronousTestCase):
    """
    Tests for L{object_headers}.
    """

    def test_kept(self) -> None:
        """
        Content headers, caching, metadata, checksums, tagging, storage
        class and website redirect are kept, in order; the rest is not.
        """
        headers = HeaderList(
            (
                ("Content-Type", "text/plain"),
                ("if-none-match", "*"),
                ("x-amz-meta-colour", "blue"),
                ("content-encoding", "gzip"),
                ("content-disposition", "attachment"),
                ("content-language", "fr"),
                ("cache-control", "no-cache"),
                ("expires", "Thu, 01 Jan 2037 00:00:00 GMT"),
                ("x-amz-checksum-crc32", "AAAAAA=="),
                ("x-amz-sdk-checksum-algorithm", "CRC32"),
                ("x-amz-tagging", "a=1&b=2"),
                ("x-amz-storage-class", "STANDARD_IA"),
                ("x-amz-website-redirect-location", "/x"),
                ("content-md5", "x"),
                ("x-amz-acl", "private"),
            )
        )
        self.assertEqual(
            [name for name, _ in object_headers(headers)],
            [
                "content-type",
                "x-amz-meta-colour",
                "content-encoding",
                "content-disposition",
                "content-language",
                "cache-control",
                "expires",
                "x-amz-checksum-crc32",
                "x-amz-tagging",
                "x-amz-storage-class",
                "x-amz-website-redirect-location",
            ],
        )

    def test_refused(self) -> None:
        """
        Encryption is not implemented, Object Lock is refused as on a bucket
        without it; a storage class or tag set that S3 would refuse is
        refused with a 400.
        """
        cases = [
            (("x-amz-server-side-encryption", "AES256"), "NotImplemented", 501),
            (
                ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
                "NotImplemented",
                501,
            ),
            (("x-amz-object-lock-mode", "GOVERNANCE"), "InvalidRequest", 400),
            (("x-amz-storage-class", "COLD"), "InvalidStorageClass", 400),
            (
                ("x-amz-tagging", "&".join(f"k{i}=v" for i in range(11))),
                "InvalidTag",
                400,
            ),
            (("x-amz-tagging", "a=1&a=2"), "InvalidTag", 400),
            (("x-amz-tagging", "=1"), "InvalidTag", 400),
            (("x-amz-tagging", "k=" + "v" * 257), "InvalidTag", 400),
        ]
        for header, code, status in cases:
            error = self.assertRaises(S3Error, object_headers, HeaderList((header,)))
            self.assertEqual((error.code, error.status), (code, status), header)


class KeyLocksTests(SynchronousTestCase):
    """
    Tests for L{KeyLocks}.
    """

    def test_exclusive(self) -> None:
        """
        Threads holding the same path run one at a time; other paths are
        not held up; entries go away once nobody holds them.
        """
        locks = KeyLocks()
        inside: list[int] = []
        overlap: list[bool] = []
        guard = threading.Lock()

        def work(path: bytes) -> None:
            for _ in range(20):
                with locks.hold(path):
                    with guard:
                        inside.append(1)
                        overlap.append(len(inside) > 1)
                    time.sleep(0.0005)
                    with guard:
                        inside.pop()

        threads = [threading.Thread(target=work, args=(b"/same",)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        self.assertEqual((any(overlap), len(overlap)), (False, 80))
        self.assertEqual(len(locks), 0)
        with locks.hold(b"/a"), locks.hold(b"/b"):
            self.assertEqual(len(locks), 2)
        self.assertEqual(len(locks), 0)

    def test_released_on_error(self) -> None:
        """
        An exception inside the block releases the lock.
        """
        locks = KeyLocks()
        with self.assertRaises(ValueError), locks.hold(b"/p"):
            raise ValueError()
        self.assertEqual(len(locks), 0)
        with locks.hold(b"/p"):
            pass


# --- put_object ----------------------------------------------------------------


class PutTests(WriteTestsMixin, SynchronousTestCase):
    """
    Tests for L{LocalStore.put_object}.
    """

    def test_interface(self) -> None:
        """
        The store provides L{IObjectStore} with writes of its own, and the
        body's consumer is an L{IConsumer}.
        """
        self.assertTrue(verifyObject(IObjectStore, self.store))
        self.assertEqual(LocalStore.__bases__, (object,))
        body = ControlledProducer()
        self.store.put_object(ObjectWrite(key="k", body=body))
        self.pool.run_all()
        self.assertTrue(verifyObject(IConsumer, body.consumer))

    def test_put_and_read(self) -> None:
        """
        A PUT stores the bytes; the answer and every later read carry the
        quoted MD5 as ETag and the headers written; the listing agrees.
        """
        data = b"hello, world, in several chunks"
        response = self.write(
            "dir/hello.bin",
            data,
            [
                ("content-type", "text/x-greeting"),
                ("x-amz-meta-colour", "blue"),
                ("cache-control", "max-age=60"),
                ("content-disposition", 'attachment; filename="h.txt"'),
                ("expires", "Thu, 01 Jan 2037 00:00:00 GMT"),
            ],
        )
        self.assertEqual(response.status, 200)
        self.assertEqual(dict(response.headers), {"etag": md5_etag(data)})
        with open(self.path("dir", "hello.bin"), "rb") as f:
            self.assertEqual(f.read(), data)
        got = self.get("dir/hello.bin")
        self.assertEqual(
            dict(got.headers),
            {
                "content-type": "text/x-greeting",
                "etag": md5_etag(data),
                "last-modified": got.headers.get("last-modified"),
                "accept-ranges": "bytes",
                "x-amz-meta-colour": "blue",
                "cache-control": "max-age=60",
                "content-disposition": 'attachment; filename="h.txt"',
                "expires": "Thu, 01 Jan 2037 00:00:00 GMT",
                "content-length": str(len(data)),
            },
        )
        self.assertEqual(self.read_body(got), data)
        head = self.get("dir/hello.bin", head=True)
        self.assertEqual(head.headers, got.headers)
        (info,) = self.list().objects
        self.assertEqual(
            (info.key, info.etag, info.size),
            ("dir/hello.bin", md5_etag(data), len(data)),
        )
        self.assertEqual(self.leftovers(), [])

    def test_no_io_on_call(self) -> None:
        """
        Nothing touches the file system, nor is the body started, until the
        pool runs.
        """
        body = ControlledProducer.sending(b"data", CHUNK)
        d = self.store.put_object(ObjectWrite(key="k", body=body))
        self.assertNoResult(d)
        self.assertFalse(body.started)
        self.assertEqual(os.listdir(self.root), [])
        self.assertEqual(self.result(d).status, 200)

    def test_metadata_file(self) -> None:
        """
        The metadata file sits under ``.multistore/meta`` (directories with
        a ``.d`` suffix) and describes the data file it goes with.
        """
        self.write("a/b/c", b"12345", [("x-amz-meta-k", "v")])
        document = self.sidecar("a.d", "b.d", "c.json")
        status = os.stat(self.path("a", "b", "c"))
        self.assertEqual(
            document,
            {
                "format": 1,
                "etag": md5_etag(b"12345"),
                "headers": [["x-amz-meta-k", "v"]],
                "file": {
                    "ino": status.st_ino,
                    "size": 5,
                    "mtime_ns": status.st_mtime_ns,
                },
            },
        )

    def test_empty_object(self) -> None:
        """
        An empty body makes an empty object with the MD5 of nothing.
        """
        self.assertEqual(self.write("e").headers.get("etag"), EMPTY_MD5)
        self.assertEqual(self.read("e"), b"")

    def test_tagging_storage_class_checksums(self) -> None:
        """
        Reads show the tag count, a storage class other than STANDARD, and
        checksums only when the whole object is returned; the answer to the
        PUT echoes the checksums; the listing shows the storage class.
        """
        response = self.write(
            "k",
            b"0123456789",
            [
                ("x-amz-tagging", "a=1&b=2"),
                ("x-amz-storage-class", "GLACIER_IR"),
                ("x-amz-checksum-crc32", "YWJjZA=="),
            ],
        )
        self.assertEqual(response.headers.get("x-amz-checksum-crc32"), "YWJjZA==")
        whole = self.get("k", head=True).headers
        self.assertEqual(whole.get("x-amz-tagging-count"), "2")
        self.assertEqual(whole.get("x-amz-storage-class"), "GLACIER_IR")
        self.assertEqual(whole.get("x-amz-checksum-crc32"), "YWJjZA==")
        self.assertNotIn("x-amz-tagging", whole)
        ranged = self.get("k", range="bytes=0-3", head=True).headers
        self.assertNotIn("x-amz-checksum-crc32", ranged)
        self.assertEqual(ranged.get("x-amz-tagging-count"), "2")
        self.assertEqual(self.list().objects[0].storage_class, "GLACIER_IR")
        self.write("s", b"", [("x-amz-storage-class", "STANDARD")])
        self.assertNotIn("x-amz-storage-class", self.get("s", head=True).headers)

    def test_overwrite(self) -> None:
        """
        A second PUT replaces the object and its metadata whole.
        """
        self.write("k", b"first", [("x-amz-meta-a", "1")])
        self.write("k", b"second!", [("x-amz-meta-b", "2")])
        got = self.get("k")
        self.assertEqual(self.read_body(got), b"second!")
        self.assertEqual(got.headers.get("etag"), md5_etag(b"second!"))
        self.assertNotIn("x-amz-meta-a", got.headers)
        self.assertEqual(got.headers.get("x-amz-meta-b"), "2")

    def test_replaced_by_hand(self) -> None:
        """
        A file replaced by hand (even with the same size) loses its
        recorded ETag and headers: the metadata no longer describes it.
        """
        self.write("k", b"aaaa", [("x-amz-meta-a", "1"), ("content-type", "x/y")])
        path = self.path("k")
        os.replace(self.put("other", b"bbbb"), path)
        got = self.get("k", head=True)
        self.assertEqual(got.headers.get("etag"), synthetic_etag(os.stat(path)))
        self.assertNotIn("x-amz-meta-a", got.headers)
        self.assertEqual(got.headers.get("content-type"), "application/octet-stream")
        self.assertEqual(
            self.list(prefix="k").objects[0].etag, synthetic_etag(os.stat(path))
        )

    def test_streams_with_backpressure(self) -> None:
        """
        Each chunk is written in the pool, one write at a time; a chunk that
        arrives while a write is in flight pauses the body, which is resumed
        when the write completes; queued chunks go in the next write.
        """
        body = ControlledProducer()
        d = self.store.put_object(ObjectWrite(key="k", body=body))
        self.pool.run_all()
        body.send(b"one")
        self.assertEqual(self.pool.names[-1], "append")
        self.assertEqual((body.pauses, body.resumes, body.stopped), (0, 0, False))
        body.send(b"two")
        body.send(b"three")
        self.assertEqual((body.pauses, body.resumes, body.stopped), (1, 0, False))
        self.assertEqual(len(self.pool.queue), 1)
        self.pool.run_one()
        self.assertEqual((body.pauses, body.resumes, body.stopped), (1, 1, False))
        self.assertEqual(len(self.pool.queue), 1)
        body.finish()
        self.assertNoResult(d)
        self.assertEqual(self.result(d).headers.get("etag"), md5_etag(b"onetwothree"))
        self.assertEqual(self.read("k"), b"onetwothree")
        self.assertEqual(self.pool.names.count("append"), 2)

    def test_reader_sees_old_object(self) -> None:
        """
        While a PUT is under way, readers get the old object, whole; nothing
        else shows in listings.
        """
        self.write("k", b"old")
        body = ControlledProducer()
        d = self.store.put_object(ObjectWrite(key="k", body=body))
        self.pool.run_all()
        body.send(b"new, longer")
        self.pool.run_all()
        self.assertEqual(self.read("k"), b"old")
        self.assertEqual(_keys(self.list()), ["k"])
        body.finish()
        self.result(d)
        self.assertEqual(self.read("k"), b"new, longer")

    def test_body_fails(self) -> None:
        """
        A body that fails (a signature that does not match) fails the PUT
        with its error; no object appears, the old one is untouched, and
        the temporary file is gone by the time the failure is reported.
        """
        self.write("k", b"old", [("x-amz-meta-a", "1")])
        body = ControlledProducer()
        d = self.store.put_object(ObjectWrite(key="k", body=body))
        self.pool.run_all()
        body.send(b"bad bytes")
        self.assertEqual(len(self.leftovers()), 1)
        body.fail(S3Error("XAmzContentSHA256Mismatch"))
        self.assertNoResult(d)
        self.assertEqual(self.error(d).code, "XAmzContentSHA256Mismatch")
        self.assertEqual(self.leftovers(), [])
        got = self.get("k")
        self.assertEqual(self.read_body(got), b"old")
        self.assertEqual(got.headers.get("x-amz-meta-a"), "1")
        self.assertFalse(body.stopped)

    def test_body_fails_during_write(self) -> None:
        """
        A failure that arrives while a write is in flight waits for it
        before the file is removed; no object appears.
        """
        body = ControlledProducer()
        d = self.store.put_object(ObjectWrite(key="new", body=body))
        self.pool.run_all()
        body.send(b"abc")
        body.fail(ConnectionLost())
        self.assertEqual(self.pool.names[-1], "append")
        self.pool.run_all()
        self.failureResultOf(d, ConnectionLost)
        self.assertEqual(self.leftovers(), [])
        self.assertEqual(os.listdir(self.root), [".multistore"])

    def test_cancel(self) -> None:
        """
        Cancelling the PUT (the client went away) stops the body and removes
        the temporary file; no object appears.
        """
        body = ControlledProducer()
        d = self.store.put_object(ObjectWrite(key="k", body=body))
        self.pool.run_all()
        body.send(b"abc")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(body.stopped)
        self.pool.run_all()
        self.assertEqual(self.leftovers(), [])
        self.assertEqual(self.get_error("k"), "NoSuchKey")

    def test_cancel_before_commit(self) -> None:
        """
        Cancelling after the body arrived but before the commit reached the
        rename abandons the write: no object, no temporary file.
        """
        body = ControlledProducer()
        d = self.store.put_object(ObjectWrite(key="k", body=body))
        self.pool.run_all()
        body.send(b"abc")
        self.pool.run_one()
        body.finish()
        self.assertEqual(self.pool.names[-1], "_commit_in_thread")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.pool.run_all()
        self.assertEqual(self.get_error("k"), "NoSuchKey")
        self.assertEqual(self.leftovers(), [])

    def test_cancel_while_preparing(self) -> None:
        """
        Cancelling before the temporary file is made removes it once made,
        and never starts the body.
        """
        body = ControlledProducer()
        d = self.store.put_object(ObjectWrite(key="k", body=body))
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.pool.run_all()
        self.assertFalse(body.started)
        self.assertEqual(self.leftovers(), [])

    def test_write_fails(self) -> None:
        """
        A write that fails (the disk) stops the body and fails the PUT; the
        temporary file is removed and no object appears.
        """
        body = ControlledProducer()
        d = self.store.put_object(ObjectWrite(key="k", body=body))
        self.pool.run_all()
        (name,) = self.leftovers()
        temp = os.path.realpath(self.path(".multistore", "tmp", name))
        # Swap the temporary file's descriptor for a read-only one.
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target == temp:
                readonly = os.open(os.devnull, os.O_RDONLY)
                os.dup2(readonly, int(fd))
                os.close(readonly)
        body.send(b"abc")
        self.pool.run_all()
        self.failureResultOf(d, OSError)
        self.assertTrue(body.stopped)
        self.assertEqual(self.leftovers(), [])
        self.assertEqual(self.get_error("k"), "NoSuchKey")

    def test_start_raises(self) -> None:
        """
        A body that cannot start fails the PUT and leaves nothing.
        """

        class Broken(ControlledProducer):
            def startProducing(self, consumer: IConsumer) -> Deferred[None]:
                raise RuntimeError("already read")

        d = self.store.put_object(ObjectWrite(key="k", body=Broken()))
        self.pool.run_all()
        self.failureResultOf(d, RuntimeError)
        self.assertEqual(self.leftovers(), [])

    def test_registered_producer(self) -> None:
        """
        A producer that registers itself with the consumer is the one
        paused and resumed.
        """
        body = ControlledProducer()
        d = self.store.put_object(ObjectWrite(key="k", body=body))
        self.pool.run_all()
        other = ControlledProducer()
        body.consumer.registerProducer(other, True)
        body.send(b"a")
        body.send(b"b")
        self.assertEqual(
            (
                (body.pauses, body.resumes, body.stopped),
                (other.pauses, other.resumes, other.stopped),
            ),
            ((0, 0, False), (1, 0, False)),
        )
        self.pool.run_one()
        self.assertEqual((other.pauses, other.resumes, other.stopped), (1, 1, False))
        body.consumer.unregisterProducer()
        body.finish()
        self.result(d)

    def test_incomplete_body(self) -> None:
        """
        A body that delivers fewer or more bytes than it announced fails
        with ``IncompleteBody``; nothing appears.
        """
        for data in [b"short", b"far too long"]:
            error = self.write_error(
                "k", body=ControlledProducer.sending(data, CHUNK, length=8)
            )
            self.assertEqual(error.code, "IncompleteBody")
        self.assertEqual(self.leftovers(), [])
        self.assertEqual(self.get_error("k"), "NoSuchKey")

    def test_content_md5(self) -> None:
        """
        A matching ``Content-MD5`` is accepted; one that does not match is
        ``BadDigest`` and leaves nothing; a malformed one is
        ``InvalidDigest`` before the body is read.
        """
        data = b"payload"
        good = base64.b64encode(hashlib.md5(data).digest()).decode()
        self.assertEqual(self.write("k", data, [("content-md5", good)]).status, 200)
        other = base64.b64encode(hashlib.md5(b"x").digest()).decode()
        self.assertEqual(
            self.write_error("j", data, [("content-md5", other)]).code, "BadDigest"
        )
        self.assertEqual(self.get_error("j"), "NoSuchKey")
        self.assertEqual(self.leftovers(), [])
        for bad in ["not base64!", base64.b64encode(b"short").decode()]:
            body = ControlledProducer.sending(data, CHUNK)
            error = self.write_error("j", headers=[("content-md5", bad)], body=body)
            self.assertEqual(error.code, "InvalidDigest")
            self.assertFalse(body.started)

    def test_encryption_refused(self) -> None:
        """
        Server-side encryption is refused before the body is read.
        """
        body = ControlledProducer.sending(b"x", CHUNK)
        error = self.write_error(
            "k", headers=[("x-amz-server-side-encryption", "AES256")], body=body
        )
        self.assertEqual(error.code, "NotImplemented")
        self.assertFalse(body.started)

    def test_no_bucket(self) -> None:
        """
        A PUT into a root that is gone is ``NoSuchBucket``.
        """
        os.rmdir(self.root)
        self.assertEqual(self.write_error("k", b"x").code, "NoSuchBucket")


class PutFailureTests(WriteTestsMixin, SynchronousTestCase):
    """
    Commits that fail half-way.
    """

    def failing_store(self, fail_on: int) -> tuple[LocalStore, list[bytes]]:
        """
        A store whose ``fail_on``-th rename fails as a crash would.
        """
        renames: list[bytes] = []

        class Failing(LocalStore):
            def _rename(
                self, name: bytes, target: bytes, source_dir: int, target_dir: int
            ) -> None:
                renames.append(target)
                if len(renames) == fail_on:
                    raise OSError(5, "Input/output error")
                super()._rename(name, target, source_dir, target_dir)

        store = Failing(
            root=self.root,
            reactor=self.reactor,  # type: ignore[arg-type]
            threadpool=self.pool,
            clock=self.reactor,  # type: ignore[arg-type]
        )
        return store, renames

    def test_before_data_rename(self) -> None:
        """
        A commit that fails before the data is renamed leaves the old object
        and its metadata as they were, and no temporary file.
        """
        self.write("k", b"old", [("x-amz-meta-a", "1")])
        store, renames = self.failing_store(1)
        d = store.put_object(
            ObjectWrite(key="k", body=ControlledProducer.sending(b"new", CHUNK))
        )
        self.pool.run_all()
        self.failureResultOf(d, OSError)
        self.assertEqual(renames, [b"k"])
        got = self.get("k")
        self.assertEqual(got.headers.get("etag"), md5_etag(b"old"))
        self.assertEqual(got.headers.get("x-amz-meta-a"), "1")
        self.assertEqual(self.read_body(got), b"old")
        self.assertEqual(self.leftovers(), [])

    def test_between_renames(self) -> None:
        """
        A commit interrupted between the data and the metadata (as by a
        crash) leaves the new bytes, whole, served without the old object's
        metadata, which no longer describes them.
        """
        self.write("k", b"old", [("x-amz-meta-a", "1")])
        store, renames = self.failing_store(2)
        d = store.put_object(
            ObjectWrite(
                key="k",
                body=ControlledProducer.sending(b"new", CHUNK),
                headers=HeaderList.of(("x-amz-meta-b", "2")),
            )
        )
        self.pool.run_all()
        self.failureResultOf(d, OSError)
        self.assertEqual(renames, [b"k", b"k.json"])
        got = self.get("k")
        self.assertEqual(self.read_body(got), b"new")
        self.assertEqual(
            got.headers.get("etag"), synthetic_etag(os.stat(self.path("k")))
        )
        self.assertNotIn("x-amz-meta-a", got.headers)
        self.assertEqual(self.leftovers(), [])

    def test_directory_pruned_meanwhile(self) -> None:
        """
        A directory that a concurrent delete prunes (as empty) between its
        creation and the rename into it is made again.
        """
        pruned: list[str] = []

        class Pruned(LocalStore):
            def _rename(
                self, name: bytes, target: bytes, source_dir: int, target_dir: int
            ) -> None:
                if not pruned:
                    where = os.path.join(os.fsdecode(self._root), "new", "dir")
                    os.rmdir(where)
                    pruned.append(where)
                super()._rename(name, target, source_dir, target_dir)

        store = Pruned(
            root=self.root,
            reactor=self.reactor,  # type: ignore[arg-type]
            threadpool=self.pool,
            clock=self.reactor,  # type: ignore[arg-type]
        )
        self.write("new/dir/k", b"data", store=store)
        self.assertEqual(len(pruned), 1)
        self.assertEqual(self.read("new/dir/k"), b"data")
        self.assertEqual(self.leftovers(), [])


class ReceiveScheduleTests(WriteTestsMixin, SynchronousTestCase):
    """
    The body's arrival, the pool's progress, failure and cancellation in
    any order.
    """

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        moves=st.lists(
            st.one_of(
                st.binary(min_size=1, max_size=6),
                st.sampled_from(["run", "finish", "fail", "cancel"]),
            ),
            max_size=30,
        ),
    )
    def test_any_schedule(self, moves: list[bytes | str]) -> None:
        """
        At most one write is ever in flight; the PUT settles exactly once;
        on success the object is every byte sent, in order; otherwise no
        object appears; either way no temporary file is left.
        """
        key = f"k{len(os.listdir(self.root))}"
        body = ControlledProducer()
        d = self.store.put_object(ObjectWrite(key=key, body=body))
        outcome: list[object] = []
        d.addBoth(outcome.append)
        sent = b""
        ended = False
        for move in moves:
            if isinstance(move, bytes):
                if body.started and not body.stopped and not ended:
                    body.send(move)
                    sent += move
            elif move == "run" and self.pool.queue:
                self.pool.run_one()
            elif move == "finish" and body.started and not ended and not body.stopped:
                ended = True
                body.finish()
            elif move == "fail" and body.started and not ended and not body.stopped:
                ended = True
                body.fail(ConnectionLost())
            elif move == "cancel":
                d.cancel()
            self.assertLessEqual(
                sum(1 for _, f, _ in self.pool.queue if f.__name__ == "append"), 1
            )
        self.pool.run_all()
        if body.started and not ended and not body.stopped:
            body.finish()
        self.pool.run_all()
        self.assertEqual(len(outcome), 1)
        if isinstance(outcome[0], ObjectResponse):
            self.assertEqual(self.read(key), sent)
            self.assertEqual(outcome[0].headers.get("etag"), md5_etag(sent))
        else:
            self.assertEqual(self.get_error(key), "NoSuchKey")
        self.assertEqual(self.leftovers(), [])


class ConditionalPutTests(WriteTestsMixin, SynchronousTestCase):
    """
    ``If-None-Match`` and ``If-Match`` on PUT.
    """

    def test_if_none_match(self) -> None:
        """
        ``If-None-Match: *`` creates a missing key and refuses an existing
        one with ``PreconditionFailed``, leaving it untouched.
        """
        self.write("k", b"one", [("if-none-match", "*")])
        error = self.write_error("k", b"two", [("if-none-match", "*")])
        self.assertEqual((error.code, error.status), ("PreconditionFailed", 412))
        self.assertEqual(self.read("k"), b"one")
        self.assertEqual(self.leftovers(), [])

    def test_if_match(self) -> None:
        """
        ``If-Match`` replaces an object whose ETag matches (quoted or not);
        a different ETag is ``PreconditionFailed``; a missing key is
        ``NoSuchKey``.
        """
        etag = self.write("k", b"one").headers.get("etag")
        assert etag is not None
        self.write("k", b"two", [("if-match", etag)])
        self.assertEqual(
            self.write_error("k", b"3", [("if-match", etag)]).code, "PreconditionFailed"
        )
        self.write("k", b"four", [("if-match", md5_etag(b"two").strip('"'))])
        self.assertEqual(self.read("k"), b"four")
        self.assertEqual(
            self.write_error("m", b"x", [("if-match", etag)]).code, "NoSuchKey"
        )
        self.assertEqual(self.get_error("m"), "NoSuchKey")

    def test_if_match_hand_placed(self) -> None:
        """
        A file placed by hand is matched by its synthetic ETag.
        """
        path = self.put("k", b"by hand")
        etag = synthetic_etag(os.stat(path))
        self.write("k", b"replaced", [("if-match", etag)])
        self.assertEqual(self.read("k"), b"replaced")

    def test_checked_at_commit(self) -> None:
        """
        The condition is checked when the body has arrived, not when it
        started: a key created meanwhile fails ``If-None-Match: *``.
        """
        body = ControlledProducer()
        d = self.store.put_object(
            ObjectWrite(
                key="k", body=body, headers=HeaderList.of(("if-none-match", "*"))
            )
        )
        self.pool.run_all()
        body.send(b"late")
        self.write("k", b"early")
        body.finish()
        self.assertEqual(self.error(d).code, "PreconditionFailed")
        self.assertEqual(self.read("k"), b"early")
        self.assertEqual(self.leftovers(), [])


class KeyRuleTests(WriteTestsMixin, SynchronousTestCase):
    """
    Keys a directory cannot hold.
    """

    def test_parent_is_object(self) -> None:
        """
        A key below an object is ``InvalidArgument`` naming that object,
        before the body is read.
        """
        self.write("a", b"file")
        body = ControlledProducer.sending(b"x", CHUNK)
        error = self.write_error("a/b/c", body=body)
        self.assertEqual(error.code, "InvalidArgument")
        self.assertIn("'a' is an object", error.message)
        self.assertFalse(body.started)
        self.assertEqual(self.leftovers(), [])

    def test_key_is_directory(self) -> None:
        """
        A key that is a directory holding other keys is ``InvalidArgument``.
        """
        self.write("a/b", b"x")
        body = ControlledProducer.sending(b"y", CHUNK)
        error = self.write_error("a", body=body)
        self.assertEqual(error.code, "InvalidArgument")
        self.assertIn("directory", error.message)
        self.assertFalse(body.started)
        self.assertEqual(self.read("a/b"), b"x")

    def test_parent_made_an_object_meanwhile(self) -> None:
        """
        A parent that became a file while the body arrived fails the commit
        with ``InvalidArgument``; nothing is left behind.
        """
        body = ControlledProducer()
        d = self.store.put_object(ObjectWrite(key="a/b", body=body))
        self.pool.run_all()
        body.send(b"x")
        self.write("a", b"file")
        body.finish()
        self.assertEqual(self.error(d).code, "InvalidArgument")
        self.assertEqual(self.leftovers(), [])
        self.assertEqual(self.read("a"), b"file")

    def test_name_rules(self) -> None:
        """
        Empty segments, reserved keys and overlong segments are refused.
        """
        for key in ["a//b", "/a", ".multistore/x", "x" * 251, "a/../b"]:
            self.assertEqual(self.write_error(key, b"x").code, "InvalidArgument", key)
        self.assertEqual(self.leftovers(), [])

    def test_link_outside(self) -> None:
        """
        A key through a symbolic link that leads outside the root is
        refused; nothing is written there.
        """
        outside = self.make_root()
        os.symlink(outside, self.path("link"))
        error = self.write_error("link/x", b"secret")
        self.assertEqual(error.code, "InvalidArgument")
        self.assertIn("outside", error.message)
        self.assertEqual(os.listdir(outside), [])
        self.assertEqual(self.leftovers(), [])

    def test_link_inside(self) -> None:
        """
        A key through a symbolic link to a directory inside the root is
        written there.
        """
        os.mkdir(self.path("real"))
        os.symlink("real", self.path("link"))
        self.write("link/x", b"data")
        with open(self.path("real", "x"), "rb") as f:
            self.assertEqual(f.read(), b"data")

    def test_replaces_link_to_file(self) -> None:
        """
        Writing a key that is a symbolic link replaces the link, never the
        file it points to.
        """
        outside = self.make_root()
        target = os.path.join(outside, "t")
        with open(target, "wb") as f:
            f.write(b"precious")
        os.symlink(target, self.path("k"))
        self.write("k", b"new")
        self.assertFalse(os.path.islink(self.path("k")))
        with open(target, "rb") as f:
            self.assertEqual(f.read(), b"precious")


class MarkerTests(WriteTestsMixin, SynchronousTestCase):
    """
    Directory markers: keys ending in ``/``.
    """

    def test_create_and_read(self) -> None:
        """
        An empty PUT of ``dir/`` makes the directory and a marker: GET and
        HEAD answer an empty object with its ETag and headers.
        """
        response = self.write(
            "a/dir/", b"", [("content-type", "application/x-directory")]
        )
        self.assertEqual(response.headers.get("etag"), EMPTY_MD5)
        self.assertTrue(os.path.isdir(self.path("a", "dir")))
        got = self.get("a/dir/")
        self.assertEqual(got.status, 200)
        self.assertEqual(got.headers.get("etag"), EMPTY_MD5)
        self.assertEqual(got.headers.get("content-length"), "0")
        self.assertEqual(got.headers.get("content-type"), "application/x-directory")
        self.assertEqual(
            got.headers.get("last-modified"), "Sun, 17 Mar 2030 17:46:40 GMT"
        )
        self.assertEqual(self.read_body(got), b"")
        self.assertEqual(self.get("a/dir/", head=True).status, 200)
        self.assertEqual(self.get_error("a/"), "NoSuchKey")
        self.assertEqual(self.get_error("a/dir/", if_match='"x"'), "PreconditionFailed")

    def test_listed(self) -> None:
        """
        Listings show a marker as the key ``dir/``, before the keys under
        it, and roll it up under a delimiter even when the directory is
        otherwise empty.
        """
        self.write("d/", b"")
        self.write("d/x", b"1")
        self.write("e/", b"")
        os.mkdir(self.path("plain"))
        page = self.list()
        self.assertEqual(_keys(page), ["d/", "d/x", "e/"])
        self.assertEqual(page.objects[0].etag, EMPTY_MD5)
        self.assertEqual(page.objects[0].size, 0)
        page = self.list(delimiter="/")
        self.assertEqual((_keys(page), page.common_prefixes), ([], ("d/", "e/")))
        page = self.list(prefix="e/", delimiter="/")
        self.assertEqual((_keys(page), page.common_prefixes), (["e/"], ()))
        self.assertEqual(_keys(self.list(start_after="d/")), ["d/x", "e/"])
        self.assertEqual(_keys(self.list(prefix="d/x")), ["d/x"])

    def test_bytes_refused(self) -> None:
        """
        A marker with bytes is ``InvalidArgument``: before the body starts
        when its length is known, after it otherwise; nothing is made.
        """
        body = ControlledProducer.sending(b"x", CHUNK)
        self.assertEqual(self.write_error("m/", body=body).code, "InvalidArgument")
        self.assertFalse(body.started)
        body = ControlledProducer.sending(b"x", CHUNK, length=UNKNOWN_LENGTH)
        self.assertEqual(self.write_error("m/", body=body).code, "InvalidArgument")
        self.assertFalse(os.path.exists(self.path("m")))
        self.assertEqual(self.leftovers(), [])

    def test_marker_over_object(self) -> None:
        """
        A marker where an object is is ``InvalidArgument``.
        """
        self.write("m", b"x")
        self.assertEqual(self.write_error("m/").code, "InvalidArgument")

    def test_conditions(self) -> None:
        """
        ``If-None-Match: *`` fails on an existing marker, not on a bare
        directory.
        """
        self.write("d/x", b"1")
        self.write("d/", b"", [("if-none-match", "*")])
        self.assertEqual(
            self.write_error("d/", b"", [("if-none-match", "*")]).code,
            "PreconditionFailed",
        )

    def test_delete(self) -> None:
        """
        Deleting a marker removes it and its directory if empty; a directory
        with a marker outlives the last key under it.
        """
        self.write("d/", b"")
        self.write("d/x", b"1")
        self.result(self.store.delete_object("d/x", None))
        self.assertTrue(os.path.isdir(self.path("d")))
        self.assertEqual(_keys(self.list()), ["d/"])
        self.result(self.store.delete_object("d/", None))
        self.assertFalse(os.path.exists(self.path("d")))
        self.assertEqual(_keys(self.list()), [])
        self.assertEqual(self.get_error("d/"), "NoSuchKey")


class DeleteTests(WriteTestsMixin, SynchronousTestCase):
    """
    Tests for L{LocalStore.delete_object} and L{LocalStore.delete_objects}.
    """

    def test_delete(self) -> None:
        """
        Deleting removes the file, its metadata, and the directories left
        empty in both trees, up to the root.
        """
        self.write("a/b/c", b"x", [("x-amz-meta-a", "1")])
        self.write("a/d", b"y")
        response = self.result(self.store.delete_object("a/b/c", None))
        self.assertEqual((response.status, response.body), (204, None))
        self.assertEqual(sorted(os.listdir(self.path("a"))), ["d"])
        self.assertFalse(os.path.exists(self.path(".multistore", "meta", "a.d", "b.d")))
        self.result(self.store.delete_object("a/d", None))
        self.assertEqual(os.listdir(self.root), [".multistore"])
        self.assertEqual(os.listdir(self.path(".multistore", "meta")), [])

    def test_missing(self) -> None:
        """
        Deleting what is not there succeeds: a missing key, a key no file
        can have, a directory.
        """
        self.write("dir/x", b"1")
        for key in ["missing", "a//b", "dir", "dir/x/y"]:
            self.assertEqual(
                self.result(self.store.delete_object(key, None)).status, 204
            )
        self.assertEqual(self.read("dir/x"), b"1")

    def test_refused(self) -> None:
        """
        Reserved keys and versions other than ``null`` are refused.
        """
        self.write("k", b"1")
        self.assertEqual(
            self.error(self.store.delete_object(".multistore/tmp", None)).code,
            "InvalidArgument",
        )
        self.assertEqual(
            self.error(self.store.delete_object("k", "v1")).code, "NoSuchVersion"
        )
        self.assertEqual(self.result(self.store.delete_object("k", "null")).status, 204)
        self.assertEqual(self.get_error("k"), "NoSuchKey")

    def test_hand_placed(self) -> None:
        """
        A file placed by hand, and a symbolic link, are deleted (the link,
        not its target).
        """
        self.put("h/k", b"1")
        outside = self.make_root()
        target = os.path.join(outside, "t")
        with open(target, "wb") as f:
            f.write(b"keep")
        os.symlink(target, self.path("link"))
        self.result(self.store.delete_object("h/k", None))
        self.result(self.store.delete_object("link", None))
        self.assertEqual(os.listdir(self.root), [])
        self.assertTrue(os.path.exists(target))

    def test_delete_objects(self) -> None:
        """
        Each key is deleted on its own; one that fails is reported with its
        error and does not stop the rest.
        """
        self.write("a", b"1")
        self.write("b/c", b"2")
        outcomes = self.result(
            self.store.delete_objects(
                [("a", None), (".multistore/x", None), ("b/c", "null"), ("gone", None)]
            )
        )
        self.assertEqual(
            [(o.key, o.error[0] if o.error else None, o.version_id) for o in outcomes],
            [
                ("a", None, None),
                (".multistore/x", "InvalidArgument", None),
                ("b/c", None, "null"),
                ("gone", None, None),
            ],
        )
        self.assertEqual(_keys(self.list()), [])


class CopyTests(WriteTestsMixin, SynchronousTestCase):
    """
    Tests for L{LocalStore.copy_object}.
    """

    def copy(
        self,
        source_key: str,
        key: str,
        headers: Iterable[tuple[str, str]] = (),
        conditions: Iterable[tuple[str, str]] = (),
        root: str | None = None,
    ) -> Deferred[Any]:
        source = CopySource(
            bucket=local_bucket(root or self.root),
            key=source_key,
            conditions=HeaderList(tuple(conditions)),
        )
        return self.store.copy_object(source, key, HeaderList(tuple(headers)))

    def test_copy(self) -> None:
        """
        A copy has the source's bytes, headers and tags, the MD5 as ETag,
        and storage class STANDARD.
        """
        self.write(
            "src",
            b"the bytes",
            [
                ("content-type", "text/x"),
                ("x-amz-meta-a", "1"),
                ("x-amz-tagging", "t=1"),
                ("x-amz-storage-class", "GLACIER"),
            ],
        )
        result = self.result(self.copy("src", "dst/copy"))
        self.assertEqual(result.etag, md5_etag(b"the bytes"))
        self.assertEqual(
            result.last_modified,
            datetime.fromtimestamp(
                int(os.stat(self.path("dst", "copy")).st_mtime), UTC
            ),
        )
        got = self.get("dst/copy")
        self.assertEqual(self.read_body(got), b"the bytes")
        self.assertEqual(got.headers.get("content-type"), "text/x")
        self.assertEqual(got.headers.get("x-amz-meta-a"), "1")
        self.assertEqual(got.headers.get("x-amz-tagging-count"), "1")
        self.assertNotIn("x-amz-storage-class", got.headers)

    def test_replace(self) -> None:
        """
        ``REPLACE`` takes the request's headers; the tagging directive
        chooses the tags; a storage class may be given.
        """
        self.write("src", b"x", [("x-amz-meta-a", "1"), ("x-amz-tagging", "t=1")])
        self.result(
            self.copy(
                "src",
                "dst",
                [
                    ("x-amz-metadata-directive", "REPLACE"),
                    ("x-amz-meta-b", "2"),
                    ("content-type", "text/y"),
                    ("x-amz-tagging-directive", "REPLACE"),
                    ("x-amz-tagging", "u=1&v=2"),
                    ("x-amz-storage-class", "STANDARD_IA"),
                ],
            )
        )
        headers = self.get("dst", head=True).headers
        self.assertNotIn("x-amz-meta-a", headers)
        self.assertEqual(headers.get("x-amz-meta-b"), "2")
        self.assertEqual(headers.get("content-type"), "text/y")
        self.assertEqual(headers.get("x-amz-tagging-count"), "2")
        self.assertEqual(headers.get("x-amz-storage-class"), "STANDARD_IA")
        self.assertEqual(
            self.error(
                self.copy("src", "d2", [("x-amz-metadata-directive", "MOVE")])
            ).code,
            "InvalidArgument",
        )

    def test_hand_placed_source(self) -> None:
        """
        A copy of a file placed by hand keeps the media type its name gave
        it, and gets a real MD5.
        """
        self.put("page.html", b"<p>")
        self.result(self.copy("page.html", "copy"))
        got = self.get("copy", head=True).headers
        self.assertEqual(got.get("content-type"), "text/html")
        self.assertEqual(got.get("etag"), md5_etag(b"<p>"))

    def test_conditions(self) -> None:
        """
        The ``x-amz-copy-source-if-*`` conditions are checked against the
        source: a failing one is ``PreconditionFailed`` and copies nothing.
        """
        etag = self.write("src", b"x").headers.get("etag")
        assert etag is not None
        self.result(
            self.copy("src", "ok", conditions=[("x-amz-copy-source-if-match", etag)])
        )
        for condition in [
            ("x-amz-copy-source-if-match", '"other"'),
            ("x-amz-copy-source-if-none-match", etag),
            ("x-amz-copy-source-if-unmodified-since", "Sat, 01 Jan 2000 00:00:00 GMT"),
            ("x-amz-copy-source-if-modified-since", "Mon, 01 Jan 2029 00:00:00 GMT"),
        ]:
            error = self.error(self.copy("src", "no", conditions=[condition]))
            self.assertEqual(error.code, "PreconditionFailed", condition)
        self.assertEqual(self.get_error("no"), "NoSuchKey")
        self.assertEqual(self.leftovers(), [])
        error = self.error(self.copy("src", "ok", [("if-none-match", "*")]))
        self.assertEqual(error.code, "PreconditionFailed")

    def test_can_copy(self) -> None:
        """
        L{LocalStore.can_copy} accepts any directory store's object, ranged
        or not (this directory or another), and refuses any other kind.
        """
        for source in (
            CopySource(bucket=local_bucket(self.root), key="src"),
            CopySource(bucket=local_bucket("/elsewhere"), key="k", range="bytes=0-1"),
        ):
            self.assertTrue(self.store.can_copy(source))
        for kind in ("s3", "azure", "gcs"):
            other = BucketConfig(name="o", backend_type=kind)
            self.assertFalse(self.store.can_copy(CopySource(bucket=other, key="k")))

    def test_errors(self) -> None:
        """
        A missing source is ``NoSuchKey``; a source on another service is
        ``NotImplemented`` (L{LocalStore.can_copy} refuses it: the gateway
        streams it); a copy onto itself that
        changes nothing is ``InvalidRequest``, one that replaces metadata is
        fine.
        """
        self.assertEqual(self.error(self.copy("missing", "k")).code, "NoSuchKey")
        s3 = CopySource(
            bucket=BucketConfig(
                name="s", backend_type="s3", backend_options={"bucket_name": "b"}
            ),
            key="k",
        )
        self.assertEqual(
            self.error(self.store.copy_object(s3, "k", HeaderList())).code,
            "NotImplemented",
        )
        self.write("same", b"x", [("x-amz-meta-a", "1")])
        self.assertEqual(self.error(self.copy("same", "same")).code, "InvalidRequest")
        self.result(
            self.copy(
                "same",
                "same",
                [("x-amz-metadata-directive", "REPLACE"), ("x-amz-meta-a", "2")],
            )
        )
        self.assertEqual(self.get("same", head=True).headers.get("x-amz-meta-a"), "2")
        self.assertEqual(self.error(self.copy("same", "a//b")).code, "InvalidArgument")
        self.assertEqual(self.leftovers(), [])

    def test_other_store(self) -> None:
        """
        A copy from another directory store reads from its root.
        """
        other = self.make_root()
        self.write(
            "k", b"elsewhere", [("x-amz-meta-o", "1")], store=self.make_store(other)
        )
        self.result(self.copy("k", "here", root=other))
        got = self.get("here")
        self.assertEqual(self.read_body(got), b"elsewhere")
        self.assertEqual(got.headers.get("x-amz-meta-o"), "1")


class MultipartTests(WriteTestsMixin, SynchronousTestCase):
    """
    Multipart uploads (parts of at least 10 bytes, but the last).
    """

    def create(
        self,
        key: str = "big",
        headers: Iterable[tuple[str, str]] = (),
        store: LocalStore | None = None,
    ) -> str:
        upload_id = self.result(
            (store or self.store).create_multipart_upload(
                key, HeaderList(tuple(headers))
            )
        )
        assert isinstance(upload_id, str)
        return upload_id

    def part(
        self,
        upload_id: str,
        number: int,
        data: bytes,
        key: str = "big",
        store: LocalStore | None = None,
    ) -> str:
        response = self.result(
            (store or self.store).upload_part(
                ObjectWrite(key=key, body=ControlledProducer.sending(data, CHUNK)),
                upload_id,
                number,
            )
        )
        etag = response.headers.get("etag")
        assert isinstance(etag, str)
        return etag

    def complete(
        self,
        upload_id: str,
        parts: Iterable[tuple[int, str]],
        key: str = "big",
        headers: Iterable[tuple[str, str]] = (),
        store: LocalStore | None = None,
    ) -> Deferred[Any]:
        return (store or self.store).complete_multipart_upload(
            key,
            upload_id,
            [CompletedPart(part_number=n, etag=e) for n, e in parts],
            HeaderList(tuple(headers)),
        )

    def test_end_to_end(self) -> None:
        """
        Parts are assembled in order into the object, which carries the
        upload's headers and the multipart ETag; the upload is gone after.
        """
        upload_id = self.create(
            headers=[("content-type", "x/y"), ("x-amz-meta-a", "1")]
        )
        self.assertRegex(upload_id, r"^[A-Za-z0-9_-]{32}$")
        first, second, last = b"A" * 10, b"B" * 12, b"C" * 3
        etags = [
            self.part(upload_id, 1, first),
            self.part(upload_id, 2, second),
            self.part(upload_id, 5, last),
        ]
        self.assertEqual(etags, [md5_etag(first), md5_etag(second), md5_etag(last)])
        result = self.result(
            self.complete(upload_id, zip([1, 2, 5], etags, strict=True))
        )
        self.assertEqual(result.etag, multipart_etag(first, second, last))
        got = self.get("big")
        self.assertEqual(self.read_body(got), first + second + last)
        self.assertEqual(got.headers.get("etag"), result.etag)
        self.assertEqual(got.headers.get("content-type"), "x/y")
        self.assertEqual(got.headers.get("x-amz-meta-a"), "1")
        self.assertEqual(os.listdir(self.path(".multistore", "uploads")), [])
        self.assertEqual(self.leftovers(), [])
        self.assertEqual(
            self.error(self.complete(upload_id, zip([1], etags[:1], strict=True))).code,
            "NoSuchUpload",
        )
        self.assertEqual(self.list().objects[0].etag, result.etag)

    def test_part_number_read(self) -> None:
        """
        A read of part ``n`` of a multipart object returns that part's bytes
        as a range, with the part count.
        """
        upload_id = self.create()
        etags = [self.part(upload_id, 1, b"A" * 10), self.part(upload_id, 2, b"BB")]
        self.result(self.complete(upload_id, zip([1, 2], etags, strict=True)))
        got = self.get("big", part_number=2)
        self.assertEqual(got.status, 206)
        self.assertEqual(got.headers.get("content-range"), "bytes 10-11/12")
        self.assertEqual(got.headers.get("x-amz-mp-parts-count"), "2")
        self.assertEqual(self.read_body(got), b"BB")
        self.assertEqual(self.get_error("big", part_number=3), "InvalidPartNumber")

    def test_restart(self) -> None:
        """
        Everything is on disk: other store instances (as after a restart)
        continue, list and complete an upload.
        """
        upload_id = self.create(store=self.make_store())
        etag = self.part(upload_id, 1, b"part one!!", store=self.make_store())
        page = self.result(self.make_store().list_parts("big", upload_id, 100, 0))
        self.assertEqual(
            [(p.part_number, p.etag, p.size) for p in page.parts], [(1, etag, 10)]
        )
        self.result(self.complete(upload_id, [(1, etag)], store=self.make_store()))
        self.assertEqual(self.read("big"), b"part one!!")

    def test_part_replaced(self) -> None:
        """
        A part uploaded again replaces the earlier one.
        """
        upload_id = self.create()
        self.part(upload_id, 1, b"first")
        etag = self.part(upload_id, 1, b"second")
        self.assertEqual(
            self.error(self.complete(upload_id, [(1, md5_etag(b"first"))])).code,
            "InvalidPart",
        )
        self.result(self.complete(upload_id, [(1, etag)]))
        self.assertEqual(self.read("big"), b"second")

    def test_invalid(self) -> None:
        """
        Completion checks the parts: ascending (``InvalidPartOrder``),
        present with the ETag given (``InvalidPart``), large enough but the
        last (``EntityTooSmall``), at least one (``MalformedXML``); a failed
        completion leaves the upload in place.
        """
        upload_id = self.create()
        small = self.part(upload_id, 1, b"small")
        big = self.part(upload_id, 2, b"big enough")
        cases = [
            ([(2, big), (1, small)], "InvalidPartOrder"),
            ([(1, small), (1, small)], "InvalidPartOrder"),
            ([(1, small), (3, big)], "InvalidPart"),
            ([(1, big)], "InvalidPart"),
            ([(10001, big)], "InvalidPart"),
            ([(1, small), (2, big)], "EntityTooSmall"),
            ([], "MalformedXML"),
        ]
        for parts, code in cases:
            error = self.error(self.complete(upload_id, parts))
            self.assertEqual(error.code, code, parts)
        self.assertEqual(self.leftovers(), [])
        self.result(self.complete(upload_id, [(2, big.strip('"'))]))
        self.assertEqual(self.read("big"), b"big enough")

    def test_checksums(self) -> None:
        """
        A part's checksum given on completion must match the one it was
        uploaded with.
        """
        upload_id = self.create()
        response = self.result(
            self.store.upload_part(
                ObjectWrite(
                    key="big",
                    body=ControlledProducer.sending(b"x", CHUNK),
                    headers=HeaderList.of(("x-amz-checksum-crc32", "AAAA")),
                ),
                upload_id,
                1,
            )
        )
        self.assertEqual(response.headers.get("x-amz-checksum-crc32"), "AAAA")
        etag = response.headers.get("etag")
        wrong = [CompletedPart(1, etag or "", (("CRC32", "BBBB"),))]
        error = self.error(
            self.store.complete_multipart_upload("big", upload_id, wrong, HeaderList())
        )
        self.assertEqual(error.code, "InvalidPart")
        right = [CompletedPart(1, etag or "", (("CRC32", "AAAA"),))]
        self.result(
            self.store.complete_multipart_upload("big", upload_id, right, HeaderList())
        )

    def test_conditions(self) -> None:
        """
        Completion honours ``If-None-Match``; a failed one keeps the upload.
        """
        self.write("big", b"exists")
        upload_id = self.create()
        etag = self.part(upload_id, 1, b"x")
        error = self.error(
            self.complete(upload_id, [(1, etag)], headers=[("if-none-match", "*")])
        )
        self.assertEqual(error.code, "PreconditionFailed")
        self.assertEqual(self.read("big"), b"exists")
        self.result(
            self.complete(
                upload_id, [(1, etag)], headers=[("if-match", md5_etag(b"exists"))]
            )
        )
        self.assertEqual(self.read("big"), b"x")

    def test_no_such_upload(self) -> None:
        """
        Unknown, malformed, aborted ids, and an id used with another key,
        are ``NoSuchUpload`` for every operation.
        """
        upload_id = self.create()
        for key, bad in [("big", "A" * 32), ("big", "../../etc"), ("other", upload_id)]:
            self.assertEqual(
                self.error(
                    self.store.upload_part(
                        ObjectWrite(
                            key=key, body=ControlledProducer.sending(b"x", CHUNK)
                        ),
                        bad,
                        1,
                    )
                ).code,
                "NoSuchUpload",
            )
            self.assertEqual(
                self.error(self.store.list_parts(key, bad, 10, 0)).code, "NoSuchUpload"
            )
            self.assertEqual(
                self.error(self.store.abort_multipart_upload(key, bad)).code,
                "NoSuchUpload",
            )
            self.assertEqual(
                self.error(self.complete(bad, [(1, '"x"')], key=key)).code,
                "NoSuchUpload",
            )
        self.assertEqual(self.leftovers(), [])
        self.result(self.store.abort_multipart_upload("big", upload_id))
        self.assertEqual(
            self.error(self.store.list_parts("big", upload_id, 10, 0)).code,
            "NoSuchUpload",
        )
        self.assertEqual(os.listdir(self.path(".multistore", "uploads")), [])
        fresh = self.make_store(self.make_root())
        self.assertEqual(
            self.error(fresh.list_parts("big", "A" * 32, 10, 0)).code, "NoSuchUpload"
        )

    def test_part_number_range(self) -> None:
        """
        Part numbers outside 1 to 10000 are ``InvalidArgument``.
        """
        upload_id = self.create()
        for number in [0, 10001]:
            error = self.error(
                self.store.upload_part(
                    ObjectWrite(
                        key="big", body=ControlledProducer.sending(b"x", CHUNK)
                    ),
                    upload_id,
                    number,
                )
            )
            self.assertEqual(error.code, "InvalidArgument")

    def test_refused_keys(self) -> None:
        """
        A key the store cannot hold, or a directory marker, cannot start an
        upload.
        """
        for key in ["a//b", "dir/", ".multistore/u"]:
            self.assertEqual(
                self.error(self.store.create_multipart_upload(key, HeaderList())).code,
                "InvalidArgument",
            )

    def test_part_failure_leaves_nothing(self) -> None:
        """
        A part whose body fails leaves no part and no temporary file.
        """
        upload_id = self.create()
        body = ControlledProducer()
        d = self.store.upload_part(ObjectWrite(key="big", body=body), upload_id, 1)
        self.pool.run_all()
        body.send(b"abc")
        body.fail(S3Error("SignatureDoesNotMatch"))
        self.assertEqual(self.error(d).code, "SignatureDoesNotMatch")
        self.assertEqual(
            self.result(self.store.list_parts("big", upload_id, 10, 0)).parts, ()
        )
        self.assertEqual(self.leftovers(), [])

    def test_list_parts(self) -> None:
        """
        Parts are listed in order, above the marker, a page at a time; a
        part whose record does not describe it is not listed.
        """
        upload_id = self.create()
        for number in [3, 1, 2, 4]:
            self.part(upload_id, number, b"p%d" % number)
        page = self.result(self.store.list_parts("big", upload_id, 2, 0))
        self.assertEqual([p.part_number for p in page.parts], [1, 2])
        self.assertEqual((page.truncated, page.next_part_number_marker), (True, 2))
        self.assertEqual(page.parts[0].last_modified.tzinfo, UTC)
        page = self.result(self.store.list_parts("big", upload_id, 2, 2))
        self.assertEqual([p.part_number for p in page.parts], [3, 4])
        self.assertFalse(page.truncated)
        with open(self.path(".multistore", "uploads", upload_id, "3"), "ab") as f:
            f.write(b"tampered")
        page = self.result(self.store.list_parts("big", upload_id, 10, 0))
        self.assertEqual([p.part_number for p in page.parts], [1, 2, 4])

    def test_list_uploads(self) -> None:
        """
        Uploads are listed by key, then time of initiation, under a prefix,
        rolled up at a delimiter, and resume after the markers.
        """
        made: list[tuple[str, str]] = []
        for key, when in [("b", 3), ("a/x", 1), ("b", 1), ("a/y", 2), ("c", 5)]:
            self.reactor.now = NOW + when
            made.append((key, self.create(key)))
        ids = dict(made)
        first_b = made[2][1]
        second_b = made[0][1]
        page = self.result(self.store.list_multipart_uploads("", None, None, None, 100))
        self.assertEqual(
            [(u.key, u.upload_id) for u in page.uploads],
            [
                ("a/x", ids["a/x"]),
                ("a/y", ids["a/y"]),
                ("b", first_b),
                ("b", second_b),
                ("c", ids["c"]),
            ],
        )
        self.assertEqual(
            page.uploads[0].initiated, datetime.fromtimestamp(NOW + 1, UTC)
        )
        page = self.result(self.store.list_multipart_uploads("", "/", None, None, 100))
        self.assertEqual(
            ([u.key for u in page.uploads], page.common_prefixes),
            (["b", "b", "c"], ("a/",)),
        )
        page = self.result(
            self.store.list_multipart_uploads("a/", None, None, None, 100)
        )
        self.assertEqual([u.key for u in page.uploads], ["a/x", "a/y"])
        page = self.result(self.store.list_multipart_uploads("", None, None, None, 3))
        self.assertEqual(
            (page.truncated, page.next_key_marker, page.next_upload_id_marker),
            (True, "b", first_b),
        )
        page = self.result(self.store.list_multipart_uploads("", None, "b", first_b, 3))
        self.assertEqual(
            [(u.key, u.upload_id) for u in page.uploads],
            [("b", second_b), ("c", ids["c"])],
        )
        self.assertFalse(page.truncated)
        page = self.result(self.store.list_multipart_uploads("", None, "b", None, 3))
        self.assertEqual([u.key for u in page.uploads], ["c"])
        page = self.result(self.store.list_multipart_uploads("", "/", "a/", None, 3))
        self.assertEqual(
            ([u.key for u in page.uploads], page.common_prefixes), (["b", "b", "c"], ())
        )
        page = self.result(self.store.list_multipart_uploads("", "/", None, None, 1))
        self.assertEqual(
            (
                page.common_prefixes,
                page.truncated,
                page.next_key_marker,
                page.next_upload_id_marker,
            ),
            (("a/",), True, "a/", None),
        )
        fresh = self.make_store(self.make_root())
        self.assertEqual(
            self.result(fresh.list_multipart_uploads("", None, None, None, 10)).uploads,
            (),
        )

    def test_upload_part_copy(self) -> None:
        """
        A part can be copied from an object, whole or a range of it.
        """
        self.write("src", b"0123456789abcdef")
        upload_id = self.create()
        source = CopySource(
            bucket=local_bucket(self.root), key="src", range="bytes=2-11"
        )
        result = self.result(self.store.upload_part_copy(source, "big", upload_id, 1))
        self.assertEqual(result.etag, md5_etag(b"23456789ab"))
        whole = CopySource(bucket=local_bucket(self.root), key="src")
        second = self.result(self.store.upload_part_copy(whole, "big", upload_id, 2))
        self.result(self.complete(upload_id, [(1, result.etag), (2, second.etag)]))
        self.assertEqual(self.read("big"), b"23456789ab0123456789abcdef")
        upload_id = self.create()
        for bad, code in [
            ("bytes=5-100", "InvalidRange"),
            ("bytes=3-", "InvalidArgument"),
            ("bytes=5-2", "InvalidRange"),
        ]:
            source = CopySource(bucket=local_bucket(self.root), key="src", range=bad)
            self.assertEqual(
                self.error(
                    self.store.upload_part_copy(source, "big", upload_id, 1)
                ).code,
                code,
            )
        s3 = CopySource(bucket=BucketConfig(name="s", backend_type="s3"), key="src")
        self.assertEqual(
            self.error(self.store.upload_part_copy(s3, "big", upload_id, 1)).code,
            "NotImplemented",
        )
        self.assertEqual(
            self.error(self.store.upload_part_copy(whole, "big", "B" * 32, 1)).code,
            "NoSuchUpload",
        )
        self.assertEqual(self.leftovers(), [])


class BucketTests(WriteTestsMixin, SynchronousTestCase):
    """
    Tests for L{LocalStore.create_bucket} and L{LocalStore.delete_bucket}.
    """

    def test_create(self) -> None:
        """
        Creating makes the root (and its parents); creating again is
        ``BucketAlreadyOwnedByYou``.
        """
        root = os.path.join(self.make_root(), "a", "b")
        store = self.make_store(root)
        self.result(store.create_bucket())
        self.assertTrue(os.path.isdir(root))
        self.assertEqual(
            self.error(store.create_bucket()).code, "BucketAlreadyOwnedByYou"
        )

    def test_delete(self) -> None:
        """
        A root holding only housekeeping (an upload, stale metadata) is
        removed; one holding an object is ``BucketNotEmpty``; a missing one
        ``NoSuchBucket``.
        """
        self.write("k", b"x")
        self.result(self.store.create_multipart_upload("u", HeaderList()))
        self.assertEqual(self.error(self.store.delete_bucket()).code, "BucketNotEmpty")
        os.remove(self.path("k"))
        self.result(self.store.delete_bucket())
        self.assertFalse(os.path.exists(self.root))
        self.assertEqual(self.error(self.store.delete_bucket()).code, "NoSuchBucket")

    def test_for_bucket_fsync(self) -> None:
        """
        Stores flush to disk unless the bucket's ``fsync`` option is false.
        """
        reactor = InlineReactor()

        def made(**options: str) -> LocalStore:
            bucket = BucketConfig(
                name="b",
                backend_type="file",
                backend_options={"root": self.root, **options},
            )
            return LocalStore.for_bucket(bucket, reactor, reactor, self.pool)  # type: ignore[arg-type]

        def expected(fsync: bool) -> LocalStore:
            return LocalStore(
                root=self.root,
                reactor=reactor,  # type: ignore[arg-type]
                threadpool=self.pool,
                clock=reactor,  # type: ignore[arg-type]
                fsync=fsync,
            )

        self.assertEqual(made(), expected(True))
        self.assertEqual(made(fsync="true"), expected(True))
        self.assertEqual(made(fsync="false"), expected(False))

    def test_without_fsync(self) -> None:
        """
        A store that does not flush writes all the same.
        """
        store = self.make_store(fsync=False)
        self.write("a/b", b"data", store=store)
        self.assertEqual(self.read("a/b"), b"data")


class ListingAfterWritesTests(WriteTestsMixin, SynchronousTestCase):
    """
    The housekeeping never shows.
    """

    def test_hidden(self) -> None:
        """
        With temporary files, metadata and uploads in ``.multistore``,
        listings show only the objects.
        """
        self.write("a/b", b"1")
        self.write("d/", b"")
        self.result(self.store.create_multipart_upload("u", HeaderList()))
        body = ControlledProducer()
        self.store.put_object(ObjectWrite(key="pending", body=body))
        self.pool.run_all()
        body.send(b"x")
        self.pool.run_all()
        self.assertEqual(len(self.leftovers()), 1)
        self.assertEqual(_keys(self.list()), ["a/b", "d/"])
        page = self.list(delimiter="/")
        self.assertEqual((_keys(page), page.common_prefixes), ([], ("a/", "d/")))
        self.assertEqual(self.get_error(".multistore/tmp"), "InvalidArgument")

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(
        headers=st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "x-amz-meta-a",
                        "x-amz-meta-b-c",
                        "content-type",
                        "cache-control",
                        "content-language",
                    ]
                ),
                st.text(
                    st.characters(min_codepoint=32, max_codepoint=255), max_size=20
                ),
            ),
            max_size=4,
            unique_by=lambda pair: pair[0],
        ),
        data=st.binary(max_size=40),
    )
    def test_round_trip(self, headers: list[tuple[str, str]], data: bytes) -> None:
        """
        Whatever headers (ISO-8859-1 text) an object is written with come
        back on HEAD, with its bytes and MD5.
        """
        self.write("k", data, headers)
        got = self.get("k")
        for name, value in headers:
            if name != "content-type" or value:
                self.assertEqual(got.headers.get(name), value)
        self.assertEqual(got.headers.get("etag"), md5_etag(data))
        self.assertEqual(self.read_body(got), data)


# --- the real pool and reactor ---------------------------------------------------


class SlowPool(ThreadPool):
    """
    A real thread pool whose every call first sleeps a little, as a busy
    disk would.
    """

    def callInThreadWithCallback(
        self,
        onResult: Callable[..., None],
        func: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        def slow(*a: Any, **k: Any) -> Any:
            time.sleep(0.002)
            return func(*a, **k)

        super().callInThreadWithCallback(onResult, slow, *args, **kwargs)


@implementer(IBodyProducer)
class PacedBody:
    """
    A body that sends chunks from the reactor as fast as it is let (never
    while paused), and records how far ahead of the disk it ever got.
    """

    def __init__(self, data: bytes, chunk: int, temp_dir: str) -> None:
        self.length = len(data)
        self.data = data
        self.chunk = chunk
        self.temp_dir = temp_dir
        self.sent = 0
        self.paused = False
        self.pauses = 0
        self.ahead = 0
        self.done: Deferred[None] = Deferred()
        self.consumer: Any = None

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self.consumer = consumer
        global_reactor.callLater(0, self.step)  # type: ignore[attr-defined]
        return self.done

    def on_disk(self) -> int:
        names = os.listdir(self.temp_dir)
        return sum(os.stat(os.path.join(self.temp_dir, n)).st_size for n in names)

    def step(self) -> None:
        if self.paused or self.done.called:
            return
        if self.sent >= len(self.data):
            self.done.callback(None)
            return
        chunk = self.data[self.sent : self.sent + self.chunk]
        self.sent += len(chunk)
        self.consumer.write(chunk)
        self.ahead = max(self.ahead, self.sent - self.on_disk())
        global_reactor.callLater(0, self.step)  # type: ignore[attr-defined]

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False
        global_reactor.callLater(0, self.step)  # type: ignore[attr-defined]

    def stopProducing(self) -> None:
        self.paused = True


class RealPoolWriteTests(TestCase):
    """
    Writes on a real (slow) thread pool and the real reactor.
    """

    def setUp(self) -> None:
        import shutil
        import tempfile

        self.root = tempfile.mkdtemp(prefix="multistore-local-writes-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.pool = SlowPool(minthreads=1, maxthreads=4, name="test-local-writes")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.store = LocalStore(
            root=self.root,
            reactor=global_reactor,  # type: ignore[arg-type]
            threadpool=self.pool,
            clock=global_reactor,  # type: ignore[arg-type]
            min_part_size=1,
        )

    async def read(self, key: str) -> bytes:

        response = await self.store.get_object(ObjectRead(key=key))
        assert response.body is not None
        consumer = CollectingConsumer(strict=True)
        await response.body.deliver(consumer)
        return consumer.value()

    def test_large_put_is_paced(self) -> Deferred[None]:
        """
        A 4 MiB upload in 16 KiB chunks to a slow disk pauses the sender
        again and again, and never gets more than a few chunks ahead of
        what is on disk; the object arrives whole.
        """
        data = os.urandom(4 * 1024 * 1024)
        chunk = 16 * 1024

        async def go() -> None:
            await self.store.create_bucket().addErrback(lambda f: f.trap(S3Error))
            os.makedirs(os.path.join(self.root, ".multistore", "tmp"), exist_ok=True)
            body = PacedBody(data, chunk, os.path.join(self.root, ".multistore", "tmp"))
            response = await self.store.put_object(ObjectWrite(key="big", body=body))
            self.assertEqual(response.headers.get("etag"), md5_etag(data))
            self.assertGreater(body.pauses, 10)
            self.assertLessEqual(body.ahead, 4 * chunk)
            self.assertEqual(await self.read("big"), data)

        return Deferred.fromCoroutine(go())

    def test_concurrent_conditional_puts(self) -> Deferred[None]:
        """
        Of several ``If-None-Match: *`` PUTs of one key committing at once,
        exactly one succeeds; the others are ``PreconditionFailed``.
        """

        class SlowRename(LocalStore):
            def _rename(
                self, name: bytes, target: bytes, source_dir: int, target_dir: int
            ) -> None:
                # Widen the window between the check and the rename.
                time.sleep(0.02)
                super()._rename(name, target, source_dir, target_dir)

        store = SlowRename(
            root=self.root,
            reactor=global_reactor,  # type: ignore[arg-type]
            threadpool=self.pool,
            clock=global_reactor,  # type: ignore[arg-type]
        )

        async def go() -> None:
            bodies = [ControlledProducer() for _ in range(5)]
            puts = [
                store.put_object(
                    ObjectWrite(
                        key="k", body=b, headers=HeaderList.of(("if-none-match", "*"))
                    )
                )
                for b in bodies
            ]
            for _ in range(500):
                if all(b.started for b in bodies):
                    break
                await deferLater(global_reactor, 0.005, lambda: None)  # type: ignore[arg-type]
            for i, b in enumerate(bodies):
                b.send(b"body %d" % i)
                b.finish()
            outcomes: list[object] = []
            for put in puts:
                try:
                    outcomes.append((await put).status)
                except S3Error as e:
                    outcomes.append(e.code)
            self.assertEqual(
                sorted(map(str, outcomes)), ["200"] + ["PreconditionFailed"] * 4
            )
            self.assertEqual(len(_LOCKS), 0)
            self.assertEqual(
                os.listdir(os.path.join(self.root, ".multistore", "tmp")), []
            )

        return Deferred.fromCoroutine(go())

    def test_reader_during_write(self) -> Deferred[None]:
        """
        A reader during a write gets the old object; a client that goes
        away leaves it in place and no temporary file.
        """

        async def go() -> None:
            old = await self.store.put_object(
                ObjectWrite(key="k", body=ControlledProducer.sending(b"old", CHUNK))
            )
            self.assertEqual(old.status, 200)
            body = ControlledProducer()
            put = self.store.put_object(ObjectWrite(key="k", body=body))
            for _ in range(500):
                if body.started:
                    break
                await deferLater(global_reactor, 0.005, lambda: None)  # type: ignore[arg-type]
            body.send(b"new " * 1000)
            self.assertEqual(await self.read("k"), b"old")
            body.fail(ConnectionLost())
            with self.assertRaises(ConnectionLost):
                await put
            self.assertEqual(await self.read("k"), b"old")
            self.assertEqual(
                os.listdir(os.path.join(self.root, ".multistore", "tmp")), []
            )

        return Deferred.fromCoroutine(go())

    def test_multipart(self) -> Deferred[None]:
        """
        A multipart upload works end to end on the real pool.
        """

        async def go() -> None:
            upload_id = await self.store.create_multipart_upload("m", HeaderList())
            etags = []
            for n, part in enumerate([b"a" * 1000, b"b" * 10], 1):
                response = await self.store.upload_part(
                    ObjectWrite(key="m", body=ControlledProducer.sending(part, 100)),
                    upload_id,
                    n,
                )
                etags.append(response.headers.get("etag") or "")
            await self.store.complete_multipart_upload(
                "m",
                upload_id,
                [CompletedPart(n, e) for n, e in enumerate(etags, 1)],
                HeaderList(),
            )
            self.assertEqual(await self.read("m"), b"a" * 1000 + b"b" * 10)
            page = await self.store.list_objects(ListRequest())
            self.assertEqual(_keys(page), ["m"])

        return Deferred.fromCoroutine(go())
