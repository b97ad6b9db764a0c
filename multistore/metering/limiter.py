# -*- test-case-name: tests.unit.test_metering -*-
"""
Rate limits and transfer quotas over a L{CounterStore}, and the usage
counters that go with them.

Far from its limit, a rate is taken a few requests at a time: the store
grants this daemon a lease of up to an eighth of the room the rate has
(at most L{MAX_LEASE} requests), spent here within L{LEASE_SECONDS}
without asking again. What a lease holds was taken from the shared rate
when it was granted, so a fleet still admits no more than the rate
allows; near the limit, the room is small and every request is asked
for alone.

A request is judged once before it is dispatched (its rate, and the bytes
its body declares) and, for a quota, once more when the store has said how
many bytes the response holds; what a quota admits is held against it.
When the request is over, what really moved is added and the held bytes
released. Those counter updates are batched and written every
``flush_ms``: the only call on a request's own path is the one that judges
it, and a request no rule covers makes none.

A store that does not answer within ``timeout_ms`` (down, slow, or
restarting) never holds a request up: with ``on_store_failure = "open"`` the
request goes ahead and the failure is logged, with ``"closed"`` it is
refused with ``SlowDown``.
"""

from __future__ import annotations

import math
from typing import Any, Final

from attrs import define, evolve, field
from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from multistore.config import MeteringConfig
from multistore.interfaces import IQuotaChecker, IUsageRecorder
from multistore.metering.counters import (
    BYTES_IN,
    BYTES_OUT,
    HELD,
    MAX_LEASE,
    REQUESTS,
    USAGE_WINDOW,
    CounterStore,
    Hold,
    Increment,
    Keys,
    QuotaCheck,
    RateCheck,
    Verdict,
    window_key,
)
from multistore.metering.rules import (
    Caller,
    Network,
    client_address,
    first_match,
    trusted_networks,
)
from multistore.model import DispatchContext, UsageEvent
from multistore.s3.errors import S3Error

#: Seconds a lease on a rate may be spent in: requests' worth taken from
#: the shared rate and not used by then are dropped.
LEASE_SECONDS: Final = 1.0

#: Seconds between two reports that the store is failing.
FAILURE_REPORT_INTERVAL: Final = 10.0

#: Counters waiting to be written beyond which the oldest news is dropped
#: (the store has been away for long).
MAX_PENDING_COUNTERS: Final = 100_000


def declared_length(context: DispatchContext) -> int:
    """
    :return: the bytes a request's body says it holds (its decoded length
        when it is aws-chunked), or 0.
    """
    headers = context.request.headers
    for name in ("x-amz-decoded-content-length", "content-length"):
        value = headers.get(name)
        if value is not None and value.isdigit():
            return int(value)
    return 0


