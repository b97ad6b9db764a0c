# -*- test-case-name: tests.unit.test_sts_policy -*-
"""
Trust policies: which web identities may assume a role, for how long, and
with which scopes.

A role trusts a token when its issuer is one of ``trusted_oidc_issuers``, its
audience (``aud``, a string or a list) holds one of ``required_audiences``
(unless the role sets ``allow_any_audience``), its subject matches one of
``subject_conditions`` (any, if none) and every claim named in
``claim_conditions`` is a string matching one of its globs. Globs know only
``*``, which matches any run of characters.

A session's scopes are the role's, with ``{claim}`` in a bucket or prefix
replaced by that string claim of the token. A scope that names a claim the
token lacks, or one that is not a string, or whose value would change the
meaning of the scope (a ``*`` in a bucket, which would widen it to other
buckets) is left out: a missing claim never widens a grant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from multistore.auth.authorize import bucket_matches
from multistore.config import MIN_SESSION_SECONDS, AccessScope, RoleConfig

#: Session names AWS accepts: 2 to 64 of these characters.
_SESSION_NAME: Final = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_TEMPLATE: Final = re.compile(r"\{([^{}]+)\}")

#: The default session length, as AWS.
DEFAULT_DURATION: Final = 3600


class StsError(Exception):
    """
    A failure to report as an STS error document.

    :ivar code: the STS error code (``InvalidIdentityToken``...).
    :ivar message: safe to show the caller.
    :ivar status: the HTTP status.
    :ivar sender: whether the caller is at fault (``Sender``) rather than the
        service (``Receiver``).
    """

    def __init__(self, code: str, message: str, status: int = 400, sender: bool = True):
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender
        super().__init__(code, message)


def _denied(
    message: str = "Not authorized to perform sts:AssumeRoleWithWebIdentity",
) -> StsError:
    return StsError("AccessDenied", message, 403)


def role_id_of(role_arn: str) -> str:
    """
    The role an ``RoleArn`` names: the configured ``role_id`` itself, or an
    IAM-style ``arn:aws:iam::ACCOUNT:role/ROLE_ID`` that SDKs insist on.
    """
    match = re.fullmatch(r"arn:aws[a-z-]*:iam::[0-9]*:role/(.+)", role_arn)
    return match.group(1) if match else role_arn


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    audience = claims.get("aud")
    if isinstance(audience, str):
        return [audience]
    if isinstance(audience, list):
        return [a for a in audience if isinstance(a, str)]
    return []


def _matches(value: object, globs: tuple[str, ...]) -> bool:
    return isinstance(value, str) and any(bucket_matches(g, value) for g in globs)


def check_trust(role: RoleConfig, issuer: str, claims: Mapping[str, Any]) -> str:
    """
    Check that ``role`` trusts a verified token.

    :return: the audience that matched (or the token's first audience, for a
        role accepting any), to report back.
    :raise StsError: ``InvalidIdentityToken`` for an issuer the role does not
        trust; ``AccessDenied`` for an audience, subject or claim the role does
        not accept.
    """
    if issuer not in role.trusted_oidc_issuers:
        raise StsError(
            "InvalidIdentityToken", "The token's issuer is not trusted by this role."
        )
    audiences = _audiences(claims)
    if role.allow_any_audience:
        matched = audiences[0] if audiences else ""
    else:
        accepted = [a for a in audiences if a in role.required_audiences]
        if not accepted:
            raise StsError(
                "InvalidIdentityToken", "Incorrect token audience for this role."
            )
        matched = accepted[0]
    subject = claims.get("sub")
    if role.subject_conditions and not _matches(subject, role.subject_conditions):
        raise _denied()
    for claim, globs in role.claim_conditions.items():
        value = claims.get(claim)
        if not isinstance(value, str) or not any(
            bucket_matches(g, value) for g in globs
        ):
            raise _denied()
    return matched


def _fill(template: str, claims: Mapping[str, Any]) -> str | None:
    """
    :return: ``template`` with each ``{claim}`` replaced, or ``None`` if a
        claim is missing or not a string.
    """
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        claim = claims.get(match.group(1))
        if not isinstance(claim, str) or claim == "":
            missing = True
            return ""
        return claim

    filled = _TEMPLATE.sub(value, template)
    return None if missing else filled


def session_scopes(
    role: RoleConfig, claims: Mapping[str, Any]
) -> tuple[AccessScope, ...]:
    """
    :return: the role's scopes with their templates filled from ``claims``;
        a scope that cannot be filled safely is left out.
    """
    scopes = []
    for scope in role.allowed_scopes:
        bucket = _fill(scope.bucket, claims)
        if bucket is None:
            continue
        # A claim must not turn a named bucket into a pattern.
        literal = _TEMPLATE.sub("", scope.bucket)
        if bucket.count("*") != literal.count("*"):
            continue
        prefixes = [_fill(p, claims) for p in scope.prefixes]
        if any(p is None for p in prefixes):
            continue
        scopes.append(
            AccessScope(
                bucket=bucket,
                prefixes=tuple(p for p in prefixes if p is not None),
                actions=scope.actions,
            )
        )
    return tuple(scopes)


def session_duration(requested: str | None, role: RoleConfig) -> int:
    """
    :return: the session length: ``DurationSeconds`` (or an hour) clamped to
        ``[900, max_session_duration_secs]``.
    :raise StsError: ``ValidationError`` if ``DurationSeconds`` is not a
        number.
    """
    if requested is None or requested == "":
        wanted = DEFAULT_DURATION
    elif requested.isascii() and requested.isdigit() and len(requested) <= 9:
        wanted = int(requested)
    else:
        raise StsError(
            "ValidationError", "DurationSeconds must be a whole number of seconds."
        )
    return max(MIN_SESSION_SECONDS, min(wanted, role.max_session_duration_secs))


def session_name(requested: str | None, subject: str) -> str:
    """
    :return: the session's name: ``RoleSessionName`` if given, else one made
        from the token's subject (characters AWS does not allow become
        ``_``).
    :raise StsError: ``ValidationError`` for a ``RoleSessionName`` AWS would
        refuse.
    """
    if requested:
        if not _SESSION_NAME.fullmatch(requested):
            raise StsError(
                "ValidationError",
                "RoleSessionName must be 2 to 64 letters, digits or +=,.@_- "
                "characters.",
            )
        return requested
    name = re.sub(r"[^\w+=,.@-]", "_", subject, flags=re.ASCII)[:64]
    return name if len(name) >= 2 else "multistore-session"
