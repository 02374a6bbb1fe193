"""Generate X.509 certificates for tests: roots, intermediates and leaves with chosen flaws.

Everything is relative to a `now` the test chooses, so no test depends on the wall clock.

    now = datetime(2027, 1, 1, tzinfo=UTC)
    root = make_ca(now=now)                              # self-signed root (EC P-256, SHA-256)
    inter = make_ca("Test Intermediate", issuer=root, now=now)
    leaf = make_leaf(inter, dns=["example.test", "*.example.test"], ips=["127.0.0.1"],
                     now=now, not_after=now + timedelta(days=30, hours=2))
    rsa_root = make_ca("RSA Root", key="rsa2048", now=now)
    weak = make_leaf(rsa_root, key="rsa1024", hash="sha1", now=now)    # RSA-1024, SHA-1
    lone = make_leaf(None, dns=["self.test"], now=now)   # self-signed leaf
    leaf.der, leaf.pem, leaf.key_pem                     # encodings
    pem_bundle(leaf, inter)                              # PEM of a served chain (leaf first)

Defaults: `not_before = now - 1 day` (or `not_after - 1 day` if earlier); a leaf's
`not_after = now + 60 days`, a CA's `now + 3650 days`. `key` is one of KEY_KINDS ("ec256" is
the default, fast to generate; "rsa1024" and "ec224" are weak). `hash` is "sha256" (default),
"sha384", "sha1" or "md5"; SHA-1 and MD5 need an RSA *issuer* key: `make_ca(key="rsa2048")`,
`make_pki(key="rsa2048")`, or a self-signed leaf with `key="rsa2048"`. `san=False` gives a
leaf without subjectAltName (its CN is `common_name`). `now=None` means the current time.

Path rules (what a browser honours on the path):

    make_ca("No CA", issuer=root, ca=False)              # basicConstraints CA=false
    make_ca("Bare", issuer=root, ca=None)                # no basicConstraints at all
    make_ca("Zero", issuer=root, path_length=0)          # may issue leaves, not CAs
    make_ca("Signer", issuer=root, key_cert_sign=False)  # keyUsage without keyCertSign
    make_ca("Mail CA", issuer=root, usages=[ExtendedKeyUsageOID.EMAIL_PROTECTION])
    make_ca("Scoped", issuer=root, permitted=[x509.DNSName("example.test")],
            excluded=[x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))])
    make_ca(same.common_name, issuer=other_root, same_key=same)   # a cross-sign of `same`
    make_leaf(inter, usages=[ExtendedKeyUsageOID.CLIENT_AUTH])    # usages=None: no EKU
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_KINDS = ("ec256", "ec384", "ec224", "rsa1024", "rsa2048", "ed25519")
HASHES = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha1": hashes.SHA1,
    "md5": hashes.MD5,
}


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: object

    @property
    def der(self) -> bytes:
        """Return the certificate in DER."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        """Return the certificate in PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """Return the private key in unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def common_name(self) -> str:
        """Return the subject's common name."""
        return self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def make_key(kind: str = "ec256"):
    """Generate a fresh private key of one of KEY_KINDS."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    curves = {"ec256": ec.SECP256R1, "ec384": ec.SECP384R1, "ec224": ec.SECP224R1}
    if kind not in curves:
        raise ValueError(f"unknown key kind {kind!r}; use one of {KEY_KINDS}")
    return ec.generate_private_key(curves[kind]())


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).replace(microsecond=0)


def _default_start(now: datetime, not_after: datetime | None) -> datetime:
    # A day before now, or before not_after when that is already past (an expired certificate).
    start = now - timedelta(days=1)
    return min(start, not_after - timedelta(days=1)) if not_after else start


def _name(common_name: str | None, organisation: str | None) -> x509.Name:
    attributes = []
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    if common_name:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


# DER of the signature algorithm OIDs swapped by _resign_legacy (all the same length, so the
# lengths inside the TBSCertificate stay valid).
_SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")
_LEGACY_WITH_RSA = {
    "sha1": bytes.fromhex("06092a864886f70d010105"),
    "md5": bytes.fromhex("06092a864886f70d010104"),
}


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _resign_legacy(certificate: x509.Certificate, signer_key, hash_name: str) -> x509.Certificate:
    # cryptography no longer signs certificates with SHA-1 or MD5, but its RSA primitive still
    # does: sign with SHA-256, swap the algorithm OID in the TBS, and sign that by hand.
    tbs = certificate.tbs_certificate_bytes
    assert tbs.count(_SHA256_WITH_RSA) == 1
    tbs = tbs.replace(_SHA256_WITH_RSA, _LEGACY_WITH_RSA[hash_name])
    signature = signer_key.sign(tbs, padding.PKCS1v15(), HASHES[hash_name]())
    algorithm = _der(0x30, _LEGACY_WITH_RSA[hash_name] + b"\x05\x00")
    der = _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


def _sign(builder: x509.CertificateBuilder, signer_key, hash_name: str) -> x509.Certificate:
    if hash_name in _LEGACY_WITH_RSA:
        if not isinstance(signer_key, rsa.RSAPrivateKey):
            raise ValueError(f"{hash_name} signatures need an RSA issuer key (key='rsa2048')")
        return _resign_legacy(builder.sign(signer_key, hashes.SHA256()), signer_key, hash_name)
    algorithm = None if isinstance(signer_key, ed25519.Ed25519PrivateKey) else HASHES[hash_name]()
    return builder.sign(signer_key, algorithm)


def make_ca(
    common_name: str = "sslnotify Test Root CA",
    *,
    issuer: Issued | None = None,
    organisation: str | None = "sslnotify Test",
    now: datetime | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: str = "ec256",
    hash: str = "sha256",
    path_length: int | None = None,
    ca: bool | None = True,
    key_cert_sign: bool = True,
    usages: Sequence[x509.ObjectIdentifier] | None = None,
    permitted: Sequence[x509.GeneralName] | None = None,
    excluded: Sequence[x509.GeneralName] | None = None,
    same_key: Issued | None = None,
    crl_urls: Sequence[str] = (),
) -> Issued:
    """Issue a CA certificate: a self-signed root, or an intermediate when `issuer` is given."""
    now = _now(now)
    private_key = same_key.key if same_key else make_key(key)
    subject = _name(common_name, organisation)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now(not_before or _default_start(now, not_after)))
        .not_valid_after(_now(not_after or now + timedelta(days=3650)))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_cert_sign,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()), critical=False
        )
    )
    if ca is not None:
        constraints = x509.BasicConstraints(ca=ca, path_length=path_length if ca else None)
        builder = builder.add_extension(constraints, critical=True)
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if permitted or excluded:
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded),
            critical=True,
        )
    builder = _revocation_sources(builder, crl_urls, ())
    signer_key = issuer.key if issuer else private_key
    return Issued(cert=_sign(builder, signer_key, hash), key=private_key)


def _revocation_sources(
    builder: x509.CertificateBuilder, crl_urls: Sequence[str], ocsp_urls: Sequence[str]
) -> x509.CertificateBuilder:
    """Add CRL Distribution Points and AIA OCSP URLs, when given."""
    if crl_urls:
        points = [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
            for url in crl_urls
        ]
        builder = builder.add_extension(x509.CRLDistributionPoints(points), critical=False)
    if ocsp_urls:
        access = [
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url)
            )
            for url in ocsp_urls
        ]
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    return builder


def make_leaf(
    issuer: Issued | None,
    *,
    dns: Sequence[str] = ("example.test",),
    ips: Sequence[str] = (),
    common_name: str | None = None,
    organisation: str | None = None,
    san: bool = True,
    now: datetime | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: str = "ec256",
    hash: str = "sha256",
    usages: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.SERVER_AUTH,),
    crl_urls: Sequence[str] = (),
    ocsp_urls: Sequence[str] = (),
) -> Issued:
    """Issue a server certificate; `issuer=None` makes it self-signed."""
    now = _now(now)
    private_key = make_key(key)
    names = list(dns) + list(ips)
    subject = _name(common_name or (names[0] if names else "no-name.test"), organisation)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now(not_before or _default_start(now, not_after)))
        .not_valid_after(_now(not_after or now + timedelta(days=60)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    # As every CA does: ACME Renewal Information identifies a certificate by this and its serial.
    signer_public = (issuer.key if issuer else private_key).public_key()
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_public), critical=False
    )
    if san:
        general_names = [x509.DNSName(name) for name in dns]
        general_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names), critical=False)
    builder = _revocation_sources(builder, crl_urls, ocsp_urls)
    signer_key = issuer.key if issuer else private_key
    return Issued(cert=_sign(builder, signer_key, hash), key=private_key)


def pem_bundle(*certificates: Issued) -> bytes:
    """Return the PEM of several certificates, in the order given (a served chain: leaf first)."""
    return b"".join(issued.pem for issued in certificates)


@dataclass(frozen=True)
class TestPKI:
    """A root and an intermediate under it, ready to issue leaves."""

    __test__ = False  # not a pytest test class

    root: Issued
    intermediate: Issued
    now: datetime

    def leaf(self, **options) -> Issued:
        """Issue a leaf under the intermediate (options as make_leaf; `now` defaults to ours)."""
        options.setdefault("now", self.now)
        return make_leaf(self.intermediate, **options)


def make_pki(
    now: datetime | None = None,
    *,
    name: str = "sslnotify Test",
    key: str = "ec256",
    intermediate_crl_urls: Sequence[str] = (),
) -> TestPKI:
    """Create a root CA and an intermediate CA valid around `now` (`key`: the CAs' key kind).

    `intermediate_crl_urls`: where the root publishes the CRL that covers the intermediate.
    """
    now = _now(now)
    root = make_ca(f"{name} Root CA", now=now, not_before=now - timedelta(days=365), key=key)
    intermediate = make_ca(
        f"{name} Intermediate CA",
        issuer=root,
        now=now,
        not_before=now - timedelta(days=365),
        not_after=now + timedelta(days=1825),
        key=key,
        crl_urls=intermediate_crl_urls,
    )
    return TestPKI(root=root, intermediate=intermediate, now=now)


def make_crl(
    issuer: Issued,
    *,
    revoked: Sequence[tuple[Issued, datetime, x509.ReasonFlags | None]] = (),
    now: datetime | None = None,
    last_update: datetime | None = None,
    next_update: datetime | None = None,
    signer_key=None,
    url: str | None = None,
    serials: Sequence[int] = (),
) -> bytes:
    """Return the DER of a CRL by `issuer` listing `revoked` (certificate, date, reason).

    `serials`: more revoked serial numbers (revoked a day before `now`, no reason), to give
    the CRL a realistic size.

    Defaults: issued an hour before `now`, next update a week after. `signer_key` signs in
    place of the issuer's key (a forged CRL); `url` adds an Issuing Distribution Point.
    """
    now = _now(now)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(last_update or now - timedelta(hours=1))
        .next_update(next_update or now + timedelta(days=7))
    )
    for certificate, when, reason in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(certificate.cert.serial_number)
            .revocation_date(when)
        )
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    for serial in serials:
        entry = x509.RevokedCertificateBuilder().serial_number(serial)
        builder = builder.add_revoked_certificate(
            entry.revocation_date(now - timedelta(days=1)).build()
        )
    if url:
        point = x509.IssuingDistributionPoint(
            full_name=[x509.UniformResourceIdentifier(url)],
            relative_name=None,
            only_contains_user_certs=False,
            only_contains_ca_certs=False,
            only_some_reasons=None,
            indirect_crl=False,
            only_contains_attribute_certs=False,
        )
        builder = builder.add_extension(point, critical=True)
    crl = builder.sign(signer_key or issuer.key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER)


def make_ocsp_response(
    certificate: Issued,
    issuer: Issued,
    *,
    status: str = "good",
    now: datetime | None = None,
    this_update: datetime | None = None,
    next_update: datetime | None = None,
    revoked_at: datetime | None = None,
    reason: x509.ReasonFlags | None = None,
    responder: Issued | None = None,
) -> bytes:
    """Return the DER of a signed OCSP response about `certificate` ("good", "revoked", "unknown").

    Signed by the issuer, or by `responder` (sent along, named by key hash). Defaults: this
    update an hour before `now`, next update a day after.
    """
    from cryptography.x509 import ocsp

    now = _now(now)
    statuses = {
        "good": ocsp.OCSPCertStatus.GOOD,
        "revoked": ocsp.OCSPCertStatus.REVOKED,
        "unknown": ocsp.OCSPCertStatus.UNKNOWN,
    }
    signer = responder or issuer
    revoked = status == "revoked"
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=certificate.cert,
            issuer=issuer.cert,
            algorithm=hashes.SHA1(),  # noqa: S303  (the CertID hash of RFC 5019)
            cert_status=statuses[status],
            this_update=this_update or now - timedelta(hours=1),
            next_update=next_update or now + timedelta(days=1),
            revocation_time=(revoked_at or now - timedelta(hours=2)) if revoked else None,
            revocation_reason=reason if revoked else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    )
    if responder is not None:
        builder = builder.certificates([responder.cert])
    response = builder.sign(signer.key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


def make_ocsp_responder(issuer: Issued, *, now: datetime | None = None, eku: bool = True) -> Issued:
    """Issue a delegated OCSP responder certificate (OCSP signing EKU unless eku=False)."""
    now = _now(now)
    private_key = make_key()
    usage = ExtendedKeyUsageOID.OCSP_SIGNING if eku else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("sslnotify Test OCSP Responder", "sslnotify Test"))
        .issuer_name(issuer.cert.subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    return Issued(cert=builder.sign(issuer.key, hashes.SHA256()), key=private_key)
