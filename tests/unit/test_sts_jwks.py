"""
Tests for L{multistore.sts.jwks}.

Issuers are L{FakeIssuer} resources served in memory through
L{treq.testing.StubTreq}; time is a L{Clock}. The fakes here are shared with
L{tests.unit.test_sts_jwt}.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from treq.testing import StubTreq
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from multistore.sts.jwks import (
    DEFAULT_LIFETIME,
    MAX_BODY,
    MAX_LIFETIME,
    MIN_LIFETIME,
    HTTPGetter,
    JwksCache,
    JwksError,
    UnknownKey,
    VerificationKey,
    cache_lifetime,
    check_issuer_url,
    discovery_url,
    parse_jwks,
)

ISSUER = "https://issuer.example"
DISCOVERY = b"/.well-known/openid-configuration"

#: Keys made once: RSA key generation is slow.
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_KEY_384 = ec.generate_private_key(ec.SECP384R1())
SHORT_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    """
    The public JWK of an RSA key.
    """
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, **extra}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    """
    The public JWK of an EC key.
    """
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, **extra}


class FakeIssuer(Resource):
    """
    An OIDC issuer: a discovery document at
    C{/.well-known/openid-configuration} and a key set at C{/jwks}.

    :ivar hits: requests received, by path.
    :ivar status: a status to answer with instead of 200, by path.
    :ivar bodies: a body to answer with instead of the document, by path.
    :ivar headers: extra response headers, by path.
    :ivar hold: whether to keep requests waiting (in C{held}) until
        L{release}.
    :ivar stall: whether to send only the first byte of bodies and then
        wait forever.
    """

    isLeaf = True

    def __init__(self, issuer: str = ISSUER, keys: list[Any] | None = None) -> None:
        super().__init__()
        self.discovery: dict[str, Any] = {
            "issuer": issuer,
            "jwks_uri": issuer + "/jwks",
        }
        self.keys: list[Any] = (
            keys
            if keys is not None
            else [rsa_jwk(RSA_KEY, "rsa-1"), ec_jwk(EC_KEY, "ec-1")]
        )
        self.hits: Counter[bytes] = Counter()
        self.status: dict[bytes, int] = {}
        self.bodies: dict[bytes, bytes] = {}
        self.headers: dict[bytes, dict[bytes, bytes]] = {}
        self.hold = False
        self.stall = False
        self.held: list[Request] = []

    def render_GET(self, request: Request) -> bytes | int:
        """
        Count the request and answer it (or hold it).
        """
        self.hits[request.path] += 1
        if self.hold:
            self.held.append(request)
            return NOT_DONE_YET
        return self._answer(request)

    def release(self) -> None:
        """
        Answer the requests held so far.
        """
        held, self.held = self.held, []
        for request in held:
            request.write(self._answer(request))
            request.finish()

    def _answer(self, request: Request) -> bytes | int:
        path = request.path
        request.setResponseCode(self.status.get(path, 200))
        for name, value in self.headers.get(path, {}).items():
            request.setHeader(name, value)
        if path in self.bodies:
            body = self.bodies[path]
        elif path == DISCOVERY:
            body = json.dumps(self.discovery).encode()
        elif path == b"/jwks":
            body = json.dumps({"keys": self.keys}).encode()
        else:
            request.setResponseCode(404)
            body = b"not found"
        if self.stall:
            request.write(body[:1])
            return NOT_DONE_YET
        return body


class RecordingHTTP:
    """
    An HTTP client that must not be used: it records each URL and refuses the
    connection.

    :ivar urls: the URLs asked for.
    """

    def __init__(self) -> None:
        self.urls: list[str] = []

    def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
        """
        Record ``url`` and fail as a refused connection does.
        """
        self.urls.append(url)
        return fail(ConnectionRefusedError("no one listens"))


def make_cache(
    issuer: Resource | None = None, clock: Clock | None = None, **kwargs: Any
) -> tuple[JwksCache, FakeIssuer, Clock, StubTreq]:
    """
    A cache in front of a fake issuer.
    """
    resource = issuer if issuer is not None else FakeIssuer()
    clock = clock if clock is not None else Clock()
    stub = StubTreq(resource)
    cache = JwksCache(clock, cast(HTTPGetter, stub), **kwargs)
    return cache, cast(FakeIssuer, resource), clock, stub


class CheckIssuerUrlTests(SynchronousTestCase):
    """
    L{check_issuer_url} allows HTTPS, and plain HTTP only for loopback hosts
    or issuers named as insecure.
    """

    def test_https(self) -> None:
        """
        Any HTTPS URL with a host is allowed.
        """
        check_issuer_url("https://token.actions.githubusercontent.com")
        check_issuer_url("https://gitlab.example/")
        check_issuer_url("https://issuer.example:8443/tenant/v2.0")

    def test_loopback(self) -> None:
        """
        Plain HTTP is allowed for loopback addresses and C{localhost}.
        """
        for url in (
            "http://127.0.0.1",
            "http://127.0.0.1:8080/realm",
            "http://[::1]:9000",
            "http://localhost",
            "http://LOCALHOST:1234/",
            "http://127.1.2.3",
        ):
            check_issuer_url(url)

    def test_plain_http_refused(self) -> None:
        """
        Plain HTTP to any other host is refused, including names that merely
        start like a loopback name.
        """
        for url in (
            "http://issuer.example",
            "http://localhost.example.com",
            "http://127.0.0.1.example.com",
            "http://10.0.0.1",
        ):
            with self.assertRaises(JwksError):
                check_issuer_url(url)

    def test_insecure_issuers(self) -> None:
        """
        An issuer named as insecure may use plain HTTP, with or without a
        trailing slash; others still may not.
        """
        check_issuer_url("http://issuer.internal", {"http://issuer.internal/"})
        check_issuer_url("http://issuer.internal/", {"http://issuer.internal"})
        with self.assertRaises(JwksError):
            check_issuer_url("http://other.internal", {"http://issuer.internal"})

    def test_malformed(self) -> None:
        """
        Other schemes, relative URLs, credentials, queries and fragments are
        refused.
        """
        for url in (
            "ftp://issuer.example",
            "issuer.example",
            "/relative",
            "https://",
            "https://user:pw@issuer.example",
            "https://issuer.example?x=1",
            "https://issuer.example#f",
            "https://issuer.example:notaport",
            "",
        ):
            with self.assertRaises(JwksError, msg=url):
                check_issuer_url(url)

    def test_discovery_url(self) -> None:
        """
        The discovery document is under C{.well-known} of the issuer, with a
        trailing slash dropped.
        """
        self.assertEqual(
            discovery_url("https://a.example/"),
            "https://a.example/.well-known/openid-configuration",
        )
        self.assertEqual(
            discovery_url("https://a.example/realms/x"),
            "https://a.example/realms/x/.well-known/openid-configuration",
        )


class CacheLifetimeTests(SynchronousTestCase):
    """
    L{cache_lifetime} honours C{Cache-Control: max-age} within bounds.
    """

    def test_absent(self) -> None:
        """
        Without C{Cache-Control} (or without C{max-age}), the default applies.
        """
        self.assertEqual(cache_lifetime(None), DEFAULT_LIFETIME)
        self.assertEqual(cache_lifetime([]), DEFAULT_LIFETIME)
        self.assertEqual(cache_lifetime(["public"]), DEFAULT_LIFETIME)
        self.assertEqual(cache_lifetime(["max-age=soon"]), DEFAULT_LIFETIME)
        self.assertEqual(cache_lifetime(["max-age=-5"]), DEFAULT_LIFETIME)

    def test_max_age(self) -> None:
        """
        C{max-age} is used when within bounds, wherever it is in the field.
        """
        self.assertEqual(cache_lifetime(["max-age=3600"]), 3600)
        self.assertEqual(
            cache_lifetime(["public, max-age=19174, must-revalidate"]), 19174
        )
        self.assertEqual(cache_lifetime(["public", 'Max-Age="120"']), 120)

    def test_bounds(self) -> None:
        """
        C{max-age} is raised to a minute and lowered to a day.
        """
        self.assertEqual(cache_lifetime(["max-age=0"]), MIN_LIFETIME)
        self.assertEqual(cache_lifetime(["max-age=5"]), MIN_LIFETIME)
        self.assertEqual(cache_lifetime(["max-age=999999999"]), MAX_LIFETIME)
        self.assertEqual(cache_lifetime(["max-age=" + "9" * 400]), MAX_LIFETIME)

    def test_no_cache(self) -> None:
        """
        C{no-cache} and C{no-store} keep a set for the minimum only.
        """
        self.assertEqual(cache_lifetime(["no-store"]), MIN_LIFETIME)
        self.assertEqual(cache_lifetime(["max-age=3600, no-cache"]), MIN_LIFETIME)

    @given(st.lists(st.text(max_size=40), max_size=4))
    def test_always_bounded(self, values: list[str]) -> None:
        """
        Whatever the header says, the lifetime is within bounds.
        """
        lifetime = cache_lifetime(values)
        self.assertTrue(MIN_LIFETIME <= lifetime <= MAX_LIFETIME)


class ParseJwksTests(SynchronousTestCase):
    """
    L{parse_jwks} keeps the RS256 and ES256 signing keys of a key set.
    """

    def test_usable_keys(self) -> None:
        """
        RSA keys verify RS256 and P-256 keys ES256, by key id.
        """
        keys = parse_jwks(
            {
                "keys": [
                    rsa_jwk(RSA_KEY, "r", use="sig", alg="RS256"),
                    ec_jwk(EC_KEY, "e", key_ops=["verify"]),
                ]
            }
        )
        self.assertEqual(sorted(keys), ["e", "r"])
        [rsa_key] = keys["r"]
        [ec_key] = keys["e"]
        self.assertEqual(rsa_key.algorithm, "RS256")
        self.assertEqual(
            rsa_key.key.public_numbers(), RSA_KEY.public_key().public_numbers()
        )
        self.assertEqual(ec_key.algorithm, "ES256")
        self.assertEqual(
            ec_key.key.public_numbers(), EC_KEY.public_key().public_numbers()
        )

    def test_unusable_keys_skipped(self) -> None:
        """
        Keys multistore cannot or must not verify with are skipped, and do
        not spoil the usable ones.
        """
        private = rsa_jwk(RSA_KEY, "private")
        private["d"] = "AQAB"
        keys = parse_jwks(
            {
                "keys": [
                    rsa_jwk(RSA_KEY, "enc", use="enc"),
                    rsa_jwk(RSA_KEY, "ps", alg="PS256"),
                    rsa_jwk(RSA_KEY, "rs384", alg="RS384"),
                    rsa_jwk(RSA_KEY, "decrypt", key_ops=["encrypt"]),
                    rsa_jwk(RSA_KEY, "ops", key_ops="verify"),
                    rsa_jwk(SHORT_RSA_KEY, "short"),
                    ec_jwk(EC_KEY_384, "p384"),
                    ec_jwk(EC_KEY, "ec-as-rsa", alg="RS256"),
                    {**rsa_jwk(RSA_KEY, "no-n"), "n": None},
                    {**rsa_jwk(RSA_KEY, "bad-n"), "n": "!!!"},
                    {**ec_jwk(EC_KEY, "no-crv"), "crv": None},
                    {**ec_jwk(EC_KEY, "off-curve"), "y": ec_jwk(EC_KEY, "x")["x"]},
                    {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
                    {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AAAA"},
                    {"kty": "AKP", "kid": "future"},
                    {k: v for k, v in rsa_jwk(RSA_KEY, "x").items() if k != "kid"},
                    {**rsa_jwk(RSA_KEY, "x"), "kid": 7},
                    private,
                    "not a key",
                    None,
                    rsa_jwk(RSA_KEY_2, "good"),
                ]
            }
        )
        self.assertEqual(list(keys), ["good"])

    def test_duplicate_kid(self) -> None:
        """
        Several keys under one id are all kept.
        """
        keys = parse_jwks({"keys": [rsa_jwk(RSA_KEY, "k"), ec_jwk(EC_KEY, "k")]})
        self.assertEqual([k.algorithm for k in keys["k"]], ["RS256", "ES256"])

    def test_not_a_key_set(self) -> None:
        """
        A document that is not a key set, or has no usable key, is an error.
        """
        documents: list[object] = [
            None,
            [],
            {},
            {"keys": {}},
            {"keys": []},
            {"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]},
        ]
        for document in documents:
            with self.assertRaises(JwksError, msg=repr(document)):
                parse_jwks(document)

    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "keys",
                            "kty",
                            "kid",
                            "use",
                            "alg",
                            "crv",
                            "n",
                            "e",
                            "x",
                            "y",
                            "d",
                        ]
                    ),
                    children,
                    max_size=6,
                )
            ),
            max_leaves=20,
        )
    )
    def test_arbitrary_documents(self, document: object) -> None:
        """
        Any JSON document gives keys or L{JwksError}, nothing else.
        """
        try:
            keys = parse_jwks(document)
        except JwksError:
            return
        for kid, found in keys.items():
            self.assertTrue(all(isinstance(k, VerificationKey) for k in found), kid)

    @given(
        st.fixed_dictionaries(
            {"kty": st.sampled_from(["RSA", "EC"]), "kid": st.just("k")},
            optional={
                "n": st.text(max_size=8),
                "e": st.sampled_from(["AQAB", "", "AA", "_-_-"]),
                "x": st.text(max_size=8),
                "y": st.text(max_size=8),
                "crv": st.sampled_from(["P-256", "P-384", ""]),
                "alg": st.sampled_from(["RS256", "ES256", "none"]),
            },
        )
    )
    def test_broken_key_material(self, jwk: dict[str, Any]) -> None:
        """
        Broken key material next to a usable key never spoils the set.
        """
        keys = parse_jwks({"keys": [jwk, rsa_jwk(RSA_KEY, "good")]})
        self.assertIn("good", keys)


class JwksCacheFetchTests(SynchronousTestCase):
    """
    L{JwksCache.keys_for} finds keys through the discovery document and
    caches them.
    """

    def test_discovery_then_key_set(self) -> None:
        """
        The discovery document names the key set; its keys are returned by
        id, each for its algorithm.
        """
        cache, issuer, _, _ = make_cache()
        [key] = self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        self.assertEqual(key.kid, "rsa-1")
        self.assertEqual(key.algorithm, "RS256")
        [key] = self.successResultOf(cache.keys_for(ISSUER, "ec-1"))
        self.assertEqual(key.algorithm, "ES256")
        self.assertEqual(issuer.hits, Counter({DISCOVERY: 1, b"/jwks": 1}))

    def test_trailing_slash(self) -> None:
        """
        An issuer written with a trailing slash finds the same document.
        """
        cache, issuer, _, _ = make_cache()
        self.successResultOf(cache.keys_for(ISSUER + "/", "rsa-1"))
        self.assertEqual(issuer.hits[DISCOVERY], 1)

    def test_jwks_uri_elsewhere(self) -> None:
        """
        The key set is fetched from wherever C{jwks_uri} says.
        """
        cache, issuer, _, _ = make_cache()
        issuer.discovery["jwks_uri"] = "https://keys.example/oauth2/certs"
        issuer.bodies[b"/oauth2/certs"] = json.dumps({"keys": issuer.keys}).encode()
        self.successResultOf(cache.keys_for(ISSUER, "ec-1"))
        self.assertEqual(issuer.hits[b"/oauth2/certs"], 1)
        self.assertEqual(issuer.hits[b"/jwks"], 0)

    def test_cached(self) -> None:
        """
        Within its lifetime (15 minutes when the response does not say), the
        key set is not fetched again.
        """
        cache, issuer, clock, _ = make_cache()
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        clock.advance(DEFAULT_LIFETIME - 1)
        self.successResultOf(cache.keys_for(ISSUER, "ec-1"))
        self.assertEqual(issuer.hits, Counter({DISCOVERY: 1, b"/jwks": 1}))
        clock.advance(1)
        self.successResultOf(cache.keys_for(ISSUER, "ec-1"))
        self.assertEqual(issuer.hits, Counter({DISCOVERY: 2, b"/jwks": 2}))

    def test_cache_control_honoured(self) -> None:
        """
        The key set's C{Cache-Control: max-age} sets its lifetime.
        """
        cache, issuer, clock, _ = make_cache()
        issuer.headers[b"/jwks"] = {b"cache-control": b"public, max-age=120"}
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        clock.advance(119)
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        self.assertEqual(issuer.hits[b"/jwks"], 1)
        clock.advance(1)
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        self.assertEqual(issuer.hits[b"/jwks"], 2)

    def test_cache_control_bounded(self) -> None:
        """
        A C{max-age} below a minute keeps the set for a minute; one above a
        day for a day.
        """
        cache, issuer, clock, _ = make_cache()
        issuer.headers[b"/jwks"] = {b"cache-control": b"max-age=1"}
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        clock.advance(59)
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        self.assertEqual(issuer.hits[b"/jwks"], 1)
        clock.advance(1)
        issuer.headers[b"/jwks"] = {b"cache-control": b"max-age=9999999"}
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        self.assertEqual(issuer.hits[b"/jwks"], 2)
        clock.advance(MAX_LIFETIME - 1)
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        self.assertEqual(issuer.hits[b"/jwks"], 2)
        clock.advance(1)
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        self.assertEqual(issuer.hits[b"/jwks"], 3)

    def test_issuers_apart(self) -> None:
        """
        Each issuer has its own entry.
        """
        cache, issuer, _, _ = make_cache()
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        self.successResultOf(cache.keys_for("https://other.example", "rsa-1"))
        self.assertEqual(issuer.hits[DISCOVERY], 2)

    def test_requests(self) -> None:
        """
        Requests ask for JSON, carry the timeout on the cache's clock, do
        not follow redirects and are not buffered by treq.
        """
        calls: list[tuple[str, dict[str, Any]]] = []

        class Recording(RecordingHTTP):
            def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
                calls.append((url, kwargs))
                return super().get(url, **kwargs)

        clock = Clock()
        cache = JwksCache(clock, Recording(), timeout=2.5)
        self.failureResultOf(cache.keys_for(ISSUER, "k"), JwksError)
        [(url, kwargs)] = calls
        self.assertEqual(url, ISSUER + "/.well-known/openid-configuration")
        self.assertEqual(kwargs["timeout"], 2.5)
        self.assertIs(kwargs["reactor"], clock)
        self.assertIs(kwargs["allow_redirects"], False)
        self.assertIs(kwargs["unbuffered"], True)
        self.assertEqual(kwargs["headers"], {"Accept": ["application/json"]})


class JwksCacheRefetchTests(SynchronousTestCase):
    """
    An unknown key id causes a refetch, at a bounded rate.
    """

    def test_rotation(self) -> None:
        """
        A key the issuer starts using after the set was cached is found by
        refetching, without waiting for the cached set to expire.
        """
        cache, issuer, clock, _ = make_cache()
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        clock.advance(31)
        issuer.keys = [rsa_jwk(RSA_KEY_2, "rsa-2")]
        [key] = self.successResultOf(cache.keys_for(ISSUER, "rsa-2"))
        self.assertEqual(
            key.key.public_numbers(), RSA_KEY_2.public_key().public_numbers()
        )
        self.assertEqual(issuer.hits[b"/jwks"], 2)
        # The refreshed set replaces the old one.
        self.failureResultOf(cache.keys_for(ISSUER, "rsa-1"), UnknownKey)

    def test_refetch_bounded(self) -> None:
        """
        Unknown key ids cause at most one refetch per C{refetch_interval};
        the others fail at once with L{UnknownKey}.
        """
        cache, issuer, clock, _ = make_cache(refetch_interval=30)
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        # The first fetch counts: no refetch within 30 s of it.
        self.failureResultOf(cache.keys_for(ISSUER, "nope-0"), UnknownKey)
        self.assertEqual(issuer.hits[b"/jwks"], 1)
        clock.advance(30)
        self.failureResultOf(cache.keys_for(ISSUER, "nope-1"), UnknownKey)
        self.assertEqual(issuer.hits[b"/jwks"], 2)
        for n in range(100):
            clock.advance(0.25)
            self.failureResultOf(cache.keys_for(ISSUER, f"nope-{n}"), UnknownKey)
        self.assertEqual(issuer.hits[b"/jwks"], 2)
        clock.advance(5)
        self.failureResultOf(cache.keys_for(ISSUER, "nope-x"), UnknownKey)
        self.assertEqual(issuer.hits[b"/jwks"], 3)
        # Known keys are still served from the cache meanwhile.
        self.successResultOf(cache.keys_for(ISSUER, "ec-1"))
        self.assertEqual(issuer.hits[b"/jwks"], 3)

    def test_refetch_failure_keeps_cached_set(self) -> None:
        """
        If a refetch fails, the keys already cached keep working until
        their set expires.
        """
        cache, issuer, clock, _ = make_cache()
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        clock.advance(31)
        issuer.status[b"/jwks"] = 503
        self.failureResultOf(cache.keys_for(ISSUER, "rsa-2"), JwksError)
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        clock.advance(DEFAULT_LIFETIME)
        self.failureResultOf(cache.keys_for(ISSUER, "rsa-1"), JwksError)


class JwksCacheSingleFlightTests(SynchronousTestCase):
    """
    Concurrent requests for one issuer share one fetch.
    """

    def test_shared(self) -> None:
        """
        Calls made while a fetch is under way wait for it, whatever key id
        they ask for, instead of starting their own.
        """
        cache, issuer, _, stub = make_cache()
        issuer.hold = True
        first = cache.keys_for(ISSUER, "rsa-1")
        second = cache.keys_for(ISSUER, "ec-1")
        unknown = cache.keys_for(ISSUER, "nope")
        self.assertNoResult(first)
        self.assertNoResult(second)
        self.assertEqual(issuer.hits, Counter({DISCOVERY: 1}))
        issuer.release()
        stub.flush()
        issuer.release()
        stub.flush()
        self.assertEqual(self.successResultOf(first)[0].kid, "rsa-1")
        self.assertEqual(self.successResultOf(second)[0].kid, "ec-1")
        self.failureResultOf(unknown, UnknownKey)
        self.assertEqual(issuer.hits, Counter({DISCOVERY: 1, b"/jwks": 1}))

    def test_shared_failure(self) -> None:
        """
        A shared fetch that fails fails every waiter.
        """
        cache, issuer, _, stub = make_cache()
        issuer.hold = True
        issuer.status[DISCOVERY] = 500
        waiters = [cache.keys_for(ISSUER, "rsa-1") for _ in range(3)]
        issuer.release()
        stub.flush()
        for waiter in waiters:
            self.failureResultOf(waiter, JwksError)
        self.assertEqual(issuer.hits[DISCOVERY], 1)

    def test_cancel_one_waiter(self) -> None:
        """
        Cancelling one waiter leaves the fetch and the other waiters alone.
        """
        cache, issuer, _, stub = make_cache()
        issuer.hold = True
        first = cache.keys_for(ISSUER, "rsa-1")
        second = cache.keys_for(ISSUER, "rsa-1")
        first.cancel()
        self.failureResultOf(first, CancelledError)
        issuer.release()
        stub.flush()
        issuer.release()
        stub.flush()
        self.successResultOf(second)

    def test_cancel_only_waiter(self) -> None:
        """
        A fetch whose only waiter gave up still completes and fills the
        cache.
        """
        cache, issuer, _, stub = make_cache()
        issuer.hold = True
        waiter = cache.keys_for(ISSUER, "rsa-1")
        waiter.cancel()
        self.failureResultOf(waiter, CancelledError)
        issuer.release()
        stub.flush()
        issuer.release()
        stub.flush()
        issuer.hold = False
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        self.assertEqual(issuer.hits, Counter({DISCOVERY: 1, b"/jwks": 1}))


class JwksCacheFailureTests(SynchronousTestCase):
    """
    Failed fetches are L{JwksError}s and are not retried for a while.
    """

    def assert_fails(
        self, cache: JwksCache, issuer: str = ISSUER, kid: str = "rsa-1"
    ) -> JwksError:
        """
        Assert that asking for ``kid`` fails with a L{JwksError} (and not an
        L{UnknownKey}).
        """
        failure = self.failureResultOf(cache.keys_for(issuer, kid), JwksError)
        self.assertNotIsInstance(failure.value, UnknownKey)
        return cast(JwksError, failure.value)

    def test_negative_cache(self) -> None:
        """
        After a failure the issuer is not asked again for C{failure_ttl}
        seconds; then it is, and a success clears the failure.
        """
        cache, issuer, clock, _ = make_cache(failure_ttl=30)
        issuer.status[DISCOVERY] = 500
        self.assert_fails(cache)
        self.assertEqual(issuer.hits[DISCOVERY], 1)
        del issuer.status[DISCOVERY]
        clock.advance(29)
        error = self.assert_fails(cache)
        self.assertIn("recently", str(error))
        self.assertEqual(issuer.hits[DISCOVERY], 1)
        clock.advance(1)
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))
        self.assertEqual(issuer.hits[DISCOVERY], 2)

    def test_negative_cache_per_issuer(self) -> None:
        """
        One issuer's failure does not stop another's fetch.
        """
        cache, issuer, _, _ = make_cache()
        issuer.status[DISCOVERY] = 500
        self.assert_fails(cache)
        del issuer.status[DISCOVERY]
        self.successResultOf(cache.keys_for("https://other.example", "rsa-1"))

    def test_statuses(self) -> None:
        """
        Any answer but 200, to either request, is a failure (redirects are
        not followed).
        """
        for path, status in (
            (DISCOVERY, 404),
            (DISCOVERY, 302),
            (DISCOVERY, 204),
            (b"/jwks", 500),
            (b"/jwks", 301),
        ):
            cache, issuer, _, _ = make_cache()
            issuer.status[path] = status
            if status in (301, 302):
                issuer.headers[path] = {b"location": b"https://issuer.example/x"}
            error = self.assert_fails(cache)
            self.assertIn(str(status), str(error))
            self.assertEqual(issuer.hits[b"/x"], 0)

    def test_bad_documents(self) -> None:
        """
        A discovery document or key set that is not JSON, not an object, or
        lacks what is needed is a failure.
        """
        for path, body in (
            (DISCOVERY, b"<html>"),
            (DISCOVERY, b"\xff\xfe"),
            (DISCOVERY, b"[]"),
            (DISCOVERY, b"{}"),
            (DISCOVERY, b'{"jwks_uri": 5}'),
            (DISCOVERY, b'{"jwks_uri": NaN}'),
            (DISCOVERY, b"[" * 100000),
            (b"/jwks", b"nope"),
            (b"/jwks", b'{"keys": "x"}'),
            (b"/jwks", b'{"keys": []}'),
            (b"/jwks", b'{"keys": [{"kty": "oct", "kid": "rsa-1", "k": "AA"}]}'),
        ):
            cache, issuer, _, _ = make_cache()
            issuer.bodies[path] = body
            self.assert_fails(cache)

    def test_jwks_uri_scheme(self) -> None:
        """
        A C{jwks_uri} over plain HTTP to a host that is not loopback is
        refused, without fetching it.
        """
        cache, issuer, _, _ = make_cache()
        issuer.discovery["jwks_uri"] = "http://issuer.example/jwks"
        error = self.assert_fails(cache)
        self.assertIn("jwks_uri", str(error))
        self.assertEqual(issuer.hits[b"/jwks"], 0)

    def test_oversized_with_length(self) -> None:
        """
        A body announced as larger than 1 MiB is refused.
        """
        cache, issuer, _, _ = make_cache()
        issuer.bodies[b"/jwks"] = b" " * (MAX_BODY + 1)
        error = self.assert_fails(cache)
        self.assertIn("too large", str(error))

    def test_oversized_announced(self) -> None:
        """
        A body announced as too large is refused at once, without waiting
        for it.
        """

        class Announcing(FakeIssuer):
            def render_GET(self, request: Request) -> bytes | int:
                if request.path == DISCOVERY:
                    return super().render_GET(request)
                request.setHeader(b"content-length", b"%d" % (MAX_BODY + 1))
                request.write(b"{")
                return NOT_DONE_YET

        cache, _, _, _ = make_cache(Announcing())
        error = self.assert_fails(cache)
        self.assertIn("too large", str(error))

    def test_oversized_chunked(self) -> None:
        """
        A body without a length that grows beyond the limit is cut off.
        """

        class Chunked(FakeIssuer):
            def render_GET(self, request: Request) -> bytes | int:
                self.hits[request.path] += 1
                if request.path == DISCOVERY:
                    return super()._answer(request)
                for _ in range(20):
                    request.write(b" " * 1000)
                request.write(json.dumps({"keys": self.keys}).encode())
                request.finish()
                return NOT_DONE_YET

        cache, _, _, _ = make_cache(Chunked(), max_body=10000)
        error = self.assert_fails(cache)
        self.assertIn("too large", str(error))
        # The same body within the limit is fine.
        cache, _, _, _ = make_cache(Chunked(), max_body=40000)
        self.successResultOf(cache.keys_for(ISSUER, "rsa-1"))

    def test_connection_refused(self) -> None:
        """
        An issuer that cannot be reached is a failure, remembered.
        """
        http = RecordingHTTP()
        clock = Clock()
        cache = JwksCache(clock, http)
        self.assert_fails(cache)
        self.assert_fails(cache)
        self.assertEqual(len(http.urls), 1)

    def test_timeout_before_headers(self) -> None:
        """
        An issuer that does not answer within the timeout is a failure.
        """
        cache, issuer, clock, _ = make_cache(timeout=5)
        issuer.hold = True
        result = cache.keys_for(ISSUER, "rsa-1")
        clock.advance(4.9)
        self.assertNoResult(result)
        clock.advance(0.1)
        failure = self.failureResultOf(result, JwksError)
        self.assertIn("timed out", str(failure.value))

    def test_timeout_in_body(self) -> None:
        """
        A body that stops arriving fails after the timeout.
        """
        cache, issuer, clock, stub = make_cache(timeout=5)
        issuer.stall = True
        result = cache.keys_for(ISSUER, "rsa-1")
        stub.flush()
        self.assertNoResult(result)
        clock.advance(5)
        failure = self.failureResultOf(result, JwksError)
        self.assertIn("timed out", str(failure.value))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_failure_logged(self) -> None:
        """
        A failure is logged with the issuer and what failed.
        """
        events: list[dict[str, Any]] = []
        self.patch(JwksCache, "log", Logger(observer=cast(ILogObserver, events.append)))
        cache, issuer, _, _ = make_cache()
        issuer.status[DISCOVERY] = 500
        self.assert_fails(cache)
        [event] = [e for e in events if e["log_level"].name == "warn"]
        self.assertEqual(event["issuer"], ISSUER)
        self.assertIn("500", event["reason"])


class JwksCacheSchemeTests(SynchronousTestCase):
    """
    Issuers must be HTTPS, except loopback ones and those configured as
    insecure.
    """

    def test_plain_http_no_network(self) -> None:
        """
        A plain-HTTP issuer that is not loopback fails without any request.
        """
        http = RecordingHTTP()
        cache = JwksCache(Clock(), http)
        failure = self.failureResultOf(
            cache.keys_for("http://issuer.example", "k"), JwksError
        )
        self.assertIn("https", str(failure.value))
        self.assertEqual(http.urls, [])

    def test_loopback(self) -> None:
        """
        Loopback issuers may use plain HTTP (so tests can run an issuer).
        """
        for issuer_url in ("http://127.0.0.1:8080", "http://localhost"):
            cache, _, _, _ = make_cache(FakeIssuer(issuer_url))
            self.successResultOf(cache.keys_for(issuer_url, "rsa-1"))

    def test_loopback_ipv6(self) -> None:
        """
        An IPv6 loopback issuer is asked too. (treq cannot fetch URLs with
        IPv6 literals, a hyperlink bug, so this only proves the request is
        attempted.)
        """
        http = RecordingHTTP()
        cache = JwksCache(Clock(), http)
        self.failureResultOf(cache.keys_for("http://[::1]:8080", "k"), JwksError)
        self.assertEqual(
            http.urls, ["http://[::1]:8080/.well-known/openid-configuration"]
        )

    def test_insecure_issuer(self) -> None:
        """
        An issuer named in C{insecure_issuers} may use plain HTTP for its
        discovery document and its key set.
        """
        cache, issuer, _, _ = make_cache(
            FakeIssuer("http://issuer.internal"),
            insecure_issuers={"http://issuer.internal"},
        )
        self.successResultOf(cache.keys_for("http://issuer.internal", "rsa-1"))
        self.assertEqual(issuer.hits[b"/jwks"], 1)
        http = RecordingHTTP()
        cache = JwksCache(Clock(), http, insecure_issuers={"http://issuer.internal"})
        self.failureResultOf(cache.keys_for("http://other.internal", "k"), JwksError)
        self.assertEqual(http.urls, [])

    def test_https_issuer_http_keys(self) -> None:
        """
        An HTTPS issuer whose C{jwks_uri} is plain HTTP is refused even when
        another issuer is allowed plain HTTP.
        """
        cache, issuer, _, _ = make_cache(insecure_issuers={"http://issuer.internal"})
        issuer.discovery["jwks_uri"] = "http://issuer.internal/jwks"
        self.failureResultOf(cache.keys_for(ISSUER, "rsa-1"), JwksError)
        self.assertEqual(issuer.hits[b"/jwks"], 0)
