"""Data actions behind the manage page and the calendar feed: one address's subscriptions.

Run by the data function. Every action but the link request needs a manage token (see
tokens.py); the feed needs its own. The address is used only as its pseudonym here,
sealed when a subscription is added, and logged only as the pseudonym.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Key

from chalicelib import aws, validation
from chalicelib.config import get_settings
from chalicelib.errors import NotFound
from chalicelib.logs import get_logger
from chalicelib.privacy import AddressVault
from chalicelib.subscription_data import DAY, TOKEN_BYTES, RateLimiter, iso
from chalicelib.sweep_data import FACTS, forget_state
from chalicelib.tokens import MANAGE_LIFETIME, TokenStore

logger = get_logger(__name__)

LINK_LIMIT_MESSAGE = "Too many manage links for this address today; please try again tomorrow"


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Watched:
    """One subscription as its owner sees it: target, days, and the last check's facts."""

    target: str
    days: str
    status: str | None
    not_after: str | None
    not_before: str | None
    checked_at: str | None
    problems: tuple[str, ...]

    def days_left(self, now: float) -> int | None:
        """Return whole days left until the certificate's notAfter, negative once expired."""
        moment = _parse_time(self.not_after)
        if moment is None:
            return None
        return math.floor((moment.timestamp() - now) / DAY)

    def warning_starts(self) -> datetime | None:
        """Return the day the reminders start: notAfter less the days (or a third of life)."""
        end, start = _parse_time(self.not_after), _parse_time(self.not_before)
        if end is None:
            return None
        if self.days == "auto":
            if start is None:
                return None
            return end - (end - start) / 3
        return end - timedelta(days=int(self.days))

    def to_dict(self, now: float) -> dict[str, Any]:
        """Return the listing entry of the API contract (DESIGN.md 3.3)."""
        scheme, found, _ = self.target.partition("://")
        return {
            "target": self.target,
            "protocol": scheme if found else "tls",
            "days": self.days,
            "status": self.status,
            "daysLeft": self.days_left(now),
            "notAfter": self.not_after,
            "checkedAt": self.checked_at,
            "problems": list(self.problems),
        }


def describe(
    subscription: Mapping[str, Any],
    state: Mapping[str, Any] | None,
    facts: Mapping[str, Any] | None,
) -> Watched:
    """Merge a subscription with its check state (kept when not calm) and its target's facts."""
    summary = (state or {}).get("summary") or {}
    # A calm subscription keeps no state: with its target's facts but no state, it was fine.
    status = state.get("status") if state else ("ok" if facts else None)
    checked = (facts or {}).get("checkedAt")
    if state and (not facts or str(state.get("checked_day")) > str(facts.get("checked_day"))):
        checked = state.get("checked_day")
    return Watched(
        target=str(subscription["target"]),
        days=str(subscription.get("tolerance") or validation.DEFAULT_TOLERANCE),
        status=status,
        not_after=summary.get("notAfter") or (facts or {}).get("notAfter") or None,
        not_before=(facts or {}).get("notBefore") or None,
        checked_at=str(checked) if checked else None,
        problems=tuple(str(code) for code in summary.get("problems") or ()),
    )


