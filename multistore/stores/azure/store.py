# -*- test-case-name: tests.unit.test_azure_store -*-
"""
Stores on Azure Blob Storage: one container holds a virtual bucket's
objects as block blobs.

Requests go to ``{endpoint}/{container}/{blob}`` (the endpoint is the
``endpoint`` option, such as an emulator's ``http://127.0.0.1:10000/ACCOUNT``,
or ``https://ACCOUNT.blob.core.windows.net``), the blob name percent-encoded
as S3 keys are, through the shared L{IForwarder}. They are authorized with
SharedKey (the ``access_key`` option: the base64 account key), with a SAS
token (``sas_token``, appended to every query), with a bearer token (the
``bearer_token`` option, or a token provider given to the store), or not at
all (``skip_signature``).

What S3 clients see
===================

- ETags are Azure's (``"0x8D..."``), passed on quoted as Azure sends them.
  They are not MD5 digests, for single uploads or multipart ones; clients
  compare them only with each other (conditions, listings).
- Metadata names are stored under the reversible encoding of
  L{multistore.stores.azure.auth} (``x-amz-meta-content-sha`` becomes
  ``x-ms-meta-mx_...``), and decoded on the way back.
- Content headers (``Content-Type``, ``-Encoding``, ``-Language``,
  ``-Disposition``, ``Cache-Control``) are blob properties; ``Expires``,
  tagging, storage classes and ``x-amz-checksum-*`` are not stored (the
  gateway verifies checksums as the body passes). A ``Content-MD5`` is
  verified by Azure on a single Put Blob and stored; Azure's own
  ``Content-MD5`` is never shown (S3 does not send one).
- A blob has no parts once committed: ``partNumber=1`` reads the whole
  object (``206`` with its ``Content-Range``, as S3 answers for an object
  uploaded in one part), any other part number is ``InvalidPartNumber``.
- Azure's error messages name accounts and containers: they are logged,
  and clients get multistore's own messages.
- Azure (Azurite at least) takes a backslash in a blob name for ``/``: a
  key holding one is stored, and listed, with ``/`` in its place.

Writes
======

An upload of known length up to L{MAX_PUT_BLOB} bytes is one Put Blob,
streamed, its last byte held back until the body has been verified
(L{multistore.stores.streaming.LastByteHeld}): Azure creates no blob from a
request that ends early. A longer upload, or one of unknown length, is read
a block (L{BLOCK_SIZE}) at a time
(L{multistore.stores.streaming.PartBuffer}) and sent as Put Block requests,
committed with Put Block List only once the body has ended; if the body
fails nothing is committed, and the uncommitted blocks expire (after a week
on Azure). A body of unknown length that ends within its first block is sent
as one Put Blob once it has ended. ``If-Match`` and ``If-None-Match`` go
with the Put Blob or the Put Block List (Azure answers ``BlobAlreadyExists``
or ``ConditionNotMet``, both ``PreconditionFailed``).

Reads pass their conditions on as S3 evaluates them (``If-Match`` decides
over ``If-Unmodified-Since``, ``If-None-Match`` over
``If-Modified-Since``; dates S3 ignores are left out, and
``If-None-Match: *``, which Azure refuses on reads, is answered from the
blob's properties), a single range as ``x-ms-range``, and a suffix
range (which Azure does not take) resolved against the blob's size first.
A HEAD's range is worked out from the blob's size (Get Blob Properties
takes none).

Multipart uploads
=================

Azure keeps no upload sessions. An upload id (L{UploadId}) carries all an
upload needs, so uploads survive restarts of the daemon without a
database: a random part, a hash of the key, the time, and the object's
headers and metadata. Parts are Put Block requests whose block ids are made
of the random part and the part number, all the same length. A part's ETag
is a digest of its block id and size, not the MD5 of its bytes (Azure's
block lists say nothing else about a block), so CompleteMultipartUpload can check every part it is
given against the blob's uncommitted blocks, then commits them in order
with Put Block List (whose ETag, Azure's, is the object's). S3's 5 MiB
minimum part size is not enforced. Committing discards every other
uncommitted block of the blob, including those of other uploads to the
same key. AbortMultipartUpload commits nothing: Azure has no way to delete
uncommitted blocks, which expire on their own (a week on Azure) if the
blob is never committed. ListMultipartUploads finds the uploads of blobs
that have only uncommitted blocks, from their block ids; the ids it shows
can list parts and abort, but not complete (the object's headers are
stored nowhere but in the id CreateMultipartUpload made).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, NoReturn, TypeVar

from attrs import evolve, frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from multistore.auth.canonical import uri_encode
from multistore.bodies import BytesProducer, read_body
from multistore.config import BucketConfig
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import IForwarder, IObjectStore
from multistore.model import (
    BackendRequest,
    BackendResponse,
    CompletedPart,
    CopyResult,
    CopySource,
    DeleteOutcome,
    ListPage,
    ListRequest,
    ObjectInfo,
    ObjectRead,
    ObjectResponse,
    ObjectWrite,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
)
from multistore.s3.conditions import parse_entity_tags
from multistore.s3.dates import format_http_date, parse_http_date
from multistore.s3.errors import S3Error
from multistore.s3.listing import SENTINEL
from multistore.s3.ranges import parse_range
from multistore.stores.azure.auth import (
    API_VERSION,
    decode_metadata_name,
    encode_metadata_name,
    query_string,
    sign_shared_key,
    with_sas,
)
from multistore.stores.azure.xml import (
    BlobListing,
    block_list_document,
    parse_block_list,
    parse_error_code,
    parse_list_blobs,
)
from multistore.stores.failures import failed, refused
from multistore.stores.streaming import (
    HTTP_OBJECT_HEADERS,
    Chunks,
    PartBuffer,
    cannot_copy,
    conditions,
    content_header,
    deferred,
    delete_each,
    error_body,
    held,
    now,
    on_same_service,
    open_source,
    service_root,
)

_T = TypeVar("_T")

#: The largest blob sent as one Put Blob (Azure's limit, 5000 MiB).
MAX_PUT_BLOB: Final = 5000 * 1024 * 1024

#: The size of every block but the last of an upload sent in blocks; the
#: most of its body held in memory at once (twice, while one is sent).
BLOCK_SIZE: Final = 8 * 1024 * 1024

#: Most blocks in one blob (Azure's limit).
MAX_BLOCKS: Final = 50_000

#: Largest listing or block list read from Azure.
MAX_LISTING: Final = 8 * 1024 * 1024

#: How many List Blobs pages one listing reads at most while it skips keys
#: up to ``start_after``; then it returns an empty truncated page.
MAX_LIST_PAGES: Final = 20

#: How long, and how often, a pending server-side copy is polled.
COPY_POLL_INTERVAL: Final = 0.2
COPY_POLLS: Final = 150

#: The longest upload id made (object headers and metadata included).
MAX_UPLOAD_ID: Final = 4096

_UPLOAD_PREFIX: Final = "az1."

#: The most an upload id's document may inflate to.
_MAX_UPLOAD_DOCUMENT: Final = 64 * 1024

#: The latest creation time an upload id may carry (the end of year 9999,
#: the last a date holds).
_LATEST_CREATED: Final = 253_402_300_799

#: S3 content headers and the blob properties that hold them.
_CONTENT_PROPERTIES: Final = (
    ("content-type", "x-ms-blob-content-type"),
    ("content-encoding", "x-ms-blob-content-encoding"),
    ("content-language", "x-ms-blob-content-language"),
    ("content-disposition", "x-ms-blob-content-disposition"),
    ("cache-control", "x-ms-blob-cache-control"),
)

#: Azure error codes and the S3 codes clients get for them.
_ERROR_CODES: Final = {
    "BlobNotFound": "NoSuchKey",
    "ResourceNotFound": "NoSuchKey",
    "ContainerNotFound": "NoSuchBucket",
    "ConditionNotMet": "PreconditionFailed",
    "SourceConditionNotMet": "PreconditionFailed",
    "TargetConditionNotMet": "PreconditionFailed",
    "BlobAlreadyExists": "PreconditionFailed",
    "InvalidRange": "InvalidRange",
    "InvalidBlockList": "InvalidPart",
    "InvalidBlockId": "InvalidPart",
    "InvalidBlobOrBlock": "InvalidPart",
    "Md5Mismatch": "BadDigest",
    "InvalidMd5": "InvalidDigest",
    "RequestBodyTooLarge": "EntityTooLarge",
    "ContainerAlreadyExists": "BucketAlreadyOwnedByYou",
    "ContainerBeingDeleted": "NoSuchBucket",
    "ServerBusy": "SlowDown",
    "OperationTimedOut": "ServiceUnavailable",
    "InvalidMetadata": "InvalidArgument",
    "MetadataTooLarge": "InvalidArgument",
}

#: Azure error codes that mean the backend refused the gateway's
#: credentials.
_REFUSALS: Final = frozenset(
    {
        "AuthenticationFailed",
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
        "AuthorizationResourceTypeMismatch",
        "AuthorizationServiceMismatch",
        "AuthorizationSourceIPMismatch",
        "AuthorizationProtocolMismatch",
        "InsufficientAccountPermissions",
        "AccountIsDisabled",
    }
)

_SINGLE_RANGE: Final = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII)

#: Range numbers with more digits are not read as integers (Python refuses
#: more than 4300); they are past the end of any blob.
_LONGEST_NUMBER: Final = 20
_BEYOND_ANY_BLOB: Final = 10**_LONGEST_NUMBER


def _magnitude(digits: str) -> tuple[int, str]:
    # Orders decimal strings by value without reading them as numbers.
    significant = digits.lstrip("0")
    return (len(significant), significant)


def _quoted(etag: str) -> str:
    etag = etag.strip()
    return etag if etag.startswith('"') else f'"{etag}"'


def object_properties(headers: HeaderList) -> HeaderList:
    """
    Translate what an S3 write says about its object into Azure headers.

    :param headers: S3 request headers.
    :return: ``x-ms-blob-*`` content properties and ``x-ms-meta-*``
        metadata (names encoded, see L{encode_metadata_name}); everything
        else is dropped.
    """
    out: list[tuple[str, str]] = []
    for s3_name, azure_name in _CONTENT_PROPERTIES:
        value = content_header(headers, s3_name)
        if value is not None:
            out.append((azure_name, value))
    for name, value in headers:
        if name.startswith("x-amz-meta-"):
            meta = name[len("x-amz-meta-") :]
            out.append(("x-ms-meta-" + encode_metadata_name(meta), value))
    return HeaderList(out)


def s3_object_headers(headers: HeaderList) -> HeaderList:
    """
    Translate the headers of a Get Blob (or Get Blob Properties) answer into
    S3 object headers.

    :return: the content headers, length, range, ETag and last-modified
        time as they are, and the metadata as ``x-amz-meta-*`` (names
        decoded); nothing else (``Content-MD5``, ``x-ms-*``).
    """
    out: list[tuple[str, str]] = []
    for name, value in headers:
        if name in HTTP_OBJECT_HEADERS:
            out.append((name, value))
        elif name.startswith("x-ms-meta-"):
            meta = decode_metadata_name(name[len("x-ms-meta-") :])
            out.append(("x-amz-meta-" + meta, value))
    return HeaderList(out)


@frozen
class UploadId:
    """
    What a multipart upload id carries.

    :ivar nonce: the random part, 16 hexadecimal digits, shared by the
        upload's block ids.
    :ivar key_hash: the first 16 hexadecimal digits of the SHA-256 of the
        key (an id is refused for another key).
    :ivar created: when the upload was created, in seconds since the epoch.
    :ivar headers: the S3 headers the object will carry.
    :ivar listed: whether the id was made by ListMultipartUploads from the
        blob's blocks, not by CreateMultipartUpload: it does not know the
        object's headers, and cannot complete the upload.
    """

    nonce: str
    key_hash: str
    created: int
    headers: HeaderList = NO_HEADERS
    listed: bool = False

    def encode(self) -> str:
        """
        :return: the upload id: ``az1.`` and the URL-safe base64 of the
            deflated JSON of the fields.
        :raise S3Error: ``InvalidArgument`` if it would be longer than
            L{MAX_UPLOAD_ID}.
        """
        fields: list[object] = [
            self.nonce,
            self.key_hash,
            self.created,
            list(self.headers),
        ]
        if self.listed:
            fields.append(1)
        document = json.dumps(fields, separators=(",", ":")).encode("utf-8")
        packed = zlib.compress(document, 9)
        text = base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")
        upload_id = _UPLOAD_PREFIX + text
        if len(upload_id) > MAX_UPLOAD_ID:
            raise S3Error(
                "InvalidArgument",
                "The object's metadata and headers are too large for this store.",
            )
        return upload_id

    @classmethod
    def decode(cls, upload_id: str, key: str) -> UploadId:
        """
        :param upload_id: an upload id from L{encode}.
        :param key: the key it is used with.
        :return: what it carries.
        :raise S3Error: ``NoSuchUpload`` if it is not one, or is another
            key's.
        """
        missing = S3Error("NoSuchUpload")
        if not upload_id.startswith(_UPLOAD_PREFIX):
            raise missing
        text = upload_id[len(_UPLOAD_PREFIX) :]
        try:
            packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            inflater = zlib.decompressobj()
            document = inflater.decompress(packed, _MAX_UPLOAD_DOCUMENT)
            if inflater.unconsumed_tail or not inflater.eof:
                raise ValueError("not a whole upload id")
            fields = json.loads(document)
            if not isinstance(fields, list) or len(fields) not in (4, 5):
                raise ValueError("not an upload id document")
            nonce, key_hash, created, headers = fields[:4]
            if not isinstance(created, int) or not 0 <= created <= _LATEST_CREATED:
                raise ValueError("not a time an upload was created at")
            upload = cls(
                str(nonce),
                str(key_hash),
                created,
                HeaderList((str(n), str(v)) for n, v in headers),
                listed=len(fields) == 5,
            )
        except (ValueError, TypeError, RecursionError, binascii.Error, zlib.error):
            raise missing from None
        if upload.key_hash != key_hash_of(key) or not _NONCE.fullmatch(upload.nonce):
            raise missing
        return upload

    def block_id(self, part_number: int) -> str:
        """
        :return: the base64 block id of a part.
        """
        return block_id(self.nonce, part_number)


_NONCE: Final = re.compile(r"[0-9a-f]{16}", re.ASCII)


def key_hash_of(key: str) -> str:
    """
    :return: the key hash an upload id carries.
    """
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def block_id(nonce: str, number: int) -> str:
    """
    :param nonce: 16 hexadecimal digits.
    :param number: a part or block number, 1 to 99999.
    :return: the base64 block id (the same length for every number).
    """
    return base64.b64encode(f"{nonce}{number:05d}".encode("ascii")).decode("ascii")


def parse_block_id(value: str) -> tuple[str, int] | None:
    """
    :return: the ``(nonce, number)`` of a block id L{block_id} made, or
        ``None`` for another.
    """
    try:
        raw = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 21 or not _NONCE.fullmatch(raw[:16]) or not raw[16:].isdigit():
        return None
    return raw[:16], int(raw[16:])


def part_etag(block: str, size: int) -> str:
    """
    :return: the ETag of a part stored as block ``block`` of ``size``
        bytes, quoted.
    """
    digest = hashlib.md5(f"{block}:{size}".encode("ascii"), usedforsecurity=False)
    return f'"{digest.hexdigest()}"'


def _service(bucket: BucketConfig) -> tuple[str, str, str] | None:
    """
    :return: what identifies where a bucket's blobs are and who the gateway
        is there: ``(endpoint, account, credential)``; ``None`` for a bucket
        not on Azure.
    """
    if bucket.backend_type != "azure":
        return None
    account = bucket.option("account_name", "") or ""
    where = service_root(
        bucket.option("endpoint") or f"https://{account}.blob.core.windows.net"
    )
    credential = (
        ""
        if bucket.flag("skip_signature")
        else bucket.option("access_key")
        or bucket.option("sas_token")
        or bucket.option("bearer_token")
        or ""
    )
    return where, account, credential


@implementer(IObjectStore)
@frozen
class AzureStore:
    """
    A virtual bucket's store in an Azure Blob Storage container.

    :ivar bucket: the virtual bucket's configuration.
    :ivar forwarder: the HTTP transport.
    :ivar clock: the time source for signatures, and for polling copies.
    :ivar token_provider: where bearer tokens come from, if given (called
        for each request; it may cache); the ``bearer_token`` option is
        used otherwise.
    :ivar block_size: the size of the blocks a body of unknown length is
        sent in.
    """

    log = Logger()

    bucket: BucketConfig
    forwarder: IForwarder
    clock: IReactorTime
    token_provider: Callable[[], Deferred[str]] | None = None
    block_size: int = BLOCK_SIZE

    # --- requests -------------------------------------------------------------

    def _now(self) -> datetime:
        return now(self.clock)

    @property
    def _account(self) -> str:
        return self.bucket.option("account_name", "") or ""

    @property
    def _container(self) -> str:
        return self.bucket.option("container_name", "") or ""

    @property
    def _endpoint(self) -> str:
        endpoint = (
            self.bucket.option("endpoint")
            or f"https://{self._account}.blob.core.windows.net"
        )
        return endpoint.strip().rstrip("/")

    def blob_url(self, key: str | None) -> str:
        """
        :return: the URL of blob ``key``, or of the container for ``None``,
            without a query.
        """
        url = f"{self._endpoint}/{uri_encode(self._container, keep_slash=False)}"
        if key is not None:
            url += "/" + uri_encode(key, keep_slash=True)
        return url

    def url(self, key: str | None, query: Sequence[tuple[str, str]] = ()) -> str:
        """
        :param query: ``(name, value)`` parameters.
        :return: the wire URL of ``key`` (or of the container, for
            ``None``), without any SAS token.
        """
        url = self.blob_url(key)
        if query:
            url += "?" + query_string(query)
        return url

    async def _authorize(
        self, method: str, url: str, headers: HeaderList, length: int | None
    ) -> tuple[str, HeaderList]:
        """
        :return: the URL and headers of a request, authorized as the
            bucket's options say.
        """
        if self.bucket.flag("skip_signature"):
            return url, headers
        access_key = self.bucket.option("access_key")
        if access_key:
            try:
                signed = sign_shared_key(
                    method,
                    url,
                    headers,
                    length,
                    self._account,
                    access_key,
                    self._now(),
                )
            except ValueError:
                self.log.error(
                    "the access_key of bucket {bucket} is not base64",
                    bucket=self.bucket.name,
                )
                raise S3Error(
                    "ServiceUnavailable", "The bucket's backend store failed."
                ) from None
            return url, signed
        sas_token = self.bucket.option("sas_token")
        if sas_token:
            return with_sas(url, sas_token), headers
        token = self.bucket.option("bearer_token")
        if self.token_provider is not None:
            token = await self.token_provider()
        if token:
            return url, headers.with_("authorization", f"Bearer {token}")
        return url, headers

    async def _send(
        self,
        method: str,
        key: str | None,
        query: Sequence[tuple[str, str]] = (),
        headers: HeaderList = NO_HEADERS,
        body: IBodyProducer | bytes | None = None,
    ) -> BackendResponse:
        """
        Authorize and send one request.

        :param body: the request's body: streamed, or an XML document built
            here (sent as ``application/xml``), or none.
        """
        if isinstance(body, bytes):
            headers = headers.with_("content-type", "application/xml")
            body = BytesProducer(body)
        length = body.length if body is not None else None
        url, signed = await self._authorize(
            method,
            self.url(key, query),
            headers.with_("x-ms-version", API_VERSION),
            length if isinstance(length, int) else None,
        )
        return await self.forwarder.forward(
            BackendRequest(method=method, url=url, headers=signed, body=body)
        )

    # --- errors ---------------------------------------------------------------

    def _mapped(self, code: str | None, message: str | None, status: int) -> S3Error:
        """
        The error a client gets for an Azure error: the S3 code for it,
        ``AccessDenied`` blaming the backend, or ``ServiceUnavailable``;
        never Azure's message.
        """
        if code is not None and code in _ERROR_CODES:
            return S3Error(_ERROR_CODES[code])
        if (code is not None and code in _REFUSALS) or status == 403:
            return refused(self.log, self.bucket.name, code, message)
        return failed(
            self.log, self.bucket.name, status, code, message, slow_down=status == 503
        )

    async def _error(
        self,
        response: BackendResponse,
        statuses: Mapping[int, str] | None = None,
    ) -> S3Error:
        """
        Turn an Azure error response into the error the client gets.

        :param statuses: the S3 code for a status when Azure gave no error
            code.
        """
        code = response.headers.get("x-ms-error-code")
        message: str | None = None
        parsed = parse_error_code(await error_body(response))
        if parsed is not None:
            code = code or parsed[0]
            message = parsed[1]
        if code is None:
            fallback = dict(statuses or {}).get(response.status) or {
                404: "NoSuchKey",
                412: "PreconditionFailed",
                416: "InvalidRange",
            }.get(response.status)
            if fallback is not None:
                return S3Error(fallback)
        return self._mapped(code, message, response.status)

    # --- reads ----------------------------------------------------------------

    async def _properties(
        self, key: str, version_id: str | None = None
    ) -> BackendResponse | None:
        """
        Get Blob Properties (of a version, if given).

        :return: the answer (its body discarded), or ``None`` if there is no
            such blob.
        """
        query = [] if version_id is None else [("versionid", version_id)]
        response = await self._send("HEAD", key, query)
        if response.status == 404:
            error = await self._error(response)
            if error.code == "NoSuchBucket":
                raise error
            return None
        if response.status != 200:
            raise await self._error(response)
        response.body.discard()
        return response

    async def _range_header(self, read: ObjectRead) -> str | None:
        """
        :return: the ``Range`` to send Azure for a read: a single range as
            it is, a suffix range resolved against the blob's size (Azure
            takes none), nothing for a header S3 ignores.
        :raise S3Error: ``InvalidRange`` for a suffix range that selects
            nothing; ``NoSuchKey`` if the blob is not there.
        """
        if read.range is None:
            return None
        match = _SINGLE_RANGE.fullmatch(read.range.strip().replace(" ", ""))
        if match is None:
            return None
        first, last = match.groups()
        if first:
            if last and _magnitude(last) < _magnitude(first):
                return None
            if len(first) > _LONGEST_NUMBER:
                # Past the end of any blob: Azure refuses it as unsatisfiable.
                return f"bytes={_BEYOND_ANY_BLOB}-"
            if last and len(last) <= _LONGEST_NUMBER:
                return f"bytes={int(first)}-{int(last)}"
            return f"bytes={int(first)}-"
        if not last:
            return None
        properties = await self._properties(read.key, read.version_id)
        if properties is None:
            raise S3Error("NoSuchKey")
        size = int(properties.headers.get("content-length") or "0")
        chosen = parse_range(read.range, size)
        if chosen is None:
            return None
        return f"bytes={chosen.start}-{chosen.end}"

    async def _unsatisfiable(self, key: str, version_id: str | None) -> S3Error:
        """
        :return: ``InvalidRange`` with the blob's size in ``Content-Range``.
        """
        properties = await self._properties(key, version_id)
        if properties is None:
            return S3Error("InvalidRange")
        size = properties.headers.get("content-length") or "0"
        return S3Error("InvalidRange", headers=(("content-range", f"bytes */{size}"),))

    @deferred
    async def get_object(self, read: ObjectRead) -> ObjectResponse:
        """
        Get Blob (or Get Blob Properties, for a HEAD), with its range and
        conditions.
        """
        if read.part_number is not None and read.part_number != 1:
            raise S3Error("InvalidPartNumber")
        if read.if_none_match is not None and (False, "*") in parse_entity_tags(
            read.if_none_match
        ):
            # Azure refuses If-None-Match: * on reads. A blob that is there
            # (and meets the other conditions) is not modified.
            found = await self.get_object(
                evolve(
                    read,
                    head=True,
                    range=None,
                    part_number=None,
                    if_none_match=None,
                    if_modified_since=None,
                )
            )
            return ObjectResponse(
                304,
                HeaderList(
                    (n, v) for n, v in found.headers if n in ("etag", "last-modified")
                ),
            )
        headers: list[tuple[str, str]] = []
        range_header = None if read.part_number else await self._range_header(read)
        if range_header is not None:
            headers.append(("x-ms-range", range_header))
        # As S3 does: If-Match decides over If-Unmodified-Since, If-None-Match
        # over If-Modified-Since. Dates that S3 ignores (not dates, an
        # If-Modified-Since in the future) are not sent.
        now = self._now()
        for name, value, overruled in (
            ("if-match", read.if_match, None),
            ("if-none-match", read.if_none_match, None),
            ("if-modified-since", read.if_modified_since, read.if_none_match),
            ("if-unmodified-since", read.if_unmodified_since, read.if_match),
        ):
            if value is None or overruled is not None:
                continue
            if name.endswith("-since"):
                date = parse_http_date(value, now)
                if date is None or (name == "if-modified-since" and date > now):
                    continue
                value = format_http_date(date)
            headers.append((name, value))
        query = [] if read.version_id is None else [("versionid", read.version_id)]
        method = "HEAD" if read.head else "GET"
        response = await self._send(method, read.key, query, HeaderList(headers))
        if response.status in (200, 206):
            if range_header is not None and (
                response.headers.get("content-range") or ""
            ).endswith("/0"):
                # Azurite answers a range of an empty blob with 206.
                response.body.discard()
                raise S3Error("InvalidRange", headers=(("content-range", "bytes */0"),))
            body = None if read.head else response.body
            if body is None:
                response.body.discard()
            out = s3_object_headers(response.headers)
            status = response.status
            if read.part_number == 1:
                size = int(response.headers.get("content-length") or "0")
                if size:
                    status = 206
                    out = out.with_("content-range", f"bytes 0-{size - 1}/{size}")
            elif read.head and range_header is not None and status == 200:
                # Get Blob Properties takes no range: answer as the GET would.
                size = int(response.headers.get("content-length") or "0")
                wanted = parse_range(read.range, size)
                if wanted is not None:
                    status = 206
                    out = out.with_("content-length", str(wanted.length)).with_(
                        "content-range", wanted.content_range
                    )
            return ObjectResponse(status, out, body)
        if response.status == 304:
            response.body.discard()
            return ObjectResponse(304, s3_object_headers(response.headers))
        error = await self._error(response)
        if error.code == "InvalidRange":
            raise await self._unsatisfiable(read.key, read.version_id)
        raise error

    async def _list_blobs(
        self,
        prefix: str,
        delimiter: str | None,
        max_results: int,
        marker: str | None,
        include: str | None = None,
    ) -> BlobListing:
        query = [
            ("restype", "container"),
            ("comp", "list"),
            ("maxresults", str(max(1, min(max_results, 5000)))),
        ]
        if prefix:
            query.append(("prefix", prefix))
        if delimiter:
            query.append(("delimiter", delimiter))
        if marker:
            query.append(("marker", marker))
        if include:
            query.append(("include", include))
        response = await self._send("GET", None, query)
        if response.status != 200:
            raise await self._error(response, statuses={404: "NoSuchBucket"})
        listing = parse_list_blobs(await read_body(response.body, MAX_LISTING))
        return listing

    @deferred
    async def list_objects(self, request: ListRequest) -> ListPage:
        """
        List Blobs. Azure's markers are opaque: a truncated page carries the
        next one as its C{next_token}. Azure cannot start after a key, so
        C{start_after} is honoured by listing from the start of the prefix
        (or the token) and skipping keys up to it, reading up to
        L{MAX_LIST_PAGES} pages for one page of answer.
        """
        start_after = request.start_after or ""
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        marker = request.token
        wanted = max(request.max_keys, 0)
        if wanted == 0:
            return ListPage()
        for _ in range(MAX_LIST_PAGES):
            listing = await self._list_blobs(
                request.prefix,
                request.delimiter,
                wanted - len(objects) - len(prefixes),
                marker,
            )
            for blob in listing.blobs:
                if blob.name > start_after:
                    objects.append(
                        ObjectInfo(
                            key=blob.name,
                            size=blob.size,
                            last_modified=blob.last_modified,
                            etag=blob.etag,
                        )
                    )
            for prefix in listing.prefixes:
                # Shown if a name under it may follow start_after: not if
                # start_after is the prefix itself, or the gateway's
                # "after all of it" (the prefix and SENTINEL).
                if prefix > start_after or (
                    start_after.startswith(prefix)
                    and start_after != prefix
                    and start_after < prefix + SENTINEL
                ):
                    prefixes.append(prefix)
            marker = listing.next_marker
            if marker is None:
                return ListPage(
                    tuple(objects), tuple(sorted(prefixes)), truncated=False
                )
            if len(objects) + len(prefixes) >= wanted:
                break
        return ListPage(
            tuple(objects), tuple(sorted(prefixes)), truncated=True, next_token=marker
        )

    @deferred
    async def head_bucket(self) -> None:
        """
        Get Container Properties.
        """
        response = await self._send("HEAD", None, [("restype", "container")])
        if response.status == 200:
            response.body.discard()
            return
        raise await self._error(response, statuses={404: "NoSuchBucket"})

    # --- writes ---------------------------------------------------------------

    async def _put_blob(
        self, key: str, headers: HeaderList, body: IBodyProducer | None
    ) -> ObjectResponse:
        """
        One Put Blob.
        """
        request_headers = HeaderList([("x-ms-blob-type", "BlockBlob")])
        request_headers = request_headers.plus(object_properties(headers))
        md5 = headers.get("content-md5")
        if md5:
            request_headers = request_headers.plus([("content-md5", md5)])
        request_headers = request_headers.plus(conditions(headers))
        response = await self._send("PUT", key, (), request_headers, body)
        if response.status not in (200, 201):
            raise await self._error(response, statuses={404: "NoSuchBucket"})
        response.body.discard()
        return ObjectResponse(200, self._write_headers(response.headers))

    def _write_headers(self, headers: HeaderList) -> HeaderList:
        etag = headers.get("etag")
        if not etag:
            return NO_HEADERS
        return HeaderList([("etag", _quoted(etag))])

    @deferred
    async def put_object(self, write: ObjectWrite) -> ObjectResponse:
        """
        Put Blob, streamed, for a body of known length up to
        L{MAX_PUT_BLOB}; otherwise blocks committed once the body has ended
        (see the module docstring).
        """
        length = write.body.length
        if isinstance(length, int) and length <= MAX_PUT_BLOB:
            body = await held(write.body)
            return await self._put_blob(write.key, write.headers, body)
        return await self._put_in_blocks(write)

    async def _put_block(
        self, key: str, block: str, body: IBodyProducer | None
    ) -> BackendResponse:
        response = await self._send(
            "PUT", key, [("comp", "block"), ("blockid", block)], NO_HEADERS, body
        )
        if response.status not in (200, 201):
            raise await self._error(response, statuses={404: "NoSuchBucket"})
        response.body.discard()
        return response

    async def _put_in_blocks(self, write: ObjectWrite) -> ObjectResponse:
        """
        Send a body a block at a time and commit the blocks once it has
        ended; commit nothing if it fails. A body that ends within the first
        block is sent as one Put Blob once it has ended.
        """
        nonce = os.urandom(8).hex()
        buffer = PartBuffer(write.body, self.block_size)
        buffer.start()
        blocks: list[str] = []
        try:
            await buffer.fill()
            if buffer.holds_rest:
                # The body ended within a block: one Put Blob.
                chunks = buffer.take()
                return await self._put_blob(
                    write.key, write.headers, Chunks(chunks) if chunks else None
                )
            while True:
                buffer.check()
                if len(blocks) >= MAX_BLOCKS:
                    raise S3Error("EntityTooLarge")
                last = buffer.holds_rest
                chunks = buffer.take()
                buffer.resume()
                if chunks:
                    block = block_id(nonce, len(blocks) + 1)
                    await buffer.watch(
                        Deferred.fromCoroutine(
                            self._put_block(write.key, block, Chunks(chunks))
                        )
                    )
                    blocks.append(block)
                del chunks
                if last:
                    break
                await buffer.fill()
        except BaseException:
            buffer.stop()
            buffer.check()
            raise
        result = await self._commit(write.key, blocks, write.headers, write.headers)
        return ObjectResponse(200, HeaderList([("etag", result.etag)]))

    async def _commit(
        self,
        key: str,
        blocks: Sequence[str],
        object_headers: HeaderList,
        condition_headers: HeaderList,
    ) -> CopyResult:
        """
        Put Block List: commit ``blocks`` as the blob, with the object's
        properties and metadata and the write's conditions.
        """
        headers = object_properties(object_headers)
        md5 = object_headers.get("content-md5")
        if md5:
            headers = headers.plus([("x-ms-blob-content-md5", md5)])
        headers = headers.plus(conditions(condition_headers))
        response = await self._send(
            "PUT", key, [("comp", "blocklist")], headers, block_list_document(blocks)
        )
        if response.status not in (200, 201):
            raise await self._error(response, statuses={404: "NoSuchBucket"})
        response.body.discard()
        etag = _quoted(response.headers.get("etag") or "")
        modified = parse_http_date(response.headers.get("last-modified")) or self._now()
        return CopyResult(etag, modified)

    # --- multipart uploads ----------------------------------------------------

    def create_multipart_upload(self, key: str, headers: HeaderList) -> Deferred[str]:
        """
        Make an upload id carrying the object's headers; Azure is not asked
        anything.
        """
        kept = HeaderList(
            (name, value)
            for name, value in headers
            if name in {s3 for s3, _ in _CONTENT_PROPERTIES}
            or name.startswith("x-amz-meta-")
        )
        upload = UploadId(
            os.urandom(8).hex(), key_hash_of(key), int(self.clock.seconds()), kept
        )
        try:
            return Deferred.fromCoroutine(_value(upload.encode()))
        except S3Error as error:
            return Deferred.fromCoroutine(_raise(error))

    @deferred
    async def upload_part(
        self, write: ObjectWrite, upload_id: str, part_number: int
    ) -> ObjectResponse:
        """
        Put Block, streamed; the part's ETag is L{part_etag}.
        """
        upload = UploadId.decode(upload_id, write.key)
        length = write.body.length
        if not isinstance(length, int):
            raise S3Error("MissingContentLength")
        if not 1 <= part_number <= 10_000:
            raise S3Error("InvalidArgument", "Part number must be 1 to 10000.")
        block = upload.block_id(part_number)
        await self._put_block(write.key, block, await held(write.body))
        return ObjectResponse(200, HeaderList([("etag", part_etag(block, length))]))

    @deferred
    async def upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> CopyResult:
        """
        Read the source blob (its range) and write it as the part's block:
        Azure copies no block on the server side (Put Block From URL needs
        the source readable by URL), so the bytes pass through the gateway,
        read with this store's credentials.

        :raise S3Error: ``NotImplemented`` for a source L{can_copy} refuses.
        """
        if not self.can_copy(source):
            raise cannot_copy()
        body, _ = await open_source(evolve(self, bucket=source.bucket), source)
        try:
            answer = await self.upload_part(
                ObjectWrite(key, body), upload_id, part_number
            )
        finally:
            body.release()
        return CopyResult(answer.headers.get("etag") or "", self._now())

    async def _uncommitted(self, key: str) -> tuple[tuple[str, int], ...]:
        """
        :return: the ``(block id, size)`` of the blob's uncommitted blocks;
            none if there is no blob.
        """
        response = await self._send(
            "GET", key, [("comp", "blocklist"), ("blocklisttype", "uncommitted")]
        )
        if response.status == 404:
            error = await self._error(response)
            if error.code == "NoSuchBucket":
                raise error
            return ()
        if response.status != 200:
            raise await self._error(response)
        _, uncommitted = parse_block_list(await read_body(response.body, MAX_LISTING))
        return tuple((block.block_id, block.size) for block in uncommitted)

    @deferred
    async def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart],
        headers: HeaderList,
    ) -> CopyResult:
        """
        Check the parts against the blob's uncommitted blocks and commit
        them in order (see the module docstring).
        """
        upload = UploadId.decode(upload_id, key)
        if upload.listed:
            raise S3Error(
                "InvalidRequest",
                "An upload id from ListMultipartUploads cannot complete an upload "
                "on this store; use the id CreateMultipartUpload returned.",
            )
        if not parts:
            raise S3Error(
                "MalformedXML", "You must specify at least one part to complete."
            )
        numbers = [part.part_number for part in parts]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise S3Error("InvalidPartOrder")
        sizes = dict(await self._uncommitted(key))
        blocks = []
        for part in parts:
            block = upload.block_id(part.part_number)
            size = sizes.get(block)
            if size is None or _quoted(part.etag) != part_etag(block, size):
                raise S3Error("InvalidPart")
            blocks.append(block)
        return await self._commit(key, blocks, upload.headers, headers)

    def abort_multipart_upload(self, key: str, upload_id: str) -> Deferred[None]:
        """
        Commit nothing (Azure cannot delete uncommitted blocks; they
        expire).

        :raise S3Error: ``NoSuchUpload`` for an id that is not this key's.
        """
        try:
            UploadId.decode(upload_id, key)
        except S3Error as error:
            return Deferred.fromCoroutine(_raise(error))
        return Deferred.fromCoroutine(_value(None))

    @deferred
    async def list_parts(
        self, key: str, upload_id: str, max_parts: int, part_number_marker: int
    ) -> PartsPage:
        """
        Get Block List (uncommitted), keeping the upload's blocks.
        """
        upload = UploadId.decode(upload_id, key)
        found: dict[int, PartInfo] = {}
        modified = datetime.fromtimestamp(upload.created, UTC)
        for block, size in await self._uncommitted(key):
            parsed = parse_block_id(block)
            if parsed is None or parsed[0] != upload.nonce:
                continue
            number = parsed[1]
            if number > part_number_marker:
                found[number] = PartInfo(number, part_etag(block, size), size, modified)
        ordered = [found[n] for n in sorted(found)]
        page = ordered[: max(max_parts, 0)]
        truncated = len(ordered) > len(page)
        return PartsPage(
            tuple(page),
            truncated,
            page[-1].part_number if truncated and page else None,
        )

    async def _all_blobs(
        self, prefix: str, delimiter: str | None, include: str | None
    ) -> tuple[dict[str, datetime], set[str]]:
        """
        :return: the blobs (with their times) and prefixes of up to
            L{MAX_LIST_PAGES} pages of List Blobs.
        """
        blobs: dict[str, datetime] = {}
        prefixes: set[str] = set()
        marker: str | None = None
        for _ in range(MAX_LIST_PAGES):
            listing = await self._list_blobs(prefix, delimiter, 5000, marker, include)
            blobs.update((blob.name, blob.last_modified) for blob in listing.blobs)
            prefixes.update(listing.prefixes)
            marker = listing.next_marker
            if marker is None:
                break
        return blobs, prefixes

    async def _uploads_of(self, key: str, created: datetime) -> list[UploadInfo]:
        """
        :return: the uploads whose blocks blob ``key`` holds uncommitted,
            one per block id nonce (one for blocks of other writers), with
            listed ids, in id order.
        """
        nonces: list[str] = []
        for block, _ in await self._uncommitted(key):
            parsed = parse_block_id(block)
            nonce = "0" * 16 if parsed is None else parsed[0]
            if nonce not in nonces:
                nonces.append(nonce)
        uploads = [
            UploadInfo(
                key,
                UploadId(
                    nonce, key_hash_of(key), int(created.timestamp()), listed=True
                ).encode(),
                created,
            )
            for nonce in nonces
        ]
        return sorted(uploads, key=lambda upload: upload.upload_id)

    @deferred
    async def list_multipart_uploads(
        self,
        prefix: str,
        delimiter: str | None,
        key_marker: str | None,
        upload_id_marker: str | None,
        max_uploads: int,
    ) -> UploadsPage:
        """
        Best effort: List Blobs with ``include=uncommittedblobs`` (and
        without, to tell which blobs have only uncommitted blocks: an
        upload to a key that exists as a blob is not seen), then Get Block
        List for each such blob, one upload per block id nonce. Listed ids
        can list the upload's parts and abort it, but not complete it (the
        object's headers are only in the id CreateMultipartUpload made).
        Up to L{MAX_LIST_PAGES} pages of blobs are read.
        """
        every, every_prefix = await self._all_blobs(
            prefix, delimiter, "uncommittedblobs"
        )
        committed, committed_prefixes = await self._all_blobs(prefix, delimiter, None)
        after = key_marker or ""
        candidates: list[tuple[str, bool]] = [
            (name, True)
            for name in set(every) - set(committed)
            if name > after or (name == after and upload_id_marker)
        ]
        candidates.extend(
            (rolled, False)
            for rolled in every_prefix - committed_prefixes
            if rolled > after
        )
        candidates.sort()
        wanted = max(max_uploads, 0)
        entries: list[UploadInfo | str] = []
        for name, is_key in candidates:
            if len(entries) > wanted:
                break
            if not is_key:
                entries.append(name)
                continue
            for upload in await self._uploads_of(name, every[name]):
                if name == after and upload.upload_id <= (upload_id_marker or ""):
                    continue
                entries.append(upload)
        page = entries[:wanted]
        truncated = len(entries) > len(page)
        next_key: str | None = None
        next_upload: str | None = None
        if truncated and page:
            last = page[-1]
            if isinstance(last, UploadInfo):
                next_key, next_upload = last.key, last.upload_id
            else:
                next_key = last
        return UploadsPage(
            tuple(entry for entry in page if isinstance(entry, UploadInfo)),
            tuple(entry for entry in page if isinstance(entry, str)),
            truncated,
            next_key,
            next_upload,
        )

    # --- copies ---------------------------------------------------------------

    def can_copy(self, source: CopySource) -> bool:
        """
        Copies are made from a container in the same account, reached with
        the same credentials: objects with Copy Blob, parts read from the
        source and written as blocks (see L{upload_part_copy}).
        """
        return on_same_service(_service, self.bucket, source.bucket, "container_name")

    def _copy_source(self, source: CopySource) -> str:
        """
        :return: the ``x-ms-copy-source`` URL of ``source``.
        :raise S3Error: ``NotImplemented`` for a source L{can_copy} refuses.
        """
        if not self.can_copy(source):
            raise cannot_copy()
        container = source.bucket.option("container_name") or ""
        url = (
            f"{self._endpoint}/{uri_encode(container, keep_slash=False)}/"
            + uri_encode(source.key, keep_slash=True)
        )
        if source.version_id is not None:
            url += "?" + query_string([("versionid", source.version_id)])
        sas_token = self.bucket.option("sas_token")
        if sas_token and not self.bucket.option("access_key"):
            # Azure authorizes a SAS request's source by its own URL.
            url = with_sas(url, sas_token)
        return url

    @deferred
    async def copy_object(
        self, source: CopySource, key: str, headers: HeaderList
    ) -> CopyResult:
        """
        Copy Blob within the account, waiting for it to finish. With
        ``x-amz-metadata-directive: REPLACE`` the new content properties and
        metadata are set after the copy (two more requests, conditional on
        the copy's ETag); otherwise Azure copies them from the source.
        """
        copy_headers = [("x-ms-copy-source", self._copy_source(source))]
        for name, value in source.conditions:
            if name.startswith("x-amz-copy-source-if-"):
                copy_headers.append(
                    ("x-ms-source-if-" + name[len("x-amz-copy-source-if-") :], value)
                )
        replace = (headers.get("x-amz-metadata-directive") or "").upper() == "REPLACE"
        properties = object_properties(headers) if replace else NO_HEADERS
        metadata = HeaderList(
            (n, v) for n, v in properties if n.startswith("x-ms-meta-")
        )
        request_headers = (
            HeaderList(copy_headers).plus(metadata).plus(conditions(headers))
        )
        response = await self._send("PUT", key, (), request_headers)
        if response.status not in (200, 202):
            raise await self._error(response, statuses={404: "NoSuchKey"})
        response.body.discard()
        status = response.headers.get("x-ms-copy-status") or "success"
        etag = response.headers.get("etag") or ""
        modified = response.headers.get("last-modified")
        polls = 0
        while status == "pending" and polls < COPY_POLLS:
            polls += 1
            await deferLater(self.clock, COPY_POLL_INTERVAL, lambda: None)
            properties_response = await self._properties(key)
            if properties_response is None:
                raise S3Error("ServiceUnavailable", "The copy did not complete.")
            status = properties_response.headers.get("x-ms-copy-status") or "success"
            etag = properties_response.headers.get("etag") or etag
            modified = properties_response.headers.get("last-modified") or modified
        if status != "success":
            self.log.warn(
                "copy to {key} in bucket {bucket} ended {status}",
                key=key,
                bucket=self.bucket.name,
                status=status,
            )
            raise S3Error("ServiceUnavailable", "The copy did not complete.")
        if replace:
            etag, modified = await self._replace_properties(
                key, properties, bool(metadata), etag, modified
            )
        when = parse_http_date(modified) or self._now()
        return CopyResult(_quoted(etag), when)

    async def _replace_properties(
        self,
        key: str,
        properties: HeaderList,
        had_metadata: bool,
        etag: str,
        modified: str | None,
    ) -> tuple[str, str | None]:
        """
        After a copy that replaces the object's headers: set its content
        properties (Set Blob Properties clears those not given), and clear
        the metadata Azure copied if the copy gave none.

        :return: the blob's new ETag and time.
        """
        content = HeaderList(
            (n, v) for n, v in properties if not n.startswith("x-ms-meta-")
        )
        steps: list[tuple[str, HeaderList]] = [("properties", content)]
        if not had_metadata:
            steps.append(("metadata", NO_HEADERS))
        for comp, headers in steps:
            response = await self._send(
                "PUT", key, [("comp", comp)], headers.plus([("if-match", etag)])
            )
            if response.status != 200:
                raise await self._error(response)
            response.body.discard()
            etag = response.headers.get("etag") or etag
            modified = response.headers.get("last-modified") or modified
        return etag, modified

    # --- deletes --------------------------------------------------------------

    @deferred
    async def delete_object(self, key: str, version_id: str | None) -> ObjectResponse:
        """
        Delete Blob with its snapshots; a blob that is not there is deleted
        already.
        """
        query = [] if version_id is None else [("versionid", version_id)]
        headers = (
            HeaderList([("x-ms-delete-snapshots", "include")])
            if version_id is None
            else NO_HEADERS
        )
        response = await self._send("DELETE", key, query, headers)
        if response.status in (200, 202, 204):
            response.body.discard()
            return ObjectResponse(204, NO_HEADERS)
        error = await self._error(response)
        if error.code == "NoSuchKey":
            return ObjectResponse(204, NO_HEADERS)
        raise error

    def delete_objects(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> Deferred[Sequence[DeleteOutcome]]:
        """
        One Delete Blob per key, a few at a time (see
        L{multistore.stores.streaming.delete_each}).
        """
        return delete_each(keys, self.delete_object)

    # --- containers -----------------------------------------------------------

    @deferred
    async def create_bucket(self) -> None:
        """
        Create Container.
        """
        response = await self._send("PUT", None, [("restype", "container")])
        if response.status not in (200, 201):
            raise await self._error(response, statuses={409: "BucketAlreadyOwnedByYou"})
        response.body.discard()

    @deferred
    async def delete_bucket(self) -> None:
        """
        Delete Container, if it holds no blob (committed or not).
        """
        listing = await self._list_blobs("", None, 1, None, include="uncommittedblobs")
        if listing.blobs or listing.prefixes:
            raise S3Error("BucketNotEmpty")
        response = await self._send("DELETE", None, [("restype", "container")])
        if response.status not in (200, 202):
            raise await self._error(response, statuses={404: "NoSuchBucket"})
        response.body.discard()


async def _value(value: _T) -> _T:
    return value


async def _raise(error: Exception) -> NoReturn:
    raise error
