# -*- test-case-name: tests.unit.test_gcs_store -*-
"""
Credentials for Google Cloud Storage: OAuth2 access tokens for a service
account.

A service account's JSON key names the account (``client_email``), its
RSA key (``private_key``, ``private_key_id``) and where tokens are issued
(``token_uri``). L{ServiceAccountTokens} signs a JWT assertion with that
key (RS256) and trades it for an access token with the JWT-bearer grant
(RFC 7523) on the control plane, then keeps the token until shortly before
it expires, so a busy bucket asks for a token about once an hour. Callers
that ask while a token is being fetched wait for that one fetch.

A failure to obtain a token is the client's ``ServiceUnavailable``: the
token service's answer is logged, never passed on.

Anything that can give bearer tokens (a federation exchange, later) fits
the same shape: a L{TokenProvider} is a callable returning a Deferred of a
token.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlencode

import jwt
from attrs import define, field, frozen
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from multistore.s3.errors import S3Error

#: Gives a bearer token for a request; fails with L{S3Error} if it cannot.
TokenProvider = Callable[[], "Deferred[str]"]

#: Sends a form to a URL: ``(url, body)`` to a Deferred of ``(status,
#: response body)``.
FormPoster = Callable[[str, bytes], "Deferred[tuple[int, bytes]]"]

#: The grant type of RFC 7523's JWT bearer assertion.
JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"

#: The scope asked for: read and write objects, create and delete buckets.
FULL_CONTROL: Final = "https://www.googleapis.com/auth/devstorage.full_control"

#: Where tokens are issued when the key does not say.
DEFAULT_TOKEN_URI: Final = "https://oauth2.googleapis.com/token"  # noqa: S105

#: Seconds an assertion is valid (Google accepts at most an hour).
ASSERTION_LIFETIME: Final = 3600

#: Seconds before its expiry that a token is replaced.
REFRESH_MARGIN: Final = 300

#: Largest answer read from the token endpoint.
MAX_TOKEN_RESPONSE: Final = 64 * 1024

_UNAVAILABLE_MESSAGE: Final = "The bucket's backend credentials are unavailable."


def _unavailable() -> S3Error:
    return S3Error("ServiceUnavailable", _UNAVAILABLE_MESSAGE)


@frozen
class ServiceAccountKey:
    """
    The parts of a service account's JSON key that sign assertions.

    :ivar client_email: the account.
    :ivar private_key: its RSA key, PEM.
    :ivar private_key_id: the key's id (the JWT ``kid``).
    :ivar token_uri: where tokens are issued.
    :ivar project_id: the account's project, if the key names one.
    """

    client_email: str
    private_key: str = field(repr=False)
    private_key_id: str = ""
    token_uri: str = DEFAULT_TOKEN_URI
    project_id: str | None = None

    @classmethod
    def from_json(cls, text: str) -> ServiceAccountKey:
        """
        Read a JSON key file's contents.

        :param text: the JSON document.
        :return: the key.
        :raise ValueError: if it is not a service account key.
        """
        try:
            document = json.loads(text)
        except ValueError as e:
            raise ValueError("the service account key is not JSON") from e
        if not isinstance(document, dict):
            raise ValueError("the service account key is not a JSON object")
        email = document.get("client_email")
        private_key = document.get("private_key")
        if not isinstance(email, str) or not isinstance(private_key, str):
            raise ValueError(
                "the service account key has no client_email or private_key"
            )
        token_uri = document.get("token_uri")
        key_id = document.get("private_key_id")
        project = document.get("project_id")
        return cls(
            client_email=email,
            private_key=private_key,
            private_key_id=key_id if isinstance(key_id, str) else "",
            token_uri=token_uri if isinstance(token_uri, str) else DEFAULT_TOKEN_URI,
            project_id=project if isinstance(project, str) else None,
        )


def assertion(key: ServiceAccountKey, now: int, scope: str = FULL_CONTROL) -> str:
    """
    Build and sign the JWT that asks for a token.

    :param key: the service account key.
    :param now: the time, in whole seconds since the epoch.
    :param scope: the OAuth2 scopes asked for, space-separated.
    :return: the compact JWT, signed RS256 with the account's key.
    """
    claims = {
        "iss": key.client_email,
        "scope": scope,
        "aud": key.token_uri,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    }
    headers = {"kid": key.private_key_id} if key.private_key_id else None
    token: str | bytes = jwt.encode(
        claims, key.private_key, algorithm="RS256", headers=headers
    )
    # PyJWT before 2.0 gave bytes.
    return token.decode("ascii") if isinstance(token, bytes) else token


def treq_poster(client: Any = None, timeout: float = 30.0) -> FormPoster:
    """
    :param client: what sends the form: the C{treq} module (the default),
        or anything with its C{post} and C{content} (a C{treq.testing.StubTreq},
        an C{HTTPClient} with C{content} added).
    :param timeout: seconds before a token request is given up.
    :return: a L{FormPoster} sending forms with treq (control plane).
    """

    def post(url: str, body: bytes) -> Deferred[tuple[int, bytes]]:
        sender = client
        if sender is None:
            import treq

            sender = treq
        posted: Deferred[Any] = sender.post(
            url,
            data=body,
            headers=Headers({b"Content-Type": [b"application/x-www-form-urlencoded"]}),
            timeout=timeout,
        )

        def read(response: Any) -> Deferred[tuple[int, bytes]]:
            content: Deferred[bytes] = sender.content(response)
            return content.addCallback(lambda data: (int(response.code), data))

        return posted.addCallback(read)

    return post


@define
class ServiceAccountTokens:
    """
    Access tokens for one service account, fetched when needed and kept
    until L{REFRESH_MARGIN} seconds before they expire.

    :ivar _key: the account's key.
    :ivar _clock: the time source.
    :ivar _post: sends the token request.
    :ivar _scope: the scopes asked for.
    """

    log = Logger()

    _key: ServiceAccountKey
    _clock: IReactorTime
    _post: FormPoster
    _scope: str = FULL_CONTROL
    _token: str | None = None
    _refresh_at: float = 0.0
    _waiting: list[Deferred[str]] | None = None

    def token(self) -> Deferred[str]:
        """
        :return: a Deferred firing with a current access token, or failing
            with L{S3Error} ``ServiceUnavailable`` if none can be had.
        """
        if self._token is not None and self._clock.seconds() < self._refresh_at:
            return succeed(self._token)
        waiter: Deferred[str] = Deferred()
        if self._waiting is not None:
            self._waiting.append(waiter)
            return waiter
        self._waiting = [waiter]
        fetching = Deferred.fromCoroutine(self._fetch())
        fetching.addBoth(self._settle)
        return waiter

    def _settle(self, result: str | Failure) -> None:
        waiting, self._waiting = self._waiting or [], None
        for waiter in waiting:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    async def _fetch(self) -> str:
        now = self._clock.seconds()
        try:
            signed = assertion(self._key, int(now), self._scope)
        except Exception:
            self.log.failure(
                "could not sign a token request for {account}",
                account=self._key.client_email,
            )
            raise _unavailable() from None
        form = urlencode({"grant_type": JWT_BEARER, "assertion": signed}).encode()
        try:
            status, body = await self._post(self._key.token_uri, form)
        except Exception:
            self.log.failure(
                "token request for {account} to {uri} failed",
                account=self._key.client_email,
                uri=self._key.token_uri,
            )
            raise _unavailable() from None
        token, lifetime = self._parse(status, body)
        self._token = token
        self._refresh_at = now + max(lifetime - REFRESH_MARGIN, 0)
        self.log.debug(
            "obtained a token for {account}, valid {lifetime} seconds",
            account=self._key.client_email,
            lifetime=lifetime,
        )
        return token

    def _parse(self, status: int, body: bytes) -> tuple[str, int]:
        """
        :return: the token and its lifetime in seconds from a token
            endpoint's answer.
        :raise S3Error: ``ServiceUnavailable`` if it is not a token.
        """
        document: object = None
        if status == 200 and len(body) <= MAX_TOKEN_RESPONSE:
            try:
                document = json.loads(body)
            except ValueError:
                document = None
        if isinstance(document, dict):
            token = document.get("access_token")
            lifetime = document.get("expires_in", 3600)
            if isinstance(token, str) and token and isinstance(lifetime, int):
                return token, lifetime
        self.log.warn(
            "token endpoint {uri} refused {account}: status {status}",
            uri=self._key.token_uri,
            account=self._key.client_email,
            status=status,
        )
        raise _unavailable()


#: Token sources by key, shared by the stores made per request.
_SHARED: dict[str, ServiceAccountTokens] = {}


def shared_tokens(
    key_text: str, clock: IReactorTime, post: FormPoster | None = None
) -> ServiceAccountTokens:
    """
    :param key_text: a service account's JSON key.
    :param clock: the time source.
    :param post: how to send token requests; treq by default.
    :return: the process's token source for that key, made on first use.
    :raise S3Error: ``ServiceUnavailable`` if the key cannot be read.
    """
    name = hashlib.sha256(key_text.encode("utf-8")).hexdigest()
    tokens = _SHARED.get(name)
    if tokens is None:
        try:
            key = ServiceAccountKey.from_json(key_text)
        except ValueError as e:
            ServiceAccountTokens.log.warn("unusable service account key: {e}", e=e)
            raise _unavailable() from None
        tokens = ServiceAccountTokens(key, clock, post or treq_poster())
        _SHARED[name] = tokens
    return tokens


def no_token() -> Deferred[str]:
    """
    :return: a failed Deferred, for a bucket whose credentials are unusable.
    """
    return fail(_unavailable())
