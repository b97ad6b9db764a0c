"""
Tests for L{multistore.testing}: the memory store against the same
behaviour as the directory store, the scripted forwarder, the delayed
registry, the bodies, and the site harness.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from lxml import etree
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IBodyProducer
from zope.interface.verify import verifyObject

from multistore.auth.registry import StaticBucketRegistry
from multistore.bodies import BytesProducer, DeliveryStopped, IBody
from multistore.config import BucketConfig
from multistore.configfile import config_from_mapping
from multistore.headers import HeaderList
from multistore.interfaces import IBucketRegistry, IForwarder, IObjectStore
from multistore.model import (
    ANONYMOUS,
    BackendRequest,
    BackendResponse,
    CopySource,
    ObjectRead,
    ObjectWrite,
    Operation,
)
from multistore.s3.errors import S3Error
from multistore.stores.local import LocalStore
from multistore.stores.s3.store import S3Store
from multistore.testing import (
    HARNESS_EPOCH,
    CollectingConsumer,
    ControlledBody,
    ControlledProducer,
    DelayedBucketRegistry,
    HarnessResponse,
    MemoryStore,
    MemoryStoreFactory,
    RecordingBody,
    ScriptedForwarder,
    SiteHarness,
    WrongBodyLength,
    deliver_all,
    respond,
)
from tests.unit.store_behaviour import MIN_PART, StoreBehaviourMixin
from tests.unit.test_local import QueuedPool


class _InlineReactor:
    """
    The reactor as a directory store sees it: results from its pool come
    back at once; the time is the system's, as the files' times are.
    """

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)

    def seconds(self) -> float:
        return time.time()


class MemoryStoreBehaviourTests(StoreBehaviourMixin, SynchronousTestCase):
    """
    L{MemoryStore} behaves as a store should.
    """

    def make_store(self) -> IObjectStore:
        return MemoryStore(name="behaviour", min_part_size=MIN_PART)

    def this_bucket(self) -> BucketConfig:
        return BucketConfig(
            name="b", backend_type="s3", backend_options={"bucket_name": "behaviour"}
        )


class LocalStoreBehaviourTests(StoreBehaviourMixin, SynchronousTestCase):
    """
    The directory store behaves the same.
    """

    def make_store(self) -> IObjectStore:
        self.root = tempfile.mkdtemp(prefix="multistore-behaviour-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.pool = QueuedPool()
        reactor = _InlineReactor()
        return LocalStore(
            root=os.path.abspath(self.root),
            reactor=reactor,  # type: ignore[arg-type]
            threadpool=self.pool,
            clock=reactor,  # type: ignore[arg-type]
            min_part_size=MIN_PART,
            fsync=False,
        )

    def settle(self) -> None:
        self.pool.run_all()

    def this_bucket(self) -> BucketConfig:
        return BucketConfig(
            name="b",
            backend_type="file",
            backend_options={"root": os.path.abspath(self.root)},
        )


# --- the site harness ---------------------------------------------------------------

#: A bucket, a caller who may do anything in it, and one whose scope is
#: the prefix ``data`` (``data`` and what is under ``data/``, not
#: ``data-private`` nor ``datum``).
SITE: dict[str, Any] = {
    "buckets": [
        {
            "name": "shared",
            "backend_type": "s3",
            "backend_options": {"bucket_name": "shared"},
        }
    ],
    "credentials": [
        {
            "access_key_id": "AKALL",
            "secret_access_key": "all-secret",
            "principal_name": "all",
            "allowed_scopes": [
                {
                    "bucket": "shared",
                    "actions": [
                        "get_object",
                        "put_object",
                        "list_bucket",
                        "delete_object",
                        "create_multipart_upload",
                    ],
                }
            ],
        },
        {
            "access_key_id": "AKDATA",
            "secret_access_key": "data-secret",
            "principal_name": "data",
            "allowed_scopes": [
                {
                    "bucket": "shared",
                    "prefixes": ["data"],
                    "actions": [
                        "list_bucket",
                        "delete_object",
                        "create_multipart_upload",
                    ],
                }
            ],
        },
    ],
}
ALL = ("AKALL", "all-secret")
DATA = ("AKDATA", "data-secret")
KEYS = ("data", "data/x", "data-private/secret", "datum")


def xml_keys(body: bytes, tag: str = "Key") -> list[str]:
    return [e.text or "" for e in etree.fromstring(body).iter(f"{{*}}{tag}")]


class HarnessTests(SynchronousTestCase):
    """
    L{SiteHarness} drives the real site, streaming both ways.
    """

    def setUp(self) -> None:
        self.stores = MemoryStoreFactory()
        self.harness = SiteHarness.from_mapping(SITE, stores=self.stores)
        self.store = self.stores.store_named("shared")

    def test_round_trip(self) -> None:
        """
        A signed PUT stores the object; a GET reads it back with its
        headers; an error is an S3 error document with the request id.
        """
        response = self.harness.request(
            "PUT",
            "/shared/k",
            [("content-type", "text/plain")],
            b"hello",
            sign=ALL,
        )
        self.assertEqual(response.status, 200)
        self.assertEqual(self.store.data_of("k"), b"hello")
        got = self.harness.request("GET", "/shared/k", sign=ALL)
        self.assertEqual(
            (got.status, got.body, got.headers.get("content-type")),
            (200, b"hello", "text/plain"),
        )
        self.assertEqual(got.headers.get("etag"), response.headers.get("etag"))
        missing = self.harness.request("GET", "/shared/nothing", sign=ALL)
        request_id = missing.headers.get("x-amz-request-id")
        self.assertEqual(missing.status, 404)
        self.assertEqual(xml_keys(missing.body, "RequestId"), [request_id])
        denied = self.harness.request("GET", "/shared/k")
        self.assertEqual(denied.status, 403)

    def test_upload_streams(self) -> None:
        """
        An upload reaches its store while the client is still sending it,
        and the object appears once the last byte is in.
        """
        size = 1024 * 1024
        exchange = self.harness.open(
            "PUT", "/shared/big", [("content-length", str(size))], sign=ALL
        )
        exchange.send(b"a" * (size // 2))
        ((key, received),) = self.store.in_progress()
        self.assertEqual(key, "big")
        self.assertGreater(received, size // 4)
        self.assertIsNone(exchange.response())
        self.assertIsNone(self.store.data_of("big"))
        exchange.send(b"b" * (size // 2))
        response = exchange.response()
        assert response is not None
        self.assertEqual((response.status, response.complete), (200, True))
        self.assertEqual(
            self.store.data_of("big"), b"a" * (size // 2) + b"b" * (size // 2)
        )

    def test_upload_backpressure(self) -> None:
        """
        A store that holds writes back pauses the client: its bytes wait
        unsent, and the store is not flooded meanwhile; released, the
        upload completes.
        """
        size = 8 * 1024 * 1024
        self.store.hold_writes()
        exchange = self.harness.open(
            "PUT", "/shared/big", [("content-length", str(size))], sign=ALL
        )
        for _ in range(8):
            exchange.send(b"z" * (size // 8))
        self.assertTrue(exchange.paused)
        self.assertGreater(exchange.unsent, size // 2)
        ((_, received),) = self.store.in_progress()
        self.assertLess(received, size // 4)
        self.assertLess(self.store.written_while_held, size // 4)
        self.store.release_writes()
        exchange.pump()
        response = exchange.response()
        assert response is not None
        self.assertEqual(response.status, 200)
        self.assertEqual(len(self.store.data_of("big") or b""), size)

    def test_download_backpressure(self) -> None:
        """
        A client that reads slowly pauses the object's body: what waits
        unread stays near the client's window, and the body arrives whole
        as it reads.
        """
        data = bytes(range(256)) * 8 * 1024
        self.store.add("big", data)
        window = 64 * 1024
        exchange = self.harness.open("GET", "/shared/big", sign=ALL, window=window)
        self.assertTrue(exchange.transport.holding)
        self.assertLess(exchange.unread, 4 * window)
        reads = 0
        while True:
            exchange.read(window)
            reads += 1
            response = exchange.response()
            if response is not None and response.complete:
                break
            self.assertLess(exchange.unread, 4 * window)
            self.assertLess(reads, 1000)
        self.assertGreater(reads, 8)
        self.assertEqual(response.body, data)

    def test_chunked_upload(self) -> None:
        """
        A chunked upload (no length) streams through too.
        """
        response = self.harness.request(
            "PUT", "/shared/k", body=[b"ab", b"cd", b"ef"], sign=ALL, chunked=True
        )
        self.assertEqual(response.status, 200)
        self.assertEqual(self.store.data_of("k"), b"abcdef")

    def test_client_gone(self) -> None:
        """
        A client that goes away mid-upload leaves no object behind.
        """
        exchange = self.harness.open(
            "PUT", "/shared/k", [("content-length", "100")], sign=ALL
        )
        exchange.send(b"x" * 50)
        exchange.disconnect()
        self.assertEqual(self.store.in_progress(), [])
        self.assertIsNone(self.store.data_of("k"))

    def test_refused_upload_not_read(self) -> None:
        """
        A refused upload with much still to come is answered at once and
        its connection closed; one waiting for ``100 Continue`` is not
        continued.
        """
        for extra in ([], [("expect", "100-continue")]):
            exchange = self.harness.open(
                "PUT", "/shared/k", [("content-length", "5242880"), *extra]
            )
            exchange.send(b"z" * 1000)
            response = exchange.response()
            assert response is not None
            self.assertEqual((response.status, response.interim), (403, ()))
            self.assertTrue(exchange.closed)

    def test_continue(self) -> None:
        """
        A client waiting for ``100 Continue`` gets it before its answer.
        """
        exchange = self.harness.open(
            "PUT",
            "/shared/k",
            [("content-length", "3"), ("expect", "100-continue")],
            sign=ALL,
        )
        exchange.send(b"abc")
        response = exchange.response()
        assert response is not None
        self.assertEqual((response.interim, response.status), ((100,), 200))

    def test_scripted_store(self) -> None:
        """
        A store scripted to fail shows through as the client's error; an
        unexpected exception is an ``InternalError`` without detail.
        """
        self.store.script("get_object", S3Error("SlowDown"), RuntimeError("secret"))
        self.store.add("k", b"v")
        self.assertEqual(self.harness.request("GET", "/shared/k", sign=ALL).status, 503)
        response = self.harness.request("GET", "/shared/k", sign=ALL)
        self.assertEqual(response.status, 500)
        self.assertNotIn(b"secret", response.body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.harness.request("GET", "/shared/k", sign=ALL).body, b"v")
        self.assertEqual(len(self.store.calls_to("get_object")), 3)


class DelayedRegistryTests(SynchronousTestCase):
    """
    A registry that answers later (as one behind a network service does)
    changes nothing a client sees: DeleteObjects, ListObjectsV2 and
    ListMultipartUploads answer exactly as with the static registry, keys
    outside the caller's scope refused or hidden alike.
    """

    def harness(self, delayed: bool) -> tuple[SiteHarness, MemoryStore]:
        config = config_from_mapping(SITE)
        clock = MemoryReactorClock()
        clock.advance(HARNESS_EPOCH.timestamp())
        stores = MemoryStoreFactory(clock=clock)
        static = StaticBucketRegistry.from_config(config)
        self.registry = DelayedBucketRegistry(static, clock, delay=2.0)
        harness = SiteHarness.from_config(
            config,
            stores=stores,
            clock=clock,
            buckets=self.registry if delayed else static,
        )
        store = stores.store_named("shared")
        for key in KEYS:
            store.add(key, key.encode())
        return harness, store

    def both(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> tuple[HarnessResponse, HarnessResponse, MemoryStore, MemoryStore]:
        """
        Send the same request as the scoped caller through the static
        registry and the delayed one.

        :return: both responses, and both stores afterwards.
        """
        fields = list(headers or [])
        if body is not None:
            fields.append(("content-length", str(len(body))))
        static_harness, static_store = self.harness(False)
        static = static_harness.request(method, target, fields, body, sign=DATA)
        harness, store = self.harness(True)
        exchange = harness.open(method, target, fields, sign=DATA, payload=body)
        if body is not None:
            exchange.send(body)
        self.assertIsNone(exchange.response())
        self.assertEqual(self.registry.pending, 1)
        waited = 0
        while (response := exchange.response()) is None or not response.complete:
            self.assertLess(waited, 10)
            harness.advance(2.0)
            waited += 1
        self.assertEqual(self.registry.calls[0], "resolve")
        return static, response, static_store, store

    def assert_same(self, static: HarnessResponse, delayed: HarnessResponse) -> None:
        self.assertEqual(static.status, delayed.status)
        self.assertEqual(static.body, delayed.body)
        self.assertEqual(
            static.headers.get("content-type"), delayed.headers.get("content-type")
        )

    def test_registry(self) -> None:
        """
        The delayed registry provides L{IBucketRegistry}, answers nothing
        until its delay has passed, then what its registry answered,
        failures included.
        """
        config = config_from_mapping(SITE)
        clock = MemoryReactorClock()
        registry = DelayedBucketRegistry(
            StaticBucketRegistry.from_config(config), clock, delay=3.0
        )
        self.assertTrue(verifyObject(IBucketRegistry, registry))
        self.assertEqual(registry.owner_id, "multistore")
        listing = registry.list_buckets(ANONYMOUS)
        refused = registry.resolve(
            "shared", ANONYMOUS, Operation("GetObject", "get_object", "shared", "k")
        )
        self.assertNoResult(listing)
        self.assertNoResult(refused)
        self.assertEqual(registry.pending, 2)
        clock.advance(2.9)
        self.assertNoResult(listing)
        clock.advance(0.1)
        self.assertEqual(self.successResultOf(listing), [])
        self.assertEqual(
            self.failureResultOf(refused, S3Error).value.code, "AccessDenied"
        )
        self.assertEqual(registry.pending, 0)

    def test_delete_objects(self) -> None:
        """
        DeleteObjects deletes the keys in scope and refuses the others,
        with the same answer.
        """
        document = (
            b"<Delete><Object><Key>data/x</Key></Object>"
            b"<Object><Key>datum</Key></Object>"
            b"<Object><Key>data/missing</Key></Object></Delete>"
        )
        md5 = base64.b64encode(hashlib.md5(document).digest()).decode()
        static, delayed, static_store, store = self.both(
            "POST", "/shared?delete", document, [("content-md5", md5)]
        )
        self.assertEqual(self.registry.calls, ["resolve", "authorize_keys"])
        self.assert_same(static, delayed)
        self.assertEqual(static.status, 200)
        self.assertEqual(
            sorted(xml_keys(delayed.body)), ["data/missing", "data/x", "datum"]
        )
        self.assertEqual(xml_keys(delayed.body, "Code"), ["AccessDenied"])
        for kept in (static_store, store):
            self.assertEqual(kept.keys(), ["data", "data-private/secret", "datum"])

    def test_list_objects(self) -> None:
        """
        ListObjectsV2 hides the keys that share the caller's prefix but lie
        outside its scope, with the same answer.
        """
        static, delayed, _, _ = self.both("GET", "/shared?list-type=2&prefix=data")
        self.assertEqual(self.registry.calls, ["resolve", "authorize_keys"])
        self.assert_same(static, delayed)
        self.assertEqual(xml_keys(delayed.body), ["data", "data/x"])
        rolled, rolled_delayed, _, _ = self.both(
            "GET", "/shared?list-type=2&prefix=data&delimiter=%2F"
        )
        self.assert_same(rolled, rolled_delayed)
        self.assertEqual(xml_keys(rolled_delayed.body, "Prefix")[1:], ["data/"])

    def test_list_multipart_uploads(self) -> None:
        """
        ListMultipartUploads hides the uploads outside the caller's scope,
        with the same answer.
        """
        answers = []
        for delayed in (False, True):
            harness, store = self.harness(delayed)
            ids = {
                key: self.successResultOf(
                    store.create_multipart_upload(key, HeaderList())
                )
                for key in ("data/u1", "datum/u2", "data-private/u3")
            }
            exchange = harness.open("GET", "/shared?uploads&prefix=data", sign=DATA)
            if delayed:
                self.assertIsNone(exchange.response())
            harness.advance(2.0)
            harness.advance(2.0)
            response = exchange.response()
            assert response is not None and response.complete
            body = response.body
            for key, upload_id in ids.items():
                body = body.replace(upload_id.encode(), key.encode() + b"-id")
            answers.append((response.status, body))
        self.assertEqual(self.registry.calls, ["resolve", "authorize_keys"])
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(answers[1][0], 200)
        self.assertEqual(xml_keys(answers[1][1]), ["data/u1"])


class MemoryStoreTests(SynchronousTestCase):
    """
    What L{MemoryStore} offers tests besides its behaviour as a store.
    """

    def test_script_and_calls(self) -> None:
        """
        Scripted outcomes answer the next calls in order, a Deferred left
        pending; every call is recorded.
        """
        store = MemoryStore()
        store.add("k", b"v")
        pending: Deferred[object] = Deferred()
        store.script("head_bucket", S3Error("SlowDown"), pending, None)
        self.assertEqual(
            self.failureResultOf(store.head_bucket(), S3Error).value.code, "SlowDown"
        )
        waiting = store.head_bucket()
        self.assertNoResult(waiting)
        pending.callback(None)
        self.successResultOf(waiting)
        self.successResultOf(store.head_bucket())
        self.successResultOf(store.head_bucket())
        self.successResultOf(store.get_object(ObjectRead("k")))
        self.assertEqual(len(store.calls_to("head_bucket")), 4)
        self.assertEqual(store.calls_to("get_object"), [(ObjectRead("k"),)])

    def test_hold_writes(self) -> None:
        """
        Held writes pause their bodies, and those started later; released,
        they resume.
        """
        store = MemoryStore()
        first = ControlledProducer(length=2)
        writing = store.put_object(ObjectWrite("a", first))
        store.hold_writes()
        self.assertTrue(first.paused)
        second = ControlledProducer(length=1)
        later = store.put_object(ObjectWrite("b", second))
        self.assertTrue(second.paused)
        first.send(b"x")
        self.assertEqual(store.written_while_held, 1)
        self.assertEqual(store.in_progress(), [("a", 1), ("b", 0)])
        store.release_writes()
        self.assertEqual((first.resumes, second.resumes), (1, 1))
        first.send(b"y")
        first.finish()
        second.send(b"z")
        second.finish()
        self.successResultOf(writing)
        self.successResultOf(later)
        self.assertEqual((store.data_of("a"), store.data_of("b")), (b"xy", b"z"))

    def test_factory(self) -> None:
        """
        A factory makes one store per backend bucket; its stores copy from
        one another, and say so, but from no other service.
        """
        factory = MemoryStoreFactory(buckets_exist=False)
        one = BucketConfig("one", "s3", backend_options={"bucket_name": "real"})
        alias = BucketConfig("alias", "s3", backend_options={"bucket_name": "real"})
        other = BucketConfig("other", "file", backend_options={"root": "/srv/other"})
        store = factory.store_for(one)
        self.assertIs(factory.store_for(alias), store)
        self.assertEqual(
            self.failureResultOf(store.head_bucket(), S3Error).value.code,
            "NoSuchBucket",
        )
        self.successResultOf(store.create_bucket())
        target = factory.store_for(other)
        self.successResultOf(target.create_bucket())
        assert isinstance(store, MemoryStore) and isinstance(target, MemoryStore)
        store.add("k", b"v")
        source = CopySource(bucket=alias, key="k")
        self.assertTrue(target.can_copy(source))
        self.successResultOf(target.copy_object(source, "copied", HeaderList()))
        self.assertEqual(target.data_of("copied"), b"v")
        foreign = CopySource(
            BucketConfig("x", "s3", backend_options={"bucket_name": "x"}), "k"
        )
        self.assertFalse(target.can_copy(foreign))
        self.assertEqual(factory.store_named("/srv/other"), target)


class ForwarderTests(SynchronousTestCase):
    """
    Tests for L{ScriptedForwarder}.
    """

    def request(self, body: Any = None, method: str = "PUT") -> BackendRequest:
        return BackendRequest(method, "http://backend/b/k", HeaderList(), body)

    def test_answers_in_order(self) -> None:
        """
        Answers are given in order: a response, an exception, a pending
        Deferred; every request is recorded; with none left, a request is
        an error of the test.
        """
        later: Deferred[BackendResponse] = Deferred()
        first = respond(200, [("etag", '"e"')], b"body")
        forwarder = ScriptedForwarder(first, S3Error("ServiceUnavailable"), later)
        self.assertTrue(verifyObject(IForwarder, forwarder))
        self.assertIs(self.successResultOf(forwarder.forward(self.request())), first)
        failure = self.failureResultOf(forwarder.forward(self.request()), S3Error)
        self.assertEqual(failure.value.code, "ServiceUnavailable")
        waiting = forwarder.forward(self.request(method="GET"))
        self.assertNoResult(waiting)
        self.assertEqual((forwarder.in_flight, forwarder.most_in_flight), (1, 1))
        later.callback(respond(204))
        self.assertEqual(self.successResultOf(waiting).status, 204)
        self.assertEqual([r.method for r in forwarder.requests], ["PUT", "PUT", "GET"])
        self.assertRaises(AssertionError, forwarder.forward, self.request())
        body = first.body
        assert isinstance(body, RecordingBody)
        self.assertEqual(self.successResultOf(deliver_all(body)), b"body")
        self.assertEqual(body.uses, ["deliver"])

    def test_reads_bodies(self) -> None:
        """
        A request body is read as it streams, before the answer; a body
        that fails fails the request; one longer than its length is
        refused.
        """
        forwarder = ScriptedForwarder(respond(200), respond(200), respond(200))
        body = ControlledProducer(length=6)
        answering = forwarder.forward(self.request(body))
        body.send(b"abc")
        self.assertEqual(forwarder.exchanges[0].body, b"abc")
        self.assertNoResult(answering)
        body.send(b"def")
        body.finish()
        self.successResultOf(answering)
        self.assertTrue(forwarder.exchanges[0].complete)
        failing = ControlledProducer()
        answering = forwarder.forward(self.request(failing))
        failing.fail(S3Error("IncompleteBody"))
        self.assertEqual(
            self.failureResultOf(answering, S3Error).value.code, "IncompleteBody"
        )
        long = ControlledProducer(length=2)
        answering = forwarder.forward(self.request(long))
        long.send(b"abc")
        self.failureResultOf(answering, WrongBodyLength)
        self.assertTrue(long.stopped)

    def test_one_request_and_uploads(self) -> None:
        """
        C{request} is the one request forwarded, and an error of the test
        otherwise; C{uploads} are the bodies read, of the requests that had
        one.
        """
        forwarder = ScriptedForwarder(respond(200), respond(200))
        self.assertRaises(AssertionError, lambda: forwarder.request)
        self.successResultOf(forwarder.forward(self.request(BytesProducer(b"abc"))))
        self.assertEqual(forwarder.request.method, "PUT")
        self.successResultOf(forwarder.forward(self.request(method="GET")))
        self.assertRaises(AssertionError, lambda: forwarder.request)
        self.assertEqual(forwarder.uploads, [b"abc"])

    def test_handler_and_cancel(self) -> None:
        """
        A handler answers by what was sent; cancelling a request stops its
        body.
        """
        forwarder = ScriptedForwarder(
            handler=lambda exchange: respond(200, body=exchange.body.upper())
        )
        answer = self.successResultOf(
            forwarder.forward(self.request(BytesProducer(b"abc")))
        )
        self.assertEqual(self.successResultOf(deliver_all(answer.body)), b"ABC")
        body = ControlledProducer()
        answering = forwarder.forward(self.request(body))
        answering.cancel()
        self.failureResultOf(answering, CancelledError)
        self.assertTrue(body.stopped)
        self.assertTrue(forwarder.exchanges[-1].cancelled)
        self.assertEqual(forwarder.in_flight, 0)

    def test_drives_a_store(self) -> None:
        """
        An S3 store writes through it, and reads what it answers.
        """
        forwarder = ScriptedForwarder(
            respond(200, [("etag", '"abc"')]),
            respond(200, [("content-length", "2"), ("etag", '"abc"')], b"hi"),
        )
        clock = MemoryReactorClock()
        store = S3Store(
            BucketConfig(
                "b",
                "s3",
                backend_options={"endpoint": "http://backend", "bucket_name": "real"},
            ),
            forwarder,
            clock,
        )
        self.successResultOf(store.put_object(ObjectWrite("k", BytesProducer(b"hi"))))
        (put,) = forwarder.exchanges
        self.assertEqual((put.request.method, put.body), ("PUT", b"hi"))
        response = self.successResultOf(store.get_object(ObjectRead("k")))
        assert response.body is not None
        self.assertEqual(self.successResultOf(deliver_all(response.body)), b"hi")


class BodyTests(SynchronousTestCase):
    """
    The bodies and the consumer tests drive.
    """

    def test_controlled_producer(self) -> None:
        """
        A controlled producer writes what it is given, records pauses, and
        ends as told.
        """
        producer = ControlledProducer(length=3)
        self.assertTrue(verifyObject(IBodyProducer, producer))
        consumer = CollectingConsumer()
        done = producer.startProducing(consumer)
        producer.pauseProducing()
        producer.send(b"ab", b"c")
        producer.resumeProducing()
        producer.finish()
        self.successResultOf(done)
        self.assertEqual(
            (consumer.value(), producer.pauses, producer.resumes), (b"abc", 1, 1)
        )
        self.assertRaises(RuntimeError, producer.startProducing, consumer)

    def test_controlled_body(self) -> None:
        """
        A controlled body registers with its consumer before writing, and
        unregisters before it ends; a consumer that stops it fails it.
        """
        body = ControlledBody(length=2)
        self.assertTrue(verifyObject(IBody, body))
        consumer = CollectingConsumer(pause_after=1)
        delivering = body.deliver(consumer)
        self.assertEqual((consumer.producer, consumer.streaming), (body, True))
        body.send(b"ab")
        self.assertTrue(body.paused)
        body.finish()
        self.assertEqual(self.successResultOf(delivering), 2)
        self.assertEqual(
            (consumer.unregistrations, consumer.writes_without_producer), (1, 0)
        )
        stopped = ControlledBody()
        delivering = stopped.deliver(CollectingConsumer())
        stopped.stopProducing()
        self.failureResultOf(delivering, DeliveryStopped)
        discarded = ControlledBody()
        discarded.discard()
        self.assertRaises(RuntimeError, discarded.deliver, CollectingConsumer())

    def test_recording_body(self) -> None:
        """
        A recording body announces the length it is given.
        """
        self.assertIsNone(RecordingBody(b"abc", length=None).length)
        self.assertEqual(RecordingBody(b"abc").length, 3)
        body = RecordingBody(b"abc", length=10)
        body.discard()
        self.assertEqual((body.length, body.uses), (10, ["discard"]))

    def test_collecting_consumer(self) -> None:
        """
        A collecting consumer records calls in order, pauses its producer
        after every write if told to, and when strict fails what L{IBody}
        forbids.
        """
        body = ControlledBody()
        consumer = CollectingConsumer(pause_on_write=True, strict=True)
        delivered = body.deliver(consumer)
        body.send(b"ab")
        self.assertEqual((body.paused, body.pauses), (True, 1))
        body.resumeProducing()
        body.send(b"c")
        body.finish()
        self.assertEqual(self.successResultOf(delivered), 3)
        self.assertEqual(consumer.value(), b"abc")
        self.assertEqual(consumer.events, ["register", "write", "write", "unregister"])
        self.assertEqual((body.pauses, body.resumes), (2, 1))
        self.assertRaises(AssertionError, consumer.write, b"d")
        self.assertRaises(AssertionError, consumer.unregisterProducer)
        consumer.registerProducer(body, True)
        self.assertRaises(AssertionError, consumer.registerProducer, body, True)
        lenient = CollectingConsumer()
        lenient.write(b"x")
        self.assertEqual(lenient.writes_without_producer, 1)

    def test_sending_producer(self) -> None:
        """
        A producer made with C{sending} writes its bytes in pieces as soon
        as it is started, and ends; it may announce another length.
        """
        body = ControlledProducer.sending(b"abcdefg", 3)
        self.assertFalse(body.started)
        consumer = CollectingConsumer()
        self.successResultOf(body.startProducing(consumer))
        self.assertTrue(body.started)
        self.assertEqual(consumer.chunks, [b"abc", b"def", b"g"])
        self.assertEqual(body.length, 7)
        self.assertEqual(ControlledProducer.sending(b"ab", 1, length=5).length, 5)
