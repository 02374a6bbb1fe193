"""Send sslnotify's emails with SES: paced to the account's rate, suppression respected.

Subscriber notifications are claimed (a conditional write in data) before they are sent
and released when sending fails, so AWS's retry of the invocation sends exactly what is
still unsent. Addresses are opened from their sealed form only here, only to send;
logs carry pseudonyms.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Mapping
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws, digest_mailer, emails
from chalicelib.config import Settings, get_settings
from chalicelib.errors import InvocationError, PayloadError
from chalicelib.invoke import invoke
from chalicelib.logs import get_logger
from chalicelib.privacy import AddressVault

logger = get_logger(__name__)

THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "MaxSendRateExceeded"}
)
OUTCOMES = (
    "sent",
    "already_sent",
    "suppressed",
    "unsubscribed",
    "failed",
    "throttled",
    "deferred",
)
SEND_ATTEMPTS = 6
BACKOFF_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0


class DeliveryFailed(RuntimeError):
    """Some emails of a batch were not sent; their claims are released for the retry.

    Deliberately not an SslnotifyError: dispatch() lets it propagate, so AWS retries
    the asynchronous invocation instead of recording a handled answer.
    """


class Throttled(RuntimeError):
    """SES kept refusing a message for the send rate after every backoff."""


class Pacer:
    """Space calls so that at most `rate` happen per second."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._clock, self._sleep = clock, sleep
        self._next = 0.0

    def wait(self) -> None:
        """Block until the next call is allowed."""
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


# Bodies and non-ASCII headers in quoted-printable: readable, and 7-bit safe for any relay.
_UTF8 = Charset("utf-8")
_UTF8.header_encoding = _UTF8.body_encoding = QP
# No folding of plain headers: a List-Unsubscribe URL must stay one unbroken <…>.
_WIRE = compat32.clone(max_line_length=998)


def _set(mime: MIMEMultipart, name: str, value: str) -> None:
    # Non-ASCII text as encoded words of at most 75 characters each (RFC 2047), folded.
    if not value.isascii():
        value = Header(value, _UTF8, header_name=name).encode(maxlinelen=75)
    mime[name] = value


