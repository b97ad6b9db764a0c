"""
The benchmark's workloads, each run the same way against each way in to a
backend, with load from real tools: C{wrk} for small requests (fixed URLs,
presigned URLs, or SigV4 headers signed once before the run), C{curl} for
large transfers, C{s5cmd} for the multipart upload, boto3 for listings.

Every loop is bounded in count and in time; every tool runs with a timeout.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from attrs import define, evolve, field, frozen
from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from bench.environment import (
    WAYS,
    Environment,
    Place,
    metering_config,
    redis_info,
    start_redis,
    worker_pool,
)
from tests.integration.servers import (
    BIN_DIR,
    DEFAULT_REGION,
    REPO_ROOT,
    ServerProcess,
    free_port,
    port_accepts,
    s3_client,
    start_daemon,
)

KIB: Final = 1024
MIB: Final = 1024 * KIB
GIB: Final = 1024 * MIB

#: Seconds a tool may run beyond what it was asked to run.
TOOL_SLACK: Final = 60.0

#: The way in of the C{get1k-metered} workload that goes through a daemon
#: metering every request with Redis (the C{multistore} way there: the
#: benchmark's daemon, without metering).
METERED_WAY: Final = "multistore+redis"


@frozen
class Settings:
    """
    Sizes, durations and counts of one benchmark run.

    :ivar duration: seconds of each C{wrk} run.
    :ivar warmup: seconds of C{wrk} before each measured run (not counted).
    :ivar repeats: measured runs of each small-request workload per way
        (the ways take turns); the table shows medians.
    :ivar concurrencies: connections for the 1 KiB GETs.
    :ivar range_object: size of the object the range reads pick from.
    :ivar range_length: bytes per range read.
    :ivar big_size: the "256 MiB" GET and PUT.
    :ivar big_count: transfers of it per way.
    :ivar multipart_size: the "1 GiB" multipart upload.
    :ivar part_size: its part size (four parts, four at a time).
    :ivar multipart_count: uploads per way.
    :ivar list_keys: keys under the listed prefix.
    :ivar list_count: listings per way (at most).
    :ivar list_time: seconds of listing per way (at most).
    :ivar rss_transfers: concurrent transfers while the daemon's RSS is
        watched.
    :ivar rss_size: bytes of each of them.
    :ivar worker_counts: process counts for the multi-process run.
    :ivar worker_concurrencies: its connection counts.
    :ivar metered_concurrencies: connections for the 1 KiB GETs with and
        without metering through Redis.
    """

    duration: float = 5.0
    warmup: float = 1.0
    repeats: int = 3
    concurrencies: tuple[int, ...] = (1, 16, 64)
    range_object: int = 64 * MIB
    range_length: int = 64 * KIB
    big_size: int = 256 * MIB
    big_count: int = 3
    multipart_size: int = GIB
    part_size: int = 256 * MIB
    multipart_count: int = 2
    list_keys: int = 1000
    list_count: int = 50
    list_time: float = 15.0
    rss_transfers: int = 16
    rss_size: int = 256 * MIB
    worker_counts: tuple[int, ...] = (1, 2)
    worker_concurrencies: tuple[int, ...] = (16, 64)
    metered_concurrencies: tuple[int, ...] = (1, 16)


#: What C{make bench} runs.
FULL: Final = Settings()

#: Every workload, as small and short as still means something: proves the
#: harness works (CI), measures nothing.
TINY: Final = Settings(
    duration=1.0,
    warmup=0.0,
    repeats=1,
    concurrencies=(1, 16),
    range_object=1 * MIB,
    big_size=4 * MIB,
    big_count=1,
    multipart_size=20 * MIB,
    part_size=5 * MIB,
    multipart_count=1,
    list_keys=20,
    list_count=3,
    list_time=5.0,
    rss_transfers=16,
    rss_size=2 * MIB,
    worker_concurrencies=(16,),
    metered_concurrencies=(16,),
)


@frozen
class Measurement:
    """
    One workload through one way in.

    :ivar workload: its name, e.g. C{get1k-anon-c16}.
    :ivar way: C{direct}, C{nginx} or C{multistore}; or C{multistore+redis}
        (L{METERED_WAY}).
    :ivar unit: what ``rate`` counts: C{req/s}, C{MiB/s}, or C{MiB} (a peak
        RSS).
    :ivar rate: the median rate over the runs (or the peak, for RSS).
    :ivar p50: median latency in milliseconds (None if not measured).
    :ivar p90: 90th percentile, milliseconds.
    :ivar p99: 99th percentile, milliseconds.
    :ivar samples: how many runs or transfers made it.
    :ivar errors: failed requests (non-2xx, socket errors); a workload with
        errors is not comparable.
    :ivar note: anything else worth saying.
    """

    workload: str
    way: str
    unit: str
    rate: float
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    samples: int = 1
    errors: int = 0
    note: str = ""


@define
class Context:
    """
    What every workload gets.

    :ivar env: the running servers.
    :ivar settings: sizes and durations.
    :ivar scratch: a directory for generated files.
    :ivar profile: where to write a py-spy profile of the daemon, or None.
    :ivar profile_workload: the workload whose first multistore run is
        profiled.
    :ivar say: progress output.
    """

    env: Environment
    settings: Settings
    scratch: Path
    profile: Path | None = None
    profile_workload: str = "get1k-anon-c16"
    say: Callable[[str], None] = print
    _files: dict[tuple[str, int], Path] = field(factory=dict)

    def static_object(self, name: str, size: int) -> str:
        """
        Make (once) an object of ``size`` bytes in the static backend.

        :return: its key.
        """
        key = f"{name}-{size}"
        if (key, size) not in self._files:
            path = (
                self.env.static_root / self.env.place("static", "direct").bucket / key
            )
            write_file(path, size)
            self._files[(key, size)] = path
        return key

    def local_file(self, size: int) -> Path:
        """
        Make (once) a file of ``size`` bytes to upload.
        """
        if ("upload", size) not in self._files:
            path = self.scratch / f"upload-{size}"
            write_file(path, size)
            self._files[("upload", size)] = path
        return self._files[("upload", size)]


def write_file(path: Path, size: int) -> None:
    """
    Write ``size`` bytes of incompressible data to ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(min(size, MIB))
    with path.open("wb") as f:
        left = size
        while left > 0:
            f.write(block[:left])
            left -= len(block)


