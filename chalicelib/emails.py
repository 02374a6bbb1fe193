"""Render every email sslnotify sends (text plus a simple HTML part) to an EmailMessage.

Pure: takes the settings and the facts, returns a frozen dataclass; sending is mailer.py's job.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from chalicelib.checker.targets import parse_target
from chalicelib.config import Settings
from chalicelib.errors import BadInput

LEAF_CODES = {
    "expiring",
    "expired",
    "not_yet_valid",
    "hostname_mismatch",
    "self_signed",
    "weak_signature",
    "weak_key",
    "revoked",
}
UNREACHABLE_CODES = {"dns_error", "connect_error", "timeout", "tls_error"}
# A link ends before trailing punctuation: "see https://ca.example/x." links to …/x.
_URL = re.compile(r"https?://[^\s<>\"]*[^\s<>\".,;:!?)]")


@dataclass(frozen=True)
class EmailMessage:
    """One rendered email: who gets it, what it says, and its extra headers."""

    kind: str
    to: str
    subject: str
    text: str
    html: str
    headers: tuple[tuple[str, str], ...] = ()
    reply_to: str | None = None


def _one_line(text: str, limit: int = 200) -> str:
    """Keep header values to one line (no header injection) of bounded length."""
    return " ".join(str(text).split())[:limit]


def _html(text: str) -> str:
    """Render plain text as simple HTML: paragraphs, bullet lists, clickable links."""
    blocks = []
    for paragraph in text.strip().split("\n\n"):
        lines = paragraph.split("\n")
        if all(line.startswith("- ") for line in lines):
            items = "".join(f"<li>{_linked(line[2:])}</li>" for line in lines)
            blocks.append(f"<ul>{items}</ul>")
        else:
            blocks.append("<p>" + "<br>\n".join(_linked(line) for line in lines) + "</p>")
    body = "\n".join(blocks)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>'
        f'<body style="font-family: sans-serif; line-height: 1.4">\n{body}\n</body></html>\n'
    )


def _linked(line: str) -> str:
    escaped = html.escape(line, quote=True)
    return _URL.sub(lambda match: f'<a href="{match.group(0)}">{match.group(0)}</a>', escaped)


def confirm_link(
    settings: Settings, email: str, token: str, target: str = "", tolerance: str = ""
) -> str:
    """Return the link to the page that confirms a pending subscription when clicked.

    The target and days only let the page say what the button will do; the token decides.
    """
    fields = {"user": email, "uuid": token, "domain": target, "days": tolerance}
    return f"{settings.site_url}/confirm.html?{urlencode({k: v for k, v in fields.items() if v})}"


def unsubscribe_link(settings: Settings, email: str, token: str, target: str = "") -> str:
    """Return the link to the page that ends a subscription when its button is clicked."""
    fields = {"user": email, "uuid": token, "domain": target}
    query = urlencode({k: v for k, v in fields.items() if v})
    return f"{settings.site_url}/unsubscribe.html?{query}"


def manage_page_link(settings: Settings, email: str, token: str = "") -> str:
    """Return the link to the manage page: with a manage token, or prefilled to request one.

    The address and token ride in the fragment, which browsers never send to a server
    nor put in a Referer.
    """
    fields = {"user": email, "token": token}
    return f"{settings.site_url}/manage.html#{urlencode({k: v for k, v in fields.items() if v})}"


def _manage_paragraph(settings: Settings, email: str) -> str:
    return (
        "See and change all your certificate reminders (we email you a link to sign in):\n"
        f"{manage_page_link(settings, email)}"
    )


def one_click_headers(settings: Settings, email: str, token: str) -> tuple[tuple[str, str], ...]:
    """Return the RFC 8058 one-click unsubscribe headers of subscriber mail."""
    url = (
        f"{settings.api_url}/user/{quote(email, safe='')}/unsubscribe?{urlencode({'uuid': token})}"
    )
    return (
        ("List-Unsubscribe", f"<{url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    )


def display_target(target: str, result: Mapping[str, Any] | None = None) -> str:
    """Name a target as people write it: Unicode host, the port only when it is not the default.

    A STARTTLS target keeps its scheme ("smtp://mail.example.com").
    """
    host, port = (result.get("host"), result.get("port")) if result else (None, None)
    if not host or (result or {}).get("protocol", "tls") != "tls":
        try:
            return parse_target(target).shown
        except BadInput:
            if not host:
                return target
    shown = f"[{host}]" if ":" in str(host) else str(host)
    return shown if int(port or 443) == 443 else f"{shown}:{port}"


def _tolerance_words(tolerance: str) -> str:
    if str(tolerance) == "auto":
        return "within a third of its lifetime (30 days for a 90-day certificate)"
    return f"within {_days(int(tolerance))}"


def _days(count: int) -> str:
    return f"{count} day" if abs(count) == 1 else f"{count} days"


def _when(days_left: Any) -> str:
    if days_left is None:
        return "at an unknown date"
    days_left = int(days_left)
    if days_left > 0:
        return f"in {_days(days_left)}"
    if days_left == 0:
        return "within a day"
    return f"{_days(-days_left)} ago"


def _date(value: Any) -> str:
    if not value:
        return "an unknown date"
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


def _codes(result: Mapping[str, Any]) -> set[str]:
    return {str(problem.get("code")) for problem in result.get("problems") or []}


def confirmation(
    settings: Settings, email: str, target: str, tolerance: str, token: str
) -> EmailMessage:
    """Render the double opt-in email with its confirmation link."""
    name = display_target(target)
    text = (
        "Hello,\n\n"
        f"Someone, hopefully you, asked sslnotify to watch the TLS certificate of {name} "
        f"and to email this address when it expires {_tolerance_words(tolerance)}.\n\n"
        "To confirm, open this link within 48 hours:\n"
        f"{confirm_link(settings, email, token, name, tolerance)}\n\n"
        "If you did not ask for this, ignore this email: nothing happens without your "
        "confirmation, and we will not write again.\n\n"
        f"{_manage_paragraph(settings, email)}\n\n"
        "sslnotify\n"
    )
    return EmailMessage(
        kind="confirmation",
        to=email,
        subject=_one_line(f"Confirm your sslnotify subscription for {name}"),
        text=text,
        html=_html(text),
    )


def _alert_headline(name: str, result: Mapping[str, Any], codes: set[str]) -> tuple[str, str]:
    """Return the subject's ending and the opening sentence of an alert."""
    days_left, not_after = result.get("daysLeft"), _date(result.get("notAfter"))
    if result.get("status") == "error" or codes & UNREACHABLE_CODES:
        return (
            "could not check the certificate",
            f"We could not check the certificate of {name} on two daily checks in a row, "
            "so we cannot tell whether it is still valid.",
        )
    if "revoked" in codes:
        return (
            "certificate revoked",
            f"The certificate of {name} has been revoked: its certificate authority withdrew "
            "it before its expiry date, for example because its private key leaked or it was "
            "issued by mistake. A revocation is final, and browsers and clients that check "
            "revocation refuse the certificate already. Get a new certificate now (with a new "
            "private key if the key may have leaked) and install it on the server.",
        )
    if "expired" in codes:
        return (
            "certificate expired",
            f"The certificate of {name} (the leaf certificate, the server's own) expired "
            f"{_when(days_left)}, on {not_after}. Browsers now refuse it.",
        )
    if "expiring" in codes:
        return (
            f"certificate expires {_when(days_left)}",
            f"The certificate of {name} (the leaf certificate, the server's own) expires "
            f"{_when(days_left)}, on {not_after}.",
        )
    if "chain_expiring" in codes and not codes & LEAF_CODES - {"expiring"}:
        earliest = result.get("earliestExpiry") or {}
        return (
            f"intermediate certificate expires {_when(earliest.get('daysLeft'))}",
            f"An intermediate certificate that {name} sends with its own expires "
            f"{_when(earliest.get('daysLeft'))}, on {_date(earliest.get('notAfter'))}. "
            "The site's own certificate (the leaf) is still valid, but browsers will refuse "
            "the chain once the intermediate expires.",
        )
    if "renewal_requested" in codes and not codes & LEAF_CODES:
        window = (result.get("renewal") or {}).get("ari") or {}
        return (
            "your CA asks for an early renewal",
            f"The certificate authority that issued the certificate of {name} asks you to "
            f"renew it early, before {_date(window.get('windowEnd'))}, although it is still "
            "valid: CAs do this ahead of revoking certificates.",
        )
    return (
        "certificate problem",
        f"The certificate of {name} has a problem that browsers will reject.",
    )


