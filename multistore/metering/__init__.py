"""
Metering: request rates and transfer quotas judged before bytes move, and
a record of what every request used, for one daemon or shared by a fleet
through Redis.

``[metering]`` in the configuration turns it on; the daemon then loads
L{metering_middleware} as the first of its middleware, through the same
plug-in mechanism as an operator's own (``[[middleware]]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multistore.configtable import Problems, Table
from multistore.metering.counters import CounterStore, MemoryCounters
from multistore.metering.limiter import Limiter
from multistore.metering.middleware import MeteringMiddleware
from multistore.metering.redisstore import RedisCounters
from multistore.metering.rules import trusted_networks
from multistore.metering.settings import read_metering
from multistore.metering.usagelog import UsageLog

__all__ = ["MeteringMiddleware", "metering_middleware"]


def metering_middleware(options: dict[str, Any], reactor: Any) -> MeteringMiddleware:
    """
    Make the metering middleware (a plug-in factory).

    :param options: the ``[metering]`` table.
    :raise ValueError: if the options are not valid.
    """
    problems = Problems()
    config = read_metering(Table(options, "[metering]", problems, Path.cwd()))
    if problems.errors:
        raise ValueError("; ".join(problems.errors))
    store: CounterStore
    if config.store == "redis":
        store = RedisCounters(
            config.redis_url,
            reactor,
            timeout=config.timeout_ms / 1000,
            pool_size=config.pool_size,
        )
    else:
        store = MemoryCounters(reactor)
    limiter = Limiter(store, config, reactor)
    usage_log = UsageLog(config.usage_log, reactor) if config.usage_log else None
    middleware = MeteringMiddleware(
        limiter,
        [limiter] if usage_log is None else [limiter, usage_log],
        trusted_networks(config.trusted_proxies),
        flush=limiter.flush,
    )
    if isinstance(store, RedisCounters):
        store.setServiceParent(middleware)
    if usage_log is not None:
        usage_log.setServiceParent(middleware)
    return middleware
