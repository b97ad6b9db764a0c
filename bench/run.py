"""
``python -m bench [--tiny] [--only NAME,...] [--profile [WORKLOAD]]``: start
everything, run the workloads, print the table, write the results.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from bench import report
from bench.environment import environment
from bench.workloads import (
    FULL,
    TINY,
    WORKLOADS,
    Context,
    Measurement,
    scratch_directory,
    select,
    top_frames,
)

RESULTS: Path = Path(__file__).resolve().parent / "results"


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the benchmark; see C{docs/performance.md}.

    :return: the exit status: 0 when every selected workload ran (whatever
        the targets say), 1 when one failed.
    """
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="minimal sizes and durations: proves the harness works, measures nothing",
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated workloads or prefixes of them ({', '.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="get1k-anon-c16",
        metavar="WORKLOAD",
        help="py-spy the daemon during the first multistore run of WORKLOAD"
        " (a table row; default get1k-anon-c16)",
    )
    parser.add_argument("--duration", type=float, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, help="runs per small-request workload")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where to write the results"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs, data)"
    )
    args = parser.parse_args(argv)

    settings = TINY if args.tiny else FULL
    if args.duration is not None:
        settings = attrs.evolve(settings, duration=args.duration)
    if args.repeats is not None:
        settings = attrs.evolve(settings, repeats=args.repeats)
    try:
        names = list(select(args.only.split(",") if args.only else None))
    except ValueError as e:
        parser.error(str(e))

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = scratch_directory()
    profile = args.results / f"{stamp}-profile.txt" if args.profile else None
    measurements: list[Measurement] = []
    failed: list[str] = []
    started = time.monotonic()
    _say(
        f"multistore benchmark ({'tiny' if args.tiny else 'full'}), work directory {workdir}"
    )
    try:
        with environment(workdir / "servers") as env:
            ctx = Context(env, settings, workdir, profile, args.profile or "", _say)
            for name in names:
                _say(f"{name}:")
                try:
                    measurements += WORKLOADS[name](ctx)
                except Exception as e:
                    failed.append(name)
                    _say(f"  FAILED: {e!r}")
                if not env.daemon.running():
                    failed.append("multistore daemon")
                    _say(f"  the daemon died; see {env.daemon.log_path}")
                    break
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    meta = {
        "timestamp": stamp,
        "mode": "tiny" if args.tiny else "full",
        "settings": attrs.asdict(settings),
        "workloads": names,
        "failed": failed,
        "seconds": round(time.monotonic() - started, 1),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs",
        "python": sys.version.split()[0],
        "load": os.getloadavg(),
    }
    checked = report.targets(measurements)
    text = report.markdown(measurements, checked, meta)
    _say("")
    _say(text)
    if profile is not None and profile.exists():
        own, anywhere = top_frames(profile)
        summary = [f"py-spy, daemon during {args.profile} (self time):"]
        summary += [f"  {share:5.1f}%  {frame}" for frame, share in own]
        summary += ["py-spy, inclusive:"]
        summary += [f"  {share:5.1f}%  {frame}" for frame, share in anywhere]
        _, ours = top_frames(profile, 20, within="multistore/")
        summary += ["py-spy, multistore's own frames, inclusive:"]
        summary += [f"  {share:5.1f}%  {frame}" for frame, share in ours]
        profile.with_suffix(".top.txt").write_text("\n".join(summary) + "\n")
        _say("\n".join(summary))
    paths = report.write(args.results, stamp, measurements, checked, meta)
    _say(f"results: {paths['md']}, {paths['json']}, {paths['png']}")
    if failed:
        _say(f"FAILED workloads: {', '.join(failed)}")
        return 1
    return 0
