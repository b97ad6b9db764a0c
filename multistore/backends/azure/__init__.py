"""
Azure Blob Storage stores: L{AzureStore}, its SharedKey signer
(L{multistore.backends.azure.auth}) and its XML
(L{multistore.backends.azure.xml}).
"""

from __future__ import annotations

from multistore.backends.azure.store import AzureStore

__all__ = ["AzureStore"]
