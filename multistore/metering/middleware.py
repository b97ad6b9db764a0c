# -*- test-case-name: tests.unit.test_metering -*-
"""
The metering middleware: judges each request before bytes move, and
records what each request used once it is over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from multistore.interfaces import IMiddleware, IQuotaChecker, IUsageRecorder, Next
from multistore.metering.rules import Network, client_address
from multistore.model import CompletedRequest, DispatchContext, Response, UsageEvent


def response_size(response: Response) -> int | None:
    """
    :return: how many body bytes ``response`` will send, when it streams a
        body whose length is known (the store said so), else ``None``.
    """
    body = response.body
    if body is None or isinstance(body, bytes):
        return None
    length: int | None = body.length
    if length is not None:
        return length
    value = response.headers.get("content-length")
    if value is not None and value.isdigit():
        return int(value)
    return None


@implementer(IMiddleware)
class MeteringMiddleware(MultiService):
    """
    Joins an L{IQuotaChecker} and L{IUsageRecorder}s into a middleware.

    A request the checker refuses is answered with its error; a response
    whose size the checker refuses is dropped unread (its body released)
    and answered with the error instead. Every finished request, refused
    or not, is given to each recorder as a L{UsageEvent}.

    As a service, it starts and stops its children (the store's threads,
    the usage log) with the daemon; stopping it flushes what is counted.
    """

    log = Logger()

    def __init__(
        self,
        checker: IQuotaChecker,
        recorders: Sequence[IUsageRecorder],
        trusted_proxies: Sequence[Network] = (),
        *,
        flush: Callable[[], Deferred[None]] | None = None,
    ) -> None:
        super().__init__()
        self._checker = checker
        self._recorders = tuple(recorders)
        self._trusted = tuple(trusted_proxies)
        self._flush = flush

    @property
    def checker(self) -> IQuotaChecker:
        """
        What judges requests.
        """
        return self._checker

    def handle(self, context: DispatchContext, next: Next) -> Deferred[Response]:
        checked = self._checker.check_request(context)
        answered: Deferred[Response] = checked.addCallback(lambda _: next(context))
        return answered.addCallback(self._judge, context)

    def _judge(
        self, response: Response, context: DispatchContext
    ) -> Response | Deferred[Response]:
        size = response_size(response)
        if not size:
            return response
        judged = self._checker.check_response(context, size)

        def refused(reason: Failure) -> Failure:
            body = response.body
            if body is not None and not isinstance(body, bytes):
                body.discard()
            return reason

        return judged.addCallbacks(lambda _: response, refused)

    def after_dispatch(self, completed: CompletedRequest) -> None:
        identity = completed.identity
        operation = completed.operation
        event = UsageEvent(
            time=completed.started,
            request_id=completed.request_id,
            principal=identity.principal if identity is not None else None,
            client_address=client_address(
                completed.client_address, completed.forwarded_for, self._trusted
            ),
            bucket=completed.bucket,
            operation=operation.name if operation is not None else None,
            status=completed.status,
            bytes_in=completed.bytes_in,
            bytes_out=completed.bytes_out,
            forwarded=completed.forwarded,
            duration=completed.duration,
        )
        for recorder in self._recorders:
            try:
                recorder.record(event)
            except Exception:
                self.log.failure(
                    "usage recorder {recorder!r} failed", recorder=recorder
                )

    def stopService(self) -> Deferred[None]:
        flushed = self._flush() if self._flush is not None else succeed(None)
        stopped: Deferred[None] = flushed.addBoth(
            lambda _: MultiService.stopService(self)
        )
        return stopped


@implementer(IQuotaChecker)
class NoQuotas:
    """
    An L{IQuotaChecker} that admits everything.
    """

    def check_request(self, context: DispatchContext) -> Deferred[None]:
        return succeed(None)

    def check_response(self, context: DispatchContext, size: int) -> Deferred[None]:
        return succeed(None)


@implementer(IUsageRecorder)
class NoUsage:
    """
    An L{IUsageRecorder} that records nothing.
    """

    def record(self, event: UsageEvent) -> None:
        pass
