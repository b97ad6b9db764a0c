# mypy: disable-error-code="no-untyped-call"
"""
The read path through real S3 backends, driven with boto3.

SeaweedFS (which verifies every signature multistore sends it) is the main
backend and moto the second: data is seeded straight into the backend, then
read through the daemon, and every answer is compared with what the backend
itself says about the same data, so the tests prove pass-through fidelity:
bodies, ETags, lengths, ranges, validators, metadata, listings page by page.

The virtual buckets live under a C{backend_prefix}, and the backend buckets
also hold keys outside it; neither the prefix nor those keys may ever show in
any response body or header.

The helpers at the top (raw signed requests, response capture, the error
document check) are shared with C{test_clients.py} and C{test_auth.py}.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Final
from unittest import mock
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit
from uuid import uuid4

import pytest
from attrs import define, field, frozen
from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.servers import (
    LOCALHOST,
    Daemon,
    DaemonFactory,
    S3Server,
    error_code,
    http_status,
    s3_client,
    unique_bucket_name,
)

#: Where virtual-hosted-style requests go (C{BUCKET.s3.test}); it does not
#: resolve, so requests connect to 127.0.0.1 and carry it in C{Host}.
DOMAIN: Final = "s3.test"

#: The region everything here signs for.
REGION: Final = "us-east-1"

#: Response headers that carry object data or validators and must be passed
#: through unchanged (plus every C{x-amz-meta-*}).
OBJECT_HEADERS: Final = (
    "accept-ranges",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-range",
    "content-type",
    "etag",
    "expires",
    "last-modified",
    "x-amz-mp-parts-count",
)

#: Keys that S3 stores as they are and that paths, queries and XML must carry
#: byte for byte. C{a//double} is not among them: SeaweedFS itself folds
#: empty segments (see L{DOUBLE_SLASH}).
ODD_KEYS: Final = (
    "spaces in/every segment.txt",
    "specials !('):@+,;$&.bin",
    "unicode/café/naïve.txt",
    "report*.pdf",
    "100%.txt",
    "100%25.txt",
    "tilde~hash#pipe|.bin",
    "brackets[1]{2}.bin",
    "literal-%3D-triplet.txt",
    "plus+sign",
    "=equals=",
)

#: A key with an empty segment. S3 (and moto) keep it; SeaweedFS stores it
#: as a directory tree, so its own listing shows C{a/double}.
DOUBLE_SLASH: Final = "a//double"

#: The error document every gateway error carries.
_ERROR_ELEMENTS: Final = ("Code", "Message", "Resource", "RequestId")

_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


# --- raw HTTP ----------------------------------------------------------------


@frozen
class RawResponse:
    """
    An HTTP response as received.

    :ivar status: the status code.
    :ivar headers: the header fields, names lower-cased, in order.
    :ivar body: the body.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """
        :return: the first value of header ``name``, or None.
        """
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None


def send_raw(
    port: int,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    timeout: float = 30.0,
    body: bytes = b"",
) -> RawResponse:
    """
    Send one request to 127.0.0.1 with the request target exactly as given
    (nothing normalised or re-encoded).

    :param port: the TCP port.
    :param method: the method.
    :param target: the path and query, already percent-encoded.
    :param headers: the header fields; a C{Host} given here is sent instead
        of C{127.0.0.1:PORT}.
    :param body: a body to send, with its C{Content-Length}.
    :return: the response.
    """
    connection = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout)
    try:
        names = {name.lower() for name, _ in headers}
        connection.putrequest(
            method,
            target,
            skip_host="host" in names,
            skip_accept_encoding=True,
        )
        for name, value in headers:
            connection.putheader(name, value.encode("utf-8"))
        if body and "content-length" not in names:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        body = response.read()
        return RawResponse(
            response.status,
            tuple((k.lower(), v) for k, v in response.getheaders()),
            body,
        )
    finally:
        connection.close()


def signed_headers(
    method: str,
    url: str,
    access_key: str,
    secret_key: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    when: datetime | None = None,
    region: str = REGION,
) -> list[tuple[str, str]]:
    """
    SigV4-sign a body-less S3 request with botocore's signer, over the path
    and query exactly as given in ``url``.

    :param url: C{http://HOST[:PORT]/PATH[?QUERY]}, already percent-encoded;
        the signed C{Host} is its authority.
    :param headers: further headers to sign and send.
    :param when: the signing time (now if None).
    :return: the headers to send, C{Host} included.
    """
    request = AWSRequest(method=method, url=url, headers=dict(headers))
    signer = S3SigV4Auth(Credentials(access_key, secret_key), "s3", region)
    if when is None:
        signer.add_auth(request)
    else:
        fixed = when.astimezone(UTC).replace(tzinfo=None)
        with mock.patch("botocore.auth.get_current_datetime", return_value=fixed):
            signer.add_auth(request)
    result = [("Host", urlsplit(url).netloc)]
    result.extend((name, str(value)) for name, value in request.headers.items())
    return result


def signed_request(
    daemon: Daemon,
    method: str,
    target: str,
    access_key: str,
    secret_key: str,
    *,
    host: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    when: datetime | None = None,
) -> RawResponse:
    """
    Send a SigV4-signed request to the daemon, the target exactly as given.

    :param target: the path and query, already percent-encoded.
    :param host: the C{Host} to sign and send (default C{127.0.0.1:PORT}).
    :return: the response.
    """
    authority = host or f"{LOCALHOST}:{daemon.port}"
    sent = signed_headers(
        method,
        f"http://{authority}{target}",
        access_key,
        secret_key,
        headers=headers,
        when=when,
    )
    return send_raw(daemon.port, method, target, sent)


def object_path(bucket: str, key: str) -> str:
    """
    :return: the path-style request path of ``key``, encoded as AWS
        encodes it (all but C{A-Z a-z 0-9 - . _ ~ /}).
    """
    return f"/{bucket}/{quote(key, safe='/')}"


def parse_error(body: bytes) -> dict[str, str]:
    """
    :return: the child elements of an S3 C{<Error>} document, by name.
    :raise AssertionError: if the body is not one.
    """
    root = etree.fromstring(body)
    if root.tag != "Error":
        raise AssertionError(f"not an S3 error document: {body[:200]!r}")
    return {child.tag: child.text or "" for child in root}


def check_error(
    case: SynchronousTestCase, response: RawResponse, status: int, code: str
) -> dict[str, str]:
    """
    Check that ``response`` is the S3 error ``code`` with ``status``: an
    C{<Error>} document with Code, Message, Resource and RequestId, the
    RequestId equal to the C{x-amz-request-id} header.

    :return: the document's elements.
    """
    case.assertEqual(
        (response.status, response.header("content-type")),
        (status, "application/xml"),
        response.body[:500],
    )
    document = parse_error(response.body)
    for name in _ERROR_ELEMENTS:
        case.assertIn(name, document)
    case.assertEqual(document["Code"], code)
    case.assertTrue(document["Message"])
    case.assertTrue(document["RequestId"])
    case.assertEqual(document["RequestId"], response.header("x-amz-request-id"))
    return document


