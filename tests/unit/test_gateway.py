"""
Tests for L{multistore.gateway.pipeline} and L{multistore.operations.table}: the pipeline
end to end in memory, with a dict-backed store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from attrs import define, evolve, field
from lxml import etree
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from multistore.auth.canonical import EMPTY_SHA256
from multistore.auth.registry import StaticBucketRegistry, StaticCredentialRegistry
from multistore.auth.signing import sign_request
from multistore.config import AccessScope, BucketConfig, Config, StoredCredential
from multistore.gateway.pipeline import Gateway
from multistore.headers import HeaderList
from multistore.interfaces import (
    IMiddleware,
    IObjectStore,
    IRouteHandler,
    Next,
)
from multistore.model import (
    CompletedRequest,
    DispatchContext,
    IncomingRequest,
    ObjectRead,
    Response,
)
from multistore.operations.dispatcher import Dispatcher
from multistore.s3.errors import S3Error
from multistore.testing import CollectingConsumer, MemoryStore, MemoryStoreFactory

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
HOST = "127.0.0.1:8080"

#: The backend bucket behind every bucket of L{CONFIG}.
STORE = "store"

CONFIG = Config(
    buckets=(
        BucketConfig(
            name="public",
            backend_type="fake",
            backend_prefix="tenants/a",
            anonymous_access=True,
            backend_options={"bucket_name": STORE},
        ),
        BucketConfig(
            name="private", backend_type="fake", backend_options={"bucket_name": STORE}
        ),
    ),
    credentials=(
        StoredCredential(
            access_key_id="AKREADER",
            secret_access_key="reader-secret",
            principal_name="reader",
            allowed_scopes=(
                AccessScope("*", (), frozenset({"get_object", "list_bucket"})),
            ),
        ),
        StoredCredential(
            access_key_id="AKDATA",
            secret_access_key="data-secret",
            principal_name="data",
            allowed_scopes=(
                AccessScope("private", ("data",), frozenset({"list_bucket"})),
            ),
        ),
        StoredCredential(
            access_key_id="AKOLD",
            secret_access_key="old-secret",
            principal_name="old",
            expires_at=NOW - timedelta(days=1),
        ),
        StoredCredential(
            access_key_id="AKOFF",
            secret_access_key="off-secret",
            principal_name="off",
            enabled=False,
        ),
    ),
)


def memory_store(objects: dict[str, bytes]) -> MemoryStore:
    """
    The store behind every bucket of L{CONFIG}, holding ``objects`` (by
    backend key) as plain text.
    """
    store = MemoryStore(name=STORE)
    for key, data in objects.items():
        store.add(key, data, [("content-type", "text/plain")])
    return store


def stores_of(store: MemoryStore) -> MemoryStoreFactory:
    """
    A factory whose every bucket of L{CONFIG} is ``store``.
    """
    return MemoryStoreFactory(stores={STORE: store})


def reads(store: MemoryStore) -> list[ObjectRead]:
    """
    The reads ``store`` was asked for, in order.
    """
    return [args[0] for args in store.calls_to("get_object")]


def gateway(
    store: MemoryStore,
    *,
    middleware: Sequence[IMiddleware] = (),
    routes: Sequence[IRouteHandler] = (),
) -> Gateway:
    clock = Clock()
    clock.advance(NOW.timestamp())
    buckets = StaticBucketRegistry.from_config(CONFIG)
    return Gateway(
        buckets=buckets,
        credentials=StaticCredentialRegistry.from_config(CONFIG),
        dispatcher=Dispatcher(stores=stores_of(store), buckets=buckets),
        clock=clock,
        middleware=middleware,
        routes=routes,
        access_log=False,
    )


def incoming(
    method: str, target: str, headers: Sequence[tuple[str, str]] = ()
) -> IncomingRequest:
    path, _, query = target.partition("?")
    return IncomingRequest(
        method=method,
        raw_path=path.encode("ascii"),
        raw_query=query.encode("ascii"),
        headers=HeaderList(
            [
                *([] if any(n == "host" for n, _ in headers) else [("host", HOST)]),
                *headers,
            ]
        ),
    )


def signed(
    method: str,
    target: str,
    key: str = "AKREADER",
    secret: str = "reader-secret",
    when: datetime = NOW,
) -> IncomingRequest:
    headers = sign_request(
        method,
        f"http://{HOST}{target}",
        HeaderList(),
        EMPTY_SHA256,
        key,
        secret,
        None,
        "us-east-1",
        when,
    )
    return incoming(method, target, list(headers))


def body_of(response: Response) -> bytes:
    body = response.body
    if body is None or isinstance(body, bytes):
        return body or b""
    consumer = CollectingConsumer()
    body.deliver(consumer)
    return consumer.value()


def error_of(response: Response) -> tuple[int, str, str]:
    root = etree.fromstring(body_of(response))
    return response.status, root.findtext("Code") or "", root.findtext("Message") or ""


class GatewayReadTests(SynchronousTestCase):
    """
    Reads through the whole pipeline.
    """

    def setUp(self) -> None:
        self.store = memory_store(
            {"tenants/a/k": b"hello", "tenants/a/dir/x": b"x", "k": b"top"}
        )
        self.gateway = gateway(self.store)

    def handle(self, request: IncomingRequest) -> Response:
        trace = self.gateway.start("RID")
        return self.successResultOf(self.gateway.handle(request, trace))

    def test_fake_store_is_a_store(self) -> None:
        """
        The test store provides the interface the gateway relies on.
        """
        self.assertTrue(verifyObject(IObjectStore, self.store))

    def test_anonymous_get_maps_prefix(self) -> None:
        """
        An anonymous GET on a public bucket reads the backend key under the
        bucket's prefix and returns the store's answer.
        """
        response = self.handle(incoming("GET", "/public/k", [("range", "bytes=0-1")]))
        self.assertEqual((response.status, body_of(response)), (206, b"he"))
        (read,) = reads(self.store)
        self.assertEqual(
            (read.key, read.range, read.head), ("tenants/a/k", "bytes=0-1", False)
        )

    def test_head(self) -> None:
        """
        HEAD reads with ``head`` set and answers without a body.
        """
        response = self.handle(incoming("HEAD", "/public/k"))
        self.assertEqual(response.status, 200)
        self.assertIsNone(response.body)
        self.assertTrue(reads(self.store)[0].head)

    def test_overrides_need_signature(self) -> None:
        """
        ``response-*`` overrides apply on signed GETs and are refused on
        anonymous ones, as S3 does.
        """
        response = self.handle(signed("GET", "/public/k?response-content-type=x%2Fy"))
        self.assertEqual(response.headers.get("content-type"), "x/y")
        status, code, _ = error_of(
            self.handle(incoming("GET", "/public/k?response-content-type=x"))
        )
        self.assertEqual((status, code), (400, "InvalidRequest"))

    def test_part_number_and_range(self) -> None:
        """
        ``partNumber`` with a ``Range`` is refused; a bad part number too.
        """
        response = self.handle(
            incoming("GET", "/public/k?partNumber=1", [("range", "bytes=0-1")])
        )
        self.assertEqual(error_of(response)[:2], (400, "InvalidRequest"))
        response = self.handle(incoming("GET", "/public/k?partNumber=0"))
        self.assertEqual(error_of(response)[:2], (400, "InvalidArgument"))
        self.handle(incoming("GET", "/public/k?partNumber=1"))
        self.assertEqual(reads(self.store)[-1].part_number, 1)

    def test_listing_virtual(self) -> None:
        """
        A listing asks the store under the prefix and answers in virtual
        keys, never showing the prefix.
        """
        response = self.handle(incoming("GET", "/public?list-type=2"))
        body = body_of(response)
        self.assertEqual(response.status, 200)
        self.assertEqual(self.store.calls_to("list_objects")[0][0].prefix, "tenants/a/")
        self.assertIn(b"<Key>k</Key>", body)
        self.assertIn(b"<Key>dir/x</Key>", body)
        self.assertNotIn(b"tenants", body)

    def test_listing_respects_prefix_boundary(self) -> None:
        """
        A caller whose scope prefix is ``data`` may list ``prefix=data``, but
        sees only ``data`` and what is under ``data/``, never
        ``data-private``, which the store also returns for that prefix.
        """
        for key, data in {
            "data": b"1",
            "data/x": b"2",
            "data-private/secret": b"3",
            "datum": b"4",
        }.items():
            self.store.add(key, data)
        request = signed(
            "GET", "/private?list-type=2&prefix=data", "AKDATA", "data-secret"
        )
        body = body_of(self.handle(request))
        keys = etree.fromstring(body).findall(".//{*}Key")
        self.assertEqual([k.text for k in keys], ["data", "data/x"])
        self.assertIn(b"<KeyCount>2</KeyCount>", body)
        request = signed(
            "GET",
            "/private?list-type=2&prefix=data&delimiter=%2F",
            "AKDATA",
            "data-secret",
        )
        body = body_of(self.handle(request))
        self.assertIn(b"<Prefix>data/</Prefix>", body)
        self.assertNotIn(b"private", body.replace(b"<Name>private</Name>", b""))

    def test_debug_errors(self) -> None:
        """
        With ``debug_errors``, an internal error names the exception.
        """
        self.store.script("get_object", RuntimeError("detail"))
        self.gateway._debug_errors = True
        _, code, message = error_of(self.handle(incoming("GET", "/public/k")))
        self.assertEqual(code, "InternalError")
        self.assertIn("RuntimeError('detail')", message)
        self.flushLoggedErrors(RuntimeError)

    def test_not_implemented_operations(self) -> None:
        """
        Operations this version does not carry out answer 501 after
        authorization.
        """
        status, code, _ = error_of(self.handle(signed("DELETE", "/public/k")))
        self.assertEqual((status, code), (403, "AccessDenied"))
        store = memory_store({})
        store.script(
            "put_object",
            S3Error("NotImplemented", "This store does not accept writes yet."),
        )
        writer = evolve(
            CONFIG,
            credentials=(
                StoredCredential(
                    "AKW", "w", "w", (AccessScope("*", (), frozenset({"put_object"})),)
                ),
            ),
        )
        buckets = StaticBucketRegistry.from_config(writer)
        clock = Clock()
        clock.advance(NOW.timestamp())
        gw = Gateway(
            buckets,
            StaticCredentialRegistry.from_config(writer),
            Dispatcher(stores_of(store), buckets),
            clock,
            access_log=False,
        )
        response = self.successResultOf(
            gw.handle(signed("PUT", "/private/k", "AKW", "w"), gw.start())
        )
        self.assertEqual(error_of(response)[:2], (501, "NotImplemented"))

    def test_error_document(self) -> None:
        """
        Errors name the resource and the request id.
        """
        response = self.handle(incoming("GET", "/public/missing"))
        root = etree.fromstring(body_of(response))
        self.assertEqual(response.status, 404)
        self.assertEqual(root.findtext("Code"), "NoSuchKey")
        self.assertEqual(root.findtext("Resource"), "/public/missing")
        self.assertEqual(root.findtext("RequestId"), "RID")
        self.assertEqual(response.headers.get("content-type"), "application/xml")

    def test_internal_error_hidden(self) -> None:
        """
        An unexpected exception is logged and answered with a bare
        ``InternalError``.
        """
        self.store.script("get_object", RuntimeError("secret detail"))
        status, code, message = error_of(self.handle(incoming("GET", "/public/k")))
        self.assertEqual((status, code), (500, "InternalError"))
        self.assertNotIn("secret", message)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class GatewayAuthTests(SynchronousTestCase):
    """
    Authentication in the pipeline.
    """

    def setUp(self) -> None:
        self.store = memory_store({"k": b"private"})
        self.gateway = gateway(self.store)

    def handle(self, request: IncomingRequest) -> Response:
        return self.successResultOf(self.gateway.handle(request, self.gateway.start()))

    def test_signed(self) -> None:
        """
        A correctly signed request is served.
        """
        response = self.handle(signed("GET", "/private/k"))
        self.assertEqual(body_of(response), b"private")

    def test_errors(self) -> None:
        """
        Each authentication failure has AWS's code and status.
        """
        cases = [
            (
                signed("GET", "/private/k", secret="wrong"),
                (403, "SignatureDoesNotMatch"),
            ),
            (signed("GET", "/private/k", key="AKNOPE"), (403, "InvalidAccessKeyId")),
            (
                signed("GET", "/private/k", key="AKOFF", secret="off-secret"),
                (403, "InvalidAccessKeyId"),
            ),
            (
                signed("GET", "/private/k", key="AKOLD", secret="old-secret"),
                (400, "ExpiredToken"),
            ),
            (
                signed("GET", "/private/k", when=NOW - timedelta(minutes=20)),
                (403, "RequestTimeTooSkewed"),
            ),
            (
                incoming(
                    "GET",
                    "/private/k",
                    [("authorization", "AWS4-HMAC-SHA256 nonsense")],
                ),
                (400, "AuthorizationHeaderMalformed"),
            ),
            (incoming("GET", "/private/k"), (403, "AccessDenied")),
            (
                incoming(
                    "GET",
                    "/private/k",
                    [
                        ("x-amz-security-token", "t"),
                        *signed("GET", "/private/k").headers,
                    ],
                ),
                (400, "InvalidToken"),
            ),
        ]
        for request, expected in cases:
            self.assertEqual(error_of(self.handle(request))[:2], expected, request)
        self.assertEqual(reads(self.store), [])


@implementer(IMiddleware)
@define
class Recorder:
    """
    A middleware that records what it sees and can answer by itself.
    """

    answer: Response | None = None
    seen: list[DispatchContext] = field(factory=list)
    completed: list[CompletedRequest] = field(factory=list)

    def handle(self, context: DispatchContext, next: Next) -> Deferred[Response]:
        self.seen.append(context)
        if self.answer is not None:
            return succeed(self.answer)
        return next(context)

    def after_dispatch(self, completed: CompletedRequest) -> None:
        self.completed.append(completed)


@implementer(IRouteHandler)
@define
class Health:
    def handle(self, request: IncomingRequest) -> Deferred[Response | None] | None:
        if request.raw_path == b"/.health":
            return succeed(Response(200, body=b"ok"))
        return None


class ExtensionTests(SynchronousTestCase):
    """
    Middleware and route handlers.
    """

    def test_middleware_sees_and_observes(self) -> None:
        """
        Middleware sees the authorized context, and is told when the request
        is over.
        """
        store = memory_store({"tenants/a/k": b"v"})
        recorder = Recorder()
        self.assertTrue(verifyObject(IMiddleware, recorder))
        gw = gateway(store, middleware=[recorder])
        request = incoming("GET", "/public/k")
        trace = gw.start()
        response = self.successResultOf(gw.handle(request, trace))
        gw.completed(
            trace, request, response.status, bytes_in=0, bytes_out=1, complete=True
        )
        (context,) = recorder.seen
        self.assertEqual(
            (context.operation.name, context.bucket.name if context.bucket else None),
            ("GetObject", "public"),
        )
        (done,) = recorder.completed
        self.assertEqual(
            (done.status, done.bucket, done.bytes_out, done.forwarded),
            (200, "public", 1, True),
        )

    def test_middleware_short_circuits(self) -> None:
        """
        A middleware can answer without the store being asked.
        """
        store = memory_store({"tenants/a/k": b"v"})
        gw = gateway(store, middleware=[Recorder(answer=Response(429, body=b"slow"))])
        response = self.successResultOf(
            gw.handle(incoming("GET", "/public/k"), gw.start())
        )
        self.assertEqual(response.status, 429)
        self.assertEqual(reads(store), [])

    def test_denied_requests_skip_middleware(self) -> None:
        """
        Middleware runs only for authorized requests, but still observes the
        rejected ones.
        """
        recorder = Recorder()
        gw = gateway(memory_store({}), middleware=[recorder])
        request = incoming("GET", "/private/k")
        trace = gw.start()
        response = self.successResultOf(gw.handle(request, trace))
        gw.completed(
            trace, request, response.status, bytes_in=0, bytes_out=0, complete=True
        )
        self.assertEqual(recorder.seen, [])
        self.assertEqual([c.status for c in recorder.completed], [403])

    def test_routes(self) -> None:
        """
        A route handler answers its paths and declines the rest.
        """
        store = memory_store({"tenants/a/k": b"v"})
        gw = gateway(store, routes=[Health()])
        self.assertEqual(
            self.successResultOf(
                gw.handle(incoming("GET", "/.health"), gw.start())
            ).body,
            b"ok",
        )
        response = self.successResultOf(
            gw.handle(incoming("GET", "/public/k"), gw.start())
        )
        self.assertEqual(response.status, 200)
