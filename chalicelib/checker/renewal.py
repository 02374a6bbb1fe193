"""Pure: judge what CT logs and the CA's renewal information say about a served certificate.

Two facts outside the handshake: a newer certificate for the same names that the server does not
serve yet ("renewed but not deployed", from a Certificate Transparency search), and a renewal
window that the CA moved forward (ACME Renewal Information, RFC 9773). The lookups live in ct.py
and ari.py; this module only decides, at a given `now`, from what they returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# A renewal younger than this is still being rolled out: no alert yet.
DEPLOY_GRACE = timedelta(hours=6)
# RFC 9773 clients renew about two thirds into a lifetime; a window starting before that was
# moved forward by the CA (typically ahead of a revocation).
NORMAL_WINDOW_SHARE = 2 / 3


def iso(moment: datetime | None) -> str | None:
    """Format a moment as ISO 8601 UTC with a Z, as the check result does."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_words(moment: datetime | None) -> str:
    """Write a day as people read it: "14 November 2026"."""
    if moment is None:
        return "an unknown day"
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%B %Y}"


@dataclass(frozen=True)
class Issuance:
    """One certificate issuance found in CT logs for a name."""

    dns_names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    serial: str | None = None  # lower-case hex, when the certificate itself was available
    sha256: str | None = None


@dataclass(frozen=True)
class CTFinding:
    """What the CT search said: a newer issuance the server does not serve, or none."""

    newer: Issuance | None = None
    error: str | None = None  # the search failed: the information is unknown

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape of result.renewal.ct."""
        if self.error is not None:
            return {"newerIssued": None, "message": self.error}
        if self.newer is None:
            return {"newerIssued": False}
        return {
            "newerIssued": True,
            "notBefore": iso(self.newer.not_before),
            "notAfter": iso(self.newer.not_after),
            "serial": self.newer.serial,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CTFinding | None:
        """Rebuild a finding from to_dict()'s JSON (None stays None)."""
        if not data:
            return None
        if data.get("newerIssued") is None:
            return cls(error=str(data.get("message") or "unknown"))
        if not data.get("newerIssued"):
            return cls()
        return cls(
            newer=Issuance(
                dns_names=(),
                not_before=datetime.fromisoformat(data["notBefore"]),
                not_after=datetime.fromisoformat(data["notAfter"]),
                serial=data.get("serial"),
            )
        )


@dataclass(frozen=True)
class RenewalWindow:
    """The CA's suggested renewal window for a certificate (RFC 9773)."""

    start: datetime | None = None
    end: datetime | None = None
    explanation_url: str | None = None
    error: str | None = None  # the lookup failed: the information is unknown

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape of result.renewal.ari."""
        if self.error is not None:
            return {"windowStart": None, "windowEnd": None, "explanationURL": None,
                    "message": self.error}  # fmt: skip
        return {
            "windowStart": iso(self.start),
            "windowEnd": iso(self.end),
            "explanationURL": self.explanation_url,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RenewalWindow | None:
        """Rebuild a window from to_dict()'s JSON (None stays None)."""
        if not data:
            return None
        if data.get("message") is not None and data.get("windowStart") is None:
            return cls(error=str(data["message"]))
        return cls(
            start=datetime.fromisoformat(data["windowStart"]) if data.get("windowStart") else None,
            end=datetime.fromisoformat(data["windowEnd"]) if data.get("windowEnd") else None,
            explanation_url=data.get("explanationURL"),
        )


@dataclass(frozen=True)
class Renewal:
    """Evidence from outside the handshake: CT (None: not consulted) and ARI (None: no ACME CA)."""

    ct: CTFinding | None = None
    ari: RenewalWindow | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape of result.renewal."""
        return {
            "ct": self.ct.to_dict() if self.ct else None,
            "ari": self.ari.to_dict() if self.ari else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Renewal | None:
        """Rebuild from to_dict()'s JSON."""
        if not data:
            return None
        return cls(
            ct=CTFinding.from_dict(data.get("ct")), ari=RenewalWindow.from_dict(data.get("ari"))
        )

    @property
    def unknown(self) -> tuple[str, ...]:
        """Name the sources that were consulted but could not answer."""
        return tuple(
            name
            for name, part in (("ct", self.ct), ("ari", self.ari))
            if part is not None and part.error is not None
        )


def _covers(pattern: str, name: str) -> bool:
    if pattern == name:
        return True
    if pattern.startswith("*.") and "." in name:
        return name.split(".", 1)[1] == pattern[2:]
    return False


def covers_all(names: Iterable[str], wanted: Iterable[str]) -> bool:
    """Tell whether every wanted DNS name is covered by one of `names` (one-label wildcards)."""
    have = [name.lower().rstrip(".") for name in names]
    return all(any(_covers(name, want.lower().rstrip(".")) for name in have) for want in wanted)


def newer_issuance(
    served_names: Sequence[str],
    served_not_before: datetime,
    served_sha256: str | None,
    issuances: Iterable[Issuance],
    now: datetime,
) -> Issuance | None:
    """Return the newest issuance that renews the served certificate and is old enough to deploy.

    It must cover every DNS name the served certificate covers, start after it, not be the served
    certificate itself, still be valid at `now`, and have been issued DEPLOY_GRACE ago or more.
    """
    if not served_names:
        return None
    candidates = [
        issuance
        for issuance in issuances
        if issuance.not_before > served_not_before
        and (served_sha256 is None or issuance.sha256 != served_sha256)
        and issuance.not_after > now
        and issuance.not_before <= now - DEPLOY_GRACE
        and covers_all(issuance.dns_names, served_names)
    ]
    return max(candidates, key=lambda issuance: issuance.not_before, default=None)


def window_moved_forward(
    window: RenewalWindow | None, not_before: datetime, not_after: datetime
) -> bool:
    """Tell whether the CA's window starts before two thirds of the certificate's lifetime."""
    if window is None or window.error is not None or window.start is None:
        return False
    usual_start = not_before + (not_after - not_before) * NORMAL_WINDOW_SHARE
    return window.start < usual_start


def not_deployed_message(newer: Issuance, addresses: Sequence[str], host: str) -> str:
    """Say precisely that a renewal exists and what to do about it."""
    serial = f"serial {newer.serial}, " if newer.serial else ""
    where = ", ".join(addresses) if addresses else host
    verb = "serves" if len(addresses) <= 1 else "serve"
    return (
        f"a renewed certificate was issued on {day_words(newer.not_before)} ({serial}valid until "
        f"{day_words(newer.not_after)}), but {where} still {verb} the old one: reload or "
        "redeploy your server"
    )


def renewal_requested_message(window: RenewalWindow) -> str:
    """Say that the CA asks for an early renewal, until when, and why (its explanation link)."""
    before = day_words(window.end) if window.end else day_words(window.start)
    because = (
        f", because of {window.explanation_url}"
        if window.explanation_url
        else " (it gave no explanation link)"
    )
    return f"your CA asks you to renew before {before}{because}"
