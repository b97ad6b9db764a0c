"""
The least any Twisted HTTP gateway does per request, as a yardstick for
multistore: a twisted.web C{Site} whose one resource sends each GET on to a
backend through an C{Agent} over a persistent pool and streams the answer
back. No signatures, no authorization, no S3, no logging.

Run as C{python -m bench.floor PORT BACKEND_URL}; it serves 127.0.0.1:PORT
until it is stopped.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

#: The response headers passed on.
_KEPT = (b"content-length", b"content-type", b"etag", b"last-modified")


class _Pump(Protocol):
    """
    Copies a backend body into the client's response.
    """

    def __init__(self, request: Request) -> None:
        self._request = request

    def dataReceived(self, data: bytes) -> None:
        self._request.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._request.finish()


class _Forward(Resource):
    """
    Sends every GET on to the backend.
    """

    isLeaf = True

    def __init__(self, agent: Agent, backend: bytes) -> None:
        super().__init__()
        self._agent = agent
        self._backend = backend

    def render_GET(self, request: Request) -> Any:
        answered = self._agent.request(b"GET", self._backend + request.uri, Headers({}))

        def respond(response: Any) -> None:
            request.setResponseCode(response.code)
            for name, values in response.headers.getAllRawHeaders():
                if name.lower() in _KEPT:
                    request.responseHeaders.setRawHeaders(name, values)
            response.deliverBody(_Pump(request))

        answered.addCallback(respond)
        return NOT_DONE_YET


def main(argv: list[str]) -> None:
    """
    Serve until stopped.

    :param argv: the port and the backend URL.
    """
    from twisted.internet import reactor

    port, backend = argv
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 64
    site = Site(_Forward(Agent(reactor, pool=pool), backend.encode("ascii")))
    site.log = lambda request: None  # type: ignore[method-assign]
    serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1").listen(site)
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:])
