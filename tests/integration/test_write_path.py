# mypy: disable-error-code="no-untyped-call"
"""
The write path through the daemon, checked on the backends themselves:
what a write carries arrives (content headers, metadata, tagging, storage
class, checksums, conditions), copies within and across services, deletes
one by one and in batches (authorized key by key), multipart uploads
(answers that name only the virtual bucket and key, listings through a
backend prefix, abort, a wrong part, an upload that outlives a daemon
restart), buckets that a pattern stands for, presigned writes, and size
limits.

The stores are SeaweedFS (strict), moto and a local directory (C{file}
buckets). Every outcome is checked with boto3 talking to the backend itself,
or on disk, not only through the daemon.

The helpers at the top (L{Place}, L{WRITER}, L{wait_until}, ...) are shared
with the other C{test_write_*} modules.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import http.client
import socket
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from unittest import mock
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
from attrs import define
from botocore.auth import HmacV1QueryAuth  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from twisted.trial.unittest import SynchronousTestCase

from multistore.auth.canonical import UNSIGNED_PAYLOAD
from multistore.auth.signing import sign_request
from multistore.headers import HeaderList
from tests.integration.emulators import AzureContainer, GcsBucket
from tests.integration.servers import (
    LOCALHOST,
    Daemon,
    DaemonFactory,
    S3Server,
    error_code,
    http_status,
    s3_client,
    unique_bucket_name,
)
from tests.integration.test_read_path import (
    ODD_KEYS,
    REGION,
    Capture,
    check_error,
    object_path,
    send_raw,
)

MiB: Final = 1024 * 1024

#: Every action a credential can be granted.
ALL_ACTIONS: Final = (
    "get_object",
    "head_object",
    "list_bucket",
    "put_object",
    "create_multipart_upload",
    "upload_part",
    "complete_multipart_upload",
    "abort_multipart_upload",
    "delete_object",
    "create_bucket",
    "delete_bucket",
)

#: The writer's static credential: every action on every bucket.
WRITER: Final = ("AKWRITEPATH000000001", "write-path-writer-secret")

#: A credential that may do everything, but only under C{mine/} of C{sw}.
SCOPED: Final = ("AKWRITESCOPED0000001", "write-path-scoped-secret")

#: A credential that may read and write C{sw}, and write (not read) C{mo}.
COPIER: Final = ("AKWRITECOPIER0000001", "write-path-copier-secret")

#: Seconds to wait for something to happen (or stop happening) on a backend.
SETTLE: Final = 10.0


# --- shared helpers ------------------------------------------------------------


def wait_until(check: Callable[[], bool], what: str, timeout: float = SETTLE) -> None:
    """
    Poll ``check`` every 50 ms until it is true.

    :raise AssertionError: if ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"no {what} within {timeout}s")
        time.sleep(0.05)


def pattern(size: int, seed: int = 0) -> bytes:
    """
    :return: ``size`` pseudo-random bytes, different for each ``seed``, so
        bytes lost, doubled, moved or taken from another object show.
    """
    return hashlib.shake_256(b"multistore write path %d" % seed).digest(size)


def md5_b64(data: bytes) -> str:
    """
    :return: the C{Content-MD5} of ``data``.
    """
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def credential(
    keys: tuple[str, str], scopes: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """
    :return: a C{[[credentials]]} entry.
    """
    return {
        "access_key_id": keys[0],
        "secret_access_key": keys[1],
        "allowed_scopes": list(scopes),
    }


def writer_credential(keys: tuple[str, str] = WRITER) -> dict[str, Any]:
    """
    :return: a credential with every action on every bucket.
    """
    return credential(keys, [{"bucket": "*", "actions": list(ALL_ACTIONS)}])


@define
class Place:
    """
    A virtual bucket and where its objects really are: a bucket (under a
    prefix) of an S3 service, a directory, or an Azure container or GCS
    bucket (under a prefix).

    :ivar bucket: the virtual bucket.
    :ivar server: the S3 service, or None for a directory.
    :ivar backend_bucket: the real bucket, for an S3 service.
    :ivar prefix: the C{backend_prefix} (empty for none).
    :ivar root: the directory, for a C{file} bucket.
    :ivar cloud: the container or bucket, for an Azure or GCS bucket.
    """

    bucket: str
    server: S3Server | None = None
    backend_bucket: str = ""
    prefix: str = ""
    root: Path | None = None
    cloud: AzureContainer | GcsBucket | None = None
    _client: Any = None

    @classmethod
    def on_s3(cls, bucket: str, server: S3Server, prefix: str = "") -> Place:
        """
        A fresh real bucket on ``server``.
        """
        real = server.create_bucket(unique_bucket_name("wp"))
        return cls(bucket, server, real, prefix)

    @classmethod
    def on_disk(cls, bucket: str, root: Path) -> Place:
        """
        A C{file} bucket over ``root`` (created if missing).
        """
        root.mkdir(parents=True, exist_ok=True)
        return cls(bucket, root=root)

    @classmethod
    def on_cloud(
        cls, bucket: str, cloud: AzureContainer | GcsBucket, prefix: str = ""
    ) -> Place:
        """
        A bucket in an Azure container or a GCS bucket.
        """
        return cls(bucket, backend_bucket=cloud.name, prefix=prefix, cloud=cloud)

    @property
    def is_file(self) -> bool:
        """
        Whether the objects are files.
        """
        return self.root is not None

    def config(self, **extra: Any) -> dict[str, Any]:
        """
        :return: the C{[[buckets]]} entry.
        """
        if self.root is not None:
            entry: dict[str, Any] = {
                "name": self.bucket,
                "backend_type": "file",
                "backend_options": {"root": str(self.root)},
            }
        elif self.cloud is not None:
            entry = {
                "name": self.bucket,
                "backend_type": self.cloud.backend_type,
                "backend_options": self.cloud.backend_options(),
            }
            if self.prefix:
                entry["backend_prefix"] = self.prefix
        else:
            assert self.server is not None
            entry = {
                "name": self.bucket,
                "backend_type": "s3",
                "backend_options": self.server.backend_options(self.backend_bucket),
            }
            if self.prefix:
                entry["backend_prefix"] = self.prefix
        entry.update(extra)
        return entry

    def backend(self) -> Any:
        """
        :return: a boto3 client of the real service (one per place: boto3
            clients are thread-safe, and slow to make).
        """
        assert self.server is not None
        if self._client is None:
            self._client = self.server.client()
        return self._client

    def backend_key(self, key: str) -> str:
        """
        :return: where virtual ``key`` is in the real bucket.
        """
        return f"{self.prefix}/{key}" if self.prefix else key

    def path(self, key: str) -> Path:
        """
        :return: the file of virtual ``key`` in a directory bucket.
        """
        assert self.root is not None
        return self.root / key

    def stored(self, key: str) -> bytes | None:
        """
        :return: the bytes the store itself holds for ``key``, or None if it
            has no such object.
        """
        if self.root is not None:
            path = self.path(key)
            return path.read_bytes() if path.is_file() else None
        if self.cloud is not None:
            blob = self.cloud.get(self.backend_key(key))
            return None if blob is None else blob.data
        try:
            answer = self.backend().get_object(
                Bucket=self.backend_bucket, Key=self.backend_key(key)
            )
        except ClientError as error:
            if http_status(error) == 404:
                return None
            raise
        return bytes(answer["Body"].read())

    def parts(self, key: str) -> int:
        """
        :return: how many parts the store itself says ``key`` was assembled
            from (0 if it was written in one piece).
        """
        if self.cloud is not None:
            blob = self.cloud.get(self.backend_key(key))
            assert blob is not None, key
            return blob.parts
        etag = str(self.head(key)["ETag"]).strip('"')
        return int(etag.rpartition("-")[2]) if "-" in etag else 0

    def metadata(self, key: str) -> dict[str, str]:
        """
        :return: the user metadata the store itself holds for ``key``.
        """
        if self.cloud is not None:
            return self.cloud.metadata(self.backend_key(key))
        return dict(self.head(key)["Metadata"])

    def head(self, key: str) -> dict[str, Any]:
        """
        :return: the real service's HeadObject of ``key`` (checksums too).
        """
        return dict(
            self.backend().head_object(
                Bucket=self.backend_bucket,
                Key=self.backend_key(key),
                ChecksumMode="ENABLED",
            )
        )

    def put(self, key: str, data: bytes, **extra: Any) -> None:
        """
        Store an object directly, without the daemon.
        """
        if self.root is not None:
            path = self.path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        if self.cloud is not None:
            self.cloud.put(
                self.backend_key(key), data, content_type=extra.get("ContentType")
            )
            return
        self.backend().put_object(
            Bucket=self.backend_bucket, Key=self.backend_key(key), Body=data, **extra
        )

    def stored_keys(self, prefix: str = "") -> list[str]:
        """
        :return: the virtual keys the store itself holds under ``prefix``,
            sorted.
        """
        if self.root is not None:
            found = []
            for path in self.root.rglob("*"):
                relative = path.relative_to(self.root).as_posix()
                if relative.split("/")[0] == ".multistore" or not path.is_file():
                    continue
                if relative.startswith(prefix):
                    found.append(relative)
            return sorted(found)
        head = f"{self.prefix}/" if self.prefix else ""
        if self.cloud is not None:
            return [n[len(head) :] for n in self.cloud.names(head + prefix)]
        keys = []
        pages = (
            self.backend()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.backend_bucket, Prefix=head + prefix)
        )
        for page in pages:
            keys.extend(o["Key"][len(head) :] for o in page.get("Contents", []))
        return sorted(keys)

    def uploads(self) -> list[tuple[str, str]]:
        """
        :return: the multipart uploads the store itself has in progress, as
            ``(virtual key, upload id)``; a directory's uploads are listed
            by id only (key C{"?"}).
        """
        if self.root is not None:
            uploads = self.root / ".multistore" / "uploads"
            if not uploads.is_dir():
                return []
            return [("?", p.name) for p in uploads.iterdir()]
        answer = self.backend().list_multipart_uploads(Bucket=self.backend_bucket)
        head = f"{self.prefix}/" if self.prefix else ""
        return [
            (u["Key"][len(head) :], u["UploadId"])
            for u in answer.get("Uploads", [])
            if u["Key"].startswith(head)
        ]

    def temp_files(self) -> list[str]:
        """
        :return: what a directory bucket has in its temporary directory.
        """
        assert self.root is not None
        tmp = self.root / ".multistore" / "tmp"
        return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []

    def secrets(self) -> list[str]:
        """
        :return: strings that must never reach a client: the real bucket and
            the backend prefix.
        """
        return [s for s in (self.backend_bucket, self.prefix) if s]


