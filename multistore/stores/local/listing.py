# -*- test-case-name: tests.unit.test_local -*-
"""
Listing a store: L{_Walk}, the depth-first walk of the directory tree in
S3 key order, with directory markers and the ETags and storage classes the
store recorded.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from attrs import define, field, frozen

from multistore.model import ObjectInfo
from multistore.stores.local.meta import (
    _Meta,
    _ns_time,
    _read_meta,
    _sidecar_path,
    modification_time,
    synthetic_etag,
)
from multistore.stores.local.tree import (
    _META,
    _RESERVED_BYTES,
    _SIDECAR_SUFFIX,
    _inside,
    _meta_dirs,
)


@frozen
class _Entry:
    """
    One listable thing in a directory, during a listing.
    """

    sort_key: bytes
    path: bytes
    directory: bool
    status: os.stat_result | None


@define
class _Walk:
    """
    One listing's depth-first walk of the tree, in key order, with the
    ETags and storage classes the store recorded, and directory markers.

    :ivar skipped: the number of names passed over for not being UTF-8.
    """

    _root: bytes
    _prefix: bytes
    _start_after: bytes | None
    _delimiter: bytes | None
    skipped: int = field(default=0, init=False)
    _last_prefix: bytes | None = field(default=None, init=False)

    def items(self) -> Iterator[ObjectInfo | str]:
        """
        :return: the objects and common prefixes of the listing, in order.
        """
        try:
            root_status = os.stat(self._root)
        except OSError:
            return
        yield from self._directory(self._root, b"", {_identity(root_status)})

    def _meta_dir(self, key_prefix: bytes) -> bytes:
        """
        :return: the metadata directory of the directory whose key is
            ``key_prefix`` (empty, or ending in ``/``).
        """
        directory = key_prefix[:-1].split(b"/") if key_prefix else []
        return os.path.join(self._root, _RESERVED_BYTES, _META, *_meta_dirs(directory))

    def _marker(self, key: bytes) -> _Meta | None:
        """
        :return: the marker of the directory whose key is ``key`` (ending
            in ``/``), if it has one.
        """
        directory = key[:-1].split(b"/")
        meta = _read_meta(_sidecar_path(self._root, directory, True), None)
        if meta is None or meta.modified_ns is None:
            return None
        return meta

    def _entries(self, path: bytes, key_prefix: bytes | None) -> list[_Entry]:
        """
        The listable entries of one directory, sorted by key (a directory
        ``d`` as ``d/``).

        :param key_prefix: the key of the directory (``b""`` for the root),
            to pass over names that cannot lead to a key with the listing's
            prefix before looking at them further; ``None`` to keep all.
        """
        try:
            scanned = list(os.scandir(path))
        except OSError:
            return []
        entries: list[_Entry] = []
        prefix = self._prefix
        for entry in scanned:
            name = entry.name
            if key_prefix is not None:
                if not key_prefix and name == _RESERVED_BYTES:
                    continue
                key = key_prefix + name
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    continue
            try:
                name.decode("utf-8")
            except UnicodeDecodeError:
                self.skipped += 1
                continue
            try:
                listed = self._classify(entry)
            except OSError:
                continue
            if listed is not None:
                entries.append(listed)
        entries.sort(key=lambda e: e.sort_key)
        return entries

    def _classify(self, entry: os.DirEntry[bytes]) -> _Entry | None:
        status: os.stat_result | None = None
        if entry.is_symlink():
            if not _inside(self._root, os.path.realpath(entry.path)):
                return None
            status = os.stat(entry.path)
            directory = stat.S_ISDIR(status.st_mode)
            if not directory and not stat.S_ISREG(status.st_mode):
                return None
        elif entry.is_dir(follow_symlinks=False):
            directory = True
        elif entry.is_file(follow_symlinks=False):
            directory = False
        else:
            return None
        sort_key = entry.name + b"/" if directory else entry.name
        return _Entry(
            sort_key=sort_key, path=entry.path, directory=directory, status=status
        )

    def _directory(
        self, path: bytes, key_prefix: bytes, ancestors: set[tuple[int, int]]
    ) -> Iterator[ObjectInfo | str]:
        prefix, start_after = self._prefix, self._start_after
        sidecars: set[bytes] | None = None
        for entry in self._entries(path, key_prefix):
            key = key_prefix + entry.sort_key
            if key.startswith(prefix):
                pass
            elif key > prefix:
                # Past every key that starts with the prefix.
                return
            elif not (entry.directory and prefix.startswith(key)):
                continue
            if (
                start_after is not None
                and key <= start_after
                and not (entry.directory and start_after.startswith(key))
            ):
                # Entirely at or before start_after (a directory that holds
                # start_after is walked).
                continue
            rolled = self._common_prefix(key)
            if rolled is not None:
                if rolled == self._last_prefix:
                    continue
                if start_after is not None and start_after.startswith(rolled):
                    continue
                if entry.directory and not self._holds_file(entry, key, ancestors):
                    continue
                self._last_prefix = rolled
                yield rolled.decode("utf-8")
            elif entry.directory:
                identity = self._directory_identity(entry)
                if identity is None or identity in ancestors:
                    continue
                marker = self._marker(key) if key.startswith(prefix) else None
                if marker is not None and (start_after is None or key > start_after):
                    assert marker.modified_ns is not None
                    yield ObjectInfo(
                        key=key.decode("utf-8"),
                        size=0,
                        last_modified=_ns_time(marker.modified_ns),
                        etag=marker.etag,
                        storage_class=marker.storage_class,
                    )
                yield from self._directory(entry.path, key, ancestors | {identity})
            else:
                status = entry.status
                if status is None:
                    try:
                        status = os.stat(entry.path, follow_symlinks=False)
                    except OSError:
                        continue
                if sidecars is None:
                    sidecars = self._sidecars(key_prefix)
                meta = None
                sidecar = entry.sort_key + _SIDECAR_SUFFIX
                if sidecar in sidecars:
                    meta = _read_meta(
                        os.path.join(self._meta_dir(key_prefix), sidecar), status
                    )
                yield ObjectInfo(
                    key=key.decode("utf-8"),
                    size=status.st_size,
                    last_modified=modification_time(status),
                    etag=meta.etag if meta is not None else synthetic_etag(status),
                    storage_class=meta.storage_class
                    if meta is not None
                    else "STANDARD",
                )

    def _sidecars(self, key_prefix: bytes) -> set[bytes]:
        """
        :return: the names in the metadata directory of a directory.
        """
        try:
            return set(os.listdir(self._meta_dir(key_prefix)))
        except OSError:
            return set()

    def _common_prefix(self, key: bytes) -> bytes | None:
        """
        :return: the common prefix ``key`` rolls up into, if any. For a
            directory's key (ending in ``/``) it is that of every key below.
        """
        delimiter = self._delimiter
        if delimiter is None or not key.startswith(self._prefix):
            return None
        at = key.find(delimiter, len(self._prefix))
        if at == -1:
            return None
        return key[: at + len(delimiter)]

    def _directory_identity(self, entry: _Entry) -> tuple[int, int] | None:
        try:
            status = entry.status or os.stat(entry.path)
        except OSError:
            return None
        return _identity(status)

    def _holds_file(
        self, entry: _Entry, key: bytes, ancestors: set[tuple[int, int]]
    ) -> bool:
        """
        :param key: the directory's key (ending in ``/``).
        :return: whether the directory ``entry`` holds a listable file or
            directory marker at any depth (its own marker included); the
            search stops at the first one.
        """
        identity = self._directory_identity(entry)
        if identity is None or identity in ancestors:
            return False
        if self._marker(key) is not None:
            return True
        for child in self._entries(entry.path, None):
            if not child.directory:
                return True
            if self._holds_file(child, key + child.sort_key, ancestors | {identity}):
                return True
        return False


def _identity(status: os.stat_result) -> tuple[int, int]:
    return (status.st_dev, status.st_ino)
