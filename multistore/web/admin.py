# -*- test-case-name: tests.unit.test_lifecycle -*-
"""
The admin listener's site: ``GET /healthz`` (the process answers),
``GET /readyz`` (a configuration is loaded and the daemon is not
draining; 503 otherwise) and ``GET /metrics`` (Prometheus text format).
It is never the S3 listener: operators bind it to a private address.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.web import server
from twisted.web.resource import Resource


class _Text(Resource):
    isLeaf = True

    def __init__(self, answer: Callable[[], tuple[int, bytes, bytes]]) -> None:
        super().__init__()
        self._answer = answer

    def render_GET(self, request: server.Request) -> bytes:
        status, content_type, body = self._answer()
        request.setResponseCode(status)
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", b"no-store")
        return body

    def render_HEAD(self, request: server.Request) -> bytes:
        return self.render_GET(request)


def admin_site(ready: Callable[[], bool], registry: CollectorRegistry) -> server.Site:
    """
    :param ready: whether the daemon takes new requests.
    :param registry: the metrics to show.
    :return: the admin listener's site.
    """
    plain = b"text/plain; charset=utf-8"
    root = Resource()
    root.putChild(b"healthz", _Text(lambda: (200, plain, b"ok\n")))
    root.putChild(
        b"readyz",
        _Text(
            lambda: (200, plain, b"ready\n") if ready() else (503, plain, b"draining\n")
        ),
    )
    root.putChild(
        b"metrics",
        _Text(lambda: (200, CONTENT_TYPE_LATEST.encode(), generate_latest(registry))),
    )
    site = server.Site(root)
    site.displayTracebacks = False
    return site
