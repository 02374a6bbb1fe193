"""Data actions behind the daily digest: what each address is due today, and its digest claim.

Run by the data function. A digest claim is a conditional write keyed by address and
day in the tokens table: it keeps the digest to one per address per day however often
AWS retries the mailer, as the per-subscription claims in sweep_data.py do for single emails.
"""

from __future__ import annotations

import json
import time
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from chalicelib import aws, claims, validation
from chalicelib.errors import NotFound, PayloadError
from chalicelib.logs import get_logger
from chalicelib.manage_data import from_settings, query_partition
from chalicelib.sweep import require_day
from chalicelib.sweep_data import FACTS
from chalicelib.tokens import DIGEST_LIFETIME, TokenStore

logger = get_logger(__name__)

CLAIM_LIFETIME = 3 * 86400  # the claim only has to outlive the day's retries
MAX_SUBSCRIBERS = 100


def _claim_key(subscriber: str, day: str) -> str:
    return f"digest-sent#{subscriber}#{day}"


def _wait_key(subscriber: str, day: str, target: str | None = None) -> str:
    return f"digest-wait#{subscriber}#{day}" + (f"#{target}" if target else "")


def _subscriber(value: Any) -> str:
    if not isinstance(value, str) or not value or value.startswith("#") or len(value) > 100:
        raise PayloadError("subscriber must be a pseudonym")
    return value


def digest_status(day: str, subscribers: list) -> dict:
    """For each subscriber: today's due notifications, how many results are in, any claim.

    {"<pseudonym>": {"due": [{"target", "kind", "summary"}], "recorded": N,
                     "waiting": [notifications kept by defer_notifications],
                     "sent": [targets] | null, "claimedBy": id | null}}
    """
    require_day(day)
    if not isinstance(subscribers, list) or len(subscribers) > MAX_SUBSCRIBERS:
        raise PayloadError(f"subscribers must be a list of at most {MAX_SUBSCRIBERS}")
    checkstate, subscriptions, tokens = (
        aws.table("checkstate"),
        aws.table("subscriptions"),
        aws.table("tokens"),
    )
    answer: dict[str, Any] = {}
    for subscriber in dict.fromkeys(_subscriber(s) for s in subscribers):
        states = {item["target"]: item for item in query_partition(checkstate, subscriber)}
        watched = [item["target"] for item in query_partition(subscriptions, subscriber)]
        recorded = {t for t in watched if (states.get(t) or {}).get("checked_day") == day}
        unknown = [t for t in watched if t not in recorded]
        for target in unknown:
            facts = checkstate.get_item(
                Key={"subscriber": FACTS, "target": target}, ConsistentRead=True
            ).get("Item")
            if facts and facts.get("checked_day") == day:
                recorded.add(target)
        due = [
            {
                "target": target,
                "kind": state.get("notify_kind"),
                "summary": state.get("summary") or {},
            }
            for target, state in sorted(states.items())
            if target in watched and state.get("notify_day") == day and state.get("notify_kind")
        ]
        claim = tokens.get_item(Key={"key": _claim_key(subscriber, day)}, ConsistentRead=True)
        claim = claim.get("Item") or {}
        waiting = []
        for entry in due:
            stored = tokens.get_item(
                Key={"key": _wait_key(subscriber, day, entry["target"])}, ConsistentRead=True
            ).get("Item")
            if stored:
                waiting.append(json.loads(stored["notification"]))
        answer[subscriber] = {
            "waiting": waiting,
            "due": due,
            "recorded": len(recorded),
            "sent": list(claim["targets"]) if claim else None,
            "claimedBy": claim.get("claimed_by"),
            # A claim not confirmed holds only while its lease runs; past it, any attempt may
            # take it (a killed attempt's). A confirmed claim holds for the day.
            "claimLive": bool(claim)
            and (claim.get("lease_until") is None or claim["lease_until"] >= claims.clock()),
        }
    return _plain(answer)


