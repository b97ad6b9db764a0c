# -*- test-case-name: tests.unit.test_config -*-
"""
Reading the configuration file: TOML (or JSON, by extension) checked field by
field and turned into the frozen values of L{multistore.config}.

A file written for the Rust multistore loads unchanged: the top-level
``owner_id``, ``owner_display_name``, ``[[buckets]]``, ``[[roles]]`` and
``[[credentials]]`` keep their field names and meanings. Daemon settings live
in extra tables (``[server]``, ``[sts]``, ``[logging]``).

Loading either gives a complete L{Config} or raises L{ConfigError} listing
every problem found, each naming the file, the table and the field. Nothing is
half-loaded.

Secrets need not be written inline: any secret field ``X`` may instead be
given as ``X_file`` (a path whose contents, minus a trailing newline, are the
value) or ``X_env`` (the name of an environment variable). Relative paths are
resolved against the directory holding the config file.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from multistore.config import (
    ACTIONS,
    BACKEND_TYPES,
    MIN_SESSION_SECONDS,
    TEMPLATE,
    TEMPLATED_OPTIONS,
    AccessScope,
    BucketConfig,
    Config,
    LoggingConfig,
    PluginConfig,
    RoleConfig,
    ServerConfig,
    SessionKey,
    StoredCredential,
    StsConfig,
)
from multistore.configtable import (
    ConfigError,
    Problems,
    Table,
    describe,
    read_secret_file,
    suggest,
)
from multistore.metering.settings import read_metering
from multistore.oidc.settings import (
    FEDERATION_OPTIONS,
    check_federation,
    read_oidc_provider,
)
from multistore.s3.keys import has_dot_segment

#: ``backend_options`` keys understood per store kind. Aliases accepted by
#: the Rust system (from its object_store backend) are mapped to one name.
_S3_OPTION_ALIASES: Final = MappingProxyType(
    {
        "endpoint": "endpoint",
        "endpoint_url": "endpoint",
        "aws_endpoint": "endpoint",
        "aws_endpoint_url": "endpoint",
        "bucket_name": "bucket_name",
        "bucket": "bucket_name",
        "aws_bucket": "bucket_name",
        "aws_bucket_name": "bucket_name",
        "region": "region",
        "aws_region": "region",
        "access_key_id": "access_key_id",
        "aws_access_key_id": "access_key_id",
        "secret_access_key": "secret_access_key",
        "aws_secret_access_key": "secret_access_key",
        "token": "token",
        "session_token": "token",
        "aws_token": "token",
        "aws_session_token": "token",
        "skip_signature": "skip_signature",
        "aws_skip_signature": "skip_signature",
        "virtual_hosted_style_request": "virtual_hosted_style_request",
        "aws_virtual_hosted_style_request": "virtual_hosted_style_request",
        "allow_http": "allow_http",
        "auth_type": "auth_type",
        "oidc_role_arn": "oidc_role_arn",
        "oidc_subject": "oidc_subject",
        "oidc_audience": "oidc_audience",
        "sts_endpoint": "sts_endpoint",
        "unsigned_payload": "unsigned_payload",
        "aws_unsigned_payload": "unsigned_payload",
    }
)

_FILE_OPTIONS: Final = frozenset({"root", "fsync"})


_AZURE_OPTIONS: Final = frozenset(
    {
        "account_name",
        "container_name",
        "access_key",
        "sas_token",
        "bearer_token",
        "endpoint",
        "skip_signature",
        "auth_type",
        *FEDERATION_OPTIONS["azure"],
    }
)


_GCS_OPTIONS: Final = frozenset(
    {
        "bucket_name",
        "service_account_key",
        "service_account_path",
        "endpoint",
        "skip_signature",
        "access_key_id",
        "secret_access_key",
        "region",
        "project_id",
        "bearer_token",
        "auth_type",
        *FEDERATION_OPTIONS["gcs"],
    }
)


#: Options the Rust system knew that this version accepts but does not act on
#: (object_store client tuning).
_NOT_YET: Final = frozenset({"unsigned_payload"})


_TOP_LEVEL = frozenset(
    {
        "owner_id",
        "owner_display_name",
        "buckets",
        "roles",
        "credentials",
        "server",
        "sts",
        "logging",
        "middleware",
        "registry",
        "routes",
        "metering",
        "oidc_provider",
    }
)

#: What a plug-in's ``use`` looks like: a dotted module path, a colon, and a
#: (perhaps dotted) name in it.
_PLUGIN_NAME: Final = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
    r":[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
)


def _scopes(table: Table, name: str) -> tuple[AccessScope, ...]:
    scopes = []
    for entry in table.tables(name, "bucket"):
        bucket = entry.string("bucket")
        if bucket == "":
            entry.error("bucket", "must not be empty")
        prefixes = entry.strings("prefixes")
        if not entry.has("prefixes"):
            # Required by the Rust system; harmless to default here.
            pass
        actions = entry.strings("actions", allow_single=True)
        for action in actions:
            if action not in ACTIONS:
                entry.error(
                    "actions", f"unknown action {action!r}" + suggest(action, ACTIONS)
                )
        entry.unknown({"bucket", "prefixes", "actions"})
        scopes.append(
            AccessScope(bucket=bucket, prefixes=prefixes, actions=frozenset(actions))
        )
    return tuple(scopes)


def _backend_options(bucket: Table, kind: str) -> dict[str, str]:
    options_table = bucket.table("backend_options")
    raw = options_table.mapping()
    if kind == "s3":
        known: Mapping[str, str] = _S3_OPTION_ALIASES
    else:
        names = {
            "file": _FILE_OPTIONS,
            "azure": _AZURE_OPTIONS,
            "gcs": _GCS_OPTIONS,
        }.get(kind, frozenset())
        known = {n: n for n in names}
    options: dict[str, str] = {}
    for key in raw:
        value: Any
        name = key
        if key.endswith("_file") and key[: -len("_file")] in known:
            name = key[: -len("_file")]
            value = read_secret_file(options_table, key, raw[key])
        elif key.endswith("_env") and key[: -len("_env")] in known:
            name = key[: -len("_env")]
            var = raw[key]
            if not isinstance(var, str) or var not in os.environ:
                options_table.error(key, f"environment variable {var!r} is not set")
                continue
            value = os.environ[var]
        else:
            value = raw[key]
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            options_table.error(key, f"must be a string, not {describe(value)}")
            continue
        canonical = known.get(name)
        if canonical is None:
            options_table.warn(
                key,
                f"not used by '{kind}' backends, ignored" + suggest(name, set(known)),
            )
            continue
        if canonical in _NOT_YET:
            options_table.warn(key, "not supported by this version, ignored")
            continue
        if canonical in options:
            options_table.error(key, f"'{canonical}' is given more than once")
            continue
        options[canonical] = value
    return options


def _check_endpoint(bucket: Table, options: dict[str, str]) -> None:
    endpoint = options.get("endpoint")
    if endpoint and not re.match(r"^https?://[^/]+", endpoint):
        bucket.error(
            "backend_options.endpoint",
            f"must be an http:// or https:// URL, not {endpoint!r}",
        )


def _check_backend(bucket: Table, kind: str, options: dict[str, str]) -> None:
    where = "backend_options."
    check_federation(bucket, kind, options)
    if kind == "s3":
        if not options.get("bucket_name"):
            bucket.error(where + "bucket_name", "required for s3 backends")
        _check_endpoint(bucket, options)
        has_key = bool(options.get("access_key_id"))
        has_secret = bool(options.get("secret_access_key"))
        if has_key != has_secret:
            bucket.error(
                where + "secret_access_key",
                "access_key_id and secret_access_key must be given together",
            )
    elif kind == "azure":
        if not options.get("container_name"):
            bucket.error(where + "container_name", "required for azure backends")
        if not options.get("account_name") and not options.get("endpoint"):
            bucket.error(
                where + "account_name",
                "required for azure backends (or an endpoint naming the account)",
            )
        _check_endpoint(bucket, options)
        if options.get("access_key"):
            try:
                base64.b64decode(options["access_key"], validate=True)
            except binascii.Error:
                bucket.error(where + "access_key", "must be the base64 account key")
    elif kind == "gcs":
        if not options.get("bucket_name"):
            bucket.error(where + "bucket_name", "required for gcs backends")
        _check_endpoint(bucket, options)
        key_path = options.pop("service_account_path", None)
        if key_path and not options.get("service_account_key"):
            # Read once, here: a store must never read files on the reactor.
            options["service_account_key"] = read_secret_file(
                bucket, where + "service_account_path", key_path
            )
        key = options.get("service_account_key")
        if key:
            try:
                parsed = json.loads(key)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict) or not {
                "client_email",
                "private_key",
            } <= set(parsed):
                bucket.error(
                    where + "service_account_key",
                    "must be a service account key (JSON with client_email "
                    "and private_key)",
                )
    elif kind == "file":
        root = options.get("root")
        if not root:
            bucket.error(where + "root", "required for file backends")
        else:
            path = (bucket.base / root).resolve()
            # A templated root ("/srv/{bucket}") names directories that
            # CreateBucket makes; its parent must exist.
            existing = path.parent if TEMPLATE in root else path
            if not existing.is_dir():
                bucket.error(where + "root", f"{existing} is not a directory")
            options["root"] = str(path)


def _bucket(entry: Table) -> BucketConfig:
    name = entry.string("name")
    if name == "":
        entry.error("name", "must not be empty")
    elif "/" in name or name.startswith("."):
        entry.error(
            "name", f"{name!r} cannot be a bucket name (no '/', no leading '.')"
        )
    backend_type = entry.string("backend_type")
    kind = BACKEND_TYPES.get(backend_type.lower(), "")
    if not kind and backend_type:
        entry.error(
            "backend_type",
            f"unknown backend type {backend_type!r}; use one of "
            + ", ".join(sorted(BACKEND_TYPES)),
        )
    prefix = entry.string("backend_prefix", "")
    if has_dot_segment(prefix):
        entry.error("backend_prefix", "must not contain '.' or '..' segments")
    options = _backend_options(entry, kind)
    _check_backend(entry, kind, options)
    for option, value in options.items():
        if TEMPLATE in value and option not in TEMPLATED_OPTIONS:
            entry.error(
                f"backend_options.{option}",
                f"{TEMPLATE} may be used only in backend_prefix, "
                + ", ".join(sorted(TEMPLATED_OPTIONS)),
            )
    templated = TEMPLATE in prefix or any(TEMPLATE in v for v in options.values())
    if "*" in name and not templated:
        entry.error(
            "name",
            f"the pattern {name!r} needs {TEMPLATE} in backend_prefix or in a "
            "backend option (such as bucket_name or root), so that each bucket "
            "it matches has a place of its own",
        )
    elif templated and "*" not in name:
        entry.error(
            "name", f"{TEMPLATE} is only meaningful for a pattern such as 'team-*'"
        )
    bucket = BucketConfig(
        name=name,
        backend_type=kind,
        backend_prefix=prefix.strip("/"),
        anonymous_access=entry.boolean("anonymous_access", False),
        allowed_roles=entry.strings("allowed_roles"),
        backend_options=options,
    )
    entry.unknown(
        {
            "name",
            "backend_type",
            "backend_prefix",
            "anonymous_access",
            "allowed_roles",
            "backend_options",
        }
    )
    return bucket


def _credential(entry: Table) -> StoredCredential:
    access_key_id = entry.string("access_key_id")
    if access_key_id == "":
        entry.error("access_key_id", "must not be empty")
    secret = entry.string("secret_access_key", secret=True)
    if secret == "":
        entry.error("secret_access_key", "must not be empty")
    credential = StoredCredential(
        access_key_id=access_key_id,
        secret_access_key=secret,
        principal_name=entry.string("principal_name", access_key_id),
        allowed_scopes=_scopes(entry, "allowed_scopes"),
        created_at=entry.timestamp("created_at"),
        expires_at=entry.timestamp("expires_at"),
        enabled=entry.boolean("enabled", True),
    )
    entry.unknown(
        {
            "access_key_id",
            "secret_access_key",
            "principal_name",
            "allowed_scopes",
            "created_at",
            "expires_at",
            "enabled",
        }
    )
    return credential


def _role(entry: Table) -> RoleConfig:
    role_id = entry.string("role_id")
    if role_id == "":
        entry.error("role_id", "must not be empty")
    issuers = entry.strings("trusted_oidc_issuers")
    if not issuers:
        entry.error("trusted_oidc_issuers", "a role must trust at least one issuer")
    if entry.has("required_audiences") and entry.has("required_audience"):
        entry.error(
            "required_audience",
            "give 'required_audiences' or 'required_audience', not both",
        )
    audiences = entry.strings("required_audiences", allow_single=True) or entry.strings(
        "required_audience", allow_single=True
    )
    allow_any = entry.boolean("allow_any_audience", False)
    if not audiences and not allow_any:
        entry.error(
            "required_audiences",
            "a role must name the audiences it accepts (any token of a trusted "
            "issuer could otherwise be exchanged); set allow_any_audience = true "
            "if that is really meant",
        )
    maximum = entry.number("max_session_duration_secs", 3600, minimum=1, integer=True)
    if maximum < MIN_SESSION_SECONDS:
        entry.error(
            "max_session_duration_secs",
            f"must be at least {MIN_SESSION_SECONDS} (the shortest session), "
            f"not {maximum}",
        )
    conditions: dict[str, tuple[str, ...]] = {}
    table = entry.table("claim_conditions")
    for claim in table.mapping():
        globs = table.strings(claim, allow_single=True)
        if not globs:
            table.error(claim, "must name at least one value (a string or a list)")
        conditions[claim] = globs
    role = RoleConfig(
        role_id=role_id,
        name=entry.string("name", role_id),
        trusted_oidc_issuers=issuers,
        required_audiences=audiences,
        subject_conditions=entry.strings("subject_conditions"),
        allowed_scopes=_scopes(entry, "allowed_scopes"),
        max_session_duration_secs=maximum,
        allow_any_audience=allow_any,
        claim_conditions=conditions,
    )
    entry.unknown(
        {
            "role_id",
            "name",
            "trusted_oidc_issuers",
            "required_audiences",
            "required_audience",
            "subject_conditions",
            "allowed_scopes",
            "max_session_duration_secs",
            "allow_any_audience",
            "claim_conditions",
        }
    )
    return role


def _session_key(table: Table, name: str, value: str, key_id: str) -> SessionKey | None:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        table.error(name, "must be the standard base64 of 32 bytes")
        return None
    if len(raw) != 32:
        table.error(name, f"must be 32 bytes (AES-256), not {len(raw)}")
        return None
    return SessionKey(key_id=key_id, key=raw)


def _sts(table: Table) -> StsConfig:
    keys: list[SessionKey] = []
    ids: list[str] = []
    for entry in table.tables("keys", "id"):
        key_id = entry.string("id")
        ids.append(key_id)
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", key_id):
            entry.error("id", "must be 1 to 64 letters, digits, '.', '_' or '-'")
        value = entry.string("key", secret=True)
        key = _session_key(entry, "key", value, key_id)
        if key is not None:
            keys.append(key)
        entry.unknown({"id", "key"})
    if not table.has("keys") and os.environ.get("SESSION_TOKEN_KEY"):
        # The Rust system's way: one key, from the environment.
        key = _session_key(
            table, "SESSION_TOKEN_KEY", os.environ["SESSION_TOKEN_KEY"], "default"
        )
        if key is not None:
            keys.append(key)
    if len(set(ids)) != len(ids):
        table.error("keys", "key ids must be different")
    sts = StsConfig(
        keys=tuple(keys),
        jwks_refetch_interval=table.number(
            "jwks_refetch_interval", 30, minimum=0, integer=True
        ),
        jwks_failure_seconds=table.number(
            "jwks_failure_seconds", 30, minimum=0, integer=True
        ),
        http_timeout=table.number("http_timeout", 5.0, minimum=0.1),
        leeway_seconds=table.number("leeway_seconds", 60, minimum=0, integer=True),
        max_token_bytes=table.number(
            "max_token_bytes", 16384, minimum=1024, integer=True
        ),
        insecure_issuers=table.strings("insecure_issuers"),
    )
    table.unknown(
        {
            "keys",
            "jwks_refetch_interval",
            "jwks_failure_seconds",
            "http_timeout",
            "leeway_seconds",
            "max_token_bytes",
            "insecure_issuers",
        }
    )
    return sts


def _server(table: Table) -> ServerConfig:
    server = ServerConfig(
        listen=table.strings("listen", allow_single=True),
        domains=tuple(
            d.strip(".").lower() for d in table.strings("domains", allow_single=True)
        ),
        region=table.string("region", "us-east-1"),
        backend_connect_timeout=table.number(
            "backend_connect_timeout", 5.0, minimum=0.1
        ),
        backend_timeout=table.number("backend_timeout", 60.0, minimum=0.1),
        backend_max_connections_per_host=table.number(
            "backend_max_connections_per_host", 32, minimum=1, integer=True
        ),
        max_clock_skew=table.number("max_clock_skew", 900, minimum=1, integer=True),
        server_timing=table.boolean("server_timing", True),
        debug_errors=table.boolean("debug_errors", False),
        max_object_size=table.number(
            "max_object_size", 5 * 1024**4, minimum=1, integer=True
        ),
        max_xml_body_size=table.number(
            "max_xml_body_size", 2 * 1024 * 1024, minimum=1024, integer=True
        ),
        token_secret=table.string("token_secret", "", secret=True),
        shutdown_timeout=table.number("shutdown_timeout", 30.0, minimum=0),
        admin_listen=table.strings("admin_listen", allow_single=True),
    )
    table.unknown(
        {
            "shutdown_timeout",
            "admin_listen",
            "listen",
            "domains",
            "region",
            "backend_connect_timeout",
            "backend_timeout",
            "backend_max_connections_per_host",
            "max_clock_skew",
            "server_timing",
            "debug_errors",
            "max_object_size",
            "max_xml_body_size",
            "token_secret",
        }
    )
    return server


def _logging(table: Table) -> LoggingConfig:
    form = table.string("access_log_format", "text")
    if form not in ("text", "json"):
        table.error("access_log_format", f"must be 'text' or 'json', not {form!r}")
        form = "text"
    logging = LoggingConfig(
        access_log=table.boolean("access_log", True), access_log_format=form
    )
    table.unknown({"access_log", "access_log_format"})
    return logging


def _plugin(table: Table) -> PluginConfig:
    use = table.string("use")
    if use and not _PLUGIN_NAME.fullmatch(use):
        table.error(
            "use",
            f"must name a factory as 'package.module:name', not {use!r}",
        )
    options = table.table("options").mapping()
    table.unknown({"use", "options"})
    return PluginConfig(use=use, options=dict(options), where=table.where)


def _plugins(top: Table, name: str) -> tuple[PluginConfig, ...]:
    return tuple(_plugin(t) for t in top.tables(name, "use"))


def config_from_mapping(
    data: Mapping[str, Any], source: str = "<memory>", base: Path | None = None
) -> Config:
    """
    Validate an already-parsed document.

    :param data: the document, as TOML or JSON parsing gives it.
    :param source: a name for messages.
    :param base: the directory relative paths are resolved against.
    :raise ConfigError: listing every problem.
    """
    problems = Problems()
    top = Table(data, "", problems, base or Path.cwd())
    owner_id = top.string("owner_id", "multistore")
    owner_display_name = top.string("owner_display_name", owner_id)
    buckets = tuple(_bucket(t) for t in top.tables("buckets", "name"))
    roles = tuple(_role(t) for t in top.tables("roles", "role_id"))
    credentials = tuple(
        _credential(t) for t in top.tables("credentials", "access_key_id")
    )
    server = _server(top.table("server"))
    sts = _sts(top.table("sts"))
    logging = _logging(top.table("logging"))
    middleware = _plugins(top, "middleware")
    routes = _plugins(top, "routes")
    registry = _plugin(top.table("registry")) if top.has("registry") else None
    metering = read_metering(top.table("metering")) if top.has("metering") else None
    oidc_provider = read_oidc_provider(top)
    for key in data:
        if key not in _TOP_LEVEL:
            problems.error(
                f"top level, '{key}'",
                "unknown table or field" + suggest(key, _TOP_LEVEL),
            )

    _unique(problems, "buckets", "name", [b.name for b in buckets])
    _unique(problems, "roles", "role_id", [r.role_id for r in roles])
    _unique(
        problems, "credentials", "access_key_id", [c.access_key_id for c in credentials]
    )
    if roles and not sts.keys:
        problems.warn(
            "[sts]",
            "roles are configured but no session token key is ([[sts.keys]] or "
            "SESSION_TOKEN_KEY): STS is off",
        )
    role_ids = {r.role_id for r in roles}
    for bucket in buckets:
        for role in bucket.allowed_roles:
            if role not in role_ids:
                problems.warn(
                    f"[[buckets]] (name = {bucket.name!r}), field 'allowed_roles'",
                    f"no role has role_id {role!r}",
                )
    if oidc_provider is None:
        for bucket in buckets:
            if bucket.option("auth_type") == "oidc":
                problems.error(
                    f"[[buckets]] (name = {bucket.name!r}), field "
                    "'backend_options.auth_type'",
                    "needs [oidc_provider]: the daemon signs the tokens it trades",
                )
    if problems.errors:
        raise ConfigError(source, problems.errors)
    return Config(
        owner_id=owner_id,
        owner_display_name=owner_display_name,
        buckets=buckets,
        roles=roles,
        credentials=credentials,
        server=server,
        sts=sts,
        logging=logging,
        middleware=middleware,
        registry=registry,
        routes=routes,
        metering=metering,
        oidc_provider=oidc_provider,
        source=source,
        warnings=tuple(problems.warnings),
    )


def _unique(problems: Problems, table: str, name: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen and value:
            problems.error(f"[[{table}]] ({name} = {value!r})", f"duplicate {name}")
        seen.add(value)


def load_config(path: str | os.PathLike[str]) -> Config:
    """
    Read and validate a configuration file: JSON if its name ends in
    ``.json``, TOML otherwise.

    :raise ConfigError: if the file cannot be read or parsed, or is invalid.
    """
    path = Path(path)
    source = str(path)
    parse: Callable[[bytes], Any]
    if path.suffix.lower() == ".json":
        parse = json.loads
    else:
        parse = lambda raw: tomllib.loads(raw.decode("utf-8"))  # noqa: E731
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(source, [f"cannot read the file: {e.strerror}"]) from None
    try:
        data = parse(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(
            source,
            [f"not valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'}: {e}"],
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(source, ["the document must be a table (object) at the top"])
    return config_from_mapping(data, source, path.parent.resolve())
