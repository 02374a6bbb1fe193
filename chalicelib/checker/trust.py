"""Trust anchors (system roots plus extra bundles) and path building from a served chain to one.

Path building here judges names and signatures only: dates, key sizes and signature algorithms
have their own problem codes, so an expired certificate from a trusted CA still has a path.
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from chalicelib.errors import BadInput

MAX_PATH_LENGTH = 8
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu
    "/etc/pki/tls/certs/ca-bundle.crt",  # Amazon Linux (the Lambda runtime), Fedora
    "/etc/ssl/cert.pem",  # Alpine, macOS
)


def _fingerprint(certificate: x509.Certificate) -> bytes:
    return certificate.fingerprint(hashes.SHA256())


@dataclass(frozen=True)
class TrustStore:
    """A set of trusted root certificates, indexed by subject."""

    anchors: tuple[x509.Certificate, ...]
    _by_subject: dict = field(default_factory=dict, compare=False, repr=False)
    _fingerprints: frozenset = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        for anchor in self.anchors:
            self._by_subject.setdefault(anchor.subject.public_bytes(), []).append(anchor)
        object.__setattr__(self, "_fingerprints", frozenset(map(_fingerprint, self.anchors)))

    @classmethod
    def from_pem(cls, *blobs: bytes) -> TrustStore:
        """Build a store from PEM bundles, skipping certificates that cannot be read."""
        return cls(anchors=tuple(anchor for blob in blobs for anchor in _read_pem(blob)))

    def contains(self, certificate: x509.Certificate) -> bool:
        """Tell whether this exact certificate is a trust anchor."""
        return _fingerprint(certificate) in self._fingerprints

    def issuers_of(self, certificate: x509.Certificate) -> list[x509.Certificate]:
        """Return the anchors whose subject is the certificate's issuer."""
        return self._by_subject.get(certificate.issuer.public_bytes(), [])

    def __len__(self) -> int:
        return len(self.anchors)


_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"


def _read_pem(blob: bytes) -> list[x509.Certificate]:
    # One by one: a single odd root in a system bundle must not cost every other root.
    certificates = []
    for part in blob.split(_PEM_BEGIN)[1:]:
        try:
            with warnings.catch_warnings():
                # Some system roots have negative serials; cryptography warns but reads them.
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                certificates.append(x509.load_pem_x509_certificate(_PEM_BEGIN + part))
        except ValueError:
            continue
    return certificates


def read_bundle(path: str | Path) -> bytes:
    """Read a PEM bundle of extra roots; raise BadInput when it is missing or holds none."""
    try:
        blob = Path(path).read_bytes()
        if not _read_pem(blob):
            raise ValueError("it holds no PEM certificate")
    except (OSError, ValueError) as error:
        raise BadInput(f"cannot use CA file {path}: {error}") from error
    return blob


def system_bundle_path() -> str | None:
    """Return the path of the system's root bundle, if this machine has one."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *SYSTEM_BUNDLES):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@cache
def _load(system: bool, extra: tuple[str, ...]) -> TrustStore:
    blobs = [read_bundle(path) for path in extra]
    bundle = system_bundle_path() if system else None
    if bundle:
        blobs.insert(0, Path(bundle).read_bytes())
    return TrustStore.from_pem(*blobs)


def default_trust(
    ca_bundle: str | Sequence[str] | None = None, *, system: bool = True
) -> TrustStore:
    """Return the system roots plus the roots of `ca_bundle` file(s), loaded once per process."""
    if ca_bundle is None:
        extra: tuple[str, ...] = ()
    elif isinstance(ca_bundle, str):
        extra = (ca_bundle,)
    else:
        extra = tuple(ca_bundle)
    return _load(system, extra)


def _verify_signature(certificate: x509.Certificate, issuer: x509.Certificate) -> None:
    # cryptography's verify_directly_issued_by refuses SHA-1 and MD5; those are checked by hand
    # because a weak signature is its own problem (weak_signature), not a broken chain.
    key = issuer.public_key()
    signature, data = certificate.signature, certificate.tbs_certificate_bytes
    parameters = certificate.signature_algorithm_parameters
    if isinstance(key, rsa.RSAPublicKey):
        # cryptography gives no parameters for md5WithRSAEncryption; it is PKCS #1 v1.5.
        key.verify(
            signature, data, parameters or padding.PKCS1v15(), certificate.signature_hash_algorithm
        )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, parameters)
    elif isinstance(key, dsa.DSAPublicKey):
        key.verify(signature, data, certificate.signature_hash_algorithm)
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, data)
    else:
        raise InvalidSignature("unsupported issuer key")


@lru_cache(maxsize=8192)
def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Tell whether `issuer` names and signed `certificate` (dates and strength not judged)."""
    # Cached by content (certificates hash by their DER): a sweep checks the same few
    # intermediates against the same roots for thousands of targets.
    if certificate.issuer != issuer.subject:
        return False
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        if not constraints.ca:
            return False
    except x509.ExtensionNotFound:
        pass  # old v1 roots have no extensions at all
    except ValueError:
        return False
    return _signed_by(certificate, issuer)


