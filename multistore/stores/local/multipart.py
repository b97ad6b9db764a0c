# -*- test-case-name: tests.unit.test_local_writes -*-
"""
Multipart uploads on disk: an upload's record and directory, its parts,
the checks on upload ids and part numbers, the parts a completion names and
their concatenation, and the pages of ListParts and ListMultipartUploads.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import Final

from attrs import frozen

from multistore.model import CompletedPart, PartInfo, PartsPage, UploadInfo, UploadsPage
from multistore.s3.errors import S3Error
from multistore.stores.local.meta import (
    _describe,
    _header_pairs,
    _load_record,
    _Meta,
    _meta_at,
    _ns_time,
    _read_small,
    modification_time,
    opaque,
)
from multistore.stores.local.tree import (
    _COPY_CHUNK,
    _READ_FLAGS,
    _SIDECAR_SUFFIX,
    _NotDirectory,
    _TempFile,
    _Tree,
    _write_all,
)

#: The smallest size of every part of a multipart upload but the last.
MIN_PART_SIZE: Final = 5 * 1024 * 1024

#: The highest part number S3 accepts.
_MAX_PART_NUMBER: Final = 10_000

_UPLOADS: Final = b"uploads"
_UPLOAD_FILE: Final = "upload.json"

_UPLOAD_ID: Final = re.compile(r"[A-Za-z0-9_-]{16,128}\Z")
_PART_NAME: Final = re.compile(r"[1-9][0-9]{0,4}\Z")


@frozen
class UploadRecord:
    """
    A multipart upload's record.

    :ivar upload_id: its id.
    :ivar key: the key it writes.
    :ivar headers: the headers the object will carry.
    :ivar initiated_ns: when it began, in nanoseconds since the epoch.
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


def check_part_number(part_number: int) -> None:
    """
    :raise S3Error: ``InvalidArgument`` for a part number outside 1 to
        10000.
    """
    if not 1 <= part_number <= _MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive.",
            extra=(
                ("ArgumentName", "partNumber"),
                ("ArgumentValue", str(part_number)),
            ),
        )


def no_such_upload(upload_id: str) -> S3Error:
    """
    :return: the error for an upload that does not exist.
    """
    return S3Error("NoSuchUpload", extra=(("UploadId", upload_id),))


def _check_upload_id(upload_id: str) -> bytes:
    if not _UPLOAD_ID.match(upload_id):
        raise no_such_upload(upload_id)
    return upload_id.encode("ascii")


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


def _read_upload(fd: int, upload_id: str) -> UploadRecord | None:
    """
    Read an upload's record from its directory (in the pool).
    """
    record = _load_record(_read_small(_UPLOAD_FILE, fd))
    if record is None:
        return None
    key = record.get("key")
    headers = _header_pairs(record.get("headers"))
    initiated = record.get("initiated_ns")
    if not isinstance(key, str) or headers is None or type(initiated) is not int:
        return None
    return UploadRecord(
        upload_id=upload_id,
        key=key,
        headers=headers,
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


def _open_upload(tree: _Tree, upload_id: str, key: str) -> tuple[int, UploadRecord]:
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
        raise no_such_upload(upload_id) from None
    upload = _read_upload(fd, upload_id)
    if upload is None or upload.key != key:
        raise no_such_upload(upload_id)
    return fd, upload


def _upload_lock(tree: _Tree, upload_id: str) -> bytes:
    """
    :return: the name of an upload's lock, held to change it.
    :raise S3Error: ``NoSuchUpload`` if there are no uploads at all.
    """
    name = _check_upload_id(upload_id)
    try:
        uploads = tree.reserved(_UPLOADS, create=False)
    except (FileNotFoundError, _NotDirectory):
        raise no_such_upload(upload_id) from None
    return tree.lock_name(uploads, name)


def _chosen_part(fd: int, upload_id: str, chosen: CompletedPart) -> _Part:
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
            bytes.fromhex(opaque(part.meta.etag))
        except ValueError:
            part = None
    if (
        part is None
        or opaque(part.meta.etag) != opaque(chosen.etag)
        or any(
            part.meta.get("x-amz-checksum-" + algorithm.lower()) not in {None, value}
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


def _append_part(fd: int, upload_id: str, part: _Part, temp: _TempFile) -> None:
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


def _parts_page(fd: int, max_parts: int, marker: int) -> PartsPage:
    """
    One page of ListParts (in the pool).

    :param fd: the upload's directory.
    :return: up to ``max_parts`` parts above ``marker``, in order.
    """
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


@frozen
class UploadsWanted:
    """
    What a ListMultipartUploads asks for (see
    L{multistore.interfaces.IObjectStore.list_multipart_uploads}).
    """

    prefix: str
    delimiter: str | None
    key_marker: str | None
    upload_id_marker: str | None
    max_uploads: int


def uploads_page(found: list[UploadRecord], wanted: UploadsWanted) -> UploadsPage:
    """
    One page of ListMultipartUploads.

    :param found: the uploads under the prefix wanted, in any order (sorted
        in place).
    :return: up to C{wanted.max_uploads} uploads and common prefixes
        together, by key (UTF-8 byte order) then time of initiation, after
        the key marker (and, within that key, after the upload id marker).
    """
    prefix, delimiter = wanted.prefix, wanted.delimiter
    key_marker, upload_id_marker = wanted.key_marker, wanted.upload_id_marker
    max_uploads = wanted.max_uploads

    def order(upload: UploadRecord) -> tuple[bytes, int, str]:
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
                if upload.key == key_marker and upload.upload_id == upload_id_marker:
                    position = order(upload)
        if position is not None:
            found = [upload for upload in found if order(upload) > position]
        else:
            found = [upload for upload in found if order(upload)[0] > marker]
    items: list[UploadRecord | str] = []
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
            if isinstance(item, UploadRecord)
        ),
        common_prefixes=tuple(item for item in items if isinstance(item, str)),
        truncated=truncated,
        next_key_marker=(
            None if last is None else last if isinstance(last, str) else last.key
        ),
        next_upload_id_marker=(
            last.upload_id if isinstance(last, UploadRecord) else None
        ),
    )
