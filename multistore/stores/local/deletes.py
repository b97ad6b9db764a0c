# -*- test-case-name: tests.unit.test_local,tests.unit.test_local_writes -*-
"""
The file-system work of the directory store's deletes: a key's file (or
directory marker) and its metadata removed, then the directories it leaves
empty, in the thread pool. Functions taking the store
(L{multistore.stores.local.core.Store}), which
L{multistore.stores.local.store.LocalStore.delete_object} runs.
"""

from __future__ import annotations

import os
import stat

from multistore.s3.errors import S3Error
from multistore.s3.keys import check_segments
from multistore.stores.local.core import _NOT_FOUND_ERRNOS, Store
from multistore.stores.local.meta import _meta_at
from multistore.stores.local.tree import (
    _DIR_SUFFIX,
    _LOCKS,
    _MARKER_NAME,
    RESERVED,
    _Key,
    _reserved_key,
    _Tree,
    write_key,
)


def _delete_in_thread(store: Store, key: str) -> None:
    if key.split("/", 1)[0] == RESERVED:
        raise _reserved_key()
    check_segments(key)
    try:
        target = write_key(key)
    except S3Error:
        # A key no file can have: there is nothing to delete.
        return
    with store._tree() as tree:
        try:
            parent = tree.data_dir(target.directory, create=False)
        except (FileNotFoundError, S3Error):
            _forget(tree, target)
            return
        with _LOCKS.hold(tree.lock_name(parent, target.name, target.directory)):
            if not target.marker:
                try:
                    status = os.stat(target.name, dir_fd=parent)
                except OSError as e:
                    if e.errno not in _NOT_FOUND_ERRNOS:
                        raise
                    status = None
                if status is not None and stat.S_ISDIR(status.st_mode):
                    # A directory is no object; nothing to delete.
                    return
                try:
                    os.unlink(target.name, dir_fd=parent)
                except FileNotFoundError:
                    pass
                else:
                    tree.sync(parent)
            _forget(tree, target)
        _prune(tree, target.directory)


def _forget(tree: _Tree, target: _Key) -> None:
    """
    Remove a key's metadata file, if any.
    """
    meta_dir = tree.meta_dir_or_none(target.directory)
    if meta_dir is None:
        return
    try:
        os.unlink(target.meta_name, dir_fd=meta_dir)
    except FileNotFoundError:
        return
    tree.sync(meta_dir)


def _prune(tree: _Tree, directory: tuple[bytes, ...]) -> None:
    """
    Remove the empty directories from ``directory`` up to (not
    including) the root, stopping at one that carries a marker; then
    the same in the metadata tree.
    """
    for depth in range(len(directory), 0, -1):
        if _meta_at(tree.meta_dir_or_none(directory[:depth]), _MARKER_NAME, None):
            break
        try:
            parent = tree.data_dir(directory[: depth - 1], create=False)
            os.rmdir(directory[depth - 1], dir_fd=parent)
        except (OSError, S3Error):
            break
    for depth in range(len(directory), 0, -1):
        mirror = tree.meta_dir_or_none(directory[: depth - 1])
        if mirror is None:
            continue
        try:
            os.rmdir(directory[depth - 1] + _DIR_SUFFIX, dir_fd=mirror)
        except OSError:
            break