def check_client_error(
    case: SynchronousTestCase, error: ClientError, status: int, code: str
) -> None:
    """
    Check a boto3 error: status, code, and an S3 error document whose
    RequestId is the C{x-amz-request-id} header.
    """
    case.assertEqual((http_status(error), error_code(error)), (status, code))
    details = error.response.get("Error", {})
    headers = error.response["ResponseMetadata"]["HTTPHeaders"]
    case.assertTrue(details.get("Message"))
    case.assertEqual(
        error.response["ResponseMetadata"].get("RequestId"),
        headers.get("x-amz-request-id"),
    )


@define
class Capture:
    """
    Keeps the raw status, headers and body of every response a boto3 client
    parses (through botocore's C{before-parse} event).
    """

    responses: list[tuple[int, dict[str, str], bytes]] = field(factory=list)

    def attach(self, client: Any) -> Any:
        """
        Record what ``client`` receives from now on.

        :return: ``client``.
        """
        client.meta.events.register("before-parse.s3.*", self._record)
        return client

    def _record(self, response_dict: dict[str, Any], **kwargs: Any) -> None:
        body = response_dict.get("body")
        self.responses.append(
            (
                int(response_dict.get("status_code", 0)),
                dict(response_dict.get("headers", {})),
                body if isinstance(body, bytes) else b"",
            )
        )

    def last_body(self) -> bytes:
        """
        :return: the body of the latest response.
        """
        return self.responses[-1][2]


def loopback_virtual_host(client: Any) -> Any:
    """
    Make a virtual-hosted boto3 client (endpoint C{http://DOMAIN:PORT})
    connect to 127.0.0.1 while keeping the signed C{Host} header.

    :return: ``client``.
    """

    def to_loopback(request: Any, **kwargs: Any) -> None:
        parts = urlsplit(request.url)
        request.headers["Host"] = parts.netloc
        request.url = urlunsplit(parts._replace(netloc=f"{LOCALHOST}:{parts.port}"))

    client.meta.events.register_first("before-send.s3.*", to_loopback)
    return client


def decoded_token(token: str) -> str:
    """
    :return: a continuation token's base64url content, as text (tokens are
        opaque, but a prefix spelled out in one would leak).
    """
    if not _TOKEN_RE.fullmatch(token):
        return token
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode(
            "utf-8", "replace"
        )
    except (binascii.Error, ValueError):
        return token


