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
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

TLS = "tls"
# Protocols that start in plain text and upgrade to TLS, with the port each listens on by default.
STARTTLS_PORTS = {
    "smtp": 25,
    "submission": 587,
    "imap": 143,
    "pop3": 110,
    "ftp": 21,
    "xmpp": 5222,
    "ldap": 389,
    "postgres": 5432,
}
# URL schemes whose service speaks TLS from the first byte. http:// is read as the web site a
# user pasted from the address bar, checked over TLS like https://.
DIRECT_TLS_PORTS = {
    "https": 443,
    "http": 443,
    "smtps": 465,
    "imaps": 993,
    "pop3s": 995,
    "ldaps": 636,
}
_ALIASES = {"postgresql": "postgres"}
PROTOCOLS = (TLS, *STARTTLS_PORTS)


@dataclass(frozen=True)
class Target:
    """A host and port to check; `host` is shown in Unicode, `host_ascii` holds the A-labels."""

    host: str
    host_ascii: str
    port: int
    is_ip: bool
    protocol: str = TLS  # "tls" (TLS from the first byte) or the STARTTLS protocol's name

    @property
    def key(self) -> str:
        """Return the canonical storage key: "host_ascii:port", or "smtp://host_ascii:port".

        Plain TLS keeps the form stored before STARTTLS existed, so old subscriptions still
        match; parse_target(key) gives this target back.
        """
        return self._with_protocol(f"{_bracket(self.host_ascii)}:{self.port}")

    @property
    def display(self) -> str:
        """Return "host:port" (or "smtp://host:port") as a person reads it (Unicode host)."""
        return self._with_protocol(f"{_bracket(self.host)}:{self.port}")

    @property
    def shown(self) -> str:
        """Return the target as people write it: the port only when it is not the default."""
        if self.port != protocol_port(self.protocol):
            return self.display
        return self._with_protocol(_bracket(self.host))

    def _with_protocol(self, where: str) -> str:
        return where if self.protocol == TLS else f"{self.protocol}://{where}"


def protocol_port(protocol: str) -> int:
    """Return the port a protocol listens on by default (443 for direct TLS)."""
    return STARTTLS_PORTS.get(protocol, 443)


def protocol_name(text: str) -> str:
    """Return a protocol as the service names it ("tls", "smtp", ...), or raise BadInput."""
    name = text.strip().lower() if isinstance(text, str) else ""
    name = _ALIASES.get(name, name)
    if name not in PROTOCOLS:
        raise BadInput(f"unknown protocol: {str(text)[:40]!r} (use one of {', '.join(PROTOCOLS)})")
    return name


def _scheme(text: str) -> tuple[str | None, int | None]:
    """Return the protocol and default port a URL's scheme names, or (None, None) without one."""
    match = _SCHEME.match(text)
    if not match:
        return None, None
    scheme = match.group(1).lower()
    scheme = _ALIASES.get(scheme, scheme)
    if scheme in STARTTLS_PORTS:
        return scheme, STARTTLS_PORTS[scheme]
    if scheme in DIRECT_TLS_PORTS:
        return TLS, DIRECT_TLS_PORTS[scheme]
    known = ", ".join(f"{name}://" for name in (*DIRECT_TLS_PORTS, *STARTTLS_PORTS))
    raise BadInput(f"unknown scheme {scheme[:20]!r}:// (use one of {known})")


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
        if port is not None:
            # urlsplit reads ":0" (and ":00000") as a port; 0 is never one to check.
            _port(str(port))
        return host, default_port if port is None else port
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


def parse_target(text: str, default_port: int | None = None, protocol: str | None = None) -> Target:
    """Parse a target as typed by a user; raise BadInput with a clear message when it is not one.

    A URL's scheme names the protocol (smtp://host upgrades with STARTTLS on port 25,
    imaps://host is TLS on 993). `protocol` (e.g. from --starttls) applies to a target without
    a scheme and must agree with one that has it. The port is the one written, else
    `default_port`, else the protocol's default.
    """
    if not isinstance(text, str) or not text.strip():
        raise BadInput("no target given")
    text = text.strip()
    wanted = protocol_name(protocol) if protocol is not None else None
    named, scheme_port = _scheme(text)
    if named is not None and wanted is not None and named != wanted:
        raise BadInput(f"the scheme of {text[:60]!r} differs from protocol {wanted!r}")
    protocol = named or wanted or TLS
    fallback = scheme_port or protocol_port(protocol)
    host, port = _split(text, fallback if default_port is None else default_port)
    if not 1 <= port <= 65535:
        raise BadInput(f"not a valid port: {port} (use 1-65535)")
    host = _fold(host.strip())
    if host.endswith("."):
        host = host[:-1]  # the root label: "example.com." is "example.com"
    address = _parse_ip(host)
    if address is not None:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise BadInput(f"zoned IPv6 addresses are not supported: {host!r}")
        return Target(
            host=str(address), host_ascii=str(address), port=port, is_ip=True, protocol=protocol
        )
    if ":" in host:
        raise BadInput(f"not a valid address: {host!r}")
    if _IPV4_PART.match(host.split(".")[-1]):
        # A numeric last label is an IPv4 address to every resolver; refuse malformed ones.
        raise BadInput(f"not a valid IPv4 address: {host!r}")
    ascii_host = _ascii_host(host)
    return Target(
        host=_unicode_host(ascii_host),
        host_ascii=ascii_host,
        port=port,
        is_ip=False,
        protocol=protocol,
    )
