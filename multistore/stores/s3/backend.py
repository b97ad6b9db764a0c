# -*- test-case-name: tests.unit.test_s3_store -*-
"""
What every operation of the S3 store shares: L{S3Backend}, the store's
configuration and its way of talking to the backend (URLs, signed
requests, PUTs of a body, and the mapping of the backend's errors to the
client's), with the limits on the answers it reads and the allow-lists of
the request headers each write passes on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IBodyProducer

from multistore.auth.canonical import EMPTY_SHA256, UNSIGNED_PAYLOAD, uri_encode
from multistore.auth.signing import sign_request
from multistore.bodies import BytesProducer, read_body
from multistore.config import BucketConfig
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import IForwarder
from multistore.model import (
    BackendRequest,
    BackendResponse,
    ObjectResponse,
    ObjectWrite,
)
from multistore.s3.errors import STATUS_OF, S3Error
from multistore.s3.xml import parse_untrusted
from multistore.stores.common import error_body, now
from multistore.stores.failures import failed, refused
from multistore.stores.object_headers import (
    CHECKSUM_VALUES,
    CONDITIONS,
    OBJECT_REQUEST_HEADERS,
    OBJECT_REQUEST_PREFIXES,
    AllowList,
    allowed_headers,
    write_response_headers,
)
from multistore.stores.s3.xml import parse_error_document
from multistore.stores.streaming import held

#: Largest listing read from a backend (a page of 1000 keys of 1024 bytes,
#: url-encoded, with their metadata, fits several times over); also the
#: limit for ListParts, ListMultipartUploads and DeleteObjects answers.
MAX_LISTING: Final = 8 * 1024 * 1024

#: Largest answer to CreateMultipartUpload, CopyObject, UploadPartCopy or
#: CompleteMultipartUpload read from a backend (S3 pads the answers of long
#: copies and completions with whitespace while it works).
MAX_RESULT_DOCUMENT: Final = 1024 * 1024

_CUSTOMER_KEY: Final = "x-amz-server-side-encryption-customer-"
_SOURCE_CUSTOMER_KEY: Final = "x-amz-copy-source-server-side-encryption-customer-"

#: The request headers each write passes on.
_PUT_HEADERS: Final = AllowList(
    OBJECT_REQUEST_HEADERS
    | CHECKSUM_VALUES
    | CONDITIONS
    | {"content-md5", "x-amz-sdk-checksum-algorithm"},
    OBJECT_REQUEST_PREFIXES,
)
_CREATE_UPLOAD_HEADERS: Final = AllowList(
    OBJECT_REQUEST_HEADERS | {"x-amz-checksum-algorithm", "x-amz-checksum-type"},
    OBJECT_REQUEST_PREFIXES,
)
_PART_HEADERS: Final = AllowList(
    CHECKSUM_VALUES | {"content-md5", "x-amz-sdk-checksum-algorithm"},
    (_CUSTOMER_KEY,),
)
_COMPLETE_HEADERS: Final = AllowList(
    CHECKSUM_VALUES | CONDITIONS | {"x-amz-checksum-type", "x-amz-mp-object-size"},
    (_CUSTOMER_KEY,),
)
_COPY_HEADERS: Final = AllowList(
    OBJECT_REQUEST_HEADERS
    | CONDITIONS
    | {
        "x-amz-checksum-algorithm",
        "x-amz-metadata-directive",
        "x-amz-tagging-directive",
    },
    (*OBJECT_REQUEST_PREFIXES, _SOURCE_CUSTOMER_KEY),
)
#: What the parts and completion of an object of unknown length sent in
#: parts pass on from its write: the customer's encryption key, which every
#: part needs, and the conditions, which the completion checks. The
#: object's own digests describe no part and are verified by the gateway.
_BUFFERED_PART_HEADERS: Final = AllowList(frozenset(), (_CUSTOMER_KEY,))
_BUFFERED_COMPLETE_HEADERS: Final = AllowList(CONDITIONS, (_CUSTOMER_KEY,))
_PART_COPY_HEADERS: Final = AllowList(
    frozenset(), (_CUSTOMER_KEY, _SOURCE_CUSTOMER_KEY)
)
_COPY_CONDITIONS: Final = AllowList(
    frozenset(
        {
            "x-amz-copy-source-if-match",
            "x-amz-copy-source-if-none-match",
            "x-amz-copy-source-if-modified-since",
            "x-amz-copy-source-if-unmodified-since",
        }
    )
)

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
        "BucketNotEmpty",
        "BucketAlreadyOwnedByYou",
        "BucketAlreadyExists",
        "InvalidBucketName",
        "XAmzContentSHA256Mismatch",
        "MalformedXML",
        "IncompleteBody",
        "NotImplemented",
    }
)


def forwarded_headers(headers: HeaderList, allowed: AllowList) -> HeaderList:
    """
    Choose the request headers a write passes on to the backend.

    :param headers: the headers the caller gave.
    :param allowed: what this write passes on.
    :return: the allowed headers, in order, as L{allowed_headers} chooses
        them; ``x-amz-sdk-checksum-algorithm`` kept only with the
        ``x-amz-checksum-*`` header it names (S3 refuses it otherwise, and
        a trailing checksum is verified by the gateway, not sent on).
    """
    kept = allowed_headers(headers, allowed)
    present = kept.names()
    return HeaderList(
        (name, value)
        for name, value in kept
        if name != "x-amz-sdk-checksum-algorithm"
        or f"x-amz-checksum-{value.strip().lower()}" in present
    )


def _status_code(status: int) -> str:
    return {
        404: "NoSuchKey",
        409: "OperationAborted",
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


@frozen
class S3Backend:
    """
    A virtual bucket's store on an S3-compatible service, as far as its
    operations share it: the base of L{multistore.stores.s3.store.S3Store}
    and of the operations it inherits.

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

    def _now(self) -> datetime:
        return now(self.clock)

    def url(self, key: str | None, query: Sequence[tuple[str, str]] = ()) -> str:
        """
        :param query: ``(name, value)`` parameters; one with an empty value
            is sent as its name alone (``?uploads``).
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
                uri_encode(n, keep_slash=False)
                + (f"={uri_encode(v, keep_slash=False)}" if v else "")
                for n, v in query
            )
        return path

    def _send(
        self,
        method: str,
        key: str | None,
        query: Sequence[tuple[str, str]] = (),
        headers: HeaderList = NO_HEADERS,
        body: IBodyProducer | None = None,
        payload_hash: str = EMPTY_SHA256,
    ) -> Deferred[BackendResponse]:
        """
        Sign (when the bucket has credentials) and send one request.

        :param payload_hash: the body's hex SHA-256, or ``UNSIGNED-PAYLOAD``
            for a streamed body.
        """
        url = self.url(key, query)
        access_key = self.bucket.option("access_key_id")
        secret = self.bucket.option("secret_access_key")
        if access_key and secret and not self.bucket.flag("skip_signature"):
            headers = sign_request(
                method,
                url,
                headers,
                payload_hash,
                access_key,
                secret,
                self.bucket.option("token"),
                self._region,
                self._now(),
            )
        return self.forwarder.forward(
            BackendRequest(method=method, url=url, headers=headers, body=body)
        )

    def _send_xml(
        self,
        method: str,
        key: str | None,
        query: Sequence[tuple[str, str]],
        document: bytes,
        headers: HeaderList = NO_HEADERS,
    ) -> Deferred[BackendResponse]:
        """
        Send a request whose body is an XML document built here, its hash
        signed.
        """
        return self._send(
            method,
            key,
            query,
            headers,
            BytesProducer(document),
            hashlib.sha256(document).hexdigest(),
        )

    def _mapped(
        self,
        code: str,
        message: str | None,
        status: int,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> S3Error:
        """
        The error a client gets for a backend's error ``code``: the code
        itself if it is the client's business (with multistore's own
        message, never the backend's), ``AccessDenied`` blaming the backend,
        or ``ServiceUnavailable``.
        """
        if code in _PASSED_CODES:
            return S3Error(code, headers=headers)
        if code == "AccessDenied" or status == 403:
            return refused(self.log, self.bucket.name, code, message)
        return failed(
            self.log,
            self.bucket.name,
            status,
            code,
            message,
            slow_down=code == "SlowDown",
        )

    async def _error_code(
        self, response: BackendResponse, head: bool = False
    ) -> tuple[str | None, str | None, bytes]:
        """
        Read a backend error response's document.

        :return: its ``(code, message, body)``; code and message are
            ``None`` if there is no S3 error document.
        """
        body = await error_body(response, head)
        if not body:
            return None, None, b""
        parsed = parse_error_document(body)
        if parsed is None:
            return None, None, body
        return parsed[0], parsed[1], body

    async def _error(
        self,
        response: BackendResponse,
        head: bool = False,
        statuses: Mapping[int, str] | None = None,
    ) -> S3Error:
        """
        Turn a backend error response into the error the client gets.

        :param statuses: the code for a status when the backend sent no
            error document, where it differs from a read's.
        """
        code, message, body = await self._error_code(response, head)
        if code is None:
            code = (statuses or {}).get(response.status) or _status_code(
                response.status
            )
        extra_headers: tuple[tuple[str, str], ...] = ()
        if code == "InvalidRange":
            content_range = response.headers.get("content-range") or _unsatisfied_range(
                body
            )
            if content_range:
                extra_headers = (("content-range", content_range),)
        return self._mapped(code, message, response.status, extra_headers)

    async def _result_document(
        self, response: BackendResponse, statuses: Mapping[int, str] | None = None
    ) -> bytes:
        """
        Read the XML answer of a write that S3 may answer ``200 OK`` and then
        fail in an ``<Error>`` document (copies, completions).

        :return: the answer, which is not an error document.
        :raise S3Error: the mapped error, whatever the status.
        """
        if response.status != 200:
            raise await self._error(response, statuses=statuses)
        body = await read_body(response.body, MAX_RESULT_DOCUMENT)
        parsed = parse_error_document(body)
        if parsed is not None:
            code, message = parsed
            raise self._mapped(code, message, STATUS_OF.get(code, 500))
        return body

    # --- uploads --------------------------------------------------------------

    async def _upload(
        self,
        write: ObjectWrite,
        query: Sequence[tuple[str, str]],
        allowed: AllowList,
        statuses: Mapping[int, str],
    ) -> ObjectResponse:
        """
        PUT a body of known length (an object or a part), streamed.

        :raise S3Error: ``MissingContentLength`` for a body of unknown
            length, as S3 answers an UploadPart without one.
        """
        if not isinstance(write.body.length, int):
            raise S3Error("MissingContentLength")
        body = await held(write.body)
        return await self._put(write.key, query, write.headers, allowed, statuses, body)

    async def _put(
        self,
        key: str,
        query: Sequence[tuple[str, str]],
        headers: HeaderList,
        allowed: AllowList,
        statuses: Mapping[int, str],
        body: IBodyProducer | None,
    ) -> ObjectResponse:
        """
        Send one PUT of a body, with the headers ``allowed``.
        """
        response = await self._send(
            "PUT",
            key,
            query,
            forwarded_headers(headers, allowed),
            body,
            UNSIGNED_PAYLOAD,
        )
        if response.status != 200:
            raise await self._error(response, statuses=statuses)
        response.body.discard()
        return ObjectResponse(200, write_response_headers(response.headers))