def pattern(size: int, seed: int) -> bytes:
    """
    :return: ``size`` bytes that differ at every offset from their
        neighbours' (so a shifted range cannot match).
    """
    block = hashlib.sha256(seed.to_bytes(4, "big")).digest()
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(block + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


# --- the world: backends, seeded data, one daemon ----------------------------

#: The body of C{docs/readme.txt}.
README: Final = pattern(1000, 1)
#: The parts of the multipart object C{big/multipart.bin}.
PARTS: Final = (pattern(5 * 1024 * 1024, 2), pattern(1234, 3))
#: Keys of the listing tree (no sibling names where a C{/} competes with a
#: smaller byte, so SeaweedFS's per-directory order is S3's order).
TREE: Final = (
    "tree/a.txt",
    "tree/b/1.txt",
    "tree/b/2.txt",
    "tree/c/deep/x.txt",
    "tree/d.txt",
    "tree/e/f.txt",
    "tree/e/g.txt",
    "tree/z.txt",
)
#: Directory-marker layout: an explicit zero-byte C{dir/} marker, a file in
#: it, and a zero-byte object without a slash.
MARKERS: Final = {
    "markers/dir/": b"",
    "markers/dir/file.txt": b"f",
    "markers/empty": b"",
}

#: The reader's static credential: every bucket, read actions.
READER: Final = ("AKREADPATH0000000001", "read-path-reader-secret")


@define
class Side:
    """
    One backend as the tests see it.

    :ivar name: C{seaweedfs} or C{moto}.
    :ivar server: the backend service.
    :ivar backend_bucket: the real bucket.
    :ivar prefix: the virtual bucket's C{backend_prefix}.
    :ivar bucket: the virtual bucket (with the prefix).
    :ivar plain_bucket: a virtual bucket on the same real bucket, no prefix.
    :ivar secrets: strings that must never appear in a response.
    :ivar keys: every virtual key seeded under the prefix.
    """

    name: str
    server: S3Server
    backend_bucket: str
    prefix: str
    bucket: str
    plain_bucket: str
    secrets: tuple[str, ...]
    keys: list[str] = field(factory=list)

    def backend(self) -> Any:
        """
        :return: a boto3 client of the backend itself.
        """
        return self.server.client()

    def backend_key(self, key: str) -> str:
        """
        :return: where virtual ``key`` lives in the real bucket.
        """
        return f"{self.prefix}/{key}"

    def backend_listing(self, prefix: str = "", delimiter: str = "") -> Any:
        """
        The backend's own complete listing under the backend prefix, mapped to
        virtual keys, as ``(objects, common_prefixes)``; objects are
        ``(key, size, etag)``.
        """
        client = self.backend()
        params: dict[str, Any] = {
            "Bucket": self.backend_bucket,
            "Prefix": f"{self.prefix}/{prefix}",
        }
        if delimiter:
            params["Delimiter"] = delimiter
        objects, prefixes = [], []
        head = self.prefix + "/"
        for page in client.get_paginator("list_objects_v2").paginate(**params):
            for entry in page.get("Contents", []):
                assert entry["Key"].startswith(head)
                objects.append(
                    (entry["Key"][len(head) :], entry["Size"], entry["ETag"])
                )
            for common in page.get("CommonPrefixes", []):
                prefixes.append(common["Prefix"][len(head) :])
        return objects, prefixes


@define
class ReadWorld:
    """
    The module's daemon and what it serves.

    :ivar daemon: the daemon (path style, and virtual-hosted for
        L{DOMAIN}).
    :ivar sides: the two backends, by name.
    :ivar public_bucket: an C{anonymous_access} bucket on SeaweedFS.
    :ivar gone_bucket: a bucket whose real bucket does not exist.
    """

    daemon: Daemon
    sides: dict[str, Side]
    public_bucket: str
    gone_bucket: str

    def client(self, **config: Any) -> Any:
        """
        :return: a path-style boto3 client of the daemon, as the reader.
        """
        return s3_client(self.daemon.url, *READER, **config)

    def anonymous(self) -> Any:
        """
        :return: an unsigned boto3 client of the daemon.
        """
        return s3_client(self.daemon.url, unsigned=True)


def _seed(side: Side) -> None:
    client = side.backend()
    bucket = side.backend_bucket

    def put(key: str, body: bytes, **extra: Any) -> None:
        client.put_object(Bucket=bucket, Key=side.backend_key(key), Body=body, **extra)
        side.keys.append(key)

    put(
        "docs/readme.txt",
        README,
        ContentType="text/plain; charset=utf-8",
        CacheControl="max-age=60",
        ContentLanguage="en",
        ContentDisposition='inline; filename="readme.txt"',
        Metadata={"color": "blue", "owner-name": "alice"},
    )
    upload = client.create_multipart_upload(
        Bucket=bucket, Key=side.backend_key("big/multipart.bin")
    )
    etags = []
    for number, part in enumerate(PARTS, 1):
        answer = client.upload_part(
            Bucket=bucket,
            Key=side.backend_key("big/multipart.bin"),
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=part,
        )
        etags.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(
        Bucket=bucket,
        Key=side.backend_key("big/multipart.bin"),
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": etags},
    )
    side.keys.append("big/multipart.bin")
    for key in TREE:
        put(key, f"tree object {key}".encode())
    for key, body in MARKERS.items():
        put(key, body)
    for key in ODD_KEYS:
        put("odd/" + key, f"odd object {key}".encode())
    # The marker of the backend prefix itself, and neighbours outside it.
    client.put_object(Bucket=bucket, Key=side.prefix + "/", Body=b"")
    client.put_object(Bucket=bucket, Key="outside.txt", Body=b"outside")
    client.put_object(Bucket=bucket, Key=side.prefix + "-sibling/leak.txt", Body=b"x")
    client.put_object(
        Bucket=bucket, Key=side.prefix.split("/")[0] + "/other/leak.txt", Body=b"y"
    )


def _side(name: str, server: S3Server) -> Side:
    root = f"zq{uuid4().hex[:10]}"
    backend_bucket = server.create_bucket(unique_bucket_name("readpath"))
    side = Side(
        name=name,
        server=server,
        backend_bucket=backend_bucket,
        prefix=f"{root}/tenant",
        bucket=f"{name}-data",
        plain_bucket=f"{name}-plain",
        secrets=(root, backend_bucket),
    )
    _seed(side)
    return side


def start_world(
    factory: DaemonFactory, seaweedfs: S3Server, moto: S3Server
) -> ReadWorld:
    """
    Seed both backends and start one daemon serving them.
    """
    sides = {"seaweedfs": _side("seaweedfs", seaweedfs), "moto": _side("moto", moto)}
    buckets: list[dict[str, Any]] = []
    for side in sides.values():
        options = side.server.backend_options(side.backend_bucket)
        buckets.append(
            {
                "name": side.bucket,
                "backend_type": "s3",
                "backend_prefix": side.prefix,
                "backend_options": options,
            }
        )
        buckets.append(
            {
                "name": side.plain_bucket,
                "backend_type": "s3",
                "backend_options": options,
            }
        )
    weed = sides["seaweedfs"]
    buckets.append(
        {
            "name": "public",
            "backend_type": "s3",
            "backend_prefix": weed.prefix,
            "anonymous_access": True,
            "backend_options": weed.server.backend_options(weed.backend_bucket),
        }
    )
    buckets.append(
        {
            "name": "gone",
            "backend_type": "s3",
            "backend_options": weed.server.backend_options(
                unique_bucket_name("never-created")
            ),
        }
    )
    config = {
        "buckets": buckets,
        "credentials": [
            {
                "access_key_id": READER[0],
                "secret_access_key": READER[1],
                "principal_name": "reader",
                "allowed_scopes": [
                    {
                        "bucket": "*",
                        "prefixes": [],
                        "actions": ["get_object", "head_object", "list_bucket"],
                    }
                ],
            }
        ],
    }
    daemon = factory(config, domains=(DOMAIN,))
    return ReadWorld(daemon, sides, "public", "gone")


@pytest.fixture(scope="module")
def read_world(
    module_multistore_daemon: DaemonFactory,
    seaweedfs: S3Server,
    moto_server: S3Server,
) -> ReadWorld:
    """
    The seeded backends and the daemon, for this module.
    """
    return start_world(module_multistore_daemon, seaweedfs, moto_server)


def _object_headers(response: dict[str, Any]) -> dict[str, str]:
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    return {
        name: value
        for name, value in headers.items()
        if name in OBJECT_HEADERS or name.startswith("x-amz-meta-")
    }


def _outcome(
    call: Callable[[], dict[str, Any]],
) -> tuple[int, str, dict[str, str], bytes]:
    """
    :return: ``(status, error code or "", object headers, body)`` of a boto3
        GetObject/HeadObject call, errors included.
    """
    try:
        response = call()
    except ClientError as e:
        headers = e.response["ResponseMetadata"]["HTTPHeaders"]
        kept = {k: v for k, v in headers.items() if k == "content-range"}
        return http_status(e), error_code(e), kept, b""
    body = response["Body"].read() if "Body" in response else b""
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        "",
        _object_headers(response),
        body,
    )


# --- tests -------------------------------------------------------------------


class _SideTests:
    """
    Mixed into test cases: gives each test C{self.world}, C{self.side} (the
    backend named by C{side_name}), C{self.client} (the reader, path style)
    and C{self.capture} (what that client received).
    """

    side_name = "seaweedfs"

    @pytest.fixture(autouse=True)
    def _world(self, read_world: ReadWorld) -> None:
        self.world = read_world
        self.side = read_world.sides[self.side_name]
        self.capture = Capture()
        self.client = self.capture.attach(read_world.client())

    def assert_no_leak(self, response: RawResponse | None = None) -> None:
        """
        Check that nothing captured (and ``response``, if given) names the
        backend prefix or the real bucket, in a body, a header, or a
        continuation token.
        """
        seen = list(self.capture.responses)
        if response is not None:
            seen.append((response.status, dict(response.headers), response.body))
        for status, headers, body in seen:
            texts = [body.decode("utf-8", "replace")]
            texts.extend(f"{k}: {v}" for k, v in headers.items())
            for token in re.findall(rb"ContinuationToken>([^<]*)<", body):
                texts.append(decoded_token(token.decode("ascii", "replace")))
            for secret in self.side.secrets:
                for text in texts:
                    self.assertNotIn(secret, text, f"leaked in a {status} response")


