# -*- test-case-name: tests.unit.test_local,tests.unit.test_local_writes -*-
"""
L{LocalStore}: the L{IObjectStore} over a directory (reads, writes,
copies, deletes, multipart uploads, buckets), with the write conditions,
copy options and error translations only it uses.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from itertools import islice, pairwise
from typing import TYPE_CHECKING, Final, TypeVar

from attrs import define, frozen
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import (
    IReactorFromThreads,
    IReactorThreads,
    IReactorTime,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from multistore.config import BucketConfig
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import IObjectStore
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
    PartsPage,
    UploadsPage,
)
from multistore.s3.conditions import NotModified, evaluate
from multistore.s3.dates import format_http_date
from multistore.s3.errors import S3Error
from multistore.s3.keys import check_segments
from multistore.s3.ranges import ByteRange, parse_range
from multistore.stores.local.files import (
    CHUNK_SIZE,
    FileBody,
    OpenFile,
    ReadableFile,
    _call_in_pool,
    _NoFile,
)
from multistore.stores.local.listing import _Walk
from multistore.stores.local.meta import (
    _CHECKSUM_HEADERS,
    _FORMAT,
    _checksums,
    _content_md5,
    _encode_meta,
    _key_segments,
    _Meta,
    _meta_at,
    _ns_time,
    _read_meta,
    _sidecar_path,
    _visible_headers,
    guess_content_type,
    modification_time,
    object_headers,
    opaque,
    synthetic_etag,
)
from multistore.stores.local.multipart import (
    _UPLOAD_FILE,
    _UPLOAD_ID,
    _UPLOADS,
    MIN_PART_SIZE,
    UploadRecord,
    UploadsWanted,
    _append_part,
    _check_upload_id,
    _chosen_part,
    _open_upload,
    _parts_page,
    _read_upload,
    _upload_lock,
    check_part_number,
    uploads_page,
)
from multistore.stores.local.receive import _Receiver
from multistore.stores.local.tree import (
    _COPY_CHUNK,
    _DIR_SUFFIX,
    _LOCKS,
    _MARKER_NAME,
    _NEW_FILE_FLAGS,
    _OPEN_FLAGS,
    _RESERVED_BYTES,
    _RETRIES,
    _SIDECAR_SUFFIX,
    _TMP,
    RESERVED,
    _descriptor_path,
    _fsync,
    _inside,
    _Key,
    _removed,
    _reserved_key,
    _TempFile,
    _Tree,
    _write_all,
    write_key,
)
from multistore.stores.streaming import (
    cannot_copy,
    check_read,
    conditions,
    deferred,
    source_read,
)

if TYPE_CHECKING:
    from twisted.web.iweb import IBodyProducer


_T = TypeVar("_T")

_COPY_RANGE: Final = re.compile(r"bytes=(\d+)-(\d+)\Z")

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


@frozen
class _Plan:
    """
    A write ready to commit.

    :ivar key: where it goes.
    :ivar temp: the data, in a temporary file (ignored for a marker).
    :ivar meta: what to record about it.
    :ivar conditions: the write's ``If-Match`` and ``If-None-Match``.
    """

    key: _Key
    temp: _TempFile
    meta: _Meta
    conditions: HeaderList = NO_HEADERS


@frozen
class _Committed:
    """
    A committed write: the object's ETag and time.
    """

    etag: str
    modified: datetime


def _given(value: str | None) -> str | None:
    if value is None or not value.strip(" \t"):
        return None
    return value


def _check_write_conditions(
    current: tuple[str, datetime] | None, conditions: HeaderList
) -> None:
    """
    Check a write's conditions against the object it would replace.

    :param current: that object's ETag and time, or ``None`` if none.
    :param conditions: the write's ``If-Match`` and ``If-None-Match``.
    :raise S3Error: ``PreconditionFailed``, or ``NoSuchKey`` for
        ``If-Match`` when there is no object.
    """
    if_match = _given(conditions.get("if-match"))
    if_none_match = _given(conditions.get("if-none-match"))
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


def check_version(version_id: str | None) -> None:
    """
    Refuse a version other than ``null``: the store keeps no versions.

    :raise S3Error: ``NoSuchVersion``.
    """
    if version_id is not None and version_id != "null":
        raise S3Error("NoSuchVersion", extra=(("VersionId", version_id),))


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
        return _owned(
            self._io(f, *args),
            lambda value: self._call(release, value).addErrback(self._log_release),
        )

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

    @deferred
    async def get_object(self, read: ObjectRead) -> ObjectResponse:
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
        check_version(read.version_id)
        path = self._path_for(read.key)
        if read.part_number is not None:
            if read.range is not None:
                raise S3Error(
                    "InvalidRequest",
                    "Cannot specify both Range header and partNumber query parameter.",
                )
            check_part_number(read.part_number)
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

        def failed(reason: Failure) -> Failure:
            if reason.check(S3Error, CancelledError) is None:
                self.log.failure("could not open {key}", reason, key=key)
                return Failure(S3Error("InternalError"))
            return reason

        opening = _owned(
            self._call(self._open_in_thread, path, key),
            lambda opened: self._close_quietly(opened.file, key),
        )
        return opening.addErrback(failed)

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
            check_read(read, etag, opened.modified, self._now())
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

    @deferred
    async def put_object(self, write: ObjectWrite) -> ObjectResponse:
        """
        Write an object from a streamed body, atomically (see the package's
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
        committed = await self._commit_object(key, temp, stored, write.headers)
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

    def _commit_object(
        self,
        key: _Key,
        temp: _TempFile,
        kept: Sequence[tuple[str, str]],
        headers: HeaderList,
    ) -> Deferred[_Committed]:
        """
        Commit the bytes in ``temp`` as the object ``key``: its ETag the MD5
        of its bytes, ``kept`` the headers it carries, and the conditions in
        the write's ``headers`` checked at the rename (see L{_commit_write}).
        """
        meta = _Meta(
            etag=f'"{temp.digest().hex()}"',
            headers=tuple(kept),
            modified_ns=self._now_ns() if key.marker else None,
        )
        return self._commit_write(
            _Plan(key=key, temp=temp, meta=meta, conditions=conditions(headers))
        )

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
                    _check_write_conditions(current, plan.conditions)
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

    def can_copy(self, source: CopySource) -> bool:
        """
        A directory store copies from directory stores (this one or
        another), whatever the range.
        """
        return source.bucket.backend_type == "file"

    def _source_store(self, source: CopySource) -> LocalStore:
        if not self.can_copy(source):
            raise cannot_copy()
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

    @deferred
    async def copy_object(
        self, source: CopySource, key: str, headers: HeaderList
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
            source L{can_copy} refuses, ``NoSuchKey``, ``PreconditionFailed``,
            ``InvalidRequest`` for a copy of an object onto itself that
            changes nothing, and as L{put_object} does.
        """
        origin = self._source_store(source)
        check_version(source.version_id)
        target = write_key(key)
        directive = copy_directive(headers, "x-amz-metadata-directive")
        tagging = copy_directive(headers, "x-amz-tagging-directive")
        requested = object_headers(headers)
        source_path = origin._path_for(source.key)
        changes = (
            directive == "REPLACE"
            or "x-amz-storage-class" in headers
            or "x-amz-website-redirect-location" in headers
        )
        temp, opened = await self._copy_to_temp(
            origin, source, source_path, target, None, changes
        )
        if target.marker and temp.size:
            await self._call(temp.discard)
            raise _marker_with_bytes(target)
        kept = self._copied_headers(opened, requested, directive, tagging, headers)
        committed = await self._commit_object(target, temp, kept, headers)
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

    def _copy_to_temp(self, *args: object) -> Deferred[tuple[_TempFile, _Opened]]:
        """
        L{_copy_in_thread}, with its arguments, in the pool; the temporary
        file is discarded if the Deferred is cancelled meanwhile.
        """
        return self._io_owning(
            lambda copied: copied[0].discard(), self._copy_in_thread, *args
        )

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
            _copy_conditions(opened, source, self._now())
            offset, length = copy_source_range(copy_range, opened.size)
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

    @deferred
    async def delete_object(self, key: str, version_id: str | None) -> ObjectResponse:
        """
        Delete a file (or a directory marker) and its metadata, then remove
        the directories it leaves empty, up to the root (a directory with a
        marker stays). A key that does not exist, or names a directory that
        is not a marker, is deleted already.

        :return: a Deferred firing with a 204 response; it fails with
            ``InvalidArgument`` for a reserved key, ``NoSuchVersion`` for a
            version other than ``null``, ``NoSuchBucket``.
        """
        check_version(version_id)
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

    @deferred
    async def delete_objects(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> Sequence[DeleteOutcome]:
        """
        Delete each ``(key, version_id)`` as L{delete_object} does, one
        after the other; one key's failure does not stop the others.

        :return: a Deferred firing with one outcome per key, in order.
        """
        outcomes: list[DeleteOutcome] = []
        for key, version_id in keys:
            try:
                await self.delete_object(key, version_id)
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

    @deferred
    async def create_multipart_upload(self, key: str, headers: HeaderList) -> str:
        """
        Start an upload: its directory appears, with its record, at once.

        :return: a Deferred firing with the upload id; it fails with
            ``InvalidArgument`` for a key this store cannot hold (a
            directory marker included) and as L{object_headers} does.
        """
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

    @deferred
    async def upload_part(
        self, write: ObjectWrite, upload_id: str, part_number: int
    ) -> ObjectResponse:
        """
        Store one part from a streamed body, as L{put_object} stores an
        object (a part replaces an earlier one of the same number).

        :return: a Deferred firing with a 200 response carrying the part's
            ``etag``; it fails with ``NoSuchUpload``, ``InvalidArgument``
            for a part number outside 1 to 10000, ``InvalidDigest``,
            ``BadDigest`` or the body's own failure.
        """
        check_part_number(part_number)
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
            _open_upload(tree, upload_id, key)
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
                    with _LOCKS.hold(_upload_lock(tree, upload_id)):
                        # Opened under the lock: a completion or abort that
                        # held it has taken the upload away already.
                        fd, _ = _open_upload(tree, upload_id, key)
                        name = str(number).encode("ascii")
                        self._rename(temp.name, name, tree.tmp_fd, fd)
                        self._rename(sidecar, name + _SIDECAR_SUFFIX, tree.tmp_fd, fd)
                        tree.sync(fd)
                finally:
                    tree.discard_temp(sidecar)
                return modification_time(status)
        finally:
            temp.discard()

    @deferred
    async def upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> CopyResult:
        """
        Store one part copied from an object of a directory store (a range
        of it with ``source.range``).

        :return: a Deferred firing with the part's ETag and time; it fails
            with ``NotImplemented`` for a source L{can_copy} refuses,
            ``NoSuchUpload``, ``NoSuchKey``, ``InvalidRange``,
            ``PreconditionFailed``.
        """
        origin = self._source_store(source)
        check_version(source.version_id)
        check_part_number(part_number)
        _check_upload_id(upload_id)
        source_path = origin._path_for(source.key)
        await self._io(self._check_upload_in_thread, key, upload_id)
        temp, _ = await self._copy_to_temp(
            origin, source, source_path, None, source.range, True
        )
        meta = _Meta(etag=f'"{temp.digest().hex()}"')
        modified = await self._io(
            self._install_part_in_thread, key, upload_id, part_number, temp, meta
        )
        return CopyResult(etag=meta.etag, last_modified=modified)

    def _check_upload_in_thread(self, key: str, upload_id: str) -> None:
        with self._tree() as tree:
            _open_upload(tree, upload_id, key)

    @deferred
    async def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart],
        headers: HeaderList,
    ) -> CopyResult:
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
        chosen = tuple(parts)
        target = write_key(key)
        _check_upload_id(upload_id)
        if not chosen:
            raise S3Error("MalformedXML", "The request must name at least one part.")
        numbers = [part.part_number for part in chosen]
        if any(later <= earlier for earlier, later in pairwise(numbers)):
            raise S3Error("InvalidPartOrder")
        committed = await self._io(
            self._complete_in_thread,
            target,
            upload_id,
            chosen,
            conditions(headers),
        )
        return CopyResult(etag=committed.etag, last_modified=committed.modified)

    def _complete_in_thread(
        self,
        target: _Key,
        upload_id: str,
        parts: tuple[CompletedPart, ...],
        write_conditions: HeaderList,
    ) -> _Committed:
        with self._tree() as tree, _LOCKS.hold(_upload_lock(tree, upload_id)):
            fd, upload = _open_upload(tree, upload_id, target.text)
            found = [_chosen_part(fd, upload_id, part) for part in parts]
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
                    _append_part(fd, upload_id, part, temp)
                    digests.update(bytes.fromhex(opaque(part.meta.etag)))
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
                        conditions=write_conditions,
                    ),
                )
            finally:
                temp.discard()
            self._remove_upload(tree, upload_id)
            return committed

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
        with self._tree() as tree, _LOCKS.hold(_upload_lock(tree, upload_id)):
            _open_upload(tree, upload_id, key)
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
            fd, _ = _open_upload(tree, upload_id, key)
            return _parts_page(fd, max_parts, marker)

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
        wanted = UploadsWanted(
            prefix, delimiter, key_marker, upload_id_marker, max_uploads
        )
        return self._io(self._list_uploads_in_thread, wanted)

    def _list_uploads_in_thread(self, wanted: UploadsWanted) -> UploadsPage:
        with self._tree() as tree:
            try:
                uploads = tree.reserved(_UPLOADS, create=False)
            except FileNotFoundError:
                return UploadsPage()
            found: list[UploadRecord] = []
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
                if upload is not None and upload.key.startswith(wanted.prefix):
                    found.append(upload)

        return uploads_page(found, wanted)

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
