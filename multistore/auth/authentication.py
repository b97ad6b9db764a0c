# -*- test-case-name: tests.unit.test_gateway,tests.unit.test_sts_service -*-
"""
Who is calling: the signature schemes a request may use, checked against
static access keys and against temporary credentials minted by STS.

A request signed with temporary credentials carries its session token
(``x-amz-security-token``, or ``X-Amz-Security-Token`` in a presigned URL);
the token seals the session's secret and scopes, so it is opened here and
nothing else is looked up: the session is authorized by its sealed scopes
alone, on any instance that has the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from attrs import define
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from multistore.auth import sigv2, sigv4
from multistore.auth.identity import detect_scheme, identity_for_credential
from multistore.auth.sessions import InvalidSessionToken, SessionKeys, unseal
from multistore.interfaces import ICredentialRegistry
from multistore.model import ANONYMOUS, Identity, IncomingRequest, VerifiedSignature
from multistore.s3.errors import S3Error
from multistore.s3.request import host_bucket, parse_query


def utcnow(clock: IReactorTime) -> datetime:
    """
    :return: the clock's time as an aware UTC datetime.
    """
    return datetime.fromtimestamp(clock.seconds(), UTC)


@define
class Authenticator:
    """
    Checks a request's signature and says whose it is.

    :ivar _credentials: static access keys.
    :ivar _sessions: the keys that open session tokens, or ``None`` when STS
        is off (session tokens are then refused).
    :ivar _clock: the time.
    :ivar _domains: virtual-hosted-style domains (SigV2 signs the bucket).
    :ivar _max_clock_skew: seconds a signed request's time may be off.
    """

    log = Logger()

    _credentials: ICredentialRegistry
    _clock: IReactorTime
    _sessions: SessionKeys | None = None
    _domains: Sequence[str] = ()
    _max_clock_skew: int = 900

    async def authenticate(
        self,
        request: IncomingRequest,
        *,
        service: str = "s3",
        payload_hash: str | None = None,
    ) -> tuple[Identity, VerifiedSignature | None]:
        """
        :param service: the service the request must be signed for.
        :param payload_hash: the body's SHA-256, for services whose requests
            do not send ``x-amz-content-sha256``.
        :return: who is calling, and for SigV4 what the signature established
            (the write path verifies chunk signatures with it).
        :raise S3Error: for every way a request fails to authenticate.
        """
        query = parse_query(request.raw_query)
        scheme = detect_scheme(request.headers, query)
        if scheme.scheme == "anonymous":
            return ANONYMOUS, None
        token = request.headers.get("x-amz-security-token")
        if token is None:
            # A SigV2 presigned URL carries its x-amz-* headers, the token
            # among them, in the query under their header names.
            name = (
                "x-amz-security-token"
                if scheme.scheme == "sigv2-query"
                else "X-Amz-Security-Token"
            )
            token = next((v for n, v in query if n == name), None)
        now = utcnow(self._clock)
        if scheme.scheme == "sigv4-header":
            assert scheme.authorization is not None
            auth = sigv4.parse_authorization(scheme.authorization)
            _check_service(auth.service, service)
            identity, secret = await self._caller(auth.access_key_id, token, now)
            verified = sigv4.verify_header_auth(
                request,
                auth,
                secret,
                now,
                self._max_clock_skew,
                payload_hash=payload_hash,
            )
            return identity, verified
        if scheme.scheme == "sigv4-query":
            presigned = sigv4.parse_presigned(query)
            if presigned is None:
                raise S3Error(
                    "AuthorizationQueryParametersError",
                    "Query-string authentication requires the X-Amz-Algorithm parameter.",
                )
            _check_service(presigned.service, service)
            identity, secret = await self._caller(presigned.access_key_id, token, now)
            verified = sigv4.verify_presigned(
                request, presigned, secret, now, self._max_clock_skew
            )
            return identity, verified
        if scheme.scheme == "sigv2-header":
            assert scheme.authorization is not None
            v2 = sigv2.parse_authorization_v2(scheme.authorization)
        else:
            v2 = sigv2.parse_presigned_v2(query)
        if v2 is None:
            raise S3Error(
                "AccessDenied", "The request's SigV2 authentication is incomplete."
            )
        identity, secret = await self._caller(v2.access_key_id, token, now)
        virtual = host_bucket(request.host, self._domains)
        sigv2.verify_v2_request(
            request,
            v2,
            secret,
            now,
            resource_path=None
            if virtual is None
            else f"/{virtual}{request.raw_path.decode('latin-1')}",
            max_skew=self._max_clock_skew,
        )
        return identity, None

    async def _caller(
        self, access_key_id: str, token: str | None, now: datetime
    ) -> tuple[Identity, str]:
        """
        :return: the identity behind an access key (and session token, if
            any), and the secret its signature must use.
        """
        if token is not None:
            return self._session(access_key_id, token, now)
        credential = await self._credentials.get_credential(access_key_id)
        identity = identity_for_credential(credential, access_key_id, now)
        assert credential is not None
        return identity, credential.secret_access_key

    def _session(
        self, access_key_id: str, token: str, now: datetime
    ) -> tuple[Identity, str]:
        if self._sessions is None:
            raise S3Error("InvalidToken")
        try:
            session = unseal(token, access_key_id, self._sessions, now)
        except InvalidSessionToken as e:
            self.log.info(
                "refused a session token for {access_key_id}: {reason}",
                access_key_id=access_key_id,
                reason=e.reason,
            )
            raise
        return session.identity(), session.secret_access_key


def _check_service(service: str, expected: str) -> None:
    if service != expected:
        raise S3Error(
            "AuthorizationHeaderMalformed",
            f"The authorization header is malformed; incorrect service '{service}'. "
            f"This endpoint belongs to '{expected}'.",
        )
