"""
Run the installed daemon as one of its systemd units would: the command
line of C{ExecStart=}, the environment of C{Environment=} and
C{EnvironmentFile=}, the unit's user, and as much of its sandbox as
L{tests.package.sandbox} reproduces without systemd.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from attrs import define

from tests.package.system import run, system_environment
from tests.package.units import Unit, command_line, service_environment

SANDBOX = Path(__file__).resolve().parent / "sandbox.py"

#: Seconds the daemon may take to listen.
START_TIMEOUT = 30.0

#: The settings whose value is a directory systemd makes writable (and
#: makes, if missing), and where.
_DIRECTORIES = {"StateDirectory": Path("/var/lib"), "LogsDirectory": Path("/var/log")}

#: System calls systemd lets through whatever the filter says.
_ALWAYS_ALLOWED = {
    "execve",
    "exit",
    "exit_group",
    "getrlimit",
    "rt_sigreturn",
    "sigreturn",
}


def _expand_groups(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    """
    System call names, with C{@group}s expanded recursively.
    """
    calls: set[str] = set()
    for name in names:
        if name.startswith("@"):
            calls |= _expand_groups(groups[name], groups)
        else:
            calls.add(name)
    return calls


def _system_call_groups() -> dict[str, list[str]]:
    """
    systemd's system call groups, from C{systemd-analyze syscall-filter}.
    """
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in run(["systemd-analyze", "syscall-filter"]).stdout.splitlines():
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        if not line.startswith(" "):
            current = groups.setdefault(word, [])
        elif current is not None:
            current.append(word)
    return groups


def _allowed_system_calls(unit: Unit) -> list[str] | None:
    """
    The system calls a unit's C{SystemCallFilter=} lines allow: the first
    allow list, less each C{~} deny list.
    """
    filters = unit.values("SystemCallFilter")
    if not filters:
        return None
    groups = _system_call_groups()
    allowed: set[str] = set()
    for line in filters:
        if line.startswith("~"):
            allowed -= _expand_groups(line[1:].split(), groups)
        else:
            allowed |= _expand_groups(line.split(), groups)
    return sorted(allowed | _ALWAYS_ALLOWED)


def sandbox_spec(unit: Unit, environment: dict[str, str]) -> dict[str, object]:
    """
    What L{tests.package.sandbox} needs to run a command as ``unit``
    would.
    """
    made = [
        (str(root / name), unit.value(f"{setting}Mode") or "0755")
        for setting, root in _DIRECTORIES.items()
        for name in unit.words(setting)
    ]
    writable = [path for path, _ in made] + unit.words("ReadWritePaths")
    assert unit.values("CapabilityBoundingSet") == ()
    assert unit.values("AmbientCapabilities") == ()
    return {
        "user": unit.value("User"),
        "group": unit.value("Group"),
        "umask": unit.value("UMask") or "0022",
        "working_directory": unit.value("WorkingDirectory"),
        "directories": made,
        "read_write": writable,
        "protect_system": unit.value("ProtectSystem"),
        "protect_home": unit.value("ProtectHome") == "yes",
        "private_tmp": unit.value("PrivateTmp") == "yes",
        "drop_capabilities": True,
        "no_new_privileges": unit.value("NoNewPrivileges") == "yes",
        "allowed_system_calls": _allowed_system_calls(unit),
        "error_number": unit.value("SystemCallErrorNumber"),
        "environment": environment,
    }


def listen_port(description: str) -> int:
    """
    The port of a C{tcp:} or C{reuseport:} endpoint string on 127.0.0.1.
    """
    kind, port, *options = description.split(":")
    assert kind in ("tcp", "reuseport") and "interface=127.0.0.1" in options, (
        description
    )
    return int(port)


def accepts(port: int) -> bool:
    """
    Whether something listens on ``port`` of 127.0.0.1.
    """
    with contextlib.closing(socket.socket()) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@define
class Daemon:
    """
    The installed daemon, started as a unit would start it.

    :ivar unit: the unit.
    :ivar argv: its command line.
    :ivar environment: its environment.
    :ivar process: the process.
    :ivar log: where its output goes.
    """

    unit: Unit
    argv: list[str]
    environment: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        """
        What it has written so far.
        """
        return self.log.read_text(errors="replace")

    def wait_listening(self, port: int) -> None:
        """
        Wait until it listens on ``port``; fail if it exits first or takes
        longer than L{START_TIMEOUT}.
        """
        deadline = time.monotonic() + START_TIMEOUT
        while not accepts(port):
            if self.process.poll() is not None:
                pytest.fail(
                    f"the daemon exited {self.process.returncode} before "
                    f"listening:\n{' '.join(self.argv)}\n{self.text()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"the daemon did not listen on {port}:\n{self.text()}")
            time.sleep(0.1)

    def exec_reload(self) -> None:
        """
        Run the unit's C{ExecReload=}, C{$MAINPID} being the daemon's.
        """
        (reload,) = self.unit.values("ExecReload")
        argv = command_line(
            reload, {**self.environment, "MAINPID": str(self.process.pid)}
        )
        run(argv)

    def stop(self) -> int:
        """
        Stop it as systemd does (C{KillSignal=}, SIGTERM by default, to the
        main process); the exit status, once it has exited within
        C{TimeoutStopSec=}.
        """
        timeout = float(self.unit.value("TimeoutStopSec") or 90)
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"still running {timeout} s after SIGTERM:\n{self.text()}")


@contextlib.contextmanager
def started(
    unit_path: Path, log: Path, instance: str | None = None
) -> Iterator[Daemon]:
    """
    Start the installed daemon with the command line of ``unit_path``'s
    C{ExecStart=} and the environment of its C{Environment=} and
    C{EnvironmentFile=} settings, as its C{User=}, in its sandbox (as far
    as L{tests.package.sandbox} reproduces it); stop it at the end.
    """
    unit = Unit.read(unit_path)
    environment = service_environment(unit, instance)
    (exec_start,) = unit.values("ExecStart")
    argv = command_line(exec_start, environment, instance)
    user = pwd.getpwnam(unit.value("User") or "root")
    environment = {
        # What systemd gives a system service besides the unit's settings.
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
        "LANG": "C.UTF-8",
        "HOME": user.pw_dir,
        "USER": user.pw_name,
        "LOGNAME": user.pw_name,
        "SHELL": user.pw_shell,
        **environment,
    }
    spec = sandbox_spec(unit, environment)
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["/usr/bin/python3", str(SANDBOX), json.dumps(spec), "--", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=system_environment(),
        )
    daemon = Daemon(unit, argv, environment, process, log)
    try:
        yield daemon
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _status(pid: int) -> dict[str, str]:
    """
    The fields of C{/proc/PID/status}.
    """
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def assert_sandboxed(daemon: Daemon) -> None:
    """
    The daemon runs as the unit's user, without capabilities or a way to
    gain privileges, under a system call filter, in a mount namespace of
    its own.
    """
    pid = daemon.process.pid
    status = _status(pid)
    uid = str(pwd.getpwnam(daemon.unit.value("User") or "root").pw_uid)
    assert status["Uid"].split() == [uid] * 4, status["Uid"]
    assert int(status["CapBnd"], 16) == int(status["CapEff"], 16) == 0
    assert int(status["CapAmb"], 16) == 0
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
