"""
Tests for L{multistore.stores.gcs}.

The store talks to a L{multistore.testing.ScriptedForwarder} that records
every L{BackendRequest}, reads its body as a transport does, and answers
with what a handler (a test's script of GCS answers) returns; every
answer's body is a L{multistore.testing.RecordingBody}, so each test can
check that every body the store did not hand back was released. Time comes
from a L{Clock}. Token sources post to a fake token endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import UNKNOWN_LENGTH
from twisted.web.resource import Resource
from zope.interface.verify import verifyObject

from multistore.config import BucketConfig
from multistore.headers import HeaderList
from multistore.interfaces import IObjectStore
from multistore.model import (
    BackendRequest,
    BackendResponse,
    CompletedPart,
    CopySource,
    ListRequest,
    ObjectRead,
    ObjectWrite,
)
from multistore.s3.errors import S3Error
from multistore.stores.common import DELETE_CONCURRENCY
from multistore.stores.factory import StoreFactory
from multistore.stores.gcs import GcsStore, xml_api_bucket
from multistore.stores.gcs import auth as gcs_auth
from multistore.stores.gcs import store as gcs_store
from multistore.stores.gcs.auth import (
    JWT_BEARER,
    REFRESH_MARGIN,
    ServiceAccountKey,
    ServiceAccountTokens,
    assertion,
    shared_tokens,
)
from multistore.stores.gcs.store import (
    COMPOSE_LIMIT,
    ETAG_METADATA,
    RESERVED_METADATA,
    etag_of,
    object_resource,
    response_headers,
)
from multistore.testing import ForwardedRequest, RecordingBody, ScriptedForwarder
from tests.unit.test_s3_store import uses_of
from tests.unit.test_stores_streaming import (
    BodyFailed,
    MemoryBody,
)

#: The fake clock's time: 2023-11-14T22:13:20Z.
NOW = 1_700_000_000.0
ENDPOINT = "http://gcs.test:4443"
BUCKET = "real-bucket"
OBJECTS = f"{ENDPOINT}/storage/v1/b/{BUCKET}/o"
UPLOADS = f"{ENDPOINT}/upload/storage/v1/b/{BUCKET}/o"
SESSION = f"{UPLOADS}?uploadType=resumable&upload_id=s1"

#: Text only GCS knows, which no client may see.
GCS_SECRET_MESSAGE = "project 1234 bucket real-bucket: caller lacks storage.get"

Handler = Callable[[BackendRequest, bytes], BackendResponse]


def answer(
    status: int, document: Any = None, headers: Sequence[tuple[str, str]] = ()
) -> BackendResponse:
    """
    A GCS answer with a JSON (or raw bytes) body.
    """
    if document is None:
        body = b""
    elif isinstance(document, bytes):
        body = document
    else:
        body = json.dumps(document).encode()
    return BackendResponse(status, HeaderList(headers), RecordingBody(body))


def gcs_error(status: int) -> BackendResponse:
    """
    A GCS JSON error naming GCS's internals.
    """
    return answer(
        status,
        {
            "error": {
                "code": status,
                "message": GCS_SECRET_MESSAGE,
                "errors": [{"reason": "x", "message": GCS_SECRET_MESSAGE}],
            }
        },
    )


def md5_b64(data: bytes) -> str:
    """
    GCS's ``md5Hash`` of ``data``.
    """
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def md5_hex(data: bytes) -> str:
    """
    The hex MD5 of ``data``.
    """
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def resource(name: str, data: bytes = b"data", **fields: Any) -> dict[str, Any]:
    """
    A GCS object resource for ``data``.
    """
    return {
        "name": name,
        "size": str(len(data)),
        "md5Hash": md5_b64(data),
        "generation": "17",
        "updated": "2023-11-14T22:00:00.000Z",
        **fields,
    }


def routing(handler: Handler) -> ScriptedForwarder:
    """
    A forwarder that reads each request's body as a transport does and
    answers with what ``handler`` makes of the request and its body; a body
    that fails fails the request.
    """
    return ScriptedForwarder(
        handler=lambda exchange: handler(exchange.request, exchange.body)
    )


def query_of(request: BackendRequest) -> dict[str, str]:
    """
    The decoded query of a request.
    """
    return dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))


def make_store(
    handler: Handler, clock: Clock | None = None, **options: str
) -> tuple[GcsStore, ScriptedForwarder]:
    """
    An anonymous store on L{BUCKET} at L{ENDPOINT} (other options may be
    given).
    """
    settings = {
        "endpoint": ENDPOINT,
        "bucket_name": BUCKET,
        "skip_signature": "true",
        **options,
    }
    if clock is None:
        clock = Clock()
        clock.advance(NOW)
    forwarder = routing(handler)
    bucket = BucketConfig(name="virtual", backend_type="gcs", backend_options=settings)
    return GcsStore(bucket, forwarder, clock), forwarder


def factory_store(
    handler: Handler, **options: str
) -> tuple[IObjectStore, ScriptedForwarder]:
    """
    The store L{StoreFactory} makes for a bucket on L{BUCKET} at
    L{ENDPOINT} with ``options``.
    """
    clock = Clock()
    clock.advance(NOW)
    forwarder = routing(handler)
    settings = {"endpoint": ENDPOINT, "bucket_name": BUCKET, **options}
    bucket = BucketConfig(name="virtual", backend_type="gcs", backend_options=settings)
    # Never started: GCS stores do no file I/O.
    factory = StoreFactory(forwarder, clock, ThreadPool())
    return factory.store_for(bucket), forwarder


class StoreTestCase(SynchronousTestCase):
    """
    Checks that every answer body was delivered or discarded.
    """

    def assert_settled(self, forwarder: ScriptedForwarder) -> None:
        """
        Every body the forwarder handed out was used exactly once.
        """
        for body in forwarder.bodies:
            self.assertEqual(len(uses_of(body)), 1, uses_of(body))


class HeadersTests(SynchronousTestCase):
    """
    S3 headers to GCS resources and back.
    """

    def test_object_resource(self) -> None:
        """
        Content headers become the object's fields, ``x-amz-meta-*`` its
        metadata; reserved names and ``aws-chunked`` are dropped.
        """
        headers = HeaderList.of(
            ("x-amz-meta-colour", "blue"),
            (f"x-amz-meta-{ETAG_METADATA}", "forged"),
            content_type="text/plain",
            content_encoding="aws-chunked,gzip",
            cache_control="no-cache",
            x_amz_storage_class="STANDARD",
        )
        self.assertEqual(
            object_resource(headers),
            {
                "contentType": "text/plain",
                "contentEncoding": "gzip",
                "cacheControl": "no-cache",
                "metadata": {"colour": "blue"},
            },
        )

    @given(
        st.dictionaries(
            st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20),
            st.text(
                st.characters(blacklist_categories=["Cs", "Cc"]),
                min_size=0,
                max_size=20,
            ),
            max_size=5,
        )
    )
    def test_metadata_round_trip(self, metadata: dict[str, str]) -> None:
        """
        Metadata sent as header text (UTF-8 bytes as ISO-8859-1) is stored
        as text and comes back as the same header text.
        """
        metadata = {
            k: v for k, v in metadata.items() if v and k not in RESERVED_METADATA
        }
        wire = [
            (f"x-amz-meta-{k}", v.encode().decode("latin-1"))
            for k, v in sorted(metadata.items())
        ]
        stored = object_resource(HeaderList(wire))
        self.assertEqual(stored.get("metadata", {}), metadata)
        back = response_headers({"size": "1", **stored})
        self.assertEqual([(n, v) for n, v in back if n.startswith("x-amz-meta-")], wire)

    def test_response_headers(self) -> None:
        """
        A resource's S3 headers: length, MD5 ETag in hex, HTTP date, content
        fields and metadata, never the reserved ETag name.
        """
        headers = response_headers(
            resource(
                "k",
                b"abc",
                contentType="a/b",
                metadata={"x": "1", ETAG_METADATA: "abc-2"},
            )
        )
        self.assertEqual(headers.get("content-length"), "3")
        self.assertEqual(headers.get("etag"), '"abc-2"')
        self.assertEqual(headers.get("content-type"), "a/b")
        self.assertEqual(headers.get("last-modified"), "Tue, 14 Nov 2023 22:00:00 GMT")
        self.assertEqual(headers.get("x-amz-meta-x"), "1")
        self.assertNotIn(f"x-amz-meta-{ETAG_METADATA}", headers)

    def test_etags(self) -> None:
        """
        The ETag is the MD5 in hex; a composite object without one shows
        its CRC32C and component count.
        """
        self.assertEqual(etag_of(resource("k", b"abc")), f'"{md5_hex(b"abc")}"')
        composite = {"crc32c": base64.b64encode(b"\x01\x02\x03\x04").decode()}
        self.assertEqual(etag_of({**composite, "componentCount": 3}), '"01020304-3"')


class StoreTests(StoreTestCase):
    """
    L{GcsStore}'s requests and their answers.
    """

    def test_provides(self) -> None:
        """
        The store provides L{IObjectStore}.
        """
        store, _ = make_store(lambda r, d: answer(200))
        self.assertTrue(verifyObject(IObjectStore, store))

    def test_get(self) -> None:
        """
        A read fetches the metadata, then the bytes of that generation with
        ``Accept-Encoding: gzip``; the key is encoded whole, slashes too.
        """
        media = RecordingBody(b"data")

        def handler(request: BackendRequest, data: bytes) -> BackendResponse:
            if query_of(request).get("alt") == "media":
                return BackendResponse(200, HeaderList(), media)
            return answer(200, resource("a/b c", contentType="t/p"))

        store, forwarder = make_store(handler)
        response = self.successResultOf(store.get_object(ObjectRead("a/b c")))
        self.assertEqual(response.status, 200)
        self.assertIs(response.body, media)
        self.assertEqual(response.headers.get("etag"), f'"{md5_hex(b"data")}"')
        self.assertEqual(response.headers.get("content-type"), "t/p")
        first, second = forwarder.requests
        self.assertEqual(
            urlsplit(first.url).path, "/storage/v1/b/real-bucket/o/a%2Fb%20c"
        )
        self.assertEqual(query_of(second), {"alt": "media", "generation": "17"})
        self.assertEqual(second.headers.get("accept-encoding"), "gzip")
        self.assertIsNone(second.headers.get("authorization"))
        self.assertEqual(uses_of(forwarder.bodies[0]), ["deliver"])

    def test_range(self) -> None:
        """
        A range is asked of GCS as the bytes it selects, answered 206 with
        its Content-Range; a range past the end fails without a download.
        """

        def handler(request: BackendRequest, data: bytes) -> BackendResponse:
            if query_of(request).get("alt") == "media":
                return answer(206, b"at")
            return answer(200, resource("k", b"data"))

        store, forwarder = make_store(handler)
        response = self.successResultOf(
            store.get_object(ObjectRead("k", range="bytes=1-2"))
        )
        self.assertEqual(response.status, 206)
        self.assertEqual(response.headers.get("content-range"), "bytes 1-2/4")
        self.assertEqual(response.headers.get("content-length"), "2")
        self.assertEqual(forwarder.requests[1].headers.get("range"), "bytes=1-2")
        store, forwarder = make_store(handler)
        failure = self.failureResultOf(
            store.get_object(ObjectRead("k", range="bytes=9-")), S3Error
        )
        self.assertEqual(failure.value.code, "InvalidRange")
        self.assertEqual(len(forwarder.requests), 1)
        self.assert_settled(forwarder)

    def test_part_one(self) -> None:
        """
        ``partNumber=1`` is the whole object sent as a range (206 with its
        Content-Range), as S3 answers for an object uploaded in one part;
        another part is ``InvalidPartNumber``.
        """

        def handler(request: BackendRequest, data: bytes) -> BackendResponse:
            if query_of(request).get("alt") == "media":
                return answer(200, b"data")
            return answer(200, resource("k", b"data"))

        for head in (False, True):
            store, forwarder = make_store(handler)
            response = self.successResultOf(
                store.get_object(ObjectRead("k", part_number=1, head=head))
            )
            self.assertEqual(response.status, 206)
            self.assertEqual(response.headers.get("content-range"), "bytes 0-3/4")
            self.assertEqual(response.headers.get("content-length"), "4")
            if response.body is not None:
                response.body.discard()
            self.assert_settled(forwarder)
        store, forwarder = make_store(handler)
        failure = self.failureResultOf(
            store.get_object(ObjectRead("k", part_number=2)), S3Error
        )
        self.assertEqual(failure.value.code, "InvalidPartNumber")

    def test_conditions(self) -> None:
        """
        If-None-Match with the ETag is 304, If-Match with another is 412,
        without downloading; HEAD downloads nothing.
        """
        etag = f'"{md5_hex(b"data")}"'

        def handler(request: BackendRequest, data: bytes) -> BackendResponse:
            return answer(200, resource("k"))

        store, forwarder = make_store(handler)
        response = self.successResultOf(
            store.get_object(ObjectRead("k", if_none_match=etag))
        )
        self.assertEqual((response.status, response.body), (304, None))
        self.assertEqual(response.headers.get("etag"), etag)
        failure = self.failureResultOf(
            store.get_object(ObjectRead("k", if_match='"other"')), S3Error
        )
        self.assertEqual(failure.value.code, "PreconditionFailed")
        response = self.successResultOf(store.get_object(ObjectRead("k", head=True)))
        self.assertEqual((response.status, response.body), (200, None))
        self.assertEqual(len(forwarder.requests), 3)
        self.assert_settled(forwarder)

    def test_missing(self) -> None:
        """
        A missing object is NoSuchKey.
        """
        store, forwarder = make_store(lambda r, d: gcs_error(404))
        failure = self.failureResultOf(store.get_object(ObjectRead("k")), S3Error)
        self.assertEqual(failure.value.code, "NoSuchKey")
        self.assert_settled(forwarder)

    @given(st.sampled_from([400, 401, 403, 409, 412, 416, 429, 500, 502, 503]))
    def test_errors(self, status: int) -> None:
        """
        GCS errors map to S3 codes; GCS's message never reaches the client.
        """
        expected = {
            400: "InvalidRequest",
            401: "AccessDenied",
            403: "AccessDenied",
            409: "OperationAborted",
            412: "PreconditionFailed",
            416: "InvalidRange",
            429: "SlowDown",
            500: "ServiceUnavailable",
            502: "ServiceUnavailable",
            503: "ServiceUnavailable",
        }[status]
        store, forwarder = make_store(lambda r, d: gcs_error(status))
        failure = self.failureResultOf(store.get_object(ObjectRead("k")), S3Error)
        self.assertEqual(failure.value.code, expected)
        self.assertNotIn("1234", failure.value.message)
        self.assert_settled(forwarder)

    def test_list(self) -> None:
        """
        A listing asks with prefix, delimiter, startOffset and the token;
        skips the startOffset key itself (GCS includes it) and uploads in
        progress; gives GCS's next page token as its own.
        """
        page = {
            "items": [
                resource(".multistore-uploads/uploads/00"),
                resource("a"),
                resource("b", b"bb"),
            ],
            "prefixes": ["c/", ".multistore-uploads/"],
            "nextPageToken": "tok2",
        }
        store, forwarder = make_store(lambda r, d: answer(200, page))
        result = self.successResultOf(
            store.list_objects(
                ListRequest(
                    prefix="", delimiter="/", max_keys=5, start_after="a", token="tok1"
                )
            )
        )
        self.assertEqual([o.key for o in result.objects], ["b"])
        self.assertEqual(result.objects[0].size, 2)
        self.assertEqual(result.common_prefixes, ("c/",))
        self.assertEqual((result.truncated, result.next_token), (True, "tok2"))
        self.assertEqual(
            query_of(forwarder.requests[0]),
            {
                "maxResults": "6",
                "projection": "noAcl",
                "delimiter": "/",
                "startOffset": "a",
                "pageToken": "tok1",
            },
        )
        self.assert_settled(forwarder)

    def test_list_start_after_full_page(self) -> None:
        """
        With start-after, one more key is asked for (GCS includes the
        start-after key): a page is full without it, and when GCS gives one
        more than fits, the gateway resumes after the last key shown.
        """
        page = {"items": [resource(n) for n in ("c", "d", "e")], "nextPageToken": "t"}
        store, forwarder = make_store(lambda r, d: answer(200, page))
        result = self.successResultOf(
            store.list_objects(ListRequest(max_keys=2, start_after="b"))
        )
        self.assertEqual([o.key for o in result.objects], ["c", "d"])
        self.assertEqual((result.truncated, result.next_token), (True, None))
        self.assertEqual(query_of(forwarder.requests[0])["maxResults"], "3")

    def test_list_skips_uploads(self) -> None:
        """
        A page that ends among uploads in progress is completed from the
        first name after them, and the gateway resumes after its last key.
        """
        hidden = [resource(f".multistore-uploads/parts/00/{n:05d}") for n in (1, 2)]

        def handler(request: BackendRequest, data: bytes) -> BackendResponse:
            query = query_of(request)
            if query.get("startOffset") == ".multistore-uploads0":
                self.assertNotIn("pageToken", query)
                self.assertEqual(query["maxResults"], "2")
                return answer(200, {"items": [resource("b"), resource("c")]})
            return answer(
                200, {"items": [resource("a"), *hidden], "nextPageToken": "t"}
            )

        store, forwarder = make_store(handler)
        result = self.successResultOf(store.list_objects(ListRequest(max_keys=3)))
        self.assertEqual([o.key for o in result.objects], ["a", "b", "c"])
        self.assertEqual((result.truncated, result.next_token), (False, None))
        self.assertEqual(len(forwarder.requests), 2)
        self.assert_settled(forwarder)

    def test_list_missing_bucket(self) -> None:
        """
        Listing a missing bucket is NoSuchBucket.
        """
        store, _ = make_store(lambda r, d: gcs_error(404))
        failure = self.failureResultOf(store.list_objects(ListRequest()), S3Error)
        self.assertEqual(failure.value.code, "NoSuchBucket")


def upload_handler(
    existing: dict[str, Any] | None = None, final: int = 200
) -> Callable[[BackendRequest, bytes], BackendResponse]:
    """
    Answers a put: metadata (``existing`` or 404), the session's opening,
    the upload (``final``), the session's cancellation.
    """

    def handler(request: BackendRequest, data: bytes) -> BackendResponse:
        if request.method == "GET":
            return answer(200, existing) if existing else gcs_error(404)
        if request.method == "POST":
            return answer(200, {}, [("location", SESSION)])
        if request.method == "DELETE":
            return answer(499, b"")
        if final == 200:
            return answer(200, resource("k", data))
        return gcs_error(final)

    return handler


class PutTests(StoreTestCase):
    """
    Uploads.
    """

    def test_put(self) -> None:
        """
        A put opens a session with the object's resource, then streams the
        body into it; the ETag is the body's MD5.
        """
        store, forwarder = make_store(upload_handler())
        write = ObjectWrite(
            "k",
            MemoryBody(b"hello"),
            HeaderList.of(content_type="t/p", x_amz_meta_a="1"),
        )
        response = self.successResultOf(store.put_object(write))
        self.assertEqual(response.headers.get("etag"), f'"{md5_hex(b"hello")}"')
        opening, upload = forwarder.requests
        self.assertEqual(query_of(opening), {"uploadType": "resumable", "name": "k"})
        self.assertEqual(
            json.loads(forwarder.uploads[0]),
            {"name": "k", "contentType": "t/p", "metadata": {"a": "1"}},
        )
        self.assertEqual((upload.method, upload.url), ("PUT", SESSION))
        self.assertEqual(forwarder.uploads[1], b"hello")
        self.assert_settled(forwarder)

    def test_session_elsewhere(self) -> None:
        """
        A session on another host than the bucket's endpoint is refused
        (the bucket's credentials would go there), and nothing is sent.
        """

        def handler(request: BackendRequest, data: bytes) -> BackendResponse:
            return answer(200, {}, [("location", "https://elsewhere.test/u?id=1")])

        store, forwarder = make_store(handler)
        failure = self.failureResultOf(
            store.put_object(ObjectWrite("k", MemoryBody(b"x"))), S3Error
        )
        self.assertEqual(failure.value.code, "ServiceUnavailable")
        self.assertEqual([r.method for r in forwarder.requests], ["POST"])
        self.assert_settled(forwarder)

    def test_if_none_match(self) -> None:
        """
        ``If-None-Match: *`` is ``ifGenerationMatch=0`` when there is no
        object, and PreconditionFailed without an upload when there is.
        """
        write = ObjectWrite("k", MemoryBody(b"x"), HeaderList.of(if_none_match="*"))
        store, forwarder = make_store(upload_handler())
        self.successResultOf(store.put_object(write))
        self.assertEqual(query_of(forwarder.requests[1])["ifGenerationMatch"], "0")
        store, forwarder = make_store(upload_handler(resource("k")))
        write = ObjectWrite("k", MemoryBody(b"x"), HeaderList.of(if_none_match="*"))
        failure = self.failureResultOf(store.put_object(write), S3Error)
        self.assertEqual(failure.value.code, "PreconditionFailed")
        self.assertEqual([r.method for r in forwarder.requests], ["GET"])

    def test_if_match(self) -> None:
        """
        ``If-Match`` with the current ETag pins the upload to its generation.
        """
        etag = f'"{md5_hex(b"data")}"'
        store, forwarder = make_store(upload_handler(resource("k")))
        write = ObjectWrite("k", MemoryBody(b"x"), HeaderList.of(if_match=etag))
        self.successResultOf(store.put_object(write))
        self.assertEqual(query_of(forwarder.requests[1])["ifGenerationMatch"], "17")

    def test_body_fails(self) -> None:
        """
        A body that fails never gives GCS its last byte, fails the put with
        its own failure, and the session is cancelled.
        """
        store, forwarder = make_store(upload_handler())
        body = MemoryBody(b"abcdef", fail=True)
        failure = self.failureResultOf(store.put_object(ObjectWrite("k", body)))
        self.assertIsInstance(failure.value, BodyFailed)
        self.assertEqual(forwarder.uploads[1], b"abcde")
        self.assertEqual(
            [(r.method, r.url) for r in forwarder.requests[1:]],
            [("PUT", SESSION), ("DELETE", SESSION)],
        )
        self.assert_settled(forwarder)

    def test_upload_refused(self) -> None:
        """
        An upload GCS refuses is the mapped error, and the session is
        cancelled.
        """
        store, forwarder = make_store(upload_handler(final=503))
        failure = self.failureResultOf(
            store.put_object(ObjectWrite("k", MemoryBody(b"x"))), S3Error
        )
        self.assertEqual(failure.value.code, "ServiceUnavailable")
        self.assertEqual(forwarder.requests[-1].method, "DELETE")
        self.assert_settled(forwarder)

    def test_unknown_length(self) -> None:
        """
        A short body of unknown length is sent once it has ended, as the
        session's only and last chunk.
        """
        store, forwarder = make_store(upload_handler())
        body = MemoryBody(b"abc", length=UNKNOWN_LENGTH)
        self.successResultOf(store.put_object(ObjectWrite("k", body)))
        upload = forwarder.requests[-1]
        self.assertEqual(upload.headers.get("content-range"), "bytes 0-2/3")
        self.assertEqual(forwarder.uploads[-1], b"abc")

    def test_unknown_length_fails(self) -> None:
        """
        A body of unknown length that fails sends nothing and cancels the
        session.
        """
        store, forwarder = make_store(upload_handler())
        body = MemoryBody(b"abc", length=UNKNOWN_LENGTH, fail=True)
        failure = self.failureResultOf(store.put_object(ObjectWrite("k", body)))
        self.assertIsInstance(failure.value, BodyFailed)
        self.assertEqual([r.method for r in forwarder.requests], ["POST", "DELETE"])

    def test_hmac(self) -> None:
        """
        HMAC keys, which only the XML API takes, send S3 requests signed
        with SigV4 to the XML API: the store factory makes an S3 store on
        it.
        """
        store, forwarder = factory_store(
            lambda r, d: answer(200, b"", [("etag", '"e"')]),
            skip_signature="false",
            access_key_id="GOOG1KEY",
            secret_access_key="secret",
        )
        response = self.successResultOf(
            store.put_object(ObjectWrite("a/b", MemoryBody(b"x")))
        )
        self.assertEqual(response.headers.get("etag"), '"e"')
        request = forwarder.requests[0]
        self.assertEqual(
            (request.method, request.url), ("PUT", f"{ENDPOINT}/{BUCKET}/a/b")
        )
        authorization = request.headers.get("authorization") or ""
        self.assertTrue(
            authorization.startswith("AWS4-HMAC-SHA256 Credential=GOOG1KEY/"),
            authorization,
        )
        self.assertIn("/auto/s3/aws4_request", authorization)

    def test_json_store_takes_no_hmac(self) -> None:
        """
        The choice of API is made when the store is made: a L{GcsStore}
        made for a bucket with HMAC keys sends nothing (its requests would
        go unsigned), answering ``NotImplemented``.
        """
        store, forwarder = make_store(
            upload_handler(),
            skip_signature="false",
            access_key_id="GOOG1KEY",
            secret_access_key="secret",
        )
        failure = self.failureResultOf(store.get_object(ObjectRead("k")), S3Error)
        self.assertEqual(failure.value.code, "NotImplemented")
        self.assertEqual(forwarder.requests, [])

    def test_xml_api_bucket(self) -> None:
        """
        L{xml_api_bucket} sends a bucket with HMAC keys, and no service
        account key, to the XML API as an S3 bucket (region ``auto`` unless
        given); every other bucket stays on the JSON API.
        """
        hmac = {
            "endpoint": ENDPOINT + "/",
            "bucket_name": BUCKET,
            "access_key_id": "GOOG1KEY",
            "secret_access_key": "secret",
        }
        bucket = BucketConfig(name="v", backend_type="gcs", backend_options=hmac)
        s3 = xml_api_bucket(bucket)
        assert s3 is not None
        self.assertEqual((s3.name, s3.backend_type), ("v", "s3"))
        self.assertEqual(
            dict(s3.backend_options),
            {**hmac, "endpoint": ENDPOINT, "region": "auto"},
        )
        in_region = BucketConfig(
            name="v", backend_type="gcs", backend_options={**hmac, "region": "eu"}
        )
        on_xml = xml_api_bucket(in_region)
        assert on_xml is not None
        self.assertEqual(on_xml.option("region"), "eu")
        for options in (
            {**hmac, "skip_signature": "true"},
            {**hmac, "service_account_key": "{}"},
            {**hmac, "secret_access_key": ""},
            {"bucket_name": BUCKET},
        ):
            json_api = BucketConfig(
                name="v", backend_type="gcs", backend_options=options
            )
            self.assertIsNone(xml_api_bucket(json_api), options)

    def test_access_key_without_secret(self) -> None:
        """
        An access key without its secret signs nothing: NotImplemented.
        """
        store, forwarder = make_store(
            upload_handler(), skip_signature="false", access_key_id="GOOG1"
        )
        failure = self.failureResultOf(store.get_object(ObjectRead("k")), S3Error)
        self.assertEqual(failure.value.code, "NotImplemented")
        self.assertEqual(forwarder.requests, [])


class DeleteTests(SynchronousTestCase):
    """
    Deletes.
    """

    def test_batch_concurrency(self) -> None:
        """
        A batch delete has at most L{DELETE_CONCURRENCY} requests in flight;
        a missing key is deleted, a refused one reports AccessDenied.
        """
        held: list[Deferred[BackendResponse]] = []

        def hold(exchange: ForwardedRequest) -> Deferred[BackendResponse]:
            waiting: Deferred[BackendResponse] = Deferred()
            held.append(waiting)
            return waiting

        forwarder = ScriptedForwarder(handler=hold)
        clock = Clock()
        bucket = BucketConfig(
            name="v",
            backend_type="gcs",
            backend_options={
                "endpoint": ENDPOINT,
                "bucket_name": BUCKET,
                "skip_signature": "true",
            },
        )
        store = GcsStore(bucket, forwarder, clock)
        keys = [(f"k{n}", None) for n in range(20)]
        deleting = store.delete_objects(keys)
        self.assertEqual(len(held), DELETE_CONCURRENCY)
        released = 0
        while released < len(held):
            status = {0: 404, 1: 403}.get(released, 204)
            held[released].callback(gcs_error(status) if status != 204 else answer(204))
            released += 1
        outcomes = self.successResultOf(deleting)
        self.assertEqual(forwarder.most_in_flight, DELETE_CONCURRENCY)
        self.assertEqual(len(outcomes), 20)
        errors = {o.key: o.error for o in outcomes if o.error is not None}
        self.assertEqual(list(errors), ["k1"])
        self.assertEqual(errors["k1"][0], "AccessDenied")


class FakeGcs:
    """
    Just enough of GCS's JSON API in memory for multipart uploads: objects
    by name, multipart and compose, listing by prefix, delete.

    :ivar objects: name to ``(resource, bytes)``.
    """

    def __init__(self) -> None:
        self.objects: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.composes = 0

    def __call__(self, request: BackendRequest, data: bytes) -> BackendResponse:
        parts = urlsplit(request.url)
        path = unquote(parts.path)
        query = query_of(request)
        marker = "/o/"
        name = path.split(marker, 1)[1] if marker in path else ""
        if request.method == "POST" and query.get("uploadType") == "multipart":
            boundary = (request.headers.get("content-type") or "").split("boundary=")[1]
            document = json.loads(
                data.split(f"--{boundary}".encode())[1].split(b"\r\n\r\n", 1)[1]
            )
            self.objects[document["name"]] = (
                resource(document["name"], b"", metadata=document.get("metadata")),
                b"",
            )
            return answer(200, self.objects[document["name"]][0])
        if request.method == "POST" and name.endswith("/compose"):
            self.composes += 1
            target = name[: -len("/compose")]
            document = json.loads(data)
            sources = [s["name"] for s in document["sourceObjects"]]
            assert len(sources) <= COMPOSE_LIMIT
            if any(s not in self.objects for s in sources):
                return gcs_error(404)
            content = b"".join(self.objects[s][1] for s in sources)
            made = resource(target, content, **document["destination"])
            self.objects[target] = (made, content)
            return answer(200, made)
        if request.method == "GET" and not name:
            prefix = query.get("prefix", "")
            items = [
                r for n, (r, _) in sorted(self.objects.items()) if n.startswith(prefix)
            ]
            return answer(200, {"items": items})
        if request.method == "GET":
            if name not in self.objects:
                return gcs_error(404)
            return answer(200, self.objects[name][0])
        if request.method == "POST":
            return answer(200, {}, [("location", SESSION + "&name=" + query["name"])])
        if request.method == "PUT":
            target = query_of(request)["name"]
            self.objects[target] = (resource(target, data), data)
            return answer(200, self.objects[target][0])
        if request.method == "DELETE":
            if self.objects.pop(name, None) is None:
                return gcs_error(404)
            return answer(204)
        raise AssertionError(f"unexpected {request.method} {request.url}")


class MultipartTests(StoreTestCase):
    """
    Multipart uploads built from part objects and compose.
    """

    def test_many_parts(self) -> None:
        """
        An upload of more parts than one compose takes is composed in
        rounds; the object carries the S3 multipart ETag; parts, the
        intermediates and the marker are deleted.
        """
        self.patch(gcs_store, "MIN_PART_SIZE", 3)
        fake = FakeGcs()
        store, forwarder = make_store(fake)
        upload_id = self.successResultOf(
            store.create_multipart_upload("big", HeaderList.of(content_type="a/b"))
        )
        count = COMPOSE_LIMIT + 3
        payloads = [bytes([n]) * 3 for n in range(count - 1)] + [b"end"]
        parts = []
        for number, payload in enumerate(payloads, 1):
            response = self.successResultOf(
                store.upload_part(
                    ObjectWrite("big", MemoryBody(payload)), upload_id, number
                )
            )
            parts.append(CompletedPart(number, response.headers.get("etag") or ""))
        result = self.successResultOf(
            store.complete_multipart_upload("big", upload_id, parts, HeaderList())
        )
        digest = hashlib.md5(
            b"".join(bytes.fromhex(md5_hex(p)) for p in payloads),
            usedforsecurity=False,
        ).hexdigest()
        self.assertEqual(result.etag, f'"{digest}-{count}"')
        self.assertEqual(list(fake.objects), ["big"])
        made, content = fake.objects["big"]
        self.assertEqual(content, b"".join(payloads))
        self.assertEqual(made["contentType"], "a/b")
        self.assertEqual(fake.composes, 3)
        self.assert_settled(forwarder)

    def test_list_uploads_pages_through_prefixes(self) -> None:
        """
        ListMultipartUploads with a delimiter pages through common prefixes
        and uploads alike: a truncated page always says where the next one
        starts (its last entry, a common prefix too), and no entry comes
        twice.
        """
        fake = FakeGcs()
        store, forwarder = make_store(fake)
        for key in ("a/x", "a/y", "b/y", "c"):
            self.successResultOf(store.create_multipart_upload(key, HeaderList()))
        seen: list[str] = []
        key_marker: str | None = None
        upload_id_marker: str | None = None
        for _ in range(10):
            page = self.successResultOf(
                store.list_multipart_uploads("", "/", key_marker, upload_id_marker, 1)
            )
            seen.extend(page.common_prefixes)
            seen.extend(u.key for u in page.uploads)
            if not page.truncated:
                break
            self.assertIsNotNone(page.next_key_marker)
            key_marker = page.next_key_marker
            upload_id_marker = page.next_upload_id_marker
        self.assertEqual(seen, ["a/", "b/", "c"])
        self.assert_settled(forwarder)

    def test_wrong_key_or_id(self) -> None:
        """
        An upload id of another key, or not of ours, is NoSuchUpload.
        """
        fake = FakeGcs()
        store, _ = make_store(fake)
        upload_id = self.successResultOf(
            store.create_multipart_upload("a", HeaderList())
        )
        for key, uid in (("b", upload_id), ("a", "../../x"), ("a", "ff")):
            failure = self.failureResultOf(
                store.abort_multipart_upload(key, uid), S3Error
            )
            self.assertEqual(failure.value.code, "NoSuchUpload")

    def test_small_part(self) -> None:
        """
        A part smaller than S3's minimum that is not the last is
        EntityTooSmall; the upload is left as it was.
        """
        fake = FakeGcs()
        store, _ = make_store(fake)
        upload_id = self.successResultOf(
            store.create_multipart_upload("a", HeaderList())
        )
        parts = []
        for number in (1, 2):
            response = self.successResultOf(
                store.upload_part(
                    ObjectWrite("a", MemoryBody(b"xy")), upload_id, number
                )
            )
            parts.append(CompletedPart(number, response.headers.get("etag") or ""))
        failure = self.failureResultOf(
            store.complete_multipart_upload("a", upload_id, parts, HeaderList()),
            S3Error,
        )
        self.assertEqual(failure.value.code, "EntityTooSmall")
        self.assertNotIn("a", fake.objects)
        self.assertEqual(len(fake.objects), 3)

    def test_part_order(self) -> None:
        """
        Parts out of order are InvalidPartOrder.
        """
        fake = FakeGcs()
        store, _ = make_store(fake)
        upload_id = self.successResultOf(
            store.create_multipart_upload("a", HeaderList())
        )
        failure = self.failureResultOf(
            store.complete_multipart_upload(
                "a",
                upload_id,
                [CompletedPart(2, '"x"'), CompletedPart(1, '"y"')],
                HeaderList(),
            ),
            S3Error,
        )
        self.assertEqual(failure.value.code, "InvalidPartOrder")

    def test_can_copy(self) -> None:
        """
        L{GcsStore.can_copy} accepts a whole object on the same service with
        the same credentials, and refuses a range (``rewrite`` copies none),
        a source elsewhere, with other credentials, or of another kind,
        without asking GCS.
        """
        store, forwarder = make_store(lambda r, d: answer(200))
        same = BucketConfig(
            name="s",
            backend_type="gcs",
            backend_options={
                "bucket_name": "x",
                "endpoint": ENDPOINT.upper().replace("HTTP", "http") + "/",
                "skip_signature": "true",
            },
        )
        self.assertTrue(store.can_copy(CopySource(same, "k")))
        self.assertTrue(store.can_copy(CopySource(store.bucket, "k", version_id="1")))
        self.assertFalse(store.can_copy(CopySource(same, "k", range="bytes=0-1")))
        for backend_type, options in (
            ("gcs", {"bucket_name": "x", "endpoint": "http://other:1"}),
            ("gcs", {"bucket_name": "x", "endpoint": ENDPOINT}),
            ("gcs", {"endpoint": ENDPOINT, "skip_signature": "true"}),
            ("s3", {"bucket_name": "x", "endpoint": ENDPOINT}),
        ):
            if backend_type == "gcs" and "skip_signature" not in options:
                options = {**options, "service_account_key": "{}"}
            other = BucketConfig(
                name="o", backend_type=backend_type, backend_options=options
            )
            self.assertFalse(store.can_copy(CopySource(other, "k")), options)
        self.assertEqual(forwarder.requests, [])

    def test_copy_elsewhere(self) -> None:
        """
        A copy from a bucket on another service, or with other credentials,
        is NotImplemented (L{GcsStore.can_copy} refuses it: the gateway
        streams it).
        """
        store, forwarder = make_store(lambda r, d: answer(200))
        for options in (
            {
                "bucket_name": "x",
                "endpoint": "http://other:1",
                "skip_signature": "true",
            },
            {"bucket_name": "x", "endpoint": ENDPOINT},
        ):
            source = BucketConfig(name="s", backend_type="gcs", backend_options=options)
            failure = self.failureResultOf(
                store.copy_object(CopySource(source, "k"), "d", HeaderList()), S3Error
            )
            self.assertEqual(failure.value.code, "NotImplemented")
        self.assertEqual(forwarder.requests, [])


# --- tokens ------------------------------------------------------------------


def _private_key() -> tuple[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, key.public_key()


PRIVATE_PEM, PUBLIC_KEY = _private_key()
TOKEN_URI = "https://oauth2.test/token"
KEY_JSON = json.dumps(
    {
        "type": "service_account",
        "client_email": "gateway@project.iam.test",
        "private_key": PRIVATE_PEM,
        "private_key_id": "kid-1",
        "token_uri": TOKEN_URI,
        "project_id": "proj",
    }
)


class TokenEndpoint:
    """
    A fake token endpoint: records each form and answers from a script.

    :ivar forms: the forms posted, decoded.
    :ivar pending: answers not yet given, when answers are held back.
    """

    def __init__(
        self, *answers: tuple[int, bytes] | Exception, hold: bool = False
    ) -> None:
        self._answers = list(answers)
        self._hold = hold
        self.forms: list[dict[str, str]] = []
        self.pending: list[Deferred[tuple[int, bytes]]] = []

    def __call__(self, url: str, body: bytes) -> Deferred[tuple[int, bytes]]:
        assert url == TOKEN_URI
        self.forms.append(dict(parse_qsl(body.decode())))
        result = self._answers.pop(0)
        if self._hold:
            waiting: Deferred[tuple[int, bytes]] = Deferred()
            self.pending.append(waiting)
            return waiting
        if isinstance(result, Exception):
            return fail(result)
        return succeed(result)


def token_answer(token: str, lifetime: int = 3600) -> tuple[int, bytes]:
    """
    A token endpoint's success.
    """
    body = {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}
    return 200, json.dumps(body).encode()


class TokenTests(SynchronousTestCase):
    """
    L{ServiceAccountTokens}: assertions, caching, refresh, failures.
    """

    def tokens(self, endpoint: TokenEndpoint) -> tuple[ServiceAccountTokens, Clock]:
        """
        A token source for L{KEY_JSON} posting to ``endpoint``.
        """
        clock = Clock()
        clock.advance(NOW)
        return ServiceAccountTokens(
            ServiceAccountKey.from_json(KEY_JSON), clock, endpoint
        ), clock

    def test_assertion(self) -> None:
        """
        The assertion is an RS256 JWT of the account for the token URI,
        valid an hour, with the key id, and verifies with the public key.
        """
        signed = assertion(ServiceAccountKey.from_json(KEY_JSON), 1000)
        self.assertEqual(jwt.get_unverified_header(signed)["kid"], "kid-1")
        self.assertEqual(jwt.get_unverified_header(signed)["alg"], "RS256")
        claims = jwt.decode(
            signed,
            PUBLIC_KEY,
            algorithms=["RS256"],
            audience=TOKEN_URI,
            options={"verify_exp": False, "verify_iat": False},
        )
        self.assertEqual(claims["iss"], "gateway@project.iam.test")
        self.assertEqual((claims["iat"], claims["exp"]), (1000, 4600))
        self.assertIn("devstorage", claims["scope"])

    def test_cached_and_refreshed(self) -> None:
        """
        A token is fetched with the JWT-bearer grant, kept until shortly
        before it expires, then replaced.
        """
        endpoint = TokenEndpoint(token_answer("t1"), token_answer("t2"))
        tokens, clock = self.tokens(endpoint)
        self.assertEqual(self.successResultOf(tokens.token()), "t1")
        self.assertEqual(endpoint.forms[0]["grant_type"], JWT_BEARER)
        clock.advance(3600 - REFRESH_MARGIN - 1)
        self.assertEqual(self.successResultOf(tokens.token()), "t1")
        self.assertEqual(len(endpoint.forms), 1)
        clock.advance(2)
        self.assertEqual(self.successResultOf(tokens.token()), "t2")
        self.assertEqual(len(endpoint.forms), 2)

    def test_one_fetch_at_a_time(self) -> None:
        """
        Callers that ask while a token is fetched wait for that fetch.
        """
        endpoint = TokenEndpoint(token_answer("t1"), hold=True)
        tokens, _ = self.tokens(endpoint)
        first, second = tokens.token(), tokens.token()
        self.assertNoResult(first)
        self.assertEqual(len(endpoint.forms), 1)
        endpoint.pending[0].callback(token_answer("t1"))
        self.assertEqual(
            (self.successResultOf(first), self.successResultOf(second)), ("t1", "t1")
        )

    def test_failures(self) -> None:
        """
        A refusal, garbage or a failed request is ServiceUnavailable, and
        the next call tries again.
        """
        endpoint = TokenEndpoint(
            (401, b'{"error": "invalid_grant"}'),
            (200, b"not json"),
            ConnectionError("down"),
            token_answer("t1"),
        )
        tokens, _ = self.tokens(endpoint)
        for _ in range(3):
            failure = self.failureResultOf(tokens.token(), S3Error)
            self.assertEqual(failure.value.code, "ServiceUnavailable")
        self.assertEqual(self.successResultOf(tokens.token()), "t1")
        self.flushLoggedErrors(ConnectionError)

    def test_treq_poster(self) -> None:
        """
        The treq poster sends the form as
        C{application/x-www-form-urlencoded} and gives the status and body.
        """
        seen: list[tuple[bytes, bytes | None, bytes]] = []

        class Endpoint(Resource):
            isLeaf = True

            def render_POST(self, request: Any) -> bytes:
                seen.append(
                    (
                        request.path,
                        request.getHeader(b"content-type"),
                        request.content.read(),
                    )
                )
                request.setResponseCode(201)
                return b"answer"

        stub = StubTreq(Endpoint())
        posting = gcs_auth.treq_poster(stub)("https://oauth2.test/token", b"a=1")
        stub.flush()
        self.assertEqual(self.successResultOf(posting), (201, b"answer"))
        self.assertEqual(
            seen, [(b"/token", b"application/x-www-form-urlencoded", b"a=1")]
        )

    def test_store_sends_bearer(self) -> None:
        """
        A store with a service account key sends its token; stores made per
        request share one token source.
        """
        endpoint = TokenEndpoint(token_answer("tok"))
        self.patch(gcs_auth, "_SHARED", {})
        clock = Clock()
        clock.advance(NOW)
        shared_tokens(KEY_JSON, clock, endpoint)
        for _ in range(2):
            store, forwarder = make_store(
                lambda r, d: answer(200, resource("k")),
                clock,
                skip_signature="false",
                service_account_key=KEY_JSON,
            )
            self.successResultOf(store.get_object(ObjectRead("k", head=True)))
            self.assertEqual(
                forwarder.requests[0].headers.get("authorization"), "Bearer tok"
            )
        self.assertEqual(len(endpoint.forms), 1)

    def test_provider_hook(self) -> None:
        """
        An injected token provider is used instead of any key.
        """
        store, forwarder = make_store(
            lambda r, d: answer(200, resource("k")), skip_signature="false"
        )
        store = attrs.evolve(store, token_provider=lambda: succeed("fed"))
        self.successResultOf(store.get_object(ObjectRead("k", head=True)))
        self.assertEqual(
            forwarder.requests[0].headers.get("authorization"), "Bearer fed"
        )

    def test_bad_key(self) -> None:
        """
        An unusable key is ServiceUnavailable for requests.
        """
        store, forwarder = make_store(
            lambda r, d: answer(200), skip_signature="false", service_account_key="{}"
        )
        failure = self.failureResultOf(store.get_object(ObjectRead("k")), S3Error)
        self.assertEqual(failure.value.code, "ServiceUnavailable")
        self.assertEqual(forwarder.requests, [])
