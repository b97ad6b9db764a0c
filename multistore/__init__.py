"""
multistore: an S3-compatible gateway daemon on Twisted.

Clients speak S3 to multistore; it maps each virtual bucket onto a real store,
verifies and authorizes the caller, and streams the bytes through.
"""

__version__ = "0.1.0"
