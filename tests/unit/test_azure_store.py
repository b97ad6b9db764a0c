"""
Tests for L{multistore.stores.azure.store} and
L{multistore.stores.azure.xml}.

The store talks to a L{multistore.testing.ScriptedForwarder},
which records every request and answers with scripted responses whose
bodies remember whether they were delivered or discarded. Time comes from a
L{Clock}.
"""

from __future__ import annotations

import base64
import os
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from attrs import evolve
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from multistore.config import BucketConfig
from multistore.headers import HeaderList
from multistore.interfaces import IObjectStore
from multistore.model import (
    BackendRequest,
    BackendResponse,
    CompletedPart,
    CopySource,
    ListRequest,
    ObjectRead,
    ObjectWrite,
)
from multistore.s3.errors import S3Error
from multistore.s3.listing import SENTINEL
from multistore.s3.xml import parse_untrusted
from multistore.stores.azure import AzureStore
from multistore.stores.azure.auth import (
    API_VERSION,
    shared_key_signature,
    string_to_sign,
)
from multistore.stores.azure.store import (
    MAX_PUT_BLOB,
    UploadId,
    block_id,
    key_hash_of,
    object_properties,
    parse_block_id,
    part_etag,
    s3_object_headers,
)
from multistore.stores.azure.xml import (
    Block,
    block_list_document,
    parse_block_list,
    parse_error_code,
    parse_list_blobs,
)
from multistore.stores.streaming import LastByteHeld
from multistore.testing import (
    CollectingConsumer,
    RecordingBody,
    ScriptedForwarder,
    respond,
)
from tests.unit.test_s3_store import scripted, uses_of
from tests.unit.test_stores_streaming import MemoryBody

NOW = 1_700_000_000.0
ENDPOINT = "http://azure.test:10000/acct"
ACCOUNT = "acct"
KEY = base64.b64encode(b"secret key bytes" * 4).decode("ascii")

#: What Azure says about itself, which no client may see.
SECRET_MESSAGE = "The account acct container real-container says no"

keys = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40
)


def make_store(forwarder: ScriptedForwarder, **options: str) -> AzureStore:
    """
    A store on container ``real-container`` of account ``acct`` at
    L{ENDPOINT}, signing with L{KEY} unless told otherwise.
    """
    settings = {
        "endpoint": ENDPOINT,
        "account_name": ACCOUNT,
        "container_name": "real-container",
        "access_key": KEY,
        **options,
    }
    clock = Clock()
    clock.advance(NOW)
    bucket = BucketConfig(
        name="virtual", backend_type="azure", backend_options=settings
    )
    return AzureStore(bucket, forwarder, clock)


def azure_error(status: int, code: str, head: bool = False) -> BackendResponse:
    """
    An Azure error response, with its code in the header and (but for a
    HEAD) the document.
    """
    body = (
        b""
        if head
        else (
            f"<?xml version='1.0' encoding='utf-8'?><Error><Code>{code}</Code>"
            f"<Message>{SECRET_MESSAGE}</Message></Error>"
        ).encode()
    )
    return respond(status, [("x-ms-error-code", code)], body)


def query_of(request: BackendRequest) -> dict[str, str]:
    """
    The decoded query of a request.
    """
    return dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))


def document_of(request: BackendRequest) -> bytes:
    """
    The in-memory body of a request.
    """
    assert request.body is not None
    sink = CollectingConsumer()
    request.body.startProducing(sink)
    return sink.value()


def listing(
    blobs: Sequence[str] = (),
    prefixes: Sequence[str] = (),
    next_marker: str = "",
) -> bytes:
    """
    A List Blobs answer.
    """
    items = "".join(
        f"<Blob><Name>{name}</Name><Properties>"
        "<Last-Modified>Tue, 14 Nov 2023 22:13:20 GMT</Last-Modified>"
        "<Etag>0x8D1</Etag><Content-Length>3</Content-Length>"
        "<BlobType>BlockBlob</BlobType></Properties></Blob>"
        for name in blobs
    ) + "".join(f"<BlobPrefix><Name>{p}</Name></BlobPrefix>" for p in prefixes)
    return (
        '<?xml version="1.0" encoding="utf-8"?><EnumerationResults>'
        f"<Blobs>{items}</Blobs><NextMarker>{next_marker}</NextMarker>"
        "</EnumerationResults>"
    ).encode()


def block_list(*blocks: tuple[str, int]) -> bytes:
    """
    A Get Block List answer of uncommitted blocks.
    """
    inner = "".join(
        f"<Block><Name>{name}</Name><Size>{size}</Size></Block>"
        for name, size in blocks
    )
    return (
        "<?xml version='1.0'?><BlockList><CommittedBlocks/>"
        f"<UncommittedBlocks>{inner}</UncommittedBlocks></BlockList>"
    ).encode()


class StoreTestCase(SynchronousTestCase):
    """
    Helpers.
    """

    def assert_settled(
        self, forwarder: ScriptedForwarder, returned: object = None
    ) -> None:
        """
        Every response body was delivered or discarded once, but
        ``returned``.
        """
        for body in forwarder.bodies:
            if body is returned:
                self.assertEqual(uses_of(body), [])
            else:
                self.assertIn(uses_of(body), (["deliver"], ["discard"]))

    def error_of(self, d: Deferred[Any]) -> S3Error:
        """
        :return: the S3Error ``d`` failed with.
        """
        error = self.failureResultOf(d, S3Error).value
        assert isinstance(error, S3Error)
        return error


