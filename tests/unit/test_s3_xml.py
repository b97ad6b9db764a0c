"""
Tests for L{multistore.s3.xml}.
"""

from __future__ import annotations

import contextlib
import locale
import os
import string
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

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
from multistore.s3.dates import format_http_date, format_iso8601, parse_iso8601
from multistore.s3.documents import (
    complete_multipart_document,
    copy_object_document,
    copy_part_document,
    delete_result_document,
    error_document,
    initiate_multipart_document,
    list_buckets_document,
    list_objects_document,
    list_parts_document,
    list_uploads_document,
    location_document,
)
from multistore.s3.errors import S3Error
from multistore.s3.listing import ListEntry, ListResult, url_encode
from multistore.s3.xml import (
    CHECKSUM_ALGORITHMS,
    S3_NAMESPACE,
    parse_complete_request,
    parse_delete_request,
    parse_untrusted,
    safe_parser,
    xml_can_carry,
    xml_safe,
)
from multistore.stores.s3.xml import (
    complete_request_document,
    create_bucket_document,
    delete_request_document,
    parse_complete_result,
    parse_copy_result,
    parse_delete_result,
    parse_error_document,
    parse_initiate_result,
    parse_list_objects_v2,
    parse_list_parts,
    parse_list_uploads,
)

NS = "{" + S3_NAMESPACE + "}"
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
WHEN = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

# Every character XML 1.0 cannot carry, as Python text.
NOT_XML = [chr(c) for c in range(0x20) if c not in (0x9, 0xA, 0xD)] + [
    "\ud800",
    "\udcff",
    "\udfff",
    "\ufffe",
    "\uffff",
]


def children(element: etree._Element) -> list[str]:
    """
    The local names of an element's children, in order.
    """
    return [etree.QName(child).localname for child in element]


def listing(**changes: object) -> ListResult:
    """
    A V2 listing with one object and one common prefix, changed as given.
    """
    values: dict[str, object] = {
        "version": 2,
        "name": "bucket",
        "prefix": "p/",
        "delimiter": "/",
        "max_keys": 2,
        "encoding_type": None,
        "truncated": False,
        "contents": (ListEntry("p/a", WHEN, '"etag"', 12, "STANDARD"),),
        "common_prefixes": ("p/d/",),
    }
    values.update(changes)
    return ListResult(**values)  # type: ignore[arg-type]


def backend_listing(inner: str, namespace: bool = True) -> bytes:
    """
    A store's ListObjectsV2 answer around ``inner``.
    """
    xmlns = f' xmlns="{S3_NAMESPACE}"' if namespace else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<ListBucketResult{xmlns}>{inner}</ListBucketResult>"
    ).encode()


def contents(
    key: str, size: str = "1", modified: str = "2024-01-02T03:04:05.000Z"
) -> str:
    """
    A ``Contents`` element of a store's answer.
    """
    return (
        f"<Contents><Key>{key}</Key><LastModified>{modified}</LastModified>"
        f"<ETag>&quot;abc&quot;</ETag><Size>{size}</Size>"
        f"<StorageClass>STANDARD</StorageClass></Contents>"
    )


class SafeParserTests(SynchronousTestCase):
    """
    Tests for L{safe_parser} and L{parse_untrusted}.
    """

    def test_parses(self) -> None:
        """
        Ordinary XML parses, with the standard entities.
        """
        root = parse_untrusted(b"<a><b>x &amp; &#65; &quot;</b></a>")
        assert root is not None
        self.assertEqual(root.findtext("b"), 'x & A "')

    def test_malformed(self) -> None:
        """
        Text that is not XML gives ``None``.
        """
        for body in [b"", b"<a>", b"not xml", b"<a></b>", b"\xff\xfe"]:
            self.assertIsNone(parse_untrusted(body))

    def test_external_entity(self) -> None:
        """
        An external entity is never read: a document with a DTD is refused,
        and the parser does not expand entities even where one is parsed.
        """
        with tempfile.TemporaryDirectory() as directory:
            secret = os.path.join(directory, "secret")
            with open(secret, "w") as f:
                f.write("SECRET-CONTENT")
            body = (
                f'<!DOCTYPE a [<!ENTITY e SYSTEM "file://{secret}">]><a>&e;</a>'
            ).encode()
            self.assertIsNone(parse_untrusted(body))
            root = etree.fromstring(body, parser=safe_parser())
            self.assertNotIn(b"SECRET-CONTENT", etree.tostring(root))
            self.assertIsNone(root.text)

    def test_entity_expansion(self) -> None:
        """
        Nested internal entities are not expanded.
        """
        entities = "".join(
            f'<!ENTITY e{i} "{("&e" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
        )
        body = f'<!DOCTYPE a [<!ENTITY e0 "lol">{entities}]><a>&e9;</a>'.encode()
        self.assertIsNone(parse_untrusted(body))
        # The parser either refuses it (newer libxml2 limits amplification)
        # or keeps the reference unexpanded.
        try:
            root = etree.fromstring(body, parser=safe_parser())
        except etree.XMLSyntaxError:
            return
        self.assertLess(len(etree.tostring(root)), 100)

    def test_doctype_refused(self) -> None:
        """
        Any DOCTYPE is refused.
        """
        self.assertIsNone(parse_untrusted(b"<!DOCTYPE a><a/>"))
        self.assertIsNone(parse_untrusted(b'<!DOCTYPE a SYSTEM "http://x/a.dtd"><a/>'))

    def test_fresh(self) -> None:
        """
        Each call makes a new parser.
        """
        self.assertIsNot(safe_parser(), safe_parser())


class XmlSafeTests(SynchronousTestCase):
    """
    Tests for L{xml_safe}.
    """

    def test_controls(self) -> None:
        """
        C0 controls become ``%XX``; tab, newline and carriage return stay.
        """
        self.assertEqual(xml_safe("a\x01b\x1f"), "a%01b%1F")
        self.assertEqual(xml_safe("\x00"), "%00")
        self.assertEqual(xml_safe("a\tb\nc\rd"), "a\tb\nc\rd")

    def test_carriage_return_kept(self) -> None:
        """
        A carriage return survives a document (as a character reference).
        """
        root = etree.fromstring(error_document("C", "a\r\nb\r", "", ""))
        self.assertEqual(root.findtext("Message"), "a\r\nb\r")

    def test_noncharacters(self) -> None:
        """
        U+FFFE and U+FFFF become their percent-encoded UTF-8.
        """
        self.assertEqual(xml_safe("\ufffe\uffff"), "%EF%BF%BE%EF%BF%BF")

    def test_surrogates(self) -> None:
        """
        Lone surrogates never fail.
        """
        self.assertEqual(xml_safe("a\udcffb"), "a%FFb")
        self.assertEqual(xml_safe("\ud800"), "%ED%A0%80")

    def test_rest_unchanged(self) -> None:
        """
        Everything else, ``%`` and unicode included, stays as it is.
        """
        value = "100% <&> é \U0001f600 \ufffd \ue000 %01"
        self.assertEqual(xml_safe(value), value)

    @given(st.text(st.characters(blacklist_categories=())))
    def test_any_text(self, value: str) -> None:
        """
        Any text survives an error document and reads back as L{xml_safe}
        made it; only characters XML cannot carry were changed.
        """
        body = error_document("Code", value, value, "id", [("Key", value)])
        root = etree.fromstring(body)
        expected = xml_safe(value)
        self.assertEqual(root.findtext("Message"), expected)
        self.assertEqual(root.findtext("Key"), expected)
        if not any(char in NOT_XML or "\ud800" <= char <= "\udfff" for char in value):
            self.assertEqual(xml_safe(value), value)


