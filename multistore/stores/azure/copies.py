# -*- test-case-name: tests.unit.test_azure_store -*-
"""
Copies within an Azure Blob Storage account: the L{Copies} mixin of
L{multistore.stores.azure.store.AzureStore} (Copy Blob), and which
sources it can copy from.
"""

from __future__ import annotations

from typing import Final

from twisted.internet.task import deferLater

from multistore.auth.canonical import uri_encode
from multistore.config import BucketConfig
from multistore.headers import NO_HEADERS, HeaderList
from multistore.model import CopyResult, CopySource
from multistore.s3.dates import parse_http_date
from multistore.s3.errors import S3Error
from multistore.stores.azure.auth import query_string, with_sas
from multistore.stores.azure.common import AzureStoreBase, _quoted, object_properties
from multistore.stores.common import (
    cannot_copy,
    deferred,
    on_same_service,
    service_root,
)
from multistore.stores.object_headers import conditions

#: How long, and how often, a pending server-side copy is polled.
COPY_POLL_INTERVAL: Final = 0.2


COPY_POLLS: Final = 150


def _service(bucket: BucketConfig) -> tuple[str, str, str] | None:
    """
    :return: what identifies where a bucket's blobs are and who the gateway
        is there: ``(endpoint, account, credential)``; ``None`` for a bucket
        not on Azure.
    """
    if bucket.backend_type != "azure":
        return None
    account = bucket.option("account_name", "") or ""
    where = service_root(
        bucket.option("endpoint") or f"https://{account}.blob.core.windows.net"
    )
    credential = (
        ""
        if bucket.flag("skip_signature")
        else bucket.option("access_key")
        or bucket.option("sas_token")
        or bucket.option("bearer_token")
        or ""
    )
    return where, account, credential


class Copies(AzureStoreBase):
    """
    The store's copies.
    """

    __slots__ = ()

    def can_copy(self, source: CopySource) -> bool:
        """
        Copies are made from a container in the same account, reached with
        the same credentials: objects with Copy Blob, parts read from the
        source and written as blocks (see L{upload_part_copy}).
        """
        return on_same_service(_service, self.bucket, source.bucket, "container_name")

    def _copy_source(self, source: CopySource) -> str:
        """
        :return: the ``x-ms-copy-source`` URL of ``source``.
        :raise S3Error: ``NotImplemented`` for a source L{can_copy} refuses.
        """
        if not self.can_copy(source):
            raise cannot_copy()
        container = source.bucket.option("container_name") or ""
        url = (
            f"{self._endpoint}/{uri_encode(container, keep_slash=False)}/"
            + uri_encode(source.key, keep_slash=True)
        )
        if source.version_id is not None:
            url += "?" + query_string([("versionid", source.version_id)])
        sas_token = self.bucket.option("sas_token")
        if sas_token and not self.bucket.option("access_key"):
            # Azure authorizes a SAS request's source by its own URL.
            url = with_sas(url, sas_token)
        return url

    @deferred
    async def copy_object(
        self, source: CopySource, key: str, headers: HeaderList
    ) -> CopyResult:
        """
        Copy Blob within the account, waiting for it to finish. With
        ``x-amz-metadata-directive: REPLACE`` the new content properties and
        metadata are set after the copy (two more requests, conditional on
        the copy's ETag); otherwise Azure copies them from the source.
        """
        copy_headers = [("x-ms-copy-source", self._copy_source(source))]
        for name, value in source.conditions:
            if name.startswith("x-amz-copy-source-if-"):
                copy_headers.append(
                    ("x-ms-source-if-" + name[len("x-amz-copy-source-if-") :], value)
                )
        replace = (headers.get("x-amz-metadata-directive") or "").upper() == "REPLACE"
        properties = object_properties(headers) if replace else NO_HEADERS
        metadata = HeaderList(
            (n, v) for n, v in properties if n.startswith("x-ms-meta-")
        )
        request_headers = (
            HeaderList(copy_headers).plus(metadata).plus(conditions(headers))
        )
        response = await self._send("PUT", key, (), request_headers)
        if response.status not in (200, 202):
            raise await self._error(response, statuses={404: "NoSuchKey"})
        response.body.discard()
        status = response.headers.get("x-ms-copy-status") or "success"
        etag = response.headers.get("etag") or ""
        modified = response.headers.get("last-modified")
        polls = 0
        while status == "pending" and polls < COPY_POLLS:
            polls += 1
            await deferLater(self.clock, COPY_POLL_INTERVAL, lambda: None)
            properties_response = await self._properties(key)
            if properties_response is None:
                raise S3Error("ServiceUnavailable", "The copy did not complete.")
            status = properties_response.headers.get("x-ms-copy-status") or "success"
            etag = properties_response.headers.get("etag") or etag
            modified = properties_response.headers.get("last-modified") or modified
        if status != "success":
            self.log.warn(
                "copy to {key} in bucket {bucket} ended {status}",
                key=key,
                bucket=self.bucket.name,
                status=status,
            )
            raise S3Error("ServiceUnavailable", "The copy did not complete.")
        if replace:
            etag, modified = await self._replace_properties(
                key, properties, bool(metadata), etag, modified
            )
        when = parse_http_date(modified) or self._now()
        return CopyResult(_quoted(etag), when)

    async def _replace_properties(
        self,
        key: str,
        properties: HeaderList,
        had_metadata: bool,
        etag: str,
        modified: str | None,
    ) -> tuple[str, str | None]:
        """
        After a copy that replaces the object's headers: set its content
        properties (Set Blob Properties clears those not given), and clear
        the metadata Azure copied if the copy gave none.

        :return: the blob's new ETag and time.
        """
        content = HeaderList(
            (n, v) for n, v in properties if not n.startswith("x-ms-meta-")
        )
        steps: list[tuple[str, HeaderList]] = [("properties", content)]
        if not had_metadata:
            steps.append(("metadata", NO_HEADERS))
        for comp, headers in steps:
            response = await self._send(
                "PUT", key, [("comp", comp)], headers.plus([("if-match", etag)])
            )
            if response.status != 200:
                raise await self._error(response)
            response.body.discard()
            etag = response.headers.get("etag") or etag
            modified = response.headers.get("last-modified") or modified
        return etag, modified
