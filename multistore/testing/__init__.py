# -*- test-case-name: tests.unit.test_testing -*-
"""
Test doubles for multistore's own tests and for authors of plug-ins:
complete fakes of its interfaces, and a harness that drives the whole site
in memory.

- L{MemoryStore}: an L{IObjectStore} in memory, with the semantics of the
  directory store (conditions, ranges, listings, multipart uploads, copies);
  L{MemoryStoreFactory} makes one per backend bucket.
- L{ScriptedForwarder}: an L{IForwarder} that records each backend request
  (and the body it read) and answers as scripted, for testing HTTP stores
  without sockets.
- L{DelayedBucketRegistry}: any L{IBucketRegistry}, answering later, as a
  registry behind a network service does.
- L{ControlledProducer}, L{ControlledBody}, L{RecordingBody} and
  L{CollectingConsumer}: bodies a test drives by hand, and a consumer that
  records what it is given.
- L{SiteHarness}: the real L{multistore.web.site} over an in-memory
  connection, for sending HTTP requests (bodies in pieces, if need be) and
  reading the answers (as slowly as a test likes), without sockets.

Each lives in a module of its own (L{multistore.testing.stores},
L{multistore.testing.forwarder}, L{multistore.testing.registries},
L{multistore.testing.bodies}, L{multistore.testing.harness}); import them
from here.

An example::

    from multistore.testing import MemoryStoreFactory, SiteHarness

    stores = MemoryStoreFactory()
    harness = SiteHarness.from_mapping(
        {
            "buckets": [
                {
                    "name": "photos",
                    "backend_type": "s3",
                    "backend_options": {"bucket_name": "photos"},
                }
            ],
            "credentials": [
                {
                    "access_key_id": "AKID",
                    "secret_access_key": "secret",
                    "principal_name": "alice",
                    "allowed_scopes": [{"bucket": "photos", "actions": ["put_object"]}],
                }
            ],
        },
        stores=stores,
    )
    response = harness.request(
        "PUT", "/photos/cat.jpg", body=b"meow", sign=("AKID", "secret")
    )
    assert response.status == 200
    assert stores.store_named("photos").data_of("cat.jpg") == b"meow"

    # A body sent in pieces, and read back in a slow client's steps:
    exchange = harness.open("PUT", "/photos/big", headers=[("content-length", "6")],
                            sign=("AKID", "secret"))
    exchange.send(b"abc")
    exchange.send(b"def")
    assert exchange.response().status == 200

Nothing in multistore imports this package.
"""

from __future__ import annotations

from multistore.testing.bodies import (
    CollectingConsumer,
    ControlledBody,
    ControlledProducer,
    RecordingBody,
    deliver_all,
)
from multistore.testing.forwarder import (
    Answer,
    ForwardedRequest,
    Handler,
    ScriptedForwarder,
    WrongBodyLength,
    respond,
)
from multistore.testing.harness import (
    HARNESS_EPOCH,
    Exchange,
    HarnessResponse,
    SiteHarness,
)
from multistore.testing.registries import DelayedBucketRegistry
from multistore.testing.stores import (
    MemoryStore,
    MemoryStoreFactory,
    StoreCall,
    backend_name,
)

__all__ = [
    "HARNESS_EPOCH",
    "Answer",
    "CollectingConsumer",
    "ControlledBody",
    "ControlledProducer",
    "DelayedBucketRegistry",
    "Exchange",
    "ForwardedRequest",
    "Handler",
    "HarnessResponse",
    "MemoryStore",
    "MemoryStoreFactory",
    "RecordingBody",
    "ScriptedForwarder",
    "SiteHarness",
    "StoreCall",
    "WrongBodyLength",
    "backend_name",
    "deliver_all",
    "respond",
]
