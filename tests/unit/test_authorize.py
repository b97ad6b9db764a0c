"""
Tests for L{multistore.auth.authorize}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from multistore.auth.authorize import (
    bucket_matches,
    could_name_bucket,
    is_allowed,
    may_use_bucket,
    prefix_matches,
)
from multistore.config import AccessScope, BucketConfig
from multistore.model import ANONYMOUS, Identity

PUBLIC = BucketConfig(name="public", backend_type="s3", anonymous_access=True)
PRIVATE = BucketConfig(name="private", backend_type="s3")
ROLES = BucketConfig(name="ci", backend_type="s3", allowed_roles=("deployer",))


def user(
    *scopes: AccessScope, kind: str = "static", role: str | None = None
) -> Identity:
    return Identity(kind=kind, principal="p", scopes=scopes, role=role)  # type: ignore[arg-type]


def scope(bucket: str, *actions: str, prefixes: tuple[str, ...] = ()) -> AccessScope:
    return AccessScope(bucket=bucket, prefixes=prefixes, actions=frozenset(actions))


class PatternTests(SynchronousTestCase):
    """
    Tests for L{bucket_matches} and L{prefix_matches}.
    """

    def test_bucket_globs(self) -> None:
        """
        ``*`` matches any run of characters; other characters are literal.
        """
        self.assertTrue(bucket_matches("*", "anything"))
        self.assertTrue(bucket_matches("team-*", "team-a"))
        self.assertTrue(bucket_matches("a*c", "abbbc"))
        self.assertFalse(bucket_matches("team-*", "teams"))
        self.assertFalse(bucket_matches("a.c", "abc"))
        self.assertFalse(bucket_matches("data", "data2"))

    def test_prefix_boundary(self) -> None:
        """
        A prefix without a trailing slash covers itself and what is below
        it, never a sibling that merely starts with the same text.
        """
        self.assertTrue(prefix_matches("data", "data"))
        self.assertTrue(prefix_matches("data", "data/x"))
        self.assertFalse(prefix_matches("data", "data-private/x"))
        self.assertFalse(prefix_matches("data", "dat"))
        self.assertTrue(prefix_matches("data/", "data/x"))
        self.assertFalse(prefix_matches("data/", "data"))
        self.assertTrue(prefix_matches("", "anything"))


class IsAllowedTests(SynchronousTestCase):
    """
    Tests for L{is_allowed}.
    """

    def test_anonymous(self) -> None:
        """
        Anonymous callers may read, head and list a public bucket, and do
        nothing else anywhere.
        """
        for action in ("get_object", "head_object", "list_bucket"):
            self.assertTrue(is_allowed(ANONYMOUS, PUBLIC, action, "k"))
            self.assertFalse(is_allowed(ANONYMOUS, PRIVATE, action, "k"))
        for action in ("put_object", "delete_object", "get_object_version"):
            self.assertFalse(is_allowed(ANONYMOUS, PUBLIC, action, "k"))

    def test_authenticated_inherit_public_reads(self) -> None:
        """
        A signed caller can read a public bucket too, but not write to it
        without a grant.
        """
        someone = user(scope("other", "get_object"))
        self.assertTrue(is_allowed(someone, PUBLIC, "get_object", "k"))
        self.assertFalse(is_allowed(someone, PUBLIC, "put_object", "k"))

    def test_scopes(self) -> None:
        """
        A scope grants its actions, on its prefixes, in matching buckets.
        """
        someone = user(
            scope("private", "get_object", "list_bucket", prefixes=("data",))
        )
        self.assertTrue(is_allowed(someone, PRIVATE, "get_object", "data/x"))
        self.assertTrue(is_allowed(someone, PRIVATE, "list_bucket", "data/"))
        self.assertFalse(is_allowed(someone, PRIVATE, "list_bucket", ""))
        self.assertFalse(is_allowed(someone, PRIVATE, "get_object", "data-private/x"))
        self.assertFalse(is_allowed(someone, PRIVATE, "put_object", "data/x"))
        self.assertFalse(
            is_allowed(
                someone,
                PUBLIC.__class__(name="other", backend_type="s3"),
                "get_object",
                "data/x",
            )
        )

    def test_wildcard_bucket(self) -> None:
        """
        ``bucket = "*"`` means every bucket.
        """
        someone = user(scope("*", "get_object"))
        self.assertTrue(is_allowed(someone, PRIVATE, "get_object", "x"))

    def test_get_implies_head(self) -> None:
        """
        ``get_object`` also allows ``head_object`` (HeadObject needs read
        permission in S3), but not the other way round.
        """
        self.assertTrue(
            is_allowed(
                user(scope("private", "get_object")), PRIVATE, "head_object", "k"
            )
        )
        self.assertFalse(
            is_allowed(
                user(scope("private", "head_object")), PRIVATE, "get_object", "k"
            )
        )

    def test_allowed_roles(self) -> None:
        """
        A bucket with ``allowed_roles`` admits sessions of those roles only;
        static credentials are not affected.
        """
        grant = scope("ci", "get_object")
        self.assertTrue(
            is_allowed(
                user(grant, kind="session", role="deployer"), ROLES, "get_object", "k"
            )
        )
        self.assertFalse(
            is_allowed(
                user(grant, kind="session", role="reader"), ROLES, "get_object", "k"
            )
        )
        self.assertTrue(is_allowed(user(grant), ROLES, "get_object", "k"))
        self.assertFalse(
            may_use_bucket(user(grant, kind="session", role="reader"), ROLES)
        )


class VisibilityTests(SynchronousTestCase):
    """
    Tests for L{may_use_bucket} and L{could_name_bucket}.
    """

    def test_may_use(self) -> None:
        """
        A bucket is usable by anyone when public, else by identities with a
        scope on it.
        """
        self.assertTrue(may_use_bucket(ANONYMOUS, PUBLIC))
        self.assertFalse(may_use_bucket(ANONYMOUS, PRIVATE))
        self.assertTrue(may_use_bucket(user(scope("priv*", "get_object")), PRIVATE))
        self.assertFalse(may_use_bucket(user(scope("other", "get_object")), PRIVATE))

    def test_could_name(self) -> None:
        """
        Only identities whose scopes cover a name may learn it does not
        exist.
        """
        self.assertFalse(could_name_bucket(ANONYMOUS, "x"))
        self.assertTrue(could_name_bucket(user(scope("*", "get_object")), "x"))
        self.assertFalse(could_name_bucket(user(scope("y", "get_object")), "x"))
