# -*- test-case-name: tests.unit.test_endpoints -*-
"""
A listening endpoint several daemons can share: ``reuseport:PORT``.

One multistore process uses one core. To use more, run several daemons with
the same ``--listen reuseport:8080:interface=0.0.0.0``: each binds its own
socket to the port with ``SO_REUSEPORT``, and the kernel spreads new
connections over them. The daemons are independent (a systemd template
unit, ``multistore@1`` ... ``multistore@N``, starts, restarts and stops
each); one that stops or restarts leaves the others serving. Linux lets
only processes of the same user join a port this way.

The string takes ``port``, and optionally ``interface`` (default: every
IPv4 address; an IPv6 address for IPv6) and ``backlog`` (default 1024), as
Twisted's ``tcp:`` does.
"""

from __future__ import annotations

import socket
from typing import Any

from attrs import frozen
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorCore,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.plugin import IPlugin
from zope.interface import implementer

#: The listen queue unless the string says otherwise.
DEFAULT_BACKLOG = 1024


@implementer(IStreamServerEndpoint)
@frozen
class ReusePortEndpoint:
    """
    A TCP server endpoint whose socket is bound with ``SO_REUSEPORT``.

    :ivar reactor: the reactor, providing C{IReactorSocket}.
    :ivar port: the port.
    :ivar interface: the address to bind; empty for every IPv4 address.
    :ivar backlog: the listen queue length.
    """

    reactor: Any
    port: int
    interface: str = ""
    backlog: int = DEFAULT_BACKLOG

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        """
        Bind, listen and hand the socket to the reactor.

        :param factory: makes a protocol for each connection.
        :return: the listening port, or the bind failure.
        """
        family = socket.AF_INET6 if ":" in self.interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.interface, self.port))
            sock.listen(self.backlog)
            sock.setblocking(False)
            port: IListeningPort = self.reactor.adoptStreamPort(
                sock.fileno(), family, factory
            )
        except Exception:
            return fail()
        finally:
            # The reactor listens on a duplicate of the descriptor.
            sock.close()
        return succeed(port)


@implementer(IPlugin, IStreamServerEndpointStringParser)
@frozen
class ReusePortParser:
    """
    Parses ``reuseport:PORT[:interface=ADDRESS][:backlog=N]``.
    """

    prefix = "reuseport"

    def parseStreamServer(
        self, reactor: IReactorCore, *args: object, **kwargs: object
    ) -> IStreamServerEndpoint:
        """
        :param reactor: the reactor.
        :param args: the port (or ``port=`` in ``kwargs``).
        :param kwargs: ``interface`` and ``backlog``.
        :return: the endpoint.
        :raise ValueError: for a missing or malformed argument.
        """
        options = {name: str(value) for name, value in kwargs.items()}
        if args:
            if len(args) > 1 or "port" in options:
                raise ValueError("reuseport: takes one port")
            options["port"] = str(args[0])
        unknown = set(options) - {"port", "interface", "backlog"}
        if unknown:
            raise ValueError(f"reuseport: unknown options {sorted(unknown)}")
        if "port" not in options:
            raise ValueError("reuseport: needs a port")
        try:
            port = int(options["port"])
            backlog = int(options.get("backlog", DEFAULT_BACKLOG))
        except ValueError:
            raise ValueError("reuseport: port and backlog are numbers") from None
        if not 0 <= port <= 65535 or backlog < 1:
            raise ValueError("reuseport: port 0-65535, backlog at least 1")
        return ReusePortEndpoint(reactor, port, options.get("interface", ""), backlog)
