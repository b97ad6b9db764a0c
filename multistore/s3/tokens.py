# -*- test-case-name: tests.unit.test_s3_tokens -*-
"""
Sealing a store's own listing tokens inside multistore's continuation tokens.

Some stores resume a listing only from an opaque token of their own, and such
tokens often spell out the backend key they stopped at, backend prefix
included. Before a store token goes into a client's continuation token it is
encrypted (AES-256-GCM) under a key derived from the bucket's configuration
and the deployment's ``[server] token_secret``, so clients cannot read it,
and a token made for one bucket (or one configuration of it) does not open
for another. Every instance sharing the configuration derives the same key,
so tokens survive restarts and work across instances. Without a
``token_secret`` the key comes from the bucket's configuration alone, which
includes its backend credentials where it has any; set one for buckets
without.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from multistore.config import BucketConfig
from multistore.s3.errors import S3Error

_INFO = b"multistore listing token v1"


def _cipher(bucket: BucketConfig, secret: bytes) -> AESGCM:
    material = json.dumps(
        [
            bucket.name,
            bucket.backend_type,
            bucket.backend_prefix,
            sorted(bucket.backend_options.items()),
        ],
        separators=(",", ":"),
    )
    return _derive(material, secret)


@lru_cache(maxsize=256)
def _derive(material: str, secret: bytes) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=secret or None, info=_INFO
    ).derive(material.encode("utf-8"))
    return AESGCM(key)


def seal_store_token(bucket: BucketConfig, token: str, secret: bytes = b"") -> str:
    """
    :return: ``token`` encrypted for ``bucket``, as URL-safe base64.
    """
    nonce = os.urandom(12)
    sealed = _cipher(bucket, secret).encrypt(
        nonce, token.encode("utf-8"), bucket.name.encode("utf-8")
    )
    return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")


def open_store_token(bucket: BucketConfig, sealed: str, secret: bytes = b"") -> str:
    """
    :return: the store token sealed in ``sealed``.
    :raise S3Error: ``InvalidArgument`` if it was not sealed for this bucket.
    """
    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        plain = _cipher(bucket, secret).decrypt(
            raw[:12], raw[12:], bucket.name.encode("utf-8")
        )
        return plain.decode("utf-8")
    except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
        raise S3Error(
            "InvalidArgument",
            "The continuation token provided is incorrect",
            extra=(("ArgumentName", "continuation-token"),),
        ) from None
