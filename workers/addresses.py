"""Which network addresses the studio may send requests to: webhooks and the
cloud engine's downloads go to public hosts only, so a URL someone else
chose cannot make a server or worker fetch from its own network (the cloud
metadata service, the database, the admin)."""

from __future__ import annotations

import ipaddress

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public_address(address: str) -> bool:
    """Whether an IP address is a public unicast one: not loopback, private,
    link-local (169.254.169.254, the cloud metadata service, is one),
    unique-local, shared (100.64/10), documentation, reserved, multicast or
    unspecified, nor an IPv6 form of such an IPv4 address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(str(embedded)):
            return False
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_unspecified
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_reserved
    )