class ErrorDocumentTests(SynchronousTestCase):
    """
    Tests for L{error_document}.
    """

    def test_structure(self) -> None:
        """
        An error is ``Code, Message, Resource, RequestId`` without a
        namespace, after the declaration.
        """
        body = error_document("NoSuchKey", "gone", "/b/k", "REQ1")
        self.assertTrue(body.startswith(DECLARATION))
        root = etree.fromstring(body)
        self.assertEqual(root.tag, "Error")
        self.assertEqual(children(root), ["Code", "Message", "Resource", "RequestId"])
        self.assertEqual(
            [child.text for child in root], ["NoSuchKey", "gone", "/b/k", "REQ1"]
        )

    def test_extra(self) -> None:
        """
        Extra elements follow ``Message``, in order.
        """
        body = error_document(
            "InvalidArgument",
            "bad",
            "/b",
            "R",
            [("ArgumentName", "max-keys"), ("ArgumentValue", "x")],
        )
        root = etree.fromstring(body)
        self.assertEqual(
            children(root),
            [
                "Code",
                "Message",
                "ArgumentName",
                "ArgumentValue",
                "Resource",
                "RequestId",
            ],
        )
        self.assertEqual(root.findtext("ArgumentValue"), "x")

    def test_escaping(self) -> None:
        """
        Markup characters are escaped; control characters percent-encoded.
        """
        body = error_document("C", "<a> & \x07", "/k\x00", "")
        root = etree.fromstring(body)
        self.assertEqual(root.findtext("Message"), "<a> & %07")
        self.assertEqual(root.findtext("Resource"), "/k%00")
        self.assertEqual(root.findtext("RequestId"), "")

    def test_reads_back(self) -> None:
        """
        L{parse_error_document} reads what L{error_document} writes.
        """
        body = error_document("SlowDown", "Please reduce your request rate.", "", "x")
        self.assertEqual(
            parse_error_document(body), ("SlowDown", "Please reduce your request rate.")
        )


class ListBucketsDocumentTests(SynchronousTestCase):
    """
    Tests for L{list_buckets_document}.
    """

    def test_structure(self) -> None:
        """
        Owner, then each bucket's name and creation date, in the S3
        namespace.
        """
        body = list_buckets_document(
            "owner-id",
            "Owner Name",
            [
                BucketEntry("one", datetime(2024, 1, 1, tzinfo=UTC)),
                BucketEntry("two", datetime(2025, 6, 7, 8, 9, 10, 11000, tzinfo=UTC)),
            ],
        )
        self.assertTrue(body.startswith(DECLARATION))
        root = etree.fromstring(body)
        self.assertEqual(root.tag, NS + "ListAllMyBucketsResult")
        self.assertEqual(children(root), ["Owner", "Buckets"])
        owner = root.find(NS + "Owner")
        assert owner is not None
        self.assertEqual(children(owner), ["ID", "DisplayName"])
        self.assertEqual(owner.findtext(NS + "ID"), "owner-id")
        self.assertEqual(owner.findtext(NS + "DisplayName"), "Owner Name")
        buckets = root.findall(f"{NS}Buckets/{NS}Bucket")
        self.assertEqual([children(b) for b in buckets], [["Name", "CreationDate"]] * 2)
        self.assertEqual(
            [
                (b.findtext(NS + "Name"), b.findtext(NS + "CreationDate"))
                for b in buckets
            ],
            [("one", "2024-01-01T00:00:00.000Z"), ("two", "2025-06-07T08:09:10.011Z")],
        )

    def test_no_buckets(self) -> None:
        """
        With no buckets, ``Buckets`` is empty.
        """
        root = etree.fromstring(list_buckets_document("o", "n", []))
        buckets = root.find(NS + "Buckets")
        assert buckets is not None
        self.assertEqual(len(buckets), 0)


class LocationDocumentTests(SynchronousTestCase):
    """
    Tests for L{location_document}.
    """

    def test_region(self) -> None:
        """
        The region is the element's text.
        """
        body = location_document("eu-west-1")
        self.assertEqual(
            body,
            DECLARATION
            + b'<LocationConstraint xmlns="'
            + S3_NAMESPACE.encode()
            + b'">eu-west-1</LocationConstraint>',
        )

    def test_us_east_1(self) -> None:
        """
        ``us-east-1`` is an empty element.
        """
        root = etree.fromstring(location_document("us-east-1"))
        self.assertEqual(root.tag, NS + "LocationConstraint")
        self.assertIsNone(root.text)


class ListObjectsDocumentTests(SynchronousTestCase):
    """
    Tests for L{list_objects_document}.
    """

    def test_v2_minimal(self) -> None:
        """
        A V2 listing without options has S3's elements in S3's order.
        """
        body = list_objects_document(
            listing(delimiter=None, contents=(), common_prefixes=())
        )
        self.assertTrue(body.startswith(DECLARATION))
        root = etree.fromstring(body)
        self.assertEqual(root.tag, NS + "ListBucketResult")
        self.assertEqual(
            children(root), ["Name", "Prefix", "KeyCount", "MaxKeys", "IsTruncated"]
        )
        self.assertEqual(
            [child.text for child in root], ["bucket", "p/", "0", "2", "false"]
        )

    def test_v2_full(self) -> None:
        """
        Every optional V2 element appears in S3's order.
        """
        root = etree.fromstring(
            list_objects_document(
                listing(
                    encoding_type="url",
                    truncated=True,
                    start_after="p/0",
                    continuation_token="in-token",
                    next_continuation_token="out-token",
                    owner=("id", "name"),
                )
            )
        )
        self.assertEqual(
            children(root),
            [
                "Name",
                "Prefix",
                "StartAfter",
                "ContinuationToken",
                "NextContinuationToken",
                "KeyCount",
                "MaxKeys",
                "Delimiter",
                "EncodingType",
                "IsTruncated",
                "Contents",
                "CommonPrefixes",
            ],
        )
        self.assertEqual(root.findtext(NS + "StartAfter"), "p/0")
        self.assertEqual(root.findtext(NS + "ContinuationToken"), "in-token")
        self.assertEqual(root.findtext(NS + "NextContinuationToken"), "out-token")
        self.assertEqual(root.findtext(NS + "KeyCount"), "2")
        self.assertEqual(root.findtext(NS + "Delimiter"), "/")
        self.assertEqual(root.findtext(NS + "EncodingType"), "url")
        self.assertEqual(root.findtext(NS + "IsTruncated"), "true")
        entry = root.find(NS + "Contents")
        assert entry is not None
        self.assertEqual(
            children(entry),
            ["Key", "LastModified", "ETag", "Size", "Owner", "StorageClass"],
        )
        self.assertEqual(
            [child.text for child in entry if len(child) == 0],
            ["p/a", "2024-01-02T03:04:05.678Z", '"etag"', "12", "STANDARD"],
        )
        owner = entry.find(NS + "Owner")
        assert owner is not None
        self.assertEqual(children(owner), ["ID", "DisplayName"])
        self.assertEqual([owner[0].text, owner[1].text], ["id", "name"])
        self.assertEqual(
            [p.text for p in root.findall(f"{NS}CommonPrefixes/{NS}Prefix")], ["p/d/"]
        )

    def test_v2_no_owner(self) -> None:
        """
        Without an owner, ``Contents`` has no ``Owner``.
        """
        root = etree.fromstring(list_objects_document(listing()))
        entry = root.find(NS + "Contents")
        assert entry is not None
        self.assertEqual(
            children(entry), ["Key", "LastModified", "ETag", "Size", "StorageClass"]
        )

    def test_v1(self) -> None:
        """
        A V1 listing has ``Marker`` always, ``NextMarker`` when given, and no
        V2 elements.
        """
        root = etree.fromstring(
            list_objects_document(
                listing(
                    version=1,
                    encoding_type="url",
                    truncated=True,
                    next_marker="p/d/",
                    owner=("id", "name"),
                )
            )
        )
        self.assertEqual(
            children(root),
            [
                "Name",
                "Prefix",
                "Marker",
                "NextMarker",
                "MaxKeys",
                "Delimiter",
                "EncodingType",
                "IsTruncated",
                "Contents",
                "CommonPrefixes",
            ],
        )
        self.assertEqual(root.findtext(NS + "Marker"), "")
        self.assertEqual(root.findtext(NS + "NextMarker"), "p/d/")

    def test_v1_minimal(self) -> None:
        """
        A complete V1 listing has no ``NextMarker``; its ``Marker`` echoes.
        """
        root = etree.fromstring(
            list_objects_document(
                listing(version=1, delimiter=None, marker="p/0", common_prefixes=())
            )
        )
        self.assertEqual(
            children(root),
            ["Name", "Prefix", "Marker", "MaxKeys", "IsTruncated", "Contents"],
        )
        self.assertEqual(root.findtext(NS + "Marker"), "p/0")

    def test_control_characters_in_keys(self) -> None:
        """
        Without URL encoding, characters XML cannot carry are
        percent-encoded alone and the rest of the key is left as it is.
        """
        entry = ListEntry("a\x01b%20 c\ufffe", WHEN, '""', 0)
        root = etree.fromstring(
            list_objects_document(
                listing(contents=(entry,), common_prefixes=("\x02/",))
            )
        )
        self.assertEqual(root.findtext(f"{NS}Contents/{NS}Key"), "a%01b%20 c%EF%BF%BE")
        self.assertEqual(root.findtext(f"{NS}CommonPrefixes/{NS}Prefix"), "%02/")

    @given(st.text(st.characters(blacklist_categories=()), min_size=1))
    def test_any_key(self, key: str) -> None:
        """
        Any key can be listed; URL-encoded, it reads back exactly.
        """
        entry = ListEntry(url_encode(key), WHEN, '""', 0)
        body = list_objects_document(listing(contents=(entry,), encoding_type="url"))
        root = etree.fromstring(body)
        self.assertEqual(root.findtext(f"{NS}Contents/{NS}Key"), url_encode(key))
        entry = ListEntry(key, WHEN, '""', 0)
        list_objects_document(listing(contents=(entry,)))

    def test_round_trip(self) -> None:
        """
        L{parse_list_objects_v2} reads a V2 listing document.
        """
        body = list_objects_document(
            listing(
                contents=(
                    ListEntry("a%20b", WHEN, '"e1"', 1),
                    ListEntry("c%2Bd", WHEN, '"e2"', 2, "GLACIER"),
                ),
                common_prefixes=("x%20y/",),
                encoding_type="url",
                truncated=True,
                next_continuation_token="tok",
            )
        )
        millis = WHEN.replace(microsecond=678000)
        self.assertEqual(
            parse_list_objects_v2(body),
            ListPage(
                objects=(
                    ObjectInfo("a b", 1, millis, '"e1"'),
                    ObjectInfo("c+d", 2, millis, '"e2"', "GLACIER"),
                ),
                common_prefixes=("x y/",),
                truncated=True,
                next_token="tok",
            ),
        )


