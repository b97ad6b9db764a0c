"""
What the Debian package tests share: Debian's tools run with a clean
environment, the package's state, and what the fixtures hand the tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from attrs import frozen

#: The repository this tree is.
SOURCE = Path(__file__).resolve().parents[2]

#: Debian's own tools only: not a pyenv or virtualenv python3 first on
#: PATH, whose python3 would build, test or rebuild Twisted's plugin cache
#: with the wrong interpreter.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

#: The binary package's name.
PACKAGE = "multistore"


def system_environment(**extra: str) -> dict[str, str]:
    """
    A clean environment for Debian's tools: the system PATH, a C locale,
    no frontend questions.
    """
    return {
        "PATH": SYSTEM_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        **extra,
    }


def run(
    argv: list[str], *, check: bool = True, timeout: float = 600, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """
    Run a system command with L{system_environment}, its output captured;
    a failure shows the command's output.
    """
    kwargs.setdefault("env", system_environment())
    result = subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}")
    return result


def package_state() -> str:
    """
    dpkg's state of the package: C{installed}, C{config-files}, ..., or
    C{not-installed}.
    """
    result = run(["dpkg-query", "-W", "-f=${db:Status-Status}", PACKAGE], check=False)
    return result.stdout.strip() if result.returncode == 0 else "not-installed"


def source_version() -> str:
    """
    C{multistore.__version__}, read from this tree's source.
    """
    text = (SOURCE / "multistore" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match, "no __version__ in multistore/__init__.py"
    return match.group(1)


@frozen
class Built:
    """
    The built package.

    :ivar deb: the .deb.
    :ivar seconds: how long the build took (0 if it was given).
    :ivar log: the build's output.
    """

    deb: Path
    seconds: float
    log: str


def copy_tree(destination: Path) -> None:
    """
    Copy this tree's files that git tracks or would track (not what
    .gitignore hides: .venv, build/, caches, a plugin cache) to
    ``destination``.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=SOURCE,
        stdout=subprocess.PIPE,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        path = SOURCE / os.fsdecode(name)
        if not path.is_file():  # deleted, not yet committed
            continue
        target = destination / os.fsdecode(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target, follow_symlinks=False)


def purge() -> None:
    """
    Purge the package if it is installed or its configuration is left.
    """
    if package_state() != "not-installed":
        run(["apt-get", "purge", "-y", "-q", PACKAGE])


@frozen
class Installed:
    """
    The package, installed.

    :ivar deb: the .deb it came from.
    :ivar before_var_lib: what was under /var/lib/multistore before the
        package was installed (data a purge leaves), relative paths.
    :ivar output: apt's output.
    """

    deb: Path
    before_var_lib: frozenset[str]
    output: str


def files_under(root: Path) -> frozenset[str]:
    """
    Every path under ``root``, relative to it (empty if it does not exist).
    """
    if not root.exists():
        return frozenset()
    return frozenset(str(p.relative_to(root)) for p in root.rglob("*"))


#: The file the tests put into the example bucket.
TEST_OBJECT = "package-test/hello.txt"
