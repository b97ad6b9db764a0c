# -*- test-case-name: tests.unit.test_local,tests.unit.test_local_writes -*-
"""
The directory store's copies: CopyObject from this or another directory
store, and the copying of an object or a range of it into a temporary file
that UploadPartCopy shares, with the copy options and source conditions
only copies use. Functions taking the store
(L{multistore.stores.local.core.Store}); L{LocalStore.copy_object
<multistore.stores.local.store.LocalStore.copy_object>} calls them.
"""

from __future__ import annotations

import errno
import os
import re
from datetime import datetime
from typing import Final

from twisted.internet.defer import Deferred

from multistore.headers import HeaderList
from multistore.model import CopyResult, CopySource
from multistore.s3.conditions import NotModified
from multistore.s3.errors import S3Error
from multistore.stores.common import check_read, deferred, source_read
from multistore.stores.local.commit import _commit_object, _current
from multistore.stores.local.core import (
    Store,
    _marker_with_bytes,
    _open_in_thread,
    _Opened,
    _path_for,
    check_version,
)
from multistore.stores.local.files import ReadableFile
from multistore.stores.local.meta import _CHECKSUM_HEADERS, object_headers
from multistore.stores.local.tree import _COPY_CHUNK, _Key, _TempFile, write_key

_COPY_RANGE: Final = re.compile(r"bytes=(\d+)-(\d+)\Z")


def copy_directive(headers: HeaderList, name: str) -> str:
    """
    :param name: ``x-amz-metadata-directive`` or ``x-amz-tagging-directive``.
    :return: the copy's directive ``name``: ``COPY`` (the default) or
        ``REPLACE``.
    :raise S3Error: ``InvalidArgument`` for any other value.
    """
    value = (headers.get(name) or "COPY").strip().upper()
    if value not in {"COPY", "REPLACE"}:
        raise S3Error(
            "InvalidArgument",
            f"Unknown {name} value: {value!r}.",
            extra=(("ArgumentName", name), ("ArgumentValue", value)),
        )
    return value


def copy_source_range(value: str | None, size: int) -> tuple[int, int]:
    """
    :return: the offset and length ``x-amz-copy-source-range`` selects (the
        whole object when not given).
    :raise S3Error: ``InvalidArgument`` if malformed, ``InvalidRange`` if
        not within the object.
    """
    if value is None:
        return 0, size
    match = _COPY_RANGE.match(value.strip())
    if match is None:
        raise S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
            extra=(("ArgumentName", "x-amz-copy-source-range"),),
        )
    first, last = int(match.group(1)), int(match.group(2))
    if first > last or last >= size:
        raise S3Error(
            "InvalidRange",
            f"The requested range is not satisfiable for a source object of size {size}.",
            headers=(("Content-Range", f"bytes */{size}"),),
        )
    return first, last - first + 1


def _copy_conditions(found: _Opened, source: CopySource, now: datetime) -> None:
    """
    Check ``x-amz-copy-source-if-*`` against the source.

    :raise S3Error: ``PreconditionFailed``.
    """
    try:
        check_read(source_read(source), found.etag, found.modified, now)
    except NotModified:
        raise S3Error(
            "PreconditionFailed",
            extra=(("Condition", "x-amz-copy-source-If-None-Match"),),
        ) from None


def _copy_file(source: ReadableFile, offset: int, length: int, temp: _TempFile) -> None:
    """
    Copy ``length`` bytes from ``offset`` of ``source`` to the end of
    ``temp`` (in the thread pool).
    """
    copied = 0
    while copied < length:
        data = source.read_at(offset + copied, min(_COPY_CHUNK, length - copied))
        if not data:
            raise OSError(errno.EIO, "the source ended before the copy did")
        temp.append(data)
        copied += len(data)


