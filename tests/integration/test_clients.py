# mypy: disable-error-code="no-untyped-call"
"""
Every real client, as a new user would set it up, listing and reading odd
keys through the daemon: boto3, aws-cli, s3fs, obstore, rclone and minio-py.

The keys are seeded straight into SeaweedFS, moto, Azurite and
fake-gcs-server under a backend prefix, and every client must list exactly
those keys and read each one back byte for byte. A last test puts C{rclone serve s3} behind the daemon instead.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar
from uuid import uuid4

import pytest
from attrs import define, evolve
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
from tests.integration.test_read_path import (
    DOUBLE_SLASH,
    ODD_KEYS,
    REGION,
    decoded_token,
    object_path,
    signed_request,
)
from tests.integration.test_write_path import Place

#: The reader's static credential: every bucket, read actions.
CLIENT_KEY: Final = ("AKCLIENTS00000000001", "clients-reader-secret")

#: Seconds any one client command may take.
COMMAND_TIMEOUT: Final = 120.0

#: Parallel client processes (the CI machine has two cores).
WORKERS: Final = 4

_T = TypeVar("_T")
_R = TypeVar("_R")


def body_of(key: str) -> bytes:
    """
    :return: the seeded body of ``key``: its UTF-8 bytes between two binary
        markers, so any mix-up or text decoding shows.
    """
    return b"\x00\xff" + key.encode("utf-8") + b"\r\n\xfe"


@define
class ClientSide:
    """
    A backend holding the odd keys, and the virtual bucket over it.

    :ivar name: C{seaweedfs}, C{moto}, C{azure} or C{gcs}.
    :ivar place: the virtual bucket (under a backend prefix) and its store.
    :ivar keys: the virtual keys under C{odd/}, sorted.
    :ivar double_slash: whether C{double/a//double} is stored too (only
        where the backend keeps empty segments).
    """

    name: str
    place: Place
    keys: list[str]
    double_slash: bool

    @property
    def bucket(self) -> str:
        """
        The virtual bucket.
        """
        return self.place.bucket

    def backend_keys(self, prefix: str) -> list[str]:
        """
        :return: the backend's own listing under the backend prefix plus
            ``prefix``, as virtual keys.
        """
        return self.place.stored_keys(prefix)


@define
class ClientWorld:
    """
    The module's daemon and the backends behind it.
    """

    daemon: Daemon
    sides: dict[str, ClientSide]


def _client_side(name: str, place: Place, double_slash: bool) -> ClientSide:
    keys = sorted("odd/" + key for key in ODD_KEYS)
    keys_stored = [*keys, "double/" + DOUBLE_SLASH] if double_slash else keys
    for key in keys_stored:
        place.put(key, body_of(key))
    # The same key outside the backend prefix must never show.
    evolve(place, prefix="").put("odd/outside.txt", b"outside")
    return ClientSide(name=name, place=place, keys=keys, double_slash=double_slash)


@pytest.fixture(scope="module")
def client_world(
    module_multistore_daemon: DaemonFactory,
    seaweedfs: S3Server,
    moto_server: S3Server,
    azurite: AzureServer,
    fake_gcs: GcsServer,
) -> ClientWorld:
    """
    The odd keys on SeaweedFS, moto, Azurite and fake-gcs-server, each under
    a backend prefix, and a daemon serving them all.
    """

    def prefix() -> str:
        return f"zc{uuid4().hex[:10]}/base"

    container = azurite.create_container(unique_bucket_name("clients"))
    gcs_bucket = fake_gcs.create_bucket(unique_bucket_name("clients"))
    sides = {
        # SeaweedFS folds empty key segments itself, so a//double only on
        # the others.
        "seaweedfs": _client_side(
            "seaweedfs",
            Place.on_s3("seaweedfs-odd", seaweedfs, prefix()),
            double_slash=False,
        ),
        "moto": _client_side(
            "moto", Place.on_s3("moto-odd", moto_server, prefix()), double_slash=True
        ),
        "azure": _client_side(
            "azure",
            Place.on_cloud("azure-odd", AzureContainer(azurite, container), prefix()),
            double_slash=True,
        ),
        "gcs": _client_side(
            "gcs",
            Place.on_cloud("gcs-odd", GcsBucket(fake_gcs, gcs_bucket), prefix()),
            double_slash=True,
        ),
    }
    config = {
        "buckets": [side.place.config() for side in sides.values()],
        "credentials": [
            {
                "access_key_id": CLIENT_KEY[0],
                "secret_access_key": CLIENT_KEY[1],
                "allowed_scopes": [
                    {"bucket": "*", "actions": ["get_object", "list_bucket"]}
                ],
            }
        ],
    }
    return ClientWorld(module_multistore_daemon(config), sides)


def run(argv: Sequence[str], env: dict[str, str] | None = None) -> bytes:
    """
    Run a client command to completion.

    :return: its standard output.
    :raise AssertionError: if it fails, with its standard error.
    """
    done = subprocess.run(
        list(argv),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{argv[:4]} exited {done.returncode}: "
            f"{done.stderr.decode('utf-8', 'replace')[-2000:]}"
        )
    return done.stdout


def in_parallel(function: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """
    :return: ``function`` of each item, computed a few at a time, in order.
    """
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(function, items))


def client_environment(directory: Path, **extra: str) -> dict[str, str]:
    """
    An environment for client processes: UTF-8 everywhere, no credentials,
    profiles or instance metadata from this machine.

    :param directory: where empty config files may go.
    :param extra: variables to add.
    """
    config = directory / "aws-config"
    config.write_text("")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "RCLONE_")) and k != "PYTHONPATH"
    }
    env.update(
        {
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(config),
            "AWS_EC2_METADATA_DISABLED": "true",
            "LC_ALL": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            "PYTHONUTF8": "1",
        }
    )
    env.update(extra)
    return env


class _ClientMixin:
    """
    Gives each test C{self.world}, C{self.side} (named by C{side_name}) and
    C{self.directory}; each test checks one client against the backend's
    own listing.
    """

    side_name = "seaweedfs"

    @pytest.fixture(autouse=True)
    def _world(self, client_world: ClientWorld, tmp_path: Path) -> None:
        self.world = client_world
        self.side = client_world.sides[self.side_name]
        self.directory = tmp_path

    @property
    def endpoint(self) -> str:
        """
        The daemon's URL.
        """
        return self.world.daemon.url

    def expected(self) -> list[str]:
        """
        :return: the keys under C{odd/}, after checking that the backend
            itself lists them so.
        """
        self.assertEqual(self.side.backend_keys("odd/"), self.side.keys)
        return self.side.keys

    def test_boto3(self) -> None:
        """
        boto3: the V2 and V1 paginators list the odd keys; GetObject,
        HeadObject and a range read each one exactly.
        """
        client = s3_client(self.endpoint, *CLIENT_KEY)
        expected = self.expected()
        for operation in ("list_objects_v2", "list_objects"):
            pages = client.get_paginator(operation).paginate(
                Bucket=self.side.bucket, Prefix="odd/", PaginationConfig={"PageSize": 3}
            )
            keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
            self.assertEqual(keys, expected, operation)
        keys = expected + (["double/" + DOUBLE_SLASH] if self.side.double_slash else [])
        for key in keys:
            got = client.get_object(Bucket=self.side.bucket, Key=key)
            self.assertEqual(got["Body"].read(), body_of(key), key)
            head = client.head_object(Bucket=self.side.bucket, Key=key)
            self.assertEqual(head["ContentLength"], len(body_of(key)))
            ranged = client.get_object(
                Bucket=self.side.bucket, Key=key, Range="bytes=2-"
            )
            self.assertEqual(ranged["Body"].read(), body_of(key)[2:])
        if self.side.double_slash:
            listed = client.list_objects_v2(Bucket=self.side.bucket, Prefix="double/")
            self.assertEqual(
                [o["Key"] for o in listed["Contents"]], ["double/" + DOUBLE_SLASH]
            )

    def test_aws_cli(self) -> None:
        """
        aws-cli: C{aws s3 ls --recursive} and C{aws s3api list-objects-v2}
        list the odd keys; C{aws s3 cp s3://... -} and C{aws s3api
        get-object} read each exactly.
        """
        expected = self.expected()
        aws = [
            str(BIN_DIR / "aws"),
            "--endpoint-url",
            self.endpoint,
            "--region",
            REGION,
        ]
        env = client_environment(
            self.directory,
            AWS_ACCESS_KEY_ID=CLIENT_KEY[0],
            AWS_SECRET_ACCESS_KEY=CLIENT_KEY[1],
        )
        bucket = self.side.bucket
        listing = run([*aws, "s3", "ls", "--recursive", f"s3://{bucket}/odd/"], env)
        lines = listing.decode("utf-8").splitlines()
        self.assertEqual(sorted(line.split(None, 3)[3] for line in lines), expected)
        api = run(
            [*aws, "s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "odd/"],
            env,
        )
        self.assertEqual([o["Key"] for o in json.loads(api)["Contents"]], expected)
        keys = expected + (["double/" + DOUBLE_SLASH] if self.side.double_slash else [])

        def copy(key: str) -> bytes:
            return run([*aws, "s3", "cp", f"s3://{bucket}/{key}", "-"], env)

        def get(item: tuple[int, str]) -> bytes:
            index, key = item
            target = self.directory / f"object-{index}"
            run(
                [
                    *aws,
                    "s3api",
                    "get-object",
                    "--bucket",
                    bucket,
                    "--key",
                    key,
                    str(target),
                ],
                env,
            )
            return target.read_bytes()

        self.assertEqual(in_parallel(copy, keys), [body_of(k) for k in keys])
        self.assertEqual(
            in_parallel(get, list(enumerate(keys))), [body_of(k) for k in keys]
        )

    def test_s3fs(self) -> None:
        """
        s3fs: C{find} lists the odd keys, C{ls} walks their directories,
        C{cat_file} reads and C{info} sizes each one exactly.
        """
        import s3fs  # type: ignore[import-untyped]

        expected = self.expected()
        fs = s3fs.S3FileSystem(
            anon=False,
            key=CLIENT_KEY[0],
            secret=CLIENT_KEY[1],
            client_kwargs={"endpoint_url": self.endpoint, "region_name": REGION},
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        bucket = self.side.bucket
        found = fs.find(f"{bucket}/odd/")
        self.assertEqual(found, [f"{bucket}/{k}" for k in expected])
        self.assertEqual(
            fs.ls(f"{bucket}/odd/unicode/café/", detail=False),
            [f"{bucket}/odd/unicode/café/naïve.txt"],
        )
        self.assertEqual(
            fs.ls(f"{bucket}/odd/spaces in/", detail=False),
            [f"{bucket}/odd/spaces in/every segment.txt"],
        )
        top = fs.ls(f"{bucket}/odd/", detail=True)
        directories = sorted(e["name"] for e in top if e["type"] == "directory")
        self.assertEqual(
            directories, [f"{bucket}/odd/spaces in", f"{bucket}/odd/unicode"]
        )
        keys = expected + (["double/" + DOUBLE_SLASH] if self.side.double_slash else [])
        for key in keys:
            path = f"{bucket}/{key}"
            self.assertEqual(fs.cat_file(path), body_of(key), key)
            self.assertEqual(fs.info(path)["size"], len(body_of(key)), key)
            self.assertEqual(fs.cat_file(path, start=2, end=5), body_of(key)[2:5])

    def test_obstore(self) -> None:
        """
        obstore: C{list} and C{list_with_delimiter} give the odd keys;
        C{get}, C{get_range} and C{head} read each exactly. (obstore cannot
        represent keys with empty segments, so C{a//double} is not tried.)
        """
        import obstore
        from obstore.store import S3Store

        expected = self.expected()
        store = S3Store(
            self.side.bucket,
            config={
                "endpoint": self.endpoint,
                "allow_http": True,
                "access_key_id": CLIENT_KEY[0],
                "secret_access_key": CLIENT_KEY[1],
                "region": REGION,
            },
        )
        listed = [
            o["path"] for batch in obstore.list(store, prefix="odd/") for o in batch
        ]
        self.assertEqual(listed, expected)
        grouped = obstore.list_with_delimiter(store, prefix="odd/")
        self.assertEqual(grouped["common_prefixes"], ["odd/spaces in", "odd/unicode"])
        self.assertEqual(
            [o["path"] for o in grouped["objects"]],
            [k for k in expected if k.count("/") == 1],
        )
        for key in expected:
            body = body_of(key)
            self.assertEqual(bytes(obstore.get(store, key).bytes()), body, key)
            self.assertEqual(
                bytes(obstore.get_range(store, key, start=1, end=4)), body[1:4]
            )
            self.assertEqual(obstore.head(store, key)["size"], len(body))

    def test_rclone(self) -> None:
        """
        rclone (an C{s3} remote, C{provider = Other}, path style):
        C{rclone lsf -R} lists the odd keys and C{rclone cat} reads each
        exactly. (rclone cleans C{a//double} into C{a/double}, so that key is
        not tried.)
        """
        expected = self.expected()
        config = self.directory / "rclone.conf"
        config.write_text(
            "[gateway]\n"
            "type = s3\n"
            "provider = Other\n"
            f"access_key_id = {CLIENT_KEY[0]}\n"
            f"secret_access_key = {CLIENT_KEY[1]}\n"
            f"endpoint = {self.endpoint}\n"
            f"region = {REGION}\n"
            "force_path_style = true\n"
        )
        rclone = [
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
        env = client_environment(self.directory)
        bucket = self.side.bucket
        listing = run(
            [*rclone, "lsf", "-R", "--files-only", f"gateway:{bucket}/odd"], env
        )
        self.assertEqual(
            sorted("odd/" + line for line in listing.decode("utf-8").splitlines()),
            expected,
        )

        def cat(key: str) -> bytes:
            return run([*rclone, "cat", f"gateway:{bucket}/{key}"], env)

        self.assertEqual(in_parallel(cat, expected), [body_of(k) for k in expected])

    def test_minio(self) -> None:
        """
        minio-py: C{list_objects} (V2 and V1, recursive) lists the odd keys,
        C{get_object} and C{stat_object} read each exactly.
        """
        from minio import Minio

        expected = self.expected()
        client = Minio(
            self.endpoint.removeprefix("http://"),
            access_key=CLIENT_KEY[0],
            secret_key=CLIENT_KEY[1],
            secure=False,
            region=REGION,
        )
        bucket = self.side.bucket
        for v1 in (False, True):
            listed = client.list_objects(
                bucket, prefix="odd/", recursive=True, use_api_v1=v1
            )
            self.assertEqual([o.object_name for o in listed], expected, v1)
        keys = expected + (["double/" + DOUBLE_SLASH] if self.side.double_slash else [])
        for key in keys:
            response = client.get_object(bucket, key)
            try:
                self.assertEqual(response.read(), body_of(key), key)
            finally:
                response.close()
                response.release_conn()
            self.assertEqual(client.stat_object(bucket, key).size, len(body_of(key)))
            response = client.get_object(bucket, key, offset=3, length=2)
            try:
                self.assertEqual(response.read(), body_of(key)[3:5])
            finally:
                response.close()
                response.release_conn()


class SeaweedFSClientTests(_ClientMixin, SynchronousTestCase):
    """
    Every client, through SeaweedFS.
    """

    side_name = "seaweedfs"


class MotoClientTests(_ClientMixin, SynchronousTestCase):
    """
    Every client, through moto.
    """

    side_name = "moto"


class AzureClientTests(_ClientMixin, SynchronousTestCase):
    """
    Every client, through an Azure container (Azurite).
    """

    side_name = "azure"


class GcsClientTests(_ClientMixin, SynchronousTestCase):
    """
    Every client, through a GCS bucket (fake-gcs-server).
    """

    side_name = "gcs"


class RcloneBackendTests(SynchronousTestCase):
    """
    C{rclone serve s3} as the backend.
    """

    @pytest.fixture(autouse=True)
    def _servers(
        self, rclone_server: S3Server, multistore_daemon: DaemonFactory
    ) -> None:
        self.server = rclone_server
        self.start = multistore_daemon

    def test_list_and_get(self) -> None:
        """
        A bucket on C{rclone serve s3}, under a backend prefix, lists and
        reads through the daemon (rclone verifies the daemon's signatures),
        and nothing outside the prefix shows.
        """
        backend_bucket = self.server.create_bucket(unique_bucket_name("rclone"))
        backend = self.server.client()
        keys = ["a.txt", "dir/b c.bin", "unicode/café.txt", "plus+sign"]
        for key in keys:
            backend.put_object(
                Bucket=backend_bucket, Key=f"inner/{key}", Body=body_of(key)
            )
        backend.put_object(Bucket=backend_bucket, Key="elsewhere.txt", Body=b"no")
        daemon = self.start(
            {
                "buckets": [
                    {
                        "name": "smoke",
                        "backend_type": "s3",
                        "backend_prefix": "inner",
                        "backend_options": self.server.backend_options(backend_bucket),
                    }
                ],
                "credentials": [
                    {
                        "access_key_id": CLIENT_KEY[0],
                        "secret_access_key": CLIENT_KEY[1],
                        "allowed_scopes": [
                            {
                                "bucket": "smoke",
                                "actions": ["get_object", "list_bucket"],
                            }
                        ],
                    }
                ],
            }
        )
        client = s3_client(daemon.url, *CLIENT_KEY)
        listed = client.list_objects_v2(Bucket="smoke", MaxKeys=2)
        seen = [o["Key"] for o in listed["Contents"]]
        while listed["IsTruncated"]:
            token = listed["NextContinuationToken"]
            self.assertNotIn("inner", decoded_token(token))
            listed = client.list_objects_v2(
                Bucket="smoke", MaxKeys=2, ContinuationToken=token
            )
            seen.extend(o["Key"] for o in listed["Contents"])
        self.assertEqual(seen, sorted(keys))
        for key in keys:
            got = client.get_object(Bucket="smoke", Key=key)["Body"].read()
            self.assertEqual(got, body_of(key))
            raw = signed_request(daemon, "GET", object_path("smoke", key), *CLIENT_KEY)
            self.assertEqual((raw.status, raw.body), (200, body_of(key)))
