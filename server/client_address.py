"""Who is calling: the connection's address, or what the trusted proxies in front of us say it is.

Behind a load balancer every connection comes from the balancer. Each proxy appends the address it
received the request from to ``X-Forwarded-For``, so reading that header from the right, the first
hop that is not one of our own proxies (``BI_TRUSTED_PROXIES``) is the client; everything to its
left was written by the client and is ignored. ``X-Real-Ip`` is never read: a client can send it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The networks whose connections may speak for a client through ``X-Forwarded-For``."""

    def __init__(self, cidrs: Iterable[str] = ()):
        """``ValueError`` naming the entry that is not a CIDR (``10.0.0.0/16``) or address."""
        self.networks: tuple[Network, ...] = tuple(_network(cidr) for cidr in cidrs)

    def trusts(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client_address(self, peer: str, forwarded_for: Iterable[str] = ()) -> str:
        """The client's address for a connection from ``peer`` with these ``X-Forwarded-For`` values."""
        if not self.trusts(peer):
            return peer
        address = peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            if _ip(hop) is None:
                break  # not written by a proxy of ours: the last hop they vouched for stands
            address = hop
            if not self.trusts(hop):
                break
        return address


    def is_https(self, peer: str, protocol: str, forwarded_proto: Iterable[str] = ()) -> bool:
        """Whether the client reached us over HTTPS: on this connection, or, for a connection from one
        of our proxies, as the last ``X-Forwarded-Proto`` hop (the one our proxy wrote) says."""
        if protocol == "https":
            return True
        hops = [hop.strip().lower() for value in forwarded_proto for hop in value.split(",")]
        return self.trusts(peer) and bool(hops) and hops[-1] == "https"


def _network(cidr: str) -> Network:
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(f"{cidr!r} is not a network such as 10.0.0.0/16: {exc}") from None


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip
