"""
Tests for L{multistore.auth.sigv4}.

The expected values come from AWS: the SigV4 test suite (kept in
``data/sigv4_suite.json``) and the worked examples of the S3 documentation.
Requests signed by botocore check that what real clients send verifies.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes, urlsplit

import botocore.auth
from attrs import evolve
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from multistore.auth.canonical import (
    EMPTY_SHA256,
    MAX_PRESIGNED_EXPIRES,
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    UNSIGNED_PAYLOAD,
    canonical_headers,
    canonical_query,
    canonical_query_candidates,
    canonical_request,
    canonical_uri,
    canonical_uri_candidates,
    chunk_signature,
    chunk_string_to_sign,
    compute_signature,
    format_amz_date,
    format_server_time,
    parse_amz_date,
    percent_decode,
    signing_key,
    string_to_sign,
    trailer_string_to_sign,
    uri_encode,
    wire_text,
)
from multistore.auth.signing import presign_url, sign_request
from multistore.auth.sigv4 import (
    SigV4Authorization,
    SigV4Presigned,
    check_signature,
    parse_authorization,
    parse_presigned,
    verify_header_auth,
    verify_presigned,
)
from multistore.headers import HeaderList
from multistore.model import CredentialScope, IncomingRequest, VerifiedSignature
from multistore.s3.dates import parse_http_date
from multistore.s3.errors import S3Error

SUITE = json.loads(
    (Path(__file__).parent / "data" / "sigv4_suite.json").read_text("utf-8")
)

# The S3 documentation's examples.
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXAMPLE_TIME = datetime(2013, 5, 24, tzinfo=UTC)
EXAMPLE_SCOPE = CredentialScope("20130524", "us-east-1", "s3")
EXAMPLE_HOST = "examplebucket.s3.amazonaws.com"
PUT_BODY_SHA256 = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()

# A fixed time for the round trips.
NOW = datetime(2024, 2, 29, 13, 14, 15, tzinfo=UTC)
ENDPOINT = "http://127.0.0.1:8333"
NO_HEADERS = HeaderList()

# Keys with every character that clients encode differently.
AWKWARD_KEYS = (
    "plain.txt",
    "a b",
    "100%",
    "100%25",
    "a+b",
    "a%2Bb",
    "ünïcødé/ファイル",
    "star*",
    "hash#tag",
    "tilde~",
    "[brackets]",
    "a=b&c",
    "dir/sub/",
    "dollar$file.text",
    "!'()*,;:@",
    "emoji-\U0001f600",
    "question?mark",
    "back\\slash",
    'quote"s',
    "a//b",
)


def _url(key: str, name: str | None = None, value: str = "") -> str:
    """
    A URL for ``key`` in ``bucket``, with one query parameter if ``name``.
    """
    url = f"{ENDPOINT}/bucket/{uri_encode(key, keep_slash=True)}"
    if name is None:
        return url
    return f"{url}?{name}={uri_encode(value, keep_slash=False)}"


def _request(
    method: str, url: str, headers: HeaderList, *, raw_path: bytes | None = None
) -> IncomingRequest:
    """
    The request a server receives for ``url``.
    """
    parts = urlsplit(url)
    return IncomingRequest(
        method=method,
        raw_path=raw_path if raw_path is not None else parts.path.encode("latin-1"),
        raw_query=parts.query.encode("latin-1"),
        headers=headers,
    )


def _signed(
    method: str = "GET",
    url: str = f"{ENDPOINT}/bucket/key",
    headers: HeaderList = NO_HEADERS,
    payload_hash: str = EMPTY_SHA256,
    token: str | None = None,
    now: datetime = NOW,
) -> tuple[IncomingRequest, SigV4Authorization]:
    """
    A request signed by L{sign_request}, as the server receives it.
    """
    out = sign_request(
        method, url, headers, payload_hash, AKID, SECRET, token, "us-east-1", now
    )
    request = _request(method, url, out)
    return request, parse_authorization(out.get("authorization") or "")


def _presigned(
    url: str = f"{ENDPOINT}/bucket/key",
    method: str = "GET",
    expires: int = 3600,
    token: str | None = None,
    headers: HeaderList | None = None,
) -> tuple[IncomingRequest, SigV4Presigned]:
    """
    A request made from a URL presigned by L{presign_url}.
    """
    signed_url = presign_url(
        method, url, AKID, SECRET, token, "us-east-1", NOW, expires
    )
    host = urlsplit(signed_url).netloc
    all_headers = HeaderList([("host", host)]).plus(headers or HeaderList())
    request = _request(method, signed_url, all_headers)
    params = parse_qsl(urlsplit(signed_url).query, keep_blank_values=True)
    auth = parse_presigned(params)
    assert auth is not None
    return request, auth


def _error(
    test: SynchronousTestCase, code: str, f: Any, *args: Any, **kw: Any
) -> S3Error:
    """
    Assert that ``f(*args, **kw)`` raises an S3Error with ``code``.
    """
    error = test.assertRaises(S3Error, f, *args, **kw)
    test.assertEqual(error.code, code, error.message)
    return error


def _parse_suite_request(text: str) -> tuple[IncomingRequest, bytes]:
    """
    Parse a request from the test suite the way an HTTP server would: the
    target is the request line between the first and the last space, header
    values lose surrounding whitespace.
    """
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, _, rest = lines[0].partition(" ")
    target = rest.rpartition(" ")[0]
    path, _, query = target.partition("?")
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.append((name, value.strip()))
    request = IncomingRequest(
        method=method,
        raw_path=path.encode("utf-8"),
        raw_query=query.encode("utf-8"),
        headers=HeaderList(fields),
    )
    return request, body.encode("utf-8")


#: Any text that can be encoded as UTF-8.
_text = st.characters(blacklist_categories=["Cs"])


class UriEncodeTests(SynchronousTestCase):
    """
    Tests for L{uri_encode}.
    """

    def test_unreserved(self) -> None:
        """
        Letters, digits and ``-._~`` stay as they are.
        """
        unreserved = (
            "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        )
        self.assertEqual(uri_encode(unreserved, keep_slash=False), unreserved)

    def test_reserved(self) -> None:
        """
        Everything else becomes ``%XX`` with upper-case hex, space included.
        """
        self.assertEqual(
            uri_encode(" !*'()+$,;=:@&?#[]%", keep_slash=False),
            "%20%21%2A%27%28%29%2B%24%2C%3B%3D%3A%40%26%3F%23%5B%5D%25",
        )

    def test_slash(self) -> None:
        """
        ``/`` is kept only when asked.
        """
        self.assertEqual(uri_encode("a/b", keep_slash=True), "a/b")
        self.assertEqual(uri_encode("a/b", keep_slash=False), "a%2Fb")

    def test_utf8(self) -> None:
        """
        Text is encoded as UTF-8; bytes are encoded as they are.
        """
        self.assertEqual(uri_encode("ሴ", keep_slash=False), "%E1%88%B4")
        self.assertEqual(uri_encode(b"\xe9", keep_slash=False), "%E9")

    @given(st.text(_text))
    def test_reversible(self, value: str) -> None:
        """
        Decoding the result gives back the UTF-8 bytes, and the result holds
        only unreserved characters, ``/`` and escapes.
        """
        encoded = uri_encode(value, keep_slash=True)
        self.assertEqual(unquote_to_bytes(encoded), value.encode("utf-8"))
        stripped = encoded.replace("/", "")
        self.assertEqual(
            uri_encode(unquote_to_bytes(stripped), keep_slash=False), stripped
        )


class WireTextTests(SynchronousTestCase):
    """
    Tests for L{wire_text} and L{percent_decode}.
    """

    def test_latin1_unchanged(self) -> None:
        """
        Text that is already one character per byte is unchanged.
        """
        self.assertEqual(wire_text("caf\xe9"), "caf\xe9")

    def test_other_text_utf8(self) -> None:
        """
        Text that cannot be ISO-8859-1 is taken as UTF-8.
        """
        self.assertEqual(wire_text("ሴ"), "\xe1\x88\xb4")

    def test_percent_decode(self) -> None:
        """
        Escapes are decoded, broken escapes kept, and ``+`` is a space only
        when asked.
        """
        self.assertEqual(
            percent_decode("a%20b+c%2B%zz%4", plus_is_space=False), b"a b+c+%zz%4"
        )
        self.assertEqual(percent_decode("a+b", plus_is_space=True), b"a b")


class CanonicalUriTests(SynchronousTestCase):
    """
    Tests for L{canonical_uri} and L{canonical_uri_candidates}.
    """

    def test_encoded_once(self) -> None:
        """
        An AWS-encoded path is its own canonical URI, with no second
        encoding.
        """
        self.assertEqual(canonical_uri_candidates("/bucket/a%20b"), ("/bucket/a%20b",))
        self.assertEqual(canonical_uri("/bucket/a%20b"), "/bucket/a%20b")

    def test_raw_first(self) -> None:
        """
        A path encoded otherwise yields the path as received first, then the
        path re-encoded with the AWS rule.
        """
        self.assertEqual(
            canonical_uri_candidates("/test$file.text"),
            ("/test$file.text", "/test%24file.text"),
        )
        self.assertEqual(canonical_uri_candidates("/a%2a"), ("/a%2a", "/a%2A"))
        self.assertEqual(canonical_uri_candidates("/a%7Eb"), ("/a%7Eb", "/a~b"))

    def test_plus(self) -> None:
        """
        A ``+`` in a path is a plus, not a space.
        """
        self.assertEqual(canonical_uri("/a+b"), "/a%2Bb")

    def test_not_normalised(self) -> None:
        """
        Dot segments and repeated slashes stay, as S3 keeps them.
        """
        self.assertEqual(canonical_uri("//a/./b/../c//"), "//a/./b/../c//")

    def test_empty(self) -> None:
        """
        An empty path is ``/``.
        """
        self.assertEqual(canonical_uri_candidates(""), ("/",))
        self.assertEqual(canonical_uri(""), "/")

    def test_raw_utf8(self) -> None:
        """
        UTF-8 bytes sent unencoded are encoded in the normalised candidate.
        """
        wire = "/ሴ".encode().decode("latin-1")
        self.assertEqual(canonical_uri(wire), "/%E1%88%B4")


class CanonicalQueryTests(SynchronousTestCase):
    """
    Tests for L{canonical_query} and L{canonical_query_candidates}.
    """

    def test_empty(self) -> None:
        """
        No query, or only separators, is the empty string.
        """
        self.assertEqual(canonical_query(""), "")
        self.assertEqual(canonical_query("&&"), "")

    def test_sorted(self) -> None:
        """
        Parameters sort by encoded name, then encoded value.
        """
        self.assertEqual(
            canonical_query("prefix=J&max-keys=2&b=2&b=1&B=3"),
            "B=3&b=1&b=2&max-keys=2&prefix=J",
        )

    def test_no_value(self) -> None:
        """
        A parameter without ``=`` has an empty value.
        """
        self.assertEqual(canonical_query("uploads&acl="), "acl=&uploads=")

    def test_reencoded(self) -> None:
        """
        Names and values are decoded and encoded with the AWS rule: ``/`` and
        space are escaped, unreserved characters are not, hex is upper-case.
        """
        self.assertEqual(
            canonical_query("prefix=a/b c&x=%7e%2a&%e1%88%b4=1"),
            "%E1%88%B4=1&prefix=a%2Fb%20c&x=~%2A",
        )

    def test_plus(self) -> None:
        """
        A bare ``+`` is a space; ``%2B`` is a plus.
        """
        self.assertEqual(canonical_query("k=a+b%2Bc"), "k=a%20b%2Bc")

    def test_exclude_signature(self) -> None:
        """
        ``X-Amz-Signature`` is left out when asked, in every candidate.
        """
        query = "b=1&X-Amz-Signature=abc&a=2"
        self.assertEqual(canonical_query(query, True), "a=2&b=1")
        self.assertEqual(canonical_query(query), "X-Amz-Signature=abc&a=2&b=1")
        for candidate in canonical_query_candidates(query, True):
            self.assertNotIn("Signature", candidate)

    def test_candidates(self) -> None:
        """
        After the normalised query come the pieces as sent, sorted by name
        and value, then sorted as whole strings.
        """
        self.assertEqual(
            canonical_query_candidates("a-b=1&a=x+y"),
            ("a=x%20y&a-b=1", "a=x+y&a-b=1", "a-b=1&a=x+y"),
        )

    def test_candidates_deduplicated(self) -> None:
        """
        An AWS-encoded query has one candidate.
        """
        self.assertEqual(canonical_query_candidates("a=1&b=%2F"), ("a=1&b=%2F",))


class CanonicalHeadersTests(SynchronousTestCase):
    """
    Tests for L{canonical_headers}.
    """

    def test_trimall(self) -> None:
        """
        Values are trimmed and runs of spaces collapse to one.
        """
        headers = HeaderList.of(("x-a", '  "a   b \t c"  '))
        self.assertEqual(canonical_headers(headers, ["x-a"]), 'x-a:"a b c"\n')

    def test_repeated(self) -> None:
        """
        Repeated headers join in order with ``,``.
        """
        headers = HeaderList.of(("x-a", "2"), ("x-b", "z"), ("X-A", " 1 "))
        self.assertEqual(canonical_headers(headers, ["x-a", "x-b"]), "x-a:2,1\nx-b:z\n")

    def test_listed_order_and_absent(self) -> None:
        """
        Names come in the order listed, and an absent one has an empty value.
        """
        headers = HeaderList.of(host="h")
        self.assertEqual(canonical_headers(headers, ["x-z", "host"]), "x-z:\nhost:h\n")


class SuiteTests(SynchronousTestCase):
    """
    The AWS SigV4 test suite, for the cases that apply to S3 (no path
    normalisation; the request line is read as a server reads it).
    """

    key = signing_key(
        SUITE["secret_access_key"],
        SUITE["amz_date"][:8],
        SUITE["region"],
        SUITE["service"],
    )
    scope = CredentialScope(SUITE["amz_date"][:8], SUITE["region"], SUITE["service"])

    def _check(self, kind: str, presigned: bool) -> None:
        checked = 0
        for case in SUITE["cases"]:
            vector = case[kind]
            request, body = _parse_suite_request(vector["signed_request"])
            params = parse_qsl(request.raw_query.decode(), keep_blank_values=True)
            if presigned:
                auth: SigV4Authorization | SigV4Presigned | None = parse_presigned(
                    params
                )
            else:
                auth = parse_authorization(request.headers.get("authorization") or "")
            assert auth is not None
            self.assertEqual(auth.access_key_id, SUITE["access_key_id"])
            self.assertEqual(auth.scope, self.scope)
            self.assertEqual(auth.signature, vector["signature"], case["name"])
            payload_hash = hashlib.sha256(body).hexdigest()
            raw_path = request.raw_path.decode("latin-1")
            raw_query = request.raw_query.decode("latin-1")
            built = [
                canonical_request(
                    request.method,
                    uri,
                    query,
                    request.headers,
                    auth.signed_headers,
                    payload_hash,
                )
                for uri in canonical_uri_candidates(raw_path)
                for query in canonical_query_candidates(raw_query, presigned)
            ]
            if presigned and not case["token_signed"]:
                # The token was added after signing: the request must fail.
                self.assertNotIn(vector["canonical_request"], built, case["name"])
                _error(
                    self,
                    "SignatureDoesNotMatch",
                    self._verify,
                    request,
                    auth,
                    payload_hash,
                    presigned,
                )
                continue
            self.assertIn(vector["canonical_request"], built, case["name"])
            sts = string_to_sign(
                SUITE["amz_date"], self.scope, vector["canonical_request"]
            )
            self.assertEqual(sts, vector["string_to_sign"], case["name"])
            self.assertEqual(
                compute_signature(self.key, sts), vector["signature"], case["name"]
            )
            self._verify(request, auth, payload_hash, presigned)
            checked += 1
        self.assertGreaterEqual(checked, 29)

    def _verify(
        self,
        request: IncomingRequest,
        auth: SigV4Authorization | SigV4Presigned,
        payload_hash: str,
        presigned: bool,
    ) -> None:
        check_signature(
            request,
            access_key_id=auth.access_key_id,
            key=self.key,
            amz_date=SUITE["amz_date"],
            scope=self.scope,
            signed_headers=auth.signed_headers,
            payload_hash=payload_hash,
            signature=auth.signature,
            presigned=presigned,
        )

    def test_header(self) -> None:
        """
        Every header-signed request of the suite has the published canonical
        request, string to sign and signature, and verifies.
        """
        self._check("header", presigned=False)

    def test_query(self) -> None:
        """
        Every query-signed request of the suite has the published canonical
        request, string to sign and signature, and verifies; one whose token
        was added after signing does not.
        """
        self._check("query", presigned=True)

    def test_unsigned_token_header(self) -> None:
        """
        The suite's request with a security token header added after signing
        is refused by the full verification.
        """
        case = next(c for c in SUITE["cases"] if c["name"] == "post-sts-header-after")
        request, _ = _parse_suite_request(case["header"]["signed_request"])
        request = IncomingRequest(
            method=request.method,
            raw_path=request.raw_path,
            headers=request.headers.plus([("x-amz-content-sha256", EMPTY_SHA256)]),
        )
        auth = parse_authorization(request.headers.get("authorization") or "")
        error = _error(
            self,
            "AccessDenied",
            verify_header_auth,
            request,
            auth,
            SUITE["secret_access_key"],
            datetime(2015, 8, 30, 12, 36, tzinfo=UTC),
        )
        self.assertIn(
            ("HeadersNotSigned", "x-amz-content-sha256, x-amz-security-token"),
            error.extra,
        )


class S3ExampleTests(SynchronousTestCase):
    """
    The worked examples of the S3 SigV4 documentation.
    """

    key = signing_key(SECRET, "20130524", "us-east-1", "s3")

    def _verify(
        self, method: str, target: str, headers: HeaderList, signed: str, signature: str
    ) -> VerifiedSignature:
        path, _, query = target.partition("?")
        request = IncomingRequest(
            method=method,
            raw_path=path.encode(),
            raw_query=query.encode(),
            headers=headers.plus(
                [
                    (
                        "authorization",
                        f"AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/"
                        f"aws4_request,SignedHeaders={signed},Signature={signature}",
                    )
                ]
            ),
        )
        auth = parse_authorization(request.headers.get("authorization") or "")
        return verify_header_auth(request, auth, SECRET, EXAMPLE_TIME)

    def test_get_object(self) -> None:
        """
        GET Object with a Range header.
        """
        headers = HeaderList.of(
            host=EXAMPLE_HOST,
            range="bytes=0-9",
            x_amz_content_sha256=EMPTY_SHA256,
            x_amz_date="20130524T000000Z",
        )
        signed = "host;range;x-amz-content-sha256;x-amz-date"
        creq = canonical_request(
            "GET", "/test.txt", "", headers, signed.split(";"), EMPTY_SHA256
        )
        self.assertEqual(
            hashlib.sha256(creq.encode()).hexdigest(),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
        )
        signature = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        verified = self._verify("GET", "/test.txt", headers, signed, signature)
        self.assertEqual(
            verified,
            VerifiedSignature(
                access_key_id=AKID,
                signing_key=self.key,
                amz_date="20130524T000000Z",
                scope=EXAMPLE_SCOPE,
                seed_signature=signature,
                payload_hash=EMPTY_SHA256,
            ),
        )

    def test_put_object(self) -> None:
        """
        PUT Object with a key needing encoding, sent unencoded.
        """
        headers = HeaderList.of(
            host=EXAMPLE_HOST,
            date="Fri, 24 May 2013 00:00:00 GMT",
            x_amz_date="20130524T000000Z",
            x_amz_storage_class="REDUCED_REDUNDANCY",
            x_amz_content_sha256=PUT_BODY_SHA256,
        )
        self._verify(
            "PUT",
            "/test$file.text",
            headers,
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        )

    def test_get_lifecycle(self) -> None:
        """
        GET Bucket lifecycle: a parameter without a value.
        """
        headers = HeaderList.of(
            host=EXAMPLE_HOST,
            x_amz_date="20130524T000000Z",
            x_amz_content_sha256=EMPTY_SHA256,
        )
        self._verify(
            "GET",
            "/?lifecycle",
            headers,
            "host;x-amz-content-sha256;x-amz-date",
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        )

    def test_list_objects(self) -> None:
        """
        GET Bucket (List Objects): parameters sorted.
        """
        headers = HeaderList.of(
            host=EXAMPLE_HOST,
            x_amz_date="20130524T000000Z",
            x_amz_content_sha256=EMPTY_SHA256,
        )
        self._verify(
            "GET",
            "/?max-keys=2&prefix=J",
            headers,
            "host;x-amz-content-sha256;x-amz-date",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        )

    def test_sign_put_object(self) -> None:
        """
        L{sign_request} reproduces the PUT Object example.
        """
        out = sign_request(
            "PUT",
            f"https://{EXAMPLE_HOST}/test%24file.text",
            HeaderList.of(
                date="Fri, 24 May 2013 00:00:00 GMT",
                x_amz_storage_class="REDUCED_REDUNDANCY",
            ),
            PUT_BODY_SHA256,
            AKID,
            SECRET,
            None,
            "us-east-1",
            EXAMPLE_TIME,
        )
        self.assertEqual(
            out.get("authorization"),
            f"AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;"
            "x-amz-storage-class, "
            "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        )

    def test_presigned_url(self) -> None:
        """
        L{presign_url} reproduces the presigned URL example, and it verifies.
        """
        url = presign_url(
            "GET",
            f"https://{EXAMPLE_HOST}/test.txt",
            AKID,
            SECRET,
            None,
            "us-east-1",
            EXAMPLE_TIME,
            86400,
        )
        self.assertEqual(
            url,
            f"https://{EXAMPLE_HOST}/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={AKID}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
            "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
        )
        request = _request("GET", url, HeaderList.of(host=EXAMPLE_HOST))
        auth = parse_presigned(parse_qsl(urlsplit(url).query))
        assert auth is not None
        verified = verify_presigned(
            request, auth, SECRET, EXAMPLE_TIME + timedelta(hours=23)
        )
        self.assertEqual(verified.payload_hash, UNSIGNED_PAYLOAD)

    def test_chunks(self) -> None:
        """
        The seed and chunk signatures of the multiple-chunk upload example.
        """
        headers = HeaderList.of(
            host="s3.amazonaws.com",
            x_amz_date="20130524T000000Z",
            x_amz_storage_class="REDUCED_REDUNDANCY",
            x_amz_content_sha256=STREAMING_PAYLOAD,
            content_encoding="aws-chunked",
            x_amz_decoded_content_length="66560",
            content_length="66824",
        )
        signed = (
            "content-encoding;content-length;host;x-amz-content-sha256;"
            "x-amz-date;x-amz-decoded-content-length;x-amz-storage-class"
        )
        seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
        verified = self._verify(
            "PUT", "/examplebucket/chunkObject.txt", headers, signed, seed
        )
        self.assertEqual(verified.payload_hash, STREAMING_PAYLOAD)
        expected = [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ]
        previous = verified.seed_signature
        for size, signature in zip((65536, 1024, 0), expected, strict=True):
            sts = chunk_string_to_sign(
                verified.amz_date,
                verified.scope,
                previous,
                hashlib.sha256(b"a" * size).hexdigest(),
            )
            previous = chunk_signature(verified.signing_key, sts)
            self.assertEqual(previous, signature)

    def test_chunk_string_to_sign(self) -> None:
        """
        The first chunk's string to sign is laid out as documented.
        """
        self.assertEqual(
            chunk_string_to_sign(
                "20130524T000000Z",
                EXAMPLE_SCOPE,
                "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
                "bf718b6f653bebc184e1479f1935b8da974d701b893afcf49e701f3e2f9f9c5a",
            ),
            "AWS4-HMAC-SHA256-PAYLOAD\n20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "bf718b6f653bebc184e1479f1935b8da974d701b893afcf49e701f3e2f9f9c5a",
        )

    def test_trailer(self) -> None:
        """
        The seed, chunk and trailer signatures of the upload-with-trailer
        example.
        """
        headers = HeaderList.of(
            host="s3.amazonaws.com",
            x_amz_date="20130524T000000Z",
            x_amz_storage_class="REDUCED_REDUNDANCY",
            x_amz_content_sha256=STREAMING_PAYLOAD_TRAILER,
            content_encoding="aws-chunked",
            x_amz_decoded_content_length="66560",
            x_amz_trailer="x-amz-checksum-crc32c",
        )
        signed = (
            "content-encoding;host;x-amz-content-sha256;x-amz-date;"
            "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer"
        )
        seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
        verified = self._verify(
            "PUT", "/examplebucket/chunkObject.txt", headers, signed, seed
        )
        previous = verified.seed_signature
        for size in (65536, 1024, 0):
            sts = chunk_string_to_sign(
                verified.amz_date,
                verified.scope,
                previous,
                hashlib.sha256(b"a" * size).hexdigest(),
            )
            previous = chunk_signature(verified.signing_key, sts)
        self.assertEqual(
            previous, "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"
        )
        trailer = hashlib.sha256(b"x-amz-checksum-crc32c:sOO8/Q==\n").hexdigest()
        sts = trailer_string_to_sign(
            verified.amz_date, verified.scope, previous, trailer
        )
        self.assertTrue(sts.startswith("AWS4-HMAC-SHA256-TRAILER\n20130524T000000Z\n"))
        self.assertEqual(
            chunk_signature(verified.signing_key, sts),
            "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435",
        )


GOOD_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request, "
    "SignedHeaders=host;range;x-amz-date, Signature=" + "ab" * 32
)


class ParseAuthorizationTests(SynchronousTestCase):
    """
    Tests for L{parse_authorization}.
    """

    expected = SigV4Authorization(
        access_key_id="AKID",
        date="20130524",
        region="us-east-1",
        service="s3",
        signed_headers=("host", "range", "x-amz-date"),
        signature="ab" * 32,
    )

    def test_parse(self) -> None:
        """
        Every component is found.
        """
        self.assertEqual(parse_authorization(GOOD_AUTHORIZATION), self.expected)
        self.assertEqual(
            self.expected.scope, CredentialScope("20130524", "us-east-1", "s3")
        )

    def test_spacing_and_order(self) -> None:
        """
        Spaces around ``,`` and ``=`` do not matter, nor does the order.
        """
        for value in (
            "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-date,Signature=" + "ab" * 32,
            "  AWS4-HMAC-SHA256   Signature = " + "AB" * 32 + " ,  SignedHeaders= "
            "Host;Range;X-Amz-Date ,Credential =AKID/20130524/us-east-1/s3/"
            "aws4_request , ",
        ):
            self.assertEqual(parse_authorization(value), self.expected, value)

    def test_unsupported_scheme(self) -> None:
        """
        Another scheme is an unsupported authorization type.
        """
        for value in ("AWS4-HMAC-SHA512 Credential=x", "AWS AKID:sig", "Bearer x", ""):
            error = _error(self, "InvalidArgument", parse_authorization, value)
            self.assertIn(("ArgumentName", "Authorization"), error.extra)

    def test_malformed(self) -> None:
        """
        Missing, repeated, unknown and malformed components are refused.
        """
        signature = "Signature=" + "ab" * 32
        credential = "Credential=AKID/20130524/us-east-1/s3/aws4_request"
        signed = "SignedHeaders=host"
        cases = {
            "SignedHeaders component is missing": f"{credential}, {signature}",
            "Credential component is missing": f"{signed}, {signature}",
            "Signature component is missing": f"{credential}, {signed}",
            "given more than once": f"{credential}, {signed}, {signature}, {signed}",
            "unknown component 'Foo'": f"{credential}, {signed}, {signature}, Foo=1",
            "has no '='": f"{credential}, {signed}, {signature}, Foo",
        }
        bad_credentials = (
            "AKID/20130524/us-east-1/s3",
            "AKID/20130524/us-east-1/s3/aws4_request/x",
            "AKID/20130524/us-east-1/s3/aws5_request",
            "/20130524/us-east-1/s3/aws4_request",
            "AKID/20130524//s3/aws4_request",
            "AKID/2013052/us-east-1/s3/aws4_request",
            "AKID/20131301/us-east-1/s3/aws4_request",
            "AKID/2013-5-4/us-east-1/s3/aws4_request",
            "AKID/20130524T000000Z/us-east-1/s3/aws4_request",
        )
        for number, value in enumerate(bad_credentials):
            cases[f"Credential is mal-formed #{number}"] = (
                f"Credential={value}, {signed}, {signature}"
            )
        for number, value in enumerate(("", ";", "host;", ";host", " ")):
            cases[f"at least one header #{number}"] = (
                f"{credential}, SignedHeaders={value}, {signature}"
            )
        for number, value in enumerate(("ab" * 31, "ab" * 33, "zz" * 32, "")):
            cases[f"64 hexadecimal digits #{number}"] = (
                f"{credential}, {signed}, Signature={value}"
            )
        for expected, value in cases.items():
            error = _error(
                self,
                "AuthorizationHeaderMalformed",
                parse_authorization,
                "AWS4-HMAC-SHA256 " + value,
            )
            self.assertIn(expected.split(" #")[0], error.message, value)


def _query(**overrides: str | None) -> list[tuple[str, str]]:
    params = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": "AKID/20130524/us-east-1/s3/aws4_request",
        "X-Amz-Date": "20130524T000000Z",
        "X-Amz-Expires": "86400",
        "X-Amz-SignedHeaders": "host",
        "X-Amz-Signature": "ab" * 32,
    }
    params.update(overrides)  # type: ignore[arg-type]
    return [("list-type", "2")] + [(k, v) for k, v in params.items() if v is not None]


class ParsePresignedTests(SynchronousTestCase):
    """
    Tests for L{parse_presigned}.
    """

    def test_parse(self) -> None:
        """
        Every parameter is found.
        """
        self.assertEqual(
            parse_presigned(_query(**{"X-Amz-Security-Token": "tok/en+=="})),
            SigV4Presigned(
                access_key_id="AKID",
                date="20130524",
                region="us-east-1",
                service="s3",
                amz_date="20130524T000000Z",
                expires=86400,
                signed_headers=("host",),
                signature="ab" * 32,
                security_token="tok/en+==",
            ),
        )

    def test_not_presigned(self) -> None:
        """
        Without ``X-Amz-Algorithm`` the request is not presigned.
        """
        self.assertIsNone(parse_presigned([]))
        self.assertIsNone(parse_presigned(_query(**{"X-Amz-Algorithm": None})))

    def test_limits(self) -> None:
        """
        ``X-Amz-Expires`` may be 1 to 604800.
        """
        for expires in (1, MAX_PRESIGNED_EXPIRES):
            auth = parse_presigned(_query(**{"X-Amz-Expires": str(expires)}))
            assert auth is not None
            self.assertEqual(auth.expires, expires)

    def test_errors(self) -> None:
        """
        A missing, repeated or malformed parameter is named in the error.
        """
        cases: list[tuple[list[tuple[str, str]], str]] = [
            (
                _query(**{"X-Amz-Algorithm": "AWS4-HMAC-SHA1"}),
                "X-Amz-Algorithm only supports",
            ),
            (
                _query(**{"X-Amz-Expires": "604801"}),
                "X-Amz-Expires must be less than a week (in seconds) that is 604800",
            ),
            (_query(**{"X-Amz-Expires": "0"}), "X-Amz-Expires must be at least"),
            (_query(**{"X-Amz-Expires": "-1"}), "X-Amz-Expires should be a number"),
            (_query(**{"X-Amz-Expires": "1e3"}), "X-Amz-Expires should be a number"),
            (_query(**{"X-Amz-Expires": "\u0663"}), "X-Amz-Expires should be a number"),
            (_query(**{"X-Amz-Date": "20130524"}), "X-Amz-Date must be in the ISO8601"),
            (
                _query(**{"X-Amz-Date": "20130532T000000Z"}),
                "X-Amz-Date must be in the ISO8601",
            ),
            (_query(**{"X-Amz-Date": "20130525T000000Z"}), "does not match X-Amz-Date"),
            (
                _query(**{"X-Amz-Credential": "AKID/20130524/us-east-1/s3"}),
                "X-Amz-Credential",
            ),
            (_query(**{"X-Amz-SignedHeaders": ""}), "X-Amz-SignedHeaders"),
            (_query(**{"X-Amz-Signature": "xyz"}), "X-Amz-Signature"),
            (
                [*_query(), ("X-Amz-Date", "20130524T000000Z")],
                "X-Amz-Date is given more than once",
            ),
        ]
        for name in (
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature",
        ):
            cases.append((_query(**{name: None}), f"{name} is missing"))
        for params, expected in cases:
            error = _error(
                self, "AuthorizationQueryParametersError", parse_presigned, params
            )
            self.assertIn(expected, error.message, params)


class TimeTests(SynchronousTestCase):
    """
    Tests for the time helpers.
    """

    def test_amz_date(self) -> None:
        """
        ISO 8601 basic times parse, and nothing else does.
        """
        self.assertEqual(
            parse_amz_date("20130524T010203Z"),
            datetime(2013, 5, 24, 1, 2, 3, tzinfo=UTC),
        )
        for bad in (
            "20130524T010203",
            "2013-05-24T01:02:03Z",
            "20130524T250000Z",
            " 20130524T010203Z",
            "\uff120130524T010203Z",
        ):
            self.assertIsNone(parse_amz_date(bad), bad)

    def test_http_date(self) -> None:
        """
        HTTP dates parse in their three forms; a missing zone means UTC.
        """
        expected = datetime(2013, 5, 24, tzinfo=UTC)
        for value in (
            "Fri, 24 May 2013 00:00:00 GMT",
            "Fri, 24 May 2013 00:00:00 -0000",
            "Friday, 24-May-13 00:00:00 GMT",
            "Fri May 24 00:00:00 2013",
            "Fri, 24 May 2013 02:00:00 +0200",
        ):
            self.assertEqual(parse_http_date(value), expected, value)
        for bad in ("", "garbage", "Fri, 99 May 2013 00:00:00 GMT"):
            self.assertIsNone(parse_http_date(bad), bad)

    def test_format(self) -> None:
        """
        Times format in UTC; naive times are refused.
        """
        when = datetime(2013, 5, 24, 4, 0, tzinfo=timezone(timedelta(hours=2)))
        self.assertEqual(format_amz_date(when), "20130524T020000Z")
        self.assertEqual(format_server_time(when), "2013-05-24T02:00:00Z")
        self.assertRaises(ValueError, format_amz_date, datetime(2013, 5, 24))


def _refused(
    test: SynchronousTestCase,
    code: str,
    request: IncomingRequest,
    auth: SigV4Authorization | SigV4Presigned,
    now: datetime = NOW,
    **kw: Any,
) -> S3Error:
    """
    Assert that verifying ``request`` fails with ``code``.
    """
    if isinstance(auth, SigV4Presigned):
        return _error(test, code, verify_presigned, request, auth, SECRET, now, **kw)
    return _error(test, code, verify_header_auth, request, auth, SECRET, now, **kw)


class VerifyHeaderAuthTests(SynchronousTestCase):
    """
    Tests for L{verify_header_auth}.
    """

    def test_verified(self) -> None:
        """
        A signed request verifies and yields what chunk verification needs.
        """
        request, auth = _signed("PUT", payload_hash=STREAMING_PAYLOAD)
        verified = verify_header_auth(request, auth, SECRET, NOW)
        self.assertEqual(
            verified,
            VerifiedSignature(
                access_key_id=AKID,
                signing_key=signing_key(SECRET, "20240229", "us-east-1", "s3"),
                amz_date="20240229T131415Z",
                scope=CredentialScope("20240229", "us-east-1", "s3"),
                seed_signature=auth.signature,
                payload_hash=STREAMING_PAYLOAD,
            ),
        )
        self.assertNotIn("signing_key", repr(verified))

    def test_wrong_secret(self) -> None:
        """
        Another secret gives SignatureDoesNotMatch with what AWS reports.
        """
        request, auth = _signed(url=f"{ENDPOINT}/bucket/a%20b?b=1&a=%7e")
        error = _error(
            self, "SignatureDoesNotMatch", verify_header_auth, request, auth, "x", NOW
        )
        self.assertEqual(
            [name for name, _ in error.extra],
            [
                "AWSAccessKeyId",
                "StringToSign",
                "SignatureProvided",
                "StringToSignBytes",
                "CanonicalRequest",
                "CanonicalRequestBytes",
            ],
        )
        extra = dict(error.extra)
        self.assertEqual(extra["AWSAccessKeyId"], AKID)
        self.assertEqual(extra["SignatureProvided"], auth.signature)
        creq = extra["CanonicalRequest"]
        self.assertTrue(creq.startswith("GET\n/bucket/a%20b\na=~&b=1\n"), creq)
        self.assertEqual(
            extra["StringToSign"], string_to_sign("20240229T131415Z", auth.scope, creq)
        )
        self.assertTrue(extra["StringToSignBytes"].startswith("41 57 53 34 2d "))
        self.assertEqual(error.status, 403)

    def test_mismatch_shows_utf8(self) -> None:
        """
        The canonical request in the error shows UTF-8 as text.
        """
        request, auth = _signed(headers=HeaderList.of(x_amz_meta_a="\xc3\xa9"))
        request = evolve(request, method="PUT")
        extra = dict(_refused(self, "SignatureDoesNotMatch", request, auth).extra)
        self.assertIn("x-amz-meta-a:é\n", extra["CanonicalRequest"])
        self.assertIn(" c3 a9 ", extra["CanonicalRequestBytes"])

    def test_host_must_be_signed(self) -> None:
        """
        A signature that does not cover ``host`` is malformed.
        """
        request, auth = _signed()
        auth = evolve(auth, signed_headers=("x-amz-content-sha256", "x-amz-date"))
        error = _refused(self, "AuthorizationHeaderMalformed", request, auth)
        self.assertEqual(error.message, "The host header must be signed.")

    def test_content_sha256_required(self) -> None:
        """
        Header authentication needs ``x-amz-content-sha256``.
        """
        request, auth = _signed()
        request = evolve(
            request, headers=request.headers.without("x-amz-content-sha256")
        )
        error = _refused(self, "InvalidRequest", request, auth)
        self.assertEqual(
            error.message,
            "Missing required header for this request: x-amz-content-sha256",
        )

    def test_content_sha256_valid(self) -> None:
        """
        ``x-amz-content-sha256`` must be a SHA-256 or a known placeholder.
        """
        for value in (
            "abc",
            "UNSIGNED",
            EMPTY_SHA256 + "0",
            "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
        ):
            request, auth = _signed(payload_hash=value)
            error = _refused(self, "InvalidArgument", request, auth)
            self.assertIn(("ArgumentValue", value), error.extra)
        for value in (
            UNSIGNED_PAYLOAD,
            STREAMING_PAYLOAD_TRAILER,
            EMPTY_SHA256.upper(),
        ):
            request, auth = _signed(payload_hash=value)
            verified = verify_header_auth(request, auth, SECRET, NOW)
            self.assertEqual(verified.payload_hash, value)

    def test_date_required(self) -> None:
        """
        Without a valid ``x-amz-date`` or ``Date`` the request is refused.
        """
        request, auth = _signed()
        undated = request.headers.without("x-amz-date")
        for headers in (
            undated,
            request.headers.with_("x-amz-date", "Thu, 29 Feb 2024 13:14:15 GMT"),
            undated.plus([("date", "yesterday")]),
            undated.plus([("date", "")]),
        ):
            error = _refused(
                self, "AccessDenied", evolve(request, headers=headers), auth
            )
            self.assertEqual(
                error.message,
                "AWS authentication requires a valid Date or x-amz-date header",
            )

    def test_scope_date(self) -> None:
        """
        The credential scope's day must be the request's.
        """
        request, auth = _signed()
        auth = evolve(auth, date="20240228")
        error = _refused(self, "AuthorizationHeaderMalformed", request, auth)
        self.assertIn(
            "(20240228) does not match the request date (20240229)", error.message
        )

    def test_skew(self) -> None:
        """
        A request more than the allowed skew away is refused, with the times
        AWS reports; one just inside is accepted.
        """
        for offset in (timedelta(seconds=901), timedelta(seconds=-901)):
            request, auth = _signed(now=NOW + offset)
            error = _refused(self, "RequestTimeTooSkewed", request, auth)
            self.assertEqual(
                error.extra,
                (
                    ("RequestTime", format_amz_date(NOW + offset)),
                    ("ServerTime", "2024-02-29T13:14:15Z"),
                    ("MaxAllowedSkewMilliseconds", "900000"),
                ),
            )
        for offset in (timedelta(seconds=900), timedelta(seconds=-900)):
            request, auth = _signed(now=NOW + offset)
            verify_header_auth(request, auth, SECRET, NOW)
        request, auth = _signed(now=NOW + timedelta(seconds=60))
        _refused(self, "RequestTimeTooSkewed", request, auth, max_skew=59)

    def test_unsigned_amz_header(self) -> None:
        """
        An ``x-amz-*`` header that is not signed is refused.
        """
        request, auth = _signed()
        extra = [("x-amz-acl", "public-read"), ("x-amzn-trace-id", "1")]
        request = evolve(request, headers=request.headers.plus(extra))
        error = _refused(self, "AccessDenied", request, auth)
        self.assertEqual(error.extra, (("HeadersNotSigned", "x-amz-acl"),))

    def test_naive_now(self) -> None:
        """
        A naive current time is a programming error.
        """
        request, auth = _signed()
        naive = datetime(2024, 2, 29)
        self.assertRaises(ValueError, verify_header_auth, request, auth, SECRET, naive)

    def test_date_header(self) -> None:
        """
        Without ``x-amz-date`` the ``Date`` header gives the request time,
        signed in ISO 8601 basic form.
        """
        headers = HeaderList.of(
            host="h",
            date="Thu, 29 Feb 2024 13:14:15 GMT",
            x_amz_content_sha256=EMPTY_SHA256,
        )
        signed = ("date", "host", "x-amz-content-sha256")
        creq = canonical_request("GET", "/b/k", "", headers, signed, EMPTY_SHA256)
        scope = CredentialScope("20240229", "us-east-1", "s3")
        signature = compute_signature(
            signing_key(SECRET, "20240229", "us-east-1", "s3"),
            string_to_sign("20240229T131415Z", scope, creq),
        )
        auth = SigV4Authorization(
            AKID, "20240229", "us-east-1", "s3", signed, signature
        )
        request = IncomingRequest(method="GET", raw_path=b"/b/k", headers=headers)
        verified = verify_header_auth(request, auth, SECRET, NOW)
        self.assertEqual(verified.amz_date, "20240229T131415Z")

    def test_wire_encodings(self) -> None:
        """
        A request whose path and query went on the wire encoded otherwise
        than they were signed verifies.
        """
        request, auth = _signed(url=f"{ENDPOINT}/bucket/a%24b%20c?prefix=x%20y&acl")
        for path, query in (
            (b"/bucket/a$b%20c", b"prefix=x%20y&acl"),
            (b"/bucket/a%24b%20c", b"acl=&prefix=x+y"),
            (b"/bucket/a$b c", b"prefix=x%20y&acl="),
        ):
            moved = evolve(request, raw_path=path, raw_query=query)
            verify_header_auth(moved, auth, SECRET, NOW)

    def test_raw_query_candidate(self) -> None:
        """
        A client that signed its query pieces as sent, without re-encoding,
        verifies.
        """
        headers = HeaderList.of(
            host="h", x_amz_date="20240229T131415Z", x_amz_content_sha256=EMPTY_SHA256
        )
        signed = ("host", "x-amz-content-sha256", "x-amz-date")
        scope = CredentialScope("20240229", "us-east-1", "s3")
        key = signing_key(SECRET, "20240229", "us-east-1", "s3")
        for raw_query, signed_query in (
            ("b=x+y&a=1", "a=1&b=x+y"),
            ("a-b=1&a=2", "a-b=1&a=2"),
        ):
            creq = canonical_request(
                "GET", "/b/k", signed_query, headers, signed, EMPTY_SHA256
            )
            sts = string_to_sign("20240229T131415Z", scope, creq)
            auth = SigV4Authorization(
                AKID, "20240229", "us-east-1", "s3", signed, compute_signature(key, sts)
            )
            request = IncomingRequest(
                method="GET",
                raw_path=b"/b/k",
                raw_query=raw_query.encode(),
                headers=headers,
            )
            verify_header_auth(request, auth, SECRET, NOW)


class VerifyPresignedTests(SynchronousTestCase):
    """
    Tests for L{verify_presigned}.
    """

    def test_verified(self) -> None:
        """
        A presigned request verifies, with an unsigned payload.
        """
        request, auth = _presigned(f"{ENDPOINT}/bucket/a%20b?versionId=1")
        verified = verify_presigned(request, auth, SECRET, NOW)
        self.assertEqual(verified.payload_hash, UNSIGNED_PAYLOAD)
        self.assertEqual(verified.amz_date, "20240229T131415Z")
        self.assertEqual(verified.seed_signature, auth.signature)

    def test_security_token(self) -> None:
        """
        The security token is signed as part of the query.
        """
        request, auth = _presigned(token="FQo/token+with==")
        self.assertEqual(auth.security_token, "FQo/token+with==")
        verify_presigned(request, auth, SECRET, NOW)
        query = request.raw_query.replace(b"FQo", b"FQp")
        tampered = evolve(request, raw_query=query)
        _refused(self, "SignatureDoesNotMatch", tampered, auth)

    def test_expiry(self) -> None:
        """
        A request is valid up to and including its expiry time, and refused
        after it, with the times AWS reports.
        """
        request, auth = _presigned(expires=60)
        verify_presigned(request, auth, SECRET, NOW + timedelta(seconds=60))
        error = _refused(
            self, "AccessDenied", request, auth, NOW + timedelta(seconds=61)
        )
        self.assertEqual(error.message, "Request has expired")
        self.assertEqual(
            error.extra,
            (
                ("X-Amz-Expires", "60"),
                ("Expires", "2024-02-29T13:15:15Z"),
                ("ServerTime", "2024-02-29T13:15:16Z"),
            ),
        )

    def test_not_yet_valid(self) -> None:
        """
        A request dated more than 15 minutes ahead is refused.
        """
        request, auth = _presigned()
        verify_presigned(request, auth, SECRET, NOW - timedelta(seconds=900))
        error = _refused(
            self, "AccessDenied", request, auth, NOW - timedelta(seconds=901)
        )
        self.assertEqual(error.message, "Request is not yet valid")

    def test_host_must_be_signed(self) -> None:
        """
        ``X-Amz-SignedHeaders`` must include ``host``.
        """
        request, auth = _presigned()
        auth = evolve(auth, signed_headers=("range",))
        error = _refused(self, "AuthorizationQueryParametersError", request, auth)
        self.assertEqual(error.message, "X-Amz-SignedHeaders must include host")

    def test_bad_date(self) -> None:
        """
        A hand-made value with a malformed date is refused.
        """
        request, auth = _presigned()
        auth = evolve(auth, amz_date="soon")
        _refused(self, "AuthorizationQueryParametersError", request, auth)

    def test_content_sha256(self) -> None:
        """
        A signed ``x-amz-content-sha256`` header replaces the unsigned
        payload; a malformed one is refused.
        """
        request, auth = _presigned(
            headers=HeaderList.of(x_amz_content_sha256=EMPTY_SHA256)
        )
        signed = ("host", "x-amz-content-sha256")
        query = canonical_query(request.raw_query.decode(), True)
        creq = canonical_request(
            "GET", "/bucket/key", query, request.headers, signed, EMPTY_SHA256
        )
        signature = compute_signature(
            signing_key(SECRET, auth.date, auth.region, auth.service),
            string_to_sign(auth.amz_date, auth.scope, creq),
        )
        auth = evolve(auth, signed_headers=signed, signature=signature)
        verified = verify_presigned(request, auth, SECRET, NOW)
        self.assertEqual(verified.payload_hash, EMPTY_SHA256)
        headers = request.headers.with_("x-amz-content-sha256", "nope")
        _refused(self, "InvalidArgument", evolve(request, headers=headers), auth)

    def test_unsigned_amz_header(self) -> None:
        """
        An ``x-amz-*`` header that is not signed is refused.
        """
        request, auth = _presigned(headers=HeaderList.of(x_amz_acl="public-read"))
        _refused(self, "AccessDenied", request, auth)

    def test_tampered(self) -> None:
        """
        Changing the path, a parameter or the method breaks the signature.
        """
        request, auth = _presigned(f"{ENDPOINT}/bucket/key?versionId=1")
        query = request.raw_query
        for tampered in (
            evolve(request, method="PUT"),
            evolve(request, raw_path=b"/bucket/kez"),
            evolve(request, raw_query=query.replace(b"versionId=1", b"versionId=2")),
            evolve(request, raw_query=query + b"&acl"),
            evolve(request, headers=HeaderList.of(host="evil.example")),
        ):
            _refused(self, "SignatureDoesNotMatch", tampered, auth)


class SignRequestTests(SynchronousTestCase):
    """
    Tests for L{sign_request}.
    """

    def _sign(
        self, url: str, headers: HeaderList = NO_HEADERS, token: str | None = None
    ) -> HeaderList:
        return sign_request(
            "GET", url, headers, EMPTY_SHA256, AKID, SECRET, token, "eu-west-1", NOW
        )

    def test_added_headers(self) -> None:
        """
        ``host``, ``x-amz-date``, ``x-amz-content-sha256`` and
        ``authorization`` are added; existing values are replaced.
        """
        out = self._sign(
            f"{ENDPOINT}/b/k",
            HeaderList.of(
                ("Authorization", "old"),
                ("X-Amz-Date", "old"),
                ("Host", "old"),
                ("x-amz-security-token", "old"),
                ("range", "bytes=0-1"),
            ),
        )
        self.assertEqual(out.get_all("host"), ["127.0.0.1:8333"])
        self.assertEqual(out.get_all("x-amz-date"), ["20240229T131415Z"])
        self.assertEqual(out.get_all("x-amz-content-sha256"), [EMPTY_SHA256])
        self.assertNotIn("x-amz-security-token", out)
        self.assertEqual(len(out.get_all("authorization")), 1)
        self.assertEqual(out.get("range"), "bytes=0-1")
        auth = parse_authorization(out.get("authorization") or "")
        self.assertEqual(auth.scope, CredentialScope("20240229", "eu-west-1", "s3"))
        self.assertEqual(
            auth.signed_headers, ("host", "range", "x-amz-content-sha256", "x-amz-date")
        )

    def test_host(self) -> None:
        """
        The host carries the port only when it is not the scheme's default.
        """
        for url, host in (
            ("http://example.com/b", "example.com"),
            ("http://example.com:80/b", "example.com"),
            ("https://example.com:443/b", "example.com"),
            ("https://example.com:80/b", "example.com:80"),
            ("http://Example.COM:9000", "Example.COM:9000"),
            ("http://[::1]:8333/b", "[::1]:8333"),
            ("http://[::1]:80/b", "[::1]"),
            ("http://user:pw@example.com/b", "example.com"),
        ):
            self.assertEqual(self._sign(url).get("host"), host, url)

    def test_unsigned_headers(self) -> None:
        """
        Headers the transport or proxies may change are sent but not signed;
        ``content-length`` is signed when given.
        """
        out = self._sign(
            f"{ENDPOINT}/b/k",
            HeaderList.of(
                user_agent="ua",
                expect="100-continue",
                connection="close",
                transfer_encoding="chunked",
                content_length="5",
                content_type="text/plain",
            ),
        )
        auth = parse_authorization(out.get("authorization") or "")
        self.assertEqual(
            auth.signed_headers,
            (
                "content-length",
                "content-type",
                "host",
                "x-amz-content-sha256",
                "x-amz-date",
            ),
        )
        self.assertEqual(out.get("user-agent"), "ua")

    def test_session_token(self) -> None:
        """
        A session token is sent and signed.
        """
        out = self._sign(f"{ENDPOINT}/b/k", token="tok")
        self.assertEqual(out.get("x-amz-security-token"), "tok")
        auth = parse_authorization(out.get("authorization") or "")
        self.assertIn("x-amz-security-token", auth.signed_headers)

    def test_round_trip(self) -> None:
        """
        A signed request verifies, the query signed in canonical form.
        """
        for key in AWKWARD_KEYS:
            url = _url(key, "prefix", key) + "&uploads"
            request, auth = _signed(
                "POST",
                url,
                HeaderList.of(content_type="a  b", x_amz_meta_k=" v "),
                token="t",
            )
            verify_header_auth(request, auth, SECRET, NOW)

    def test_bad_url(self) -> None:
        """
        Only absolute, ASCII http(s) URLs can be signed.
        """
        for url in ("/b/k", "ftp://h/b", "http:///b", "http://h/ü"):
            self.assertRaises(ValueError, self._sign, url)


class PresignUrlTests(SynchronousTestCase):
    """
    Tests for L{presign_url}.
    """

    def test_keeps_query(self) -> None:
        """
        The URL's own parameters stay before the authentication, and a
        fragment is dropped.
        """
        url = presign_url(
            "GET",
            f"{ENDPOINT}/b/k?versionId=x%2Fy#frag",
            AKID,
            SECRET,
            "t/k",
            "us-east-1",
            NOW,
            60,
        )
        self.assertTrue(
            url.startswith(f"{ENDPOINT}/b/k?versionId=x%2Fy&X-Amz-Algorithm=")
        )
        self.assertIn("&X-Amz-Security-Token=t%2Fk&X-Amz-Signature=", url)
        self.assertNotIn("frag", url)

    def test_expires(self) -> None:
        """
        The lifetime must be 1 second to a week.
        """
        for expires in (0, MAX_PRESIGNED_EXPIRES + 1):
            self.assertRaises(
                ValueError,
                presign_url,
                "GET",
                f"{ENDPOINT}/b",
                AKID,
                SECRET,
                None,
                "r",
                NOW,
                expires,
            )

    def test_round_trip(self) -> None:
        """
        Presigned URLs for awkward keys verify.
        """
        for key in AWKWARD_KEYS:
            request, auth = _presigned(
                _url(key, "response-content-type", key),
                method="PUT",
            )
            verify_presigned(request, auth, SECRET, NOW)


class _FrozenClock(datetime):
    """
    A C{datetime} class whose C{utcnow} is L{NOW}, for older botocore.
    """

    @classmethod
    def utcnow(cls) -> datetime:  # type: ignore[override]
        return NOW.replace(tzinfo=None)


class BotocoreTests(SynchronousTestCase):
    """
    Requests signed by botocore, the signer of boto3 and the AWS CLI, verify.
    """

    credentials = Credentials(AKID, SECRET)

    def setUp(self) -> None:
        if hasattr(botocore.auth, "get_current_datetime"):
            self.patch(
                botocore.auth,
                "get_current_datetime",
                lambda remove_tzinfo=True: NOW.replace(tzinfo=None),
            )
        else:
            # Older botocore (Debian 12's) reads datetime.datetime.utcnow().
            self.patch(
                botocore.auth, "datetime", SimpleNamespace(datetime=_FrozenClock)
            )

    def _url(self, key: str) -> str:
        # As botocore's S3 serializer renders {Key+}.
        return f"{ENDPOINT}/bucket/{percent_encode(key, safe='/~')}"

    def _received(self, prepared: Any) -> IncomingRequest:
        headers = HeaderList(
            [("host", urlsplit(prepared.url).netloc), *prepared.headers.items()]
        )
        return _request(prepared.method, prepared.url, headers)

    def _header_signed(
        self,
        method: str,
        key: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes = b"",
        credentials: Credentials | None = None,
    ) -> IncomingRequest:
        request = AWSRequest(
            method=method, url=self._url(key), params=params, headers=headers, data=body
        )
        botocore.auth.S3SigV4Auth(
            credentials or self.credentials, "s3", "us-east-1"
        ).add_auth(request)
        return self._received(request.prepare())

    def test_header_auth(self) -> None:
        """
        Header-signed requests verify, keys and parameters with any
        characters, with and without a body.
        """
        for key in AWKWARD_KEYS:
            params = {"prefix": key, "delimiter": "/", "x": "a+b c=d&e", "empty": ""}
            for method, body in (("GET", b""), ("PUT", b"data")):
                received = self._header_signed(
                    method,
                    key,
                    params,
                    {"x-amz-meta-note": "a  b", "Content-Type": "text/plain"},
                    body,
                )
                auth = parse_authorization(received.headers.get("authorization") or "")
                verified = verify_header_auth(received, auth, SECRET, NOW)
                self.assertEqual(
                    verified.payload_hash, hashlib.sha256(body).hexdigest()
                )

    def test_header_auth_query_in_url(self) -> None:
        """
        Parameters already in the URL (signed as sent) verify too.
        """
        for key in AWKWARD_KEYS:
            query = f"uploads&prefix={percent_encode(key, safe='-_.~')}"
            request = AWSRequest(method="POST", url=f"{self._url(key)}?{query}")
            botocore.auth.S3SigV4Auth(self.credentials, "s3", "us-east-1").add_auth(
                request
            )
            received = self._received(request.prepare())
            auth = parse_authorization(received.headers.get("authorization") or "")
            verify_header_auth(received, auth, SECRET, NOW)

    def test_session_token(self) -> None:
        """
        Temporary credentials sign their token.
        """
        received = self._header_signed(
            "GET", "k", {}, {}, credentials=Credentials(AKID, SECRET, "session/token+=")
        )
        self.assertEqual(
            received.headers.get("x-amz-security-token"), "session/token+="
        )
        auth = parse_authorization(received.headers.get("authorization") or "")
        verify_header_auth(received, auth, SECRET, NOW)

    def test_date_header(self) -> None:
        """
        botocore signs with ``Date`` when the request has one.
        """
        received = self._header_signed("GET", "k", {}, {"Date": "whatever"})
        self.assertNotIn("x-amz-date", received.headers)
        auth = parse_authorization(received.headers.get("authorization") or "")
        self.assertEqual(
            verify_header_auth(received, auth, SECRET, NOW).amz_date, "20240229T131415Z"
        )

    def test_tampered(self) -> None:
        """
        A botocore-signed request whose key changed does not verify.
        """
        received = self._header_signed("GET", "a b", {}, {})
        auth = parse_authorization(received.headers.get("authorization") or "")
        moved = IncomingRequest(
            method="GET", raw_path=b"/bucket/a%20c", headers=received.headers
        )
        _error(
            self, "SignatureDoesNotMatch", verify_header_auth, moved, auth, SECRET, NOW
        )

    def test_presigned(self) -> None:
        """
        Presigned URLs verify, keys and parameters with any characters.
        """
        for key in AWKWARD_KEYS:
            for token in (None, "session/token+="):
                request = AWSRequest(
                    method="GET",
                    url=self._url(key),
                    params={
                        "response-content-disposition": f'attachment; filename="{key}"'
                    },
                )
                botocore.auth.S3SigV4QueryAuth(
                    Credentials(AKID, SECRET, token), "s3", "us-east-1", expires=300
                ).add_auth(request)
                received = self._received(request.prepare())
                auth = parse_presigned(
                    parse_qsl(received.raw_query.decode(), keep_blank_values=True)
                )
                assert auth is not None
                self.assertEqual(auth.security_token, token)
                verified = verify_presigned(
                    received, auth, SECRET, NOW + timedelta(seconds=300)
                )
                self.assertEqual(verified.payload_hash, UNSIGNED_PAYLOAD)
                _error(
                    self,
                    "AccessDenied",
                    verify_presigned,
                    received,
                    auth,
                    SECRET,
                    NOW + timedelta(seconds=301),
                )

    def test_outbound_matches_botocore(self) -> None:
        """
        L{sign_request} signs exactly as botocore does.
        """
        for key in AWKWARD_KEYS:
            query = f"list-type=2&prefix={percent_encode(key, safe='-_.~')}"
            url = f"{self._url(key)}?{query}"
            request = AWSRequest(method="GET", url=url, headers={"x-amz-meta-a": "b"})
            botocore.auth.S3SigV4Auth(self.credentials, "s3", "us-east-1").add_auth(
                request
            )
            ours = sign_request(
                "GET",
                url,
                HeaderList.of(x_amz_meta_a="b"),
                EMPTY_SHA256,
                AKID,
                SECRET,
                None,
                "us-east-1",
                NOW,
            )
            self.assertEqual(
                ours.get("authorization"), request.headers["Authorization"], key
            )


# -- properties ---------------------------------------------------------------

_keys = st.text(_text, min_size=1, max_size=40)
_params = st.lists(
    st.tuples(st.text(_text, max_size=8), st.text(_text, max_size=12)), max_size=5
)
_header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20
)
_methods = st.sampled_from(["GET", "PUT", "POST", "HEAD", "DELETE"])


def _query_string(params: list[tuple[str, str]]) -> str:
    return "&".join(
        f"{uri_encode(name, keep_slash=False)}={uri_encode(value, keep_slash=False)}"
        for name, value in params
    )


@st.composite
def _signed_requests(draw: st.DrawFn) -> tuple[IncomingRequest, SigV4Authorization]:
    url = _url(draw(_keys))
    query = _query_string(draw(_params))
    if query:
        url += "?" + query
    headers = HeaderList.of(
        x_amz_meta_a=draw(_header_values), content_type=draw(_header_values)
    )
    payload_hash = draw(st.sampled_from([EMPTY_SHA256, UNSIGNED_PAYLOAD]))
    return _signed(draw(_methods), url, headers, payload_hash)


def _mutate(data: st.DataObject, text: str) -> str:
    """
    Replace one character of ``text``.
    """
    assume(text)
    index = data.draw(st.integers(0, len(text) - 1))
    new = data.draw(st.sampled_from("aZ0-%/+=&~ .\xe9"))
    assume(new != text[index])
    return text[:index] + new + text[index + 1 :]


def _query_meaning(query: bytes) -> list[tuple[str, str]]:
    """
    What a query means, decoded independently of the code under test.
    """
    text = query.decode("latin-1")
    return sorted(parse_qsl(text, keep_blank_values=True, encoding="latin-1"))


class PropertyTests(SynchronousTestCase):
    """
    Signing and verifying agree, and any change breaks the signature.
    """

    @settings(max_examples=200)
    @given(_signed_requests())
    def test_round_trip(
        self, signed: tuple[IncomingRequest, SigV4Authorization]
    ) -> None:
        """
        Whatever is signed verifies.
        """
        request, auth = signed
        verify_header_auth(request, auth, SECRET, NOW)

    @settings(max_examples=300)
    @given(
        _signed_requests(),
        st.sampled_from(["method", "path", "query", "header", "signature"]),
        st.data(),
    )
    def test_tampering(
        self,
        signed: tuple[IncomingRequest, SigV4Authorization],
        part: str,
        data: st.DataObject,
    ) -> None:
        """
        Changing the method, the meaning of the path or query, a signed
        header's value or the signature makes verification fail.
        """
        request, auth = signed
        if part == "method":
            others = _methods.filter(lambda method: method != request.method)
            request = evolve(request, method=data.draw(others))
        elif part == "path":
            path = _mutate(data, request.raw_path.decode("latin-1")).encode("latin-1")
            assume(unquote_to_bytes(path) != unquote_to_bytes(request.raw_path))
            request = evolve(request, raw_path=path)
        elif part == "query":
            query = _mutate(data, request.raw_query.decode("latin-1")).encode("latin-1")
            assume(_query_meaning(query) != _query_meaning(request.raw_query))
            request = evolve(request, raw_query=query)
        elif part == "header":
            name = data.draw(st.sampled_from(["x-amz-meta-a", "content-type", "host"]))
            value = request.headers.get(name) or ""
            mutated = _mutate(data, value)
            assume(" ".join(mutated.split()) != " ".join(value.split()))
            request = evolve(request, headers=request.headers.with_(name, mutated))
        else:
            signature = _mutate(data, auth.signature)
            assume(all(c in "0123456789abcdef" for c in signature))
            auth = evolve(auth, signature=signature)
        _refused(self, "SignatureDoesNotMatch", request, auth)

    @given(_keys, _params)
    def test_presign_round_trip(self, key: str, params: list[tuple[str, str]]) -> None:
        """
        Whatever is presigned verifies.
        """
        query = _query_string(params)
        request, auth = _presigned(_url(key) + (f"?{query}" if query else ""))
        verify_presigned(request, auth, SECRET, NOW)