def _plain(value: Any) -> Any:
    """Turn DynamoDB's Decimals into ints (JSON for the invoke answer)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if hasattr(value, "as_integer_ratio") and not isinstance(value, int | float):
        return int(value)
    return value


def defer_notifications(day: str, subscriber: str, notifications: list) -> dict:
    """Keep notifications (with their whole results) for the digest that completes the day."""
    require_day(day)
    subscriber = _subscriber(subscriber)
    if not isinstance(notifications, list) or not notifications:
        raise PayloadError("notifications must be a non-empty list")
    expires = int(time.time()) + CLAIM_LIFETIME
    with aws.table("tokens").batch_writer(overwrite_by_pkeys=["key"]) as writer:
        for notification in notifications:
            if not isinstance(notification, dict) or notification.get("subscriber") != subscriber:
                raise PayloadError("each notification must be the subscriber's own")
            target = str(notification.get("target"))
            # JSON text: a check result holds floats, which DynamoDB items cannot.
            writer.put_item(
                Item={
                    "key": _wait_key(subscriber, day, target),
                    "notification": json.dumps(notification),
                    "expires": expires,
                }
            )
        writer.put_item(Item={"key": _wait_key(subscriber, day), "expires": expires})
    return {"deferred": len(notifications)}


def waiting_subscribers(day: str, subscribers: list) -> list:
    """Return which of these subscribers have notifications kept for today's digest."""
    require_day(day)
    if not isinstance(subscribers, list) or len(subscribers) > MAX_SUBSCRIBERS:
        raise PayloadError(f"subscribers must be a list of at most {MAX_SUBSCRIBERS}")
    table = aws.table("tokens")
    keys = [{"key": _wait_key(_subscriber(s), day)} for s in dict.fromkeys(subscribers)]
    found: list[str] = []
    request: dict[str, Any] = {table.name: {"Keys": keys, "ConsistentRead": True}} if keys else {}
    while request:
        answer = table.meta.client.batch_get_item(RequestItems=request)
        for item in answer.get("Responses", {}).get(table.name, []):
            found.append(item["key"].split("#")[1])
        request = answer.get("UnprocessedKeys") or {}
    return found


def claim_digest(day: str, subscriber: str, targets: list, batch: str) -> dict:
    """Claim today's digest for a subscriber; with it, a one-click token for its targets.

    Answers {"claimed": false} when another attempt holds the claim; the same attempt
    (batch) may claim again, as a repeated call whose answer was lost must.
    """
    require_day(day)
    subscriber = _subscriber(subscriber)
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise PayloadError("targets must be a non-empty list of targets")
    batch = str(batch)[:100]
    table = aws.table("tokens")
    now = int(claims.clock())
    try:
        table.put_item(
            Item={
                "key": _claim_key(subscriber, day),
                "subscriber": subscriber,
                "targets": targets,
                "claimed_by": batch,
                "lease_until": now + claims.LEASE_SECONDS,
                "expires": now + CLAIM_LIFETIME,
            },
            # Free, or this attempt's own, or a lease a killed attempt never confirmed.
            ConditionExpression=Attr("key").not_exists()
            | Attr("claimed_by").eq(batch)
            | Attr("lease_until").lt(now),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return {"claimed": False, "token": None}
        raise
    token = TokenStore(table, time.time).issue(
        "digest", subscriber, DIGEST_LIFETIME, tuple(targets)
    )
    logger.info("digest claimed", subscriber=subscriber, day=day, certificates=len(targets))
    return {"claimed": True, "token": token}


def confirm_digest(day: str, subscriber: str, batch: str) -> bool:
    """Mark this attempt's digest sent: its lease ends, and no attempt takes it again today."""
    require_day(day)
    try:
        aws.table("tokens").update_item(
            Key={"key": _claim_key(_subscriber(subscriber), day)},
            UpdateExpression="REMOVE lease_until",
            ConditionExpression=Attr("claimed_by").eq(str(batch)[:100]),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def release_digest(day: str, subscriber: str, batch: str) -> bool:
    """Undo this attempt's digest claim (its email could not be sent) so a retry sends it."""
    require_day(day)
    try:
        aws.table("tokens").delete_item(
            Key={"key": _claim_key(_subscriber(subscriber), day)},
            ConditionExpression=Attr("claimed_by").eq(str(batch)[:100]),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def unsubscribe_digest(email: str, token: str) -> dict:
    """Delete every subscription a digest's one-click token lists (RFC 8058)."""
    address = validation.email_address(email)
    manager = from_settings()
    subscriber = manager.vault.pseudonym(address)
    grant = manager.tokens.check("digest", validation.token(token, "token"), subscriber)
    removed = []
    for target in grant.targets:
        try:
            removed.extend(manager.remove_for(subscriber, target))
        except NotFound:
            continue  # already unsubscribed from that one
    logger.info("digest unsubscribed", subscriber=subscriber, count=len(removed))
    return {"targets": removed}


ACTIONS = {
    "digest_status": digest_status,
    "defer_notifications": defer_notifications,
    "waiting_subscribers": waiting_subscribers,
    "claim_digest": claim_digest,
    "confirm_digest": confirm_digest,
    "release_digest": release_digest,
    "unsubscribe_digest": unsubscribe_digest,
}