def percentiles(values: Sequence[float]) -> tuple[float, float, float]:
    """
    :return: p50, p90, p99 of ``values`` (nearest rank).
    """
    ordered = sorted(values)

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]

    return rank(50), rank(90), rank(99)


def tool(name: str) -> str:
    """
    :return: the path of a load tool (the virtualenv's first, then C{PATH}).
    :raise RuntimeError: if it is missing.
    """
    candidate = BIN_DIR / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is missing (see docs/performance.md)")
    return found


# --- wrk ---------------------------------------------------------------------

_WRK_DONE: Final = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""

_WRK_RANGE: Final = """
local span, length = 0, 0
function init(args)
  span = tonumber(args[1])
  length = tonumber(args[2])
end
function request()
  local first = math.random(0, span / length - 1) * length
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["Range"] = "bytes=" .. first .. "-" .. (first + length - 1)
  return wrk.format(nil, nil, headers)
end
"""


@frozen
class WrkResult:
    """
    One C{wrk} run: rate in requests per second, latencies in milliseconds.
    """

    rate: float
    p50: float
    p90: float
    p99: float
    errors: int
    requests: int


def run_wrk(
    ctx: Context,
    url: str,
    connections: int,
    duration: float,
    *,
    headers: dict[str, str] | None = None,
    range_read: bool = False,
) -> WrkResult:
    """
    Run C{wrk} against ``url`` (keep-alive connections, at most two
    threads: this is a 2-core machine) and read its summary.
    """
    script = ctx.scratch / ("wrk-range.lua" if range_read else "wrk.lua")
    if not script.exists():
        script.write_text((_WRK_RANGE if range_read else "") + _WRK_DONE)
    argv = [
        tool("wrk"),
        "-t",
        str(min(2, connections)),
        "-c",
        str(connections),
        "-d",
        f"{max(duration, 0.5):g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    if range_read:
        argv += ["--", str(ctx.settings.range_object), str(ctx.settings.range_length)]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration + TOOL_SLACK,
        check=False,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}"
        )
    requests, micros, socket_errors, status_errors, p50, p90, p99 = (
        int(x) for x in line.split()[1:]
    )
    return WrkResult(
        requests / (micros / 1e6),
        p50 / 1000,
        p90 / 1000,
        p99 / 1000,
        socket_errors + status_errors,
        requests,
    )


def sigv4_headers(place: Place, key: str) -> dict[str, str]:
    """
    SigV4 headers for a GET of ``key`` at ``place``, signed now. S3 accepts
    the same signed request again for 15 minutes, so C{wrk} can replay it.
    """
    assert place.access_key is not None and place.secret_key is not None
    request = AWSRequest(method="GET", url=place.url(key))
    S3SigV4Auth(
        Credentials(place.access_key, place.secret_key), "s3", DEFAULT_REGION
    ).add_auth(request)
    return {
        name: request.headers[name]
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256")
    }


