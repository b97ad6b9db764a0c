"""
What every L{IObjectStore} that keeps objects itself must do, written once:
L{StoreBehaviourMixin} is run against L{multistore.testing.MemoryStore} and
the directory store (L{multistore.stores.local.LocalStore}) by
L{tests.unit.test_testing}.

The tests use keys a directory can hold (no empty segments, no key that is
also a directory) and give each object its media type, since a directory
store guesses a type from a file name where none was recorded.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import UNKNOWN_LENGTH
from zope.interface.verify import verifyObject

from multistore.bodies import BytesProducer
from multistore.config import BucketConfig
from multistore.headers import HeaderList
from multistore.interfaces import IObjectStore
from multistore.model import (
    CompletedPart,
    CopySource,
    ListPage,
    ListRequest,
    ObjectRead,
    ObjectResponse,
    ObjectWrite,
)
from multistore.s3.dates import format_http_date, parse_http_date
from multistore.s3.errors import S3Error
from multistore.testing import CollectingConsumer, ControlledProducer

#: The smallest part size the stores under test are given.
MIN_PART = 5


def md5_etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


class StoreBehaviourMixin:
    """
    The behaviour of a store, for a test case that provides L{make_store},
    L{settle} and L{this_bucket}.

    :ivar store: the store under test, with a minimum part size of
        L{MIN_PART} bytes.
    """

    store: IObjectStore

    # Provided by the test case.
    assertEqual: Any
    assertIn: Any
    assertNotIn: Any
    assertIsNone: Any
    assertTrue: Any
    assertFalse: Any
    successResultOf: Any
    failureResultOf: Any

    def make_store(self) -> IObjectStore:
        """
        :return: a new, empty store whose bucket exists.
        """
        raise NotImplementedError()

    def settle(self) -> None:
        """
        Let the store's pending work run (its thread pool, say).
        """

    def this_bucket(self) -> BucketConfig:
        """
        :return: a bucket configuration that names the store's own bucket,
            as a copy's source.
        """
        raise NotImplementedError()

    def setUp(self) -> None:
        self.store = self.make_store()

    # --- helpers ----------------------------------------------------------------

    def result(self, d: Deferred[Any]) -> Any:
        self.settle()
        return self.successResultOf(d)

    def error(self, d: Deferred[Any]) -> S3Error:
        self.settle()
        error = self.failureResultOf(d, S3Error).value
        assert isinstance(error, S3Error)
        return error

    def put(
        self, key: str, data: bytes, headers: Sequence[tuple[str, str]] = ()
    ) -> str:
        answer = self.result(
            self.store.put_object(
                ObjectWrite(
                    key,
                    BytesProducer(data),
                    HeaderList([("content-type", "text/plain"), *headers]),
                )
            )
        )
        etag = answer.headers.get("etag")
        assert etag is not None
        return etag

    def get(self, key: str, **read: Any) -> ObjectResponse:
        response = self.result(self.store.get_object(ObjectRead(key, **read)))
        assert isinstance(response, ObjectResponse)
        return response

    def get_error(self, key: str, **read: Any) -> str:
        return self.error(self.store.get_object(ObjectRead(key, **read))).code

    def body_of(self, response: ObjectResponse) -> bytes:
        assert response.body is not None
        consumer = CollectingConsumer()
        done = response.body.deliver(consumer)
        self.result(done)
        return consumer.value()

    def read(self, key: str) -> bytes | None:
        """
        :return: the object's bytes, or ``None`` if there is none.
        """
        reading = self.store.get_object(ObjectRead(key))
        self.settle()
        outcome: list[Any] = []
        reading.addBoth(outcome.append)
        if isinstance(outcome[0], Failure):
            self.assertEqual(outcome[0].value.code, "NoSuchKey")
            return None
        return self.body_of(outcome[0])

    def listing(self, **request: Any) -> ListPage:
        page = self.result(self.store.list_objects(ListRequest(**request)))
        assert isinstance(page, ListPage)
        return page

    def names(self, page: ListPage) -> list[str]:
        return [o.key for o in page.objects] + [f"[{p}]" for p in page.common_prefixes]

    def source(self, key: str, **fields: Any) -> CopySource:
        return CopySource(bucket=self.this_bucket(), key=key, **fields)

    # --- the interface -------------------------------------------------------------

    def test_interface(self) -> None:
        """
        The store provides L{IObjectStore}.
        """
        self.assertTrue(verifyObject(IObjectStore, self.store))

    # --- reads ----------------------------------------------------------------------

    def test_put_then_get(self) -> None:
        """
        An object reads back with its bytes, its MD5 ETag, its length, its
        media type, its time and the headers it was written with.
        """
        etag = self.put(
            "docs/note",
            b"hello world",
            [("x-amz-meta-colour", "blue"), ("cache-control", "no-cache")],
        )
        self.assertEqual(etag, md5_etag(b"hello world"))
        response = self.get("docs/note")
        self.assertEqual(response.status, 200)
        headers = response.headers
        self.assertEqual(headers.get("etag"), etag)
        self.assertEqual(headers.get("content-length"), "11")
        self.assertEqual(headers.get("content-type"), "text/plain")
        self.assertEqual(headers.get("x-amz-meta-colour"), "blue")
        self.assertEqual(headers.get("cache-control"), "no-cache")
        self.assertEqual(headers.get("accept-ranges"), "bytes")
        self.assertTrue(parse_http_date(headers.get("last-modified")) is not None)
        self.assertEqual(self.body_of(response), b"hello world")

    def test_head(self) -> None:
        """
        A HEAD answers the headers of a GET, without a body.
        """
        self.put("k", b"12345")
        response = self.get("k", head=True)
        self.assertEqual(
            (response.status, response.headers.get("content-length"), response.body),
            (200, "5", None),
        )

    def test_missing(self) -> None:
        """
        A key with no object is ``NoSuchKey``; a version other than
        ``null`` is ``NoSuchVersion``.
        """
        self.assertEqual(self.get_error("nothing"), "NoSuchKey")
        self.put("k", b"x")
        self.assertEqual(self.get_error("k", version_id="v1"), "NoSuchVersion")
        self.assertEqual(self.get("k", version_id="null").status, 200)

    def test_ranges(self) -> None:
        """
        A range is answered with 206 and ``Content-Range``; a suffix range
        counts from the end; a range past the end is ``InvalidRange``; a
        range that does not parse is ignored.
        """
        self.put("k", b"0123456789")
        response = self.get("k", range="bytes=2-4")
        self.assertEqual(
            (
                response.status,
                response.headers.get("content-range"),
                response.headers.get("content-length"),
                self.body_of(response),
            ),
            (206, "bytes 2-4/10", "3", b"234"),
        )
        self.assertEqual(self.body_of(self.get("k", range="bytes=-3")), b"789")
        self.assertEqual(self.body_of(self.get("k", range="bytes=8-100")), b"89")
        self.assertEqual(self.get_error("k", range="bytes=10-"), "InvalidRange")
        whole = self.get("k", range="lines=1-2")
        self.assertEqual((whole.status, self.body_of(whole)), (200, b"0123456789"))

    def test_conditions(self) -> None:
        """
        ``If-Match`` that fails is ``PreconditionFailed``; ``If-None-Match``
        that fails, and ``If-Modified-Since`` the object's time, answer
        304 with the ETag; ``If-Unmodified-Since`` before it fails.
        """
        etag = self.put("k", b"data")
        modified = self.get("k", head=True).headers.get("last-modified")
        assert modified is not None
        when = parse_http_date(modified)
        assert when is not None
        self.assertEqual(self.get("k", if_match=etag).status, 200)
        self.assertEqual(self.get_error("k", if_match='"other"'), "PreconditionFailed")
        not_modified = self.get("k", if_none_match=etag)
        self.assertEqual(
            (not_modified.status, not_modified.headers.get("etag"), not_modified.body),
            (304, etag, None),
        )
        self.assertEqual(self.get("k", if_modified_since=modified).status, 304)
        earlier = format_http_date(when - timedelta(days=1))
        self.assertEqual(self.get("k", if_modified_since=earlier).status, 200)
        self.assertEqual(
            self.get_error("k", if_unmodified_since=earlier), "PreconditionFailed"
        )
        self.assertEqual(self.get("k", if_unmodified_since=modified).status, 200)

    # --- listings -------------------------------------------------------------------

    def fill(self) -> None:
        for key in ("a", "b/1", "b/2", "b/c/3", "c", "d-e", "d/f"):
            self.put(key, key.encode())

    def test_list_all(self) -> None:
        """
        Every key is listed, in order, with its size and ETag.
        """
        self.fill()
        page = self.listing()
        self.assertEqual(
            self.names(page), ["a", "b/1", "b/2", "b/c/3", "c", "d-e", "d/f"]
        )
        self.assertFalse(page.truncated)
        first = page.objects[0]
        self.assertEqual((first.size, first.etag), (1, md5_etag(b"a")))

    def test_list_prefix_and_delimiter(self) -> None:
        """
        A prefix narrows the listing; a delimiter rolls keys up into common
        prefixes, each listed once, in order among the keys.
        """
        self.fill()
        self.assertEqual(self.names(self.listing(prefix="b/")), ["b/1", "b/2", "b/c/3"])
        self.assertEqual(
            self.names(self.listing(delimiter="/")),
            ["a", "c", "d-e", "[b/]", "[d/]"],
        )
        page = self.listing(prefix="b/", delimiter="/")
        self.assertEqual(self.names(page), ["b/1", "b/2", "[b/c/]"])
        self.assertEqual(self.names(self.listing(prefix="d")), ["d-e", "d/f"])
        self.assertEqual(self.names(self.listing(prefix="nothing")), [])

    def test_list_pages(self) -> None:
        """
        ``max_keys`` cuts a page, which says it is truncated; the next page
        starts after the last key or common prefix, and a common prefix
        that the resume point lies in is not repeated.
        """
        self.fill()
        first = self.listing(max_keys=2)
        self.assertEqual((self.names(first), first.truncated), (["a", "b/1"], True))
        second = self.listing(max_keys=3, start_after="b/1")
        self.assertEqual(self.names(second), ["b/2", "b/c/3", "c"])
        rolled = self.listing(delimiter="/", max_keys=2)
        self.assertEqual(self.names(rolled), ["a", "[b/]"])
        after = self.listing(delimiter="/", start_after="b/2")
        self.assertEqual(self.names(after), ["c", "d-e", "[d/]"])
        self.assertEqual(self.names(self.listing(max_keys=0)), [])
        self.assertEqual(self.listing(start_after="d/f"), ListPage())

    # --- writes ---------------------------------------------------------------------

    def test_replace(self) -> None:
        """
        A write replaces the object, headers and all.
        """
        self.put("k", b"old", [("x-amz-meta-a", "1")])
        self.put("k", b"new")
        response = self.get("k")
        self.assertEqual(self.body_of(response), b"new")
        self.assertIsNone(response.headers.get("x-amz-meta-a"))

    def test_content_md5(self) -> None:
        """
        A ``Content-MD5`` that matches is accepted; one that does not is
        ``BadDigest`` and one that is not an MD5 ``InvalidDigest``, and
        then no object appears.
        """
        good = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
        self.put("k", b"abc", [("content-md5", good)])

        def attempt(value: str) -> str:
            return self.error(
                self.store.put_object(
                    ObjectWrite(
                        "other", BytesProducer(b"xyz"), HeaderList.of(content_md5=value)
                    )
                )
            ).code

        self.assertEqual(attempt(good), "BadDigest")
        self.assertEqual(attempt("nonsense"), "InvalidDigest")
        self.assertIsNone(self.read("other"))

    def test_write_conditions(self) -> None:
        """
        ``If-None-Match: *`` refuses to replace an object; ``If-Match`` must
        name the current ETag, and on a missing key is ``NoSuchKey``.
        """
        etag = self.put("k", b"one")
        code = self.error(
            self.store.put_object(
                ObjectWrite(
                    "k", BytesProducer(b"two"), HeaderList.of(if_none_match="*")
                )
            )
        ).code
        self.assertEqual(code, "PreconditionFailed")
        self.put("new", b"x", [("if-none-match", "*")])
        code = self.error(
            self.store.put_object(
                ObjectWrite("k", BytesProducer(b"two"), HeaderList.of(if_match='"no"'))
            )
        ).code
        self.assertEqual(code, "PreconditionFailed")
        self.put("k", b"three", [("if-match", etag)])
        self.assertEqual(self.read("k"), b"three")
        code = self.error(
            self.store.put_object(
                ObjectWrite("gone", BytesProducer(b"x"), HeaderList.of(if_match=etag))
            )
        ).code
        self.assertEqual(code, "NoSuchKey")

    def test_streamed(self) -> None:
        """
        A body arrives in pieces; the object appears whole once it has
        ended, not before.
        """
        self.put("k", b"before")
        body = ControlledProducer(length=12)
        putting = self.store.put_object(ObjectWrite("k", body))
        self.settle()
        body.send(b"hello ")
        self.settle()
        self.assertEqual(self.read("k"), b"before")
        body.send(b"world!")
        self.settle()
        body.finish()
        answer = self.result(putting)
        self.assertEqual(answer.headers.get("etag"), md5_etag(b"hello world!"))
        self.assertEqual(self.read("k"), b"hello world!")

    def test_failed_body(self) -> None:
        """
        A body that fails, or ends before its announced length, leaves no
        object and the old one untouched.
        """
        self.put("k", b"before")
        body = ControlledProducer(length=UNKNOWN_LENGTH)
        putting = self.store.put_object(ObjectWrite("k", body))
        self.settle()
        body.send(b"partial")
        self.settle()
        body.fail(S3Error("SignatureDoesNotMatch"))
        self.assertEqual(self.error(putting).code, "SignatureDoesNotMatch")
        short = ControlledProducer(length=10)
        putting = self.store.put_object(ObjectWrite("k", short))
        self.settle()
        short.send(b"abc")
        self.settle()
        short.finish()
        self.assertEqual(self.error(putting).code, "IncompleteBody")
        self.assertEqual(self.read("k"), b"before")

    def test_cancelled_write(self) -> None:
        """
        A write cancelled while its body arrives stops the body and leaves
        no object.
        """
        body = ControlledProducer(length=UNKNOWN_LENGTH)
        putting = self.store.put_object(ObjectWrite("k", body))
        self.settle()
        body.send(b"abc")
        self.settle()
        putting.cancel()
        self.settle()
        self.assertTrue(body.stopped)
        self.failureResultOf(putting)
        self.assertIsNone(self.read("k"))

    # --- copies ---------------------------------------------------------------------

    def test_copy(self) -> None:
        """
        A copy keeps the source's headers, or takes the request's with
        ``REPLACE``; its ETag is the MD5 of the bytes.
        """
        self.put("src", b"payload", [("x-amz-meta-a", "1")])
        result = self.result(
            self.store.copy_object(self.source("src"), "dst", HeaderList())
        )
        self.assertEqual(result.etag, md5_etag(b"payload"))
        copied = self.get("dst")
        self.assertEqual(self.body_of(copied), b"payload")
        self.assertEqual(copied.headers.get("x-amz-meta-a"), "1")
        self.assertEqual(copied.headers.get("content-type"), "text/plain")
        self.result(
            self.store.copy_object(
                self.source("src"),
                "dst",
                HeaderList.of(
                    ("x-amz-metadata-directive", "REPLACE"),
                    ("x-amz-meta-b", "2"),
                    content_type="text/x-new",
                ),
            )
        )
        replaced = self.get("dst", head=True).headers
        self.assertEqual(
            (
                replaced.get("x-amz-meta-a"),
                replaced.get("x-amz-meta-b"),
                replaced.get("content-type"),
            ),
            (None, "2", "text/x-new"),
        )

    def test_copy_refusals(self) -> None:
        """
        A copy of a missing object is ``NoSuchKey``; of an object onto
        itself with nothing changed, ``InvalidRequest``; one whose source
        conditions fail, ``PreconditionFailed``; one from another service,
        ``NotImplemented``.
        """
        etag = self.put("src", b"payload")

        def code(source: CopySource, key: str = "dst", **headers: str) -> str:
            copying = self.store.copy_object(source, key, HeaderList.of(**headers))
            return self.error(copying).code

        self.assertEqual(code(self.source("missing")), "NoSuchKey")
        self.assertEqual(code(self.source("src"), "src"), "InvalidRequest")
        self.assertEqual(
            code(
                self.source(
                    "src", conditions=HeaderList.of(x_amz_copy_source_if_match='"x"')
                )
            ),
            "PreconditionFailed",
        )
        self.assertEqual(
            code(
                self.source(
                    "src",
                    conditions=HeaderList.of(x_amz_copy_source_if_none_match=etag),
                )
            ),
            "PreconditionFailed",
        )
        elsewhere = BucketConfig(
            name="elsewhere",
            backend_type="s3",
            backend_options={"bucket_name": "elsewhere"},
        )
        self.assertEqual(
            code(CopySource(bucket=elsewhere, key="src")), "NotImplemented"
        )
        self.assertIsNone(self.read("dst"))

    def test_can_copy(self) -> None:
        """
        A store says it copies from its own bucket, and not from a bucket
        on another service.
        """
        self.assertTrue(self.store.can_copy(self.source("anything")))
        elsewhere = BucketConfig(
            name="elsewhere",
            backend_type="s3",
            backend_options={"bucket_name": "elsewhere"},
        )
        self.assertFalse(self.store.can_copy(CopySource(bucket=elsewhere, key="k")))

    # --- deletes --------------------------------------------------------------------

    def test_delete(self) -> None:
        """
        A delete removes the object; deleting a missing key succeeds.
        """
        self.put("k", b"x")
        answer = self.result(self.store.delete_object("k", None))
        self.assertEqual(answer.status, 204)
        self.assertIsNone(self.read("k"))
        self.assertEqual(self.result(self.store.delete_object("k", None)).status, 204)

    def test_delete_many(self) -> None:
        """
        A batch delete reports each key; a bad version fails only its own.
        """
        self.put("a", b"1")
        self.put("b", b"2")
        outcomes = self.result(
            self.store.delete_objects([("a", None), ("b", "v7"), ("zzz", None)])
        )
        by_key = {o.key: o.error[0] if o.error else None for o in outcomes}
        self.assertEqual(by_key, {"a": None, "b": "NoSuchVersion", "zzz": None})
        self.assertIsNone(self.read("a"))
        self.assertEqual(self.read("b"), b"2")

    # --- multipart uploads -------------------------------------------------------------

    def upload(self, key: str = "big", headers: Sequence[tuple[str, str]] = ()) -> str:
        upload_id = self.result(
            self.store.create_multipart_upload(
                key, HeaderList([("content-type", "text/plain"), *headers])
            )
        )
        assert isinstance(upload_id, str)
        return upload_id

    def part(self, upload_id: str, number: int, data: bytes, key: str = "big") -> str:
        answer = self.result(
            self.store.upload_part(
                ObjectWrite(key, BytesProducer(data)), upload_id, number
            )
        )
        etag = answer.headers.get("etag")
        assert etag is not None
        return etag

    def test_multipart(self) -> None:
        """
        Parts uploaded (in any order) and completed make one object, whose
        ETag is the MD5 of the parts' MD5s with the count, whose headers are
        the upload's, and whose parts can be read by number; the upload is
        gone afterwards.
        """
        upload_id = self.upload(headers=[("x-amz-meta-m", "v")])
        second = self.part(upload_id, 2, b"second")
        first = self.part(upload_id, 1, b"first")
        self.assertEqual(first, md5_etag(b"first"))
        parts = self.result(self.store.list_parts("big", upload_id, 1000, 0))
        self.assertEqual(
            [(p.part_number, p.etag, p.size) for p in parts.parts],
            [(1, first, 5), (2, second, 6)],
        )
        result = self.result(
            self.store.complete_multipart_upload(
                "big",
                upload_id,
                [CompletedPart(1, first), CompletedPart(2, second)],
                HeaderList(),
            )
        )
        digests = hashlib.md5(
            hashlib.md5(b"first").digest() + hashlib.md5(b"second").digest()
        ).hexdigest()
        self.assertEqual(result.etag, f'"{digests}-2"')
        response = self.get("big")
        self.assertEqual(self.body_of(response), b"firstsecond")
        self.assertEqual(response.headers.get("x-amz-meta-m"), "v")
        part = self.get("big", part_number=2)
        self.assertEqual(
            (
                part.status,
                part.headers.get("content-range"),
                part.headers.get("x-amz-mp-parts-count"),
                self.body_of(part),
            ),
            (206, "bytes 5-10/11", "2", b"second"),
        )
        self.assertEqual(self.get_error("big", part_number=3), "InvalidPartNumber")
        self.assertEqual(
            self.error(self.store.list_parts("big", upload_id, 1000, 0)).code,
            "NoSuchUpload",
        )

    def test_list_parts_pages(self) -> None:
        """
        ListParts pages through the parts above the marker.
        """
        upload_id = self.upload()
        for number in (1, 2, 3):
            self.part(upload_id, number, b"x" * number)
        page = self.result(self.store.list_parts("big", upload_id, 2, 0))
        self.assertEqual(
            ([p.part_number for p in page.parts], page.truncated),
            ([1, 2], True),
        )
        self.assertEqual(page.next_part_number_marker, 2)
        rest = self.result(self.store.list_parts("big", upload_id, 2, 2))
        self.assertEqual(
            ([p.part_number for p in rest.parts], rest.truncated), ([3], False)
        )

    def test_complete_refusals(self) -> None:
        """
        A completion naming no part is ``MalformedXML``; parts out of order
        ``InvalidPartOrder``; a part that is missing or has another ETag
        ``InvalidPart``; a part but the last below the minimum size
        ``EntityTooSmall``; an unknown upload ``NoSuchUpload``.
        """
        upload_id = self.upload()
        small = self.part(upload_id, 1, b"abc")
        large = self.part(upload_id, 2, b"x" * MIN_PART)

        def code(parts: list[CompletedPart], upload: str = upload_id) -> str:
            completing = self.store.complete_multipart_upload(
                "big", upload, parts, HeaderList()
            )
            return self.error(completing).code

        self.assertEqual(code([]), "MalformedXML")
        self.assertEqual(
            code([CompletedPart(2, large), CompletedPart(1, small)]), "InvalidPartOrder"
        )
        self.assertEqual(code([CompletedPart(3, large)]), "InvalidPart")
        self.assertEqual(code([CompletedPart(1, large)]), "InvalidPart")
        self.assertEqual(
            code([CompletedPart(1, small), CompletedPart(2, large)]), "EntityTooSmall"
        )
        self.assertEqual(
            code([CompletedPart(1, small)], "AAAAAAAAAAAAAAAAAAAAAAAA"), "NoSuchUpload"
        )
        # The last part may be small.
        self.result(
            self.store.complete_multipart_upload(
                "big",
                upload_id,
                [CompletedPart(2, large), CompletedPart(3, large)][:1],
                HeaderList(),
            )
        )
        self.assertEqual(self.read("big"), b"x" * MIN_PART)

    def test_abort(self) -> None:
        """
        An aborted upload is gone: its parts cannot be listed nor added to,
        and a second abort is ``NoSuchUpload``.
        """
        upload_id = self.upload()
        self.part(upload_id, 1, b"abc")
        self.result(self.store.abort_multipart_upload("big", upload_id))
        self.assertEqual(
            self.error(self.store.abort_multipart_upload("big", upload_id)).code,
            "NoSuchUpload",
        )
        uploading = self.store.upload_part(
            ObjectWrite("big", BytesProducer(b"x")), upload_id, 2
        )
        self.assertEqual(self.error(uploading).code, "NoSuchUpload")
        self.assertIsNone(self.read("big"))

    def test_part_numbers(self) -> None:
        """
        A part number outside 1 to 10000 is ``InvalidArgument``; an upload
        of another key is ``NoSuchUpload``.
        """
        upload_id = self.upload()
        for number in (0, 10001):
            uploading = self.store.upload_part(
                ObjectWrite("big", BytesProducer(b"x")), upload_id, number
            )
            self.assertEqual(self.error(uploading).code, "InvalidArgument")
        uploading = self.store.upload_part(
            ObjectWrite("other", BytesProducer(b"x")), upload_id, 1
        )
        self.assertEqual(self.error(uploading).code, "NoSuchUpload")

    def test_list_uploads(self) -> None:
        """
        Uploads in progress are listed by key, under a prefix, rolled up by
        a delimiter, and in pages.
        """
        ids = {key: self.upload(key) for key in ("a/1", "a/2", "b", "c")}
        page = self.result(
            self.store.list_multipart_uploads("", None, None, None, 1000)
        )
        self.assertEqual(
            [(u.key, u.upload_id) for u in page.uploads],
            [(k, ids[k]) for k in ("a/1", "a/2", "b", "c")],
        )
        rolled = self.result(
            self.store.list_multipart_uploads("", "/", None, None, 1000)
        )
        self.assertEqual(
            ([u.key for u in rolled.uploads], rolled.common_prefixes),
            (["b", "c"], ("a/",)),
        )
        under = self.result(
            self.store.list_multipart_uploads("a/", None, None, None, 1000)
        )
        self.assertEqual([u.key for u in under.uploads], ["a/1", "a/2"])
        first = self.result(self.store.list_multipart_uploads("", None, None, None, 2))
        self.assertEqual(
            (
                [u.key for u in first.uploads],
                first.truncated,
                first.next_key_marker,
                first.next_upload_id_marker,
            ),
            (["a/1", "a/2"], True, "a/2", ids["a/2"]),
        )
        rest = self.result(
            self.store.list_multipart_uploads("", None, "a/2", ids["a/2"], 2)
        )
        self.assertEqual(
            ([u.key for u in rest.uploads], rest.truncated), (["b", "c"], False)
        )

    def test_upload_part_copy(self) -> None:
        """
        A part copied from an object (or a range of it) has the MD5 of its
        bytes; a range outside the object is ``InvalidRange``.
        """
        self.put("src", b"0123456789")
        upload_id = self.upload()
        result = self.result(
            self.store.upload_part_copy(
                self.source("src", range="bytes=2-5"), "big", upload_id, 1
            )
        )
        self.assertEqual(result.etag, md5_etag(b"2345"))
        outside = self.store.upload_part_copy(
            self.source("src", range="bytes=5-10"), "big", upload_id, 2
        )
        self.assertEqual(self.error(outside).code, "InvalidRange")
        self.result(
            self.store.complete_multipart_upload(
                "big", upload_id, [CompletedPart(1, result.etag)], HeaderList()
            )
        )
        self.assertEqual(self.read("big"), b"2345")

    # --- buckets --------------------------------------------------------------------

    def test_buckets(self) -> None:
        """
        A bucket with objects cannot be deleted; an empty one can, and is
        gone; it can be created again, but not twice.
        """
        self.result(self.store.head_bucket())
        self.put("k", b"x")
        self.assertEqual(self.error(self.store.delete_bucket()).code, "BucketNotEmpty")
        self.result(self.store.delete_object("k", None))
        self.upload("pending")
        self.result(self.store.delete_bucket())
        self.assertEqual(self.error(self.store.head_bucket()).code, "NoSuchBucket")
        self.assertEqual(self.error(self.store.delete_bucket()).code, "NoSuchBucket")
        self.result(self.store.create_bucket())
        self.result(self.store.head_bucket())
        self.assertEqual(
            self.error(self.store.create_bucket()).code, "BucketAlreadyOwnedByYou"
        )
        self.assertEqual(self.names(self.listing()), [])
