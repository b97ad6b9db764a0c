"""
Tests for L{multistore.web.channel}: the private attributes of twisted.web's
C{HTTPChannel} that multistore reads, checked against the Twisted in use
(both test lanes run this: Debian's Twisted and the latest).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import server
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource

from multistore.web.channel import (
    pending_request_line,
    pending_request_version,
    request_still_arriving,
)


class _Watching(server.Request):
    """
    Records what the channel says while the request arrives and once it is in.
    """

    seen: list[tuple[str, Any, bool]] = []
    versions: list[bytes | None] = []

    def gotLength(self, length: int | None) -> None:
        self.versions.append(pending_request_version(self.channel))
        self.seen.append(
            (
                "headers",
                pending_request_line(self.channel),
                request_still_arriving(self.channel),
            )
        )
        super().gotLength(length)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self.seen.append(
            (
                "received",
                pending_request_line(self.channel),
                request_still_arriving(self.channel),
            )
        )
        super().requestReceived(command, path, version)


class ChannelTests(SynchronousTestCase):
    """
    A real C{HTTPChannel}, fed a request in pieces.
    """

    def setUp(self) -> None:
        _Watching.seen = []
        _Watching.versions = []
        site = server.Site(Resource())
        site.requestFactory = _Watching
        self.channel: HTTPChannel = site.buildProtocol(None)  # type: ignore[assignment]
        self.channel.makeConnection(StringTransport())

    def test_request_line_while_body_arrives(self) -> None:
        """
        Once the headers are in, the channel has the request line and is
        still reading; once the body is in, it has neither.
        """
        self.channel.dataReceived(
            b"PUT /bucket/some%20key?partNumber=1 HTTP/1.1\r\n"
            b"Host: example\r\nContent-Length: 5\r\n\r\n"
        )
        self.assertEqual(
            _Watching.seen,
            [("headers", (b"PUT", b"/bucket/some%20key?partNumber=1"), True)],
        )
        self.channel.dataReceived(b"hel")
        self.channel.dataReceived(b"lo")
        self.assertEqual(_Watching.seen[1], ("received", None, False))
        self.assertEqual(_Watching.versions, [b"HTTP/1.1"])

    def test_version_one_zero(self) -> None:
        """
        The version of an HTTP/1.0 request is known once its headers are in.
        """
        self.channel.dataReceived(
            b"PUT /b/k HTTP/1.0\r\nHost: example\r\nContent-Length: 1\r\n\r\n"
        )
        self.assertEqual(_Watching.versions, [b"HTTP/1.0"])

    def test_not_a_channel(self) -> None:
        """
        Something that is not an HTTP/1.x channel has no request line.
        """
        self.assertIsNone(pending_request_line(object()))
        self.assertIsNone(pending_request_version(object()))
        self.assertFalse(request_still_arriving(object()))
