# -*- test-case-name: tests.unit.test_s3_listing -*-
"""
Client listings (ListObjects and ListObjectsV2) over a bucket's backend prefix.

A virtual bucket's keys live in the store under its ``backend_prefix``. The
gateway turns the client's query into one L{ListRequest} in the store's key
space (L{store_request}), and the store's L{ListPage} back into a
L{ListResult} in the client's key space (L{list_result}), which
L{multistore.s3.xml.list_objects_document} renders.

The backend prefix never reaches the client: keys, common prefixes,
``Prefix``, markers and continuation tokens are all virtual, and anything a
store returns outside the prefix (or outside the client's own ``prefix``) is
dropped.

Continuation tokens are multistore's own: an opaque, base64url-encoded
position in the virtual key space (see L{encode_token}). A listing resumes
after that position, so paging never repeats or skips a key or common
prefix, whatever the page size.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final
from urllib.parse import quote_from_bytes

from attrs import evolve, frozen

from multistore.model import ListPage, ListRequest
from multistore.s3.errors import S3Error
from multistore.s3.keys import from_backend, to_backend

#: The greatest code point. A resume point of ``P + SENTINEL`` sorts after
#: every key that starts with ``P``, except keys that continue ``P`` with
#: U+10FFFF itself (see L{store_request}).
SENTINEL: Final = "\U0010ffff"

#: The most keys (and common prefixes) one page may hold.
MAX_KEYS: Final = 1000

# The shape version written into every continuation token.
_TOKEN_VERSION: Final = 1

# Tokens longer than this are refused before any decoding.
_MAX_TOKEN_CHARS: Final = 65536

_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*", re.ASCII)
_INTEGER: Final = re.compile(r"(-?)([0-9]+)", re.ASCII)

_BAD_CONTINUATION: Final = "The continuation token provided is incorrect"


@frozen
class ListParams:
    """
    A client's listing query, validated.

    :ivar version: 1 for ListObjects, 2 for ListObjectsV2.
    :ivar prefix: only keys starting with this.
    :ivar delimiter: roll keys up at this, or ``None``.
    :ivar max_keys: at most this many keys and common prefixes (0 to
        L{MAX_KEYS}).
    :ivar encoding_type: ``"url"`` or ``None``.
    :ivar start_after: V2 ``start-after``, or ``None``.
    :ivar continuation_token: V2 ``continuation-token`` as given, or
        ``None``.
    :ivar marker: V1 ``marker``, or ``None``.
    :ivar fetch_owner: V2 ``fetch-owner=true``.
    """

    version: int
    prefix: str = ""
    delimiter: str | None = None
    max_keys: int = MAX_KEYS
    encoding_type: str | None = None
    start_after: str | None = None
    continuation_token: str | None = None
    marker: str | None = None
    fetch_owner: bool = False


@frozen
class Position:
    """
    Where a listing resumes, as carried in a continuation token.

    :ivar key: a virtual key or common prefix; the listing resumes strictly
        after it.
    :ivar skip_prefix: whether ``key`` is a common prefix whose keys were all
        rolled up already, so every key starting with it is skipped too.
    :ivar store_token: the store's own resume token, for stores that cannot
        resume from a key.
    """

    key: str
    skip_prefix: bool = False
    store_token: str | None = None


@frozen
class ListEntry:
    """
    One object as a listing shows it.

    :ivar key: the virtual key, URL-encoded if the client asked for it.
    :ivar last_modified: when the object was last written.
    :ivar etag: the entity tag, quoted.
    :ivar size: the size in bytes.
    :ivar storage_class: the storage class.
    """

    key: str
    last_modified: datetime
    etag: str
    size: int
    storage_class: str = "STANDARD"


@frozen
class ListResult:
    """
    A listing ready to render, in the client's key space.

    Every string is final: values the client asked to have URL-encoded are
    encoded already.

    :ivar version: 1 for ListObjects, 2 for ListObjectsV2.
    :ivar name: the bucket name to show.
    :ivar prefix: the client's prefix.
    :ivar delimiter: the client's delimiter, or ``None``.
    :ivar max_keys: the (capped) max-keys.
    :ivar encoding_type: ``"url"`` or ``None``.
    :ivar truncated: whether more follows.
    :ivar contents: the objects.
    :ivar common_prefixes: the common prefixes.
    :ivar owner: ``(ID, DisplayName)`` to show in each object, or ``None``.
    :ivar start_after: V2: the client's ``start-after``.
    :ivar continuation_token: V2: the client's token.
    :ivar next_continuation_token: V2: the token for the next page.
    :ivar marker: V1: the client's marker (``None`` shows as empty).
    :ivar next_marker: V1: the marker for the next page.
    """

    version: int
    name: str
    prefix: str
    delimiter: str | None
    max_keys: int
    encoding_type: str | None
    truncated: bool
    contents: tuple[ListEntry, ...] = ()
    common_prefixes: tuple[str, ...] = ()
    owner: tuple[str, str] | None = None
    start_after: str | None = None
    continuation_token: str | None = None
    next_continuation_token: str | None = None
    marker: str | None = None
    next_marker: str | None = None

    @property
    def key_count(self) -> int:
        """
        The number of objects and common prefixes on this page.
        """
        return len(self.contents) + len(self.common_prefixes)


def utf8_bytes(value: str) -> bytes:
    """
    Encode text as UTF-8, never failing.

    Lone surrogates (which a local store may produce for file names that are
    not UTF-8) become the byte they stand for (U+DC80 to U+DCFF, as Python's
    ``surrogateescape``) or, failing that, their UTF-8-like encoding.

    :param value: any text.
    :return: its bytes.
    """
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        pass
    chunks = []
    for char in value:
        try:
            chunks.append(char.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:
            chunks.append(char.encode("utf-8", "surrogatepass"))
    return b"".join(chunks)


def url_encode(value: str) -> str:
    """
    Percent-encode a value as ``encoding-type=url`` asks: its UTF-8 bytes,
    with RFC 3986 unreserved characters (``A-Z a-z 0-9 - . _ ~``) and ``/``
    left as they are. A space is ``%20``, ``+`` is ``%2B``.

    :param value: a key, prefix, delimiter or marker.
    :return: the encoded value.
    """
    return quote_from_bytes(utf8_bytes(value), safe="/")


def _invalid_argument(message: str, name: str, value: str) -> S3Error:
    return S3Error(
        "InvalidArgument",
        message,
        extra=(("ArgumentName", name), ("ArgumentValue", value)),
    )


def _parse_max_keys(value: str | None) -> int:
    if value is None:
        return MAX_KEYS
    match = _INTEGER.fullmatch(value)
    if match is None:
        raise _invalid_argument(
            "Provided max-keys not an integer or within integer range",
            "max-keys",
            value,
        )
    sign, digits = match.groups()
    digits = digits.lstrip("0")
    if sign and digits:
        raise _invalid_argument(
            "Argument maxKeys must be an integer between 0 and 2147483647",
            "max-keys",
            value,
        )
    # More than four significant digits is above the cap whatever it is; this
    # also spares int() from arbitrarily long strings.
    if len(digits) > 4:
        return MAX_KEYS
    return min(int(digits or "0"), MAX_KEYS)


def parse_list_params(params: Mapping[str, str], version: int) -> ListParams:
    """
    Validate a listing's query parameters.

    :param params: the decoded query parameters.
    :param version: 1 for ListObjects, 2 for ListObjectsV2.
    :return: the parameters; parameters of the other version are ignored.
    :raise S3Error: ``InvalidArgument`` for a negative or non-integer
        ``max-keys``, an ``encoding-type`` other than ``url``, or a
        continuation token that is not one of ours.
    :raise ValueError: for a ``version`` other than 1 or 2.
    """
    if version not in (1, 2):
        raise ValueError(f"no listing version {version!r}")
    encoding_type = params.get("encoding-type")
    if encoding_type is not None and encoding_type != "url":
        raise _invalid_argument(
            "Invalid Encoding Method specified in Request",
            "encoding-type",
            encoding_type,
        )
    prefix = params.get("prefix", "")
    delimiter = params.get("delimiter") or None
    max_keys = _parse_max_keys(params.get("max-keys"))
    if version == 1:
        return ListParams(
            version=1,
            prefix=prefix,
            delimiter=delimiter,
            max_keys=max_keys,
            encoding_type=encoding_type,
            marker=params.get("marker") or None,
        )
    token = params.get("continuation-token")
    if token is not None:
        decode_token(token)
    return ListParams(
        version=2,
        prefix=prefix,
        delimiter=delimiter,
        max_keys=max_keys,
        encoding_type=encoding_type,
        start_after=params.get("start-after") or None,
        continuation_token=token,
        fetch_owner=params.get("fetch-owner", "").lower() == "true",
    )


def encode_token(position: str, skip_prefix: bool, store_token: str | None) -> str:
    """
    Make a continuation token.

    The token is compact JSON (``[1, position, skip_prefix, store_token]``)
    in base64url without padding. It is opaque to clients but not secret:
    it holds only virtual keys the client was shown.

    :param position: the virtual key or common prefix to resume after.
    :param skip_prefix: whether ``position`` is a common prefix to skip whole.
    :param store_token: the store's own resume token, if it needs one.
    :return: the token.
    """
    document = json.dumps(
        [_TOKEN_VERSION, position, skip_prefix, store_token],
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return base64.urlsafe_b64encode(document.encode("ascii")).rstrip(b"=").decode()


def decode_token(token: str) -> Position:
    """
    Read a continuation token made by L{encode_token}.

    :param token: the token as the client sent it.
    :return: the position it holds.
    :raise S3Error: ``InvalidArgument`` if it is not such a token.
    """
    error = S3Error(
        "InvalidArgument",
        _BAD_CONTINUATION,
        extra=(("ArgumentName", "continuation-token"),),
    )
    if (
        not token
        or len(token) > _MAX_TOKEN_CHARS
        or len(token) % 4 == 1
        or _BASE64URL.fullmatch(token) is None
    ):
        raise error
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        document = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, RecursionError):
        raise error from None
    if not (
        isinstance(document, list)
        and len(document) == 4
        and type(document[0]) is int
        and document[0] == _TOKEN_VERSION
        and isinstance(document[1], str)
        and isinstance(document[2], bool)
        and (document[3] is None or isinstance(document[3], str))
    ):
        raise error
    return Position(document[1], document[2], document[3])


def _cut_at_delimiter(key: str, prefix: str, delimiter: str | None) -> str | None:
    """
    :return: the common prefix ``key`` rolls up into under ``prefix`` and
        ``delimiter``, or ``None`` if it does not roll up.
    """
    if not delimiter or not key.startswith(prefix):
        return None
    index = key.find(delimiter, len(prefix))
    if index < 0:
        return None
    return key[: index + len(delimiter)]


def _resume_point(params: ListParams) -> tuple[str, str | None]:
    """
    :return: the virtual key to list strictly after (the empty string for
        the start), and the store's own token.
    """
    if params.version == 2:
        if params.continuation_token is not None:
            position = decode_token(params.continuation_token)
            key = position.key + SENTINEL if position.skip_prefix else position.key
            return (key, position.store_token)
        return (params.start_after or "", None)
    if not params.marker:
        return ("", None)
    rolled_up = _cut_at_delimiter(params.marker, params.prefix, params.delimiter)
    if rolled_up is not None:
        return (rolled_up + SENTINEL, None)
    return (params.marker, None)


def store_request(params: ListParams, backend_prefix: str) -> ListRequest:
    """
    The store request for one page of a client's listing.

    The prefix is the client's, under the backend prefix. The store lists
    keys strictly greater than ``start_after``, which is:

      - for a V2 continuation token, its position; if the position is a
        common prefix whose keys were all rolled up, the position followed
        by L{SENTINEL}, which sorts after every key starting with it;
      - else the V2 ``start-after``;
      - for a V1 ``marker``: the marker; but with a delimiter, a marker
        that contains the delimiter after the prefix lies inside a rolled-up
        common prefix (prefix plus text up to and including the first
        delimiter), and the listing resumes after all of that common prefix
        (sentinel rule).

    The one pathological case of the sentinel rule: a key that continues a
    skipped common prefix with U+10FFFF itself (``dir/`` then U+10FFFF) sorts
    after the resume point and is listed again, as a repeated common prefix.
    U+10FFFF is a noncharacter; no real key has it there.

    A resume point at or below the prefix is passed on as it is: the store
    applies both.

    With a backend prefix, the listing always starts after the backend
    prefix's own key (``prefix/``, the virtual empty key), even with no
    resume point. That key is not an object of the bucket (no client can
    name it) but most often the prefix's directory marker; were it listed,
    it would be a position no V1 marker can resume after.

    :param params: the client's listing.
    :param backend_prefix: the bucket's backend prefix (no trailing ``/``),
        or the empty string.
    :return: the request in the store's key space.
    :raise S3Error: ``InvalidArgument`` for a bad continuation token.
    """
    resume, store_token = _resume_point(params)
    return ListRequest(
        prefix=to_backend(backend_prefix, params.prefix),
        delimiter=params.delimiter,
        max_keys=params.max_keys,
        start_after=to_backend(backend_prefix, resume) or None,
        token=store_token,
    )


def _quoted(etag: str) -> str:
    if len(etag) >= 2 and etag.startswith('"') and etag.endswith('"'):
        return etag
    if etag.startswith('W/"') and etag.endswith('"') and len(etag) >= 4:
        return etag
    return f'"{etag}"'


def _is_directory_marker(
    size: int, key: str, prefix: str, common_prefixes: set[str]
) -> bool:
    """
    Whether an object is a directory marker not to show: a zero-byte object
    whose virtual key is empty (the marker of the backend prefix itself), or
    ends in ``/`` and is the client's prefix or one of the page's common
    prefixes.
    """
    if size != 0:
        return False
    if key == "":
        return True
    return key.endswith("/") and (key == prefix or key in common_prefixes)


def _visible(key: str | None, prefix: str) -> str | None:
    if key is None or not key.startswith(prefix):
        return None
    return key


def list_result(
    params: ListParams,
    page: ListPage,
    backend_prefix: str,
    bucket_display_name: str,
    owner: tuple[str, str] | None,
    allowed: Callable[[str], bool] | None = None,
) -> ListResult:
    """
    Map a store's page to the client's listing.

    Keys and common prefixes leave the backend prefix behind; any that lie
    outside it, or outside the client's prefix, are dropped (a correct store
    returns none). Zero-byte directory markers are dropped: the empty key
    (the backend prefix's own marker), and keys ending in ``/`` that equal
    the client's prefix or one of the page's common prefixes. Objects with
    content and zero-byte keys without a trailing ``/`` are always shown.

    When the page is truncated, the next page resumes after the greatest key
    or common prefix the store returned (dropped markers included); if the
    store returned nothing but a token, after the position this page started
    from.

    :param params: the client's listing.
    :param page: the store's answer to L{store_request}.
    :param backend_prefix: the bucket's backend prefix, or the empty string.
    :param bucket_display_name: the ``Name`` to show.
    :param owner: ``(ID, DisplayName)`` of the bucket owner; shown for V1,
        and for V2 with ``fetch-owner=true``.
    :param allowed: if given, only keys and common prefixes for which it is
        true are shown (the caller may list only part of what the prefix
        covers); the next page still resumes after everything the store
        returned.
    :return: the listing.
    :raise S3Error: ``InvalidArgument`` for a bad continuation token.
    """
    prefix = params.prefix
    common_prefixes: list[str] = []
    for backend_key in page.common_prefixes:
        virtual = _visible(from_backend(backend_prefix, backend_key), prefix)
        if virtual is not None:
            common_prefixes.append(virtual)
    rolled_up = set(common_prefixes)
    objects = []
    markers: list[str] = []
    for info in page.objects:
        virtual = _visible(from_backend(backend_prefix, info.key), prefix)
        if virtual is None:
            continue
        if _is_directory_marker(info.size, virtual, prefix, rolled_up):
            markers.append(virtual)
            continue
        objects.append((virtual, info))

    next_position: Position | None = None
    if page.truncated:
        candidates = [(key, False) for key, _ in objects]
        candidates += [(key, False) for key in markers]
        candidates += [(key, True) for key in common_prefixes]
        if candidates:
            # A common prefix sorts after an equal key, so it wins a tie.
            greatest, is_prefix = max(candidates)
            next_position = Position(greatest, is_prefix, page.next_token)
        else:
            next_position = _same_position(params, page.next_token)

    if allowed is not None:
        objects = [(key, info) for key, info in objects if allowed(key)]
        common_prefixes = [p for p in common_prefixes if allowed(p)]

    encode = url_encode if params.encoding_type == "url" else _unchanged
    contents = tuple(
        ListEntry(
            key=encode(key),
            last_modified=info.last_modified,
            etag=_quoted(info.etag),
            size=info.size,
            storage_class=info.storage_class or "STANDARD",
        )
        for key, info in objects
    )
    return _result(
        params,
        bucket_display_name,
        owner,
        truncated=page.truncated,
        contents=contents,
        common_prefixes=tuple(encode(p) for p in common_prefixes),
        next_position=next_position,
    )


def _unchanged(value: str) -> str:
    return value


def _same_position(params: ListParams, store_token: str | None) -> Position:
    """
    :return: the position a page started from, with a new store token.
    """
    if params.version == 2:
        if params.continuation_token is not None:
            position = decode_token(params.continuation_token)
            return Position(position.key, position.skip_prefix, store_token)
        return Position(params.start_after or "", False, store_token)
    return Position(params.marker or "", False, store_token)


def _result(
    params: ListParams,
    name: str,
    owner: tuple[str, str] | None,
    *,
    truncated: bool,
    contents: tuple[ListEntry, ...],
    common_prefixes: tuple[str, ...],
    next_position: Position | None,
) -> ListResult:
    encode = url_encode if params.encoding_type == "url" else _unchanged
    result = ListResult(
        version=params.version,
        name=name,
        prefix=encode(params.prefix),
        delimiter=None if params.delimiter is None else encode(params.delimiter),
        max_keys=params.max_keys,
        encoding_type=params.encoding_type,
        truncated=truncated,
        contents=contents,
        common_prefixes=common_prefixes,
        owner=owner if (params.version == 1 or params.fetch_owner) else None,
    )
    if params.version == 1:
        return evolve(
            result,
            marker=None if params.marker is None else encode(params.marker),
            next_marker=None if next_position is None else encode(next_position.key),
        )
    next_token = None
    if next_position is not None:
        next_token = encode_token(
            next_position.key, next_position.skip_prefix, next_position.store_token
        )
    return evolve(
        result,
        start_after=None if params.start_after is None else encode(params.start_after),
        continuation_token=params.continuation_token,
        next_continuation_token=next_token,
    )


def empty_result(
    params: ListParams, display_name: str, owner: tuple[str, str] | None
) -> ListResult:
    """
    The listing for ``max-keys=0``, answered without asking the store.

    :param params: the client's listing.
    :param display_name: the ``Name`` to show.
    :param owner: the bucket owner, as for L{list_result}.
    :return: an empty, complete listing echoing the client's parameters.
    """
    return _result(
        params,
        display_name,
        owner,
        truncated=False,
        contents=(),
        common_prefixes=(),
        next_position=None,
    )