class RequestTests(StoreTestCase):
    """
    URLs and authorization.
    """

    def test_provides(self) -> None:
        """
        The store provides L{IObjectStore}.
        """
        self.assertTrue(verifyObject(IObjectStore, make_store(scripted())))

    def test_default_endpoint(self) -> None:
        """
        Without an endpoint, the account's public blob endpoint is used.
        """
        store = make_store(scripted(), endpoint="")
        self.assertEqual(
            store.url("a b"), "https://acct.blob.core.windows.net/real-container/a%20b"
        )

    @given(keys)
    def test_key_encoded(self, key: str) -> None:
        """
        The blob name is percent-encoded byte for byte, ``/`` kept.
        """
        url = make_store(scripted()).url(key)
        path = urlsplit(url).path
        self.assertTrue(path.startswith("/acct/real-container/"))
        self.assertEqual(unquote(path[len("/acct/real-container/") :]), key)

    def test_shared_key(self) -> None:
        """
        A request carries ``x-ms-version``, ``x-ms-date`` and a SharedKey
        signature over its string to sign.
        """
        forwarder = scripted(respond(200, [("content-length", "3")]))
        self.successResultOf(
            make_store(forwarder).get_object(ObjectRead("k", head=True))
        )
        request = forwarder.request
        self.assertEqual(request.headers.get("x-ms-version"), API_VERSION)
        self.assertEqual(
            request.headers.get("x-ms-date"), "Tue, 14 Nov 2023 22:13:20 GMT"
        )
        text = string_to_sign(
            "HEAD", request.url, request.headers.without("authorization"), None, ACCOUNT
        )
        self.assertEqual(
            request.headers.get("authorization"),
            f"SharedKey {ACCOUNT}:{shared_key_signature(KEY, text)}",
        )

    def test_sas(self) -> None:
        """
        A SAS token is appended to the query and nothing is signed.
        """
        forwarder = scripted(respond(200))
        store = make_store(forwarder, access_key="", sas_token="?sv=1&sig=x%2By")
        self.successResultOf(store.head_bucket())
        self.assertEqual(
            urlsplit(forwarder.request.url).query, "restype=container&sv=1&sig=x%2By"
        )
        self.assertNotIn("authorization", forwarder.request.headers)

    def test_anonymous(self) -> None:
        """
        ``skip_signature`` sends requests unsigned.
        """
        forwarder = scripted(respond(200))
        store = make_store(forwarder, skip_signature="true")
        self.successResultOf(store.head_bucket())
        self.assertNotIn("authorization", forwarder.request.headers)

    def test_bearer(self) -> None:
        """
        A bearer token from the options, or from a provider, is sent.
        """
        forwarder = scripted(respond(200), respond(200))
        store = make_store(forwarder, access_key="", bearer_token="tok")
        self.successResultOf(store.head_bucket())
        self.assertEqual(
            forwarder.requests[0].headers.get("authorization"), "Bearer tok"
        )
        provided = evolve(store, token_provider=lambda: succeed("fresh"))
        self.successResultOf(provided.head_bucket())
        self.assertEqual(
            forwarder.requests[1].headers.get("authorization"), "Bearer fresh"
        )

    def test_bad_key(self) -> None:
        """
        An account key that is not base64 fails without a request.
        """
        forwarder = scripted()
        store = make_store(forwarder, access_key="not base64!")
        error = self.error_of(store.head_bucket())
        self.assertEqual(error.code, "ServiceUnavailable")
        self.assertEqual(forwarder.requests, [])


