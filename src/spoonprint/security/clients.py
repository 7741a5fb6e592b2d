"""Who is asking: the client address, believing ``X-Forwarded-For`` only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

PRIVATE_AND_LOOPBACK = (
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
    "169.254.0.0/16", "fe80::/10",
)  # fmt: skip


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


# Every request asks this of its peer (and the guard asks again): the same few addresses, so
# parse each once. Bounded, so that a scan from many addresses cannot grow it.
@lru_cache(maxsize=4096)
def parse_address(value: str) -> Address | None:
    try:
        return ipaddress.ip_address(value.strip().split("%")[0])
    except ValueError:
        return None


def within(address: Address | None, networks: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[Network]
) -> str:
    """The address to judge: the peer, unless the peer is a trusted proxy, in which case the
    right-most address in ``X-Forwarded-For`` that is not itself a trusted proxy (the left part
    of that header is whatever the client chose to write)."""
    address = parse_address(peer or "")
    if address is None:
        return peer or "unknown"
    if not forwarded_for or not within(address, trusted_proxies):
        return str(address)
    for hop in reversed(forwarded_for.split(",")):
        hop_address = parse_address(hop)
        if hop_address is None:
            return str(address)  # a garbled header from our own proxy: trust the proxy only
        if not within(hop_address, trusted_proxies):
            return str(hop_address)
    return str(address)
