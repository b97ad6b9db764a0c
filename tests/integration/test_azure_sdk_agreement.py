# mypy: disable-error-code="no-untyped-call"
"""
multistore's Azure SharedKey signer and header order, against the
C{azure-storage-blob} SDK's own, for random requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest
from azure.storage.blob._shared.authentication import (
    SharedKeyCredentialPolicy,
    _storage_header_sort,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from multistore.auth.canonical import uri_encode
from multistore.headers import HeaderList
from multistore.stores.azure.auth import (
    API_VERSION,
    header_sort_key,
    query_string,
    sign_shared_key,
)
from tests.unit.test_azure_auth import (
    ACCOUNT,
    ENDPOINT,
    KEY,
    NOW,
    identifiers,
    keys,
    ms_headers,
    query_names,
    standard,
    values,
)


def sdk_authorization(method: str, url: str, headers: Sequence[tuple[str, str]]) -> str:
    """
    The ``Authorization`` the Azure SDK computes for a request.
    """
    request = HttpRequest(method, url, headers=dict(headers))
    pipeline_request: Any = PipelineRequest(request, PipelineContext(None))
    SharedKeyCredentialPolicy(ACCOUNT, KEY).on_request(pipeline_request)
    return str(request.headers["Authorization"])


class SharedKeyAgreementTests(SynchronousTestCase):
    """
    L{sign_shared_key} signs as the SDK does.
    """

    @settings(max_examples=300, deadline=None)
    @given(
        method=st.sampled_from(["GET", "PUT", "HEAD", "DELETE"]),
        key=keys,
        query=st.lists(
            st.tuples(query_names, values), max_size=4, unique_by=lambda q: q[0]
        ),
        plain=st.lists(
            st.tuples(standard, values), max_size=4, unique_by=lambda h: h[0]
        ),
        ms=st.lists(
            st.tuples(ms_headers, values), max_size=4, unique_by=lambda h: h[0]
        ),
        meta=st.lists(
            st.tuples(identifiers, values), max_size=5, unique_by=lambda h: h[0]
        ),
        length=st.one_of(st.none(), st.integers(0, 10**12)),
    )
    def test_matches_sdk(
        self,
        method: str,
        key: str,
        query: list[tuple[str, str]],
        plain: list[tuple[str, str]],
        ms: list[tuple[str, str]],
        meta: list[tuple[str, str]],
        length: int | None,
    ) -> None:
        """
        For any request multistore may send, the signature is the one the
        Azure SDK computes.
        """
        url = f"{ENDPOINT}/container/{uri_encode(key, keep_slash=True)}"
        if query:
            url += "?" + query_string(query)
        headers = HeaderList(
            [
                ("x-ms-version", API_VERSION),
                *plain,
                *ms,
                *((f"x-ms-meta-{name}", value) for name, value in meta),
            ]
        )
        signed = sign_shared_key(method, url, headers, length, ACCOUNT, KEY, NOW)
        sdk_headers = list(signed.without("authorization"))
        if length is not None:
            sdk_headers.append(("content-length", str(length)))
        self.assertEqual(
            signed.get("authorization"), sdk_authorization(method, url, sdk_headers)
        )


class HeaderOrderTests(SynchronousTestCase):
    """
    L{header_sort_key} orders names as the SDK's comparison of the
    service's collation does.
    """

    @given(
        st.lists(
            st.from_regex(r"x-ms-[a-z0-9_-]{1,8}", fullmatch=True),
            min_size=2,
            max_size=6,
            unique=True,
        )
    )
    def test_matches_sdk_order(self, names: list[str]) -> None:
        """
        Any ``x-ms-*`` names sort as the SDK sorts them.
        """
        expected = [
            name for name, _ in _storage_header_sort([(name, "") for name in names])
        ]
        self.assertEqual(sorted(names, key=header_sort_key), expected)
