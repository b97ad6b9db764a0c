"""
L{multistore.stores.azure.AzureStore} driven directly (no daemon) against
a real Azurite, which verifies SharedKey and SAS signatures, through a real
L{multistore.forwarder.agent.AgentForwarder}; what the store did is
checked with the C{azure-storage-blob} SDK talking to Azurite itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from multistore.bodies import read_body
from multistore.config import BucketConfig
from multistore.forwarder.agent import AgentForwarder
from multistore.headers import HeaderList
from multistore.model import (
    CompletedPart,
    CopySource,
    ListRequest,
    ObjectRead,
    ObjectWrite,
)
from multistore.s3.errors import S3Error
from multistore.s3.listing import SENTINEL
from multistore.stores.azure import AzureStore
from multistore.stores.azure.store import BLOCK_SIZE
from tests.integration.emulators import AzureServer
from tests.integration.servers import unique_bucket_name
from tests.integration.test_s3_store_writes import StreamedBody, inline

reactor: Any = _global_reactor

MiB = 1024 * 1024

#: Keys that need encoding everywhere they appear (not a backslash:
#: Azurite takes one in a blob name for ``/``).
ODD_KEYS = (
    "dir/a b+c%d=e&f",
    "café/ünï ~*'()!",
    "semi;colon:at@[x]",
    "x" * 200,
    "dir//double/",
    "q?x&y#z",
    "emoji 😀",
    "trailing.",
    " lead\ttab",
)


def md5_header(data: bytes) -> str:
    """
    The ``Content-MD5`` of ``data``.
    """
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


class AzureStoreTests(TestCase):
    """
    L{AzureStore} against Azurite, in a fresh container per test.
    """

    timeout = 120

    @pytest.fixture(autouse=True)
    def _backend(self, azurite: AzureServer) -> None:
        self.server = azurite
        self.service = azurite.service()
        self.container = azurite.create_container(unique_bucket_name("az"))
        self._forwarder: AgentForwarder | None = None

    def store(self, container: str | None = None, **options: str) -> AzureStore:
        """
        A store on ``container`` (the test's by default), sharing one
        forwarder that is closed after the test.
        """
        if self._forwarder is None:
            self._forwarder = AgentForwarder.create(
                reactor,
                connect_timeout=5.0,
                timeout=30.0,
                max_connections_per_host=4,
                user_agent="multistore-test/1",
            )
            self.addCleanup(self._forwarder.close)
        bucket = BucketConfig(
            name="virtual",
            backend_type="azure",
            backend_options=self.server.backend_options(
                container or self.container, **options
            ),
        )
        return AzureStore(bucket, self._forwarder, reactor)

    def blob(self, key: str) -> Any:
        """
        The SDK's client for ``key`` in the test's container.
        """
        return self.service.get_blob_client(self.container, key)

    def exists(self, key: str) -> bool:
        """
        Whether a committed blob ``key`` exists.
        """
        return bool(self.blob(key).exists())

    def read(self, key: str) -> bytes:
        """
        The blob's bytes, read with the SDK.
        """
        data: bytes = self.blob(key).download_blob().readall()
        return data

    async def put(
        self, key: str, data: bytes, *headers: tuple[str, str], **kwargs: Any
    ) -> HeaderList:
        """
        Put ``data`` through the store.

        :return: the response headers.
        """
        write = ObjectWrite(
            key=key, body=StreamedBody(data, **kwargs), headers=HeaderList(headers)
        )
        response = await self.store().put_object(write)
        self.assertEqual(response.status, 200)
        return response.headers

    async def error_of(self, d: Deferred[Any]) -> S3Error:
        """
        :return: the L{S3Error} ``d`` fails with.
        """
        try:
            await d
        except S3Error as error:
            return error
        self.fail("no error")

    # --- writes ---------------------------------------------------------------

    @inline
    async def test_put_with_headers(self) -> None:
        """
        A blob gets the content headers as properties, the metadata under
        encoded names, and the Content-MD5; reading it back through the
        store gives the S3 headers back.
        """
        data = os.urandom(300_000)
        key = "dir/with headers é+%"
        headers = await self.put(
            key,
            data,
            ("content-type", "application/x-test"),
            ("content-disposition", 'attachment; filename="x.bin"'),
            ("content-language", "fr"),
            ("cache-control", "max-age=60"),
            ("content-encoding", "identity"),
            ("x-amz-meta-owner", "someone"),
            ("x-amz-meta-content-sha", "abc"),
            ("content-md5", md5_header(data)),
        )
        etag = headers.get("etag") or ""
        self.assertTrue(etag.startswith('"0x'), etag)
        self.assertEqual(self.read(key), data)
        properties = self.blob(key).get_blob_properties()
        settings = properties.content_settings
        self.assertEqual(settings.content_type, "application/x-test")
        self.assertEqual(settings.content_disposition, 'attachment; filename="x.bin"')
        self.assertEqual(settings.content_language, "fr")
        self.assertEqual(settings.cache_control, "max-age=60")
        self.assertEqual(settings.content_encoding, "identity")
        self.assertEqual(bytes(settings.content_md5), hashlib.md5(data).digest())
        metadata = {k.lower(): v for k, v in properties.metadata.items()}
        self.assertEqual(metadata, {"owner": "someone", "mx_mnxw45dfnz2c243ime": "abc"})
        response = await self.store().get_object(ObjectRead(key, head=True))
        self.assertEqual(response.headers.get("x-amz-meta-content-sha"), "abc")
        self.assertEqual(response.headers.get("x-amz-meta-owner"), "someone")
        self.assertEqual(response.headers.get("etag"), etag)
        self.assertEqual(response.headers.get("content-length"), str(len(data)))
        self.assertNotIn("content-md5", response.headers)
        self.assertFalse([n for n in response.headers.names() if n.startswith("x-ms-")])

    @inline
    async def test_bad_md5(self) -> None:
        """
        A Content-MD5 that does not match fails the write, and no blob is
        made (Azure says ``Md5Mismatch``, which is ``BadDigest``; Azurite
        says ``InvalidOperation``, which is not the client's business).
        """
        error = await self.error_of(
            self.store().put_object(
                ObjectWrite(
                    key="bad-md5",
                    body=StreamedBody(b"data"),
                    headers=HeaderList([("content-md5", md5_header(b"other"))]),
                )
            )
        )
        self.assertIn(error.code, ("BadDigest", "ServiceUnavailable"))
        self.assertFalse(self.exists("bad-md5"))

    @inline
    async def test_odd_keys(self) -> None:
        """
        Keys that need encoding are stored, read and listed as they are.
        """
        for key in ODD_KEYS:
            await self.put(key, key.encode())
            self.assertEqual(self.read(key), key.encode())
            response = await self.store().get_object(ObjectRead(key))
            assert response.body is not None
            self.assertEqual(await read_body(response.body, 1000), key.encode())
        page = await self.store().list_objects(ListRequest())
        self.assertEqual([o.key for o in page.objects], sorted(ODD_KEYS))

    @inline
    async def test_put_empty(self) -> None:
        """
        An empty body makes an empty blob.
        """
        await self.put("empty", b"")
        self.assertEqual(self.read("empty"), b"")

    @inline
    async def test_failed_body_makes_no_blob(self) -> None:
        """
        A body that fails, early or after its last byte was read, leaves no
        blob (and an existing blob unchanged).
        """
        data = os.urandom(2 * MiB)
        for fail_at, delay in ((MiB, 0.0), (len(data), 0.5)):
            body = StreamedBody(data, fail_at=fail_at, fail_delay=delay)
            write = ObjectWrite(key="failed", body=body)
            try:
                await self.store().put_object(write)
            except Exception:
                pass
            else:
                self.fail("the put succeeded")
            self.assertFalse(self.exists("failed"))
        await self.put("kept", b"old")
        body = StreamedBody(b"new!", fail_at=4, fail_delay=0.5)
        try:
            await self.store().put_object(ObjectWrite(key="kept", body=body))
        except Exception:
            pass
        else:
            self.fail("the put succeeded")
        self.assertEqual(self.read("kept"), b"old")

    @inline
    async def test_unknown_length_in_blocks(self) -> None:
        """
        A body of unknown length longer than a block is committed as blocks
        with the object's properties; one that fails commits nothing.
        """
        data = os.urandom(BLOCK_SIZE * 2 + 5)
        await self.put(
            "chunked",
            data,
            ("content-type", "text/x-blocks"),
            ("x-amz-meta-a", "1"),
            chunk=256 * 1024,
            unknown_length=True,
        )
        self.assertEqual(
            hashlib.sha256(self.read("chunked")).digest(), hashlib.sha256(data).digest()
        )
        committed, uncommitted = self.blob("chunked").get_block_list("all")
        self.assertEqual([b.size for b in committed], [BLOCK_SIZE, BLOCK_SIZE, 5])
        self.assertEqual(uncommitted, [])
        properties = self.blob("chunked").get_blob_properties()
        self.assertEqual(properties.content_settings.content_type, "text/x-blocks")
        self.assertEqual(
            {k.lower(): v for k, v in properties.metadata.items()}, {"a": "1"}
        )
        body = StreamedBody(
            data, fail_at=BLOCK_SIZE + 10, unknown_length=True, chunk=256 * 1024
        )
        try:
            await self.store().put_object(ObjectWrite(key="chunk-failed", body=body))
        except Exception:
            pass
        else:
            self.fail("the put succeeded")
        self.assertFalse(self.exists("chunk-failed"))

    @inline
    async def test_small_unknown_length(self) -> None:
        """
        A body of unknown length within one block is one committed block.
        """
        await self.put("small", b"tiny", unknown_length=True)
        self.assertEqual(self.read("small"), b"tiny")

    @inline
    async def test_conditional_put(self) -> None:
        """
        ``If-None-Match: *`` on an existing key and ``If-Match`` with
        another ETag are ``PreconditionFailed``; the blob is unchanged.
        """
        first = await self.put("cond", b"first")
        for condition in (("if-none-match", "*"), ("if-match", '"0x0000"')):
            error = await self.error_of(
                self.store().put_object(
                    ObjectWrite(
                        key="cond",
                        body=StreamedBody(b"second"),
                        headers=HeaderList([condition]),
                    )
                )
            )
            self.assertEqual((error.code, error.status), ("PreconditionFailed", 412))
        self.assertEqual(self.read("cond"), b"first")
        await self.put("cond", b"third", ("if-match", first.get("etag") or ""))
        self.assertEqual(self.read("cond"), b"third")

    # --- reads ----------------------------------------------------------------

    @inline
    async def test_ranges_and_parts(self) -> None:
        """
        Ranges (suffix ones too), part 1, other parts and ranges past the
        end answer as S3 does.
        """
        await self.put("ranged", b"0123456789")
        store = self.store()
        for header, expected, content_range in (
            ("bytes=2-4", b"234", "bytes 2-4/10"),
            ("bytes=7-", b"789", "bytes 7-9/10"),
            ("bytes=-3", b"789", "bytes 7-9/10"),
            ("bytes=-30", b"0123456789", "bytes 0-9/10"),
        ):
            response = await store.get_object(ObjectRead("ranged", range=header))
            self.assertEqual(response.status, 206)
            self.assertEqual(response.headers.get("content-range"), content_range)
            assert response.body is not None
            self.assertEqual(await read_body(response.body, 100), expected)
        response = await store.get_object(ObjectRead("ranged", part_number=1))
        self.assertEqual(response.status, 206)
        self.assertEqual(response.headers.get("content-range"), "bytes 0-9/10")
        assert response.body is not None
        self.assertEqual(await read_body(response.body, 100), b"0123456789")
        error = await self.error_of(
            store.get_object(ObjectRead("ranged", part_number=2))
        )
        self.assertEqual(error.code, "InvalidPartNumber")
        error = await self.error_of(
            store.get_object(ObjectRead("ranged", range="bytes=20-30"))
        )
        self.assertEqual(error.code, "InvalidRange")
        self.assertIn(("content-range", "bytes */10"), error.headers)

    @inline
    async def test_conditions_and_missing(self) -> None:
        """
        If-None-Match with the ETag is 304, If-Match with another is 412; a
        missing key is ``NoSuchKey``, a missing container ``NoSuchBucket``.
        """
        etag = (await self.put("c", b"x")).get("etag")
        store = self.store()
        response = await store.get_object(ObjectRead("c", if_none_match=etag))
        self.assertEqual(response.status, 304)
        error = await self.error_of(
            store.get_object(ObjectRead("c", if_match='"0xother"'))
        )
        self.assertEqual(error.code, "PreconditionFailed")
        for head in (False, True):
            error = await self.error_of(store.get_object(ObjectRead("nope", head=head)))
            self.assertEqual(error.code, "NoSuchKey")
        missing = self.store("no-such-container")
        error = await self.error_of(missing.get_object(ObjectRead("k")))
        self.assertEqual(error.code, "NoSuchBucket")
        error = await self.error_of(missing.head_bucket())
        self.assertEqual(error.code, "NoSuchBucket")
        await store.head_bucket()

    @inline
    async def test_listing(self) -> None:
        """
        Listings page with Azure's markers, roll up prefixes, and honour
        ``start_after`` by skipping.
        """
        keys = ["a/1", "a/2", "b", "c/x", "d", "e", "f"]
        for key in keys:
            await self.put(key, b"")
        store = self.store()
        page = await store.list_objects(ListRequest(delimiter="/"))
        self.assertEqual([o.key for o in page.objects], ["b", "d", "e", "f"])
        self.assertEqual(page.common_prefixes, ("a/", "c/"))
        self.assertFalse(page.truncated)
        seen: list[str] = []
        token = None
        for _ in range(10):
            page = await store.list_objects(ListRequest(max_keys=3, token=token))
            seen.extend(o.key for o in page.objects)
            self.assertLessEqual(len(page.objects), 3)
            if not page.truncated:
                break
            token = page.next_token
            self.assertIsNotNone(token)
        self.assertEqual(seen, keys)
        page = await store.list_objects(ListRequest(start_after="c/x", max_keys=2))
        self.assertEqual([o.key for o in page.objects], ["d", "e"])
        self.assertTrue(page.truncated)
        page = await store.list_objects(ListRequest(prefix="a/", start_after="a/1"))
        self.assertEqual([o.key for o in page.objects], ["a/2"])
        info = page.objects[0]
        self.assertEqual(info.size, 0)
        self.assertTrue(info.etag.startswith('"0x'))

    # --- multipart ------------------------------------------------------------

    @inline
    async def test_multipart(self) -> None:
        """
        An upload's parts are uncommitted blocks until completion, which
        commits them in order with the headers given at creation.
        """
        store = self.store()
        key = "multi part é"
        upload_id = await store.create_multipart_upload(
            key,
            HeaderList(
                [("content-type", "text/x-multi"), ("x-amz-meta-made-by", "test")]
            ),
        )
        self.assertLess(len(upload_id), 2048)
        parts = [os.urandom(1000), os.urandom(2000), os.urandom(10)]
        etags = []
        for number, data in enumerate(parts, 1):
            response = await store.upload_part(
                ObjectWrite(key=key, body=StreamedBody(data)), upload_id, number
            )
            etags.append(response.headers.get("etag") or "")
        self.assertFalse(self.exists(key))
        listed = await store.list_parts(key, upload_id, 2, 0)
        self.assertEqual([p.part_number for p in listed.parts], [1, 2])
        self.assertEqual([p.etag for p in listed.parts], etags[:2])
        self.assertTrue(listed.truncated)
        await self.put("committed", b"x")
        uploads = await store.list_multipart_uploads("", None, None, None, 100)
        self.assertEqual([u.key for u in uploads.uploads], [key])
        listed_id = uploads.uploads[0].upload_id
        listed = await store.list_parts(key, listed_id, 100, 0)
        self.assertEqual([p.etag for p in listed.parts], etags)
        error = await self.error_of(
            store.complete_multipart_upload(
                key, listed_id, [CompletedPart(1, etags[0])], HeaderList()
            )
        )
        self.assertEqual(error.code, "InvalidRequest")
        error = await self.error_of(
            store.complete_multipart_upload(
                key,
                upload_id,
                [CompletedPart(1, etags[1]), CompletedPart(2, etags[1])],
                HeaderList(),
            )
        )
        self.assertEqual(error.code, "InvalidPart")
        error = await self.error_of(
            store.complete_multipart_upload(
                "other key", upload_id, [CompletedPart(1, etags[0])], HeaderList()
            )
        )
        self.assertEqual(error.code, "NoSuchUpload")
        result = await store.complete_multipart_upload(
            key,
            upload_id,
            [CompletedPart(n, e) for n, e in enumerate(etags, 1)],
            HeaderList(),
        )
        self.assertEqual(self.read(key), b"".join(parts))
        properties = self.blob(key).get_blob_properties()
        self.assertEqual(f'"{properties.etag.strip(chr(34))}"', result.etag)
        self.assertEqual(properties.content_settings.content_type, "text/x-multi")
        self.assertEqual(
            {k.lower(): v for k, v in properties.metadata.items()},
            {"mx_nvqwizjnmj4q": "test"},
        )
        committed, uncommitted = self.blob(key).get_block_list("all")
        self.assertEqual([b.size for b in committed], [1000, 2000, 10])
        self.assertEqual(uncommitted, [])
        response = await store.get_object(ObjectRead(key, head=True))
        self.assertEqual(response.headers.get("x-amz-meta-made-by"), "test")

    @inline
    async def test_multipart_abort_and_condition(self) -> None:
        """
        Aborting commits nothing; completing with ``If-None-Match: *`` over
        an existing blob is ``PreconditionFailed``.
        """
        store = self.store()
        upload_id = await store.create_multipart_upload("ab", HeaderList())
        await store.upload_part(
            ObjectWrite(key="ab", body=StreamedBody(b"part")), upload_id, 1
        )
        await store.abort_multipart_upload("ab", upload_id)
        self.assertFalse(self.exists("ab"))
        error = await self.error_of(store.abort_multipart_upload("ab", "bogus"))
        self.assertEqual(error.code, "NoSuchUpload")
        await self.put("exists", b"old")
        upload_id = await store.create_multipart_upload("exists", HeaderList())
        part = await store.upload_part(
            ObjectWrite(key="exists", body=StreamedBody(b"new")), upload_id, 1
        )
        error = await self.error_of(
            store.complete_multipart_upload(
                "exists",
                upload_id,
                [CompletedPart(1, part.headers.get("etag") or "")],
                HeaderList([("if-none-match", "*")]),
            )
        )
        self.assertEqual(error.code, "PreconditionFailed")
        self.assertEqual(self.read("exists"), b"old")

    # --- copies ---------------------------------------------------------------

    @inline
    async def test_copy(self) -> None:
        """
        A copy keeps the source's properties and metadata, or replaces them
        all with ``REPLACE``; a source elsewhere is ``NotImplemented``.
        """
        await self.put(
            "src", b"source", ("content-type", "text/src"), ("x-amz-meta-k", "v")
        )
        store = self.store()
        source = CopySource(bucket=store.bucket, key="src")
        result = await store.copy_object(source, "copy", HeaderList())
        self.assertTrue(result.etag.startswith('"0x'))
        self.assertEqual(self.read("copy"), b"source")
        properties = self.blob("copy").get_blob_properties()
        self.assertEqual(properties.content_settings.content_type, "text/src")
        self.assertEqual(
            {k.lower(): v for k, v in properties.metadata.items()}, {"k": "v"}
        )
        result = await store.copy_object(
            source,
            "replaced",
            HeaderList(
                [("x-amz-metadata-directive", "REPLACE"), ("content-type", "text/new")]
            ),
        )
        properties = self.blob("replaced").get_blob_properties()
        self.assertEqual(properties.content_settings.content_type, "text/new")
        self.assertEqual(properties.metadata, {})
        self.assertEqual(f'"{properties.etag.strip(chr(34))}"', result.etag)
        error = await self.error_of(
            store.copy_object(
                CopySource(
                    bucket=store.bucket,
                    key="src",
                    conditions=HeaderList(
                        [("x-amz-copy-source-if-match", '"0xnotit"')]
                    ),
                ),
                "cond-copy",
                HeaderList(),
            )
        )
        self.assertEqual(error.code, "PreconditionFailed")
        elsewhere = BucketConfig(
            name="other",
            backend_type="azure",
            backend_options=self.server.backend_options(
                self.container, endpoint="http://127.0.0.2:1/other"
            ),
        )
        error = await self.error_of(
            store.copy_object(
                CopySource(bucket=elsewhere, key="src"), "x", HeaderList()
            )
        )
        self.assertEqual(error.code, "NotImplemented")
        error = await self.error_of(
            store.copy_object(
                CopySource(bucket=store.bucket, key="nope"), "x", HeaderList()
            )
        )
        self.assertEqual(error.code, "NoSuchKey")

    # --- deletes and containers ----------------------------------------------

    @inline
    async def test_deletes_and_containers(self) -> None:
        """
        Deleting works and succeeds for missing keys; a container is created
        once, not deleted while it holds blobs, then deleted.
        """
        for key in ("d1", "d2", "d3"):
            await self.put(key, b"x")
        store = self.store()
        response = await store.delete_object("d1", None)
        self.assertEqual(response.status, 204)
        self.assertFalse(self.exists("d1"))
        response = await store.delete_object("d1", None)
        self.assertEqual(response.status, 204)
        outcomes = await store.delete_objects(
            [("d2", None), ("d3", None), ("zz", None)]
        )
        self.assertEqual(sorted(o.key for o in outcomes), ["d2", "d3", "zz"])
        self.assertEqual([o.error for o in outcomes], [None, None, None])
        self.assertFalse(self.exists("d2"))
        name = unique_bucket_name("azc")
        created = self.store(name)
        await created.create_bucket()
        error = await self.error_of(created.create_bucket())
        self.assertEqual(error.code, "BucketAlreadyOwnedByYou")
        await created.put_object(ObjectWrite(key="k", body=StreamedBody(b"x")))
        error = await self.error_of(created.delete_bucket())
        self.assertEqual(error.code, "BucketNotEmpty")
        await created.delete_object("k", None)
        await created.delete_bucket()
        self.assertRaises(
            ResourceNotFoundError,
            self.service.get_container_client(name).get_container_properties,
        )

    # --- authorization --------------------------------------------------------

    @inline
    async def test_wrong_key_and_anonymous(self) -> None:
        """
        A wrong account key, or no credentials on a private container, is
        ``AccessDenied`` (Azurite checks signatures).
        """
        wrong = base64.b64encode(os.urandom(64)).decode("ascii")
        for store in (
            self.store(access_key=wrong),
            self.store(access_key="", skip_signature="true"),
        ):
            error = await self.error_of(store.get_object(ObjectRead("k")))
            self.assertEqual(error.code, "AccessDenied")

    @inline
    async def test_sas(self) -> None:
        """
        A container SAS token authorizes writes and reads.
        """
        token = generate_container_sas(
            self.server.account_name,
            self.container,
            account_key=self.server.account_key,
            permission=ContainerSasPermissions(read=True, write=True, list=True),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        store = self.store(access_key="", sas_token=token)
        await store.put_object(ObjectWrite(key="sas key", body=StreamedBody(b"sas")))
        self.assertEqual(self.read("sas key"), b"sas")
        page = await store.list_objects(ListRequest())
        self.assertEqual([o.key for o in page.objects], ["sas key"])
        await store.copy_object(
            CopySource(bucket=store.bucket, key="sas key"), "sas copy", HeaderList()
        )
        self.assertEqual(self.read("sas copy"), b"sas")

    @inline
    async def test_replace_onto_itself(self) -> None:
        """
        A copy of an object onto itself with ``REPLACE`` changes its
        headers and metadata and keeps its bytes.
        """
        await self.put("self", b"bytes", ("content-type", "a/b"), ("x-amz-meta-x", "1"))
        store = self.store()
        await store.copy_object(
            CopySource(bucket=store.bucket, key="self"),
            "self",
            HeaderList(
                [
                    ("x-amz-metadata-directive", "REPLACE"),
                    ("content-type", "c/d"),
                    ("x-amz-meta-y", "2"),
                ]
            ),
        )
        self.assertEqual(self.read("self"), b"bytes")
        properties = self.blob("self").get_blob_properties()
        self.assertEqual(properties.content_settings.content_type, "c/d")
        self.assertEqual(
            {k.lower(): v for k, v in properties.metadata.items()}, {"y": "2"}
        )

    @inline
    async def test_conditions_as_s3(self) -> None:
        """
        Dates S3 ignores are ignored (Azurite answers 304 and 412 for
        them), ``If-None-Match: *`` is 304 for a blob that is there and
        ``NoSuchKey`` for one that is not (Azurite refuses it on reads), and
        a range of an empty blob is ``InvalidRange``.
        """
        await self.put("c", b"x")
        await self.put("empty", b"")
        store = self.store()
        for head in (False, True):
            for conditions in (
                {"if_modified_since": "garbage"},
                {"if_unmodified_since": "garbage"},
                {"if_modified_since": "Fri, 01 Jan 2100 00:00:00 GMT"},
            ):
                response = await store.get_object(
                    ObjectRead("c", head=head, **conditions)
                )
                self.assertEqual(response.status, 200, conditions)
                if response.body is not None:
                    self.assertEqual(await read_body(response.body, 100), b"x")
            response = await store.get_object(
                ObjectRead("c", head=head, if_none_match="*")
            )
            self.assertEqual(response.status, 304)
            error = await self.error_of(
                store.get_object(ObjectRead("nope", head=head, if_none_match="*"))
            )
            self.assertEqual(error.code, "NoSuchKey")
        for header in ("bytes=0-", "bytes=0-5", "bytes=-1"):
            error = await self.error_of(
                store.get_object(ObjectRead("empty", range=header))
            )
            self.assertEqual(error.code, "InvalidRange", header)
            self.assertIn(("content-range", "bytes */0"), error.headers)

    @inline
    async def test_head_with_range(self) -> None:
        """
        A HEAD with a range answers as the GET would, without a body.
        """
        await self.put("ranged", b"0123456789")
        response = await self.store().get_object(
            ObjectRead("ranged", head=True, range="bytes=2-4")
        )
        self.assertEqual(
            (response.status, response.headers.get("content-range")),
            (206, "bytes 2-4/10"),
        )
        self.assertEqual(response.headers.get("content-length"), "3")

    @inline
    async def test_listing_after_common_prefix(self) -> None:
        """
        Resuming after a common prefix (a V1 ``NextMarker`` that is one)
        does not list it again.
        """
        for key in ("a/1", "a/2", "b/1", "c"):
            await self.put(key, b"")
        page = await self.store().list_objects(
            ListRequest(delimiter="/", max_keys=10, start_after="a/" + SENTINEL)
        )
        self.assertEqual(page.common_prefixes, ("b/",))
        self.assertEqual([o.key for o in page.objects], ["c"])

    @inline
    async def test_huge_range_numbers(self) -> None:
        """
        Range numbers too long to be integers are no internal error: a start
        past any blob is ``InvalidRange``, a long end reads to the end.
        """
        await self.put("ranged", b"0123456789")
        store = self.store()
        huge = "9" * 5000
        error = await self.error_of(
            store.get_object(ObjectRead("ranged", range=f"bytes={huge}-"))
        )
        self.assertEqual(error.code, "InvalidRange")
        self.assertIn(("content-range", "bytes */10"), error.headers)
        response = await store.get_object(ObjectRead("ranged", range=f"bytes=7-{huge}"))
        self.assertEqual(response.headers.get("content-range"), "bytes 7-9/10")
        assert response.body is not None
        self.assertEqual(await read_body(response.body, 100), b"789")
