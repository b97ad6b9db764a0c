# -*- test-case-name: tests.unit.test_s3_xml -*-
"""
S3 XML documents: the ones multistore writes for clients (errors,
ListBuckets, GetBucketLocation, listings, and the answers of the write
path: multipart uploads, copies, batch deletes), the request bodies it reads
from clients (DeleteObjects, CompleteMultipartUpload), the request bodies it
sends to S3 stores, and the answers it reads from them.

Every document written starts with ``<?xml version="1.0" encoding="UTF-8"?>``
and uses the S3 namespace where AWS does (``ListBucketResult``,
``ListAllMyBucketsResult``, ``LocationConstraint``; ``Error`` has none).

Characters that XML 1.0 cannot carry (C0 control characters other than tab,
newline and carriage return, lone surrogates, U+FFFE and U+FFFF) never make
writing fail: each is replaced by the percent-encoding of its UTF-8 bytes
(U+0001 is ``%01``) and the rest of the value is left as it is (see
L{xml_safe}). In a listing they can only come from keys; a client that asks
for ``encoding-type=url`` gets every key fully percent-encoded and so can
tell ``%01`` from U+0001, which a client that does not ask cannot.

Untrusted XML is parsed only with L{safe_parser}: no entity expansion, no
DTD, no network, no huge trees; a document with a DOCTYPE is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import pairwise
from typing import Final, TypeAlias
from urllib.parse import unquote_to_bytes

from attrs import evolve
from lxml import etree

from multistore.model import (
    BucketEntry,
    CompletedPart,
    DeleteOutcome,
    ListPage,
    ObjectInfo,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
)
from multistore.s3.dates import format_iso8601, parse_iso8601
from multistore.s3.errors import S3Error
from multistore.s3.listing import ListResult, url_encode

#: The S3 XML namespace.
S3_NAMESPACE: Final = "http://s3.amazonaws.com/doc/2006-03-01/"

#: What L{parse_list_objects_v2} returns: a L{ListPage} whose ``next_token``
#: is the backend's ``NextContinuationToken``.
BackendListing: TypeAlias = ListPage

_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'

_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_SIZE: Final = re.compile(r"[0-9]{1,20}", re.ASCII)

_BAD_LISTING: Final = "the backend store sent an invalid listing"


def safe_parser() -> etree.XMLParser:
    """
    A parser for XML from outside (clients, stores): entities are not
    expanded, no DTD is loaded, nothing is fetched from the network, and
    libxml2's size limits stay on.

    :return: a new parser (parsers are not shared between threads).
    """
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_untrusted(body: bytes) -> etree._Element | None:
    """
    Parse XML from outside with L{safe_parser}.

    :param body: the document's bytes.
    :return: its root element, or ``None`` if it is not well-formed or has a
        DOCTYPE.
    """
    try:
        root = etree.fromstring(body, parser=safe_parser())
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None or root.getroottree().docinfo.internalDTD is not None:
        return None
    return root


def xml_safe(text: str) -> str:
    """
    Make text carriable by XML 1.0: each character XML 1.0 cannot carry
    (C0 controls other than tab, newline and carriage return; lone
    surrogates; U+FFFE; U+FFFF) becomes the percent-encoding of its UTF-8
    bytes (U+0001 is ``%01``, U+FFFE is ``%EF%BF%BE``); everything else,
    ``%`` included, is left as it is.

    :param text: any text.
    :return: text lxml can serialise.
    """
    return _NOT_XML.sub(lambda match: url_encode(match.group()), text)


def root_element(tag: str, namespace: str | None) -> etree._Element:
    """
    :return: a document's root element, in ``namespace`` as its default
        namespace (or none).
    """
    if namespace is None:
        return etree.Element(tag)
    # The stubs refuse the default namespace's None prefix, which lxml takes.
    default: dict[str | None, str] = {None: namespace}
    return etree.Element(f"{{{namespace}}}{tag}", nsmap=default)  # type: ignore[arg-type]


def _add(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    """
    Append a child in the parent's namespace, with ``text`` made XML-safe.
    """
    namespace = etree.QName(parent).namespace
    child = etree.SubElement(parent, f"{{{namespace}}}{tag}" if namespace else tag)
    if text is not None:
        child.text = xml_safe(text)
    return child


def _serialise(root: etree._Element) -> bytes:
    return _DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def error_document(
    code: str,
    message: str,
    resource: str,
    request_id: str,
    extra: Sequence[tuple[str, str]] = (),
) -> bytes:
    """
    An S3 error document (no namespace, as AWS sends it)::

        <Error><Code/><Message/>[extra]<Resource/><RequestId/></Error>

    :param code: the S3 error code.
    :param message: the message.
    :param resource: the resource the error concerns (the request path).
    :param request_id: the request's id.
    :param extra: further elements, as ``(name, text)`` in order, placed
        after ``Message``.
    :return: the document's bytes.
    """
    root = root_element("Error", None)
    _add(root, "Code", code)
    _add(root, "Message", message)
    for name, text in extra:
        _add(root, name, text)
    _add(root, "Resource", resource)
    _add(root, "RequestId", request_id)
    return _serialise(root)


def list_buckets_document(
    owner_id: str, owner_display_name: str, buckets: Sequence[BucketEntry]
) -> bytes:
    """
    The ListBuckets answer, ``ListAllMyBucketsResult``.

    :param owner_id: the owner's ``ID``.
    :param owner_display_name: the owner's ``DisplayName``.
    :param buckets: the buckets to show, in order.
    :return: the document's bytes.
    """
    root = root_element("ListAllMyBucketsResult", S3_NAMESPACE)
    owner = _add(root, "Owner")
    _add(owner, "ID", owner_id)
    _add(owner, "DisplayName", owner_display_name)
    listed = _add(root, "Buckets")
    for bucket in buckets:
        entry = _add(listed, "Bucket")
        _add(entry, "Name", bucket.name)
        _add(entry, "CreationDate", format_iso8601(bucket.creation_date))
    return _serialise(root)


def location_document(region: str) -> bytes:
    """
    The GetBucketLocation answer, ``LocationConstraint``.

    :param region: the region; ``us-east-1`` is shown as an empty element,
        as AWS does.
    :return: the document's bytes.
    """
    root = root_element("LocationConstraint", S3_NAMESPACE)
    if region and region != "us-east-1":
        root.text = xml_safe(region)
    return _serialise(root)


def list_objects_document(result: ListResult) -> bytes:
    """
    A listing, ``ListBucketResult``, for ListObjectsV2 or ListObjects,
    elements in the order S3 sends them.

    V2: ``Name, Prefix, StartAfter?, ContinuationToken?,
    NextContinuationToken?, KeyCount, MaxKeys, Delimiter?, EncodingType?,
    IsTruncated, Contents*, CommonPrefixes*``.

    V1: ``Name, Prefix, Marker, NextMarker?, MaxKeys, Delimiter?,
    EncodingType?, IsTruncated, Contents*, CommonPrefixes*``.

    ``Contents``: ``Key, LastModified, ETag, Size, Owner?, StorageClass``.

    Values are written as the result holds them (URL-encoded already if the
    client asked); characters XML 1.0 cannot carry, which only keys can
    hold, are percent-encoded on their own (see L{xml_safe}).

    :param result: the listing.
    :return: the document's bytes.
    """
    root = root_element("ListBucketResult", S3_NAMESPACE)
    _add(root, "Name", result.name)
    _add(root, "Prefix", result.prefix)
    if result.version == 1:
        _add(root, "Marker", result.marker or "")
        if result.next_marker is not None:
            _add(root, "NextMarker", result.next_marker)
    else:
        if result.start_after is not None:
            _add(root, "StartAfter", result.start_after)
        if result.continuation_token is not None:
            _add(root, "ContinuationToken", result.continuation_token)
        if result.next_continuation_token is not None:
            _add(root, "NextContinuationToken", result.next_continuation_token)
        _add(root, "KeyCount", str(result.key_count))
    _add(root, "MaxKeys", str(result.max_keys))
    if result.delimiter is not None:
        _add(root, "Delimiter", result.delimiter)
    if result.encoding_type is not None:
        _add(root, "EncodingType", result.encoding_type)
    _add(root, "IsTruncated", _boolean(result.truncated))
    for entry in result.contents:
        contents = _add(root, "Contents")
        _add(contents, "Key", entry.key)
        _add(contents, "LastModified", format_iso8601(entry.last_modified))
        _add(contents, "ETag", entry.etag)
        _add(contents, "Size", str(entry.size))
        if result.owner is not None:
            owner = _add(contents, "Owner")
            _add(owner, "ID", result.owner[0])
            _add(owner, "DisplayName", result.owner[1])
        _add(contents, "StorageClass", entry.storage_class)
    for prefix in result.common_prefixes:
        _add(_add(root, "CommonPrefixes"), "Prefix", prefix)
    return _serialise(root)


def _local_name(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _elements(
    parent: etree._Element, name: str | None = None
) -> Iterator[etree._Element]:
    """
    The child elements of ``parent`` (named ``name``, in any namespace).
    """
    for child in parent:
        local = _local_name(child)
        if local and (name is None or local == name):
            yield child


def _text(parent: etree._Element, name: str) -> str | None:
    """
    :return: the text of the first child ``name`` (empty if it has none), or
        ``None`` if there is no such child.
    """
    for child in _elements(parent, name):
        return child.text or ""
    return None


def _bad_listing() -> S3Error:
    return S3Error("ServiceUnavailable", _BAD_LISTING)


def _percent_decode(value: str) -> str:
    try:
        return unquote_to_bytes(value.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_listing() from None


def _object_info(contents: etree._Element) -> ObjectInfo:
    key = _text(contents, "Key")
    size = _text(contents, "Size")
    modified = _text(contents, "LastModified")
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
        etag=_text(contents, "ETag") or "",
        storage_class=(_text(contents, "StorageClass") or "").strip() or "STANDARD",
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
    if root is None or _local_name(root) != "ListBucketResult":
        raise _bad_listing()
    objects = [_object_info(contents) for contents in _elements(root, "Contents")]
    common_prefixes = [
        prefix.text or ""
        for group in _elements(root, "CommonPrefixes")
        for prefix in _elements(group, "Prefix")
    ]
    truncated = (_text(root, "IsTruncated") or "").strip().lower()
    if truncated not in ("", "true", "false"):
        raise _bad_listing()
    encoding = (_text(root, "EncodingType") or "").strip().lower()
    if encoding == "url":
        objects = [evolve(info, key=_percent_decode(info.key)) for info in objects]
        common_prefixes = [_percent_decode(prefix) for prefix in common_prefixes]
    return ListPage(
        objects=tuple(objects),
        common_prefixes=tuple(common_prefixes),
        truncated=truncated == "true",
        next_token=_text(root, "NextContinuationToken") or None,
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
    if root is None or _local_name(root) != "Error":
        return None
    code = (_text(root, "Code") or "").strip()
    if not code:
        return None
    return (code, _text(root, "Message") or "")


# --- the write path ----------------------------------------------------------

#: The most keys one DeleteObjects request may name.
MAX_DELETE_KEYS: Final = 1000

#: The greatest part number of a multipart upload.
MAX_PART_NUMBER: Final = 10000

#: The checksum algorithms S3 names in ``Checksum<ALGORITHM>`` elements and
#: ``x-amz-checksum-<algorithm>`` headers.
CHECKSUM_ALGORITHMS: Final = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")

#: What may follow ``Checksum`` in an element name written by this module.
_CHECKSUM_SUFFIXES: Final = frozenset((*CHECKSUM_ALGORITHMS, "Type"))

_DIGITS: Final = re.compile(r"[0-9]{1,20}", re.ASCII)


def xml_can_carry(text: str) -> bool:
    """
    :param text: any text.
    :return: whether XML 1.0 can carry ``text`` unchanged (L{xml_safe}
        would leave it as it is).
    """
    return _NOT_XML.search(text) is None


def _checksum_elements(
    parent: etree._Element, checksums: Sequence[tuple[str, str]]
) -> None:
    for name, value in checksums:
        if name not in _CHECKSUM_SUFFIXES:
            raise ValueError(f"not a checksum element: Checksum{name}")
        _add(parent, f"Checksum{name}", value)


def _owner(parent: etree._Element, tag: str, owner: tuple[str, str]) -> None:
    element = _add(parent, tag)
    _add(element, "ID", owner[0])
    _add(element, "DisplayName", owner[1])


def initiate_multipart_document(bucket: str, key: str, upload_id: str) -> bytes:
    """
    The CreateMultipartUpload answer, ``InitiateMultipartUploadResult``:
    ``Bucket, Key, UploadId``.

    :param bucket: the virtual bucket.
    :param key: the virtual key.
    :param upload_id: the upload's id.
    :return: the document's bytes.
    """
    root = root_element("InitiateMultipartUploadResult", S3_NAMESPACE)
    _add(root, "Bucket", bucket)
    _add(root, "Key", key)
    _add(root, "UploadId", upload_id)
    return _serialise(root)


def complete_multipart_document(
    location: str,
    bucket: str,
    key: str,
    etag: str,
    checksums: Sequence[tuple[str, str]] = (),
) -> bytes:
    """
    The CompleteMultipartUpload answer, ``CompleteMultipartUploadResult``:
    ``Location, Bucket, Key, ETag, Checksum*``.

    :param location: the object's URL, as the client addresses it.
    :param bucket: the virtual bucket.
    :param key: the virtual key.
    :param etag: the object's ETag, quotes included.
    :param checksums: ``(name, value)`` pairs, each written as an element
        ``Checksum<name>`` in the order given: ``name`` is one of
        L{CHECKSUM_ALGORITHMS} (``("CRC32", "AAAAAA==")`` is
        ``<ChecksumCRC32>AAAAAA==</ChecksumCRC32>``) or ``Type``.
    :return: the document's bytes.
    :raise ValueError: for a checksum name that is neither.
    """
    root = root_element("CompleteMultipartUploadResult", S3_NAMESPACE)
    _add(root, "Location", location)
    _add(root, "Bucket", bucket)
    _add(root, "Key", key)
    _add(root, "ETag", etag)
    _checksum_elements(root, checksums)
    return _serialise(root)


def copy_object_document(
    etag: str, last_modified: datetime, checksums: Sequence[tuple[str, str]] = ()
) -> bytes:
    """
    The CopyObject answer, ``CopyObjectResult``: ``ETag, LastModified,
    Checksum*``.

    :param etag: the new object's ETag, quotes included.
    :param last_modified: its time.
    :param checksums: as for L{complete_multipart_document}.
    :return: the document's bytes.
    :raise ValueError: for an unknown checksum name.
    """
    root = root_element("CopyObjectResult", S3_NAMESPACE)
    _add(root, "ETag", etag)
    _add(root, "LastModified", format_iso8601(last_modified))
    _checksum_elements(root, checksums)
    return _serialise(root)


def copy_part_document(etag: str, last_modified: datetime) -> bytes:
    """
    The UploadPartCopy answer, ``CopyPartResult``: ``ETag, LastModified``.

    :param etag: the part's ETag, quotes included.
    :param last_modified: its time.
    :return: the document's bytes.
    """
    root = root_element("CopyPartResult", S3_NAMESPACE)
    _add(root, "ETag", etag)
    _add(root, "LastModified", format_iso8601(last_modified))
    return _serialise(root)


def delete_result_document(outcomes: Sequence[DeleteOutcome], quiet: bool) -> bytes:
    """
    The DeleteObjects answer, ``DeleteResult``, one element per outcome in
    the order given.

    A key deleted is ``Deleted``: ``Key``, then ``VersionId`` (the version
    deleted) or, when a delete marker is involved, ``DeleteMarker`` and
    ``DeleteMarkerVersionId``. In quiet mode these are left out. A key not
    deleted is always an ``Error``: ``Key, VersionId?, Code, Message``.

    :param outcomes: what happened to each key (keys as the client named
        them).
    :param quiet: whether the client asked for ``Quiet``.
    :return: the document's bytes.
    """
    root = root_element("DeleteResult", S3_NAMESPACE)
    for outcome in outcomes:
        if outcome.error is None:
            if quiet:
                continue
            deleted = _add(root, "Deleted")
            _add(deleted, "Key", outcome.key)
            if outcome.delete_marker:
                _add(deleted, "DeleteMarker", "true")
                if outcome.version_id is not None:
                    _add(deleted, "DeleteMarkerVersionId", outcome.version_id)
            elif outcome.version_id is not None:
                _add(deleted, "VersionId", outcome.version_id)
        else:
            error = _add(root, "Error")
            _add(error, "Key", outcome.key)
            if outcome.version_id is not None:
                _add(error, "VersionId", outcome.version_id)
            _add(error, "Code", outcome.error[0])
            _add(error, "Message", outcome.error[1])
    return _serialise(root)


def list_parts_document(
    bucket: str,
    key: str,
    upload_id: str,
    page: PartsPage,
    max_parts: int,
    part_number_marker: int,
    owner: tuple[str, str],
) -> bytes:
    """
    The ListParts answer, ``ListPartsResult``: ``Bucket, Key, UploadId,
    PartNumberMarker, NextPartNumberMarker?, MaxParts, IsTruncated, Part*,
    Initiator, Owner, StorageClass``; each ``Part`` is ``PartNumber,
    LastModified, ETag, Size``.

    :param bucket: the virtual bucket.
    :param key: the virtual key.
    :param upload_id: the upload's id.
    :param page: the parts.
    :param max_parts: the page size asked for.
    :param part_number_marker: the marker asked for (0 for none).
    :param owner: ``(ID, DisplayName)`` shown as initiator and owner.
    :return: the document's bytes. ``NextPartNumberMarker`` is the page's,
        or else the last part's number (as S3 sends it); it is left out for
        an empty page without one.
    """
    root = root_element("ListPartsResult", S3_NAMESPACE)
    _add(root, "Bucket", bucket)
    _add(root, "Key", key)
    _add(root, "UploadId", upload_id)
    _add(root, "PartNumberMarker", str(part_number_marker))
    next_marker = page.next_part_number_marker
    if next_marker is None and page.parts:
        next_marker = page.parts[-1].part_number
    if next_marker is not None:
        _add(root, "NextPartNumberMarker", str(next_marker))
    _add(root, "MaxParts", str(max_parts))
    _add(root, "IsTruncated", _boolean(page.truncated))
    for part in page.parts:
        element = _add(root, "Part")
        _add(element, "PartNumber", str(part.part_number))
        _add(element, "LastModified", format_iso8601(part.last_modified))
        _add(element, "ETag", part.etag)
        _add(element, "Size", str(part.size))
    _owner(root, "Initiator", owner)
    _owner(root, "Owner", owner)
    _add(root, "StorageClass", "STANDARD")
    return _serialise(root)


def list_uploads_document(
    bucket: str,
    page: UploadsPage,
    prefix: str,
    delimiter: str | None,
    key_marker: str | None,
    upload_id_marker: str | None,
    max_uploads: int,
    encoding_type: str | None,
    owner: tuple[str, str],
) -> bytes:
    """
    The ListMultipartUploads answer, ``ListMultipartUploadsResult``:
    ``Bucket, KeyMarker, UploadIdMarker, NextKeyMarker?,
    NextUploadIdMarker?, Delimiter?, Prefix, MaxUploads, EncodingType?,
    IsTruncated, Upload*, CommonPrefixes*``; each ``Upload`` is ``Key,
    UploadId, Initiator, Owner, StorageClass, Initiated``.

    With ``encoding_type`` ``url``, every key, prefix, marker and the
    delimiter are written URL-encoded (see
    L{multistore.s3.listing.url_encode}).

    :param bucket: the virtual bucket.
    :param page: the uploads, keys and prefixes already virtual.
    :param prefix: the prefix asked for.
    :param delimiter: the delimiter asked for, if any.
    :param key_marker: the key marker asked for, if any.
    :param upload_id_marker: the upload id marker asked for, if any.
    :param max_uploads: the page size asked for.
    :param encoding_type: ``url``, or ``None``.
    :param owner: ``(ID, DisplayName)`` shown as initiator and owner.
    :return: the document's bytes.
    """
    encoded = encoding_type == "url"

    def key_text(value: str) -> str:
        return url_encode(value) if encoded else value

    root = root_element("ListMultipartUploadsResult", S3_NAMESPACE)
    _add(root, "Bucket", bucket)
    _add(root, "KeyMarker", key_text(key_marker or ""))
    _add(root, "UploadIdMarker", upload_id_marker or "")
    if page.next_key_marker is not None:
        _add(root, "NextKeyMarker", key_text(page.next_key_marker))
    if page.next_upload_id_marker is not None:
        _add(root, "NextUploadIdMarker", page.next_upload_id_marker)
    if delimiter is not None:
        _add(root, "Delimiter", key_text(delimiter))
    _add(root, "Prefix", key_text(prefix))
    _add(root, "MaxUploads", str(max_uploads))
    if encoding_type is not None:
        _add(root, "EncodingType", encoding_type)
    _add(root, "IsTruncated", _boolean(page.truncated))
    for upload in page.uploads:
        element = _add(root, "Upload")
        _add(element, "Key", key_text(upload.key))
        _add(element, "UploadId", upload.upload_id)
        _owner(element, "Initiator", owner)
        _owner(element, "Owner", owner)
        _add(element, "StorageClass", "STANDARD")
        _add(element, "Initiated", format_iso8601(upload.initiated))
    for common in page.common_prefixes:
        _add(_add(root, "CommonPrefixes"), "Prefix", key_text(common))
    return _serialise(root)


# Client request bodies.


def _malformed() -> S3Error:
    return S3Error("MalformedXML")


def parse_delete_request(body: bytes) -> tuple[bool, list[tuple[str, str | None]]]:
    """
    Read a client's DeleteObjects body, ``<Delete>`` with ``Quiet`` and
    ``Object`` elements (with or without the S3 namespace).

    :param body: the request body.
    :return: ``(quiet, [(key, version_id), ...])`` in the order given; keys
        exactly as written (whitespace kept); an empty ``VersionId`` is
        ``None``.
    :raise S3Error: ``MalformedXML`` if the body is not such a document,
        names no object or more than L{MAX_DELETE_KEYS}, has an object
        without a key, or a ``Quiet`` that is not ``true`` or ``false``.
    """
    root = parse_untrusted(body)
    if root is None or _local_name(root) != "Delete":
        raise _malformed()
    quiet = False
    quiet_text = _text(root, "Quiet")
    if quiet_text is not None:
        value = quiet_text.strip().lower()
        if value not in ("true", "false"):
            raise _malformed()
        quiet = value == "true"
    objects: list[tuple[str, str | None]] = []
    for element in _elements(root, "Object"):
        key = _text(element, "Key")
        if not key:
            raise _malformed()
        objects.append((key, _text(element, "VersionId") or None))
        if len(objects) > MAX_DELETE_KEYS:
            raise _malformed()
    if not objects:
        raise _malformed()
    return quiet, objects


def _part_number(text: str | None) -> int:
    number = (text or "").strip()
    if _DIGITS.fullmatch(number) is None:
        raise _malformed()
    value = int(number)
    if not 1 <= value <= MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, "
            "inclusive",
            extra=(("ArgumentName", "partNumber"), ("ArgumentValue", number)),
        )
    return value


def parse_complete_request(body: bytes) -> list[CompletedPart]:
    """
    Read a client's CompleteMultipartUpload body,
    ``<CompleteMultipartUpload>`` with ``Part`` elements of ``PartNumber``,
    ``ETag`` and ``Checksum<ALGORITHM>`` (with or without the S3
    namespace).

    :param body: the request body.
    :return: the parts in the order given, each with its checksums as
        ``(algorithm, value)`` pairs (``("CRC32", "AAAAAA==")``).
    :raise S3Error: ``MalformedXML`` if the body is not such a document,
        names no part, or has a part without a numeric ``PartNumber`` or an
        ``ETag``; ``InvalidArgument`` for a part number outside 1 to
        L{MAX_PART_NUMBER}; ``InvalidPartOrder`` if the part numbers do not
        strictly ascend.
    """
    root = parse_untrusted(body)
    if root is None or _local_name(root) != "CompleteMultipartUpload":
        raise _malformed()
    parts: list[CompletedPart] = []
    for element in _elements(root, "Part"):
        number = _part_number(_text(element, "PartNumber"))
        etag = (_text(element, "ETag") or "").strip()
        if not etag:
            raise _malformed()
        checksums = tuple(
            (algorithm, (_text(element, f"Checksum{algorithm}") or "").strip())
            for algorithm in CHECKSUM_ALGORITHMS
            if _text(element, f"Checksum{algorithm}") is not None
        )
        parts.append(CompletedPart(number, etag, checksums))
    if not parts:
        raise _malformed()
    for before, after in pairwise(parts):
        if after.part_number <= before.part_number:
            raise S3Error("InvalidPartOrder")
    return parts


# Request bodies sent to S3 stores.


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
        element = _add(root, "Part")
        _add(element, "PartNumber", str(part.part_number))
        _add(element, "ETag", part.etag)
        _checksum_elements(element, part.checksums)
    return _serialise(root)


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
    _add(root, "Quiet", _boolean(quiet))
    for key, version_id in keys:
        element = _add(root, "Object")
        for name, value in (("Key", key), ("VersionId", version_id)):
            if value is None:
                continue
            if not xml_can_carry(value):
                raise ValueError(f"XML cannot carry {value!r}")
            _add(element, name, value)
    return _serialise(root)


def create_bucket_document(region: str) -> bytes:
    """
    A CreateBucket body for a store, ``CreateBucketConfiguration`` with its
    ``LocationConstraint``.

    :param region: the bucket's region (a store in ``us-east-1`` is created
        without a body).
    :return: the document's bytes.
    """
    root = root_element("CreateBucketConfiguration", S3_NAMESPACE)
    _add(root, "LocationConstraint", region)
    return _serialise(root)


# Answers read from S3 stores.


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
    if root is not None and errors and _local_name(root) == "Error":
        code = (_text(root, "Code") or "").strip()
        if code:
            raise S3Error(code, _text(root, "Message") or "")
    if root is None or _local_name(root) not in names:
        raise _invalid(what)
    return root


def _number(text: str | None, what: str) -> int:
    value = (text or "").strip()
    if _DIGITS.fullmatch(value) is None:
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
    truncated = (_text(root, "IsTruncated") or "").strip().lower()
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
    upload_id = (_text(root, "UploadId") or "").strip()
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
    etag = _quoted(_text(root, "ETag") or "")
    if not etag:
        raise _invalid(what)
    return etag, _time(_text(root, "LastModified"), what)


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
    etag = _quoted(_text(root, "ETag") or "")
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
    for element in _elements(root):
        kind = _local_name(element)
        if kind not in ("Deleted", "Error"):
            continue
        key = _text(element, "Key")
        if key is None:
            raise _invalid(what)
        version_id = _text(element, "VersionId") or None
        if kind == "Deleted":
            marker = (_text(element, "DeleteMarker") or "").strip().lower() == "true"
            if version_id is None:
                version_id = _text(element, "DeleteMarkerVersionId") or None
            outcomes.append(DeleteOutcome(key, version_id, delete_marker=marker))
        else:
            code = (_text(element, "Code") or "").strip() or "InternalError"
            message = _text(element, "Message") or ""
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
            part_number=_number(_text(element, "PartNumber"), what),
            etag=_quoted(_text(element, "ETag") or ""),
            size=_number(_text(element, "Size"), what),
            last_modified=_time(_text(element, "LastModified"), what),
        )
        for element in _elements(root, "Part")
    )
    next_marker = (_text(root, "NextPartNumberMarker") or "").strip()
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
    encoded = (_text(root, "EncodingType") or "").strip().lower() == "url"

    def key_text(value: str) -> str:
        if not encoded:
            return value
        try:
            return unquote_to_bytes(value.replace("+", " ")).decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid(what) from None

    uploads = []
    for element in _elements(root, "Upload"):
        key = _text(element, "Key")
        upload_id = (_text(element, "UploadId") or "").strip()
        if key is None or not upload_id:
            raise _invalid(what)
        uploads.append(
            UploadInfo(
                key=key_text(key),
                upload_id=upload_id,
                initiated=_time(_text(element, "Initiated"), what),
            )
        )
    common_prefixes = tuple(
        key_text(prefix.text or "")
        for group in _elements(root, "CommonPrefixes")
        for prefix in _elements(group, "Prefix")
    )
    next_key = _text(root, "NextKeyMarker") or None
    return UploadsPage(
        uploads=tuple(uploads),
        common_prefixes=common_prefixes,
        truncated=_truncated(root, what),
        next_key_marker=key_text(next_key) if next_key is not None else None,
        next_upload_id_marker=(_text(root, "NextUploadIdMarker") or "").strip() or None,
    )
