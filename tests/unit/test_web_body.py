"""
Tests for L{multistore.web.body}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface.verify import verifyObject

from multistore.s3.errors import S3Error
from multistore.testing import CollectingConsumer
from multistore.web.body import PENDING_LIMIT, RequestBody


def reader(body: RequestBody, pause_after: int | None = None) -> CollectingConsumer:
    """
    A consumer of ``body`` that pauses it once it has been written to
    ``pause_after`` times (a request body does not register with its
    consumer: it is paused directly).
    """

    def push_back(consumer: CollectingConsumer) -> None:
        assert consumer.registrations == 0, "body producers are not registered"
        if pause_after is not None and len(consumer.chunks) >= pause_after:
            body.pauseProducing()

    return CollectingConsumer(on_write=push_back)


class RequestBodyTests(SynchronousTestCase):
    """
    Tests for L{RequestBody}.
    """

    def setUp(self) -> None:
        self.transport = StringTransport()
        self.body = RequestBody(10, self.transport)

    def test_interface(self) -> None:
        """
        It is an C{IBodyProducer} with the declared length; chunked bodies
        have an unknown length.
        """
        self.assertTrue(verifyObject(IBodyProducer, self.body))
        self.assertEqual(self.body.length, 10)
        self.assertIs(RequestBody(None, self.transport).length, UNKNOWN_LENGTH)

    def test_streams(self) -> None:
        """
        Chunks go straight to the consumer; the Deferred fires when the
        client has sent everything.
        """
        consumer = reader(self.body)
        done = self.body.startProducing(consumer)
        self.body.write(b"hello")
        self.assertEqual(consumer.chunks, [b"hello"])
        self.assertNoResult(done)
        self.body.write(b"world")
        self.body.finish()
        self.assertIsNone(self.successResultOf(done))
        self.assertEqual(self.body.received, 10)

    def test_buffers_then_pauses(self) -> None:
        """
        Before a consumer starts, a little is held; beyond that the client's
        socket is paused, and resumed once a consumer takes the backlog.
        """
        self.body.write(b"x" * (PENDING_LIMIT - 1))
        self.assertEqual(self.transport.producerState, "producing")
        self.body.write(b"y")
        self.assertEqual(self.transport.producerState, "paused")
        consumer = reader(self.body)
        self.body.startProducing(consumer)
        self.assertEqual(b"".join(consumer.chunks), b"x" * (PENDING_LIMIT - 1) + b"y")
        self.assertEqual(self.transport.producerState, "producing")

    def test_backpressure(self) -> None:
        """
        A consumer that pauses the body pauses the client's socket.
        """
        consumer = reader(self.body, pause_after=1)
        self.body.startProducing(consumer)
        self.body.write(b"a")
        self.assertEqual(self.transport.producerState, "paused")
        self.body.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")

    def test_finished_before_start(self) -> None:
        """
        A body that arrived whole before its consumer started is delivered
        and done at once.
        """
        self.body.write(b"0123456789")
        self.body.finish()
        consumer = reader(self.body)
        done = self.body.startProducing(consumer)
        self.assertEqual(consumer.chunks, [b"0123456789"])
        self.successResultOf(done)

    def test_lost(self) -> None:
        """
        A client that goes away mid-body fails the delivery.
        """
        done = self.body.startProducing(reader(self.body))
        self.body.write(b"abc")
        self.body.lost(Failure(ConnectionLost()))
        failure = self.failureResultOf(done, S3Error)
        self.assertEqual(failure.value.code, "IncompleteBody")
        # Once complete, a later loss changes nothing.
        body = RequestBody(1, self.transport)
        finished = body.startProducing(reader(body))
        body.write(b"z")
        body.finish()
        body.lost(Failure(ConnectionLost()))
        self.successResultOf(finished)

    def test_stop(self) -> None:
        """
        A consumer that stops the body gets nothing more, its Deferred never
        fires, and the rest of the body is read and dropped (so the request
        can be answered), with the socket resumed.
        """
        consumer = reader(self.body, pause_after=1)
        done = self.body.startProducing(consumer)
        self.body.write(b"a")
        self.body.stopProducing()
        self.assertEqual(self.transport.producerState, "producing")
        self.body.write(b"b")
        self.body.finish()
        self.assertEqual(consumer.chunks, [b"a"])
        self.assertNoResult(done)

    def test_cancel(self) -> None:
        """
        Cancelling the delivery stops it like C{stopProducing}.
        """
        consumer = reader(self.body)
        done: Deferred[None] = self.body.startProducing(consumer)
        done.cancel()
        self.body.write(b"late")
        self.assertEqual(consumer.chunks, [])
        self.failureResultOf(done)

    def test_discard(self) -> None:
        """
        A discarded body drops what arrives and cannot be read later.
        """
        self.body.write(b"x" * PENDING_LIMIT)
        self.assertEqual(self.transport.producerState, "paused")
        self.body.discard()
        self.assertEqual(self.transport.producerState, "producing")
        self.body.write(b"more")
        self.assertEqual(self.body.received, PENDING_LIMIT + 4)
        self.assertRaises(RuntimeError, self.body.startProducing, reader(self.body))

    def test_once(self) -> None:
        """
        A body can be read only once.
        """
        self.body.startProducing(reader(self.body))
        self.assertRaises(RuntimeError, self.body.startProducing, reader(self.body))
