# -*- test-case-name: tests.unit.test_s3_xml -*-
"""
The S3 store's XML exchange with its backend: the request bodies it sends
(CompleteMultipartUpload, DeleteObjects, CreateBucket) and the answers it
reads (listings, upload ids, copy and completion results, batch delete
results, errors). Answers are parsed with L{multistore.s3.xml.safe_parser};
one that is not what S3 sends is the backend's fault: ``ServiceUnavailable``
(or the backend's own error code and message, for an ``<Error>``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Final, TypeAlias
from urllib.parse import unquote_to_bytes

from attrs import evolve
from lxml import etree

from multistore.model import (
    CompletedPart,
    DeleteOutcome,
    ListPage,
    ObjectInfo,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
)
from multistore.s3.dates import parse_iso8601
from multistore.s3.errors import S3Error
from multistore.s3.xml import (
    DECIMAL,
    S3_NAMESPACE,
    add_checksums,
    add_element,
    boolean_text,
    child_text,
    children_named,
    local_name,
    parse_untrusted,
    root_element,
    serialise,
    xml_can_carry,
)

#: What L{parse_list_objects_v2} returns: a L{ListPage} whose ``next_token``
#: is the backend's ``NextContinuationToken``.
BackendListing: TypeAlias = ListPage


_SIZE: Final = re.compile(r"[0-9]{1,20}", re.ASCII)


_BAD_LISTING: Final = "the backend store sent an invalid listing"


def _bad_listing() -> S3Error:
    return S3Error("ServiceUnavailable", _BAD_LISTING)


def _percent_decode(value: str) -> str:
    try:
        return unquote_to_bytes(value.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_listing() from None


def _object_info(contents: etree._Element) -> ObjectInfo:
    key = child_text(contents, "Key")
    size = child_text(contents, "Size")
    modified = child_text(contents, "LastModified")
    if key is None or size is None or modified is None:
        raise _bad_listing()
    size = size.strip()
    if _SIZE.fullmatch(size) is None:
        raise _bad_listing()
    try:
        last_modified = parse_iso8601(modified)
    except ValueError:
        raise _bad_listing() from None
    return ObjectInfo(
        key=key,
        size=int(size),
        last_modified=last_modified,
        etag=child_text(contents, "ETag") or "",
        storage_class=(child_text(contents, "StorageClass") or "").strip()
        or "STANDARD",
    )


def parse_list_objects_v2(body: bytes) -> BackendListing:
    """
    Read a store's ListObjectsV2 answer (``ListBucketResult``, with or
    without the S3 namespace).

    With ``EncodingType`` ``url``, keys and common prefixes are decoded as
    S3 encodes them: form-style, so ``+`` is a space (AWS and SeaweedFS
    write a space as ``+``) and a plus sign always arrives as ``%2B``.

    :param body: the answer's bytes.
    :return: the page; its ``next_token`` is the store's
        ``NextContinuationToken``.
    :raise S3Error: ``ServiceUnavailable`` if the answer is not a valid
        listing.
    """
    root = parse_untrusted(body)
    if root is None or local_name(root) != "ListBucketResult":
        raise _bad_listing()
    objects = [_object_info(contents) for contents in children_named(root, "Contents")]
    common_prefixes = [
        prefix.text or ""
        for group in children_named(root, "CommonPrefixes")
        for prefix in children_named(group, "Prefix")
    ]
    truncated = (child_text(root, "IsTruncated") or "").strip().lower()
    if truncated not in ("", "true", "false"):
        raise _bad_listing()
    encoding = (child_text(root, "EncodingType") or "").strip().lower()
    if encoding == "url":
        objects = [evolve(info, key=_percent_decode(info.key)) for info in objects]
        common_prefixes = [_percent_decode(prefix) for prefix in common_prefixes]
    return ListPage(
        objects=tuple(objects),
        common_prefixes=tuple(common_prefixes),
        truncated=truncated == "true",
        next_token=child_text(root, "NextContinuationToken") or None,
    )


def parse_error_document(body: bytes) -> tuple[str, str] | None:
    """
    Read the code and message of an S3 error document (with or without a
    namespace).

    :param body: the document's bytes.
    :return: ``(code, message)``, the message empty if absent; ``None`` if
        the body is not an ``<Error>`` document with a ``Code``.
    """
    root = parse_untrusted(body)
    if root is None or local_name(root) != "Error":
        return None
    code = (child_text(root, "Code") or "").strip()
    if not code:
        return None
    return (code, child_text(root, "Message") or "")


def complete_request_document(parts: Sequence[CompletedPart]) -> bytes:
    """
    A CompleteMultipartUpload body for a store, in the S3 namespace:
    ``Part*`` of ``PartNumber, ETag, Checksum<ALGORITHM>*``.

    :param parts: the parts, in order.
    :return: the document's bytes.
    :raise ValueError: for an unknown checksum algorithm.
    """
    root = root_element("CompleteMultipartUpload", S3_NAMESPACE)
    for part in parts:
        element = add_element(root, "Part")
        add_element(element, "PartNumber", str(part.part_number))
        add_element(element, "ETag", part.etag)
        add_checksums(element, part.checksums)
    return serialise(root)


def delete_request_document(
    keys: Sequence[tuple[str, str | None]], quiet: bool
) -> bytes:
    """
    A DeleteObjects body for a store, in the S3 namespace: ``Quiet``, then
    one ``Object`` (``Key, VersionId?``) per key.

    :param keys: ``(key, version_id)`` pairs, in order.
    :param quiet: whether the store should leave out the keys it deleted.
    :return: the document's bytes.
    :raise ValueError: if a key or version id holds a character XML 1.0
        cannot carry (see L{xml_can_carry}): it cannot be named in XML
        without naming another key.
    """
    root = root_element("Delete", S3_NAMESPACE)
    add_element(root, "Quiet", boolean_text(quiet))
    for key, version_id in keys:
        element = add_element(root, "Object")
        for name, value in (("Key", key), ("VersionId", version_id)):
            if value is None:
                continue
            if not xml_can_carry(value):
                raise ValueError(f"XML cannot carry {value!r}")
            add_element(element, name, value)
    return serialise(root)


def create_bucket_document(region: str) -> bytes:
    """
    A CreateBucket body for a store, ``CreateBucketConfiguration`` with its
    ``LocationConstraint``.

    :param region: the bucket's region (a store in ``us-east-1`` is created
        without a body).
    :return: the document's bytes.
    """
    root = root_element("CreateBucketConfiguration", S3_NAMESPACE)
    add_element(root, "LocationConstraint", region)
    return serialise(root)


def _quoted(etag: str) -> str:
    """
    :return: an ETag from a store, in double quotes as S3 writes it (some
        stores leave the quotes out).
    """
    etag = etag.strip()
    if not etag or etag.startswith(('"', "W/")):
        return etag
    return f'"{etag}"'


def _invalid(what: str) -> S3Error:
    return S3Error("ServiceUnavailable", f"the backend store sent an invalid {what}")


def _result_root(
    body: bytes, names: Sequence[str], what: str, errors: bool = False
) -> etree._Element:
    """
    :return: the root of a store's answer, which must be one of ``names``.
    :raise S3Error: with the answer's own code and message if ``errors`` and
        it is an ``<Error>`` document; ``ServiceUnavailable`` if it is not
        one of ``names``.
    """
    root = parse_untrusted(body)
    if root is not None and errors and local_name(root) == "Error":
        code = (child_text(root, "Code") or "").strip()
        if code:
            raise S3Error(code, child_text(root, "Message") or "")
    if root is None or local_name(root) not in names:
        raise _invalid(what)
    return root


def _number(text: str | None, what: str) -> int:
    value = (text or "").strip()
    if DECIMAL.fullmatch(value) is None:
        raise _invalid(what)
    return int(value)


def _time(text: str | None, what: str) -> datetime:
    if text is None:
        raise _invalid(what)
    try:
        return parse_iso8601(text)
    except ValueError:
        raise _invalid(what) from None


def _truncated(root: etree._Element, what: str) -> bool:
    truncated = (child_text(root, "IsTruncated") or "").strip().lower()
    if truncated not in ("", "true", "false"):
        raise _invalid(what)
    return truncated == "true"


def parse_initiate_result(body: bytes) -> str:
    """
    Read a store's CreateMultipartUpload answer.

    :param body: the answer's bytes.
    :return: the ``UploadId``.
    :raise S3Error: ``ServiceUnavailable`` if it is not an
        ``InitiateMultipartUploadResult`` with an upload id.
    """
    what = "multipart upload"
    # rclone (serve s3) names the root InitiateMultipartUpload.
    root = _result_root(
        body, ("InitiateMultipartUploadResult", "InitiateMultipartUpload"), what
    )
    upload_id = (child_text(root, "UploadId") or "").strip()
    if not upload_id:
        raise _invalid(what)
    return upload_id


def parse_copy_result(body: bytes) -> tuple[str, datetime]:
    """
    Read a store's CopyObject or UploadPartCopy answer (``CopyObjectResult``
    or ``CopyPartResult``).

    S3 may answer a copy ``200 OK`` and then report that it failed in an
    ``<Error>`` document; that error is raised.

    :param body: the answer's bytes.
    :return: ``(ETag, LastModified)``, the ETag quoted if the store left the
        quotes out.
    :raise S3Error: the store's own code and message for an ``<Error>``
        document (the message is the store's: map the code before a client
        sees it); ``ServiceUnavailable`` for anything else that is not a
        copy result with both values.
    """
    what = "copy result"
    root = _result_root(body, ("CopyObjectResult", "CopyPartResult"), what, True)
    etag = _quoted(child_text(root, "ETag") or "")
    if not etag:
        raise _invalid(what)
    return etag, _time(child_text(root, "LastModified"), what)


def parse_complete_result(body: bytes) -> str:
    """
    Read a store's CompleteMultipartUpload answer
    (``CompleteMultipartUploadResult``).

    S3 answers ``200 OK`` before it has assembled the object and reports a
    failure in an ``<Error>`` document; that error is raised.

    :param body: the answer's bytes.
    :return: the object's ``ETag``, quoted if the store left the quotes out.
    :raise S3Error: the store's own code and message for an ``<Error>``
        document (map the code before a client sees it);
        ``ServiceUnavailable`` for anything else without an ETag.
    """
    what = "multipart completion"
    root = _result_root(body, ("CompleteMultipartUploadResult",), what, True)
    etag = _quoted(child_text(root, "ETag") or "")
    if not etag:
        raise _invalid(what)
    return etag


def parse_delete_result(body: bytes) -> list[DeleteOutcome]:
    """
    Read a store's DeleteObjects answer (``DeleteResult``).

    ``Deleted`` elements become outcomes without an error: the version is
    ``VersionId``, else ``DeleteMarkerVersionId``; ``Error`` elements
    become outcomes with the store's ``(Code, Message)`` (map them before a
    client sees them).

    :param body: the answer's bytes.
    :return: the outcomes, in document order.
    :raise S3Error: ``ServiceUnavailable`` if it is not such a document or
        an entry has no key.
    """
    what = "delete result"
    root = _result_root(body, ("DeleteResult",), what)
    outcomes = []
    for element in children_named(root):
        kind = local_name(element)
        if kind not in ("Deleted", "Error"):
            continue
        key = child_text(element, "Key")
        if key is None:
            raise _invalid(what)
        version_id = child_text(element, "VersionId") or None
        if kind == "Deleted":
            marker = (
                child_text(element, "DeleteMarker") or ""
            ).strip().lower() == "true"
            if version_id is None:
                version_id = child_text(element, "DeleteMarkerVersionId") or None
            outcomes.append(DeleteOutcome(key, version_id, delete_marker=marker))
        else:
            code = (child_text(element, "Code") or "").strip() or "InternalError"
            message = child_text(element, "Message") or ""
            outcomes.append(DeleteOutcome(key, version_id, error=(code, message)))
    return outcomes


def parse_list_parts(body: bytes) -> PartsPage:
    """
    Read a store's ListParts answer (``ListPartsResult``; moto calls it
    ``ListPartsResponse``). ETags are quoted if the store left the quotes
    out.

    :param body: the answer's bytes.
    :return: the page.
    :raise S3Error: ``ServiceUnavailable`` if it is not a valid listing of
        parts.
    """
    what = "list of parts"
    root = _result_root(body, ("ListPartsResult", "ListPartsResponse"), what)
    parts = tuple(
        PartInfo(
            part_number=_number(child_text(element, "PartNumber"), what),
            etag=_quoted(child_text(element, "ETag") or ""),
            size=_number(child_text(element, "Size"), what),
            last_modified=_time(child_text(element, "LastModified"), what),
        )
        for element in children_named(root, "Part")
    )
    next_marker = (child_text(root, "NextPartNumberMarker") or "").strip()
    return PartsPage(
        parts=parts,
        truncated=_truncated(root, what),
        next_part_number_marker=_number(next_marker, what) if next_marker else None,
    )


def parse_list_uploads(body: bytes) -> UploadsPage:
    """
    Read a store's ListMultipartUploads answer
    (``ListMultipartUploadsResult``).

    With ``EncodingType`` ``url``, keys, common prefixes and the next key
    marker are decoded as L{parse_list_objects_v2} decodes keys.

    :param body: the answer's bytes.
    :return: the page, in the store's key space.
    :raise S3Error: ``ServiceUnavailable`` if it is not a valid listing of
        uploads.
    """
    what = "list of uploads"
    root = _result_root(body, ("ListMultipartUploadsResult",), what)
    encoded = (child_text(root, "EncodingType") or "").strip().lower() == "url"

    def key_text(value: str) -> str:
        if not encoded:
            return value
        try:
            return unquote_to_bytes(value.replace("+", " ")).decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid(what) from None

    uploads = []
    for element in children_named(root, "Upload"):
        key = child_text(element, "Key")
        upload_id = (child_text(element, "UploadId") or "").strip()
        if key is None or not upload_id:
            raise _invalid(what)
        uploads.append(
            UploadInfo(
                key=key_text(key),
                upload_id=upload_id,
                initiated=_time(child_text(element, "Initiated"), what),
            )
        )
    common_prefixes = tuple(
        key_text(prefix.text or "")
        for group in children_named(root, "CommonPrefixes")
        for prefix in children_named(group, "Prefix")
    )
    next_key = child_text(root, "NextKeyMarker") or None
    return UploadsPage(
        uploads=tuple(uploads),
        common_prefixes=common_prefixes,
        truncated=_truncated(root, what),
        next_key_marker=key_text(next_key) if next_key is not None else None,
        next_upload_id_marker=(child_text(root, "NextUploadIdMarker") or "").strip()
        or None,
    )
