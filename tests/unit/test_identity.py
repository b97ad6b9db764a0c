"""
Tests for L{multistore.auth.identity}.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from multistore.auth.identity import AuthScheme, detect_scheme, identity_for_credential
from multistore.config import AccessScope, StoredCredential
from multistore.headers import NO_HEADERS, HeaderList
from multistore.model import Identity
from multistore.s3.errors import S3Error

SIGV4_HEADER = (
    "AWS4-HMAC-SHA256 Credential=AKID/20240229/us-east-1/s3/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
)
SIGV2_HEADER = "AWS AKID:c2lnbmF0dXJl"

#: Query parameters of a SigV4 presigned URL.
SIGV4_QUERY = [
    ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
    ("X-Amz-Credential", "AKID/20240229/us-east-1/s3/aws4_request"),
    ("X-Amz-Date", "20240229T000000Z"),
    ("X-Amz-Expires", "60"),
    ("X-Amz-SignedHeaders", "host"),
    ("X-Amz-Signature", "0" * 64),
]
#: Query parameters of a SigV2 presigned URL.
SIGV2_QUERY = [
    ("AWSAccessKeyId", "AKID"),
    ("Expires", "1700000000"),
    ("Signature", "c2lnbmF0dXJl"),
]

NOW = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)

SCOPE = AccessScope(bucket="b*", prefixes=("p/",), actions=frozenset({"get_object"}))
CREDENTIAL = StoredCredential(
    access_key_id="AKIDSTATIC",
    secret_access_key="secret",
    principal_name="alice",
    allowed_scopes=(SCOPE,),
)


def authorization(value: str) -> HeaderList:
    """
    Headers with this ``Authorization``.
    """
    return HeaderList([("Authorization", value)])


class DetectSchemeTests(SynchronousTestCase):
    """
    L{detect_scheme} tells which authentication a request uses.
    """

    def assert_invalid(
        self, headers: HeaderList, query: list[tuple[str, str]]
    ) -> S3Error:
        """
        The request is refused with ``InvalidArgument``.
        """
        error: S3Error = self.assertRaises(S3Error, detect_scheme, headers, query)
        self.assertEqual((error.code, error.status), ("InvalidArgument", 400))
        self.assertIn(("ArgumentName", "Authorization"), error.extra)
        return error

    def test_anonymous(self) -> None:
        """
        No ``Authorization`` and no authentication parameters is anonymous,
        whatever else the query holds.
        """
        for query in ([], [("prefix", "a"), ("list-type", "2")], [("Signature", "x")]):
            self.assertEqual(detect_scheme(NO_HEADERS, query), AuthScheme("anonymous"))

    def test_sigv4_header(self) -> None:
        """
        ``Authorization: AWS4-HMAC-SHA256 ...`` is SigV4 in the header; the
        header comes with it, whatever the case of its name.
        """
        self.assertEqual(
            detect_scheme(authorization(SIGV4_HEADER), [("prefix", "x")]),
            AuthScheme("sigv4-header", SIGV4_HEADER),
        )

    def test_sigv4_query(self) -> None:
        """
        ``X-Amz-Algorithm`` or ``X-Amz-Signature`` in the query is a SigV4
        presigned URL.
        """
        for query in (
            SIGV4_QUERY,
            [("X-Amz-Algorithm", "AWS4-HMAC-SHA256")],
            [("X-Amz-Signature", "0")],
        ):
            self.assertEqual(
                detect_scheme(NO_HEADERS, query), AuthScheme("sigv4-query")
            )

    def test_sigv2_header(self) -> None:
        """
        ``Authorization: AWS AKID:signature`` is SigV2 in the header.
        """
        self.assertEqual(
            detect_scheme(authorization(SIGV2_HEADER), []),
            AuthScheme("sigv2-header", SIGV2_HEADER),
        )

    def test_sigv2_query(self) -> None:
        """
        ``AWSAccessKeyId`` with ``Signature`` in the query is a SigV2
        presigned URL.
        """
        self.assertEqual(
            detect_scheme(NO_HEADERS, SIGV2_QUERY), AuthScheme("sigv2-query")
        )

    def test_two_schemes(self) -> None:
        """
        Two schemes at once are refused with ``InvalidArgument``.
        """
        for headers, query in (
            (authorization(SIGV4_HEADER), SIGV4_QUERY),
            (authorization(SIGV4_HEADER), SIGV2_QUERY),
            (authorization(SIGV2_HEADER), SIGV4_QUERY),
            (authorization(SIGV2_HEADER), SIGV2_QUERY),
            (NO_HEADERS, SIGV4_QUERY + SIGV2_QUERY),
        ):
            error = self.assert_invalid(headers, query)
            self.assertIn("Only one auth mechanism allowed", error.message)

    def test_unknown_scheme(self) -> None:
        """
        An ``Authorization`` scheme S3 does not know is refused with
        ``InvalidArgument``, even with no other scheme present.
        """
        for value in (
            "Bearer eyJhbGciOi",
            "Basic dXNlcjpwYXNz",
            "AWS3 x",
            "aws4-hmac-sha256 Credential=x",
            "",
            "AWS",
        ):
            error = self.assert_invalid(authorization(value), [])
            self.assertEqual(error.message, "Unsupported Authorization Type")

    def test_unknown_scheme_shortened(self) -> None:
        """
        The refused header is quoted in the error at most 40 characters
        long.
        """
        value = "Bearer " + "x" * 100
        error = self.assert_invalid(authorization(value), [])
        self.assertIn(("ArgumentValue", value[:40]), error.extra)


class IdentityForCredentialTests(SynchronousTestCase):
    """
    L{identity_for_credential} gives the identity of a static key.
    """

    def test_unknown(self) -> None:
        """
        An unknown key is ``InvalidAccessKeyId``, naming the key.
        """
        error = self.assertRaises(
            S3Error, identity_for_credential, None, "AKIDNOPE", NOW
        )
        self.assertEqual((error.code, error.status), ("InvalidAccessKeyId", 403))
        self.assertIn(("AWSAccessKeyId", "AKIDNOPE"), error.extra)

    def test_disabled(self) -> None:
        """
        A disabled key is refused as if unknown.
        """
        disabled = evolve(CREDENTIAL, enabled=False)
        error = self.assertRaises(
            S3Error, identity_for_credential, disabled, "AKIDSTATIC", NOW
        )
        unknown = self.assertRaises(
            S3Error, identity_for_credential, None, "AKIDSTATIC", NOW
        )
        self.assertEqual(
            (error.code, error.message, error.extra),
            (unknown.code, unknown.message, unknown.extra),
        )

    def test_expired(self) -> None:
        """
        A key whose expiry has come is ``ExpiredToken``.
        """
        for expires_at in (NOW, NOW - timedelta(seconds=1), NOW - timedelta(days=9)):
            expired = evolve(CREDENTIAL, expires_at=expires_at)
            error = self.assertRaises(
                S3Error, identity_for_credential, expired, "AKIDSTATIC", NOW
            )
            self.assertEqual(error.code, "ExpiredToken")

    def test_valid(self) -> None:
        """
        A valid key gives a static identity with its principal, key id and
        scopes.
        """
        expected = Identity(
            kind="static",
            principal="alice",
            access_key_id="AKIDSTATIC",
            scopes=(SCOPE,),
        )
        for expires_at in (None, NOW + timedelta(seconds=1)):
            credential = evolve(CREDENTIAL, expires_at=expires_at)
            identity = identity_for_credential(credential, "AKIDSTATIC", NOW)
            self.assertEqual(identity, expected)
            self.assertFalse(identity.anonymous)
