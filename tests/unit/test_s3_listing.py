"""
Tests for L{multistore.s3.listing}.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from multistore.model import ListPage, ListRequest, ObjectInfo
from multistore.s3.documents import list_objects_document
from multistore.s3.errors import S3Error
from multistore.s3.keys import from_backend
from multistore.s3.listing import (
    MAX_KEYS,
    SENTINEL,
    ListEntry,
    ListParams,
    ListResult,
    Position,
    decode_token,
    empty_result,
    encode_token,
    list_result,
    parse_list_params,
    store_request,
    url_encode,
    utf8_bytes,
)

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
WHEN = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
OWNER = ("owner-id", "owner-name")
ODD_KEYS = [
    "with space/file name.txt",
    "100%.txt",
    "a+b=c.bin",
    "unicode/café/naïve.txt",
    "report*.pdf",
    "tilde~hash#.bin",
    "brackets[1].bin",
    "literal-%3D-triplet.txt",
]


def obj(key: str, size: int = 1, etag: str = '"e"') -> ObjectInfo:
    """
    A listed object with a fixed time.
    """
    return ObjectInfo(key=key, size=size, last_modified=WHEN, etag=etag)


def v1(**query: str) -> ListParams:
    """
    Parse ListObjects parameters given as keywords (``_`` for ``-``).
    """
    return parse_list_params({k.replace("_", "-"): v for k, v in query.items()}, 1)


def v2(**query: str) -> ListParams:
    """
    Parse ListObjectsV2 parameters given as keywords (``_`` for ``-``).
    """
    return parse_list_params({k.replace("_", "-"): v for k, v in query.items()}, 2)


def keys_of(result: ListResult) -> list[str]:
    """
    The keys of a result's contents.
    """
    return [entry.key for entry in result.contents]


def raw_token(document: object) -> str:
    """
    A token holding any JSON document.
    """
    data = json.dumps(document).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ParseListParamsTests(SynchronousTestCase):
    """
    Tests for L{parse_list_params}.
    """

    def assert_invalid(
        self, query: Mapping[str, str], version: int, name: str
    ) -> S3Error:
        """
        Assert that a query is refused with ``InvalidArgument`` naming
        ``name``.
        """
        error = self.assertRaises(S3Error, parse_list_params, query, version)
        self.assertEqual(error.code, "InvalidArgument")
        self.assertEqual(error.status, 400)
        self.assertEqual(error.extra[0], ("ArgumentName", name))
        return error

    def test_defaults(self) -> None:
        """
        Without parameters, a listing has no prefix, no delimiter, 1000 keys
        and no encoding.
        """
        self.assertEqual(v1(), ListParams(version=1))
        self.assertEqual(v2(), ListParams(version=2))
        self.assertEqual(v2().max_keys, 1000)

    def test_all_v2(self) -> None:
        """
        Every V2 parameter is read; V1's ``marker`` is ignored.
        """
        token = encode_token("a", False, None)
        self.assertEqual(
            v2(
                prefix="p/",
                delimiter="/",
                max_keys="7",
                encoding_type="url",
                start_after="p/a",
                continuation_token=token,
                fetch_owner="true",
                marker="ignored",
            ),
            ListParams(
                version=2,
                prefix="p/",
                delimiter="/",
                max_keys=7,
                encoding_type="url",
                start_after="p/a",
                continuation_token=token,
                fetch_owner=True,
            ),
        )

    def test_all_v1(self) -> None:
        """
        Every V1 parameter is read; V2's are ignored.
        """
        self.assertEqual(
            v1(
                prefix="p/",
                delimiter="/",
                max_keys="7",
                encoding_type="url",
                marker="p/a",
                start_after="ignored",
                continuation_token="ignored",
                fetch_owner="true",
            ),
            ListParams(
                version=1,
                prefix="p/",
                delimiter="/",
                max_keys=7,
                encoding_type="url",
                marker="p/a",
            ),
        )

    def test_empty_values(self) -> None:
        """
        An empty delimiter, marker or start-after is none at all.
        """
        self.assertIsNone(v2(delimiter="").delimiter)
        self.assertIsNone(v2(start_after="").start_after)
        self.assertIsNone(v1(marker="").marker)

    def test_fetch_owner(self) -> None:
        """
        ``fetch-owner`` is on only for ``true`` (any case).
        """
        self.assertTrue(v2(fetch_owner="True").fetch_owner)
        self.assertFalse(v2(fetch_owner="false").fetch_owner)
        self.assertFalse(v2(fetch_owner="1").fetch_owner)

    def test_max_keys_capped(self) -> None:
        """
        ``max-keys`` above 1000 is 1000, however large.
        """
        self.assertEqual(v2(max_keys="1000").max_keys, 1000)
        self.assertEqual(v2(max_keys="1001").max_keys, 1000)
        self.assertEqual(v2(max_keys="2147483648").max_keys, 1000)
        self.assertEqual(v2(max_keys="9" * 5000).max_keys, 1000)
        self.assertEqual(v2(max_keys="0001").max_keys, 1)

    def test_max_keys_zero(self) -> None:
        """
        ``max-keys=0`` is allowed.
        """
        self.assertEqual(v2(max_keys="0").max_keys, 0)
        self.assertEqual(v1(max_keys="-0").max_keys, 0)

    def test_max_keys_invalid(self) -> None:
        """
        A negative or non-integer ``max-keys`` is ``InvalidArgument`` with the
        argument's name and value.
        """
        for value in ["-1", "abc", "1.5", "", " 5", "+5", "5_0", "\u0661"]:
            for version in (1, 2):
                error = self.assert_invalid({"max-keys": value}, version, "max-keys")
                self.assertEqual(error.extra[1], ("ArgumentValue", value))

    @given(st.text(max_size=30))
    def test_max_keys_any(self, value: str) -> None:
        """
        Any ``max-keys`` gives 0 to 1000 or ``InvalidArgument``, nothing
        else.
        """
        try:
            params = v2(max_keys=value)
        except S3Error as error:
            self.assertEqual(error.code, "InvalidArgument")
        else:
            self.assertTrue(0 <= params.max_keys <= MAX_KEYS)
            self.assertEqual(params.max_keys, min(int(value), MAX_KEYS))

    def test_encoding_type(self) -> None:
        """
        ``encoding-type`` is ``url`` or absent; anything else is
        ``InvalidArgument``.
        """
        self.assertEqual(v1(encoding_type="url").encoding_type, "url")
        for value in ["URL", "base64", ""]:
            error = self.assert_invalid({"encoding-type": value}, 2, "encoding-type")
            self.assertEqual(error.extra[1], ("ArgumentValue", value))

    def test_bad_continuation_token(self) -> None:
        """
        A V2 continuation token that is not ours is refused up front.
        """
        self.assert_invalid({"continuation-token": "nope!"}, 2, "continuation-token")
        self.assert_invalid({"continuation-token": ""}, 2, "continuation-token")

    def test_bad_version(self) -> None:
        """
        Only versions 1 and 2 exist.
        """
        self.assertRaises(ValueError, parse_list_params, {}, 3)


class TokenTests(SynchronousTestCase):
    """
    Tests for L{encode_token} and L{decode_token}.
    """

    def assert_refused(self, token: str) -> None:
        """
        Assert that a token is refused as S3 does.
        """
        error = self.assertRaises(S3Error, decode_token, token)
        self.assertEqual(error.code, "InvalidArgument")
        self.assertEqual(error.message, "The continuation token provided is incorrect")
        self.assertEqual(error.extra, (("ArgumentName", "continuation-token"),))

    @given(
        st.text(st.characters(blacklist_categories=())),
        st.booleans(),
        st.none() | st.text(),
    )
    def test_round_trip(
        self, position: str, skip_prefix: bool, store_token: str | None
    ) -> None:
        """
        A token gives back what it was made of, whatever the key (lone
        surrogates included), and is base64url without padding.
        """
        token = encode_token(position, skip_prefix, store_token)
        self.assertRegex(token, r"\A[A-Za-z0-9_-]+\Z")
        self.assertEqual(
            decode_token(token), Position(position, skip_prefix, store_token)
        )

    def test_compact(self) -> None:
        """
        A token is compact JSON.
        """
        token = encode_token("a/b", True, None)
        padded = token + "=" * (-len(token) % 4)
        self.assertEqual(base64.urlsafe_b64decode(padded), b'[1,"a/b",true,null]')

    def test_garbage(self) -> None:
        """
        Text that is not base64url JSON is refused.
        """
        for token in ["", "!!!!", "a", "abc=", "YWJj", "a b", "////", "é"]:
            self.assert_refused(token)

    def test_wrong_shape(self) -> None:
        """
        JSON of the wrong shape is refused.
        """
        for document in [
            {"p": "a"},
            [1, "a", False],
            [1, "a", False, None, None],
            [2, "a", False, None],
            [True, "a", False, None],
            [1.0, "a", False, None],
            [1, 5, False, None],
            [1, "a", 0, None],
            [1, "a", False, 7],
            "text",
            None,
        ]:
            self.assert_refused(raw_token(document))

    def test_deep_nesting(self) -> None:
        """
        Deeply nested JSON is refused, not a crash.
        """
        self.assert_refused(
            base64.urlsafe_b64encode(b"[" * 50000).rstrip(b"=").decode()
        )

    def test_too_long(self) -> None:
        """
        An absurdly long token is refused before decoding.
        """
        self.assert_refused("A" * 100000)

    @given(st.text(max_size=60))
    def test_any_text(self, token: str) -> None:
        """
        Any text decodes to a position or is refused as S3 does.
        """
        try:
            position = decode_token(token)
        except S3Error as error:
            self.assertEqual(error.code, "InvalidArgument")
        else:
            self.assertIsInstance(position, Position)


class UrlEncodeTests(SynchronousTestCase):
    """
    Tests for L{url_encode} and L{utf8_bytes}.
    """

    def test_unreserved_and_slash(self) -> None:
        """
        RFC 3986 unreserved characters and ``/`` stay as they are.
        """
        value = "AZaz09-._~/"
        self.assertEqual(url_encode(value), value)

    def test_everything_else(self) -> None:
        """
        Everything else is percent-encoded UTF-8, upper-case hex.
        """
        self.assertEqual(
            url_encode(" +%*#[]=é\x01"), "%20%2B%25%2A%23%5B%5D%3D%C3%A9%01"
        )
        self.assertEqual(url_encode("\U0001f600"), "%F0%9F%98%80")

    def test_surrogates(self) -> None:
        """
        A lone surrogate never fails: an escaped byte becomes that byte.
        """
        self.assertEqual(utf8_bytes("a\udcffb"), b"a\xffb")
        self.assertEqual(utf8_bytes("\ud800"), b"\xed\xa0\x80")
        self.assertEqual(url_encode("\udcff"), "%FF")

    @given(st.text())
    def test_reversible(self, value: str) -> None:
        """
        Plain percent-decoding gives back the value.
        """
        self.assertEqual(unquote(url_encode(value), errors="strict"), value)


class StoreRequestTests(SynchronousTestCase):
    """
    Tests for L{store_request}.
    """

    def test_prefix(self) -> None:
        """
        The client's prefix goes under the backend prefix.
        """
        self.assertEqual(store_request(v2(), "").prefix, "")
        self.assertEqual(store_request(v2(), "data").prefix, "data/")
        self.assertEqual(store_request(v2(prefix="a/"), "").prefix, "a/")
        self.assertEqual(store_request(v2(prefix="a/"), "d/e").prefix, "d/e/a/")

    def test_pass_through(self) -> None:
        """
        Delimiter and max-keys are passed on; a fresh listing has no resume
        point.
        """
        self.assertEqual(
            store_request(v2(delimiter="--", max_keys="3"), ""),
            ListRequest(prefix="", delimiter="--", max_keys=3),
        )

    def test_backend_prefix_key_skipped(self) -> None:
        """
        With a backend prefix, the store lists after the prefix's own key,
        even with no resume point.
        """
        self.assertEqual(
            store_request(v2(delimiter="--", max_keys="3"), "data"),
            ListRequest(
                prefix="data/", delimiter="--", max_keys=3, start_after="data/"
            ),
        )
        self.assertEqual(store_request(v1(prefix="a"), "d/e").start_after, "d/e/")

    def test_start_after(self) -> None:
        """
        V2 ``start-after`` is the resume point, in backend space.
        """
        self.assertEqual(store_request(v2(start_after="k"), "").start_after, "k")
        self.assertEqual(store_request(v2(start_after="k"), "d").start_after, "d/k")

    def test_token(self) -> None:
        """
        A V2 token's position is the resume point; it wins over
        ``start-after``; the store's own token is passed on.
        """
        token = encode_token("a/b", False, "store-says")
        request = store_request(v2(continuation_token=token, start_after="z"), "d")
        self.assertEqual(request.start_after, "d/a/b")
        self.assertEqual(request.token, "store-says")

    def test_token_skip_prefix(self) -> None:
        """
        A token at a common prefix resumes after every key starting with it.
        """
        token = encode_token("a/", True, None)
        request = store_request(v2(continuation_token=token, delimiter="/"), "d")
        self.assertEqual(request.start_after, "d/a/" + SENTINEL)
        self.assertGreater("d/a/" + SENTINEL, "d/a/" + "\uffff" * 5)
        self.assertLess("d/a/" + SENTINEL, "d/a0")

    def test_token_empty_position(self) -> None:
        """
        A token at the very start has no resume point.
        """
        token = encode_token("", False, "t")
        request = store_request(v2(continuation_token=token), "")
        self.assertIsNone(request.start_after)
        self.assertEqual(request.token, "t")
        request = store_request(v2(continuation_token=token), "d")
        self.assertEqual(request.start_after, "d/")

    def test_marker(self) -> None:
        """
        A V1 marker is the resume point.
        """
        self.assertEqual(store_request(v1(marker="a/b"), "d").start_after, "d/a/b")
        self.assertIsNone(store_request(v1(), "").start_after)

    def test_marker_inside_common_prefix(self) -> None:
        """
        With a delimiter, a marker containing it after the prefix lies in a
        rolled-up common prefix, which is skipped whole.
        """
        params = v1(marker="p/a/b/c", prefix="p/", delimiter="/")
        self.assertEqual(store_request(params, "d").start_after, "d/p/a/" + SENTINEL)
        params = v1(marker="p/a/", prefix="p/", delimiter="/")
        self.assertEqual(store_request(params, "").start_after, "p/a/" + SENTINEL)

    def test_marker_multi_character_delimiter(self) -> None:
        """
        The common prefix ends with the first whole delimiter.
        """
        params = v1(marker="x--y--z", delimiter="--")
        self.assertEqual(store_request(params, "").start_after, "x--" + SENTINEL)
        params = v1(marker="x-y", delimiter="--")
        self.assertEqual(store_request(params, "").start_after, "x-y")

    def test_marker_not_rolled_up(self) -> None:
        """
        Without a delimiter, or with the delimiter only inside the prefix,
        or a marker outside the prefix, the marker is the resume point.
        """
        self.assertEqual(store_request(v1(marker="a/b/c"), "").start_after, "a/b/c")
        params = v1(marker="a/b", prefix="a/", delimiter="/")
        self.assertEqual(store_request(params, "").start_after, "a/b")
        params = v1(marker="0/b/c", prefix="a/", delimiter="/")
        self.assertEqual(store_request(params, "").start_after, "0/b/c")

    def test_bad_token(self) -> None:
        """
        A token that is not ours is ``InvalidArgument``.
        """
        params = ListParams(version=2, continuation_token="garbage!")
        error = self.assertRaises(S3Error, store_request, params, "")
        self.assertEqual(error.code, "InvalidArgument")


class ListResultTests(SynchronousTestCase):
    """
    Tests for L{list_result} and L{empty_result}.
    """

    def test_keys_leave_backend_prefix(self) -> None:
        """
        Keys and common prefixes are shown without the backend prefix.
        """
        page = ListPage(objects=(obj("data/a"),), common_prefixes=("data/b/",))
        result = list_result(v2(delimiter="/"), page, "data", "bucket", OWNER)
        self.assertEqual(keys_of(result), ["a"])
        self.assertEqual(result.common_prefixes, ("b/",))
        self.assertEqual(result.key_count, 2)
        self.assertEqual(result.name, "bucket")

    def test_no_backend_prefix(self) -> None:
        """
        Without a backend prefix, keys are shown as they are.
        """
        page = ListPage(objects=(obj("data/a"),))
        self.assertEqual(keys_of(list_result(v2(), page, "", "b", None)), ["data/a"])

    def test_outside_backend_prefix_dropped(self) -> None:
        """
        Keys and common prefixes outside the backend prefix are never shown.
        """
        page = ListPage(
            objects=(obj("datax/a"), obj("data"), obj("other/a"), obj("data/k")),
            common_prefixes=("datax/", "data/c/"),
        )
        result = list_result(v2(delimiter="/"), page, "data", "b", None)
        self.assertEqual(keys_of(result), ["k"])
        self.assertEqual(result.common_prefixes, ("c/",))
        self.assertEqual(result.key_count, 2)

    def test_outside_client_prefix_dropped(self) -> None:
        """
        Keys outside the client's prefix are never shown either.
        """
        page = ListPage(objects=(obj("d/a/1"), obj("d/b/1")), common_prefixes=("d/c/",))
        result = list_result(v2(prefix="a/"), page, "d", "b", None)
        self.assertEqual(keys_of(result), ["a/1"])
        self.assertEqual(result.common_prefixes, ())

    def test_backend_prefix_marker_dropped(self) -> None:
        """
        The zero-byte marker of the backend prefix itself is not shown.
        """
        page = ListPage(objects=(obj("data/", 0), obj("data/a")))
        result = list_result(v2(), page, "data", "b", None)
        self.assertEqual(keys_of(result), ["a"])
        self.assertEqual(result.key_count, 1)

    def test_prefix_marker_dropped(self) -> None:
        """
        A zero-byte object equal to the client's prefix, ending in ``/``, is
        not shown.
        """
        page = ListPage(objects=(obj("d/dir/", 0), obj("d/dir/a")))
        result = list_result(v2(prefix="dir/", delimiter="/"), page, "d", "b", None)
        self.assertEqual(keys_of(result), ["dir/a"])
        self.assertEqual(result.key_count, 1)

    def test_common_prefix_marker_dropped(self) -> None:
        """
        A zero-byte object equal to one of the page's common prefixes is not
        shown.
        """
        page = ListPage(objects=(obj("sub/", 0),), common_prefixes=("sub/",))
        result = list_result(v2(delimiter="/"), page, "", "b", None)
        self.assertEqual(keys_of(result), [])
        self.assertEqual(result.common_prefixes, ("sub/",))
        self.assertEqual(result.key_count, 1)

    def test_markers_with_content_kept(self) -> None:
        """
        An object with content is shown whatever its key.
        """
        page = ListPage(
            objects=(obj("d/", 5), obj("d/dir/", 5), obj("d/sub/", 5)),
            common_prefixes=("d/sub/",),
        )
        result = list_result(v2(delimiter="/"), page, "d", "b", None)
        self.assertEqual(keys_of(result), ["", "dir/", "sub/"])

    def test_empty_files_kept(self) -> None:
        """
        A zero-byte object whose key does not end in ``/`` is real data, even
        when named like the prefix; so is a zero-byte ``x/`` that is neither
        the prefix nor a common prefix.
        """
        page = ListPage(objects=(obj("dir", 0), obj("dir/x/", 0)))
        result = list_result(v1(prefix="dir"), page, "", "b", None)
        self.assertEqual(keys_of(result), ["dir", "dir/x/"])

    def test_not_truncated(self) -> None:
        """
        A complete page has no next token or marker.
        """
        page = ListPage(objects=(obj("a"),))
        self.assertIsNone(
            list_result(v2(), page, "", "b", None).next_continuation_token
        )
        self.assertIsNone(list_result(v1(), page, "", "b", None).next_marker)
        self.assertFalse(list_result(v1(), page, "", "b", None).truncated)

    def test_truncated_v2(self) -> None:
        """
        A truncated V2 page resumes after its greatest item, in virtual
        space, carrying the store's token.
        """
        page = ListPage(
            objects=(obj("d/a"), obj("d/c")),
            common_prefixes=("d/b/",),
            truncated=True,
            next_token="store",
        )
        result = list_result(v2(delimiter="/"), page, "d", "b", None)
        self.assertTrue(result.truncated)
        assert result.next_continuation_token is not None
        self.assertEqual(
            decode_token(result.next_continuation_token), Position("c", False, "store")
        )

    def test_truncated_v2_common_prefix(self) -> None:
        """
        When the greatest item is a common prefix, the next page skips it
        whole.
        """
        page = ListPage(
            objects=(obj("d/a"),), common_prefixes=("d/b/",), truncated=True
        )
        result = list_result(v2(delimiter="/"), page, "d", "b", None)
        assert result.next_continuation_token is not None
        self.assertEqual(
            decode_token(result.next_continuation_token), Position("b/", True, None)
        )

    def test_truncated_filtered_marker(self) -> None:
        """
        A dropped directory marker still counts as the greatest item.
        """
        page = ListPage(objects=(obj("d/a/", 0), obj("d/a/", 0)), truncated=True)
        result = list_result(v2(prefix="a/"), page, "d", "b", None)
        self.assertEqual(result.contents, ())
        assert result.next_continuation_token is not None
        self.assertEqual(decode_token(result.next_continuation_token).key, "a/")
        result = list_result(v1(prefix="a/"), page, "d", "b", None)
        self.assertEqual(result.next_marker, "a/")

    def test_truncated_tie(self) -> None:
        """
        A marker equal to a common prefix resumes after the whole prefix.
        """
        page = ListPage(
            objects=(obj("s/", 0),), common_prefixes=("s/",), truncated=True
        )
        result = list_result(v2(delimiter="/"), page, "", "b", None)
        assert result.next_continuation_token is not None
        self.assertEqual(
            decode_token(result.next_continuation_token), Position("s/", True, None)
        )

    def test_truncated_v1(self) -> None:
        """
        A truncated V1 page always has a virtual ``NextMarker``, with or
        without a delimiter.
        """
        page = ListPage(objects=(obj("d/a"), obj("d/b")), truncated=True)
        result = list_result(v1(), page, "d", "b", None)
        self.assertEqual(result.next_marker, "b")
        page = ListPage(
            objects=(obj("d/a"),), common_prefixes=("d/c/",), truncated=True
        )
        result = list_result(v1(delimiter="/"), page, "d", "b", None)
        self.assertEqual(result.next_marker, "c/")

    def test_truncated_empty_v2(self) -> None:
        """
        A truncated page with nothing on it resumes from where this page
        started, with the store's new token.
        """
        page = ListPage(truncated=True, next_token="next")
        result = list_result(v2(), page, "d", "b", None)
        assert result.next_continuation_token is not None
        self.assertEqual(
            decode_token(result.next_continuation_token), Position("", False, "next")
        )
        result = list_result(v2(start_after="k"), page, "d", "b", None)
        assert result.next_continuation_token is not None
        self.assertEqual(
            decode_token(result.next_continuation_token), Position("k", False, "next")
        )
        token = encode_token("p/", True, "old")
        result = list_result(v2(continuation_token=token), page, "d", "b", None)
        assert result.next_continuation_token is not None
        self.assertEqual(
            decode_token(result.next_continuation_token), Position("p/", True, "next")
        )

    def test_truncated_empty_v1(self) -> None:
        """
        A truncated V1 page with nothing on it repeats the marker.
        """
        page = ListPage(truncated=True)
        self.assertEqual(
            list_result(v1(marker="m"), page, "d", "b", None).next_marker, "m"
        )
        self.assertEqual(list_result(v1(), page, "d", "b", None).next_marker, "")

    def test_truncated_only_outside(self) -> None:
        """
        Items outside the prefixes never become a position.
        """
        page = ListPage(objects=(obj("secret"),), truncated=True)
        result = list_result(v1(marker="m"), page, "d", "b", None)
        self.assertEqual(result.next_marker, "m")
        self.assertEqual(result.contents, ())

    def test_echo_v2(self) -> None:
        """
        V2 echoes the client's values, never the store's.
        """
        token = encode_token("p/x", False, None)
        params = v2(
            prefix="p/",
            delimiter="/",
            max_keys="5000",
            start_after="p/a",
            continuation_token=token,
        )
        result = list_result(params, ListPage(), "d", "b", None)
        self.assertEqual(result.prefix, "p/")
        self.assertEqual(result.delimiter, "/")
        self.assertEqual(result.max_keys, 1000)
        self.assertEqual(result.start_after, "p/a")
        self.assertEqual(result.continuation_token, token)
        self.assertIsNone(result.marker)

    def test_echo_v1(self) -> None:
        """
        V1 echoes the client's values, never the store's.
        """
        params = v1(prefix="p/", delimiter="/", max_keys="3", marker="p/a")
        result = list_result(params, ListPage(), "d", "b", None)
        self.assertEqual(
            (result.prefix, result.delimiter, result.max_keys, result.marker),
            ("p/", "/", 3, "p/a"),
        )
        self.assertIsNone(result.start_after)
        self.assertIsNone(result.continuation_token)

    def test_encoding_v2(self) -> None:
        """
        With ``encoding-type=url``, V2 encodes keys, prefixes, the delimiter
        and ``start-after``, never tokens.
        """
        params = v2(
            prefix="p q/",
            delimiter="+",
            start_after="p q/a b",
            encoding_type="url",
        )
        page = ListPage(
            objects=tuple(obj("d/p q/" + key.replace("+", "")) for key in ODD_KEYS),
            common_prefixes=("d/p q/x y+",),
            truncated=True,
        )
        result = list_result(params, page, "d", "b", None)
        self.assertEqual(
            keys_of(result),
            [url_encode("p q/" + key.replace("+", "")) for key in ODD_KEYS],
        )
        self.assertIn("p%20q/with%20space/file%20name.txt", keys_of(result))
        self.assertIn("p%20q/100%25.txt", keys_of(result))
        self.assertIn("p%20q/unicode/caf%C3%A9/na%C3%AFve.txt", keys_of(result))
        self.assertIn("p%20q/literal-%253D-triplet.txt", keys_of(result))
        self.assertEqual(result.common_prefixes, ("p%20q/x%20y%2B",))
        self.assertEqual(result.prefix, "p%20q/")
        self.assertEqual(result.delimiter, "%2B")
        self.assertEqual(result.start_after, "p%20q/a%20b")
        self.assertEqual(result.encoding_type, "url")
        assert result.next_continuation_token is not None
        self.assertEqual(decode_token(result.next_continuation_token).key, "p q/x y+")

    def test_encoding_v1(self) -> None:
        """
        With ``encoding-type=url``, V1 encodes keys, prefixes, the delimiter,
        the marker and the next marker.
        """
        params = v1(prefix="é", delimiter="#", marker="é a", encoding_type="url")
        page = ListPage(objects=(obj("é b"),), common_prefixes=("éc#",), truncated=True)
        result = list_result(params, page, "", "b", None)
        self.assertEqual(keys_of(result), ["%C3%A9%20b"])
        self.assertEqual(result.common_prefixes, ("%C3%A9c%23",))
        self.assertEqual(result.prefix, "%C3%A9")
        self.assertEqual(result.delimiter, "%23")
        self.assertEqual(result.marker, "%C3%A9%20a")
        self.assertEqual(result.next_marker, "%C3%A9c%23")

    def test_no_encoding(self) -> None:
        """
        Without ``encoding-type``, odd keys are shown as they are.
        """
        page = ListPage(objects=tuple(obj(key) for key in ODD_KEYS))
        self.assertEqual(keys_of(list_result(v2(), page, "", "b", None)), ODD_KEYS)

    def test_owner(self) -> None:
        """
        The owner is shown for V1, and for V2 with ``fetch-owner=true``.
        """
        page = ListPage(objects=(obj("a"),))
        self.assertEqual(list_result(v1(), page, "", "b", OWNER).owner, OWNER)
        self.assertIsNone(list_result(v2(), page, "", "b", OWNER).owner)
        params = v2(fetch_owner="true")
        self.assertEqual(list_result(params, page, "", "b", OWNER).owner, OWNER)
        self.assertIsNone(list_result(v1(), page, "", "b", None).owner)

    def test_entries(self) -> None:
        """
        Entries carry the object's time, size, class and a quoted ETag.
        """
        page = ListPage(
            objects=(
                obj("a", 3, '"quoted"'),
                obj("b", 4, "bare"),
                obj("c", 5, ""),
                obj("d", 6, 'W/"weak"'),
                ObjectInfo("e", 7, WHEN, '"x"', "GLACIER"),
                ObjectInfo("f", 8, WHEN, '"x"', ""),
            )
        )
        entries = list_result(v2(), page, "", "b", None).contents
        self.assertEqual(entries[0], ListEntry("a", WHEN, '"quoted"', 3, "STANDARD"))
        self.assertEqual(
            [entry.etag for entry in entries],
            ['"quoted"', '"bare"', '""', 'W/"weak"', '"x"', '"x"'],
        )
        self.assertEqual(entries[4].storage_class, "GLACIER")
        self.assertEqual(entries[5].storage_class, "STANDARD")

    def test_empty_result(self) -> None:
        """
        ``max-keys=0`` gives an empty, complete listing echoing the query.
        """
        params = v2(prefix="p", max_keys="0", fetch_owner="true", start_after="q")
        result = empty_result(params, "shown", OWNER)
        self.assertEqual(
            result,
            ListResult(
                version=2,
                name="shown",
                prefix="p",
                delimiter=None,
                max_keys=0,
                encoding_type=None,
                truncated=False,
                owner=OWNER,
                start_after="q",
            ),
        )
        self.assertEqual(result.key_count, 0)
        result = empty_result(v1(marker="m m", encoding_type="url"), "n", OWNER)
        self.assertEqual(result.marker, "m%20m")
        self.assertIsNone(result.next_marker)


# --- Paging simulations ------------------------------------------------------

ALPHABET = "ab/-é "
DELIMITERS = [None, "/", "-", "a/", "//", "é"]
BACKEND_PREFIXES = ["", "BP", "BP/SUB"]
OUTSIDE = ["BPX/", "BQ/", "B", "BP", "a"]

Store = Callable[[Mapping[str, int], ListRequest], ListPage]


def cut(key: str, prefix: str, delimiter: str | None) -> str | None:
    """
    The common prefix ``key`` rolls up into, or ``None``.
    """
    if not delimiter or not key.startswith(prefix):
        return None
    index = key.find(delimiter, len(prefix))
    return None if index < 0 else key[: index + len(delimiter)]


def items_after(
    entries: Mapping[str, int],
    prefix: str,
    delimiter: str | None,
    start_after: str | None,
) -> list[tuple[str, int | None]]:
    """
    The distinct keys (with size) and common prefixes (size ``None``) under
    ``prefix`` after ``start_after``, in order, as S3 lists them.
    """
    items: list[tuple[str, int | None]] = []
    for key in sorted(entries):
        if not key.startswith(prefix):
            continue
        if start_after is not None and key <= start_after:
            continue
        common = cut(key, prefix, delimiter)
        if common is None:
            items.append((key, entries[key]))
        elif not items or items[-1] != (common, None):
            items.append((common, None))
    return items


def page_of(
    items: Sequence[tuple[str, int | None]], truncated: bool, token: str | None
) -> ListPage:
    """
    A store page from listed items.
    """
    return ListPage(
        objects=tuple(obj(key, size) for key, size in items if size is not None),
        common_prefixes=tuple(key for key, size in items if size is None),
        truncated=truncated,
        next_token=token,
    )


def position_store(entries: Mapping[str, int], request: ListRequest) -> ListPage:
    """
    An S3-like store: resumes after ``start_after``, gives no token.
    """
    items = items_after(entries, request.prefix, request.delimiter, request.start_after)
    return page_of(items[: request.max_keys], len(items) > request.max_keys, None)


def token_store(entries: Mapping[str, int], request: ListRequest) -> ListPage:
    """
    An Azure-like store: once it has given a token, it resumes from that
    token alone and ignores ``start_after``. Its token is opaque (the hex of
    the backend position to resume after).
    """
    after = request.start_after
    if request.token is not None:
        after = bytes.fromhex(request.token).decode()
    items = items_after(entries, request.prefix, request.delimiter, after)
    chosen = items[: request.max_keys]
    truncated = len(items) > request.max_keys
    token = None
    if truncated:
        last, size = chosen[-1]
        token = (last + SENTINEL if size is None else last).encode().hex()
    return page_of(chosen, truncated, token)


def stuttering(store: Store) -> Store:
    """
    Wrap a store so every other call answers an empty truncated page that
    resumes where the call started.
    """
    calls = [0]

    def list_page(entries: Mapping[str, int], request: ListRequest) -> ListPage:
        calls[0] += 1
        if calls[0] % 2:
            return ListPage(truncated=True, next_token=request.token)
        return store(entries, request)

    return list_page


def expected_listing(
    entries: Mapping[str, int],
    backend_prefix: str,
    prefix: str,
    delimiter: str | None,
    start_after: str | None,
) -> tuple[list[tuple[str, int]], list[str]]:
    """
    The complete listing computed directly in virtual space: contents (key,
    size) and common prefixes, directory markers left out.
    """
    virtual = {}
    for key, size in entries.items():
        shown = from_backend(backend_prefix, key)
        # The backend prefix's own key (the empty virtual key) is never listed.
        if shown:
            virtual[shown] = size
    items = items_after(virtual, prefix, delimiter, start_after)
    common = [key for key, size in items if size is None]
    contents = []
    for key, maybe_size in items:
        if maybe_size is None:
            continue
        marker = maybe_size == 0 and (
            key == "" or (key.endswith("/") and (key == prefix or key in common))
        )
        if not marker:
            contents.append((key, maybe_size))
    return contents, common


def read_page(body: bytes, encoded: bool, hidden: str) -> dict[str, object]:
    """
    Read back a listing document as a client would, checking that
    ``hidden`` (if not empty) appears nowhere in it but inside tokens.
    """
    root = etree.fromstring(body)
    decode = unquote if encoded else str

    def text(name: str) -> str | None:
        element = root.find(NS + name)
        return None if element is None else (element.text or "")

    for element in root.iter():
        if hidden and element.tag not in (
            NS + "ContinuationToken",
            NS + "NextContinuationToken",
        ):
            assert hidden not in (element.text or ""), body
    return {
        "contents": [
            (decode(c.findtext(NS + "Key") or ""), int(c.findtext(NS + "Size") or ""))
            for c in root.findall(NS + "Contents")
        ],
        "common": [
            decode(p.text or "") for p in root.findall(f"{NS}CommonPrefixes/{NS}Prefix")
        ],
        "truncated": text("IsTruncated") == "true",
        "token": text("NextContinuationToken"),
        "marker": text("NextMarker"),
        "key_count": text("KeyCount"),
    }


@st.composite
def key_sets(draw: st.DrawFn) -> tuple[str, dict[str, int]]:
    """
    A backend prefix and backend keys (with sizes) under and outside it.
    """
    backend_prefix = draw(st.sampled_from(BACKEND_PREFIXES))
    entries: dict[str, int] = {}
    for _ in range(draw(st.integers(0, 14))):
        virtual = draw(st.text(ALPHABET, max_size=5))
        size = draw(st.sampled_from([0, 1]))
        if draw(st.integers(0, 4)) == 0:
            key = draw(st.sampled_from(OUTSIDE)) + virtual
        elif backend_prefix:
            key = f"{backend_prefix}/{virtual}"
        else:
            key = virtual
        if key:
            entries[key] = size
    return backend_prefix, entries


class PaginationTests(SynchronousTestCase):
    """
    Paging through a listing with small pages gives exactly the unpaged
    listing, computed directly in virtual space.
    """

    def page_through(
        self,
        store: Store,
        entries: Mapping[str, int],
        backend_prefix: str,
        query: dict[str, str],
        version: int,
    ) -> tuple[list[tuple[str, int]], list[str]]:
        """
        List every page the way a client does, through the XML.
        """
        contents: list[tuple[str, int]] = []
        common: list[str] = []
        encoded = query.get("encoding-type") == "url"
        for _ in range(4 * len(entries) + 10):
            params = parse_list_params(query, version)
            request = store_request(params, backend_prefix)
            page = store(entries, request)
            result = list_result(params, page, backend_prefix, "bucket", OWNER)
            seen = read_page(list_objects_document(result), encoded, backend_prefix)
            contents += seen["contents"]  # type: ignore[arg-type]
            common += seen["common"]  # type: ignore[arg-type]
            if version == 2:
                self.assertEqual(seen["key_count"], str(result.key_count))
            if not seen["truncated"]:
                self.assertIsNone(seen["token"])
                self.assertIsNone(seen["marker"])
                return contents, common
            if version == 2:
                token = seen["token"]
                assert isinstance(token, str)
                if backend_prefix:
                    self.assertNotIn(backend_prefix, decode_token(token).key)
                query["continuation-token"] = token
            else:
                marker = seen["marker"]
                assert isinstance(marker, str)
                query["marker"] = unquote(marker) if encoded else marker
        self.fail("the listing did not end")

    def check(
        self,
        store: Store,
        listing: tuple[str, dict[str, int]],
        prefix: str,
        delimiter: str | None,
        max_keys: int,
        encoded: bool,
        start_after: str | None,
        version: int,
    ) -> None:
        """
        Page through with the given parameters and compare with the
        unpaged listing.
        """
        backend_prefix, entries = listing
        query = {"prefix": prefix, "max-keys": str(max_keys)}
        if delimiter is not None:
            query["delimiter"] = delimiter
        if encoded:
            query["encoding-type"] = "url"
        if start_after is not None and version == 2:
            query["start-after"] = start_after
        else:
            start_after = None
        paged = self.page_through(store, entries, backend_prefix, query, version)
        self.assertEqual(
            paged,
            expected_listing(entries, backend_prefix, prefix, delimiter, start_after),
        )

    parameters = (
        key_sets(),
        st.text(ALPHABET, max_size=2),
        st.sampled_from(DELIMITERS),
        st.integers(1, 4),
        st.booleans(),
        st.none() | st.text(ALPHABET, max_size=3),
    )

    @settings(max_examples=300, deadline=None)
    @given(*parameters)
    def test_v2(
        self,
        listing: tuple[str, dict[str, int]],
        prefix: str,
        delimiter: str | None,
        max_keys: int,
        encoded: bool,
        start_after: str | None,
    ) -> None:
        """
        V2 continuation tokens over an S3-like store.
        """
        self.check(
            position_store,
            listing,
            prefix,
            delimiter,
            max_keys,
            encoded,
            start_after,
            2,
        )

    @settings(max_examples=300, deadline=None)
    @given(*parameters)
    def test_v1(
        self,
        listing: tuple[str, dict[str, int]],
        prefix: str,
        delimiter: str | None,
        max_keys: int,
        encoded: bool,
        start_after: str | None,
    ) -> None:
        """
        V1 markers over an S3-like store.
        """
        self.check(
            position_store,
            listing,
            prefix,
            delimiter,
            max_keys,
            encoded,
            start_after,
            1,
        )

    @settings(max_examples=200, deadline=None)
    @given(*parameters)
    def test_v2_store_tokens(
        self,
        listing: tuple[str, dict[str, int]],
        prefix: str,
        delimiter: str | None,
        max_keys: int,
        encoded: bool,
        start_after: str | None,
    ) -> None:
        """
        V2 continuation tokens over a store that resumes only from its own
        tokens and sometimes answers an empty truncated page.
        """
        self.check(
            stuttering(token_store),
            listing,
            prefix,
            delimiter,
            max_keys,
            encoded,
            start_after,
            2,
        )

    @settings(max_examples=200, deadline=None)
    @given(*parameters)
    def test_empty_pages(
        self,
        listing: tuple[str, dict[str, int]],
        prefix: str,
        delimiter: str | None,
        max_keys: int,
        encoded: bool,
        start_after: str | None,
    ) -> None:
        """
        Empty truncated pages from an S3-like store lose nothing, for V1 and
        V2.
        """
        for version in (1, 2):
            self.check(
                stuttering(position_store),
                listing,
                prefix,
                delimiter,
                max_keys,
                encoded,
                start_after,
                version,
            )

    def test_example(self) -> None:
        """
        A worked example: directory markers, a backend prefix, keys outside
        it, a delimiter, and pages of one.
        """
        entries = {
            "BP/": 0,
            "BP/a": 1,
            "BP/d/": 0,
            "BP/d/x": 1,
            "BP/d/y/z": 1,
            "BP/e": 0,
            "BPX/a": 1,
            "a": 1,
        }
        for version in (1, 2):
            self.assertEqual(
                self.page_through(
                    position_store,
                    entries,
                    "BP",
                    {"delimiter": "/", "max-keys": "1"},
                    version,
                ),
                ([("a", 1), ("e", 0)], ["d/"]),
            )
            self.assertEqual(
                self.page_through(
                    position_store,
                    entries,
                    "BP",
                    {"prefix": "d/", "delimiter": "/", "max-keys": "1"},
                    version,
                ),
                ([("d/x", 1)], ["d/y/"]),
            )
