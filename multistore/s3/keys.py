# -*- test-case-name: tests.unit.test_s3_keys -*-
"""
Object keys: which keys are accepted, and how a virtual key maps to a backend
key under a bucket's ``backend_prefix``.

The rule (also in ``docs/keys.md``): a key is any UTF-8 string of 1 to 1024
bytes, exactly as S3 allows, except that no ``/``-separated segment of it may
be ``.`` or ``..``. Such segments are the one thing that could escape a
bucket's mapping: stores and proxies that normalise paths would resolve
``prefix/../other`` outside ``prefix``. Everything else (spaces, ``%``, ``+``,
``*``, ``#``, ``~``, brackets, ``=``, unicode, empty segments, a trailing
``/``) is stored and returned byte for byte.
"""

from __future__ import annotations

import re
from typing import Final

from multistore.s3.errors import S3Error

#: The longest key S3 accepts, in UTF-8 bytes.
MAX_KEY_BYTES: Final = 1024


def check_key(key: str) -> None:
    """
    Refuse a key that S3 would refuse or that could escape its mapping.

    :raise S3Error: ``KeyTooLongError`` or ``InvalidArgument``.
    """
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError")
    check_segments(key)


def has_dot_segment(path: str) -> bool:
    """
    :return: whether some ``/``-separated segment of ``path`` is ``.`` or
        ``..``.
    """
    return any(segment in {".", ".."} for segment in path.split("/"))


def check_segments(key: str) -> None:
    """
    Refuse a key with ``.`` or ``..`` segments.

    :raise S3Error: ``InvalidArgument``.
    """
    if has_dot_segment(key):
        raise S3Error(
            "InvalidArgument",
            "Object keys may not contain '.' or '..' path segments.",
            extra=(("ArgumentName", "key"),),
        )


def to_backend(backend_prefix: str, key: str) -> str:
    """
    Map a virtual key (or listing prefix, or position) into the store's key
    space.

    :param backend_prefix: the bucket's prefix, without leading or trailing
        ``/``; empty for none.
    """
    if not backend_prefix:
        return key
    return f"{backend_prefix}/{key}"


def from_backend(backend_prefix: str, backend_key: str) -> str | None:
    """
    Map a backend key back to the virtual key space.

    :return: the virtual key, or ``None`` if ``backend_key`` lies outside the
        prefix (it must then not be shown).
    """
    if not backend_prefix:
        return backend_key
    head = backend_prefix + "/"
    if not backend_key.startswith(head):
        return None
    return backend_key[len(head) :]


_BUCKET_NAME: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", re.ASCII)
_IP_ADDRESS: Final = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+", re.ASCII)


def valid_bucket_name(name: str) -> bool:
    """
    :return: whether ``name`` follows S3's rules for new bucket names: 3 to
        63 lower-case letters, digits, dots and hyphens, beginning and ending
        with a letter or digit, no two dots together, not an IP address.
        (Configured buckets may be named otherwise; names a pattern matches
        must follow these rules, since they become store names and paths.)
    """
    return (
        _BUCKET_NAME.fullmatch(name) is not None
        and ".." not in name
        and ".-" not in name
        and "-." not in name
        and _IP_ADDRESS.fullmatch(name) is None
    )