class ReadTests(StoreTestCase):
    """
    Tests for L{AzureStore.get_object}.
    """

    def test_headers_mapped(self) -> None:
        """
        Content headers, ETag and time pass; metadata names are decoded;
        Content-MD5 and ``x-ms-*`` are dropped; the body is handed back.
        """
        response = respond(
            200,
            [
                ("content-type", "text/plain"),
                ("content-length", "3"),
                ("content-md5", "AAAA"),
                ("etag", '"0x8D1"'),
                ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
                ("x-ms-blob-type", "BlockBlob"),
                ("x-ms-meta-Owner", "me"),
                ("x-ms-meta-Mx_mnxw45dfnz2c243ime", "abc"),
                ("x-ms-request-id", "r"),
                ("server", "Azure"),
            ],
            b"abc",
        )
        forwarder = scripted(response)
        result = self.successResultOf(make_store(forwarder).get_object(ObjectRead("k")))
        self.assertEqual(
            list(result.headers),
            [
                ("content-type", "text/plain"),
                ("content-length", "3"),
                ("etag", '"0x8D1"'),
                ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
                ("x-amz-meta-owner", "me"),
                ("x-amz-meta-content-sha", "abc"),
            ],
        )
        self.assertIs(result.body, response.body)
        self.assert_settled(forwarder, response.body)

    def test_head_discards(self) -> None:
        """
        A HEAD hands back no body and discards Azure's.
        """
        forwarder = scripted(respond(200))
        result = self.successResultOf(
            make_store(forwarder).get_object(ObjectRead("k", head=True))
        )
        self.assertIsNone(result.body)
        self.assertEqual(forwarder.request.method, "HEAD")
        self.assert_settled(forwarder)

    def test_conditions_forwarded(self) -> None:
        """
        Conditions are sent, but If-Unmodified-Since when If-Match is given
        and If-Modified-Since when If-None-Match is (as S3 decides); 304
        passes.
        """
        forwarder = scripted(respond(304))
        read = ObjectRead(
            "k",
            if_match='"a"',
            if_none_match='"b"',
            if_modified_since="x",
            if_unmodified_since="y",
        )
        result = self.successResultOf(make_store(forwarder).get_object(read))
        self.assertEqual(result.status, 304)
        headers = forwarder.request.headers
        self.assertEqual(headers.get("if-match"), '"a"')
        self.assertEqual(headers.get("if-none-match"), '"b"')
        self.assertNotIn("if-modified-since", headers)
        self.assertNotIn("if-unmodified-since", headers)
        self.assert_settled(forwarder)

    def test_dates_checked(self) -> None:
        """
        Dates S3 ignores (not HTTP-dates, an If-Modified-Since in the
        future) are not sent (Azurite answers 304 and 412 for them); others
        are sent as IMF-fixdates.
        """
        for name, value, sent in (
            ("if_modified_since", "garbage", None),
            ("if_unmodified_since", "garbage", None),
            ("if_modified_since", "Fri, 01 Jan 2100 00:00:00 GMT", None),
            (
                "if_unmodified_since",
                "Fri, 01 Jan 2100 00:00:00 GMT",
                "Fri, 01 Jan 2100 00:00:00 GMT",
            ),
            (
                "if_modified_since",
                "Sunday, 06-Nov-94 08:49:37 GMT",
                "Sun, 06 Nov 1994 08:49:37 GMT",
            ),
        ):
            forwarder = scripted(respond(200))
            self.successResultOf(
                make_store(forwarder).get_object(ObjectRead("k", **{name: value}))
            )
            header = name.replace("_", "-")
            self.assertEqual(forwarder.request.headers.get(header), sent, value)

    def test_if_none_match_wildcard(self) -> None:
        """
        ``If-None-Match: *`` (which Azure refuses on reads) reads the
        blob's properties, with the other conditions: a blob that is there
        is 304, one that is not ``NoSuchKey``, a failed ``If-Match`` 412.
        """
        forwarder = scripted(respond(200, [("etag", '"0x1"'), ("content-length", "5")]))
        result = self.successResultOf(
            make_store(forwarder).get_object(
                ObjectRead("k", if_none_match="*", if_match='"0x1"', range="bytes=-1")
            )
        )
        self.assertEqual(result.status, 304)
        self.assertIsNone(result.body)
        self.assertEqual(result.headers.get("etag"), '"0x1"')
        self.assertEqual(forwarder.request.method, "HEAD")
        self.assertNotIn("if-none-match", forwarder.request.headers)
        self.assertEqual(forwarder.request.headers.get("if-match"), '"0x1"')
        self.assertNotIn("x-ms-range", forwarder.request.headers)
        self.assert_settled(forwarder)
        for answer, code in (
            (azure_error(404, "BlobNotFound", head=True), "NoSuchKey"),
            (azure_error(412, "ConditionNotMet", head=True), "PreconditionFailed"),
        ):
            forwarder = scripted(answer)
            error = self.error_of(
                make_store(forwarder).get_object(ObjectRead("k", if_none_match="*"))
            )
            self.assertEqual(error.code, code)
            self.assert_settled(forwarder)

    def test_range_of_empty_blob(self) -> None:
        """
        A range of an empty blob is ``InvalidRange`` (Azurite answers it
        with a 206 of ``bytes 0--1/0``).
        """
        for head in (False, True):
            forwarder = scripted(
                respond(
                    206,
                    [("content-range", "bytes 0--1/0"), ("content-length", "0")],
                )
            )
            error = self.error_of(
                make_store(forwarder).get_object(
                    ObjectRead("k", range="bytes=0-", head=head)
                )
            )
            self.assertEqual(error.code, "InvalidRange")
            self.assertEqual(error.headers, (("content-range", "bytes */0"),))
            self.assert_settled(forwarder)

    def test_head_with_range(self) -> None:
        """
        A HEAD with a range (which Get Blob Properties ignores) answers as
        the GET would: 206 with the range's length and ``Content-Range``, or
        ``InvalidRange``.
        """
        forwarder = scripted(respond(200, [("content-length", "10")]))
        result = self.successResultOf(
            make_store(forwarder).get_object(
                ObjectRead("k", head=True, range="bytes=2-4")
            )
        )
        self.assertEqual(result.status, 206)
        self.assertEqual(result.headers.get("content-length"), "3")
        self.assertEqual(result.headers.get("content-range"), "bytes 2-4/10")
        self.assert_settled(forwarder)
        forwarder = scripted(respond(200, [("content-length", "0")]))
        error = self.error_of(
            make_store(forwarder).get_object(
                ObjectRead("k", head=True, range="bytes=0-")
            )
        )
        self.assertEqual(error.headers, (("content-range", "bytes */0"),))
        self.assert_settled(forwarder)

    def test_range(self) -> None:
        """
        A single range is sent as ``x-ms-range``; one S3 ignores is not sent.
        """
        for header, sent in (
            ("bytes=1-5", "bytes=1-5"),
            ("bytes=3-", "bytes=3-"),
            ("bytes=5-1", None),
            ("bytes=1-2,4-5", None),
            ("items=1-2", None),
        ):
            forwarder = scripted(respond(206 if sent else 200))
            self.successResultOf(
                make_store(forwarder).get_object(ObjectRead("k", range=header))
            )
            self.assertEqual(forwarder.request.headers.get("x-ms-range"), sent)

    def test_huge_range_numbers(self) -> None:
        """
        Range numbers longer than Python reads as integers (4300 digits)
        are no internal error: a start past any blob is sent for Azure to
        refuse as unsatisfiable, an end past any blob reads to the end, and a
        suffix longer than any blob is the whole blob.
        """
        huge = "9" * 5000
        for header, answers, sent in (
            (f"bytes={huge}-", [azure_error(416, "InvalidRange")], None),
            (f"bytes=2-{huge}", [respond(206)], "bytes=2-"),
            (
                f"bytes=-{huge}",
                [respond(200, [("content-length", "10")]), respond(206)],
                "bytes=0-9",
            ),
        ):
            forwarder = scripted(*answers, respond(200, [("content-length", "10")]))
            d = make_store(forwarder).get_object(ObjectRead("k", range=header))
            if sent is None:
                error = self.error_of(d)
                self.assertEqual(error.code, "InvalidRange")
                self.assertEqual(error.headers, (("content-range", "bytes */10"),))
            else:
                self.successResultOf(d)
                self.assertEqual(
                    forwarder.requests[len(answers) - 1].headers.get("x-ms-range"),
                    sent,
                )

    def test_suffix_range(self) -> None:
        """
        A suffix range is resolved against the blob's size first.
        """
        forwarder = scripted(respond(200, [("content-length", "10")]), respond(206))
        self.successResultOf(
            make_store(forwarder).get_object(ObjectRead("k", range="bytes=-3"))
        )
        self.assertEqual(forwarder.requests[0].method, "HEAD")
        self.assertEqual(forwarder.requests[1].headers.get("x-ms-range"), "bytes=7-9")
        self.assert_settled(forwarder, forwarder.bodies[1])

    def test_version_sizes(self) -> None:
        """
        A suffix range, or an unsatisfiable one, of a version is resolved
        against that version's size, not the current blob's.
        """
        forwarder = scripted(
            respond(200, [("content-length", "10")]),
            respond(206),
        )
        self.successResultOf(
            make_store(forwarder).get_object(
                ObjectRead("k", range="bytes=-3", version_id="v1")
            )
        )
        self.assertEqual(
            [query_of(r).get("versionid") for r in forwarder.requests], ["v1", "v1"]
        )
        forwarder = scripted(
            azure_error(416, "InvalidRange"), respond(200, [("content-length", "4")])
        )
        self.error_of(
            make_store(forwarder).get_object(
                ObjectRead("k", range="bytes=9-", version_id="v1")
            )
        )
        self.assertEqual(
            [query_of(r).get("versionid") for r in forwarder.requests], ["v1", "v1"]
        )
        self.assert_settled(forwarder)

    def test_unsatisfiable(self) -> None:
        """
        ``InvalidRange`` carries the blob's size in ``Content-Range``.
        """
        forwarder = scripted(
            azure_error(416, "InvalidRange"), respond(200, [("content-length", "4")])
        )
        error = self.error_of(
            make_store(forwarder).get_object(ObjectRead("k", range="bytes=9-"))
        )
        self.assertEqual(error.code, "InvalidRange")
        self.assertEqual(error.headers, (("content-range", "bytes */4"),))
        self.assert_settled(forwarder)

    def test_part_numbers(self) -> None:
        """
        Part 1 is the whole blob as a 206; other parts are
        ``InvalidPartNumber`` without a request.
        """
        forwarder = scripted(respond(200, [("content-length", "4")], b"abcd"))
        result = self.successResultOf(
            make_store(forwarder).get_object(ObjectRead("k", part_number=1))
        )
        self.assertEqual(result.status, 206)
        self.assertEqual(result.headers.get("content-range"), "bytes 0-3/4")
        forwarder = scripted()
        error = self.error_of(
            make_store(forwarder).get_object(ObjectRead("k", part_number=2))
        )
        self.assertEqual(error.code, "InvalidPartNumber")

    def test_errors_mapped(self) -> None:
        """
        Azure's codes become S3's, Azure's messages are never shown, and
        bodies are released.
        """
        for status, code, expected in (
            (404, "BlobNotFound", "NoSuchKey"),
            (404, "ContainerNotFound", "NoSuchBucket"),
            (412, "ConditionNotMet", "PreconditionFailed"),
            (403, "AuthenticationFailed", "AccessDenied"),
            (403, "AuthorizationFailure", "AccessDenied"),
            (503, "ServerBusy", "SlowDown"),
            (500, "OperationTimedOut", "ServiceUnavailable"),
            (500, "InternalError", "ServiceUnavailable"),
            (400, "Md5Mismatch", "BadDigest"),
            (413, "RequestBodyTooLarge", "EntityTooLarge"),
            (400, "InvalidBlockList", "InvalidPart"),
        ):
            for head in (False, True):
                forwarder = scripted(azure_error(status, code, head))
                error = self.error_of(
                    make_store(forwarder).get_object(ObjectRead("k", head=head))
                )
                self.assertEqual(error.code, expected, (code, head))
                self.assertNotIn(SECRET_MESSAGE, str(error) + error.message)
                self.assert_settled(forwarder)

    def test_code_from_document(self) -> None:
        """
        Without ``x-ms-error-code``, the document's ``Code`` is used; with
        neither, the status decides.
        """
        body = b"<Error><Code>BlobNotFound</Code><Message>m</Message></Error>"
        forwarder = scripted(respond(404, [], body), respond(404))
        store = make_store(forwarder)
        self.assertEqual(
            self.error_of(store.get_object(ObjectRead("k"))).code, "NoSuchKey"
        )
        self.assertEqual(
            self.error_of(store.get_object(ObjectRead("k"))).code, "NoSuchKey"
        )


