"""Gather the operator's daily report: unusual log lines, new bounces and complaints, counts.

Something worth mailing is a log line that is not routine, a new bounce or complaint, or
a sweep that checked nothing although there are subscriptions. Counts alone are not:
a quiet day sends no mail.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws
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


def compose(
    now: datetime,
    counts: Mapping[str, Any],
    day_counts: Mapping[str, Any],
    lines: Mapping[str, tuple[Sequence[LogLine], int]],
) -> Report:
    """Write the report text from the gathered facts (pure)."""
    since = now - WINDOW
    suppressions = list(day_counts.get("suppressions") or [])
    subscriptions = int(counts.get("subscriptions", 0))
    checked = int(day_counts.get("checked", 0))
    sweep_missing = subscriptions > 0 and checked == 0
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
    worth = bool(total_lines or suppressions or sweep_missing)
    return Report(
        text="\n\n".join(sections) + "\n",
        worth_sending=worth,
        lines=total_lines,
        suppressions=len(suppressions),
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
    return compose(now, counts, day_counts or {}, unusual_lines(settings, since, now))
