"""SES's sending rate is the account's: concurrent mailers together keep under it.

Emulated SES enforces a maximum send rate as SES does (local/ses_quota.py): per
second, across every sender, refusing the rest with Throttling "Maximum sending
rate exceeded.". Four mailers sending at once share the rate through the data
function's per-second counter (chalicelib/send_rate.py), and every email goes.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

import lambdas.mailer as mailer_function
from chalicelib import mailer, send_rate
from chalicelib.config import reset_settings
from chalicelib.invoke import invoke
from local import ses_quota
from tests.integration import sweep_stack
from tests.integration.sweep_stack import DAY1, sent_messages
from tests.security.conftest import record_figure

stack, sweep_pki, sweep_ca_bundle = (
    sweep_stack.stack,
    sweep_stack.sweep_pki,
    sweep_stack.sweep_ca_bundle,
)

RATE = 5
MAILERS = 4
PER_MAILER = 4
TARGET = "example.com:443"
RESULT = {
    "host": "example.com",
    "port": 443,
    "status": "expiring",
    "alert": True,
    "daysLeft": 4,
    "notAfter": "2026-11-24T00:00:00Z",
    "issuedBy": "Test CA",
    "subject": "CN=example.com",
    "problems": [{"code": "expiring", "message": "the certificate expires in 4 days"}],
}


@pytest.fixture
def quota(stack, monkeypatch, atomic_dynamodb):
    """Emulated SES limited to RATE emails a second; mailers paced to the account's quota."""
    monkeypatch.setenv("SSLNOTIFY_SES_RATE", "quota")
    reset_settings()
    mailer.account_send_rate.cache_clear()
    limit = ses_quota.install(RATE, monkeypatch.setattr)
    monkeypatch.setattr(mailer, "BACKOFF_SECONDS", 0.1)
    yield limit
    mailer.account_send_rate.cache_clear()


def due_batches(stack) -> list[list[dict]]:
    """Subscribe MAILERS x PER_MAILER addresses, record an expiring day, split what is due."""
    for index in range(MAILERS * PER_MAILER):
        stack.subscribe(f"user{index}@example.org", TARGET)
    items = invoke("data", {"action": "scan_subscriptions"}, True)["items"]
    results = [{"subscriber": i["subscriber"], "target": TARGET, "result": RESULT} for i in items]
    due = invoke("data", {"action": "record_results", "day": DAY1, "results": results}, True)
    assert len(due) == MAILERS * PER_MAILER
    return [due[start::MAILERS] for start in range(MAILERS)]


def run_concurrently(batches: list[list[dict]]) -> int:
    """Run one mailer per batch at once, then AWS's retries of those that failed; count them."""
    events = [{"action": "send_notifications", "day": DAY1, "notifications": b} for b in batches]
    failed = 0
    for _attempt in range(3):  # the first attempt and AWS's two retries

        def attempt(event):
            try:
                mailer_function.handler(event, None)
                return None
            except mailer.DeliveryFailed:
                return event

        with ThreadPoolExecutor(len(events)) as pool:
            events = [event for event in pool.map(attempt, events) if event is not None]
        failed += len(events)
        if not events:
            break
    assert events == [], "emails left over after AWS's retries"
    return failed


def alerts_by_recipient() -> Counter:
    return Counter(str(message["To"]) for message in sent_messages())


def test_concurrent_mailers_together_keep_to_the_accounts_rate(stack, quota):
    batches = due_batches(stack)
    started = time.monotonic()
    run_concurrently(batches)
    took = time.monotonic() - started
    sent = alerts_by_recipient()
    assert len(sent) == MAILERS * PER_MAILER and max(sent.values()) == 1
    assert quota.busiest <= RATE
    # A send may slip into the next second under load and be throttled once; no more.
    assert quota.throttled <= 2, f"{quota.throttled} sends throttled"
    assert took >= (MAILERS * PER_MAILER) / RATE - 1.5  # the rate was kept, not beaten
    record_figure("emails sent by concurrent mailers within the account's rate", sum(sent.values()))


def test_without_the_shared_rate_ses_throttles_and_nothing_is_lost(stack, quota, monkeypatch):
    """The control: each mailer on its own pace (the old design) makes SES throttle; the
    throttled sends back off and are retried, and still every email goes once."""
    monkeypatch.setattr(send_rate, "MAX_AHEAD_SECONDS", 0)
    monkeypatch.setattr(mailer.Mailer, "send_rate", lambda self: 1_000_000)
    batches = due_batches(stack)
    run_concurrently(batches)
    sent = alerts_by_recipient()
    assert len(sent) == MAILERS * PER_MAILER and max(sent.values()) == 1
    assert quota.throttled > 2
    assert quota.busiest <= RATE


def test_a_full_second_sends_the_next_email_in_the_next_second(lambdas, monkeypatch):
    monkeypatch.setattr(send_rate, "clock", lambda: 1_900_000_000.25)
    places = [invoke("data", {"action": "reserve_send", "rate": 2.9}, True) for _ in range(5)]
    # Two a second (whole emails): now, now, then the next seconds' first places.
    assert places == [1_900_000_000.25] * 2 + [1_900_000_001.0] * 2 + [1_900_000_002.0]
    monkeypatch.setattr(send_rate, "MAX_AHEAD_SECONDS", 1)
    assert invoke("data", {"action": "reserve_send", "rate": 2.9}, True) is None  # all full


def test_emulated_ses_counts_every_sender_in_one_second():
    now = [100.0]
    quota = ses_quota.SendRateQuota(3, clock=lambda: now[0])
    assert [quota.admit() for _ in range(5)] == [True, True, True, False, False]
    now[0] = 101.0
    assert quota.admit() and (quota.admitted, quota.throttled, quota.busiest) == (4, 2, 3)
