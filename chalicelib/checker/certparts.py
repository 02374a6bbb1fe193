"""Read the parts of an attacker-controlled certificate without ever raising.

`cryptography` parses a certificate's names and extensions lazily, on first read, and raises
(ValueError, DuplicateExtension, UnsupportedGeneralNameType...) when they are malformed: a
server can send a certificate whose subject holds an IA5String with byte 0xff, which OpenSSL
serves happily. Every module that judges a served certificate reads it through here, so an
unreadable part is a value (None) to report, never an exception that loses a whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache

from cryptography import x509
from cryptography.x509.oid import NameOID

UNREADABLE_NAME = "(unreadable name)"


@dataclass(frozen=True)
class Parts:
    """The decoded subject, issuer and extensions of a certificate; None where unreadable."""

    subject: x509.Name | None
    issuer: x509.Name | None
    extensions: x509.Extensions | None

    @cached_property
    def by_kind(self) -> dict[type, x509.ExtensionType]:
        """Map each extension's value class to its value (read per check, so indexed once)."""
        return {type(item.value): item.value for item in self.extensions or ()}

    @cached_property
    def subject_label(self) -> str:
        """Return label(subject), computed once."""
        return label(self.subject)

    @cached_property
    def issuer_label(self) -> str:
        """Return label(issuer), computed once."""
        return label(self.issuer)

    @property
    def unreadable(self) -> tuple[str, ...]:
        """Name the parts that cannot be read, in certificate order."""
        found = (("subject", self.subject), ("issuer", self.issuer))
        names = [label for label, value in found if value is None]
        return (*names, "extensions") if self.extensions is None else tuple(names)


def _attempt(read):
    # cryptography raises several unrelated types for malformed input (ValueError,
    # DuplicateExtension, UnsupportedGeneralNameType, TypeError...): any of them means the
    # part cannot be read, and never that the neighbours' checks should stop.
    try:
        return read()
    except Exception:  # see above
        return None


@lru_cache(maxsize=8192)
def parts(certificate: x509.Certificate) -> Parts:
    """Decode a certificate's names and extensions once (certificates hash by their DER)."""
    return Parts(
        subject=_attempt(lambda: certificate.subject),
        issuer=_attempt(lambda: certificate.issuer),
        extensions=_attempt(lambda: certificate.extensions),
    )


def extension[Kind: x509.ExtensionType](
    certificate: x509.Certificate, kind: type[Kind]
) -> Kind | None:
    """Return the value of one extension, or None when it is absent or unreadable."""
    return parts(certificate).by_kind.get(kind)


def label(name: x509.Name | None) -> str:
    """Return a name's common name, else its RFC 4514 string, else a placeholder."""
    if name is None:
        return UNREADABLE_NAME
    text = _attempt(lambda: _common_name(name))
    return text if isinstance(text, str) else UNREADABLE_NAME


def _common_name(name: x509.Name) -> str:
    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else name.rfc4514_string()


def organisation_or_name(name: x509.Name | None) -> str:
    """Return a name's organisation (how an issuer is best known), else label(name)."""
    if name is None:
        return UNREADABLE_NAME
    found = _attempt(lambda: name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return str(found[0].value) if found else label(name)


def same_name(first: x509.Name | None, second: x509.Name | None) -> bool:
    """Tell whether two readable names are equal; an unreadable name equals nothing."""
    return first is not None and second is not None and first == second


def dates(certificate: x509.Certificate) -> tuple[datetime, datetime] | None:
    """Return (notBefore, notAfter) in UTC, or None when they cannot be read."""
    return _attempt(lambda: (certificate.not_valid_before_utc, certificate.not_valid_after_utc))
