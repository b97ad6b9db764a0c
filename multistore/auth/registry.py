# -*- test-case-name: tests.unit.test_registry -*-
"""
The registries backed by the configuration file.

A deployment with buckets or keys in a database provides
L{IBucketRegistry} and L{ICredentialRegistry} itself; these are the defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from attrs import frozen
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from multistore.auth.authorize import (
    bucket_matches,
    could_name_bucket,
    is_allowed,
    may_act_somewhere,
    may_use_bucket,
)
from multistore.config import BucketConfig, Config, RoleConfig, StoredCredential
from multistore.interfaces import IBucketRegistry, ICredentialRegistry
from multistore.model import BucketEntry, Identity, Operation, ResolvedBucket
from multistore.s3.errors import S3Error
from multistore.s3.keys import valid_bucket_name

#: Operations whose keys are in the request body: the bucket is checked for
#: the action on any key, and each key on its own later.
KEYS_IN_BODY: Final = frozenset({"DeleteObjects"})

#: The creation date ListBuckets reports for configured buckets.
CREATION_DATE: Final = datetime(2024, 1, 1, tzinfo=UTC)


def _index_buckets(buckets: Sequence[BucketConfig]) -> dict[str, BucketConfig]:
    return {b.name: b for b in buckets if not b.is_pattern}


def _patterns(buckets: Sequence[BucketConfig]) -> tuple[BucketConfig, ...]:
    return tuple(b for b in buckets if b.is_pattern)


@implementer(IBucketRegistry)
@frozen
class StaticBucketRegistry:
    """
    Buckets from the configuration file.
    """

    _buckets: dict[str, BucketConfig]
    _patterns: tuple[BucketConfig, ...] = ()
    owner_id: str = "multistore"
    owner_display_name: str = "multistore"

    @classmethod
    def from_config(cls, config: Config) -> StaticBucketRegistry:
        """
        :return: a registry of ``config``'s buckets and bucket patterns.
        """
        return cls(
            _index_buckets(config.buckets),
            _patterns(config.buckets),
            config.owner_id,
            config.owner_display_name,
        )

    def _find(self, name: str) -> ResolvedBucket | None:
        bucket = self._buckets.get(name)
        if bucket is not None:
            return ResolvedBucket(name=name, config=bucket, display_name=name)
        if not valid_bucket_name(name):
            return None
        for pattern in self._patterns:
            if bucket_matches(pattern.name, name):
                return ResolvedBucket(
                    name=name,
                    config=pattern.instantiate(name),
                    display_name=name,
                    pattern=pattern,
                )
        return None

    def resolve(
        self, name: str, identity: Identity, operation: Operation
    ) -> Deferred[ResolvedBucket]:
        resolved = self._find(name)
        if resolved is None:
            if could_name_bucket(identity, name):
                return fail(S3Error("NoSuchBucket", extra=(("BucketName", name),)))
            return fail(S3Error("AccessDenied"))
        bucket = resolved.config
        if operation.action is None:
            allowed = may_use_bucket(identity, bucket)
        elif operation.name in KEYS_IN_BODY:
            allowed = may_act_somewhere(identity, bucket, operation.action)
        else:
            allowed = is_allowed(
                identity, bucket, operation.action, operation.authz_key
            )
        if not allowed:
            return fail(S3Error("AccessDenied"))
        return succeed(resolved)

    def list_buckets(self, identity: Identity) -> Deferred[Sequence[BucketEntry]]:
        return succeed(
            [
                BucketEntry(name=b.name, creation_date=CREATION_DATE)
                for name, b in sorted(self._buckets.items())
                if may_use_bucket(identity, b)
            ]
        )

    def authorize_keys(
        self,
        bucket: ResolvedBucket,
        identity: Identity,
        action: str,
        keys: Sequence[str],
    ) -> Deferred[Sequence[bool]]:
        return succeed([is_allowed(identity, bucket.config, action, k) for k in keys])


@implementer(ICredentialRegistry)
@frozen
class StaticCredentialRegistry:
    """
    Access keys and roles from the configuration file.
    """

    _credentials: dict[str, StoredCredential]
    _roles: dict[str, RoleConfig]

    @classmethod
    def from_config(cls, config: Config) -> StaticCredentialRegistry:
        """
        :return: a registry of ``config``'s credentials and roles.
        """
        return cls(
            {c.access_key_id: c for c in config.credentials},
            {r.role_id: r for r in config.roles},
        )

    def get_credential(self, access_key_id: str) -> Deferred[StoredCredential | None]:
        return succeed(self._credentials.get(access_key_id))

    def get_role(self, role_id: str) -> Deferred[RoleConfig | None]:
        return succeed(self._roles.get(role_id))
