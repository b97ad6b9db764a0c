# -*- test-case-name: tests.unit.test_local,tests.unit.test_local_writes -*-
"""
The directory store's multipart-upload operations: creating an upload,
storing and copying parts, completing, aborting and listing. Functions
taking the store (L{multistore.stores.local.core.Store}), which
L{multistore.stores.local.store.LocalStore}'s methods of the same names
call; the uploads' records on disk are
L{multistore.stores.local.multipart}'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise

from twisted.internet.defer import Deferred

from multistore.headers import HeaderList
from multistore.model import (
    CompletedPart,
    CopyResult,
    CopySource,
    ObjectResponse,
    ObjectWrite,
    PartsPage,
    UploadsPage,
)
from multistore.s3.errors import S3Error
from multistore.stores.common import deferred
from multistore.stores.local.commit import _commit, _Committed, _Plan, _receive
from multistore.stores.local.copies import _copy_to_temp
from multistore.stores.local.core import Store, _path_for, check_version
from multistore.stores.local.meta import (
    _FORMAT,
    _checksums,
    _content_md5,
    _encode_meta,
    _Meta,
    modification_time,
    object_headers,
    opaque,
)
from multistore.stores.local.multipart import (
    _UPLOAD_FILE,
    _UPLOAD_ID,
    _UPLOADS,
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
from multistore.stores.local.tree import (
    _LOCKS,
    _NEW_FILE_FLAGS,
    _RESERVED_BYTES,
    _SIDECAR_SUFFIX,
    _TMP,
    _fsync,
    _Key,
    _TempFile,
    _Tree,
    _write_all,
    write_key,
)
from multistore.stores.object_headers import conditions


@deferred
async def create_multipart_upload(store: Store, key: str, headers: HeaderList) -> str:
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
        "initiated_ns": store._now_ns(),
    }
    return await store._io(_create_upload_in_thread, store, json.dumps(record))


def _create_upload_in_thread(store: Store, record: str) -> str:
    with store._tree() as tree:
        uploads = tree.reserved(_UPLOADS)
        staging = secrets.token_hex(16).encode("ascii") + b".upload"
        os.mkdir(staging, 0o777, dir_fd=tree.tmp_fd)
        try:
            directory = tree.open_dir(tree.tmp_fd, staging, create=False, follow=False)
            try:
                fd = os.open(_UPLOAD_FILE, _NEW_FILE_FLAGS, 0o666, dir_fd=directory)
                try:
                    _write_all(fd, record.encode("ascii"))
                    if store._fsync:
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
                os.path.join(store._root_bytes, _RESERVED_BYTES, _TMP, staging),
                ignore_errors=True,
            )
            raise
        tree.sync(uploads)
        return upload_id


@deferred
async def upload_part(
    store: Store, write: ObjectWrite, upload_id: str, part_number: int
) -> ObjectResponse:
    """
    Store one part from a streamed body, as C{put_object} stores an
    object (a part replaces an earlier one of the same number).

    :return: a Deferred firing with a 200 response carrying the part's
        ``etag``; it fails with ``NoSuchUpload``, ``InvalidArgument``
        for a part number outside 1 to 10000, ``InvalidDigest``,
        ``BadDigest`` or the body's own failure.
    """
    check_part_number(part_number)
    _check_upload_id(upload_id)
    expected = _content_md5(write.headers)
    temp = await _receive(
        store, write.body, _begin_part_in_thread, store, write.key, upload_id
    )
    digest = temp.digest()
    if expected is not None and digest != expected:
        await store._call(temp.discard)
        raise S3Error("BadDigest")
    checksums = _checksums(write.headers)
    meta = _Meta(etag=f'"{digest.hex()}"', headers=tuple(checksums))
    await store._io(
        _install_part_in_thread, store, write.key, upload_id, part_number, temp, meta
    )
    return ObjectResponse(200, HeaderList([("etag", meta.etag), *checksums]))


def _begin_part_in_thread(store: Store, key: str, upload_id: str) -> _TempFile:
    with store._tree() as tree:
        _open_upload(tree, upload_id, key)
        return tree.temp_file()


def _install_part_in_thread(
    store: Store, key: str, upload_id: str, number: int, temp: _TempFile, meta: _Meta
) -> datetime:
    """
    Move a received part into its upload, with its record.

    :return: the part's time.
    """
    try:
        with store._tree() as tree:
            if store._fsync:
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
                    store._rename(temp.name, name, tree.tmp_fd, fd)
                    store._rename(sidecar, name + _SIDECAR_SUFFIX, tree.tmp_fd, fd)
                    tree.sync(fd)
            finally:
                tree.discard_temp(sidecar)
            return modification_time(status)
    finally:
        temp.discard()


@deferred
async def upload_part_copy(
    store: Store, source: CopySource, key: str, upload_id: str, part_number: int
) -> CopyResult:
    """
    Store one part copied from an object of a directory store (a range
    of it with ``source.range``).

    :return: a Deferred firing with the part's ETag and time; it fails
        with ``NotImplemented`` for a source C{can_copy} refuses,
        ``NoSuchUpload``, ``NoSuchKey``, ``InvalidRange``,
        ``PreconditionFailed``.
    """
    origin = store._source_store(source)
    check_version(source.version_id)
    check_part_number(part_number)
    _check_upload_id(upload_id)
    source_path = _path_for(origin, source.key)
    await store._io(_check_upload_in_thread, store, key, upload_id)
    temp, _ = await _copy_to_temp(
        store, origin, source, source_path, None, source.range, True
    )
    meta = _Meta(etag=f'"{temp.digest().hex()}"')
    modified = await store._io(
        _install_part_in_thread, store, key, upload_id, part_number, temp, meta
    )
    return CopyResult(etag=meta.etag, last_modified=modified)


def _check_upload_in_thread(store: Store, key: str, upload_id: str) -> None:
    with store._tree() as tree:
        _open_upload(tree, upload_id, key)


@deferred
async def complete_multipart_upload(
    store: Store,
    key: str,
    upload_id: str,
    parts: Sequence[CompletedPart],
    headers: HeaderList,
) -> CopyResult:
    """
    Assemble the object from ``parts`` in a temporary file and commit it
    as C{put_object} commits (with ``If-Match``/``If-None-Match`` from
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
    committed = await store._io(
        _complete_in_thread,
        store,
        target,
        upload_id,
        chosen,
        conditions(headers),
    )
    return CopyResult(etag=committed.etag, last_modified=committed.modified)


def _complete_in_thread(
    store: Store,
    target: _Key,
    upload_id: str,
    parts: tuple[CompletedPart, ...],
    write_conditions: HeaderList,
) -> _Committed:
    with store._tree() as tree, _LOCKS.hold(_upload_lock(tree, upload_id)):
        fd, upload = _open_upload(tree, upload_id, target.text)
        found = [_chosen_part(fd, upload_id, part) for part in parts]
        for part in found[:-1]:
            if part.status.st_size < store._min_part_size:
                raise S3Error(
                    "EntityTooSmall",
                    extra=(
                        ("ProposedSize", str(part.status.st_size)),
                        ("MinSizeAllowed", str(store._min_part_size)),
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
            committed = _commit(
                store,
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
        _remove_upload(store, tree, upload_id)
        return committed


def _remove_upload(store: Store, tree: _Tree, upload_id: str) -> None:
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
        os.path.join(store._root_bytes, _RESERVED_BYTES, _TMP, gone),
        ignore_errors=True,
    )


def abort_multipart_upload(store: Store, key: str, upload_id: str) -> Deferred[None]:
    """
    Remove an upload and its parts.

    :return: a Deferred that fires once it is gone; it fails with
        ``NoSuchUpload``.
    """
    return store._io(_abort_in_thread, store, key, upload_id)


def _abort_in_thread(store: Store, key: str, upload_id: str) -> None:
    with store._tree() as tree, _LOCKS.hold(_upload_lock(tree, upload_id)):
        _open_upload(tree, upload_id, key)
        _remove_upload(store, tree, upload_id)


def list_parts(
    store: Store, key: str, upload_id: str, max_parts: int, part_number_marker: int
) -> Deferred[PartsPage]:
    """
    List an upload's parts above ``part_number_marker``, in order.

    :return: a Deferred firing with up to ``max_parts`` parts; it fails
        with ``NoSuchUpload``.
    """
    return store._io(
        _list_parts_in_thread, store, key, upload_id, max_parts, part_number_marker
    )


def _list_parts_in_thread(
    store: Store, key: str, upload_id: str, max_parts: int, marker: int
) -> PartsPage:
    with store._tree() as tree:
        fd, _ = _open_upload(tree, upload_id, key)
        return _parts_page(fd, max_parts, marker)


def list_multipart_uploads(
    store: Store,
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
    wanted = UploadsWanted(prefix, delimiter, key_marker, upload_id_marker, max_uploads)
    return store._io(_list_uploads_in_thread, store, wanted)


def _list_uploads_in_thread(store: Store, wanted: UploadsWanted) -> UploadsPage:
    with store._tree() as tree:
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
