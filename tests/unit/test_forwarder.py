"""
Tests for L{multistore.forwarder.agent}.

The first classes drive the forwarder and its bodies with fakes and a
L{Clock}; the loopback classes run it against real HTTP servers on
127.0.0.1 (a C{twisted.web} site, and raw protocols that misbehave).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    gatherResults,
    succeed,
)
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import (
    IConsumer,
    IProducer,
    IPushProducer,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import (
    URI,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    RequestGenerationFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from multistore.bodies import (
    CONNECTION_BUFFER,
    SMALL_BODY,
    BytesBody,
    BytesProducer,
    DeliveryStopped,
    IBody,
    read_body,
)
from multistore.forwarder.agent import CACHED_CONNECTION_TIMEOUT, AgentForwarder
from multistore.forwarder.connections import BackendEndpoints, _LargeBufferEndpoint
from multistore.forwarder.headers import (
    HOP_BY_HOP_HEADERS,
    end_to_end_headers,
    outgoing_headers,
)
from multistore.forwarder.relay import AgentBody
from multistore.headers import HeaderList
from multistore.interfaces import IForwarder
from multistore.model import BackendRequest, BackendResponse
from multistore.s3.errors import S3Error
from multistore.testing import CollectingConsumer, ControlledBody, ControlledProducer

reactor: Any = _global_reactor

MiB = 1024 * 1024


# ---------------------------------------------------------------------------
# Fakes


@implementer(IPushProducer)
class FakeTransport:
    """
    The push producer a response body is read from; records what is asked.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.paused = False
        self.stopped = False

    def pauseProducing(self) -> None:
        self.calls.append("pause")
        self.paused = True

    def resumeProducing(self) -> None:
        self.calls.append("resume")
        self.paused = False

    def stopProducing(self) -> None:
        self.calls.append("stop")
        self.stopped = True


class FakeResponse:
    """
    Enough of an C{IResponse} for the forwarder: like Twisted's, it resumes
    its transport once a body protocol is connected.
    """

    def __init__(
        self,
        code: int = 200,
        headers: Headers | None = None,
        length: object = UNKNOWN_LENGTH,
    ) -> None:
        self.code = code
        self.phrase = b"OK"
        self.version = (b"HTTP", 1, 1)
        self.headers = headers if headers is not None else Headers()
        self.length = length
        self.transport = FakeTransport()
        self.protocol: Any = None

    def deliverBody(self, protocol: Any) -> None:
        if self.protocol is not None:
            raise RuntimeError("deliverBody called twice")
        self.protocol = protocol
        protocol.makeConnection(self.transport)
        self.transport.resumeProducing()


