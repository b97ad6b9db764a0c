# -*- test-case-name: tests.unit.test_stores_streaming -*-
"""
Which object headers go where: the header names of objects, checksums and
conditions, and one L{AllowList} per purpose (what a write sends to a
backend, what a read passes back to clients, what a write's answer
carries, what a streamed copy keeps), with ``aws-chunked`` taken out of
``Content-Encoding``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from attrs import frozen

from multistore.headers import HeaderList

#: The content headers of an object: what every store keeps about its
#: representation.
CONTENT_HEADERS: Final = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-type",
    }
)


#: The HTTP headers of a read's answer that describe the object.
HTTP_OBJECT_HEADERS: Final = CONTENT_HEADERS | {
    "accept-ranges",
    "content-length",
    "content-range",
    "etag",
    "last-modified",
}


#: Request headers that describe the object being written.
OBJECT_REQUEST_HEADERS: Final = CONTENT_HEADERS | {
    "expires",
    "x-amz-storage-class",
    "x-amz-tagging",
    "x-amz-website-redirect-location",
}


#: Prefixes of the request headers that describe the object being written.
OBJECT_REQUEST_PREFIXES: Final = (
    "x-amz-meta-",
    "x-amz-server-side-encryption",
    "x-amz-object-lock-",
)


#: The checksum algorithms S3 knows.
CHECKSUM_ALGORITHMS: Final = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


#: The checksums of a body, one header per algorithm.
CHECKSUM_VALUES: Final = frozenset(
    f"x-amz-checksum-{algorithm}" for algorithm in CHECKSUM_ALGORITHMS
)


#: The conditions of a write.
CONDITIONS: Final = frozenset({"if-match", "if-none-match"})


@frozen
class AllowList:
    """
    The header names one purpose lets through.

    :ivar names: names let through.
    :ivar prefixes: prefixes of names let through.
    """

    names: frozenset[str]
    prefixes: tuple[str, ...] = ()

    def allows(self, name: str) -> bool:
        """
        :param name: a lower-case header name.
        :return: whether it goes through.
        """
        return name in self.names or name.startswith(self.prefixes)

    def kept(self, headers: Iterable[tuple[str, str]]) -> HeaderList:
        """
        :return: the fields of ``headers`` that go through, in order.
        """
        return HeaderList((name, value) for name, value in headers if self.allows(name))


#: What a write keeps of its request: the object's headers, its digests and
#: its conditions.
OBJECT_WRITE: Final = AllowList(
    OBJECT_REQUEST_HEADERS
    | CONDITIONS
    | {"content-md5", "x-amz-sdk-checksum-algorithm"},
    (*OBJECT_REQUEST_PREFIXES, "x-amz-checksum-"),
)


#: Object headers a backend's answer to a read passes on to clients; nothing
#: the backend says about itself (its request ids, its bucket, its
#: lifecycle rules).
OBJECT_RESPONSE: Final = AllowList(
    HTTP_OBJECT_HEADERS
    | {
        "expires",
        "x-amz-delete-marker",
        "x-amz-missing-meta",
        "x-amz-mp-parts-count",
        "x-amz-object-lock-legal-hold",
        "x-amz-object-lock-mode",
        "x-amz-object-lock-retain-until-date",
        "x-amz-replication-status",
        "x-amz-restore",
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-bucket-key-enabled",
        "x-amz-server-side-encryption-customer-algorithm",
        "x-amz-server-side-encryption-customer-key-md5",
        "x-amz-storage-class",
        "x-amz-tagging-count",
        "x-amz-version-id",
        "x-amz-website-redirect-location",
    },
    ("x-amz-meta-", "x-amz-checksum-"),
)


#: Headers of a backend's answer to a write (PUT, copy, part, completion,
#: delete) passed on to clients.
WRITE_RESPONSE: Final = AllowList(
    frozenset(
        {
            "etag",
            "x-amz-copy-source-version-id",
            "x-amz-delete-marker",
            "x-amz-server-side-encryption",
            "x-amz-server-side-encryption-bucket-key-enabled",
            "x-amz-server-side-encryption-customer-algorithm",
            "x-amz-server-side-encryption-customer-key-md5",
            "x-amz-version-id",
        }
    ),
    ("x-amz-checksum-",),
)


#: The headers of its source a streamed copy writes when it copies the
#: metadata (tags are the destination's business).
STREAMED_COPY: Final = AllowList(
    OBJECT_REQUEST_HEADERS - {"x-amz-tagging"}, ("x-amz-meta-",)
)


def without_aws_chunked(value: str) -> str:
    """
    :return: a ``Content-Encoding`` without the ``aws-chunked`` coding, which
        describes the client's framing, not the object (and without empty
        codings).
    """
    codings = [c.strip() for c in value.split(",")]
    return ", ".join(c for c in codings if c and c.lower() != "aws-chunked")


def allowed_headers(headers: HeaderList, allowed: AllowList) -> HeaderList:
    """
    Choose the request headers of a write that go on.

    :param headers: the write's headers.
    :param allowed: what goes on.
    :return: the allowed headers, in order; ``aws-chunked`` removed from
        ``content-encoding`` (and the header dropped if nothing is left).
    """
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        if not allowed.allows(name):
            continue
        if name == "content-encoding":
            value = without_aws_chunked(value)
            if not value:
                continue
        kept.append((name, value))
    return HeaderList(kept)


def content_header(headers: HeaderList, name: str) -> str | None:
    """
    :param name: one of L{CONTENT_HEADERS}.
    :return: the value of the content header ``name`` a write gives the
        object (``aws-chunked`` taken out of ``content-encoding``), or
        ``None`` if it gives none.
    """
    value = headers.get(name)
    if value is not None and name == "content-encoding":
        return without_aws_chunked(value) or None
    return value


def object_headers(headers: HeaderList) -> HeaderList:
    """
    :return: the headers of a backend object response that clients may see.
    """
    return OBJECT_RESPONSE.kept(headers)


def write_response_headers(headers: HeaderList) -> HeaderList:
    """
    :return: the headers of a backend's answer to a write that clients may
        see: the ETag, version ids, delete marker, checksums and encryption
        (not the length or type of the answer's own body).
    """
    return WRITE_RESPONSE.kept(headers)


def conditions(headers: HeaderList) -> HeaderList:
    """
    :return: the ``If-Match`` / ``If-None-Match`` of a write.
    """
    return HeaderList((name, value) for name, value in headers if name in CONDITIONS)