class ListTests(StoreTestCase):
    """
    Tests for L{AzureStore.list_objects}.
    """

    def test_page(self) -> None:
        """
        Blobs and prefixes are listed; the query names the container,
        prefix, delimiter and size; a marker becomes the next token.
        """
        forwarder = scripted(respond(200, [], listing(["a", "b"], ["c/"], "M1")))
        page = self.successResultOf(
            make_store(forwarder).list_objects(
                ListRequest(prefix="p", delimiter="/", max_keys=3, token="M0")
            )
        )
        self.assertEqual(
            query_of(forwarder.request),
            {
                "restype": "container",
                "comp": "list",
                "maxresults": "3",
                "prefix": "p",
                "delimiter": "/",
                "marker": "M0",
            },
        )
        self.assertEqual([o.key for o in page.objects], ["a", "b"])
        self.assertEqual(page.objects[0].etag, '"0x8D1"')
        self.assertEqual(page.objects[0].size, 3)
        self.assertEqual(
            page.objects[0].last_modified, datetime.fromtimestamp(NOW, UTC)
        )
        self.assertEqual(page.common_prefixes, ("c/",))
        self.assertTrue(page.truncated)
        self.assertEqual(page.next_token, "M1")
        self.assert_settled(forwarder)

    def test_start_after(self) -> None:
        """
        Keys up to ``start_after`` are skipped, reading on through pages
        (empty ones too) until the page is full or the listing ends.
        """
        forwarder = scripted(
            respond(200, [], listing(["a", "b"], [], "M1")),
            respond(200, [], listing([], [], "M2")),
            respond(200, [], listing(["c", "d"], [], "")),
        )
        page = self.successResultOf(
            make_store(forwarder).list_objects(ListRequest(start_after="b", max_keys=2))
        )
        self.assertEqual([o.key for o in page.objects], ["c", "d"])
        self.assertFalse(page.truncated)
        self.assertEqual(
            [query_of(r).get("marker") for r in forwarder.requests], [None, "M1", "M2"]
        )
        self.assertEqual(
            [query_of(r)["maxresults"] for r in forwarder.requests], ["2", "2", "2"]
        )

    def test_after_common_prefix(self) -> None:
        """
        Resuming after a rolled-up common prefix (the gateway's
        ``prefix + SENTINEL``, as a V1 ``NextMarker`` that is a common
        prefix asks) does not show that prefix again; a ``start_after``
        inside a prefix still shows it.
        """
        forwarder = scripted(
            respond(200, [], listing(["a"], ["b/", "c/"], "")),
            respond(200, [], listing(["a"], ["b/", "c/"], "")),
        )
        store = make_store(forwarder)
        page = self.successResultOf(
            store.list_objects(
                ListRequest(delimiter="/", max_keys=10, start_after="b/" + SENTINEL)
            )
        )
        self.assertEqual(page.common_prefixes, ("c/",))
        self.assertEqual(page.objects, ())
        page = self.successResultOf(
            store.list_objects(
                ListRequest(delimiter="/", max_keys=10, start_after="b/x")
            )
        )
        self.assertEqual(page.common_prefixes, ("b/", "c/"))

    def test_missing_container(self) -> None:
        """
        A missing container is ``NoSuchBucket``.
        """
        forwarder = scripted(azure_error(404, "ContainerNotFound"))
        error = self.error_of(make_store(forwarder).list_objects(ListRequest()))
        self.assertEqual(error.code, "NoSuchBucket")
        self.assert_settled(forwarder)


class XmlTests(SynchronousTestCase):
    """
    Tests for L{multistore.stores.azure.xml}.
    """

    def test_encoded_names(self) -> None:
        """
        A name Azure marks ``Encoded`` is percent-decoded.
        """
        body = listing(["x"]).replace(
            b"<Name>x</Name>", b'<Name Encoded="true">a%01b%C3%A9</Name>'
        )
        self.assertEqual(parse_list_blobs(body).blobs[0].name, "a\x01bé")

    def test_bad_documents(self) -> None:
        """
        What is not a listing or block list is ``ServiceUnavailable``.
        """
        for body in (
            b"",
            b"<x/>",
            b"<EnumerationResults><Blobs><Blob/></Blobs></EnumerationResults>",
        ):
            self.assertRaises(S3Error, parse_list_blobs, body)
        self.assertRaises(S3Error, parse_block_list, b"<Error/>")

    def test_block_list(self) -> None:
        """
        Block lists are read, and written as ``Latest`` entries.
        """
        self.assertEqual(
            parse_block_list(block_list(("QUE=", 3))), ((), (Block("QUE=", 3),))
        )
        root = parse_untrusted(block_list_document(["a", "b"]))
        assert root is not None
        self.assertEqual(
            [(e.tag, e.text) for e in root], [("Latest", "a"), ("Latest", "b")]
        )

    def test_error_code(self) -> None:
        """
        An error document's code and message are read.
        """
        self.assertEqual(
            parse_error_code(b"<Error><Code>X</Code><Message>m</Message></Error>"),
            ("X", "m"),
        )
        self.assertIsNone(parse_error_code(b"nope"))


