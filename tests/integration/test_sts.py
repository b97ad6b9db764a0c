# mypy: disable-error-code="no-untyped-call"
"""
STS end to end: the daemon exchanges ID tokens of a real OIDC issuer
(L{tests.integration.oidc}, over HTTPS with its own CA) for temporary
credentials, and real clients (boto3, its web identity credential provider,
the AWS CLI) use them against buckets on SeaweedFS.

The module's daemon trusts the issuer's CA through C{SSL_CERT_FILE} and
refetches an issuer's keys for any unknown key id at once
(C{jwks_refetch_interval = 0}), so an issuer's key rotation shows up on the
next exchange; the tests that need other settings, restarts or a second
instance start daemons of their own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from unittest import mock
from uuid import uuid4

import boto3  # type: ignore[import-untyped]
import pytest
from attrs import frozen
from botocore import UNSIGNED  # type: ignore[import-untyped]
from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.oidc import (
    DISCOVERY_PATH,
    JWKS_PATH,
    OIDCIssuer,
    SigningKey,
    start_issuer,
)
from tests.integration.servers import (
    BIN_DIR,
    DEFAULT_REGION,
    Daemon,
    DaemonFactory,
    S3Server,
    error_code,
    http_status,
    unique_bucket_name,
)
from tests.integration.test_clients import client_environment

AUDIENCE: Final = "sts.multistore"
SUBJECT: Final = "repo:myorg/app:ref:refs/heads/main"
ROLE_ARN: Final = "arn:aws:iam::123456789012:role/ci"
SHORT_ROLE_ARN: Final = "arn:aws:iam::123456789012:role/short"

#: The key the module's daemon seals session tokens with.
MODULE_KEY: Final = base64.b64encode(os.urandom(32)).decode("ascii")

_ACTIONS: Final = [
    "get_object",
    "head_object",
    "put_object",
    "list_bucket",
    "delete_object",
]

#: Seeded in the backend, by virtual key of bucket C{data}.
SEED: Final = {
    "myorg/app/seed.txt": b"seed inside",
    "other/secret.txt": b"outside the grant",
}

#: Seconds allowed between the test's clock and the daemon's.
_SLACK: Final = 60


def _github_claims(issuer: OIDCIssuer, **overrides: Any) -> dict[str, Any]:
    github = {
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "repository": "myorg/app",
        "repository_owner": "myorg",
    }
    return issuer.claims(**{**github, **overrides})


@frozen
class Backend:
    """
    The real bucket behind the virtual ones.

    :ivar server: SeaweedFS.
    :ivar bucket: the real bucket.
    :ivar root: the backend prefix of virtual bucket C{data}; C{locked} is
        beside it.
    """

    server: S3Server
    bucket: str
    root: str

    def has(self, key: str) -> bool:
        """
        :return: whether virtual ``key`` of bucket C{data} is stored.
        """
        try:
            self.server.client().head_object(
                Bucket=self.bucket, Key=f"{self.root}/data/{key}"
            )
        except ClientError as e:
            if http_status(e) == 404:
                return False
            raise
        return True


def daemon_config(
    backend: Backend, issuer_url: str, sts: Mapping[str, Any]
) -> dict[str, Any]:
    """
    A configuration with buckets C{data} and C{locked} (only sessions of
    role C{short} may use it), and roles C{ci} and C{short} trusting
    ``issuer_url``.

    :param sts: the C{[sts]} table.
    """
    options = backend.server.backend_options(backend.bucket)
    trust = {
        "trusted_oidc_issuers": [issuer_url],
        "required_audiences": [AUDIENCE],
        "subject_conditions": ["repo:myorg/*"],
        "claim_conditions": {"repository_owner": "myorg"},
    }
    scopes = [
        {"bucket": "data", "prefixes": ["{repository}/"], "actions": _ACTIONS},
        {"bucket": "locked", "prefixes": [], "actions": _ACTIONS},
    ]
    return {
        "buckets": [
            {
                "name": name,
                "backend_type": "s3",
                "backend_prefix": f"{backend.root}/{name}",
                "backend_options": options,
                **({"allowed_roles": ["short"]} if name == "locked" else {}),
            }
            for name in ("data", "locked")
        ],
        "roles": [
            {
                "role_id": "ci",
                "name": "CI jobs of myorg",
                "max_session_duration_secs": 3600,
                "allowed_scopes": scopes,
                **trust,
            },
            {
                "role_id": "short",
                "name": "short sessions",
                "max_session_duration_secs": 900,
                "allowed_scopes": scopes,
                **trust,
            },
        ],
        "sts": dict(sts),
    }


def sts_client(endpoint: str, **credentials: str) -> Any:
    """
    A boto3 STS client of ``endpoint``, retries off; unsigned unless
    credentials are given.
    """
    settings: dict[str, Any] = {
        "retries": {"max_attempts": 1, "mode": "standard"},
        "region_name": DEFAULT_REGION,
    }
    if not credentials:
        settings["signature_version"] = UNSIGNED
    return boto3.session.Session().client(
        "sts",
        endpoint_url=endpoint,
        region_name=DEFAULT_REGION,
        config=BotoConfig(**settings),
        **credentials,
    )


def s3_with(endpoint: str, credentials: Mapping[str, Any]) -> Any:
    """
    A path-style boto3 S3 client signing with temporary ``credentials``
    (as STS returns them), retries off.
    """
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=DEFAULT_REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        config=BotoConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


def assume(
    daemon: Daemon, token: str, role: str = ROLE_ARN, **extra: Any
) -> dict[str, Any]:
    """
    C{AssumeRoleWithWebIdentity} on ``daemon`` with boto3.

    :return: the answer.
    :raise ClientError: if refused.
    """
    answer: dict[str, Any] = sts_client(daemon.url).assume_role_with_web_identity(
        RoleArn=role, RoleSessionName="test-session", WebIdentityToken=token, **extra
    )
    return answer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_token(claims: Mapping[str, Any], kid: str) -> str:
    """
    A token with C{alg: none} and an empty signature.
    """
    header = _b64(json.dumps({"alg": "none", "kid": kid, "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(dict(claims)).encode())}."


def hs256_token(claims: Mapping[str, Any], kid: str, secret: bytes) -> str:
    """
    A token MACed with HS256 under ``secret``.
    """
    header = _b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode())
    payload = _b64(json.dumps(dict(claims)).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


@frozen
class StsWorld:
    """
    The module's daemon, its issuer, an issuer it does not trust, and the
    backend.
    """

    daemon: Daemon
    issuer: OIDCIssuer
    foreign: OIDCIssuer
    backend: Backend


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCIssuer]:
    """
    The issuer the module's roles trust.
    """
    with start_issuer(tmp_path_factory.mktemp("issuer")) as running:
        yield running


@pytest.fixture(scope="module")
def foreign_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCIssuer]:
    """
    A working issuer that no role trusts.
    """
    with start_issuer(tmp_path_factory.mktemp("foreign")) as running:
        yield running


@pytest.fixture(scope="module")
def backend(seaweedfs: S3Server) -> Backend:
    """
    A SeaweedFS bucket holding L{SEED} under bucket C{data}'s prefix.
    """
    result = Backend(
        seaweedfs, seaweedfs.create_bucket(unique_bucket_name("sts")), uuid4().hex[:12]
    )
    client = seaweedfs.client()
    for key, body in SEED.items():
        client.put_object(
            Bucket=result.bucket, Key=f"{result.root}/data/{key}", Body=body
        )
    return result


@pytest.fixture(scope="module")
def sts_world(
    module_multistore_daemon: DaemonFactory,
    backend: Backend,
    issuer: OIDCIssuer,
    foreign_issuer: OIDCIssuer,
) -> StsWorld:
    """
    The module's daemon, trusting the issuer's CA.
    """
    config = daemon_config(
        backend,
        issuer.url,
        {"keys": [{"id": "module", "key": MODULE_KEY}], "jwks_refetch_interval": 0},
    )
    daemon = module_multistore_daemon(
        config, env={"SSL_CERT_FILE": str(issuer.ca_bundle)}
    )
    return StsWorld(daemon, issuer, foreign_issuer, backend)


class _WorldMixin:
    """
    Gives each test C{self.world} and C{self.directory}.
    """

    @pytest.fixture(autouse=True)
    def _world(self, sts_world: StsWorld, tmp_path: Path) -> None:
        self.world = sts_world
        self.directory = tmp_path

    def token(self, **overrides: Any) -> str:
        """
        A token the module's roles accept; see L{_github_claims}.
        """
        return self.world.issuer.mint(_github_claims(self.world.issuer, **overrides))


class ExchangeTests(_WorldMixin, SynchronousTestCase):
    """
    Tokens exchanged for credentials, and the credentials used, by real
    clients.
    """

    def test_boto3(self) -> None:
        """
        boto3's C{assume_role_with_web_identity} gets credentials for an
        hour with which boto3 writes, reads and lists inside the granted
        prefix (C{{repository}/}), and is refused outside it.
        """
        before = datetime.now(UTC)
        answer = assume(self.world.daemon, self.token())
        credentials = answer["Credentials"]
        self.assertTrue(credentials["AccessKeyId"].startswith("STSPRXY"))
        expected = before + timedelta(hours=1)
        self.assertLess(
            abs(credentials["Expiration"] - expected).total_seconds(), _SLACK
        )
        self.assertEqual(answer["SubjectFromWebIdentityToken"], SUBJECT)
        self.assertEqual(answer["Provider"], self.world.issuer.url)
        self.assertEqual(
            answer["AssumedRoleUser"]["Arn"],
            "arn:aws:sts::000000000000:assumed-role/ci/test-session",
        )
        s3 = s3_with(self.world.daemon.url, credentials)
        s3.put_object(Bucket="data", Key="myorg/app/boto3.txt", Body=b"from boto3")
        self.assertTrue(self.world.backend.has("myorg/app/boto3.txt"))
        got = s3.get_object(Bucket="data", Key="myorg/app/boto3.txt")["Body"].read()
        self.assertEqual(got, b"from boto3")
        listing = s3.list_objects_v2(Bucket="data", Prefix="myorg/app/")
        keys = [o["Key"] for o in listing["Contents"]]
        self.assertIn("myorg/app/seed.txt", keys)
        for call in (
            lambda: s3.get_object(Bucket="data", Key="other/secret.txt"),
            lambda: s3.put_object(Bucket="data", Key="other/boto3.txt", Body=b"x"),
            lambda: s3.list_objects_v2(Bucket="data"),
            lambda: s3.list_objects_v2(Bucket="data", Prefix="myorg/"),
        ):
            with self.assertRaises(ClientError) as raised:
                call()
            self.assertEqual(
                (http_status(raised.exception), error_code(raised.exception)),
                (403, "AccessDenied"),
            )
        self.assertFalse(self.world.backend.has("other/boto3.txt"))

    def test_presigned(self) -> None:
        """
        URLs presigned with temporary credentials (the session token in the
        query: C{X-Amz-Security-Token} with SigV4, C{x-amz-security-token}
        with boto3's default SigV2 presigner) read inside the granted prefix
        and are refused outside it.
        """
        credentials = assume(self.world.daemon, self.token())["Credentials"]
        for version in ("s3v4", "s3"):
            s3 = boto3.session.Session().client(
                "s3",
                endpoint_url=self.world.daemon.url,
                region_name=DEFAULT_REGION,
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
                config=BotoConfig(
                    signature_version=version, s3={"addressing_style": "path"}
                ),
            )
            inside = s3.generate_presigned_url(
                "get_object", Params={"Bucket": "data", "Key": "myorg/app/seed.txt"}
            )
            self.assertIn("security-token=", inside.lower())
            with urllib.request.urlopen(inside, timeout=30) as response:
                self.assertEqual(response.read(), SEED["myorg/app/seed.txt"], version)
            outside = s3.generate_presigned_url(
                "get_object", Params={"Bucket": "data", "Key": "other/secret.txt"}
            )
            with self.assertRaises(urllib.error.HTTPError) as raised:
                urllib.request.urlopen(outside, timeout=30)
            self.assertEqual(raised.exception.code, 403, version)
            self.assertIn(b"<Code>AccessDenied</Code>", raised.exception.read())

    def test_aws_cli(self) -> None:
        """
        C{aws sts assume-role-with-web-identity} gets credentials; with them
        in the environment, C{aws s3 cp} and C{aws s3 ls} work inside the
        granted prefix and are refused outside it.
        """
        env = client_environment(self.directory, AWS_DEFAULT_REGION=DEFAULT_REGION)
        aws = str(BIN_DIR / "aws")
        endpoint = ["--endpoint-url", self.world.daemon.url]
        exchanged = subprocess.run(
            [
                aws,
                "sts",
                "assume-role-with-web-identity",
                *endpoint,
                "--role-arn",
                ROLE_ARN,
                "--role-session-name",
                "cli",
                "--web-identity-token",
                self.token(),
                "--output",
                "json",
            ],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        self.assertEqual(exchanged.returncode, 0, exchanged.stderr)
        credentials = json.loads(exchanged.stdout)["Credentials"]
        env.update(
            AWS_ACCESS_KEY_ID=credentials["AccessKeyId"],
            AWS_SECRET_ACCESS_KEY=credentials["SecretAccessKey"],
            AWS_SESSION_TOKEN=credentials["SessionToken"],
        )
        local = self.directory / "upload.txt"
        local.write_bytes(b"from the aws cli")

        def run(*args: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [aws, *endpoint, "s3", *args],
                env=env,
                capture_output=True,
                timeout=120,
                check=False,
            )

        copied = run("cp", str(local), "s3://data/myorg/app/cli.txt")
        self.assertEqual(copied.returncode, 0, copied.stderr)
        self.assertTrue(self.world.backend.has("myorg/app/cli.txt"))
        listed = run("ls", "s3://data/myorg/app/")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(b"cli.txt", listed.stdout)
        self.assertIn(b"seed.txt", listed.stdout)
        read = run("cp", "s3://data/myorg/app/cli.txt", "-")
        self.assertEqual((read.returncode, read.stdout), (0, b"from the aws cli"))
        for args in (
            ("cp", "s3://data/other/secret.txt", "-"),
            ("cp", str(local), "s3://data/other/cli.txt"),
            ("ls", "s3://data/"),
        ):
            refused = run(*args)
            self.assertNotEqual(refused.returncode, 0, args)
            # A refused HEAD has no body to name the code: its status
            # stands for it.
            self.assertTrue(
                b"AccessDenied" in refused.stderr or b"(403)" in refused.stderr,
                (args, refused.stderr),
            )
        self.assertFalse(self.world.backend.has("other/cli.txt"))

    def test_web_identity_provider(self) -> None:
        """
        boto3's web identity credential provider (C{AWS_WEB_IDENTITY_TOKEN_FILE},
        C{AWS_ROLE_ARN}, C{AWS_ROLE_SESSION_NAME}, C{AWS_ENDPOINT_URL_STS})
        gets credentials from the daemon by itself; with them S3 works inside
        the prefix and is refused outside it, and C{GetCallerIdentity} names
        the role and session.
        """
        token_file = self.directory / "token"
        token_file.write_text(self.token())
        env = client_environment(
            self.directory,
            AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file),
            AWS_ROLE_ARN=ROLE_ARN,
            AWS_ROLE_SESSION_NAME="notebook",
            AWS_ENDPOINT_URL_STS=self.world.daemon.url,
            AWS_ENDPOINT_URL_S3=self.world.daemon.url,
            AWS_DEFAULT_REGION=DEFAULT_REGION,
        )
        config = BotoConfig(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
        )
        with mock.patch.dict(os.environ, env, clear=True):
            session = boto3.session.Session()
            credentials = session.get_credentials()
            self.assertEqual(credentials.method, "assume-role-with-web-identity")
            frozen_credentials = credentials.get_frozen_credentials()
            self.assertTrue(frozen_credentials.access_key.startswith("STSPRXY"))
            s3 = session.client("s3", config=config)
            s3.put_object(Bucket="data", Key="myorg/app/provider.txt", Body=b"p")
            body = s3.get_object(Bucket="data", Key="myorg/app/provider.txt")["Body"]
            self.assertEqual(body.read(), b"p")
            with self.assertRaises(ClientError) as raised:
                s3.get_object(Bucket="data", Key="other/secret.txt")
            self.assertEqual(error_code(raised.exception), "AccessDenied")
            identity = session.client("sts", config=config).get_caller_identity()
        self.assertEqual(
            identity["Arn"], "arn:aws:sts::000000000000:assumed-role/ci/notebook"
        )
        self.assertEqual(identity["Account"], "000000000000")

    def test_short_role(self) -> None:
        """
        A role whose maximum is 900 seconds issues 900-second sessions
        whatever C{DurationSeconds} asks.
        """
        before = datetime.now(UTC)
        answer = assume(
            self.world.daemon, self.token(), role=SHORT_ROLE_ARN, DurationSeconds=3600
        )
        expected = before + timedelta(seconds=900)
        delta = answer["Credentials"]["Expiration"] - expected
        self.assertLess(abs(delta.total_seconds()), _SLACK)

    def test_allowed_roles(self) -> None:
        """
        Bucket C{locked} admits only sessions of role C{short}: a C{ci}
        session is refused though its scopes name the bucket, and
        ListBuckets does not show it the bucket.
        """
        ci = s3_with(
            self.world.daemon.url,
            assume(self.world.daemon, self.token())["Credentials"],
        )
        with self.assertRaises(ClientError) as raised:
            ci.list_objects_v2(Bucket="locked")
        self.assertEqual(error_code(raised.exception), "AccessDenied")
        short = s3_with(
            self.world.daemon.url,
            assume(self.world.daemon, self.token(), role=SHORT_ROLE_ARN)["Credentials"],
        )
        self.assertEqual(short.list_objects_v2(Bucket="locked")["KeyCount"], 0)
        names = {
            who: sorted(b["Name"] for b in client.list_buckets()["Buckets"])
            for who, client in (("ci", ci), ("short", short))
        }
        self.assertEqual(names, {"ci": ["data"], "short": ["data", "locked"]})

    def test_tampered_session_token(self) -> None:
        """
        A session token altered by the client is C{InvalidToken}.
        """
        credentials = dict(assume(self.world.daemon, self.token())["Credentials"])
        token = credentials["SessionToken"]
        credentials["SessionToken"] = (
            token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
        )
        with self.assertRaises(ClientError) as raised:
            s3_with(self.world.daemon.url, credentials).get_object(
                Bucket="data", Key="myorg/app/seed.txt"
            )
        self.assertEqual(
            (http_status(raised.exception), error_code(raised.exception)),
            (400, "InvalidToken"),
        )


class RefusalTests(_WorldMixin, SynchronousTestCase):
    """
    Each trust rule and token defect gives the STS error AWS gives, through
    boto3.
    """

    def refused(self, token: str, code: str, role: str = ROLE_ARN) -> None:
        """
        Assert that exchanging ``token`` is refused with ``code``.
        """
        with self.assertRaises(ClientError) as raised:
            assume(self.world.daemon, token, role=role)
        self.assertEqual(error_code(raised.exception), code, raised.exception.response)

    def test_wrong_issuer(self) -> None:
        """
        A token of an issuer the role does not trust is
        C{InvalidIdentityToken}, and that issuer is never asked for keys.
        """
        foreign = self.world.foreign
        self.refused(foreign.mint(_github_claims(foreign)), "InvalidIdentityToken")
        self.assertEqual(foreign.hits(DISCOVERY_PATH) + foreign.hits(JWKS_PATH), 0)

    def test_audience(self) -> None:
        """
        A token for another audience is C{InvalidIdentityToken}.
        """
        self.refused(self.token(aud="someone-else"), "InvalidIdentityToken")

    def test_subject(self) -> None:
        """
        A subject outside the role's conditions is C{AccessDenied}.
        """
        self.refused(
            self.token(sub="repo:evil/app:ref:refs/heads/main"), "AccessDenied"
        )

    def test_claim_condition(self) -> None:
        """
        A failing claim condition is C{AccessDenied}.
        """
        self.refused(self.token(repository_owner="evil"), "AccessDenied")

    def test_unknown_role(self) -> None:
        """
        An unknown role is C{AccessDenied}.
        """
        self.refused(self.token(), "AccessDenied", role="arn:aws:iam::1:role/nope")

    def test_expired(self) -> None:
        """
        A token whose C{exp} is past is C{ExpiredTokenException}.
        """
        now = int(datetime.now(UTC).timestamp())
        self.refused(
            self.token(iat=now - 3600, nbf=now - 3600, exp=now - 600),
            "ExpiredTokenException",
        )

    def test_not_yet_valid(self) -> None:
        """
        A token whose C{nbf} is ahead is C{InvalidIdentityToken}.
        """
        now = int(datetime.now(UTC).timestamp())
        self.refused(self.token(nbf=now + 600, exp=now + 1200), "InvalidIdentityToken")

    def test_bad_signature(self) -> None:
        """
        A token signed by a key the issuer does not publish, under the key
        id of one it does, is C{InvalidIdentityToken}.
        """
        issuer = self.world.issuer
        kid = issuer.signing_key.kid
        forger = (
            SigningKey.ec(kid)
            if issuer.signing_key.algorithm == "ES256"
            else SigningKey.rsa(kid)
        )
        self.refused(
            issuer.mint(_github_claims(issuer), key=forger), "InvalidIdentityToken"
        )

    def test_unknown_kid(self) -> None:
        """
        A token naming a key id the issuer does not publish is
        C{InvalidIdentityToken}.
        """
        issuer = self.world.issuer
        self.refused(
            issuer.mint(_github_claims(issuer), key=SigningKey.ec("nobody")),
            "InvalidIdentityToken",
        )

    def test_alg_none(self) -> None:
        """
        An unsigned token is C{InvalidIdentityToken}.
        """
        issuer = self.world.issuer
        self.refused(
            unsigned_token(_github_claims(issuer), issuer.signing_key.kid),
            "InvalidIdentityToken",
        )

    def test_hs256(self) -> None:
        """
        An HS256 token is C{InvalidIdentityToken}.
        """
        issuer = self.world.issuer
        self.refused(
            hs256_token(_github_claims(issuer), issuer.signing_key.kid, b"k" * 32),
            "InvalidIdentityToken",
        )

    def test_oversized(self) -> None:
        """
        A properly signed token longer than C{max_token_bytes} (16 KiB) is
        C{InvalidIdentityToken}.
        """
        self.refused(self.token(padding="x" * 17000), "InvalidIdentityToken")

    def test_missing_token(self) -> None:
        """
        An empty C{WebIdentityToken} is refused by boto3's own validation
        before it is sent; a raw call without one is C{ValidationError}.
        """
        request = urllib.request.Request(
            self.world.daemon.url + "/",
            data=f"Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={ROLE_ARN}".encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        with self.assertRaises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=30)
        body = raised.exception.read()
        self.assertEqual(raised.exception.code, 400)
        self.assertIn(b"<Code>ValidationError</Code>", body)


class IssuerKeyRotationTests(_WorldMixin, SynchronousTestCase):
    """
    An issuer's key rotation needs no restart: a token naming a new key id
    makes the daemon fetch the key set again, once.
    """

    def test_rotation(self) -> None:
        """
        After the issuer publishes a new key and signs with it, the next
        exchange succeeds and the daemon fetched the key set exactly once
        more; while the cached key set lasts (C{max-age}), further exchanges
        fetch nothing.
        """
        issuer = self.world.issuer
        assume(self.world.daemon, self.token())
        jwks, discovery = issuer.hits(JWKS_PATH), issuer.hits(DISCOVERY_PATH)
        assume(self.world.daemon, self.token())
        self.assertEqual(issuer.hits(JWKS_PATH), jwks)
        issuer.rotate(SigningKey.ec(f"rotated-{uuid4().hex[:8]}"))
        answer = assume(self.world.daemon, self.token())
        self.assertTrue(answer["Credentials"]["AccessKeyId"].startswith("STSPRXY"))
        self.assertEqual(issuer.hits(JWKS_PATH), jwks + 1)
        self.assertEqual(issuer.hits(DISCOVERY_PATH), discovery + 1)
        for _ in range(3):
            assume(self.world.daemon, self.token())
        self.assertEqual(issuer.hits(JWKS_PATH), jwks + 1)


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")


class OwnDaemonTests(SynchronousTestCase):
    """
    Behaviour that needs daemons of its own: session token key rotation
    across restarts and instances, the refetch rate bound, and TLS
    verification of issuers.
    """

    @pytest.fixture(autouse=True)
    def _fixtures(
        self,
        multistore_daemon: DaemonFactory,
        backend: Backend,
        issuer: OIDCIssuer,
        tmp_path: Path,
    ) -> None:
        self.daemons = multistore_daemon
        self.backend = backend
        self.issuer = issuer
        self.directory = tmp_path

    def token(self, issuer: OIDCIssuer | None = None) -> str:
        """
        A token of ``issuer`` (the module's, if not given) that the roles
        accept.
        """
        issuer = issuer if issuer is not None else self.issuer
        return issuer.mint(_github_claims(issuer))

    def reads(self, daemon: Daemon, credentials: Mapping[str, Any]) -> str:
        """
        :return: C{"ok"} if ``credentials`` read a seeded object through
            ``daemon``, else the error code.
        """
        try:
            body = (
                s3_with(daemon.url, credentials)
                .get_object(Bucket="data", Key="myorg/app/seed.txt")["Body"]
                .read()
            )
        except ClientError as e:
            return error_code(e)
        self.assertEqual(body, SEED["myorg/app/seed.txt"])
        return "ok"

    def test_session_key_rotation(self) -> None:
        """
        Credentials sealed under C{SESSION_TOKEN_KEY} still work after a
        restart with C{[new, old]} (the old key now by C{key_env}); ones
        sealed under the new key work after a restart with the new key alone
        (by C{key_file}), which ends the old ones; and a second instance
        sharing the key accepts credentials minted by the first, and the
        first those of the second.
        """
        old, new = _key(), _key()
        key_file = self.directory / "session.key"
        key_file.write_text(new + "\n")
        base = daemon_config(self.backend, self.issuer.url, {})
        env = {"SSL_CERT_FILE": str(self.issuer.ca_bundle), "SESSION_TOKEN_KEY": old}
        first = self.daemons(base, env=env)
        minted_old = assume(first, self.token())["Credentials"]
        self.assertEqual(self.reads(first, minted_old), "ok")

        both = {
            **base,
            "sts": {
                "keys": [
                    {"id": "new", "key": new},
                    {"id": "default", "key_env": "SESSION_TOKEN_KEY"},
                ]
            },
        }
        first.restart(both)
        self.assertEqual(self.reads(first, minted_old), "ok")
        minted_new = assume(first, self.token())["Credentials"]
        self.assertEqual(self.reads(first, minted_new), "ok")

        only_new = {**base, "sts": {"keys": [{"id": "new", "key_file": str(key_file)}]}}
        first.restart(only_new)
        self.assertEqual(self.reads(first, minted_new), "ok")
        self.assertEqual(self.reads(first, minted_old), "InvalidToken")

        second = self.daemons(
            only_new, env={"SSL_CERT_FILE": str(self.issuer.ca_bundle)}
        )
        self.assertEqual(self.reads(second, minted_new), "ok")
        minted_second = assume(second, self.token())["Credentials"]
        self.assertEqual(self.reads(first, minted_second), "ok")

    def test_refetch_bounded(self) -> None:
        """
        Tokens naming unknown key ids do not make the daemon fetch the key
        set again within C{jwks_refetch_interval}: a flood of them costs the
        issuer nothing, and a key published meanwhile is not seen yet.
        """
        with start_issuer(self.directory / "issuer") as issuer:
            config = daemon_config(
                self.backend, issuer.url, {"jwks_refetch_interval": 3600}
            )
            config["sts"]["keys"] = [{"id": "k", "key": _key()}]
            daemon = self.daemons(config, env={"SSL_CERT_FILE": str(issuer.ca_bundle)})
            assume(daemon, self.token(issuer))
            self.assertEqual(issuer.hits(JWKS_PATH), 1)
            for n in range(5):
                stranger = SigningKey.ec(f"stranger-{n}")
                with self.assertRaises(ClientError) as raised:
                    assume(daemon, issuer.mint(_github_claims(issuer), key=stranger))
                self.assertEqual(error_code(raised.exception), "InvalidIdentityToken")
            issuer.rotate(SigningKey.ec("too-new"))
            with self.assertRaises(ClientError) as raised:
                assume(daemon, self.token(issuer))
            self.assertEqual(error_code(raised.exception), "InvalidIdentityToken")
            self.assertEqual(issuer.hits(JWKS_PATH), 1)
            self.assertEqual(issuer.hits(DISCOVERY_PATH), 1)

    def test_issuer_certificate_verified(self) -> None:
        """
        A daemon that does not trust an issuer's CA (it trusts another
        issuer's) does not fetch its keys: the exchange is
        C{IDPCommunicationError} and the issuer never sees an HTTP request.
        """
        with start_issuer(self.directory / "issuer") as untrusted:
            config = daemon_config(self.backend, untrusted.url, {})
            config["sts"]["keys"] = [{"id": "k", "key": _key()}]
            daemon = self.daemons(
                config, env={"SSL_CERT_FILE": str(self.issuer.ca_bundle)}
            )
            with self.assertRaises(ClientError) as raised:
                assume(daemon, self.token(untrusted))
            self.assertEqual(error_code(raised.exception), "IDPCommunicationError")
            self.assertEqual(untrusted.hits(DISCOVERY_PATH), 0)
        self.assertIn("could not fetch the signing keys", daemon.log_text())
