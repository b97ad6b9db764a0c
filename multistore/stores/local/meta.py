# -*- test-case-name: tests.unit.test_local,tests.unit.test_local_writes -*-
"""
What the store records about an object: the metadata file that mirrors it
(L{_Meta}, its encoding, where it lives), the request headers an object
keeps and those a read shows, tags, checksums and ``Content-MD5``; and the
ETag, time and media type of a file that has no metadata.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import mimetypes
import os
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

from attrs import frozen

from multistore.headers import HeaderList
from multistore.s3.errors import S3Error
from multistore.stores.local.tree import (
    _MARKER_NAME,
    _META,
    _OPEN_FLAGS,
    _RESERVED_BYTES,
    _SIDECAR_SUFFIX,
    MAX_SEGMENT_BYTES,
    _meta_dirs,
)

#: The version of the metadata files' format.
_FORMAT: Final = 1

#: The most of a metadata file that is read.
_SIDECAR_LIMIT: Final = 1024 * 1024

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

#: The media type of a compressed file, by the encoding ``mimetypes`` finds.
_ENCODING_TYPES: Final = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}

#: Request headers an object keeps, besides ``x-amz-meta-*`` and checksums.
_OBJECT_HEADERS: Final = frozenset(
    {
        "content-type",
        "content-encoding",
        "content-disposition",
        "content-language",
        "cache-control",
        "expires",
        "x-amz-website-redirect-location",
        "x-amz-storage-class",
        "x-amz-tagging",
    }
)
_CHECKSUM_HEADERS: Final = frozenset(
    {
        "x-amz-checksum-crc32",
        "x-amz-checksum-crc32c",
        "x-amz-checksum-crc64nvme",
        "x-amz-checksum-sha1",
        "x-amz-checksum-sha256",
        "x-amz-checksum-type",
    }
)
_META_PREFIX: Final = "x-amz-meta-"
_STORAGE_CLASSES: Final = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "OUTPOSTS",
        "GLACIER_IR",
        "SNOW",
        "EXPRESS_ONEZONE",
    }
)
_MAX_TAGS: Final = 10


def synthetic_etag(st: os.stat_result) -> str:
    """
    The ETag of a file that carries no recorded MD5.

    :param st: the file's status.
    :return: ``"<32 hex>-1"``, quotes included: the MD5 of the file's device,
        inode, size and modification time in nanoseconds, so it changes
        whenever the file does, and with a ``-1`` suffix so it cannot be
        taken for an MD5 of the content.
    """
    identity = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    digest = hashlib.md5(identity.encode("ascii"), usedforsecurity=False)
    return f'"{digest.hexdigest()}-1"'


def modification_time(st: os.stat_result) -> datetime:
    """
    :return: the file's modification time as an aware UTC datetime, to the
        whole second (as S3 reports ``Last-Modified``).
    """
    return _ns_time(st.st_mtime_ns)


def guess_content_type(key: str) -> str:
    """
    Guess a media type from a key's last segment (the file name only, never
    read as a URL).

    This may read the system's MIME tables on first use: call it off the
    reactor thread.

    :return: the media type, ``application/octet-stream`` if unknown.
    """
    name = key.rsplit("/", 1)[-1]
    media_type, encoding = mimetypes.guess_type("/" + name)
    if encoding is not None:
        return _ENCODING_TYPES.get(encoding, "application/octet-stream")
    return media_type or "application/octet-stream"


@frozen
class _Meta:
    """
    What the store recorded about an object (or a part) when it wrote it.

    :ivar etag: the ETag, quoted.
    :ivar headers: the headers the object carries, as written.
    :ivar parts: the sizes of a multipart object's parts, in order; empty
        for any other object.
    :ivar modified_ns: when a directory marker was written (markers have no
        file of their own to take the time from); ``None`` otherwise.
    """

    etag: str
    headers: tuple[tuple[str, str], ...] = ()
    parts: tuple[int, ...] = ()
    modified_ns: int | None = None

    def get(self, name: str) -> str | None:
        """
        :return: the first value of the header ``name``, or ``None``.
        """
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def storage_class(self) -> str:
        """
        The storage class the object was written with.
        """
        return self.get("x-amz-storage-class") or "STANDARD"


def _describe(status: os.stat_result) -> dict[str, int]:
    return {
        "ino": status.st_ino,
        "size": status.st_size,
        "mtime_ns": status.st_mtime_ns,
    }


def _encode_meta(meta: _Meta, status: os.stat_result | None) -> bytes:
    """
    :param status: the data file the metadata describes, or ``None`` for a
        directory marker.
    :return: the metadata file's content.
    """
    document: dict[str, object] = {
        "format": _FORMAT,
        "etag": meta.etag,
        "headers": [list(pair) for pair in meta.headers],
    }
    if meta.parts:
        document["parts"] = list(meta.parts)
    if status is None:
        document["marker"] = True
        document["modified_ns"] = meta.modified_ns
    else:
        document["file"] = _describe(status)
    return json.dumps(document, separators=(",", ":")).encode("ascii")


def _load_record(data: bytes | None) -> dict[str, Any] | None:
    """
    :param data: a record the store wrote (a metadata file, an upload's
        record), or ``None`` if there is none.
    :return: its fields, or ``None`` if it is missing, malformed, or of
        another format.
    """
    if data is None:
        return None
    try:
        record = json.loads(data)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        return None
    return record


def _header_pairs(value: object) -> tuple[tuple[str, str], ...] | None:
    """
    :return: the headers a record holds as ``[name, value]`` lists, or
        ``None`` if ``value`` is not such a list.
    """
    if not isinstance(value, list):
        return None
    pairs: list[tuple[str, str]] = []
    for pair in value:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(item, str) for item in pair)
        ):
            return None
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


def _decode_meta(data: bytes | None, status: os.stat_result | None) -> _Meta | None:
    """
    :param status: the data file the metadata must describe, or ``None`` for
        a directory marker.
    :return: the metadata, or ``None`` if there is none, it is malformed, of
        another format, or describes another file.
    """
    document = _load_record(data)
    if document is None:
        return None
    etag = document.get("etag")
    headers = _header_pairs(document.get("headers"))
    parts = document.get("parts", [])
    if not isinstance(etag, str) or headers is None:
        return None
    if not isinstance(parts, list) or not all(
        type(size) is int and size >= 0 for size in parts
    ):
        return None
    modified_ns = None
    if status is None:
        modified_ns = document.get("modified_ns")
        if document.get("marker") is not True or type(modified_ns) is not int:
            return None
    elif document.get("file") != _describe(status):
        return None
    return _Meta(
        etag=etag, headers=headers, parts=tuple(parts), modified_ns=modified_ns
    )


def _read_small(path: bytes | str, dir_fd: int | None = None) -> bytes | None:
    """
    Read a small regular file of the store's own (in the thread pool).

    :return: its content, or ``None`` if it is missing, not a regular file,
        or larger than L{_SIDECAR_LIMIT}.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, _SIDECAR_LIMIT + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > _SIDECAR_LIMIT:
                return None
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_meta(path: bytes | None, status: os.stat_result | None) -> _Meta | None:
    """
    Read a metadata file (in the thread pool).

    :param path: the file, or ``None`` when the key can have none.
    :param status: the data file it must describe; ``None`` for a marker.
    :return: the metadata, or ``None`` if there is none that applies.
    """
    if path is None:
        return None
    return _decode_meta(_read_small(path), status)


