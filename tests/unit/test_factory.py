"""
Tests for L{multistore.stores.factory}.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorThreads
from twisted.internet.testing import MemoryReactorClock
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from multistore.config import BucketConfig
from multistore.interfaces import IObjectStore, IStoreFactory
from multistore.s3.errors import S3Error
from multistore.stores.azure import AzureStore
from multistore.stores.factory import StoreFactory
from multistore.stores.gcs import GcsStore, xml_api_bucket
from multistore.stores.local import LocalStore
from multistore.stores.s3.store import S3Store
from multistore.testing import ScriptedForwarder


@implementer(IReactorThreads)
class FakeReactor(MemoryReactorClock):
    """
    A reactor with time and a thread pool that is never started (stores are
    only made here, not used).
    """

    def __init__(self) -> None:
        super().__init__()
        self.pool = ThreadPool()

    def getThreadPool(self) -> ThreadPool:
        """
        :return: the idle pool.
        """
        return self.pool

    def callInThread(
        self, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> None:
        """
        Refuse: nothing here may run in a thread.
        """
        raise AssertionError("nothing may run in a thread")

    def callFromThread(
        self, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> None:
        """
        Refuse: nothing here runs in a thread.
        """
        raise AssertionError("nothing runs in a thread")

    def suggestThreadPoolSize(self, size: int) -> None:
        """
        Ignore the suggestion.
        """


class StoreFactoryTests(SynchronousTestCase):
    """
    L{StoreFactory} makes the store of a bucket's ``backend_type``.
    """

    def setUp(self) -> None:
        # No answers: a request sent while making a store fails the test.
        self.forwarder = ScriptedForwarder()
        self.reactor = FakeReactor()
        # Never started: stores are only made, not used.
        self.threadpool = ThreadPool()
        self.factory = StoreFactory(self.forwarder, self.reactor, self.threadpool)

    def test_interface(self) -> None:
        """
        The factory is an L{IStoreFactory}.
        """
        verifyObject(IStoreFactory, self.factory)

    def test_s3(self) -> None:
        """
        An ``s3`` bucket gets an L{S3Store} with the factory's forwarder and
        clock.
        """
        bucket = BucketConfig(
            name="b",
            backend_type="s3",
            backend_options={"endpoint": "http://s3.test", "bucket_name": "real"},
        )
        store = self.factory.store_for(bucket)
        self.assertIsInstance(store, S3Store)
        verifyObject(IObjectStore, store)
        assert isinstance(store, S3Store)
        self.assertIs(store.bucket, bucket)
        self.assertIs(store.forwarder, self.forwarder)
        self.assertIs(store.clock, self.reactor)
        self.assertEqual(store.url("k"), "http://s3.test/real/k")

    def test_file(self) -> None:
        """
        A ``file`` bucket gets a L{LocalStore} over its root, using the
        factory's thread pool.
        """
        scratch = tempfile.mkdtemp(prefix="multistore-test-")
        self.addCleanup(shutil.rmtree, scratch, True)
        root = os.path.join(scratch, "root")
        bucket = BucketConfig(
            name="b", backend_type="file", backend_options={"root": root}
        )
        store = self.factory.store_for(bucket)
        self.assertIsInstance(store, LocalStore)
        verifyObject(IObjectStore, store)
        self.assertEqual(
            store,
            LocalStore.for_bucket(bucket, self.reactor, self.reactor, self.threadpool),
        )

    def test_per_call(self) -> None:
        """
        Each call makes a store for the configuration it is given (middleware
        may change it between requests).
        """
        first = BucketConfig(
            name="b", backend_type="s3", backend_options={"bucket_name": "one"}
        )
        second = BucketConfig(
            name="b", backend_type="s3", backend_options={"bucket_name": "two"}
        )
        one = self.factory.store_for(first)
        two = self.factory.store_for(second)
        assert isinstance(one, S3Store) and isinstance(two, S3Store)
        self.assertEqual((one.bucket, two.bucket), (first, second))

    def test_cloud_stores(self) -> None:
        """
        Azure and GCS buckets get their stores, over the factory's forwarder.
        """
        azure = BucketConfig(
            name="a",
            backend_type="azure",
            backend_options={"account_name": "acct", "container_name": "c"},
        )
        gcs = BucketConfig(
            name="g", backend_type="gcs", backend_options={"bucket_name": "g"}
        )
        for bucket, kind in ((azure, AzureStore), (gcs, GcsStore)):
            store = self.factory.store_for(bucket)
            self.assertIsInstance(store, kind)
            self.assertTrue(verifyObject(IObjectStore, store))
            self.assertIs(store.forwarder, self.forwarder)

    def test_gcs_hmac(self) -> None:
        """
        A GCS bucket with HMAC keys gets an L{S3Store} on GCS's XML API
        (the JSON API takes no HMAC signatures), chosen once, when the store
        is made; one with a service account key gets a L{GcsStore}.
        """
        hmac = {
            "endpoint": "http://gcs.test:4443",
            "bucket_name": "g",
            "access_key_id": "GOOG1KEY",
            "secret_access_key": "secret",
        }
        bucket = BucketConfig(name="g", backend_type="gcs", backend_options=hmac)
        store = self.factory.store_for(bucket)
        assert isinstance(store, S3Store)
        self.assertTrue(verifyObject(IObjectStore, store))
        self.assertEqual(store.bucket, xml_api_bucket(bucket))
        self.assertEqual(store.url("k"), "http://gcs.test:4443/g/k")
        self.assertIs(store.forwarder, self.forwarder)
        keyed = BucketConfig(
            name="g",
            backend_type="gcs",
            backend_options={**hmac, "service_account_key": "{}"},
        )
        self.assertIsInstance(self.factory.store_for(keyed), GcsStore)

    def test_not_implemented(self) -> None:
        """
        A kind the factory does not know is ``NotImplemented`` (501), naming
        the kind.
        """
        bucket = BucketConfig(name="b", backend_type="other")
        error = self.assertRaises(S3Error, self.factory.store_for, bucket)
        self.assertEqual((error.code, error.status), ("NotImplemented", 501))
        self.assertIn("other", error.message)
