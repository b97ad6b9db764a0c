# -*- test-case-name: tests.unit.test_s3_ranges -*-
"""
The ``Range`` request header, as S3 reads it.

S3 serves one byte range per request. A header it cannot use (another unit,
several ranges, anything that does not parse) is ignored and the whole object
is sent with 200; a well-formed range that selects no byte of the object
fails with 416 ``InvalidRange``.
"""

from __future__ import annotations

import re
from typing import Final

from attrs import frozen

from multistore.s3.errors import S3Error

# One range-spec: ``first-last``, ``first-`` or ``-suffix``. Digits are ASCII
# only; no whitespace is allowed inside a spec (RFC 9110, section 14.1.1).
_SPEC: Final = re.compile(r"([0-9]*)-([0-9]*)", re.ASCII)

#: Larger than any object; stands in for longer numbers, so int() never
#: reads an unbounded string.
_HUGE: Final = 10**20

_UNIT: Final = re.compile(r"bytes=", re.ASCII | re.IGNORECASE)


@frozen
class ByteRange:
    """
    A satisfiable byte range of an object.

    :ivar start: the first byte, counted from 0.
    :ivar end: the last byte, inclusive; at most ``size - 1``.
    :ivar size: the whole object's size, in bytes.
    """

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        """
        The number of bytes in the range.
        """
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        """
        The ``Content-Range`` value of a 206 response for this range, such as
        ``bytes 0-99/1000``.
        """
        return f"bytes {self.start}-{self.end}/{self.size}"


def _unsatisfiable(header: str, size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        headers=(("content-range", f"bytes */{size}"),),
        extra=(("RangeRequested", header), ("ActualObjectSize", str(size))),
    )


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """
    Interpret a ``Range`` header against an object of ``size`` bytes.

    ``bytes=a-b`` selects bytes ``a`` to ``b`` (``b`` is clamped to the last
    byte), ``bytes=a-`` everything from ``a``, and ``bytes=-n`` the last
    ``n`` bytes (the whole object if it is shorter).

    :param header: the header value as sent, or ``None`` if absent.
    :param size: the object's size in bytes.
    :return: the range to send with 206, or ``None`` to send the whole object
        with 200: the header is absent, names another unit, lists several
        ranges, or does not parse (including ``b < a``).
    :raise S3Error: ``InvalidRange`` (416) for a well-formed range that
        selects nothing: it starts at or after the end of the object (any
        range of an empty object), or is the suffix ``-0``.
    """
    if header is None:
        return None
    value = header.strip(" \t")
    unit = _UNIT.match(value)
    if unit is None:
        return None
    specs = [s.strip(" \t") for s in value[unit.end() :].split(",")]
    specs = [s for s in specs if s]
    if len(specs) != 1:
        return None
    spec = _SPEC.fullmatch(specs[0])
    if spec is None:
        return None
    first, last = spec.group(1), spec.group(2)
    if first:
        start = _number(first)
        if last:
            end = _number(last)
            if _magnitude(last) < _magnitude(first):
                return None
        else:
            end = size - 1
        if start >= size:
            raise _unsatisfiable(header, size)
        return ByteRange(start=start, end=min(end, size - 1), size=size)
    if not last:
        return None
    suffix = _number(last)
    if suffix == 0 or size == 0:
        raise _unsatisfiable(header, size)
    return ByteRange(start=max(size - suffix, 0), end=size - 1, size=size)


def _number(digits: str) -> int:
    return _HUGE if len(digits) > 20 else int(digits)


def _magnitude(digits: str) -> tuple[int, str]:
    # Orders decimal strings by value without reading them as numbers.
    significant = digits.lstrip("0")
    return (len(significant), significant)
