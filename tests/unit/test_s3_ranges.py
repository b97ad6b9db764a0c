"""
Tests for L{multistore.s3.ranges}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from multistore.s3.errors import S3Error
from multistore.s3.ranges import ByteRange, parse_range


def _selected(spec: tuple[str, int, int], size: int) -> range | None:
    """
    A reference model: the byte positions a single well-formed range spec
    selects, as a set of positions, or ``None`` if the spec is malformed.
    """
    kind, first, second = spec
    if kind == "closed":
        if second < first:
            return None
        return range(first, min(second + 1, size))
    if kind == "open":
        return range(first, size)
    return range(max(size - first, 0), size) if first > 0 else range(0)


def _render(spec: tuple[str, int, int]) -> str:
    kind, first, second = spec
    if kind == "closed":
        return f"{first}-{second}"
    if kind == "open":
        return f"{first}-"
    return f"-{first}"


_specs = st.tuples(
    st.sampled_from(["closed", "open", "suffix"]),
    st.integers(min_value=0, max_value=2**70),
    st.integers(min_value=0, max_value=2**70),
) | st.tuples(
    st.sampled_from(["closed", "open", "suffix"]),
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=0, max_value=40),
)
_sizes = st.integers(min_value=0, max_value=40) | st.integers(
    min_value=0, max_value=2**64
)


class ParseRangeTests(SynchronousTestCase):
    """
    Tests for L{parse_range}.
    """

    def test_absent(self) -> None:
        """
        Without a header the whole object is sent.
        """
        self.assertIsNone(parse_range(None, 1000))

    def test_closed(self) -> None:
        """
        ``bytes=a-b`` selects bytes a to b inclusive.
        """
        selected = parse_range("bytes=0-99", 1000)
        self.assertEqual(selected, ByteRange(0, 99, 1000))
        assert selected is not None
        self.assertEqual(selected.length, 100)
        self.assertEqual(selected.content_range, "bytes 0-99/1000")

    def test_single_byte(self) -> None:
        """
        ``bytes=a-a`` selects one byte.
        """
        selected = parse_range("bytes=5-5", 10)
        assert selected is not None
        self.assertEqual((selected.length, selected.content_range), (1, "bytes 5-5/10"))

    def test_end_clamped(self) -> None:
        """
        An end past the object is clamped to its last byte.
        """
        self.assertEqual(parse_range("bytes=900-2000", 1000), ByteRange(900, 999, 1000))

    def test_open(self) -> None:
        """
        ``bytes=a-`` selects everything from a.
        """
        self.assertEqual(parse_range("bytes=500-", 1000), ByteRange(500, 999, 1000))

    def test_suffix(self) -> None:
        """
        ``bytes=-n`` selects the last n bytes.
        """
        self.assertEqual(parse_range("bytes=-100", 1000), ByteRange(900, 999, 1000))

    def test_suffix_longer_than_object(self) -> None:
        """
        A suffix longer than the object selects the whole object (still as a
        range).
        """
        self.assertEqual(parse_range("bytes=-2000", 1000), ByteRange(0, 999, 1000))

    def test_unit_case_insensitive(self) -> None:
        """
        The unit is matched without regard to case.
        """
        self.assertEqual(parse_range("Bytes=1-2", 10), ByteRange(1, 2, 10))

    def test_whitespace_around(self) -> None:
        """
        Whitespace around the value and around the one range is tolerated, as
        is an empty list element.
        """
        self.assertEqual(parse_range("  bytes= 1-2 ", 10), ByteRange(1, 2, 10))
        self.assertEqual(parse_range("bytes=1-2,", 10), ByteRange(1, 2, 10))

    def test_ignored(self) -> None:
        """
        Headers S3 cannot use are ignored: the whole object is sent.
        """
        for header in [
            "bytes=0-1,5-6",
            "bytes=-1,-2",
            "items=0-1",
            "0-1",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=abc",
            "bytes=5-1",
            "bytes=1-2-3",
            "bytes=1 -2",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes=\u0661-\u0662",
            "bytes 0-1",
            "",
        ]:
            with self.subTest(header=header):
                self.assertIsNone(parse_range(header, 1000))

    def test_start_past_end(self) -> None:
        """
        A range starting at or after the end is unsatisfiable: 416
        ``InvalidRange`` with ``Content-Range: bytes */size`` and the
        requested range and size in the error.
        """
        error = self.assertRaises(S3Error, parse_range, "bytes=1000-", 1000)
        self.assertEqual(error.code, "InvalidRange")
        self.assertEqual(error.status, 416)
        self.assertEqual(error.headers, (("content-range", "bytes */1000"),))
        self.assertEqual(
            error.extra,
            (("RangeRequested", "bytes=1000-"), ("ActualObjectSize", "1000")),
        )
        self.assertRaises(S3Error, parse_range, "bytes=1000-2000", 1000)

    def test_suffix_zero(self) -> None:
        """
        ``bytes=-0`` is unsatisfiable.
        """
        error = self.assertRaises(S3Error, parse_range, "bytes=-0", 1000)
        self.assertEqual(error.code, "InvalidRange")

    def test_empty_object(self) -> None:
        """
        Any well-formed range of an empty object is unsatisfiable.
        """
        for header in ["bytes=0-0", "bytes=0-", "bytes=-5", "bytes=0-100"]:
            with self.subTest(header=header):
                error = self.assertRaises(S3Error, parse_range, header, 0)
                self.assertEqual(error.headers, (("content-range", "bytes */0"),))
        self.assertIsNone(parse_range("bytes=3-1", 0))

    @given(spec=_specs, size=_sizes, upper=st.booleans())
    def test_model(self, spec: tuple[str, int, int], size: int, upper: bool) -> None:
        """
        A single range gives exactly the bytes a set-of-positions model
        selects: none is unsatisfiable, a malformed spec is ignored.
        """
        header = ("BYTES=" if upper else "bytes=") + _render(spec)
        expected = _selected(spec, size)
        if expected is None:
            self.assertIsNone(parse_range(header, size))
        elif not expected:
            error = self.assertRaises(S3Error, parse_range, header, size)
            self.assertEqual(error.code, "InvalidRange")
            self.assertIn(("RangeRequested", header), error.extra)
        else:
            self.assertEqual(
                parse_range(header, size),
                ByteRange(expected[0], expected[-1], size),
            )

    @given(specs=st.lists(_specs, min_size=2, max_size=4), size=_sizes)
    def test_several_ranges_ignored(
        self, specs: list[tuple[str, int, int]], size: int
    ) -> None:
        """
        A header with several ranges is ignored, whatever they are.
        """
        header = "bytes=" + ", ".join(_render(spec) for spec in specs)
        self.assertIsNone(parse_range(header, size))

    @given(
        header=st.one_of(
            st.text(),
            st.text(alphabet="bytes=-0123456789, \t").map(lambda t: "bytes=" + t),
        ),
        size=_sizes,
    )
    def test_any_text(self, header: str, size: int) -> None:
        """
        Whatever the header, the answer is nothing, a range inside the
        object, or ``InvalidRange``.
        """
        try:
            selected = parse_range(header, size)
        except S3Error as e:
            self.assertEqual(e.code, "InvalidRange")
            return
        if selected is not None:
            self.assertTrue(0 <= selected.start <= selected.end < size)
            self.assertEqual(selected.size, size)
