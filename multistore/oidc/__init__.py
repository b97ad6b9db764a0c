"""
The daemon as an OpenID Connect identity provider, and the backend
credentials its tokens buy.

``[oidc_provider]`` in the configuration turns on both: the provider's
documents (a route, L{provider_documents}) and the middleware that
injects credentials into buckets with ``auth_type = "oidc"``
(L{backend_credentials}), loaded through the same plug-in mechanism as an
operator's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multistore import __version__
from multistore.config import OidcProviderConfig
from multistore.configtable import Problems, Table
from multistore.forwarder.agent import AgentForwarder
from multistore.oidc.federation import BackendCredentials
from multistore.oidc.provider import OidcProvider, ProviderDocuments
from multistore.oidc.settings import provider_options, read_oidc_provider

__all__ = [
    "BackendCredentials",
    "OidcProvider",
    "ProviderDocuments",
    "backend_credentials",
    "provider_documents",
    "provider_options",
]


def _config(options: dict[str, Any]) -> OidcProviderConfig:
    problems = Problems()
    top = Table({"oidc_provider": options}, "", problems, Path.cwd())
    config = read_oidc_provider(top)
    if problems.errors or config is None:
        raise ValueError("; ".join(problems.errors) or "no [oidc_provider]")
    return config


def provider_documents(options: dict[str, Any], reactor: Any) -> ProviderDocuments:
    """
    Make the route that serves the provider's discovery document and keys
    (a plug-in factory).
    """
    return ProviderDocuments(OidcProvider.from_config(_config(options), reactor))


def backend_credentials(options: dict[str, Any], reactor: Any) -> BackendCredentials:
    """
    Make the middleware that gives federated buckets their credentials (a
    plug-in factory). Token services are reached through a connection pool
    of its own; ``timeout_secs`` bounds each call to one.
    """
    config = _config(options)
    timeout = config.timeout_secs
    forwarder = AgentForwarder.create(
        reactor,
        connect_timeout=timeout,
        timeout=timeout,
        max_connections_per_host=4,
        user_agent=f"multistore/{__version__}",
    )
    return BackendCredentials(
        OidcProvider.from_config(config, reactor), forwarder, reactor, timeout=timeout
    )
