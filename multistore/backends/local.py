# -*- test-case-name: tests.unit.test_local,tests.unit.test_local_writes -*-
"""
The ``file`` store: a bucket served from a directory.

A backend key ``a/b/c`` is the file ``ROOT/a/b/c``. Every file-system call
runs in a thread pool, never on the reactor thread. Nothing outside ``ROOT``
is ever served, listed or written, whatever symbolic links inside it point
to.

The top-level name ``.multistore`` is reserved for the store's own
housekeeping: keys under it are refused and it never shows in listings. Keys
that cannot name a file (an empty segment, a trailing ``/`` that is not a
directory marker) and names that are not UTF-8 do not exist as far as
readers can tell.

A file placed in the directory by hand has no recorded MD5, so its ETag is a
tag derived from its identity and modification time, shaped like a
one-part multipart ETag (``"<32 hex>-1"``) so that clients do not mistake it
for the MD5 of the content.

Writes
======

Which keys can be written
-------------------------

A directory cannot hold every key S3 can. A write is refused with
``400 InvalidArgument``, naming the key and the reason, when the key:

- has an empty segment (``a//b``, a leading ``/``), a ``.`` or ``..``
  segment, or a NUL character;
- has a segment longer than L{MAX_SEGMENT_BYTES} bytes of UTF-8 (the file
  system's limit, less room for the metadata file's suffix);
- lies under ``.multistore/``;
- names a path whose parent is an object: ``a/b`` while ``a`` is a file;
- names an existing directory: ``a`` while ``a/b`` exists;
- leads through a symbolic link to outside ``ROOT``.

A key ending in ``/`` is a directory marker: writing it with an empty body
creates the directory and records the marker, so ``GET dir/`` answers an
empty object and listings show ``dir/`` (and roll it up like any other key
under ``dir/``). A directory marker cannot carry bytes, nor be written by a
multipart upload.

Atomicity
---------

A body is streamed into a temporary file under ``ROOT/.multistore/tmp/``
(the same file system, never listed), its MD5 computed as the bytes pass.
Only once the body has arrived in full and verified does the store commit:
it flushes the file to disk (``fsync``, unless the bucket's ``fsync``
option is false), writes the metadata file beside it, and renames the data
onto the key and the metadata file into place, then flushes the
directories. A reader opens either the old file or the new one, never part
of one; a body that fails, is stopped, or whose client goes away leaves no
object and the old object untouched, and its temporary file is removed.

Every directory on the way to a key is opened by descriptor and checked to
lie inside ``ROOT`` before anything is created in it, and the renames are
made relative to those descriptors, so a symbolic link swapped in meanwhile
cannot redirect a write.

Metadata
--------

What an object carries (content headers, ``Cache-Control``, ``Expires``,
``x-amz-meta-*``, tagging, storage class, checksums, its MD5 ETag, and for
a multipart object the sizes of its parts) is kept in a JSON file under
``ROOT/.multistore/meta/``: the key ``a/b/c`` has ``meta/a.d/b.d/c.json``,
the marker ``a/b/`` has ``meta/a.d/b.d/.json`` (directories there take a
``.d`` suffix so that no key's metadata file can collide with another key's
directory). The file records the inode, size and modification time (in
nanoseconds) of the data file it describes; a metadata file that does not
match its data file (the file was replaced by hand, or a crash fell between
the two renames) is ignored and the object is served as if placed by hand.

Conditional writes
------------------

``If-None-Match: *`` and ``If-Match`` are checked at commit, just before the
rename, under a lock on the key. Stores are made per request, so the locks
live in one registry for the whole process (L{_LOCKS}), keyed by the real
path of the key; a lock exists only while held. ``If-Match`` on a key that
does not exist answers ``404 NoSuchKey``, as S3 does.

Multipart uploads
-----------------

An upload is the directory ``ROOT/.multistore/uploads/<upload id>/`` with
``upload.json`` (the key, the object's headers, when it began) and, per
part, ``<n>`` and ``<n>.json`` (its ETag, size and the data file it
describes). Everything is on disk, so uploads survive restarts; upload ids
are random and URL-safe. Completing concatenates the parts into a temporary
file and commits it like a PUT, under a lock on the upload so that a
concurrent abort or part upload cannot interleave.

Files left in ``.multistore/tmp/`` by a crash are never listed nor served;
they may be removed at leisure.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import json
import mimetypes
import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from itertools import islice, pairwise
from typing import TYPE_CHECKING, Final, Protocol, TypeVar
from urllib.parse import parse_qsl

from attrs import define, field, frozen
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import (
    IConsumer,
    IProducer,
    IPushProducer,
    IReactorFromThreads,
    IReactorThreads,
    IReactorTime,
)
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from multistore.backends.forwarder import DeliveryStopped
from multistore.config import BucketConfig
from multistore.dates import format_http_date
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import IBody, IObjectStore
from multistore.model import (
    CompletedPart,
    CopyResult,
    CopySource,
    DeleteOutcome,
    ListPage,
    ListRequest,
    ObjectInfo,
    ObjectRead,
    ObjectResponse,
    ObjectWrite,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
)
from multistore.s3.conditions import NotModified, evaluate
from multistore.s3.errors import S3Error
from multistore.s3.keys import check_segments
from multistore.s3.ranges import ByteRange, parse_range

if TYPE_CHECKING:
    from hashlib import _Hash

    from twisted.web.iweb import IBodyProducer

_T = TypeVar("_T")

#: The top-level directory name reserved for the store's own metadata.
RESERVED: Final = ".multistore"

#: Bytes read from a file per thread-pool call while streaming.
CHUNK_SIZE: Final = 256 * 1024

#: The smallest size of every part of a multipart upload but the last.
MIN_PART_SIZE: Final = 5 * 1024 * 1024

#: The longest key segment a directory store accepts for writing, in UTF-8
#: bytes: the usual file-name limit (255) less the metadata file's suffix.
MAX_SEGMENT_BYTES: Final = 250

#: The highest part number S3 accepts.
_MAX_PART_NUMBER: Final = 10_000

_RESERVED_BYTES: Final = RESERVED.encode("ascii")
_META: Final = b"meta"
_TMP: Final = b"tmp"
_UPLOADS: Final = b"uploads"
_UPLOAD_FILE: Final = "upload.json"
_SIDECAR_SUFFIX: Final = b".json"
_DIR_SUFFIX: Final = b".d"
_MARKER_NAME: Final = b".json"

#: The version of the metadata files' format.
_FORMAT: Final = 1

#: The most of a metadata file that is read.
_SIDECAR_LIMIT: Final = 1024 * 1024

#: Bytes copied per read while copying between files.
_COPY_CHUNK: Final = 1024 * 1024

#: Attempts at a step that a concurrent pruning of empty directories can
#: undo (creating a directory, then renaming into it).
_RETRIES: Final = 3

_UPLOAD_ID: Final = re.compile(r"[A-Za-z0-9_-]{16,128}\Z")
_PART_NAME: Final = re.compile(r"[1-9][0-9]{0,4}\Z")
_COPY_RANGE: Final = re.compile(r"bytes=(\d+)-(\d+)\Z")

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

_NOT_FOUND_ERRNOS: Final = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EISDIR}
)
_DENIED_ERRNOS: Final = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

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
    seconds = st.st_mtime_ns // 1_000_000_000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        return datetime.max.replace(tzinfo=UTC) if seconds > 0 else _EPOCH


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


class ReadableFile(Protocol):
    """
    An open file a L{FileBody} streams from. Both methods block, so they are
    only ever called in the thread pool, one at a time.
    """

    def read_at(self, offset: int, size: int) -> bytes:
        """
        :return: up to ``size`` bytes from ``offset``; fewer only at the end
            of the file.
        """

    def close(self) -> None:
        """
        Release the file.
        """


@define
class OpenFile:
    """
    A file opened for reading by descriptor.

    :ivar fd: the file descriptor.
    """

    fd: int

    def read_at(self, offset: int, size: int) -> bytes:
        """
        Read without moving a shared file position.

        :return: up to ``size`` bytes from ``offset``.
        """
        return os.pread(self.fd, size, offset)

    def close(self) -> None:
        """
        Close the descriptor.
        """
        os.close(self.fd)


def _call_in_pool(
    reactor: IReactorFromThreads,
    threadpool: ThreadPool,
    f: Callable[..., _T],
    *args: object,
) -> Deferred[_T]:
    return deferToThreadPool(reactor, threadpool, f, *args)


@implementer(IBody, IPushProducer)
@define
class FileBody:
    """
    A streaming body over an open file: reads ``length`` bytes from
    ``offset`` in chunks, each read in the thread pool, and writes each to the
    consumer as a push producer.

    At most one read is in flight at a time; none is started while the
    consumer has paused the body (a chunk that arrives during a pause is held
    until it resumes). The file is closed exactly once, in the thread pool:
    after the last byte, on failure, on cancellation, on ``stopProducing``
    or on L{discard}.

    :ivar length: the number of bytes the body delivers.
    """

    log = Logger()

    _file: ReadableFile
    _offset: int
    length: int
    _reactor: IReactorFromThreads
    _threadpool: ThreadPool
    _chunk_size: int = CHUNK_SIZE

    _started: bool = field(default=False, init=False)
    _consumer: IConsumer | None = field(default=None, init=False)
    _result: Deferred[int] | None = field(default=None, init=False)
    _registered: bool = field(default=False, init=False)
    _paused: bool = field(default=False, init=False)
    _reading: bool = field(default=False, init=False)
    _stopped: bool = field(default=False, init=False)
    _closed: bool = field(default=False, init=False)
    _held: bytes | None = field(default=None, init=False)
    _written: int = field(default=0, init=False)

    def deliver(self, consumer: IConsumer) -> Deferred[int]:
        """
        Write the body to ``consumer``; see L{IBody.deliver}.

        :return: a Deferred firing with the number of bytes written once
            every byte was written and the file closed. It fails if the file
            cannot be read or ends early, with L{DeliveryStopped} if the
            consumer stops the body, and with C{CancelledError} if
            cancelled.
        """
        if self._started:
            return fail(RuntimeError("this body was already delivered or discarded"))
        self._started = True
        self._consumer = consumer
        self._result = Deferred(self._cancel)
        consumer.registerProducer(self, True)
        self._registered = True
        self._next()
        return self._result

    def discard(self) -> None:
        """
        Close the file without reading it; see L{IBody.discard}. Does nothing
        once delivery has started (delivery closes the file itself).
        """
        if self._started:
            return
        self._started = True
        self._stopped = True
        self._release()

    def pauseProducing(self) -> None:
        """
        Start no further read until L{resumeProducing}.
        """
        self._paused = True

    def resumeProducing(self) -> None:
        """
        Continue: write any chunk held during the pause, then read on.
        """
        if self._stopped:
            return
        self._paused = False
        self._next()

    def stopProducing(self) -> None:
        """
        The consumer is going away: read no more, close the file, and fail
        the delivery with L{DeliveryStopped}. The consumer has already dropped
        this producer, so it is not unregistered.
        """
        if self._stopped:
            return
        self._stopped = True
        self._held = None
        self._registered = False
        self._release()
        self._settle(DeliveryStopped())

    def _next(self) -> None:
        if self._stopped or self._paused or self._reading:
            return
        if self._held is not None:
            data, self._held = self._held, None
            self._write(data)
            return
        remaining = self.length - self._written
        if remaining <= 0:
            self._finish(None)
            return
        self._reading = True
        reading = _call_in_pool(
            self._reactor,
            self._threadpool,
            self._file.read_at,
            self._offset + self._written,
            min(self._chunk_size, remaining),
        )
        reading.addCallbacks(self._read, self._read_failed)

    def _read(self, data: bytes) -> None:
        self._reading = False
        if self._stopped:
            self._release()
            return
        if not data:
            self._finish(OSError("the file ended before the body did"))
            return
        if self._paused:
            self._held = data
            return
        self._write(data)

    def _read_failed(self, reason: Failure) -> None:
        self._reading = False
        if self._stopped:
            self._release()
            return
        self._finish(reason)

    def _write(self, data: bytes) -> None:
        assert self._consumer is not None
        self._written += len(data)
        try:
            self._consumer.write(data)
        except Exception as e:
            self._finish(e)
            return
        self._next()

    def _finish(self, failure: Failure | Exception | None) -> None:
        """
        End delivery: close the file, then unregister and fire the result.
        """
        self._stopped = True
        closed = self._release()

        def settle(_: object) -> None:
            self._unregister()
            self._settle(self._written if failure is None else failure)

        closed.addBoth(settle)

    def _cancel(self, result: Deferred[int]) -> None:
        # The Deferred fails with CancelledError once this returns.
        self._stopped = True
        self._held = None
        self._unregister()
        self._release()

    def _settle(self, outcome: int | Failure | Exception) -> None:
        if self._result is None or self._result.called:
            return
        if isinstance(outcome, Failure | Exception):
            self._result.errback(outcome)
        else:
            self._result.callback(outcome)

    def _unregister(self) -> None:
        if not self._registered or self._consumer is None:
            return
        self._registered = False
        try:
            self._consumer.unregisterProducer()
        except Exception:
            # A consumer that has gone away may refuse; there is nothing left
            # to unregister from.
            self.log.debug("the consumer refused to unregister the body")

    def _release(self) -> Deferred[None]:
        """
        Close the file, once, and only when no read is in flight (a read
        that is in flight closes it when it returns).

        :return: a Deferred that fires once the file is closed (at once if
            the close is left to an in-flight read or already done).
        """
        if self._closed or self._reading:
            return succeed(None)
        self._closed = True
        closing = _call_in_pool(self._reactor, self._threadpool, self._file.close)

        def failed(reason: Failure) -> None:
            self.log.failure("could not close a file being served", reason)

        closing.addErrback(failed)
        return closing


@define
class _NoFile:
    """
    The file behind a directory marker: nothing to read.
    """

    def read_at(self, offset: int, size: int) -> bytes:
        """
        :return: nothing.
        """
        return b""

    def close(self) -> None:
        """
        Nothing to release.
        """


# --- metadata ------------------------------------------------------------------


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


def _decode_meta(data: bytes, status: os.stat_result | None) -> _Meta | None:
    """
    :param status: the data file the metadata must describe, or ``None`` for
        a directory marker.
    :return: the metadata, or ``None`` if it is malformed, of another
        format, or describes another file.
    """
    try:
        document = json.loads(data)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        return None
    etag = document.get("etag")
    headers = document.get("headers")
    parts = document.get("parts", [])
    if not isinstance(etag, str) or not isinstance(headers, list):
        return None
    if not isinstance(parts, list) or not all(
        type(size) is int and size >= 0 for size in parts
    ):
        return None
    pairs: list[tuple[str, str]] = []
    for pair in headers:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(item, str) for item in pair)
        ):
            return None
        pairs.append((pair[0], pair[1]))
    modified_ns = None
    if status is None:
        modified_ns = document.get("modified_ns")
        if document.get("marker") is not True or type(modified_ns) is not int:
            return None
    elif document.get("file") != _describe(status):
        return None
    return _Meta(
        etag=etag, headers=tuple(pairs), parts=tuple(parts), modified_ns=modified_ns
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
    data = _read_small(path)
    if data is None:
        return None
    return _decode_meta(data, status)


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
    data = _read_small(name, directory)
    if data is None:
        return None
    return _decode_meta(data, status)


def _meta_dirs(directory: Sequence[bytes]) -> list[bytes]:
    """
    :return: the names of the metadata directories mirroring ``directory``.
    """
    return [segment + _DIR_SUFFIX for segment in directory]


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


def _opaque(etag: str) -> str:
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
    or written (the rules are in the module's docstring).

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


# --- receiving a body ----------------------------------------------------------


@implementer(IConsumer)
@define(eq=False)
class _Receiver:
    """
    Writes a body into a temporary file as it arrives: the consumer of the
    body's producer.

    Each chunk is written in the thread pool, one write at a time; while a
    write is in flight, chunks that arrive are queued and the producer is
    paused, and it is resumed when the write completes, so at most a few
    chunks are ever held. If the body fails, is stopped, or a write fails,
    the temporary file is removed (once no write is in flight) and
    L{receive}'s Deferred fails.
    """

    log = Logger()

    _body: IBodyProducer
    _temp: _TempFile
    _reactor: IReactorFromThreads
    _threadpool: ThreadPool

    _producer: IPushProducer | None = field(default=None, init=False)
    _pending: list[bytes] = field(factory=list, init=False)
    _writing: bool = field(default=False, init=False)
    _paused: bool = field(default=False, init=False)
    _body_done: bool = field(default=False, init=False)
    _settled: bool = field(default=False, init=False)
    _discarded: bool = field(default=False, init=False)
    _failure: Failure | None = field(default=None, init=False)
    _result: Deferred[_TempFile] | None = field(default=None, init=False)

    def receive(self) -> Deferred[_TempFile]:
        """
        Start the body and write all of it.

        :return: a Deferred that fires with the temporary file (still open,
            for the commit to flush and close) once every byte is written, or fails
            with the body's failure, the write's, or ``IncompleteBody`` if
            the body was shorter or longer than it announced. Cancelling it
            stops the body and removes the file.
        """
        result: Deferred[_TempFile] = Deferred(self._cancel)
        self._result = result
        try:
            done = self._body.startProducing(self)
        except Exception:
            self._body_done = True
            self._give_up(Failure())
            return result
        done.addCallbacks(self._body_finished, self._body_failed)
        return result

    # IConsumer

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """
        A push producer that registers itself is the one paused and
        resumed (otherwise the body is).
        """
        if IPushProducer.providedBy(producer):
            self._producer = producer

    def unregisterProducer(self) -> None:
        """
        Forget a registered producer.
        """
        self._producer = None

    def write(self, data: bytes) -> None:
        """
        Queue a chunk and write it, pausing the producer while a write is
        in flight.
        """
        if self._settled or not data:
            return
        self._pending.append(data)
        if self._writing:
            self._pause()
        else:
            self._flush()

    # the writes

    def _flush(self) -> None:
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        self._writing = True
        _call_in_pool(
            self._reactor, self._threadpool, self._temp.append, data
        ).addCallbacks(self._wrote, self._write_failed)

    def _wrote(self, _: None) -> None:
        self._writing = False
        if self._settled:
            self._discard()
            return
        if self._pending:
            self._flush()
        self._resume()
        self._finish_if_done()

    def _write_failed(self, reason: Failure) -> None:
        self._writing = False
        if self._settled:
            self._discard()
            return
        self._give_up(reason)

    # the body

    def _body_finished(self, _: object) -> None:
        if self._settled:
            return
        self._body_done = True
        self._finish_if_done()

    def _body_failed(self, reason: Failure) -> None:
        if self._settled:
            return
        self._body_done = True
        self._give_up(reason)

    def _control(self) -> IPushProducer:
        return self._producer if self._producer is not None else self._body

    def _pause(self) -> None:
        if self._paused or self._body_done:
            return
        self._paused = True
        self._control().pauseProducing()

    def _resume(self) -> None:
        if not self._paused or self._body_done:
            return
        self._paused = False
        self._control().resumeProducing()

    def _stop_body(self) -> None:
        if self._body_done:
            return
        self._body_done = True
        try:
            self._body.stopProducing()
        except Exception:
            self.log.failure("a body refused to stop")

    # the outcome

    def _finish_if_done(self) -> None:
        if not self._body_done or self._writing or self._pending or self._settled:
            return
        length = self._body.length
        if isinstance(length, int) and length != self._temp.size:
            self._give_up(
                Failure(
                    S3Error(
                        "IncompleteBody",
                        f"The body announced {length} bytes and delivered {self._temp.size}.",
                    )
                )
            )
            return
        self._settled = True
        assert self._result is not None
        self._result.callback(self._temp)

    def _give_up(self, reason: Failure) -> None:
        self._settled = True
        self._failure = reason
        self._pending = []
        self._stop_body()
        self._discard()

    def _cancel(self, _: Deferred[_TempFile]) -> None:
        # The Deferred fails with CancelledError once this returns.
        if self._settled:
            return
        self._settled = True
        self._pending = []
        self._stop_body()
        self._discard()

    def _discard(self) -> None:
        """
        Remove the temporary file once no write is in flight, then report
        the failure, if any.
        """
        if self._writing or self._discarded:
            return
        self._discarded = True
        discarding = _call_in_pool(self._reactor, self._threadpool, self._temp.discard)

        def report(outcome: object) -> None:
            if isinstance(outcome, Failure):
                self.log.failure("could not remove a temporary file", outcome)
            result = self._result
            if self._failure is not None and result is not None and not result.called:
                result.errback(self._failure)

        discarding.addBoth(report)


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


@frozen
class _Entry:
    """
    One listable thing in a directory, during a listing.
    """

    sort_key: bytes
    path: bytes
    directory: bool
    status: os.stat_result | None


@frozen
class _Plan:
    """
    A write ready to commit.

    :ivar key: where it goes.
    :ivar temp: the data, in a temporary file (ignored for a marker).
    :ivar meta: what to record about it.
    :ivar if_match: the ``If-Match`` condition, if any.
    :ivar if_none_match: the ``If-None-Match`` condition, if any.
    """

    key: _Key
    temp: _TempFile
    meta: _Meta
    if_match: str | None = None
    if_none_match: str | None = None


@frozen
class _Committed:
    """
    A committed write: the object's ETag and time.
    """

    etag: str
    modified: datetime


@frozen
class _Upload:
    """
    A multipart upload's record.
    """

    upload_id: str
    key: str
    headers: tuple[tuple[str, str], ...]
    initiated_ns: int


@frozen
class _Part:
    """
    An uploaded part, as found on disk.
    """

    number: int
    meta: _Meta
    status: os.stat_result


def _given(value: str | None) -> str | None:
    if value is None or not value.strip(" \t"):
        return None
    return value


def _check_write_conditions(
    current: tuple[str, datetime] | None,
    if_match: str | None,
    if_none_match: str | None,
) -> None:
    """
    Check a write's conditions against the object it would replace.

    :param current: that object's ETag and time, or ``None`` if none.
    :raise S3Error: ``PreconditionFailed``, or ``NoSuchKey`` for
        ``If-Match`` when there is no object.
    """
    if_match = _given(if_match)
    if_none_match = _given(if_none_match)
    if current is None:
        if if_match is not None:
            raise S3Error("NoSuchKey")
        return
    etag, modified = current
    evaluate(
        etag,
        modified,
        if_match=if_match,
        if_none_match=if_none_match,
        method="PUT",
    )


def _check_part_number(part_number: int) -> None:
    if not 1 <= part_number <= _MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive.",
            extra=(
                ("ArgumentName", "partNumber"),
                ("ArgumentValue", str(part_number)),
            ),
        )


def _no_such_upload(upload_id: str) -> S3Error:
    return S3Error("NoSuchUpload", extra=(("UploadId", upload_id),))


def _check_upload_id(upload_id: str) -> bytes:
    if not _UPLOAD_ID.match(upload_id):
        raise _no_such_upload(upload_id)
    return upload_id.encode("ascii")


def _check_version(version_id: str | None) -> None:
    if version_id is not None and version_id != "null":
        raise S3Error("NoSuchVersion", extra=(("VersionId", version_id),))


def _directive(headers: HeaderList, name: str) -> str:
    value = (headers.get(name) or "COPY").strip().upper()
    if value not in {"COPY", "REPLACE"}:
        raise S3Error(
            "InvalidArgument",
            f"Unknown {name} value: {value!r}.",
            extra=(("ArgumentName", name), ("ArgumentValue", value)),
        )
    return value


def _copy_range(value: str | None, size: int) -> tuple[int, int]:
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


def _copy_conditions(found: _Opened, conditions: HeaderList, now: datetime) -> None:
    """
    Check ``x-amz-copy-source-if-*`` against the source.

    :raise S3Error: ``PreconditionFailed``.
    """
    try:
        evaluate(
            found.etag,
            found.modified,
            if_match=conditions.get("x-amz-copy-source-if-match"),
            if_none_match=conditions.get("x-amz-copy-source-if-none-match"),
            if_modified_since=conditions.get("x-amz-copy-source-if-modified-since"),
            if_unmodified_since=conditions.get("x-amz-copy-source-if-unmodified-since"),
            method="GET",
            now=now,
        )
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


def _splice(source_fd: int, target_fd: int, length: int) -> None:
    """
    Append ``length`` bytes of ``source_fd`` (from its start) to
    ``target_fd``, in the kernel where it can.
    """
    offset = 0
    copy_range = getattr(os, "copy_file_range", None)
    while offset < length and copy_range is not None:
        try:
            moved = copy_range(source_fd, target_fd, length - offset, offset)
        except OSError as e:
            if e.errno not in {
                errno.EXDEV,
                errno.EINVAL,
                errno.ENOSYS,
                errno.EOPNOTSUPP,
            }:
                raise
            break
        if moved == 0:
            raise OSError(errno.EIO, "a part ended before its recorded size")
        offset += moved
    while offset < length:
        data = os.pread(source_fd, min(_COPY_CHUNK, length - offset), offset)
        if not data:
            raise OSError(errno.EIO, "a part ended before its recorded size")
        _write_all(target_fd, data)
        offset += len(data)


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


@implementer(IObjectStore)
@define
class LocalStore:
    """
    An L{IObjectStore} over the directory ``root``.

    :ivar root: the directory, an absolute path.
    :ivar reactor: brings results from the thread pool back to the reactor
        thread.
    :ivar threadpool: where every file-system call runs.
    :ivar clock: the current time, for ``If-Modified-Since`` and the times
        of directory markers and uploads.
    :ivar chunk_size: bytes read per thread-pool call while streaming.
    :ivar fsync: whether writes are flushed to disk before they are
        reported done.
    :ivar min_part_size: the smallest size of every part of a multipart
        upload but the last.
    """

    log = Logger()

    _root: str
    _reactor: IReactorFromThreads
    _threadpool: ThreadPool
    _clock: IReactorTime
    _chunk_size: int = CHUNK_SIZE
    _fsync: bool = True
    _min_part_size: int = MIN_PART_SIZE

    @classmethod
    def for_bucket(
        cls,
        bucket: BucketConfig,
        reactor: IReactorThreads,
        clock: IReactorTime,
        threadpool: ThreadPool | None = None,
    ) -> LocalStore:
        """
        Make the store for a ``file`` bucket.

        :param bucket: its configuration; ``backend_options["root"]`` is the
            directory (an absolute path), ``backend_options["fsync"]``
            whether writes are flushed to disk (the default).
        :param reactor: runs the file-system calls' results back on the
            reactor thread.
        :param clock: tells the time, for ``If-Modified-Since``.
        :param threadpool: where file-system calls run; the reactor's own
            pool by default.
        :raise S3Error: ``InternalError`` if the bucket names no root.
        """
        root = bucket.option("root")
        if root is None:
            raise S3Error(
                "InternalError", f"The bucket {bucket.name!r} has no 'root' option."
            )
        fsync = bucket.flag("fsync") if bucket.option("fsync") is not None else True
        return cls(
            root=root,
            reactor=reactor,
            threadpool=threadpool
            if threadpool is not None
            else reactor.getThreadPool(),
            clock=clock,
            fsync=fsync,
        )

    # --- the thread pool ---------------------------------------------------

    def _call(self, f: Callable[..., _T], *args: object) -> Deferred[_T]:
        return _call_in_pool(self._reactor, self._threadpool, f, *args)

    def _io(self, f: Callable[..., _T], *args: object) -> Deferred[_T]:
        """
        Run ``f`` in the pool, reporting file-system failures a client can
        act on as S3 errors.
        """
        return self._call(f, *args).addErrback(_translate)

    def _io_owning(
        self, release: Callable[[_T], object], f: Callable[..., _T], *args: object
    ) -> Deferred[_T]:
        """
        Like L{_io}, for a call that acquires something: if the Deferred is
        cancelled before ``f`` returns, ``release`` is called (in the pool)
        with what it returns.
        """
        cancelled = False

        def cancel(_: Deferred[_T]) -> None:
            nonlocal cancelled
            cancelled = True

        result: Deferred[_T] = Deferred(cancel)

        def done(value: _T) -> None:
            if cancelled:
                self._call(release, value).addErrback(self._log_release)
            else:
                result.callback(value)

        def failed(reason: Failure) -> None:
            if not cancelled:
                result.errback(reason)

        self._io(f, *args).addCallbacks(done, failed)
        return result

    def _log_release(self, reason: Failure) -> None:
        self.log.failure("could not release after a cancelled call", reason)

    @property
    def _root_bytes(self) -> bytes:
        return os.fsencode(self._root)

    def _tree(self) -> _Tree:
        return _Tree(self._root_bytes, self._fsync)

    def _now_ns(self) -> int:
        return int(self._clock.seconds() * 1_000_000_000)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), UTC)

    # --- head_bucket -------------------------------------------------------

    def head_bucket(self) -> Deferred[None]:
        """
        :return: a Deferred that fires when the root is a directory, and
            fails with ``NoSuchBucket`` otherwise.
        """
        return self._call(self._check_root)

    def _check_root(self) -> None:
        if not os.path.isdir(self._root_bytes):
            raise S3Error("NoSuchBucket")

    # --- get_object --------------------------------------------------------

    def get_object(self, read: ObjectRead) -> Deferred[ObjectResponse]:
        """
        Read a file or a directory marker (GET, or HEAD when C{read.head}),
        with the headers it was written with.

        :return: a Deferred firing with a 200, 206 or 304 response; it fails
            with ``NoSuchKey`` for anything that is not a readable regular
            file (or a recorded directory marker) inside the root,
            ``InvalidArgument`` for a key under ``.multistore``,
            ``NoSuchVersion`` for a version other than ``null``,
            ``InvalidRange``, ``InvalidPartNumber`` or
            ``PreconditionFailed``. Cancelling it closes the file if it was
            being opened.
        """
        return Deferred.fromCoroutine(self._get(read))

    async def _get(self, read: ObjectRead) -> ObjectResponse:
        _check_version(read.version_id)
        path = self._path_for(read.key)
        if read.part_number is not None:
            if read.range is not None:
                raise S3Error(
                    "InvalidRequest",
                    "Cannot specify both Range header and partNumber query parameter.",
                )
            if not 1 <= read.part_number <= _MAX_PART_NUMBER:
                raise S3Error(
                    "InvalidArgument",
                    "Part number must be an integer between 1 and 10000, inclusive.",
                    extra=(
                        ("ArgumentName", "partNumber"),
                        ("ArgumentValue", str(read.part_number)),
                    ),
                )
        opened = await self._open(path, read.key)
        try:
            return self._respond(read, opened)
        except BaseException:
            self._close_quietly(opened.file, read.key)
            raise

    def _path_for(self, key: str) -> bytes:
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
        path = os.path.join(self._root_bytes, *encoded)
        return path + b"/" if marker else path

    def _open(self, path: bytes, key: str) -> Deferred[_Opened]:
        """
        Open ``path`` in the thread pool; if the returned Deferred is
        cancelled meanwhile, the file is closed when the open completes.
        """
        cancelled = False

        def cancel(_: Deferred[_Opened]) -> None:
            nonlocal cancelled
            cancelled = True

        result: Deferred[_Opened] = Deferred(cancel)

        def opened(value: _Opened) -> None:
            if cancelled:
                self._close_quietly(value.file, key)
            else:
                result.callback(value)

        def failed(reason: Failure) -> None:
            if cancelled:
                return
            if reason.check(S3Error) is None:
                self.log.failure("could not open {key}", reason, key=key)
                result.errback(S3Error("InternalError"))
            else:
                result.errback(reason)

        self._call(self._open_in_thread, path, key).addCallbacks(opened, failed)
        return result

    def _open_in_thread(self, path: bytes, key: str) -> _Opened:
        """
        Open and inspect one object (in the thread pool): the response must
        describe exactly the file it streams.
        """
        root = os.path.realpath(self._root_bytes)
        if path.endswith(b"/"):
            return self._open_marker_in_thread(root, path, key)
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
                _sidecar_path(self._root_bytes, _key_segments(key), False), status
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

    def _open_marker_in_thread(self, root: bytes, path: bytes, key: str) -> _Opened:
        real = os.path.realpath(path)
        if not _inside(root, real) or not os.path.isdir(real):
            if not os.path.isdir(root):
                raise S3Error("NoSuchBucket")
            raise S3Error("NoSuchKey")
        meta = _read_meta(
            _sidecar_path(self._root_bytes, _key_segments(key[:-1]), True), None
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

    def _respond(self, read: ObjectRead, opened: _Opened) -> ObjectResponse:
        """
        Answer a read from an open file, or raise; the caller closes the file
        if this raises.
        """
        etag = opened.etag
        last_modified = format_http_date(opened.modified)
        try:
            evaluate(
                etag,
                opened.modified,
                if_match=read.if_match,
                if_none_match=read.if_none_match,
                if_modified_since=read.if_modified_since,
                if_unmodified_since=read.if_unmodified_since,
                method="HEAD" if read.head else "GET",
                now=self._now(),
            )
        except NotModified:
            self._close_quietly(opened.file, read.key)
            return ObjectResponse(
                304, HeaderList.of(("etag", etag), ("last-modified", last_modified))
            )
        size = opened.size
        parts = opened.meta.parts if opened.meta is not None else ()
        selected: ByteRange | None
        extra: list[tuple[str, str]] = []
        if read.part_number is not None and parts:
            # A multipart object's part: its bytes, as a range.
            if read.part_number > len(parts):
                raise S3Error("InvalidPartNumber")
            start = sum(parts[: read.part_number - 1])
            part_size = parts[read.part_number - 1]
            selected = (
                ByteRange(start, start + part_size - 1, size) if part_size else None
            )
            extra.append(("x-amz-mp-parts-count", str(len(parts))))
        elif read.part_number is not None:
            if read.part_number != 1:
                raise S3Error("InvalidPartNumber")
            # A single-part object's only part is the whole object, sent as a
            # range (206 with Content-Range), as S3 does; an empty object has
            # no byte to put in a range.
            selected = ByteRange(0, size - 1, size) if size > 0 else None
        else:
            selected = parse_range(read.range, size)
        whole = selected is None and read.part_number is None
        headers = [
            ("content-type", opened.content_type),
            ("etag", etag),
            ("last-modified", last_modified),
            ("accept-ranges", "bytes"),
            *_visible_headers(opened.meta, whole),
            *extra,
        ]
        if selected is not None:
            code, offset, length = 206, selected.start, selected.length
            headers.append(("content-range", selected.content_range))
        elif read.part_number is not None and parts:
            code, offset, length = 200, 0, 0
        else:
            code, offset, length = 200, 0, size
        headers.append(("content-length", str(length)))
        if read.head:
            self._close_quietly(opened.file, read.key)
            return ObjectResponse(code, HeaderList(headers))
        body = FileBody(
            file=opened.file,
            offset=offset,
            length=length,
            reactor=self._reactor,
            threadpool=self._threadpool,
            chunk_size=self._chunk_size,
        )
        return ObjectResponse(code, HeaderList(headers), body)

    def _close_quietly(self, file: ReadableFile, key: str) -> None:
        def failed(reason: Failure) -> None:
            self.log.failure("could not close {key}", reason, key=key)

        self._call(file.close).addErrback(failed)

    # --- list_objects ------------------------------------------------------

    def list_objects(self, request: ListRequest) -> Deferred[ListPage]:
        """
        List one page of keys, walking the directory tree in the thread pool.

        Keys come in S3 order (UTF-8 byte order), so a directory ``d`` sorts
        as ``d/``. With a delimiter, keys roll up into common prefixes; a
        common prefix no greater than ``start_after`` is not repeated. Empty
        directories do not appear unless they carry a directory marker. The
        page resumes by position (``next_token`` stays ``None``).

        :return: a Deferred firing with the page; it fails with
            ``NoSuchBucket`` if the root is not a directory.
        """
        listing = self._call(self._list_in_thread, request)

        def report(result: tuple[ListPage, int]) -> ListPage:
            page, skipped = result
            if skipped:
                self.log.debug(
                    "skipped {count} file names that are not UTF-8 under {root}",
                    count=skipped,
                    root=self._root,
                )
            return page

        return listing.addCallback(report)

    def _list_in_thread(self, request: ListRequest) -> tuple[ListPage, int]:
        root = os.path.realpath(self._root_bytes)
        if not os.path.isdir(root):
            raise S3Error("NoSuchBucket")
        if request.max_keys <= 0:
            return ListPage(), 0
        walk = _Walk(
            root=root,
            prefix=request.prefix.encode("utf-8", "surrogatepass"),
            start_after=(
                request.start_after.encode("utf-8", "surrogatepass")
                if request.start_after
                else None
            ),
            delimiter=(
                request.delimiter.encode("utf-8", "surrogatepass")
                if request.delimiter
                else None
            ),
        )
        items = list(islice(walk.items(), request.max_keys + 1))
        truncated = len(items) > request.max_keys
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        for item in items[: request.max_keys]:
            if isinstance(item, ObjectInfo):
                objects.append(item)
            else:
                prefixes.append(item)
        page = ListPage(
            objects=tuple(objects),
            common_prefixes=tuple(prefixes),
            truncated=truncated,
        )
        return page, walk.skipped

    # --- put_object --------------------------------------------------------

    def put_object(self, write: ObjectWrite) -> Deferred[ObjectResponse]:
        """
        Write an object from a streamed body, atomically (see the module's
        docstring): the body goes to a temporary file and is renamed onto
        the key once it has arrived in full.

        :return: a Deferred firing with a 200 response carrying the
            object's ``etag`` (the quoted hex MD5 of its bytes) and the
            checksum headers sent. It fails with ``InvalidArgument`` for a
            key this store cannot hold, ``InvalidDigest`` or ``BadDigest``
            for a ``Content-MD5`` that is malformed or does not match,
            ``PreconditionFailed`` (or ``NoSuchKey`` for ``If-Match`` on a
            missing key), ``NoSuchBucket``, or the body's own failure; in
            every such case no object appears. Cancelling it stops the body.
        """
        return Deferred.fromCoroutine(self._put(write))

    async def _put(self, write: ObjectWrite) -> ObjectResponse:
        key = write_key(write.key)
        stored = object_headers(write.headers)
        expected = _content_md5(write.headers)
        length = write.body.length
        if key.marker and isinstance(length, int) and length > 0:
            raise _marker_with_bytes(key)
        temp = await self._receive(write.body, self._begin_in_thread, key)
        problem: S3Error | None = None
        digest = temp.digest()
        if expected is not None and digest != expected:
            problem = S3Error("BadDigest")
        elif key.marker and temp.size:
            problem = _marker_with_bytes(key)
        if problem is not None:
            await self._call(temp.discard)
            raise problem
        meta = _Meta(
            etag=f'"{digest.hex()}"',
            headers=stored,
            modified_ns=self._now_ns() if key.marker else None,
        )
        committed = await self._commit_write(
            _Plan(
                key=key,
                temp=temp,
                meta=meta,
                if_match=write.headers.get("if-match"),
                if_none_match=write.headers.get("if-none-match"),
            ),
        )
        return ObjectResponse(
            200,
            HeaderList([("etag", committed.etag), *_checksums(write.headers)]),
        )

    async def _receive(
        self,
        body: IBodyProducer,
        begin: Callable[..., _TempFile],
        *args: object,
    ) -> _TempFile:
        """
        Prepare with ``begin`` (in the pool; it makes the temporary file),
        then write the body into the file.
        """
        temp = await self._io_owning(_TempFile.discard, begin, *args)
        receiver = _Receiver(
            body=body, temp=temp, reactor=self._reactor, threadpool=self._threadpool
        )
        received = await receiver.receive().addErrback(_translate)
        return received

    def _begin_in_thread(self, key: _Key) -> _TempFile:
        """
        Check that ``key`` has room (no object where a directory must go, no
        directory where the object must go), then make the temporary file.
        """
        with self._tree() as tree:
            try:
                parent = tree.data_dir(key.directory, create=False, key=key.text)
            except FileNotFoundError:
                pass
            else:
                if not key.marker:
                    self._current(tree, parent, key)
            return tree.temp_file()

    def _current(
        self, tree: _Tree, parent: int, key: _Key
    ) -> tuple[str, datetime] | None:
        """
        The object a write of ``key`` would replace (in the pool).

        :param parent: the key's directory.
        :return: its ETag and time, or ``None`` if there is none.
        :raise S3Error: ``InvalidArgument`` if the key is a directory.
        """
        if key.marker:
            meta = _meta_at(tree.meta_dir_or_none(key.directory), _MARKER_NAME, None)
            if meta is None or meta.modified_ns is None:
                return None
            return meta.etag, _ns_time(meta.modified_ns)
        try:
            status = os.stat(key.name, dir_fd=parent)
        except OSError as e:
            if e.errno in _NOT_FOUND_ERRNOS:
                return None
            raise
        if stat.S_ISDIR(status.st_mode):
            raise key.refuse("it is a directory that holds other keys")
        if not stat.S_ISREG(status.st_mode):
            return None
        meta = _meta_at(tree.meta_dir_or_none(key.directory), key.meta_name, status)
        etag = meta.etag if meta is not None else synthetic_etag(status)
        return etag, modification_time(status)

    def _commit_write(self, plan: _Plan) -> Deferred[_Committed]:
        """
        Commit a write in the pool.

        :return: a Deferred firing once it is committed. Cancelling it
            abandons the write if the commit has not reached the rename
            yet (the client went away at the last moment).
        """
        abandoned = threading.Event()
        result: Deferred[_Committed] = Deferred(lambda _: abandoned.set())

        def settle(outcome: _Committed | Failure) -> None:
            if result.called:
                # Cancelled: nobody waits for the outcome any more.
                if isinstance(outcome, Failure) and not outcome.check(
                    CancelledError, S3Error
                ):
                    self.log.failure("an abandoned write failed", outcome)
            elif isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)

        self._io(self._commit_in_thread, plan, abandoned).addBoth(settle)
        return result

    def _commit_in_thread(
        self, plan: _Plan, abandoned: threading.Event | None = None
    ) -> _Committed:
        """
        Commit a write (in the pool); the temporary file is removed whatever
        happens.
        """
        try:
            with self._tree() as tree:
                return self._commit(tree, plan, abandoned)
        finally:
            plan.temp.discard()

    def _commit(
        self, tree: _Tree, plan: _Plan, abandoned: threading.Event | None = None
    ) -> _Committed:
        """
        Flush the data, write the metadata file, then under the key's lock
        check the conditions and rename both into place.

        :param abandoned: set if the write is abandoned; checked just
            before the rename.
        """
        key, temp = plan.key, plan.temp
        status: os.stat_result | None = None
        if not key.marker:
            if self._fsync:
                _fsync(temp.fd)
            status = os.fstat(temp.fd)
        temp.close()
        sidecar = tree.write_temp(_encode_meta(plan.meta, status))
        try:
            for _ in range(_RETRIES):
                parent = tree.data_dir(key.directory, create=True, key=key.text)
                with _LOCKS.hold(tree.lock_name(parent, key.name, key.directory)):
                    current = self._current(tree, parent, key)
                    _check_write_conditions(current, plan.if_match, plan.if_none_match)
                    if abandoned is not None and abandoned.is_set():
                        raise CancelledError()
                    if not key.marker:
                        try:
                            self._rename(temp.name, key.name, tree.tmp_fd, parent)
                        except FileNotFoundError:
                            if _removed(parent):
                                # Pruned by a delete meanwhile: again.
                                continue
                            raise
                        tree.sync(parent)
                    self._install(tree, sidecar, key.directory, key.meta_name)
                if status is None:
                    assert plan.meta.modified_ns is not None
                    modified = _ns_time(plan.meta.modified_ns)
                else:
                    modified = modification_time(status)
                return _Committed(etag=plan.meta.etag, modified=modified)
            raise S3Error(
                "ServiceUnavailable",
                "The key's directory kept disappearing; please try again.",
            )
        finally:
            tree.discard_temp(sidecar)

    def _rename(
        self, name: bytes, target: bytes, source_dir: int, target_dir: int
    ) -> None:
        """
        Rename a temporary file onto its place: the one step that makes a
        write visible.
        """
        os.replace(name, target, src_dir_fd=source_dir, dst_dir_fd=target_dir)

    def _install(
        self, tree: _Tree, sidecar: bytes, directory: Sequence[bytes], name: bytes
    ) -> None:
        """
        Rename a metadata file into the directory mirroring ``directory``.
        """
        for attempt in range(_RETRIES):
            meta_dir = tree.meta_dir(directory, create=True)
            try:
                self._rename(sidecar, name, tree.tmp_fd, meta_dir)
            except FileNotFoundError:
                if attempt < _RETRIES - 1 and _removed(meta_dir):
                    continue
                raise
            tree.sync(meta_dir)
            return

    # --- copy_object -------------------------------------------------------

    def copy_object(
        self, source: CopySource, key: str, headers: HeaderList
    ) -> Deferred[CopyResult]:
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
            source that is not a directory store (the gateway then streams
            the copy), ``NoSuchKey``, ``PreconditionFailed``,
            ``InvalidRequest`` for a copy of an object onto itself that
            changes nothing, and as L{put_object} does.
        """
        return Deferred.fromCoroutine(self._copy(source, key, headers))

    def _source_store(self, source: CopySource) -> LocalStore:
        if source.bucket.backend_type != "file":
            raise S3Error(
                "NotImplemented",
                "A directory store copies only from directory stores.",
            )
        root = source.bucket.option("root")
        if root is None:
            raise S3Error(
                "InternalError",
                f"The bucket {source.bucket.name!r} has no 'root' option.",
            )
        return LocalStore(
            root=root,
            reactor=self._reactor,
            threadpool=self._threadpool,
            clock=self._clock,
            chunk_size=self._chunk_size,
            fsync=self._fsync,
        )

    async def _copy(
        self, source: CopySource, key: str, headers: HeaderList
    ) -> CopyResult:
        origin = self._source_store(source)
        _check_version(source.version_id)
        target = write_key(key)
        directive = _directive(headers, "x-amz-metadata-directive")
        tagging = _directive(headers, "x-amz-tagging-directive")
        requested = object_headers(headers)
        source_path = origin._path_for(source.key)
        changes = (
            directive == "REPLACE"
            or "x-amz-storage-class" in headers
            or "x-amz-website-redirect-location" in headers
        )
        temp, opened = await self._io_owning(
            lambda copied: copied[0].discard(),
            self._copy_in_thread,
            origin,
            source,
            source_path,
            target,
            None,
            changes,
        )
        if target.marker and temp.size:
            await self._call(temp.discard)
            raise _marker_with_bytes(target)
        kept = self._copied_headers(opened, requested, directive, tagging, headers)
        meta = _Meta(
            etag=f'"{temp.digest().hex()}"',
            headers=kept,
            modified_ns=self._now_ns() if target.marker else None,
        )
        committed = await self._commit_write(
            _Plan(
                key=target,
                temp=temp,
                meta=meta,
                if_match=headers.get("if-match"),
                if_none_match=headers.get("if-none-match"),
            ),
        )
        return CopyResult(etag=committed.etag, last_modified=committed.modified)

    @staticmethod
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

    def _copy_in_thread(
        self,
        origin: LocalStore,
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
        opened = origin._open_in_thread(source_path, source.key)
        try:
            _copy_conditions(opened, source.conditions, self._now())
            offset, length = _copy_range(copy_range, opened.size)
            with self._tree() as tree:
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
                            self._current(tree, parent, target)
                temp = tree.temp_file()
            try:
                _copy_file(opened.file, offset, length, temp)
            except BaseException:
                temp.discard()
                raise
            return temp, opened
        finally:
            opened.file.close()

    # --- delete_object -----------------------------------------------------

    def delete_object(
        self, key: str, version_id: str | None
    ) -> Deferred[ObjectResponse]:
        """
        Delete a file (or a directory marker) and its metadata, then remove
        the directories it leaves empty, up to the root (a directory with a
        marker stays). A key that does not exist, or names a directory that
        is not a marker, is deleted already.

        :return: a Deferred firing with a 204 response; it fails with
            ``InvalidArgument`` for a reserved key, ``NoSuchVersion`` for a
            version other than ``null``, ``NoSuchBucket``.
        """
        return Deferred.fromCoroutine(self._delete(key, version_id))

    async def _delete(self, key: str, version_id: str | None) -> ObjectResponse:
        _check_version(version_id)
        await self._io(self._delete_in_thread, key)
        return ObjectResponse(204, NO_HEADERS)

    def _delete_in_thread(self, key: str) -> None:
        if key.split("/", 1)[0] == RESERVED:
            raise _reserved_key()
        check_segments(key)
        try:
            target = write_key(key)
        except S3Error:
            # A key no file can have: there is nothing to delete.
            return
        with self._tree() as tree:
            try:
                parent = tree.data_dir(target.directory, create=False)
            except (FileNotFoundError, S3Error):
                self._forget(tree, target)
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
                self._forget(tree, target)
            self._prune(tree, target.directory)

    def _forget(self, tree: _Tree, target: _Key) -> None:
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

    def _prune(self, tree: _Tree, directory: tuple[bytes, ...]) -> None:
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

    def delete_objects(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> Deferred[Sequence[DeleteOutcome]]:
        """
        Delete each ``(key, version_id)`` as L{delete_object} does, one
        after the other; one key's failure does not stop the others.

        :return: a Deferred firing with one outcome per key, in order.
        """
        return Deferred.fromCoroutine(self._delete_all(keys))

    async def _delete_all(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> Sequence[DeleteOutcome]:
        outcomes: list[DeleteOutcome] = []
        for key, version_id in keys:
            try:
                await self._delete(key, version_id)
            except S3Error as e:
                outcomes.append(DeleteOutcome(key=key, error=(e.code, e.message)))
            except Exception:
                self.log.failure("could not delete {key}", key=key)
                outcomes.append(
                    DeleteOutcome(
                        key=key,
                        error=("InternalError", S3Error("InternalError").message),
                    )
                )
            else:
                outcomes.append(DeleteOutcome(key=key, version_id=version_id))
        return outcomes

    # --- multipart uploads -------------------------------------------------

    def create_multipart_upload(self, key: str, headers: HeaderList) -> Deferred[str]:
        """
        Start an upload: its directory appears, with its record, at once.

        :return: a Deferred firing with the upload id; it fails with
            ``InvalidArgument`` for a key this store cannot hold (a
            directory marker included) and as L{object_headers} does.
        """
        return Deferred.fromCoroutine(self._create_upload(key, headers))

    async def _create_upload(self, key: str, headers: HeaderList) -> str:
        target = write_key(key)
        if target.marker:
            raise target.refuse("a directory marker cannot be uploaded in parts")
        stored = object_headers(headers)
        record = {
            "format": _FORMAT,
            "key": target.text,
            "headers": [list(pair) for pair in stored],
            "initiated_ns": self._now_ns(),
        }
        return await self._io(self._create_upload_in_thread, json.dumps(record))

    def _create_upload_in_thread(self, record: str) -> str:
        with self._tree() as tree:
            uploads = tree.reserved(_UPLOADS)
            staging = secrets.token_hex(16).encode("ascii") + b".upload"
            os.mkdir(staging, 0o777, dir_fd=tree.tmp_fd)
            try:
                directory = tree.open_dir(
                    tree.tmp_fd, staging, create=False, follow=False
                )
                try:
                    fd = os.open(_UPLOAD_FILE, _NEW_FILE_FLAGS, 0o666, dir_fd=directory)
                    try:
                        _write_all(fd, record.encode("ascii"))
                        if self._fsync:
                            _fsync(fd)
                    finally:
                        os.close(fd)
                    tree.sync(directory)
                finally:
                    os.close(directory)
                upload_id = secrets.token_urlsafe(24)
                os.rename(
                    staging,
                    upload_id.encode("ascii"),
                    src_dir_fd=tree.tmp_fd,
                    dst_dir_fd=uploads,
                )
            except BaseException:
                shutil.rmtree(
                    os.path.join(self._root_bytes, _RESERVED_BYTES, _TMP, staging),
                    ignore_errors=True,
                )
                raise
            tree.sync(uploads)
            return upload_id

    def _open_upload(
        self, tree: _Tree, upload_id: str, key: str
    ) -> tuple[int, _Upload]:
        """
        Open an upload's directory and read its record (in the pool).

        :raise S3Error: ``NoSuchUpload`` if there is no such upload of
            ``key``.
        """
        name = _check_upload_id(upload_id)
        try:
            uploads = tree.reserved(_UPLOADS, create=False)
            fd = tree.keep(tree.open_dir(uploads, name, create=False, follow=False))
        except (FileNotFoundError, NotADirectoryError, _NotDirectory):
            raise _no_such_upload(upload_id) from None
        upload = _read_upload(fd, upload_id)
        if upload is None or upload.key != key:
            raise _no_such_upload(upload_id)
        return fd, upload

    def _upload_lock(self, tree: _Tree, upload_id: str) -> bytes:
        """
        :return: the name of an upload's lock, held to change it.
        :raise S3Error: ``NoSuchUpload`` if there are no uploads at all.
        """
        name = _check_upload_id(upload_id)
        try:
            uploads = tree.reserved(_UPLOADS, create=False)
        except (FileNotFoundError, _NotDirectory):
            raise _no_such_upload(upload_id) from None
        return tree.lock_name(uploads, name)

    def upload_part(
        self, write: ObjectWrite, upload_id: str, part_number: int
    ) -> Deferred[ObjectResponse]:
        """
        Store one part from a streamed body, as L{put_object} stores an
        object (a part replaces an earlier one of the same number).

        :return: a Deferred firing with a 200 response carrying the part's
            ``etag``; it fails with ``NoSuchUpload``, ``InvalidArgument``
            for a part number outside 1 to 10000, ``InvalidDigest``,
            ``BadDigest`` or the body's own failure.
        """
        return Deferred.fromCoroutine(self._upload_part(write, upload_id, part_number))

    async def _upload_part(
        self, write: ObjectWrite, upload_id: str, part_number: int
    ) -> ObjectResponse:
        _check_part_number(part_number)
        _check_upload_id(upload_id)
        expected = _content_md5(write.headers)
        temp = await self._receive(
            write.body, self._begin_part_in_thread, write.key, upload_id
        )
        digest = temp.digest()
        if expected is not None and digest != expected:
            await self._call(temp.discard)
            raise S3Error("BadDigest")
        checksums = _checksums(write.headers)
        meta = _Meta(etag=f'"{digest.hex()}"', headers=tuple(checksums))
        await self._io(
            self._install_part_in_thread, write.key, upload_id, part_number, temp, meta
        )
        return ObjectResponse(200, HeaderList([("etag", meta.etag), *checksums]))

    def _begin_part_in_thread(self, key: str, upload_id: str) -> _TempFile:
        with self._tree() as tree:
            self._open_upload(tree, upload_id, key)
            return tree.temp_file()

    def _install_part_in_thread(
        self, key: str, upload_id: str, number: int, temp: _TempFile, meta: _Meta
    ) -> datetime:
        """
        Move a received part into its upload, with its record.

        :return: the part's time.
        """
        try:
            with self._tree() as tree:
                if self._fsync:
                    _fsync(temp.fd)
                status = os.fstat(temp.fd)
                temp.close()
                sidecar = tree.write_temp(_encode_meta(meta, status))
                try:
                    with _LOCKS.hold(self._upload_lock(tree, upload_id)):
                        # Opened under the lock: a completion or abort that
                        # held it has taken the upload away already.
                        fd, _ = self._open_upload(tree, upload_id, key)
                        name = str(number).encode("ascii")
                        self._rename(temp.name, name, tree.tmp_fd, fd)
                        self._rename(sidecar, name + _SIDECAR_SUFFIX, tree.tmp_fd, fd)
                        tree.sync(fd)
                finally:
                    tree.discard_temp(sidecar)
                return modification_time(status)
        finally:
            temp.discard()

    def upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> Deferred[CopyResult]:
        """
        Store one part copied from an object of a directory store (a range
        of it with ``source.range``).

        :return: a Deferred firing with the part's ETag and time; it fails
            with ``NotImplemented`` for a source that is not a directory
            store, ``NoSuchUpload``, ``NoSuchKey``, ``InvalidRange``,
            ``PreconditionFailed``.
        """
        return Deferred.fromCoroutine(
            self._upload_part_copy(source, key, upload_id, part_number)
        )

    async def _upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> CopyResult:
        origin = self._source_store(source)
        _check_version(source.version_id)
        _check_part_number(part_number)
        _check_upload_id(upload_id)
        source_path = origin._path_for(source.key)
        await self._io(self._check_upload_in_thread, key, upload_id)
        temp, _ = await self._io_owning(
            lambda copied: copied[0].discard(),
            self._copy_in_thread,
            origin,
            source,
            source_path,
            None,
            source.range,
            True,
        )
        meta = _Meta(etag=f'"{temp.digest().hex()}"')
        modified = await self._io(
            self._install_part_in_thread, key, upload_id, part_number, temp, meta
        )
        return CopyResult(etag=meta.etag, last_modified=modified)

    def _check_upload_in_thread(self, key: str, upload_id: str) -> None:
        with self._tree() as tree:
            self._open_upload(tree, upload_id, key)

    def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart],
        headers: HeaderList,
    ) -> Deferred[CopyResult]:
        """
        Assemble the object from ``parts`` in a temporary file and commit it
        as L{put_object} commits (with ``If-Match``/``If-None-Match`` from
        ``headers``), then remove the upload.

        :return: a Deferred firing with the object's ETag
            (``"<hex MD5 of the parts' binary MD5s>-<count>"``) and time. It
            fails with ``MalformedXML`` for no parts, ``InvalidPartOrder``,
            ``InvalidPart``, ``EntityTooSmall``, ``NoSuchUpload``,
            ``PreconditionFailed``.
        """
        return Deferred.fromCoroutine(
            self._complete(key, upload_id, tuple(parts), headers)
        )

    async def _complete(
        self,
        key: str,
        upload_id: str,
        parts: tuple[CompletedPart, ...],
        headers: HeaderList,
    ) -> CopyResult:
        target = write_key(key)
        _check_upload_id(upload_id)
        if not parts:
            raise S3Error("MalformedXML", "The request must name at least one part.")
        numbers = [part.part_number for part in parts]
        if any(later <= earlier for earlier, later in pairwise(numbers)):
            raise S3Error("InvalidPartOrder")
        committed = await self._io(
            self._complete_in_thread,
            target,
            upload_id,
            parts,
            headers.get("if-match"),
            headers.get("if-none-match"),
        )
        return CopyResult(etag=committed.etag, last_modified=committed.modified)

    def _complete_in_thread(
        self,
        target: _Key,
        upload_id: str,
        parts: tuple[CompletedPart, ...],
        if_match: str | None,
        if_none_match: str | None,
    ) -> _Committed:
        with self._tree() as tree, _LOCKS.hold(self._upload_lock(tree, upload_id)):
            fd, upload = self._open_upload(tree, upload_id, target.text)
            found = [self._chosen_part(fd, upload_id, part) for part in parts]
            for part in found[:-1]:
                if part.status.st_size < self._min_part_size:
                    raise S3Error(
                        "EntityTooSmall",
                        extra=(
                            ("ProposedSize", str(part.status.st_size)),
                            ("MinSizeAllowed", str(self._min_part_size)),
                            ("PartNumber", str(part.number)),
                            ("ETag", part.meta.etag),
                        ),
                    )
            temp = tree.temp_file()
            try:
                digests = hashlib.md5(usedforsecurity=False)
                for part in found:
                    self._append_part(fd, upload_id, part, temp)
                    digests.update(bytes.fromhex(_opaque(part.meta.etag)))
                meta = _Meta(
                    etag=f'"{digests.hexdigest()}-{len(found)}"',
                    headers=upload.headers,
                    parts=tuple(part.status.st_size for part in found),
                )
                committed = self._commit(
                    tree,
                    _Plan(
                        key=target,
                        temp=temp,
                        meta=meta,
                        if_match=if_match,
                        if_none_match=if_none_match,
                    ),
                )
            finally:
                temp.discard()
            self._remove_upload(tree, upload_id)
            return committed

    def _chosen_part(self, fd: int, upload_id: str, chosen: CompletedPart) -> _Part:
        """
        :return: the uploaded part a completion names.
        :raise S3Error: ``InvalidPart`` if it is missing or its ETag differs.
        """
        part = (
            _read_part(fd, chosen.part_number)
            if 1 <= chosen.part_number <= _MAX_PART_NUMBER
            else None
        )
        if part is not None:
            try:
                bytes.fromhex(_opaque(part.meta.etag))
            except ValueError:
                part = None
        if (
            part is None
            or _opaque(part.meta.etag) != _opaque(chosen.etag)
            or any(
                part.meta.get("x-amz-checksum-" + algorithm.lower())
                not in {None, value}
                for algorithm, value in chosen.checksums
            )
        ):
            raise S3Error(
                "InvalidPart",
                extra=(
                    ("UploadId", upload_id),
                    ("PartNumber", str(chosen.part_number)),
                    ("ETag", chosen.etag),
                ),
            )
        return part

    def _append_part(
        self, fd: int, upload_id: str, part: _Part, temp: _TempFile
    ) -> None:
        source = os.open(str(part.number), _READ_FLAGS, dir_fd=fd)
        try:
            status = os.fstat(source)
            if _describe(status) != _describe(part.status):
                raise S3Error(
                    "InvalidPart",
                    extra=(("UploadId", upload_id), ("PartNumber", str(part.number))),
                )
            _splice(source, temp.fd, status.st_size)
            temp.size += status.st_size
        finally:
            os.close(source)

    def _remove_upload(self, tree: _Tree, upload_id: str) -> None:
        """
        Take an upload out of ``uploads/`` in one rename, then delete it.
        """
        gone = secrets.token_hex(16).encode("ascii") + b".gone"
        os.rename(
            upload_id.encode("ascii"),
            gone,
            src_dir_fd=tree.reserved(_UPLOADS),
            dst_dir_fd=tree.tmp_fd,
        )
        tree.sync(tree.reserved(_UPLOADS))
        shutil.rmtree(
            os.path.join(self._root_bytes, _RESERVED_BYTES, _TMP, gone),
            ignore_errors=True,
        )

    def abort_multipart_upload(self, key: str, upload_id: str) -> Deferred[None]:
        """
        Remove an upload and its parts.

        :return: a Deferred that fires once it is gone; it fails with
            ``NoSuchUpload``.
        """
        return self._io(self._abort_in_thread, key, upload_id)

    def _abort_in_thread(self, key: str, upload_id: str) -> None:
        with self._tree() as tree, _LOCKS.hold(self._upload_lock(tree, upload_id)):
            self._open_upload(tree, upload_id, key)
            self._remove_upload(tree, upload_id)

    def list_parts(
        self, key: str, upload_id: str, max_parts: int, part_number_marker: int
    ) -> Deferred[PartsPage]:
        """
        List an upload's parts above ``part_number_marker``, in order.

        :return: a Deferred firing with up to ``max_parts`` parts; it fails
            with ``NoSuchUpload``.
        """
        return self._io(
            self._list_parts_in_thread, key, upload_id, max_parts, part_number_marker
        )

    def _list_parts_in_thread(
        self, key: str, upload_id: str, max_parts: int, marker: int
    ) -> PartsPage:
        with self._tree() as tree:
            fd, _ = self._open_upload(tree, upload_id, key)
            numbers = sorted(
                int(name)
                for name in os.listdir(fd)
                if _PART_NAME.match(name) and marker < int(name) <= _MAX_PART_NUMBER
            )
            listed: list[PartInfo] = []
            truncated = False
            for number in numbers:
                part = _read_part(fd, number)
                if part is None:
                    continue
                if len(listed) >= max_parts:
                    truncated = True
                    break
                listed.append(
                    PartInfo(
                        part_number=number,
                        etag=part.meta.etag,
                        size=part.status.st_size,
                        last_modified=modification_time(part.status),
                    )
                )
            return PartsPage(
                parts=tuple(listed),
                truncated=truncated,
                next_part_number_marker=listed[-1].part_number if listed else None,
            )

    def list_multipart_uploads(
        self,
        prefix: str,
        delimiter: str | None,
        key_marker: str | None,
        upload_id_marker: str | None,
        max_uploads: int,
    ) -> Deferred[UploadsPage]:
        """
        List the uploads in progress under ``prefix``, by key (UTF-8 byte
        order) then time of initiation, resuming after ``key_marker`` (and,
        within that key, after ``upload_id_marker``); with a delimiter,
        keys roll up into common prefixes.

        :return: a Deferred firing with up to ``max_uploads`` uploads and
            common prefixes together.
        """
        return self._io(
            self._list_uploads_in_thread,
            prefix,
            delimiter,
            key_marker,
            upload_id_marker,
            max_uploads,
        )

    def _list_uploads_in_thread(
        self,
        prefix: str,
        delimiter: str | None,
        key_marker: str | None,
        upload_id_marker: str | None,
        max_uploads: int,
    ) -> UploadsPage:
        with self._tree() as tree:
            try:
                uploads = tree.reserved(_UPLOADS, create=False)
            except FileNotFoundError:
                return UploadsPage()
            found: list[_Upload] = []
            for name in os.listdir(uploads):
                if not _UPLOAD_ID.match(name):
                    continue
                try:
                    fd = tree.open_dir(
                        uploads, name.encode("ascii"), create=False, follow=False
                    )
                except OSError:
                    continue
                try:
                    upload = _read_upload(fd, name)
                finally:
                    os.close(fd)
                if upload is not None and upload.key.startswith(prefix):
                    found.append(upload)

        def order(upload: _Upload) -> tuple[bytes, int, str]:
            return (
                upload.key.encode("utf-8", "surrogatepass"),
                upload.initiated_ns,
                upload.upload_id,
            )

        found.sort(key=order)
        if key_marker:
            marker = key_marker.encode("utf-8", "surrogatepass")
            position: tuple[bytes, int, str] | None = None
            if upload_id_marker:
                for upload in found:
                    if (
                        upload.key == key_marker
                        and upload.upload_id == upload_id_marker
                    ):
                        position = order(upload)
            if position is not None:
                found = [upload for upload in found if order(upload) > position]
            else:
                found = [upload for upload in found if order(upload)[0] > marker]
        items: list[_Upload | str] = []
        truncated = False
        for upload in found:
            rolled = None
            if delimiter:
                at = upload.key.find(delimiter, len(prefix))
                if at != -1:
                    rolled = upload.key[: at + len(delimiter)]
            if rolled is not None:
                if items and items[-1] == rolled:
                    continue
                if key_marker and key_marker.startswith(rolled):
                    continue
            if len(items) >= max_uploads:
                truncated = True
                break
            items.append(rolled if rolled is not None else upload)
        last = items[-1] if items and truncated else None
        return UploadsPage(
            uploads=tuple(
                UploadInfo(
                    key=item.key,
                    upload_id=item.upload_id,
                    initiated=_ns_time(item.initiated_ns),
                )
                for item in items
                if isinstance(item, _Upload)
            ),
            common_prefixes=tuple(item for item in items if isinstance(item, str)),
            truncated=truncated,
            next_key_marker=(
                None if last is None else last if isinstance(last, str) else last.key
            ),
            next_upload_id_marker=(
                last.upload_id if isinstance(last, _Upload) else None
            ),
        )

    # --- buckets -----------------------------------------------------------

    def create_bucket(self) -> Deferred[None]:
        """
        Create the root directory (and its parents).

        :return: a Deferred that fires once it exists; it fails with
            ``BucketAlreadyOwnedByYou`` if it existed already.
        """
        return self._io(self._create_bucket_in_thread)

    def _create_bucket_in_thread(self) -> None:
        try:
            os.makedirs(self._root_bytes)
        except FileExistsError:
            if os.path.isdir(self._root_bytes):
                raise S3Error("BucketAlreadyOwnedByYou") from None
            raise S3Error(
                "InternalError", "The bucket's root exists and is not a directory."
            ) from None

    def delete_bucket(self) -> Deferred[None]:
        """
        Remove the root directory, with the store's housekeeping in it
        (metadata of objects removed by hand, uploads in progress).

        :return: a Deferred that fires once it is gone; it fails with
            ``BucketNotEmpty`` if anything else is in it, ``NoSuchBucket``
            if there is no root.
        """
        return self._io(self._delete_bucket_in_thread)

    def _delete_bucket_in_thread(self) -> None:
        root = self._root_bytes
        try:
            names = os.listdir(root)
        except (FileNotFoundError, NotADirectoryError):
            raise S3Error("NoSuchBucket") from None
        if any(name != _RESERVED_BYTES for name in names):
            raise S3Error("BucketNotEmpty")
        reserved = os.path.join(root, _RESERVED_BYTES)
        if os.path.islink(reserved) or not os.path.isdir(reserved):
            with suppress(FileNotFoundError):
                os.unlink(reserved)
        else:
            shutil.rmtree(reserved)
        try:
            os.rmdir(root)
        except OSError as e:
            if e.errno in {errno.ENOTEMPTY, errno.EEXIST}:
                raise S3Error("BucketNotEmpty") from None
            raise


def _marker_with_bytes(key: _Key) -> S3Error:
    return key.refuse("a directory marker cannot hold bytes")


def _read_upload(fd: int, upload_id: str) -> _Upload | None:
    """
    Read an upload's record from its directory (in the pool).
    """
    data = _read_small(_UPLOAD_FILE, fd)
    if data is None:
        return None
    try:
        record = json.loads(data)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        return None
    key = record.get("key")
    headers = record.get("headers")
    initiated = record.get("initiated_ns")
    if (
        not isinstance(key, str)
        or not isinstance(headers, list)
        or type(initiated) is not int
        or not all(
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(item, str) for item in pair)
            for pair in headers
        )
    ):
        return None
    return _Upload(
        upload_id=upload_id,
        key=key,
        headers=tuple((pair[0], pair[1]) for pair in headers),
        initiated_ns=initiated,
    )


def _read_part(fd: int, number: int) -> _Part | None:
    """
    Find part ``number`` of the upload open as ``fd`` (in the pool).

    :return: the part, or ``None`` if it is missing or its record does not
        describe its data.
    """
    name = str(number)
    try:
        status = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    meta = _meta_at(fd, name.encode("ascii") + _SIDECAR_SUFFIX, status)
    if meta is None:
        return None
    return _Part(number=number, meta=meta, status=status)


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