class ParseListObjectsV2Tests(SynchronousTestCase):
    """
    Tests for L{parse_list_objects_v2}.
    """

    def assert_invalid(self, body: bytes) -> None:
        """
        Assert that a body is refused as an invalid listing.
        """
        error = self.assertRaises(S3Error, parse_list_objects_v2, body)
        self.assertEqual(error.code, "ServiceUnavailable")
        self.assertEqual(error.status, 503)
        self.assertEqual(error.message, "the backend store sent an invalid listing")

    def test_page(self) -> None:
        """
        Objects, common prefixes, truncation and the token are read, with
        or without the namespace.
        """
        inner = (
            "<Name>b</Name><Prefix>data/</Prefix><KeyCount>3</KeyCount>"
            "<MaxKeys>3</MaxKeys><Delimiter>/</Delimiter>"
            "<IsTruncated>true</IsTruncated>"
            "<NextContinuationToken>1ueGcx+/=</NextContinuationToken>"
            + contents("data/a &amp; b", "10")
            + contents("data/c", "0", "2024-01-02T03:04:05Z")
            + "<CommonPrefixes><Prefix>data/d/</Prefix></CommonPrefixes>"
        )
        when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        expected = ListPage(
            objects=(
                ObjectInfo("data/a & b", 10, when, '"abc"'),
                ObjectInfo("data/c", 0, when, '"abc"'),
            ),
            common_prefixes=("data/d/",),
            truncated=True,
            next_token="1ueGcx+/=",
        )
        for namespace in (True, False):
            self.assertEqual(
                parse_list_objects_v2(backend_listing(inner, namespace)), expected
            )

    def test_empty(self) -> None:
        """
        An empty listing is an empty, complete page.
        """
        self.assertEqual(parse_list_objects_v2(backend_listing("")), ListPage())
        self.assertEqual(
            parse_list_objects_v2(
                backend_listing(
                    "<IsTruncated>false</IsTruncated><KeyCount>0</KeyCount>"
                )
            ),
            ListPage(),
        )

    def test_url_encoded(self) -> None:
        """
        With ``EncodingType`` ``url`` (anywhere), keys and common prefixes
        are decoded the way S3 encodes them: ``+`` is a space, ``%2B`` a
        plus sign.
        """
        inner = (
            contents("a%20b%2Bc+d%25%C3%A9%01")
            + "<CommonPrefixes><Prefix>x%2Fy+/</Prefix></CommonPrefixes>"
            + "<EncodingType>url</EncodingType>"
        )
        page = parse_list_objects_v2(backend_listing(inner))
        self.assertEqual(page.objects[0].key, "a b+c d%é\x01")
        self.assertEqual(page.common_prefixes, ("x/y /",))

    def test_not_encoded(self) -> None:
        """
        Without ``EncodingType``, keys are taken as they are.
        """
        page = parse_list_objects_v2(backend_listing(contents("a%20b+c")))
        self.assertEqual(page.objects[0].key, "a%20b+c")

    def test_defaults(self) -> None:
        """
        A missing ETag is empty; a missing or empty StorageClass is
        STANDARD; no token is ``None``.
        """
        inner = (
            "<IsTruncated>true</IsTruncated>"
            "<Contents><Key>k</Key><Size>1</Size>"
            "<LastModified>2024-01-01T00:00:00Z</LastModified>"
            "<StorageClass></StorageClass></Contents>"
        )
        page = parse_list_objects_v2(backend_listing(inner))
        self.assertEqual(page.objects[0].etag, "")
        self.assertEqual(page.objects[0].storage_class, "STANDARD")
        self.assertTrue(page.truncated)
        self.assertIsNone(page.next_token)

    def test_storage_class(self) -> None:
        """
        The store's storage class is kept.
        """
        inner = contents("k").replace("STANDARD", "DEEP_ARCHIVE")
        page = parse_list_objects_v2(backend_listing(inner))
        self.assertEqual(page.objects[0].storage_class, "DEEP_ARCHIVE")

    def test_timestamps(self) -> None:
        """
        Times with or without fractions, with ``Z`` or an offset, are read
        as aware datetimes.
        """
        page = parse_list_objects_v2(
            backend_listing(
                contents("a", modified="2024-01-02T03:04:05.123Z")
                + contents("b", modified="2024-01-02T05:04:05+02:00")
                + contents("c", modified="2024-01-02T03:04:05.1234567Z")
            )
        )
        self.assertEqual(
            [info.last_modified for info in page.objects],
            [
                datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC),
                datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
            ],
        )

    def test_invalid(self) -> None:
        """
        Anything that is not a valid listing is ``ServiceUnavailable``.
        """
        for body in [
            b"",
            b"garbage",
            b"<ListBucketResult>",
            b"<Error><Code>NoSuchBucket</Code></Error>",
            b"<!DOCTYPE ListBucketResult><ListBucketResult/>",
            backend_listing("<Contents><Size>1</Size></Contents>"),
            backend_listing(contents("k", "-1")),
            backend_listing(contents("k", "1.5")),
            backend_listing(contents("k", "")),
            backend_listing(contents("k", modified="yesterday")),
            backend_listing(contents("k", modified="2024-13-01T00:00:00Z")),
            backend_listing("<Contents><Key>k</Key><Size>1</Size></Contents>"),
            backend_listing("<IsTruncated>maybe</IsTruncated>"),
            backend_listing("<EncodingType>url</EncodingType>" + contents("%FF")),
        ]:
            self.assert_invalid(body)

    @given(st.binary(max_size=200))
    def test_any_bytes(self, body: bytes) -> None:
        """
        Any bytes give a page or ``ServiceUnavailable``, nothing else.
        """
        try:
            page = parse_list_objects_v2(body)
        except S3Error as error:
            self.assertEqual(error.code, "ServiceUnavailable")
        else:
            self.assertIsInstance(page, ListPage)


