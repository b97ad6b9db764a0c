# -*- test-case-name: tests.unit.test_authorize -*-
"""
Authorization: may this identity perform this action on this key of this
bucket?

The rules (also in ``docs/authorization.md``):

- A scope matches a bucket when its ``bucket`` equals the bucket's name, or is
  a glob that matches it (``*`` matches any run of characters, so ``*`` alone
  is every bucket and ``team-*`` every bucket whose name starts ``team-``).
- A scope covers a key when it has no prefixes, or one of its prefixes
  matches: a prefix that is empty or ends in ``/`` matches every key that
  starts with it; any other prefix matches the key equal to it and the keys
  under ``prefix + "/"``, so ``data`` does not cover ``data-private/x``.
- A listing is checked with its ``prefix`` parameter as the key.
- ``get_object`` also grants ``head_object``.
- ``anonymous_access`` on a bucket lets anyone (signed or not) read, head and
  list it; nothing else is ever granted anonymously.
- A bucket whose ``allowed_roles`` is not empty admits STS sessions only of
  those roles; static credentials are not affected.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from multistore.config import ANONYMOUS_ACTIONS, AccessScope, BucketConfig
from multistore.model import Identity

#: Actions implied by another granted action.
_IMPLIED: Final = {"head_object": frozenset({"get_object"})}


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(
        ".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL
    )


def bucket_matches(pattern: str, name: str) -> bool:
    """
    :return: whether a scope's ``bucket`` pattern matches bucket ``name``.
    """
    if "*" not in pattern:
        return pattern == name
    return _glob(pattern).fullmatch(name) is not None


def prefix_matches(prefix: str, key: str) -> bool:
    """
    :return: whether scope prefix ``prefix`` covers ``key`` (the boundary
        rule in the module docstring).
    """
    if prefix == "" or prefix.endswith("/"):
        return key.startswith(prefix)
    return key == prefix or key.startswith(prefix + "/")


def scope_allows(scope: AccessScope, bucket: str, action: str, key: str) -> bool:
    """
    :return: whether one scope grants ``action`` on ``key`` in ``bucket``.
    """
    if not bucket_matches(scope.bucket, bucket):
        return False
    granted = action in scope.actions or bool(
        _IMPLIED.get(action, frozenset()) & scope.actions
    )
    if not granted:
        return False
    return not scope.prefixes or any(prefix_matches(p, key) for p in scope.prefixes)


def _role_admitted(identity: Identity, bucket: BucketConfig) -> bool:
    if identity.kind != "session" or not bucket.allowed_roles:
        return True
    return identity.role in bucket.allowed_roles


def is_allowed(identity: Identity, bucket: BucketConfig, action: str, key: str) -> bool:
    """
    :return: whether ``identity`` may perform ``action`` on ``key`` in
        ``bucket``.
    """
    if bucket.anonymous_access and action in ANONYMOUS_ACTIONS:
        return True
    if identity.anonymous or not _role_admitted(identity, bucket):
        return False
    return any(scope_allows(s, bucket.name, action, key) for s in identity.scopes)


def may_act_somewhere(identity: Identity, bucket: BucketConfig, action: str) -> bool:
    """
    :return: whether ``identity`` may perform ``action`` on at least some
        keys of ``bucket`` (for operations that name their keys in the body,
        such as DeleteObjects, which then checks each key).
    """
    if bucket.anonymous_access and action in ANONYMOUS_ACTIONS:
        return True
    if identity.anonymous or not _role_admitted(identity, bucket):
        return False
    return any(
        bucket_matches(s.bucket, bucket.name)
        and (action in s.actions or bool(_IMPLIED.get(action, frozenset()) & s.actions))
        for s in identity.scopes
    )


def may_use_bucket(identity: Identity, bucket: BucketConfig) -> bool:
    """
    :return: whether ``identity`` may do anything at all with ``bucket``
        (HeadBucket, GetBucketLocation, ListBuckets).
    """
    if bucket.anonymous_access:
        return True
    if identity.anonymous or not _role_admitted(identity, bucket):
        return False
    return any(
        bucket_matches(s.bucket, bucket.name) and s.actions for s in identity.scopes
    )


def could_name_bucket(identity: Identity, name: str) -> bool:
    """
    :return: whether some scope of ``identity`` would cover a bucket called
        ``name``, so telling it that no such bucket exists leaks nothing.
    """
    return any(bucket_matches(s.bucket, name) for s in identity.scopes)
