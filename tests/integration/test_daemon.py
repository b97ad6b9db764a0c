# mypy: disable-error-code="no-untyped-call"
"""
The daemon as a program: installed from a wheel and run as a Twisted
plugin, the C{multistore} command, bad configurations refused at start,
secrets from files and the environment, and the README's embedded default.

The installed tests build a wheel of the checkout once per module and
install it, without dependencies, into a fresh virtual environment that
reaches the running environment's packages through a C{.pth} file (so no
package index is needed); every command then runs from a directory outside
the checkout, without C{PYTHONPATH}, so only the installed copy can answer.
"""

from __future__ import annotations

import base64
import os
import shutil
import site
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

import pytest
from attrs import frozen
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.servers import (
    BIN_DIR,
    LOCALHOST,
    REPO_ROOT,
    TWIST_ARGS,
    Daemon,
    DaemonFactory,
    S3Server,
    ServerProcess,
    daemon_argv,
    daemon_environment,
    error_code,
    free_port,
    free_ports,
    http_status,
    port_accepts,
    s3_client,
    unique_bucket_name,
)

#: The documented example configuration and the object it serves.
EXAMPLE_CONFIG: Final = REPO_ROOT / "etc" / "multistore" / "multistore.toml"
EXAMPLE_README: Final = REPO_ROOT / "etc" / "multistore" / "example" / "README.md"

#: Seconds a command-line tool may take.
COMMAND_TIMEOUT: Final = 60.0