class ParseErrorDocumentTests(SynchronousTestCase):
    """
    Tests for L{parse_error_document}.
    """

    def test_plain(self) -> None:
        """
        Code and message are read from an ``Error`` document.
        """
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
            b"<Message>The specified key does not exist.</Message>"
            b"<Key>k</Key><RequestId>1</RequestId></Error>"
        )
        self.assertEqual(
            parse_error_document(body),
            ("NoSuchKey", "The specified key does not exist."),
        )

    def test_namespace(self) -> None:
        """
        A namespace makes no difference.
        """
        body = (
            f'<Error xmlns="{S3_NAMESPACE}"><Message>m</Message>'
            f"<Code>AccessDenied</Code></Error>"
        ).encode()
        self.assertEqual(parse_error_document(body), ("AccessDenied", "m"))

    def test_no_message(self) -> None:
        """
        A missing message is empty.
        """
        self.assertEqual(
            parse_error_document(b"<Error><Code>SlowDown</Code></Error>"),
            ("SlowDown", ""),
        )

    def test_unparseable(self) -> None:
        """
        Anything else is ``None``.
        """
        for body in [
            b"",
            b"<html>oops</html>",
            b"<Error><Message>no code</Message></Error>",
            b"<Error><Code> </Code></Error>",
            b"<Error><Code>x</Code>",
            b"<!DOCTYPE Error><Error><Code>X</Code></Error>",
        ]:
            self.assertIsNone(parse_error_document(body))


class TimestampTests(SynchronousTestCase):
    """
    Tests for L{format_iso8601}, L{format_http_date} and L{parse_iso8601}.
    """

    def test_iso8601(self) -> None:
        """
        Times are shown in UTC to the millisecond.
        """
        self.assertEqual(
            format_iso8601(datetime(2024, 1, 1, tzinfo=UTC)), "2024-01-01T00:00:00.000Z"
        )
        self.assertEqual(format_iso8601(WHEN), "2024-01-02T03:04:05.678Z")
        plus_two = timezone(timedelta(hours=2))
        self.assertEqual(
            format_iso8601(datetime(2024, 1, 1, 1, 0, tzinfo=plus_two)),
            "2023-12-31T23:00:00.000Z",
        )
        self.assertEqual(
            format_iso8601(datetime(2024, 1, 1)), "2024-01-01T00:00:00.000Z"
        )
        self.assertEqual(
            format_iso8601(datetime(999, 1, 1, tzinfo=UTC)), "0999-01-01T00:00:00.000Z"
        )

    def test_http_date(self) -> None:
        """
        HTTP dates are in GMT with English names.
        """
        self.assertEqual(
            format_http_date(datetime(2024, 1, 1, tzinfo=UTC)),
            "Mon, 01 Jan 2024 00:00:00 GMT",
        )
        self.assertEqual(
            format_http_date(
                datetime(
                    2024,
                    12,
                    31,
                    23,
                    30,
                    59,
                    999999,
                    tzinfo=timezone(timedelta(hours=-1)),
                )
            ),
            "Wed, 01 Jan 2025 00:30:59 GMT",
        )
        self.assertEqual(
            format_http_date(datetime(2023, 7, 15, 12)), "Sat, 15 Jul 2023 12:00:00 GMT"
        )

    def test_http_date_locale(self) -> None:
        """
        The locale does not change the names.
        """
        previous = locale.setlocale(locale.LC_TIME)
        self.addCleanup(locale.setlocale, locale.LC_TIME, previous)
        for name in [previous, "de_DE.UTF-8", "fr_FR.UTF-8", "C.UTF-8"]:
            try:
                locale.setlocale(locale.LC_TIME, name)
            except locale.Error:
                continue
            self.assertEqual(
                format_http_date(datetime(2024, 3, 1, tzinfo=UTC)),
                "Fri, 01 Mar 2024 00:00:00 GMT",
            )

    def test_parse(self) -> None:
        """
        ISO 8601 times with or without fractions and zones are read.
        """
        cases = {
            "2024-01-02T03:04:05Z": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            "2024-01-02T03:04:05.5Z": datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC),
            "2024-01-02T03:04:05.000Z": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            "2024-01-02T03:04:05.123456789Z": datetime(
                2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC
            ),
            "2024-01-02T03:04:05-0130": datetime(2024, 1, 2, 4, 34, 5, tzinfo=UTC),
            "2024-01-02T03:04:05+00:00": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            "2024-01-02 03:04:05": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            " 2024-01-02t03:04:05z\n": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        }
        for text, expected in cases.items():
            parsed = parse_iso8601(text)
            self.assertEqual(parsed, expected, text)
            self.assertIsNotNone(parsed.tzinfo)

    def test_parse_invalid(self) -> None:
        """
        Anything else is a ``ValueError``.
        """
        for text in [
            "",
            "2024-01-02",
            "2024-1-2T03:04:05Z",
            "2024-01-02T25:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-01-02T03:04:05+2",
            "Mon, 01 Jan 2024 00:00:00 GMT",
            "\uff12\uff10\uff12\uff14-01-02T03:04:05Z",
        ]:
            self.assertRaises(ValueError, parse_iso8601, text)

    @given(
        st.datetimes(
            min_value=datetime(1, 1, 2),
            max_value=datetime(9999, 12, 30),
            timezones=st.just(UTC),
        )
    )
    def test_round_trip(self, when: datetime) -> None:
        """
        A formatted time reads back, to the millisecond.
        """
        self.assertEqual(
            parse_iso8601(format_iso8601(when)),
            when.replace(microsecond=when.microsecond // 1000 * 1000),
        )


# --- the write path ----------------------------------------------------------

#: A time as S3 writes it, and as it reads back.
WRITE_TIME = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)

#: Text XML can carry, as keys, ids and values are drawn.
xml_text = st.text(
    alphabet=st.characters(
        blacklist_categories=["Cs"],
        blacklist_characters=[c for c in NOT_XML if len(c) == 1],
    ),
    min_size=1,
    max_size=40,
)

#: Times to the millisecond, as S3 XML carries them.
xml_times = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(9999, 12, 30),
    timezones=st.just(UTC),
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))


def root_of(document: bytes) -> etree._Element:
    """
    Parse a document multistore wrote, checking its declaration.
    """
    self_check = document.startswith(DECLARATION)
    assert self_check, document[:60]
    return etree.fromstring(document)


def texts(element: etree._Element | None) -> list[tuple[str, str]]:
    """
    ``(local name, text)`` of an element's children.
    """
    assert element is not None
    return [(etree.QName(child).localname, child.text or "") for child in element]


