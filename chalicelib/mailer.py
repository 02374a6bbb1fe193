"""Send sslnotify's emails with SES: paced to the account's rate, suppression respected.

Every send takes a place in the account's sending rate, shared by all mailers
(send_rate.py). Subscriber notifications are claimed under a lease (claims.py) just
before they are sent and confirmed after, so AWS's retry of an invocation that failed
or was killed at any point sends what is still unsent. Addresses are opened from their
sealed form only here, only to send; logs carry pseudonyms.
"""

from __future__ import annotations

import functools
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
# How long an email another live attempt holds is waited for (its lease, at most 55 s in
# claims.LEASE_SECONDS, plus a little), and how often it is looked at again meanwhile.
HOLD_WAIT_SECONDS = 60.0
HOLD_POLL_SECONDS = 0.2
DEFAULT_QUOTA_RATE = 14.0  # SES's rate for a new production account, when the quota is unread


class DeliveryFailed(RuntimeError):
    """Some emails of a batch were not sent; their claims are released for the retry.

    Deliberately not an SslnotifyError: dispatch() lets it propagate, so AWS retries
    the asynchronous invocation instead of recording a handled answer.
    """


class Throttled(RuntimeError):
    """SES kept refusing a message for the send rate after every backoff."""


@functools.cache
def account_send_rate() -> float:
    """Return the account's SES MaxSendRate (read once per warm container)."""
    try:
        return float(aws.client("ses").get_send_quota()["MaxSendRate"])
    except Exception:  # botocore's errors have no common useful base
        logger.exception("send quota unreadable; pacing at the default rate")
        return DEFAULT_QUOTA_RATE


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
        deadline: float | None = None,
        timeout_at: float | None = None,
    ):
        # `deadline` (time.monotonic()) is when to stop starting new emails, ahead of the
        # function's timeout (`timeout_at`), so what is left goes to the retry.
        self.deadline, self.timeout_at = deadline, timeout_at
        self.settings = settings or get_settings()
        self.vault = AddressVault(self.settings.require_secret())
        self._sleep = sleep

    def send_rate(self) -> float:
        """Return the account's sending rate: the setting, or SES's own quota."""
        if self.settings.ses_send_rate is not None:
            return self.settings.ses_send_rate
        return account_send_rate()

    def _reserve(self) -> float | None:
        """Reserve a place in the account's sending rate, shared by every mailer."""
        return invoke(
            "data", {"action": "reserve_send", "rate": self.send_rate()}, wait=True, idempotent=True
        )

    def deliver(self, message: emails.EmailMessage, send_at: float | None = None) -> str:
        """Send one rendered email in its place of the account's rate, backing off if throttled.

        `send_at` is a place reserved already (epoch seconds); without one, one is reserved.
        """
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
            if send_at is None:
                send_at = self._reserve()
            if send_at is not None:
                self._sleep(max(0.0, send_at - time.time()))
                send_at = None  # a place is good for one send
                try:
                    return aws.client("ses").send_raw_email(**arguments)["MessageId"]
                except ClientError as error:
                    if error.response.get("Error", {}).get("Code") not in THROTTLING_CODES:
                        raise
                    logger.warning("ses throttled", kind=message.kind, attempt=attempt + 1)
            else:
                logger.warning("send rate full", kind=message.kind, attempt=attempt + 1)
            delay = min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2**attempt)
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

        Each email is claimed under a lease just before it is sent and confirmed after
        (claims.py), so an attempt killed at any point leaves nothing stranded: its retry
        sends what is unsent. Raises DeliveryFailed when some were left for the retry.
        """
        claims = _Claims(day, _attempt_id(), self.send_rate(), self._lease)
        # An address due two or more emails today gets one digest instead (digest_mailer.py).
        digests = digest_mailer.send_digests(self, day, _validated(notifications), claims.attempt)
        wanted = digests.remaining
        keys = [{"subscriber": n["subscriber"], "target": n["target"]} for n in wanted]
        found = (
            invoke("data", {"action": "recipients", "keys": keys}, wait=True, idempotent=True) or []
        )
        recipients = {(r["subscriber"], r["target"]): r for r in found}
        tally = dict.fromkeys(OUTCOMES, 0)
        for position, notification in enumerate(wanted):
            if self._past_deadline():
                tally["deferred"] += len(wanted) - position
                break
            outcome = self._notify(notification, recipients, claims)
            tally[outcome] += 1
            if outcome == "throttled":
                # SES keeps refusing: leave the rest to the retry.
                tally["deferred"] += len(wanted) - position - 1
                break
        claims.flush()
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

    def _lease(self) -> float | None:
        """Return how long a claim may hold at most: never past this invocation's own end.

        None: as long as data's lease (claims.LEASE_SECONDS), which also caps any other value.
        """
        if self.timeout_at is None:
            return None
        return max(1.0, self.timeout_at - time.monotonic())

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _notify(
        self,
        notification: Mapping[str, Any],
        recipients: Mapping[tuple[str, str], Mapping[str, Any]],
        claims: _Claims,
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
        entry = {"subscriber": subscriber, "target": target, "kind": kind}
        answer = self._take(claims, entry)
        if answer["state"] == "sent":
            return "already_sent"
        if answer["state"] != "claimed":
            return "deferred"  # another attempt still holds it: the retry looks again
        try:
            address = self.vault.open(recipient["address"], subscriber)
            render = emails.alert if kind == "alert" else emails.fixed
            message = render(
                self.settings, address, recipient["token"], target, notification["result"]
            )
            self.deliver(message, send_at=answer.get("send_at"))
        except Exception as error:
            logger.exception("notification not sent", subscriber=subscriber, kind=kind)
            claims.release(entry)
            return "throttled" if isinstance(error, Throttled) else "failed"
        claims.sent(entry)
        logger.info("notification sent", subscriber=subscriber, target=target, kind=kind)
        return "sent"

    def _take(self, claims: _Claims, entry: dict[str, str]) -> dict[str, Any]:
        """Claim one email; while another live attempt holds it, wait for it to go or expire."""
        answer = claims.take(entry)
        waited_until = time.monotonic() + HOLD_WAIT_SECONDS
        while answer["state"] == "held" and time.monotonic() < waited_until:
            if self._past_deadline():
                break
            self._sleep(HOLD_POLL_SECONDS)
            answer = claims.take(entry)
        return answer


class _Claims:
    """This attempt's side of the leased claims (claims.py), one data call per email.

    Confirming an email rides on the call that claims the next, so a batch of n emails
    costs n + 1 calls; a crash between a send and its confirmation costs that one email
    sent twice, when the retry takes over the expired lease.
    """

    def __init__(self, day: str, attempt: str, rate: float, lease: Callable[[], float | None]):
        self.day, self.attempt, self.rate, self._lease = day, attempt, rate, lease
        self._unconfirmed: list[dict[str, str]] = []

    def _step(self, claim: dict[str, str] | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "action": "step_notifications",
            "day": self.day,
            "batch": self.attempt,
            "sent": self._unconfirmed,
        }
        if claim is not None:
            payload.update(claim=claim, rate=self.rate)
            if (lease := self._lease()) is not None:
                payload["lease"] = lease
        # Idempotent: confirming twice is harmless, and the attempt may retake its own claim.
        answer = invoke("data", payload, wait=True, idempotent=True)
        self._unconfirmed = []
        return answer

    def take(self, entry: dict[str, str]) -> dict[str, Any]:
        """Claim one email (confirming those sent since the last call)."""
        return self._step(entry)

    def sent(self, entry: dict[str, str]) -> None:
        """Note an email SES accepted; the next call confirms it."""
        self._unconfirmed.append(entry)

    def flush(self) -> None:
        """Confirm what is still unconfirmed."""
        if self._unconfirmed:
            self._step()

    def release(self, entry: dict[str, str]) -> None:
        """Give back a claim whose email failed, so the retry need not wait for its lease."""
        try:
            invoke(
                "data",
                {"action": "release_notification", "day": self.day, "batch": self.attempt, **entry},
                wait=True,
                idempotent=True,
            )
        except InvocationError:
            # Harmless: the lease runs out within a minute and the retry takes the email.
            logger.warning("claim not released; its lease will expire", kind=entry["kind"])


def _attempt_id() -> str:
    """Return an id for this attempt at a batch: its claims, repeated, stay its own."""
    # Unique per attempt, not per batch: a duplicate delivery of the same event running at
    # the same time must not take the claims this attempt holds.
    return secrets.token_hex(16)


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
