"""Create the benchmark's subscriptions directly in the (emulated) subscriptions table."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib import aws
from chalicelib.config import Settings
from chalicelib.privacy import AddressVault

# Tolerances cycle over these, so "auto" and explicit days are both exercised.
TOLERANCES = ("30", "14", "auto")


@dataclass(frozen=True)
class Subscription:
    """One benchmark subscription: who (pseudonym), what, with which tolerance."""

    subscriber: str
    target: str
    tolerance: str


def plan(count: int, targets: list[str], vault: AddressVault) -> list[Subscription]:
    """Spread `count` subscriptions over the targets round-robin, one address each."""
    return [
        Subscription(
            subscriber=vault.pseudonym(_address(index)),
            target=targets[index % len(targets)],
            tolerance=TOLERANCES[index % len(TOLERANCES)],
        )
        for index in range(count)
    ]


def _address(index: int) -> str:
    return f"bench-{index}@bench.sslnotify.test"


def write(settings: Settings, subscriptions: list[Subscription], vault: AddressVault) -> None:
    """Write the subscriptions as confirmed ones, batched (25 items per BatchWriteItem)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    table = aws.table("subscriptions")
    with table.batch_writer() as writer:
        for index, subscription in enumerate(subscriptions):
            writer.put_item(
                Item={
                    "subscriber": subscription.subscriber,
                    "target": subscription.target,
                    "address": vault.seal(_address(index)),
                    "tolerance": subscription.tolerance,
                    "token": secrets.token_urlsafe(24),
                    "confirm_token": secrets.token_urlsafe(24),
                    "created_at": now,
                    "confirmed_at": now,
                }
            )
