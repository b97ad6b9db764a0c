"""
Tests for L{multistore.oidc}: the provider's tokens and documents, its
configuration, the token exchanges (against a scripted forwarder), the
credential cache, and the middleware that injects credentials.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from multistore.config import BucketConfig, OidcProviderConfig, SigningKey
from multistore.configfile import config_from_mapping
from multistore.configtable import ConfigError
from multistore.interfaces import IObjectStore, IStoreFactory
from multistore.oidc import backend_credentials, provider_documents
from multistore.oidc.cache import CredentialCache, Credentials
from multistore.oidc.exchanges import (
    aws_credentials,
    azure_credentials,
    gcp_credentials,
    subject_for,
)
from multistore.oidc.federation import BackendCredentials
from multistore.oidc.provider import OidcProvider
from multistore.plugins import builtin_middleware, builtin_routes
from multistore.s3.errors import S3Error
from multistore.testing import (
    HARNESS_EPOCH,
    MemoryStoreFactory,
    ScriptedForwarder,
    SiteHarness,
    respond,
)


def pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


RSA_KEY = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
EC_KEY = pem(ec.generate_private_key(ec.SECP256R1()))
ISSUER = "https://gateway.example.org"


def provider(clock: MemoryReactorClock | None = None) -> OidcProvider:
    if clock is None:
        clock = MemoryReactorClock()
        clock.advance(HARNESS_EPOCH.timestamp())
    return OidcProvider.from_config(
        OidcProviderConfig(
            ISSUER, (SigningKey("new", EC_KEY), SigningKey("old", RSA_KEY)), 300
        ),
        clock,
    )


def verify(token: str, jwks: dict[str, Any], audience: str) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    key = jwt.PyJWK(jwk).key
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[jwk["alg"]],
        audience=audience,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    return claims


class ProviderTests(SynchronousTestCase):
    """
    Tokens, and the documents that let a relying party check them.
    """

    def test_mint(self) -> None:
        """
        The first key signs; the token names issuer, subject, audience and
        times, and checks against the published key set.
        """
        p = provider()
        token = p.mint("multistore:alice", "sts.amazonaws.com")
        self.assertEqual(jwt.get_unverified_header(token)["kid"], "new")
        claims = verify(token, p.jwks(), "sts.amazonaws.com")
        now = int(HARNESS_EPOCH.timestamp())
        self.assertEqual(
            {k: claims[k] for k in ("iss", "sub", "aud", "iat", "nbf", "exp")},
            {
                "iss": ISSUER,
                "sub": "multistore:alice",
                "aud": "sts.amazonaws.com",
                "iat": now,
                "nbf": now,
                "exp": now + 300,
            },
        )
        self.assertEqual(len(claims["jti"]), 32)
        self.assertNotEqual(
            claims["jti"], verify(p.mint("x", "y"), p.jwks(), "y")["jti"]
        )

    def test_jwks(self) -> None:
        """
        Every key is published with its id, algorithm and use, and no
        private part.
        """
        keys = provider().jwks()["keys"]
        self.assertEqual(
            [(k["kid"], k["alg"], k["use"], k["kty"]) for k in keys],
            [("new", "ES256", "sig", "EC"), ("old", "RS256", "sig", "RSA")],
        )
        self.assertFalse(any("d" in k for k in keys))

    def test_documents_served(self) -> None:
        """
        GET and HEAD of the two documents answer with JSON and
        C{Cache-Control}; other methods on their paths go on to S3.
        """
        config = config_from_mapping(
            {
                "oidc_provider": {
                    "issuer": ISSUER,
                    "keys": [{"id": "new", "key": EC_KEY}],
                }
            }
        )
        clock = MemoryReactorClock()
        (route,) = [
            provider_documents(dict(p.options), clock) for p in builtin_routes(config)
        ]
        harness = SiteHarness.from_config(config, clock=clock, routes=[route])
        discovery = harness.request("GET", "/.well-known/openid-configuration")
        self.assertEqual(discovery.status, 200)
        self.assertEqual(discovery.headers.get("content-type"), "application/json")
        self.assertEqual(discovery.headers.get("cache-control"), "public, max-age=300")
        document = json.loads(discovery.body)
        self.assertEqual(document["issuer"], ISSUER)
        self.assertEqual(document["jwks_uri"], ISSUER + "/.well-known/jwks.json")
        self.assertEqual(document["id_token_signing_alg_values_supported"], ["ES256"])
        keys = json.loads(harness.request("GET", "/.well-known/jwks.json").body)
        self.assertEqual([k["kid"] for k in keys["keys"]], ["new"])
        head = harness.request("HEAD", "/.well-known/jwks.json")
        self.assertEqual((head.status, head.body), (200, b""))
        put = harness.request("PUT", "/.well-known/jwks.json", body=b"x")
        self.assertIn(b"<Error>", put.body)


class SettingsTests(SynchronousTestCase):
    """
    C{[oidc_provider]} and federated buckets are checked at load.
    """

    def problems(self, document: dict[str, Any]) -> str:
        with self.assertRaises(ConfigError) as raised:
            config_from_mapping(document)
        return raised.exception.explain()

    def test_keys(self) -> None:
        small = pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
        other_curve = pem(ec.generate_private_key(ec.SECP384R1()))
        text = self.problems(
            {
                "oidc_provider": {
                    "issuer": "gateway",
                    "keys": [
                        {"id": "a", "key": "not a key"},
                        {"id": "b", "key": small},
                        {"id": "c", "key": other_curve},
                    ],
                }
            }
        )
        self.assertIn("field 'issuer': must be an http:// or https:// URL", text)
        self.assertIn("#1 (id = 'a'), field 'key': not a PEM private key", text)
        self.assertIn("at least 2048 bits", text)
        self.assertIn("P-256", text)
        self.assertIn(
            "at least one [[oidc_provider.keys]]",
            self.problems({"oidc_provider": {"issuer": ISSUER}}),
        )

    def test_environment(self) -> None:
        """
        The Rust system's C{OIDC_PROVIDER_KEY} and C{OIDC_PROVIDER_ISSUER}
        give one key, C{proxy-key-1}.
        """
        self.patch_environ(OIDC_PROVIDER_KEY=RSA_KEY, OIDC_PROVIDER_ISSUER=ISSUER + "/")
        config = config_from_mapping({}).oidc_provider
        assert config is not None
        self.assertEqual((config.issuer, config.keys[0].id), (ISSUER, "proxy-key-1"))
        self.patch_environ(OIDC_PROVIDER_KEY="junk", OIDC_PROVIDER_ISSUER=ISSUER)
        self.assertIn("environment, OIDC_PROVIDER_KEY", self.problems({}))

    def patch_environ(self, **values: str) -> None:
        import os

        for name, value in values.items():
            self.patch(os, "environ", {**os.environ, name: value})

    def test_federated_buckets(self) -> None:
        provider_table = {"issuer": ISSUER, "keys": [{"id": "k", "key": EC_KEY}]}

        def bucket(kind: str, **options: str) -> str:
            return self.problems(
                {
                    "oidc_provider": provider_table,
                    "buckets": [
                        {
                            "name": "b",
                            "backend_type": kind,
                            "backend_options": {"auth_type": "oidc", **options},
                        }
                    ],
                }
            )

        self.assertIn(
            "backend_options.oidc_role_arn': required with auth_type = 'oidc'",
            bucket("s3", bucket_name="x"),
        )
        self.assertIn(
            "takes no static credentials",
            bucket(
                "s3",
                bucket_name="x",
                oidc_role_arn="arn",
                access_key_id="a",
                secret_access_key="b",
            ),
        )
        text = bucket("azure", account_name="a", container_name="c")
        self.assertIn("tenant_id", text)
        self.assertIn("client_id", text)
        self.assertIn("workload_identity_provider", bucket("gcs", bucket_name="x"))
        config = config_from_mapping(
            {
                "oidc_provider": provider_table,
                "buckets": [
                    {
                        "name": "b",
                        "backend_type": "s3",
                        "backend_options": {
                            "bucket_name": "x",
                            "auth_type": "oidc",
                            "oidc_role_arn": "arn:aws:iam::1:role/r",
                            "oidc_subject": "multistore:{principal}",
                        },
                    }
                ],
            }
        )
        self.assertEqual(
            [p.use for p in builtin_middleware(config)],
            ["multistore.oidc:backend_credentials"],
        )


def aws_bucket(**options: str) -> BucketConfig:
    return BucketConfig(
        name="data",
        backend_type="s3",
        backend_options={
            "bucket_name": "real",
            "region": "eu-west-1",
            "auth_type": "oidc",
            "oidc_role_arn": "arn:aws:iam::123456789012:role/gateway",
            **options,
        },
    )


STS_OK = b"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult><Credentials>
<AccessKeyId>ASIATEMP</AccessKeyId><SecretAccessKey>secret</SecretAccessKey>
<SessionToken>session</SessionToken><Expiration>2025-01-01T01:00:00Z</Expiration>
</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"""

