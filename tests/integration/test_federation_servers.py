# mypy: disable-error-code="no-untyped-call"
"""
The token service of L{tests.integration.federation} with real tokens:
SeaweedFS trades JWTs of a test issuer for S3 credentials only when they are
signed by a key the issuer publishes and carry the trusted C{iss}, C{sub}
and C{aud}; it picks up a newly published key without a restart.

One SeaweedFS per issuer (its configuration names the issuer): the module's
main one trusts a plain-HTTP issuer laid out like multistore's; two more
show the C{/.well-known/jwks.json} fallback without discovery and an HTTPS
issuer with its own CA.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.federation import (
    DEFAULT_AUDIENCE,
    DEFAULT_ROLE_NAME,
    DEFAULT_SESSION_SECONDS,
    DISCOVERY_PATH,
    JWKS_PATH,
    FederatedSeaweedFS,
    JWKSIssuer,
    role_arn,
    start_jwks_issuer,
    start_seaweedfs_sts,
)
from tests.integration.oidc import OIDCIssuer, SigningKey, start_issuer
from tests.integration.servers import error_code, http_status, unique_bucket_name

#: The subject the role trusts (multistore's default C{oidc_subject}).
SUBJECT: Final = "s3-proxy"

#: Seconds allowed between our clock and SeaweedFS's answers.
_SLACK: Final = 60


@pytest.fixture(scope="module")
def issuer() -> Iterator[JWKSIssuer]:
    """
    The plain-HTTP issuer the module's main SeaweedFS trusts.
    """
    with start_jwks_issuer() as running:
        yield running


@pytest.fixture(scope="module")
def federated(
    tmp_path_factory: pytest.TempPathFactory, issuer: JWKSIssuer
) -> Iterator[FederatedSeaweedFS]:
    """
    SeaweedFS trusting L{issuer} for L{SUBJECT} and the AWS audience.
    """
    with start_seaweedfs_sts(
        tmp_path_factory.mktemp("seaweedfs-sts"), issuer=issuer.url, subject=SUBJECT
    ) as server:
        yield server


def _token(issuer: JWKSIssuer, key: SigningKey | None = None, **claims: Any) -> str:
    """
    A token of ``issuer`` for L{SUBJECT} and the AWS audience, with
    ``claims`` overriding.
    """
    return issuer.mint(
        issuer.claims(**{"sub": SUBJECT, "aud": DEFAULT_AUDIENCE, **claims}), key=key
    )


def _expiration(answer: dict[str, Any]) -> datetime:
    value = answer["Credentials"]["Expiration"]
    assert isinstance(value, datetime)
    return value


class ExchangeTests(SynchronousTestCase):
    """
    Tokens the role trusts buy credentials that work on its bucket only.
    """

    @pytest.fixture(autouse=True)
    def _servers(self, federated: FederatedSeaweedFS, issuer: JWKSIssuer) -> None:
        self.server = federated
        self.issuer = issuer

    def test_exchange_and_use(self) -> None:
        """
        boto3's C{assume_role_with_web_identity}, unsigned, at the S3
        endpoint gets temporary credentials; they PUT and GET an object of
        the bucket, which the admin identity sees too.
        """
        answer = self.server.assume_role(_token(self.issuer))
        self.assertEqual(answer["SubjectFromWebIdentityToken"], SUBJECT)
        credentials = answer["Credentials"]
        self.assertTrue(credentials["AccessKeyId"].startswith("ASIA"))
        self.assertTrue(credentials["SessionToken"])
        client = self.server.session_client(credentials)
        client.put_object(Bucket=self.server.bucket, Key="hello.txt", Body=b"hello")
        got = client.get_object(Bucket=self.server.bucket, Key="hello.txt")
        self.assertEqual(got["Body"].read(), b"hello")
        admin = self.server.admin.client()
        got = admin.get_object(Bucket=self.server.bucket, Key="hello.txt")
        self.assertEqual(got["Body"].read(), b"hello")

    def test_other_bucket_denied(self) -> None:
        """
        The role's policy covers its bucket only: another bucket answers
        C{AccessDenied} 403.
        """
        other = self.server.admin.create_bucket(unique_bucket_name("not-granted"))
        client = self.server.session_client(
            self.server.assume_role(_token(self.issuer))["Credentials"]
        )
        with self.assertRaises(ClientError) as raised:
            client.put_object(Bucket=other, Key="k", Body=b"x")
        self.assertEqual(
            (http_status(raised.exception), error_code(raised.exception)),
            (403, "AccessDenied"),
        )

    def test_wrong_secret_refused(self) -> None:
        """
        The session credentials are verified by SigV4: a wrong secret is
        refused with C{SignatureDoesNotMatch} 403.
        """
        credentials = dict(self.server.assume_role(_token(self.issuer))["Credentials"])
        credentials["SecretAccessKey"] += "-wrong"
        client = self.server.session_client(credentials)
        with self.assertRaises(ClientError) as raised:
            client.put_object(Bucket=self.server.bucket, Key="k", Body=b"x")
        self.assertEqual(
            (http_status(raised.exception), error_code(raised.exception)),
            (403, "SignatureDoesNotMatch"),
        )

    def test_account_form_arn(self) -> None:
        """
        The role is found by name: its ARN with an account id works too.
        """
        arn = role_arn(DEFAULT_ROLE_NAME, "123456789012")
        answer = self.server.assume_role(_token(self.issuer), role_arn=arn)
        self.assertTrue(answer["Credentials"]["AccessKeyId"])

    def test_session_length(self) -> None:
        """
        Sessions last C{DurationSeconds} (an hour by default), not just
        until the web identity token's C{exp} (five minutes here).
        """
        now = datetime.now(UTC)
        short = self.server.assume_role(_token(self.issuer), duration_seconds=900)
        default = self.server.assume_role(_token(self.issuer))
        slack = timedelta(seconds=_SLACK)
        self.assertLess(abs(_expiration(short) - (now + timedelta(seconds=900))), slack)
        self.assertLess(
            abs(
                _expiration(default)
                - (now + timedelta(seconds=DEFAULT_SESSION_SECONDS))
            ),
            slack,
        )

    def test_backend_options(self) -> None:
        """
        The C{backend_options} name the role, the STS endpoint and the
        audience, and no static keys.
        """
        options = self.server.backend_options()
        self.assertEqual(options["auth_type"], "oidc")
        self.assertEqual(options["oidc_role_arn"], self.server.role_arn)
        self.assertEqual(options["sts_endpoint"], self.server.endpoint)
        self.assertEqual(options["oidc_audience"], DEFAULT_AUDIENCE)
        self.assertEqual(options["oidc_subject"], SUBJECT)
        self.assertEqual(options["bucket_name"], self.server.bucket)
        self.assertFalse({"access_key_id", "secret_access_key"} & set(options))


class RefusalTests(SynchronousTestCase):
    """
    Tokens the role does not trust, or that its issuer did not sign, buy
    nothing; each refusal's STS error code and HTTP status.
    """

    @pytest.fixture(autouse=True)
    def _servers(self, federated: FederatedSeaweedFS, issuer: JWKSIssuer) -> None:
        self.server = federated
        self.issuer = issuer

    def _refused(self, token: str) -> tuple[int, str]:
        with self.assertRaises(ClientError) as raised:
            self.server.assume_role(token)
        error = raised.exception.response["Error"]
        self.assertEqual(error.get("Type"), "Sender")
        return http_status(raised.exception), error_code(raised.exception)

    def test_wrong_subject(self) -> None:
        """
        Another C{sub} fails the trust policy: C{AccessDenied} 403.
        """
        self.assertEqual(
            self._refused(_token(self.issuer, sub="someone-else")),
            (403, "AccessDenied"),
        )

    def test_wrong_audience(self) -> None:
        """
        Another C{aud} fails the trust policy: C{AccessDenied} 403; so does
        the right one in a list (SeaweedFS sets C{oidc:aud} only for a
        string C{aud}).
        """
        self.assertEqual(
            self._refused(_token(self.issuer, aud="api://something-else")),
            (403, "AccessDenied"),
        )
        self.assertEqual(
            self._refused(_token(self.issuer, aud=[DEFAULT_AUDIENCE])),
            (403, "AccessDenied"),
        )

    def test_wrong_issuer(self) -> None:
        """
        The issuer must match exactly (here with a trailing slash):
        C{AccessDenied} 403.
        """
        self.assertEqual(
            self._refused(_token(self.issuer, iss=self.issuer.url + "/")),
            (403, "AccessDenied"),
        )

    def test_unpublished_key(self) -> None:
        """
        A key id the issuer does not publish makes SeaweedFS refetch the key
        set once, then refuse: C{AccessDenied} 403. A published key id with
        another key's signature: C{InvalidParameterValue} 400.
        """
        before = self.issuer.hits(JWKS_PATH)
        self.assertEqual(
            self._refused(_token(self.issuer, key=SigningKey.rsa("forged"))),
            (403, "AccessDenied"),
        )
        self.assertEqual(self.issuer.hits(JWKS_PATH), before + 1)
        impostor = SigningKey.rsa(self.issuer.signing_key.kid)
        self.assertEqual(
            self._refused(_token(self.issuer, key=impostor)),
            (400, "InvalidParameterValue"),
        )

    def test_expired(self) -> None:
        """
        A token past its C{exp}: C{ExpiredTokenException} 400.
        """
        now = int(time.time())
        token = _token(self.issuer, iat=now - 400, nbf=now - 400, exp=now - 100)
        self.assertEqual(self._refused(token), (400, "ExpiredTokenException"))

    def test_not_yet_valid(self) -> None:
        """
        A token before its C{nbf}: C{InvalidParameterValue} 400.
        """
        token = _token(self.issuer, nbf=int(time.time()) + 600)
        self.assertEqual(self._refused(token), (400, "InvalidParameterValue"))


class KeyRotationTests(SynchronousTestCase):
    """
    SeaweedFS follows the issuer's key set without a restart.
    """

    @pytest.fixture(autouse=True)
    def _servers(self, federated: FederatedSeaweedFS, issuer: JWKSIssuer) -> None:
        self.server = federated
        self.issuer = issuer

    def test_new_key_accepted_at_once(self) -> None:
        """
        After the issuer publishes a new key (keeping the old one), a token
        signed with it is accepted on its first use, after one refetch of
        the key set (milliseconds), by the same SeaweedFS process; the old
        key still works. (The new key is a P-256 one: ES256 works as well
        as RS256.)
        """
        pid = self.server.pid
        old = self.issuer.signing_key
        self.server.assume_role(_token(self.issuer))
        new = SigningKey.ec(f"rotated-{time.monotonic_ns()}")
        before = self.issuer.hits(JWKS_PATH)
        self.issuer.publish(new)
        started = time.monotonic()
        answer = self.server.assume_role(_token(self.issuer, key=new))
        elapsed = time.monotonic() - started
        self.assertEqual(answer["SubjectFromWebIdentityToken"], SUBJECT)
        self.assertLess(elapsed, 5)
        self.assertEqual(self.issuer.hits(JWKS_PATH), before + 1)
        self.server.assume_role(_token(self.issuer, key=old))
        self.assertEqual(self.issuer.hits(JWKS_PATH), before + 1)
        self.assertEqual(self.server.pid, pid)
        self.assertTrue(self.server.process.running())

    def test_withdrawn_key_trusted_until_refetch(self) -> None:
        """
        A key the issuer withdraws stays trusted while the key set is cached
        (an hour); the next token with an unknown key id refetches the set,
        and then the withdrawn key is refused (C{AccessDenied} 403).
        """
        doomed = SigningKey.rsa(f"doomed-{time.monotonic_ns()}")
        self.issuer.publish(doomed)
        self.server.assume_role(_token(self.issuer, key=doomed))
        self.issuer.withdraw(doomed.kid)
        self.server.assume_role(_token(self.issuer, key=doomed))
        with self.assertRaises(ClientError):
            self.server.assume_role(_token(self.issuer, key=SigningKey.rsa("unknown")))
        with self.assertRaises(ClientError) as raised:
            self.server.assume_role(_token(self.issuer, key=doomed))
        self.assertEqual(
            (http_status(raised.exception), error_code(raised.exception)),
            (403, "AccessDenied"),
        )


@pytest.fixture(scope="module")
def undiscoverable(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[JWKSIssuer, FederatedSeaweedFS]]:
    """
    An issuer without a discovery document, and a SeaweedFS trusting it
    with a one-second C{jwksCacheTTLSeconds}.
    """
    with (
        start_jwks_issuer(serve_discovery=False) as issuer,
        start_seaweedfs_sts(
            tmp_path_factory.mktemp("seaweedfs-sts-undiscoverable"),
            issuer=issuer.url,
            subject=SUBJECT,
            jwks_cache_seconds=1,
        ) as server,
    ):
        yield issuer, server


class FallbackTests(SynchronousTestCase):
    """
    An issuer without a discovery document, and the cache lifetime setting
    SeaweedFS does not read.
    """

    @pytest.fixture(autouse=True)
    def _servers(self, undiscoverable: tuple[JWKSIssuer, FederatedSeaweedFS]) -> None:
        self.issuer, self.server = undiscoverable

    def test_without_discovery(self) -> None:
        """
        When discovery answers 404, SeaweedFS takes the keys from
        C{{issuer}/.well-known/jwks.json}; it tries discovery again on each
        refetch (here: for a new key id).
        """
        key = SigningKey.rsa(f"fresh-{time.monotonic_ns()}")
        self.issuer.publish(key)
        discovery, jwks = self.issuer.hits(DISCOVERY_PATH), self.issuer.hits()
        answer = self.server.assume_role(_token(self.issuer, key=key))
        self.assertEqual(answer["SubjectFromWebIdentityToken"], SUBJECT)
        self.assertEqual(self.issuer.hits(DISCOVERY_PATH), discovery + 1)
        self.assertEqual(self.issuer.hits(), jwks + 1)

    def test_cache_lifetime_not_configurable(self) -> None:
        """
        C{jwksCacheTTLSeconds} is ignored: two seconds after a one-second
        "lifetime", a withdrawn key is still trusted and the key set was not
        fetched again.
        """
        doomed = SigningKey.rsa(f"doomed-{time.monotonic_ns()}")
        self.issuer.publish(doomed)
        self.server.assume_role(_token(self.issuer, key=doomed))
        fetched = self.issuer.hits(JWKS_PATH)
        self.issuer.withdraw(doomed.kid)
        time.sleep(2)
        self.server.assume_role(_token(self.issuer, key=doomed))
        self.assertEqual(self.issuer.hits(JWKS_PATH), fetched)


class HTTPSIssuerTests(SynchronousTestCase):
    """
    An HTTPS issuer (L{tests.integration.oidc}) with its own CA, trusted
    through C{tlsCaCert}.
    """

    @pytest.fixture(autouse=True)
    def _servers(self, tmp_path: Path) -> Iterator[None]:
        with start_issuer(tmp_path / "issuer") as issuer:
            self.issuer: OIDCIssuer = issuer
            with start_seaweedfs_sts(
                tmp_path / "seaweedfs",
                issuer=issuer.url,
                subject=SUBJECT,
                tls_ca=issuer.ca_path,
            ) as self.server:
                yield

    def test_https_issuer(self) -> None:
        """
        A token of the HTTPS issuer buys credentials; the keys were fetched
        through its discovery document (C{jwks_uri} = C{/jwks}).
        """
        token = self.issuer.mint(
            self.issuer.claims(sub=SUBJECT, aud=DEFAULT_AUDIENCE, jti="x")
        )
        answer = self.server.assume_role(token)
        self.assertEqual(answer["SubjectFromWebIdentityToken"], SUBJECT)
        self.assertEqual(self.issuer.hits(), 1)
