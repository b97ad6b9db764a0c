# -*- test-case-name: tests.unit.test_config -*-
"""
The configuration's values: every table of the configuration file as a frozen
value, shared by every layer.

L{multistore.configfile} reads and checks a file into these; a registry
backed by something other than the file (a database, an API) builds them
itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from attrs import field, frozen

#: Option keys whose values are secrets (redacted in logs and reprs).
SECRET_OPTIONS: Final = frozenset(
    {
        "secret_access_key",
        "access_key",
        "service_account_key",
        "token",
        "sas_token",
        "bearer_token",
    }
)


#: The actions a scope can grant, in the vocabulary shared by config, code,
#: logs and docs.
ACTIONS: Final = frozenset(
    {
        "get_object",
        "get_object_version",
        "head_object",
        "put_object",
        "list_bucket",
        "create_multipart_upload",
        "upload_part",
        "complete_multipart_upload",
        "abort_multipart_upload",
        "delete_object",
        "create_bucket",
        "delete_bucket",
    }
)

#: The actions an anonymous caller may be granted by ``anonymous_access``.
ANONYMOUS_ACTIONS: Final = frozenset({"get_object", "head_object", "list_bucket"})

#: ``backend_type`` spellings and the store kind each selects.
BACKEND_TYPES: Final = MappingProxyType(
    {
        "s3": "s3",
        "file": "file",
        "az": "azure",
        "azure": "azure",
        "gcs": "gcs",
        "gs": "gcs",
    }
)


def frozen_mapping(mapping: Mapping[str, str]) -> Mapping[str, str]:
    """
    :return: a read-only copy of ``mapping``.
    """
    return MappingProxyType(dict(mapping))


def _secret_repr(value: object) -> str:
    return "'***'" if value else "''"


def _options_repr(options: Mapping[str, str]) -> str:
    shown = {
        k: ("***" if k in SECRET_OPTIONS else v) for k, v in sorted(options.items())
    }
    return repr(shown)


@frozen
class AccessScope:
    """
    A grant: ``actions`` on keys under ``prefixes`` in buckets matching
    ``bucket``.

    :ivar bucket: a bucket name, or a glob where ``*`` matches any run of
        characters (``*`` alone means every bucket).
    :ivar prefixes: key prefixes; empty means the whole bucket. A prefix that
        does not end in ``/`` matches the key itself and keys below
        ``prefix + "/"``, never a sibling such as ``prefix + "-x"``.
    :ivar actions: action names from L{ACTIONS}.
    """

    bucket: str
    prefixes: tuple[str, ...] = ()
    actions: frozenset[str] = frozenset()


#: The placeholder a bucket pattern's backend_prefix and options use for the
#: name of the bucket matched.
TEMPLATE: Final = "{bucket}"

#: The backend options that may carry the placeholder (endpoints, regions and
#: credentials may not).
TEMPLATED_OPTIONS: Final = frozenset({"bucket_name", "container_name", "root"})


@frozen
class BucketConfig:
    """
    A virtual bucket and the store behind it.

    :ivar name: the client-visible bucket name, or a pattern (``team-*``)
        whose ``backend_prefix`` or options name each matched bucket with
        ``{bucket}``.
    :ivar backend_type: the store kind, normalised (``s3``, ``file``,
        ``azure``, ``gcs``).
    :ivar backend_prefix: prepended to every key in the store, without
        leading or trailing ``/``; empty for none.
    :ivar anonymous_access: whether unauthenticated callers may read and list.
    :ivar allowed_roles: if not empty, only sessions of these STS roles may
        use the bucket (static credentials are unaffected).
    :ivar backend_options: store settings, names normalised (see the docs).
    """

    name: str
    backend_type: str
    backend_prefix: str = ""
    anonymous_access: bool = False
    allowed_roles: tuple[str, ...] = ()
    backend_options: Mapping[str, str] = field(
        factory=dict, converter=frozen_mapping, repr=_options_repr
    )

    @property
    def is_pattern(self) -> bool:
        """
        Whether this entry is a pattern (``team-*``) standing for many
        buckets.
        """
        return "*" in self.name

    @property
    def shares_backend_bucket(self) -> bool:
        """
        For a pattern: whether the buckets it matches are prefixes of one
        backend bucket (``backend_prefix = "tenants/{bucket}"``) rather than
        buckets (or directories) of their own.
        """
        return TEMPLATE in self.backend_prefix

    def instantiate(self, name: str) -> BucketConfig:
        """
        :return: the configuration of bucket ``name``, matched by this
            pattern.
        """
        return BucketConfig(
            name=name,
            backend_type=self.backend_type,
            backend_prefix=self.backend_prefix.replace(TEMPLATE, name),
            anonymous_access=self.anonymous_access,
            allowed_roles=self.allowed_roles,
            backend_options={
                k: v.replace(TEMPLATE, name) for k, v in self.backend_options.items()
            },
        )

    def option(self, name: str, default: str | None = None) -> str | None:
        """
        :return: the backend option ``name``, or ``default`` if unset or empty.
        """
        value = self.backend_options.get(name)
        return value if value else default

    def flag(self, name: str) -> bool:
        """
        :return: whether the backend option ``name`` is set to a true value.
        """
        return (self.backend_options.get(name) or "").lower() in {"true", "1", "yes"}


@frozen
class StoredCredential:
    """
    A static access key.

    :ivar access_key_id: the key id clients sign with.
    :ivar secret_access_key: the secret.
    :ivar principal_name: who this key belongs to (logs, audit, metering).
    :ivar allowed_scopes: what the key may do.
    :ivar created_at: when it was issued, if known.
    :ivar expires_at: when it stops working, if ever.
    :ivar enabled: a disabled key is refused as if unknown.
    """

    access_key_id: str
    secret_access_key: str = field(repr=_secret_repr)
    principal_name: str
    allowed_scopes: tuple[AccessScope, ...] = ()
    created_at: datetime | None = None
    expires_at: datetime | None = None
    enabled: bool = True


def _read_only_globs(
    mapping: Mapping[str, tuple[str, ...]],
) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType(dict(mapping))


@frozen
class RoleConfig:
    """
    An STS role that web identities may assume.

    :ivar role_id: the ``RoleArn`` clients name.
    :ivar name: a display name.
    :ivar trusted_oidc_issuers: issuers whose tokens are accepted.
    :ivar required_audiences: a token must carry one of these audiences.
    :ivar subject_conditions: globs the token subject must match (any, if
        empty).
    :ivar allowed_scopes: scope templates granted to sessions.
    :ivar max_session_duration_secs: the longest session issued (at least
        900 seconds, the shortest).
    :ivar allow_any_audience: whether a role without ``required_audiences``
        is meant to accept tokens of any audience (it must say so).
    :ivar claim_conditions: further claims the token must carry, each
        matching one of its globs (``repository_owner = "myorg"``,
        ``environment = ["prod", "staging-*"]``).
    """

    role_id: str
    name: str
    trusted_oidc_issuers: tuple[str, ...]
    required_audiences: tuple[str, ...] = ()
    subject_conditions: tuple[str, ...] = ()
    allowed_scopes: tuple[AccessScope, ...] = ()
    max_session_duration_secs: int = 3600
    allow_any_audience: bool = False
    claim_conditions: Mapping[str, tuple[str, ...]] = field(
        factory=dict, converter=_read_only_globs
    )


#: The shortest session STS issues, in seconds (as AWS).
MIN_SESSION_SECONDS: Final = 900


@frozen
class SessionKey:
    """
    A key sealing STS session tokens.

    :ivar key_id: names the key inside the tokens it seals.
    :ivar key: the 32 bytes of an AES-256 key.
    """

    key_id: str
    key: bytes = field(repr=_secret_repr)


@frozen
class StsConfig:
    """
    Settings from ``[sts]``.

    :ivar keys: the keys sealing session tokens; the first seals new ones,
        every one opens (so keys can be rotated without ending live
        sessions). Empty: STS is off.
    :ivar jwks_refetch_interval: the least seconds between two fetches of an
        issuer's keys for a token naming a key id not seen yet.
    :ivar jwks_failure_seconds: how long an issuer that could not be reached
        is not asked again.
    :ivar http_timeout: seconds to wait for an issuer's discovery document
        or keys.
    :ivar leeway_seconds: clock leeway for ``exp``, ``nbf`` and ``iat``.
    :ivar max_token_bytes: the longest web identity token accepted.
    :ivar insecure_issuers: issuers allowed over plain HTTP although not on
        the loopback interface (for tests and closed networks only).
    """

    keys: tuple[SessionKey, ...] = ()
    jwks_refetch_interval: int = 30
    jwks_failure_seconds: int = 30
    http_timeout: float = 5.0
    leeway_seconds: int = 60
    max_token_bytes: int = 16384
    insecure_issuers: tuple[str, ...] = ()


@frozen
class ServerConfig:
    """
    Daemon settings from ``[server]``.

    :ivar listen: Twisted endpoint strings to listen on when the command line
        names none.
    :ivar domains: virtual-hosted-style domains (``bucket.DOMAIN``).
    :ivar region: the region reported by GetBucketLocation.
    :ivar backend_connect_timeout: seconds to wait for a backend connection.
    :ivar backend_timeout: seconds a backend may stay silent (before its
        response headers, or between body chunks) before the request fails.
    :ivar backend_max_connections_per_host: persistent backend connections
        kept per host.
    :ivar max_clock_skew: seconds a signed request's time may differ from ours.
    :ivar server_timing: whether to add a ``Server-Timing`` header.
    :ivar debug_errors: whether internal errors name the exception in their
        message (never the traceback; that goes to the log).
    :ivar max_object_size: the largest object (or part) accepted, in bytes.
    :ivar max_xml_body_size: the largest XML request body accepted
        (DeleteObjects, CompleteMultipartUpload), in bytes.
    :ivar shutdown_timeout: seconds a stopping daemon lets requests in
        flight finish.
    :ivar admin_listen: Twisted endpoint strings of the admin listener
        (health, readiness, metrics); none by default.
    :ivar token_secret: mixed into the key that seals stores' listing tokens
        inside continuation tokens; the same on every instance.
    """

    listen: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    region: str = "us-east-1"
    backend_connect_timeout: float = 5.0
    backend_timeout: float = 60.0
    backend_max_connections_per_host: int = 32
    max_clock_skew: int = 900
    server_timing: bool = True
    debug_errors: bool = False
    max_object_size: int = 5 * 1024**4
    max_xml_body_size: int = 2 * 1024 * 1024
    token_secret: str = field(default="", repr=_secret_repr)
    shutdown_timeout: float = 30.0
    admin_listen: tuple[str, ...] = ()


@frozen
class LoggingConfig:
    """
    Settings from ``[logging]``.

    :ivar access_log: whether every request is logged (one line each).
    :ivar access_log_format: ``text`` or ``json`` (one object per line).
    """

    access_log: bool = True
    access_log_format: str = "text"


@frozen
class SigningKey:
    """
    A private key the OIDC provider signs with, from
    ``[[oidc_provider.keys]]``.

    :ivar id: its key id (the JWT header's ``kid``).
    :ivar pem: the PKCS#8 PEM private key (RSA for RS256, P-256 for ES256).
    """

    id: str
    pem: str = field(repr=_secret_repr)


@frozen
class OidcProviderConfig:
    """
    Settings from ``[oidc_provider]``: the daemon as an OpenID Connect
    identity provider that backends trust.

    :ivar issuer: the daemon's public base URL, the tokens' ``iss``.
    :ivar keys: the signing keys; the first signs, all are published.
    :ivar token_lifetime_secs: how long a token it signs is valid.
    :ivar timeout_secs: how long a token service may take to answer.
    """

    issuer: str
    keys: tuple[SigningKey, ...]
    token_lifetime_secs: int = 300
    timeout_secs: float = 10.0


#: What ``principal`` in a metering rule may say besides a principal's
#: name: every anonymous caller, or every authenticated one.
ANONYMOUS_PRINCIPAL: Final = "anonymous"
ANY_AUTHENTICATED: Final = "*"


@frozen
class RateLimit:
    """
    A request rate, from ``[[metering.rate_limits]]``: at most ``requests``
    per ``per_seconds`` for each (bucket, caller), where an anonymous caller
    is told apart by its address.

    :ivar bucket: a virtual bucket name or a glob (``*`` any run).
    :ivar principal: ``anonymous``, ``*`` (any authenticated caller), a
        principal's name, or ``None`` for every caller.
    :ivar requests: how many requests.
    :ivar per_seconds: in how many seconds.
    """

    requests: int
    per_seconds: float
    bucket: str = "*"
    principal: str | None = None


@frozen
class BandwidthQuota:
    """
    A transfer quota, from ``[[metering.bandwidth_quotas]]``: at most
    ``limit_bytes`` received and sent in each window of ``window_secs`` for
    each (bucket, caller).

    :ivar bucket: as for L{RateLimit}.
    :ivar principal: as for L{RateLimit}.
    :ivar limit_bytes: bytes per window, both ways together.
    :ivar window_secs: the window's length in seconds.
    """

    limit_bytes: int
    window_secs: int
    bucket: str = "*"
    principal: str | None = None


@frozen
class MeteringConfig:
    """
    Settings from ``[metering]``.

    :ivar store: ``memory`` (one process) or ``redis`` (shared by a fleet).
    :ivar redis_url: where Redis is: ``redis://``, ``rediss://``,
        ``redis+sentinel://`` or ``redis+cluster://``.
    :ivar on_store_failure: ``open`` (serve, and log) or ``closed`` (refuse
        with ``SlowDown``) when the store cannot answer in time.
    :ivar timeout_ms: the budget of every call to the store.
    :ivar usage_log: a file that gets one JSON line per request, if set.
    :ivar trusted_proxies: networks whose ``X-Forwarded-For`` names the
        client's address.
    :ivar rate_limits: request rates; the first that matches applies.
    :ivar bandwidth_quotas: transfer quotas; the first that matches applies.
    :ivar key_prefix: what every Redis key starts with.
    :ivar pool_size: threads that talk to Redis.
    :ivar flush_ms: how often counters are written to the store.
    :ivar retention_days: how long per-minute usage counters are kept.
    """

    store: str = "memory"
    redis_url: str = ""
    on_store_failure: str = "open"
    timeout_ms: int = 50
    usage_log: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()
    bandwidth_quotas: tuple[BandwidthQuota, ...] = ()
    key_prefix: str = "multistore"
    pool_size: int = 4
    flush_ms: int = 1000
    retention_days: int = 8


def _frozen_options(options: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(options))


@frozen
class PluginConfig:
    """
    A plug-in named in the configuration (``[[middleware]]``, ``[registry]``,
    ``[[routes]]``): a factory the daemon resolves and calls at start-up as
    ``factory(options, reactor)``.

    :ivar use: where the factory is, ``package.module:name`` (the name may
        be dotted, ``module:Class.method``).
    :ivar options: the table's ``options``, handed to the factory as a new
        dict each time.
    :ivar where: the table it was given in, for messages
        (``[[middleware]] #2``).
    """

    use: str
    options: Mapping[str, Any] = field(factory=dict, converter=_frozen_options)
    where: str = ""


@frozen
class Config:
    """
    A whole, validated configuration.

    :ivar middleware: plug-in middleware, in the order they run.
    :ivar registry: a plug-in registry that replaces the file's buckets, or
        its credentials and roles, or both (by the interfaces it provides).
    :ivar routes: plug-in route handlers, consulted after the built-in ones.
    :ivar metering: rate limits, quotas and usage records, if
        ``[metering]`` is given.
    :ivar oidc_provider: the daemon as an identity provider, if
        ``[oidc_provider]`` (or ``OIDC_PROVIDER_KEY``) is given.

    :ivar source: where it was loaded from.
    :ivar warnings: non-fatal remarks about the file, for the operator.
    """

    owner_id: str = "multistore"
    owner_display_name: str = "multistore"
    buckets: tuple[BucketConfig, ...] = ()
    roles: tuple[RoleConfig, ...] = ()
    credentials: tuple[StoredCredential, ...] = ()
    server: ServerConfig = ServerConfig()
    sts: StsConfig = StsConfig()
    logging: LoggingConfig = LoggingConfig()
    middleware: tuple[PluginConfig, ...] = ()
    registry: PluginConfig | None = None
    routes: tuple[PluginConfig, ...] = ()
    metering: MeteringConfig | None = None
    oidc_provider: OidcProviderConfig | None = None
    source: str = "<memory>"
    warnings: tuple[str, ...] = ()
