"""
Tests for L{multistore.web.endpoints}: several listeners on one port.
"""

from __future__ import annotations

import socket

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from multistore.web.endpoints import DEFAULT_BACKLOG, ReusePortEndpoint, ReusePortParser


class ParserTests(SynchronousTestCase):
    """
    Tests for L{ReusePortParser}.
    """

    def test_strings(self) -> None:
        """
        The port, interface and backlog come from the endpoint string, as
        Twisted's C{tcp:} takes them.
        """
        memory = MemoryReactor()
        endpoint = serverFromString(
            memory, "reuseport:8080:interface=127.0.0.1:backlog=7"
        )
        self.assertEqual(endpoint, ReusePortEndpoint(memory, 8080, "127.0.0.1", 7))
        self.assertEqual(
            serverFromString(memory, "reuseport:port=9"),
            ReusePortEndpoint(memory, 9, "", DEFAULT_BACKLOG),
        )

    def test_bad_strings(self) -> None:
        """
        A missing, doubled or malformed port, a bad backlog or an unknown
        option is refused.
        """
        parser = ReusePortParser()
        for args, kwargs in [
            ((), {}),
            (("1", "2"), {}),
            (("x",), {}),
            (("70000",), {}),
            (("80",), {"backlog": "0"}),
            (("80",), {"colour": "red"}),
        ]:
            self.assertRaises(
                ValueError, parser.parseStreamServer, MemoryReactor(), *args, **kwargs
            )


class ListenTests(TestCase):
    """
    Real sockets: two endpoints share one port.
    """

    def test_two_listeners_one_port(self) -> None:
        """
        Two C{reuseport:} listeners bind the same port; a plain bind of it
        fails while they listen; connections are accepted.
        """
        factory = Factory.forProtocol(Protocol)
        first = self.successResultOf(
            ReusePortEndpoint(reactor, 0, "127.0.0.1").listen(factory)
        )
        self.addCleanup(first.stopListening)
        port = first.getHost().port
        second = self.successResultOf(
            ReusePortEndpoint(reactor, port, "127.0.0.1").listen(factory)
        )
        self.addCleanup(second.stopListening)
        self.assertEqual(second.getHost().port, port)
        plain = socket.socket()
        self.addCleanup(plain.close)
        self.assertRaises(OSError, plain.bind, ("127.0.0.1", port))
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.close()

    def test_bind_failure(self) -> None:
        """
        A port held by a listener without C{SO_REUSEPORT} cannot be shared:
        the failure is the listen's result.
        """
        holder = socket.socket()
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        failure = self.failureResultOf(
            ReusePortEndpoint(reactor, port, "127.0.0.1").listen(
                Factory.forProtocol(Protocol)
            )
        )
        self.assertIsInstance(failure.value, OSError)