class WriteTests(StoreTestCase):
    """
    Tests for L{AzureStore.put_object}.
    """

    def test_put_blob(self) -> None:
        """
        A body of known length is one Put Blob with the object's
        properties, metadata, Content-MD5 and conditions, its last byte held
        back; the answer is Azure's ETag.
        """
        forwarder = scripted(respond(201, [("etag", '"0x1"')]), read_bodies=True)
        write = ObjectWrite(
            "k",
            MemoryBody(b"data"),
            HeaderList(
                [
                    ("content-type", "text/x"),
                    ("content-encoding", "gzip, aws-chunked"),
                    ("x-amz-meta-a-b", "1"),
                    ("content-md5", "MD5="),
                    ("if-none-match", "*"),
                    ("x-amz-checksum-crc32", "AAAA"),
                    ("expires", "never"),
                ]
            ),
        )
        result = self.successResultOf(make_store(forwarder).put_object(write))
        self.assertEqual(list(result.headers), [("etag", '"0x1"')])
        request = forwarder.request
        self.assertIsInstance(request.body, LastByteHeld)
        self.assertEqual(forwarder.uploads, [b"data"])
        sent = request.headers.without("x-ms-date", "authorization", "x-ms-version")
        self.assertEqual(
            list(sent),
            [
                ("x-ms-blob-type", "BlockBlob"),
                ("x-ms-blob-content-type", "text/x"),
                ("x-ms-blob-content-encoding", "gzip"),
                ("x-ms-meta-mx_mewwe", "1"),
                ("content-md5", "MD5="),
                ("if-none-match", "*"),
            ],
        )
        self.assert_settled(forwarder)

    def test_failed_body(self) -> None:
        """
        A body that fails fails the write with its own failure.
        """
        forwarder = scripted(respond(201), read_bodies=True)
        body = MemoryBody(b"data", fail=True)
        d = make_store(forwarder).put_object(ObjectWrite("k", body))
        self.failureResultOf(d)
        self.assertEqual(forwarder.uploads, [b"dat"])

    def test_condition_failed(self) -> None:
        """
        ``BlobAlreadyExists`` and ``ConditionNotMet`` are
        ``PreconditionFailed``.
        """
        for status, code in ((409, "BlobAlreadyExists"), (412, "ConditionNotMet")):
            forwarder = scripted(azure_error(status, code))
            error = self.error_of(
                make_store(forwarder).put_object(ObjectWrite("k", MemoryBody(b"x")))
            )
            self.assertEqual(error.code, "PreconditionFailed")
            self.assert_settled(forwarder)

    def test_unknown_length_small(self) -> None:
        """
        A body of unknown length that ends within a block is one Put Blob,
        sent once it has ended.
        """
        forwarder = scripted(respond(201, [("etag", '"0x2"')]), read_bodies=True)
        write = ObjectWrite("k", MemoryBody(b"abc", length=None))
        self.successResultOf(make_store(forwarder).put_object(write))
        self.assertEqual(forwarder.uploads, [b"abc"])
        self.assertNotIn("comp", query_of(forwarder.request))

    def test_unknown_length_in_blocks(self) -> None:
        """
        A longer body of unknown length is sent as blocks of one id length
        and committed, with the object's headers, once it has ended.
        """
        forwarder = scripted(
            respond(201),
            respond(201),
            respond(201),
            respond(201, [("etag", '"0x3"')]),
            read_bodies=True,
        )
        store = evolve(make_store(forwarder), block_size=4)
        write = ObjectWrite(
            "k",
            MemoryBody(chunks=[b"abcdefg", b"hijk"], length=None),
            HeaderList([("content-type", "t/x"), ("if-none-match", "*")]),
        )
        result = self.successResultOf(store.put_object(write))
        self.assertEqual(result.headers.get("etag"), '"0x3"')
        blocks = [query_of(r).get("blockid") for r in forwarder.requests[:3]]
        self.assertEqual(len({len(b or "") for b in blocks}), 1)
        self.assertEqual(forwarder.uploads[:3], [b"abcd", b"efgh", b"ijk"])
        commit = forwarder.requests[3]
        self.assertEqual(query_of(commit), {"comp": "blocklist"})
        self.assertEqual(
            forwarder.uploads[3], block_list_document([b or "" for b in blocks])
        )
        self.assertEqual(commit.headers.get("x-ms-blob-content-type"), "t/x")
        self.assertEqual(commit.headers.get("if-none-match"), "*")
        self.assert_settled(forwarder)

    def test_unknown_length_fails(self) -> None:
        """
        A body of unknown length that fails after some blocks commits
        nothing and fails with its own failure.
        """
        forwarder = scripted(respond(201), respond(201), read_bodies=True)
        store = evolve(make_store(forwarder), block_size=4)
        body = MemoryBody(chunks=[b"abcdefghij"], length=None, fail=True)
        failure = self.failureResultOf(store.put_object(ObjectWrite("k", body)))
        self.assertIs(failure.value, body.error)
        self.assertNotIn(
            "blocklist", [query_of(r).get("comp") for r in forwarder.requests]
        )

    def test_object_properties(self) -> None:
        """
        Only content headers and metadata become blob headers.
        """
        self.assertEqual(
            list(
                object_properties(
                    HeaderList(
                        [
                            ("cache-control", "no"),
                            ("content-disposition", "inline"),
                            ("content-language", "fr"),
                            ("x-amz-tagging", "a=b"),
                            ("x-amz-meta-ok", "1"),
                        ]
                    )
                )
            ),
            [
                ("x-ms-blob-content-language", "fr"),
                ("x-ms-blob-content-disposition", "inline"),
                ("x-ms-blob-cache-control", "no"),
                ("x-ms-meta-ok", "1"),
            ],
        )
        self.assertEqual(
            list(s3_object_headers(HeaderList([("x-ms-meta-a", "1")]))),
            [("x-amz-meta-a", "1")],
        )

    def test_max_put_blob(self) -> None:
        """
        Azure's Put Blob limit is 5000 MiB.
        """
        self.assertEqual(MAX_PUT_BLOB, 5000 * 1024 * 1024)


