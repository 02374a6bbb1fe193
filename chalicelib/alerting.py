"""Decide, from a subscription's previous check state and today's result, what to notify.

Pure. Rules: an alert repeats every day while the problem lasts; a target that cannot
be checked (status `error`) alerts only from the second consecutive failed check; a
subscription that was in alert gets one "fixed" notification when its certificate is
fine again; a second result for a day already recorded changes nothing and repeats
that day's decision (the mailer's claim then keeps the email to one). A certificate found
revoked stays so while its revocation is only unconfirmed (`unknown`): no "fixed" email
because a CRL could not be fetched one morning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

Kind = Literal["alert", "fixed"]

ERRORS_BEFORE_ALERT = 2
ALERT_STATUSES = frozenset({"expiring", "invalid"})


@dataclass(frozen=True)
class CheckState:
    """What the checkstate table remembers about one subscription between sweeps."""

    subscriber: str
    target: str
    status: str | None = None
    checked_day: str | None = None
    error_streak: int = 0
    alerting: bool = False
    alert_sent_day: str | None = None
    fixed_sent_day: str | None = None
    notify_day: str | None = None
    notify_kind: str | None = None
    summary: Mapping[str, Any] | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> CheckState:
        """Build the state from a DynamoDB item (numbers arrive as Decimal)."""
        return cls(
            subscriber=str(item["subscriber"]),
            target=str(item["target"]),
            status=item.get("status"),
            checked_day=item.get("checked_day"),
            error_streak=int(item.get("error_streak", 0)),
            alerting=bool(item.get("alerting", False)),
            alert_sent_day=item.get("alert_sent_day"),
            fixed_sent_day=item.get("fixed_sent_day"),
            notify_day=item.get("notify_day"),
            notify_kind=item.get("notify_kind"),
            summary=item.get("summary"),
        )

    def to_item(self) -> dict[str, Any]:
        """Return the DynamoDB item, without empty attributes."""
        item = {
            "subscriber": self.subscriber,
            "target": self.target,
            "status": self.status,
            "checked_day": self.checked_day,
            "error_streak": self.error_streak,
            "alerting": self.alerting,
            "alert_sent_day": self.alert_sent_day,
            "fixed_sent_day": self.fixed_sent_day,
            "notify_day": self.notify_day,
            "notify_kind": self.notify_kind,
            "summary": dict(self.summary) if self.summary is not None else None,
        }
        return {key: value for key, value in item.items() if value is not None}


@dataclass(frozen=True)
class Decision:
    """Today's outcome for one subscription: the notification due (if any) and the new state."""

    kind: Kind | None
    state: CheckState
    changed: bool


def summarize(result: Mapping[str, Any]) -> dict[str, Any]:
    """Return the few fields of a check result worth keeping between sweeps."""
    summary = {
        "status": result.get("status"),
        "daysLeft": result.get("daysLeft"),
        "notAfter": result.get("notAfter"),
        "problems": [str(problem.get("code")) for problem in result.get("problems") or []],
    }
    revocation = result.get("revocation")
    if isinstance(revocation, Mapping) and revocation.get("status"):
        summary["revocation"] = str(revocation["status"])
    return summary


def _unconfirmed_revocation(before: CheckState, result: Mapping[str, Any]) -> bool:
    """Tell whether the certificate found revoked before is today merely not confirmed."""
    summary = before.summary or {}
    revocation = result.get("revocation")
    return (
        "revoked" in (summary.get("problems") or [])
        and isinstance(revocation, Mapping)
        and revocation.get("status") == "unknown"
        # The same certificate: a new one is judged afresh (and its "fixed" email is due).
        and summary.get("notAfter") == result.get("notAfter")
    )


def decide(
    previous: CheckState | None,
    subscriber: str,
    target: str,
    day: str,
    result: Mapping[str, Any],
) -> Decision:
    """Return what to notify for today's result and the state to remember."""
    before = previous or CheckState(subscriber=subscriber, target=target)
    if before.checked_day is not None and before.checked_day >= day:
        # Already recorded today (a retried or repeated invocation): same answer, no change.
        kind = before.notify_kind if before.notify_day == day else None
        return Decision(kind=kind, state=before, changed=False)  # type: ignore[arg-type]

    status = str(result.get("status"))
    streak = before.error_streak + 1 if status == "error" else 0
    kind: Kind | None
    if status in ALERT_STATUSES or (status == "error" and streak >= ERRORS_BEFORE_ALERT):
        kind, alerting = "alert", True
    elif status == "error":
        # A first failure neither alerts nor clears an earlier alert.
        kind, alerting = None, before.alerting
    elif before.alerting and _unconfirmed_revocation(before, result):
        # A revocation is final; a source that did not answer today does not undo it.
        kind, alerting = None, True
        result = {**result, "problems": [{"code": "revoked"}]}
    elif before.alerting:
        kind, alerting = "fixed", False
    else:
        kind, alerting = None, False

    state = replace(
        before,
        status=status,
        checked_day=day,
        error_streak=streak,
        alerting=alerting,
        notify_day=day if kind else before.notify_day,
        notify_kind=kind if kind else before.notify_kind,
        summary=summarize(result),
    )
    return Decision(kind=kind, state=state, changed=True)
