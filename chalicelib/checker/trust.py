"""Trust anchors (system roots plus extra bundles) and path building from a served chain to one.

Path building judges names, signatures and the constraints a browser honours (constraints.py):
dates, key sizes and signature algorithms have their own problem codes, so an expired
certificate from a trusted CA still has a path.
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

from chalicelib.checker.certparts import label, parts, same_name
from chalicelib.checker.constraints import issuer_refusal, leaf_names, leaf_refusal
from chalicelib.errors import BadInput

MAX_PATH_LENGTH = 8
MAX_SERVED = 32  # certificates of a served chain considered (a real chain has 2 to 4)
MAX_CANDIDATES = 64  # issuer candidates weighed per path search (a real search weighs 1 to 6)
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu
    "/etc/pki/tls/certs/ca-bundle.crt",  # Amazon Linux (the Lambda runtime), Fedora
    "/etc/ssl/cert.pem",  # Alpine, macOS
)


@lru_cache(maxsize=8192)
def _fingerprint(certificate: x509.Certificate) -> bytes:
    # Cached by content (certificates hash by their DER): every check asks about the same
    # few intermediates and roots.
    return certificate.fingerprint(hashes.SHA256())


@dataclass(frozen=True)
class TrustStore:
    """A set of trusted root certificates, indexed by subject."""

    anchors: tuple[x509.Certificate, ...]
    _by_subject: dict = field(default_factory=dict, compare=False, repr=False)
    _fingerprints: frozenset = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        for anchor in self.anchors:
            subject = parts(anchor).subject
            if subject is not None:
                self._by_subject.setdefault(subject, []).append(anchor)
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
        issuer = parts(certificate).issuer
        return self._by_subject.get(issuer, []) if issuer is not None else []

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
def signs(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Tell whether `issuer` names and signed `certificate` (no constraint judged, nor dates)."""
    # Cached by content (certificates hash by their DER): a sweep checks the same few
    # intermediates against the same roots for thousands of targets.
    if not same_name(parts(certificate).issuer, parts(issuer).subject):
        return False
    return _signed_by(certificate, issuer)


def is_self_signed(certificate: x509.Certificate) -> bool:
    """Tell whether a certificate names itself as issuer and carries its own signature."""
    return signs(certificate, certificate)


def _self_issued(certificate: x509.Certificate) -> bool:
    return same_name(parts(certificate).issuer, parts(certificate).subject)


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
    except Exception:  # a hostile key or signature must only fail to verify
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


class _Search:
    """A depth-first search for a path whose every certificate satisfies constraints.py.

    An issuer refused by a constraint is only a dead end: the search goes on with the other
    issuers of the same name (a cross-sign, another root), as a browser does. The number of
    issuer candidates weighed is bounded, so a hostile chain (hundreds of certificates of one
    name, loops) costs at most MAX_CANDIDATES cached signature checks.
    """

    def __init__(self, leaf: x509.Certificate, served: Sequence[x509.Certificate], trust):
        self.trust = trust
        self.names = leaf_names(leaf)
        self.by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        for certificate in served:
            subject = parts(certificate).subject
            if subject is not None:
                self.by_subject.setdefault(subject, []).append(certificate)
        self.refusals: list[str] = []
        self.candidates = 0

    def _admits(self, path: list[x509.Certificate], issuer, *, anchor: bool) -> bool:
        self.candidates += 1
        if self.candidates > MAX_CANDIDATES or not signs(path[-1], issuer):
            return False
        below = sum(1 for certificate in path[1:] if not _self_issued(certificate))
        refusal = issuer_refusal(issuer, below, self.names, anchor=anchor)
        if refusal:
            self.refusals.append(refusal)
        return refusal is None

    def run(self, path: list[x509.Certificate]) -> TrustPath | None:
        current = path[-1]
        if len(path) > 1 and self.trust.contains(current):
            return TrustPath(certificates=tuple(path), anchor=current)
        # Anchors first: a path that ends at a root the store holds beats one through a
        # cross-sign.
        for anchor in self.trust.issuers_of(current):
            if self._admits(path, anchor, anchor=True):
                return TrustPath(certificates=(*path, anchor), anchor=anchor)
        if len(path) >= MAX_PATH_LENGTH:
            return None
        issuer = parts(current).issuer
        for candidate in self.by_subject.get(issuer, ()) if issuer is not None else ():
            if candidate in path:  # a loop (A issued by B issued by A) or a repeated certificate
                continue
            if self._admits(path, candidate, anchor=self.trust.contains(candidate)):
                found = self.run([*path, candidate])
                if found:
                    return found
            if self.candidates > MAX_CANDIDATES:
                return None
        return None


def _why_untrusted(served: Sequence[x509.Certificate]) -> str:
    """Explain in words why the served chain reaches no anchor."""
    leaf = served[0]
    if is_self_signed(leaf):
        return "the certificate is self-signed, and not in the trust store"
    # Follow the served issuers greedily, weighing at most MAX_CANDIDATES signatures.
    current, used, budget = leaf, [leaf], [MAX_CANDIDATES]

    def next_issuer(certificate: x509.Certificate) -> x509.Certificate | None:
        for candidate in served:
            if candidate in used or not same_name(
                parts(certificate).issuer, parts(candidate).subject
            ):
                continue
            budget[0] -= 1
            if budget[0] < 0:
                return None
            if signs(certificate, candidate):
                return candidate
        return None

    while (issuer := next_issuer(current)) is not None:
        current, used = issuer, [*used, issuer]
    if is_self_signed(current):
        return f"the chain ends at '{label(parts(current).subject)}', which is not a trusted root"
    if any(signs(current, earlier) for earlier in used[1:-1]):
        return (
            f"the chain loops back to '{label(parts(current).issuer)}' without reaching a"
            " trusted root"
        )
    if len(used) >= MAX_PATH_LENGTH:
        return f"the chain is longer than {MAX_PATH_LENGTH} certificates without reaching a root"
    return (
        f"the issuer '{label(parts(current).issuer)}' is neither sent by the server nor a trusted"
        " root (incomplete chain or unknown CA)"
    )


def build_path(served: Sequence[x509.Certificate], trust: TrustStore) -> TrustPath:
    """Find a path from the served leaf (served[0]) through served certificates to an anchor.

    Every certificate of the path is judged as a browser judges it (constraints.py); when no
    path satisfies them, the reason names the first rule a candidate path broke.
    """
    if not served:
        return TrustPath(certificates=(), anchor=None, reason="no certificate")
    leaf = served[0]
    refusal = leaf_refusal(leaf)
    if refusal:
        return TrustPath(certificates=(leaf,), anchor=None, reason=refusal)
    if trust.contains(leaf):
        return TrustPath(certificates=(leaf,), anchor=leaf)
    search = _Search(leaf, served[1:MAX_SERVED], trust)
    found = search.run([leaf])
    if found:
        return found
    reason = search.refusals[0] if search.refusals else _why_untrusted(served[:MAX_SERVED])
    return TrustPath(certificates=(leaf,), anchor=None, reason=reason)