class ObjectReadMixin(_SideTests):
    """
    GetObject and HeadObject against what the backend says.

    :cvar honours_part_number: whether the backend answers C{partNumber}
        with that part (else only parity with the backend is checked).
    """

    honours_part_number = True

    def _both(
        self, key: str, **params: Any
    ) -> tuple[tuple[int, str, dict[str, str], bytes], ...]:
        ours = _outcome(
            lambda: self.client.get_object(Bucket=self.side.bucket, Key=key, **params)
        )
        theirs = _outcome(
            lambda: self.side.backend().get_object(
                Bucket=self.side.backend_bucket,
                Key=self.side.backend_key(key),
                **params,
            )
        )
        return ours, theirs

    def test_get_object(self) -> None:
        """
        A GetObject answers the backend's body, ETag, length, type,
        Last-Modified, caching headers and C{x-amz-meta-*}, byte for byte, and
        nothing that names the backend.
        """
        ours, theirs = self._both("docs/readme.txt")
        self.assertEqual(ours, theirs)
        status, _, headers, body = ours
        self.assertEqual((status, body), (200, README))
        self.assertEqual(headers["content-length"], "1000")
        self.assertEqual(headers["x-amz-meta-color"], "blue")
        self.assertEqual(headers["x-amz-meta-owner-name"], "alice")
        self.assertEqual(headers["cache-control"], "max-age=60")
        self.assertEqual(headers["etag"], f'"{hashlib.md5(README).hexdigest()}"')
        response = self.client.get_object(
            Bucket=self.side.bucket, Key="docs/readme.txt"
        )
        backend = self.side.backend().get_object(
            Bucket=self.side.backend_bucket,
            Key=self.side.backend_key("docs/readme.txt"),
        )
        # S3 sends metadata names in lower case, and clients use them as keys.
        self.assertEqual(response["Metadata"], {"color": "blue", "owner-name": "alice"})
        self.assertEqual(response["Metadata"], backend["Metadata"])
        everything = response["ResponseMetadata"]["HTTPHeaders"]
        self.assertEqual(
            everything["x-amz-request-id"], response["ResponseMetadata"]["RequestId"]
        )
        self.assertEqual(everything.get("server"), "multistore")
        self.assertFalse([h for h in everything if h.startswith("seaweed")])
        self.assert_no_leak()

    def test_head_object(self) -> None:
        """
        HeadObject gives the headers GetObject gives (from the backend's
        HEAD), and no body.
        """
        ours = self.client.head_object(Bucket=self.side.bucket, Key="docs/readme.txt")
        theirs = self.side.backend().head_object(
            Bucket=self.side.backend_bucket,
            Key=self.side.backend_key("docs/readme.txt"),
        )
        self.assertEqual(_object_headers(ours), _object_headers(theirs))
        self.assertEqual(ours["ContentLength"], 1000)
        raw = signed_request(
            self.world.daemon,
            "HEAD",
            object_path(self.side.bucket, "docs/readme.txt"),
            *READER,
        )
        self.assertEqual((raw.status, raw.body), (200, b""))
        self.assertEqual(raw.header("content-length"), "1000")

    def test_ranges(self) -> None:
        """
        Byte ranges, suffix ranges and open ranges answer 206 with the
        backend's Content-Range, length and bytes.
        """
        cases = {
            "bytes=0-0": README[:1],
            "bytes=10-99": README[10:100],
            "bytes=-7": README[-7:],
            "bytes=990-": README[990:],
            "bytes=995-5000": README[995:],
        }
        for header, expected in cases.items():
            ours, theirs = self._both("docs/readme.txt", Range=header)
            self.assertEqual(ours, theirs, header)
            status, _, headers, body = ours
            self.assertEqual((status, body), (206, expected), header)
            self.assertEqual(headers["content-length"], str(len(expected)))
        ours, _ = self._both("docs/readme.txt", Range="bytes=-7")
        self.assertEqual(ours[2]["content-range"], "bytes 993-999/1000")

    def test_unsatisfiable_range(self) -> None:
        """
        A range past the end is 416 C{InvalidRange} with
        C{Content-Range: bytes */1000}.
        """
        ours, theirs = self._both("docs/readme.txt", Range="bytes=1000-2000")
        self.assertEqual(ours[:2], (416, "InvalidRange"))
        self.assertEqual(ours[:2], theirs[:2])
        self.assertEqual(ours[2].get("content-range"), "bytes */1000")
        raw = signed_request(
            self.world.daemon,
            "GET",
            object_path(self.side.bucket, "docs/readme.txt"),
            *READER,
            headers=[("Range", "bytes=1000-2000")],
        )
        check_error(self, raw, 416, "InvalidRange")
        self.assert_no_leak(raw)

    def test_conditional_requests(self) -> None:
        """
        C{If-Match}, C{If-None-Match}, C{If-Modified-Since} and
        C{If-Unmodified-Since} give 200, 304 or 412 as S3 does, and as the
        backend does.
        """
        head = self.side.backend().head_object(
            Bucket=self.side.backend_bucket,
            Key=self.side.backend_key("docs/readme.txt"),
        )
        etag = head["ETag"]
        modified = head["LastModified"].astimezone(UTC)
        before = modified - timedelta(days=1)
        after = modified + timedelta(days=1)
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"IfMatch": etag}, 200, ""),
            (
                {"IfMatch": '"0123456789abcdef0123456789abcdef"'},
                412,
                "PreconditionFailed",
            ),
            ({"IfNoneMatch": etag}, 304, "304"),
            ({"IfNoneMatch": '"0123456789abcdef0123456789abcdef"'}, 200, ""),
            ({"IfModifiedSince": modified}, 304, "304"),
            ({"IfModifiedSince": before}, 200, ""),
            ({"IfUnmodifiedSince": before}, 412, "PreconditionFailed"),
            ({"IfUnmodifiedSince": after}, 200, ""),
        ]
        for params, status, code in cases:
            ours, theirs = self._both("docs/readme.txt", **params)
            self.assertEqual(ours[:2], (status, code), params)
            self.assertEqual(ours[:2], theirs[:2], params)
            if status == 200:
                self.assertEqual(ours[3], README)
        # A 304 carries the validators and no body.
        raw = signed_request(
            self.world.daemon,
            "GET",
            object_path(self.side.bucket, "docs/readme.txt"),
            *READER,
            headers=[("If-None-Match", etag)],
        )
        self.assertEqual((raw.status, raw.body), (304, b""))
        self.assertEqual(raw.header("etag"), etag)
        self.assertIsNotNone(raw.header("x-amz-request-id"))
        raw = signed_request(
            self.world.daemon,
            "GET",
            object_path(self.side.bucket, "docs/readme.txt"),
            *READER,
            headers=[("If-Unmodified-Since", format_datetime(before, usegmt=True))],
        )
        check_error(self, raw, 412, "PreconditionFailed")

    def test_response_overrides(self) -> None:
        """
        On a signed GetObject the C{response-content-*}, C{response-expires}
        and C{response-cache-control} parameters set those headers; the body
        is unchanged.
        """
        overrides = {
            "ResponseContentType": "application/x-custom",
            "ResponseContentDisposition": 'attachment; filename="über report.txt"',
            "ResponseCacheControl": "no-store",
            "ResponseContentLanguage": "fr",
            "ResponseContentEncoding": "identity",
            "ResponseExpires": datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC),
        }
        response = self.client.get_object(
            Bucket=self.side.bucket, Key="docs/readme.txt", **overrides
        )
        headers = response["ResponseMetadata"]["HTTPHeaders"]
        self.assertEqual(response["Body"].read(), README)
        self.assertEqual(headers["content-type"], "application/x-custom")
        self.assertEqual(
            headers["content-disposition"], 'attachment; filename="über report.txt"'
        )
        self.assertEqual(headers["cache-control"], "no-store")
        self.assertEqual(headers["content-language"], "fr")
        self.assertEqual(headers["content-encoding"], "identity")
        self.assertEqual(
            parsedate_to_datetime(headers["expires"]),
            datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC),
        )
        # The same overrides on the backend give the same headers.
        theirs = self.side.backend().get_object(
            Bucket=self.side.backend_bucket,
            Key=self.side.backend_key("docs/readme.txt"),
            ResponseContentType="application/x-custom",
        )
        self.assertEqual(theirs["ContentType"], response["ContentType"])

    def test_part_number(self) -> None:
        """
        C{partNumber} reads one part of a multipart object, as the backend
        does; it cannot be combined with a Range, and must be 1 to 10000.
        """
        for number, part in enumerate(PARTS, 1):
            ours, theirs = self._both("big/multipart.bin", PartNumber=number)
            self.assertEqual(ours[:3], theirs[:3], number)
            self.assertTrue(ours[3] == theirs[3], number)
            if not self.honours_part_number:
                continue
            self.assertEqual(ours[0], 206, number)
            self.assertTrue(ours[3] == part, number)
            self.assertEqual(ours[2]["x-amz-mp-parts-count"], "2")
            start = len(PARTS[0]) * (number - 1)
            self.assertEqual(
                ours[2]["content-range"],
                f"bytes {start}-{start + len(part) - 1}/{sum(map(len, PARTS))}",
            )
        whole = self.client.get_object(Bucket=self.side.bucket, Key="big/multipart.bin")
        self.assertEqual(whole["Body"].read(), b"".join(PARTS))
        path = object_path(self.side.bucket, "big/multipart.bin")
        raw = signed_request(
            self.world.daemon,
            "GET",
            path + "?partNumber=1",
            *READER,
            headers=[("Range", "bytes=0-1")],
        )
        check_error(self, raw, 400, "InvalidRequest")
        for bad in ("0", "10001", "x"):
            raw = signed_request(
                self.world.daemon, "GET", f"{path}?partNumber={bad}", *READER
            )
            check_error(self, raw, 400, "InvalidArgument")

    def test_missing_key(self) -> None:
        """
        A missing key is 404 C{NoSuchKey} for GetObject (with the error
        document naming the virtual resource) and 404 for HeadObject.
        """
        with self.assertRaises(ClientError) as raised:
            self.client.get_object(Bucket=self.side.bucket, Key="docs/missing.txt")
        check_client_error(self, raised.exception, 404, "NoSuchKey")
        with self.assertRaises(ClientError) as raised:
            self.client.head_object(Bucket=self.side.bucket, Key="docs/missing.txt")
        self.assertEqual(http_status(raised.exception), 404)
        raw = signed_request(
            self.world.daemon,
            "GET",
            object_path(self.side.bucket, "docs/missing.txt"),
            *READER,
        )
        document = check_error(self, raw, 404, "NoSuchKey")
        self.assertEqual(document["Resource"], f"/{self.side.bucket}/docs/missing.txt")
        self.assert_no_leak(raw)


