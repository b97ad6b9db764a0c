# -*- test-case-name: tests.unit.test_gcs_store -*-
"""
Stores on Google Cloud Storage, through its JSON API.

Every operation uses the JSON API (``/storage/v1``, uploads under
``/upload/storage/v1``), which real GCS and fake-gcs-server both serve in
full; the XML API would serve S3-style multipart uploads on real GCS, but
not on the emulator the tests use, so multipart uploads are built from
``compose``.

Requests carry ``Authorization: Bearer`` with an OAuth2 token of the
bucket's service account (``service_account_key``; see
L{multistore.stores.gcs.auth}) or of an injected L{TokenProvider}, or
nothing when ``skip_signature`` is set. A bucket with HMAC keys
(``access_key_id`` / ``secret_access_key``) is not served by this store:
the JSON API takes no HMAC signatures, so the store factory serves it
through GCS's S3-compatible XML API with an S3 store signing with SigV4
(L{xml_api_bucket} says which buckets, and how they are reached; the choice
is made once, when the store is made). (fake-gcs-server has no XML API
uploads, so that path is tested only against a fake forwarder.)

What clients see:

- B{ETag}: the hex MD5 of the object, quoted, as S3 shows it (GCS keeps it
  as base64 ``md5Hash``). An object completed from a multipart upload
  shows the S3 multipart ETag (the MD5 of its parts' MD5s, ``-``, the
  number of parts), kept in the object's custom metadata under
  L{ETAG_METADATA}, which clients never see as metadata. A composite
  object made elsewhere, which has no MD5, shows its CRC32C in hex,
  ``-`` and its component count.
- B{Conditions}: the gateway evaluates ``If-Match`` / ``If-None-Match`` /
  the dates against the object's metadata, then pins what it does to the
  generation it evaluated (``generation`` on reads, ``ifGenerationMatch``
  on writes, ``ifSourceGenerationMatch`` on copies), so real GCS refuses a
  write that raced with another (``PreconditionFailed``).
  ``If-None-Match: *`` is ``ifGenerationMatch=0``. fake-gcs-server ignores
  generation preconditions; the gateway's own check still applies.
- B{Metadata}: ``x-amz-meta-NAME`` is GCS custom metadata ``NAME``;
  content headers are the object's ``contentType``, ``cacheControl``,
  ``contentDisposition``, ``contentEncoding`` and ``contentLanguage``.
  Reads send ``Accept-Encoding: gzip`` so that GCS never decompresses a
  gzip-encoded object on the way (bytes are served as stored).

L{GcsStore} holds what every operation needs: its configuration, the
requests it sends and their credentials, and how GCS's errors are mapped;
with the bucket and delete operations. The rest it inherits, one mixin per
concern: reads (L{multistore.stores.gcs.reads}), writes
(L{multistore.stores.gcs.writes}), listings
(L{multistore.stores.gcs.listings}), copies
(L{multistore.stores.gcs.copies}) and multipart uploads
(L{multistore.stores.gcs.multipart}). What the mixins use of the store is
L{multistore.stores.gcs.common.GcsStoreBase}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any, Final

from attrs import evolve, frozen
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
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
    DeleteOutcome,
    ObjectResponse,
)
from multistore.s3.errors import S3Error
from multistore.stores.common import deferred, delete_each, error_body, now
from multistore.stores.failures import failed, refused
from multistore.stores.gcs.auth import TokenProvider, no_token, shared_tokens
from multistore.stores.gcs.common import (
    DEFAULT_ENDPOINT,
    ETAG_METADATA,
    MAX_DOCUMENT,
    RESERVED_METADATA,
    UPLOADS_PREFIX,
    _generation,
    etag_of,
    object_resource,
)
from multistore.stores.gcs.copies import Copies
from multistore.stores.gcs.listings import Listings
from multistore.stores.gcs.multipart import COMPOSE_LIMIT, Multipart
from multistore.stores.gcs.reads import Reads, response_headers
from multistore.stores.gcs.writes import CHUNK_SIZE, Writes

__all__ = [
    "CHUNK_SIZE",
    "COMPOSE_LIMIT",
    "DEFAULT_ENDPOINT",
    "ETAG_METADATA",
    "RESERVED_METADATA",
    "UPLOADS_PREFIX",
    "GcsStore",
    "etag_of",
    "object_resource",
    "response_headers",
    "xml_api_bucket",
]


#: Smallest part but the last, as S3 requires.
MIN_PART_SIZE: Final = 5 * 1024 * 1024


def _status_code(status: int) -> str:
    return {
        400: "InvalidRequest",
        401: "AccessDenied",
        403: "AccessDenied",
        404: "NoSuchKey",
        409: "OperationAborted",
        412: "PreconditionFailed",
        416: "InvalidRange",
        429: "SlowDown",
        503: "ServiceUnavailable",
    }.get(status, "ServiceUnavailable")


def xml_api_bucket(bucket: BucketConfig) -> BucketConfig | None:
    """
    Choose how a GCS bucket is reached, once, when its store is made.

    :return: for a bucket with HMAC keys (``access_key_id`` and
        ``secret_access_key``, no service account key, not
        ``skip_signature``), the configuration of an S3 bucket on GCS's XML
        API, which takes SigV4 signatures made with HMAC keys and speaks S3
        (multipart uploads included; region ``auto`` unless ``region`` says
        otherwise); ``None`` for a bucket served through the JSON API by a
        L{GcsStore}.
    """
    if bucket.flag("skip_signature") or bucket.option("service_account_key"):
        return None
    access_key = bucket.option("access_key_id")
    secret = bucket.option("secret_access_key")
    if not (access_key and secret):
        return None
    options = {
        "endpoint": (bucket.option("endpoint") or DEFAULT_ENDPOINT).rstrip("/"),
        "bucket_name": bucket.option("bucket_name", "") or "",
        "access_key_id": access_key,
        "secret_access_key": secret,
        "region": bucket.option("region", "auto") or "auto",
    }
    return evolve(bucket, backend_type="s3", backend_options=options)


@implementer(IObjectStore)
@frozen
class GcsStore(Reads, Writes, Listings, Copies, Multipart):
    """
    A virtual bucket's store on Google Cloud Storage.

    :ivar bucket: the virtual bucket's configuration.
    :ivar forwarder: the HTTP transport.
    :ivar clock: the time source (token expiry, condition dates).
    :ivar token_provider: gives bearer tokens, overriding the bucket's
        service account key (for federated credentials); ``None`` to use
        the key.
    """

    log = Logger()

    bucket: BucketConfig
    forwarder: IForwarder
    clock: IReactorTime
    token_provider: TokenProvider | None = None

    # --- plumbing -------------------------------------------------------------

    @property
    def _endpoint(self) -> str:
        return (self.bucket.option("endpoint") or DEFAULT_ENDPOINT).rstrip("/")

    @property
    def _min_part_size(self) -> int:
        # MIN_PART_SIZE is read from this module when it is used, so that
        # tests may make it smaller.
        return MIN_PART_SIZE

    @property
    def _bucket_name(self) -> str:
        return self.bucket.option("bucket_name", "") or ""

    def _now(self) -> datetime:
        return now(self.clock)

    def url(
        self,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        upload: bool = False,
    ) -> str:
        """
        :param path: the path under the API root, such as ``/b/BUCKET/o``,
            already encoded.
        :param query: ``(name, value)`` parameters.
        :param upload: whether the path is under the upload root.
        :return: the wire URL.
        """
        root = "/upload/storage/v1" if upload else "/storage/v1"
        url = f"{self._endpoint}{root}{path}"
        if query:
            url += "?" + "&".join(
                f"{uri_encode(n, keep_slash=False)}={uri_encode(v, keep_slash=False)}"
                for n, v in query
            )
        return url

    def _bucket_path(self) -> str:
        return "/b/" + uri_encode(self._bucket_name, keep_slash=False)

    def _object_path(self, name: str) -> str:
        return f"{self._bucket_path()}/o/{uri_encode(name, keep_slash=False)}"

    def _token(self) -> Deferred[str] | None:
        """
        :return: a Deferred bearer token, or ``None`` to send no credentials.
        :raise S3Error: ``NotImplemented`` for an access key without its
            secret.
        """
        if self.bucket.flag("skip_signature"):
            return None
        if self.token_provider is not None:
            return self.token_provider()
        bearer = self.bucket.option("bearer_token")
        if bearer:
            return succeed(bearer)
        key = self.bucket.option("service_account_key")
        if key:
            try:
                return shared_tokens(key, self.clock).token()
            except S3Error:
                return no_token()
        if self.bucket.option("access_key_id"):
            # HMAC keys sign only for the XML API, which StoreFactory serves
            # with an S3Store (see xml_api_bucket); without their secret,
            # they sign nothing at all.
            raise S3Error(
                "NotImplemented",
                "The bucket's HMAC key has no secret_access_key."
                if not self.bucket.option("secret_access_key")
                else "This store speaks the JSON API, which takes no HMAC keys.",
            )
        return None

    async def _send(
        self,
        method: str,
        url: str,
        headers: HeaderList = NO_HEADERS,
        body: IBodyProducer | None = None,
    ) -> BackendResponse:
        """
        Send one request, with a bearer token if the bucket has credentials.
        """
        token = self._token()
        if token is not None:
            headers = headers.with_("authorization", "Bearer " + await token)
        return await self.forwarder.forward(
            BackendRequest(method=method, url=url, headers=headers, body=body)
        )

    async def _send_json(
        self, method: str, url: str, document: Mapping[str, Any] | None
    ) -> BackendResponse:
        data = b"" if document is None else json.dumps(document).encode("utf-8")
        return await self._send(
            method,
            url,
            HeaderList([("content-type", "application/json; charset=UTF-8")]),
            BytesProducer(data),
        )

    async def _document(self, response: BackendResponse) -> dict[str, Any]:
        """
        Read a JSON answer.

        :raise S3Error: ``ServiceUnavailable`` if it is not a JSON object.
        """
        body = await read_body(response.body, MAX_DOCUMENT)
        try:
            document = json.loads(body) if body.strip() else {}
        except ValueError:
            document = None
        if not isinstance(document, dict):
            self.log.warn(
                "backend of bucket {bucket} sent an answer that is not JSON",
                bucket=self.bucket.name,
            )
            raise S3Error("ServiceUnavailable", "The bucket's backend store failed.")
        return document

    async def _error(
        self,
        response: BackendResponse,
        statuses: Mapping[int, str] | None = None,
        head: bool = False,
    ) -> S3Error:
        """
        Turn an error answer into the error the client gets; GCS's own
        message is logged, never passed on.

        :param statuses: codes for statuses, where they differ from
            L{_status_code}'s.
        """
        reason = ""
        with suppress(Exception):
            error = json.loads(await error_body(response, head)).get("error", {})
            reason = str(error.get("message", ""))[:500]
        status = response.status
        code = (statuses or {}).get(status) or _status_code(status)
        if code == "AccessDenied":
            return refused(self.log, self.bucket.name, status, reason)
        if code in ("SlowDown", "ServiceUnavailable") or status >= 500:
            return failed(
                self.log,
                self.bucket.name,
                status,
                "-",
                reason,
                slow_down=code == "SlowDown",
            )
        return S3Error(code)

    async def _metadata(
        self, name: str, generation: str | None = None
    ) -> dict[str, Any] | None:
        """
        :return: an object's resource, or ``None`` if it does not exist.
        """
        query = [("projection", "noAcl")]
        if generation is not None:
            query.append(("generation", generation))
        response = await self._send("GET", self.url(self._object_path(name), query))
        if response.status == 404:
            response.body.discard()
            return None
        if response.status != 200:
            raise await self._error(response)
        return await self._document(response)

    # --- deletes --------------------------------------------------------------

    async def _delete(self, name: str, generation: str | None = None) -> None:
        query = [] if generation is None else [("generation", generation)]
        response = await self._send("DELETE", self.url(self._object_path(name), query))
        if response.status in (200, 204, 404):
            response.body.discard()
            return
        raise await self._error(response)

    @deferred
    async def delete_object(self, key: str, version_id: str | None) -> ObjectResponse:
        """
        Delete an object (a version is a generation); a missing one is
        deleted already.
        """
        await self._delete(key, _generation(version_id))
        return ObjectResponse(204, NO_HEADERS)

    def delete_objects(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> Deferred[Sequence[DeleteOutcome]]:
        """
        Delete each key on its own, a few at a time (see
        L{multistore.stores.streaming.delete_each}).
        """
        return delete_each(keys, self.delete_object)

    # --- buckets --------------------------------------------------------------

    @deferred
    async def head_bucket(self) -> None:
        response = await self._send("GET", self.url(self._bucket_path()))
        if response.status != 200:
            raise await self._error(response, {404: "NoSuchBucket"}, head=True)
        response.body.discard()

    def _project(self) -> str:
        project = self.bucket.option("project_id")
        if project:
            return project
        key = self.bucket.option("service_account_key")
        if key:
            with suppress(ValueError, AttributeError):
                named = json.loads(key).get("project_id")
                if isinstance(named, str) and named:
                    return named
        return "multistore"

    @deferred
    async def create_bucket(self) -> None:
        """
        Create the bucket in the project ``project_id`` (or the service
        account's project).
        """
        response = await self._send_json(
            "POST",
            self.url("/b", [("project", self._project())]),
            {"name": self._bucket_name},
        )
        if response.status != 200:
            raise await self._error(response, {409: "BucketAlreadyOwnedByYou"})
        response.body.discard()

    @deferred
    async def delete_bucket(self) -> None:
        response = await self._send("DELETE", self.url(self._bucket_path()))
        if response.status not in (200, 204):
            raise await self._error(
                response,
                {404: "NoSuchBucket", 409: "BucketNotEmpty", 412: "BucketNotEmpty"},
            )
        response.body.discard()
