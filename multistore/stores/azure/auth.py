# -*- test-case-name: tests.unit.test_azure_auth -*-
"""
Authorizing requests to Azure Blob Storage: SharedKey signatures, SAS
tokens, and the metadata-name codec that lets S3 metadata live on blobs.

SharedKey (the ``Authorization: SharedKey ACCOUNT:SIGNATURE`` header) signs
an HMAC-SHA256, keyed with the base64-decoded account key, of a string made
of the method, eleven standard headers (``Content-Length`` empty when it is
zero), the ``x-ms-*`` headers in the service's collation order, and the
account-qualified path with its query parameters (names lower-cased and
sorted, values decoded).

The service orders ``x-ms-*`` headers the way a culture-aware comparison
does, not byte by byte: hyphens are ignored at first, ``_`` comes before
digits and digits before letters (L{header_sort_key}).

Metadata names
==============

S3 metadata names (``x-amz-meta-NAME``) are lower-case and may hold almost
any character; Azure metadata names must be C# identifiers (ASCII letters,
digits and ``_``, not starting with a digit) and are case-insensitive.
multistore stores a name:

- unchanged, if it is already such an identifier made of lower-case
  letters, digits and ``_`` and does not start with ``mx_``;
- otherwise as ``mx_`` followed by the lower-case, unpadded base32 of its
  UTF-8 bytes (``content-sha`` is stored as ``mx_mnxw45dfnz2c243ime``).

Reading reverses this: a name that starts with ``mx_`` and whose rest is
valid base32 of UTF-8 text is decoded, any other name is lower-cased and
returned as it is (metadata written by other Azure clients shows as is).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Final
from urllib.parse import parse_qsl, quote, urlsplit

from multistore.headers import HeaderList
from multistore.s3.dates import format_http_date

#: The Blob service version multistore speaks (Put Blob takes up to
#: 5000 MiB since 2019-12-12; Azurite 3.35 accepts it).
API_VERSION: Final = "2021-12-02"

#: The standard headers that enter the string to sign, in order.
_SIGNED_STANDARD: Final = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)

_WHITESPACE: Final = re.compile(r"\s+")


def _weight(char: str) -> int:
    """
    :return: the first-level weight of an ASCII character in the service's
        header ordering: ``0`` for ignored characters (``-``), then
        punctuation, digits, letters (case-insensitive).
    """
    if char == "-":
        return 0
    if char.isdigit():
        return 0x100 + ord(char)
    if char.isalpha():
        return 0x200 + ord(char.lower())
    return 0x10 + ord(char)


def header_sort_key(name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """
    The position of an ``x-ms-*`` header name in the canonicalized headers.

    :param name: a lower-case header name.
    :return: a key ordering names as the service does: by their characters'
        weights with hyphens ignored, then, for names equal but for their
        hyphens, by where their hyphens are (a hyphen further left sorts
        later).
    """
    primary = tuple(w for w in map(_weight, name) if w)
    hyphens = tuple(-i for i, char in enumerate(name) if char == "-")
    return primary, hyphens


def canonicalized_headers(headers: HeaderList) -> str:
    """
    :return: the ``x-ms-*`` headers as they enter the string to sign: one
        ``name:value`` line each, names lower-case and in service order,
        runs of whitespace in values made one space, values trimmed.
    """
    seen: dict[str, list[str]] = {}
    for name, value in headers:
        if name.startswith("x-ms-"):
            seen.setdefault(name, []).append(_WHITESPACE.sub(" ", value.strip()))
    return "".join(
        f"{name}:{','.join(seen[name])}\n" for name in sorted(seen, key=header_sort_key)
    )


def canonicalized_resource(account_name: str, url: str) -> str:
    """
    :param account_name: the storage account.
    :param url: the request's URL, as on the wire.
    :return: ``/ACCOUNT`` and the path as on the wire (an emulator's
        path-style URL keeps its own account segment), followed by one ``\\nname:value`` line per query parameter, names lower-case
        and sorted, values decoded and joined with ``,`` when repeated.
    """
    parts = urlsplit(url)
    resource = f"/{account_name}{parts.path or '/'}"
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        params.setdefault(name.lower(), []).append(value)
    for name in sorted(params):
        resource += f"\n{name}:{','.join(params[name])}"
    return resource


def string_to_sign(
    method: str,
    url: str,
    headers: HeaderList,
    content_length: int | None,
    account_name: str,
) -> str:
    """
    The string a SharedKey signature signs.

    :param method: the request method.
    :param url: the request's URL, as on the wire.
    :param headers: the request's headers (``x-ms-date`` among them).
    :param content_length: the body's length, or ``None`` for no body
        (the transport sets ``Content-Length``, so it is not in
        ``headers``).
    :param account_name: the storage account.
    """
    lines = [method.upper()]
    for name in _SIGNED_STANDARD:
        if name == "content-length":
            value = str(content_length) if content_length else ""
        else:
            value = headers.get(name) or ""
        lines.append(value)
    return (
        "\n".join(lines)
        + "\n"
        + canonicalized_headers(headers)
        + canonicalized_resource(account_name, url)
    )


def shared_key_signature(account_key: str, text: str) -> str:
    """
    :param account_key: the base64 account key.
    :param text: the string to sign.
    :return: the base64 HMAC-SHA256 of ``text`` under the decoded key.
    :raise ValueError: if the key is not base64.
    """
    try:
        key = base64.b64decode(account_key, validate=True)
    except binascii.Error as e:
        raise ValueError("the account key is not base64") from e
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_shared_key(
    method: str,
    url: str,
    headers: HeaderList,
    content_length: int | None,
    account_name: str,
    account_key: str,
    now: datetime,
) -> HeaderList:
    """
    Sign a request with SharedKey.

    :param now: the time of the request, sent as ``x-ms-date``.
    :return: ``headers`` with ``x-ms-date`` and ``Authorization`` set.
    :raise ValueError: if the key is not base64.
    """
    headers = headers.with_("x-ms-date", format_http_date(now))
    signature = shared_key_signature(
        account_key,
        string_to_sign(method, url, headers, content_length, account_name),
    )
    return headers.with_("authorization", f"SharedKey {account_name}:{signature}")


def with_sas(url: str, sas_token: str) -> str:
    """
    :param url: a request URL, with or without a query.
    :param sas_token: a SAS token, with or without its leading ``?``.
    :return: ``url`` with the token's parameters appended to its query.
    """
    token = sas_token.strip().lstrip("?")
    if not token:
        return url
    return url + ("&" if "?" in url else "?") + token


def query_string(query: Iterable[tuple[str, str]]) -> str:
    """
    :return: ``query`` encoded for a URL (every byte but ``A-Za-z0-9-._~``
        percent-encoded), without ``?``; empty if there is none.
    """
    return "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in query)


# --- metadata names ----------------------------------------------------------

_IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]*", re.ASCII)
_ENCODED: Final = "mx_"


def encode_metadata_name(name: str) -> str:
    """
    :param name: an S3 metadata name (after ``x-amz-meta-``), lower-case.
    :return: the Azure metadata name it is stored under (see the module
        docstring).
    """
    if _IDENTIFIER.fullmatch(name) and not name.startswith(_ENCODED):
        return name
    data = name.encode("utf-8", "surrogatepass")
    return _ENCODED + base64.b32encode(data).decode("ascii").rstrip("=").lower()


def decode_metadata_name(name: str) -> str:
    """
    :param name: an Azure metadata name (after ``x-ms-meta-``).
    :return: the S3 metadata name it stands for.
    """
    lowered = name.lower()
    if not lowered.startswith(_ENCODED):
        return lowered
    text = lowered[len(_ENCODED) :].upper()
    text += "=" * (-len(text) % 8)
    try:
        return base64.b32decode(text).decode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        return lowered
