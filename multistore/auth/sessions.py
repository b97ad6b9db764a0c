# -*- test-case-name: tests.unit.test_sts_tokens -*-
"""
Temporary credentials, and the sealed session tokens that carry them.

STS mints L{SessionCredentials} with L{mint} and hands the client the access
key id, the secret and a session token made by L{seal}. The token holds
everything needed to authorize a later request (the secret, the expiry, the
scopes, the role and the web identity) encrypted with AES-256-GCM, so a
request signed with the temporary credentials is checked against the token
alone: nothing is stored, and any instance holding the key (after any number
of restarts) accepts it.

A session token is the URL-safe base64, without padding, of::

    version       1 byte, 0x01
    key id        1 byte of length, then that many ASCII bytes
    nonce         12 random bytes
    ciphertext    AES-256-GCM of the credentials' compact JSON, 16-byte tag last

The associated data is the version and key id bytes followed by the access key
id in UTF-8, so a token opens only with the access key id it was minted with,
and its header cannot be altered. The key id is not secret; it names which of
the configured L{SessionKeys} sealed the token, so that keys can be rotated:
the first key seals, every key opens, and sessions sealed under an old key
live on while it stays configured.

L{unseal} answers every token that does not open with the same
``InvalidToken`` error, whatever the cause (malformed, tampered with, sealed
under a key not configured here, presented with another access key id);
which check failed is kept in L{InvalidSessionToken.reason}, for the log
only. A token that opens but whose session has ended is ``ExpiredToken``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import string
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from attrs import Attribute, field, frozen
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from multistore.config import AccessScope, SessionKey
from multistore.model import Identity
from multistore.s3.errors import S3Error

#: How every access key id minted here begins.
ACCESS_KEY_PREFIX: Final = "STSPRXY"

#: The length of a minted access key id (as AWS's: 20 characters).
ACCESS_KEY_LENGTH: Final = 20

#: The length of a minted secret access key (as AWS's: 40 characters).
SECRET_LENGTH: Final = 40

#: The length of a session token key, in bytes (AES-256).
KEY_LENGTH: Final = 32

#: The longest session token accepted (and sealed), in characters. Longer
#: tokens are refused before any decoding or decryption.
MAX_TOKEN_LENGTH: Final = 8192

#: The token format version this module seals and opens.
VERSION: Final = 1

_ACCESS_KEY_ALPHABET: Final = string.ascii_uppercase + string.digits
_NONCE_LENGTH: Final = 12
_TAG_LENGTH: Final = 16
_KEY_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
_TOKEN_TEXT: Final = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_BASE64_TEXT: Final = re.compile(r"[A-Za-z0-9+/]+={0,2}", re.ASCII)
_KEY_ID_CONTEXT: Final = b"multistore session token key id\x00"
_FIELDS: Final = frozenset({"k", "s", "i", "e", "r", "u", "p", "c"})


def _aware(instance: object, attribute: Attribute[datetime], value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{attribute.name} must be an aware datetime")


def _hidden(value: object) -> str:
    return "'***'"


@frozen
class SessionCredentials:
    """
    Temporary credentials minted by STS for one web identity.

    :ivar access_key_id: the key id the client signs with: L{ACCESS_KEY_PREFIX}
        and 13 upper-case letters and digits, 20 characters as AWS's.
    :ivar secret_access_key: the secret the client signs with, 40 characters
        of the standard base64 alphabet, as AWS's.
    :ivar expiration: when the session ends (aware, UTC, whole seconds).
    :ivar scopes: what the session may do, its role's scope templates
        already filled in.
    :ivar role_id: the role assumed.
    :ivar source_identity: the web identity's subject (the ID token's
        ``sub``).
    :ivar principal: a name for logs and metering.
    :ivar issued_at: when the session was minted (aware, UTC, whole seconds).
    """

    access_key_id: str
    secret_access_key: str = field(repr=_hidden)
    expiration: datetime = field(validator=_aware)
    scopes: tuple[AccessScope, ...]
    role_id: str
    source_identity: str
    principal: str
    issued_at: datetime = field(validator=_aware)

    def identity(self) -> Identity:
        """
        :return: the identity a request signed with these credentials has.
        """
        return Identity(
            kind="session",
            principal=self.principal,
            access_key_id=self.access_key_id,
            scopes=self.scopes,
            role=self.role_id,
        )


def mint(
    role_id: str,
    source_identity: str,
    scopes: Iterable[AccessScope],
    duration: int,
    now: datetime,
    *,
    principal: str | None = None,
) -> SessionCredentials:
    """
    Make new temporary credentials, with a fresh random key id and secret.

    :param role_id: the role assumed.
    :param source_identity: the web identity's subject.
    :param scopes: what the session may do (templates already filled in).
    :param duration: how long the session lasts, in seconds (already clamped
        to the role's limits by the caller).
    :param now: the current time, aware; the session starts at its whole
        second.
    :param principal: the name for logs; ``role_id/source_identity`` if not
        given.
    :raise ValueError: if ``now`` is naive or ``duration`` is not positive.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    if duration <= 0:
        raise ValueError(f"a session must last a positive time, not {duration}s")
    issued_at = now.astimezone(UTC).replace(microsecond=0)
    random_part = "".join(
        secrets.choice(_ACCESS_KEY_ALPHABET)
        for _ in range(ACCESS_KEY_LENGTH - len(ACCESS_KEY_PREFIX))
    )
    return SessionCredentials(
        access_key_id=ACCESS_KEY_PREFIX + random_part,
        # 30 random bytes are exactly 40 base64 characters, without padding.
        secret_access_key=base64.b64encode(secrets.token_bytes(30)).decode("ascii"),
        expiration=issued_at + timedelta(seconds=duration),
        scopes=tuple(scopes),
        role_id=role_id,
        source_identity=source_identity,
        principal=(
            principal if principal is not None else f"{role_id}/{source_identity}"
        ),
        issued_at=issued_at,
    )


def generate_key() -> str:
    """
    :return: a new session token key, as configured: the standard base64 of
        32 random bytes.
    """
    return base64.b64encode(secrets.token_bytes(KEY_LENGTH)).decode("ascii")


def key_id_of(key: bytes) -> str:
    """
    :return: the key id a key given without one gets: a short fingerprint of
        the key (it reveals nothing of it), the same on every instance.
    """
    digest = hashlib.sha256(_KEY_ID_CONTEXT + key).digest()
    return base64.urlsafe_b64encode(digest[:6]).decode("ascii")


def _parse_key(text: str, where: str) -> tuple[str, bytes]:
    text = text.strip()
    key_id: str | None = None
    if ":" in text:
        # The standard base64 alphabet has no ':', so what comes before one
        # is a key id, never key material.
        given, _, text = text.partition(":")
        key_id = given.strip()
        text = text.strip()
        if _KEY_ID.fullmatch(key_id) is None:
            raise ValueError(
                f"{where}: the key id {key_id[:70]!r} must be 1 to 64 letters, "
                "digits, '.', '_' or '-'"
            )
    if not text:
        raise ValueError(f"{where} is empty")
    if _BASE64_TEXT.fullmatch(text) is None:
        raise ValueError(
            f"{where} is not standard base64 (letters, digits, '+', '/' and "
            "'=' padding)"
        )
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where} is not valid base64") from None
    if len(key) != KEY_LENGTH:
        raise ValueError(
            f"{where} decodes to {len(key)} bytes; it must be the standard "
            f"base64 of exactly {KEY_LENGTH} bytes (make one with "
            "'multistore keygen session-token')"
        )
    return (key_id if key_id is not None else key_id_of(key), key)


