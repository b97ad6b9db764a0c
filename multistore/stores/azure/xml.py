# -*- test-case-name: tests.unit.test_azure_store -*-
"""
The XML documents of the Azure Blob service: List Blobs answers, block
lists (read and written) and error documents.

Everything read here comes from outside and is parsed with
L{multistore.s3.xml.parse_untrusted}; a document that does not have the
expected shape fails with ``ServiceUnavailable`` (the backend misbehaved),
never with a parser's exception.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Final
from urllib.parse import unquote_to_bytes

from attrs import frozen
from lxml import etree

from multistore.s3.dates import parse_http_date
from multistore.s3.errors import S3Error
from multistore.s3.xml import parse_untrusted

_BAD_DOCUMENT: Final = "the backend store sent an invalid document"


def _bad() -> S3Error:
    return S3Error("ServiceUnavailable", _BAD_DOCUMENT)


@frozen
class BlobItem:
    """
    One blob of a List Blobs answer.

    :ivar name: the blob name.
    :ivar size: its ``Content-Length``.
    :ivar last_modified: its ``Last-Modified``.
    :ivar etag: its ETag, quoted as in a response header.
    """

    name: str
    size: int
    last_modified: datetime
    etag: str


@frozen
class BlobListing:
    """
    A List Blobs answer.

    :ivar blobs: the blobs, in name order.
    :ivar prefixes: the ``BlobPrefix`` names, in order.
    :ivar next_marker: the marker of the next page, or ``None`` on the last.
    """

    blobs: tuple[BlobItem, ...] = ()
    prefixes: tuple[str, ...] = ()
    next_marker: str | None = None


@frozen
class Block:
    """
    A block of a block list.

    :ivar block_id: the block id, base64 as Azure names it.
    :ivar size: its size in bytes.
    """

    block_id: str
    size: int


def _local(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _children(parent: etree._Element, name: str) -> Iterator[etree._Element]:
    for child in parent:
        if _local(child) == name:
            yield child


def _child(parent: etree._Element, name: str) -> etree._Element | None:
    for child in _children(parent, name):
        return child
    return None


def _text(parent: etree._Element, name: str) -> str | None:
    child = _child(parent, name)
    if child is None:
        return None
    return child.text or ""


def _name(parent: etree._Element) -> str:
    """
    :return: the ``Name`` of a blob or prefix, percent-decoded when Azure
        marked it ``Encoded`` (a name XML cannot carry).
    """
    element = _child(parent, "Name")
    if element is None:
        raise _bad()
    text = element.text or ""
    if (element.get("Encoded") or "").lower() == "true":
        try:
            return unquote_to_bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise _bad() from None
    return text


def _size(text: str | None) -> int:
    text = (text or "").strip()
    if not text.isascii() or not text.isdigit():
        raise _bad()
    return int(text)


def _quoted(etag: str) -> str:
    etag = etag.strip()
    if etag.startswith('"'):
        return etag
    return f'"{etag}"'


def parse_list_blobs(body: bytes) -> BlobListing:
    """
    Read a List Blobs answer.

    :param body: the document.
    :return: its blobs, prefixes and next marker.
    :raise S3Error: ``ServiceUnavailable`` if it is not one.
    """
    root = parse_untrusted(body)
    if root is None or _local(root) != "EnumerationResults":
        raise _bad()
    blobs: list[BlobItem] = []
    prefixes: list[str] = []
    container = _child(root, "Blobs")
    for element in () if container is None else container:
        kind = _local(element)
        if kind == "BlobPrefix":
            prefixes.append(_name(element))
        elif kind == "Blob":
            properties = _child(element, "Properties")
            if properties is None:
                raise _bad()
            modified = parse_http_date(_text(properties, "Last-Modified"))
            if modified is None:
                raise _bad()
            blobs.append(
                BlobItem(
                    name=_name(element),
                    size=_size(_text(properties, "Content-Length")),
                    last_modified=modified,
                    etag=_quoted(_text(properties, "Etag") or ""),
                )
            )
    marker = (_text(root, "NextMarker") or "").strip()
    return BlobListing(tuple(blobs), tuple(prefixes), marker or None)


def parse_block_list(body: bytes) -> tuple[tuple[Block, ...], tuple[Block, ...]]:
    """
    Read a Get Block List answer.

    :param body: the document.
    :return: the committed blocks and the uncommitted blocks, each in the
        order Azure lists them.
    :raise S3Error: ``ServiceUnavailable`` if it is not one.
    """
    root = parse_untrusted(body)
    if root is None or _local(root) != "BlockList":
        raise _bad()

    def blocks(name: str) -> tuple[Block, ...]:
        group = _child(root, name)
        if group is None:
            return ()
        found = []
        for block in _children(group, "Block"):
            block_id = _text(block, "Name")
            if block_id is None:
                raise _bad()
            found.append(Block(block_id.strip(), _size(_text(block, "Size"))))
        return tuple(found)

    return blocks("CommittedBlocks"), blocks("UncommittedBlocks")


def block_list_document(block_ids: Sequence[str]) -> bytes:
    """
    :param block_ids: base64 block ids, in the order of the blob's bytes.
    :return: a Put Block List body naming each as ``Latest``.
    """
    root = etree.Element("BlockList")
    for block_id in block_ids:
        etree.SubElement(root, "Latest").text = block_id
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def parse_error_code(body: bytes) -> tuple[str, str] | None:
    """
    Read an Azure error document.

    :param body: the document.
    :return: its ``(code, message)``; ``None`` if it is not one.
    """
    root = parse_untrusted(body) if body else None
    if root is None or _local(root) != "Error":
        return None
    code = (_text(root, "Code") or "").strip()
    if not code:
        return None
    return code, _text(root, "Message") or ""
