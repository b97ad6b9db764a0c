# -*- test-case-name: tests.unit.test_s3_xml -*-
"""
S3 XML documents: the ones multistore writes (errors, ListBuckets,
GetBucketLocation, listings) and the ones it reads from stores (listings,
errors).

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
from typing import Final, TypeAlias
from urllib.parse import unquote_to_bytes

from attrs import evolve
from lxml import etree

from multistore.dates import format_iso8601, parse_iso8601
from multistore.model import BucketEntry, ListPage, ObjectInfo
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


def _root(tag: str, namespace: str | None) -> etree._Element:
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
    root = _root("Error", None)
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
    root = _root("ListAllMyBucketsResult", S3_NAMESPACE)
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
    root = _root("LocationConstraint", S3_NAMESPACE)
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
    root = _root("ListBucketResult", S3_NAMESPACE)
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
