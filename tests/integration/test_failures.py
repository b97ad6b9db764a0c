# mypy: disable-error-code="no-untyped-call"
"""
Failures, as clients see them: a backend that cannot be reached, one that
stays silent, one that stalls or dies mid-body; sub-resources and writes this
version does not implement; and the shape of every error response (S3 XML
with ``Code``, ``Message``, ``Resource`` and ``RequestId``, the request id
also in ``x-amz-request-id``, never a traceback or an HTML page).

Requests are sent with C{http.client}, signed where needed with botocore's
SigV4 signer, so that the exact status, headers and body are visible; boto3
is used where its reaction matters.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import pytest
from attrs import frozen
from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    ClientError,
    IncompleteReadError,
    ResponseStreamingError,
)
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.servers import (
    LOCALHOST,
    Daemon,
    DaemonFactory,
    S3Server,
    error_code,
    free_port,
    http_status,
    s3_client,
    unique_bucket_name,
)
from tests.integration.test_streaming import ScriptedBackend, pattern, rss

MiB: Final = 1024 * 1024

ACCESS_KEY: Final = "AKFAILURES000000001"
SECRET_KEY: Final = "failures-secret-key-0123456789"

#: The daemon's ``backend_timeout`` for the scripted backend's bucket.
TIMEOUT: Final = 1

#: What is kept in the ``kept.txt`` object of every bucket.
KEPT: Final = b"this object must survive every request in this module\n"

#: Sub-resources every level and method must refuse.
SUBRESOURCES: Final = ("acl", "tagging", "policy", "cors", "versioning", "lifecycle")

_TAGGING: Final = (
    b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>'
    b"<Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"
)


@frozen
class Answer:
    """
    A response read whole.

    :ivar status: the HTTP status.
    :ivar headers: the header fields, names lower-cased (last value wins).
    :ivar body: the body.
    :ivar elapsed: seconds from sending the request to the end of the body.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed: float


