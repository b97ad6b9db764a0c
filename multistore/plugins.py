# -*- test-case-name: tests.unit.test_plugins -*-
"""
Plug-ins an operator names in the configuration, resolved at start-up.

Three tables name them, each with a factory (``use``) and the ``options``
handed to it::

    [[middleware]]                          # in the order they run
    use = "mycompany.gateway:audit_middleware"
    [middleware.options]
    destination = "/var/log/audit.jsonl"

    [registry]                              # replaces the file's registries
    use = "mycompany.gateway:catalogue_registry"

    [[routes]]                              # non-S3 endpoints
    use = "mycompany.gateway:status_route"

Each factory is called once, before the daemon starts, as
``factory(options, reactor)`` with a fresh ``dict`` of its options, and
returns the plug-in: an L{IMiddleware}, an L{IRouteHandler}, or an object
that provides L{IBucketRegistry}, L{ICredentialRegistry} or both (each one
it provides replaces the one the configuration file would have given). A
plug-in that also provides C{IService} is started and stopped with the
daemon: that is where it opens connections and starts threads, after
C{twistd} has daemonized.

A name that does not import, a factory that raises, a factory that returns a
Deferred, and an object that does not provide its interface (checked with
C{verifyObject}) are configuration errors, reported with the table and
field like every other one; nothing starts.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable, Sequence
from importlib import import_module
from typing import Any

from attrs import frozen
from twisted.application.service import IService
from twisted.internet.defer import Deferred
from zope.interface.exceptions import Invalid
from zope.interface.interface import InterfaceClass
from zope.interface.verify import verifyObject

from multistore.config import Config, PluginConfig
from multistore.configtable import ConfigError
from multistore.interfaces import (
    IBucketRegistry,
    ICredentialRegistry,
    IMiddleware,
    IRouteHandler,
)
from multistore.metering.settings import metering_options
from multistore.oidc.settings import provider_options


class PluginProblem(Exception):
    """
    A plug-in could not be loaded; the message says why, for the operator.
    """


def resolve(use: str) -> Callable[..., Any]:
    """
    Find the factory ``use`` names.

    :param use: ``package.module:name``; the name may be dotted.
    :raise PluginProblem: if the module does not import, the name is not in
        it, or what it names cannot be called.
    """
    module_name, _, attribute = use.partition(":")
    try:
        found: Any = import_module(module_name)
    except Exception as error:
        raise PluginProblem(
            f"cannot import {module_name!r}: {type(error).__name__}: {error}"
        ) from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise PluginProblem(f"{module_name!r} has no {attribute!r}") from None
    if not callable(found):
        raise PluginProblem(f"{use!r} is not a factory (it cannot be called)")
    return found  # type: ignore[no-any-return]


def _verified(plugin: object, interface: InterfaceClass) -> None:
    try:
        verifyObject(interface, plugin)
    except Invalid as error:
        message = " ".join(str(error).split())
        raise PluginProblem(
            f"what it made does not provide {interface.getName()}: {message}"
        ) from None


def load_plugin(
    plugin: PluginConfig,
    reactor: Any,
    interfaces: Sequence[InterfaceClass],
    *,
    any_of: bool = False,
) -> object:
    """
    Make the plug-in ``plugin`` names and check what it provides.

    :param reactor: handed to the factory.
    :param interfaces: what the plug-in must provide: all of them, or with
        ``any_of`` at least one (and each it claims to provide, fully).
    :raise PluginProblem: saying what went wrong.
    """
    factory = resolve(plugin.use)
    try:
        made = factory(copy.deepcopy(dict(plugin.options)), reactor)
    except Exception as error:
        raise PluginProblem(
            f"the factory {plugin.use!r} failed: {type(error).__name__}: {error}"
        ) from None
    if isinstance(made, Deferred) or inspect.isawaitable(made):
        raise PluginProblem(
            f"the factory {plugin.use!r} returned {made!r}; it must return the "
            "plug-in itself (start asynchronous work from startService)"
        )
    if any_of:
        claimed = [i for i in interfaces if i.providedBy(made)]
        if not claimed:
            names = " nor ".join(i.getName() for i in interfaces)
            raise PluginProblem(f"what it made, {made!r}, provides neither {names}")
    else:
        claimed = list(interfaces)
    for interface in claimed:
        _verified(made, interface)
    return made


def _distinct(things: Iterable[Any]) -> tuple[Any, ...]:
    # By identity: one object named twice (a registry that is also a route)
    # is started once; plug-ins need not be hashable.
    out: list[Any] = []
    for thing in things:
        if not any(thing is seen for seen in out):
            out.append(thing)
    return tuple(out)


@frozen
class Plugins:
    """
    The plug-ins of a configuration, made.

    :ivar middleware: in the order they run.
    :ivar routes: in the order they are consulted.
    :ivar buckets: the bucket registry that replaces the file's, if any.
    :ivar credentials: the credential registry that replaces the file's, if
        any.
    :ivar services: the plug-ins that are also services, to start and stop
        with the daemon.
    """

    middleware: tuple[IMiddleware, ...] = ()
    routes: tuple[IRouteHandler, ...] = ()
    buckets: IBucketRegistry | None = None
    credentials: ICredentialRegistry | None = None
    services: tuple[IService, ...] = ()


def builtin_middleware(config: Config) -> tuple[PluginConfig, ...]:
    """
    :return: the middleware the daemon itself provides that ``config``
        turns on, named as an operator would name a plug-in; they run
        before the operator's own: metering first (a refused request costs
        no token exchange), then backend credentials.
    """
    builtin = []
    if config.metering is not None:
        builtin.append(
            PluginConfig(
                use="multistore.metering:metering_middleware",
                options=metering_options(config.metering),
                where="[metering]",
            )
        )
    if config.oidc_provider is not None:
        builtin.append(
            PluginConfig(
                use="multistore.oidc:backend_credentials",
                options=provider_options(config.oidc_provider),
                where="[oidc_provider]",
            )
        )
    return tuple(builtin)


def builtin_routes(config: Config) -> tuple[PluginConfig, ...]:
    """
    :return: the route handlers the daemon itself provides that ``config``
        turns on (the OIDC provider's documents), named as an operator
        would name a plug-in; they are consulted before the operator's own.
    """
    if config.oidc_provider is None:
        return ()
    return (
        PluginConfig(
            use="multistore.oidc:provider_documents",
            options=provider_options(config.oidc_provider),
            where="[oidc_provider]",
        ),
    )


def load_plugins(config: Config, reactor: Any) -> Plugins:
    """
    Make every plug-in ``config`` names.

    :raise ConfigError: listing every plug-in that could not be made, each
        with its table and field.
    """
    problems: list[str] = []
    made: list[object] = []

    def load(
        plugin: PluginConfig, interfaces: Sequence[InterfaceClass], any_of: bool
    ) -> Any:
        try:
            thing = load_plugin(plugin, reactor, interfaces, any_of=any_of)
        except PluginProblem as problem:
            problems.append(f"{plugin.where}, field 'use': {problem}")
            return None
        made.append(thing)
        return thing

    middleware = [
        load(p, [IMiddleware], False)
        for p in (*builtin_middleware(config), *config.middleware)
    ]
    routes = [
        load(p, [IRouteHandler], False)
        for p in (*builtin_routes(config), *config.routes)
    ]
    registry = None
    if config.registry is not None:
        registry = load(config.registry, [IBucketRegistry, ICredentialRegistry], True)
    if problems:
        raise ConfigError(config.source, problems)
    return Plugins(
        middleware=tuple(middleware),
        routes=tuple(routes),
        buckets=registry if IBucketRegistry.providedBy(registry) else None,
        credentials=registry if ICredentialRegistry.providedBy(registry) else None,
        services=_distinct(m for m in made if IService.providedBy(m)),
    )
