# -*- test-case-name: tests.unit.test_metering -*-
"""
Who is metered, and which rule applies to them.

A caller is its principal when it signed its request, and its address when
it did not: anonymous callers are counted one address at a time. The
address is the peer's, unless the peer is a trusted proxy, in which case
``X-Forwarded-For`` is read from the right, past every trusted proxy, to the
first address that is not one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TypeVar

from attrs import frozen

from multistore.auth.authorize import bucket_matches
from multistore.config import (
    ANONYMOUS_PRINCIPAL,
    ANY_AUTHENTICATED,
    BandwidthQuota,
    RateLimit,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@frozen
class Caller:
    """
    Whom a request is counted against.

    :ivar principal: the authenticated principal, or ``None``.
    :ivar address: the client's address, if known.
    """

    principal: str | None
    address: str | None

    @property
    def key(self) -> str:
        """
        :return: the name counters are kept under: the principal, or
            ``anonymous@ADDRESS``.
        """
        if self.principal is not None:
            return self.principal
        return f"{ANONYMOUS_PRINCIPAL}@{self.address or 'unknown'}"


def trusted_networks(networks: Sequence[str]) -> tuple[Network, ...]:
    """
    :return: the parsed ``trusted_proxies``.
    """
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """
    :param peer: the address the connection came from.
    :param forwarded_for: the request's ``X-Forwarded-For`` (all of them,
        joined with commas).
    :param trusted: the proxies whose word is taken.
    :return: the client's address.
    """
    if peer is None or not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    address = peer
    for hop in reversed(hops):
        address = hop
        if not _trusted(hop, trusted):
            break
    return address


def _principal_matches(pattern: str | None, principal: str | None) -> bool:
    if pattern is None:
        return True
    if pattern == ANONYMOUS_PRINCIPAL:
        return principal is None
    if pattern == ANY_AUTHENTICATED:
        return principal is not None
    return pattern == principal


Rule = TypeVar("Rule", RateLimit, BandwidthQuota)


def first_match(
    rules: Sequence[Rule], bucket: str | None, caller: Caller
) -> tuple[int, Rule] | None:
    """
    :return: the first rule that covers ``bucket`` and ``caller``, with its
        index; a request that names no bucket (ListBuckets) is covered by
        rules for every bucket (``*``).
    """
    for index, rule in enumerate(rules):
        if bucket is None:
            if rule.bucket != "*":
                continue
        elif not bucket_matches(rule.bucket, bucket):
            continue
        if _principal_matches(rule.principal, caller.principal):
            return index, rule
    return None
