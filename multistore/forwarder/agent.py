# -*- test-case-name: tests.unit.test_forwarder -*-
"""
The HTTP transport that HTTP stores use to reach their backends.

Every byte of every object read or written through an HTTP backend passes
through here, so this module adds nothing and removes nothing but what HTTP
itself requires: no decompression, no cookies, no redirects, no buffering.
Bodies move with backpressure both ways: a request body is an
L{IBodyProducer} that the L{Agent} drives, and a response body is an
L{AgentBody} that pauses the backend socket whenever its consumer (usually
the client's connection) cannot keep up.

L{AgentForwarder} is the L{IForwarder} the daemon uses; L{BytesBody},
L{BytesProducer} and L{read_body} are small helpers for bodies that live in
memory (error documents, listings, request bodies the gateway builds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

from attrs import define, field, frozen
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import (
    ConnectError,
    ConnectionClosed,
    DNSLookupError,
)
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    RequestGenerationFailed,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
    _HTTP11ClientFactory,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import (
    IAgent,
    IAgentEndpointFactory,
    IBodyProducer,
    IPolicyForHTTPS,
    IResponse,
)
from zope.interface import implementer

from multistore.bodies import (
    CONNECTION_BUFFER,
    SMALL_BODY,
    DeliveryStopped,
    IBody,
    enlarge_buffers,
    release_consumer,
)
from multistore.headers import HeaderList
from multistore.interfaces import IForwarder
from multistore.model import BackendRequest, BackendResponse
from multistore.s3.errors import S3Error

__all__ = [
    "CACHED_CONNECTION_TIMEOUT",
    "HOP_BY_HOP_HEADERS",
    "AgentBody",
    "AgentForwarder",
    "end_to_end_headers",
    "outgoing_headers",
]

#: Header fields that describe one connection, not the message: never passed
#: on in either direction (RFC 9110 section 7.6.1, plus the framing fields
#: the transport owns).
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

#: Request header fields the transport writes itself.
_TRANSPORT_REQUEST_HEADERS = HOP_BY_HOP_HEADERS | {"content-length"}


#: Seconds an idle backend connection is kept for reuse.  A connection must
#: be given up before the server closes it, or a request sent just as the
#: server closes fails (only idempotent requests without a body are retried).
#: Object stores close idle connections early: SeaweedFS's S3 server after
#: 10 seconds, Amazon S3 after about 20; load balancers in front of other
#: stores after 60 or more.  Eight seconds stays below all of these while
#: still carrying a busy gateway's bursts of requests over warm connections.
CACHED_CONNECTION_TIMEOUT = 8

#: Distinct backend endpoints (scheme, host, port) remembered; past this,
#: the cache starts again (patterns may name a host per bucket).
_MAX_ENDPOINTS = 1024


def _loggable(url: str) -> str:
    """
    :return: ``url`` without its query string or fragment (a query string
        may carry a presigned URL's signature).
    """
    return url.split("?", 1)[0].split("#", 1)[0]


def _describe(failure: Failure) -> str:
    """
    :return: a one-line account of ``failure``, looking inside Twisted's
        wrapper exceptions that hold a list of underlying failures.
    """
    reasons = getattr(failure.value, "reasons", None)
    if isinstance(reasons, list) and reasons:
        inner = "; ".join(
            _describe(r) if isinstance(r, Failure) else repr(r) for r in reasons
        )
        return f"{type(failure.value).__name__}: {inner}"
    return f"{type(failure.value).__name__}: {failure.getErrorMessage()}"


def _connection_tokens(values: Iterable[bytes]) -> set[str]:
    """
    :return: the lower-cased field names listed in ``Connection`` values.
    """
    tokens: set[str] = set()
    for value in values:
        for token in value.decode("iso-8859-1").split(","):
            token = token.strip().lower()
            if token:
                tokens.add(token)
    return tokens


def end_to_end_headers(
    raw: Iterable[tuple[bytes, Sequence[bytes]]],
) -> HeaderList:
    """
    Keep the end-to-end fields of a response.

    :param raw: header fields as C{Headers.getAllRawHeaders} gives them: each
        name with all of its values, in order.
    :return: every field except the hop-by-hop ones (L{HOP_BY_HOP_HEADERS})
        and those named in a ``Connection`` field; repeated fields keep every
        value, in order; values are decoded as ISO-8859-1 so no byte is lost.
    """
    fields = [(name.decode("iso-8859-1").lower(), list(values)) for name, values in raw]
    drop = set(HOP_BY_HOP_HEADERS)
    for name, values in fields:
        if name == "connection":
            drop |= _connection_tokens(values)
    return HeaderList(
        [
            (name, value.decode("iso-8859-1"))
            for name, values in fields
            if name not in drop
            for value in values
        ]
    )


class WireHeaders(Headers):
    """
    Request headers whose ``x-*`` names go out in lower case, as given,
    rather than in twisted.web's canonical case: Azure keeps the names of
    ``x-ms-meta-*`` headers as sent, and every other client of the store
    would see ``Owner`` where an S3 client wrote ``owner``.
    """

    def getAllRawHeaders(self) -> Iterator[tuple[bytes, Sequence[bytes]]]:
        for name, values in super().getAllRawHeaders():
            if name[:2].lower() == b"x-":
                name = name.lower()
            yield name, values


def outgoing_headers(headers: HeaderList, user_agent: str) -> Headers:
    """
    Turn a request's header fields into Twisted's C{Headers}.

    :param headers: the fields to send, as the store built them.
    :param user_agent: the ``User-Agent`` to add if ``headers`` has none.
    :return: the fields encoded as ISO-8859-1, without the hop-by-hop and
        framing fields (``Content-Length``, ``Transfer-Encoding``,
        ``Connection``...), which the transport writes itself. ``Host`` is
        kept if given (it may be signed); the L{Agent} adds it otherwise.
    """
    result = WireHeaders()
    for name, value in headers:
        if name in _TRANSPORT_REQUEST_HEADERS:
            continue
        result.addRawHeader(name.encode("iso-8859-1"), value.encode("iso-8859-1"))
    if "user-agent" not in headers:
        result.addRawHeader(b"user-agent", user_agent.encode("iso-8859-1"))
    return result


@implementer(IStreamClientEndpoint)
@frozen
class _LargeBufferEndpoint:
    """
    An endpoint whose connections get L{enlarge_buffers}.
    """

    _endpoint: IStreamClientEndpoint
    _size: int

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        def connected(protocol: IProtocol) -> IProtocol:
            enlarge_buffers(getattr(protocol, "transport", None), self._size)
            return protocol

        d: Deferred[IProtocol] = self._endpoint.connect(factory)
        return d.addCallback(connected)


@implementer(IAgentEndpointFactory)
@define
class BackendEndpoints:
    """
    The endpoints backend connections are made with: one per scheme, host
    and port, made once (the L{Agent}'s own factory makes a new one, host
    name encoding included, for every request), with large buffers.

    :ivar reactor: the reactor to connect with.
    :ivar tls_policy: how HTTPS backends are verified.
    :ivar connect_timeout: seconds to wait for a connection.
    :ivar buffer_size: see L{CONNECTION_BUFFER}.
    """

    reactor: Any
    tls_policy: IPolicyForHTTPS
    connect_timeout: float
    buffer_size: int = CONNECTION_BUFFER
    _endpoints: dict[tuple[bytes, bytes, int], IStreamClientEndpoint] = field(
        factory=dict
    )

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        """
        :param uri: a backend request's URI.
        :return: the endpoint for its scheme, host and port.
        :raise SchemeNotSupported: unless the scheme is HTTP or HTTPS.
        """
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is not None:
            return endpoint
        if uri.scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
        endpoint = HostnameEndpoint(
            self.reactor, uri.host, uri.port, timeout=self.connect_timeout
        )
        if uri.scheme == b"https":
            creator = self.tls_policy.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        endpoint = _LargeBufferEndpoint(endpoint, self.buffer_size)
        if len(self._endpoints) >= _MAX_ENDPOINTS:
            self._endpoints.clear()
        self._endpoints[key] = endpoint
        return endpoint


class _QuietClientFactory(_HTTP11ClientFactory):
    """
    The pool's protocol factory, without an info line ("Starting factory")
    for every new backend connection.
    """

    noisy = False


def _deliver_body(response: IResponse, protocol: IProtocol) -> None:
    response.deliverBody(protocol)


def _timeout_text(seconds: float) -> str:
    return f"{seconds:g}"


@define
class _HeaderTimer:
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
class _WatchedBodyProducer:
    """
    A request body producer that tells a L{_HeaderTimer} how the body flows.
    """

    _inner: IBodyProducer
    _timer: _HeaderTimer

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
            reason=_describe(reason),
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
                f"{_timeout_text(self._timeout)} seconds mid-body",
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
class _Drop:
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
        _deliver_body(self._response, pump)
        pump.repause()
        return pump.done

    def discard(self) -> None:
        """
        Release the body without passing it on: a small body (known length
        up to L{SMALL_BODY}) is read and dropped so the connection can be
        reused; any other is cut off by closing the connection.

        :raise RuntimeError: if the body was already delivered or discarded.
        """
        self._claim()
        length = self.length
        if length is not None and length <= SMALL_BODY:
            _deliver_body(
                self._response, _Drain(clock=self._clock, timeout=self._timeout)
            )
        else:
            _deliver_body(self._response, _Drop())

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("a body can be delivered or discarded only once")
        self._used = True


#: The failures that mean the backend could not be reached or dropped the
#: connection before answering.
_UNREACHABLE = (
    ConnectError,
    DNSLookupError,
    ConnectionClosed,
    ResponseNeverReceived,
    RequestTransmissionFailed,
    ResponseFailed,
)


@implementer(IForwarder)
@define
class AgentForwarder:
    """
    Sends backend requests through one L{Agent} over one persistent
    L{HTTPConnectionPool}, streaming bodies both ways.

    Nothing is added to the exchange: no ``Accept-Encoding``, no cookies, no
    redirects; bodies pass unaltered.

    :ivar _reactor: the clock for timeouts (also, in L{create}, the reactor
        the L{Agent} connects with, which must provide C{IReactorTCP} and
        C{IReactorPluggableNameResolver} as well).
    :ivar _agent: the agent requests go through.
    :ivar _pool: the agent's connection pool, closed by L{close}.
    :ivar _timeout: default seconds a backend may stay silent.
    :ivar _user_agent: the ``User-Agent`` sent when a request has none.
    """

    _reactor: IReactorTime
    _agent: IAgent
    _pool: HTTPConnectionPool | None = None
    _timeout: float = 60.0
    _user_agent: str = "multistore"

    log = Logger()

    @classmethod
    def create(
        cls,
        reactor: IReactorTime,
        *,
        connect_timeout: float,
        timeout: float,
        max_connections_per_host: int,
        user_agent: str,
        tls_policy: IPolicyForHTTPS | None = None,
        cached_connection_timeout: int = CACHED_CONNECTION_TIMEOUT,
    ) -> AgentForwarder:
        """
        Build a forwarder with its own connection pool.

        :param reactor: the reactor; it must also provide C{IReactorTCP} and
            C{IReactorPluggableNameResolver}.
        :param connect_timeout: seconds to wait for a TCP connection.
        :param timeout: seconds a backend may stay silent (before its response
            headers, or between body chunks) when a request does not say.
        :param max_connections_per_host: idle connections kept per backend
            host and port.
        :param user_agent: the ``User-Agent`` for requests that have none.
        :param tls_policy: how HTTPS backends are verified; by default as a
            browser would (system trust roots, host name checked).
        :param cached_connection_timeout: seconds an idle connection is kept
            (see L{CACHED_CONNECTION_TIMEOUT}).
        """
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool._factory = _QuietClientFactory
        pool.maxPersistentPerHost = max_connections_per_host
        pool.cachedConnectionTimeout = cached_connection_timeout
        pool.retryAutomatically = True
        policy: IPolicyForHTTPS = (
            tls_policy if tls_policy is not None else BrowserLikePolicyForHTTPS()
        )
        agent: IAgent = Agent.usingEndpointFactory(
            reactor, BackendEndpoints(reactor, policy, connect_timeout), pool=pool
        )
        return cls(
            reactor=reactor,
            agent=agent,
            pool=pool,
            timeout=timeout,
            user_agent=user_agent,
        )

    def close(self) -> Deferred[None]:
        """
        Close every idle pooled connection (at shutdown).

        :return: a Deferred that fires once they are closed.
        """
        if self._pool is None:
            return succeed(None)
        closed: Deferred[None] = self._pool.closeCachedConnections()
        return closed

    def forward(self, request: BackendRequest) -> Deferred[BackendResponse]:
        """
        Send ``request`` and wait for its response headers.

        :param request: the request; its body, if any, is streamed by the
            agent with backpressure and its length becomes
            ``Content-Length``.
        :return: a Deferred that fires with the response (its body not yet
            read), or fails with L{S3Error} ``GatewayTimeout`` if the headers
            do not arrive in time, ``ServiceUnavailable`` if the backend
            cannot be reached or drops the connection, the request body's
            own failure if the body fails, and C{CancelledError} if
            cancelled (which closes the connection).
        """
        timeout = request.timeout if request.timeout is not None else self._timeout
        where = _loggable(request.url)
        method = request.method
        headers = outgoing_headers(request.headers, self._user_agent)
        cancelled = False
        result: Deferred[BackendResponse]
        pending: Deferred[IResponse] | None = None

        def expire() -> None:
            if pending is not None:
                pending.cancel()

        timer = _HeaderTimer(clock=self._reactor, timeout=timeout, on_expiry=expire)
        body: IBodyProducer | None = None
        if request.body is not None:
            body = _WatchedBodyProducer(inner=request.body, timer=timer)

        def cancel(d: Deferred[BackendResponse]) -> None:
            nonlocal cancelled
            cancelled = True
            timer.stop()
            if pending is not None:
                pending.cancel()

        result = Deferred(cancel)

        def settle(outcome: IResponse | Failure) -> None:
            timer.stop()
            if result.called:
                # Cancelled already; release a response that came anyway.
                if not isinstance(outcome, Failure):
                    _deliver_body(outcome, _Drop())
                return
            if cancelled:
                if not isinstance(outcome, Failure):
                    _deliver_body(outcome, _Drop())
                self.log.debug(
                    "backend {method} {url} cancelled", method=method, url=where
                )
                result.errback(CancelledError())
            elif isinstance(outcome, Failure):
                result.errback(self._failed(outcome, timer, timeout, method, where))
            else:
                result.callback(self._response(outcome, timeout, method, where))

        timer.start()
        try:
            pending = self._agent.request(
                method.encode("ascii"),
                request.url.encode("ascii"),
                headers,
                body,
            )
        except Exception:
            timer.stop()
            self.log.failure(
                "backend {method} {url} could not be sent", method=method, url=where
            )
            return fail()
        pending.addBoth(settle)
        return result

    def _failed(
        self,
        failure: Failure,
        timer: _HeaderTimer,
        timeout: float,
        method: str,
        where: str,
    ) -> BaseException | Failure:
        """
        Map a failed backend request to what the caller should see, and log
        it (without the query string).

        :return: ``GatewayTimeout`` if the timer expired;
            ``ServiceUnavailable`` for connection failures; the request
            body's own failure if the body failed; ``failure`` otherwise.
        """
        if timer.expired:
            self.log.warn(
                "backend {method} {url} did not answer within {timeout} seconds",
                method=method,
                url=where,
                timeout=timeout,
            )
            return S3Error(
                "GatewayTimeout",
                "the backend store did not answer within "
                f"{_timeout_text(timeout)} seconds",
            )
        value = failure.value
        if isinstance(value, _UNREACHABLE):
            self.log.warn(
                "backend {method} {url} unreachable: {reason}",
                method=method,
                url=where,
                reason=_describe(failure),
            )
            return S3Error(
                "ServiceUnavailable", "the backend store could not be reached"
            )
        if isinstance(value, RequestGenerationFailed):
            # The request body failed (a client's upload was cut short or did
            # not verify): that failure is the one to report.
            inner = next((r for r in value.reasons if isinstance(r, Failure)), failure)
            self.log.info(
                "backend {method} {url} abandoned, the request body failed: {reason}",
                method=method,
                url=where,
                reason=_describe(inner),
            )
            return inner
        self.log.failure(
            "backend {method} {url} failed",
            failure=failure,
            method=method,
            url=where,
        )
        return failure

    def _response(
        self, response: IResponse, timeout: float, method: str, where: str
    ) -> BackendResponse:
        headers = end_to_end_headers(response.headers.getAllRawHeaders())
        length = response.length
        if (
            isinstance(length, int)
            and "content-length" not in headers
            and response.code not in (204, 304)
            and method != "HEAD"
        ):
            # Twisted keeps the framing Content-Length apart from the other
            # headers; it describes the body, so pass it on.
            headers = headers.plus([("content-length", str(length))])
        return BackendResponse(
            status=response.code,
            headers=headers,
            body=AgentBody(
                response=response,
                clock=self._reactor,
                timeout=timeout,
                where=where,
                method=method,
            ),
        )