def presigned(place: Place, key: str, method: str = "get_object") -> str:
    """
    :return: a SigV4 presigned URL for ``key`` at ``place``, valid an hour.
    """
    client = s3_client(place.endpoint, place.access_key, place.secret_key)
    url: str = client.generate_presigned_url(
        method, Params={"Bucket": place.bucket, "Key": key}, ExpiresIn=3600
    )
    return url


def _wrk_workload(
    ctx: Context,
    workload: str,
    places: Sequence[Place],
    key: str,
    connections: int,
    request: Callable[[Place, str], tuple[str, dict[str, str]]],
    *,
    range_read: bool = False,
) -> list[Measurement]:
    """
    Run ``wrk`` ``repeats`` times per place, the places taking turns; report
    the median rate and median percentiles per place.
    """
    s = ctx.settings
    runs: dict[str, list[WrkResult]] = {p.way: [] for p in places}
    daemon_cpu = 0.0
    for repeat in range(s.repeats):
        for place in places:
            url, headers = request(place, key)
            if s.warmup > 0:
                run_wrk(
                    ctx,
                    url,
                    connections,
                    s.warmup,
                    headers=headers,
                    range_read=range_read,
                )
            measured = _is_daemon(ctx, place)
            before = _cpu_seconds([ctx.env.daemon.pid])[0] if measured else 0.0
            with profiling(ctx, workload, place.way, first=repeat == 0):
                result = run_wrk(
                    ctx,
                    url,
                    connections,
                    s.duration,
                    headers=headers,
                    range_read=range_read,
                )
            if measured:
                daemon_cpu += _cpu_seconds([ctx.env.daemon.pid])[0] - before
            runs[place.way].append(result)
    out = []
    for way, results in runs.items():
        out.append(
            Measurement(
                workload,
                way,
                "req/s",
                statistics.median(r.rate for r in results),
                statistics.median(r.p50 for r in results),
                statistics.median(r.p90 for r in results),
                statistics.median(r.p99 for r in results),
                samples=sum(r.requests for r in results),
                errors=sum(r.errors for r in results),
                note=_cpu_note(daemon_cpu, sum(r.requests for r in results))
                if way == "multistore" and daemon_cpu
                else "",
            )
        )
        ctx.say(
            f"  {workload:24} {way:10} {out[-1].rate:10.0f} req/s  p50 {out[-1].p50:.2f} ms"
        )
    return out


def _is_daemon(ctx: Context, place: Place) -> bool:
    return place.way == "multistore" and place.endpoint == ctx.env.daemon.url


def _cpu_note(seconds: float, requests: int) -> str:
    """
    The daemon's CPU time per request: steadier than rates on a shared
    machine, since it does not count time spent waiting for a core.
    """
    return f"daemon CPU {1e6 * seconds / max(requests, 1):.0f} µs per request"


def _anonymous(place: Place, key: str) -> tuple[str, dict[str, str]]:
    return place.url(key), {}


def _signed(place: Place, key: str) -> tuple[str, dict[str, str]]:
    return place.url(key), sigv4_headers(place, key)


def _presigned(place: Place, key: str) -> tuple[str, dict[str, str]]:
    return presigned(place, key), {}


def get_small(ctx: Context, variant: str) -> list[Measurement]:
    """
    1 KiB GETs at each concurrency: C{anon} against the static backend
    (anonymous through multistore), C{sigv4} and C{presigned} against
    SeaweedFS (signed with SeaweedFS's keys direct and through nginx, with
    multistore's through multistore, which signs again for SeaweedFS).
    """
    if variant == "anon":
        backend = "static"
        key = ctx.static_object("small", KIB)
        request = _anonymous
    else:
        backend = "seaweedfs"
        key = "small-1k"
        place = ctx.env.place("seaweedfs", "direct")
        s3_client(place.endpoint, place.access_key, place.secret_key).put_object(
            Bucket=place.bucket, Key=key, Body=os.urandom(KIB)
        )
        request = _signed if variant == "sigv4" else _presigned
    places = [ctx.env.place(backend, way) for way in WAYS]
    out = []
    for c in ctx.settings.concurrencies:
        out += _wrk_workload(
            ctx,
            f"get1k-{variant}-c{c}",
            places,
            key,
            c,
            request,
        )
    return out


def range_reads(ctx: Context) -> list[Measurement]:
    """
    64 KiB range reads at random aligned offsets of a large object on the
    static backend, anonymous, 16 connections.
    """
    key = ctx.static_object("range", ctx.settings.range_object)
    places = [ctx.env.place("static", way) for way in WAYS]
    return _wrk_workload(
        ctx, "range64k-c16", places, key, 16, _anonymous, range_read=True
    )


# --- curl --------------------------------------------------------------------


