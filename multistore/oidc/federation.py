# -*- test-case-name: tests.unit.test_oidc -*-
"""
Backend credentials without long-lived secrets: a middleware that, for a
bucket whose ``backend_options`` say ``auth_type = "oidc"``, trades a token
the daemon signs for short-lived credentials (see
L{multistore.oidc.exchanges}) and hands the operation a bucket
configuration that carries them. It does the same for any other bucket the
operation resolves itself (a copy's source), through
L{DispatchContext.bucket_preparers}.

Credentials come from one L{CredentialCache}: fetched once however many
requests want them, renewed before they end while requests go on with the
ones they have.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from attrs import evolve
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from multistore.config import BucketConfig
from multistore.interfaces import IForwarder, IMiddleware, Next
from multistore.model import (
    CompletedRequest,
    DispatchContext,
    ResolvedBucket,
    Response,
)
from multistore.oidc.cache import CredentialCache, Credentials
from multistore.oidc.exchanges import EXCHANGES, subject_for
from multistore.oidc.provider import OidcProvider


def federated(bucket: BucketConfig) -> bool:
    """
    :return: whether ``bucket``'s store is reached with credentials the
        provider's tokens buy.
    """
    return bucket.option("auth_type") == "oidc"


def with_credentials(bucket: BucketConfig, credentials: Credentials) -> BucketConfig:
    """
    :return: ``bucket`` with ``credentials`` in its ``backend_options``, as
        its store reads them.
    """
    options = dict(bucket.backend_options)
    if credentials.bearer_token is not None:
        options["bearer_token"] = credentials.bearer_token
    else:
        options["access_key_id"] = credentials.access_key_id or ""
        options["secret_access_key"] = credentials.secret_access_key or ""
        if credentials.session_token:
            options["token"] = credentials.session_token
    return evolve(bucket, backend_options=options)


def _cache_key(bucket: BucketConfig, subject: str) -> Hashable:
    # Everything that decides which credentials come back.
    names = (
        "endpoint",
        "region",
        "sts_endpoint",
        "oidc_role_arn",
        "oidc_audience",
        "authority",
        "tenant_id",
        "client_id",
        "account_name",
        "workload_identity_provider",
        "service_account",
        "iam_endpoint",
    )
    return (bucket.backend_type, subject, *(bucket.option(n) for n in names))


@implementer(IMiddleware)
class BackendCredentials:
    """
    Injects credentials into federated buckets' configurations.

    :ivar provider: signs the tokens traded.
    :ivar cache: the credentials bought.
    """

    def __init__(
        self,
        provider: OidcProvider,
        forwarder: IForwarder,
        clock: IReactorTime,
        *,
        timeout: float = 10.0,
        cache: CredentialCache | None = None,
    ) -> None:
        self.provider = provider
        self._forwarder = forwarder
        self._timeout = timeout
        self.cache = cache if cache is not None else CredentialCache(clock)

    def prepare(
        self, bucket: ResolvedBucket, principal: str | None = None
    ) -> Deferred[ResolvedBucket]:
        """
        :return: ``bucket``, with credentials if it is federated.
        :raise S3Error: (in the Deferred) as the exchange maps the token
            service's answer.
        """
        config = bucket.config
        exchange: Any = EXCHANGES.get(config.backend_type)
        if not federated(config) or exchange is None:
            return succeed(bucket)
        key = _cache_key(config, subject_for(config, principal))

        def fetch() -> Deferred[Credentials]:
            return Deferred.fromCoroutine(
                exchange(
                    self._forwarder, self.provider, config, principal, self._timeout
                )
            )

        got = self.cache.get(key, fetch)
        return got.addCallback(
            lambda credentials: evolve(
                bucket, config=with_credentials(config, credentials)
            )
        )

    def handle(self, context: DispatchContext, next: Next) -> Deferred[Response]:
        principal = context.identity.principal

        def prepare(bucket: ResolvedBucket) -> Deferred[ResolvedBucket]:
            return self.prepare(bucket, principal)

        preparers = (*context.bucket_preparers, prepare)
        bucket = context.bucket
        if bucket is None or not federated(bucket.config):
            return next(evolve(context, bucket_preparers=preparers))
        prepared = self.prepare(bucket, principal)
        return prepared.addCallback(
            lambda ready: next(
                evolve(context, bucket=ready, bucket_preparers=preparers)
            )
        )

    def after_dispatch(self, completed: CompletedRequest) -> None:
        pass
