"""
The Debian package: built from this tree, checked with lintian and
systemd-analyze, installed with apt, its daemon run as its systemd units
would run it and read through with boto3, then purged.

The tests run in this file's order and share one installation; the last
one purges it.
"""

from __future__ import annotations

import grp
import pwd
import re
import subprocess
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from tests.package.runner import (
    Daemon,
    accepts,
    assert_sandboxed,
    listen_port,
    started,
)
from tests.package.system import (
    PACKAGE,
    SOURCE,
    TEST_OBJECT,
    Built,
    Installed,
    files_under,
    package_state,
    run,
    source_version,
)
from tests.package.units import Unit, service_environment

UNITS = Path("/lib/systemd/system")
SERVICE = UNITS / "multistore.service"
TEMPLATE = UNITS / "multistore@.service"
CONFIG = Path("/etc/multistore/multistore.toml")
DEFAULTS = Path("/etc/default/multistore")
VAR_LIB = Path("/var/lib/multistore")
BUCKET = VAR_LIB / "buckets" / "example"
LOGS = Path("/var/log/multistore")
SITE_PACKAGES = Path("/usr/lib/python3/dist-packages")
PLUGINS = SITE_PACKAGES / "twisted" / "plugins"
PLUGIN_CACHE = PLUGINS / "dropin.cache"

#: The most exposure `systemd-analyze security` may rate a unit at.
MAX_EXPOSURE = 2.0


def _mode(path: Path) -> tuple[str, str, int]:
    """
    Owner, group and permission bits of ``path``.
    """
    info = path.stat()
    return (
        pwd.getpwuid(info.st_uid).pw_name,
        grp.getgrgid(info.st_gid).gr_name,
        info.st_mode & 0o7777,
    )


def test_version_is_the_source_version(built: Built) -> None:
    """
    The package's version is C{multistore.__version__}: debian/changelog
    follows the source.
    """
    version = run(["dpkg-deb", "-f", str(built.deb), "Version"]).stdout.strip()
    assert version == source_version(), (
        f"debian/changelog says {version}, multistore/__init__.py says "
        f"{source_version()}: add a debian/changelog entry (dch -v)"
    )
    assert built.deb.name == f"{PACKAGE}_{version}_all.deb"


#: The Debian packages the daemon runs on (DESIGN.md's list, less what it
#: does not use yet), and what a system service package needs.
RUNTIME_DEPENDS = {
    "adduser",
    "python3-attr",
    "python3-crcmod",
    "python3-cryptography",
    "python3-jwt",
    "python3-lxml",
    "python3-openssl",
    "python3-prometheus-client",
    "python3-redis",
    "python3-service-identity",
    "python3-treq",
    "python3-twisted",
    "python3-zope.interface",
}


def test_depends_on_debian_packages_only(built: Built) -> None:
    """
    The package depends on Debian's own Python packages (dh_python3 maps
    setup.cfg's install_requires to them), never on anything from pip, and
    merely suggests Redis.
    """
    fields = run(["dpkg-deb", "-f", str(built.deb), "Depends", "Suggests"]).stdout
    depends = suggests = ""
    for line in fields.splitlines():
        name, _, value = line.partition(":")
        if name == "Depends":
            depends = value
        elif name == "Suggests":
            suggests = value
    names = {
        re.split(r"[ (:]", part.strip())[0]
        for part in depends.split(",")
        if part.strip()
    }
    assert names - {"python3"} == RUNTIME_DEPENDS, depends
    assert suggests.strip() == "redis-server"


def test_lintian_finds_no_error_or_warning(built: Built) -> None:
    """
    lintian reports no error and no warning: each tag the package keeps on
    purpose is overridden, with the reason, in
    debian/multistore.lintian-overrides.
    """
    result = run(
        ["lintian", "--fail-on=error,warning", "--display-info", str(built.deb)],
        check=False,
    )
    print(result.stdout)
    tags = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert result.returncode == 0 and not tags, result.stdout


