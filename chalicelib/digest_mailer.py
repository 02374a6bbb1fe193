"""Send the day's digest to each address of a mailer batch that is due two or more emails.

The one hook into the mailer's flow: Mailer.send_notifications hands its batch here
first and sends the notifications this returns as it always did. An address's digest
goes out once every result of its day is recorded (the sweep's count of its
subscriptions, carried in each notification as "count"): the checker batch that
records the last one sends it. A digest claim (per address and day) plus the usual
per-subscription claims keep it to one email under retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib import digest
from chalicelib.invoke import invoke
from chalicelib.logs import get_logger

if TYPE_CHECKING:
    from chalicelib.mailer import Mailer

logger = get_logger(__name__)


@dataclass
class DigestOutcome:
    """What the digest step did with a batch: what is left for single emails, and counts."""

    remaining: list[dict[str, Any]]
    tally: dict[str, int] = field(
        default_factory=lambda: {"digests": 0, "digested": 0, "waiting": 0, "failed": 0}
    )


def _expected(notifications: list[Mapping[str, Any]]) -> int:
    counts = [n.get("count") for n in notifications]
    return max([c for c in counts if isinstance(c, int)] or [1])


def send_digests(
    mailer: Mailer, day: str, wanted: list[dict[str, Any]], batch: str
) -> DigestOutcome:
    """Send the digests this batch completes; return the notifications still to send singly."""
    by_subscriber: dict[str, list[dict[str, Any]]] = {}
    for notification in wanted:
        by_subscriber.setdefault(notification["subscriber"], []).append(notification)
    # Only an address watching two or more certificates can be due a digest.
    candidates = [s for s, mine in by_subscriber.items() if _expected(mine) > 1 or len(mine) > 1]
    outcome = DigestOutcome(remaining=[])
    singles: dict[str, list[dict[str, Any]]] = {}
    if candidates:
        status = _status(day, candidates)
        for subscriber in candidates:
            mine = by_subscriber[subscriber]
            singles[subscriber] = _digest_one(
                mailer, day, subscriber, mine, status[subscriber], batch, outcome
            )
    for notification in wanted:
        if notification["subscriber"] not in singles:
            outcome.remaining.append(notification)
    for single in singles.values():
        outcome.remaining.extend(single)
    if candidates:
        logger.info("digests processed", day=day, **outcome.tally)
    return outcome


def _status(day: str, subscribers: list[str]) -> dict[str, Any]:
    return invoke(
        "data",
        {"action": "digest_status", "day": day, "subscribers": subscribers},
        wait=True,
        idempotent=True,
    )


def _taken(status: Mapping[str, Any], batch: str) -> bool:
    """Tell whether another attempt sent today's digest, or still holds a live lease on it."""
    if status.get("sent") is None or status.get("claimedBy") == batch:
        return False
    return bool(status.get("claimLive", True))


def _digest_one(
    mailer: Mailer,
    day: str,
    subscriber: str,
    mine: list[dict[str, Any]],
    status: Mapping[str, Any],
    batch: str,
    outcome: DigestOutcome,
) -> list[dict[str, Any]]:
    """Handle one address; return its notifications that go out as single emails."""
    if _taken(status, batch):
        return []  # today's digest went out already (another batch or an earlier attempt)
    expected = _expected(mine)
    if status["recorded"] < expected:
        # Not every result of the day is in: keep these for the batch that records the last.
        invoke(
            "data",
            {
                "action": "defer_notifications",
                "day": day,
                "subscriber": subscriber,
                "notifications": mine,
            },
            wait=True,
            idempotent=True,
        )
        # Read again: the last result may have been recorded meanwhile, its batch having
        # found nothing kept yet; then this attempt sends.
        status = _status(day, [subscriber])[subscriber]
        if _taken(status, batch):
            return []
        if status["recorded"] < expected:
            outcome.tally["waiting"] += len(mine)
            return []
    combined = {n["target"]: n for n in status.get("waiting") or []}
    combined.update({n["target"]: n for n in mine})
    notifications = [combined[target] for target in sorted(combined)]
    if len(notifications) < 2:
        return notifications  # one email due: it stays today's single email
    return _send(mailer, day, subscriber, notifications, batch, outcome)


