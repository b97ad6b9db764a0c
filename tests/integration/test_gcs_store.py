"""
L{multistore.stores.gcs.GcsStore} driven directly (no daemon) against a
real fake-gcs-server through a real
L{multistore.forwarder.agent.AgentForwarder}; what the store did is
checked with the C{google-cloud-storage} SDK talking to the emulator itself.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

import pytest
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from multistore.bodies import BytesProducer, read_body
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
from multistore.stores.gcs import GcsStore
from multistore.stores.gcs import store as gcs_store
from multistore.stores.gcs.store import UPLOADS_PREFIX
from tests.integration.emulators import GcsServer
from tests.integration.test_s3_store_writes import BodyFailed, StreamedBody, inline

reactor: Any = _global_reactor

MiB = 1024 * 1024

#: Keys that need encoding everywhere they appear.
ODD_KEYS = ("dir/a b+c%d=e&f", "café/ünï ~*'()!", "semi;colon:at@[x]")


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class GcsStoreTests(TestCase):
    """
    L{GcsStore} against fake-gcs-server, in a fresh bucket per test.
    """

    timeout = 120

    server: GcsServer
    bucket_name: str

    @pytest.fixture(autouse=True)
    def _backend(self, fake_gcs: GcsServer) -> None:
        self.server = fake_gcs
        self.client = fake_gcs.client()
        self.bucket_name = fake_gcs.create_bucket("t-" + uuid.uuid4().hex[:20])
        self._forwarder: AgentForwarder | None = None

    def store(self, bucket_name: str | None = None, **options: str) -> GcsStore:
        """
        A store on ``bucket_name`` (the test's bucket by default), sharing
        one forwarder that is closed after the test.
        """
        if self._forwarder is None:
            self._forwarder = AgentForwarder.create(
                reactor,
                connect_timeout=5.0,
                timeout=30.0,
                max_connections_per_host=4,
                user_agent="multistore-test/1",
            )
            forwarder = self._forwarder

            async def close() -> None:
                # Bodies the store discarded are drained after the test's
                # last step; let them return their connections first.
                await deferLater(reactor, 0.2, lambda: None)
                await forwarder.close()

            self.addCleanup(lambda: Deferred.fromCoroutine(close()))
        bucket = BucketConfig(
            name="virtual",
            backend_type="gcs",
            backend_options=self.server.backend_options(
                bucket_name or self.bucket_name, **options
            ),
        )
        return GcsStore(bucket, self._forwarder, reactor)

    def blob(self, key: str) -> Any:
        """
        The SDK's view of ``key`` in the test's bucket, or ``None``.
        """
        return self.client.bucket(self.bucket_name).get_blob(key)

    def names(self, prefix: str = "") -> list[str]:
        """
        Every object name under ``prefix``, as the SDK lists them.
        """
        return [b.name for b in self.client.list_blobs(self.bucket_name, prefix=prefix)]

    async def put(self, key: str, data: bytes, **headers: str) -> str:
        """
        Put ``data`` at ``key`` with the store.

        :return: the ETag.
        """
        response = await self.store().put_object(
            ObjectWrite(key, BytesProducer(data), HeaderList.of(**headers))
        )
        return response.headers.get("etag") or ""

    async def get(self, key: str, **fields: Any) -> tuple[int, HeaderList, bytes]:
        """
        Read ``key`` with the store.
        """
        response = await self.store().get_object(ObjectRead(key, **fields))
        body = b""
        if response.body is not None:
            body = await read_body(response.body, 64 * MiB)
        return response.status, response.headers, body

    @inline
    async def test_put_and_get(self) -> None:
        """
        A put stores the bytes, content headers and metadata, which the SDK
        sees; a read gives them back as S3 headers, with the MD5 as ETag.
        """
        data = b"hello gcs " * 100
        etag = await self.put(
            "dir/object.txt",
            data,
            content_type="text/plain",
            cache_control="no-cache",
            content_disposition="attachment",
            content_language="fr",
            x_amz_meta_colour="blue",
            x_amz_meta_note="caf\xc3\xa9",
        )
        self.assertEqual(etag, f'"{_md5_hex(data)}"')
        blob = self.blob("dir/object.txt")
        self.assertEqual(blob.download_as_bytes(), data)
        self.assertEqual(blob.content_type, "text/plain")
        self.assertEqual(blob.cache_control, "no-cache")
        self.assertEqual(blob.content_disposition, "attachment")
        self.assertEqual(blob.content_language, "fr")
        self.assertEqual(blob.metadata, {"colour": "blue", "note": "café"})
        status, headers, body = await self.get("dir/object.txt")
        self.assertEqual((status, body), (200, data))
        self.assertEqual(headers.get("etag"), etag)
        self.assertEqual(headers.get("content-type"), "text/plain")
        self.assertEqual(headers.get("content-length"), str(len(data)))
        self.assertEqual(headers.get("x-amz-meta-colour"), "blue")
        self.assertEqual(headers.get("x-amz-meta-note"), "caf\xc3\xa9")

    @inline
    async def test_odd_keys(self) -> None:
        """
        Keys that need encoding are stored and read byte for byte.
        """
        for key in ODD_KEYS:
            await self.put(key, key.encode())
            self.assertEqual(self.blob(key).download_as_bytes(), key.encode())
            _, _, body = await self.get(key)
            self.assertEqual(body, key.encode())

    @inline
    async def test_range_and_head(self) -> None:
        """
        A range is read as 206 with its Content-Range; HEAD has no body;
        a range past the end is InvalidRange.
        """
        data = bytes(range(256)) * 4
        await self.put("r", data)
        status, headers, body = await self.get("r", range="bytes=10-19")
        self.assertEqual((status, body), (206, data[10:20]))
        self.assertEqual(headers.get("content-range"), "bytes 10-19/1024")
        status, headers, body = await self.get("r", head=True)
        self.assertEqual(
            (status, body, headers.get("content-length")), (200, b"", "1024")
        )
        with self.assertRaises(S3Error) as caught:
            await self.get("r", range="bytes=5000-")
        self.assertEqual(caught.exception.code, "InvalidRange")

    @inline
    async def test_read_conditions(self) -> None:
        """
        If-None-Match with the ETag answers 304; If-Match with another is
        PreconditionFailed; a missing key is NoSuchKey.
        """
        etag = await self.put("c", b"conditional")
        status, _, _ = await self.get("c", if_none_match=etag)
        self.assertEqual(status, 304)
        with self.assertRaises(S3Error) as caught:
            await self.get("c", if_match='"0000"')
        self.assertEqual(caught.exception.code, "PreconditionFailed")
        with self.assertRaises(S3Error) as caught:
            await self.get("missing")
        self.assertEqual(caught.exception.code, "NoSuchKey")

    @inline
    async def test_write_conditions(self) -> None:
        """
        If-None-Match: * refuses to overwrite; If-Match with the current
        ETag overwrites, with another refuses.
        """
        etag = await self.put("w", b"first")
        with self.assertRaises(S3Error) as caught:
            await self.put("w", b"second", if_none_match="*")
        self.assertEqual(caught.exception.code, "PreconditionFailed")
        with self.assertRaises(S3Error) as caught:
            await self.put("w", b"second", if_match='"ffff"')
        self.assertEqual(caught.exception.code, "PreconditionFailed")
        await self.put("w", b"third", if_match=etag)
        self.assertEqual(self.blob("w").download_as_bytes(), b"third")
        await self.put("new", b"x", if_none_match="*")
        self.assertEqual(self.blob("new").download_as_bytes(), b"x")

    @inline
    async def test_failed_body_makes_no_object(self) -> None:
        """
        A body of known length that fails after all but its last byte was
        sent leaves no object.
        """
        data = os.urandom(3 * MiB)
        body = StreamedBody(data, fail_at=len(data), fail_delay=0.3)
        with self.assertRaises(BodyFailed):
            await self.store().put_object(ObjectWrite("failed", body))
        self.assertIsNone(self.blob("failed"))

    @inline
    async def test_unknown_length(self) -> None:
        """
        A body of unknown length longer than a chunk is stored whole; a
        short one too.
        """
        data = os.urandom(9 * MiB + 12345)
        body = StreamedBody(data, unknown_length=True)
        response = await self.store().put_object(ObjectWrite("chunked", body))
        self.assertEqual(response.headers.get("etag"), f'"{_md5_hex(data)}"')
        self.assertEqual(self.blob("chunked").download_as_bytes(), data)
        body = StreamedBody(b"short", unknown_length=True)
        await self.store().put_object(ObjectWrite("short", body))
        self.assertEqual(self.blob("short").download_as_bytes(), b"short")
        body = StreamedBody(b"", unknown_length=True)
        await self.store().put_object(ObjectWrite("nothing", body))
        self.assertEqual(self.blob("nothing").download_as_bytes(), b"")
        data = os.urandom(gcs_store.CHUNK_SIZE)
        body = StreamedBody(data, unknown_length=True)
        await self.store().put_object(ObjectWrite("exact", body))
        self.assertEqual(self.blob("exact").download_as_bytes(), data)

    @inline
    async def test_unknown_length_failure_makes_no_object(self) -> None:
        """
        A body of unknown length that fails after its first chunk was sent
        leaves no object.
        """
        data = os.urandom(9 * MiB)
        body = StreamedBody(data, unknown_length=True, fail_at=len(data))
        with self.assertRaises(BodyFailed):
            await self.store().put_object(ObjectWrite("chunked-failed", body))
        self.assertIsNone(self.blob("chunked-failed"))

    @inline
    async def test_empty_object(self) -> None:
        """
        An empty body makes an empty object.
        """
        etag = await self.put("empty", b"")
        self.assertEqual(etag, f'"{_md5_hex(b"")}"')
        self.assertEqual(self.blob("empty").size, 0)

    @inline
    async def test_list(self) -> None:
        """
        Listings honour prefix, delimiter and start-after (exclusive), page
        with the store's token, and never show uploads in progress.
        """
        for key in ("a/1", "a/2", "b", "c/x/y", "d"):
            await self.put(key, key.encode())
        await self.store().create_multipart_upload("e", HeaderList())
        page = await self.store().list_objects(ListRequest(delimiter="/"))
        self.assertEqual([o.key for o in page.objects], ["b", "d"])
        self.assertEqual(page.common_prefixes, ("a/", "c/"))
        page = await self.store().list_objects(ListRequest())
        self.assertEqual(
            [o.key for o in page.objects], ["a/1", "a/2", "b", "c/x/y", "d"]
        )
        self.assertEqual(page.objects[2].etag, f'"{_md5_hex(b"b")}"')
        self.assertEqual(page.objects[2].size, 1)
        page = await self.store().list_objects(ListRequest(start_after="b"))
        self.assertEqual([o.key for o in page.objects], ["c/x/y", "d"])
        page = await self.store().list_objects(ListRequest(prefix="a/"))
        self.assertEqual([o.key for o in page.objects], ["a/1", "a/2"])
        seen: list[str] = []
        token = None
        for _ in range(10):
            page = await self.store().list_objects(ListRequest(max_keys=2, token=token))
            seen.extend(o.key for o in page.objects)
            if not page.truncated:
                break
            token = page.next_token
            self.assertIsNotNone(token)
        self.assertEqual(seen, ["a/1", "a/2", "b", "c/x/y", "d"])

    @inline
    async def test_multipart(self) -> None:
        """
        A multipart upload is listed while in progress, completes into the
        object with the upload's headers and an S3 multipart ETag, and
        leaves no parts behind.
        """
        store = self.store()
        upload_id = await store.create_multipart_upload(
            "big", HeaderList.of(content_type="a/b", x_amz_meta_k="v")
        )
        first, second = os.urandom(5 * MiB), b"tail"
        etags = []
        for number, data in ((1, first), (2, second)):
            response = await store.upload_part(
                ObjectWrite("big", BytesProducer(data)), upload_id, number
            )
            etags.append(response.headers.get("etag") or "")
        self.assertEqual(etags, [f'"{_md5_hex(first)}"', f'"{_md5_hex(second)}"'])
        parts = await store.list_parts("big", upload_id, 1000, 0)
        self.assertEqual(
            [(p.part_number, p.size) for p in parts.parts], [(1, 5 * MiB), (2, 4)]
        )
        uploads = await store.list_multipart_uploads("", None, None, None, 1000)
        self.assertEqual(
            [(u.key, u.upload_id) for u in uploads.uploads], [("big", upload_id)]
        )
        result = await store.complete_multipart_upload(
            "big",
            upload_id,
            [CompletedPart(1, etags[0]), CompletedPart(2, etags[1])],
            HeaderList(),
        )
        expected = hashlib.md5(
            bytes.fromhex(_md5_hex(first)) + bytes.fromhex(_md5_hex(second)),
            usedforsecurity=False,
        ).hexdigest()
        self.assertEqual(result.etag, f'"{expected}-2"')
        blob = self.blob("big")
        self.assertEqual(blob.download_as_bytes(), first + second)
        self.assertEqual(blob.content_type, "a/b")
        self.assertEqual(blob.metadata.get("k"), "v")
        _, headers, _ = await self.get("big", head=True)
        self.assertEqual(headers.get("etag"), result.etag)
        self.assertNotIn("x-amz-meta-multistore-etag", headers)
        self.assertEqual(self.names(UPLOADS_PREFIX), [])

    @inline
    async def test_multipart_errors_and_abort(self) -> None:
        """
        A wrong ETag is InvalidPart, a small part not last EntityTooSmall, an
        unknown upload NoSuchUpload; abort removes every part.
        """
        store = self.store()
        upload_id = await store.create_multipart_upload("m", HeaderList())
        for number in (1, 2):
            await store.upload_part(
                ObjectWrite("m", BytesProducer(b"small")), upload_id, number
            )
        etag = f'"{_md5_hex(b"small")}"'
        with self.assertRaises(S3Error) as caught:
            await store.complete_multipart_upload(
                "m", upload_id, [CompletedPart(1, '"00"')], HeaderList()
            )
        self.assertEqual(caught.exception.code, "InvalidPart")
        with self.assertRaises(S3Error) as caught:
            await store.complete_multipart_upload(
                "m",
                upload_id,
                [CompletedPart(1, etag), CompletedPart(2, etag)],
                HeaderList(),
            )
        self.assertEqual(caught.exception.code, "EntityTooSmall")
        with self.assertRaises(S3Error) as caught:
            await store.upload_part(
                ObjectWrite("other-key", BytesProducer(b"x")), upload_id, 1
            )
        self.assertEqual(caught.exception.code, "NoSuchUpload")
        await store.abort_multipart_upload("m", upload_id)
        self.assertEqual(self.names(UPLOADS_PREFIX), [])
        with self.assertRaises(S3Error) as caught:
            await store.abort_multipart_upload("m", upload_id)
        self.assertEqual(caught.exception.code, "NoSuchUpload")

    @inline
    async def test_many_parts(self) -> None:
        """
        An upload of more parts than one compose takes is composed in
        rounds into the whole object, and every part and intermediate is
        removed; one part may be copied from an object.
        """
        self.patch(gcs_store, "MIN_PART_SIZE", 1)
        store = self.store()
        await self.put("source", b"copied part;")
        source_bucket = BucketConfig(
            name="virtual",
            backend_type="gcs",
            backend_options=self.server.backend_options(self.bucket_name),
        )
        upload_id = await store.create_multipart_upload("many", HeaderList())
        payloads = [
            f"part {n};".encode() for n in range(1, gcs_store.COMPOSE_LIMIT + 6)
        ]
        parts = []
        for number, data in enumerate(payloads, 1):
            if number == 2:
                result = await store.upload_part_copy(
                    CopySource(source_bucket, "source"), "many", upload_id, number
                )
                payloads[1] = b"copied part;"
                parts.append(CompletedPart(number, result.etag))
                continue
            response = await store.upload_part(
                ObjectWrite("many", BytesProducer(data)), upload_id, number
            )
            parts.append(CompletedPart(number, response.headers.get("etag") or ""))
        page = await store.list_objects(ListRequest(max_keys=1))
        self.assertEqual([o.key for o in page.objects], ["source"])
        self.assertFalse(page.truncated)
        result = await store.complete_multipart_upload(
            "many", upload_id, parts, HeaderList()
        )
        self.assertTrue(result.etag.endswith(f'-{len(payloads)}"'), result.etag)
        self.assertEqual(self.blob("many").download_as_bytes(), b"".join(payloads))
        self.assertEqual(self.names(UPLOADS_PREFIX), [])

    @inline
    async def test_generation_read(self) -> None:
        """
        A version id is a generation: an overwritten generation is gone
        (fake-gcs-server keeps no versions), a bad one is InvalidArgument,
        ``null`` is the current object.
        """
        await self.put("v", b"one")
        generation = str(self.blob("v").generation)
        _, _, body = await self.get("v", version_id=generation)
        self.assertEqual(body, b"one")
        _, _, body = await self.get("v", version_id="null")
        self.assertEqual(body, b"one")
        with self.assertRaises(S3Error) as caught:
            await self.get("v", version_id="not-a-generation")
        self.assertEqual(caught.exception.code, "InvalidArgument")

    @inline
    async def test_copy(self) -> None:
        """
        A copy keeps the source's metadata, or replaces it; a copy-source
        condition that fails is PreconditionFailed; a source on another
        service is NotImplemented.
        """
        etag = await self.put("src", b"copy me", content_type="t/s", x_amz_meta_a="1")
        source_bucket = BucketConfig(
            name="virtual",
            backend_type="gcs",
            backend_options=self.server.backend_options(self.bucket_name),
        )
        store = self.store()
        result = await store.copy_object(
            CopySource(source_bucket, "src"), "dst", HeaderList()
        )
        self.assertEqual(result.etag, etag)
        blob = self.blob("dst")
        self.assertEqual(
            (blob.download_as_bytes(), blob.content_type, blob.metadata),
            (b"copy me", "t/s", {"a": "1"}),
        )
        await store.copy_object(
            CopySource(source_bucket, "src"),
            "dst2",
            HeaderList.of(
                x_amz_metadata_directive="REPLACE",
                content_type="t/r",
                x_amz_meta_b="2",
            ),
        )
        blob = self.blob("dst2")
        self.assertEqual((blob.content_type, blob.metadata), ("t/r", {"b": "2"}))
        with self.assertRaises(S3Error) as caught:
            await store.copy_object(
                CopySource(
                    source_bucket,
                    "src",
                    conditions=HeaderList.of(x_amz_copy_source_if_match='"00"'),
                ),
                "dst3",
                HeaderList(),
            )
        self.assertEqual(caught.exception.code, "PreconditionFailed")
        elsewhere = BucketConfig(
            name="other", backend_type="s3", backend_options={"bucket_name": "x"}
        )
        with self.assertRaises(S3Error) as caught:
            await store.copy_object(CopySource(elsewhere, "src"), "dst4", HeaderList())
        self.assertEqual(caught.exception.code, "NotImplemented")

    @inline
    async def test_deletes(self) -> None:
        """
        Deleting a missing key succeeds; a batch deletes every key.
        """
        store = self.store()
        response = await store.delete_object("nothing", None)
        self.assertEqual(response.status, 204)
        for key in ("x1", "x2", "x3"):
            await self.put(key, b"x")
        outcomes = await store.delete_objects(
            [("x1", None), ("x2", None), ("no", None)]
        )
        self.assertEqual(
            sorted((o.key, o.error) for o in outcomes),
            [("no", None), ("x1", None), ("x2", None)],
        )
        self.assertEqual(self.names(), ["x3"])

    @inline
    async def test_buckets(self) -> None:
        """
        A bucket is created, found, refused twice, and deleted; a bucket
        that holds objects is not deleted.
        """
        name = "n-" + uuid.uuid4().hex[:20]
        store = self.store(name)
        with self.assertRaises(S3Error) as caught:
            await store.head_bucket()
        self.assertEqual(caught.exception.code, "NoSuchBucket")
        await store.create_bucket()
        await store.head_bucket()
        with self.assertRaises(S3Error) as caught:
            await store.create_bucket()
        self.assertEqual(caught.exception.code, "BucketAlreadyOwnedByYou")
        await self.put("keep", b"k")
        with self.assertRaises(S3Error) as caught:
            await self.store().delete_bucket()
        self.assertEqual(caught.exception.code, "BucketNotEmpty")
        await store.delete_bucket()
        with self.assertRaises(S3Error) as caught:
            await store.head_bucket()
        self.assertEqual(caught.exception.code, "NoSuchBucket")

    @inline
    async def test_part_one(self) -> None:
        """
        ``partNumber=1`` of an object is the whole object as a range (206
        with its Content-Range), for GET and HEAD alike.
        """
        await self.put("p", b"0123456789")
        for head, expected in ((False, b"0123456789"), (True, b"")):
            status, headers, body = await self.get("p", part_number=1, head=head)
            self.assertEqual((status, body), (206, expected))
            self.assertEqual(headers.get("content-range"), "bytes 0-9/10")
            self.assertEqual(headers.get("content-length"), "10")

    @inline
    async def test_list_uploads_through_prefixes(self) -> None:
        """
        ListMultipartUploads with a delimiter, one entry a page, shows every
        common prefix and upload once and ends.
        """
        store = self.store()
        for key in ("a/x", "a/y", "b/y", "c"):
            await store.create_multipart_upload(key, HeaderList())
        seen: list[str] = []
        key_marker: str | None = None
        upload_id_marker: str | None = None
        for _ in range(10):
            page = await store.list_multipart_uploads(
                "", "/", key_marker, upload_id_marker, 1
            )
            seen.extend(page.common_prefixes)
            seen.extend(u.key for u in page.uploads)
            if not page.truncated:
                break
            key_marker = page.next_key_marker
            upload_id_marker = page.next_upload_id_marker
        self.assertEqual(seen, ["a/", "b/", "c"])
