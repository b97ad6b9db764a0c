"""
Run a command in (most of) the sandbox a systemd unit describes, on a
machine where systemd is not the init system: ``/usr/bin/python3
sandbox.py SPEC -- COMMAND...``, as root.

SPEC is JSON (L{tests.package.runner.sandbox_spec} makes it); in
order, as systemd does it:

- the C{StateDirectory=} and C{LogsDirectory=} directories, made if
  missing;
- a private mount namespace in which everything is read-only
  (C{ProtectSystem=strict}) but C{/proc}, C{/sys}, C{/dev} and the
  C{read_write} paths (C{StateDirectory=}, C{LogsDirectory=},
  C{ReadWritePaths=}); empty C{/tmp} and C{/var/tmp} (C{PrivateTmp=}); no
  C{/home}, C{/root} or C{/run/user} (C{ProtectHome=yes});
- an empty capability bounding set (C{CapabilityBoundingSet=}), then the
  unit's user and group with the user's supplementary groups (C{User=},
  C{Group=}), so no capability is left;
- C{UMask=} and C{WorkingDirectory=};
- C{NoNewPrivileges=yes} and the system call filter
  (C{SystemCallFilter=}, C{SystemCallErrorNumber=}), loaded last, just
  before the command is executed with the given environment.

Not reproduced: C{PrivateDevices=}, C{PrivateMounts=}, C{Protect{Kernel*,
Clock,Hostname,ControlGroups,Proc}=}, C{RestrictAddressFamilies=},
C{RestrictNamespaces=} and the other restrictions systemd builds with
namespaces or further seccomp filters.

It runs under Debian's C{/usr/bin/python3}, which has the libseccomp
binding (python3-seccomp), not under the test runner's Python.
"""

from __future__ import annotations

import ctypes
import errno
import grp
import json
import os
import pwd
import subprocess
import sys

import seccomp

CLONE_NEWNS = 0x00020000
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
#: Left writable by ProtectSystem=strict.
API_FILE_SYSTEMS = ("/proc", "/sys", "/dev")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _under(path: str, roots: list[str]) -> bool:
    return any(
        path == root or path.startswith(root.rstrip("/") + "/") for root in roots
    )


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p.encode().decode("unicode_escape") for p in points]


def directories(spec: dict) -> None:
    """
    Make the C{StateDirectory=} and C{LogsDirectory=} directories that are
    missing, owned by the unit's user and group, as systemd does.
    """
    user = pwd.getpwnam(spec["user"])
    gid = grp.getgrnam(spec["group"]).gr_gid if spec.get("group") else user.pw_gid
    for path, mode in spec.get("directories", []):
        if not os.path.isdir(path):
            os.makedirs(path)
            os.chown(path, user.pw_uid, gid)
            os.chmod(path, int(mode, 8))


def file_system(spec: dict) -> None:
    """
    The mount namespace: read-only but for the writable paths, private
    temporary directories, no home directories.
    """
    _check(_libc.unshare(CLONE_NEWNS), "unshare")
    _mount("--make-rprivate", "/")
    private = []
    if spec.get("private_tmp"):
        for tmp in ("/tmp", "/var/tmp"):
            _mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", tmp)
            private.append(tmp)
    if spec.get("protect_home"):
        for home in ("/home", "/root", "/run/user"):
            if os.path.isdir(home):
                _mount(
                    "-t",
                    "tmpfs",
                    "-o",
                    "mode=000,ro,nosuid,nodev,noexec",
                    "tmpfs",
                    home,
                )
                private.append(home)
    if spec.get("protect_system") == "strict":
        writable = list(spec.get("read_write", []))
        for path in writable:
            _mount("--bind", path, path)
        keep = [*API_FILE_SYSTEMS, *writable, *private]
        for point in sorted(set(_mount_points()), key=len):
            if not _under(point, keep):
                subprocess.run(
                    ["mount", "-o", "remount,bind,ro", point],
                    check=False,
                    stderr=subprocess.DEVNULL,
                )
        probe = "/usr/.multistore-sandbox-probe"
        try:
            open(probe, "w").close()
        except OSError as e:
            assert e.errno == errno.EROFS, e
        else:
            os.unlink(probe)
            raise AssertionError("ProtectSystem=strict: /usr is still writable")


def identity(spec: dict) -> None:
    """
    No capabilities, then the unit's user, group and supplementary groups.
    """
    if spec.get("drop_capabilities"):
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
        for capability in range(last + 1):
            _check(_libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0), "PR_CAPBSET_DROP")
    user = pwd.getpwnam(spec["user"])
    gid = user.pw_gid
    if spec.get("group"):
        gid = grp.getgrnam(spec["group"]).gr_gid
    os.initgroups(user.pw_name, gid)
    os.setgid(gid)
    os.setuid(user.pw_uid)


def system_call_filter(spec: dict) -> None:
    """
    C{NoNewPrivileges=yes}, and a filter that lets the allowed system calls
    through and fails every other with the unit's error number.
    """
    if spec.get("no_new_privileges"):
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    allowed = spec.get("allowed_system_calls")
    if allowed is None:
        return
    error = getattr(errno, spec.get("error_number") or "EPERM")
    syscalls = seccomp.SyscallFilter(defaction=seccomp.ERRNO(error))
    for name in allowed:
        try:
            syscalls.add_rule(seccomp.ALLOW, name)
        except Exception:  # not a system call of this architecture
            continue
    syscalls.load()


def main(argv: list[str]) -> None:
    spec = json.loads(argv[1])
    assert argv[2] == "--", argv
    command = argv[3:]
    directories(spec)
    file_system(spec)
    identity(spec)
    os.umask(int(spec.get("umask", "0022"), 8))
    os.chdir(spec.get("working_directory") or "/")
    system_call_filter(spec)
    os.execve(command[0], command, spec["environment"])


if __name__ == "__main__":
    main(sys.argv)
