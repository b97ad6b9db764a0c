# -*- test-case-name: tests.unit.test_sts_jwks -*-
"""
The signing keys of OIDC issuers, fetched without blocking the reactor.

An issuer's keys are found through its discovery document
(``{issuer}/.well-known/openid-configuration``, whose ``jwks_uri`` names its
JSON Web Key Set) and kept for as long as the key set's response says
(``Cache-Control: max-age``, bounded). A token naming a key the cached set
lacks causes one refetch, at most once per L{JwksCache}'s
``refetch_interval`` per issuer, so an issuer's key rotation needs no
restart, while a flood of made-up key ids costs the issuer nothing. A failed
fetch is remembered for ``failure_ttl`` during which the issuer is not asked
again.

Only keys multistore can verify with are kept: RSA keys of at least 2048
bits (``RS256``) and P-256 EC keys (``ES256``), meant for signatures.

Issuers must be reached over HTTPS; plain HTTP is allowed only for loopback
issuers (a test's local issuer) or issuers the operator names explicitly.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol, cast
from urllib.parse import urlsplit

from attrs import define, field, frozen
from cryptography.hazmat.primitives.asymmetric.ec import (
    SECP256R1,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK, PyJWTError
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse

__all__ = [
    "DEFAULT_LIFETIME",
    "MAX_BODY",
    "MAX_LIFETIME",
    "MIN_LIFETIME",
    "MIN_RSA_BITS",
    "HTTPGetter",
    "JwksCache",
    "JwksError",
    "UnknownKey",
    "VerificationKey",
    "cache_lifetime",
    "check_issuer_url",
    "discovery_url",
    "parse_jwks",
]

#: How long a key set is kept when its response does not say, in seconds.
DEFAULT_LIFETIME: Final = 15 * 60.0
#: The shortest a key set is kept, whatever its response says, in seconds.
MIN_LIFETIME: Final = 60.0
#: The longest a key set is kept, whatever its response says, in seconds.
MAX_LIFETIME: Final = 24 * 3600.0
#: The largest discovery document or key set accepted, in bytes.
MAX_BODY: Final = 1024 * 1024
#: The smallest RSA modulus accepted, in bits.
MIN_RSA_BITS: Final = 2048

#: The algorithms a key can verify, by JWK key type.
_ALGORITHM_OF_KTY: Final = MappingProxyType({"RSA": "RS256", "EC": "ES256"})

Algorithm = Literal["RS256", "ES256"]


class JwksError(Exception):
    """
    An issuer's signing keys could not be had: the issuer's URL is not
    allowed, it could not be reached, it answered with something unusable,
    or it failed recently and is not being asked again yet.

    The message names what failed, never a token's contents; it is meant for
    logs, not for clients.
    """


class UnknownKey(JwksError):
    """
    The issuer does not publish a usable key with the requested key id, even
    after the key set was fetched again (or it was fetched too recently to be
    fetched again).
    """


@frozen
class VerificationKey:
    """
    A public key an issuer signs tokens with.

    :ivar kid: the key id tokens name it by.
    :ivar algorithm: the one JWS algorithm it verifies: ``RS256`` for an RSA
        key, ``ES256`` for a P-256 EC key.
    :ivar key: the public key, as PyJWT's ``jwt.decode`` accepts it.
    """

    kid: str
    algorithm: Algorithm
    key: RSAPublicKey | EllipticCurvePublicKey = field(eq=False, repr=False)


class HTTPGetter(Protocol):
    """
    The part of L{treq.client.HTTPClient} the cache uses (a
    L{treq.testing.StubTreq} provides it too).
    """

    def get(
        self,
        url: str,
        /,
        *,
        headers: Any = None,
        timeout: float | None = None,
        reactor: Any = None,
        allow_redirects: bool = True,
        unbuffered: bool = False,
    ) -> Deferred[Any]:
        """
        Start a GET of ``url``, with treq's keyword arguments.

        :return: a Deferred that fires with an L{IResponse} once its headers
            have arrived.
        """


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normalised(issuer: str) -> str:
    return issuer.rstrip("/")


def check_issuer_url(
    url: str, insecure_issuers: Collection[str] = frozenset(), *, what: str = "issuer"
) -> None:
    """
    Check that ``url`` may be fetched from: an absolute ``https://`` URL with
    a host and no query or fragment, or an ``http://`` one whose host is a
    loopback address or ``localhost``, or one of ``insecure_issuers``
    (compared without a trailing slash).

    :param what: what the URL is, for the error message.
    :raise JwksError: if it may not.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        raise JwksError(f"{what} {url!r} is not a valid URL") from None
    if not host or parts.query or parts.fragment or parts.username is not None:
        raise JwksError(
            f"{what} {url!r} must be an absolute URL with a host, "
            "no credentials, no query and no fragment"
        )
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and (
        _is_loopback(host)
        or _normalised(url) in {_normalised(i) for i in insecure_issuers}
    ):
        return
    raise JwksError(
        f"{what} {url!r} must use https (http is allowed only for loopback "
        "hosts and issuers configured as insecure)"
    )


