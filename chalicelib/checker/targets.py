"""Parse what a user typed as a target (host, host:port, [v6]:port, IP, IDN, URL) into a Target."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

from chalicelib.errors import BadInput

_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_PORT = re.compile(r"^[0-9]{1,5}$")
# A WHATWG-style IPv4 part: decimal, 0x-hex or 0-octal (the forms inet_aton also accepts).
_IPV4_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")


@dataclass(frozen=True)
class Target:
    """A host and port to check; `host` is shown in Unicode, `host_ascii` holds the A-labels."""

    host: str
    host_ascii: str
    port: int
    is_ip: bool

    @property
    def key(self) -> str:
        """Return the canonical "host_ascii:port" (IPv6 in brackets) used as a storage key."""
        return f"{_bracket(self.host_ascii)}:{self.port}"

    @property
    def display(self) -> str:
        """Return "host:port" as a person reads it (Unicode host, IPv6 in brackets)."""
        return f"{_bracket(self.host)}:{self.port}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_loose_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """Read an IPv4 address in any form inet_aton accepts (2130706433, 0x7f.1, 127.1, 017.0.0.1)."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.match(part) for part in parts):
        return None
    try:
        numbers = [_ipv4_number(part) for part in parts]
    except ValueError:
        return None
    *head, last = numbers
    if any(number > 255 for number in head) or last >= 256 ** (5 - len(parts)):
        return None
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    return int(part, 10)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if ":" in text:
        return None
    return parse_loose_ipv4(text)


def _ascii_host(host: str) -> str:
    """Return the A-label form of a DNS name (IDNA 2008 with UTS 46 mapping), or raise BadInput."""
    if not host or len(host) > 253:
        raise BadInput(f"not a valid host name: {host!r}")
    try:
        if host.isascii():
            # Plain ASCII names skip IDNA, which refuses the underscores some real hosts carry;
            # A-labels among them must still decode.
            ascii_host = host.lower()
            for label in ascii_host.split("."):
                if label.startswith("xn--"):
                    idna.decode(label)
        else:
            ascii_host = idna.encode(host, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as error:
        raise BadInput(f"not a valid host name: {host!r} ({error})") from error
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise BadInput(f"not a valid host name: {host!r}")
    return ascii_host


def _unicode_host(ascii_host: str) -> str:
    try:
        return idna.decode(ascii_host)
    except (idna.IDNAError, UnicodeError):
        return ascii_host


def _fold(host: str) -> str:
    """Map a non-ASCII host with UTS 46 (full-width digits, ideographic dots) before reading it.

    Resolvers apply this mapping too, so 127.0.0.1 written in full-width digits and ideographic
    dots must be read as 127.0.0.1 here, before deciding whether the host is an address or a name.
    """
    if host.isascii():
        return host
    try:
        return idna.uts46_remap(host, std3_rules=False, transitional=False)
    except (idna.IDNAError, UnicodeError) as error:
        raise BadInput(f"not a valid host name: {host!r} ({error})") from error


def _port(text: str) -> int:
    if not _PORT.match(text) or not 1 <= int(text) <= 65535:
        raise BadInput(f"not a valid port: {text!r} (use 1-65535)")
    return int(text)


def _split(text: str, default_port: int) -> tuple[str, int]:
    """Split host and port, accepting URLs, [v6]:port, bare IPv6 and host:port."""
    if "://" in text:
        try:
            url = urlsplit(text)
            host, port = url.hostname, url.port
        except ValueError as error:
            raise BadInput(f"not a valid URL: {text!r} ({error})") from error
        if not host:
            raise BadInput(f"no host in URL: {text!r}")
        return host, port or default_port
    text = re.split(r"[/?#]", text, maxsplit=1)[0]
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")) or ":" not in host:
            raise BadInput(f"not a valid target: {text!r} (use [IPv6]:port)")
        return host, _port(rest[1:]) if rest else default_port
    if text.count(":") > 1:
        return text, default_port  # a bare IPv6 address
    host, colon, port = text.partition(":")
    return host, _port(port) if colon else default_port


def parse_target(text: str, default_port: int = 443) -> Target:
    """Parse a target as typed by a user; raise BadInput with a clear message when it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise BadInput("no target given")
    host, port = _split(text.strip(), default_port)
    if not 1 <= port <= 65535:
        raise BadInput(f"not a valid port: {port} (use 1-65535)")
    host = _fold(host.strip())
    if host.endswith("."):
        host = host[:-1]  # the root label: "example.com." is "example.com"
    address = _parse_ip(host)
    if address is not None:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise BadInput(f"zoned IPv6 addresses are not supported: {host!r}")
        return Target(host=str(address), host_ascii=str(address), port=port, is_ip=True)
    if ":" in host:
        raise BadInput(f"not a valid address: {host!r}")
    if _IPV4_PART.match(host.split(".")[-1]):
        # A numeric last label is an IPv4 address to every resolver; refuse malformed ones.
        raise BadInput(f"not a valid IPv4 address: {host!r}")
    ascii_host = _ascii_host(host)
    return Target(host=_unicode_host(ascii_host), host_ascii=ascii_host, port=port, is_ip=False)
