# -*- test-case-name: tests.unit.test_azure_store -*-
"""
Reads from Azure Blob Storage: the L{Reads} mixin of
L{multistore.stores.azure.store.AzureStore} (Get Blob, Get Blob
Properties), and the translation of a blob's headers into S3's.

Reads pass their conditions on as S3 evaluates them (``If-Match`` decides
over ``If-Unmodified-Since``, ``If-None-Match`` over
``If-Modified-Since``; dates S3 ignores are left out, and
``If-None-Match: *``, which Azure refuses on reads, is answered from the
blob's properties), a single range as ``x-ms-range``, and a suffix
range (which Azure does not take) resolved against the blob's size first.
A HEAD's range is worked out from the blob's size (Get Blob Properties
takes none).
"""

from __future__ import annotations

import re
from typing import Final

from attrs import evolve

from multistore.headers import HeaderList
from multistore.model import BackendResponse, ObjectRead, ObjectResponse
from multistore.s3.conditions import parse_entity_tags
from multistore.s3.dates import format_http_date, parse_http_date
from multistore.s3.errors import S3Error
from multistore.s3.ranges import parse_range
from multistore.stores.azure.auth import decode_metadata_name
from multistore.stores.azure.common import AzureStoreBase
from multistore.stores.common import deferred
from multistore.stores.object_headers import HTTP_OBJECT_HEADERS

_SINGLE_RANGE: Final = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII)


#: Range numbers with more digits are not read as integers (Python refuses
#: more than 4300); they are past the end of any blob.
_LONGEST_NUMBER: Final = 20


_BEYOND_ANY_BLOB: Final = 10**_LONGEST_NUMBER


def _magnitude(digits: str) -> tuple[int, str]:
    # Orders decimal strings by value without reading them as numbers.
    significant = digits.lstrip("0")
    return (len(significant), significant)


def s3_object_headers(headers: HeaderList) -> HeaderList:
    """
    Translate the headers of a Get Blob (or Get Blob Properties) answer into
    S3 object headers.

    :return: the content headers, length, range, ETag and last-modified
        time as they are, and the metadata as ``x-amz-meta-*`` (names
        decoded); nothing else (``Content-MD5``, ``x-ms-*``).
    """
    out: list[tuple[str, str]] = []
    for name, value in headers:
        if name in HTTP_OBJECT_HEADERS:
            out.append((name, value))
        elif name.startswith("x-ms-meta-"):
            meta = decode_metadata_name(name[len("x-ms-meta-") :])
            out.append(("x-amz-meta-" + meta, value))
    return HeaderList(out)


