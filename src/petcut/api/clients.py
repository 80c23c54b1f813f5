"""Who a request comes from, as the owner of a rate-limit bucket (docs/security.md).

The peer address; ``X-Forwarded-For`` is believed only when the peer is in ``PETCUT_TRUSTED_PROXIES``, and
then the right-most address that is not a trusted proxy is the client. IPv6 clients are grouped by /64
(one subscriber's prefix), so rotating addresses does not give new buckets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: X-Forwarded-For hops looked at, from the right
_MAX_HOPS = 64


def parse_ip(value: str) -> IPAddress | None:
    """An address from a peer or an X-Forwarded-For hop ("1.2.3.4", "1.2.3.4:80", "[::1]:80", '"::1"')."""
    text = value.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientResolver:
    """Who a request comes from, as a bucket owner: an IPv4 address or an IPv6 /64."""

    def __init__(self, trusted: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(item, strict=False) for item in trusted]

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def address(self, scope: Scope) -> IPAddress | None:
        client = scope.get("client")
        peer = parse_ip(str(client[0])) if client else None
        if peer is None or not self.networks or not self.is_trusted(peer):
            return peer
        hops: list[str] = []
        for name, value in scope.get("headers") or ():
            if name.lower() == b"x-forwarded-for":
                hops.extend(value.decode("latin-1").split(","))
        current = peer
        for hop in reversed(hops[-_MAX_HOPS:]):
            address = parse_ip(hop)
            if address is None:  # garbage where a trusted proxy's hop should be: stop at that proxy
                break
            current = address
            if not self.is_trusted(address):
                break
        return current

    def client_id(self, scope: Scope) -> str:
        address = self.address(scope)
        if address is None:
            return "unknown"
        if isinstance(address, ipaddress.IPv6Address):
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)