@implementer(IQuotaChecker, IUsageRecorder)
@define
class Limiter:
    """
    Judges requests by the configured rules, and counts usage.

    :ivar _store: where the state is.
    :ivar _config: the rules and settings.
    :ivar _clock: schedules flushes and times out store calls.
    """

    log = Logger()

    _store: CounterStore
    _config: MeteringConfig
    _clock: IReactorTime
    _keys: Keys = field(init=False)
    _trusted: tuple[Network, ...] = field(init=False)
    _holds: dict[str, list[Hold]] = field(factory=dict, init=False)
    _leases: dict[str, list[float]] = field(factory=dict, init=False)
    _pending: dict[str, dict[str, int]] = field(factory=dict, init=False)
    _ttls: dict[str, int] = field(factory=dict, init=False)
    _flush_call: Any = field(default=None, init=False)
    _flushing: Deferred[None] | None = field(default=None, init=False)
    _failures: int = field(default=0, init=False)
    store_failures: int = field(default=0, init=False)
    _reported: float = field(default=-math.inf, init=False)

    def __attrs_post_init__(self) -> None:
        self._keys = Keys(self._config.key_prefix)
        self._trusted = trusted_networks(self._config.trusted_proxies)

    # Who, and which rule.

    def caller_of(
        self, peer: str | None, forwarded_for: str | None, principal: str | None
    ) -> Caller:
        """
        :return: whom a request is counted against.
        """
        return Caller(principal, client_address(peer, forwarded_for, self._trusted))

    def _caller(self, context: DispatchContext) -> Caller:
        request = context.request
        forwarded = ", ".join(request.headers.get_all("x-forwarded-for")) or None
        return self.caller_of(
            request.client_address, forwarded, context.identity.principal
        )

    def _quota_check(
        self, bucket: str | None, caller: Caller, size: int
    ) -> QuotaCheck | None:
        match = first_match(self._config.bandwidth_quotas, bucket, caller)
        if match is None:
            return None
        _, quota = match
        return QuotaCheck(
            prefix=self._keys.counters(bucket, caller.key, quota.window_secs),
            window=quota.window_secs,
            limit=quota.limit_bytes,
            size=size,
            ttl=self._ttl(quota.window_secs),
        )

    def _ttl(self, window: int) -> int:
        ttl = 2 * window
        if window == USAGE_WINDOW:
            ttl = max(ttl, self._config.retention_days * 86400)
        return ttl

    # IQuotaChecker

    def check_request(self, context: DispatchContext) -> Deferred[None]:
        if not (self._config.rate_limits or self._config.bandwidth_quotas):
            return succeed(None)
        caller = self._caller(context)
        bucket = context.bucket.name if context.bucket is not None else None
        rate = None
        match = first_match(self._config.rate_limits, bucket, caller)
        if match is not None:
            index, rule = match
            rate = RateCheck.of(
                self._keys.rate(index, bucket, caller.key),
                rule.requests,
                rule.per_seconds,
            )
        quota = self._quota_check(bucket, caller, declared_length(context))
        if rate is None and quota is None:
            return succeed(None)
        if rate is not None:
            if quota is None and self._from_lease(rate.key):
                return succeed(None)
            rate = evolve(rate, count=MAX_LEASE)
        return self._admit(context.request_id, rate, quota)

    def _from_lease(self, key: str) -> bool:
        """
        Take one request from the lease this daemon holds on rate ``key``,
        if it holds one that has not run out or expired.
        """
        lease = self._leases.get(key)
        if lease is None:
            return False
        if lease[0] <= 0 or lease[1] <= self._clock.seconds():
            del self._leases[key]
            return False
        lease[0] -= 1
        return True

    def check_response(self, context: DispatchContext, size: int) -> Deferred[None]:
        if not self._config.bandwidth_quotas:
            return succeed(None)
        bucket = context.bucket.name if context.bucket is not None else None
        quota = self._quota_check(bucket, self._caller(context), size)
        if quota is None:
            return succeed(None)
        return self._admit(context.request_id, None, quota)

    def _admit(
        self, request_id: str, rate: RateCheck | None, quota: QuotaCheck | None
    ) -> Deferred[None]:
        asked = self._store.admit(rate, quota)
        if not asked.called:
            asked.addTimeout(self._config.timeout_ms / 1000, self._clock)

        def judged(verdict: Verdict) -> None:
            if verdict.admitted:
                if verdict.hold is not None:
                    self._holds.setdefault(request_id, []).append(verdict.hold)
                if rate is not None and verdict.granted > 1:
                    self._leases[rate.key] = [
                        verdict.granted - 1,
                        self._clock.seconds() + LEASE_SECONDS,
                    ]
                return
            raise _refusal(verdict, quota)

        def failed(reason: Failure) -> None:
            if reason.check(S3Error):
                reason.raiseException()
            self._store_failed(reason)
            if self._config.on_store_failure == "closed":
                raise S3Error(
                    "SlowDown",
                    "The gateway cannot check its limits just now; please retry.",
                    headers=(("retry-after", "1"),),
                )

        return asked.addCallbacks(judged, failed)

    def _store_failed(self, reason: Failure) -> None:
        self.store_failures += 1
        self._failures += 1
        now = self._clock.seconds()
        if now - self._reported < FAILURE_REPORT_INTERVAL:
            return
        self._reported = now
        what = "timed out" if reason.check(TimeoutError) else reason.getErrorMessage()
        self.log.warn(
            "metering store failed ({failures} time(s) since the last report): "
            "{what}; requests are {verdict}",
            failures=self._failures,
            what=what,
            verdict="refused"
            if self._config.on_store_failure == "closed"
            else "served unmetered",
        )
        self._failures = 0

    # IUsageRecorder

    def record(self, event: UsageEvent) -> None:
        holds = self._holds.pop(event.request_id, [])
        caller = self.caller_of_event(event)
        now = self._store.now()
        usage = window_key(
            self._keys.counters(event.bucket, caller.key, USAGE_WINDOW),
            USAGE_WINDOW,
            now,
        )
        moved = {BYTES_IN: event.bytes_in, BYTES_OUT: event.bytes_out}
        self._add(usage, {**moved, REQUESTS: 1}, self._ttl(USAGE_WINDOW))
        for hold in holds:
            parsed = self._keys.parse(hold.key)
            ttl = self._ttl(parsed[2]) if parsed is not None else 0
            self._add(hold.key, {HELD: -hold.size}, ttl)
        quota = self._quota_check(event.bucket, caller, 0)
        if quota is not None and quota.window != USAGE_WINDOW:
            # Bytes count in the window they were admitted in.
            key = holds[0].key if holds else window_key(quota.prefix, quota.window, now)
            self._add(key, moved, quota.ttl)
        self._schedule()

    def caller_of_event(self, event: UsageEvent) -> Caller:
        """
        :return: whom a finished request is counted against.
        """
        return Caller(event.principal, event.client_address)

    def _add(self, key: str, amounts: dict[str, int], ttl: int) -> None:
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= MAX_PENDING_COUNTERS:
                return
            pending = self._pending[key] = {}
        for name, amount in amounts.items():
            if amount:
                pending[name] = pending.get(name, 0) + amount
        if ttl > self._ttls.get(key, 0):
            self._ttls[key] = ttl

    def _schedule(self) -> None:
        if self._flush_call is None and self._flushing is None:
            self._flush_call = self._clock.callLater(
                self._config.flush_ms / 1000, self.flush
            )

    def flush(self) -> Deferred[None]:
        """
        Write the counters gathered so far to the store.

        :return: a Deferred that fires when they are written (or have been
            put back for the next flush, if the store failed).
        """
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        if self._flushing is not None:
            return self._flushing
        now = self._clock.seconds()
        self._leases = {k: v for k, v in self._leases.items() if v[1] > now}
        pending, ttls = self._pending, self._ttls
        self._pending, self._ttls = {}, {}
        increments = [
            Increment(key, amounts, ttls.get(key, 0))
            for key, amounts in pending.items()
            if amounts
        ]
        if not increments:
            return succeed(None)
        written = self._store.add(increments)
        written.addTimeout(max(1.0, 20 * self._config.timeout_ms / 1000), self._clock)

        def failed(reason: Failure) -> None:
            self._store_failed(reason)
            for increment in increments:
                self._add(increment.key, dict(increment.amounts), increment.ttl)

        def done(_: object) -> None:
            self._flushing = None
            if self._pending:
                self._schedule()

        written.addErrback(failed)
        written.addBoth(done)
        if written.called:
            return succeed(None)
        self._flushing = written
        return written


def _refusal(verdict: Verdict, quota: QuotaCheck | None) -> S3Error:
    retry = str(max(1, math.ceil(verdict.retry_after)))
    headers = (("retry-after", retry),)
    if verdict.refused_by == "quota" and quota is not None:
        return S3Error(
            "QuotaExceeded",
            f"This would take transfers past the quota of {quota.limit} bytes "
            f"per {quota.window} seconds ({verdict.used} used in this window); "
            f"retry after {retry} seconds.",
            headers=headers,
        )
    return S3Error("SlowDown", headers=headers)
