# mypy: disable-error-code="no-untyped-call"
"""
Metering through real daemons and real Redis servers: a rate limit holds
across two daemons sharing one Redis (a single server, Sentinel, and a
cluster); a transfer quota refuses a GET before a byte of the object and a
PUT before its body; usage is recorded as the bytes that moved; a Redis
that dies never hangs a request, and limits come back with it; and
C{multistore usage} reads the records.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from tests.integration.servers import (
    Daemon,
    DaemonFactory,
    daemon_environment,
    error_code,
    http_status,
    s3_client,
)
from tests.redisservers import RedisServer

ACCESS_KEY: Final = "AKMETERING0000000001"
SECRET_KEY: Final = "metering-secret-0123456789"


def _config(root: Path, metering: dict[str, Any]) -> dict[str, Any]:
    return {
        "buckets": [
            {
                "name": "data",
                "backend_type": "file",
                "anonymous_access": True,
                "backend_options": {"root": str(root)},
            }
        ],
        "credentials": [
            {
                "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY,
                "principal_name": "alice",
                "allowed_scopes": [
                    {"bucket": "data", "actions": ["get_object", "put_object"]}
                ],
            }
        ],
        "metering": {"flush_ms": 100, **metering},
    }


def _get(daemon: Daemon, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _usage_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not within the time allowed")
        time.sleep(0.05)


@pytest.mark.parametrize("setup", ["redis_server", "redis_sentinel", "redis_cluster"])
def test_rate_shared_by_two_daemons(
    setup: str,
    request: pytest.FixtureRequest,
    multistore_daemon: DaemonFactory,
    tmp_path: Path,
) -> None:
    """
    Two daemons sharing one Redis (of each kind) admit, together, the
    rate's burst and no more: each refusal is 503 SlowDown with
    C{Retry-After}, and their usage logs account for every request.
    """
    redis = request.getfixturevalue(setup)
    root = tmp_path / "root"
    root.mkdir()
    (root / "k").write_bytes(b"v")
    daemons = []
    for n in range(2):
        config = _config(
            root,
            {
                "store": "redis",
                "redis_url": redis.url,
                "usage_log": str(tmp_path / f"usage-{n}.jsonl"),
                "timeout_ms": 500,
                "rate_limits": [
                    {"principal": "anonymous", "requests": 10, "per_seconds": 60}
                ],
            },
        )
        daemons.append(multistore_daemon(config))
    # Both daemons have their scripts loaded before the count starts.
    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: _get(daemons[i % 2], "/data/k"), range(30)))
    elapsed = time.monotonic() - started
    admitted = [status for status, _ in results if status == 200]
    refused = [body for status, body in results if status == 503]
    assert len(admitted) + len(refused) == 30, results
    # GCRA: a burst of 10, then one more each 6 s.
    assert 10 <= len(admitted) <= 10 + int(elapsed // 6), (len(admitted), elapsed)
    assert all(b"<Code>SlowDown</Code>" in body for body in refused)
    logs = [tmp_path / f"usage-{n}.jsonl" for n in range(2)]
    _eventually(lambda: sum(len(_usage_lines(p)) for p in logs) == 30)
    lines = [line for p in logs for line in _usage_lines(p)]
    assert sorted(line["status"] for line in lines) == sorted(s for s, _ in results)
    assert all(line["client_address"] == "127.0.0.1" for line in lines)
    # Both daemons served some of them.
    assert all(_usage_lines(p) for p in logs)


@pytest.fixture
def quota_daemon(
    redis_server: RedisServer, multistore_daemon: DaemonFactory, tmp_path: Path
) -> tuple[Daemon, Path, Path]:
    root = tmp_path / "root"
    root.mkdir()
    usage = tmp_path / "usage.jsonl"
    config = _config(
        root,
        {
            "store": "redis",
            "redis_url": redis_server.url,
            "usage_log": str(usage),
            "bandwidth_quotas": [
                {"bucket": "data", "limit_bytes": 1_000_000, "window_secs": 300}
            ],
        },
    )
    return multistore_daemon(config), root, usage


def _client(daemon: Daemon) -> Any:
    return s3_client(
        daemon.url,
        ACCESS_KEY,
        SECRET_KEY,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def test_quota_refuses_before_bytes_move(
    quota_daemon: tuple[Daemon, Path, Path],
) -> None:
    """
    A PUT that would cross the quota is refused with 429 QuotaExceeded
    before its body is sent (no C{100 Continue}); a GET that would is
    refused once the size is known, before a byte of the object; what fits
    goes through, and a PUT of N bytes is recorded as N bytes in.
    """
    daemon, root, usage = quota_daemon
    client = _client(daemon)
    client.put_object(Bucket="data", Key="first", Body=b"a" * 600_000)
    assert (root / "first").stat().st_size == 600_000
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket="data", Key="second", Body=b"b" * 500_000)
    assert (http_status(refused.value), error_code(refused.value)) == (
        429,
        "QuotaExceeded",
    )
    assert refused.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"]
    assert not (root / "second").exists()
    with pytest.raises(ClientError) as too_big:
        client.get_object(Bucket="data", Key="first")
    assert error_code(too_big.value) == "QuotaExceeded"
    ranged = client.get_object(Bucket="data", Key="first", Range="bytes=0-99999")
    assert len(ranged["Body"].read()) == 100_000
    _eventually(lambda: len(_usage_lines(usage)) == 4)
    lines = _usage_lines(usage)
    assert [(e["operation"], e["status"]) for e in lines] == [
        ("PutObject", 200),
        ("PutObject", 429),
        ("GetObject", 429),
        ("GetObject", 206),
    ]
    assert lines[0]["bytes_in"] == 600_000
    assert lines[1]["bytes_in"] < 500_000
    assert lines[3]["bytes_out"] == 100_000


def test_put_refused_without_100_continue(
    quota_daemon: tuple[Daemon, Path, Path],
) -> None:
    """
    A client that waits for C{100 Continue} is told 429 at once and never
    sends its body.
    """
    daemon, root, _ = quota_daemon
    client = _client(daemon)
    url = client.generate_presigned_url(
        "put_object", Params={"Bucket": "data", "Key": "big"}, ExpiresIn=60
    )
    target = url.split(str(daemon.port), 1)[1]
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        s.sendall(
            f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n"
            "Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 429 "), answer[:200]
    assert b"<Code>QuotaExceeded</Code>" in answer
    assert not (root / "big").exists()


def test_cut_off_get_charged_for_what_was_sent(
    redis_server: RedisServer, multistore_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """
    A client that leaves a GET half-way is recorded for the bytes it was
    sent, not the object's size.
    """
    root = tmp_path / "root"
    root.mkdir()
    size = 256 * 1024 * 1024
    with open(root / "huge", "wb") as f:
        f.truncate(size)
    usage = tmp_path / "usage.jsonl"
    daemon = multistore_daemon(
        _config(
            root,
            {"store": "redis", "redis_url": redis_server.url, "usage_log": str(usage)},
        )
    )
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        s.sendall(
            f"GET /data/huge HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n\r\n".encode()
        )
        received = 0
        while received < 1024 * 1024:
            received += len(s.recv(65536))
    _eventually(lambda: len(_usage_lines(usage)) == 1)
    (line,) = _usage_lines(usage)
    assert line["status"] == 200
    assert 1024 * 1024 <= line["bytes_out"] < size // 2, line


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_dies_and_returns(
    mode: str,
    redis_server: RedisServer,
    multistore_daemon: DaemonFactory,
    tmp_path: Path,
) -> None:
    """
    With Redis gone, every request is answered within moments: served
    (open, and logged) or refused with 503 SlowDown (closed). Within 5 s
    of Redis coming back (empty, without the script), limits apply again.
    """
    root = tmp_path / "root"
    root.mkdir()
    (root / "k").write_bytes(b"v")
    usage = tmp_path / "usage.jsonl"
    daemon = multistore_daemon(
        _config(
            root,
            {
                "store": "redis",
                "redis_url": redis_server.url,
                "on_store_failure": mode,
                "timeout_ms": 50,
                "usage_log": str(usage),
                "rate_limits": [
                    {"principal": "anonymous", "requests": 5, "per_seconds": 60}
                ],
            },
        )
    )
    # A 503 while the daemon first connects (closed, on a loaded machine)
    # uses up nothing.
    _eventually(lambda: _get(daemon, "/data/k")[0] == 200)
    redis_server.kill()
    statuses = []
    for _ in range(20):
        started = time.monotonic()
        status, body = _get(daemon, "/data/k")
        assert time.monotonic() - started < 2.0
        statuses.append(status)
        if mode == "closed":
            assert b"<Code>SlowDown</Code>" in body
    assert statuses == [200 if mode == "open" else 503] * 20
    _eventually(lambda: [e["status"] for e in _usage_lines(usage)][-20:] == statuses)
    if mode == "open":
        assert "metering store failed" in daemon.log_text()
    redis_server.start()
    back = time.monotonic()
    seen: list[int] = []
    while time.monotonic() - back < 5:
        seen.append(_get(daemon, "/data/k")[0])
        if seen[-5:] == [200] * 4 + [503]:
            break
        time.sleep(0.02)
    # Back: a fresh burst of 5, then refused.
    assert seen[-5:] == [200] * 4 + [503] or seen[-6:] == [200] * 5 + [503], seen


def test_usage_command(
    redis_server: RedisServer, multistore_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """
    C{multistore usage} prints what each caller moved per bucket, from
    Redis, as a table or JSON.
    """
    root = tmp_path / "root"
    root.mkdir()
    (root / "k").write_bytes(b"12345")
    daemon = multistore_daemon(
        _config(root, {"store": "redis", "redis_url": redis_server.url})
    )
    client = _client(daemon)
    client.put_object(Bucket="data", Key="up", Body=b"x" * 1000)
    for _ in range(3):
        assert _get(daemon, "/data/k") == (200, b"12345")

    def run(*args: str) -> str:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "multistore.cli",
                "usage",
                "--config",
                str(daemon.config_path),
                *args,
            ],
            check=True,
            capture_output=True,
            text=True,
            env=daemon_environment(),
        ).stdout

    def rows() -> list[dict[str, Any]]:
        return list(json.loads(run("--json", "--since", "10m"))["usage"])

    _eventually(lambda: len(rows()) == 2 and sum(r["requests"] for r in rows()) == 4)
    by_caller = {r["principal"]: r for r in rows()}
    assert by_caller["alice"]["bytes_in"] == 1000
    assert by_caller["anonymous@127.0.0.1"]["bytes_out"] == 15
    assert by_caller["anonymous@127.0.0.1"]["requests"] == 3
    table = run("--principal", "anonymous")
    assert table.splitlines()[0].split() == [
        "BUCKET",
        "PRINCIPAL",
        "REQUESTS",
        "BYTES",
        "IN",
        "BYTES",
        "OUT",
    ]
    assert table.splitlines()[1].split() == [
        "data",
        "anonymous@127.0.0.1",
        "3",
        "0",
        "15",
    ]
