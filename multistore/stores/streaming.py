# -*- test-case-name: tests.unit.test_stores_streaming -*-
"""
The streaming toolkit every store shares: how a body reaches a backend,
which headers cross between client and backend, and the few other things
more than one store does.

Bodies
======

- L{LastByteHeld}: a body of known length sent in one request, its last
  byte held back until the body has been verified in full, so that a body
  that fails, however late, leaves the backend with an incomplete request it
  never turns into an object.
- L{read_empty}: an empty body read (and so verified) before the request it
  belongs to is sent.
- L{PartBuffer} and L{Chunks}: a body of unknown length read into memory a
  part (a block, a chunk) at a time, the body paused while a part is full,
  and each part sent from memory.
- L{shielded} and L{finish_quietly}: work that goes on when its caller gives
  up (aborting an upload, cancelling a session), because that is when it
  matters most.

Headers
=======

One set of names for each kind of header (L{CONTENT_HEADERS},
L{OBJECT_REQUEST_HEADERS}, L{CHECKSUM_VALUES}, L{CONDITIONS}...), and one
L{AllowList} per purpose built from them: what an upload passes on
(L{OBJECT_WRITE}), what a client sees of an object (L{OBJECT_RESPONSE}) or
of a write's answer (L{WRITE_RESPONSE}), what a streamed copy takes from its
source (L{STREAMED_COPY}). ``aws-chunked`` is the client's framing, never
the object's coding: L{without_aws_chunked} takes it out of
``Content-Encoding`` wherever a write's headers go.

Operations
==========

L{deferred} lets a store write each of L{IObjectStore}'s methods once, as a
coroutine. L{now}, L{service_root} and L{error_body} are what every store on
an HTTP service needs to date its requests, to tell one service from
another, and to read a backend's error documents; L{check_read} evaluates a
read's conditions, for stores that evaluate them themselves.

Copies
======

L{IObjectStore.can_copy} says whether a store copies a source itself
(L{on_same_service} helps decide); a store asked for a copy it said it
cannot do fails with L{cannot_copy}. A copy the store cannot do is streamed
instead: L{open_source} opens the source on its own store, as a body a
write can take.

Deletes
=======

L{deleted} turns one delete into its DeleteObjects outcome, and
L{delete_each} runs one delete per key, a few at a time, for stores whose
backend has no batch delete.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from functools import wraps
from typing import Any, Final, ParamSpec, TypeVar
from urllib.parse import urlsplit

from attrs import define, field, frozen
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredSemaphore,
    fail,
    gatherResults,
    succeed,
)
from twisted.internet.interfaces import IConsumer, IProducer, IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from multistore.bodies import BodyAsProducer, read_body
from multistore.config import BucketConfig
from multistore.headers import HeaderList
from multistore.interfaces import IObjectStore
from multistore.model import (
    BackendResponse,
    CopySource,
    DeleteOutcome,
    ObjectRead,
    ObjectResponse,
)
from multistore.s3.conditions import evaluate
from multistore.s3.errors import S3Error

_T = TypeVar("_T")
_P = ParamSpec("_P")

#: Largest error document read from a backend.
MAX_ERROR_DOCUMENT: Final = 64 * 1024

#: How many deletes of a DeleteObjects run at once on a store that deletes
#: one key per request.
DELETE_CONCURRENCY: Final = 8


# --- header names --------------------------------------------------------------

#: The content headers of an object: what every store keeps about its
#: representation.
CONTENT_HEADERS: Final = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-type",
    }
)

#: The HTTP headers of a read's answer that describe the object.
HTTP_OBJECT_HEADERS: Final = CONTENT_HEADERS | {
    "accept-ranges",
    "content-length",
    "content-range",
    "etag",
    "last-modified",
}

#: Request headers that describe the object being written.
OBJECT_REQUEST_HEADERS: Final = CONTENT_HEADERS | {
    "expires",
    "x-amz-storage-class",
    "x-amz-tagging",
    "x-amz-website-redirect-location",
}
#: Prefixes of the request headers that describe the object being written.
OBJECT_REQUEST_PREFIXES: Final = (
    "x-amz-meta-",
    "x-amz-server-side-encryption",
    "x-amz-object-lock-",
)

#: The checksum algorithms S3 knows.
CHECKSUM_ALGORITHMS: Final = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")

#: The checksums of a body, one header per algorithm.
CHECKSUM_VALUES: Final = frozenset(
    f"x-amz-checksum-{algorithm}" for algorithm in CHECKSUM_ALGORITHMS
)

#: The conditions of a write.
CONDITIONS: Final = frozenset({"if-match", "if-none-match"})


@frozen
class AllowList:
    """
    The header names one purpose lets through.

    :ivar names: names let through.
    :ivar prefixes: prefixes of names let through.
    """

    names: frozenset[str]
    prefixes: tuple[str, ...] = ()

    def allows(self, name: str) -> bool:
        """
        :param name: a lower-case header name.
        :return: whether it goes through.
        """
        return name in self.names or name.startswith(self.prefixes)

    def kept(self, headers: Iterable[tuple[str, str]]) -> HeaderList:
        """
        :return: the fields of ``headers`` that go through, in order.
        """
        return HeaderList((name, value) for name, value in headers if self.allows(name))


#: What a write keeps of its request: the object's headers, its digests and
#: its conditions.
OBJECT_WRITE: Final = AllowList(
    OBJECT_REQUEST_HEADERS
    | CONDITIONS
    | {"content-md5", "x-amz-sdk-checksum-algorithm"},
    (*OBJECT_REQUEST_PREFIXES, "x-amz-checksum-"),
)

#: Object headers a backend's answer to a read passes on to clients; nothing
#: the backend says about itself (its request ids, its bucket, its
#: lifecycle rules).
OBJECT_RESPONSE: Final = AllowList(
    HTTP_OBJECT_HEADERS
    | {
        "expires",
        "x-amz-delete-marker",
        "x-amz-missing-meta",
        "x-amz-mp-parts-count",
        "x-amz-object-lock-legal-hold",
        "x-amz-object-lock-mode",
        "x-amz-object-lock-retain-until-date",
        "x-amz-replication-status",
        "x-amz-restore",
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-bucket-key-enabled",
        "x-amz-server-side-encryption-customer-algorithm",
        "x-amz-server-side-encryption-customer-key-md5",
        "x-amz-storage-class",
        "x-amz-tagging-count",
        "x-amz-version-id",
        "x-amz-website-redirect-location",
    },
    ("x-amz-meta-", "x-amz-checksum-"),
)

#: Headers of a backend's answer to a write (PUT, copy, part, completion,
#: delete) passed on to clients.
WRITE_RESPONSE: Final = AllowList(
    frozenset(
        {
            "etag",
            "x-amz-copy-source-version-id",
            "x-amz-delete-marker",
            "x-amz-server-side-encryption",
            "x-amz-server-side-encryption-bucket-key-enabled",
            "x-amz-server-side-encryption-customer-algorithm",
            "x-amz-server-side-encryption-customer-key-md5",
            "x-amz-version-id",
        }
    ),
    ("x-amz-checksum-",),
)

#: The headers of its source a streamed copy writes when it copies the
#: metadata (tags are the destination's business).
STREAMED_COPY: Final = AllowList(
    OBJECT_REQUEST_HEADERS - {"x-amz-tagging"}, ("x-amz-meta-",)
)


def without_aws_chunked(value: str) -> str:
    """
    :return: a ``Content-Encoding`` without the ``aws-chunked`` coding, which
        describes the client's framing, not the object (and without empty
        codings).
    """
    codings = [c.strip() for c in value.split(",")]
    return ", ".join(c for c in codings if c and c.lower() != "aws-chunked")


def allowed_headers(headers: HeaderList, allowed: AllowList) -> HeaderList:
    """
    Choose the request headers of a write that go on.

    :param headers: the write's headers.
    :param allowed: what goes on.
    :return: the allowed headers, in order; ``aws-chunked`` removed from
        ``content-encoding`` (and the header dropped if nothing is left).
    """
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        if not allowed.allows(name):
            continue
        if name == "content-encoding":
            value = without_aws_chunked(value)
            if not value:
                continue
        kept.append((name, value))
    return HeaderList(kept)


def content_header(headers: HeaderList, name: str) -> str | None:
    """
    :param name: one of L{CONTENT_HEADERS}.
    :return: the value of the content header ``name`` a write gives the
        object (``aws-chunked`` taken out of ``content-encoding``), or
        ``None`` if it gives none.
    """
    value = headers.get(name)
    if value is not None and name == "content-encoding":
        return without_aws_chunked(value) or None
    return value


def object_headers(headers: HeaderList) -> HeaderList:
    """
    :return: the headers of a backend object response that clients may see.
    """
    return OBJECT_RESPONSE.kept(headers)


def write_response_headers(headers: HeaderList) -> HeaderList:
    """
    :return: the headers of a backend's answer to a write that clients may
        see: the ETag, version ids, delete marker, checksums and encryption
        (not the length or type of the answer's own body).
    """
    return WRITE_RESPONSE.kept(headers)


def conditions(headers: HeaderList) -> HeaderList:
    """
    :return: the ``If-Match`` / ``If-None-Match`` of a write.
    """
    return HeaderList((name, value) for name, value in headers if name in CONDITIONS)


# --- backends ------------------------------------------------------------------


def deferred(
    method: Callable[_P, Coroutine[Deferred[Any], Any, _T]],
) -> Callable[_P, Deferred[_T]]:
    """
    Write a store's method as a coroutine: the decorated method returns a
    Deferred, as L{IObjectStore}'s methods do, with the coroutine's result;
    cancelling it cancels what the coroutine waits on.
    """

    @wraps(method)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        return Deferred.fromCoroutine(method(*args, **kwargs))

    return run


def now(clock: IReactorTime) -> datetime:
    """
    :return: ``clock``'s time, in UTC.
    """
    return datetime.fromtimestamp(clock.seconds(), UTC)


def service_root(endpoint: str) -> str:
    """
    :return: an endpoint URL as it identifies a service: scheme and host
        lower-cased, no trailing ``/``.
    """
    parts = urlsplit(endpoint.strip().rstrip("/"))
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}"


async def error_body(response: BackendResponse, head: bool = False) -> bytes:
    """
    Read the document of a backend's error answer, if it has one.

    :param head: whether the answer is to a HEAD, which has no body.
    :return: the document, or nothing if there is none or it is larger than
        L{MAX_ERROR_DOCUMENT} (the body is released either way).
    """
    if head or response.body.length == 0:
        response.body.discard()
        return b""
    try:
        return await read_body(response.body, MAX_ERROR_DOCUMENT)
    except S3Error:
        return b""


def check_read(read: ObjectRead, etag: str, modified: datetime, now: datetime) -> None:
    """
    Evaluate a read's conditions against the object it reads, as S3 does,
    for stores that evaluate them themselves (a copy's
    ``x-amz-copy-source-if-*`` conditions are those of its L{source_read}).

    :param etag: the object's ETag, quoted.
    :param modified: when the object last changed.
    :param now: the store's time.
    :raise NotModified: for a read the client already has current.
    :raise S3Error: ``PreconditionFailed``.
    """
    evaluate(
        etag,
        modified,
        if_match=read.if_match,
        if_none_match=read.if_none_match,
        if_modified_since=read.if_modified_since,
        if_unmodified_since=read.if_unmodified_since,
        method="HEAD" if read.head else "GET",
        now=now,
    )


def on_same_service(
    service: Callable[[BucketConfig], object | None],
    bucket: BucketConfig,
    source: BucketConfig,
    name: str,
) -> bool:
    """
    Decide whether a store can reach a copy's source bucket as it reaches
    its own: for L{IObjectStore.can_copy}.

    :param service: what identifies the service a bucket is on and who the
        gateway is there, for a bucket of the store's kind; ``None`` for
        any other.
    :param bucket: the store's bucket.
    :param source: the copy's source bucket.
    :param name: the option that names the source's bucket (or container)
        on its service.
    :return: whether both buckets are on the same service, reached with the
        same credentials, and the source names its bucket.
    """
    mine = service(bucket)
    return mine is not None and service(source) == mine and bool(source.option(name))


# --- bodies --------------------------------------------------------------------


def _incomplete() -> S3Error:
    return S3Error(
        "IncompleteBody", "The request body did not have the length it declared."
    )


@implementer(IBodyProducer, IConsumer)
@define
class LastByteHeld:
    """
    A request body on its way to a backend, with its last byte held back
    until the body has finished without failing.

    A backend turns an upload into an object as soon as it holds as many
    bytes as ``Content-Length`` said. A body that is verified as it passes
    (a payload hash or a trailing checksum is checked after its last byte)
    can fail only after that byte was read; held back, it is never sent, the
    transport abandons the request, and the backend never completes it.

    :ivar _inner: the body; its length must be known.
    """

    _inner: IBodyProducer
    _consumer: IConsumer | None = None
    _written: int = 0
    _held: bytes = b""
    _overflow: bool = False
    _stopped: bool = False
    _result: Deferred[None] | None = None
    _produced: Deferred[None] | None = None

    @property
    def length(self) -> int:
        """
        The wrapped body's length.
        """
        length = self._inner.length
        assert isinstance(length, int)
        return length

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """
        Start the wrapped body, writing to ``consumer`` all of it but its
        last byte, which follows once the body has succeeded.

        :return: a Deferred that fires once the whole body is written; it
            fails with the body's own failure, or with L{S3Error}
            ``IncompleteBody`` if the body did not produce exactly its
            length. Cancelling it cancels the body.
        """
        self._consumer = consumer
        result: Deferred[None] = Deferred(self._cancel)
        self._result = result
        produced: Deferred[None] = self._inner.startProducing(self)
        self._produced = produced
        produced.addCallbacks(self._succeeded, self._failed)
        return result

    def _succeeded(self, ignored: object) -> None:
        result = self._result
        if self._stopped or result is None or result.called:
            return
        if self._overflow or self._written != self.length:
            result.errback(_incomplete())
            return
        if self._held and self._consumer is not None:
            self._consumer.write(self._held)
            self._held = b""
        result.callback(None)

    def _failed(self, failure: Failure) -> None:
        result = self._result
        if self._stopped or result is None or result.called:
            return
        self._held = b""
        result.errback(failure)

    def _cancel(self, result: Deferred[None]) -> None:
        if self._produced is not None:
            self._produced.cancel()

    # IConsumer, for the wrapped body.

    def write(self, data: bytes) -> None:
        """
        Pass a chunk on, except the body's last byte; a chunk beyond the
        body's length is dropped, and the body then fails.
        """
        if self._consumer is None or self._overflow or not data:
            return
        remaining = self.length - self._written
        if len(data) > remaining:
            self._overflow = True
            return
        self._written += len(data)
        if len(data) == remaining:
            self._held, data = data[-1:], data[:-1]
        if data:
            self._consumer.write(data)

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """
        Nothing to do: the transport drives the wrapped body through this
        one.
        """

    def unregisterProducer(self) -> None:
        """
        Nothing to do.
        """

    # IBodyProducer, for the transport.

    def pauseProducing(self) -> None:
        """
        Pause the wrapped body.
        """
        self._inner.pauseProducing()

    def resumeProducing(self) -> None:
        """
        Resume the wrapped body.
        """
        self._inner.resumeProducing()

    def stopProducing(self) -> None:
        """
        Stop the wrapped body; the result never fires.
        """
        self._stopped = True
        self._held = b""
        self._inner.stopProducing()


@implementer(IConsumer)
@define
class _Counter:
    """
    Reads a body that should be empty, counting what it writes.
    """

    count: int = 0

    def write(self, data: bytes) -> None:
        self.count += len(data)

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass


async def read_empty(body: IBodyProducer) -> None:
    """
    Read an empty body to its end, so that it is verified before the
    request it belongs to is sent (a backend completes an empty upload as
    soon as it has the request's headers).

    :raise S3Error: ``IncompleteBody`` if it was not empty after all; or
        the body's own failure.
    """
    counter = _Counter()
    await body.startProducing(counter)
    if counter.count:
        raise _incomplete()


async def held(body: IBodyProducer) -> IBodyProducer | None:
    """
    Make a body of known length ready to send in one request.

    :return: nothing for an empty body, once it has been read (see
        L{read_empty}); else the body behind a L{LastByteHeld}.
    :raise S3Error: as L{read_empty} does.
    """
    if body.length == 0:
        await read_empty(body)
        return None
    return LastByteHeld(body)


@implementer(IConsumer)
@define
class PartBuffer:
    """
    A body of unknown length, read into memory a part at a time.

    The body writes into the buffer until it holds more than a part (or the
    body ends), and is then paused until L{take} has taken a part out and
    L{resume} lets it go on: however long the body, the buffer holds at most
    a part, the chunk that overfilled it, and whatever the body writes after
    being asked to pause.

    A failure of the body is kept (see L{failure}), fails whoever waits in
    L{fill}, and cancels the request L{watch}ed at the time.

    :ivar _body: the body.
    :ivar _part_size: the bytes in a part.
    """

    _body: IBodyProducer
    _part_size: int
    _chunks: deque[bytes] = field(factory=deque)
    _size: int = 0
    _paused: bool = False
    _ended: bool = False
    _stopped: bool = False
    _failure: Failure | None = None
    _waiter: Deferred[None] | None = None
    _watched: Deferred[Any] | None = None

    @property
    def size(self) -> int:
        """
        The bytes held.
        """
        return self._size

    @property
    def paused(self) -> bool:
        """
        Whether the body is paused by the buffer.
        """
        return self._paused

    @property
    def failure(self) -> Failure | None:
        """
        The body's failure, if it failed.
        """
        return self._failure

    @property
    def holds_rest(self) -> bool:
        """
        Whether the body has ended and what is held is at most a part: the
        next L{take} takes the body's last bytes.
        """
        return self._ended and self._size <= self._part_size

    def start(self) -> None:
        """
        Start reading the body.
        """
        self._body.startProducing(self).addCallbacks(self._end, self._fail)

    def _end(self, ignored: object) -> None:
        if self._stopped:
            return
        self._ended = True
        self._paused = False
        self._wake()

    def _fail(self, failure: Failure) -> None:
        if self._stopped or self._ended:
            return
        self._failure = failure
        self._chunks.clear()
        self._size = 0
        watched, self._watched = self._watched, None
        if watched is not None:
            watched.cancel()
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None:
            return
        if self._failure is not None:
            waiter.errback(self._failure)
        else:
            waiter.callback(None)

    def check(self) -> None:
        """
        :raise Exception: the body's own failure, if it failed.
        """
        if self._failure is not None:
            self._failure.raiseException()

    def fill(self) -> Deferred[None]:
        """
        Let the body fill the buffer.

        :return: a Deferred that fires once the buffer holds more than a
            part or the body has ended, or fails with the body's failure.
            Cancelling it leaves the body as it is.
        """
        if self._failure is not None:
            return fail(self._failure)
        if self._ended or self._size > self._part_size:
            return succeed(None)
        if self._waiter is not None:
            raise RuntimeError("a part buffer is filled for one reader at a time")
        self._waiter = Deferred(self._give_up)
        waiter = self._waiter
        self.resume()
        return waiter

    def _give_up(self, waiter: Deferred[None]) -> None:
        if self._waiter is waiter:
            self._waiter = None

    def take(self) -> list[bytes]:
        """
        Take a part out: the first C{part_size} bytes held, or all of them
        if there are no more.

        :return: the part's chunks, in order.
        """
        if self._size <= self._part_size:
            taken = list(self._chunks)
            self._chunks.clear()
            self._size = 0
            return taken
        taken = []
        wanted = self._part_size
        while wanted:
            chunk = self._chunks.popleft()
            if len(chunk) > wanted:
                self._chunks.appendleft(chunk[wanted:])
                chunk = chunk[:wanted]
            taken.append(chunk)
            wanted -= len(chunk)
        self._size -= self._part_size
        return taken

    def resume(self) -> None:
        """
        Resume the body if it is paused and the buffer has room.
        """
        if self._paused and not self._stopped and self._size <= self._part_size:
            self._paused = False
            self._body.resumeProducing()

    def stop(self) -> None:
        """
        Stop the body if it is still producing, and drop what is held.
        """
        self._chunks.clear()
        self._size = 0
        if self._stopped or self._ended or self._failure is not None:
            return
        self._stopped = True
        self._paused = False
        self._body.stopProducing()

    def watch(self, request: Deferred[_T]) -> Deferred[_T]:
        """
        Cancel ``request`` if the body fails before it has an answer.

        :return: ``request``.
        """
        self._watched = request

        def done(result: object) -> object:
            if self._watched is request:
                self._watched = None
            return result

        request.addBoth(done)
        return request

    # IConsumer, for the body.

    def write(self, data: bytes) -> None:
        """
        Keep a chunk; pause the body once more than a part is held.
        """
        if self._stopped or self._ended or self._failure is not None or not data:
            return
        self._chunks.append(data)
        self._size += len(data)
        if self._size > self._part_size:
            if not self._paused:
                self._paused = True
                self._body.pauseProducing()
            self._wake()

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """
        Nothing to do: the body is paused through its own methods.
        """

    def unregisterProducer(self) -> None:
        """
        Nothing to do.
        """


@implementer(IBodyProducer)
@frozen
class Chunks:
    """
    A request body of chunks held in memory (a part of a body of unknown
    length), written in one go.
    """

    _chunks: Sequence[bytes]

    @property
    def length(self) -> int:
        return sum(map(len, self._chunks))

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        for chunk in self._chunks:
            consumer.write(chunk)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def shielded(work: Deferred[_T]) -> Deferred[_T]:
    """
    :return: a Deferred with the result of ``work``, whose cancellation
        leaves ``work`` running; ``work`` then keeps its result for whoever
        waits on it next.
    """
    shield: Deferred[_T] = Deferred()

    def settle(result: object) -> object:
        if shield.called:
            return result
        if isinstance(result, Failure):
            shield.errback(result)
        else:
            shield.callback(result)  # type: ignore[arg-type]
        return None

    work.addBoth(settle)
    return shield


async def finish_quietly(
    work: Deferred[Any], log: Logger, message: str, **fields: object
) -> None:
    """
    Wait for clean-up work (aborting an upload that will not be completed,
    cancelling a session) that must go on whatever happens to its caller.
    A failure of ``work`` is logged, not raised; a caller cancelled while
    it waits stops waiting, and ``work`` goes on.

    :param log: where the failure goes.
    :param message: the log format for it.
    :param fields: the format's fields.
    """

    def failed(failure: Failure) -> None:
        log.failure(message, failure, LogLevel.critical, **fields)

    work.addErrback(failed)
    with suppress(CancelledError):
        await shielded(work)


# --- copies --------------------------------------------------------------------


def cannot_copy() -> S3Error:
    """
    :return: the failure of a copy asked of a store whose
        L{IObjectStore.can_copy} said no.
    """
    return S3Error(
        "NotImplemented",
        "This store cannot copy from that bucket on the server side.",
    )


def source_read(source: CopySource) -> ObjectRead:
    """
    :return: the read of a copy's source, with the copy's range and its
        ``x-amz-copy-source-if-*`` conditions.
    """
    found = source.conditions
    return ObjectRead(
        key=source.key,
        range=source.range,
        if_match=found.get("x-amz-copy-source-if-match"),
        if_none_match=found.get("x-amz-copy-source-if-none-match"),
        if_modified_since=found.get("x-amz-copy-source-if-modified-since"),
        if_unmodified_since=found.get("x-amz-copy-source-if-unmodified-since"),
        version_id=source.version_id,
    )


async def open_source(
    store: IObjectStore, source: CopySource
) -> tuple[BodyAsProducer, HeaderList]:
    """
    Open a copy's source on its own store, to stream it into a write.

    :param store: the source's store.
    :return: the source as a request body (release it once the write is
        done), and the source object's headers.
    :raise S3Error: ``PreconditionFailed`` if the source is not modified
        (``x-amz-copy-source-if-none-match``); the read's own failures.
    """
    answer = await store.get_object(source_read(source))
    if answer.status == 304 or answer.body is None:
        if answer.body is not None:
            answer.body.discard()
        raise S3Error(
            "PreconditionFailed",
            extra=(("Condition", "x-amz-copy-source-If-None-Match"),),
        )
    return BodyAsProducer(answer.body), answer.headers


# --- deletes -------------------------------------------------------------------


async def deleted(
    key: str, version_id: str | None, delete: Awaitable[ObjectResponse]
) -> DeleteOutcome:
    """
    :param delete: the delete of ``key`` (``version_id``), under way.
    :return: its outcome in a DeleteObjects answer: the version deleted and
        whether a delete marker was made, or the error it failed with.
    """
    try:
        response = await delete
    except S3Error as error:
        return DeleteOutcome(key, version_id, error=(error.code, error.message))
    return DeleteOutcome(
        key,
        response.headers.get("x-amz-version-id") or version_id,
        delete_marker=response.headers.get("x-amz-delete-marker") == "true",
    )


def delete_each(
    keys: Sequence[tuple[str, str | None]],
    delete: Callable[[str, str | None], Awaitable[ObjectResponse]],
) -> Deferred[Sequence[DeleteOutcome]]:
    """
    Delete keys one request each, L{DELETE_CONCURRENCY} at a time.

    :param delete: deletes one key (and version).
    :return: the keys' outcomes, in order.
    """
    semaphore = DeferredSemaphore(DELETE_CONCURRENCY)

    def one(key: str, version_id: str | None) -> Deferred[DeleteOutcome]:
        return Deferred.fromCoroutine(deleted(key, version_id, delete(key, version_id)))

    gathered: Deferred[list[DeleteOutcome]] = gatherResults(
        [semaphore.run(one, key, version_id) for key, version_id in keys],
        consumeErrors=True,
    )
    return gathered.addCallback(lambda outcomes: list(outcomes))
