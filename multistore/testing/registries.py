# -*- test-case-name: tests.unit.test_testing -*-
"""
L{DelayedBucketRegistry}: any L{IBucketRegistry}, answering later, as a
registry behind a network service does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar, cast

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from multistore.interfaces import IBucketRegistry
from multistore.model import (
    BucketEntry,
    Identity,
    Operation,
    ResolvedBucket,
)

_T = TypeVar("_T")


@implementer(IBucketRegistry)
@define(eq=False)
class DelayedBucketRegistry:
    """
    An L{IBucketRegistry} that answers as another does, ``delay`` seconds
    later on ``clock``, as a registry behind a network service would: every
    answer is a Deferred that has not fired when it is returned.

    :ivar calls: the names of the methods called, in order.
    :ivar pending: answers not given yet.
    """

    _registry: IBucketRegistry
    _clock: IReactorTime
    delay: float = 1.0
    calls: list[str] = field(factory=list)
    pending: int = 0

    @property
    def owner_id(self) -> str:
        """
        The owner ID of the registry it answers for.
        """
        return cast(str, self._registry.owner_id)

    @property
    def owner_display_name(self) -> str:
        """
        The owner display name of the registry it answers for.
        """
        return cast(str, self._registry.owner_display_name)

    def _later(self, name: str, answer: Deferred[_T]) -> Deferred[_T]:
        self.calls.append(name)
        self.pending += 1
        result: Deferred[_T] = Deferred()

        def give(outcome: _T | Failure) -> None:
            self.pending -= 1
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)

        def hold(outcome: _T | Failure) -> None:
            self._clock.callLater(self.delay, give, outcome)

        answer.addBoth(hold)
        return result

    def resolve(
        self, name: str, identity: Identity, operation: Operation
    ) -> Deferred[ResolvedBucket]:
        return self._later("resolve", self._registry.resolve(name, identity, operation))

    def list_buckets(self, identity: Identity) -> Deferred[Sequence[BucketEntry]]:
        return self._later("list_buckets", self._registry.list_buckets(identity))

    def authorize_keys(
        self,
        bucket: ResolvedBucket,
        identity: Identity,
        action: str,
        keys: Sequence[str],
    ) -> Deferred[Sequence[bool]]:
        return self._later(
            "authorize_keys",
            self._registry.authorize_keys(bucket, identity, action, keys),
        )
