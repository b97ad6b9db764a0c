# mypy: disable-error-code="no-untyped-call"
"""
Tests for L{tests.integration.servers}: the harness itself, against the real
servers it starts.
"""

from __future__ import annotations

import http.client
import signal
import socket
import ssl
import sys
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.servers import (
    DaemonFactory,
    S3Server,
    ServerProcess,
    ServerStartError,
    error_code,
    free_port_pair,
    free_ports,
    http_status,
    https_listener,
    port_accepts,
    s3_client,
    unique_bucket_name,
)

_BODY = b"multistore harness \x00\xff" * 100


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def _round_trip(case: SynchronousTestCase, server: S3Server) -> str:
    """
    Create a bucket, put an object, read it back and list it.

    :return: the bucket name.
    """
    bucket = server.create_bucket(unique_bucket_name("harness"))
    client = server.client()
    client.put_object(Bucket=bucket, Key="dir/object.bin", Body=_BODY)
    got = client.get_object(Bucket=bucket, Key="dir/object.bin")["Body"].read()
    case.assertEqual(got, _BODY)
    listing = client.list_objects_v2(Bucket=bucket)
    case.assertEqual(
        [(o["Key"], o["Size"]) for o in listing["Contents"]],
        [("dir/object.bin", len(_BODY))],
    )
    case.assertIn(bucket, [b["Name"] for b in client.list_buckets()["Buckets"]])
    return bucket


