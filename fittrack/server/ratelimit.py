"""The client address that failed logins count against (fittrack/core/domain/throttle.AddressPolicy).

The failures themselves are kept in the account database, so that every
server behind the load balancer counts the same ones.

Behind a proxy or load balancer every call seems to come from it. List it in
FITTRACK_TRUSTED_PROXIES: for a call from one of those addresses the client is
the last entry of the `x-forwarded-for` metadata, the one HAProxy's
`option forwardfor` adds. From any other peer the header is ignored, since
any client can send it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDED_FOR = "x-forwarded-for"


def client_address(
    peer: str | None,
    metadata: Iterable[tuple[str, str | bytes]] | None = None,
    trusted_proxies: Sequence[Network] = (),
) -> str:
    """The address to limit, from grpc's peer string ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678", "unix:...")
    and, when that peer is a trusted proxy, the x-forwarded-for it added.

    IPv6 clients are grouped by /64, the block one subscriber usually holds, so
    that stepping through one's own addresses does not reset the limit.
    """
    if not peer:
        return "unknown"
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return kind  # unix sockets and the like: one bucket each
    host = rest.rpartition(":")[0] or rest
    address = _parse(host.strip("[]"))
    if address is None:
        return host
    if trusted_proxies and any(address in network for network in trusted_proxies):
        forwarded = _forwarded(metadata)
        if forwarded is not None:
            address = forwarded
    return _bucket(address)


def _forwarded(metadata: Iterable[tuple[str, str | bytes]] | None) -> Address | None:
    """The last entry of the last x-forwarded-for: what the proxy itself added after whatever the client sent."""
    last = None
    for key, value in metadata or ():
        if key.lower() == FORWARDED_FOR:
            last = value
    if last is None:
        return None
    if isinstance(last, bytes):
        last = last.decode("ascii", "replace")
    return _parse(last.rpartition(",")[2].strip().strip("[]"))


def _parse(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    # A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: they are IPv4 clients.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _bucket(address: Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)
