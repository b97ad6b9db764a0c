"""
Tests for L{multistore.s3.xml}.
"""

from __future__ import annotations

import locale
import os
import tempfile
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from multistore.dates import format_http_date, format_iso8601, parse_iso8601
from multistore.model import BucketEntry, ListPage, ObjectInfo
from multistore.s3.errors import S3Error
from multistore.s3.listing import ListEntry, ListResult, url_encode
from multistore.s3.xml import (
    S3_NAMESPACE,
    error_document,
    list_buckets_document,
    list_objects_document,
    location_document,
    parse_error_document,
    parse_list_objects_v2,
    parse_untrusted,
    safe_parser,
    xml_safe,
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