class HarnessTests(SynchronousTestCase):
    """
    Ports, processes and TLS material, without any S3 server.
    """

    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def test_free_ports_distinct(self) -> None:
        """
        L{free_ports} gives distinct ports that can be bound right away.
        """
        ports = free_ports(10)
        self.assertEqual(len(set(ports)), 10)
        for port in ports:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))

    def test_free_port_pair(self) -> None:
        """
        L{free_port_pair} gives two free ports the given distance apart.
        """
        first, second = free_port_pair(10000)
        self.assertEqual(second, first + 10000)
        for port in (first, second):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))

    def test_exit_before_ready(self) -> None:
        """
        A process that exits while awaited fails the wait with its status and
        the tail of its log.
        """
        process = ServerProcess(
            "doomed",
            [sys.executable, "-c", "print('doomed-marker'); raise SystemExit(3)"],
            self.directory / "doomed.log",
            self.directory,
        )
        process.start()
        try:
            with self.assertRaises(ServerStartError) as raised:
                process.wait_until(lambda: False, what="readiness", timeout=30)
        finally:
            self.assertEqual(process.stop(), 3)
        message = str(raised.exception)
        self.assertIn("status 3", message)
        self.assertIn("doomed-marker", message)

    def test_wait_is_bounded(self) -> None:
        """
        A server that never gets ready fails the wait once the timeout passes,
        reporting the check's last error.
        """
        process = ServerProcess(
            "sleeper",
            [sys.executable, "-c", "import time; time.sleep(60)"],
            self.directory / "sleeper.log",
            self.directory,
        )
        process.start()

        def ready() -> bool:
            raise ConnectionRefusedError("not yet")

        started = time.monotonic()
        try:
            with self.assertRaises(ServerStartError) as raised:
                process.wait_until(ready, what="readiness", timeout=0.5)
        finally:
            process.stop()
        self.assertLess(time.monotonic() - started, 10)
        self.assertIn("not yet", str(raised.exception))
        self.assertFalse(process.running())

    def test_stop_kills_the_group(self) -> None:
        """
        Stopping a server also ends the processes it started, and escalates to
        C{SIGKILL} when C{SIGTERM} is ignored.
        """
        script = (
            "import signal, subprocess, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "child = subprocess.Popen([sys.executable, '-c',"
            " 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " time.sleep(60)'])\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(60)\n"
        )
        process = ServerProcess(
            "stubborn",
            [sys.executable, "-c", script],
            self.directory / "stubborn.log",
            self.directory,
        )
        process.start()
        process.wait_until(
            lambda: process.log_text().strip().splitlines()[-1].isdigit(),
            what="the child's pid",
            timeout=30,
        )
        child = int(process.log_text().strip().splitlines()[-1])
        self.assertTrue(_pid_alive(child))
        status = process.stop(grace=0.5)
        self.assertEqual(status, -signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(_pid_alive(child))
        self.assertEqual(process.stop(), -signal.SIGKILL)

    def test_https_listener(self) -> None:
        """
        L{https_listener} gives an C{ssl:} endpoint string naming its files,
        and a certificate that clients verifying against its CA accept for
        127.0.0.1 and localhost.
        """
        listener = https_listener(self.directory / "tls")
        self.assertEqual(
            listener.endpoint,
            f"ssl:{listener.port}:interface=127.0.0.1"
            f":privateKey={listener.key_path}:certKey={listener.cert_path}",
        )
        self.assertEqual(listener.url, f"https://127.0.0.1:{listener.port}")

        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(listener.cert_path, listener.key_path)
        with socket.socket() as listening:
            listening.bind(("127.0.0.1", listener.port))
            listening.listen(2)
            listening.settimeout(10)

            def serve() -> None:
                for _ in range(2):
                    conn, _address = listening.accept()
                    with server_context.wrap_socket(conn, server_side=True) as tls:
                        tls.sendall(b"hello")

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            client_context = ssl.create_default_context(cafile=str(listener.ca_path))
            for name in ("127.0.0.1", "localhost"):
                with (
                    socket.create_connection(
                        ("127.0.0.1", listener.port), timeout=10
                    ) as raw,
                    client_context.wrap_socket(raw, server_hostname=name) as tls,
                ):
                    self.assertEqual(tls.recv(5), b"hello")
            thread.join(10)

    def test_client_needs_credentials(self) -> None:
        """
        L{s3_client} refuses to guess credentials from the environment.
        """
        with self.assertRaises(ValueError):
            s3_client("http://127.0.0.1:1", "key-only")


class SeaweedFSTests(SynchronousTestCase):
    """
    The SeaweedFS backend.
    """

    @pytest.fixture(autouse=True)
    def _server(self, seaweedfs: S3Server) -> None:
        self.server = seaweedfs

    def test_round_trip(self) -> None:
        """
        Signed requests create a bucket, store, read and list an object.
        """
        _round_trip(self, self.server)

    def test_wrong_secret_refused(self) -> None:
        """
        A request signed with the wrong secret is refused.
        """
        bucket = self.server.create_bucket(unique_bucket_name("sig"))
        client = s3_client(
            self.server.endpoint, self.server.access_key, "not-the-secret"
        )
        with self.assertRaises(ClientError) as raised:
            client.put_object(Bucket=bucket, Key="k", Body=b"x")
        self.assertEqual(http_status(raised.exception), 403)
        self.assertEqual(error_code(raised.exception), "SignatureDoesNotMatch")

    def test_unsigned_refused(self) -> None:
        """
        An unsigned request is refused.
        """
        bucket = self.server.create_bucket(unique_bucket_name("anon"))
        client = s3_client(self.server.endpoint, unsigned=True)
        for call in (
            lambda: client.list_objects_v2(Bucket=bucket),
            lambda: client.put_object(Bucket=bucket, Key="k", Body=b"x"),
        ):
            with self.assertRaises(ClientError) as raised:
                call()
            self.assertEqual(http_status(raised.exception), 403)

    def test_buckets_as_in_s3(self) -> None:
        """
        An upload into a missing bucket fails instead of creating it, and a
        bucket that holds objects cannot be deleted.
        """
        client = self.server.client()
        with self.assertRaises(ClientError) as raised:
            client.put_object(Bucket=unique_bucket_name("missing"), Key="k", Body=b"")
        self.assertEqual(error_code(raised.exception), "NoSuchBucket")
        bucket = self.server.create_bucket(unique_bucket_name("full"))
        client.put_object(Bucket=bucket, Key="k", Body=b"x")
        with self.assertRaises(ClientError) as raised:
            client.delete_bucket(Bucket=bucket)
        self.assertEqual(error_code(raised.exception), "BucketNotEmpty")

    def test_listing_non_ascii(self) -> None:
        """
        C{start-after} with non-ASCII keys, C{encoding-type=url} and keys with
        C{/} list as the comment in L{tests.integration.servers} says.
        """
        bucket = self.server.create_bucket(unique_bucket_name("utf8"))
        client = self.server.client()
        for key in ["a", "é/x", "é/y", "ü", "日本/1", "z z", "z/1"]:
            client.put_object(Bucket=bucket, Key=key, Body=b"")

        def keys(**params: str) -> list[str]:
            listing = client.list_objects_v2(Bucket=bucket, **params)
            return [o["Key"] for o in listing.get("Contents", [])]

        # boto3 asks for encoding-type=url itself and decodes the answer.
        self.assertEqual(keys(StartAfter="é/x"), ["é/y", "ü", "日本/1"])
        # Directory order and skipping, where S3 would differ.
        self.assertEqual(keys(), ["a", "z/1", "z z", "é/x", "é/y", "ü", "日本/1"])
        self.assertEqual(keys(StartAfter="z"), ["z z", "é/x", "é/y", "ü", "日本/1"])
        self.assertEqual(keys(StartAfter="é"), ["ü", "日本/1"])
        # Asked for explicitly, the encoding is left in place.
        encoded = client.list_objects_v2(
            Bucket=bucket, EncodingType="url", Delimiter="/", StartAfter="é/x"
        )
        self.assertEqual([o["Key"] for o in encoded["Contents"]], ["%C3%BC"])
        self.assertEqual(
            [p["Prefix"] for p in encoded["CommonPrefixes"]],
            ["%C3%A9/", "%E6%97%A5%E6%9C%AC/"],
        )
        self.assertEqual(encoded["StartAfter"], "é/x")
        self.assertEqual(keys(EncodingType="url", Prefix="z "), ["z+z"])


class MotoTests(SynchronousTestCase):
    """
    The moto backend.
    """

    @pytest.fixture(autouse=True)
    def _server(self, moto_server: S3Server) -> None:
        self.server = moto_server

    def test_round_trip(self) -> None:
        """
        Signed requests create a bucket, store, read and list an object.
        """
        _round_trip(self, self.server)

    def test_any_credentials(self) -> None:
        """
        moto does not check signatures: other credentials see the same data.
        """
        bucket = _round_trip(self, self.server)
        other = s3_client(self.server.endpoint, "someone", "else")
        keys = [o["Key"] for o in other.list_objects_v2(Bucket=bucket)["Contents"]]
        self.assertEqual(keys, ["dir/object.bin"])


class RcloneTests(SynchronousTestCase):
    """
    The rclone backend.
    """

    @pytest.fixture(autouse=True)
    def _server(self, rclone_server: S3Server) -> None:
        self.server = rclone_server

    def test_round_trip(self) -> None:
        """
        Signed requests create a bucket, store, read and list an object, which
        is a file under the served directory.
        """
        bucket = _round_trip(self, self.server)
        assert self.server.root is not None
        self.assertEqual(
            (self.server.root / bucket / "dir" / "object.bin").read_bytes(), _BODY
        )

    def test_wrong_secret_refused(self) -> None:
        """
        A request signed with the wrong secret is refused.
        """
        bucket = self.server.create_bucket(unique_bucket_name("sig"))
        client = s3_client(
            self.server.endpoint, self.server.access_key, "not-the-secret"
        )
        with self.assertRaises(ClientError) as raised:
            client.put_object(Bucket=bucket, Key="k", Body=b"x")
        self.assertEqual(http_status(raised.exception), 403)
        self.assertEqual(error_code(raised.exception), "SignatureDoesNotMatch")

    def test_unsigned_refused(self) -> None:
        """
        An unsigned request is refused and stores nothing.
        """
        bucket = self.server.create_bucket(unique_bucket_name("anon"))
        client = s3_client(self.server.endpoint, unsigned=True)
        with self.assertRaises(ClientError) as raised:
            client.put_object(Bucket=bucket, Key="k", Body=b"x")
        self.assertGreaterEqual(http_status(raised.exception), 400)
        assert self.server.root is not None
        self.assertEqual(list((self.server.root / bucket).iterdir()), [])


class DaemonTests(SynchronousTestCase):
    """
    The multistore daemon fixture.
    """

    @pytest.fixture(autouse=True)
    def _factory(self, multistore_daemon: DaemonFactory) -> None:
        self.start = multistore_daemon

    def _status(
        self, host: str, port: int, context: ssl.SSLContext | None = None
    ) -> int:
        connection: http.client.HTTPConnection
        if context is None:
            connection = http.client.HTTPConnection(host, port, timeout=10)
        else:
            connection = http.client.HTTPSConnection(
                host, port, timeout=10, context=context
            )
        try:
            connection.request("GET", "/")
            return connection.getresponse().status
        finally:
            connection.close()

    def test_start_restart_stop(self) -> None:
        """
        A daemon with no buckets starts, answers HTTP and HTTPS, restarts on
        the same ports, and stops.
        """
        daemon = self.start({}, https=True)
        self.assertEqual(daemon.url, f"http://127.0.0.1:{daemon.port}")
        assert daemon.https is not None
        self.assertEqual(daemon.https_url, f"https://127.0.0.1:{daemon.https.port}")
        context = ssl.create_default_context(cafile=str(daemon.ca_path))
        https_port = daemon.https.port

        def check() -> None:
            self.assertGreaterEqual(self._status("127.0.0.1", daemon.port), 200)
            self.assertGreaterEqual(self._status("localhost", https_port, context), 200)

        check()
        for _ in range(2):
            first_pid = daemon.pid
            daemon.restart()
            self.assertNotEqual(daemon.pid, first_pid)
            self.assertFalse(_pid_alive(first_pid))
            check()
        daemon.stop()
        self.assertFalse(daemon.running())
        self.assertFalse(port_accepts(daemon.port))
        self.assertFalse(port_accepts(https_port))
        self.assertEqual(daemon.log_text().count("--- starting: "), 3)
