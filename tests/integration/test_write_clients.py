# mypy: disable-error-code="no-untyped-call"
"""
Every real client writing through the daemon, as a new user would set it
up, over plain HTTP and over the daemon's HTTPS listener: boto3 (low-level
calls and the transfer manager), aws-cli, s3fs, obstore, s5cmd, rclone and
minio-py. Each one uploads (small objects, and objects large enough that it
switches to a multipart upload), copies, downloads and deletes; the result
is checked on the backend itself.

Most run against SeaweedFS, under a backend prefix; boto3 and aws-cli run
against moto and a directory bucket too.

Over HTTP boto3 signs the payload's SHA-256; over HTTPS it sends
C{aws-chunked} bodies with C{STREAMING-UNSIGNED-PAYLOAD-TRAILER} and a CRC
trailer. The boto3 tests capture the requests (botocore's C{before-send}
event) and check which one the daemon got.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final
from uuid import uuid4

import pytest
from attrs import define, field
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.emulators import (
    AzureContainer,
    AzureServer,
    GcsBucket,
    GcsServer,
)
from tests.integration.servers import (
    BIN_DIR,
    Daemon,
    DaemonFactory,
    S3Server,
    s3_client,
    unique_bucket_name,
)
from tests.integration.test_clients import client_environment, run
from tests.integration.test_read_path import REGION
from tests.integration.test_write_path import (
    WRITER,
    Place,
    pattern,
    writer_credential,
)

MiB: Final = 1024 * 1024

#: The size of the objects that clients upload in parts: above every
#: client's multipart threshold as configured here (5 MiB parts), so three
#: parts.
LARGE: Final = 12 * MiB

#: The part size every client is told to use.
PART: Final = 5 * MiB

#: How many parts a L{LARGE} object has.
LARGE_PARTS: Final = -(-LARGE // PART)

HEX_SHA256: Final = re.compile(r"[0-9a-f]{64}")


@define
class ClientWorld:
    """
    The module's daemon (plain HTTP and HTTPS) and its buckets, by short
    name: C{sw} (bucket C{seaweedfs}, under a backend prefix), C{mo}
    (C{moto}) and C{fi} (C{files}, a directory); minio-py wants names of
    three characters or more.
    """

    daemon: Daemon
    places: dict[str, Place]


@pytest.fixture(scope="module")
def write_client_world(
    module_multistore_daemon: DaemonFactory,
    seaweedfs: S3Server,
    moto_server: S3Server,
    azurite: AzureServer,
    fake_gcs: GcsServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> ClientWorld:
    """
    A daemon over SeaweedFS, moto, a directory, Azurite and fake-gcs-server,
    with the writer's credential, listening on HTTP and HTTPS.
    """
    container = azurite.create_container(unique_bucket_name("clients"))
    gcs_bucket = fake_gcs.create_bucket(unique_bucket_name("clients"))
    places = {
        "sw": Place.on_s3("seaweedfs", seaweedfs, f"clients{uuid4().hex[:6]}/writes"),
        "mo": Place.on_s3("moto", moto_server),
        "fi": Place.on_disk("files", tmp_path_factory.mktemp("client-writes")),
        "az": Place.on_cloud(
            "azure", AzureContainer(azurite, container), f"clients{uuid4().hex[:6]}"
        ),
        "gc": Place.on_cloud("gcs", GcsBucket(fake_gcs, gcs_bucket)),
    }
    daemon = module_multistore_daemon(
        {
            "buckets": [p.config() for p in places.values()],
            "credentials": [writer_credential()],
        },
        https=True,
    )
    return ClientWorld(daemon, places)


@define
class SentRequests:
    """
    What a boto3 client sent: per request, the operation, the thread, and
    the C{x-amz-content-sha256} and C{Content-Encoding} headers.
    """

    sent: list[tuple[str, int, str, str]] = field(factory=list)
    _lock: threading.Lock = field(factory=threading.Lock)

    def attach(self, client: Any) -> Any:
        """
        Record what ``client`` sends from now on.

        :return: ``client``.
        """
        client.meta.events.register("before-send.s3.*", self._record)
        return client

    def _record(self, request: Any, event_name: str, **kwargs: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        headers = request.headers

        def text(name: str) -> str:
            value = headers.get(name) or b""
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)

        with self._lock:
            self.sent.append(
                (
                    operation,
                    threading.get_ident(),
                    text("x-amz-content-sha256"),
                    text("Content-Encoding"),
                )
            )

    def of(self, operation: str) -> list[tuple[str, int, str, str]]:
        """
        :return: the requests of one operation.
        """
        with self._lock:
            return [s for s in self.sent if s[0] == operation]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _ClientMixin:
    """
    Mixed into a test case: each test drives one client against the bucket
    named by C{place_name}, over the transport named by C{transport}.
    """

    place_name = "sw"
    transport = "http"

    # Provided by SynchronousTestCase.
    assertEqual: Callable[..., None]
    assertIn: Callable[..., None]
    assertIsNone: Callable[..., None]
    assertTrue: Callable[..., None]
    assertGreater: Callable[..., None]

    @pytest.fixture(autouse=True)
    def _world(self, write_client_world: ClientWorld, tmp_path: Path) -> None:
        self.world = write_client_world
        self.daemon = write_client_world.daemon
        self.place = write_client_world.places[self.place_name]
        self.directory = tmp_path
        self.base = f"{self.transport}-{uuid4().hex[:8]}/"

    @property
    def https(self) -> bool:
        """
        Whether the client talks to the HTTPS listener.
        """
        return self.transport == "https"

    @property
    def endpoint(self) -> str:
        """
        The daemon's URL for this transport.
        """
        return self.daemon.https_url if self.https else self.daemon.url

    @property
    def ca(self) -> str:
        """
        The CA bundle of the HTTPS listener.
        """
        return str(self.daemon.ca_path)

    def key(self, name: str) -> str:
        """
        :return: a key for this test only.
        """
        return self.base + name

    def local(self, name: str, data: bytes) -> Path:
        """
        Write a local file for a client to upload.
        """
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def assert_stored(self, key: str, data: bytes) -> None:
        """
        Check the store's own copy of ``key``.
        """
        stored = self.place.stored(key)
        self.assertTrue(stored is not None, f"{key} is not in the store")
        assert stored is not None
        self.assertEqual(
            (len(stored), _sha256(stored)), (len(data), _sha256(data)), key
        )

    def assert_multipart(self, key: str, parts: int = LARGE_PARTS) -> None:
        """
        Check that ``key`` was assembled from ``parts`` parts (its ETag on
        the backend, or through the daemon for a directory).
        """
        if self.place.is_file:
            head = s3_client(self.daemon.url, *WRITER).head_object(
                Bucket=self.place.bucket, Key=key
            )
            self.assertTrue(head["ETag"].endswith(f'-{parts}"'), (key, head["ETag"]))
        else:
            self.assertEqual(self.place.parts(key), parts, key)

    def boto3(self, **config: Any) -> Any:
        """
        :return: a boto3 client of the daemon for this transport.
        """
        return s3_client(
            self.endpoint, *WRITER, verify=self.ca if self.https else None, **config
        )

    def cli_environment(self, **extra: str) -> dict[str, str]:
        """
        :return: the environment for a command-line client: the writer's
            keys, nothing else of this machine's AWS setup.
        """
        return client_environment(
            self.directory,
            AWS_ACCESS_KEY_ID=WRITER[0],
            AWS_SECRET_ACCESS_KEY=WRITER[1],
            AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION,
            **extra,
        )

    # -- boto3 -----------------------------------------------------------------------

    def test_boto3(self) -> None:
        """
        boto3's low-level calls: PutObject with metadata, GetObject,
        CopyObject, DeleteObject, DeleteObjects and a multipart upload; the
        store holds what was written. Over HTTP the payload hash was signed,
        over HTTPS the bodies were C{aws-chunked} with a trailing checksum.
        """
        sent = SentRequests()
        client = sent.attach(self.boto3())
        bucket = self.place.bucket
        data = pattern(100_000, 31)
        key = self.key("boto3/object.bin")
        client.put_object(
            Bucket=bucket, Key=key, Body=data, Metadata={"client": "boto3"}
        )
        [(_, _, payload_hash, encoding)] = sent.of("PutObject")
        if self.https:
            self.assertEqual(payload_hash, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
            self.assertIn("aws-chunked", encoding)
        else:
            self.assertTrue(HEX_SHA256.fullmatch(payload_hash), payload_hash)
            self.assertEqual(payload_hash, _sha256(data))
        self.assert_stored(key, data)
        if not self.place.is_file:
            self.assertEqual(self.place.metadata(key), {"client": "boto3"})
        got = client.get_object(Bucket=bucket, Key=key)
        self.assertEqual(
            (got["Body"].read(), got["Metadata"]), (data, {"client": "boto3"})
        )
        copy = self.key("boto3/copy.bin")
        client.copy_object(
            Bucket=bucket, Key=copy, CopySource={"Bucket": bucket, "Key": key}
        )
        self.assert_stored(copy, data)
        client.delete_object(Bucket=bucket, Key=key)
        self.assertIsNone(self.place.stored(key))
        many = [self.key(f"boto3/many/{n}") for n in range(5)]
        for name in many:
            client.put_object(Bucket=bucket, Key=name, Body=name.encode())
        answer = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in [copy, *many]]}
        )
        self.assertEqual(len(answer["Deleted"]), 6)
        self.assertEqual(self.place.stored_keys(self.key("boto3/")), [])

        multipart = self.key("boto3/multipart.bin")
        upload = client.create_multipart_upload(Bucket=bucket, Key=multipart)[
            "UploadId"
        ]
        pieces = [pattern(PART, 32), pattern(1000, 33)]
        parts = []
        for number, piece in enumerate(pieces, start=1):
            etag = client.upload_part(
                Bucket=bucket,
                Key=multipart,
                UploadId=upload,
                PartNumber=number,
                Body=piece,
            )["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
        client.complete_multipart_upload(
            Bucket=bucket,
            Key=multipart,
            UploadId=upload,
            MultipartUpload={"Parts": parts},
        )
        self.assert_stored(multipart, b"".join(pieces))
        self.assert_multipart(multipart, 2)
        modes = {s[2] for s in sent.of("UploadPart")}
        if self.https:
            self.assertEqual(modes, {"STREAMING-UNSIGNED-PAYLOAD-TRAILER"})
        else:
            self.assertEqual(modes, {_sha256(p) for p in pieces})

    def test_boto3_transfer_manager(self) -> None:
        """
        boto3's transfer manager, with a 5 MiB threshold and four threads,
        uploads a 12 MiB file in parts sent in parallel, and downloads it
        again byte for byte.
        """
        sent = SentRequests()
        client = sent.attach(self.boto3(max_pool_connections=8))
        data = pattern(LARGE, 34)
        source = self.local("upload.bin", data)
        key = self.key("transfer/file.bin")
        config = TransferConfig(
            multipart_threshold=PART,
            multipart_chunksize=PART,
            max_concurrency=4,
            use_threads=True,
        )
        client.upload_file(str(source), self.place.bucket, key, Config=config)
        self.assert_stored(key, data)
        self.assert_multipart(key)
        parts = sent.of("UploadPart")
        self.assertEqual(len(parts), LARGE_PARTS)
        self.assertGreater(len({thread for _, thread, _, _ in parts}), 1)
        target = self.directory / "downloaded.bin"
        client.download_file(self.place.bucket, key, str(target), Config=config)
        self.assertEqual(_sha256(target.read_bytes()), _sha256(data))

    # -- aws-cli -----------------------------------------------------------------------

    def aws(self, *args: str) -> bytes:
        """
        Run C{aws} against the daemon.

        :return: its standard output.
        """
        argv = [
            str(BIN_DIR / "aws"),
            "--endpoint-url",
            self.endpoint,
            "--region",
            REGION,
        ]
        if self.https:
            argv += ["--ca-bundle", self.ca]
        return run([*argv, *args], self.cli_environment())

    def test_aws_cli(self) -> None:
        """
        aws-cli: C{s3 cp} up (in parts) and down, C{s3api put-object
        --metadata}, C{s3 sync}, C{s3 mv}, C{s3api create-multipart-upload}
        / C{upload-part} / C{complete-multipart-upload}, and C{s3 rm
        --recursive}.
        """
        bucket = self.place.bucket
        url = f"s3://{bucket}/{self.base}"
        large = pattern(LARGE, 35)
        source = self.local("large.bin", large)
        self.aws("s3", "cp", str(source), f"{url}cli/large.bin")
        self.assert_stored(self.key("cli/large.bin"), large)
        # aws-cli's default threshold and part size are 8 MiB.
        self.assert_multipart(self.key("cli/large.bin"), 2)
        down = self.directory / "down.bin"
        self.aws("s3", "cp", f"{url}cli/large.bin", str(down))
        self.assertEqual(_sha256(down.read_bytes()), _sha256(large))

        small = self.local("small.txt", b"small and described\n")
        self.aws(
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            self.key("cli/described.txt"),
            "--body",
            str(small),
            "--content-type",
            "text/plain; charset=utf-8",
            "--metadata",
            "origin=aws-cli,spaced=two words",
        )
        head = json.loads(
            self.aws(
                "s3api",
                "head-object",
                "--bucket",
                bucket,
                "--key",
                self.key("cli/described.txt"),
            )
        )
        self.assertEqual(
            (head["ContentType"], head["Metadata"]),
            ("text/plain; charset=utf-8", {"origin": "aws-cli", "spaced": "two words"}),
        )
        self.assert_stored(self.key("cli/described.txt"), b"small and described\n")

        tree = {"a.txt": b"alpha", "sub/b.txt": b"beta", "sub/deeper/c d.txt": b"gamma"}
        for name, content in tree.items():
            self.local(f"tree/{name}", content)
        self.aws("s3", "sync", str(self.directory / "tree"), f"{url}sync/")
        for name, content in tree.items():
            self.assert_stored(self.key(f"sync/{name}"), content)
        self.aws("s3", "mv", f"{url}sync/a.txt", f"{url}moved/a.txt")
        self.assertIsNone(self.place.stored(self.key("sync/a.txt")))
        self.assert_stored(self.key("moved/a.txt"), b"alpha")

        key = self.key("cli/api-multipart.bin")
        upload = json.loads(
            self.aws(
                "s3api", "create-multipart-upload", "--bucket", bucket, "--key", key
            )
        )["UploadId"]
        pieces = [pattern(PART, 36), pattern(2000, 37)]
        parts = []
        for number, piece in enumerate(pieces, start=1):
            path = self.local(f"part-{number}", piece)
            answer = json.loads(
                self.aws(
                    "s3api",
                    "upload-part",
                    "--bucket",
                    bucket,
                    "--key",
                    key,
                    "--upload-id",
                    upload,
                    "--part-number",
                    str(number),
                    "--body",
                    str(path),
                )
            )
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        document = self.local("parts.json", json.dumps({"Parts": parts}).encode())
        self.aws(
            "s3api",
            "complete-multipart-upload",
            "--bucket",
            bucket,
            "--key",
            key,
            "--upload-id",
            upload,
            "--multipart-upload",
            f"file://{document}",
        )
        self.assert_stored(key, b"".join(pieces))

        self.aws("s3", "rm", "--recursive", url)
        self.assertEqual(self.place.stored_keys(self.base), [])

    # -- s3fs ------------------------------------------------------------------------------

    def test_s3fs(self) -> None:
        """
        s3fs: C{put} of a file, C{pipe}, C{open(..., 'wb')} written in
        pieces past its 5 MiB block size (a multipart upload), C{copy} and
        C{rm} (one file, then a whole prefix).
        """
        import s3fs  # type: ignore[import-untyped]

        client_kwargs: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "region_name": REGION,
        }
        if self.https:
            client_kwargs["verify"] = self.ca
        fs = s3fs.S3FileSystem(
            key=WRITER[0],
            secret=WRITER[1],
            client_kwargs=client_kwargs,
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        root = f"{self.place.bucket}/{self.base}s3fs"
        put = pattern(300_000, 38)
        fs.put(str(self.local("put.bin", put)), f"{root}/put.bin")
        self.assert_stored(self.key("s3fs/put.bin"), put)
        fs.pipe(f"{root}/pipe.bin", b"piped bytes")
        self.assert_stored(self.key("s3fs/pipe.bin"), b"piped bytes")
        large = pattern(LARGE, 39)
        with fs.open(f"{root}/written.bin", "wb", block_size=PART) as out:
            for offset in range(0, LARGE, MiB):
                out.write(large[offset : offset + MiB])
        self.assert_stored(self.key("s3fs/written.bin"), large)
        self.assert_multipart(self.key("s3fs/written.bin"))
        fs.copy(f"{root}/put.bin", f"{root}/copied.bin")
        self.assert_stored(self.key("s3fs/copied.bin"), put)
        fs.rm(f"{root}/pipe.bin")
        self.assertIsNone(self.place.stored(self.key("s3fs/pipe.bin")))
        fs.rm(root, recursive=True)
        self.assertEqual(self.place.stored_keys(self.base), [])

    # -- obstore -------------------------------------------------------------------------

    def test_obstore(self) -> None:
        """
        obstore: C{put} of bytes, a multipart C{put} of a large object with
        four parts in flight, C{copy} and C{delete}.
        """
        import obstore
        from obstore.store import S3Store

        client_options: dict[str, Any] = {}
        if self.https:
            client_options["root_certificate"] = Path(self.ca).read_text()
        store = S3Store(
            self.place.bucket,
            config={
                "endpoint": self.endpoint,
                "access_key_id": WRITER[0],
                "secret_access_key": WRITER[1],
                "region": REGION,
                "allow_http": True,
            },
            client_options=client_options,
        )
        small = pattern(50_000, 40)
        obstore.put(store, self.key("obstore/small.bin"), small)
        self.assert_stored(self.key("obstore/small.bin"), small)
        large = pattern(LARGE, 41)
        obstore.put(
            store,
            self.key("obstore/large.bin"),
            io.BytesIO(large),
            use_multipart=True,
            chunk_size=PART,
            max_concurrency=4,
        )
        self.assert_stored(self.key("obstore/large.bin"), large)
        self.assert_multipart(self.key("obstore/large.bin"))
        obstore.copy(store, self.key("obstore/small.bin"), self.key("obstore/copy.bin"))
        self.assert_stored(self.key("obstore/copy.bin"), small)
        for name in ("small.bin", "large.bin", "copy.bin"):
            obstore.delete(store, self.key(f"obstore/{name}"))
        self.assertEqual(self.place.stored_keys(self.base), [])

    # -- s5cmd ----------------------------------------------------------------------------

    def s5cmd(self, *args: str) -> bytes:
        """
        Run C{s5cmd} against the daemon (trusting the HTTPS listener's CA
        through C{SSL_CERT_FILE}).
        """
        extra = {"SSL_CERT_FILE": self.ca} if self.https else {}
        argv = [
            str(BIN_DIR / "s5cmd"),
            "--endpoint-url",
            self.endpoint,
            "--retry-count",
            "0",
            "--log",
            "error",
            *args,
        ]
        return run(argv, self.cli_environment(**extra))

    def test_s5cmd(self) -> None:
        """
        s5cmd: C{cp} up (in 5 MiB parts, four at a time) and down, C{sync}
        of a directory, C{rm} of a wildcard.
        """
        url = f"s3://{self.place.bucket}/{self.base}"
        large = pattern(LARGE, 42)
        source = self.local("large.bin", large)
        self.s5cmd("cp", "-p", "5", "-c", "4", str(source), f"{url}s5cmd/large.bin")
        self.assert_stored(self.key("s5cmd/large.bin"), large)
        self.assert_multipart(self.key("s5cmd/large.bin"))
        down = self.directory / "down.bin"
        self.s5cmd("cp", f"{url}s5cmd/large.bin", str(down))
        self.assertEqual(_sha256(down.read_bytes()), _sha256(large))
        tree = {"a.txt": b"alpha", "sub/b.txt": b"beta", "sub/c d.txt": b"gamma"}
        for name, content in tree.items():
            self.local(f"tree/{name}", content)
        self.s5cmd("sync", f"{self.directory / 'tree'}/", f"{url}sync/")
        for name, content in tree.items():
            self.assert_stored(self.key(f"sync/{name}"), content)
        self.s5cmd("rm", f"{url}*")
        self.assertEqual(self.place.stored_keys(self.base), [])

    # -- rclone ---------------------------------------------------------------------------

    def rclone(self, *args: str) -> bytes:
        """
        Run C{rclone} with an C{s3} remote C{gateway:} for the daemon.
        """
        config = self.directory / "rclone.conf"
        config.write_text(
            "[gateway]\n"
            "type = s3\n"
            "provider = Other\n"
            f"access_key_id = {WRITER[0]}\n"
            f"secret_access_key = {WRITER[1]}\n"
            f"endpoint = {self.endpoint}\n"
            f"region = {REGION}\n"
            "force_path_style = true\n"
            "upload_cutoff = 5Mi\n"
            "chunk_size = 5Mi\n"
            "upload_concurrency = 4\n"
        )
        argv = [
            str(BIN_DIR / "rclone"),
            "--config",
            str(config),
            "--cache-dir",
            str(self.directory / "rclone-cache"),
            "--low-level-retries",
            "1",
            "--retries",
            "1",
        ]
        if self.https:
            argv += ["--ca-cert", self.ca]
        return run([*argv, *args], client_environment(self.directory))

    def test_rclone(self) -> None:
        """
        rclone: C{copyto} of a large file (in parts), C{sync} of a
        directory, C{delete}, and C{copyto} back down.
        """
        remote = f"gateway:{self.place.bucket}/{self.base}"
        large = pattern(LARGE, 43)
        source = self.local("large.bin", large)
        self.rclone("copyto", str(source), f"{remote}rclone/large.bin")
        self.assert_stored(self.key("rclone/large.bin"), large)
        self.assert_multipart(self.key("rclone/large.bin"))
        down = self.directory / "down.bin"
        self.rclone("copyto", f"{remote}rclone/large.bin", str(down))
        self.assertEqual(_sha256(down.read_bytes()), _sha256(large))
        tree = {"a.txt": b"alpha", "sub/b.txt": b"beta", "sub/c d.txt": b"gamma"}
        for name, content in tree.items():
            self.local(f"tree/{name}", content)
        self.rclone("sync", str(self.directory / "tree"), f"{remote}sync")
        for name, content in tree.items():
            self.assert_stored(self.key(f"sync/{name}"), content)
        self.rclone("delete", f"{remote}sync")
        self.rclone("delete", f"{remote}rclone")
        self.assertEqual(self.place.stored_keys(self.base), [])

    # -- minio-py ------------------------------------------------------------------------

    def test_minio(self) -> None:
        """
        minio-py: C{put_object} with metadata, C{fput_object} of a file
        large enough for a multipart upload, C{copy_object} and
        C{remove_objects}.
        """
        import urllib3
        from minio import Minio
        from minio.commonconfig import CopySource
        from minio.deleteobjects import DeleteObject

        http_client = None
        if self.https:
            http_client = urllib3.PoolManager(
                cert_reqs="CERT_REQUIRED", ca_certs=self.ca
            )
        client = Minio(
            self.endpoint.split("://", 1)[1],
            access_key=WRITER[0],
            secret_key=WRITER[1],
            secure=self.https,
            region=REGION,
            http_client=http_client,
        )
        bucket = self.place.bucket
        data = pattern(80_000, 44)
        client.put_object(
            bucket,
            self.key("minio/put.bin"),
            io.BytesIO(data),
            len(data),
            content_type="application/x-minio",
            metadata={"origin": "minio"},
        )
        self.assert_stored(self.key("minio/put.bin"), data)
        stat = client.stat_object(bucket, self.key("minio/put.bin"))
        self.assertEqual(stat.content_type, "application/x-minio")
        self.assertEqual(stat.metadata.get("x-amz-meta-origin"), "minio")
        large = pattern(LARGE, 45)
        source = self.local("large.bin", large)
        client.fput_object(
            bucket, self.key("minio/large.bin"), str(source), part_size=PART
        )
        self.assert_stored(self.key("minio/large.bin"), large)
        self.assert_multipart(self.key("minio/large.bin"))
        client.copy_object(
            bucket,
            self.key("minio/copy.bin"),
            CopySource(bucket, self.key("minio/put.bin")),
        )
        self.assert_stored(self.key("minio/copy.bin"), data)
        errors = list(
            client.remove_objects(
                bucket,
                [
                    DeleteObject(self.key(f"minio/{name}"))
                    for name in ("put.bin", "large.bin", "copy.bin")
                ],
            )
        )
        self.assertEqual(errors, [])
        self.assertEqual(self.place.stored_keys(self.base), [])


class SeaweedFSHTTPTests(_ClientMixin, SynchronousTestCase):
    """
    Every client, over plain HTTP, writing to SeaweedFS.
    """

    place_name = "sw"
    transport = "http"


class SeaweedFSHTTPSTests(_ClientMixin, SynchronousTestCase):
    """
    Every client, over HTTPS, writing to SeaweedFS.
    """

    place_name = "sw"
    transport = "https"


class AzureHTTPTests(_ClientMixin, SynchronousTestCase):
    """
    Every client, over plain HTTP, writing to an Azure container (Azurite),
    under a backend prefix.
    """

    place_name = "az"
    transport = "http"


class GcsHTTPSTests(_ClientMixin, SynchronousTestCase):
    """
    Every client, over HTTPS, writing to a GCS bucket (fake-gcs-server).
    """

    place_name = "gc"
    transport = "https"


class _SomeClientsMixin(_ClientMixin):
    """
    boto3 and aws-cli only.
    """

    test_s3fs = None  # type: ignore[assignment]
    test_obstore = None  # type: ignore[assignment]
    test_s5cmd = None  # type: ignore[assignment]
    test_rclone = None  # type: ignore[assignment]
    test_minio = None  # type: ignore[assignment]


class MotoHTTPSTests(_SomeClientsMixin, SynchronousTestCase):
    """
    boto3 and aws-cli, over HTTPS, writing to moto.
    """

    place_name = "mo"
    transport = "https"


class FileHTTPTests(_SomeClientsMixin, SynchronousTestCase):
    """
    boto3 and aws-cli, over plain HTTP, writing to a directory bucket.
    """

    place_name = "fi"
    transport = "http"


class FileHTTPSTests(_SomeClientsMixin, SynchronousTestCase):
    """
    boto3 and aws-cli, over HTTPS, writing to a directory bucket.
    """

    place_name = "fi"
    transport = "https"