def _key_tuple(keys: Iterable[tuple[str, bytes]]) -> tuple[tuple[str, bytes], ...]:
    return tuple((key_id, bytes(key)) for key_id, key in keys)


def _check_keys(
    instance: object,
    attribute: Attribute[tuple[tuple[str, bytes], ...]],
    keys: tuple[tuple[str, bytes], ...],
) -> None:
    if not keys:
        raise ValueError("no session token key is given")
    ids: set[str] = set()
    material: set[bytes] = set()
    for key_id, key in keys:
        if _KEY_ID.fullmatch(key_id) is None:
            raise ValueError(
                f"the session token key id {key_id[:70]!r} must be 1 to 64 "
                "letters, digits, '.', '_' or '-'"
            )
        if len(key) != KEY_LENGTH:
            raise ValueError(
                f"the session token key {key_id!r} is {len(key)} bytes long; "
                f"it must be {KEY_LENGTH}"
            )
        if key_id in ids:
            raise ValueError(f"the session token key id {key_id!r} is given twice")
        if key in material:
            raise ValueError(
                f"the session token key {key_id!r} is given twice (under "
                "another key id)"
            )
        ids.add(key_id)
        material.add(key)


def _keys_repr(keys: tuple[tuple[str, bytes], ...]) -> str:
    return repr(tuple(key_id for key_id, _ in keys))