def query_partition(table: Any, partition: str) -> list[dict[str, Any]]:
    """Return every item of one partition (one subscriber's: a handful), consistently read."""
    items: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {
        "KeyConditionExpression": Key("subscriber").eq(partition),
        "ConsistentRead": True,
    }
    while True:
        page = table.query(**arguments)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class Manager:
    """One address's subscriptions, read and changed with a manage token (tables handed in)."""

    def __init__(
        self,
        subscriptions: Any,
        checkstate: Any,
        tokens: TokenStore,
        vault: AddressVault,
        clock: Callable[[], float],
    ):
        self.subscriptions = subscriptions
        self.checkstate = checkstate
        self.tokens = tokens
        self.vault = vault
        self.clock = clock

    def issue_link(self, address: str) -> str | None:
        """Return a new manage token when the address has subscriptions, else None."""
        subscriber = self.vault.pseudonym(address)
        page = self.subscriptions.query(
            KeyConditionExpression=Key("subscriber").eq(subscriber), Limit=1
        )
        if not page.get("Items"):
            logger.info("manage link not issued: no subscriptions", subscriber=subscriber)
            return None
        logger.info("manage link issued", subscriber=subscriber)
        return self.tokens.issue("manage", subscriber, MANAGE_LIFETIME)

    def authorise(self, address: str, token: str) -> str:
        """Return the address's pseudonym when the manage token is its own and still valid."""
        subscriber = self.vault.pseudonym(address)
        self.tokens.check("manage", token, subscriber)
        return subscriber

    def watched(self, subscriber: str) -> list[Watched]:
        """Return every subscription of a subscriber with what the sweep last saw."""
        items = query_partition(self.subscriptions, subscriber)
        items.sort(key=lambda item: item["target"])
        states = {item["target"]: item for item in query_partition(self.checkstate, subscriber)}
        facts = self._facts([item["target"] for item in items])
        return [
            describe(item, states.get(item["target"]), facts.get(item["target"])) for item in items
        ]

    def _facts(self, targets: list[str]) -> dict[str, dict[str, Any]]:
        if not targets:
            return {}
        keys = [{"subscriber": FACTS, "target": target} for target in dict.fromkeys(targets)]
        found: dict[str, dict[str, Any]] = {}
        client, name = self.checkstate.meta.client, self.checkstate.name
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {name: {"Keys": keys[start : start + 100]}}
            while request:
                answer = client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(name, []):
                    found[item["target"]] = item
                request = answer.get("UnprocessedKeys") or {}
        return found

    def listing(self, address: str, token: str) -> dict[str, Any]:
        """List the subscriptions; make the calendar feed on the first listing (shown once)."""
        subscriber = self.authorise(address, token)
        now = self.clock()
        feed = None
        if self.tokens.pointer("calendar", subscriber) is None:
            feed = self.tokens.replace_feed(subscriber)
        return {
            "subscriptions": [entry.to_dict(now) for entry in self.watched(subscriber)],
            "calendarToken": feed,
            "calendarActive": True,
        }

    def new_feed(self, address: str, token: str) -> dict[str, str]:
        """Make a new calendar feed token; the previous feed URL stops working."""
        subscriber = self.authorise(address, token)
        logger.info("calendar feed renewed", subscriber=subscriber)
        return {"calendarToken": self.tokens.replace_feed(subscriber)}

    def put(self, address: str, token: str, target: str, tolerance: str) -> dict[str, str]:
        """Add a subscription, or change its days, at once (the token proved the address)."""
        subscriber = self.authorise(address, token)
        key = {"subscriber": subscriber, "target": target}
        existing = self.subscriptions.get_item(Key=key, ConsistentRead=True).get("Item")
        now = iso(self.clock())
        if existing:
            self.subscriptions.update_item(
                Key=key,
                UpdateExpression="SET tolerance = :tolerance",
                ExpressionAttributeValues={":tolerance": tolerance},
            )
            state = "unchanged" if existing.get("tolerance") == tolerance else "changed"
        else:
            self.subscriptions.put_item(
                Item={
                    **key,
                    "address": self.vault.seal(address),
                    "tolerance": tolerance,
                    "token": secrets.token_urlsafe(TOKEN_BYTES),
                    "created_at": now,
                    "confirmed_at": now,
                    "confirmed_by": "manage",
                }
            )
            state = "added"
        logger.info("subscription set", subscriber=subscriber, target=target, state=state)
        return {"target": target, "days": tolerance, "state": state}

    def remove(self, address: str, token: str, target: str | None) -> dict[str, Any]:
        """Unsubscribe one target, or all of them when none is named."""
        subscriber = self.authorise(address, token)
        removed = self.remove_for(subscriber, target)
        logger.info("unsubscribed from manage page", subscriber=subscriber, count=len(removed))
        return {"targets": removed}

    def remove_for(self, subscriber: str, target: str | None) -> list[str]:
        """Delete one subscription of a subscriber (or all); return the targets deleted."""
        items = query_partition(self.subscriptions, subscriber)
        chosen = [item for item in items if target is None or item["target"] == target]
        if target is not None and not chosen:
            raise NotFound("This address has no subscription for that target")
        for item in chosen:
            self.subscriptions.delete_item(Key={"subscriber": subscriber, "target": item["target"]})
            forget_state(subscriber, item["target"])
        if len(chosen) == len(items):
            self.tokens.forget_subscriber(subscriber)  # nothing left for the feed to show
        return [item["target"] for item in chosen]

    def feed(self, token: str) -> dict[str, Any]:
        """Return what a calendar feed shows: each subscription's dates (no address)."""
        grant = self.tokens.check("calendar", token)
        return {
            "subscriptions": [
                {
                    "target": entry.target,
                    "days": entry.days,
                    "notAfter": entry.not_after,
                    "warningStarts": _iso(entry.warning_starts()),
                }
                for entry in self.watched(grant.subscriber)
            ]
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


# The data function's actions.


def _vault() -> AddressVault:
    return AddressVault(get_settings().require_secret())


def _tokens() -> TokenStore:
    return TokenStore(aws.table("tokens"), time.time)


def from_settings(vault: AddressVault | None = None) -> Manager:
    """Return the manager over this deployment's tables."""
    return Manager(
        aws.table("subscriptions"), aws.table("checkstate"), _tokens(), vault or _vault(), time.time
    )


def _manage_token(value: Any) -> str:
    return validation.token(value, "token")


def request_manage_link(email: str) -> dict:
    """Count a link request against the address's daily cap; answer a token if it has any."""
    address = validation.email_address(email)
    vault = _vault()
    # Counted before looking: a capped unknown address answers as a capped known one.
    RateLimiter(aws.table("ratelimits"), time.time).hit(
        f"manage:{vault.pseudonym(address)}",
        get_settings().limits.manage_links_per_address_per_day,
        DAY,
        LINK_LIMIT_MESSAGE,
    )
    return {"token": from_settings(vault).issue_link(address)}


def list_subscriptions(email: str, token: str) -> dict:
    """List an address's subscriptions for its manage token."""
    return from_settings().listing(validation.email_address(email), _manage_token(token))


def set_subscription(email: str, token: str, target: str, tolerance: str) -> dict:
    """Add a subscription or change its days, with a manage token."""
    return from_settings().put(
        validation.email_address(email),
        _manage_token(token),
        validation.target(target).key,
        validation.tolerance(tolerance),
    )


def remove_subscriptions(email: str, token: str, target: str | None = None) -> dict:
    """Unsubscribe one target (or all), with a manage token."""
    target_key = validation.target(target).key if target is not None else None
    return from_settings().remove(validation.email_address(email), _manage_token(token), target_key)


def renew_calendar(email: str, token: str) -> dict:
    """Make a new calendar feed URL for the address; the old one stops working."""
    return from_settings().new_feed(validation.email_address(email), _manage_token(token))


def calendar_feed(token: str) -> dict:
    """Return the dates a calendar feed token shows."""
    return from_settings().feed(_manage_token(token))


ACTIONS = {
    "request_manage_link": request_manage_link,
    "list_subscriptions": list_subscriptions,
    "set_subscription": set_subscription,
    "remove_subscriptions": remove_subscriptions,
    "renew_calendar": renew_calendar,
    "calendar_feed": calendar_feed,
}