class SeaweedFSObjectReadTests(ObjectReadMixin, SynchronousTestCase):
    """
    Object reads through SeaweedFS.
    """

    side_name = "seaweedfs"


class MotoObjectReadTests(ObjectReadMixin, SynchronousTestCase):
    """
    Object reads through moto.
    """

    side_name = "moto"
    # moto answers partNumber with the whole object and a 200.
    honours_part_number = False


class ListingMixin(_SideTests):
    """
    ListObjectsV2 and ListObjects over a bucket with a backend prefix,
    against the backend's own listing.
    """

    def _v2_pages(self, **params: Any) -> list[dict[str, Any]]:
        pages = []
        token = None
        for _ in range(200):
            extra = dict(params)
            if token is not None:
                extra["ContinuationToken"] = token
            page = self.client.list_objects_v2(Bucket=self.side.bucket, **extra)
            pages.append(page)
            if not page["IsTruncated"]:
                return pages
            token = page["NextContinuationToken"]
            self.assertTrue(token)
        raise AssertionError("the listing never ended")

    def _v1_pages(self, **params: Any) -> list[dict[str, Any]]:
        pages = []
        marker = None
        for _ in range(200):
            extra = dict(params)
            if marker is not None:
                extra["Marker"] = marker
            page = self.client.list_objects(Bucket=self.side.bucket, **extra)
            pages.append(page)
            if not page["IsTruncated"]:
                return pages
            marker = page["NextMarker"]
            self.assertTrue(marker)
        raise AssertionError("the listing never ended")

    @staticmethod
    def _keys(pages: Sequence[dict[str, Any]]) -> list[str]:
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    @staticmethod
    def _prefixes(pages: Sequence[dict[str, Any]]) -> list[str]:
        return [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]

    def _expected(
        self, prefix: str = "", delimiter: str = ""
    ) -> tuple[list[Any], list[str]]:
        """
        The backend's own listing in virtual terms, less the directory
        markers multistore leaves out: the backend prefix's own marker, and
        a zero-byte C{.../} object equal to the listing's prefix.
        """
        objects, prefixes = self.side.backend_listing(prefix, delimiter)
        kept = [
            o
            for o in objects
            if o[0] != "" and not (o[1] == 0 and o[0].endswith("/") and o[0] == prefix)
        ]
        return kept, prefixes

    def test_v2_pages(self) -> None:
        """
        ListObjectsV2 paged two keys at a time gives exactly the backend's
        keys under the prefix, in order, with sizes and ETags, none outside
        it, and no trace of the prefix in any page.
        """
        pages = self._v2_pages(MaxKeys=2)
        expected, _ = self._expected()
        got = [(o["Key"], o["Size"], o["ETag"]) for p in pages for o in p["Contents"]]
        self.assertEqual(got, expected)
        self.assertGreater(len(pages), 10)
        for page in pages:
            self.assertEqual(page["KeyCount"], len(page.get("Contents", [])))
            self.assertLessEqual(page["KeyCount"], 2)
        keys = [k for k, _, _ in got]
        self.assertIn("docs/readme.txt", keys)
        self.assertIn("markers/empty", keys)
        self.assertNotIn("outside.txt", keys)
        self.assertFalse([k for k in keys if "leak" in k])
        self.assertEqual(len(keys), len(set(keys)))
        self.assert_no_leak()

    def test_v1_pages(self) -> None:
        """
        ListObjects (V1) paged with C{marker} and C{NextMarker} works over a
        backend prefix: every NextMarker is a virtual key, and the pages
        together are the whole listing.
        """
        pages = self._v1_pages(MaxKeys=3)
        expected, _ = self._expected()
        self.assertEqual(self._keys(pages), [k for k, _, _ in expected])
        for page in pages[:-1]:
            self.assertEqual(page["NextMarker"], page["Contents"][-1]["Key"])
        self.assertNotIn("NextMarker", pages[-1])
        self.assert_no_leak()

    def test_delimiter_pages(self) -> None:
        """
        With a delimiter, keys and common prefixes page one at a time, V1 and
        V2 alike, and match the backend's.
        """
        objects, prefixes = self._expected("tree/", "/")
        self.assertEqual(prefixes, ["tree/b/", "tree/c/", "tree/e/"])
        for pages in (
            self._v2_pages(Prefix="tree/", Delimiter="/", MaxKeys=1),
            self._v1_pages(Prefix="tree/", Delimiter="/", MaxKeys=1),
        ):
            self.assertEqual(self._keys(pages), [k for k, _, _ in objects])
            self.assertEqual(self._prefixes(pages), prefixes)
            self.assertEqual(len(pages), len(objects) + len(prefixes))
            for page in pages:
                self.assertEqual(page["Prefix"], "tree/")
                self.assertEqual(page["Delimiter"], "/")
        top = self._v2_pages(Delimiter="/")
        self.assertEqual(
            self._prefixes(top), ["big/", "docs/", "markers/", "odd/", "tree/"]
        )
        self.assertEqual(self._keys(top), [])
        self.assert_no_leak()

    def test_start_after(self) -> None:
        """
        C{start-after} (V2) and C{marker} (V1) are virtual keys: the listing
        resumes right after them.
        """
        expected = [k for k, _, _ in self._expected("tree/")[0]]
        for index in (0, 3, len(expected) - 1):
            after = expected[index]
            page = self.client.list_objects_v2(
                Bucket=self.side.bucket, Prefix="tree/", StartAfter=after
            )
            self.assertEqual(self._keys([page]), expected[index + 1 :], after)
            self.assertEqual(page["StartAfter"], after)
            page = self.client.list_objects(
                Bucket=self.side.bucket, Prefix="tree/", Marker=after
            )
            self.assertEqual(self._keys([page]), expected[index + 1 :], after)
            self.assertEqual(page["Marker"], after)
        # A position before every key lists them all; start-after plus a
        # continuation token continues from the token.
        pages = self._v2_pages(Prefix="tree/", StartAfter="tree/", MaxKeys=3)
        self.assertEqual(self._keys(pages), expected)
        self.assert_no_leak()

    def test_encoding_type_url(self) -> None:
        """
        With C{encoding-type=url} keys and prefixes arrive percent-encoded in
        the XML (nothing but ASCII, a C{+} as C{%2B}) and decode to the exact
        keys; boto3, which asks for it itself, gets the keys back exactly.
        """
        expected = sorted("odd/" + k for k in ODD_KEYS)
        pages = self._v2_pages(Prefix="odd/", MaxKeys=4)
        self.assertEqual(sorted(self._keys(pages)), expected)
        self.assertEqual(sorted(self._keys(self._v1_pages(Prefix="odd/"))), expected)
        backend_keys = [k for k, _, _ in self.side.backend_listing("odd/")[0]]
        self.assertEqual(self._keys(pages), backend_keys)
        for body in [b for _, _, b in self.capture.responses]:
            root = etree.fromstring(body)
            ns = {"s3": root.nsmap[None]}
            self.assertEqual(root.findtext("s3:EncodingType", namespaces=ns), "url")
            for element in root.iterfind(".//s3:Key", ns):
                raw = element.text or ""
                self.assertRegex(raw, r"^[A-Za-z0-9\-._~/%+]*$")
                self.assertIn(unquote_plus(raw), expected)
        # Without encoding-type, the keys are in the XML as they are.
        raw = signed_request(
            self.world.daemon,
            "GET",
            f"/{self.side.bucket}?list-type=2&prefix=odd%2F",
            *READER,
        )
        self.assertEqual(raw.status, 200)
        root = etree.fromstring(raw.body)
        ns = {"s3": root.nsmap[None]}
        self.assertIsNone(root.find("s3:EncodingType", ns))
        self.assertEqual(
            sorted(e.text or "" for e in root.iterfind(".//s3:Key", ns)), expected
        )
        # Delimiters and prefixes with odd characters.
        page = self.client.list_objects_v2(
            Bucket=self.side.bucket, Prefix="odd/spaces in/", Delimiter="/"
        )
        self.assertEqual(self._keys([page]), ["odd/spaces in/every segment.txt"])
        self.assertEqual(page["Prefix"], "odd/spaces in/")
        page = self.client.list_objects_v2(
            Bucket=self.side.bucket, Prefix="odd/", Delimiter="/"
        )
        self.assertEqual(
            self._prefixes([page]),
            ["odd/spaces in/", "odd/unicode/"],
        )
        self.assert_no_leak(raw)

    def test_directory_markers(self) -> None:
        """
        The zero-byte C{dir/} marker is not listed when listing
        C{prefix=dir/} (only what is in it is), while a zero-byte object
        without a slash is always listed; the backend prefix's own marker is
        never listed.
        """
        inside = self._v2_pages(Prefix="markers/dir/")
        self.assertEqual(self._keys(inside), ["markers/dir/file.txt"])
        self.assertEqual(
            self._keys(self._v1_pages(Prefix="markers/dir/")), ["markers/dir/file.txt"]
        )
        around = self._v2_pages(Prefix="markers/")
        keys = self._keys(around)
        self.assertIn("markers/empty", keys)
        self.assertIn("markers/dir/file.txt", keys)
        self.assertEqual(keys, [k for k, _, _ in self._expected("markers/")[0]])
        grouped = self.client.list_objects_v2(
            Bucket=self.side.bucket, Prefix="markers/", Delimiter="/"
        )
        self.assertEqual(self._keys([grouped]), ["markers/empty"])
        self.assertEqual(self._prefixes([grouped]), ["markers/dir/"])
        for page in self._v2_pages() + self._v1_pages():
            self.assertNotIn("", [o["Key"] for o in page.get("Contents", [])])
        # The marker itself can still be read by name.
        marker = self.client.get_object(Bucket=self.side.bucket, Key="markers/dir/")
        self.assertEqual(marker["Body"].read(), b"")

    def test_prefix_escapes(self) -> None:
        """
        Listing prefixes, markers and start-after positions that try to climb
        out of the backend prefix find nothing outside it.
        """
        for prefix in ("../", "..", "./", "../other/", "/", "-sibling/"):
            pages = self._v2_pages(Prefix=prefix)
            for key in self._keys(pages):
                self.assertTrue(key.startswith(prefix), (prefix, key))
                self.assertNotIn("leak", key)
        page = self.client.list_objects(Bucket=self.side.bucket, Marker="../")
        self.assertNotIn("outside.txt", self._keys([page]))
        self.assertFalse([k for k in self._keys([page]) if "leak" in k])
        self.assert_no_leak()

    def test_bad_continuation_token(self) -> None:
        """
        A continuation token multistore did not make is 400
        C{InvalidArgument}.
        """
        for token in ("not-a-token", "AAAA", "%2E%2E"):
            raw = signed_request(
                self.world.daemon,
                "GET",
                f"/{self.side.bucket}?list-type=2&continuation-token={token}",
                *READER,
            )
            check_error(self, raw, 400, "InvalidArgument")

    def test_plain_bucket(self) -> None:
        """
        A bucket without a backend prefix shows the real bucket's keys as
        they are, prefix included.
        """
        pages = self.capture.attach(self.world.client()).list_objects_v2(
            Bucket=self.side.plain_bucket, Prefix=self.side.prefix + "/docs/"
        )
        self.assertEqual(self._keys([pages]), [self.side.prefix + "/docs/readme.txt"])
        body = self.client.get_object(
            Bucket=self.side.plain_bucket, Key=self.side.backend_key("docs/readme.txt")
        )["Body"].read()
        self.assertEqual(body, README)