def _advice(codes: set[str]) -> str | None:
    """Say what to do about what CT logs and the CA told us, when they told us anything."""
    if "not_deployed" in codes:
        return (
            "What to do: the renewal has already happened, so there is nothing to renew. "
            "Your server is still presenting the old certificate: reload or restart it (for "
            "example `systemctl reload nginx`), and if several servers answer for this name, "
            "install the new certificate on each of them."
        )
    if "renewal_requested" in codes:
        return (
            "What to do: renew the certificate now with your ACME client (for example "
            "`certbot renew --force-renewal`, or a client that reads the CA's renewal "
            "information), then reload your server. The CA's link above explains why."
        )
    return None


def _certificate_facts(result: Mapping[str, Any], codes: set[str]) -> list[str]:
    facts = []
    if result.get("notAfter"):
        issuer = result.get("issuedBy") or "an unknown issuer"
        facts.append(
            f"- Leaf certificate: issued to {result.get('subject') or 'an unknown subject'} "
            f"by {issuer}; valid until {_date(result.get('notAfter'))} "
            f"({_days_left_words(result.get('daysLeft'))})."
        )
    earliest = result.get("earliestExpiry") or {}
    if "chain_expiring" in codes and earliest:
        facts.append(
            f"- Intermediate certificate: {earliest.get('subject') or 'in the served chain'}; "
            f"valid until {_date(earliest.get('notAfter'))} "
            f"({_days_left_words(earliest.get('daysLeft'))})."
        )
    return facts


