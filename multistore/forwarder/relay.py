# -*- test-case-name: tests.unit.test_forwarder -*-
"""
Moving bodies between a backend connection and the gateway: the backend's
response body as an L{IBody} (L{AgentBody}), with backpressure both ways,
the idle and header deadlines, and what becomes of a body nobody reads
(drained for reuse when small, cut off when not).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IProtocol,
    IPushProducer,
    IReactorTime,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

from multistore.bodies import SMALL_BODY, DeliveryStopped, IBody, release_consumer
from multistore.s3.errors import S3Error


def describe_failure(failure: Failure) -> str:
    """
    :return: a one-line account of ``failure``, looking inside Twisted's
        wrapper exceptions that hold a list of underlying failures.
    """
    reasons = getattr(failure.value, "reasons", None)
    if isinstance(reasons, list) and reasons:
        inner = "; ".join(
            describe_failure(r) if isinstance(r, Failure) else repr(r) for r in reasons
        )
        return f"{type(failure.value).__name__}: {inner}"
    return f"{type(failure.value).__name__}: {failure.getErrorMessage()}"


def deliver_response_body(response: IResponse, protocol: IProtocol) -> None:
    response.deliverBody(protocol)


def timeout_text(seconds: float) -> str:
    return f"{seconds:g}"


@define
class HeaderTimer:
    """
    The deadline for a backend's response headers.

    It runs from the start of the request until the headers arrive, except
    while the request body is being sent and the backend is keeping up with
    it: then the pace is the client's, not the backend's. While the backend
    holds back a request body (the socket is full, so the body producer is
    paused) the timer runs, restarting at each pause.
    """

    _clock: IReactorTime
    _timeout: float
    _on_expiry: Callable[[], None]
    _call: IDelayedCall | None = None
    _sending_body: bool = False
    _body_paused: bool = False
    _stopped: bool = False
    expired: bool = False

    def _update(self) -> None:
        run = not self._stopped and (not self._sending_body or self._body_paused)
        if run and self._call is None:
            self._call = self._clock.callLater(self._timeout, self._expire)
        elif not run and self._call is not None:
            self._call.cancel()
            self._call = None

    def _expire(self) -> None:
        self._call = None
        self._stopped = True
        self.expired = True
        self._on_expiry()

    def start(self) -> None:
        """
        Start timing the request.
        """
        self._update()

    def body_started(self) -> None:
        """
        The request body has started to flow.
        """
        self._sending_body = True
        self._update()

    def body_paused(self) -> None:
        """
        The backend stopped taking request body bytes.
        """
        self._body_paused = True
        self._update()

    def body_resumed(self) -> None:
        """
        The backend takes request body bytes again.
        """
        self._body_paused = False
        self._update()

    def body_sent(self) -> None:
        """
        The request body has been sent in full.
        """
        self._sending_body = False
        self._update()

    def stop(self) -> None:
        """
        Stop timing for good.
        """
        self._stopped = True
        self._update()


@implementer(IBodyProducer)
@define
class WatchedBodyProducer:
    """
    A request body producer that tells a L{HeaderTimer} how the body flows.
    """

    _inner: IBodyProducer
    _timer: HeaderTimer

    @property
    def length(self) -> object:
        """
        The wrapped producer's length.
        """
        return self._inner.length

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """
        Start the wrapped producer; note when it has finished.

        :return: a Deferred that fires when the wrapped producer's does.
            Cancelling it (the agent does when the request is aborted) also
            calls the wrapped producer's C{stopProducing}, so a producer that
            only watches for that still stops.
        """
        self._timer.body_started()
        produced: Deferred[None] = self._inner.startProducing(consumer)

        def cancel(d: Deferred[None]) -> None:
            self._inner.stopProducing()
            produced.cancel()

        result: Deferred[None] = Deferred(cancel)

        def sent(outcome: None) -> None:
            self._timer.body_sent()
            if not result.called:
                result.callback(None)

        def failed(failure: Failure) -> None:
            if not result.called:
                result.errback(failure)

        produced.addCallbacks(sent, failed)
        return result

    def pauseProducing(self) -> None:
        """
        Pause the wrapped producer.
        """
        self._timer.body_paused()
        self._inner.pauseProducing()

    def resumeProducing(self) -> None:
        """
        Resume the wrapped producer.
        """
        self._timer.body_resumed()
        self._inner.resumeProducing()

    def stopProducing(self) -> None:
        """
        Stop the wrapped producer.
        """
        self._inner.stopProducing()


@implementer(IProtocol, IPushProducer)
@define
class _BodyPump:
    """
    Moves one response body from the backend connection to a consumer.

    It is the response's body protocol and, registered with the consumer, the
    consumer's push producer: pausing it pauses the backend socket. An idle
    timer fails the delivery if the backend goes silent while the consumer
    is ready for more.
    """

    _consumer: IConsumer
    _clock: IReactorTime
    _timeout: float
    _where: str
    _method: str
    done: Deferred[int] = field(init=False)
    paused: bool = False
    _transport: IPushProducer | None = None
    _finished: bool = False
    _count: int = 0
    _timer: IDelayedCall | None = None

    log = Logger()

    def __attrs_post_init__(self) -> None:
        self.done = Deferred(self._cancel)

    # IProtocol, called by the response.

    def makeConnection(self, transport: object) -> None:
        """
        Take the response's transport and start delivering.
        """
        self._transport = cast(IPushProducer, transport)
        self.connectionMade()

    def connectionMade(self) -> None:
        """
        Register with the consumer and start the idle timer.
        """
        self._consumer.registerProducer(self, True)
        self._restart_timer()

    def dataReceived(self, data: bytes) -> None:
        """
        Pass a chunk of the body straight on.
        """
        if self._finished:
            return
        self._count += len(data)
        self._restart_timer()
        self._consumer.write(data)

    def connectionLost(self, reason: Failure) -> None:
        """
        The body has ended, completely or not.
        """
        if self._finished:
            return
        if isinstance(reason.value, (ResponseDone, PotentialDataLoss)):
            self._end(None, stop_transport=False)
            return
        self.log.warn(
            "backend {method} {url} closed the connection mid-body after "
            "{count} bytes: {reason}",
            method=self._method,
            url=self._where,
            count=self._count,
            reason=describe_failure(reason),
        )
        self._end(
            S3Error(
                "ServiceUnavailable",
                "the backend store closed the connection mid-body",
            ),
            stop_transport=False,
        )

    # IPushProducer, called by the consumer.

    def pauseProducing(self) -> None:
        """
        Pause the backend socket; the idle timer is suspended meanwhile.
        """
        self.paused = True
        self._stop_timer()
        if self._transport is not None and not self._finished:
            self._transport.pauseProducing()

    def resumeProducing(self) -> None:
        """
        Resume the backend socket and the idle timer.
        """
        self.paused = False
        if self._transport is not None and not self._finished:
            self._transport.resumeProducing()
            self._restart_timer()

    def stopProducing(self) -> None:
        """
        The consumer is going away: close the backend connection and fail
        the delivery with L{DeliveryStopped}.
        """
        if self._finished:
            return
        self._finished = True
        self._stop_timer()
        if self._transport is not None:
            self._transport.stopProducing()
        self.done.errback(DeliveryStopped())

    # Internals.

    def _restart_timer(self) -> None:
        if self._finished or self.paused:
            return
        if self._timer is not None and self._timer.active():
            self._timer.reset(self._timeout)
        else:
            self._timer = self._clock.callLater(self._timeout, self._idle)

    def _stop_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _idle(self) -> None:
        self._timer = None
        self.log.warn(
            "backend {method} {url} was silent for {timeout} seconds mid-body",
            method=self._method,
            url=self._where,
            timeout=self._timeout,
        )
        self._end(
            S3Error(
                "GatewayTimeout",
                "the backend store was silent for "
                f"{timeout_text(self._timeout)} seconds mid-body",
            ),
            stop_transport=True,
        )

    def _cancel(self, done: Deferred[int]) -> None:
        if self._finished:
            return
        self._finished = True
        self._stop_timer()
        release_consumer(self._consumer, self.log)
        if self._transport is not None:
            self._transport.stopProducing()

    def _end(self, error: BaseException | None, *, stop_transport: bool) -> None:
        self._finished = True
        self._stop_timer()
        release_consumer(self._consumer, self.log)
        if stop_transport and self._transport is not None:
            self._transport.stopProducing()
        if error is None:
            self.done.callback(self._count)
        else:
            self.done.errback(error)

    def repause(self) -> None:
        """
        Pause the backend socket again if the consumer paused us while the
        response was still setting up (the response resumes its transport
        once the body protocol is connected).
        """
        if self.paused and not self._finished and self._transport is not None:
            self._transport.pauseProducing()


@implementer(IProtocol)
@define
class _Drain:
    """
    Reads a small response body and drops it, so that its connection can
    return to the pool. Gives up (closing the connection) if the backend
    stays silent too long.
    """

    _clock: IReactorTime
    _timeout: float
    _transport: IPushProducer | None = None
    _timer: IDelayedCall | None = None

    def makeConnection(self, transport: object) -> None:
        """
        Take the response's transport.
        """
        self._transport = cast(IPushProducer, transport)
        self.connectionMade()

    def connectionMade(self) -> None:
        """
        Start the idle timer.
        """
        self._timer = self._clock.callLater(self._timeout, self._idle)

    def dataReceived(self, data: bytes) -> None:
        """
        Drop a chunk.
        """
        if self._timer is not None and self._timer.active():
            self._timer.reset(self._timeout)

    def connectionLost(self, reason: Failure) -> None:
        """
        The body has ended.
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _idle(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.stopProducing()


@implementer(IProtocol)
class DropBody:
    """
    Closes a response's connection without reading its body.
    """

    def makeConnection(self, transport: object) -> None:
        """
        Close the response's connection.
        """
        cast(IPushProducer, transport).stopProducing()

    def connectionMade(self) -> None:
        """
        Nothing to do.
        """

    def dataReceived(self, data: bytes) -> None:
        """
        Drop a chunk that was already buffered.
        """

    def connectionLost(self, reason: Failure) -> None:
        """
        Nothing to do.
        """


@implementer(IBody)
@define
class AgentBody:
    """
    The body of a backend response, streamed from the backend connection.

    :ivar length: the body's length from the backend's ``Content-Length``,
        or ``None`` when the backend did not say (chunked, or ended by
        closing the connection).
    """

    _response: IResponse
    _clock: IReactorTime
    _timeout: float
    _where: str = ""
    _method: str = ""
    _used: bool = False

    log = Logger()

    @property
    def length(self) -> int | None:
        """
        The number of bytes the body will deliver, if known.
        """
        length = self._response.length
        return length if isinstance(length, int) else None

    def deliver(self, consumer: IConsumer) -> Deferred[int]:
        """
        Stream the body to ``consumer``, with backpressure.

        The body registers itself as ``consumer``'s push producer: pausing it
        pauses the backend socket (and suspends the idle timer: a slow
        client is not a slow backend). If the backend sends nothing for the
        forwarder's timeout while the consumer is ready, the connection is
        closed and delivery fails with ``GatewayTimeout``.

        :param consumer: where the bytes go.
        :return: a Deferred that fires with the number of bytes written, or
            fails with L{S3Error} ``ServiceUnavailable`` if the backend cut
            the body short, ``GatewayTimeout`` if it went silent,
            L{DeliveryStopped} if the consumer called C{stopProducing}, and
            C{CancelledError} if cancelled (which closes the backend
            connection). The producer is unregistered before it fires,
            except after C{stopProducing}.
        :raise RuntimeError: if the body was already delivered or discarded.
        """
        self._claim()
        pump = _BodyPump(
            consumer=consumer,
            clock=self._clock,
            timeout=self._timeout,
            where=self._where,
            method=self._method,
        )
        deliver_response_body(self._response, pump)
        pump.repause()
        return pump.done

    def discard(self) -> None:
        """
        Release the body without passing it on: a small body (known length
        up to L{SMALL_BODY}) is read and dropped so the connection can be
        reused; any other is cut off by closing the connection. Does
        nothing once the body was delivered or discarded.
        """
        if self._used:
            return
        self._claim()
        length = self.length
        if length is not None and length <= SMALL_BODY:
            deliver_response_body(
                self._response, _Drain(clock=self._clock, timeout=self._timeout)
            )
        else:
            deliver_response_body(self._response, DropBody())

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("a body can be delivered or discarded only once")
        self._used = True
