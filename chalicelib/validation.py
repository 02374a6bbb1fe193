"""User input at the edge: email addresses, tolerances, targets, tokens and feedback fields.

Every check raises BadInput with a message that is safe to show, so nothing a user
types reaches the rest of the service unchecked.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from email_validator import EmailNotValidError
from email_validator import validate_email as _check_email_syntax

from chalicelib.checker.targets import Target, parse_target, protocol_name
from chalicelib.errors import BadInput

DEFAULT_TOLERANCE = "30"
MAX_TOLERANCE_DAYS = 365
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit, less the angle brackets
MAX_TARGET_LENGTH = 300
MAX_NAME_LENGTH = 100
MAX_MESSAGE_LENGTH = 5000
MAX_FEEDBACK_BODY = 16 * 1024  # bytes of a posted feedback form
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
_DAYS = re.compile(r"[0-9]{1,3}")
_PORT = re.compile(r"[0-9]{1,5}")
_MULTILINE_OK = {"\n", "\r", "\t"}
# Bidirectional overrides and isolates reorder how text reads (the "Trojan Source" trick).
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
_REFUSED_CATEGORIES = {"Cc", "Cs", "Co", "Cn"}  # control, lone surrogate, private, unassigned


def clean_text(value: Any, field: str, max_length: int, multiline: bool = False) -> str:
    """Return a text field stripped, or refuse it when it is not plain printable text."""
    if not isinstance(value, str):
        raise BadInput(f"{field} must be text")
    if len(value) > max_length:
        raise BadInput(f"{field} is too long (at most {max_length} characters)")
    allowed = _MULTILINE_OK if multiline else set()
    refused = _REFUSED_CATEGORIES if multiline else _REFUSED_CATEGORIES | {"Zl", "Zp"}
    for character in value:
        if character in allowed:
            continue
        if character in _BIDI_CONTROLS or unicodedata.category(character) in refused:
            raise BadInput(f"{field} contains characters that are not allowed")
    return value.strip()


def _percent_decoded(text: str, field: str, max_length: int) -> str:
    """Decode a path segment that reached us still percent-encoded (API Gateway may leave it)."""
    if "%" not in text:
        return text
    try:
        return clean_text(unquote(text, errors="strict"), field, max_length)
    except UnicodeError:
        raise BadInput(f"{field} is not valid UTF-8") from None


def email_address(value: Any, field: str = "email address") -> str:
    """Return the address in the one form sslnotify stores and mails, or refuse it."""
    text = clean_text(value, field, MAX_EMAIL_LENGTH * 3)
    if "@" not in text:
        text = _percent_decoded(text, field, MAX_EMAIL_LENGTH)
    if not text:
        raise BadInput(f"{field} is missing")
    try:
        checked = _check_email_syntax(
            text, check_deliverability=False, allow_smtputf8=False, allow_display_name=False
        )
    except (EmailNotValidError, UnicodeError) as error:
        raise BadInput(f"{field} is not valid: {error}") from None
    address = checked.ascii_email or checked.normalized
    if len(address) > MAX_EMAIL_LENGTH:
        raise BadInput(f"{field} is too long")
    return address


def tolerance(value: Any) -> str:
    """Return the tolerance as it crosses boundaries: "1" to "365" or "auto" (default "30")."""
    if value is None or value == "":
        return DEFAULT_TOLERANCE
    text = str(value).strip().lower() if isinstance(value, str | int) else None
    if text == "auto":
        return "auto"
    if text is None or isinstance(value, bool) or not _DAYS.fullmatch(text):
        raise BadInput(f"days must be a whole number from 1 to {MAX_TOLERANCE_DAYS} or 'auto'")
    days = int(text)
    if not 1 <= days <= MAX_TOLERANCE_DAYS:
        raise BadInput(f"days must be a whole number from 1 to {MAX_TOLERANCE_DAYS} or 'auto'")
    return str(days)


def tolerance_value(text: str) -> int | str:
    """Return a checked tolerance string as evaluate() takes it: an int, or "auto"."""
    return "auto" if text == "auto" else int(text)


def port(value: Any) -> int | None:
    """Return a port number 1-65535, or None when none was given."""
    if value is None or value == "":
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    if isinstance(value, bool) or not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise BadInput("port must be a whole number from 1 to 65535")
    return int(text)


def protocol(value: Any) -> str | None:
    """Return the protocol a target is checked with ("tls", "smtp"...), or None when none given."""
    if value is None or value == "":
        return None
    return protocol_name(clean_text(value, "protocol", 20))


def target(value: Any, port_number: int | None = None, protocol_text: Any = None) -> Target:
    """Return the target a user typed (host, host:port, [v6]:port or URL), or refuse it.

    A URL's scheme (smtp://...) or `protocol_text` names the protocol; both must agree.
    """
    text = _percent_decoded(
        clean_text(value, "domain", MAX_TARGET_LENGTH), "domain", MAX_TARGET_LENGTH
    )
    if not text:
        raise BadInput("domain is missing")
    parsed = parse_target(text, default_port=port_number, protocol=protocol(protocol_text))
    if port_number is not None and parsed.port != port_number:
        raise BadInput(f"the port in the domain ({parsed.port}) differs from port={port_number}")
    return parsed


def token(value: Any, field: str = "uuid") -> str:
    """Return a token from a link, or refuse it when it cannot be one of ours."""
    if not isinstance(value, str) or not value:
        raise BadInput(f"{field} is missing")
    if not _TOKEN.fullmatch(value.strip()):
        raise BadInput(f"{field} is not a valid token")
    return value.strip()


@dataclass(frozen=True)
class Feedback:
    """A message posted through the feedback form."""

    name: str
    email: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """Return the fields as the mailer's send_feedback takes them."""
        return {"name": self.name, "email": self.email, "message": self.message}


def feedback(fields: Mapping[str, Any]) -> Feedback:
    """Return the feedback fields checked: name, a reply address, and a message."""
    if not isinstance(fields, Mapping):
        raise BadInput("feedback must be an object with name, email and message")
    unknown = sorted(
        repr(str(key)[:40]) for key in fields if key not in {"name", "email", "message"}
    )
    if unknown:
        raise BadInput(f"unexpected field(s): {', '.join(unknown)}")
    name = clean_text(fields.get("name") or "", "name", MAX_NAME_LENGTH)
    message = clean_text(fields.get("message") or "", "message", MAX_MESSAGE_LENGTH, True)
    if not name:
        raise BadInput("name is missing")
    if not message:
        raise BadInput("message is missing")
    return Feedback(name=name, email=email_address(fields.get("email") or ""), message=message)
