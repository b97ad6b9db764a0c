"""
Tests for L{multistore.stores.s3.store}.

The store talks to a L{multistore.testing.ScriptedForwarder} that records every L{BackendRequest}
and answers with scripted L{BackendResponse}s; their bodies are
L{multistore.testing.RecordingBody}s (in-memory L{BytesBody}s that remember whether they were
delivered or discarded), so each test can check that every body the store
did not hand back was released. Time comes from a L{Clock}.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface.verify import verifyObject

from multistore.auth.canonical import (
    canonical_query,
    canonical_request,
    canonical_uri,
    compute_signature,
    signing_key,
    string_to_sign,
)
from multistore.auth.sigv4 import parse_authorization, verify_header_auth
from multistore.bodies import IBody
from multistore.config import BucketConfig
from multistore.headers import HeaderList
from multistore.interfaces import IForwarder, IObjectStore
from multistore.model import (
    BackendRequest,
    BackendResponse,
    CompletedPart,
    CopyResult,
    CopySource,
    DeleteOutcome,
    IncomingRequest,
    ListPage,
    ListRequest,
    ObjectInfo,
    ObjectRead,
    ObjectResponse,
    ObjectWrite,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
)
from multistore.s3.errors import STATUS_OF, S3Error
from multistore.s3.xml import (
    S3_NAMESPACE,
    parse_complete_request,
    parse_delete_request,
)
from multistore.stores.common import MAX_ERROR_DOCUMENT
from multistore.stores.s3 import store as s3_module
from multistore.stores.s3.store import (
    MAX_RESULT_DOCUMENT,
    PART_SIZE,
    S3Store,
    forwarded_headers,
)
from multistore.stores.streaming import LastByteHeld
from multistore.testing import (
    Answer,
    CollectingConsumer,
    RecordingBody,
    ScriptedForwarder,
    respond,
)
from tests.unit.test_stores_streaming import (
    DROPPED_HEADERS,
    KEPT_HEADERS,
    BodyFailed,
    LengthEnforcing,
    MemoryBody,
    SteppedBody,
    pending,
)

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


def scripted(*answers: Answer, read_bodies: bool = False) -> ScriptedForwarder:
    """
    A L{ScriptedForwarder} that leaves request bodies unread (for the test
    to read, see L{document_of}) unless told to read them.
    """
    return ScriptedForwarder(*answers, read_bodies=read_bodies)


def uses_of(body: IBody) -> list[str]:
    """
    :return: how a response body handed out was released.
    """
    assert isinstance(body, RecordingBody), body
    return body.uses


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


def make_store(forwarder: ScriptedForwarder, **options: str) -> S3Store:
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


def signed_store(forwarder: ScriptedForwarder, **options: str) -> S3Store:
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

    def assert_settled(
        self, forwarder: ScriptedForwarder, returned: object = None
    ) -> None:
        """
        Every response body handed out was delivered or discarded exactly
        once, except ``returned`` (the body the store gave back), which was
        left untouched.
        """
        self.assertTrue(forwarder.bodies, "no response was handed out")
        for body in forwarder.bodies:
            if body is returned:
                self.assertEqual(uses_of(body), [], "a returned body was consumed")
            else:
                self.assertIn(uses_of(body), (["deliver"], ["discard"]))

    def assert_verifies(
        self,
        request: BackendRequest,
        secret: str = SECRET,
        region: str = "eu-west-2",
        payload_hash: str = EMPTY_SHA256,
    ) -> None:
        """
        ``request`` carries a SigV4 signature that verifies for ``secret``
        at L{NOW} over ``payload_hash``, and verifies in the normalised
        canonical form a strict backend computes (the path decoded and
        re-encoded), with every header it carries signed.
        """
        incoming = received(request)
        auth = parse_authorization(request.headers.get("authorization") or "")
        self.assertEqual(
            (auth.access_key_id, auth.date, auth.region, auth.service),
            (AKID, AMZ_DATE[:8], region, "s3"),
        )
        self.assertEqual(request.headers.get("x-amz-content-sha256"), payload_hash)
        verify_header_auth(incoming, auth, secret, NOW_DATETIME)
        creq = canonical_request(
            request.method,
            canonical_uri(incoming.raw_path.decode("ascii")),
            canonical_query(incoming.raw_query.decode("ascii")),
            request.headers,
            auth.signed_headers,
            payload_hash,
        )
        key = signing_key(secret, auth.date, auth.region, auth.service)
        self.assertEqual(
            compute_signature(key, string_to_sign(AMZ_DATE, auth.scope, creq)),
            auth.signature,
        )
        unsigned = request.headers.names() - set(auth.signed_headers)
        self.assertEqual(unsigned, {"authorization"})

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
        forwarder = scripted(response)
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
        forwarder = scripted()
        verifyObject(IForwarder, forwarder)
        verifyObject(IObjectStore, make_store(forwarder))

    def test_recording_body_records(self) -> None:
        """
        A recording body records its delivery and its discards, and refuses a
        delivery after a discard as any body does.
        """
        delivered = RecordingBody(b"abc")
        discarded = RecordingBody(b"abc")
        discarded.discard()
        self.assertEqual(discarded.uses, ["discard"])
        discarded.discard()
        self.assertEqual(discarded.uses, ["discard", "discard"])
        self.assertEqual(delivered.length, 3)
        self.assertIsNone(RecordingBody(b"abc", length=None).length)

        sink = CollectingConsumer()
        self.assertEqual(self.successResultOf(delivered.deliver(sink)), 3)
        self.assertEqual((sink.value(), delivered.uses), (b"abc", ["deliver"]))
        self.assertRaises(RuntimeError, discarded.deliver, CollectingConsumer())

    def test_assert_settled_can_fail(self) -> None:
        """
        L{StoreTestCase.assert_settled} notices a body left unreleased.
        """
        forwarder = scripted(respond(200, body=b"x"))
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
        store = make_store(scripted())
        self.assertEqual(
            store.url("dir/file.txt"), f"{ENDPOINT}/{BACKEND_BUCKET}/dir/file.txt"
        )

    def test_odd_keys(self) -> None:
        """
        Odd keys are encoded as AWS encodes them in the URL the store sends.
        """
        for key, encoded in ODD_KEYS:
            forwarder = scripted(respond(200, body=b"x"))
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
        url = make_store(scripted()).url(key)
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
            make_store(scripted()).url(None), f"{ENDPOINT}/{BACKEND_BUCKET}"
        )

    def test_endpoint_trailing_slash(self) -> None:
        """
        A trailing ``/`` on the endpoint does not double the slash.
        """
        store = make_store(scripted(), endpoint=ENDPOINT + "/")
        self.assertEqual(store.url("k"), f"{ENDPOINT}/{BACKEND_BUCKET}/k")

    def test_query(self) -> None:
        """
        Query parameters are encoded with the AWS rule, ``/`` included.
        """
        store = make_store(scripted())
        self.assertEqual(
            store.url("k", [("prefix", "a b/+=&")]),
            f"{ENDPOINT}/{BACKEND_BUCKET}/k?prefix=a%20b%2F%2B%3D%26",
        )

    def test_virtual_hosted(self) -> None:
        """
        With ``virtual_hosted_style_request`` the bucket is part of the host
        name and the path is the key alone.
        """
        store = make_store(scripted(), virtual_hosted_style_request="true")
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
        store = make_store(scripted(), virtual_hosted_style_request="false")
        self.assertEqual(store.url("k"), f"{ENDPOINT}/{BACKEND_BUCKET}/k")

    def test_default_endpoint(self) -> None:
        """
        Without an endpoint, requests go to AWS in the bucket's region.
        """
        store = make_store(scripted(), endpoint="")
        self.assertEqual(
            store.url("k"), f"https://s3.eu-west-2.amazonaws.com/{BACKEND_BUCKET}/k"
        )
        hosted = make_store(
            scripted(), endpoint="", virtual_hosted_style_request="true"
        )
        self.assertEqual(
            hosted.url("k"), f"https://{BACKEND_BUCKET}.s3.eu-west-2.amazonaws.com/k"
        )

    def test_default_region(self) -> None:
        """
        Without a region either, the region is ``us-east-1``.
        """
        store = make_store(scripted(), endpoint="", region="")
        self.assertEqual(
            store.url("k"), f"https://s3.us-east-1.amazonaws.com/{BACKEND_BUCKET}/k"
        )


# --- signing -----------------------------------------------------------------


class SigningTests(StoreTestCase):
    """
    Requests are signed with SigV4 when the bucket has backend credentials.
    """

    def test_signed_get(self) -> None:
        """
        A GET carries ``host``, ``x-amz-date`` (from the clock),
        ``x-amz-content-sha256`` and an ``authorization`` that verifies.
        """
        forwarder = scripted(respond(200, body=b"x"))
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
        forwarder = scripted(respond(200, body=b"x"))
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
                forwarder = scripted(respond(200))
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
        forwarder = scripted(respond(200, body=b"x"))
        self.successResultOf(signed_store(forwarder).get_object(ObjectRead(key=key)))
        self.assert_verifies(forwarder.request)

    def test_listing_verifies(self) -> None:
        """
        A listing with odd parameters verifies.
        """
        forwarder = scripted(respond(200, body=listing_document()))
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
        forwarder = scripted(respond(200, body=b"x"))
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
        forwarder = scripted(respond(200, body=b"x"))
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
        forwarder = scripted(respond(200, body=b"x"))
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
        forwarder = scripted(respond(200))
        self.successResultOf(signed_store(forwarder).head_bucket())
        self.assertEqual(forwarder.request.method, "HEAD")
        self.assert_verifies(forwarder.request)

    def assert_unsigned(self, store_options: dict[str, str]) -> None:
        """
        A store with these options sends its requests unsigned.
        """
        forwarder = scripted(respond(200, body=b"x"), respond(200))
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
        forwarder = scripted(respond(200, body=b"x"))
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
            forwarder = scripted(respond(206))
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
        forwarder = scripted(respond(200, body=b"x"))
        self.successResultOf(make_store(forwarder).get_object(ObjectRead(key="k")))
        self.assertEqual(forwarder.request.headers, HeaderList())
        self.assertEqual(forwarder.request.url, f"{ENDPOINT}/{BACKEND_BUCKET}/k")

    def test_get(self) -> None:
        """
        A 200 comes back with the allowed headers and the backend's body,
        untouched.
        """
        response = respond(200, [*DROPPED_HEADERS, *KEPT_HEADERS], b"0123456789")
        forwarder = scripted(response)
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
        forwarder = scripted(response)
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
        forwarder = scripted(respond(200, [*KEPT_HEADERS, *DROPPED_HEADERS]))
        result = self.successResultOf(
            make_store(forwarder).get_object(ObjectRead(key="k", head=True))
        )
        self.assertEqual(result, ObjectResponse(200, HeaderList(KEPT_HEADERS)))
        self.assertIsNone(result.body)
        self.assertEqual(uses_of(forwarder.bodies[0]), ["discard"])

    def test_not_modified(self) -> None:
        """
        A 304 comes back without a body, with the allowed headers; whatever
        body the backend sent is discarded.
        """
        for head in (False, True):
            forwarder = scripted(
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
            self.assertEqual(uses_of(forwarder.bodies[0]), ["discard"])

    def test_forwarder_failure(self) -> None:
        """
        The forwarder's own failures (backend unreachable, timed out) reach
        the caller as they are.
        """
        for code in ("ServiceUnavailable", "GatewayTimeout"):
            forwarder = scripted(S3Error(code))
            error = self.error_of(make_store(forwarder).get_object(ObjectRead(key="k")))
            self.assertEqual(error.code, code)

    def test_cancel(self) -> None:
        """
        Cancelling a read while the backend has not answered cancels the
        backend request.
        """
        cancelled: list[Deferred[object]] = []
        pending: Deferred[object] = Deferred(cancelled.append)
        forwarder = scripted(pending)
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
        forwarder = scripted(respond(404, body=error_document("NoSuchKey")))
        self.error_of(make_store(forwarder).get_object(ObjectRead(key="k", head=True)))
        self.assertEqual(uses_of(forwarder.bodies[0]), ["discard"])

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
        forwarder = scripted(respond(404, body=b"x", length=MAX_ERROR_DOCUMENT + 1))
        error = self.error_of(make_store(forwarder).get_object(ObjectRead(key="k")))
        self.assertEqual(error.code, "NoSuchKey")
        self.assertEqual(uses_of(forwarder.bodies[0]), ["discard"])

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
        forwarder = scripted(respond(200, body=listing_document()))
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
        forwarder = scripted(respond(200, body=listing_document()))
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
        forwarder = scripted(respond(200, body=listing_document()))
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
        forwarder = scripted(respond(200, body=listing_document()))
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
        self.assertEqual(uses_of(forwarder.bodies[0]), ["deliver"])

    def test_last_page(self) -> None:
        """
        A last page has no ``next_token``.
        """
        forwarder = scripted(
            respond(200, body=listing_document(truncated=False, token=None))
        )
        page = self.successResultOf(make_store(forwarder).list_objects(ListRequest()))
        self.assertEqual((page.truncated, page.next_token), (False, None))

    def test_invalid_listing(self) -> None:
        """
        An answer that is not a listing is ``ServiceUnavailable``; its body
        was read.
        """
        forwarder = scripted(respond(200, body=b"<html>hello</html>"))
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
            forwarder = scripted(response)
            error = self.error_of(make_store(forwarder).list_objects(ListRequest()))
            self.assertEqual(error.code, code)
            self.assert_no_backend_detail(error)
            self.assert_settled(forwarder)

    def test_not_found_empty(self) -> None:
        """
        A listing the backend answers 404 with an empty body is
        ``NoSuchBucket``: a listing has no key to be missing.
        """
        forwarder = scripted(respond(404))
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
            forwarder = scripted(respond(404, body=body, length=length))
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
        forwarder = scripted(respond(200, [("x-amz-bucket-region", "x")]))
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
        forwarder = scripted(respond(404, body=error_document("NoSuchBucket")))
        error = self.error_of(make_store(forwarder).head_bucket())
        self.assertEqual((error.code, error.status), ("NoSuchBucket", 404))
        self.assert_no_backend_detail(error)
        self.assert_settled(forwarder)

    def test_forbidden(self) -> None:
        """
        A 403 is ``AccessDenied``, blaming the backend store.
        """
        forwarder = scripted(respond(403))
        error = self.error_of(make_store(forwarder).head_bucket())
        self.assertEqual((error.code, error.status), ("AccessDenied", 403))
        self.assertIn("backend store", error.message)
        self.assert_settled(forwarder)

    def test_failed(self) -> None:
        """
        A 500 is ``ServiceUnavailable``; a forwarder failure is passed on.
        """
        forwarder = scripted(respond(500), S3Error("GatewayTimeout"))
        store = make_store(forwarder)
        self.assertEqual(self.error_of(store.head_bucket()).code, "ServiceUnavailable")
        self.assertEqual(self.error_of(store.head_bucket()).code, "GatewayTimeout")
        self.assert_settled(forwarder)


# --- writes: helpers ---------------------------------------------------------


def write_of(
    data: bytes = b"data", headers: Sequence[tuple[str, str]] = (), **kwargs: Any
) -> ObjectWrite:
    """
    A write of ``data`` to the key ``the key``.
    """
    return ObjectWrite(
        key="the key", body=MemoryBody(data, **kwargs), headers=HeaderList(headers)
    )


def query_of(request: BackendRequest) -> list[tuple[str, str]]:
    """
    The decoded query parameters of a request, in order (a bare name has an
    empty value).
    """
    return parse_qsl(urlsplit(request.url).query, keep_blank_values=True)


def path_of(request: BackendRequest) -> str:
    """
    The request's path, as sent.
    """
    return urlsplit(request.url).path


def document_of(request: BackendRequest) -> bytes:
    """
    The in-memory body of a request.
    """
    assert request.body is not None
    sink = LengthEnforcing(request.body.length)
    request.body.startProducing(sink)
    return sink.value()


def copy_result(root: str = "CopyObjectResult", etag: str = '"abc"') -> bytes:
    """
    A backend's copy answer.
    """
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{S3_NAMESPACE}">'
        f"<LastModified>2024-01-02T03:04:05.000Z</LastModified>"
        f"<ETag>{etag}</ETag></{root}>"
    ).encode()


#: Object headers a client may set, all passed on to the backend by a PUT.
OBJECT_WRITE_HEADERS = (
    ("content-type", "text/plain; charset=utf-8"),
    ("content-encoding", "gzip"),
    ("content-disposition", 'attachment; filename="a b.txt"'),
    ("content-language", "fr"),
    ("cache-control", "max-age=60"),
    ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
    ("x-amz-meta-owner", "Zoë"),
    ("x-amz-meta-empty", ""),
    ("x-amz-tagging", "a=1&b=2"),
    ("x-amz-storage-class", "STANDARD_IA"),
    ("x-amz-server-side-encryption", "AES256"),
    ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
    ("x-amz-website-redirect-location", "/other"),
    ("x-amz-object-lock-mode", "GOVERNANCE"),
)

#: Request headers never passed on: credentials, framing, ACLs, the
#: client's own payload hash, hop-by-hop fields.
NEVER_FORWARDED = (
    ("authorization", "AWS4-HMAC-SHA256 Credential=CLIENT/..."),
    ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
    ("x-amz-date", "20200101T000000Z"),
    ("x-amz-security-token", "client-token"),
    ("x-amz-decoded-content-length", "4"),
    ("x-amz-trailer", "x-amz-checksum-crc32"),
    ("x-amz-acl", "public-read"),
    ("x-amz-grant-read", "uri=http://acs.amazonaws.com/groups/global/AllUsers"),
    ("x-amz-expected-bucket-owner", "123456789012"),
    ("x-amz-request-payer", "requester"),
    ("host", "gateway.test"),
    ("content-length", "4"),
    ("transfer-encoding", "chunked"),
    ("connection", "keep-alive"),
    ("expect", "100-continue"),
    ("user-agent", "client/1"),
    ("x-forwarded-for", "10.0.0.1"),
)


# --- the request headers a write passes on -----------------------------------


class ForwardedHeadersTests(SynchronousTestCase):
    """
    L{forwarded_headers} chooses the request headers that cross from client
    to backend.
    """

    def test_put_allow_list(self) -> None:
        """
        A PUT passes on the object's headers, its digests and conditions, in
        order, and nothing else.
        """
        wanted = [
            *OBJECT_WRITE_HEADERS,
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
            ("if-match", '"abc"'),
            ("if-none-match", "*"),
        ]
        headers = HeaderList([*NEVER_FORWARDED[:8], *wanted, *NEVER_FORWARDED[8:]])
        self.assertEqual(
            forwarded_headers(headers, s3_module._PUT_HEADERS), HeaderList(wanted)
        )

    def test_aws_chunked(self) -> None:
        """
        ``aws-chunked`` is the client's framing, not the object's coding: it
        is removed from ``content-encoding``, and the header goes if nothing
        is left.
        """
        for value, expected in (
            ("aws-chunked", None),
            ("AWS-Chunked , gzip", "gzip"),
            ("gzip,aws-chunked", "gzip"),
            ("gzip, br", "gzip, br"),
            (" , ", None),
        ):
            headers = HeaderList([("content-encoding", value)])
            result = forwarded_headers(headers, s3_module._PUT_HEADERS)
            self.assertEqual(result.get("content-encoding"), expected, value)

    def test_sdk_checksum_algorithm(self) -> None:
        """
        ``x-amz-sdk-checksum-algorithm`` goes on only with the checksum
        header it names (a trailing checksum was verified by the gateway and
        is not sent on).
        """
        alone = HeaderList([("x-amz-sdk-checksum-algorithm", "CRC32")])
        self.assertEqual(len(forwarded_headers(alone, s3_module._PUT_HEADERS)), 0)
        other = alone.plus([("x-amz-checksum-sha256", "x")])
        self.assertEqual(
            forwarded_headers(other, s3_module._PUT_HEADERS),
            HeaderList([("x-amz-checksum-sha256", "x")]),
        )
        matched = HeaderList(
            [("x-amz-sdk-checksum-algorithm", "crc32c"), ("x-amz-checksum-crc32c", "y")]
        )
        self.assertEqual(forwarded_headers(matched, s3_module._PUT_HEADERS), matched)

    @given(
        st.lists(st.tuples(st.sampled_from([n for n, _ in NEVER_FORWARDED]), st.text()))
    )
    def test_never_forwarded(self, fields: list[tuple[str, str]]) -> None:
        """
        Whatever the mix, credentials, framing and ACL headers never go on,
        for any kind of write.
        """
        for allowed in (
            s3_module._PUT_HEADERS,
            s3_module._PART_HEADERS,
            s3_module._CREATE_UPLOAD_HEADERS,
            s3_module._COMPLETE_HEADERS,
            s3_module._COPY_HEADERS,
        ):
            self.assertEqual(len(forwarded_headers(HeaderList(fields), allowed)), 0)


# --- PutObject ---------------------------------------------------------------


class PutObjectTests(StoreTestCase):
    """
    L{S3Store.put_object} streams a body to the backend.
    """

    def test_request(self) -> None:
        """
        A PUT of the key, without a query, with the allowed headers in
        order and the body wrapped so its length is the upload's.
        """
        forwarder = scripted(respond(200, [("etag", '"e"')]))
        write = write_of(b"hello", [*NEVER_FORWARDED, *OBJECT_WRITE_HEADERS])
        self.successResultOf(make_store(forwarder).put_object(write))
        request = forwarder.request
        self.assertEqual(
            (request.method, request.url),
            ("PUT", f"{ENDPOINT}/{BACKEND_BUCKET}/the%20key"),
        )
        self.assertEqual(request.headers, HeaderList(OBJECT_WRITE_HEADERS))
        assert request.body is not None
        self.assertIsInstance(request.body, LastByteHeld)
        self.assertEqual(request.body.length, 5)
        self.assertEqual(document_of(request), b"hello")

    def test_signed(self) -> None:
        """
        A signed PUT signs every header it sends, with the payload
        ``UNSIGNED-PAYLOAD``.
        """
        for key, _ in ODD_KEYS:
            forwarder = scripted(respond(200))
            write = ObjectWrite(
                key=key,
                body=MemoryBody(b"x"),
                headers=HeaderList([*OBJECT_WRITE_HEADERS, ("if-none-match", "*")]),
            )
            self.successResultOf(signed_store(forwarder).put_object(write))
            self.assert_verifies(forwarder.request, payload_hash="UNSIGNED-PAYLOAD")

    def test_response(self) -> None:
        """
        The answer is a 200 with the allowed headers of the backend's; its
        body is discarded.
        """
        forwarder = scripted(
            respond(
                200,
                [
                    *DROPPED_HEADERS,
                    ("content-length", "0"),
                    ("etag", '"e"'),
                    ("x-amz-version-id", "v1"),
                    ("x-amz-checksum-crc32", "AAAAAA=="),
                ],
            )
        )
        response = self.successResultOf(make_store(forwarder).put_object(write_of()))
        self.assertEqual(
            response,
            ObjectResponse(
                200,
                HeaderList(
                    [
                        ("etag", '"e"'),
                        ("x-amz-version-id", "v1"),
                        ("x-amz-checksum-crc32", "AAAAAA=="),
                    ]
                ),
            ),
        )
        self.assertIsNone(response.body)
        self.assertEqual(uses_of(forwarder.bodies[0]), ["discard"])

    def test_streamed_through(self) -> None:
        """
        Through a transport that reads the body, every byte arrives.
        """
        forwarder = scripted(respond(200), read_bodies=True)
        write = ObjectWrite(key="k", body=MemoryBody(chunks=[b"ab", b"", b"cd", b"e"]))
        self.successResultOf(make_store(forwarder).put_object(write))
        self.assertEqual(forwarder.uploads, [b"abcde"])

    def test_body_fails(self) -> None:
        """
        A body that fails, however late, fails the put with its own failure
        and the transport never gets its last byte.
        """
        forwarder = scripted(respond(200), read_bodies=True)
        write = write_of(b"abcdef", fail=True)
        failure = self.failureResultOf(
            make_store(forwarder).put_object(write), BodyFailed
        )
        assert isinstance(write.body, MemoryBody)
        self.assertIs(failure.value, write.body.error)
        self.assertEqual(forwarder.uploads, [b"abcde"])

    def test_unknown_length(self) -> None:
        """
        A short body of unknown length is one PUT, sent with its length once
        the body has ended (see L{UnknownLengthPutTests}).
        """
        forwarder = scripted(respond(200, [("etag", '"e"')]), read_bodies=True)
        write = write_of(b"abc", OBJECT_WRITE_HEADERS, length=UNKNOWN_LENGTH)
        response = self.successResultOf(make_store(forwarder).put_object(write))
        self.assertEqual(response, ObjectResponse(200, HeaderList([("etag", '"e"')])))
        request = forwarder.request
        self.assertEqual((request.method, query_of(request)), ("PUT", []))
        self.assertEqual(request.headers, HeaderList(OBJECT_WRITE_HEADERS))
        assert request.body is not None
        self.assertEqual(request.body.length, 3)
        self.assertEqual(forwarder.uploads, [b"abc"])

    def test_empty(self) -> None:
        """
        An empty body is read to its end before the request is sent (a
        store completes an empty upload on seeing the headers), and the
        request goes without one.
        """
        forwarder = scripted(respond(200, [("etag", '"d41d"')]))
        write = write_of(b"", pending=True)
        putting = make_store(forwarder).put_object(write)
        self.assertEqual(forwarder.requests, [])
        assert isinstance(write.body, MemoryBody)
        write.body.done.callback(None)
        self.successResultOf(putting)
        self.assertIsNone(forwarder.request.body)

    def test_empty_fails(self) -> None:
        """
        An empty body that fails fails the put before anything is sent; one
        that turns out not to be empty is ``IncompleteBody``.
        """
        forwarder = scripted()
        store = make_store(forwarder)
        self.failureResultOf(store.put_object(write_of(b"", fail=True)), BodyFailed)
        error = self.error_of(store.put_object(write_of(b"surprise", length=0)))
        self.assertEqual(error.code, "IncompleteBody")
        self.assertEqual(forwarder.requests, [])

    def test_errors(self) -> None:
        """
        The backend's refusals reach the client by their code, with
        multistore's message; its own failures are ``ServiceUnavailable``;
        every response body is released.
        """
        cases = [
            (
                respond(412, body=error_document("PreconditionFailed")),
                "PreconditionFailed",
            ),
            (respond(412), "PreconditionFailed"),
            (respond(400, body=error_document("BadDigest")), "BadDigest"),
            (respond(400, body=error_document("InvalidDigest")), "InvalidDigest"),
            (
                respond(400, body=error_document("XAmzContentSHA256Mismatch")),
                "XAmzContentSHA256Mismatch",
            ),
            (respond(400, body=error_document("EntityTooLarge")), "EntityTooLarge"),
            (respond(404, body=error_document("NoSuchBucket")), "NoSuchBucket"),
            (respond(404), "NoSuchBucket"),
            (respond(403, body=error_document("AccessDenied")), "AccessDenied"),
            (
                respond(409, body=error_document("OperationAborted")),
                "ServiceUnavailable",
            ),
            (respond(500, body=error_document("InternalError")), "ServiceUnavailable"),
            (respond(503, body=error_document("SlowDown")), "SlowDown"),
            (respond(501, body=error_document("NotImplemented")), "NotImplemented"),
        ]
        for response, code in cases:
            forwarder = scripted(response)
            error = self.error_of(make_store(forwarder).put_object(write_of()))
            self.assertEqual(error.code, code)
            self.assertEqual(error.status, STATUS_OF[code])
            self.assert_no_backend_detail(error)
            self.assert_settled(forwarder)

    def test_forwarder_failure(self) -> None:
        """
        The transport's own failures reach the caller as they are.
        """
        for code in ("ServiceUnavailable", "GatewayTimeout"):
            forwarder = scripted(S3Error(code))
            error = self.error_of(make_store(forwarder).put_object(write_of()))
            self.assertEqual(error.code, code)

    def test_virtual_hosted(self) -> None:
        """
        A virtual-hosted PUT goes to the bucket's host.
        """
        forwarder = scripted(respond(200))
        store = signed_store(forwarder, virtual_hosted_style_request="true")
        self.successResultOf(store.put_object(write_of()))
        self.assertEqual(
            forwarder.request.url,
            f"http://{BACKEND_BUCKET}.backend.test:9000/the%20key",
        )
        self.assert_verifies(forwarder.request, payload_hash="UNSIGNED-PAYLOAD")


# --- multipart uploads -------------------------------------------------------


def initiate_result(upload_id: str = "up/load+id==") -> bytes:
    """
    A backend's CreateMultipartUpload answer.
    """
    return (
        f'<InitiateMultipartUploadResult xmlns="{S3_NAMESPACE}">'
        f"<Bucket>{BACKEND_BUCKET}</Bucket><Key>backend-prefix/k</Key>"
        f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>"
    ).encode()


class MultipartTests(StoreTestCase):
    """
    CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
    AbortMultipartUpload and ListParts.
    """

    def test_create(self) -> None:
        """
        A POST of ``?uploads`` with the object's headers (not its digest or
        conditions), signed over the empty payload; the upload id comes
        back.
        """
        forwarder = scripted(respond(200, body=initiate_result()))
        headers = HeaderList(
            [
                *NEVER_FORWARDED,
                *OBJECT_WRITE_HEADERS,
                ("content-md5", "x"),
                ("if-none-match", "*"),
                ("x-amz-checksum-algorithm", "CRC32"),
                ("x-amz-checksum-type", "COMPOSITE"),
                ("x-amz-checksum-crc32", "not for a create"),
            ]
        )
        upload_id = self.successResultOf(
            signed_store(forwarder).create_multipart_upload("a b", headers)
        )
        self.assertEqual(upload_id, "up/load+id==")
        request = forwarder.request
        self.assertEqual(request.method, "POST")
        self.assertEqual(request.url, f"{ENDPOINT}/{BACKEND_BUCKET}/a%20b?uploads")
        self.assertIsNone(request.body)
        self.assertEqual(
            request.headers.without(
                "host", "x-amz-date", "x-amz-content-sha256", "authorization"
            ),
            HeaderList(
                [
                    *OBJECT_WRITE_HEADERS,
                    ("x-amz-checksum-algorithm", "CRC32"),
                    ("x-amz-checksum-type", "COMPOSITE"),
                ]
            ),
        )
        self.assert_verifies(request)
        self.assert_settled(forwarder)

    def test_create_errors(self) -> None:
        """
        An answer that is not an upload is ``ServiceUnavailable``; a missing
        bucket is ``NoSuchBucket``.
        """
        for response, code in (
            (respond(200, body=b"<html/>"), "ServiceUnavailable"),
            (respond(404), "NoSuchBucket"),
            (respond(403), "AccessDenied"),
        ):
            forwarder = scripted(response)
            error = self.error_of(
                make_store(forwarder).create_multipart_upload("k", HeaderList())
            )
            self.assertEqual(error.code, code)
            self.assert_settled(forwarder)

    def test_upload_part(self) -> None:
        """
        A part is a PUT with ``partNumber`` and ``uploadId``, carrying only
        the part's digests and encryption key; the ETag comes back.
        """
        forwarder = scripted(respond(200, [("etag", '"p1"'), ("server", "s")]))
        part_headers = [
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
            ("x-amz-server-side-encryption-customer-key", "a2V5"),
        ]
        write = write_of(
            b"part", [*OBJECT_WRITE_HEADERS, *part_headers, ("if-match", "x")]
        )
        response = self.successResultOf(
            signed_store(forwarder).upload_part(write, "up/load+id==", 7)
        )
        self.assertEqual(response, ObjectResponse(200, HeaderList([("etag", '"p1"')])))
        request = forwarder.request
        self.assertEqual(
            (request.method, path_of(request)), ("PUT", f"/{BACKEND_BUCKET}/the%20key")
        )
        self.assertEqual(
            query_of(request), [("partNumber", "7"), ("uploadId", "up/load+id==")]
        )
        self.assertIn("uploadId=up%2Fload%2Bid%3D%3D", request.url)
        self.assertEqual(
            request.headers.without(
                "host", "x-amz-date", "x-amz-content-sha256", "authorization"
            ),
            HeaderList(
                [
                    ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
                    *part_headers,
                ]
            ),
        )
        self.assertEqual(document_of(request), b"part")
        self.assert_verifies(request, payload_hash="UNSIGNED-PAYLOAD")

    def test_upload_part_errors(self) -> None:
        """
        An unknown upload is ``NoSuchUpload``, with or without a document;
        a part body that fails fails the part with its own failure.
        """
        for response in (
            respond(404, body=error_document("NoSuchUpload")),
            respond(404),
        ):
            forwarder = scripted(response)
            error = self.error_of(make_store(forwarder).upload_part(write_of(), "u", 1))
            self.assertEqual((error.code, error.status), ("NoSuchUpload", 404))
            self.assert_settled(forwarder)
        forwarder = scripted(respond(200), read_bodies=True)
        self.failureResultOf(
            make_store(forwarder).upload_part(write_of(b"ab", fail=True), "u", 1),
            BodyFailed,
        )
        self.assertEqual(forwarder.uploads, [b"a"])

    def complete(
        self, response: BackendResponse, headers: Sequence[tuple[str, str]] = ()
    ) -> tuple[ScriptedForwarder, Deferred[CopyResult]]:
        """
        Complete an upload of two parts against a backend that answers
        ``response``.
        """
        forwarder = scripted(response)
        parts = [
            CompletedPart(1, '"e1"', (("CRC32", "AAAAAA=="),)),
            CompletedPart(3, '"e3"'),
        ]
        completing = signed_store(forwarder).complete_multipart_upload(
            "a b", "up/load", parts, HeaderList(headers)
        )
        return forwarder, completing

    def test_complete(self) -> None:
        """
        A POST of ``?uploadId`` with the parts as XML, its SHA-256 signed,
        and the conditions and full-object checksum passed on; the ETag
        comes back with the clock's time and the allowed headers.
        """
        document = (
            f'<CompleteMultipartUploadResult xmlns="{S3_NAMESPACE}">'
            f"<Location>http://backend/{BACKEND_BUCKET}/a%20b</Location>"
            f"<Bucket>{BACKEND_BUCKET}</Bucket><Key>a b</Key>"
            "<ETag>&quot;abc-2&quot;</ETag></CompleteMultipartUploadResult>"
        ).encode()
        headers = [
            ("if-none-match", "*"),
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amz-mp-object-size", "12"),
            ("content-type", "text/plain"),
            ("x-amz-meta-late", "no"),
        ]
        forwarder, completing = self.complete(
            respond(200, [("x-amz-version-id", "v9"), *DROPPED_HEADERS], document),
            headers,
        )
        result = self.successResultOf(completing)
        self.assertEqual(
            result,
            CopyResult(
                '"abc-2"', NOW_DATETIME, HeaderList([("x-amz-version-id", "v9")])
            ),
        )
        request = forwarder.request
        self.assertEqual(
            (request.method, request.url),
            ("POST", f"{ENDPOINT}/{BACKEND_BUCKET}/a%20b?uploadId=up%2Fload"),
        )
        body = document_of(request)
        self.assertEqual(
            parse_complete_request(body),
            [
                CompletedPart(1, '"e1"', (("CRC32", "AAAAAA=="),)),
                CompletedPart(3, '"e3"'),
            ],
        )
        self.assertEqual(
            request.headers.without(
                "host", "x-amz-date", "x-amz-content-sha256", "authorization"
            ),
            HeaderList(headers[:3]),
        )
        self.assert_verifies(request, payload_hash=hashlib.sha256(body).hexdigest())
        self.assert_settled(forwarder)

    def test_complete_failed_late(self) -> None:
        """
        S3 may answer a completion ``200 OK`` and fail it in an error
        document: the error is mapped like any other, its message and
        details never shown.
        """
        for code, expected in (
            ("InvalidPart", "InvalidPart"),
            ("EntityTooSmall", "EntityTooSmall"),
            ("InternalError", "ServiceUnavailable"),
            ("AccessDenied", "AccessDenied"),
            ("SlowDown", "SlowDown"),
        ):
            forwarder, completing = self.complete(
                respond(200, body=error_document(code))
            )
            error = self.error_of(completing)
            self.assertEqual(
                (error.code, error.status), (expected, STATUS_OF[expected])
            )
            self.assert_no_backend_detail(error)
            self.assert_settled(forwarder)

    def test_complete_errors(self) -> None:
        """
        Other failures: an unknown upload, a condition, an answer that is
        not a completion.
        """
        for response, code in (
            (respond(404), "NoSuchUpload"),
            (respond(404, body=error_document("NoSuchUpload")), "NoSuchUpload"),
            (respond(412), "PreconditionFailed"),
            (respond(400, body=error_document("InvalidPartOrder")), "InvalidPartOrder"),
            (respond(400, body=error_document("MalformedXML")), "MalformedXML"),
            (respond(200, body=b"<whatever/>"), "ServiceUnavailable"),
            (
                respond(200, body=b"x", length=MAX_RESULT_DOCUMENT + 1),
                "ServiceUnavailable",
            ),
        ):
            forwarder, completing = self.complete(response)
            self.assertEqual(self.error_of(completing).code, code)
            self.assert_settled(forwarder)

    def test_abort(self) -> None:
        """
        An abort is a DELETE of ``?uploadId``; 204 (or 200) is done, 404 is
        ``NoSuchUpload``.
        """
        for status in (204, 200):
            forwarder = scripted(respond(status))
            self.assertIsNone(
                self.successResultOf(
                    signed_store(forwarder).abort_multipart_upload("k", "u+1")
                )
            )
            request = forwarder.request
            self.assertEqual(
                (request.method, request.url),
                ("DELETE", f"{ENDPOINT}/{BACKEND_BUCKET}/k?uploadId=u%2B1"),
            )
            self.assert_verifies(request)
            self.assert_settled(forwarder)
        forwarder = scripted(respond(404))
        error = self.error_of(make_store(forwarder).abort_multipart_upload("k", "u"))
        self.assertEqual(error.code, "NoSuchUpload")

    def test_list_parts(self) -> None:
        """
        ListParts is a GET with ``max-parts``, ``uploadId`` and, when not 0,
        ``part-number-marker``; the answer is parsed.
        """
        document = (
            f'<ListPartsResult xmlns="{S3_NAMESPACE}"><IsTruncated>true</IsTruncated>'
            "<NextPartNumberMarker>4</NextPartNumberMarker>"
            "<Part><PartNumber>4</PartNumber><LastModified>2024-01-02T03:04:05Z"
            "</LastModified><ETag>e4</ETag><Size>5242880</Size></Part>"
            "</ListPartsResult>"
        ).encode()
        for marker, expected in (
            (0, [("max-parts", "1"), ("uploadId", "u")]),
            (3, [("max-parts", "1"), ("part-number-marker", "3"), ("uploadId", "u")]),
        ):
            forwarder = scripted(respond(200, body=document))
            page = self.successResultOf(
                signed_store(forwarder).list_parts("k", "u", 1, marker)
            )
            self.assertEqual(
                page,
                PartsPage(
                    parts=(
                        PartInfo(
                            4,
                            '"e4"',
                            5242880,
                            datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                        ),
                    ),
                    truncated=True,
                    next_part_number_marker=4,
                ),
            )
            self.assertEqual(forwarder.request.method, "GET")
            self.assertEqual(query_of(forwarder.request), expected)
            self.assert_verifies(forwarder.request)
            self.assert_settled(forwarder)

    def test_list_parts_errors(self) -> None:
        """
        An unknown upload is ``NoSuchUpload``; a bad answer
        ``ServiceUnavailable``.
        """
        for response, code in (
            (respond(404), "NoSuchUpload"),
            (
                respond(200, body=b"<ListPartsResult><Part/></ListPartsResult>"),
                "ServiceUnavailable",
            ),
        ):
            forwarder = scripted(response)
            error = self.error_of(make_store(forwarder).list_parts("k", "u", 10, 0))
            self.assertEqual(error.code, code)
            self.assert_settled(forwarder)


def uploads_document(*keys: str, prefixes: Sequence[str] = ()) -> bytes:
    """
    A backend's ListMultipartUploads answer naming ``keys``.
    """
    uploads = "".join(
        f"<Upload><Key>{key}</Key><UploadId>id-{i}</UploadId>"
        f"<Initiated>2024-01-02T03:04:05.000Z</Initiated></Upload>"
        for i, key in enumerate(keys)
    )
    common = "".join(
        f"<CommonPrefixes><Prefix>{p}</Prefix></CommonPrefixes>" for p in prefixes
    )
    return (
        f'<ListMultipartUploadsResult xmlns="{S3_NAMESPACE}">'
        f"<IsTruncated>false</IsTruncated>{uploads}{common}"
        "</ListMultipartUploadsResult>"
    ).encode()


# --- bodies of unknown length ------------------------------------------------


def complete_result(etag: str = '"abc-3"') -> bytes:
    """
    A backend's CompleteMultipartUpload answer.
    """
    return (
        f'<CompleteMultipartUploadResult xmlns="{S3_NAMESPACE}">'
        f"<Location>http://backend/{BACKEND_BUCKET}/k</Location>"
        f"<Bucket>{BACKEND_BUCKET}</Bucket><Key>k</Key>"
        f"<ETag>{etag}</ETag></CompleteMultipartUploadResult>"
    ).encode()


def unknown_write(
    body: IBodyProducer, headers: Sequence[tuple[str, str]] = ()
) -> ObjectWrite:
    """
    A write of ``body`` to the key ``k``.
    """
    return ObjectWrite(key="k", body=body, headers=HeaderList(headers))


def describe(requests: Sequence[BackendRequest]) -> list[tuple[str, str]]:
    """
    The method and query of each request.
    """
    return [(r.method, urlsplit(r.url).query) for r in requests]


#: The requests of an upload in three parts, as L{describe} shows them.
THREE_PARTS = [
    ("POST", "uploads"),
    ("PUT", "partNumber=1&uploadId=up1"),
    ("PUT", "partNumber=2&uploadId=up1"),
    ("PUT", "partNumber=3&uploadId=up1"),
    ("POST", "uploadId=up1"),
]


class UnknownLengthPutTests(StoreTestCase):
    """
    L{S3Store.put_object} with a body of unknown length: one PUT for a body
    within a part, a multipart upload for a longer one, aborted on failure;
    the body paused while a part is full. Parts are 4 bytes here.
    """

    def setUp(self) -> None:
        self.patch(s3_module, "PART_SIZE", 4)

    def put(
        self,
        forwarder: ScriptedForwarder,
        body: IBodyProducer,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Deferred[ObjectResponse]:
        """
        Put ``body`` at ``k`` through a signed store.
        """
        return signed_store(forwarder).put_object(unknown_write(body, headers))

    def test_whole(self) -> None:
        """
        A body no longer than a part is sent once it has ended, as one PUT
        with its length and every header a PUT passes on.
        """
        headers = [
            *NEVER_FORWARDED,
            *OBJECT_WRITE_HEADERS,
            ("content-md5", "xxx"),
            ("if-none-match", "*"),
        ]
        for data in (b"a", b"abcd"):
            forwarder = scripted(
                respond(200, [("etag", '"e"'), *DROPPED_HEADERS]), read_bodies=True
            )
            body = SteppedBody()
            putting = self.put(forwarder, body, headers)
            body.send(data)
            self.assertEqual(forwarder.requests, [])
            body.finish()
            response = self.successResultOf(putting)
            self.assertEqual(
                response, ObjectResponse(200, HeaderList([("etag", '"e"')]))
            )
            request = forwarder.request
            self.assertEqual((request.method, query_of(request)), ("PUT", []))
            self.assertEqual(
                request.headers.without(
                    "host", "x-amz-date", "x-amz-content-sha256", "authorization"
                ),
                HeaderList(headers[len(NEVER_FORWARDED) :]),
            )
            assert request.body is not None
            self.assertEqual(request.body.length, len(data))
            self.assertEqual(forwarder.uploads, [data])
            self.assert_verifies(request, payload_hash="UNSIGNED-PAYLOAD")
            self.assertEqual(body.calls, [])

    def test_empty(self) -> None:
        """
        An empty body is a PUT without a body.
        """
        forwarder = scripted(respond(200))
        self.successResultOf(self.put(forwarder, MemoryBody(length=UNKNOWN_LENGTH)))
        self.assertIsNone(forwarder.request.body)

    def test_whole_fails(self) -> None:
        """
        A short body that fails fails the put with its own failure before
        anything is sent.
        """
        forwarder = scripted()
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(b"abc")
        body.fail()
        self.assertIs(self.failureResultOf(putting, BodyFailed).value, body.error)
        self.assertEqual(forwarder.requests, [])

    def test_whole_refused(self) -> None:
        """
        The backend's refusal of the PUT is mapped as for any PUT.
        """
        forwarder = scripted(respond(412))
        error = self.error_of(self.put(forwarder, MemoryBody(b"ab", length=None)))
        self.assertEqual(error.code, "PreconditionFailed")
        self.assert_settled(forwarder)

    def multipart(self, *answers: BackendResponse) -> ScriptedForwarder:
        """
        A forwarder that reads bodies and answers the create, three parts
        and the completion of upload ``up1`` (or ``answers``).
        """
        return scripted(
            *(
                answers
                or (
                    respond(200, body=initiate_result("up1")),
                    respond(200, [("etag", '"e1"')]),
                    respond(200, [("etag", '"e2"')]),
                    respond(200, [("etag", '"e3"')]),
                    respond(200, [("x-amz-version-id", "v1")], complete_result()),
                )
            ),
            read_bodies=True,
        )

    def test_in_parts(self) -> None:
        """
        A longer body is a multipart upload: created with the object's
        headers, a part per 4 bytes with its length and only the customer's
        key, signed ``UNSIGNED-PAYLOAD``, completed with the parts' ETags
        and the conditions; the answer has the upload's ETag.
        """
        algorithm = ("x-amz-server-side-encryption-customer-algorithm", "AES256")
        self.assertIn(algorithm, OBJECT_WRITE_HEADERS)
        key = ("x-amz-server-side-encryption-customer-key", "a2V5")
        conditions = [("if-none-match", "*"), ("if-match", '"old"')]
        headers = [
            *NEVER_FORWARDED,
            *OBJECT_WRITE_HEADERS,
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
            *conditions,
            key,
        ]
        forwarder = self.multipart()
        body = SteppedBody()
        putting = self.put(forwarder, body, headers)
        body.send(b"abc", b"def", b"ghi", b"j")
        self.assertEqual(describe(forwarder.requests), THREE_PARTS[:3])
        body.finish()
        response = self.successResultOf(putting)
        self.assertEqual(
            response,
            ObjectResponse(
                200, HeaderList([("etag", '"abc-3"'), ("x-amz-version-id", "v1")])
            ),
        )
        self.assertEqual(describe(forwarder.requests), THREE_PARTS)
        create, *parts, complete = forwarder.requests
        self.assertEqual(
            create.headers.without(
                "host", "x-amz-date", "x-amz-content-sha256", "authorization"
            ),
            HeaderList([*OBJECT_WRITE_HEADERS, key]),
        )
        self.assert_verifies(create)
        document = document_of(complete)
        self.assertEqual(forwarder.uploads, [b"abcd", b"efgh", b"ij", document])
        for part, length in zip(parts, (4, 4, 2), strict=True):
            self.assertEqual(path_of(part), f"/{BACKEND_BUCKET}/k")
            self.assertEqual(
                part.headers.without(
                    "host", "x-amz-date", "x-amz-content-sha256", "authorization"
                ),
                HeaderList([algorithm, key]),
            )
            assert part.body is not None
            self.assertEqual(part.body.length, length)
            self.assert_verifies(part, payload_hash="UNSIGNED-PAYLOAD")
        self.assertEqual(
            parse_complete_request(document),
            [
                CompletedPart(1, '"e1"'),
                CompletedPart(2, '"e2"'),
                CompletedPart(3, '"e3"'),
            ],
        )
        self.assertEqual(
            complete.headers.without(
                "host", "x-amz-date", "x-amz-content-sha256", "authorization"
            ),
            HeaderList([algorithm, *conditions, key]),
        )
        self.assert_verifies(
            complete, payload_hash=hashlib.sha256(document).hexdigest()
        )
        self.assert_settled(forwarder)

    def test_backpressure(self) -> None:
        """
        The body is paused whenever a part is full, and resumed while a part
        is sent only to fill the next one: it is never read further ahead.
        """
        create: Deferred[object] = pending()
        part_1: Deferred[object] = pending()
        part_2: Deferred[object] = pending()
        forwarder = self.multipart(
            create,  # type: ignore[arg-type]
            part_1,  # type: ignore[arg-type]
            part_2,  # type: ignore[arg-type]
            respond(200, [("etag", '"e3"')]),
            respond(200, body=complete_result()),
        )
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(*(bytes([c]) for c in b"abcdefghijkl"))
        # Five bytes in, the body is paused; the upload is being created.
        self.assertEqual((body.calls, body.written), (["pause"], 5))
        self.assertEqual(describe(forwarder.requests), THREE_PARTS[:1])
        create.callback(respond(200, body=initiate_result("up1")))
        # Part 1 is sent; the body fills the next part, and no more.
        self.assertEqual(describe(forwarder.requests), THREE_PARTS[:2])
        self.assertEqual(forwarder.uploads, [b"abcd"])
        self.assertEqual((body.calls, body.written), (["pause", "resume", "pause"], 9))
        part_1.callback(respond(200, [("etag", '"e1"')]))
        # Part 2 is sent; the next holds no more than a part: not paused.
        self.assertEqual(forwarder.uploads, [b"abcd", b"efgh"])
        self.assertEqual(body.written, 12)
        self.assertEqual(body.calls, ["pause", "resume", "pause", "resume"])
        body.finish()
        self.assertEqual(describe(forwarder.requests), THREE_PARTS[:3])
        part_2.callback(respond(200, [("etag", '"e2"')]))
        self.assertEqual(describe(forwarder.requests), THREE_PARTS)
        self.assertEqual(forwarder.uploads[2], b"ijkl")
        self.assertEqual(
            parse_complete_request(forwarder.uploads[3]),
            [
                CompletedPart(1, '"e1"'),
                CompletedPart(2, '"e2"'),
                CompletedPart(3, '"e3"'),
            ],
        )
        self.successResultOf(putting)

    @given(
        st.binary(max_size=40),
        st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=40),
    )
    def test_any_body(self, data: bytes, cuts: list[int]) -> None:
        """
        However long the body and however it is cut into chunks, it arrives
        whole: as one PUT if it fits in a part, else as parts of exactly a
        part but the last; and the store never holds more than the part
        being sent, a part, and a chunk.
        """
        self.patch(s3_module, "PART_SIZE", 4)
        chunks = []
        rest = data
        for cut in cuts * 40:
            if not rest:
                break
            chunks.append(rest[:cut])
            rest = rest[cut:]
        parts = [data[i : i + 4] for i in range(0, len(data), 4)]
        if len(data) <= 4:
            forwarder = scripted(respond(200), read_bodies=True)
        else:
            forwarder = scripted(
                respond(200, body=initiate_result("up1")),
                *(respond(200, [("etag", f'"e{n}"')]) for n in range(len(parts))),
                respond(200, body=complete_result()),
                read_bodies=True,
            )
        body = SteppedBody(forwarder)
        putting = self.put(forwarder, body)
        body.send(*chunks)
        body.finish()
        self.successResultOf(putting)
        if len(data) <= 4:
            self.assertEqual(forwarder.uploads, [data] if data else [])
        else:
            self.assertEqual(forwarder.uploads[:-1], parts)
        self.assertLessEqual(body.most_held, 2 * 4 + 9)

    def failed_upload(
        self,
        forwarder: ScriptedForwarder,
        body: SteppedBody,
        putting: Deferred[Any],
        completing: bool = False,
    ) -> BaseException:
        """
        What ``putting`` failed with, after checking that the upload was
        aborted and the body released.

        :param completing: whether the upload's completion was tried.
        """
        failure = self.failureResultOf(putting)
        self.assertEqual(forwarder.requests[-1].method, "DELETE")
        self.assertEqual(urlsplit(forwarder.requests[-1].url).query, "uploadId=up1")
        self.assertEqual(
            ("POST", "uploadId=up1") in describe(forwarder.requests), completing
        )
        self.assert_verifies(forwarder.requests[-1])
        self.assertTrue(body.stopped or body.done.called)
        error = failure.value
        assert isinstance(error, BaseException)
        return error

    def test_body_fails_while_filling(self) -> None:
        """
        A body that fails while a part fills fails the put with its own
        failure, and the upload is aborted.
        """
        forwarder = self.multipart(
            respond(200, body=initiate_result("up1")),
            respond(200, [("etag", '"e1"')]),
            respond(204),
        )
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(b"abcdefg")
        body.fail()
        error = self.failed_upload(forwarder, body, putting)
        self.assertIs(error, body.error)
        self.assertEqual(len(forwarder.requests), 3)

    def test_body_fails_at_the_end(self) -> None:
        """
        A body that fails after its last byte (a trailing checksum) is never
        completed: its last part is not even sent.
        """
        forwarder = self.multipart(
            respond(200, body=initiate_result("up1")),
            respond(200, [("etag", '"e1"')]),
            respond(204),
        )
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(b"abcdefg")
        self.assertEqual(body.written, 7)
        body.fail()
        error = self.failed_upload(forwarder, body, putting)
        self.assertIs(error, body.error)
        self.assertEqual(forwarder.uploads, [b"abcd"])

    def test_body_fails_while_sending(self) -> None:
        """
        A body that fails while a part is sent cancels that part; the upload
        is aborted.
        """
        cancelled: list[str] = []
        forwarder = self.multipart(
            respond(200, body=initiate_result("up1")),
            pending(cancelled),  # type: ignore[arg-type]
            respond(204),
        )
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(b"abcdef")
        body.fail()
        self.assertEqual(cancelled, ["x"])
        error = self.failed_upload(forwarder, body, putting)
        self.assertIs(error, body.error)

    def test_body_fails_while_creating(self) -> None:
        """
        A body that fails while the upload is created: the upload is
        aborted once created.
        """
        create: Deferred[object] = pending()
        forwarder = self.multipart(create, respond(204))  # type: ignore[arg-type]
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(b"abcdef")
        body.fail()
        self.assertNoResult(putting)
        create.callback(respond(200, body=initiate_result("up1")))
        error = self.failed_upload(forwarder, body, putting)
        self.assertIs(error, body.error)
        self.assertEqual(describe(forwarder.requests)[:1], THREE_PARTS[:1])
        self.assertEqual(len(forwarder.requests), 2)

    def test_backend_fails(self) -> None:
        """
        A part or a completion the backend refuses fails the put with the
        mapped error; the body is stopped and the upload aborted.
        """
        for failing, code in (
            (respond(500, body=error_document("InternalError")), "ServiceUnavailable"),
            (respond(404), "NoSuchUpload"),
            (respond(200), "ServiceUnavailable"),  # no ETag
        ):
            forwarder = self.multipart(
                respond(200, body=initiate_result("up1")),
                respond(200, [("etag", '"e1"')]),
                failing,
                respond(204),
            )
            body = SteppedBody()
            putting = self.put(forwarder, body)
            body.send(b"abcdefghijk")
            error = self.failed_upload(forwarder, body, putting)
            assert isinstance(error, S3Error)
            self.assertEqual(error.code, code)
            self.assert_no_backend_detail(error)
            self.assertEqual(body.calls[-1], "stop")
            self.assert_settled(forwarder)
        for failing, code in (
            (respond(412), "PreconditionFailed"),
            (respond(200, body=error_document("InternalError")), "ServiceUnavailable"),
        ):
            forwarder = self.multipart(
                respond(200, body=initiate_result("up1")),
                respond(200, [("etag", '"e1"')]),
                respond(200, [("etag", '"e2"')]),
                failing,
                respond(204),
            )
            body = SteppedBody()
            putting = self.put(forwarder, body)
            body.send(b"abcdefg")
            body.finish()
            error = self.failed_upload(forwarder, body, putting, completing=True)
            assert isinstance(error, S3Error)
            self.assertEqual(error.code, code)
            self.assert_settled(forwarder)

    def test_create_fails(self) -> None:
        """
        An upload the backend will not create fails the put, with nothing
        to abort; the body is stopped.
        """
        forwarder = self.multipart(respond(403))
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(b"abcdef")
        self.assertEqual(self.error_of(putting).code, "AccessDenied")
        self.assertEqual(len(forwarder.requests), 1)
        self.assertEqual(body.calls, ["pause", "stop"])

    def test_abort_fails(self) -> None:
        """
        An abort that fails is logged; the put still fails with the body's
        own failure.
        """
        forwarder = self.multipart(
            respond(200, body=initiate_result("up1")),
            respond(200, [("etag", '"e1"')]),
            respond(500),
        )
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(b"abcdef")
        body.fail()
        self.assertIs(self.failed_upload(forwarder, body, putting), body.error)
        self.assertEqual(len(self.flushLoggedErrors(S3Error)), 1)

    def test_abort_outlives_cancel(self) -> None:
        """
        A put cancelled while its upload is being aborted (as when a client
        goes away: its body fails, then its request is cancelled) stops
        waiting, but the abort goes on; its failure is logged.
        """
        for answer, logged in ((respond(204), 0), (respond(500), 1)):
            cancelled: list[str] = []
            abort = pending(cancelled)
            forwarder = self.multipart(
                respond(200, body=initiate_result("up1")),
                respond(200, [("etag", '"e1"')]),
                abort,  # type: ignore[arg-type]
            )
            body = SteppedBody()
            putting = self.put(forwarder, body)
            body.send(b"abcdef")
            body.fail()
            self.assertNoResult(putting)
            putting.cancel()
            self.assertEqual(cancelled, [])
            self.assertIs(self.failed_upload(forwarder, body, putting), body.error)
            abort.callback(answer)
            self.assertEqual(len(self.flushLoggedErrors(S3Error)), logged)
            self.assertEqual(uses_of(forwarder.bodies[-1]), ["discard"])

    def test_too_many_parts(self) -> None:
        """
        A body of more than ``MAX_PARTS`` parts is ``EntityTooLarge``; the
        upload is aborted.
        """
        self.patch(s3_module, "MAX_PARTS", 2)
        forwarder = self.multipart(
            respond(200, body=initiate_result("up1")),
            respond(200, [("etag", '"e1"')]),
            respond(200, [("etag", '"e2"')]),
            respond(204),
        )
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(b"abcdefghijklm")
        error = self.failed_upload(forwarder, body, putting)
        assert isinstance(error, S3Error)
        self.assertEqual(error.code, "EntityTooLarge")
        self.assertEqual(error.extra, (("MaxSizeAllowed", "8"),))
        self.assertEqual(forwarder.uploads, [b"abcd", b"efgh"])

    def test_cancel_while_sending(self) -> None:
        """
        Cancelling the put while a part is sent cancels the part, stops the
        body and aborts the upload.
        """
        cancelled: list[str] = []
        forwarder = self.multipart(
            respond(200, body=initiate_result("up1")),
            pending(cancelled),  # type: ignore[arg-type]
            respond(204),
        )
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(b"abcdef")
        putting.cancel()
        self.assertEqual(cancelled, ["x"])
        self.assertIsInstance(
            self.failed_upload(forwarder, body, putting), CancelledError
        )
        self.assertEqual(body.calls[-1], "stop")

    def test_cancel_while_filling(self) -> None:
        """
        Cancelling the put while a part fills stops the body and aborts the
        upload.
        """
        forwarder = self.multipart(
            respond(200, body=initiate_result("up1")),
            respond(200, [("etag", '"e1"')]),
            respond(204),
        )
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(b"abcdef")
        putting.cancel()
        self.assertIsInstance(
            self.failed_upload(forwarder, body, putting), CancelledError
        )
        self.assertEqual(body.calls[-1], "stop")

    def test_cancel_while_creating(self) -> None:
        """
        Cancelling the put while the upload is created stops the body, and
        the upload is aborted once created.
        """
        create: Deferred[object] = pending()
        forwarder = self.multipart(create, respond(204))  # type: ignore[arg-type]
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(b"abcdef")
        putting.cancel()
        self.assertEqual(body.calls, ["pause", "stop"])
        create.callback(respond(200, body=initiate_result("up1")))
        self.assertIsInstance(
            self.failed_upload(forwarder, body, putting), CancelledError
        )
        self.assertEqual(len(forwarder.requests), 2)

    def test_cancel_before_a_part(self) -> None:
        """
        Cancelling the put before a part is full stops the body; nothing is
        sent.
        """
        forwarder = scripted()
        body = SteppedBody()
        putting = self.put(forwarder, body)
        body.send(b"ab")
        putting.cancel()
        self.failureResultOf(putting, CancelledError)
        self.assertEqual((body.calls, forwarder.requests), (["stop"], []))

    def test_part_size(self) -> None:
        """
        Parts are 8 MiB: above the 5 MiB S3 asks of every part but the last.
        """
        self.assertEqual(s3_module.PART_SIZE, 4)  # patched for these tests
        self.assertEqual(PART_SIZE, 8 * 1024 * 1024)


class UnknownLengthPartTests(StoreTestCase):
    """
    L{S3Store.upload_part} with a body of unknown length.
    """

    def test_refused(self) -> None:
        """
        A part of unknown length is ``MissingContentLength`` (411), as S3
        answers: nothing is read and nothing is sent.
        """
        forwarder = scripted()
        body = SteppedBody()
        uploading = make_store(forwarder).upload_part(unknown_write(body), "u", 1)
        error = self.error_of(uploading)
        self.assertEqual((error.code, error.status), ("MissingContentLength", 411))
        self.assertEqual(body.calls, [])
        self.assertEqual(forwarder.requests, [])


class ListUploadsTests(StoreTestCase):
    """
    L{S3Store.list_multipart_uploads}.
    """

    def test_request(self) -> None:
        """
        A GET of the bucket with ``?uploads`` and the parameters given (not
        ``encoding-type``: SeaweedFS claims to encode and does not).
        """
        forwarder = scripted(respond(200, body=uploads_document()))
        self.successResultOf(
            signed_store(forwarder).list_multipart_uploads(
                "p/ +", "/", "p/k", "id/1", 50
            )
        )
        request = forwarder.request
        self.assertEqual(
            (request.method, path_of(request)), ("GET", f"/{BACKEND_BUCKET}")
        )
        self.assertEqual(
            query_of(request),
            [
                ("delimiter", "/"),
                ("key-marker", "p/k"),
                ("max-uploads", "50"),
                ("prefix", "p/ +"),
                ("upload-id-marker", "id/1"),
                ("uploads", ""),
            ],
        )
        self.assertTrue(request.url.endswith("&uploads"))
        self.assert_verifies(request)

    def test_minimal(self) -> None:
        """
        Without options only ``max-uploads`` and ``uploads`` are sent.
        """
        forwarder = scripted(respond(200, body=uploads_document()))
        self.successResultOf(
            make_store(forwarder).list_multipart_uploads("", None, None, None, 1000)
        )
        self.assertEqual(
            forwarder.request.url,
            f"{ENDPOINT}/{BACKEND_BUCKET}?max-uploads=1000&uploads",
        )

    def test_page(self) -> None:
        """
        The answer is parsed into a page.
        """
        forwarder = scripted(
            respond(200, body=uploads_document("p/a+b", prefixes=["p/d/"]))
        )
        page = self.successResultOf(
            make_store(forwarder).list_multipart_uploads("p/", "/", None, None, 10)
        )
        when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        self.assertEqual(
            page,
            UploadsPage(
                uploads=(UploadInfo("p/a+b", "id-0", when),), common_prefixes=("p/d/",)
            ),
        )
        self.assert_settled(forwarder)

    def test_held_to_the_request(self) -> None:
        """
        A store that ignores the prefix or the delimiter (moto, SeaweedFS)
        has its page held to them: uploads outside the prefix are dropped,
        and keys with the delimiter after the prefix rolled up.
        """
        forwarder = scripted(
            respond(
                200,
                body=uploads_document(
                    "other/x", "p/a", "p/d/1", "p/d/2", "p/e/f/g", "p", prefixes=["q/"]
                ),
            )
        )
        page = self.successResultOf(
            make_store(forwarder).list_multipart_uploads("p/", "/", None, None, 10)
        )
        self.assertEqual([u.key for u in page.uploads], ["p/a"])
        self.assertEqual(page.common_prefixes, ("p/d/", "p/e/"))
        forwarder = scripted(respond(200, body=uploads_document("a/b", "c")))
        page = self.successResultOf(
            make_store(forwarder).list_multipart_uploads("", None, None, None, 10)
        )
        self.assertEqual([u.key for u in page.uploads], ["a/b", "c"])

    def test_errors(self) -> None:
        """
        A missing bucket is ``NoSuchBucket``; a bad answer
        ``ServiceUnavailable``.
        """
        for response, code in (
            (respond(404), "NoSuchBucket"),
            (respond(200, body=b"<nope/>"), "ServiceUnavailable"),
            (respond(500), "ServiceUnavailable"),
        ):
            forwarder = scripted(response)
            error = self.error_of(
                make_store(forwarder).list_multipart_uploads("", None, None, None, 10)
            )
            self.assertEqual(error.code, code)
            self.assert_settled(forwarder)


# --- copies ------------------------------------------------------------------


def source_bucket(**options: str) -> BucketConfig:
    """
    A source bucket ``source-bucket`` on the same backend as L{make_store}'s,
    with the same credentials, changed by ``options``.
    """
    settings = {
        "endpoint": ENDPOINT,
        "bucket_name": "source-bucket",
        "region": "eu-west-2",
        "access_key_id": AKID,
        "secret_access_key": "the source's own secret",
        **options,
    }
    return BucketConfig(name="src", backend_type="s3", backend_options=settings)


class CopyTests(StoreTestCase):
    """
    CopyObject and UploadPartCopy, on the server side.
    """

    def test_copy(self) -> None:
        """
        A PUT of the destination naming the source in ``x-amz-copy-source``
        (path-style, the key encoded), with the source conditions, the
        directives and the new object's headers; signed with the
        destination's credentials.
        """
        for key, encoded in ODD_KEYS:
            forwarder = scripted(respond(200, body=copy_result()))
            conditions = HeaderList(
                [
                    ("x-amz-copy-source-if-match", '"abc"'),
                    ("x-amz-copy-source-if-none-match", '"def"'),
                    (
                        "x-amz-copy-source-if-modified-since",
                        "Mon, 13 Nov 2023 00:00:00 GMT",
                    ),
                    (
                        "x-amz-copy-source-if-unmodified-since",
                        "Wed, 15 Nov 2023 00:00:00 GMT",
                    ),
                    ("if-match", "stray"),
                ]
            )
            source = CopySource(bucket=source_bucket(), key=key, conditions=conditions)
            headers = HeaderList(
                [
                    *NEVER_FORWARDED,
                    ("x-amz-metadata-directive", "REPLACE"),
                    ("x-amz-tagging-directive", "COPY"),
                    *OBJECT_WRITE_HEADERS,
                    ("x-amz-copy-source-server-side-encryption-customer-key", "a2V5"),
                    ("if-none-match", "*"),
                ]
            )
            result = self.successResultOf(
                signed_store(forwarder).copy_object(source, "dest key", headers)
            )
            self.assertEqual(result.etag, '"abc"')
            request = forwarder.request
            self.assertEqual(
                (request.method, request.url),
                ("PUT", f"{ENDPOINT}/{BACKEND_BUCKET}/dest%20key"),
            )
            self.assertIsNone(request.body)
            self.assertEqual(
                request.headers.without(
                    "host", "x-amz-date", "x-amz-content-sha256", "authorization"
                ),
                HeaderList(
                    [
                        ("x-amz-copy-source", f"/source-bucket/{encoded}"),
                        *list(conditions)[:4],
                        ("x-amz-metadata-directive", "REPLACE"),
                        ("x-amz-tagging-directive", "COPY"),
                        *OBJECT_WRITE_HEADERS,
                        (
                            "x-amz-copy-source-server-side-encryption-customer-key",
                            "a2V5",
                        ),
                        ("if-none-match", "*"),
                    ]
                ),
            )
            self.assertEqual(unquote(encoded), key)
            self.assert_verifies(request)

    def test_version(self) -> None:
        """
        A source version is named in the copy source.
        """
        forwarder = scripted(respond(200, body=copy_result()))
        source = CopySource(bucket=source_bucket(), key="k", version_id="v/1+=")
        self.successResultOf(
            signed_store(forwarder).copy_object(source, "d", HeaderList())
        )
        self.assertEqual(
            forwarder.request.headers.get("x-amz-copy-source"),
            "/source-bucket/k?versionId=v%2F1%2B%3D",
        )

    def test_result(self) -> None:
        """
        The copy's ETag (quoted if the backend left the quotes out) and time
        come back with the allowed headers.
        """
        forwarder = scripted(
            respond(
                200,
                [
                    *DROPPED_HEADERS,
                    ("x-amz-version-id", "v2"),
                    ("x-amz-copy-source-version-id", "v1"),
                ],
                copy_result(etag="abc"),
            )
        )
        source = CopySource(bucket=source_bucket(), key="k")
        result = self.successResultOf(
            signed_store(forwarder).copy_object(source, "d", HeaderList())
        )
        self.assertEqual(
            result,
            CopyResult(
                '"abc"',
                datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                HeaderList(
                    [("x-amz-version-id", "v2"), ("x-amz-copy-source-version-id", "v1")]
                ),
            ),
        )
        self.assert_settled(forwarder)

    def test_same_service(self) -> None:
        """
        The source may be on the same endpoint written differently, or both
        on AWS in one region.
        """
        keys = {"access_key_id": AKID, "secret_access_key": SECRET}
        cases = [
            (
                keys,
                source_bucket(endpoint=ENDPOINT.upper().replace("HTTP", "http") + "/"),
            ),
            ({**keys, "endpoint": ""}, source_bucket(endpoint="")),
            ({}, source_bucket(access_key_id="", secret_access_key="")),
            (
                {**keys, "skip_signature": "true"},
                source_bucket(access_key_id="other", skip_signature="1"),
            ),
        ]
        for options, bucket in cases:
            forwarder = scripted(respond(200, body=copy_result()))
            source = CopySource(bucket=bucket, key="k")
            self.successResultOf(
                make_store(forwarder, **options).copy_object(source, "d", HeaderList())
            )

    def test_can_copy(self) -> None:
        """
        L{S3Store.can_copy} accepts a source on the same service reached
        with the same credentials, ranged or not, and refuses any other,
        without asking the backend.
        """
        keys = {"access_key_id": AKID, "secret_access_key": SECRET}
        accepted = [
            (keys, source_bucket(endpoint=ENDPOINT.upper().replace("HTTP", "http"))),
            ({**keys, "endpoint": ""}, source_bucket(endpoint="")),
            ({}, source_bucket(access_key_id="", secret_access_key="")),
        ]
        for options, bucket in accepted:
            store = make_store(scripted(), **options)
            for copy_range in (None, "bytes=0-9"):
                source = CopySource(bucket=bucket, key="k", range=copy_range)
                self.assertTrue(store.can_copy(source), (options, bucket))
        refused = [
            source_bucket(endpoint="http://elsewhere.test:9000"),
            source_bucket(access_key_id="ANOTHERKEY"),
            source_bucket(bucket_name=""),
            BucketConfig(name="g", backend_type="gcs", backend_options={"b": "x"}),
        ]
        forwarder = scripted()
        for bucket in refused:
            source = CopySource(bucket=bucket, key="k")
            self.assertFalse(signed_store(forwarder).can_copy(source), bucket)
        self.assertEqual(forwarder.requests, [])

    def test_other_service(self) -> None:
        """
        A source on another service, in another AWS region, of another kind,
        reached with other credentials, or without a bucket name, is
        ``NotImplemented`` (L{S3Store.can_copy} refuses it: the gateway
        streams such copies), and nothing is sent.
        """
        for bucket in (
            source_bucket(endpoint="http://elsewhere.test:9000"),
            source_bucket(endpoint="https://backend.test:9000"),
            source_bucket(access_key_id="ANOTHERKEY"),
            source_bucket(access_key_id=""),
            source_bucket(bucket_name=""),
            BucketConfig(
                name="f", backend_type="file", backend_options={"root_dir": "/x"}
            ),
        ):
            forwarder = scripted()
            error = self.error_of(
                signed_store(forwarder).copy_object(
                    CopySource(bucket=bucket, key="k"), "d", HeaderList()
                )
            )
            self.assertEqual((error.code, error.status), ("NotImplemented", 501))
            self.assertEqual(forwarder.requests, [])
        aws = signed_store(scripted(), endpoint="")
        other_region = source_bucket(endpoint="", region="us-west-1")
        error = self.error_of(
            aws.copy_object(CopySource(bucket=other_region, key="k"), "d", HeaderList())
        )
        self.assertEqual(error.code, "NotImplemented")

    def test_failed_late(self) -> None:
        """
        A copy answered ``200 OK`` with an error document fails with the
        mapped error.
        """
        for code, expected in (
            ("InternalError", "ServiceUnavailable"),
            ("SlowDown", "SlowDown"),
            ("NoSuchKey", "NoSuchKey"),
        ):
            forwarder = scripted(respond(200, body=error_document(code)))
            source = CopySource(bucket=source_bucket(), key="k")
            error = self.error_of(
                signed_store(forwarder).copy_object(source, "d", HeaderList())
            )
            self.assertEqual(error.code, expected)
            self.assert_no_backend_detail(error)
            self.assert_settled(forwarder)

    def test_errors(self) -> None:
        """
        Conditions that fail, a missing source, an unreadable answer.
        """
        for response, code in (
            (
                respond(412, body=error_document("PreconditionFailed")),
                "PreconditionFailed",
            ),
            (respond(404, body=error_document("NoSuchKey")), "NoSuchKey"),
            (respond(404), "NoSuchKey"),
            (respond(403), "AccessDenied"),
            (respond(200, body=b"<CopyObjectResult/>"), "ServiceUnavailable"),
        ):
            forwarder = scripted(response)
            source = CopySource(bucket=source_bucket(), key="k")
            error = self.error_of(
                signed_store(forwarder).copy_object(source, "d", HeaderList())
            )
            self.assertEqual(error.code, code)
            self.assert_settled(forwarder)

    def test_upload_part_copy(self) -> None:
        """
        A part copy is a PUT with ``partNumber`` and ``uploadId``, the copy
        source, its range and conditions; its answer is a
        ``CopyPartResult``.
        """
        forwarder = scripted(respond(200, body=copy_result("CopyPartResult", '"p"')))
        source = CopySource(
            bucket=source_bucket(),
            key="s k",
            range="bytes=0-5242879",
            conditions=HeaderList(
                [
                    ("x-amz-copy-source-if-match", '"abc"'),
                    ("x-amz-server-side-encryption-customer-key", "a2V5"),
                    ("content-type", "dropped"),
                ]
            ),
        )
        result = self.successResultOf(
            signed_store(forwarder).upload_part_copy(source, "d", "up/1", 2)
        )
        self.assertEqual(result.etag, '"p"')
        request = forwarder.request
        self.assertEqual(request.method, "PUT")
        self.assertEqual(query_of(request), [("partNumber", "2"), ("uploadId", "up/1")])
        self.assertEqual(
            request.headers.without(
                "host", "x-amz-date", "x-amz-content-sha256", "authorization"
            ),
            HeaderList(
                [
                    ("x-amz-copy-source", "/source-bucket/s%20k"),
                    ("x-amz-copy-source-range", "bytes=0-5242879"),
                    ("x-amz-copy-source-if-match", '"abc"'),
                    ("x-amz-server-side-encryption-customer-key", "a2V5"),
                ]
            ),
        )
        self.assert_verifies(request)


# --- deletes -----------------------------------------------------------------


class DeleteObjectTests(StoreTestCase):
    """
    L{S3Store.delete_object}.
    """

    def test_delete(self) -> None:
        """
        A DELETE of the key (with ``versionId`` if given) is a 204 with the
        version and delete marker headers.
        """
        for version, query in ((None, ""), ("v/1", "?versionId=v%2F1")):
            for status in (204, 200):
                forwarder = scripted(
                    respond(
                        status,
                        [
                            ("x-amz-version-id", "v2"),
                            ("x-amz-delete-marker", "true"),
                            *DROPPED_HEADERS,
                        ],
                    )
                )
                response = self.successResultOf(
                    signed_store(forwarder).delete_object("a b", version)
                )
                self.assertEqual(
                    response,
                    ObjectResponse(
                        204,
                        HeaderList(
                            [
                                ("x-amz-version-id", "v2"),
                                ("x-amz-delete-marker", "true"),
                            ]
                        ),
                    ),
                )
                self.assertEqual(
                    (forwarder.request.method, forwarder.request.url),
                    ("DELETE", f"{ENDPOINT}/{BACKEND_BUCKET}/a%20b{query}"),
                )
                self.assert_verifies(forwarder.request)
                self.assert_settled(forwarder)

    def test_missing(self) -> None:
        """
        Deleting a key that is not there succeeds, as on S3, even from a
        backend that says ``NoSuchKey``.
        """
        for response in (respond(404, body=error_document("NoSuchKey")), respond(404)):
            forwarder = scripted(response)
            result = self.successResultOf(
                make_store(forwarder).delete_object("k", None)
            )
            self.assertEqual(result, ObjectResponse(204, HeaderList()))
            self.assert_settled(forwarder)

    def test_errors(self) -> None:
        """
        A missing bucket, a refusal and a failure are errors.
        """
        for response, code in (
            (respond(404, body=error_document("NoSuchBucket")), "NoSuchBucket"),
            (respond(403, body=error_document("AccessDenied")), "AccessDenied"),
            (respond(500), "ServiceUnavailable"),
            (respond(400, body=error_document("InvalidArgument")), "InvalidArgument"),
        ):
            forwarder = scripted(response)
            error = self.error_of(make_store(forwarder).delete_object("k", None))
            self.assertEqual(error.code, code)
            self.assert_no_backend_detail(error)
            self.assert_settled(forwarder)


def delete_result(*entries: str) -> bytes:
    """
    A backend's DeleteObjects answer of the given entries.
    """
    return (
        f'<DeleteResult xmlns="{S3_NAMESPACE}">{"".join(entries)}</DeleteResult>'
    ).encode()


class DeleteObjectsTests(StoreTestCase):
    """
    L{S3Store.delete_objects}.
    """

    def test_request(self) -> None:
        """
        A POST of ``?delete`` with the keys as XML, not quiet, with its
        Content-MD5 and SHA-256 signed.
        """
        keys = [("a b", None), ("c&d<e>", "v/1"), (" spaced ", None)]
        forwarder = scripted(
            respond(200, body=delete_result("<Deleted><Key>a b</Key></Deleted>"))
        )
        self.successResultOf(signed_store(forwarder).delete_objects(keys))
        request = forwarder.request
        self.assertEqual(
            (request.method, request.url),
            ("POST", f"{ENDPOINT}/{BACKEND_BUCKET}?delete"),
        )
        body = document_of(request)
        self.assertEqual(parse_delete_request(body), (False, keys))
        self.assertEqual(
            request.headers.get("content-md5"),
            base64.b64encode(hashlib.md5(body).digest()).decode(),
        )
        self.assert_verifies(request, payload_hash=hashlib.sha256(body).hexdigest())

    def test_outcomes(self) -> None:
        """
        Each key's outcome is reported: deleted ones with their versions and
        markers; errors by code with multistore's message (unknown codes as
        ``InternalError``); keys the backend did not mention as
        ``InternalError``; keys not asked for are left out.
        """
        keys = [
            ("gone", None),
            ("marked", None),
            ("versioned", "v1"),
            ("denied", None),
            ("odd", None),
            ("silent", None),
            ("twice", None),
            ("twice", None),
        ]
        forwarder = scripted(
            respond(
                200,
                body=delete_result(
                    "<Deleted><Key>gone</Key></Deleted>",
                    "<Deleted><Key>marked</Key><DeleteMarker>true</DeleteMarker>"
                    "<DeleteMarkerVersionId>m1</DeleteMarkerVersionId></Deleted>",
                    "<Deleted><Key>versioned</Key><VersionId>v1</VersionId></Deleted>",
                    f"<Error><Key>denied</Key><Code>AccessDenied</Code><Message>{BACKEND_SECRET_MESSAGE}</Message></Error>",
                    f"<Error><Key>odd</Key><Code>WeirdThing</Code><Message>{BACKEND_SECRET_MESSAGE}</Message></Error>",
                    "<Deleted><Key>twice</Key></Deleted>",
                    "<Deleted><Key>backend-prefix/not asked</Key></Deleted>",
                ),
            )
        )
        outcomes = self.successResultOf(make_store(forwarder).delete_objects(keys))
        internal = ("InternalError", S3Error("InternalError").message)
        self.assertEqual(
            sorted(outcomes, key=lambda o: o.key),
            sorted(
                [
                    DeleteOutcome("gone"),
                    DeleteOutcome("marked", "m1", delete_marker=True),
                    DeleteOutcome("versioned", "v1"),
                    DeleteOutcome("denied", error=("AccessDenied", "Access Denied")),
                    DeleteOutcome("odd", error=internal),
                    DeleteOutcome("silent", error=internal),
                    DeleteOutcome("twice"),
                    DeleteOutcome("twice", error=internal),
                ],
                key=lambda o: o.key,
            ),
        )
        self.assertNotIn(BACKEND_SECRET_MESSAGE, repr(outcomes))
        self.assert_settled(forwarder)

    def test_batches(self) -> None:
        """
        More than 1000 keys go in several requests of at most 1000.
        """
        keys = [(f"k{i}", None) for i in range(2500)]
        answers = [
            respond(
                200,
                body=delete_result(
                    *(
                        f"<Deleted><Key>k{i}</Key></Deleted>"
                        for i in range(start, min(start + 1000, 2500))
                    )
                ),
            )
            for start in range(0, 2500, 1000)
        ]
        forwarder = scripted(*answers)
        outcomes = self.successResultOf(make_store(forwarder).delete_objects(keys))
        self.assertEqual(len(forwarder.requests), 3)
        self.assertEqual(
            [len(parse_delete_request(document_of(r))[1]) for r in forwarder.requests],
            [1000, 1000, 500],
        )
        self.assertEqual(sorted(o.key for o in outcomes), sorted(k for k, _ in keys))
        self.assertTrue(all(o.error is None for o in outcomes))

    def test_keys_xml_cannot_carry(self) -> None:
        """
        A key XML cannot carry is deleted with its own DELETE, never renamed
        in an XML body.
        """
        forwarder = scripted(
            respond(200, body=delete_result("<Deleted><Key>plain</Key></Deleted>")),
            respond(204, [("x-amz-version-id", "v3")]),
            respond(403),
        )
        outcomes = self.successResultOf(
            make_store(forwarder).delete_objects(
                [("a\x01b", None), ("plain", None), ("c\x02", "v\x7f")]
            )
        )
        self.assertEqual(
            [(r.method, r.url) for r in forwarder.requests],
            [
                ("POST", f"{ENDPOINT}/{BACKEND_BUCKET}?delete"),
                ("DELETE", f"{ENDPOINT}/{BACKEND_BUCKET}/a%01b"),
                ("DELETE", f"{ENDPOINT}/{BACKEND_BUCKET}/c%02?versionId=v%7F"),
            ],
        )
        self.assertEqual(
            outcomes,
            [
                DeleteOutcome("plain"),
                DeleteOutcome("a\x01b", "v3"),
                DeleteOutcome(
                    "c\x02",
                    "v\x7f",
                    error=(
                        "AccessDenied",
                        "The bucket's backend store refused access.",
                    ),
                ),
            ],
        )

    def test_errors(self) -> None:
        """
        A request that fails as a whole fails the call.
        """
        for response, code in (
            (respond(404), "NoSuchBucket"),
            (respond(403), "AccessDenied"),
            (respond(400, body=error_document("MalformedXML")), "MalformedXML"),
            (respond(200, body=b"<html/>"), "ServiceUnavailable"),
        ):
            forwarder = scripted(response)
            error = self.error_of(make_store(forwarder).delete_objects([("k", None)]))
            self.assertEqual(error.code, code)
            self.assert_settled(forwarder)


# --- buckets -----------------------------------------------------------------


class BucketWriteTests(StoreTestCase):
    """
    L{S3Store.create_bucket} and L{S3Store.delete_bucket}.
    """

    def test_create(self) -> None:
        """
        Outside ``us-east-1`` the bucket is created with its location
        constraint, the document's hash signed.
        """
        forwarder = scripted(respond(200, [("location", "/real-bucket")]))
        self.assertIsNone(self.successResultOf(signed_store(forwarder).create_bucket()))
        request = forwarder.request
        self.assertEqual(
            (request.method, request.url), ("PUT", f"{ENDPOINT}/{BACKEND_BUCKET}")
        )
        body = document_of(request)
        root = etree.fromstring(body)
        self.assertEqual(root.tag, f"{{{S3_NAMESPACE}}}CreateBucketConfiguration")
        self.assertEqual(
            root.findtext(f"{{{S3_NAMESPACE}}}LocationConstraint"), "eu-west-2"
        )
        self.assert_verifies(request, payload_hash=hashlib.sha256(body).hexdigest())
        self.assert_settled(forwarder)

    def test_create_us_east_1(self) -> None:
        """
        In ``us-east-1`` the bucket is created without a body.
        """
        forwarder = scripted(respond(200))
        self.successResultOf(
            signed_store(forwarder, region="us-east-1").create_bucket()
        )
        self.assertIsNone(forwarder.request.body)
        self.assert_verifies(forwarder.request, region="us-east-1")

    def test_create_errors(self) -> None:
        """
        A bucket that exists is ``BucketAlreadyOwnedByYou`` or
        ``BucketAlreadyExists``, as the backend says.
        """
        for response, code in (
            (
                respond(409, body=error_document("BucketAlreadyOwnedByYou")),
                "BucketAlreadyOwnedByYou",
            ),
            (
                respond(409, body=error_document("BucketAlreadyExists")),
                "BucketAlreadyExists",
            ),
            (respond(409), "BucketAlreadyOwnedByYou"),
            (
                respond(400, body=error_document("InvalidBucketName")),
                "InvalidBucketName",
            ),
            (respond(403), "AccessDenied"),
        ):
            forwarder = scripted(response)
            error = self.error_of(make_store(forwarder).create_bucket())
            self.assertEqual((error.code, error.status), (code, STATUS_OF[code]))
            self.assert_settled(forwarder)

    def test_delete(self) -> None:
        """
        A DELETE of the bucket; 204 (or 200) is done.
        """
        for status in (204, 200):
            forwarder = scripted(respond(status))
            self.assertIsNone(
                self.successResultOf(signed_store(forwarder).delete_bucket())
            )
            self.assertEqual(
                (forwarder.request.method, forwarder.request.url),
                ("DELETE", f"{ENDPOINT}/{BACKEND_BUCKET}"),
            )
            self.assert_verifies(forwarder.request)
            self.assert_settled(forwarder)

    def test_delete_errors(self) -> None:
        """
        A bucket with objects is ``BucketNotEmpty``; a missing one
        ``NoSuchBucket``.
        """
        for response, code in (
            (respond(409, body=error_document("BucketNotEmpty")), "BucketNotEmpty"),
            (respond(409), "BucketNotEmpty"),
            (respond(404, body=error_document("NoSuchBucket")), "NoSuchBucket"),
            (respond(404), "NoSuchBucket"),
        ):
            forwarder = scripted(response)
            error = self.error_of(make_store(forwarder).delete_bucket())
            self.assertEqual((error.code, error.status), (code, STATUS_OF[code]))
            self.assert_settled(forwarder)
