# -*- test-case-name: tests.unit.test_connections -*-
"""
How much a connection reads and queues at a time, on both sides of the
gateway.
"""

from __future__ import annotations

#: Bytes read from a connection at once, and queued for writing to it before
#: its producer is paused (Twisted's C{bufferSize}, 64 KiB by default). Each
#: chunk is a trip through the protocol stack, and each pause and resume an
#: epoll update: at 64 KiB a 256 MiB GET cost the daemon 0.45 CPU seconds,
#: at 256 KiB 0.28. Larger buffers saved no more, and cost memory: 16
#: concurrent uploads peaked at 78 MiB RSS with 256 KiB, 126 MiB with 1 MiB.
CONNECTION_BUFFER = 256 * 1024


def enlarge_buffers(transport: object, size: int = CONNECTION_BUFFER) -> None:
    """
    Read and queue up to ``size`` bytes at a time on a connection: set the
    C{bufferSize} of ``transport`` and of every transport below it (TLS over
    TCP).

    :param transport: a connection's transport.
    :param size: the buffer size.
    """
    seen = 0
    while transport is not None and seen < 4:
        if isinstance(getattr(transport, "bufferSize", None), int):
            transport.bufferSize = size  # type: ignore[attr-defined]
        transport = getattr(transport, "transport", None)
        seen += 1
