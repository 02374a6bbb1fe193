"""Every email sent through the emulated SES becomes an .eml file under <state-dir>/outbox/.

moto's server runs in this process, so its SES backend's `sent_messages` list is
read directly, twice a second; each new message is written as a standard .eml
file (the raw MIME for SendRawEmail, rebuilt for SendEmail) and announced with
one terminal line: subject and recipient; `on_sent` lets the mailbox simulator
answer mail to SES's simulator addresses.
"""

from __future__ import annotations

import email.policy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from moto.ses.models import ses_backends

from local.environment import ACCOUNT_ID

POLL_PERIOD = 0.5
_STAMP = "%Y%m%dT%H%M%S.%fZ"  # file names start with it, so they sort by time


@dataclass(frozen=True)
class OutboxEntry:
    """One saved email, as the Outbox page lists it."""

    name: str
    sent_at: str
    sender: str
    recipients: str
    subject: str


def to_eml(message: Any) -> bytes:
    """Return a message of moto's SES backend as the bytes of an .eml file."""
    raw = getattr(message, "raw_data", None)
    if raw is not None:
        return raw.encode() if isinstance(raw, str) else bytes(raw)
    built = EmailMessage()
    built["From"] = message.source
    destinations = getattr(message, "destinations", {}) or {}
    for header, field in (("To", "ToAddresses"), ("Cc", "CcAddresses")):
        if destinations.get(field):
            built[header] = ", ".join(destinations[field])
    built["Subject"] = getattr(message, "subject", "") or ""
    built["Message-ID"] = f"<{message.id}@email.amazonses.com>"
    body = getattr(message, "body", "") or ""
    built.set_content(body, subtype="html" if body.lstrip().startswith("<") else "plain")
    return built.as_bytes()


def recipients_of(message: Any) -> list[str]:
    """Return every recipient of a message of moto's SES backend."""
    destinations = getattr(message, "destinations", None) or []
    if isinstance(destinations, dict):
        return [address for addresses in destinations.values() for address in addresses]
    return list(destinations)


def read_entry(path: Path, data: bytes | None = None) -> OutboxEntry:
    """Read the headers the Outbox page shows from one .eml file (or its bytes, if at hand)."""
    if data is None:
        data = path.read_bytes()
    # Only the headers: parsing a whole MIME message costs about a millisecond, and the
    # outbox of a big morning holds hundreds.
    parsed = BytesHeaderParser(policy=email.policy.default).parsebytes(data)
    return OutboxEntry(
        name=path.name,
        sent_at=_sent_at(path.name),
        sender=str(parsed.get("From", "")),
        recipients=str(parsed.get("To", "")),
        subject=str(parsed.get("Subject", "")),
    )


def _sent_at(name: str) -> str:
    try:
        return datetime.strptime(name[:23], _STAMP).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return ""


def entries(directory: Path) -> list[OutboxEntry]:
    """Return the saved emails, newest first."""
    if not directory.is_dir():
        return []
    # Names start with a UTC timestamp, so reverse name order is newest first.
    return [read_entry(path) for path in sorted(directory.glob("*.eml"), reverse=True)]


class Outbox:
    """Save each email the emulated SES accepts, and announce it."""

    def __init__(
        self,
        directory: Path,
        region: str,
        announce: Callable[[str], None] | None = None,
        period: float = POLL_PERIOD,
        on_sent: Callable[[str, str, list[str]], None] | None = None,
    ):
        self.directory = directory
        self.region = region
        self.period = period
        self._announce = announce or (lambda line: None)
        self._on_sent = on_sent
        self._seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    def start(self) -> None:
        """Watch for sent emails in a background thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        """Save what was sent last, then stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.collect()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.collect()

    def collect(self) -> list[Path]:
        """Write every email sent since the last call; return the new files."""
        sent = ses_backends[ACCOUNT_ID][self.region].sent_messages
        new, self._seen = list(sent[self._seen :]), len(sent)
        written = []
        for message in new:
            if not hasattr(message, "raw_data") and not hasattr(message, "body"):
                continue  # templated sends: sslnotify renders its own emails
            written.append(self._write(message))
            if self._on_sent:
                self._on_sent(str(message.id), str(message.source), recipients_of(message))
        return written

    def _write(self, message: Any) -> Path:
        data = to_eml(message)
        stamp = datetime.now(UTC).strftime(_STAMP)
        path = self.directory / f"{stamp}-{str(message.id)[:16]}.eml"
        path.write_bytes(data)
        entry = read_entry(path, data)
        self._announce(f"email: {entry.subject!r} to {entry.recipients}  ({path.name})")
        return path