HOSTILE = [
    b'<!DOCTYPE Delete [<!ENTITY e "x">]><Delete><Object><Key>&e;</Key></Object></Delete>',
    b'<!DOCTYPE Delete SYSTEM "http://127.0.0.1:1/d.dtd"><Delete/>',
    b'<!DOCTYPE CompleteMultipartUpload [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
    b"<ETag>&e;</ETag></Part></CompleteMultipartUpload>",
    b'<!DOCTYPE a [<!ENTITY e0 "lol"><!ENTITY e1 "&e0;&e0;&e0;&e0;&e0;">]><Delete/>',
    b"<Delete><Object><Key>&undefined;</Key></Object></Delete>",
    b"<Delete><Object><Key>k</Key></Object>",
    b"",
    b"\x00",
]


class ClientDocumentTests(SynchronousTestCase):
    """
    The write path's answers to clients.
    """

    def test_initiate(self) -> None:
        """
        ``InitiateMultipartUploadResult``: Bucket, Key, UploadId, in the S3
        namespace, escaped, and read back by L{parse_initiate_result}.
        """
        document = initiate_multipart_document("b", "a & <b>\x01", "up/id+==")
        root = root_of(document)
        self.assertEqual(root.tag, NS + "InitiateMultipartUploadResult")
        self.assertEqual(
            texts(root),
            [("Bucket", "b"), ("Key", "a & <b>%01"), ("UploadId", "up/id+==")],
        )
        self.assertEqual(parse_initiate_result(document), "up/id+==")

    def test_complete(self) -> None:
        """
        ``CompleteMultipartUploadResult``: Location, Bucket, Key, ETag and
        the checksums in the order given.
        """
        document = complete_multipart_document(
            "http://h/b/k",
            "b",
            "k",
            '"abc-2"',
            [("CRC32", "AAAAAA=="), ("SHA256", "x="), ("Type", "COMPOSITE")],
        )
        root = root_of(document)
        self.assertEqual(root.tag, NS + "CompleteMultipartUploadResult")
        self.assertEqual(
            texts(root),
            [
                ("Location", "http://h/b/k"),
                ("Bucket", "b"),
                ("Key", "k"),
                ("ETag", '"abc-2"'),
                ("ChecksumCRC32", "AAAAAA=="),
                ("ChecksumSHA256", "x="),
                ("ChecksumType", "COMPOSITE"),
            ],
        )
        self.assertEqual(parse_complete_result(document), '"abc-2"')

    def test_unknown_checksum(self) -> None:
        """
        A checksum name that is not an algorithm (or ``Type``) is a
        programming error.
        """
        for name in ("MD5", "crc32", "", "X><Y"):
            self.assertRaises(
                ValueError,
                complete_multipart_document,
                "l",
                "b",
                "k",
                "e",
                [(name, "v")],
            )
            self.assertRaises(
                ValueError, copy_object_document, "e", WHEN, [(name, "v")]
            )

    def test_copy_object(self) -> None:
        """
        ``CopyObjectResult``: ETag, LastModified (to the millisecond) and
        the checksums; read back by L{parse_copy_result}.
        """
        document = copy_object_document('"e"', WHEN, [("CRC32C", "c=")])
        root = root_of(document)
        self.assertEqual(root.tag, NS + "CopyObjectResult")
        self.assertEqual(
            texts(root),
            [
                ("ETag", '"e"'),
                ("LastModified", "2024-01-02T03:04:05.678Z"),
                ("ChecksumCRC32C", "c="),
            ],
        )
        self.assertEqual(parse_copy_result(document), ('"e"', WRITE_TIME))

    def test_copy_part(self) -> None:
        """
        ``CopyPartResult``: ETag, LastModified.
        """
        document = copy_part_document('"p"', WHEN)
        root = root_of(document)
        self.assertEqual(root.tag, NS + "CopyPartResult")
        self.assertEqual(
            texts(root), [("ETag", '"p"'), ("LastModified", "2024-01-02T03:04:05.678Z")]
        )
        self.assertEqual(parse_copy_result(document), ('"p"', WRITE_TIME))

    def test_delete_result(self) -> None:
        """
        ``DeleteResult``: one ``Deleted`` or ``Error`` per outcome, in order,
        with versions and delete markers.
        """
        outcomes = [
            DeleteOutcome("a"),
            DeleteOutcome("b", "v1"),
            DeleteOutcome("c", "m1", delete_marker=True),
            DeleteOutcome("d", error=("AccessDenied", "Access Denied")),
            DeleteOutcome("e", "v2", error=("InternalError", "oops")),
        ]
        root = root_of(delete_result_document(outcomes, quiet=False))
        self.assertEqual(root.tag, NS + "DeleteResult")
        self.assertEqual(
            [(etree.QName(child).localname, texts(child)) for child in root],
            [
                ("Deleted", [("Key", "a")]),
                ("Deleted", [("Key", "b"), ("VersionId", "v1")]),
                (
                    "Deleted",
                    [
                        ("Key", "c"),
                        ("DeleteMarker", "true"),
                        ("DeleteMarkerVersionId", "m1"),
                    ],
                ),
                (
                    "Error",
                    [
                        ("Key", "d"),
                        ("Code", "AccessDenied"),
                        ("Message", "Access Denied"),
                    ],
                ),
                (
                    "Error",
                    [
                        ("Key", "e"),
                        ("VersionId", "v2"),
                        ("Code", "InternalError"),
                        ("Message", "oops"),
                    ],
                ),
            ],
        )

    def test_delete_result_quiet(self) -> None:
        """
        In quiet mode only errors are listed.
        """
        outcomes = [DeleteOutcome("a"), DeleteOutcome("d", error=("C", "M"))]
        root = root_of(delete_result_document(outcomes, quiet=True))
        self.assertEqual(children(root), ["Error"])
        self.assertEqual(children(root_of(delete_result_document([], quiet=True))), [])

    @given(
        st.lists(
            st.builds(
                DeleteOutcome,
                key=xml_text,
                version_id=st.none() | xml_text,
                error=st.none()
                | st.tuples(
                    st.text(alphabet=string.ascii_letters, min_size=1, max_size=20),
                    st.text(alphabet="abc ", max_size=5),
                ),
                delete_marker=st.booleans(),
            ),
            max_size=5,
        )
    )
    def test_delete_result_round_trip(self, outcomes: list[DeleteOutcome]) -> None:
        """
        A result reads back as the same outcomes (a delete marker only
        matters for keys deleted).
        """
        expected = [
            o if o.error is None else DeleteOutcome(o.key, o.version_id, o.error)
            for o in outcomes
        ]
        document = delete_result_document(outcomes, quiet=False)
        self.assertEqual(parse_delete_result(document), expected)

    def test_list_parts(self) -> None:
        """
        ``ListPartsResult``: the upload, markers, page size, truncation, the
        parts, initiator, owner and storage class.
        """
        page = PartsPage(
            parts=(PartInfo(2, '"e2"', 5, WHEN), PartInfo(3, '"e3"', 6, WHEN)),
            truncated=True,
        )
        document = list_parts_document("b", "k", "u", page, 2, 1, ("id", "name"))
        root = root_of(document)
        self.assertEqual(root.tag, NS + "ListPartsResult")
        self.assertEqual(
            children(root),
            [
                "Bucket",
                "Key",
                "UploadId",
                "PartNumberMarker",
                "NextPartNumberMarker",
                "MaxParts",
                "IsTruncated",
                "Part",
                "Part",
                "Initiator",
                "Owner",
                "StorageClass",
            ],
        )
        self.assertEqual(
            texts(root)[:7],
            [
                ("Bucket", "b"),
                ("Key", "k"),
                ("UploadId", "u"),
                ("PartNumberMarker", "1"),
                ("NextPartNumberMarker", "3"),
                ("MaxParts", "2"),
                ("IsTruncated", "true"),
            ],
        )
        self.assertEqual(
            texts(root.find(NS + "Part")),
            [
                ("PartNumber", "2"),
                ("LastModified", "2024-01-02T03:04:05.678Z"),
                ("ETag", '"e2"'),
                ("Size", "5"),
            ],
        )
        self.assertEqual(
            texts(root.find(NS + "Owner")), [("ID", "id"), ("DisplayName", "name")]
        )
        self.assertEqual(
            parse_list_parts(document),
            PartsPage(
                parts=(
                    PartInfo(2, '"e2"', 5, WRITE_TIME),
                    PartInfo(3, '"e3"', 6, WRITE_TIME),
                ),
                truncated=True,
                next_part_number_marker=3,
            ),
        )

    def test_list_parts_markers(self) -> None:
        """
        The page's own next marker wins; an empty page without one has
        none.
        """
        page = PartsPage(parts=(PartInfo(2, "e", 5, WHEN),), next_part_number_marker=9)
        root = root_of(list_parts_document("b", "k", "u", page, 2, 0, ("i", "n")))
        self.assertEqual(root.findtext(NS + "NextPartNumberMarker"), "9")
        root = root_of(
            list_parts_document("b", "k", "u", PartsPage(), 2, 0, ("i", "n"))
        )
        self.assertNotIn("NextPartNumberMarker", children(root))
        self.assertEqual(root.findtext(NS + "PartNumberMarker"), "0")

    def uploads_page(self) -> UploadsPage:
        """
        A page of two uploads and a common prefix.
        """
        return UploadsPage(
            uploads=(UploadInfo("p/a b+c", "u/1", WHEN), UploadInfo("p/é", "u2", WHEN)),
            common_prefixes=("p/d x/",),
            truncated=True,
            next_key_marker="p/é",
            next_upload_id_marker="u2",
        )

    def test_list_uploads(self) -> None:
        """
        ``ListMultipartUploadsResult``: markers, delimiter, prefix, page
        size, truncation, the uploads and common prefixes.
        """
        document = list_uploads_document(
            "b", self.uploads_page(), "p/", "/", "p/0", "u0", 2, None, ("id", "name")
        )
        root = root_of(document)
        self.assertEqual(root.tag, NS + "ListMultipartUploadsResult")
        self.assertEqual(
            texts(root)[:10],
            [
                ("Bucket", "b"),
                ("KeyMarker", "p/0"),
                ("UploadIdMarker", "u0"),
                ("NextKeyMarker", "p/é"),
                ("NextUploadIdMarker", "u2"),
                ("Delimiter", "/"),
                ("Prefix", "p/"),
                ("MaxUploads", "2"),
                ("IsTruncated", "true"),
                ("Upload", ""),
            ],
        )
        upload = root.find(NS + "Upload")
        assert upload is not None
        self.assertEqual(
            children(upload),
            ["Key", "UploadId", "Initiator", "Owner", "StorageClass", "Initiated"],
        )
        self.assertEqual(upload.findtext(NS + "Initiated"), "2024-01-02T03:04:05.678Z")
        self.assertEqual([p.text for p in root.iter(NS + "Prefix")], ["p/", "p/d x/"])
        self.assertEqual(
            parse_list_uploads(document),
            UploadsPage(
                uploads=(
                    UploadInfo("p/a b+c", "u/1", WRITE_TIME),
                    UploadInfo("p/é", "u2", WRITE_TIME),
                ),
                common_prefixes=("p/d x/",),
                truncated=True,
                next_key_marker="p/é",
                next_upload_id_marker="u2",
            ),
        )

    def test_list_uploads_minimal(self) -> None:
        """
        Without markers, delimiter or encoding, the markers are empty and
        the rest left out.
        """
        root = root_of(
            list_uploads_document(
                "b", UploadsPage(), "", None, None, None, 1000, None, ("i", "n")
            )
        )
        self.assertEqual(
            texts(root),
            [
                ("Bucket", "b"),
                ("KeyMarker", ""),
                ("UploadIdMarker", ""),
                ("Prefix", ""),
                ("MaxUploads", "1000"),
                ("IsTruncated", "false"),
            ],
        )

    def test_list_uploads_url_encoded(self) -> None:
        """
        With ``encoding-type=url`` every key, prefix, marker and the
        delimiter are URL-encoded, and read back decoded.
        """
        document = list_uploads_document(
            "b", self.uploads_page(), "p/", " ", "p/0 ", "u0", 2, "url", ("i", "n")
        )
        root = root_of(document)
        self.assertEqual(root.findtext(NS + "EncodingType"), "url")
        self.assertEqual(root.findtext(NS + "Delimiter"), "%20")
        self.assertEqual(root.findtext(NS + "KeyMarker"), "p/0%20")
        self.assertEqual(root.findtext(NS + "NextKeyMarker"), "p/%C3%A9")
        self.assertEqual(root.findtext(NS + "UploadIdMarker"), "u0")
        self.assertEqual(
            [u.findtext(NS + "Key") for u in root.iter(NS + "Upload")],
            ["p/a%20b%2Bc", "p/%C3%A9"],
        )
        self.assertEqual([p.text for p in root.iter(NS + "Prefix")], ["p/", "p/d%20x/"])
        self.assertEqual(
            parse_list_uploads(document).uploads,
            tuple(
                UploadInfo(u.key, u.upload_id, WRITE_TIME)
                for u in self.uploads_page().uploads
            ),
        )
        self.assertEqual(parse_list_uploads(document).common_prefixes, ("p/d x/",))


