# -*- test-case-name: tests.unit.test_gateway -*-
"""
Which buckets exist, for buckets that are prefixes of one backend bucket
(a pattern with C{{bucket}} in its backend prefix): such a bucket exists
while its marker object does, and the answer is cached for a while.
"""

from __future__ import annotations

from typing import Final

from attrs import define, field
from twisted.internet.interfaces import IReactorTime

from multistore.interfaces import IObjectStore
from multistore.model import ListRequest, ResolvedBucket
from multistore.s3.errors import S3Error
from multistore.s3.keys import to_backend

#: Seconds a shared-prefix bucket found to exist is taken for granted (so
#: another instance may take this long to notice a deletion).
KNOWN_BUCKET_SECONDS: Final = 10.0


def bucket_marker(bucket: ResolvedBucket) -> str | None:
    """
    For a bucket that a pattern makes a prefix of a shared backend bucket:
    the key of the marker object whose presence means the bucket exists.
    ``None`` for other buckets.
    """
    if bucket.pattern is None or not bucket.pattern.shares_backend_bucket:
        return None
    return to_backend(bucket.config.backend_prefix, "")


async def marker_exists(store: IObjectStore, marker: str) -> bool:
    """
    Whether a shared bucket's marker (see L{bucket_marker}) is in ``store``.

    A listing says, not a HEAD of the marker: SeaweedFS answers a HEAD of
    ``prefix/`` with 200 for the directory that any key below it made, and
    keeps that directory after the key and the marker are deleted. The
    marker is the first key of a listing of its own prefix.
    """
    page = await store.list_objects(ListRequest(prefix=marker, max_keys=1))
    return any(o.key == marker for o in page.objects)


@define
class BucketPresence:
    """
    Remembers which shared-prefix buckets were recently found to exist.

    :ivar _clock: the time; without one every check asks the store.
    """

    _clock: IReactorTime | None = None
    _known: dict[tuple[str, str], float] = field(factory=dict)

    async def require(self, bucket: ResolvedBucket, store: IObjectStore) -> None:
        """
        :raise S3Error: ``NoSuchBucket`` if ``bucket`` is a shared-prefix
            bucket whose marker is not there.
        """
        marker = bucket_marker(bucket)
        if marker is None:
            return
        key = (bucket.name, marker)
        now = self._clock.seconds() if self._clock is not None else None
        seen = self._known.get(key)
        if now is not None and seen is not None and now - seen < KNOWN_BUCKET_SECONDS:
            return
        if not await marker_exists(store, marker):
            self._known.pop(key, None)
            raise S3Error("NoSuchBucket", extra=(("BucketName", bucket.name),))
        if now is not None:
            self._known[key] = now

    def forget(self, bucket: ResolvedBucket) -> None:
        """
        A shared-prefix bucket was deleted: stop taking it for granted.
        """
        marker = bucket_marker(bucket)
        if marker is not None:
            self._known.pop((bucket.name, marker), None)
