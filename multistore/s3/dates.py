# -*- test-case-name: tests.unit.test_s3_conditions,tests.unit.test_s3_xml,tests.unit.test_sigv4 -*-
"""
Times as HTTP and S3 write them: HTTP-dates (``Sun, 06 Nov 1994 08:49:37
GMT``, and the two obsolete forms RFC 9110 still asks recipients to read)
and S3's ISO 8601 (``2024-01-01T00:00:00.000Z``). Names of days and months
are always English, whatever the locale.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Final

_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAYS: Final = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_MONTH_NUMBER: Final = {name.lower(): number for number, name in enumerate(_MONTHS, 1)}

_DAY: Final = "(?:" + "|".join(_DAYS) + ")"
_LONG_DAY: Final = "(?:" + "|".join(_LONG_DAYS) + ")"
_MONTH: Final = "(" + "|".join(_MONTHS) + ")"
_TIME: Final = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
_FLAGS: Final = re.ASCII | re.IGNORECASE

# Sun, 06 Nov 1994 08:49:37 GMT (a one-digit day is tolerated)
_IMF_FIXDATE: Final = re.compile(
    rf"{_DAY}, ([0-9]{{1,2}}) {_MONTH} ([0-9]{{4}}) {_TIME} GMT", _FLAGS
)
# Sunday, 06-Nov-94 08:49:37 GMT
_RFC850_DATE: Final = re.compile(
    rf"{_LONG_DAY}, ([0-9]{{2}})-{_MONTH}-([0-9]{{2}}) {_TIME} GMT", _FLAGS
)
# Sun Nov  6 08:49:37 1994
_ASCTIME_DATE: Final = re.compile(
    rf"{_DAY} {_MONTH} ( [0-9]|[0-9]{{2}}) {_TIME} ([0-9]{{4}})", _FLAGS
)


_ISO8601: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]+))?\s*(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?",
    re.ASCII,
)


def format_http_date(when: datetime) -> str:
    """
    :param when: an aware datetime (a naive one is taken as UTC).
    :return: ``when`` as an IMF-fixdate, such as
        ``Sun, 06 Nov 1994 08:49:37 GMT``, to the whole second (rounded down).
    """
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return (
        f"{_DAYS[when.weekday()]}, {when.day:02d} {_MONTHS[when.month - 1]} "
        f"{when.year:04d} {when.hour:02d}:{when.minute:02d}:{when.second:02d} GMT"
    )


def _build(
    year: int, month: str, day: str, hour: str, minute: str, second: str
) -> datetime | None:
    try:
        return datetime(
            year,
            _MONTH_NUMBER[month.lower()],
            int(day),
            int(hour),
            int(minute),
            # A leap second (60) is valid in an HTTP-date, not in a datetime.
            min(int(second), 59),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def parse_http_date(value: str | None, now: datetime | None = None) -> datetime | None:
    """
    Parse an HTTP-date in IMF-fixdate, RFC 850 or asctime format, or a
    date with a numeric zone as RFC 5322 writes it.

    :param value: the header value.
    :param now: the current time, used to place an RFC 850 two-digit year in
        its century (a year more than 50 years ahead is taken from the
        previous century); defaults to the system clock.
    :return: an aware UTC datetime, or ``None`` if ``value`` is absent or is
        not an HTTP-date.
    """
    if value is None:
        return None
    value = value.strip(" \t")
    match = _IMF_FIXDATE.fullmatch(value)
    if match is not None:
        day, month, year, hour, minute, second = match.groups()
        return _build(int(year), month, day, hour, minute, second)
    match = _RFC850_DATE.fullmatch(value)
    if match is not None:
        day, month, short_year, hour, minute, second = match.groups()
        current = (now or datetime.now(UTC)).year
        year = current - current % 100 + int(short_year)
        if year > current + 50:
            year -= 100
        return _build(year, month, day, hour, minute, second)
    match = _ASCTIME_DATE.fullmatch(value)
    if match is not None:
        month, day, hour, minute, second, year = match.groups()
        return _build(int(year), month, day.strip(), hour, minute, second)
    return _rfc5322_date(value)


def _rfc5322_date(value: str) -> datetime | None:
    # The e-mail form with a numeric zone ("Tue, 27 Mar 2007 19:36:42
    # +0000"), which AWS's own signing examples put in Date headers.
    if not re.search(r"[+-][0-9]{4}$", value):
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # "-0000" means UTC with no claim about local time.
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def format_iso8601(dt: datetime) -> str:
    """
    Format a time as S3 XML does: ``2024-01-01T00:00:00.000Z``.

    :param dt: the time; a naive one is taken to be UTC.
    :return: the time in UTC, to the millisecond.
    """
    utc = as_utc(dt)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}."
        f"{utc.microsecond // 1000:03d}Z"
    )


def parse_iso8601(text: str) -> datetime:
    """
    Read an ISO 8601 time as stores write it: with or without fractional
    seconds (any number of digits, kept to the microsecond), with ``Z`` or
    a UTC offset (none means UTC).

    :param text: the time.
    :return: an aware datetime.
    :raise ValueError: if ``text`` is not such a time.
    """
    match = _ISO8601.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zulu, sign, offset_hours, offset_minutes = match.groups()[6:]
    microsecond = int((fraction or "")[:6].ljust(6, "0"))
    zone = UTC
    if sign is not None and zulu is None:
        offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
        zone = timezone(-offset if sign == "-" else offset)
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone)


def as_utc(dt: datetime) -> datetime:
    """
    :return: ``dt`` in UTC; a naive time is taken to be UTC already.
    """
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
