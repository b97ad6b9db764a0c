# -*- test-case-name: tests.unit.test_local -*-
"""
The ``file`` store: a bucket served from a directory.

A backend key ``a/b/c`` is the file ``ROOT/a/b/c``. Every file-system call
runs in a thread pool, never on the reactor thread. Nothing outside ``ROOT``
is ever served or listed, whatever symbolic links inside it point to.

The top-level name ``.multistore`` is reserved for the store's own
per-object metadata: keys under it are refused and it never shows in
listings. Keys that cannot name a file (an empty segment, a trailing ``/``)
and names that are not UTF-8 do not exist as far as clients can tell.

A file placed in the directory by hand has no recorded MD5, so its ETag is a
tag derived from its identity and modification time, shaped like a
one-part multipart ETag (``"<32 hex>-1"``) so that clients do not mistake it
for the MD5 of the content.
"""

from __future__ import annotations

import errno
import hashlib
import mimetypes
import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Final, Protocol, TypeVar

from attrs import define, field, frozen
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IConsumer,
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
from multistore.backends.unwritable import Unwritable
from multistore.config import BucketConfig
from multistore.dates import format_http_date
from multistore.headers import HeaderList
from multistore.interfaces import IBody, IObjectStore
from multistore.model import (
    ListPage,
    ListRequest,
    ObjectInfo,
    ObjectRead,
    ObjectResponse,
)
from multistore.s3.conditions import NotModified, evaluate
from multistore.s3.errors import S3Error
from multistore.s3.keys import check_segments
from multistore.s3.ranges import ByteRange, parse_range

_T = TypeVar("_T")

#: The top-level directory name reserved for the store's own metadata.
RESERVED: Final = ".multistore"

#: Bytes read from a file per thread-pool call while streaming.
CHUNK_SIZE: Final = 256 * 1024

#: The highest part number S3 accepts.
_MAX_PART_NUMBER: Final = 10_000

_RESERVED_BYTES: Final = RESERVED.encode("ascii")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

#: The media type of a compressed file, by the encoding ``mimetypes`` finds.
_ENCODING_TYPES: Final = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}

_NOT_FOUND_ERRNOS: Final = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EISDIR}
)
_DENIED_ERRNOS: Final = frozenset({errno.EACCES, errno.EPERM})

_OPEN_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
)


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


@frozen
class _Opened:
    """
    A file opened for a read, with what was learnt about it in the same
    thread call.
    """

    file: OpenFile
    status: os.stat_result
    content_type: str


@frozen
class _Entry:
    """
    One listable thing in a directory, during a listing.
    """

    sort_key: bytes
    path: bytes
    directory: bool
    status: os.stat_result | None


