# -*- test-case-name: tests.unit.test_gcs_store -*-
"""
Listings of a Google Cloud Storage bucket: the L{Listings} mixin of
L{multistore.stores.gcs.store.GcsStore} (``objects.list``), which hides
multipart uploads in progress.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from multistore.model import ListPage, ListRequest, ObjectInfo
from multistore.stores.common import deferred
from multistore.stores.gcs.common import (
    UPLOADS_PREFIX,
    GcsStoreBase,
    _page_items,
    _size,
    _updated,
    etag_of,
)

#: The least name greater than every name under L{UPLOADS_PREFIX}.
_AFTER_UPLOADS: Final = UPLOADS_PREFIX[:-1] + chr(ord("/") + 1)


def _visible(
    items: Iterable[dict[str, Any]], start_after: str | None
) -> list[dict[str, Any]]:
    """
    :return: the listed objects a client may see: not uploads in progress,
        nor the ``start_after`` key (GCS's ``startOffset`` includes it).
    """
    return [
        item
        for item in items
        if not item["name"].startswith(UPLOADS_PREFIX) and item["name"] != start_after
    ]


class Listings(GcsStoreBase):
    """
    The store's ListObjects.
    """

    __slots__ = ()

    async def _list_page(
        self,
        request: ListRequest,
        start_offset: str | None,
        token: str | None,
        max_results: int,
    ) -> tuple[list[dict[str, Any]], list[str], str | None]:
        """
        Read one page of ``objects.list``.

        :return: its objects, its prefixes and its next page token.
        """
        query = [("maxResults", str(max_results)), ("projection", "noAcl")]
        if request.prefix:
            query.append(("prefix", request.prefix))
        if request.delimiter:
            query.append(("delimiter", request.delimiter))
        if start_offset:
            query.append(("startOffset", start_offset))
        if token:
            query.append(("pageToken", token))
        response = await self._send("GET", self.url(self._bucket_path() + "/o", query))
        if response.status != 200:
            raise await self._error(response, {404: "NoSuchBucket"})
        document = await self._document(response)
        prefixes = [p for p in document.get("prefixes") or [] if isinstance(p, str)]
        next_token = document.get("nextPageToken")
        if not isinstance(next_token, str) or not next_token:
            next_token = None
        return _page_items(document), prefixes, next_token

    @deferred
    async def list_objects(self, request: ListRequest) -> ListPage:
        """
        List with ``objects.list``; ``start_after`` is ``startOffset``
        (inclusive on GCS, so a key equal to it is skipped); GCS's page token
        is the store's resume token.
        """
        if request.max_keys <= 0:
            return ListPage()
        # startOffset includes the start_after key itself, which is then
        # dropped: ask for one more so that a full page remains.
        wanted = request.max_keys + (1 if request.start_after else 0)
        items, prefixes, next_token = await self._list_page(
            request, request.start_after, request.token, wanted
        )
        visible = _visible(items, request.start_after)
        if next_token and items and items[-1]["name"].startswith(UPLOADS_PREFIX):
            # The page ends among uploads in progress, of which there may
            # be many pages: skip them all with one more request, and let
            # the gateway resume after this page's last key.
            room = request.max_keys - len(visible) - len(prefixes)
            next_token = None
            truncated = True
            if room > 0:
                more, more_prefixes, after = await self._list_page(
                    request, _AFTER_UPLOADS, None, room
                )
                visible.extend(_visible(more, request.start_after))
                prefixes.extend(more_prefixes)
                truncated = after is not None
            return self._listed(request, visible, prefixes, truncated, None)
        return self._listed(
            request, visible, prefixes, next_token is not None, next_token
        )

    def _listed(
        self,
        request: ListRequest,
        items: list[dict[str, Any]],
        prefixes: list[str],
        truncated: bool,
        next_token: str | None,
    ) -> ListPage:
        """
        :return: a page of ``items`` and ``prefixes`` (hidden ones left
            out), at most C{request.max_keys} of them together.
        """
        objects = [
            ObjectInfo(
                key=item["name"],
                size=_size(item),
                last_modified=_updated(item),
                etag=etag_of(item),
            )
            for item in items
        ]
        shown = sorted({p for p in prefixes if not p.startswith(UPLOADS_PREFIX)})
        if len(objects) + len(shown) > request.max_keys:
            # More than asked for: keep the first max_keys in key order and
            # let the gateway resume after the last one kept.
            merged = sorted(
                [(o.key, o) for o in objects] + [(p, None) for p in shown],
                key=lambda entry: entry[0],
            )[: request.max_keys]
            objects = [o for _, o in merged if o is not None]
            shown = [k for k, o in merged if o is None]
            return ListPage(tuple(objects), tuple(shown), True, None)
        return ListPage(tuple(objects), tuple(shown), truncated, next_token)
