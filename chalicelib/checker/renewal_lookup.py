"""Consult CT and ARI for checked certificates, within a bound, and amend their results.

CT is asked only about certificates in their warning period or expired (the only ones whose
owner needs to hear that a renewal exists); ARI about every certificate whose CA publishes it.
Both clients cache, so a sweep costs at most one CT search per name and one ARI request per
certificate a day. Lookups run in threads, each bounded by the clients' timeout: a slow or
failing service makes the information "unknown", never a failed or late check.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

from cryptography import x509

from chalicelib.checker import renewal as judge
from chalicelib.checker.addresses import NameEvidence
from chalicelib.checker.ari import RenewalInfo, default_directories
from chalicelib.checker.ct import CTSearch
from chalicelib.checker.evaluate import CheckResult, Problem, status_of
from chalicelib.checker.outside import OutsideUnavailable
from chalicelib.checker.probe import Evidence
from chalicelib.config import Settings
from chalicelib.logs import get_logger

logger = get_logger(__name__)

CT_WHEN = frozenset({"expiring", "expired"})  # the leaf is in its warning period, or past it
MAX_THREADS = 16


@dataclass
class RenewalLookup:
    """The configured CT and ARI clients (None: switched off)."""

    ct: CTSearch | None = None
    ari: RenewalInfo | None = None

    @property
    def enabled(self) -> bool:
        """Tell whether any outside source is on."""
        return self.ct is not None or self.ari is not None

    @property
    def calls(self) -> int:
        """Count the requests sent to outside services by this process so far."""
        return (self.ct.calls if self.ct else 0) + (self.ari.calls if self.ari else 0)

    def wanted(self, name: NameEvidence, results: Sequence[CheckResult]) -> bool:
        """Tell, without any request, whether consult() could ask a source about this name.

        CT is asked only about certificates in their warning period or past it; ARI only about
        one whose issuer has a known ACME directory. Most calm certificates need neither.
        """
        asked = self._asked_about(name, results)
        if asked is None:
            return False
        return self._wants_ct(results) or (self.ari is not None and self.ari.applies(asked[1]))

    def consult(self, name: NameEvidence, results: Sequence[CheckResult]) -> judge.Renewal | None:
        """Gather CT and ARI evidence for one probed name (None when nothing applies).

        The certificate asked about is the one the deciding address served (the result's
        top-level certificate): that is the one the alert is about.
        """
        asked = self._asked_about(name, results)
        if asked is None:
            return None
        evidence, leaf = asked
        ari = self.ari.window(leaf) if self.ari is not None else None
        found = self._search(evidence, leaf) if self._wants_ct(results) else None
        if found is None and ari is None:
            return None
        return judge.Renewal(ct=found, ari=ari)

    def _asked_about(
        self, name: NameEvidence, results: Sequence[CheckResult]
    ) -> tuple[Evidence, x509.Certificate] | None:
        """Return the deciding address's evidence and its leaf, or None (off, none, unreadable)."""
        evidence = _deciding_probe(name, results[0]) if self.enabled and results else None
        if evidence is None:
            return None
        try:
            return evidence, x509.load_der_x509_certificate(evidence.chain[0])
        except ValueError:
            return None

    def _wants_ct(self, results: Sequence[CheckResult]) -> bool:
        return self.ct is not None and any(CT_WHEN & set(result.codes) for result in results)

    def _search(self, evidence: Evidence, leaf: x509.Certificate) -> judge.CTFinding | None:
        names = [name for name in _dns_names(leaf) if not name.startswith("*.")]
        # An address as target: ask about the name the certificate itself gives first.
        query = names[0] if evidence.target.is_ip and names else evidence.target.host_ascii
        if evidence.target.is_ip and not names:
            return None
        try:
            issuances = self.ct.issuances(query)
        except OutsideUnavailable as error:
            return judge.CTFinding(error=f"the CT search is unavailable: {error}")
        try:
            served_not_before, serial = leaf.not_valid_before_utc, format(leaf.serial_number, "x")
        except ValueError:
            return None
        others = [issuance for issuance in issuances if issuance.serial != serial]
        newer = judge.newer_issuance(
            _dns_names(leaf),
            served_not_before,
            hashlib.sha256(evidence.chain[0]).hexdigest(),
            others,
            evidence.checked_at,
        )
        return judge.CTFinding(newer=newer)