@implementer(IObjectStore)
@define
class LocalStore(Unwritable):
    """
    An L{IObjectStore} over the directory ``root``.

    :ivar root: the directory, an absolute path.
    :ivar reactor: brings results from the thread pool back to the reactor
        thread.
    :ivar threadpool: where every file-system call runs.
    :ivar clock: the current time, for ``If-Modified-Since``.
    :ivar chunk_size: bytes read per thread-pool call while streaming.
    """

    log = Logger()

    _root: str
    _reactor: IReactorFromThreads
    _threadpool: ThreadPool
    _clock: IReactorTime
    _chunk_size: int = CHUNK_SIZE

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
            directory (an absolute path).
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
        return cls(
            root=root,
            reactor=reactor,
            threadpool=threadpool
            if threadpool is not None
            else reactor.getThreadPool(),
            clock=clock,
        )

    # --- the thread pool ---------------------------------------------------

    def _call(self, f: Callable[..., _T], *args: object) -> Deferred[_T]:
        return _call_in_pool(self._reactor, self._threadpool, f, *args)

    @property
    def _root_bytes(self) -> bytes:
        return os.fsencode(self._root)

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
        Read a file (GET, or HEAD when C{read.head}).

        :return: a Deferred firing with a 200, 206 or 304 response; it fails
            with ``NoSuchKey`` for anything that is not a readable regular
            file inside the root, ``InvalidArgument`` for a key under
            ``.multistore``, ``NoSuchVersion`` for a version other than
            ``null``, ``InvalidRange``, ``InvalidPartNumber`` or
            ``PreconditionFailed``. Cancelling it closes the file if it was
            being opened.
        """
        return Deferred.fromCoroutine(self._get(read))

    async def _get(self, read: ObjectRead) -> ObjectResponse:
        if read.version_id is not None and read.version_id != "null":
            raise S3Error("NoSuchVersion", extra=(("VersionId", read.version_id),))
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
        :return: the file-system path of ``key``.
        :raise S3Error: ``InvalidArgument`` for a reserved or ``.``/``..``
            key, ``NoSuchKey`` for one that cannot name a file.
        """
        segments = key.split("/")
        if segments[0] == RESERVED:
            raise S3Error(
                "InvalidArgument",
                f"Keys under {RESERVED}/ are reserved by this store.",
                extra=(("ArgumentName", "key"),),
            )
        check_segments(key)
        if any(segment == "" for segment in segments) or "\x00" in key:
            raise S3Error("NoSuchKey")
        try:
            encoded = [segment.encode("utf-8") for segment in segments]
        except UnicodeEncodeError:
            raise S3Error("NoSuchKey") from None
        return os.path.join(self._root_bytes, *encoded)

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
        Open and inspect one file (in the thread pool): the response must
        describe exactly the file it streams.
        """
        root = os.path.realpath(self._root_bytes)
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
            content_type = guess_content_type(key)
        except BaseException:
            os.close(fd)
            raise
        return _Opened(file=OpenFile(fd), status=status, content_type=content_type)

    def _respond(self, read: ObjectRead, opened: _Opened) -> ObjectResponse:
        """
        Answer a read from an open file, or raise; the caller closes the file
        if this raises.
        """
        status = opened.status
        etag = synthetic_etag(status)
        modified = modification_time(status)
        last_modified = format_http_date(modified)
        try:
            evaluate(
                etag,
                modified,
                if_match=read.if_match,
                if_none_match=read.if_none_match,
                if_modified_since=read.if_modified_since,
                if_unmodified_since=read.if_unmodified_since,
                method="HEAD" if read.head else "GET",
                now=datetime.fromtimestamp(self._clock.seconds(), UTC),
            )
        except NotModified:
            self._close_quietly(opened.file, read.key)
            return ObjectResponse(
                304, HeaderList.of(("etag", etag), ("last-modified", last_modified))
            )
        size = status.st_size
        selected: ByteRange | None
        if read.part_number is not None:
            if read.part_number != 1:
                raise S3Error("InvalidPartNumber")
            # A single-part object's only part is the whole object, sent as a
            # range (206 with Content-Range), as S3 does; an empty object has
            # no byte to put in a range.
            selected = ByteRange(0, size - 1, size) if size > 0 else None
        else:
            selected = parse_range(read.range, size)
        headers = [
            ("content-type", opened.content_type),
            ("etag", etag),
            ("last-modified", last_modified),
            ("accept-ranges", "bytes"),
        ]
        if selected is None:
            code, offset, length = 200, 0, size
        else:
            code, offset, length = 206, selected.start, selected.length
            headers.append(("content-range", selected.content_range))
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

    def _close_quietly(self, file: OpenFile, key: str) -> None:
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
        directories do not appear. The page resumes by position
        (``next_token`` stays ``None``).

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
    One listing's depth-first walk of the tree, in key order.

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
                if entry.directory and not self._holds_file(entry, ancestors):
                    continue
                self._last_prefix = rolled
                yield rolled.decode("utf-8")
            elif entry.directory:
                identity = self._directory_identity(entry)
                if identity is None or identity in ancestors:
                    continue
                yield from self._directory(entry.path, key, ancestors | {identity})
            else:
                status = entry.status
                if status is None:
                    try:
                        status = os.stat(entry.path, follow_symlinks=False)
                    except OSError:
                        continue
                yield ObjectInfo(
                    key=key.decode("utf-8"),
                    size=status.st_size,
                    last_modified=modification_time(status),
                    etag=synthetic_etag(status),
                    storage_class="STANDARD",
                )

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

    def _holds_file(self, entry: _Entry, ancestors: set[tuple[int, int]]) -> bool:
        """
        :return: whether the directory ``entry`` holds a listable file at
            any depth; the search stops at the first one.
        """
        identity = self._directory_identity(entry)
        if identity is None or identity in ancestors:
            return False
        for child in self._entries(entry.path, None):
            if not child.directory:
                return True
            if self._holds_file(child, ancestors | {identity}):
                return True
        return False


def _identity(status: os.stat_result) -> tuple[int, int]:
    return (status.st_dev, status.st_ino)
