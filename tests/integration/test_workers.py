"""
Several daemons serving one port (C{--listen reuseport:PORT}), as systemd
template units run them: the kernel spreads connections over all of them,
and the others keep serving while one is stopped.
"""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

from tests.integration.servers import LOCALHOST, DaemonFactory, free_port
from tests.integration.test_write_path import wait_until


def _get(port: int, path: str) -> tuple[int, bytes]:
    """
    One GET on a fresh connection.
    """
    connection = http.client.HTTPConnection(LOCALHOST, port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_workers_share_a_port(multistore_daemon: DaemonFactory, tmp_path: Path) -> None:
    """
    Two daemons with the same C{reuseport:} listener both answer on it, and
    the survivor answers everything once the other stops.
    """
    root = tmp_path / "files"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello from a worker")
    config: dict[str, Any] = {
        "buckets": [
            {
                "name": "shared",
                "backend_type": "file",
                "anonymous_access": True,
                "backend_options": {"root": str(root)},
            }
        ]
    }
    shared = free_port()
    listen = ["--listen", f"reuseport:{shared}:interface={LOCALHOST}"]
    first = multistore_daemon(config, extra_args=listen)
    second = multistore_daemon(config, extra_args=listen)
    answers = [_get(shared, "/shared/hello.txt") for _ in range(60)]
    assert set(answers) == {(200, b"hello from a worker")}

    def served(daemon: Any) -> int:
        return int(daemon.log_text().count("GetObject shared"))

    # A request's access-log line is written just after its answer.
    wait_until(lambda: served(first) + served(second) == 60, "60 log lines")
    assert served(first) > 0 and served(second) > 0, (served(first), served(second))
    before = served(second)
    first.stop()
    answers = [_get(shared, "/shared/hello.txt") for _ in range(20)]
    assert set(answers) == {(200, b"hello from a worker")}
    wait_until(lambda: served(second) == before + 20, "20 more log lines")
