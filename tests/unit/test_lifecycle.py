"""
Tests for L{multistore.daemon} (generations, reload, drain),
L{multistore.gateway.metrics} and L{multistore.web.admin}, in memory.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.application.service import Service
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from multistore.configfile import config_from_mapping
from multistore.configtable import ConfigError
from multistore.daemon import Generation, MultistoreService
from multistore.gateway.metrics import Metrics
from multistore.plugins import Plugins
from multistore.tap import build_generation
from multistore.testing import HARNESS_EPOCH, MemoryStoreFactory, SiteHarness
from multistore.web.admin import admin_site
from multistore.web.site import GatewayResource

SITE: dict[str, Any] = {
    "server": {"shutdown_timeout": 5},
    "buckets": [
        {
            "name": "data",
            "backend_type": "s3",
            "anonymous_access": True,
            "backend_options": {"bucket_name": "data"},
        }
    ],
}


class _Recorder(Service):
    pass


class _Daemon:
    """
    A L{MultistoreService} over a harness, with a scriptable reload.
    """

    def __init__(self) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(HARNESS_EPOCH.timestamp())
        self.stores = MemoryStoreFactory(clock=self.clock)
        self.stores.store_named("data").add("k", b"v")
        self.metrics = Metrics()
        self.next: dict[str, Any] | Exception = SITE
        first = self.generation(SITE)
        self.harness = SiteHarness.from_config(
            first.config, stores=self.stores, clock=self.clock
        )
        resource = self.harness.site.resource
        assert isinstance(resource, GatewayResource)
        resource.replace(first.gateway)
        self.listener = _Recorder()
        self.service = MultistoreService(
            self.clock,
            first,
            resource,
            [self.listener],
            load=self.load,
            metrics=self.metrics,
            listen_from_file=True,
        )

    def generation(self, document: dict[str, Any]) -> Generation:
        config = config_from_mapping(document)
        return build_generation(
            config,
            Plugins(),
            stores=self.stores,
            domains=(),
            reactor=self.clock,
            metrics=self.metrics,
        )

    def load(self) -> Generation:
        if isinstance(self.next, Exception):
            raise self.next
        return self.generation(self.next)

    def metric(self, name: str, **labels: str) -> float:
        from prometheus_client import generate_latest

        text = generate_latest(self.metrics.registry).decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0


class ReloadTests(SynchronousTestCase):
    """
    A reload swaps generations; a request finishes on the one it started
    with; a bad file changes nothing.
    """

    def test_swap_and_retire(self) -> None:
        daemon = _Daemon()
        daemon.service.startService()
        old = daemon.service.current
        old_services = old.services
        self.assertTrue(old_services.running)
        slow = daemon.harness.open("GET", "/data/k", window=0)
        self.assertEqual(old.gateway.in_flight, 1)
        daemon.next = {**SITE, "buckets": [{**SITE["buckets"][0], "name": "renamed"}]}
        self.assertTrue(daemon.service.reload())
        self.assertIsNot(daemon.service.current, old)
        self.assertEqual(daemon.harness.request("GET", "/renamed/k").body, b"v")
        # Unknown now: refused as any bucket the caller may not see.
        self.assertEqual(daemon.harness.request("GET", "/data/k").status, 403)
        # The old generation lives while its request does.
        daemon.clock.advance(1)
        self.assertTrue(old_services.running)
        slow.read()
        response = slow.response()
        assert response is not None
        self.assertEqual((response.status, response.body), (200, b"v"))
        daemon.clock.advance(0.2)
        self.assertFalse(old_services.running)
        self.assertEqual(
            daemon.metric("multistore_config_reloads_total", result="applied"), 1
        )

    def test_refused(self) -> None:
        daemon = _Daemon()
        daemon.service.startService()
        current = daemon.service.current
        daemon.next = ConfigError("/etc/multistore/multistore.toml", ["[server]: bad"])
        self.assertFalse(daemon.service.reload())
        self.assertIs(daemon.service.current, current)
        self.assertEqual(
            daemon.metric("multistore_config_reloads_total", result="refused"), 1
        )
        self.assertEqual(daemon.harness.request("GET", "/data/k").body, b"v")


class DrainTests(SynchronousTestCase):
    """
    Stopping: listeners first, readiness off, requests in flight finish
    (for up to shutdown_timeout), then the rest.
    """

    def test_drain(self) -> None:
        daemon = _Daemon()
        service = daemon.service
        service.startService()
        self.assertTrue(service.ready())
        slow = daemon.harness.open("GET", "/data/k", window=0)
        stopped = service.stopService()
        self.assertFalse(self.listener_running(daemon))
        self.assertFalse(service.ready())
        self.assertEqual(daemon.metric("multistore_ready"), 0)
        daemon.clock.advance(1)
        self.assertNoResult(stopped)
        self.assertTrue(service.current.services.running)
        slow.read()
        response = slow.response()
        assert response is not None
        daemon.clock.advance(0.2)
        self.successResultOf(stopped)
        self.assertFalse(service.current.services.running)

    def test_timeout(self) -> None:
        daemon = _Daemon()
        service = daemon.service
        service.startService()
        daemon.harness.open("GET", "/data/k", window=0)
        stopped = service.stopService()
        daemon.clock.advance(4.9)
        self.assertNoResult(stopped)
        daemon.clock.advance(0.2)
        self.successResultOf(stopped)

    def listener_running(self, daemon: _Daemon) -> bool:
        return bool(daemon.listener.running)


class AdminTests(SynchronousTestCase):
    """
    /healthz, /readyz and /metrics.
    """

    def render(self, ready: bool, path: bytes) -> tuple[int, bytes]:
        metrics = Metrics()
        site = admin_site(lambda: ready, metrics.registry)
        request = DummyRequest([path])
        request.method = b"GET"
        resource = site.getResourceFor(request)
        body = resource.render(request)
        return request.responseCode or 200, body

    def test_health_and_readiness(self) -> None:
        self.assertEqual(self.render(True, b"healthz"), (200, b"ok\n"))
        self.assertEqual(self.render(True, b"readyz"), (200, b"ready\n"))
        self.assertEqual(self.render(False, b"readyz"), (503, b"draining\n"))

    def test_metrics(self) -> None:
        status, body = self.render(True, b"metrics")
        self.assertEqual(status, 200)
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        self.assertTrue(
            {"multistore_requests", "multistore_request_duration_seconds"} <= names,
            names,
        )
