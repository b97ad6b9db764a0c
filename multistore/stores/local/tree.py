# -*- test-case-name: tests.unit.test_local_writes -*-
"""
The directory tree under a store's root: the names of the housekeeping
tree (``.multistore/meta``, ``tmp``), the rules for the keys a write may
create (L{write_key}), the process's locks on keys and uploads
(L{KeyLocks}), directory descriptors that walk the tree without leaving the
root (L{_Tree}), temporary files, path confinement, and flushing to disk.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Final

from attrs import define, field, frozen

from multistore.s3.errors import S3Error
from multistore.s3.keys import check_segments

if TYPE_CHECKING:
    from hashlib import _Hash


#: The top-level directory name reserved for the store's own metadata.
RESERVED: Final = ".multistore"

#: The longest key segment a directory store accepts for writing, in UTF-8
#: bytes: the usual file-name limit (255) less the metadata file's suffix.
MAX_SEGMENT_BYTES: Final = 250

_RESERVED_BYTES: Final = RESERVED.encode("ascii")
_META: Final = b"meta"
_TMP: Final = b"tmp"

_SIDECAR_SUFFIX: Final = b".json"
_DIR_SUFFIX: Final = b".d"
_MARKER_NAME: Final = b".json"

#: Bytes copied per read while copying between files.
_COPY_CHUNK: Final = 1024 * 1024

#: Attempts at a step that a concurrent pruning of empty directories can
#: undo (creating a directory, then renaming into it).
_RETRIES: Final = 3

_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)

_OPEN_FLAGS: Final = (
    os.O_RDONLY
    | _NOFOLLOW
    | getattr(os, "O_NONBLOCK", 0)
    | _CLOEXEC
    | getattr(os, "O_NOCTTY", 0)
)
_DIR_FLAGS: Final = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
_NEW_FILE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC | _NOFOLLOW
_READ_FLAGS: Final = os.O_RDONLY | _NOFOLLOW | _CLOEXEC


def _meta_dirs(directory: Sequence[bytes]) -> list[bytes]:
    """
    :return: the names of the metadata directories mirroring ``directory``.
    """
    return [segment + _DIR_SUFFIX for segment in directory]


# --- keys ----------------------------------------------------------------------


@frozen
class _Key:
    """
    A key a write may create.

    :ivar text: the key.
    :ivar segments: its segments, encoded; for a directory marker, those of
        the directory.
    :ivar marker: whether it is a directory marker (ends in ``/``).
    """

    text: str
    segments: tuple[bytes, ...]
    marker: bool

    @property
    def directory(self) -> tuple[bytes, ...]:
        """
        The directory the key's file goes in; a marker's own directory.
        """
        return self.segments if self.marker else self.segments[:-1]

    @property
    def name(self) -> bytes:
        """
        The file's name in its directory; empty for a marker.
        """
        return b"" if self.marker else self.segments[-1]

    @property
    def meta_name(self) -> bytes:
        """
        The metadata file's name in the mirrored directory.
        """
        return _MARKER_NAME if self.marker else self.name + _SIDECAR_SUFFIX

    def refuse(self, why: str) -> S3Error:
        """
        :return: the error refusing this key, for ``why``.
        """
        return _refuse_key(self.text, why)


def _refuse_key(key: str, why: str) -> S3Error:
    return S3Error(
        "InvalidArgument",
        f"A directory store cannot hold the key {key!r}: {why}.",
        extra=(("ArgumentName", "key"), ("ArgumentValue", key)),
    )


def _reserved_key() -> S3Error:
    return S3Error(
        "InvalidArgument",
        f"Keys under {RESERVED}/ are reserved by this store.",
        extra=(("ArgumentName", "key"),),
    )


def write_key(key: str) -> _Key:
    """
    Check that a directory store can hold ``key``, before anything is read
    or written (the rules are in the package's docstring).

    :return: the key, parsed.
    :raise S3Error: ``InvalidArgument``, saying why not.
    """
    if not key:
        raise _refuse_key(key, "it is empty")
    marker = key.endswith("/")
    segments = (key[:-1] if marker else key).split("/")
    if segments[0] == RESERVED:
        raise _reserved_key()
    check_segments(key)
    if "\x00" in key:
        raise _refuse_key(key, "it contains a NUL character")
    if any(segment == "" for segment in segments):
        raise _refuse_key(key, "it has an empty segment ('//' or a leading '/')")
    try:
        encoded = tuple(segment.encode("utf-8") for segment in segments)
    except UnicodeEncodeError:
        raise _refuse_key(key, "it is not valid UTF-8") from None
    if any(len(segment) > MAX_SEGMENT_BYTES for segment in encoded):
        raise _refuse_key(key, f"a segment is longer than {MAX_SEGMENT_BYTES} bytes")
    return _Key(text=key, segments=encoded, marker=marker)


# --- locks ---------------------------------------------------------------------


@define
class _Lock:
    lock: threading.Lock = field(factory=threading.Lock)
    users: int = 0


class KeyLocks:
    """
    Locks by path, shared by every store in the process.

    Stores are made per request, so a lock that must hold across requests
    cannot live in one: it lives here, keyed by the real path of what it
    protects (a key's file, an upload's directory). An entry exists only
    while some thread holds or waits for it. The locks are taken in the
    thread pool, around short critical sections.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[bytes, _Lock] = {}

    @contextmanager
    def hold(self, path: bytes) -> Iterator[None]:
        """
        Hold the lock on ``path`` for the ``with`` block (blocking the
        calling thread while another holds it).
        """
        with self._guard:
            entry = self._locks.get(path)
            if entry is None:
                entry = self._locks[path] = _Lock()
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._locks[path]

    def __len__(self) -> int:
        """
        :return: how many paths are locked or waited for.
        """
        with self._guard:
            return len(self._locks)


#: The process's locks on keys and uploads.
_LOCKS: Final = KeyLocks()


# --- descriptors -------------------------------------------------------------


class _NotDirectory(Exception):
    """
    A step of a walk is not a directory.

    :ivar depth: how many segments were walked, that one included.
    """

    def __init__(self, depth: int) -> None:
        super().__init__(depth)
        self.depth = depth


@define
class _TempFile:
    """
    A temporary file being written (in the thread pool, one call at a
    time), with the MD5 of what was written.

    :ivar fd: its descriptor, open for writing until L{close}.
    :ivar path: its path, for removal.
    :ivar name: its name in the temporary directory.
    :ivar size: the bytes written.
    """

    fd: int
    path: bytes
    name: bytes
    size: int = 0
    _md5: _Hash = field(factory=lambda: hashlib.md5(usedforsecurity=False))
    _closed: bool = False

    def append(self, data: bytes) -> None:
        """
        Write ``data`` at the end.
        """
        _write_all(self.fd, data)
        self._md5.update(data)
        self.size += len(data)

    def digest(self) -> bytes:
        """
        :return: the MD5 of what was written.
        """
        return self._md5.digest()

    def close(self) -> None:
        """
        Close the descriptor, once.
        """
        if not self._closed:
            self._closed = True
            os.close(self.fd)

    def discard(self) -> None:
        """
        Close the file and remove it if it is still there.
        """
        self.close()
        with suppress(FileNotFoundError):
            os.unlink(self.path)


def _write_all(fd: int, data: bytes) -> None:
    """
    Write all of ``data`` to ``fd`` (a write may take only part).
    """
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync(fd: int) -> None:
    os.fsync(fd)


def _removed(fd: int) -> bool:
    """
    :return: whether the directory open as ``fd`` has been removed.
    """
    try:
        return os.fstat(fd).st_nlink == 0
    except OSError:
        return True


class _Tree:
    """
    Directory descriptors under one store root, for the length of one
    thread-pool call; closed on leaving the ``with`` block.

    :ivar root_fd: the root.
    :ivar real_root: the root's real path.
    """

    def __init__(self, root: bytes, sync: bool) -> None:
        self._root = root
        self._sync = sync
        self._fds: list[int] = []
        self._tmp_fd: int | None = None
        try:
            self.root_fd = self.keep(os.open(root, _DIR_FLAGS))
        except (FileNotFoundError, NotADirectoryError):
            raise S3Error("NoSuchBucket") from None
        self.real_root = _descriptor_path(self.root_fd) or os.path.realpath(root)

    def __enter__(self) -> _Tree:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """
        Close every descriptor opened.
        """
        fds, self._fds = self._fds, []
        for fd in reversed(fds):
            os.close(fd)

    def keep(self, fd: int) -> int:
        """
        Close ``fd`` with the tree.

        :return: ``fd``.
        """
        self._fds.append(fd)
        return fd

    def open_dir(self, parent: int, name: bytes, *, create: bool, follow: bool) -> int:
        """
        Open (and perhaps create) the directory ``name`` in ``parent``.

        :return: a descriptor the caller must close.
        :raise FileNotFoundError: it is missing and not to be created.
        :raise NotADirectoryError: it is not a directory.
        """
        flags = _DIR_FLAGS if follow else _DIR_FLAGS | _NOFOLLOW
        for attempt in range(_RETRIES):
            try:
                return os.open(name, flags, dir_fd=parent)
            except FileNotFoundError:
                if not create or attempt == _RETRIES - 1:
                    raise
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise NotADirectoryError(e.errno, e.strerror) from None
                raise
            try:
                os.mkdir(name, 0o777, dir_fd=parent)
            except FileExistsError:
                continue
            if self._sync:
                _fsync(parent)
        raise AssertionError("unreachable")

    def _walk(
        self,
        names: Sequence[bytes],
        *,
        create: bool,
        follow: bool,
        check: Callable[[int, int], None] | None = None,
    ) -> int:
        """
        Walk ``names`` down from the root, keeping only the last descriptor.

        :param check: called with each descriptor and its depth.
        :raise _NotDirectory: a step is not a directory.
        """
        fd = self.root_fd
        try:
            for depth, name in enumerate(names, 1):
                try:
                    step = self.open_dir(fd, name, create=create, follow=follow)
                except NotADirectoryError:
                    raise _NotDirectory(depth) from None
                if fd != self.root_fd:
                    os.close(fd)
                fd = step
                if check is not None:
                    check(fd, depth)
        except BaseException:
            if fd != self.root_fd:
                os.close(fd)
            raise
        return fd if fd == self.root_fd else self.keep(fd)

    def reserved(self, *names: bytes, create: bool = True) -> int:
        """
        :return: a directory of the housekeeping tree (no link followed).
        """
        return self._walk((_RESERVED_BYTES, *names), create=create, follow=False)

    @property
    def tmp_fd(self) -> int:
        """
        The temporary directory.
        """
        if self._tmp_fd is None:
            self._tmp_fd = self.reserved(_TMP)
        return self._tmp_fd

    def data_dir(
        self, segments: Sequence[bytes], *, create: bool, key: str = ""
    ) -> int:
        """
        Open the directory of a key, following links that stay inside the
        root and checking each step.

        :param key: the key, for messages.

        :raise FileNotFoundError: a step is missing and not to be created.
        :raise S3Error: ``InvalidArgument`` if a step is a file or leads
            outside the root.
        """

        def inside(fd: int, depth: int) -> None:
            where = _descriptor_path(fd) or os.path.realpath(
                os.path.join(self._root, *segments[:depth])
            )
            if not _inside(self.real_root, where):
                raise _refuse_key(
                    key, f"{_text(segments[:depth])!r} leads outside the store"
                )

        try:
            return self._walk(segments, create=create, follow=True, check=inside)
        except _NotDirectory as e:
            raise _refuse_key(
                key, f"{_text(segments[: e.depth])!r} is an object, not a directory"
            ) from None

    def meta_dir(self, directory: Sequence[bytes], *, create: bool) -> int:
        """
        :return: the metadata directory mirroring ``directory``.
        """
        return self.reserved(_META, *_meta_dirs(directory), create=create)

    def meta_dir_or_none(self, directory: Sequence[bytes]) -> int | None:
        """
        :return: the metadata directory mirroring ``directory``, or ``None``
            if there is none.
        """
        try:
            return self.meta_dir(directory, create=False)
        except (FileNotFoundError, _NotDirectory):
            return None

    def lock_name(self, fd: int, name: bytes, fallback: Sequence[bytes] = ()) -> bytes:
        """
        :return: the real path of ``name`` in the directory ``fd``, to lock.
        """
        where = _descriptor_path(fd) or os.path.realpath(
            os.path.join(self._root, *fallback)
        )
        return where + b"/" + name

    def temp_file(self) -> _TempFile:
        """
        :return: a new, empty temporary file.
        """
        name = secrets.token_hex(16).encode("ascii") + b".tmp"
        fd = os.open(name, _NEW_FILE_FLAGS, 0o666, dir_fd=self.tmp_fd)
        return _TempFile(
            fd=fd,
            path=os.path.join(self._root, _RESERVED_BYTES, _TMP, name),
            name=name,
        )

    def write_temp(self, data: bytes) -> bytes:
        """
        Write ``data`` to a new temporary file, flushed to disk.

        :return: its name in the temporary directory.
        """
        temp = self.temp_file()
        try:
            temp.append(data)
            if self._sync:
                _fsync(temp.fd)
            temp.close()
        except BaseException:
            temp.discard()
            raise
        return temp.name

    def discard_temp(self, name: bytes) -> None:
        """
        Remove a temporary file if it is still there.
        """
        with suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.tmp_fd)

    def sync(self, fd: int) -> None:
        """
        Flush a directory to disk, if the store does.
        """
        if self._sync:
            _fsync(fd)


def _text(segments: Sequence[bytes]) -> str:
    return "/".join(segment.decode("utf-8", "replace") for segment in segments)


def _inside(root: bytes, path: bytes) -> bool:
    """
    :return: whether the resolved ``path`` lies inside the resolved ``root``
        and outside its reserved metadata tree.
    """
    if not path.startswith(root.rstrip(b"/") + b"/"):
        return False
    relative = path[len(root.rstrip(b"/")) + 1 :]
    return relative.split(b"/", 1)[0] != _RESERVED_BYTES


def _descriptor_path(fd: int) -> bytes | None:
    """
    :return: the path an open descriptor refers to, where the system tells
        (``/proc/self/fd``), so a directory swapped for a link between
        resolving and opening is caught; ``None`` elsewhere.
    """
    try:
        return os.readlink(b"/proc/self/fd/%d" % fd)
    except OSError:
        return None
