# -*- test-case-name: tests.unit.test_cli -*-
"""
The ``multistore`` command: tools around the daemon.

``multistore check-config FILE`` validates a configuration (making the
plug-ins it names, as the daemon would) and explains each problem;
``multistore keygen session-token`` and ``multistore keygen oidc`` print
new key material; ``multistore usage --since 1h`` prints what each
bucket's callers moved, from the usage records in Redis. The daemon itself runs under ``twistd multistore``
or ``python -m twisted multistore``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from multistore import __version__
from multistore.configfile import load_config
from multistore.configtable import ConfigError
from multistore.plugins import load_plugins


def check_config(path: str, out: TextIO) -> int:
    """
    Validate the configuration at ``path``, writing a report to ``out``.

    :return: the exit status: 0 if valid, 1 if not.
    """
    from twisted.internet import reactor

    try:
        config = load_config(path)
        load_plugins(config, reactor)
    except ConfigError as e:
        out.write(e.explain() + "\n")
        return 1
    out.write(
        f"{path}: OK: {len(config.buckets)} buckets, {len(config.roles)} roles, "
        f"{len(config.credentials)} credentials\n"
    )
    for bucket in config.buckets:
        prefix = f" (prefix {bucket.backend_prefix!r})" if bucket.backend_prefix else ""
        access = ", anonymous reads" if bucket.anonymous_access else ""
        out.write(f"  bucket {bucket.name}: {bucket.backend_type}{prefix}{access}\n")
    metering = config.metering
    if metering is not None:
        out.write(
            f"  metering: {metering.store} store, {len(metering.rate_limits)} rate "
            f"limits, {len(metering.bandwidth_quotas)} bandwidth quotas"
            + (f", usage log {metering.usage_log}" if metering.usage_log else "")
            + "\n"
        )
    provider = config.oidc_provider
    if provider is not None:
        out.write(
            f"  oidc provider: {provider.issuer}, keys "
            + ", ".join(k.id for k in provider.keys)
            + " (the first signs)\n"
        )
    for kind, plugins in (
        ("middleware", config.middleware),
        ("registry", (config.registry,) if config.registry else ()),
        ("route", config.routes),
    ):
        for plugin in plugins:
            out.write(f"  {kind}: {plugin.use}\n")
    for warning in config.warnings:
        out.write(f"  warning: {warning}\n")
    return 0


def usage_command(
    path: str,
    since: str,
    bucket: str | None,
    principal: str | None,
    as_json: bool,
    out: TextIO,
) -> int:
    """
    Print what each bucket's callers moved in the last ``since``, from the
    usage records in the Redis that ``[metering]`` names.

    :return: the exit status.
    """
    from multistore.metering.counters import Keys
    from multistore.metering.redisstore import redis_client, usage_records
    from multistore.metering.report import (
        parse_duration,
        summarize,
        write_json,
        write_table,
    )

    try:
        seconds = parse_duration(since)
        config = load_config(path)
    except ValueError as e:
        out.write(f"multistore usage: {e}\n")
        return 2
    except ConfigError as e:
        out.write(e.explain() + "\n")
        return 1
    metering = config.metering
    if metering is None or metering.store != "redis":
        out.write(
            f"{path}: usage records are kept in Redis ([metering] store = "
            '"redis"); this configuration keeps none to read\n'
        )
        return 1
    keys = Keys(metering.key_prefix)
    try:
        records = usage_records(redis_client(metering.redis_url, 5.0), keys, seconds)
    except Exception as e:
        out.write(f"multistore usage: cannot read {metering.redis_url}: {e}\n")
        return 1
    rows = summarize(records, keys, bucket=bucket, principal=principal)
    if as_json:
        write_json(rows, seconds, out)
    else:
        write_table(rows, out)
    return 0


def keygen(kind: str, out: TextIO) -> int:
    """
    Print new key material of ``kind``.

    :return: the exit status.
    """
    if kind == "session-token":
        from multistore.auth.sessions import generate_key

        out.write(generate_key() + "\n")
        return 0
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    out.write(pem.decode("ascii"))
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """
    Run the ``multistore`` command.
    """
    parser = argparse.ArgumentParser(
        prog="multistore",
        description="Tools for the multistore S3 gateway. The daemon runs as "
        "'twistd multistore' or 'python -m twisted multistore'.",
    )
    parser.add_argument(
        "--version", action="version", version=f"multistore {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument(
        "file", help="the configuration file (TOML, or JSON by extension)"
    )
    gen = commands.add_parser("keygen", help="print new key material")
    gen.add_argument(
        "kind",
        choices=["session-token", "oidc"],
        help="session-token: a base64 AES-256 key for sealing STS session tokens; "
        "oidc: an RSA private key (PKCS#8 PEM) for the OIDC provider",
    )
    use = commands.add_parser(
        "usage", help="bytes and requests per bucket and caller, from Redis"
    )
    use.add_argument(
        "--config",
        default="/etc/multistore/multistore.toml",
        help="the daemon's configuration (its [metering] names the Redis)",
    )
    use.add_argument(
        "--since", default="1h", help="how far back: 90s, 30m, 1h, 7d (default 1h)"
    )
    use.add_argument("--bucket", help="only this virtual bucket")
    use.add_argument(
        "--principal", help="only this caller ('anonymous' for every anonymous one)"
    )
    use.add_argument("--json", action="store_true", help="print JSON, not a table")
    args = parser.parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file, out)
    if args.command == "usage":
        return usage_command(
            args.config, args.since, args.bucket, args.principal, args.json, out
        )
    return keygen(args.kind, out)


if __name__ == "__main__":
    raise SystemExit(main())
