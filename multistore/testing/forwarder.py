# -*- test-case-name: tests.unit.test_testing -*-
"""
L{ScriptedForwarder}: an L{IForwarder} that records each backend request
(and the body it read) and answers as scripted, for testing HTTP stores
without sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IConsumer,
    IProducer,
)
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from multistore.bodies import IBody
from multistore.headers import HeaderList
from multistore.interfaces import IForwarder
from multistore.model import (
    BackendRequest,
    BackendResponse,
)
from multistore.testing.bodies import RecordingBody


class WrongBodyLength(Exception):
    """
    A request body wrote more bytes than its length announced, or ended
    with fewer (a transport refuses both).
    """


@define(eq=False)
class ForwardedRequest:
    """
    One request a L{ScriptedForwarder} was given, and what became of it.

    :ivar request: the request.
    :ivar chunks: the pieces of its body read so far, in order.
    :ivar complete: whether its body was read to the end (or it had none).
    :ivar failure: how reading its body failed, if it did.
    :ivar cancelled: whether the caller cancelled it.
    :ivar response: the response handed out for it, if any.
    """

    request: BackendRequest
    chunks: list[bytes] = field(factory=list)
    complete: bool = False
    failure: Failure | None = None
    cancelled: bool = False
    response: BackendResponse | None = None

    @property
    def body(self) -> bytes:
        """
        The body read so far.
        """
        return b"".join(self.chunks)

    def pause(self) -> None:
        """
        Pause the request's body, as a backend that reads slowly does.
        """
        if self.request.body is not None:
            self.request.body.pauseProducing()

    def resume(self) -> None:
        """
        Resume the request's body.
        """
        if self.request.body is not None:
            self.request.body.resumeProducing()


#: What a L{ScriptedForwarder} answers a request with: a response, an
#: exception (the request fails), or a Deferred (an answer still pending).
Answer = BackendResponse | BaseException | Deferred[BackendResponse]

#: Answers requests by what they are, once their body has been read.
Handler = Callable[[ForwardedRequest], Answer]


@implementer(IConsumer)
class _BodyReader:
    """
    Reads a request body for a L{ScriptedForwarder}, refusing bytes beyond
    its announced length as a transport does.
    """

    def __init__(self, exchange: ForwardedRequest, body: IBodyProducer) -> None:
        self._exchange = exchange
        self._body = body
        self._size = 0
        self._over = False
        self.done: Deferred[None] = Deferred()

    def start(self) -> Deferred[None]:
        try:
            produced = self._body.startProducing(self)
        except Exception:
            self._end(Failure())
            return self.done
        produced.addCallbacks(self._finished, self._end)
        return self.done

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        raise RuntimeError("a request body must not register with its consumer")

    def unregisterProducer(self) -> None:
        raise RuntimeError("a request body must not register with its consumer")

    def write(self, data: bytes) -> None:
        if self._over:
            return
        self._size += len(data)
        length = self._body.length
        if isinstance(length, int) and self._size > length:
            self._end(Failure(WrongBodyLength(f"more than {length} bytes")))
            self._body.stopProducing()
            return
        self._exchange.chunks.append(data)

    def stop(self) -> None:
        if not self._over:
            self._over = True
            self._body.stopProducing()

    def _finished(self, _: object) -> None:
        length = self._body.length
        if isinstance(length, int) and self._size != length:
            self._end(Failure(WrongBodyLength(f"{self._size} of {length} bytes")))
            return
        if not self._over:
            self._over = True
            self._exchange.complete = True
            self.done.callback(None)

    def _end(self, reason: Failure) -> None:
        if not self._over:
            self._over = True
            self._exchange.failure = reason
            self.done.errback(reason)


@implementer(IForwarder)
class ScriptedForwarder:
    """
    An L{IForwarder} for testing stores without sockets: it records each
    request, reads its body as a transport would (streamed, refusing bytes
    beyond its length), and then answers with the next scripted answer, or
    with what a handler makes of the request.

    A body that fails fails the request with its own failure, as
    L{multistore.forwarder.agent.AgentForwarder} does; a scripted
    exception fails it with that exception; a scripted Deferred leaves it
    pending until the test fires it. Cancelling a request stops its body,
    and a response that comes after is discarded.

    :ivar exchanges: every request forwarded, in order.
    :ivar in_flight: requests not answered yet.
    :ivar most_in_flight: the most requests ever in flight at once.
    """

    def __init__(
        self,
        *answers: Answer,
        handler: Handler | None = None,
        read_bodies: bool = True,
    ) -> None:
        """
        :param answers: the answers to the first requests, in order.
        :param handler: answers requests once the scripted answers are
            used up.
        :param read_bodies: whether request bodies are read before the
            answer is given; if not, the body is left to the caller.
        """
        self._answers: list[Answer] = list(answers)
        self._handler = handler
        self._read_bodies = read_bodies
        self.exchanges: list[ForwardedRequest] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def script(self, *answers: Answer) -> None:
        """
        Add answers for the next requests.
        """
        self._answers.extend(answers)

    @property
    def requests(self) -> list[BackendRequest]:
        """
        Every request forwarded, in order.
        """
        return [exchange.request for exchange in self.exchanges]

    @property
    def request(self) -> BackendRequest:
        """
        The one request forwarded.

        :raise AssertionError: if there was not exactly one.
        """
        if len(self.exchanges) != 1:
            raise AssertionError(f"not one backend request: {self.requests!r}")
        return self.exchanges[0].request

    @property
    def uploads(self) -> list[bytes]:
        """
        The bodies of the requests that had one, as far as they were read,
        in order.
        """
        return [e.body for e in self.exchanges if e.request.body is not None]

    @property
    def bodies(self) -> list[IBody]:
        """
        The bodies of the responses handed out, in order.
        """
        return [e.response.body for e in self.exchanges if e.response is not None]

    def forward(self, request: BackendRequest) -> Deferred[BackendResponse]:
        """
        Record ``request``, read its body, and answer it.

        :raise AssertionError: if there is no answer for it.
        """
        if not self._answers and self._handler is None:
            raise AssertionError(f"unexpected backend request {request!r}")
        scripted = self._answers.pop(0) if self._answers else None
        exchange = ForwardedRequest(request)
        self.exchanges.append(exchange)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        pending: list[Deferred[Any]] = []
        reader: _BodyReader | None = None

        def cancel(_: Deferred[BackendResponse]) -> None:
            exchange.cancelled = True
            if reader is not None:
                reader.stop()
            for waiting in pending:
                waiting.cancel()

        result: Deferred[BackendResponse] = Deferred(cancel)

        def settle(outcome: BackendResponse | Failure) -> None:
            if result.called:
                if isinstance(outcome, BackendResponse):
                    outcome.body.discard()
                return
            if isinstance(outcome, BackendResponse):
                exchange.response = outcome
                result.callback(outcome)
            else:
                result.errback(outcome)

        def answer(_: object = None) -> None:
            given = scripted if scripted is not None else self._handle(exchange)
            if isinstance(given, Deferred):
                pending.append(given)
                given.addBoth(settle)
            elif isinstance(given, BaseException):
                settle(Failure(given))
            else:
                settle(given)

        def done(outcome: object) -> object:
            self.in_flight -= 1
            return outcome

        result.addBoth(done)
        if self._read_bodies and request.body is not None:
            reader = _BodyReader(exchange, request.body)
            reading = reader.start()
            pending.append(reading)
            reading.addCallbacks(answer, lambda reason: settle(reason))
        else:
            exchange.complete = request.body is None
            answer()
        return result

    def _handle(self, exchange: ForwardedRequest) -> Answer:
        if self._handler is None:
            return AssertionError(f"unexpected backend request {exchange.request!r}")
        return self._handler(exchange)


def respond(
    status: int = 200,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | IBody = b"",
    length: int | Literal["actual"] | None = "actual",
) -> BackendResponse:
    """
    A backend response for a L{ScriptedForwarder} to answer with.

    :param body: the body's bytes (as a L{RecordingBody}), or a body of the
        test's own (a L{ControlledBody} to stream it by hand).
    :param length: for bytes, the length the body announces: its own by
        default, ``None`` for unknown.
    """
    given = body if not isinstance(body, bytes) else RecordingBody(body, length)
    return BackendResponse(status=status, headers=HeaderList(headers), body=given)
