# -*- test-case-name: tests.unit.test_testing -*-
"""
What a L{multistore.testing.MemoryStore} keeps (objects, parts, uploads),
the rules it shares between its halves, and how it takes a body in.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final, Protocol
from urllib.parse import parse_qsl

from attrs import define, field, frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IConsumer,
    IProducer,
    IPushProducer,
)
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from multistore.headers import HeaderList
from multistore.s3.checksums import check_content_md5
from multistore.s3.errors import S3Error
from multistore.stores.object_headers import CHECKSUM_VALUES

#: Headers that carry an object's checksums.
_CHECKSUMS: Final = CHECKSUM_VALUES | {"x-amz-checksum-type"}


@frozen
class _Object:
    data: bytes
    etag: str
    modified: datetime
    headers: tuple[tuple[str, str], ...] = ()
    parts: tuple[int, ...] = ()

    def get(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name), None)


@frozen
class _Part:
    data: bytes
    etag: str
    modified: datetime
    checksums: tuple[tuple[str, str], ...] = ()


@define
class _Upload:
    upload_id: str
    key: str
    headers: tuple[tuple[str, str], ...]
    # The time it began, in whole seconds, plus the store's count of uploads
    # begun: uploads begun in the same second list in the order they began.
    initiated_ns: int
    parts: dict[int, _Part] = field(factory=dict)


def _order(key: str) -> bytes:
    """
    S3's order of keys: UTF-8 byte order.
    """
    return key.encode("utf-8", "surrogatepass")


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _expected_md5(headers: HeaderList) -> str | None:
    """
    :return: the hex MD5 ``Content-MD5`` announces, if sent.
    :raise S3Error: ``InvalidDigest`` if it is not a base64 MD5.
    """
    value = headers.get("content-md5")
    return None if value is None else check_content_md5(value).hex()


def _tag_count(value: str | None) -> int:
    return len(parse_qsl(value, keep_blank_values=True)) if value else 0


def _shown_headers(found: _Object, whole: bool) -> list[tuple[str, str]]:
    """
    The stored headers a read answers with, besides ``Content-Type``: tags
    as a count, a ``STANDARD`` storage class not at all, checksums only for
    the whole object.
    """
    shown = [
        (name, value)
        for name, value in found.headers
        if name not in {"content-type", "x-amz-tagging"}
        and (name != "x-amz-storage-class" or value != "STANDARD")
        and (whole or name not in _CHECKSUMS)
    ]
    tags = _tag_count(found.get("x-amz-tagging"))
    if tags:
        shown.append(("x-amz-tagging-count", str(tags)))
    return shown


class _Holder(Protocol):
    """
    The store an L{_Intake} reads for.
    """

    writes_held: bool
    written_while_held: int
    _intakes: list[_Intake]


@implementer(IConsumer)
class _Intake:
    """
    Reads one body into memory for a L{MemoryStore}, pausing its producer
    while the store holds writes back.
    """

    def __init__(self, store: _Holder, key: str, body: IBodyProducer) -> None:
        self.key = key
        self.received = 0
        self._store = store
        self._body = body
        self._chunks: list[bytes] = []
        self._producer: IPushProducer | None = None
        self._paused = False
        self._settled = False
        self._result: Deferred[bytes] = Deferred(self._cancel)

    def start(self) -> Deferred[bytes]:
        self._store._intakes.append(self)
        try:
            done = self._body.startProducing(self)
        except Exception:
            self._settle(Failure())
            return self._result
        done.addCallbacks(self._finished, self._failed)
        if self._store.writes_held:
            self.pause()
        return self._result

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        if IPushProducer.providedBy(producer):
            self._producer = producer

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        if self._settled:
            return
        if self._paused:
            self._store.written_while_held += len(data)
        self._chunks.append(data)
        self.received += len(data)

    def _control(self) -> IPushProducer:
        return self._producer if self._producer is not None else self._body

    def pause(self) -> None:
        if not self._settled and not self._paused:
            self._paused = True
            self._control().pauseProducing()

    def resume(self) -> None:
        if not self._settled and self._paused:
            self._paused = False
            self._control().resumeProducing()

    def _finished(self, _: object) -> None:
        if self._settled:
            return
        length = self._body.length
        if isinstance(length, int) and length != self.received:
            self._settle(
                Failure(
                    S3Error(
                        "IncompleteBody",
                        f"The body announced {length} bytes and delivered {self.received}.",
                    )
                )
            )
            return
        self._settle(b"".join(self._chunks))

    def _failed(self, reason: Failure) -> None:
        if not self._settled:
            self._settle(reason)

    def _cancel(self, _: Deferred[bytes]) -> None:
        if self._settled:
            return
        self._forget()
        self._body.stopProducing()

    def _forget(self) -> None:
        self._settled = True
        self._chunks = []
        if self in self._store._intakes:
            self._store._intakes.remove(self)

    def _settle(self, outcome: bytes | Failure) -> None:
        self._forget()
        if isinstance(outcome, Failure):
            self._result.errback(outcome)
        else:
            self._result.callback(outcome)
