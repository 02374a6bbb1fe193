"""The cron function: at 06:00 UTC, fan the confirmed subscriptions out to checkers by target."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from chalicelib import logs
from chalicelib.config import get_settings
from chalicelib.errors import InvocationError
from chalicelib.invoke import dispatch, invoke
from chalicelib.sweep import SweepStepFailed, plan_batches, require_day

logs.setup()
logger = logs.get_logger(__name__)

SCAN_SEGMENTS = 4  # parallel scan segments, each paginated
SCAN_PAGE_LIMIT = 5000  # items per page: well under a blocking invocation's 6 MB answer


def _scan_segment(segment: int) -> list[dict[str, Any]]:
    """Read every page of one scan segment through the data function."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = invoke(
            "data",
            {
                "action": "scan_subscriptions",
                "segment": segment,
                "total_segments": SCAN_SEGMENTS,
                "cursor": cursor,
                "limit": SCAN_PAGE_LIMIT,
            },
            wait=True,
            idempotent=True,
        )
        items.extend(page["items"])
        cursor = page.get("cursor")
        if not cursor:
            return items


def scan_all() -> list[dict[str, Any]]:
    """Return every confirmed subscription, its segments read in parallel."""
    with ThreadPoolExecutor(max_workers=SCAN_SEGMENTS) as pool:
        pages = list(pool.map(_scan_segment, range(SCAN_SEGMENTS)))
    return [item for page in pages for item in page]


def sweep(day: str | None = None) -> dict[str, Any]:
    """Start the daily sweep: scan, group by target, invoke a checker per batch."""
    day = require_day(day or datetime.now(UTC).date().isoformat())
    try:
        subscriptions = scan_all()
        batches = plan_batches(subscriptions, get_settings().checker_batch_size)
        # Before the fan-out, so that a sweep stopped half-way reads as unfinished at 07:00.
        plan = {"action": "record_sweep_plan", "day": day, "subscriptions": len(subscriptions)}
        invoke("data", plan, wait=True, idempotent=True)
        for batch in batches:
            invoke("checker", {"action": "check", "day": day, "targets": batch})
    except InvocationError as error:
        raise SweepStepFailed(f"sweep of {day} failed: {error.message}") from error
    summary = {
        "day": day,
        "subscriptions": len(subscriptions),
        "targets": sum(len(batch) for batch in batches),
        "batches": len(batches),
    }
    logger.info("sweep started", **summary)
    return summary


ACTIONS = {"sweep": sweep}


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Answer one cron action (EventBridge sends {"action": "sweep"})."""
    return dispatch(event, ACTIONS)