@frozen
class Transfer:
    """
    One C{curl} transfer: seconds and bytes.
    """

    seconds: float
    size: int
    ok: bool


def curl(url: str, *, upload: Path | None = None, timeout: float = 600.0) -> Transfer:
    """
    GET ``url`` into nothing, or PUT the file ``upload`` to it (with a
    Content-Length, without C{Expect: 100-continue}); time it.
    """
    argv = [tool("curl"), "-sS", "-o", "/dev/null", "-H", "Expect:"]
    if upload is not None:
        argv += ["-T", str(upload)]
        what = "%{size_upload}"
    else:
        what = "%{size_download}"
    argv += ["-w", f"%{{http_code}} {what} %{{time_total}}", url]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False
    )
    try:
        status, size, seconds = done.stdout.split()
    except ValueError:
        return Transfer(0.0, 0, False)
    return Transfer(
        float(seconds), int(float(size)), done.returncode == 0 and status == "200"
    )


def _transfer_measurement(
    workload: str, way: str, transfers: Sequence[Transfer], expected: int
) -> Measurement:
    good = [t for t in transfers if t.ok and t.size == expected]
    errors = len(transfers) - len(good)
    if not good:
        return Measurement(
            workload, way, "MiB/s", 0.0, errors=errors, note="all failed"
        )
    p50, p90, p99 = percentiles([t.seconds * 1000 for t in good])
    rate = statistics.median(t.size / MIB / t.seconds for t in good)
    return Measurement(workload, way, "MiB/s", rate, p50, p90, p99, len(good), errors)


def big_get(ctx: Context) -> list[Measurement]:
    """
    GET of one large object from the static backend, one at a time,
    anonymous; the rate is the median throughput of the transfers.
    """
    s = ctx.settings
    key = ctx.static_object("big", s.big_size)
    places = [ctx.env.place("static", way) for way in WAYS]
    runs: dict[str, list[Transfer]] = {p.way: [] for p in places}
    workload = f"get{_size(s.big_size)}"
    cpu: list[float] = []
    for i in range(s.big_count):
        for place in places:
            with (
                profiling(ctx, workload, place.way, first=i == 0),
                _daemon_cpu(ctx, place, cpu),
            ):
                runs[place.way].append(curl(place.url(key)))
    return _report_transfers(ctx, workload, runs, s.big_size, cpu)


def big_put(ctx: Context) -> list[Measurement]:
    """
    PUT of one large file to the static backend, one at a time: unsigned
    direct and through nginx, presigned through multistore.
    """
    s = ctx.settings
    source = ctx.local_file(s.big_size)
    places = [ctx.env.place("static", way) for way in WAYS]
    runs: dict[str, list[Transfer]] = {p.way: [] for p in places}
    workload = f"put{_size(s.big_size)}"
    cpu: list[float] = []
    for i in range(s.big_count):
        for place in places:
            key = f"put-{place.way}-{i}"
            url = (
                presigned(place, key, "put_object")
                if place.way == "multistore"
                else place.url(key)
            )
            with (
                profiling(ctx, workload, place.way, first=i == 0),
                _daemon_cpu(ctx, place, cpu),
            ):
                runs[place.way].append(curl(url, upload=source))
    return _report_transfers(ctx, workload, runs, s.big_size, cpu)


@contextlib.contextmanager
def _daemon_cpu(ctx: Context, place: Place, into: list[float]) -> Iterator[None]:
    """
    Add the daemon's CPU seconds during the block to ``into``, if ``place``
    is the daemon.
    """
    if not _is_daemon(ctx, place):
        yield
        return
    before = _cpu_seconds([ctx.env.daemon.pid])[0]
    yield
    into.append(_cpu_seconds([ctx.env.daemon.pid])[0] - before)


def _report_transfers(
    ctx: Context,
    workload: str,
    runs: dict[str, list[Transfer]],
    size: int,
    daemon_cpu: Sequence[float] = (),
) -> list[Measurement]:
    out = []
    for way, transfers in runs.items():
        m = _transfer_measurement(workload, way, transfers, size)
        if way == "multistore" and daemon_cpu:
            m = evolve(
                m,
                note=f"daemon CPU {statistics.median(daemon_cpu):.2f} s per transfer",
            )
        ctx.say(f"  {workload:24} {way:10} {m.rate:10.1f} MiB/s  errors {m.errors}")
        out.append(m)
    return out


def _size(size: int) -> str:
    if size >= GIB and size % GIB == 0:
        return f"{size // GIB}g"
    if size >= MIB:
        return f"{size // MIB}m"
    return f"{size // KIB}k"


# --- s5cmd: multipart upload -------------------------------------------------