class UploadIdTests(SynchronousTestCase):
    """
    Tests for L{UploadId} and block ids.
    """

    @given(
        keys,
        st.lists(
            st.tuples(
                st.from_regex(r"x-amz-meta-[a-z0-9-]{1,10}", fullmatch=True),
                st.text(max_size=20),
            ),
            max_size=5,
        ),
    )
    def test_round_trip(self, key: str, headers: list[tuple[str, str]]) -> None:
        """
        An upload id carries its headers back, for its key only.
        """
        upload = UploadId("0123456789abcdef", key_hash_of(key), 5, HeaderList(headers))
        encoded = upload.encode()
        self.assertEqual(UploadId.decode(encoded, key), upload)
        self.assertRaises(S3Error, UploadId.decode, encoded, key + "x")
        self.assertRaises(S3Error, UploadId.decode, encoded[:-3], key)

    def test_garbage(self) -> None:
        """
        What is not an upload id is ``NoSuchUpload``.
        """
        for text in ("", "az1.", "az1.!!!!", "other", "az1.bnVsbA"):
            error = self.assertRaises(S3Error, UploadId.decode, text, "k")
            self.assertEqual(error.code, "NoSuchUpload")

    def test_garbled_documents(self) -> None:
        """
        An upload id whose document is well-formed deflated JSON but holds
        what no id holds (an infinite or far-off time, arrays nested past
        the recursion limit) is ``NoSuchUpload``, never an internal error.
        """
        key_hash = key_hash_of("k")
        for document in (
            f'["0123456789abcdef","{key_hash}",1e999,[]]',
            f'["0123456789abcdef","{key_hash}",-1e999,[]]',
            f'["0123456789abcdef","{key_hash}",{10**30},[]]',
            f'["0123456789abcdef","{key_hash}",-5,[]]',
            "[" * 40_000,
            f'["0123456789abcdef","{key_hash}",1,' + "[" * 40_000,
        ):
            packed = zlib.compress(document.encode("ascii"))
            text = "az1." + base64.urlsafe_b64encode(packed).decode().rstrip("=")
            error = self.assertRaises(S3Error, UploadId.decode, text, "k")
            self.assertEqual(error.code, "NoSuchUpload", document[:60])

    def test_far_off_time_lists_no_parts(self) -> None:
        """
        ListParts with an id naming a time no date can hold is
        ``NoSuchUpload``, without asking Azure.
        """
        upload = UploadId("0123456789abcdef", key_hash_of("k"), 10**15)
        forwarder = scripted()
        store = make_store(forwarder)
        d = store.list_parts("k", upload.encode(), 10, 0)
        self.assertEqual(self.failureResultOf(d, S3Error).value.code, "NoSuchUpload")
        self.assertEqual(forwarder.requests, [])

    def test_too_long(self) -> None:
        """
        Headers too large for an upload id are ``InvalidArgument``.
        """
        upload = UploadId(
            "0123456789abcdef",
            "k",
            1,
            HeaderList([("x-amz-meta-a", base64.b64encode(os.urandom(4000)).decode())]),
        )
        self.assertEqual(
            self.assertRaises(S3Error, upload.encode).code, "InvalidArgument"
        )

    @given(st.integers(1, 99999), st.integers(1, 99999))
    def test_block_ids(self, a: int, b: int) -> None:
        """
        Block ids have one length and parse back.
        """
        nonce = "00ff00ff00ff00ff"
        self.assertEqual(len(block_id(nonce, a)), len(block_id(nonce, b)))
        self.assertEqual(parse_block_id(block_id(nonce, a)), (nonce, a))
        self.assertIsNone(parse_block_id("QUJD"))


