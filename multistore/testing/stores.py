# -*- test-case-name: tests.unit.test_testing -*-
"""
The in-memory store and its factory, and every other double, until they
are carved into modules of their own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, Final, Literal, TypeVar, cast
from urllib.parse import parse_qsl

from attrs import define, field, frozen
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IConsumer,
    IProducer,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from multistore.auth.canonical import UNSIGNED_PAYLOAD
from multistore.auth.registry import StaticBucketRegistry, StaticCredentialRegistry
from multistore.auth.signing import sign_request
from multistore.bodies import BytesBody, DeliveryStopped, IBody
from multistore.config import BucketConfig, Config
from multistore.configfile import config_from_mapping
from multistore.gateway.pipeline import Gateway
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import (
    IBucketRegistry,
    ICredentialRegistry,
    IForwarder,
    IMiddleware,
    IObjectStore,
    IRouteHandler,
    IStoreFactory,
)
from multistore.model import (
    BackendRequest,
    BackendResponse,
    BucketEntry,
    CompletedPart,
    CopyResult,
    CopySource,
    DeleteOutcome,
    Identity,
    ListPage,
    ListRequest,
    ObjectInfo,
    ObjectRead,
    ObjectResponse,
    ObjectWrite,
    Operation,
    PartInfo,
    PartsPage,
    ResolvedBucket,
    UploadInfo,
    UploadsPage,
)
from multistore.s3.conditions import NotModified, evaluate
from multistore.s3.dates import format_http_date
from multistore.s3.errors import S3Error
from multistore.s3.ranges import ByteRange, parse_range
from multistore.stores.local import MIN_PART_SIZE, object_headers
from multistore.stores.streaming import CHECKSUM_VALUES, cannot_copy
from multistore.tap import build_gateway
from multistore.web.site import MultistoreSite, make_site

_T = TypeVar("_T")

#: The time a L{SiteHarness} starts at, unless given a clock.
HARNESS_EPOCH: Final = datetime(2025, 1, 1, tzinfo=UTC)

#: The highest part number S3 accepts.
_MAX_PART_NUMBER: Final = 10_000

#: Headers that carry an object's checksums.
_CHECKSUMS: Final = CHECKSUM_VALUES | {"x-amz-checksum-type"}

_NOT_COPIED: Final = frozenset({"x-amz-storage-class", "x-amz-tagging"})

_SELF_COPY: Final = (
    "This copy request is illegal because it is trying to copy an object to "
    "itself without changing the object's metadata, storage class, website "
    "redirect location or encryption attributes."
)


# --- bodies ------------------------------------------------------------------


@implementer(IBodyProducer)
@define(eq=False)
class ControlledProducer:
    """
    A request body (an upload) that the test drives by hand: it writes what
    L{send} is given and ends when told to, and records how its consumer
    drove it.

    :ivar length: the length announced, or C{UNKNOWN_LENGTH}.
    :ivar consumer: the consumer, once started.
    :ivar paused: whether it is paused now.
    :ivar pauses: how often it was paused.
    :ivar resumes: how often it was resumed.
    :ivar stopped: whether it was stopped.
    :ivar cancelled: whether its Deferred was cancelled.
    :ivar sent: every byte written.
    """

    length: int | object = UNKNOWN_LENGTH
    consumer: IConsumer | None = None
    done: Deferred[None] | None = None
    paused: bool = False
    pauses: int = 0
    resumes: int = 0
    stopped: bool = False
    cancelled: bool = False
    sent: bytes = b""

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """
        Remember the consumer; nothing is written until L{send}.
        """
        if self.consumer is not None:
            raise RuntimeError("a request body can be read only once")
        self.consumer = consumer
        self.done = Deferred(self._cancel)
        return self.done

    def _cancel(self, _: Deferred[None]) -> None:
        self.cancelled = True

    def pauseProducing(self) -> None:
        """
        Note the pause.
        """
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        """
        Note the resumption.
        """
        self.paused = False
        self.resumes += 1

    def stopProducing(self) -> None:
        """
        Note the stop; nothing more is written.
        """
        self.stopped = True

    @property
    def over(self) -> bool:
        """
        Whether the body may write no more: stopped, or its Deferred fired.
        """
        return self.stopped or (self.done is not None and self.done.called)

    def send(self, *pieces: bytes) -> None:
        """
        Write ``pieces`` (as long as the body has not been stopped), paused
        or not: a test may check that a consumer copes with a producer that
        ignores a pause.
        """
        if self.consumer is None:
            raise RuntimeError("the body has not been started")
        for piece in pieces:
            if self.over:
                return
            self.sent += piece
            self.consumer.write(piece)

    def finish(self) -> None:
        """
        End the body.
        """
        if self.done is None:
            raise RuntimeError("the body has not been started")
        if not self.over:
            self.done.callback(None)

    def fail(self, reason: BaseException) -> None:
        """
        End the body with a failure (a client that went away, a signature
        that did not match).
        """
        if self.done is None:
            raise RuntimeError("the body has not been started")
        if not self.over:
            self.done.errback(reason)


@implementer(IBody, IPushProducer)
@define(eq=False)
class ControlledBody:
    """
    An outgoing body (a store's answer) that the test drives by hand: it
    registers with its consumer as L{IBody} requires, then writes what
    L{send} is given and ends when told to.

    :ivar length: the length announced, or ``None``.
    :ivar consumer: the consumer, once delivery started.
    :ivar discarded: whether it was discarded.
    :ivar cancelled: whether its delivery was cancelled.
    :ivar stopped: whether its consumer stopped it.
    :ivar paused: whether it is paused now.
    :ivar pauses: how often it was paused.
    """

    length: int | None = None
    consumer: IConsumer | None = None
    done: Deferred[int] | None = None
    discarded: bool = False
    cancelled: bool = False
    stopped: bool = False
    paused: bool = False
    pauses: int = 0
    _written: int = 0

    def deliver(self, consumer: IConsumer) -> Deferred[int]:
        """
        Register with ``consumer`` and wait for the test.
        """
        if self.done is not None or self.discarded:
            raise RuntimeError("a body can be delivered or discarded only once")
        self.consumer = consumer
        self.done = Deferred(self._cancel)
        consumer.registerProducer(self, True)
        return self.done

    def _cancel(self, _: Deferred[int]) -> None:
        self.cancelled = True

    def discard(self) -> None:
        """
        Note that the body was released unread.
        """
        if self.done is not None or self.discarded:
            raise RuntimeError("a body can be delivered or discarded only once")
        self.discarded = True

    def pauseProducing(self) -> None:
        """
        Note the pause.
        """
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        """
        Note the resumption.
        """
        self.paused = False

    def stopProducing(self) -> None:
        """
        The consumer wants no more: the delivery fails with
        L{DeliveryStopped}.
        """
        self.stopped = True
        if self.done is not None and not self.done.called:
            self.done.errback(DeliveryStopped())

    def send(self, data: bytes) -> None:
        """
        Write ``data`` to the consumer.
        """
        if self.consumer is None:
            raise RuntimeError("the body is not being delivered")
        self._written += len(data)
        self.consumer.write(data)

    def finish(self) -> None:
        """
        End the delivery successfully (unregistering from the consumer).
        """
        if self.consumer is None or self.done is None:
            raise RuntimeError("the body is not being delivered")
        self.consumer.unregisterProducer()
        self.done.callback(self._written)

    def fail(self, reason: BaseException) -> None:
        """
        End the delivery with a failure (the backend went away).
        """
        if self.consumer is None or self.done is None:
            raise RuntimeError("the body is not being delivered")
        self.consumer.unregisterProducer()
        self.done.errback(reason)


class RecordingBody(BytesBody):
    """
    A body held in memory (a L{BytesBody}) that records how it was released
    and may announce another length than its own.

    :ivar uses: ``"deliver"`` and ``"discard"``, once per call, in order.
    """

    def __init__(
        self,
        data: bytes = b"",
        length: int | Literal["actual"] | None = "actual",
        chunk_size: int = 64 * 1024,
    ) -> None:
        """
        :param length: the length to announce: the data's own by default,
            ``None`` for a body of unknown length (a chunked response).
        """
        super().__init__(data, chunk_size)
        self.uses: list[str] = []
        self._announced = length

    @property
    def length(self) -> int | None:  # type: ignore[override]
        """
        The announced length.
        """
        if self._announced == "actual":
            return super().length
        return self._announced

    def deliver(self, consumer: IConsumer) -> Deferred[int]:
        """
        Record the delivery, then deliver.
        """
        self.uses.append("deliver")
        return super().deliver(consumer)

    def discard(self) -> None:
        """
        Record the discard, then discard.
        """
        self.uses.append("discard")
        super().discard()


@implementer(IConsumer)
@define(eq=False)
class CollectingConsumer:
    """
    A consumer that keeps everything written to it, records its producer,
    and can pause that producer after a given number of writes, or act on
    each write.

    :ivar pause_after: pause the registered producer after this many
        writes.
    :ivar on_write: called with the consumer after each write (to stop or
        pause a request body, which does not register with its consumer).
    :ivar chunks: what was written, in order.
    :ivar received: the number of bytes written.
    :ivar producer: the registered producer, if any.
    :ivar streaming: whether it registered as a push producer.
    :ivar registrations: how often a producer registered.
    :ivar unregistrations: how often a producer unregistered.
    :ivar writes_without_producer: writes made while no producer was
        registered.
    """

    pause_after: int | None = None
    on_write: Callable[[CollectingConsumer], object] | None = None
    chunks: list[bytes] = field(factory=list)
    received: int = 0
    producer: IProducer | None = None
    streaming: bool | None = None
    registrations: int = 0
    unregistrations: int = 0
    writes_without_producer: int = 0

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """
        Remember the producer.
        """
        self.registrations += 1
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self) -> None:
        """
        Forget the producer.
        """
        self.unregistrations += 1
        self.producer = None

    def write(self, data: bytes) -> None:
        """
        Keep ``data``; pause the producer after the chosen write.
        """
        if self.producer is None:
            self.writes_without_producer += 1
        self.chunks.append(data)
        self.received += len(data)
        if (
            self.pause_after is not None
            and len(self.chunks) == self.pause_after
            and self.producer is not None
        ):
            cast(IPushProducer, self.producer).pauseProducing()
        if self.on_write is not None:
            self.on_write(self)

    def value(self) -> bytes:
        """
        Everything written.
        """
        return b"".join(self.chunks)


def deliver_all(body: IBody) -> Deferred[bytes]:
    """
    Deliver ``body`` into memory.

    :return: a Deferred that fires with its bytes, or fails as the delivery
        does.
    """
    consumer = CollectingConsumer()
    return body.deliver(consumer).addCallback(lambda _: consumer.value())


# --- the memory store ----------------------------------------------------------


@frozen
class StoreCall:
    """
    One call made to a L{MemoryStore}.

    :ivar name: the L{IObjectStore} method.
    :ivar args: its arguments.
    """

    name: str
    args: tuple[Any, ...]


@frozen
class _Object:
    data: bytes
    etag: str
    modified: datetime
    headers: tuple[tuple[str, str], ...] = ()
    parts: tuple[int, ...] = ()

    def get(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name), None)


@frozen
class _Part:
    data: bytes
    etag: str
    modified: datetime
    checksums: tuple[tuple[str, str], ...] = ()


@define
class _Upload:
    upload_id: str
    key: str
    headers: tuple[tuple[str, str], ...]
    initiated: datetime
    serial: int
    parts: dict[int, _Part] = field(factory=dict)


def _order(key: str) -> bytes:
    """
    S3's order of keys: UTF-8 byte order.
    """
    return key.encode("utf-8", "surrogatepass")


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _opaque(etag: str) -> str:
    etag = etag.strip()
    if len(etag) >= 2 and etag[0] == '"' and etag[-1] == '"':
        return etag[1:-1]
    return etag


def _expected_md5(headers: HeaderList) -> str | None:
    """
    :return: the hex MD5 ``Content-MD5`` announces, if sent.
    :raise S3Error: ``InvalidDigest`` if it is not a base64 MD5.
    """
    value = headers.get("content-md5")
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidDigest") from None
    if len(digest) != 16:
        raise S3Error("InvalidDigest")
    return digest.hex()


def _check_version(version_id: str | None) -> None:
    if version_id is not None and version_id != "null":
        raise S3Error("NoSuchVersion", extra=(("VersionId", version_id),))


def _check_part_number(number: int) -> None:
    if not 1 <= number <= _MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive.",
            extra=(("ArgumentName", "partNumber"), ("ArgumentValue", str(number))),
        )


def _directive(headers: HeaderList, name: str) -> str:
    value = (headers.get(name) or "COPY").strip().upper()
    if value not in {"COPY", "REPLACE"}:
        raise S3Error(
            "InvalidArgument",
            f"Unknown {name} value: {value!r}.",
            extra=(("ArgumentName", name), ("ArgumentValue", value)),
        )
    return value


def _copy_range(value: str | None, size: int) -> tuple[int, int]:
    """
    :return: the first byte and the length ``x-amz-copy-source-range``
        selects (the whole object when not given).
    """
    if value is None:
        return 0, size
    first_text, dash, last_text = value.strip().removeprefix("bytes=").partition("-")
    if (
        not value.strip().startswith("bytes=")
        or not dash
        or not first_text.isdigit()
        or not last_text.isdigit()
    ):
        raise S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last",
            extra=(("ArgumentName", "x-amz-copy-source-range"),),
        )
    first, last = int(first_text), int(last_text)
    if first > last or last >= size:
        raise S3Error(
            "InvalidRange",
            f"The requested range is not satisfiable for a source object of size {size}.",
            headers=(("Content-Range", f"bytes */{size}"),),
        )
    return first, last - first + 1


def _tag_count(value: str | None) -> int:
    return len(parse_qsl(value, keep_blank_values=True)) if value else 0


def _shown_headers(found: _Object, whole: bool) -> list[tuple[str, str]]:
    """
    The stored headers a read answers with, besides ``Content-Type``: tags
    as a count, a ``STANDARD`` storage class not at all, checksums only for
    the whole object.
    """
    shown = [
        (name, value)
        for name, value in found.headers
        if name not in {"content-type", "x-amz-tagging"}
        and (name != "x-amz-storage-class" or value != "STANDARD")
        and (whole or name not in _CHECKSUMS)
    ]
    tags = _tag_count(found.get("x-amz-tagging"))
    if tags:
        shown.append(("x-amz-tagging-count", str(tags)))
    return shown


def _no_such_upload(upload_id: str) -> S3Error:
    return S3Error("NoSuchUpload", extra=(("UploadId", upload_id),))


def backend_name(bucket: BucketConfig) -> str:
    """
    The backend bucket a bucket's configuration names: its ``bucket_name``,
    ``container_name`` or ``root`` option, else its own name. Buckets that
    name the same backend bucket share a L{MemoryStore} in a
    L{MemoryStoreFactory}.
    """
    for option in ("bucket_name", "container_name", "root"):
        value = bucket.option(option)
        if value:
            return value
    return bucket.name


@implementer(IConsumer)
class _Intake:
    """
    Reads one body into memory for a L{MemoryStore}, pausing its producer
    while the store holds writes back.
    """

    def __init__(self, store: MemoryStore, key: str, body: IBodyProducer) -> None:
        self.key = key
        self.received = 0
        self._store = store
        self._body = body
        self._chunks: list[bytes] = []
        self._producer: IPushProducer | None = None
        self._paused = False
        self._settled = False
        self._result: Deferred[bytes] = Deferred(self._cancel)

    def start(self) -> Deferred[bytes]:
        self._store._intakes.append(self)
        try:
            done = self._body.startProducing(self)
        except Exception:
            self._settle(Failure())
            return self._result
        done.addCallbacks(self._finished, self._failed)
        if self._store.writes_held:
            self.pause()
        return self._result

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        if IPushProducer.providedBy(producer):
            self._producer = producer

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        if self._settled:
            return
        if self._paused:
            self._store.written_while_held += len(data)
        self._chunks.append(data)
        self.received += len(data)

    def _control(self) -> IPushProducer:
        return self._producer if self._producer is not None else self._body

    def pause(self) -> None:
        if not self._settled and not self._paused:
            self._paused = True
            self._control().pauseProducing()

    def resume(self) -> None:
        if not self._settled and self._paused:
            self._paused = False
            self._control().resumeProducing()

    def _finished(self, _: object) -> None:
        if self._settled:
            return
        length = self._body.length
        if isinstance(length, int) and length != self.received:
            self._settle(
                Failure(
                    S3Error(
                        "IncompleteBody",
                        f"The body announced {length} bytes and delivered {self.received}.",
                    )
                )
            )
            return
        self._settle(b"".join(self._chunks))

    def _failed(self, reason: Failure) -> None:
        if not self._settled:
            self._settle(reason)

    def _cancel(self, _: Deferred[bytes]) -> None:
        if self._settled:
            return
        self._forget()
        self._body.stopProducing()

    def _forget(self) -> None:
        self._settled = True
        self._chunks = []
        if self in self._store._intakes:
            self._store._intakes.remove(self)

    def _settle(self, outcome: bytes | Failure) -> None:
        self._forget()
        if isinstance(outcome, Failure):
            self._result.errback(outcome)
        else:
            self._result.callback(outcome)


@implementer(IObjectStore)
@define(eq=False)
class MemoryStore:
    """
    An L{IObjectStore} that keeps one bucket in memory, with the semantics
    of the directory store (L{multistore.stores.local}): ETags are the
    quoted hex MD5 of the bytes (``"<md5 of the parts' MD5s>-<count>"`` for
    a multipart object), times are whole seconds, keys are listed in UTF-8
    byte order, a write appears whole or not at all, and conditions,
    ranges and multipart checks fail with the same S3 errors.

    Unlike a directory, it holds any key (``a`` and ``a/b`` together, keys
    with empty segments, ``dir/`` with bytes in it), and copies server-side
    only from itself or from stores of the same L{MemoryStoreFactory}.

    Bodies stream in: a write reads its body as it comes, as the
    store's consumer, and commits once it has ended; L{hold_writes} pauses
    every body being read (and those started later) until
    L{release_writes}, as a slow store would.

    For tests, every call is recorded in L{calls}, and L{script} makes the
    next calls of a method answer as a test says instead.

    :ivar name: the backend bucket's name (see L{backend_name}).
    :ivar exists: whether the bucket exists (``create_bucket`` and
        ``delete_bucket`` change it).
    :ivar calls: every call made, in order.
    :ivar writes_held: whether writes are held back (see L{hold_writes}).
    :ivar written_while_held: bytes that producers wrote after being asked
        to pause: a producer that honours backpressure writes none, or
        little.
    """

    _clock: IReactorTime | None = None
    name: str = "memory"
    exists: bool = True
    _min_part_size: int = MIN_PART_SIZE
    _factory: MemoryStoreFactory | None = None
    calls: list[StoreCall] = field(factory=list)
    writes_held: bool = False
    written_while_held: int = 0
    _objects: dict[str, _Object] = field(factory=dict)
    _uploads: dict[str, _Upload] = field(factory=dict)
    _serial: int = 0
    _scripts: dict[str, list[object]] = field(factory=dict)
    _intakes: list[_Intake] = field(factory=list)

    # --- for tests ----------------------------------------------------------

    def add(
        self,
        key: str,
        data: bytes,
        headers: Iterable[tuple[str, str]] = (),
        modified: datetime | None = None,
    ) -> str:
        """
        Store an object at once, as a PUT would.

        :param headers: the object's headers, as a PUT carries them.
        :param modified: its time, else now.
        :return: its ETag.
        """
        etag = f'"{_md5(data)}"'
        self._objects[key] = _Object(
            data=data,
            etag=etag,
            modified=(modified or self._now()).replace(microsecond=0),
            headers=object_headers(HeaderList(headers)),
        )
        return etag

    def data_of(self, key: str) -> bytes | None:
        """
        :return: the bytes of the object at ``key``, or ``None``.
        """
        found = self._objects.get(key)
        return None if found is None else found.data

    def headers_of(self, key: str) -> HeaderList | None:
        """
        :return: the headers the object at ``key`` keeps, or ``None``.
        """
        found = self._objects.get(key)
        return None if found is None else HeaderList(found.headers)

    def keys(self) -> list[str]:
        """
        :return: the keys of every object, in S3 order.
        """
        return sorted(self._objects, key=_order)

    def upload_ids(self) -> list[str]:
        """
        :return: the ids of the multipart uploads in progress.
        """
        return list(self._uploads)

    def calls_to(self, name: str) -> list[tuple[Any, ...]]:
        """
        :return: the arguments of every call of the method ``name``, in
            order.
        """
        return [call.args for call in self.calls if call.name == name]

    def script(self, name: str, *outcomes: object) -> None:
        """
        Make the next calls of the method ``name`` answer with
        ``outcomes``, one per call, instead of the store's contents: an
        exception fails the call, a Deferred is returned as it is (a call
        left pending), anything else is the call's result. The calls are
        recorded all the same; a write's body is not read.
        """
        self._scripts.setdefault(name, []).extend(outcomes)

    def hold_writes(self) -> None:
        """
        Pause every body being written, and those started later, as a
        store that cannot keep up does.
        """
        self.writes_held = True
        for intake in list(self._intakes):
            intake.pause()

    def release_writes(self) -> None:
        """
        Resume the bodies paused by L{hold_writes}.
        """
        self.writes_held = False
        for intake in list(self._intakes):
            intake.resume()

    def in_progress(self) -> list[tuple[str, int]]:
        """
        :return: the key and the bytes received so far of each write whose
            body is still arriving.
        """
        return [(intake.key, intake.received) for intake in self._intakes]

    # --- plumbing -----------------------------------------------------------

    def _now(self) -> datetime:
        seconds = self._clock.seconds() if self._clock is not None else time.time()
        return datetime.fromtimestamp(int(seconds), UTC)

    def _call(
        self, name: str, args: tuple[Any, ...], run: Callable[[], Deferred[_T]]
    ) -> Deferred[_T]:
        self.calls.append(StoreCall(name, args))
        scripted = self._scripts.get(name)
        if scripted:
            outcome = scripted.pop(0)
            if isinstance(outcome, BaseException):
                return fail(outcome)
            if isinstance(outcome, Deferred):
                return cast(Deferred[_T], outcome)
            return succeed(cast(_T, outcome))
        try:
            return run()
        except Exception:
            return fail()

    def _sync(self, f: Callable[[], _T]) -> Callable[[], Deferred[_T]]:
        return lambda: succeed(f())

    def _require_bucket(self) -> None:
        if not self.exists:
            raise S3Error("NoSuchBucket")

    def _receive(self, key: str, body: IBodyProducer) -> Deferred[bytes]:
        return _Intake(self, key, body).start()

    def _commit(
        self, key: str, new: _Object, if_match: str | None, if_none_match: str | None
    ) -> None:
        """
        Put ``new`` in place if the write's conditions hold against the
        object it replaces.
        """
        self._require_bucket()
        if_match = if_match if if_match and if_match.strip() else None
        if_none_match = (
            if_none_match if if_none_match and if_none_match.strip() else None
        )
        current = self._objects.get(key)
        if current is None:
            if if_match is not None:
                raise S3Error("NoSuchKey")
        else:
            evaluate(
                current.etag,
                current.modified,
                if_match=if_match,
                if_none_match=if_none_match,
                method="PUT",
            )
        self._objects[key] = new

    def _source_store(self, source: CopySource) -> MemoryStore:
        """
        :raise S3Error: ``NotImplemented`` if ``source`` is not a store this
            one copies from.
        """
        name = backend_name(source.bucket)
        if name == self.name:
            return self
        if self._factory is not None and name in self._factory.stores:
            return self._factory.stores[name]
        raise cannot_copy()

    def can_copy(self, source: CopySource) -> bool:
        """
        :return: whether this store copies from ``source`` itself: from its
            own bucket, or from a store of the same L{MemoryStoreFactory}
            (by the source bucket's L{backend_name}). It neither blocks nor
            fails.
        """
        name = backend_name(source.bucket)
        return name == self.name or (
            self._factory is not None and name in self._factory.stores
        )

    # --- reads --------------------------------------------------------------

    def get_object(self, read: ObjectRead) -> Deferred[ObjectResponse]:
        """
        Read an object (GET, or HEAD when C{read.head}).

        :return: a Deferred firing with a 200, 206 or 304 response; it fails
            with ``NoSuchKey``, ``NoSuchBucket``, ``NoSuchVersion`` for a
            version other than ``null``, ``InvalidRange``,
            ``InvalidPartNumber``, ``InvalidRequest`` (a range with a part
            number) or ``PreconditionFailed``.
        """
        return self._call("get_object", (read,), self._sync(lambda: self._get(read)))

    def _get(self, read: ObjectRead) -> ObjectResponse:
        self._require_bucket()
        _check_version(read.version_id)
        if read.part_number is not None:
            if read.range is not None:
                raise S3Error(
                    "InvalidRequest",
                    "Cannot specify both Range header and partNumber query parameter.",
                )
            _check_part_number(read.part_number)
        found = self._objects.get(read.key)
        if found is None:
            raise S3Error("NoSuchKey")
        last_modified = format_http_date(found.modified)
        try:
            evaluate(
                found.etag,
                found.modified,
                if_match=read.if_match,
                if_none_match=read.if_none_match,
                if_modified_since=read.if_modified_since,
                if_unmodified_since=read.if_unmodified_since,
                method="HEAD" if read.head else "GET",
                now=self._now(),
            )
        except NotModified:
            return ObjectResponse(
                304,
                HeaderList.of(("etag", found.etag), ("last-modified", last_modified)),
            )
        size = len(found.data)
        selected: ByteRange | None
        extra: list[tuple[str, str]] = []
        if read.part_number is not None and found.parts:
            if read.part_number > len(found.parts):
                raise S3Error("InvalidPartNumber")
            start = sum(found.parts[: read.part_number - 1])
            part_size = found.parts[read.part_number - 1]
            selected = (
                ByteRange(start, start + part_size - 1, size) if part_size else None
            )
            extra.append(("x-amz-mp-parts-count", str(len(found.parts))))
        elif read.part_number is not None:
            if read.part_number != 1:
                raise S3Error("InvalidPartNumber")
            selected = ByteRange(0, size - 1, size) if size else None
        else:
            selected = parse_range(read.range, size)
        whole = selected is None and read.part_number is None
        headers = [
            ("content-type", found.get("content-type") or "application/octet-stream"),
            ("etag", found.etag),
            ("last-modified", last_modified),
            ("accept-ranges", "bytes"),
            *_shown_headers(found, whole),
            *extra,
        ]
        if selected is not None:
            code, offset, length = 206, selected.start, selected.length
            headers.append(("content-range", selected.content_range))
        elif read.part_number is not None and found.parts:
            code, offset, length = 200, 0, 0
        else:
            code, offset, length = 200, 0, size
        headers.append(("content-length", str(length)))
        if read.head:
            return ObjectResponse(code, HeaderList(headers))
        body = BytesBody(found.data[offset : offset + length])
        return ObjectResponse(code, HeaderList(headers), body)

    def list_objects(self, request: ListRequest) -> Deferred[ListPage]:
        """
        List one page of keys in UTF-8 byte order, after ``start_after``;
        with a delimiter, keys roll up into common prefixes, and a common
        prefix that ``start_after`` lies in is not repeated. The page
        resumes by position (``next_token`` stays ``None``; a ``token`` is
        ignored).

        :return: a Deferred firing with the page; it fails with
            ``NoSuchBucket``.
        """
        return self._call(
            "list_objects", (request,), self._sync(lambda: self._list(request))
        )

    def _list(self, request: ListRequest) -> ListPage:
        self._require_bucket()
        if request.max_keys <= 0:
            return ListPage()
        prefix, delimiter = request.prefix, request.delimiter or None
        after = _order(request.start_after) if request.start_after else None
        items: list[ObjectInfo | str] = []
        for key in self.keys():
            if not key.startswith(prefix) or (
                after is not None and _order(key) <= after
            ):
                continue
            rolled = None
            if delimiter is not None:
                at = key.find(delimiter, len(prefix))
                if at != -1:
                    rolled = key[: at + len(delimiter)]
            if rolled is not None:
                if (items and items[-1] == rolled) or (
                    after is not None and after.startswith(_order(rolled))
                ):
                    continue
                items.append(rolled)
            else:
                found = self._objects[key]
                items.append(
                    ObjectInfo(
                        key=key,
                        size=len(found.data),
                        last_modified=found.modified,
                        etag=found.etag,
                        storage_class=found.get("x-amz-storage-class") or "STANDARD",
                    )
                )
            if len(items) > request.max_keys:
                break
        page = items[: request.max_keys]
        return ListPage(
            objects=tuple(i for i in page if isinstance(i, ObjectInfo)),
            common_prefixes=tuple(i for i in page if isinstance(i, str)),
            truncated=len(items) > request.max_keys,
        )

    def head_bucket(self) -> Deferred[None]:
        """
        :return: a Deferred that fires if the bucket exists, and fails with
            ``NoSuchBucket`` otherwise.
        """
        return self._call("head_bucket", (), self._sync(self._require_bucket))

    # --- writes -------------------------------------------------------------

    def put_object(self, write: ObjectWrite) -> Deferred[ObjectResponse]:
        """
        Write an object from its streamed body, once the body has ended.

        :return: a Deferred firing with a 200 response carrying the
            object's ``etag`` and the checksum headers sent. It fails with
            ``InvalidDigest`` or ``BadDigest`` for a ``Content-MD5`` that is
            malformed or does not match, ``IncompleteBody`` for a body
            shorter or longer than it announced, ``PreconditionFailed`` (or
            ``NoSuchKey`` for ``If-Match`` on a missing key),
            ``NoSuchBucket``, the errors of
            L{multistore.stores.local.object_headers}, or the body's own
            failure; then no object appears. Cancelling it stops the body.
        """
        return self._call(
            "put_object", (write,), lambda: Deferred.fromCoroutine(self._put(write))
        )

    async def _put(self, write: ObjectWrite) -> ObjectResponse:
        self._require_bucket()
        stored = object_headers(write.headers)
        expected = _expected_md5(write.headers)
        data = await self._receive(write.key, write.body)
        digest = _md5(data)
        if expected is not None and digest != expected:
            raise S3Error("BadDigest")
        etag = f'"{digest}"'
        self._commit(
            write.key,
            _Object(data=data, etag=etag, modified=self._now(), headers=stored),
            write.headers.get("if-match"),
            write.headers.get("if-none-match"),
        )
        checksums = [(n, v) for n, v in write.headers if n in _CHECKSUMS]
        return ObjectResponse(200, HeaderList([("etag", etag), *checksums]))

    def copy_object(
        self, source: CopySource, key: str, headers: HeaderList
    ) -> Deferred[CopyResult]:
        """
        Copy an object from this store or another of the same factory, as
        the directory store does: the source's headers
        (``x-amz-metadata-directive: COPY``) or the request's
        (``REPLACE``), tags by ``x-amz-tagging-directive``, the request's
        storage class; ``x-amz-copy-source-if-*`` checked against the
        source, ``If-Match``/``If-None-Match`` against the destination.

        :return: a Deferred firing with the new object's ETag and time. It
            fails with ``NotImplemented`` for a source on another service,
            ``NoSuchKey``, ``PreconditionFailed``, ``InvalidRequest`` for a
            copy of an object onto itself that changes nothing, and as
            L{put_object} does.
        """
        return self._call(
            "copy_object",
            (source, key, headers),
            self._sync(lambda: self._copy(source, key, headers)),
        )

    def _source_object(self, source: CopySource) -> tuple[MemoryStore, _Object]:
        origin = self._source_store(source)
        _check_version(source.version_id)
        origin._require_bucket()
        found = origin._objects.get(source.key)
        if found is None:
            raise S3Error("NoSuchKey")
        conditions = source.conditions
        try:
            evaluate(
                found.etag,
                found.modified,
                if_match=conditions.get("x-amz-copy-source-if-match"),
                if_none_match=conditions.get("x-amz-copy-source-if-none-match"),
                if_modified_since=conditions.get("x-amz-copy-source-if-modified-since"),
                if_unmodified_since=conditions.get(
                    "x-amz-copy-source-if-unmodified-since"
                ),
                method="GET",
                now=self._now(),
            )
        except NotModified:
            raise S3Error(
                "PreconditionFailed",
                extra=(("Condition", "x-amz-copy-source-If-None-Match"),),
            ) from None
        return origin, found

    def _copy(self, source: CopySource, key: str, headers: HeaderList) -> CopyResult:
        self._require_bucket()
        origin, found = self._source_object(source)
        directive = _directive(headers, "x-amz-metadata-directive")
        tagging = _directive(headers, "x-amz-tagging-directive")
        requested = object_headers(headers)
        changes = (
            directive == "REPLACE"
            or "x-amz-storage-class" in headers
            or "x-amz-website-redirect-location" in headers
        )
        if not changes and origin is self and source.key == key:
            raise S3Error("InvalidRequest", _SELF_COPY)
        if directive == "COPY":
            kept = [(n, v) for n, v in found.headers if n not in _NOT_COPIED]
            if not any(n == "content-type" for n, _ in kept):
                kept.insert(0, ("content-type", "application/octet-stream"))
        else:
            kept = [
                (n, v)
                for n, v in requested
                if n not in _CHECKSUMS and n not in _NOT_COPIED
            ]
            # The bytes are the same, so their checksums still hold.
            kept.extend((n, v) for n, v in found.headers if n in _CHECKSUMS)
        storage_class = headers.get("x-amz-storage-class")
        if storage_class is not None:
            kept.append(("x-amz-storage-class", storage_class))
        tags = (
            headers.get("x-amz-tagging")
            if tagging == "REPLACE"
            else found.get("x-amz-tagging")
        )
        if tags:
            kept.append(("x-amz-tagging", tags))
        new = _Object(
            data=found.data,
            etag=f'"{_md5(found.data)}"',
            modified=self._now(),
            headers=tuple(kept),
        )
        self._commit(key, new, headers.get("if-match"), headers.get("if-none-match"))
        return CopyResult(etag=new.etag, last_modified=new.modified)

    def delete_object(
        self, key: str, version_id: str | None
    ) -> Deferred[ObjectResponse]:
        """
        Delete an object; a key that does not exist is deleted already.

        :return: a Deferred firing with a 204 response; it fails with
            ``NoSuchVersion`` for a version other than ``null`` and
            ``NoSuchBucket``.
        """
        return self._call(
            "delete_object",
            (key, version_id),
            self._sync(lambda: self._delete(key, version_id)),
        )

    def _delete(self, key: str, version_id: str | None) -> ObjectResponse:
        self._require_bucket()
        _check_version(version_id)
        self._objects.pop(key, None)
        return ObjectResponse(204, NO_HEADERS)

    def delete_objects(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> Deferred[Sequence[DeleteOutcome]]:
        """
        Delete each ``(key, version_id)`` as L{delete_object} does; one
        key's failure does not stop the others.

        :return: a Deferred firing with one outcome per key, in order.
        """
        return self._call(
            "delete_objects",
            (tuple(keys),),
            self._sync(lambda: self._delete_all(keys)),
        )

    def _delete_all(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> Sequence[DeleteOutcome]:
        outcomes = []
        for key, version_id in keys:
            try:
                self._delete(key, version_id)
            except S3Error as e:
                outcomes.append(DeleteOutcome(key=key, error=(e.code, e.message)))
            else:
                outcomes.append(DeleteOutcome(key=key, version_id=version_id))
        return outcomes

    # --- multipart uploads ----------------------------------------------------

    def create_multipart_upload(self, key: str, headers: HeaderList) -> Deferred[str]:
        """
        Start an upload of an object that will carry ``headers``.

        :return: a Deferred firing with the upload id; it fails with
            ``NoSuchBucket`` and as L{put_object} does for headers.
        """
        return self._call(
            "create_multipart_upload",
            (key, headers),
            self._sync(lambda: self._create_upload(key, headers)),
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
            initiated=self._now(),
            serial=self._serial,
        )
        return upload_id

    def _upload(self, key: str, upload_id: str) -> _Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise _no_such_upload(upload_id)
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
        _check_part_number(part_number)
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
        return self._call(
            "upload_part_copy",
            (source, key, upload_id, part_number),
            self._sync(
                lambda: self._upload_part_copy(source, key, upload_id, part_number)
            ),
        )

    def _upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> CopyResult:
        self._source_store(source)
        _check_version(source.version_id)
        _check_part_number(part_number)
        upload = self._upload(key, upload_id)
        _, found = self._source_object(source)
        offset, length = _copy_range(source.range, len(found.data))
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
        return self._call(
            "complete_multipart_upload",
            (key, upload_id, tuple(parts), headers),
            self._sync(lambda: self._complete(key, upload_id, parts, headers)),
        )

    def _chosen(self, upload: _Upload, chosen: CompletedPart) -> _Part:
        part = upload.parts.get(chosen.part_number)
        if (
            part is None
            or _opaque(part.etag) != _opaque(chosen.etag)
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
        digests = b"".join(bytes.fromhex(_opaque(part.etag)) for _, part in found)
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

        def abort() -> None:
            self._upload(key, upload_id)
            del self._uploads[upload_id]

        return self._call("abort_multipart_upload", (key, upload_id), self._sync(abort))

    def list_parts(
        self, key: str, upload_id: str, max_parts: int, part_number_marker: int
    ) -> Deferred[PartsPage]:
        """
        List an upload's parts above ``part_number_marker``, in order.

        :return: a Deferred firing with up to ``max_parts`` parts; it fails
            with ``NoSuchUpload``.
        """
        return self._call(
            "list_parts",
            (key, upload_id, max_parts, part_number_marker),
            self._sync(
                lambda: self._parts(key, upload_id, max_parts, part_number_marker)
            ),
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
        return self._call(
            "list_multipart_uploads",
            (prefix, delimiter, key_marker, upload_id_marker, max_uploads),
            self._sync(
                lambda: self._uploads_page(
                    prefix, delimiter, key_marker, upload_id_marker, max_uploads
                )
            ),
        )

    def _uploads_page(
        self,
        prefix: str,
        delimiter: str | None,
        key_marker: str | None,
        upload_id_marker: str | None,
        max_uploads: int,
    ) -> UploadsPage:
        def order(upload: _Upload) -> tuple[bytes, int]:
            return (_order(upload.key), upload.serial)

        found = sorted(
            (u for u in self._uploads.values() if u.key.startswith(prefix)), key=order
        )
        if key_marker:
            position = next(
                (
                    order(u)
                    for u in found
                    if upload_id_marker
                    and u.key == key_marker
                    and u.upload_id == upload_id_marker
                ),
                None,
            )
            if position is not None:
                found = [u for u in found if order(u) > position]
            else:
                found = [u for u in found if _order(u.key) > _order(key_marker)]
        items: list[_Upload | str] = []
        truncated = False
        for upload in found:
            rolled = None
            if delimiter:
                at = upload.key.find(delimiter, len(prefix))
                if at != -1:
                    rolled = upload.key[: at + len(delimiter)]
            if rolled is not None and (
                (items and items[-1] == rolled)
                or (key_marker and key_marker.startswith(rolled))
            ):
                continue
            if len(items) >= max_uploads:
                truncated = True
                break
            items.append(rolled if rolled is not None else upload)
        last = items[-1] if items and truncated else None
        return UploadsPage(
            uploads=tuple(
                UploadInfo(key=i.key, upload_id=i.upload_id, initiated=i.initiated)
                for i in items
                if isinstance(i, _Upload)
            ),
            common_prefixes=tuple(i for i in items if isinstance(i, str)),
            truncated=truncated,
            next_key_marker=(
                None if last is None else last if isinstance(last, str) else last.key
            ),
            next_upload_id_marker=last.upload_id if isinstance(last, _Upload) else None,
        )

    # --- buckets ------------------------------------------------------------

    def create_bucket(self) -> Deferred[None]:
        """
        Create the bucket.

        :return: a Deferred that fires once it exists; it fails with
            ``BucketAlreadyOwnedByYou`` if it existed already.
        """

        def create() -> None:
            if self.exists:
                raise S3Error("BucketAlreadyOwnedByYou")
            self.exists = True

        return self._call("create_bucket", (), self._sync(create))

    def delete_bucket(self) -> Deferred[None]:
        """
        Delete the bucket, with its uploads in progress.

        :return: a Deferred that fires once it is gone; it fails with
            ``BucketNotEmpty`` if it holds objects, ``NoSuchBucket`` if it
            does not exist.
        """

        def delete() -> None:
            self._require_bucket()
            if self._objects:
                raise S3Error("BucketNotEmpty")
            self._uploads.clear()
            self.exists = False

        return self._call("delete_bucket", (), self._sync(delete))


@implementer(IStoreFactory)
@define(eq=False)
class MemoryStoreFactory:
    """
    Makes a L{MemoryStore} per backend bucket (see L{backend_name}),
    whatever the bucket's ``backend_type``; the stores copy server-side
    among themselves.

    :ivar stores: the stores made so far, by backend bucket name.
    :ivar clock: the stores' time (the system clock if ``None``).
    :ivar buckets_exist: whether a store's bucket exists when the store is
        first made (``False`` to test CreateBucket).
    :ivar min_part_size: the smallest size of a multipart upload's parts
        but the last.
    """

    clock: IReactorTime | None = None
    buckets_exist: bool = True
    min_part_size: int = MIN_PART_SIZE
    stores: dict[str, MemoryStore] = field(factory=dict)

    def store_named(self, name: str) -> MemoryStore:
        """
        :return: the store of the backend bucket ``name``, made if need be.
        """
        store = self.stores.get(name)
        if store is None:
            store = MemoryStore(
                clock=self.clock,
                name=name,
                exists=self.buckets_exist,
                min_part_size=self.min_part_size,
                factory=self,
            )
            self.stores[name] = store
        return store

    def store_for(self, bucket: BucketConfig) -> IObjectStore:
        """
        :return: the store of ``bucket``'s backend bucket.
        """
        return self.store_named(backend_name(bucket))


# --- the scripted forwarder ------------------------------------------------------


class WrongBodyLength(Exception):
    """
    A request body wrote more bytes than its length announced, or ended
    with fewer (a transport refuses both).
    """


@define(eq=False)
class ForwardedRequest:
    """
    One request a L{ScriptedForwarder} was given, and what became of it.

    :ivar request: the request.
    :ivar chunks: the pieces of its body read so far, in order.
    :ivar complete: whether its body was read to the end (or it had none).
    :ivar failure: how reading its body failed, if it did.
    :ivar cancelled: whether the caller cancelled it.
    :ivar response: the response handed out for it, if any.
    """

    request: BackendRequest
    chunks: list[bytes] = field(factory=list)
    complete: bool = False
    failure: Failure | None = None
    cancelled: bool = False
    response: BackendResponse | None = None

    @property
    def body(self) -> bytes:
        """
        The body read so far.
        """
        return b"".join(self.chunks)

    def pause(self) -> None:
        """
        Pause the request's body, as a backend that reads slowly does.
        """
        if self.request.body is not None:
            self.request.body.pauseProducing()

    def resume(self) -> None:
        """
        Resume the request's body.
        """
        if self.request.body is not None:
            self.request.body.resumeProducing()


#: What a L{ScriptedForwarder} answers a request with: a response, an
#: exception (the request fails), or a Deferred (an answer still pending).
Answer = BackendResponse | BaseException | Deferred[BackendResponse]

#: Answers requests by what they are, once their body has been read.
Handler = Callable[[ForwardedRequest], Answer]


@implementer(IConsumer)
class _BodyReader:
    """
    Reads a request body for a L{ScriptedForwarder}, refusing bytes beyond
    its announced length as a transport does.
    """

    def __init__(self, exchange: ForwardedRequest, body: IBodyProducer) -> None:
        self._exchange = exchange
        self._body = body
        self._size = 0
        self._over = False
        self.done: Deferred[None] = Deferred()

    def start(self) -> Deferred[None]:
        try:
            produced = self._body.startProducing(self)
        except Exception:
            self._end(Failure())
            return self.done
        produced.addCallbacks(self._finished, self._end)
        return self.done

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        raise RuntimeError("a request body must not register with its consumer")

    def unregisterProducer(self) -> None:
        raise RuntimeError("a request body must not register with its consumer")

    def write(self, data: bytes) -> None:
        if self._over:
            return
        self._size += len(data)
        length = self._body.length
        if isinstance(length, int) and self._size > length:
            self._end(Failure(WrongBodyLength(f"more than {length} bytes")))
            self._body.stopProducing()
            return
        self._exchange.chunks.append(data)

    def stop(self) -> None:
        if not self._over:
            self._over = True
            self._body.stopProducing()

    def _finished(self, _: object) -> None:
        length = self._body.length
        if isinstance(length, int) and self._size != length:
            self._end(Failure(WrongBodyLength(f"{self._size} of {length} bytes")))
            return
        if not self._over:
            self._over = True
            self._exchange.complete = True
            self.done.callback(None)

    def _end(self, reason: Failure) -> None:
        if not self._over:
            self._over = True
            self._exchange.failure = reason
            self.done.errback(reason)


@implementer(IForwarder)
class ScriptedForwarder:
    """
    An L{IForwarder} for testing stores without sockets: it records each
    request, reads its body as a transport would (streamed, refusing bytes
    beyond its length), and then answers with the next scripted answer, or
    with what a handler makes of the request.

    A body that fails fails the request with its own failure, as
    L{multistore.forwarder.agent.AgentForwarder} does; a scripted
    exception fails it with that exception; a scripted Deferred leaves it
    pending until the test fires it. Cancelling a request stops its body,
    and a response that comes after is discarded.

    :ivar exchanges: every request forwarded, in order.
    :ivar in_flight: requests not answered yet.
    :ivar most_in_flight: the most requests ever in flight at once.
    """

    def __init__(
        self,
        *answers: Answer,
        handler: Handler | None = None,
        read_bodies: bool = True,
    ) -> None:
        """
        :param answers: the answers to the first requests, in order.
        :param handler: answers requests once the scripted answers are
            used up.
        :param read_bodies: whether request bodies are read before the
            answer is given; if not, the body is left to the caller.
        """
        self._answers: list[Answer] = list(answers)
        self._handler = handler
        self._read_bodies = read_bodies
        self.exchanges: list[ForwardedRequest] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def script(self, *answers: Answer) -> None:
        """
        Add answers for the next requests.
        """
        self._answers.extend(answers)

    @property
    def requests(self) -> list[BackendRequest]:
        """
        Every request forwarded, in order.
        """
        return [exchange.request for exchange in self.exchanges]

    @property
    def bodies(self) -> list[IBody]:
        """
        The bodies of the responses handed out, in order.
        """
        return [e.response.body for e in self.exchanges if e.response is not None]

    def forward(self, request: BackendRequest) -> Deferred[BackendResponse]:
        """
        Record ``request``, read its body, and answer it.

        :raise AssertionError: if there is no answer for it.
        """
        if not self._answers and self._handler is None:
            raise AssertionError(f"unexpected backend request {request!r}")
        scripted = self._answers.pop(0) if self._answers else None
        exchange = ForwardedRequest(request)
        self.exchanges.append(exchange)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        pending: list[Deferred[Any]] = []
        reader: _BodyReader | None = None

        def cancel(_: Deferred[BackendResponse]) -> None:
            exchange.cancelled = True
            if reader is not None:
                reader.stop()
            for waiting in pending:
                waiting.cancel()

        result: Deferred[BackendResponse] = Deferred(cancel)

        def settle(outcome: BackendResponse | Failure) -> None:
            if result.called:
                if isinstance(outcome, BackendResponse):
                    outcome.body.discard()
                return
            if isinstance(outcome, BackendResponse):
                exchange.response = outcome
                result.callback(outcome)
            else:
                result.errback(outcome)

        def answer(_: object = None) -> None:
            given = scripted if scripted is not None else self._handle(exchange)
            if isinstance(given, Deferred):
                pending.append(given)
                given.addBoth(settle)
            elif isinstance(given, BaseException):
                settle(Failure(given))
            else:
                settle(given)

        def done(outcome: object) -> object:
            self.in_flight -= 1
            return outcome

        result.addBoth(done)
        if self._read_bodies and request.body is not None:
            reader = _BodyReader(exchange, request.body)
            reading = reader.start()
            pending.append(reading)
            reading.addCallbacks(answer, lambda reason: settle(reason))
        else:
            exchange.complete = request.body is None
            answer()
        return result

    def _handle(self, exchange: ForwardedRequest) -> Answer:
        if self._handler is None:
            return AssertionError(f"unexpected backend request {exchange.request!r}")
        return self._handler(exchange)


def respond(
    status: int = 200,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | IBody = b"",
    length: int | Literal["actual"] | None = "actual",
) -> BackendResponse:
    """
    A backend response for a L{ScriptedForwarder} to answer with.

    :param body: the body's bytes (as a L{RecordingBody}), or a body of the
        test's own (a L{ControlledBody} to stream it by hand).
    :param length: for bytes, the length the body announces: its own by
        default, ``None`` for unknown.
    """
    given = body if not isinstance(body, bytes) else RecordingBody(body, length)
    return BackendResponse(status=status, headers=HeaderList(headers), body=given)


# --- a registry that answers later -------------------------------------------------


@implementer(IBucketRegistry)
@define(eq=False)
class DelayedBucketRegistry:
    """
    An L{IBucketRegistry} that answers as another does, ``delay`` seconds
    later on ``clock``, as a registry behind a network service would: every
    answer is a Deferred that has not fired when it is returned.

    :ivar calls: the names of the methods called, in order.
    :ivar pending: answers not given yet.
    """

    _registry: IBucketRegistry
    _clock: IReactorTime
    delay: float = 1.0
    calls: list[str] = field(factory=list)
    pending: int = 0

    @property
    def owner_id(self) -> str:
        """
        The owner ID of the registry it answers for.
        """
        return cast(str, self._registry.owner_id)

    @property
    def owner_display_name(self) -> str:
        """
        The owner display name of the registry it answers for.
        """
        return cast(str, self._registry.owner_display_name)

    def _later(self, name: str, answer: Deferred[_T]) -> Deferred[_T]:
        self.calls.append(name)
        self.pending += 1
        result: Deferred[_T] = Deferred()

        def give(outcome: _T | Failure) -> None:
            self.pending -= 1
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)

        def hold(outcome: _T | Failure) -> None:
            self._clock.callLater(self.delay, give, outcome)

        answer.addBoth(hold)
        return result

    def resolve(
        self, name: str, identity: Identity, operation: Operation
    ) -> Deferred[ResolvedBucket]:
        return self._later("resolve", self._registry.resolve(name, identity, operation))

    def list_buckets(self, identity: Identity) -> Deferred[Sequence[BucketEntry]]:
        return self._later("list_buckets", self._registry.list_buckets(identity))

    def authorize_keys(
        self,
        bucket: ResolvedBucket,
        identity: Identity,
        action: str,
        keys: Sequence[str],
    ) -> Deferred[Sequence[bool]]:
        return self._later(
            "authorize_keys",
            self._registry.authorize_keys(bucket, identity, action, keys),
        )


# --- the site in memory ------------------------------------------------------------


@frozen
class HarnessResponse:
    """
    An HTTP response as a client of a L{SiteHarness} read it.

    :ivar status: the status code.
    :ivar headers: the header fields (names in lower case).
    :ivar body: the body (de-chunked), as far as it arrived.
    :ivar complete: whether the whole body arrived; ``False`` for one cut
        off by the connection's end, or still arriving.
    :ivar interim: the statuses of interim responses before it
        (``100 Continue``).
    """

    status: int
    headers: HeaderList
    body: bytes
    complete: bool
    interim: tuple[int, ...] = ()


class _ResponseParser:
    """
    Reads one HTTP/1.1 response as its bytes arrive: interim responses,
    then the head, then a body framed by ``Content-Length``, by chunks, or
    by the end of the connection.
    """

    def __init__(self, method: str) -> None:
        self._method = method
        self._buffer = b""
        self._interim: list[int] = []
        self._status: int | None = None
        self._headers = NO_HEADERS
        self._body: list[bytes] = []
        self._remaining: int | None = None
        self._chunked = False
        self._complete = False

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while not self._complete and self._step():
            pass

    def lost(self) -> None:
        if (
            self._status is not None
            and not self._complete
            and self._remaining is None
            and not self._chunked
        ):
            self._complete = True

    @property
    def response(self) -> HarnessResponse | None:
        if self._status is None:
            return None
        return HarnessResponse(
            status=self._status,
            headers=self._headers,
            body=b"".join(self._body),
            complete=self._complete,
            interim=tuple(self._interim),
        )

    def _step(self) -> bool:
        if self._status is None:
            return self._head()
        if self._chunked:
            return self._chunk()
        if self._remaining is None:
            # Until the connection ends.
            if self._buffer:
                self._body.append(self._buffer)
                self._buffer = b""
            return False
        taken = self._buffer[: self._remaining]
        self._buffer = self._buffer[len(taken) :]
        self._remaining -= len(taken)
        if taken:
            self._body.append(taken)
        if self._remaining == 0:
            self._complete = True
        return False

    def _head(self) -> bool:
        head, found, rest = self._buffer.partition(b"\r\n\r\n")
        if not found:
            return False
        self._buffer = rest
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = HeaderList(
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in lines)
        )
        if 100 <= status < 200:
            self._interim.append(status)
            return True
        self._status = status
        self._headers = headers
        length = headers.get("content-length")
        if self._method == "HEAD" or status in (204, 304):
            self._complete = True
        elif "chunked" in (headers.get("transfer-encoding") or "").lower():
            self._chunked = True
        elif length is not None:
            self._remaining = int(length)
            self._complete = self._remaining == 0
        return True

    def _chunk(self) -> bool:
        if self._remaining:
            taken = self._buffer[: self._remaining]
            self._buffer = self._buffer[len(taken) :]
            self._remaining -= len(taken)
            self._body.append(taken)
            return bool(taken) and self._remaining == 0
        line, found, rest = self._buffer.partition(b"\r\n")
        if not found:
            return False
        if self._remaining == 0:
            # The end of a chunk's data.
            self._buffer = rest
            self._remaining = None
            return True
        size = int(line.split(b";")[0], 16)
        if size == 0:
            if b"\r\n\r\n" not in b"\r\n" + rest and not rest.startswith(b"\r\n"):
                return False
            self._buffer = rest.partition(b"\r\n")[2]
            self._complete = True
            return False
        self._buffer = rest
        self._remaining = size
        return True


class _Connection(StringTransport):
    """
    The site's end of an in-memory connection: what the site writes is held
    until the client reads it, and while more than ``window`` bytes are
    unread, the site's producer is paused, as a socket's full buffer does.
    """

    def __init__(self, window: int | None, peer: str) -> None:
        super().__init__(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
            peerAddress=IPv4Address("TCP", peer, 50000),
        )
        self._window = window
        self.holding = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if (
            self._window is not None
            and not self.holding
            and self.producer is not None
            and len(self.value()) > self._window
        ):
            self.holding = True
            self.producer.pauseProducing()

    def take(self, size: int | None = None) -> bytes:
        """
        Read up to ``size`` bytes (all of them if ``None``) of what the site
        wrote, resuming its producer once the unread bytes fit the window.
        """
        data: bytes = self.value()
        taken, rest = (data, b"") if size is None else (data[:size], data[size:])
        self.clear()
        self.io.write(rest)
        if self.holding and (self._window is None or len(rest) <= self._window):
            self.holding = False
            if self.producer is not None:
                self.producer.resumeProducing()
        return taken


class Exchange:
    """
    One request to a L{SiteHarness}, on a connection of its own: the test
    sends the body (in pieces, if it likes) and reads the response.

    The client honours backpressure: while the site has paused reading
    from it, what L{send} is given waits (L{unsent}) until the site
    resumes. With a ``window``, the client reads the response only when
    told to (L{read}), and the site is paused while more than ``window``
    bytes are unread.
    """

    def __init__(
        self,
        harness: SiteHarness,
        method: str,
        head: bytes,
        chunked: bool,
        window: int | None,
        read_size: int,
        peer: str,
    ) -> None:
        self._harness = harness
        self._chunked = chunked
        self._window = window
        self._read_size = read_size
        self._parser = _ResponseParser(method)
        self._outgoing: list[bytes] = []
        self.transport = _Connection(window, peer)
        self.protocol = harness.site.buildProtocol(self.transport.getPeer())
        assert self.protocol is not None
        self.protocol.makeConnection(self.transport)
        self.closed = False
        self._outgoing.append(head)
        self.pump()

    @property
    def paused(self) -> bool:
        """
        Whether the site has paused reading from the client.
        """
        return bool(self.transport.producerState == "paused")

    @property
    def unsent(self) -> int:
        """
        Bytes the client holds because the site is not reading.
        """
        return sum(len(piece) for piece in self._outgoing)

    def send(self, data: bytes) -> None:
        """
        Send a piece of the request body (framed as a chunk for a chunked
        request); an empty piece sends nothing.
        """
        if not data:
            return
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self._outgoing.append(data)
        self.pump()

    def end(self) -> None:
        """
        End a chunked request body (a body with a length ends with its last
        byte).
        """
        if self._chunked:
            self._outgoing.append(b"0\r\n\r\n")
        self.pump()

    def disconnect(self) -> None:
        """
        The client goes away.
        """
        if not self.closed:
            self.closed = True
            self.transport.disconnecting = True
            self.protocol.connectionLost(Failure(ConnectionLost()))
            self._parser.lost()
        self._harness.clock.advance(0)

    def read(self, size: int | None = None) -> bytes:
        """
        Read up to ``size`` bytes of what the site sent (everything if
        ``None``).

        :return: the raw bytes read.
        """
        data = self.transport.take(size)
        self._parser.feed(data)
        self.pump()
        return data

    @property
    def unread(self) -> int:
        """
        Bytes the site sent that the client has not read.
        """
        return len(self.transport.value())

    def response(self) -> HarnessResponse | None:
        """
        The response as far as it has arrived (reading everything sent, if
        the client has no window), or ``None`` before its head.
        """
        if self._window is None:
            self.read()
        return self._parser.response

    def pump(self) -> None:
        """
        Move bytes until nothing more can move: the client's to the site
        while the site reads, and the end of the connection.
        """
        moved = True
        while moved:
            moved = False
            while (
                self._outgoing
                and not self.closed
                and self.transport.producerState == "producing"
            ):
                piece = self._outgoing[0]
                data, rest = piece[: self._read_size], piece[self._read_size :]
                if rest:
                    self._outgoing[0] = rest
                else:
                    self._outgoing.pop(0)
                self.protocol.dataReceived(data)
                moved = True
            self._harness.clock.advance(0)
            if self._window is None and self.transport.value():
                self._parser.feed(self.transport.take())
                moved = True
            if self.transport.disconnecting and not self.closed:
                self.closed = True
                self.protocol.connectionLost(Failure(ConnectionDone()))
                if self._window is None:
                    self._parser.feed(self.transport.take())
                self._parser.lost()
                moved = True


@define(eq=False)
class SiteHarness:
    """
    The whole site (L{multistore.web.site}, the gateway, its operations and
    stores) in memory, driven over in-memory connections: each request goes
    through twisted.web's HTTP/1.1 channel and multistore's streaming
    request, byte for byte, as from a socket.

    :ivar site: the site.
    :ivar gateway: its gateway.
    :ivar clock: the time of everything (advance it with L{advance}).
    :ivar stores: the stores' factory.
    :ivar host: the ``Host`` requests are sent to.
    :ivar region: the region requests are signed for.
    """

    site: MultistoreSite
    gateway: Gateway
    clock: MemoryReactorClock
    stores: IStoreFactory
    host: str = "127.0.0.1:8080"
    region: str = "us-east-1"
    exchanges: list[Exchange] = field(factory=list)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], **options: Any) -> SiteHarness:
        """
        Build the site for a configuration as TOML or JSON parsing gives it
        (checked as a configuration file is).

        :param options: as for L{from_config}.
        :raise multistore.configfile.ConfigError: for a bad configuration.
        """
        return cls.from_config(config_from_mapping(mapping), **options)

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        stores: IStoreFactory | None = None,
        clock: MemoryReactorClock | None = None,
        buckets: IBucketRegistry | None = None,
        credentials: ICredentialRegistry | None = None,
        middleware: Sequence[IMiddleware] = (),
        routes: Sequence[IRouteHandler] = (),
        domains: Sequence[str] = (),
        access_log: bool = False,
    ) -> SiteHarness:
        """
        Build the site for ``config``, as the daemon does, with the stores
        and registries given.

        :param stores: makes the buckets' stores; a L{MemoryStoreFactory}
            on ``clock`` if not given.
        :param clock: the time; one at L{HARNESS_EPOCH} if not given.
        :param buckets: the bucket registry; the configuration's if not
            given.
        :param credentials: the credential registry; the configuration's
            if not given.
        :param middleware: the middleware chain, in order.
        :param routes: route handlers for non-S3 endpoints.
        :param domains: domains for virtual-hosted-style requests, besides
            the configuration's.
        :param access_log: whether the gateway logs each request.
        """
        if clock is None:
            clock = MemoryReactorClock()
            clock.advance(HARNESS_EPOCH.timestamp())
        if stores is None:
            stores = MemoryStoreFactory(clock=clock)
        server = config.server
        if buckets is None:
            buckets = StaticBucketRegistry.from_config(config)
        if credentials is None:
            credentials = StaticCredentialRegistry.from_config(config)
        gateway = build_gateway(
            config,
            stores,
            clock,
            buckets=buckets,
            credentials=credentials,
            routes=routes,
            middleware=middleware,
            domains=domains,
            access_log=access_log,
        )
        site = make_site(gateway, clock, server_timing=server.server_timing)
        # Channel timeouts run on the harness's clock, not the global reactor.
        site.reactor = clock
        return cls(
            site=site, gateway=gateway, clock=clock, stores=stores, region=server.region
        )

    def open(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]] = (),
        *,
        sign: tuple[str, str] | None = None,
        payload: bytes | None = None,
        chunked: bool = False,
        window: int | None = None,
        read_size: int = 64 * 1024,
        peer: str = "127.0.0.1",
    ) -> Exchange:
        """
        Send a request's head, and leave its body to the test.

        :param target: the path and query, as on the wire.
        :param headers: the header fields (``Host`` is added if missing).
        :param sign: an access key id and secret to sign with (SigV4,
            header-signed).
        :param payload: the whole body, to sign its hash; without it the
            payload is signed as ``UNSIGNED-PAYLOAD``.
        :param chunked: send the body with ``Transfer-Encoding: chunked``.
        :param window: how many bytes of the response may wait unread
            before the site is paused; ``None`` to read everything at once.
        :param read_size: the most bytes the site is handed at a time.
        :param peer: the client's IP address.
        """
        fields = HeaderList(headers)
        if chunked:
            fields = fields.with_("transfer-encoding", "chunked")
        if sign is not None:
            payload_hash = (
                hashlib.sha256(payload).hexdigest()
                if payload is not None
                else UNSIGNED_PAYLOAD
            )
            fields = sign_request(
                method,
                f"http://{fields.get('host') or self.host}{target}",
                fields,
                payload_hash,
                sign[0],
                sign[1],
                None,
                self.region,
                datetime.fromtimestamp(self.clock.seconds(), UTC),
            )
        elif "host" not in fields:
            fields = HeaderList([("host", self.host), *fields])
        lines = [f"{method} {target} HTTP/1.1".encode("latin-1")]
        lines.extend(f"{n}: {v}".encode("latin-1") for n, v in fields)
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        exchange = Exchange(self, method, head, chunked, window, read_size, peer)
        self.exchanges.append(exchange)
        return exchange

    def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | Sequence[bytes] | None = None,
        *,
        sign: tuple[str, str] | None = None,
        chunked: bool = False,
    ) -> HarnessResponse:
        """
        Send a whole request and read its whole response.

        :param body: the body, whole or in pieces sent one after the other;
            its length is sent as ``Content-Length`` unless ``chunked`` or
            given.
        :raise AssertionError: if the response is not complete once
            everything has been sent (something waits for the clock, or a
            store's scripted Deferred): use L{open} for such requests.
        """
        pieces = [body] if isinstance(body, bytes) else list(body or [])
        payload = b"".join(pieces)
        fields = HeaderList(headers)
        if (
            body is not None
            and not chunked
            and "content-length" not in fields
            and "transfer-encoding" not in fields
        ):
            fields = fields.plus([("content-length", str(len(payload)))])
        exchange = self.open(
            method,
            target,
            fields,
            sign=sign,
            payload=payload if body is not None else b"",
            chunked=chunked,
        )
        for piece in pieces:
            exchange.send(piece)
        exchange.end()
        response = exchange.response()
        if response is None or not response.complete:
            raise AssertionError(f"no complete response to {method} {target}")
        return response

    def advance(self, seconds: float = 0) -> None:
        """
        Let ``seconds`` pass on the clock, then move every connection's
        bytes.
        """
        self.clock.advance(seconds)
        for exchange in self.exchanges:
            exchange.pump()
