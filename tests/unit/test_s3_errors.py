"""
Tests for L{multistore.s3.errors}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from multistore.s3.errors import STATUS_OF, S3Error

#: Statuses AWS documents for some codes, to check the table against.
AWS_STATUSES = {
    "AccessDenied": 403,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidRange": 416,
    "KeyTooLongError": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "NotImplemented": 501,
    "PreconditionFailed": 412,
    "RequestTimeTooSkewed": 403,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "SlowDown": 503,
}


class StatusTableTests(SynchronousTestCase):
    """
    L{STATUS_OF} maps every code to an HTTP status.
    """

    def test_statuses(self) -> None:
        """
        Every code's status is an int from 300 to 599.
        """
        self.assertTrue(STATUS_OF)
        for code, status in STATUS_OF.items():
            self.assertIs(type(status), int, code)
            self.assertTrue(300 <= status <= 599, (code, status))

    def test_codes(self) -> None:
        """
        Codes are non-empty words.
        """
        for code in STATUS_OF:
            self.assertTrue(code.isascii() and code.isalnum(), code)
            self.assertTrue(code[0].isupper(), code)

    def test_aws_statuses(self) -> None:
        """
        The codes AWS documents have AWS's statuses.
        """
        for code, status in AWS_STATUSES.items():
            self.assertEqual(STATUS_OF[code], status, code)

    def test_read_only(self) -> None:
        """
        The table cannot be changed.
        """
        with self.assertRaises(TypeError):
            STATUS_OF["NoSuchKey"] = 200  # type: ignore[index]


class S3ErrorTests(SynchronousTestCase):
    """
    L{S3Error} takes its status and message from the table unless told.
    """

    def test_defaults(self) -> None:
        """
        Every code gets its status from the table and a message of its own,
        no resource, extra elements or headers.
        """
        for code, status in STATUS_OF.items():
            error = S3Error(code)
            self.assertEqual((error.code, error.status), (code, status))
            self.assertIsInstance(error.message, str)
            self.assertTrue(error.message.strip(), code)
            self.assertIsNone(error.resource)
            self.assertEqual((error.extra, error.headers), ((), ()))

    def test_default_messages(self) -> None:
        """
        Default messages are AWS's.
        """
        self.assertEqual(
            S3Error("NoSuchKey").message, "The specified key does not exist."
        )
        self.assertEqual(S3Error("AccessDenied").message, "Access Denied")

    def test_unknown_code(self) -> None:
        """
        A code not in the table is a 500 whose message is the code.
        """
        error = S3Error("SomethingNew")
        self.assertEqual((error.status, error.message), (500, "SomethingNew"))

    def test_overrides(self) -> None:
        """
        Message, status, resource, extra elements and headers can be given.
        """
        error = S3Error(
            "InvalidRange",
            "custom",
            status=400,
            resource="/bucket/key",
            extra=(("RangeRequested", "bytes=9-"),),
            headers=(("content-range", "bytes */5"),),
        )
        self.assertEqual(error.code, "InvalidRange")
        self.assertEqual(error.message, "custom")
        self.assertEqual(error.status, 400)
        self.assertEqual(error.resource, "/bucket/key")
        self.assertEqual(error.extra, (("RangeRequested", "bytes=9-"),))
        self.assertEqual(error.headers, (("content-range", "bytes */5"),))

    def test_empty_message(self) -> None:
        """
        An empty message is a message, not a request for the default.
        """
        self.assertEqual(S3Error("NoSuchKey", "").message, "")

    def test_exception(self) -> None:
        """
        It is an exception whose args, str and repr show code and message.
        """
        error = S3Error("NoSuchKey", "gone")
        self.assertIsInstance(error, Exception)
        self.assertEqual(error.args, ("NoSuchKey", "gone"))
        self.assertIn("gone", str(error))
        self.assertEqual(repr(error), "S3Error('NoSuchKey', 'gone', status=404)")
        with self.assertRaises(S3Error):
            raise error

    @given(
        st.sampled_from(sorted(STATUS_OF)),
        st.one_of(st.none(), st.text()),
        st.one_of(st.none(), st.integers(300, 599)),
    )
    def test_any(self, code: str, message: str | None, status: int | None) -> None:
        """
        What is given wins; what is not comes from the table.
        """
        error = S3Error(code, message, status=status)
        self.assertEqual(error.status, STATUS_OF[code] if status is None else status)
        if message is not None:
            self.assertEqual(error.message, message)
        else:
            self.assertEqual(error.message, S3Error(code).message)