class ParseDeleteRequestTests(SynchronousTestCase):
    """
    L{parse_delete_request} reads a client's DeleteObjects body.
    """

    def test_plain(self) -> None:
        """
        Keys and versions in order; keys exactly as written, whitespace and
        entities included; Quiet read in any case.
        """
        for namespace in (f' xmlns="{S3_NAMESPACE}"', ""):
            body = (
                f"<Delete{namespace}><Quiet>TRUE</Quiet>"
                "<Object><Key> a &amp; b </Key></Object>"
                "<Object><Key>c</Key><VersionId>v/1</VersionId></Object>"
                "<Object><Key>d&#xD;</Key><VersionId></VersionId><Junk/></Object>"
                "<Other/></Delete>"
            ).encode()
            self.assertEqual(
                parse_delete_request(body),
                (True, [(" a & b ", None), ("c", "v/1"), ("d\r", None)]),
            )

    def test_not_quiet(self) -> None:
        """
        Without ``Quiet``, or with ``false``, the request is not quiet.
        """
        for quiet in ("", "<Quiet>false</Quiet>", "<Quiet> False </Quiet>"):
            body = f"<Delete>{quiet}<Object><Key>k</Key></Object></Delete>".encode()
            self.assertEqual(parse_delete_request(body), (False, [("k", None)]))

    def test_limits(self) -> None:
        """
        1000 keys are accepted; none or 1001 are ``MalformedXML``.
        """

        def body(count: int) -> bytes:
            objects = "".join(f"<Object><Key>k{i}</Key></Object>" for i in range(count))
            return f"<Delete>{objects}</Delete>".encode()

        self.assertEqual(len(parse_delete_request(body(1000))[1]), 1000)
        for count in (0, 1001):
            error = self.assertRaises(S3Error, parse_delete_request, body(count))
            self.assertEqual((error.code, error.status), ("MalformedXML", 400))

    def test_malformed(self) -> None:
        """
        Documents that are not a valid Delete are ``MalformedXML``, hostile
        ones (DTDs, entities) included.
        """
        for body in [
            *HOSTILE,
            b"<Remove><Object><Key>k</Key></Object></Remove>",
            b"<Delete><Object><VersionId>v</VersionId></Object></Delete>",
            b"<Delete><Object><Key></Key></Object></Delete>",
            b"<Delete><Quiet>yes</Quiet><Object><Key>k</Key></Object></Delete>",
            b"<Delete><Object>k</Object></Delete>",
        ]:
            error = self.assertRaises(S3Error, parse_delete_request, body)
            self.assertEqual(error.code, "MalformedXML", body)

    @given(
        st.lists(st.tuples(xml_text, st.none() | xml_text), min_size=1, max_size=20),
        st.booleans(),
    )
    def test_round_trip(self, keys: list[tuple[str, str | None]], quiet: bool) -> None:
        """
        What L{delete_request_document} writes, L{parse_delete_request}
        reads back exactly.
        """
        self.assertEqual(
            parse_delete_request(delete_request_document(keys, quiet)), (quiet, keys)
        )

    def test_request_document(self) -> None:
        """
        L{delete_request_document} writes ``Delete`` in the S3 namespace,
        ``Quiet`` first; it refuses a key or version XML cannot carry rather
        than name another key.
        """
        root = root_of(delete_request_document([("k", "v")], quiet=False))
        self.assertEqual(root.tag, NS + "Delete")
        self.assertEqual(children(root), ["Quiet", "Object"])
        self.assertEqual(root.findtext(NS + "Quiet"), "false")
        for keys in ([("a\x01", None)], [("a", "v\ufffe")], [("\ud800", None)]):
            self.assertRaises(ValueError, delete_request_document, keys, False)

    def test_xml_can_carry(self) -> None:
        """
        L{xml_can_carry} is false exactly for text L{xml_safe} would change.
        """
        for bad in NOT_XML:
            self.assertFalse(xml_can_carry("a" + bad))
        self.assertTrue(xml_can_carry("a\tb\nc\rd é 😀 %01"))