def boto3_error(
    case: SynchronousTestCase,
    call: Callable[..., Any],
    status: int,
    code: str,
    **params: Any,
) -> ClientError:
    """
    Check that ``call(**params)`` fails with the S3 error ``code`` and
    ``status``.

    :return: the error.
    """
    with case.assertRaises(ClientError) as raised:
        call(**params)
    error = raised.exception
    case.assertEqual((http_status(error), error_code(error)), (status, code))
    return error


# --- the module's daemon ---------------------------------------------------------


@define
class WriteWorld:
    """
    The module's daemon and its buckets.

    :ivar daemon: the daemon.
    :ivar places: the configured buckets, by virtual name: C{sw} (SeaweedFS,
        under a backend prefix), C{swplain} (another SeaweedFS bucket, no
        prefix), C{mo} (moto, under a prefix) and C{fi} (a directory).
    :ivar seaweedfs: the SeaweedFS service.
    :ivar team_bucket: the real bucket that C{team-*} buckets share, as
        prefixes C{tenants/NAME}.
    :ivar files_base: the directory under which C{files-*} buckets are
        directories.
    :ivar shared_root: the directory bucket that C{dirteam-*} buckets
        share, as prefixes C{tenants/NAME}.
    """

    daemon: Daemon
    places: dict[str, Place]
    seaweedfs: S3Server
    team_bucket: str
    files_base: Path
    shared_root: Path

    def client(self, keys: tuple[str, str] = WRITER, **config: Any) -> Any:
        """
        :return: a path-style boto3 client of the daemon.
        """
        return s3_client(self.daemon.url, *keys, **config)