def _days_left_words(days_left: Any) -> str:
    if days_left is None:
        return "days left unknown"
    days_left = int(days_left)
    return f"{_days(days_left)} left" if days_left >= 0 else f"expired {_days(-days_left)} ago"


_ADDRESS_VERDICTS = {"ok": "", "expiring": ", expiring soon", "invalid": ", invalid"}


def _address_lines(result: Mapping[str, Any]) -> list[str]:
    """Say which address of the name serves what, when the name has several (DESIGN 3.1b)."""
    entries = [entry for entry in result.get("addresses") or [] if isinstance(entry, Mapping)]
    if len(entries) < 2:
        return []
    lines = []
    for entry in entries[:20]:
        address = _one_line(str(entry.get("address") or "an address"), 60)
        status = str(entry.get("status"))
        if status == "not_checked":
            reason = _one_line(str(entry.get("reason") or "no reason given"), 200)
            lines.append(f"- {address}: not checked ({reason}).")
        elif entry.get("notAfter"):
            lines.append(
                f"- {address} serves a certificate valid until {_date(entry.get('notAfter'))} "
                f"({_days_left_words(entry.get('daysLeft'))}"
                f"{_ADDRESS_VERDICTS.get(status, ', ' + _one_line(status, 20))})."
            )
        else:
            lines.append(f"- {address} could not be checked.")
    return lines


def _problem_lines(result: Mapping[str, Any]) -> list[str]:
    lines = []
    for problem in result.get("problems") or []:
        message = _one_line(str(problem.get("message") or problem.get("code")), 500)
        message = message[:1].upper() + message[1:]
        lines.append(f"- {message}" if message.endswith(".") else f"- {message}.")
    return lines


def _unsubscribe_paragraph(settings: Settings, email: str, token: str, name: str) -> str:
    return (
        f"To stop these emails about {name}, unsubscribe here:\n"
        f"{unsubscribe_link(settings, email, token, name)}"
    )


