# mypy: disable-error-code="no-untyped-call"
"""
Tests for L{tests.integration.tokenservices}: the fake Entra and Google
token services verify real JWTs against a real key set, refuse in the real
services' shapes, and issue tokens that the real storage emulators (Azurite
with C{--oauth basic} over HTTPS; fake-gcs-server behind the guard) and the
clouds' own client libraries take.

The issuer here is a plain-HTTP key server on 127.0.0.1 publishing
C{/.well-known/jwks.json} and C{/.well-known/openid-configuration}, as the
multistore daemon will; one test uses L{tests.integration.oidc}'s HTTPS
issuer instead.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import jwt
import pytest
from attrs import define, field
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.emulators import AZURITE_ACCOUNT, GcsServer
from tests.integration.oidc import DISCOVERY_PATH, SigningKey, start_issuer
from tests.integration.servers import LOCALHOST, free_port, unique_bucket_name
from tests.integration.tokenservices import (
    ACCESS_TOKEN_TYPE,
    AZURE_EXCHANGE_AUDIENCE,
    AZURE_STORAGE_AUDIENCE,
    AZURE_STORAGE_SCOPE,
    CLIENT_ASSERTION_TYPE,
    ENTRA_TOKEN,
    GCP_CLOUD_PLATFORM_SCOPE,
    GCP_IAM,
    GCP_STORAGE,
    GCP_STS,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE_GRANT,
    AzuriteOAuth,
    FakeEntra,
    FakeGCP,
    TLSMaterial,
    make_tls,
    start_azurite_oauth,
    start_entra,
    start_gcp,
)

TENANT: Final = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT: Final = "97e0a5b7-d745-40b6-94fe-5f77d35c6e05"
SUBJECT: Final = "multistore:bucket:data"
PROVIDER: Final = (
    "//iam.googleapis.com/projects/123456789012/locations/global/"
    "workloadIdentityPools/multistore/providers/gateway"
)
SERVICE_ACCOUNT: Final = "gateway@multistore-tests.iam.gserviceaccount.com"
JWKS_PATH: Final = "/.well-known/jwks.json"


# --- an issuer like the daemon: plain HTTP on 127.0.0.1 ---------------------


@define
class KeyServer:
    """
    An issuer's key set and discovery document over plain HTTP, and a
    signer of its tokens.

    :ivar url: the issuer URL (C{iss}), C{http://127.0.0.1:PORT}.
    :ivar published: the keys in its key set.
    """

    url: str = ""
    published: list[SigningKey] = field(factory=list)
    _hits: int = 0
    _lock: threading.Lock = field(factory=threading.Lock)

    @property
    def jwks_url(self) -> str:
        """
        :return: where its key set is.
        """
        return self.url + JWKS_PATH

    def document(self, path: str) -> dict[str, Any] | None:
        """
        :return: what it serves at ``path``, counting the request.
        """
        with self._lock:
            self._hits += 1
            if path == JWKS_PATH:
                return {"keys": [key.jwk() for key in self.published]}
            if path == DISCOVERY_PATH:
                return {"issuer": self.url, "jwks_uri": self.jwks_url}
            return None

    def mint(
        self,
        key: SigningKey | None = None,
        *,
        kid: str | None = None,
        alg: str | None = None,
        **overrides: Any,
    ) -> str:
        """
        A token valid for five minutes with C{iss}, C{sub} L{SUBJECT},
        C{iat}, C{nbf}, C{exp}, C{jti} and ``overrides`` (C{None} removes a
        claim); C{aud} must be among the overrides.

        :param key: the key to sign with; the first published if None.
        """
        key = key if key is not None else self.published[0]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": SUBJECT,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": f"jti-{time.monotonic_ns()}",
        }
        claims.update(overrides)
        return jwt.encode(
            {k: v for k, v in claims.items() if v is not None},
            key.private_key,
            algorithm=alg or key.algorithm,
            headers={"kid": kid if kid is not None else key.kid, "typ": "JWT"},
        )


@contextlib.contextmanager
def serve_keys(*keys: SigningKey) -> Iterator[KeyServer]:
    """
    Serve a L{KeyServer} publishing ``keys`` until the block ends.
    """
    issuer = KeyServer(published=list(keys))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            document = issuer.document(self.path.split("?", 1)[0])
            body = json.dumps(document).encode() if document is not None else b""
            self.send_response(200 if document is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
    server.daemon_threads = True
    issuer.url = f"http://{LOCALHOST}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- requests ----------------------------------------------------------------


def post(
    url: str,
    body: bytes,
    *,
    content_type: str = "application/x-www-form-urlencoded",
    headers: Mapping[str, str] | None = None,
    tls: TLSMaterial | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, Any]]:
    """
    POST ``body`` to ``url``.

    :return: the status and the JSON answer.
    """
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type, **(headers or {})}
    )
    context = tls.client_context() if tls is not None else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as r:
            return int(r.status), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), json.loads(e.read() or b"{}")


def assertion_form(assertion: str, **overrides: str) -> bytes:
    """
    The form of Entra's client credentials grant with a federated client
    assertion, for the test application and Azure Storage.
    """
    fields = {
        "grant_type": "client_credentials",
        "client_id": CLIENT,
        "scope": AZURE_STORAGE_SCOPE,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    fields.update(overrides)
    return urllib.parse.urlencode(fields).encode()


def exchange_form(subject_token: str, **overrides: str) -> bytes:
    """
    The form of Google's STS token exchange for the test provider.
    """
    fields = {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "audience": PROVIDER,
        "scope": GCP_CLOUD_PLATFORM_SCOPE,
        "requested_token_type": ACCESS_TOKEN_TYPE,
        "subject_token_type": JWT_TOKEN_TYPE,
        "subject_token": subject_token,
    }
    fields.update(overrides)
    return urllib.parse.urlencode(fields).encode()


def generate(
    gcp: FakeGCP,
    token: str | None,
    *,
    email: str = SERVICE_ACCOUNT,
    document: Mapping[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """
    generateAccessToken for ``email`` with bearer ``token``.
    """
    if document is None:
        document = {"scope": [GCP_CLOUD_PLATFORM_SCOPE], "lifetime": "3600s"}
    return post(
        gcp.impersonation_url(email),
        json.dumps(document).encode(),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"} if token else {},
        tls=gcp.tls,
    )


def unsigned_token(claims: Mapping[str, Any], kid: str) -> str:
    """
    A token with C{alg: none} and no signature.
    """

    def part(document: Mapping[str, Any]) -> str:
        encoded = jwt.utils.base64url_encode(json.dumps(dict(document)).encode())
        return encoded.decode("ascii")

    return f"{part({'alg': 'none', 'kid': kid, 'typ': 'JWT'})}.{part(claims)}."


@define
class EntraCredential:
    """
    An C{azure.core.credentials.TokenCredential} that trades a fresh client
    assertion for a token at the fake Entra, as the Azure SDKs'
    C{ClientAssertionCredential} does.
    """

    entra: FakeEntra
    issuer: KeyServer

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """
        :return: an C{AccessToken} for ``scopes``.
        """
        from azure.core.credentials import AccessToken

        status, answer = post(
            self.entra.token_url,
            assertion_form(
                self.issuer.mint(aud=AZURE_EXCHANGE_AUDIENCE), scope=" ".join(scopes)
            ),
            tls=self.entra.tls,
        )
        assert status == 200, answer
        return AccessToken(
            answer["access_token"], int(time.time()) + answer["expires_in"]
        )


# --- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    """
    TLS material shared by the fake Entra and Azurite.
    """
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def issuer() -> Iterator[KeyServer]:
    """
    The issuer: an RSA key and an EC key published.
    """
    with serve_keys(SigningKey.rsa("rsa-1"), SigningKey.ec("ec-1")) as running:
        yield running


@pytest.fixture(scope="module")
def azurite_oauth(
    tmp_path_factory: pytest.TempPathFactory, tls: TLSMaterial
) -> Iterator[AzuriteOAuth]:
    """
    Azurite over HTTPS with C{--oauth basic}, one container C{federated}.
    """
    with start_azurite_oauth(tmp_path_factory.mktemp("azurite-oauth"), tls=tls) as az:
        az.create_container("federated")
        yield az


@pytest.fixture
def entra(issuer: KeyServer, tls: TLSMaterial) -> Iterator[FakeEntra]:
    """
    A fake Entra over HTTPS trusting the issuer for L{SUBJECT}.
    """
    with start_entra(
        jwks_url=issuer.jwks_url,
        tenant_id=TENANT,
        client_id=CLIENT,
        expected_issuer=issuer.url,
        expected_subject=SUBJECT,
        tls=tls,
    ) as running:
        yield running


@pytest.fixture
def gcp(issuer: KeyServer, fake_gcs: GcsServer) -> Iterator[FakeGCP]:
    """
    Fake Google token services trusting the issuer, guarding fake-gcs-server.
    """
    with start_gcp(
        jwks_url=issuer.jwks_url,
        audience=PROVIDER,
        expected_issuer=issuer.url,
        service_account=SERVICE_ACCOUNT,
        storage_upstream=fake_gcs.endpoint,
    ) as running:
        yield running


# --- Entra and Azurite -------------------------------------------------------------


class EntraTests(SynchronousTestCase):
    """
    The fake Entra verifies client assertions and issues tokens Azurite
    takes.
    """

    @pytest.fixture(autouse=True)
    def _world(
        self,
        entra: FakeEntra,
        issuer: KeyServer,
        azurite_oauth: AzuriteOAuth,
        tmp_path: Path,
    ) -> None:
        self.entra = entra
        self.issuer = issuer
        self.azurite = azurite_oauth
        self.directory = tmp_path

    def exchange(self, assertion: str, **overrides: str) -> tuple[int, dict[str, Any]]:
        return post(
            self.entra.token_url,
            assertion_form(assertion, **overrides),
            tls=self.entra.tls,
        )

    def assert_refused(
        self, answer: tuple[int, dict[str, Any]], status: int, error: str, code: int
    ) -> None:
        """
        ``answer`` is Entra's error ``error`` with AADSTS ``code``, in all its
        fields, and no token was issued.
        """
        got_status, body = answer
        self.assertEqual((got_status, body.get("error")), (status, error), body)
        self.assertEqual(body["error_codes"], [code])
        self.assertTrue(body["error_description"].startswith(f"AADSTS{code}: "))
        self.assertEqual(
            set(body),
            {
                "error",
                "error_description",
                "error_codes",
                "timestamp",
                "trace_id",
                "correlation_id",
                "error_uri",
            },
        )
        self.assertEqual(self.entra.issued(), [])

    def test_token_for_a_good_assertion(self) -> None:
        """
        A good assertion gets Entra's answer: a bearer token for Azure
        Storage that Azurite takes over HTTPS; a request without it is
        refused.
        """
        status, answer = self.exchange(self.issuer.mint(aud=AZURE_EXCHANGE_AUDIENCE))
        self.assertEqual(status, 200, answer)
        self.assertEqual(
            set(answer), {"token_type", "expires_in", "ext_expires_in", "access_token"}
        )
        self.assertEqual((answer["token_type"], answer["expires_in"]), ("Bearer", 3600))
        claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
        self.assertEqual(claims["aud"], AZURE_STORAGE_AUDIENCE)
        self.assertEqual(claims["iss"], f"https://sts.windows.net/{TENANT}/")
        self.assertEqual((claims["tid"], claims["appid"]), (TENANT, CLIENT))
        self.assertEqual(claims["exp"] - claims["iat"], 3600)
        [issued] = self.entra.issued()
        self.assertEqual(
            (issued.token, issued.subject), (answer["access_token"], SUBJECT)
        )
        self.assertEqual(self.entra.hits(ENTRA_TOKEN), 1)
        [request] = self.entra.requests(ENTRA_TOKEN)
        self.assertEqual(request.form()["client_id"], CLIENT)

        listing = "/federated?restype=container&comp=list"
        self.assertEqual(self.azurite.status(listing, answer["access_token"])[0], 200)
        status, body = self.azurite.status(listing)
        self.assertEqual(status, 403)
        self.assertIn(b"<Code>AuthorizationFailure</Code>", body)

    def test_es256_assertion(self) -> None:
        """
        An assertion signed with the issuer's P-256 key (ES256) is taken.
        """
        assertion = self.issuer.mint(
            self.issuer.published[1], aud=AZURE_EXCHANGE_AUDIENCE
        )
        self.assertEqual(self.exchange(assertion)[0], 200)

    def test_azure_sdk_round_trip(self) -> None:
        """
        C{azure-storage-blob}, with a credential that asks the fake Entra,
        writes and reads a blob on Azurite with bearer tokens only.
        """
        service = self.azurite.service(EntraCredential(self.entra, self.issuer))
        blob = service.get_blob_client("federated", "sdk/object.txt")
        blob.upload_blob(b"federated bytes", overwrite=True)
        self.assertEqual(blob.download_blob().readall(), b"federated bytes")
        self.assertGreaterEqual(self.entra.hits(ENTRA_TOKEN), 1)
        self.assertEqual(
            self.entra.requests(ENTRA_TOKEN)[0].form()["scope"], AZURE_STORAGE_SCOPE
        )

    def test_wrong_audience(self) -> None:
        """
        An assertion for another audience: 401 invalid_client (AADSTS700212).
        """
        self.assert_refused(
            self.exchange(self.issuer.mint(aud="api://somewhere-else")),
            401,
            "invalid_client",
            700212,
        )

    def test_wrong_issuer(self) -> None:
        """
        An assertion of another issuer: 401 invalid_client (AADSTS700211).
        """
        assertion = self.issuer.mint(
            aud=AZURE_EXCHANGE_AUDIENCE, iss="http://127.0.0.1:1"
        )
        self.assert_refused(self.exchange(assertion), 401, "invalid_client", 700211)

    def test_wrong_subject(self) -> None:
        """
        An assertion for another subject: 401 invalid_client (AADSTS700213).
        """
        assertion = self.issuer.mint(aud=AZURE_EXCHANGE_AUDIENCE, sub="other")
        self.assert_refused(self.exchange(assertion), 401, "invalid_client", 700213)

    def test_expired(self) -> None:
        """
        An expired assertion: 401 invalid_client (AADSTS700024).
        """
        now = int(time.time())
        assertion = self.issuer.mint(
            aud=AZURE_EXCHANGE_AUDIENCE, iat=now - 600, nbf=now - 600, exp=now - 1
        )
        self.assert_refused(self.exchange(assertion), 401, "invalid_client", 700024)

    def test_not_yet_valid(self) -> None:
        """
        An assertion valid only later: 401 invalid_client (AADSTS700024).
        """
        assertion = self.issuer.mint(
            aud=AZURE_EXCHANGE_AUDIENCE, nbf=int(time.time()) + 120
        )
        self.assert_refused(self.exchange(assertion), 401, "invalid_client", 700024)

    def test_unknown_kid(self) -> None:
        """
        An assertion naming a key the issuer does not publish: 401
        invalid_client (AADSTS7000272).
        """
        assertion = self.issuer.mint(aud=AZURE_EXCHANGE_AUDIENCE, kid="rotated-away")
        self.assert_refused(self.exchange(assertion), 401, "invalid_client", 7000272)

    def test_forged_signature(self) -> None:
        """
        An assertion signed by another key under a published key's id, or
        not signed at all: 401 invalid_client (AADSTS700027).
        """
        forged = self.issuer.mint(
            SigningKey.rsa("rsa-1"), aud=AZURE_EXCHANGE_AUDIENCE, kid="rsa-1"
        )
        self.assert_refused(self.exchange(forged), 401, "invalid_client", 700027)
        now = int(time.time())
        unsigned = unsigned_token(
            {
                "iss": self.issuer.url,
                "sub": SUBJECT,
                "aud": AZURE_EXCHANGE_AUDIENCE,
                "iat": now,
                "exp": now + 60,
            },
            "rsa-1",
        )
        self.assert_refused(self.exchange(unsigned), 401, "invalid_client", 700027)

    def test_request_errors(self) -> None:
        """
        A bad request is refused as Entra does, before the assertion is
        looked at.
        """
        good = self.issuer.mint(aud=AZURE_EXCHANGE_AUDIENCE)
        self.assert_refused(
            post(
                f"{self.entra.url}/other-tenant/oauth2/v2.0/token",
                assertion_form(good),
                tls=self.entra.tls,
            ),
            400,
            "invalid_request",
            90002,
        )
        self.assert_refused(
            self.exchange(good, client_id="someone-else"),
            400,
            "unauthorized_client",
            700016,
        )
        self.assert_refused(
            self.exchange(good, grant_type="password"),
            400,
            "unsupported_grant_type",
            70003,
        )
        self.assert_refused(
            self.exchange(good, scope="https://storage.azure.com/user_impersonation"),
            400,
            "invalid_scope",
            1002012,
        )
        self.assert_refused(
            self.exchange("", client_assertion_type=""), 401, "invalid_client", 7000218
        )
        self.assertEqual(self.entra.verifier.fetches, 0)

    def test_fail_next(self) -> None:
        """
        L{FakeEntra.fail_next} answers the next request with what it is
        given; the one after is served again. Both are counted.
        """
        outage = {
            "error": "temporarily_unavailable",
            "error_description": "AADSTS50196",
        }
        self.entra.fail_next(503, outage, headers=[("Retry-After", "1")])
        assertion = self.issuer.mint(aud=AZURE_EXCHANGE_AUDIENCE)
        self.assertEqual(self.exchange(assertion), (503, outage))
        self.assertEqual(self.exchange(assertion)[0], 200)
        self.assertEqual(self.entra.hits(ENTRA_TOKEN), 2)

    def test_slow(self) -> None:
        """
        L{FakeEntra.slow} delays the answers; a client with a shorter
        timeout gives up. Set back to 0, answers come at once.
        """
        self.entra.slow(2.0)
        assertion = self.issuer.mint(aud=AZURE_EXCHANGE_AUDIENCE)
        with self.assertRaises(TimeoutError):
            post(
                self.entra.token_url,
                assertion_form(assertion),
                tls=self.entra.tls,
                timeout=0.3,
            )
        self.entra.slow(0)
        self.assertEqual(self.exchange(assertion)[0], 200)

    def test_unreachable(self) -> None:
        """
        After L{FakeEntra.stop} connections are refused; after
        L{FakeEntra.start} the same URL works again.
        """
        url = self.entra.token_url
        self.entra.stop()
        assertion = self.issuer.mint(aud=AZURE_EXCHANGE_AUDIENCE)
        with self.assertRaises(urllib.error.URLError) as raised:
            post(url, assertion_form(assertion), tls=self.entra.tls)
        self.assertIsInstance(raised.exception.reason, ConnectionRefusedError)
        self.entra.start()
        self.assertEqual(self.entra.token_url, url)
        self.assertEqual(self.exchange(assertion)[0], 200)


class EntraTokenLifetimeTests(SynchronousTestCase):
    """
    Short-lived tokens, discovery, and key sets over HTTPS or out of reach.
    """

    @pytest.fixture(autouse=True)
    def _world(
        self, issuer: KeyServer, azurite_oauth: AzuriteOAuth, tmp_path: Path
    ) -> None:
        self.issuer = issuer
        self.azurite = azurite_oauth
        self.directory = tmp_path

    def test_short_lived_token_expires_at_azurite(self) -> None:
        """
        With C{token_lifetime=1} (and the key set found through discovery,
        over plain HTTP) the token works, then Azurite refuses it as
        expired, and a new one works again.
        """
        listing = "/federated?restype=container&comp=list"
        with start_entra(
            jwks_url=None,
            tenant_id=TENANT,
            client_id=CLIENT,
            expected_issuer=self.issuer.url,
            token_lifetime=1,
        ) as entra:
            self.assertTrue(entra.token_url.startswith("http://"))
            form = assertion_form(self.issuer.mint(aud=AZURE_EXCHANGE_AUDIENCE))
            status, answer = post(entra.token_url, form)
            self.assertEqual((status, answer["expires_in"]), (200, 1), answer)
            self.assertEqual(
                self.azurite.status(listing, answer["access_token"])[0], 200
            )
            time.sleep(2.1)
            status, body = self.azurite.status(listing, answer["access_token"])
            self.assertEqual(status, 403)
            self.assertIn(b"<Code>AuthenticationFailed</Code>", body)
            status, renewed = post(entra.token_url, form)
            self.assertEqual(status, 200)
            self.assertEqual(
                self.azurite.status(listing, renewed["access_token"])[0], 200
            )
            self.assertEqual(entra.verifier.fetches, 4)

    def test_https_issuer(self) -> None:
        """
        An issuer over HTTPS with its own CA (L{tests.integration.oidc}) is
        found through its discovery document when C{jwks_ca} trusts it.
        """
        with (
            start_issuer(self.directory / "issuer") as https_issuer,
            start_entra(
                jwks_url=None,
                tenant_id=TENANT,
                client_id=CLIENT,
                expected_issuer=https_issuer.url,
                jwks_ca=https_issuer.ca_path,
            ) as entra,
        ):
            assertion = https_issuer.mint(
                https_issuer.claims(aud=AZURE_EXCHANGE_AUDIENCE, sub=SUBJECT)
            )
            self.assertEqual(post(entra.token_url, assertion_form(assertion))[0], 200)
            self.assertEqual(https_issuer.hits(DISCOVERY_PATH), 1)

    def test_key_rotation(self) -> None:
        """
        A key published after the first request signs good assertions at
        once, unless the key set is cached (C{jwks_cache_seconds}): then its
        C{kid} is unknown (AADSTS7000272) until the cache runs out.
        """
        with (
            serve_keys(SigningKey.rsa("old")) as rotating,
            start_entra(
                jwks_url=rotating.jwks_url,
                tenant_id=TENANT,
                client_id=CLIENT,
                expected_issuer=rotating.url,
            ) as fresh,
            start_entra(
                jwks_url=rotating.jwks_url,
                tenant_id=TENANT,
                client_id=CLIENT,
                expected_issuer=rotating.url,
                jwks_cache_seconds=60,
            ) as caching,
        ):
            old = assertion_form(rotating.mint(aud=AZURE_EXCHANGE_AUDIENCE))
            self.assertEqual(post(fresh.token_url, old)[0], 200)
            self.assertEqual(post(caching.token_url, old)[0], 200)
            new_key = SigningKey.ec("new")
            rotating.published.append(new_key)
            new = assertion_form(rotating.mint(new_key, aud=AZURE_EXCHANGE_AUDIENCE))
            self.assertEqual(post(fresh.token_url, new)[0], 200)
            status, answer = post(caching.token_url, new)
            self.assertEqual((status, answer["error_codes"]), (401, [7000272]))
            self.assertEqual((fresh.verifier.fetches, caching.verifier.fetches), (2, 1))

    def test_keys_unavailable(self) -> None:
        """
        When the key set cannot be fetched: 400 invalid_request
        (AADSTS50166).
        """
        with start_entra(
            jwks_url=f"http://{LOCALHOST}:{free_port()}{JWKS_PATH}",
            tenant_id=TENANT,
            client_id=CLIENT,
            expected_issuer=self.issuer.url,
        ) as entra:
            status, answer = post(
                entra.token_url,
                assertion_form(self.issuer.mint(aud=AZURE_EXCHANGE_AUDIENCE)),
            )
            self.assertEqual((status, answer["error"]), (400, "invalid_request"))
            self.assertEqual(answer["error_codes"], [50166])

    def test_azurite_checks_claims_not_signatures(self) -> None:
        """
        What Azurite's C{--oauth basic} takes: the right C{aud} (Azure
        Storage, or this account's blob host) and an C{sts.windows.net}
        C{iss} within C{nbf}..C{exp}; it never checks the signature.
        """
        listing = "/federated?restype=container&comp=list"
        with start_entra(
            jwks_url=self.issuer.jwks_url,
            tenant_id=TENANT,
            client_id=CLIENT,
            expected_issuer=self.issuer.url,
        ) as entra:
            account_host = f"https://{AZURITE_ACCOUNT}.blob.core.windows.net"
            taken = {
                "storage": entra.mint_access_token(),
                "storage with slash": entra.mint_access_token(
                    aud=AZURE_STORAGE_AUDIENCE + "/"
                ),
                "account host": entra.mint_access_token(aud=account_host),
                "unsigned": unsigned_token(
                    jwt.decode(
                        entra.mint_access_token(), options={"verify_signature": False}
                    ),
                    "none",
                ),
            }
            refused = {
                "other audience": entra.mint_access_token(
                    aud="https://management.azure.com"
                ),
                "other account": entra.mint_access_token(
                    aud="https://someoneelse.blob.core.windows.net"
                ),
                "other issuer": entra.mint_access_token(
                    iss=f"https://login.microsoftonline.com/{TENANT}/v2.0"
                ),
                "expired": entra.mint_access_token(lifetime=-1),
                "no nbf": entra.mint_access_token(nbf=None),
                "not a JWT": "opaque-token",
            }
        self.assertEqual(
            {
                name: self.azurite.status(listing, token)[0]
                for name, token in taken.items()
            },
            dict.fromkeys(taken, 200),
        )
        self.assertEqual(
            {
                name: self.azurite.status(listing, token)[0]
                for name, token in refused.items()
            },
            dict.fromkeys(refused, 403),
        )


# --- Google ---------------------------------------------------------------------


class GoogleTests(SynchronousTestCase):
    """
    The fake STS verifies subject tokens; the fake IAM Credentials takes
    only the STS's tokens; the guard takes only IAM's.
    """

    @pytest.fixture(autouse=True)
    def _world(self, gcp: FakeGCP, issuer: KeyServer, tmp_path: Path) -> None:
        self.gcp = gcp
        self.issuer = issuer
        self.directory = tmp_path

    def subject_token(self, **overrides: Any) -> str:
        return self.issuer.mint(**{"aud": "https:" + PROVIDER, **overrides})

    def exchange(
        self, subject_token: str, **overrides: str
    ) -> tuple[int, dict[str, Any]]:
        return post(self.gcp.sts_url, exchange_form(subject_token, **overrides))

    def sts_token(self) -> str:
        status, answer = self.exchange(self.subject_token())
        assert status == 200, answer
        return str(answer["access_token"])

    def assert_sts_refused(
        self, answer: tuple[int, dict[str, Any]], error: str, fragment: str = ""
    ) -> None:
        status, body = answer
        self.assertEqual((status, body.get("error")), (400, error), body)
        self.assertEqual(set(body), {"error", "error_description"})
        self.assertIn(fragment, body["error_description"])
        self.assertEqual(self.gcp.sts_issued(), [])

    def assert_google_error(
        self, answer: tuple[int, dict[str, Any]], code: int, status: str
    ) -> dict[str, Any]:
        got, body = answer
        self.assertEqual(got, code, body)
        self.assertEqual(
            (body["error"]["code"], body["error"]["status"]), (code, status)
        )
        self.assertIsInstance(body["error"]["message"], str)
        return dict(body["error"])

    def test_exchange_form(self) -> None:
        """
        A form with a good subject token (C{aud} the provider with the
        C{https:} prefix, as Google's default allows) gets the STS answer.
        """
        status, answer = self.exchange(self.subject_token())
        self.assertEqual(status, 200, answer)
        self.assertEqual(
            set(answer),
            {"access_token", "issued_token_type", "token_type", "expires_in"},
        )
        self.assertEqual(
            (answer["issued_token_type"], answer["token_type"], answer["expires_in"]),
            (ACCESS_TOKEN_TYPE, "Bearer", 3600),
        )
        [issued] = self.gcp.sts_issued()
        self.assertEqual(
            (issued.token, issued.subject), (answer["access_token"], SUBJECT)
        )

    def test_exchange_json(self) -> None:
        """
        The JSON body of Google's REST reference (camelCase) works too, with
        an ES256 subject token whose C{aud} is the provider as it is.
        """
        token = self.issuer.mint(self.issuer.published[1], aud=PROVIDER)
        document = {
            "grantType": TOKEN_EXCHANGE_GRANT,
            "audience": PROVIDER,
            "scope": GCP_CLOUD_PLATFORM_SCOPE,
            "requestedTokenType": ACCESS_TOKEN_TYPE,
            "subjectTokenType": JWT_TOKEN_TYPE,
            "subjectToken": token,
        }
        status, answer = post(
            self.gcp.sts_url,
            json.dumps(document).encode(),
            content_type="application/json",
        )
        self.assertEqual(status, 200, answer)

    def test_google_auth_chain_to_storage(self) -> None:
        """
        C{google-auth}'s workload identity federation credentials (STS, then
        generateAccessToken) and C{google-cloud-storage} write and read an
        object through the guard.
        """
        from google.auth import identity_pool
        from google.auth.transport.requests import Request
        from google.cloud import storage  # type: ignore[import-untyped]

        token_file = self.directory / "token.jwt"
        token_file.write_text(self.subject_token())
        credentials = identity_pool.Credentials(
            audience=PROVIDER,
            subject_token_type=JWT_TOKEN_TYPE,
            token_url=self.gcp.sts_url,
            credential_source={"file": str(token_file)},
            service_account_impersonation_url=self.gcp.impersonation_url(),
            scopes=[GCP_CLOUD_PLATFORM_SCOPE],
        )
        credentials.refresh(Request())
        [issued] = self.gcp.iam_issued()
        self.assertEqual(
            (credentials.token, issued.subject), (issued.token, SERVICE_ACCOUNT)
        )
        self.assertEqual((self.gcp.hits(GCP_STS), self.gcp.hits(GCP_IAM)), (1, 1))
        self.assertEqual(
            self.gcp.requests(GCP_STS)[0].headers["content-type"],
            "application/x-www-form-urlencoded",
        )

        client = storage.Client(
            project="multistore-tests",
            credentials=credentials,
            client_options={"api_endpoint": self.gcp.storage.endpoint},
        )
        bucket = client.create_bucket(unique_bucket_name("federated"))
        bucket.blob("dir/object.txt").upload_from_string(b"federated bytes")
        self.assertEqual(
            bucket.blob("dir/object.txt").download_as_bytes(), b"federated bytes"
        )
        self.assertGreaterEqual(self.gcp.storage.hits(GCP_STORAGE), 3)
        self.assertEqual(
            {r.bearer() for r in self.gcp.storage.requests()}, {credentials.token}
        )

    def test_subject_token_refused(self) -> None:
        """
        Subject tokens that fail verification: 400 invalid_grant, and no
        token.
        """
        now = int(time.time())
        cases = {
            "audience": self.subject_token(aud="https://example.com"),
            "issuer": self.subject_token(iss="http://127.0.0.1:1"),
            "expired": self.subject_token(iat=now - 600, nbf=now - 600, exp=now - 1),
            "unknown kid": self.subject_token(kid="rotated-away"),
            "forged": self.issuer.mint(
                SigningKey.ec("ec-1"), aud="https:" + PROVIDER, kid="ec-1"
            ),
            "HS256": jwt.encode(
                {"iss": self.issuer.url, "sub": SUBJECT, "aud": PROVIDER},
                "secret-key-long-enough-for-hmac-sha256",
                algorithm="HS256",
                headers={"kid": "rsa-1"},
            ),
            "too long": self.subject_token(exp=now + 49 * 3600),
        }
        answers = {name: self.exchange(token) for name, token in cases.items()}
        self.assertEqual(
            {name: (status, body["error"]) for name, (status, body) in answers.items()},
            dict.fromkeys(cases, (400, "invalid_grant")),
        )
        self.assertEqual(self.gcp.sts_issued(), [])
        self.assert_sts_refused(
            self.exchange(self.subject_token(aud="https://example.com")),
            "invalid_grant",
            "The audience in ID Token [https://example.com] does not match",
        )

    def test_attribute_condition(self) -> None:
        """
        With C{expected_subject}, another subject is refused as an
        attribute condition refuses it.
        """
        with start_gcp(
            jwks_url=self.issuer.jwks_url,
            audience=PROVIDER,
            expected_issuer=self.issuer.url,
            expected_subject="someone-else",
        ) as gcp:
            status, answer = post(gcp.sts_url, exchange_form(self.subject_token()))
        self.assertEqual((status, answer["error"]), (400, "invalid_grant"))
        self.assertIn("attribute condition", answer["error_description"])

    def test_exchange_request_errors(self) -> None:
        """
        Bad exchange requests are refused as Google's STS does.
        """
        good = self.subject_token()
        other_provider = PROVIDER.replace("gateway", "elsewhere")
        self.assert_sts_refused(
            self.exchange(good, audience="projects/123/providers/x"),
            "invalid_request",
            'Invalid value for "audience"',
        )
        self.assert_sts_refused(
            self.exchange(good, audience=other_provider), "invalid_target"
        )
        self.assert_sts_refused(
            self.exchange(good, grant_type="client_credentials"),
            "unsupported_grant_type",
        )
        self.assert_sts_refused(
            self.exchange(good, subject_token_type="urn:x"), "invalid_request"
        )
        self.assert_sts_refused(self.exchange(good, scope=""), "invalid_request")

    def test_generate_access_token(self) -> None:
        """
        generateAccessToken with the STS's token: C{accessToken} and an RFC
        3339 C{expireTime}.
        """
        before = int(time.time())
        status, answer = generate(self.gcp, self.sts_token())
        self.assertEqual(status, 200, answer)
        self.assertEqual(set(answer), {"accessToken", "expireTime"})
        self.assertRegex(answer["expireTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        [issued] = self.gcp.iam_issued()
        self.assertEqual(issued.token, answer["accessToken"])
        self.assertIn(issued.expires_at - before, (3600, 3601))

    def test_generate_refused(self) -> None:
        """
        generateAccessToken refuses, in Google's error shape: no or an
        unknown bearer (401 UNAUTHENTICATED), another service account (403
        PERMISSION_DENIED), a lifetime over an hour or no scope (400
        INVALID_ARGUMENT).
        """
        self.assert_google_error(generate(self.gcp, None), 401, "UNAUTHENTICATED")
        self.assert_google_error(
            generate(self.gcp, "ya29.forged"), 401, "UNAUTHENTICATED"
        )
        token = self.sts_token()
        error = self.assert_google_error(
            generate(self.gcp, token, email="other@p.iam.gserviceaccount.com"),
            403,
            "PERMISSION_DENIED",
        )
        self.assertEqual(error["details"][0]["reason"], "IAM_PERMISSION_DENIED")
        self.assert_google_error(
            generate(self.gcp, token, document={"scope": ["x"], "lifetime": "7200s"}),
            400,
            "INVALID_ARGUMENT",
        )
        self.assert_google_error(
            generate(self.gcp, token, document={"lifetime": "60s"}),
            400,
            "INVALID_ARGUMENT",
        )
        self.assertEqual(self.gcp.iam_issued(), [])
        self.assertEqual(self.gcp.hits(GCP_IAM), 5)

    def test_guard(self) -> None:
        """
        fake-gcs-server itself takes any bearer token; the guard refuses a
        request without one, with an unknown one or with the STS's, and
        lets the IAM's through.
        """
        listing = "/storage/v1/b?project=multistore-tests"

        def get(base: str, token: str | None) -> int:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            request = urllib.request.Request(base + listing, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return int(response.status)
            except urllib.error.HTTPError as e:
                document = json.loads(e.read())
                self.assertEqual(document["error"]["code"], 401)
                self.assertEqual(
                    document["error"]["errors"][0]["location"], "Authorization"
                )
                return int(e.code)

        upstream = self.gcp.storage.upstream
        self.assertEqual(get(upstream, "anything-at-all"), 200)
        self.assertEqual(get(upstream, None), 200)
        guarded = self.gcp.storage.endpoint
        sts_token = self.sts_token()
        self.assertEqual(get(guarded, None), 401)
        self.assertEqual(get(guarded, "anything-at-all"), 401)
        self.assertEqual(get(guarded, sts_token), 401)
        _, answer = generate(self.gcp, sts_token)
        self.assertEqual(get(guarded, answer["accessToken"]), 200)
        self.assertEqual(self.gcp.storage.hits(GCP_STORAGE), 4)

    def test_direct_access_without_service_account(self) -> None:
        """
        Without a service account to impersonate, the STS's token is the
        storage credential, and generateAccessToken refuses every account.
        """
        with start_gcp(
            jwks_url=self.issuer.jwks_url,
            audience=PROVIDER,
            expected_issuer=self.issuer.url,
            storage_upstream=self.gcp.storage.upstream,
        ) as gcp:
            status, answer = post(gcp.sts_url, exchange_form(self.subject_token()))
            self.assertEqual(status, 200)
            token = answer["access_token"]
            self.assertTrue(gcp.accepts_for_storage(token))
            self.assert_google_error(generate(gcp, token), 403, "PERMISSION_DENIED")

    def test_short_lifetime(self) -> None:
        """
        With C{token_lifetime=1}, both tokens live a second: generateAccessToken
        then refuses the expired STS token, and the guard the expired IAM
        token.
        """
        with start_gcp(
            jwks_url=self.issuer.jwks_url,
            audience=PROVIDER,
            expected_issuer=self.issuer.url,
            service_account=SERVICE_ACCOUNT,
            token_lifetime=1,
        ) as gcp:
            status, answer = post(gcp.sts_url, exchange_form(self.subject_token()))
            self.assertEqual((status, answer["expires_in"]), (200, 1))
            status, generated = generate(gcp, answer["access_token"])
            self.assertEqual(status, 200)
            self.assertTrue(gcp.accepts_for_storage(generated["accessToken"]))
            time.sleep(2.1)
            self.assertFalse(gcp.accepts_for_storage(generated["accessToken"]))
            self.assert_google_error(
                generate(gcp, answer["access_token"]), 401, "UNAUTHENTICATED"
            )

    def test_fail_next_per_endpoint(self) -> None:
        """
        A failure for one endpoint leaves the other alone.
        """
        self.gcp.fail_next(
            500, {"error": {"code": 500, "status": "INTERNAL"}}, endpoint=GCP_IAM
        )
        token = self.sts_token()
        self.assertEqual(generate(self.gcp, token)[0], 500)
        self.assertEqual(generate(self.gcp, token)[0], 200)
        self.assertEqual((self.gcp.hits(GCP_STS), self.gcp.hits(GCP_IAM)), (1, 2))
