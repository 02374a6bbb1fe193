"""Data actions on the checkstate table: record each day's results, count the day.

Run by the data function. Reads and writes are batched (BatchGetItem, BatchWriteItem).
The notification claims that keep an email to one per day live on the same items
(claims.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.conditions import Key

from chalicelib import aws, claims
from chalicelib.alerting import CheckState, decide
from chalicelib.errors import PayloadError
from chalicelib.logs import get_logger
from chalicelib.sweep import require_day

logger = get_logger(__name__)

TABLE = "checkstate"
TALLY = "#tally"  # the partition of per-day count items (no pseudonym starts with '#')
FACTS = "#target"  # the partition of each target's last certificate dates (the manage page's)
BATCH_GET_LIMIT = 100


def _require_key(item: Any) -> tuple[str, str]:
    if not isinstance(item, Mapping):
        raise PayloadError("each entry must be an object with subscriber and target")
    subscriber, target = item.get("subscriber"), item.get("target")
    if not isinstance(subscriber, str) or not isinstance(target, str) or not subscriber:
        raise PayloadError("each entry needs a subscriber and a target (strings)")
    return subscriber, target


def _load_states(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], CheckState]:
    """Read the states of the given subscriptions, a hundred keys per request."""
    table = aws.table(TABLE)
    wanted = list(dict.fromkeys(keys))
    states: dict[tuple[str, str], CheckState] = {}
    for start in range(0, len(wanted), BATCH_GET_LIMIT):
        request: dict[str, Any] = {
            table.name: {
                "Keys": [
                    {"subscriber": subscriber, "target": target}
                    for subscriber, target in wanted[start : start + BATCH_GET_LIMIT]
                ],
                "ConsistentRead": True,
            }
        }
        while request:
            answer = table.meta.client.batch_get_item(RequestItems=request)
            for item in answer.get("Responses", {}).get(table.name, []):
                state = CheckState.from_item(item)
                states[(state.subscriber, state.target)] = state
            request = answer.get("UnprocessedKeys") or {}
    return states


def _by_subscription(results: Any) -> list[tuple[tuple[str, str], Mapping[str, Any]]]:
    """Read results given one per subscription: [{"subscriber", "target", "result"}]."""
    if not isinstance(results, list):
        raise PayloadError("results must be a list")
    entries = []
    for entry in results:
        key = _require_key(entry)
        if not isinstance(entry.get("result"), Mapping):
            raise PayloadError("each entry needs a result (the check result object)")
        entries.append((key, entry["result"]))
    return entries


def _by_target(
    targets: Any, counts: dict[str, int]
) -> list[tuple[tuple[str, str], Mapping[str, Any]]]:
    """Read results given once per target and tolerance, as the checker sends them:
    [{"target", "results": {tolerance: result}, "subscriptions": [{"subscriber", "tolerance"}]}].

    Fills `counts` with each subscriber's count of subscriptions in today's sweep, when over one.
    """
    if not isinstance(targets, list):
        raise PayloadError("targets must be a list")
    entries = []
    for group in targets:
        target = group.get("target") if isinstance(group, Mapping) else None
        results = group.get("results") if isinstance(group, Mapping) else None
        subscriptions = group.get("subscriptions") if isinstance(group, Mapping) else None
        if not isinstance(target, str) or not isinstance(results, Mapping):
            raise PayloadError("each target needs a target and its results by tolerance")
        if not isinstance(subscriptions, list):
            raise PayloadError("each target needs a list of subscriptions")
        for subscription in subscriptions:
            if not isinstance(subscription, Mapping):
                raise PayloadError("each subscription must be an object")
            subscriber, _ = _require_key({**subscription, "target": target})
            result = results.get(str(subscription.get("tolerance")))
            if not isinstance(result, Mapping):
                raise PayloadError("each subscription's tolerance needs a result")
            entries.append(((subscriber, target), result))
            count = subscription.get("count")
            if isinstance(count, int) and not isinstance(count, bool) and count > 1:
                counts[subscriber] = count
    return entries


def record_results(
    day: str, results: list[dict[str, Any]] | None = None, targets: Any = None
) -> list[dict[str, Any]]:
    """Record today's result of each subscription; return the notifications due.

    Results come either once per target and tolerance (`targets`, as the checker sends
    them) or once per subscription (`results`). Idempotent per day: a second call for the
    same day writes nothing and returns the same notifications (the mailer's claims then
    stop a second email).
    """
    require_day(day)
    if (results is None) == (targets is None):
        raise PayloadError("give either results or targets")
    counts: dict[str, int] = {}
    entries = _by_target(targets, counts) if targets is not None else _by_subscription(results)
    previous = _load_states(key for key, _ in entries)
    notifications: list[dict[str, Any]] = []
    changed: dict[tuple[str, str], CheckState] = {}
    calm: list[tuple[str, str]] = []
    for (subscriber, target), result in entries:
        before = previous.get((subscriber, target))
        decision = decide(before, subscriber, target, day, result)
        if decision.changed and _calm(decision):
            if before is not None:
                calm.append((subscriber, target))  # nothing left to remember: forget it
        elif decision.changed:
            changed[(subscriber, target)] = decision.state
        if decision.kind:
            notifications.append(
                {
                    "subscriber": subscriber,
                    "target": target,
                    "kind": decision.kind,
                    "result": result,
                }
                # How many of the subscriber's results make its day complete (see digest.py).
                | ({"count": counts[subscriber]} if subscriber in counts else {})
            )
    with aws.table(TABLE).batch_writer(overwrite_by_pkeys=["subscriber", "target"]) as writer:
        for state in changed.values():
            writer.put_item(Item=state.to_item())
        for subscriber, target in calm:
            writer.delete_item(Key={"subscriber": subscriber, "target": target})
        writer.put_item(Item=_tally(day, entries))
        for facts in _target_facts(day, entries):
            writer.put_item(Item=facts)
    logger.info(
        "results recorded",
        day=day,
        results=len(entries),
        written=len(changed),
        forgotten=len(calm),
        notifications=len(notifications),
    )
    return notifications


def _calm(decision: Any) -> bool:
    """Tell whether a subscription is fine and owes nothing: then it needs no state at all."""
    # Most subscriptions are calm most days. Keeping no item for them makes the daily read
    # of 10,000 states a read of the few hundred that matter (alerting, failing, notified
    # today); a missing state decides exactly as a calm one (alerting.decide).
    new = decision.state
    return (
        decision.kind is None and new.status == "ok" and not new.alerting and new.error_streak == 0
    )


def _tally(day: str, entries: list[tuple[tuple[str, str], Mapping[str, Any]]]) -> dict[str, Any]:
    """Return the day's count item for one call; a retried call overwrites its own item."""
    keys = sorted(key for key, _ in entries)
    digest = hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:16]
    return {
        "subscriber": TALLY,
        "target": f"{day}#{digest}",
        "checked": len(entries),
        "targets": len({target for (_, target), _ in entries}),
        "errors": sum(1 for _, result in entries if result.get("status") == "error"),
        "renewal_unknown": len(
            {target for (_, target), result in entries if result.get("renewalUnknown")}
        ),
    }


