# -*- test-case-name: tests.unit.test_forwarder -*-
"""
Connections to backends: one endpoint per scheme, host and port (with large
socket buffers), and a quiet client factory for the connection pool.
"""

from __future__ import annotations

from typing import Any

from attrs import define, field, frozen
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.web.client import URI, _HTTP11ClientFactory
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from multistore.bodies import CONNECTION_BUFFER, enlarge_buffers

#: Distinct backend endpoints (scheme, host, port) remembered; past this,
#: the cache starts again (patterns may name a host per bucket).
_MAX_ENDPOINTS = 1024


@implementer(IStreamClientEndpoint)
@frozen
class _LargeBufferEndpoint:
    """
    An endpoint whose connections get L{enlarge_buffers}.
    """

    _endpoint: IStreamClientEndpoint
    _size: int

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        def connected(protocol: IProtocol) -> IProtocol:
            enlarge_buffers(getattr(protocol, "transport", None), self._size)
            return protocol

        d: Deferred[IProtocol] = self._endpoint.connect(factory)
        return d.addCallback(connected)


@implementer(IAgentEndpointFactory)
@define
class BackendEndpoints:
    """
    The endpoints backend connections are made with: one per scheme, host
    and port, made once (the L{Agent}'s own factory makes a new one, host
    name encoding included, for every request), with large buffers.

    :ivar reactor: the reactor to connect with.
    :ivar tls_policy: how HTTPS backends are verified.
    :ivar connect_timeout: seconds to wait for a connection.
    :ivar buffer_size: see L{CONNECTION_BUFFER}.
    """

    reactor: Any
    tls_policy: IPolicyForHTTPS
    connect_timeout: float
    buffer_size: int = CONNECTION_BUFFER
    _endpoints: dict[tuple[bytes, bytes, int], IStreamClientEndpoint] = field(
        factory=dict
    )

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        """
        :param uri: a backend request's URI.
        :return: the endpoint for its scheme, host and port.
        :raise SchemeNotSupported: unless the scheme is HTTP or HTTPS.
        """
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is not None:
            return endpoint
        if uri.scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
        endpoint = HostnameEndpoint(
            self.reactor, uri.host, uri.port, timeout=self.connect_timeout
        )
        if uri.scheme == b"https":
            creator = self.tls_policy.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        endpoint = _LargeBufferEndpoint(endpoint, self.buffer_size)
        if len(self._endpoints) >= _MAX_ENDPOINTS:
            self._endpoints.clear()
        self._endpoints[key] = endpoint
        return endpoint


class QuietClientFactory(_HTTP11ClientFactory):
    """
    The pool's protocol factory, without an info line ("Starting factory")
    for every new backend connection.
    """

    noisy = False
