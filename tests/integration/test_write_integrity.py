# mypy: disable-error-code="no-untyped-call"
"""
Integrity of uploads through the daemon: nothing unverified becomes an
object.

Each request is built here, signed with C{multistore.auth.signing.sign_request}
(and, for C{aws-chunked} bodies, chunk by chunk with AWS's published
algorithm, computed here independently) and sent raw. After every refusal
the store itself (SeaweedFS through boto3, or the directory) is checked to
hold no such object, an object that was there before is checked to be
unchanged, and a directory bucket is checked to keep no temporary file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import socket
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final
from uuid import uuid4

import pytest
from attrs import define
from twisted.trial.unittest import SynchronousTestCase

from multistore.auth.canonical import UNSIGNED_PAYLOAD
from multistore.auth.signing import sign_request
from multistore.headers import HeaderList
from tests.integration.servers import (
    LOCALHOST,
    Daemon,
    DaemonFactory,
    S3Server,
    s3_client,
)
from tests.integration.test_read_path import (
    REGION,
    RawResponse,
    check_error,
    object_path,
    send_raw,
)
from tests.integration.test_write_path import (
    WRITER,
    Place,
    md5_b64,
    pattern,
    wait_until,
    writer_credential,
)

#: The body of most uploads here: several chunks' worth.
BODY: Final = pattern(200_000, 21)

#: The chunk size of the C{aws-chunked} bodies built here.
CHUNK: Final = 65536

#: An MD5 (of nothing) that is well formed but wrong for L{BODY}.
WRONG_MD5: Final = md5_b64(b"")

#: Seconds the daemon gets to notice a client that went away.
GONE_WITHIN: Final = 10.0

#: Seconds after which refused uploads are looked for once more.
LATER: Final = 0.5


# --- checksums, computed here ------------------------------------------------------


@cache
def _crc_table(polynomial: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ polynomial if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def _reflected_crc(data: bytes, polynomial: int, bits: int) -> int:
    """
    A reflected CRC with all-ones start and final XOR (CRC32C, CRC64NVME),
    table-driven, in plain Python: for the small bodies here only.
    """
    mask = (1 << bits) - 1
    table = _crc_table(polynomial)
    crc = mask
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


def checksum(algorithm: str, data: bytes) -> str:
    """
    :return: the C{x-amz-checksum-*} value of ``data``: the base64 of the
        big-endian digest.
    """
    if algorithm == "crc32":
        digest = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm == "crc32c":
        digest = _reflected_crc(data, 0x82F63B78, 32).to_bytes(4, "big")
    elif algorithm == "crc64nvme":
        digest = _reflected_crc(data, 0x9A6C9329AC4BC9B5, 64).to_bytes(8, "big")
    else:
        digest = hashlib.new(algorithm, data).digest()
    return base64.b64encode(digest).decode("ascii")


#: Every checksum algorithm, with a value that is wrong for L{BODY}.
ALGORITHMS: Final = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


# --- requests, built here ------------------------------------------------------------


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str) -> bytes:
    """
    The SigV4 signing key for S3 in L{REGION} on ``date`` (YYYYMMDD).
    """
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    key = _hmac(key, REGION)
    key = _hmac(key, "s3")
    return _hmac(key, "aws4_request")


@define
class Upload:
    """
    A request, signed, ready to send: its target, headers and body.
    """

    target: str
    headers: list[tuple[str, str]]
    body: bytes


def signed(
    daemon: Daemon,
    method: str,
    target: str,
    payload_hash: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    keys: tuple[str, str] = WRITER,
) -> Upload:
    """
    Sign a request with the header ``x-amz-content-sha256: payload_hash``;
    ``headers`` must hold its C{Content-Length}.
    """
    out = sign_request(
        method,
        f"http://{LOCALHOST}:{daemon.port}{target}",
        HeaderList([(n.lower(), v) for n, v in headers]),
        payload_hash,
        *keys,
        None,
        REGION,
        datetime.now(UTC),
    )
    return Upload(target, list(out), body)


def plain_upload(
    daemon: Daemon,
    target: str,
    body: bytes,
    payload_hash: str | None = None,
    extra: Sequence[tuple[str, str]] = (),
) -> Upload:
    """
    A PUT with the body as it is: ``payload_hash`` is its hex SHA-256 unless
    given (L{UNSIGNED_PAYLOAD}, or a wrong one).
    """
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest()
    headers = [("content-length", str(len(body))), *extra]
    return signed(daemon, "PUT", target, payload_hash, headers, body)


def _seed_signature(headers: Sequence[tuple[str, str]]) -> tuple[str, str, str]:
    """
    :return: the seed signature, the time and the scope of a signed request.
    """
    values = dict(headers)
    found = re.search(r"Signature=([0-9a-f]{64})", values["authorization"])
    assert found is not None
    amz_date = values["x-amz-date"]
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    return found.group(1), amz_date, scope


def chunked_upload(
    daemon: Daemon,
    target: str,
    payload: bytes,
    *,
    mode: str,
    trailer: tuple[str, str] | None = None,
    corrupt: Callable[[list[bytes]], None] | None = None,
    keys: tuple[str, str] = WRITER,
) -> Upload:
    """
    An C{aws-chunked} PUT of ``payload`` in chunks of L{CHUNK} bytes.

    :param mode: C{STREAMING-AWS4-HMAC-SHA256-PAYLOAD} (signed chunks),
        C{STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER} (and a signed trailer)
        or C{STREAMING-UNSIGNED-PAYLOAD-TRAILER}.
    :param trailer: the trailing checksum, as ``(name, value)``.
    :param corrupt: called with the encoded pieces (each chunk's framing
        and data, then the final chunk and the trailer) to change them
        after signing.
    """
    chunks = [payload[i : i + CHUNK] for i in range(0, len(payload), CHUNK)]
    signed_chunks = not mode.startswith("STREAMING-UNSIGNED")
    # The request signs its Content-Length, the encoded length, which
    # depends on the signatures' length only: encode once with placeholder
    # signatures to learn it, sign the request, then encode for real from
    # its seed signature.
    headers = [
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", str(len(payload))),
    ]
    if trailer is not None:
        headers.append(("x-amz-trailer", trailer[0]))
        headers.append(
            ("x-amz-sdk-checksum-algorithm", trailer[0].rsplit("-", 1)[1].upper())
        )

    def encode(seed: str, amz_date: str, scope: str) -> list[bytes]:
        key = signing_key(keys[1], amz_date[:8])
        empty = hashlib.sha256(b"").hexdigest()
        previous = seed
        pieces = []
        for data in [*chunks, b""]:
            size = b"%x" % len(data)
            if signed_chunks:
                to_sign = (
                    f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n"
                    f"{empty}\n{hashlib.sha256(data).hexdigest()}"
                )
                previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
                size += b";chunk-signature=" + previous.encode()
            if data:
                pieces.append(size + b"\r\n" + data + b"\r\n")
            else:
                pieces.append(size + b"\r\n")
        tail = b""
        if trailer is not None:
            line = f"{trailer[0]}:{trailer[1]}"
            tail += line.encode() + b"\r\n"
            if signed_chunks:
                to_sign = (
                    f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous}\n"
                    + hashlib.sha256((line + "\n").encode()).hexdigest()
                )
                signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
                tail += f"x-amz-trailer-signature:{signature}".encode() + b"\r\n"
        pieces.append(tail + b"\r\n")
        return pieces

    length = len(b"".join(encode("0" * 64, "20000101T000000Z", "x")))
    upload = signed(
        daemon,
        "PUT",
        target,
        mode,
        [*headers, ("content-length", str(length))],
        b"",
        keys,
    )
    pieces = encode(*_seed_signature(upload.headers))
    if corrupt is not None:
        corrupt(pieces)
    upload.body = b"".join(pieces)
    assert len(upload.body) == length or corrupt is not None
    return upload


def send(daemon: Daemon, upload: Upload, method: str = "PUT") -> RawResponse:
    """
    Send a built request and read the response.
    """
    return send_raw(
        daemon.port, method, upload.target, upload.headers, body=upload.body
    )


def send_part_and_leave(daemon: Daemon, upload: Upload, sent: int) -> None:
    """
    Send a request's headers and the first ``sent`` bytes of its body, then
    close the connection.
    """
    with socket.create_connection((LOCALHOST, daemon.port), 10) as sock:
        head = f"PUT {upload.target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in upload.headers
        )
        sock.sendall(head.encode("latin-1") + b"\r\n" + upload.body[:sent])


# --- the module's daemon -------------------------------------------------------------


@define
class IntegrityWorld:
    """
    The module's daemon and its buckets: C{sw} (SeaweedFS, under a backend
    prefix) and C{fi} (a directory).
    """

    daemon: Daemon
    places: dict[str, Place]


@pytest.fixture(scope="module")
def integrity_world(
    module_multistore_daemon: DaemonFactory,
    seaweedfs: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> IntegrityWorld:
    """
    A daemon over SeaweedFS and a directory, with the writer's credential.
    """
    places = {
        "sw": Place.on_s3("sw", seaweedfs, f"integrity{uuid4().hex[:6]}/inner"),
        "fi": Place.on_disk("fi", tmp_path_factory.mktemp("integrity")),
    }
    daemon = module_multistore_daemon(
        {
            "buckets": [p.config() for p in places.values()],
            "credentials": [writer_credential()],
        }
    )
    return IntegrityWorld(daemon, places)


class IntegrityMixin:
    """
    Mixed into test cases for the bucket named C{place_name}: every refused
    upload leaves no object, and the object it would have replaced as it
    was.
    """

    place_name = "sw"

    # Provided by SynchronousTestCase.
    assertEqual: Callable[..., None]
    assertIn: Callable[..., None]
    assertIsNone: Callable[..., None]
    assertTrue: Callable[..., None]

    @pytest.fixture(autouse=True)
    def _world(self, integrity_world: IntegrityWorld) -> Any:
        self.world = integrity_world
        self.daemon = integrity_world.daemon
        self.place = integrity_world.places[self.place_name]
        self.base = f"t{uuid4().hex[:10]}/"
        self.refusals: dict[str, bytes | None] = {}
        yield
        if self.refusals:
            # A refused upload must not become an object a little later
            # either (a store completing a write it was given whole).
            time.sleep(LATER)
            self.maxDiff = 2000
            self.assertEqual(
                {key: self.place.stored(key) for key in self.refusals},
                self.refusals,
            )
        if self.place.is_file:
            # Whatever a test did, no temporary file outlives its request.
            wait_until(lambda: self.place.temp_files() == [], "temporary files gone")

    def key(self, name: str) -> str:
        """
        :return: a key for this test only.
        """
        return self.base + name

    def target(self, name: str, query: str = "") -> str:
        """
        :return: the request target of this test's key ``name``.
        """
        path = object_path(self.place.bucket, self.key(name))
        return path + (f"?{query}" if query else "")

    def refused(self, upload: Upload, status: int, code: str, name: str) -> None:
        """
        Send ``upload`` for key ``name`` over an object that exists; check
        the error and that the object is unchanged.
        """
        key = self.key(name)
        self.place.put(key, b"previous")
        response = send(self.daemon, upload)
        check_error(self, response, status, code)  # type: ignore[arg-type]
        self.assertEqual(self.place.stored(key), b"previous")
        self.refusals[key] = b"previous"

    def refused_new(self, upload: Upload, status: int, code: str, name: str) -> None:
        """
        Send ``upload`` for a key that does not exist; check the error and
        that it still does not.
        """
        response = send(self.daemon, upload)
        check_error(self, response, status, code)  # type: ignore[arg-type]
        self.assertIsNone(self.place.stored(self.key(name)))
        self.refusals.setdefault(self.key(name), None)

    def stored_ok(self, upload: Upload, name: str, data: bytes = BODY) -> None:
        """
        Send ``upload``; check it was stored, byte for byte.
        """
        response = send(self.daemon, upload)
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(self.place.stored(self.key(name)), data)

    # -- payload hash, Content-MD5, checksum headers --------------------------

    def test_payload_hash(self) -> None:
        """
        A body whose SHA-256 is not the signed C{x-amz-content-sha256} is 400
        XAmzContentSHA256Mismatch; the right one is stored.
        """
        wrong = hashlib.sha256(b"something else").hexdigest()
        for name in ("overwrite", "new"):
            upload = plain_upload(self.daemon, self.target(name), BODY, wrong)
            if name == "new":
                self.refused_new(upload, 400, "XAmzContentSHA256Mismatch", name)
            else:
                self.refused(upload, 400, "XAmzContentSHA256Mismatch", name)
        self.stored_ok(plain_upload(self.daemon, self.target("right"), BODY), "right")

    def test_content_md5(self) -> None:
        """
        A wrong C{Content-MD5} is 400 BadDigest, a malformed one 400
        InvalidDigest; the right one is stored.
        """
        for what, value, code in (
            ("wrong-md5", WRONG_MD5, "BadDigest"),
            ("malformed-md5", "not base64!", "InvalidDigest"),
            ("short-md5", base64.b64encode(b"short").decode(), "InvalidDigest"),
        ):
            for payload_hash in (UNSIGNED_PAYLOAD, None):
                signing = "signed" if payload_hash is None else "unsigned"
                name = f"{what}-{signing}"
                upload = plain_upload(
                    self.daemon,
                    self.target(name),
                    BODY,
                    payload_hash,
                    [("content-md5", value)],
                )
                self.refused_new(upload, 400, code, name)
                self.refused(upload, 400, code, name)
        upload = plain_upload(
            self.daemon,
            self.target("right-md5"),
            BODY,
            UNSIGNED_PAYLOAD,
            [("content-md5", md5_b64(BODY))],
        )
        self.stored_ok(upload, "right-md5")

    def test_checksum_headers(self) -> None:
        """
        A wrong C{x-amz-checksum-*} header (every algorithm) is 400
        BadDigest; the right one is stored.
        """
        for algorithm in ALGORITHMS:
            name = f"checksum-{algorithm}"
            wrong = checksum(algorithm, b"other")
            upload = plain_upload(
                self.daemon,
                self.target(name),
                BODY,
                UNSIGNED_PAYLOAD,
                [(f"x-amz-checksum-{algorithm}", wrong)],
            )
            self.refused_new(upload, 400, "BadDigest", name)
            right = plain_upload(
                self.daemon,
                self.target(f"{name}-right"),
                BODY,
                UNSIGNED_PAYLOAD,
                [(f"x-amz-checksum-{algorithm}", checksum(algorithm, BODY))],
            )
            self.stored_ok(right, f"{name}-right")

    # -- aws-chunked -------------------------------------------------------------

    def test_signed_chunks(self) -> None:
        """
        C{STREAMING-AWS4-HMAC-SHA256-PAYLOAD}: correct chunk signatures store
        the decoded payload; a byte changed in a chunk's data, or a chunk
        signature changed, is 403 SignatureDoesNotMatch.
        """
        mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
        upload = chunked_upload(self.daemon, self.target("chunked"), BODY, mode=mode)
        self.stored_ok(upload, "chunked")

        def flip_data(pieces: list[bytes]) -> None:
            piece = bytearray(pieces[1])
            piece[-10] ^= 0x01
            pieces[1] = bytes(piece)

        def flip_signature(pieces: list[bytes]) -> None:
            # The final, empty chunk's signature.
            piece = pieces[-2]
            at = piece.index(b"=") + 1
            digit = b"0" if piece[at : at + 1] != b"0" else b"1"
            pieces[-2] = piece[:at] + digit + piece[at + 1 :]

        for name, corrupt in (("data", flip_data), ("signature", flip_signature)):
            bad = chunked_upload(
                self.daemon, self.target(name), BODY, mode=mode, corrupt=corrupt
            )
            self.refused_new(bad, 403, "SignatureDoesNotMatch", name)
            self.refused(bad, 403, "SignatureDoesNotMatch", name)

    def test_signed_trailer(self) -> None:
        """
        C{STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER}: a correct trailer
        stores the payload; a trailing checksum changed after signing is 403
        SignatureDoesNotMatch.
        """
        mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
        trailer = ("x-amz-checksum-crc32", checksum("crc32", BODY))
        upload = chunked_upload(
            self.daemon, self.target("trailer"), BODY, mode=mode, trailer=trailer
        )
        self.stored_ok(upload, "trailer")

        def change_checksum(pieces: list[bytes]) -> None:
            pieces[-1] = pieces[-1].replace(
                trailer[1].encode(), checksum("crc32", b"other").encode()
            )

        bad = chunked_upload(
            self.daemon,
            self.target("bad-trailer"),
            BODY,
            mode=mode,
            trailer=trailer,
            corrupt=change_checksum,
        )
        self.refused_new(bad, 403, "SignatureDoesNotMatch", "bad-trailer")

    def test_unsigned_trailer(self) -> None:
        """
        C{STREAMING-UNSIGNED-PAYLOAD-TRAILER}: a correct trailing checksum
        (every algorithm) stores the payload; a wrong one is 400 BadDigest
        and stores nothing.
        """
        mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        for algorithm in ALGORITHMS:
            name = f"unsigned-{algorithm}"
            header = f"x-amz-checksum-{algorithm}"
            bad = chunked_upload(
                self.daemon,
                self.target(name),
                BODY,
                mode=mode,
                trailer=(header, checksum(algorithm, b"other")),
            )
            self.refused_new(bad, 400, "BadDigest", name)
            self.refused(bad, 400, "BadDigest", name)
            good = chunked_upload(
                self.daemon,
                self.target(f"{name}-good"),
                BODY,
                mode=mode,
                trailer=(header, checksum(algorithm, BODY)),
            )
            self.stored_ok(good, f"{name}-good")

    # -- clients that leave --------------------------------------------------------

    def _gone(self, target: str) -> None:
        """
        Wait until the daemon has logged the request to ``target`` as
        incomplete (the access log shows the path without the query).
        """
        path = target.partition("?")[0]
        wait_until(
            lambda: any(
                f" {path} " in line and "(incomplete)" in line
                for line in self.daemon.log_text().splitlines()
            ),
            f"access log line for {target}",
            GONE_WITHIN,
        )

    def test_disconnect(self) -> None:
        """
        A client that sends half of its declared body and closes the
        connection leaves no object (and an object it would have replaced
        unchanged), whether its payload was signed or not.
        """
        data = pattern(4 * 1024 * 1024, 22)
        for name, payload_hash in (("unsigned", UNSIGNED_PAYLOAD), ("signed", None)):
            for existing in (False, True):
                key_name = f"gone-{name}-{existing}"
                if existing:
                    self.place.put(self.key(key_name), b"previous")
                upload = plain_upload(
                    self.daemon, self.target(key_name), data, payload_hash
                )
                send_part_and_leave(self.daemon, upload, len(data) // 2)
                self._gone(upload.target)
                self.assertEqual(
                    self.place.stored(self.key(key_name)),
                    b"previous" if existing else None,
                    key_name,
                )

    # -- parts ---------------------------------------------------------------------

    def test_parts(self) -> None:
        """
        An UploadPart with a wrong payload hash (400
        XAmzContentSHA256Mismatch), a wrong C{Content-MD5} (400 BadDigest),
        bad chunk signatures (403 SignatureDoesNotMatch), or whose client
        leaves half-way, adds no part: ListParts (through the daemon, and on
        the backend itself) shows only the good part.
        """
        client = s3_client(self.daemon.url, *WRITER)
        key = self.key("parts")
        upload_id = client.create_multipart_upload(Bucket=self.place.bucket, Key=key)[
            "UploadId"
        ]
        try:
            self._bad_parts(upload_id)
            good = plain_upload(
                self.daemon,
                self.target("parts", f"partNumber=9&uploadId={upload_id}"),
                BODY,
            )
            self.assertEqual(send(self.daemon, good).status, 200)
            listed = client.list_parts(
                Bucket=self.place.bucket, Key=key, UploadId=upload_id
            )
            self.assertEqual([p["PartNumber"] for p in listed["Parts"]], [9])
            if not self.place.is_file:
                backend = self.place.backend().list_parts(
                    Bucket=self.place.backend_bucket,
                    Key=self.place.backend_key(key),
                    UploadId=upload_id,
                )
                self.assertEqual([p["PartNumber"] for p in backend["Parts"]], [9])
        finally:
            client.abort_multipart_upload(
                Bucket=self.place.bucket, Key=key, UploadId=upload_id
            )

    def _bad_parts(self, upload_id: str) -> None:
        def target(number: int) -> str:
            return self.target("parts", f"partNumber={number}&uploadId={upload_id}")

        wrong = hashlib.sha256(b"other").hexdigest()
        check_error(
            self,  # type: ignore[arg-type]
            send(self.daemon, plain_upload(self.daemon, target(1), BODY, wrong)),
            400,
            "XAmzContentSHA256Mismatch",
        )
        check_error(
            self,  # type: ignore[arg-type]
            send(
                self.daemon,
                plain_upload(
                    self.daemon,
                    target(2),
                    BODY,
                    UNSIGNED_PAYLOAD,
                    [("content-md5", WRONG_MD5)],
                ),
            ),
            400,
            "BadDigest",
        )

        def flip(pieces: list[bytes]) -> None:
            pieces[0] = pieces[0][:-3] + bytes([pieces[0][-3] ^ 1]) + pieces[0][-2:]

        check_error(
            self,  # type: ignore[arg-type]
            send(
                self.daemon,
                chunked_upload(
                    self.daemon,
                    target(3),
                    BODY,
                    mode="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                    corrupt=flip,
                ),
            ),
            403,
            "SignatureDoesNotMatch",
        )
        data = pattern(4 * 1024 * 1024, 23)
        leaving = plain_upload(self.daemon, target(4), data, UNSIGNED_PAYLOAD)
        send_part_and_leave(self.daemon, leaving, len(data) // 2)
        self._gone(leaving.target)


class SeaweedFSIntegrityTests(IntegrityMixin, SynchronousTestCase):
    """
    Integrity on SeaweedFS, under a backend prefix.
    """

    place_name = "sw"


class FileIntegrityTests(IntegrityMixin, SynchronousTestCase):
    """
    Integrity in a directory bucket.
    """

    place_name = "fi"
