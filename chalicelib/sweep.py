"""Plan the daily sweep: group subscriptions by target and pack them into invocation batches.

Pure: no AWS, no network. Each target is probed once however many people watch it,
and every batch fits an asynchronous Lambda payload (256 KB).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from chalicelib.errors import PayloadError

ASYNC_PAYLOAD_LIMIT = 256 * 1024
# Room for the envelope ({"action": …, "day": …}) and a little slack.
PAYLOAD_BUDGET = ASYNC_PAYLOAD_LIMIT - 4 * 1024
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class SweepStepFailed(RuntimeError):
    """A step of the sweep failed and should run again.

    Deliberately not an SslnotifyError: dispatch() lets it propagate, so AWS retries
    the asynchronous invocation (the sweep's steps are idempotent per day).
    """


def require_day(day: Any) -> str:
    """Return a sweep day (an ISO date, UTC) or refuse the payload."""
    if not isinstance(day, str) or not _DAY.fullmatch(day):
        raise PayloadError("day must be a date like 2026-11-27")
    return day


def json_size(value: Any) -> int:
    """Return the size in bytes of a value as invoke() serialises it."""
    return len(json.dumps(value).encode())


def group_by_target(subscriptions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Group scanned subscriptions by target, in a stable order, each subscriber once per target.

    A subscriber watching several targets has its count of them in each entry ("count"): the
    mailer sends its day's emails as one digest once that many results are recorded.
    """
    groups: dict[str, dict[str, str]] = {}
    for item in subscriptions:
        watchers = groups.setdefault(str(item["target"]), {})
        watchers[str(item["subscriber"])] = str(item.get("tolerance", "30"))
    counts: dict[str, int] = {}
    for watchers in groups.values():
        for subscriber in watchers:
            counts[subscriber] = counts.get(subscriber, 0) + 1
    return [
        {
            "target": target,
            "subscriptions": [
                {"subscriber": subscriber, "tolerance": tolerance}
                | ({"count": counts[subscriber]} if counts[subscriber] > 1 else {})
                for subscriber, tolerance in sorted(watchers.items())
            ],
        }
        for target, watchers in sorted(groups.items())
    ]


def split_group(group: Mapping[str, Any], max_bytes: int = PAYLOAD_BUDGET) -> list[dict[str, Any]]:
    """Split one target's subscriptions into pieces that each fit a payload.

    Only a target watched by thousands of people needs this; it is then probed once per piece.
    """
    pieces: list[dict[str, Any]] = []
    current: list[Any] = []
    size = json_size({"target": group["target"], "subscriptions": []})
    for subscription in group["subscriptions"]:
        extra = json_size(subscription) + 2
        if current and size + extra > max_bytes:
            pieces.append({"target": group["target"], "subscriptions": current})
            current, size = [], json_size({"target": group["target"], "subscriptions": []})
        current.append(subscription)
        size += extra
    pieces.append({"target": group["target"], "subscriptions": current})
    return pieces


def pack(
    items: Iterable[Any],
    max_count: int,
    max_bytes: int = PAYLOAD_BUDGET,
    size: Callable[[Any], int] = json_size,
) -> list[list[Any]]:
    """Pack items in order into batches of at most max_count items and max_bytes of JSON.

    An item larger than max_bytes on its own gets a batch of its own (the caller splits it first).
    """
    if max_count < 1:
        raise ValueError("max_count must be at least 1")
    batches: list[list[Any]] = []
    current: list[Any] = []
    used = 2  # the list's brackets
    for item in items:
        extra = size(item) + 2  # the separator ", "
        if current and (len(current) >= max_count or used + extra > max_bytes):
            batches.append(current)
            current, used = [], 2
        current.append(item)
        used += extra
    if current:
        batches.append(current)
    return batches


def plan_batches(
    subscriptions: Iterable[Mapping[str, Any]],
    targets_per_batch: int,
    max_bytes: int = PAYLOAD_BUDGET,
) -> list[list[dict[str, Any]]]:
    """Return the checker batches for scanned subscriptions: grouped, split if huge, packed."""
    groups = [
        piece
        for group in group_by_target(subscriptions)
        for piece in (split_group(group, max_bytes) if json_size(group) > max_bytes else [group])
    ]
    return pack(groups, targets_per_batch, max_bytes)
