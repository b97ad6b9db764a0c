# -*- test-case-name: tests.unit.test_metering -*-
"""
Where metering keeps its state: the questions it asks a store, the keys it
keeps, and the store that keeps them in this process.

Two kinds of state, both under one hash tag per (bucket, caller) so that a
Redis Cluster keeps every key one question touches in one slot:

- a request rate is a theoretical arrival time (GCRA): one small key per
  (rule, bucket, caller) that expires when the caller has been idle long
  enough to have its whole burst back;
- bytes and requests are counted in fixed windows, one hash per (bucket,
  caller, window length, window number) with fields ``in``, ``out``,
  ``req`` and ``held`` (bytes admitted but not yet moved). Minute windows
  are the usage records; a quota's windows are counted the same way, and
  a quota of a minute reads the usage records themselves.

Time is the store's own: the Redis server's clock, or this process's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Final, Protocol
from urllib.parse import quote, unquote

from attrs import define, field, frozen
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

#: The length of the windows usage is recorded in, in seconds.
USAGE_WINDOW: Final = 60

#: The fields of a counter.
BYTES_IN: Final = "in"
BYTES_OUT: Final = "out"
REQUESTS: Final = "req"
HELD: Final = "held"


@frozen
class RateCheck:
    """
    Is one more request allowed under a rate (GCRA)?

    :ivar key: the rate's key.
    :ivar interval_ms: milliseconds per request at the steady rate.
    :ivar tolerance_ms: how far ahead of the steady rate a burst may run.
    :ivar count: how many requests' worth to take at most (a lease, see
        L{lease_size}); at least one is taken, or none.
    """

    key: str
    interval_ms: int
    tolerance_ms: int
    count: int = 1

    @classmethod
    def of(cls, key: str, requests: int, per_seconds: float) -> RateCheck:
        """
        :return: the check for ``requests`` per ``per_seconds``, allowing a
            burst of ``requests`` at once.
        """
        interval = max(1, round(per_seconds * 1000 / requests))
        return cls(key, interval, interval * (requests - 1))


#: The most requests a lease holds.
MAX_LEASE: Final = 64

#: The share of a rate's room (the requests it would admit at once) a
#: lease may take: a small share, so that near its limit a rate is asked
#: for every request.
LEASE_SHARE: Final = 8


def lease_size(room: int, count: int) -> int:
    """
    :param room: how many requests the rate would admit at once now (at
        least 1).
    :param count: how many are asked for.
    :return: how many to grant: one, or when there is much room a share
        of it, up to ``count``.
    """
    return max(1, min(count, room // LEASE_SHARE))


@frozen
class QuotaCheck:
    """
    May ``size`` more bytes move within a quota's current window? If so,
    they are held against it.

    :ivar prefix: the quota's counter key without the window number.
    :ivar window: the window's length in seconds.
    :ivar limit: bytes per window.
    :ivar size: the bytes asked for.
    :ivar ttl: seconds the counter is kept.
    """

    prefix: str
    window: int
    limit: int
    size: int
    ttl: int


@frozen
class Hold:
    """
    Bytes admitted under a quota, held until the request reports what
    really moved.

    :ivar key: the counter they are held in.
    :ivar size: how many.
    """

    key: str
    size: int


@frozen
class Verdict:
    """
    A store's answer.

    :ivar admitted: whether the request may go ahead.
    :ivar refused_by: ``rate`` or ``quota``, when it may not.
    :ivar retry_after: seconds until it could be admitted.
    :ivar hold: the bytes held for it, if a quota admitted it.
    :ivar used: the bytes the quota's window had used, when it refused.
    :ivar granted: how many requests' worth of the rate were taken (see
        L{RateCheck.count}).
    """

    admitted: bool
    refused_by: str | None = None
    retry_after: float = 0.0
    hold: Hold | None = None
    used: int = 0
    granted: int = 1


@frozen
class Increment:
    """
    Amounts to add to one counter.

    :ivar key: the counter.
    :ivar amounts: field -> amount (negative to release held bytes).
    :ivar ttl: seconds the counter is kept from now.
    """

    key: str
    amounts: Mapping[str, int]
    ttl: int


class CounterStore(Protocol):
    """
    What metering asks of a store.
    """

    def admit(
        self, rate: RateCheck | None, quota: QuotaCheck | None
    ) -> Deferred[Verdict]:
        """
        Decide a request by its rate and its quota together; what is
        refused consumes nothing.
        """

    def add(self, increments: Sequence[Increment]) -> Deferred[None]:
        """
        Add to counters.
        """

    def now(self) -> float:
        """
        :return: the store's time, as far as this process knows it.
        """


@frozen
class Keys:
    """
    The names of metering's keys.

    :ivar prefix: what every key starts with.
    """

    prefix: str = "multistore"

    def _tag(self, bucket: str | None, caller: str) -> str:
        return _tag(bucket, caller)

    def rate(self, rule: int, bucket: str | None, caller: str) -> str:
        """
        :return: the key of rate rule number ``rule`` for a caller.
        """
        return f"{self.prefix}:rate:{self._tag(bucket, caller)}:{rule}"

    def counters(self, bucket: str | None, caller: str, window: int) -> str:
        """
        :return: the counters' key for a caller and window length, without
            the window number.
        """
        return f"{self.prefix}:use:{self._tag(bucket, caller)}:{window}"

    def usage_pattern(self) -> str:
        """
        :return: a pattern (for ``SCAN``) matching every usage record.
        """
        return f"{self.prefix}:use:*:{USAGE_WINDOW}:*"

    def parse(self, key: str) -> tuple[str | None, str, int, int] | None:
        """
        :return: the bucket, caller, window length and window number of a
            counters' key, or ``None`` if it is not one.
        """
        head = f"{self.prefix}:use:{{"
        if not key.startswith(head):
            return None
        tag, _, rest = key[len(head) :].partition("}:")
        bucket, _, caller = tag.partition("/")
        window, _, number = rest.partition(":")
        if not window.isdigit() or not number.isdigit():
            return None
        name = unquote(bucket)
        return (
            (None if name == "-" else name),
            unquote(caller),
            int(window),
            int(number),
        )


@lru_cache(maxsize=4096)
def _tag(bucket: str | None, caller: str) -> str:
    # Every request names a (bucket, caller); quoting them each time costs
    # more than the rest of the key.
    return "{" + quote(bucket or "-", safe="") + "/" + quote(caller, safe="@") + "}"


def window_key(prefix: str, window: int, now: float) -> str:
    """
    :return: the key of the window of ``window`` seconds that ``now`` is in.
    """
    return f"{prefix}:{math.floor(now / window)}"


@define
class _Entry:
    fields: dict[str, int] = field(factory=dict)
    expires: float = 0.0


@define
class MemoryCounters:
    """
    A L{CounterStore} in this process: for one daemon, or for tests.

    :ivar clock: the time.
    """

    _clock: IReactorTime
    _rates: dict[str, tuple[int, float]] = field(factory=dict)
    _counters: dict[str, _Entry] = field(factory=dict)
    _operations: int = 0

    def now(self) -> float:
        return self._clock.seconds()

    def counters(self) -> dict[str, dict[str, int]]:
        """
        :return: every live counter, by key.
        """
        now = self.now()
        return {k: dict(e.fields) for k, e in self._counters.items() if e.expires > now}

    def _sweep(self, now: float) -> None:
        self._operations += 1
        if self._operations % 1024:
            return
        self._rates = {k: v for k, v in self._rates.items() if v[1] > now}
        self._counters = {k: e for k, e in self._counters.items() if e.expires > now}

    def _entry(self, key: str, now: float) -> _Entry:
        entry = self._counters.get(key)
        if entry is None or entry.expires <= now:
            entry = self._counters[key] = _Entry()
        return entry

    def admit(
        self, rate: RateCheck | None, quota: QuotaCheck | None
    ) -> Deferred[Verdict]:
        now = self.now()
        self._sweep(now)
        now_ms = math.floor(now * 1000)
        granted = 1
        new_tat = 0
        if rate is not None:
            tat, expires = self._rates.get(rate.key, (now_ms, 0.0))
            if expires <= now:
                tat = now_ms
            tat = max(tat, now_ms)
            room = (
                rate.tolerance_ms + rate.interval_ms - (tat - now_ms)
            ) // rate.interval_ms
            if room < 1:
                allow_at = tat - rate.tolerance_ms
                return succeed(Verdict(False, "rate", (allow_at - now_ms) / 1000))
            granted = lease_size(room, rate.count)
            new_tat = tat + rate.interval_ms * granted
        hold = None
        if quota is not None:
            key = window_key(quota.prefix, quota.window, now)
            entry = self._entry(key, now)
            used = sum(entry.fields.get(f, 0) for f in (BYTES_IN, BYTES_OUT, HELD))
            if _over(used, quota.size, quota.limit):
                retry = (math.floor(now / quota.window) + 1) * quota.window - now
                return succeed(Verdict(False, "quota", retry, used=used))
            entry.fields[HELD] = entry.fields.get(HELD, 0) + quota.size
            entry.expires = max(entry.expires, now + quota.ttl)
            hold = Hold(key, quota.size)
        if rate is not None:
            self._rates[rate.key] = (new_tat, now + (new_tat - now_ms) / 1000)
        return succeed(Verdict(True, hold=hold, granted=granted))

    def add(self, increments: Sequence[Increment]) -> Deferred[None]:
        now = self.now()
        self._sweep(now)
        for increment in increments:
            entry = self._entry(increment.key, now)
            for name, amount in increment.amounts.items():
                entry.fields[name] = entry.fields.get(name, 0) + amount
            entry.expires = max(entry.expires, now + increment.ttl)
        return succeed(None)


def _over(used: int, size: int, limit: int) -> bool:
    """
    :return: whether ``size`` more bytes would take a window that has used
        ``used`` past ``limit`` (once it is used up, nothing more goes).
    """
    return used + size > limit or (size == 0 and used >= limit)
