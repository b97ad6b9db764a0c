# -*- test-case-name: tests.unit.test_web -*-
"""
The HTTP server side: the Site, its request factory, and the resource that
hands every request to the L{multistore.gateway.Gateway} and streams the
answer back.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Sequence
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime, ITCPTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from multistore.backends.forwarder import SMALL_BODY, BytesBody, DeliveryStopped
from multistore.gateway import Gateway, Trace
from multistore.headers import HeaderList
from multistore.interfaces import IBody
from multistore.model import IncomingRequest, Response
from multistore.s3.errors import S3Error

#: The ``Server`` header of every response.
SERVER_NAME = b"multistore"

#: Request bodies the gateway does not stream are kept in memory up to this
#: size; anything beyond it is dropped as it arrives (never spooled), and the
#: buffer remembers it overflowed.
MAX_BUFFERED_BODY = 1024 * 1024


class _CappedBuffer:
    """
    Holds a small request body in memory; past ``limit`` it drops what arrives
    and remembers that it overflowed (so a huge body can never fill memory or
    disk).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self.received = 0
        self.overflowed = False

    def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.overflowed:
            return
        if self._size + len(data) > self._limit:
            self.overflowed = True
            self._chunks = []
            return
        self._chunks.append(data)
        self._size += len(data)

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)

    # The file-like surface twisted.web expects of request.content.
    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        return self.getvalue()

    def tell(self) -> int:
        return self._size

    def close(self) -> None:
        self._chunks = []


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
    A request that never spools its body to disk, sends no default
    ``Content-Type``, and writes its headers as L{S3ResponseHeaders}.
    """

    defaultContentType = None
    content: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.responseHeaders = S3ResponseHeaders()

    def gotLength(self, length: int | None) -> None:
        self.content = _CappedBuffer(MAX_BUFFERED_BODY)

    @property
    def body_buffer(self) -> _CappedBuffer:
        """
        The buffered request body.
        """
        content = self.content
        assert isinstance(content, _CappedBuffer)
        return content


class MultistoreSite(server.Site):
    """
    A site whose access log is written by the gateway (with the request id,
    the caller and the operation), not by twisted.web.
    """

    requestFactory = MultistoreRequest
    displayTracebacks = False

    def log(self, request: object) -> None:
        pass


def _client_address(request: server.Request) -> str | None:
    address = request.getClientAddress()
    if isinstance(address, IPv4Address | IPv6Address):
        return address.host
    return None


def incoming_request(request: server.Request) -> IncomingRequest:
    """
    :return: the gateway's view of a twisted.web request: raw path and query
        exactly as on the wire, header values as received.
    """
    uri: bytes = request.uri
    raw_path, _, raw_query = uri.partition(b"?")
    fields = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, values in request.requestHeaders.getAllRawHeaders()
        for value in values
    ]
    method: bytes = request.method
    return IncomingRequest(
        method=method.decode("latin-1"),
        raw_path=raw_path,
        raw_query=raw_query,
        headers=HeaderList(fields),
        client_address=_client_address(request),
        secure=request.isSecure(),
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

    def render(self, request: server.Request) -> int:
        incoming = incoming_request(request)
        trace = self._gateway.start()
        exchange = _Exchange(
            self._gateway, self._clock, request, incoming, trace, self._server_timing
        )
        exchange.run()
        return server.NOT_DONE_YET


class _Exchange:
    """
    One request/response exchange: runs the gateway, writes its answer with
    backpressure, and cleans up if the client goes away.
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
        self._status = 0

    def run(self) -> None:
        self._request.notifyFinish().addBoth(self._finished)
        pending = self._gateway.handle(self._incoming, self._trace)
        self._pending = pending
        pending.addCallback(self._respond)
        pending.addErrback(self._failed)

    def _finished(self, result: object) -> None:
        complete = not isinstance(result, Failure)
        if not complete:
            self._client_gone = True
            pending, self._pending = self._pending, None
            if pending is not None:
                pending.cancel()
        content = getattr(self._request, "content", None)
        bytes_in = content.received if isinstance(content, _CappedBuffer) else 0
        self._gateway.completed(
            self._trace,
            self._incoming,
            self._status or self._request.code,
            bytes_in=bytes_in,
            bytes_out=self._request.sentLength,
            complete=complete,
        )

    def _start_response(self, response: Response) -> None:
        request = self._request
        self._status = response.status
        request.setResponseCode(response.status)
        headers = request.responseHeaders
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
        request = self._request
        self._release_producer()
        if not request.startedWriting:
            # Nothing has been sent yet: the client can still get a proper error.
            error = (
                reason.value
                if isinstance(reason.value, S3Error)
                else S3Error("InternalError")
            )
            if not isinstance(reason.value, S3Error):
                self.log.failure("failed before responding", reason)
            request.responseHeaders = type(request.responseHeaders)()
            response = self._gateway.error_response(
                error, self._incoming, self._trace.request_id
            )
            self._respond(response)
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
