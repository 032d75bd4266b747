"""Who the client is, when a reverse proxy stands in front: `X-Forwarded-For` is believed only from a proxy
listed in LIFEDESIGN_TRUSTED_PROXIES (none by default), so a client cannot choose its own address — and
with it its own per-client rate-limit bucket or the address in the audit log.

The header is read from the right: the last address was added by the proxy that connected to us; addresses
added by further trusted proxies are skipped; the first untrusted one is the client.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from litestar.connection import ASGIConnection


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _trusted(address: str, trusted: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(trusted))


def client_address(connection: ASGIConnection, trusted: tuple[str, ...]) -> str:
    peer = connection.client.host if connection.client else "unknown"
    if not trusted or not _trusted(peer, trusted):
        return peer
    forwarded = [part.strip() for part in ",".join(connection.headers.getall("x-forwarded-for", [])).split(",")]
    for address in reversed([part for part in forwarded if part]):
        if not _trusted(address, trusted):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return peer  # garbage from beyond our proxies: keep the proxy's address
    return peer
