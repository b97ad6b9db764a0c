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

Where the operations are
========================

L{AzureStore} holds what every operation needs: its configuration, the
requests it sends and how they are authorized, and how Azure's errors are
mapped; with the bucket and delete operations. The rest it inherits, one
mixin per concern: reads (L{multistore.stores.azure.reads}), writes
(L{multistore.stores.azure.writes}), listings
(L{multistore.stores.azure.listings}), copies
(L{multistore.stores.azure.copies}) and multipart uploads
(L{multistore.stores.azure.multipart}). What the mixins use of the store is
L{multistore.stores.azure.common.AzureStoreBase}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final

from attrs import evolve, frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from multistore.auth.canonical import uri_encode
from multistore.bodies import BytesProducer
from multistore.config import BucketConfig
from multistore.headers import NO_HEADERS, HeaderList
from multistore.interfaces import IForwarder, IObjectStore
from multistore.model import (
    BackendRequest,
    BackendResponse,
    DeleteOutcome,
    ObjectResponse,
)
from multistore.s3.errors import S3Error
from multistore.stores.azure.auth import (
    API_VERSION,
    query_string,
    sign_shared_key,
    with_sas,
)
from multistore.stores.azure.common import object_properties
from multistore.stores.azure.copies import Copies
from multistore.stores.azure.listings import Listings
from multistore.stores.azure.multipart import (
    Multipart,
    UploadId,
    block_id,
    key_hash_of,
    parse_block_id,
    part_etag,
)
from multistore.stores.azure.reads import Reads, s3_object_headers
from multistore.stores.azure.writes import BLOCK_SIZE, MAX_PUT_BLOB, Writes
from multistore.stores.azure.xml import parse_error_code
from multistore.stores.common import deferred, delete_each, error_body, now
from multistore.stores.failures import failed, refused

__all__ = [
    "BLOCK_SIZE",
    "MAX_PUT_BLOB",
    "AzureStore",
    "UploadId",
    "block_id",
    "key_hash_of",
    "object_properties",
    "parse_block_id",
    "part_etag",
    "s3_object_headers",
]


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


@implementer(IObjectStore)
@frozen
class AzureStore(Reads, Writes, Listings, Copies, Multipart):
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

    def _for_bucket(self, bucket: BucketConfig) -> AzureStore:
        """
        :return: this store, for another bucket (a copy's source).
        """
        return evolve(self, bucket=bucket)

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
    async def head_bucket(self) -> None:
        """
        Get Container Properties.
        """
        response = await self._send("HEAD", None, [("restype", "container")])
        if response.status == 200:
            response.body.discard()
            return
        raise await self._error(response, statuses={404: "NoSuchBucket"})

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
