# -*- test-case-name: tests.unit.test_web_body -*-
"""
A request body as it arrives, as an C{IBodyProducer}.

twisted.web hands a request's body to C{request.content}, chunk by chunk,
before the resource sees the request. L{RequestBody} stands in for that file:
the chunks go straight on to whoever consumes the body (a backend upload, a
file being written), and while the consumer cannot keep up the client's
socket is paused, so an upload of any size passes through in bounded memory.
Until a consumer starts, a little is buffered and then the socket is paused
too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.python.failure import Failure
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from multistore.s3.errors import S3Error

#: How much of a body is held before a consumer starts reading it.
PENDING_LIMIT: Final = 256 * 1024


@implementer(IBodyProducer)
class RequestBody:
    """
    The body of one request, produced as the client sends it.

    :ivar length: the declared length, or C{UNKNOWN_LENGTH} (chunked).
    :ivar received: the bytes received from the client so far.
    """

    def __init__(self, length: int | None, transport: IPushProducer) -> None:
        self.length = UNKNOWN_LENGTH if length is None else length
        self.received = 0
        self._transport = transport
        self._consumer: IConsumer | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._done: Deferred[None] | None = None
        self._complete = False
        self._failure: Failure | None = None
        self._discarding = False
        self._paused = False
        self._paused_by_consumer = False
        self._send_continue: Callable[[], None] | None = None

    @property
    def complete(self) -> bool:
        """
        Whether the client has sent the whole body.
        """
        return self._complete

    @property
    def gone(self) -> bool:
        """
        Whether the connection was lost before the whole body arrived.
        """
        return self._failure is not None

    @property
    def started(self) -> bool:
        """
        Whether a consumer has started reading (or the body was discarded).
        """
        return self._done is not None or self._discarding

    @property
    def awaiting_continue(self) -> bool:
        """
        Whether the client waits for ``100 Continue`` before sending.
        """
        return self._send_continue is not None

    def continue_when_read(self, send: Callable[[], None]) -> None:
        """
        The client waits for ``100 Continue`` before it sends the body: call
        ``send`` to tell it to go ahead once a consumer starts reading (or
        L{release} is called), and never if the request is refused first.
        """
        self._send_continue = send

    def release(self) -> None:
        """
        Tell a client that waits for ``100 Continue`` to send its body now.
        """
        send, self._send_continue = self._send_continue, None
        if send is not None and not self._complete and self._failure is None:
            send()

    def withhold(self) -> None:
        """
        Never tell the client to send its body (it is being refused).
        """
        self._send_continue = None

    # -- the file twisted.web writes to ----------------------------------------

    def write(self, data: bytes) -> None:
        """
        A chunk has arrived from the client.
        """
        self.received += len(data)
        if self._discarding:
            return
        if self._consumer is not None:
            self._consumer.write(data)
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= PENDING_LIMIT:
            self._pause()

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass

    # -- from the request ---------------------------------------------------------

    def finish(self) -> None:
        """
        The client has sent the whole body.
        """
        self._complete = True
        # twisted.web owns the socket again from here on.
        self._paused = False
        if self._done is not None and not self._discarding:
            self._done.callback(None)

    def lost(self, reason: Failure) -> None:
        """
        The connection was lost before the whole body arrived.
        """
        if self._complete or self._failure is not None:
            return
        # Whoever reads the body sees an S3 error, not a network one: a
        # client that leaves is a normal end, not an internal failure.
        self._failure = Failure(
            S3Error(
                "IncompleteBody",
                "The connection was closed before the whole body arrived "
                f"({self.received} bytes received).",
            )
        )
        if self._done is not None and not self._discarding:
            done, self._done = self._done, None
            done.errback(self._failure)

    def discard(self) -> None:
        """
        Nobody will read the body (the request was answered without it):
        drop what arrives, so the request can complete.
        """
        if self._discarding:
            return
        self._discarding = True
        self._pending = []
        self._pending_size = 0
        self._resume()

    # -- IBodyProducer ----------------------------------------------------------

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        if self._done is not None or self._discarding:
            raise RuntimeError("a request body can be read only once")
        self._consumer = consumer
        self._done = Deferred(lambda _: self.stopProducing())
        done = self._done
        pending, self._pending, self._pending_size = self._pending, [], 0
        for chunk in pending:
            consumer.write(chunk)
            if self._discarding:
                return done
        if self._failure is not None:
            self._done = None
            done.errback(self._failure)
        elif self._complete:
            self._done.callback(None)
        else:
            self.release()
            if not self._paused_by_consumer:
                self._resume()
        return done

    def pauseProducing(self) -> None:
        self._paused_by_consumer = True
        self._pause()

    def resumeProducing(self) -> None:
        self._paused_by_consumer = False
        self._resume()

    def stopProducing(self) -> None:
        # The consumer wants no more; the Deferred must never fire. Keep
        # reading (and dropping) so the request completes and can be
        # answered.
        self._done = None
        self._consumer = None
        self.discard()

    def _pause(self) -> None:
        if not self._paused and not self._complete:
            self._paused = True
            self._transport.pauseProducing()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            self._transport.resumeProducing()