def alert(
    settings: Settings, email: str, token: str, target: str, result: Mapping[str, Any]
) -> EmailMessage:
    """Render the daily alert: which certificate, days left, expiry, issuer, every problem."""
    name = display_target(target, result)
    codes = _codes(result)
    subject_end, headline = _alert_headline(name, result, codes)
    paragraphs = [f"Hello,\n\n{headline}"]
    facts = _certificate_facts(result, codes)
    if facts:
        paragraphs.append("The certificate:\n\n" + "\n".join(facts))
    served = _address_lines(result)
    if served:
        paragraphs.append(f"{name} has several addresses; each serves:\n\n" + "\n".join(served))
    problems = _problem_lines(result)
    if problems:
        paragraphs.append("What we found:\n\n" + "\n".join(problems))
    advice = _advice(codes)
    if advice:
        paragraphs.append(advice)
    paragraphs.append(
        f"We check {name} every day at 06:00 UTC and will remind you daily until this is "
        "fixed; once it is, you will get one short email saying so."
    )
    paragraphs.append(_unsubscribe_paragraph(settings, email, token, name))
    paragraphs.append(_manage_paragraph(settings, email))
    paragraphs.append("sslnotify")
    text = "\n\n".join(paragraphs) + "\n"
    return EmailMessage(
        kind="alert",
        to=email,
        subject=_one_line(f"SSL alert for {name}: {subject_end}"),
        text=text,
        html=_html(text),
        headers=one_click_headers(settings, email, token),
    )


def fixed(
    settings: Settings, email: str, token: str, target: str, result: Mapping[str, Any]
) -> EmailMessage:
    """Render the short email that says an alert is over."""
    name = display_target(target, result)
    validity = ""
    if result.get("notAfter"):
        validity = (
            f" It is now valid until {_date(result.get('notAfter'))} "
            f"({_days_left_words(result.get('daysLeft'))}), issued by "
            f"{result.get('issuedBy') or 'an unknown issuer'}."
        )
    text = (
        f"Hello,\n\nGood news: the certificate of {name} is fine again.{validity}\n\n"
        "We keep watching it and will write again if anything goes wrong.\n\n"
        f"{_unsubscribe_paragraph(settings, email, token, name)}\n\n"
        f"{_manage_paragraph(settings, email)}\n\nsslnotify\n"
    )
    return EmailMessage(
        kind="fixed",
        to=email,
        subject=_one_line(f"SSL certificate for {name} is fine again"),
        text=text,
        html=_html(text),
        headers=one_click_headers(settings, email, token),
    )


def manage_link(settings: Settings, email: str, token: str) -> EmailMessage:
    """Render the email that carries a 24-hour link to the manage page."""
    text = (
        "Hello,\n\n"
        "Someone, hopefully you, asked for a link to manage the certificate reminders "
        "this address gets from sslnotify. Open this link within 24 hours to see every "
        "certificate you watch, change the days of warning, add a domain or unsubscribe:\n"
        f"{manage_page_link(settings, email, token)}\n\n"
        "If you did not ask for this, ignore this email: the link expires on its own and "
        "nothing changes unless it is used.\n\n"
        "sslnotify\n"
    )
    return EmailMessage(
        kind="manage",
        to=email,
        subject="Your link to manage your sslnotify reminders",
        text=text,
        html=_html(text),
    )


def feedback(settings: Settings, name: str, email: str, message: str) -> EmailMessage:
    """Render a feedback form submission for the feedback mailbox, replying to its author."""
    text = f"Feedback from {_one_line(name)} <{_one_line(email)}>:\n\n{message.strip()}\n"
    return EmailMessage(
        kind="feedback",
        to=settings.feedback_email,
        subject=_one_line(f"sslnotify feedback from {name}", 120),
        text=text,
        html=_html(text),
        reply_to=_one_line(email),
    )


def report(settings: Settings, text: str) -> EmailMessage:
    """Render the daily operator report."""
    return EmailMessage(
        kind="report",
        to=settings.operator_email,
        subject="sslnotify daily report",
        text=text.rstrip() + "\n",
        html=_html(text),
    )
