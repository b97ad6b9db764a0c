"""
What the benchmark runs against, all on 127.0.0.1: SeaweedFS, nginx as a
static file backend, nginx as a reverse proxy in front of both backends, and
the multistore daemon in front of both backends; and, for the metering
workload only, a Redis server.

The process helpers of the integration tests (C{tests/integration/servers.py})
start and stop everything; this module only adds nginx, Redis and the
daemon's benchmark configuration.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from attrs import define, frozen

from tests.integration.servers import (
    LOCALHOST,
    REPO_ROOT,
    Daemon,
    RunningServer,
    ServerProcess,
    daemon_environment,
    free_ports,
    port_accepts,
    start_daemon,
    start_seaweedfs,
    write_config,
)

#: The bucket names: the same path (C{/BUCKET/KEY}) on every way in.
STATIC_BUCKET: Final = "static"
SEAWEED_BUCKET: Final = "bench"

#: The multistore identity the signed and presigned workloads use.
BENCH_ACCESS_KEY: Final = "BENCHKEY000000000001"
BENCH_SECRET_KEY: Final = "bench-secret-key-not-a-secret"

#: Every action a scope can grant (see C{multistore.config.ACTIONS}).
ALL_ACTIONS: Final = (
    "get_object",
    "head_object",
    "put_object",
    "list_bucket",
    "create_multipart_upload",
    "upload_part",
    "complete_multipart_upload",
    "abort_multipart_upload",
    "delete_object",
)

#: The three ways a request can take to a backend.
WAYS: Final = ("direct", "nginx", "multistore")

NGINX_START_TIMEOUT: Final = 15.0

REDIS_START_TIMEOUT: Final = 10.0


@frozen
class Place:
    """
    Where one way in to one backend answers.

    :ivar way: C{direct}, C{nginx} or C{multistore}.
    :ivar endpoint: C{http://127.0.0.1:PORT}.
    :ivar bucket: the bucket in the path.
    :ivar access_key: the key that signs requests here, or None.
    :ivar secret_key: its secret.
    """

    way: str
    endpoint: str
    bucket: str
    access_key: str | None = None
    secret_key: str | None = None

    def url(self, key: str) -> str:
        """
        :return: the path-style URL of ``key``.
        """
        return f"{self.endpoint}/{self.bucket}/{key}"


def _nginx_common(workdir: Path, workers: int) -> str:
    temp = workdir / "temp"
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / name).mkdir(parents=True, exist_ok=True)
    # Workers run as whoever runs the benchmark (nginx started by root would
    # otherwise switch them to nobody, who cannot read the work directory).
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.getuid() == 0 else ""
    return f"""
{user}
daemon off;
master_process on;
worker_processes {workers};
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    client_max_body_size 0;
    server_tokens off;
"""


def static_nginx_config(workdir: Path, root: Path, port: int, sink_port: int) -> str:
    """
    nginx as a fast static backend: C{GET}/C{HEAD} of C{/BUCKET/KEY} serve
    the file C{root/BUCKET/KEY} (with ranges), and a C{PUT} reads the whole
    body into a temporary file (as nginx's WebDAV C{PUT} does before its
    rename), drops it, and answers C{200 OK} as S3 does. (WebDAV's C{PUT}
    answers C{201}/C{204}, which no S3 client, multistore included, takes
    for a successful PutObject.) The C{200} comes from a second server block
    on ``sink_port``; the body is not forwarded to it.
    """
    return (
        _nginx_common(workdir, 1)
        + f"""
    upstream sink {{ server {LOCALHOST}:{sink_port}; keepalive 16; }}
    server {{
        listen {LOCALHOST}:{port} reuseport backlog=4096;
        root {root};
        location / {{
            error_page 418 = @put;
            if ($request_method = PUT) {{ return 418; }}
        }}
        location @put {{
            client_body_in_file_only clean;
            client_body_buffer_size 1m;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_pass http://sink;
        }}
    }}
    server {{
        listen {LOCALHOST}:{sink_port};
        location / {{ return 200; }}
    }}
}}
"""
    )


def proxy_nginx_config(
    workdir: Path, routes: Mapping[int, str], workers: int = 1
) -> str:
    """
    nginx as a streaming reverse proxy: each listening port in ``routes``
    forwards to its backend (C{host:port}) over kept-alive HTTP/1.1
    connections, the request URI and C{Host} unchanged (so SigV4 signatures
    made for the proxy verify at the backend), with response buffering and
    request buffering off: bytes are passed on as they arrive, both ways,
    as multistore does. Unbuffered, nginx moves at most
    C{proxy_buffer_size} bytes of a response (and C{client_body_buffer_size}
    of a request) per read: 128 KiB rather than the default 4 KiB page, or
    large bodies would be measured at a fraction of what nginx can do.
    """
    blocks = []
    for index, (port, backend) in enumerate(routes.items()):
        blocks.append(f"""
    upstream backend{index} {{ server {backend}; keepalive 64; }}
    server {{
        listen {LOCALHOST}:{port} reuseport backlog=4096;
        location / {{
            proxy_pass http://backend{index};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_buffer_size 128k;
            proxy_buffers 4 128k;
            proxy_busy_buffers_size 256k;
            client_body_buffer_size 128k;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
        }}
    }}
