"""Decide whether the public service may probe a target: refuse private and reserved addresses.

The guard resolves a name once and returns the addresses it approved; the probe connects to those
very addresses, so a name cannot resolve to a public address for the guard and a private one for
the connection (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence

from chalicelib.checker.targets import Target, parse_loose_ipv4
from chalicelib.errors import TargetNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


class ResolutionFailed(Exception):
    """A name could not be resolved; the message says why in words a person understands."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve a name with the system resolver; return its addresses, duplicates removed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ResolutionFailed(f"could not resolve {host}: {_gai_reason(error)}") from error
    except UnicodeError as error:
        raise ResolutionFailed(f"could not resolve {host}: not a valid name") from error
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise ResolutionFailed(f"could not resolve {host}: it has no address")
    return addresses


def _gai_reason(error: socket.gaierror) -> str:
    reasons = {
        socket.EAI_NONAME: "no such host",
        socket.EAI_AGAIN: "the DNS server did not answer (temporary failure)",
        socket.EAI_FAIL: "the DNS server failed",
    }
    nodata = getattr(socket, "EAI_NODATA", None)
    if nodata is not None:
        reasons[nodata] = "it has no address"
    return reasons.get(error.errno, error.strerror or str(error))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address carried by a v4-mapped, 6to4 or NAT64 IPv6 address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal_reason(address: IPAddress | str) -> str | None:
    """Return why an address may not be probed by the public service, or None when it may."""
    if isinstance(address, str):
        address = parse_address(address)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a link-local (zoned) address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = refusal_reason(embedded)
            return f"{reason} (embedded in {address})" if reason else None
        if address.teredo is not None:
            return "a Teredo tunnel address"
        if address.is_site_local:
            # fec0::/10 is deprecated (RFC 3879) yet still routed inside some networks, and
            # ipaddress counts it as global.
            return "a site-local address"
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.version == 4 and address in _SHARED, "a shared (carrier-grade NAT) address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        # Anything else the IANA registries do not list as globally reachable.
        (not address.is_global, "a special-purpose address"),
    )
    return next((reason for failed, reason in checks if failed), None)


def parse_address(text: str) -> IPAddress:
    """Parse an IP address in any spelling a resolver would accept (127.1, 0x7f.1, [::1])."""
    text = text.strip().strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        loose = parse_loose_ipv4(text)
        if loose is None:
            raise ValueError(f"not an IP address: {text!r}") from None
        return loose


def check_address(address: str, shown_as: str | None = None) -> None:
    """Raise TargetNotAllowed when an address may not be probed by the public service."""
    reason = refusal_reason(address)
    if reason:
        via = f"{shown_as} resolves to {address}, " if shown_as and shown_as != address else ""
        raise TargetNotAllowed(
            f"{via}{address if not via else 'which'} is {reason}: "
            "sslnotify does not check private or reserved networks"
        )


def resolve(target: Target, resolver: Resolver | None = None) -> list[str]:
    """Return the addresses to connect to: the target's own IP, or what the name resolves to."""
    if target.is_ip:
        return [target.host_ascii]
    return list((resolver or system_resolver)(target.host_ascii, target.port))


def check_name(target: Target) -> None:
    """Raise TargetNotAllowed for a name local by definition (localhost), before any lookup."""
    name = target.host_ascii
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        raise TargetNotAllowed(f"{target.host} is a local name: sslnotify does not check it")


def resolve_allowed(target: Target, resolver: Resolver | None = None) -> list[str]:
    """Resolve a target and return its addresses; raise TargetNotAllowed if any is not public."""
    check_name(target)
    addresses = resolve(target, resolver)
    # One bad address refuses the whole name: the connection could land on any of them.
    for address in addresses:
        check_address(address, shown_as=target.host)
    return addresses