@implementer(IAgent)
class FakeAgent:
    """
    An agent whose requests stay pending until the test fires them.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[Any]:
        record: dict[str, Any] = {
            "method": method,
            "uri": uri,
            "headers": headers,
            "body": bodyProducer,
            "cancelled": False,
        }

        def cancel(d: Deferred[Any]) -> None:
            record["cancelled"] = True

        record["deferred"] = Deferred(cancel)
        self.requests.append(record)
        return cast(Deferred[Any], record["deferred"])


def pump_body(
    timeout: float = 5.0, length: object = UNKNOWN_LENGTH
) -> tuple[AgentBody, FakeResponse, Clock]:
    """
    An L{AgentBody} over a fake response and clock.
    """
    clock = Clock()
    response = FakeResponse(length=length)
    body = AgentBody(response=response, clock=clock, timeout=timeout, where="u")
    return body, response, clock


# ---------------------------------------------------------------------------
# Pure helpers

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1)
_value = st.text(
    alphabet=st.sampled_from([chr(c) for c in range(0x20, 0x100) if c != 0x7F]),
    max_size=20,
).map(str.strip)


class EndToEndHeadersTests(SynchronousTestCase):
    """
    Tests for L{end_to_end_headers}.
    """

    def test_drops_hop_by_hop_and_connection_listed(self) -> None:
        """
        Hop-by-hop fields and fields named in C{Connection} are dropped;
        repeated fields keep every value in order.
        """
        raw = [
            (b"Connection", [b"X-Private, keep-alive", b"X-Other"]),
            (b"Keep-Alive", [b"timeout=5"]),
            (b"X-Private", [b"secret"]),
            (b"X-Other", [b"other"]),
            (b"Proxy-Authenticate", [b"Basic"]),
            (b"Set-Cookie", [b"a=1", b"b=2"]),
            (b"ETag", [b'"abc"']),
        ]
        self.assertEqual(
            end_to_end_headers(raw),
            HeaderList(
                [("set-cookie", "a=1"), ("set-cookie", "b=2"), ("etag", '"abc"')]
            ),
        )

    def test_latin1_round_trip(self) -> None:
        """
        Values are decoded as ISO-8859-1, so every byte survives.
        """
        value = bytes(range(0x20, 0x100)).replace(b"\x7f", b"")
        headers = end_to_end_headers([(b"X-Amz-Meta-Bytes", [value])])
        self.assertEqual(
            headers.get("x-amz-meta-bytes", "").encode("iso-8859-1"), value
        )

    @given(
        st.lists(
            st.tuples(_token, st.lists(_value, min_size=1, max_size=3)), max_size=8
        ),
        st.lists(_token, max_size=3),
    )
    def test_property(
        self, fields: list[tuple[str, list[str]]], listed: list[str]
    ) -> None:
        """
        Whatever the fields, the result holds exactly the values of the
        fields that are neither hop-by-hop nor named in C{Connection}, in
        order.
        """
        raw: list[tuple[bytes, list[bytes]]] = [
            (name.encode(), [v.encode("iso-8859-1") for v in values])
            for name, values in fields
        ]
        if listed:
            raw.append((b"Connection", [", ".join(listed).encode()]))
        drop = set(HOP_BY_HOP_HEADERS) | set(listed)
        expected = [
            (name, value)
            for name, values in fields
            if name not in drop
            for value in values
        ]
        self.assertEqual(list(end_to_end_headers(raw)), expected)


class OutgoingHeadersTests(SynchronousTestCase):
    """
    Tests for L{outgoing_headers}.
    """

    def test_adds_user_agent(self) -> None:
        """
        A C{User-Agent} is added when the request has none.
        """
        headers = outgoing_headers(HeaderList.of(("x-amz-date", "1")), "ua/1")
        self.assertEqual(headers.getRawHeaders(b"user-agent"), [b"ua/1"])
        self.assertEqual(headers.getRawHeaders(b"x-amz-date"), [b"1"])

    def test_keeps_user_agent(self) -> None:
        """
        A request's own C{User-Agent} is kept, not doubled.
        """
        headers = outgoing_headers(HeaderList.of(("user-agent", "mine")), "ua/1")
        self.assertEqual(headers.getRawHeaders(b"user-agent"), [b"mine"])

    def test_drops_framing(self) -> None:
        """
        The transport writes the framing and connection fields itself; a
        signed C{Host} is kept.
        """
        headers = outgoing_headers(
            HeaderList.of(
                ("content-length", "5"),
                ("transfer-encoding", "chunked"),
                ("connection", "close"),
                ("host", "bucket.example"),
            ),
            "ua",
        )
        self.assertIsNone(headers.getRawHeaders(b"content-length"))
        self.assertIsNone(headers.getRawHeaders(b"transfer-encoding"))
        self.assertIsNone(headers.getRawHeaders(b"connection"))
        self.assertEqual(headers.getRawHeaders(b"host"), [b"bucket.example"])

    @given(st.lists(st.tuples(st.just("x-amz-meta-v"), _value), min_size=1, max_size=4))
    def test_values_encoded_latin1(self, fields: list[tuple[str, str]]) -> None:
        """
        Repeated fields keep every value, encoded as ISO-8859-1.
        """
        headers = outgoing_headers(HeaderList(fields), "ua")
        self.assertEqual(
            headers.getRawHeaders(b"x-amz-meta-v"),
            [value.encode("iso-8859-1") for _, value in fields],
        )


# ---------------------------------------------------------------------------
# In-memory bodies


class BytesBodyTests(SynchronousTestCase):
    """
    Tests for L{BytesBody}.
    """

    def test_interface(self) -> None:
        """
        It provides L{IBody} and C{IPushProducer}.
        """
        body = BytesBody(b"abc")
        self.assertTrue(verifyObject(IBody, body))
        self.assertTrue(verifyObject(IPushProducer, body))
        self.assertEqual(body.length, 3)

    def test_delivers(self) -> None:
        """
        Every byte is written with the producer registered, which is
        unregistered before the Deferred fires with the count.
        """
        consumer = CollectingConsumer()
        data = os.urandom(200_000)
        done = BytesBody(data, chunk_size=65536).deliver(consumer)
        self.assertEqual(self.successResultOf(done), len(data))
        self.assertEqual(consumer.value(), data)
        self.assertEqual(consumer.writes_without_producer, 0)
        self.assertEqual((consumer.registrations, consumer.unregistrations), (1, 1))
        self.assertTrue(consumer.streaming)

    def test_empty(self) -> None:
        """
        An empty body fires with 0 and writes nothing.
        """
        consumer = CollectingConsumer()
        self.assertEqual(self.successResultOf(BytesBody(b"").deliver(consumer)), 0)
        self.assertEqual(consumer.chunks, [])

    def test_pause_resume(self) -> None:
        """
        Nothing is written while paused; resuming carries on.
        """
        consumer = CollectingConsumer(pause_after=1)
        done = BytesBody(b"x" * 10, chunk_size=3).deliver(consumer)
        self.assertNoResult(done)
        self.assertEqual(consumer.value(), b"xxx")
        consumer.producer.resumeProducing()
        self.assertEqual(self.successResultOf(done), 10)
        self.assertEqual(consumer.value(), b"x" * 10)

    @given(st.binary(max_size=5000), st.integers(min_value=1, max_value=700))
    def test_pausing_consumer_gets_everything(self, data: bytes, chunk: int) -> None:
        """
        A consumer that pauses after every write and resumes later still
        gets every byte, in order.
        """
        transport = StringTransport()
        done = BytesBody(data, chunk_size=chunk).deliver(transport)
        for _ in range(len(data) + 2):
            if transport.producer is None:
                break
            transport.producer.pauseProducing()
            transport.producer.resumeProducing()
        self.assertEqual(self.successResultOf(done), len(data))
        self.assertEqual(transport.value(), data)

    def test_stop(self) -> None:
        """
        C{stopProducing} ends the delivery with L{DeliveryStopped}.
        """
        consumer = CollectingConsumer(pause_after=1)
        done = BytesBody(b"abcdef", chunk_size=2).deliver(consumer)
        consumer.producer.stopProducing()
        self.failureResultOf(done, DeliveryStopped)
        consumer.producer.resumeProducing()
        self.assertEqual(consumer.value(), b"ab")

    def test_cancel(self) -> None:
        """
        Cancelling unregisters the producer and writes nothing more.
        """
        consumer = CollectingConsumer(pause_after=1)
        body = BytesBody(b"abcdef", chunk_size=2)
        done = body.deliver(consumer)
        producer = consumer.producer
        done.cancel()
        self.failureResultOf(done, CancelledError)
        self.assertIsNone(consumer.producer)
        producer.resumeProducing()
        self.assertEqual(consumer.value(), b"ab")

    def test_once(self) -> None:
        """
        A body is delivered once; a second delivery raises, and a discard
        after the first delivery or discard does nothing.
        """
        body = BytesBody(b"abc")
        body.discard()
        self.assertRaises(RuntimeError, body.deliver, CollectingConsumer())
        body.discard()
        delivered = BytesBody(b"abc")
        consumer = CollectingConsumer()
        done = delivered.deliver(consumer)
        delivered.discard()
        self.assertRaises(RuntimeError, delivered.deliver, CollectingConsumer())
        self.assertEqual(self.successResultOf(done), 3)
        self.assertEqual(consumer.value(), b"abc")


class BytesProducerTests(SynchronousTestCase):
    """
    Tests for L{BytesProducer}.
    """

    def test_produces(self) -> None:
        """
        It writes its bytes at once and reports their length.
        """
        producer = BytesProducer(b"payload")
        self.assertTrue(verifyObject(IBodyProducer, producer))
        self.assertEqual(producer.length, 7)
        transport = StringTransport()
        self.successResultOf(producer.startProducing(transport))
        self.assertEqual(transport.value(), b"payload")
        producer.pauseProducing()
        producer.resumeProducing()
        producer.stopProducing()


class ReadBodyTests(SynchronousTestCase):
    """
    Tests for L{read_body}.
    """

    def test_reads(self) -> None:
        """
        A body within the limit is returned whole.
        """
        data = os.urandom(5000)
        self.assertEqual(
            self.successResultOf(read_body(BytesBody(data, chunk_size=7), 5000)), data
        )

    def test_known_length_over_limit(self) -> None:
        """
        A body whose length is known to exceed the limit is discarded unread.
        """
        body = ControlledBody(length=101)
        failure = self.failureResultOf(read_body(body, 100), S3Error)
        self.assertEqual(failure.value.code, "ServiceUnavailable")
        self.assertIn("oversized", failure.value.message)
        self.assertTrue(body.discarded)

    def test_unknown_length_over_limit(self) -> None:
        """
        A body of unknown length is stopped as soon as it exceeds the limit.
        """
        body = ControlledBody(length=None)
        reading = read_body(body, 25)
        for _ in range(10):
            if body.stopped:
                break
            body.send(b"0123456789")
        failure = self.failureResultOf(reading, S3Error)
        self.assertEqual(failure.value.code, "ServiceUnavailable")
        self.assertTrue(body.stopped)

    def test_failure_passes_through(self) -> None:
        """
        A body that fails delivery fails the read the same way.
        """
        body, response, _ = pump_body(length=10)
        reading = read_body(body, 100)
        response.protocol.dataReceived(b"abc")
        response.protocol.connectionLost(
            Failure(ResponseFailed([Failure(ConnectionLost())]))
        )
        self.assertEqual(
            self.failureResultOf(reading, S3Error).value.code, "ServiceUnavailable"
        )


# ---------------------------------------------------------------------------
# AgentBody over a fake response


class AgentBodyTests(SynchronousTestCase):
    """
    Tests for L{AgentBody} with a fake response and clock.
    """

    def test_interface(self) -> None:
        """
        It provides L{IBody}; its length is the response's, or C{None}.
        """
        body, _, _ = pump_body(length=12)
        self.assertTrue(verifyObject(IBody, body))
        self.assertEqual(body.length, 12)
        self.assertIsNone(pump_body()[0].length)

    def test_streams(self) -> None:
        """
        The body registers itself as a streaming producer and writes each
        chunk straight through; on C{ResponseDone} it unregisters and fires
        with the count.
        """
        body, response, _ = pump_body(length=6)
        consumer = CollectingConsumer()
        done = body.deliver(consumer)
        self.assertIs(consumer.producer, response.protocol)
        self.assertTrue(consumer.streaming)
        response.protocol.dataReceived(b"abc")
        response.protocol.dataReceived(b"def")
        self.assertEqual(consumer.value(), b"abcdef")
        self.assertNoResult(done)
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.successResultOf(done), 6)
        self.assertEqual(consumer.unregistrations, 1)

    def test_potential_data_loss_completes(self) -> None:
        """
        A body without a length that ends when the connection closes is
        complete.
        """
        body, response, _ = pump_body()
        consumer = CollectingConsumer()
        done = body.deliver(consumer)
        response.protocol.dataReceived(b"abc")
        response.protocol.connectionLost(Failure(PotentialDataLoss()))
        self.assertEqual(self.successResultOf(done), 3)

    def test_cut_short(self) -> None:
        """
        A body cut short fails with C{ServiceUnavailable}, after unregistering.
        """
        body, response, _ = pump_body(length=10)
        consumer = CollectingConsumer()
        done = body.deliver(consumer)
        response.protocol.dataReceived(b"abc")
        response.protocol.connectionLost(
            Failure(ResponseFailed([Failure(ConnectionLost())]))
        )
        failure = self.failureResultOf(done, S3Error)
        self.assertEqual(failure.value.code, "ServiceUnavailable")
        self.assertIsNone(consumer.producer)

    def test_backpressure(self) -> None:
        """
        Pausing and resuming the body pauses and resumes the backend
        transport, even when the consumer pauses while the response is
        still connecting the body.
        """
        body, response, _ = pump_body()
        consumer = CollectingConsumer()

        class PausingAtOnce(CollectingConsumer):
            def registerProducer(self, producer: IProducer, streaming: bool) -> None:
                super().registerProducer(producer, streaming)
                cast(IPushProducer, producer).pauseProducing()

        consumer = PausingAtOnce()
        body.deliver(consumer)
        self.assertTrue(response.transport.paused)
        consumer.producer.resumeProducing()
        self.assertFalse(response.transport.paused)
        consumer.producer.pauseProducing()
        self.assertTrue(response.transport.paused)

    def test_idle_timeout(self) -> None:
        """
        A backend silent for the timeout while the consumer is ready fails
        the delivery with C{GatewayTimeout} and closes the connection; each
        chunk restarts the timer.
        """
        body, response, clock = pump_body(timeout=2.0)
        consumer = CollectingConsumer()
        done = body.deliver(consumer)
        clock.advance(1.5)
        response.protocol.dataReceived(b"abc")
        clock.advance(1.5)
        self.assertNoResult(done)
        clock.advance(0.5)
        failure = self.failureResultOf(done, S3Error)
        self.assertEqual(failure.value.code, "GatewayTimeout")
        self.assertEqual(failure.value.status, 504)
        self.assertTrue(response.transport.stopped)
        self.assertIsNone(consumer.producer)
        response.protocol.dataReceived(b"late")
        response.protocol.connectionLost(Failure(ResponseFailed([])))
        self.assertEqual(consumer.value(), b"abc")

    def test_paused_does_not_time_out(self) -> None:
        """
        While the consumer has paused the body the idle timer is suspended:
        a slow client is not a slow backend.
        """
        body, response, clock = pump_body(timeout=2.0)
        consumer = CollectingConsumer()
        done = body.deliver(consumer)
        consumer.producer.pauseProducing()
        clock.advance(100)
        self.assertNoResult(done)
        self.assertEqual(clock.getDelayedCalls(), [])
        consumer.producer.resumeProducing()
        clock.advance(1.9)
        response.protocol.dataReceived(b"x")
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.successResultOf(done), 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_cancel(self) -> None:
        """
        Cancelling unregisters, closes the backend connection and fails with
        C{CancelledError}; nothing reaches the consumer afterwards.
        """
        body, response, clock = pump_body()
        consumer = CollectingConsumer()
        done = body.deliver(consumer)
        response.protocol.dataReceived(b"abc")
        done.cancel()
        self.failureResultOf(done, CancelledError)
        self.assertTrue(response.transport.stopped)
        self.assertIsNone(consumer.producer)
        response.protocol.dataReceived(b"more")
        response.protocol.connectionLost(Failure(ResponseFailed([])))
        self.assertEqual(consumer.value(), b"abc")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_consumer_stops(self) -> None:
        """
        A consumer calling C{stopProducing} closes the backend connection and
        fails the delivery with L{DeliveryStopped}.
        """
        body, response, _ = pump_body()
        consumer = CollectingConsumer()
        done = body.deliver(consumer)
        consumer.producer.stopProducing()
        self.failureResultOf(done, DeliveryStopped)
        self.assertTrue(response.transport.stopped)

    def test_discard_small(self) -> None:
        """
        Discarding a small body reads it so the connection can be reused.
        """
        body, response, clock = pump_body(length=SMALL_BODY)
        body.discard()
        self.assertFalse(response.transport.stopped)
        response.protocol.dataReceived(b"x" * 100)
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_discard_small_stalled(self) -> None:
        """
        A small body being discarded whose backend stalls is cut off.
        """
        body, response, clock = pump_body(timeout=3.0, length=10)
        body.discard()
        clock.advance(3.0)
        self.assertTrue(response.transport.stopped)

    def test_discard_large(self) -> None:
        """
        Discarding a large body, or one of unknown length, closes the
        connection.
        """
        for length in (SMALL_BODY + 1, UNKNOWN_LENGTH):
            body, response, _ = pump_body(length=length)
            body.discard()
            self.assertTrue(response.transport.stopped)

    def test_once(self) -> None:
        """
        A body is delivered once; a discard after delivery does nothing to
        it, and a second delivery raises.
        """
        body, response, _ = pump_body()
        consumer = CollectingConsumer()
        body.deliver(consumer)
        body.discard()
        self.assertRaises(RuntimeError, body.deliver, CollectingConsumer())
        response.protocol.dataReceived(b"abc")
        self.assertEqual(consumer.value(), b"abc")
        self.assertFalse(response.transport.stopped)


# ---------------------------------------------------------------------------
# AgentForwarder over a fake agent


def request_of(**kwargs: Any) -> BackendRequest:
    kwargs.setdefault("method", "GET")
    kwargs.setdefault("url", "http://backend.example/bucket/key?X-Amz-Signature=s3cr3t")
    return BackendRequest(**kwargs)


class AgentForwarderTests(SynchronousTestCase):
    """
    Tests for L{AgentForwarder} with a fake agent and a clock.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.agent = FakeAgent()
        self.forwarder = AgentForwarder(
            reactor=self.clock, agent=self.agent, timeout=10.0, user_agent="ua/1"
        )
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_interface(self) -> None:
        """
        It provides L{IForwarder}.
        """
        self.assertTrue(verifyObject(IForwarder, self.forwarder))

    def test_create(self) -> None:
        """
        L{AgentForwarder.create} builds a persistent pool with the given
        size and a short idle-connection lifetime.
        """
        forwarder = AgentForwarder.create(
            self.clock,
            connect_timeout=1.0,
            timeout=5.0,
            max_connections_per_host=32,
            user_agent="ua",
        )
        pool = forwarder._pool
        assert isinstance(pool, HTTPConnectionPool)
        self.assertTrue(pool.persistent)
        self.assertEqual(pool.maxPersistentPerHost, 32)
        self.assertEqual(pool.cachedConnectionTimeout, CACHED_CONNECTION_TIMEOUT)
        self.assertTrue(verifyObject(IAgent, forwarder._agent))
        self.assertIsNone(self.successResultOf(forwarder.close()))

    def test_sends(self) -> None:
        """
        The method, URL and headers are passed on, with a C{User-Agent}; the
        body producer keeps its length.
        """
        body = BytesProducer(b"hello")
        self.forwarder.forward(
            request_of(
                method="PUT", headers=HeaderList.of(("x-amz-date", "d")), body=body
            )
        )
        [sent] = self.agent.requests
        self.assertEqual(sent["method"], b"PUT")
        self.assertEqual(
            sent["uri"], b"http://backend.example/bucket/key?X-Amz-Signature=s3cr3t"
        )
        self.assertEqual(sent["headers"].getRawHeaders(b"x-amz-date"), [b"d"])
        self.assertEqual(sent["headers"].getRawHeaders(b"user-agent"), [b"ua/1"])
        self.assertEqual(sent["body"].length, 5)
        transport = StringTransport()
        self.successResultOf(sent["body"].startProducing(transport))
        self.assertEqual(transport.value(), b"hello")

    def test_response(self) -> None:
        """
        The response's status, end-to-end headers (with the framing length)
        and body come back.
        """
        result = self.forwarder.forward(request_of())
        headers = Headers({b"ETag": [b'"e"'], b"Keep-Alive": [b"timeout=3"]})
        response = FakeResponse(code=206, headers=headers, length=42)
        self.agent.requests[0]["deferred"].callback(response)
        backend = self.successResultOf(result)
        self.assertIsInstance(backend, BackendResponse)
        self.assertEqual(backend.status, 206)
        self.assertEqual(
            backend.headers, HeaderList([("etag", '"e"'), ("content-length", "42")])
        )
        self.assertEqual(backend.body.length, 42)

    def test_no_length_for_304(self) -> None:
        """
        A 304 gets no made-up C{Content-Length}.
        """
        result = self.forwarder.forward(request_of())
        self.agent.requests[0]["deferred"].callback(FakeResponse(code=304, length=0))
        self.assertNotIn("content-length", self.successResultOf(result).headers)

    def test_header_timeout(self) -> None:
        """
        Without response headers within the timeout the request is cancelled
        and fails with C{GatewayTimeout}.
        """
        result = self.forwarder.forward(request_of(timeout=0.5))
        self.clock.advance(0.49)
        self.assertNoResult(result)
        self.clock.advance(0.01)
        failure = self.failureResultOf(result, S3Error)
        self.assertEqual(failure.value.code, "GatewayTimeout")
        self.assertEqual(failure.value.status, 504)
        self.assertEqual(
            failure.value.message, "the backend store did not answer within 0.5 seconds"
        )
        self.assertTrue(self.agent.requests[0]["cancelled"])

    def test_default_timeout(self) -> None:
        """
        A request without its own timeout gets the forwarder's.
        """
        result = self.forwarder.forward(request_of())
        self.clock.advance(9.9)
        self.assertNoResult(result)
        self.clock.advance(0.1)
        self.failureResultOf(result, S3Error)

    def test_timer_follows_request_body(self) -> None:
        """
        While the request body flows at the client's pace the timer is
        suspended; it runs while the backend holds the body back, and again
        once the body is sent.
        """
        slow = ControlledProducer(length=1)
        result = self.forwarder.forward(
            request_of(method="PUT", body=slow, timeout=1.0)
        )
        producer = self.agent.requests[0]["body"]
        producer.startProducing(StringTransport())
        self.clock.advance(100)
        self.assertNoResult(result)
        producer.pauseProducing()
        self.clock.advance(0.9)
        producer.resumeProducing()
        self.clock.advance(100)
        self.assertNoResult(result)
        slow.done.callback(None)
        self.clock.advance(0.9)
        self.assertNoResult(result)
        self.clock.advance(0.1)
        self.assertEqual(
            self.failureResultOf(result, S3Error).value.code, "GatewayTimeout"
        )

    def test_body_cancel_stops_producer(self) -> None:
        """
        When the agent cancels the request body (the request is aborted),
        the body producer is told to stop as well.
        """
        slow = ControlledProducer(length=1)
        self.forwarder.forward(request_of(method="PUT", body=slow))
        producing = self.agent.requests[0]["body"].startProducing(StringTransport())
        producing.cancel()
        self.failureResultOf(producing, CancelledError)
        self.assertTrue(slow.stopped)

    def test_timer_runs_while_body_held_back(self) -> None:
        """
        A backend that stops taking the request body for the timeout fails
        the request with C{GatewayTimeout}.
        """
        result = self.forwarder.forward(
            request_of(method="PUT", body=BytesProducer(b"x"), timeout=1.0)
        )
        producer = self.agent.requests[0]["body"]
        producer.startProducing(StringTransport())
        producer.pauseProducing()
        self.clock.advance(1.0)
        self.assertEqual(
            self.failureResultOf(result, S3Error).value.code, "GatewayTimeout"
        )

    def test_unreachable(self) -> None:
        """
        Connection failures become C{ServiceUnavailable}, logged without the
        query string.
        """
        for error in (
            ConnectionRefusedError(),
            ResponseNeverReceived([Failure(ConnectionLost())]),
            ResponseFailed([Failure(ConnectionLost())]),
        ):
            result = self.forwarder.forward(request_of())
            self.agent.requests[-1]["deferred"].errback(error)
            failure = self.failureResultOf(result, S3Error)
            self.assertEqual(failure.value.code, "ServiceUnavailable")
            self.assertEqual(failure.value.status, 503)
        self.assertTrue(self.events)
        self.assertNotIn("s3cr3t", repr(self.events))
        self.assertIn("http://backend.example/bucket/key", repr(self.events))

    def test_body_failure(self) -> None:
        """
        A request body that fails (a client's upload that does not verify)
        fails the request with the body's own error.
        """
        result = self.forwarder.forward(
            request_of(method="PUT", body=BytesProducer(b"x"))
        )
        error = S3Error("SignatureDoesNotMatch")
        self.agent.requests[0]["deferred"].errback(
            RequestGenerationFailed([Failure(error)])
        )
        self.assertIs(self.failureResultOf(result, S3Error).value, error)
        self.flushLoggedErrors(S3Error, RequestGenerationFailed)

    def test_other_failure(self) -> None:
        """
        An unexpected failure is logged and passed on unchanged.
        """
        result = self.forwarder.forward(request_of())
        self.agent.requests[0]["deferred"].errback(ValueError("bug"))
        self.failureResultOf(result, ValueError)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_bad_url(self) -> None:
        """
        A URL that cannot be sent fails the request at once.
        """
        result = self.forwarder.forward(request_of(url="http://h/\u00e9"))
        self.failureResultOf(result, UnicodeEncodeError)
        self.flushLoggedErrors(UnicodeEncodeError)

    def test_cancel(self) -> None:
        """
        Cancelling cancels the agent's request and fails with
        C{CancelledError}, not a backend error.
        """
        result = self.forwarder.forward(request_of())
        result.cancel()
        self.failureResultOf(result, CancelledError)
        self.assertTrue(self.agent.requests[0]["cancelled"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_response_after_cancel(self) -> None:
        """
        A response that arrives as the request is cancelled is released (its
        connection closed), not handed out.
        """
        response = FakeResponse()

        @implementer(IAgent)
        class Answering:
            def request(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
                return Deferred(lambda d: d.callback(response))

        forwarder = AgentForwarder(reactor=self.clock, agent=Answering())
        result = forwarder.forward(request_of())
        result.cancel()
        self.failureResultOf(result, CancelledError)
        self.assertTrue(response.transport.stopped)


# ---------------------------------------------------------------------------
# Loopback: real servers on 127.0.0.1


def inline(
    f: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., Deferred[None]]:
    """
    Run an C{async def} test method as a Deferred (trial on every supported
    Twisted version waits for Deferreds, not for coroutines).
    """

    @wraps(f)
    def run(*args: Any, **kwargs: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(f(*args, **kwargs))

    return run


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """
    Wait until ``check()`` holds, for at most ``within`` seconds.
    """
    for _ in range(int(within / 0.01)):
        if check():
            return
        await sleep(0.01)
    raise AssertionError("condition not reached in time")


class Tracking(WrappingFactory):
    """
    Wraps a server factory to count connections and report each one's end.
    """

    def __init__(self, wrapped: Factory) -> None:
        WrappingFactory.__init__(self, wrapped)
        self.connections = 0
        self.closed: list[Deferred[None]] = []
        self._open: dict[ProtocolWrapper, Deferred[None]] = {}

    def registerProtocol(self, p: ProtocolWrapper) -> None:
        WrappingFactory.registerProtocol(self, p)
        self.connections += 1
        lost: Deferred[None] = Deferred()
        self._open[p] = lost
        self.closed.append(lost)

    def unregisterProtocol(self, p: ProtocolWrapper) -> None:
        WrappingFactory.unregisterProtocol(self, p)
        lost = self._open.pop(p, None)
        if lost is not None:
            lost.callback(None)

    def resume_reading(self) -> None:
        for p in self._open:
            p.transport.resumeProducing()

    def shut(self) -> Deferred[None]:
        waiting = list(self._open.values())
        for p in list(self._open):
            p.transport.abortConnection()
        done = gatherResults(waiting)
        done.addCallback(lambda _: sleep(0.05))
        return done.addCallback(lambda _: None)


class Canned(Resource):
    """
    Answers every request with a fixed status, headers and body, and records
    what it was sent.
    """

    isLeaf = True

    def __init__(
        self,
        body: bytes = b"",
        code: int = 200,
        headers: list[tuple[bytes, bytes]] | None = None,
        chunked: bool = False,
    ) -> None:
        Resource.__init__(self)
        self.body = body
        self.code = code
        self.headers = headers or []
        self.chunked = chunked
        self.seen: list[dict[str, Any]] = []

    def render(self, request: Any) -> bytes | int:
        self.seen.append(
            {
                "method": request.method,
                "path": request.uri,
                "headers": request.requestHeaders,
                "body": request.content.read(),
            }
        )
        request.setResponseCode(self.code)
        for name, value in self.headers:
            request.responseHeaders.addRawHeader(name, value)
        if self.chunked:
            for start in range(0, len(self.body), 1000):
                request.write(self.body[start : start + 1000])
            request.finish()
            return NOT_DONE_YET
        request.setHeader(b"content-length", b"%d" % len(self.body))
        return self.body


@implementer(IPushProducer)
class BlockProducer:
    """
    Writes a large response body block by block, only while not paused.
    """

    def __init__(self, request: Any, block: bytes, total: int) -> None:
        self.request = request
        self.block = block
        self.total = total
        self.produced = 0
        self.pauses = 0
        self.paused = False
        self.stopped = False

    def pauseProducing(self) -> None:
        self.pauses += 1
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and not self.stopped and self.produced < self.total:
            self.produced += len(self.block)
            self.request.write(self.block)
        if self.produced >= self.total and not self.stopped:
            self.stopped = True
            self.request.unregisterProducer()
            self.request.finish()

    def stopProducing(self) -> None:
        self.stopped = True


class Streaming(Resource):
    """
    Serves a large body with a registered push producer.
    """

    isLeaf = True

    def __init__(self, block: bytes, total: int) -> None:
        Resource.__init__(self)
        self.block = block
        self.total = total
        self.producer: BlockProducer | None = None

    def render_GET(self, request: Any) -> int:
        request.setHeader(b"content-length", b"%d" % self.total)
        self.producer = BlockProducer(request, self.block, self.total)
        request.registerProducer(self.producer, True)
        self.producer.resumeProducing()
        return NOT_DONE_YET


class Raw(Protocol):
    """
    A server that sends a fixed byte string once it has read a request head,
    then closes or not; it can also stop reading altogether.
    """

    reply: bytes = b""
    close: bool = False
    read: bool = True

    def connectionMade(self) -> None:
        self.received = b""
        if not self.read:
            self.transport.pauseProducing()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if b"\r\n\r\n" in self.received and self.reply:
            reply, self.reply = self.reply, b""
            self.transport.write(reply)
            if self.close:
                self.transport.loseConnection()


def raw_factory(reply: bytes = b"", close: bool = False, read: bool = True) -> Factory:
    class Configured(Raw):
        pass

    Configured.reply = reply
    Configured.close = close
    Configured.read = read
    return Factory.forProtocol(Configured)


@implementer(IBodyProducer)
class SlowProducer:
    """
    A request body that arrives in pieces, some time apart (a slow client).
    """

    def __init__(self, pieces: list[bytes], gap: float) -> None:
        self.pieces = pieces
        self.gap = gap
        self.length = sum(len(p) for p in pieces)
        self._call: Any = None

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        done: Deferred[None] = Deferred()
        pieces = list(self.pieces)

        def next_piece() -> None:
            consumer.write(pieces.pop(0))
            if pieces:
                self._call = reactor.callLater(self.gap, next_piece)
            else:
                self._call = None
                done.callback(None)

        self._call = reactor.callLater(self.gap, next_piece)
        return done

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()


@implementer(IBodyProducer)
class FloodProducer:
    """
    A large request body written as fast as the transport allows.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.written = 0
        self.paused = False
        self.stopped = False
        self._block = b"\0" * 65536
        self._consumer: Any = None
        self._done: Deferred[None] = Deferred()

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self._consumer = consumer
        self._pump()
        return self._done

    def _pump(self) -> None:
        while not self.paused and not self.stopped and self.written < self.length:
            self.written += len(self._block)
            self._consumer.write(self._block)
        if self.written >= self.length and not self._done.called:
            self._done.callback(None)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._pump()

    def stopProducing(self) -> None:
        self.stopped = True


class LoopbackTests(TestCase):
    """
    L{AgentForwarder} against real servers on 127.0.0.1.
    """

    timeout = 60

    def serve(self, factory: Factory) -> tuple[str, Tracking]:
        tracking = Tracking(factory)
        port = reactor.listenTCP(0, tracking, interface="127.0.0.1")
        self.addCleanup(tracking.shut)
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}", tracking

    def serve_resource(self, resource: Resource) -> tuple[str, Tracking]:
        return self.serve(Site(resource))

    def forwarder(self, timeout: float = 10.0) -> AgentForwarder:
        forwarder = AgentForwarder.create(
            reactor,
            connect_timeout=2.0,
            timeout=timeout,
            max_connections_per_host=4,
            user_agent="multistore-test/1",
        )
        self.addCleanup(forwarder.close)
        return forwarder

    async def get(
        self, forwarder: AgentForwarder, url: str, **kwargs: Any
    ) -> tuple[BackendResponse, CollectingConsumer]:
        response = await forwarder.forward(
            BackendRequest(method=kwargs.pop("method", "GET"), url=url, **kwargs)
        )
        consumer = CollectingConsumer()
        count = await response.body.deliver(consumer)
        self.assertEqual(count, consumer.received)
        self.assertEqual(consumer.writes_without_producer, 0)
        self.assertIsNone(consumer.producer)
        return response, consumer

    @inline
    async def test_round_trip_large(self) -> None:
        """
        A large random binary body arrives byte for byte, with its length.
        """
        data = os.urandom(8 * MiB)
        url, _ = self.serve_resource(
            Canned(data, headers=[(b"content-type", b"application/octet-stream")])
        )
        response, consumer = await self.get(self.forwarder(), url + "/k")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body.length, len(data))
        self.assertEqual(response.headers.get("content-length"), str(len(data)))
        self.assertEqual(
            response.headers.get("content-type"), "application/octet-stream"
        )
        self.assertEqual(consumer.value(), data)

    @inline
    async def test_round_trip_empty(self) -> None:
        """
        An empty body delivers nothing and fires with 0.
        """
        url, _ = self.serve_resource(Canned(b""))
        response, consumer = await self.get(self.forwarder(), url + "/k")
        self.assertEqual(response.body.length, 0)
        self.assertEqual(consumer.chunks, [])

    @inline
    async def test_round_trip_chunked(self) -> None:
        """
        A chunked body of unknown length arrives intact.
        """
        data = os.urandom(50_000)
        url, _ = self.serve_resource(Canned(data, chunked=True))
        response, consumer = await self.get(self.forwarder(), url + "/k")
        self.assertIsNone(response.body.length)
        self.assertNotIn("transfer-encoding", response.headers)
        self.assertEqual(consumer.value(), data)

    @inline
    async def test_headers(self) -> None:
        """
        Status and end-to-end headers pass through with every repeated value;
        hop-by-hop and C{Connection}-listed headers do not.
        """
        reply = (
            b"HTTP/1.1 203 Whatever\r\n"
            b"Content-Length: 5\r\n"
            b"Connection: X-Private, close\r\n"
            b"Keep-Alive: timeout=5\r\n"
            b"X-Private: secret\r\n"
            b"Proxy-Authenticate: Basic\r\n"
            b"Trailer: X-Checksum\r\n"
            b"X-Amz-Meta-Repeat: one\r\n"
            b"X-Amz-Meta-Repeat: two\r\n"
            b'ETag: "abc"\r\n'
            b"\r\nhello"
        )
        url, _ = self.serve(raw_factory(reply, close=True))
        response, consumer = await self.get(self.forwarder(), url + "/k")
        self.assertEqual(response.status, 203)
        self.assertEqual(consumer.value(), b"hello")
        self.assertEqual(response.headers.get_all("x-amz-meta-repeat"), ["one", "two"])
        self.assertEqual(response.headers.get("etag"), '"abc"')
        self.assertEqual(response.headers.get("content-length"), "5")
        # Twisted's client keeps Connection (with the other framing fields)
        # out of a response's headers, so the names it lists cannot be seen
        # here; end_to_end_headers drops them when it is given them
        # (EndToEndHeadersTests).
        for name in ("connection", "keep-alive", "proxy-authenticate", "trailer"):
            self.assertNotIn(name, response.headers)

    @inline
    async def test_request_headers(self) -> None:
        """
        The backend sees our headers, a C{User-Agent}, a C{Host}, and no
        C{Accept-Encoding}.
        """
        resource = Canned(b"ok")
        url, _ = self.serve_resource(resource)
        await self.get(
            self.forwarder(),
            url + "/k?list-type=2",
            headers=HeaderList.of(("x-amz-date", "20260101T000000Z")),
        )
        [seen] = resource.seen
        self.assertEqual(seen["path"], b"/k?list-type=2")
        headers = seen["headers"]
        self.assertEqual(headers.getRawHeaders(b"x-amz-date"), [b"20260101T000000Z"])
        self.assertEqual(headers.getRawHeaders(b"user-agent"), [b"multistore-test/1"])
        self.assertEqual(headers.getRawHeaders(b"host"), [url.split("//")[1].encode()])
        self.assertIsNone(headers.getRawHeaders(b"accept-encoding"))

    @inline
    async def test_gzip_untouched(self) -> None:
        """
        A body stored with C{Content-Encoding: gzip} arrives compressed.
        """
        compressed = gzip.compress(b"hello " * 1000)
        url, _ = self.serve_resource(
            Canned(compressed, headers=[(b"content-encoding", b"gzip")])
        )
        response, consumer = await self.get(self.forwarder(), url + "/k")
        self.assertEqual(response.headers.get("content-encoding"), "gzip")
        self.assertEqual(consumer.value(), compressed)

    @inline
    async def test_no_cookies(self) -> None:
        """
        A backend's C{Set-Cookie} is passed on but never stored or replayed.
        """
        resource = Canned(b"ok", headers=[(b"set-cookie", b"session=abc; Path=/")])
        url, _ = self.serve_resource(resource)
        forwarder = self.forwarder()
        first, _ = await self.get(forwarder, url + "/a")
        await self.get(forwarder, url + "/a")
        self.assertEqual(first.headers.get("set-cookie"), "session=abc; Path=/")
        self.assertEqual(
            [s["headers"].getRawHeaders(b"cookie") for s in resource.seen], [None, None]
        )

    @inline
    async def test_redirect_not_followed(self) -> None:
        """
        A 302 is returned as it is.
        """
        resource = Canned(b"", code=302, headers=[(b"location", b"/elsewhere")])
        url, _ = self.serve_resource(resource)
        response, _ = await self.get(self.forwarder(), url + "/here")
        self.assertEqual(response.status, 302)
        self.assertEqual(response.headers.get("location"), "/elsewhere")
        self.assertEqual([s["path"] for s in resource.seen], [b"/here"])

    @inline
    async def test_backpressure(self) -> None:
        """
        A consumer that pauses stops the backend socket from being drained:
        the bytes received stay put and the server stops producing; on
        resume everything arrives intact.
        """
        block = os.urandom(64 * 1024)
        total = 48 * MiB
        resource = Streaming(block, total)
        url, _ = self.serve_resource(resource)
        forwarder = self.forwarder(timeout=10.0)
        response = await forwarder.forward(
            BackendRequest(method="GET", url=url + "/big")
        )
        consumer = CollectingConsumer(pause_after=1)
        done = response.body.deliver(consumer)
        await sleep(0.5)
        first = consumer.received
        await sleep(0.5)
        self.assertEqual(consumer.received, first)
        self.assertLess(first, 1 * MiB)
        assert resource.producer is not None
        produced = resource.producer.produced
        self.assertGreater(resource.producer.pauses, 0)
        self.assertTrue(resource.producer.paused)
        self.assertLess(produced, total // 2)
        await sleep(0.3)
        self.assertEqual(resource.producer.produced, produced)
        consumer.producer.resumeProducing()
        count = await done
        self.assertEqual(count, total)
        expected = hashlib.sha256()
        for _ in range(total // len(block)):
            expected.update(block)
        self.assertEqual(
            hashlib.sha256(consumer.value()).hexdigest(), expected.hexdigest()
        )

    @inline
    async def test_refused(self) -> None:
        """
        A refused connection fails with C{ServiceUnavailable} in well under
        a second.
        """
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        number = port.getHost().port
        await port.stopListening()
        started = reactor.seconds()
        with self.assertRaises(S3Error) as caught:
            await self.forwarder().forward(
                BackendRequest(method="GET", url=f"http://127.0.0.1:{number}/k")
            )
        self.assertEqual(caught.exception.code, "ServiceUnavailable")
        self.assertEqual(caught.exception.status, 503)
        self.assertLess(reactor.seconds() - started, 1.0)

    @inline
    async def test_never_answers(self) -> None:
        """
        A backend that accepts and never answers fails with
        C{GatewayTimeout} after the timeout, and the connection is closed.
        """
        url, tracking = self.serve(raw_factory())
        started = reactor.seconds()
        with self.assertRaises(S3Error) as caught:
            await self.forwarder(timeout=0.5).forward(
                BackendRequest(method="GET", url=url + "/k")
            )
        elapsed = reactor.seconds() - started
        self.assertEqual(caught.exception.code, "GatewayTimeout")
        self.assertGreaterEqual(elapsed, 0.45)
        self.assertLess(elapsed, 2.0)
        await tracking.closed[0]

    @inline
    async def test_stall_mid_body(self) -> None:
        """
        A backend that goes silent mid-body fails the delivery with
        C{GatewayTimeout} after the idle timeout, closing the connection.
        """
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"
        url, tracking = self.serve(raw_factory(reply))
        response = await self.forwarder(timeout=0.5).forward(
            BackendRequest(method="GET", url=url + "/k")
        )
        consumer = CollectingConsumer()
        started = reactor.seconds()
        with self.assertRaises(S3Error) as caught:
            await response.body.deliver(consumer)
        self.assertEqual(caught.exception.code, "GatewayTimeout")
        self.assertGreaterEqual(reactor.seconds() - started, 0.45)
        self.assertEqual(consumer.value(), b"0123456789")
        self.assertIsNone(consumer.producer)
        await tracking.closed[0]

    @inline
    async def test_paused_no_idle_timeout(self) -> None:
        """
        A consumer paused for longer than the idle timeout does not make the
        delivery time out.
        """
        data = os.urandom(2 * MiB)
        url, _ = self.serve_resource(Canned(data))
        response = await self.forwarder(timeout=0.3).forward(
            BackendRequest(method="GET", url=url + "/k")
        )
        consumer = CollectingConsumer(pause_after=1)
        done = response.body.deliver(consumer)
        await sleep(1.0)
        self.assertNoResult(done)
        self.assertLess(consumer.received, len(data))
        consumer.producer.resumeProducing()
        self.assertEqual(await done, len(data))
        self.assertEqual(consumer.value(), data)

    @inline
    async def test_closed_mid_body(self) -> None:
        """
        A backend that closes the connection mid-body fails the delivery.
        """
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"
        url, _ = self.serve(raw_factory(reply, close=True))
        response = await self.forwarder().forward(
            BackendRequest(method="GET", url=url + "/k")
        )
        consumer = CollectingConsumer()
        with self.assertRaises(S3Error) as caught:
            await response.body.deliver(consumer)
        self.assertEqual(caught.exception.code, "ServiceUnavailable")
        self.assertIsNone(consumer.producer)

    @inline
    async def test_cancel_deliver(self) -> None:
        """
        Cancelling a delivery closes the backend connection.
        """
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789"
        url, tracking = self.serve(raw_factory(reply))
        response = await self.forwarder().forward(
            BackendRequest(method="GET", url=url + "/k")
        )
        consumer = CollectingConsumer()
        done = response.body.deliver(consumer)
        await eventually(lambda: consumer.received == 10)
        done.cancel()
        with self.assertRaises(CancelledError):
            await done
        await tracking.closed[0]

    @inline
    async def test_cancel_forward(self) -> None:
        """
        Cancelling a request before its response headers closes the
        connection.
        """
        url, tracking = self.serve(raw_factory())
        pending = self.forwarder().forward(BackendRequest(method="GET", url=url + "/k"))
        await eventually(lambda: tracking.connections == 1)
        await sleep(0.05)
        pending.cancel()
        with self.assertRaises(CancelledError):
            await pending
        await tracking.closed[0]

    @inline
    async def test_connection_reuse(self) -> None:
        """
        Sequential requests to one server share one connection.
        """
        url, tracking = self.serve_resource(Canned(b"<xml/>"))
        forwarder = self.forwarder()
        for _ in range(3):
            response = await forwarder.forward(
                BackendRequest(method="GET", url=url + "/k")
            )
            self.assertEqual(await read_body(response.body, 1000), b"<xml/>")
        self.assertEqual(tracking.connections, 1)

    @inline
    async def test_read_body_limit(self) -> None:
        """
        L{read_body} refuses bodies over its limit, with or without a known
        length, and closes the connection of one it had to cut short.
        """
        data = os.urandom(200_000)
        url, tracking = self.serve_resource(Canned(data))
        forwarder = self.forwarder()
        response = await forwarder.forward(BackendRequest(method="GET", url=url + "/k"))
        with self.assertRaises(S3Error) as caught:
            await read_body(response.body, 1000)
        self.assertIn("oversized", caught.exception.message)

        url, tracking = self.serve_resource(Canned(data, chunked=True))
        response = await forwarder.forward(BackendRequest(method="GET", url=url + "/k"))
        with self.assertRaises(S3Error) as caught:
            await read_body(response.body, 5000)
        self.assertEqual(caught.exception.code, "ServiceUnavailable")
        await tracking.closed[0]

    @inline
    async def test_discard_small(self) -> None:
        """
        Discarding a small body keeps its connection for reuse.
        """
        url, tracking = self.serve_resource(Canned(os.urandom(60_000)))
        forwarder = self.forwarder()
        for _ in range(2):
            response = await forwarder.forward(
                BackendRequest(method="GET", url=url + "/k")
            )
            response.body.discard()
            await sleep(0.05)
        self.assertEqual(tracking.connections, 1)

    @inline
    async def test_discard_large(self) -> None:
        """
        Discarding a large body closes its connection.
        """
        url, tracking = self.serve_resource(Canned(os.urandom(4 * MiB)))
        forwarder = self.forwarder()
        response = await forwarder.forward(BackendRequest(method="GET", url=url + "/k"))
        response.body.discard()
        await tracking.closed[0]
        response = await forwarder.forward(BackendRequest(method="GET", url=url + "/k"))
        response.body.discard()
        self.assertEqual(tracking.connections, 2)
        await tracking.closed[1]

    @inline
    async def test_request_body(self) -> None:
        """
        A request body is streamed with its length as C{Content-Length}.
        """
        data = os.urandom(3 * MiB + 17)
        resource = Canned(b"", code=200)
        url, _ = self.serve_resource(resource)
        response, _ = await self.get(
            self.forwarder(),
            url + "/k",
            method="PUT",
            body=BytesProducer(data),
            headers=HeaderList.of(("content-length", "999")),
        )
        self.assertEqual(response.status, 200)
        [seen] = resource.seen
        self.assertEqual(seen["method"], b"PUT")
        self.assertEqual(
            seen["headers"].getRawHeaders(b"content-length"), [str(len(data)).encode()]
        )
        self.assertIsNone(seen["headers"].getRawHeaders(b"transfer-encoding"))
        self.assertEqual(seen["body"], data)

    @inline
    async def test_slow_request_body(self) -> None:
        """
        A request body that takes longer than the timeout to arrive (a slow
        client) does not make the request time out.
        """
        pieces = [bytes([i]) * 1000 for i in range(8)]
        resource = Canned(b"done")
        url, _ = self.serve_resource(resource)
        _, consumer = await self.get(
            self.forwarder(timeout=0.3),
            url + "/k",
            method="PUT",
            body=SlowProducer(pieces, gap=0.1),
        )
        self.assertEqual(consumer.value(), b"done")
        self.assertEqual(resource.seen[0]["body"], b"".join(pieces))

    @inline
    async def test_request_body_not_read(self) -> None:
        """
        A backend that stops reading a request body fails the request with
        C{GatewayTimeout}, and the producer is stopped.
        """
        url, tracking = self.serve(raw_factory(read=False))
        producer = FloodProducer(256 * MiB)
        started = reactor.seconds()
        with self.assertRaises(S3Error) as caught:
            await self.forwarder(timeout=0.5).forward(
                BackendRequest(method="PUT", url=url + "/k", body=producer)
            )
        self.assertEqual(caught.exception.code, "GatewayTimeout")
        self.assertLess(reactor.seconds() - started, 5.0)
        self.assertLess(producer.written, 128 * MiB)
        self.assertTrue(producer.stopped)
        # The server notices the connection is gone once it reads again.
        tracking.resume_reading()
        await tracking.closed[0]


class BackendEndpointsTests(SynchronousTestCase):
    """
    Tests for L{BackendEndpoints}.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.endpoints = BackendEndpoints(
            self.reactor, BrowserLikePolicyForHTTPS(), connect_timeout=3.0
        )

    def test_one_endpoint_per_origin(self) -> None:
        """
        Requests to one scheme, host and port share an endpoint; another
        port, host or scheme gets its own.
        """
        first = self.endpoints.endpointForURI(URI.fromBytes(b"http://h:1/a"))
        again = self.endpoints.endpointForURI(URI.fromBytes(b"http://h:1/b?x"))
        self.assertIs(first, again)
        others = {
            id(self.endpoints.endpointForURI(URI.fromBytes(uri)))
            for uri in (b"http://h:2/a", b"http://g:1/a", b"https://h:1/a")
        }
        self.assertEqual(len(others | {id(first)}), 4)

    def test_unsupported_scheme(self) -> None:
        """
        Only HTTP and HTTPS backends are reached.
        """
        self.assertRaises(
            SchemeNotSupported,
            self.endpoints.endpointForURI,
            URI.fromBytes(b"ftp://h:21/a"),
        )

    def test_connections_get_large_buffers(self) -> None:
        """
        A connection made through an endpoint of L{BackendEndpoints} reads
        and queues L{CONNECTION_BUFFER} bytes at a time.
        """
        endpoint = self.endpoints.endpointForURI(URI.fromBytes(b"http://h:9/a"))
        self.assertIsInstance(endpoint, _LargeBufferEndpoint)
        transport = StringTransport()
        transport.bufferSize = 65536  # type: ignore[attr-defined]
        endpoint = _LargeBufferEndpoint(
            _ConnectedEndpoint(transport), CONNECTION_BUFFER
        )
        protocol = self.successResultOf(endpoint.connect(Factory.forProtocol(Protocol)))
        self.assertIs(protocol.transport, transport)
        self.assertEqual(transport.bufferSize, CONNECTION_BUFFER)  # type: ignore[attr-defined]


@implementer(IStreamClientEndpoint)
class _ConnectedEndpoint:
    """
    An endpoint that connects at once, over a given transport.
    """

    def __init__(self, transport: StringTransport) -> None:
        self.transport = transport

    def connect(self, factory: Any) -> Deferred[Any]:
        """
        :return: the connected protocol.
        """
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(self.transport)
        return succeed(protocol)
