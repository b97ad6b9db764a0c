# -*- test-case-name: tests.unit.test_web -*-
"""
The HTTP server side: the Site, its request factory, and the resource that
hands every request to the L{multistore.gateway.pipeline.Gateway} and streams the
answer back.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator, Sequence
from typing import Any, Final, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime, ITCPTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http import RESPONSES, datetimeToString
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from multistore.bodies import (
    SMALL_BODY,
    BytesBody,
    DeliveryStopped,
    IBody,
    enlarge_buffers,
)
from multistore.gateway.pipeline import Gateway, Trace
from multistore.headers import HeaderList
from multistore.model import IncomingRequest, Response
from multistore.s3.errors import S3Error
from multistore.web.body import RequestBody
from multistore.web.channel import (
    close_after_response,
    pending_request_line,
    pending_request_version,
    request_still_arriving,
)

#: How much of a refused request's body is read (and dropped) so it can be
#: answered in order; with more to come, the answer goes out at once and the
#: connection is closed.
DRAIN_LIMIT = 1024 * 1024

#: The interim response that tells a client to send its body.
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"

#: The ``Server`` header of every response.
SERVER_NAME = b"multistore"


class S3ResponseHeaders(Headers):
    """
    Response headers written as S3 writes them: ``x-amz-*`` names in lower
    case, the others in twisted.web's canonical case. Clients take the names
    of ``x-amz-meta-*`` headers as metadata keys, and S3's are lower case.
    """

    def getAllRawHeaders(self) -> Iterator[tuple[bytes, Sequence[bytes]]]:
        for name, values in super().getAllRawHeaders():
            if name[:6].lower() == b"x-amz-":
                name = name.lower()
            yield name, values


class MultistoreRequest(server.Request):
    """
    A request whose body is never spooled: it is a L{RequestBody} that
    streams to whoever reads it. A request with a body is handed to the
    gateway as soon as its headers are in, so an upload reaches its store
    while the client is still sending; the answer is written once
    twisted.web has finished reading the request.

    It sends no default ``Content-Type``, and writes its headers as
    L{S3ResponseHeaders}.

    :ivar body: the request body.
    :ivar exchange: the exchange started early, for requests with a body.
    """

    defaultContentType = None
    content: Any
    body: RequestBody | None = None
    exchange: _Exchange | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.responseHeaders = S3ResponseHeaders()
        enlarge_buffers(getattr(self.channel, "transport", None))

    def gotLength(self, length: int | None) -> None:
        channel = self.channel
        self.body = RequestBody(length, cast(IPushProducer, channel.transport))
        self.content = self.body
        resource = getattr(getattr(channel, "site", None), "resource", None)
        if length != 0 and isinstance(resource, GatewayResource):
            line = pending_request_line(channel)
            if line is not None:
                held = self._hold_continue()
                self.exchange = resource.start(self, *line)
                if held:
                    self.requestHeaders.removeHeader(b"expect")

    def _hold_continue(self) -> bool:
        """
        twisted.web answers ``Expect: 100-continue`` as soon as the headers
        are in, unless the header is gone by then. Tell the client to send
        only once its body is wanted instead: a request refused first (a
        quota, a signature) is answered without its body ever being sent.

        :return: whether the body will send ``100 Continue`` (the caller
            then takes the header away from twisted.web).
        """
        body = self.body
        expect = self.requestHeaders.getRawHeaders(b"expect") or []
        if body is None or not any(v.lower() == b"100-continue" for v in expect):
            return False
        transport = self.channel.transport
        if transport is None or pending_request_version(self.channel) != b"HTTP/1.1":
            return False
        body.continue_when_read(lambda: transport.write(CONTINUE))
        return True

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        body = self.body
        if body is not None:
            body.finish()
        # twisted.web reads form bodies from content; there is none to read.
        self.content = io.BytesIO()
        super().requestReceived(command, path, version)

    def connectionLost(self, reason: Failure) -> None:
        if self.body is not None:
            self.body.lost(reason)
        super().connectionLost(reason)


class MultistoreSite(server.Site):
    """
    A site whose access log is written by the gateway (with the request id,
    the caller and the operation), not by twisted.web.
    """

    requestFactory = MultistoreRequest
    displayTracebacks = False

    def acceptableProtocols(self) -> list[bytes]:
        # Request bodies stream through HTTP/1.1's channel; HTTP/2 (offered
        # over TLS when h2 is installed) is not supported.
        return [b"http/1.1"]

    def log(self, request: object) -> None:
        pass


def _client_address(request: server.Request) -> str | None:
    address = request.getClientAddress()
    if isinstance(address, IPv4Address | IPv6Address):
        return address.host
    return None


def incoming_request(
    request: server.Request, method: bytes, target: bytes
) -> IncomingRequest:
    """
    :return: the gateway's view of a twisted.web request: raw path and query
        exactly as on the wire, header values as received.
    """
    raw_path, _, raw_query = target.partition(b"?")
    fields = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, values in request.requestHeaders.getAllRawHeaders()
        for value in values
    ]
    return IncomingRequest(
        method=method.decode("latin-1").upper(),
        raw_path=raw_path,
        raw_query=raw_query,
        headers=HeaderList(fields),
        client_address=_client_address(request),
        secure=request.isSecure(),
        body=getattr(request, "body", None),
    )


def _request_id_2() -> bytes:
    return base64.b64encode(os.urandom(24))


class GatewayResource(Resource):
    """
    The one resource of the site: every path goes to the gateway.
    """

    isLeaf = True

    def __init__(
        self, gateway: Gateway, clock: IReactorTime, server_timing: bool = True
    ) -> None:
        super().__init__()
        self._gateway = gateway
        self._clock = clock
        self._server_timing = server_timing

    @property
    def gateway(self) -> Gateway:
        """
        The gateway new requests go to.
        """
        return self._gateway

    def replace(self, gateway: Gateway) -> None:
        """
        Send new requests to ``gateway``; requests already started finish
        with the one they started with.
        """
        self._gateway = gateway

    def start(self, request: server.Request, method: bytes, target: bytes) -> _Exchange:
        """
        Start answering ``request``; the answer is held until L{render}.
        """
        incoming = incoming_request(request, method, target)
        exchange = _Exchange(
            self._gateway,
            self._clock,
            request,
            incoming,
            self._gateway.start(),
            self._server_timing,
        )
        exchange.run()
        return exchange

    def render(self, request: server.Request) -> int:
        exchange = getattr(request, "exchange", None)
        if exchange is None:
            method: bytes = request.method
            exchange = self.start(request, method, request.uri)
        exchange.attach()
        return server.NOT_DONE_YET


class _Exchange:
    """
    One request/response exchange: runs the gateway, writes its answer with
    backpressure once twisted.web has read the whole request, and cleans up
    if the client goes away.

    An answer that is ready before the request body has been read (a refusal,
    say) makes the body be read and dropped; if the client is waiting for
    ``100 Continue`` before sending it, the answer goes out at once instead
    and the connection is closed, so a refused upload is never sent.
    """

    log = Logger()

    def __init__(
        self,
        gateway: Gateway,
        clock: IReactorTime,
        request: server.Request,
        incoming: IncomingRequest,
        trace: Trace,
        server_timing: bool,
    ) -> None:
        self._gateway = gateway
        self._clock = clock
        self._request = request
        self._incoming = incoming
        self._trace = trace
        self._server_timing = server_timing
        self._pending: Deferred[Any] | None = None
        self._client_gone = False
        self._attached = False
        self._ready: Response | None = None
        self._reported = False
        self._status = 0

    def run(self) -> None:
        """
        Hand the request to the gateway.
        """
        self._request.notifyFinish().addBoth(self._finished)
        pending = self._gateway.handle(self._incoming, self._trace)
        self._pending = pending
        pending.addCallback(self._answer)
        pending.addErrback(self._failed)

    def attach(self) -> None:
        """
        twisted.web has read the whole request: the answer may be written.
        """
        self._attached = True
        ready, self._ready = self._ready, None
        if ready is not None:
            self._chain(self._respond(ready))

    def _chain(self, result: Deferred[Any] | None) -> None:
        if isinstance(result, Deferred):
            self._pending = result
            result.addErrback(self._failed)

    def _answer(self, response: Response) -> Deferred[Any] | None:
        body = self._incoming.body
        if body is not None and isinstance(body, RequestBody) and not body.started:
            body.discard()
        if self._attached:
            return self._respond(response)
        self._pending = None
        if response.status >= 400 and self._refuse_early(response):
            return None
        if isinstance(body, RequestBody):
            # Answered without the body: let the client send it, to be
            # dropped, so the answer can follow.
            body.release()
        self._ready = response
        return None

    def _refuse_early(self, response: Response) -> bool:
        """
        Answer a refusal now and close, rather than read a body nobody
        wants: when the client waits for ``100 Continue`` before sending it,
        or when more than L{DRAIN_LIMIT} of it (or an unknown amount) is
        still to come.
        """
        request = self._request
        if not request_still_arriving(request.channel):
            return False  # the request has been read already
        body = self._incoming.body
        if isinstance(body, RequestBody) and body.gone:
            return False  # nobody to answer
        expect = request.requestHeaders.getRawHeaders(b"expect") or []
        waiting = any(v.lower() == b"100-continue" for v in expect) or (
            isinstance(body, RequestBody) and body.awaiting_continue
        )
        if not waiting and isinstance(body, RequestBody):
            length = body.length
            remaining = length - body.received if isinstance(length, int) else None
            if remaining is not None and remaining <= DRAIN_LIMIT:
                return False
        elif not waiting:
            return False
        # twisted.web sends 100 Continue after gotLength unless the header
        # is gone; neither does the body, now.
        request.requestHeaders.removeHeader(b"expect")
        if isinstance(body, RequestBody):
            body.withhold()
        _discard(response.body)
        document = response.body if isinstance(response.body, bytes) else b""
        self._status = response.status
        transport = request.channel.transport
        assert transport is not None
        transport.write(self._raw_response(response, document))
        transport.loseConnection()
        self._report(complete=True, bytes_out=len(document))
        return True

    def _raw_response(self, response: Response, body: bytes) -> bytes:
        reason = RESPONSES.get(response.status, b"Unknown")
        lines = [b"HTTP/1.1 %d %s" % (response.status, reason)]
        for name, value in self._headers(response).getAllRawHeaders():
            lines.extend(name + b": " + v for v in value)
        lines.append(b"Date: " + datetimeToString())
        lines.append(b"Content-Length: %d" % (len(body),))
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def _finished(self, result: object) -> None:
        complete = not isinstance(result, Failure)
        if not complete:
            self._client_gone = True
            pending, self._pending = self._pending, None
            if pending is not None:
                pending.cancel()
        self._report(complete=complete, bytes_out=self._request.sentLength)

    def _report(self, *, complete: bool, bytes_out: int) -> None:
        if self._reported:
            return
        self._reported = True
        body = self._incoming.body
        self._gateway.completed(
            self._trace,
            self._incoming,
            self._status or self._request.code,
            bytes_in=body.received if isinstance(body, RequestBody) else 0,
            bytes_out=bytes_out,
            complete=complete,
        )

    def _headers(self, response: Response) -> Headers:
        headers = S3ResponseHeaders()
        for name, value in response.headers:
            headers.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        headers.setRawHeaders(b"server", [SERVER_NAME])
        headers.setRawHeaders(
            b"x-amz-request-id", [self._trace.request_id.encode("ascii")]
        )
        headers.setRawHeaders(b"x-amz-id-2", [_request_id_2()])
        if self._server_timing:
            elapsed = (self._clock.seconds() - self._trace.started) * 1000
            headers.setRawHeaders(b"server-timing", [b"total;dur=%.1f" % (elapsed,)])
        return headers

    def _start_response(self, response: Response) -> None:
        request = self._request
        draining = self._gateway.draining
        if draining:
            close_after_response(request.channel)
        self._status = response.status
        request.setResponseCode(response.status)
        for name, values in self._headers(response).getAllRawHeaders():
            request.responseHeaders.setRawHeaders(name, values)
        if draining:
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])

    def _respond(self, response: Response) -> Deferred[Any] | None:
        if self._client_gone:
            _discard(response.body)
            return None
        request = self._request
        try:
            self._start_response(response)
        except Exception:
            _discard(response.body)
            raise
        body = response.body
        headers = request.responseHeaders
        if isinstance(body, bytes) and len(body) > SMALL_BODY:
            # Large documents (listings) go out with backpressure too.
            body = BytesBody(body)
        if isinstance(body, bytes):
            headers.setRawHeaders(b"content-length", [b"%d" % (len(body),)])
            request.write(body)
            request.finish()
            return None
        if body is None or request.method == b"HEAD":
            _discard(body)
            if not headers.hasHeader(b"content-length") and response.status not in (
                204,
                304,
            ):
                headers.setRawHeaders(b"content-length", [b"0"])
            request.finish()
            return None
        if body.length is not None and not headers.hasHeader(b"content-length"):
            headers.setRawHeaders(b"content-length", [b"%d" % (body.length,)])
        delivery = body.deliver(request)
        self._pending = delivery
        delivery.addCallback(self._delivered)
        return delivery

    def _delivered(self, written: int) -> None:
        self._pending = None
        if not self._client_gone:
            self._release_producer()
            self._request.finish()

    def _release_producer(self) -> None:
        # A body unregisters its producer before it is done; one that failed
        # may not have, and twisted.web refuses to finish a request that
        # still has one.
        if self._request.producer is not None:
            self._request.unregisterProducer()

    def _failed(self, reason: Failure) -> None:
        self._pending = None
        if self._client_gone or reason.check(CancelledError, DeliveryStopped):
            # The client went away; twisted.web may tell the body before it
            # tells the request.
            return
        if not self._attached:
            # Not answerable yet: answer with the error once the request is in.
            error = self._error_of(reason)
            self._answer(
                self._gateway.error_response(
                    error, self._incoming, self._trace.request_id
                )
            )
            return
        request = self._request
        self._release_producer()
        if not request.startedWriting:
            # Nothing has been sent yet: the client can still get a proper error.
            error = self._error_of(reason)
            request.responseHeaders = type(request.responseHeaders)()
            response = self._gateway.error_response(
                error, self._incoming, self._trace.request_id
            )
            self._chain(self._respond(response))
            return
        # Part of the body is out: cut the connection so the client sees a
        # truncated response rather than a complete one.
        self.log.warn(
            "{request_id}: response body failed after {sent} bytes: {reason}",
            request_id=self._trace.request_id,
            sent=request.sentLength,
            reason=reason.getErrorMessage(),
        )
        transport = request.channel.transport if request.channel else None
        if ITCPTransport.providedBy(transport):
            transport.abortConnection()
        elif transport is not None:
            transport.loseConnection()

    def _error_of(self, reason: Failure) -> S3Error:
        if isinstance(reason.value, S3Error):
            return reason.value
        self.log.failure("failed before responding", reason)
        return S3Error("InternalError")


def _discard(body: bytes | IBody | None) -> None:
    if body is not None and not isinstance(body, bytes):
        body.discard()


def make_site(
    gateway: Gateway, clock: IReactorTime, *, server_timing: bool = True
) -> MultistoreSite:
    """
    :return: the HTTP site serving ``gateway``.
    """
    resource = GatewayResource(gateway, clock, server_timing)
    return MultistoreSite(resource)