@pytest.fixture(scope="module")
def write_world(
    module_multistore_daemon: DaemonFactory,
    seaweedfs: S3Server,
    moto_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> WriteWorld:
    """
    SeaweedFS, moto and a directory behind one daemon, with three
    credentials: L{WRITER}, L{SCOPED} and L{COPIER}.
    """
    tag = uuid4().hex[:8]
    base = tmp_path_factory.mktemp("write-path")
    places = {
        "sw": Place.on_s3("sw", seaweedfs, f"wp{tag}/virtual"),
        "swplain": Place.on_s3("swplain", seaweedfs),
        "mo": Place.on_s3("mo", moto_server, f"mo{tag}"),
        "fi": Place.on_disk("fi", base / "fi"),
    }
    team_bucket = seaweedfs.create_bucket(unique_bucket_name("tenants"))
    files_base = base / "pattern-files"
    files_base.mkdir()
    shared_root = base / "pattern-shared"
    shared_root.mkdir()
    config = {
        "buckets": [
            *(place.config() for place in places.values()),
            {
                "name": "team-*",
                "backend_type": "s3",
                "backend_prefix": "tenants/{bucket}",
                "backend_options": seaweedfs.backend_options(team_bucket),
            },
            {
                "name": "own-*",
                "backend_type": "s3",
                "backend_options": seaweedfs.backend_options("{bucket}"),
            },
            {
                "name": "files-*",
                "backend_type": "file",
                "backend_options": {"root": str(files_base / "{bucket}")},
            },
            {
                "name": "dirteam-*",
                "backend_type": "file",
                "backend_prefix": "tenants/{bucket}",
                "backend_options": {"root": str(shared_root)},
            },
        ],
        "credentials": [
            writer_credential(),
            credential(
                SCOPED,
                [{"bucket": "sw", "prefixes": ["mine/"], "actions": list(ALL_ACTIONS)}],
            ),
            credential(
                COPIER,
                [
                    {"bucket": "sw", "actions": ["put_object", "get_object"]},
                    {"bucket": "mo", "actions": ["put_object", "list_bucket"]},
                ],
            ),
        ],
    }
    return WriteWorld(
        module_multistore_daemon(config, https=True),
        places,
        seaweedfs,
        team_bucket,
        files_base,
        shared_root,
    )


class _WorldTests:
    """
    Mixed into test cases: gives each test C{self.world}, C{self.place}
    (the bucket named by C{place_name}), C{self.client} (the writer) and a
    fresh key prefix C{self.base}.
    """

    place_name = "sw"

    # Provided by SynchronousTestCase.
    assertEqual: Callable[..., None]
    assertIn: Callable[..., None]
    assertNotIn: Callable[..., None]
    assertIsNone: Callable[..., None]
    assertTrue: Callable[..., None]
    assertFalse: Callable[..., None]

    @pytest.fixture(autouse=True)
    def _world(self, write_world: WriteWorld) -> None:
        self.world = write_world
        self.place = write_world.places[self.place_name]
        self.client = write_world.client()
        self.base = f"t{uuid4().hex[:10]}/"

    def key(self, name: str) -> str:
        """
        :return: a key for this test only.
        """
        return self.base + name


# --- what a write carries ---------------------------------------------------------

#: Metadata with values that need care: spaces, separators, quotes, percent.
METADATA: Final = {
    "color": "blue",
    "two-words": "hello world",
    "separators": "a=b&c=d;e,f",
    "percent": "100%25 and 100%",
    "quoted": '"quoted" value',
    "under_score": "x_y",
}

#: Tags and the C{x-amz-tagging} that carries them.
TAGS: Final = [("empty", ""), ("project", "multistore"), ("spaced", "two words")]
TAGGING: Final = "project=multistore&spaced=two%20words&empty="

#: An C{Expires} header value.
EXPIRES: Final = datetime(2037, 10, 21, 7, 28, tzinfo=UTC)


class ObjectHeadersMixin(_WorldTests):
    """
    Everything a PutObject carries arrives at the store, over HTTP (signed
    payload) and HTTPS (C{aws-chunked} with a trailing checksum).
    """

    def _https_client(self) -> Any:
        return s3_client(
            self.world.daemon.https_url, *WRITER, verify=str(self.world.daemon.ca_path)
        )

    def test_content_headers_and_metadata(self) -> None:
        """
        Content-Type, Content-Encoding, Content-Disposition, Content-Language,
        Cache-Control, Expires and several C{x-amz-meta-*} with odd values
        are kept by the store, read back through the daemon and (S3) on the
        backend itself; C{aws-chunked} framing is not among the encodings
        kept.
        """
        data = b"\x1f\x8b" + pattern(4000, 1)
        for transport, client in (
            ("http", self.client),
            ("https", self._https_client()),
        ):
            key = self.key(f"headers-{transport}.gz")
            client.put_object(
                Bucket=self.place.bucket,
                Key=key,
                Body=data,
                ContentType="application/x-multistore; charset=binary",
                ContentEncoding="gzip",
                ContentDisposition='attachment; filename="report 1.gz"',
                ContentLanguage="fr-CA",
                CacheControl="max-age=3600, must-revalidate",
                Expires=EXPIRES,
                Metadata=METADATA,
            )
            self.assertEqual(self.place.stored(key), data, transport)
            answer = self.client.get_object(Bucket=self.place.bucket, Key=key)
            self.assertEqual(answer["Body"].read(), data)
            heads = [answer]
            if not self.place.is_file:
                heads.append(self.place.head(key))
            for head in heads:
                self.assertEqual(
                    (
                        head["ContentType"],
                        head["ContentEncoding"],
                        head["ContentDisposition"],
                        head["ContentLanguage"],
                        head["CacheControl"],
                        head["ExpiresString"],
                        head["Metadata"],
                    ),
                    (
                        "application/x-multistore; charset=binary",
                        "gzip",
                        'attachment; filename="report 1.gz"',
                        "fr-CA",
                        "max-age=3600, must-revalidate",
                        "Wed, 21 Oct 2037 07:28:00 GMT",
                        METADATA,
                    ),
                    transport,
                )

    def test_tagging(self) -> None:
        """
        C{x-amz-tagging} reaches the store: the backend's own
        GetObjectTagging lists the tags (a directory bucket counts them in
        C{x-amz-tagging-count}).
        """
        key = self.key("tagged")
        self.client.put_object(
            Bucket=self.place.bucket, Key=key, Body=b"tagged", Tagging=TAGGING
        )
        answer = self.client.get_object(Bucket=self.place.bucket, Key=key)
        self.assertEqual(answer.get("TagCount"), len(TAGS))
        if not self.place.is_file:
            tags = self.place.backend().get_object_tagging(
                Bucket=self.place.backend_bucket, Key=self.place.backend_key(key)
            )["TagSet"]
            self.assertEqual(sorted((t["Key"], t["Value"]) for t in tags), TAGS)

    def test_storage_class(self) -> None:
        """
        C{x-amz-storage-class} reaches the store and is reported back.
        """
        key = self.key("infrequent")
        self.client.put_object(
            Bucket=self.place.bucket,
            Key=key,
            Body=b"infrequent",
            StorageClass="STANDARD_IA",
        )
        head = self.client.head_object(Bucket=self.place.bucket, Key=key)
        self.assertEqual(head.get("StorageClass"), "STANDARD_IA")
        if not self.place.is_file:
            self.assertEqual(self.place.head(key).get("StorageClass"), "STANDARD_IA")

    def test_checksums(self) -> None:
        """
        boto3's C{ChecksumAlgorithm} uploads (SHA256, SHA1, CRC32) succeed
        over HTTP, where the checksum travels in a header that reaches the
        store (the backend reports the same value), and over HTTPS, where it
        is a trailer the daemon verifies.
        """
        data = pattern(70000, 2)
        expected = {
            "SHA256": hashlib.sha256(data).digest(),
            "SHA1": hashlib.sha1(data).digest(),
            "CRC32": zlib.crc32(data).to_bytes(4, "big"),
        }
        https = self._https_client()
        for algorithm, digest in expected.items():
            value = base64.b64encode(digest).decode("ascii")
            for transport, client in (("http", self.client), ("https", https)):
                key = self.key(f"checksum-{algorithm}-{transport}")
                answer = client.put_object(
                    Bucket=self.place.bucket,
                    Key=key,
                    Body=data,
                    ChecksumAlgorithm=algorithm,
                )
                self.assertEqual(self.place.stored(key), data, key)
                if transport == "http":
                    self.assertEqual(answer.get(f"Checksum{algorithm}"), value, key)
                    if not self.place.is_file:
                        self.assertEqual(
                            self.place.head(key).get(f"Checksum{algorithm}"), value
                        )

    def test_if_none_match(self) -> None:
        """
        C{If-None-Match: *} writes a new key, and refuses an existing one
        with 412 PreconditionFailed, leaving it unchanged.
        """
        key = self.key("create-only")
        self.client.put_object(
            Bucket=self.place.bucket, Key=key, Body=b"first", IfNoneMatch="*"
        )
        self.assertEqual(self.place.stored(key), b"first")
        boto3_error(
            self,
            lambda: self.client.put_object(
                Bucket=self.place.bucket, Key=key, Body=b"second", IfNoneMatch="*"
            ),
            412,
            "PreconditionFailed",
        )
        self.assertEqual(self.place.stored(key), b"first")

    def test_if_match(self) -> None:
        """
        C{If-Match} with another ETag is refused with 412 PreconditionFailed
        and the object stays; with the object's ETag the write goes through.
        """
        key = self.key("compare-and-swap")
        etag = self.client.put_object(Bucket=self.place.bucket, Key=key, Body=b"v1")[
            "ETag"
        ]
        boto3_error(
            self,
            lambda: self.client.put_object(
                Bucket=self.place.bucket,
                Key=key,
                Body=b"v2",
                IfMatch='"0123456789abcdef0123456789abcdef"',
            ),
            412,
            "PreconditionFailed",
        )
        self.assertEqual(self.place.stored(key), b"v1")
        self.client.put_object(
            Bucket=self.place.bucket, Key=key, Body=b"v3", IfMatch=etag
        )
        self.assertEqual(self.place.stored(key), b"v3")

    def test_odd_keys(self) -> None:
        """
        Keys that need encoding (spaces, C{%}, C{+}, C{&}, C{<}, unicode,
        ...) are written, copied (the copy source names them encoded),
        uploaded in parts and deleted in batches under exactly their own
        names in the store.
        """
        keys = [self.key(k) for k in (*ODD_KEYS, "xml <&'\">.txt")]
        for key in keys:
            self.client.put_object(Bucket=self.place.bucket, Key=key, Body=key.encode())
        self.assertEqual(self.place.stored_keys(self.base), sorted(keys))
        copies = []
        for key in keys:
            copy = key.replace(self.base, self.base + "copy/", 1)
            self.client.copy_object(
                Bucket=self.place.bucket,
                Key=copy,
                CopySource={"Bucket": self.place.bucket, "Key": key},
            )
            self.assertEqual(self.place.stored(copy), key.encode(), copy)
            copies.append(copy)
        multipart = self.key("parts/ü+%25 &.bin")
        upload = self.client.create_multipart_upload(
            Bucket=self.place.bucket, Key=multipart
        )["UploadId"]
        etag = self.client.upload_part(
            Bucket=self.place.bucket,
            Key=multipart,
            UploadId=upload,
            PartNumber=1,
            Body=b"one part",
        )["ETag"]
        self.client.complete_multipart_upload(
            Bucket=self.place.bucket,
            Key=multipart,
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        )
        self.assertEqual(self.place.stored(multipart), b"one part")
        answer = self.client.delete_objects(
            Bucket=self.place.bucket,
            Delete={"Objects": [{"Key": k} for k in [*keys, *copies, multipart]]},
        )
        self.assertNotIn("Errors", answer)
        self.assertEqual(
            sorted(d["Key"] for d in answer["Deleted"]),
            sorted([*keys, *copies, multipart]),
        )
        self.assertEqual(self.place.stored_keys(self.base), [])

    def test_empty_objects(self) -> None:
        """
        Empty objects, over HTTP and HTTPS (an C{aws-chunked} body with no
        payload), and a directory marker (C{dir/}) are stored empty.
        """
        https = self._https_client()
        for transport, client in (("http", self.client), ("https", https)):
            for name in (f"empty-{transport}", f"marker-{transport}/"):
                key = self.key(name)
                client.put_object(Bucket=self.place.bucket, Key=key, Body=b"")
                head = self.client.head_object(Bucket=self.place.bucket, Key=key)
                self.assertEqual(head["ContentLength"], 0, key)
                if not self.place.is_file:
                    self.assertEqual(self.place.stored(key), b"", key)
        if self.place.is_file:
            self.assertEqual(self.place.stored(self.key("empty-http")), b"")
            self.assertTrue(self.place.path(self.key("marker-https")).is_dir())

    def test_metadata_replaced_in_place(self) -> None:
        """
        A copy of an object onto itself with C{x-amz-metadata-directive:
        REPLACE} changes its metadata and type and keeps its bytes; without
        REPLACE it is 400 InvalidRequest.
        """
        key = self.key("in-place")
        self.client.put_object(
            Bucket=self.place.bucket,
            Key=key,
            Body=b"same bytes",
            ContentType="text/x-before",
            Metadata={"version": "1"},
        )
        source = {"Bucket": self.place.bucket, "Key": key}
        boto3_error(
            self,
            self.client.copy_object,
            400,
            "InvalidRequest",
            Bucket=self.place.bucket,
            Key=key,
            CopySource=source,
        )
        self.client.copy_object(
            Bucket=self.place.bucket,
            Key=key,
            CopySource=source,
            MetadataDirective="REPLACE",
            ContentType="text/x-after",
            Metadata={"version": "2"},
        )
        self.assertEqual(self.place.stored(key), b"same bytes")
        heads = [self.client.head_object(Bucket=self.place.bucket, Key=key)]
        if not self.place.is_file:
            heads.append(self.place.head(key))
        for head in heads:
            self.assertEqual(
                (head["ContentType"], head["Metadata"]),
                ("text/x-after", {"version": "2"}),
            )


class SeaweedFSObjectHeadersTests(ObjectHeadersMixin, SynchronousTestCase):
    """
    What a write carries, on SeaweedFS under a backend prefix.
    """

    place_name = "sw"


class MotoObjectHeadersTests(ObjectHeadersMixin, SynchronousTestCase):
    """
    What a write carries, on moto under a backend prefix.
    """

    place_name = "mo"


class FileObjectHeadersTests(ObjectHeadersMixin, SynchronousTestCase):
    """
    What a write carries, in a directory bucket.
    """

    place_name = "fi"

    def test_if_match_missing_key(self) -> None:
        """
        C{If-Match} on a key that does not exist is 404 NoSuchKey, as on S3,
        and creates nothing.
        """
        key = self.key("never-written")
        boto3_error(
            self,
            lambda: self.client.put_object(
                Bucket=self.place.bucket, Key=key, Body=b"x", IfMatch='"abc"'
            ),
            404,
            "NoSuchKey",
        )
        self.assertIsNone(self.place.stored(key))


# --- copies ---------------------------------------------------------------------


class CopyTests(_WorldTests, SynchronousTestCase):
    """
    CopyObject and UploadPartCopy, within a service and across services.
    """

    def _source(self, place: str, name: str, data: bytes) -> tuple[str, str]:
        """
        Write a source object through the daemon, with a content type and
        metadata.

        :return: its key and ETag.
        """
        key = self.key(name)
        etag = self.client.put_object(
            Bucket=place,
            Key=key,
            Body=data,
            ContentType="text/x-source",
            Metadata={"origin": place, "spaced": "a b"},
        )["ETag"]
        return key, etag

    def _check_copy(
        self,
        destination: Place,
        key: str,
        data: bytes,
        content_type: str,
        metadata: dict[str, str],
    ) -> None:
        """
        Check the copy's bytes in the store, and its type and metadata through
        the daemon and (S3) on the backend.
        """
        self.assertEqual(destination.stored(key), data, (destination.bucket, key))
        heads = [self.client.head_object(Bucket=destination.bucket, Key=key)]
        if not destination.is_file:
            heads.append(destination.head(key))
        for head in heads:
            self.assertEqual(
                (head["ContentType"], head["Metadata"]),
                (content_type, metadata),
                (destination.bucket, key),
            )

    def _copies(self, source: str, destination: str) -> None:
        data = pattern(300_000, 3)
        key, etag = self._source(source, f"from-{source}", data)
        place = self.world.places[destination]
        copied = self.key(f"{source}-to-{destination}-copied")
        answer = self.client.copy_object(
            Bucket=destination,
            Key=copied,
            CopySource={"Bucket": source, "Key": key},
        )
        self.assertEqual(answer["CopyObjectResult"]["ETag"], etag)
        self._check_copy(
            place, copied, data, "text/x-source", {"origin": source, "spaced": "a b"}
        )
        replaced = self.key(f"{source}-to-{destination}-replaced")
        self.client.copy_object(
            Bucket=destination,
            Key=replaced,
            CopySource={"Bucket": source, "Key": key},
            MetadataDirective="REPLACE",
            ContentType="application/x-replaced",
            Metadata={"replaced": "yes"},
        )
        self._check_copy(
            place, replaced, data, "application/x-replaced", {"replaced": "yes"}
        )

    def test_within_seaweedfs(self) -> None:
        """
        Copies between keys of one SeaweedFS bucket and between two
        SeaweedFS buckets (server-side) keep the bytes, and with
        C{x-amz-metadata-directive} COPY the type and metadata; with REPLACE
        they take the request's.
        """
        self._copies("sw", "sw")
        self._copies("swplain", "sw")

    def test_across_services(self) -> None:
        """
        Copies from SeaweedFS to moto, moto to a directory and a directory
        to SeaweedFS (streamed through the daemon) do the same.
        """
        for source, destination in (("sw", "mo"), ("mo", "fi"), ("fi", "sw")):
            self._copies(source, destination)

    def test_copy_source_conditions(self) -> None:
        """
        C{x-amz-copy-source-if-match} with another ETag,
        C{x-amz-copy-source-if-none-match} with the source's, and
        C{x-amz-copy-source-if-unmodified-since} before it was written each
        fail with 412 PreconditionFailed and write nothing, within a service
        and across; with C{if-match} the source's ETag the copy is made.
        """
        for source, destination in (("sw", "sw"), ("mo", "fi"), ("fi", "sw")):
            key, etag = self._source(source, f"conditional-{source}", b"conditional")
            target = self.key(f"conditional-{source}-to-{destination}")
            for condition in (
                {"CopySourceIfMatch": '"0123456789abcdef0123456789abcdef"'},
                {"CopySourceIfNoneMatch": etag},
                {"CopySourceIfUnmodifiedSince": datetime(2001, 1, 1, tzinfo=UTC)},
            ):
                boto3_error(
                    self,
                    self.client.copy_object,
                    412,
                    "PreconditionFailed",
                    Bucket=destination,
                    Key=target,
                    CopySource={"Bucket": source, "Key": key},
                    **condition,
                )
                self.assertIsNone(
                    self.world.places[destination].stored(target), condition
                )
            self.client.copy_object(
                Bucket=destination,
                Key=target,
                CopySource={"Bucket": source, "Key": key},
                CopySourceIfMatch=etag,
            )
            self.assertEqual(
                self.world.places[destination].stored(target), b"conditional"
            )

    def test_source_is_authorized_as_a_read(self) -> None:
        """
        A credential that may write the destination but not read the source
        gets 403 AccessDenied and no copy; the same credential may copy from
        a bucket it reads.
        """
        copier = self.world.client(COPIER)
        key, _ = self._source("mo", "unreadable", b"secret")
        target = self.key("stolen")
        boto3_error(
            self,
            lambda: copier.copy_object(
                Bucket="sw", Key=target, CopySource={"Bucket": "mo", "Key": key}
            ),
            403,
            "AccessDenied",
        )
        self.assertIsNone(self.world.places["sw"].stored(target))
        readable, _ = self._source("sw", "readable", b"shared")
        copier.copy_object(
            Bucket="mo", Key=target, CopySource={"Bucket": "sw", "Key": readable}
        )
        self.assertEqual(self.world.places["mo"].stored(target), b"shared")

    def test_upload_part_copy_ranges(self) -> None:
        """
        UploadPartCopy with C{x-amz-copy-source-range}: into SeaweedFS from
        moto (streamed) and from SeaweedFS (server-side); into a directory
        from SeaweedFS and moto; the completed objects hold exactly the
        ranges.
        """
        on_moto = pattern(6 * MiB, 4)
        on_seaweedfs = pattern(6 * MiB, 5)
        moto_key, _ = self._source("mo", "moto-source", on_moto)
        seaweedfs_key, _ = self._source("sw", "seaweedfs-source", on_seaweedfs)
        plans = {
            "sw": [
                ("mo", moto_key, "bytes=0-5242879", on_moto[: 5 * MiB]),
                ("sw", seaweedfs_key, "bytes=100-1099", on_seaweedfs[100:1100]),
            ],
            "fi": [
                ("sw", seaweedfs_key, "bytes=1048576-6291455", on_seaweedfs[MiB:]),
                ("mo", moto_key, "bytes=1000-1999", on_moto[1000:2000]),
            ],
        }
        for destination, plan in plans.items():
            target = self.key(f"assembled-{destination}")
            upload = self.client.create_multipart_upload(
                Bucket=destination, Key=target
            )["UploadId"]
            parts = []
            for number, (source, key, copy_range, _) in enumerate(plan, start=1):
                answer = self.client.upload_part_copy(
                    Bucket=destination,
                    Key=target,
                    UploadId=upload,
                    PartNumber=number,
                    CopySource={"Bucket": source, "Key": key},
                    CopySourceRange=copy_range,
                )
                parts.append(
                    {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}
                )
            self.client.complete_multipart_upload(
                Bucket=destination,
                Key=target,
                UploadId=upload,
                MultipartUpload={"Parts": parts},
            )
            expected = b"".join(content for *_, content in plan)
            self.assertEqual(
                self.world.places[destination].stored(target), expected, destination
            )


# --- deletes --------------------------------------------------------------------


class DeleteMixin(_WorldTests):
    """
    DeleteObject and DeleteObjects.
    """

    def test_delete_object(self) -> None:
        """
        DeleteObject removes the object from the store (204); deleting a key
        that does not exist is 204 too, as on S3.
        """
        key = self.key("doomed")
        self.client.put_object(Bucket=self.place.bucket, Key=key, Body=b"doomed")
        self.assertEqual(self.place.stored(key), b"doomed")
        answer = self.client.delete_object(Bucket=self.place.bucket, Key=key)
        self.assertEqual(answer["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertIsNone(self.place.stored(key))
        again = self.client.delete_object(Bucket=self.place.bucket, Key=key)
        self.assertEqual(again["ResponseMetadata"]["HTTPStatusCode"], 204)

    def test_delete_objects_thousand_quiet(self) -> None:
        """
        DeleteObjects of 1000 keys (the most S3 takes) with C{Quiet} answers
        no entries and no errors, and the store holds none of them after;
        a key next to them stays.
        """
        keys = [self.key(f"many/{n:04d}") for n in range(1000)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: self.place.put(k, k.encode()), keys))
        self.place.put(self.key("survivor"), b"stays")
        self.assertEqual(self.place.stored_keys(self.key("many/")), keys)
        answer = self.client.delete_objects(
            Bucket=self.place.bucket,
            Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
        )
        self.assertNotIn("Deleted", answer)
        self.assertNotIn("Errors", answer)
        self.assertEqual(self.place.stored_keys(self.key("many/")), [])
        self.assertEqual(self.place.stored(self.key("survivor")), b"stays")

    def test_delete_objects_verbose(self) -> None:
        """
        Without C{Quiet}, DeleteObjects lists every key as deleted, those
        that did not exist too.
        """
        keys = [self.key("a"), self.key("b c+d"), self.key("missing")]
        for key in keys[:2]:
            self.place.put(key, b"x")
        answer = self.client.delete_objects(
            Bucket=self.place.bucket, Delete={"Objects": [{"Key": k} for k in keys]}
        )
        self.assertEqual(sorted(d["Key"] for d in answer["Deleted"]), sorted(keys))
        self.assertNotIn("Errors", answer)
        self.assertEqual(self.place.stored_keys(self.base), [])

    def test_delete_objects_too_many(self) -> None:
        """
        DeleteObjects of 1001 keys is 400 MalformedXML, and deletes nothing.
        """
        key = self.key("kept")
        self.place.put(key, b"kept")
        objects = [{"Key": key}] + [{"Key": self.key(f"x{n}")} for n in range(1000)]
        boto3_error(
            self,
            lambda: self.client.delete_objects(
                Bucket=self.place.bucket, Delete={"Objects": objects, "Quiet": True}
            ),
            400,
            "MalformedXML",
        )
        self.assertEqual(self.place.stored(key), b"kept")


class SeaweedFSDeleteTests(DeleteMixin, SynchronousTestCase):
    """
    Deletes on SeaweedFS under a backend prefix.
    """

    place_name = "sw"

    def test_per_key_authorization(self) -> None:
        """
        A credential limited to C{mine/} deletes its keys in a DeleteObjects
        and gets AccessDenied for each other key, which stays in the store.
        """
        scoped = self.world.client(SCOPED)
        mine, theirs = f"mine/{self.base}a", f"{self.base}theirs"
        other = f"mine-not/{self.base}b"
        for key in (mine, theirs, other):
            self.place.put(key, b"x")
        answer = scoped.delete_objects(
            Bucket=self.place.bucket,
            Delete={
                "Objects": [
                    {"Key": mine},
                    {"Key": theirs},
                    {"Key": other},
                    {"Key": f"mine/{self.base}missing"},
                ]
            },
        )
        self.assertEqual(
            sorted(d["Key"] for d in answer["Deleted"]),
            [f"mine/{self.base}a", f"mine/{self.base}missing"],
        )
        self.assertEqual(
            sorted((e["Key"], e["Code"]) for e in answer["Errors"]),
            [(other, "AccessDenied"), (theirs, "AccessDenied")],
        )
        self.assertIsNone(self.place.stored(mine))
        self.assertEqual(self.place.stored(theirs), b"x")
        self.assertEqual(self.place.stored(other), b"x")


class MotoDeleteTests(DeleteMixin, SynchronousTestCase):
    """
    Deletes on moto under a backend prefix.
    """

    place_name = "mo"


class FileDeleteTests(DeleteMixin, SynchronousTestCase):
    """
    Deletes in a directory bucket.
    """

    place_name = "fi"


# --- multipart uploads -------------------------------------------------------------


def _part_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


class MultipartMixin(_WorldTests):
    """
    Multipart uploads through a backend prefix.
    """

    def assert_virtual(self, capture: Capture) -> None:
        """
        Check that no response captured names the real bucket or the backend
        prefix.
        """
        self.assertTrue(capture.responses)
        for status, headers, body in capture.responses:
            text = body.decode("utf-8", "replace") + repr(headers)
            for secret in self.place.secrets():
                self.assertNotIn(secret, text, f"leaked in a {status} response")

    def test_upload_answers_name_virtual_bucket(self) -> None:
        """
        CreateMultipartUpload, ListParts, ListMultipartUploads and
        CompleteMultipartUpload answer with the virtual bucket and key
        (Location too), never the real bucket or the backend prefix; the
        object in the store is the parts in order.
        """
        capture = Capture()
        client = capture.attach(self.world.client())
        key = self.key("assembled object.bin")
        created = client.create_multipart_upload(
            Bucket=self.place.bucket, Key=key, Metadata={"parts": "two"}
        )
        self.assertEqual((created["Bucket"], created["Key"]), (self.place.bucket, key))
        upload = created["UploadId"]
        first, second = pattern(5 * MiB, 6), pattern(1234, 7)
        etags = []
        for number, data in enumerate((first, second), start=1):
            answer = client.upload_part(
                Bucket=self.place.bucket,
                Key=key,
                UploadId=upload,
                PartNumber=number,
                Body=data,
            )
            self.assertEqual(answer["ETag"], _part_etag(data))
            etags.append(answer["ETag"])
        parts = client.list_parts(Bucket=self.place.bucket, Key=key, UploadId=upload)
        self.assertEqual((parts["Bucket"], parts["Key"]), (self.place.bucket, key))
        self.assertEqual(
            [(p["PartNumber"], p["Size"], p["ETag"]) for p in parts["Parts"]],
            [(1, len(first), etags[0]), (2, len(second), etags[1])],
        )
        uploads = client.list_multipart_uploads(Bucket=self.place.bucket)
        self.assertEqual(uploads["Bucket"], self.place.bucket)
        self.assertIn(
            (key, upload), [(u["Key"], u["UploadId"]) for u in uploads["Uploads"]]
        )
        done = client.complete_multipart_upload(
            Bucket=self.place.bucket,
            Key=key,
            UploadId=upload,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)
                ]
            },
        )
        self.assertEqual((done["Bucket"], done["Key"]), (self.place.bucket, key))
        location = urlsplit(done["Location"])
        self.assertEqual(
            location.path, object_path(self.place.bucket, key).replace(" ", "%20")
        )
        self.assertTrue(done["ETag"].endswith('-2"'), done["ETag"])
        self.assert_virtual(capture)
        self.assertEqual(self.place.stored(key), first + second)
        head = self.client.head_object(Bucket=self.place.bucket, Key=key)
        self.assertEqual(head["Metadata"], {"parts": "two"})
        self.assertEqual(head["ETag"], done["ETag"])

    def test_list_uploads_through_prefix(self) -> None:
        """
        ListMultipartUploads with a prefix and a delimiter answers virtual
        keys and prefixes only; ListParts pages with C{max-parts}.
        """
        capture = Capture()
        client = capture.attach(self.world.client())
        keys = [self.key("list/a"), self.key("list/b"), self.key("list/sub/c")]
        uploads = {
            key: client.create_multipart_upload(Bucket=self.place.bucket, Key=key)[
                "UploadId"
            ]
            for key in keys
        }
        try:
            listed = client.list_multipart_uploads(
                Bucket=self.place.bucket, Prefix=self.key("list/")
            )
            self.assertEqual(
                sorted((u["Key"], u["UploadId"]) for u in listed["Uploads"]),
                sorted(uploads.items()),
            )
            self.assertEqual(listed["Prefix"], self.key("list/"))
            rolled = client.list_multipart_uploads(
                Bucket=self.place.bucket, Prefix=self.key("list/"), Delimiter="/"
            )
            self.assertEqual(
                sorted(u["Key"] for u in rolled["Uploads"]), sorted(keys[:2])
            )
            self.assertEqual(
                [p["Prefix"] for p in rolled["CommonPrefixes"]], [self.key("list/sub/")]
            )
            upload = uploads[keys[0]]
            for number in (1, 2, 3):
                client.upload_part(
                    Bucket=self.place.bucket,
                    Key=keys[0],
                    UploadId=upload,
                    PartNumber=number,
                    Body=b"part %d" % number,
                )
            page = client.list_parts(
                Bucket=self.place.bucket, Key=keys[0], UploadId=upload, MaxParts=2
            )
            self.assertEqual([p["PartNumber"] for p in page["Parts"]], [1, 2])
            self.assertTrue(page["IsTruncated"])
            rest = client.list_parts(
                Bucket=self.place.bucket,
                Key=keys[0],
                UploadId=upload,
                PartNumberMarker=page["NextPartNumberMarker"],
            )
            self.assertEqual([p["PartNumber"] for p in rest["Parts"]], [3])
            self.assert_virtual(capture)
        finally:
            for key, upload in uploads.items():
                client.abort_multipart_upload(
                    Bucket=self.place.bucket, Key=key, UploadId=upload
                )
        self.assertEqual(
            [u for u in self.place.uploads() if u[1] in uploads.values()], []
        )

    def test_abort(self) -> None:
        """
        AbortMultipartUpload (204) removes the upload and its parts from the
        store: ListParts is then 404 NoSuchUpload, and no object appears.
        """
        key = self.key("aborted")
        upload = self.client.create_multipart_upload(Bucket=self.place.bucket, Key=key)[
            "UploadId"
        ]
        self.client.upload_part(
            Bucket=self.place.bucket,
            Key=key,
            UploadId=upload,
            PartNumber=1,
            Body=b"never",
        )
        self.assertIn(upload, [u for _, u in self.place.uploads()])
        answer = self.client.abort_multipart_upload(
            Bucket=self.place.bucket, Key=key, UploadId=upload
        )
        self.assertEqual(answer["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertNotIn(upload, [u for _, u in self.place.uploads()])
        boto3_error(
            self,
            lambda: self.client.list_parts(
                Bucket=self.place.bucket, Key=key, UploadId=upload
            ),
            404,
            "NoSuchUpload",
        )
        self.assertIsNone(self.place.stored(key))

    def test_complete_with_wrong_etag(self) -> None:
        """
        Completing with an ETag that is not the part's is 400 InvalidPart;
        no object appears and the upload can still be completed properly.
        """
        key = self.key("wrong-part")
        upload = self.client.create_multipart_upload(Bucket=self.place.bucket, Key=key)[
            "UploadId"
        ]
        etag = self.client.upload_part(
            Bucket=self.place.bucket,
            Key=key,
            UploadId=upload,
            PartNumber=1,
            Body=b"only part",
        )["ETag"]
        boto3_error(
            self,
            lambda: self.client.complete_multipart_upload(
                Bucket=self.place.bucket,
                Key=key,
                UploadId=upload,
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}
                    ]
                },
            ),
            400,
            "InvalidPart",
        )
        self.assertIsNone(self.place.stored(key))
        self.client.complete_multipart_upload(
            Bucket=self.place.bucket,
            Key=key,
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        )
        self.assertEqual(self.place.stored(key), b"only part")


