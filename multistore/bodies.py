# -*- test-case-name: tests.unit.test_bodies -*-
"""
Bodies: how bytes move through the gateway, for every layer.

L{IBody} is the contract of a body that streams out of a store (a backend's
response, a file); C{twisted.web.iweb.IBodyProducer} is that of one that
streams in (a client's upload). This module has the small implementations
every layer shares (bodies from bytes, an L{IBody} as an
C{IBodyProducer}, collectors for small bodies with a size limit) and the
buffer size of the connections at both ends. It imports nothing from the
layers above it: the web layer, the gateway, operations, stores and the
forwarder all import it.

L{IBody} is declared here rather than in L{multistore.interfaces} because
the values of L{multistore.model} carry bodies, and every interface there
exchanges those values: the arrows run interfaces -> model -> bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from attrs import define
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IConsumer, IProducer, IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import Attribute, Interface, implementer

from multistore.s3.errors import S3Error

#: Bytes read from a connection at once, and queued for writing to it before
#: its producer is paused (Twisted's C{bufferSize}, 64 KiB by default). Each
#: chunk is a trip through the protocol stack, and each pause and resume an
#: epoll update: at 64 KiB a 256 MiB GET cost the daemon 0.45 CPU seconds,
#: at 256 KiB 0.28. Larger buffers saved no more, and cost memory: 16
#: concurrent uploads peaked at 78 MiB RSS with 256 KiB, 126 MiB with 1 MiB.
CONNECTION_BUFFER = 256 * 1024

#: Bytes written per call by L{BytesBody}.
_CHUNK = 64 * 1024


def enlarge_buffers(transport: object, size: int = CONNECTION_BUFFER) -> None:
    """
    Read and queue up to ``size`` bytes at a time on a connection: set the
    C{bufferSize} of ``transport`` and of every transport below it (TLS over
    TCP).

    :param transport: a connection's transport.
    :param size: the buffer size.
    """
    seen = 0
    while transport is not None and seen < 4:
        if isinstance(getattr(transport, "bufferSize", None), int):
            transport.bufferSize = size  # type: ignore[attr-defined]
        transport = getattr(transport, "transport", None)
        seen += 1


class IBody(Interface):
    """
    A body that streams out of a store (a backend's response, a file) and is
    never held whole in memory: the outgoing counterpart of
    C{twisted.web.iweb.IBodyProducer}.

    B{Ownership.} A body belongs to whoever holds the value that carries it
    (an L{multistore.model.ObjectResponse}, then a
    L{multistore.model.Response}). Its owner calls exactly one of
    L{deliver} or L{discard}, once. An owner that will not pass the body on
    (a HEAD or 304 answer, an error found after the store answered, a client
    that has gone away) discards it, so the backend connection or file is
    released at once rather than when it times out. A body handed onwards
    (to a store, wrapped as an C{IBodyProducer} for a streamed copy) stays
    its owner's until the receiver starts reading it: a store that fails
    before starting a body it was given leaves it alone, and the caller
    releases it.

    B{Second calls.} L{discard} may always be called, from clean-up code
    for instance: after L{deliver} or a first L{discard} it does nothing (a
    delivery in progress is stopped by cancelling its Deferred). A second
    L{deliver}, or one after L{discard}, is a programming error: it raises
    C{RuntimeError} and does not disturb the first.

    B{Re-entrancy.} L{deliver} may write to the consumer, and its Deferred
    may fire, before it returns. The consumer may call C{pauseProducing},
    C{resumeProducing} and C{stopProducing} on the registered producer at
    any time, from inside C{write} included: after C{pauseProducing} the
    body writes nothing until C{resumeProducing}; after C{stopProducing} it
    writes nothing more, releases its source, and its delivery fails with
    L{DeliveryStopped}.
    """

    length = Attribute(
        "The number of bytes the body will deliver, or None if not known in advance."
    )

    def deliver(consumer: IConsumer) -> Deferred[int]:
        """
        Write the body to ``consumer``.

        The body registers a streaming (push) producer with ``consumer``
        before writing, so a consumer that cannot keep up pauses it, and
        unregisters it before the returned Deferred fires (except after the
        consumer's own C{stopProducing}).

        :return: a Deferred that fires with the number of bytes written once
            the whole body has been written. It fails if the body could not
            be delivered in full: with L{multistore.s3.errors.S3Error}
            (``ServiceUnavailable``, ``GatewayTimeout``) if the source failed
            or was cut short, with L{DeliveryStopped} if the consumer stopped
            it. Cancelling it stops the source and releases it (closes the
            backend connection, the file); it then fails with
            C{CancelledError}.
        """

    def discard() -> None:
        """
        Release the body without reading it: a small remainder may be read
        and dropped so a connection can be reused; anything else is closed.
        Does nothing once the body has been delivered or discarded.
        """


#: A response body no longer than this many bytes is read and dropped by
#: L{AgentBody.discard} so that its connection can be reused; a longer one (or
#: one of unknown length) is cut off by closing the connection instead.
SMALL_BODY = 64 * 1024


class DeliveryStopped(Exception):
    """
    The consumer of a body asked it to stop (by calling C{stopProducing}, as
    a web request does when its client goes away) before it was complete.
    """


@implementer(IBody, IPushProducer)
@define
class BytesBody:
    """
    A body held in memory, written in chunks that honour pause and resume.

    For responses the gateway builds itself, and for tests.
    """

    _data: bytes
    _chunk_size: int = _CHUNK
    _consumer: IConsumer | None = None
    _done: Deferred[int] | None = None
    _offset: int = 0
    _paused: bool = False
    _pumping: bool = False
    _finished: bool = False
    _used: bool = False

    log = Logger()

    @property
    def length(self) -> int:
        """
        The number of bytes held.
        """
        return len(self._data)

    def deliver(self, consumer: IConsumer) -> Deferred[int]:
        """
        Write the bytes to ``consumer``, registered as its push producer.

        :return: a Deferred that fires with the number of bytes written; it
            fails with L{DeliveryStopped} if the consumer stops the body and
            C{CancelledError} if cancelled.
        :raise RuntimeError: if the body was already delivered or discarded.
        """
        if self._used:
            raise RuntimeError("a body can be delivered or discarded only once")
        self._used = True
        self._consumer = consumer
        done: Deferred[int] = Deferred(self._cancel)
        self._done = done
        consumer.registerProducer(self, True)
        self._pump()
        return done

    def discard(self) -> None:
        """
        Drop the body, unless it was delivered or discarded already.
        """
        if self._used:
            return
        self._used = True
        self._finished = True

    def pauseProducing(self) -> None:
        """
        Stop writing until resumed.
        """
        self._paused = True

    def resumeProducing(self) -> None:
        """
        Carry on writing.
        """
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        """
        Stop for good; the delivery fails with L{DeliveryStopped}.
        """
        if self._finished:
            return
        self._finished = True
        if self._done is not None:
            self._done.errback(DeliveryStopped())

    def _pump(self) -> None:
        if self._pumping or self._consumer is None:
            return
        self._pumping = True
        try:
            while not self._paused and not self._finished:
                if self._offset >= len(self._data):
                    self._finished = True
                    self._consumer.unregisterProducer()
                    assert self._done is not None
                    self._done.callback(len(self._data))
                    break
                chunk = self._data[self._offset : self._offset + self._chunk_size]
                self._offset += len(chunk)
                self._consumer.write(chunk)
        finally:
            self._pumping = False

    def _cancel(self, done: Deferred[int]) -> None:
        if self._finished:
            return
        self._finished = True
        if self._consumer is not None:
            release_consumer(self._consumer, self.log)


@implementer(IBodyProducer)
@define
class BytesProducer:
    """
    A request body held in memory, written in one go (for small bodies: XML
    requests, empty bodies with a length).
    """

    _data: bytes

    @property
    def length(self) -> int:
        """
        The number of bytes, sent as ``Content-Length``.
        """
        return len(self._data)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """
        Write the bytes to ``consumer``.

        :return: a Deferred that has already fired.
        """
        if self._data:
            consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:
        """
        Nothing to pause: everything is written at once.
        """

    def resumeProducing(self) -> None:
        """
        Nothing to resume.
        """

    def stopProducing(self) -> None:
        """
        Nothing to stop.
        """


@implementer(IBodyProducer, IConsumer)
class BodyAsProducer:
    """
    An L{IBody} (a response, say) as an C{IBodyProducer} (a request body), so
    an object read from one store can be written to another as it streams.

    The body registers its push producer with this adapter rather than with
    the real consumer, which for a request body must not see
    C{registerProducer}; pause, resume and stop reach the body through it.
    """

    def __init__(self, body: IBody) -> None:
        self._body = body
        self.length = UNKNOWN_LENGTH if body.length is None else body.length
        self._consumer: IConsumer | None = None
        self._producer: IPushProducer | None = None
        self._delivery: Deferred[int] | None = None
        self._started = False
        self._stopped = False

    # The consumer side, for the body.
    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        # Bodies register push producers (the IBody contract).
        self._producer = cast(IPushProducer, producer)

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        if self._consumer is not None and not self._stopped:
            self._consumer.write(data)

    # The producer side, for the request.
    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self._started = True
        self._consumer = consumer
        done: Deferred[None] = Deferred(lambda _: self.stopProducing())

        def settle(result: object) -> None:
            # After stopProducing the Deferred must never fire.
            if self._stopped or done.called:
                return
            if isinstance(result, Failure):
                done.errback(result)
            else:
                done.callback(None)

        self._delivery = self._body.deliver(self)
        self._delivery.addBoth(settle)
        return done

    def pauseProducing(self) -> None:
        if self._producer is not None:
            self._producer.pauseProducing()

    def resumeProducing(self) -> None:
        if self._producer is not None:
            self._producer.resumeProducing()

    def stopProducing(self) -> None:
        self._stopped = True
        delivery, self._delivery = self._delivery, None
        if delivery is not None and not delivery.called:
            delivery.cancel()

    def release(self) -> None:
        """
        Let the body go if it was never read (the write failed before it
        started), so its backend connection is not held open.
        """
        if not self._started:
            self._started = True
            self._body.discard()


@implementer(IConsumer)
class _Collector:
    """
    Gathers a small body in memory, and stops it as soon as it has sent more
    than ``limit`` bytes.

    :ivar done: fires with the bytes once the body has ended, or fails with
        the body's failure, or with ``oversized`` the moment the limit is
        passed (whatever the body does after that is ignored).
    """

    def __init__(
        self, limit: int, oversized: S3Error, stop: Callable[[], None] | None
    ) -> None:
        self._limit = limit
        self._oversized = oversized
        self._stop = stop
        self._chunks: list[bytes] = []
        self._size = 0
        self._producer: IProducer | None = None
        self.done: Deferred[bytes] = Deferred()

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._producer = producer

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        if self.done.called:
            return
        self._size += len(data)
        if self._size <= self._limit:
            self._chunks.append(data)
            return
        self._chunks = []
        # Fail first: stopping the body may end its delivery at once, with a
        # failure of its own that the caller must not see instead.
        self.done.errback(self._oversized)
        if self._stop is not None:
            self._stop()
        elif self._producer is not None:
            self._producer.stopProducing()

    def finished(self, result: object) -> None:
        """
        The body has ended: deliver what was gathered, or its failure.
        """
        if self.done.called:
            return
        if isinstance(result, Failure):
            self.done.errback(result)
        else:
            self.done.callback(b"".join(self._chunks))


def _gather(
    start: Callable[[IConsumer], Deferred[Any]],
    length: object,
    limit: int,
    oversized: S3Error,
    stop: Callable[[], None] | None,
) -> Deferred[bytes]:
    if isinstance(length, int) and length > limit:
        return fail(oversized)
    collector = _Collector(limit, oversized, stop)
    started: list[Deferred[Any]] = []
    done: Deferred[bytes] = Deferred(lambda _: started[0].cancel())
    collector.done.chainDeferred(done)
    source = start(collector)
    started.append(source)
    source.addBoth(collector.finished)
    return done


def read_body(body: IBody, limit: int) -> Deferred[bytes]:
    """
    Read a whole small body from a backend (an XML listing, an error
    document) into memory.

    :param body: any body.
    :param limit: the most bytes accepted.
    :return: a Deferred that fires with the bytes, or fails with L{S3Error}
        ``ServiceUnavailable`` if the body is longer than ``limit`` (the body
        is stopped, or discarded unread if its length says so), or with
        whatever the body's delivery failed with. Cancelling it cancels the
        delivery.
    """
    if body.length is not None and body.length > limit:
        body.discard()
    return _gather(
        body.deliver,
        body.length,
        limit,
        S3Error("ServiceUnavailable", "the backend store sent an oversized response"),
        None,
    )


def collect(body: IBodyProducer, limit: int) -> Deferred[bytes]:
    """
    Read a small request body to its end, in memory: an upload whose payload
    is empty (it must be verified before a store is asked to write it), a
    small XML request body, an STS form.

    :param body: the body, not yet started.
    :param limit: the most bytes accepted.
    :return: a Deferred that fires with the bytes once the body has
        finished, or fails as the body does, or with L{S3Error}
        ``MaxMessageLengthExceeded`` as soon as it is longer than ``limit``
        (the body is then stopped, or never started if its length says so).
        Cancelling it cancels the body.
    """
    return _gather(
        body.startProducing,
        body.length,
        limit,
        S3Error("MaxMessageLengthExceeded"),
        body.stopProducing,
    )


def release_consumer(consumer: IConsumer, log: Logger) -> None:
    """
    Unregister the producer of ``consumer``; a consumer that has already gone
    away (a web request whose client disconnected) may refuse, which is
    harmless.
    """
    try:
        consumer.unregisterProducer()
    except Exception as error:
        log.debug(
            "could not unregister a body from its consumer: {error!r}", error=error
        )