def is_self_signed(certificate: x509.Certificate) -> bool:
    """Tell whether a certificate names itself as issuer and carries its own signature."""
    return certificate.issuer == certificate.subject and _signed_by(certificate, certificate)


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Tell whether issuer's key made certificate's signature, weak algorithms included."""
    try:
        certificate.verify_directly_issued_by(issuer)
        return True
    except (InvalidSignature, TypeError):
        return False
    except (ValueError, UnsupportedAlgorithm):
        pass  # an algorithm cryptography no longer verifies (MD5, SHA-1): check it ourselves
    try:
        _verify_signature(certificate, issuer)
        return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False


@dataclass(frozen=True)
class TrustPath:
    """The outcome of path building: the path (leaf first, anchor last) or why there is none."""

    certificates: tuple[x509.Certificate, ...]
    anchor: x509.Certificate | None
    reason: str | None = None

    @property
    def verified(self) -> bool:
        """Tell whether the leaf chains to a trust anchor."""
        return self.anchor is not None

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        """Return the certificates between the leaf and the anchor (neither included)."""
        end = len(self.certificates) - 1 if self.anchor is not None else len(self.certificates)
        return self.certificates[1:end] if end > 1 else ()


def _search(
    path: list[x509.Certificate], served: Sequence[x509.Certificate], trust: TrustStore
) -> TrustPath | None:
    current = path[-1]
    if trust.contains(current):
        return TrustPath(certificates=tuple(path), anchor=current)
    # Anchors first: a path that ends at a root the store holds beats one through a cross-sign.
    for anchor in trust.issuers_of(current):
        if issued_by(current, anchor):
            return TrustPath(certificates=(*path, anchor), anchor=anchor)
    if len(path) >= MAX_PATH_LENGTH:
        return None
    for candidate in served:
        if any(candidate is used for used in path):
            continue
        if issued_by(current, candidate):
            found = _search([*path, candidate], served, trust)
            if found:
                return found
    return None


def _common_name(name: x509.Name) -> str:
    names = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else name.rfc4514_string()


def _why_untrusted(served: Sequence[x509.Certificate]) -> str:
    """Explain in words why the served chain reaches no anchor."""
    leaf = served[0]
    if is_self_signed(leaf):
        return "the certificate is self-signed, and not in the trust store"
    current, used = leaf, [leaf]
    while True:
        issuer = next(
            (c for c in served if all(c is not u for u in used) and issued_by(current, c)), None
        )
        if issuer is None:
            break
        current, used = issuer, [*used, issuer]
    if is_self_signed(current):
        return f"the chain ends at '{_common_name(current.subject)}', which is not a trusted root"
    return (
        f"the issuer '{_common_name(current.issuer)}' is neither sent by the server nor a trusted"
        " root (incomplete chain or unknown CA)"
    )


def build_path(served: Sequence[x509.Certificate], trust: TrustStore) -> TrustPath:
    """Find a path from the served leaf (served[0]) through served certificates to an anchor."""
    if not served:
        return TrustPath(certificates=(), anchor=None, reason="no certificate")
    found = _search([served[0]], served[1:], trust)
    if found:
        return found
    return TrustPath(certificates=(served[0],), anchor=None, reason=_why_untrusted(served))
