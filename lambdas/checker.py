"""The checker function: probe a batch of targets once each, evaluate per tolerance, notify."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib import logs
from chalicelib.check import gather_evidence
from chalicelib.config import get_settings
from chalicelib.errors import BadInput, InvocationError, PayloadError
from chalicelib.evaluate import evaluate
from chalicelib.invoke import dispatch, invoke
from chalicelib.sweep import SweepStepFailed, pack, require_day
from chalicelib.targets import parse_target
from chalicelib.trust import default_trust

logs.setup()
logger = logs.get_logger(__name__)

MAILER_BATCH = 50  # emails per mailer invocation: about 4 s at SES's 14/s
RECORD_CHUNK_BYTES = 1_000_000  # per record_results call: far under the 6 MB invoke limit


def _groups(targets: Any) -> list[dict[str, Any]]:
    """Validate the batch: [{"target", "subscriptions": [{"subscriber", "tolerance"}]}]."""
    if not isinstance(targets, list):
        raise PayloadError("targets must be a list")
    for group in targets:
        subscriptions = group.get("subscriptions") if isinstance(group, Mapping) else None
        if not isinstance(group, Mapping) or not isinstance(group.get("target"), str):
            raise PayloadError("each entry of targets needs a target key (host:port)")
        if not isinstance(subscriptions, list) or not all(
            isinstance(s, Mapping) and isinstance(s.get("subscriber"), str) for s in subscriptions
        ):
            raise PayloadError("each entry of targets needs a list of subscriptions")
    return targets


def _tolerance(value: Any) -> int | str:
    text = str(value)
    return "auto" if text == "auto" else int(text)


def evaluate_batch(
    groups: list[dict[str, Any]], evidence: list[Any], trust: Any
) -> list[dict[str, Any]]:
    """Evaluate each target's evidence once per distinct tolerance; one result per subscription."""
    now = datetime.now(UTC)
    results = []
    for group, found in zip(groups, evidence, strict=True):
        by_tolerance: dict[str, dict[str, Any]] = {}
        for subscription in group["subscriptions"]:
            tolerance = str(subscription.get("tolerance", "30"))
            if tolerance not in by_tolerance:
                result = evaluate(found, now, _tolerance(tolerance), trust)
                by_tolerance[tolerance] = result.to_dict()
            results.append(
                {
                    "subscriber": subscription["subscriber"],
                    "target": group["target"],
                    "result": by_tolerance[tolerance],
                }
            )
    return results


def check(day: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    """Check a batch of targets, record each subscription's result, mail what is due."""
    require_day(day)
    settings = get_settings()
    groups: list[dict[str, Any]] = []
    parsed = []
    for group in _groups(targets):
        try:
            parsed.append(parse_target(group["target"]))
            groups.append(group)
        except BadInput:
            logger.warning("stored target not parseable", target=group["target"][:100])
    evidence = asyncio.run(
        gather_evidence(
            parsed,
            timeout=settings.check_timeout,
            concurrency=settings.probe_concurrency,
            allow_private=settings.allow_private_targets,
        )
    )
    results = evaluate_batch(groups, evidence, default_trust(settings.ca_bundle))
    try:
        notifications: list[dict[str, Any]] = []
        for chunk in pack(results, max_count=10_000, max_bytes=RECORD_CHUNK_BYTES):
            record = {"action": "record_results", "day": day, "results": chunk}
            notifications += invoke("data", record, wait=True, idempotent=True)
        batches = pack(notifications, MAILER_BATCH)
        for batch in batches:
            invoke("mailer", {"action": "send_notifications", "day": day, "notifications": batch})
    except InvocationError as error:
        raise SweepStepFailed(
            f"check of {len(groups)} target(s) failed: {error.message}"
        ) from error
    summary = {
        "day": day,
        "targets": len(groups),
        "subscriptions": len(results),
        "errors": sum(1 for entry in results if entry["result"].get("status") == "error"),
        "notifications": len(notifications),
        "mailer_invocations": len(batches),
    }
    logger.info("batch checked", **summary)
    return summary


ACTIONS = {"check": check}


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Answer one checker action."""
    return dispatch(event, ACTIONS)