def to_mime(message: emails.EmailMessage, sender: str) -> bytes:
    """Return the raw MIME bytes of a rendered email (text with an HTML alternative)."""
    # email.mime's classic builder: a third of the CPU of EmailMessage.set_content, which
    # counted on a morning of hundreds of alerts.
    mime = MIMEMultipart("alternative")
    _set(mime, "From", sender)
    _set(mime, "To", message.to)
    _set(mime, "Subject", message.subject)
    mime["Date"] = formatdate(usegmt=True)
    mime["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    if message.reply_to:
        _set(mime, "Reply-To", message.reply_to)
    for name, value in message.headers:
        _set(mime, name, value)
    mime.attach(MIMEText(message.text, "plain", _UTF8))
    mime.attach(MIMEText(message.html, "html", _UTF8))
    return mime.as_bytes(policy=_WIRE)


class Mailer:
    """Render and send every kind of email, one batch per invocation."""

    def __init__(
        self,
        settings: Settings | None = None,
        sleep: Callable[[float], None] = time.sleep,
        pacer: Pacer | None = None,
        deadline: float | None = None,
    ):
        # `deadline` (time.monotonic()) is when to stop starting new emails, ahead of the
        # function's timeout, so what is left is released for the retry, not stranded.
        self.deadline = deadline
        self.settings = settings or get_settings()
        self.vault = AddressVault(self.settings.require_secret())
        self._sleep = sleep
        self.pacer = pacer or Pacer(self.settings.ses_send_rate, sleep=sleep)

    def deliver(self, message: emails.EmailMessage) -> str:
        """Send one rendered email at the paced rate, backing off while SES throttles."""
        raw = to_mime(message, self.settings.sender)
        arguments: dict[str, Any] = {
            "Source": self.settings.sender,
            "Destinations": [message.to],
            "RawMessage": {"Data": raw},
            "Tags": [{"Name": "emailType", "Value": message.kind}],
        }
        if self.settings.ses_configuration_set:
            arguments["ConfigurationSetName"] = self.settings.ses_configuration_set
        for attempt in range(SEND_ATTEMPTS):
            self.pacer.wait()
            try:
                return aws.client("ses").send_raw_email(**arguments)["MessageId"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in THROTTLING_CODES:
                    raise
                delay = min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2**attempt)
                logger.warning("ses throttled", kind=message.kind, attempt=attempt + 1)
                self._sleep(delay * (0.5 + random.random() / 2))
        raise Throttled(f"SES throttled a {message.kind} email {SEND_ATTEMPTS} times")

    def _suppressed(self, pseudonym: str) -> bool:
        return bool(
            invoke(
                "data", {"action": "is_suppressed", "subscriber": pseudonym}, True, idempotent=True
            )
        )

    def send_confirmation(self, email: str, target: str, tolerance: str, token: str) -> dict:
        """Send the double opt-in email, unless the address bounced or complained before."""
        pseudonym = self.vault.pseudonym(email)
        if self._suppressed(pseudonym):
            logger.info("confirmation skipped: suppressed", subscriber=pseudonym)
            return {"sent": 0, "suppressed": 1}
        message = emails.confirmation(self.settings, email, target, str(tolerance), token)
        self.deliver(message)
        logger.info("confirmation sent", subscriber=pseudonym, target=target)
        return {"sent": 1, "suppressed": 0}

    def send_manage_link(self, email: str, token: str) -> dict:
        """Send a link to the manage page, unless the address bounced or complained before."""
        pseudonym = self.vault.pseudonym(email)
        if self._suppressed(pseudonym):
            logger.info("manage link skipped: suppressed", subscriber=pseudonym)
            return {"sent": 0, "suppressed": 1}
        self.deliver(emails.manage_link(self.settings, email, token))
        logger.info("manage link sent", subscriber=pseudonym)
        return {"sent": 1, "suppressed": 0}

    def send_feedback(self, name: str, email: str, message: str) -> dict:
        """Forward a feedback form to the feedback mailbox."""
        self.deliver(emails.feedback(self.settings, name, email, message))
        logger.info("feedback sent", author=self.vault.pseudonym(email))
        return {"sent": 1}

    def send_report(self, text: str) -> dict:
        """Mail the daily report to the operator."""
        self.deliver(emails.report(self.settings, text))
        logger.info("report sent", characters=len(text))
        return {"sent": 1}

    def send_notifications(self, day: str, notifications: list[dict[str, Any]]) -> dict:
        """Send the alerts and fixed emails of a batch, each at most once per day.

        Raises DeliveryFailed after releasing the claims of what could not be sent.
        """
        batch = _attempt_id()
        # An address due two or more emails today gets one digest instead (digest_mailer.py).
        digests = digest_mailer.send_digests(self, day, _validated(notifications), batch)
        wanted = digests.remaining
        keys = [{"subscriber": n["subscriber"], "target": n["target"]} for n in wanted]
        found = (
            invoke("data", {"action": "recipients", "keys": keys}, wait=True, idempotent=True) or []
        )
        recipients = {(r["subscriber"], r["target"]): r for r in found}
        claimed = self._claim(day, wanted, recipients, batch)
        tally = dict.fromkeys(OUTCOMES, 0)
        for position, notification in enumerate(wanted):
            if self.deadline is not None and time.monotonic() >= self.deadline:
                tally["deferred"] += self._release_rest(day, wanted[position:], claimed)
                break
            outcome = self._notify(day, notification, recipients, claimed)
            tally[outcome] += 1
            if outcome == "throttled":
                # SES keeps refusing: leave the rest, claims released, to the retry.
                tally["deferred"] += self._release_rest(day, wanted[position + 1 :], claimed)
                break
        logger.info("notifications processed", day=day, **tally)
        tally["failed"] += digests.tally["failed"]
        if tally["failed"] or tally["throttled"] or tally["deferred"]:
            unsent = tally["failed"] + tally["throttled"] + tally["deferred"]
            raise DeliveryFailed(f"{unsent} notification(s) left for the retry")
        return tally

    def send_waiting_digests(self, day: str, subscribers: list[str]) -> dict:
        """Send the notifications kept for these subscribers' digests, if their day is complete.

        The checker asks this for the subscribers whose results it recorded without anything
        due: if theirs was the day's last result, their kept notifications go out now.
        """
        if not isinstance(subscribers, list) or not all(isinstance(s, str) for s in subscribers):
            raise PayloadError("subscribers must be a list of pseudonyms")
        kept = digest_mailer.waiting_notifications(day, subscribers)
        return self.send_notifications(day, kept) if kept else {"sent": 0}

    def _release_rest(
        self, day: str, rest: list[dict[str, Any]], claimed: set[tuple[str, str, str]]
    ) -> int:
        """Release this attempt's claims on notifications it will not send; count them."""
        left = [n for n in rest if (n["subscriber"], n["target"], n["kind"]) in claimed]
        for notification in left:
            _release(
                {key: notification[key] for key in ("subscriber", "target", "kind")} | {"day": day}
            )
        return len(left)

    def _claim(
        self,
        day: str,
        wanted: list[dict[str, Any]],
        recipients: Mapping[tuple[str, str], Mapping[str, Any]],
        batch: str,
    ) -> set[tuple[str, str, str]]:
        """Claim in one data call every notification that has a deliverable recipient."""
        # One call per batch, not per email: a retried batch then costs one claim call,
        # and a failed call fails the attempt as a whole, to be retried by AWS.
        deliverable = [
            {"subscriber": n["subscriber"], "target": n["target"], "kind": n["kind"]}
            for n in wanted
            if (recipient := recipients.get((n["subscriber"], n["target"])))
            and not recipient.get("suppressed")
        ]
        if not deliverable:
            return set()
        answer = invoke(
            "data",
            {
                "action": "claim_notifications",
                "day": day,
                "notifications": deliverable,
                "batch": batch,
            },
            wait=True,
            idempotent=True,  # a repeated claim by this attempt takes the same emails again
        )
        return {(c["subscriber"], c["target"], c["kind"]) for c in answer or []}

    def _notify(
        self,
        day: str,
        notification: Mapping[str, Any],
        recipients: Mapping[tuple[str, str], Mapping[str, Any]],
        claimed: set[tuple[str, str, str]],
    ) -> str:
        subscriber, target, kind = (
            notification["subscriber"],
            notification["target"],
            notification["kind"],
        )
        recipient = recipients.get((subscriber, target))
        if recipient is None:
            return "unsubscribed"
        if recipient.get("suppressed"):
            return "suppressed"
        claim = {"subscriber": subscriber, "target": target, "kind": kind, "day": day}
        if (subscriber, target, kind) not in claimed:
            return "already_sent"
        try:
            address = self.vault.open(recipient["address"], subscriber)
            render = emails.alert if kind == "alert" else emails.fixed
            message = render(
                self.settings, address, recipient["token"], target, notification["result"]
            )
            self.deliver(message)
        except Exception as error:
            logger.exception("notification not sent", subscriber=subscriber, kind=kind)
            _release(claim)
            return "throttled" if isinstance(error, Throttled) else "failed"
        logger.info("notification sent", subscriber=subscriber, target=target, kind=kind)
        return "sent"


def _attempt_id() -> str:
    """Return an id for this attempt at a batch: its claims, repeated, stay its own."""
    # Unique per attempt, not per batch: a duplicate delivery of the same event running at
    # the same time must not take the claims this attempt holds.
    return secrets.token_hex(16)


def _release(claim: Mapping[str, str], attempts: int = 3) -> None:
    """Undo a claim so the retry sends it; a claim left behind would lose today's email."""
    for attempt in range(1, attempts + 1):
        try:
            invoke("data", {"action": "release_notification", **claim}, wait=True)
            return
        except InvocationError:
            if attempt == attempts:
                raise
            time.sleep(0.2 * attempt)


def _validated(notifications: Any) -> list[dict[str, Any]]:
    if not isinstance(notifications, list):
        raise PayloadError("notifications must be a list")
    for notification in notifications:
        if (
            not isinstance(notification, dict)
            or not isinstance(notification.get("subscriber"), str)
            or not isinstance(notification.get("target"), str)
            or notification.get("kind") not in {"alert", "fixed"}
            or not isinstance(notification.get("result"), dict)
        ):
            raise PayloadError("each notification needs subscriber, target, kind and result")
    return notifications
