"""
Fixtures of the Debian package tests: the .deb, built from a copy of this
tree, and the package installed from it.

These tests change the machine: they install Debian packages, create the
system user C{multistore}, and purge any installed multistore first. They
run only when asked (C{make package-test}, which sets
C{MULTISTORE_PACKAGE_TESTS=1} after C{ci/install-package-deps}); asked but
not root, they fail and say why. C{MULTISTORE_DEB=path} tests that .deb
instead of building one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.package.system import (
    PACKAGE,
    SYSTEM_PATH,
    TEST_OBJECT,
    Built,
    Installed,
    copy_tree,
    files_under,
    purge,
    run,
)

_OPT_IN = "MULTISTORE_PACKAGE_TESTS"


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if os.environ.get(_OPT_IN) == "1":
        return
    skip = pytest.mark.skip(
        reason="the package tests install a .deb and create a system user: "
        "run them with `make package-test` (as root)"
    )
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _root() -> None:
    """
    Fail, rather than skip, when the tests cannot do their work.
    """
    if os.geteuid() != 0:
        pytest.fail(
            "the package tests install and purge a Debian package and create "
            "a system user: run them as root (make package-test)"
        )
    missing = [
        tool
        for tool in ("dpkg-buildpackage", "lintian", "systemd-analyze", "apt-get")
        if shutil.which(tool, path=SYSTEM_PATH) is None
    ]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run `bash ci/install-package-deps`")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """
    The .deb, built by C{dpkg-buildpackage -us -uc -b} in a copy of this
    tree (the repository stays clean; the .deb lands outside it), which
    runs the unit tests against Debian's packages on the way.
    """
    given = os.environ.get("MULTISTORE_DEB")
    if given:
        return Built(Path(given).resolve(), 0.0, "")
    out = tmp_path_factory.mktemp("package")
    # apt reads the .deb as its unprivileged _apt user.
    out.chmod(0o755)
    tree = out / PACKAGE
    copy_tree(tree)
    started = time.monotonic()
    result = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, timeout=1200)
    seconds = time.monotonic() - started
    (out / "build.log").write_text(result.stdout)
    debs = list(out.glob(f"{PACKAGE}_*_all.deb"))
    assert len(debs) == 1, (debs, result.stdout[-3000:])
    print(f"\nbuilt {debs[0].name} in {seconds:.0f} s")
    return Built(debs[0], seconds, result.stdout)


@pytest.fixture(scope="session")
def installed(built: Built) -> Iterator[Installed]:
    """
    The package installed with C{apt-get install ./multistore_*.deb}, after
    purging any earlier installation; purged again at the end if a test
    has not done it.

    The package's postinst would start multistore.service on a machine run
    by systemd; policy-rc.d stops that, so the tests start the daemon
    themselves (and port 8080 stays theirs).
    """
    purge()
    var_lib = Path("/var/lib/multistore")
    leftover = var_lib / "buckets" / "example" / TEST_OBJECT
    if leftover.exists():
        shutil.rmtree(leftover.parent)
    existed = var_lib.exists()
    before = files_under(var_lib)
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:
        policy.write_text(
            "#!/bin/sh\n# multistore package tests: start no service\nexit 101\n"
        )
        policy.chmod(0o755)
    try:
        result = run(
            [
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                str(built.deb),
            ],
            cwd=built.deb.parent,
        )
    finally:
        if made_policy:
            policy.unlink()
    yield Installed(built.deb, before, result.stdout)
    purge()
    # The tests' data, and the directories that held only it.
    if leftover.exists():
        shutil.rmtree(leftover.parent)
    for directory in (var_lib / "buckets" / "example", var_lib / "buckets"):
        if str(directory.relative_to(var_lib)) not in before:
            with contextlib.suppress(OSError):
                directory.rmdir()
    if not existed:
        with contextlib.suppress(OSError):
            var_lib.rmdir()
