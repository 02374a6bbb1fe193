"""The daily digest: one email listing an address's due certificates, most urgent first.

Pure: groups nothing by itself and sends nothing; takes what is due (the check summaries
data keeps) and returns the rendered email. digest_mailer.py decides when to send one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from chalicelib.config import Settings
from chalicelib.emails import (
    EmailMessage,
    _date,
    _days,
    _html,
    _one_line,
    display_target,
    manage_page_link,
    unsubscribe_link,
)

# In plain words, what each problem code means for the person reading (DESIGN.md 3.1 codes).
PLAIN = {
    "expired": "the certificate has expired: browsers refuse it",
    "not_yet_valid": "the certificate is not valid yet",
    "revoked": "the certificate was revoked by its issuer",
    "hostname_mismatch": "the certificate is not valid for this name",
    "untrusted": "browsers do not trust the certificate (no path to a trusted root)",
    "self_signed": "the certificate is self-signed",
    "weak_signature": "the certificate has a weak signature (MD5 or SHA-1)",
    "weak_key": "the certificate's key is too small",
    "chain_expiring": "an intermediate certificate the server sends expires soon",
    "dns_error": "its name does not resolve",
    "connect_error": "nothing answers on its port",
    "timeout": "it did not answer in time",
    "tls_error": "the TLS handshake failed",
}
URGENCY = {"invalid": 0, "error": 1, "expiring": 2}


@dataclass(frozen=True)
class DigestItem:
    """One certificate of a digest: what is wrong (or fixed) and its own unsubscribe token."""

    target: str
    kind: str  # "alert" | "fixed"
    status: str | None
    days_left: int | None
    not_after: str | None
    problems: tuple[str, ...]
    token: str

    @classmethod
    def from_notification(cls, notification: Mapping[str, Any], token: str) -> DigestItem:
        """Build an item from a due notification (its check result) and the subscription's token."""
        result = notification.get("result") or {}
        days_left = result.get("daysLeft")
        return cls(
            target=str(notification["target"]),
            kind=str(notification.get("kind")),
            status=result.get("status"),
            days_left=int(days_left) if days_left is not None else None,
            not_after=result.get("notAfter"),
            problems=tuple(str(p.get("code")) for p in result.get("problems") or ()),
            token=token,
        )

    @property
    def name(self) -> str:
        """Return the target as people write it."""
        return display_target(self.target)

    def urgency(self) -> tuple[int, int, str]:
        """Sort key: broken first, then unreachable, then fewest days left; fixed ones last."""
        group = 3 if self.kind == "fixed" else URGENCY.get(str(self.status), 2)
        return (group, self.days_left if self.days_left is not None else 0, self.target)

    def headline(self) -> str:
        """Return the problem in a few plain words (also the subject's ending)."""
        if self.kind == "fixed":
            return "is fine again"
        if "expired" in self.problems and self.days_left is not None:
            return f"expired {_days(-self.days_left)} ago" if self.days_left < 0 else "expired"
        if self.status == "error":
            return "could not be checked"
        if "expiring" in self.problems and self.days_left is not None:
            return (
                "expires within a day"
                if self.days_left == 0
                else (f"expires in {_days(self.days_left)}")
            )
        first = next((PLAIN[code] for code in self.problems if code in PLAIN), None)
        return f"has a problem: {first}" if first else "has a certificate problem"

    def details(self) -> str:
        """Return the plain-words sentence about this certificate."""
        if self.kind == "fixed":
            return f"Good news: its certificate is fine again, valid until {_date(self.not_after)}."
        words = [PLAIN[code] for code in self.problems if code in PLAIN and code != "expired"]
        if "expired" in self.problems:
            words.insert(0, f"the certificate expired on {_date(self.not_after)}")
        elif "expiring" in self.problems:
            words.insert(0, f"the certificate expires on {_date(self.not_after)}")
        text = "; ".join(words) or "the certificate has a problem browsers will reject"
        return text[:1].upper() + text[1:] + "."


def ordered(items: Sequence[DigestItem]) -> list[DigestItem]:
    """Return the items most urgent first."""
    return sorted(items, key=DigestItem.urgency)


def subject(items: Sequence[DigestItem]) -> str:
    """Name the count and the worst problem."""
    first = ordered(items)[0]
    count = len(items)
    if first.kind == "fixed":
        return _one_line(f"{count} SSL certificates are fine again, among them {first.name}")
    return _one_line(f"SSL alerts for {count} certificates: {first.name} {first.headline()}")


def one_click_url(settings: Settings, email: str, token: str) -> str:
    """Return the RFC 8058 one-click URL that ends every subscription a digest lists."""
    return (
        f"{settings.api_url}/user/{quote(email, safe='')}/unsubscribe-digest?"
        f"{urlencode({'token': token})}"
    )


def render(
    settings: Settings, email: str, items: Sequence[DigestItem], one_click_token: str
) -> EmailMessage:
    """Render the digest: each certificate with its problem and its own unsubscribe link."""
    listed = ordered(items)
    alerts = sum(1 for item in listed if item.kind != "fixed")
    opening = (
        f"Hello,\n\n{alerts} of the certificates you watch need attention today"
        if alerts
        else "Hello,\n\nToday's news about the certificates you watch"
    )
    paragraphs = [f"{opening}, {'most urgent first' if len(listed) > 1 else 'below'}:"]
    for number, item in enumerate(listed, start=1):
        paragraphs.append(
            f"{number}. {item.name} {item.headline()}\n"
            f"{item.details()}\n"
            f"Stop emails about {item.name} only: "
            f"{unsubscribe_link(settings, email, item.token, item.name)}"
        )
    paragraphs.append(
        "We check every day at 06:00 UTC and remind you daily while a problem lasts. "
        "Days with two or more emails for you come as one email like this one; your mail "
        "program's unsubscribe button stops the emails about every certificate it lists."
    )
    paragraphs.append(
        "See and change all your certificate reminders (we email you a link to sign in):\n"
        f"{manage_page_link(settings, email)}"
    )
    paragraphs.append("sslnotify")
    text = "\n\n".join(paragraphs) + "\n"
    return EmailMessage(
        kind="digest",
        to=email,
        subject=subject(listed),
        text=text,
        html=_html(text),
        headers=(
            ("List-Unsubscribe", f"<{one_click_url(settings, email, one_click_token)}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ),
    )
