"""Pure: judge the Evidence of a probe at a given time and produce the check result (DESIGN 3.1)."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from chalicelib import logs
from chalicelib.checker.certparts import extension, organisation_or_name, parts
from chalicelib.checker.probe import Evidence
from chalicelib.checker.renewal import Renewal
from chalicelib.checker.revocation import NOT_CHECKED, Revocation
from chalicelib.checker.trust import TrustStore, build_path, default_trust, is_self_signed
from chalicelib.config import DEFAULT_TOLERANCE

logger = logs.get_logger(__name__)

ERROR_CODES = ("dns_error", "connect_error", "timeout", "tls_error")
INVALID_CODES = (
    "expired",
    "not_yet_valid",
    "hostname_mismatch",
    "untrusted",
    "self_signed",
    "weak_signature",
    "weak_key",
    "revoked",
)
# not_deployed and renewal_requested come from outside the handshake (renewal_lookup.py).
EXPIRING_CODES = ("expiring", "chain_expiring", "not_deployed", "renewal_requested")
STATUSES = ("ok", "expiring", "invalid", "error")  # in order of severity
DAY = timedelta(days=1)
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
MIN_DSA_BITS = 2048


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a target, with a code from DESIGN 3.1's vocabulary."""

    code: str
    message: str
    addresses: tuple[str, ...] = ()  # set only when seen on some addresses of the name only

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape."""
        shape: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.addresses:
            shape["addresses"] = list(self.addresses)
        return shape

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        """Rebuild a problem from its JSON."""
        return cls(data["code"], data["message"], tuple(data.get("addresses") or ()))


@dataclass(frozen=True)
class AddressResult:
    """The verdict on one address behind the name (DESIGN 3.1b).

    An address deliberately left out has status "not_checked" and a reason; it never counts.
    """

    address: str
    status: str
    problems: tuple[str, ...] = ()
    days_left: int | None = None
    not_after: datetime | None = None
    fingerprint: str | None = None  # SHA-256 of the leaf's DER, lower-case hex
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape."""
        return {
            "address": self.address,
            "status": self.status,
            "problems": list(self.problems),
            "daysLeft": self.days_left,
            "notAfter": iso(self.not_after),
            "fingerprint": self.fingerprint,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AddressResult:
        """Rebuild an address's verdict from its JSON."""
        return cls(
            address=data["address"],
            status=data["status"],
            problems=tuple(data.get("problems") or ()),
            days_left=data.get("daysLeft"),
            not_after=parse_iso(data.get("notAfter")),
            fingerprint=data.get("fingerprint"),
            reason=data.get("reason"),
        )


@dataclass(frozen=True)
class ChainEntry:
    """One certificate the server sent."""

    subject: str
    issuer: str
    not_after: datetime

    def to_dict(self) -> dict[str, str]:
        """Return the JSON shape."""
        return {"subject": self.subject, "issuer": self.issuer, "notAfter": iso(self.not_after)}


@dataclass(frozen=True)
class Expiry:
    """The certificate of the served chain that expires first."""

    subject: str
    not_after: datetime
    days_left: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape."""
        return {
            "subject": self.subject,
            "notAfter": iso(self.not_after),
            "daysLeft": self.days_left,
        }


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check, as DESIGN 3.1 describes it; `to_dict()` is its JSON."""

    host: str
    host_ascii: str
    port: int
    days_tolerance: int | None
    tolerance_mode: str
    status: str
    problems: tuple[Problem, ...]
    days_left: int | None
    not_after: datetime | None
    not_before: datetime | None
    issued_by: str | None
    subject: str | None
    valid_hosts: tuple[str, ...]
    chain: tuple[ChainEntry, ...]
    earliest_expiry: Expiry | None
    response: str
    checked_at: datetime
    address: str | None = None
    protocol: str = "tls"  # or the STARTTLS protocol's name ("smtp", "imap", ...)
    renewal: Renewal | None = None  # CT and ARI evidence, when consulted
    addresses: tuple[AddressResult, ...] = ()  # every address of the name (DESIGN 3.1b)
    revocation: Revocation | None = None  # None when no certificate was obtained

    @property
    def alert(self) -> bool:
        """Tell whether the result calls for an alert (expiring or invalid)."""
        return self.status in ("expiring", "invalid")

    @property
    def codes(self) -> tuple[str, ...]:
        """Return the problem codes, in order."""
        return tuple(problem.code for problem in self.problems)

    @property
    def target_key(self) -> str:
        """Return the target's storage key: "host_ascii:port" (IPv6 in brackets), or "smtp://…"."""
        host = f"[{self.host_ascii}]" if ":" in self.host_ascii else self.host_ascii
        where = f"{host}:{self.port}"
        return where if self.protocol == "tls" else f"{self.protocol}://{where}"

    def to_dict(self) -> dict[str, Any]:
        """Return the check result JSON of DESIGN 3.1."""
        return {
            "host": self.host,
            "hostAscii": self.host_ascii,
            "port": self.port,
            "daysTolerance": self.days_tolerance,
            "toleranceMode": self.tolerance_mode,
            "status": self.status,
            "alert": self.alert,
            "problems": [problem.to_dict() for problem in self.problems],
            "daysLeft": self.days_left,
            "notAfter": iso(self.not_after),
            "notBefore": iso(self.not_before),
            "issuedBy": self.issued_by,
            "subject": self.subject,
            "validHosts": list(self.valid_hosts),
            "chain": [entry.to_dict() for entry in self.chain],
            "earliestExpiry": self.earliest_expiry.to_dict() if self.earliest_expiry else None,
            "response": self.response,
            "checkedAt": iso(self.checked_at),
            "address": self.address,
            "protocol": self.protocol,
            "renewal": self.renewal.to_dict() if self.renewal else None,
            "addresses": [entry.to_dict() for entry in self.addresses],
            "revocation": self.revocation.to_dict() if self.revocation else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        """Rebuild a result from its JSON (as to_dict wrote it)."""
        earliest = data.get("earliestExpiry")
        return cls(
            host=data["host"],
            host_ascii=data["hostAscii"],
            port=int(data["port"]),
            days_tolerance=data["daysTolerance"],
            tolerance_mode=data["toleranceMode"],
            status=data["status"],
            problems=tuple(Problem.from_dict(p) for p in data["problems"]),
            days_left=data["daysLeft"],
            not_after=parse_iso(data["notAfter"]),
            not_before=parse_iso(data["notBefore"]),
            issued_by=data["issuedBy"],
            subject=data["subject"],
            valid_hosts=tuple(data["validHosts"]),
            chain=tuple(
                ChainEntry(e["subject"], e["issuer"], parse_iso(e["notAfter"]))
                for e in data["chain"]
            ),
            earliest_expiry=Expiry(
                earliest["subject"], parse_iso(earliest["notAfter"]), earliest["daysLeft"]
            )
            if earliest
            else None,
            response=data["response"],
            checked_at=parse_iso(data["checkedAt"]),
            address=data.get("address"),
            protocol=data.get("protocol") or "tls",
            renewal=Renewal.from_dict(data.get("renewal")),
            addresses=tuple(AddressResult.from_dict(a) for a in data.get("addresses") or ()),
            revocation=Revocation.from_dict(data.get("revocation")),
        )


def iso(moment: datetime | None) -> str | None:
    """Format a moment as ISO 8601 UTC with a Z (2027-02-05T12:00:00Z)."""
    return None if moment is None else _iso(moment)


@lru_cache(maxsize=4096)
def _iso(moment: datetime) -> str:
    # A certificate's dates are written into every result of every tolerance of a target.
    # isoformat, not strftime: "%Y" drops the zeros of a hostile year 0001, which parse_iso
    # would then refuse.
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def parse_iso(text: str | None) -> datetime | None:
    """Read an ISO 8601 UTC moment written by iso()."""
    return datetime.fromisoformat(text) if text else None


def status_of(codes: tuple[str, ...] | list[str]) -> str:
    """Apply DESIGN 3.1's status rules to a set of problem codes."""
    if any(code in ERROR_CODES for code in codes):
        return "error"
    if any(code in INVALID_CODES for code in codes):
        return "invalid"
    if any(code in EXPIRING_CODES for code in codes):
        return "expiring"
    return "ok"


def days_between(now: datetime, moment: datetime) -> int:
    """Return whole days from now until moment, rounded down (negative once it has passed)."""
    return math.floor((moment - now) / DAY)


def auto_tolerance(not_before: datetime, not_after: datetime) -> int:
    """Return one third of a certificate's lifetime in whole days, rounded down."""
    # notAfter is inclusive (RFC 5280): a 90-day certificate ends one second before day 90.
    lifetime = not_after - not_before + timedelta(seconds=1)
    return math.floor(lifetime / 3 / DAY)


def _subject(certificate: x509.Certificate) -> str:
    return parts(certificate).subject_label


def _issuer(certificate: x509.Certificate) -> str:
    return parts(certificate).issuer_label


def _issuer_label(certificate: x509.Certificate) -> str:
    return organisation_or_name(parts(certificate).issuer)


def _san(certificate: x509.Certificate) -> x509.SubjectAlternativeName | None:
    return extension(certificate, x509.SubjectAlternativeName)


def valid_hosts(certificate: x509.Certificate) -> tuple[str, ...]:
    """Return the DNS names and IP addresses of the certificate's subjectAltName."""
    san = _san(certificate)
    if san is None:
        return ()
    names = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    addresses = [str(address) for address in san.get_values_for_type(x509.IPAddress)]
    return tuple(names + addresses)


def _dns_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern == host:
        return True
    labels = pattern.split(".")
    # RFC 6125: a wildcard is a whole left-most label, covers exactly one label, and needs at
    # least two labels after it (no "*.com").
    if labels[0] != "*" or len(labels) < 3 or "*" in ".".join(labels[1:]):
        return False
    host_labels = host.split(".")
    return (
        len(host_labels) == len(labels) and host_labels[1:] == labels[1:] and bool(host_labels[0])
    )


def matches_host(certificate: x509.Certificate, host_ascii: str, is_ip: bool) -> bool:
    """Tell whether the certificate is valid for the host (RFC 6125: SANs only, no CN fallback)."""
    san = _san(certificate)
    if san is None:
        return False
    if is_ip:
        wanted = ipaddress.ip_address(host_ascii)
        return any(address == wanted for address in san.get_values_for_type(x509.IPAddress))
    return any(_dns_matches(name, host_ascii) for name in san.get_values_for_type(x509.DNSName))


def _key_weakness(certificate: x509.Certificate) -> str | None:
    try:
        key = certificate.public_key()
    except Exception:  # any failure to decode a hostile key is the same plain problem
        return "the certificate's public key is of an unsupported kind"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"the certificate's RSA key has {key.key_size} bits (at least {MIN_RSA_BITS} needed)"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        return f"the certificate's EC key has {key.curve.key_size} bits (at least {MIN_EC_BITS})"
    if isinstance(key, dsa.DSAPublicKey) and key.key_size < MIN_DSA_BITS:
        return f"the certificate's DSA key has {key.key_size} bits (at least {MIN_DSA_BITS})"
    return None


def _signature_weakness(certificate: x509.Certificate) -> str | None:
    try:
        algorithm = certificate.signature_hash_algorithm
    except Exception:  # unknown (UnsupportedAlgorithm) or malformed parameters
        return "the certificate is signed with an unknown algorithm"
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        label = "MD5" if isinstance(algorithm, hashes.MD5) else "SHA-1"
        return f"the certificate is signed with {label}, which is no longer secure"
    return None


def _plural(days: int) -> str:
    return f"{days} day" if days == 1 else f"{days} days"


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


@dataclass(frozen=True)
class _Tolerance:
    days: int | None
    mode: str


def _tolerance(days_tolerance: int | str, leaf: x509.Certificate | None) -> _Tolerance:
    if days_tolerance == "auto":
        if leaf is None:
            return _Tolerance(None, "auto")
        return _Tolerance(
            auto_tolerance(leaf.not_valid_before_utc, leaf.not_valid_after_utc), "auto"
        )
    if (
        isinstance(days_tolerance, bool)
        or not isinstance(days_tolerance, int)
        or days_tolerance < 0
    ):
        raise ValueError(
            f"days_tolerance must be a whole number of days or 'auto', not {days_tolerance!r}"
        )
    return _Tolerance(days_tolerance, "days")


def _error_result(
    evidence: Evidence, tolerance: _Tolerance, code: str, message: str
) -> CheckResult:
    target = evidence.target
    return CheckResult(
        host=target.host,
        host_ascii=target.host_ascii,
        port=target.port,
        days_tolerance=tolerance.days,
        tolerance_mode=tolerance.mode,
        status="error",
        problems=(Problem(code, message),),
        days_left=None,
        not_after=None,
        not_before=None,
        issued_by=None,
        subject=None,
        valid_hosts=(),
        chain=(),
        earliest_expiry=None,
        response=f"Could not check {target.display}: {message}",
        checked_at=evidence.checked_at,
        address=evidence.address,
        protocol=target.protocol,
    )


def _shown(evidence: Evidence) -> str:
    return evidence.target.shown


def _expiry_sentence(shown: str, leaf: x509.Certificate, now: datetime) -> str:
    not_after, not_before = leaf.not_valid_after_utc, leaf.not_valid_before_utc
    if now < not_before:
        return f"SSL certificate for {shown} is not valid until {iso(not_before)}"
    if now > not_after:
        ago = math.floor((now - not_after) / DAY)
        when = f"{_plural(ago)} ago" if ago else "less than a day ago"
        return f"SSL certificate for {shown} expired {when} (on {_day(not_after)})"
    days = days_between(now, not_after)
    if days == 0:
        return f"SSL certificate for {shown} will expire in less than a day"
    return f"SSL certificate for {shown} will expire in {_plural(days)}"


def evaluate(
    evidence: Evidence,
    now: datetime | None = None,
    days_tolerance: int | str = DEFAULT_TOLERANCE,
    trust: TrustStore | None = None,
) -> CheckResult:
    """Judge what a probe saw at `now` (default: when seen) against `trust` (default: system)."""
    return evaluate_tolerances(evidence, (days_tolerance,), now, trust)[0]


def evaluate_tolerances(
    evidence: Evidence,
    tolerances: Sequence[int | str],
    now: datetime | None = None,
    trust: TrustStore | None = None,
) -> list[CheckResult]:
    """Judge one probe once, then give its result for each tolerance, in order.

    The certificates are read and the trust path is built once, whatever the number of
    tolerances: subscribers of one target differ only in how early they want to hear.
    """
    now = now or evidence.checked_at
    trust = trust if trust is not None else default_trust()
    if evidence.error or not evidence.chain:
        code, message = evidence.error or "tls_error", evidence.message or "no certificate"
        return [
            _error_result(evidence, _tolerance(days, None), code, message) for days in tolerances
        ]
    for days in tolerances:
        _tolerance(days, None)  # a caller's bad tolerance raises here, before the guard below
    try:
        served = tuple(x509.load_der_x509_certificate(der) for der in evidence.chain)
    except Exception:  # undecodable DER: no part of the certificate can be shown
        message = "the server sent a certificate that cannot be read"
        return [
            _error_result(evidence, _tolerance(days, None), "tls_error", message)
            for days in tolerances
        ]
    try:
        judged = _judge(evidence, served, now, trust)
        return [judged.result(_tolerance(days, served[0])) for days in tolerances]
    except Exception:
        # The last resort of every caller (CLI, check-now, the checker's batches): judging one
        # target must never lose its neighbours. certparts makes every read of a certificate
        # safe, so reaching here is a bug, logged in full, and an error on this target alone.
        logger.exception("judging a certificate failed", target=evidence.target.display)
        message = "the certificate could not be judged (an internal error, logged)"
        return [
            _error_result(evidence, _tolerance(days, None), "tls_error", message)
            for days in tolerances
        ]


@dataclass(frozen=True)
class _Judged:
    """Everything about a served chain that does not depend on the tolerance."""

    evidence: Evidence
    now: datetime
    leaf: x509.Certificate
    days_left: int
    # (name, notAfter, days left) of each certificate whose expiry counts beyond the leaf
    others: tuple[tuple[str, datetime, int], ...]
    later: tuple[Problem, ...]  # hostname, trust, self-signed and weakness problems
    valid_hosts: tuple[str, ...]
    chain: tuple[ChainEntry, ...]
    earliest: Expiry
    response: str

    def result(self, tolerance: _Tolerance) -> CheckResult:
        """Return the check result for one tolerance."""
        leaf, now, days_left = self.leaf, self.now, self.days_left
        not_after, not_before = leaf.not_valid_after_utc, leaf.not_valid_before_utc
        problems: list[Problem] = []
        if now > not_after:
            problems.append(Problem("expired", f"the certificate expired on {iso(not_after)}"))
        elif now < not_before:
            problems.append(
                Problem("not_yet_valid", f"the certificate is valid from {iso(not_before)}")
            )
        elif tolerance.days is not None and days_left < tolerance.days:
            message = f"the certificate expires in {_plural(days_left)} ({_day(not_after)})"
            problems.append(Problem("expiring", message))
        for name, other_not_after, days in self.others:
            if now > other_not_after:
                message = f"intermediate certificate '{name}' expired on {_day(other_not_after)}"
                problems.append(Problem("expired", message))
            elif tolerance.days is not None and days < tolerance.days:
                message = f"intermediate certificate '{name}' expires in {_plural(days)}"
                problems.append(Problem("chain_expiring", f"{message} ({_day(other_not_after)})"))
        problems += self.later
        target = self.evidence.target
        return CheckResult(
            host=target.host,
            host_ascii=target.host_ascii,
            port=target.port,
            days_tolerance=tolerance.days,
            tolerance_mode=tolerance.mode,
            status=status_of([problem.code for problem in problems]),
            problems=tuple(problems),
            days_left=days_left,
            not_after=not_after,
            not_before=not_before,
            issued_by=_issuer_label(leaf),
            subject=_subject(leaf),
            valid_hosts=self.valid_hosts,
            chain=self.chain,
            earliest_expiry=self.earliest,
            response=self.response,
            checked_at=self.evidence.checked_at,
            address=self.evidence.address,
            protocol=target.protocol,
            revocation=self.evidence.revocation or NOT_CHECKED,
        )


def _judge(
    evidence: Evidence, served: tuple[x509.Certificate, ...], now: datetime, trust: TrustStore
) -> _Judged:
    leaf = served[0]
    target = evidence.target
    path = build_path(served, trust)
    # Only the verified path can break the site; without one, every served certificate counts.
    checked = path.intermediates if path.verified else served[1:]
    later: list[Problem] = []
    hosts = valid_hosts(leaf)
    if not matches_host(leaf, target.host_ascii, target.is_ip):
        covered = ", ".join(hosts[:5]) + (", …" if len(hosts) > 5 else "")
        if parts(leaf).extensions is None:
            detail = "its subjectAltName cannot be read"
        else:
            detail = f"it covers {covered}" if hosts else "it names no host in subjectAltName"
        later.append(
            Problem(
                "hostname_mismatch", f"the certificate is not valid for {target.host} ({detail})"
            )
        )
    if not path.verified:
        later.append(Problem("untrusted", path.reason or "no path to a trusted root"))
    revocation = evidence.revocation
    if revocation is not None and revocation.status == "revoked":
        later.append(Problem("revoked", f"{revocation.message}: a new certificate is needed now"))
    if is_self_signed(leaf):
        later.append(
            Problem("self_signed", "the certificate signs itself instead of being issued by a CA")
        )
    weak_signature = _signature_weakness(leaf)
    if weak_signature:
        later.append(Problem("weak_signature", weak_signature))
    weak_key = _key_weakness(leaf)
    if weak_key:
        later.append(Problem("weak_key", weak_key))
    response = _expiry_sentence(_shown(evidence), leaf, now)
    serious = [p.message for p in later if p.code in INVALID_CODES]
    if serious:
        # A not-yet-valid leaf's sentence already says what is wrong: more wrong is "and".
        response += (", and " if now < leaf.not_valid_before_utc else ", but ") + "; ".join(serious)
    earliest = min(served, key=lambda certificate: certificate.not_valid_after_utc)
    return _Judged(
        evidence=evidence,
        now=now,
        leaf=leaf,
        days_left=days_between(now, leaf.not_valid_after_utc),
        others=tuple(
            (
                _subject(certificate),
                certificate.not_valid_after_utc,
                days_between(now, certificate.not_valid_after_utc),
            )
            for certificate in checked
        ),
        later=tuple(later),
        valid_hosts=hosts,
        chain=tuple(ChainEntry(_subject(c), _issuer(c), c.not_valid_after_utc) for c in served),
        earliest=Expiry(
            subject=_subject(earliest),
            not_after=earliest.not_valid_after_utc,
            days_left=days_between(now, earliest.not_valid_after_utc),
        ),
        response=response,
    )