STS_DENIED = b"""<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message></Error>
</ErrorResponse>"""


class ExchangeTests(SynchronousTestCase):
    """
    Each token service is asked as it documents, and its answers mapped.
    """

    def run_exchange(self, coroutine: Any) -> Any:
        return self.successResultOf(Deferred.fromCoroutine(coroutine))

    def error_of(self, coroutine: Any) -> S3Error:
        failure = self.failureResultOf(Deferred.fromCoroutine(coroutine), S3Error)
        error = failure.value
        assert isinstance(error, S3Error)
        return error

    def test_aws(self) -> None:
        """
        C{AssumeRoleWithWebIdentity} at the region's endpoint, with a token
        for the templated subject; the credentials come back with their
        expiry.
        """
        p = provider()
        forwarder = ScriptedForwarder(respond(200, body=STS_OK))
        bucket = aws_bucket(oidc_subject="multistore:{principal}")
        credentials = self.run_exchange(
            aws_credentials(forwarder, p, bucket, "alice", 5)
        )
        request = forwarder.request
        self.assertEqual(request.url, "https://sts.eu-west-1.amazonaws.com")
        form = {
            k: v[0] for k, v in parse_qs(forwarder.exchanges[0].body.decode()).items()
        }
        self.assertEqual(form["Action"], "AssumeRoleWithWebIdentity")
        self.assertEqual(form["RoleArn"], "arn:aws:iam::123456789012:role/gateway")
        self.assertEqual(form["RoleSessionName"], "multistore-alice")
        claims = verify(form["WebIdentityToken"], p.jwks(), "sts.amazonaws.com")
        self.assertEqual(claims["sub"], "multistore:alice")
        self.assertEqual(
            (
                credentials.access_key_id,
                credentials.secret_access_key,
                credentials.session_token,
            ),
            ("ASIATEMP", "secret", "session"),
        )
        self.assertEqual(credentials.expires, HARNESS_EPOCH.timestamp() + 3600)

    def test_aws_errors(self) -> None:
        """
        A refusal is AccessDenied; another answer 502
        BackendAuthenticationFailed; no answer 503; nothing of the token
        service's message reaches the client.
        """
        p = provider()
        denied = self.error_of(
            aws_credentials(
                ScriptedForwarder(respond(403, body=STS_DENIED)),
                p,
                aws_bucket(),
                None,
                5,
            )
        )
        self.assertEqual((denied.status, denied.code), (403, "AccessDenied"))
        self.assertNotIn("no", denied.message.split())
        broken = self.error_of(
            aws_credentials(
                ScriptedForwarder(respond(500, body=b"<x/>")), p, aws_bucket(), None, 5
            )
        )
        self.assertEqual(
            (broken.status, broken.code), (502, "BackendAuthenticationFailed")
        )
        down = self.error_of(
            aws_credentials(
                ScriptedForwarder(S3Error("GatewayTimeout")), p, aws_bucket(), None, 5
            )
        )
        self.assertEqual((down.status, down.code), (503, "ServiceUnavailable"))
        self.flushLoggedErrors()

    def test_azure(self) -> None:
        """
        A client-credentials grant with the token as client assertion; an
        C{invalid_client} answer is a refusal.
        """
        p = provider()
        bucket = BucketConfig(
            name="data",
            backend_type="azure",
            backend_options={"auth_type": "oidc", "tenant_id": "t1", "client_id": "c1"},
        )
        forwarder = ScriptedForwarder(
            respond(
                200,
                body=b'{"token_type":"Bearer","expires_in":3599,"access_token":"AT"}',
            ),
            respond(
                401,
                body=b'{"error":"invalid_client","error_description":"AADSTS700213"}',
            ),
        )
        credentials = self.run_exchange(
            azure_credentials(forwarder, p, bucket, None, 5)
        )
        self.assertEqual(credentials.bearer_token, "AT")
        self.assertEqual(credentials.lifetime, 3599)
        self.assertEqual(
            forwarder.request.url,
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token",
        )
        form = {
            k: v[0] for k, v in parse_qs(forwarder.exchanges[0].body.decode()).items()
        }
        self.assertEqual(form["grant_type"], "client_credentials")
        self.assertEqual(form["scope"], "https://storage.azure.com/.default")
        verify(form["client_assertion"], p.jwks(), "api://AzureADTokenExchange")
        refused = self.error_of(azure_credentials(forwarder, p, bucket, None, 5))
        self.assertEqual(refused.code, "AccessDenied")

    def test_gcp(self) -> None:
        """
        STS token exchange, then C{generateAccessToken} for the service
        account with the federated token.
        """
        p = provider()
        pool = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x"
        bucket = BucketConfig(
            name="data",
            backend_type="gcs",
            backend_options={
                "bucket_name": "real",
                "auth_type": "oidc",
                "workload_identity_provider": pool,
                "service_account": "sa@proj.iam.gserviceaccount.com",
                "sts_endpoint": "http://127.0.0.1:1",
                "iam_endpoint": "http://127.0.0.1:2",
            },
        )
        forwarder = ScriptedForwarder(
            respond(
                200,
                body=b'{"access_token":"FED","token_type":"Bearer","expires_in":3600}',
            ),
            respond(
                200, body=b'{"accessToken":"SA","expireTime":"2025-01-01T00:30:00Z"}'
            ),
        )
        credentials = self.run_exchange(gcp_credentials(forwarder, p, bucket, None, 5))
        first, second = forwarder.requests
        self.assertEqual(first.url, "http://127.0.0.1:1/v1/token")
        form = {
            k: v[0] for k, v in parse_qs(forwarder.exchanges[0].body.decode()).items()
        }
        self.assertEqual(form["audience"], pool)
        verify(form["subject_token"], p.jwks(), "https:" + pool)
        self.assertEqual(
            second.url,
            "http://127.0.0.1:2/v1/projects/-/serviceAccounts/sa@proj.iam.gserviceaccount.com:generateAccessToken",
        )
        self.assertEqual(second.headers.get("authorization"), "Bearer FED")
        self.assertEqual(credentials.bearer_token, "SA")
        self.assertEqual(credentials.expires, HARNESS_EPOCH.timestamp() + 1800)

    def test_subject(self) -> None:
        self.assertEqual(subject_for(aws_bucket(), "alice"), "s3-proxy")
        bucket = aws_bucket(oidc_subject="gw:{bucket}:{principal}")
        self.assertEqual(subject_for(bucket, None), "gw:data:anonymous")


