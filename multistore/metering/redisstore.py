# -*- test-case-name: tests.unit.test_metering_redis -*-
"""
Metering's state in Redis, shared by every daemon that names the same
server: one Redis, a Sentinel-watched primary, or a Redis Cluster.

redis-py (Debian's ``python3-redis``) is a blocking client, so its calls
run in a small thread pool of this store's own, as
C{twisted.enterprise.adbapi} runs a database's, never on the reactor
thread. A request's question is one script call (one round trip, the time
taken from the Redis server's clock inside the script); counters go in a
pipeline every ``flush_ms``. Every call has a budget: a Redis that is
down, restarting or stuck makes the call fail within it, and for a short
while after a failure calls fail at once instead of queueing behind a
dead server, then one is let through to see whether it is back.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from multistore.metering.counters import (
    BYTES_IN,
    BYTES_OUT,
    HELD,
    REQUESTS,
    Hold,
    Increment,
    Keys,
    QuotaCheck,
    RateCheck,
    Verdict,
)

#: Seconds during which calls fail at once after the server failed one.
RETRY_INTERVAL: Final = 0.5

#: Calls waiting for a thread, per thread, beyond which new ones fail at
#: once (the server is slower than the traffic).
QUEUE_PER_THREAD: Final = 8

#: Judges a request: a rate (GCRA, its theoretical arrival time in ms), a
#: quota (a fixed window's counters), or both, with the server's clock.
#: What is refused changes nothing.
ADMIT_SCRIPT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode = ARGV[1]
local k = 1
local rate_key = nil
local new_tat = 0
if string.find(mode, 'r', 1, true) then
  rate_key = KEYS[k]
  k = k + 1
  local tat = tonumber(redis.call('GET', rate_key) or now)
  if tat < now then tat = now end
  if tat - now > tonumber(ARGV[3]) then
    return {0, 'rate', tat - tonumber(ARGV[3]) - now, now, '', 0}
  end
  new_tat = tat + tonumber(ARGV[2])
end
local hold_key = ''
if string.find(mode, 'q', 1, true) then
  local window = tonumber(ARGV[4])
  local limit = tonumber(ARGV[5])
  local size = tonumber(ARGV[6])
  local index = math.floor(now / 1000 / window)
  hold_key = KEYS[k] .. ':' .. index
  local v = redis.call('HMGET', hold_key, 'in', 'out', 'held')
  local used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0)
  if used + size > limit or (size == 0 and used >= limit) then
    return {0, 'quota', (index + 1) * window * 1000 - now, now, '', used}
  end
  redis.call('HINCRBY', hold_key, 'held', size)
  if redis.call('TTL', hold_key) < tonumber(ARGV[7]) then
    redis.call('EXPIRE', hold_key, ARGV[7])
  end
end
if rate_key then
  redis.call('SET', rate_key, new_tat, 'PX', new_tat - now)
end
return {1, '', 0, now, hold_key, 0}
"""

#: What Redis knows the script by.
ADMIT_SHA: Final = hashlib.sha1(
    ADMIT_SCRIPT.encode(), usedforsecurity=False
).hexdigest()


class StoreUnavailable(Exception):
    """
    The store cannot be asked just now (it failed a moment ago, or too
    many calls are waiting for it).
    """


def _hosts(netloc: str) -> tuple[str | None, str | None, list[tuple[str, int]]]:
    userinfo, _, hostlist = netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    hosts = []
    for item in hostlist.split(","):
        host, _, port = item.rpartition(":")
        if not host:
            host, port = port, ""
        hosts.append((host.strip("[]"), int(port) if port else 6379))
    return username, password, hosts


