"""Mail to SES's simulator addresses comes back as the events the bounces function reads."""

from __future__ import annotations

import pytest

from lambdas.bounces import suppressions
from local.mailbox_simulator import notification, simulated, sns_event

TOPIC = "arn:aws:sns:us-east-1:123456789012:sslnotify-test-bounces"


def test_only_simulator_addresses_are_answered():
    recipients = [
        "Ann <ann@example.com>",
        "BOUNCE@simulator.amazonses.com",
        "bounce@example.com",
        "<bounce@simulator.amazonses.com>",  # the same recipient, from the To header
    ]
    assert simulated(recipients) == [("Bounce", "BOUNCE@simulator.amazonses.com")]
    assert simulated(["complaint@simulator.amazonses.com"]) == [
        ("Complaint", "complaint@simulator.amazonses.com")
    ]


@pytest.mark.parametrize(("kind", "reason"), [("Bounce", "bounce"), ("Complaint", "complaint")])
def test_the_bounces_function_reads_what_the_simulator_sends(kind, reason):
    address = f"{reason}@simulator.amazonses.com"
    event = sns_event(TOPIC, notification(kind, address, "message-1", "noreply@sslnotify.test"))
    assert suppressions(event) == ([(address, reason)], 0)
