"""
Stores on Google Cloud Storage.
"""

from __future__ import annotations

from multistore.stores.gcs.store import GcsStore

__all__ = ["GcsStore"]
