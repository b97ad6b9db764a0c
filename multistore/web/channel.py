# -*- test-case-name: tests.unit.test_web_channel -*-
"""
What the web layer reads from twisted.web's C{HTTPChannel} that Twisted does
not publish: every use of the channel's private attributes is here, and
C{tests.unit.test_web_channel} fails if a Twisted release changes them.

While a request is still arriving (its headers are in, its body is not),
twisted.web keeps the request line on the channel, in C{_command} and
C{_path} (and its HTTP version in C{_version}), and clears the first two
once the whole request has been read and handed
to C{Request.requestReceived}. multistore starts a request with a body as
soon as its headers are in (so an upload streams to its store while the
client sends it), which needs the request line before Twisted gives it to
the request.
"""

from __future__ import annotations


def pending_request_line(channel: object) -> tuple[bytes, bytes] | None:
    """
    :param channel: a request's channel.
    :return: the method and target of the request the channel is still
        reading, or ``None`` if it is not reading one (or is not an
        HTTP/1.x channel).
    """
    method = getattr(channel, "_command", None)
    target = getattr(channel, "_path", None)
    if isinstance(method, bytes) and isinstance(target, bytes):
        return method, target
    return None


def request_still_arriving(channel: object) -> bool:
    """
    :param channel: a request's channel.
    :return: whether the channel is still reading the request (its body, or
        part of it, has yet to arrive).
    """
    return getattr(channel, "_command", None) is not None


def pending_request_version(channel: object) -> bytes | None:
    """
    :param channel: a request's channel.
    :return: the HTTP version of the request the channel is reading (as
        C{b"HTTP/1.1"}), or ``None`` if unknown.
    """
    version = getattr(channel, "_version", None)
    return version if isinstance(version, bytes) else None


def close_after_response(channel: object) -> None:
    """
    Make ``channel`` close its connection once the current response is out
    (it then sends ``Connection: close``), as a stopping daemon does.
    """
    if hasattr(channel, "persistent"):
        channel.persistent = False
