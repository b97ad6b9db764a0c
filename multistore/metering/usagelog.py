# -*- test-case-name: tests.unit.test_metering -*-
"""
The usage log: one JSON object per line for each request, appended to a
file the operator's usual tools rotate.

Lines are written as requests finish, without waiting: the file is opened
for appending and each line goes out whole in one write, so a reader never
sees half a line. The file is reopened when it has been moved or removed
(``logrotate``'s default) and when the daemon is told to reopen its logs;
a copy-and-truncate rotation works as it is.
"""

from __future__ import annotations

import json
import os
from typing import Any, Final

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from multistore.interfaces import IUsageRecorder
from multistore.model import UsageEvent

#: Seconds between checks that the file is still where it was.
CHECK_INTERVAL: Final = 1.0


def usage_line(event: UsageEvent) -> bytes:
    """
    :return: the log line of ``event``.
    """
    record = {
        "time": round(event.time, 3),
        "request_id": event.request_id,
        "principal": event.principal,
        "client_address": event.client_address,
        "bucket": event.bucket,
        "operation": event.operation,
        "status": event.status,
        "bytes_in": event.bytes_in,
        "bytes_out": event.bytes_out,
        "forwarded": event.forwarded,
        "duration": round(event.duration, 6),
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


@implementer(IUsageRecorder)
class UsageLog(Service):
    """
    Appends each request's L{UsageEvent} to a file.

    :ivar path: the file.
    """

    log = Logger()

    def __init__(self, path: str, clock: IReactorTime) -> None:
        self.path = path
        self._clock = clock
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._check: LoopingCall | None = None
        self._failed = False

    def open(self) -> None:
        """
        Open (or reopen) the file.
        """
        self.close()
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640
        )
        stat = os.fstat(fd)
        self._fd, self._identity = fd, (stat.st_dev, stat.st_ino)
        self._failed = False

    def close(self) -> None:
        """
        Close the file.
        """
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def reopen_if_moved(self) -> None:
        """
        Reopen the file if the name now names another file, or none.
        """
        try:
            stat = os.stat(self.path)
        except OSError:
            moved = True
        else:
            moved = (stat.st_dev, stat.st_ino) != self._identity
        if moved or self._fd is None:
            try:
                self.open()
            except OSError as error:
                self._complain(error)

    def startService(self) -> None:
        super().startService()
        self.open()
        check = self._check = LoopingCall(self.reopen_if_moved)
        check.clock = self._clock
        check.start(CHECK_INTERVAL, now=False)

    def stopService(self) -> Any:
        if self._check is not None and self._check.running:
            self._check.stop()
        self.close()
        return super().stopService()

    def record(self, event: UsageEvent) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, usage_line(event))
        except OSError as error:
            self._complain(error)

    def _complain(self, error: OSError) -> None:
        if not self._failed:
            self._failed = True
            self.log.error(
                "cannot write the usage log {path}: {error}",
                path=self.path,
                error=error.strerror,
            )
