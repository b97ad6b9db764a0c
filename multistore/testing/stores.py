# -*- test-case-name: tests.unit.test_testing -*-
"""
L{MemoryStore}: an L{IObjectStore} in memory, with the semantics of the
directory store; L{MemoryStoreFactory} makes one per backend bucket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, ParamSpec, TypeVar, cast

from attrs import define, field, frozen
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from multistore.bodies import BytesBody
from multistore.config import BucketConfig
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import (
    IObjectStore,
    IStoreFactory,
)
from multistore.model import (
    CopyResult,
    CopySource,
    DeleteOutcome,
    ListPage,
    ListRequest,
    ObjectInfo,
    ObjectRead,
    ObjectResponse,
    ObjectWrite,
)
from multistore.s3.conditions import NotModified, evaluate
from multistore.s3.dates import format_http_date
from multistore.s3.errors import S3Error
from multistore.s3.ranges import ByteRange, parse_range
from multistore.stores.common import cannot_copy
from multistore.stores.local import MIN_PART_SIZE, object_headers
from multistore.stores.local.multipart import check_part_number
from multistore.stores.local.store import (
    check_version,
    copy_directive,
)
from multistore.testing.memory import (
    _CHECKSUMS,
    _expected_md5,
    _Intake,
    _md5,
    _Object,
    _order,
    _shown_headers,
    _Upload,
)
from multistore.testing.multipart import _MultipartUploads

_T = TypeVar("_T")
_P = ParamSpec("_P")

_NOT_COPIED: Final = frozenset({"x-amz-storage-class", "x-amz-tagging"})

_SELF_COPY: Final = (
    "This copy request is illegal because it is trying to copy an object to "
    "itself without changing the object's metadata, storage class, website "
    "redirect location or encryption attributes."
)


@frozen
class StoreCall:
    """
    One call made to a L{MemoryStore}.

    :ivar name: the L{IObjectStore} method.
    :ivar args: its arguments.
    """

    name: str
    args: tuple[Any, ...]


def backend_name(bucket: BucketConfig) -> str:
    """
    The backend bucket a bucket's configuration names: its ``bucket_name``,
    ``container_name`` or ``root`` option, else its own name. Buckets that
    name the same backend bucket share a L{MemoryStore} in a
    L{MemoryStoreFactory}.
    """
    for option in ("bucket_name", "container_name", "root"):
        value = bucket.option(option)
        if value:
            return value
    return bucket.name


@implementer(IObjectStore)
@define(eq=False)
class MemoryStore(_MultipartUploads):
    """
    An L{IObjectStore} that keeps one bucket in memory, with the semantics
    of the directory store (L{multistore.stores.local}): ETags are the
    quoted hex MD5 of the bytes (``"<md5 of the parts' MD5s>-<count>"`` for
    a multipart object), times are whole seconds, keys are listed in UTF-8
    byte order, a write appears whole or not at all, and conditions,
    ranges and multipart checks fail with the same S3 errors.

    Unlike a directory, it holds any key (``a`` and ``a/b`` together, keys
    with empty segments, ``dir/`` with bytes in it), and copies server-side
    only from itself or from stores of the same L{MemoryStoreFactory}.

    Bodies stream in: a write reads its body as it comes, as the
    store's consumer, and commits once it has ended; L{hold_writes} pauses
    every body being read (and those started later) until
    L{release_writes}, as a slow store would.

    For tests, every call is recorded in L{calls}, and L{script} makes the
    next calls of a method answer as a test says instead.

    :ivar name: the backend bucket's name (see L{backend_name}).
    :ivar exists: whether the bucket exists (``create_bucket`` and
        ``delete_bucket`` change it).
    :ivar calls: every call made, in order.
    :ivar writes_held: whether writes are held back (see L{hold_writes}).
    :ivar written_while_held: bytes that producers wrote after being asked
        to pause: a producer that honours backpressure writes none, or
        little.
    """

    _clock: IReactorTime | None = None
    name: str = "memory"
    exists: bool = True
    _min_part_size: int = MIN_PART_SIZE
    _factory: MemoryStoreFactory | None = None
    calls: list[StoreCall] = field(factory=list)
    writes_held: bool = False
    written_while_held: int = 0
    _objects: dict[str, _Object] = field(factory=dict)
    _uploads: dict[str, _Upload] = field(factory=dict)
    _serial: int = 0
    _scripts: dict[str, list[object]] = field(factory=dict)
    _intakes: list[_Intake] = field(factory=list)

    # --- for tests ----------------------------------------------------------

    def add(
        self,
        key: str,
        data: bytes,
        headers: Iterable[tuple[str, str]] = (),
        modified: datetime | None = None,
    ) -> str:
        """
        Store an object at once, as a PUT would.

        :param headers: the object's headers, as a PUT carries them.
        :param modified: its time, else now.
        :return: its ETag.
        """
        etag = f'"{_md5(data)}"'
        self._objects[key] = _Object(
            data=data,
            etag=etag,
            modified=(modified or self._now()).replace(microsecond=0),
            headers=object_headers(HeaderList(headers)),
        )
        return etag

    def data_of(self, key: str) -> bytes | None:
        """
        :return: the bytes of the object at ``key``, or ``None``.
        """
        found = self._objects.get(key)
        return None if found is None else found.data

    def headers_of(self, key: str) -> HeaderList | None:
        """
        :return: the headers the object at ``key`` keeps, or ``None``.
        """
        found = self._objects.get(key)
        return None if found is None else HeaderList(found.headers)

    def keys(self) -> list[str]:
        """
        :return: the keys of every object, in S3 order.
        """
        return sorted(self._objects, key=_order)

    def upload_ids(self) -> list[str]:
        """
        :return: the ids of the multipart uploads in progress.
        """
        return list(self._uploads)

    def calls_to(self, name: str) -> list[tuple[Any, ...]]:
        """
        :return: the arguments of every call of the method ``name``, in
            order.
        """
        return [call.args for call in self.calls if call.name == name]

    def script(self, name: str, *outcomes: object) -> None:
        """
        Make the next calls of the method ``name`` answer with
        ``outcomes``, one per call, instead of the store's contents: an
        exception fails the call, a Deferred is returned as it is (a call
        left pending), anything else is the call's result. The calls are
        recorded all the same; a write's body is not read.
        """
        self._scripts.setdefault(name, []).extend(outcomes)

    def hold_writes(self) -> None:
        """
        Pause every body being written, and those started later, as a
        store that cannot keep up does.
        """
        self.writes_held = True
        for intake in list(self._intakes):
            intake.pause()

    def release_writes(self) -> None:
        """
        Resume the bodies paused by L{hold_writes}.
        """
        self.writes_held = False
        for intake in list(self._intakes):
            intake.resume()

    def in_progress(self) -> list[tuple[str, int]]:
        """
        :return: the key and the bytes received so far of each write whose
            body is still arriving.
        """
        return [(intake.key, intake.received) for intake in self._intakes]

    # --- plumbing -----------------------------------------------------------

    def _now(self) -> datetime:
        seconds = self._clock.seconds() if self._clock is not None else time.time()
        return datetime.fromtimestamp(int(seconds), UTC)

    def _call(
        self, name: str, args: tuple[Any, ...], run: Callable[[], Deferred[_T]]
    ) -> Deferred[_T]:
        self.calls.append(StoreCall(name, args))
        scripted = self._scripts.get(name)
        if scripted:
            outcome = scripted.pop(0)
            if isinstance(outcome, BaseException):
                return fail(outcome)
            if isinstance(outcome, Deferred):
                return cast(Deferred[_T], outcome)
            return succeed(cast(_T, outcome))
        try:
            return run()
        except Exception:
            return fail()

    def _answer(
        self, name: str, run: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> Deferred[_T]:
        """
        Record a call of the method ``name`` with ``args``, and answer it as
        scripted, or with what ``run`` returns (or fails with).
        """
        return self._call(name, args, lambda: succeed(run(*args, **kwargs)))

    def _require_bucket(self) -> None:
        if not self.exists:
            raise S3Error("NoSuchBucket")

    def _receive(self, key: str, body: IBodyProducer) -> Deferred[bytes]:
        return _Intake(self, key, body).start()

    def _commit(
        self, key: str, new: _Object, if_match: str | None, if_none_match: str | None
    ) -> None:
        """
        Put ``new`` in place if the write's conditions hold against the
        object it replaces.
        """
        self._require_bucket()
        if_match = if_match if if_match and if_match.strip() else None
        if_none_match = (
            if_none_match if if_none_match and if_none_match.strip() else None
        )
        current = self._objects.get(key)
        if current is None:
            if if_match is not None:
                raise S3Error("NoSuchKey")
        else:
            evaluate(
                current.etag,
                current.modified,
                if_match=if_match,
                if_none_match=if_none_match,
                method="PUT",
            )
        self._objects[key] = new

    def _source_store(self, source: CopySource) -> MemoryStore:
        """
        :raise S3Error: ``NotImplemented`` if ``source`` is not a store this
            one copies from.
        """
        name = backend_name(source.bucket)
        if name == self.name:
            return self
        if self._factory is not None and name in self._factory.stores:
            return self._factory.stores[name]
        raise cannot_copy()

    def can_copy(self, source: CopySource) -> bool:
        """
        :return: whether this store copies from ``source`` itself: from its
            own bucket, or from a store of the same L{MemoryStoreFactory}
            (by the source bucket's L{backend_name}). It neither blocks nor
            fails.
        """
        name = backend_name(source.bucket)
        return name == self.name or (
            self._factory is not None and name in self._factory.stores
        )

    # --- reads --------------------------------------------------------------

    def get_object(self, read: ObjectRead) -> Deferred[ObjectResponse]:
        """
        Read an object (GET, or HEAD when C{read.head}).

        :return: a Deferred firing with a 200, 206 or 304 response; it fails
            with ``NoSuchKey``, ``NoSuchBucket``, ``NoSuchVersion`` for a
            version other than ``null``, ``InvalidRange``,
            ``InvalidPartNumber``, ``InvalidRequest`` (a range with a part
            number) or ``PreconditionFailed``.
        """
        return self._answer("get_object", self._get, read)

    def _get(self, read: ObjectRead) -> ObjectResponse:
        self._require_bucket()
        check_version(read.version_id)
        if read.part_number is not None:
            if read.range is not None:
                raise S3Error(
                    "InvalidRequest",
                    "Cannot specify both Range header and partNumber query parameter.",
                )
            check_part_number(read.part_number)
        found = self._objects.get(read.key)
        if found is None:
            raise S3Error("NoSuchKey")
        last_modified = format_http_date(found.modified)
        try:
            evaluate(
                found.etag,
                found.modified,
                if_match=read.if_match,
                if_none_match=read.if_none_match,
                if_modified_since=read.if_modified_since,
                if_unmodified_since=read.if_unmodified_since,
                method="HEAD" if read.head else "GET",
                now=self._now(),
            )
        except NotModified:
            return ObjectResponse(
                304,
                HeaderList.of(("etag", found.etag), ("last-modified", last_modified)),
            )
        size = len(found.data)
        selected: ByteRange | None
        extra: list[tuple[str, str]] = []
        if read.part_number is not None and found.parts:
            if read.part_number > len(found.parts):
                raise S3Error("InvalidPartNumber")
            start = sum(found.parts[: read.part_number - 1])
            part_size = found.parts[read.part_number - 1]
            selected = (
                ByteRange(start, start + part_size - 1, size) if part_size else None
            )
            extra.append(("x-amz-mp-parts-count", str(len(found.parts))))
        elif read.part_number is not None:
            if read.part_number != 1:
                raise S3Error("InvalidPartNumber")
            selected = ByteRange(0, size - 1, size) if size else None
        else:
            selected = parse_range(read.range, size)
        whole = selected is None and read.part_number is None
        headers = [
            ("content-type", found.get("content-type") or "application/octet-stream"),
            ("etag", found.etag),
            ("last-modified", last_modified),
            ("accept-ranges", "bytes"),
            *_shown_headers(found, whole),
            *extra,
        ]
        if selected is not None:
            code, offset, length = 206, selected.start, selected.length
            headers.append(("content-range", selected.content_range))
        elif read.part_number is not None and found.parts:
            code, offset, length = 200, 0, 0
        else:
            code, offset, length = 200, 0, size
        headers.append(("content-length", str(length)))
        if read.head:
            return ObjectResponse(code, HeaderList(headers))
        body = BytesBody(found.data[offset : offset + length])
        return ObjectResponse(code, HeaderList(headers), body)

    def list_objects(self, request: ListRequest) -> Deferred[ListPage]:
        """
        List one page of keys in UTF-8 byte order, after ``start_after``;
        with a delimiter, keys roll up into common prefixes, and a common
        prefix that ``start_after`` lies in is not repeated. The page
        resumes by position (``next_token`` stays ``None``; a ``token`` is
        ignored).

        :return: a Deferred firing with the page; it fails with
            ``NoSuchBucket``.
        """
        return self._answer("list_objects", self._list, request)

    def _list(self, request: ListRequest) -> ListPage:
        self._require_bucket()
        if request.max_keys <= 0:
            return ListPage()
        prefix, delimiter = request.prefix, request.delimiter or None
        after = _order(request.start_after) if request.start_after else None
        items: list[ObjectInfo | str] = []
        for key in self.keys():
            if not key.startswith(prefix) or (
                after is not None and _order(key) <= after
            ):
                continue
            rolled = None
            if delimiter is not None:
                at = key.find(delimiter, len(prefix))
                if at != -1:
                    rolled = key[: at + len(delimiter)]
            if rolled is not None:
                if (items and items[-1] == rolled) or (
                    after is not None and after.startswith(_order(rolled))
                ):
                    continue
                items.append(rolled)
            else:
                found = self._objects[key]
                items.append(
                    ObjectInfo(
                        key=key,
                        size=len(found.data),
                        last_modified=found.modified,
                        etag=found.etag,
                        storage_class=found.get("x-amz-storage-class") or "STANDARD",
                    )
                )
            if len(items) > request.max_keys:
                break
        page = items[: request.max_keys]
        return ListPage(
            objects=tuple(i for i in page if isinstance(i, ObjectInfo)),
            common_prefixes=tuple(i for i in page if isinstance(i, str)),
            truncated=len(items) > request.max_keys,
        )

    def head_bucket(self) -> Deferred[None]:
        """
        :return: a Deferred that fires if the bucket exists, and fails with
            ``NoSuchBucket`` otherwise.
        """
        return self._answer("head_bucket", self._require_bucket)

    # --- writes -------------------------------------------------------------

    def put_object(self, write: ObjectWrite) -> Deferred[ObjectResponse]:
        """
        Write an object from its streamed body, once the body has ended.

        :return: a Deferred firing with a 200 response carrying the
            object's ``etag`` and the checksum headers sent. It fails with
            ``InvalidDigest`` or ``BadDigest`` for a ``Content-MD5`` that is
            malformed or does not match, ``IncompleteBody`` for a body
            shorter or longer than it announced, ``PreconditionFailed`` (or
            ``NoSuchKey`` for ``If-Match`` on a missing key),
            ``NoSuchBucket``, the errors of
            L{multistore.stores.local.object_headers}, or the body's own
            failure; then no object appears. Cancelling it stops the body.
        """
        return self._call(
            "put_object", (write,), lambda: Deferred.fromCoroutine(self._put(write))
        )

    async def _put(self, write: ObjectWrite) -> ObjectResponse:
        self._require_bucket()
        stored = object_headers(write.headers)
        expected = _expected_md5(write.headers)
        data = await self._receive(write.key, write.body)
        digest = _md5(data)
        if expected is not None and digest != expected:
            raise S3Error("BadDigest")
        etag = f'"{digest}"'
        self._commit(
            write.key,
            _Object(data=data, etag=etag, modified=self._now(), headers=stored),
            write.headers.get("if-match"),
            write.headers.get("if-none-match"),
        )
        checksums = [(n, v) for n, v in write.headers if n in _CHECKSUMS]
        return ObjectResponse(200, HeaderList([("etag", etag), *checksums]))

    def copy_object(
        self, source: CopySource, key: str, headers: HeaderList
    ) -> Deferred[CopyResult]:
        """
        Copy an object from this store or another of the same factory, as
        the directory store does: the source's headers
        (``x-amz-metadata-directive: COPY``) or the request's
        (``REPLACE``), tags by ``x-amz-tagging-directive``, the request's
        storage class; ``x-amz-copy-source-if-*`` checked against the
        source, ``If-Match``/``If-None-Match`` against the destination.

        :return: a Deferred firing with the new object's ETag and time. It
            fails with ``NotImplemented`` for a source on another service,
            ``NoSuchKey``, ``PreconditionFailed``, ``InvalidRequest`` for a
            copy of an object onto itself that changes nothing, and as
            L{put_object} does.
        """
        return self._answer("copy_object", self._copy, source, key, headers)

    def _source_object(self, source: CopySource) -> tuple[MemoryStore, _Object]:
        origin = self._source_store(source)
        check_version(source.version_id)
        origin._require_bucket()
        found = origin._objects.get(source.key)
        if found is None:
            raise S3Error("NoSuchKey")
        conditions = source.conditions
        try:
            evaluate(
                found.etag,
                found.modified,
                if_match=conditions.get("x-amz-copy-source-if-match"),
                if_none_match=conditions.get("x-amz-copy-source-if-none-match"),
                if_modified_since=conditions.get("x-amz-copy-source-if-modified-since"),
                if_unmodified_since=conditions.get(
                    "x-amz-copy-source-if-unmodified-since"
                ),
                method="GET",
                now=self._now(),
            )
        except NotModified:
            raise S3Error(
                "PreconditionFailed",
                extra=(("Condition", "x-amz-copy-source-If-None-Match"),),
            ) from None
        return origin, found

    def _copy(self, source: CopySource, key: str, headers: HeaderList) -> CopyResult:
        self._require_bucket()
        origin, found = self._source_object(source)
        directive = copy_directive(headers, "x-amz-metadata-directive")
        tagging = copy_directive(headers, "x-amz-tagging-directive")
        requested = object_headers(headers)
        changes = (
            directive == "REPLACE"
            or "x-amz-storage-class" in headers
            or "x-amz-website-redirect-location" in headers
        )
        if not changes and origin is self and source.key == key:
            raise S3Error("InvalidRequest", _SELF_COPY)
        if directive == "COPY":
            kept = [(n, v) for n, v in found.headers if n not in _NOT_COPIED]
            if not any(n == "content-type" for n, _ in kept):
                kept.insert(0, ("content-type", "application/octet-stream"))
        else:
            kept = [
                (n, v)
                for n, v in requested
                if n not in _CHECKSUMS and n not in _NOT_COPIED
            ]
            # The bytes are the same, so their checksums still hold.
            kept.extend((n, v) for n, v in found.headers if n in _CHECKSUMS)
        storage_class = headers.get("x-amz-storage-class")
        if storage_class is not None:
            kept.append(("x-amz-storage-class", storage_class))
        tags = (
            headers.get("x-amz-tagging")
            if tagging == "REPLACE"
            else found.get("x-amz-tagging")
        )
        if tags:
            kept.append(("x-amz-tagging", tags))
        new = _Object(
            data=found.data,
            etag=f'"{_md5(found.data)}"',
            modified=self._now(),
            headers=tuple(kept),
        )
        self._commit(key, new, headers.get("if-match"), headers.get("if-none-match"))
        return CopyResult(etag=new.etag, last_modified=new.modified)

    def delete_object(
        self, key: str, version_id: str | None
    ) -> Deferred[ObjectResponse]:
        """
        Delete an object; a key that does not exist is deleted already.

        :return: a Deferred firing with a 204 response; it fails with
            ``NoSuchVersion`` for a version other than ``null`` and
            ``NoSuchBucket``.
        """
        return self._answer("delete_object", self._delete, key, version_id)

    def _delete(self, key: str, version_id: str | None) -> ObjectResponse:
        self._require_bucket()
        check_version(version_id)
        self._objects.pop(key, None)
        return ObjectResponse(204, NO_HEADERS)

    def delete_objects(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> Deferred[Sequence[DeleteOutcome]]:
        """
        Delete each ``(key, version_id)`` as L{delete_object} does; one
        key's failure does not stop the others.

        :return: a Deferred firing with one outcome per key, in order.
        """
        return self._answer("delete_objects", self._delete_all, tuple(keys))

    def _delete_all(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> Sequence[DeleteOutcome]:
        outcomes = []
        for key, version_id in keys:
            try:
                self._delete(key, version_id)
            except S3Error as e:
                outcomes.append(DeleteOutcome(key=key, error=(e.code, e.message)))
            else:
                outcomes.append(DeleteOutcome(key=key, version_id=version_id))
        return outcomes

    # --- buckets ------------------------------------------------------------

    def create_bucket(self) -> Deferred[None]:
        """
        Create the bucket.

        :return: a Deferred that fires once it exists; it fails with
            ``BucketAlreadyOwnedByYou`` if it existed already.
        """

        def create() -> None:
            if self.exists:
                raise S3Error("BucketAlreadyOwnedByYou")
            self.exists = True

        return self._answer("create_bucket", create)

    def delete_bucket(self) -> Deferred[None]:
        """
        Delete the bucket, with its uploads in progress.

        :return: a Deferred that fires once it is gone; it fails with
            ``BucketNotEmpty`` if it holds objects, ``NoSuchBucket`` if it
            does not exist.
        """

        def delete() -> None:
            self._require_bucket()
            if self._objects:
                raise S3Error("BucketNotEmpty")
            self._uploads.clear()
            self.exists = False

        return self._answer("delete_bucket", delete)


@implementer(IStoreFactory)
@define(eq=False)
class MemoryStoreFactory:
    """
    Makes a L{MemoryStore} per backend bucket (see L{backend_name}),
    whatever the bucket's ``backend_type``; the stores copy server-side
    among themselves.

    :ivar stores: the stores made so far, by backend bucket name.
    :ivar clock: the stores' time (the system clock if ``None``).
    :ivar buckets_exist: whether a store's bucket exists when the store is
        first made (``False`` to test CreateBucket).
    :ivar min_part_size: the smallest size of a multipart upload's parts
        but the last.
    """

    clock: IReactorTime | None = None
    buckets_exist: bool = True
    min_part_size: int = MIN_PART_SIZE
    stores: dict[str, MemoryStore] = field(factory=dict)

    def store_named(self, name: str) -> MemoryStore:
        """
        :return: the store of the backend bucket ``name``, made if need be.
        """
        store = self.stores.get(name)
        if store is None:
            store = MemoryStore(
                clock=self.clock,
                name=name,
                exists=self.buckets_exist,
                min_part_size=self.min_part_size,
                factory=self,
            )
            self.stores[name] = store
        return store

    def store_for(self, bucket: BucketConfig) -> IObjectStore:
        """
        :return: the store of ``bucket``'s backend bucket.
        """
        return self.store_named(backend_name(bucket))