class CacheTests(SynchronousTestCase):
    """
    One fetch however many ask; renewal ahead of the end; failures never
    cached as success.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(1000)
        self.cache = CredentialCache(self.clock)
        self.fetches: list[Deferred[Credentials]] = []

    def fetch(self) -> Deferred[Credentials]:
        d: Deferred[Credentials] = Deferred()
        self.fetches.append(d)
        return d

    def creds(self, lifetime: float, token: str = "t") -> Credentials:
        now = self.clock.seconds()
        return Credentials(expires=now + lifetime, obtained=now, bearer_token=token)

    def test_single_flight(self) -> None:
        waiting = [self.cache.get("k", self.fetch) for _ in range(50)]
        self.assertEqual(len(self.fetches), 1)
        self.fetches[0].callback(self.creds(100))
        self.assertEqual({self.successResultOf(w).bearer_token for w in waiting}, {"t"})
        self.assertEqual(
            self.successResultOf(self.cache.get("k", self.fetch)).bearer_token, "t"
        )
        self.assertEqual(len(self.fetches), 1)

    def test_renewal_ahead(self) -> None:
        """
        In the last quarter of their life, one renewal starts and callers
        go on with the credentials they have until it is in.
        """
        self.cache.get("k", self.fetch)
        self.fetches[0].callback(self.creds(100, "first"))
        self.clock.advance(76)
        got = [self.successResultOf(self.cache.get("k", self.fetch)) for _ in range(5)]
        self.assertEqual({g.bearer_token for g in got}, {"first"})
        self.assertEqual(len(self.fetches), 2)
        self.fetches[1].callback(self.creds(100, "second"))
        self.assertEqual(
            self.successResultOf(self.cache.get("k", self.fetch)).bearer_token, "second"
        )

    def test_failure_backoff(self) -> None:
        """
        A failed fetch fails its waiters and is not cached; the next call
        within the back-off gets the same error without a fetch; after it,
        a new fetch.
        """
        waiter = self.cache.get("k", self.fetch)
        self.fetches[0].errback(Failure(S3Error("ServiceUnavailable")))
        self.failureResultOf(waiter, S3Error)
        self.failureResultOf(self.cache.get("k", self.fetch), S3Error)
        self.assertEqual(len(self.fetches), 1)
        self.clock.advance(1)
        pending = self.cache.get("k", self.fetch)
        self.assertEqual(len(self.fetches), 2)
        self.fetches[1].callback(self.creds(100))
        self.successResultOf(pending)
        self.flushLoggedErrors()

    def test_expired_not_used(self) -> None:
        self.cache.get("k", self.fetch)
        self.fetches[0].callback(self.creds(100))
        self.clock.advance(95)
        pending = self.cache.get("k", self.fetch)
        self.assertNoResult(pending)


@implementer(IStoreFactory)
class _Recording:
    """
    A memory store factory that notes the configurations it is given.
    """

    def __init__(self, clock: MemoryReactorClock) -> None:
        self.stores = MemoryStoreFactory(clock=clock)
        self.seen: list[BucketConfig] = []

    def store_for(self, bucket: BucketConfig) -> IObjectStore:
        self.seen.append(bucket)
        return self.stores.store_for(bucket)


class MiddlewareTests(SynchronousTestCase):
    """
    Federated buckets reach their stores with the credentials; others as
    they are.
    """

    def test_injected(self) -> None:
        clock = MemoryReactorClock()
        clock.advance(HARNESS_EPOCH.timestamp())
        forwarder = ScriptedForwarder(respond(200, body=STS_OK))
        middleware = BackendCredentials(provider(clock), forwarder, clock)
        config = config_from_mapping(
            {
                "oidc_provider": {
                    "issuer": ISSUER,
                    "keys": [{"id": "k", "key": EC_KEY}],
                },
                "buckets": [
                    {
                        "name": "fed",
                        "backend_type": "s3",
                        "anonymous_access": True,
                        "backend_options": {
                            "bucket_name": "fed",
                            "auth_type": "oidc",
                            "oidc_role_arn": "arn:aws:iam::1:role/r",
                        },
                    },
                    {
                        "name": "plain",
                        "backend_type": "s3",
                        "anonymous_access": True,
                        "backend_options": {"bucket_name": "plain"},
                    },
                ],
            }
        )
        stores = _Recording(clock)
        harness = SiteHarness.from_config(
            config, stores=stores, clock=clock, middleware=[middleware]
        )
        for _ in range(3):
            harness.request("GET", "/fed/k")
        harness.request("GET", "/plain/k")
        self.assertEqual(len(forwarder.requests), 1)
        fed = [b for b in stores.seen if b.name == "fed"]
        self.assertTrue(fed)
        self.assertTrue(
            all(
                (b.option("access_key_id"), b.option("token"))
                == ("ASIATEMP", "session")
                for b in fed
            )
        )
        plain = [b for b in stores.seen if b.name == "plain"]
        self.assertTrue(plain and all(b.option("access_key_id") is None for b in plain))

    def test_refused(self) -> None:
        """
        A token service's refusal is the client's 403 AccessDenied.
        """
        clock = MemoryReactorClock()
        clock.advance(HARNESS_EPOCH.timestamp())
        forwarder = ScriptedForwarder(respond(403, body=STS_DENIED))
        middleware = BackendCredentials(provider(clock), forwarder, clock)
        config = config_from_mapping(
            {
                "oidc_provider": {
                    "issuer": ISSUER,
                    "keys": [{"id": "k", "key": EC_KEY}],
                },
                "buckets": [
                    {
                        "name": "fed",
                        "backend_type": "s3",
                        "anonymous_access": True,
                        "backend_options": {
                            "bucket_name": "fed",
                            "auth_type": "oidc",
                            "oidc_role_arn": "arn:aws:iam::1:role/r",
                        },
                    }
                ],
            }
        )
        harness = SiteHarness.from_config(config, clock=clock, middleware=[middleware])
        response = harness.request("GET", "/fed/k")
        self.assertEqual(response.status, 403)
        self.assertIn(b"<Code>AccessDenied</Code>", response.body)
        self.assertNotIn(b"no</", response.body)
        self.flushLoggedErrors()

    def test_factory(self) -> None:
        """
        The factories the daemon loads make the route and the middleware.
        """
        options = {"issuer": ISSUER, "keys": [{"id": "k", "key": EC_KEY}]}
        clock = MemoryReactorClock()
        self.assertIsInstance(
            backend_credentials(dict(options), clock), BackendCredentials
        )
        provider_documents(dict(options), clock)
