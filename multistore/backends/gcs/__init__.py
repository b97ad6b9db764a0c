"""
Stores on Google Cloud Storage.
"""

from __future__ import annotations

from multistore.backends.gcs.store import GcsStore

__all__ = ["GcsStore"]
