"""
Tests for L{multistore.bodies}.
"""

from __future__ import annotations

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from multistore.bodies import CONNECTION_BUFFER, enlarge_buffers


class _Layer:
    """
    A transport above another (as TLS is above TCP), with no buffer of its
    own.
    """

    def __init__(self, below: object) -> None:
        self.transport = below


class EnlargeBuffersTests(SynchronousTestCase):
    """
    Tests for L{enlarge_buffers}.
    """

    def test_sets_buffer_size(self) -> None:
        """
        A transport's C{bufferSize} becomes the connection buffer size.
        """
        transport = StringTransport()
        transport.bufferSize = 65536  # type: ignore[attr-defined]
        enlarge_buffers(transport)
        self.assertEqual(transport.bufferSize, CONNECTION_BUFFER)  # type: ignore[attr-defined]

    def test_reaches_the_transport_below(self) -> None:
        """
        Below a layer without a buffer (TLS), the transport underneath gets
        the size asked for.
        """
        below = StringTransport()
        below.bufferSize = 65536  # type: ignore[attr-defined]
        enlarge_buffers(_Layer(below), 4096)
        self.assertEqual(below.bufferSize, 4096)  # type: ignore[attr-defined]

    def test_nothing_to_enlarge(self) -> None:
        """
        No transport, or one without a buffer or a lower transport, is left
        alone; a cycle of layers is not followed for ever.
        """
        enlarge_buffers(None)
        plain = object()
        enlarge_buffers(plain)
        loop = _Layer(None)
        loop.transport = loop
        enlarge_buffers(loop)
        self.assertFalse(hasattr(loop, "bufferSize"))