def _target_facts(
    day: str, entries: list[tuple[tuple[str, str], Mapping[str, Any]]]
) -> list[dict[str, Any]]:
    """Return one item per target seen with a certificate: its dates and when it was checked.

    Calm subscriptions keep no state (see _calm), yet the manage page and the calendar feed
    show every certificate's expiry: one item per target, not per subscriber, holds it.
    """
    facts: dict[str, dict[str, Any]] = {}
    for (_, target), result in entries:
        if result.get("notAfter") and target not in facts:
            facts[target] = {
                "subscriber": FACTS,
                "target": target,
                "notAfter": str(result["notAfter"]),
                "notBefore": str(result.get("notBefore") or ""),
                "checked_day": day,
                "checkedAt": str(result.get("checkedAt") or day),
            }
    return list(facts.values())


def record_sweep_plan(day: str, subscriptions: int) -> dict[str, Any]:
    """Record how many subscriptions the day's sweep set out to check (a retry overwrites it).

    The 07:00 report compares it with the day's checked count to tell a finished sweep.
    """
    require_day(day)
    if isinstance(subscriptions, bool) or not isinstance(subscriptions, int) or subscriptions < 0:
        raise PayloadError("subscriptions must be a count")
    item = {"subscriber": TALLY, "target": f"{day}#plan", "planned": subscriptions, "sweeps": 1}
    aws.table(TABLE).put_item(Item=item)
    return {"day": day, "planned": subscriptions}


