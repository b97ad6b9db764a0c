"""
Tests for L{multistore.metering.redisstore} against real Redis servers
(started by L{tests.redisservers}): the script's rates and quotas, counters
and usage records, each URL form (one server, Sentinel, Cluster), and the
store's behaviour when its server fails and comes back.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from multistore.metering.counters import (
    Increment,
    Keys,
    QuotaCheck,
    RateCheck,
    Verdict,
)
from multistore.metering.redisstore import (
    RETRY_INTERVAL,
    RedisCounters,
    StoreUnavailable,
    add_blocking,
    admit_blocking,
    admit_many,
    redis_client,
    usage_records,
)
from multistore.metering.report import summarize
from tests.redisservers import RedisCluster, RedisServer, SentinelSetup

KEYS = Keys("test")


@pytest.fixture
def client(module_redis_server: RedisServer) -> Iterator[Any]:
    made = redis_client(module_redis_server.url, 2.0)
    made.flushall()
    yield made
    made.close()


def _rate(key: str, requests: int, per_seconds: float) -> RateCheck:
    return RateCheck.of(KEYS.rate(0, "b", key), requests, per_seconds)


def _quota(caller: str, limit: int, size: int, window: int = 300) -> QuotaCheck:
    return QuotaCheck(
        KEYS.counters("b", caller, window), window, limit, size, 2 * window
    )


def test_rate(client: Any) -> None:
    """
    A rate of N per period admits a burst of N at once, then refuses with
    the time until the steady rate allows one more; its key expires when
    the caller has its burst back.
    """
    check = _rate("alice", 5, 10)
    verdicts = [admit_blocking(client, check, None)[0] for _ in range(6)]
    assert [v.admitted for v in verdicts] == [True] * 5 + [False]
    refused = verdicts[-1]
    assert refused.refused_by == "rate"
    assert 1.5 < refused.retry_after <= 2.0
    ttl = client.pttl(check.key)
    assert 8000 < ttl <= 10000
    assert admit_blocking(client, _rate("bob", 5, 10), None)[0].admitted


def test_lease(client: Any) -> None:
    """
    With much room, a rate grants a lease (at most 64, an eighth of the
    room), and takes that many requests' worth from the shared rate; with
    little room, one.
    """
    roomy = attrs.evolve(_rate("henry", 1000, 10), count=64)
    verdict, _ = admit_blocking(client, roomy, None)
    assert verdict.granted == 64
    # 64 intervals of 10 ms ahead of now.
    assert 600 < client.pttl(roomy.key) <= 640
    tight = attrs.evolve(_rate("ivy", 10, 10), count=64)
    granted = [admit_blocking(client, tight, None)[0] for _ in range(11)]
    assert [v.granted for v in granted[:10]] == [1] * 10
    assert not granted[10].admitted


def test_quota(client: Any) -> None:
    """
    A quota holds what it admits; it refuses what would cross it (saying
    how much is used and when the window ends) and holds nothing then;
    released holds and moved bytes count as the counters say.
    """
    verdict, now = admit_blocking(client, None, _quota("alice", 1000, 600))
    assert verdict.admitted and verdict.hold is not None
    assert verdict.hold.size == 600
    assert abs(now - time.time()) < 5
    assert client.hget(verdict.hold.key, "held") == b"600"
    assert 500 < client.ttl(verdict.hold.key) <= 600
    refused, _ = admit_blocking(client, None, _quota("alice", 1000, 500))
    assert (refused.admitted, refused.refused_by, refused.used) == (False, "quota", 600)
    assert 0 < refused.retry_after <= 300
    assert client.hget(verdict.hold.key, "held") == b"600"
    # The request moved 100 bytes, not 600.
    add_blocking(
        client,
        [Increment(verdict.hold.key, {"held": -600, "out": 100}, 600)],
    )
    again, _ = admit_blocking(client, None, _quota("alice", 1000, 900))
    assert again.admitted


def test_refusal_consumes_nothing(client: Any) -> None:
    """
    When the quota refuses, the rate is not used up either.
    """
    rate = _rate("carol", 1, 60)
    verdict, _ = admit_blocking(client, rate, _quota("carol", 10, 11))
    assert verdict.refused_by == "quota"
    assert admit_blocking(client, rate, None)[0].admitted
    assert not admit_blocking(client, rate, None)[0].admitted


def test_many_in_one_round_trip(client: Any) -> None:
    """
    Several requests are judged in one pipeline, each as it would be
    alone, on a server that has never seen the script.
    """
    client.script_flush()
    check = _rate("gina", 2, 60)
    results = admit_many(
        client,
        [(check, None), (check, None), (check, None), (None, _quota("gina", 5, 9))],
    )
    verdicts = [r[0] for r in results if not isinstance(r, Exception)]
    assert [v.admitted for v in verdicts] == [True, True, False, False]
    assert verdicts[3].refused_by == "quota"


def test_script_reloaded(client: Any) -> None:
    """
    A server that has lost its scripts (restarted, or flushed) is given
    the script again.
    """
    assert admit_blocking(client, _rate("dave", 3, 1), None)[0].admitted
    client.script_flush()
    assert admit_blocking(client, _rate("dave", 3, 1), None)[0].admitted


def test_usage_records(client: Any) -> None:
    """
    Counters added in minute windows are read back as usage records and
    summed per bucket and caller.
    """
    now = client.time()[0]
    minute = now // 60
    alice = KEYS.counters("b", "alice", 60)
    anonymous = KEYS.counters("b", "anonymous@10.0.0.1", 60)
    add_blocking(
        client,
        [
            Increment(f"{alice}:{minute}", {"in": 10, "out": 20, "req": 2}, 600),
            Increment(f"{alice}:{minute - 1}", {"in": 1, "out": 2, "req": 1}, 600),
            Increment(f"{alice}:{minute - 120}", {"in": 5, "req": 1}, 600),
            Increment(f"{anonymous}:{minute}", {"out": 7, "req": 1}, 600),
            Increment(KEYS.counters("b", "alice", 300) + ":1", {"in": 99}, 600),
        ],
    )
    records = usage_records(client, KEYS, 3600)
    rows = summarize(records, KEYS)
    assert [(r.principal, r.requests, r.bytes_in, r.bytes_out) for r in rows] == [
        ("alice", 3, 11, 22),
        ("anonymous@10.0.0.1", 1, 0, 7),
    ]
    assert [r.principal for r in summarize(records, KEYS, principal="anonymous")] == [
        "anonymous@10.0.0.1"
    ]
    assert summarize(records, KEYS, bucket="other") == []


def test_sentinel(redis_sentinel: SentinelSetup) -> None:
    """
    Through Sentinel, the store reaches the primary.
    """
    made = redis_client(redis_sentinel.url, 2.0)
    check = _rate("erin", 2, 60)
    assert [admit_blocking(made, check, None)[0].admitted for _ in range(3)] == [
        True,
        True,
        False,
    ]
    master = redis_sentinel.master.client()
    assert master.exists(check.key) == 1


def test_cluster(redis_cluster: RedisCluster) -> None:
    """
    In a cluster, every key of one (bucket, caller) is in one slot, callers
    spread over the nodes, and rates, quotas, counters and usage records
    all work.
    """
    made = redis_client(redis_cluster.url, 2.0)
    callers = [f"caller-{n}" for n in range(12)]
    nodes = set()
    for caller in callers:
        rate = _rate(caller, 1, 60)
        quota = _quota(caller, 100, 10)
        verdict, _ = admit_blocking(made, rate, quota)
        assert verdict.admitted, caller
        assert verdict.hold is not None
        assert made.keyslot(rate.key) == made.keyslot(verdict.hold.key)
        nodes.add(made.get_node_from_key(rate.key).port)
        assert not admit_blocking(made, rate, None)[0].admitted
        (refused,) = admit_many(made, [(rate, None)])
        assert not isinstance(refused, Exception) and not refused[0].admitted
        minute = int(made.time()[0]) // 60
        add_blocking(
            made,
            [
                Increment(
                    KEYS.counters("b", caller, 60) + f":{minute}",
                    {"in": 1, "req": 1},
                    600,
                ),
                Increment(verdict.hold.key, {"held": -10}, 600),
            ],
        )
    assert len(nodes) > 1
    rows = summarize(usage_records(made, KEYS, 600), KEYS)
    assert sorted(r.principal for r in rows) == sorted(callers)


class _ThreadedReactor:
    """
    Enough of a reactor for C{deferToThreadPool}: results come back
    through a queue the test drains.
    """

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            queue.Queue()
        )

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        self.calls.put((f, args))

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any) -> None:
        self.calls.put((f, args))

    def wait(self, d: Deferred[Any], timeout: float = 10.0) -> Any:
        results: list[Any] = []
        d.addBoth(results.append)
        deadline = time.monotonic() + timeout
        while not results:
            f, args = self.calls.get(timeout=max(0.01, deadline - time.monotonic()))
            f(*args)
        result = results[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result


def test_store_failure_and_return(tmp_path: Any) -> None:
    """
    When its server dies, the store's calls fail, and for a moment fail at
    once without trying; once the server is back (empty, without the
    script), calls work again.
    """
    server = RedisServer(tmp_path / "redis").start()
    reactor = _ThreadedReactor()
    store = RedisCounters(server.url, reactor, timeout=0.2, pool_size=2)
    store.startService()
    try:
        check = _rate("frank", 100, 1)
        verdict: Verdict = reactor.wait(store.admit(check, None))
        assert verdict.admitted
        server.kill()
        with pytest.raises(Exception) as failed:
            reactor.wait(store.admit(check, None))
        assert not isinstance(failed.value, StoreUnavailable)
        with pytest.raises(StoreUnavailable):
            reactor.wait(store.admit(check, None))
        server.start()
        time.sleep(RETRY_INTERVAL)
        assert reactor.wait(store.admit(check, None)).admitted
        reactor.wait(store.add([Increment("test:x", {"in": 1}, 60)]))
        assert server.client().hget("test:x", "in") == b"1"
    finally:
        store.stopService()
        server.stop()
