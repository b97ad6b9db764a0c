# mypy: disable-error-code="no-untyped-call"
"""
Uploads stream: a 2 GiB PUT passes through the daemon to SeaweedFS while its
memory stays within a few tens of MiB; an upload reaches its store while the
client is still sending, and a store that stops reading stops the client;
uploads without a length (HTTP chunked) are stored too; a 1 GiB multipart
upload with four parts in flight (boto3's transfer manager) arrives whole.

Where a test must see the backend's side of an upload it uses
L{RecordingBackend}: a small HTTP server in threads of the test process,
configured as an unsigned S3 bucket, that reads each PUT's body (at a pace
the test may hold back) and records when its bytes arrived.

Bodies are made on the fly in 1 MiB blocks (each block starts with its own
number, so a block lost, repeated or moved changes the CRC) and checked by
CRC-32 on the way in and when read back from the backend itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from uuid import uuid4

import pytest
from attrs import define, field
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
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
from tests.integration.test_read_path import REGION, object_path
from tests.integration.test_streaming import rss
from tests.integration.test_write_path import (
    WRITER,
    Place,
    wait_until,
    writer_credential,
)

MiB: Final = 1024 * 1024
GiB: Final = 1024 * MiB

#: The size of the big PUT.
HUGE: Final = 2 * GiB

#: The size of the multipart upload.
LARGE: Final = 1 * GiB

#: The part size of the multipart upload (16 parts).
LARGE_PART: Final = 64 * MiB

#: How far the daemon's resident memory may grow during one upload.
RSS_ALLOWANCE: Final = 64 * MiB

#: Seconds the recording backend holds off reading in the backpressure test.
STALL: Final = 4.0

_BASE: Final = hashlib.shake_256(b"multistore write streaming").digest(MiB)


def block(index: int, seed: int = 0) -> bytes:
    """
    :return: 1 MiB block ``index`` of a body: its number (and the body's
        seed) then fixed pseudo-random bytes.
    """
    return struct.pack(">QQ", seed, index) + _BASE[16:]


def blocks(size: int, seed: int = 0) -> Iterator[bytes]:
    """
    :return: the blocks of a body of ``size`` bytes (the last one cut).
    """
    for index in range(-(-size // MiB)):
        piece = block(index, seed)
        yield piece[: min(MiB, size - index * MiB)]


def body_crc(size: int, seed: int = 0) -> int:
    """
    :return: the CRC-32 of the body of ``size`` bytes.
    """
    crc = 0
    for piece in blocks(size, seed):
        crc = zlib.crc32(piece, crc)
    return crc


def report(line: str) -> None:
    """
    Append a line of figures to the file named by C{MULTISTORE_REPORT}, if
    set.
    """
    path = os.environ.get("MULTISTORE_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")


@define
class MemoryWatch:
    """
    Samples a process's resident memory in a thread, every 50 ms, until
    stopped.

    :ivar baseline: the memory when the watch began.
    :ivar peak: the most seen.
    """

    pid: int
    baseline: int = 0
    peak: int = 0
    _stop: threading.Event = field(factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemoryWatch:
        self.baseline = self.peak = rss(self.pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)
        self.peak = max(self.peak, rss(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(OSError, AssertionError):
                self.peak = max(self.peak, rss(self.pid))

    @property
    def growth(self) -> int:
        """
        How far the memory grew above the baseline.
        """
        return self.peak - self.baseline


# --- raw uploads -------------------------------------------------------------------


def upload_headers(
    daemon: Daemon, target: str, extra: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """
    SigV4 headers for a PUT whose payload is not signed (C{UNSIGNED-PAYLOAD}).
    """
    signed = sign_request(
        "PUT",
        f"http://{LOCALHOST}:{daemon.port}{target}",
        HeaderList([(n.lower(), v) for n, v in extra]),
        UNSIGNED_PAYLOAD,
        *WRITER,
        None,
        REGION,
        datetime.now(UTC),
    )
    return list(signed)


def open_upload(
    daemon: Daemon,
    target: str,
    length: int | None,
    timeout: float = 120.0,
) -> http.client.HTTPConnection:
    """
    Send the headers of a PUT with a C{Content-Length}, or chunked if
    ``length`` is None; the body is for the caller to send.
    """
    extra = [] if length is None else [("content-length", str(length))]
    connection = http.client.HTTPConnection(LOCALHOST, daemon.port, timeout=timeout)
    connection.putrequest("PUT", target, skip_host=True, skip_accept_encoding=True)
    for name, value in upload_headers(daemon, target, extra):
        connection.putheader(name, value)
    if length is None:
        connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    return connection


def finish(connection: http.client.HTTPConnection) -> tuple[int, bytes]:
    """
    Read the response to an upload and close the connection.
    """
    try:
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def send_chunk(connection: http.client.HTTPConnection, data: bytes) -> None:
    """
    Send one HTTP/1.1 chunk (the last one if ``data`` is empty).
    """
    connection.send(b"%x\r\n%s\r\n" % (len(data), data))


def backend_crc(place: Place, key: str) -> tuple[int, int]:
    """
    Read an object back from the store itself, streaming.

    :return: its size and CRC-32.
    """
    crc = size = 0
    if place.is_file:
        with place.path(key).open("rb") as stored:
            while piece := stored.read(MiB):
                crc, size = zlib.crc32(piece, crc), size + len(piece)
        return size, crc
    body = place.backend().get_object(
        Bucket=place.backend_bucket, Key=place.backend_key(key)
    )["Body"]
    for piece in body.iter_chunks(MiB):
        crc, size = zlib.crc32(piece, crc), size + len(piece)
    return size, crc


# --- a recording backend -------------------------------------------------------------


@define
class Received:
    """
    What the recording backend saw of one PUT.

    :ivar path: the request path.
    :ivar first_byte: when the first body byte arrived (C{time.monotonic}).
    :ivar last_byte: when the body was complete.
    :ivar size: body bytes received so far.
    :ivar md5: the body's MD5, once complete.
    """

    path: str
    first_byte: float | None = None
    last_byte: float | None = None
    size: int = 0
    md5: str | None = None


@define
class RecordingBackend:
    """
    An HTTP/1.1 server on 127.0.0.1, in threads of the test process, that
    takes every PUT (with a C{Content-Length}) and answers 200 with the
    body's MD5 as its ETag once it has read it all. While L{hold} is set it
    stops reading bodies after their first MiB.

    :ivar port: the TCP port.
    :ivar puts: what each PUT brought, in order.
    :ivar hold: set to stop reading.
    """

    _listener: socket.socket
    port: int
    puts: list[Received] = field(factory=list)
    hold: threading.Event = field(factory=threading.Event)
    _lock: threading.Lock = field(factory=threading.Lock)
    _stopping: threading.Event = field(factory=threading.Event)
    _threads: list[threading.Thread] = field(factory=list)

    @classmethod
    def start(cls) -> RecordingBackend:
        """
        Listen on a free port and start accepting.
        """
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((LOCALHOST, 0))
        listener.listen(16)
        listener.settimeout(0.1)
        backend = cls(listener, listener.getsockname()[1])
        thread = threading.Thread(target=backend._accept, daemon=True)
        backend._threads.append(thread)
        thread.start()
        return backend

    def bucket_options(self) -> dict[str, str]:
        """
        :return: C{backend_options} of an unsigned S3 bucket served here.
        """
        return {
            "endpoint": f"http://{LOCALHOST}:{self.port}",
            "bucket_name": "recording",
            "skip_signature": "true",
            "allow_http": "true",
        }

    def stop(self) -> None:
        """
        Stop accepting and serving, and wait for the threads.
        """
        self._stopping.set()
        self.hold.clear()
        for thread in self._threads:
            thread.join(10)
        self._listener.close()

    def received(self, fragment: str) -> Received | None:
        """
        :return: the PUT whose path holds ``fragment``, if one came.
        """
        with self._lock:
            for put in self.puts:
                if fragment in put.path:
                    return put
        return None

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _recv(self, sock: socket.socket) -> bytes:
        while not self._stopping.is_set():
            try:
                return sock.recv(256 * 1024)
            except TimeoutError:
                continue
        return b""

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.1)
        buffered = b""
        with contextlib.closing(sock):
            while not self._stopping.is_set():
                while b"\r\n\r\n" not in buffered:
                    data = self._recv(sock)
                    if not data:
                        return
                    buffered += data
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:])
                }
                length = int(headers.get("content-length", "0"))
                record = Received(path)
                with self._lock:
                    self.puts.append(record)
                digest = hashlib.md5()
                while record.size < length:
                    if not buffered:
                        if self.hold.is_set() and record.size >= MiB:
                            time.sleep(0.01)
                            continue
                        buffered = self._recv(sock)
                        if not buffered:
                            return
                    piece, buffered = (
                        buffered[: length - record.size],
                        buffered[length - record.size :],
                    )
                    with self._lock:
                        if record.first_byte is None:
                            record.first_byte = time.monotonic()
                        record.size += len(piece)
                    digest.update(piece)
                with self._lock:
                    record.last_byte = time.monotonic()
                    record.md5 = digest.hexdigest()
                status = b"200 OK" if method == "PUT" else b"404 Not Found"
                sock.sendall(
                    b"HTTP/1.1 " + status + b"\r\n"
                    b'ETag: "' + record.md5.encode() + b'"\r\n'
                    b"Content-Length: 0\r\n\r\n"
                )


# --- the module's daemon ------------------------------------------------------------


@define
class StreamingWorld:
    """
    The module's daemon and its buckets: C{sw} (SeaweedFS), C{fi} (a
    directory) and C{rec} (the recording backend).
    """

    daemon: Daemon
    places: dict[str, Place]
    recording: RecordingBackend


@pytest.fixture(scope="module")
def streaming_world(
    module_multistore_daemon: DaemonFactory,
    seaweedfs: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StreamingWorld]:
    """
    A daemon over SeaweedFS, a directory and a L{RecordingBackend}.
    """
    recording = RecordingBackend.start()
    try:
        places = {
            "sw": Place.on_s3("sw", seaweedfs, "streaming"),
            "fi": Place.on_disk("fi", tmp_path_factory.mktemp("write-streaming")),
        }
        daemon = module_multistore_daemon(
            {
                "buckets": [
                    *(p.config() for p in places.values()),
                    {
                        "name": "rec",
                        "backend_type": "s3",
                        "backend_options": recording.bucket_options(),
                    },
                ],
                "credentials": [writer_credential()],
            }
        )
        yield StreamingWorld(daemon, places, recording)
    finally:
        recording.stop()


class _StreamingTests:
    """
    Gives each test C{self.world}, C{self.daemon} and a fresh key prefix.
    """

    # Provided by SynchronousTestCase.
    assertEqual: Any
    assertLess: Any
    assertIsNone: Any
    assertTrue: Any

    @pytest.fixture(autouse=True)
    def _world(self, streaming_world: StreamingWorld, tmp_path: Path) -> None:
        self.world = streaming_world
        self.daemon = streaming_world.daemon
        self.directory = tmp_path
        self.base = f"t{uuid4().hex[:10]}/"

    def warm_up(self, bucket: str) -> None:
        """
        One small upload, so that the memory measured after it is the
        daemon's working baseline.
        """
        key = self.base + "warm-up"
        connection = open_upload(self.daemon, object_path(bucket, key), 11)
        connection.send(b"warming up!")
        self.assertEqual(finish(connection)[0], 200)

    def check_memory(self, watch: MemoryWatch, what: str) -> None:
        """
        Check, and report, how far the daemon's memory grew.
        """
        report(
            f"{what}: RSS baseline {watch.baseline / MiB:.1f} MiB, "
            f"peak {watch.peak / MiB:.1f} MiB"
        )
        self.assertLess(
            watch.growth,
            RSS_ALLOWANCE,
            f"{what}: RSS grew from {watch.baseline} to {watch.peak} bytes",
        )


class HugePutTests(_StreamingTests, SynchronousTestCase):
    """
    A 2 GiB PUT to SeaweedFS.
    """

    def test_two_gib(self) -> None:
        """
        A 2 GiB PUT with a C{Content-Length} (payload unsigned), made on the
        fly, passes through the daemon while its resident memory stays
        within L{RSS_ALLOWANCE} of where it began; SeaweedFS then holds
        exactly those bytes.
        """
        place = self.world.places["sw"]
        self.warm_up(place.bucket)
        key = self.base + "two-gib.bin"
        started = time.monotonic()
        crc = 0
        with MemoryWatch(self.daemon.pid) as watch:
            connection = open_upload(
                self.daemon, object_path(place.bucket, key), HUGE, timeout=300
            )
            for piece in blocks(HUGE, seed=1):
                connection.send(piece)
                crc = zlib.crc32(piece, crc)
            status, body = finish(connection)
        elapsed = time.monotonic() - started
        self.assertEqual(status, 200, body)
        report(
            f"2 GiB PUT to SeaweedFS: {elapsed:.1f}s, {HUGE / MiB / elapsed:.0f} MiB/s"
        )
        self.check_memory(watch, "2 GiB PUT to SeaweedFS")
        try:
            self.assertEqual(backend_crc(place, key), (HUGE, crc))
        finally:
            place.backend().delete_object(
                Bucket=place.backend_bucket, Key=place.backend_key(key)
            )


class ArrivalTests(_StreamingTests, SynchronousTestCase):
    """
    An upload reaches its store while the client is still sending.
    """

    def test_s3_store(self) -> None:
        """
        The first bytes of a PUT reach the S3 backend while the client,
        having sent 1 MiB of 16, waits before sending the rest; the backend
        ends up with the whole body.
        """
        size = 16 * MiB
        key = self.base + "early.bin"
        target = object_path("rec", key)
        connection = open_upload(self.daemon, target, size)
        pieces = list(blocks(size, seed=2))
        connection.send(pieces[0])
        recording = self.world.recording
        wait_until(
            lambda: (r := recording.received(key)) is not None and r.size > 0,
            "body bytes at the backend while the client waits",
        )
        held = time.monotonic()
        for piece in pieces[1:]:
            connection.send(piece)
        sent_all = time.monotonic()
        status, body = finish(connection)
        self.assertEqual(status, 200, body)
        received = recording.received(key)
        assert received is not None and received.first_byte is not None
        self.assertLess(received.first_byte, held)
        self.assertLess(received.first_byte, sent_all)
        self.assertEqual(
            (received.size, received.md5),
            (size, hashlib.md5(b"".join(pieces)).hexdigest()),
        )

    def test_file_store(self) -> None:
        """
        The first bytes of a PUT to a directory bucket are in its temporary
        file while the client, having sent 1 MiB of 16, waits; meanwhile
        readers (through the daemon, and on disk) see the object it replaces,
        whole. Once the rest is sent the new object is complete and the
        temporary file gone.
        """
        place = self.world.places["fi"]
        size = 16 * MiB
        key = self.base + "early.bin"
        place.put(key, b"the previous object")
        reader = s3_client(self.daemon.url, *WRITER)
        connection = open_upload(self.daemon, object_path(place.bucket, key), size)
        pieces = list(blocks(size, seed=3))
        connection.send(pieces[0])
        tmp = place.root / ".multistore" / "tmp"  # type: ignore[operator]

        def partial() -> bool:
            return tmp.is_dir() and any(p.stat().st_size > 0 for p in tmp.iterdir())

        wait_until(partial, "a partial temporary file while the client waits")
        self.assertEqual(place.stored(key), b"the previous object")
        got = reader.get_object(Bucket=place.bucket, Key=key)["Body"].read()
        self.assertEqual(got, b"the previous object")
        for piece in pieces[1:]:
            connection.send(piece)
        status, body = finish(connection)
        self.assertEqual(status, 200, body)
        self.assertEqual(backend_crc(place, key), (size, body_crc(size, seed=3)))
        self.assertEqual(place.temp_files(), [])

    def test_backpressure(self) -> None:
        """
        While the S3 backend stops reading, the client cannot push the rest
        of a 256 MiB body through the daemon (it is paused after a bounded
        amount), and the daemon's memory stays within L{RSS_ALLOWANCE}; once
        the backend reads again every byte arrives.
        """
        size = 256 * MiB
        key = self.base + "held.bin"
        recording = self.world.recording
        self.warm_up("fi")
        sent = 0
        done = threading.Event()
        failure: list[BaseException] = []

        def push(connection: http.client.HTTPConnection) -> None:
            nonlocal sent
            try:
                for piece in blocks(size, seed=4):
                    connection.send(piece)
                    sent += len(piece)
            except BaseException as e:  # reported by the test thread
                failure.append(e)
            finally:
                done.set()

        recording.hold.set()
        try:
            with MemoryWatch(self.daemon.pid) as watch:
                connection = open_upload(self.daemon, object_path("rec", key), size)
                pusher = threading.Thread(target=push, args=(connection,), daemon=True)
                pusher.start()
                wait_until(
                    lambda: (
                        (r := recording.received(key)) is not None and r.size >= MiB
                    ),
                    "the backend to get its first MiB",
                )
                time.sleep(STALL)
                stalled_at = sent
                self.assertTrue(not done.is_set(), "the client sent everything")
        finally:
            recording.hold.clear()
        report(
            f"backpressure: client sent {stalled_at / MiB:.1f} MiB of "
            f"{size / MiB:.0f} MiB while the backend held"
        )
        self.assertLess(stalled_at, 64 * MiB)
        self.check_memory(watch, "upload to a backend that stopped reading")
        self.assertTrue(done.wait(120), "the client could not finish")
        self.assertEqual(failure, [])
        status, body = finish(connection)
        self.assertEqual(status, 200, body)
        received = recording.received(key)
        assert received is not None
        self.assertEqual(received.size, size)


class UnknownLengthTests(_StreamingTests, SynchronousTestCase):
    """
    Uploads without a length: C{Transfer-Encoding: chunked}.
    """

    def _chunked(self, place: Place, size: int, seed: int) -> None:
        key = self.base + f"chunked-{size}.bin"
        self.warm_up(place.bucket)
        with MemoryWatch(self.daemon.pid) as watch:
            connection = open_upload(self.daemon, object_path(place.bucket, key), None)
            for piece in blocks(size, seed):
                send_chunk(connection, piece)
            send_chunk(connection, b"")
            status, body = finish(connection)
        self.assertEqual(status, 200, body)
        self.check_memory(watch, f"chunked {size // MiB} MiB PUT to {place.bucket}")
        self.assertEqual(backend_crc(place, key), (size, body_crc(size, seed)))

    def test_small(self) -> None:
        """
        A chunked PUT of 3 MiB is stored whole, on SeaweedFS and in a
        directory bucket.
        """
        for name in ("sw", "fi"):
            self._chunked(self.world.places[name], 3 * MiB + 5, seed=5)

    def test_large(self) -> None:
        """
        A chunked PUT of 200 MiB is stored whole, on SeaweedFS and in a
        directory bucket, the daemon's memory within L{RSS_ALLOWANCE}.
        """
        for name in ("sw", "fi"):
            self._chunked(self.world.places[name], 200 * MiB + 17, seed=6)


class MultipartTransferTests(_StreamingTests, SynchronousTestCase):
    """
    A large multipart upload with parts in parallel.
    """

    def test_one_gib_four_parts_at_a_time(self) -> None:
        """
        boto3's transfer manager uploads a 1 GiB file to SeaweedFS through
        the daemon in 64 MiB parts, four at a time; the daemon's memory stays
        within L{RSS_ALLOWANCE}, and SeaweedFS holds the 16-part object,
        byte for byte.
        """
        place = self.world.places["sw"]
        source = self.directory / "one-gib.bin"
        crc = 0
        with source.open("wb") as out:
            for piece in blocks(LARGE, seed=7):
                out.write(piece)
                crc = zlib.crc32(piece, crc)
        key = self.base + "one-gib.bin"
        client = s3_client(self.daemon.url, *WRITER, max_pool_connections=8)
        config = TransferConfig(
            multipart_threshold=LARGE_PART,
            multipart_chunksize=LARGE_PART,
            max_concurrency=4,
            use_threads=True,
        )
        self.warm_up(place.bucket)
        started = time.monotonic()
        try:
            with MemoryWatch(self.daemon.pid) as watch:
                client.upload_file(str(source), place.bucket, key, Config=config)
            elapsed = time.monotonic() - started
        finally:
            source.unlink()
        report(f"1 GiB multipart upload to SeaweedFS: {elapsed:.1f}s")
        self.check_memory(watch, "1 GiB multipart upload to SeaweedFS")
        try:
            head = place.head(key)
            self.assertEqual(head["ContentLength"], LARGE)
            self.assertTrue(head["ETag"].endswith('-16"'), head["ETag"])
            self.assertEqual(backend_crc(place, key), (LARGE, crc))
        finally:
            place.backend().delete_object(
                Bucket=place.backend_bucket, Key=place.backend_key(key)
            )


class CopyStreamingTests(_StreamingTests, SynchronousTestCase):
    """
    Copies between services go through the daemon as streams.
    """

    def test_large_copies_across_services(self) -> None:
        """
        A 128 MiB object copied from SeaweedFS to a directory bucket, and
        back, arrives whole each time while the daemon's memory stays within
        L{RSS_ALLOWANCE}.
        """
        size = 128 * MiB
        seaweedfs, directory = self.world.places["sw"], self.world.places["fi"]
        source = self.base + "copy-source.bin"
        seaweedfs.put(source, b"".join(blocks(size, seed=8)))
        expected = (size, body_crc(size, seed=8))
        client = s3_client(self.daemon.url, *WRITER)
        self.warm_up(directory.bucket)
        for origin, destination in ((seaweedfs, directory), (directory, seaweedfs)):
            key = self.base + f"copied-to-{destination.bucket}.bin"
            with MemoryWatch(self.daemon.pid) as watch:
                client.copy_object(
                    Bucket=destination.bucket,
                    Key=key,
                    CopySource={"Bucket": origin.bucket, "Key": source},
                )
            self.check_memory(
                watch, f"128 MiB copy from {origin.bucket} to {destination.bucket}"
            )
            self.assertEqual(backend_crc(destination, key), expected)
            source = key
