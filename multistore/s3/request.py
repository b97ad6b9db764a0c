# -*- test-case-name: tests.unit.test_s3_request -*-
"""
Turning an HTTP request into an S3 operation.

Addressing is path-style (``/bucket/key``) or, for hosts under one of the
configured domains, virtual-hosted (``bucket.domain/key``). The key is the
path percent-decoded once, as UTF-8, byte for byte: ``+`` stays a plus, ``%2F``
becomes ``/``, and nothing is normalised.

Query parameters that name an S3 sub-resource multistore does not implement
(``?acl``, ``?tagging``, ``?policy``, ...) are refused with 501
``NotImplemented``; they are never mistaken for object operations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import unquote_to_bytes

from multistore.model import IncomingRequest, Operation
from multistore.s3.errors import S3Error
from multistore.s3.keys import check_key

#: Bucket-level sub-resources that are recognised but not implemented.
BUCKET_SUBRESOURCES: Final = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "lifecycle",
        "logging",
        "metadataConfiguration",
        "metadataTable",
        "metrics",
        "notification",
        "object-lock",
        "ownershipControls",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "session",
        "tagging",
        "versioning",
        "versions",
        "website",
    }
)

#: Object-level sub-resources that are recognised but not implemented.
OBJECT_SUBRESOURCES: Final = frozenset(
    {
        "acl",
        "attributes",
        "legal-hold",
        "renameObject",
        "restore",
        "retention",
        "select",
        "tagging",
        "torrent",
    }
)


def parse_query(raw_query: bytes) -> list[tuple[str, str]]:
    """
    Decode a query string into ``(name, value)`` pairs, in order.

    ``+`` decodes to a space, as S3 does; a parameter without ``=`` has the
    empty value.

    :raise S3Error: ``InvalidURI`` if a name or value is not UTF-8.
    """
    pairs = []
    for piece in raw_query.split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        pairs.append(
            (_decode(name.replace(b"+", b" ")), _decode(value.replace(b"+", b" ")))
        )
    return pairs


def _decode(raw: bytes) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "The request URI is not valid UTF-8.") from None


def host_bucket(host: str, domains: Sequence[str]) -> str | None:
    """
    The bucket named by a virtual-hosted-style ``Host``, if any.

    :param host: the ``Host`` header, perhaps with a port.
    :param domains: the configured domains, lower-case, without dots at the
        ends.
    :return: the bucket, or ``None`` for path-style addressing.
    """
    if not domains or not host:
        return None
    name = host.lower()
    if name.startswith("["):
        return None  # an IPv6 literal is never virtual-hosted
    name = name.rsplit(":", 1)[0] if ":" in name else name
    name = name.rstrip(".")
    for domain in domains:
        suffix = "." + domain
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def split_path(
    raw_path: bytes, virtual_bucket: str | None
) -> tuple[str | None, str | None]:
    """
    The bucket and key a request path addresses.

    :return: ``(bucket, key)``; the bucket is ``None`` for the service root,
        the key is ``None`` for a bucket-level request.
    :raise S3Error: ``InvalidURI`` for a path that is not absolute or not
        UTF-8.
    """
    if not raw_path.startswith(b"/"):
        raise S3Error("InvalidURI", "The request path must start with '/'.")
    rest = raw_path[1:]
    if virtual_bucket is not None:
        return virtual_bucket, (_decode(rest) if rest else None)
    if not rest:
        return None, None
    bucket_raw, slash, key_raw = rest.partition(b"/")
    bucket = _decode(bucket_raw)
    if not slash or not key_raw:
        return bucket, None
    return bucket, _decode(key_raw)


def _first(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in pairs:
        params.setdefault(name, value)
    return params


def _not_implemented(what: str) -> S3Error:
    return S3Error("NotImplemented", f"{what} is not implemented by this gateway.")


def _bucket_operation(method: str, params: Mapping[str, str]) -> tuple[str, str | None]:
    for name in params:
        if name in BUCKET_SUBRESOURCES:
            raise _not_implemented(f"The bucket sub-resource '?{name}'")
    if method == "GET":
        if "location" in params:
            return "GetBucketLocation", None
        if "uploads" in params:
            # Whoever may start uploads may see them (those in scope).
            return "ListMultipartUploads", "create_multipart_upload"
        if params.get("list-type") == "2":
            return "ListObjectsV2", "list_bucket"
        return "ListObjects", "list_bucket"
    if method == "HEAD":
        return "HeadBucket", None
    if method == "PUT":
        return "CreateBucket", "create_bucket"
    if method == "DELETE":
        return "DeleteBucket", "delete_bucket"
    if method == "POST":
        if "delete" in params:
            return "DeleteObjects", "delete_object"
        raise _not_implemented("POST uploads through HTML forms")
    raise S3Error("MethodNotAllowed")


def _object_operation(
    method: str, params: Mapping[str, str], request: IncomingRequest
) -> tuple[str, str]:
    for name in params:
        # A bucket sub-resource on an object (``/b/k?policy``) is no more an
        # object operation than an object sub-resource is.
        if name in OBJECT_SUBRESOURCES or name in BUCKET_SUBRESOURCES:
            raise _not_implemented(f"The object sub-resource '?{name}'")
    versioned = "versionId" in params
    copy_source = "x-amz-copy-source" in request.headers
    if method == "GET":
        if "uploadId" in params:
            return "ListParts", "upload_part"
        return "GetObject", ("get_object_version" if versioned else "get_object")
    if method == "HEAD":
        return "HeadObject", ("get_object_version" if versioned else "head_object")
    if method == "PUT":
        if "uploadId" in params or "partNumber" in params:
            if "uploadId" not in params or "partNumber" not in params:
                raise S3Error(
                    "InvalidRequest", "UploadPart needs both uploadId and partNumber."
                )
            return ("UploadPartCopy" if copy_source else "UploadPart"), "upload_part"
        return ("CopyObject" if copy_source else "PutObject"), "put_object"
    if method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload", "create_multipart_upload"
        if "uploadId" in params:
            return "CompleteMultipartUpload", "complete_multipart_upload"
        raise S3Error("MethodNotAllowed")
    if method == "DELETE":
        if "uploadId" in params:
            return "AbortMultipartUpload", "abort_multipart_upload"
        return "DeleteObject", "delete_object"
    raise S3Error("MethodNotAllowed")


def parse_operation(request: IncomingRequest, domains: Sequence[str] = ()) -> Operation:
    """
    Work out which S3 operation a request asks for.

    :param domains: the domains under which virtual-hosted-style addressing
        applies.
    :raise S3Error: for requests that are malformed (``InvalidURI``), use an
        unsupported method (``MethodNotAllowed``) or a sub-resource that is
        not implemented (``NotImplemented``), or name an unacceptable key.
    """
    virtual = host_bucket(request.host, domains)
    bucket, key = split_path(request.raw_path, virtual)
    params = _first(parse_query(request.raw_query))
    method = request.method.upper()
    if bucket is None:
        if method != "GET":
            raise S3Error("MethodNotAllowed")
        return Operation(name="ListBuckets", action=None, params=params)
    if bucket == "":
        raise S3Error("InvalidBucketName", "The bucket name is empty.")
    if key is None:
        name, action = _bucket_operation(method, params)
    else:
        check_key(key)
        name, action = _object_operation(method, params, request)
    return Operation(
        name=name,
        action=action,
        bucket=bucket,
        key=key,
        params=params,
        virtual_host=virtual is not None,
    )


#: The highest part number S3 allows.
MAX_PART_NUMBER: Final = 10000


def parse_part_number(raw: str) -> int:
    """
    Read a ``partNumber`` query parameter.

    :raise S3Error: ``InvalidArgument`` unless it is a whole number from 1 to
        10000.
    """
    if not (
        raw.isascii()
        and raw.isdigit()
        and len(raw) <= 5
        and 1 <= int(raw) <= MAX_PART_NUMBER
    ):
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
            extra=(("ArgumentName", "partNumber"), ("ArgumentValue", raw[:16])),
        )
    return int(raw)