class ParseCompleteRequestTests(SynchronousTestCase):
    """
    L{parse_complete_request} reads a client's CompleteMultipartUpload body.
    """

    def test_parts(self) -> None:
        """
        Part numbers, ETags (trimmed) and checksums, in order.
        """
        for namespace in (f' xmlns="{S3_NAMESPACE}"', ""):
            body = (
                f"<CompleteMultipartUpload{namespace}>"
                "<Part><PartNumber> 1 </PartNumber><ETag> &quot;e1&quot; </ETag>"
                "<ChecksumSHA256>s=</ChecksumSHA256><ChecksumCRC32>c=</ChecksumCRC32>"
                "<ChecksumMD5>ignored</ChecksumMD5></Part>"
                "<Part><ETag>e10000</ETag><PartNumber>10000</PartNumber></Part>"
                "</CompleteMultipartUpload>"
            ).encode()
            self.assertEqual(
                parse_complete_request(body),
                [
                    CompletedPart(1, '"e1"', (("CRC32", "c="), ("SHA256", "s="))),
                    CompletedPart(10000, "e10000"),
                ],
            )

    def test_order(self) -> None:
        """
        Part numbers that do not strictly ascend are ``InvalidPartOrder``.
        """
        for numbers in ((2, 1), (1, 1), (1, 3, 2)):
            parts = "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>e</ETag></Part>"
                for n in numbers
            )
            body = (
                f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
            )
            error = self.assertRaises(S3Error, parse_complete_request, body)
            self.assertEqual((error.code, error.status), ("InvalidPartOrder", 400))

    def test_part_number_range(self) -> None:
        """
        A part number outside 1 to 10000 is ``InvalidArgument``.
        """
        for number in ("0", "10001", "99999999999"):
            body = (
                "<CompleteMultipartUpload><Part>"
                f"<PartNumber>{number}</PartNumber><ETag>e</ETag>"
                "</Part></CompleteMultipartUpload>"
            ).encode()
            error = self.assertRaises(S3Error, parse_complete_request, body)
            self.assertEqual(error.code, "InvalidArgument")

    def test_malformed(self) -> None:
        """
        Documents that are not a valid completion are ``MalformedXML``.
        """
        for body in [
            *HOSTILE,
            b"<CompleteMultipartUpload/>",
            b"<Complete><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></Complete>",
            b"<CompleteMultipartUpload><Part><ETag>e</ETag></Part></CompleteMultipartUpload>",
            b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
            b"</CompleteMultipartUpload>",
            b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>e</ETag>"
            b"</Part></CompleteMultipartUpload>",
            b"<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber><ETag>e</ETag>"
            b"</Part></CompleteMultipartUpload>",
            "<CompleteMultipartUpload><Part><PartNumber>\u0661</PartNumber><ETag>e</ETag>"
            "</Part></CompleteMultipartUpload>".encode(),
        ]:
            error = self.assertRaises(S3Error, parse_complete_request, body)
            self.assertEqual(error.code, "MalformedXML", body)

    @given(
        st.lists(
            st.tuples(
                st.integers(min_value=1, max_value=10000),
                xml_text.map(str.strip).filter(bool),
                st.lists(
                    st.tuples(
                        st.sampled_from(CHECKSUM_ALGORITHMS),
                        st.text(alphabet="AZaz09+/=", min_size=1),
                    ),
                    unique_by=lambda pair: pair[0],
                ),
            ),
            min_size=1,
            max_size=10,
            unique_by=lambda part: part[0],
        )
    )
    def test_round_trip(
        self, drawn: list[tuple[int, str, list[tuple[str, str]]]]
    ) -> None:
        """
        What L{complete_request_document} writes, L{parse_complete_request}
        reads back (checksums in algorithm order).
        """
        parts = [
            CompletedPart(
                number,
                etag,
                tuple(sorted(checksums, key=lambda c: CHECKSUM_ALGORITHMS.index(c[0]))),
            )
            for number, etag, checksums in sorted(drawn)
        ]
        self.assertEqual(
            parse_complete_request(complete_request_document(parts)), parts
        )


