# mypy: disable-error-code="no-untyped-call"
"""
The daemon as an OpenID Connect identity provider, end to end: real daemon
processes sign their own JWTs, publish their keys at their own URL, and
trade the JWTs for Azure and GCP storage credentials at token services that
really verify them against that key set (L{tests.integration.tokenservices}),
and the credentials they get are what the storage emulators take.

- Azure: a bucket with C{auth_type = "oidc"} and no key reads and writes
  Azurite (C{--oauth basic}, HTTPS) with the access token the fake Entra
  gave for the daemon's client assertion; a wrong client or subject is
  C{403 AccessDenied}.
- GCP: STS token exchange, then C{generateAccessToken} for a service
  account, or the STS token alone; a guard in front of fake-gcs-server lets
  only those tokens through.
- The credential cache: 50 concurrent first requests cost one exchange;
  credentials are renewed once in the last quarter of their life while
  requests go on with the old ones; failures are not cached as successes.
- Outages: a stopped, failing or silent token service is C{503}, C{502} or
  C{503}, and nothing of its answer reaches the client.

Each daemon's issuer URL is an extra listener on a port chosen before the
token services start, since they fetch its key set (lazily, per token).
The daemons trust the test CA through C{SSL_CERT_FILE}: their HTTP client
uses the platform's trust store, which OpenSSL reads from that variable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import jwt
import pytest
from attrs import define, field, frozen
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.emulators import GcsBucket, GcsServer
from tests.integration.servers import (
    LOCALHOST,
    Daemon,
    DaemonFactory,
    error_code,
    free_port,
    http_status,
    s3_client,
    unique_bucket_name,
)
from tests.integration.test_write_path import WRITER, writer_credential
from tests.integration.tokenservices import (
    AZURE_EXCHANGE_AUDIENCE,
    ENTRA_TOKEN,
    GCP_IAM,
    GCP_STORAGE,
    GCP_STS,
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
PROVIDER: Final = (
    "//iam.googleapis.com/projects/123456789012/locations/global/"
    "workloadIdentityPools/multistore/providers/gateway"
)
SERVICE_ACCOUNT: Final = "gateway@multistore-tests.iam.gserviceaccount.com"

#: The daemon's default C{oidc_subject}, which the fake Entra is told to
#: require.
SUBJECT: Final = "s3-proxy"

#: The id of the daemon's signing key.
KEY_ID: Final = "k1"

#: Seconds the short-lived credentials of the renewal test live.
SHORT_LIFETIME: Final = 20

#: The outage tests' C{[oidc_provider] timeout_secs}: how long the daemon
#: waits for a token service.
TIMEOUT: Final = 2

#: Something a token service says that must never reach a client.
LEAK: Final = "token-service-internals-7f3a"


# --- the daemon as an issuer --------------------------------------------------


@define
class Gateway:
    """
    A daemon to be, whose issuer URL is known before it starts: an extra
    listener on a port chosen now.

    :ivar pem: its signing key (PKCS#8 PEM).
    :ivar port: the issuer's port.
    """

    pem: str
    port: int = field(factory=free_port)

    @property
    def issuer(self) -> str:
        """
        :return: C{http://127.0.0.1:PORT}, the C{iss} of its tokens.
        """
        return f"http://{LOCALHOST}:{self.port}"

    def start(
        self,
        factory: DaemonFactory,
        buckets: list[dict[str, Any]],
        tls: TLSMaterial | None = None,
        **provider: Any,
    ) -> Daemon:
        """
        Start the daemon with ``buckets``, trusting ``tls``'s CA if given.

        :param provider: further settings of C{[oidc_provider]}.
        """
        config = {
            "oidc_provider": {
                "issuer": self.issuer,
                "keys": [{"id": KEY_ID, "key": self.pem}],
                **provider,
            },
            "buckets": buckets,
            "credentials": [writer_credential()],
        }
        return factory(
            config,
            extra_args=["--listen", f"tcp:{self.port}:interface={LOCALHOST}"],
            env={"SSL_CERT_FILE": str(tls.ca_bundle)} if tls is not None else None,
        )


def azure_bucket(
    name: str, azurite: AzuriteOAuth, container: str, entra: FakeEntra, **extra: str
) -> dict[str, Any]:
    """
    :return: a federated C{azure} bucket on ``container``, with no key.
    """
    options = azurite.backend_options(
        container,
        auth_type="oidc",
        tenant_id=entra.tenant_id,
        client_id=entra.client_id,
        authority=entra.authority,
    )
    options.update(extra)
    return {"name": name, "backend_type": "azure", "backend_options": options}


def gcs_bucket(name: str, gcp: FakeGCP, bucket: str, **extra: str) -> dict[str, Any]:
    """
    :return: a federated C{gcs} bucket on ``bucket`` behind ``gcp``'s guard,
        impersonating ``gcp``'s service account if it has one.
    """
    options = {
        "endpoint": gcp.storage.endpoint,
        "bucket_name": bucket,
        "auth_type": "oidc",
        "workload_identity_provider": PROVIDER,
        "sts_endpoint": gcp.url,
        "iam_endpoint": gcp.iam_url,
    }
    if gcp.service_account is not None:
        options["service_account"] = gcp.service_account
    options.update(extra)
    return {"name": name, "backend_type": "gcs", "backend_options": options}


# --- clients ------------------------------------------------------------------


@frozen
class Answer:
    """
    What a request through the daemon got.

    :ivar status: the HTTP status.
    :ivar code: the S3 error code, empty for a success.
    :ivar body: the raw response body.
    :ivar seconds: how long it took.
    """

    status: int
    code: str
    body: bytes
    seconds: float


def client(daemon: Daemon, **config: Any) -> Any:
    """
    :return: a boto3 client of ``daemon`` with every right.
    """
    return s3_client(daemon.url, *WRITER, **config)


def attempt(call: Callable[[], Any]) -> Answer:
    """
    Make a boto3 call, capturing the raw body of an error answer.

    :param call: calls a method of a client made by L{raw_bodies}.
    """
    started = time.monotonic()
    try:
        call()
    except ClientError as e:
        return Answer(
            http_status(e),
            error_code(e),
            e.response.get("RawBody", b""),
            time.monotonic() - started,
        )
    return Answer(200, "", b"", time.monotonic() - started)


def raw_bodies(s3: Any) -> Any:
    """
    Make ``s3``'s error responses carry their raw body as C{RawBody}, so a
    test sees every byte the daemon sent.
    """

    def keep(response_dict: dict[str, Any], **_: Any) -> None:
        raw[0] = response_dict.get("body") or b""

    def attach(parsed: dict[str, Any], **_: Any) -> None:
        if "Error" in parsed:
            parsed["RawBody"] = raw[0]

    raw = [b""]
    s3.meta.events.register("before-parse.s3.*", keep)
    s3.meta.events.register("after-call.s3.*", attach)
    return s3


def wait_for(check: Callable[[], bool], what: str, timeout: float) -> None:
    """
    Poll ``check`` every 50 ms.

    :raise AssertionError: if it is not true within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s")
        time.sleep(0.05)


def claims_of(token: str) -> dict[str, Any]:
    """
    :return: the claims of a JWT, unverified.
    """
    return dict(jwt.decode(token, options={"verify_signature": False}))


# --- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_pem() -> str:
    """
    The daemons' signing key: RSA 2048, PKCS#8 PEM.
    """
    key = rsa.generate_private_key(65537, 2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    """
    One CA for Azurite and the fake Entra.
    """
    return make_tls(tmp_path_factory.mktemp("federation-tls"))


@pytest.fixture(scope="module")
def azurite_oauth(
    tmp_path_factory: pytest.TempPathFactory, tls: TLSMaterial
) -> Iterator[AzuriteOAuth]:
    """
    Azurite taking bearer tokens over HTTPS.
    """
    with start_azurite_oauth(tmp_path_factory.mktemp("azurite-oauth"), tls=tls) as az:
        yield az


@define
class AzureWorld:
    """
    A daemon with federated buckets on Azurite: C{az} (as the fake Entra's
    federated credential says), C{az-wrong-client} (an application Entra
    does not know) and C{az-wrong-subject} (a subject the credential does
    not name).
    """

    daemon: Daemon
    issuer: str
    entra: FakeEntra
    azurite: AzuriteOAuth
    container: str


@pytest.fixture(scope="module")
def azure_world(
    module_multistore_daemon: DaemonFactory,
    signing_pem: str,
    tls: TLSMaterial,
    azurite_oauth: AzuriteOAuth,
) -> Iterator[AzureWorld]:
    gateway = Gateway(signing_pem)
    container = azurite_oauth.create_container(unique_bucket_name("fed"))
    with start_entra(
        jwks_url=None,
        tenant_id=TENANT,
        client_id=CLIENT,
        expected_issuer=gateway.issuer,
        expected_subject=SUBJECT,
        tls=tls,
    ) as entra:
        buckets = [
            azure_bucket("az", azurite_oauth, container, entra),
            azure_bucket(
                "az-wrong-client",
                azurite_oauth,
                container,
                entra,
                client_id="00000000-0000-0000-0000-000000000000",
            ),
            azure_bucket(
                "az-wrong-subject",
                azurite_oauth,
                container,
                entra,
                oidc_subject="someone-else",
            ),
        ]
        daemon = gateway.start(module_multistore_daemon, buckets, tls)
        yield AzureWorld(daemon, gateway.issuer, entra, azurite_oauth, container)


@define
class GcpWorld:
    """
    A daemon with federated buckets on fake-gcs-server behind two guards:
    C{gs-sa} through STS and C{generateAccessToken} (L{impersonating}),
    C{gs-direct} with the STS token alone (L{direct}).
    """

    daemon: Daemon
    impersonating: FakeGCP
    direct: FakeGCP
    buckets: dict[str, GcsBucket]


@pytest.fixture(scope="module")
def gcp_world(
    module_multistore_daemon: DaemonFactory, signing_pem: str, fake_gcs: GcsServer
) -> Iterator[GcpWorld]:
    gateway = Gateway(signing_pem)
    common: dict[str, Any] = {
        "jwks_url": None,
        "audience": PROVIDER,
        "expected_issuer": gateway.issuer,
        "expected_subject": SUBJECT,
        "storage_upstream": fake_gcs.endpoint,
    }
    with (
        start_gcp(service_account=SERVICE_ACCOUNT, **common) as impersonating,
        start_gcp(**common) as direct,
    ):
        stored = {
            name: GcsBucket(fake_gcs, fake_gcs.create_bucket(unique_bucket_name("fed")))
            for name in ("gs-sa", "gs-direct")
        }
        buckets = [
            gcs_bucket("gs-sa", impersonating, stored["gs-sa"].name),
            gcs_bucket("gs-direct", direct, stored["gs-direct"].name),
        ]
        daemon = gateway.start(module_multistore_daemon, buckets)
        yield GcpWorld(daemon, impersonating, direct, stored)


# --- tests --------------------------------------------------------------------


def _read_write(test: SynchronousTestCase, s3: Any, bucket: str) -> None:
    """
    PUT two objects, GET one, list both, through the daemon.
    """
    s3.put_object(Bucket=bucket, Key="docs/a.txt", Body=b"alpha")
    s3.put_object(Bucket=bucket, Key="docs/b.txt", Body=b"bravo" * 1000)
    got = s3.get_object(Bucket=bucket, Key="docs/a.txt")
    test.assertEqual(got["Body"].read(), b"alpha")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="docs/")
    test.assertEqual(
        [(o["Key"], o["Size"]) for o in listed["Contents"]],
        [("docs/a.txt", 5), ("docs/b.txt", 5000)],
    )


class AzureTests(SynchronousTestCase):
    """
    A federated Azure bucket works with the token Entra gives for the
    daemon's assertion, and only when Entra's federated credential matches.
    """

    @pytest.fixture(autouse=True)
    def _world(self, azure_world: AzureWorld) -> None:
        self.world = azure_world

    def _ours(self) -> list[dict[str, str]]:
        return [
            r.form()
            for r in self.world.entra.requests(ENTRA_TOKEN)
            if r.form().get("client_id") == CLIENT
            and claims_of(r.form()["client_assertion"])["sub"] == SUBJECT
        ]

    def test_read_write(self) -> None:
        """
        PUT, GET and LIST through C{az} work against Azurite, which took
        only bearer tokens: the one Entra issued for a client assertion
        signed by the daemon's key, with the daemon as C{iss}, Entra's
        exchange audience and the default subject, verified against the key
        set the daemon publishes. One exchange serves every request.
        """
        s3 = client(self.world.daemon)
        _read_write(self, s3, "az")
        blob = (
            self.world.azurite.service()
            .get_container_client(self.world.container)
            .get_blob_client("docs/a.txt")
        )
        self.assertEqual(blob.download_blob().readall(), b"alpha")

        ours = self._ours()
        self.assertEqual(len(ours), 1)
        assertion = ours[0]["client_assertion"]
        header = jwt.get_unverified_header(assertion)
        claims = claims_of(assertion)
        self.assertEqual(header["kid"], KEY_ID)
        self.assertEqual(header["alg"], "RS256")
        self.assertEqual(claims["iss"], self.world.issuer)
        self.assertEqual(claims["aud"], AZURE_EXCHANGE_AUDIENCE)
        self.assertEqual(ours[0]["grant_type"], "client_credentials")
        self.assertEqual(ours[0]["scope"], "https://storage.azure.com/.default")
        self.assertGreaterEqual(self.world.entra.verifier.fetches, 1)

    def _refused(self, bucket: str, aadsts: str) -> None:
        s3 = raw_bodies(client(self.world.daemon))
        for call in (
            lambda: s3.list_objects_v2(Bucket=bucket),
            lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"x"),
        ):
            answer = attempt(call)
            self.assertEqual((answer.status, answer.code), (403, "AccessDenied"))
            self.assertIn(b"AccessDenied", answer.body)
            for said in (aadsts, "AADSTS", "invalid_client", "unauthorized_client"):
                self.assertNotIn(said.encode(), answer.body)

    def test_wrong_client(self) -> None:
        """
        An application Entra does not know: Entra answers
        C{unauthorized_client}; the client gets C{403 AccessDenied} and none
        of Entra's words.
        """
        self._refused("az-wrong-client", "AADSTS700016")

    def test_wrong_subject(self) -> None:
        """
        A subject the federated credential does not name: Entra answers
        C{invalid_client} (AADSTS700213); the client gets C{403
        AccessDenied}.
        """
        self._refused("az-wrong-subject", "AADSTS700213")


class GcpTests(SynchronousTestCase):
    """
    A federated GCS bucket works with the token Google's STS (and IAM
    Credentials) gives for the daemon's token.
    """

    @pytest.fixture(autouse=True)
    def _world(self, gcp_world: GcpWorld) -> None:
        self.world = gcp_world

    def test_impersonating(self) -> None:
        """
        With a service account: one STS exchange (the daemon's token, for
        the provider's default audience C{https://iam.googleapis.com/...}),
        one C{generateAccessToken} with the STS token; storage saw only the
        service account's token.
        """
        gcp = self.world.impersonating
        _read_write(self, client(self.world.daemon), "gs-sa")
        stored = self.world.buckets["gs-sa"].get("docs/a.txt")
        self.assertEqual(stored.data if stored else None, b"alpha")
        self.assertEqual((gcp.hits(GCP_STS), gcp.hits(GCP_IAM)), (1, 1))
        form = gcp.requests(GCP_STS)[0].form()
        self.assertEqual(form["audience"], PROVIDER)
        self.assertEqual(claims_of(form["subject_token"])["aud"], "https:" + PROVIDER)
        sts_token = gcp.sts_issued()[0].token
        self.assertEqual(gcp.requests(GCP_IAM)[0].bearer(), sts_token)
        access = gcp.iam_issued()[0].token
        seen = {r.bearer() for r in gcp.storage.requests(GCP_STORAGE)}
        self.assertEqual(seen, {access})

    def test_direct(self) -> None:
        """
        Without a service account: the STS token itself is the storage
        credential; IAM Credentials is never asked.
        """
        gcp = self.world.direct
        _read_write(self, client(self.world.daemon), "gs-direct")
        stored = self.world.buckets["gs-direct"].get("docs/b.txt")
        self.assertEqual(stored.data if stored else None, b"bravo" * 1000)
        self.assertEqual((gcp.hits(GCP_STS), gcp.hits(GCP_IAM)), (1, 0))
        seen = {r.bearer() for r in gcp.storage.requests(GCP_STORAGE)}
        self.assertEqual(seen, {gcp.sts_issued()[0].token})


class CacheTests(SynchronousTestCase):
    """
    The credential cache against a real token service: one exchange for
    many first requests; one renewal, ahead of expiry, that nobody waits
    for.
    """

    @pytest.fixture(autouse=True)
    def _fixtures(
        self,
        multistore_daemon: DaemonFactory,
        signing_pem: str,
        tls: TLSMaterial,
        azurite_oauth: AzuriteOAuth,
        fake_gcs: GcsServer,
    ) -> None:
        self.factory = multistore_daemon
        self.gateway = Gateway(signing_pem)
        self.tls = tls
        self.azurite = azurite_oauth
        self.fake_gcs = fake_gcs

    def test_single_flight(self) -> None:
        """
        50 concurrent GETs of a cold federated bucket, all in flight at once
        (the token service takes 1 s per answer), cost one STS exchange and one
        C{generateAccessToken}, and all succeed.
        """
        with start_gcp(
            jwks_url=None,
            audience=PROVIDER,
            expected_issuer=self.gateway.issuer,
            service_account=SERVICE_ACCOUNT,
            storage_upstream=self.fake_gcs.endpoint,
        ) as gcp:
            stored = GcsBucket(
                self.fake_gcs, self.fake_gcs.create_bucket(unique_bucket_name("fly"))
            )
            stored.put("object", b"payload")
            daemon = self.gateway.start(
                self.factory, [gcs_bucket("gs-flight", gcp, stored.name)]
            )
            gcp.slow(1.0)
            s3 = client(daemon, max_pool_connections=64)
            ready = threading.Barrier(50)

            def get(_: int) -> tuple[float, float, bytes]:
                ready.wait()
                started = time.monotonic()
                body = s3.get_object(Bucket="gs-flight", Key="object")["Body"].read()
                return started, time.monotonic(), body

            with ThreadPoolExecutor(50) as pool:
                results = list(pool.map(get, range(50)))
            self.assertEqual({body for _, _, body in results}, {b"payload"})
            # Every request started before any ended: they really overlapped.
            self.assertLess(
                max(start for start, _, _ in results),
                min(end for _, end, _ in results),
            )
            self.assertEqual((gcp.hits(GCP_STS), gcp.hits(GCP_IAM)), (1, 1))

    def test_renewal_ahead_of_expiry(self) -> None:
        """
        Entra's tokens live 20 s. In their last quarter (here about 4.8 s
        before the end) a request starts one renewal and goes on with the old
        token at once, though Entra now takes 3 s to answer; so do the
        requests during the renewal. After the old token has expired (and
        Azurite would refuse it) requests work with the new one. Entra was
        asked twice in all.

        The lifetime is short but not shorter: the window between "due"
        (the last quarter) and "no longer usable" (the last tenth) is
        0.15 of it, 3 s here, and must hold a request and the slack of the
        token's whole-second times.
        """
        container = self.azurite.create_container(unique_bucket_name("renew"))
        with start_entra(
            jwks_url=None,
            tenant_id=TENANT,
            client_id=CLIENT,
            expected_issuer=self.gateway.issuer,
            expected_subject=SUBJECT,
            token_lifetime=SHORT_LIFETIME,
            tls=self.tls,
        ) as entra:
            daemon = self.gateway.start(
                self.factory,
                [azure_bucket("az-renew", self.azurite, container, entra)],
                self.tls,
            )
            s3 = client(daemon)
            before = time.time()
            s3.put_object(Bucket="az-renew", Key="k", Body=b"v1")
            after = time.time()
            first = entra.issued()[0]

            def get() -> float:
                started = time.monotonic()
                got = s3.get_object(Bucket="az-renew", Key="k")["Body"].read()
                self.assertEqual(got, b"v1")
                return time.monotonic() - started

            get()
            self.assertEqual(entra.hits(ENTRA_TOKEN), 1)

            # The daemon read its clock between before and after, and before
            # Entra's whole second of issue ended: its credentials end 20 s
            # later, are due in the last 5 s and unusable in the last 2 s.
            # Aim just past the latest possible start of "due"; the earliest
            # possible "unusable" is about 2.8 s later less the PUT's time.
            end_early = before + SHORT_LIFETIME
            end_late = min(after + SHORT_LIFETIME, first.expires_at + 1.0)
            self.assertLess(end_late - end_early, 1.0)
            time.sleep(max(0.0, end_late - 4.8 - time.time()))
            entra.slow(3.0)
            self.assertLess(get(), 1.5)
            wait_for(lambda: entra.hits(ENTRA_TOKEN) == 2, "renewal started", 2.0)
            for _ in range(3):
                self.assertLess(get(), 1.5)
                time.sleep(0.05)
            self.assertLess(time.time(), end_early - 2, "the test was too slow")
            self.assertEqual(entra.hits(ENTRA_TOKEN), 2)
            wait_for(lambda: len(entra.issued()) == 2, "renewal done", 5.0)
            entra.slow(0)

            time.sleep(max(0.0, first.expires_at + 1 - time.time()))
            # Azurite refuses the old token now, takes the new one.
            self.assertEqual(azure_listing(self.azurite, container, first.token), 403)
            renewed = entra.issued()[1]
            self.assertEqual(azure_listing(self.azurite, container, renewed.token), 200)
            get()
            s3.put_object(Bucket="az-renew", Key="k2", Body=b"v2")
            self.assertEqual(entra.hits(ENTRA_TOKEN), 2)


def azure_listing(azurite: AzuriteOAuth, container: str, token: str) -> int:
    """
    :return: the status Azurite answers a listing of ``container`` with
        ``token``.
    """
    path = f"/{container}?restype=container&comp=list"
    return azurite.status(path, token)[0]


class OutageTests(SynchronousTestCase):
    """
    A token service that cannot be reached, fails, or does not answer:
    C{503}, C{502}, C{503}, quickly where it can be, and the client sees
    nothing of it. A failure is never kept as credentials: once the service
    is back (and the back-off is over), the bucket works.
    """

    @pytest.fixture(autouse=True)
    def _fixtures(
        self,
        multistore_daemon: DaemonFactory,
        signing_pem: str,
        fake_gcs: GcsServer,
    ) -> Iterator[None]:
        gateway = Gateway(signing_pem)
        with start_gcp(
            jwks_url=None,
            audience=PROVIDER,
            expected_issuer=gateway.issuer,
            storage_upstream=fake_gcs.endpoint,
        ) as gcp:
            self.gcp = gcp
            stored = GcsBucket(
                fake_gcs, fake_gcs.create_bucket(unique_bucket_name("out"))
            )
            stored.put("object", b"payload")
            daemon = gateway.start(
                multistore_daemon,
                [gcs_bucket("gs-out", gcp, stored.name)],
                timeout_secs=TIMEOUT,
            )
            self.s3 = raw_bodies(client(daemon))
            yield

    def _get(self) -> Answer:
        return attempt(lambda: self.s3.get_object(Bucket="gs-out", Key="object"))

    def _recovers(self, exchanges: int) -> None:
        """
        The bucket works within the back-off and a bit, after ``exchanges``
        STS requests in all.
        """
        deadline = time.monotonic() + 5
        while (answer := self._get()).status != 200:
            self.assertLess(time.monotonic(), deadline, answer)
            time.sleep(0.1)
        self.assertEqual(self.gcp.hits(GCP_STS), exchanges)

    def test_unreachable(self) -> None:
        """
        Token service stopped: C{503 ServiceUnavailable} at once. Started
        again: the bucket works after the back-off; the requests during it
        never reached the service.
        """
        self.gcp.stop()
        answer = self._get()
        self.assertEqual((answer.status, answer.code), (503, "ServiceUnavailable"))
        self.assertIn(b"<Code>ServiceUnavailable</Code>", answer.body)
        self.assertLess(answer.seconds, 3.0)
        self.assertNotIn(str(self.gcp.url.rsplit(":", 1)[1]).encode(), answer.body)
        self.gcp.start()
        self._recovers(1)

    def test_server_error(self) -> None:
        """
        STS answers 500: C{502 BackendAuthenticationFailed}, without a word
        of its answer. The next exchange, after the back-off, works.
        """
        self.gcp.fail_next(
            500,
            {"error": "internal_failure", "error_description": LEAK},
            endpoint=GCP_STS,
        )
        answer = self._get()
        self.assertEqual(
            (answer.status, answer.code), (502, "BackendAuthenticationFailed")
        )
        self.assertIn(b"<Code>BackendAuthenticationFailed</Code>", answer.body)
        self.assertNotIn(LEAK.encode(), answer.body)
        self.assertNotIn(b"internal_failure", answer.body)
        self._recovers(2)

    def test_not_json(self) -> None:
        """
        STS answers 200 with something that is not a token answer: C{502}
        too, its body kept from the client.
        """
        self.gcp.fail_next(200, f"<html>{LEAK}</html>".encode(), endpoint=GCP_STS)
        answer = self._get()
        self.assertEqual(
            (answer.status, answer.code), (502, "BackendAuthenticationFailed")
        )
        self.assertNotIn(LEAK.encode(), answer.body)

    def test_silent(self) -> None:
        """
        STS takes longer than C{timeout_secs} (2 s): C{503
        ServiceUnavailable} when it runs out, not later.
        """
        self.gcp.slow(30)
        answer = self._get()
        self.assertEqual((answer.status, answer.code), (503, "ServiceUnavailable"))
        self.assertGreater(answer.seconds, TIMEOUT - 0.5)
        self.assertLess(answer.seconds, TIMEOUT + 3)
