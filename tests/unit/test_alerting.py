"""What to notify, day after day: repeat alerts, error twice, fixed once, same-day replays."""

import pytest

from chalicelib.alerting import CheckState, decide, summarize

DAYS = [f"2026-11-{day:02d}" for day in range(20, 30)]


def result(status):
    codes = {"ok": [], "expiring": ["expiring"], "invalid": ["expired"], "error": ["timeout"]}
    return {
        "status": status,
        "alert": status in {"expiring", "invalid"},
        "daysLeft": 5 if status != "error" else None,
        "notAfter": "2026-12-02T00:00:00Z" if status != "error" else None,
        "problems": [{"code": code, "message": code} for code in codes[status]],
    }


def run(statuses):
    """Feed one status per day through decide(); return each day's notification."""
    state, kinds = None, []
    for day, status in zip(DAYS, statuses, strict=False):
        decision = decide(state, "s", "t:443", day, result(status))
        state = decision.state
        kinds.append(decision.kind)
    return kinds, state


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["ok", "ok"], [None, None]),
        (["expiring", "expiring", "expiring"], ["alert", "alert", "alert"]),
        (["invalid"], ["alert"]),
        (["expiring", "ok", "ok"], ["alert", "fixed", None]),
        (["ok", "expiring", "invalid", "ok"], [None, "alert", "alert", "fixed"]),
        (["error"], [None]),
        (["error", "error", "error"], [None, "alert", "alert"]),
        (["error", "ok", "error"], [None, None, None]),
        (["error", "error", "ok"], [None, "alert", "fixed"]),
        (["expiring", "error", "ok"], ["alert", None, "fixed"]),
        (["expiring", "error", "error"], ["alert", None, "alert"]),
        (["expiring", "error", "expiring"], ["alert", None, "alert"]),
        (["ok", "error", "expiring"], [None, None, "alert"]),
    ],
)
def test_notifications_day_by_day(statuses, expected):
    kinds, _ = run(statuses)
    assert kinds == expected


@pytest.mark.parametrize(
    ("statuses", "streak", "alerting"),
    [
        (["ok"], 0, False),
        (["error"], 1, False),
        (["error", "error", "error"], 3, True),
        (["error", "ok"], 0, False),
        (["expiring", "error"], 1, True),
    ],
)
def test_state_counts_error_streak_and_alerting(statuses, streak, alerting):
    _, state = run(statuses)
    assert (state.error_streak, state.alerting) == (streak, alerting)
    assert state.checked_day == DAYS[len(statuses) - 1]


@pytest.mark.parametrize("second", ["ok", "expiring", "error"])
@pytest.mark.parametrize("first", ["ok", "expiring", "invalid", "error"])
def test_a_second_result_the_same_day_repeats_the_first_decision(first, second):
    today = decide(None, "s", "t:443", DAYS[0], result(first))
    again = decide(today.state, "s", "t:443", DAYS[0], result(second))
    assert again.kind == today.kind
    assert again.state == today.state
    assert not again.changed


def test_a_replay_without_a_notification_that_day_notifies_nothing():
    yesterday = decide(None, "s", "t:443", DAYS[0], result("expiring")).state
    today = decide(yesterday, "s", "t:443", DAYS[1], result("ok")).state
    tomorrow = decide(today, "s", "t:443", DAYS[2], result("ok")).state
    assert decide(tomorrow, "s", "t:443", DAYS[2], result("expiring")).kind is None


def test_an_older_day_never_rewinds_the_state():
    state = decide(None, "s", "t:443", DAYS[3], result("ok")).state
    late = decide(state, "s", "t:443", DAYS[1], result("expiring"))
    assert (late.kind, late.changed, late.state) == (None, False, state)


def test_state_round_trips_through_a_table_item_and_keeps_sent_days():
    state = CheckState(
        subscriber="s",
        target="t:443",
        status="expiring",
        checked_day=DAYS[0],
        error_streak=0,
        alerting=True,
        alert_sent_day=DAYS[0],
        notify_day=DAYS[0],
        notify_kind="alert",
        summary=summarize(result("expiring")),
    )
    assert CheckState.from_item(state.to_item()) == state
    following = decide(state, "s", "t:443", DAYS[1], result("expiring")).state
    assert following.alert_sent_day == DAYS[0]


def test_summary_keeps_only_the_facts_worth_remembering():
    assert summarize(result("expiring")) == {
        "status": "expiring",
        "daysLeft": 5,
        "notAfter": "2026-12-02T00:00:00Z",
        "problems": ["expiring"],
    }


def revocation_result(status, revocation, not_after="2026-12-02T00:00:00Z"):
    problems = [{"code": "revoked", "message": "revoked"}] if revocation == "revoked" else []
    return {
        "status": status,
        "daysLeft": 5,
        "notAfter": not_after,
        "problems": problems,
        "revocation": {"status": revocation, "source": None, "message": "m"},
    }


def test_a_revoked_certificate_is_not_fixed_by_an_unreachable_crl():
    days = iter(DAYS)
    state = decide(None, "s", "t:443", next(days), revocation_result("invalid", "revoked")).state
    kinds = []
    for _ in range(3):  # the CRL cannot be fetched for three mornings
        decision = decide(state, "s", "t:443", next(days), revocation_result("ok", "unknown"))
        state = decision.state
        kinds.append(decision.kind)
    assert kinds == [None, None, None]
    assert state.alerting and state.summary["problems"] == ["revoked"]
    # A new certificate (another notAfter), or a definite "good", ends the alert.
    renewed = revocation_result("ok", "unknown", not_after="2027-03-01T00:00:00Z")
    assert decide(state, "s", "t:443", next(days), renewed).kind == "fixed"
    assert decide(state, "s", "t:443", DAYS[-1], revocation_result("ok", "good")).kind == "fixed"


def test_summary_keeps_the_revocation_status():
    assert summarize(revocation_result("ok", "good"))["revocation"] == "good"
