# mypy: disable-error-code="no-untyped-call"
"""
Streaming through the daemon: response bodies move with backpressure, so a
client that stops reading never makes the daemon hold the object; a client
that goes away cancels the backend request; a slow reader gets every byte.

Objects of 512 MiB come from two real stores: SeaweedFS (seeded with a
multipart upload straight to it) and a local directory (a sparse file). The
daemon's memory is read from C{/proc/PID/status} while a client holds the
response unread.

Where a test must watch the backend's side of the connection it uses
L{ScriptedBackend}: a small HTTP server in a thread of the test process,
configured as an unsigned S3 bucket, whose object keys say how to answer
(see L{ScriptedBackend}); it records when each connection opens and closes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import http.client
import os
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Final, NoReturn

import pytest
from attrs import define, field
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.servers import (
    LOCALHOST,
    Daemon,
    DaemonFactory,
    S3Server,
    unique_bucket_name,
)

MiB: Final = 1024 * 1024

#: The size of the large objects.
BIG: Final = 512 * MiB

#: How far the daemon's resident memory may grow while it serves one of them.
RSS_ALLOWANCE: Final = 64 * MiB

#: Seconds a stalled client holds a response unread; longer than the
#: daemon's backend timeout, so a paused backend must not count as silent.
STALL: Final = 6.0

#: The daemon's ``backend_timeout`` in this module.
BACKEND_TIMEOUT: Final = 5

#: Seconds within which a backend connection must close after its client
#: went away (well below L{BACKEND_TIMEOUT}, so it is not the timeout).
CLOSE_WITHIN: Final = 2.5

#: Bytes of each part of the SeaweedFS object's multipart upload.
PART: Final = 32 * MiB

#: Where markers are written in the sparse file, so that bytes out of place
#: change the checksum.
SPARSE_MARKERS: Final = (0, 3 * MiB + 17, BIG // 2 - 5, BIG - 64)


# --- memory and checksums ----------------------------------------------------


def rss(pid: int) -> int:
    """
    :return: the resident set size of process ``pid``, in bytes.
    """
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def _part(index: int) -> bytes:
    """
    Part ``index`` of the SeaweedFS object: each MiB is distinct (it starts
    with its own number), so a chunk lost, repeated or moved shows.
    """
    base = hashlib.shake_256(b"multistore streaming").digest(MiB)
    first = index * PART // MiB
    return b"".join(struct.pack(">Q", first + n) + base[8:] for n in range(PART // MiB))


def _sparse_content() -> Iterator[tuple[int, bytes]]:
    """
    :return: the markers of the sparse file, as ``(offset, bytes)``.
    """
    for offset in SPARSE_MARKERS:
        yield offset, b"marker@%d!" % offset


def _sparse_crc() -> int:
    """
    :return: the CRC-32 of the sparse file's whole content.
    """
    crc = 0
    position = 0
    zeros = bytes(MiB)
    for offset, marker in sorted(_sparse_content()):
        while position < offset:
            step = min(MiB, offset - position)
            crc = zlib.crc32(zeros[:step], crc)
            position += step
        crc = zlib.crc32(marker, crc)
        position += len(marker)
    while position < BIG:
        step = min(MiB, BIG - position)
        crc = zlib.crc32(zeros[:step], crc)
        position += step
    return crc


# --- a scripted backend ----------------------------------------------------

#: Period of the bytes the scripted backend serves: not a power of two, so a
#: chunk lost or repeated anywhere shifts everything after it.
_PERIOD: Final = MiB + 7
_PATTERN: Final = hashlib.shake_256(b"multistore scripted backend").digest(_PERIOD)
_PATTERN2: Final = _PATTERN + _PATTERN


def pattern(offset: int, length: int) -> bytes:
    """
    :return: ``length`` bytes of the scripted backend's content from
        ``offset`` (every object holds the same endless content).
    """
    pieces = []
    while length > 0:
        start = offset % _PERIOD
        step = min(length, _PERIOD)
        pieces.append(_PATTERN2[start : start + step])
        offset += step
        length -= step
    return b"".join(pieces)


class _PeerGone(Exception):
    """
    The other end of a scripted connection closed it.
    """


@define
class BackendConnection:
    """
    What the scripted backend saw of one connection.

    :ivar opened: when it was accepted (C{time.monotonic}).
    :ivar requests: the request lines received, in order.
    :ivar sent: body bytes sent.
    :ivar closed: when the peer was seen to close it, or None.
    """

    opened: float
    requests: list[str] = field(factory=list)
    sent: int = 0
    closed: float | None = None


@define
class ScriptedBackend:
    """
    An HTTP/1.1 server on 127.0.0.1, in threads of the test process, that
    answers as the last segments of the request path say (the bucket name
    comes first and is ignored):

    - C{body/SIZE}: 200 with C{SIZE} bytes of L{pattern};
    - C{stall/SIZE/SENT}: C{Content-Length: SIZE}, then C{SENT} bytes, then
      nothing while the connection stays open;
    - C{chunked-stall/SENT}: a chunked body of C{SENT} bytes, then nothing;
    - C{close/SIZE/SENT}: C{Content-Length: SIZE}, C{SENT} bytes, then the
      connection is closed;
    - C{silent}: reads the request and never answers.

    C{HEAD} gets the headers of the same answer. Anything else is a 404.
    Connections are kept alive between requests, as S3 does.

    :ivar port: the TCP port.
    :ivar connections: every connection accepted, in order.
    """

    _listener: socket.socket
    port: int
    connections: list[BackendConnection] = field(factory=list)
    _lock: threading.RLock = field(factory=threading.RLock)
    _stopping: threading.Event = field(factory=threading.Event)
    _threads: list[threading.Thread] = field(factory=list)

    @classmethod
    def start(cls) -> ScriptedBackend:
        """
        Listen on a free port and start accepting.

        :return: the running backend.
        """
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((LOCALHOST, 0))
        listener.listen(64)
        listener.settimeout(0.1)
        backend = cls(listener, listener.getsockname()[1])
        thread = threading.Thread(target=backend._accept, daemon=True)
        backend._threads.append(thread)
        thread.start()
        return backend

    @property
    def endpoint(self) -> str:
        """
        :return: C{http://127.0.0.1:PORT}.
        """
        return f"http://{LOCALHOST}:{self.port}"

    def bucket_options(self) -> dict[str, str]:
        """
        :return: C{backend_options} of an unsigned S3 bucket served here.
        """
        return {
            "endpoint": self.endpoint,
            "bucket_name": "scripted",
            "skip_signature": "true",
            "allow_http": "true",
        }

    def stop(self) -> None:
        """
        Stop accepting, end every connection's thread, and wait for them.
        """
        self._stopping.set()
        for thread in self._threads:
            thread.join(10)
        self._listener.close()

    def connections_for(self, fragment: str) -> list[BackendConnection]:
        """
        :return: the connections that received a request whose line holds
            ``fragment``.
        """
        with self._lock:
            return [
                c
                for c in self.connections
                if any(fragment in line for line in c.requests)
            ]

    def wait_for(
        self, check: Callable[[], bool], what: str, timeout: float = 10.0
    ) -> float:
        """
        Poll ``check`` every 10 ms until it is true.

        :return: the time (C{time.monotonic}) at which it was.
        :raise AssertionError: if ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if check():
                    return time.monotonic()
            if time.monotonic() >= deadline:
                raise AssertionError(f"scripted backend: no {what} in {timeout}s")
            time.sleep(0.01)

    # The server side.

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            record = BackendConnection(opened=time.monotonic())
            with self._lock:
                self.connections.append(record)
            thread = threading.Thread(
                target=self._serve, args=(sock, record), daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, record: BackendConnection) -> None:
        sock.settimeout(0.1)
        buffered = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffered:
                    buffered += self._recv(sock)
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                with self._lock:
                    record.requests.append(line)
                self._answer(sock, record, line)
        except _PeerGone:
            with self._lock:
                record.closed = time.monotonic()
        finally:
            sock.close()

    def _recv(self, sock: socket.socket) -> bytes:
        while True:
            if self._stopping.is_set():
                raise _PeerGone()
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                raise _PeerGone() from None
            if not data:
                raise _PeerGone()
            return data

    def _send(self, sock: socket.socket, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._stopping.is_set():
                raise _PeerGone()
            try:
                sent = sock.send(view)
            except TimeoutError:
                continue
            except OSError:
                raise _PeerGone() from None
            view = view[sent:]

    def _send_body(
        self, sock: socket.socket, record: BackendConnection, count: int
    ) -> None:
        offset = 0
        while offset < count:
            step = min(256 * 1024, count - offset)
            self._send(sock, pattern(offset, step))
            offset += step
            with self._lock:
                record.sent += step

    def _wait_for_close(self, sock: socket.socket) -> NoReturn:
        while True:
            self._recv(sock)

    def _answer(
        self, sock: socket.socket, record: BackendConnection, line: str
    ) -> None:
        method, target = line.split(" ")[:2]
        parts = target.split("?", 1)[0].strip("/").split("/")[1:]
        head_only = method == "HEAD"
        kind, args = (parts[0], [int(a) for a in parts[1:]]) if parts else ("", [])
        if kind == "silent":
            self._wait_for_close(sock)
        if kind in ("body", "stall", "close") and args:
            size = args[0]
            sent = size if kind == "body" else args[1]
            self._send(
                sock,
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b'ETag: "0123456789abcdef0123456789abcdef"\r\n'
                b"Last-Modified: Mon, 02 Feb 2026 10:00:00 GMT\r\n"
                b"Content-Length: %d\r\n\r\n" % size,
            )
            if head_only:
                return
            self._send_body(sock, record, sent)
            if kind == "stall":
                self._wait_for_close(sock)
            if kind == "close":
                raise _PeerGone()
            return
        if kind == "chunked-stall" and args:
            self._send(
                sock,
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n",
            )
            if head_only:
                self._wait_for_close(sock)
            data = pattern(0, args[0])
            self._send(sock, b"%x\r\n%s\r\n" % (len(data), data))
            with self._lock:
                record.sent += len(data)
            self._wait_for_close(sock)
        body = b"" if head_only else b"no such script"
        self._send(
            sock,
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 14\r\n\r\n" + body,
        )


@pytest.fixture(scope="module")
def scripted_backend() -> Iterator[ScriptedBackend]:
    """
    A L{ScriptedBackend} for the module.
    """
    backend = ScriptedBackend.start()
    try:
        yield backend
    finally:
        backend.stop()


# --- plain HTTP to the daemon -------------------------------------------------


def open_get(
    daemon: Daemon, path: str, timeout: float = 30.0
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """
    Send an anonymous GET to the daemon and read the response headers.

    :return: the connection and the response, its body unread.
    """
    connection = http.client.HTTPConnection(LOCALHOST, daemon.port, timeout=timeout)
    connection.request("GET", path)
    return connection, connection.getresponse()


def drain(
    response: http.client.HTTPResponse,
    crc: int = 0,
    *,
    on_chunk: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """
    Read the rest of a body in 1 MiB pieces.

    :param crc: the CRC-32 of what was read before.
    :param on_chunk: called with the running byte count after each piece.
    :return: the number of bytes read here, and the CRC-32 of everything.
    """
    count = 0
    while True:
        chunk = response.read(MiB)
        if not chunk:
            return count, crc
        count += len(chunk)
        crc = zlib.crc32(chunk, crc)
        if on_chunk is not None:
            on_chunk(count)


# --- fixtures ----------------------------------------------------------------


@define
class BigObjects:
    """
    The module's daemon and the 512 MiB objects it serves.

    :ivar daemon: the daemon (anonymous reads on every bucket).
    :ivar seaweed_crc: the CRC-32 of the SeaweedFS object C{big/big.bin}.
    :ivar sparse_crc: the CRC-32 of the sparse file C{sparse/sparse.bin}.
    """

    daemon: Daemon
    seaweed_crc: int
    sparse_crc: int


def _seed_seaweedfs(seaweedfs: S3Server, bucket: str) -> int:
    """
    Upload the 512 MiB object to SeaweedFS with a multipart upload, four parts
    at a time.

    :return: its CRC-32.
    """
    client = seaweedfs.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key="big.bin")["UploadId"]

    def send(index: int) -> dict[str, Any]:
        etag = client.upload_part(
            Bucket=bucket,
            Key="big.bin",
            UploadId=upload,
            PartNumber=index + 1,
            Body=_part(index),
        )["ETag"]
        return {"PartNumber": index + 1, "ETag": etag}

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        parts = list(pool.map(send, range(BIG // PART)))
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="big.bin",
        UploadId=upload,
        MultipartUpload={"Parts": parts},
    )
    crc = 0
    for index in range(BIG // PART):
        crc = zlib.crc32(_part(index), crc)
    return crc


@pytest.fixture(scope="module")
def big_objects(
    seaweedfs: S3Server,
    scripted_backend: ScriptedBackend,
    module_multistore_daemon: DaemonFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BigObjects]:
    """
    A daemon with three anonymous buckets: C{big} on SeaweedFS holding a
    512 MiB object, C{sparse} on a directory holding a 512 MiB sparse file,
    and C{scripted} on the L{ScriptedBackend}.
    """
    bucket = seaweedfs.create_bucket(unique_bucket_name("streaming"))
    root = tmp_path_factory.mktemp("sparse")
    with (root / "sparse.bin").open("wb") as sparse:
        sparse.truncate(BIG)
        for offset, marker in _sparse_content():
            sparse.seek(offset)
            sparse.write(marker)
    (root / "small.txt").write_bytes(b"warm-up\n")
    try:
        seaweed_crc = _seed_seaweedfs(seaweedfs, bucket)
        daemon = module_multistore_daemon(
            {
                "server": {"backend_timeout": BACKEND_TIMEOUT},
                "buckets": [
                    {
                        "name": "big",
                        "backend_type": "s3",
                        "anonymous_access": True,
                        "backend_options": seaweedfs.backend_options(bucket),
                    },
                    {
                        "name": "sparse",
                        "backend_type": "file",
                        "anonymous_access": True,
                        "backend_options": {"root": str(root)},
                    },
                    {
                        "name": "scripted",
                        "backend_type": "s3",
                        "anonymous_access": True,
                        "backend_options": scripted_backend.bucket_options(),
                    },
                ],
            }
        )
        yield BigObjects(daemon, seaweed_crc, _sparse_crc())
    finally:
        client = seaweedfs.client()
        with contextlib.suppress(Exception):
            client.delete_object(Bucket=bucket, Key="big.bin")
        (root / "sparse.bin").unlink()


# --- tests ---------------------------------------------------------------------


class StalledClientTests(SynchronousTestCase):
    """
    A client that stops reading a 512 MiB body does not make the daemon
    buffer it, and still gets every byte when it reads on.
    """

    @pytest.fixture(autouse=True)
    def _objects(self, big_objects: BigObjects) -> None:
        self.objects = big_objects
        self.daemon = big_objects.daemon

    def _baseline(self) -> int:
        """
        Warm the daemon up with a small read, then measure its memory.
        """
        connection, response = open_get(self.daemon, "/sparse/small.txt")
        with contextlib.closing(connection):
            self.assertEqual(response.status, 200)
            self.assertEqual(response.read(), b"warm-up\n")
        return rss(self.daemon.pid)

    def _stall_and_read(self, path: str, expected_crc: int) -> None:
        baseline = self._baseline()
        peak = baseline
        connection, response = open_get(self.daemon, path)
        with contextlib.closing(connection):
            self.assertEqual(response.status, 200)
            self.assertEqual(response.getheader("content-length"), str(BIG))
            first = response.read(64 * 1024)
            self.assertEqual(len(first), 64 * 1024)
            # Hold the rest unread; the daemon must pause its source.
            deadline = time.monotonic() + STALL
            while time.monotonic() < deadline:
                peak = max(peak, rss(self.daemon.pid))
                time.sleep(0.1)
            stalled_peak = peak

            def sample(count: int) -> None:
                nonlocal peak
                if count % (16 * MiB) == 0:
                    peak = max(peak, rss(self.daemon.pid))

            count, crc = drain(response, zlib.crc32(first), on_chunk=sample)
        report = os.environ.get("MULTISTORE_REPORT")
        if report:
            with open(report, "a") as out:
                out.write(
                    f"{path}: RSS baseline {baseline / MiB:.1f} MiB, stalled peak "
                    f"{stalled_peak / MiB:.1f} MiB, streaming peak {peak / MiB:.1f} MiB\n"
                )
        self.assertLess(
            stalled_peak - baseline,
            RSS_ALLOWANCE,
            f"RSS grew from {baseline} to {stalled_peak} bytes while stalled",
        )
        self.assertLess(
            peak - baseline,
            RSS_ALLOWANCE,
            f"RSS grew from {baseline} to {peak} bytes while streaming",
        )
        self.assertEqual(len(first) + count, BIG)
        self.assertEqual(crc, expected_crc)
        self.assertTrue(self.daemon.running())

    def test_s3_backend(self) -> None:
        """
        A 512 MiB object from SeaweedFS: while the client holds the response
        unread for longer than the backend timeout, the daemon's memory stays
        within L{RSS_ALLOWANCE} of where it was and the request does not time
        out; then the client reads every byte, in order.
        """
        self._stall_and_read("/big/big.bin", self.objects.seaweed_crc)

    def test_file_backend(self) -> None:
        """
        The same with a 512 MiB sparse file in a local-directory bucket.
        """
        self._stall_and_read("/sparse/sparse.bin", self.objects.sparse_crc)


class DisconnectTests(SynchronousTestCase):
    """
    A client that goes away cancels its backend request.
    """

    @pytest.fixture(autouse=True)
    def _objects(
        self, big_objects: BigObjects, scripted_backend: ScriptedBackend
    ) -> None:
        self.daemon = big_objects.daemon
        self.backend = scripted_backend

    def _check_still_serving(self) -> None:
        connection, response = open_get(self.daemon, "/scripted/body/100000")
        with contextlib.closing(connection):
            self.assertEqual(response.status, 200)
            self.assertEqual(response.read(), pattern(0, 100000))
        self.assertTrue(self.daemon.running())

    def test_disconnect_mid_body(self) -> None:
        """
        A client that reads part of a large body and disconnects makes the
        daemon close its backend connection within L{CLOSE_WITHIN} seconds
        (long before the backend could finish); the daemon keeps serving.
        """
        size = 1024 * MiB + 1
        connection, response = open_get(self.daemon, f"/scripted/body/{size}")
        with contextlib.closing(connection):
            self.assertEqual(response.status, 200)
            self.assertEqual(response.read(MiB), pattern(0, MiB))
            [backend] = self.backend.connections_for(f"/body/{size} ")
            # Still open while the client is connected.
            time.sleep(0.3)
            self.assertIsNone(backend.closed)
            gone = time.monotonic()
        closed = self.backend.wait_for(
            lambda: backend.closed is not None, "close after the client left"
        )
        self.assertLess(closed - gone, CLOSE_WITHIN)
        self.assertLess(backend.sent, size // 4)
        self._check_still_serving()

    def test_disconnect_before_response(self) -> None:
        """
        A client that gives up while the backend has not answered yet makes
        the daemon close its backend connection within L{CLOSE_WITHIN}
        seconds, not only when the backend timeout strikes.
        """
        script = f"/scripted/silent/{time.monotonic_ns()}"
        with socket.create_connection((LOCALHOST, self.daemon.port), 10) as client:
            client.sendall(f"GET {script} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            self.backend.wait_for(
                lambda: bool(self.backend.connections_for(script)),
                "request to reach it",
            )
            [connection] = self.backend.connections_for(script)
            gone = time.monotonic()
        closed = self.backend.wait_for(
            lambda: connection.closed is not None, "close after the client left"
        )
        self.assertLess(closed - gone, CLOSE_WITHIN)
        self._check_still_serving()


class SlowReaderTests(SynchronousTestCase):
    """
    A client that reads slowly but steadily.
    """

    @pytest.fixture(autouse=True)
    def _objects(self, big_objects: BigObjects) -> None:
        self.daemon = big_objects.daemon

    def test_slow_steady_reader(self) -> None:
        """
        A client reading 24 MiB at about 12 MiB/s in 32 KiB pieces (the
        daemon is paused and resumed many times) gets every byte, in order.
        """
        size = 24 * MiB
        connection, response = open_get(self.daemon, f"/scripted/body/{size}")
        received = bytearray()
        rate = 12 * MiB
        started = time.monotonic()
        with contextlib.closing(connection):
            self.assertEqual(response.status, 200)
            self.assertEqual(response.getheader("content-length"), str(size))
            while True:
                piece = response.read(32 * 1024)
                if not piece:
                    break
                received += piece
                ahead = len(received) / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        self.assertEqual(len(received), size)
        self.assertEqual(
            hashlib.sha256(received).digest(), hashlib.sha256(pattern(0, size)).digest()
        )
