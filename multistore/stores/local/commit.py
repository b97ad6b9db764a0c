# -*- test-case-name: tests.unit.test_local,tests.unit.test_local_writes -*-
"""
How the directory store's writes land: a body received into a temporary
file, then committed onto its key, with its metadata, under the write
conditions; with the values a commit takes and gives. Functions taking the
store (L{multistore.stores.local.core.Store}), for PUT, copies and
completions alike.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from attrs import frozen
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from multistore.headers import NO_HEADERS, HeaderList
from multistore.s3.conditions import evaluate
from multistore.s3.errors import S3Error
from multistore.stores.local.core import _NOT_FOUND_ERRNOS, Store, _translate
from multistore.stores.local.meta import (
    _encode_meta,
    _Meta,
    _meta_at,
    _ns_time,
    modification_time,
    synthetic_etag,
)
from multistore.stores.local.receive import _Receiver
from multistore.stores.local.tree import (
    _LOCKS,
    _MARKER_NAME,
    _RETRIES,
    _fsync,
    _Key,
    _removed,
    _TempFile,
    _Tree,
)
from multistore.stores.object_headers import conditions

if TYPE_CHECKING:
    from twisted.web.iweb import IBodyProducer


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


async def _receive(
    store: Store,
    body: IBodyProducer,
    begin: Callable[..., _TempFile],
    *args: object,
) -> _TempFile:
    """
    Prepare with ``begin`` (in the pool; it makes the temporary file),
    then write the body into the file.
    """
    temp = await store._io_owning(_TempFile.discard, begin, *args)
    receiver = _Receiver(
        body=body, temp=temp, reactor=store._reactor, threadpool=store._threadpool
    )
    received = await receiver.receive().addErrback(_translate)
    return received


def _begin_in_thread(store: Store, key: _Key) -> _TempFile:
    """
    Check that ``key`` has room (no object where a directory must go, no
    directory where the object must go), then make the temporary file.
    """
    with store._tree() as tree:
        try:
            parent = tree.data_dir(key.directory, create=False, key=key.text)
        except FileNotFoundError:
            pass
        else:
            if not key.marker:
                _current(store, tree, parent, key)
        return tree.temp_file()


def _current(
    store: Store, tree: _Tree, parent: int, key: _Key
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
    store: Store,
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
        modified_ns=store._now_ns() if key.marker else None,
    )
    return _commit_write(
        store, _Plan(key=key, temp=temp, meta=meta, conditions=conditions(headers))
    )


def _commit_write(store: Store, plan: _Plan) -> Deferred[_Committed]:
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
                store.log.failure("an abandoned write failed", outcome)
        elif isinstance(outcome, Failure):
            result.errback(outcome)
        else:
            result.callback(outcome)

    store._io(_commit_in_thread, store, plan, abandoned).addBoth(settle)
    return result


def _commit_in_thread(
    store: Store, plan: _Plan, abandoned: threading.Event | None = None
) -> _Committed:
    """
    Commit a write (in the pool); the temporary file is removed whatever
    happens.
    """
    try:
        with store._tree() as tree:
            return _commit(store, tree, plan, abandoned)
    finally:
        plan.temp.discard()


def _commit(
    store: Store, tree: _Tree, plan: _Plan, abandoned: threading.Event | None = None
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
        if store._fsync:
            _fsync(temp.fd)
        status = os.fstat(temp.fd)
    temp.close()
    sidecar = tree.write_temp(_encode_meta(plan.meta, status))
    try:
        for _ in range(_RETRIES):
            parent = tree.data_dir(key.directory, create=True, key=key.text)
            with _LOCKS.hold(tree.lock_name(parent, key.name, key.directory)):
                current = _current(store, tree, parent, key)
                _check_write_conditions(current, plan.conditions)
                if abandoned is not None and abandoned.is_set():
                    raise CancelledError()
                if not key.marker:
                    try:
                        store._rename(temp.name, key.name, tree.tmp_fd, parent)
                    except FileNotFoundError:
                        if _removed(parent):
                            # Pruned by a delete meanwhile: again.
                            continue
                        raise
                    tree.sync(parent)
                _install(store, tree, sidecar, key.directory, key.meta_name)
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


def _install(
    store: Store, tree: _Tree, sidecar: bytes, directory: Sequence[bytes], name: bytes
) -> None:
    """
    Rename a metadata file into the directory mirroring ``directory``.
    """
    for attempt in range(_RETRIES):
        meta_dir = tree.meta_dir(directory, create=True)
        try:
            store._rename(sidecar, name, tree.tmp_fd, meta_dir)
        except FileNotFoundError:
            if attempt < _RETRIES - 1 and _removed(meta_dir):
                continue
            raise
        tree.sync(meta_dir)
        return
