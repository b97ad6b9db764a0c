# -*- test-case-name: tests.unit.test_local,tests.unit.test_local_writes -*-
"""
What every operation of the directory store shares: L{Store}, what they use
of the store; the translation of file-system failures into S3 errors; and
the finding and opening of an object's file for a read or a copy.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from datetime import datetime
from typing import Final, Protocol, TypeVar

from attrs import frozen
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from multistore.model import CopySource
from multistore.s3.errors import S3Error
from multistore.s3.keys import check_segments
from multistore.stores.local.files import OpenFile, ReadableFile, _NoFile
from multistore.stores.local.meta import (
    _key_segments,
    _Meta,
    _ns_time,
    _read_meta,
    _sidecar_path,
    guess_content_type,
    modification_time,
    synthetic_etag,
)
from multistore.stores.local.tree import (
    _OPEN_FLAGS,
    RESERVED,
    _descriptor_path,
    _inside,
    _Key,
    _reserved_key,
    _Tree,
)

_T = TypeVar("_T")

_NOT_FOUND_ERRNOS: Final = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EISDIR}
)
_DENIED_ERRNOS: Final = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@frozen
class _Opened:
    """
    An object opened for a read, with what was learnt about it in the same
    thread call.

    :ivar file: the open file (nothing to read for a directory marker).
    :ivar size: its size.
    :ivar modified: when it last changed.
    :ivar etag: its ETag.
    :ivar content_type: its media type (recorded, or guessed from the key).
    :ivar meta: what the store recorded about it, if anything.
    """

    file: ReadableFile
    size: int
    modified: datetime
    etag: str
    content_type: str
    meta: _Meta | None = None


def check_version(version_id: str | None) -> None:
    """
    Refuse a version other than ``null``: the store keeps no versions.

    :raise S3Error: ``NoSuchVersion``.
    """
    if version_id is not None and version_id != "null":
        raise S3Error("NoSuchVersion", extra=(("VersionId", version_id),))


def _translate(reason: Failure) -> Failure:
    """
    Give failures a client can act on their S3 error; others pass on (the
    gateway logs them and answers ``InternalError``).
    """
    error = reason.value
    if isinstance(error, OSError):
        if error.errno in _DENIED_ERRNOS:
            return Failure(S3Error("AccessDenied"))
        if error.errno in _FULL_ERRNOS:
            return Failure(
                S3Error("InternalError", "The store has no space left for this write.")
            )
    return reason


def _owned(work: Deferred[_T], release: Callable[[_T], object]) -> Deferred[_T]:
    """
    :param work: a call under way that acquires something (opens a file,
        makes a temporary one).
    :param release: lets go of what ``work`` acquired.
    :return: a Deferred with ``work``'s result; if it is cancelled before
        ``work`` has one, what ``work`` acquires is released, and its
        failure ignored.
    """
    cancelled = False

    def cancel(_: Deferred[_T]) -> None:
        nonlocal cancelled
        cancelled = True

    result: Deferred[_T] = Deferred(cancel)

    def done(value: _T) -> None:
        if cancelled:
            release(value)
        else:
            result.callback(value)

    def failed(reason: Failure) -> None:
        if not cancelled:
            result.errback(reason)

    work.addCallbacks(done, failed)
    return result


def _marker_with_bytes(key: _Key) -> S3Error:
    return key.refuse("a directory marker cannot hold bytes")


def _open_error(error: OSError, root: bytes) -> S3Error | None:
    """
    The client's view of a failure to open a file (called in the thread
    pool).

    :return: ``AccessDenied``, ``NoSuchBucket`` or ``NoSuchKey``; ``None``
        for an unexpected error, which is logged and reported as an internal
        error.
    """
    if error.errno in _DENIED_ERRNOS:
        return S3Error("AccessDenied")
    if error.errno in _NOT_FOUND_ERRNOS:
        if not os.path.isdir(root):
            return S3Error("NoSuchBucket")
        return S3Error("NoSuchKey")
    return None


class Store(Protocol):
    """
    What the directory store's operations use of
    L{multistore.stores.local.store.LocalStore}: its configuration, its log,
    its thread pool and clock, and the stores it copies from. The operations
    are functions of the store's modules that take it as their first
    argument, so that C{LocalStore} alone implements L{IObjectStore} and no
    module of its operations imports it.
    """

    @property
    def log(self) -> Logger: ...

    @property
    def _root(self) -> str: ...

    @property
    def _reactor(self) -> IReactorFromThreads: ...

    @property
    def _threadpool(self) -> ThreadPool: ...

    @property
    def _clock(self) -> IReactorTime: ...

    @property
    def _chunk_size(self) -> int: ...

    @property
    def _fsync(self) -> bool: ...

    @property
    def _min_part_size(self) -> int: ...

    @property
    def _root_bytes(self) -> bytes: ...

    def _call(self, f: Callable[..., _T], *args: object) -> Deferred[_T]: ...

    def _io(self, f: Callable[..., _T], *args: object) -> Deferred[_T]: ...

    def _io_owning(
        self, release: Callable[[_T], object], f: Callable[..., _T], *args: object
    ) -> Deferred[_T]: ...

    def _tree(self) -> _Tree: ...

    def _now_ns(self) -> int: ...

    def _now(self) -> datetime: ...

    def _rename(
        self, name: bytes, target: bytes, source_dir: int, target_dir: int
    ) -> None: ...

    def can_copy(self, source: CopySource) -> bool: ...

    def _source_store(self, source: CopySource) -> Store: ...


def _path_for(store: Store, key: str) -> bytes:
    """
    :return: the file-system path of ``key`` (for a directory marker,
        of its directory, with a trailing ``/``).
    :raise S3Error: ``InvalidArgument`` for a reserved or ``.``/``..``
        key, ``NoSuchKey`` for one that cannot name a file.
    """
    segments = key.split("/")
    if segments[0] == RESERVED:
        raise _reserved_key()
    check_segments(key)
    if len(segments) > 1 and segments[-1] == "":
        # A directory marker: only its last segment is empty.
        segments = segments[:-1]
        marker = True
    else:
        marker = False
    if any(segment == "" for segment in segments) or "\x00" in key:
        raise S3Error("NoSuchKey")
    try:
        encoded = [segment.encode("utf-8") for segment in segments]
    except UnicodeEncodeError:
        raise S3Error("NoSuchKey") from None
    path = os.path.join(store._root_bytes, *encoded)
    return path + b"/" if marker else path


def _open(store: Store, path: bytes, key: str) -> Deferred[_Opened]:
    """
    Open ``path`` in the thread pool; if the returned Deferred is
    cancelled meanwhile, the file is closed when the open completes.
    """

    def failed(reason: Failure) -> Failure:
        if reason.check(S3Error, CancelledError) is None:
            store.log.failure("could not open {key}", reason, key=key)
            return Failure(S3Error("InternalError"))
        return reason

    opening = _owned(
        store._call(_open_in_thread, store, path, key),
        lambda opened: _close_quietly(store, opened.file, key),
    )
    return opening.addErrback(failed)


def _open_in_thread(store: Store, path: bytes, key: str) -> _Opened:
    """
    Open and inspect one object (in the thread pool): the response must
    describe exactly the file it streams.
    """
    root = os.path.realpath(store._root_bytes)
    if path.endswith(b"/"):
        return _open_marker_in_thread(store, root, path, key)
    real = os.path.realpath(path)
    if not _inside(root, real):
        raise S3Error("NoSuchKey")
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError as e:
        known = _open_error(e, root)
        if known is None:
            raise
        raise known from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise S3Error("NoSuchKey")
        served = _descriptor_path(fd)
        if served is not None and not _inside(root, served):
            raise S3Error("NoSuchKey")
        meta = _read_meta(
            _sidecar_path(store._root_bytes, _key_segments(key), False), status
        )
        content_type = (meta.get("content-type") if meta else None) or (
            guess_content_type(key)
        )
    except BaseException:
        os.close(fd)
        raise
    return _Opened(
        file=OpenFile(fd),
        size=status.st_size,
        modified=modification_time(status),
        etag=meta.etag if meta else synthetic_etag(status),
        content_type=content_type,
        meta=meta,
    )


def _open_marker_in_thread(store: Store, root: bytes, path: bytes, key: str) -> _Opened:
    real = os.path.realpath(path)
    if not _inside(root, real) or not os.path.isdir(real):
        if not os.path.isdir(root):
            raise S3Error("NoSuchBucket")
        raise S3Error("NoSuchKey")
    meta = _read_meta(
        _sidecar_path(store._root_bytes, _key_segments(key[:-1]), True), None
    )
    if meta is None or meta.modified_ns is None:
        raise S3Error("NoSuchKey")
    return _Opened(
        file=_NoFile(),
        size=0,
        modified=_ns_time(meta.modified_ns),
        etag=meta.etag,
        content_type=meta.get("content-type") or "application/octet-stream",
        meta=meta,
    )


def _close_quietly(store: Store, file: ReadableFile, key: str) -> None:
    def failed(reason: Failure) -> None:
        store.log.failure("could not close {key}", reason, key=key)

    store._call(file.close).addErrback(failed)
