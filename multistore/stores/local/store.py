# -*- test-case-name: tests.unit.test_local,tests.unit.test_local_writes -*-
"""
L{LocalStore}: the L{IObjectStore} over a directory.

This module holds the store's configuration, thread pool, reads, writes,
deletes and buckets. Its copies and multipart uploads are functions of
L{multistore.stores.local.copies} and L{multistore.stores.local.uploads}
that its methods call; how writes are committed is
L{multistore.stores.local.commit}'s, the file-system work of deletes
L{multistore.stores.local.deletes}'s, and what all of them use of the
store, and the opening of an object's file, L{multistore.stores.local.core}'s.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from itertools import islice
from typing import TypeVar

from attrs import define
from twisted.internet.defer import Deferred
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
from multistore.s3.conditions import NotModified
from multistore.s3.dates import format_http_date
from multistore.s3.errors import S3Error
from multistore.s3.ranges import ByteRange, parse_range
from multistore.stores.common import cannot_copy, check_read, deferred
from multistore.stores.local import copies, uploads
from multistore.stores.local.commit import _begin_in_thread, _commit_object, _receive

# Imported under their own names: they were defined here, and are still
# read from here.
from multistore.stores.local.copies import copy_directive as copy_directive
from multistore.stores.local.copies import copy_source_range as copy_source_range
from multistore.stores.local.core import (
    _close_quietly,
    _marker_with_bytes,
    _open,
    _Opened,
    _owned,
    _path_for,
    _translate,
)
from multistore.stores.local.core import check_version as check_version
from multistore.stores.local.deletes import _delete_in_thread
from multistore.stores.local.files import CHUNK_SIZE, FileBody, _call_in_pool
from multistore.stores.local.listing import _Walk
from multistore.stores.local.meta import (
    _checksums,
    _content_md5,
    _visible_headers,
    object_headers,
)
from multistore.stores.local.multipart import MIN_PART_SIZE, check_part_number
from multistore.stores.local.tree import (
    _RESERVED_BYTES,
    _Tree,
    write_key,
)

_T = TypeVar("_T")


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

    def _rename(
        self, name: bytes, target: bytes, source_dir: int, target_dir: int
    ) -> None:
        """
        Rename a temporary file onto its place: the one step that makes a
        write visible.
        """
        os.replace(name, target, src_dir_fd=source_dir, dst_dir_fd=target_dir)

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
        path = _path_for(self, read.key)
        if read.part_number is not None:
            if read.range is not None:
                raise S3Error(
                    "InvalidRequest",
                    "Cannot specify both Range header and partNumber query parameter.",
                )
            check_part_number(read.part_number)
        opened = await _open(self, path, read.key)
        try:
            return self._respond(read, opened)
        except BaseException:
            _close_quietly(self, opened.file, read.key)
            raise

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
            _close_quietly(self, opened.file, read.key)
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
            _close_quietly(self, opened.file, read.key)
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
        temp = await _receive(self, write.body, _begin_in_thread, self, key)
        problem: S3Error | None = None
        digest = temp.digest()
        if expected is not None and digest != expected:
            problem = S3Error("BadDigest")
        elif key.marker and temp.size:
            problem = _marker_with_bytes(key)
        if problem is not None:
            await self._call(temp.discard)
            raise problem
        committed = await _commit_object(self, key, temp, stored, write.headers)
        return ObjectResponse(
            200,
            HeaderList([("etag", committed.etag), *_checksums(write.headers)]),
        )

    # --- copies ------------------------------------------------------------

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

    def copy_object(
        self, source: CopySource, key: str, headers: HeaderList
    ) -> Deferred[CopyResult]:
        """
        See L{multistore.stores.local.copies.copy_object}.
        """
        return copies.copy_object(self, source, key, headers)

    # --- multipart uploads -------------------------------------------------

    def create_multipart_upload(self, key: str, headers: HeaderList) -> Deferred[str]:
        """
        See L{multistore.stores.local.uploads.create_multipart_upload}.
        """
        return uploads.create_multipart_upload(self, key, headers)

    def upload_part(
        self, write: ObjectWrite, upload_id: str, part_number: int
    ) -> Deferred[ObjectResponse]:
        """
        See L{multistore.stores.local.uploads.upload_part}.
        """
        return uploads.upload_part(self, write, upload_id, part_number)

    def upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> Deferred[CopyResult]:
        """
        See L{multistore.stores.local.uploads.upload_part_copy}.
        """
        return uploads.upload_part_copy(self, source, key, upload_id, part_number)

    def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart],
        headers: HeaderList,
    ) -> Deferred[CopyResult]:
        """
        See L{multistore.stores.local.uploads.complete_multipart_upload}.
        """
        return uploads.complete_multipart_upload(self, key, upload_id, parts, headers)

    def abort_multipart_upload(self, key: str, upload_id: str) -> Deferred[None]:
        """
        See L{multistore.stores.local.uploads.abort_multipart_upload}.
        """
        return uploads.abort_multipart_upload(self, key, upload_id)

    def list_parts(
        self, key: str, upload_id: str, max_parts: int, part_number_marker: int
    ) -> Deferred[PartsPage]:
        """
        See L{multistore.stores.local.uploads.list_parts}.
        """
        return uploads.list_parts(self, key, upload_id, max_parts, part_number_marker)

    def list_multipart_uploads(
        self,
        prefix: str,
        delimiter: str | None,
        key_marker: str | None,
        upload_id_marker: str | None,
        max_uploads: int,
    ) -> Deferred[UploadsPage]:
        """
        See L{multistore.stores.local.uploads.list_multipart_uploads}.
        """
        return uploads.list_multipart_uploads(
            self, prefix, delimiter, key_marker, upload_id_marker, max_uploads
        )

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
        await self._io(_delete_in_thread, self, key)
        return ObjectResponse(204, NO_HEADERS)

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
