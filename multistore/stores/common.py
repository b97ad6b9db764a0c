# -*- test-case-name: tests.unit.test_stores_streaming -*-
"""
What every store shares besides streaming: store methods written as
coroutines (L{deferred}), the time, which service an endpoint names, read
conditions checked against an object's ETag and time, the copy helpers
(L{cannot_copy}, reading a copy's source), backend error bodies, and batch
deletes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from functools import wraps
from typing import Any, Final, ParamSpec, TypeVar
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.interfaces import IReactorTime

from multistore.bodies import BodyAsProducer, read_body
from multistore.config import BucketConfig
from multistore.headers import HeaderList
from multistore.interfaces import IObjectStore
from multistore.model import (
    BackendResponse,
    CopySource,
    DeleteOutcome,
    ObjectRead,
    ObjectResponse,
)
from multistore.s3.conditions import evaluate
from multistore.s3.errors import S3Error

_T = TypeVar("_T")
_P = ParamSpec("_P")

#: Largest error document read from a backend.
MAX_ERROR_DOCUMENT: Final = 64 * 1024


#: How many deletes of a DeleteObjects run at once on a store that deletes
#: one key per request.
DELETE_CONCURRENCY: Final = 8


def deferred(
    method: Callable[_P, Coroutine[Deferred[Any], Any, _T]],
) -> Callable[_P, Deferred[_T]]:
    """
    Write a store's method as a coroutine: the decorated method returns a
    Deferred, as L{IObjectStore}'s methods do, with the coroutine's result;
    cancelling it cancels what the coroutine waits on.
    """

    @wraps(method)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        return Deferred.fromCoroutine(method(*args, **kwargs))

    return run


def now(clock: IReactorTime) -> datetime:
    """
    :return: ``clock``'s time, in UTC.
    """
    return datetime.fromtimestamp(clock.seconds(), UTC)


def service_root(endpoint: str) -> str:
    """
    :return: an endpoint URL as it identifies a service: scheme and host
        lower-cased, no trailing ``/``.
    """
    parts = urlsplit(endpoint.strip().rstrip("/"))
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}"


async def error_body(response: BackendResponse, head: bool = False) -> bytes:
    """
    Read the document of a backend's error answer, if it has one.

    :param head: whether the answer is to a HEAD, which has no body.
    :return: the document, or nothing if there is none or it is larger than
        L{MAX_ERROR_DOCUMENT} (the body is released either way).
    """
    if head or response.body.length == 0:
        response.body.discard()
        return b""
    try:
        return await read_body(response.body, MAX_ERROR_DOCUMENT)
    except S3Error:
        return b""


def check_read(read: ObjectRead, etag: str, modified: datetime, now: datetime) -> None:
    """
    Evaluate a read's conditions against the object it reads, as S3 does,
    for stores that evaluate them themselves (a copy's
    ``x-amz-copy-source-if-*`` conditions are those of its L{source_read}).

    :param etag: the object's ETag, quoted.
    :param modified: when the object last changed.
    :param now: the store's time.
    :raise NotModified: for a read the client already has current.
    :raise S3Error: ``PreconditionFailed``.
    """
    evaluate(
        etag,
        modified,
        if_match=read.if_match,
        if_none_match=read.if_none_match,
        if_modified_since=read.if_modified_since,
        if_unmodified_since=read.if_unmodified_since,
        method="HEAD" if read.head else "GET",
        now=now,
    )


def on_same_service(
    service: Callable[[BucketConfig], object | None],
    bucket: BucketConfig,
    source: BucketConfig,
    name: str,
) -> bool:
    """
    Decide whether a store can reach a copy's source bucket as it reaches
    its own: for L{IObjectStore.can_copy}.

    :param service: what identifies the service a bucket is on and who the
        gateway is there, for a bucket of the store's kind; ``None`` for
        any other.
    :param bucket: the store's bucket.
    :param source: the copy's source bucket.
    :param name: the option that names the source's bucket (or container)
        on its service.
    :return: whether both buckets are on the same service, reached with the
        same credentials, and the source names its bucket.
    """
    mine = service(bucket)
    return mine is not None and service(source) == mine and bool(source.option(name))


def cannot_copy() -> S3Error:
    """
    :return: the failure of a copy asked of a store whose
        L{IObjectStore.can_copy} said no.
    """
    return S3Error(
        "NotImplemented",
        "This store cannot copy from that bucket on the server side.",
    )


def source_read(source: CopySource) -> ObjectRead:
    """
    :return: the read of a copy's source, with the copy's range and its
        ``x-amz-copy-source-if-*`` conditions.
    """
    found = source.conditions
    return ObjectRead(
        key=source.key,
        range=source.range,
        if_match=found.get("x-amz-copy-source-if-match"),
        if_none_match=found.get("x-amz-copy-source-if-none-match"),
        if_modified_since=found.get("x-amz-copy-source-if-modified-since"),
        if_unmodified_since=found.get("x-amz-copy-source-if-unmodified-since"),
        version_id=source.version_id,
    )


async def open_source(
    store: IObjectStore, source: CopySource
) -> tuple[BodyAsProducer, HeaderList]:
    """
    Open a copy's source on its own store, to stream it into a write.

    :param store: the source's store.
    :return: the source as a request body (release it once the write is
        done), and the source object's headers.
    :raise S3Error: ``PreconditionFailed`` if the source is not modified
        (``x-amz-copy-source-if-none-match``); the read's own failures.
    """
    answer = await store.get_object(source_read(source))
    if answer.status == 304 or answer.body is None:
        if answer.body is not None:
            answer.body.discard()
        raise S3Error(
            "PreconditionFailed",
            extra=(("Condition", "x-amz-copy-source-If-None-Match"),),
        )
    return BodyAsProducer(answer.body), answer.headers


async def deleted(
    key: str, version_id: str | None, delete: Awaitable[ObjectResponse]
) -> DeleteOutcome:
    """
    :param delete: the delete of ``key`` (``version_id``), under way.
    :return: its outcome in a DeleteObjects answer: the version deleted and
        whether a delete marker was made, or the error it failed with.
    """
    try:
        response = await delete
    except S3Error as error:
        return DeleteOutcome(key, version_id, error=(error.code, error.message))
    return DeleteOutcome(
        key,
        response.headers.get("x-amz-version-id") or version_id,
        delete_marker=response.headers.get("x-amz-delete-marker") == "true",
    )


def delete_each(
    keys: Sequence[tuple[str, str | None]],
    delete: Callable[[str, str | None], Awaitable[ObjectResponse]],
) -> Deferred[Sequence[DeleteOutcome]]:
    """
    Delete keys one request each, L{DELETE_CONCURRENCY} at a time.

    :param delete: deletes one key (and version).
    :return: the keys' outcomes, in order.
    """
    semaphore = DeferredSemaphore(DELETE_CONCURRENCY)

    def one(key: str, version_id: str | None) -> Deferred[DeleteOutcome]:
        return Deferred.fromCoroutine(deleted(key, version_id, delete(key, version_id)))

    gathered: Deferred[list[DeleteOutcome]] = gatherResults(
        [semaphore.run(one, key, version_id) for key, version_id in keys],
        consumeErrors=True,
    )
    return gathered.addCallback(lambda outcomes: list(outcomes))
