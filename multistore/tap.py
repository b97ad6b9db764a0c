# -*- test-case-name: tests.unit.test_tap -*-
"""
The daemon: command-line options and the service tree ``twistd multistore``
and ``python -m twisted multistore`` run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from treq.client import HTTPClient
from twisted.application import strports
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.threadpool import ThreadPool
from twisted.web.client import Agent, HTTPConnectionPool

from multistore import __version__
from multistore.auth.authentication import Authenticator
from multistore.auth.registry import StaticBucketRegistry, StaticCredentialRegistry
from multistore.auth.sessions import SessionKeys
from multistore.config import Config
from multistore.configfile import load_config
from multistore.configtable import ConfigError
from multistore.daemon import Generation, MultistoreService
from multistore.forwarder.agent import AgentForwarder
from multistore.gateway.metrics import Metrics, MetricsObserver
from multistore.gateway.pipeline import Gateway
from multistore.interfaces import (
    IBucketRegistry,
    ICredentialRegistry,
    IMiddleware,
    IRouteHandler,
    IStoreFactory,
)
from multistore.operations.dispatcher import Dispatcher
from multistore.operations.presence import BucketPresence
from multistore.plugins import Plugins, load_plugins
from multistore.s3.checksums import ALGORITHMS, library_for
from multistore.stores.factory import StoreFactory
from multistore.sts.jwks import JwksCache
from multistore.sts.service import StsRoute
from multistore.web.admin import admin_site
from multistore.web.site import GatewayResource, make_site

#: Where the daemon listens when neither the command line nor ``[server]``
#: says.
DEFAULT_LISTEN = "tcp:8080:interface=127.0.0.1"

#: Threads for local-directory stores' file I/O.
FILE_THREADS = 8

#: The configuration file read when ``--config`` is not given.
DEFAULT_CONFIG = "/etc/multistore/multistore.toml"


class Options(usage.Options):
    """
    ``multistore`` plugin options.
    """

    synopsis = (
        "[--config FILE] [--listen ENDPOINT ...] [--admin-listen ENDPOINT ...] "
        "[--domain DOMAIN ...]"
    )
    longdesc = (
        "multistore: an S3-compatible gateway. Clients speak S3 to it; it maps "
        "each virtual bucket onto a real store, authenticates and authorizes "
        "callers, and streams the bytes through. Configuration is read from "
        "FILE (TOML, or JSON if the name ends in .json); see "
        "etc/multistore/multistore.toml for a documented example."
    )

    optParameters = [
        [
            "config",
            "c",
            DEFAULT_CONFIG,
            "The configuration file (TOML, or JSON by extension).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["domains"] = []
        self["admin-listen"] = []

    def opt_listen(self, endpoint: str) -> None:
        """
        Listen on a Twisted endpoint, e.g. tcp:8080:interface=127.0.0.1 or
        ssl:8443:privateKey=key.pem:certKey=cert.pem (repeatable; default:
        [server] listen in the config, else tcp:8080:interface=127.0.0.1).
        """
        self["listen"].append(endpoint)

    opt_l = opt_listen

    def opt_admin_listen(self, endpoint: str) -> None:
        """
        Serve /healthz, /readyz and /metrics on a Twisted endpoint, e.g.
        tcp:9100:interface=127.0.0.1 (repeatable; adds to [server]
        admin_listen). Never the S3 port.
        """
        self["admin-listen"].append(endpoint)

    def opt_domain(self, domain: str) -> None:
        """
        Serve virtual-hosted-style requests (BUCKET.DOMAIN) for DOMAIN
        (repeatable; adds to [server] domains in the config). Path-style
        requests always work.
        """
        self["domains"].append(domain.strip(".").lower())

    def postOptions(self) -> None:
        from twisted.internet import reactor

        try:
            self["loaded"] = load_config(self["config"])
            self["plugins"] = load_plugins(self["loaded"], reactor)
        except ConfigError as e:
            raise usage.UsageError(e.explain()) from None
        listen = self["listen"] or list(self["loaded"].server.listen)
        admin = [*self["admin-listen"], *self["loaded"].server.admin_listen]
        for option, descriptions in (("--listen", listen), ("--admin-listen", admin)):
            for description in descriptions:
                try:
                    serverFromString(reactor, description)
                except (ValueError, KeyError, TypeError) as e:
                    raise usage.UsageError(
                        f"bad {option} endpoint {description!r}: {e}"
                    ) from None
        if set(admin) & set(listen):
            raise usage.UsageError(
                "the admin listener must not be an S3 listener: "
                + ", ".join(sorted(set(admin) & set(listen)))
            )


class _ForwarderService(Service):
    """
    Closes the forwarder's pooled backend connections at shutdown.
    """

    def __init__(self, forwarder: AgentForwarder) -> None:
        self._forwarder = forwarder

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self._forwarder.close()


class _ThreadPoolService(Service):
    """
    Runs the thread pool local-directory stores do their file I/O in, apart
    from the reactor's own (which resolves host names), so neither can
    starve the other.
    """

    def __init__(self, pool: ThreadPool) -> None:
        self.pool = pool

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self) -> None:
        super().stopService()
        self.pool.stop()


class _WarningsService(Service):
    """
    Logs the configuration's warnings once the daemon is up.
    """

    log = Logger()

    def __init__(self, config: Config, plugins: Plugins) -> None:
        self._config = config
        self._plugins = plugins

    def startService(self) -> None:
        super().startService()
        self.log.info(
            "multistore {version}: {buckets} buckets, {credentials} credentials from {source}",
            version=__version__,
            buckets=len(self._config.buckets),
            credentials=len(self._config.credentials),
            source=self._config.source,
        )
        for warning in self._config.warnings:
            self.log.warn("config: {warning}", warning=warning)
        registry = self._config.registry
        if registry is not None:
            replaced = [
                what
                for what, by, given in (
                    ("[[buckets]]", self._plugins.buckets, self._config.buckets),
                    (
                        "[[credentials]] and [[roles]]",
                        self._plugins.credentials,
                        self._config.credentials or self._config.roles,
                    ),
                )
                if by is not None and given
            ]
            for what in replaced:
                self.log.warn(
                    "config: {what} in the file are not used: the registry "
                    "{use} replaces them",
                    what=what,
                    use=registry.use,
                )
        for algorithm in ALGORITHMS:
            if library_for(algorithm) is None:
                self.log.warn(
                    "no library computes {algorithm} here: uploads carrying "
                    "{algorithm} checksums will be refused (install crcmod with "
                    "its C extension)",
                    algorithm=algorithm,
                )


def _sts(
    config: Config, credentials: ICredentialRegistry, reactor: Any
) -> tuple[SessionKeys | None, tuple[IRouteHandler, ...]]:
    """
    The STS endpoint and the keys that open its session tokens, if STS is on
    (a session token key is configured).
    """
    sts = config.sts
    if not sts.keys:
        return None, ()
    keys = SessionKeys.from_config(sts.keys)
    pool = HTTPConnectionPool(reactor, persistent=True)
    http = HTTPClient(Agent(reactor, pool=pool, connectTimeout=sts.http_timeout))
    jwks = JwksCache(
        clock=reactor,
        http=http,
        insecure_issuers=sts.insecure_issuers,
        timeout=sts.http_timeout,
        refetch_interval=sts.jwks_refetch_interval,
        failure_ttl=sts.jwks_failure_seconds,
    )
    authenticator = Authenticator(
        credentials=credentials,
        clock=reactor,
        sessions=keys,
        domains=config.server.domains,
        max_clock_skew=config.server.max_clock_skew,
    )
    route = StsRoute(
        credentials=credentials,
        keys=keys,
        jwks=jwks,
        authenticator=authenticator,
        clock=reactor,
        leeway=sts.leeway_seconds,
        max_token_bytes=sts.max_token_bytes,
    )
    return keys, (route,)


def build_gateway(
    config: Config,
    stores: IStoreFactory,
    clock: IReactorTime,
    *,
    buckets: IBucketRegistry,
    credentials: ICredentialRegistry,
    sessions: SessionKeys | None = None,
    routes: Sequence[IRouteHandler] = (),
    middleware: Sequence[IMiddleware] = (),
    domains: Sequence[str] = (),
    access_log: bool | None = None,
) -> Gateway:
    """
    The gateway for ``config``: its pipeline and dispatcher, with the
    collaborators given.

    :param stores: makes the buckets' stores.
    :param clock: the time.
    :param sessions: the keys that open STS session tokens, if STS is on.
    :param routes: route handlers, in the order they are consulted.
    :param middleware: the middleware chain, in order.
    :param domains: virtual-hosted-style domains besides the
        configuration's.
    :param access_log: whether each request is logged; by default as
        ``[logging]`` says.
    """
    server = config.server
    return Gateway(
        buckets=buckets,
        credentials=credentials,
        sessions=sessions,
        routes=routes,
        middleware=middleware,
        dispatcher=Dispatcher(
            stores=stores,
            buckets=buckets,
            region=server.region,
            token_secret=server.token_secret.encode("utf-8"),
            max_object_size=server.max_object_size,
            max_xml_body_size=server.max_xml_body_size,
            presence=BucketPresence(clock),
        ),
        clock=clock,
        domains=tuple(dict.fromkeys([*server.domains, *domains])),
        max_clock_skew=server.max_clock_skew,
        debug_errors=server.debug_errors,
        access_log=config.logging.access_log if access_log is None else access_log,
        access_log_format=config.logging.access_log_format,
    )


def build_generation(
    config: Config,
    plugins: Plugins,
    *,
    stores: IStoreFactory,
    domains: Sequence[str],
    reactor: Any,
    metrics: Metrics,
) -> Generation:
    """
    Make what ``config`` and its ``plugins`` serve: the gateway, its
    registries, session keys, routes and middleware (the metrics observer
    last), and the plug-ins' services.
    """
    services = MultiService()
    for service in plugins.services:
        service.setServiceParent(services)
    buckets = plugins.buckets or StaticBucketRegistry.from_config(config)
    credentials = plugins.credentials or StaticCredentialRegistry.from_config(config)
    sessions, routes = _sts(config, credentials, reactor)
    gateway = build_gateway(
        config,
        stores,
        reactor,
        buckets=buckets,
        credentials=credentials,
        sessions=sessions,
        routes=(*routes, *plugins.routes),
        middleware=(*plugins.middleware, MetricsObserver(metrics)),
        domains=domains,
    )
    _WarningsService(config, plugins).setServiceParent(services)
    _watch_health(metrics, plugins)
    return Generation(config, gateway, services)


def _watch_health(metrics: Metrics, plugins: Plugins) -> None:
    """
    Show the current generation's metering store and credential cache
    failures as metrics.
    """
    for made in plugins.middleware:
        checker = getattr(made, "checker", None)
        if isinstance(getattr(checker, "store_failures", None), int):
            metrics.watch(
                "multistore_metering_store_failures",
                "Calls to the metering store that failed or timed out.",
                _reader(checker, "store_failures"),
            )
        cache = getattr(made, "cache", None)
        if isinstance(getattr(cache, "fetch_failures", None), int):
            metrics.watch(
                "multistore_credential_fetch_failures",
                "Backend credential fetches that failed.",
                _reader(cache, "fetch_failures"),
            )


def _reader(thing: object, name: str) -> Callable[[], float]:
    def read() -> float:
        return float(getattr(thing, name))

    return read


def build_service(
    config: Config,
    listen: list[str],
    domains: list[str],
    reactor: Any,
    plugins: Plugins | None = None,
    *,
    config_path: str | None = None,
    admin_listen: Sequence[str] = (),
) -> MultistoreService:
    """
    Wire the daemon for ``config``.

    :param listen: endpoint strings to listen on.
    :param domains: extra virtual-hosted-style domains.
    :param reactor: the reactor.
    :param plugins: the plug-ins ``config`` names, already made (by
        L{load_plugins}, which is called here if they are not given).
    :param config_path: the file ``config`` was read from, read again on
        reload; without it, the daemon cannot reload.
    :param admin_listen: endpoint strings of the admin listener, besides
        the configuration's.
    :raise ConfigError: if a plug-in cannot be made.
    """
    if plugins is None:
        plugins = load_plugins(config, reactor)
    server = config.server
    top_services: list[IService] = []
    forwarder = AgentForwarder.create(
        reactor,
        connect_timeout=server.backend_connect_timeout,
        timeout=server.backend_timeout,
        max_connections_per_host=server.backend_max_connections_per_host,
        user_agent=f"multistore/{__version__}",
    )
    top_services.append(_ForwarderService(forwarder))
    files = _ThreadPoolService(ThreadPool(0, FILE_THREADS, "multistore-files"))
    top_services.append(files)
    stores = StoreFactory(forwarder=forwarder, reactor=reactor, threadpool=files.pool)
    metrics = Metrics()

    def make(config: Config, plugins: Plugins) -> Generation:
        return build_generation(
            config,
            plugins,
            stores=stores,
            domains=domains,
            reactor=reactor,
            metrics=metrics,
        )

    first = make(config, plugins)
    site = make_site(first.gateway, reactor, server_timing=server.server_timing)
    resource = site.resource
    assert isinstance(resource, GatewayResource)
    # strports services fail the start-up when they cannot listen, rather
    # than log it and run without a socket.
    listeners = [
        strports.service(description, site, reactor)
        for description in listen or list(server.listen) or [DEFAULT_LISTEN]
    ]

    def reload() -> Generation:
        assert config_path is not None
        again = load_config(config_path)
        return make(again, load_plugins(again, reactor))

    top = MultistoreService(
        reactor,
        first,
        resource,
        listeners,
        load=reload if config_path is not None else None,
        metrics=metrics,
        listen_from_file=not listen,
    )
    for service in top_services:
        service.setServiceParent(top)
    admin = admin_site(top.ready, metrics.registry)
    for description in (*admin_listen, *server.admin_listen):
        strports.service(description, admin, reactor).setServiceParent(top)
    return top


def makeService(options: Options) -> IService:
    """
    The service ``twistd multistore`` runs.
    """
    from twisted.internet import reactor

    return build_service(
        options["loaded"],
        options["listen"],
        options["domains"],
        reactor,
        options["plugins"],
        config_path=options["config"],
        admin_listen=options["admin-listen"],
    )
