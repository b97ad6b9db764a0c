"""
Tests for L{multistore.testing}: the memory store against the same
behaviour as the directory store, the scripted forwarder, the delayed
registry, the bodies, and the site harness.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase

from multistore.config import BucketConfig
from multistore.interfaces import IObjectStore
from multistore.stores.local import LocalStore
from multistore.testing import MemoryStore
from tests.unit.store_behaviour import MIN_PART, StoreBehaviourMixin


class _InlineReactor:
    """
    The reactor as a directory store sees it: results from its pool come
    back at once; the time is the system's, as the files' times are.
    """

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)

    def seconds(self) -> float:
        return time.time()


class _QueuedPool(ThreadPool):
    """
    A pool whose calls wait until the test runs them, on its own thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[
            tuple[Callable[..., None], Callable[..., Any], tuple[Any, ...]]
        ] = []

    def callInThreadWithCallback(
        self,
        onResult: Callable[..., None],
        func: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self.queue.append((onResult, func, args))

    def run_all(self) -> None:
        while self.queue:
            on_result, func, args = self.queue.pop(0)
            try:
                result = func(*args)
            except BaseException:
                on_result(False, Failure())
            else:
                on_result(True, result)


class MemoryStoreBehaviourTests(StoreBehaviourMixin, SynchronousTestCase):
    """
    L{MemoryStore} behaves as a store should.
    """

    def make_store(self) -> IObjectStore:
        return MemoryStore(name="behaviour", min_part_size=MIN_PART)

    def this_bucket(self) -> BucketConfig:
        return BucketConfig(
            name="b", backend_type="s3", backend_options={"bucket_name": "behaviour"}
        )


class LocalStoreBehaviourTests(StoreBehaviourMixin, SynchronousTestCase):
    """
    The directory store behaves the same.
    """

    def make_store(self) -> IObjectStore:
        self.root = tempfile.mkdtemp(prefix="multistore-behaviour-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.pool = _QueuedPool()
        reactor = _InlineReactor()
        return LocalStore(
            root=os.path.abspath(self.root),
            reactor=reactor,  # type: ignore[arg-type]
            threadpool=self.pool,
            clock=reactor,  # type: ignore[arg-type]
            min_part_size=MIN_PART,
            fsync=False,
        )

    def settle(self) -> None:
        self.pool.run_all()

    def this_bucket(self) -> BucketConfig:
        return BucketConfig(
            name="b",
            backend_type="file",
            backend_options={"root": os.path.abspath(self.root)},
        )
