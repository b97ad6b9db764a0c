# -*- test-case-name: tests.unit.test_oidc -*-
"""
Reading ``[oidc_provider]``, and checking the ``backend_options`` of
buckets whose stores are reached with credentials the provider's tokens
buy (``auth_type = "oidc"``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Final

from multistore.config import OidcProviderConfig, SigningKey
from multistore.configtable import Table
from multistore.oidc.keys import load_key

#: The key id of a key given the Rust system's way (``OIDC_PROVIDER_KEY``).
ENV_KEY_ID: Final = "proxy-key-1"

#: ``backend_options`` of federated buckets, per store kind, besides
#: ``auth_type``.
FEDERATION_OPTIONS: Final = {
    "s3": frozenset({"oidc_role_arn", "oidc_subject", "oidc_audience", "sts_endpoint"}),
    "azure": frozenset(
        {"tenant_id", "client_id", "authority", "oidc_subject", "oidc_audience"}
    ),
    "gcs": frozenset(
        {
            "workload_identity_provider",
            "service_account",
            "oidc_subject",
            "oidc_audience",
            "sts_endpoint",
            "iam_endpoint",
        }
    ),
}

#: What each kind needs.
_REQUIRED: Final = {
    "s3": ("oidc_role_arn",),
    "azure": ("tenant_id", "client_id"),
    "gcs": ("workload_identity_provider",),
}

#: Static credentials a federated bucket must not also have.
_STATIC: Final = {
    "s3": ("access_key_id", "secret_access_key", "token"),
    "azure": ("access_key", "sas_token", "bearer_token"),
    "gcs": ("service_account_key", "access_key_id", "secret_access_key"),
}


def read_oidc_provider(top: Table) -> OidcProviderConfig | None:
    """
    Read ``[oidc_provider]`` from the file's top level ``top`` or, when the
    file has none, the Rust system's ``OIDC_PROVIDER_KEY`` and
    ``OIDC_PROVIDER_ISSUER`` from the environment; ``None`` if neither is
    given. Every key is loaded, so a bad one is found now.
    """
    if not top.has("oidc_provider"):
        from_env = os.environ.get("OIDC_PROVIDER_KEY")
        env_issuer = os.environ.get("OIDC_PROVIDER_ISSUER")
        if not from_env or not env_issuer:
            return None
        try:
            load_key(ENV_KEY_ID, from_env)
        except ValueError as error:
            top.problems.error("environment, OIDC_PROVIDER_KEY", str(error))
        return OidcProviderConfig(
            issuer=env_issuer.rstrip("/"), keys=(SigningKey(ENV_KEY_ID, from_env),)
        )
    table = top.table("oidc_provider")
    issuer: str = table.string("issuer")
    if issuer and not re.match(r"^https?://[^/?#]+(/[^?#]*)?$", issuer):
        table.error("issuer", f"must be an http:// or https:// URL, not {issuer!r}")
    issuer = issuer.rstrip("/")
    keys = []
    for entry in table.tables("keys", "id"):
        key_id: str = entry.string("id")
        if key_id and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", key_id):
            entry.error("id", "must be 1 to 64 letters, digits, '.', '_' or '-'")
        pem: str = entry.string("key", secret=True)
        if pem:
            try:
                load_key(key_id, pem)
            except ValueError as error:
                entry.error("key", str(error))
        keys.append(SigningKey(key_id, pem))
        entry.unknown({"id", "key"})
    if not keys:
        table.error("keys", "at least one [[oidc_provider.keys]] is required")
    if len({k.id for k in keys}) != len(keys):
        table.error("keys", "key ids must be different")
    config = OidcProviderConfig(
        issuer=issuer,
        keys=tuple(keys),
        token_lifetime_secs=table.number(
            "token_lifetime_secs", 300, minimum=60, integer=True
        ),
        timeout_secs=float(table.number("timeout_secs", 10.0, minimum=0.1)),
    )
    table.unknown({"issuer", "keys", "token_lifetime_secs", "timeout_secs"})
    return config


def provider_options(config: OidcProviderConfig) -> dict[str, Any]:
    """
    :return: ``config`` as the ``[oidc_provider]`` table it was read from,
        for the factories of the provider's route and middleware.
    """
    return {
        "issuer": config.issuer,
        "token_lifetime_secs": config.token_lifetime_secs,
        "timeout_secs": config.timeout_secs,
        "keys": [{"id": k.id, "key": k.pem} for k in config.keys],
    }


def check_federation(bucket: Table, kind: str, options: Mapping[str, str]) -> None:
    """
    Check a bucket's federation options: ``auth_type`` is ``oidc`` or
    absent; a federated bucket names what its kind needs and no static
    credentials.
    """
    auth_type = options.get("auth_type")
    if not auth_type:
        return
    where = "backend_options."
    if auth_type != "oidc":
        bucket.error(where + "auth_type", f"must be 'oidc', not {auth_type!r}")
        return
    if kind not in _REQUIRED:
        bucket.error(where + "auth_type", f"'{kind}' backends take no auth_type")
        return
    for name in _REQUIRED[kind]:
        if not options.get(name):
            bucket.error(where + name, "required with auth_type = 'oidc'")
    for name in _STATIC[kind]:
        if options.get(name):
            bucket.error(
                where + name,
                "a bucket with auth_type = 'oidc' takes no static credentials",
            )
