"""
Tests for L{multistore.auth.sigv2}.

The expected signatures are the authentication examples of the S3 SigV2
documentation; requests signed by botocore check what real clients send.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from attrs import evolve
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode
from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from multistore.auth.sigv2 import (
    SUB_RESOURCES,
    SigV2Authorization,
    canonical_resource,
    parse_authorization_v2,
    parse_presigned_v2,
    sign_v2,
    string_to_sign_v2,
    verify_v2,
    verify_v2_request,
)
from multistore.headers import HeaderList
from multistore.model import IncomingRequest
from multistore.s3.errors import S3Error

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
NOW = datetime(2024, 2, 29, 13, 14, 15, tzinfo=UTC)
ENDPOINT = "http://127.0.0.1:8333"

AWKWARD_KEYS = (
    "plain.txt",
    "a b",
    "100%",
    "a+b",
    "ünïcødé/ファイル",
    "star*",
    "hash#tag",
    "tilde~",
    "[brackets]",
    "a=b&c",
    "dir/sub/",
    "question?mark",
)


def _request(method: str, target: str, *fields: tuple[str, str]) -> IncomingRequest:
    """
    The request a server receives for ``target`` (path and query).
    """
    path, _, query = target.partition("?")
    return IncomingRequest(
        method=method,
        raw_path=path.encode("latin-1"),
        raw_query=query.encode("latin-1"),
        headers=HeaderList(fields),
    )


def _error(
    test: SynchronousTestCase, code: str, f: Any, *args: Any, **kw: Any
) -> S3Error:
    """
    Assert that ``f(*args, **kw)`` raises an S3Error with ``code``.
    """
    error = test.assertRaises(S3Error, f, *args, **kw)
    test.assertEqual(error.code, code, error.message)
    return error


def _header_auth(request: IncomingRequest) -> SigV2Authorization:
    auth = parse_authorization_v2(request.headers.get("authorization") or "")
    assert auth is not None
    return auth


class DocumentationExampleTests(SynchronousTestCase):
    """
    The authentication examples of the S3 SigV2 documentation.
    """

    def _check(
        self,
        request: IncomingRequest,
        resource_path: str | None,
        expected_sts: str,
        signature: str,
        now: datetime,
    ) -> None:
        raw_path = resource_path or request.raw_path.decode()
        sts = string_to_sign_v2(
            request.method,
            raw_path,
            request.raw_query.decode(),
            request.headers,
            None,
        )
        self.assertEqual(sts, expected_sts)
        self.assertEqual(sign_v2(sts, SECRET), signature)
        self.assertTrue(verify_v2(sts, SECRET, signature))
        auth = SigV2Authorization(AKID, signature)
        verify_v2_request(request, auth, SECRET, now, resource_path=resource_path)

    def test_object_get(self) -> None:
        """
        Object GET, virtual-hosted.
        """
        self._check(
            _request(
                "GET",
                "/photos/puppy.jpg",
                ("Host", "johnsmith.s3.amazonaws.com"),
                ("Date", "Tue, 27 Mar 2007 19:36:42 +0000"),
            ),
            "/johnsmith/photos/puppy.jpg",
            "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg",
            "bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
            datetime(2007, 3, 27, 19, 36, 42, tzinfo=UTC),
        )

    def test_object_put(self) -> None:
        """
        Object PUT, with a content type.
        """
        self._check(
            _request(
                "PUT",
                "/photos/puppy.jpg",
                ("Content-Type", "image/jpeg"),
                ("Content-Length", "94328"),
                ("Host", "johnsmith.s3.amazonaws.com"),
                ("Date", "Tue, 27 Mar 2007 21:15:45 +0000"),
            ),
            "/johnsmith/photos/puppy.jpg",
            "PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n"
            "/johnsmith/photos/puppy.jpg",
            "MyyxeRY7whkBe+bq8fHCL/2kKUg=",
            datetime(2007, 3, 27, 21, 15, 45, tzinfo=UTC),
        )

    def test_list(self) -> None:
        """
        List: the listing parameters are not signed.
        """
        self._check(
            _request(
                "GET",
                "/?prefix=photos&max-keys=50&marker=puppy",
                ("User-Agent", "Mozilla/5.0"),
                ("Host", "johnsmith.s3.amazonaws.com"),
                ("Date", "Tue, 27 Mar 2007 19:42:41 +0000"),
            ),
            "/johnsmith/",
            "GET\n\n\nTue, 27 Mar 2007 19:42:41 +0000\n/johnsmith/",
            "htDYFYduRNen8P9ZfE/s9SuKy0U=",
            datetime(2007, 3, 27, 19, 42, 41, tzinfo=UTC),
        )

    def test_fetch_acl(self) -> None:
        """
        Fetch: the ``acl`` sub-resource is signed.
        """
        self._check(
            _request(
                "GET",
                "/?acl",
                ("Host", "johnsmith.s3.amazonaws.com"),
                ("Date", "Tue, 27 Mar 2007 19:44:46 +0000"),
            ),
            "/johnsmith/",
            "GET\n\n\nTue, 27 Mar 2007 19:44:46 +0000\n/johnsmith/?acl",
            "c2WLPFtWHVgbEmeEG93a4cG37dM=",
            datetime(2007, 3, 27, 19, 44, 46, tzinfo=UTC),
        )

    def test_delete(self) -> None:
        """
        Delete, path-style, dated by ``x-amz-date``: the example signs the
        ``x-amz-date`` value in the date line.
        """
        request = _request(
            "DELETE",
            "/johnsmith/photos/puppy.jpg",
            ("User-Agent", "dotnet"),
            ("Host", "s3.amazonaws.com"),
            ("Date", "Tue, 27 Mar 2007 21:20:27 +0000"),
            ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
        )
        signature = "lx3byBScXR6KzyMaifNkardMwNk="
        auth = SigV2Authorization(AKID, signature)
        now = datetime(2007, 3, 27, 21, 20, 26, tzinfo=UTC)
        verify_v2_request(request, auth, SECRET, now)
        sts = string_to_sign_v2(
            "DELETE",
            "/johnsmith/photos/puppy.jpg",
            "",
            request.headers.without("x-amz-date"),
            None,
            date="Tue, 27 Mar 2007 21:20:26 +0000",
        )
        self.assertEqual(
            sts,
            "DELETE\n\n\nTue, 27 Mar 2007 21:20:26 +0000\n/johnsmith/photos/puppy.jpg",
        )
        self.assertEqual(sign_v2(sts, SECRET), signature)

    def test_upload(self) -> None:
        """
        Upload with ``x-amz-*`` headers, one repeated, and a CNAME bucket.
        """
        self._check(
            _request(
                "PUT",
                "/db-backup.dat.gz",
                ("User-Agent", "curl/7.15.5"),
                ("Host", "static.johnsmith.net:8080"),
                ("Date", "Tue, 27 Mar 2007 21:06:08 +0000"),
                ("x-amz-acl", "public-read"),
                ("content-type", "application/x-download"),
                ("Content-MD5", "4gJE4saaMU4BqNR0kLY+lw=="),
                ("X-Amz-Meta-ReviewedBy", "joe@johnsmith.net"),
                ("X-Amz-Meta-ReviewedBy", "jane@johnsmith.net"),
                ("X-Amz-Meta-FileChecksum", "0x02661779"),
                ("X-Amz-Meta-ChecksumAlgorithm", "crc32"),
                ("Content-Disposition", "attachment; filename=database.dat"),
                ("Content-Encoding", "gzip"),
                ("Content-Length", "5913339"),
            ),
            "/static.johnsmith.net/db-backup.dat.gz",
            "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\n"
            "Tue, 27 Mar 2007 21:06:08 +0000\n"
            "x-amz-acl:public-read\n"
            "x-amz-meta-checksumalgorithm:crc32\n"
            "x-amz-meta-filechecksum:0x02661779\n"
            "x-amz-meta-reviewedby:joe@johnsmith.net,jane@johnsmith.net\n"
            "/static.johnsmith.net/db-backup.dat.gz",
            "ilyl83RwaSoYIEdixDQcA4OnAnc=",
            datetime(2007, 3, 27, 21, 6, 8, tzinfo=UTC),
        )

    def test_list_all_buckets(self) -> None:
        """
        List all my buckets.
        """
        self._check(
            _request(
                "GET",
                "/",
                ("Host", "s3.us-west-1.amazonaws.com"),
                ("Date", "Wed, 28 Mar 2007 01:29:59 +0000"),
            ),
            None,
            "GET\n\n\nWed, 28 Mar 2007 01:29:59 +0000\n/",
            "qGdzdERIC03wnaRNKh6OqZehG9s=",
            datetime(2007, 3, 28, 1, 29, 59, tzinfo=UTC),
        )

    def test_unicode_keys(self) -> None:
        """
        Unicode keys: the path is signed as sent, lower-case escapes too.
        """
        self._check(
            _request(
                "GET",
                "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
                ("Host", "s3.us-west-1.amazonaws.com"),
                ("Date", "Wed, 28 Mar 2007 01:49:49 +0000"),
            ),
            None,
            "GET\n\n\nWed, 28 Mar 2007 01:49:49 +0000\n"
            "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
            "DNEZGsoieTZ92F3bUfSPQcbGmlM=",
            datetime(2007, 3, 28, 1, 49, 49, tzinfo=UTC),
        )

    def test_query_string(self) -> None:
        """
        Query string authentication: ``Expires`` replaces the date.
        """
        request = _request(
            "GET",
            "/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE"
            "&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D",
            ("Host", "johnsmith.s3.amazonaws.com"),
        )
        auth = parse_presigned_v2(parse_qsl(request.raw_query.decode()))
        self.assertEqual(
            auth,
            SigV2Authorization(AKID, "NpgCjnDzrM+WFzoENXmpNDUsSn8=", "1175139620"),
        )
        assert auth is not None
        self.assertEqual(auth.expires_epoch, 1175139620)
        sts = string_to_sign_v2(
            "GET", "/johnsmith/photos/puppy.jpg", "", request.headers, auth.expires
        )
        self.assertEqual(sts, "GET\n\n\n1175139620\n/johnsmith/photos/puppy.jpg")
        now = datetime.fromtimestamp(1175139620, UTC)
        verify_v2_request(
            request, auth, SECRET, now, resource_path="/johnsmith/photos/puppy.jpg"
        )


class ParseTests(SynchronousTestCase):
    """
    Tests for L{parse_authorization_v2} and L{parse_presigned_v2}.
    """

    def test_authorization(self) -> None:
        """
        ``AWS AKID:signature`` is parsed; other schemes are not SigV2.
        """
        self.assertEqual(
            parse_authorization_v2(" AWS AKID:abc/+= "),
            SigV2Authorization("AKID", "abc/+="),
        )
        for other in ("AWS4-HMAC-SHA256 Credential=x", "Bearer x", "", "AWS:x"):
            self.assertIsNone(parse_authorization_v2(other), other)

    def test_authorization_malformed(self) -> None:
        """
        ``AWS`` followed by anything but ``AKID:signature`` is refused.
        """
        for value in ("AWS AKID", "AWS :sig", "AWS AKID:", "AWS "):
            error = _error(self, "InvalidArgument", parse_authorization_v2, value)
            self.assertIn(("ArgumentName", "Authorization"), error.extra)

    def test_presigned(self) -> None:
        """
        The three parameters are found; a space in the signature was a plus.
        """
        params = [
            ("prefix", "x"),
            ("Signature", "a b="),
            ("Expires", "1700000000"),
            ("AWSAccessKeyId", "AKID"),
        ]
        self.assertEqual(
            parse_presigned_v2(params), SigV2Authorization("AKID", "a+b=", "1700000000")
        )
        self.assertIsNone(parse_presigned_v2([("prefix", "x")]))

    def test_presigned_incomplete(self) -> None:
        """
        Some but not all of the parameters, or a bad ``Expires``, are refused.
        """
        complete = {"AWSAccessKeyId": "AKID", "Signature": "s", "Expires": "1"}
        for missing in complete:
            params = [(k, v) for k, v in complete.items() if k != missing]
            _error(self, "AccessDenied", parse_presigned_v2, params)
        empty = [("AWSAccessKeyId", "AKID"), ("Signature", ""), ("Expires", "1")]
        _error(self, "AccessDenied", parse_presigned_v2, empty)
        for expires in ("soon", "-1", "1.5", "\u0663"):
            params = [*{**complete, "Expires": expires}.items()]
            error = _error(self, "AccessDenied", parse_presigned_v2, params)
            self.assertIn("seconds since epoch", error.message)


class CanonicalResourceTests(SynchronousTestCase):
    """
    Tests for L{canonical_resource}.
    """

    def test_sub_resources(self) -> None:
        """
        Only sub-resources are kept, sorted by name, with decoded values.
        """
        self.assertEqual(
            canonical_resource(
                "/b/k",
                "versionId=v%2F1&prefix=p&uploadId=u&response-content-type=a%2Fb+c"
                "&acl&x-id=GetObject",
            ),
            "/b/k?acl&response-content-type=a/b+c&uploadId=u&versionId=v/1",
        )

    def test_empty_values(self) -> None:
        """
        ``name=`` stays as sent unless asked to write it bare.
        """
        self.assertEqual(canonical_resource("/b", "uploads="), "/b?uploads=")
        self.assertEqual(
            canonical_resource("/b", "uploads=", bare_empty=True), "/b?uploads"
        )

    def test_none(self) -> None:
        """
        Without sub-resources the resource is the path; an empty path is ``/``.
        """
        self.assertEqual(canonical_resource("/b/k", "prefix=a&max-keys=1"), "/b/k")
        self.assertEqual(canonical_resource("", ""), "/")

    def test_documented_names(self) -> None:
        """
        The sub-resources named by the S3 documentation are all signed.
        """
        documented = {
            "acl",
            "lifecycle",
            "location",
            "logging",
            "notification",
            "partNumber",
            "policy",
            "requestPayment",
            "torrent",
            "uploadId",
            "uploads",
            "versionId",
            "versioning",
            "versions",
            "website",
            "delete",
            "tagging",
            "cors",
            "response-content-type",
            "response-content-language",
            "response-expires",
            "response-cache-control",
            "response-content-disposition",
            "response-content-encoding",
        }
        self.assertLessEqual(documented, SUB_RESOURCES)


class StringToSignTests(SynchronousTestCase):
    """
    Tests for L{string_to_sign_v2}.
    """

    def test_x_amz_date(self) -> None:
        """
        With ``x-amz-date`` the date line is empty and the header is signed.
        """
        headers = HeaderList.of(date="D", x_amz_date="X")
        self.assertEqual(
            string_to_sign_v2("GET", "/b", "", headers, None),
            "GET\n\n\n\nx-amz-date:X\n/b",
        )
        self.assertEqual(
            string_to_sign_v2("GET", "/b", "", headers, None, date="D"),
            "GET\n\n\nD\nx-amz-date:X\n/b",
        )

    def test_trimmed(self) -> None:
        """
        Values are trimmed, inside spaces kept; names lower-case.
        """
        headers = HeaderList.of(
            ("Content-Type", " text/plain "), ("X-Amz-Meta-A", "  a  b "), date="D"
        )
        self.assertEqual(
            string_to_sign_v2("PUT", "/b", "", headers, None),
            "PUT\n\ntext/plain\nD\nx-amz-meta-a:a  b\n/b",
        )

    def test_query_headers(self) -> None:
        """
        For query authentication, ``x-amz-*`` parameters are signed as
        headers, and ``Content-Type`` may come from the query.
        """
        query = (
            "AWSAccessKeyId=A&Signature=S&Expires=9&x-amz-security-token=t%2Fk"
            "&content-type=text%2Fplain"
        )
        self.assertEqual(
            string_to_sign_v2("GET", "/b/k", query, HeaderList(), "9"),
            "GET\n\ntext/plain\n9\nx-amz-security-token:t/k\n/b/k",
        )
        headers = HeaderList.of(content_type="image/png")
        self.assertEqual(
            string_to_sign_v2("GET", "/b/k", query, headers, "9"),
            "GET\n\nimage/png\n9\nx-amz-security-token:t/k\n/b/k",
        )


class VerifyTests(SynchronousTestCase):
    """
    Tests for L{verify_v2_request}'s checks.
    """

    def _signed(
        self, *fields: tuple[str, str]
    ) -> tuple[IncomingRequest, SigV2Authorization]:
        request = _request("GET", "/b/k?acl", *fields)
        sts = string_to_sign_v2("GET", "/b/k", "acl", request.headers, None)
        return request, SigV2Authorization(AKID, sign_v2(sts, SECRET))

    def test_verified(self) -> None:
        """
        A signed request verifies; a wrong secret does not.
        """
        request, auth = self._signed(("date", formatdate(NOW.timestamp())))
        verify_v2_request(request, auth, SECRET, NOW)
        error = _error(
            self, "SignatureDoesNotMatch", verify_v2_request, request, auth, "x", NOW
        )
        extra = dict(error.extra)
        self.assertEqual(extra["AWSAccessKeyId"], AKID)
        self.assertEqual(extra["SignatureProvided"], auth.signature)
        self.assertTrue(extra["StringToSign"].startswith("GET\n\n\n"))
        self.assertTrue(extra["StringToSign"].endswith("\n/b/k?acl"))
        self.assertTrue(extra["StringToSignBytes"].startswith("47 45 54 0a"))

    def test_date_required(self) -> None:
        """
        Without a valid date the request is refused.
        """
        for fields in ((), (("date", "yesterday"),), (("x-amz-date", ""),)):
            request, auth = self._signed(*fields)
            error = _error(
                self, "AccessDenied", verify_v2_request, request, auth, SECRET, NOW
            )
            self.assertEqual(
                error.message,
                "AWS authentication requires a valid Date or x-amz-date header",
            )

    def test_x_amz_date_first(self) -> None:
        """
        ``x-amz-date`` gives the request time when both are sent; an ISO 8601
        basic time is accepted.
        """
        for amz_date in (formatdate(NOW.timestamp()), "20240229T131415Z"):
            request, auth = self._signed(("date", "garbage"), ("x-amz-date", amz_date))
            verify_v2_request(request, auth, SECRET, NOW)

    def test_skew(self) -> None:
        """
        A request more than 15 minutes away is refused, with the times.
        """
        sent = NOW + timedelta(seconds=901)
        request, auth = self._signed(
            ("date", formatdate(sent.timestamp(), usegmt=True))
        )
        error = _error(
            self, "RequestTimeTooSkewed", verify_v2_request, request, auth, SECRET, NOW
        )
        self.assertEqual(
            error.extra,
            (
                ("RequestTime", "Thu, 29 Feb 2024 13:29:16 GMT"),
                ("ServerTime", "2024-02-29T13:14:15Z"),
                ("MaxAllowedSkewMilliseconds", "900000"),
            ),
        )
        verify_v2_request(request, auth, SECRET, NOW + timedelta(seconds=1))

    def test_expired(self) -> None:
        """
        A presigned request is valid until its ``Expires`` second, included.
        """
        expires = str(int(NOW.timestamp()))
        request = _request("GET", f"/b/k?Expires={expires}")
        sts = string_to_sign_v2("GET", "/b/k", "", request.headers, expires)
        auth = SigV2Authorization(AKID, sign_v2(sts, SECRET), expires)
        verify_v2_request(request, auth, SECRET, NOW)
        later = NOW + timedelta(seconds=1)
        error = _error(
            self, "AccessDenied", verify_v2_request, request, auth, SECRET, later
        )
        self.assertEqual(error.message, "Request has expired")
        self.assertEqual(
            error.extra,
            (
                ("Expires", "2024-02-29T13:14:15Z"),
                ("ServerTime", "2024-02-29T13:14:16Z"),
            ),
        )

    def test_expires_extremes(self) -> None:
        """
        An ``Expires`` beyond the calendar is not expired; the epoch is.
        """
        request = _request("GET", "/b/k")
        huge = SigV2Authorization(AKID, "x", "9" * 30)
        _error(
            self, "SignatureDoesNotMatch", verify_v2_request, request, huge, SECRET, NOW
        )
        error = _error(
            self,
            "AccessDenied",
            verify_v2_request,
            request,
            evolve(huge, expires="0"),
            SECRET,
            NOW,
        )
        self.assertEqual(error.extra[0], ("Expires", "1970-01-01T00:00:00Z"))

    def test_naive_now(self) -> None:
        """
        A naive current time is a programming error.
        """
        request = _request("GET", "/b/k")
        auth = SigV2Authorization(AKID, "x", "1")
        self.assertRaises(
            ValueError, verify_v2_request, request, auth, SECRET, datetime(2024, 1, 1)
        )

    def test_tampered(self) -> None:
        """
        Changing the method, path, a sub-resource or an ``x-amz-*`` header
        breaks the signature; other parameters are not signed.
        """
        request, auth = self._signed(
            ("date", formatdate(NOW.timestamp())), ("x-amz-meta-a", "1")
        )
        verify_v2_request(evolve(request, raw_query=b"acl&prefix=x"), auth, SECRET, NOW)
        for tampered in (
            evolve(request, method="PUT"),
            evolve(request, raw_path=b"/b/j"),
            evolve(request, raw_query=b"acl&versionId=1"),
            evolve(request, raw_query=b""),
            evolve(request, headers=request.headers.with_("x-amz-meta-a", "2")),
            evolve(request, headers=request.headers.plus([("x-amz-acl", "x")])),
            evolve(request, headers=request.headers.plus([("content-type", "x")])),
        ):
            _error(
                self,
                "SignatureDoesNotMatch",
                verify_v2_request,
                tampered,
                auth,
                SECRET,
                NOW,
            )

    def test_path_encodings(self) -> None:
        """
        A path sent encoded otherwise than it was signed verifies.
        """
        fields = ("date", formatdate(NOW.timestamp()))
        sts = string_to_sign_v2("GET", "/b/a%24b%20c", "", HeaderList.of(fields), None)
        auth = SigV2Authorization(AKID, sign_v2(sts, SECRET))
        for path in ("/b/a%24b%20c", "/b/a$b%20c", "/b/a$b c"):
            verify_v2_request(_request("GET", path, fields), auth, SECRET, NOW)

    def test_bare_sub_resource(self) -> None:
        """
        A sub-resource sent as ``uploads=`` but signed as ``uploads`` verifies.
        """
        fields = ("date", formatdate(NOW.timestamp()))
        sts = string_to_sign_v2("POST", "/b/k", "uploads", HeaderList.of(fields), None)
        auth = SigV2Authorization(AKID, sign_v2(sts, SECRET))
        verify_v2_request(_request("POST", "/b/k?uploads=", fields), auth, SECRET, NOW)


class _FixedHmacV1Auth(HmacV1Auth):  # type: ignore[misc]
    """
    botocore's SigV2 header signer at a fixed time.
    """

    def _get_date(self) -> str:
        return formatdate(NOW.timestamp(), usegmt=True)


class _FixedHmacV1QueryAuth(HmacV1QueryAuth):  # type: ignore[misc]
    """
    botocore's SigV2 presigner at a fixed time.
    """

    def _get_date(self) -> str:
        return str(int(NOW.timestamp()) + int(self._expires))


def _received(method: str, url: str, headers: Any) -> IncomingRequest:
    parts = urlsplit(url)
    return IncomingRequest(
        method=method,
        raw_path=parts.path.encode("latin-1"),
        raw_query=parts.query.encode("latin-1"),
        headers=HeaderList([("host", parts.netloc), *headers.items()]),
    )


def _url(key: str, query: str = "") -> str:
    url = f"{ENDPOINT}/bucket/{percent_encode(key, safe='/~')}"
    return f"{url}?{query}" if query else url


class BotocoreTests(SynchronousTestCase):
    """
    Requests signed by botocore's SigV2 signers verify.
    """

    def _sign(
        self, method: str, url: str, headers: dict[str, str], token: str | None = None
    ) -> IncomingRequest:
        request = AWSRequest(method=method, url=url, headers=headers)
        _FixedHmacV1Auth(Credentials(AKID, SECRET, token)).add_auth(request)
        return _received(method, request.url, request.headers)

    def test_header_auth(self) -> None:
        """
        Header-signed requests verify, keys and sub-resources with any
        characters.
        """
        for key in AWKWARD_KEYS:
            value = percent_encode(f'attachment; filename="{key}"', safe="-_.~")
            for query in ("", "acl", f"response-content-disposition={value}&x=1"):
                received = self._sign(
                    "PUT",
                    _url(key, query),
                    {"Content-Type": "text/plain", "x-amz-meta-note": " a  b "},
                )
                auth = _header_auth(received)
                verify_v2_request(received, auth, SECRET, NOW)

    def test_session_token(self) -> None:
        """
        Temporary credentials sign their token header.
        """
        received = self._sign("GET", _url("k"), {}, token="session/token+=")
        self.assertEqual(
            received.headers.get("x-amz-security-token"), "session/token+="
        )
        verify_v2_request(received, _header_auth(received), SECRET, NOW)

    def test_virtual_host(self) -> None:
        """
        A virtual-hosted request verifies against ``/bucket`` + path.
        """
        request = AWSRequest(method="GET", url="http://bucket.s3.example/k%20x")
        request.auth_path = "/bucket/k%20x"
        _FixedHmacV1Auth(Credentials(AKID, SECRET)).add_auth(request)
        received = _received("GET", request.url, request.headers)
        auth = _header_auth(received)
        _error(
            self,
            "SignatureDoesNotMatch",
            verify_v2_request,
            received,
            auth,
            SECRET,
            NOW,
        )
        verify_v2_request(received, auth, SECRET, NOW, resource_path="/bucket/k%20x")

    def test_presigned(self) -> None:
        """
        Presigned URLs verify until they expire, with and without a token.
        """
        for key in AWKWARD_KEYS:
            for token in (None, "session/token+="):
                request = AWSRequest(method="GET", url=_url(key, "versionId=v1"))
                _FixedHmacV1QueryAuth(
                    Credentials(AKID, SECRET, token), expires=300
                ).add_auth(request)
                # The URL is all the client uses.
                received = _received("GET", request.url, {})
                params = parse_qsl(received.raw_query.decode(), keep_blank_values=True)
                auth = parse_presigned_v2(params)
                assert auth is not None
                verify_v2_request(received, auth, SECRET, NOW + timedelta(seconds=300))
                _error(
                    self,
                    "AccessDenied",
                    verify_v2_request,
                    received,
                    auth,
                    SECRET,
                    NOW + timedelta(seconds=301),
                )
                moved = evolve(received, raw_path=received.raw_path + b"x")
                _error(
                    self,
                    "SignatureDoesNotMatch",
                    verify_v2_request,
                    moved,
                    auth,
                    SECRET,
                    NOW,
                )


class PropertyTests(SynchronousTestCase):
    """
    botocore-signed requests verify, and changing what was signed breaks them.
    """

    @given(
        st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
    )
    def test_round_trip(self, key: str, meta: str) -> None:
        """
        Whatever botocore signs verifies.
        """
        request = AWSRequest(
            method="PUT", url=_url(key), headers={"x-amz-meta-m": meta}
        )
        _FixedHmacV1Auth(Credentials(AKID, SECRET)).add_auth(request)
        received = _received("PUT", request.url, request.headers)
        verify_v2_request(received, _header_auth(received), SECRET, NOW)

    @given(st.text(max_size=40), st.integers(0, 26), st.sampled_from("Aa0+/="))
    def test_signature_flip(self, text: str, index: int, new: str) -> None:
        """
        Changing any character of a signature makes it fail.
        """
        signature = sign_v2(text, SECRET)
        assume(signature[index] != new)
        flipped = signature[:index] + new + signature[index + 1 :]
        self.assertTrue(verify_v2(text, SECRET, signature))
        self.assertFalse(verify_v2(text, SECRET, flipped))

    @given(
        st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30),
        st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30),
    )
    def test_other_key(self, key: str, other: str) -> None:
        """
        A signature for one key does not verify another.
        """
        assume(key != other)
        request = AWSRequest(method="GET", url=_url(key))
        _FixedHmacV1Auth(Credentials(AKID, SECRET)).add_auth(request)
        received = _received("GET", request.url, request.headers)
        moved = evolve(received, raw_path=urlsplit(_url(other)).path.encode())
        _error(
            self,
            "SignatureDoesNotMatch",
            verify_v2_request,
            moved,
            _header_auth(received),
            SECRET,
            NOW,
        )
