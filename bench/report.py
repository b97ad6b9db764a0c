"""
The benchmark's results: one table of medians and ratios, the issue's
targets checked as ratios from the same run (PASS/FAIL, never an
assertion), written as Markdown, JSON and a PNG chart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import attrs
from attrs import frozen

from bench.environment import WAYS
from bench.workloads import Measurement

#: Seconds of latency a target allows, in milliseconds.
ADDED_LATENCY_MS: Final = 1.0


@frozen
class Target:
    """
    One of the issue's targets, checked on this run.

    :ivar name: what is checked.
    :ivar value: the measured figure (a ratio, milliseconds or MiB).
    :ivar limit: the bound.
    :ivar at_least: whether ``value`` must be at least ``limit`` (else at
        most).
    :ivar passed: the verdict; None when a figure is missing or errored.
    """

    name: str
    value: float | None
    limit: float
    at_least: bool
    passed: bool | None

    @property
    def verdict(self) -> str:
        """
        :return: C{PASS}, C{FAIL} or C{n/a}.
        """
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]


def _index(measurements: Sequence[Measurement]) -> dict[tuple[str, str], Measurement]:
    return {(m.workload, m.way): m for m in measurements}


def _ratio(
    table: dict[tuple[str, str], Measurement], workload: str, base: str
) -> float | None:
    ours, theirs = table.get((workload, "multistore")), table.get((workload, base))
    if (
        ours is None
        or theirs is None
        or ours.errors
        or theirs.errors
        or not theirs.rate
    ):
        return None
    return ours.rate / theirs.rate


def _check(name: str, value: float | None, limit: float, at_least: bool) -> Target:
    if value is None:
        return Target(name, None, limit, at_least, None)
    return Target(
        name, value, limit, at_least, value >= limit if at_least else value <= limit
    )


def targets(measurements: Sequence[Measurement]) -> list[Target]:
    """
    The issue's targets, from this run's figures.
    """
    table = _index(measurements)
    out = []
    for w in sorted({m.workload for m in measurements}):
        if w.startswith(("get256m", "put256m")):
            out.append(
                _check(
                    f"{w} throughput, multistore/direct",
                    _ratio(table, w, "direct"),
                    0.8,
                    True,
                )
            )
    for variant in ("anon", "sigv4", "presigned"):
        w = f"get1k-{variant}-c16"
        if (w, "multistore") in table:
            out.append(
                _check(
                    f"{w} rate, multistore/nginx", _ratio(table, w, "nginx"), 0.5, True
                )
            )
    for variant in ("anon", "sigv4", "presigned"):
        w = f"get1k-{variant}-c1"
        ours, direct = table.get((w, "multistore")), table.get((w, "direct"))
        if ours is None or direct is None:
            continue
        added = (
            None
            if ours.errors or direct.errors or ours.p50 is None or direct.p50 is None
            else ours.p50 - direct.p50
        )
        out.append(
            _check(f"{w} median latency added, ms", added, ADDED_LATENCY_MS, False)
        )
    for m in measurements:
        if m.workload.startswith("rss-") and m.workload.split("-")[1].startswith("16x"):
            value = None if m.errors else m.rate
            out.append(
                _check(f"{m.workload} daemon peak RSS, MiB", value, 100.0, False)
            )
    return out


def _cell(m: Measurement | None) -> str:
    if m is None:
        return "—"
    rate = f"{m.rate:,.0f}" if m.rate >= 100 else f"{m.rate:,.1f}"
    text = f"{rate} {m.unit}"
    if m.p50 is not None:
        text += f" · {m.p50:.2f}/{m.p90:.2f}/{m.p99:.2f} ms"
    if m.errors:
        text += f" · {m.errors} errors"
    return text


def _fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def markdown(
    measurements: Sequence[Measurement], checked: Sequence[Target], meta: dict[str, Any]
) -> str:
    """
    :return: the results as Markdown: the table, the targets, notes.
    """
    table = _index(measurements)
    workloads = list(dict.fromkeys(m.workload for m in measurements))
    # Ways beyond the three (multistore+redis) get a column after them, only
    # when measured.
    ways = list(dict.fromkeys([*WAYS, *(m.way for m in measurements)]))
    lines = [
        f"Run {meta.get('timestamp', '')} ({meta.get('mode', '')}); "
        "each cell: median rate · latency p50/p90/p99.",
        "",
        "| workload | " + " | ".join(ways) + " | ms/direct | ms/nginx |",
        "|---|" + "---|" * (len(ways) + 2),
    ]
    for w in workloads:
        cells = [_cell(table.get((w, way))) for way in ways]
        ratios = [_fmt_ratio(_ratio(table, w, base)) for base in ("direct", "nginx")]
        lines.append(f"| {w} | " + " | ".join(cells + ratios) + " |")
    lines += ["", "| target | value | limit | verdict |", "|---|---|---|---|"]
    for t in checked:
        value = "—" if t.value is None else f"{t.value:.2f}"
        bound = ("≥ " if t.at_least else "≤ ") + f"{t.limit:g}"
        lines.append(f"| {t.name} | {value} | {bound} | {t.verdict} |")
    notes = [m for m in measurements if m.note]
    if notes:
        lines.append("")
        lines += [f"- {m.workload} ({m.way}): {m.note}" for m in notes]
    return "\n".join(lines) + "\n"


def chart(measurements: Sequence[Measurement], path: Path, title: str) -> None:
    """
    Draw the ratios (multistore/direct, multistore/nginx) per workload, with
    the 0.5 and 0.8 target lines, and the median latencies of the three
    ways, into a PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = _index(measurements)
    compared = [
        w
        for w in dict.fromkeys(m.workload for m in measurements)
        if (w, "direct") in table and (w, "multistore") in table
    ]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(12, 9))
    xs = range(len(compared))
    for offset, base in ((-0.2, "direct"), (0.2, "nginx")):
        values = [_ratio(table, w, base) or 0.0 for w in compared]
        top.bar(
            [x + offset for x in xs], values, width=0.4, label=f"multistore / {base}"
        )
    for limit in (0.5, 0.8, 1.0):
        top.axhline(limit, linestyle="--", linewidth=0.8, color="grey")
    top.set_xticks(list(xs), compared, rotation=45, ha="right", fontsize=8)
    top.set_ylabel("rate ratio")
    top.set_title(title)
    top.legend()
    latency = [w for w in compared if table[(w, "multistore")].p50 is not None]
    lx = range(len(latency))
    for offset, way in ((-0.27, "direct"), (0.0, "nginx"), (0.27, "multistore")):
        values = []
        for w in latency:
            m = table.get((w, way))
            values.append(m.p50 if m is not None and m.p50 is not None else 0.0)
        bottom.bar([x + offset for x in lx], values, width=0.27, label=way)
    bottom.set_yscale("log")
    bottom.set_xticks(list(lx), latency, rotation=45, ha="right", fontsize=8)
    bottom.set_ylabel("median latency, ms (log)")
    bottom.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write(
    directory: Path,
    stamp: str,
    measurements: Sequence[Measurement],
    checked: Sequence[Target],
    meta: dict[str, Any],
) -> dict[str, Path]:
    """
    Write C{STAMP.md}, C{STAMP.json} and C{STAMP.png} into ``directory``.

    :return: the paths by kind.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / f"{stamp}.{kind}" for kind in ("md", "json", "png")}
    paths["md"].write_text(markdown(measurements, checked, meta))
    paths["json"].write_text(
        json.dumps(
            {
                "meta": meta,
                "measurements": [attrs.asdict(m) for m in measurements],
                "targets": [{**attrs.asdict(t), "verdict": t.verdict} for t in checked],
            },
            indent=2,
        )
        + "\n"
    )
    chart(
        measurements, paths["png"], f"multistore benchmark {stamp} ({meta.get('mode')})"
    )
    return paths
