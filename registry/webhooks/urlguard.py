"""Where a webhook may post: http(s) only, to addresses that are not the host's own secrets.

A URL is resolved and every address it resolves to is judged: link-local (169.254/16,
fe80::/10, where cloud metadata services answer), metadata addresses, unspecified and
multicast addresses are always refused; loopback and private ranges only unless the team
policy's `webhook_allow_private` is set. The check runs when a webhook is added and again
before each delivery (DNS can change), and the delivery connects to the address judged.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from registry.errors import UrlRefused

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: private in practice


@dataclass(frozen=True)
class Target:
    """A URL judged safe: where to connect (`address`) and what to ask for."""

    scheme: str
    host: str
    port: int
    address: str
    path: str


def why_refused(ip: Address, allow_private: bool) -> str | None:
    """None when webhooks may reach `ip`, else what kind of address it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if allow_private:
        return None
    if ip.is_loopback:
        return "loopback"
    if ip.is_private or ip in SHARED or ip.is_reserved:
        return "private"
    return None


def check_url(url: str, allow_private: bool) -> Target:
    """Parse and resolve `url`; a refusal says which address and why, in one line."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise UrlRefused(f"webhook URL {url!r}: only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused(f"webhook URL {url!r}: no credentials in the URL; give a secret with --secret-env")
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise UrlRefused(f"webhook URL {url!r}: {e}") from None
    if not host:
        raise UrlRefused(f"webhook URL {url!r} names no host")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise UrlRefused(f"webhook URL {url!r}: cannot resolve {host}: {e}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for a in addresses:
        why = why_refused(ipaddress.ip_address(a.split("%")[0]), allow_private)
        if why is not None:
            hint = "" if why not in ("loopback", "private") else (
                " (a policy admin may allow private receivers: registry policy set webhook_allow_private true)"
            )  # fmt: skip
            raise UrlRefused(f"webhook URL {url!r}: {host} resolves to {a}, {why}; refused{hint}")
    if not addresses:
        raise UrlRefused(f"webhook URL {url!r}: {host} resolves to no address")
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(parts.scheme, host, port, addresses[0], path)


def shown(url: str) -> str:
    """The URL without its query string (which may carry a token), for the audit log and lists."""
    parts = urlsplit(url)
    return parts._replace(query="…" if parts.query else "", fragment="").geturl()
