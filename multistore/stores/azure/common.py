# -*- test-case-name: tests.unit.test_azure_store -*-
"""
What the parts of L{multistore.stores.azure.store.AzureStore} share: the
store as its mixins see it (L{AzureStoreBase}), and the helpers more than
one of them uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final, NoReturn, Protocol, TypeVar

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IBodyProducer

from multistore.config import BucketConfig
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import IObjectStore
from multistore.model import BackendResponse, CopyResult, CopySource
from multistore.s3.errors import S3Error
from multistore.stores.azure.auth import encode_metadata_name
from multistore.stores.azure.xml import BlobListing
from multistore.stores.object_headers import content_header

_T = TypeVar("_T")


#: Largest listing or block list read from Azure.
MAX_LISTING: Final = 8 * 1024 * 1024


#: S3 content headers and the blob properties that hold them.
_CONTENT_PROPERTIES: Final = (
    ("content-type", "x-ms-blob-content-type"),
    ("content-encoding", "x-ms-blob-content-encoding"),
    ("content-language", "x-ms-blob-content-language"),
    ("content-disposition", "x-ms-blob-content-disposition"),
    ("cache-control", "x-ms-blob-cache-control"),
)


def _quoted(etag: str) -> str:
    etag = etag.strip()
    return etag if etag.startswith('"') else f'"{etag}"'


def object_properties(headers: HeaderList) -> HeaderList:
    """
    Translate what an S3 write says about its object into Azure headers.

    :param headers: S3 request headers.
    :return: ``x-ms-blob-*`` content properties and ``x-ms-meta-*``
        metadata (names encoded, see L{encode_metadata_name}); everything
        else is dropped.
    """
    out: list[tuple[str, str]] = []
    for s3_name, azure_name in _CONTENT_PROPERTIES:
        value = content_header(headers, s3_name)
        if value is not None:
            out.append((azure_name, value))
    for name, value in headers:
        if name.startswith("x-amz-meta-"):
            meta = name[len("x-amz-meta-") :]
            out.append(("x-ms-meta-" + encode_metadata_name(meta), value))
    return HeaderList(out)


class AzureStoreBase(Protocol):
    """
    The store as its mixins (L{multistore.stores.azure.reads.Reads} and the
    others L{multistore.stores.azure.store.AzureStore} inherits) see it:
    what they use of the store, or of each other. Every member is
    implemented by C{AzureStore} or one of its mixins.
    """

    __slots__ = ()

    log: Logger
    bucket: BucketConfig
    clock: IReactorTime
    block_size: int

    @property
    def _endpoint(self) -> str: ...

    def _now(self) -> datetime: ...

    def _for_bucket(self, bucket: BucketConfig) -> IObjectStore: ...

    async def _send(
        self,
        method: str,
        key: str | None,
        query: Sequence[tuple[str, str]] = (),
        headers: HeaderList = NO_HEADERS,
        body: IBodyProducer | bytes | None = None,
    ) -> BackendResponse: ...

    async def _error(
        self,
        response: BackendResponse,
        statuses: Mapping[int, str] | None = None,
    ) -> S3Error: ...

    async def _properties(
        self, key: str, version_id: str | None = None
    ) -> BackendResponse | None: ...

    async def _list_blobs(
        self,
        prefix: str,
        delimiter: str | None,
        max_results: int,
        marker: str | None,
        include: str | None = None,
    ) -> BlobListing: ...

    async def _all_blobs(
        self, prefix: str, delimiter: str | None, include: str | None
    ) -> tuple[dict[str, datetime], set[str]]: ...

    async def _put_block(
        self, key: str, block: str, body: IBodyProducer | None
    ) -> BackendResponse: ...

    async def _commit(
        self,
        key: str,
        blocks: Sequence[str],
        object_headers: HeaderList,
        condition_headers: HeaderList,
    ) -> CopyResult: ...

    def can_copy(self, source: CopySource) -> bool: ...


async def _value(value: _T) -> _T:
    return value


async def _raise(error: Exception) -> NoReturn:
    raise error
