"""The rules a browser applies to each certificate of a path, as plain-word refusals.

basicConstraints (CA flag, path length), keyUsage (keyCertSign), extendedKeyUsage (serverAuth,
for the leaf and the intermediates) and name constraints (DNS and IP subtrees, applied to the
leaf's subjectAltName). Each function returns why a certificate may not take its place in the
path, or None when it may. Path building (trust.py) tries another path on a refusal.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from chalicelib.checker.certparts import extension, label, parts

SERVER_USAGES = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE)
USAGE_WORDS = {
    ExtendedKeyUsageOID.CLIENT_AUTH: "client authentication",
    ExtendedKeyUsageOID.CODE_SIGNING: "code signing",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "email protection",
    ExtendedKeyUsageOID.TIME_STAMPING: "time stamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSP signing",
}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class LeafNames:
    """The DNS names and IP addresses of a leaf's subjectAltName, for name constraints."""

    dns: tuple[str, ...]
    ips: tuple[IPAddress, ...]


def _words(usages: Sequence[x509.ObjectIdentifier]) -> str:
    words = [USAGE_WORDS.get(usage, usage.dotted_string) for usage in usages]
    return " and ".join(words) if words else "nothing"


def leaf_refusal(leaf: x509.Certificate) -> str | None:
    """Tell why a leaf cannot be a TLS server's certificate whatever its issuers, if it cannot."""
    unreadable = parts(leaf).unreadable
    if unreadable:
        which = " and ".join(unreadable)
        return f"the certificate's {which} cannot be read (malformed or duplicate encoding)"
    usages = extension(leaf, x509.ExtendedKeyUsage)
    if usages is not None and not any(usage in SERVER_USAGES for usage in usages):
        return (
            "the certificate is not allowed for TLS servers (extended key usage allows only "
            f"{_words(list(usages))})"
        )
    return None


def leaf_names(leaf: x509.Certificate) -> LeafNames:
    """Return the names name constraints apply to (leaf_refusal has vouched they are readable)."""
    san = extension(leaf, x509.SubjectAlternativeName)
    if san is None:
        return LeafNames((), ())
    dns = tuple(name.lower().rstrip(".") for name in san.get_values_for_type(x509.DNSName))
    return LeafNames(dns, tuple(san.get_values_for_type(x509.IPAddress)))


def issuer_refusal(
    issuer: x509.Certificate, below: int, names: LeafNames, *, anchor: bool
) -> str | None:
    """Tell why `issuer` may not issue the path below it, if it may not.

    `below` counts the intermediates between it and the leaf that are not self-issued (RFC
    5280 6.1.4). A trust anchor is judged on its CA flag, path length, key usage and name
    constraints, as OpenSSL and browsers do; its extended key usage is not judged.
    """
    rules = _rules(issuer, anchor)
    if rules.refusal:
        return rules.refusal
    limit, who = rules.path_length, rules.who
    if limit is not None and below > limit:
        if limit == 0:
            return f"{who} may not issue further CAs (path length constraint)"
        return f"{who} allows at most {limit} CA(s) below it (path length constraint)"
    if rules.names is None:
        return None
    return _name_refusal(rules.names, who, names)


@dataclass(frozen=True)
class _Rules:
    who: str
    refusal: str | None  # what refuses the issuer whatever lies below it
    path_length: int | None
    names: x509.NameConstraints | None


@lru_cache(maxsize=4096)
def _rules(issuer: x509.Certificate, anchor: bool) -> _Rules:
    # Per issuer, once: a sweep judges the same few intermediates for thousands of leaves.
    role = "root" if anchor else "intermediate"
    who = f"{role} '{label(parts(issuer).subject)}'"
    names = extension(issuer, x509.NameConstraints)
    constraints = extension(issuer, x509.BasicConstraints)
    limit = constraints.path_length if constraints is not None else None
    return _Rules(who, _refusal(issuer, who, constraints, anchor=anchor), limit, names)


def _refusal(
    issuer: x509.Certificate,
    who: str,
    constraints: x509.BasicConstraints | None,
    *,
    anchor: bool,
) -> str | None:
    if parts(issuer).extensions is None:
        return f"the extensions of {who} cannot be read (malformed or duplicate encoding)"
    if constraints is None and not anchor:
        return f"{who} does not say it is a CA (no basic constraints), so it may not issue"
    if constraints is not None and not constraints.ca:
        return f"{who} is not a CA certificate (basic constraints), so it may not issue"
    usage = extension(issuer, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        return f"{who} may not sign certificates (its key usage lacks keyCertSign)"
    if not anchor:
        usages = extension(issuer, x509.ExtendedKeyUsage)
        if usages is not None and not any(usage in SERVER_USAGES for usage in usages):
            return (
                f"{who} may not issue certificates for TLS servers (its extended key usage "
                f"allows only {_words(list(usages))})"
            )
    return None


def _name_refusal(constraints: x509.NameConstraints, who: str, names: LeafNames) -> str | None:
    permitted = constraints.permitted_subtrees or ()
    excluded = constraints.excluded_subtrees or ()
    allowed_dns = [item.value for item in permitted if isinstance(item, x509.DNSName)]
    banned_dns = [item.value for item in excluded if isinstance(item, x509.DNSName)]
    allowed_ips = [item.value for item in permitted if isinstance(item, x509.IPAddress)]
    banned_ips = [item.value for item in excluded if isinstance(item, x509.IPAddress)]
    for name in names.dns:
        if allowed_dns and not any(_dns_within(name, tree) for tree in allowed_dns):
            return f"{who} may not issue for {name} (it is outside its name constraints)"
        if any(_dns_excluded(name, tree) for tree in banned_dns):
            return f"{who} may not issue for {name} (its name constraints exclude it)"
    for address in names.ips:
        if allowed_ips and not any(_ip_within(address, network) for network in allowed_ips):
            return f"{who} may not issue for {address} (it is outside its name constraints)"
        if any(_ip_within(address, network) for network in banned_ips):
            return f"{who} may not issue for {address} (its name constraints exclude it)"
    return None


def _dns_within(name: str, subtree: str) -> bool:
    """RFC 5280 4.2.1.10: "example.com" covers itself and its subdomains; ".example.com" only
    its subdomains. A wildcard "*.example.com" is within a subtree when every name it covers is.
    """
    tree = subtree.lower().rstrip(".")
    if not tree:
        return True
    if tree.startswith("."):
        return name.endswith(tree)
    return name == tree or name.endswith("." + tree)


def _dns_excluded(name: str, subtree: str) -> bool:
    # A wildcard is excluded also when one of the names it covers is: "*.example.com" may stand
    # for "bad.example.com" (browsers refuse it the same way).
    if _dns_within(name, subtree):
        return True
    if not name.startswith("*."):
        return False
    tree = subtree.lower().strip(".")
    return "." in tree and tree.split(".", 1)[1] == name[2:]


def _ip_within(address: IPAddress, network) -> bool:
    return address.version == network.version and address in network