def multipart(ctx: Context) -> list[Measurement]:
    """
    A multipart upload to SeaweedFS with C{s5cmd}: four parts, four at a
    time; each upload is deleted afterwards.
    """
    s = ctx.settings
    source = ctx.local_file(s.multipart_size)
    places = [ctx.env.place("seaweedfs", way) for way in WAYS]
    direct = ctx.env.place("seaweedfs", "direct")
    cleaner = s3_client(direct.endpoint, direct.access_key, direct.secret_key)
    runs: dict[str, list[Transfer]] = {p.way: [] for p in places}
    parts = max(1, s.multipart_size // s.part_size)
    for i in range(s.multipart_count):
        for place in places:
            key = f"multipart-{place.way}-{i}"
            env = {
                **os.environ,
                "AWS_ACCESS_KEY_ID": place.access_key or "",
                "AWS_SECRET_ACCESS_KEY": place.secret_key or "",
                "AWS_REGION": DEFAULT_REGION,
            }
            argv = [
                tool("s5cmd"),
                "--endpoint-url",
                place.endpoint,
                "cp",
                "-c",
                str(min(4, parts)),
                "-p",
                str(s.part_size // MIB),
                str(source),
                f"s3://{place.bucket}/{key}",
            ]
            start = time.monotonic()
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=900, env=env, check=False
            )
            seconds = time.monotonic() - start
            ok = done.returncode == 0
            if not ok:
                ctx.say(f"  s5cmd failed via {place.way}: {done.stderr.strip()[-300:]}")
            runs[place.way].append(Transfer(seconds, s.multipart_size, ok))
            cleaner.delete_object(Bucket=direct.bucket, Key=key)
    return _report_transfers(
        ctx, f"multipart{_size(s.multipart_size)}-4x", runs, s.multipart_size
    )


# --- boto3: listing ----------------------------------------------------------


def listing(ctx: Context) -> list[Measurement]:
    """
    ListObjectsV2 of a prefix holding ``list_keys`` keys on SeaweedFS (one
    page), one at a time, with boto3.
    """
    s = ctx.settings
    direct = ctx.env.place("seaweedfs", "direct")
    writer = s3_client(
        direct.endpoint, direct.access_key, direct.secret_key, max_pool_connections=16
    )
    prefix = f"list{s.list_keys}/"
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: writer.put_object(
                    Bucket=direct.bucket, Key=f"{prefix}{i:06d}", Body=b""
                ),
                range(s.list_keys),
            )
        )
    out = []
    workload = f"list{s.list_keys}"
    for way in WAYS:
        place = ctx.env.place("seaweedfs", way)
        client = s3_client(place.endpoint, place.access_key, place.secret_key)

        def once(client: Any = client, place: Place = place) -> int:
            answer = client.list_objects_v2(
                Bucket=place.bucket, Prefix=prefix, MaxKeys=1000
            )
            return int(answer.get("KeyCount", 0))

        once()
        times = []
        errors = 0
        deadline = time.monotonic() + s.list_time
        started = time.monotonic()
        while len(times) < s.list_count and time.monotonic() < deadline:
            t0 = time.monotonic()
            count = once()
            times.append((time.monotonic() - t0) * 1000)
            if count != min(1000, s.list_keys):
                errors += 1
        elapsed = time.monotonic() - started
        p50, p90, p99 = percentiles(times)
        m = Measurement(
            workload,
            way,
            "req/s",
            len(times) / elapsed,
            p50,
            p90,
            p99,
            len(times),
            errors,
        )
        ctx.say(f"  {workload:24} {way:10} {m.rate:10.1f} req/s  p50 {p50:.1f} ms")
        out.append(m)
    return out


# --- peak RSS ----------------------------------------------------------------


