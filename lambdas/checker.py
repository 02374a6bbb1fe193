"""The checker function: probe a batch of targets once each, evaluate per tolerance, notify."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib import logs
from chalicelib.checker.check import gather_evidence
from chalicelib.checker.combine import evaluate_name_tolerances
from chalicelib.checker.evaluate import CheckResult
from chalicelib.checker.renewal_lookup import amend_all, lookup_from
from chalicelib.checker.targets import parse_target
from chalicelib.checker.trust import default_trust
from chalicelib.config import get_settings
from chalicelib.errors import BadInput, InvocationError, PayloadError
from chalicelib.invoke import dispatch, invoke
from chalicelib.open_files import fit_concurrency
from chalicelib.sweep import SweepStepFailed, pack, require_day

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
            raise PayloadError(
                "each entry of targets needs a target key (host:port or smtp://host:port)"
            )
        if not isinstance(subscriptions, list) or not all(
            isinstance(s, Mapping) and isinstance(s.get("subscriber"), str) for s in subscriptions
        ):
            raise PayloadError("each entry of targets needs a list of subscriptions")
    return targets


def _tolerance(value: Any) -> int | str:
    text = str(value)
    return "auto" if text == "auto" else int(text)


def judge_group(
    group: Mapping[str, Any], evidence: Any, now: datetime, trust: Any
) -> list[CheckResult]:
    """Judge one target's evidence once; its result for each distinct tolerance, in order."""
    tolerances = _tolerances(group)
    return evaluate_name_tolerances(evidence, [_tolerance(t) for t in tolerances], now, trust)


def _tolerances(group: Mapping[str, Any]) -> list[str]:
    return sorted({str(s.get("tolerance", "30")) for s in group["subscriptions"]})


def group_entry(group: Mapping[str, Any], judged: list[CheckResult]) -> dict[str, Any]:
    """Return {"target", "results": {tolerance: result}, "subscriptions"}: what record_results
    takes, once each result is made brief (data keeps a summary; the whole result goes from
    here to the mailer with each notification due).
    """
    tolerances = _tolerances(group)
    return {
        "target": group["target"],
        "results": {t: result.to_dict() for t, result in zip(tolerances, judged, strict=True)},
        "subscriptions": [
            {"subscriber": s["subscriber"], "tolerance": str(s.get("tolerance", "30"))}
            | ({"count": s["count"]} if isinstance(s.get("count"), int) else {})
            for s in group["subscriptions"]
        ],
    }


def evaluate_group(
    group: Mapping[str, Any], evidence: Any, now: datetime, trust: Any
) -> dict[str, Any]:
    """Judge one target and shape its entry, without outside evidence (benchmarks use this)."""
    return group_entry(group, judge_group(group, evidence, now, trust))


def brief(result: Mapping[str, Any]) -> dict[str, Any]:
    """Return what data keeps of a result (alerting.summarize reads only these fields)."""
    kept = {
        "status": result.get("status"),
        "daysLeft": result.get("daysLeft"),
        "notAfter": result.get("notAfter"),
        "problems": [{"code": p.get("code")} for p in result.get("problems") or []],
    }
    unknown = [
        name
        for name, part in (result.get("renewal") or {}).items()
        if isinstance(part, dict) and part.get("message")
    ]
    if unknown:  # for the daily report: the outside sources (CT, ARI) that did not answer
        kept["renewalUnknown"] = unknown
    revocation = result.get("revocation")
    if isinstance(revocation, Mapping):
        kept["revocation"] = {"status": revocation.get("status")}
    return kept


def _brief_group(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {**entry, "results": {t: brief(r) for t, r in entry["results"].items()}}


class _FullResults:
    """The whole result of each (target, tolerance), for the emails of what data says is due."""

    def __init__(self, results: list[dict[str, Any]]):
        self._by_tolerance = {
            (entry["target"], tolerance): result
            for entry in results
            for tolerance, result in entry["results"].items()
        }
        self._tolerance = {
            (s["subscriber"], entry["target"]): s["tolerance"]
            for entry in results
            for s in entry["subscriptions"]
        }

    def attach(self, notification: dict[str, Any]) -> dict[str, Any]:
        """Give a due notification the whole result its email describes."""
        key = (notification["subscriber"], notification["target"])
        result = self._by_tolerance.get((notification["target"], self._tolerance.get(key)))
        return {**notification, "result": result} if result else notification


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
    now = datetime.now(UTC)
    trust = default_trust(settings.ca_bundle)
    checked: list[tuple[Any, list[CheckResult]] | None] = [None] * len(groups)

    def judge(index: int, evidence: Any) -> None:
        # Judged as each probe ends, while the other handshakes are still waiting on the network.
        checked[index] = (evidence, judge_group(groups[index], evidence, now, trust))

    asyncio.run(
        gather_evidence(
            parsed,
            timeout=settings.check_timeout,
            # Lambda allows 1,024 open files: never more probes than that limit can carry.
            concurrency=fit_concurrency(settings.probe_concurrency),
            allow_private=settings.allow_private_targets,
            check_ipv6=settings.check_ipv6,
            on_evidence=judge,
            trust=trust,
            check_revocation=settings.check_revocation,
        )
    )
    lookup = lookup_from(settings)
    calls_before = lookup.calls
    done = [(group, seen) for group, seen in zip(groups, checked, strict=True) if seen is not None]
    amended = amend_all(lookup, [seen for _group, seen in done])
    results = [group_entry(group, judged) for (group, _), judged in zip(done, amended, strict=True)]
    unknown = sum(
        1 for judged in amended if judged and judged[0].renewal and judged[0].renewal.unknown
    )
    full = _FullResults(results)
    notifications = mailer_invocations = 0
    try:
        briefs = [_brief_group(entry) for entry in results]
        for chunk in pack(briefs, max_count=10_000, max_bytes=RECORD_CHUNK_BYTES):
            record = {"action": "record_results", "day": day, "targets": chunk}
            due = [full.attach(n) for n in invoke("data", record, wait=True, idempotent=True)]
            # Mail what this chunk made due at once, while the next chunk is recorded.
            for batch in pack(due, MAILER_BATCH):
                invoke(
                    "mailer", {"action": "send_notifications", "day": day, "notifications": batch}
                )
                mailer_invocations += 1
            notifications += len(due)
            # A subscriber of several targets whose result here made nothing due may still
            # complete its day: the mailer sends any digest kept waiting for it.
            due_for = {n["subscriber"] for n in due}
            finished = sorted(
                {
                    s["subscriber"]
                    for entry in chunk
                    for s in entry["subscriptions"]
                    if s.get("count") and s["subscriber"] not in due_for
                }
            )
            for part in pack(finished, 100):
                invoke(
                    "mailer", {"action": "send_waiting_digests", "day": day, "subscribers": part}
                )
                mailer_invocations += 1
    except InvocationError as error:
        raise SweepStepFailed(
            f"check of {len(groups)} target(s) failed: {error.message}"
        ) from error
    subscriptions = sum(len(entry["subscriptions"]) for entry in results)
    summary = {
        "day": day,
        "targets": len(groups),
        "subscriptions": subscriptions,
        "errors": sum(
            len(entry["subscriptions"])
            for entry in results
            if any(result.get("status") == "error" for result in entry["results"].values())
        ),
        "notifications": notifications,
        "mailer_invocations": mailer_invocations,
        "outside_calls": lookup.calls - calls_before,
        "renewal_unknown": unknown,
    }
    logger.info("batch checked", **summary)
    return summary


ACTIONS = {"check": check}


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Answer one checker action."""
    return dispatch(event, ACTIONS)
