"""Find out whether a served certificate is revoked: stapled OCSP, the leaf's OCSP responder, CRLs.

Every answer is judged before it is believed: signed by the certificate's issuer (or, for OCSP,
by a responder the issuer delegated), fresh at `now`, about this very certificate. Anything less
(no source, unreachable, stale, badly signed, unreadable) is `unknown`, which never alerts, and
nothing here raises, whatever the bytes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from chalicelib.checker import fetch_policy
from chalicelib.checker.fetch_policy import FetchFailed, FetchPolicy
from chalicelib.checker.trust import TrustStore, build_path, signs

STATUSES = ("good", "revoked", "unknown")
SOURCES = ("stapled", "ocsp", "crl")
# Clocks differ: an answer dated a few minutes ahead of ours is still believed.
CLOCK_SKEW = timedelta(minutes=5)
# An OCSP answer without nextUpdate is only as good as it is fresh.
OCSP_MAX_AGE = timedelta(days=1)
MAX_URLS = 3  # per certificate and kind: a certificate could name hundreds
FETCH_CONCURRENCY = 32  # fetches in flight at once per check run (each is a thread)
FAILURE_TTL = 300.0  # seconds a failed CRL fetch is remembered, so a sweep does not retry it
# CAs publish CRLs far more often than their nextUpdate (days away) requires: a warm process
# keeps an answer at most this long, so each daily sweep sees the day's revocations.
CACHE_MAX_AGE = 6 * 3600.0
_REASONS = {
    x509.ReasonFlags.key_compromise: "key compromise",
    x509.ReasonFlags.ca_compromise: "CA compromise",
    x509.ReasonFlags.affiliation_changed: "affiliation changed",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessation of operation",
    x509.ReasonFlags.certificate_hold: "on hold",
    x509.ReasonFlags.privilege_withdrawn: "privilege withdrawn",
    x509.ReasonFlags.aa_compromise: "attribute authority compromise",
}
_SOURCE_WORDS = {"stapled": "the OCSP response the server stapled", "ocsp": "its OCSP responder"}


@dataclass(frozen=True)
class Revocation:
    """Whether the served certificates are revoked, and which source said so (DESIGN 3.1b)."""

    status: str  # good, revoked or unknown
    source: str | None  # stapled, ocsp, crl, or None when no source answered
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape."""
        return {"status": self.status, "source": self.source, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Revocation | None:
        """Rebuild a Revocation from its JSON (None stays None)."""
        if not data:
            return None
        return cls(status=data["status"], source=data.get("source"), message=data["message"])


NOT_CHECKED = Revocation("unknown", None, "revocation was not checked")
TURNED_OFF = Revocation("unknown", None, "revocation checking is turned off")


def _unknown(message: str, source: str | None = None) -> Revocation:
    return Revocation("unknown", source, f"revocation could not be checked: {message}")


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d") if moment else "an unknown date"


def _revoked(who: str, when: datetime | None, reason: Any, source: str, words: str) -> Revocation:
    because = f", reason: {_REASONS[reason]}" if reason in _REASONS else ""
    return Revocation(
        "revoked", source, f"{who} was revoked on {_day(when)}{because} (according to {words})"
    )


def _uris(names: Sequence[x509.GeneralName] | None) -> list[str]:
    return [name.value for name in names or () if isinstance(name, x509.UniformResourceIdentifier)]


def _http(urls: list[str]) -> list[str]:
    return [url for url in urls if url[:7].lower() == "http://"][:MAX_URLS]


def crl_urls(certificate: x509.Certificate) -> list[str]:
    """Return the certificate's plain-http CRL Distribution Point URLs (full CRLs only)."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    urls: list[str] = []
    for point in points:
        # A partial (by reason) or indirect CRL does not answer for every revocation.
        if point.reasons is None and point.crl_issuer is None:
            urls += _uris(point.full_name)
    return _http(urls)


def ocsp_urls(certificate: x509.Certificate) -> list[str]:
    """Return the certificate's plain-http OCSP responder URLs (Authority Information Access)."""
    try:
        access = certificate.extensions.get_extension_for_class(
            x509.AuthorityInformationAccess
        ).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    wanted = x509.AuthorityInformationAccessOID.OCSP
    return _http(_uris([d.access_location for d in access if d.access_method == wanted]))


def _key_id(certificate: x509.Certificate) -> bytes:
    # SHA-1 of the subjectPublicKey bits: what an OCSP responder ID "by key" holds.
    return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


def _verify(key: Any, signature: bytes, data: bytes, algorithm: Any) -> bool:
    """Tell whether `key` made `signature` over `data` (hash algorithm as the answer states it)."""
    try:
        if isinstance(algorithm, hashes.MD5):
            return False
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _can_sign_crls(issuer: x509.Certificate) -> bool:
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True  # old CAs carry no keyUsage: nothing restricts the key
    return usage.crl_sign


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _idp_problem(crl: x509.CertificateRevocationList, url: str, is_ca: bool) -> str | None:
    """Say why this CRL does not answer for this certificate (a partial or foreign CRL)."""
    try:
        crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
        return "it is a delta CRL, not a complete one"
    except x509.ExtensionNotFound:
        pass
    try:
        point = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return None
    if point.indirect_crl or point.only_some_reasons or point.only_contains_attribute_certs:
        return "it is a partial or indirect CRL"
    if (point.only_contains_user_certs and is_ca) or (point.only_contains_ca_certs and not is_ca):
        return "it does not cover this kind of certificate"
    names = _uris(point.full_name)
    if names and url not in names:
        # A CA's sharded CRLs each name their own URL; another shard says nothing about ours.
        return f"it is the CRL of {names[0][:200]}, not of {url[:200]}"
    return None


def judge_crl(
    crl: x509.CertificateRevocationList,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    url: str,
    now: datetime,
    *,
    who: str = "the certificate",
    signature_checked: bool = False,
) -> Revocation:
    """Judge a CRL fetched from `url` for `certificate`, issued by `issuer`, at `now`."""
    try:
        return _judge_crl(crl, certificate, issuer, url, now, who, signature_checked)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # A field cryptography reads lazily (an entry, an extension) can still be malformed.
        return _unknown(f"the CRL at {url[:200]} cannot be read")


def _judge_crl(
    crl: x509.CertificateRevocationList,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    url: str,
    now: datetime,
    who: str,
    signature_checked: bool,
) -> Revocation:
    where = f"the CRL at {url[:200]}"
    if crl.issuer != issuer.subject:
        return _unknown(f"{where} is issued by someone other than the certificate's issuer")
    if not _can_sign_crls(issuer):
        return _unknown(f"{where} is signed by a key not allowed to sign CRLs")
    if not signature_checked and not _crl_signed_by(crl, issuer):
        return _unknown(f"{where} is not signed by the certificate's issuer")
    if crl.last_update_utc > now + CLOCK_SKEW:
        return _unknown(f"{where} is dated in the future ({_day(crl.last_update_utc)})")
    if crl.next_update_utc is None or crl.next_update_utc < now:
        when = _day(crl.next_update_utc) if crl.next_update_utc else "no date"
        return _unknown(f"{where} is stale (its next update was due {when})")
    problem = _idp_problem(crl, url, _is_ca(certificate))
    if problem:
        return _unknown(f"{where} cannot be used: {problem}")
    entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
    if entry is not None:
        try:
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except (x509.ExtensionNotFound, ValueError):
            reason = None
        if reason != x509.ReasonFlags.remove_from_crl:
            return _revoked(who, entry.revocation_date_utc, reason, "crl", "its issuer's CRL")
    return Revocation("good", "crl", f"{who} is not revoked (according to its issuer's CRL)")


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(issuer.public_key())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """Read a CRL in DER (as CRL Distribution Points serve it) or PEM; raise ValueError."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def ocsp_request(certificate: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """Return the DER of an OCSP request for the certificate (SHA-1 CertID, as RFC 5019 wants)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303
    return builder.build().public_bytes(serialization.Encoding.DER)


def _about(single: Any, certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    if single.serial_number != certificate.serial_number:
        return False
    # Build the CertID this answer's hash algorithm gives for our certificate, and compare.
    wanted = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, single.hash_algorithm)
    request = wanted.build()
    return (
        request.issuer_key_hash == single.issuer_key_hash
        and request.issuer_name_hash == single.issuer_name_hash
    )


def _responder(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime
) -> x509.Certificate | None:
    """Return the certificate whose key must have signed the answer, if it may answer at all."""

    def named(candidate: x509.Certificate) -> bool:
        if response.responder_name is not None:
            return candidate.subject == response.responder_name
        return _key_id(candidate) == response.responder_key_hash

    if named(issuer):
        return issuer
    for candidate in response.certificates:
        # A delegated responder: issued directly by the issuer, for OCSP signing, valid now.
        if not named(candidate) or not signs(candidate, issuer):
            continue
        try:
            usage = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (x509.ExtensionNotFound, ValueError):
            continue
        valid = candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc
        if ExtendedKeyUsageOID.OCSP_SIGNING in usage and valid:
            return candidate
    return None


def judge_ocsp(
    data: bytes,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
    *,
    source: str = "ocsp",
) -> tuple[Revocation, datetime | None]:
    """Judge an OCSP response (from the responder or stapled); return it and until when it holds."""
    words = _SOURCE_WORDS[source]
    try:
        return _judge_ocsp(data, certificate, issuer, now, source, words)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # A field cryptography reads lazily can still turn out malformed here.
        return _unknown(f"{words} sent an unreadable answer", source), None


def _judge_ocsp(
    data: bytes,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
    source: str,
    words: str,
) -> tuple[Revocation, datetime | None]:
    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        return _unknown(f"{words} sent an unreadable answer", source), None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        status = response.response_status.name.lower().replace("_", " ")
        return _unknown(f"{words} answered '{status}'", source), None
    single = next((s for s in response.responses if _about(s, certificate, issuer)), None)
    if single is None:
        return _unknown(f"{words} answered about another certificate", source), None
    signer = _responder(response, issuer, now)
    if signer is None or not _verify(
        signer.public_key(),
        response.signature,
        response.tbs_response_bytes,
        response.signature_hash_algorithm,
    ):
        return _unknown(f"{words} sent an answer not signed by the issuer", source), None
    this_update, next_update = single.this_update_utc, single.next_update_utc
    if this_update > now + CLOCK_SKEW:
        return _unknown(f"{words} sent an answer dated in the future", source), None
    holds_until = next_update or this_update + OCSP_MAX_AGE
    if holds_until < now:
        return _unknown(f"{words} sent a stale answer (from {_day(this_update)})", source), None
    status = single.certificate_status
    if status == ocsp.OCSPCertStatus.REVOKED:
        verdict = _revoked(
            "the certificate",
            single.revocation_time_utc,
            single.revocation_reason,
            source,
            words,
        )
        return verdict, holds_until
    if status == ocsp.OCSPCertStatus.GOOD:
        message = f"the certificate is not revoked (according to {words})"
        return Revocation("good", source, message), holds_until
    return _unknown(f"{words} does not know the certificate", source), None


@dataclass
class _CrlEntry:
    crl: x509.CertificateRevocationList | None
    size: int
    failure: str | None = None
    retry_after: float = 0.0  # monotonic time, for failures
    fetched_at: float = field(default_factory=time.monotonic)
    signed_by: set[bytes] = field(default_factory=set)  # issuer fingerprints that verified it


class RevocationCache:
    """CRLs by URL until their nextUpdate, OCSP answers by (issuer, serial) until theirs.

    Never longer than `max_age` seconds (6 hours): fetched once per sweep, not once a week.

    Bounded (entries and CRL bytes, least recently used out first), shared by every check of a
    warm process, so a sweep of many targets of one CA fetches its CRL once. Concurrent checks
    needing the same CRL share one fetch.
    """

    def __init__(
        self,
        *,
        max_crl_bytes: int = 64 * 1024 * 1024,
        max_entries: int = 512,
        failure_ttl: float = FAILURE_TTL,
        max_age: float = CACHE_MAX_AGE,
    ):
        self.max_crl_bytes = max_crl_bytes
        self.max_entries = max_entries
        self.failure_ttl = failure_ttl
        self.max_age = max_age
        self._crls: OrderedDict[str, _CrlEntry] = OrderedDict()
        self._ocsp: OrderedDict[tuple, tuple[Revocation, datetime, float]] = OrderedDict()
        self._pending: dict[tuple[int, str], asyncio.Future] = {}
        self._lock = threading.Lock()  # the local server checks from several threads

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._crls.clear()
            self._ocsp.clear()

    def _crl_bytes(self) -> int:
        return sum(entry.size for entry in self._crls.values())

    def _store_crl(self, url: str, entry: _CrlEntry) -> None:
        with self._lock:
            self._crls[url] = entry
            self._crls.move_to_end(url)
            while len(self._crls) > self.max_entries or (
                len(self._crls) > 1 and self._crl_bytes() > self.max_crl_bytes
            ):
                self._crls.popitem(last=False)

    def _cached_crl(self, url: str, now: datetime) -> _CrlEntry | None:
        with self._lock:
            entry = self._crls.get(url)
            if entry is None:
                return None
            if entry.crl is None:
                fresh = time.monotonic() < entry.retry_after
            else:
                next_update = entry.crl.next_update_utc
                young = time.monotonic() - entry.fetched_at < self.max_age
                fresh = young and next_update is not None and now <= next_update
            if not fresh:
                del self._crls[url]
                return None
            self._crls.move_to_end(url)
            return entry

    async def crl(self, url: str, now: datetime, download) -> _CrlEntry:
        """Return the cached CRL of `url`, or fetch it once with `download(url)` (bytes)."""
        entry = self._cached_crl(url, now)
        if entry is not None:
            return entry
        key = (id(asyncio.get_running_loop()), url)
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            entry = await self._download(url, download)
        except BaseException:
            # Cancelled or failed unexpectedly: those waiting get a plain failure (not cached),
            # never this task's cancellation.
            future.set_result(_CrlEntry(None, 0, "the fetch was abandoned"))
            raise
        else:
            self._store_crl(url, entry)
            future.set_result(entry)
            return entry
        finally:
            self._pending.pop(key, None)

    async def _download(self, url: str, download) -> _CrlEntry:
        try:
            data = await download(url)
        except FetchFailed as error:
            return _CrlEntry(None, 0, error.message, time.monotonic() + self.failure_ttl)
        try:
            crl = load_crl(data)
            crl.next_update_utc  # noqa: B018  (reads the fields now: a bad CRL fails here)
        except ValueError:
            message = "the answer is not a readable CRL"
            return _CrlEntry(None, 0, message, time.monotonic() + self.failure_ttl)
        return _CrlEntry(crl, len(data))

    def ocsp(self, key: tuple, now: datetime) -> Revocation | None:
        """Return a cached OCSP verdict still valid at `now`."""
        with self._lock:
            found = self._ocsp.get(key)
            if found is None:
                return None
            verdict, holds_until, fetched_at = found
            if holds_until < now or time.monotonic() - fetched_at >= self.max_age:
                return None
            return verdict

    def store_ocsp(self, key: tuple, verdict: Revocation, holds_until: datetime) -> None:
        """Remember a definite OCSP verdict until `holds_until`."""
        with self._lock:
            self._ocsp[key] = (verdict, holds_until, time.monotonic())
            self._ocsp.move_to_end(key)
            while len(self._ocsp) > self.max_entries * 8:
                self._ocsp.popitem(last=False)


_shared_cache = RevocationCache()


def shared_cache() -> RevocationCache:
    """Return the cache shared by every check of this process."""
    return _shared_cache


class RevocationChecker:
    """Check revocation for many chains of one run: shared cache, bounded fetches, one policy."""

    def __init__(
        self,
        trust: TrustStore,
        *,
        policy: FetchPolicy | None = None,
        timeout: float = 10.0,
        cache: RevocationCache | None = None,
    ):
        self.trust = trust
        self.policy = policy or FetchPolicy()
        self.timeout = timeout
        self.cache = cache if cache is not None else shared_cache()
        self._slots: asyncio.Semaphore | None = None
        # One lookup per distinct chain in a run: addresses or targets serving the same leaf
        # share it (the OCSP cache alone would not stop two concurrent requests).
        self._by_chain: dict[tuple[bytes, ...], asyncio.Future] = {}

    async def _fetch(self, url: str, deadline: float, **options) -> bytes:
        if self._slots is None:
            self._slots = asyncio.Semaphore(FETCH_CONCURRENCY)
        async with self._slots:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FetchFailed("no time left for this source")
            from chalicelib.checker import fetch  # loads requests: only once a fetch is due

            return await fetch.fetch_async(url, timeout=left, policy=self.policy, **options)

    async def check(
        self, chain: Sequence[bytes], now: datetime, *, stapled: bytes | None = None
    ) -> Revocation:
        """Return the revocation status of a served chain (DER, leaf first) at `now`.

        `stapled` is an OCSP response stapled in the handshake, judged first when given.
        Never raises: a failure of any kind is `unknown`. Within one checker, the same chain
        (without a stapled answer) is looked up once; later callers share the first answer.
        """
        if stapled is not None:
            return await self._bounded(chain, now, stapled)
        key = tuple(chain)
        shared = self._by_chain.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._bounded(chain, now, None))
            self._by_chain[key] = shared
        return await asyncio.shield(shared)

    async def _bounded(
        self, chain: Sequence[bytes], now: datetime, stapled: bytes | None
    ) -> Revocation:
        deadline = time.monotonic() + self.timeout
        try:
            async with asyncio.timeout(self.timeout + 1.0):
                return await self._check(chain, now, stapled, deadline)
        except TimeoutError:
            return _unknown(f"no source answered within {self.timeout:g} s")
        except Exception as error:  # every byte is the server's: nothing may escape
            return _unknown(f"an answer could not be judged ({type(error).__name__})")

    async def _check(
        self, chain: Sequence[bytes], now: datetime, stapled: bytes | None, deadline: float
    ) -> Revocation:
        try:
            served = [x509.load_der_x509_certificate(der) for der in chain]
        except ValueError:
            return _unknown("a served certificate cannot be read")
        path = build_path(served, self.trust)
        if not path.verified or len(path.certificates) < 2:
            return _unknown("the certificate has no verified path to a trusted root")
        certificates = path.certificates
        leaf, issuer = certificates[0], certificates[1]
        # Intermediates by their CRL (the anchor, last, is trusted as it is).
        intermediates = [
            self._crl_verdict(
                certificates[n],
                certificates[n + 1],
                now,
                deadline,
                who=f"intermediate certificate '{_common_name(certificates[n])}'",
            )
            for n in range(1, len(certificates) - 1)
        ]
        verdicts = await asyncio.gather(
            self._leaf_verdict(leaf, issuer, now, stapled, deadline), *intermediates
        )
        leaf_verdict, *others = verdicts
        revoked = [v for v in (leaf_verdict, *others) if v is not None and v.status == "revoked"]
        if revoked:
            return revoked[0]
        return leaf_verdict

    async def _leaf_verdict(
        self,
        leaf: x509.Certificate,
        issuer: x509.Certificate,
        now: datetime,
        stapled: bytes | None,
        deadline: float,
    ) -> Revocation:
        notes = []
        if stapled is not None:
            verdict, _until = judge_ocsp(stapled, leaf, issuer, now, source="stapled")
            if verdict.status != "unknown":
                return verdict
            notes.append(verdict.message)
        has_ocsp, has_crl = bool(ocsp_urls(leaf)), bool(crl_urls(leaf))
        if not (has_ocsp or has_crl or notes):
            return _unknown("the certificate names no OCSP responder and no CRL")
        found = await asyncio.gather(
            self._ocsp_verdict(leaf, issuer, now, deadline) if has_ocsp else _nothing(),
            self._crl_verdict(leaf, issuer, now, deadline) if has_crl else _nothing(),
        )
        answers = [verdict for verdict in found if verdict is not None]
        for wanted in ("revoked", "good"):
            for verdict in answers:
                if verdict.status == wanted:
                    return verdict
        prefix = "revocation could not be checked: "
        reasons = [*notes, *(verdict.message for verdict in answers)]
        return _unknown("; ".join(reason.removeprefix(prefix) for reason in reasons))

    async def _ocsp_verdict(
        self, leaf: x509.Certificate, issuer: x509.Certificate, now: datetime, deadline: float
    ) -> Revocation:
        key = (issuer.subject.public_bytes(), _key_id(issuer), leaf.serial_number)
        cached = self.cache.ocsp(key, now)
        if cached is not None:
            return cached
        request = ocsp_request(leaf, issuer)
        failure = "no OCSP responder answered"
        for url in ocsp_urls(leaf):
            try:
                data = await self._fetch(
                    url,
                    deadline,
                    max_bytes=fetch_policy.MAX_OCSP_BYTES,
                    body=request,
                    content_type="application/ocsp-request",
                )
            except FetchFailed as error:
                failure = f"the OCSP responder {url[:200]} failed: {error.message}"
                continue
            verdict, holds_until = judge_ocsp(data, leaf, issuer, now)
            if verdict.status != "unknown" and holds_until is not None:
                self.cache.store_ocsp(key, verdict, holds_until)
                return verdict
            failure = verdict.message
        return _unknown(failure.removeprefix("revocation could not be checked: "), "ocsp")

    async def _crl_verdict(
        self,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        now: datetime,
        deadline: float,
        who: str = "the certificate",
    ) -> Revocation | None:
        urls = crl_urls(certificate)
        if not urls:
            return None
        failure = "no CRL could be fetched"
        for url in urls:
            entry = await self.cache.crl(
                url, now, lambda u: self._fetch(u, deadline, max_bytes=fetch_policy.MAX_CRL_BYTES)
            )
            if entry.crl is None:
                failure = f"the CRL at {url[:200]} could not be fetched: {entry.failure}"
                continue
            fingerprint = issuer.fingerprint(hashes.SHA256())
            checked = fingerprint in entry.signed_by
            if not checked and _crl_signed_by(entry.crl, issuer):
                entry.signed_by.add(fingerprint)  # a big CRL's signature is checked once
                checked = True
            verdict = judge_crl(
                entry.crl, certificate, issuer, url, now, who=who, signature_checked=checked
            )
            if verdict.status != "unknown":
                return verdict
            failure = verdict.message.removeprefix("revocation could not be checked: ")
        return _unknown(failure, "crl")


async def _nothing() -> None:
    return None


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()
