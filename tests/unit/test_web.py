"""
Tests for L{multistore.web.site}: the gateway behind a real HTTP server on
the loopback interface, with bodies the tests control.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed, readBody
from twisted.web.http_headers import Headers

from multistore.auth.registry import StaticBucketRegistry, StaticCredentialRegistry
from multistore.config import BucketConfig, Config
from multistore.gateway.pipeline import Gateway
from multistore.headers import HeaderList
from multistore.model import ObjectResponse
from multistore.operations.dispatcher import Dispatcher
from multistore.s3.errors import S3Error
from multistore.testing import ControlledBody, MemoryStoreFactory
from multistore.web.site import make_site

CONFIG = Config(
    buckets=(BucketConfig(name="b", backend_type="fake", anonymous_access=True),)
)


class _Raw(Protocol):
    """
    A raw client that sends one request and records what comes back.
    """

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = b""
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost.callback(None)


class WebTests(TestCase):
    """
    The web edge over a real loopback connection.
    """

    timeout = 15

    def setUp(self) -> None:
        stores = MemoryStoreFactory()
        self.store = stores.store_named("b")
        buckets = StaticBucketRegistry.from_config(CONFIG)
        self.gateway = Gateway(
            buckets=buckets,
            credentials=StaticCredentialRegistry.from_config(CONFIG),
            dispatcher=Dispatcher(stores=stores, buckets=buckets),
            clock=reactor,
            access_log=False,
        )
        self.port = reactor.listenTCP(
            0, make_site(self.gateway, reactor), interface="127.0.0.1"
        )
        self.addCleanup(self.port.stopListening)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        self.agent = Agent(reactor, pool=self.pool)
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"

    def get(self, path: str, method: bytes = b"GET") -> Deferred[Any]:
        return self.agent.request(method, (self.url + path).encode("ascii"), Headers())

    @inlineCallbacks
    def started(self, body: ControlledBody) -> Any:
        """
        Wait until the web edge has started delivering ``body``.
        """
        while body.done is None:
            yield deferLater(reactor, 0.01, lambda: None)

    def raw(self, request: bytes) -> _Raw:
        protocol = _Raw(request)
        factory = ClientFactory.forProtocol(lambda: protocol)
        reactor.connectTCP("127.0.0.1", self.port.getHost().port, factory)
        return protocol

    @inlineCallbacks
    def test_streams_with_length(self) -> Any:
        """
        A streamed body gets its length, the request id header and the
        bytes the body writes.
        """
        body = ControlledBody(length=6)
        self.store.script(
            "get_object", ObjectResponse(200, HeaderList.of(etag='"x"'), body)
        )
        response_d = self.get("/b/k")
        yield self.started(body)
        # Headers go out with the first bytes of the body.
        body.consumer.write(b"abc")
        response = yield response_d
        self.assertEqual(response.length, 6)
        self.assertEqual(
            len(response.headers.getRawHeaders(b"x-amz-request-id")[0]), 16
        )
        self.assertEqual(response.headers.getRawHeaders(b"server"), [b"multistore"])
        reading = readBody(response)
        body.consumer.write(b"def")
        body.consumer.unregisterProducer()
        assert body.done is not None
        body.done.callback(6)
        self.assertEqual((yield reading), b"abcdef")

    @inlineCallbacks
    def test_failure_mid_body_cuts_connection(self) -> Any:
        """
        A body that fails after its first bytes ends with the connection
        cut, so the client cannot take it for a whole object.
        """
        body = ControlledBody(length=100)
        self.store.script("get_object", ObjectResponse(200, HeaderList(), body))
        response_d = self.get("/b/k")
        yield self.started(body)
        body.consumer.write(b"partial")
        response = yield response_d
        reading = readBody(response)
        body.consumer.unregisterProducer()
        assert body.done is not None
        body.done.errback(S3Error("ServiceUnavailable"))
        yield self.assertFailure(reading, ResponseFailed)

    @inlineCallbacks
    def test_failure_before_body_is_an_error(self) -> Any:
        """
        A body that fails before writing anything gives a proper S3 error.
        """
        body = ControlledBody(length=100)
        self.store.script("get_object", ObjectResponse(200, HeaderList(), body))
        response_d = self.get("/b/k")
        yield self.started(body)
        assert body.done is not None
        body.done.errback(S3Error("ServiceUnavailable"))
        response = yield response_d
        text = yield readBody(response)
        self.assertEqual(response.code, 503)
        self.assertIn(b"<Code>ServiceUnavailable</Code>", text)

    @inlineCallbacks
    def test_client_gone_cancels(self) -> Any:
        """
        When the client disconnects mid-body, the delivery is stopped
        (or cancelled).
        """
        body = ControlledBody(length=1000)
        self.store.script("get_object", ObjectResponse(200, HeaderList(), body))
        client = self.raw(b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n")
        while body.consumer is None:
            yield deferLater(reactor, 0.01, lambda: None)
        body.consumer.write(b"x" * 10)
        while b"xxxxxxxxxx" not in client.received:
            yield deferLater(reactor, 0.01, lambda: None)
        assert client.transport is not None
        client.transport.loseConnection()
        yield client.lost
        for _ in range(100):
            if body.cancelled or body.stopped:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(body.cancelled or body.stopped)

    @inlineCallbacks
    def test_head_keeps_length(self) -> Any:
        """
        A HEAD answer keeps the object's length and sends no body.
        """
        self.store.script(
            "get_object",
            ObjectResponse(200, HeaderList.of(content_length="1234"), None),
        )
        client = self.raw(b"HEAD /b/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        yield client.lost
        head, _, rest = client.received.partition(b"\r\n\r\n")
        self.assertIn(b"Content-Length: 1234", head)
        self.assertEqual(rest, b"")

    @inlineCallbacks
    def test_error_request_id_matches(self) -> Any:
        """
        An error's ``RequestId`` is the ``x-amz-request-id`` header, and no
        traceback or HTML is shown for an internal failure.
        """
        self.store.script("get_object", RuntimeError("boom"))
        response = yield self.get("/b/k")
        text = yield readBody(response)
        request_id = response.headers.getRawHeaders(b"x-amz-request-id")[0]
        self.assertEqual(response.code, 500)
        self.assertIn(b"<RequestId>" + request_id + b"</RequestId>", text)
        self.assertNotIn(b"Traceback", text)
        self.assertNotIn(b"boom", text)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    @inlineCallbacks
    def test_large_unexpected_body_is_not_kept(self) -> Any:
        """
        A large body on a request that does not stream one is dropped as it
        arrives, not spooled, and the request still gets its answer.
        """
        self.store.script("get_object", ObjectResponse(200, HeaderList(), None))
        size = 3 * 1024 * 1024
        client = self.raw(
            b"GET /b/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
            % (size,)
            + b"z" * size
        )
        yield client.lost
        self.assertIn(b"200 OK", client.received.split(b"\r\n", 1)[0])

    @inlineCallbacks
    def test_refusal_not_drained(self) -> Any:
        """
        A refused upload with more than a little of its body still to come
        is answered at once and the connection closed, without reading the
        rest; one waiting for 100 Continue is answered instead of continued.
        """
        for extra in (b"", b"Expect: 100-continue\r\n"):
            client = self.raw(
                b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5242880\r\n"
                + extra
                + b"\r\n"
                + b"z" * 1000
            )
            yield client.lost
            head = client.received.split(b"\r\n", 1)[0]
            self.assertEqual(head, b"HTTP/1.1 403 Forbidden", client.received[:200])
            self.assertIn(b"<Code>AccessDenied</Code>", client.received)
            self.assertNotIn(b"100 Continue", client.received)
