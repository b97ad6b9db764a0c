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

import os
from collections.abc import Sequence
from datetime import UTC, datetime

from attrs import define, field
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from multistore.auth import sigv2, sigv4
from multistore.auth.identity import detect_scheme, identity_for_credential
from multistore.handlers import Dispatcher
from multistore.headers import HeaderList
from multistore.interfaces import (
    IBucketRegistry,
    ICredentialRegistry,
    IMiddleware,
    IRouteHandler,
)
from multistore.model import (
    ANONYMOUS,
    CompletedRequest,
    DispatchContext,
    Identity,
    IncomingRequest,
    Operation,
    Response,
)
from multistore.s3.errors import S3Error
from multistore.s3.request import host_bucket, parse_operation, parse_query, split_path
from multistore.s3.xml import error_document


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


def _utcnow(clock: IReactorTime) -> datetime:
    return datetime.fromtimestamp(clock.seconds(), UTC)


@define
class Gateway:
    """
    Answers S3 requests.

    :ivar _dispatcher: carries out authorized operations.
    :ivar _domains: domains for virtual-hosted-style addressing.
    :ivar _max_clock_skew: seconds a signed request's time may be off.
    :ivar _debug_errors: whether internal errors show their detail.
    """

    log = Logger()

    _buckets: IBucketRegistry
    _credentials: ICredentialRegistry
    _dispatcher: Dispatcher
    _clock: IReactorTime
    _domains: tuple[str, ...] = ()
    _max_clock_skew: int = 900
    _middleware: Sequence[IMiddleware] = field(default=(), converter=tuple)
    _routes: Sequence[IRouteHandler] = field(default=(), converter=tuple)
    _debug_errors: bool = False
    _access_log: bool = True

    def start(self, request_id: str | None = None) -> Trace:
        """
        :return: a trace for a request that has just arrived.
        """
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
            identity, signature = await self._authenticate(request)
            trace.identity = identity
            operation = parse_operation(request, self._domains)
            trace.operation = operation
            bucket = None
            if operation.bucket is not None:
                bucket = await self._buckets.resolve(
                    operation.bucket, identity, operation
                )
                trace.bucket = bucket.name
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
            return Deferred.fromCoroutine(self._dispatcher.dispatch(context))
        return self._middleware[index].handle(
            context, lambda next_context: self._chain(index + 1, next_context, trace)
        )

    async def _authenticate(
        self, request: IncomingRequest
    ) -> tuple[Identity, sigv4.VerifiedSignature | None]:
        """
        :return: who is calling, and for SigV4 what the signature
            established (the write path verifies chunk signatures with it).
        """
        query = parse_query(request.raw_query)
        scheme = detect_scheme(request.headers, query)
        if scheme.scheme == "anonymous":
            return ANONYMOUS, None
        if "x-amz-security-token" in request.headers or any(
            name == "X-Amz-Security-Token" for name, _ in query
        ):
            raise S3Error(
                "InvalidToken", "Session tokens are not accepted by this gateway."
            )
        now = _utcnow(self._clock)
        if scheme.scheme == "sigv4-header":
            assert scheme.authorization is not None
            auth = sigv4.parse_authorization(scheme.authorization)
            self._check_service(auth.service)
            identity, secret = await self._static(auth.access_key_id, now)
            verified = sigv4.verify_header_auth(
                request, auth, secret, now, self._max_clock_skew
            )
            return identity, verified
        if scheme.scheme == "sigv4-query":
            presigned = sigv4.parse_presigned(query)
            if presigned is None:
                raise S3Error(
                    "AuthorizationQueryParametersError",
                    "Query-string authentication requires the X-Amz-Algorithm parameter.",
                )
            self._check_service(presigned.service)
            identity, secret = await self._static(presigned.access_key_id, now)
            verified = sigv4.verify_presigned(
                request, presigned, secret, now, self._max_clock_skew
            )
            return identity, verified
        if scheme.scheme == "sigv2-header":
            assert scheme.authorization is not None
            v2 = sigv2.parse_authorization_v2(scheme.authorization)
        else:
            v2 = sigv2.parse_presigned_v2(query)
        if v2 is None:
            raise S3Error(
                "AccessDenied", "The request's SigV2 authentication is incomplete."
            )
        identity, secret = await self._static(v2.access_key_id, now)
        virtual = host_bucket(request.host, self._domains)
        sigv2.verify_v2_request(
            request,
            v2,
            secret,
            now,
            resource_path=None
            if virtual is None
            else f"/{virtual}{request.raw_path.decode('latin-1')}",
            max_skew=self._max_clock_skew,
        )
        return identity, None

    async def _static(self, access_key_id: str, now: datetime) -> tuple[Identity, str]:
        """
        :return: the identity of a static access key, and its secret.
        :raise S3Error: for an unknown, disabled or expired key.
        """
        credential = await self._credentials.get_credential(access_key_id)
        identity = identity_for_credential(credential, access_key_id, now)
        assert credential is not None
        return identity, credential.secret_access_key

    @staticmethod
    def _check_service(service: str) -> None:
        if service != "s3":
            raise S3Error(
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; incorrect service '{service}'. "
                "This endpoint belongs to 's3'.",
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
        )
        for middleware in self._middleware:
            try:
                middleware.after_dispatch(done)
            except Exception:
                self.log.failure(
                    "after_dispatch of {middleware!r} failed", middleware=middleware
                )
        if self._access_log:
            self.log.info(
                "{request_id} {client} {principal} {operation} {bucket} {method} {path} "
                "{status} in={bytes_in} out={bytes_out}{incomplete} {duration:.3f}s",
                request_id=trace.request_id,
                client=request.client_address or "-",
                principal=(trace.identity.principal if trace.identity else None) or "-",
                operation=trace.operation.name if trace.operation else "-",
                bucket=trace.bucket or "-",
                method=request.method,
                path=request.raw_path.decode("latin-1"),
                status=status,
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                incomplete="" if complete else " (incomplete)",
                duration=duration,
            )


def _resource_of(request: IncomingRequest, domains: Sequence[str]) -> str:
    try:
        bucket, key = split_path(request.raw_path, host_bucket(request.host, domains))
    except S3Error:
        return request.raw_path.decode("latin-1")
    if bucket is None:
        return "/"
    return f"/{bucket}" + (f"/{key}" if key is not None else "")
