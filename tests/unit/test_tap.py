"""
Tests for L{multistore.tap}.
"""

from __future__ import annotations

from pathlib import Path

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from multistore.configfile import load_config
from multistore.tap import DEFAULT_LISTEN, Options, build_service

EXAMPLE = str(Path(__file__).parents[2] / "etc/multistore/multistore.toml")


class _Reactor(MemoryReactorClock):
    """
    A memory reactor that also lends a thread pool, as the real one does.
    """

    def getThreadPool(self) -> object:
        return object()


class OptionsTests(SynchronousTestCase):
    """
    Tests for L{Options}.
    """

    def test_repeatable(self) -> None:
        """
        ``--listen`` and ``--domain`` accumulate; the config is loaded.
        """
        options = Options()
        options.parseOptions(
            [
                "--config",
                EXAMPLE,
                "--listen",
                "tcp:1:interface=127.0.0.1",
                "--listen",
                "tcp:2",
                "--domain",
                "S3.Example.com.",
                "--domain",
                "b.test",
            ]
        )
        self.assertEqual(options["listen"], ["tcp:1:interface=127.0.0.1", "tcp:2"])
        self.assertEqual(options["domains"], ["s3.example.com", "b.test"])
        self.assertEqual(options["loaded"].buckets[0].name, "example")

    def test_bad_config(self) -> None:
        """
        A bad configuration is a usage error that explains the problem.
        """
        with self.assertRaises(UsageError) as e:
            Options().parseOptions(["--config", "/nonexistent.toml"])
        self.assertIn("/nonexistent.toml", str(e.exception))

    def test_bad_endpoint(self) -> None:
        """
        A malformed endpoint is refused before anything starts.
        """
        with self.assertRaises(UsageError) as e:
            Options().parseOptions(["--config", EXAMPLE, "--listen", "nonsense:x"])
        self.assertIn("nonsense:x", str(e.exception))

    def test_admin_listener(self) -> None:
        """
        The admin listener is checked as the S3 listeners are, and may not
        be one of them.
        """
        options = Options()
        options.parseOptions(
            ["--config", EXAMPLE, "--admin-listen", "tcp:9100:interface=127.0.0.1"]
        )
        self.assertEqual(options["admin-listen"], ["tcp:9100:interface=127.0.0.1"])
        with self.assertRaises(UsageError) as e:
            Options().parseOptions(["--config", EXAMPLE, "--admin-listen", "bad:x"])
        self.assertIn("bad --admin-listen endpoint 'bad:x'", str(e.exception))
        same = "tcp:8081:interface=127.0.0.1"
        with self.assertRaises(UsageError) as e:
            Options().parseOptions(
                ["--config", EXAMPLE, "--listen", same, "--admin-listen", same]
            )
        self.assertIn("must not be an S3 listener", str(e.exception))


class BuildServiceTests(SynchronousTestCase):
    """
    Tests for L{build_service}.
    """

    def test_listeners(self) -> None:
        """
        One server service per endpoint; the config's ``listen`` when the
        command line gives none, and the default when neither does.
        """
        config = load_config(EXAMPLE)
        reactor = _Reactor()

        def listeners(listen: list[str], cfg: object = config) -> int:
            service = build_service(cfg, listen, [], reactor)  # type: ignore[arg-type]
            return sum(
                isinstance(s, StreamServerEndpointService) for s in service.listeners
            )

        self.assertEqual(listeners(["tcp:1", "tcp:2"]), 2)
        self.assertEqual(listeners([]), len(config.server.listen))
        from attrs import evolve

        bare = evolve(config, server=evolve(config.server, listen=()))
        self.assertEqual(listeners([], bare), 1)
        self.assertTrue(DEFAULT_LISTEN.startswith("tcp:8080"))
