# -*- test-case-name: tests.unit.test_gateway -*-
"""
The values that flow through a request, shared by every layer.

A request enters as an L{IncomingRequest}, is parsed into an L{Operation},
gains an L{Identity} and a L{ResolvedBucket}, and is handed to a store as an
L{ObjectRead} or L{ListRequest}; the store answers with an L{ObjectResponse}
or a L{ListPage}; the client gets a L{Response}; observers get a
L{CompletedRequest}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal

from attrs import field, frozen

from multistore.config import AccessScope, BucketConfig, frozen_mapping
from multistore.headers import NO_HEADERS, HeaderList

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.web.iweb import IBodyProducer

    from multistore.bodies import IBody


@frozen
class IncomingRequest:
    """
    An HTTP request exactly as received, before any S3 interpretation.

    :ivar method: the request method, upper-case.
    :ivar raw_path: the path as on the wire, still percent-encoded.
    :ivar raw_query: the query string as on the wire, without ``?``.
    :ivar headers: the header fields as received.
    :ivar client_address: the peer's IP address, if known.
    :ivar secure: whether it arrived over TLS.
    :ivar body: the request body as a producer, for requests that carry one.
    """

    method: str
    raw_path: bytes
    raw_query: bytes = b""
    headers: HeaderList = NO_HEADERS
    client_address: str | None = None
    secure: bool = False
    body: IBodyProducer | None = field(default=None, eq=False)

    @property
    def host(self) -> str:
        """
        The ``Host`` header, or the empty string.
        """
        return self.headers.get("host", "") or ""


#: Operations whose ``prefix`` parameter is what they concern.
LISTINGS: Final = frozenset({"ListObjects", "ListObjectsV2", "ListMultipartUploads"})


@frozen
class Operation:
    """
    An S3 operation, parsed from a request.

    :ivar name: the S3 API name (``GetObject``, ``ListObjectsV2``...).
    :ivar action: the authorization action (``get_object``...), or ``None``
        for operations that need no grant of their own (ListBuckets).
    :ivar bucket: the virtual bucket, if the operation has one.
    :ivar key: the object key (decoded), if the operation has one.
    :ivar params: the decoded query parameters (first value of each).
    :ivar virtual_host: whether the bucket came from the ``Host`` header.
    """

    name: str
    action: str | None
    bucket: str | None = None
    key: str | None = None
    params: Mapping[str, str] = field(factory=dict, converter=frozen_mapping)
    virtual_host: bool = False

    @property
    def authz_key(self) -> str:
        """
        The key checked against scope prefixes: the object key, or for a
        listing the ``prefix`` parameter.
        """
        if self.key is not None:
            return self.key
        if self.name in LISTINGS:
            return self.params.get("prefix", "")
        # Other bucket-level operations concern the whole bucket: only a
        # scope without prefixes covers them.
        return ""


@frozen
class Identity:
    """
    Who is calling.

    :ivar kind: ``anonymous``, ``static`` (a configured access key) or
        ``session`` (temporary credentials minted by STS).
    :ivar principal: a name for logs and metering; ``None`` when anonymous.
    :ivar access_key_id: the key the request was signed with.
    :ivar scopes: what the caller may do.
    :ivar role: the STS role a session was minted for.
    """

    kind: Literal["anonymous", "static", "session"]
    principal: str | None = None
    access_key_id: str | None = None
    scopes: tuple[AccessScope, ...] = ()
    role: str | None = None

    @property
    def anonymous(self) -> bool:
        """
        Whether the caller is unauthenticated.
        """
        return self.kind == "anonymous"


#: The identity of every unsigned request.
ANONYMOUS = Identity(kind="anonymous")


@frozen
class ResolvedBucket:
    """
    A virtual bucket the caller may use for the operation at hand.

    :ivar name: the virtual bucket name.
    :ivar config: its configuration (middleware may replace it, for example
        to inject backend credentials).
    :ivar display_name: the ``Name`` shown in listings.
    :ivar pattern: the pattern the bucket was matched by, or ``None`` for a
        bucket configured by name.
    """

    name: str
    config: BucketConfig
    display_name: str
    pattern: BucketConfig | None = None


@frozen
class BucketEntry:
    """
    A bucket as ListBuckets shows it.
    """

    name: str
    creation_date: datetime


@frozen
class ObjectRead:
    """
    A read (GET or HEAD) of one object, in the store's key space.

    Conditional and range headers are carried as sent so a store that
    forwards them can do so verbatim; L{multistore.s3.conditions} and
    L{multistore.s3.ranges} parse them for stores that evaluate them.

    :ivar key: the backend key (the bucket's backend prefix applied).
    :ivar head: whether this is a HEAD.
    :ivar range: the ``Range`` header, if any.
    :ivar if_match: the ``If-Match`` header, if any.
    :ivar if_none_match: the ``If-None-Match`` header, if any.
    :ivar if_modified_since: the ``If-Modified-Since`` header, if any.
    :ivar if_unmodified_since: the ``If-Unmodified-Since`` header, if any.
    :ivar version_id: the ``versionId`` asked for, if any.
    :ivar part_number: the ``partNumber`` asked for, if any.
    """

    key: str
    head: bool = False
    range: str | None = None
    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    if_unmodified_since: str | None = None
    version_id: str | None = None
    part_number: int | None = None


@frozen
class ObjectResponse:
    """
    A store's answer to an L{ObjectRead}.

    :ivar status: 200, 206 or 304.
    :ivar headers: S3 response headers for the object: ``content-length``,
        ``content-type``, ``etag``, ``last-modified``, ``content-range``,
        ``accept-ranges``, ``x-amz-meta-*`` and the like. Never hop-by-hop
        headers.
    :ivar body: the bytes to send, or ``None`` (HEAD, 304).
    """

    status: int
    headers: HeaderList
    body: IBody | None = field(default=None, eq=False)


@frozen
class ListRequest:
    """
    One page of a listing, in the store's key space.

    :ivar prefix: only keys starting with this (backend prefix applied).
    :ivar delimiter: roll keys up into common prefixes at this, if given.
    :ivar max_keys: at most this many keys and common prefixes together.
    :ivar start_after: only keys strictly greater than this, if given.
    :ivar token: a store's own opaque resume token from a previous page.
    """

    prefix: str = ""
    delimiter: str | None = None
    max_keys: int = 1000
    start_after: str | None = None
    token: str | None = None


@frozen
class ObjectInfo:
    """
    One listed object.

    :ivar key: the backend key.
    """

    key: str
    size: int
    last_modified: datetime
    etag: str = ""
    storage_class: str = "STANDARD"


@frozen
class ListPage:
    """
    One page of keys from a store, in key order.

    :ivar objects: the objects, in key order.
    :ivar common_prefixes: the common prefixes, in order, each ending with
        the delimiter.
    :ivar truncated: whether more follows.
    :ivar next_token: the store's opaque resume token, for stores that
        cannot resume from a key; ``None`` means resume after the greatest
        key or common prefix on this page.
    """

    objects: tuple[ObjectInfo, ...] = ()
    common_prefixes: tuple[str, ...] = ()
    truncated: bool = False
    next_token: str | None = None


@frozen
class Response:
    """
    What the client gets.

    :ivar status: the HTTP status.
    :ivar headers: the response headers (``x-amz-request-id`` and the like
        are added by the web layer).
    :ivar body: the whole body as bytes, a streaming body, or ``None``.
    """

    status: int
    headers: HeaderList = NO_HEADERS
    body: bytes | IBody | None = field(default=None, eq=False)


#: Makes a resolved bucket ready for use (see
#: L{DispatchContext.bucket_preparers}).
BucketPreparer = Callable[[ResolvedBucket], "Deferred[ResolvedBucket]"]


@frozen
class DispatchContext:
    """
    A request on its way through the middleware chain.

    :ivar request_id: the request's id, as sent in ``x-amz-request-id``.
    :ivar request: the request as received.
    :ivar identity: who is calling.
    :ivar operation: what they asked for.
    :ivar bucket: the bucket it concerns, if any.
    :ivar signature: for SigV4 requests, what the signature established.
    :ivar bucket_preparers: what middleware did to ``bucket`` (inject
        backend credentials, say), to be done as well to any other bucket
        the operation resolves itself (a copy's source), in order.
    """

    request_id: str
    request: IncomingRequest
    identity: Identity
    operation: Operation
    bucket: ResolvedBucket | None = None
    signature: VerifiedSignature | None = None
    bucket_preparers: tuple[BucketPreparer, ...] = ()


@frozen
class CompletedRequest:
    """
    A finished request, for observers (metering, audit).

    :ivar request_id: the request's id.
    :ivar status: the status sent to the client.
    :ivar identity: who called, if known by then.
    :ivar operation: what they asked for, if parsed.
    :ivar bucket: the virtual bucket, if resolved.
    :ivar bytes_in: request body bytes received.
    :ivar bytes_out: response body bytes sent.
    :ivar forwarded: whether a store was contacted.
    :ivar client_address: the peer's address.
    :ivar complete: whether the response was sent in full (the client may
        have gone away).
    :ivar duration: seconds from arrival to the last byte.
    :ivar forwarded_for: the request's ``X-Forwarded-For``, if any (whether
        to believe it is the observer's decision).
    :ivar started: when the request arrived (seconds since the epoch).
    :ivar bucket_rule: the configured bucket (its name, or the pattern it
        matched), a label of few values for metrics.
    :ivar backend: the bucket's ``backend_type``, if resolved.
    """

    request_id: str
    status: int
    identity: Identity | None = None
    operation: Operation | None = None
    bucket: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    forwarded: bool = False
    client_address: str | None = None
    complete: bool = True
    duration: float = 0.0
    forwarded_for: str | None = None
    started: float = 0.0
    bucket_rule: str | None = None
    backend: str | None = None


@frozen
class UsageEvent:
    """
    One request's use of the gateway, as metering records it.

    :ivar time: when the request arrived (seconds since the epoch).
    :ivar request_id: the request's id.
    :ivar principal: who called, or ``None`` for an anonymous caller.
    :ivar client_address: the client's address (the peer's, or the one a
        trusted proxy named in ``X-Forwarded-For``).
    :ivar bucket: the virtual bucket, if the request named one.
    :ivar operation: the S3 operation, if the request was parsed that far.
    :ivar status: the status sent to the client.
    :ivar bytes_in: request body bytes received, as they arrived.
    :ivar bytes_out: response bytes sent, as they left (a client that went
        away half-way is counted for what it was sent).
    :ivar forwarded: whether a store was contacted.
    :ivar duration: seconds from arrival to the last byte.
    """

    time: float
    request_id: str
    principal: str | None
    client_address: str | None
    bucket: str | None
    operation: str | None
    status: int
    bytes_in: int
    bytes_out: int
    forwarded: bool
    duration: float


@frozen
class BackendRequest:
    """
    One HTTP request to a store, ready to send.

    :ivar method: the HTTP method.
    :ivar url: the absolute URL, already percent-encoded as it goes on the
        wire.
    :ivar headers: every header to send, signatures included. ``Host`` and
        ``Content-Length`` are set by the transport.
    :ivar body: the request body, if any.
    :ivar timeout: seconds the store may stay silent, or ``None`` for the
        forwarder's default.
    """

    method: str
    url: str
    headers: HeaderList = NO_HEADERS
    body: IBodyProducer | None = field(default=None, eq=False)
    timeout: float | None = None


@frozen
class BackendResponse:
    """
    A store's HTTP response; the body has not been read yet.

    :ivar status: the HTTP status.
    :ivar headers: the response headers, hop-by-hop fields removed.
    :ivar body: the response body; it must be delivered or discarded.
    """

    status: int
    headers: HeaderList
    body: IBody = field(eq=False)


@frozen
class ObjectWrite:
    """
    The bytes and headers of one object (or part) being written, in the
    store's key space.

    :ivar key: the backend key.
    :ivar body: the payload, already decoded (no ``aws-chunked`` framing)
        and verified as it passes; its ``length`` is the payload size, or
        ``UNKNOWN_LENGTH``. If the body fails (a signature or digest does not
        match, the client goes away) the store must abandon the write so
        that no object appears.
    :ivar headers: what the object carries, from the request: content
        headers, ``x-amz-meta-*``, checksums, tagging, storage class, SSE,
        and the conditions ``if-match`` / ``if-none-match``. Framing and
        authentication headers are not included.
    """

    key: str
    body: IBodyProducer = field(eq=False)
    headers: HeaderList = NO_HEADERS


@frozen
class CopySource:
    """
    The source of a copy, in the source store's key space.

    :ivar bucket: the source bucket's configuration (a store copies on the
        server side only from a bucket on the same service).
    :ivar key: the source backend key.
    :ivar version_id: the version asked for, if any.
    :ivar conditions: the ``x-amz-copy-source-if-*`` headers, as sent.
    :ivar range: ``x-amz-copy-source-range`` (UploadPartCopy), if any.
    """

    bucket: BucketConfig
    key: str
    version_id: str | None = None
    conditions: HeaderList = NO_HEADERS
    range: str | None = None


@frozen
class CopyResult:
    """
    The outcome of a copy: the new object's (or part's) ETag and time, and
    response headers such as ``x-amz-version-id``.
    """

    etag: str
    last_modified: datetime
    headers: HeaderList = NO_HEADERS


@frozen
class CompletedPart:
    """
    A part named in CompleteMultipartUpload.

    :ivar checksums: ``(algorithm, value)`` pairs the client gave, e.g.
        ``("CRC32", "AAAAAA==")``.
    """

    part_number: int
    etag: str
    checksums: tuple[tuple[str, str], ...] = ()


@frozen
class PartInfo:
    """
    An uploaded part, as ListParts shows it.
    """

    part_number: int
    etag: str
    size: int
    last_modified: datetime


@frozen
class PartsPage:
    """
    One page of ListParts.
    """

    parts: tuple[PartInfo, ...] = ()
    truncated: bool = False
    next_part_number_marker: int | None = None


@frozen
class UploadInfo:
    """
    A multipart upload in progress, as ListMultipartUploads shows it.

    :ivar key: the backend key.
    """

    key: str
    upload_id: str
    initiated: datetime


@frozen
class UploadsPage:
    """
    One page of ListMultipartUploads, in backend key space.
    """

    uploads: tuple[UploadInfo, ...] = ()
    common_prefixes: tuple[str, ...] = ()
    truncated: bool = False
    next_key_marker: str | None = None
    next_upload_id_marker: str | None = None


@frozen
class DeleteOutcome:
    """
    What happened to one key of a DeleteObjects request.

    :ivar key: the backend key.
    :ivar error: ``(code, message)`` if it was not deleted.
    :ivar version_id: the version deleted, or of the delete marker made.
    :ivar delete_marker: whether a delete marker is involved.
    """

    key: str
    version_id: str | None = None
    error: tuple[str, str] | None = None
    delete_marker: bool = False


@frozen
class CredentialScope:
    """
    The scope a signature is valid for.

    :ivar date: the day, ``YYYYMMDD``.
    :ivar region: the region, for example ``us-east-1``.
    :ivar service: the service, ``s3`` for S3.
    """

    date: str
    region: str
    service: str

    @property
    def text(self) -> str:
        """
        The scope as it appears in a string to sign:
        ``date/region/service/aws4_request``.
        """
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@frozen
class VerifiedSignature:
    """
    What a successful verification established, and what verifying an
    ``aws-chunked`` body's chunk signatures needs.

    :ivar access_key_id: the access key the request was signed with.
    :ivar signing_key: the derived signing key for C{scope}.
    :ivar amz_date: the request time as signed, ``YYYYMMDDTHHMMSSZ``.
    :ivar scope: the credential scope.
    :ivar seed_signature: the request's signature, lower-case hex; the
        first chunk's signature chains from it.
    :ivar payload_hash: the payload hash the request was signed with (a hex
        SHA-256, or a placeholder such as ``UNSIGNED-PAYLOAD``; see
        L{multistore.auth.canonical}). It has not been checked against the body.
    """

    access_key_id: str
    signing_key: bytes = field(repr=False)
    amz_date: str
    scope: CredentialScope
    seed_signature: str
    payload_hash: str
