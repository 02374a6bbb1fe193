"""The bounces function: SES bounce and complaint notifications (via SNS) suppress addresses.

Permanent bounces and complaints suppress; transient and undetermined bounces, deliveries
and anything malformed are ignored (and counted), never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from chalicelib import logs
from chalicelib.errors import BadInput
from chalicelib.invoke import invoke

logs.setup()
logger = logs.get_logger(__name__)


def _notification(record: Any) -> Mapping[str, Any] | None:
    """Return the SES notification an SNS record carries, or None when there is none."""
    if not isinstance(record, Mapping) or not isinstance(record.get("Sns"), Mapping):
        return None
    message = record["Sns"].get("Message")
    try:
        decoded = json.loads(message) if isinstance(message, str) else message
    except ValueError:
        return None
    return decoded if isinstance(decoded, Mapping) else None


def _addresses(recipients: Any) -> Iterator[str]:
    for recipient in recipients if isinstance(recipients, list) else []:
        address = recipient.get("emailAddress") if isinstance(recipient, Mapping) else None
        if isinstance(address, str) and "@" in address:
            yield address


def suppressions(event: Any) -> tuple[list[tuple[str, str]], int]:
    """Return the (address, reason) pairs to suppress from an SNS event, and how many were ignored.

    Both SES notification styles are read: identity notifications ("notificationType")
    and configuration-set events ("eventType").
    """
    found: list[tuple[str, str]] = []
    ignored = 0
    records = event.get("Records") if isinstance(event, Mapping) else None
    for record in records if isinstance(records, list) else [None]:
        notification = _notification(record)
        kind = notification and (
            notification.get("notificationType") or notification.get("eventType")
        )
        details = notification.get(str(kind).lower()) if notification else None
        if kind == "Bounce" and isinstance(details, Mapping):
            if details.get("bounceType") == "Permanent":
                found += [(a, "bounce") for a in _addresses(details.get("bouncedRecipients"))]
            else:
                ignored += 1
        elif kind == "Complaint" and isinstance(details, Mapping):
            found += [(a, "complaint") for a in _addresses(details.get("complainedRecipients"))]
        else:
            ignored += 1
    return found, ignored


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Suppress every address that bounced permanently or complained."""
    found, ignored = suppressions(event)
    suppressed = []
    for address, reason in found:
        try:
            answer = invoke(
                "data", {"action": "suppress", "email": address, "reason": reason}, True
            )
        except BadInput:
            ignored += 1  # not an address we could ever have mailed
            continue
        suppressed.append({"subscriber": (answer or {}).get("subscriber"), "reason": reason})
    logger.info("bounces handled", suppressed=suppressed, ignored=ignored)
    return {"suppressed": len(suppressed), "ignored": ignored}