def discovery_url(issuer: str) -> str:
    """
    :return: the URL of ``issuer``'s OpenID Connect discovery document.
    """
    return _normalised(issuer) + "/.well-known/openid-configuration"


def cache_lifetime(cache_control: Sequence[str] | None) -> float:
    """
    How long to keep a key set, from its response's ``Cache-Control`` fields.

    :param cache_control: the ``Cache-Control`` field values, or ``None``.
    :return: ``max-age`` bounded to [L{MIN_LIFETIME}, L{MAX_LIFETIME}];
        L{MIN_LIFETIME} for ``no-cache`` or ``no-store``; L{DEFAULT_LIFETIME}
        when neither is given (or ``max-age`` is not a number).
    """
    max_age: float | None = None
    for value in cache_control or ():
        for directive in value.split(","):
            name, _, argument = directive.strip().partition("=")
            name = name.strip().lower()
            if name in ("no-cache", "no-store"):
                return MIN_LIFETIME
            if name == "max-age" and max_age is None:
                digits = argument.strip().strip('"')
                if digits.isascii() and digits.isdigit():
                    max_age = float(int(digits[:12]) if len(digits) <= 12 else 1e12)
    if max_age is None:
        return DEFAULT_LIFETIME
    return min(MAX_LIFETIME, max(MIN_LIFETIME, max_age))