class ParseBackendResultTests(SynchronousTestCase):
    """
    The answers of S3 stores to writes.
    """

    def assert_invalid(self, parse: Any, body: bytes) -> None:
        """
        ``parse`` refuses ``body`` as an invalid answer from a store.
        """
        error = self.assertRaises(S3Error, parse, body)
        self.assertEqual((error.code, error.status), ("ServiceUnavailable", 503), body)
        self.assertTrue(error.message.startswith("the backend store sent an invalid"))

    def test_initiate(self) -> None:
        """
        The upload id is read (trimmed); anything without one is invalid.
        """
        self.assertEqual(
            parse_initiate_result(
                b"<InitiateMultipartUploadResult><UploadId> u </UploadId>"
                b"</InitiateMultipartUploadResult>"
            ),
            "u",
        )
        for body in [
            b"<InitiateMultipartUploadResult/>",
            b"<InitiateMultipartUploadResult><UploadId/></InitiateMultipartUploadResult>",
            b"<Error><Code>AccessDenied</Code></Error>",
            b"<html/>",
            *HOSTILE,
        ]:
            self.assert_invalid(parse_initiate_result, body)

    def test_embedded_errors(self) -> None:
        """
        A copy or completion answered with an ``<Error>`` document raises
        that error, code and message, with or without a namespace.
        """
        for parse in (parse_copy_result, parse_complete_result):
            for namespace in (f' xmlns="{S3_NAMESPACE}"', ""):
                body = (
                    f"<Error{namespace}><Code>InternalError</Code>"
                    "<Message>We encountered an internal error.</Message>"
                    "<RequestId>r</RequestId></Error>"
                ).encode()
                error = self.assertRaises(S3Error, parse, body)
                self.assertEqual(
                    (error.code, error.message),
                    ("InternalError", "We encountered an internal error."),
                )
            self.assert_invalid(parse, b"<Error><Message>no code</Message></Error>")

    def test_copy(self) -> None:
        """
        ETag (quoted if the store left the quotes out) and time are read;
        an answer without either is invalid.
        """
        for etag, expected in (
            ("abc", '"abc"'),
            ('"abc"', '"abc"'),
            ('W/"w"', 'W/"w"'),
        ):
            for root in ("CopyObjectResult", "CopyPartResult"):
                body = (
                    f"<{root}><ETag> {etag} </ETag>"
                    f"<LastModified>2024-01-02T03:04:05Z</LastModified></{root}>"
                ).encode()
                self.assertEqual(
                    parse_copy_result(body),
                    (expected, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
                )
        for body in [
            b"<CopyObjectResult><ETag>e</ETag></CopyObjectResult>",
            b"<CopyObjectResult><LastModified>2024-01-02T03:04:05Z</LastModified>"
            b"</CopyObjectResult>",
            b"<CopyObjectResult><ETag>e</ETag><LastModified>yesterday</LastModified>"
            b"</CopyObjectResult>",
            b"<CompleteMultipartUploadResult/>",
            *HOSTILE,
        ]:
            self.assert_invalid(parse_copy_result, body)

    def test_complete(self) -> None:
        """
        The ETag is read (quoted if need be); an answer without one is
        invalid.
        """
        body = b"<CompleteMultipartUploadResult><ETag>e-2</ETag></CompleteMultipartUploadResult>"
        self.assertEqual(parse_complete_result(body), '"e-2"')
        for body in [
            b"<CompleteMultipartUploadResult/>",
            b"<CopyObjectResult/>",
            *HOSTILE,
        ]:
            self.assert_invalid(parse_complete_result, body)

    def test_delete(self) -> None:
        """
        Deleted keys and errors are read in order, keys as they are; other
        elements are ignored.
        """
        body = (
            f'<DeleteResult xmlns="{S3_NAMESPACE}">'
            "<Deleted><Key> a </Key></Deleted>"
            "<Deleted><Key>b</Key><VersionId>v</VersionId>"
            "<DeleteMarker>true</DeleteMarker><DeleteMarkerVersionId>v</DeleteMarkerVersionId></Deleted>"
            "<Deleted><Key>c</Key><DeleteMarker>true</DeleteMarker>"
            "<DeleteMarkerVersionId>m</DeleteMarkerVersionId></Deleted>"
            "<Error><Key>d</Key><Code>AccessDenied</Code><Message>no</Message></Error>"
            "<Error><Key>e</Key><VersionId>v2</VersionId></Error>"
            "<Whatever/></DeleteResult>"
        ).encode()
        self.assertEqual(
            parse_delete_result(body),
            [
                DeleteOutcome(" a "),
                DeleteOutcome("b", "v", delete_marker=True),
                DeleteOutcome("c", "m", delete_marker=True),
                DeleteOutcome("d", error=("AccessDenied", "no")),
                DeleteOutcome("e", "v2", error=("InternalError", "")),
            ],
        )
        self.assertEqual(parse_delete_result(b"<DeleteResult/>"), [])
        for body in [
            b"<DeleteResult><Deleted/></DeleteResult>",
            b"<DeleteResult><Error><Code>X</Code></Error></DeleteResult>",
            b"<Delete/>",
            *HOSTILE,
        ]:
            self.assert_invalid(parse_delete_result, body)

    def test_list_parts(self) -> None:
        """
        Parts are read, under either root name (moto's is
        ``ListPartsResponse``); bad numbers or times are invalid.
        """
        inner = (
            "<IsTruncated>false</IsTruncated>"
            "<Part><PartNumber>1</PartNumber><LastModified>2024-01-02T03:04:05.000Z"
            "</LastModified><ETag>&quot;e&quot;</ETag><Size>10</Size></Part>"
        )
        for root in ("ListPartsResult", "ListPartsResponse"):
            page = parse_list_parts(f"<{root}>{inner}</{root}>".encode())
            self.assertEqual(
                page,
                PartsPage(
                    parts=(
                        PartInfo(
                            1, '"e"', 10, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
                        ),
                    )
                ),
            )
        for body in [
            b"<ListPartsResult><Part><PartNumber>x</PartNumber></Part></ListPartsResult>",
            b"<ListPartsResult><Part><PartNumber>1</PartNumber><Size>-1</Size>"
            b"<LastModified>2024-01-02T03:04:05Z</LastModified></Part></ListPartsResult>",
            b"<ListPartsResult><Part><PartNumber>1</PartNumber><Size>1</Size></Part>"
            b"</ListPartsResult>",
            b"<ListPartsResult><IsTruncated>maybe</IsTruncated></ListPartsResult>",
            b"<ListPartsResult><NextPartNumberMarker>z</NextPartNumberMarker></ListPartsResult>",
            b"<ListBucketResult/>",
            *HOSTILE,
        ]:
            self.assert_invalid(parse_list_parts, body)

    def test_list_uploads(self) -> None:
        """
        Uploads, common prefixes and markers are read; with ``EncodingType``
        ``url`` keys, prefixes and the key marker are decoded, and an empty
        ``EncodingType`` (SeaweedFS) means none.
        """

        def body(encoding: str, key: str) -> bytes:
            return (
                f"<ListMultipartUploadsResult><EncodingType>{encoding}</EncodingType>"
                "<IsTruncated>true</IsTruncated>"
                f"<NextKeyMarker>{key}</NextKeyMarker><NextUploadIdMarker>u"
                "</NextUploadIdMarker>"
                f"<Upload><Key>{key}</Key><UploadId>u</UploadId>"
                "<Initiated>2024-01-02T03:04:05Z</Initiated></Upload>"
                f"<CommonPrefixes><Prefix>{key}/</Prefix></CommonPrefixes>"
                "</ListMultipartUploadsResult>"
            ).encode()

        when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        for encoding, key, expected in (
            ("url", "a%20b+c%2B", "a b c+"),
            ("", "a%20b+c%2B", "a%20b+c%2B"),
        ):
            self.assertEqual(
                parse_list_uploads(body(encoding, key)),
                UploadsPage(
                    uploads=(UploadInfo(expected, "u", when),),
                    common_prefixes=(expected + "/",),
                    truncated=True,
                    next_key_marker=expected,
                    next_upload_id_marker="u",
                ),
            )
        self.assertEqual(
            parse_list_uploads(b"<ListMultipartUploadsResult/>"), UploadsPage()
        )
        for bad in [
            body("url", "%FF"),
            b"<ListMultipartUploadsResult><Upload><UploadId>u</UploadId>"
            b"<Initiated>2024-01-02T03:04:05Z</Initiated></Upload>"
            b"</ListMultipartUploadsResult>",
            b"<ListMultipartUploadsResult><Upload><Key>k</Key>"
            b"<Initiated>2024-01-02T03:04:05Z</Initiated></Upload>"
            b"</ListMultipartUploadsResult>",
            b"<ListMultipartUploadsResult><Upload><Key>k</Key><UploadId>u</UploadId>"
            b"</Upload></ListMultipartUploadsResult>",
            *HOSTILE,
        ]:
            self.assert_invalid(parse_list_uploads, bad)

    def test_create_bucket_document(self) -> None:
        """
        ``CreateBucketConfiguration`` names the region.
        """
        root = root_of(create_bucket_document("eu-west-2"))
        self.assertEqual(root.tag, NS + "CreateBucketConfiguration")
        self.assertEqual(texts(root), [("LocationConstraint", "eu-west-2")])

    @given(st.binary(max_size=200))
    def test_any_bytes(self, body: bytes) -> None:
        """
        Whatever a store sends, the parsers either read it or refuse it
        with an S3 error; nothing else escapes.
        """
        for parse in (
            parse_initiate_result,
            parse_copy_result,
            parse_complete_result,
            parse_delete_result,
            parse_list_parts,
            parse_list_uploads,
            parse_delete_request,
            parse_complete_request,
        ):
            with contextlib.suppress(S3Error):
                parse(body)
