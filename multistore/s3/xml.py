# -*- test-case-name: tests.unit.test_s3_xml -*-
"""
S3 XML: the safe parser for documents from outside, the building blocks of
the documents multistore writes, and the request bodies it reads from
clients (DeleteObjects, CompleteMultipartUpload).

The documents written for clients are in L{multistore.s3.documents}; what
is written to and read from S3 stores is in L{multistore.stores.s3.xml}.

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
from itertools import pairwise
from typing import Final

from lxml import etree

from multistore.model import (
    CompletedPart,
)
from multistore.s3.errors import S3Error
from multistore.s3.listing import url_encode

#: The S3 XML namespace.
S3_NAMESPACE: Final = "http://s3.amazonaws.com/doc/2006-03-01/"


_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'

_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


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


def add_element(
    parent: etree._Element, tag: str, text: str | None = None
) -> etree._Element:
    """
    Append a child in the parent's namespace, with ``text`` made XML-safe.
    """
    namespace = etree.QName(parent).namespace
    child = etree.SubElement(parent, f"{{{namespace}}}{tag}" if namespace else tag)
    if text is not None:
        child.text = xml_safe(text)
    return child


def serialise(root: etree._Element) -> bytes:
    return _DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def boolean_text(value: bool) -> str:
    return "true" if value else "false"


def local_name(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def children_named(
    parent: etree._Element, name: str | None = None
) -> Iterator[etree._Element]:
    """
    The child elements of ``parent`` (named ``name``, in any namespace).
    """
    for child in parent:
        local = local_name(child)
        if local and (name is None or local == name):
            yield child


def child_text(parent: etree._Element, name: str) -> str | None:
    """
    :return: the text of the first child ``name`` (empty if it has none), or
        ``None`` if there is no such child.
    """
    for child in children_named(parent, name):
        return child.text or ""
    return None


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

DECIMAL: Final = re.compile(r"[0-9]{1,20}", re.ASCII)


def xml_can_carry(text: str) -> bool:
    """
    :param text: any text.
    :return: whether XML 1.0 can carry ``text`` unchanged (L{xml_safe}
        would leave it as it is).
    """
    return _NOT_XML.search(text) is None


def add_checksums(parent: etree._Element, checksums: Sequence[tuple[str, str]]) -> None:
    for name, value in checksums:
        if name not in _CHECKSUM_SUFFIXES:
            raise ValueError(f"not a checksum element: Checksum{name}")
        add_element(parent, f"Checksum{name}", value)


# Client request bodies.


def malformed_xml() -> S3Error:
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
    if root is None or local_name(root) != "Delete":
        raise malformed_xml()
    quiet = False
    quiet_text = child_text(root, "Quiet")
    if quiet_text is not None:
        value = quiet_text.strip().lower()
        if value not in ("true", "false"):
            raise malformed_xml()
        quiet = value == "true"
    objects: list[tuple[str, str | None]] = []
    for element in children_named(root, "Object"):
        key = child_text(element, "Key")
        if not key:
            raise malformed_xml()
        objects.append((key, child_text(element, "VersionId") or None))
        if len(objects) > MAX_DELETE_KEYS:
            raise malformed_xml()
    if not objects:
        raise malformed_xml()
    return quiet, objects


def _part_number(text: str | None) -> int:
    number = (text or "").strip()
    if DECIMAL.fullmatch(number) is None:
        raise malformed_xml()
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
    if root is None or local_name(root) != "CompleteMultipartUpload":
        raise malformed_xml()
    parts: list[CompletedPart] = []
    for element in children_named(root, "Part"):
        number = _part_number(child_text(element, "PartNumber"))
        etag = (child_text(element, "ETag") or "").strip()
        if not etag:
            raise malformed_xml()
        checksums = tuple(
            (algorithm, (child_text(element, f"Checksum{algorithm}") or "").strip())
            for algorithm in CHECKSUM_ALGORITHMS
            if child_text(element, f"Checksum{algorithm}") is not None
        )
        parts.append(CompletedPart(number, etag, checksums))
    if not parts:
        raise malformed_xml()
    for before, after in pairwise(parts):
        if after.part_number <= before.part_number:
            raise S3Error("InvalidPartOrder")
    return parts


# Request bodies sent to S3 stores.


# Answers read from S3 stores.
