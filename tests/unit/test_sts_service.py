"""
Tests for L{multistore.sts.service}, L{multistore.sts.xml} and the session
side of L{multistore.auth.authentication}: the STS endpoint driven through a
whole L{Gateway} in memory.

Issuers are L{FakeIssuer} resources behind L{Issuers}, a resource that
routes by host name, served through L{treq.testing.StubTreq}; tokens are
signed with PyJWT; time is a L{Clock}. Every answer is read with botocore's
own STS parser, so what the tests accept is what the AWS SDKs accept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, cast
from urllib.parse import quote, urlencode

import botocore.session  # type: ignore[import-untyped]
import jwt
from attrs import define, field
from botocore.parsers import QueryParser  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from multistore.auth.authentication import Authenticator
from multistore.auth.registry import StaticBucketRegistry, StaticCredentialRegistry
from multistore.auth.sessions import SessionKeys, unseal
from multistore.auth.signing import presign_url, sign_request
from multistore.bodies import BytesProducer
from multistore.config import AccessScope, BucketConfig, Config, RoleConfig
from multistore.gateway.pipeline import Gateway
from multistore.headers import HeaderList
from multistore.model import IncomingRequest, Response
from multistore.operations.dispatcher import Dispatcher
from multistore.sts.jwks import HTTPGetter, JwksCache
from multistore.sts.service import StsRoute
from multistore.testing import MemoryStore, MemoryStoreFactory
from tests.unit.test_gateway import HOST, NOW, body_of, memory_store, reads
from tests.unit.test_sts_jwks import EC_KEY, RSA_KEY, FakeIssuer, ec_jwk, rsa_jwk

ISSUER: Final = "https://issuer.example"
#: An issuer that answers, but that no role trusts.
FOREIGN_ISSUER: Final = "https://foreign.example"
#: An issuer that cannot be reached (it answers 503).
DOWN_ISSUER: Final = "https://down.example"

AUDIENCE: Final = "sts.multistore"
SUBJECT: Final = "repo:myorg/app:ref:refs/heads/main"
ROLE_ARN: Final = "arn:aws:iam::123456789012:role/ci"

#: A key the issuer does not publish (a forger's).
ROGUE_KEY: Final = rsa.generate_private_key(public_exponent=65537, key_size=2048)

OLD_KEY: Final = ("old", bytes(range(32)))
NEW_KEY: Final = ("new", bytes(range(64, 96)))

_READ: Final = frozenset({"get_object", "head_object", "list_bucket"})

ROLES: Final = (
    RoleConfig(
        role_id="ci",
        name="CI jobs of myorg",
        trusted_oidc_issuers=(ISSUER,),
        required_audiences=(AUDIENCE,),
        subject_conditions=("repo:myorg/*",),
        claim_conditions={"repository_owner": ("myorg",), "environment": ("prod*",)},
        max_session_duration_secs=7200,
        allowed_scopes=(
            AccessScope("data", ("{repository}/",), _READ),
            AccessScope("restricted", (), _READ),
            # Each of these names a claim that cannot fill it, and must be
            # left out rather than widened.
            AccessScope("data", ("{missing}/",), _READ),
            AccessScope("data", ("{run_number}/",), _READ),
            AccessScope("{bucket_claim}", (), _READ),
        ),
    ),
    RoleConfig(
        role_id="guest",
        name="anyone of the issuer",
        trusted_oidc_issuers=(ISSUER,),
        allow_any_audience=True,
        max_session_duration_secs=900,
        allowed_scopes=(
            AccessScope("data", ("{sub}/",), _READ),
            AccessScope("restricted", (), _READ),
        ),
    ),
    RoleConfig(
        role_id="down",
        name="trusts an issuer that is down",
        trusted_oidc_issuers=(DOWN_ISSUER,),
        required_audiences=(AUDIENCE,),
    ),
)

#: The backend bucket behind both buckets.
STORE: Final = "objects"

CONFIG: Final = Config(
    buckets=(
        BucketConfig(
            name="data", backend_type="fake", backend_options={"bucket_name": STORE}
        ),
        BucketConfig(
            name="restricted",
            backend_type="fake",
            allowed_roles=("ci",),
            backend_options={"bucket_name": STORE},
        ),
    ),
    roles=ROLES,
)

OBJECTS: Final = {
    "myorg/app/file.txt": b"inside",
    "other/secret.txt": b"outside",
    f"{SUBJECT}/mine.txt": b"guest",
}

_STS_MODEL: Final = botocore.session.get_session().get_service_model("sts")


class Issuers(Resource):
    """
    Several OIDC issuers on one resource, chosen by the request's host name;
    a host with no issuer answers C{503}, as an issuer that is down.

    :ivar issuers: the issuers, by host name.
    :ivar down_hits: requests to hosts with no issuer.
    """

    isLeaf = True

    def __init__(self, issuers: Mapping[bytes, FakeIssuer]) -> None:
        super().__init__()
        self.issuers = dict(issuers)
        self.down_hits = 0

    def render(self, request: Request) -> bytes | int:
        """
        Hand the request to the issuer of its host.
        """
        issuer = self.issuers.get(request.getRequestHostname())
        if issuer is None:
            self.down_hits += 1
            request.setResponseCode(503)
            return b"unavailable"
        return issuer.render(request)


def claims(**overrides: Any) -> dict[str, Any]:
    """
    The claims of a GitHub-Actions-like ID token issued at L{NOW}, valid for
    five minutes; an override of C{None} removes the claim.
    """
    now = int(NOW.timestamp())
    result: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "repository": "myorg/app",
        "repository_owner": "myorg",
        "environment": "production",
        "run_number": 42,
        "bucket_claim": "data*",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    result.update(overrides)
    return {k: v for k, v in result.items() if v is not None}


def token(
    key: Any = RSA_KEY, algorithm: str = "RS256", kid: str = "rsa-1", **overrides: Any
) -> str:
    """
    An ID token signed with PyJWT; see L{claims}.
    """
    return jwt.encode(
        claims(**overrides), key, algorithm=algorithm, headers={"kid": kid}
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made_token(header: Mapping[str, Any], signature: bytes) -> str:
    """
    A token with ``header`` and L{claims}, signed with ``signature`` as is
    (for algorithms PyJWT would rather not produce).
    """
    return ".".join(
        (
            _b64(json.dumps(dict(header)).encode()),
            _b64(json.dumps(claims()).encode()),
            _b64(signature),
        )
    )


def hs256_token(secret: bytes) -> str:
    """
    An HS256 token over L{claims}, MACed with ``secret``.
    """
    header = _b64(json.dumps({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims()).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


def _encoded(params: Mapping[str, str]) -> str:
    return urlencode(params, quote_via=quote)


@define
class Answer:
    """
    An STS answer, as botocore reads it.

    :ivar status: the HTTP status.
    :ivar parsed: what botocore's STS parser made of the body.
    :ivar response: the response itself.
    """

    status: int
    parsed: dict[str, Any]
    response: Response

    @property
    def code(self) -> str:
        """
        The error code, or the empty string for a success.
        """
        return str(self.parsed.get("Error", {}).get("Code", ""))

    @property
    def credentials(self) -> dict[str, Any]:
        """
        The minted credentials.
        """
        return cast(dict[str, Any], self.parsed["Credentials"])


@define
class World:
    """
    A gateway with STS on, in front of a dict store and fake issuers.

    :ivar gateway: the gateway.
    :ivar clock: its time.
    :ivar issuer: the trusted issuer.
    :ivar foreign: the issuer no role trusts.
    :ivar issuers: every issuer.
    :ivar stub: the HTTP client the JWKS cache uses.
    :ivar store: the store behind every bucket.
    """

    gateway: Gateway
    clock: Clock
    issuer: FakeIssuer
    foreign: FakeIssuer
    issuers: Issuers
    stub: StubTreq
    store: MemoryStore
    keys: SessionKeys = field(repr=False)


def world(
    keys: Sequence[tuple[str, bytes]] = (OLD_KEY,), clock: Clock | None = None
) -> World:
    """
    Build a L{World} whose session tokens are sealed and opened with
    ``keys``, its clock at L{NOW} unless given.
    """
    if clock is None:
        clock = Clock()
        clock.advance(NOW.timestamp())
    issuer = FakeIssuer(ISSUER, [rsa_jwk(RSA_KEY, "rsa-1"), ec_jwk(EC_KEY, "ec-1")])
    foreign = FakeIssuer(FOREIGN_ISSUER, [rsa_jwk(RSA_KEY, "rsa-1")])
    issuers = Issuers({b"issuer.example": issuer, b"foreign.example": foreign})
    stub = StubTreq(issuers)
    session_keys = SessionKeys(list(keys))
    credentials = StaticCredentialRegistry.from_config(CONFIG)
    buckets = StaticBucketRegistry.from_config(CONFIG)
    store = memory_store(dict(OBJECTS))
    route = StsRoute(
        credentials=credentials,
        keys=session_keys,
        jwks=JwksCache(clock, cast(HTTPGetter, stub)),
        authenticator=Authenticator(
            credentials=credentials, clock=clock, sessions=session_keys
        ),
        clock=clock,
    )
    gateway = Gateway(
        buckets=buckets,
        credentials=credentials,
        dispatcher=Dispatcher(
            stores=MemoryStoreFactory(stores={STORE: store}), buckets=buckets
        ),
        clock=clock,
        routes=[route],
        sessions=session_keys,
        access_log=False,
    )
    return World(gateway, clock, issuer, foreign, issuers, stub, store, session_keys)


def form_request(path: str, params: Mapping[str, str]) -> IncomingRequest:
    """
    A form C{POST} of ``params`` to ``path``, as the AWS SDKs send STS
    calls.
    """
    body = _encoded(params).encode("ascii")
    return IncomingRequest(
        method="POST",
        raw_path=path.encode("ascii"),
        headers=HeaderList(
            [
                ("host", HOST),
                ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("content-length", str(len(body))),
            ]
        ),
        body=BytesProducer(body),
    )


def query_request(params: Mapping[str, str]) -> IncomingRequest:
    """
    A C{GET /.sts} with ``params`` in the query string.
    """
    return IncomingRequest(
        method="GET",
        raw_path=b"/.sts",
        raw_query=_encoded(params).encode("ascii"),
        headers=HeaderList([("host", HOST)]),
    )


def signed_request(
    method: str,
    target: str,
    access_key: str,
    secret: str,
    session_token: str | None,
    when: datetime,
    *,
    service: str = "s3",
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
) -> IncomingRequest:
    """
    A request signed with SigV4 in its header, with a session token.
    """
    signed_headers = sign_request(
        method,
        f"http://{HOST}{target}",
        HeaderList(list(headers)),
        hashlib.sha256(body).hexdigest(),
        access_key,
        secret,
        session_token,
        "us-east-1",
        when,
        service,
    )
    path, _, query = target.partition("?")
    return IncomingRequest(
        method=method,
        raw_path=path.encode("ascii"),
        raw_query=query.encode("ascii"),
        headers=signed_headers,
        body=BytesProducer(body) if body else None,
    )


def assume_params(web_token: str, role: str = "ci", **extra: str) -> dict[str, str]:
    """
    The parameters of an C{AssumeRoleWithWebIdentity} call.
    """
    return {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": role,
        "RoleSessionName": "build-17",
        "WebIdentityToken": web_token,
        **extra,
    }


@define
class Session:
    """
    Temporary credentials, as a client holds them.
    """

    access_key: str
    secret: str
    token: str
    expiration: datetime


class _StsCase(SynchronousTestCase):
    """
    Helpers to send requests through a L{World}.
    """

    def setUp(self) -> None:
        """
        Each test gets a world of its own.
        """
        self.world = world()

    def send(self, request: IncomingRequest, where: World | None = None) -> Response:
        """
        Answer ``request``, letting the fake issuers answer as needed.
        """
        where = where if where is not None else self.world
        answer = where.gateway.handle(request, where.gateway.start())
        where.stub.flush()
        return self.successResultOf(answer)

    def sts(
        self,
        request: IncomingRequest,
        operation: str = "AssumeRoleWithWebIdentity",
        where: World | None = None,
    ) -> Answer:
        """
        Send an STS request; read the answer with botocore's STS parser and
        check what every STS answer has.
        """
        response = self.send(request, where)
        body = body_of(response)
        shape = _STS_MODEL.operation_model(operation).output_shape
        parsed = QueryParser().parse(
            {"body": body, "headers": {}, "status_code": response.status}, shape
        )
        self.assertEqual(response.headers.get("content-type"), "text/xml")
        self.assertEqual(
            parsed["ResponseMetadata"]["RequestId"],
            response.headers.get("x-amzn-requestid"),
        )
        return Answer(response.status, parsed, response)

    def assume(self, web_token: str | None = None, **extra: str) -> Answer:
        """
        C{AssumeRoleWithWebIdentity} as a form C{POST /}, as boto3 sends it.
        """
        params = assume_params(web_token if web_token is not None else token())
        params.update(extra)
        return self.sts(form_request("/", params))

    def session(
        self, web_token: str | None = None, where: World | None = None, **extra: str
    ) -> Session:
        """
        Assume a role successfully and return the credentials.
        """
        params = assume_params(web_token if web_token is not None else token())
        params.update(extra)
        answer = self.sts(form_request("/", params), where=where)
        self.assertEqual(answer.status, 200, answer.parsed)
        credentials = answer.credentials
        return Session(
            credentials["AccessKeyId"],
            credentials["SecretAccessKey"],
            credentials["SessionToken"],
            credentials["Expiration"],
        )

    def refused(
        self, answer: Answer, code: str, status: int = 400, sender: bool = True
    ) -> None:
        """
        Assert that ``answer`` is the STS error ``code``.
        """
        self.assertEqual((answer.status, answer.code), (status, code), answer.parsed)
        self.assertEqual(
            answer.parsed["Error"]["Type"], "Sender" if sender else "Receiver"
        )
        self.assertNotIn(b"Traceback", body_of(answer.response))

    def now(self, where: World | None = None) -> datetime:
        """
        The world's current time.
        """
        clock = (where if where is not None else self.world).clock
        return datetime.fromtimestamp(clock.seconds(), NOW.tzinfo)

    def s3(
        self,
        session: Session,
        method: str,
        target: str,
        where: World | None = None,
        session_token: str | None = None,
    ) -> Response:
        """
        An S3 request signed with ``session``'s credentials, now.
        """
        return self.send(
            signed_request(
                method,
                target,
                session.access_key,
                session.secret,
                session.token if session_token is None else session_token,
                self.now(where),
            ),
            where,
        )

    def s3_error(self, response: Response) -> tuple[int, str]:
        """
        The status and S3 error code of ``response``.
        """
        root = etree.fromstring(body_of(response))
        return response.status, root.findtext("Code") or ""


class AssumeRoleTests(_StsCase):
    """
    C{AssumeRoleWithWebIdentity} answers with credentials that every AWS SDK
    reads.
    """

    def test_answer(self) -> None:
        """
        A trusted token gets credentials shaped as AWS's (a C{STSPRXY}
        access key id of 20 characters, a 40-character secret), an hour by
        default, and the subject, audience, provider and assumed role.
        """
        answer = self.assume()
        self.assertEqual(answer.status, 200, answer.parsed)
        credentials = answer.credentials
        self.assertTrue(credentials["AccessKeyId"].startswith("STSPRXY"))
        self.assertEqual(len(credentials["AccessKeyId"]), 20)
        self.assertEqual(len(credentials["SecretAccessKey"]), 40)
        self.assertTrue(credentials["SessionToken"])
        self.assertEqual(credentials["Expiration"], NOW + timedelta(hours=1))
        self.assertEqual(answer.parsed["SubjectFromWebIdentityToken"], SUBJECT)
        self.assertEqual(answer.parsed["Audience"], AUDIENCE)
        self.assertEqual(answer.parsed["Provider"], ISSUER)
        user = answer.parsed["AssumedRoleUser"]
        self.assertEqual(
            user["Arn"], "arn:aws:sts::000000000000:assumed-role/ci/build-17"
        )
        self.assertTrue(user["AssumedRoleId"].startswith("AROA"))
        self.assertTrue(user["AssumedRoleId"].endswith(":build-17"))

    def test_each_session_new(self) -> None:
        """
        Two exchanges of one token give two different sets of credentials.
        """
        first = self.assume().credentials
        second = self.assume().credentials
        self.assertNotEqual(first["AccessKeyId"], second["AccessKeyId"])
        self.assertNotEqual(first["SecretAccessKey"], second["SecretAccessKey"])

    def test_query(self) -> None:
        """
        Parameters are taken from the query string at C{/.sts}, as the Rust
        system takes them.
        """
        answer = self.sts(query_request(assume_params(token())))
        self.assertEqual(answer.status, 200, answer.parsed)

    def test_form_at_sts_path(self) -> None:
        """
        Parameters are taken from a form body posted to C{/.sts}.
        """
        answer = self.sts(form_request("/.sts", assume_params(token())))
        self.assertEqual(answer.status, 200, answer.parsed)

    def test_form_at_root(self) -> None:
        """
        Parameters are taken from a form body posted to C{/}, where the AWS
        SDKs send STS calls.
        """
        answer = self.sts(form_request("/", assume_params(token())))
        self.assertEqual(answer.status, 200, answer.parsed)

    def test_role_arn(self) -> None:
        """
        A role is named by its C{role_id}, or by an IAM role ARN ending in
        it, as SDKs insist on ARNs.
        """
        for role in ("ci", ROLE_ARN):
            answer = self.sts(form_request("/", assume_params(token(), role=role)))
            self.assertEqual(answer.status, 200, (role, answer.parsed))

    def test_es256(self) -> None:
        """
        A token signed with the issuer's P-256 key (ES256) is accepted.
        """
        answer = self.assume(token(key=EC_KEY, algorithm="ES256", kid="ec-1"))
        self.assertEqual(answer.status, 200, answer.parsed)

    def test_keys_fetched_once(self) -> None:
        """
        The issuer's discovery document and key set are fetched once, then
        kept: further exchanges ask the issuer nothing.
        """
        for _ in range(3):
            self.assertEqual(self.assume().status, 200)
        self.assertEqual(
            dict(self.world.issuer.hits),
            {b"/.well-known/openid-configuration": 1, b"/jwks": 1},
        )

    def test_session_name_from_subject(self) -> None:
        """
        Without a C{RoleSessionName}, the session is named after the token's
        subject, made of the characters AWS allows.
        """
        params = assume_params(token())
        del params["RoleSessionName"]
        answer = self.sts(form_request("/", params))
        self.assertEqual(answer.status, 200, answer.parsed)
        self.assertEqual(
            answer.parsed["AssumedRoleUser"]["Arn"],
            "arn:aws:sts::000000000000:assumed-role/ci/"
            "repo_myorg_app_ref_refs_heads_main",
        )


class DurationTests(_StsCase):
    """
    C{DurationSeconds} is clamped to [900, the role's maximum], and the
    clamped length is the C{Expiration} reported.
    """

    def expiration(self, duration: str, role: str = "ci") -> datetime:
        """
        :return: the C{Expiration} of a session of ``role`` asked for
            ``duration``.
        """
        answer = self.sts(
            form_request(
                "/", assume_params(token(), role=role, DurationSeconds=duration)
            )
        )
        self.assertEqual(answer.status, 200, answer.parsed)
        return cast(datetime, answer.credentials["Expiration"])

    def test_within(self) -> None:
        """
        A duration within the role's limits is granted as asked.
        """
        self.assertEqual(self.expiration("1800"), NOW + timedelta(seconds=1800))

    def test_too_short(self) -> None:
        """
        A duration under 900 seconds gives 900 seconds.
        """
        self.assertEqual(self.expiration("60"), NOW + timedelta(seconds=900))

    def test_too_long(self) -> None:
        """
        A duration over the role's maximum gives the maximum.
        """
        self.assertEqual(self.expiration("100000"), NOW + timedelta(seconds=7200))
        self.assertEqual(
            self.expiration("3600", role="guest"), NOW + timedelta(seconds=900)
        )

    def test_not_a_number(self) -> None:
        """
        A C{DurationSeconds} that is not a whole number is a
        C{ValidationError}.
        """
        for duration in ("ten", "-5", "1.5"):
            answer = self.assume(DurationSeconds=duration)
            self.refused(answer, "ValidationError")


class ScopeTests(_StsCase):
    """
    A session's scopes are its role's, with templates filled from the
    token's claims, sealed inside its session token.
    """

    def scopes(self, session: Session) -> tuple[AccessScope, ...]:
        """
        :return: the scopes sealed in ``session``'s token.
        """
        return unseal(
            session.token, session.access_key, self.world.keys, self.now()
        ).scopes

    def test_templates(self) -> None:
        """
        C{{repository}} is filled with the token's C{repository} claim;
        scopes naming a missing claim, a claim that is not a string, or a
        claim that would turn a bucket name into a pattern are left out.
        """
        self.assertEqual(
            self.scopes(self.session()),
            (
                AccessScope("data", ("myorg/app/",), _READ),
                AccessScope("restricted", (), _READ),
            ),
        )

    def test_subject_template(self) -> None:
        """
        C{{sub}} is filled with the token's subject.
        """
        session = self.session(token(aud="anything"), RoleArn="guest")
        self.assertEqual(
            self.scopes(session)[0], AccessScope("data", (f"{SUBJECT}/",), _READ)
        )

    def test_sealed(self) -> None:
        """
        The session token does not show the scopes, the subject or the
        secret in clear.
        """
        session = self.session()
        for text in (session.secret, "myorg/app", SUBJECT, "restricted"):
            self.assertNotIn(
                text.encode(),
                base64.urlsafe_b64decode(
                    session.token + "=" * (-len(session.token) % 4)
                ),
            )
            self.assertNotIn(text, session.token)


class RefusalTests(_StsCase):
    """
    Every way an exchange fails, with the code AWS STS gives.
    """

    def test_missing_parameters(self) -> None:
        """
        A call without C{RoleArn} or C{WebIdentityToken} is a
        C{ValidationError}.
        """
        for missing in ("RoleArn", "WebIdentityToken"):
            params = assume_params(token())
            del params[missing]
            answer = self.sts(form_request("/", params))
            self.refused(answer, "ValidationError")

    def test_unknown_role(self) -> None:
        """
        An unknown role is C{AccessDenied}, exactly as a role that does not
        accept the token, so a caller cannot probe which roles exist.
        """
        unknown = self.sts(form_request("/", assume_params(token(), role="nope")))
        untrusting = self.assume(token(sub="repo:evil/app:ref:refs/heads/main"))
        self.refused(unknown, "AccessDenied", 403)
        self.refused(untrusting, "AccessDenied", 403)
        self.assertEqual(
            unknown.parsed["Error"]["Message"], untrusting.parsed["Error"]["Message"]
        )
        unknown_arn = self.sts(
            form_request(
                "/", assume_params(token(), role="arn:aws:iam::123456789012:role/nope")
            )
        )
        self.refused(unknown_arn, "AccessDenied", 403)

    def test_untrusted_issuer(self) -> None:
        """
        A token from an issuer the role does not trust is
        C{InvalidIdentityToken}, and that issuer is never contacted.
        """
        answer = self.assume(token(iss=FOREIGN_ISSUER))
        self.refused(answer, "InvalidIdentityToken")
        self.assertEqual(sum(self.world.foreign.hits.values()), 0)

    def test_wrong_audience(self) -> None:
        """
        A token without the role's audience is C{InvalidIdentityToken}, as
        is one with no audience at all.
        """
        self.refused(self.assume(token(aud="someone-else")), "InvalidIdentityToken")
        self.refused(self.assume(token(aud=None)), "InvalidIdentityToken")
        self.refused(self.assume(token(aud=["a", "b"])), "InvalidIdentityToken")
        self.assertEqual(self.assume(token(aud=["a", AUDIENCE])).status, 200)

    def test_subject(self) -> None:
        """
        A subject that matches none of the role's subject conditions is
        C{AccessDenied}, as is a token without a subject.
        """
        self.refused(
            self.assume(token(sub="repo:other/app:ref:refs/heads/main")),
            "AccessDenied",
            403,
        )
        self.refused(self.assume(token(sub=None)), "AccessDenied", 403)

    def test_claim_conditions(self) -> None:
        """
        A claim condition that fails (another value, a missing claim, a
        claim that is not a string) is C{AccessDenied}.
        """
        for overrides in (
            {"repository_owner": "evil"},
            {"repository_owner": None},
            {"repository_owner": ["myorg"]},
            {"environment": "staging"},
        ):
            self.refused(self.assume(token(**overrides)), "AccessDenied", 403)

    def test_expired(self) -> None:
        """
        A token whose C{exp} is past (beyond the leeway) is
        C{ExpiredTokenException}.
        """
        now = int(NOW.timestamp())
        answer = self.assume(token(iat=now - 900, nbf=now - 900, exp=now - 120))
        self.refused(answer, "ExpiredTokenException")

    def test_not_yet_valid(self) -> None:
        """
        A token whose C{nbf} is ahead (beyond the leeway) is
        C{InvalidIdentityToken}.
        """
        now = int(NOW.timestamp())
        self.refused(self.assume(token(nbf=now + 600)), "InvalidIdentityToken")

    def test_missing_exp(self) -> None:
        """
        A token without C{exp} is C{InvalidIdentityToken}.
        """
        self.refused(self.assume(token(exp=None)), "InvalidIdentityToken")

    def test_issuer_unreachable(self) -> None:
        """
        When the issuer's keys cannot be fetched the answer is
        C{IDPCommunicationError}, which clients may retry.
        """
        answer = self.sts(
            form_request("/", assume_params(token(iss=DOWN_ISSUER), role="down"))
        )
        self.refused(answer, "IDPCommunicationError")
        self.assertEqual(self.world.issuers.down_hits, 1)

    def test_bad_signature(self) -> None:
        """
        A token signed by a key the issuer does not publish, under one of
        the issuer's key ids, is C{InvalidIdentityToken}.
        """
        self.refused(self.assume(token(key=ROGUE_KEY)), "InvalidIdentityToken")

    def test_unknown_kid(self) -> None:
        """
        A token naming a key id the issuer does not publish is
        C{InvalidIdentityToken}.
        """
        self.refused(
            self.assume(token(key=ROGUE_KEY, kid="rogue")), "InvalidIdentityToken"
        )

    def test_alg_none(self) -> None:
        """
        An unsigned token (C{alg: none}) is C{InvalidIdentityToken}, refused
        before the issuer is asked anything.
        """
        for signature in (b"", b"x"):
            answer = self.assume(
                hand_made_token({"alg": "none", "kid": "rsa-1"}, signature)
            )
            self.refused(answer, "InvalidIdentityToken")
        self.assertEqual(sum(self.world.issuer.hits.values()), 0)

    def test_hmac(self) -> None:
        """
        An HS256 token is C{InvalidIdentityToken}, with any secret (the
        issuer's public key among them), refused before the issuer is asked
        anything.
        """
        public_pem = RSA_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for secret in (b"0123456789abcdef0123456789abcdef", public_pem):
            self.refused(self.assume(hs256_token(secret)), "InvalidIdentityToken")
        self.assertEqual(sum(self.world.issuer.hits.values()), 0)

    def test_not_a_token(self) -> None:
        """
        Something that is not a JWT is C{InvalidIdentityToken}.
        """
        for text in ("not-a-token", "a.b.c", "x" * 20000):
            self.refused(self.assume(text), "InvalidIdentityToken")

    def test_unknown_action(self) -> None:
        """
        An action this STS does not serve is C{InvalidAction}.
        """
        answer = self.sts(
            form_request(
                "/",
                {"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": "ci"},
            )
        )
        self.refused(answer, "InvalidAction")

    def test_bad_session_name(self) -> None:
        """
        A C{RoleSessionName} AWS would refuse is a C{ValidationError}.
        """
        for name in ("x", "has space", "a" * 65):
            self.refused(self.assume(RoleSessionName=name), "ValidationError")


class SessionRequestTests(_StsCase):
    """
    S3 requests signed with temporary credentials and their session token
    are authorized by the scopes sealed in the token.
    """

    def test_inside_scope(self) -> None:
        """
        A read and a listing inside the granted prefix are allowed.
        """
        session = self.session()
        response = self.s3(session, "GET", "/data/myorg/app/file.txt")
        self.assertEqual((response.status, body_of(response)), (200, b"inside"))
        listing = self.s3(session, "GET", "/data?list-type=2&prefix=myorg%2Fapp%2F")
        self.assertEqual(listing.status, 200, body_of(listing))
        self.assertIn(b"myorg/app/file.txt", body_of(listing))

    def test_outside_scope(self) -> None:
        """
        A read outside the granted prefix, a listing of the whole bucket and
        a write are C{AccessDenied}.
        """
        session = self.session()
        for method, target in (
            ("GET", "/data/other/secret.txt"),
            ("GET", "/data?list-type=2"),
            ("PUT", "/data/myorg/app/new.txt"),
        ):
            response = self.s3(session, method, target)
            self.assertEqual(self.s3_error(response), (403, "AccessDenied"), target)
        self.assertEqual(reads(self.world.store), [])

    def test_without_token(self) -> None:
        """
        The temporary credentials without their session token are not known
        (C{InvalidAccessKeyId}).
        """
        session = self.session()
        request = signed_request(
            "GET",
            "/data/myorg/app/file.txt",
            session.access_key,
            session.secret,
            None,
            self.now(),
        )
        self.assertEqual(self.s3_error(self.send(request)), (403, "InvalidAccessKeyId"))

    def test_wrong_secret(self) -> None:
        """
        A request signed with another secret, with the right token, is
        C{SignatureDoesNotMatch}.
        """
        session = self.session()
        wrong = Session(session.access_key, "x" * 40, session.token, session.expiration)
        self.assertEqual(
            self.s3_error(self.s3(wrong, "GET", "/data/myorg/app/file.txt")),
            (403, "SignatureDoesNotMatch"),
        )

    def presigned(self, url: str) -> IncomingRequest:
        """
        A C{GET} of presigned ``url`` (of the test host).
        """
        target = url.removeprefix(f"http://{HOST}")
        path, _, query = target.partition("?")
        return IncomingRequest(
            method="GET",
            raw_path=path.encode("ascii"),
            raw_query=query.encode("ascii"),
            headers=HeaderList([("host", HOST)]),
        )

    def test_presigned_v4(self) -> None:
        """
        A SigV4 presigned URL carrying the session token as
        C{X-Amz-Security-Token} is authorized by the session's scopes.
        """
        session = self.session()
        for key, expected in (
            ("myorg/app/file.txt", 200),
            ("other/secret.txt", 403),
        ):
            url = presign_url(
                "GET",
                f"http://{HOST}/data/{key}",
                session.access_key,
                session.secret,
                session.token,
                "us-east-1",
                self.now(),
                300,
            )
            response = self.send(self.presigned(url))
            self.assertEqual(response.status, expected, body_of(response))

    def test_presigned_v2(self) -> None:
        """
        A SigV2 presigned URL carries the session token as the
        C{x-amz-security-token} header moved into the query (as boto3's
        default presigner makes them); it is found there, signed, and
        authorizes by the session's scopes.
        """
        session = self.session()
        expires = str(int(self.world.clock.seconds()) + 300)
        for key, expected in (
            ("myorg/app/file.txt", 200),
            ("other/secret.txt", 403),
        ):
            signed = (
                f"GET\n\n\n{expires}\nx-amz-security-token:{session.token}\n/data/{key}"
            )
            signature = base64.b64encode(
                hmac.new(
                    session.secret.encode(), signed.encode(), hashlib.sha1
                ).digest()
            ).decode("ascii")
            query = _encoded(
                {
                    "AWSAccessKeyId": session.access_key,
                    "Expires": expires,
                    "Signature": signature,
                    "x-amz-security-token": session.token,
                }
            )
            url = f"http://{HOST}/data/{key}?{query}"
            response = self.send(self.presigned(url))
            self.assertEqual(response.status, expected, body_of(response))
        # The token is signed: another one does not pass for it.
        other = self.session()
        query = query.replace(session.token, other.token)
        response = self.send(
            self.presigned(f"http://{HOST}/data/other/secret.txt?{query}")
        )
        self.assertEqual(self.s3_error(response), (400, "InvalidToken"))

    def test_tampered(self) -> None:
        """
        A session token with any character changed is C{InvalidToken}.
        """
        session = self.session()
        raw = bytearray(
            base64.urlsafe_b64decode(session.token + "=" * (-len(session.token) % 4))
        )
        for position in (0, 2, len(raw) // 2, len(raw) - 1):
            altered = bytearray(raw)
            altered[position] ^= 0x01
            tampered = _b64(bytes(altered))
            response = self.s3(
                session, "GET", "/data/myorg/app/file.txt", session_token=tampered
            )
            self.assertEqual(self.s3_error(response), (400, "InvalidToken"), position)
        truncated = session.token[:-4]
        response = self.s3(
            session, "GET", "/data/myorg/app/file.txt", session_token=truncated
        )
        self.assertEqual(self.s3_error(response), (400, "InvalidToken"))

    def test_other_access_key(self) -> None:
        """
        A session token presented with the access key id of another session
        is C{InvalidToken}, even signed with that session's secret.
        """
        first, second = self.session(), self.session()
        borrowed = Session(
            second.access_key, second.secret, first.token, second.expiration
        )
        response = self.s3(borrowed, "GET", "/data/myorg/app/file.txt")
        self.assertEqual(self.s3_error(response), (400, "InvalidToken"))

    def test_foreign_key(self) -> None:
        """
        A session token sealed by an instance with other keys is
        C{InvalidToken}, and the refusal does not say why.
        """
        foreign = world(keys=[("elsewhere-7", bytes(range(1, 33)))])
        session = self.session(where=foreign)
        response = self.s3(session, "GET", "/data/myorg/app/file.txt")
        self.assertEqual(self.s3_error(response), (400, "InvalidToken"))
        self.assertNotIn(b"elsewhere-7", body_of(response))
        self.assertIn(
            b"<Message>The provided token is malformed or otherwise invalid.</Message>",
            body_of(response),
        )

    def test_expired(self) -> None:
        """
        A session used after its expiration is C{ExpiredToken}, though the
        request is signed at the current time.
        """
        session = self.session(DurationSeconds="900")
        self.world.clock.advance(899)
        self.assertEqual(
            self.s3(session, "GET", "/data/myorg/app/file.txt").status, 200
        )
        self.world.clock.advance(1)
        response = self.s3(session, "GET", "/data/myorg/app/file.txt")
        self.assertEqual(self.s3_error(response), (400, "ExpiredToken"))

    def test_allowed_roles(self) -> None:
        """
        A bucket listing C{allowed_roles} admits sessions of those roles
        only, whatever the scopes of others say.
        """
        ci = self.session()
        self.assertEqual(self.s3(ci, "GET", "/restricted?list-type=2").status, 200)
        guest = self.session(token(aud="anything"), RoleArn="guest")
        response = self.s3(guest, "GET", "/restricted?list-type=2")
        self.assertEqual(self.s3_error(response), (403, "AccessDenied"))
        mine = self.s3(guest, "GET", f"/data/{quote(SUBJECT, safe='/')}/mine.txt")
        self.assertEqual((mine.status, body_of(mine)), (200, b"guest"))

    def test_caller_identity(self) -> None:
        """
        C{GetCallerIdentity}, signed for service C{sts} with the session,
        names the assumed role and session.
        """
        session = self.session()
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        request = signed_request(
            "POST",
            "/",
            session.access_key,
            session.secret,
            session.token,
            self.now(),
            service="sts",
            body=body,
            headers=[
                ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("content-length", str(len(body))),
            ],
        )
        answer = self.sts(request, "GetCallerIdentity")
        self.assertEqual(answer.status, 200, answer.parsed)
        self.assertEqual(
            answer.parsed["Arn"], "arn:aws:sts::000000000000:assumed-role/ci/build-17"
        )
        self.assertEqual(answer.parsed["Account"], "000000000000")
        self.assertTrue(answer.parsed["UserId"].endswith(":build-17"))

    def test_caller_identity_unsigned(self) -> None:
        """
        An unsigned C{GetCallerIdentity} is refused with
        C{MissingAuthenticationToken}.
        """
        answer = self.sts(
            form_request("/", {"Action": "GetCallerIdentity"}), "GetCallerIdentity"
        )
        self.refused(answer, "MissingAuthenticationToken", 403)

    def test_caller_identity_s3_signature(self) -> None:
        """
        A C{GetCallerIdentity} signed for service C{s3} is refused: a
        signature is good for one service only.
        """
        session = self.session()
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        request = signed_request(
            "POST",
            "/",
            session.access_key,
            session.secret,
            session.token,
            self.now(),
            service="s3",
            body=body,
            headers=[("content-type", "application/x-www-form-urlencoded")],
        )
        answer = self.sts(request, "GetCallerIdentity")
        self.assertEqual(answer.status, 400, answer.parsed)
        self.assertEqual(answer.code, "AuthorizationHeaderMalformed")


class KeyRotationTests(_StsCase):
    """
    Session token keys rotate without ending live sessions: the first key
    seals, every key opens.
    """

    def test_old_token_opens_after_rotation(self) -> None:
        """
        A token sealed under the old key opens on an instance configured
        with C{[new, old]}.
        """
        session = self.session()
        rotated = world(keys=[NEW_KEY, OLD_KEY], clock=self.world.clock)
        response = self.s3(session, "GET", "/data/myorg/app/file.txt", where=rotated)
        self.assertEqual((response.status, body_of(response)), (200, b"inside"))

    def test_new_token_needs_new_key(self) -> None:
        """
        A token sealed under the new key opens with C{[new]} alone, but not
        with C{[old]}.
        """
        rotated = world(keys=[NEW_KEY, OLD_KEY], clock=self.world.clock)
        session = self.session(where=rotated)
        only_new = world(keys=[NEW_KEY], clock=self.world.clock)
        response = self.s3(session, "GET", "/data/myorg/app/file.txt", where=only_new)
        self.assertEqual(response.status, 200)
        response = self.s3(session, "GET", "/data/myorg/app/file.txt")
        self.assertEqual(self.s3_error(response), (400, "InvalidToken"))
