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

Uploads are resumable sessions: the object's resource (metadata and
preconditions) opens the session, then the body streams into it. A body of
known length is sent in one request with its last byte held back until it
has been verified (L{multistore.stores.streaming.LastByteHeld}): a body that
fails leaves the session unfinished and no object appears; the session is
then cancelled. A body of unknown length goes in chunks of L{CHUNK_SIZE}
bytes, one in memory at a time, and the session is finished only once the
body has ended.

Multipart uploads live in the bucket, so they survive restarts: a marker
object ``.multistore-uploads/uploads/ID`` carries the key and the object's
headers, each part is an object ``.multistore-uploads/parts/ID/NNNNN``, and
completion composes the parts (32 at a time, in rounds for more) into the
object and deletes them. Listings never show ``.multistore-uploads/``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from attrs import evolve, frozen
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    DeferredSemaphore,
)
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
from multistore.s3.conditions import NotModified, evaluate
from multistore.s3.dates import format_http_date, parse_iso8601
from multistore.s3.errors import S3Error
from multistore.s3.ranges import ByteRange, parse_range
from multistore.stores.failures import failed, refused
from multistore.stores.gcs.auth import TokenProvider, no_token, shared_tokens
from multistore.stores.streaming import (
    DELETE_CONCURRENCY,
    PartBuffer,
    cannot_copy,
    check_read,
    content_header,
    deferred,
    delete_each,
    error_body,
    finish_quietly,
    held,
    now,
    on_same_service,
    service_root,
    source_read,
)

#: The API root when the bucket names no endpoint.
DEFAULT_ENDPOINT: Final = "https://storage.googleapis.com"

#: Where multipart uploads keep their state; never listed.
UPLOADS_PREFIX: Final = ".multistore-uploads/"
_MARKERS: Final = UPLOADS_PREFIX + "uploads/"
_PARTS: Final = UPLOADS_PREFIX + "parts/"
#: The least name greater than every name under L{UPLOADS_PREFIX}.
_AFTER_UPLOADS: Final = UPLOADS_PREFIX[:-1] + chr(ord("/") + 1)

#: The custom metadata that holds a multipart object's ETag.
ETAG_METADATA: Final = "multistore-etag"
_KEY_METADATA: Final = "multistore-key"
_RESOURCE_METADATA: Final = "multistore-resource"

#: Bytes in each chunk of an upload of unknown length (a multiple of the
#: 256 KiB GCS asks of a chunk); also the most of such a body held.
CHUNK_SIZE: Final = 8 * 1024 * 1024

#: Most sources of one ``compose``.
COMPOSE_LIMIT: Final = 32

#: Smallest part but the last, as S3 requires.
MIN_PART_SIZE: Final = 5 * 1024 * 1024

#: Most parts in an upload.
MAX_PARTS: Final = 10_000

#: Largest JSON answer read (a listing page of 1000 objects with metadata).
MAX_DOCUMENT: Final = 8 * 1024 * 1024

#: Most ``rewrite`` calls for one copy (GCS copies large objects in steps).
MAX_REWRITE_STEPS: Final = 1000

#: Most listing pages read to find an upload's parts or the uploads.
MAX_SCAN_PAGES: Final = 100

#: S3 content headers and the GCS object fields that hold them.
_CONTENT_FIELDS: Final = (
    ("content-type", "contentType"),
    ("cache-control", "cacheControl"),
    ("content-disposition", "contentDisposition"),
    ("content-encoding", "contentEncoding"),
    ("content-language", "contentLanguage"),
)
_META: Final = "x-amz-meta-"
#: Custom metadata names multistore keeps for itself; never a client's.
RESERVED_METADATA: Final = frozenset({ETAG_METADATA, _KEY_METADATA, _RESOURCE_METADATA})


def _text_of(value: str) -> str:
    """
    :return: a header value (ISO-8859-1 as received) as the UTF-8 text it
        encodes, or as it is if it is not UTF-8.
    """
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _header_of(text: str) -> str:
    """
    :return: text as a header value: its UTF-8 bytes read as ISO-8859-1.
    """
    return text.encode("utf-8").decode("latin-1")