def _deciding_probe(name: NameEvidence, result: CheckResult) -> Evidence | None:
    served = [probe for probe in name.probes if probe.ok]
    deciding = [probe for probe in served if probe.address == result.address]
    return (deciding or served or [None])[0]


def _serving(result: CheckResult) -> list[str]:
    """Return the addresses that serve the deciding certificate (the one alerted about)."""
    prints = {entry.address: entry.fingerprint for entry in result.addresses}
    deciding = prints.get(result.address)
    if deciding is None:
        return [result.address] if result.address else []
    return [address for address, print_ in prints.items() if print_ == deciding]


def _dns_names(leaf: x509.Certificate) -> list[str]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    except (x509.ExtensionNotFound, ValueError):
        return []


@cache
def lookup_from(settings: Settings) -> RenewalLookup:
    """Return this process's clients for the settings (built once, so their caches are kept)."""
    ct = (
        CTSearch(
            url=settings.ct_search_url,
            timeout=settings.outside_timeout,
            api_key=settings.ct_api_key,
        )
        if settings.ct_enabled
        else None
    )
    directories = (
        dict(settings.acme_directories)
        if settings.acme_directories is not None
        else default_directories()
    )
    ari = (
        RenewalInfo(directories=directories, timeout=settings.outside_timeout)
        if settings.ari_enabled
        else None
    )
    return RenewalLookup(ct=ct, ari=ari)


def amend(result: CheckResult, renewal: judge.Renewal | None) -> CheckResult:
    """Add the renewal evidence to a result: its field, and not_deployed / renewal_requested."""
    if renewal is None or result.not_after is None or result.not_before is None:
        return result
    problems = list(result.problems)
    codes = set(result.codes)
    newer = renewal.ct.newer if renewal.ct else None
    if newer is not None and codes & CT_WHEN:
        where = _serving(result)
        message = judge.not_deployed_message(newer, where, result.host)
        problems.append(Problem("not_deployed", message))
    if judge.window_moved_forward(renewal.ari, result.not_before, result.not_after):
        problems.append(Problem("renewal_requested", judge.renewal_requested_message(renewal.ari)))
    return dataclasses.replace(
        result,
        problems=tuple(problems),
        status=status_of([problem.code for problem in problems]),
        renewal=renewal,
    )


def _consult_safely(
    lookup: RenewalLookup, evidence: NameEvidence, results: Sequence[CheckResult]
) -> judge.Renewal | None:
    """Consult, and let no surprise from a server's bytes or a service fail the check."""
    try:
        return lookup.consult(evidence, results)
    except Exception:
        logger.exception("renewal lookup failed", target=evidence.target.key)
        return None


def _wanted_safely(
    lookup: RenewalLookup, evidence: NameEvidence, results: Sequence[CheckResult]
) -> bool:
    try:
        return lookup.wanted(evidence, results)
    except Exception:
        logger.exception("renewal lookup failed", target=evidence.target.key)
        return False


def amend_all(
    lookup: RenewalLookup, judged: Sequence[tuple[NameEvidence, Sequence[CheckResult]]]
) -> list[list[CheckResult]]:
    """Consult the outside sources for many targets concurrently; return the amended results.

    Only the targets a source could tell something about are handed to the threads.
    """
    if not lookup.enabled or not judged:
        return [list(results) for _evidence, results in judged]
    asking = [index for index, item in enumerate(judged) if _wanted_safely(lookup, *item)]
    found: list[judge.Renewal | None] = [None] * len(judged)
    if asking:
        with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(asking))) as pool:
            answers = pool.map(lambda index: _consult_safely(lookup, *judged[index]), asking)
            for index, answer in zip(asking, answers, strict=True):
                found[index] = answer
    return [
        [amend(result, renewal) for result in results]
        for (_evidence, results), renewal in zip(judged, found, strict=True)
    ]