def _vm(pid: int, field_name: str) -> float:
    """
    :return: a C{VmRSS}/C{VmHWM} line of C{/proc/PID/status}, in MiB.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field_name} for {pid}")


def _reset_peak(pid: int) -> None:
    # Writing 5 resets the process's peak RSS (VmHWM) to its current RSS.
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss(ctx: Context) -> list[Measurement]:
    """
    The daemon's peak RSS during ``rss_transfers`` concurrent GETs of a
    large object, then during as many concurrent PUTs (static backend,
    through multistore), from the kernel's high-water mark.
    """
    s = ctx.settings
    pid = ctx.env.daemon.pid
    place = ctx.env.place("static", "multistore")
    key = ctx.static_object("big", s.rss_size)
    source = ctx.local_file(s.rss_size)
    out = []
    for what in ("get", "put"):
        if what == "get":
            urls = [place.url(key)] * s.rss_transfers
        else:
            urls = [
                presigned(place, f"rss-{i}", "put_object")
                for i in range(s.rss_transfers)
            ]
        before = _vm(pid, "VmRSS")
        _reset_peak(pid)
        upload = source if what == "put" else None
        start = time.monotonic()
        with ThreadPoolExecutor(s.rss_transfers) as pool:
            transfers = list(pool.map(functools.partial(curl, upload=upload), urls))
        seconds = time.monotonic() - start
        peak = _vm(pid, "VmHWM")
        good = [t for t in transfers if t.ok and t.size == s.rss_size]
        m = Measurement(
            f"rss-{s.rss_transfers}x{_size(s.rss_size)}-{what}",
            "multistore",
            "MiB",
            peak,
            samples=len(good),
            errors=len(transfers) - len(good),
            note=(
                f"RSS before {before:.0f} MiB;"
                f" {len(good) * s.rss_size / MIB / seconds:.0f} MiB/s in total"
            ),
        )
        ctx.say(f"  {m.workload:24} peak RSS {peak:.0f} MiB ({m.note})")
        out.append(m)
    return out


# --- several processes -------------------------------------------------------


def _cpu_seconds(pids: Sequence[int]) -> list[float]:
    """
    :return: CPU seconds (user and system) used so far by each process.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = []
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        seconds.append((int(fields[11]) + int(fields[12])) / ticks)
    return seconds


def workers(ctx: Context) -> list[Measurement]:
    """
    1 KiB anonymous GETs (at concurrency 16 and 64) through 1 and 2 multistore
    processes serving one port (C{--listen reuseport:PORT}).
    """
    key = ctx.static_object("small", KIB)
    out = []
    for n in ctx.settings.worker_counts:
        with worker_pool(ctx.scratch / f"workers-{n}", ctx.env.config, n) as (
            url,
            processes,
        ):
            target = f"{url}/{ctx.env.place('static', 'multistore').bucket}/{key}"
            if not curl(target, timeout=5).ok:
                raise RuntimeError(f"{n} workers do not serve {target}")
            pids = [p.pid for p in processes]
            for c in ctx.settings.worker_concurrencies:
                place = Place(
                    f"multistore x{n}",
                    url,
                    ctx.env.place("static", "multistore").bucket,
                )
                results = []
                cpu_before = _cpu_seconds(pids)
                for _ in range(ctx.settings.repeats):
                    if ctx.settings.warmup > 0:
                        run_wrk(ctx, place.url(key), c, ctx.settings.warmup)
                    results.append(
                        run_wrk(ctx, place.url(key), c, ctx.settings.duration)
                    )
                m = Measurement(
                    f"get1k-anon-c{c}-{n}w",
                    "multistore",
                    "req/s",
                    statistics.median(r.rate for r in results),
                    statistics.median(r.p50 for r in results),
                    statistics.median(r.p90 for r in results),
                    statistics.median(r.p99 for r in results),
                    samples=sum(r.requests for r in results),
                    errors=sum(r.errors for r in results),
                    note=f"{n} worker process(es); CPU seconds per worker: "
                    + ", ".join(
                        f"{after - before:.1f}"
                        for before, after in zip(
                            cpu_before, _cpu_seconds(pids), strict=False
                        )
                    ),
                )
                ctx.say(f"  {m.workload:24} {m.rate:10.0f} req/s  p50 {m.p50:.2f} ms")
                out.append(m)
    return out


