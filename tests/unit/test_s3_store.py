"""
Tests for L{multistore.backends.s3}.

The store talks to a L{FakeForwarder} that records every L{BackendRequest}
and answers with scripted L{BackendResponse}s; their bodies are
L{TrackedBody}s (in-memory L{BytesBody}s that remember whether they were
delivered or discarded), so each test can check that every body the store
did not hand back was released. Time comes from a L{Clock}.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IConsumer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from multistore.auth.sigv4 import (
    canonical_query,
    canonical_request,
    canonical_uri,
    compute_signature,
    parse_authorization,
    signing_key,
    string_to_sign,
    verify_header_auth,
)
from multistore.backends.forwarder import BytesBody
from multistore.backends.s3 import MAX_ERROR_DOCUMENT, S3Store, object_headers
from multistore.config import BucketConfig
from multistore.headers import HeaderList
from multistore.interfaces import IForwarder, IObjectStore
from multistore.model import (
    BackendRequest,
    BackendResponse,
    IncomingRequest,
    ListPage,
    ListRequest,
    ObjectInfo,
    ObjectRead,
    ObjectResponse,
)
from multistore.s3.errors import STATUS_OF, S3Error

#: The fake clock's time: 2023-11-14T22:13:20Z.
NOW = 1_700_000_000.0
NOW_DATETIME = datetime.fromtimestamp(NOW, UTC)
AMZ_DATE = "20231114T221320Z"

ENDPOINT = "http://backend.test:9000"
BACKEND_BUCKET = "real-bucket"
AKID = "AKIDBACKEND"
SECRET = "backend/secret+key=="
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

#: Keys S3 stores byte for byte, and their path segments as AWS encodes
#: them (every byte but ``A-Za-z0-9-._~`` as upper-case ``%XX``, ``/``
#: kept).
ODD_KEYS: Sequence[tuple[str, str]] = (
    ("plain.txt", "plain.txt"),
    ("my file.txt", "my%20file.txt"),
    ("100%", "100%25"),
    ("%41", "%2541"),
    ("a+b", "a%2Bb"),
    ("café/ünï", "caf%C3%A9/%C3%BCn%C3%AF"),
    ("emoji 😀", "emoji%20%F0%9F%98%80"),
    ("star*", "star%2A"),
    ("hash#tag", "hash%23tag"),
    ("~tilde-_.", "~tilde-_."),
    ("[brackets]", "%5Bbrackets%5D"),
    ("a=b", "a%3Db"),
    ("q?x&y", "q%3Fx%26y"),
    ("dir//double/", "dir//double/"),
    ("semi;colon:at@", "semi%3Bcolon%3Aat%40"),
    ("quote'\"", "quote%27%22"),
    ("back\\slash", "back%5Cslash"),
)

#: Text that only the backend knows and no client may see.
BACKEND_SECRET_MESSAGE = (
    f"The bucket {BACKEND_BUCKET} in account 123456789012 says no (host h-1)"
)

_UNRESERVED_PATH = re.compile(r"[A-Za-z0-9\-._~%/]*")

#: The Unicode category of lone surrogates, which UTF-8 cannot carry.
SURROGATES: list[Literal["Cs"]] = ["Cs"]

#: Keys as hypothesis draws them: any text UTF-8 can carry.
keys = st.text(
    alphabet=st.characters(blacklist_categories=SURROGATES), min_size=1, max_size=60
)


# --- fakes -------------------------------------------------------------------


class TrackedBody(BytesBody):
    """
    A body held in memory that records how it was released.

    :ivar uses: ``"deliver"`` and ``"discard"``, once per call, in order.
    """

    def __init__(
        self, data: bytes = b"", length: int | Literal["actual"] | None = "actual"
    ) -> None:
        """
        :param length: the length to claim: the data's own by default,
            ``None`` for a body of unknown length (a chunked response).
        """
        super().__init__(data)
        self.uses: list[str] = []
        self._claimed = length

    @property
    def length(self) -> int | None:  # type: ignore[override]
        """
        The claimed length.
        """
        if self._claimed == "actual":
            return super().length
        return self._claimed

    def deliver(self, consumer: IConsumer) -> Deferred[int]:
        """
        Record the delivery, then deliver.
        """
        self.uses.append("deliver")
        return super().deliver(consumer)

    def discard(self) -> None:
        """
        Record the discard, then discard.
        """
        self.uses.append("discard")
        super().discard()


@implementer(IForwarder)
class FakeForwarder:
    """
    Records every request and answers each with the next scripted answer: a
    response, an exception (a failed request), or a Deferred (an answer still
    pending).

    :ivar requests: the requests forwarded, in order.
    :ivar bodies: the bodies of the responses handed out, in order.
    """

    def __init__(self, *answers: BackendResponse | Exception | Deferred[object]):
        self._answers = list(answers)
        self.requests: list[BackendRequest] = []
        self.bodies: list[TrackedBody] = []

    def forward(self, request: BackendRequest) -> Deferred[BackendResponse]:
        """
        Record ``request`` and answer it.
        """
        self.requests.append(request)
        if not self._answers:
            raise AssertionError(f"unexpected backend request {request!r}")
        answer = self._answers.pop(0)
        if isinstance(answer, Exception):
            return fail(answer)
        if isinstance(answer, Deferred):
            return answer  # type: ignore[return-value]
        assert isinstance(answer.body, TrackedBody)
        self.bodies.append(answer.body)
        return succeed(answer)

    @property
    def request(self) -> BackendRequest:
        """
        The one request forwarded.
        """
        assert len(self.requests) == 1, self.requests
        return self.requests[0]


def respond(
    status: int,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    length: int | Literal["actual"] | None = "actual",
) -> BackendResponse:
    """
    A backend response with a L{TrackedBody}.
    """
    return BackendResponse(
        status=status, headers=HeaderList(headers), body=TrackedBody(body, length)
    )


def error_document(
    code: str, message: str = BACKEND_SECRET_MESSAGE, **extra: str
) -> bytes:
    """
    An S3 error document as a backend writes one, naming backend details.
    """
    fields = {
        "Code": code,
        "Message": message,
        "BucketName": BACKEND_BUCKET,
        "Key": "backend-prefix/the key",
        "RequestId": "BACKENDREQ123",
        "HostId": "backend-host-id/abc=",
        **extra,
    }
    inner = "".join(f"<{name}>{value}</{name}>" for name, value in fields.items())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}</Error>'.encode()


def make_store(forwarder: FakeForwarder, **options: str) -> S3Store:
    """
    A store for the virtual bucket ``virtual`` on ``real-bucket`` at
    L{ENDPOINT} (no credentials unless given), with the clock at L{NOW}.
    """
    settings = {
        "endpoint": ENDPOINT,
        "bucket_name": BACKEND_BUCKET,
        "region": "eu-west-2",
        **options,
    }
    clock = Clock()
    clock.advance(NOW)
    bucket = BucketConfig(name="virtual", backend_type="s3", backend_options=settings)
    return S3Store(bucket, forwarder, clock)


def signed_store(forwarder: FakeForwarder, **options: str) -> S3Store:
    """
    A store with backend credentials.
    """
    return make_store(
        forwarder, access_key_id=AKID, secret_access_key=SECRET, **options
    )


def received(request: BackendRequest) -> IncomingRequest:
    """
    The request as the backend receives it.
    """
    parts = urlsplit(request.url)
    return IncomingRequest(
        method=request.method,
        raw_path=parts.path.encode("ascii"),
        raw_query=parts.query.encode("ascii"),
        headers=request.headers,
    )


class StoreTestCase(SynchronousTestCase):
    """
    Helpers shared by the store tests.
    """

    def assert_settled(self, forwarder: FakeForwarder, returned: object = None) -> None:
        """
        Every response body handed out was delivered or discarded exactly
        once, except ``returned`` (the body the store gave back), which was
        left untouched.
        """
        self.assertTrue(forwarder.bodies, "no response was handed out")
        for body in forwarder.bodies:
            if body is returned:
                self.assertEqual(body.uses, [], "a returned body was consumed")
            else:
                self.assertIn(body.uses, (["deliver"], ["discard"]))

    def error_of(self, d: Deferred[Any]) -> S3Error:
        """
        :return: the S3Error ``d`` failed with.
        """
        error = self.failureResultOf(d, S3Error).value
        assert isinstance(error, S3Error)
        return error

    def get_error(
        self,
        response: BackendResponse,
        read: ObjectRead | None = None,
        head: bool = False,
    ) -> S3Error:
        """
        Read an object from a backend that answers ``response``.

        :return: the error the read failed with, after checking that the
            response body was released.
        """
        forwarder = FakeForwarder(response)
        read = read if read is not None else ObjectRead(key="the key", head=head)
        error = self.error_of(make_store(forwarder).get_object(read))
        self.assert_settled(forwarder)
        return error

    def assert_no_backend_detail(self, error: S3Error) -> None:
        """
        Nothing of what the backend said about itself is in ``error``.
        """
        shown = " ".join(
            [
                error.code,
                error.message,
                str(error),
                repr(error),
                repr(error.extra),
                repr(error.headers),
                repr(error.resource),
            ]
        )
        for detail in (
            BACKEND_BUCKET,
            BACKEND_SECRET_MESSAGE,
            "123456789012",
            "BACKENDREQ123",
            "backend-host-id",
            "backend-prefix",
        ):
            self.assertNotIn(detail, shown)


# --- the fakes themselves ----------------------------------------------------


class FakeTests(StoreTestCase):
    """
    The fakes behave as the interfaces require.
    """

    def test_interfaces(self) -> None:
        """
        The fake forwarder is an L{IForwarder}; the store an
        L{IObjectStore}.
        """
        forwarder = FakeForwarder()
        verifyObject(IForwarder, forwarder)
        verifyObject(IObjectStore, make_store(forwarder))

    def test_tracked_body_records(self) -> None:
        """
        A tracked body records its delivery and its discard, and refuses a
        second use as any body does.
        """
        delivered = TrackedBody(b"abc")
        discarded = TrackedBody(b"abc")
        discarded.discard()
        self.assertEqual(discarded.uses, ["discard"])
        self.assertRaises(RuntimeError, discarded.discard)
        self.assertEqual(delivered.length, 3)
        self.assertIsNone(TrackedBody(b"abc", length=None).length)

        @implementer(IConsumer)
        class Sink:
            def __init__(self) -> None:
                self.data = b""

            def registerProducer(self, producer: object, streaming: bool) -> None:
                pass

            def unregisterProducer(self) -> None:
                pass

            def write(self, data: bytes) -> None:
                self.data += data

        sink = Sink()
        self.assertEqual(self.successResultOf(delivered.deliver(sink)), 3)
        self.assertEqual((sink.data, delivered.uses), (b"abc", ["deliver"]))

    def test_assert_settled_can_fail(self) -> None:
        """
        L{StoreTestCase.assert_settled} notices a body left unreleased.
        """
        forwarder = FakeForwarder(respond(200, body=b"x"))
        forwarder.forward(BackendRequest("GET", ENDPOINT))
        self.assertRaises(self.failureException, self.assert_settled, forwarder)


# --- URLs --------------------------------------------------------------------


class URLTests(StoreTestCase):
    """
    Where requests go: path-style or virtual-hosted, keys encoded as AWS
    encodes them.
    """

    def test_path_style(self) -> None:
        """
        By default a key's URL is ``endpoint/bucket/key``.
        """
        store = make_store(FakeForwarder())
        self.assertEqual(
            store.url("dir/file.txt"), f"{ENDPOINT}/{BACKEND_BUCKET}/dir/file.txt"
        )

    def test_odd_keys(self) -> None:
        """
        Odd keys are encoded as AWS encodes them in the URL the store sends.
        """
        for key, encoded in ODD_KEYS:
            forwarder = FakeForwarder(respond(200, body=b"x"))
            store = make_store(forwarder)
            self.successResultOf(store.get_object(ObjectRead(key=key)))
            self.assertEqual(
                forwarder.request.url, f"{ENDPOINT}/{BACKEND_BUCKET}/{encoded}", key
            )
            self.assertEqual(store.url(key), forwarder.request.url)

    @given(keys)
    def test_any_key(self, key: str) -> None:
        """
        Any key is sent as a path of unreserved characters, ``%XX`` escapes
        and ``/`` that decodes to the key exactly, with no query or
        fragment.
        """
        url = make_store(FakeForwarder()).url(key)
        self.assertTrue(url.isascii())
        parts = urlsplit(url)
        self.assertEqual((parts.query, parts.fragment), ("", ""))
        prefix = f"/{BACKEND_BUCKET}/"
        self.assertTrue(parts.path.startswith(prefix))
        path = parts.path[len(prefix) :]
        self.assertIsNotNone(_UNRESERVED_PATH.fullmatch(path), path)
        self.assertEqual(unquote(path, errors="strict"), key)
        escapes = re.findall("%..", path)
        self.assertEqual(escapes, [escape.upper() for escape in escapes])

    def test_bucket_url(self) -> None:
        """
        The bucket's own URL is ``endpoint/bucket``.
        """
        self.assertEqual(
            make_store(FakeForwarder()).url(None), f"{ENDPOINT}/{BACKEND_BUCKET}"
        )

    def test_endpoint_trailing_slash(self) -> None:
        """
        A trailing ``/`` on the endpoint does not double the slash.
        """
        store = make_store(FakeForwarder(), endpoint=ENDPOINT + "/")
        self.assertEqual(store.url("k"), f"{ENDPOINT}/{BACKEND_BUCKET}/k")

    def test_query(self) -> None:
        """
        Query parameters are encoded with the AWS rule, ``/`` included.
        """
        store = make_store(FakeForwarder())
        self.assertEqual(
            store.url("k", [("prefix", "a b/+=&")]),
            f"{ENDPOINT}/{BACKEND_BUCKET}/k?prefix=a%20b%2F%2B%3D%26",
        )

    def test_virtual_hosted(self) -> None:
        """
        With ``virtual_hosted_style_request`` the bucket is part of the host
        name and the path is the key alone.
        """
        store = make_store(FakeForwarder(), virtual_hosted_style_request="true")
        self.assertEqual(
            store.url("a b/c+d"),
            f"http://{BACKEND_BUCKET}.backend.test:9000/a%20b/c%2Bd",
        )
        self.assertEqual(store.url(None), f"http://{BACKEND_BUCKET}.backend.test:9000/")
        self.assertEqual(
            store.url(None, [("list-type", "2")]),
            f"http://{BACKEND_BUCKET}.backend.test:9000/?list-type=2",
        )

    def test_virtual_hosted_false(self) -> None:
        """
        ``virtual_hosted_style_request = "false"`` keeps path-style URLs.
        """
        store = make_store(FakeForwarder(), virtual_hosted_style_request="false")
        self.assertEqual(store.url("k"), f"{ENDPOINT}/{BACKEND_BUCKET}/k")

    def test_default_endpoint(self) -> None:
        """
        Without an endpoint, requests go to AWS in the bucket's region.
        """
        store = make_store(FakeForwarder(), endpoint="")
        self.assertEqual(
            store.url("k"), f"https://s3.eu-west-2.amazonaws.com/{BACKEND_BUCKET}/k"
        )
        hosted = make_store(
            FakeForwarder(), endpoint="", virtual_hosted_style_request="true"
        )
        self.assertEqual(
            hosted.url("k"), f"https://{BACKEND_BUCKET}.s3.eu-west-2.amazonaws.com/k"
        )

    def test_default_region(self) -> None:
        """
        Without a region either, the region is ``us-east-1``.
        """
        store = make_store(FakeForwarder(), endpoint="", region="")
        self.assertEqual(
            store.url("k"), f"https://s3.us-east-1.amazonaws.com/{BACKEND_BUCKET}/k"
        )


# --- signing -----------------------------------------------------------------


class SigningTests(StoreTestCase):
    """
    Requests are signed with SigV4 when the bucket has backend credentials.
    """

    def assert_verifies(
        self, request: BackendRequest, secret: str = SECRET, region: str = "eu-west-2"
    ) -> None:
        """
        ``request`` carries a SigV4 signature that verifies for ``secret``
        at L{NOW}, and verifies in the normalised canonical form a strict
        backend computes (the path decoded and re-encoded).
        """
        incoming = received(request)
        auth = parse_authorization(request.headers.get("authorization") or "")
        self.assertEqual(
            (auth.access_key_id, auth.date, auth.region, auth.service),
            (AKID, AMZ_DATE[:8], region, "s3"),
        )
        verify_header_auth(incoming, auth, secret, NOW_DATETIME)
        creq = canonical_request(
            request.method,
            canonical_uri(incoming.raw_path.decode("ascii")),
            canonical_query(incoming.raw_query.decode("ascii")),
            request.headers,
            auth.signed_headers,
            EMPTY_SHA256,
        )
        key = signing_key(secret, auth.date, auth.region, auth.service)
        self.assertEqual(
            compute_signature(key, string_to_sign(AMZ_DATE, auth.scope, creq)),
            auth.signature,
        )

    def test_signed_get(self) -> None:
        """
        A GET carries ``host``, ``x-amz-date`` (from the clock),
        ``x-amz-content-sha256`` and an ``authorization`` that verifies.
        """
        forwarder = FakeForwarder(respond(200, body=b"x"))
        self.successResultOf(
            signed_store(forwarder).get_object(ObjectRead(key="dir/file"))
        )
        request = forwarder.request
        self.assertEqual(request.headers.get("host"), "backend.test:9000")
        self.assertEqual(request.headers.get("x-amz-date"), AMZ_DATE)
        self.assertEqual(request.headers.get("x-amz-content-sha256"), EMPTY_SHA256)
        self.assertNotIn("x-amz-security-token", request.headers)
        self.assert_verifies(request)

    def test_wrong_secret(self) -> None:
        """
        The signature does not verify for another secret (so the check
        above can fail).
        """
        forwarder = FakeForwarder(respond(200, body=b"x"))
        self.successResultOf(signed_store(forwarder).get_object(ObjectRead(key="k")))
        request = forwarder.request
        auth = parse_authorization(request.headers.get("authorization") or "")
        error = self.assertRaises(
            S3Error,
            verify_header_auth,
            received(request),
            auth,
            "another secret",
            NOW_DATETIME,
        )
        self.assertEqual(error.code, "SignatureDoesNotMatch")

    def test_odd_keys_and_headers(self) -> None:
        """
        Signatures verify for odd keys, with range, conditional headers and
        query parameters.
        """
        for key, _ in ODD_KEYS:
            for head in (False, True):
                forwarder = FakeForwarder(respond(200))
                read = ObjectRead(
                    key=key,
                    head=head,
                    range="bytes=0-9",
                    if_match='"abc"',
                    if_none_match='"def"',
                    if_modified_since="Mon, 13 Nov 2023 00:00:00 GMT",
                    if_unmodified_since="Wed, 15 Nov 2023 00:00:00 GMT",
                    version_id="v 1+/=",
                    part_number=2,
                )
                self.successResultOf(signed_store(forwarder).get_object(read))
                self.assert_verifies(forwarder.request)
                auth = parse_authorization(
                    forwarder.request.headers.get("authorization") or ""
                )
                for name in ("range", "if-match", "if-none-match", "host"):
                    self.assertIn(name, auth.signed_headers)

    @given(keys)
    def test_any_key_verifies(self, key: str) -> None:
        """
        A request for any key verifies.
        """
        forwarder = FakeForwarder(respond(200, body=b"x"))
        self.successResultOf(signed_store(forwarder).get_object(ObjectRead(key=key)))
        self.assert_verifies(forwarder.request)

    def test_listing_verifies(self) -> None:
        """
        A listing with odd parameters verifies.
        """
        forwarder = FakeForwarder(respond(200, body=listing_document()))
        request = ListRequest(
            prefix="a b/+%",
            delimiter="/",
            max_keys=5,
            start_after="a b/+%0",
            token="tok/en+==",
        )
        self.successResultOf(signed_store(forwarder).list_objects(request))
        self.assert_verifies(forwarder.request)

    def test_virtual_hosted(self) -> None:
        """
        Virtual-hosted requests sign the bucket's host name.
        """
        forwarder = FakeForwarder(respond(200, body=b"x"))
        store = signed_store(forwarder, virtual_hosted_style_request="true")
        self.successResultOf(store.get_object(ObjectRead(key="a b")))
        self.assertEqual(
            forwarder.request.headers.get("host"), f"{BACKEND_BUCKET}.backend.test:9000"
        )
        self.assert_verifies(forwarder.request)

    def test_default_endpoint_and_region(self) -> None:
        """
        Against AWS itself the ``host`` has no port and the scope names the
        default region.
        """
        forwarder = FakeForwarder(respond(200, body=b"x"))
        store = signed_store(forwarder, endpoint="", region="")
        self.successResultOf(store.get_object(ObjectRead(key="k")))
        self.assertEqual(
            forwarder.request.headers.get("host"), "s3.us-east-1.amazonaws.com"
        )
        self.assert_verifies(forwarder.request, region="us-east-1")

    def test_session_token(self) -> None:
        """
        With a ``token`` the request carries a signed
        ``x-amz-security-token``.
        """
        forwarder = FakeForwarder(respond(200, body=b"x"))
        store = signed_store(forwarder, token="session/token+==")
        self.successResultOf(store.get_object(ObjectRead(key="k")))
        request = forwarder.request
        self.assertEqual(
            request.headers.get_all("x-amz-security-token"), ["session/token+=="]
        )
        auth = parse_authorization(request.headers.get("authorization") or "")
        self.assertIn("x-amz-security-token", auth.signed_headers)
        self.assert_verifies(request)

    def test_head_bucket_signed(self) -> None:
        """
        HeadBucket is signed too.
        """
        forwarder = FakeForwarder(respond(200))
        self.successResultOf(signed_store(forwarder).head_bucket())
        self.assertEqual(forwarder.request.method, "HEAD")
        self.assert_verifies(forwarder.request)

    def assert_unsigned(self, store_options: dict[str, str]) -> None:
        """
        A store with these options sends its requests unsigned.
        """
        forwarder = FakeForwarder(respond(200, body=b"x"), respond(200))
        store = make_store(forwarder, **store_options)
        self.successResultOf(store.get_object(ObjectRead(key="k", range="bytes=0-0")))
        self.successResultOf(store.head_bucket())
        for request in forwarder.requests:
            for name in (
                "authorization",
                "x-amz-date",
                "x-amz-content-sha256",
                "x-amz-security-token",
            ):
                self.assertNotIn(name, request.headers)
        self.assertEqual(
            forwarder.requests[0].headers, HeaderList([("range", "bytes=0-0")])
        )

    def test_no_credentials(self) -> None:
        """
        Without credentials requests are sent unsigned.
        """
        self.assert_unsigned({})

    def test_half_credentials(self) -> None:
        """
        A key id without a secret (or the reverse) is not enough to sign.
        """
        self.assert_unsigned({"access_key_id": AKID})
        self.assert_unsigned({"secret_access_key": SECRET, "token": "t"})

    def test_skip_signature(self) -> None:
        """
        With ``skip_signature = "true"`` requests are sent unsigned even
        when the bucket has credentials.
        """
        self.assert_unsigned(
            {
                "access_key_id": AKID,
                "secret_access_key": SECRET,
                "token": "t",
                "skip_signature": "true",
            }
        )

    def test_skip_signature_false(self) -> None:
        """
        ``skip_signature = "false"`` still signs.
        """
        forwarder = FakeForwarder(respond(200, body=b"x"))
        store = signed_store(forwarder, skip_signature="false")
        self.successResultOf(store.get_object(ObjectRead(key="k")))
        self.assert_verifies(forwarder.request)


# --- reading objects ---------------------------------------------------------


FULL_READ = ObjectRead(
    key="k",
    range="bytes=10-19",
    if_match='"abc"',
    if_none_match='"def"',
    if_modified_since="Mon, 13 Nov 2023 00:00:00 GMT",
    if_unmodified_since="Wed, 15 Nov 2023 00:00:00 GMT",
    version_id="3/L4kqtJl+cF.l=",
    part_number=3,
)

FULL_READ_HEADERS = HeaderList(
    [
        ("range", "bytes=10-19"),
        ("if-match", '"abc"'),
        ("if-none-match", '"def"'),
        ("if-modified-since", "Mon, 13 Nov 2023 00:00:00 GMT"),
        ("if-unmodified-since", "Wed, 15 Nov 2023 00:00:00 GMT"),
    ]
)

#: Backend response headers an object response keeps.
KEPT_HEADERS = (
    ("content-type", "text/plain; charset=utf-8"),
    ("content-length", "10"),
    ("content-range", "bytes 10-19/100"),
    ("content-encoding", "gzip"),
    ("content-disposition", 'attachment; filename="a b.txt"'),
    ("content-language", "fr"),
    ("cache-control", "max-age=60"),
    ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
    ("etag", '"0123456789abcdef"'),
    ("last-modified", "Tue, 14 Nov 2023 00:00:00 GMT"),
    ("accept-ranges", "bytes"),
    ("x-amz-meta-owner", "Zoë"),
    ("x-amz-meta-empty", ""),
    ("x-amz-checksum-crc32", "AAAAAA=="),
    ("x-amz-checksum-sha256", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
    ("x-amz-version-id", "v1"),
    ("x-amz-storage-class", "STANDARD_IA"),
    ("x-amz-server-side-encryption", "AES256"),
    ("x-amz-tagging-count", "2"),
    ("x-amz-delete-marker", "false"),
    ("x-amz-mp-parts-count", "3"),
)

#: Backend response headers that say something about the backend.
DROPPED_HEADERS = (
    ("x-amz-request-id", "BACKENDREQ123"),
    ("x-amz-id-2", "backend-host-id/abc="),
    ("server", "AmazonS3"),
    ("set-cookie", "session=backend; Path=/"),
    ("x-amz-expiration", 'expiry-date="..", rule-id="backend rule"'),
    ("x-amz-bucket-region", "eu-west-2"),
    ("x-backend-thing", "internal"),
    ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
    ("via", "1.1 backend-proxy"),
    ("x-amz-server-side-encryption-context", "secret context"),
)


class ObjectHeadersTests(SynchronousTestCase):
    """
    L{object_headers} keeps only what clients may see.
    """

    def test_allow_list(self) -> None:
        """
        Object headers are kept in order, the backend's own dropped.
        """
        mixed = [*DROPPED_HEADERS[:5], *KEPT_HEADERS, *DROPPED_HEADERS[5:]]
        self.assertEqual(object_headers(HeaderList(mixed)), HeaderList(KEPT_HEADERS))

    def test_case_and_repeats(self) -> None:
        """
        Names match whatever their case; repeated fields keep every value.
        """
        headers = HeaderList(
            [
                ("X-Amz-Meta-Tag", "one"),
                ("Server", "x"),
                ("X-AMZ-META-TAG", "two"),
                ("ETag", '"e"'),
            ]
        )
        self.assertEqual(
            list(object_headers(headers)),
            [("x-amz-meta-tag", "one"), ("x-amz-meta-tag", "two"), ("etag", '"e"')],
        )

    def test_lookalikes(self) -> None:
        """
        Names that only start like allowed names are dropped.
        """
        headers = HeaderList(
            [("etag-x", "1"), ("x-amz-metadata", "2"), ("content-typo", "3")]
        )
        self.assertEqual(list(object_headers(headers)), [])

    @given(
        st.lists(
            st.tuples(
                st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1), st.text()
            )
        )
    )
    def test_subset(self, fields: list[tuple[str, str]]) -> None:
        """
        The result is the input's fields that are allowed, in order.
        """
        headers = HeaderList(fields)
        kept = list(object_headers(headers))
        self.assertTrue(all(pair in list(headers) for pair in kept))
        self.assertEqual(object_headers(HeaderList(kept)), HeaderList(kept))


class GetObjectTests(StoreTestCase):
    """
    GET and HEAD: what is forwarded and what comes back.
    """

    def test_forwarded_headers_and_query(self) -> None:
        """
        Range, the four conditional headers, ``partNumber`` and
        ``versionId`` are forwarded verbatim, and nothing else.
        """
        for head, method in ((False, "GET"), (True, "HEAD")):
            forwarder = FakeForwarder(respond(206))
            read = ObjectRead(
                key=FULL_READ.key,
                head=head,
                range=FULL_READ.range,
                if_match=FULL_READ.if_match,
                if_none_match=FULL_READ.if_none_match,
                if_modified_since=FULL_READ.if_modified_since,
                if_unmodified_since=FULL_READ.if_unmodified_since,
                version_id=FULL_READ.version_id,
                part_number=FULL_READ.part_number,
            )
            self.successResultOf(make_store(forwarder).get_object(read))
            request = forwarder.request
            self.assertEqual(request.method, method)
            self.assertEqual(request.headers, FULL_READ_HEADERS)
            self.assertIsNone(request.body)
            parts = urlsplit(request.url)
            self.assertEqual(parts.path, f"/{BACKEND_BUCKET}/k")
            self.assertEqual(
                parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True),
                [("partNumber", "3"), ("versionId", "3/L4kqtJl+cF.l=")],
            )
            self.assertEqual(
                parts.query, "partNumber=3&versionId=3%2FL4kqtJl%2BcF.l%3D"
            )

    def test_plain_read(self) -> None:
        """
        A read without options sends no headers and no query.
        """
        forwarder = FakeForwarder(respond(200, body=b"x"))
        self.successResultOf(make_store(forwarder).get_object(ObjectRead(key="k")))
        self.assertEqual(forwarder.request.headers, HeaderList())
        self.assertEqual(forwarder.request.url, f"{ENDPOINT}/{BACKEND_BUCKET}/k")

    def test_get(self) -> None:
        """
        A 200 comes back with the allowed headers and the backend's body,
        untouched.
        """
        response = respond(200, [*DROPPED_HEADERS, *KEPT_HEADERS], b"0123456789")
        forwarder = FakeForwarder(response)
        result = self.successResultOf(
            make_store(forwarder).get_object(ObjectRead(key="k"))
        )
        self.assertEqual(result, ObjectResponse(200, HeaderList(KEPT_HEADERS)))
        self.assertIs(result.body, response.body)
        self.assert_settled(forwarder, returned=response.body)

    def test_partial(self) -> None:
        """
        A 206 comes back as a 206 with its ``content-range``.
        """
        response = respond(
            206,
            [("content-range", "bytes 10-19/100"), ("x-amz-request-id", "r")],
            b"0123456789",
        )
        forwarder = FakeForwarder(response)
        result = self.successResultOf(make_store(forwarder).get_object(FULL_READ))
        self.assertEqual(result.status, 206)
        self.assertEqual(
            result.headers, HeaderList([("content-range", "bytes 10-19/100")])
        )
        self.assertIs(result.body, response.body)
        self.assert_settled(forwarder, returned=response.body)

    def test_head(self) -> None:
        """
        A HEAD comes back with headers and no body; the backend's body is
        discarded.
        """
        forwarder = FakeForwarder(respond(200, [*KEPT_HEADERS, *DROPPED_HEADERS]))
        result = self.successResultOf(
            make_store(forwarder).get_object(ObjectRead(key="k", head=True))
        )
        self.assertEqual(result, ObjectResponse(200, HeaderList(KEPT_HEADERS)))
        self.assertIsNone(result.body)
        self.assertEqual(forwarder.bodies[0].uses, ["discard"])

    def test_not_modified(self) -> None:
        """
        A 304 comes back without a body, with the allowed headers; whatever
        body the backend sent is discarded.
        """
        for head in (False, True):
            forwarder = FakeForwarder(
                respond(
                    304,
                    [("etag", '"def"'), ("x-amz-request-id", "r"), ("server", "s")],
                    b"stray bytes",
                )
            )
            read = ObjectRead(key="k", head=head, if_none_match='"def"')
            result = self.successResultOf(make_store(forwarder).get_object(read))
            self.assertEqual(
                result, ObjectResponse(304, HeaderList([("etag", '"def"')]))
            )
            self.assertIsNone(result.body)
            self.assertEqual(forwarder.bodies[0].uses, ["discard"])

    def test_forwarder_failure(self) -> None:
        """
        The forwarder's own failures (backend unreachable, timed out) reach
        the caller as they are.
        """
        for code in ("ServiceUnavailable", "GatewayTimeout"):
            forwarder = FakeForwarder(S3Error(code))
            error = self.error_of(make_store(forwarder).get_object(ObjectRead(key="k")))
            self.assertEqual(error.code, code)

    def test_cancel(self) -> None:
        """
        Cancelling a read while the backend has not answered cancels the
        backend request.
        """
        cancelled: list[Deferred[object]] = []
        pending: Deferred[object] = Deferred(cancelled.append)
        forwarder = FakeForwarder(pending)
        reading = make_store(forwarder).get_object(ObjectRead(key="k"))
        self.assertNoResult(reading)
        reading.cancel()
        self.assertEqual(cancelled, [pending])
        self.failureResultOf(reading, CancelledError)


# --- errors ------------------------------------------------------------------


class ErrorTests(StoreTestCase):
    """
    Backend errors become the gateway's own, without backend detail.
    """

    def test_no_such_key(self) -> None:
        """
        A 404 with a ``NoSuchKey`` document is ``NoSuchKey``.
        """
        error = self.get_error(respond(404, body=error_document("NoSuchKey")))
        self.assertEqual((error.code, error.status), ("NoSuchKey", 404))
        self.assert_no_backend_detail(error)

    def test_no_such_key_chunked(self) -> None:
        """
        An error document of unknown length is read too.
        """
        error = self.get_error(
            respond(404, body=error_document("NoSuchKey"), length=None)
        )
        self.assertEqual(error.code, "NoSuchKey")

    def test_head_not_found(self) -> None:
        """
        A 404 to a HEAD, which has no body, is ``NoSuchKey``; a GET's 404
        with an empty body too.
        """
        error = self.get_error(respond(404), head=True)
        self.assertEqual((error.code, error.status), ("NoSuchKey", 404))
        error = self.get_error(respond(404))
        self.assertEqual(error.code, "NoSuchKey")

    def test_head_error_body_not_read(self) -> None:
        """
        A HEAD's error body is discarded, never read.
        """
        forwarder = FakeForwarder(respond(404, body=error_document("NoSuchKey")))
        self.error_of(make_store(forwarder).get_object(ObjectRead(key="k", head=True)))
        self.assertEqual(forwarder.bodies[0].uses, ["discard"])

    def test_access_denied(self) -> None:
        """
        A 403 is ``AccessDenied`` with a message that blames the backend
        store, whatever code the backend gave (a client must not think its
        own signature was wrong).
        """
        for response, head in (
            (respond(403, body=error_document("AccessDenied")), False),
            (respond(403, body=error_document("SignatureDoesNotMatch")), False),
            (respond(403, body=error_document("InvalidAccessKeyId")), False),
            (respond(403, body=b"<html>Forbidden</html>"), False),
            (respond(403), True),
        ):
            error = self.get_error(response, head=head)
            self.assertEqual((error.code, error.status), ("AccessDenied", 403))
            self.assertIn("backend store", error.message)
            self.assert_no_backend_detail(error)

    def test_internal_error(self) -> None:
        """
        A 500 is ``ServiceUnavailable``.
        """
        for response, head in (
            (respond(500, body=error_document("InternalError")), False),
            (respond(500), False),
            (respond(500), True),
            (respond(502, body=b"<html>Bad Gateway</html>"), False),
        ):
            error = self.get_error(response, head=head)
            self.assertEqual((error.code, error.status), ("ServiceUnavailable", 503))
            self.assert_no_backend_detail(error)

    def test_slow_down(self) -> None:
        """
        A 503 ``SlowDown`` is passed on as ``SlowDown``.
        """
        error = self.get_error(respond(503, body=error_document("SlowDown")))
        self.assertEqual((error.code, error.status), ("SlowDown", 503))
        self.assert_no_backend_detail(error)

    def test_service_unavailable(self) -> None:
        """
        A 503 ``ServiceUnavailable`` stays a 503.
        """
        error = self.get_error(respond(503, body=error_document("ServiceUnavailable")))
        self.assertEqual(error.status, 503)
        self.assert_no_backend_detail(error)

    def test_precondition_failed(self) -> None:
        """
        A 412 is ``PreconditionFailed``, with or without a document.
        """
        for response, head in (
            (respond(412, body=error_document("PreconditionFailed")), False),
            (respond(412), True),
        ):
            read = ObjectRead(key="k", head=head, if_match='"nope"')
            error = self.get_error(response, read)
            self.assertEqual((error.code, error.status), ("PreconditionFailed", 412))
            self.assert_no_backend_detail(error)

    def test_invalid_range_with_content_range(self) -> None:
        """
        A 416's ``content-range`` is passed on with ``InvalidRange``.
        """
        for response, head in (
            (
                respond(
                    416,
                    [("content-range", "bytes */1234")],
                    error_document("InvalidRange", ActualObjectSize="999"),
                ),
                False,
            ),
            (respond(416, [("content-range", "bytes */1234")]), True),
        ):
            read = ObjectRead(key="k", head=head, range="bytes=5000-")
            error = self.get_error(response, read)
            self.assertEqual((error.code, error.status), ("InvalidRange", 416))
            self.assertEqual(error.headers, (("content-range", "bytes */1234"),))
            self.assert_no_backend_detail(error)

    def test_invalid_range_without_size(self) -> None:
        """
        A 416 that says no size gives ``InvalidRange`` without
        ``content-range``.
        """
        for response, head in (
            (respond(416, body=error_document("InvalidRange")), False),
            (respond(416), False),
            (respond(416), True),
        ):
            read = ObjectRead(key="k", head=head, range="bytes=5000-")
            error = self.get_error(response, read)
            self.assertEqual((error.code, error.headers), ("InvalidRange", ()))

    def test_invalid_range_size_in_document(self) -> None:
        """
        A backend that gives the size only as ``ActualObjectSize`` in its
        document gets ``content-range: bytes */SIZE``.
        """
        for document in (
            error_document("InvalidRange", ActualObjectSize="1234"),
            error_document("InvalidRange", ActualObjectSize=" 1234\n"),
            b'<Error xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Code>InvalidRange</Code><ActualObjectSize>1234</ActualObjectSize>"
            b"</Error>",
        ):
            read = ObjectRead(key="k", range="bytes=5000-")
            error = self.get_error(respond(416, body=document), read)
            self.assertEqual(error.code, "InvalidRange")
            self.assertEqual(error.headers, (("content-range", "bytes */1234"),))

    def test_invalid_range_bad_size(self) -> None:
        """
        An ``ActualObjectSize`` that is not a number is ignored.
        """
        for size in ("", "-1", "12a", "١٢"):
            read = ObjectRead(key="k", range="bytes=5000-")
            document = error_document("InvalidRange", ActualObjectSize=size)
            error = self.get_error(respond(416, body=document), read)
            self.assertEqual((error.code, error.headers), ("InvalidRange", ()))

    def test_backend_detail_never_shown(self) -> None:
        """
        Whatever the backend says in its error, none of its message, bucket,
        key, request id or host id reaches the error a client gets, and the
        error is one multistore knows how to render.
        """
        codes = [
            (400, "InvalidArgument"),
            (400, "AuthorizationHeaderMalformed"),
            (400, "SomethingNew"),
            (403, "AccessDenied"),
            (404, "NoSuchKey"),
            (404, "NoSuchBucket"),
            (404, "NoSuchVersion"),
            (409, "OperationAborted"),
            (412, "PreconditionFailed"),
            (416, "InvalidRange"),
            (500, "InternalError"),
            (503, "SlowDown"),
            (503, "ServiceUnavailable"),
        ]
        for status, code in codes:
            error = self.get_error(respond(status, body=error_document(code)))
            self.assert_no_backend_detail(error)
            self.assertIn(error.code, STATUS_OF)
            self.assertEqual(error.status, STATUS_OF[error.code])

    def test_backend_detail_check_can_fail(self) -> None:
        """
        L{StoreTestCase.assert_no_backend_detail} notices backend detail.
        """
        self.assertRaises(
            self.failureException,
            self.assert_no_backend_detail,
            S3Error("NoSuchKey", BACKEND_SECRET_MESSAGE),
        )

    def test_misconfigured_backend(self) -> None:
        """
        A backend that refuses the gateway's own request for a reason that
        is not the client's fault is ``ServiceUnavailable``.
        """
        for code in ("AuthorizationHeaderMalformed", "PermanentRedirect", "Weird"):
            status = 301 if code == "PermanentRedirect" else 400
            error = self.get_error(respond(status, body=error_document(code)))
            self.assertEqual((error.code, error.status), ("ServiceUnavailable", 503))

    def test_not_xml(self) -> None:
        """
        An error body that is not an S3 error document is read, and the
        status decides.
        """
        for status, code in ((404, "NoSuchKey"), (500, "ServiceUnavailable")):
            error = self.get_error(respond(status, body=b"<html>oops</html>"))
            self.assertEqual(error.code, code)

    def test_oversized_document(self) -> None:
        """
        An error body longer than L{MAX_ERROR_DOCUMENT} is discarded unread.
        """
        forwarder = FakeForwarder(
            respond(404, body=b"x", length=MAX_ERROR_DOCUMENT + 1)
        )
        error = self.error_of(make_store(forwarder).get_object(ObjectRead(key="k")))
        self.assertEqual(error.code, "NoSuchKey")
        self.assertEqual(forwarder.bodies[0].uses, ["discard"])

    def test_unexpected_success(self) -> None:
        """
        A success status a read cannot give (204) is not taken for an
        object.
        """
        error = self.get_error(respond(204))
        self.assertEqual(error.status, 503)


# --- listing -----------------------------------------------------------------


def listing_document(
    *,
    keys: Sequence[str] = ("a%20b", "c+d", "e%2Bf"),
    prefixes: Sequence[str] = ("dir%2F",),
    truncated: bool = True,
    token: str | None = "next/token+==",
) -> bytes:
    """
    A URL-encoded ListObjectsV2 answer.
    """
    contents = "".join(
        f"<Contents><Key>{key}</Key><LastModified>2024-01-02T03:04:05.000Z"
        f"</LastModified><ETag>&quot;e{i}&quot;</ETag><Size>{i}</Size>"
        f"<StorageClass>STANDARD</StorageClass></Contents>"
        for i, key in enumerate(keys)
    )
    common = "".join(
        f"<CommonPrefixes><Prefix>{p}</Prefix></CommonPrefixes>" for p in prefixes
    )
    next_token = (
        f"<NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{BACKEND_BUCKET}</Name><Prefix></Prefix><KeyCount>4</KeyCount>"
        f"<MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
        f"{contents}{common}{next_token}</ListBucketResult>"
    ).encode()


class ListTests(StoreTestCase):
    """
    Listing with ListObjectsV2.
    """

    def test_defaults(self) -> None:
        """
        A plain listing asks for ``list-type=2`` with URL-encoded keys and
        the page size, on the bucket's URL.
        """
        forwarder = FakeForwarder(respond(200, body=listing_document()))
        self.successResultOf(make_store(forwarder).list_objects(ListRequest()))
        request = forwarder.request
        self.assertEqual(request.method, "GET")
        self.assertEqual(request.headers, HeaderList())
        self.assertEqual(
            request.url,
            f"{ENDPOINT}/{BACKEND_BUCKET}?encoding-type=url&list-type=2&max-keys=1000",
        )
        self.assert_settled(forwarder)

    def test_parameters(self) -> None:
        """
        Prefix, delimiter, start-after, max-keys and the continuation token
        are sent, encoded with the AWS rule.
        """
        forwarder = FakeForwarder(respond(200, body=listing_document()))
        request = ListRequest(
            prefix="a b/+%",
            delimiter="/",
            max_keys=7,
            start_after="a b/+%x",
            token="tok/en+==",
        )
        self.successResultOf(make_store(forwarder).list_objects(request))
        parts = urlsplit(forwarder.request.url)
        self.assertEqual(parts.path, f"/{BACKEND_BUCKET}")
        self.assertEqual(
            sorted(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)),
            [
                ("continuation-token", "tok/en+=="),
                ("delimiter", "/"),
                ("encoding-type", "url"),
                ("list-type", "2"),
                ("max-keys", "7"),
                ("prefix", "a b/+%"),
                ("start-after", "a b/+%x"),
            ],
        )
        self.assertIn("prefix=a%20b%2F%2B%25", parts.query.split("&"))
        self.assertIn("continuation-token=tok%2Fen%2B%3D%3D", parts.query.split("&"))

    def test_virtual_hosted(self) -> None:
        """
        A virtual-hosted listing goes to the bucket's host, path ``/``.
        """
        forwarder = FakeForwarder(respond(200, body=listing_document()))
        store = make_store(forwarder, virtual_hosted_style_request="true")
        self.successResultOf(store.list_objects(ListRequest(prefix="p")))
        parts = urlsplit(forwarder.request.url)
        self.assertEqual(
            (parts.netloc, parts.path), (f"{BACKEND_BUCKET}.backend.test:9000", "/")
        )

    def test_page(self) -> None:
        """
        The answer is parsed into a page: keys decoded, the backend's
        continuation token as ``next_token``.
        """
        forwarder = FakeForwarder(respond(200, body=listing_document()))
        page = self.successResultOf(make_store(forwarder).list_objects(ListRequest()))
        when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        self.assertEqual(
            page,
            ListPage(
                objects=(
                    ObjectInfo("a b", 0, when, '"e0"'),
                    ObjectInfo("c d", 1, when, '"e1"'),
                    ObjectInfo("e+f", 2, when, '"e2"'),
                ),
                common_prefixes=("dir/",),
                truncated=True,
                next_token="next/token+==",
            ),
        )
        self.assertEqual(forwarder.bodies[0].uses, ["deliver"])

    def test_last_page(self) -> None:
        """
        A last page has no ``next_token``.
        """
        forwarder = FakeForwarder(
            respond(200, body=listing_document(truncated=False, token=None))
        )
        page = self.successResultOf(make_store(forwarder).list_objects(ListRequest()))
        self.assertEqual((page.truncated, page.next_token), (False, None))

    def test_invalid_listing(self) -> None:
        """
        An answer that is not a listing is ``ServiceUnavailable``; its body
        was read.
        """
        forwarder = FakeForwarder(respond(200, body=b"<html>hello</html>"))
        error = self.error_of(make_store(forwarder).list_objects(ListRequest()))
        self.assertEqual(error.code, "ServiceUnavailable")
        self.assert_settled(forwarder)

    def test_errors(self) -> None:
        """
        Listing errors map as object errors do.
        """
        for response, code in (
            (respond(404, body=error_document("NoSuchBucket")), "NoSuchBucket"),
            (respond(403, body=error_document("AccessDenied")), "AccessDenied"),
            (respond(403), "AccessDenied"),
            (respond(500, body=error_document("InternalError")), "ServiceUnavailable"),
            (respond(503, body=error_document("SlowDown")), "SlowDown"),
        ):
            forwarder = FakeForwarder(response)
            error = self.error_of(make_store(forwarder).list_objects(ListRequest()))
            self.assertEqual(error.code, code)
            self.assert_no_backend_detail(error)
            self.assert_settled(forwarder)

    def test_not_found_empty(self) -> None:
        """
        A listing the backend answers 404 with an empty body is
        ``NoSuchBucket``: a listing has no key to be missing.
        """
        forwarder = FakeForwarder(respond(404))
        error = self.error_of(make_store(forwarder).list_objects(ListRequest()))
        self.assertEqual(error.code, "NoSuchBucket")
        self.assert_settled(forwarder)

    def test_not_found_without_document(self) -> None:
        """
        A listing the backend answers 404 with a body that is not an S3
        error document (a proxy's page, or an empty chunked body) is
        ``NoSuchBucket`` too.
        """
        cases: list[tuple[bytes, Literal["actual"] | None]] = [
            (b"<html>Not Found</html>", "actual"),
            (b"", None),
        ]
        for body, length in cases:
            forwarder = FakeForwarder(respond(404, body=body, length=length))
            error = self.error_of(make_store(forwarder).list_objects(ListRequest()))
            self.assertEqual(error.code, "NoSuchBucket")
            self.assert_settled(forwarder)


# --- head_bucket -------------------------------------------------------------


class HeadBucketTests(StoreTestCase):
    """
    L{S3Store.head_bucket} checks the backend bucket.
    """

    def test_exists(self) -> None:
        """
        A 200 means the bucket is there; the request is a HEAD of the
        bucket's URL.
        """
        forwarder = FakeForwarder(respond(200, [("x-amz-bucket-region", "x")]))
        self.assertIsNone(self.successResultOf(make_store(forwarder).head_bucket()))
        self.assertEqual(
            (forwarder.request.method, forwarder.request.url),
            ("HEAD", f"{ENDPOINT}/{BACKEND_BUCKET}"),
        )
        self.assert_settled(forwarder)

    def test_missing(self) -> None:
        """
        A 404 is ``NoSuchBucket``.
        """
        forwarder = FakeForwarder(respond(404, body=error_document("NoSuchBucket")))
        error = self.error_of(make_store(forwarder).head_bucket())
        self.assertEqual((error.code, error.status), ("NoSuchBucket", 404))
        self.assert_no_backend_detail(error)
        self.assert_settled(forwarder)

    def test_forbidden(self) -> None:
        """
        A 403 is ``AccessDenied``, blaming the backend store.
        """
        forwarder = FakeForwarder(respond(403))
        error = self.error_of(make_store(forwarder).head_bucket())
        self.assertEqual((error.code, error.status), ("AccessDenied", 403))
        self.assertIn("backend store", error.message)
        self.assert_settled(forwarder)

    def test_failed(self) -> None:
        """
        A 500 is ``ServiceUnavailable``; a forwarder failure is passed on.
        """
        forwarder = FakeForwarder(respond(500), S3Error("GatewayTimeout"))
        store = make_store(forwarder)
        self.assertEqual(self.error_of(store.head_bucket()).code, "ServiceUnavailable")
        self.assertEqual(self.error_of(store.head_bucket()).code, "GatewayTimeout")
        self.assert_settled(forwarder)
