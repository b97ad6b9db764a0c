"""
Tests for L{multistore.sts.jwt}.

Tokens are signed here with PyJWT (or assembled by hand, for the ones PyJWT
refuses to make); keys come from a dict-backed fake of
L{multistore.sts.jwks.JwksCache.keys_for}, or from a real cache in front of
the in-memory issuer of L{tests.unit.test_sts_jwks}.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)
from hypothesis import given
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from multistore.sts.jwks import (
    HTTPGetter,
    JwksCache,
    JwksError,
    UnknownKey,
    VerificationKey,
)
from multistore.sts.jwt import (
    ALGORITHMS,
    MAX_TOKEN_BYTES,
    ExpiredIdentityToken,
    IdentityClaims,
    IdpCommunicationError,
    InvalidIdentityToken,
    check_token,
    parse_unverified,
    precheck,
    verify_token,
)
from tests.unit.test_sts_jwks import (
    DISCOVERY,
    EC_KEY,
    ISSUER,
    RSA_KEY,
    RSA_KEY_2,
    FakeIssuer,
    RecordingHTTP,
    rsa_jwk,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
SUBJECT = "repo:octo-org/octo-repo:ref:refs/heads/main"

RSA_VERIFIER = VerificationKey("rsa-1", "RS256", RSA_KEY.public_key())
RSA_VERIFIER_2 = VerificationKey("rsa-2", "RS256", RSA_KEY_2.public_key())
EC_VERIFIER = VerificationKey("ec-1", "ES256", EC_KEY.public_key())


def claims(**changes: Any) -> dict[str, Any]:
    """
    The claims of a GitHub Actions-like token valid at L{NOW}; a change to
    C{None} removes that claim.
    """
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": "sts.amazonaws.com",
        "exp": T + 300,
        "nbf": T - 10,
        "iat": T - 10,
        "repository_owner": "octo-org",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    payload: Mapping[str, Any] | None = None,
    key: Any = RSA_KEY,
    algorithm: str = "RS256",
    kid: str | None = "rsa-1",
    **headers: Any,
) -> str:
    """
    A token signed with PyJWT (as a JWS, so that claims PyJWT would refuse to
    encode can be signed too).
    """
    if kid is not None:
        headers["kid"] = kid
    headers.setdefault("typ", "JWT")
    body = json.dumps(payload if payload is not None else claims()).encode()
    token = jwt.PyJWS().encode(body, key, algorithm=algorithm, headers=headers)
    return token if isinstance(token, str) else token.decode()


def b64(data: bytes) -> str:
    """
    base64url without padding.
    """
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assemble(
    header: Mapping[str, Any], payload: Mapping[str, Any], signature: bytes
) -> str:
    """
    A token put together by hand.
    """
    return ".".join(
        [
            b64(json.dumps(header).encode()),
            b64(json.dumps(payload).encode()),
            b64(signature),
        ]
    )


def hs256(header: Mapping[str, Any], payload: Mapping[str, Any], secret: bytes) -> str:
    """
    An HMAC-signed token (PyJWT refuses to sign with a public key as the
    secret, which is exactly the attack).
    """
    signing_input = ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode())]
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


class FakeKeys:
    """
    L{JwksCache.keys_for} over a dict.

    :ivar calls: the C{(issuer, kid)} pairs asked for.
    """

    def __init__(
        self,
        keys: Mapping[str, tuple[VerificationKey, ...]] | None = None,
        error: JwksError | None = None,
    ) -> None:
        self.keys = (
            keys
            if keys is not None
            else {
                "rsa-1": (RSA_VERIFIER,),
                "rsa-2": (RSA_VERIFIER_2,),
                "ec-1": (EC_VERIFIER,),
            }
        )
        self.error = error
        self.calls: list[tuple[str, str]] = []

    def __call__(self, issuer: str, kid: str) -> Deferred[tuple[VerificationKey, ...]]:
        """
        Look ``kid`` up.
        """
        self.calls.append((issuer, kid))
        if self.error is not None:
            return fail(self.error)
        if kid not in self.keys:
            return fail(UnknownKey(kid))
        return succeed(self.keys[kid])


class VerifyTests(SynchronousTestCase):
    """
    Helpers to run L{verify_token} against L{FakeKeys}.
    """

    def setUp(self) -> None:
        self.keys = FakeKeys()

    def verify(self, token: str, **kwargs: Any) -> Deferred[IdentityClaims]:
        """
        Verify ``token`` at L{NOW}, trusting L{ISSUER}.
        """
        kwargs.setdefault("trusted_issuers", {ISSUER})
        kwargs.setdefault("now", NOW)
        return verify_token(token, issuer_keys=self.keys, **kwargs)

    def refused(
        self, token: str, message: str, network: bool = False, **kwargs: Any
    ) -> InvalidIdentityToken:
        """
        Assert that ``token`` is refused with ``message``, with or without a
        key lookup.
        """
        self.keys.calls.clear()
        failure = self.failureResultOf(
            self.verify(token, **kwargs), InvalidIdentityToken
        )
        error = cast(InvalidIdentityToken, failure.value)
        self.assertEqual(error.message, message)
        self.assertEqual(bool(self.keys.calls), network, self.keys.calls)
        self.assertNotIn(SUBJECT, error.message)
        return error


class AcceptTests(VerifyTests):
    """
    Valid tokens give their claims.
    """

    def test_rs256(self) -> None:
        """
        An RS256 token signed by the issuer's key is accepted; its claims are
        returned, the audience unchecked.
        """
        result = self.successResultOf(self.verify(sign()))
        self.assertEqual(result.issuer, ISSUER)
        self.assertEqual(result.subject, SUBJECT)
        self.assertEqual(result.audiences, ("sts.amazonaws.com",))
        self.assertEqual(result.expires_at, NOW + timedelta(seconds=300))
        self.assertEqual(result.claims["repository_owner"], "octo-org")
        self.assertEqual(self.keys.calls, [(ISSUER, "rsa-1")])

    def test_es256(self) -> None:
        """
        An ES256 token signed by the issuer's P-256 key is accepted.
        """
        result = self.successResultOf(
            self.verify(sign(key=EC_KEY, algorithm="ES256", kid="ec-1"))
        )
        self.assertEqual(result.subject, SUBJECT)

    def test_optional_claims(self) -> None:
        """
        Only C{iss} and C{exp} are required; C{aud} may be a list.
        """
        token = sign(claims(sub=None, aud=["a", "b"], nbf=None, iat=None))
        result = self.successResultOf(self.verify(token))
        self.assertIsNone(result.subject)
        self.assertEqual(result.audiences, ("a", "b"))
        result = self.successResultOf(self.verify(sign(claims(aud=None))))
        self.assertEqual(result.audiences, ())

    def test_whitespace(self) -> None:
        """
        A token read from a file, with its newline, is accepted.
        """
        self.successResultOf(self.verify(sign() + "\n"))

    def test_several_keys_one_kid(self) -> None:
        """
        When an issuer publishes several keys under one id, any of them may
        have signed the token.
        """
        self.keys.keys = {"k": (EC_VERIFIER, RSA_VERIFIER_2, RSA_VERIFIER)}
        self.successResultOf(self.verify(sign(kid="k")))
        self.successResultOf(self.verify(sign(kid="k", key=EC_KEY, algorithm="ES256")))

    def test_check_token(self) -> None:
        """
        L{check_token} verifies with keys at hand.
        """
        result = check_token(sign(), [RSA_VERIFIER], trusted_issuers={ISSUER}, now=NOW)
        self.assertEqual(result.subject, SUBJECT)
        with self.assertRaises(InvalidIdentityToken):
            check_token(sign(), [RSA_VERIFIER_2], trusted_issuers={ISSUER}, now=NOW)


class IssuerTests(VerifyTests):
    """
    Only trusted issuers' tokens are accepted, compared exactly, before any
    key is fetched.
    """

    def test_untrusted(self) -> None:
        """
        A token from another issuer is refused without a key lookup.
        """
        self.refused(sign(claims(iss="https://evil.example")), "untrusted issuer")

    def test_exact(self) -> None:
        """
        A trailing slash, a different case or a prefix does not match.
        """
        for issuer in (
            ISSUER + "/",
            ISSUER.upper(),
            ISSUER + ".evil",
            "https://issuer",
        ):
            self.refused(sign(claims(iss=issuer)), "untrusted issuer")

    def test_not_a_string(self) -> None:
        """
        An C{iss} that is not a string is refused.
        """
        self.refused(sign(claims(iss=[ISSUER])), "untrusted issuer")
        self.refused(sign(claims(iss={"x": 1})), "untrusted issuer")

    def test_missing(self) -> None:
        """
        A token without C{iss} is refused.
        """
        self.refused(sign(claims(iss=None)), "missing iss claim")

    def test_plain_http_issuer(self) -> None:
        """
        A trusted issuer over plain HTTP that is not loopback: the key lookup
        fails without any network access.
        """
        http = RecordingHTTP()
        cache = JwksCache(Clock(), http)
        issuer = "http://issuer.example"
        failure = self.failureResultOf(
            verify_token(
                sign(claims(iss=issuer)),
                issuer_keys=cache.keys_for,
                trusted_issuers={issuer},
                now=NOW,
            ),
            IdpCommunicationError,
        )
        self.assertNotIn("http", cast(InvalidIdentityToken, failure.value).message)
        self.assertEqual(http.urls, [])


class TimeTests(VerifyTests):
    """
    C{exp} is required; C{exp}, C{nbf} and C{iat} are checked against the
    given time with a leeway, before any key is fetched.
    """

    def test_expired(self) -> None:
        """
        A token whose C{exp} is past by the leeway or more is refused as
        expired.
        """
        error = self.refused(sign(claims(exp=T - 60)), "token expired")
        self.assertIsInstance(error, ExpiredIdentityToken)
        self.refused(
            sign(claims(exp=T - 3600, iat=T - 7200, nbf=None)), "token expired"
        )

    def test_expired_leeway(self) -> None:
        """
        Within the leeway an expired token is still accepted; the leeway can
        be changed.
        """
        self.successResultOf(self.verify(sign(claims(exp=T - 59))))
        self.refused(sign(claims(exp=T - 1)), "token expired", leeway=0)
        self.successResultOf(self.verify(sign(claims(exp=T - 299)), leeway=300))

    def test_not_yet_valid(self) -> None:
        """
        A token whose C{nbf} is ahead by more than the leeway is refused.
        """
        self.refused(sign(claims(nbf=T + 61)), "token not yet valid")
        self.successResultOf(self.verify(sign(claims(nbf=T + 60))))

    def test_issued_in_future(self) -> None:
        """
        A token whose C{iat} is ahead by more than the leeway is refused.
        """
        self.refused(sign(claims(iat=T + 61, nbf=None)), "token issued in the future")
        self.successResultOf(self.verify(sign(claims(iat=T + 60, nbf=None))))

    def test_missing_exp(self) -> None:
        """
        A token without C{exp} is refused.
        """
        self.refused(sign(claims(exp=None)), "missing exp claim")

    def test_bad_times(self) -> None:
        """
        Time claims that are not finite numbers of seconds in range are
        refused.
        """
        for name in ("exp", "nbf", "iat"):
            for value in ("2030-01-01", True, [T], -1, 10**20, 1e300, {"t": T}, None):
                token = sign({**claims(), name: value})
                self.refused(token, f"invalid {name} claim")

    def test_float_times(self) -> None:
        """
        Time claims may be fractional.
        """
        result = self.successResultOf(
            self.verify(sign(claims(exp=T + 0.5, iat=T - 0.5)))
        )
        self.assertEqual(result.expires_at, NOW + timedelta(seconds=0.5))

    def test_clock_given(self) -> None:
        """
        The time judged by is the one given, not the wall clock.
        """
        old = datetime(2001, 1, 1, tzinfo=UTC)
        moment = int(old.timestamp())
        token = sign(claims(exp=moment + 60, iat=moment, nbf=moment))
        self.successResultOf(self.verify(token, now=old))
        self.refused(token, "token expired")


class AlgorithmTests(VerifyTests):
    """
    Only RS256 and ES256 are accepted, each with a key made for it.
    """

    def test_accepted(self) -> None:
        """
        The accepted algorithms are RS256 and ES256.
        """
        self.assertEqual(ALGORITHMS, {"RS256", "ES256"})

    def test_none(self) -> None:
        """
        Unsigned tokens are refused before any key lookup, however spelt.
        """
        for alg in ("none", "None", "NONE", "nOnE"):
            token = assemble({"alg": alg, "kid": "rsa-1"}, claims(), b"")
            self.assertTrue(token.endswith("."))
            self.refused(token, "malformed token")
            self.refused(token + "AAAA", "unsupported algorithm")

    def test_hmac(self) -> None:
        """
        HMAC tokens are refused before any key lookup.
        """
        for alg in ("HS256", "HS384", "HS512"):
            token = sign(key="secret" * 11, algorithm=alg)
            self.refused(token, "unsupported algorithm")

    def test_key_confusion(self) -> None:
        """
        An HS256 token whose secret is the issuer's RSA public key (in any
        encoding an attacker could guess) is refused, even by L{check_token}
        given that very key.
        """
        public = RSA_KEY.public_key()
        secrets = [
            public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
            public.public_bytes(Encoding.PEM, PublicFormat.PKCS1),
            public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
            json.dumps(rsa_jwk(RSA_KEY, "rsa-1")).encode(),
        ]
        for secret in secrets:
            token = hs256(
                {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(), secret
            )
            self.refused(token, "unsupported algorithm")
            with self.assertRaises(InvalidIdentityToken):
                check_token(token, [RSA_VERIFIER], trusted_issuers={ISSUER}, now=NOW)

    def test_others(self) -> None:
        """
        Other asymmetric algorithms, and algorithms that are not strings, are
        refused.
        """
        for alg in ("RS384", "RS512", "PS256", "ES384", "EdDSA", "rs256", ""):
            token = assemble({"alg": alg, "kid": "rsa-1"}, claims(), b"sig")
            self.refused(token, "unsupported algorithm")
        for odd in (None, 256, ["RS256"], {"RS256": 1}):
            token = assemble({"alg": odd, "kid": "rsa-1"}, claims(), b"sig")
            self.refused(token, "unsupported algorithm")
        self.refused(
            assemble({"kid": "rsa-1"}, claims(), b"sig"), "unsupported algorithm"
        )

    def test_algorithm_key_mismatch(self) -> None:
        """
        A token whose algorithm is not the one its key is for is refused:
        ES256 naming an RSA key, RS256 naming an EC key.
        """
        self.refused(
            sign(key=EC_KEY, algorithm="ES256", kid="rsa-1"),
            "signing key does not match the algorithm",
            network=True,
        )
        self.refused(
            sign(kid="ec-1"), "signing key does not match the algorithm", network=True
        )

    def test_crit(self) -> None:
        """
        Critical header extensions are not understood, so refused.
        """
        self.refused(sign(crit=["exp"]), "unsupported critical header parameters")
        self.refused(
            assemble(
                {"alg": "RS256", "kid": "rsa-1", "crit": ["b64"], "b64": False},
                claims(),
                b"sig",
            ),
            "unsupported critical header parameters",
        )


class SignatureTests(VerifyTests):
    """
    The signature must verify with the issuer's key named by the token.
    """

    def test_wrong_key(self) -> None:
        """
        A token signed by another key under the issuer's key id is refused.
        """
        self.refused(sign(key=RSA_KEY_2), "signature invalid", network=True)
        other = ec.generate_private_key(ec.SECP256R1())
        self.refused(
            sign(key=other, algorithm="ES256", kid="ec-1"),
            "signature invalid",
            network=True,
        )

    def test_tampered_claims(self) -> None:
        """
        A token whose claims were changed after signing is refused.
        """
        header, _, signature = sign().split(".")
        forged = b64(
            json.dumps(claims(sub="repo:evil/evil:ref:refs/heads/main")).encode()
        )
        self.refused(
            ".".join([header, forged, signature]), "signature invalid", network=True
        )

    def test_tampered_header(self) -> None:
        """
        A token whose header was changed after signing is refused.
        """
        _, payload, signature = sign().split(".")
        header = b64(
            json.dumps({"alg": "RS256", "kid": "rsa-1", "typ": "at+jwt"}).encode()
        )
        self.refused(
            ".".join([header, payload, signature]), "signature invalid", network=True
        )

    def test_signature_stripped(self) -> None:
        """
        A token with its signature removed is refused.
        """
        header, payload, _ = sign().split(".")
        self.refused(f"{header}.{payload}.", "malformed token")
        self.refused(f"{header}.{payload}.AAAA", "signature invalid", network=True)

    def test_unknown_kid(self) -> None:
        """
        A key id the issuer does not publish is refused.
        """
        self.refused(sign(kid="rsa-9"), "unknown signing key", network=True)

    def test_missing_kid(self) -> None:
        """
        A token without a key id (or with one that is not a string) is
        refused before any key lookup.
        """
        self.refused(sign(kid=None), "missing key id")
        self.refused(sign(kid=""), "missing key id")
        self.refused(
            assemble({"alg": "RS256", "kid": 1}, claims(), b"x"), "missing key id"
        )

    def test_issuer_unreachable(self) -> None:
        """
        When the issuer's keys cannot be had, the token is refused as a
        communication error.
        """
        self.keys.error = JwksError("connection refused to https://issuer.example")
        error = self.refused(
            sign(),
            "could not fetch the issuer's signing keys; try again later",
            network=True,
        )
        self.assertIsInstance(error, IdpCommunicationError)


class ClaimTypeTests(VerifyTests):
    """
    Standard claims of the wrong type are refused.
    """

    def test_subject(self) -> None:
        """
        A C{sub} that is not a string is refused.
        """
        for value in (1, ["a"], {"a": 1}, False):
            self.refused(sign(claims(sub=value)), "invalid sub claim")

    def test_audience(self) -> None:
        """
        An C{aud} that is neither a string nor a list of strings is refused.
        """
        for value in (1, ["a", 2], {"a": 1}, True):
            self.refused(sign(claims(aud=value)), "invalid aud claim")


class ParseTests(VerifyTests):
    """
    L{parse_unverified} refuses what is not a compact JWS, and oversized
    tokens before decoding them.
    """

    def test_parts(self) -> None:
        """
        The header and claims are read without checking anything.
        """
        parsed = parse_unverified(sign())
        self.assertEqual(parsed.header["kid"], "rsa-1")
        self.assertEqual(parsed.claims["sub"], SUBJECT)

    def test_oversized(self) -> None:
        """
        A token longer than the limit is refused before parsing; the limit
        can be changed.
        """
        token = sign(claims(padding="x" * MAX_TOKEN_BYTES))
        self.refused(token, "token too large")
        self.refused(sign(), "token too large", max_bytes=100)
        self.refused("." * (MAX_TOKEN_BYTES + 1), "token too large")
        self.successResultOf(self.verify(token, max_bytes=len(token)))

    def test_garbage(self) -> None:
        """
        Anything that is not three base64url parts holding JSON objects is
        malformed.
        """
        header, payload, signature = sign().split(".")
        not_utf8 = b64(b"\xff\xfe")
        nan = b64(b'{"exp": NaN}')
        infinity = b64(b'{"exp": Infinity}')
        deep = b64(b"[" * 5000)
        for token in (
            "",
            "   ",
            "garbage",
            "a.b",
            "a.b.c.d",
            f"{header}.{payload}.{signature}.x.y",
            f"{header}.{payload}",
            f"{header}..{signature}",
            f".{payload}.{signature}",
            f"{header}.{payload}.{signature}=",
            f"{header}.{payload}=.{signature}",
            f"{header}.{payload}+.{signature}",
            f"{header}.{payload}.{signature}é",
            f"{header}. {payload}.{signature}",
            f"{header}.{payload}\n.{signature}",
            f"{header}.{payload[:-1]}x.{signature}",
            f"{header}.{payload}A.{signature}",
            f"{b64(b'[1]')}.{payload}.{signature}",
            f"{header}.{b64(b'null')}.{signature}",
            f"{header}.{b64(b'42')}.{signature}",
            f"{header}.{b64(b'{}{}')}.{signature}",
            f"{header}.{not_utf8}.{signature}",
            f"{header}.{nan}.{signature}",
            f"{header}.{infinity}.{signature}",
            f"{header}.{deep}.{signature}",
        ):
            self.refused(token, "malformed token")

    def test_duplicate_members(self) -> None:
        """
        A header or claims with a member given twice is refused: two readers
        of one token must not see two different claims.
        """
        header, payload, signature = sign().split(".")
        doubled = b'{"iss": "https://evil.example", "iss": "' + ISSUER.encode() + b'"}'
        self.refused(f"{header}.{b64(doubled)}.{signature}", "malformed token")
        doubled = b'{"alg": "none", "alg": "RS256", "kid": "rsa-1"}'
        self.refused(f"{b64(doubled)}.{payload}.{signature}", "malformed token")

    @given(st.text(max_size=300))
    def test_arbitrary_text(self, token: str) -> None:
        """
        Any text is parsed or refused with L{InvalidIdentityToken}.
        """
        with contextlib.suppress(InvalidIdentityToken):
            parse_unverified(token)

    @given(
        st.dictionaries(
            st.text(max_size=5),
            st.none() | st.integers() | st.text(max_size=5),
            max_size=5,
        ),
        st.dictionaries(
            st.sampled_from(["iss", "exp", "nbf", "iat", "sub", "aud", "x"]),
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats()
            | st.text(max_size=5)
            | st.just(ISSUER)
            | st.lists(st.text(max_size=3), max_size=2),
            max_size=7,
        ),
    )
    def test_arbitrary_claims(
        self, header: dict[str, Any], payload: dict[str, Any]
    ) -> None:
        """
        Any header and claims are accepted or refused with
        L{InvalidIdentityToken}, never anything else, and never accepted
        without a valid signature.
        """
        header = {"alg": "RS256", "kid": "rsa-1", **header}
        try:
            token = assemble(header, payload, b"not a signature")
        except ValueError:
            return
        failure = self.failureResultOf(self.verify(token), InvalidIdentityToken)
        self.assertIsInstance(failure.value, InvalidIdentityToken)

    @given(st.data())
    def test_tampering(self, data: st.DataObject) -> None:
        """
        Changing any one character of a signed token never gives different
        claims: it is refused, or (at the end of a base64url part, whose last
        character carries unused bits) it reads the same.
        """
        token = sign()
        position = data.draw(st.integers(0, len(token) - 1))
        replacement = data.draw(
            st.sampled_from(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
            )
        )
        tampered = token[:position] + replacement + token[position + 1 :]
        result = self.verify(tampered)
        if tampered == token:
            self.successResultOf(result)
            return
        outcome = self.successResultOf(
            result.addErrback(lambda f: f.trap(InvalidIdentityToken) and None)
        )
        if outcome is not None:
            original = parse_unverified(token)
            self.assertEqual(dict(outcome.claims), dict(original.claims))


class PrecheckTests(SynchronousTestCase):
    """
    L{precheck} is pure and checks everything that needs no key.
    """

    def test_valid(self) -> None:
        """
        A valid token passes.
        """
        precheck(parse_unverified(sign()), trusted_issuers={ISSUER}, now=NOW)

    def test_untrusted(self) -> None:
        """
        An untrusted issuer is refused.
        """
        with self.assertRaises(InvalidIdentityToken):
            precheck(parse_unverified(sign()), trusted_issuers=set(), now=NOW)


class CacheIntegrationTests(SynchronousTestCase):
    """
    L{verify_token} with a real L{JwksCache} in front of an in-memory issuer.
    """

    def setUp(self) -> None:
        self.issuer = FakeIssuer()
        self.clock = Clock()
        self.cache = JwksCache(self.clock, cast(HTTPGetter, StubTreq(self.issuer)))

    def verify(self, token: str) -> Deferred[IdentityClaims]:
        """
        Verify ``token`` at L{NOW}, trusting L{ISSUER}.
        """
        return verify_token(
            token, issuer_keys=self.cache.keys_for, trusted_issuers={ISSUER}, now=NOW
        )

    def test_verify(self) -> None:
        """
        Tokens verify with keys fetched through discovery; later tokens use
        the cache.
        """
        self.successResultOf(self.verify(sign()))
        self.successResultOf(
            self.verify(sign(key=EC_KEY, algorithm="ES256", kid="ec-1"))
        )
        self.assertEqual(self.issuer.hits[b"/jwks"], 1)

    def test_rotation(self) -> None:
        """
        A token signed with a key the issuer published after the set was
        cached verifies, with one refetch and no restart.
        """
        self.successResultOf(self.verify(sign()))
        self.clock.advance(60)
        self.issuer.keys.append(rsa_jwk(RSA_KEY_2, "rsa-2"))
        self.successResultOf(self.verify(sign(key=RSA_KEY_2, kid="rsa-2")))
        self.assertEqual(self.issuer.hits[b"/jwks"], 2)

    def test_unknown_kid_after_refetch(self) -> None:
        """
        A key id the issuer still does not publish after a refetch is
        refused; further such tokens cause no more fetches for a while.
        """
        self.successResultOf(self.verify(sign()))
        self.clock.advance(60)
        for _ in range(5):
            failure = self.failureResultOf(
                self.verify(sign(kid="rsa-9")), InvalidIdentityToken
            )
            self.assertEqual(
                cast(InvalidIdentityToken, failure.value).message, "unknown signing key"
            )
        self.assertEqual(self.issuer.hits[b"/jwks"], 2)

    def test_refused_before_fetch(self) -> None:
        """
        Tokens refused by their contents cause no request to the issuer.
        """
        for token in (
            sign(claims(exp=T - 3600)),
            sign(claims(iss="https://evil.example")),
            sign(key="secret" * 11, algorithm="HS256"),
            sign(kid=None),
            "garbage",
        ):
            self.failureResultOf(self.verify(token), InvalidIdentityToken)
        self.assertEqual(self.issuer.hits[DISCOVERY], 0)
