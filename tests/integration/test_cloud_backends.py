# mypy: disable-error-code="no-untyped-call"
"""
The same S3 operations through a virtual bucket on S3 (SeaweedFS), on Azure
Blob Storage (Azurite) and on Google Cloud Storage (fake-gcs-server), each
under a backend prefix, with what each service really stored checked with
its own SDK: metadata and content headers, ranges and conditions, listings
with every kind of pagination, errors, batch deletes, multipart uploads
(including one interrupted by a daemon restart) and copies between the
three services.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, Final
from uuid import uuid4

import pytest
from attrs import define
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from tests.integration.emulators import (
    AzureContainer,
    AzureServer,
    GcsBucket,
    GcsServer,
)
from tests.integration.servers import (
    Daemon,
    DaemonFactory,
    S3Server,
    error_code,
    http_status,
    s3_client,
    unique_bucket_name,
)
from tests.integration.test_write_path import WRITER, Place, writer_credential

MiB: Final = 1024 * 1024

#: Every place, by the short name the parametrized tests use.
PLACES: Final = ("s3", "azure", "gcs")

#: Metadata whose names an Azure blob cannot hold as they are (metadata
#: names there must be identifiers), and values with spaces and digits.
METADATA: Final = {
    "plain": "value",
    "with-hyphens": "a b c",
    "dotted.name": "1.5",
    "9starts-with-digit": "x",
    "under_score": "_",
}


@define
class CloudWorld:
    """
    The module's daemon and its buckets: C{s3}, C{azure} and C{gcs} (each
    under a backend prefix), and C{azure-sas}, the same container signed with
    a SAS token instead of the account key; C{azp-*} and C{gsp-*}, patterns
    whose buckets are containers and GCS buckets of their own.
    """

    daemon: Daemon
    places: dict[str, Place]
    azure: AzureServer
    gcs: GcsServer

    def client(self) -> Any:
        """
        :return: a boto3 client of the daemon with every right.
        """
        return s3_client(self.daemon.url, *WRITER)


def _sas(azure: AzureServer, container: str) -> str:
    from datetime import UTC, datetime, timedelta

    return str(
        generate_container_sas(
            azure.account_name,
            container,
            account_key=azure.account_key,
            permission=ContainerSasPermissions(
                read=True, write=True, delete=True, list=True, add=True, create=True
            ),
            expiry=datetime.now(UTC) + timedelta(hours=2),
        )
    )


def _config(world_places: dict[str, Place], extra: list[dict[str, Any]]) -> Any:
    return {
        "buckets": [p.config() for p in world_places.values()] + extra,
        "credentials": [writer_credential()],
    }


@pytest.fixture(scope="module")
def cloud_world(
    module_multistore_daemon: DaemonFactory,
    seaweedfs: S3Server,
    azurite: AzureServer,
    fake_gcs: GcsServer,
) -> CloudWorld:
    """
    A daemon over one bucket on each service.
    """
    container = azurite.create_container(unique_bucket_name("cloud"))
    gcs_bucket = fake_gcs.create_bucket(unique_bucket_name("cloud"))
    places = {
        "s3": Place.on_s3("s3", seaweedfs, f"cb{uuid4().hex[:8]}/s3"),
        "azure": Place.on_cloud(
            "azure", AzureContainer(azurite, container), f"cb{uuid4().hex[:8]}/az"
        ),
        "gcs": Place.on_cloud(
            "gcs", GcsBucket(fake_gcs, gcs_bucket), f"cb{uuid4().hex[:8]}/gs"
        ),
    }
    sas = {
        "name": "azure-sas",
        "backend_type": "azure",
        "backend_prefix": places["azure"].prefix,
        "backend_options": {
            "endpoint": azurite.endpoint,
            "account_name": azurite.account_name,
            "container_name": container,
            "sas_token": _sas(azurite, container),
        },
    }
    wrong_key = {
        "name": "azure-wrong-key",
        "backend_type": "azure",
        "backend_options": azurite.backend_options(
            container, access_key="d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="
        ),
    }
    patterns = [
        {
            "name": "azp-*",
            "backend_type": "azure",
            "backend_options": azurite.backend_options("{bucket}"),
        },
        {
            "name": "gsp-*",
            "backend_type": "gcs",
            "backend_options": fake_gcs.backend_options("{bucket}"),
        },
    ]
    daemon = module_multistore_daemon(_config(places, [sas, wrong_key, *patterns]))
    return CloudWorld(daemon, places, azurite, fake_gcs)


@pytest.fixture
def world(cloud_world: CloudWorld) -> CloudWorld:
    """
    The module's world, shorter.
    """
    return cloud_world


def _key(name: str) -> str:
    return f"t{uuid4().hex[:10]}/{name}"


def _error(call: Any, **params: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as raised:
        call(**params)
    return http_status(raised.value), error_code(raised.value)


# --- objects ---------------------------------------------------------------


@pytest.mark.parametrize("name", PLACES)
def test_put_get_head_metadata(world: CloudWorld, name: str) -> None:
    """
    An object PUT with metadata (names the backend cannot hold as they are)
    and content headers comes back exactly, through GET and HEAD; the
    backend holds the bytes and the content type.
    """
    place = world.places[name]
    client = world.client()
    key = _key("ünïcode name+plus.bin")
    body = bytes(range(256)) * 41
    client.put_object(
        Bucket=place.bucket,
        Key=key,
        Body=body,
        ContentType="application/x-test",
        ContentDisposition='attachment; filename="a.bin"',
        ContentEncoding="identity",
        CacheControl="max-age=60",
        ContentLanguage="en",
        Metadata=METADATA,
    )
    got = client.get_object(Bucket=place.bucket, Key=key)
    assert got["Body"].read() == body
    head = client.head_object(Bucket=place.bucket, Key=key)
    for answer in (got, head):
        assert answer["ContentLength"] == len(body)
        assert answer["ContentType"] == "application/x-test"
        assert answer["ContentDisposition"] == 'attachment; filename="a.bin"'
        assert answer["CacheControl"] == "max-age=60"
        assert answer["ContentLanguage"] == "en"
        assert answer["Metadata"] == METADATA
        assert answer["ETag"].startswith('"') and answer["ETag"].endswith('"')
    assert place.stored(key) == body
    if place.cloud is not None:
        stored = place.cloud.get(place.backend_key(key))
        assert stored is not None
        assert stored.content_type == "application/x-test"
        assert len(stored.metadata) == len(METADATA)
        # Other clients of the store see the names as written, not
        # capitalized by the HTTP client ("Plain").
        assert stored.metadata["plain"] == "value"
        assert place.metadata(key) == METADATA


@pytest.mark.parametrize("name", PLACES)
def test_ranges(world: CloudWorld, name: str) -> None:
    """
    Range reads answer 206 with S3's Content-Range; an unsatisfiable one is
    InvalidRange; partNumber=1 of a one-part object is the whole object.
    """
    place = world.places[name]
    client = world.client()
    key = _key("ranged")
    body = hashlib.sha256(b"r").digest() * 100
    client.put_object(Bucket=place.bucket, Key=key, Body=body)
    for spec, expected in (
        ("bytes=0-9", body[:10]),
        ("bytes=10-", body[10:]),
        ("bytes=-7", body[-7:]),
        ("bytes=3000-", body[3000:]),
    ):
        got = client.get_object(Bucket=place.bucket, Key=key, Range=spec)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, spec
        assert got["Body"].read() == expected, spec
        assert got["ContentRange"].endswith(f"/{len(body)}"), spec
    assert _error(
        client.get_object, Bucket=place.bucket, Key=key, Range="bytes=9999-"
    ) == (416, "InvalidRange")
    whole = client.get_object(Bucket=place.bucket, Key=key, PartNumber=1)
    assert whole["Body"].read() == body


@pytest.mark.parametrize("name", PLACES)
def test_conditions(world: CloudWorld, name: str) -> None:
    """
    If-Match / If-None-Match on reads (412 and 304) and on writes
    (PreconditionFailed), If-None-Match: * refusing to overwrite.
    """
    place = world.places[name]
    client = world.client()
    key = _key("conditional")
    etag = client.put_object(Bucket=place.bucket, Key=key, Body=b"one")["ETag"]
    assert (
        client.get_object(Bucket=place.bucket, Key=key, IfMatch=etag)["Body"].read()
        == b"one"
    )
    assert _error(
        client.get_object, Bucket=place.bucket, Key=key, IfMatch='"nope"'
    ) == (412, "PreconditionFailed")
    assert _error(
        client.get_object, Bucket=place.bucket, Key=key, IfNoneMatch=etag
    ) == (304, "304")
    assert _error(
        client.put_object, Bucket=place.bucket, Key=key, Body=b"two", IfNoneMatch="*"
    ) == (412, "PreconditionFailed")
    assert _error(
        client.put_object, Bucket=place.bucket, Key=key, Body=b"two", IfMatch='"no"'
    ) == (412, "PreconditionFailed")
    assert place.stored(key) == b"one"
    client.put_object(Bucket=place.bucket, Key=key, Body=b"two", IfMatch=etag)
    assert place.stored(key) == b"two"
    fresh = _key("fresh")
    client.put_object(Bucket=place.bucket, Key=fresh, Body=b"new", IfNoneMatch="*")
    assert place.stored(fresh) == b"new"


@pytest.mark.parametrize("name", PLACES)
def test_missing_and_delete(world: CloudWorld, name: str) -> None:
    """
    A missing key is NoSuchKey (404 on HEAD); DELETE removes, and deleting a
    missing key succeeds as S3's does; DeleteObjects removes many.
    """
    place = world.places[name]
    client = world.client()
    missing = _key("missing")
    assert _error(client.get_object, Bucket=place.bucket, Key=missing) == (
        404,
        "NoSuchKey",
    )
    assert _error(client.head_object, Bucket=place.bucket, Key=missing)[0] == 404
    client.delete_object(Bucket=place.bucket, Key=missing)
    base = _key("")
    keys = [f"{base}batch/{i:02}" for i in range(12)]
    for key in keys:
        place.put(key, key.encode())
    one = keys.pop()
    client.delete_object(Bucket=place.bucket, Key=one)
    assert place.stored(one) is None
    answer = client.delete_objects(
        Bucket=place.bucket,
        Delete={"Objects": [{"Key": k} for k in [*keys, missing]]},
    )
    assert sorted(d["Key"] for d in answer["Deleted"]) == sorted([*keys, missing])
    assert answer.get("Errors", []) == []
    assert place.stored_keys(base) == []


@pytest.mark.parametrize("name", PLACES)
def test_listing(world: CloudWorld, name: str) -> None:
    """
    V2 with delimiter, max-keys pages and start-after, and V1 with markers,
    list exactly what the backend holds under the prefix, in S3 order.
    """
    place = world.places[name]
    client = world.client()
    base = _key("")
    names = [f"{base}d{i}/x" for i in range(3)] + [f"{base}f{i:03}" for i in range(25)]
    for n in names:
        place.put(n, b".")
    grouped = client.list_objects_v2(Bucket=place.bucket, Prefix=base, Delimiter="/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == [
        f"{base}d{i}/" for i in range(3)
    ]
    assert [o["Key"] for o in grouped["Contents"]] == names[3:]
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=place.bucket, Prefix=base, PaginationConfig={"PageSize": 4}
    )
    listed = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert listed == sorted(names)
    after = client.list_objects_v2(
        Bucket=place.bucket, Prefix=base, StartAfter=f"{base}f010", MaxKeys=5
    )
    assert [o["Key"] for o in after["Contents"]] == [
        f"{base}f{i:03}" for i in range(11, 16)
    ]
    assert after["IsTruncated"] is True
    v1 = client.get_paginator("list_objects").paginate(
        Bucket=place.bucket, Prefix=base, PaginationConfig={"PageSize": 6}
    )
    assert [o["Key"] for page in v1 for o in page.get("Contents", [])] == sorted(names)
    sizes = {o["Size"] for o in grouped["Contents"]}
    assert sizes == {1}


# --- multipart -------------------------------------------------------------


def _multipart(
    client: Any, bucket: str, key: str, parts: list[bytes], **extra: Any
) -> Iterator[str]:
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)
    upload_id = upload["UploadId"]
    yield upload_id
    done = []
    for number, data in enumerate(parts, 1):
        answer = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        done.append({"PartNumber": number, "ETag": answer["ETag"]})
    yield upload_id
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )


@pytest.mark.parametrize("name", PLACES)
def test_multipart(world: CloudWorld, name: str) -> None:
    """
    A three-part upload: listed while in progress (ListMultipartUploads,
    ListParts), completed into one object with the upload's metadata and
    content type, assembled from three parts on the backend; an aborted
    upload leaves nothing; a wrong part ETag is InvalidPart.
    """
    place = world.places[name]
    client = world.client()
    key = _key("multi part.bin")
    parts = [bytes([i]) * (5 * MiB) for i in range(2)] + [b"tail"]
    steps = _multipart(
        client,
        place.bucket,
        key,
        parts,
        ContentType="video/x-test",
        Metadata={"some-name": "v"},
    )
    upload_id = next(steps)
    next(steps)
    uploads = client.list_multipart_uploads(Bucket=place.bucket, Prefix=key)
    [(listed_key, listed_id)] = [
        (u["Key"], u["UploadId"]) for u in uploads.get("Uploads", [])
    ]
    assert listed_key == key
    if name != "azure":
        # Azure cannot keep an upload's headers anywhere but in its id, so
        # the id it lists is a shorter one (docs/backends.md).
        assert listed_id == upload_id
    for some_id in (upload_id, listed_id):
        listed = client.list_parts(Bucket=place.bucket, Key=key, UploadId=some_id)
        assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [
            (1, 5 * MiB),
            (2, 5 * MiB),
            (3, 4),
        ]
    assert place.stored(key) is None
    for _ in steps:
        pass
    assert place.stored(key) == b"".join(parts)
    assert place.parts(key) == 3
    head = client.head_object(Bucket=place.bucket, Key=key)
    assert head["ContentType"] == "video/x-test"
    assert head["Metadata"] == {"some-name": "v"}
    assert head["ContentLength"] == 10 * MiB + 4
    listed_after = client.list_multipart_uploads(Bucket=place.bucket, Prefix=key)
    assert listed_after.get("Uploads", []) == []

    aborted = _key("aborted")
    upload = client.create_multipart_upload(Bucket=place.bucket, Key=aborted)
    client.upload_part(
        Bucket=place.bucket,
        Key=aborted,
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=b"x" * 1000,
    )
    client.abort_multipart_upload(
        Bucket=place.bucket, Key=aborted, UploadId=upload["UploadId"]
    )
    assert place.stored(aborted) is None
    gone = client.list_multipart_uploads(Bucket=place.bucket, Prefix=aborted)
    if name != "azure":
        # Azure keeps uncommitted blocks until the blob is next written or
        # a week has passed, and lists them (docs/backends.md).
        assert gone.get("Uploads", []) == []

    wrong = _key("wrong")
    upload = client.create_multipart_upload(Bucket=place.bucket, Key=wrong)
    client.upload_part(
        Bucket=place.bucket,
        Key=wrong,
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=b"y" * 10,
    )
    assert _error(
        client.complete_multipart_upload,
        Bucket=place.bucket,
        Key=wrong,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]},
    ) == (400, "InvalidPart")
    assert place.stored(wrong) is None
    client.abort_multipart_upload(
        Bucket=place.bucket, Key=wrong, UploadId=upload["UploadId"]
    )


@pytest.mark.parametrize("name", ["azure", "gcs"])
def test_multipart_survives_restart(
    multistore_daemon: DaemonFactory,
    cloud_world: CloudWorld,
    name: str,
) -> None:
    """
    A multipart upload begun before the daemon restarts is completed after
    it: the upload's state lives in the backend, not in the daemon.
    """
    place = cloud_world.places[name]
    daemon = multistore_daemon(_config({name: place}, []))
    client = s3_client(daemon.url, *WRITER)
    key = _key("restarted")
    first = b"1" * (5 * MiB)
    upload = client.create_multipart_upload(
        Bucket=place.bucket, Key=key, Metadata={"kept": "yes"}
    )
    upload_id = upload["UploadId"]
    part1 = client.upload_part(
        Bucket=place.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=first
    )
    daemon.restart()
    client = s3_client(daemon.url, *WRITER)
    part2 = client.upload_part(
        Bucket=place.bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"2"
    )
    listed = client.list_parts(Bucket=place.bucket, Key=key, UploadId=upload_id)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2]
    client.complete_multipart_upload(
        Bucket=place.bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": part1["ETag"]},
                {"PartNumber": 2, "ETag": part2["ETag"]},
            ]
        },
    )
    assert place.stored(key) == first + b"2"
    assert client.head_object(Bucket=place.bucket, Key=key)["Metadata"] == {
        "kept": "yes"
    }


# --- copies ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("s3", "azure"),
        ("azure", "gcs"),
        ("gcs", "s3"),
        ("azure", "azure"),
        ("gcs", "gcs"),
    ],
)
def test_copy(world: CloudWorld, source: str, target: str) -> None:
    """
    CopyObject between services (streamed through the daemon) and within
    one (server-side): the bytes, the metadata and content type carry over
    with the COPY directive, and are replaced with REPLACE.
    """
    client = world.client()
    src, dst = world.places[source], world.places[target]
    key = _key("copy source")
    body = b"copied " * 5000
    client.put_object(
        Bucket=src.bucket,
        Key=key,
        Body=body,
        ContentType="text/x-source",
        Metadata={"origin-name": source},
    )
    copied = _key("copy target")
    answer = client.copy_object(
        Bucket=dst.bucket, Key=copied, CopySource={"Bucket": src.bucket, "Key": key}
    )
    assert answer["CopyObjectResult"]["ETag"]
    assert dst.stored(copied) == body
    head = client.head_object(Bucket=dst.bucket, Key=copied)
    assert head["ContentType"] == "text/x-source"
    assert head["Metadata"] == {"origin-name": source}
    replaced = _key("replaced")
    client.copy_object(
        Bucket=dst.bucket,
        Key=replaced,
        CopySource={"Bucket": src.bucket, "Key": key},
        MetadataDirective="REPLACE",
        ContentType="text/x-new",
        Metadata={"new-name": "n"},
    )
    head = client.head_object(Bucket=dst.bucket, Key=replaced)
    assert (head["ContentType"], head["Metadata"]) == ("text/x-new", {"new-name": "n"})
    assert dst.stored(replaced) == body


# --- Azure authentication --------------------------------------------------


def test_azure_sas(world: CloudWorld) -> None:
    """
    A bucket whose backend signs with a SAS token reads and writes the same
    container as the one signing with the account key.
    """
    client = world.client()
    key = _key("via sas")
    client.put_object(Bucket="azure-sas", Key=key, Body=b"sas body")
    assert world.places["azure"].stored(key) == b"sas body"
    assert client.get_object(Bucket="azure", Key=key)["Body"].read() == b"sas body"
    listed = client.list_objects_v2(Bucket="azure-sas", Prefix=key)
    assert [o["Key"] for o in listed["Contents"]] == [key]


def test_azure_wrong_key(world: CloudWorld) -> None:
    """
    A backend that refuses the daemon's signature is not the client's
    fault: the client gets an S3 error without Azure's message, and nothing
    is written.
    """
    client = world.client()
    key = _key("refused")
    status, code = _error(
        client.put_object, Bucket="azure-wrong-key", Key=key, Body=b"x"
    )
    assert (status, code) == (403, "AccessDenied")
    container = world.places["azure"].cloud
    assert container is not None
    assert container.get(key) is None


@pytest.mark.parametrize("name", PLACES)
def test_upload_part_copy(world: CloudWorld, name: str) -> None:
    """
    UploadPartCopy, whole and ranged, from an object on another service and
    from one on the same: the completed object is the parts' bytes.
    """
    client = world.client()
    place = world.places[name]
    other = world.places["gcs" if name == "s3" else "s3"]
    first = bytes(range(256)) * (5 * 4096)
    source_there = _key("part source")
    client.put_object(Bucket=other.bucket, Key=source_there, Body=first)
    source_here = _key("part source")
    client.put_object(Bucket=place.bucket, Key=source_here, Body=b"0123456789")
    key = _key("from copies")
    upload_id = client.create_multipart_upload(Bucket=place.bucket, Key=key)["UploadId"]
    parts = []
    for number, source, extra in (
        (1, {"Bucket": other.bucket, "Key": source_there}, {}),
        (
            2,
            {"Bucket": place.bucket, "Key": source_here},
            {"CopySourceRange": "bytes=2-5"},
        ),
    ):
        answer = client.upload_part_copy(
            Bucket=place.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource=source,
            **extra,
        )
        parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
    client.complete_multipart_upload(
        Bucket=place.bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": parts},
    )
    assert place.stored(key) == first + b"2345"


@pytest.mark.parametrize("pattern", ["azp", "gsp"])
def test_pattern_buckets(world: CloudWorld, pattern: str) -> None:
    """
    A pattern whose container (Azure) or bucket (GCS) name holds
    C{{bucket}}: CreateBucket makes the container or bucket, objects go in
    it, DeleteBucket refuses while it holds any and then removes it.
    """
    client = world.client()
    name = f"{pattern}-{uuid4().hex[:10]}"
    assert _error(client.head_bucket, Bucket=name)[0] == 404
    client.create_bucket(Bucket=name)
    client.head_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="k", Body=b"in a new bucket")
    backend = (
        AzureContainer(world.azure, name)
        if pattern == "azp"
        else GcsBucket(world.gcs, name)
    )
    stored = backend.get("k")
    assert stored is not None and stored.data == b"in a new bucket"
    assert _error(client.delete_bucket, Bucket=name) == (409, "BucketNotEmpty")
    client.delete_object(Bucket=name, Key="k")
    client.delete_bucket(Bucket=name)
    assert _error(client.head_bucket, Bucket=name)[0] == 404
