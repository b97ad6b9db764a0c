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
    LEASE_SHARE,
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

#: Questions waiting for the next batch beyond which new ones fail at once.
MAX_WAITING: Final = 4096

#: Judges requests, each by a rate (GCRA, its theoretical arrival time in
#: ms), a quota (a fixed window's counters), or both, with the server's
#: clock; what is refused changes nothing. ARGV[1] is how many requests;
#: each then has 8 arguments (mode, interval, tolerance, window, limit,
#: size, ttl, count) and takes its keys from KEYS in turn (the rate's, then
#: the quota's prefix, as its mode says). One reply per request. A rate
#: with room grants a lease as L{lease_size} says.
ADMIT_SCRIPT: Final = """
local LEASE_SHARE = @LEASE_SHARE@
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local replies = {}
local k = 1
for i = 0, tonumber(ARGV[1]) - 1 do
  local a = 2 + i * 8
  local mode = ARGV[a]
  local reply = nil
  local rate_key = nil
  local new_tat = 0
  local granted = 1
  if string.find(mode, 'r', 1, true) then
    rate_key = KEYS[k]
    k = k + 1
    local interval = tonumber(ARGV[a + 1])
    local tolerance = tonumber(ARGV[a + 2])
    local tat = tonumber(redis.call('GET', rate_key) or now)
    if tat < now then tat = now end
    local room = math.floor((tolerance + interval - (tat - now)) / interval)
    if room < 1 then
      reply = {0, 'rate', tat - tolerance - now, now, '', 0, 0}
    else
      granted = math.max(1, math.min(tonumber(ARGV[a + 7]), math.floor(room / LEASE_SHARE)))
      new_tat = tat + interval * granted
    end
  end
  local hold_key = ''
  if string.find(mode, 'q', 1, true) then
    local prefix = KEYS[k]
    k = k + 1
    if not reply then
      local window = tonumber(ARGV[a + 3])
      local limit = tonumber(ARGV[a + 4])
      local size = tonumber(ARGV[a + 5])
      local index = math.floor(now / 1000 / window)
      hold_key = prefix .. ':' .. index
      local v = redis.call('HMGET', hold_key, 'in', 'out', 'held')
      local used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0)
      if used + size > limit or (size == 0 and used >= limit) then
        reply = {0, 'quota', (index + 1) * window * 1000 - now, now, '', used, 0}
      else
        redis.call('HINCRBY', hold_key, 'held', size)
        if redis.call('TTL', hold_key) < tonumber(ARGV[a + 6]) then
          redis.call('EXPIRE', hold_key, ARGV[a + 6])
        end
      end
    end
  end
  if not reply then
    if rate_key then
      redis.call('SET', rate_key, new_tat, 'PX', new_tat - now)
    end
    reply = {1, '', 0, now, hold_key, 0, granted}
  end
  replies[i + 1] = reply
end
return replies
""".replace("@LEASE_SHARE@", str(LEASE_SHARE))

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
        self._batch: list[
            tuple[RateCheck | None, QuotaCheck | None, Deferred[Verdict]]
        ] = []
        self._batch_call: Any = None
        self._batch_in_flight = False
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

    def _unavailable(self) -> StoreUnavailable | None:
        if time.monotonic() - self._failed_at < RETRY_INTERVAL:
            return StoreUnavailable("Redis failed less than a moment ago")
        if self._queued >= self._pool_size * QUEUE_PER_THREAD:
            return StoreUnavailable("too many calls are waiting for Redis")
        return None

    def _call(self, work: Callable[[Any], Result]) -> Deferred[Result]:
        unavailable = self._unavailable()
        if unavailable is not None:
            return fail(unavailable)
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
        """
        Judge a request. Questions go to Redis in batches, one batch at a
        time, each a pipeline sent from one pool thread: the questions
        that arrive while a batch is out go together in the next, so
        concurrent requests share a hand-off to the pool and a round trip,
        and the busier the daemon the more they share. A request waits at
        most one round trip more than it would alone.
        """
        unavailable = self._unavailable()
        if unavailable is not None:
            return fail(unavailable)
        if len(self._batch) >= MAX_WAITING:
            return fail(StoreUnavailable("too many requests are waiting for Redis"))
        waiter: Deferred[Verdict] = Deferred()
        self._batch.append((rate, quota, waiter))
        self._schedule_batch()
        return waiter

    def _schedule_batch(self) -> None:
        if self._batch and self._batch_call is None and not self._batch_in_flight:
            self._batch_call = self._reactor.callLater(0, self._send_batch)

    def _send_batch(self) -> None:
        self._batch_call = None
        batch = [b for b in self._batch if not b[2].called]
        self._batch = []
        if not batch:
            return
        self._batch_in_flight = True
        checks = [(rate, quota) for rate, quota, _ in batch]

        def work(client: Any) -> list[tuple[Verdict, float] | Exception]:
            asked = time.time()
            results = admit_many(client, checks)
            for result in results:
                if not isinstance(result, Exception):
                    self._offset = result[1] - (asked + time.time()) / 2
                    break
            return results

        def deliver(results: list[tuple[Verdict, float] | Exception]) -> None:
            for (_, _, waiter), result in zip(batch, results, strict=True):
                if waiter.called:
                    continue
                if isinstance(result, Exception):
                    waiter.errback(Failure(result))
                else:
                    waiter.callback(result[0])

        def failed(reason: Failure) -> None:
            for _, _, waiter in batch:
                if not waiter.called:
                    waiter.errback(reason)

        def next_batch(_: object) -> None:
            self._batch_in_flight = False
            self._schedule_batch()

        self._call(work).addCallbacks(deliver, failed).addBoth(next_batch)

    def add(self, increments: Sequence[Increment]) -> Deferred[None]:
        def work(client: Any) -> None:
            self._offset = add_blocking(client, increments) - time.time()

        return self._call(work)


