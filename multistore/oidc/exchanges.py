# -*- test-case-name: tests.unit.test_oidc_exchanges -*-
"""
Trading the provider's tokens for backend credentials, as each cloud's
token service documents it:

- AWS (and any STS with ``AssumeRoleWithWebIdentity``: MinIO, Ceph,
  SeaweedFS): temporary access keys and a session token;
- Microsoft Entra: an access token for Azure Storage, the token sent as a
  client assertion (``client_credentials`` grant);
- GCP: an access token from STS token exchange (RFC 8693), then, when a
  service account is named, one for that account from the IAM Credentials
  API (``generateAccessToken``).

What the client of the gateway sees of a failure: ``403 AccessDenied``
when the token service refused, ``502 BackendAuthenticationFailed`` for any
other answer it gave, ``503 ServiceUnavailable`` when it could not be
reached or did not answer in time. Nothing of the exchange is shown to the
client; the log has it all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, urlencode

from twisted.logger import Logger

from multistore.bodies import BytesProducer, read_body
from multistore.config import BucketConfig
from multistore.headers import HeaderList
from multistore.interfaces import IForwarder
from multistore.model import BackendRequest, BackendResponse
from multistore.oidc.cache import Credentials
from multistore.oidc.provider import OidcProvider
from multistore.s3.errors import S3Error
from multistore.s3.xml import child_text, local_name, parse_untrusted

log = Logger()

#: The most bytes of a token service's answer read.
MAX_ANSWER: Final = 64 * 1024

#: Defaults, as each service documents them.
DEFAULT_SUBJECT: Final = "s3-proxy"
AWS_AUDIENCE: Final = "sts.amazonaws.com"
AZURE_AUDIENCE: Final = "api://AzureADTokenExchange"
AZURE_AUTHORITY: Final = "https://login.microsoftonline.com"
AZURE_SCOPE: Final = "https://storage.azure.com/.default"
GCP_STS: Final = "https://sts.googleapis.com"
GCP_IAM: Final = "https://iamcredentials.googleapis.com"
GCP_SCOPE: Final = "https://www.googleapis.com/auth/cloud-platform"

#: Seconds of credentials asked for, where the service lets us choose.
SESSION_SECONDS: Final = 3600

#: Error codes by which AWS-style token services refuse a token.
_AWS_REFUSALS: Final = frozenset(
    {
        "AccessDenied",
        "InvalidIdentityToken",
        "ExpiredTokenException",
        "IDPRejectedClaim",
        "InvalidParameterValue",
    }
)

#: OAuth error codes by which Entra and Google STS refuse.
_OAUTH_REFUSALS: Final = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_grant", "access_denied"}
)


class Refused(S3Error):
    """
    The token service refused the token: the client gets ``AccessDenied``.
    """

    def __init__(self, service: str, detail: str) -> None:
        log.warn(
            "{service} refused the gateway's token: {detail}",
            service=service,
            detail=detail,
        )
        super().__init__(
            "AccessDenied", "The backend store refused the gateway's credentials."
        )


def _failed(service: str, detail: str) -> S3Error:
    log.warn("{service} failed: {detail}", service=service, detail=detail)
    return S3Error(
        "BackendAuthenticationFailed",
        "The gateway could not obtain credentials for the backend store.",
        status=502,
    )


def subject_for(bucket: BucketConfig, principal: str | None) -> str:
    """
    :return: the ``sub`` of the bucket's tokens: ``oidc_subject`` (default
        ``s3-proxy``) with ``{principal}`` and ``{bucket}`` filled in.
    """
    template = bucket.option("oidc_subject") or DEFAULT_SUBJECT
    return template.replace("{principal}", principal or "anonymous").replace(
        "{bucket}", bucket.name
    )


async def _post(
    forwarder: IForwarder,
    service: str,
    url: str,
    body: bytes,
    content_type: str,
    timeout: float,
    headers: tuple[tuple[str, str], ...] = (),
) -> tuple[BackendResponse, bytes]:
    request = BackendRequest(
        "POST",
        url,
        HeaderList(
            [("content-type", content_type), ("accept", "application/json"), *headers]
        ),
        BytesProducer(body),
        timeout=timeout,
    )
    try:
        response = await forwarder.forward(request)
        answer = await read_body(response.body, MAX_ANSWER)
    except S3Error as error:
        log.warn("{service} at {url}: {error}", service=service, url=url, error=error)
        raise S3Error(
            "ServiceUnavailable",
            "The backend store's token service is not available; please retry.",
        ) from None
    return response, answer


def _token_answer(
    service: str, response: BackendResponse, answer: bytes, name: str
) -> tuple[str, dict[str, Any]]:
    """
    :return: the token a token service's successful JSON answer carries
        under ``name``, and the whole answer.
    :raise S3Error: as L{_oauth_error} maps a refusal, or
        ``BackendAuthenticationFailed`` for an answer without the token.
    """
    if response.status != 200:
        raise _oauth_error(service, response.status, answer)
    try:
        document = json.loads(answer)
    except ValueError:
        raise _failed(service, f"not JSON: {answer[:200]!r}") from None
    token = document.get(name) if isinstance(document, dict) else None
    if not isinstance(token, str) or not token:
        raise _failed(service, f"no {name} in its answer: {answer[:200]!r}")
    return token, document


def _oauth_error(service: str, status: int, answer: bytes) -> S3Error:
    try:
        document = json.loads(answer)
    except ValueError:
        document = None
    error: Any = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        # Google APIs: {"error": {"code": 403, "status": "PERMISSION_DENIED"}}
        if error.get("status") in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
            return Refused(service, f"{status} {error.get('message')}")
    elif error in _OAUTH_REFUSALS or status in (401, 403):
        return Refused(service, f"{status} {answer[:300]!r}")
    return _failed(service, f"{status} {answer[:300]!r}")


def _seconds(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


async def aws_credentials(
    forwarder: IForwarder,
    provider: OidcProvider,
    bucket: BucketConfig,
    principal: str | None,
    timeout: float,
) -> Credentials:
    """
    ``AssumeRoleWithWebIdentity`` at the bucket's ``sts_endpoint`` (AWS's
    regional endpoint by default).
    """
    service = "STS AssumeRoleWithWebIdentity"
    region = bucket.option("region") or "us-east-1"
    endpoint = bucket.option("sts_endpoint") or f"https://sts.{region}.amazonaws.com"
    subject = subject_for(bucket, principal)
    token = provider.mint(subject, bucket.option("oidc_audience") or AWS_AUDIENCE)
    session = re.sub(r"[^\w+=,.@-]", "-", subject)[:64].ljust(2, "-")
    form = urlencode(
        {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": bucket.option("oidc_role_arn") or "",
            "RoleSessionName": session,
            "WebIdentityToken": token,
            "DurationSeconds": str(SESSION_SECONDS),
        }
    ).encode()
    now = provider.clock.seconds()
    response, answer = await _post(
        forwarder,
        service,
        endpoint,
        form,
        "application/x-www-form-urlencoded",
        timeout,
    )
    root = parse_untrusted(answer)
    if response.status != 200:
        code = None
        if root is not None:
            for element in root.iter():
                if local_name(element) == "Code":
                    code = (element.text or "").strip()
                    break
        detail = f"{response.status} {code}: {answer[:300]!r}"
        if code in _AWS_REFUSALS or response.status == 403:
            raise Refused(service, detail)
        raise _failed(service, detail)
    found: dict[str, str] = {}
    if root is not None:
        for element in root.iter():
            if local_name(element) == "Credentials":
                for name in (
                    "AccessKeyId",
                    "SecretAccessKey",
                    "SessionToken",
                    "Expiration",
                ):
                    found[name] = child_text(element, name) or ""
                break
    if not (found.get("AccessKeyId") and found.get("SecretAccessKey")):
        raise _failed(service, f"no credentials in {answer[:300]!r}")
    return Credentials(
        expires=_expiry(found.get("Expiration"), now + SESSION_SECONDS),
        obtained=now,
        access_key_id=found["AccessKeyId"],
        secret_access_key=found["SecretAccessKey"],
        session_token=found.get("SessionToken") or None,
    )


def _expiry(text: str | None, default: float) -> float:
    if not text:
        return default
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


async def azure_credentials(
    forwarder: IForwarder,
    provider: OidcProvider,
    bucket: BucketConfig,
    principal: str | None,
    timeout: float,
) -> Credentials:
    """
    A Microsoft Entra access token for Azure Storage, with the provider's
    token as the client assertion.
    """
    service = "Entra token endpoint"
    authority = (bucket.option("authority") or AZURE_AUTHORITY).rstrip("/")
    tenant = bucket.option("tenant_id") or ""
    url = f"{authority}/{quote(tenant, safe='')}/oauth2/v2.0/token"
    assertion = provider.mint(
        subject_for(bucket, principal), bucket.option("oidc_audience") or AZURE_AUDIENCE
    )
    form = urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": bucket.option("client_id") or "",
            "scope": AZURE_SCOPE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
    ).encode()
    now = provider.clock.seconds()
    response, answer = await _post(
        forwarder, service, url, form, "application/x-www-form-urlencoded", timeout
    )
    token, document = _token_answer(service, response, answer, "access_token")
    lifetime = _seconds(document.get("expires_in")) or SESSION_SECONDS
    return Credentials(expires=now + lifetime, obtained=now, bearer_token=token)


async def gcp_credentials(
    forwarder: IForwarder,
    provider: OidcProvider,
    bucket: BucketConfig,
    principal: str | None,
    timeout: float,
) -> Credentials:
    """
    GCP STS token exchange, then ``generateAccessToken`` for the bucket's
    ``service_account`` if it names one.
    """
    service = "GCP STS token exchange"
    pool_provider = bucket.option("workload_identity_provider") or ""
    audience = bucket.option("oidc_audience") or "https:" + pool_provider
    token = provider.mint(subject_for(bucket, principal), audience)
    form = urlencode(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "audience": pool_provider,
            "scope": GCP_SCOPE,
            "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "subject_token": token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        }
    ).encode()
    now = provider.clock.seconds()
    sts = (bucket.option("sts_endpoint") or GCP_STS).rstrip("/")
    response, answer = await _post(
        forwarder,
        service,
        sts + "/v1/token",
        form,
        "application/x-www-form-urlencoded",
        timeout,
    )
    federated, document = _token_answer(service, response, answer, "access_token")
    lifetime = _seconds(document.get("expires_in")) or SESSION_SECONDS
    account = bucket.option("service_account")
    if not account:
        return Credentials(expires=now + lifetime, obtained=now, bearer_token=federated)
    service = "GCP IAM Credentials generateAccessToken"
    iam = (bucket.option("iam_endpoint") or GCP_IAM).rstrip("/")
    url = f"{iam}/v1/projects/-/serviceAccounts/{quote(account, safe='@')}:generateAccessToken"
    body = json.dumps(
        {"scope": [GCP_SCOPE], "lifetime": f"{SESSION_SECONDS}s"}
    ).encode()
    response, answer = await _post(
        forwarder,
        service,
        url,
        body,
        "application/json",
        timeout,
        headers=(("authorization", f"Bearer {federated}"),),
    )
    access, document = _token_answer(service, response, answer, "accessToken")
    expires = _expiry(document.get("expireTime"), now + SESSION_SECONDS)
    return Credentials(expires=expires, obtained=now, bearer_token=access)


#: The exchange for each kind of store.
EXCHANGES: Final[Mapping[str, Any]] = {
    "s3": aws_credentials,
    "azure": azure_credentials,
    "gcs": gcp_credentials,
}