class MultipartTests(StoreTestCase):
    """
    Tests for the multipart operations.
    """

    def upload(self, store: AzureStore, key: str = "k") -> str:
        """
        Create an upload.
        """
        return self.successResultOf(
            store.create_multipart_upload(
                key,
                HeaderList(
                    [("content-type", "t/x"), ("x-amz-meta-m", "1"), ("x-amz-acl", "p")]
                ),
            )
        )

    def test_create_without_request(self) -> None:
        """
        Creating an upload asks Azure nothing and keeps the object headers.
        """
        forwarder = scripted()
        upload_id = self.upload(make_store(forwarder))
        self.assertEqual(forwarder.requests, [])
        self.assertEqual(
            list(UploadId.decode(upload_id, "k").headers),
            [("content-type", "t/x"), ("x-amz-meta-m", "1")],
        )

    def test_part_and_complete(self) -> None:
        """
        A part is a Put Block; completing checks it against the uncommitted
        blocks and commits them in order with the upload's headers and the
        conditions.
        """
        forwarder = scripted(respond(201), respond(201), read_bodies=True)
        store = make_store(forwarder)
        upload_id = self.upload(store)
        upload = UploadId.decode(upload_id, "k")
        etags = []
        for number, data in ((1, b"aaa"), (2, b"bb")):
            response = self.successResultOf(
                store.upload_part(ObjectWrite("k", MemoryBody(data)), upload_id, number)
            )
            etags.append(response.headers.get("etag"))
            self.assertEqual(
                query_of(forwarder.requests[-1]),
                {"comp": "block", "blockid": upload.block_id(number)},
            )
        self.assertEqual(etags[0], part_etag(upload.block_id(1), 3))
        self.assertEqual(forwarder.uploads, [b"aaa", b"bb"])
        self.assert_settled(forwarder)
        forwarder = scripted(
            respond(
                200, [], block_list((upload.block_id(1), 3), (upload.block_id(2), 2))
            ),
            respond(
                201,
                [("etag", '"0x9"'), ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT")],
            ),
        )
        store = make_store(forwarder)
        result = self.successResultOf(
            store.complete_multipart_upload(
                "k",
                upload_id,
                [CompletedPart(1, etags[0] or ""), CompletedPart(2, etags[1] or "")],
                HeaderList([("if-match", '"0x1"')]),
            )
        )
        self.assertEqual(result.etag, '"0x9"')
        commit = forwarder.requests[-1]
        self.assertEqual(query_of(commit), {"comp": "blocklist"})
        self.assertEqual(
            document_of(commit),
            block_list_document([upload.block_id(1), upload.block_id(2)]),
        )
        self.assertEqual(commit.headers.get("x-ms-blob-content-type"), "t/x")
        self.assertEqual(commit.headers.get("x-ms-meta-m"), "1")
        self.assertEqual(commit.headers.get("if-match"), '"0x1"')
        self.assert_settled(forwarder)

    def test_complete_checks(self) -> None:
        """
        Parts out of order, missing, or with another ETag fail completion
        before anything is committed.
        """
        store = make_store(scripted())
        upload_id = self.upload(store)
        upload = UploadId.decode(upload_id, "k")
        good = part_etag(upload.block_id(1), 3)
        error = self.error_of(
            store.complete_multipart_upload(
                "k",
                upload_id,
                [CompletedPart(2, good), CompletedPart(1, good)],
                HeaderList(),
            )
        )
        self.assertEqual(error.code, "InvalidPartOrder")
        for parts in ([CompletedPart(1, '"other"')], [CompletedPart(2, good)]):
            forwarder = scripted(respond(200, [], block_list((upload.block_id(1), 3))))
            error = self.error_of(
                make_store(forwarder).complete_multipart_upload(
                    "k", upload_id, parts, HeaderList()
                )
            )
            self.assertEqual(error.code, "InvalidPart")
            self.assertEqual(len(forwarder.requests), 1)
            self.assert_settled(forwarder)

    def test_list_parts(self) -> None:
        """
        ListParts shows the upload's blocks only, from the marker, paged.
        """
        store = make_store(scripted())
        upload_id = self.upload(store)
        upload = UploadId.decode(upload_id, "k")
        other = block_id("ffffffffffffffff", 1)
        forwarder = scripted(
            respond(
                200,
                [],
                block_list(
                    (upload.block_id(1), 5),
                    (other, 9),
                    (upload.block_id(2), 6),
                    (upload.block_id(3), 7),
                ),
            )
        )
        page = self.successResultOf(
            make_store(forwarder).list_parts("k", upload_id, 1, 1)
        )
        self.assertEqual([(p.part_number, p.size) for p in page.parts], [(2, 6)])
        self.assertEqual(page.parts[0].etag, part_etag(upload.block_id(2), 6))
        self.assertTrue(page.truncated)
        self.assertEqual(page.next_part_number_marker, 2)

    def test_list_uploads(self) -> None:
        """
        Uploads are found from blobs that only the listing with uncommitted
        blobs shows, one per block id nonce, with ids that list parts but
        cannot complete; pages end with both markers.
        """
        first = block_id("aaaaaaaaaaaaaaaa", 1)
        second = block_id("bbbbbbbbbbbbbbbb", 1)
        forwarder = scripted(
            respond(200, [], listing(["done", "up"], ["p/"])),
            respond(200, [], listing(["done"], [])),
            respond(200, [], block_list((first, 1), (second, 2), (first, 1))),
        )
        store = make_store(forwarder)
        page = self.successResultOf(
            store.list_multipart_uploads("", "/", None, None, 2)
        )
        self.assertEqual(page.common_prefixes, ("p/",))
        self.assertEqual(
            [query_of(r).get("include") for r in forwarder.requests],
            ["uncommittedblobs", None, None],
        )
        self.assertEqual(
            query_of(forwarder.requests[2])["blocklisttype"], "uncommitted"
        )
        self.assertEqual([u.key for u in page.uploads], ["up"])
        self.assertTrue(page.truncated)
        upload_id = page.uploads[0].upload_id
        self.assertEqual(
            (page.next_key_marker, page.next_upload_id_marker), ("up", upload_id)
        )
        listed = UploadId.decode(upload_id, "up")
        self.assertTrue(listed.listed)
        self.assertIn(listed.nonce, ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"))
        error = self.error_of(
            store.complete_multipart_upload(
                "up", upload_id, [CompletedPart(1, '"x"')], HeaderList()
            )
        )
        self.assertEqual(error.code, "InvalidRequest")
        forwarder = scripted(
            respond(200, [], listing(["done", "up"], ["p/"])),
            respond(200, [], listing(["done"], [])),
            respond(200, [], block_list((first, 1), (second, 2))),
        )
        page = self.successResultOf(
            make_store(forwarder).list_multipart_uploads("", "/", "up", upload_id, 10)
        )
        self.assertEqual(len(page.uploads), 1)
        self.assertNotEqual(page.uploads[0].upload_id, upload_id)
        self.assertEqual(page.common_prefixes, ())
        self.assertFalse(page.truncated)
        self.assert_settled(forwarder)

    def test_abort(self) -> None:
        """
        Aborting asks Azure nothing; another key's id is ``NoSuchUpload``.
        """
        forwarder = scripted()
        store = make_store(forwarder)
        upload_id = self.upload(store)
        self.successResultOf(store.abort_multipart_upload("k", upload_id))
        error = self.error_of(store.abort_multipart_upload("j", upload_id))
        self.assertEqual(error.code, "NoSuchUpload")
        self.assertEqual(forwarder.requests, [])

    def test_part_copy_not_implemented(self) -> None:
        """
        UploadPartCopy from a source L{AzureStore.can_copy} refuses (in
        another account) is left to the gateway: ``NotImplemented``, and
        nothing is sent.
        """
        forwarder = scripted()
        store = make_store(forwarder)
        elsewhere = BucketConfig(
            name="o",
            backend_type="azure",
            backend_options={
                **store.bucket.backend_options,
                "endpoint": "http://other.test/acct",
            },
        )
        error = self.error_of(
            store.upload_part_copy(CopySource(elsewhere, "s"), "k", "u", 1)
        )
        self.assertEqual(error.code, "NotImplemented")
        self.assertEqual(forwarder.requests, [])

    def test_part_copy(self) -> None:
        """
        A part copied within the account is read from the source blob (its
        range, version and conditions) with the store's credentials and
        written as the part's block: Azure copies no block itself.
        """
        forwarder = scripted(
            respond(
                206,
                [
                    ("content-length", "2"),
                    ("content-range", "bytes 1-2/3"),
                    ("etag", '"0x1"'),
                ],
                b"bc",
            ),
            respond(201),
            read_bodies=True,
        )
        store = make_store(forwarder)
        upload_id = self.upload(store)
        upload = UploadId.decode(upload_id, "k")
        other_container = BucketConfig(
            name="o",
            backend_type="azure",
            backend_options={**store.bucket.backend_options, "container_name": "c2"},
        )
        source = CopySource(
            other_container,
            "src key",
            version_id="v1",
            conditions=HeaderList([("x-amz-copy-source-if-match", '"0x1"')]),
            range="bytes=1-2",
        )
        result = self.successResultOf(store.upload_part_copy(source, "k", upload_id, 2))
        self.assertEqual(result.etag, part_etag(upload.block_id(2), 2))
        read, write = forwarder.requests
        self.assertEqual(
            (read.method, read.url),
            ("GET", f"{ENDPOINT}/c2/src%20key?versionid=v1"),
        )
        self.assertEqual(read.headers.get("x-ms-range"), "bytes=1-2")
        self.assertEqual(read.headers.get("if-match"), '"0x1"')
        self.assertIsNotNone(read.headers.get("authorization"))
        self.assertEqual(
            (write.method, query_of(write)),
            ("PUT", {"comp": "block", "blockid": upload.block_id(2)}),
        )
        self.assertEqual(forwarder.uploads, [b"bc"])
        self.assert_settled(forwarder)

    def test_part_copy_fails(self) -> None:
        """
        A part copy whose source is missing writes nothing; one for an
        upload that is not the key's is ``NoSuchUpload`` (the source was
        read, and released).
        """
        forwarder = scripted(azure_error(404, "BlobNotFound"))
        store = make_store(forwarder)
        upload_id = self.upload(store)
        error = self.error_of(
            store.upload_part_copy(CopySource(store.bucket, "s"), "k", upload_id, 1)
        )
        self.assertEqual(error.code, "NoSuchKey")
        self.assertEqual(len(forwarder.requests), 1)
        forwarder = scripted(respond(200, [("content-length", "1")], b"x"))
        store = make_store(forwarder)
        error = self.error_of(
            store.upload_part_copy(CopySource(store.bucket, "s"), "j", upload_id, 1)
        )
        self.assertEqual(error.code, "NoSuchUpload")
        self.assert_settled(forwarder)

    def test_can_copy(self) -> None:
        """
        L{AzureStore.can_copy} accepts any container of the same account
        reached with the same credentials, ranged or not, and refuses
        others, without asking Azure.
        """
        forwarder = scripted()
        store = make_store(forwarder)
        options = store.bucket.backend_options
        for accepted in (
            {},
            {"container_name": "other"},
            {"endpoint": "http://AZURE.test:10000/acct/"},
        ):
            bucket = BucketConfig(
                name="o", backend_type="azure", backend_options={**options, **accepted}
            )
            for copy_range in (None, "bytes=0-1"):
                source = CopySource(bucket, "s", range=copy_range)
                self.assertTrue(store.can_copy(source), accepted)
        for refused, backend_type in (
            ({"endpoint": "http://other.test/acct"}, "azure"),
            ({"access_key": "b3RoZXI="}, "azure"),
            ({"container_name": ""}, "azure"),
            ({}, "s3"),
        ):
            bucket = BucketConfig(
                name="o",
                backend_type=backend_type,
                backend_options={**options, **refused},
            )
            self.assertFalse(store.can_copy(CopySource(bucket, "s")), refused)
        self.assertEqual(forwarder.requests, [])


class CopyTests(StoreTestCase):
    """
    Tests for L{AzureStore.copy_object}.
    """

    def test_same_account(self) -> None:
        """
        A copy names the source blob's URL and maps source conditions;
        a pending copy is polled until it succeeds.
        """
        forwarder = scripted(
            respond(202, [("x-ms-copy-status", "pending"), ("etag", '"0x1"')]),
            respond(200, [("x-ms-copy-status", "success"), ("etag", '"0x2"')]),
        )
        store = make_store(forwarder)
        source = CopySource(
            store.bucket,
            "src key",
            conditions=HeaderList([("x-amz-copy-source-if-match", '"0x0"')]),
        )
        d = store.copy_object(source, "dst", HeaderList())
        self.assertNoResult(d)
        clock = store.clock
        assert isinstance(clock, Clock)
        clock.advance(1)
        result = self.successResultOf(d)
        self.assertEqual(result.etag, '"0x2"')
        first = forwarder.requests[0]
        self.assertEqual(
            first.headers.get("x-ms-copy-source"),
            f"{ENDPOINT}/real-container/src%20key",
        )
        self.assertEqual(first.headers.get("x-ms-source-if-match"), '"0x0"')
        self.assertEqual(forwarder.requests[1].method, "HEAD")
        self.assert_settled(forwarder)

    def test_elsewhere(self) -> None:
        """
        A source in another account, or with other credentials, is
        ``NotImplemented`` (L{AzureStore.can_copy} refuses it).
        """
        store = make_store(scripted())
        for options in (
            {"endpoint": "http://other.test/acct"},
            {"access_key": "b3RoZXI="},
        ):
            other = BucketConfig(
                name="o",
                backend_type="azure",
                backend_options={**store.bucket.backend_options, **options},
            )
            error = self.error_of(
                store.copy_object(CopySource(other, "s"), "d", HeaderList())
            )
            self.assertEqual(error.code, "NotImplemented")


class DeleteAndContainerTests(StoreTestCase):
    """
    Deletes and container operations.
    """

    def test_delete(self) -> None:
        """
        Deleting includes snapshots; a missing blob is deleted already; a
        missing container is ``NoSuchBucket``.
        """
        forwarder = scripted(
            respond(202),
            azure_error(404, "BlobNotFound"),
            azure_error(404, "ContainerNotFound"),
        )
        store = make_store(forwarder)
        self.assertEqual(
            self.successResultOf(store.delete_object("k", None)).status, 204
        )
        self.assertEqual(
            forwarder.requests[0].headers.get("x-ms-delete-snapshots"), "include"
        )
        self.assertEqual(
            self.successResultOf(store.delete_object("k", None)).status, 204
        )
        self.assertEqual(
            self.error_of(store.delete_object("k", None)).code, "NoSuchBucket"
        )
        self.assert_settled(forwarder)

    def test_delete_objects(self) -> None:
        """
        Each key is deleted on its own, failures reported per key.
        """
        forwarder = scripted(respond(202), azure_error(403, "AuthorizationFailure"))
        outcomes = self.successResultOf(
            make_store(forwarder).delete_objects([("a", None), ("b", None)])
        )
        self.assertEqual(
            [(o.key, o.error and o.error[0]) for o in outcomes],
            [("a", None), ("b", "AccessDenied")],
        )

    def test_create_bucket(self) -> None:
        """
        Create Container; an existing one is ``BucketAlreadyOwnedByYou``.
        """
        forwarder = scripted(respond(201), azure_error(409, "ContainerAlreadyExists"))
        store = make_store(forwarder)
        self.successResultOf(store.create_bucket())
        self.assertEqual(query_of(forwarder.requests[0]), {"restype": "container"})
        self.assertEqual(
            self.error_of(store.create_bucket()).code, "BucketAlreadyOwnedByYou"
        )

    def test_delete_bucket(self) -> None:
        """
        A container holding blobs is not deleted; an empty one is.
        """
        forwarder = scripted(
            respond(200, [], listing(["x"])), respond(200, [], listing()), respond(202)
        )
        store = make_store(forwarder)
        self.assertEqual(self.error_of(store.delete_bucket()).code, "BucketNotEmpty")
        self.successResultOf(store.delete_bucket())
        self.assertEqual(forwarder.requests[-1].method, "DELETE")
        self.assert_settled(forwarder)

    def test_unused_track(self) -> None:
        """
        L{RecordingBody} records releases (the fakes work).
        """
        body = RecordingBody(b"x")
        body.discard()
        self.assertEqual(body.uses, ["discard"])
