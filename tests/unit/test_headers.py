"""
Tests for L{multistore.headers}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from multistore.headers import NO_HEADERS, HeaderList

#: Header names as hypothesis draws them: token characters, any case.
names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
    min_size=1,
    max_size=12,
)
#: Header values: text with one character per wire byte.
values = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=20)
fields = st.lists(st.tuples(names, values), max_size=10)


class HeaderListTests(SynchronousTestCase):
    """
    L{HeaderList} is an immutable, ordered, case-insensitive list of fields.
    """

    def test_empty(self) -> None:
        """
        L{NO_HEADERS} has no fields.
        """
        self.assertEqual(len(NO_HEADERS), 0)
        self.assertEqual(list(NO_HEADERS), [])
        self.assertEqual(NO_HEADERS, HeaderList())
        self.assertEqual(NO_HEADERS.names(), set())
        self.assertIsNone(NO_HEADERS.get("anything"))

    def test_names_lower_cased(self) -> None:
        """
        Names are lower-cased on creation; values are kept as they are.
        """
        headers = HeaderList([("Content-Type", "Text/Plain"), ("X-AMZ-Date", "Z")])
        self.assertEqual(
            headers.fields, (("content-type", "Text/Plain"), ("x-amz-date", "Z"))
        )

    def test_case_insensitive_lookup(self) -> None:
        """
        C{get}, C{get_all} and C{in} ignore the case of the name asked for.
        """
        headers = HeaderList([("ETag", '"a"')])
        for name in ("etag", "ETag", "ETAG", "eTaG"):
            self.assertEqual(headers.get(name), '"a"')
            self.assertEqual(headers.get_all(name), ['"a"'])
            self.assertIn(name, headers)
        self.assertNotIn("etags", headers)

    def test_contains_non_text(self) -> None:
        """
        Only text names can be in a list.
        """
        headers = HeaderList([("etag", "x")])
        self.assertNotIn(b"etag", headers)
        self.assertNotIn(None, headers)

    def test_get_default(self) -> None:
        """
        C{get} of an absent name gives the default; of a present empty value,
        the empty value.
        """
        headers = HeaderList([("empty", "")])
        self.assertIsNone(headers.get("missing"))
        self.assertEqual(headers.get("missing", "d"), "d")
        self.assertEqual(headers.get("empty", "d"), "")

    def test_order(self) -> None:
        """
        Fields are kept in the order given, names interleaved as they were.
        """
        pairs = [("b", "1"), ("a", "2"), ("b", "3"), ("c", "4")]
        headers = HeaderList(pairs)
        self.assertEqual(list(headers), pairs)
        self.assertEqual(len(headers), 4)

    def test_repeated(self) -> None:
        """
        A repeated field keeps every value: C{get} gives the first,
        C{get_all} all of them in order.
        """
        headers = HeaderList(
            [("X-Amz-Meta-A", "one"), ("other", "x"), ("x-amz-meta-a", "two")]
        )
        self.assertEqual(headers.get("x-amz-meta-a"), "one")
        self.assertEqual(headers.get_all("X-Amz-Meta-A"), ["one", "two"])
        self.assertEqual(headers.get_all("missing"), [])
        self.assertEqual(headers.names(), {"x-amz-meta-a", "other"})

    def test_equality(self) -> None:
        """
        Lists are equal when their fields are, names compared lower-cased;
        order matters.
        """
        self.assertEqual(HeaderList([("A", "1")]), HeaderList([("a", "1")]))
        self.assertNotEqual(HeaderList([("a", "1")]), HeaderList([("a", "2")]))
        self.assertNotEqual(
            HeaderList([("a", "1"), ("b", "2")]), HeaderList([("b", "2"), ("a", "1")])
        )
        self.assertEqual(hash(HeaderList([("A", "1")])), hash(HeaderList([("a", "1")])))

    def test_immutable(self) -> None:
        """
        A list cannot be changed in place.
        """
        headers = HeaderList([("a", "1")])
        with self.assertRaises(AttributeError):
            headers.fields = ()  # type: ignore[misc]

    def test_iterable_input(self) -> None:
        """
        Any iterable of pairs, a generator included, makes a list.
        """
        headers = HeaderList((name, str(i)) for i, name in enumerate("AB"))
        self.assertEqual(list(headers), [("a", "0"), ("b", "1")])

    def test_with(self) -> None:
        """
        C{with_} gives a copy where the name has exactly the one value,
        placed last; the original is unchanged.
        """
        original = HeaderList([("a", "1"), ("B", "2"), ("a", "3"), ("c", "4")])
        changed = original.with_("A", "new")
        self.assertEqual(list(changed), [("b", "2"), ("c", "4"), ("a", "new")])
        self.assertEqual(original.get_all("a"), ["1", "3"])
        self.assertEqual(
            list(HeaderList([("x", "1")]).with_("Y", "2")), [("x", "1"), ("y", "2")]
        )

    def test_without(self) -> None:
        """
        C{without} drops every field of each name given, whatever the case;
        the original is unchanged.
        """
        original = HeaderList([("a", "1"), ("B", "2"), ("a", "3"), ("c", "4")])
        self.assertEqual(list(original.without("A", "c")), [("b", "2")])
        self.assertEqual(original.without("missing"), original)
        self.assertEqual(original.without(), original)
        self.assertEqual(len(original), 4)

    def test_plus(self) -> None:
        """
        C{plus} appends fields, lower-casing their names and keeping
        repeats.
        """
        original = HeaderList([("a", "1")])
        combined = original.plus([("A", "2"), ("B", "3")])
        self.assertEqual(list(combined), [("a", "1"), ("a", "2"), ("b", "3")])
        self.assertEqual(original.plus(HeaderList([("c", "4")])).get("C"), "4")
        self.assertEqual(list(original), [("a", "1")])

    def test_of(self) -> None:
        """
        C{of} takes pairs, then keyword arguments whose underscores become
        dashes.
        """
        headers = HeaderList.of(
            ("X-Pair", "p"), content_type="text/plain", x_amz_meta_a="m"
        )
        self.assertEqual(
            list(headers),
            [("x-pair", "p"), ("content-type", "text/plain"), ("x-amz-meta-a", "m")],
        )
        self.assertEqual(HeaderList.of(), NO_HEADERS)

    @given(fields)
    def test_round_trip(self, pairs: list[tuple[str, str]]) -> None:
        """
        A list holds exactly its fields, names lower-cased, in order.
        """
        headers = HeaderList(pairs)
        expected = [(name.lower(), value) for name, value in pairs]
        self.assertEqual(list(headers), expected)
        self.assertEqual(len(headers), len(pairs))
        self.assertEqual(headers.names(), {name for name, _ in expected})
        for name, _ in pairs:
            self.assertEqual(
                headers.get_all(name.upper()),
                [v for n, v in expected if n == name.lower()],
            )

    @given(fields, names, values)
    def test_with_property(
        self, pairs: list[tuple[str, str]], name: str, value: str
    ) -> None:
        """
        After C{with_}, the name has one value and every other field is
        unchanged, in order.
        """
        headers = HeaderList(pairs).with_(name, value)
        self.assertEqual(headers.get_all(name), [value])
        self.assertEqual(
            list(headers.without(name)), list(HeaderList(pairs).without(name))
        )

    @given(fields, st.lists(names, max_size=3))
    def test_without_property(
        self, pairs: list[tuple[str, str]], dropped: list[str]
    ) -> None:
        """
        After C{without}, none of the names is present and the rest are kept
        in order.
        """
        headers = HeaderList(pairs).without(*dropped)
        gone = {name.lower() for name in dropped}
        self.assertFalse(headers.names() & gone)
        self.assertEqual(
            list(headers),
            [(n.lower(), v) for n, v in pairs if n.lower() not in gone],
        )
