"""SES's mailbox simulator, locally: mail to bounce@ or complaint@simulator.amazonses.com
comes back as the bounce or complaint notification SES would publish through SNS.

In AWS the configuration set sends these events to an SNS topic that invokes the
bounces function; locally the outbox hands each simulated one to the bounces
function directly, wrapped as that SNS invocation event.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from email.utils import getaddresses
from typing import Any

SIMULATOR = "simulator.amazonses.com"
KINDS = {f"bounce@{SIMULATOR}": "Bounce", f"complaint@{SIMULATOR}": "Complaint"}


def simulated(recipients: list[str]) -> list[tuple[str, str]]:
    """Return (kind, address) for every simulator address among the recipients."""
    # SES lists a recipient once per place it appears (Destinations and the To header).
    found: dict[str, tuple[str, str]] = {}
    for _, address in getaddresses(recipients):
        kind = KINDS.get(address.lower())
        if kind:
            found.setdefault(address.lower(), (kind, address))
    return list(found.values())


def notification(kind: str, address: str, message_id: str, source: str) -> dict[str, Any]:
    """Return the SES event (configuration-set style) for one bounce or complaint."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    event: dict[str, Any] = {
        "eventType": kind,
        "mail": {
            "timestamp": now,
            "messageId": message_id,
            "source": source,
            "destination": [address],
        },
    }
    if kind == "Bounce":
        event["bounce"] = {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address, "action": "failed", "status": "5.1.1"}],
            "timestamp": now,
            "feedbackId": str(uuid.uuid4()),
        }
    else:
        event["complaint"] = {
            "complainedRecipients": [{"emailAddress": address}],
            "complaintFeedbackType": "abuse",
            "timestamp": now,
            "feedbackId": str(uuid.uuid4()),
        }
    return event


def sns_event(topic_arn: str, message: dict[str, Any]) -> dict[str, Any]:
    """Wrap a message as the event SNS invokes a Lambda function with."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic_arn}:{uuid.uuid4()}",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": str(uuid.uuid4()),
                    "TopicArn": topic_arn,
                    "Subject": None,
                    "Message": json.dumps(message),
                    "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                },
            }
        ]
    }
