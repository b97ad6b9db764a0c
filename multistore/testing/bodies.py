# -*- test-case-name: tests.unit.test_testing -*-
"""
Bodies a test drives by hand: a request body (L{ControlledProducer}), a
response body (L{ControlledBody}), a body in memory that records how it
was released (L{RecordingBody}), and a consumer that keeps what it is
given (L{CollectingConsumer}).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, cast

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IConsumer,
    IProducer,
    IPushProducer,
)
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from multistore.bodies import BytesBody, DeliveryStopped, IBody


@define(eq=False)
class _Pausable:
    """
    Records how a producer was paused and resumed.

    :ivar paused: whether it is paused now.
    :ivar pauses: how often it was paused.
    :ivar resumes: how often it was resumed.
    """

    paused: bool = field(default=False, kw_only=True)
    pauses: int = field(default=0, kw_only=True)
    resumes: int = field(default=0, kw_only=True)

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


@implementer(IBodyProducer)
@define(eq=False)
class ControlledProducer(_Pausable):
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
    :ivar script: pieces to write as soon as it is started, before ending
        (see L{sending}).
    """

    length: int | object = UNKNOWN_LENGTH
    consumer: IConsumer | None = None
    done: Deferred[None] | None = None
    stopped: bool = False
    cancelled: bool = False
    sent: bytes = b""

    script: Sequence[bytes] | None = field(default=None, kw_only=True)

    @classmethod
    def sending(
        cls, data: bytes, chunk_size: int, length: int | object | None = None
    ) -> ControlledProducer:
        """
        A body that arrives whole: as soon as it is started, it writes
        ``data`` in pieces of ``chunk_size`` bytes, and ends.

        :param length: the length to announce, if not the data's own.
        """
        return cls(
            len(data) if length is None else length,
            script=[data[i : i + chunk_size] for i in range(0, len(data), chunk_size)],
        )

    @property
    def started(self) -> bool:
        """
        Whether a consumer started it.
        """
        return self.consumer is not None

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """
        Remember the consumer; nothing is written until L{send}, unless the
        body was made to send its L{script} at once.
        """
        if self.consumer is not None:
            raise RuntimeError("a request body can be read only once")
        self.consumer = consumer
        done: Deferred[None] = Deferred(self._cancel)
        self.done = done
        if self.script is not None:
            self.send(*self.script)
            self.finish()
        return done

    def _cancel(self, _: Deferred[None]) -> None:
        self.cancelled = True

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
class ControlledBody(_Pausable):
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
    :ivar resumes: how often it was resumed.
    """

    length: int | None = None
    consumer: IConsumer | None = None
    done: Deferred[int] | None = None
    discarded: bool = False
    cancelled: bool = False
    stopped: bool = False
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
    and can pause that producer after a given number of writes (or after
    every write), or act on each write.

    :ivar pause_after: pause the registered producer after this many
        writes.
    :ivar pause_on_write: pause the registered producer after every write.
    :ivar strict: fail (with C{AssertionError}) a write made while no
        producer is registered, a registration while one is, and an
        unregistration while none is: what L{IBody} forbids.
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
    :ivar events: ``"register"``, ``"write"`` and ``"unregister"``, one per
        call, in order (a test may add its own, to order them among
        these).
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
    pause_on_write: bool = False
    strict: bool = False
    events: list[str] = field(factory=list)

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """
        Remember the producer.
        """
        if self.strict and self.producer is not None:
            raise AssertionError("a producer registered while one was")
        self.events.append("register")
        self.registrations += 1
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self) -> None:
        """
        Forget the producer.
        """
        if self.strict and self.producer is None:
            raise AssertionError("no producer was registered")
        self.events.append("unregister")
        self.unregistrations += 1
        self.producer = None

    def write(self, data: bytes) -> None:
        """
        Keep ``data``; pause the producer after the chosen write.
        """
        self.events.append("write")
        if self.producer is None:
            self.writes_without_producer += 1
        self.chunks.append(data)
        self.received += len(data)
        if self.strict and self.producer is None:
            raise AssertionError("a write without a registered producer")
        if self.producer is not None and (
            self.pause_on_write
            or (self.pause_after is not None and len(self.chunks) == self.pause_after)
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