""")
    return _nginx_common(workdir, workers) + "".join(blocks) + "}\n"


def nginx_binary() -> str:
    """
    :return: the nginx executable.
    :raise RuntimeError: if it is not installed (see C{ci/install-bench-deps}).
    """
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if path is None:
        raise RuntimeError("nginx is missing: run ci/install-bench-deps")
    return path


def start_nginx(
    workdir: Path, name: str, config: str, ports: Sequence[int]
) -> ServerProcess:
    """
    Write ``config`` and start nginx on it in the foreground, as a child
    process of its own; wait until every port in ``ports`` accepts.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(config)
    argv = [nginx_binary(), "-p", str(workdir), "-e", str(workdir / "error.log")]
    check = subprocess.run(
        [*argv, "-t", "-q", "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise RuntimeError(f"{name}: bad nginx config:\n{check.stderr}")
    process = ServerProcess(
        name, [*argv, "-c", str(conf)], workdir / "nginx.log", workdir
    )
    process.start()
    process.wait_until(
        lambda: all(port_accepts(p) for p in ports),
        what=f"accepting connections on {list(ports)}",
        timeout=NGINX_START_TIMEOUT,
        interval=0.05,
    )
    return process


# --- Redis (the metering workload) -------------------------------------------


def redis_binary() -> str:
    """
    :return: the C{redis-server} executable.
    :raise RuntimeError: if it is not installed.
    """
    path = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if path is None:
        raise RuntimeError(
            "redis-server is missing (the get1k-metered workload needs it):"
            " run ci/install-bench-deps, or `bash ci/install-debian-deps`"
        )
    return path


def redis_command(port: int, *args: str | int, timeout: float = 2.0) -> Any:
    """
    Send one command to the Redis server on ``port`` on a fresh connection
    and read its RESP2 reply (a few lines, so the harness does not depend on
    redis-py's behaviour).

    :return: a simple or bulk string as C{str}, an integer as C{int}, an
        array as a C{list}, a null as None.
    :raise RuntimeError: for an error reply.
    :raise OSError: if the server cannot be reached.
    """
    payload = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = str(arg).encode()
        payload += [f"${len(data)}\r\n".encode(), data, b"\r\n"]
    with (
        socket.create_connection((LOCALHOST, port), timeout=timeout) as sock,
        sock.makefile("rb") as reply,
    ):
        sock.sendall(b"".join(payload))
        return _redis_reply(reply)


def _redis_reply(stream: Any) -> Any:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("Redis closed the connection mid-reply")
    kind, rest = line[:1], line[1:-2].decode(errors="replace")
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(f"Redis answered: {rest}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        if int(rest) < 0:
            return None
        data = stream.read(int(rest) + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        return (
            None if int(rest) < 0 else [_redis_reply(stream) for _ in range(int(rest))]
        )
    raise ConnectionError(f"unexpected Redis reply {line!r}")


def redis_info(port: int) -> dict[str, str]:
    """
    :return: every C{name:value} line of C{INFO all} (C{stats},
        C{commandstats}, ...).
    """
    fields = {}
    for line in redis_command(port, "INFO", "all").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            fields[name] = value
    return fields


@frozen
class RedisProcess:
    """
    A C{redis-server} on 127.0.0.1 that persists nothing.

    :ivar port: its port.
    :ivar process: the process (stop it with C{process.stop()}).
    """

    port: int
    process: ServerProcess

    @property
    def url(self) -> str:
        """
        :return: C{redis://127.0.0.1:PORT/0}.
        """
        return f"redis://{LOCALHOST}:{self.port}/0"

    def answers(self) -> bool:
        """
        :return: whether it answers C{PING}.
        """
        try:
            return bool(redis_command(self.port, "PING", timeout=0.5) == "PONG")
        except OSError:
            return False


def start_redis(workdir: Path) -> RedisProcess:
    """
    Start C{redis-server} on a free port, in the foreground, as a child
    process of its own working in ``workdir``; wait until it answers
    C{PING}.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    argv = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        LOCALHOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--daemonize",
        "no",
    ]
    redis = RedisProcess(
        port, ServerProcess("redis-server", argv, workdir / "redis.log", workdir)
    )
    redis.process.start()
    try:
        redis.process.wait_until(
            redis.answers,
            what=f"an answer to PING on {port}",
            timeout=REDIS_START_TIMEOUT,
            interval=0.05,
        )
    except BaseException:
        redis.process.stop()
        raise
    return redis


def daemon_config(
    static_endpoint: str, seaweed: RunningServer, *, access_log: bool = False
) -> dict[str, Any]:
    """
    The daemon's configuration: the static backend as an anonymous-readable
    unsigned C{s3} bucket, SeaweedFS as a signed one, and one identity that
    may do everything to both. The access log is off, as a production
    deployment that ships its logs elsewhere would have it (see
    C{docs/performance.md}).
    """
    return {
        "logging": {"access_log": access_log},
        "buckets": [
            {
                "name": STATIC_BUCKET,
                "backend_type": "s3",
                "anonymous_access": True,
                "backend_options": {
                    "endpoint": static_endpoint,
                    "bucket_name": STATIC_BUCKET,
                    "skip_signature": "true",
                    "allow_http": "true",
                },
            },
            {
                "name": SEAWEED_BUCKET,
                "backend_type": "s3",
                "anonymous_access": True,
                "backend_options": seaweed.server.backend_options(SEAWEED_BUCKET),
            },
        ],
        "credentials": [
            {
                "access_key_id": BENCH_ACCESS_KEY,
                "secret_access_key": BENCH_SECRET_KEY,
                "principal_name": "bench",
                "allowed_scopes": [
                    {"bucket": "*", "prefixes": [], "actions": list(ALL_ACTIONS)}
                ],
            }
        ],
    }


def metering_config(redis_url: str) -> dict[str, Any]:
    """
    A C{[metering]} table that has Redis judge every request (one rule for
    every bucket and caller) but never refuses one: a billion requests a
    second. Added to L{daemon_config}, it measures what metering through
    Redis costs per request.
    """
    return {
        "store": "redis",
        "redis_url": redis_url,
        "timeout_ms": 50,
        "rate_limits": [{"bucket": "*", "requests": 1_000_000_000, "per_seconds": 1}],
    }


@define
class Environment:
    """
    Everything started for one benchmark run.

    :ivar workdir: where configs, logs and data live.
    :ivar static_root: the directory the static nginx serves.
    :ivar places: per backend (C{static}, C{seaweedfs}) and way, the
        L{Place}.
    :ivar daemon: the multistore daemon.
    :ivar config_path: its configuration (for extra worker processes).
    """

    workdir: Path
    static_root: Path
    places: dict[tuple[str, str], Place]
    daemon: Daemon
    config: dict[str, Any]
    seaweed: RunningServer

    def place(self, backend: str, way: str) -> Place:
        """
        :return: the place of ``backend`` reached the ``way`` given.
        """
        return self.places[(backend, way)]


@contextlib.contextmanager
def environment(workdir: Path) -> Iterator[Environment]:
    """
    Start everything, yield the L{Environment}, stop everything.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    static_root = workdir / "static-root"
    (static_root / STATIC_BUCKET).mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        seaweed = start_seaweedfs(workdir / "seaweedfs")
        stack.callback(seaweed.stop)
        seaweed.server.create_bucket(SEAWEED_BUCKET)

        static_port, sink_port, proxy_static, proxy_seaweed = free_ports(4)
        static = start_nginx(
            workdir / "nginx-static",
            "nginx (static backend)",
            static_nginx_config(
                workdir / "nginx-static", static_root, static_port, sink_port
            ),
            [static_port, sink_port],
        )
        stack.callback(static.stop)
        seaweed_hostport = seaweed.server.endpoint.removeprefix("http://")
        proxy = start_nginx(
            workdir / "nginx-proxy",
            "nginx (reverse proxy)",
            proxy_nginx_config(
                workdir / "nginx-proxy",
                {
                    proxy_static: f"{LOCALHOST}:{static_port}",
                    proxy_seaweed: seaweed_hostport,
                },
            ),
            [proxy_static, proxy_seaweed],
        )
        stack.callback(proxy.stop)

        static_endpoint = f"http://{LOCALHOST}:{static_port}"
        config = daemon_config(static_endpoint, seaweed)
        daemon = start_daemon(workdir / "multistore", config)
        stack.callback(daemon.stop)

        s = seaweed.server
        places = {
            ("static", "direct"): Place("direct", static_endpoint, STATIC_BUCKET),
            ("static", "nginx"): Place(
                "nginx", f"http://{LOCALHOST}:{proxy_static}", STATIC_BUCKET
            ),
            ("static", "multistore"): Place(
                "multistore",
                daemon.url,
                STATIC_BUCKET,
                BENCH_ACCESS_KEY,
                BENCH_SECRET_KEY,
            ),
            ("seaweedfs", "direct"): Place(
                "direct", s.endpoint, SEAWEED_BUCKET, s.access_key, s.secret_key
            ),
            ("seaweedfs", "nginx"): Place(
                "nginx",
                f"http://{LOCALHOST}:{proxy_seaweed}",
                SEAWEED_BUCKET,
                s.access_key,
                s.secret_key,
            ),
            ("seaweedfs", "multistore"): Place(
                "multistore",
                daemon.url,
                SEAWEED_BUCKET,
                BENCH_ACCESS_KEY,
                BENCH_SECRET_KEY,
            ),
        }
        yield Environment(workdir, static_root, places, daemon, config, seaweed)


def _listening(process: ServerProcess) -> bool:
    return "Site starting on" in process.log_text()


@contextlib.contextmanager
def worker_pool(
    workdir: Path, config: Mapping[str, Any], workers: int
) -> Iterator[tuple[str, list[ServerProcess]]]:
    """
    Run ``workers`` multistore daemons on one port, each with its own
    C{--listen reuseport:PORT} socket (see L{multistore.web.endpoints}); yield
    the port's URL and the daemons.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.json"
    write_config(config_path, config)
    (port,) = free_ports(1)
    argv = [
        sys.executable,
        "-m",
        "twisted",
        "--log-format=text",
        "multistore",
        "--config",
        str(config_path),
        "--listen",
        f"reuseport:{port}:interface={LOCALHOST}",
    ]
    processes = [
        ServerProcess(
            f"multistore worker {n}",
            argv,
            workdir / f"worker-{n}.log",
            REPO_ROOT,
            daemon_environment(),
        )
        for n in range(workers)
    ]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_until(
                functools.partial(_listening, process),
                what=f"listening on {port}",
                timeout=30.0,
                interval=0.05,
            )
        yield f"http://{LOCALHOST}:{port}", processes
    finally:
        for process in processes:
            process.stop()