def send(
    daemon: Daemon,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    signed: bool = False,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    timeout: float = 30.0,
) -> Answer:
    """
    Send one request to the daemon and read the whole response.

    :param path: the raw path and query, exactly as sent.
    :param signed: sign with SigV4 (payload hash included) as
        ``access_key``/``secret_key``.
    :return: the answer.
    """
    fields = dict(headers or {})
    if signed:
        request = AWSRequest(
            method=method, url=daemon.url + path, data=body, headers=fields
        )
        S3SigV4Auth(Credentials(access_key, secret_key), "s3", "us-east-1").add_auth(
            request
        )
        fields = dict(request.headers.items())
    connection = http.client.HTTPConnection(LOCALHOST, daemon.port, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request(method, path, body=body or None, headers=fields)
        response = connection.getresponse()
        data = response.read()
        elapsed = time.monotonic() - started
        return Answer(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            data,
            elapsed,
        )
    finally:
        connection.close()


def error_fields(case: SynchronousTestCase, answer: Answer) -> dict[str, str]:
    """
    Check that ``answer`` is a well-formed S3 error and return its elements.

    :return: the text of each child of C{<Error>}, by tag.
    """
    text = answer.body.decode("utf-8", "replace")
    case.assertNotIn("Traceback", text)
    case.assertNotIn("<html", text.lower())
    case.assertEqual(answer.headers.get("content-type"), "application/xml", text)
    root = ET.fromstring(answer.body)
    case.assertEqual(root.tag, "Error", text)
    fields = {child.tag: child.text or "" for child in root}
    for name in ("Code", "Message", "Resource", "RequestId"):
        case.assertTrue(fields.get(name), f"no {name} in {text}")
    case.assertEqual(fields["RequestId"], answer.headers.get("x-amz-request-id"))
    case.assertTrue(answer.headers.get("x-amz-id-2"))
    case.assertEqual(answer.headers.get("content-length"), str(len(answer.body)))
    return fields


def assert_error(
    case: SynchronousTestCase,
    answer: Answer,
    status: int,
    code: str,
    resource: str | None = None,
) -> dict[str, str]:
    """
    Check that ``answer`` is the S3 error ``code`` with ``status`` (and, if
    given, the ``Resource``).

    :return: the error's elements.
    """
    fields = error_fields(case, answer)
    case.assertEqual((answer.status, fields["Code"]), (status, code), fields)
    if resource is not None:
        case.assertEqual(fields["Resource"], resource)
    return fields


# --- fixtures ----------------------------------------------------------------


@frozen
class Setup:
    """
    The module's daemons and stores.

    :ivar daemon: buckets C{sw} (SeaweedFS), C{local} (a directory), both
        private; C{public} (a directory), C{scripted} (the scripted backend,
        with the default backend timeout) and C{dead} (an S3 endpoint nothing
        listens on), all three with anonymous reads. One credential,
        L{ACCESS_KEY}, may do everything everywhere.
    :ivar slow: bucket C{scripted} (anonymous reads) on a
        L{ScriptedBackend}, with C{backend_timeout = 1}.
    :ivar seaweedfs: the SeaweedFS server.
    :ivar sw_bucket: the SeaweedFS bucket behind C{sw}.
    :ivar local_root: the directory behind C{local}.
    :ivar backend: the scripted backend.
    """

    daemon: Daemon
    slow: Daemon
    seaweedfs: S3Server
    sw_bucket: str
    local_root: Path
    backend: ScriptedBackend


@pytest.fixture(scope="module")
def failure_backend() -> Iterator[ScriptedBackend]:
    """
    A L{ScriptedBackend} for the module.
    """
    backend = ScriptedBackend.start()
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture(scope="module")
def setup(
    seaweedfs: S3Server,
    failure_backend: ScriptedBackend,
    module_multistore_daemon: DaemonFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Setup:
    """
    Start the module's daemons; each bucket holds C{kept.txt} (L{KEPT}).
    """
    sw_bucket = seaweedfs.create_bucket(unique_bucket_name("failures"))
    seaweedfs.client().put_object(Bucket=sw_bucket, Key="kept.txt", Body=KEPT)
    local_root = tmp_path_factory.mktemp("failures-local")
    (local_root / "kept.txt").write_bytes(KEPT)
    public_root = tmp_path_factory.mktemp("failures-public")
    (public_root / "kept.txt").write_bytes(KEPT)
    daemon = module_multistore_daemon(
        {
            "buckets": [
                {
                    "name": "sw",
                    "backend_type": "s3",
                    "backend_options": seaweedfs.backend_options(sw_bucket),
                },
                {
                    "name": "local",
                    "backend_type": "file",
                    "backend_options": {"root": str(local_root)},
                },
                {
                    "name": "public",
                    "backend_type": "file",
                    "anonymous_access": True,
                    "backend_options": {"root": str(public_root)},
                },
                {
                    "name": "scripted",
                    "backend_type": "s3",
                    "anonymous_access": True,
                    "backend_options": failure_backend.bucket_options(),
                },
                {
                    "name": "dead",
                    "backend_type": "s3",
                    "anonymous_access": True,
                    "backend_options": {
                        "endpoint": f"http://{LOCALHOST}:{free_port()}",
                        "bucket_name": "nothing",
                        "skip_signature": "true",
                        "allow_http": "true",
                    },
                },
            ],
            "credentials": [
                {
                    "access_key_id": ACCESS_KEY,
                    "secret_access_key": SECRET_KEY,
                    "principal_name": "failures",
                    "allowed_scopes": [
                        {
                            "bucket": "*",
                            "prefixes": [],
                            "actions": [
                                "get_object",
                                "head_object",
                                "put_object",
                                "list_bucket",
                                "create_multipart_upload",
                                "upload_part",
                                "complete_multipart_upload",
                                "abort_multipart_upload",
                                "delete_object",
                                "create_bucket",
                                "delete_bucket",
                            ],
                        }
                    ],
                }
            ],
        }
    )
    slow = module_multistore_daemon(
        {
            "server": {"backend_timeout": TIMEOUT},
            "buckets": [
                {
                    "name": "scripted",
                    "backend_type": "s3",
                    "anonymous_access": True,
                    "backend_options": failure_backend.bucket_options(),
                }
            ],
        }
    )
    return Setup(daemon, slow, seaweedfs, sw_bucket, local_root, failure_backend)


class _Base(SynchronousTestCase):
    @pytest.fixture(autouse=True)
    def _setup(self, setup: Setup) -> None:
        self.setup = setup
        self.daemon = setup.daemon

    def assert_kept(self) -> None:
        """
        Both stores still hold C{kept.txt} exactly as written, with no tags.
        """
        self.assertEqual((self.setup.local_root / "kept.txt").read_bytes(), KEPT)
        client = self.setup.seaweedfs.client()
        got = client.get_object(Bucket=self.setup.sw_bucket, Key="kept.txt")
        self.assertEqual(got["Body"].read(), KEPT)
        self.assertEqual(got["ETag"], f'"{hashlib.md5(KEPT).hexdigest()}"')
        tags = client.get_object_tagging(Bucket=self.setup.sw_bucket, Key="kept.txt")
        self.assertEqual(tags["TagSet"], [])
        self.assertTrue(self.daemon.running())

    def client(self, **config: Any) -> Any:
        """
        :return: a boto3 client of the daemon, signing as L{ACCESS_KEY}.
        """
        return s3_client(self.daemon.url, ACCESS_KEY, SECRET_KEY, **config)


# --- tests ---------------------------------------------------------------------


class UnreachableBackendTests(_Base):
    """
    A backend nothing listens on.
    """

    def test_service_unavailable_within_a_second(self) -> None:
        """
        GET, HEAD and a listing of a bucket whose backend refuses connections
        each answer 503 ``ServiceUnavailable`` within one second.
        """
        answer = send(self.daemon, "GET", "/dead/some/key")
        assert_error(self, answer, 503, "ServiceUnavailable", "/dead/some/key")
        self.assertLess(answer.elapsed, 1.0)
        answer = send(self.daemon, "GET", "/dead?list-type=2")
        assert_error(self, answer, 503, "ServiceUnavailable", "/dead")
        self.assertLess(answer.elapsed, 1.0)
        answer = send(self.daemon, "HEAD", "/dead/some/key")
        self.assertEqual(answer.status, 503)
        self.assertEqual(answer.body, b"")
        self.assertTrue(answer.headers.get("x-amz-request-id"))
        self.assertLess(answer.elapsed, 1.0)

    def test_boto3_sees_service_unavailable(self) -> None:
        """
        boto3 gets a C{ServiceUnavailable} error, not a connection failure.
        """
        client = s3_client(self.daemon.url, unsigned=True)
        with self.assertRaises(ClientError) as raised:
            client.get_object(Bucket="dead", Key="k")
        self.assertEqual(
            (http_status(raised.exception), error_code(raised.exception)),
            (503, "ServiceUnavailable"),
        )


class BackendTimeoutTests(_Base):
    """
    Backends that go silent, with ``backend_timeout = 1``.
    """

    def test_silent_backend(self) -> None:
        """
        A backend that accepts the request and never answers gives 504
        ``GatewayTimeout`` after about the timeout, and the daemon drops the
        backend connection.
        """
        path = f"/scripted/silent/{time.monotonic_ns()}"
        answer = send(self.setup.slow, "GET", path)
        assert_error(self, answer, 504, "GatewayTimeout", path)
        self.assertGreaterEqual(answer.elapsed, TIMEOUT * 0.9)
        self.assertLess(answer.elapsed, TIMEOUT + 4)
        [connection] = self.setup.backend.connections_for(path)
        self.setup.backend.wait_for(
            lambda: connection.closed is not None, "close after the timeout"
        )

    def test_silent_before_first_byte(self) -> None:
        """
        A backend that sends its headers and then nothing gives 504
        ``GatewayTimeout``: no byte of the body was sent, so the client still
        gets a proper error.
        """
        path = f"/scripted/stall/{MiB}/0?n={time.monotonic_ns()}"
        answer = send(self.setup.slow, "GET", path)
        assert_error(self, answer, 504, "GatewayTimeout")
        self.assertLess(answer.elapsed, TIMEOUT + 4)

    def _cut(
        self, path: str, sent: int, expected: int | None, daemon: Daemon | None = None
    ) -> float:
        """
        GET ``path`` and check that the body stops short with the connection
        cut: the client reads at most the ``sent`` bytes that came, and then
        a short read (http.client's C{IncompleteRead}) or a reset, never the
        end of a complete response.

        :param expected: the length the response announced, or None for a
            chunked response.
        :param daemon: the daemon to ask; the one with the short timeout if
            None.
        :return: seconds until the cut.
        """
        port = (daemon or self.setup.slow).port
        connection = http.client.HTTPConnection(LOCALHOST, port, timeout=30)
        started = time.monotonic()
        received = bytearray()
        with contextlib.closing(connection):
            connection.request("GET", path)
            response = connection.getresponse()
            self.assertEqual(response.status, 200)
            if expected is None:
                self.assertIsNone(response.getheader("content-length"))
                self.assertEqual(response.getheader("transfer-encoding"), "chunked")
            else:
                self.assertEqual(response.getheader("content-length"), str(expected))
            with self.assertRaises(
                (http.client.IncompleteRead, ConnectionResetError)
            ) as raised:
                while True:
                    piece = response.read(16 * 1024)
                    if not piece:
                        break
                    received += piece
        elapsed = time.monotonic() - started
        if isinstance(raised.exception, http.client.IncompleteRead):
            received += raised.exception.partial
        self.assertLessEqual(len(received), sent)
        self.assertEqual(bytes(received), pattern(0, len(received)))
        return elapsed

    def test_stall_mid_body(self) -> None:
        """
        A backend that stalls mid-body (with a ``Content-Length``): after the
        timeout the client's connection is cut, and the client sees a short
        read of exactly the bytes that came.
        """
        elapsed = self._cut(
            f"/scripted/stall/{MiB}/{100 * 1024}?n={time.monotonic_ns()}",
            100 * 1024,
            MiB,
        )
        self.assertGreaterEqual(elapsed, TIMEOUT * 0.9)
        self.assertLess(elapsed, TIMEOUT + 4)

    def test_stall_mid_chunked_body(self) -> None:
        """
        The same with a chunked backend response: the client's chunked
        response never gets its last chunk.
        """
        elapsed = self._cut(
            f"/scripted/chunked-stall/{100 * 1024}?n={time.monotonic_ns()}",
            100 * 1024,
            None,
        )
        self.assertLess(elapsed, TIMEOUT + 4)

    def test_backend_closes_mid_body(self) -> None:
        """
        A backend that closes its connection mid-body makes the daemon cut
        the client's connection at once: this daemon's backend timeout is the
        default minute, so no timeout is involved.
        """
        elapsed = self._cut(
            f"/scripted/close/{MiB}/{200 * 1024}?n={time.monotonic_ns()}",
            200 * 1024,
            MiB,
            self.daemon,
        )
        self.assertLess(elapsed, 10)

    def test_boto3_never_takes_a_short_body_for_whole(self) -> None:
        """
        boto3 reading an object whose backend stalls mid-body gets an error,
        never a short object.
        """
        client = s3_client(self.setup.slow.url, unsigned=True)
        body = client.get_object(Bucket="scripted", Key=f"stall/{MiB}/{100 * 1024}")[
            "Body"
        ]
        with self.assertRaises((IncompleteReadError, ResponseStreamingError)):
            body.read()

    def test_daemon_survives(self) -> None:
        """
        After all of that, the daemon still serves the scripted backend.
        """
        answer = send(self.setup.slow, "GET", "/scripted/body/1000")
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.body, pattern(0, 1000))
        self.assertTrue(self.setup.slow.running())


class SubresourceTests(_Base):
    """
    Sub-resources this version does not implement are refused, whatever the
    method, and never treated as object operations.
    """

    def _check(self, method: str, path: str, *, signed: bool = True) -> None:
        body = b""
        if method == "PUT":
            body = _TAGGING if "tagging" in path else b"overwritten!\n"
        answer = send(self.daemon, method, path, body=body, signed=signed)
        try:
            assert_error(self, answer, 501, "NotImplemented", path.split("?")[0])
        except AssertionError as e:
            raise AssertionError(f"{method} {path}: {e}") from None

    def test_bucket_level(self) -> None:
        """
        GET, PUT and DELETE of C{?acl}, C{?tagging}, C{?policy}, C{?cors},
        C{?versioning} and C{?lifecycle} on a bucket answer 501
        ``NotImplemented``; both buckets and their objects are untouched.
        """
        for bucket in ("sw", "local"):
            for name in SUBRESOURCES:
                for method in ("GET", "PUT", "DELETE"):
                    self._check(method, f"/{bucket}?{name}")
        self.assert_kept()

    def test_object_level(self) -> None:
        """
        The same on an object: a PUT C{?tagging} does not overwrite it, a
        DELETE C{?tagging} does not delete it, a GET C{?policy} does not
        return it.
        """
        for bucket in ("sw", "local"):
            for name in SUBRESOURCES:
                for method in ("GET", "PUT", "DELETE"):
                    self._check(method, f"/{bucket}/kept.txt?{name}")
        self.assert_kept()

    def test_with_a_value_and_other_parameters(self) -> None:
        """
        A sub-resource with a value or after other parameters is refused
        the same way.
        """
        for path in (
            "/local/kept.txt?x-id=GetObject&tagging",
            "/local/kept.txt?tagging=&versionId=null",
            "/local?list-type=2&acl=1",
        ):
            self._check("GET", path)
            self._check("DELETE", path)
        self.assert_kept()

    def test_anonymous(self) -> None:
        """
        An anonymous reader of a public bucket asking for a sub-resource of
        an object gets 501 too, not the object.
        """
        for name in SUBRESOURCES:
            self._check("GET", f"/public/kept.txt?{name}", signed=False)
            self._check("GET", f"/public?{name}", signed=False)

    def test_boto3(self) -> None:
        """
        boto3's own calls for tagging and ACLs get ``NotImplemented``.
        """
        client = self.client()
        calls = [
            lambda: client.get_object_tagging(Bucket="sw", Key="kept.txt"),
            lambda: client.put_object_tagging(
                Bucket="sw",
                Key="kept.txt",
                Tagging={"TagSet": [{"Key": "k", "Value": "v"}]},
            ),
            lambda: client.delete_object_tagging(Bucket="sw", Key="kept.txt"),
            lambda: client.get_object_acl(Bucket="local", Key="kept.txt"),
            lambda: client.get_bucket_policy(Bucket="sw"),
            lambda: client.get_bucket_versioning(Bucket="local"),
            lambda: client.get_bucket_cors(Bucket="sw"),
            lambda: client.get_bucket_lifecycle_configuration(Bucket="sw"),
        ]
        for call in calls:
            with self.assertRaises(ClientError) as raised:
                call()
            self.assertEqual(
                (http_status(raised.exception), error_code(raised.exception)),
                (501, "NotImplemented"),
            )
        self.assert_kept()


class ErrorDocumentTests(_Base):
    """
    Every error is an S3 error document with AWS's status and a request id.
    """

    def test_errors(self) -> None:
        """
        A range of failures each answer their S3 code and status, as XML with
        ``Code``, ``Message``, ``Resource`` and ``RequestId`` (equal to the
        ``x-amz-request-id`` header), typed ``application/xml``, with no
        traceback or HTML.
        """
        long_key = "k" * 1025
        cases: list[tuple[str, str, dict[str, Any], int, str, str | None]] = [
            (
                "GET",
                "/local/missing",
                {"signed": True},
                404,
                "NoSuchKey",
                "/local/missing",
            ),
            ("GET", "/sw/missing", {"signed": True}, 404, "NoSuchKey", "/sw/missing"),
            (
                "GET",
                "/no-such-bucket-here/k",
                {"signed": True},
                404,
                "NoSuchBucket",
                None,
            ),
            ("GET", "/local/kept.txt", {}, 403, "AccessDenied", "/local/kept.txt"),
            ("GET", "/sw?list-type=2", {}, 403, "AccessDenied", "/sw"),
            (
                "GET",
                "/local/kept.txt",
                {"signed": True, "access_key": "AKUNKNOWN"},
                403,
                "InvalidAccessKeyId",
                None,
            ),
            (
                "GET",
                "/local/kept.txt",
                {"signed": True, "secret_key": "wrong"},
                403,
                "SignatureDoesNotMatch",
                None,
            ),
            (
                "GET",
                "/local/kept.txt",
                {"headers": {"Authorization": "AWS4-HMAC-SHA256 garbage"}},
                400,
                "AuthorizationHeaderMalformed",
                None,
            ),
            (
                "GET",
                "/public/kept.txt",
                {"headers": {"Range": "bytes=1000-2000"}},
                416,
                "InvalidRange",
                None,
            ),
            (
                "GET",
                "/public/kept.txt",
                {"headers": {"If-Match": '"nope"'}},
                412,
                "PreconditionFailed",
                None,
            ),
            (
                "GET",
                "/public/kept.txt?response-content-type=text/html",
                {},
                400,
                "InvalidRequest",
                None,
            ),
            ("GET", "/public/a/../kept.txt", {}, 400, "InvalidArgument", None),
            ("GET", f"/public/{long_key}", {}, 400, "KeyTooLongError", None),
            ("GET", "/public/%FF", {}, 400, "InvalidURI", None),
            ("PATCH", "/public/kept.txt", {}, 405, "MethodNotAllowed", None),
            ("POST", "/", {}, 405, "MethodNotAllowed", None),
            ("GET", "/public?acl", {}, 501, "NotImplemented", "/public"),
            ("GET", "/dead/k", {}, 503, "ServiceUnavailable", "/dead/k"),
        ]
        for method, path, options, status, code, resource in cases:
            answer = send(self.daemon, method, path, **options)
            try:
                assert_error(self, answer, status, code, resource)
            except AssertionError as e:
                raise AssertionError(f"{method} {path}: {e}") from None

    def test_head_errors(self) -> None:
        """
        Errors to HEAD have the status and request id but no body.
        """
        for path, status in (
            ("/public/missing", 404),
            ("/local/kept.txt", 403),
            ("/dead/k", 503),
        ):
            answer = send(self.daemon, "HEAD", path)
            self.assertEqual(answer.status, status, path)
            self.assertEqual(answer.body, b"")
            self.assertTrue(answer.headers.get("x-amz-request-id"))

    def test_every_response_has_a_request_id(self) -> None:
        """
        Successes and 304s carry ``x-amz-request-id`` and ``x-amz-id-2`` too,
        each request its own id.
        """
        ok = send(self.daemon, "GET", "/public/kept.txt")
        self.assertEqual((ok.status, ok.body), (200, KEPT))
        etag = ok.headers["etag"]
        not_modified = send(
            self.daemon, "GET", "/public/kept.txt", headers={"If-None-Match": etag}
        )
        self.assertEqual(not_modified.status, 304)
        self.assertEqual(not_modified.body, b"")
        listing = send(self.daemon, "GET", "/public?list-type=2")
        self.assertEqual(listing.status, 200)
        ids = set()
        for answer in (ok, not_modified, listing):
            self.assertTrue(answer.headers.get("x-amz-id-2"))
            ids.add(answer.headers["x-amz-request-id"])
        self.assertEqual(len(ids), 3)


class WriteTests(_Base):
    """
    A large write streams through without the daemon holding it.
    """

    def test_large_put_bounded_memory(self) -> None:
        """
        A 50 MiB PutObject body is written to a directory store without the
        daemon's memory growing by more than a few MiB.
        """
        size = 50 * MiB
        block = bytes(range(256)) * 4096
        body = block * (size // len(block))
        request = AWSRequest(
            method="PUT", url=self.daemon.url + "/local/large.bin", data=body
        )
        request.context["client_config"] = _NoPayloadSigning()
        S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(
            request
        )
        self.assertEqual(request.headers["X-Amz-Content-SHA256"], "UNSIGNED-PAYLOAD")
        baseline = rss(self.daemon.pid)
        peak = baseline
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, rss(self.daemon.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        connection = http.client.HTTPConnection(LOCALHOST, self.daemon.port, timeout=60)
        try:
            with contextlib.closing(connection):
                headers = dict(request.headers.items())
                headers["Content-Length"] = str(size)
                connection.putrequest("PUT", "/local/large.bin")
                for name, value in headers.items():
                    connection.putheader(name, value)
                connection.endheaders()
                view = memoryview(body)
                for offset in range(0, size, MiB):
                    connection.send(view[offset : offset + MiB])
                response = connection.getresponse()
                answer = Answer(
                    response.status,
                    {n.lower(): v for n, v in response.getheaders()},
                    response.read(),
                    0.0,
                )
        finally:
            stop.set()
            sampler.join(10)
        self.assertEqual(answer.status, 200, answer.body)
        self.assertLess(peak - baseline, 8 * MiB, f"RSS {baseline} -> {peak}")
        self.assertEqual((self.setup.local_root / "large.bin").read_bytes(), body)
        self.assertTrue(self.daemon.running())


class _NoPayloadSigning:
    """
    Tells botocore's signer to send ``UNSIGNED-PAYLOAD``.
    """

    s3: Final = {"payload_signing_enabled": False}


def _content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode("ascii")
