# -*- test-case-name: tests.unit.test_local_writes -*-
"""
Receiving a body: L{_Receiver} writes it into a temporary file in the
thread pool as it arrives, pausing the sender while a write is in flight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IConsumer,
    IProducer,
    IPushProducer,
    IReactorFromThreads,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from multistore.s3.errors import S3Error
from multistore.stores.local.files import _call_in_pool
from multistore.stores.local.tree import _TempFile

if TYPE_CHECKING:
    from twisted.web.iweb import IBodyProducer


@implementer(IConsumer)
@define(eq=False)
class _Receiver:
    """
    Writes a body into a temporary file as it arrives: the consumer of the
    body's producer.

    Each chunk is written in the thread pool, one write at a time; while a
    write is in flight, chunks that arrive are queued and the producer is
    paused, and it is resumed when the write completes, so at most a few
    chunks are ever held. If the body fails, is stopped, or a write fails,
    the temporary file is removed (once no write is in flight) and
    L{receive}'s Deferred fails.
    """

    log = Logger()

    _body: IBodyProducer
    _temp: _TempFile
    _reactor: IReactorFromThreads
    _threadpool: ThreadPool

    _producer: IPushProducer | None = field(default=None, init=False)
    _pending: list[bytes] = field(factory=list, init=False)
    _writing: bool = field(default=False, init=False)
    _paused: bool = field(default=False, init=False)
    _body_done: bool = field(default=False, init=False)
    _settled: bool = field(default=False, init=False)
    _discarded: bool = field(default=False, init=False)
    _failure: Failure | None = field(default=None, init=False)
    _result: Deferred[_TempFile] | None = field(default=None, init=False)

    def receive(self) -> Deferred[_TempFile]:
        """
        Start the body and write all of it.

        :return: a Deferred that fires with the temporary file (still open,
            for the commit to flush and close) once every byte is written, or fails
            with the body's failure, the write's, or ``IncompleteBody`` if
            the body was shorter or longer than it announced. Cancelling it
            stops the body and removes the file.
        """
        result: Deferred[_TempFile] = Deferred(self._cancel)
        self._result = result
        try:
            done = self._body.startProducing(self)
        except Exception:
            self._body_done = True
            self._give_up(Failure())
            return result
        done.addCallbacks(self._body_finished, self._body_failed)
        return result

    # IConsumer

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """
        A push producer that registers itself is the one paused and
        resumed (otherwise the body is).
        """
        if IPushProducer.providedBy(producer):
            self._producer = producer

    def unregisterProducer(self) -> None:
        """
        Forget a registered producer.
        """
        self._producer = None

    def write(self, data: bytes) -> None:
        """
        Queue a chunk and write it, pausing the producer while a write is
        in flight.
        """
        if self._settled or not data:
            return
        self._pending.append(data)
        if self._writing:
            self._pause()
        else:
            self._flush()

    # the writes

    def _flush(self) -> None:
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        self._writing = True
        _call_in_pool(
            self._reactor, self._threadpool, self._temp.append, data
        ).addCallbacks(self._wrote, self._write_failed)

    def _wrote(self, _: None) -> None:
        self._writing = False
        if self._settled:
            self._discard()
            return
        if self._pending:
            self._flush()
        self._resume()
        self._finish_if_done()

    def _write_failed(self, reason: Failure) -> None:
        self._writing = False
        if self._settled:
            self._discard()
            return
        self._give_up(reason)

    # the body

    def _body_finished(self, _: object) -> None:
        if self._settled:
            return
        self._body_done = True
        self._finish_if_done()

    def _body_failed(self, reason: Failure) -> None:
        if self._settled:
            return
        self._body_done = True
        self._give_up(reason)

    def _control(self) -> IPushProducer:
        return self._producer if self._producer is not None else self._body

    def _pause(self) -> None:
        if self._paused or self._body_done:
            return
        self._paused = True
        self._control().pauseProducing()

    def _resume(self) -> None:
        if not self._paused or self._body_done:
            return
        self._paused = False
        self._control().resumeProducing()

    def _stop_body(self) -> None:
        if self._body_done:
            return
        self._body_done = True
        try:
            self._body.stopProducing()
        except Exception:
            self.log.failure("a body refused to stop")

    # the outcome

    def _finish_if_done(self) -> None:
        if not self._body_done or self._writing or self._pending or self._settled:
            return
        length = self._body.length
        if isinstance(length, int) and length != self._temp.size:
            self._give_up(
                Failure(
                    S3Error(
                        "IncompleteBody",
                        f"The body announced {length} bytes and delivered {self._temp.size}.",
                    )
                )
            )
            return
        self._settled = True
        assert self._result is not None
        self._result.callback(self._temp)

    def _give_up(self, reason: Failure) -> None:
        self._settled = True
        self._failure = reason
        self._pending = []
        self._stop_body()
        self._discard()

    def _cancel(self, _: Deferred[_TempFile]) -> None:
        # The Deferred fails with CancelledError once this returns.
        if self._settled:
            return
        self._settled = True
        self._pending = []
        self._stop_body()
        self._discard()

    def _discard(self) -> None:
        """
        Remove the temporary file once no write is in flight, then report
        the failure, if any.
        """
        if self._writing or self._discarded:
            return
        self._discarded = True
        discarding = _call_in_pool(self._reactor, self._threadpool, self._temp.discard)

        def report(outcome: object) -> None:
            if isinstance(outcome, Failure):
                self.log.failure("could not remove a temporary file", outcome)
            result = self._result
            if self._failure is not None and result is not None and not result.called:
                result.errback(self._failure)

        discarding.addBoth(report)