def _day_tallies(day: str) -> dict[str, int]:
    table = aws.table(TABLE)
    # planned/sweeps come from the plan item, the rest from the checkers' items.
    totals = {
        "checked": 0,
        "targets": 0,
        "errors": 0,
        "renewal_unknown": 0,
        "planned": 0,
        "sweeps": 0,
    }
    arguments: dict[str, Any] = {
        "KeyConditionExpression": Key("subscriber").eq(TALLY) & Key("target").begins_with(day),
    }
    while True:
        page = table.query(**arguments)
        for item in page.get("Items", []):
            for name in totals:
                totals[name] += int(item.get(name, 0))
        if "LastEvaluatedKey" not in page:
            return totals
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def forget_state(subscriber: str, target: str) -> None:
    """Delete a subscription's check state (it was unsubscribed)."""
    aws.table(TABLE).delete_item(Key={"subscriber": subscriber, "target": target})


def release_notification(
    day: str, subscriber: str, target: str, kind: str, batch: str | None = None
) -> bool:
    """Undo a claim whose email could not be sent, so that a retry sends it at once."""
    entry = {"subscriber": subscriber, "target": target, "kind": kind}
    return claims.release(day, entry, batch)


def _scan(key: str, **arguments: Any) -> Iterable[dict[str, Any]]:
    table = aws.table(key)
    while True:
        page = table.scan(**arguments)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _since_epoch(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def report_counts(day: str, since: str) -> dict[str, Any]:
    """Count the day's checks and notifications, and list suppressions recorded since `since`."""
    require_day(day)
    since_epoch = _since_epoch(since)
    if since_epoch is None:
        raise PayloadError("since must be an ISO 8601 time")
    counts = {**_day_tallies(day), "alerts": 0, "fixed": 0, "states": 0}
    for item in _scan(TABLE):
        if item["subscriber"] in (TALLY, FACTS):
            continue
        counts["states"] += 1
        # A claim still under its lease is an email in flight (or lost), not one sent.
        counts["alerts"] += item.get("alert_sent_day") == day and "alert_lease" not in item
        counts["fixed"] += item.get("fixed_sent_day") == day and "fixed_lease" not in item
    suppressions = []
    for item in _scan("suppression"):
        at = _since_epoch(item.get("at"))
        if at is not None and at >= since_epoch:
            when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            reason = str(item.get("reason"))
            suppressions.append(
                {"subscriber": str(item["subscriber"]), "reason": reason, "at": when}
            )
    suppressions.sort(key=lambda entry: entry["at"])
    return {**counts, "suppressions": suppressions}


def is_suppressed(subscriber: str) -> bool:
    """Tell whether an address (by pseudonym) bounced or complained: then it gets no mail."""
    if not isinstance(subscriber, str) or not subscriber:
        raise PayloadError("subscriber must be a pseudonym")
    item = aws.table("suppression").get_item(Key={"subscriber": subscriber}).get("Item")
    return item is not None


ACTIONS = {
    "record_results": record_results,
    "release_notification": release_notification,
    "report_counts": report_counts,
    "record_sweep_plan": record_sweep_plan,
    "is_suppressed": is_suppressed,
}
