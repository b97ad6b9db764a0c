"""
Tests for L{multistore.operations.writes}: the write operations, through the whole
pipeline (L{multistore.gateway.pipeline.Gateway}) in memory, over the shared
L{multistore.testing.MemoryStore}, which really consumes the bodies it is given;
a test scripts its answers where it needs a backend the memory store is not (a
versioned one, say).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from attrs import define, evolve, field
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IConsumer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer
from zope.interface.verify import verifyObject

from multistore.auth.canonical import (
    STREAMING_PAYLOAD,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    UNSIGNED_PAYLOAD,
    chunk_signature,
    chunk_string_to_sign,
    format_amz_date,
    signing_key,
)
from multistore.auth.registry import StaticBucketRegistry, StaticCredentialRegistry
from multistore.auth.signing import sign_request
from multistore.auth.sigv2 import sign_v2, string_to_sign_v2
from multistore.bodies import BytesProducer
from multistore.config import ACTIONS, AccessScope, BucketConfig, Config
from multistore.config import StoredCredential as Credential
from multistore.gateway.pipeline import Gateway
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import IObjectStore, IStoreFactory
from multistore.model import (
    CompletedPart,
    CopyResult,
    CopySource,
    CredentialScope,
    DeleteOutcome,
    IncomingRequest,
    ObjectRead,
    ObjectResponse,
    ObjectWrite,
    Response,
    UploadInfo,
    UploadsPage,
)
from multistore.operations.dispatcher import Dispatcher
from multistore.operations.writes import parse_copy_source, write_headers
from multistore.s3.dates import format_http_date
from multistore.s3.errors import S3Error
from multistore.testing import ControlledProducer, MemoryStore, MemoryStoreFactory

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
AMZ_DATE = format_amz_date(NOW)
SCOPE = CredentialScope(AMZ_DATE[:8], "us-east-1", "s3")
HOST = "127.0.0.1:8080"
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"

#: ``data`` and ``logs`` share a backend bucket, ``near`` (one store); ``far``
#: is a backend bucket on another service, which cannot copy from ``near`` on
#: its own.
DATA = BucketConfig(
    name="data",
    backend_type="near",
    backend_prefix="tenants/a",
    backend_options={"bucket_name": "near"},
)
LOGS = BucketConfig(
    name="logs",
    backend_type="near",
    backend_prefix="tenants/b",
    backend_options={"bucket_name": "near"},
)
FAR = BucketConfig(
    name="far",
    backend_type="far",
    backend_prefix="remote",
    backend_options={"bucket_name": "far"},
)

WRITER = ("AKW", "w-secret")
COPIER = ("AKCOPY", "copy-secret")
SCOPED = ("AKSCOPED", "scoped-secret")

CONFIG = Config(
    buckets=(DATA, LOGS, FAR),
    credentials=(
        Credential(WRITER[0], WRITER[1], "writer", (AccessScope("*", (), ACTIONS),)),
        # May write logs and read data/public/, nothing else.
        Credential(
            COPIER[0],
            COPIER[1],
            "copier",
            (
                AccessScope("logs", (), frozenset({"put_object", "upload_part"})),
                AccessScope("data", ("public/",), frozenset({"get_object"})),
            ),
        ),
        # May delete under a/ in data, nothing else.
        Credential(
            SCOPED[0],
            SCOPED[1],
            "scoped",
            (AccessScope("data", ("a/",), frozenset({"delete_object"})),),
        ),
    ),
)


# -- bodies ---------------------------------------------------------------------


@implementer(IBodyProducer)
@define
class Pieces:
    """
    A client's upload that arrives in several pieces, all at once when
    started (pausing when asked).

    :ivar watch: if set, called after each piece is written, what it answers
        kept in L{seen}: what the receiving end holds at each step.
    """

    pieces: list[bytes]
    length: object = UNKNOWN_LENGTH
    watch: Callable[[], object] | None = None
    seen: list[object] = field(factory=list)
    started: bool = False
    stopped: bool = False
    _paused: bool = False
    _consumer: IConsumer | None = None
    _done: Deferred[None] | None = None

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self.started = True
        self._consumer = consumer
        self._done = Deferred()
        self._pump()
        return self._done

    def _pump(self) -> None:
        assert self._consumer is not None and self._done is not None
        while self.pieces and not self._paused and not self.stopped:
            self._consumer.write(self.pieces.pop(0))
            if self.watch is not None:
                self.seen.append(self.watch())
        if not self.pieces and not self._done.called and not self.stopped:
            self._done.callback(None)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        self.stopped = True


def pieces(data: bytes, size: int, length: bool = True) -> Pieces:
    """
    ``data`` as an upload arriving ``size`` bytes at a time.
    """
    cut = [data[i : i + size] for i in range(0, len(data), size)]
    return Pieces(cut, len(data) if length else UNKNOWN_LENGTH)


# -- the stores -----------------------------------------------------------------


def etag_of(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


def multipart_etag(*parts: bytes) -> str:
    """
    The ETag of an object completed from ``parts``, as S3 (and the memory
    store) makes it: the hex MD5 of the parts' binary MD5s, ``-``, and the
    number of parts.
    """
    digests = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts)
    return f'"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(parts)}"'


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


def md5_b64(data: bytes) -> str:
    digest = hashlib.md5(data, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- requests -------------------------------------------------------------------


def signed(
    method: str,
    target: str,
    body: bytes | IBodyProducer | None = None,
    headers: Sequence[tuple[str, str]] = (),
    *,
    credential: tuple[str, str] = WRITER,
    payload_hash: str | None = None,
    host: str = HOST,
) -> IncomingRequest:
    """
    A request signed with SigV4 in its ``Authorization`` header.

    :param body: bytes (sent with their ``Content-Length``), a producer, or
        nothing.
    :param payload_hash: what to sign as the payload hash: by default the
        SHA-256 of a bytes body, else ``UNSIGNED-PAYLOAD``.
    """
    fields = list(headers)
    producer: IBodyProducer | None
    if isinstance(body, bytes):
        producer = BytesProducer(body)
        if not any(name.lower() == "content-length" for name, _ in fields):
            fields.append(("content-length", str(len(body))))
        if payload_hash is None:
            payload_hash = sha256_hex(body)
    else:
        producer = body
    all_headers = sign_request(
        method,
        f"http://{host}{target}",
        HeaderList(fields),
        payload_hash or UNSIGNED_PAYLOAD,
        credential[0],
        credential[1],
        None,
        "us-east-1",
        NOW,
    )
    path, _, query = target.partition("?")
    return IncomingRequest(
        method=method,
        raw_path=path.encode("ascii"),
        raw_query=query.encode("ascii"),
        headers=all_headers,
        body=producer,
    )


def signed_v2(
    method: str,
    target: str,
    body: bytes,
    headers: Sequence[tuple[str, str]] = (),
) -> IncomingRequest:
    """
    A request signed with SigV2 in its ``Authorization`` header.
    """
    path, _, query = target.partition("?")
    fields = HeaderList(
        [
            ("host", HOST),
            ("date", format_http_date(NOW)),
            ("content-length", str(len(body))),
            *headers,
        ]
    )
    signature = sign_v2(string_to_sign_v2(method, path, query, fields, None), WRITER[1])
    return IncomingRequest(
        method=method,
        raw_path=path.encode("ascii"),
        raw_query=query.encode("ascii"),
        headers=fields.plus([("authorization", f"AWS {WRITER[0]}:{signature}")]),
        body=BytesProducer(body),
    )


def signed_chunks(chunks: Sequence[bytes], seed: str, secret: str) -> bytes:
    """
    ``chunks`` framed as ``aws-chunked`` with chunk signatures chained from
    ``seed`` (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``), final chunk included.
    """
    key = signing_key(secret, SCOPE.date, SCOPE.region, SCOPE.service)
    previous = seed
    out = []
    for chunk in [*chunks, b""]:
        previous = chunk_signature(
            key, chunk_string_to_sign(AMZ_DATE, SCOPE, previous, sha256_hex(chunk))
        )
        out.append(b"%x;chunk-signature=%s\r\n" % (len(chunk), previous.encode()))
        if chunk:
            out.append(chunk + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def streaming(
    target: str,
    chunks: Sequence[bytes],
    headers: Sequence[tuple[str, str]] = (),
    *,
    mode: str = STREAMING_PAYLOAD,
    encoding: str = "aws-chunked",
    tamper: tuple[bytes, bytes] | None = None,
    piece: int = 7,
) -> IncomingRequest:
    """
    A PUT whose body is ``chunks`` as a signed ``aws-chunked`` body, as an
    SDK sends it: the headers signed with ``mode`` as the payload hash, the
    chunks signed from that seed signature. The body arrives ``piece``
    bytes at a time.

    :param tamper: ``(old, new)``: replace the first ``old`` in the framed
        body with ``new`` after signing.
    """
    payload = b"".join(chunks)
    secret = WRITER[1]
    # Signatures have a fixed length, so the framed length is known before
    # the seed signature is.
    wire_length = len(signed_chunks(chunks, "0" * 64, secret))
    fields = [
        ("content-encoding", encoding),
        ("x-amz-decoded-content-length", str(len(payload))),
        ("content-length", str(wire_length)),
        *headers,
    ]
    request = signed("PUT", target, None, fields, payload_hash=mode)
    authorization = request.headers.get("authorization") or ""
    seed = authorization.rpartition("Signature=")[2]
    wire = signed_chunks(chunks, seed, secret)
    if tamper is not None:
        old, new = tamper
        assert old in wire
        wire = wire.replace(old, new, 1)
    return evolve(request, body=pieces(wire, piece))


def unsigned_trailer(
    target: str,
    chunks: Sequence[bytes],
    checksum: str,
    headers: Sequence[tuple[str, str]] = (),
) -> IncomingRequest:
    """
    A PUT with a ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` body as an SDK
    frames it: ``hex-size CRLF data CRLF`` per chunk, ``0 CRLF``, the
    ``x-amz-checksum-crc32`` trailer, CRLF.
    """
    payload = b"".join(chunks)
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    wire = framed + b"0\r\nx-amz-checksum-crc32:" + checksum.encode() + b"\r\n\r\n"
    fields = [
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", str(len(payload))),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
        ("x-amz-sdk-checksum-algorithm", "CRC32"),
        ("content-length", str(len(wire))),
        *headers,
    ]
    return signed(
        "PUT",
        target,
        pieces(wire, 5),
        fields,
        payload_hash=STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    )


def error_of(response: Response) -> tuple[int, str]:
    """
    :return: the status and S3 error code of an error response.
    """
    if not isinstance(response.body, bytes):
        return response.status, ""
    root = etree.fromstring(response.body)
    return response.status, root.findtext("Code") or ""


def document(response: Response) -> etree._Element:
    """
    :return: the root of an XML answer.
    """
    assert isinstance(response.body, bytes), response.body
    return etree.fromstring(response.body)


def text(root: etree._Element, path: str) -> str | None:
    """
    :return: the text at ``path`` (local names, any namespace).
    """
    return root.findtext("/".join(f"{{*}}{step}" for step in path.split("/")))


def delete_body(keys: Sequence[str], quiet: bool = False) -> bytes:
    objects = "".join(f"<Object><Key>{key}</Key></Object>" for key in keys)
    quiet_element = "<Quiet>true</Quiet>" if quiet else ""
    return f'<Delete xmlns="{S3_NS}">{quiet_element}{objects}</Delete>'.encode()


def complete_body(parts: Sequence[tuple[int, str]]) -> bytes:
    inner = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        for n, etag in parts
    )
    return f'<CompleteMultipartUpload xmlns="{S3_NS}">{inner}</CompleteMultipartUpload>'.encode()


class WriteTestCase(SynchronousTestCase):
    """
    A gateway over a L{MemoryStore} per service.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW.timestamp())
        self.make_stores()
        self.gateway = self.make_gateway()

    def make_stores(self) -> None:
        """
        Make the store of ``near`` and the store of ``far``, each by a
        L{MemoryStoreFactory} of its own: stores of different factories
        cannot copy server-side, so copies from ``near`` to ``far`` are
        streamed. Parts of multipart uploads may be of any size.
        """
        self.near = MemoryStoreFactory(clock=self.clock, min_part_size=1).store_named(
            "near"
        )
        self.far = MemoryStoreFactory(clock=self.clock, min_part_size=1).store_named(
            "far"
        )
        # Only finds each bucket's store for the gateway: the stores keep
        # their own factories, and so cannot copy from one another.
        self.stores = MemoryStoreFactory(stores={"near": self.near, "far": self.far})

    def make_gateway(
        self,
        *,
        max_object_size: int = 10_000,
        max_xml_body_size: int = 2048,
        domains: tuple[str, ...] = (),
    ) -> Gateway:
        buckets = StaticBucketRegistry.from_config(CONFIG)
        return Gateway(
            buckets=buckets,
            credentials=StaticCredentialRegistry.from_config(CONFIG),
            dispatcher=Dispatcher(
                stores=self.stores,
                buckets=buckets,
                max_object_size=max_object_size,
                max_xml_body_size=max_xml_body_size,
            ),
            clock=self.clock,
            domains=domains,
            access_log=False,
        )

    def start(self, request: IncomingRequest) -> Deferred[Response]:
        return self.gateway.handle(request, self.gateway.start("RID"))

    def handle(self, request: IncomingRequest) -> Response:
        return self.successResultOf(self.start(request))

    def assertError(self, request: IncomingRequest, status: int, code: str) -> None:
        self.assertEqual(error_of(self.handle(request)), (status, code))


# -- PutObject ------------------------------------------------------------------


class PutObjectTests(WriteTestCase):
    """
    PutObject: bytes, verification, headers and limits.
    """

    def test_fake_stores_are_stores(self) -> None:
        """
        The test stores provide the interface the handlers rely on.
        """
        self.assertTrue(verifyObject(IObjectStore, self.near))
        self.assertTrue(verifyObject(IObjectStore, self.far))
        self.assertTrue(verifyObject(IStoreFactory, self.stores))

    def test_bytes_arrive(self) -> None:
        """
        The bytes of an upload arriving in pieces reach the store exactly,
        under the backend key.
        """
        data = bytes(range(256)) * 7
        request = signed("PUT", "/data/dir/k", data)
        upload = pieces(data, 100)
        upload.watch = self.near.in_progress
        response = self.handle(evolve(request, body=upload))
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers.get("etag"), etag_of(data))
        self.assertEqual(self.near.data_of("tenants/a/dir/k"), data)
        # Streamed in pieces, not gathered first: the store has each piece
        # once the client has sent the next (the gateway holds the latest
        # back until it knows the body verifies).
        self.assertEqual(
            upload.seen,
            [[("tenants/a/dir/k", sent)] for sent in range(0, len(data), 100)],
        )

    @settings(max_examples=40, deadline=None)
    @given(data=st.binary(max_size=2000), size=st.integers(1, 600))
    def test_any_bytes(self, data: bytes, size: int) -> None:
        """
        Whatever the bytes and however they are cut, the store gets them
        exactly, with or without a declared length.
        """
        for length in (True, False):
            self.make_stores()
            gateway = self.make_gateway()
            if length:
                request = signed("PUT", "/data/k", data)
            else:
                request = signed(
                    "PUT",
                    "/data/k",
                    None,
                    [("transfer-encoding", "chunked")],
                    payload_hash=sha256_hex(data),
                )
            request = evolve(request, body=pieces(data, size, length))
            response = self.successResultOf(gateway.handle(request, gateway.start()))
            self.assertEqual(response.status, 200)
            self.assertEqual(self.near.data_of("tenants/a/k"), data)

    def test_streams_while_sending(self) -> None:
        """
        The store receives the first bytes while the client is still
        sending; the write completes when the body ends.
        """
        upload = ControlledProducer(length=9)
        data = b"abcdefghi"
        request = evolve(signed("PUT", "/data/k", data), body=upload)
        answer = self.start(request)
        upload.send(b"abc")
        upload.send(b"def")
        self.assertNoResult(answer)
        self.assertEqual(self.near.in_progress(), [("tenants/a/k", 3)])
        self.assertEqual(self.near.keys(), [])
        upload.send(b"ghi")
        upload.finish()
        self.assertEqual(self.successResultOf(answer).status, 200)
        self.assertEqual(self.near.data_of("tenants/a/k"), data)

    def test_client_gone(self) -> None:
        """
        Cancelling the request (the client went away) mid-upload stops the
        client's body and leaves no object.
        """
        upload = ControlledProducer(length=6)
        answer = self.start(evolve(signed("PUT", "/data/k", b"abcdef"), body=upload))
        upload.send(b"abc")
        answer.cancel()
        self.failureResultOf(answer, CancelledError)
        self.assertTrue(upload.stopped)
        self.assertEqual(self.near.keys(), [])

    def test_client_fails(self) -> None:
        """
        A body that fails (the connection was lost) leaves no object.
        """
        upload = ControlledProducer(length=6)
        answer = self.start(evolve(signed("PUT", "/data/k", b"abcdef"), body=upload))
        upload.send(b"abc")
        upload.fail(ConnectionLost())
        self.assertEqual(self.near.keys(), [])
        self.assertEqual(self.successResultOf(answer).status, 500)
        self.flushLoggedErrors(ConnectionLost)

    def test_content_sha256(self) -> None:
        """
        A signed payload hash that matches stores the object; one that does
        not is ``XAmzContentSHA256Mismatch`` and nothing is stored.
        """
        self.assertEqual(self.handle(signed("PUT", "/data/k", b"right")).status, 200)
        self.assertEqual(self.near.data_of("tenants/a/k"), b"right")
        wrong = signed("PUT", "/data/w", b"wrong", payload_hash=sha256_hex(b"other"))
        self.assertError(wrong, 400, "XAmzContentSHA256Mismatch")
        self.assertNotIn("tenants/a/w", self.near.keys())
        self.assertEqual(len(self.near.calls_to("put_object")), 2)

    def test_unsigned_payload(self) -> None:
        """
        ``UNSIGNED-PAYLOAD`` bodies are stored as sent.
        """
        request = signed("PUT", "/data/k", b"free", payload_hash=UNSIGNED_PAYLOAD)
        self.assertEqual(self.handle(request).status, 200)
        self.assertEqual(self.near.data_of("tenants/a/k"), b"free")

    def test_incomplete(self) -> None:
        """
        A body shorter than its ``Content-Length`` is ``IncompleteBody``
        and is not stored.
        """
        request = signed("PUT", "/data/k", b"abc", [("content-length", "10")])
        request = evolve(request, body=Pieces([b"abc"], 10))
        self.assertError(request, 400, "IncompleteBody")
        self.assertEqual(self.near.keys(), [])

    def test_content_md5(self) -> None:
        """
        A matching ``Content-MD5`` stores the object (and reaches the
        store); a wrong one is ``BadDigest``; a malformed one is
        ``InvalidDigest`` before the store is asked.
        """
        good = signed("PUT", "/data/k", b"data", [("content-md5", md5_b64(b"data"))])
        self.assertEqual(self.handle(good).status, 200)
        self.assertEqual(self.near.data_of("tenants/a/k"), b"data")
        ((write,),) = self.near.calls_to("put_object")
        assert isinstance(write, ObjectWrite)
        self.assertEqual(write.headers.get("content-md5"), md5_b64(b"data"))
        bad = signed("PUT", "/data/b", b"data", [("content-md5", md5_b64(b"else"))])
        self.assertError(bad, 400, "BadDigest")
        self.assertNotIn("tenants/a/b", self.near.keys())
        malformed = signed("PUT", "/data/m", b"data", [("content-md5", "not-md5")])
        self.assertError(malformed, 400, "InvalidDigest")
        self.assertEqual(len(self.near.calls_to("put_object")), 2)

    def test_checksum_crc32(self) -> None:
        """
        A right ``x-amz-checksum-crc32`` stores the object and reaches the
        store; a wrong one is ``BadDigest`` and nothing is stored.
        """
        right = [("x-amz-checksum-crc32", crc32_b64(b"data"))]
        self.assertEqual(
            self.handle(signed("PUT", "/data/k", b"data", right)).status, 200
        )
        stored = self.near.headers_of("tenants/a/k")
        assert stored is not None
        self.assertEqual(stored.get("x-amz-checksum-crc32"), crc32_b64(b"data"))
        wrong = [("x-amz-checksum-crc32", crc32_b64(b"else"))]
        self.assertError(signed("PUT", "/data/w", b"data", wrong), 400, "BadDigest")
        self.assertNotIn("tenants/a/w", self.near.keys())

    def test_aws_chunked_signed(self) -> None:
        """
        A ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` body whose chunk signatures
        chain from the request's signature is stored decoded.
        """
        chunks = [b"A" * 100, b"B" * 64, b"C" * 5]
        response = self.handle(streaming("/data/k", chunks))
        self.assertEqual(response.status, 200)
        self.assertEqual(self.near.data_of("tenants/a/k"), b"".join(chunks))

    def test_aws_chunked_tampered(self) -> None:
        """
        A chunk whose data (or signature) was changed after signing is
        ``SignatureDoesNotMatch`` and nothing is stored.
        """
        chunks = [b"A" * 100, b"B" * 64, b"C" * 5]
        request = streaming("/data/k", chunks, tamper=(b"BBBB", b"BBBX"))
        self.assertError(request, 403, "SignatureDoesNotMatch")
        self.assertEqual(self.near.keys(), [])
        request = streaming(
            "/data/k", chunks, tamper=(b"chunk-signature=", b"chunk-signature=0")
        )
        self.assertError(request, 403, "SignatureDoesNotMatch")
        self.assertEqual(self.near.keys(), [])

    def test_aws_chunked_empty(self) -> None:
        """
        An empty ``aws-chunked`` body (only the signed final chunk) stores
        an empty object; a wrong final signature stores nothing, and the
        store is not even asked.
        """
        self.assertEqual(self.handle(streaming("/data/k", [])).status, 200)
        self.assertEqual(self.near.data_of("tenants/a/k"), b"")
        request = streaming("/data/e", [], tamper=(b"signature=", b"signature=f"))
        self.assertError(request, 403, "SignatureDoesNotMatch")
        self.assertNotIn("tenants/a/e", self.near.keys())
        self.assertEqual(len(self.near.calls_to("put_object")), 1)

    def test_unsigned_trailer(self) -> None:
        """
        A ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` body with a right CRC32
        trailer is stored decoded; with a wrong one it is ``BadDigest`` and
        nothing is stored.
        """
        chunks = [b"x" * 30, b"y" * 20]
        payload = b"".join(chunks)
        request = unsigned_trailer("/data/k", chunks, crc32_b64(payload))
        self.assertEqual(self.handle(request).status, 200)
        self.assertEqual(self.near.data_of("tenants/a/k"), payload)
        request = unsigned_trailer("/data/w", chunks, crc32_b64(b"other"))
        self.assertError(request, 400, "BadDigest")
        self.assertNotIn("tenants/a/w", self.near.keys())

    def test_unknown_streaming_mode(self) -> None:
        """
        A ``STREAMING-...`` payload mode S3 does not know is refused with a
        400, whether the request is signed with SigV4 or SigV2, and no
        store is asked.
        """
        mode = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
        fields = [
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "3"),
        ]
        request = signed("PUT", "/data/k", b"0\r\n\r\n", fields, payload_hash=mode)
        self.assertError(request, 400, "InvalidArgument")
        v2 = signed_v2(
            "PUT", "/data/k", b"0\r\n\r\n", [*fields, ("x-amz-content-sha256", mode)]
        )
        self.assertError(v2, 400, "InvalidArgument")
        self.assertEqual(self.near.calls, [])

    def test_signed_chunks_need_sigv4(self) -> None:
        """
        Signed ``aws-chunked`` bodies need a SigV4 seed signature: under
        SigV2 they are refused and no store is asked.
        """
        fields = [
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "0"),
            ("x-amz-content-sha256", STREAMING_PAYLOAD),
        ]
        self.assertError(
            signed_v2("PUT", "/data/k", b"", fields), 400, "InvalidRequest"
        )
        self.assertEqual(self.near.calls, [])

    def test_headers(self) -> None:
        """
        The store gets exactly the object's headers: content headers,
        metadata, tagging, storage class, SSE, conditions and checksum
        algorithm; no authentication or framing headers, and
        ``aws-chunked`` taken out of ``Content-Encoding``.
        """
        object_headers = [
            ("content-type", "text/csv"),
            ("cache-control", "max-age=60"),
            ("content-disposition", 'attachment; filename="x.csv"'),
            ("content-language", "de"),
            ("expires", "Thu, 01 Jan 2037 00:00:00 GMT"),
            ("x-amz-meta-colour", "blue"),
            ("x-amz-meta-Empty", ""),
            ("x-amz-tagging", "a=b&c=d"),
            ("x-amz-storage-class", "STANDARD_IA"),
            ("x-amz-server-side-encryption", "AES256"),
            ("if-none-match", "*"),
            ("x-amz-website-redirect-location", "/other"),
        ]
        request = streaming(
            "/data/k",
            [b"payload"],
            [*object_headers, ("user-agent", "test"), ("expect", "100-continue")],
            encoding="aws-chunked,gzip",
        )
        # Answered as a store that encrypts would: the memory store, as a
        # directory, refuses server-side encryption.
        self.near.script(
            "put_object", ObjectResponse(200, HeaderList.of(etag=etag_of(b"payload")))
        )
        self.assertEqual(self.handle(request).status, 200)
        ((write,),) = self.near.calls_to("put_object")
        assert isinstance(write, ObjectWrite)
        self.assertEqual(write.key, "tenants/a/k")
        self.assertEqual(
            sorted(write.headers),
            sorted(HeaderList([*object_headers, ("content-encoding", "gzip")])),
        )
        for name in (
            "authorization",
            "x-amz-date",
            "x-amz-content-sha256",
            "x-amz-decoded-content-length",
            "content-length",
            "host",
        ):
            self.assertNotIn(name, write.headers)

    def test_write_headers(self) -> None:
        """
        L{write_headers} drops ``aws-chunked`` from ``Content-Encoding``
        wherever it is, and the header entirely when nothing else is left.
        """
        for value, expected in [
            ("aws-chunked", None),
            ("aws-chunked,gzip", "gzip"),
            ("gzip, aws-chunked", "gzip"),
            ("AWS-CHUNKED, gzip, br", "gzip, br"),
            ("identity", "identity"),
        ]:
            headers = write_headers(HeaderList.of(content_encoding=value))
            self.assertEqual(headers.get("content-encoding"), expected, value)

    def test_precondition_passes_through(self) -> None:
        """
        The store's ``PreconditionFailed`` (``If-None-Match: *`` on an
        existing key) reaches the client as 412.
        """
        self.handle(signed("PUT", "/data/k", b"one"))
        request = signed("PUT", "/data/k", b"two", [("if-none-match", "*")])
        self.assertError(request, 412, "PreconditionFailed")
        self.assertEqual(self.near.data_of("tenants/a/k"), b"one")

    def test_too_large(self) -> None:
        """
        A ``Content-Length`` (or ``x-amz-decoded-content-length``) over the
        maximum object size is ``EntityTooLarge`` before any store is asked
        or the body read.
        """
        body = pieces(b"x" * 10_001, 1000)
        request = evolve(signed("PUT", "/data/k", b"x" * 10_001), body=body)
        self.assertError(request, 400, "EntityTooLarge")
        self.assertFalse(body.started)
        request = streaming("/data/k", [b"y" * 10_001])
        self.assertError(request, 400, "EntityTooLarge")
        self.assertEqual(self.near.calls, [])
        at_limit = signed("PUT", "/data/k", b"z" * 10_000)
        self.assertEqual(self.handle(at_limit).status, 200)

    def test_too_large_without_length(self) -> None:
        """
        An upload without a ``Content-Length`` (HTTP chunked) that grows
        over the maximum object size is ``EntityTooLarge`` and leaves no
        object.
        """
        body = pieces(b"x" * 10_001, 1000, length=False)
        request = signed("PUT", "/data/k", body, payload_hash=UNSIGNED_PAYLOAD)
        self.assertError(request, 400, "EntityTooLarge")
        self.assertEqual(self.near.keys(), [])

    def test_bad_content_length(self) -> None:
        """
        A ``Content-Length`` that is not a number is ``InvalidArgument``.
        """
        request = signed("PUT", "/data/k", b"abc", [("content-length", "-3")])
        self.assertError(request, 400, "InvalidArgument")
        self.assertEqual(self.near.calls, [])


# -- CopyObject -----------------------------------------------------------------


class CopySourceTests(SynchronousTestCase):
    """
    L{parse_copy_source}.
    """

    def test_forms(self) -> None:
        """
        With or without a leading slash, percent-encoded, with a version.
        """
        for value, expected in [
            ("/b/k", ("b", "k", None)),
            ("b/k", ("b", "k", None)),
            ("b/dir/a%20b%2Bc%3Fd", ("b", "dir/a b+c?d", None)),
            ("/b/caf%C3%A9?versionId=v%2B1", ("b", "caf\u00e9", "v+1")),
            ("b/k?x=1&versionId=v2", ("b", "k", "v2")),
            ("b/k/", ("b", "k/", None)),
        ]:
            self.assertEqual(parse_copy_source(value), expected, value)

    def test_invalid(self) -> None:
        """
        A source without a bucket or key, or whose key is not UTF-8, is
        ``InvalidArgument``.
        """
        for value in ["", "/", "b", "/b/", "b/?versionId=v", "/b/%FF"]:
            with self.assertRaises(S3Error) as raised:
                parse_copy_source(value)
            self.assertEqual(raised.exception.code, "InvalidArgument", value)


class CopyObjectTests(WriteTestCase):
    """
    CopyObject through the gateway.
    """

    def setUp(self) -> None:
        super().setUp()
        self.near.add(
            "tenants/a/src",
            b"source bytes",
            HeaderList.of(
                content_type="text/plain",
                cache_control="no-cache",
                x_amz_meta_origin="near",
            ),
        )
        self.near.add("tenants/a/public/p", b"public")

    def copy(
        self,
        target: str,
        source: str,
        headers: Sequence[tuple[str, str]] = (),
        credential: tuple[str, str] = WRITER,
    ) -> IncomingRequest:
        return signed(
            "PUT",
            target,
            None,
            [("x-amz-copy-source", source), *headers],
            credential=credential,
        )

    def test_source_authorized_as_read(self) -> None:
        """
        A caller who may write the destination but not read the source is
        refused, and no store is asked; reading a source it may read works.
        """
        request = self.copy("/logs/x", "/data/src", credential=COPIER)
        self.assertError(request, 403, "AccessDenied")
        self.assertEqual(self.near.calls, [])
        request = self.copy("/logs/x", "/data/public/p", credential=COPIER)
        self.assertEqual(self.handle(request).status, 200)
        self.assertEqual(self.near.data_of("tenants/b/x"), b"public")

    def test_versioned_source_needs_version_grant(self) -> None:
        """
        Copying a source version needs ``get_object_version`` on it.
        """
        request = self.copy("/logs/x", "/data/public/p?versionId=v1", credential=COPIER)
        self.assertError(request, 403, "AccessDenied")
        self.assertEqual(self.near.calls, [])

    def test_source_forms(self) -> None:
        """
        The copy source is found however ``x-amz-copy-source`` spells it,
        its key in the source bucket's backend space.
        """
        self.near.add("tenants/a/dir/a b+c", b"spaced")
        for source, version in [
            ("/data/dir/a%20b%2Bc", None),
            ("data/dir/a%20b%2Bc", None),
            ("data/dir/a%20b%2Bc?versionId=v1", "v1"),
        ]:
            if version is not None:
                # Copied as a versioned backend would: the memory store
                # keeps no versions.
                self.near.script("copy_object", CopyResult(etag_of(b"spaced"), NOW))
            self.assertEqual(self.handle(self.copy("/logs/x", source)).status, 200)
            copy_source = self.near.calls_to("copy_object")[-1][0]
            assert isinstance(copy_source, CopySource)
            self.assertEqual(
                (copy_source.key, copy_source.version_id),
                ("tenants/a/dir/a b+c", version),
            )
        self.assertEqual(self.near.data_of("tenants/b/x"), b"spaced")

    def test_bad_source(self) -> None:
        """
        A source naming no key, or a key that could escape its bucket, is
        ``InvalidArgument``; a missing source is ``NoSuchKey``.
        """
        self.assertError(self.copy("/data/x", "/data"), 400, "InvalidArgument")
        self.assertError(self.copy("/data/x", "/data/a/../b"), 400, "InvalidArgument")
        self.assertError(self.copy("/data/x", "/data/missing"), 404, "NoSuchKey")

    def test_onto_itself(self) -> None:
        """
        Copying an object onto itself without replacing its metadata is
        ``InvalidRequest``; with ``REPLACE`` it is allowed.
        """
        self.assertError(self.copy("/data/src", "/data/src"), 400, "InvalidRequest")
        self.assertEqual(self.near.calls, [])
        request = self.copy(
            "/data/src",
            "data/src",
            [("x-amz-metadata-directive", "REPLACE"), ("content-type", "a/b")],
        )
        self.assertEqual(self.handle(request).status, 200)
        stored = self.near.headers_of("tenants/a/src")
        assert stored is not None
        self.assertEqual(stored.get("content-type"), "a/b")

    def test_same_store(self) -> None:
        """
        A copy within one service is the store's own copy, with both keys in
        backend space (each bucket's prefix applied), the source's
        conditions and the directive; the answer is ``CopyObjectResult``.
        """
        request = self.copy(
            "/logs/dst",
            "/data/src",
            [
                ("x-amz-copy-source-if-match", etag_of(b"source bytes")),
                ("x-amz-metadata-directive", "COPY"),
            ],
        )
        response = self.handle(request)
        self.assertEqual(response.status, 200)
        ((source, key, headers),) = self.near.calls_to("copy_object")
        assert isinstance(source, CopySource) and isinstance(headers, HeaderList)
        self.assertEqual(
            (source.bucket, source.key, key), (DATA, "tenants/a/src", "tenants/b/dst")
        )
        self.assertEqual(
            source.conditions.get("x-amz-copy-source-if-match"),
            etag_of(b"source bytes"),
        )
        self.assertEqual(headers.get("x-amz-metadata-directive"), "COPY")
        self.assertNotIn("x-amz-copy-source", headers)
        self.assertNotIn("authorization", headers)
        root = document(response)
        self.assertEqual(etree.QName(root).localname, "CopyObjectResult")
        self.assertEqual(text(root, "ETag"), etag_of(b"source bytes"))
        self.assertEqual(text(root, "LastModified"), "2026-05-01T12:00:00.000Z")
        self.assertEqual(self.near.data_of("tenants/b/dst"), b"source bytes")
        # The headers of the store's answer reach the client, such as the
        # version id of a versioned backend (the memory store keeps none).
        self.near.script(
            "copy_object",
            CopyResult(
                etag_of(b"source bytes"), NOW, HeaderList.of(x_amz_version_id="v-copy")
            ),
        )
        response = self.handle(request)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers.get("x-amz-version-id"), "v-copy")
        self.assertEqual(text(document(response), "ETag"), etag_of(b"source bytes"))

    def test_across_stores_copy(self) -> None:
        """
        A copy to another service streams the source through the
        destination's ``put_object``, with the source's metadata.
        """
        self.assertFalse(self.far.can_copy(CopySource(DATA, "tenants/a/src")))
        response = self.handle(self.copy("/far/dst", "/data/src"))
        self.assertEqual(response.status, 200)
        self.assertEqual(self.far.calls_to("copy_object"), [])
        ((read,),) = self.near.calls_to("get_object")
        assert isinstance(read, ObjectRead)
        self.assertEqual(read.key, "tenants/a/src")
        ((write,),) = self.far.calls_to("put_object")
        assert isinstance(write, ObjectWrite)
        self.assertEqual(write.key, "remote/dst")
        self.assertEqual(self.far.data_of("remote/dst"), b"source bytes")
        self.assertEqual(
            sorted(write.headers),
            sorted(
                HeaderList.of(
                    content_type="text/plain",
                    cache_control="no-cache",
                    x_amz_meta_origin="near",
                )
            ),
        )
        root = document(response)
        self.assertEqual(etree.QName(root).localname, "CopyObjectResult")
        self.assertEqual(text(root, "ETag"), etag_of(b"source bytes"))

    def test_across_stores_replace(self) -> None:
        """
        With ``REPLACE``, a streamed copy carries the request's metadata
        instead of the source's.
        """
        request = self.copy(
            "/far/dst",
            "/data/src",
            [
                ("x-amz-metadata-directive", "REPLACE"),
                ("content-type", "image/png"),
                ("x-amz-meta-new", "1"),
            ],
        )
        self.assertEqual(self.handle(request).status, 200)
        ((write,),) = self.far.calls_to("put_object")
        assert isinstance(write, ObjectWrite)
        self.assertEqual(
            sorted(write.headers),
            sorted(HeaderList.of(content_type="image/png", x_amz_meta_new="1")),
        )
        self.assertEqual(self.far.data_of("remote/dst"), b"source bytes")

    def test_across_stores_conditions(self) -> None:
        """
        A streamed copy reads the source with its ``x-amz-copy-source-if-*``
        conditions; a source that does not meet them is
        ``PreconditionFailed`` and nothing is written.
        """
        etag = etag_of(b"source bytes")
        request = self.copy(
            "/far/dst", "/data/src", [("x-amz-copy-source-if-none-match", etag)]
        )
        self.assertError(request, 412, "PreconditionFailed")
        ((read,),) = self.near.calls_to("get_object")
        assert isinstance(read, ObjectRead)
        self.assertEqual(read.if_none_match, etag)
        self.assertEqual(self.far.calls_to("put_object"), [])
        request = self.copy(
            "/far/dst", "/data/src", [("x-amz-copy-source-if-match", '"x"')]
        )
        self.assertError(request, 412, "PreconditionFailed")
        self.assertEqual(self.far.keys(), [])

    def test_backend_not_implemented(self) -> None:
        """
        A store that says it can copy is asked to, and a backend's own
        ``501 NotImplemented`` during the copy reaches the client as that
        error: the copy is not streamed instead.
        """
        self.assertTrue(self.near.can_copy(CopySource(DATA, "tenants/a/src")))
        self.near.script("copy_object", S3Error("NotImplemented"))
        self.assertError(self.copy("/logs/x", "/data/src"), 501, "NotImplemented")
        ((source, key, _),) = self.near.calls_to("copy_object")
        assert isinstance(source, CopySource)
        self.assertEqual((source.key, key), ("tenants/a/src", "tenants/b/x"))
        self.assertEqual(self.near.calls_to("get_object"), [])
        self.assertEqual(self.near.calls_to("put_object"), [])
        self.assertNotIn("tenants/b/x", self.near.keys())

    def test_bad_directive(self) -> None:
        """
        A metadata directive other than ``COPY`` or ``REPLACE`` is
        ``InvalidArgument``.
        """
        request = self.copy(
            "/logs/x", "/data/src", [("x-amz-metadata-directive", "MOVE")]
        )
        self.assertError(request, 400, "InvalidArgument")


# -- deletes --------------------------------------------------------------------


class DeleteTests(WriteTestCase):
    """
    DeleteObject and DeleteObjects.
    """

    def test_delete_object(self) -> None:
        """
        DeleteObject asks the store for the backend key (and version) and
        answers 204 with the store's headers.
        """
        self.near.add("tenants/a/k", b"x")
        response = self.handle(signed("DELETE", "/data/k"))
        self.assertEqual(response.status, 204)
        self.assertEqual(self.near.keys(), [])
        # Answered as a versioned backend would (the memory store keeps no
        # versions): its headers reach the client.
        self.near.script(
            "delete_object",
            ObjectResponse(
                204, HeaderList.of(x_amz_delete_marker="true", x_amz_version_id="v7")
            ),
        )
        response = self.handle(signed("DELETE", "/data/dir/k?versionId=v7"))
        self.assertEqual(response.status, 204)
        self.assertEqual(response.headers.get("x-amz-delete-marker"), "true")
        self.assertEqual(response.headers.get("x-amz-version-id"), "v7")
        self.assertEqual(
            self.near.calls_to("delete_object"),
            [("tenants/a/k", None), ("tenants/a/dir/k", "v7")],
        )

    def post_delete(
        self,
        body: bytes,
        credential: tuple[str, str] = WRITER,
        headers: Sequence[tuple[str, str]] = (),
        payload_hash: str | None = None,
    ) -> IncomingRequest:
        fields = [("content-md5", md5_b64(body)), *headers]
        return signed(
            "POST",
            "/data?delete",
            body,
            fields,
            credential=credential,
            payload_hash=payload_hash,
        )

    def test_each_key_authorized(self) -> None:
        """
        A caller who may delete under ``a/`` deletes ``a/x`` and gets
        ``AccessDenied`` for ``b/y``; the store is asked only for ``a/x``,
        under the bucket's prefix. The answer names virtual keys.
        """
        response = self.handle(self.post_delete(delete_body(["a/x", "b/y"]), SCOPED))
        self.assertEqual(response.status, 200)
        self.assertEqual(
            self.near.calls_to("delete_objects"), [((("tenants/a/a/x", None),),)]
        )
        root = document(response)
        self.assertEqual([k.text for k in root.iterfind("{*}Deleted/{*}Key")], ["a/x"])
        errors = [
            (e.findtext("{*}Key"), e.findtext("{*}Code"))
            for e in root.iterfind("{*}Error")
        ]
        self.assertEqual(errors, [("b/y", "AccessDenied")])
        self.assertNotIn(b"tenants", response.body or b"")

    def test_nothing_allowed(self) -> None:
        """
        When no key may be deleted, the store is not asked at all.
        """
        response = self.handle(self.post_delete(delete_body(["b/y", "c"]), SCOPED))
        self.assertEqual(response.status, 200)
        self.assertEqual(self.near.calls_to("delete_objects"), [])
        self.assertEqual(len(document(response).findall("{*}Error")), 2)

    def test_store_errors(self) -> None:
        """
        A key the store could not delete is an ``Error`` naming the virtual
        key; bad keys are errors of their own and never reach the store.
        """
        self.near.script(
            "delete_objects",
            [
                DeleteOutcome("tenants/a/ok"),
                DeleteOutcome("tenants/a/stuck", error=("InternalError", "try again")),
            ],
        )
        body = delete_body(["ok", "stuck", "x/../y"])
        root = document(self.handle(self.post_delete(body)))
        self.assertEqual([k.text for k in root.iterfind("{*}Deleted/{*}Key")], ["ok"])
        errors = {
            e.findtext("{*}Key"): e.findtext("{*}Code")
            for e in root.iterfind("{*}Error")
        }
        self.assertEqual(
            errors, {"stuck": "InternalError", "x/../y": "InvalidArgument"}
        )
        self.assertEqual(
            self.near.calls_to("delete_objects"),
            [((("tenants/a/ok", None), ("tenants/a/stuck", None)),)],
        )

    def test_quiet(self) -> None:
        """
        ``Quiet`` leaves out the keys deleted, not the errors.
        """
        body = delete_body(["a/x", "a/z", "b/y"], quiet=True)
        root = document(self.handle(self.post_delete(body, SCOPED)))
        self.assertEqual(root.findall("{*}Deleted"), [])
        self.assertEqual(
            [e.findtext("{*}Key") for e in root.iterfind("{*}Error")], ["b/y"]
        )
        ((keys,),) = self.near.calls_to("delete_objects")
        self.assertEqual(keys, (("tenants/a/a/x", None), ("tenants/a/a/z", None)))

    def test_versions(self) -> None:
        """
        Version ids in the request reach the store and the answer.
        """
        body = (
            f'<Delete xmlns="{S3_NS}"><Object><Key>k</Key><VersionId>v1</VersionId>'
            "</Object></Delete>"
        ).encode()
        # Answered as a versioned backend would: the memory store keeps no
        # versions.
        self.near.script("delete_objects", [DeleteOutcome("tenants/a/k", "v1")])
        root = document(self.handle(self.post_delete(body)))
        self.assertEqual(
            self.near.calls_to("delete_objects"), [((("tenants/a/k", "v1"),),)]
        )
        self.assertEqual(text(root, "Deleted/VersionId"), "v1")

    def test_malformed(self) -> None:
        """
        A body that is not a ``Delete`` document is ``MalformedXML``, and no
        store is asked.
        """
        for body in [b"<Delete", b"<Other/>", f'<Delete xmlns="{S3_NS}"/>'.encode()]:
            self.assertError(self.post_delete(body), 400, "MalformedXML")
        self.assertEqual(self.near.calls, [])

    def test_content_md5(self) -> None:
        """
        A ``Content-MD5`` that does not match the body is ``BadDigest``; a
        malformed one is ``InvalidDigest``.
        """
        body = delete_body(["k"])
        request = signed("POST", "/data?delete", body, [("content-md5", md5_b64(b"x"))])
        self.assertError(request, 400, "BadDigest")
        request = signed("POST", "/data?delete", body, [("content-md5", "zz")])
        self.assertError(request, 400, "InvalidDigest")
        self.assertEqual(self.near.calls, [])

    def test_payload_hash(self) -> None:
        """
        A body that does not match its signed payload hash is
        ``XAmzContentSHA256Mismatch``, and nothing is deleted.
        """
        request = self.post_delete(
            delete_body(["k"]), payload_hash=sha256_hex(b"other")
        )
        self.assertError(request, 400, "XAmzContentSHA256Mismatch")
        self.assertEqual(self.near.calls, [])

    def test_oversized(self) -> None:
        """
        A body over the XML size limit is refused with a 400 before the
        store is asked.
        """
        body = delete_body([f"key-{n:04d}" for n in range(100)])
        self.assertGreater(len(body), 2048)
        too_big = (400, "MaxMessageLengthExceeded")
        self.assertEqual(error_of(self.handle(self.post_delete(body))), too_big)
        request = evolve(self.post_delete(body), body=pieces(body, 100, length=False))
        self.assertEqual(error_of(self.handle(request)), too_big)
        self.assertEqual(self.near.calls, [])


# -- multipart ------------------------------------------------------------------


class MultipartTests(WriteTestCase):
    """
    The multipart operations.
    """

    def create(self, key: str = "dir/k") -> str:
        response = self.handle(signed("POST", f"/data/{key}?uploads"))
        upload_id = text(document(response), "UploadId")
        assert upload_id is not None
        return upload_id

    def parts_of(self, store: MemoryStore, key: str, upload_id: str) -> dict[int, str]:
        """
        :return: the ETag (the MD5 of its bytes) of each part an upload in
            ``store`` has, by part number.
        """
        page = self.successResultOf(store.list_parts(key, upload_id, 10_000, 0))
        return {part.part_number: part.etag for part in page.parts}

    def part(
        self, upload_id: str, number: int | str, data: bytes, key: str = "dir/k"
    ) -> Response:
        target = f"/data/{key}?partNumber={number}&uploadId={upload_id}"
        return self.handle(signed("PUT", target, data))

    def test_create(self) -> None:
        """
        CreateMultipartUpload passes the object's headers (not conditions)
        to the store for the backend key, and answers with the virtual
        bucket and key.
        """
        request = signed(
            "POST",
            "/data/dir/k?uploads",
            None,
            [
                ("content-type", "text/plain"),
                ("x-amz-meta-a", "1"),
                ("if-none-match", "*"),
            ],
        )
        response = self.handle(request)
        self.assertEqual(response.status, 200)
        root = document(response)
        self.assertEqual(etree.QName(root).localname, "InitiateMultipartUploadResult")
        (upload_id,) = self.near.upload_ids()
        self.assertEqual(
            (text(root, "Bucket"), text(root, "Key"), text(root, "UploadId")),
            ("data", "dir/k", upload_id),
        )
        self.assertNotIn(b"tenants", response.body or b"")
        ((key, headers),) = self.near.calls_to("create_multipart_upload")
        self.assertEqual(key, "tenants/a/dir/k")
        self.assertEqual(
            headers, HeaderList.of(content_type="text/plain", x_amz_meta_a="1")
        )

    def test_upload_part(self) -> None:
        """
        UploadPart streams the part's bytes to the store under the backend
        key and answers with its ETag.
        """
        upload_id = self.create()
        data = b"part one " * 50
        target = f"/data/dir/k?partNumber=3&uploadId={upload_id}"
        request = evolve(signed("PUT", target, data), body=pieces(data, 64))
        response = self.handle(request)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers.get("etag"), etag_of(data))
        ((write, called_id, number),) = self.near.calls_to("upload_part")
        assert isinstance(write, ObjectWrite)
        self.assertEqual(
            (write.key, called_id, number), ("tenants/a/dir/k", upload_id, 3)
        )
        self.assertEqual(
            self.parts_of(self.near, "tenants/a/dir/k", upload_id), {3: etag_of(data)}
        )

    def test_upload_part_verified(self) -> None:
        """
        A part is verified like a PutObject body: a wrong payload hash, a
        wrong ``Content-MD5`` or a tampered chunk stores no part.
        """
        upload_id = self.create()
        target = f"/data/dir/k?partNumber=1&uploadId={upload_id}"
        request = signed("PUT", target, b"part", payload_hash=sha256_hex(b"trap"))
        self.assertError(request, 400, "XAmzContentSHA256Mismatch")
        request = signed("PUT", target, b"part", [("content-md5", md5_b64(b"trap"))])
        self.assertError(request, 400, "BadDigest")
        request = streaming(target, [b"A" * 40, b"B" * 9], tamper=(b"BBB", b"BBb"))
        self.assertError(request, 403, "SignatureDoesNotMatch")
        self.assertEqual(self.parts_of(self.near, "tenants/a/dir/k", upload_id), {})
        request = streaming(target, [b"A" * 40, b"B" * 9])
        self.assertEqual(self.handle(request).status, 200)
        self.assertEqual(
            self.parts_of(self.near, "tenants/a/dir/k", upload_id),
            {1: etag_of(b"A" * 40 + b"B" * 9)},
        )

    def test_part_too_large(self) -> None:
        """
        A part over the maximum object size is ``EntityTooLarge``.
        """
        upload_id = self.create()
        response = self.part(upload_id, 1, b"x" * 10_001)
        self.assertEqual(error_of(response), (400, "EntityTooLarge"))
        self.assertEqual(self.near.calls_to("upload_part"), [])

    def test_bad_part_number(self) -> None:
        """
        A part number that is not 1 to 10000 is ``InvalidArgument``, and no
        store is asked.
        """
        upload_id = self.create()
        for number in ["0", "10001", "x", "-1", "1.5", ""]:
            response = self.part(upload_id, number, b"x")
            self.assertEqual(error_of(response), (400, "InvalidArgument"), number)
        response = self.handle(
            signed("PUT", "/data/dir/k?partNumber=1&uploadId=", b"x")
        )
        self.assertEqual(error_of(response), (400, "InvalidArgument"))
        self.assertEqual(self.near.calls_to("upload_part"), [])

    def test_complete(self) -> None:
        """
        CompleteMultipartUpload hands the store the parts from the XML and
        the request's conditions, and answers with the virtual bucket and
        key and a Location the client can use.
        """
        upload_id = self.create()
        self.part(upload_id, 1, b"first ")
        self.part(upload_id, 2, b"second")
        body = complete_body([(1, etag_of(b"first ")), (2, etag_of(b"second"))])
        target = f"/data/dir/k?uploadId={upload_id}"
        request = signed(
            "POST", target, body, [("if-none-match", "*"), ("content-type", "x/y")]
        )
        response = self.handle(request)
        self.assertEqual(response.status, 200)
        ((key, called_id, parts, conditions),) = self.near.calls_to(
            "complete_multipart_upload"
        )
        self.assertEqual((key, called_id), ("tenants/a/dir/k", upload_id))
        self.assertEqual(
            parts,
            (
                CompletedPart(1, etag_of(b"first ")),
                CompletedPart(2, etag_of(b"second")),
            ),
        )
        self.assertEqual(conditions, HeaderList.of(if_none_match="*"))
        root = document(response)
        self.assertEqual(etree.QName(root).localname, "CompleteMultipartUploadResult")
        self.assertEqual(text(root, "Location"), f"http://{HOST}/data/dir/k")
        self.assertEqual((text(root, "Bucket"), text(root, "Key")), ("data", "dir/k"))
        self.assertEqual(text(root, "ETag"), multipart_etag(b"first ", b"second"))
        self.assertNotIn(b"tenants", response.body or b"")
        self.assertEqual(self.near.data_of("tenants/a/dir/k"), b"first second")
        # The headers of the store's answer reach the client, its checksums
        # in the document too, as a backend that keeps them answers (the
        # memory store does not).
        self.near.script(
            "complete_multipart_upload",
            CopyResult(
                multipart_etag(b"first ", b"second"),
                NOW,
                HeaderList.of(
                    x_amz_version_id="v-multi",
                    x_amz_checksum_crc32=crc32_b64(b"first second"),
                ),
            ),
        )
        response = self.handle(request)
        self.assertEqual(response.status, 200)
        root = document(response)
        self.assertEqual(text(root, "ChecksumCRC32"), crc32_b64(b"first second"))
        self.assertEqual(response.headers.get("x-amz-version-id"), "v-multi")
        self.assertNotIn(b"tenants", response.body or b"")

    def test_complete_location_virtual_host(self) -> None:
        """
        For a virtual-hosted request the Location is on the bucket's host,
        its key percent-encoded.
        """
        self.gateway = self.make_gateway(domains=("s3.test",))
        host = "data.s3.test"
        response = self.handle(
            signed("POST", "/a%20b?uploads", None, [("host", host)], host=host)
        )
        upload_id = text(document(response), "UploadId")
        self.handle(
            signed(
                "PUT",
                f"/a%20b?partNumber=1&uploadId={upload_id}",
                b"p",
                [("host", host)],
                host=host,
            )
        )
        body = complete_body([(1, etag_of(b"p"))])
        request = signed(
            "POST", f"/a%20b?uploadId={upload_id}", body, [("host", host)], host=host
        )
        root = document(self.handle(request))
        self.assertEqual(text(root, "Location"), "http://data.s3.test/a%20b")
        self.assertEqual((text(root, "Bucket"), text(root, "Key")), ("data", "a b"))

    def test_complete_errors(self) -> None:
        """
        A malformed body is ``MalformedXML`` and parts out of order
        ``InvalidPartOrder``, before the store is asked; the store's own
        errors (``InvalidPart``, ``NoSuchUpload``) pass through.
        """
        upload_id = self.create()
        target = f"/data/dir/k?uploadId={upload_id}"
        self.assertError(signed("POST", target, b"<Complete"), 400, "MalformedXML")
        body = complete_body([(2, '"a"'), (1, '"b"')])
        self.assertError(signed("POST", target, body), 400, "InvalidPartOrder")
        self.assertEqual(self.near.calls_to("complete_multipart_upload"), [])
        body = complete_body([(1, '"a"')])
        request = signed("POST", target, body, payload_hash=sha256_hex(b"other"))
        self.assertError(request, 400, "XAmzContentSHA256Mismatch")
        self.assertEqual(self.near.calls_to("complete_multipart_upload"), [])
        self.assertError(signed("POST", target, body), 400, "InvalidPart")
        self.assertError(
            signed("POST", "/data/dir/k?uploadId=nope", body), 404, "NoSuchUpload"
        )

    def test_abort(self) -> None:
        """
        AbortMultipartUpload answers 204 and the upload is gone; an unknown
        upload is ``NoSuchUpload``.
        """
        upload_id = self.create()
        response = self.handle(signed("DELETE", f"/data/dir/k?uploadId={upload_id}"))
        self.assertEqual(response.status, 204)
        self.assertEqual(self.near.upload_ids(), [])
        self.assertEqual(
            self.near.calls_to("abort_multipart_upload"),
            [("tenants/a/dir/k", upload_id)],
        )
        self.assertError(
            signed("DELETE", f"/data/dir/k?uploadId={upload_id}"), 404, "NoSuchUpload"
        )

    def test_list_parts(self) -> None:
        """
        ListParts asks for the backend key and answers with the virtual
        names and the store's parts.
        """
        upload_id = self.create()
        for number in (1, 2, 5):
            self.part(upload_id, number, b"p" * number)
        target = f"/data/dir/k?uploadId={upload_id}&max-parts=2&part-number-marker=1"
        response = self.handle(signed("GET", target))
        self.assertEqual(response.status, 200)
        self.assertEqual(
            self.near.calls_to("list_parts"), [("tenants/a/dir/k", upload_id, 2, 1)]
        )
        root = document(response)
        self.assertEqual((text(root, "Bucket"), text(root, "Key")), ("data", "dir/k"))
        self.assertEqual(text(root, "UploadId"), upload_id)
        self.assertEqual(
            [p.findtext("{*}PartNumber") for p in root.iterfind("{*}Part")], ["2", "5"]
        )
        self.assertEqual(
            [p.findtext("{*}Size") for p in root.iterfind("{*}Part")], ["2", "5"]
        )
        self.assertEqual(text(root, "IsTruncated"), "false")
        self.assertNotIn(b"tenants", response.body or b"")

    def test_list_uploads(self) -> None:
        """
        ListMultipartUploads asks the store under the bucket's prefix and
        answers in virtual key space: every upload inside the prefix is
        shown, anything outside it is dropped.
        """
        inside = ["dir/k", "k", "tenants/a/nested", "z"]
        ids = {key: self.create(key) for key in inside}
        # Answered as a backend that ignores the prefix would: uploads
        # outside it too, and a page cut after the last.
        self.near.script(
            "list_multipart_uploads",
            UploadsPage(
                uploads=(
                    UploadInfo("tenants/b/other", "stray-1", NOW),
                    UploadInfo("tenants/ab", "stray-2", NOW),
                    *(UploadInfo("tenants/a/" + key, ids[key], NOW) for key in inside),
                ),
                truncated=True,
                next_key_marker="tenants/a/z",
                next_upload_id_marker=ids["z"],
            ),
        )
        response = self.handle(signed("GET", "/data?uploads"))
        self.assertEqual(response.status, 200)
        self.assertEqual(
            self.near.calls_to("list_multipart_uploads"),
            [("tenants/a/", None, None, None, 1000)],
        )
        root = document(response)
        shown = [
            (u.findtext("{*}Key"), u.findtext("{*}UploadId"))
            for u in root.iterfind("{*}Upload")
        ]
        self.assertEqual(shown, sorted(ids.items()))
        self.assertEqual(text(root, "Bucket"), "data")
        self.assertEqual(text(root, "NextKeyMarker"), "z")
        self.assertNotIn(b"stray", response.body or b"")

    def test_list_uploads_prefix_delimiter(self) -> None:
        """
        The listing's prefix and key marker are mapped into backend space,
        and common prefixes back out of it.
        """
        for key in ["dir/a/1", "dir/a/2", "dir/b", "dir/c/3", "dir/d/4", "other"]:
            self.create(key)
        target = "/data?uploads&prefix=dir%2F&delimiter=%2F&key-marker=dir%2Fa%2F1&max-uploads=50"
        root = document(self.handle(signed("GET", target)))
        self.assertEqual(
            self.near.calls_to("list_multipart_uploads"),
            [("tenants/a/dir/", "/", "tenants/a/dir/a/1", None, 50)],
        )
        self.assertEqual(
            [u.findtext("{*}Key") for u in root.iterfind("{*}Upload")], ["dir/b"]
        )
        # ``dir/a/`` is not listed again: the key marker lies in it.
        self.assertEqual(
            [p.findtext("{*}Prefix") for p in root.iterfind("{*}CommonPrefixes")],
            ["dir/c/", "dir/d/"],
        )
        self.assertEqual(
            (text(root, "Prefix"), text(root, "KeyMarker"), text(root, "MaxUploads")),
            ("dir/", "dir/a/1", "50"),
        )

    def test_upload_part_copy(self) -> None:
        """
        UploadPartCopy on one service is the store's own part copy, with
        backend keys; across services the source is streamed into
        ``upload_part``.
        """
        self.near.add("tenants/a/src", b"copied part")
        upload_id = self.create()
        target = f"/data/dir/k?partNumber=2&uploadId={upload_id}"
        request = signed("PUT", target, None, [("x-amz-copy-source", "/data/src")])
        response = self.handle(request)
        self.assertEqual(response.status, 200)
        self.assertEqual(etree.QName(document(response)).localname, "CopyPartResult")
        ((source, key, called_id, number),) = self.near.calls_to("upload_part_copy")
        assert isinstance(source, CopySource)
        self.assertEqual(
            (source.key, key, called_id, number),
            ("tenants/a/src", "tenants/a/dir/k", upload_id, 2),
        )
        self.assertEqual(
            self.parts_of(self.near, "tenants/a/dir/k", upload_id),
            {2: etag_of(b"copied part")},
        )

        far_id = self.successResultOf(
            self.far.create_multipart_upload("remote/k", NO_HEADERS)
        )
        target = f"/far/k?partNumber=1&uploadId={far_id}"
        request = signed("PUT", target, None, [("x-amz-copy-source", "/data/src")])
        response = self.handle(request)
        self.assertEqual(response.status, 200)
        self.assertEqual(text(document(response), "ETag"), etag_of(b"copied part"))
        self.assertEqual(
            self.parts_of(self.far, "remote/k", far_id), {1: etag_of(b"copied part")}
        )
        self.assertEqual(self.far.calls_to("upload_part_copy"), [])
        ((write, called_id, number),) = self.far.calls_to("upload_part")
        assert isinstance(write, ObjectWrite)
        self.assertEqual((write.key, called_id, number), ("remote/k", far_id, 1))

    def test_upload_part_copy_backend_not_implemented(self) -> None:
        """
        A backend's own ``501 NotImplemented`` during a part copy on its
        service reaches the client: the part is not streamed instead.
        """
        self.near.add("tenants/a/src", b"copied part")
        self.near.script("upload_part_copy", S3Error("NotImplemented"))
        upload_id = self.create()
        target = f"/data/dir/k?partNumber=2&uploadId={upload_id}"
        request = signed("PUT", target, None, [("x-amz-copy-source", "/data/src")])
        self.assertError(request, 501, "NotImplemented")
        self.assertEqual(len(self.near.calls_to("upload_part_copy")), 1)
        self.assertEqual(self.near.calls_to("get_object"), [])
        self.assertEqual(self.near.calls_to("upload_part"), [])
        self.assertEqual(self.parts_of(self.near, "tenants/a/dir/k", upload_id), {})
