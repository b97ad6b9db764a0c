# -*- test-case-name: tests.unit.test_s3_conditions -*-
"""
Conditional requests: ``If-Match``, ``If-None-Match``, ``If-Modified-Since``
and ``If-Unmodified-Since``, evaluated as S3 does.

The order is RFC 9110's (section 13.2.2), which also gives S3's two
documented combinations: ``If-Match`` that holds makes ``If-Unmodified-Since``
irrelevant (200), and ``If-None-Match`` that fails answers 304 whatever
``If-Modified-Since`` says.

Entity tags are compared on their opaque part, with or without the quotes a
client may have left off; ``If-Match`` compares strongly (a ``W/`` tag never
matches), ``If-None-Match`` weakly. Dates are HTTP-dates in any of the three
formats of RFC 9110 section 5.6.7, compared to the whole second; a date that
does not parse is ignored, as is an ``If-Modified-Since`` in the future.

A header whose value is empty (or only whitespace) counts as absent.
"""

from __future__ import annotations

from datetime import UTC, datetime

from multistore.s3.dates import parse_http_date
from multistore.s3.errors import S3Error


class NotModified(Exception):
    """
    The client's copy is current: answer 304 with the object's ``ETag`` and
    ``Last-Modified`` and no body.
    """


def _opaque(tag: str) -> str:
    """
    The opaque part of an entity tag: without ``W/`` and quotes.
    """
    if tag.startswith("W/"):
        tag = tag[2:]
    if len(tag) >= 2 and tag.startswith('"') and tag.endswith('"'):
        tag = tag[1:-1]
    return tag


def parse_entity_tags(value: str) -> list[tuple[bool, str]]:
    """
    Split an ``If-Match`` or ``If-None-Match`` value into entity tags.

    Tags are separated by commas; each may be weak (``W/"x"``), quoted, or
    bare (``x``, which some clients send). A quoted tag may contain commas.

    :return: ``(weak, opaque)`` pairs in order; the wildcard is
        ``(False, "*")``.
    """
    tags: list[tuple[bool, str]] = []
    position, end = 0, len(value)
    while position < end:
        if value[position] in " \t,":
            position += 1
            continue
        weak = value.startswith("W/", position)
        if weak:
            position += 2
        if position < end and value[position] == '"':
            close = value.find('"', position + 1)
            if close == -1:
                close = end
            tags.append((weak, value[position + 1 : close]))
            comma = value.find(",", close)
            position = end if comma == -1 else comma
        else:
            comma = value.find(",", position)
            stop = end if comma == -1 else comma
            tags.append((weak, value[position:stop].strip(" \t")))
            position = stop
    return tags


def _if_match_holds(header: str, etag: str) -> bool:
    current = _opaque(etag)
    for weak, tag in parse_entity_tags(header):
        if tag == "*" and not weak:
            return True
        if not weak and tag == current:
            return True
    return False


def _if_none_match_holds(header: str, etag: str) -> bool:
    current = _opaque(etag)
    for weak, tag in parse_entity_tags(header):
        if tag == "*" and not weak:
            return False
        if tag == current:
            return False
    return True


def _given(value: str | None) -> str | None:
    if value is None or not value.strip(" \t"):
        return None
    return value


def _whole_second(when: datetime) -> datetime:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.replace(microsecond=0)


def _failed(condition: str) -> S3Error:
    return S3Error("PreconditionFailed", extra=(("Condition", condition),))


def evaluate(
    etag: str,
    last_modified: datetime,
    *,
    if_match: str | None = None,
    if_none_match: str | None = None,
    if_modified_since: str | None = None,
    if_unmodified_since: str | None = None,
    method: str = "GET",
    now: datetime | None = None,
) -> None:
    """
    Check a request's preconditions against an existing object.

    :param etag: the object's entity tag, quoted as in the ``ETag`` header.
    :param last_modified: when the object last changed (aware; a naive value
        is taken as UTC); compared to the whole second.
    :param if_match: the ``If-Match`` header, if sent.
    :param if_none_match: the ``If-None-Match`` header, if sent.
    :param if_modified_since: the ``If-Modified-Since`` header, if sent.
    :param if_unmodified_since: the ``If-Unmodified-Since`` header, if sent.
    :param method: the request method; only GET and HEAD can be answered
        with 304, and ``If-Modified-Since`` applies only to them.
    :param now: the current time, to ignore an ``If-Modified-Since`` in the
        future; defaults to the system clock.
    :return: ``None`` when the request should proceed.
    :raise NotModified: for a GET or HEAD the client already has current.
    :raise S3Error: ``PreconditionFailed`` (412), with a ``Condition``
        element naming the header that failed.
    """
    if_match = _given(if_match)
    if_none_match = _given(if_none_match)
    safe = method.upper() in {"GET", "HEAD"}
    modified = _whole_second(last_modified)
    if now is None:
        now = datetime.now(UTC)

    if if_match is not None:
        if not _if_match_holds(if_match, etag):
            raise _failed("If-Match")
    else:
        date = parse_http_date(if_unmodified_since, now)
        if date is not None and modified > date:
            raise _failed("If-Unmodified-Since")

    if if_none_match is not None:
        if not _if_none_match_holds(if_none_match, etag):
            if safe:
                raise NotModified()
            raise _failed("If-None-Match")
    elif safe:
        date = parse_http_date(if_modified_since, now)
        if date is not None and date <= _whole_second(now) and modified <= date:
            raise NotModified()
