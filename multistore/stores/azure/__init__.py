"""
Azure Blob Storage stores: L{AzureStore}, its SharedKey signer
(L{multistore.stores.azure.auth}) and its XML
(L{multistore.stores.azure.xml}).
"""

from __future__ import annotations

from multistore.stores.azure.store import AzureStore

__all__ = ["AzureStore"]
