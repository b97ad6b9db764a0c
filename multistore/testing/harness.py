# -*- test-case-name: tests.unit.test_testing -*-
"""
L{SiteHarness}: the real L{multistore.web.site} over in-memory
connections, for sending HTTP requests (bodies in pieces, if need be)
and reading the answers (as slowly as a test likes), without sockets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from attrs import define, field, frozen
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from multistore.auth.canonical import UNSIGNED_PAYLOAD
from multistore.auth.registry import StaticBucketRegistry, StaticCredentialRegistry
from multistore.auth.signing import sign_request
from multistore.config import Config
from multistore.configfile import config_from_mapping
from multistore.gateway.pipeline import Gateway
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import (
    IBucketRegistry,
    ICredentialRegistry,
    IMiddleware,
    IRouteHandler,
    IStoreFactory,
)
from multistore.tap import build_gateway
from multistore.testing.stores import MemoryStoreFactory
from multistore.web.site import MultistoreSite, make_site

#: The time a L{SiteHarness} starts at, unless given a clock.
HARNESS_EPOCH: Final = datetime(2025, 1, 1, tzinfo=UTC)


@frozen
class HarnessResponse:
    """
    An HTTP response as a client of a L{SiteHarness} read it.

    :ivar status: the status code.
    :ivar headers: the header fields (names in lower case).
    :ivar body: the body (de-chunked), as far as it arrived.
    :ivar complete: whether the whole body arrived; ``False`` for one cut
        off by the connection's end, or still arriving.
    :ivar interim: the statuses of interim responses before it
        (``100 Continue``).
    """

    status: int
    headers: HeaderList
    body: bytes
    complete: bool
    interim: tuple[int, ...] = ()


class _ResponseParser:
    """
    Reads one HTTP/1.1 response as its bytes arrive: interim responses,
    then the head, then a body framed by ``Content-Length``, by chunks, or
    by the end of the connection.
    """

    def __init__(self, method: str) -> None:
        self._method = method
        self._buffer = b""
        self._interim: list[int] = []
        self._status: int | None = None
        self._headers = NO_HEADERS
        self._body: list[bytes] = []
        self._remaining: int | None = None
        self._chunked = False
        self._complete = False

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while not self._complete and self._step():
            pass

    def lost(self) -> None:
        if (
            self._status is not None
            and not self._complete
            and self._remaining is None
            and not self._chunked
        ):
            self._complete = True

    @property
    def response(self) -> HarnessResponse | None:
        if self._status is None:
            return None
        return HarnessResponse(
            status=self._status,
            headers=self._headers,
            body=b"".join(self._body),
            complete=self._complete,
            interim=tuple(self._interim),
        )

    def _step(self) -> bool:
        if self._status is None:
            return self._head()
        if self._chunked:
            return self._chunk()
        if self._remaining is None:
            # Until the connection ends.
            if self._buffer:
                self._body.append(self._buffer)
                self._buffer = b""
            return False
        taken = self._buffer[: self._remaining]
        self._buffer = self._buffer[len(taken) :]
        self._remaining -= len(taken)
        if taken:
            self._body.append(taken)
        if self._remaining == 0:
            self._complete = True
        return False

    def _head(self) -> bool:
        head, found, rest = self._buffer.partition(b"\r\n\r\n")
        if not found:
            return False
        self._buffer = rest
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = HeaderList(
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in lines)
        )
        if 100 <= status < 200:
            self._interim.append(status)
            return True
        self._status = status
        self._headers = headers
        length = headers.get("content-length")
        if self._method == "HEAD" or status in (204, 304):
            self._complete = True
        elif "chunked" in (headers.get("transfer-encoding") or "").lower():
            self._chunked = True
        elif length is not None:
            self._remaining = int(length)
            self._complete = self._remaining == 0
        return True

    def _chunk(self) -> bool:
        if self._remaining:
            taken = self._buffer[: self._remaining]
            self._buffer = self._buffer[len(taken) :]
            self._remaining -= len(taken)
            self._body.append(taken)
            return bool(taken) and self._remaining == 0
        line, found, rest = self._buffer.partition(b"\r\n")
        if not found:
            return False
        if self._remaining == 0:
            # The end of a chunk's data.
            self._buffer = rest
            self._remaining = None
            return True
        size = int(line.split(b";")[0], 16)
        if size == 0:
            if b"\r\n\r\n" not in b"\r\n" + rest and not rest.startswith(b"\r\n"):
                return False
            self._buffer = rest.partition(b"\r\n")[2]
            self._complete = True
            return False
        self._buffer = rest
        self._remaining = size
        return True


class _Connection(StringTransport):
    """
    The site's end of an in-memory connection: what the site writes is held
    until the client reads it, and while more than ``window`` bytes are
    unread, the site's producer is paused, as a socket's full buffer does.
    """

    def __init__(self, window: int | None, peer: str) -> None:
        super().__init__(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
            peerAddress=IPv4Address("TCP", peer, 50000),
        )
        self._window = window
        self.holding = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if (
            self._window is not None
            and not self.holding
            and self.producer is not None
            and len(self.value()) > self._window
        ):
            self.holding = True
            self.producer.pauseProducing()

    def take(self, size: int | None = None) -> bytes:
        """
        Read up to ``size`` bytes (all of them if ``None``) of what the site
        wrote, resuming its producer once the unread bytes fit the window.
        """
        data: bytes = self.value()
        taken, rest = (data, b"") if size is None else (data[:size], data[size:])
        self.clear()
        self.io.write(rest)
        if self.holding and (self._window is None or len(rest) <= self._window):
            self.holding = False
            if self.producer is not None:
                self.producer.resumeProducing()
        return taken


class Exchange:
    """
    One request to a L{SiteHarness}, on a connection of its own: the test
    sends the body (in pieces, if it likes) and reads the response.

    The client honours backpressure: while the site has paused reading
    from it, what L{send} is given waits (L{unsent}) until the site
    resumes. With a ``window``, the client reads the response only when
    told to (L{read}), and the site is paused while more than ``window``
    bytes are unread.
    """

    def __init__(
        self,
        harness: SiteHarness,
        method: str,
        head: bytes,
        chunked: bool,
        window: int | None,
        read_size: int,
        peer: str,
    ) -> None:
        self._harness = harness
        self._chunked = chunked
        self._window = window
        self._read_size = read_size
        self._parser = _ResponseParser(method)
        self._outgoing: list[bytes] = []
        self.transport = _Connection(window, peer)
        self.protocol = harness.site.buildProtocol(self.transport.getPeer())
        assert self.protocol is not None
        self.protocol.makeConnection(self.transport)
        self.closed = False
        self._outgoing.append(head)
        self.pump()

    @property
    def paused(self) -> bool:
        """
        Whether the site has paused reading from the client.
        """
        return bool(self.transport.producerState == "paused")

    @property
    def unsent(self) -> int:
        """
        Bytes the client holds because the site is not reading.
        """
        return sum(len(piece) for piece in self._outgoing)

    def send(self, data: bytes) -> None:
        """
        Send a piece of the request body (framed as a chunk for a chunked
        request); an empty piece sends nothing.
        """
        if not data:
            return
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self._outgoing.append(data)
        self.pump()

    def end(self) -> None:
        """
        End a chunked request body (a body with a length ends with its last
        byte).
        """
        if self._chunked:
            self._outgoing.append(b"0\r\n\r\n")
        self.pump()

    def disconnect(self) -> None:
        """
        The client goes away.
        """
        if not self.closed:
            self.closed = True
            self.transport.disconnecting = True
            self.protocol.connectionLost(Failure(ConnectionLost()))
            self._parser.lost()
        self._harness.clock.advance(0)

    def read(self, size: int | None = None) -> bytes:
        """
        Read up to ``size`` bytes of what the site sent (everything if
        ``None``).

        :return: the raw bytes read.
        """
        data = self.transport.take(size)
        self._parser.feed(data)
        self.pump()
        return data

    @property
    def unread(self) -> int:
        """
        Bytes the site sent that the client has not read.
        """
        return len(self.transport.value())

    def response(self) -> HarnessResponse | None:
        """
        The response as far as it has arrived (reading everything sent, if
        the client has no window), or ``None`` before its head.
        """
        if self._window is None:
            self.read()
        return self._parser.response

    def pump(self) -> None:
        """
        Move bytes until nothing more can move: the client's to the site
        while the site reads, and the end of the connection.
        """
        moved = True
        while moved:
            moved = False
            while (
                self._outgoing
                and not self.closed
                and self.transport.producerState == "producing"
            ):
                piece = self._outgoing[0]
                data, rest = piece[: self._read_size], piece[self._read_size :]
                if rest:
                    self._outgoing[0] = rest
                else:
                    self._outgoing.pop(0)
                self.protocol.dataReceived(data)
                moved = True
            self._harness.clock.advance(0)
            if self._window is None and self.transport.value():
                self._parser.feed(self.transport.take())
                moved = True
            if self.transport.disconnecting and not self.closed:
                self.closed = True
                self.protocol.connectionLost(Failure(ConnectionDone()))
                if self._window is None:
                    self._parser.feed(self.transport.take())
                self._parser.lost()
                moved = True


@define(eq=False)
class SiteHarness:
    """
    The whole site (L{multistore.web.site}, the gateway, its operations and
    stores) in memory, driven over in-memory connections: each request goes
    through twisted.web's HTTP/1.1 channel and multistore's streaming
    request, byte for byte, as from a socket.

    :ivar site: the site.
    :ivar gateway: its gateway.
    :ivar clock: the time of everything (advance it with L{advance}).
    :ivar stores: the stores' factory.
    :ivar host: the ``Host`` requests are sent to.
    :ivar region: the region requests are signed for.
    """

    site: MultistoreSite
    gateway: Gateway
    clock: MemoryReactorClock
    stores: IStoreFactory
    host: str = "127.0.0.1:8080"
    region: str = "us-east-1"
    exchanges: list[Exchange] = field(factory=list)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], **options: Any) -> SiteHarness:
        """
        Build the site for a configuration as TOML or JSON parsing gives it
        (checked as a configuration file is).

        :param options: as for L{from_config}.
        :raise multistore.configfile.ConfigError: for a bad configuration.
        """
        return cls.from_config(config_from_mapping(mapping), **options)

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        stores: IStoreFactory | None = None,
        clock: MemoryReactorClock | None = None,
        buckets: IBucketRegistry | None = None,
        credentials: ICredentialRegistry | None = None,
        middleware: Sequence[IMiddleware] = (),
        routes: Sequence[IRouteHandler] = (),
        domains: Sequence[str] = (),
        access_log: bool = False,
    ) -> SiteHarness:
        """
        Build the site for ``config``, as the daemon does, with the stores
        and registries given.

        :param stores: makes the buckets' stores; a L{MemoryStoreFactory}
            on ``clock`` if not given.
        :param clock: the time; one at L{HARNESS_EPOCH} if not given.
        :param buckets: the bucket registry; the configuration's if not
            given.
        :param credentials: the credential registry; the configuration's
            if not given.
        :param middleware: the middleware chain, in order.
        :param routes: route handlers for non-S3 endpoints.
        :param domains: domains for virtual-hosted-style requests, besides
            the configuration's.
        :param access_log: whether the gateway logs each request.
        """
        if clock is None:
            clock = MemoryReactorClock()
            clock.advance(HARNESS_EPOCH.timestamp())
        if stores is None:
            stores = MemoryStoreFactory(clock=clock)
        server = config.server
        if buckets is None:
            buckets = StaticBucketRegistry.from_config(config)
        if credentials is None:
            credentials = StaticCredentialRegistry.from_config(config)
        gateway = build_gateway(
            config,
            stores,
            clock,
            buckets=buckets,
            credentials=credentials,
            routes=routes,
            middleware=middleware,
            domains=domains,
            access_log=access_log,
        )
        site = make_site(gateway, clock, server_timing=server.server_timing)
        # Channel timeouts run on the harness's clock, not the global reactor.
        site.reactor = clock
        return cls(
            site=site, gateway=gateway, clock=clock, stores=stores, region=server.region
        )

    def open(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]] = (),
        *,
        sign: tuple[str, str] | None = None,
        payload: bytes | None = None,
        chunked: bool = False,
        window: int | None = None,
        read_size: int = 64 * 1024,
        peer: str = "127.0.0.1",
    ) -> Exchange:
        """
        Send a request's head, and leave its body to the test.

        :param target: the path and query, as on the wire.
        :param headers: the header fields (``Host`` is added if missing).
        :param sign: an access key id and secret to sign with (SigV4,
            header-signed).
        :param payload: the whole body, to sign its hash; without it the
            payload is signed as ``UNSIGNED-PAYLOAD``.
        :param chunked: send the body with ``Transfer-Encoding: chunked``.
        :param window: how many bytes of the response may wait unread
            before the site is paused; ``None`` to read everything at once.
        :param read_size: the most bytes the site is handed at a time.
        :param peer: the client's IP address.
        """
        fields = HeaderList(headers)
        if chunked:
            fields = fields.with_("transfer-encoding", "chunked")
        if sign is not None:
            payload_hash = (
                hashlib.sha256(payload).hexdigest()
                if payload is not None
                else UNSIGNED_PAYLOAD
            )
            fields = sign_request(
                method,
                f"http://{fields.get('host') or self.host}{target}",
                fields,
                payload_hash,
                sign[0],
                sign[1],
                None,
                self.region,
                datetime.fromtimestamp(self.clock.seconds(), UTC),
            )
        elif "host" not in fields:
            fields = HeaderList([("host", self.host), *fields])
        lines = [f"{method} {target} HTTP/1.1".encode("latin-1")]
        lines.extend(f"{n}: {v}".encode("latin-1") for n, v in fields)
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        exchange = Exchange(self, method, head, chunked, window, read_size, peer)
        self.exchanges.append(exchange)
        return exchange

    def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | Sequence[bytes] | None = None,
        *,
        sign: tuple[str, str] | None = None,
        chunked: bool = False,
    ) -> HarnessResponse:
        """
        Send a whole request and read its whole response.

        :param body: the body, whole or in pieces sent one after the other;
            its length is sent as ``Content-Length`` unless ``chunked`` or
            given.
        :raise AssertionError: if the response is not complete once
            everything has been sent (something waits for the clock, or a
            store's scripted Deferred): use L{open} for such requests.
        """
        pieces = [body] if isinstance(body, bytes) else list(body or [])
        payload = b"".join(pieces)
        fields = HeaderList(headers)
        if (
            body is not None
            and not chunked
            and "content-length" not in fields
            and "transfer-encoding" not in fields
        ):
            fields = fields.plus([("content-length", str(len(payload)))])
        exchange = self.open(
            method,
            target,
            fields,
            sign=sign,
            payload=payload if body is not None else b"",
            chunked=chunked,
        )
        for piece in pieces:
            exchange.send(piece)
        exchange.end()
        response = exchange.response()
        if response is None or not response.complete:
            raise AssertionError(f"no complete response to {method} {target}")
        return response

    def advance(self, seconds: float = 0) -> None:
        """
        Let ``seconds`` pass on the clock, then move every connection's
        bytes.
        """
        self.clock.advance(seconds)
        for exchange in self.exchanges:
            exchange.pump()
