"""
Tests for L{multistore.sts.policy}.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from multistore.config import AccessScope, RoleConfig
from multistore.sts.policy import (
    StsError,
    check_trust,
    role_id_of,
    session_duration,
    session_name,
    session_scopes,
)

ISSUER = "https://token.actions.githubusercontent.com"


def role(**fields: Any) -> RoleConfig:
    values: dict[str, Any] = {
        "role_id": "deployer",
        "name": "Deployer",
        "trusted_oidc_issuers": (ISSUER,),
        "required_audiences": ("multistore",),
        "max_session_duration_secs": 7200,
    }
    values.update(fields)
    return RoleConfig(**values)


CLAIMS = {
    "iss": ISSUER,
    "aud": ["other", "multistore"],
    "sub": "repo:org/app:ref:refs/heads/main",
    "repository_owner": "org",
    "environment": "prod",
    "team": "data",
}


class TrustTests(SynchronousTestCase):
    """
    Tests for L{check_trust}.
    """

    def code(self, r: RoleConfig, issuer: str = ISSUER, **claims: Any) -> str:
        with self.assertRaises(StsError) as e:
            check_trust(r, issuer, {**CLAIMS, **claims})
        return e.exception.code

    def test_trusted(self) -> None:
        """
        A token of a trusted issuer with an accepted audience is trusted; the
        matching audience is reported.
        """
        self.assertEqual(check_trust(role(), ISSUER, CLAIMS), "multistore")

    def test_issuer_and_audience(self) -> None:
        """
        Another issuer, or no accepted audience, is an invalid token for the
        role.
        """
        self.assertEqual(
            self.code(role(), issuer="https://evil.example"), "InvalidIdentityToken"
        )
        self.assertEqual(self.code(role(), aud="other"), "InvalidIdentityToken")
        self.assertEqual(self.code(role(), aud=None), "InvalidIdentityToken")
        self.assertEqual(self.code(role(), aud=[1, 2]), "InvalidIdentityToken")

    def test_any_audience(self) -> None:
        """
        A role that allows any audience accepts a token with none.
        """
        anyone = role(required_audiences=(), allow_any_audience=True)
        self.assertEqual(check_trust(anyone, ISSUER, {**CLAIMS, "aud": None}), "")

    def test_subject(self) -> None:
        """
        Subject globs must match; otherwise access is denied.
        """
        main = role(subject_conditions=("repo:org/*:ref:refs/heads/main",))
        check_trust(main, ISSUER, CLAIMS)
        self.assertEqual(
            self.code(main, sub="repo:org/app:ref:refs/heads/dev"), "AccessDenied"
        )
        self.assertEqual(self.code(main, sub=None), "AccessDenied")

    def test_claims(self) -> None:
        """
        Every claim condition must hold with a string claim.
        """
        strict = role(
            claim_conditions={
                "repository_owner": ("org",),
                "environment": ("prod", "stage-*"),
            }
        )
        check_trust(strict, ISSUER, CLAIMS)
        check_trust(strict, ISSUER, {**CLAIMS, "environment": "stage-2"})
        self.assertEqual(self.code(strict, environment="dev"), "AccessDenied")
        self.assertEqual(self.code(strict, repository_owner=["org"]), "AccessDenied")
        missing = dict(CLAIMS)
        del missing["environment"]
        with self.assertRaises(StsError):
            check_trust(strict, ISSUER, missing)


class ScopeTests(SynchronousTestCase):
    """
    Tests for L{session_scopes}.
    """

    def scopes(self, *templates: AccessScope, **claims: Any) -> tuple[AccessScope, ...]:
        return session_scopes(role(allowed_scopes=templates), {**CLAIMS, **claims})

    def test_filled(self) -> None:
        """
        Templates are filled from string claims, in buckets and prefixes.
        """
        scope = AccessScope(
            "{team}-bucket",
            ("users/{repository_owner}/", "shared/"),
            frozenset({"get_object"}),
        )
        (filled,) = self.scopes(scope)
        self.assertEqual(
            (filled.bucket, filled.prefixes), ("data-bucket", ("users/org/", "shared/"))
        )

    def test_missing_claim_removes_scope(self) -> None:
        """
        A missing, empty or non-string claim removes the scope; it never
        widens to an empty prefix.
        """
        scope = AccessScope("b", ("users/{login}/",), frozenset({"put_object"}))
        self.assertEqual(self.scopes(scope), ())
        self.assertEqual(self.scopes(scope, login=""), ())
        self.assertEqual(self.scopes(scope, login=42), ())
        self.assertEqual(len(self.scopes(scope, login="ann")), 1)

    def test_glob_in_claim(self) -> None:
        """
        A claim value with ``*`` cannot turn a bucket into a pattern.
        """
        scope = AccessScope("{team}", (), frozenset({"get_object"}))
        self.assertEqual(self.scopes(scope, team="*"), ())
        self.assertEqual(
            self.scopes(AccessScope("{team}-*", (), frozenset({"get_object"})))[
                0
            ].bucket,
            "data-*",
        )


class ParameterTests(SynchronousTestCase):
    """
    Tests for the request parameters' rules.
    """

    def test_duration(self) -> None:
        """
        Durations default to an hour and are clamped to [900, maximum].
        """
        r = role(max_session_duration_secs=7200)
        self.assertEqual(session_duration(None, r), 3600)
        self.assertEqual(session_duration("60", r), 900)
        self.assertEqual(session_duration("100000", r), 7200)
        self.assertEqual(session_duration("1800", r), 1800)
        for bad in ("x", "-5", "1e3", "9" * 40):
            with self.assertRaises(StsError):
                session_duration(bad, r)

    def test_session_name(self) -> None:
        """
        The session name is the one given, or the subject made safe.
        """
        self.assertEqual(session_name("ci-run", "x"), "ci-run")
        self.assertEqual(session_name(None, "repo:org/app"), "repo_org_app")
        self.assertEqual(session_name(None, "x"), "multistore-session")
        with self.assertRaises(StsError):
            session_name("bad name!", "x")

    def test_role_arn(self) -> None:
        """
        A role is named by its id or by an IAM-style ARN ending in it.
        """
        self.assertEqual(role_id_of("deployer"), "deployer")
        self.assertEqual(
            role_id_of("arn:aws:iam::123456789012:role/deployer"), "deployer"
        )
        self.assertEqual(
            role_id_of("arn:aws:iam::123:user/x"), "arn:aws:iam::123:user/x"
        )
