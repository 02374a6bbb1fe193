"""Leased notification claims: each email at most once a day, and none stranded by a crash.

Run by the data function, on the checkstate table. A mailer attempt claims one
notification just before sending it; the claim is a lease that holds for
LEASE_SECONDS, and the attempt confirms it once SES has accepted the email. A
claim the attempt could not confirm (it was killed, timed out, lost its network)
expires by itself, and any later attempt (AWS's retry, the next delivery of the
same event) takes it over. So a crash at any instant strands nothing past a
minute, and costs at most the one email in flight sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws, send_rate
from chalicelib.errors import PayloadError
from chalicelib.sweep import require_day

TABLE = "checkstate"
# A claim covers one send: the shared rate's wait (send_rate.MAX_AHEAD_SECONDS) plus SES's
# throttling backoff (mailer.SEND_ATTEMPTS, about 25 s at worst). Shorter than AWS's one
# minute before the first retry of an asynchronous invocation, so the retry of a killed
# attempt always finds the claim free again.
LEASE_SECONDS = 55
FIELDS = {
    "alert": ("alert_sent_day", "alert_claimed_by", "alert_lease"),
    "fixed": ("fixed_sent_day", "fixed_claimed_by", "fixed_lease"),
}
CLAIMED, SENT, HELD = "claimed", "sent", "held"

Clock = Callable[[], float]
clock: Clock = time.time  # tests of the lease move this clock, as AWS's retry delays would


def _fields(kind: Any) -> tuple[str, str, str]:
    if kind not in FIELDS:
        raise PayloadError("kind must be alert or fixed")
    return FIELDS[kind]


def _key(entry: Any) -> tuple[str, str, str]:
    if not isinstance(entry, Mapping):
        raise PayloadError("each notification must be an object")
    subscriber, target, kind = entry.get("subscriber"), entry.get("target"), entry.get("kind")
    if not isinstance(subscriber, str) or not subscriber or not isinstance(target, str):
        raise PayloadError("each notification needs a subscriber and a target (strings)")
    _fields(kind)
    return subscriber, target, kind


def _attempt(batch: Any) -> str:
    if not isinstance(batch, str) or not batch:
        raise PayloadError("batch must be the attempt's id")
    return batch[:100]


def _lease(seconds: Any) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise PayloadError("lease must be a number of seconds")
    return min(float(LEASE_SECONDS), max(1.0, float(seconds)))


def _update(
    subscriber: str, target: str, kind: str, update: str, condition: str, values: dict
) -> bool:
    """Apply a conditional update to one kind's claim fields; tell whether the condition held."""
    sent, by, lease = _fields(kind)
    names = {"#sent": sent, "#by": by, "#lease": lease}
    try:
        aws.table(TABLE).update_item(
            Key={"subscriber": subscriber, "target": target},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames={
                name: field for name, field in names.items() if name in update + condition
            },
            ExpressionAttributeValues=values,
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def take(
    day: str,
    entry: Mapping[str, Any],
    batch: str,
    now: float | None = None,
    lease: float = LEASE_SECONDS,
) -> dict:
    """Claim one notification for this attempt under a lease of `lease` seconds.

    Answers {"state": "claimed"} when this attempt may send it now, {"state": "sent"}
    when the day's email went (or is confirmed) already, and {"state": "held", "until"}
    while another live attempt's lease holds it.
    """
    require_day(day)
    subscriber, target, kind = _key(entry)
    attempt = _attempt(batch)
    now = clock() if now is None else now
    sent, _, lease_field = _fields(kind)
    # Free when not claimed today, or claimed under a lease that ran out, or claimed (not yet
    # confirmed) by this very attempt: a repeated call whose answer was lost gets it again.
    condition = (
        "attribute_exists(subscriber) AND (attribute_not_exists(#sent) OR #sent <> :day"
        " OR #lease < :now OR (#by = :by AND attribute_exists(#lease)))"
    )
    until = int(now + _lease(lease))
    values = {":day": day, ":by": attempt, ":now": int(now), ":until": until}
    if _update(
        subscriber, target, kind, "SET #sent = :day, #by = :by, #lease = :until", condition, values
    ):
        return {"state": CLAIMED}
    item = (
        aws.table(TABLE)
        .get_item(Key={"subscriber": subscriber, "target": target}, ConsistentRead=True)
        .get("Item")
        or {}
    )
    if item.get(sent) == day and item.get(lease_field) is not None:
        return {"state": HELD, "until": int(item[lease_field])}
    return {"state": SENT}


def confirm(day: str, entry: Mapping[str, Any], batch: str) -> bool:
    """Mark a claimed notification sent: its lease ends, and no attempt takes it again today."""
    require_day(day)
    subscriber, target, kind = _key(entry)
    values = {":day": day, ":by": _attempt(batch)}
    return _update(subscriber, target, kind, "REMOVE #lease", "#sent = :day AND #by = :by", values)


def release(day: str, entry: Mapping[str, Any], batch: str | None = None) -> bool:
    """Give a claim back at once (its email failed), so the retry need not wait for the lease."""
    require_day(day)
    subscriber, target, kind = _key(entry)
    condition = "#sent = :day"
    values: dict[str, Any] = {":day": day}
    if batch is not None:
        # An attempt gives back only what it holds: never a claim confirmed or taken over.
        condition += " AND #by = :by AND attribute_exists(#lease)"
        values[":by"] = _attempt(batch)
    return _update(subscriber, target, kind, "REMOVE #sent, #by, #lease", condition, values)


def step_notifications(
    day: str,
    batch: str,
    sent: list[dict[str, Any]] | None = None,
    claim: dict[str, Any] | None = None,
    rate: float | None = None,
    lease: float = LEASE_SECONDS,
) -> dict[str, Any]:
    """One mailer step in one call: confirm what this attempt sent, claim the next email, and
    reserve its place in the account's sending rate (`send_at`, null when none is free).

    `lease` (seconds, at most LEASE_SECONDS) lets an attempt near its timeout hold a claim
    no longer than it can live: killed at its timeout, it frees the email at that instant.
    """
    if sent is not None and not isinstance(sent, list):
        raise PayloadError("sent must be a list of notifications")
    answer: dict[str, Any] = {"confirmed": sum(confirm(day, entry, batch) for entry in sent or [])}
    if claim is not None:
        answer.update(take(day, claim, batch, lease=lease))
        if answer["state"] == CLAIMED and rate is not None:
            answer["send_at"] = send_rate.reserve_send(rate)
    return answer


ACTIONS = {"step_notifications": step_notifications}
