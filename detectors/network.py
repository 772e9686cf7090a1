"""What counts as "the same network" for a token's caller.

The autonomous system when the source carries an ASN; otherwise the IPv4 /24 or IPv6 /48
the address falls in (a NAT pool or a cloud region, not a single host); ``None`` when the
event says nothing about where it came from.
"""

from __future__ import annotations

import ipaddress

from ingest import AuditEvent


def network_of(event: AuditEvent) -> str | None:
    src = event.source
    if src is None:
        return None
    if src.asn is not None:
        return f"as{src.asn}"
    if src.ip:
        try:
            addr = ipaddress.ip_address(src.ip)
        except ValueError:
            return f"ip:{src.ip}"
        prefix = 24 if addr.version == 4 else 48
        return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
    return None
