"""
Tests for L{multistore.stores.azure.auth}: the SharedKey signer, SAS URLs,
and the metadata-name codec. (The signer is also checked against the
C{azure-storage-blob} SDK's, in C{tests.integration.test_azure_sdk_agreement}:
the SDK is a test dependency of the main lane only.)
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from multistore.headers import HeaderList
from multistore.s3.dates import format_http_date
from multistore.stores.azure.auth import (
    API_VERSION,
    canonicalized_headers,
    canonicalized_resource,
    decode_metadata_name,
    encode_metadata_name,
    header_sort_key,
    sign_shared_key,
    string_to_sign,
    with_sas,
)

ACCOUNT = "myaccount"
KEY = base64.b64encode(b"k" * 64).decode("ascii")
NOW = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
ENDPOINT = "https://myaccount.blob.core.windows.net"

#: Metadata names as Azure takes them.
identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)

#: Standard headers that enter the string to sign (not ``Range``: the SDK
#: always sends ``x-ms-range`` and never signs a ``Range``, as multistore
#: does too; L{SharedKeyTests.test_range_signed} covers it).
standard = st.sampled_from(
    [
        "content-encoding",
        "content-language",
        "content-md5",
        "content-type",
        "if-modified-since",
        "if-match",
        "if-none-match",
        "if-unmodified-since",
    ]
)
#: The ``x-ms-*`` headers multistore sends.
ms_headers = st.sampled_from(
    [
        "x-ms-blob-type",
        "x-ms-blob-content-type",
        "x-ms-blob-content-md5",
        "x-ms-blob-cache-control",
        "x-ms-blob-content-disposition",
        "x-ms-copy-source",
        "x-ms-source-if-match",
        "x-ms-source-if-none-match",
        "x-ms-delete-snapshots",
        "x-ms-range",
    ]
)
values = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1
)
query_names = st.sampled_from(
    ["comp", "restype", "blockid", "prefix", "marker", "delimiter", "maxresults"]
)
keys = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30
)


class SharedKeyTests(SynchronousTestCase):
    """
    Tests for L{sign_shared_key} and the parts of its string to sign.
    """

    def test_string_to_sign_layout(self) -> None:
        """
        The string to sign is the method, the eleven standard headers (an
        empty Content-Length for no body), the ``x-ms-*`` headers and the
        resource with its sorted query.
        """
        headers = HeaderList(
            [
                ("x-ms-version", API_VERSION),
                ("x-ms-date", "Tue, 14 Nov 2023 22:13:20 GMT"),
                ("content-type", "text/plain"),
            ]
        )
        text = string_to_sign(
            "put",
            f"{ENDPOINT}/c/a%20b?restype=container&comp=list",
            headers,
            11,
            ACCOUNT,
        )
        self.assertEqual(
            text,
            "PUT\n\n\n11\n\ntext/plain\n\n\n\n\n\n\n"
            "x-ms-date:Tue, 14 Nov 2023 22:13:20 GMT\n"
            f"x-ms-version:{API_VERSION}\n"
            "/myaccount/c/a%20b\ncomp:list\nrestype:container",
        )

    def test_range_signed(self) -> None:
        """
        A ``Range`` header is the last standard line.
        """
        text = string_to_sign(
            "GET",
            f"{ENDPOINT}/c/b",
            HeaderList([("range", "bytes=1-2")]),
            None,
            ACCOUNT,
        )
        self.assertEqual(text.split("\n")[11], "bytes=1-2")

    def test_zero_length_is_empty(self) -> None:
        """
        A Content-Length of zero is signed as an empty line.
        """
        text = string_to_sign("PUT", f"{ENDPOINT}/c/b", HeaderList(), 0, ACCOUNT)
        self.assertEqual(text.split("\n")[3], "")

    def test_emulator_resource(self) -> None:
        """
        An emulator's path-style URL keeps its account segment after the
        signed account name.
        """
        self.assertEqual(
            canonicalized_resource(
                "devstoreaccount1", "http://127.0.0.1:1/devstoreaccount1/c/k"
            ),
            "/devstoreaccount1/devstoreaccount1/c/k",
        )

    def test_repeated_query_joined(self) -> None:
        """
        Repeated query parameters are joined with commas, their names
        lower-cased and values decoded.
        """
        self.assertEqual(
            canonicalized_resource(ACCOUNT, f"{ENDPOINT}/c?Include=a&include=b%2Fc"),
            "/myaccount/c\ninclude:a,b/c",
        )

    def test_header_values_folded(self) -> None:
        """
        Runs of whitespace in header values become one space and values are
        trimmed.
        """
        self.assertEqual(
            canonicalized_headers(HeaderList([("x-ms-meta-a", "  x \t y  ")])),
            "x-ms-meta-a:x y\n",
        )

    def test_hyphens_ignored_in_order(self) -> None:
        """
        The service orders header names ignoring hyphens first, with ``_``
        before digits before letters.
        """
        names = ["x-ms-meta-b", "x-ms-meta-a1", "x-ms-meta-a_", "x-ms-blob-type"]
        self.assertEqual(
            sorted(names, key=header_sort_key),
            ["x-ms-blob-type", "x-ms-meta-a_", "x-ms-meta-a1", "x-ms-meta-b"],
        )

    def test_sign_sets_date_and_authorization(self) -> None:
        """
        Signing adds ``x-ms-date`` and a SharedKey ``Authorization``.
        """
        signed = sign_shared_key(
            "GET", f"{ENDPOINT}/c/k", HeaderList(), None, ACCOUNT, KEY, NOW
        )
        self.assertEqual(signed.get("x-ms-date"), format_http_date(NOW))
        authorization = signed.get("authorization") or ""
        self.assertTrue(authorization.startswith("SharedKey myaccount:"))

    def test_bad_key(self) -> None:
        """
        A key that is not base64 is refused with L{ValueError}.
        """
        self.assertRaises(
            ValueError,
            sign_shared_key,
            "GET",
            f"{ENDPOINT}/c/k",
            HeaderList(),
            None,
            ACCOUNT,
            "not base64!",
            NOW,
        )


class SasTests(SynchronousTestCase):
    """
    Tests for L{with_sas}.
    """

    def test_appended(self) -> None:
        """
        The token's parameters follow the request's own.
        """
        self.assertEqual(
            with_sas("http://h/c?comp=list", "?sv=1&sig=a%2B"),
            "http://h/c?comp=list&sv=1&sig=a%2B",
        )
        self.assertEqual(with_sas("http://h/c/k", "sv=1"), "http://h/c/k?sv=1")

    def test_empty(self) -> None:
        """
        An empty token leaves the URL as it is.
        """
        self.assertEqual(with_sas("http://h/c", " ? "), "http://h/c")


class MetadataNameTests(SynchronousTestCase):
    """
    Tests for L{encode_metadata_name} and L{decode_metadata_name}.
    """

    def test_identifiers_unchanged(self) -> None:
        """
        A lower-case identifier is stored as it is.
        """
        self.assertEqual(encode_metadata_name("my_name2"), "my_name2")

    def test_hyphen_encoded(self) -> None:
        """
        A name with a hyphen is stored as ``mx_`` and base32.
        """
        self.assertEqual(encode_metadata_name("content-sha"), "mx_mnxw45dfnz2c243ime")

    def test_prefix_encoded(self) -> None:
        """
        A name that starts with ``mx_`` is encoded too, so that it decodes
        to itself.
        """
        encoded = encode_metadata_name("mx_a")
        self.assertNotEqual(encoded, "mx_a")
        self.assertEqual(decode_metadata_name(encoded), "mx_a")

    def test_foreign_names(self) -> None:
        """
        Names written by other clients are lower-cased; an ``mx_`` name that
        is not base32 stays as it is.
        """
        self.assertEqual(decode_metadata_name("Author"), "author")
        self.assertEqual(decode_metadata_name("mx_!!"), "mx_!!")

    @given(
        st.text(alphabet=st.characters(blacklist_categories=["Cs", "Lu"]), min_size=1)
    )
    def test_round_trip(self, name: str) -> None:
        """
        Any name encodes to an Azure identifier and decodes to itself, in
        whatever case Azure returns it.
        """
        encoded = encode_metadata_name(name)
        self.assertIsNotNone(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", encoded))
        self.assertEqual(decode_metadata_name(encoded), name)
        self.assertEqual(decode_metadata_name(encoded.upper()), name)
        self.assertEqual(decode_metadata_name(encoded.capitalize()), name)