Check = tuple[RateCheck | None, QuotaCheck | None]


def _script(client: Any, checks: Sequence[Check]) -> list[Any]:
    """
    Judge ``checks`` with one script call (their keys must be in one slot
    of a cluster).
    """
    from redis.exceptions import NoScriptError

    keys: list[str] = []
    args: list[Any] = [len(checks)]
    for rate, quota in checks:
        mode = ""
        values: list[Any] = [0] * 7
        if rate is not None:
            mode += "r"
            keys.append(rate.key)
            values[0:2] = [rate.interval_ms, rate.tolerance_ms]
            values[6] = rate.count
        if quota is not None:
            mode += "q"
            keys.append(quota.prefix)
            values[2:6] = [quota.window, quota.limit, quota.size, quota.ttl]
        args += [mode, *values]
    try:
        return list(client.evalsha(ADMIT_SHA, len(keys), *keys, *args))
    except NoScriptError:
        # A server that has not seen it yet, or has restarted since: EVAL
        # runs it and caches it there.
        return list(client.eval(ADMIT_SCRIPT, len(keys), *keys, *args))


def _verdict(reply: Any, quota: QuotaCheck | None) -> tuple[Verdict, float]:
    admitted, refused_by, retry_ms, now_ms, hold_key, used, granted = reply
    now = int(now_ms) / 1000
    if int(admitted):
        hold = Hold(_text(hold_key), quota.size) if quota is not None else None
        return Verdict(True, hold=hold, granted=int(granted)), now
    return Verdict(False, _text(refused_by), int(retry_ms) / 1000, used=int(used)), now


def admit_blocking(
    client: Any, rate: RateCheck | None, quota: QuotaCheck | None
) -> tuple[Verdict, float]:
    """
    Ask Redis to judge a request (blocking: one script call).

    :return: the verdict, and the server's time (seconds).
    """
    (reply,) = _script(client, [(rate, quota)])
    return _verdict(reply, quota)


def admit_many(
    client: Any, checks: Sequence[Check]
) -> list[tuple[Verdict, float] | Exception]:
    """
    Ask Redis to judge several requests (blocking): one script call for
    them all on one server; on a cluster, one per hash slot (callers spread
    over slots, so a busy cluster's batches make several calls).

    :return: for each, the verdict and the server's time, or the error
        its call met (a cluster slot's own error).
    :raise Exception: what the client raised when a server could not be
        reached or did not answer.
    """
    replies: list[Any] = [None] * len(checks)
    if not hasattr(client, "get_node_from_key"):
        replies = _script(client, checks)
    else:
        _admit_on_cluster(client, checks, replies)
    return [
        reply if isinstance(reply, Exception) else _verdict(reply, quota)
        for reply, (_, quota) in zip(replies, checks, strict=True)
    ]


def _admit_on_cluster(client: Any, checks: Sequence[Check], replies: list[Any]) -> None:
    from redis.exceptions import ResponseError

    # redis-py 4.3's cluster pipelines carry no scripts: each slot's checks
    # are one script call, and a slot that has moved (or a node that lost
    # the script) is asked again through the cluster client.
    slots: dict[int, list[int]] = {}
    for index, (rate, quota) in enumerate(checks):
        key = rate.key if rate is not None else quota.prefix  # type: ignore[union-attr]
        slots.setdefault(client.keyslot(key), []).append(index)
    for indices in slots.values():
        group = [checks[i] for i in indices]
        try:
            answers: list[Any] = _script(client, group)
        except ResponseError as error:
            # This slot's answer only; a server that cannot be reached
            # fails the whole batch.
            answers = [error] * len(indices)
        for index, answer in zip(indices, answers, strict=True):
            replies[index] = answer


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