class SeaweedFSListingTests(ListingMixin, SynchronousTestCase):
    """
    Listings through SeaweedFS.
    """

    side_name = "seaweedfs"


class MotoListingTests(ListingMixin, SynchronousTestCase):
    """
    Listings through moto.
    """

    side_name = "moto"


class BucketTests(_SideTests, SynchronousTestCase):
    """
    ListBuckets, HeadBucket, GetBucketLocation.
    """

    def test_list_buckets(self) -> None:
        """
        The reader (every bucket) sees every configured bucket; the anonymous
        caller sees only the anonymous one.
        """
        names = [b["Name"] for b in self.client.list_buckets()["Buckets"]]
        self.assertEqual(
            names,
            sorted(
                [
                    "gone",
                    "moto-data",
                    "moto-plain",
                    "public",
                    "seaweedfs-data",
                    "seaweedfs-plain",
                ]
            ),
        )
        anonymous = [
            b["Name"] for b in self.world.anonymous().list_buckets()["Buckets"]
        ]
        self.assertEqual(anonymous, ["public"])
        self.assert_no_leak()

    def test_head_bucket(self) -> None:
        """
        HeadBucket is 200 with the region for a bucket whose store is there,
        404 for one whose real bucket is gone.
        """
        answer = self.client.head_bucket(Bucket=self.side.bucket)
        self.assertEqual(
            answer["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"], REGION
        )
        with self.assertRaises(ClientError) as raised:
            self.client.head_bucket(Bucket="gone")
        self.assertEqual(http_status(raised.exception), 404)
        raw = signed_request(self.world.daemon, "GET", "/gone?list-type=2", *READER)
        check_error(self, raw, 404, "NoSuchBucket")
        self.assert_no_leak(raw)

    def test_get_bucket_location(self) -> None:
        """
        GetBucketLocation answers an empty C{LocationConstraint} for
        us-east-1, as AWS does.
        """
        answer = self.client.get_bucket_location(Bucket=self.side.bucket)
        self.assertIsNone(answer.get("LocationConstraint"))
        root = etree.fromstring(self.capture.last_body())
        self.assertEqual(etree.QName(root).localname, "LocationConstraint")
        self.assertFalse(root.text)

    def test_anonymous_overrides_refused(self) -> None:
        """
        An anonymous GetObject may read an anonymous bucket, but not with
        C{response-*} overrides: that is 400 C{InvalidRequest}, as S3 says.
        """
        anonymous = self.world.anonymous()
        body = anonymous.get_object(Bucket="public", Key="docs/readme.txt")[
            "Body"
        ].read()
        self.assertEqual(body, README)
        with self.assertRaises(ClientError) as raised:
            anonymous.get_object(
                Bucket="public", Key="docs/readme.txt", ResponseContentType="text/html"
            )
        check_client_error(self, raised.exception, 400, "InvalidRequest")
        raw = send_raw(
            self.world.daemon.port,
            "GET",
            "/public/docs/readme.txt?response-content-disposition=attachment",
        )
        check_error(self, raw, 400, "InvalidRequest")


