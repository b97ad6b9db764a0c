# -*- test-case-name: tests.unit.test_sts_service -*-
"""
The STS endpoint: ``AssumeRoleWithWebIdentity`` and ``GetCallerIdentity``.

Requests arrive where the Rust system takes them, at ``/.sts`` (parameters
in the query string or a form body), and where AWS SDKs send them, as a form
``POST /`` (boto3, the AWS CLI and the SDKs' web identity credential
provider with ``AWS_ENDPOINT_URL_STS``). Answers and errors are AWS STS's
documents.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qsl

from attrs import define
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from multistore.auth.authentication import Authenticator, utcnow
from multistore.auth.sessions import SessionKeys, mint, seal
from multistore.bodies import BytesProducer, collect
from multistore.config import RoleConfig
from multistore.headers import HeaderList
from multistore.interfaces import ICredentialRegistry, IRouteHandler
from multistore.model import Identity, IncomingRequest, Response
from multistore.s3.errors import S3Error
from multistore.s3.request import parse_query
from multistore.sts.jwks import JwksCache
from multistore.sts.jwt import (
    ExpiredIdentityToken,
    IdpCommunicationError,
    InvalidIdentityToken,
    verify_token,
)
from multistore.sts.policy import (
    StsError,
    check_trust,
    role_id_of,
    session_duration,
    session_name,
    session_scopes,
)
from multistore.sts.xml import (
    assume_role_document,
    assumed_role_arn,
    assumed_role_id,
    caller_identity_document,
    sts_error_document,
)

#: The path the Rust system serves STS at.
STS_PATH: Final = b"/.sts"

#: The largest form body read.
MAX_FORM: Final = 64 * 1024

_XML: Final = ("content-type", "text/xml")


def _form(headers: HeaderList) -> bool:
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    return content_type == "application/x-www-form-urlencoded"


@implementer(IRouteHandler)
@define
class StsRoute:
    """
    Answers STS requests, and declines everything else.

    :ivar _credentials: where roles are found.
    :ivar _keys: the keys sealing session tokens.
    :ivar _jwks: web identity issuers' signing keys.
    :ivar _authenticator: checks signed STS requests (GetCallerIdentity).
    :ivar _clock: the time.
    :ivar _leeway: clock leeway for the web identity token's times.
    :ivar _max_token_bytes: the longest web identity token accepted.
    """

    log = Logger()

    _credentials: ICredentialRegistry
    _keys: SessionKeys
    _jwks: JwksCache
    _authenticator: Authenticator
    _clock: IReactorTime
    _leeway: int = 60
    _max_token_bytes: int = 16384

    def handle(self, request: IncomingRequest) -> Deferred[Response | None] | None:
        if request.raw_path == STS_PATH:
            return Deferred.fromCoroutine(self._answer(request))
        if (
            request.raw_path == b"/"
            and request.method == "POST"
            and _form(request.headers)
        ):
            return Deferred.fromCoroutine(self._answer(request))
        return None

    async def _answer(self, request: IncomingRequest) -> Response:
        request_id = str(uuid.uuid4())
        try:
            body = await self._body(request)
            params = self._params(request, body)
            action = params.get("Action")
            if action == "AssumeRoleWithWebIdentity":
                document = await self._assume(params, request_id)
            elif action == "GetCallerIdentity":
                document = await self._caller(request, body, request_id)
            elif action is None:
                raise StsError("MissingAction", "Missing Action.")
            else:
                raise StsError(
                    "InvalidAction",
                    f"Could not find operation {action[:64]} for version.",
                )
            return Response(
                200, HeaderList([_XML, ("x-amzn-requestid", request_id)]), document
            )
        except StsError as error:
            return self._error(error, request_id)
        except S3Error as error:
            # Authentication of a signed STS request failed.
            return self._error(
                StsError(error.code, error.message, error.status), request_id
            )

    def _error(self, error: StsError, request_id: str) -> Response:
        return Response(
            error.status,
            HeaderList([_XML, ("x-amzn-requestid", request_id)]),
            sts_error_document(error, request_id),
        )

    async def _body(self, request: IncomingRequest) -> bytes:
        if request.method != "POST" or not _form(request.headers):
            return b""
        return await collect(request.body or BytesProducer(b""), MAX_FORM)

    @staticmethod
    def _params(request: IncomingRequest, body: bytes) -> Mapping[str, str]:
        query = dict(parse_query(request.raw_query))
        if "Action" in query:
            return query
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise StsError("InvalidParameterValue", "The form is not UTF-8.") from None
        return dict(pairs)

    async def _assume(self, params: Mapping[str, str], request_id: str) -> bytes:
        role_arn = params.get("RoleArn")
        token = params.get("WebIdentityToken")
        for name, value in (("RoleArn", role_arn), ("WebIdentityToken", token)):
            if not value:
                raise StsError(
                    "ValidationError",
                    f"1 validation error detected: Value null at '{name[0].lower()}"
                    f"{name[1:]}' failed to satisfy constraint: Member must not be null",
                )
        assert role_arn is not None and token is not None
        role = await self._role(role_arn)
        now = utcnow(self._clock)
        try:
            claims = await verify_token(
                token,
                issuer_keys=self._jwks.keys_for,
                trusted_issuers=role.trusted_oidc_issuers,
                now=now,
                leeway=self._leeway,
                max_bytes=self._max_token_bytes,
            )
        except ExpiredIdentityToken as e:
            raise StsError(
                "ExpiredTokenException", f"Token expired: {e.message}"
            ) from None
        except IdpCommunicationError as e:
            raise StsError("IDPCommunicationError", e.message) from None
        except InvalidIdentityToken as e:
            raise StsError("InvalidIdentityToken", e.message) from None
        audience = check_trust(role, claims.issuer, claims.claims)
        subject = claims.subject or ""
        duration = session_duration(params.get("DurationSeconds"), role)
        name = session_name(params.get("RoleSessionName"), subject)
        credentials = mint(
            role.role_id,
            subject,
            session_scopes(role, claims.claims),
            duration,
            now,
            principal=f"{role.role_id}/{name}",
        )
        self.log.info(
            "issued a session of {role} to {subject} ({issuer}) until {expiration}",
            role=role.role_id,
            subject=subject,
            issuer=claims.issuer,
            expiration=credentials.expiration.isoformat(),
        )
        return assume_role_document(
            access_key_id=credentials.access_key_id,
            secret_access_key=credentials.secret_access_key,
            session_token=seal(credentials, self._keys),
            expiration=credentials.expiration,
            role_id=role.role_id,
            session=name,
            subject=subject,
            audience=audience,
            provider=claims.issuer,
            request_id=request_id,
        )

    async def _role(self, role_arn: str) -> RoleConfig:
        role = await self._credentials.get_role(role_arn)
        if role is None and role_id_of(role_arn) != role_arn:
            role = await self._credentials.get_role(role_id_of(role_arn))
        if role is None:
            # Whether the role exists is not the caller's business.
            raise StsError(
                "AccessDenied",
                "Not authorized to perform sts:AssumeRoleWithWebIdentity",
                403,
            )
        return role

    async def _caller(
        self, request: IncomingRequest, body: bytes, request_id: str
    ) -> bytes:
        identity, _ = await self._authenticator.authenticate(
            request, service="sts", payload_hash=hashlib.sha256(body).hexdigest()
        )
        if identity.anonymous:
            raise StsError(
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
                403,
            )
        arn, user_id = _describe(identity)
        return caller_identity_document(arn, user_id, request_id)


def _describe(identity: Identity) -> tuple[str, str]:
    """
    :return: the ARN and user id GetCallerIdentity reports.
    """
    if identity.kind == "session" and identity.role is not None:
        principal = identity.principal or identity.role
        session = principal.rsplit("/", 1)[-1]
        return (
            assumed_role_arn(identity.role, session),
            assumed_role_id(identity.role, session),
        )
    name = identity.principal or identity.access_key_id or "unknown"
    return f"arn:aws:iam::000000000000:user/{name}", identity.access_key_id or name