def object_resource(headers: HeaderList) -> dict[str, Any]:
    """
    The GCS object fields for an S3 write's headers.

    :param headers: the write's headers.
    :return: ``contentType`` and the other content fields, and
        ``metadata`` from ``x-amz-meta-*`` (names multistore reserves are
        dropped).
    """
    resource: dict[str, Any] = {}
    for header, name in _CONTENT_FIELDS:
        value = content_header(headers, header)
        if value:
            resource[name] = _text_of(value)
    metadata = {}
    for name, value in headers:
        if name.startswith(_META) and len(name) > len(_META):
            meta_name = name[len(_META) :]
            if meta_name not in RESERVED_METADATA:
                metadata[meta_name] = _text_of(value)
    if metadata:
        resource["metadata"] = metadata
    return resource


def _md5_hex(b64: object) -> str | None:
    if not isinstance(b64, str) or not b64:
        return None
    try:
        return base64.b64decode(b64, validate=True).hex()
    except ValueError:
        return None


def etag_of(resource: Mapping[str, Any]) -> str:
    """
    :param resource: a GCS object resource.
    :return: the object's S3 ETag, quoted: the multipart ETag kept in its
        metadata, or its MD5 in hex, or for a composite object without an
        MD5 its CRC32C in hex, ``-`` and its component count.
    """
    metadata = resource.get("metadata") or {}
    kept = metadata.get(ETAG_METADATA) if isinstance(metadata, dict) else None
    if isinstance(kept, str) and kept:
        return f'"{kept}"'
    md5 = _md5_hex(resource.get("md5Hash"))
    if md5 is not None:
        return f'"{md5}"'
    crc = _md5_hex(resource.get("crc32c")) or "0"
    return f'"{crc}-{resource.get("componentCount", 1)}"'


def _updated(resource: Mapping[str, Any]) -> datetime:
    value = resource.get("updated") or resource.get("timeCreated")
    if isinstance(value, str):
        with suppress(ValueError):
            return parse_iso8601(value)
    return datetime.fromtimestamp(0, UTC)


def _size(resource: Mapping[str, Any]) -> int:
    try:
        return int(resource.get("size", 0))
    except (TypeError, ValueError):
        return 0


def response_headers(resource: Mapping[str, Any]) -> HeaderList:
    """
    :param resource: a GCS object resource.
    :return: the S3 headers of the whole object: length, content fields,
        ETag, Last-Modified and ``x-amz-meta-*``.
    """
    headers = [
        ("accept-ranges", "bytes"),
        ("content-length", str(_size(resource))),
        ("etag", etag_of(resource)),
        ("last-modified", format_http_date(_updated(resource))),
    ]
    for header, name in _CONTENT_FIELDS:
        value = resource.get(name)
        if isinstance(value, str) and value:
            headers.append((header, _header_of(value)))
    metadata = resource.get("metadata") or {}
    if isinstance(metadata, dict):
        for name, value in sorted(metadata.items()):
            if name not in RESERVED_METADATA and isinstance(value, str):
                headers.append((_META + name.lower(), _header_of(value)))
    return HeaderList(headers)


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


def _service(bucket: BucketConfig) -> tuple[str, str] | None:
    """
    :return: the GCS service a bucket is on and who the gateway is there;
        ``None`` for a bucket not on GCS.
    """
    if bucket.backend_type != "gcs":
        return None
    where = service_root(bucket.option("endpoint") or DEFAULT_ENDPOINT)
    if bucket.flag("skip_signature"):
        return where, ""
    key = bucket.option("service_account_key") or ""
    return where, hashlib.sha256(key.encode("utf-8")).hexdigest()


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


