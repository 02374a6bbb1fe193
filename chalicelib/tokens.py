"""Single-purpose link tokens (manage, calendar feed, digest unsubscribe), stored only as hashes.

A token is a public selector (the item's key) followed by a secret verifier; the tokens
table keeps the verifier's SHA-256 only, so a leaked table or backup opens nothing, and
the verifier is compared in constant time. Each purpose has its own key prefix: a token
made for one purpose is never accepted for another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import NotFound

SELECTOR_CHARACTERS = 12  # secrets.token_urlsafe(9)
VERIFIER_CHARACTERS = 32  # secrets.token_urlsafe(24): 192 secret bits
PURPOSES = ("manage", "calendar", "digest")
MANAGE_LIFETIME = 24 * 3600
DIGEST_LIFETIME = 60 * 86400  # a digest's one-click unsubscribe outlives a mail client's cache
INVALID = {
    "manage": "This link is not valid (links to the manage page expire after 24 hours)",
    "calendar": "This calendar URL is not valid (a newer one replaced it, or it was revoked)",
    "digest": "This unsubscribe link is not valid any more",
}


def _hash(verifier: str) -> str:
    return hashlib.sha256(verifier.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """Return a fresh token and its selector."""
    selector = secrets.token_urlsafe(9)
    return selector + secrets.token_urlsafe(24), selector


@dataclass(frozen=True)
class Grant:
    """What a valid token allows: its purpose, the subscriber it acts for, and what it covers."""

    purpose: str
    subscriber: str
    targets: tuple[str, ...] = ()


class TokenStore:
    """Issue, check and revoke tokens in the tokens table (handed to it)."""

    def __init__(self, table: Any, clock: Callable[[], float]):
        self.table = table
        self.clock = clock

    def issue(
        self,
        purpose: str,
        subscriber: str,
        lifetime: int | None,
        targets: tuple[str, ...] = (),
    ) -> str:
        """Store a new token's hash for a subscriber and return the token (shown once)."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown token purpose {purpose!r}")
        token, selector = new_token()
        item: dict[str, Any] = {
            "key": f"{purpose}#{selector}",
            "subscriber": subscriber,
            "verifier": _hash(token[SELECTOR_CHARACTERS:]),
            "issued": int(self.clock()),
        }
        if lifetime is not None:
            item["expires"] = int(self.clock()) + lifetime
        if targets:
            item["targets"] = list(targets)
        self.table.put_item(Item=item)
        return token

    def check(self, purpose: str, token: str, subscriber: str | None = None) -> Grant:
        """Return what a token grants for this purpose (and subscriber), or raise NotFound."""
        if not _well_formed(token):
            raise NotFound(INVALID[purpose])
        key = f"{purpose}#{token[:SELECTOR_CHARACTERS]}"
        item = self.table.get_item(Key={"key": key}, ConsistentRead=True).get("Item")
        if not _valid(item, token, subscriber, self.clock()):
            raise NotFound(INVALID[purpose])
        assert item is not None  # for the type checker: _valid said so
        return Grant(purpose, str(item["subscriber"]), tuple(item.get("targets") or ()))

    def revoke(self, purpose: str, token: str) -> None:
        """Forget a token (its selector's item)."""
        self.table.delete_item(Key={"key": f"{purpose}#{token[:SELECTOR_CHARACTERS]}"})

    def pointer(self, name: str, subscriber: str) -> str | None:
        """Return the token selector remembered under name for a subscriber (the current feed)."""
        item = self.table.get_item(Key={"key": f"{name}-of#{subscriber}"}, ConsistentRead=True)
        return (item.get("Item") or {}).get("selector")

    def replace_feed(self, subscriber: str) -> str:
        """Issue a new calendar feed token for a subscriber and revoke the one before it."""
        old = self.pointer("calendar", subscriber)
        token = self.issue("calendar", subscriber, None)
        self.table.put_item(
            Item={
                "key": f"calendar-of#{subscriber}",
                "subscriber": subscriber,
                "selector": token[:SELECTOR_CHARACTERS],
            }
        )
        if old:
            self.table.delete_item(Key={"key": f"calendar#{old}"})
        return token

    def forget_subscriber(self, subscriber: str) -> None:
        """Revoke a subscriber's calendar feed (nothing left to show once all is unsubscribed)."""
        old = self.pointer("calendar", subscriber)
        if old:
            self.table.delete_item(Key={"key": f"calendar#{old}"})
        self.table.delete_item(Key={"key": f"calendar-of#{subscriber}"})


def _well_formed(value: str) -> bool:
    # A length, not a secret: knowing a token's length leaks nothing.
    return len(value) == SELECTOR_CHARACTERS + VERIFIER_CHARACTERS


def _valid(item: Mapping[str, Any] | None, token: str, subscriber: str | None, now: float) -> bool:
    if not item:
        return False
    expires = item.get("expires")
    if expires is not None and int(expires) <= now:
        return False  # DynamoDB's TTL deletes late: an expired item may still be there
    verifier_ok = hmac.compare_digest(
        str(item.get("verifier", "")).encode(), _hash(token[SELECTOR_CHARACTERS:]).encode()
    )
    subscriber_ok = subscriber is None or hmac.compare_digest(
        str(item.get("subscriber", "")).encode(), subscriber.encode()
    )
    return verifier_ok and subscriber_ok