def redis_client(url: str, timeout: float) -> Any:
    """
    Make a client for ``url``; it connects on first use.

    - ``redis://[user:password@]host[:port][/db]``, ``rediss://...``: one
      server (or a proxy in front of several).
    - ``redis+sentinel://[user:password@]host:port[,host:port...]/master[/db]``:
      the primary the Sentinels name, followed through fail-overs.
    - ``redis+cluster://[user:password@]host:port[,host:port...]``: a
      Redis Cluster, found from any of the nodes named.

    :param timeout: seconds a connection or a reply may take.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry
    from redis.sentinel import Sentinel

    parts = urlsplit(url)
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # A call fails as soon as its server does: the store decides what
        # to do next (redis-py 6 and later retry three times by default).
        "retry": Retry(NoBackoff(), 0),
    }
    if parts.scheme in ("redis", "rediss"):
        return redis.Redis.from_url(url, **options)
    username, password, hosts = _hosts(parts.netloc)
    if username:
        options["username"] = username
    if password:
        options["password"] = password
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "redis+sentinel":
        path = [p for p in parts.path.split("/") if p]
        service = path[0]
        db = int(path[1]) if len(path) > 1 else 0
        sentinel_options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        if "sentinel_password" in query:
            sentinel_options["password"] = query["sentinel_password"]
        sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_options, **options)
        return sentinel.master_for(service, db=db, **options)
    if parts.scheme == "redis+cluster":
        nodes = [ClusterNode(host, port) for host, port in hosts]
        return RedisCluster(startup_nodes=nodes, **options)
    raise ValueError(f"not a Redis URL: {url!r}")


Result = TypeVar("Result")


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


class RedisCounters(Service):
    """
    A L{multistore.metering.counters.CounterStore} in Redis.

    :ivar url: where Redis is.
    """

    log = Logger()

    def __init__(
        self,
        url: str,
        reactor: Any,
        *,
        timeout: float,
        pool_size: int = 4,
        make_client: Callable[[str, float], Any] = redis_client,
    ) -> None:
        self.url = url
        self._reactor = reactor
        self._timeout = timeout
        self._socket_timeout = max(4 * timeout, 0.25)
        self._pool = ThreadPool(
            minthreads=1, maxthreads=pool_size, name="multistore-redis"
        )
        self._pool_size = pool_size
        self._make_client = make_client
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._queued = 0
        self._failed_at = -RETRY_INTERVAL
        self._offset = 0.0

    # The service.

    def startService(self) -> None:
        super().startService()
        self._pool.start()
        # Connect and load the script now, so the first request does not
        # spend its budget on it; a server that is not there yet is
        # reported, and tried again by the requests.
        warmed = deferToThreadPool(self._reactor, self._pool, self._warm_up)
        warmed.addErrback(
            lambda reason: self.log.warn(
                "Redis at {url} is not answering yet: {error}",
                url=_redacted(self.url),
                error=reason.getErrorMessage(),
            )
        )

    def _warm_up(self) -> None:
        client = self.client()
        client.ping()
        client.script_load(ADMIT_SCRIPT)

    def stopService(self) -> Any:
        super().stopService()
        self._pool.stop()
        return None

    # Calls, in the pool.

    def _call(self, work: Callable[[Any], Result]) -> Deferred[Result]:
        now = time.monotonic()
        if now - self._failed_at < RETRY_INTERVAL:
            return fail(StoreUnavailable("Redis failed less than a moment ago"))
        if self._queued >= self._pool_size * QUEUE_PER_THREAD:
            return fail(StoreUnavailable("too many calls are waiting for Redis"))
        self._queued += 1

        def run() -> Result:
            return work(self.client())

        called: Deferred[Result] = deferToThreadPool(self._reactor, self._pool, run)

        def settled(result: Any) -> Any:
            self._queued -= 1
            return result

        def failed(reason: Failure) -> Failure:
            # The server failed (refused, reset, timed out at the socket):
            # stop asking for a moment. A call abandoned for its budget
            # only is no sign the next one will fail.
            if not reason.check(CancelledError):
                self._failed_at = time.monotonic()
            return reason

        called.addBoth(settled)
        called.addErrback(failed)
        return called

    def client(self) -> Any:
        """
        :return: the Redis client, made on first use (in a pool thread: a
            cluster client asks a node for the slots as it is made).
        """
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client(self.url, self._socket_timeout)
            return self._client

    # CounterStore

    def now(self) -> float:
        return time.time() + self._offset

    def admit(
        self, rate: RateCheck | None, quota: QuotaCheck | None
    ) -> Deferred[Verdict]:
        def work(client: Any) -> Verdict:
            asked = time.time()
            verdict, now = admit_blocking(client, rate, quota)
            self._offset = now - (asked + time.time()) / 2
            return verdict

        return self._call(work)

    def add(self, increments: Sequence[Increment]) -> Deferred[None]:
        def work(client: Any) -> None:
            self._offset = add_blocking(client, increments) - time.time()

        return self._call(work)

    def usage(
        self, keys: Keys, since: float
    ) -> Deferred[list[tuple[str, dict[str, int]]]]:
        """
        :return: every usage record of the last ``since`` seconds, with
            its counters.
        """
        return self._call(lambda client: usage_records(client, keys, since))


def _script(client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
    from redis.exceptions import NoScriptError

    try:
        return client.evalsha(ADMIT_SHA, len(keys), *keys, *args)
    except NoScriptError:
        # A server that has not seen it yet, or has restarted since: EVAL
        # runs it and caches it there.
        return client.eval(ADMIT_SCRIPT, len(keys), *keys, *args)


def admit_blocking(
    client: Any, rate: RateCheck | None, quota: QuotaCheck | None
) -> tuple[Verdict, float]:
    """
    Ask Redis to judge a request (blocking: one script call).

    :return: the verdict, and the server's time (seconds).
    """
    mode = ""
    keys = []
    args: list[Any] = ["", 0, 0, 0, 0, 0, 0]
    if rate is not None:
        mode += "r"
        keys.append(rate.key)
        args[1:3] = [rate.interval_ms, rate.tolerance_ms]
    if quota is not None:
        mode += "q"
        keys.append(quota.prefix)
        args[3:7] = [quota.window, quota.limit, quota.size, quota.ttl]
    args[0] = mode
    admitted, refused_by, retry_ms, now_ms, hold_key, used = _script(client, keys, args)
    now = int(now_ms) / 1000
    if int(admitted):
        hold = Hold(_text(hold_key), quota.size) if quota is not None else None
        return Verdict(True, hold=hold), now
    return Verdict(False, _text(refused_by), int(retry_ms) / 1000, used=int(used)), now


def add_blocking(client: Any, increments: Sequence[Increment]) -> float:
    """
    Add to counters in Redis (blocking: one pipeline).

    :return: the server's time (seconds).
    """
    seconds, micros = client.time()
    pipe = client.pipeline(transaction=False)
    for increment in increments:
        for name, amount in increment.amounts.items():
            pipe.hincrby(increment.key, name, amount)
        if increment.ttl > 0:
            pipe.expire(increment.key, increment.ttl)
    pipe.execute()
    return float(seconds) + int(micros) / 1e6


def usage_records(
    client: Any, keys: Keys, since: float
) -> list[tuple[str, dict[str, int]]]:
    """
    Read the usage records of the last ``since`` seconds (blocking).
    """
    seconds, _ = client.time()
    first = (seconds - since) // 60
    found = []
    for key in client.scan_iter(match=keys.usage_pattern(), count=1000):
        name = _text(key)
        parsed = keys.parse(name)
        if parsed is not None and parsed[3] >= first:
            found.append(name)
    records = []
    for name in sorted(found):
        values = client.hgetall(name)
        counters = {_text(k): int(v) for k, v in values.items()}
        counters.pop(HELD, None)
        if any(counters.get(f) for f in (BYTES_IN, BYTES_OUT, REQUESTS)):
            records.append((name, counters))
    return records


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
