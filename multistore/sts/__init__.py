"""
STS for multistore: ``AssumeRoleWithWebIdentity`` exchanges an OIDC ID token
(from GitHub Actions, GitLab, Kubernetes, Google...) for short-lived S3
credentials that multistore mints itself. Trust policies come from the
configuration's ``[[roles]]``; issuers' signing keys are fetched without
blocking the reactor; and each session's secret and scopes travel inside its
session token, sealed with AES-256-GCM under a key every instance shares
(L{multistore.auth.sessions}), so a request signed with temporary credentials is
authorized from the token alone, across restarts and instances.
"""
