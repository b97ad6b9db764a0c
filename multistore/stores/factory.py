# -*- test-case-name: tests.unit.test_factory -*-
"""
Choosing the store for a bucket by its ``backend_type``.

The choice is made here, once per store: a GCS bucket with HMAC keys is
served through GCS's XML API by an L{S3Store}, any other GCS bucket through
the JSON API by a L{GcsStore} (see
L{multistore.stores.gcs.store.xml_api_bucket}).
"""

from __future__ import annotations

from typing import Any

from attrs import frozen
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from multistore.config import BucketConfig
from multistore.interfaces import IForwarder, IObjectStore, IStoreFactory
from multistore.s3.errors import S3Error
from multistore.stores.azure import AzureStore
from multistore.stores.gcs import GcsStore, xml_api_bucket
from multistore.stores.local import LocalStore
from multistore.stores.s3.store import S3Store


@implementer(IStoreFactory)
@frozen
class StoreFactory:
    """
    Makes S3, Azure Blob, Google Cloud Storage and local-directory stores.

    :ivar forwarder: the HTTP transport of the stores on HTTP services.
    :ivar reactor: the reactor (time, and threads for local stores).
    :ivar threadpool: where local stores do their file I/O.
    """

    forwarder: IForwarder
    reactor: Any
    threadpool: ThreadPool

    def store_for(self, bucket: BucketConfig) -> IObjectStore:
        if bucket.backend_type == "s3":
            return S3Store(bucket, self.forwarder, self.reactor)
        if bucket.backend_type == "azure":
            return AzureStore(bucket, self.forwarder, self.reactor)
        if bucket.backend_type == "gcs":
            on_xml_api = xml_api_bucket(bucket)
            if on_xml_api is not None:
                return S3Store(on_xml_api, self.forwarder, self.reactor)
            return GcsStore(bucket, self.forwarder, self.reactor)
        if bucket.backend_type == "file":
            return LocalStore.for_bucket(
                bucket, self.reactor, self.reactor, self.threadpool
            )
        raise S3Error(
            "NotImplemented",
            f"Buckets on '{bucket.backend_type}' stores are not served by this version.",
        )