class Reads(AzureStoreBase):
    """
    The store's reads.
    """

    __slots__ = ()

    async def _properties(
        self, key: str, version_id: str | None = None
    ) -> BackendResponse | None:
        """
        Get Blob Properties (of a version, if given).

        :return: the answer (its body discarded), or ``None`` if there is no
            such blob.
        """
        query = [] if version_id is None else [("versionid", version_id)]
        response = await self._send("HEAD", key, query)
        if response.status == 404:
            error = await self._error(response)
            if error.code == "NoSuchBucket":
                raise error
            return None
        if response.status != 200:
            raise await self._error(response)
        response.body.discard()
        return response

    async def _range_header(self, read: ObjectRead) -> str | None:
        """
        :return: the ``Range`` to send Azure for a read: a single range as
            it is, a suffix range resolved against the blob's size (Azure
            takes none), nothing for a header S3 ignores.
        :raise S3Error: ``InvalidRange`` for a suffix range that selects
            nothing; ``NoSuchKey`` if the blob is not there.
        """
        if read.range is None:
            return None
        match = _SINGLE_RANGE.fullmatch(read.range.strip().replace(" ", ""))
        if match is None:
            return None
        first, last = match.groups()
        if first:
            if last and _magnitude(last) < _magnitude(first):
                return None
            if len(first) > _LONGEST_NUMBER:
                # Past the end of any blob: Azure refuses it as unsatisfiable.
                return f"bytes={_BEYOND_ANY_BLOB}-"
            if last and len(last) <= _LONGEST_NUMBER:
                return f"bytes={int(first)}-{int(last)}"
            return f"bytes={int(first)}-"
        if not last:
            return None
        properties = await self._properties(read.key, read.version_id)
        if properties is None:
            raise S3Error("NoSuchKey")
        size = int(properties.headers.get("content-length") or "0")
        chosen = parse_range(read.range, size)
        if chosen is None:
            return None
        return f"bytes={chosen.start}-{chosen.end}"

    async def _unsatisfiable(self, key: str, version_id: str | None) -> S3Error:
        """
        :return: ``InvalidRange`` with the blob's size in ``Content-Range``.
        """
        properties = await self._properties(key, version_id)
        if properties is None:
            return S3Error("InvalidRange")
        size = properties.headers.get("content-length") or "0"
        return S3Error("InvalidRange", headers=(("content-range", f"bytes */{size}"),))

    @deferred
    async def get_object(self, read: ObjectRead) -> ObjectResponse:
        """
        Get Blob (or Get Blob Properties, for a HEAD), with its range and
        conditions.
        """
        if read.part_number is not None and read.part_number != 1:
            raise S3Error("InvalidPartNumber")
        if read.if_none_match is not None and (False, "*") in parse_entity_tags(
            read.if_none_match
        ):
            # Azure refuses If-None-Match: * on reads. A blob that is there
            # (and meets the other conditions) is not modified.
            found = await self.get_object(
                evolve(
                    read,
                    head=True,
                    range=None,
                    part_number=None,
                    if_none_match=None,
                    if_modified_since=None,
                )
            )
            return ObjectResponse(
                304,
                HeaderList(
                    (n, v) for n, v in found.headers if n in ("etag", "last-modified")
                ),
            )
        headers: list[tuple[str, str]] = []
        range_header = None if read.part_number else await self._range_header(read)
        if range_header is not None:
            headers.append(("x-ms-range", range_header))
        # As S3 does: If-Match decides over If-Unmodified-Since, If-None-Match
        # over If-Modified-Since. Dates that S3 ignores (not dates, an
        # If-Modified-Since in the future) are not sent.
        now = self._now()
        for name, value, overruled in (
            ("if-match", read.if_match, None),
            ("if-none-match", read.if_none_match, None),
            ("if-modified-since", read.if_modified_since, read.if_none_match),
            ("if-unmodified-since", read.if_unmodified_since, read.if_match),
        ):
            if value is None or overruled is not None:
                continue
            if name.endswith("-since"):
                date = parse_http_date(value, now)
                if date is None or (name == "if-modified-since" and date > now):
                    continue
                value = format_http_date(date)
            headers.append((name, value))
        query = [] if read.version_id is None else [("versionid", read.version_id)]
        method = "HEAD" if read.head else "GET"
        response = await self._send(method, read.key, query, HeaderList(headers))
        if response.status in (200, 206):
            if range_header is not None and (
                response.headers.get("content-range") or ""
            ).endswith("/0"):
                # Azurite answers a range of an empty blob with 206.
                response.body.discard()
                raise S3Error("InvalidRange", headers=(("content-range", "bytes */0"),))
            body = None if read.head else response.body
            if body is None:
                response.body.discard()
            out = s3_object_headers(response.headers)
            status = response.status
            if read.part_number == 1:
                size = int(response.headers.get("content-length") or "0")
                if size:
                    status = 206
                    out = out.with_("content-range", f"bytes 0-{size - 1}/{size}")
            elif read.head and range_header is not None and status == 200:
                # Get Blob Properties takes no range: answer as the GET would.
                size = int(response.headers.get("content-length") or "0")
                wanted = parse_range(read.range, size)
                if wanted is not None:
                    status = 206
                    out = out.with_("content-length", str(wanted.length)).with_(
                        "content-range", wanted.content_range
                    )
            return ObjectResponse(status, out, body)
        if response.status == 304:
            response.body.discard()
            return ObjectResponse(304, s3_object_headers(response.headers))
        error = await self._error(response)
        if error.code == "InvalidRange":
            raise await self._unsatisfiable(read.key, read.version_id)
        raise error
