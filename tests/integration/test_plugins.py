# mypy: disable-error-code="no-untyped-call"
"""
Plug-ins named in the configuration, out of tree: the audit middleware and
the catalogue registry of C{docs/extending.md}, copied out of that page into
a directory outside the package, loaded by a real daemon through its
configuration, and driven with boto3.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.servers import (
    LOCALHOST,
    REPO_ROOT,
    DaemonFactory,
    error_code,
    http_status,
    s3_client,
)

#: The page whose examples are tested.
EXTENDING: Final = REPO_ROOT / "docs" / "extending.md"

#: A fenced Python block that starts with ``# file: NAME``.
_EXAMPLE: Final = re.compile(r"```python\n# file: (\S+)\n(.*?)```", re.S)

KEY_ID: Final = "AKCATALOGUE000000001"
SECRET: Final = "catalogue-secret-0123456789"
SCOPED_ID: Final = "AKCATALOGUESCOPED001"
SCOPED_SECRET: Final = "catalogue-scoped-0123456789"


def write_examples(directory: Path) -> list[str]:
    """
    Copy the plug-ins of C{docs/extending.md} into ``directory``.

    :return: the file names written.
    """
    names = []
    for name, code in _EXAMPLE.findall(EXTENDING.read_text()):
        (directory / name).write_text(code)
        names.append(name)
    return names


class Catalogue:
    """
    A catalogue service on 127.0.0.1: serves one JSON document, which a
    test may change, or fail.
    """

    def __init__(self) -> None:
        self.document: dict[str, Any] = {}
        self.failing = False
        catalogue = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if catalogue.failing:
                    self.send_error(503)
                    return
                body = json.dumps(catalogue.document).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self._server.server_address[1]}/multistore.json"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def catalogue_document(*roots: tuple[str, Path]) -> dict[str, Any]:
    """
    :return: a catalogue with a directory bucket per ``(name, root)``, a key
        that may do everything, and one that may only touch ``public/`` in
        the first bucket.
    """
    return {
        "buckets": [
            {
                "name": name,
                "backend_type": "file",
                "backend_options": {"root": str(root)},
            }
            for name, root in roots
        ],
        "credentials": [
            {
                "access_key_id": KEY_ID,
                "secret_access_key": SECRET,
                "principal_name": "catalogue-admin",
                "allowed_scopes": [
                    {
                        "bucket": "*",
                        "prefixes": [],
                        "actions": [
                            "get_object",
                            "head_object",
                            "put_object",
                            "list_bucket",
                            "delete_object",
                        ],
                    }
                ],
            },
            {
                "access_key_id": SCOPED_ID,
                "secret_access_key": SCOPED_SECRET,
                "principal_name": "catalogue-scoped",
                "allowed_scopes": [
                    {
                        "bucket": roots[0][0],
                        "prefixes": ["public/"],
                        "actions": ["get_object", "list_bucket", "delete_object"],
                    }
                ],
            },
        ],
    }


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


class OutOfTreePluginTests(SynchronousTestCase):
    """
    A daemon whose buckets and keys come from the catalogue registry, and
    whose requests pass the audit middleware, both loaded from a directory
    outside the package.
    """

    @pytest.fixture(autouse=True)
    def _daemon(
        self, tmp_path: Path, multistore_daemon: DaemonFactory
    ) -> Iterator[None]:
        plugins = tmp_path / "plugins"
        plugins.mkdir()
        self.assertEqual(
            sorted(write_examples(plugins)),
            ["audit.py", "catalogue.py", "test_audit.py"],
        )
        self.plugins = plugins
        self.data = tmp_path / "data"
        self.data.mkdir()
        (self.data / "public").mkdir()
        (self.data / "public" / "hello.txt").write_bytes(b"hello")
        (self.data / "private").mkdir()
        (self.data / "private" / "secret.txt").write_bytes(b"secret")
        self.more = tmp_path / "more"
        self.more.mkdir()
        self.catalogue = Catalogue()
        self.catalogue.document = catalogue_document(("datasets", self.data))
        self.audit = tmp_path / "audit.jsonl"
        config = {
            "registry": {
                "use": "catalogue:catalogue_registry",
                "options": {"url": self.catalogue.url, "ttl": 1},
            },
            "middleware": [
                {
                    "use": "audit:audit_middleware",
                    "options": {
                        "destination": str(self.audit),
                        "refuse": ["DeleteBucket"],
                    },
                }
            ],
        }
        self.daemon = multistore_daemon(
            config,
            env={"PYTHONPATH": f"{REPO_ROOT}:{plugins}"},
        )
        self.s3 = s3_client(self.daemon.url, KEY_ID, SECRET)
        yield
        self.catalogue.close()

    def audited(self) -> list[dict[str, Any]]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines()]

    def test_reads_and_writes(self) -> None:
        """
        The catalogue's keys read, write and list the catalogue's buckets;
        each request leaves an audit line with its principal, operation and
        status.
        """
        names = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        self.assertEqual(names, ["datasets"])
        self.s3.put_object(Bucket="datasets", Key="public/new.txt", Body=b"new")
        self.assertEqual((self.data / "public" / "new.txt").read_bytes(), b"new")
        body = self.s3.get_object(Bucket="datasets", Key="public/hello.txt")["Body"]
        self.assertEqual(body.read(), b"hello")
        listed = self.s3.list_objects_v2(Bucket="datasets", Prefix="public/")
        self.assertEqual(
            [o["Key"] for o in listed["Contents"]],
            ["public/hello.txt", "public/new.txt"],
        )
        wait_for(lambda: len(self.audited()) >= 4)
        lines = self.audited()
        self.assertEqual(
            [(line["operation"], line["status"]) for line in lines[:4]],
            [
                ("ListBuckets", 200),
                ("PutObject", 200),
                ("GetObject", 200),
                ("ListObjectsV2", 200),
            ],
        )
        self.assertEqual({line["principal"] for line in lines}, {"catalogue-admin"})
        self.assertEqual(lines[1]["bytes_in"], 3)
        self.assertEqual(lines[2]["bytes_out"], 5)

    def test_middleware_refuses(self) -> None:
        """
        The middleware answers the operations it refuses itself; the store
        is never asked.
        """
        with self.assertRaises(ClientError) as caught:
            self.s3.delete_bucket(Bucket="datasets")
        self.assertEqual(error_code(caught.exception), "AccessDenied")
        self.assertTrue(self.data.is_dir())
        wait_for(lambda: any(a["operation"] == "DeleteBucket" for a in self.audited()))
        refused = [a for a in self.audited() if a["operation"] == "DeleteBucket"]
        self.assertEqual(refused[0]["status"], 403)

    def test_unknown_key(self) -> None:
        """
        A key the catalogue does not have is refused.
        """
        stranger = s3_client(self.daemon.url, "AKNOTINTHECATALOGUE1", "nope")
        with self.assertRaises(ClientError) as caught:
            stranger.list_objects_v2(Bucket="datasets")
        self.assertEqual(error_code(caught.exception), "InvalidAccessKeyId")

    def test_per_key_decisions(self) -> None:
        """
        A key scoped to ``public/`` deletes inside it and is refused outside
        it in one DeleteObjects request, and its listings of the whole
        bucket show only what it may see: the registry's per-key decisions
        are asked for and awaited.
        """
        scoped = s3_client(self.daemon.url, SCOPED_ID, SCOPED_SECRET)
        listed = scoped.list_objects_v2(Bucket="datasets", Prefix="public/")
        self.assertEqual([o["Key"] for o in listed["Contents"]], ["public/hello.txt"])
        result = scoped.delete_objects(
            Bucket="datasets",
            Delete={
                "Objects": [{"Key": "public/hello.txt"}, {"Key": "private/secret.txt"}]
            },
        )
        self.assertEqual([d["Key"] for d in result["Deleted"]], ["public/hello.txt"])
        self.assertEqual(
            [(e["Key"], e["Code"]) for e in result["Errors"]],
            [("private/secret.txt", "AccessDenied")],
        )
        self.assertFalse((self.data / "public" / "hello.txt").exists())
        self.assertTrue((self.data / "private" / "secret.txt").exists())

    def test_catalogue_changes(self) -> None:
        """
        A bucket added to the catalogue is served once the registry's copy
        is older than its ttl, without a restart; while the catalogue is down
        and the copy stale, clients get ServiceUnavailable.
        """
        self.catalogue.document = catalogue_document(
            ("datasets", self.data), ("more", self.more)
        )
        (self.more / "m.txt").write_bytes(b"m")

        def served() -> bool:
            try:
                self.s3.head_object(Bucket="more", Key="m.txt")
            except ClientError:
                return False
            return True

        wait_for(served)
        self.catalogue.failing = True
        time.sleep(1.2)
        with self.assertRaises(ClientError) as caught:
            self.s3.head_object(Bucket="more", Key="m.txt")
        self.assertEqual(http_status(caught.exception), 503)

    def test_in_memory_example(self) -> None:
        """
        The page's in-memory test of the audit middleware passes as written,
        run by pytest from outside the checkout.
        """
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "test_audit.py",
            ],
            cwd=self.plugins,
            env={**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{self.plugins}"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("2 passed", result.stdout)
