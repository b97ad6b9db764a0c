"""
Tests for L{multistore.stores.streaming}: the bodies every store sends
through, the header allow-lists, copies streamed through the gateway, and
deletes one key at a time.

The body fakes here (L{MemoryBody}, L{SteppedBody}, L{LengthEnforcing})
are shared by the tests of each store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol, cast

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IConsumer
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger, LogLevel, eventAsText
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer
from zope.interface.verify import verifyObject

from multistore.bodies import BytesBody
from multistore.config import BucketConfig
from multistore.headers import HeaderList
from multistore.model import (
    BackendResponse,
    CopySource,
    DeleteOutcome,
    ObjectRead,
    ObjectResponse,
)
from multistore.s3.conditions import NotModified
from multistore.s3.errors import S3Error
from multistore.stores.common import (
    DELETE_CONCURRENCY,
    MAX_ERROR_DOCUMENT,
    cannot_copy,
    check_read,
    deferred,
    delete_each,
    deleted,
    error_body,
    now,
    on_same_service,
    open_source,
    service_root,
    source_read,
)
from multistore.stores.object_headers import (
    CONTENT_HEADERS,
    OBJECT_REQUEST_HEADERS,
    OBJECT_WRITE,
    STREAMED_COPY,
    AllowList,
    allowed_headers,
    conditions,
    content_header,
    object_headers,
    without_aws_chunked,
    write_response_headers,
)
from multistore.stores.streaming import (
    Chunks,
    LastByteHeld,
    PartBuffer,
    finish_quietly,
    held,
    read_empty,
    shielded,
)


class Uploading(Protocol):
    """
    What counts the bytes a backend has received: a fake forwarder.
    """

    uploads: list[bytes]


# --- request bodies ------------------------------------------------------------


@implementer(IConsumer)
class LengthEnforcing:
    """
    Consumes a request body as a transport does: everything up to the
    declared length, and an error for a byte more.

    :ivar chunks: what was written, in order.
    """

    def __init__(self, length: object) -> None:
        self._length = length
        self.chunks: list[bytes] = []

    def registerProducer(self, producer: object, streaming: bool) -> None:
        raise AssertionError("a request body must not register with its consumer")

    def unregisterProducer(self) -> None:
        raise AssertionError("a request body must not register with its consumer")

    def write(self, data: bytes) -> None:
        """
        Keep a chunk.
        """
        self.chunks.append(data)
        if isinstance(self._length, int) and len(self.value()) > self._length:
            raise AssertionError("more bytes than the body's length")

    def value(self) -> bytes:
        """
        Everything written.
        """
        return b"".join(self.chunks)


class BodyFailed(Exception):
    """
    How a test body fails (a digest that does not match, a client gone).
    """


@implementer(IBodyProducer)
class MemoryBody:
    """
    A request body held in memory: written in chunks at once when started,
    then finished, failed, or left pending.

    :ivar started: whether C{startProducing} was called.
    :ivar stopped: whether C{stopProducing} was called.
    :ivar calls: the producer calls received, in order.
    """

    def __init__(
        self,
        data: bytes = b"",
        *,
        chunks: Sequence[bytes] | None = None,
        length: object = "actual",
        fail: bool = False,
        pending: bool = False,
    ) -> None:
        self._chunks = list(chunks) if chunks is not None else [data] if data else []
        self.length: object = (
            sum(map(len, self._chunks)) if length == "actual" else length
        )
        self._fail = fail
        self._pending = pending
        self.started = False
        self.stopped = False
        self.calls: list[str] = []
        self.done: Deferred[None] = Deferred(lambda _: self.calls.append("cancel"))
        self.error = BodyFailed("the body did not verify")

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """
        Write every chunk, then finish, fail or wait.
        """
        self.started = True
        for chunk in self._chunks:
            consumer.write(chunk)
        if self._fail:
            self.done.errback(self.error)
        elif not self._pending:
            self.done.callback(None)
        return self.done

    def pauseProducing(self) -> None:
        """
        Record the pause.
        """
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        """
        Record the resumption.
        """
        self.calls.append("resume")

    def stopProducing(self) -> None:
        """
        Record the stop.
        """
        self.stopped = True
        self.calls.append("stop")


@implementer(IBodyProducer)
class SteppedBody:
    """
    A request body of unknown length that writes what the test sends, when
    it sends it, as a client's connection does: bytes sent while the body
    is paused wait until it is resumed.

    :ivar calls: the producer calls received, in order.
    :ivar written: the bytes written to the consumer so far.
    :ivar most_held: the most bytes written but not yet sent to the
        backend at any write, if C{uploaded} was given.
    """

    length = UNKNOWN_LENGTH

    def __init__(self, uploaded: Uploading | None = None) -> None:
        """
        :param uploaded: a forwarder whose C{uploads} count as no longer
            held.
        """
        self._uploaded = uploaded
        self._consumer: IConsumer | None = None
        self._waiting: list[bytes] = []
        self._finishing = False
        self.paused = False
        self.stopped = False
        self.calls: list[str] = []
        self.written = 0
        self.most_held = 0
        self.done: Deferred[None] = Deferred(lambda _: self.calls.append("cancel"))
        self.error = BodyFailed("the body did not verify")

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """
        Write what has been sent so far.
        """
        self._consumer = consumer
        self._flush()
        return self.done

    def send(self, *chunks: bytes) -> None:
        """
        The client sends ``chunks``.
        """
        self._waiting.extend(chunks)
        self._flush()

    def finish(self) -> None:
        """
        The body ends once everything sent has been written.
        """
        self._finishing = True
        self._flush()

    def fail(self) -> None:
        """
        The body fails (a digest does not match, the client goes away).
        """
        self.done.errback(self.error)

    def _flush(self) -> None:
        consumer = self._consumer
        while consumer is not None and self._waiting and not self.paused:
            if self.stopped or self.done.called:
                return
            chunk = self._waiting.pop(0)
            self.written += len(chunk)
            consumer.write(chunk)
            if self._uploaded is not None:
                uploaded = sum(map(len, self._uploaded.uploads))
                self.most_held = max(self.most_held, self.written - uploaded)
        if (
            consumer is not None
            and self._finishing
            and not self._waiting
            and not self.done.called
        ):
            self.done.callback(None)

    def pauseProducing(self) -> None:
        """
        Hold what is sent from now on.
        """
        self.calls.append("pause")
        self.paused = True

    def resumeProducing(self) -> None:
        """
        Write what was held.
        """
        self.calls.append("resume")
        self.paused = False
        self._flush()

    def stopProducing(self) -> None:
        """
        Stop for good.
        """
        self.calls.append("stop")
        self.stopped = True


def pending(cancelled: list[str] | None = None) -> Deferred[object]:
    """
    A backend answer still to come; cancelling it is recorded in
    ``cancelled``.
    """
    return Deferred(lambda _: (cancelled if cancelled is not None else []).append("x"))


# --- what clients see of an object ------------------------------------------


#: Backend response headers an object response keeps.
KEPT_HEADERS = (
    ("content-type", "text/plain; charset=utf-8"),
    ("content-length", "10"),
    ("content-range", "bytes 10-19/100"),
    ("content-encoding", "gzip"),
    ("content-disposition", 'attachment; filename="a b.txt"'),
    ("content-language", "fr"),
    ("cache-control", "max-age=60"),
    ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
    ("etag", '"0123456789abcdef"'),
    ("last-modified", "Tue, 14 Nov 2023 00:00:00 GMT"),
    ("accept-ranges", "bytes"),
    ("x-amz-meta-owner", "Zoë"),
    ("x-amz-meta-empty", ""),
    ("x-amz-checksum-crc32", "AAAAAA=="),
    ("x-amz-checksum-sha256", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
    ("x-amz-version-id", "v1"),
    ("x-amz-storage-class", "STANDARD_IA"),
    ("x-amz-server-side-encryption", "AES256"),
    ("x-amz-tagging-count", "2"),
    ("x-amz-delete-marker", "false"),
    ("x-amz-mp-parts-count", "3"),
)

#: Backend response headers that say something about the backend.
DROPPED_HEADERS = (
    ("x-amz-request-id", "BACKENDREQ123"),
    ("x-amz-id-2", "backend-host-id/abc="),
    ("server", "AmazonS3"),
    ("set-cookie", "session=backend; Path=/"),
    ("x-amz-expiration", 'expiry-date="..", rule-id="backend rule"'),
    ("x-amz-bucket-region", "eu-west-2"),
    ("x-backend-thing", "internal"),
    ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
    ("via", "1.1 backend-proxy"),
    ("x-amz-server-side-encryption-context", "secret context"),
)


class ObjectHeadersTests(SynchronousTestCase):
    """
    L{object_headers} keeps only what clients may see.
    """

    def test_allow_list(self) -> None:
        """
        Object headers are kept in order, the backend's own dropped.
        """
        mixed = [*DROPPED_HEADERS[:5], *KEPT_HEADERS, *DROPPED_HEADERS[5:]]
        self.assertEqual(object_headers(HeaderList(mixed)), HeaderList(KEPT_HEADERS))

    def test_case_and_repeats(self) -> None:
        """
        Names match whatever their case; repeated fields keep every value.
        """
        headers = HeaderList(
            [
                ("X-Amz-Meta-Tag", "one"),
                ("Server", "x"),
                ("X-AMZ-META-TAG", "two"),
                ("ETag", '"e"'),
            ]
        )
        self.assertEqual(
            list(object_headers(headers)),
            [("x-amz-meta-tag", "one"), ("x-amz-meta-tag", "two"), ("etag", '"e"')],
        )

    def test_lookalikes(self) -> None:
        """
        Names that only start like allowed names are dropped.
        """
        headers = HeaderList(
            [("etag-x", "1"), ("x-amz-metadata", "2"), ("content-typo", "3")]
        )
        self.assertEqual(list(object_headers(headers)), [])

    @given(
        st.lists(
            st.tuples(
                st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1), st.text()
            )
        )
    )
    def test_subset(self, fields: list[tuple[str, str]]) -> None:
        """
        The result is the input's fields that are allowed, in order.
        """
        headers = HeaderList(fields)
        kept = list(object_headers(headers))
        self.assertTrue(all(pair in list(headers) for pair in kept))
        self.assertEqual(object_headers(HeaderList(kept)), HeaderList(kept))


# --- header allow-lists ----------------------------------------------------------


class WriteResponseHeadersTests(SynchronousTestCase):
    """
    L{write_response_headers} keeps what a client may see of the answer to
    a write.
    """

    def test_write_response_headers(self) -> None:
        """
        The answer to a write keeps its ETag, versions, checksums and
        encryption, and drops the length and type of its own body and
        everything about the backend.
        """
        kept = [
            ("etag", '"abc"'),
            ("x-amz-version-id", "v1"),
            ("x-amz-copy-source-version-id", "v0"),
            ("x-amz-delete-marker", "true"),
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amz-checksum-type", "FULL_OBJECT"),
            ("x-amz-server-side-encryption", "aws:kms"),
            ("x-amz-server-side-encryption-bucket-key-enabled", "true"),
            ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            ("x-amz-server-side-encryption-customer-key-md5", "abc=="),
        ]
        dropped = [
            *DROPPED_HEADERS,
            ("content-length", "0"),
            ("content-type", "application/xml"),
            ("last-modified", "Tue, 14 Nov 2023 00:00:00 GMT"),
            ("x-amz-server-side-encryption-aws-kms-key-id", "arn:aws:kms:...:key/1"),
        ]
        headers = HeaderList([*dropped[:3], *kept, *dropped[3:]])
        self.assertEqual(write_response_headers(headers), HeaderList(kept))


class AllowListTests(SynchronousTestCase):
    """
    L{AllowList}, L{allowed_headers} and the other choosers of headers.
    """

    def test_allows(self) -> None:
        """
        A name goes through if it is listed or starts with a listed prefix.
        """
        allowed = AllowList(frozenset({"etag"}), ("x-amz-meta-",))
        self.assertTrue(allowed.allows("etag"))
        self.assertTrue(allowed.allows("x-amz-meta-a"))
        self.assertFalse(allowed.allows("etag-x"))
        self.assertFalse(AllowList(frozenset()).allows("etag"))
        self.assertEqual(
            allowed.kept(HeaderList([("server", "s"), ("etag", "e")])),
            HeaderList([("etag", "e")]),
        )

    def test_without_aws_chunked(self) -> None:
        """
        ``aws-chunked`` is taken out whatever its case, with empty codings.
        """
        for value, expected in (
            ("aws-chunked", ""),
            ("AWS-Chunked , gzip", "gzip"),
            ("gzip,aws-chunked", "gzip"),
            ("gzip, br", "gzip, br"),
            ("gzip,,br", "gzip, br"),
            (" , ", ""),
        ):
            self.assertEqual(without_aws_chunked(value), expected, value)

    def test_allowed_headers(self) -> None:
        """
        The allowed headers go on in order, ``content-encoding`` without
        ``aws-chunked``, and not at all if nothing is left of it.
        """
        headers = HeaderList(
            [
                ("authorization", "x"),
                ("content-encoding", "aws-chunked,gzip"),
                ("x-amz-meta-a", "1"),
                ("content-type", "a/b"),
            ]
        )
        self.assertEqual(
            allowed_headers(headers, OBJECT_WRITE),
            HeaderList(
                [
                    ("content-encoding", "gzip"),
                    ("x-amz-meta-a", "1"),
                    ("content-type", "a/b"),
                ]
            ),
        )
        framing = HeaderList([("content-encoding", "aws-chunked")])
        self.assertEqual(len(allowed_headers(framing, OBJECT_WRITE)), 0)

    def test_object_write(self) -> None:
        """
        A write keeps its object's headers, digests and conditions.
        """
        for name in (
            *sorted(OBJECT_REQUEST_HEADERS),
            "content-md5",
            "if-match",
            "if-none-match",
            "x-amz-sdk-checksum-algorithm",
            "x-amz-checksum-crc32",
            "x-amz-meta-a",
            "x-amz-server-side-encryption",
            "x-amz-object-lock-mode",
        ):
            self.assertTrue(OBJECT_WRITE.allows(name), name)
        for name in ("authorization", "x-amz-acl", "content-length", "host"):
            self.assertFalse(OBJECT_WRITE.allows(name), name)

    def test_content_header(self) -> None:
        """
        A content header's first value, ``aws-chunked`` taken out of the
        coding; nothing if absent or if nothing is left.
        """
        headers = HeaderList(
            [
                ("content-type", "a/b"),
                ("content-type", "c/d"),
                ("content-encoding", "aws-chunked"),
                ("content-language", ""),
            ]
        )
        self.assertEqual(content_header(headers, "content-type"), "a/b")
        self.assertIsNone(content_header(headers, "content-encoding"))
        self.assertEqual(content_header(headers, "content-language"), "")
        self.assertIsNone(content_header(headers, "cache-control"))
        self.assertEqual(
            content_header(
                HeaderList([("content-encoding", "gzip, aws-chunked")]),
                "content-encoding",
            ),
            "gzip",
        )
        self.assertLessEqual(CONTENT_HEADERS, OBJECT_REQUEST_HEADERS)

    def test_conditions(self) -> None:
        """
        A write's conditions are its ``If-Match`` and ``If-None-Match``.
        """
        headers = HeaderList(
            [("if-match", '"a"'), ("if-modified-since", "x"), ("if-none-match", "*")]
        )
        self.assertEqual(
            conditions(headers),
            HeaderList([("if-match", '"a"'), ("if-none-match", "*")]),
        )

    def test_streamed_copy(self) -> None:
        """
        A streamed copy takes the source's object headers and metadata, but
        not its tags, nor anything about the source's backend.
        """
        source = HeaderList(
            [
                ("content-type", "a/b"),
                ("x-amz-tagging", "a=1"),
                ("x-amz-meta-a", "1"),
                ("etag", '"e"'),
                ("x-amz-storage-class", "GLACIER"),
            ]
        )
        self.assertEqual(
            STREAMED_COPY.kept(source),
            HeaderList(
                [
                    ("content-type", "a/b"),
                    ("x-amz-meta-a", "1"),
                    ("x-amz-storage-class", "GLACIER"),
                ]
            ),
        )


# --- backends --------------------------------------------------------------------


@implementer(IBodyProducer)
class _Nothing:
    """
    A body that must not be read.
    """

    length = 0

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        raise AssertionError("read")

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class RecordedBody(BytesBody):
    """
    A response body that records how it was used.
    """

    def __init__(self, data: bytes, length: int | None = None) -> None:
        super().__init__(data)
        self.uses: list[str] = []
        self._claimed = len(data) if length is None else length

    @property
    def length(self) -> int:
        return self._claimed

    def deliver(self, consumer: IConsumer) -> Deferred[int]:
        self.uses.append("deliver")
        return super().deliver(consumer)

    def discard(self) -> None:
        self.uses.append("discard")
        super().discard()


class BackendTests(SynchronousTestCase):
    """
    L{now}, L{service_root} and L{error_body}.
    """

    def test_now(self) -> None:
        """
        The clock's time, in UTC.
        """
        clock = Clock()
        clock.advance(1_700_000_000)
        self.assertEqual(now(clock).isoformat(), "2023-11-14T22:13:20+00:00")

    def test_service_root(self) -> None:
        """
        Scheme and host are compared without case, a trailing ``/`` ignored;
        the path is kept as it is.
        """
        self.assertEqual(
            service_root(" HTTP://Host.Test:9000/Acct/ "), "http://host.test:9000/Acct"
        )

    def test_error_body(self) -> None:
        """
        An error document is read; a HEAD's, an empty one and an oversized
        one are discarded unread, as nothing.
        """
        body = RecordedBody(b"<Error/>")
        read = error_body(BackendResponse(404, HeaderList(), body))
        self.assertEqual(
            self.successResultOf(Deferred.fromCoroutine(read)), b"<Error/>"
        )
        self.assertEqual(body.uses, ["deliver"])
        for head, answer in (
            (True, RecordedBody(b"x")),
            (False, RecordedBody(b"")),
            (False, RecordedBody(b"x", MAX_ERROR_DOCUMENT + 1)),
        ):
            read = error_body(BackendResponse(404, HeaderList(), answer), head)
            self.assertEqual(self.successResultOf(Deferred.fromCoroutine(read)), b"")
            self.assertIn("discard", answer.uses)


class DeferredTests(SynchronousTestCase):
    """
    L{deferred} makes a coroutine a method that returns a Deferred.
    """

    def test_result(self) -> None:
        """
        The Deferred fires with the coroutine's result, or fails with its
        error; the method keeps its name and docstring.
        """

        class Store:
            @deferred
            async def get(self, value: str) -> str:
                """
                Get it.
                """
                if not value:
                    raise S3Error("NoSuchKey")
                return value * 2

        store = Store()
        self.assertEqual(self.successResultOf(store.get("a")), "aa")
        error = self.failureResultOf(store.get(""), S3Error).value
        self.assertEqual(error.code, "NoSuchKey")
        self.assertEqual(Store.get.__name__, "get")
        self.assertIn("Get it.", Store.get.__doc__ or "")

    def test_cancel(self) -> None:
        """
        Cancelling the Deferred cancels what the coroutine waits on.
        """
        cancelled: list[str] = []
        waited: Deferred[str] = Deferred(lambda _: cancelled.append("waited"))

        @deferred
        async def wait() -> str:
            return await waited

        result = wait()
        self.assertNoResult(result)
        result.cancel()
        self.assertEqual(cancelled, ["waited"])
        self.failureResultOf(result, CancelledError)


class ConditionTests(SynchronousTestCase):
    """
    L{check_read} and L{on_same_service}.
    """

    modified = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    now = datetime(2024, 2, 1, tzinfo=UTC)

    def test_check_read(self) -> None:
        """
        A read's conditions are evaluated as S3 does: a failed ``If-Match``
        is ``PreconditionFailed``, a matching ``If-None-Match`` is not
        modified, for a GET and a HEAD alike.
        """
        check_read(ObjectRead("k", if_match='"e"'), '"e"', self.modified, self.now)
        error = self.assertRaises(
            S3Error,
            check_read,
            ObjectRead("k", if_match='"x"'),
            '"e"',
            self.modified,
            self.now,
        )
        self.assertEqual(error.code, "PreconditionFailed")
        for head in (False, True):
            read = ObjectRead("k", if_none_match='"e"', head=head)
            self.assertRaises(
                NotModified, check_read, read, '"e"', self.modified, self.now
            )
        since = ObjectRead("k", if_modified_since="Tue, 02 Jan 2024 03:04:05 GMT")
        self.assertRaises(
            NotModified, check_read, since, '"e"', self.modified, self.now
        )

    def test_on_same_service(self) -> None:
        """
        A source is the store's to copy if both buckets are on the same
        service with the same credentials and the source names its bucket.
        """

        def service(bucket: BucketConfig) -> object | None:
            if bucket.backend_type != "s3":
                return None
            return bucket.option("endpoint"), bucket.option("key")

        def bucket(kind: str = "s3", **options: str) -> BucketConfig:
            settings = {"endpoint": "e", "key": "k", "bucket_name": "b", **options}
            return BucketConfig(name="n", backend_type=kind, backend_options=settings)

        mine = bucket()
        self.assertTrue(on_same_service(service, mine, bucket(), "bucket_name"))
        for source in (
            bucket(endpoint="other"),
            bucket(key="other"),
            bucket(bucket_name=""),
            bucket("gcs"),
        ):
            self.assertFalse(on_same_service(service, mine, source, "bucket_name"))
        self.assertFalse(
            on_same_service(service, bucket("gcs"), bucket("gcs"), "bucket_name")
        )


# --- bodies ------------------------------------------------------------------------


class EmptyBodyTests(SynchronousTestCase):
    """
    L{read_empty} and L{held}.
    """

    def test_read_empty(self) -> None:
        """
        An empty body is read to its end; one that was not empty after all
        is ``IncompleteBody``; a body's own failure is its failure.
        """
        self.successResultOf(Deferred.fromCoroutine(read_empty(MemoryBody())))
        error = self.failureResultOf(
            Deferred.fromCoroutine(read_empty(MemoryBody(b"x", length=0))), S3Error
        ).value
        self.assertEqual(error.code, "IncompleteBody")
        failing = MemoryBody(fail=True)
        self.assertIs(
            self.failureResultOf(
                Deferred.fromCoroutine(read_empty(failing)), BodyFailed
            ).value,
            failing.error,
        )

    def test_held(self) -> None:
        """
        An empty body is read first and nothing is sent; any other is sent
        with its last byte held.
        """
        empty = MemoryBody()
        self.assertIsNone(self.successResultOf(Deferred.fromCoroutine(held(empty))))
        self.assertTrue(empty.started)
        body = MemoryBody(b"abc")
        sent = self.successResultOf(Deferred.fromCoroutine(held(body)))
        self.assertIsInstance(sent, LastByteHeld)
        self.assertFalse(body.started)

    def test_chunks(self) -> None:
        """
        Chunks held in memory are written in one go, in order.
        """
        chunks = Chunks([b"ab", b"", b"c"])
        verifyObject(IBodyProducer, chunks)
        self.assertEqual(chunks.length, 3)
        sink = LengthEnforcing(3)
        self.successResultOf(chunks.startProducing(sink))
        self.assertEqual(sink.value(), b"abc")
        chunks.pauseProducing()
        chunks.resumeProducing()
        chunks.stopProducing()


class ShieldedTests(SynchronousTestCase):
    """
    L{shielded} and L{finish_quietly}: work that outlives its caller.
    """

    def test_result(self) -> None:
        """
        The shield fires with the work's result, or its failure.
        """
        work: Deferred[str] = Deferred()
        shield = shielded(work)
        work.callback("done")
        self.assertEqual(self.successResultOf(shield), "done")
        failing: Deferred[str] = Deferred()
        shield = shielded(failing)
        failing.errback(BodyFailed())
        self.failureResultOf(shield, BodyFailed)

    def test_cancel(self) -> None:
        """
        Cancelling the shield leaves the work running, and the work keeps
        its result for whoever waits on it next.
        """
        cancelled: list[str] = []
        work: Deferred[str] = Deferred(lambda _: cancelled.append("work"))
        shield = shielded(work)
        shield.cancel()
        self.failureResultOf(shield, CancelledError)
        self.assertEqual(cancelled, [])
        work.callback("id")
        self.assertEqual(self.successResultOf(work), "id")

    def test_finish_quietly(self) -> None:
        """
        A failure of the work is logged, not raised; a caller cancelled
        while it waits stops waiting, and the work goes on.
        """
        events: list[dict[str, object]] = []
        log = Logger(observer=cast(ILogObserver, events.append))
        work: Deferred[None] = Deferred()
        waiting = Deferred.fromCoroutine(
            finish_quietly(work, log, "could not {what}", what="abort")
        )
        waiting.cancel()
        self.successResultOf(waiting)
        self.assertFalse(work.called)
        work.errback(BodyFailed())
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["log_level"], LogLevel.critical)
        self.assertIn("could not abort", eventAsText(events[0]))
        self.assertEqual(self.flushLoggedErrors(BodyFailed), [])
        self.successResultOf(work)
        quiet = Deferred.fromCoroutine(finish_quietly(succeed(None), log, "x"))
        self.successResultOf(quiet)
        failed = Deferred.fromCoroutine(finish_quietly(fail(BodyFailed()), log, "x"))
        self.successResultOf(failed)
        self.assertEqual(len(events), 2)


# --- copies --------------------------------------------------------------------


class OneObject:
    """
    The read side of a store holding one object, recording its reads.
    """

    def __init__(self, answer: ObjectResponse) -> None:
        self.answer = answer
        self.reads: list[ObjectRead] = []

    def get_object(self, read: ObjectRead) -> Deferred[ObjectResponse]:
        self.reads.append(read)
        return succeed(self.answer)


class CopyTests(SynchronousTestCase):
    """
    L{cannot_copy}, L{source_read} and L{open_source}.
    """

    source = CopySource(
        bucket=BucketConfig(name="b", backend_type="s3"),
        key="k",
        version_id="v",
        conditions=HeaderList(
            [
                ("x-amz-copy-source-if-match", '"a"'),
                ("x-amz-copy-source-if-none-match", '"b"'),
                ("x-amz-copy-source-if-modified-since", "m"),
                ("x-amz-copy-source-if-unmodified-since", "u"),
            ]
        ),
        range="bytes=0-1",
    )

    def test_cannot_copy(self) -> None:
        """
        A copy asked of a store that said it cannot is ``NotImplemented``.
        """
        self.assertEqual(
            (cannot_copy().code, cannot_copy().status), ("NotImplemented", 501)
        )

    def test_source_read(self) -> None:
        """
        A copy's source is read with its range, version and conditions.
        """
        self.assertEqual(
            source_read(self.source),
            ObjectRead(
                key="k",
                range="bytes=0-1",
                if_match='"a"',
                if_none_match='"b"',
                if_modified_since="m",
                if_unmodified_since="u",
                version_id="v",
            ),
        )

    def test_open_source(self) -> None:
        """
        The source's body becomes a request body, with the object's
        headers.
        """
        body = RecordedBody(b"abc")
        store = OneObject(ObjectResponse(200, HeaderList([("etag", '"e"')]), body))
        opened, headers = self.successResultOf(
            Deferred.fromCoroutine(open_source(store, self.source))  # type: ignore[arg-type]
        )
        self.assertEqual(store.reads, [source_read(self.source)])
        self.assertEqual(headers, HeaderList([("etag", '"e"')]))
        self.assertEqual(opened.length, 3)
        sink = LengthEnforcing(3)
        self.successResultOf(opened.startProducing(sink))
        self.assertEqual(sink.value(), b"abc")

    def test_not_modified(self) -> None:
        """
        A source that is not modified fails the copy's precondition, and
        any body it came with is released.
        """
        for body in (None, RecordedBody(b"")):
            store = OneObject(ObjectResponse(304, HeaderList(), body))
            error = self.failureResultOf(
                Deferred.fromCoroutine(open_source(store, self.source)),  # type: ignore[arg-type]
                S3Error,
            ).value
            self.assertEqual(error.code, "PreconditionFailed")
            self.assertIn(("Condition", "x-amz-copy-source-If-None-Match"), error.extra)
            if body is not None:
                self.assertEqual(body.uses, ["discard"])


# --- deletes -------------------------------------------------------------------


class DeleteTests(SynchronousTestCase):
    """
    L{deleted} and L{delete_each}.
    """

    def test_deleted(self) -> None:
        """
        A delete's outcome carries the version and delete marker its answer
        names, or the version asked for; a failed one its error.
        """
        answer = ObjectResponse(
            204,
            HeaderList([("x-amz-version-id", "v2"), ("x-amz-delete-marker", "true")]),
        )
        self.assertEqual(
            self.successResultOf(
                Deferred.fromCoroutine(deleted("k", "v", succeed(answer)))
            ),
            DeleteOutcome("k", "v2", delete_marker=True),
        )
        plain = ObjectResponse(204, HeaderList())
        self.assertEqual(
            self.successResultOf(
                Deferred.fromCoroutine(deleted("k", "v", succeed(plain)))
            ),
            DeleteOutcome("k", "v"),
        )
        refused: Deferred[ObjectResponse] = fail(S3Error("AccessDenied"))
        outcome = self.successResultOf(
            Deferred.fromCoroutine(deleted("k", None, refused))
        )
        self.assertEqual(
            outcome.error, ("AccessDenied", S3Error("AccessDenied").message)
        )

    def test_delete_each(self) -> None:
        """
        Each key is deleted on its own, at most L{DELETE_CONCURRENCY} at a
        time; the outcomes come in order.
        """
        held: list[Deferred[ObjectResponse]] = []

        def delete(key: str, version_id: str | None) -> Deferred[ObjectResponse]:
            answer: Deferred[ObjectResponse] = Deferred()
            held.append(answer)
            return answer

        keys = [(f"k{n}", None) for n in range(DELETE_CONCURRENCY + 2)]
        outcomes = delete_each(keys, delete)
        self.assertEqual(len(held), DELETE_CONCURRENCY)
        while len(held) < len(keys) or not outcomes.called:
            for answer in held:
                if not answer.called:
                    answer.callback(ObjectResponse(204, HeaderList()))
        self.assertEqual(
            self.successResultOf(outcomes), [DeleteOutcome(k, None) for k, _ in keys]
        )
        self.assertEqual(self.successResultOf(delete_each([], delete)), [])


# --- the last byte of an upload ----------------------------------------------


class LastByteHeldTests(SynchronousTestCase):
    """
    L{LastByteHeld} keeps an upload's last byte back until its body has
    succeeded.
    """

    def test_interfaces(self) -> None:
        """
        It is a body producer, and a consumer for the body it wraps.
        """
        held = LastByteHeld(MemoryBody(b"x"))
        verifyObject(IBodyProducer, held)
        verifyObject(IConsumer, held)
        self.assertEqual(held.length, 1)

    def test_success(self) -> None:
        """
        Every byte passes, the last one only once the body has finished.
        """
        body = MemoryBody(chunks=[b"abc", b"def"], pending=True)
        sink = LengthEnforcing(6)
        done = LastByteHeld(body).startProducing(sink)
        self.assertEqual(sink.chunks, [b"abc", b"de"])
        self.assertNoResult(done)
        body.done.callback(None)
        self.assertIsNone(self.successResultOf(done))
        self.assertEqual(sink.value(), b"abcdef")

    @given(st.lists(st.binary(min_size=0, max_size=20), min_size=1, max_size=10))
    def test_any_chunks(self, chunks: list[bytes]) -> None:
        """
        However the body is cut into chunks, all but its last byte pass
        before it finishes, and all of it after.
        """
        data = b"".join(chunks)
        body = MemoryBody(chunks=chunks, pending=True)
        sink = LengthEnforcing(len(data))
        done = LastByteHeld(body).startProducing(sink)
        self.assertEqual(sink.value(), data[:-1])
        self.assertNotIn(b"", sink.chunks)
        body.done.callback(None)
        self.successResultOf(done)
        self.assertEqual(sink.value(), data)

    def test_failure(self) -> None:
        """
        A body that fails after its last byte fails with its own failure,
        and its last byte is never passed on.
        """
        body = MemoryBody(b"abcdef", fail=True)
        sink = LengthEnforcing(6)
        done = LastByteHeld(body).startProducing(sink)
        self.assertIs(self.failureResultOf(done, BodyFailed).value, body.error)
        self.assertEqual(sink.value(), b"abcde")

    def test_too_long(self) -> None:
        """
        A body longer than its length does not get its extra bytes (nor its
        last byte) through, and fails with ``IncompleteBody``.
        """
        body = MemoryBody(chunks=[b"abc", b"def", b"g"], length=6)
        sink = LengthEnforcing(6)
        done = LastByteHeld(body).startProducing(sink)
        error = self.failureResultOf(done, S3Error).value
        self.assertEqual(error.code, "IncompleteBody")
        self.assertEqual(sink.value(), b"abcde")
        crossing = MemoryBody(chunks=[b"abc", b"defg"], length=6)
        sink = LengthEnforcing(6)
        self.failureResultOf(LastByteHeld(crossing).startProducing(sink), S3Error)
        self.assertEqual(sink.value(), b"abc")

    def test_too_short(self) -> None:
        """
        A body that finishes short of its length fails with
        ``IncompleteBody``.
        """
        sink = LengthEnforcing(6)
        done = LastByteHeld(MemoryBody(b"abc", length=6)).startProducing(sink)
        self.assertEqual(
            self.failureResultOf(done, S3Error).value.code, "IncompleteBody"
        )

    def test_producer_calls(self) -> None:
        """
        Pause, resume and stop reach the body; once stopped, the result
        never fires, whatever the body does.
        """
        body = MemoryBody(b"abc", pending=True)
        held = LastByteHeld(body)
        done = held.startProducing(LengthEnforcing(3))
        held.pauseProducing()
        held.resumeProducing()
        held.stopProducing()
        self.assertEqual(body.calls, ["pause", "resume", "stop"])
        body.done.callback(None)
        self.assertNoResult(done)

    def test_stopped_then_failed(self) -> None:
        """
        A body that fails after being stopped does not fire the result
        either, and its failure is not left unhandled.
        """
        body = MemoryBody(b"abc", pending=True)
        held = LastByteHeld(body)
        done = held.startProducing(LengthEnforcing(3))
        held.stopProducing()
        body.done.errback(BodyFailed())
        self.assertNoResult(done)

    def test_cancel(self) -> None:
        """
        Cancelling the result cancels the body's own Deferred.
        """
        body = MemoryBody(b"abc", pending=True)
        done = LastByteHeld(body).startProducing(LengthEnforcing(3))
        done.cancel()
        self.assertEqual(body.calls, ["cancel"])
        self.failureResultOf(done, CancelledError)


# --- bodies of unknown length ------------------------------------------------


class PartBufferTests(SynchronousTestCase):
    """
    L{PartBuffer} reads a body a part at a time, pausing it while a part is
    full.
    """

    def buffer(self, part_size: int = 4) -> tuple[SteppedBody, PartBuffer]:
        """
        A started buffer of parts of ``part_size`` bytes over a new body.
        """
        body = SteppedBody()
        buffer = PartBuffer(body, part_size)
        buffer.start()
        return body, buffer

    def test_interfaces(self) -> None:
        """
        It is a consumer for the body.
        """
        verifyObject(IConsumer, PartBuffer(SteppedBody(), 4))

    def test_pauses_when_full(self) -> None:
        """
        The body goes on until the buffer holds more than a part; it is
        then paused until a part is taken out and the buffer resumed.
        """
        body, buffer = self.buffer()
        filled = buffer.fill()
        body.send(b"ab", b"cd")
        self.assertNoResult(filled)
        self.assertEqual((body.calls, buffer.size), ([], 4))
        body.send(b"e", b"f")
        self.successResultOf(filled)
        self.assertEqual((body.calls, buffer.size, buffer.paused), (["pause"], 5, True))
        self.assertEqual(buffer.take(), [b"ab", b"cd"])
        self.assertEqual(body.calls, ["pause"])
        buffer.resume()
        self.assertEqual(body.calls, ["pause", "resume"])
        self.assertEqual(buffer.size, 2)
        self.assertFalse(buffer.holds_rest)
        body.finish()
        self.successResultOf(buffer.fill())
        self.assertTrue(buffer.holds_rest)
        self.assertEqual(buffer.take(), [b"e", b"f"])

    def test_take_splits_chunks(self) -> None:
        """
        A chunk across a part's end is split: the part is exactly a part.
        """
        body, buffer = self.buffer()
        body.send(b"abc", b"defgh")
        self.assertEqual(buffer.take(), [b"abc", b"d"])
        self.assertEqual(buffer.size, 4)
        body.finish()
        buffer.resume()
        self.assertTrue(buffer.holds_rest)
        self.assertEqual(buffer.take(), [b"efgh"])

    def test_writes_while_paused(self) -> None:
        """
        What the body writes after being paused is kept; it is resumed only
        once the buffer holds no more than a part.
        """
        body, buffer = self.buffer(2)
        body.send(b"abc")
        body.paused = False  # the body ignores the pause
        body.send(b"def", b"g")
        self.assertEqual(buffer.size, 7)
        self.assertEqual(buffer.take(), [b"ab"])
        buffer.resume()
        self.assertEqual(buffer.take(), [b"c", b"d"])
        buffer.resume()
        self.assertEqual(body.calls, ["pause"])
        self.assertEqual(buffer.take(), [b"ef"])
        buffer.resume()
        self.assertEqual(body.calls, ["pause", "resume"])

    def test_failure(self) -> None:
        """
        A body that fails fails the fill with its own failure, cancels the
        request being watched, and is what L{PartBuffer.check} raises.
        """
        body, buffer = self.buffer()
        buffer.check()
        answered: Deferred[None] = buffer.watch(Deferred())
        answered.callback(None)
        cancelled: list[str] = []
        request = buffer.watch(pending(cancelled))
        body.send(b"abc")
        filled = buffer.fill()
        body.fail()
        self.assertIs(self.failureResultOf(filled, BodyFailed).value, body.error)
        self.assertIs(self.failureResultOf(buffer.fill(), BodyFailed).value, body.error)
        self.assertEqual(cancelled, ["x"])
        self.failureResultOf(request, CancelledError)
        self.assertIs(self.assertRaises(BodyFailed, buffer.check), body.error)
        self.assertEqual(buffer.size, 0)
        buffer.stop()
        self.assertNotIn("stop", body.calls)

    def test_watch_ends(self) -> None:
        """
        A request answered before the body fails is not cancelled.
        """
        body, buffer = self.buffer()
        request: Deferred[object] = Deferred()
        buffer.watch(request)
        request.callback("answer")
        body.fail()
        self.assertEqual(self.successResultOf(request), "answer")

    def test_stop(self) -> None:
        """
        Stopping stops a body still producing, once, and drops what is
        held; what the body does after is ignored.
        """
        body, buffer = self.buffer()
        body.send(b"abc")
        buffer.stop()
        buffer.stop()
        self.assertEqual((body.calls, buffer.size), (["stop"], 0))
        body.fail()
        self.assertIsNone(buffer.failure)
        ended, buffer = self.buffer()
        ended.finish()
        buffer.stop()
        self.assertEqual(ended.calls, [])

    def test_fill_cancelled(self) -> None:
        """
        Cancelling a fill leaves the body alone; another fill can follow.
        """
        body, buffer = self.buffer()
        filled = buffer.fill()
        filled.cancel()
        self.failureResultOf(filled, CancelledError)
        self.assertEqual(body.calls, [])
        again = buffer.fill()
        body.send(b"abcde")
        self.successResultOf(again)

    def test_one_reader(self) -> None:
        """
        Only one fill waits at a time.
        """
        _, buffer = self.buffer()
        buffer.fill()
        self.assertRaises(RuntimeError, buffer.fill)
