# -*- test-case-name: tests.unit.test_forwarder -*-
"""
Header hygiene between the gateway and its backends: hop-by-hop fields and
those a ``Connection`` header names are never passed on, either way, and
outgoing fields keep the bytes and the order the store gave them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from twisted.web.http_headers import Headers

from multistore.headers import HeaderList

#: Header fields that describe one connection, not the message: never passed
#: on in either direction (RFC 9110 section 7.6.1, plus the framing fields
#: the transport owns).
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


#: Request header fields the transport writes itself.
_TRANSPORT_REQUEST_HEADERS = HOP_BY_HOP_HEADERS | {"content-length"}


def _connection_tokens(values: Iterable[bytes]) -> set[str]:
    """
    :return: the lower-cased field names listed in ``Connection`` values.
    """
    tokens: set[str] = set()
    for value in values:
        for token in value.decode("iso-8859-1").split(","):
            token = token.strip().lower()
            if token:
                tokens.add(token)
    return tokens


def end_to_end_headers(
    raw: Iterable[tuple[bytes, Sequence[bytes]]],
) -> HeaderList:
    """
    Keep the end-to-end fields of a response.

    :param raw: header fields as C{Headers.getAllRawHeaders} gives them: each
        name with all of its values, in order.
    :return: every field except the hop-by-hop ones (L{HOP_BY_HOP_HEADERS})
        and those named in a ``Connection`` field; repeated fields keep every
        value, in order; values are decoded as ISO-8859-1 so no byte is lost.
    """
    fields = [(name.decode("iso-8859-1").lower(), list(values)) for name, values in raw]
    drop = set(HOP_BY_HOP_HEADERS)
    for name, values in fields:
        if name == "connection":
            drop |= _connection_tokens(values)
    return HeaderList(
        [
            (name, value.decode("iso-8859-1"))
            for name, values in fields
            if name not in drop
            for value in values
        ]
    )


class WireHeaders(Headers):
    """
    Request headers whose ``x-*`` names go out in lower case, as given,
    rather than in twisted.web's canonical case: Azure keeps the names of
    ``x-ms-meta-*`` headers as sent, and every other client of the store
    would see ``Owner`` where an S3 client wrote ``owner``.
    """

    def getAllRawHeaders(self) -> Iterator[tuple[bytes, Sequence[bytes]]]:
        for name, values in super().getAllRawHeaders():
            if name[:2].lower() == b"x-":
                name = name.lower()
            yield name, values


def outgoing_headers(headers: HeaderList, user_agent: str) -> Headers:
    """
    Turn a request's header fields into Twisted's C{Headers}.

    :param headers: the fields to send, as the store built them.
    :param user_agent: the ``User-Agent`` to add if ``headers`` has none.
    :return: the fields encoded as ISO-8859-1, without the hop-by-hop and
        framing fields (``Content-Length``, ``Transfer-Encoding``,
        ``Connection``...), which the transport writes itself. ``Host`` is
        kept if given (it may be signed); the L{Agent} adds it otherwise.
    """
    result = WireHeaders()
    for name, value in headers:
        if name in _TRANSPORT_REQUEST_HEADERS:
            continue
        result.addRawHeader(name.encode("iso-8859-1"), value.encode("iso-8859-1"))
    if "user-agent" not in headers:
        result.addRawHeader(b"user-agent", user_agent.encode("iso-8859-1"))
    return result