class KeyTests(_SideTests, SynchronousTestCase):
    """
    Which keys are accepted.
    """

    def test_dot_segments_refused(self) -> None:
        """
        A key with a C{.} or C{..} segment, however it is spelled on the
        wire, is refused with 400 C{InvalidArgument} and a message saying
        why, before anything reaches the backend.
        """
        for path in (
            "..",
            ".",
            "../outside.txt",
            "docs/../../outside.txt",
            "./docs/readme.txt",
            "docs/.",
            "docs/./readme.txt",
            "%2E%2E/outside.txt",
            "docs%2F..%2F..%2Foutside.txt",
            "docs/%2e/readme.txt",
        ):
            for method in ("GET", "HEAD"):
                raw = signed_request(
                    self.world.daemon, method, f"/{self.side.bucket}/{path}", *READER
                )
                self.assertEqual(raw.status, 400, (method, path))
                if method == "GET":
                    document = check_error(self, raw, 400, "InvalidArgument")
                    self.assertIn("'.' or '..'", document["Message"])
                    self.assertNotIn(b"outside", raw.body.replace(b"outside.txt", b""))

    def test_dots_inside_segments_accepted(self) -> None:
        """
        Dots that are not a whole segment are ordinary key characters.
        """
        for key in ("...", ".hidden", "a..b", "docs/..readme", "x/.../y"):
            raw = signed_request(
                self.world.daemon, "GET", object_path(self.side.bucket, key), *READER
            )
            check_error(self, raw, 404, "NoSuchKey")

    def test_key_too_long(self) -> None:
        """
        A key of 1025 bytes is 400 C{KeyTooLongError}; one of 1024 is an
        ordinary (missing) key.
        """
        raw = signed_request(
            self.world.daemon,
            "GET",
            object_path(self.side.bucket, "é" * 512 + "x"),
            *READER,
        )
        check_error(self, raw, 400, "KeyTooLongError")
        raw = signed_request(
            self.world.daemon, "GET", object_path(self.side.bucket, "é" * 512), *READER
        )
        check_error(self, raw, 404, "NoSuchKey")

    def test_odd_keys_byte_exact(self) -> None:
        """
        Every odd key reads back byte for byte, by boto3 and by a raw
        request encoding the path as AWS does; C{100%} and C{100%25} are two
        objects.
        """
        for key in ODD_KEYS:
            body = self.client.get_object(Bucket=self.side.bucket, Key="odd/" + key)
            self.assertEqual(body["Body"].read(), f"odd object {key}".encode(), key)
            raw = signed_request(
                self.world.daemon,
                "GET",
                object_path(self.side.bucket, "odd/" + key),
                *READER,
            )
            self.assertEqual(
                (raw.status, raw.body), (200, f"odd object {key}".encode())
            )
        # A plus in a path is a plus, never a space.
        raw = signed_request(
            self.world.daemon, "GET", f"/{self.side.bucket}/odd/plus+sign", *READER
        )
        self.assertEqual(raw.body, b"odd object plus+sign")


