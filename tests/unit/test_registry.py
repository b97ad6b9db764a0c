"""
Tests for L{multistore.auth.registry}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from multistore.auth.registry import StaticBucketRegistry, StaticCredentialRegistry
from multistore.config import AccessScope, BucketConfig, Config, StoredCredential
from multistore.interfaces import IBucketRegistry, ICredentialRegistry
from multistore.model import ANONYMOUS, Identity, Operation
from multistore.s3.errors import S3Error

CONFIG = Config(
    buckets=(
        BucketConfig(name="public", backend_type="file", anonymous_access=True),
        BucketConfig(name="private", backend_type="s3"),
    ),
    credentials=(
        StoredCredential(
            access_key_id="AK",
            secret_access_key="SK",
            principal_name="p",
            allowed_scopes=(
                AccessScope("private", ("a/",), frozenset({"get_object"})),
            ),
        ),
    ),
)
READER = Identity(
    kind="static", principal="p", scopes=CONFIG.credentials[0].allowed_scopes
)
ALL = Identity(
    kind="static",
    principal="q",
    scopes=(AccessScope("*", (), frozenset({"get_object"})),),
)


def get(key: str) -> Operation:
    return Operation(name="GetObject", action="get_object", bucket="x", key=key)


class StaticBucketRegistryTests(SynchronousTestCase):
    """
    Tests for L{StaticBucketRegistry}.
    """

    def setUp(self) -> None:
        self.registry = StaticBucketRegistry.from_config(CONFIG)

    def test_interface(self) -> None:
        """
        It provides L{IBucketRegistry}.
        """
        self.assertTrue(verifyObject(IBucketRegistry, self.registry))

    def test_resolve(self) -> None:
        """
        An allowed operation resolves to the bucket.
        """
        resolved = self.successResultOf(
            self.registry.resolve("private", READER, get("a/x"))
        )
        self.assertEqual(
            (resolved.name, resolved.config.backend_type), ("private", "s3")
        )

    def test_denied(self) -> None:
        """
        An operation outside the caller's scopes is ``AccessDenied``.
        """
        failure = self.failureResultOf(
            self.registry.resolve("private", READER, get("b/x")), S3Error
        )
        self.assertEqual(failure.value.code, "AccessDenied")

    def test_existence_hidden(self) -> None:
        """
        A missing bucket is ``AccessDenied`` for callers who could not use a
        bucket by that name, and ``NoSuchBucket`` only for those who could.
        """
        for identity, code in [
            (ANONYMOUS, "AccessDenied"),
            (READER, "AccessDenied"),
            (ALL, "NoSuchBucket"),
        ]:
            failure = self.failureResultOf(
                self.registry.resolve("nope", identity, get("k")), S3Error
            )
            self.assertEqual(failure.value.code, code)
        # And an existing private bucket looks the same as a missing one.
        failure = self.failureResultOf(
            self.registry.resolve("private", ANONYMOUS, get("k")), S3Error
        )
        self.assertEqual(failure.value.code, "AccessDenied")

    def test_list_buckets(self) -> None:
        """
        ListBuckets shows only the buckets the caller may use.
        """

        def names(identity: Identity) -> list[str]:
            listed = self.successResultOf(self.registry.list_buckets(identity))
            return [b.name for b in listed]

        self.assertEqual(names(ANONYMOUS), ["public"])
        self.assertEqual(names(READER), ["private", "public"])
        self.assertEqual(names(ALL), ["private", "public"])


class StaticCredentialRegistryTests(SynchronousTestCase):
    """
    Tests for L{StaticCredentialRegistry}.
    """

    def test_lookup(self) -> None:
        """
        Credentials are found by access key id.
        """
        registry = StaticCredentialRegistry.from_config(CONFIG)
        self.assertTrue(verifyObject(ICredentialRegistry, registry))
        found = self.successResultOf(registry.get_credential("AK"))
        assert found is not None
        self.assertEqual(found.principal_name, "p")
        self.assertIsNone(self.successResultOf(registry.get_credential("nope")))
        self.assertIsNone(self.successResultOf(registry.get_role("nope")))


class PatternTests(SynchronousTestCase):
    """
    Buckets that a pattern stands for.
    """

    def setUp(self) -> None:
        config = Config(
            buckets=(
                BucketConfig(name="team-fixed", backend_type="s3"),
                BucketConfig(
                    name="team-*",
                    backend_type="s3",
                    backend_prefix="tenants/{bucket}",
                    backend_options={"bucket_name": "shared"},
                ),
                BucketConfig(
                    name="own-*",
                    backend_type="s3",
                    backend_options={"bucket_name": "{bucket}"},
                ),
            )
        )
        self.registry = StaticBucketRegistry.from_config(config)
        self.caller = Identity(
            kind="static",
            principal="p",
            scopes=(AccessScope("*", (), frozenset({"get_object", "create_bucket"})),),
        )

    def resolve(self, name: str) -> object:
        op = Operation(name="CreateBucket", action="create_bucket", bucket=name)
        return self.successResultOf(self.registry.resolve(name, self.caller, op))

    def test_instantiated(self) -> None:
        """
        A name a pattern matches gets the pattern's configuration with the
        name filled in; a configured name wins over a pattern.
        """
        team = self.resolve("team-a")
        self.assertEqual(team.config.backend_prefix, "tenants/team-a")  # type: ignore[attr-defined]
        self.assertTrue(team.pattern.shares_backend_bucket)  # type: ignore[attr-defined]
        own = self.resolve("own-b")
        self.assertEqual(own.config.option("bucket_name"), "own-b")  # type: ignore[attr-defined]
        self.assertFalse(own.pattern.shares_backend_bucket)  # type: ignore[attr-defined]
        self.assertIsNone(self.resolve("team-fixed").pattern)  # type: ignore[attr-defined]

    def test_invalid_names(self) -> None:
        """
        Only valid S3 bucket names are matched, so nothing odd reaches a
        backend prefix or a store name.
        """
        for name in ("team-A", "team-a..b", "team-", "own-1.2.3.4"[:4] + "x" * 70):
            op = Operation(name="CreateBucket", action="create_bucket", bucket=name)
            failure = self.failureResultOf(
                self.registry.resolve(name, self.caller, op), S3Error
            )
            self.assertEqual(failure.value.code, "NoSuchBucket", name)

    def test_not_listed(self) -> None:
        """
        Patterns are not buckets: ListBuckets shows the configured ones.
        """
        listed = self.successResultOf(self.registry.list_buckets(self.caller))
        self.assertEqual([b.name for b in listed], ["team-fixed"])