class SeaweedFSMultipartTests(MultipartMixin, SynchronousTestCase):
    """
    Multipart uploads on SeaweedFS under a backend prefix.
    """

    place_name = "sw"


class MotoMultipartTests(MultipartMixin, SynchronousTestCase):
    """
    Multipart uploads on moto under a backend prefix.
    """

    place_name = "mo"


class FileMultipartTests(MultipartMixin, SynchronousTestCase):
    """
    Multipart uploads in a directory bucket.
    """

    place_name = "fi"


class RestartTests(SynchronousTestCase):
    """
    A multipart upload outlives the daemon that began it.
    """

    @pytest.fixture(autouse=True)
    def _servers(
        self,
        seaweedfs: S3Server,
        multistore_daemon: DaemonFactory,
        tmp_path: Path,
    ) -> None:
        self.places = [
            Place.on_s3("sw", seaweedfs, "restart/prefix"),
            Place.on_disk("fi", tmp_path / "fi"),
        ]
        self.daemon = multistore_daemon(
            {
                "buckets": [p.config() for p in self.places],
                "credentials": [writer_credential()],
            }
        )

    def test_upload_survives_restart(self) -> None:
        """
        Parts uploaded before a restart are listed after it, more parts can
        be added, and completing gives the whole object, on SeaweedFS and in
        a directory bucket.
        """
        first, second = pattern(5 * MiB, 8), pattern(777, 9)
        client = s3_client(self.daemon.url, *WRITER)
        uploads = {}
        for place in self.places:
            upload = client.create_multipart_upload(
                Bucket=place.bucket, Key="survivor"
            )["UploadId"]
            client.upload_part(
                Bucket=place.bucket,
                Key="survivor",
                UploadId=upload,
                PartNumber=1,
                Body=first,
            )
            uploads[place.bucket] = upload
        self.daemon.restart()
        client = s3_client(self.daemon.url, *WRITER)
        for place in self.places:
            upload = uploads[place.bucket]
            client.upload_part(
                Bucket=place.bucket,
                Key="survivor",
                UploadId=upload,
                PartNumber=2,
                Body=second,
            )
            parts = client.list_parts(
                Bucket=place.bucket, Key="survivor", UploadId=upload
            )
            self.assertEqual(
                [(p["PartNumber"], p["ETag"]) for p in parts["Parts"]],
                [(1, _part_etag(first)), (2, _part_etag(second))],
            )
            client.complete_multipart_upload(
                Bucket=place.bucket,
                Key="survivor",
                UploadId=upload,
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": 1, "ETag": _part_etag(first)},
                        {"PartNumber": 2, "ETag": _part_etag(second)},
                    ]
                },
            )
            self.assertEqual(place.stored("survivor"), first + second, place.bucket)


