"""
Tests for L{multistore.s3.request}.
"""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from multistore.headers import HeaderList
from multistore.model import IncomingRequest
from multistore.s3.errors import S3Error
from multistore.s3.request import host_bucket, parse_operation, parse_query


def request(
    method: str, target: bytes, host: str = "127.0.0.1:8080", **headers: str
) -> IncomingRequest:
    path, _, query = target.partition(b"?")
    return IncomingRequest(
        method=method,
        raw_path=path,
        raw_query=query,
        headers=HeaderList([("host", host), *headers.items()]),
    )


class ParseQueryTests(SynchronousTestCase):
    """
    Tests for L{parse_query}.
    """

    def test_decodes(self) -> None:
        """
        Names and values are percent-decoded, ``+`` is a space, and a bare
        name has the empty value.
        """
        self.assertEqual(
            parse_query(b"prefix=a%2Fb+c&uploads&x=%E2%9C%93&&y="),
            [("prefix", "a/b c"), ("uploads", ""), ("x", "\u2713"), ("y", "")],
        )

    def test_invalid_utf8(self) -> None:
        """
        A value that is not UTF-8 is an ``InvalidURI``.
        """
        with self.assertRaises(S3Error) as e:
            parse_query(b"prefix=%FF")
        self.assertEqual(e.exception.code, "InvalidURI")


class HostBucketTests(SynchronousTestCase):
    """
    Tests for L{host_bucket}.
    """

    def test_virtual_host(self) -> None:
        """
        A host under a configured domain names a bucket, port or not, any
        case; the bucket may contain dots.
        """
        domains = ("s3.example.com",)
        self.assertEqual(host_bucket("data.s3.example.com:8080", domains), "data")
        self.assertEqual(host_bucket("My.Data.S3.Example.com", domains), "my.data")

    def test_path_style(self) -> None:
        """
        The domain itself, other hosts, IPv6 literals and no domains at all
        mean path-style.
        """
        domains = ("s3.example.com",)
        self.assertIsNone(host_bucket("s3.example.com", domains))
        self.assertIsNone(host_bucket("xs3.example.com", domains))
        self.assertIsNone(host_bucket("[::1]:8080", domains))
        self.assertIsNone(host_bucket("a.s3.example.com", ()))


