# -*- test-case-name: tests.unit.test_lifecycle -*-
"""
The daemon's metrics, in the Prometheus text format: requests by operation,
status class and configured bucket; bytes in and out; request durations;
backend errors by kind of store; requests in flight; reloads; the health
of the metering store and of the backend credential cache.

Labels take few values: an operation's name, a status class, a bucket as
configured (a pattern, for buckets a pattern stands for), a store kind.
Never a key, a principal or an address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from zope.interface import implementer

from multistore.interfaces import IMiddleware, Next
from multistore.model import CompletedRequest, DispatchContext

#: Request duration buckets, in seconds.
DURATION_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 300.0,
)  # fmt: skip

#: Statuses a backend's failure shows as.
_BACKEND_FAILURES: Final = frozenset({500, 502, 503, 504})


class _Sources:
    """
    A collector of counters kept elsewhere (the current generation's
    metering store and credential cache), read when scraped.
    """

    def __init__(self) -> None:
        self.sources: dict[str, tuple[str, Callable[[], float]]] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, (documentation, read) in sorted(self.sources.items()):
            family = CounterMetricFamily(name, documentation)
            family.add_metric([], read())
            yield family


class Metrics:
    """
    The daemon's metrics, in a registry of its own.

    :ivar registry: what ``/metrics`` shows.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "multistore_requests",
            "Requests answered, by S3 operation, status class and bucket.",
            ["operation", "status", "bucket"],
            registry=registry,
        )
        self.bytes = Counter(
            "multistore_body_bytes",
            "Body bytes received from clients (in) and sent to them (out).",
            ["direction", "bucket"],
            registry=registry,
        )
        self.duration = Histogram(
            "multistore_request_duration_seconds",
            "Seconds from a request's arrival to its last byte, by operation.",
            ["operation"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.backend_errors = Counter(
            "multistore_backend_errors",
            "Requests a store failed (5xx after a store was asked), by kind of store.",
            ["backend"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "multistore_requests_in_flight",
            "Requests started and not yet over.",
            registry=registry,
        )
        self.ready = Gauge(
            "multistore_ready",
            "1 while the daemon takes new requests, 0 while it drains.",
            registry=registry,
        )
        self.reloads = Counter(
            "multistore_config_reloads",
            "Configuration reloads, by result (applied or refused).",
            ["result"],
            registry=registry,
        )
        self._sources = _Sources()
        registry.register(self._sources)

    def watch(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """
        Show the counter ``read`` returns as ``name`` (replacing an earlier
        source of that name, as a reload does).
        """
        self._sources.sources[name] = (documentation, read)

    def observe(self, completed: CompletedRequest) -> None:
        """
        Count a finished request.
        """
        operation = completed.operation.name if completed.operation else "-"
        bucket = completed.bucket_rule or "-"
        status = f"{completed.status // 100}xx"
        self.requests.labels(operation, status, bucket).inc()
        if completed.bytes_in:
            self.bytes.labels("in", bucket).inc(completed.bytes_in)
        if completed.bytes_out:
            self.bytes.labels("out", bucket).inc(completed.bytes_out)
        self.duration.labels(operation).observe(completed.duration)
        if (
            completed.forwarded
            and completed.backend is not None
            and completed.status in _BACKEND_FAILURES
        ):
            self.backend_errors.labels(completed.backend).inc()


@implementer(IMiddleware)
class MetricsObserver:
    """
    A middleware that only watches: each finished request goes to
    L{Metrics.observe}.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def handle(self, context: DispatchContext, next: Next) -> Any:
        return next(context)

    def after_dispatch(self, completed: CompletedRequest) -> None:
        self._metrics.observe(completed)
