# -*- test-case-name: tests.unit.test_redisservers -*-
"""
Real Redis servers for the tests, started by the tests themselves on free
127.0.0.1 ports: one server (L{RedisServer}), a master with a replica watched
by three Sentinels (L{SentinelSetup}), and a cluster of three masters
(L{RedisCluster}), with pytest fixtures for each.

They need Debian's C{redis-server} (C{bash ci/install-debian-deps} installs
it); Sentinels are C{redis-server --sentinel}. Nothing is persisted: a server
that is killed or stopped and started again comes back empty, with no scripts
loaded. Everything here is plain blocking code for fixtures and assertions,
using only the standard library, pytest and (for L{RedisServer.client})
redis-py, in any version from Debian's 4.3.4 on; the harness itself talks to
the servers with L{redis_command}, a few lines of RESP2 over a socket, so it
works whatever redis-py does.

Every server runs in its own session (process group), with its log in its
directory, and is stopped with C{SIGTERM} to the whole group, then C{SIGKILL}
if it lingers. On Linux each also gets C{SIGTERM} if the test process dies
without cleaning up, and an C{atexit} hook kills any group still running.

The fixtures (registered for every test by C{tests/conftest.py}) start the
set-up for one test (C{redis_server}, C{redis_sentinel}, C{redis_cluster}) or
for one test module (C{module_redis_server}, ...), and stop it when that scope
ends, whatever the tests did. Module-scoped servers keep their keys from one
test to the next.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final

import pytest
from attrs import define, field

#: The only interface anything here listens on.
LOCALHOST: Final = "127.0.0.1"

#: Seconds to wait for a server to answer C{PING} after it starts.
START_TIMEOUT: Final = 10.0

#: Seconds to wait for a replica to sync, Sentinels to agree, or a cluster to
#: reach C{cluster_state:ok}.
SETTLE_TIMEOUT: Final = 20.0

#: Seconds a stopping server gets between C{SIGTERM} and C{SIGKILL}.
STOP_GRACE: Final = 5.0

#: The master name the Sentinels of L{SentinelSetup} monitor.
MASTER_NAME: Final = "mymaster"

#: How many hash slots a Redis cluster has.
CLUSTER_SLOTS: Final = 16384

#: Where Debian puts C{redis-server}, searched when C{PATH} does not have it.
_SYSTEM_PATH: Final = "/usr/local/bin:/usr/bin:/usr/sbin:/bin"

_INSTALL_HINT: Final = (
    "run `bash ci/install-debian-deps` (it installs Debian's redis-server and"
    " redis-sentinel, the servers the Redis tests start)"
)

_PR_SET_PDEATHSIG: Final = 1


class RedisStartError(Exception):
    """
    A Redis set-up did not come up; the message carries the log tails.
    """


class RedisReplyError(Exception):
    """
    A Redis server answered L{redis_command} with an error reply.
    """


# --- ports -------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """
    Pick distinct TCP ports on 127.0.0.1 that nothing listens on right now.

    Each port is found by binding port 0 and reading what the kernel chose;
    the sockets are held until all ``count`` are chosen (so the ports differ),
    then closed. Another process may take a port before the server binds it:
    a tiny race, accepted; the server then fails to start, loudly.

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


# --- talking to a server -----------------------------------------------------


def redis_command(
    port: int, *args: str | int | bytes, host: str = LOCALHOST, timeout: float = 2.0
) -> Any:
    """
    Send one command on a fresh connection and read its RESP2 reply.

    :param port: the server's port.
    :param args: the command and its arguments, e.g. C{("CLUSTER", "INFO")}.
    :param host: the server's address.
    :param timeout: seconds for connecting and for each read.
    :return: a simple string or bulk string as C{str} (decoded as UTF-8,
        undecodable bytes replaced), an integer as C{int}, an array as a
        C{list}, a null as None.
    :raise RedisReplyError: if the server answers with an error.
    :raise OSError: if it cannot be reached or closes the connection.
    """
    payload = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        payload += [f"${len(data)}\r\n".encode(), data, b"\r\n"]
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        sock.makefile("rb") as reply,
    ):
        sock.sendall(b"".join(payload))
        return _read_reply(reply)