class ParseOperationTests(SynchronousTestCase):
    """
    Tests for L{parse_operation}.
    """

    def parse(
        self, method: str, target: bytes, **kw: str
    ) -> tuple[str, str | None, str | None, str | None]:
        op = parse_operation(request(method, target, **kw))
        return op.name, op.action, op.bucket, op.key

    def test_read_operations(self) -> None:
        """
        The read path's operations are recognised with their actions.
        """
        cases = {
            ("GET", b"/"): ("ListBuckets", None, None, None),
            ("GET", b"/b"): ("ListObjects", "list_bucket", "b", None),
            ("GET", b"/b/"): ("ListObjects", "list_bucket", "b", None),
            ("GET", b"/b?list-type=2&prefix=x"): (
                "ListObjectsV2",
                "list_bucket",
                "b",
                None,
            ),
            ("GET", b"/b?location"): ("GetBucketLocation", None, "b", None),
            ("HEAD", b"/b"): ("HeadBucket", None, "b", None),
            ("GET", b"/b/k"): ("GetObject", "get_object", "b", "k"),
            ("GET", b"/b/k?versionId=3"): ("GetObject", "get_object_version", "b", "k"),
            ("HEAD", b"/b/k"): ("HeadObject", "head_object", "b", "k"),
            ("GET", b"/b/k?x-id=GetObject"): ("GetObject", "get_object", "b", "k"),
        }
        for (method, target), expected in cases.items():
            self.assertEqual(self.parse(method, target), expected, (method, target))

    def test_write_operations(self) -> None:
        """
        Write operations are recognised (and never confused with reads).
        """
        cases = {
            ("PUT", b"/b/k"): "PutObject",
            ("PUT", b"/b/k?uploadId=u&partNumber=1"): "UploadPart",
            ("POST", b"/b/k?uploads"): "CreateMultipartUpload",
            ("POST", b"/b/k?uploadId=u"): "CompleteMultipartUpload",
            ("DELETE", b"/b/k?uploadId=u"): "AbortMultipartUpload",
            ("GET", b"/b/k?uploadId=u"): "ListParts",
            ("DELETE", b"/b/k"): "DeleteObject",
            ("POST", b"/b?delete"): "DeleteObjects",
            ("PUT", b"/b"): "CreateBucket",
            ("DELETE", b"/b"): "DeleteBucket",
            ("GET", b"/b?uploads"): "ListMultipartUploads",
        }
        for (method, target), expected in cases.items():
            self.assertEqual(self.parse(method, target)[0], expected, (method, target))
        self.assertEqual(
            self.parse("PUT", b"/b/k", **{"x-amz-copy-source": "/a/b"})[0], "CopyObject"
        )

    def test_subresources_not_implemented(self) -> None:
        """
        Sub-resources that are not implemented answer ``NotImplemented``
        whatever the method: a PUT ?tagging never overwrites an object, a
        DELETE ?tagging never deletes one, a GET ?acl never lists.
        """
        for method, target in [
            ("GET", b"/b?acl"),
            ("GET", b"/b?policy"),
            ("GET", b"/b?versioning"),
            ("PUT", b"/b?cors"),
            ("GET", b"/b/k?acl"),
            ("PUT", b"/b/k?tagging"),
            ("DELETE", b"/b/k?tagging"),
            ("GET", b"/b/k?attributes"),
            ("GET", b"/b/k?policy"),
            ("DELETE", b"/b/k?cors"),
        ]:
            with self.assertRaises(S3Error) as e:
                self.parse(method, target)
            self.assertEqual(
                (e.exception.code, e.exception.status), ("NotImplemented", 501)
            )

    def test_keys_byte_faithful(self) -> None:
        """
        Keys are the path percent-decoded once: ``+`` stays a plus, ``%25``
        is a percent, ``%2F`` a slash; empty segments and trailing slashes
        are kept.
        """
        cases = {
            b"/b/a+b": "a+b",
            b"/b/100%25.txt": "100%.txt",
            b"/b/100%253D": "100%3D",
            b"/b/a%20b/c%2Fd": "a b/c/d",
            b"/b/caf%C3%A9/na%C3%AFve": "caf\u00e9/na\u00efve",
            b"/b/a//b": "a//b",
            b"/b/dir/": "dir/",
            b"/b/%2A%23~%5B1%5D=": "*#~[1]=",
            b"/b/*#": "*#",
        }
        for target, key in cases.items():
            self.assertEqual(self.parse("GET", target)[3], key, target)

    def test_dot_segments_refused(self) -> None:
        """
        Keys with ``.`` or ``..`` segments are refused with a 400.
        """
        for target in [b"/b/..", b"/b/a/../c", b"/b/./x", b"/b/a/%2E%2E/c"]:
            with self.assertRaises(S3Error) as e:
                self.parse("GET", target)
            self.assertEqual(e.exception.status, 400, target)

    def test_virtual_hosted(self) -> None:
        """
        With a domain, the bucket comes from the host and the whole path is
        the key.
        """
        op = parse_operation(
            request("GET", b"/a/b%20c", host="data.s3.test:80"), ("s3.test",)
        )
        self.assertEqual(
            (op.name, op.bucket, op.key, op.virtual_host),
            ("GetObject", "data", "a/b c", True),
        )
        op = parse_operation(
            request("GET", b"/?list-type=2", host="data.s3.test"), ("s3.test",)
        )
        self.assertEqual((op.name, op.bucket, op.key), ("ListObjectsV2", "data", None))

    def test_bad_methods(self) -> None:
        """
        Methods S3 does not serve, and non-GET on the service root, are
        ``MethodNotAllowed``.
        """
        for method, target in [("PATCH", b"/b/k"), ("PUT", b"/"), ("OPTIONS", b"/b")]:
            with self.assertRaises(S3Error) as e:
                self.parse(method, target)
            self.assertEqual(e.exception.code, "MethodNotAllowed")

    def test_malformed_paths(self) -> None:
        """
        A relative path or a path that is not UTF-8 is ``InvalidURI``.
        """
        for target in [b"b/k", b"/b/%FF"]:
            with self.assertRaises(S3Error) as e:
                self.parse("GET", target)
            self.assertEqual(e.exception.code, "InvalidURI")

    @given(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",)),
            min_size=1,
            max_size=60,
        ).filter(lambda k: not {".", ".."} & set(k.split("/")))
    )
    def test_any_key_round_trips(self, key: str) -> None:
        """
        Any key, percent-encoded by a client, parses back to itself.
        """
        raw = quote(key, safe="/").encode("ascii")
        self.assertEqual(self.parse("GET", b"/bucket/" + raw)[3], key)
