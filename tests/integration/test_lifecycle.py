# mypy: disable-error-code="no-untyped-call"
"""
The daemon as a service: reload on SIGHUP (a new credential works while a
download started before it completes; a broken file is refused and the old
configuration kept), drain on SIGTERM (no new connections, readiness off
at once, the download in flight completes, exit 0), and the admin
listener's health, readiness and metrics (parsed with prometheus_client's
own parser, counting the requests made).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.servers import (
    Daemon,
    DaemonFactory,
    error_code,
    free_port,
    s3_client,
    write_config,
)

SIZE: Final = 256 * 1024 * 1024
OLD = ("AKLIFECYCLE000000001", "lifecycle-old-secret-0000000000")
NEW = ("AKLIFECYCLE000000002", "lifecycle-new-secret-0000000000")


def _credential(key: tuple[str, str], name: str) -> dict[str, Any]:
    return {
        "access_key_id": key[0],
        "secret_access_key": key[1],
        "principal_name": name,
        "allowed_scopes": [
            {"bucket": "data", "actions": ["get_object", "list_bucket"]}
        ],
    }


def _config(root: Path, *credentials: dict[str, Any]) -> dict[str, Any]:
    return {
        "logging": {"access_log_format": "json"},
        "server": {"shutdown_timeout": 30},
        "buckets": [
            {
                "name": "data",
                "backend_type": "file",
                "anonymous_access": True,
                "backend_options": {"root": str(root)},
            }
        ],
        "credentials": list(credentials),
    }


@pytest.fixture
def served(
    multistore_daemon: DaemonFactory, tmp_path: Path
) -> tuple[Daemon, Path, int]:
    root = tmp_path / "root"
    root.mkdir()
    with open(root / "big", "wb") as f:
        f.truncate(SIZE)
    (root / "small").write_bytes(b"hello")
    admin = free_port()
    daemon = multistore_daemon(
        _config(root, _credential(OLD, "old")),
        extra_args=["--admin-listen", f"tcp:{admin}:interface=127.0.0.1"],
    )
    return daemon, root, admin


def _admin(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


class _Download:
    """
    A GET of the big object over a raw socket, read as slowly as the test
    likes.
    """

    def __init__(self, daemon: Daemon) -> None:
        self.socket = socket.create_connection(("127.0.0.1", daemon.port), timeout=30)
        self.socket.sendall(b"GET /data/big HTTP/1.1\r\nHost: x\r\n\r\n")
        self.received = b""
        while b"\r\n\r\n" not in self.received:
            self.received += self.socket.recv(65536)
        self.head, _, rest = self.received.partition(b"\r\n\r\n")
        self.body = len(rest)

    def read(self, amount: int) -> None:
        while self.body < amount:
            chunk = self.socket.recv(1024 * 1024)
            if not chunk:
                raise AssertionError(f"connection closed after {self.body} bytes")
            self.body += len(chunk)

    def finish(self) -> int:
        self.read(SIZE)
        self.socket.close()
        return self.body


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not within the time allowed")
        time.sleep(0.05)


def _metric(port: int, name: str, **labels: str) -> float:
    _, text = _admin(port, "/metrics")
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return float(sample.value)
    return 0.0


def test_reload_adds_a_credential(served: tuple[Daemon, Path, int]) -> None:
    """
    SIGHUP with a new credential in the file: the new key works; a
    download started before the reload completes intact.
    """
    daemon, root, admin = served
    download = _Download(daemon)
    assert download.head.startswith(b"HTTP/1.1 200")
    download.read(4 * 1024 * 1024)
    new_client = s3_client(daemon.url, *NEW)
    with pytest.raises(ClientError) as refused:
        new_client.get_object(Bucket="data", Key="small")
    assert error_code(refused.value) == "InvalidAccessKeyId"
    write_config(
        daemon.config_path,
        _config(root, _credential(OLD, "old"), _credential(NEW, "new")),
    )
    os.kill(daemon.pid, signal.SIGHUP)

    def works() -> bool:
        try:
            return bool(
                new_client.get_object(Bucket="data", Key="small")["Body"].read()
                == b"hello"
            )
        except ClientError:
            return False

    _eventually(works)
    assert download.finish() == SIZE
    assert _metric(admin, "multistore_config_reloads_total", result="applied") == 1
    assert "configuration reloaded" in daemon.log_text()


def test_broken_reload_keeps_serving(served: tuple[Daemon, Path, int]) -> None:
    """
    SIGHUP with a broken file: every problem is logged, and the daemon
    goes on serving the configuration it had.
    """
    daemon, root, admin = served
    broken = _config(root, _credential(OLD, "old"))
    broken["server"]["colour"] = "blue"
    broken["buckets"][0]["backend_type"] = "nowhere"
    write_config(daemon.config_path, broken)
    os.kill(daemon.pid, signal.SIGHUP)
    _eventually(
        lambda: _metric(admin, "multistore_config_reloads_total", result="refused") == 1
    )
    log = daemon.log_text()
    assert "configuration reload refused" in log
    assert "'colour': unknown field" in log
    assert "unknown backend type 'nowhere'" in log
    client = s3_client(daemon.url, *OLD)
    assert client.get_object(Bucket="data", Key="small")["Body"].read() == b"hello"
    assert _admin(admin, "/readyz")[0] == 200


def test_drain_on_sigterm(served: tuple[Daemon, Path, int]) -> None:
    """
    SIGTERM: readiness turns off at once, no new connection is taken, the
    download in flight completes, and the daemon exits 0.
    """
    daemon, _, admin = served
    assert _admin(admin, "/readyz") == (200, "ready\n")
    download = _Download(daemon)
    download.read(4 * 1024 * 1024)
    os.kill(daemon.pid, signal.SIGTERM)
    _eventually(lambda: _admin(admin, "/readyz")[0] == 503, timeout=5)
    assert _admin(admin, "/healthz") == (200, "ok\n")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", daemon.port), timeout=2).close()
    assert download.finish() == SIZE
    _eventually(lambda: not daemon.running(), timeout=15)
    assert daemon.stop() == 0
    assert "stopping: no new connections" in daemon.log_text()


def test_metrics(served: tuple[Daemon, Path, int]) -> None:
    """
    /metrics counts the requests made, by operation, status class and
    bucket, with their bytes; /healthz answers; the access log has one
    JSON object per request.
    """
    daemon, _, admin = served
    client = s3_client(daemon.url, *OLD)
    for _ in range(3):
        client.get_object(Bucket="data", Key="small")["Body"].read()
    for _ in range(2):
        with pytest.raises(ClientError):
            client.get_object(Bucket="data", Key="missing")
    labels = {"operation": "GetObject", "bucket": "data"}
    assert _metric(admin, "multistore_requests_total", status="2xx", **labels) == 3
    assert _metric(admin, "multistore_requests_total", status="4xx", **labels) == 2
    assert (
        _metric(admin, "multistore_body_bytes_total", direction="out", bucket="data")
        >= 15
    )
    assert (
        _metric(
            admin, "multistore_request_duration_seconds_count", operation="GetObject"
        )
        == 5
    )
    assert _metric(admin, "multistore_requests_in_flight") == 0
    assert _metric(admin, "multistore_ready") == 1
    assert _admin(admin, "/healthz") == (200, "ok\n")
    lines = [line for line in daemon.log_text().splitlines() if '"request_id"' in line]
    assert len(lines) >= 5
    import json

    record = json.loads(lines[-1][lines[-1].index("{") :])
    assert record["operation"] == "GetObject" and record["status"] == 404
    assert set(record) >= {
        "time",
        "request_id",
        "client",
        "principal",
        "bucket",
        "bytes_out",
        "duration",
    }
