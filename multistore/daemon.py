# -*- test-case-name: tests.unit.test_lifecycle -*-
"""
The running daemon: its configuration's generations, reload and drain.

Everything built from one configuration (the gateway with its
registries, session keys, routes and middleware, and the plug-ins'
services) is a L{Generation}. The listeners, the connection pool to the
stores and the file threads outlive generations.

- **Reload** (SIGHUP, ``systemctl reload``): the configuration file is
  read and checked again and its plug-ins made; if anything is wrong,
  every problem is logged and the daemon goes on serving the generation
  it has. Otherwise the new generation's services start, new requests go
  to it, and the old one is retired once its last request is over (at
  most ``shutdown_timeout`` later): a request finishes on the
  configuration it started with. Listen addresses are not changed by a
  reload: the log says so.
- **Drain** (SIGTERM, ``systemctl stop``): the listeners stop accepting,
  readiness turns false, responses ask clients to close their
  connections, and requests in flight have ``shutdown_timeout`` seconds to
  finish before the rest is stopped and the process exits.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Sequence
from typing import Any, Final

from attrs import frozen
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from multistore.config import Config
from multistore.configtable import ConfigError
from multistore.gateway.metrics import Metrics
from multistore.gateway.pipeline import Gateway
from multistore.web.site import GatewayResource

#: Seconds between looks at whether requests in flight are over.
IDLE_POLL: Final = 0.1


@frozen
class Generation:
    """
    What one configuration made.

    :ivar config: the configuration.
    :ivar gateway: its gateway.
    :ivar services: its plug-ins' services, started and stopped with it.
    """

    config: Config
    gateway: Gateway
    services: MultiService


class MultistoreService(MultiService):
    """
    The daemon's top service.

    :ivar current: the generation new requests go to.
    :ivar draining: whether the daemon is stopping.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        first: Generation,
        resource: GatewayResource,
        listeners: Sequence[IService],
        *,
        load: Callable[[], Generation] | None,
        metrics: Metrics,
        listen_from_file: bool,
    ) -> None:
        """
        :param first: the generation the daemon starts with.
        :param resource: the S3 site's resource, whose gateway a reload
            replaces.
        :param listeners: the S3 listeners, stopped first when draining.
        :param load: reads the configuration again and builds a
            generation (raising L{ConfigError}), or ``None`` if there is no
            file to read again.
        :param metrics: where reloads and readiness are counted.
        :param listen_from_file: whether the listen addresses came from
            the file (not the command line), so a change to them matters.
        """
        super().__init__()
        self._reactor = reactor
        self.current = first
        self._resource = resource
        self._listeners = list(listeners)
        self._load = load
        self._metrics = metrics
        self._listen_from_file = listen_from_file
        self._retiring: list[Generation] = []
        self.draining = False
        metrics.in_flight.set_function(lambda: float(self.in_flight))

    @property
    def listeners(self) -> tuple[IService, ...]:
        """
        The S3 listeners.
        """
        return tuple(self._listeners)

    @property
    def in_flight(self) -> int:
        """
        Requests in flight, in every generation still alive.
        """
        return sum(g.gateway.in_flight for g in (self.current, *self._retiring))

    def ready(self) -> bool:
        """
        Whether the daemon takes new requests.
        """
        return bool(self.running) and not self.draining

    # Starting.

    def startService(self) -> None:
        super().startService()
        self.current.services.startService()
        for listener in self._listeners:
            listener.startService()
        self._metrics.ready.set(1)
        call_when_running = getattr(self._reactor, "callWhenRunning", None)
        if call_when_running is not None:
            call_when_running(self._install_signals)

    def _install_signals(self) -> None:
        # After the reactor's own handlers, which this replaces for SIGTERM
        # and SIGINT: Twisted's make the process end by the signal once it
        # has stopped, where a drained daemon exits 0. Not on the main
        # thread (some test runners), there are none to install.
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGHUP, self._on_hangup)
            signal.signal(signal.SIGTERM, self._on_stop)
            signal.signal(signal.SIGINT, self._on_stop)

    def _on_hangup(self, signum: int, frame: object) -> None:
        self._reactor.callFromThread(self.reload)

    def _on_stop(self, signum: int, frame: object) -> None:
        self._reactor.callFromThread(self._stop_reactor)

    def _stop_reactor(self) -> None:
        if not self.draining:
            self._reactor.stop()

    # Reloading.

    def reload(self) -> bool:
        """
        Read the configuration again and, if it is sound, serve it.

        :return: whether the new configuration is now served.
        """
        if self._load is None or self.draining:
            return False
        try:
            new = self._load()
        except ConfigError as error:
            self.log.error(
                "configuration reload refused, still serving {source} as it "
                "was: {count} problem(s)",
                source=error.source,
                count=len(error.problems),
            )
            for problem in error.problems:
                self.log.error("  {problem}", problem=problem)
            self._metrics.reloads.labels("refused").inc()
            return False
        except Exception:
            self.log.failure("configuration reload failed; still serving the old one")
            self._metrics.reloads.labels("refused").inc()
            return False
        old = self.current
        if (
            self._listen_from_file
            and new.config.server.listen != old.config.server.listen
        ):
            self.log.warn(
                "[server] listen changed: listeners change at the next restart, "
                "not on reload"
            )
        if new.config.server.admin_listen != old.config.server.admin_listen:
            self.log.warn(
                "[server] admin_listen changed: it changes at the next restart, "
                "not on reload"
            )
        new.services.startService()
        self.current = new
        self._resource.replace(new.gateway)
        self._retire(old)
        self._metrics.reloads.labels("applied").inc()
        self.log.info(
            "configuration reloaded from {source}: {buckets} buckets, "
            "{credentials} credentials",
            source=new.config.source,
            buckets=len(new.config.buckets),
            credentials=len(new.config.credentials),
        )
        return True

    def _retire(self, old: Generation) -> None:
        self._retiring.append(old)
        timeout = old.config.server.shutdown_timeout

        def stop(_: object) -> Deferred[Any]:
            self._retiring.remove(old)
            return maybeDeferred(old.services.stopService)

        self._until_idle([old], timeout).addCallback(stop)

    def _until_idle(
        self, generations: Sequence[Generation], timeout: float
    ) -> Deferred[None]:
        """
        :return: a Deferred that fires once no request of ``generations``
            is in flight, or after ``timeout`` seconds.
        """
        done: Deferred[None] = Deferred()
        started = self._reactor.seconds()

        def look() -> None:
            busy = sum(g.gateway.in_flight for g in generations)
            if busy <= 0 or self._reactor.seconds() - started >= timeout:
                if busy > 0:
                    self.log.warn(
                        "{busy} request(s) still in flight after {timeout} s: "
                        "they are cut off",
                        busy=busy,
                        timeout=timeout,
                    )
                poll.stop()
                done.callback(None)

        poll = LoopingCall(look)
        poll.clock = self._reactor
        poll.start(IDLE_POLL, now=True)
        return done

    # Stopping.

    def stopService(self) -> Deferred[None]:
        self.draining = True
        self._metrics.ready.set(0)
        for generation in (self.current, *self._retiring):
            generation.gateway.draining = True
        self.log.info(
            "stopping: no new connections; {count} request(s) in flight may "
            "take up to {timeout} s",
            count=self.in_flight,
            timeout=self.current.config.server.shutdown_timeout,
        )
        closed = DeferredList(
            [maybeDeferred(listener.stopService) for listener in self._listeners]
        )

        def drain(_: object) -> Deferred[None]:
            return self._until_idle(
                [self.current, *self._retiring],
                self.current.config.server.shutdown_timeout,
            )

        def stop_generations(_: object) -> Deferred[Any]:
            return DeferredList(
                [
                    maybeDeferred(g.services.stopService)
                    for g in (self.current, *self._retiring)
                ]
            )

        stopped: Deferred[Any] = closed.addCallback(drain)
        stopped.addCallback(stop_generations)
        stopped.addCallback(lambda _: MultiService.stopService(self))
        return stopped.addCallback(lambda _: None)