def _meta_at(
    directory: int | None, name: bytes, status: os.stat_result | None
) -> _Meta | None:
    """
    Read the metadata file ``name`` in the directory open as ``directory``
    (in the thread pool).

    :param directory: the directory, or ``None`` if there is none.
    :param status: the data file it must describe; ``None`` for a marker.
    :return: the metadata, or ``None`` if there is none that applies.
    """
    if directory is None:
        return None
    return _decode_meta(_read_small(name, directory), status)


def _sidecar_path(root: bytes, segments: Sequence[bytes], marker: bool) -> bytes | None:
    """
    The metadata file of a key.

    :param segments: the key's segments (for a marker, its directory's).
    :return: the path, or ``None`` if a segment is too long to have one.
    """
    if any(len(segment) > MAX_SEGMENT_BYTES for segment in segments):
        return None
    if marker:
        return os.path.join(
            root, _RESERVED_BYTES, _META, *_meta_dirs(segments), _MARKER_NAME
        )
    return os.path.join(
        root,
        _RESERVED_BYTES,
        _META,
        *_meta_dirs(segments[:-1]),
        segments[-1] + _SIDECAR_SUFFIX,
    )


def _key_segments(key: str) -> tuple[bytes, ...]:
    """
    :return: the segments of a key that names a file, encoded.
    """
    return tuple(segment.encode("utf-8") for segment in key.split("/"))