def _verification_key(jwk: object) -> VerificationKey | None:
    """
    :return: the key ``jwk`` describes, or ``None`` if it is not one
        multistore verifies with.
    """
    if not isinstance(jwk, dict):
        return None
    kid = jwk.get("kid")
    algorithm = _ALGORITHM_OF_KTY.get(jwk.get("kty"))  # type: ignore[arg-type]
    if not isinstance(kid, str) or kid == "" or algorithm is None:
        return None
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", algorithm) != algorithm:
        return None
    operations = jwk.get("key_ops")
    if operations is not None and (
        not isinstance(operations, list) or "verify" not in operations
    ):
        return None
    if "d" in jwk:
        # Private key material has no business in a public key set.
        return None
    if algorithm == "ES256" and jwk.get("crv") != "P-256":
        return None
    try:
        key = PyJWK(jwk, algorithm).key
    except (PyJWTError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if isinstance(key, RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return None
        return VerificationKey(kid, "RS256", key)
    if isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP256R1):
        return VerificationKey(kid, "ES256", key)
    return None


def parse_jwks(document: object) -> Mapping[str, tuple[VerificationKey, ...]]:
    """
    The usable keys of a JSON Web Key Set.

    Each key is read with PyJWT's L{PyJWK} on its own, so one key multistore
    cannot use (another key type, another curve, an encryption key, a short
    RSA key, a malformed entry) is skipped rather than spoiling the set.

    :param document: the key set, as parsed from JSON.
    :return: the usable keys by key id (an issuer may publish several keys
        under one id).
    :raise JwksError: if ``document`` is not a key set, or holds no usable
        key.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("the key set is not a JSON object with a 'keys' list")
    keys: dict[str, tuple[VerificationKey, ...]] = {}
    for jwk in document["keys"]:
        key = _verification_key(jwk)
        if key is not None:
            keys[key.kid] = (*keys.get(key.kid, ()), key)
    if not keys:
        raise JwksError("the key set holds no usable RS256 or ES256 signing key")
    return MappingProxyType(keys)


class _BodyTooLarge(Exception):
    pass


class _BoundedBody(TwistedProtocol):
    """
    Collects a response body of at most ``limit`` bytes.
    """

    def __init__(self, limit: int, done: Deferred[bytes]) -> None:
        self._limit = limit
        self._done: Deferred[bytes] | None = done
        self._chunks: list[bytes] = []
        self._size = 0

    def stop(self) -> Deferred[bytes] | None:
        """
        Stop reading and close the connection.

        :return: the Deferred still to fire, if any.
        """
        done, self._done = self._done, None
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]
        return done

    def dataReceived(self, data: bytes) -> None:
        if self._done is None:
            return
        self._size += len(data)
        if self._size > self._limit:
            done = self.stop()
            if done is not None:
                done.errback(Failure(_BodyTooLarge()))
            return
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        done, self._done = self._done, None
        if done is None:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            done.callback(b"".join(self._chunks))
        else:
            done.errback(reason)


class _Discard(TwistedProtocol):
    """
    Throws a response body away by closing its connection.
    """

    def connectionMade(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        pass


@frozen
class _KeySet:
    keys: Mapping[str, tuple[VerificationKey, ...]]
    expires: float


def _describe(reason: Failure) -> str:
    if reason.check(JwksError):
        return str(reason.value)
    if reason.check(CancelledError) or any(
        isinstance(getattr(inner, "value", None), CancelledError)
        for inner in getattr(reason.value, "reasons", ())
    ):
        return "timed out"
    if reason.check(_BodyTooLarge):
        return "the response is too large"
    return f"{reason.type.__name__}: {reason.getErrorMessage()}"  # type: ignore[union-attr]


def _issuer_set(issuers: Iterable[str]) -> frozenset[str]:
    return frozenset(issuers)


@define
class JwksCache:
    """
    The signing keys of OIDC issuers, fetched on demand and cached per issuer.

    Callers ask only about issuers they trust: each issuer asked about keeps
    an entry.

    :ivar log: where fetches and their failures are reported (issuer and what
        failed; never a token).
    """

    log = Logger()

    _clock: IReactorTime
    _http: HTTPGetter
    _insecure_issuers: frozenset[str] = field(
        default=frozenset(), converter=_issuer_set
    )
    _timeout: float = 5.0
    _refetch_interval: float = 30.0
    _failure_ttl: float = 30.0
    _max_body: int = MAX_BODY
    _sets: dict[str, _KeySet] = field(factory=dict, init=False)
    _failed_until: dict[str, float] = field(factory=dict, init=False)
    _last_fetch: dict[str, float] = field(factory=dict, init=False)
    _waiters: dict[str, list[Deferred[_KeySet]]] = field(factory=dict, init=False)

    def keys_for(self, issuer: str, kid: str) -> Deferred[tuple[VerificationKey, ...]]:
        """
        Find the keys ``issuer`` publishes under key id ``kid``.

        A cached key set is used while it lasts; a ``kid`` it lacks causes a
        refetch unless the issuer's keys were fetched less than
        ``refetch_interval`` ago. Concurrent calls for one issuer share one
        fetch. Cancelling the returned Deferred abandons the wait, not the
        fetch.

        :return: a Deferred that fires with the keys (at least one), or fails
            with L{UnknownKey} if the issuer publishes none under ``kid``,
            or with L{JwksError} if the keys could not be had (an issuer URL
            that is not allowed fails before any network access).
        """
        try:
            check_issuer_url(issuer, self._insecure_issuers)
        except JwksError as error:
            self.log.warn(
                "refusing to fetch the signing keys of {issuer}: {reason}",
                issuer=issuer,
                reason=str(error),
            )
            return _failed(error)
        now = self._clock.seconds()
        cached = self._sets.get(issuer)
        if cached is not None and now < cached.expires:
            if kid in cached.keys:
                return succeed(cached.keys[kid])
            if issuer not in self._waiters and (
                now - self._last_fetch.get(issuer, -math.inf) < self._refetch_interval
            ):
                return _failed(UnknownKey(f"{issuer} publishes no usable key {kid!r}"))
        if issuer not in self._waiters and now < self._failed_until.get(issuer, 0.0):
            return _failed(
                JwksError(f"fetching the signing keys of {issuer} failed recently")
            )
        return self._shared_fetch(issuer).addCallback(self._select, issuer, kid)

    @staticmethod
    def _select(found: _KeySet, issuer: str, kid: str) -> tuple[VerificationKey, ...]:
        keys = found.keys.get(kid)
        if keys is None:
            raise UnknownKey(f"{issuer} publishes no usable key {kid!r}")
        return keys

    def _shared_fetch(self, issuer: str) -> Deferred[_KeySet]:
        def forget(waiter: Deferred[_KeySet]) -> None:
            waiting = self._waiters.get(issuer, [])
            if any(w is waiter for w in waiting):
                waiting.remove(waiter)

        waiter: Deferred[_KeySet] = Deferred(forget)
        if issuer in self._waiters:
            self._waiters[issuer].append(waiter)
            return waiter
        self._waiters[issuer] = [waiter]
        self._last_fetch[issuer] = self._clock.seconds()
        fetch = Deferred.fromCoroutine(self._fetch(issuer))
        fetch.addBoth(self._settle, issuer)
        return waiter

    def _settle(self, outcome: _KeySet | Failure, issuer: str) -> None:
        waiters = self._waiters.pop(issuer, [])
        if isinstance(outcome, Failure):
            self._failed_until[issuer] = self._clock.seconds() + self._failure_ttl
            reason = _describe(outcome)
            self.log.warn(
                "could not fetch the signing keys of {issuer}: {reason}",
                issuer=issuer,
                reason=reason,
            )
            error = JwksError(f"could not fetch the signing keys of {issuer}: {reason}")
            for waiter in waiters:
                waiter.errback(Failure(error))
            return
        self._failed_until.pop(issuer, None)
        self._sets[issuer] = outcome
        for waiter in waiters:
            waiter.callback(outcome)

    def _insecure(self, issuer: str) -> bool:
        return _normalised(issuer) in {_normalised(i) for i in self._insecure_issuers}

    async def _fetch(self, issuer: str) -> _KeySet:
        _, body = await self._get(discovery_url(issuer))
        discovery = _json_body(body, "the discovery document")
        if not isinstance(discovery, dict) or not isinstance(
            discovery.get("jwks_uri"), str
        ):
            raise JwksError("the discovery document has no 'jwks_uri'")
        jwks_uri: str = discovery["jwks_uri"]
        # An issuer allowed over plain HTTP may name its key set over plain
        # HTTP too; any other must name an HTTPS (or loopback) one.
        allowed = (jwks_uri,) if self._insecure(issuer) else ()
        check_issuer_url(jwks_uri, allowed, what="jwks_uri")
        response, body = await self._get(jwks_uri)
        keys = parse_jwks(_json_body(body, "the key set"))
        lifetime = cache_lifetime(response.headers.getRawHeaders("cache-control"))
        self.log.info(
            "fetched {count} signing keys of {issuer}, kept for {lifetime:.0f} s",
            count=sum(len(k) for k in keys.values()),
            issuer=issuer,
            lifetime=lifetime,
        )
        return _KeySet(keys, self._clock.seconds() + lifetime)

    async def _get(self, url: str) -> tuple[IResponse, bytes]:
        response = cast(
            IResponse,
            await self._http.get(
                url,
                headers={"Accept": ["application/json"]},
                timeout=self._timeout,
                reactor=self._clock,
                allow_redirects=False,
                unbuffered=True,
            ),
        )
        if response.code != 200:
            response.deliverBody(_Discard())
            raise JwksError(f"GET {url} answered {response.code}")
        if response.length is not UNKNOWN_LENGTH and response.length > self._max_body:
            response.deliverBody(_Discard())
            raise JwksError(f"GET {url}: the response is too large")
        return response, await self._read(response)

    def _read(self, response: IResponse) -> Deferred[bytes]:
        """
        Read a body of at most C{max_body} bytes, within C{timeout} seconds.
        """
        reader: _BoundedBody

        def cancel(d: Deferred[bytes]) -> None:
            reader.stop()

        done: Deferred[bytes] = Deferred(cancel)
        reader = _BoundedBody(self._max_body, done)
        deadline: IDelayedCall = self._clock.callLater(self._timeout, done.cancel)

        def finished(result: bytes | Failure) -> bytes | Failure:
            if deadline.active():
                deadline.cancel()
            return result

        done.addBoth(finished)
        response.deliverBody(reader)
        return done


def _failed(error: JwksError) -> Deferred[tuple[VerificationKey, ...]]:
    return fail(error)


def _json_body(body: bytes, what: str) -> object:
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise JwksError(f"{what} is not valid JSON") from None


def _no_constant(name: str) -> object:
    raise ValueError(name)