class DoubleSlashTests(SynchronousTestCase):
    """
    A key with an empty segment, on moto (which, as S3, keeps it).
    """

    @pytest.fixture(autouse=True)
    def _world(self, read_world: ReadWorld) -> None:
        self.world = read_world
        self.side = read_world.sides["moto"]

    def test_double_slash(self) -> None:
        """
        C{a//double} is listed and read as C{a//double}, distinct from
        C{a/double}.
        """
        backend = self.side.backend()
        backend.put_object(
            Bucket=self.side.backend_bucket,
            Key=self.side.backend_key("slashes/" + DOUBLE_SLASH),
            Body=b"two",
        )
        backend.put_object(
            Bucket=self.side.backend_bucket,
            Key=self.side.backend_key("slashes/a/double"),
            Body=b"one",
        )
        client = self.world.client()
        keys = [
            o["Key"]
            for o in client.list_objects_v2(Bucket=self.side.bucket, Prefix="slashes/")[
                "Contents"
            ]
        ]
        self.assertEqual(keys, ["slashes/a//double", "slashes/a/double"])
        for key, body in (("slashes/a//double", b"two"), ("slashes/a/double", b"one")):
            got = client.get_object(Bucket=self.side.bucket, Key=key)["Body"].read()
            self.assertEqual(got, body)
            raw = signed_request(
                self.world.daemon, "GET", object_path(self.side.bucket, key), *READER
            )
            self.assertEqual(raw.body, body)


class AddressingTests(_SideTests, SynchronousTestCase):
    """
    Path-style and virtual-hosted-style (C{--domain}) addressing.
    """

    def _virtual_client(self) -> Any:
        client = s3_client(
            f"http://{DOMAIN}:{self.world.daemon.port}", *READER, addressing="virtual"
        )
        return self.capture.attach(loopback_virtual_host(client))

    def test_virtual_hosted_boto3(self) -> None:
        """
        boto3 in virtual-hosted style (C{BUCKET.s3.test:PORT}) lists, heads
        and reads the same data as path style.
        """
        client = self._virtual_client()
        body = client.get_object(Bucket=self.side.bucket, Key="docs/readme.txt")
        self.assertEqual(body["Body"].read(), README)
        ranged = client.get_object(
            Bucket=self.side.bucket, Key="odd/unicode/café/naïve.txt", Range="bytes=0-2"
        )
        self.assertEqual(ranged["Body"].read(), b"odd")
        self.assertEqual(
            client.head_object(Bucket=self.side.bucket, Key="docs/readme.txt")[
                "ContentLength"
            ],
            1000,
        )
        virtual = client.list_objects_v2(Bucket=self.side.bucket, Prefix="odd/")
        path = self.client.list_objects_v2(Bucket=self.side.bucket, Prefix="odd/")
        self.assertEqual(virtual["Contents"], path["Contents"])
        client.head_bucket(Bucket=self.side.bucket)
        names = [b["Name"] for b in client.list_buckets()["Buckets"]]
        self.assertIn(self.side.bucket, names)
        for key in ODD_KEYS:
            got = client.get_object(Bucket=self.side.bucket, Key="odd/" + key)
            self.assertEqual(got["Body"].read(), f"odd object {key}".encode())
        self.assert_no_leak()

    def test_virtual_hosted_raw(self) -> None:
        """
        Raw signed requests with C{Host: BUCKET.s3.test:PORT} address the
        bucket from the host; the path is the key; C{Host: s3.test:PORT} with
        C{/} lists buckets; an unknown bucket there is C{NoSuchBucket} for a
        caller whose scopes cover every bucket.
        """
        port = self.world.daemon.port
        host = f"{self.side.bucket}.{DOMAIN}:{port}"
        raw = signed_request(
            self.world.daemon, "GET", "/docs/readme.txt", *READER, host=host
        )
        self.assertEqual((raw.status, raw.body), (200, README))
        raw = signed_request(
            self.world.daemon, "GET", "/?list-type=2&prefix=tree%2F", *READER, host=host
        )
        self.assertEqual(raw.status, 200)
        self.assertIn(b"<Key>tree/a.txt</Key>", raw.body)
        self.assertIn(f"<Name>{self.side.bucket}</Name>".encode(), raw.body)
        self.assert_no_leak(raw)
        raw = signed_request(
            self.world.daemon, "GET", "/", *READER, host=f"{DOMAIN}:{port}"
        )
        self.assertEqual(raw.status, 200)
        self.assertIn(f"<Name>{self.side.bucket}</Name>".encode(), raw.body)
        raw = signed_request(
            self.world.daemon,
            "GET",
            "/docs/readme.txt",
            *READER,
            host=f"no-such-bucket.{DOMAIN}:{port}",
        )
        check_error(self, raw, 404, "NoSuchBucket")
        # A dot segment is refused in virtual-hosted style too.
        raw = signed_request(
            self.world.daemon, "GET", "/../outside.txt", *READER, host=host
        )
        check_error(self, raw, 400, "InvalidArgument")

    def test_path_style_with_domain_host(self) -> None:
        """
        A path-style request sent to the bare domain still works.
        """
        raw = signed_request(
            self.world.daemon,
            "GET",
            object_path(self.side.bucket, "docs/readme.txt"),
            *READER,
            host=f"{DOMAIN}:{self.world.daemon.port}",
        )
        self.assertEqual((raw.status, raw.body), (200, README))


class PaginatorTests(_SideTests, SynchronousTestCase):
    """
    boto3's own paginators over the daemon.
    """

    def test_paginators(self) -> None:
        """
        The V1 and V2 paginators with a page size of 2 list every key under
        the prefix exactly once, as the backend does.
        """
        expected = [k for k, _, _ in self.side.backend_listing()[0] if k]
        for operation in ("list_objects_v2", "list_objects"):
            paginator = self.client.get_paginator(operation)
            pages = paginator.paginate(
                Bucket=self.side.bucket, PaginationConfig={"PageSize": 2}
            )
            keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
            self.assertEqual(keys, expected, operation)
        self.assert_no_leak()
