# -*- test-case-name: tests.unit.test_metering_report -*-
"""
``multistore usage``: what each bucket's callers moved, from the usage
records in Redis.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final, TextIO

from attrs import asdict, define

from multistore.metering.counters import BYTES_IN, BYTES_OUT, REQUESTS, Keys

_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """
    :return: the seconds ``text`` says: ``90``, ``90s``, ``30m``, ``1h``,
        ``7d``.
    :raise ValueError: for anything else.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (say 90s, 30m, 1h or 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@define
class UsageRow:
    """
    What one caller did with one bucket.
    """

    bucket: str | None
    principal: str
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


def _covers(wanted: str | None, caller: str) -> bool:
    if wanted is None:
        return True
    if wanted == "anonymous":
        return caller.startswith("anonymous@")
    return caller == wanted


def summarize(
    records: Iterable[tuple[str, dict[str, int]]],
    keys: Keys,
    *,
    bucket: str | None = None,
    principal: str | None = None,
) -> list[UsageRow]:
    """
    Add up usage records per (bucket, caller).

    :param principal: only this caller; ``anonymous`` for every anonymous
        one.
    """
    rows: dict[tuple[str | None, str], UsageRow] = {}
    for key, counters in records:
        parsed = keys.parse(key)
        if parsed is None:
            continue
        name, caller, _, _ = parsed
        if bucket is not None and name != bucket:
            continue
        if not _covers(principal, caller):
            continue
        row = rows.setdefault((name, caller), UsageRow(name, caller))
        row.requests += counters.get(REQUESTS, 0)
        row.bytes_in += counters.get(BYTES_IN, 0)
        row.bytes_out += counters.get(BYTES_OUT, 0)
    return sorted(rows.values(), key=lambda r: (r.bucket or "", r.principal))


def write_table(rows: Sequence[UsageRow], out: TextIO) -> None:
    """
    Write ``rows`` as a table for people.
    """
    header = ("BUCKET", "PRINCIPAL", "REQUESTS", "BYTES IN", "BYTES OUT")
    lines = [header] + [
        (
            r.bucket or "-",
            r.principal,
            str(r.requests),
            str(r.bytes_in),
            str(r.bytes_out),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.write("  ".join(cells).rstrip() + "\n")


def write_json(rows: Sequence[UsageRow], since: float, out: TextIO) -> None:
    """
    Write ``rows`` as one JSON document.
    """
    document: dict[str, Any] = {
        "since_seconds": since,
        "usage": [asdict(r) for r in rows],
    }
    out.write(json.dumps(document, indent=2) + "\n")
