# -*- test-case-name: tests.unit.test_metering_settings -*-
"""
Reading ``[metering]``: the daemon's configuration file and the options the
metering middleware's factory is given are the same table, read here.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Final
from urllib.parse import urlsplit

from multistore.config import BandwidthQuota, MeteringConfig, RateLimit
from multistore.configtable import Table

#: The stores metering can keep its state in.
STORES: Final = ("memory", "redis")

#: What a store that cannot answer in time means for the client.
FAILURE_MODES: Final = ("open", "closed")

#: The forms of ``redis_url``.
REDIS_SCHEMES: Final = ("redis", "rediss", "redis+sentinel", "redis+cluster")

_FIELDS: Final = frozenset(
    {
        "store",
        "redis_url",
        "on_store_failure",
        "timeout_ms",
        "usage_log",
        "trusted_proxies",
        "rate_limits",
        "bandwidth_quotas",
        "key_prefix",
        "pool_size",
        "flush_ms",
        "retention_days",
    }
)


def _choice(table: Table, name: str, choices: tuple[str, ...], default: str) -> str:
    value: str = table.string(name, default)
    if value not in choices:
        table.error(name, f"must be one of {', '.join(choices)}, not {value!r}")
        return default
    return value


def _principal(table: Table) -> str | None:
    principal: str | None = table.string("principal", None)
    if principal == "":
        table.error("principal", "must not be empty (leave it out for every caller)")
        return None
    return principal


def _rate_limit(table: Table) -> RateLimit:
    rule = RateLimit(
        bucket=table.string("bucket", "*") or "*",
        principal=_principal(table),
        requests=table.number("requests", 0, minimum=1, integer=True),
        per_seconds=float(table.number("per_seconds", 1, minimum=0.001)),
    )
    if not table.has("requests"):
        table.error("requests", "required, but missing")
    table.unknown({"bucket", "principal", "requests", "per_seconds"})
    return rule


def _quota(table: Table) -> BandwidthQuota:
    rule = BandwidthQuota(
        bucket=table.string("bucket", "*") or "*",
        principal=_principal(table),
        limit_bytes=table.number("limit_bytes", 0, minimum=0, integer=True),
        window_secs=table.number("window_secs", 0, minimum=1, integer=True),
    )
    for name in ("limit_bytes", "window_secs"):
        if not table.has(name):
            table.error(name, "required, but missing")
    table.unknown({"bucket", "principal", "limit_bytes", "window_secs"})
    return rule


def _redis_url(table: Table, store: str) -> str:
    url: str = table.string("redis_url", "", secret=True)
    if store != "redis":
        if url:
            table.warn("redis_url", f"not used with store = {store!r}")
        return url
    if not url:
        table.error("redis_url", "required with store = 'redis'")
        return url
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        table.error(
            "redis_url",
            f"must start with {', '.join(s + '://' for s in REDIS_SCHEMES)}",
        )
    elif not parts.netloc:
        table.error("redis_url", "names no host")
    elif parts.scheme == "redis+sentinel" and not parts.path.strip("/"):
        table.error(
            "redis_url",
            "a sentinel URL names the master after the hosts "
            "(redis+sentinel://host:26379/mymaster/0)",
        )
    return url


def _networks(table: Table) -> tuple[str, ...]:
    networks = []
    for value in table.strings("trusted_proxies"):
        try:
            networks.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            table.error("trusted_proxies", f"not an address or network: {value!r}")
    return tuple(networks)


def read_metering(table: Table) -> MeteringConfig:
    """
    Read ``[metering]``, reporting every problem to ``table``.
    """
    store = _choice(table, "store", STORES, "memory")
    usage_log = table.string("usage_log", None)
    if usage_log:
        usage_log = str(table.base / usage_log)
    config = MeteringConfig(
        store=store,
        redis_url=_redis_url(table, store),
        on_store_failure=_choice(table, "on_store_failure", FAILURE_MODES, "open"),
        timeout_ms=table.number("timeout_ms", 50, minimum=1, integer=True),
        usage_log=usage_log or None,
        trusted_proxies=_networks(table),
        rate_limits=tuple(
            _rate_limit(t) for t in table.tables("rate_limits", "bucket")
        ),
        bandwidth_quotas=tuple(
            _quota(t) for t in table.tables("bandwidth_quotas", "bucket")
        ),
        key_prefix=table.string("key_prefix", "multistore") or "multistore",
        pool_size=table.number("pool_size", 4, minimum=1, integer=True),
        flush_ms=table.number("flush_ms", 1000, minimum=10, integer=True),
        retention_days=table.number("retention_days", 8, minimum=1, integer=True),
    )
    table.unknown(_FIELDS)
    return config


def metering_options(config: MeteringConfig) -> dict[str, Any]:
    """
    :return: ``config`` as the table it was read from (paths made
        absolute), for the factory of the metering middleware.
    """
    options: dict[str, Any] = {
        "store": config.store,
        "on_store_failure": config.on_store_failure,
        "timeout_ms": config.timeout_ms,
        "trusted_proxies": list(config.trusted_proxies),
        "key_prefix": config.key_prefix,
        "pool_size": config.pool_size,
        "flush_ms": config.flush_ms,
        "retention_days": config.retention_days,
        "rate_limits": [_rule(rule) for rule in config.rate_limits],
        "bandwidth_quotas": [_rule(rule) for rule in config.bandwidth_quotas],
    }
    if config.redis_url:
        options["redis_url"] = config.redis_url
    if config.usage_log:
        options["usage_log"] = config.usage_log
    return options


def _rule(rule: RateLimit | BandwidthQuota) -> dict[str, Any]:
    out: dict[str, Any] = {"bucket": rule.bucket}
    if rule.principal is not None:
        out["principal"] = rule.principal
    if isinstance(rule, RateLimit):
        out.update(requests=rule.requests, per_seconds=rule.per_seconds)
    else:
        out.update(limit_bytes=rule.limit_bytes, window_secs=rule.window_secs)
    return out
