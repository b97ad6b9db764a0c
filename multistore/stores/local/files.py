# -*- test-case-name: tests.unit.test_local -*-
"""
Streaming a file: the open file a read serves (L{ReadableFile}, L{OpenFile},
and the nothing behind a directory marker), the body that streams it to a
consumer one thread-pool read at a time (L{FileBody}), and the helper that
runs a call in that pool.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final, Protocol, TypeVar

from attrs import define, field
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer, IPushProducer, IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from multistore.bodies import DeliveryStopped, IBody

_T = TypeVar("_T")

#: Bytes read from a file per thread-pool call while streaming.
CHUNK_SIZE: Final = 256 * 1024


class ReadableFile(Protocol):
    """
    An open file a L{FileBody} streams from. Both methods block, so they are
    only ever called in the thread pool, one at a time.
    """

    def read_at(self, offset: int, size: int) -> bytes:
        """
        :return: up to ``size`` bytes from ``offset``; fewer only at the end
            of the file.
        """

    def close(self) -> None:
        """
        Release the file.
        """


@define
class OpenFile:
    """
    A file opened for reading by descriptor.

    :ivar fd: the file descriptor.
    """

    fd: int

    def read_at(self, offset: int, size: int) -> bytes:
        """
        Read without moving a shared file position.

        :return: up to ``size`` bytes from ``offset``.
        """
        return os.pread(self.fd, size, offset)

    def close(self) -> None:
        """
        Close the descriptor.
        """
        os.close(self.fd)


def _call_in_pool(
    reactor: IReactorFromThreads,
    threadpool: ThreadPool,
    f: Callable[..., _T],
    *args: object,
) -> Deferred[_T]:
    return deferToThreadPool(reactor, threadpool, f, *args)


@implementer(IBody, IPushProducer)
@define
class FileBody:
    """
    A streaming body over an open file: reads ``length`` bytes from
    ``offset`` in chunks, each read in the thread pool, and writes each to the
    consumer as a push producer.

    At most one read is in flight at a time; none is started while the
    consumer has paused the body (a chunk that arrives during a pause is held
    until it resumes). The file is closed exactly once, in the thread pool:
    after the last byte, on failure, on cancellation, on ``stopProducing``
    or on L{discard}.

    :ivar length: the number of bytes the body delivers.
    """

    log = Logger()

    _file: ReadableFile
    _offset: int
    length: int
    _reactor: IReactorFromThreads
    _threadpool: ThreadPool
    _chunk_size: int = CHUNK_SIZE

    _started: bool = field(default=False, init=False)
    _consumer: IConsumer | None = field(default=None, init=False)
    _result: Deferred[int] | None = field(default=None, init=False)
    _registered: bool = field(default=False, init=False)
    _paused: bool = field(default=False, init=False)
    _reading: bool = field(default=False, init=False)
    _stopped: bool = field(default=False, init=False)
    _closed: bool = field(default=False, init=False)
    _held: bytes | None = field(default=None, init=False)
    _written: int = field(default=0, init=False)

    def deliver(self, consumer: IConsumer) -> Deferred[int]:
        """
        Write the body to ``consumer``; see L{IBody.deliver}.

        :return: a Deferred firing with the number of bytes written once
            every byte was written and the file closed. It fails if the file
            cannot be read or ends early, with L{DeliveryStopped} if the
            consumer stops the body, and with C{CancelledError} if
            cancelled.
        """
        if self._started:
            raise RuntimeError("this body was already delivered or discarded")
        self._started = True
        self._consumer = consumer
        self._result = Deferred(self._cancel)
        consumer.registerProducer(self, True)
        self._registered = True
        self._next()
        return self._result

    def discard(self) -> None:
        """
        Close the file without reading it; see L{IBody.discard}. Does nothing
        once delivery has started (delivery closes the file itself).
        """
        if self._started:
            return
        self._started = True
        self._stopped = True
        self._release()

    def pauseProducing(self) -> None:
        """
        Start no further read until L{resumeProducing}.
        """
        self._paused = True

    def resumeProducing(self) -> None:
        """
        Continue: write any chunk held during the pause, then read on.
        """
        if self._stopped:
            return
        self._paused = False
        self._next()

    def stopProducing(self) -> None:
        """
        The consumer is going away: read no more, close the file, and fail
        the delivery with L{DeliveryStopped}. The consumer has already dropped
        this producer, so it is not unregistered.
        """
        if self._stopped:
            return
        self._stopped = True
        self._held = None
        self._registered = False
        self._release()
        self._settle(DeliveryStopped())

    def _next(self) -> None:
        if self._stopped or self._paused or self._reading:
            return
        if self._held is not None:
            data, self._held = self._held, None
            self._write(data)
            return
        remaining = self.length - self._written
        if remaining <= 0:
            self._finish(None)
            return
        self._reading = True
        reading = _call_in_pool(
            self._reactor,
            self._threadpool,
            self._file.read_at,
            self._offset + self._written,
            min(self._chunk_size, remaining),
        )
        reading.addCallbacks(self._read, self._read_failed)

    def _read(self, data: bytes) -> None:
        self._reading = False
        if self._stopped:
            self._release()
            return
        if not data:
            self._finish(OSError("the file ended before the body did"))
            return
        if self._paused:
            self._held = data
            return
        self._write(data)

    def _read_failed(self, reason: Failure) -> None:
        self._reading = False
        if self._stopped:
            self._release()
            return
        self._finish(reason)

    def _write(self, data: bytes) -> None:
        assert self._consumer is not None
        self._written += len(data)
        try:
            self._consumer.write(data)
        except Exception as e:
            self._finish(e)
            return
        self._next()

    def _finish(self, failure: Failure | Exception | None) -> None:
        """
        End delivery: close the file, then unregister and fire the result.
        """
        self._stopped = True
        closed = self._release()

        def settle(_: object) -> None:
            self._unregister()
            self._settle(self._written if failure is None else failure)

        closed.addBoth(settle)

    def _cancel(self, result: Deferred[int]) -> None:
        # The Deferred fails with CancelledError once this returns.
        self._stopped = True
        self._held = None
        self._unregister()
        self._release()

    def _settle(self, outcome: int | Failure | Exception) -> None:
        if self._result is None or self._result.called:
            return
        if isinstance(outcome, Failure | Exception):
            self._result.errback(outcome)
        else:
            self._result.callback(outcome)

    def _unregister(self) -> None:
        if not self._registered or self._consumer is None:
            return
        self._registered = False
        try:
            self._consumer.unregisterProducer()
        except Exception:
            # A consumer that has gone away may refuse; there is nothing left
            # to unregister from.
            self.log.debug("the consumer refused to unregister the body")

    def _release(self) -> Deferred[None]:
        """
        Close the file, once, and only when no read is in flight (a read
        that is in flight closes it when it returns).

        :return: a Deferred that fires once the file is closed (at once if
            the close is left to an in-flight read or already done).
        """
        if self._closed or self._reading:
            return succeed(None)
        self._closed = True
        closing = _call_in_pool(self._reactor, self._threadpool, self._file.close)

        def failed(reason: Failure) -> None:
            self.log.failure("could not close a file being served", reason)

        closing.addErrback(failed)
        return closing


@define
class _NoFile:
    """
    The file behind a directory marker: nothing to read.
    """

    def read_at(self, offset: int, size: int) -> bytes:
        """
        :return: nothing.
        """
        return b""

    def close(self) -> None:
        """
        Nothing to release.
        """
