"""
Tests for L{multistore.cli}.
"""

from __future__ import annotations

import base64
import io
import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from multistore.cli import main

EXAMPLE = Path(__file__).parents[2] / "etc/multistore/multistore.toml"


class CheckConfigTests(SynchronousTestCase):
    """
    Tests for ``multistore check-config``.
    """

    def run_main(self, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        return main(list(argv), out), out.getvalue()

    def test_valid(self) -> None:
        """
        A valid file exits 0 and summarises the buckets.
        """
        status, text = self.run_main("check-config", str(EXAMPLE))
        self.assertEqual(status, 0)
        self.assertIn("OK: 1 buckets", text)
        self.assertIn("bucket example: file, anonymous reads", text)

    def test_invalid(self) -> None:
        """
        An invalid file exits 1 and explains each problem with its file,
        table and field.
        """
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        bad = directory / "bad.toml"
        bad.write_text(
            '[[buckets]]\nname = "x"\nbackend_type = "s3"\nanonymous = true\n'
        )
        status, text = self.run_main("check-config", str(bad))
        self.assertEqual(status, 1)
        self.assertIn(str(bad), text)
        self.assertIn(
            "[[buckets]] #1 (name = 'x'), field 'anonymous': unknown field", text
        )
        self.assertIn(
            "field 'backend_options.bucket_name': required for s3 backends", text
        )


class KeygenTests(SynchronousTestCase):
    """
    Tests for ``multistore keygen``.
    """

    def test_session_token(self) -> None:
        """
        A session-token key is 32 random bytes in base64.
        """
        first, second = io.StringIO(), io.StringIO()
        self.assertEqual(main(["keygen", "session-token"], first), 0)
        main(["keygen", "session-token"], second)
        self.assertEqual(len(base64.b64decode(first.getvalue().strip())), 32)
        self.assertNotEqual(first.getvalue(), second.getvalue())

    def test_oidc(self) -> None:
        """
        An OIDC key is an RSA private key in PKCS#8 PEM.
        """
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        out = io.StringIO()
        self.assertEqual(main(["keygen", "oidc"], out), 0)
        self.assertTrue(out.getvalue().startswith("-----BEGIN PRIVATE KEY-----"))
        key = load_pem_private_key(out.getvalue().encode("ascii"), None)
        self.assertIsInstance(key, rsa.RSAPrivateKey)
