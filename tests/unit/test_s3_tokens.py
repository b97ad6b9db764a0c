"""
Tests for L{multistore.s3.tokens}.
"""

from __future__ import annotations

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from multistore.config import BucketConfig
from multistore.s3.errors import S3Error
from multistore.s3.tokens import open_store_token, seal_store_token

BUCKET = BucketConfig(
    name="data",
    backend_type="s3",
    backend_prefix="tenants/secret-prefix",
    backend_options={"bucket_name": "real"},
)


class StoreTokenTests(SynchronousTestCase):
    """
    Tests for L{seal_store_token} and L{open_store_token}.
    """

    def test_round_trip(self) -> None:
        """
        A sealed token opens to itself, and shows nothing of it.
        """
        token = "tenants/secret-prefix/last/key"
        sealed = seal_store_token(BUCKET, token)
        self.assertEqual(open_store_token(BUCKET, sealed), token)
        self.assertNotIn("secret", sealed)
        self.assertNotEqual(sealed, seal_store_token(BUCKET, token))

    def test_other_bucket_or_config(self) -> None:
        """
        A token sealed for one bucket, or an earlier configuration of it,
        does not open.
        """
        sealed = seal_store_token(BUCKET, "t")
        for other in (evolve(BUCKET, name="other"), evolve(BUCKET, backend_prefix="x")):
            with self.assertRaises(S3Error) as e:
                open_store_token(other, sealed)
            self.assertEqual(e.exception.code, "InvalidArgument")

    def test_garbage(self) -> None:
        """
        Tampered and malformed tokens are ``InvalidArgument``.
        """
        sealed = seal_store_token(BUCKET, "t")
        for bad in (
            "",
            "!!!",
            sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1],
        ):
            with self.assertRaises(S3Error) as e:
                open_store_token(BUCKET, bad)
            self.assertEqual(e.exception.code, "InvalidArgument")

    def test_secret(self) -> None:
        """
        With a deployment secret, only the same secret opens a token.
        """
        sealed = seal_store_token(BUCKET, "t", b"one")
        self.assertEqual(open_store_token(BUCKET, sealed, b"one"), "t")
        for other in (b"two", b""):
            with self.assertRaises(S3Error):
                open_store_token(BUCKET, sealed, other)
