"""The mailer function: confirmation, alert, fixed, feedback and report emails through SES."""

from __future__ import annotations

from typing import Any

from chalicelib import logs
from chalicelib.invoke import dispatch
from chalicelib.mailer import Mailer

logs.setup()


def mailer() -> Mailer:
    """Return a mailer for this invocation (cheap: the clients are cached, not the settings)."""
    return Mailer()


def send_confirmation(email: str, target: str, tolerance: str, token: str) -> dict:
    """Send the double opt-in email."""
    return mailer().send_confirmation(email, target, tolerance, token)


def send_notifications(day: str, notifications: list[dict[str, Any]]) -> dict:
    """Send a batch of alerts and fixed emails, each at most once per subscription and day."""
    return mailer().send_notifications(day, notifications)


def send_feedback(name: str, email: str, message: str) -> dict:
    """Forward a feedback form to the feedback mailbox."""
    return mailer().send_feedback(name, email, message)


def send_report(text: str) -> dict:
    """Mail the daily report to the operator."""
    return mailer().send_report(text)


ACTIONS = {
    "send_confirmation": send_confirmation,
    "send_notifications": send_notifications,
    "send_feedback": send_feedback,
    "send_report": send_report,
}


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Answer one mailer action."""
    return dispatch(event, ACTIONS)