def _send(
    mailer: Mailer,
    day: str,
    subscriber: str,
    notifications: list[dict[str, Any]],
    batch: str,
    outcome: DigestOutcome,
) -> list[dict[str, Any]]:
    """Claim and send one address's digest; return what must still go singly (nothing)."""
    keys = [{"subscriber": subscriber, "target": n["target"]} for n in notifications]
    found = invoke("data", {"action": "recipients", "keys": keys}, wait=True, idempotent=True)
    recipients = {r["target"]: r for r in found or []}
    if not recipients or any(r.get("suppressed") for r in recipients.values()):
        return notifications  # the single path skips suppressed or unsubscribed ones as ever
    notifications = [n for n in notifications if n["target"] in recipients]
    claim = invoke(
        "data",
        {
            "action": "claim_digest",
            "day": day,
            "subscriber": subscriber,
            "targets": [n["target"] for n in notifications],
            "batch": batch,
        },
        wait=True,
        idempotent=True,
    )
    if not claim["claimed"]:
        return []
    single = [
        {"subscriber": subscriber, "target": n["target"], "kind": n["kind"]} for n in notifications
    ]
    # Each listed email's own leased claim (claims.py), so a single email of the same day,
    # or a retry after a crash, never sends it again beside the digest.
    taken = [entry for entry in single if _step(day, batch, claim=entry).get("state") == "claimed"]
    held = {entry["target"] for entry in taken}
    items = [
        digest.DigestItem.from_notification(n, recipients[n["target"]]["token"])
        for n in notifications
        if n["target"] in held
    ]
    if not items:
        return []
    try:
        address = mailer.vault.open(next(iter(recipients.values()))["address"], subscriber)
        mailer.deliver(digest.render(mailer.settings, address, items, claim["token"]))
    except Exception:
        logger.exception("digest not sent", subscriber=subscriber, day=day)
        _release(day, subscriber, batch, taken)
        outcome.tally["failed"] += len(items)
        return []
    _step(day, batch, sent=taken)
    invoke(
        "data",
        {"action": "confirm_digest", "day": day, "subscriber": subscriber, "batch": batch},
        wait=True,
        idempotent=True,
    )
    outcome.tally["digests"] += 1
    outcome.tally["digested"] += len(items)
    logger.info("digest sent", subscriber=subscriber, day=day, certificates=len(items))
    return []


def waiting_notifications(day: str, subscribers: list[str]) -> list[dict[str, Any]]:
    """Return the notifications kept for these subscribers' digests (their day may be complete)."""
    kept: list[dict[str, Any]] = []
    for start in range(0, len(subscribers), 100):
        chunk = subscribers[start : start + 100]
        waiting = invoke(
            "data",
            {"action": "waiting_subscribers", "day": day, "subscribers": chunk},
            wait=True,
            idempotent=True,
        )
        if waiting:
            for entry in _status(day, waiting).values():
                kept.extend(entry.get("waiting") or [])
    return kept


def _step(day: str, batch: str, **fields: Any) -> dict[str, Any]:
    """Claim (`claim=`) or confirm (`sent=[…]`) leased notification claims for this attempt."""
    payload = {"action": "step_notifications", "day": day, "batch": batch, **fields}
    return invoke("data", payload, wait=True, idempotent=True) or {}


def _release(day: str, subscriber: str, batch: str, single: list[dict[str, str]]) -> None:
    """Undo this attempt's claims so that AWS's retry of the batch sends the digest."""
    for claim in single:
        invoke(
            "data",
            {"action": "release_notification", "day": day, "batch": batch, **claim},
            wait=True,
        )
    invoke(
        "data",
        {"action": "release_digest", "day": day, "subscriber": subscriber, "batch": batch},
        wait=True,
    )
