# -*- test-case-name: tests.unit.test_s3_xml -*-
"""
The XML documents multistore writes for clients: errors, ListBuckets,
GetBucketLocation, listings, and the answers of the write path (multipart
uploads, copies, batch deletes).

Every document starts with ``<?xml version="1.0" encoding="UTF-8"?>`` and
uses the S3 namespace where AWS does (``ListBucketResult``,
``ListAllMyBucketsResult``, ``LocationConstraint``; ``Error`` has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from lxml import etree

from multistore.model import BucketEntry, DeleteOutcome, PartsPage, UploadsPage
from multistore.s3.dates import format_iso8601
from multistore.s3.listing import ListResult, url_encode
from multistore.s3.xml import (
    S3_NAMESPACE,
    add_checksums,
    add_element,
    boolean_text,
    root_element,
    serialise,
    xml_safe,
)


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
    add_element(root, "Code", code)
    add_element(root, "Message", message)
    for name, text in extra:
        add_element(root, name, text)
    add_element(root, "Resource", resource)
    add_element(root, "RequestId", request_id)
    return serialise(root)


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
    owner = add_element(root, "Owner")
    add_element(owner, "ID", owner_id)
    add_element(owner, "DisplayName", owner_display_name)
    listed = add_element(root, "Buckets")
    for bucket in buckets:
        entry = add_element(listed, "Bucket")
        add_element(entry, "Name", bucket.name)
        add_element(entry, "CreationDate", format_iso8601(bucket.creation_date))
    return serialise(root)


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
    return serialise(root)


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
    add_element(root, "Name", result.name)
    add_element(root, "Prefix", result.prefix)
    if result.version == 1:
        add_element(root, "Marker", result.marker or "")
        if result.next_marker is not None:
            add_element(root, "NextMarker", result.next_marker)
    else:
        if result.start_after is not None:
            add_element(root, "StartAfter", result.start_after)
        if result.continuation_token is not None:
            add_element(root, "ContinuationToken", result.continuation_token)
        if result.next_continuation_token is not None:
            add_element(root, "NextContinuationToken", result.next_continuation_token)
        add_element(root, "KeyCount", str(result.key_count))
    add_element(root, "MaxKeys", str(result.max_keys))
    if result.delimiter is not None:
        add_element(root, "Delimiter", result.delimiter)
    if result.encoding_type is not None:
        add_element(root, "EncodingType", result.encoding_type)
    add_element(root, "IsTruncated", boolean_text(result.truncated))
    for entry in result.contents:
        contents = add_element(root, "Contents")
        add_element(contents, "Key", entry.key)
        add_element(contents, "LastModified", format_iso8601(entry.last_modified))
        add_element(contents, "ETag", entry.etag)
        add_element(contents, "Size", str(entry.size))
        if result.owner is not None:
            owner = add_element(contents, "Owner")
            add_element(owner, "ID", result.owner[0])
            add_element(owner, "DisplayName", result.owner[1])
        add_element(contents, "StorageClass", entry.storage_class)
    for prefix in result.common_prefixes:
        add_element(add_element(root, "CommonPrefixes"), "Prefix", prefix)
    return serialise(root)


def _owner(parent: etree._Element, tag: str, owner: tuple[str, str]) -> None:
    element = add_element(parent, tag)
    add_element(element, "ID", owner[0])
    add_element(element, "DisplayName", owner[1])


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
    add_element(root, "Bucket", bucket)
    add_element(root, "Key", key)
    add_element(root, "UploadId", upload_id)
    return serialise(root)


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
    add_element(root, "Location", location)
    add_element(root, "Bucket", bucket)
    add_element(root, "Key", key)
    add_element(root, "ETag", etag)
    add_checksums(root, checksums)
    return serialise(root)


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
    add_element(root, "ETag", etag)
    add_element(root, "LastModified", format_iso8601(last_modified))
    add_checksums(root, checksums)
    return serialise(root)


def copy_part_document(etag: str, last_modified: datetime) -> bytes:
    """
    The UploadPartCopy answer, ``CopyPartResult``: ``ETag, LastModified``.

    :param etag: the part's ETag, quotes included.
    :param last_modified: its time.
    :return: the document's bytes.
    """
    root = root_element("CopyPartResult", S3_NAMESPACE)
    add_element(root, "ETag", etag)
    add_element(root, "LastModified", format_iso8601(last_modified))
    return serialise(root)


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
            deleted = add_element(root, "Deleted")
            add_element(deleted, "Key", outcome.key)
            if outcome.delete_marker:
                add_element(deleted, "DeleteMarker", "true")
                if outcome.version_id is not None:
                    add_element(deleted, "DeleteMarkerVersionId", outcome.version_id)
            elif outcome.version_id is not None:
                add_element(deleted, "VersionId", outcome.version_id)
        else:
            error = add_element(root, "Error")
            add_element(error, "Key", outcome.key)
            if outcome.version_id is not None:
                add_element(error, "VersionId", outcome.version_id)
            add_element(error, "Code", outcome.error[0])
            add_element(error, "Message", outcome.error[1])
    return serialise(root)


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
    add_element(root, "Bucket", bucket)
    add_element(root, "Key", key)
    add_element(root, "UploadId", upload_id)
    add_element(root, "PartNumberMarker", str(part_number_marker))
    next_marker = page.next_part_number_marker
    if next_marker is None and page.parts:
        next_marker = page.parts[-1].part_number
    if next_marker is not None:
        add_element(root, "NextPartNumberMarker", str(next_marker))
    add_element(root, "MaxParts", str(max_parts))
    add_element(root, "IsTruncated", boolean_text(page.truncated))
    for part in page.parts:
        element = add_element(root, "Part")
        add_element(element, "PartNumber", str(part.part_number))
        add_element(element, "LastModified", format_iso8601(part.last_modified))
        add_element(element, "ETag", part.etag)
        add_element(element, "Size", str(part.size))
    _owner(root, "Initiator", owner)
    _owner(root, "Owner", owner)
    add_element(root, "StorageClass", "STANDARD")
    return serialise(root)


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
    add_element(root, "Bucket", bucket)
    add_element(root, "KeyMarker", key_text(key_marker or ""))
    add_element(root, "UploadIdMarker", upload_id_marker or "")
    if page.next_key_marker is not None:
        add_element(root, "NextKeyMarker", key_text(page.next_key_marker))
    if page.next_upload_id_marker is not None:
        add_element(root, "NextUploadIdMarker", page.next_upload_id_marker)
    if delimiter is not None:
        add_element(root, "Delimiter", key_text(delimiter))
    add_element(root, "Prefix", key_text(prefix))
    add_element(root, "MaxUploads", str(max_uploads))
    if encoding_type is not None:
        add_element(root, "EncodingType", encoding_type)
    add_element(root, "IsTruncated", boolean_text(page.truncated))
    for upload in page.uploads:
        element = add_element(root, "Upload")
        add_element(element, "Key", key_text(upload.key))
        add_element(element, "UploadId", upload.upload_id)
        _owner(element, "Initiator", owner)
        _owner(element, "Owner", owner)
        add_element(element, "StorageClass", "STANDARD")
        add_element(element, "Initiated", format_iso8601(upload.initiated))
    for common in page.common_prefixes:
        add_element(add_element(root, "CommonPrefixes"), "Prefix", key_text(common))
    return serialise(root)
