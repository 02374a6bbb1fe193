"""Data actions on subscriptions, pending subscriptions, the suppression list and rate limits.

Each store is handed its table; the module-level actions (ACTIONS, dispatched by the
data function) validate their fields on arrival, build the stores and answer JSON.
Addresses are stored only sealed, keyed by their pseudonym, and logged only as it.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from chalicelib import aws, backup, validation
from chalicelib.config import get_settings
from chalicelib.errors import BadInput, NotFound, Throttled, TooManyRequests
from chalicelib.logs import get_logger
from chalicelib.privacy import AddressVault
from chalicelib.sweep_data import forget_state

logger = get_logger(__name__)

PENDING_LIFETIME = 48 * 3600  # seconds a confirmation link stays valid
DAY = 86400
SCAN_LIMIT = 1000  # items per scan page by default (a page also stops at 1 MB)
MAX_SCAN_LIMIT = 10_000
MAX_SEGMENTS = 1_000_000  # DynamoDB's own bound on TotalSegments
BATCH_GET_SIZE = 100  # DynamoDB's BatchGetItem limit
MAX_RECIPIENT_KEYS = 5000
SUPPRESSION_REASONS = ("bounce", "complaint")
TOKEN_BYTES = 24  # secrets.token_urlsafe(24): 192 bits

Clock = Callable[[], float]


def iso(moment: float) -> str:
    """Return epoch seconds as ISO 8601 UTC (2027-02-05T12:00:00Z)."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def same_token(expected: Any, given: str) -> bool:
    """Compare a stored token with a given one in constant time."""
    if not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def _conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _query_all(table: Any, subscriber: str) -> Iterator[dict[str, Any]]:
    """Yield every item of one subscriber (a handful: one per target)."""
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": Key("subscriber").eq(subscriber),
        "ConsistentRead": True,
    }
    while True:
        page = table.query(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _count(table: Any, **kwargs: Any) -> int:
    """Count a table's items (after an optional filter), page by page."""
    total = 0
    while True:
        page = table.scan(Select="COUNT", **kwargs)
        total += page.get("Count", 0)
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@dataclass(frozen=True)
class Subscribed:
    """What a subscribe request led to: the token to mail, and where the subscription stands."""

    token: str
    state: str  # "pending" | "subscribed"

    def to_dict(self) -> dict[str, str]:
        """Return the answer of the subscribe action."""
        return {"token": self.token, "state": self.state}


@dataclass(frozen=True)
class Confirmation:
    """A confirmed subscription: its target and tolerance, and whether it was new."""

    target: str
    tolerance: str
    state: str  # "confirmed" | "already_confirmed"

    def to_dict(self) -> dict[str, str]:
        """Return the answer of the confirm action."""
        return {"target": self.target, "tolerance": self.tolerance, "state": self.state}


@dataclass(frozen=True)
class ScanPage:
    """One page of confirmed subscriptions and the cursor of the next page (None at the end)."""

    items: list[dict[str, str]]
    cursor: dict[str, str] | None

    def to_dict(self) -> dict[str, Any]:
        """Return the answer of the scan_subscriptions action."""
        return {"items": self.items, "cursor": self.cursor}


@dataclass(frozen=True)
class Recipient:
    """What the mailer needs to mail one subscription: the sealed address and its token."""

    subscriber: str
    target: str
    address: str
    token: str
    suppressed: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the recipient as the recipients action answers it."""
        return {
            "subscriber": self.subscriber,
            "target": self.target,
            "address": self.address,
            "token": self.token,
            "suppressed": self.suppressed,
        }


class SubscriptionStore:
    """Pending and confirmed subscriptions, keyed by the subscriber's pseudonym and the target."""

    def __init__(self, subscriptions: Any, pending: Any, vault: AddressVault, clock: Clock):
        self.subscriptions = subscriptions
        self.pending = pending
        self.vault = vault
        self.clock = clock

    def subscribe(self, address: str, target: str, tolerance: str) -> Subscribed:
        """Store a pending subscription (or keep the one waiting) and return its token."""
        subscriber = self.vault.pseudonym(address)
        key = {"subscriber": subscriber, "target": target}
        existing = self.subscriptions.get_item(Key=key, ConsistentRead=True).get("Item")
        if existing and existing.get("tolerance") == tolerance and existing.get("confirm_token"):
            logger.info("already subscribed", subscriber=subscriber, target=target)
            return Subscribed(token=existing["confirm_token"], state="subscribed")
        for _attempt in range(3):
            now = self.clock()
            waiting = self.pending.get_item(Key=key, ConsistentRead=True).get("Item")
            live = waiting if waiting and int(waiting.get("expires", 0)) > now else None
            token = live["token"] if live else secrets.token_urlsafe(TOKEN_BYTES)
            item = {
                **key,
                "address": self.vault.seal(address),
                "tolerance": tolerance,
                "token": token,
                "requested_at": iso(now),
                "expires": int(now) + PENDING_LIFETIME,
            }
            # Two requests at once must not mail different links: the second keeps the first's.
            condition = (
                Attr("subscriber").not_exists()
                | Attr("expires").lte(int(now))
                | Attr("token").eq(token)
            )
            try:
                self.pending.put_item(Item=item, ConditionExpression=condition)
            except ClientError as error:
                if _conditional_failure(error):
                    continue
                raise
            logger.info("subscription pending", subscriber=subscriber, target=target)
            return Subscribed(token=token, state="pending")
        raise TooManyRequests("this subscription is being changed right now; try again shortly")

    def confirm(self, address: str, token: str) -> Confirmation:
        """Move the pending subscription this token names to the subscriptions."""
        subscriber = self.vault.pseudonym(address)
        now = self.clock()
        match = None
        for item in _query_all(self.pending, subscriber):
            if int(item.get("expires", 0)) > now and same_token(item.get("token"), token):
                match = item
        if match is None:
            for item in _query_all(self.subscriptions, subscriber):
                if same_token(item.get("confirm_token"), token):
                    return Confirmation(item["target"], item["tolerance"], "already_confirmed")
            raise NotFound(
                "No subscription is waiting for this address and link "
                "(links expire after 48 hours; please subscribe again)"
            )
        key = {"subscriber": subscriber, "target": match["target"]}
        existing = self.subscriptions.get_item(Key=key, ConsistentRead=True).get("Item") or {}
        self.subscriptions.put_item(
            Item={
                **key,
                "address": match["address"],
                "tolerance": match["tolerance"],
                # A tolerance change keeps the unsubscribe link already in the subscriber's mail.
                "token": existing.get("token") or secrets.token_urlsafe(TOKEN_BYTES),
                "confirm_token": match["token"],
                "created_at": existing.get("created_at") or iso(now),
                "confirmed_at": iso(now),
            }
        )
        try:
            self.pending.delete_item(Key=key, ConditionExpression=Attr("token").eq(match["token"]))
        except ClientError as error:
            if not _conditional_failure(error):
                raise
        logger.info("subscription confirmed", subscriber=subscriber, target=match["target"])
        return Confirmation(match["target"], match["tolerance"], "confirmed")

    def unsubscribe(self, address: str, token: str) -> str:
        """Delete the subscription whose unsubscribe token this is; return its target."""
        subscriber = self.vault.pseudonym(address)
        for item in _query_all(self.subscriptions, subscriber):
            if not same_token(item.get("token"), token):
                continue
            key = {"subscriber": subscriber, "target": item["target"]}
            try:
                self.subscriptions.delete_item(
                    Key=key, ConditionExpression=Attr("token").eq(item["token"])
                )
            except ClientError as error:
                if not _conditional_failure(error):
                    raise
                break  # unsubscribed by a concurrent request
            # The sweep's state for it would otherwise outlive the subscription.
            forget_state(subscriber, item["target"])
            logger.info("unsubscribed", subscriber=subscriber, target=item["target"])
            return item["target"]
        raise NotFound("No subscription matches this address and link (already unsubscribed?)")

    def scan(
        self, segment: int, total_segments: int, cursor: dict[str, str] | None, limit: int
    ) -> ScanPage:
        """Return one page of one segment of the confirmed subscriptions."""
        kwargs: dict[str, Any] = {
            "ProjectionExpression": "#subscriber, #target, #tolerance",
            "ExpressionAttributeNames": {
                "#subscriber": "subscriber",
                "#target": "target",
                "#tolerance": "tolerance",
            },
            "Limit": limit,
        }
        if total_segments > 1:
            kwargs.update(Segment=segment, TotalSegments=total_segments)
        if cursor:
            kwargs["ExclusiveStartKey"] = cursor
        page = self.subscriptions.scan(**kwargs)
        items = [
            {"subscriber": i["subscriber"], "target": i["target"], "tolerance": i["tolerance"]}
            for i in page.get("Items", [])
        ]
        return ScanPage(items=items, cursor=page.get("LastEvaluatedKey"))

    def get_many(self, keys: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
        """Return the subscriptions of these keys that exist (in no particular order)."""
        return _batch_get(self.subscriptions, keys)

    def count(self) -> dict[str, int]:
        """Count confirmed subscriptions and pending ones that have not expired."""
        return {
            "subscriptions": _count(self.subscriptions),
            "pending": _count(self.pending, FilterExpression=Attr("expires").gt(int(self.clock()))),
        }


def _batch_get(table: Any, keys: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """Read items by key, 100 at a time, retrying what DynamoDB leaves unprocessed."""
    unique = list({tuple(sorted(key.items())): dict(key) for key in keys}.values())
    found: list[dict[str, Any]] = []
    client = table.meta.client  # the resource's client: it (de)serialises Python values
    for start in range(0, len(unique), BATCH_GET_SIZE):
        request = {
            table.name: {"Keys": unique[start : start + BATCH_GET_SIZE], "ConsistentRead": True}
        }
        for attempt in range(8):
            answer = client.batch_get_item(RequestItems=request)
            found.extend(answer.get("Responses", {}).get(table.name, []))
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(min(0.05 * 2**attempt, 2.0))
        else:
            raise Throttled("the subscriptions table is throttling reads; try again")
    return found


class SuppressionList:
    """Pseudonyms of addresses that bounced or complained: never mailed again."""

    def __init__(self, table: Any, clock: Clock):
        self.table = table
        self.clock = clock

    def add(self, subscriber: str, reason: str) -> None:
        """Suppress a subscriber for a reason (bounce or complaint)."""
        self.table.put_item(
            Item={"subscriber": subscriber, "reason": reason, "at": iso(self.clock())}
        )
        logger.info("address suppressed", subscriber=subscriber, reason=reason)

    def which(self, subscribers: Sequence[str]) -> set[str]:
        """Return those of these subscribers that are suppressed."""
        items = _batch_get(self.table, [{"subscriber": s} for s in set(subscribers)])
        return {item["subscriber"] for item in items}

    def count(self) -> int:
        """Count suppressed addresses."""
        return _count(self.table)


class RateLimiter:
    """Fixed-window request counters shared by every Lambda instance (expired by TTL)."""

    def __init__(self, table: Any, clock: Clock):
        self.table = table
        self.clock = clock

    def hit(self, key: str, limit: int, window_seconds: int, message: str | None = None) -> int:
        """Count one request against key; raise TooManyRequests past limit; return what is left."""
        now = self.clock()
        window = int(now // window_seconds)
        window_end = (window + 1) * window_seconds
        try:
            answer = self.table.update_item(
                Key={"key": f"{key}:{window}"},
                UpdateExpression="SET #expires = if_not_exists(#expires, :expires) ADD #count :one",
                ConditionExpression=Attr("count").not_exists() | Attr("count").lt(limit),
                ExpressionAttributeNames={"#expires": "expires", "#count": "count"},
                ExpressionAttributeValues={":expires": window_end + 60, ":one": 1},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as error:
            if not _conditional_failure(error):
                raise
            wait = _describe_wait(window_end - now)
            raise TooManyRequests(
                message or f"Too many requests; please try again in {wait}"
            ) from None
        return limit - int(answer["Attributes"]["count"])


def _describe_wait(seconds: float) -> str:
    if seconds <= 90:
        return f"{max(1, round(seconds))} seconds"
    if seconds <= 90 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds / 3600)} hours"


# The data function's actions: fields validated on arrival, answers JSON.


def _vault() -> AddressVault:
    return AddressVault(get_settings().require_secret())


def _store(vault: AddressVault | None = None) -> SubscriptionStore:
    return SubscriptionStore(
        aws.table("subscriptions"), aws.table("pending"), vault or _vault(), time.time
    )


def _limiter() -> RateLimiter:
    return RateLimiter(aws.table("ratelimits"), time.time)


def _suppression() -> SuppressionList:
    return SuppressionList(aws.table("suppression"), time.time)


def subscribe(email: str, target: str, tolerance: str = validation.DEFAULT_TOLERANCE) -> dict:
    """Store a pending subscription (capped per address per day); answer its token and state."""
    address = validation.email_address(email)
    target_key = validation.target(target).key
    days = validation.tolerance(tolerance)
    vault = _vault()
    _limiter().hit(
        f"confirm:{vault.pseudonym(address)}",
        get_settings().limits.confirmations_per_address_per_day,
        DAY,
        "Too many confirmation emails for this address today; please try again tomorrow",
    )
    return _store(vault).subscribe(address, target_key, days).to_dict()


def confirm(email: str, token: str) -> dict:
    """Confirm the pending subscription a token names."""
    return _store().confirm(validation.email_address(email), validation.token(token)).to_dict()


def unsubscribe(email: str, token: str) -> dict:
    """Delete the subscription an unsubscribe token names."""
    target = _store().unsubscribe(validation.email_address(email), validation.token(token))
    return {"target": target}


def hit_rate_limit(key: str, limit: int, window_seconds: int) -> dict:
    """Count one request for "scope:subject" (the subject is stored only as its keyed hash)."""
    if not isinstance(key, str) or ":" not in key or len(key) > 300:
        raise BadInput("key must be 'scope:subject'")
    scope, _, subject = key.partition(":")
    limit = _whole(limit, "limit", 1, 1_000_000)
    window_seconds = _whole(window_seconds, "window_seconds", 1, 7 * DAY)
    stored = f"{scope}:{_vault().pseudonym(subject)}"
    return {"remaining": _limiter().hit(stored, limit, window_seconds)}


def scan_subscriptions(
    segment: int = 0, total_segments: int = 1, cursor: Any = None, limit: int = SCAN_LIMIT
) -> dict:
    """Return one page of confirmed subscriptions of one scan segment, and the next cursor."""
    total_segments = _whole(total_segments, "total_segments", 1, MAX_SEGMENTS)
    segment = _whole(segment, "segment", 0, total_segments - 1)
    limit = _whole(limit, "limit", 1, MAX_SCAN_LIMIT)
    if cursor is not None and not (
        isinstance(cursor, dict)
        and set(cursor) == {"subscriber", "target"}
        and all(isinstance(value, str) for value in cursor.values())
    ):
        raise BadInput("cursor must be null or the cursor of the previous page")
    return _store().scan(segment, total_segments, cursor, limit).to_dict()


def recipients(keys: list) -> list[dict]:
    """Return what the mailer needs for each existing subscription of these keys."""
    if not isinstance(keys, list) or len(keys) > MAX_RECIPIENT_KEYS:
        raise BadInput(f"keys must be a list of at most {MAX_RECIPIENT_KEYS} keys")
    for key in keys:
        if not (
            isinstance(key, dict)
            and set(key) == {"subscriber", "target"}
            and all(isinstance(value, str) and value for value in key.values())
        ):
            raise BadInput("each key must be {'subscriber': …, 'target': …}")
    items = _store().get_many(keys)
    suppressed = _suppression().which([item["subscriber"] for item in items])
    return [
        Recipient(
            subscriber=item["subscriber"],
            target=item["target"],
            address=item["address"],
            token=item["token"],
            suppressed=item["subscriber"] in suppressed,
        ).to_dict()
        for item in items
    ]


def suppress(email: str, reason: str) -> dict:
    """Put an address on the suppression list (bounce or complaint)."""
    if reason not in SUPPRESSION_REASONS:
        raise BadInput(f"reason must be one of: {', '.join(SUPPRESSION_REASONS)}")
    subscriber = _vault().pseudonym(validation.email_address(email))
    _suppression().add(subscriber, reason)
    return {"subscriber": subscriber}


def counts() -> dict:
    """Count subscriptions, live pending subscriptions and suppressed addresses."""
    return {**_store().count(), "suppressed": _suppression().count()}


def backup_tables() -> dict:
    """Write every table to the backup bucket as one JSON document."""
    return backup.from_settings().save(get_settings().backup_bucket)


def restore(bucket: str, key: str) -> dict:
    """Load a backup document from S3 into the tables (refusing a malformed or foreign one)."""
    for name, value in (("bucket", bucket), ("key", key)):
        if not isinstance(value, str) or not value or len(value) > 1024:
            raise BadInput(f"{name} must be a non-empty string")
    return backup.from_settings().restore_object(bucket, key)


def _whole(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(f"{name} must be a whole number from {low} to {high}")
    return value


ACTIONS: dict[str, Callable[..., Any]] = {
    "subscribe": subscribe,
    "confirm": confirm,
    "unsubscribe": unsubscribe,
    "hit_rate_limit": hit_rate_limit,
    "scan_subscriptions": scan_subscriptions,
    "recipients": recipients,
    "suppress": suppress,
    "counts": counts,
    "backup": backup_tables,
    "restore": restore,
}