@deferred
async def copy_object(
    store: Store, source: CopySource, key: str, headers: HeaderList
) -> CopyResult:
    """
    Copy an object from this or another directory store.

    The new object keeps the source's headers
    (``x-amz-metadata-directive: COPY``, the default) or takes those of
    the request (``REPLACE``); its tags likewise follow
    ``x-amz-tagging-directive``; its storage class is the request's, or
    ``STANDARD``. The ``x-amz-copy-source-if-*`` conditions are checked
    against the source, ``If-Match``/``If-None-Match`` in ``headers``
    against the destination.

    :return: a Deferred firing with the new object's ETag (the MD5 of
        its bytes) and time. It fails with ``NotImplemented`` for a
        source C{can_copy} refuses, ``NoSuchKey``, ``PreconditionFailed``,
        ``InvalidRequest`` for a copy of an object onto itself that
        changes nothing, and as C{put_object} does.
    """
    origin = store._source_store(source)
    check_version(source.version_id)
    target = write_key(key)
    directive = copy_directive(headers, "x-amz-metadata-directive")
    tagging = copy_directive(headers, "x-amz-tagging-directive")
    requested = object_headers(headers)
    source_path = _path_for(origin, source.key)
    changes = (
        directive == "REPLACE"
        or "x-amz-storage-class" in headers
        or "x-amz-website-redirect-location" in headers
    )
    temp, opened = await _copy_to_temp(
        store, origin, source, source_path, target, None, changes
    )
    if target.marker and temp.size:
        await store._call(temp.discard)
        raise _marker_with_bytes(target)
    kept = _copied_headers(opened, requested, directive, tagging, headers)
    committed = await _commit_object(store, target, temp, kept, headers)
    return CopyResult(etag=committed.etag, last_modified=committed.modified)


def _copied_headers(
    opened: _Opened,
    requested: tuple[tuple[str, str], ...],
    directive: str,
    tagging: str,
    headers: HeaderList,
) -> tuple[tuple[str, str], ...]:
    """
    The headers a copy carries.
    """
    source = opened.meta.headers if opened.meta is not None else ()
    if directive == "COPY":
        kept = [
            (name, value)
            for name, value in source
            if name not in {"x-amz-storage-class", "x-amz-tagging"}
        ]
        if not any(name == "content-type" for name, _ in kept):
            kept.insert(0, ("content-type", opened.content_type))
    else:
        kept = [
            (name, value)
            for name, value in requested
            if name not in _CHECKSUM_HEADERS
            and name not in {"x-amz-storage-class", "x-amz-tagging"}
        ]
        # The bytes are the same, so their checksums still hold.
        kept.extend(
            (name, value) for name, value in source if name in _CHECKSUM_HEADERS
        )
    storage_class = headers.get("x-amz-storage-class")
    if storage_class is not None:
        kept.append(("x-amz-storage-class", storage_class))
    tags = (
        headers.get("x-amz-tagging")
        if tagging == "REPLACE"
        else (opened.meta.get("x-amz-tagging") if opened.meta else None)
    )
    if tags:
        kept.append(("x-amz-tagging", tags))
    return tuple(kept)


def _copy_to_temp(store: Store, *args: object) -> Deferred[tuple[_TempFile, _Opened]]:
    """
    L{_copy_in_thread}, with its arguments, in the pool; the temporary
    file is discarded if the Deferred is cancelled meanwhile.
    """
    return store._io_owning(
        lambda copied: copied[0].discard(), _copy_in_thread, store, *args
    )


def _copy_in_thread(
    store: Store,
    origin: Store,
    source: CopySource,
    source_path: bytes,
    target: _Key | None,
    copy_range: str | None,
    changes: bool,
) -> tuple[_TempFile, _Opened]:
    """
    Open the source, check the copy's conditions, and copy its bytes (or
    a range of them) into a new temporary file of this store.

    :param target: the destination key, to check it has room and that
        the copy is not of an object onto itself; ``None`` for a part.
    """
    opened = _open_in_thread(origin, source_path, source.key)
    try:
        _copy_conditions(opened, source, store._now())
        offset, length = copy_source_range(copy_range, opened.size)
        with store._tree() as tree:
            if target is not None:
                if (
                    not changes
                    and target.text == source.key
                    and os.path.realpath(origin._root_bytes) == tree.real_root
                ):
                    raise S3Error(
                        "InvalidRequest",
                        "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
                    )
                try:
                    parent = tree.data_dir(
                        target.directory, create=False, key=target.text
                    )
                except FileNotFoundError:
                    pass
                else:
                    if not target.marker:
                        _current(store, tree, parent, target)
            temp = tree.temp_file()
        try:
            _copy_file(opened.file, offset, length, temp)
        except BaseException:
            temp.discard()
            raise
        return temp, opened
    finally:
        opened.file.close()
