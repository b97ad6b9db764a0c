"""
Tests for L{multistore.metering}: rate limits, transfer quotas and usage
records, through the whole site in memory with the in-process store.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attrs import define, field
from lxml import etree
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from multistore.config import BandwidthQuota, MeteringConfig, RateLimit
from multistore.configfile import config_from_mapping
from multistore.configtable import ConfigError, Problems, Table
from multistore.interfaces import IMiddleware, IQuotaChecker, IUsageRecorder
from multistore.metering import metering_middleware
from multistore.metering.counters import (
    Increment,
    Keys,
    MemoryCounters,
    QuotaCheck,
    RateCheck,
    Verdict,
)
from multistore.metering.limiter import Limiter
from multistore.metering.middleware import MeteringMiddleware, NoQuotas, NoUsage
from multistore.metering.rules import (
    Caller,
    client_address,
    first_match,
    trusted_networks,
)
from multistore.metering.settings import metering_options, read_metering
from multistore.plugins import builtin_middleware
from multistore.testing import HARNESS_EPOCH, MemoryStoreFactory, SiteHarness

SITE: dict[str, Any] = {
    "buckets": [
        {
            "name": "public",
            "backend_type": "s3",
            "anonymous_access": True,
            "backend_options": {"bucket_name": "public"},
        },
        {
            "name": "other",
            "backend_type": "s3",
            "anonymous_access": True,
            "backend_options": {"bucket_name": "other"},
        },
    ],
    "credentials": [
        {
            "access_key_id": "AKALICE",
            "secret_access_key": "alice-secret",
            "principal_name": "alice",
            "allowed_scopes": [
                {"bucket": "*", "actions": ["get_object", "put_object", "list_bucket"]}
            ],
        },
        {
            "access_key_id": "AKBOB",
            "secret_access_key": "bob-secret",
            "principal_name": "bob",
            "allowed_scopes": [
                {"bucket": "*", "actions": ["get_object", "put_object", "list_bucket"]}
            ],
        },
    ],
}

ALICE = ("AKALICE", "alice-secret")
BOB = ("AKBOB", "bob-secret")


def code_of(body: bytes) -> str | None:
    return etree.fromstring(body).findtext("Code")


class _Site:
    """
    A site with metering, on the harness's clock.
    """

    def __init__(self, metering: dict[str, Any]) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(HARNESS_EPOCH.timestamp())
        self.stores = MemoryStoreFactory(clock=self.clock)
        config = config_from_mapping({**SITE, "metering": metering})
        (plugin,) = builtin_middleware(config)
        self.middleware = metering_middleware(dict(plugin.options), self.clock)
        self.middleware.startService()
        self.harness = SiteHarness.from_config(
            config, stores=self.stores, clock=self.clock, middleware=[self.middleware]
        )

    def counters(self) -> dict[str, dict[str, int]]:
        limiter = self.middleware._checker
        assert isinstance(limiter, Limiter)
        limiter.flush()
        store = limiter._store
        assert isinstance(store, MemoryCounters)
        return store.counters()

    def usage(self, bucket: str | None, caller: str) -> dict[str, int]:
        keys = Keys()
        total: dict[str, int] = {}
        for key, fields in self.counters().items():
            parsed = keys.parse(key)
            if parsed and parsed[:3] == (bucket, caller, 60):
                for name, value in fields.items():
                    total[name] = total.get(name, 0) + value
        return total


class RateLimitTests(SynchronousTestCase):
    """
    Request rates, per bucket and caller.
    """

    def test_anonymous_rate(self) -> None:
        """
        An anonymous caller gets C{requests} at once, then 503 SlowDown
        with C{Retry-After}; one more is let through once the steady rate
        allows it; another address has a rate of its own.
        """
        site = _Site(
            {
                "rate_limits": [
                    {
                        "bucket": "*",
                        "principal": "anonymous",
                        "requests": 3,
                        "per_seconds": 6,
                    }
                ]
            }
        )
        h = site.harness
        statuses = [h.request("GET", "/public/missing").status for _ in range(3)]
        self.assertEqual(statuses, [404, 404, 404])
        refused = h.request("GET", "/public/missing")
        self.assertEqual((refused.status, code_of(refused.body)), (503, "SlowDown"))
        self.assertEqual(refused.headers.get("retry-after"), "2")
        other = h.open("GET", "/public/missing", peer="10.0.0.9")
        other.end()
        response = other.response()
        assert response is not None
        self.assertEqual(response.status, 404)
        site.clock.advance(2)
        self.assertEqual(h.request("GET", "/public/missing").status, 404)
        self.assertEqual(h.request("GET", "/public/missing").status, 503)

    def test_principals(self) -> None:
        """
        C{*} covers authenticated callers, each counted alone; a name
        covers that principal only; the first rule that matches applies.
        """
        site = _Site(
            {
                "rate_limits": [
                    {"principal": "bob", "requests": 1, "per_seconds": 60},
                    {"principal": "*", "requests": 2, "per_seconds": 60},
                ]
            }
        )
        h = site.harness
        alice = [h.request("GET", "/public/x", sign=ALICE).status for _ in range(3)]
        bob = [h.request("GET", "/public/x", sign=BOB).status for _ in range(2)]
        anonymous = [h.request("GET", "/public/x").status for _ in range(4)]
        self.assertEqual(alice, [404, 404, 503])
        self.assertEqual(bob, [404, 503])
        self.assertEqual(anonymous, [404] * 4)

    def test_bucket_glob(self) -> None:
        """
        A rule names buckets by glob; each bucket is counted apart.
        """
        site = _Site(
            {"rate_limits": [{"bucket": "pub*", "requests": 1, "per_seconds": 60}]}
        )
        h = site.harness
        self.assertEqual(h.request("GET", "/public/x").status, 404)
        self.assertEqual(h.request("GET", "/public/x").status, 503)
        self.assertEqual(h.request("GET", "/other/x").status, 404)
        self.assertEqual(h.request("GET", "/other/x").status, 404)

    def test_forwarded_for(self) -> None:
        """
        Behind a trusted proxy, the caller is the address the proxy names;
        from anyone else, C{X-Forwarded-For} is ignored.
        """
        site = _Site(
            {
                "trusted_proxies": ["127.0.0.0/8"],
                "rate_limits": [{"requests": 1, "per_seconds": 60}],
            }
        )
        h = site.harness

        def get(peer: str, forwarded: str) -> int:
            exchange = h.open(
                "GET", "/public/x", [("x-forwarded-for", forwarded)], peer=peer
            )
            exchange.end()
            response = exchange.response()
            assert response is not None
            return response.status

        self.assertEqual(get("127.0.0.1", "192.0.2.1"), 404)
        self.assertEqual(get("127.0.0.1", "192.0.2.2"), 404)
        self.assertEqual(get("127.0.0.1", "192.0.2.1, 127.0.0.5"), 503)
        self.assertEqual(get("198.51.100.7", "192.0.2.3"), 404)
        self.assertEqual(get("198.51.100.7", "192.0.2.4"), 503)


class LeaseTests(SynchronousTestCase):
    """
    Far from its limit a rate is taken a lease at a time; near it, one
    request at a time.
    """

    def _site(self, requests: int) -> tuple[SiteHarness, _CountingCounters]:
        clock = MemoryReactorClock()
        clock.advance(HARNESS_EPOCH.timestamp())
        store = _CountingCounters(clock)
        config = MeteringConfig(
            rate_limits=(RateLimit(requests=requests, per_seconds=10),)
        )
        limiter = Limiter(store, config, clock)
        middleware = MeteringMiddleware(limiter, [limiter], flush=limiter.flush)
        harness = SiteHarness.from_mapping(SITE, clock=clock, middleware=[middleware])
        return harness, store

    def test_lease(self) -> None:
        """
        With room for 1000, the store is asked once for 64 requests; the
        65th asks again; an expired lease is not spent.
        """
        harness, store = self._site(1000)
        for _ in range(64):
            self.assertEqual(harness.request("GET", "/public/x").status, 404)
        self.assertEqual(store.asked, 1)
        harness.request("GET", "/public/x")
        self.assertEqual(store.asked, 2)
        harness.advance(1.5)
        harness.request("GET", "/public/x")
        self.assertEqual(store.asked, 3)

    def test_near_the_limit(self) -> None:
        """
        With room for 10, each request is asked for alone, and the rate
        holds exactly.
        """
        harness, store = self._site(10)
        statuses = [harness.request("GET", "/public/x").status for _ in range(12)]
        self.assertEqual(statuses, [404] * 10 + [503] * 2)
        self.assertEqual(store.asked, 12)


@define
class _CountingCounters(MemoryCounters):
    """
    The memory store, counting the questions it is asked.
    """

    asked: int = 0

    def admit(
        self, rate: RateCheck | None, quota: QuotaCheck | None
    ) -> Deferred[Verdict]:
        self.asked += 1
        return super().admit(rate, quota)


class QuotaTests(SynchronousTestCase):
    """
    Transfer quotas refuse before bytes move, and charge what moved.
    """

    def setUp(self) -> None:
        self.site = _Site(
            {
                "bandwidth_quotas": [
                    {"bucket": "public", "limit_bytes": 1000, "window_secs": 300}
                ]
            }
        )
        self.h = self.site.harness

    def test_put_refused_before_its_body(self) -> None:
        """
        A PUT whose C{Content-Length} would cross the quota is refused
        with 429 QuotaExceeded before its body is read; one that fits is
        stored and charged.
        """
        store = self.site.stores.store_named("public")
        ok = self.h.request("PUT", "/public/a", body=b"x" * 600, sign=ALICE)
        self.assertEqual(ok.status, 200)
        exchange = self.h.open(
            "PUT",
            "/public/b",
            [("content-length", "500"), ("expect", "100-continue")],
            sign=ALICE,
        )
        response = exchange.response()
        assert response is not None
        self.assertEqual(
            (response.status, code_of(response.body)), (429, "QuotaExceeded")
        )
        self.assertEqual(response.interim, ())
        message = etree.fromstring(response.body).findtext("Message") or ""
        self.assertIn("1000 bytes per 300 seconds", message)
        retry = int(response.headers.get("retry-after") or 0)
        self.assertTrue(0 < retry <= 300, retry)
        self.assertIsNone(store.data_of("b"))
        self.assertEqual(self.site.usage("public", "alice")["in"], 600)

    def test_get_refused_before_a_byte(self) -> None:
        """
        A GET whose object would cross the quota is refused with 429 once
        the store says how big it is, and nothing of it is sent; a ranged
        GET is judged on the range.
        """
        self.h.request("PUT", "/public/big", body=b"y" * 700, sign=ALICE)
        refused = self.h.request("GET", "/public/big", sign=ALICE)
        self.assertEqual(
            (refused.status, code_of(refused.body)), (429, "QuotaExceeded")
        )
        ranged = self.h.request(
            "GET", "/public/big", [("range", "bytes=0-99")], sign=ALICE
        )
        self.assertEqual((ranged.status, ranged.body), (206, b"y" * 100))
        usage = self.site.usage("public", "alice")
        # The refusal's error document is sent, and counted.
        self.assertEqual((usage["in"], usage["out"]), (700, 100 + len(refused.body)))

    def test_window_ends(self) -> None:
        """
        The quota is per window: a new window starts with nothing used.
        """
        self.h.request("PUT", "/public/big", body=b"y" * 700, sign=ALICE)
        self.assertEqual(self.h.request("GET", "/public/big", sign=ALICE).status, 429)
        self.site.clock.advance(300)
        self.assertEqual(self.h.request("GET", "/public/big", sign=ALICE).status, 200)

    def test_callers_apart(self) -> None:
        """
        Each caller has a quota of its own.
        """
        self.h.request("PUT", "/public/big", body=b"y" * 700, sign=ALICE)
        self.assertEqual(self.h.request("GET", "/public/big", sign=ALICE).status, 429)
        self.assertEqual(self.h.request("GET", "/public/big", sign=BOB).status, 200)
        self.assertEqual(self.h.request("GET", "/public/big").status, 200)

    def test_cut_off_charged_for_what_was_sent(self) -> None:
        """
        A GET the client leaves half-way is charged for the bytes it was
        sent, and what was held for it is released.
        """
        self.h.request("PUT", "/public/big", body=b"y" * 900, sign=ALICE)
        site = _Site({"bandwidth_quotas": [{"limit_bytes": 10**9, "window_secs": 60}]})
        site.harness.request("PUT", "/public/big", body=b"z" * 300_000, sign=ALICE)
        exchange = site.harness.open("GET", "/public/big", sign=ALICE, window=64 * 1024)
        exchange.read(100_000)
        exchange.disconnect()
        usage = site.usage("public", "alice")
        self.assertGreaterEqual(usage["out"], 100_000)
        self.assertLess(usage["out"], 300_000)
        self.assertEqual(usage.get("held", 0), 0)


@define
class _RecordingCounters(MemoryCounters):
    """
    The memory store, noting each batch of counters it is given.
    """

    added: list[Sequence[Increment]] = field(factory=list)

    def add(self, increments: Sequence[Increment]) -> Deferred[None]:
        self.added.append(increments)
        return super().add(increments)


class UsageTests(SynchronousTestCase):
    """
    Usage is recorded per request: counters, and the usage log.
    """

    def test_counters_batched(self) -> None:
        """
        Counters are written once per flush interval, whatever the number
        of requests; a PUT of N bytes counts N bytes in.
        """
        clock = MemoryReactorClock()
        clock.advance(HARNESS_EPOCH.timestamp())
        store = _RecordingCounters(clock)
        limiter = Limiter(store, MeteringConfig(flush_ms=500), clock)
        middleware = MeteringMiddleware(limiter, [limiter], flush=limiter.flush)
        harness = SiteHarness.from_mapping(SITE, clock=clock, middleware=[middleware])
        added = store.added
        harness.request("PUT", "/public/k", body=b"a" * 1234, sign=ALICE)
        for _ in range(5):
            harness.request("GET", "/public/k", sign=ALICE)
        self.assertEqual(added, [])
        clock.advance(0.5)
        self.assertEqual(len(added), 1)
        ((key, usage),) = store.counters().items()
        self.assertEqual(Keys().parse(key)[:3], ("public", "alice", 60))  # type: ignore[index]
        self.assertEqual((usage["in"], usage["out"], usage["req"]), (1234, 5 * 1234, 6))

    def test_usage_log(self) -> None:
        """
        The usage log gets one JSON line per request, refused ones
        included, with the bytes that moved.
        """
        directory = tempfile.mkdtemp()
        self.addCleanup(
            lambda: [
                os.remove(os.path.join(directory, f)) for f in os.listdir(directory)
            ]
        )
        path = os.path.join(directory, "usage.jsonl")
        site = _Site({"usage_log": path})
        site.harness.request("PUT", "/public/k", body=b"abc", sign=ALICE)
        site.harness.request("GET", "/public/k")
        site.harness.request("PUT", "/public/k", body=b"abc")
        with open(path) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual(
            [
                (e["principal"], e["operation"], e["status"], e["bytes_in"])
                for e in lines
            ],
            [
                ("alice", "PutObject", 200, 3),
                (None, "GetObject", 200, 0),
                # A small refused body is read (and dropped): it was received.
                (None, "PutObject", 403, 3),
            ],
        )
        self.assertEqual(lines[1]["bytes_out"], 3)
        self.assertEqual(lines[1]["client_address"], "127.0.0.1")
        self.assertEqual(lines[0]["bucket"], "public")
        os.rename(path, path + ".1")
        site.clock.advance(1)
        site.harness.request("GET", "/public/k")
        with open(path) as f:
            self.assertEqual(len(f.readlines()), 1)
        site.middleware.stopService()


class _SilentStore:
    """
    A store that never answers.
    """

    def __init__(self) -> None:
        self.asked = 0

    def admit(
        self, rate: RateCheck | None, quota: QuotaCheck | None
    ) -> Deferred[Verdict]:
        self.asked += 1
        return Deferred()

    def add(self, increments: Sequence[Increment]) -> Deferred[None]:
        return Deferred()

    def now(self) -> float:
        return 0.0


class StoreFailureTests(SynchronousTestCase):
    """
    A store that does not answer within the budget never holds a request
    up: it is served (open) or refused with SlowDown (closed).
    """

    def _site(self, mode: str) -> tuple[SiteHarness, MemoryReactorClock]:
        clock = MemoryReactorClock()
        clock.advance(HARNESS_EPOCH.timestamp())
        config = MeteringConfig(
            on_store_failure=mode,
            timeout_ms=50,
            rate_limits=(RateLimit(requests=1, per_seconds=1),),
        )
        limiter = Limiter(_SilentStore(), config, clock)
        middleware = MeteringMiddleware(limiter, [limiter])
        harness = SiteHarness.from_mapping(SITE, clock=clock, middleware=[middleware])
        return harness, clock

    def _get(self, harness: SiteHarness, clock: MemoryReactorClock) -> Any:
        exchange = harness.open("GET", "/public/x")
        exchange.end()
        self.assertIsNone(exchange.response())
        clock.advance(0.049)
        harness.advance()
        self.assertIsNone(exchange.response())
        clock.advance(0.001)
        harness.advance()
        return exchange.response()

    def test_open(self) -> None:
        harness, clock = self._site("open")
        response = self._get(harness, clock)
        self.assertEqual(response.status, 404)

    def test_closed(self) -> None:
        harness, clock = self._site("closed")
        response = self._get(harness, clock)
        self.assertEqual((response.status, code_of(response.body)), (503, "SlowDown"))
        self.assertEqual(response.headers.get("retry-after"), "1")


class RulesTests(SynchronousTestCase):
    """
    Callers and rules.
    """

    def test_client_address(self) -> None:
        trusted = trusted_networks(["10.0.0.0/8", "::1/128"])
        self.assertEqual(
            client_address("10.1.1.1", "1.2.3.4, 10.2.2.2", trusted), "1.2.3.4"
        )
        self.assertEqual(client_address("10.1.1.1", None, trusted), "10.1.1.1")
        self.assertEqual(client_address("5.5.5.5", "1.2.3.4", trusted), "5.5.5.5")
        self.assertEqual(client_address("::1", "2001:db8::1", trusted), "2001:db8::1")
        self.assertEqual(client_address("10.1.1.1", "10.3.3.3", trusted), "10.3.3.3")
        self.assertEqual(client_address("10.1.1.1", "junk, 10.3.3.3", trusted), "junk")

    def test_first_match(self) -> None:
        rules = (
            RateLimit(requests=1, per_seconds=1, bucket="a*", principal="anonymous"),
            RateLimit(requests=2, per_seconds=1, principal="*"),
            RateLimit(requests=3, per_seconds=1),
        )
        anonymous, alice = Caller(None, "1.1.1.1"), Caller("alice", None)
        self.assertEqual(first_match(rules, "abc", anonymous), (0, rules[0]))
        self.assertEqual(first_match(rules, "xyz", anonymous), (2, rules[2]))
        self.assertEqual(first_match(rules, "abc", alice), (1, rules[1]))
        self.assertEqual(first_match(rules, None, anonymous), (2, rules[2]))
        quotas = (BandwidthQuota(limit_bytes=1, window_secs=1, bucket="a"),)
        self.assertIsNone(first_match(quotas, None, alice))

    def test_keys(self) -> None:
        """
        Keys keep one hash tag per (bucket, caller) and parse back.
        """
        keys = Keys("p")
        key = keys.counters("b", "anonymous@2001:db8::1", 60) + ":7"
        self.assertEqual(keys.parse(key), ("b", "anonymous@2001:db8::1", 60, 7))
        self.assertIn("{b/anonymous@2001%3Adb8%3A%3A1}", key)
        self.assertIn("{b/x}", keys.rate(3, "b", "x"))
        self.assertEqual(
            keys.parse(keys.counters(None, "a/b}", 60) + ":1"), (None, "a/b}", 60, 1)
        )


class MemoryCountersTests(SynchronousTestCase):
    """
    GCRA and fixed windows in this process.
    """

    def test_gcra(self) -> None:
        clock = MemoryReactorClock()
        store = MemoryCounters(clock)
        check = RateCheck.of("k", 4, 2)
        results = [
            self.successResultOf(store.admit(check, None)).admitted for _ in range(5)
        ]
        self.assertEqual(results, [True] * 4 + [False])
        clock.advance(0.5)
        self.assertTrue(self.successResultOf(store.admit(check, None)).admitted)
        self.assertFalse(self.successResultOf(store.admit(check, None)).admitted)

    def test_refusal_consumes_nothing(self) -> None:
        """
        A request the quota refuses does not use up its rate.
        """
        clock = MemoryReactorClock()
        store = MemoryCounters(clock)
        rate = RateCheck.of("r", 1, 60)
        quota = QuotaCheck("q", 60, 10, 11, 120)
        verdict = self.successResultOf(store.admit(rate, quota))
        self.assertEqual(verdict.refused_by, "quota")
        self.assertTrue(self.successResultOf(store.admit(rate, None)).admitted)


class SettingsTests(SynchronousTestCase):
    """
    C{[metering]} is checked as the rest of the file is.
    """

    def problems(self, metering: dict[str, Any]) -> str:
        with self.assertRaises(ConfigError) as raised:
            config_from_mapping({"metering": metering})
        return "\n".join(raised.exception.problems)

    def test_errors(self) -> None:
        text = self.problems(
            {
                "store": "mongo",
                "on_store_failure": "maybe",
                "trusted_proxies": ["nowhere"],
                "rate_limits": [{"per_seconds": 1}],
                "bandwidth_quotas": [{"limit_bytes": 5}],
                "colour": "blue",
            }
        )
        self.assertIn("[metering], field 'store': must be one of memory, redis", text)
        self.assertIn("field 'on_store_failure'", text)
        self.assertIn("not an address or network: 'nowhere'", text)
        self.assertIn("[[metering.rate_limits]] #1, field 'requests': required", text)
        self.assertIn(
            "[[metering.bandwidth_quotas]] #1, field 'window_secs': required", text
        )
        self.assertIn("field 'colour': unknown field", text)

    def test_redis_url(self) -> None:
        self.assertIn(
            "field 'redis_url': required with store = 'redis'",
            self.problems({"store": "redis"}),
        )
        self.assertIn(
            "must start with",
            self.problems({"store": "redis", "redis_url": "http://x"}),
        )
        self.assertIn(
            "names the master",
            self.problems({"store": "redis", "redis_url": "redis+sentinel://h:1"}),
        )

    def test_round_trip(self) -> None:
        """
        The options handed to the middleware's factory read back as the
        same settings.
        """
        config = config_from_mapping(
            {
                "metering": {
                    "store": "redis",
                    "redis_url": "redis+cluster://a:1,b:2",
                    "usage_log": "usage.jsonl",
                    "trusted_proxies": ["10.0.0.1"],
                    "rate_limits": [
                        {"principal": "anonymous", "requests": 5, "per_seconds": 2}
                    ],
                    "bandwidth_quotas": [
                        {"bucket": "b", "limit_bytes": 9, "window_secs": 60}
                    ],
                }
            }
        )
        metering = config.metering
        assert metering is not None
        self.assertEqual(metering.trusted_proxies, ("10.0.0.1/32",))
        self.assertTrue(os.path.isabs(metering.usage_log or ""))
        problems = Problems()
        again = read_metering(
            Table(metering_options(metering), "[metering]", problems, Path("/"))
        )
        self.assertEqual((again, problems.errors), (metering, []))

    def test_no_metering(self) -> None:
        """
        Without C{[metering]}, no metering middleware is loaded.
        """
        self.assertEqual(builtin_middleware(config_from_mapping({})), ())

    def test_interfaces(self) -> None:
        clock = MemoryReactorClock()
        middleware = metering_middleware({}, clock)
        verifyObject(IMiddleware, middleware)
        limiter = middleware._checker
        verifyObject(IQuotaChecker, limiter)
        verifyObject(IUsageRecorder, limiter)

    def test_no_op(self) -> None:
        """
        The no-op checker admits everything; the no-op recorder keeps
        nothing; joined, they make a middleware that changes nothing.
        """
        verifyObject(IQuotaChecker, NoQuotas())
        verifyObject(IUsageRecorder, NoUsage())
        harness = SiteHarness.from_mapping(
            SITE, middleware=[MeteringMiddleware(NoQuotas(), [NoUsage()])]
        )
        harness.request("PUT", "/public/k", body=b"v", sign=ALICE)
        got = harness.request("GET", "/public/k")
        self.assertEqual((got.status, got.body), (200, b"v"))


class ExampleTests(SynchronousTestCase):
    """
    The commented C{[metering]} example in C{etc/multistore/multistore.toml}
    is a valid configuration once uncommented.
    """

    def test_example(self) -> None:
        path = Path(__file__).parents[2] / "etc" / "multistore" / "multistore.toml"
        text = path.read_text()
        start = text.index("# [metering]\n# store")
        end = text.index("\n\n", start)
        lines = [
            line[2:] if line.startswith("# ") else "" if line == "#" else line
            for line in text[start:end].splitlines()
        ]
        import tomllib

        metering = config_from_mapping(tomllib.loads("\n".join(lines))).metering
        assert metering is not None
        self.assertEqual(metering.store, "redis")
        self.assertEqual(len(metering.rate_limits), 1)
        self.assertEqual(metering.bandwidth_quotas[0].limit_bytes, 2147483648)
