# -*- test-case-name: tests.unit.test_gcs_store -*-
"""
What the parts of L{multistore.stores.gcs.store.GcsStore} share: the
store as its mixins see it (L{GcsStoreBase}), where multipart uploads keep
their state, and the translation between S3 headers and GCS object
resources.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from twisted.logger import Logger
from twisted.web.iweb import IBodyProducer

from multistore.config import BucketConfig
from multistore.headers import NO_HEADERS, HeaderList
from multistore.model import BackendResponse
from multistore.s3.dates import parse_iso8601
from multistore.s3.errors import S3Error
from multistore.stores.object_headers import content_header

#: The API root when the bucket names no endpoint.
DEFAULT_ENDPOINT: Final = "https://storage.googleapis.com"


#: Where multipart uploads keep their state; never listed.
UPLOADS_PREFIX: Final = ".multistore-uploads/"


_MARKERS: Final = UPLOADS_PREFIX + "uploads/"


_PARTS: Final = UPLOADS_PREFIX + "parts/"


#: The custom metadata that holds a multipart object's ETag.
ETAG_METADATA: Final = "multistore-etag"


_KEY_METADATA: Final = "multistore-key"


_RESOURCE_METADATA: Final = "multistore-resource"


#: Largest JSON answer read (a listing page of 1000 objects with metadata).
MAX_DOCUMENT: Final = 8 * 1024 * 1024


#: S3 content headers and the GCS object fields that hold them.
_CONTENT_FIELDS: Final = (
    ("content-type", "contentType"),
    ("cache-control", "cacheControl"),
    ("content-disposition", "contentDisposition"),
    ("content-encoding", "contentEncoding"),
    ("content-language", "contentLanguage"),
)


_META: Final = "x-amz-meta-"


#: Custom metadata names multistore keeps for itself; never a client's.
RESERVED_METADATA: Final = frozenset({ETAG_METADATA, _KEY_METADATA, _RESOURCE_METADATA})


def _text_of(value: str) -> str:
    """
    :return: a header value (ISO-8859-1 as received) as the UTF-8 text it
        encodes, or as it is if it is not UTF-8.
    """
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _header_of(text: str) -> str:
    """
    :return: text as a header value: its UTF-8 bytes read as ISO-8859-1.
    """
    return text.encode("utf-8").decode("latin-1")


def object_resource(headers: HeaderList) -> dict[str, Any]:
    """
    The GCS object fields for an S3 write's headers.

    :param headers: the write's headers.
    :return: ``contentType`` and the other content fields, and
        ``metadata`` from ``x-amz-meta-*`` (names multistore reserves are
        dropped).
    """
    resource: dict[str, Any] = {}
    for header, name in _CONTENT_FIELDS:
        value = content_header(headers, header)
        if value:
            resource[name] = _text_of(value)
    metadata = {}
    for name, value in headers:
        if name.startswith(_META) and len(name) > len(_META):
            meta_name = name[len(_META) :]
            if meta_name not in RESERVED_METADATA:
                metadata[meta_name] = _text_of(value)
    if metadata:
        resource["metadata"] = metadata
    return resource


def _md5_hex(b64: object) -> str | None:
    if not isinstance(b64, str) or not b64:
        return None
    try:
        return base64.b64decode(b64, validate=True).hex()
    except ValueError:
        return None


def etag_of(resource: Mapping[str, Any]) -> str:
    """
    :param resource: a GCS object resource.
    :return: the object's S3 ETag, quoted: the multipart ETag kept in its
        metadata, or its MD5 in hex, or for a composite object without an
        MD5 its CRC32C in hex, ``-`` and its component count.
    """
    metadata = resource.get("metadata") or {}
    kept = metadata.get(ETAG_METADATA) if isinstance(metadata, dict) else None
    if isinstance(kept, str) and kept:
        return f'"{kept}"'
    md5 = _md5_hex(resource.get("md5Hash"))
    if md5 is not None:
        return f'"{md5}"'
    crc = _md5_hex(resource.get("crc32c")) or "0"
    return f'"{crc}-{resource.get("componentCount", 1)}"'


def _updated(resource: Mapping[str, Any]) -> datetime:
    value = resource.get("updated") or resource.get("timeCreated")
    if isinstance(value, str):
        with suppress(ValueError):
            return parse_iso8601(value)
    return datetime.fromtimestamp(0, UTC)


def _size(resource: Mapping[str, Any]) -> int:
    try:
        return int(resource.get("size", 0))
    except (TypeError, ValueError):
        return 0


def _part_name(upload_id: str, number: int) -> str:
    return f"{_PARTS}{upload_id}/{number:05d}"


def _generation(version_id: str | None) -> str | None:
    """
    :return: the GCS generation an S3 version id names, or ``None`` for
        none (or ``null``, the version of an object without versions).
    :raise S3Error: ``InvalidArgument`` for anything but a generation.
    """
    if version_id is None or version_id == "null":
        return None
    if not (version_id.isascii() and version_id.isdigit()):
        raise S3Error("InvalidArgument", "Invalid version id specified")
    return version_id


def _page_items(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = document.get("items") or []
    return [item for item in items if isinstance(item, dict) and "name" in item]


class GcsStoreBase(Protocol):
    """
    The store as its mixins (L{multistore.stores.gcs.reads.Reads} and the
    others L{multistore.stores.gcs.store.GcsStore} inherits) see it: what
    they use of the store, or of each other. Every member is implemented by
    C{GcsStore} or one of its mixins.
    """

    __slots__ = ()

    log: Logger
    bucket: BucketConfig

    @property
    def _endpoint(self) -> str: ...

    @property
    def _min_part_size(self) -> int: ...

    def _now(self) -> datetime: ...

    def url(
        self,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        upload: bool = False,
    ) -> str: ...

    def _bucket_path(self) -> str: ...

    def _object_path(self, name: str) -> str: ...

    async def _send(
        self,
        method: str,
        url: str,
        headers: HeaderList = NO_HEADERS,
        body: IBodyProducer | None = None,
    ) -> BackendResponse: ...

    async def _send_json(
        self, method: str, url: str, document: Mapping[str, Any] | None
    ) -> BackendResponse: ...

    async def _document(self, response: BackendResponse) -> dict[str, Any]: ...

    async def _error(
        self,
        response: BackendResponse,
        statuses: Mapping[int, str] | None = None,
        head: bool = False,
    ) -> S3Error: ...

    async def _metadata(
        self, name: str, generation: str | None = None
    ) -> dict[str, Any] | None: ...

    async def _delete(self, name: str, generation: str | None = None) -> None: ...

    async def _write_preconditions(
        self, name: str, headers: HeaderList
    ) -> list[tuple[str, str]]: ...

    async def _store(
        self,
        name: str,
        resource: Mapping[str, Any],
        query: Sequence[tuple[str, str]],
        body: IBodyProducer,
    ) -> dict[str, Any]: ...

    async def _marker(self, key: str, upload_id: str) -> dict[str, Any]: ...