# --- buckets by pattern -------------------------------------------------------------


class BucketPatternTests(_WorldTests, SynchronousTestCase):
    """
    CreateBucket and DeleteBucket for buckets a pattern stands for.
    """

    def _fill_and_empty(self, client: Any, bucket: str, place: Place) -> None:
        """
        Put, list and get objects in a new bucket, check that DeleteBucket
        refuses while they remain, and remove them.
        """
        objects = {"a.txt": b"alpha", "dir/b c.txt": b"beta"}
        for key, data in objects.items():
            client.put_object(Bucket=bucket, Key=key, Body=data)
        listed = client.list_objects_v2(Bucket=bucket)
        self.assertEqual([o["Key"] for o in listed["Contents"]], sorted(objects))
        for key, data in objects.items():
            self.assertEqual(
                client.get_object(Bucket=bucket, Key=key)["Body"].read(), data
            )
            self.assertEqual(place.stored(key), data)
        boto3_error(
            self, lambda: client.delete_bucket(Bucket=bucket), 409, "BucketNotEmpty"
        )
        # (A shared bucket's marker is the empty key under its prefix.)
        self.assertEqual([k for k in place.stored_keys() if k], sorted(objects))
        for key in objects:
            client.delete_object(Bucket=bucket, Key=key)

    def test_shared_backend_bucket(self) -> None:
        """
        C{team-*} buckets are prefixes C{tenants/NAME} of one SeaweedFS
        bucket: CreateBucket makes one (HeadBucket is 404 before, 200 after;
        creating it again is 409 BucketAlreadyOwnedByYou), objects land
        under its prefix, another team's bucket does not see them,
        DeleteBucket is 409 BucketNotEmpty while they remain and removes
        every trace once they are gone.
        """
        name = unique_bucket_name("team")
        other = unique_bucket_name("team")
        place = Place(
            name, self.world.seaweedfs, self.world.team_bucket, f"tenants/{name}"
        )
        boto3_error(self, lambda: self.client.head_bucket(Bucket=name), 404, "404")
        self.client.create_bucket(Bucket=name)
        self.client.create_bucket(Bucket=other)
        self.client.head_bucket(Bucket=name)
        self.assertEqual(place.stored_keys(), [""])
        boto3_error(
            self,
            lambda: self.client.create_bucket(Bucket=name),
            409,
            "BucketAlreadyOwnedByYou",
        )
        self.client.put_object(Bucket=name, Key="private", Body=b"mine")
        self.assertEqual(self.client.list_objects_v2(Bucket=other)["KeyCount"], 0)
        self.client.delete_object(Bucket=name, Key="private")
        self._fill_and_empty(self.client, name, place)
        self.client.delete_bucket(Bucket=name)
        self.client.delete_bucket(Bucket=other)
        boto3_error(self, lambda: self.client.head_bucket(Bucket=name), 404, "404")
        backend = self.world.seaweedfs.client()
        for bucket in (name, other):
            left = backend.list_objects_v2(
                Bucket=self.world.team_bucket, Prefix=f"tenants/{bucket}"
            )
            self.assertEqual(left["KeyCount"], 0, bucket)

    def test_backend_bucket_per_bucket(self) -> None:
        """
        C{own-*} buckets are SeaweedFS buckets of the same name: CreateBucket
        creates it on SeaweedFS, objects land in it, DeleteBucket is 409
        BucketNotEmpty while they remain and then deletes it on SeaweedFS.
        """
        name = unique_bucket_name("own")
        backend = self.world.seaweedfs.client()
        boto3_error(self, lambda: backend.head_bucket(Bucket=name), 404, "404")
        self.client.create_bucket(Bucket=name)
        backend.head_bucket(Bucket=name)
        self.client.head_bucket(Bucket=name)
        self._fill_and_empty(self.client, name, Place(name, self.world.seaweedfs, name))
        self.client.delete_bucket(Bucket=name)
        boto3_error(self, lambda: backend.head_bucket(Bucket=name), 404, "404")
        boto3_error(self, lambda: self.client.head_bucket(Bucket=name), 404, "404")

    def test_shared_directory(self) -> None:
        """
        C{dirteam-*} buckets are prefixes C{tenants/NAME} of one directory
        bucket: created, used, refused deletion while not empty, deleted
        (HeadBucket then 404) and created again, as on SeaweedFS.
        """
        name = unique_bucket_name("dirteam")
        root = self.world.shared_root
        boto3_error(self, self.client.head_bucket, 404, "404", Bucket=name)
        self.client.create_bucket(Bucket=name)
        self.assertTrue((root / "tenants" / name).is_dir())
        self.client.head_bucket(Bucket=name)
        self._fill_and_empty(
            self.client, name, Place(name, root=root / "tenants" / name)
        )
        self.client.delete_bucket(Bucket=name)
        boto3_error(self, self.client.head_bucket, 404, "404", Bucket=name)
        self.client.create_bucket(Bucket=name)
        self.client.head_bucket(Bucket=name)
        self.client.delete_bucket(Bucket=name)

    def test_directory_per_bucket(self) -> None:
        """
        C{files-*} buckets are directories: CreateBucket makes it,
        DeleteBucket is 409 BucketNotEmpty while objects remain and then
        removes it.
        """
        name = unique_bucket_name("files")
        root = self.world.files_base / name
        self.assertFalse(root.exists())
        self.client.create_bucket(Bucket=name)
        self.assertTrue(root.is_dir())
        self._fill_and_empty(self.client, name, Place(name, root=root))
        self.client.delete_bucket(Bucket=name)
        self.assertFalse(root.exists())

    def test_recreate_after_delete(self) -> None:
        """
        A C{team-*} bucket whose objects sat in a "directory" can be created
        again once deleted, and is then empty.
        """
        name = unique_bucket_name("team")
        self.client.create_bucket(Bucket=name)
        self.client.put_object(Bucket=name, Key="dir/sub/object", Body=b"x")
        self.client.delete_object(Bucket=name, Key="dir/sub/object")
        self.client.delete_bucket(Bucket=name)
        boto3_error(self, lambda: self.client.head_bucket(Bucket=name), 404, "404")
        self.client.create_bucket(Bucket=name)
        self.client.head_bucket(Bucket=name)
        self.assertEqual(self.client.list_objects_v2(Bucket=name)["KeyCount"], 0)
        self.client.delete_bucket(Bucket=name)

    def test_uncreated_buckets(self) -> None:
        """
        A bucket a pattern stands for but that was never created does not
        exist, whichever kind (a bucket of its own on SeaweedFS, a directory
        of its own, a prefix of a shared SeaweedFS bucket or of a shared
        directory): a write to it is 404 NoSuchBucket, as are a listing and
        HeadBucket, and nothing appears in any store.
        """

        def outcome(call: Callable[..., Any], **params: Any) -> tuple[int, str]:
            try:
                answer = call(**params)
            except ClientError as error:
                return http_status(error), error_code(error)
            return answer["ResponseMetadata"]["HTTPStatusCode"], ""

        self.maxDiff = None
        backend = self.world.seaweedfs.client()
        seen, expected = {}, {}
        for kind in ("own", "files", "team", "dirteam"):
            name = unique_bucket_name(kind)
            seen[kind] = (
                outcome(self.client.put_object, Bucket=name, Key="a/b", Body=b"x"),
                outcome(self.client.list_objects_v2, Bucket=name),
                outcome(self.client.head_bucket, Bucket=name),
            )
            expected[kind] = ((404, "NoSuchBucket"),) * 2 + ((404, "404"),)
            if kind == "own":
                stored = outcome(backend.head_bucket, Bucket=name) != (404, "404")
            elif kind == "files":
                stored = (self.world.files_base / name).exists()
            elif kind == "team":
                stored = bool(
                    backend.list_objects_v2(
                        Bucket=self.world.team_bucket, Prefix=f"tenants/{name}/"
                    )["KeyCount"]
                )
            else:
                stored = (self.world.shared_root / "tenants" / name).exists()
            seen[kind] += (("stored", stored),)
            expected[kind] += (("stored", False),)
        self.assertEqual(seen, expected)

    def test_configured_buckets_stay(self) -> None:
        """
        A bucket named in the configuration cannot be created (409
        BucketAlreadyOwnedByYou) nor deleted (405 MethodNotAllowed).
        """
        boto3_error(
            self,
            lambda: self.client.create_bucket(Bucket="sw"),
            409,
            "BucketAlreadyOwnedByYou",
        )
        boto3_error(
            self,
            lambda: self.client.delete_bucket(Bucket="fi"),
            405,
            "MethodNotAllowed",
        )
        self.assertTrue(self.world.places["fi"].root.is_dir())  # type: ignore[union-attr]


