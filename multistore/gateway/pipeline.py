# -*- test-case-name: tests.unit.test_gateway -*-
"""
The request pipeline, independent of the HTTP server it runs in.

For each request, in order: route handlers (non-S3 endpoints) may answer;
the caller is authenticated; the S3 operation is parsed; the bucket is
resolved and the operation authorized; the middleware chain runs; the
operation is dispatched to its handler and the bucket's store. Any
L{S3Error} on the way becomes an S3 error response; anything else is logged
with its traceback and answered with ``InternalError``, never shown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Final

from attrs import define, field
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from multistore.auth.authentication import Authenticator
from multistore.auth.sessions import SessionKeys
from multistore.headers import HeaderList
from multistore.interfaces import (
    IBucketRegistry,
    ICredentialRegistry,
    IMiddleware,
    IRouteHandler,
)
from multistore.model import (
    CompletedRequest,
    DispatchContext,
    Identity,
    IncomingRequest,
    Operation,
    Response,
)
from multistore.operations.dispatcher import Dispatcher
from multistore.operations.table import dispatch
from multistore.s3.documents import error_document
from multistore.s3.errors import S3Error
from multistore.s3.request import host_bucket, parse_operation, split_path


def new_request_id() -> str:
    """
    :return: a fresh request id: 16 upper-case hex digits, as S3's.
    """
    return os.urandom(8).hex().upper()


@define
class Trace:
    """
    What is known about a request as it goes through the pipeline, for the
    access log and L{IMiddleware.after_dispatch}.
    """

    request_id: str
    started: float
    identity: Identity | None = None
    operation: Operation | None = None
    bucket: str | None = None
    forwarded: bool = False
    bucket_rule: str | None = None
    backend: str | None = None


@define
class Gateway:
    """
    Answers S3 requests.

    :ivar _dispatcher: carries out authorized operations.
    :ivar _domains: domains for virtual-hosted-style addressing.
    :ivar _max_clock_skew: seconds a signed request's time may be off.
    :ivar _sessions: the keys that open STS session tokens, if STS is on.
    :ivar _debug_errors: whether internal errors show their detail.
    :ivar in_flight: requests started (L{start}) and not yet over
        (L{completed}).
    :ivar draining: whether the daemon is stopping (responses then ask
        clients to close their connections).
    """

    log = Logger()

    _buckets: IBucketRegistry
    _credentials: ICredentialRegistry
    _dispatcher: Dispatcher
    _clock: IReactorTime
    _domains: tuple[str, ...] = ()
    _max_clock_skew: int = 900
    _middleware: Sequence[IMiddleware] = ()
    _routes: Sequence[IRouteHandler] = ()
    _debug_errors: bool = False
    _access_log: bool = True
    _access_log_format: str = "text"
    _sessions: SessionKeys | None = None
    _authenticator: Authenticator = field(init=False)
    in_flight: int = field(default=0, init=False)
    draining: bool = field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        self._authenticator = Authenticator(
            credentials=self._credentials,
            clock=self._clock,
            sessions=self._sessions,
            domains=self._domains,
            max_clock_skew=self._max_clock_skew,
        )

    def start(self, request_id: str | None = None) -> Trace:
        """
        :return: a trace for a request that has just arrived.
        """
        self.in_flight += 1
        return Trace(
            request_id=request_id or new_request_id(), started=self._clock.seconds()
        )

    def handle(self, request: IncomingRequest, trace: Trace) -> Deferred[Response]:
        """
        Answer one request.

        :return: a Deferred that fires with the response (errors included);
            cancelling it abandons the request and whatever backend work it
            started.
        """
        return Deferred.fromCoroutine(self._handle(request, trace))

    async def _handle(self, request: IncomingRequest, trace: Trace) -> Response:
        try:
            for route in self._routes:
                answer = route.handle(request)
                if answer is not None:
                    response = await answer
                    if response is not None:
                        return response
            identity, signature = await self._authenticator.authenticate(request)
            trace.identity = identity
            operation = parse_operation(request, self._domains)
            trace.operation = operation
            bucket = None
            if operation.bucket is not None:
                bucket = await self._buckets.resolve(
                    operation.bucket, identity, operation
                )
                trace.bucket = bucket.name
                trace.bucket_rule = (bucket.pattern or bucket.config).name
                trace.backend = bucket.config.backend_type
            context = DispatchContext(
                request_id=trace.request_id,
                request=request,
                identity=identity,
                operation=operation,
                bucket=bucket,
                signature=signature,
            )
            return await self._chain(0, context, trace)
        except S3Error as error:
            return self.error_response(error, request, trace.request_id)
        except CancelledError:
            raise
        except Exception as unexpected:
            self.log.failure(
                "internal error answering {method} {path} ({request_id})",
                method=request.method,
                path=request.raw_path,
                request_id=trace.request_id,
            )
            internal = S3Error("InternalError")
            if self._debug_errors:
                internal = S3Error(
                    "InternalError", f"{internal.message} ({unexpected!r})"
                )
            return self.error_response(internal, request, trace.request_id)

    def _chain(
        self, index: int, context: DispatchContext, trace: Trace
    ) -> Deferred[Response]:
        if index == len(self._middleware):
            trace.forwarded = True
            return Deferred.fromCoroutine(dispatch(self._dispatcher, context))
        return self._middleware[index].handle(
            context, lambda next_context: self._chain(index + 1, next_context, trace)
        )

    def error_response(
        self, error: S3Error, request: IncomingRequest, request_id: str
    ) -> Response:
        """
        :return: the S3 error document for ``error``.
        """
        resource = error.resource
        if resource is None:
            resource = _resource_of(request, self._domains)
        headers = HeaderList([("content-type", "application/xml"), *error.headers])
        body = error_document(
            error.code, error.message, resource, request_id, error.extra
        )
        return Response(status=error.status, headers=headers, body=body)

    def completed(
        self,
        trace: Trace,
        request: IncomingRequest,
        status: int,
        *,
        bytes_in: int,
        bytes_out: int,
        complete: bool,
    ) -> None:
        """
        Tell observers a request is over, and log it.
        """
        self.in_flight -= 1
        duration = self._clock.seconds() - trace.started
        done = CompletedRequest(
            request_id=trace.request_id,
            status=status,
            identity=trace.identity,
            operation=trace.operation,
            bucket=trace.bucket,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            forwarded=trace.forwarded,
            client_address=request.client_address,
            complete=complete,
            duration=duration,
            forwarded_for=", ".join(request.headers.get_all("x-forwarded-for")) or None,
            started=trace.started,
            bucket_rule=trace.bucket_rule,
            backend=trace.backend,
        )
        for middleware in self._middleware:
            try:
                middleware.after_dispatch(done)
            except Exception:
                self.log.failure(
                    "after_dispatch of {middleware!r} failed", middleware=middleware
                )
        if self._access_log:
            access_line(self._access_log_format, done, request)


#: The access log's own namespace: one event per request, its text the
#: whole line.
ACCESS_LOG: Final = Logger(namespace="multistore.access")


def access_line(form: str, done: CompletedRequest, request: IncomingRequest) -> None:
    """
    Log one request's access line: a JSON object (``form`` ``json``) or a
    line of text, with the same fields (see C{docs/operations.md}).
    """
    fields = {
        "time": round(done.started, 3),
        "request_id": done.request_id,
        "client": done.client_address,
        "principal": done.identity.principal if done.identity else None,
        "operation": done.operation.name if done.operation else None,
        "bucket": done.bucket,
        "method": request.method,
        "path": request.raw_path.decode("latin-1"),
        "status": done.status,
        "bytes_in": done.bytes_in,
        "bytes_out": done.bytes_out,
        "complete": done.complete,
        "duration": round(done.duration, 6),
    }
    if form == "json":
        line = json.dumps(fields, separators=(",", ":"))
    else:
        line = (
            f"{done.request_id} {done.client_address or '-'} "
            f"{fields['principal'] or '-'} {fields['operation'] or '-'} "
            f"{done.bucket or '-'} {request.method} {fields['path']} {done.status} "
            f"in={done.bytes_in} out={done.bytes_out}"
            f"{'' if done.complete else ' (incomplete)'} {done.duration:.3f}s"
        )
    ACCESS_LOG.info("{access_line}", access_line=line)


def _resource_of(request: IncomingRequest, domains: Sequence[str]) -> str:
    try:
        bucket, key = split_path(request.raw_path, host_bucket(request.host, domains))
    except S3Error:
        return request.raw_path.decode("latin-1")
    if bucket is None:
        return "/"
    return f"/{bucket}" + (f"/{key}" if key is not None else "")