def _tag_count(value: str) -> int:
    """
    Check an ``x-amz-tagging`` value (a URL-encoded query of tags).

    :return: the number of tags.
    :raise S3Error: ``InvalidTag``.
    """
    tags = parse_qsl(value, keep_blank_values=True) if value else []
    names = [name for name, _ in tags]
    if len(tags) > _MAX_TAGS:
        raise S3Error("InvalidTag", "Object tags cannot be greater than 10", status=400)
    if len(set(names)) != len(names):
        raise S3Error(
            "InvalidTag", "Cannot provide multiple Tags with the same key", status=400
        )
    for name, tag in tags:
        if not name or len(name) > 128 or len(tag) > 256:
            raise S3Error(
                "InvalidTag",
                "The TagKey or TagValue you have provided is invalid",
                status=400,
            )
    return len(tags)


def object_headers(headers: HeaderList) -> tuple[tuple[str, str], ...]:
    """
    Choose and check the headers an object written with ``headers`` keeps:
    content headers, ``Cache-Control``, ``Expires``, ``x-amz-meta-*``,
    checksums, tagging, storage class and website redirect.

    :return: those headers, in order.
    :raise S3Error: ``NotImplemented`` for server-side encryption (a
        directory store does not encrypt), ``InvalidRequest`` for Object
        Lock (nor does it lock), ``InvalidStorageClass`` or ``InvalidTag``.
    """
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        if name.startswith("x-amz-server-side-encryption"):
            raise S3Error(
                "NotImplemented",
                "This store does not encrypt objects; server-side encryption headers are not supported.",
            )
        if name.startswith("x-amz-object-lock-"):
            raise S3Error(
                "InvalidRequest", "Bucket is missing Object Lock Configuration"
            )
        if (
            name in _OBJECT_HEADERS
            or name in _CHECKSUM_HEADERS
            or name.startswith(_META_PREFIX)
        ):
            kept.append((name, value))
    storage_class = headers.get("x-amz-storage-class")
    if storage_class is not None and storage_class not in _STORAGE_CLASSES:
        raise S3Error(
            "InvalidStorageClass",
            "The storage class you specified is not valid",
            status=400,
        )
    tagging = headers.get("x-amz-tagging")
    if tagging is not None:
        _tag_count(tagging)
    return tuple(kept)


def _visible_headers(meta: _Meta | None, whole: bool) -> list[tuple[str, str]]:
    """
    The stored headers a read answers with (``Content-Type`` aside).

    :param whole: whether the read returns the whole object; checksums
        describe only that.
    """
    if meta is None:
        return []
    shown: list[tuple[str, str]] = []
    tags = 0
    for name, value in meta.headers:
        if name == "content-type":
            continue
        if name == "x-amz-tagging":
            tags = _tag_count_quietly(value)
            continue
        if name == "x-amz-storage-class" and value == "STANDARD":
            continue
        if name in _CHECKSUM_HEADERS and not whole:
            continue
        shown.append((name, value))
    if tags:
        shown.append(("x-amz-tagging-count", str(tags)))
    return shown


def _tag_count_quietly(value: str) -> int:
    try:
        return _tag_count(value)
    except S3Error:
        return 0


def _content_md5(headers: HeaderList) -> bytes | None:
    """
    :return: the digest ``Content-MD5`` announces, if sent.
    :raise S3Error: ``InvalidDigest`` if it is not a base64 MD5.
    """
    value = headers.get("content-md5")
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidDigest") from None
    if len(digest) != 16:
        raise S3Error("InvalidDigest")
    return digest


def _checksums(headers: HeaderList) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name in _CHECKSUM_HEADERS]


def opaque(etag: str) -> str:
    """
    :return: an ETag without its quotes, for comparing ETags.
    """
    etag = etag.strip()
    if len(etag) >= 2 and etag.startswith('"') and etag.endswith('"'):
        return etag[1:-1]
    return etag


def _ns_time(ns: int) -> datetime:
    seconds = ns // 1_000_000_000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        return datetime.max.replace(tzinfo=UTC) if seconds > 0 else _EPOCH
