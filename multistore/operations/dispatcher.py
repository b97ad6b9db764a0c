# -*- test-case-name: tests.unit.test_gateway -*-
"""
What every S3 operation works with: the stores, the registry and the
gateway's limits (L{Dispatcher}), and the small readings of a request that
many operations share.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

from attrs import field, frozen

from multistore.interfaces import IBucketRegistry, IObjectStore, IStoreFactory
from multistore.model import DispatchContext, Response
from multistore.operations.presence import BucketPresence
from multistore.s3.errors import S3Error

#: The header of every answer that is an XML document.
XML_HEADER: Final = ("content-type", "application/xml")

#: An operation's implementation: given the dispatcher's collaborators and
#: an authorized request, the response.
Handler = Callable[["Dispatcher", DispatchContext], Awaitable[Response]]


@frozen
class Dispatcher:
    """
    Carries out operations against the buckets' stores.

    :ivar stores: makes the store for a bucket.
    :ivar buckets: the bucket registry (for ListBuckets and the owner).
    :ivar region: the region GetBucketLocation reports.
    :ivar token_secret: see L{multistore.s3.tokens}.
    :ivar max_object_size: the largest object or part accepted.
    :ivar max_xml_body_size: the largest XML request body accepted.
    :ivar presence: which shared-prefix buckets exist.
    """

    stores: IStoreFactory
    buckets: IBucketRegistry
    region: str = "us-east-1"
    token_secret: bytes = b""
    max_object_size: int = 5 * 1024**4
    max_xml_body_size: int = 2 * 1024 * 1024
    presence: BucketPresence = field(factory=BucketPresence)

    def store(self, context: DispatchContext) -> tuple[IObjectStore, str]:
        """
        :return: the store of the request's bucket, and its backend prefix.
        """
        assert context.bucket is not None
        config = context.bucket.config
        return self.stores.store_for(config), config.backend_prefix

    @property
    def owner(self) -> tuple[str, str]:
        """
        The owner shown in listings.
        """
        return (self.buckets.owner_id, self.buckets.owner_display_name)


def operation_key(context: DispatchContext) -> str:
    key = context.operation.key
    assert key is not None
    return key


def upload_id_of(params: Mapping[str, str]) -> str:
    upload_id = params.get("uploadId", "")
    if not upload_id:
        raise S3Error(
            "InvalidArgument",
            "uploadId must not be empty.",
            extra=(("ArgumentName", "uploadId"),),
        )
    return upload_id


async def allowed_keys(
    dispatcher: Dispatcher, context: DispatchContext, action: str, keys: Sequence[str]
) -> set[str]:
    """
    Ask the registry, once for all of ``keys``, which of them the caller may
    perform ``action`` on (for operations and listings that name many keys).

    :param keys: virtual keys or common prefixes.
    :return: those allowed.
    :raise ValueError: if the registry gave a verdict count other than the
        key count (a registry's bug: the request fails as ``InternalError``).
    """
    if not keys:
        return set()
    bucket = context.bucket
    assert bucket is not None
    verdicts = await dispatcher.buckets.authorize_keys(
        bucket, context.identity, action, keys
    )
    return {key for key, ok in zip(keys, verdicts, strict=True) if ok}
