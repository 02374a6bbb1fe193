"""A tiny DER writer for hostile certificates that cryptography's builder refuses to make.

Every part of the TBSCertificate can be given as raw DER, so a test can put a byte 0xff in an
IA5String, a year 0001 in a date or 5,000 names in a subjectAltName, and still sign it
properly with a generated key:

    key = make_key()
    der = certificate(issuer_key=key, subject=name(cn=ia5(b"bad\\xff")), public_key=key)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from datetime import datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

# Universal tags.
BOOLEAN, INTEGER, BIT_STRING, OCTET_STRING, NULL, OID = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
UTF8_STRING, PRINTABLE_STRING, IA5_STRING, BMP_STRING = 0x0C, 0x13, 0x16, 0x1E
UTC_TIME, GENERALIZED_TIME = 0x17, 0x18
SEQUENCE, SET = 0x30, 0x31

ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
COMMON_NAME = "2.5.4.3"
SUBJECT_ALT_NAME = "2.5.29.17"
BASIC_CONSTRAINTS = "2.5.29.19"
EXTENDED_KEY_USAGE = "2.5.29.37"
SERVER_AUTH = "1.3.6.1.5.5.7.3.1"


def tlv(tag: int, body: bytes) -> bytes:
    """Encode one element: tag, definite length, body."""
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def sequence(*parts: bytes) -> bytes:
    """Encode a SEQUENCE of already encoded parts."""
    return tlv(SEQUENCE, b"".join(parts))


def integer(value: int) -> bytes:
    """Encode an INTEGER in two's complement (negative serials included)."""
    size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def oid(dotted: str) -> bytes:
    """Encode an OBJECT IDENTIFIER from its dotted form."""
    numbers = [int(part) for part in dotted.split(".")]
    body = bytearray([40 * numbers[0] + numbers[1]])
    for number in numbers[2:]:
        chunk = [number & 0x7F]
        number >>= 7
        while number:
            chunk.insert(0, 0x80 | (number & 0x7F))
            number >>= 7
        body += bytes(chunk)
    return tlv(OID, bytes(body))


def ia5(raw: bytes) -> bytes:
    """Encode raw bytes as an IA5String (no check that they are ASCII)."""
    return tlv(IA5_STRING, raw)


def utf8(raw: bytes) -> bytes:
    """Encode raw bytes as a UTF8String (no check that they are UTF-8)."""
    return tlv(UTF8_STRING, raw)


def name(*attributes: tuple[str, bytes], cn: bytes | None = None) -> bytes:
    """Encode a Name: one RDN per (OID, encoded value); `cn` adds a commonName value."""
    pairs = list(attributes) + ([(COMMON_NAME, cn)] if cn is not None else [])
    return sequence(*(tlv(SET, sequence(oid(kind), value)) for kind, value in pairs))


def time(moment: datetime, *, generalized: bool | None = None) -> bytes:
    """Encode a Time: UTCTime for 1950-2049 (RFC 5280) unless told, else GeneralizedTime."""
    if generalized is None:
        generalized = not 1950 <= moment.year <= 2049
    if generalized:
        return tlv(GENERALIZED_TIME, f"{moment.year:04d}{moment:%m%d%H%M%S}Z".encode())
    return tlv(UTC_TIME, f"{moment.year % 100:02d}{moment:%m%d%H%M%S}Z".encode())


def extension(kind: str, value: bytes, *, critical: bool = False) -> bytes:
    """Encode one Extension whose extnValue holds `value` (already DER)."""
    flag = tlv(BOOLEAN, b"\xff") if critical else b""
    return sequence(oid(kind), flag, tlv(OCTET_STRING, value))


def dns_names(names: Iterable[bytes]) -> bytes:
    """Encode a GeneralNames of dNSName entries ([2] IA5String)."""
    return sequence(*(tlv(0x82, raw) for raw in names))


def san(dns: Sequence[str] = (), ips: Sequence[str] = ()) -> bytes:
    """Encode a subjectAltName extension with DNS names and IP addresses."""
    names = [tlv(0x82, host.encode()) for host in dns]
    names += [tlv(0x87, ipaddress.ip_address(ip).packed) for ip in ips]
    return extension(SUBJECT_ALT_NAME, sequence(*names))


def basic_constraints(ca: bool) -> bytes:
    """Encode a critical basicConstraints extension."""
    return extension(
        BASIC_CONSTRAINTS, sequence(tlv(BOOLEAN, b"\xff")) if ca else sequence(), critical=True
    )


def server_auth() -> bytes:
    """Encode an extendedKeyUsage extension allowing serverAuth."""
    return extension(EXTENDED_KEY_USAGE, sequence(oid(SERVER_AUTH)))


def spki(public_key) -> bytes:
    """Return a public key's SubjectPublicKeyInfo DER."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def certificate(
    *,
    issuer_key: ec.EllipticCurvePrivateKey,
    public_key,
    subject: bytes,
    issuer: bytes | None = None,
    not_before: bytes,
    not_after: bytes,
    extensions: Sequence[bytes] = (),
    serial: bytes | None = None,
) -> bytes:
    """Build and sign (ECDSA with SHA-256) a v3 certificate from raw DER parts."""
    algorithm = sequence(oid(ECDSA_WITH_SHA256))
    tbs = sequence(
        tlv(0xA0, integer(2)),
        serial if serial is not None else integer(0x1234567890ABCDEF),
        algorithm,
        issuer if issuer is not None else subject,
        sequence(not_before, not_after),
        subject,
        spki(public_key.public_key() if hasattr(public_key, "public_key") else public_key),
        tlv(0xA3, sequence(*extensions)) if extensions else b"",
    )
    signature = issuer_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return sequence(tbs, algorithm, tlv(BIT_STRING, b"\x00" + signature))
