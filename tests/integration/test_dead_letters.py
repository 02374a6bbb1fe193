"""The dead-letter queue: its depth, and a replay that finds each event's function."""

from __future__ import annotations

import json

import pytest

from chalicelib import aws, dead_letters
from local import redrive

PREFIX = "sslnotify-test"  # tests/conftest.py's SSLNOTIFY_PREFIX


@pytest.fixture
def queue(emulated_aws) -> str:
    """Return the URL of the provisioned dead-letter queue."""
    url = dead_letters.queue_url(aws.client("sqs"), PREFIX)
    assert url is not None, "provisioning creates the queue"
    return url


def put(url: str, body: str) -> None:
    aws.client("sqs").send_message(QueueUrl=url, MessageBody=body)


def test_the_queue_is_provisioned_and_its_depth_counted(queue):
    assert dead_letters.depth(PREFIX) == 0
    put(queue, json.dumps({"action": "sweep"}))
    put(queue, json.dumps({"action": "check", "day": "2026-12-01", "targets": []}))
    assert dead_letters.depth(PREFIX) == 2
    assert dead_letters.depth("no-such-stage") is None


def test_redrive_invokes_each_events_function_and_keeps_the_unknown(queue):
    events = [
        {"action": "sweep"},
        {"action": "check", "day": "2026-12-01", "targets": []},
        {"action": "send_notifications", "day": "2026-12-01", "notifications": []},
        {"action": "backup"},
        {"action": "report"},
        {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}]},
    ]
    for event in events:
        put(queue, json.dumps(event))
    put(queue, json.dumps({"action": "no_such_action"}))
    put(queue, "not json")
    invoked: list[tuple[str, object]] = []
    sqs = aws.client("sqs")
    outcome = redrive.redrive(
        sqs, queue, redrive.function_for_event(), lambda f, e: invoked.append((f, e))
    )
    assert sorted(invoked, key=lambda pair: events.index(pair[1])) == list(
        zip(["cron", "checker", "mailer", "data", "reporter", "bounces"], events, strict=True)
    )
    assert outcome.replayed == {
        "cron": 1,
        "checker": 1,
        "mailer": 1,
        "data": 1,
        "reporter": 1,
        "bounces": 1,
    }
    assert outcome.unknown == 2
    # The two it could not place stay (hidden while this replay holds them, then visible).
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 2


def test_an_invocation_that_fails_leaves_its_event_in_the_queue(queue):
    put(queue, json.dumps({"action": "sweep"}))

    def refuse(function, event):
        raise ConnectionError("Lambda is unreachable")

    with pytest.raises(ConnectionError):
        redrive.redrive(aws.client("sqs"), queue, redrive.function_for_event(), refuse)
    assert dead_letters.depth(PREFIX) == 1