def test_files_owners_and_modes(installed: Installed) -> None:
    """
    The daemon, its plugin, the command, the units and the configuration
    are where the package says; the configuration is readable by root and
    the daemon's group only; the daemon owns its state and log
    directories.
    """
    for path in (
        Path("/usr/bin/multistore"),
        SITE_PACKAGES / "multistore" / "tap.py",
        PLUGINS / "multistore_plugin.py",
        SERVICE,
        TEMPLATE,
        DEFAULTS,
        Path("/usr/share/doc/multistore/README.Debian"),
        Path("/usr/share/doc/multistore/examples/multistore.toml"),
        Path("/usr/share/man/man1/multistore.1.gz"),
    ):
        assert path.is_file(), path
    shipped = run(["dpkg-query", "-L", PACKAGE]).stdout.splitlines()
    assert str(PLUGINS / "__init__.py") not in shipped
    assert str(PLUGINS.parent / "__init__.py") not in shipped
    assert _mode(CONFIG) == ("root", "multistore", 0o640)
    assert _mode(DEFAULTS) == ("root", "root", 0o644)
    for directory in (VAR_LIB, VAR_LIB / "buckets", BUCKET, LOGS):
        assert _mode(directory) == ("multistore", "multistore", 0o750), directory
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", PACKAGE]).stdout
    listed = {line.split()[0] for line in conffiles.splitlines() if line.strip()}
    assert listed == {str(CONFIG), str(DEFAULTS)}


def test_system_user(installed: Installed) -> None:
    """
    The daemon's user is a system user with its own group, no login, and
    its state directory as home.
    """
    user = pwd.getpwnam("multistore")
    assert user.pw_uid < 1000
    assert grp.getgrgid(user.pw_gid).gr_name == "multistore"
    assert user.pw_dir == str(VAR_LIB)
    assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false")