def _page_items(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = document.get("items") or []
    return [item for item in items if isinstance(item, dict) and "name" in item]


def _visible(
    items: Iterable[dict[str, Any]], start_after: str | None
) -> list[dict[str, Any]]:
    """
    :return: the listed objects a client may see: not uploads in progress,
        nor the ``start_after`` key (GCS's ``startOffset`` includes it).
    """
    return [
        item
        for item in items
        if not item["name"].startswith(UPLOADS_PREFIX) and item["name"] != start_after
    ]


def _multipart_etag(etags: Iterable[str]) -> str:
    """
    :return: the S3 multipart ETag (unquoted) of parts with these ETags.
    """
    digest = hashlib.md5(usedforsecurity=False)
    count = 0
    for etag in etags:
        opaque = etag.strip('"')
        try:
            digest.update(bytes.fromhex(opaque))
        except ValueError:
            digest.update(opaque.encode("utf-8"))
        count += 1
    return f"{digest.hexdigest()}-{count}"


def _same_etag(a: str, b: str) -> bool:
    return a.strip().strip('"') == b.strip().strip('"')


def _part_name(upload_id: str, number: int) -> str:
    return f"{_PARTS}{upload_id}/{number:05d}"


def _generation(version_id: str | None) -> str | None:
    """
    :return: the GCS generation an S3 version id names, or ``None`` for
        none (or ``null``, the version of an object without versions).
    :raise S3Error: ``InvalidArgument`` for anything but a generation.
    """
    if version_id is None or version_id == "null":
        return None
    if not (version_id.isascii() and version_id.isdigit()):
        raise S3Error("InvalidArgument", "Invalid version id specified")
    return version_id


def _origin(url: str) -> tuple[str, str]:
    """
    :return: the scheme and authority of ``url``, lower-cased.
    """
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _valid_upload_id(upload_id: str) -> bool:
    return 0 < len(upload_id) <= 64 and all(c in "0123456789abcdef" for c in upload_id)


@implementer(IObjectStore)
@frozen
class GcsStore:
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

    # --- reads ----------------------------------------------------------------

    @deferred
    async def get_object(self, read: ObjectRead) -> ObjectResponse:
        """
        Read an object: its metadata first (conditions, range and headers are
        worked out from it), then its bytes, pinned to the generation whose
        metadata was read.
        """
        generation = _generation(read.version_id)
        resource = await self._metadata(read.key, generation)
        if resource is None:
            raise S3Error("NoSuchVersion" if generation else "NoSuchKey")
        headers = response_headers(resource)
        etag = etag_of(resource)
        try:
            check_read(read, etag, _updated(resource), self._now())
        except NotModified:
            return ObjectResponse(
                304,
                HeaderList(
                    (n, v) for n, v in headers if n in ("etag", "last-modified")
                ),
            )
        if read.part_number is not None and read.part_number != 1:
            raise S3Error("InvalidPartNumber")
        size = _size(resource)
        wanted: ByteRange | None
        if read.part_number == 1:
            # The only part is the whole object, sent as a range, as S3 does
            # (an empty object has no byte to put in one).
            wanted = ByteRange(0, size - 1, size) if size > 0 else None
        else:
            wanted = parse_range(read.range, size)
        if wanted is not None:
            headers = headers.with_("content-length", str(wanted.length)).with_(
                "content-range", wanted.content_range
            )
        status = 200 if wanted is None else 206
        if read.head:
            return ObjectResponse(status, headers)
        query = [("alt", "media")]
        if "generation" in resource:
            query.append(("generation", str(resource["generation"])))
        request_headers = HeaderList([("accept-encoding", "gzip")])
        if wanted is not None:
            request_headers = request_headers.with_(
                "range", f"bytes={wanted.start}-{wanted.end}"
            )
        response = await self._send(
            "GET", self.url(self._object_path(read.key), query), request_headers
        )
        if response.status not in (200, 206):
            raise await self._error(response)
        whole = wanted is None or (wanted.start == 0 and wanted.end == size - 1)
        if (response.status == 200 and not whole) or (
            response.status == 206 and wanted is None
        ):
            response.body.discard()
            self.log.warn(
                "backend of bucket {bucket} answered a read with {status}",
                bucket=self.bucket.name,
                status=response.status,
            )
            raise S3Error("ServiceUnavailable", "The bucket's backend store failed.")
        return ObjectResponse(status, headers, response.body)

    async def _list_page(
        self,
        request: ListRequest,
        start_offset: str | None,
        token: str | None,
        max_results: int,
    ) -> tuple[list[dict[str, Any]], list[str], str | None]:
        """
        Read one page of ``objects.list``.

        :return: its objects, its prefixes and its next page token.
        """
        query = [("maxResults", str(max_results)), ("projection", "noAcl")]
        if request.prefix:
            query.append(("prefix", request.prefix))
        if request.delimiter:
            query.append(("delimiter", request.delimiter))
        if start_offset:
            query.append(("startOffset", start_offset))
        if token:
            query.append(("pageToken", token))
        response = await self._send("GET", self.url(self._bucket_path() + "/o", query))
        if response.status != 200:
            raise await self._error(response, {404: "NoSuchBucket"})
        document = await self._document(response)
        prefixes = [p for p in document.get("prefixes") or [] if isinstance(p, str)]
        next_token = document.get("nextPageToken")
        if not isinstance(next_token, str) or not next_token:
            next_token = None
        return _page_items(document), prefixes, next_token

    @deferred
    async def list_objects(self, request: ListRequest) -> ListPage:
        """
        List with ``objects.list``; ``start_after`` is ``startOffset``
        (inclusive on GCS, so a key equal to it is skipped); GCS's page token
        is the store's resume token.
        """
        if request.max_keys <= 0:
            return ListPage()
        # startOffset includes the start_after key itself, which is then
        # dropped: ask for one more so that a full page remains.
        wanted = request.max_keys + (1 if request.start_after else 0)
        items, prefixes, next_token = await self._list_page(
            request, request.start_after, request.token, wanted
        )
        visible = _visible(items, request.start_after)
        if next_token and items and items[-1]["name"].startswith(UPLOADS_PREFIX):
            # The page ends among uploads in progress, of which there may
            # be many pages: skip them all with one more request, and let
            # the gateway resume after this page's last key.
            room = request.max_keys - len(visible) - len(prefixes)
            next_token = None
            truncated = True
            if room > 0:
                more, more_prefixes, after = await self._list_page(
                    request, _AFTER_UPLOADS, None, room
                )
                visible.extend(_visible(more, request.start_after))
                prefixes.extend(more_prefixes)
                truncated = after is not None
            return self._listed(request, visible, prefixes, truncated, None)
        return self._listed(
            request, visible, prefixes, next_token is not None, next_token
        )

    def _listed(
        self,
        request: ListRequest,
        items: list[dict[str, Any]],
        prefixes: list[str],
        truncated: bool,
        next_token: str | None,
    ) -> ListPage:
        """
        :return: a page of ``items`` and ``prefixes`` (hidden ones left
            out), at most C{request.max_keys} of them together.
        """
        objects = [
            ObjectInfo(
                key=item["name"],
                size=_size(item),
                last_modified=_updated(item),
                etag=etag_of(item),
            )
            for item in items
        ]
        shown = sorted({p for p in prefixes if not p.startswith(UPLOADS_PREFIX)})
        if len(objects) + len(shown) > request.max_keys:
            # More than asked for: keep the first max_keys in key order and
            # let the gateway resume after the last one kept.
            merged = sorted(
                [(o.key, o) for o in objects] + [(p, None) for p in shown],
                key=lambda entry: entry[0],
            )[: request.max_keys]
            objects = [o for _, o in merged if o is not None]
            shown = [k for k, o in merged if o is None]
            return ListPage(tuple(objects), tuple(shown), True, None)
        return ListPage(tuple(objects), tuple(shown), truncated, next_token)

    @deferred
    async def head_bucket(self) -> None:
        response = await self._send("GET", self.url(self._bucket_path()))
        if response.status != 200:
            raise await self._error(response, {404: "NoSuchBucket"}, head=True)
        response.body.discard()

    # --- uploads --------------------------------------------------------------

    async def _write_preconditions(
        self, name: str, headers: HeaderList
    ) -> list[tuple[str, str]]:
        """
        Check a write's ``if-match`` / ``if-none-match`` against the object
        and pin the write to what was checked.

        :return: the ``ifGenerationMatch`` query parameter, if any.
        :raise S3Error: ``PreconditionFailed``; ``NoSuchKey`` for
            ``if-match`` on a missing object.
        """
        if_match = headers.get("if-match")
        if_none_match = headers.get("if-none-match")
        if not (if_match or if_none_match):
            return []
        resource = await self._metadata(name)
        if resource is None:
            if if_match:
                raise S3Error("NoSuchKey")
            return [("ifGenerationMatch", "0")]
        evaluate(
            etag_of(resource),
            _updated(resource),
            if_match=if_match,
            if_none_match=if_none_match,
            method="PUT",
            now=self._now(),
        )
        return [("ifGenerationMatch", str(resource.get("generation", "0")))]

    async def _open_session(
        self, name: str, resource: Mapping[str, Any], query: Sequence[tuple[str, str]]
    ) -> str:
        """
        Start a resumable upload.

        :return: the session URL.
        """
        response = await self._send_json(
            "POST",
            self.url(
                self._bucket_path() + "/o",
                [("uploadType", "resumable"), ("name", name), *query],
                upload=True,
            ),
            {**resource, "name": name},
        )
        if response.status not in (200, 201):
            raise await self._error(response, {404: "NoSuchBucket"})
        response.body.discard()
        session = response.headers.get("location") or ""
        if _origin(session) != _origin(self._endpoint):
            # The session must be on the service the bucket names: the
            # bucket's credentials go with every chunk.
            self.log.warn(
                "backend of bucket {bucket} opened an upload elsewhere: {where}",
                bucket=self.bucket.name,
                where=_origin(session),
            )
            raise S3Error("ServiceUnavailable", "The bucket's backend store failed.")
        return session

    async def _cancel_session(self, session: str) -> None:
        """
        Cancel an unfinished upload; a failure is logged. Not cancelled with
        its caller.
        """

        cancelling = Deferred.fromCoroutine(self._send("DELETE", session))
        cancelling.addCallback(lambda response: response.body.discard())
        await finish_quietly(
            cancelling,
            self.log,
            "could not cancel an upload in bucket {bucket}",
            bucket=self.bucket.name,
        )

    async def _finished(self, response: BackendResponse) -> dict[str, Any]:
        if response.status not in (200, 201):
            raise await self._error(response, {404: "NoSuchUpload"})
        return await self._document(response)

    async def _store(
        self,
        name: str,
        resource: Mapping[str, Any],
        query: Sequence[tuple[str, str]],
        body: IBodyProducer,
    ) -> dict[str, Any]:
        """
        Upload a body into object ``name``.

        :return: the new object's resource.
        """
        whole = isinstance(body.length, int)
        sent = await held(body) if whole else None
        session = await self._open_session(name, resource, query)
        try:
            if not whole:
                return await self._store_chunked(session, body)
            response = await self._send(
                "PUT", session, body=BytesProducer(b"") if sent is None else sent
            )
            return await self._finished(response)
        except BaseException:
            await self._cancel_session(session)
            raise

    async def _store_chunked(self, session: str, body: IBodyProducer) -> dict[str, Any]:
        """
        Send a body of unknown length into a session, a chunk at a time; the
        last chunk, which finishes the upload, is sent only once the body
        has ended.
        """
        buffer = PartBuffer(body, CHUNK_SIZE)
        buffer.start()
        offset = 0
        try:
            await buffer.fill()
            while True:
                buffer.check()
                last = buffer.holds_rest
                data = b"".join(buffer.take())
                buffer.resume()
                if last:
                    total = offset + len(data)
                    span = f"{offset}-{total - 1}" if data else "*"
                    content_range = f"bytes {span}/{total}"
                else:
                    content_range = f"bytes {offset}-{offset + len(data) - 1}/*"
                response = await buffer.watch(
                    Deferred.fromCoroutine(
                        self._send(
                            "PUT",
                            session,
                            HeaderList([("content-range", content_range)]),
                            BytesProducer(data),
                        )
                    )
                )
                offset += len(data)
                del data
                if last:
                    return await self._finished(response)
                if response.status != 308:
                    raise await self._error(response, {404: "NoSuchUpload"})
                response.body.discard()
                await buffer.fill()
        except BaseException:
            buffer.stop()
            buffer.check()
            raise

    @deferred
    async def put_object(self, write: ObjectWrite) -> ObjectResponse:
        """
        Upload an object in a resumable session (see the module's
        description), with its content headers and metadata, honouring
        ``if-match`` / ``if-none-match``.
        """
        query = await self._write_preconditions(write.key, write.headers)
        resource = await self._store(
            write.key, object_resource(write.headers), query, write.body
        )
        return ObjectResponse(200, HeaderList([("etag", etag_of(resource))]))

    # --- multipart ------------------------------------------------------------

    @deferred
    async def create_multipart_upload(self, key: str, headers: HeaderList) -> str:
        """
        Start an upload: a marker object holding the key and the object's
        headers.

        :return: the upload id (32 hex digits).
        """
        upload_id = os.urandom(16).hex()
        resource = object_resource(headers)
        marker = {
            "name": _MARKERS + upload_id,
            "metadata": {
                _KEY_METADATA: key,
                _RESOURCE_METADATA: json.dumps(resource, sort_keys=True),
            },
        }
        boundary = "multistore-" + os.urandom(8).hex()
        document = (
            f"--{boundary}\r\n"
            "Content-Type: application/json; charset=UTF-8\r\n\r\n"
            f"{json.dumps(marker)}\r\n"
            f"--{boundary}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
            f"\r\n--{boundary}--\r\n"
        ).encode()
        response = await self._send(
            "POST",
            self.url(
                self._bucket_path() + "/o", [("uploadType", "multipart")], upload=True
            ),
            HeaderList([("content-type", f"multipart/related; boundary={boundary}")]),
            BytesProducer(document),
        )
        if response.status not in (200, 201):
            raise await self._error(response, {404: "NoSuchBucket"})
        response.body.discard()
        return upload_id

    async def _marker(self, key: str, upload_id: str) -> dict[str, Any]:
        """
        :return: the upload's marker resource.
        :raise S3Error: ``NoSuchUpload`` if there is no such upload of ``key``.
        """
        if not _valid_upload_id(upload_id):
            raise S3Error("NoSuchUpload")
        marker = await self._metadata(_MARKERS + upload_id)
        metadata = (marker or {}).get("metadata") or {}
        if marker is None or metadata.get(_KEY_METADATA) != key:
            raise S3Error("NoSuchUpload")
        return marker

    @deferred
    async def upload_part(
        self, write: ObjectWrite, upload_id: str, part_number: int
    ) -> ObjectResponse:
        """
        Store a part as an object of its own; its ETag is its MD5.

        :raise S3Error: ``MissingContentLength`` for a body of unknown
            length; ``NoSuchUpload``.
        """
        if not isinstance(write.body.length, int):
            raise S3Error("MissingContentLength")
        if not 1 <= part_number <= MAX_PARTS:
            raise S3Error("InvalidArgument", "Part number must be from 1 to 10000.")
        await self._marker(write.key, upload_id)
        resource = await self._store(
            _part_name(upload_id, part_number), {}, (), write.body
        )
        return ObjectResponse(200, HeaderList([("etag", etag_of(resource))]))

    async def _scan(
        self, prefix: str, start_offset: str | None = None
    ) -> list[dict[str, Any]]:
        """
        :return: every object under ``prefix`` (from ``start_offset``), in
            name order, over at most L{MAX_SCAN_PAGES} pages.
        """
        found: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(MAX_SCAN_PAGES):
            query = [("prefix", prefix), ("projection", "noAcl")]
            if start_offset:
                query.append(("startOffset", start_offset))
            if token:
                query.append(("pageToken", token))
            response = await self._send(
                "GET", self.url(self._bucket_path() + "/o", query)
            )
            if response.status != 200:
                raise await self._error(response, {404: "NoSuchBucket"})
            document = await self._document(response)
            found.extend(_page_items(document))
            next_token = document.get("nextPageToken")
            if not isinstance(next_token, str) or not next_token:
                return found
            token = next_token
        raise S3Error("ServiceUnavailable", "Too many objects to scan.")

    async def _parts(self, upload_id: str) -> dict[int, dict[str, Any]]:
        """
        :return: an upload's parts by number.
        """
        prefix = f"{_PARTS}{upload_id}/"
        parts = {}
        for item in await self._scan(prefix):
            suffix = item["name"][len(prefix) :]
            if len(suffix) == 5 and suffix.isdigit():
                parts[int(suffix)] = item
        return parts

    @deferred
    async def list_parts(
        self, key: str, upload_id: str, max_parts: int, part_number_marker: int
    ) -> PartsPage:
        await self._marker(key, upload_id)
        parts = await self._parts(upload_id)
        numbers = sorted(n for n in parts if n > part_number_marker)
        shown = numbers[:max_parts]
        truncated = len(numbers) > len(shown)
        return PartsPage(
            tuple(
                PartInfo(n, etag_of(parts[n]), _size(parts[n]), _updated(parts[n]))
                for n in shown
            ),
            truncated,
            shown[-1] if truncated and shown else None,
        )

    async def _compose(
        self,
        destination: str,
        sources: Sequence[str],
        resource: Mapping[str, Any],
        query: Sequence[tuple[str, str]],
    ) -> dict[str, Any]:
        response = await self._send_json(
            "POST",
            self.url(self._object_path(destination) + "/compose", query),
            {
                "sourceObjects": [{"name": name} for name in sources],
                "destination": dict(resource),
            },
        )
        if response.status != 200:
            raise await self._error(response, {404: "InvalidPart"})
        return await self._document(response)

    @deferred
    async def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart],
        headers: HeaderList,
    ) -> CopyResult:
        """
        Compose the parts into the object (in rounds of L{COMPOSE_LIMIT}),
        with the upload's headers and the multipart ETag, then delete the
        parts and the marker.
        """
        marker = await self._marker(key, upload_id)
        if not parts:
            raise S3Error("MalformedXML")
        numbers = [p.part_number for p in parts]
        if numbers != sorted(set(numbers)):
            raise S3Error("InvalidPartOrder")
        stored = await self._parts(upload_id)
        for index, part in enumerate(parts):
            found = stored.get(part.part_number)
            if found is None or not _same_etag(etag_of(found), part.etag):
                raise S3Error("InvalidPart")
            if index < len(parts) - 1 and _size(found) < MIN_PART_SIZE:
                raise S3Error("EntityTooSmall")
        query = await self._write_preconditions(key, headers)
        try:
            resource = json.loads(marker["metadata"].get(_RESOURCE_METADATA, "{}"))
        except ValueError:
            resource = {}
        etag = _multipart_etag(etag_of(stored[n]) for n in numbers)
        resource.setdefault("metadata", {})[ETAG_METADATA] = etag
        sources = [_part_name(upload_id, n) for n in numbers]
        intermediates: list[str] = []
        round_number = 0
        while len(sources) > COMPOSE_LIMIT:
            round_number += 1
            combined = []
            for start in range(0, len(sources), COMPOSE_LIMIT):
                name = f"{_PARTS}{upload_id}/c{round_number}-{start // COMPOSE_LIMIT}"
                await self._compose(
                    name, sources[start : start + COMPOSE_LIMIT], {}, ()
                )
                combined.append(name)
            intermediates.extend(combined)
            sources = combined
        result = await self._compose(key, sources, resource, query)
        await self._clean_up(
            [*(_part_name(upload_id, n) for n in stored), *intermediates],
            _MARKERS + upload_id,
        )
        return CopyResult(etag_of(result), _updated(result))

    async def _clean_up(self, names: Sequence[str], marker: str) -> None:
        """
        Delete an upload's part objects, then its marker; failures are
        logged (leftover parts are never listed).
        """
        semaphore = DeferredSemaphore(DELETE_CONCURRENCY)
        deletions = [
            semaphore.run(lambda n: Deferred.fromCoroutine(self._delete(n)), name)
            for name in names
        ]
        results = await DeferredList(deletions, consumeErrors=True)
        for ok, failure in results:
            if not ok:
                self.log.failure(
                    "could not delete a part in bucket {bucket}",
                    failure,
                    bucket=self.bucket.name,
                )
        try:
            await self._delete(marker)
        except S3Error:
            self.log.failure(
                "could not delete an upload marker in bucket {bucket}",
                bucket=self.bucket.name,
            )

    @deferred
    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """
        Delete an upload's parts and marker.
        """
        await self._marker(key, upload_id)
        parts = await self._scan(f"{_PARTS}{upload_id}/")
        await self._clean_up([item["name"] for item in parts], _MARKERS + upload_id)

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
        List the uploads' markers (every marker is read: this is meant for
        buckets with few uploads in progress at a time).
        """
        entries = []
        for item in await self._scan(_MARKERS):
            metadata = item.get("metadata") or {}
            key = metadata.get(_KEY_METADATA)
            upload_id = item["name"][len(_MARKERS) :]
            if isinstance(key, str) and key.startswith(prefix):
                created = item.get("timeCreated")
                initiated = (
                    parse_iso8601(created)
                    if isinstance(created, str)
                    else _updated(item)
                )
                entries.append(UploadInfo(key, upload_id, initiated))
        entries.sort(key=lambda u: (u.key, u.upload_id))
        if key_marker:
            entries = [
                u
                for u in entries
                if u.key > key_marker
                or (
                    u.key == key_marker
                    and upload_id_marker is not None
                    and u.upload_id > upload_id_marker
                )
            ]
        uploads: list[UploadInfo] = []
        common: list[str] = []
        truncated = False
        # The page's last entry, where the next page starts: an upload's key
        # and id, or a common prefix (a key marker after all of it).
        last: tuple[str, str | None] | None = None
        for upload in entries:
            at = upload.key.find(delimiter, len(prefix)) if delimiter else -1
            rolled = (
                upload.key[: at + len(delimiter)] if delimiter and at >= 0 else None
            )
            if rolled is not None and (
                rolled == key_marker or (common and common[-1] == rolled)
            ):
                continue
            if len(uploads) + len(common) >= max_uploads:
                truncated = True
                break
            if rolled is not None:
                common.append(rolled)
                last = (rolled, None)
            else:
                uploads.append(upload)
                last = (upload.key, upload.upload_id)
        if not truncated:
            last = None
        return UploadsPage(
            tuple(uploads),
            tuple(common),
            truncated,
            last[0] if last else None,
            last[1] if last else None,
        )

    # --- copies ---------------------------------------------------------------

    def can_copy(self, source: CopySource) -> bool:
        """
        Copies are made with ``rewrite`` from a bucket on the same GCS
        service, reached with the same credentials, and only of whole
        objects (``rewrite`` copies no range).
        """
        return source.range is None and on_same_service(
            _service, self.bucket, source.bucket, "bucket_name"
        )

    async def _source(self, source: CopySource) -> tuple[str, dict[str, Any]]:
        """
        Check that ``source`` can be copied here and that its conditions
        hold.

        :return: the source bucket's name and the source's resource.
        :raise S3Error: ``NotImplemented`` for a source L{can_copy} refuses;
            ``NoSuchKey``; ``PreconditionFailed``.
        """
        if not self.can_copy(source):
            raise cannot_copy()
        bucket_name = source.bucket.option("bucket_name") or ""
        path = "/b/" + uri_encode(bucket_name, keep_slash=False)
        path += "/o/" + uri_encode(source.key, keep_slash=False)
        query = [("projection", "noAcl")]
        generation = _generation(source.version_id)
        if generation is not None:
            query.append(("generation", generation))
        response = await self._send("GET", self.url(path, query))
        if response.status == 404:
            response.body.discard()
            raise S3Error("NoSuchVersion" if generation else "NoSuchKey")
        if response.status != 200:
            raise await self._error(response)
        resource = await self._document(response)
        try:
            check_read(
                source_read(source), etag_of(resource), _updated(resource), self._now()
            )
        except NotModified:
            raise S3Error("PreconditionFailed") from None
        return bucket_name, resource

    async def _rewrite(
        self,
        source_bucket: str,
        source: Mapping[str, Any],
        destination: str,
        resource: Mapping[str, Any] | None,
        query: Sequence[tuple[str, str]],
    ) -> dict[str, Any]:
        """
        Copy an object with ``rewrite``, step by step.

        :return: the new object's resource.
        """
        path = (
            "/b/"
            + uri_encode(source_bucket, keep_slash=False)
            + "/o/"
            + uri_encode(str(source["name"]), keep_slash=False)
            + "/rewriteTo"
            + self._object_path(destination)
        )
        base = [*query]
        if "generation" in source:
            base.append(("ifSourceGenerationMatch", str(source["generation"])))
        token: str | None = None
        for _ in range(MAX_REWRITE_STEPS):
            step = base + ([("rewriteToken", token)] if token else [])
            response = await self._send_json("POST", self.url(path, step), resource)
            if response.status != 200:
                raise await self._error(response)
            document = await self._document(response)
            if document.get("done") and isinstance(document.get("resource"), dict):
                result: dict[str, Any] = document["resource"]
                return result
            next_token = document.get("rewriteToken")
            if not isinstance(next_token, str) or not next_token:
                break
            token = next_token
        raise S3Error("ServiceUnavailable", "The bucket's backend store failed.")

    @deferred
    async def copy_object(
        self, source: CopySource, key: str, headers: HeaderList
    ) -> CopyResult:
        """
        Copy with ``rewrite`` when the source is on the same GCS service
        with the same credentials; metadata is copied, or replaced by the
        request's (``x-amz-metadata-directive: REPLACE``).

        :raise S3Error: ``NotImplemented`` for a source L{can_copy} refuses.
        """
        bucket_name, resource = await self._source(source)
        directive = (headers.get("x-amz-metadata-directive") or "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise S3Error("InvalidArgument", "Unknown metadata directive.")
        query = await self._write_preconditions(key, headers)
        replacement: dict[str, Any] | None = None
        if directive == "REPLACE":
            replacement = object_resource(headers)
            replacement.setdefault("metadata", {})
        result = await self._rewrite(bucket_name, resource, key, replacement, query)
        return CopyResult(etag_of(result), _updated(result))

    @deferred
    async def upload_part_copy(
        self, source: CopySource, key: str, upload_id: str, part_number: int
    ) -> CopyResult:
        """
        Copy a whole object into a part with ``rewrite``.

        :raise S3Error: ``NotImplemented`` for a source L{can_copy} refuses
            (a range, or a source elsewhere).
        """
        bucket_name, resource = await self._source(source)
        await self._marker(key, upload_id)
        result = await self._rewrite(
            bucket_name, resource, _part_name(upload_id, part_number), {}, ()
        )
        return CopyResult(etag_of(result), _updated(result))

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
