"""The reporter function: at 07:00 UTC, mail the operator what happened, if anything did."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib import logs, metrics, report
from chalicelib.config import get_settings
from chalicelib.errors import PayloadError
from chalicelib.invoke import dispatch, invoke

logs.setup()
logger = logs.get_logger(__name__)

MAX_REPORT_CHARACTERS = 200_000


def _moment(now: Any) -> datetime | None:
    if now is None:
        return None
    try:
        moment = datetime.fromisoformat(str(now).replace("Z", "+00:00"))
    except ValueError as error:
        raise PayloadError("now must be an ISO 8601 time") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_report(now: str | None = None) -> dict[str, Any]:
    """Gather the daily report and mail it to the operator when it says something."""
    gathered = report.gather(_moment(now))
    # CloudWatch turns this line into the metric of the sweep-unfinished alarm.
    metrics.emit(metrics.sweep_document(get_settings().prefix, gathered.sweep_finished))
    if gathered.worth_sending:
        invoke(
            "mailer", {"action": "send_report", "text": gathered.text[:MAX_REPORT_CHARACTERS]}, True
        )
    outcome = {
        "sent": gathered.worth_sending,
        "lines": gathered.lines,
        "suppressions": gathered.suppressions,
    }
    logger.info("report done", **outcome)
    return outcome


ACTIONS = {"report": run_report}


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Answer one reporter action (EventBridge sends {"action": "report"})."""
    return dispatch(event, ACTIONS)
