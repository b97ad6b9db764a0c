"""
Tests for L{multistore.s3.keys}.
"""

from __future__ import annotations

from typing import Literal

from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from multistore.s3.errors import S3Error
from multistore.s3.keys import MAX_KEY_BYTES, check_key, from_backend, to_backend

#: Keys S3 stores byte for byte.
ODD_KEYS = (
    "plain",
    "with space",
    "100%",
    "%2F",
    "a+b",
    "café/ünï",
    "emoji 😀",
    "star*",
    "hash#tag",
    "~tilde",
    "[brackets]",
    "a=b&c",
    "q?x",
    "trailing/",
    "/leading",
    "a//b",
    "/",
    "...",
    ".hidden",
    "..a",
    "a..",
    "a/.../b",
    "a/.b/c.",
    "back\\slash",
    "tab\tnew\nline",
)

#: The Unicode category of lone surrogates, which UTF-8 cannot carry.
SURROGATES: list[Literal["Cs"]] = ["Cs"]

#: Text that UTF-8 can carry.
text = st.characters(blacklist_categories=SURROGATES)
#: Backend prefixes: no leading or trailing ``/``.
prefixes = st.text(alphabet=text, max_size=20).filter(
    lambda p: not p.startswith("/") and not p.endswith("/")
)
keys = st.text(alphabet=text, max_size=40)


class CheckKeyTests(SynchronousTestCase):
    """
    L{check_key} accepts what S3 accepts, except dot segments.
    """

    def assert_refused(self, key: str, code: str) -> S3Error:
        """
        ``key`` is refused with ``code``.
        """
        error: S3Error = self.assertRaises(S3Error, check_key, key)
        self.assertEqual(error.code, code)
        self.assertEqual(error.status, 400)
        return error

    def test_odd_keys(self) -> None:
        """
        Keys with spaces, ``%``, ``+``, unicode, ``*``, ``#``, ``~``,
        brackets, ``=``, empty segments and dots that are not whole segments
        are accepted.
        """
        for key in ODD_KEYS:
            check_key(key)

    def test_longest(self) -> None:
        """
        Keys of 1024 UTF-8 bytes are accepted, however many characters.
        """
        self.assertEqual(MAX_KEY_BYTES, 1024)
        for key in ("a" * 1024, "é" * 512, "😀" * 256, "a/" * 512, "€" * 341 + "a"):
            self.assertEqual(len(key.encode("utf-8")), 1024)
            check_key(key)

    def test_too_long(self) -> None:
        """
        Keys of 1025 UTF-8 bytes or more are refused with
        ``KeyTooLongError``, counted in bytes, not characters.
        """
        for key in ("a" * 1025, "é" * 512 + "a", "😀" * 256 + "a", "é" * 1024):
            self.assertGreater(len(key.encode("utf-8")), 1024)
            self.assert_refused(key, "KeyTooLongError")

    def test_dot_segments(self) -> None:
        """
        A ``.`` or ``..`` segment anywhere is refused with
        ``InvalidArgument`` naming the key.
        """
        for key in (
            ".",
            "..",
            "./a",
            "../a",
            "a/.",
            "a/..",
            "a/./b",
            "a/../b",
            "a//../b",
        ):
            error = self.assert_refused(key, "InvalidArgument")
            self.assertIn(("ArgumentName", "key"), error.extra)

    @given(st.lists(st.text(alphabet=text, max_size=5), min_size=1, max_size=6))
    def test_segments(self, segments: list[str]) -> None:
        """
        A key short enough is refused exactly when one of its segments is
        ``.`` or ``..``.
        """
        segments = [s.replace("/", "") for s in segments]
        key = "/".join(segments)
        if any(s in (".", "..") for s in segments):
            self.assert_refused(key, "InvalidArgument")
        else:
            check_key(key)


class BackendKeyTests(SynchronousTestCase):
    """
    L{to_backend} and L{from_backend} map keys into and out of a bucket's
    backend prefix.
    """

    def test_no_prefix(self) -> None:
        """
        Without a prefix keys are the same on both sides.
        """
        self.assertEqual(to_backend("", "a/b"), "a/b")
        self.assertEqual(from_backend("", "a/b"), "a/b")
        self.assertEqual(to_backend("", ""), "")

    def test_prefix(self) -> None:
        """
        A prefix is joined with ``/``; listing prefixes and positions map
        the same way, the empty one to the prefix's directory.
        """
        self.assertEqual(to_backend("p/q", "k"), "p/q/k")
        self.assertEqual(to_backend("p", ""), "p/")
        self.assertEqual(from_backend("p/q", "p/q/k"), "k")
        self.assertEqual(from_backend("p", "p/"), "")
        self.assertEqual(from_backend("p", "p//k"), "/k")

    def test_outside(self) -> None:
        """
        Backend keys outside the prefix map to nothing, siblings that merely
        start with the prefix's text included.
        """
        for backend_key in ("p", "px", "p-x/k", "other/k", "", "P/k", "/p/k"):
            self.assertIsNone(from_backend("p", backend_key), backend_key)

    @given(prefixes, keys)
    def test_round_trip(self, prefix: str, key: str) -> None:
        """
        A key mapped into the backend maps back to itself.
        """
        self.assertEqual(from_backend(prefix, to_backend(prefix, key)), key)

    @given(prefixes, keys)
    def test_inverse(self, prefix: str, backend_key: str) -> None:
        """
        A backend key that maps back at all maps back to the key that maps
        to it; one that does not lies outside the prefix.
        """
        key = from_backend(prefix, backend_key)
        if key is None:
            self.assertTrue(prefix)
            self.assertFalse(backend_key.startswith(prefix + "/"))
        else:
            self.assertEqual(to_backend(prefix, key), backend_key)

    @given(prefixes.filter(bool), keys, keys)
    def test_siblings(self, prefix: str, tail: str, key: str) -> None:
        """
        A backend key under a sibling prefix never maps back.
        """
        assume(not tail.startswith("/") and tail)
        self.assertIsNone(from_backend(prefix, f"{prefix}{tail}/{key}"))