@frozen
class SessionKeys:
    """
    The keys session tokens are sealed and opened with: an ordered set of
    ``(key_id, key)`` pairs, each key 32 bytes. The first seals; every one
    opens. To rotate, put a new key first and keep the old one until the
    sessions it sealed have expired (at most the longest role's
    ``max_session_duration_secs``).

    :ivar keys: the ``(key_id, key)`` pairs, sealing key first. Key ids are
        1 to 64 letters, digits, ``.``, ``_`` or ``-``, and appear in tokens
        in clear.
    :raise ValueError: if there is no key, a key is not 32 bytes, or a key
        id is invalid or given twice (or a key is).
    """

    _keys: tuple[tuple[str, bytes], ...] = field(
        converter=_key_tuple, validator=_check_keys, repr=_keys_repr
    )

    @classmethod
    def from_strings(cls, keys: Iterable[str]) -> SessionKeys:
        """
        Parse keys as configured (as ``SESSION_TOKEN_KEY``): each the
        standard base64 of exactly 32 bytes (surrounding whitespace ignored,
        padding optional), optionally preceded by a key id and a colon
        (``2025-06:q83v...``). A key without an id is named by its
        fingerprint (L{key_id_of}), so every instance given the same strings
        names it alike.

        :param keys: the keys, the one that seals first.
        :raise ValueError: naming which key is wrong and how (never showing
            key material).
        """
        texts = list(keys)
        parsed = [
            _parse_key(
                text,
                f"session token key {n}" if len(texts) > 1 else "the session token key",
            )
            for n, text in enumerate(texts, 1)
        ]
        return cls(parsed)

    @classmethod
    def from_config(cls, keys: Iterable[SessionKey]) -> SessionKeys:
        """
        :param keys: the keys of the configuration's ``[sts]`` table, the one
            that seals first.
        :raise ValueError: as the constructor.
        """
        return cls([(key.key_id, key.key) for key in keys])

    @property
    def sealing_key_id(self) -> str:
        """
        The id of the key new tokens are sealed with.
        """
        return self._keys[0][0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        """
        The ids of every key, sealing key first.
        """
        return tuple(key_id for key_id, _ in self._keys)

    def _cipher(self, key_id: str) -> AESGCM | None:
        """
        :return: the cipher of key ``key_id``, or ``None`` if no key has that
            id.
        """
        for candidate, key in self._keys:
            if candidate == key_id:
                return AESGCM(key)
        return None


class InvalidSessionToken(S3Error):
    """
    ``InvalidToken``: a session token that does not open. The client sees
    only S3's generic message, whatever the cause.

    :ivar reason: which check failed, for the operator's log; never sent to
        the client.
    """

    def __init__(self, reason: str) -> None:
        super().__init__("InvalidToken")
        self.reason = reason


def _header(key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes((VERSION, len(encoded))) + encoded


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _plaintext(credentials: SessionCredentials) -> bytes:
    document = {
        "k": credentials.access_key_id,
        "s": credentials.secret_access_key,
        "i": _epoch(credentials.issued_at),
        "e": _epoch(credentials.expiration),
        "r": credentials.role_id,
        "u": credentials.source_identity,
        "p": credentials.principal,
        "c": [
            [scope.bucket, list(scope.prefixes), sorted(scope.actions)]
            for scope in credentials.scopes
        ],
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


def seal(credentials: SessionCredentials, keys: SessionKeys) -> str:
    """
    Make the session token of ``credentials``, sealed under the first of
    ``keys``.

    :return: the token: URL-safe base64 without padding.
    :raise ValueError: if the token would be longer than
        L{MAX_TOKEN_LENGTH} (scopes too many or too long to carry).
    """
    key_id = keys.sealing_key_id
    cipher = keys._cipher(key_id)
    assert cipher is not None
    header = _header(key_id)
    nonce = os.urandom(_NONCE_LENGTH)
    associated = header + credentials.access_key_id.encode("utf-8", "surrogatepass")
    sealed = cipher.encrypt(nonce, _plaintext(credentials), associated)
    token = base64.urlsafe_b64encode(header + nonce + sealed).rstrip(b"=")
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(
            f"the session token would be {len(token)} characters long, more than "
            f"the {MAX_TOKEN_LENGTH} accepted; the role grants too many or too "
            "long scopes"
        )
    return token.decode("ascii")


def _decode_token(token: str) -> bytes:
    if (
        not token
        or len(token) > MAX_TOKEN_LENGTH
        or _TOKEN_TEXT.fullmatch(token) is None
        or len(token) % 4 == 1
    ):
        raise InvalidSessionToken("malformed")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    # Only the canonical spelling is accepted: the last character's unused
    # bits must be zero, so no two tokens decode alike.
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != token.encode("ascii"):
        raise InvalidSessionToken("malformed")
    return raw


class _BadContents(Exception):
    """
    The opened plaintext is not credentials in the expected shape.
    """


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _BadContents()
    return value


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _BadContents()
    return tuple(_string(item) for item in value)


def _moment(value: object) -> datetime:
    if type(value) is not int:
        raise _BadContents()
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise _BadContents() from None


def _scope(value: object) -> AccessScope:
    if not isinstance(value, list) or len(value) != 3:
        raise _BadContents()
    bucket, prefixes, actions = value
    return AccessScope(
        bucket=_string(bucket),
        prefixes=_strings(prefixes),
        actions=frozenset(_strings(actions)),
    )


def _credentials(plaintext: bytes) -> SessionCredentials:
    try:
        document: Any = json.loads(plaintext.decode("utf-8", "surrogatepass"))
    except ValueError:
        raise _BadContents() from None
    if not isinstance(document, dict) or set(document) != _FIELDS:
        raise _BadContents()
    scopes = document["c"]
    if not isinstance(scopes, list):
        raise _BadContents()
    return SessionCredentials(
        access_key_id=_string(document["k"]),
        secret_access_key=_string(document["s"]),
        expiration=_moment(document["e"]),
        scopes=tuple(_scope(scope) for scope in scopes),
        role_id=_string(document["r"]),
        source_identity=_string(document["u"]),
        principal=_string(document["p"]),
        issued_at=_moment(document["i"]),
    )


def unseal(
    token: str, access_key_id: str, keys: SessionKeys, now: datetime
) -> SessionCredentials:
    """
    Open a session token presented with a request signed by
    ``access_key_id``.

    :param token: the ``x-amz-security-token`` as received.
    :param access_key_id: the access key id the request was signed with.
    :param keys: the configured keys.
    :param now: the current time, aware.
    :return: the session's credentials, to verify the request's signature
        with and authorize it by.
    :raise InvalidSessionToken: (``InvalidToken``) if the token is
        malformed or longer than L{MAX_TOKEN_LENGTH}, was sealed under a key
        not in ``keys`` or for another access key id, or was altered.
    :raise S3Error: ``ExpiredToken`` if the session has ended (at its
        expiration exactly, or later).
    """
    raw = _decode_token(token)
    if len(raw) < 2 or raw[0] != VERSION:
        raise InvalidSessionToken("malformed")
    end = 2 + raw[1]
    if len(raw) < end + _NONCE_LENGTH + _TAG_LENGTH:
        raise InvalidSessionToken("malformed")
    try:
        key_id = raw[2:end].decode("ascii")
    except UnicodeDecodeError:
        raise InvalidSessionToken("malformed") from None
    cipher = keys._cipher(key_id)
    if cipher is None:
        raise InvalidSessionToken(
            f"sealed under key id {key_id[:64]!r}, not configured"
        )
    try:
        presented = access_key_id.encode("utf-8", "surrogatepass")
        plaintext = cipher.decrypt(
            raw[end : end + _NONCE_LENGTH],
            raw[end + _NONCE_LENGTH :],
            raw[:end] + presented,
        )
    except (InvalidTag, UnicodeEncodeError):
        raise InvalidSessionToken(
            "does not open: altered, or presented with another access key id"
        ) from None
    try:
        credentials = _credentials(plaintext)
    except _BadContents:
        raise InvalidSessionToken("opens, but its contents are not valid") from None
    sealed_key_id = credentials.access_key_id.encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(sealed_key_id, presented):
        raise InvalidSessionToken("minted for another access key id")
    if credentials.expiration <= now:
        raise S3Error("ExpiredToken")
    return credentials
