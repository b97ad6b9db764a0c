"""
Run N multistore worker processes on one listening port.

``python -m twisted multistore`` serves from one process, so one core. To
use more, this launcher binds the port, then starts N daemons that each
adopt a listening socket through Twisted's systemd endpoint
(C{--listen systemd:domain=INET:index=0}): the socket is the child's file
descriptor 3, and C{LISTEN_FDS=1}, C{LISTEN_FDNAMES=multistore} and
C{LISTEN_PID=<the child's pid>} are set in its environment, as systemd's
socket activation does.

By default each worker gets a socket of its own, all bound to the same port
with C{SO_REUSEPORT}, so the kernel spreads new connections evenly over the
workers. With C{--shared-socket} they all adopt one socket instead (what a
single systemd socket unit gives); then whichever worker wakes first
accepts every pending connection (Twisted accepts up to a hundred at a
time), so a burst of keep-alive connections, as a load generator opens,
can all land on one worker.

Usage::

    python -m bench.workers --workers 2 --port 8080 [--interface 127.0.0.1] \\
        -- --config /etc/multistore/multistore.toml [more multistore options]

It stays in the foreground; C{SIGTERM} or C{SIGINT} stops every worker.
A worker that exits stops the others too (the launcher then exits with a
non-zero status): a supervisor such as systemd restarts the whole group.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import Final

#: The first file descriptor passed by socket activation.
LISTEN_FDS_START: Final = 3

#: Seconds workers get between C{SIGTERM} and C{SIGKILL}.
STOP_GRACE: Final = 10.0


class _Stop(Exception):
    """
    C{SIGTERM} or C{SIGINT} arrived.
    """


def bind(
    interface: str, port: int, *, reuseport: bool = False, backlog: int = 1024
) -> socket.socket:
    """
    Bind and listen on ``interface:port`` (with C{SO_REUSEPORT} if asked:
    then several sockets may be bound to it, and the kernel spreads new
    connections over them).
    """
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((interface, port))
    sock.listen(backlog)
    return sock


def worker_argv(options: Sequence[str]) -> list[str]:
    """
    A worker's command line: the daemon adopting socket-activation fd 0.
    """
    return [
        sys.executable,
        "-m",
        "twisted",
        "--log-format=text",
        "multistore",
        "--listen",
        "systemd:domain=INET:index=0",
        *options,
    ]


def spawn(sock: socket.socket, argv: Sequence[str]) -> int:
    """
    Fork a worker with ``sock`` as its fd 3 and the socket-activation
    variables naming it; return its pid.
    """
    pid = os.fork()
    if pid != 0:
        return pid
    try:
        fd = sock.fileno()
        if fd != LISTEN_FDS_START:
            os.dup2(fd, LISTEN_FDS_START, inheritable=True)
        else:
            os.set_inheritable(fd, True)
        env = dict(os.environ)
        env["LISTEN_FDS"] = "1"
        env["LISTEN_PID"] = str(os.getpid())
        # Current Twisted ignores descriptors without names (systemd 227 and
        # later always names them).
        env["LISTEN_FDNAMES"] = "multistore"
        os.execve(argv[0], list(argv), env)
    finally:
        os._exit(127)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Bind, start the workers, wait; see the module docstring.
    """
    parser = argparse.ArgumentParser(prog="python -m bench.workers")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument(
        "--shared-socket",
        action="store_true",
        help="give every worker the same listening socket instead of one"
        " SO_REUSEPORT socket each",
    )
    parser.add_argument("options", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    options = [o for o in args.options if o != "--"] if args.options else []
    if args.workers < 1:
        parser.error("--workers must be at least 1")

    reuseport = hasattr(socket, "SO_REUSEPORT") and not args.shared_socket
    if reuseport:
        # One socket per worker, all bound to the port before any worker
        # starts (so none is refused): the kernel balances connections.
        sockets = [
            bind(args.interface, args.port, reuseport=True) for _ in range(args.workers)
        ]
    else:
        sockets = [bind(args.interface, args.port)] * args.workers
    command = worker_argv(options)
    children: set[int] = set()

    def stop(signum: int, frame: object) -> None:
        raise _Stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for sock in sockets:
        children.add(spawn(sock, command))
    # The workers hold the sockets now; the launcher only supervises.
    for sock in set(sockets):
        sock.close()
    status = 0
    try:
        pid, code = os.waitpid(-1, 0)
    except _Stop:
        pass
    else:
        children.discard(pid)
        print(f"worker {pid} exited ({code}); stopping the others", flush=True)
        status = 1
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while children and time.monotonic() < deadline:
        for pid in list(children):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
        time.sleep(0.05)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
