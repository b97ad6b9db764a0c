"""
Tests for L{multistore.s3.conditions}.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from multistore.s3.conditions import NotModified, evaluate, parse_entity_tags
from multistore.s3.dates import format_http_date, parse_http_date
from multistore.s3.errors import S3Error

ETAG = '"0123456789abcdef0123456789abcdef-1"'
OPAQUE = "0123456789abcdef0123456789abcdef-1"
MODIFIED = datetime(2024, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
NOW = datetime(2025, 6, 1, tzinfo=UTC)

#: Visible ASCII but the double quote: what a quoted entity tag may hold.
_ETAGC = "".join(chr(c) for c in range(0x21, 0x7F) if c != 0x22)

#: HTTP-dates relative to MODIFIED.
AT = "Fri, 01 Mar 2024 12:00:00 GMT"
BEFORE = "Fri, 01 Mar 2024 11:59:59 GMT"
AFTER = "Fri, 01 Mar 2024 12:00:01 GMT"


def _outcome(method: str = "GET", **headers: str | None) -> str:
    """
    Evaluate the headers against ETAG and MODIFIED.

    :return: ``"proceed"``, ``"304"`` or ``"412 <Condition>"``.
    """
    try:
        evaluate(ETAG, MODIFIED, method=method, now=NOW, **headers)  # type: ignore[arg-type]
    except NotModified:
        return "304"
    except S3Error as e:
        assert e.code == "PreconditionFailed" and e.status == 412
        return "412 " + dict(e.extra)["Condition"]
    return "proceed"


class ParseHttpDateTests(SynchronousTestCase):
    """
    Tests for L{parse_http_date} and L{format_http_date}.
    """

    expected = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)

    def test_imf_fixdate(self) -> None:
        """
        The preferred format parses.
        """
        self.assertEqual(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), self.expected
        )

    def test_rfc850(self) -> None:
        """
        The obsolete RFC 850 format parses.
        """
        self.assertEqual(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", NOW), self.expected
        )

    def test_asctime(self) -> None:
        """
        The asctime format parses, with a space-padded or two-digit day.
        """
        self.assertEqual(parse_http_date("Sun Nov  6 08:49:37 1994"), self.expected)
        self.assertEqual(parse_http_date("Sun Nov 06 08:49:37 1994"), self.expected)

    def test_tolerances(self) -> None:
        """
        Surrounding whitespace, a one-digit day and any letter case are
        tolerated.
        """
        self.assertEqual(
            parse_http_date(" Sun, 6 Nov 1994 08:49:37 GMT "), self.expected
        )
        self.assertEqual(
            parse_http_date("sun, 06 nov 1994 08:49:37 gmt"), self.expected
        )

    def test_two_digit_year(self) -> None:
        """
        An RFC 850 year is placed so that it is at most 50 years ahead.
        """
        self.assertEqual(
            parse_http_date("Sunday, 06-Nov-30 08:49:37 GMT", NOW),
            datetime(2030, 11, 6, 8, 49, 37, tzinfo=UTC),
        )
        self.assertEqual(
            parse_http_date("Sunday, 06-Nov-80 08:49:37 GMT", NOW),
            datetime(1980, 11, 6, 8, 49, 37, tzinfo=UTC),
        )

    def test_leap_second(self) -> None:
        """
        A leap second is read as the second before it.
        """
        self.assertEqual(
            parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT"),
            datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC),
        )

    def test_invalid(self) -> None:
        """
        Anything else is not a date.
        """
        for value in [
            None,
            "",
            "yesterday",
            "2024-03-01T12:00:00Z",
            "Fri, 30 Feb 2024 12:00:00 GMT",
            "Fri, 01 Mar 2024 25:00:00 GMT",
            "Fri, 01 Mar 2024 12:00:00 PST",
            "Fri, 01 Foo 2024 12:00:00 GMT",
            "Fri, 01 Mar 2024 12:00:00 GMT, Fri, 01 Mar 2024 12:00:00 GMT",
            "Fri, \u0661\u0662 Mar 2024 12:00:00 GMT",
        ]:
            with self.subTest(value=value):
                self.assertIsNone(parse_http_date(value))

    def test_format(self) -> None:
        """
        Dates are formatted as IMF-fixdate in GMT, to the whole second.
        """
        self.assertEqual(
            format_http_date(datetime(1994, 11, 6, 8, 49, 37, 999999, tzinfo=UTC)),
            "Sun, 06 Nov 1994 08:49:37 GMT",
        )
        elsewhere = datetime(
            1994, 11, 6, 12, 49, 37, tzinfo=timezone(timedelta(hours=2))
        )
        self.assertEqual(format_http_date(elsewhere), "Sun, 06 Nov 1994 10:49:37 GMT")

    @given(
        when=st.datetimes(
            min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
        )
    )
    def test_round_trip(self, when: datetime) -> None:
        """
        Formatting then parsing gives the time back, to the second.
        """
        when = when.replace(tzinfo=UTC)
        self.assertEqual(
            parse_http_date(format_http_date(when)), when.replace(microsecond=0)
        )

    @given(value=st.text())
    def test_any_text(self, value: str) -> None:
        """
        Parsing never raises.
        """
        result = parse_http_date(value, NOW)
        if result is not None:
            self.assertEqual(result.tzinfo, UTC)


class ParseEntityTagsTests(SynchronousTestCase):
    """
    Tests for L{parse_entity_tags}.
    """

    def test_list(self) -> None:
        """
        Quoted, weak and bare tags are split on commas.
        """
        self.assertEqual(
            parse_entity_tags('"a", W/"b",c ,  "d,e"'),
            [(False, "a"), (True, "b"), (False, "c"), (False, "d,e")],
        )

    def test_wildcard(self) -> None:
        """
        The wildcard is a bare ``*``.
        """
        self.assertEqual(parse_entity_tags("*"), [(False, "*")])

    def test_empty_elements(self) -> None:
        """
        Empty list elements are skipped.
        """
        self.assertEqual(parse_entity_tags(' , "a",, '), [(False, "a")])

    def test_unterminated(self) -> None:
        """
        An unterminated quote runs to the end.
        """
        self.assertEqual(parse_entity_tags('"abc'), [(False, "abc")])

    @given(
        tags=st.lists(
            st.tuples(
                st.booleans(),
                st.text(
                    alphabet=_ETAGC,
                    min_size=1,
                ),
            ),
            max_size=5,
        )
    )
    def test_round_trip(self, tags: list[tuple[bool, str]]) -> None:
        """
        A list of quoted tags parses back to the tags.
        """
        value = ", ".join(('W/"%s"' if weak else '"%s"') % tag for weak, tag in tags)
        self.assertEqual(parse_entity_tags(value), tags)


class EvaluateTests(SynchronousTestCase):
    """
    Tests for L{evaluate}.
    """

    def test_nothing(self) -> None:
        """
        Without conditions the request proceeds.
        """
        self.assertEqual(_outcome(), "proceed")

    def test_if_match(self) -> None:
        """
        ``If-Match`` holds for the tag quoted or bare, in a list, or ``*``.
        """
        for value in [ETAG, OPAQUE, f'"x", {ETAG}', "*", f"x,{OPAQUE}"]:
            with self.subTest(value=value):
                self.assertEqual(_outcome(if_match=value), "proceed")

    def test_if_match_fails(self) -> None:
        """
        ``If-Match`` with other tags, or only a weak one, fails with 412.
        """
        for value in ['"other"', f"W/{ETAG}", '"0123"', ","]:
            with self.subTest(value=value):
                self.assertEqual(_outcome(if_match=value), "412 If-Match")

    def test_if_none_match(self) -> None:
        """
        ``If-None-Match`` that matches (weakly, bare, in a list, or ``*``)
        answers 304 to GET and HEAD.
        """
        for value in [ETAG, OPAQUE, f"W/{ETAG}", f'"x", {ETAG}', "*"]:
            for method in ["GET", "HEAD", "get"]:
                with self.subTest(value=value, method=method):
                    self.assertEqual(_outcome(method, if_none_match=value), "304")

    def test_if_none_match_other_method(self) -> None:
        """
        ``If-None-Match`` that matches fails other methods with 412.
        """
        self.assertEqual(_outcome("PUT", if_none_match="*"), "412 If-None-Match")

    def test_if_none_match_holds(self) -> None:
        """
        ``If-None-Match`` with other tags lets the request proceed.
        """
        self.assertEqual(_outcome(if_none_match='"other", W/"x"'), "proceed")

    def test_if_modified_since(self) -> None:
        """
        ``If-Modified-Since`` at or after the modification (to the second)
        answers 304; before it, the request proceeds.
        """
        self.assertEqual(_outcome(if_modified_since=AT), "304")
        self.assertEqual(_outcome(if_modified_since=AFTER), "304")
        self.assertEqual(_outcome(if_modified_since=BEFORE), "proceed")

    def test_if_modified_since_ignored(self) -> None:
        """
        ``If-Modified-Since`` is ignored if it does not parse, lies in the
        future, or the method is not GET or HEAD.
        """
        self.assertEqual(_outcome(if_modified_since="soon"), "proceed")
        future = format_http_date(NOW + timedelta(days=1))
        self.assertEqual(_outcome(if_modified_since=future), "proceed")
        self.assertEqual(_outcome("PUT", if_modified_since=AT), "proceed")

    def test_if_unmodified_since(self) -> None:
        """
        ``If-Unmodified-Since`` before the modification fails with 412; at or
        after it, the request proceeds.
        """
        self.assertEqual(
            _outcome(if_unmodified_since=BEFORE), "412 If-Unmodified-Since"
        )
        self.assertEqual(_outcome(if_unmodified_since=AT), "proceed")
        self.assertEqual(_outcome(if_unmodified_since="never"), "proceed")

    def test_if_match_beats_if_unmodified_since(self) -> None:
        """
        ``If-Match`` that holds makes ``If-Unmodified-Since`` irrelevant (S3
        answers 200).
        """
        self.assertEqual(_outcome(if_match=ETAG, if_unmodified_since=BEFORE), "proceed")
        self.assertEqual(
            _outcome(if_match='"x"', if_unmodified_since=AT), "412 If-Match"
        )

    def test_if_none_match_beats_if_modified_since(self) -> None:
        """
        ``If-None-Match`` that fails answers 304 even though
        ``If-Modified-Since`` holds; one that holds makes it irrelevant.
        """
        self.assertEqual(_outcome(if_none_match=ETAG, if_modified_since=BEFORE), "304")
        self.assertEqual(_outcome(if_none_match='"x"', if_modified_since=AT), "proceed")

    def test_412_before_304(self) -> None:
        """
        A failed ``If-Match`` or ``If-Unmodified-Since`` wins over a 304.
        """
        self.assertEqual(_outcome(if_match='"x"', if_none_match=ETAG), "412 If-Match")
        self.assertEqual(
            _outcome(if_unmodified_since=BEFORE, if_modified_since=AT),
            "412 If-Unmodified-Since",
        )

    def test_blank_is_absent(self) -> None:
        """
        A header with an empty value counts as absent.
        """
        self.assertEqual(_outcome(if_match="", if_none_match="  "), "proceed")

    def test_naive_times(self) -> None:
        """
        A naive modification time is taken as UTC.
        """
        with self.assertRaises(NotModified):
            evaluate(
                ETAG,
                MODIFIED.replace(tzinfo=None),
                if_modified_since=AT,
                now=NOW,
            )

    @given(
        method=st.sampled_from(["GET", "HEAD", "PUT"]),
        match=st.sampled_from([None, True, False]),
        none_match=st.sampled_from([None, True, False]),
        modified_since=st.sampled_from([None, True, False]),
        unmodified_since=st.sampled_from([None, True, False]),
    )
    def test_order(
        self,
        method: str,
        match: bool | None,
        none_match: bool | None,
        modified_since: bool | None,
        unmodified_since: bool | None,
    ) -> None:
        """
        Any combination of the four conditions, each absent, holding or
        failing, gives the outcome of RFC 9110 section 13.2.2's steps.
        """
        headers = {
            "if_match": None if match is None else (ETAG if match else '"x"'),
            "if_none_match": (
                None if none_match is None else ('"x"' if none_match else ETAG)
            ),
            "if_modified_since": (
                None if modified_since is None else (BEFORE if modified_since else AT)
            ),
            "if_unmodified_since": (
                None
                if unmodified_since is None
                else (AT if unmodified_since else BEFORE)
            ),
        }
        safe = method in {"GET", "HEAD"}
        # Step 1 and 2.
        if match is False:
            expected = "412 If-Match"
        elif match is None and unmodified_since is False:
            expected = "412 If-Unmodified-Since"
        # Step 3.
        elif none_match is False:
            expected = "304" if safe else "412 If-None-Match"
        # Step 4.
        elif none_match is None and safe and modified_since is False:
            expected = "304"
        else:
            expected = "proceed"
        self.assertEqual(_outcome(method, **headers), expected)


class NumericZoneTests(SynchronousTestCase):
    """
    Dates with a numeric zone, as AWS's signing examples write them.
    """

    def test_zones(self) -> None:
        """
        ``+0000``, ``-0000`` and other offsets are read as the time they
        name, never as local time.
        """
        expected = datetime(2007, 3, 27, 19, 36, 42, tzinfo=UTC)
        for value in (
            "Tue, 27 Mar 2007 19:36:42 +0000",
            "Tue, 27 Mar 2007 19:36:42 -0000",
            "Tue, 27 Mar 2007 21:36:42 +0200",
        ):
            self.assertEqual(parse_http_date(value), expected, value)
