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

from attrs import define
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import (
    ConnectError,
    ConnectionClosed,
    DNSLookupError,
)
from twisted.internet.interfaces import (
    IReactorTime,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    RequestGenerationFailed,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.iweb import (
    IAgent,
    IBodyProducer,
    IPolicyForHTTPS,
    IResponse,
)
from zope.interface import implementer

from multistore.forwarder.connections import BackendEndpoints, QuietClientFactory
from multistore.forwarder.headers import end_to_end_headers, outgoing_headers
from multistore.forwarder.relay import (
    AgentBody,
    DropBody,
    HeaderTimer,
    WatchedBodyProducer,
    deliver_response_body,
    describe_failure,
    timeout_text,
)
from multistore.interfaces import IForwarder
from multistore.model import BackendRequest, BackendResponse
from multistore.s3.errors import S3Error

#: Seconds an idle backend connection is kept for reuse.  A connection must
#: be given up before the server closes it, or a request sent just as the
#: server closes fails (only idempotent requests without a body are retried).
#: Object stores close idle connections early: SeaweedFS's S3 server after
#: 10 seconds, Amazon S3 after about 20; load balancers in front of other
#: stores after 60 or more.  Eight seconds stays below all of these while
#: still carrying a busy gateway's bursts of requests over warm connections.
CACHED_CONNECTION_TIMEOUT = 8


def _loggable(url: str) -> str:
    """
    :return: ``url`` without its query string or fragment (a query string
        may carry a presigned URL's signature).
    """
    return url.split("?", 1)[0].split("#", 1)[0]


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
        pool._factory = QuietClientFactory
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

        timer = HeaderTimer(clock=self._reactor, timeout=timeout, on_expiry=expire)
        body: IBodyProducer | None = None
        if request.body is not None:
            body = WatchedBodyProducer(inner=request.body, timer=timer)

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
                    deliver_response_body(outcome, DropBody())
                return
            if cancelled:
                if not isinstance(outcome, Failure):
                    deliver_response_body(outcome, DropBody())
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
        timer: HeaderTimer,
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
                f"{timeout_text(timeout)} seconds",
            )
        value = failure.value
        if isinstance(value, _UNREACHABLE):
            self.log.warn(
                "backend {method} {url} unreachable: {reason}",
                method=method,
                url=where,
                reason=describe_failure(failure),
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
                reason=describe_failure(inner),
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