def _read_reply(stream: BinaryIO) -> Any:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("the server closed the connection mid-reply")
    kind, rest = line[:1], line[1:-2].decode(errors="replace")
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisReplyError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        if int(rest) < 0:
            return None
        data = stream.read(int(rest) + 2)
        if len(data) != int(rest) + 2:
            raise ConnectionError("the server closed the connection mid-reply")
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        if int(rest) < 0:
            return None
        return [_read_reply(stream) for _ in range(int(rest))]
    raise ConnectionError(f"not a RESP2 reply: {line!r}")


def info_fields(text: str) -> dict[str, str]:
    """
    :param text: what C{INFO} or C{CLUSTER INFO} answered.
    :return: its C{name:value} lines as a dictionary.
    """
    fields = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon:
            fields[name] = value
    return fields


# --- processes ---------------------------------------------------------------

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


def redis_binary() -> str:
    """
    :return: the path of C{redis-server}, from C{PATH} or Debian's places.
    :raise RedisStartError: if it is not installed, saying how to install it.
    """
    found = shutil.which("redis-server") or shutil.which(
        "redis-server", path=_SYSTEM_PATH
    )
    if found is None:
        raise RedisStartError(f"redis-server is not installed: {_INSTALL_HINT}")
    return found


def _quote(value: str | Path) -> str:
    """
    :return: ``value`` as a double-quoted Redis configuration argument.
    """
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    servers: Sequence[RedisServer],
    timeout: float,
    interval: float = 0.05,
) -> None:
    """
    Poll ``ready`` until it returns true, one of ``servers`` exits, or
    ``timeout`` seconds pass.

    :param ready: the check; an exception it raises counts as not ready.
    :param what: what is awaited, for the message.
    :param servers: the servers whose exit ends the wait and whose log tails
        the message carries.
    :param timeout: the bound, in seconds.
    :param interval: seconds between checks.
    :raise RedisStartError: if a server exited or time ran out.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        for server in servers:
            status = server.exit_status()
            if status is not None:
                raise RedisStartError(
                    f"{server.name} (port {server.port}) exited with status"
                    f" {status} before {what}{server.log_report()}"
                )
        try:
            if ready():
                return
        except Exception as e:
            last_error = e
        if time.monotonic() >= deadline:
            reports = "".join(server.log_report() for server in servers)
            raise RedisStartError(
                f"no {what} within {timeout:g}s (last error: {last_error!r}){reports}"
            )
        time.sleep(interval)


# --- one server ----------------------------------------------------------------


@define
class RedisServer:
    """
    One C{redis-server} (or Sentinel) process on 127.0.0.1, configured by a
    file it writes in its directory, with nothing persisted.

    It can be stopped or killed and started again on the same port; it then
    comes back empty (no keys, no scripts), as a crashed Redis without
    persistence does. A Sentinel keeps the state it rewrote into its
    configuration file.

    :ivar directory: holds its configuration (C{redis.conf}), its log
        (C{redis.log}, with anything printed before the log opened) and its
        working files.
    :ivar port: its TCP port, chosen free when not given.
    :ivar config: further configuration lines, e.g. C{"replicaof 127.0.0.1
        6379"}.
    :ivar sentinel: run as a Sentinel (C{redis-server --sentinel}).
    :ivar name: what it is, for messages.
    """

    directory: Path
    port: int = field(factory=free_port)
    config: Sequence[str] = ()
    sentinel: bool = False
    name: str = "redis-server"
    _popen: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        """
        :return: C{redis://127.0.0.1:PORT/0}.
        """
        return f"redis://{LOCALHOST}:{self.port}/0"

    @property
    def config_path(self) -> Path:
        """
        :return: its configuration file.
        """
        return self.directory / "redis.conf"

    @property
    def log_path(self) -> Path:
        """
        :return: its log file.
        """
        return self.directory / "redis.log"

    def _config_text(self) -> str:
        lines = [
            f"port {self.port}",
            f"bind {LOCALHOST}",
            "protected-mode no",
            "daemonize no",
            'save ""',
            "appendonly no",
            # Stop at once on SIGTERM, without waiting for lagging replicas.
            "shutdown-timeout 0",
            f"dir {_quote(self.directory)}",
            f"logfile {_quote(self.log_path)}",
            *self.config,
        ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = START_TIMEOUT) -> RedisServer:
        """
        Start the server, on the same port as before if it ran already, and
        wait until it answers C{PING}; a no-op if it is running.

        The configuration file is written on the first start only, so a
        restarted server keeps what it (or a Sentinel) rewrote there.

        :param timeout: seconds to wait for C{PING} to succeed.
        :return: this server.
        :raise RedisStartError: if C{redis-server} is missing, exits, or does
            not answer in time (the process is stopped first); the message
            has the tail of its log.
        """
        if self.running():
            return self
        binary = redis_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            self.config_path.write_text(self._config_text())
        argv = [binary, str(self.config_path)]
        if self.sentinel:
            argv.append("--sentinel")
        with self.log_path.open("ab") as log:
            log.write(f"--- starting: {' '.join(argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                argv,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        _LIVE_GROUPS[self._popen.pid] = self._popen
        try:
            _wait_until(
                lambda: self.command("PING") == "PONG",
                what="an answer to PING",
                servers=[self],
                timeout=timeout,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def exit_status(self) -> int | None:
        """
        Look, without reaping it, whether the process has exited.

        The process stays a zombie until L{stop} or L{kill}, so its id (also
        its process group id) cannot be reused before they signal the group.

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
        :return: whether it was started and has not exited.
        """
        return self._popen is not None and self.exit_status() is None

    def stop(self, grace: float = STOP_GRACE) -> None:
        """
        Stop the whole process group: C{SIGTERM}, then C{SIGKILL} after
        ``grace`` seconds; idempotent, and a no-op if never started.

        :param grace: seconds to wait for a clean exit.
        """
        popen = self._popen
        if popen is None or popen.returncode is not None:
            return
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.exit_status() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        # The leader is at most a zombie here, so the group id is still ours.
        self.kill()

    def kill(self) -> None:
        """
        C{SIGKILL} the whole process group, as a crash would end it, and
        reap it; a no-op if not running.
        """
        popen = self._popen
        if popen is None or popen.returncode is not None:
            return
        self._signal_group(signal.SIGKILL)
        popen.wait()
        _LIVE_GROUPS.pop(popen.pid, None)

    def _signal_group(self, signum: int) -> None:
        assert self._popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signum)

    def command(self, *args: str | int | bytes, timeout: float = 2.0) -> Any:
        """
        Send one command with L{redis_command}, independent of redis-py.

        :param args: the command and its arguments.
        :param timeout: seconds for connecting and for each read.
        :return: the decoded reply.
        """
        return redis_command(self.port, *args, timeout=timeout)

    def client(self, **options: Any) -> Any:
        """
        A redis-py client of database 0 on this server, for assertions.

        :param options: further C{redis.Redis} arguments, e.g.
            C{decode_responses=True}.
        :return: a C{redis.Redis}.
        """
        import redis

        options.setdefault("socket_timeout", 5)
        return redis.Redis(host=LOCALHOST, port=self.port, db=0, **options)

    def log_tail(self, lines: int = 40) -> str:
        """
        :param lines: how many lines.
        :return: the last ``lines`` lines of its log.
        """
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_report(self) -> str:
        """
        :return: a message paragraph with its log's path and tail.
        """
        return f"\n--- {self.name}: {self.log_path} (tail) ---\n{self.log_tail()}"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _stop_all(servers: Sequence[RedisServer]) -> None:
    """
    Stop every server, even when stopping one fails.
    """
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)


# --- Sentinel ------------------------------------------------------------------


@define
class SentinelSetup:
    """
    A master, one replica of it, and three Sentinels monitoring it as
    L{MASTER_NAME} with a quorum of two; with the short timeouts here a
    killed master is replaced within a few seconds.

    :ivar directory: holds a subdirectory per server.
    :ivar down_after_ms: the Sentinels' C{down-after-milliseconds}.
    :ivar failover_timeout_ms: the Sentinels' C{failover-timeout}.
    :ivar master: the server that is master at the start.
    :ivar replica: the server that replicates it at the start.
    :ivar sentinels: the three Sentinels.
    """

    directory: Path
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    master: RedisServer = field(init=False)
    replica: RedisServer = field(init=False)
    sentinels: list[RedisServer] = field(init=False)

    def __attrs_post_init__(self) -> None:
        master_port, replica_port, *sentinel_ports = free_ports(5)
        # Replicas send the whole data set at once rather than waiting for
        # more replicas to share the transfer (5 seconds by default).
        quick_sync = "repl-diskless-sync-delay 0"
        self.master = RedisServer(
            self.directory / "master",
            master_port,
            [quick_sync],
            name="master",
        )
        self.replica = RedisServer(
            self.directory / "replica",
            replica_port,
            [quick_sync, f"replicaof {LOCALHOST} {master_port}"],
            name="replica",
        )
        self.sentinels = [
            RedisServer(
                self.directory / f"sentinel-{number}",
                port,
                [
                    f"sentinel monitor {MASTER_NAME} {LOCALHOST} {master_port} 2",
                    f"sentinel down-after-milliseconds {MASTER_NAME}"
                    f" {self.down_after_ms}",
                    f"sentinel failover-timeout {MASTER_NAME}"
                    f" {self.failover_timeout_ms}",
                    f"sentinel parallel-syncs {MASTER_NAME} 1",
                ],
                sentinel=True,
                name=f"sentinel-{number}",
            )
            for number, port in enumerate(sentinel_ports, start=1)
        ]

    @property
    def servers(self) -> list[RedisServer]:
        """
        :return: every process: master, replica, Sentinels.
        """
        return [self.master, self.replica, *self.sentinels]

    @property
    def sentinel_ports(self) -> list[int]:
        """
        :return: the Sentinels' ports.
        """
        return [sentinel.port for sentinel in self.sentinels]

    @property
    def url(self) -> str:
        """
        :return: C{redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster/0}.
        """
        hosts = ",".join(f"{LOCALHOST}:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def start(self, timeout: float = SETTLE_TIMEOUT) -> SentinelSetup:
        """
        Start the master and the replica, wait until the replica is in sync,
        start the Sentinels, and wait until each of them names the master,
        knows the replica and the two other Sentinels, and reports that a
        failover could be authorized (C{SENTINEL CKQUORUM}).

        :param timeout: seconds for each of those waits.
        :return: this set-up.
        :raise RedisStartError: if any of that fails (everything started is
            stopped first); the message has the log tails.
        """
        try:
            self.master.start()
            self.replica.start()
            _wait_until(
                lambda: _replica_in_sync(self.replica, self.master),
                what="replica in sync",
                servers=[self.master, self.replica],
                timeout=timeout,
            )
            for sentinel in self.sentinels:
                sentinel.start()
            self.wait_for_master(self.master, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_master(
        self, server: RedisServer, timeout: float = SETTLE_TIMEOUT
    ) -> None:
        """
        Wait until every running Sentinel names ``server`` as the master and
        could authorize a failover, and ``server`` says it is a master: after
        L{start}, or after killing the master to await the failover.

        :param server: L{master} or L{replica}.
        :param timeout: seconds to wait.
        :raise RedisStartError: if that does not happen in time.
        """
        sentinels = [sentinel for sentinel in self.sentinels if sentinel.running()]

        def agreed() -> bool:
            if server.command("ROLE")[0] != "master":
                return False
            for sentinel in sentinels:
                address = sentinel.command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
                )
                quorum = sentinel.command("SENTINEL", "CKQUORUM", MASTER_NAME)
                if address != [LOCALHOST, str(server.port)] or not quorum.startswith(
                    f"OK {len(sentinels)} usable"
                ):
                    return False
            return True

        _wait_until(
            agreed,
            what=f"Sentinels agreeing that {server.name} (port {server.port}) is"
            f" master {MASTER_NAME}",
            servers=[server, *sentinels],
            timeout=timeout,
        )

    def stop(self) -> None:
        """
        Stop every process; idempotent.
        """
        _stop_all(self.servers)

    def __enter__(self) -> SentinelSetup:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _replica_in_sync(replica: RedisServer, master: RedisServer) -> bool:
    fields = info_fields(replica.command("INFO", "replication"))
    return (
        fields.get("master_link_status") == "up"
        and fields.get("master_port") == str(master.port)
        and fields.get("master_sync_in_progress") == "0"
    )


# --- cluster -------------------------------------------------------------------


@define
class RedisCluster:
    """
    A Redis cluster of masters only (three by default), every hash slot
    assigned, slots split evenly in port order.

    :ivar directory: holds a subdirectory per node.
    :ivar size: how many masters.
    :ivar node_timeout_ms: the nodes' C{cluster-node-timeout}.
    :ivar nodes: the nodes.
    """

    directory: Path
    size: int = 3
    node_timeout_ms: int = 2000
    nodes: list[RedisServer] = field(init=False)
    _bus_ports: list[int] = field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        ports = free_ports(2 * self.size)
        self._bus_ports = ports[self.size :]
        self.nodes = []
        for number, (port, bus_port) in enumerate(
            zip(ports[: self.size], self._bus_ports, strict=True), start=1
        ):
            directory = self.directory / f"node-{number}"
            config = [
                "cluster-enabled yes",
                f"cluster-config-file {_quote(directory / 'nodes.conf')}",
                f"cluster-node-timeout {self.node_timeout_ms}",
                # The bus port is not the default port + 10000, which may be
                # taken or beyond 65535.
                f"cluster-port {bus_port}",
                f"cluster-announce-ip {LOCALHOST}",
            ]
            self.nodes.append(
                RedisServer(directory, port, config, name=f"cluster-node-{number}")
            )

    @property
    def ports(self) -> list[int]:
        """
        :return: the nodes' client ports.
        """
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """
        :return: C{redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/}.
        """
        hosts = ",".join(f"{LOCALHOST}:{port}" for port in self.ports)
        return f"redis+cluster://{hosts}/"

    def start(self, timeout: float = SETTLE_TIMEOUT) -> RedisCluster:
        """
        Start the nodes, give each an even share of the slots and its own
        configuration epoch, introduce them to each other, and wait until
        every node reports C{cluster_state:ok} and knows all the others.

        :param timeout: seconds to wait for the cluster to form.
        :return: this cluster.
        :raise RedisStartError: if any of that fails (every node is stopped
            first); the message has the log tails.
        """
        try:
            for node in self.nodes:
                node.start()
            for number, node in enumerate(self.nodes):
                first = number * CLUSTER_SLOTS // self.size
                last = (number + 1) * CLUSTER_SLOTS // self.size - 1
                node.command("CLUSTER", "ADDSLOTSRANGE", first, last)
                node.command("CLUSTER", "SET-CONFIG-EPOCH", number + 1)
            for node, bus_port in zip(self.nodes[1:], self._bus_ports[1:], strict=True):
                self.nodes[0].command("CLUSTER", "MEET", LOCALHOST, node.port, bus_port)
            self.wait_until_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_until_ok(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """
        Wait until every node reports C{cluster_state:ok} and knows all the
        others: after L{start}, or after a node was killed and started again
        (it keeps its slots, from its C{nodes.conf}, but not its keys, and a
        master reports the cluster down for about two seconds after it
        starts).

        :param timeout: seconds to wait.
        :raise RedisStartError: if that does not happen in time.
        """
        _wait_until(
            self._formed,
            what="cluster_state:ok on every node",
            servers=self.nodes,
            timeout=timeout,
        )

    def _formed(self) -> bool:
        for node in self.nodes:
            fields = info_fields(node.command("CLUSTER", "INFO"))
            if (
                fields.get("cluster_state") != "ok"
                or fields.get("cluster_known_nodes") != str(self.size)
                or fields.get("cluster_size") != str(self.size)
            ):
                return False
        return True

    def stop(self) -> None:
        """
        Stop every node; idempotent.
        """
        _stop_all(self.nodes)

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# --- fixtures ------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """
    A Redis server for one test.

    :return: the running server (L{RedisServer.url}:
        C{redis://127.0.0.1:PORT/0}).
    """
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture(scope="module")
def module_redis_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisServer]:
    """
    Like C{redis_server}, but shared by the tests of a module (keys stay).

    :return: the running server.
    """
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[SentinelSetup]:
    """
    A master, a replica and three Sentinels for one test (a test may kill
    the master).

    :return: the running set-up (L{SentinelSetup.url}:
        C{redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster/0}).
    """
    with SentinelSetup(tmp_path / "redis-sentinel") as setup:
        yield setup


@pytest.fixture(scope="module")
def module_redis_sentinel(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SentinelSetup]:
    """
    Like C{redis_sentinel}, but shared by the tests of a module.

    :return: the running set-up.
    """
    with SentinelSetup(tmp_path_factory.mktemp("redis-sentinel")) as setup:
        yield setup


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """
    A three-master Redis cluster for one test.

    :return: the running cluster (L{RedisCluster.url}:
        C{redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/}).
    """
    with RedisCluster(tmp_path / "redis-cluster") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def module_redis_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisCluster]:
    """
    Like C{redis_cluster}, but shared by the tests of a module.

    :return: the running cluster.
    """
    with RedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster
