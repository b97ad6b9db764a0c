# -*- test-case-name: tests.unit.test_oidc -*-
"""
The daemon as an OpenID Connect identity provider: it signs short-lived
tokens that name a subject and an audience, and publishes what a relying
party (AWS IAM, Microsoft Entra, GCP workload identity federation, a
SeaweedFS or MinIO STS) needs to check them: the discovery document at
``{issuer}/.well-known/openid-configuration`` and the keys at
``{issuer}/.well-known/jwks.json``.

The first configured key signs; every key is published, so a key can be
rotated without a moment in which a relying party sees a token it cannot
check: publish the new key second, let caches refresh, move it first,
and later drop the old one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import jwt
from attrs import frozen
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from multistore.config import OidcProviderConfig
from multistore.headers import HeaderList
from multistore.interfaces import IRouteHandler
from multistore.model import IncomingRequest, Response
from multistore.oidc.keys import LoadedKey, load_key

#: Where the discovery document and the keys are, under the issuer.
DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
JWKS_PATH: Final = "/.well-known/jwks.json"

#: How long relying parties may cache the documents, in seconds: short,
#: so a new key is seen soon after it is published.
DOCUMENT_MAX_AGE: Final = 300


@frozen
class OidcProvider:
    """
    Signs tokens with the configured keys and describes itself.

    :ivar issuer: the ``iss`` of every token, and the base URL of the
        documents.
    :ivar keys: the keys; the first signs.
    :ivar lifetime: seconds a token is valid.
    :ivar clock: the time.
    """

    issuer: str
    keys: Sequence[LoadedKey]
    lifetime: int
    clock: IReactorTime

    @classmethod
    def from_config(
        cls, config: OidcProviderConfig, clock: IReactorTime
    ) -> OidcProvider:
        """
        :raise ValueError: if a key cannot be loaded.
        """
        keys = tuple(load_key(k.id, k.pem) for k in config.keys)
        return cls(config.issuer, keys, config.token_lifetime_secs, clock)

    def mint(self, subject: str, audience: str, lifetime: int | None = None) -> str:
        """
        :return: a signed token for ``subject``, for ``audience``.
        """
        key = self.keys[0]
        now = int(self.clock.seconds())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + (lifetime or self.lifetime),
            "jti": os.urandom(16).hex(),
        }
        return jwt.encode(
            claims, key.private, algorithm=key.algorithm, headers={"kid": key.id}
        )

    def jwks(self) -> dict[str, Any]:
        """
        :return: the key set: every key's public half.
        """
        return {"keys": [key.public_jwk() for key in self.keys]}

    def discovery(self) -> dict[str, Any]:
        """
        :return: the discovery document.
        """
        return {
            "issuer": self.issuer,
            "jwks_uri": self.issuer + JWKS_PATH,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted(
                {key.algorithm for key in self.keys}
            ),
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"],
        }


@implementer(IRouteHandler)
@frozen
class ProviderDocuments:
    """
    Answers ``GET`` (and ``HEAD``) of the discovery document and the key
    set, at the paths under the issuer's own path and at the root (for a
    proxy that strips the issuer's path); everything else goes on to S3.
    """

    provider: OidcProvider

    def handle(self, request: IncomingRequest) -> Deferred[Response | None] | None:
        if request.method not in ("GET", "HEAD"):
            return None
        path = request.raw_path.decode("latin-1")
        base = urlsplit(self.provider.issuer).path.rstrip("/")
        for suffix, document in (
            (DISCOVERY_PATH, self.provider.discovery),
            (JWKS_PATH, self.provider.jwks),
        ):
            if path in (suffix, base + suffix):
                body = json.dumps(document(), indent=2).encode() + b"\n"
                headers = HeaderList(
                    [
                        ("content-type", "application/json"),
                        ("cache-control", f"public, max-age={DOCUMENT_MAX_AGE}"),
                        ("content-length", str(len(body))),
                    ]
                )
                return succeed(
                    Response(200, headers, None if request.method == "HEAD" else body)
                )
        return None