def floor(ctx: Context) -> list[Measurement]:
    """
    1 KiB anonymous GETs of the static backend through L{bench.floor}, the
    least a Twisted gateway does per request, at each concurrency: what
    multistore could reach if everything it does beyond relaying cost
    nothing. Reported in the multistore column, as C{get1k-floor-cN}.
    """
    key = ctx.static_object("small", KIB)
    static = ctx.env.place("static", "direct")
    port = free_port()
    process = ServerProcess(
        "bare Twisted proxy",
        [sys.executable, "-m", "bench.floor", str(port), static.endpoint],
        ctx.scratch / "floor" / "floor.log",
        REPO_ROOT,
        {**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    process.start()
    try:
        process.wait_until(
            lambda: port_accepts(port), what="accepting connections", timeout=20
        )
        place = Place("multistore", f"http://127.0.0.1:{port}", static.bucket)
        out = []
        for c in ctx.settings.concurrencies:
            out += _wrk_workload(ctx, f"get1k-floor-c{c}", [place], key, c, _anonymous)
        return out
    finally:
        process.stop()


@frozen
class RedisCounts:
    """
    What a Redis server has run so far, from C{INFO all}.

    :ivar scripts: script calls (C{EVALSHA}, C{EVAL}): one round trip each.
    :ivar counters: counter writes (C{HINCRBY}, C{EXPIRE}), which the daemon
        batches into one pipeline every C{flush_ms}.
    :ivar commands: every command but C{INFO}, counting those a script runs
        (C{total_commands_processed} counts those too, so it is not a count
        of round trips).
    """

    scripts: int
    counters: int
    commands: int

    @classmethod
    def of(cls, port: int) -> RedisCounts:
        """
        :return: the counts of the Redis server on ``port``, now.
        """
        info = redis_info(port)

        def calls(command: str) -> int:
            for item in info.get(f"cmdstat_{command}", "").split(","):
                name, _, value = item.partition("=")
                if name == "calls":
                    return int(value)
            return 0

        return cls(
            calls("evalsha") + calls("eval"),
            calls("hincrby") + calls("expire"),
            int(info.get("total_commands_processed", 0)) - calls("info"),
        )

    def __sub__(self, other: RedisCounts) -> RedisCounts:
        return RedisCounts(
            self.scripts - other.scripts,
            self.counters - other.counters,
            self.commands - other.commands,
        )

    def __add__(self, other: RedisCounts) -> RedisCounts:
        return RedisCounts(
            self.scripts + other.scripts,
            self.counters + other.counters,
            self.commands + other.commands,
        )


def _await_metering(port: int, url: str, log: Path, timeout: float = 10.0) -> None:
    """
    GET ``url`` until the Redis server on ``port`` sees a script call: the
    daemon connects to Redis as it starts, and requests in the meantime are
    served unmetered (a first request may spend its whole budget waiting).

    :raise RuntimeError: if the daemon does not serve ``url``, or never asks
        Redis.
    """
    before = RedisCounts.of(port).scripts
    deadline = time.monotonic() + timeout
    while True:
        if not curl(url, timeout=5).ok:
            raise RuntimeError(f"the metered daemon does not serve {url}")
        if RedisCounts.of(port).scripts > before:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the metered daemon did not ask Redis in {timeout:g}s; see {log}"
            )
        time.sleep(0.1)


def _redis_note(counts: RedisCounts, cpu: float, requests: int) -> str:
    per = max(requests, 1)
    return (
        f"Redis per request: {counts.scripts / per:.2f} script calls (round"
        f" trips), {counts.counters / per:.3f} counter writes (batched),"
        f" {counts.commands / per:.1f} commands counting those the script runs;"
        f" redis-server CPU {1e6 * cpu / per:.0f} µs per request"
    )


def metered(ctx: Context) -> list[Measurement]:
    """
    1 KiB anonymous GETs of the static backend through the daemon
    (C{multistore}: no metering) and through a second daemon whose
    configuration adds a C{[metering]} table that has a Redis server judge
    every request's rate but never refuse one (L{METERED_WAY}, see
    L{metering_config}), the two taking turns, at each of the
    ``metered_concurrencies``. The notes give each daemon's CPU per request,
    what the Redis server did per request (L{RedisCounts}, and its CPU), and
    the metered rate as a share of the unmetered one.
    """
    s = ctx.settings
    key = ctx.static_object("small", KIB)
    plain = ctx.env.place("static", "multistore")
    out = []
    with contextlib.ExitStack() as stack:
        redis = start_redis(ctx.scratch / "redis")
        stack.callback(redis.process.stop)
        daemon = start_daemon(
            ctx.scratch / "metered",
            {**ctx.env.config, "metering": metering_config(redis.url)},
        )
        stack.callback(daemon.stop)
        place = Place(METERED_WAY, daemon.url, plain.bucket)
        _await_metering(redis.port, place.url(key), daemon.log_path)
        # Requests before Redis first answered may have timed out; later
        # ones should not.
        logged = len(daemon.log_text())
        ways = ((plain, ctx.env.daemon.pid), (place, daemon.pid))
        for c in s.metered_concurrencies:
            workload = f"get1k-metered-c{c}"
            runs: dict[str, list[WrkResult]] = {p.way: [] for p, _ in ways}
            cpu = dict.fromkeys(runs, 0.0)
            redis_cpu = 0.0
            counts = RedisCounts(0, 0, 0)
            for repeat in range(s.repeats):
                for way_place, pid in ways:
                    url = way_place.url(key)
                    if s.warmup > 0:
                        run_wrk(ctx, url, c, s.warmup)
                    counts_before = RedisCounts.of(redis.port)
                    before = _cpu_seconds([pid, redis.process.pid])
                    # --profile get1k-metered-cN records the metered daemon.
                    with (
                        profiling(
                            ctx, workload, METERED_WAY, first=repeat == 0, pid=pid
                        )
                        if way_place.way == METERED_WAY
                        else contextlib.nullcontext()
                    ):
                        result = run_wrk(ctx, url, c, s.duration)
                    after = _cpu_seconds([pid, redis.process.pid])
                    cpu[way_place.way] += after[0] - before[0]
                    if way_place.way == METERED_WAY:
                        counts += RedisCounts.of(redis.port) - counts_before
                        redis_cpu += after[1] - before[1]
                    runs[way_place.way].append(result)
            unmetered = statistics.median(r.rate for r in runs[plain.way])
            for way, results in runs.items():
                requests = sum(r.requests for r in results)
                rate = statistics.median(r.rate for r in results)
                note = _cpu_note(cpu[way], requests)
                if way == METERED_WAY:
                    note += (
                        f"; rate {rate / max(unmetered, 1e-9):.2f} of unmetered; "
                        + _redis_note(counts, redis_cpu, requests)
                    )
                m = Measurement(
                    workload,
                    way,
                    "req/s",
                    rate,
                    statistics.median(r.p50 for r in results),
                    statistics.median(r.p90 for r in results),
                    statistics.median(r.p99 for r in results),
                    samples=requests,
                    errors=sum(r.errors for r in results),
                    note=note,
                )
                ctx.say(
                    f"  {workload:24} {way:16} {m.rate:10.0f} req/s"
                    f"  p50 {m.p50:.2f} ms  {note}"
                )
                out.append(m)
        if "metering store failed" in daemon.log_text()[logged:]:
            ctx.say(
                "  the metered daemon served some requests unmetered (store"
                f" failures): see {daemon.log_path}"
            )
    return out


# --- py-spy ------------------------------------------------------------------


@contextlib.contextmanager
def profiling(
    ctx: Context, workload: str, way: str, *, first: bool, pid: int | None = None
) -> Iterator[None]:
    """
    Record the daemon with C{py-spy} (raw collapsed stacks, into
    ``ctx.profile``) while the block runs, if profiling was asked for and
    this is the first multistore run of the profiled workload.

    :param pid: the daemon's process, if not the benchmark's daemon (the
        metered one of C{get1k-metered}).
    """
    if not (
        first
        and way in ("multistore", METERED_WAY)
        and ctx.profile
        and workload == ctx.profile_workload
    ):
        yield
        return
    ctx.profile.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [
            tool("py-spy"),
            "record",
            "--pid",
            str(ctx.env.daemon.pid if pid is None else pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(ctx.profile),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        # py-spy writes its profile when interrupted.
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=TOOL_SLACK)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def top_frames(
    raw: Path, count: int = 15, within: str = ""
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """
    Summarize a py-spy raw profile.

    :param within: count only frames whose text contains this (e.g.
        C{multistore/}); all if empty.
    :return: the ``count`` frames with the most samples on top of the stack
        (self time), and with the most samples anywhere in it (inclusive),
        each with its share of all samples in percent.
    """
    own: dict[str, int] = {}
    anywhere: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        samples = int(n)
        total += samples
        frames = [f for f in stack.split(";") if within in f]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            anywhere[frame] = anywhere.get(frame, 0) + samples

    def top(counts: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:count]
        return [(frame, 100 * n / max(total, 1)) for frame, n in ranked]

    return top(own), top(anywhere)


#: Every workload by name: ``--only`` picks by these names or their prefixes.
WORKLOADS: Final[dict[str, Callable[[Context], list[Measurement]]]] = {
    "get1k-anon": lambda ctx: get_small(ctx, "anon"),
    "get1k-sigv4": lambda ctx: get_small(ctx, "sigv4"),
    "get1k-presigned": lambda ctx: get_small(ctx, "presigned"),
    "range64k": range_reads,
    "get256m": big_get,
    "put256m": big_put,
    "multipart1g": multipart,
    "list1000": listing,
    "rss": peak_rss,
    "workers": workers,
    "floor": floor,
    "get1k-metered": metered,
}


def select(only: Iterable[str] | None) -> Iterator[str]:
    """
    :return: the names of the workloads ``only`` asks for (each a name or a
        prefix of names), in the standard order; all if None.
    :raise ValueError: for a name that matches nothing.
    """
    if not only:
        yield from WORKLOADS
        return
    wanted = [w.strip() for w in only if w.strip()]
    for w in wanted:
        if not any(name.startswith(w) for name in WORKLOADS):
            raise ValueError(f"no workload {w!r}; choose from {', '.join(WORKLOADS)}")
    for name in WORKLOADS:
        if any(name.startswith(w) for w in wanted):
            yield name


def scratch_directory() -> Path:
    """
    :return: a fresh directory for generated files.
    """
    return Path(tempfile.mkdtemp(prefix="multistore-bench-"))
