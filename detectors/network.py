"""What counts as "the same network" for a token's caller.

The autonomous system when the source carries an ASN; otherwise the IPv4 /24 or IPv6 /48
the address falls in (a NAT pool or a cloud region, not a single host); ``None`` when the
event says nothing about where it came from.
"""

from __future__ import annotations

import ipaddress

from ingest import AuditEvent

_BY_IP: dict[str, str] = {}


def network_of(event: AuditEvent) -> str | None:
    src = event.source
    if src is None:
        return None
    if src.asn is not None:
        return f"as{src.asn}"
    ip = src.ip
    if ip:
        net = _BY_IP.get(ip)
        if net is None:
            net = _network_of_ip(ip)
            if len(_BY_IP) >= 65536:  # callers' addresses repeat; never grow without bound
                _BY_IP.clear()
            _BY_IP[ip] = net
        return net
    return None


def _network_of_ip(ip: str) -> str:
    """The /24 or /48 of an address (``ipaddress`` costs microseconds: memoised above)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return f"ip:{ip}"
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
