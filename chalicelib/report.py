"""Gather the operator's daily report: the alarms' signals, unusual log lines, bounces, counts.

The report runs at 07:00 UTC and shows locally what CloudWatch alarms watch in AWS
(terraform/alarms.tf): dead letters, function errors, the sweep not finished, the bounce
and complaint rates. Something worth mailing is one of those, a log line that is not
routine, or a new bounce or complaint. Counts alone are not: a quiet day sends no mail.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws, dead_letters
from chalicelib.config import Settings, get_settings, resources
from chalicelib.invoke import invoke
from chalicelib.logs import get_logger, redact

logger = get_logger(__name__)

WINDOW = timedelta(hours=25)
ROUTINE_PREFIXES = ("START ", "END ", "REPORT ", "INIT_START ", "INIT_REPORT ", "EXTENSION ")
ROUTINE_LEVELS = frozenset({"INFO", "DEBUG"})
LOG_PAGE_SIZE = 10_000  # events per filter_log_events page (the API's maximum)
MAX_LINES_PER_FUNCTION = 200
MAX_LINE_LENGTH = 2000
# SES reviews an account at 5 % bounces and 0.1 % complaints; warn below (the alarms' levels).
BOUNCE_RATE_WARNING = 0.04
COMPLAINT_RATE_WARNING = 0.0008


@dataclass(frozen=True)
class LogLine:
    """One log event worth an operator's eyes."""

    function: str
    at: datetime
    message: str


@dataclass(frozen=True)
class Report:
    """The report's text, and whether it says anything worth a mail."""

    text: str
    worth_sending: bool
    lines: int
    suppressions: int
    sweep_finished: bool = True


def is_routine(message: str) -> bool:
    """Tell whether a log line is routine: Lambda's own lines and INFO/DEBUG JSON lines."""
    text = message.strip()
    if not text or text.startswith(ROUTINE_PREFIXES):
        return True
    if text.startswith("{"):
        try:
            entry = json.loads(text)
        except ValueError:
            return False
        return isinstance(entry, dict) and entry.get("level") in ROUTINE_LEVELS
    return False


def log_group(settings: Settings, function: str) -> str:
    """Return the log group of one of resources.json's functions."""
    return f"/aws/lambda/{settings.function_name(function)}"


def unusual_lines(
    settings: Settings, start: datetime, end: datetime, logs_client: Any = None
) -> dict[str, tuple[list[LogLine], int]]:
    """Read every function's log events in [start, end), page by page; keep what is not routine.

    Returns, per function, the kept lines (at most MAX_LINES_PER_FUNCTION) and how many
    there were in all.
    """
    client = logs_client or aws.client("logs")
    found: dict[str, tuple[list[LogLine], int]] = {}
    for function in resources()["functions"]:
        kept: list[LogLine] = []
        total = 0
        arguments: dict[str, Any] = {
            "logGroupName": log_group(settings, function),
            "startTime": int(start.timestamp() * 1000),
            "endTime": int(end.timestamp() * 1000),
        }
        try:
            pages = client.get_paginator("filter_log_events").paginate(
                **arguments, PaginationConfig={"PageSize": LOG_PAGE_SIZE}
            )
            for page in pages:
                for event in page.get("events", []):
                    message = str(event.get("message", ""))
                    if is_routine(message):
                        continue
                    total += 1
                    if len(kept) < MAX_LINES_PER_FUNCTION:
                        at = datetime.fromtimestamp(event.get("timestamp", 0) / 1000, UTC)
                        line = redact(message.strip())[:MAX_LINE_LENGTH]
                        kept.append(LogLine(function, at, line))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            logger.info("no log group yet", function=function)
        if total:
            found[function] = (kept, total)
    return found


def _many(count: Any, noun: str, plural: str = "s") -> str:
    return f"{count} {noun}" if int(count) == 1 else f"{count} {noun}{plural}"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def sweep_finished(subscriptions: int, day_counts: Mapping[str, Any]) -> tuple[bool, str]:
    """Tell whether today's sweep checked every subscription it set out to, and say it."""
    checked = int(day_counts.get("checked", 0))
    planned = int(day_counts.get("planned", 0))
    if not int(day_counts.get("sweeps", 0)):
        if subscriptions == 0:
            return True, "nothing to check"
        return False, "NOT started today (did the cron function run?)"
    if checked < planned:
        return False, f"NOT finished: {checked} of {planned} subscriptions checked"
    return True, f"finished: {checked} of {planned} subscriptions checked"


def _rate(count: int, sent: int, warning: float) -> tuple[str, bool]:
    if sent == 0:
        return f"{count} (no mail sent today)", count > 0
    rate = count / sent
    above = rate >= warning
    flag = f" - AT OR ABOVE the {warning:.2%} warning level" if above else ""
    return f"{rate:.2%} ({count} of {sent} emails){flag}", above


