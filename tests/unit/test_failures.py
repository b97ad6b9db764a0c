"""
Tests for L{multistore.stores.failures}.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from multistore.stores.failures import failed, refused


class FailuresTests(SynchronousTestCase):
    """
    The client gets multistore's words; the log gets the backend's.
    """

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.log = Logger(observer=self.events.append)

    def test_refused(self) -> None:
        """
        A refusal is C{AccessDenied} with multistore's message; the
        backend's code and message are logged with the bucket.
        """
        error = refused(self.log, "data", "AuthenticationFailed", "acct secret-name")
        self.assertEqual(error.code, "AccessDenied")
        self.assertNotIn("secret-name", error.message)
        [event] = self.events
        self.assertEqual(
            (event["bucket"], event["code"], event["detail"]),
            ("data", "AuthenticationFailed", "acct secret-name"),
        )

    def test_failed(self) -> None:
        """
        A failure is C{ServiceUnavailable}, or C{SlowDown} when the backend
        asked for fewer requests; each is logged with the status.
        """
        error = failed(self.log, "data", 500, "InternalError", "disk on fire")
        self.assertEqual((error.code, error.status), ("ServiceUnavailable", 503))
        self.assertNotIn("fire", error.message)
        slow = failed(self.log, "data", 503, "ServerBusy", "busy", slow_down=True)
        self.assertEqual(slow.code, "SlowDown")
        self.assertEqual([e["status"] for e in self.events], [500, 503])
        self.assertEqual(self.events[0]["detail"], "disk on fire")