#: Seconds a daemon with a bad configuration may take to give up.
REFUSAL_TIMEOUT: Final = 30.0


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """
    The environment of installed commands: ours without C{PYTHONPATH} or
    any C{AWS_*} setting, plus ``extra``.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONPATH" and not k.startswith("AWS_")
    }
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """
    Run a command to completion, output captured as text.
    """
    return subprocess.run(
        list(argv),
        cwd=cwd,
        env=clean_environment(env),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def aws_ls(url: str, cwd: Path, target: str = "s3://example/") -> list[str]:
    """
    ``aws s3 ls`` without credentials.

    :return: the names listed.
    """
    result = run(
        [
            sys.executable,
            str(BIN_DIR / "aws"),
            "--endpoint-url",
            url,
            "--no-sign-request",
            "--region",
            "us-east-1",
            "s3",
            "ls",
            target,
        ],
        cwd,
    )
    assert result.returncode == 0, result.stderr
    return [line.split()[-1] for line in result.stdout.splitlines()]


def aws_cat(url: str, cwd: Path, target: str) -> bytes:
    """
    ``aws s3 cp TARGET -`` without credentials.

    :return: the object.
    """
    result = subprocess.run(
        [
            sys.executable,
            str(BIN_DIR / "aws"),
            "--endpoint-url",
            url,
            "--no-sign-request",
            "--region",
            "us-east-1",
            "s3",
            "cp",
            target,
            "-",
        ],
        cwd=cwd,
        env=clean_environment(),
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@frozen
class Installation:
    """
    multistore installed from a wheel into a fresh virtual environment.

    :ivar wheel: the wheel.
    :ivar python: the environment's interpreter.
    :ivar site_packages: where the wheel was installed.
    :ivar workdir: a directory outside the checkout to run commands in.
    """

    wheel: Path
    python: Path
    site_packages: Path
    workdir: Path

    @property
    def multistore(self) -> Path:
        """
        :return: the installed C{multistore} command.
        """
        return self.python.parent / "multistore"

    def twistd(self) -> list[str]:
        """
        :return: the argv start of C{twistd} under this environment's
            interpreter (the script belongs to the running environment).
        """
        return [str(self.python), str(BIN_DIR / "twistd")]


def _build_wheel(source: Path, out: Path) -> Path:
    """
    Build a wheel of ``source`` into ``out``: without build isolation when
    the running environment's setuptools can, else in an isolated build
    environment.

    :return: the wheel.
    """
    base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out)]
    attempts = [[*base, "--no-build-isolation", str(source)], [*base, str(source)]]
    errors = []
    for argv in attempts:
        result = subprocess.run(
            argv,
            cwd=source,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        wheels = sorted(out.glob("multistore-*.whl"))
        if result.returncode == 0 and wheels:
            return wheels[0]
        errors.append(result.stderr[-2000:])
    raise AssertionError("could not build a wheel:\n" + "\n---\n".join(errors))


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """
    Build a wheel from a copy of the checkout's sources (so no build
    directory appears in the checkout) and install it, without
    dependencies, into a new virtual environment that sees the running
    environment's packages.
    """
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache")
    for name in ("pyproject.toml", "README.md", "setup.cfg", "setup.py", "MANIFEST.in"):
        if (REPO_ROOT / name).exists():
            shutil.copy2(REPO_ROOT / name, source / name)
    for name in ("multistore", "twisted"):
        shutil.copytree(REPO_ROOT / name, source / name, ignore=ignore)
    wheel = _build_wheel(source, base / "wheels")

    venv = base / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        timeout=COMMAND_TIMEOUT,
    )
    python = venv / "bin" / "python"
    site_packages = Path(
        subprocess.run(
            [
                str(python),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        ).stdout.strip()
    )
    # The running environment's packages (Twisted, attrs, ...) come after
    # the new environment's own, so the wheel's multistore is the one found.
    lines = [
        f"import site; site.addsitedir({directory!r})"
        for directory in site.getsitepackages()
    ]
    (site_packages / "zz-outer-environment.pth").write_text("\n".join(lines) + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            # The outer environment, visible through the .pth above, may
            # hold an installed multistore already (CI's .venv does).
            "--ignore-installed",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    workdir = base / "elsewhere"
    workdir.mkdir()
    return Installation(wheel, python, site_packages, workdir)


class InstalledTests(SynchronousTestCase):
    """
    The installed package, run as C{twistd multistore}, C{python -m twisted
    multistore} and C{multistore}.
    """

    @pytest.fixture(autouse=True)
    def _installation(self, installation: Installation, tmp_path: Path) -> None:
        self.installed = installation
        self.workdir = installation.workdir
        self.tmp = tmp_path

    def command(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """
        Run an installed command from outside the checkout.
        """
        return run(argv, self.workdir)

    def serve(
        self, argv: Sequence[str], ports: Sequence[int], name: str
    ) -> ServerProcess:
        """
        Start a daemon and wait until every port accepts connections.

        :return: the process; it is stopped when the test ends.
        """
        process = ServerProcess(
            name,
            argv,
            self.tmp / f"{name}.log",
            self.workdir,
            clean_environment(),
        )
        process.start()
        self.addCleanup(process.stop)
        process.wait_until(
            lambda: all(port_accepts(p) for p in ports),
            what=f"listening on {list(ports)}",
            timeout=30,
        )
        return process

    def test_package_contents(self) -> None:
        """
        The wheel and the installation hold the plugin module and no
        C{twisted/plugins/__init__.py}; the multistore imported is the
        installed one.
        """
        with zipfile.ZipFile(self.installed.wheel) as wheel:
            names = set(wheel.namelist())
        self.assertIn("twisted/plugins/multistore_plugin.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertNotIn("twisted/__init__.py", names)
        plugins = self.installed.site_packages / "twisted" / "plugins"
        self.assertTrue((plugins / "multistore_plugin.py").is_file())
        self.assertFalse((plugins / "__init__.py").exists())
        result = self.command(
            [
                str(self.installed.python),
                "-c",
                "import multistore; print(multistore.__file__)",
            ]
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(
            Path(result.stdout.strip()).is_relative_to(self.installed.site_packages),
            result.stdout,
        )

    def test_twistd_lists_plugin(self) -> None:
        """
        C{twistd --help} lists the C{multistore} command.
        """
        result = self.command([*self.installed.twistd(), "--help"])
        self.assertEqual(result.returncode, 0, result.stderr)
        commands = result.stdout.split("Commands:", 1)[1]
        self.assertIn("multistore", commands.split())

    def test_plugin_help(self) -> None:
        """
        C{twistd multistore --help} documents C{--config}, C{--listen} and
        C{--domain}.
        """
        result = self.command([*self.installed.twistd(), "multistore", "--help"])
        self.assertEqual(result.returncode, 0, result.stderr)
        for option in ("--config", "--listen", "--domain"):
            self.assertIn(option, result.stdout)

    def test_twistd_serves_example(self) -> None:
        """
        C{twistd -n multistore --config ... --listen ...} serves the example
        configuration: aws-cli lists C{README.md} anonymously and reads it.
        """
        port = free_port()
        self.serve(
            [
                *self.installed.twistd(),
                "-n",
                "--pidfile=",
                "multistore",
                "--config",
                str(EXAMPLE_CONFIG),
                "--listen",
                f"tcp:{port}:interface={LOCALHOST}",
            ],
            [port],
            "twistd",
        )
        url = f"http://{LOCALHOST}:{port}"
        self.assertEqual(aws_ls(url, self.workdir), ["README.md"])
        self.assertEqual(
            aws_cat(url, self.workdir, "s3://example/README.md"),
            EXAMPLE_README.read_bytes(),
        )

    def test_python_m_twisted_two_listeners(self) -> None:
        """
        C{python -m twisted multistore} with two C{--listen} endpoints serves
        on both.
        """
        ports = free_ports(2)
        self.serve(
            [
                str(self.installed.python),
                "-m",
                "twisted",
                *TWIST_ARGS,
                "multistore",
                "--config",
                str(EXAMPLE_CONFIG),
                *(f"--listen=tcp:{p}:interface={LOCALHOST}" for p in ports),
            ],
            ports,
            "twist",
        )
        for port in ports:
            client = s3_client(f"http://{LOCALHOST}:{port}", unsigned=True)
            got = client.get_object(Bucket="example", Key="README.md")
            self.assertEqual(got["Body"].read(), EXAMPLE_README.read_bytes())

    def test_check_config(self) -> None:
        """
        C{multistore check-config} accepts the example configuration (exit
        0), and explains each problem of a bad one, naming the file, table
        and field (exit 1).
        """
        good = self.command(
            [str(self.installed.multistore), "check-config", str(EXAMPLE_CONFIG)]
        )
        self.assertEqual(good.returncode, 0, good.stdout + good.stderr)
        self.assertIn("OK", good.stdout)
        self.assertIn("example", good.stdout)
        bad = self.tmp / "bad.toml"
        bad.write_text(
            '[server]\nbackend_timeout = "soon"\n\n'
            '[[buckets]]\nname = "data"\nbackend_type = "file"\n'
            "anonymous_acess = true\n"
            '[buckets.backend_options]\nroot = "."\n'
        )
        result = self.command(
            [str(self.installed.multistore), "check-config", str(bad)]
        )
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        output = result.stdout + result.stderr
        self.assertIn(str(bad), output)
        self.assertIn("2 problems", output)
        self.assertIn("[[buckets]] #1 (name = 'data'), field 'anonymous_acess'", output)
        self.assertIn("anonymous_access", output)
        self.assertIn("[server], field 'backend_timeout'", output)

    def test_keygen(self) -> None:
        """
        C{multistore keygen session-token} prints 32 random bytes in base64;
        C{keygen oidc} prints a PEM private key.
        """
        tokens = []
        for _ in range(2):
            result = self.command(
                [str(self.installed.multistore), "keygen", "session-token"]
            )
            self.assertEqual(result.returncode, 0, result.stderr)
            tokens.append(result.stdout.strip())
            self.assertEqual(len(base64.b64decode(tokens[-1], validate=True)), 32)
        self.assertNotEqual(tokens[0], tokens[1])
        oidc = self.command([str(self.installed.multistore), "keygen", "oidc"])
        self.assertEqual(oidc.returncode, 0, oidc.stderr)
        self.assertTrue(oidc.stdout.startswith("-----BEGIN PRIVATE KEY-----"))


# --- bad configurations ----------------------------------------------------------

#: Bad configurations, and what the refusal must say besides the file name.
BAD_CONFIGS: Final = {
    "unknown-field": (
        '[[buckets]]\nname = "data"\nbackend_type = "file"\nanonymous_acess = true\n'
        '[buckets.backend_options]\nroot = "."\n',
        ["[[buckets]] #1 (name = 'data')", "field 'anonymous_acess'", "unknown field"],
    ),
    "wrong-type": (
        '[server]\nbackend_timeout = "soon"\n',
        ["[server]", "field 'backend_timeout'"],
    ),
    "missing-root-directory": (
        '[[buckets]]\nname = "data"\nbackend_type = "file"\n'
        '[buckets.backend_options]\nroot = "no-such-directory"\n',
        [
            "[[buckets]] #1 (name = 'data')",
            "field 'backend_options.root'",
            "no-such-directory",
        ],
    ),
    "missing-root-option": (
        '[[buckets]]\nname = "data"\nbackend_type = "file"\n',
        ["[[buckets]] #1 (name = 'data')", "field 'backend_options.root'"],
    ),
    "bad-toml": (
        '[[buckets]\nname = "data"\n',
        ["TOML", "line 1"],
    ),
    "plugin-not-importable": (
        '[[middleware]]\nuse = "multistore_test_no_such_module:factory"\n',
        ["[[middleware]] #1", "field 'use'", "cannot import"],
    ),
    "plugin-factory-fails": (
        '[[routes]]\nuse = "multistore.configfile:load_config"\n',
        ["[[routes]] #1", "field 'use'", "failed: TypeError"],
    ),
    "plugin-wrong-interface": (
        '[registry]\nuse = "multistore.config:Config"\n',
        ["[registry]", "field 'use'", "provides neither IBucketRegistry"],
    ),
    "unset-secret-env": (
        '[[credentials]]\naccess_key_id = "AKID"\n'
        'secret_access_key_env = "MULTISTORE_TEST_UNSET_VARIABLE"\n',
        ["[[credentials]] #1", "MULTISTORE_TEST_UNSET_VARIABLE"],
    ),
}


class BadConfigTests(SynchronousTestCase):
    """
    The daemon refuses a bad configuration at start, quickly, saying what
    is wrong and where, and never listens.
    """

    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.tmp = tmp_path

    def _refused(self, config: Path) -> str:
        """
        Start the daemon from the checkout with ``config``; check that it
        exits with a failure status within L{REFUSAL_TIMEOUT} seconds,
        having never accepted a connection on its port.

        :return: its output.
        """
        port = free_port()
        log = self.tmp / f"{config.stem}.log"
        process = ServerProcess(
            "multistore",
            daemon_argv(config, port),
            log,
            REPO_ROOT,
            daemon_environment(),
        )
        process.start()
        self.addCleanup(process.stop)
        deadline = time.monotonic() + REFUSAL_TIMEOUT
        listened = False
        while process.exit_status() is None and time.monotonic() < deadline:
            listened = listened or port_accepts(port, timeout=0.05)
            time.sleep(0.02)
        status = process.exit_status()
        output = process.log_text()
        self.assertIsNotNone(status, f"still running after {REFUSAL_TIMEOUT}s")
        self.assertNotEqual(status, 0, output)
        self.assertFalse(listened, "the daemon listened with a bad configuration")
        self.assertFalse(port_accepts(port))
        self.assertNotIn("Traceback", output)
        return output

    def test_bad_configs(self) -> None:
        """
        An unknown field, a wrong type, a missing or absent file root, bad
        TOML, a secret from an unset variable and a plug-in that cannot be
        made each stop the daemon, with a message naming the file, the table
        and the field.
        """
        directory = self.tmp
        for name, (text, expected) in BAD_CONFIGS.items():
            config = directory / f"{name}.toml"
            config.write_text(text)
            output = self._refused(config)
            try:
                self.assertIn(str(config), output)
                for fragment in expected:
                    self.assertIn(fragment, output)
            except AssertionError as e:
                raise AssertionError(f"{name}: {e}\n{output}") from None

    def test_missing_file(self) -> None:
        """
        A configuration file that does not exist stops the daemon, naming it.
        """
        config = self.tmp / "absent.toml"
        self.assertIn(str(config), self._refused(config))


# --- secrets ----------------------------------------------------------------------

_FILE_KEY: Final = "AKSECRETFROMFILE0001"
_FILE_SECRET: Final = "secret-from-a-file-0123456789"
_ENV_KEY: Final = "AKSECRETFROMENV00001"
_ENV_SECRET: Final = "secret-from-the-environment-0123"


@frozen
class SecretSetup:
    """
    A daemon whose secrets all come from files and the environment.

    :ivar daemon: buckets C{from-file} and C{from-env} (SeaweedFS, the
        backend secret from a file and from a variable) and C{local}; the
        credentials L{_FILE_KEY} and L{_ENV_KEY} may read everything.
    :ivar seaweedfs: the backend.
    """

    daemon: Daemon
    seaweedfs: S3Server


@pytest.fixture(scope="module")
def secret_setup(
    seaweedfs: S3Server,
    module_multistore_daemon: DaemonFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> SecretSetup:
    """
    Start the daemon of L{SecretSetup}; each SeaweedFS bucket holds
    C{k.txt}.
    """
    directory = tmp_path_factory.mktemp("secrets")
    bucket = seaweedfs.create_bucket(unique_bucket_name("secrets"))
    seaweedfs.client().put_object(Bucket=bucket, Key="k.txt", Body=b"signed\n")
    (directory / "client.secret").write_text(_FILE_SECRET + "\n")
    (directory / "backend.secret").write_text(seaweedfs.secret_key + "\n")
    root = directory / "root"
    root.mkdir()
    (root / "local.txt").write_bytes(b"local\n")
    backend = seaweedfs.backend_options(bucket)
    del backend["secret_access_key"]
    scope = [{"bucket": "*", "actions": ["get_object", "list_bucket"]}]
    daemon = module_multistore_daemon(
        {
            "buckets": [
                {
                    "name": "from-file",
                    "backend_type": "s3",
                    "backend_options": {
                        **backend,
                        "secret_access_key_file": str(directory / "backend.secret"),
                    },
                },
                {
                    "name": "from-env",
                    "backend_type": "s3",
                    "backend_options": {
                        **backend,
                        "secret_access_key_env": "MULTISTORE_TEST_BACKEND_SECRET",
                    },
                },
                {
                    "name": "local",
                    "backend_type": "file",
                    "backend_options": {"root": str(root)},
                },
            ],
            "credentials": [
                {
                    "access_key_id": _FILE_KEY,
                    "secret_access_key_file": str(directory / "client.secret"),
                    "allowed_scopes": scope,
                },
                {
                    "access_key_id": _ENV_KEY,
                    "secret_access_key_env": "MULTISTORE_TEST_CLIENT_SECRET",
                    "allowed_scopes": scope,
                },
            ],
        },
        env={
            "MULTISTORE_TEST_CLIENT_SECRET": _ENV_SECRET,
            "MULTISTORE_TEST_BACKEND_SECRET": seaweedfs.secret_key,
        },
    )
    return SecretSetup(daemon, seaweedfs)


class SecretTests(SynchronousTestCase):
    """
    Secrets given as C{*_file} and C{*_env}, end to end.
    """

    @pytest.fixture(autouse=True)
    def _setup(self, secret_setup: SecretSetup) -> None:
        self.daemon = secret_setup.daemon
        self.seaweedfs = secret_setup.seaweedfs

    def test_client_secrets(self) -> None:
        """
        Requests signed with a credential's secret from a file (its trailing
        newline dropped) or from the environment are accepted; a wrong
        secret is not.
        """
        for key, secret in ((_FILE_KEY, _FILE_SECRET), (_ENV_KEY, _ENV_SECRET)):
            client = s3_client(self.daemon.url, key, secret)
            got = client.get_object(Bucket="local", Key="local.txt")
            self.assertEqual(got["Body"].read(), b"local\n")
            wrong = s3_client(self.daemon.url, key, secret + "\n")
            with self.assertRaises(ClientError) as raised:
                wrong.get_object(Bucket="local", Key="local.txt")
            self.assertEqual(
                (http_status(raised.exception), error_code(raised.exception)),
                (403, "SignatureDoesNotMatch"),
            )

    def test_backend_secrets(self) -> None:
        """
        Backend secrets from a file and from the environment sign requests
        that SeaweedFS (which verifies signatures) accepts.
        """
        client = s3_client(self.daemon.url, _FILE_KEY, _FILE_SECRET)
        for bucket in ("from-file", "from-env"):
            got = client.get_object(Bucket=bucket, Key="k.txt")
            self.assertEqual(got["Body"].read(), b"signed\n", bucket)
            listing = client.list_objects_v2(Bucket=bucket)
            self.assertEqual([o["Key"] for o in listing["Contents"]], ["k.txt"])

    def test_secrets_not_logged(self) -> None:
        """
        None of the secrets appears in the daemon's log.
        """
        client = s3_client(self.daemon.url, _ENV_KEY, _ENV_SECRET)
        client.get_object(Bucket="from-env", Key="k.txt")["Body"].read()
        log = self.daemon.log_text()
        for secret in (_FILE_SECRET, _ENV_SECRET, self.seaweedfs.secret_key):
            self.assertNotIn(secret, log)


# --- the README's default -----------------------------------------------------------


@pytest.fixture(scope="module")
def example_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """
    The daemon as C{make run} starts it: from the checkout, on the example
    configuration (on a free port instead of 8080).
    """
    port = free_port()
    process = ServerProcess(
        "multistore",
        daemon_argv(EXAMPLE_CONFIG, port),
        tmp_path_factory.mktemp("example") / "daemon.log",
        REPO_ROOT,
        daemon_environment(),
    )
    daemon = Daemon(port, EXAMPLE_CONFIG, None, process)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


class ExampleTests(SynchronousTestCase):
    """
    The README's two commands: the embedded default bucket answers
    anonymous reads.
    """

    @pytest.fixture(autouse=True)
    def _daemon(self, example_daemon: Daemon, tmp_path: Path) -> None:
        self.daemon = example_daemon
        self.workdir = tmp_path

    def test_example_bucket(self) -> None:
        """
        C{aws s3 ls s3://example/ --no-sign-request} lists C{README.md}, and
        C{aws s3 cp s3://example/README.md -} prints it.
        """
        self.assertEqual(aws_ls(self.daemon.url, self.workdir), ["README.md"])
        self.assertEqual(
            aws_cat(self.daemon.url, self.workdir, "s3://example/README.md"),
            EXAMPLE_README.read_bytes(),
        )

    def test_example_is_read_only(self) -> None:
        """
        Anonymous callers may not write to the example bucket.
        """
        client = s3_client(self.daemon.url, unsigned=True)
        with self.assertRaises(ClientError) as raised:
            client.put_object(Bucket="example", Key="new.txt", Body=b"x")
        self.assertEqual(http_status(raised.exception), 403)
        self.assertFalse((EXAMPLE_README.parent / "new.txt").exists())
