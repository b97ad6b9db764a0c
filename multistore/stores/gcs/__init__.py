"""
Stores on Google Cloud Storage.
"""

from __future__ import annotations

from multistore.stores.gcs.store import GcsStore, xml_api_bucket

__all__ = ["GcsStore", "xml_api_bucket"]
