# -*- test-case-name: tests.unit.test_oidc_cache -*-
"""
One cache for every backend credential the daemon buys with its tokens.

A key's credentials are fetched once however many requests want them at
the same moment (single flight); requests that arrive while valid
credentials exist never wait: once a credential is near its end, the
first request to notice starts one renewal in the background and every
request goes on with the credential it has. A fetch that fails is never
cached as a success: the requests waiting on it fail with its error, and
the next fetch waits out a short, growing back-off (the error is given
again meanwhile), so a token service that refuses is not hammered.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Final

from attrs import define, field, frozen
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

#: Back-off after failed fetches: the first wait, and the longest.
FIRST_BACKOFF: Final = 1.0
MAX_BACKOFF: Final = 30.0


@frozen
class Credentials:
    """
    Credentials for a backend, and when they end.

    :ivar expires: when they stop working (seconds since the epoch).
    :ivar obtained: when they were fetched.
    :ivar access_key_id: for S3: the temporary key id.
    :ivar secret_access_key: for S3: its secret.
    :ivar session_token: for S3: the session token.
    :ivar bearer_token: for Azure and GCS: the access token.
    """

    expires: float
    obtained: float
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)

    @property
    def lifetime(self) -> float:
        return max(0.0, self.expires - self.obtained)

    def usable(self, now: float) -> bool:
        """
        :return: whether they may still be used: not within the last tenth
            of their life (at most 30 s) before they end, so a request
            started now is not cut off.
        """
        return now < self.expires - min(30.0, self.lifetime * 0.1)

    def due(self, now: float) -> bool:
        """
        :return: whether it is time to renew them: within the last quarter
            of their life (at most 5 minutes) before they end.
        """
        return now >= self.expires - min(300.0, self.lifetime * 0.25)


Fetch = Callable[[], "Deferred[Credentials]"]


@define
class _Entry:
    value: Credentials | None = None
    waiters: list[Deferred[Credentials]] = field(factory=list)
    fetching: bool = False
    failures: int = 0
    retry_at: float = 0.0
    error: Failure | None = None


@define
class CredentialCache:
    """
    Credentials by key (backend, role, subject, ...).

    :ivar clock: the time.
    :ivar fetch_failures: fetches that failed, since the start.
    """

    log = Logger()

    _clock: IReactorTime
    _entries: dict[Hashable, _Entry] = field(factory=dict)
    fetch_failures: int = 0

    def get(self, key: Hashable, fetch: Fetch) -> Deferred[Credentials]:
        """
        :param fetch: fetches new credentials for ``key``.
        :return: usable credentials for ``key``.
        """
        entry = self._entries.setdefault(key, _Entry())
        now = self._clock.seconds()
        value = entry.value
        if value is not None and value.usable(now):
            if value.due(now) and not entry.fetching and now >= entry.retry_at:
                self._fetch(key, entry, fetch)
            return succeed(value)
        if not entry.fetching:
            if now < entry.retry_at and entry.error is not None:
                return fail(entry.error)
            self._fetch(key, entry, fetch)
            if not entry.fetching:
                # It answered at once.
                if entry.value is not None and entry.value.usable(now):
                    return succeed(entry.value)
                assert entry.error is not None
                return fail(entry.error)
        waiter: Deferred[Credentials] = Deferred(
            lambda d: entry.waiters.remove(d) if d in entry.waiters else None
        )
        entry.waiters.append(waiter)
        return waiter

    def _fetch(self, key: Hashable, entry: _Entry, fetch: Fetch) -> None:
        entry.fetching = True
        try:
            fetched = fetch()
        except Exception:
            fetched = fail()

        def got(value: Credentials) -> None:
            entry.fetching = False
            entry.value = value
            entry.failures = 0
            entry.retry_at = 0.0
            entry.error = None
            waiters, entry.waiters = entry.waiters, []
            for waiter in waiters:
                waiter.callback(value)

        def failed(reason: Failure) -> None:
            self.fetch_failures += 1
            entry.fetching = False
            entry.failures += 1
            backoff = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (entry.failures - 1))
            entry.retry_at = self._clock.seconds() + backoff
            entry.error = reason
            self.log.warn(
                "fetching backend credentials for {key} failed ({failures} in a "
                "row; next try in {backoff:.0f} s): {error}",
                key=key,
                failures=entry.failures,
                backoff=backoff,
                error=reason.getErrorMessage(),
            )
            waiters, entry.waiters = entry.waiters, []
            for waiter in waiters:
                waiter.errback(reason)

        fetched.addCallbacks(got, failed)
