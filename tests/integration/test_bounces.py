"""SES bounce and complaint notifications (via SNS) suppress addresses; nothing crashes."""

import json

import pytest

from chalicelib.config import get_settings
from chalicelib.invoke import invoke
from chalicelib.privacy import AddressVault
from lambdas.bounces import handler, suppressions
from tests.integration import sweep_stack

stack, sweep_pki, sweep_ca_bundle = (
    sweep_stack.stack,
    sweep_stack.sweep_pki,
    sweep_stack.sweep_ca_bundle,
)


def sns(*notifications):
    """Wrap SES notifications in an SNS event, as Lambda receives them."""
    return {
        "Records": [
            {"EventSource": "aws:sns", "Sns": {"Message": json.dumps(n), "Type": "Notification"}}
            for n in notifications
        ]
    }


def bounce(kind, *addresses, key="notificationType"):
    recipients = [{"emailAddress": a} for a in addresses]
    return {key: "Bounce", "bounce": {"bounceType": kind, "bouncedRecipients": recipients}}


def complaint(*addresses):
    recipients = [{"emailAddress": a} for a in addresses]
    return {"notificationType": "Complaint", "complaint": {"complainedRecipients": recipients}}


def is_suppressed(address):
    subscriber = AddressVault(get_settings().require_secret()).pseudonym(address)
    return invoke("data", {"action": "is_suppressed", "subscriber": subscriber}, wait=True)


def test_permanent_bounces_and_complaints_suppress(stack, lambda_context):
    event = sns(
        bounce("Permanent", "gone@example.org", "old@example.net"),
        complaint("angry@example.com"),
        bounce("Permanent", "configset@example.org", key="eventType"),
    )
    assert handler(event, lambda_context) == {"suppressed": 4, "ignored": 0}
    for address in ("gone@example.org", "old@example.net", "angry@example.com"):
        assert is_suppressed(address)
    assert is_suppressed("CONFIGSET@example.org")


def test_transient_bounces_and_deliveries_are_ignored(stack, lambda_context):
    event = sns(
        bounce("Transient", "full@example.org"),
        bounce("Undetermined", "odd@example.org"),
        {"notificationType": "Delivery", "delivery": {"recipients": ["fine@example.org"]}},
    )
    assert handler(event, lambda_context) == {"suppressed": 0, "ignored": 3}
    assert not is_suppressed("full@example.org")


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        "Records",
        {},
        {"Records": None},
        {"Records": [None, 7, {}]},
        {"Records": [{"Sns": {"Message": "not json"}}]},
        {"Records": [{"Sns": {"Message": "[1, 2]"}}]},
        {"Records": [{"Sns": "text"}]},
        sns({"notificationType": "Bounce"}),
        sns({"notificationType": "Bounce", "bounce": {"bounceType": "Permanent"}}),
        sns(bounce("Permanent", "not-an-address", "")),
        sns({"notificationType": "Complaint", "complaint": {"complainedRecipients": [5, {}]}}),
    ],
)
def test_malformed_events_never_crash(lambda_context, event):
    answer = handler(event, lambda_context)
    assert answer["suppressed"] == 0


def test_an_address_the_data_function_refuses_is_ignored(stack, lambda_context):
    answer = handler(sns(bounce("Permanent", "a@b@c.example")), lambda_context)
    assert answer == {"suppressed": 0, "ignored": 1}


def test_suppressions_reads_both_notification_styles():
    found, ignored = suppressions(
        sns(complaint("a@example.org"), bounce("Permanent", "b@example.org", key="eventType"))
    )
    assert (found, ignored) == ([("a@example.org", "complaint"), ("b@example.org", "bounce")], 0)
