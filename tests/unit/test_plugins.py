"""
Tests for L{multistore.plugins}, and the plug-in tables of the
configuration file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from multistore.auth.registry import StaticBucketRegistry
from multistore.config import Config, PluginConfig, RoleConfig, StoredCredential
from multistore.configfile import config_from_mapping
from multistore.configtable import ConfigError
from multistore.interfaces import (
    IBucketRegistry,
    ICredentialRegistry,
    IMiddleware,
    IRouteHandler,
    Next,
)
from multistore.model import CompletedRequest, DispatchContext, Response
from multistore.plugins import PluginProblem, load_plugin, load_plugins, resolve
from multistore.tap import Options, build_service

HERE = __name__


@implementer(IMiddleware)
class Recorder:
    """
    A middleware that remembers its options and what it saw.
    """

    def __init__(self, options: dict[str, Any], reactor: Any) -> None:
        self.options = options
        self.reactor = reactor
        self.completed: list[CompletedRequest] = []

    def handle(self, context: DispatchContext, next: Next) -> Deferred[Response]:
        return next(context)

    def after_dispatch(self, completed: CompletedRequest) -> None:
        self.completed.append(completed)


class ServiceRecorder(Recorder, Service):
    """
    A middleware that is also a service.
    """

    def __init__(self, options: dict[str, Any], reactor: Any) -> None:
        Recorder.__init__(self, options, reactor)


@implementer(IMiddleware)
class HalfMiddleware:
    """
    Claims IMiddleware but has no C{after_dispatch}.
    """

    def handle(self, context: DispatchContext, next: Next) -> Deferred[Response]:
        return next(context)


@implementer(IRouteHandler)
class Route:
    def handle(self, request: Any) -> None:
        return None


@implementer(ICredentialRegistry)
class KeysOnly:
    """
    A registry of credentials only.
    """

    def get_credential(self, access_key_id: str) -> Deferred[StoredCredential | None]:
        return succeed(None)

    def get_role(self, role_id: str) -> Deferred[RoleConfig | None]:
        return succeed(None)


def make_half(options: dict[str, Any], reactor: Any) -> HalfMiddleware:
    return HalfMiddleware()


def make_route(options: dict[str, Any], reactor: Any) -> Route:
    return Route()


def make_keys(options: dict[str, Any], reactor: Any) -> KeysOnly:
    return KeysOnly()


@implementer(IBucketRegistry)
class Both(KeysOnly):
    """
    A registry of buckets and credentials: no buckets, no keys.
    """

    owner_id = "both"
    owner_display_name = "both"

    def resolve(self, name: str, identity: Any, operation: Any) -> Deferred[Any]:
        return StaticBucketRegistry({}).resolve(name, identity, operation)

    def list_buckets(self, identity: Any) -> Deferred[Any]:
        return succeed([])

    def authorize_keys(
        self, bucket: Any, identity: Any, action: str, keys: Any
    ) -> Deferred[Any]:
        return succeed([False for _ in keys])


def make_both(options: dict[str, Any], reactor: Any) -> Both:
    return Both()


def make_deferred(options: dict[str, Any], reactor: Any) -> Deferred[Recorder]:
    return succeed(Recorder(options, reactor))


def explode(options: dict[str, Any], reactor: Any) -> object:
    raise ValueError("no catalogue URL")


class Factories:
    """
    Factories reached through a dotted name.
    """

    @staticmethod
    def recorder(options: dict[str, Any], reactor: Any) -> Recorder:
        return Recorder(options, reactor)


NOT_CALLABLE = 42


def plugin(use: str, **options: Any) -> PluginConfig:
    return PluginConfig(use=use, options=options, where="[[middleware]] #1")


class ConfigTests(SynchronousTestCase):
    """
    The ``[[middleware]]``, ``[registry]`` and ``[[routes]]`` tables.
    """

    def test_tables(self) -> None:
        """
        Each table becomes a L{PluginConfig} with its options and where it
        was given, middleware and routes in the order listed.
        """
        config = config_from_mapping(
            {
                "middleware": [
                    {"use": "a.b:c", "options": {"x": 1, "y": ["z"]}},
                    {"use": "d:e.f"},
                ],
                "registry": {"use": "g:h", "options": {"url": "https://c"}},
                "routes": [{"use": "i:j"}],
            }
        )
        self.assertEqual(
            [(m.use, dict(m.options)) for m in config.middleware],
            [("a.b:c", {"x": 1, "y": ["z"]}), ("d:e.f", {})],
        )
        self.assertEqual(
            config.middleware[1].where, "[[middleware]] #2 (use = 'd:e.f')"
        )
        assert config.registry is not None
        self.assertEqual(config.registry.use, "g:h")
        self.assertEqual(config.registry.where, "[registry]")
        self.assertEqual([r.use for r in config.routes], ["i:j"])

    def test_none(self) -> None:
        """
        A file without plug-ins has none.
        """
        config = config_from_mapping({})
        self.assertEqual(
            (config.middleware, config.registry, config.routes), ((), None, ())
        )

    def test_bad_tables(self) -> None:
        """
        A missing or malformed ``use``, an unknown field and options that are
        not a table are reported with their table and field.
        """
        with self.assertRaises(ConfigError) as caught:
            config_from_mapping(
                {
                    "middleware": [{"options": {}}, {"use": "no-colon"}],
                    "registry": {"use": "a:b", "option": {}},
                    "routes": [{"use": "a:b", "options": "x"}],
                }
            )
        problems = "\n".join(caught.exception.problems)
        self.assertIn("[[middleware]] #1, field 'use': required", problems)
        self.assertIn(
            "[[middleware]] #2 (use = 'no-colon'), field 'use': must name", problems
        )
        self.assertIn("[registry], field 'option': unknown field", problems)
        self.assertIn("field 'options': must be a table", problems)


class LoadPluginTests(SynchronousTestCase):
    """
    L{load_plugin} and L{resolve}.
    """

    def test_made(self) -> None:
        """
        The factory gets a fresh dict of the options and the reactor.
        """
        reactor = MemoryReactorClock()
        config = plugin(f"{HERE}:Recorder", depth={"a": [1]})
        made = load_plugin(config, reactor, [IMiddleware])
        assert isinstance(made, Recorder)
        self.assertEqual(made.options, {"depth": {"a": [1]}})
        self.assertIs(made.reactor, reactor)
        made.options["depth"]["a"].append(2)
        again = load_plugin(config, reactor, [IMiddleware])
        assert isinstance(again, Recorder)
        self.assertEqual(again.options, {"depth": {"a": [1]}})

    def test_dotted_name(self) -> None:
        """
        The name after the colon may be dotted.
        """
        made = load_plugin(plugin(f"{HERE}:Factories.recorder"), None, [IMiddleware])
        self.assertIsInstance(made, Recorder)

    def assert_problem(self, use: str, fragment: str, **kwargs: Any) -> None:
        interfaces = kwargs.pop("interfaces", [IMiddleware])
        with self.assertRaises(PluginProblem) as caught:
            load_plugin(plugin(use), None, interfaces, **kwargs)
        self.assertIn(fragment, str(caught.exception))

    def test_problems(self) -> None:
        """
        Each way a plug-in can fail to load is a L{PluginProblem} saying why.
        """
        self.assert_problem(
            "multistore_test_absent:x",
            "cannot import 'multistore_test_absent': ModuleNotFoundError",
        )
        self.assert_problem(f"{HERE}:absent", f"{HERE!r} has no 'absent'")
        self.assert_problem(f"{HERE}:NOT_CALLABLE", "is not a factory")
        self.assert_problem(f"{HERE}:explode", "failed: ValueError: no catalogue URL")
        self.assert_problem(
            f"{HERE}:make_deferred", "it must return the plug-in itself"
        )
        self.assert_problem(f"{HERE}:make_half", "does not provide IMiddleware")
        self.assert_problem(f"{HERE}:make_route", "does not provide IMiddleware")
        self.assert_problem(
            f"{HERE}:make_route",
            "provides neither IBucketRegistry nor ICredentialRegistry",
            interfaces=[IBucketRegistry, ICredentialRegistry],
            any_of=True,
        )

    def test_resolve(self) -> None:
        """
        L{resolve} finds module-level and dotted names.
        """
        self.assertIs(resolve(f"{HERE}:explode"), explode)
        self.assertEqual(resolve(f"{HERE}:Factories.recorder"), Factories.recorder)


class LoadPluginsTests(SynchronousTestCase):
    """
    L{load_plugins}: every plug-in of a configuration.
    """

    def test_all(self) -> None:
        """
        Middleware in order, routes, and the registries the plug-in provides;
        plug-ins that are services are listed to be started.
        """
        config = Config(
            middleware=(
                plugin(f"{HERE}:Recorder", n=1),
                plugin(f"{HERE}:ServiceRecorder", n=2),
            ),
            routes=(plugin(f"{HERE}:make_route"),),
            registry=plugin(f"{HERE}:make_keys"),
        )
        made = load_plugins(config, None)
        self.assertEqual([m.options["n"] for m in made.middleware], [1, 2])  # type: ignore[attr-defined]
        self.assertEqual(len(made.routes), 1)
        self.assertIsNone(made.buckets)
        self.assertIsInstance(made.credentials, KeysOnly)
        self.assertEqual(list(made.services), [made.middleware[1]])

    def test_registry_of_both(self) -> None:
        """
        A registry providing both interfaces replaces both.
        """
        made = load_plugins(Config(registry=plugin(f"{HERE}:make_both")), None)
        self.assertIs(made.buckets, made.credentials)
        self.assertIsNotNone(made.buckets)

    def test_every_problem(self) -> None:
        """
        Every plug-in that cannot be made is reported, with its table and
        field, in one L{ConfigError}.
        """
        config = Config(
            middleware=(
                PluginConfig(f"{HERE}:explode", where="[[middleware]] #1"),
                PluginConfig(f"{HERE}:Recorder", where="[[middleware]] #2"),
            ),
            registry=PluginConfig(f"{HERE}:make_route", where="[registry]"),
            source="/etc/multistore/multistore.toml",
        )
        with self.assertRaises(ConfigError) as caught:
            load_plugins(config, None)
        self.assertEqual(caught.exception.source, "/etc/multistore/multistore.toml")
        self.assertEqual(len(caught.exception.problems), 2)
        self.assertTrue(
            caught.exception.problems[0].startswith("[[middleware]] #1, field 'use': ")
        )
        self.assertTrue(
            caught.exception.problems[1].startswith("[registry], field 'use': ")
        )


class DaemonWiringTests(SynchronousTestCase):
    """
    The daemon loads plug-ins from its configuration.
    """

    def test_usage_error(self) -> None:
        """
        A plug-in that cannot be made is a usage error of C{twistd
        multistore}, naming the file, table and field.
        """
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "multistore.toml")
        with open(path, "w") as f:
            f.write('[[middleware]]\nuse = "multistore_test_absent:factory"\n')
        options = Options()
        with self.assertRaises(usage.UsageError) as caught:
            options.parseOptions(["--config", path])
        message = str(caught.exception)
        self.assertIn(path, message)
        self.assertIn(
            "[[middleware]] #1 (use = 'multistore_test_absent:factory'), field 'use'",
            message,
        )

    def test_services_started(self) -> None:
        """
        A plug-in that is a service runs with the daemon's service tree.
        """
        config = Config(middleware=(plugin(f"{HERE}:ServiceRecorder"),))
        reactor = MemoryReactorClock()
        plugins = load_plugins(config, reactor)
        top = build_service(config, ["tcp:0:interface=127.0.0.1"], [], reactor, plugins)
        service = plugins.services[0]
        self.assertFalse(service.running)
        top.startService()
        self.addCleanup(top.stopService)
        self.assertTrue(service.running)
