# -*- test-case-name: tests.unit.test_stores_streaming -*-
"""
The streaming toolkit every store shares: how a body reaches a backend.

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

Which headers cross between client and backend is in
L{multistore.stores.object_headers}; the rest the stores share (coroutine
methods, copies, deletes, error bodies) is in L{multistore.stores.common}.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, ParamSpec, TypeVar

from attrs import define, field, frozen
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    fail,
    succeed,
)
from twisted.internet.interfaces import IConsumer, IProducer
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from multistore.s3.errors import S3Error

_T = TypeVar("_T")
_P = ParamSpec("_P")


# --- header names --------------------------------------------------------------


# --- backends ------------------------------------------------------------------


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


# --- deletes -------------------------------------------------------------------
