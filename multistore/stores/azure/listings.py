# -*- test-case-name: tests.unit.test_azure_store -*-
"""
Listings of an Azure Blob Storage container: the L{Listings} mixin of
L{multistore.stores.azure.store.AzureStore} (List Blobs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from multistore.bodies import read_body
from multistore.model import ListPage, ListRequest, ObjectInfo
from multistore.s3.listing import SENTINEL
from multistore.stores.azure.common import MAX_LISTING, AzureStoreBase
from multistore.stores.azure.xml import BlobListing, parse_list_blobs
from multistore.stores.common import deferred

#: How many List Blobs pages one listing reads at most while it skips keys
#: up to ``start_after``; then it returns an empty truncated page.
MAX_LIST_PAGES: Final = 20


class Listings(AzureStoreBase):
    """
    The store's List Blobs requests: ListObjects, and the blobs
    ListMultipartUploads looks through.
    """

    __slots__ = ()

    async def _list_blobs(
        self,
        prefix: str,
        delimiter: str | None,
        max_results: int,
        marker: str | None,
        include: str | None = None,
    ) -> BlobListing:
        query = [
            ("restype", "container"),
            ("comp", "list"),
            ("maxresults", str(max(1, min(max_results, 5000)))),
        ]
        if prefix:
            query.append(("prefix", prefix))
        if delimiter:
            query.append(("delimiter", delimiter))
        if marker:
            query.append(("marker", marker))
        if include:
            query.append(("include", include))
        response = await self._send("GET", None, query)
        if response.status != 200:
            raise await self._error(response, statuses={404: "NoSuchBucket"})
        listing = parse_list_blobs(await read_body(response.body, MAX_LISTING))
        return listing

    @deferred
    async def list_objects(self, request: ListRequest) -> ListPage:
        """
        List Blobs. Azure's markers are opaque: a truncated page carries the
        next one as its C{next_token}. Azure cannot start after a key, so
        C{start_after} is honoured by listing from the start of the prefix
        (or the token) and skipping keys up to it, reading up to
        L{MAX_LIST_PAGES} pages for one page of answer.
        """
        start_after = request.start_after or ""
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        marker = request.token
        wanted = max(request.max_keys, 0)
        if wanted == 0:
            return ListPage()
        for _ in range(MAX_LIST_PAGES):
            listing = await self._list_blobs(
                request.prefix,
                request.delimiter,
                wanted - len(objects) - len(prefixes),
                marker,
            )
            for blob in listing.blobs:
                if blob.name > start_after:
                    objects.append(
                        ObjectInfo(
                            key=blob.name,
                            size=blob.size,
                            last_modified=blob.last_modified,
                            etag=blob.etag,
                        )
                    )
            for prefix in listing.prefixes:
                # Shown if a name under it may follow start_after: not if
                # start_after is the prefix itself, or the gateway's
                # "after all of it" (the prefix and SENTINEL).
                if prefix > start_after or (
                    start_after.startswith(prefix)
                    and start_after != prefix
                    and start_after < prefix + SENTINEL
                ):
                    prefixes.append(prefix)
            marker = listing.next_marker
            if marker is None:
                return ListPage(
                    tuple(objects), tuple(sorted(prefixes)), truncated=False
                )
            if len(objects) + len(prefixes) >= wanted:
                break
        return ListPage(
            tuple(objects), tuple(sorted(prefixes)), truncated=True, next_token=marker
        )

    async def _all_blobs(
        self, prefix: str, delimiter: str | None, include: str | None
    ) -> tuple[dict[str, datetime], set[str]]:
        """
        :return: the blobs (with their times) and prefixes of up to
            L{MAX_LIST_PAGES} pages of List Blobs.
        """
        blobs: dict[str, datetime] = {}
        prefixes: set[str] = set()
        marker: str | None = None
        for _ in range(MAX_LIST_PAGES):
            listing = await self._list_blobs(prefix, delimiter, 5000, marker, include)
            blobs.update((blob.name, blob.last_modified) for blob in listing.blobs)
            prefixes.update(listing.prefixes)
            marker = listing.next_marker
            if marker is None:
                break
        return blobs, prefixes
