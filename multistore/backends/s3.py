# -*- test-case-name: tests.unit.test_s3_store -*-
"""
Stores on any S3-compatible service.

Requests are path-style (``endpoint/bucket/key``) unless the bucket asks for
virtual-hosted style, signed with SigV4 by multistore's own signer using the
bucket's backend credentials (or sent unsigned when it has none), and sent
through the shared L{IForwarder}.

Only object headers on an allow-list are passed back to clients, so nothing
the backend says about itself (its request ids, its bucket, its lifecycle
rules) reaches them, and the backend's error documents are replaced by the
gateway's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from multistore.auth.sigv4 import EMPTY_SHA256, sign_request, uri_encode
from multistore.backends.forwarder import read_body
from multistore.backends.unwritable import Unwritable
from multistore.config import BucketConfig
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import IForwarder, IObjectStore
from multistore.model import (
    BackendRequest,
    BackendResponse,
    ListPage,
    ListRequest,
    ObjectRead,
    ObjectResponse,
)
from multistore.s3.errors import STATUS_OF, S3Error
from multistore.s3.xml import (
    parse_error_document,
    parse_list_objects_v2,
    parse_untrusted,
)

#: Largest listing read from a backend (a page of 1000 keys of 1024 bytes,
#: url-encoded, with their metadata, fits several times over).
MAX_LISTING: Final = 8 * 1024 * 1024

#: Largest error document read from a backend.
MAX_ERROR_DOCUMENT: Final = 64 * 1024

#: Object response headers passed on to clients.
_OBJECT_HEADERS: Final = frozenset(
    {
        "accept-ranges",
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-length",
        "content-range",
        "content-type",
        "etag",
        "expires",
        "last-modified",
        "x-amz-delete-marker",
        "x-amz-missing-meta",
        "x-amz-mp-parts-count",
        "x-amz-object-lock-legal-hold",
        "x-amz-object-lock-mode",
        "x-amz-object-lock-retain-until-date",
        "x-amz-replication-status",
        "x-amz-restore",
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-bucket-key-enabled",
        "x-amz-server-side-encryption-customer-algorithm",
        "x-amz-storage-class",
        "x-amz-tagging-count",
        "x-amz-version-id",
        "x-amz-website-redirect-location",
    }
)
_OBJECT_HEADER_PREFIXES: Final = ("x-amz-meta-", "x-amz-checksum-")

#: Backend error codes passed on as they are (others become 503).
_PASSED_CODES: Final = frozenset(
    {
        "NoSuchKey",
        "NoSuchBucket",
        "NoSuchVersion",
        "NoSuchUpload",
        "PreconditionFailed",
        "InvalidRange",
        "InvalidPartNumber",
        "InvalidArgument",
        "InvalidRequest",
        "InvalidObjectState",
        "SlowDown",
        "EntityTooLarge",
        "EntityTooSmall",
        "InvalidPart",
        "InvalidPartOrder",
        "BadDigest",
        "InvalidDigest",
        "KeyTooLongError",
        "MethodNotAllowed",
    }
)


def object_headers(headers: HeaderList) -> HeaderList:
    """
    :return: the headers of a backend object response that clients may see.
    """
    return HeaderList(
        (name, value)
        for name, value in headers
        if name in _OBJECT_HEADERS or name.startswith(_OBJECT_HEADER_PREFIXES)
    )


def _status_code(status: int) -> str:
    return {
        404: "NoSuchKey",
        412: "PreconditionFailed",
        416: "InvalidRange",
        403: "AccessDenied",
        400: "InvalidRequest",
        405: "MethodNotAllowed",
        503: "SlowDown",
    }.get(status, "ServiceUnavailable")


def _unsatisfied_range(error_body: bytes) -> str | None:
    """
    :return: ``bytes */SIZE`` from the ``ActualObjectSize`` of a backend's
        ``InvalidRange`` document, for backends that say the size there and
        not in a ``Content-Range`` header; ``None`` if it is not there.
    """
    root = parse_untrusted(error_body) if error_body else None
    if root is None:
        return None
    for element in root.iter("{*}ActualObjectSize"):
        size = (element.text or "").strip()
        if size.isascii() and size.isdigit():
            return f"bytes */{int(size)}"
    return None


@implementer(IObjectStore)
@frozen
class S3Store(Unwritable):
    """
    A virtual bucket's store on an S3-compatible service.

    :ivar bucket: the virtual bucket's configuration.
    :ivar forwarder: the HTTP transport.
    :ivar clock: the time source for signatures.
    """

    log = Logger()

    bucket: BucketConfig
    forwarder: IForwarder
    clock: IReactorTime

    @property
    def _region(self) -> str:
        return self.bucket.option("region", "us-east-1") or "us-east-1"

    def url(self, key: str | None, query: Sequence[tuple[str, str]] = ()) -> str:
        """
        :return: the wire URL of ``key`` (or of the bucket, for ``None``).
        """
        bucket_name = self.bucket.option("bucket_name", "") or ""
        endpoint = (
            self.bucket.option("endpoint") or f"https://s3.{self._region}.amazonaws.com"
        )
        endpoint = endpoint.rstrip("/")
        object_path = "" if key is None else "/" + uri_encode(key, keep_slash=True)
        if self.bucket.flag("virtual_hosted_style_request"):
            parts = urlsplit(endpoint)
            path = f"{parts.scheme}://{bucket_name}.{parts.netloc}{parts.path}"
            path += object_path or "/"
        else:
            path = (
                f"{endpoint}/{uri_encode(bucket_name, keep_slash=False)}{object_path}"
            )
        if query:
            path += "?" + "&".join(
                f"{uri_encode(n, keep_slash=False)}={uri_encode(v, keep_slash=False)}"
                for n, v in query
            )
        return path

    def _send(
        self,
        method: str,
        key: str | None,
        query: Sequence[tuple[str, str]] = (),
        headers: HeaderList = NO_HEADERS,
    ) -> Deferred[BackendResponse]:
        url = self.url(key, query)
        access_key = self.bucket.option("access_key_id")
        secret = self.bucket.option("secret_access_key")
        if access_key and secret and not self.bucket.flag("skip_signature"):
            headers = sign_request(
                method,
                url,
                headers,
                EMPTY_SHA256,
                access_key,
                secret,
                self.bucket.option("token"),
                self._region,
                datetime.fromtimestamp(self.clock.seconds(), UTC),
            )
        return self.forwarder.forward(
            BackendRequest(method=method, url=url, headers=headers)
        )

    async def _error(self, response: BackendResponse, head: bool = False) -> S3Error:
        """
        Turn a backend error response into the error the client gets.
        """
        code = message = None
        body = b""
        if head or response.body.length == 0:
            response.body.discard()
        else:
            try:
                body = await read_body(response.body, MAX_ERROR_DOCUMENT)
            except S3Error:
                body = b""
            parsed = parse_error_document(body)
            if parsed is not None:
                code, message = parsed
        if code is None:
            code = _status_code(response.status)
        extra_headers: tuple[tuple[str, str], ...] = ()
        if code == "InvalidRange":
            content_range = response.headers.get("content-range") or _unsatisfied_range(
                body
            )
            if content_range:
                extra_headers = (("content-range", content_range),)
        if code in _PASSED_CODES:
            return S3Error(code, headers=extra_headers)
        if code == "AccessDenied" or response.status == 403:
            self.log.warn(
                "backend of bucket {bucket} refused access ({code}: {message})",
                bucket=self.bucket.name,
                code=code,
                message=message,
            )
            return S3Error("AccessDenied", "The bucket's backend store refused access.")
        self.log.warn(
            "backend of bucket {bucket} failed with {status} {code}: {message}",
            bucket=self.bucket.name,
            status=response.status,
            code=code,
            message=message,
        )
        if code in STATUS_OF and STATUS_OF[code] == 503:
            return S3Error(code)
        return S3Error("ServiceUnavailable", "The bucket's backend store failed.")

    async def _get(self, read: ObjectRead) -> ObjectResponse:
        headers = [
            (name, value)
            for name, value in (
                ("range", read.range),
                ("if-match", read.if_match),
                ("if-none-match", read.if_none_match),
                ("if-modified-since", read.if_modified_since),
                ("if-unmodified-since", read.if_unmodified_since),
            )
            if value is not None
        ]
        query = []
        if read.part_number is not None:
            query.append(("partNumber", str(read.part_number)))
        if read.version_id is not None:
            query.append(("versionId", read.version_id))
        method = "HEAD" if read.head else "GET"
        response = await self._send(
            method, read.key, sorted(query), HeaderList(headers)
        )
        if response.status in (200, 206):
            body = None if read.head else response.body
            if body is None:
                response.body.discard()
            return ObjectResponse(
                response.status, object_headers(response.headers), body
            )
        if response.status == 304:
            response.body.discard()
            return ObjectResponse(304, object_headers(response.headers))
        raise await self._error(response, head=read.head)

    def get_object(self, read: ObjectRead) -> Deferred[ObjectResponse]:
        return Deferred.fromCoroutine(self._get(read))

    async def _list(self, request: ListRequest) -> ListPage:
        query = [
            ("encoding-type", "url"),
            ("list-type", "2"),
            ("max-keys", str(request.max_keys)),
        ]
        if request.prefix:
            query.append(("prefix", request.prefix))
        if request.delimiter:
            query.append(("delimiter", request.delimiter))
        if request.start_after:
            query.append(("start-after", request.start_after))
        if request.token:
            query.append(("continuation-token", request.token))
        response = await self._send("GET", None, sorted(query))
        if response.status == 404:
            # A listing has no key: whatever the backend says, its bucket is
            # missing.
            response.body.discard()
            raise S3Error("NoSuchBucket")
        if response.status != 200:
            raise await self._error(response)
        body = await read_body(response.body, MAX_LISTING)
        return parse_list_objects_v2(body)

    def list_objects(self, request: ListRequest) -> Deferred[ListPage]:
        return Deferred.fromCoroutine(self._list(request))

    async def _head_bucket(self) -> None:
        response = await self._send("HEAD", None)
        if response.status == 404:
            response.body.discard()
            raise S3Error("NoSuchBucket")
        if response.status != 200:
            raise await self._error(response, head=True)
        response.body.discard()

    def head_bucket(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._head_bucket())
