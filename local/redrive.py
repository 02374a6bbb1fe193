"""Replay the dead-letter queue: each event invoked again on its function, then deleted.

The queue is shared by every function (Lambda records no function name with a dead
letter), so each event's function is found from its action, or from its SNS records
(the bounces function's).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.config import resources

BATCH = 10  # messages per receive (SQS's maximum)
REPLAY_VISIBILITY_SECONDS = 120  # a message being replayed stays hidden this long


@dataclass
class Redrive:
    """What a replay did."""

    replayed: dict[str, int]
    unknown: int = 0

    @property
    def total(self) -> int:
        return sum(self.replayed.values())


def redrive(
    sqs: Any,
    url: str,
    function_for: Callable[[Any], str | None],
    invoke_async: Callable[[str, Any], None],
    limit: int = 10_000,
) -> Redrive:
    """Invoke each dead letter's function again (asynchronously), deleting it once invoked.

    An event whose function cannot be told is left in the queue and counted as unknown;
    an invocation that fails leaves its message to reappear (nothing is lost).
    """
    outcome = Redrive(replayed={})
    seen: set[str] = set()
    while outcome.total + outcome.unknown < limit:
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=BATCH,
            VisibilityTimeout=REPLAY_VISIBILITY_SECONDS,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            return outcome
        for message in fresh:
            seen.add(message["MessageId"])
            try:
                event = json.loads(message["Body"])
            except ValueError:
                event = None
            function = function_for(event)
            if function is None:
                outcome.unknown += 1
                continue
            invoke_async(function, event)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            outcome.replayed[function] = outcome.replayed.get(function, 0) + 1
    return outcome


def function_by_action(actions: Mapping[str, str]) -> Callable[[Any], str | None]:
    """Return a finder of an event's function, given each action's function."""

    def function_for(event: Any) -> str | None:
        if not isinstance(event, dict):
            return None
        records = event.get("Records")
        if isinstance(records, list) and records and isinstance(records[0], dict):
            source = records[0].get("EventSource") or records[0].get("eventSource")
            return "bounces" if source == "aws:sns" else None
        action = event.get("action")
        return actions.get(action) if isinstance(action, str) else None

    return function_for


def function_for_event() -> Callable[[Any], str | None]:
    """Return the finder of a dead letter's function, from each handler's ACTIONS."""
    actions: dict[str, str] = {}
    for key, spec in resources()["functions"].items():
        if key == "api":  # invoked synchronously only: it has no dead letters
            continue
        module = importlib.import_module(spec["handler"].rpartition(".")[0])
        for action in getattr(module, "ACTIONS", {}):
            actions.setdefault(action, key)
    return function_by_action(actions)