# --- presigned writes -------------------------------------------------------------------


def _send_url(
    method: str, url: str, body: bytes | None = None, timeout: float = 30.0
) -> tuple[int, bytes]:
    """
    Send a request to a presigned URL with C{http.client}, nothing added
    but C{Host} and C{Content-Length}.

    :return: the status and the body.
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.putrequest(method, target, skip_accept_encoding=True)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _code(body: bytes) -> str:
    start = body.find(b"<Code>")
    end = body.find(b"</Code>")
    return body[start + 6 : end].decode() if start >= 0 else ""


class PresignedTests(_WorldTests, SynchronousTestCase):
    """
    Writes through presigned URLs sent by a plain HTTP client.
    """

    def _sigv2(self) -> Any:
        return self.world.client(signature_version="s3")

    def test_put_sigv4_and_sigv2(self) -> None:
        """
        A PUT to a URL from C{generate_presigned_url('put_object')}, SigV4
        or SigV2, stores the body, on SeaweedFS and in a directory bucket.
        """
        for signer, client in (("v4", self.client), ("v2", self._sigv2())):
            for name in ("sw", "fi"):
                key = self.key(f"presigned-{signer} key+1")
                url = client.generate_presigned_url(
                    "put_object", Params={"Bucket": name, "Key": key}, ExpiresIn=300
                )
                self.assertIn(
                    "X-Amz-Signature=" if signer == "v4" else "Signature=", url
                )
                data = pattern(20000, 10)
                status, body = _send_url("PUT", url, data)
                self.assertEqual(status, 200, body)
                self.assertEqual(
                    self.world.places[name].stored(key), data, (signer, name)
                )

    def test_other_operations(self) -> None:
        """
        Presigned UploadPart and DeleteObject work too.
        """
        key = self.key("presigned-multipart")
        upload = self.client.create_multipart_upload(Bucket="sw", Key=key)["UploadId"]
        url = self.client.generate_presigned_url(
            "upload_part",
            Params={"Bucket": "sw", "Key": key, "UploadId": upload, "PartNumber": 1},
        )
        status, body = _send_url("PUT", url, b"presigned part")
        self.assertEqual(status, 200, body)
        self.client.complete_multipart_upload(
            Bucket="sw",
            Key=key,
            UploadId=upload,
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": _part_etag(b"presigned part")}]
            },
        )
        self.assertEqual(self.place.stored(key), b"presigned part")
        url = self.client.generate_presigned_url(
            "delete_object", Params={"Bucket": "sw", "Key": key}
        )
        status, body = _send_url("DELETE", url)
        self.assertEqual(status, 204, body)
        self.assertIsNone(self.place.stored(key))

    def test_expired(self) -> None:
        """
        An expired presigned PUT, SigV4 or SigV2, is 403 AccessDenied and
        writes nothing.
        """
        key = self.key("too-late")
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        with mock.patch(
            "botocore.auth.get_current_datetime",
            return_value=an_hour_ago.replace(tzinfo=None),
        ):
            v4 = self.client.generate_presigned_url(
                "put_object", Params={"Bucket": "sw", "Key": key}, ExpiresIn=60
            )
        with mock.patch.object(
            HmacV1QueryAuth, "_get_date", return_value=str(int(time.time()) - 60)
        ):
            v2 = self._sigv2().generate_presigned_url(
                "put_object", Params={"Bucket": "sw", "Key": key}, ExpiresIn=60
            )
        for url in (v4, v2):
            status, body = _send_url("PUT", url, b"late")
            self.assertEqual((status, _code(body)), (403, "AccessDenied"), url)
        self.assertIsNone(self.place.stored(key))

    def test_other_key(self) -> None:
        """
        A URL presigned for one key, used for another, is 403
        SignatureDoesNotMatch and writes nothing.
        """
        url = self.client.generate_presigned_url(
            "put_object", Params={"Bucket": "sw", "Key": self.key("granted")}
        )
        forged = url.replace("/granted?", "/forged?")
        self.assertNotEqual(forged, url)
        status, body = _send_url("PUT", forged, b"forged")
        self.assertEqual((status, _code(body)), (403, "SignatureDoesNotMatch"))
        self.assertIsNone(self.place.stored(self.key("forged")))


# --- size limits ------------------------------------------------------------------------

#: The limited daemon's C{max_object_size}.
MAX_OBJECT: Final = MiB

#: The limited daemon's C{max_xml_body_size} (the least allowed).
MAX_XML: Final = 1024


@define
class Limited:
    """
    A daemon with small size limits, and its buckets C{sw} and C{fi}.
    """

    daemon: Daemon
    places: dict[str, Place]


@pytest.fixture(scope="module")
def limited(
    module_multistore_daemon: DaemonFactory,
    seaweedfs: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Limited:
    """
    A daemon whose C{[server]} allows objects of L{MAX_OBJECT} bytes and
    XML bodies of L{MAX_XML} bytes.
    """
    places = {
        "sw": Place.on_s3("sw", seaweedfs, "limited"),
        "fi": Place.on_disk("fi", tmp_path_factory.mktemp("limited")),
    }
    daemon = module_multistore_daemon(
        {
            "server": {"max_object_size": MAX_OBJECT, "max_xml_body_size": MAX_XML},
            "buckets": [p.config() for p in places.values()],
            "credentials": [writer_credential()],
        },
        https=True,
    )
    return Limited(daemon, places)


def _signed_put_headers(
    daemon: Daemon, target: str, extra: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """
    SigV4 headers for a PUT with an unsigned payload (sent as given).
    """
    signed = sign_request(
        "PUT",
        f"http://{LOCALHOST}:{daemon.port}{target}",
        HeaderList([(n.lower(), v) for n, v in extra]),
        UNSIGNED_PAYLOAD,
        *WRITER,
        None,
        REGION,
        datetime.now(UTC),
    )
    return list(signed)


def _read_response(
    sock: socket.socket, timeout: float
) -> tuple[int, dict[str, str], bytes]:
    """
    Read one HTTP/1.1 response (with a C{Content-Length}) from ``sock``.
    """
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


class SizeLimitTests(SynchronousTestCase):
    """
    C{max_object_size} and C{max_xml_body_size}.
    """

    @pytest.fixture(autouse=True)
    def _limited(self, limited: Limited) -> None:
        self.limited = limited
        self.daemon = limited.daemon
        self.client = s3_client(self.daemon.url, *WRITER)
        self.base = f"t{uuid4().hex[:10]}/"

    def test_too_large(self) -> None:
        """
        A PUT (or part) of one byte over the limit is 400 EntityTooLarge,
        over HTTP and over HTTPS (C{aws-chunked}), and stores nothing; one of
        exactly the limit is stored.
        """
        https = s3_client(
            self.daemon.https_url, *WRITER, verify=str(self.daemon.ca_path)
        )
        for name, place in self.limited.places.items():
            for transport, client in (("http", self.client), ("https", https)):
                key = f"{self.base}{transport}-too-large"
                boto3_error(
                    self,
                    client.put_object,
                    400,
                    "EntityTooLarge",
                    Bucket=name,
                    Key=key,
                    Body=bytes(MAX_OBJECT + 1),
                )
                self.assertIsNone(place.stored(key), (name, transport))
                upload = client.create_multipart_upload(Bucket=name, Key=key)[
                    "UploadId"
                ]
                boto3_error(
                    self,
                    client.upload_part,
                    400,
                    "EntityTooLarge",
                    Bucket=name,
                    Key=key,
                    UploadId=upload,
                    PartNumber=1,
                    Body=bytes(MAX_OBJECT + 1),
                )
                client.abort_multipart_upload(Bucket=name, Key=key, UploadId=upload)
            key = f"{self.base}just-fits"
            self.client.put_object(Bucket=name, Key=key, Body=pattern(MAX_OBJECT, 11))
            self.assertEqual(place.stored(key), pattern(MAX_OBJECT, 11))
            if place.is_file:
                self.assertEqual(place.temp_files(), [])

    def test_refused_before_continue(self) -> None:
        """
        A client that sends C{Expect: 100-continue} with a C{Content-Length}
        over the limit gets 400 EntityTooLarge instead of C{100 Continue},
        without sending its body; one within the limit gets C{100 Continue}
        and its object is stored.
        """
        for name, place in self.limited.places.items():
            for size, expected in ((2 * MAX_OBJECT, 400), (1000, 100)):
                key = f"{self.base}expect-{size}"
                target = object_path(name, key)
                headers = _signed_put_headers(
                    self.daemon,
                    target,
                    [("Content-Length", str(size)), ("Expect", "100-continue")],
                )
                with socket.create_connection(
                    (LOCALHOST, self.daemon.port), 10
                ) as sock:
                    head = f"PUT {target} HTTP/1.1\r\n" + "".join(
                        f"{n}: {v}\r\n" for n, v in headers
                    )
                    sock.sendall(head.encode("latin-1") + b"\r\n")
                    status, _, body = _read_response(sock, 10)
                    self.assertEqual(status, expected, (name, size, body))
                    if status == 400:
                        self.assertEqual(_code(body), "EntityTooLarge")
                        self.assertIsNone(place.stored(key))
                        continue
                    sock.sendall(pattern(size, 12))
                    status, _, body = _read_response(sock, 10)
                    self.assertEqual(status, 200, body)
                    self.assertEqual(place.stored(key), pattern(size, 12))

    def test_xml_body_too_large(self) -> None:
        """
        A DeleteObjects body over C{max_xml_body_size} is refused with 400
        MaxMessageLengthExceeded and deletes nothing; a small one is carried
        out.
        """
        place = self.limited.places["sw"]
        keys = [f"{self.base}k{n:03d}" for n in range(60)]
        for key in keys[:2]:
            place.put(key, b"x")
        boto3_error(
            self,
            lambda: self.client.delete_objects(
                Bucket="sw", Delete={"Objects": [{"Key": k} for k in keys]}
            ),
            400,
            "MaxMessageLengthExceeded",
        )
        self.assertEqual(place.stored_keys(self.base), keys[:2])
        self.client.delete_objects(
            Bucket="sw", Delete={"Objects": [{"Key": k} for k in keys[:2]]}
        )
        self.assertEqual(place.stored_keys(self.base), [])

    def test_xml_entities_are_not_resolved(self) -> None:
        """
        A DeleteObjects body that declares entities (one naming a local
        file) is 400 MalformedXML: nothing is resolved, nothing deleted.
        """
        place = self.limited.places["fi"]
        place.put("victim", b"stays")
        document = (
            b'<?xml version="1.0"?>\n'
            b'<!DOCTYPE Delete [<!ENTITY victim "victim">'
            b'<!ENTITY file SYSTEM "file:///etc/hostname">]>'
            b"<Delete><Object><Key>&victim;</Key></Object>"
            b"<Object><Key>&file;</Key></Object></Delete>"
        )
        target = "/fi?delete"
        headers = sign_request(
            "POST",
            f"http://{LOCALHOST}:{self.daemon.port}{target}",
            HeaderList(
                [
                    ("content-md5", md5_b64(document)),
                    ("content-length", str(len(document))),
                ]
            ),
            hashlib.sha256(document).hexdigest(),
            *WRITER,
            None,
            REGION,
            datetime.now(UTC),
        )
        response = send_raw(
            self.daemon.port, "POST", target, list(headers), body=document
        )
        check_error(self, response, 400, "MalformedXML")
        self.assertEqual(place.stored("victim"), b"stays")
        hostname = Path("/etc/hostname")
        if hostname.exists() and hostname.read_text().strip():
            self.assertNotIn(hostname.read_bytes().strip(), response.body)


# --- rclone serve s3 as the store ----------------------------------------------------


class RcloneBackendTests(SynchronousTestCase):
    """
    C{rclone serve s3} (a second S3 implementation that verifies
    signatures, storing plain files) behind the daemon.

    rclone 1.75 ignores C{If-None-Match} and C{If-Match} on PUT (checked by
    hand: both overwrite), so conditional writes are not tried here.
    """

    @pytest.fixture(autouse=True)
    def _servers(
        self, rclone_server: S3Server, multistore_daemon: DaemonFactory
    ) -> None:
        self.place = Place.on_s3("rc", rclone_server, "inner")
        self.server = rclone_server
        self.daemon = multistore_daemon(
            {
                "buckets": [self.place.config()],
                "credentials": [writer_credential()],
            }
        )
        self.client = s3_client(self.daemon.url, *WRITER)

    def test_writes(self) -> None:
        """
        PutObject (the file appears under rclone's root), CopyObject,
        a multipart upload, DeleteObjects and DeleteObject.
        """
        data = pattern(150_000, 13)
        self.client.put_object(Bucket="rc", Key="dir/a.bin", Body=data)
        assert self.server.root is not None
        on_disk = self.server.root / self.place.backend_bucket / "inner/dir/a.bin"
        self.assertEqual(on_disk.read_bytes(), data)
        self.client.copy_object(
            Bucket="rc",
            Key="dir/b.bin",
            CopySource={"Bucket": "rc", "Key": "dir/a.bin"},
        )
        self.assertEqual(self.place.stored("dir/b.bin"), data)
        upload = self.client.create_multipart_upload(Bucket="rc", Key="multi.bin")[
            "UploadId"
        ]
        pieces = [pattern(5 * MiB, 14), pattern(10, 15)]
        parts = [
            {
                "PartNumber": n,
                "ETag": self.client.upload_part(
                    Bucket="rc", Key="multi.bin", UploadId=upload, PartNumber=n, Body=p
                )["ETag"],
            }
            for n, p in enumerate(pieces, start=1)
        ]
        self.client.complete_multipart_upload(
            Bucket="rc",
            Key="multi.bin",
            UploadId=upload,
            MultipartUpload={"Parts": parts},
        )
        self.assertEqual(self.place.stored("multi.bin"), b"".join(pieces))
        answer = self.client.delete_objects(
            Bucket="rc",
            Delete={"Objects": [{"Key": "dir/a.bin"}, {"Key": "dir/b.bin"}]},
        )
        self.assertEqual(len(answer["Deleted"]), 2)
        self.client.delete_object(Bucket="rc", Key="multi.bin")
        self.assertEqual(self.place.stored_keys(), [])
