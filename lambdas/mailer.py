"""The mailer function: confirmation, alert, fixed, manage-link, feedback and report emails."""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

from chalicelib import logs
from chalicelib.invoke import dispatch
from chalicelib.mailer import Mailer

logs.setup()


# Stop starting emails this long before the function's timeout (one paced, backed-off send).
DEADLINE_MARGIN_SECONDS = 30.0
_deadline: ContextVar[float | None] = ContextVar("mailer_deadline", default=None)
_timeout_at: ContextVar[float | None] = ContextVar("mailer_timeout_at", default=None)


def mailer() -> Mailer:
    """Return a mailer for this invocation (cheap: the clients are cached, not the settings)."""
    return Mailer(deadline=_deadline.get(), timeout_at=_timeout_at.get())


def send_confirmation(email: str, target: str, tolerance: str, token: str) -> dict:
    """Send the double opt-in email."""
    return mailer().send_confirmation(email, target, tolerance, token)


def send_notifications(day: str, notifications: list[dict[str, Any]]) -> dict:
    """Send a batch of alerts and fixed emails, each at most once per subscription and day."""
    return mailer().send_notifications(day, notifications)


def send_waiting_digests(day: str, subscribers: list[str]) -> dict:
    """Send the digests that these subscribers' last recorded results completed."""
    return mailer().send_waiting_digests(day, subscribers)


def send_manage_link(email: str, token: str) -> dict:
    """Send a link to the manage page."""
    return mailer().send_manage_link(email, token)


def send_feedback(name: str, email: str, message: str) -> dict:
    """Forward a feedback form to the feedback mailbox."""
    return mailer().send_feedback(name, email, message)


def send_report(text: str) -> dict:
    """Mail the daily report to the operator."""
    return mailer().send_report(text)


ACTIONS = {
    "send_confirmation": send_confirmation,
    "send_notifications": send_notifications,
    "send_manage_link": send_manage_link,
    "send_waiting_digests": send_waiting_digests,
    "send_feedback": send_feedback,
    "send_report": send_report,
}


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Answer one mailer action, stopping new sends ahead of the function's timeout."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    deadline = timeout_at = None
    if remaining is not None:
        seconds = remaining() / 1000
        timeout_at = time.monotonic() + seconds
        # A quarter of a short timeout (a local trial of one) leaves it room to send at all.
        deadline = timeout_at - min(DEADLINE_MARGIN_SECONDS, seconds / 4)
    token, timeout_token = _deadline.set(deadline), _timeout_at.set(timeout_at)
    try:
        return dispatch(event, ACTIONS)
    finally:
        _deadline.reset(token)
        _timeout_at.reset(timeout_token)
