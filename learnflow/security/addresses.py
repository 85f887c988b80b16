"""Trust boundaries of a call: who the client is, and which request id it may name.

The client address is the rightmost hop of `X-Forwarded-For` (plus the TCP peer) that is not a
configured trusted proxy, and always a valid IP address: a client can neither choose its
apparent address nor get arbitrary text stored as one. A client's request id is taken only when
it is a short plain token.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """CIDR blocks (or single addresses); ValueError names the first bad entry."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR block") from None
    return tuple(networks)


def peer_host(peer: str) -> str:
    """The host part of grpc's peer string: "ipv4:127.0.0.1:5555", "ipv6:[::1]:5555"."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return rest or peer


def _ip(value: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def client_address(forwarded: Iterable[str], peer: str, trusted: Iterable[Network]) -> str:
    """The rightmost hop of `forwarded` + `peer` that is not a trusted proxy.

    Hops are read leftwards only while the current one is a trusted proxy (so only what trusted
    proxies appended counts); when every hop is trusted, the leftmost. If the hop to use is not
    an IP address, the peer; a peer that is not an IP (a Unix socket) is returned as it is.
    """
    networks = tuple(trusted)
    peer_ip = _ip(peer)
    if peer_ip is None:
        return peer
    current = peer_ip
    hops = [part for value in forwarded for part in value.split(",")]
    while hops and any(current in network for network in networks):
        previous = _ip(hops.pop())
        if previous is None:
            return str(peer_ip)
        current = previous
    return str(current)


def request_id(given: str) -> str:
    """The client's request id when it matches `REQUEST_ID`, else a fresh one."""
    # 128 random bits as 32 hex digits, like uuid4().hex without building a UUID (4x cheaper).
    return given if REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
