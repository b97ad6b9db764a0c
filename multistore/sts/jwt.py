# -*- test-case-name: tests.unit.test_sts_jwt -*-
"""
Verifying OIDC ID tokens (signed JWTs) for ``AssumeRoleWithWebIdentity``.

A token is checked in three steps, cheapest first, so that a token that
cannot be valid never causes a request to its issuer:

 1. L{parse_unverified}: at most C{max_bytes} long, three base64url parts, a
    header and claims that are JSON objects;
 2. L{precheck}: the header names ``RS256`` or ``ES256`` (never ``none``, an
    HMAC algorithm or anything else) and a key id; the issuer (``iss``) is one
    of the trusted issuers, compared exactly as OIDC requires (a trailing
    slash matters); ``exp`` is given and not past, ``nbf`` and ``iat`` are not
    in the future, each with C{leeway} seconds of tolerance;
 3. the issuer's keys with that key id are looked up (see
    L{multistore.sts.jwks.JwksCache.keys_for}) and the signature is verified
    with PyJWT for the one algorithm the header names, with a key made for
    that algorithm.

L{verify_token} does all three; L{check_token} does them with keys already
at hand, without I/O.

The audience is not checked here: it belongs to each role's trust policy
(L{multistore.sts.policy.check_trust}), which gets the verified claims.

Every refusal is an L{InvalidIdentityToken} whose message may be shown to the
client: it says what was wrong with the token in a few words, and never
echoes the token.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

import jwt
from attrs import field, frozen
from twisted.internet.defer import Deferred

from multistore.sts.jwks import JwksError, UnknownKey, VerificationKey

__all__ = [
    "ALGORITHMS",
    "DEFAULT_LEEWAY",
    "MAX_TOKEN_BYTES",
    "ExpiredIdentityToken",
    "IdentityClaims",
    "IdpCommunicationError",
    "InvalidIdentityToken",
    "IssuerKeys",
    "UnverifiedToken",
    "check_token",
    "parse_unverified",
    "precheck",
    "verify_token",
]

#: The only JWS algorithms accepted.
ALGORITHMS: Final = frozenset({"RS256", "ES256"})
#: Seconds of clock difference tolerated on ``exp``, ``nbf`` and ``iat``.
DEFAULT_LEEWAY: Final = 60
#: The longest token accepted, in bytes.
MAX_TOKEN_BYTES: Final = 16384

#: The last second a time claim may name (the end of year 9999).
_LATEST: Final = 253402300799
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+")

#: Looks up the keys an issuer publishes under a key id, as
#: L{multistore.sts.jwks.JwksCache.keys_for} does.
IssuerKeys = Callable[[str, str], "Deferred[tuple[VerificationKey, ...]]"]


class InvalidIdentityToken(Exception):
    """
    A web identity token that is not accepted.

    :ivar message: what was wrong, in words safe to show the client.
    """

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class ExpiredIdentityToken(InvalidIdentityToken):
    """
    A web identity token whose ``exp`` is past (AWS answers these with
    ``ExpiredTokenException``).
    """


class IdpCommunicationError(InvalidIdentityToken):
    """
    The issuer's signing keys could not be fetched, so the token could not be
    checked (AWS answers these with ``IDPCommunicationError``); the client
    may try again later.
    """


@frozen
class UnverifiedToken:
    """
    A token's header and claims before its signature is checked: nothing in
    them may be trusted yet.

    :ivar token: the compact serialization, as verified later.
    :ivar header: the JOSE header.
    :ivar claims: the claims.
    """

    token: str = field(repr=False)
    header: Mapping[str, Any]
    claims: Mapping[str, Any]


@frozen
class IdentityClaims:
    """
    The claims of a verified token.

    :ivar issuer: ``iss``, one of the trusted issuers.
    :ivar subject: ``sub``, or ``None`` if the token has none.
    :ivar audiences: ``aud`` as a tuple (empty if the token has none).
    :ivar expires_at: ``exp``.
    :ivar claims: every claim, as the token gives them (for trust policies
        and scope templates).
    """

    issuer: str
    subject: str | None
    audiences: tuple[str, ...]
    expires_at: datetime
    claims: Mapping[str, Any] = field(repr=False)


def _malformed() -> InvalidIdentityToken:
    return InvalidIdentityToken("malformed token")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # Two readers of one token must not see two different claims.
        raise ValueError("duplicate member")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _segment(text: str) -> bytes:
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise _malformed()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_object(text: str) -> Mapping[str, Any]:
    try:
        value = json.loads(
            _segment(text).decode("utf-8"),
            object_pairs_hook=_unique,
            parse_constant=_no_constant,
        )
    except (ValueError, RecursionError):
        raise _malformed() from None
    if not isinstance(value, dict):
        raise _malformed()
    return MappingProxyType(value)


def parse_unverified(
    token: str, *, max_bytes: int = MAX_TOKEN_BYTES
) -> UnverifiedToken:
    """
    Split a compact JWS into its header and claims, without checking
    anything they say. Surrounding whitespace (a token read from a file) is
    ignored.

    :param max_bytes: the longest token accepted; a longer one is refused
        before it is decoded.
    :raise InvalidIdentityToken: if ``token`` is too long, or is not three
        base64url parts of which the first two are JSON objects.
    """
    if len(token) > max_bytes:
        raise InvalidIdentityToken("token too large")
    token = token.strip(" \t\r\n")
    if not token.isascii():
        raise _malformed()
    parts = token.split(".")
    if len(parts) != 3:
        raise _malformed()
    header = _json_object(parts[0])
    claims = _json_object(parts[1])
    _segment(parts[2])
    return UnverifiedToken(token, header, claims)


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None and name not in claims:
        return None
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0 <= value <= _LATEST
    ):
        raise InvalidIdentityToken(f"invalid {name} claim")
    return float(value)


def _audiences(claims: Mapping[str, Any]) -> tuple[str, ...]:
    audience = claims.get("aud")
    if "aud" not in claims:
        return ()
    if isinstance(audience, str):
        return (audience,)
    if isinstance(audience, list) and all(isinstance(a, str) for a in audience):
        return tuple(audience)
    raise InvalidIdentityToken("invalid aud claim")


def precheck(
    token: UnverifiedToken,
    *,
    trusted_issuers: Collection[str],
    now: datetime,
    leeway: int = DEFAULT_LEEWAY,
) -> None:
    """
    Check everything about a token that needs no key: its algorithm, key id,
    issuer, times and the types of its standard claims.

    :param trusted_issuers: the issuers whose tokens may be accepted,
        compared exactly with ``iss``.
    :param now: the time to judge the token at (timezone-aware).
    :param leeway: seconds of clock difference tolerated.
    :raise ExpiredIdentityToken: if ``exp`` is more than ``leeway`` seconds
        past.
    :raise InvalidIdentityToken: for anything else that is wrong.
    """
    header, claims = token.header, token.claims
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise InvalidIdentityToken("unsupported algorithm")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid == "":
        raise InvalidIdentityToken("missing key id")
    if "crit" in header:
        raise InvalidIdentityToken("unsupported critical header parameters")
    issuer = claims.get("iss")
    if issuer is None:
        raise InvalidIdentityToken("missing iss claim")
    if not isinstance(issuer, str) or issuer not in trusted_issuers:
        raise InvalidIdentityToken("untrusted issuer")
    subject = claims.get("sub")
    if "sub" in claims and not isinstance(subject, str):
        raise InvalidIdentityToken("invalid sub claim")
    _audiences(claims)
    moment = now.timestamp()
    expires = _time_claim(claims, "exp")
    not_before = _time_claim(claims, "nbf")
    issued = _time_claim(claims, "iat")
    if expires is None:
        raise InvalidIdentityToken("missing exp claim")
    if moment >= expires + leeway:
        raise ExpiredIdentityToken("token expired")
    if not_before is not None and moment < not_before - leeway:
        raise InvalidIdentityToken("token not yet valid")
    if issued is not None and issued > moment + leeway:
        raise InvalidIdentityToken("token issued in the future")


def _verified(
    token: UnverifiedToken, keys: Sequence[VerificationKey]
) -> IdentityClaims:
    """
    Verify the signature of a prechecked token with one of ``keys``.
    """
    algorithm = token.header["alg"]
    candidates = [key for key in keys if key.algorithm == algorithm]
    if not candidates:
        raise InvalidIdentityToken("signing key does not match the algorithm")
    for key in candidates:
        try:
            jwt.decode(
                token.token,
                key.key,
                algorithms=[algorithm],
                options={
                    "verify_signature": True,
                    "require": ["exp", "iss"],
                    # Times were checked by precheck, against the time the
                    # caller gave rather than the wall clock; the audience
                    # is the trust policy's business.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except jwt.InvalidSignatureError:
            continue
        except (jwt.PyJWTError, ValueError, TypeError):
            raise InvalidIdentityToken("invalid token") from None
        claims = token.claims
        expires = claims["exp"]
        return IdentityClaims(
            issuer=claims["iss"],
            subject=claims.get("sub"),
            audiences=_audiences(claims),
            expires_at=datetime.fromtimestamp(expires, UTC),
            claims=claims,
        )
    raise InvalidIdentityToken("signature invalid")


def check_token(
    token: str,
    keys: Sequence[VerificationKey],
    *,
    trusted_issuers: Collection[str],
    now: datetime,
    leeway: int = DEFAULT_LEEWAY,
    max_bytes: int = MAX_TOKEN_BYTES,
) -> IdentityClaims:
    """
    Verify a token with keys already at hand (L{parse_unverified},
    L{precheck}, then the signature), without I/O.

    :param keys: the issuer's keys under the token's key id; one whose
        algorithm is the token's must verify the signature.
    :return: the verified claims.
    :raise InvalidIdentityToken: if the token is not accepted.
    """
    parsed = parse_unverified(token, max_bytes=max_bytes)
    precheck(parsed, trusted_issuers=trusted_issuers, now=now, leeway=leeway)
    return _verified(parsed, keys)


async def _verify(
    token: str,
    issuer_keys: IssuerKeys,
    trusted_issuers: Collection[str],
    now: datetime,
    leeway: int,
    max_bytes: int,
) -> IdentityClaims:
    parsed = parse_unverified(token, max_bytes=max_bytes)
    precheck(parsed, trusted_issuers=trusted_issuers, now=now, leeway=leeway)
    try:
        keys = await issuer_keys(parsed.claims["iss"], parsed.header["kid"])
    except UnknownKey:
        raise InvalidIdentityToken("unknown signing key") from None
    except JwksError:
        raise IdpCommunicationError(
            "could not fetch the issuer's signing keys; try again later"
        ) from None
    return _verified(parsed, keys)


def verify_token(
    token: str,
    *,
    issuer_keys: IssuerKeys,
    trusted_issuers: Collection[str],
    now: datetime,
    leeway: int = DEFAULT_LEEWAY,
    max_bytes: int = MAX_TOKEN_BYTES,
) -> Deferred[IdentityClaims]:
    """
    Verify a web identity token.

    Nothing is looked up unless the token passes L{parse_unverified} and
    L{precheck}: a token with a foreign issuer, a refused algorithm or a past
    expiry causes no network access.

    :param issuer_keys: looks up an issuer's keys by key id (usually
        L{multistore.sts.jwks.JwksCache.keys_for}); fails with
        L{multistore.sts.jwks.UnknownKey} for an id the issuer does not
        publish and L{multistore.sts.jwks.JwksError} if the keys cannot be
        had.
    :param trusted_issuers: the issuers whose tokens may be accepted,
        compared exactly with ``iss``.
    :param now: the time to judge the token at (timezone-aware).
    :param leeway: seconds of clock difference tolerated on ``exp``,
        ``nbf`` and ``iat``.
    :param max_bytes: the longest token accepted.
    :return: a Deferred that fires with the verified claims, or fails with
        L{InvalidIdentityToken} (L{ExpiredIdentityToken} for a past ``exp``,
        L{IdpCommunicationError} when the issuer's keys cannot be had).
    """
    return Deferred.fromCoroutine(
        _verify(token, issuer_keys, trusted_issuers, now, leeway, max_bytes)
    )