def signals(
    subscriptions: int,
    day_counts: Mapping[str, Any],
    lines: Mapping[str, tuple[Sequence[LogLine], int]],
    dead_letter_count: int | None,
) -> tuple[list[str], bool, bool]:
    """Return the alarms' signals as lines, whether any calls for attention, and sweep state."""
    finished, sweep_text = sweep_finished(subscriptions, day_counts)
    suppressions = list(day_counts.get("suppressions") or [])
    sent = int(day_counts.get("alerts", 0)) + int(day_counts.get("fixed", 0))
    bounces = sum(1 for entry in suppressions if entry.get("reason") == "bounce")
    complaints = sum(1 for entry in suppressions if entry.get("reason") == "complaint")
    bounce_text, bounce_high = _rate(bounces, sent, BOUNCE_RATE_WARNING)
    complaint_text, complaint_high = _rate(complaints, sent, COMPLAINT_RATE_WARNING)
    if dead_letter_count is None:
        queue_text = "no queue found"
    elif dead_letter_count:
        queue_text = f"{dead_letter_count} failed invocations wait (sslnotify trigger redrive)"
    else:
        queue_text = "empty"
    erring = [f"{function} ({total})" for function, (_, total) in sorted(lines.items())]
    found = [
        f"- Sweep: {sweep_text}",
        f"- Dead-letter queue: {queue_text}",
        f"- Functions with error or warning lines: {', '.join(erring) or 'none'}",
        f"- Bounce rate: {bounce_text}",
        f"- Complaint rate: {complaint_text}",
    ]
    attention = not finished or bool(dead_letter_count) or bounce_high or complaint_high
    return found, attention, finished


def compose(
    now: datetime,
    counts: Mapping[str, Any],
    day_counts: Mapping[str, Any],
    lines: Mapping[str, tuple[Sequence[LogLine], int]],
    dead_letter_count: int | None = 0,
) -> Report:
    """Write the report text from the gathered facts (pure)."""
    since = now - WINDOW
    suppressions = list(day_counts.get("suppressions") or [])
    subscriptions = int(counts.get("subscriptions", 0))
    checked = int(day_counts.get("checked", 0))
    sweep_missing = subscriptions > 0 and checked == 0
    found, attention, finished = signals(subscriptions, day_counts, lines, dead_letter_count)
    sections = [
        f"sslnotify daily report, {_stamp(now)} (log lines since {_stamp(since)})",
        "\n".join(
            [
                "Counts:",
                f"- Subscriptions: {subscriptions} confirmed, {counts.get('pending', 0)} pending, "
                f"{_many(counts.get('suppressed', 0), 'suppressed address', 'es')}",
                f"- Checked today: {_many(checked, 'subscription')} over "
                f"{_many(day_counts.get('targets', 0), 'target')}; "
                f"{day_counts.get('errors', 0)} could not be checked; "
                f"renewal information (CT logs, the CA's ARI) unknown for "
                f"{_many(day_counts.get('renewal_unknown', 0), 'target')}",
                f"- Sent today: {_many(day_counts.get('alerts', 0), 'alert')}, "
                f"{_many(day_counts.get('fixed', 0), 'fixed email')}",
            ]
        ),
        "\n".join(["Signals (the CloudWatch alarms watch the same in AWS):", *found]),
    ]
    if sweep_missing:
        sections.append(
            f"Attention: today's sweep checked nothing, although there are {subscriptions} "
            "subscriptions. Did the cron function run?"
        )
    if suppressions:
        entries = [
            f"- {entry.get('at')} {entry.get('reason')}: {entry.get('subscriber')}"
            for entry in suppressions
        ]
        sections.append(
            f"New bounces and complaints ({len(suppressions)}), by pseudonym:\n"
            + "\n".join(entries)
        )
    total_lines = sum(total for _, total in lines.values())
    for function, (kept, total) in sorted(lines.items()):
        body = [f"Log lines of {function} that are not routine ({total}):"]
        body += [f"{line.at:%Y-%m-%dT%H:%M:%SZ} {line.message}" for line in kept]
        if total > len(kept):
            body.append(f"… and {total - len(kept)} more")
        sections.append("\n".join(body))
    worth = bool(total_lines or suppressions or sweep_missing or attention)
    return Report(
        text="\n\n".join(sections) + "\n",
        worth_sending=worth,
        lines=total_lines,
        suppressions=len(suppressions),
        sweep_finished=finished,
    )


def gather(now: datetime | None = None, settings: Settings | None = None) -> Report:
    """Gather today's facts from the data function and the log groups, and compose the report."""
    settings = settings or get_settings()
    now = now or datetime.now(UTC)
    since = now - WINDOW
    counts = invoke("data", {"action": "counts"}, wait=True, idempotent=True) or {}
    day_counts = invoke(
        "data",
        {
            "action": "report_counts",
            "day": now.date().isoformat(),
            "since": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        wait=True,
        idempotent=True,
    )
    lines = unusual_lines(settings, since, now)
    return compose(now, counts, day_counts or {}, lines, dead_letter_depth(settings))


def dead_letter_depth(settings: Settings) -> int | None:
    """Return how many failed invocations wait in the dead-letter queue (None: unknown)."""
    try:
        return dead_letters.depth(settings.prefix)
    except ClientError as error:
        logger.warning("dead-letter queue unreadable", error=error.response.get("Error", {}))
        return None