def _as_daemon_user(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """
    Run ``argv`` as the multistore user, with a clean environment.
    """
    return run(["runuser", "-u", "multistore", "--", *argv], check=False)


def test_plugin_cache_is_fresh(installed: Installed) -> None:
    """
    Twisted's plugin cache lists the multistore plugin and needs no
    rewrite: the daemon's user (who could not write it) finds the plugin
    without rescanning.
    """
    assert PLUGIN_CACHE.is_file()
    assert b"multistore_plugin" in PLUGIN_CACHE.read_bytes()
    assert _mode(PLUGIN_CACHE)[0] == "root"
    probe = (
        "from twisted.python import log\n"
        "messages = []\n"
        "log.addObserver(lambda event: messages.append(log.textFromEventDict(event)))\n"
        "from twisted.plugin import IPlugin, getPlugins\n"
        "names = [getattr(p, 'tapname', None) for p in getPlugins(IPlugin)]\n"
        "assert 'multistore' in names, names\n"
        "assert not [m for m in messages if m and 'plugin cache' in m], messages\n"
    )
    result = _as_daemon_user(["/usr/bin/python3", "-c", probe])
    assert result.returncode == 0, result.stdout


def test_check_config_accepts_the_packaged_configuration(installed: Installed) -> None:
    """
    C{multistore check-config}, run by the daemon's user, accepts
    /etc/multistore/multistore.toml and its example bucket.
    """
    result = _as_daemon_user(["multistore", "check-config", str(CONFIG)])
    assert result.returncode == 0, result.stdout
    assert "bucket example: file" in result.stdout, result.stdout


def test_units_verify(installed: Installed) -> None:
    """
    C{systemd-analyze verify} finds nothing to say about either unit.
    """
    result = run(
        ["systemd-analyze", "verify", str(SERVICE), str(TEMPLATE)], check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout


@pytest.mark.parametrize("unit", [SERVICE, TEMPLATE], ids=lambda p: p.name)
def test_units_exposure(installed: Installed, unit: Path) -> None:
    """
    C{systemd-analyze security} rates each unit at an exposure of at most
    L{MAX_EXPOSURE}.
    """
    result = run(
        [
            "systemd-analyze",
            "security",
            "--offline=yes",
            f"--threshold={int(MAX_EXPOSURE * 10)}",
            str(unit),
        ],
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout
    exposure = float(match.group(1))
    print(f"\n{unit.name}: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE and result.returncode == 0, result.stdout


def test_memory_deny_write_execute_would_break_tls(installed: Installed) -> None:
    """
    The units leave out C{MemoryDenyWriteExecute=yes} because Debian 12's
    pyOpenSSL needs writable, executable memory (cffi callbacks) for the
    TLS connections Twisted makes: under the same kernel restriction
    (C{PR_SET_MDWE}), setting one up fails. Should it stop failing, set
    C{MemoryDenyWriteExecute=yes} in both units.
    """
    for unit in (SERVICE, TEMPLATE):
        assert Unit.read(unit).value("MemoryDenyWriteExecute") is None
    tls_client = (
        "import ctypes\n"
        "assert ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) == 0  # PR_SET_MDWE\n"
        "from twisted.web.client import BrowserLikePolicyForHTTPS\n"
        "from twisted.internet.testing import StringTransport\n"
        "from twisted.internet.protocol import Factory, Protocol\n"
        "from twisted.protocols.tls import TLSMemoryBIOFactory\n"
        "creator = BrowserLikePolicyForHTTPS().creatorForNetloc(b'example.com', 443)\n"
        "factory = TLSMemoryBIOFactory(creator, True, Factory.forProtocol(Protocol))\n"
        "factory.buildProtocol(None).makeConnection(StringTransport())\n"
    )
    result = run(["/usr/bin/python3", "-c", tls_client], check=False)
    assert result.returncode != 0, (
        "TLS works without W+X memory now: set MemoryDenyWriteExecute=yes"
    )
    assert "Cannot allocate write+execute memory" in result.stdout, result.stdout


def _s3() -> Any:
    """
    An anonymous boto3 S3 client of the packaged daemon.
    """
    return boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:8080",
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )


def _put_test_object(text: bytes) -> Path:
    """
    Put a file into the example bucket's directory, as an operator would.
    """
    path = BUCKET / TEST_OBJECT
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(text)
    return path


def _packaged_port() -> int:
    (listen,) = tomllib.loads(CONFIG.read_text())["server"]["listen"]
    return listen_port(listen)


def _free_or_fail(port: int) -> None:
    if accepts(port):
        pytest.fail(
            f"something already listens on 127.0.0.1:{port}, the packaged "
            "configuration's port: stop it to run the package tests"
        )


def test_daemon_serves_the_example_bucket(installed: Installed, tmp_path: Path) -> None:
    """
    The daemon, started as multistore.service starts it, runs as the
    multistore user and serves a file put into
    /var/lib/multistore/buckets/example to boto3, anonymously.
    """
    _put_test_object(b"hello from the Debian package\n")
    port = _packaged_port()
    assert port == 8080
    _free_or_fail(port)
    with started(SERVICE, tmp_path / "daemon.log") as daemon:
        assert daemon.argv[:3] == ["/usr/bin/twistd3", "--nodaemon", "--pidfile="]
        daemon.wait_listening(port)
        assert_sandboxed(daemon)
        s3 = _s3()
        body = s3.get_object(Bucket="example", Key=TEST_OBJECT)["Body"].read()
        assert body == b"hello from the Debian package\n"
        listed = s3.list_objects_v2(Bucket="example")
        assert [o["Key"] for o in listed["Contents"]] == [TEST_OBJECT]
        assert daemon.stop() == 0
    print(daemon.text())
    assert "Traceback" not in daemon.text()
    assert "plugin cache" not in daemon.text()


def test_daemon_reloads_and_stops_cleanly(installed: Installed, tmp_path: Path) -> None:
    """
    C{ExecReload=} (SIGHUP) makes the daemon read its configuration again
    and leaves it serving; SIGTERM, as C{systemctl stop} sends it, ends it
    within C{TimeoutStopSec=} with status 0, so the unit neither fails nor
    restarts.
    """
    _put_test_object(b"hello again\n")
    port = _packaged_port()
    _free_or_fail(port)
    with started(SERVICE, tmp_path / "daemon.log") as daemon:
        daemon.wait_listening(port)
        daemon.exec_reload()
        time.sleep(2)
        assert daemon.process.poll() is None, (
            f"SIGHUP ended the daemon:\n{daemon.text()}"
        )
        assert "configuration reloaded" in daemon.text(), daemon.text()
        body = _s3().get_object(Bucket="example", Key=TEST_OBJECT)["Body"].read()
        assert body == b"hello again\n"
        status = daemon.stop()
    print(daemon.text())
    assert status == 0, (status, daemon.text())
    assert "Traceback" not in daemon.text()


def _served(daemon: Daemon) -> int:
    return daemon.text().count("GetObject example")


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_workers_share_the_port(installed: Installed, tmp_path: Path) -> None:
    """
    Two workers, started as multistore@1 and multistore@2 would be, listen
    on the one port /etc/default/multistore gives them; both answer, and
    the second serves alone once the first stops.
    """
    _put_test_object(b"hello from a worker\n")
    environment = service_environment(Unit.read(TEMPLATE), "1")
    port = listen_port(environment["MULTISTORE_WORKER_LISTEN"])
    _free_or_fail(port)
    with (
        started(TEMPLATE, tmp_path / "worker1.log", "1") as first,
        started(TEMPLATE, tmp_path / "worker2.log", "2") as second,
    ):
        assert "reuseport:8080:interface=127.0.0.1" in first.argv
        first.wait_listening(port)
        second.wait_listening(port)
        for _ in range(40):
            body = _s3().get_object(Bucket="example", Key=TEST_OBJECT)["Body"].read()
            assert body == b"hello from a worker\n"
        _wait_until(lambda: _served(first) + _served(second) == 40, "40 log lines")
        assert _served(first) > 0 and _served(second) > 0
        assert first.stop() == 0
        before = _served(second)
        for _ in range(10):
            _s3().get_object(Bucket="example", Key=TEST_OBJECT)
        _wait_until(lambda: _served(second) == before + 10, "10 more log lines")
        assert second.stop() == 0


def test_purge_leaves_only_data_and_the_user(installed: Installed) -> None:
    """
    C{apt-get purge} removes the package, its configuration, its log
    directory and its systemd enablement, and Twisted's plugin cache no
    longer lists the plugin. Files put into a bucket's directory are data
    and stay, with the directories holding them; so do the system user
    and group (Debian's policy: files may still be theirs).
    """
    _put_test_object(b"data the purge must keep\n")
    run(["apt-get", "purge", "-y", "-q", PACKAGE])
    assert package_state() == "not-installed"
    for gone in (
        CONFIG.parent,
        DEFAULTS,
        LOGS,
        SERVICE,
        TEMPLATE,
        SITE_PACKAGES / "multistore",
        PLUGINS / "multistore_plugin.py",
        Path("/usr/bin/multistore"),
        Path("/usr/share/doc/multistore"),
        Path("/etc/systemd/system/multi-user.target.wants/multistore.service"),
        Path("/var/lib/systemd/deb-systemd-helper-enabled/multistore.service.dsh-also"),
    ):
        assert not gone.exists(), f"{gone} survived the purge"
    assert b"multistore" not in PLUGIN_CACHE.read_bytes()
    data = Path("buckets/example") / TEST_OBJECT
    kept = {str(data), *(str(p) for p in data.parents if p != Path("."))}
    assert files_under(VAR_LIB) == installed.before_var_lib | kept
    assert pwd.getpwnam("multistore").pw_dir == str(VAR_LIB)
    assert grp.getgrnam("multistore")


def test_the_source_tree_is_untouched(built: Built) -> None:
    """
    Building the package left this repository as it was: the build ran in
    a copy, so no debhelper or pybuild products are here.
    """
    for product in (
        "debian/multistore",
        "debian/.debhelper",
        "debian/files",
        "debian/debhelper-build-stamp",
        "debian/multistore.substvars",
        ".pybuild",
    ):
        assert not (SOURCE / product).exists(), product
