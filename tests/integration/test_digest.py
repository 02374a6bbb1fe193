"""The daily digest end to end: cron → data → checker → mailer, one email per address per day."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError
from chalice.test import Client

from chalicelib import aws
from chalicelib.config import reset_settings
from chalicelib.invoke import invoke
from tests.integration import sweep_stack
from tests.integration.sweep_stack import DAY1, DAY2, text_of

stack, sweep_pki, sweep_ca_bundle = (
    sweep_stack.stack,
    sweep_stack.sweep_pki,
    sweep_stack.sweep_ca_bundle,
)

ANN, BOB = "ann@example.org", "bob@example.net"


@pytest.fixture
def three_for_ann(stack):
    """Ann watches a certificate expiring in 3 days, one in 10 and a good one; Bob one."""
    soon, later, good = stack.serve(days_left=3), stack.serve(days_left=10), stack.serve(80)
    for server in (later, good, soon):
        stack.subscribe(ANN, server.address, tolerance="30")
    stack.subscribe(BOB, later.address)
    return soon, later, good


def test_two_due_alerts_come_as_one_digest_most_urgent_first(stack, three_for_ann):
    soon, later, _good = three_for_ann
    stack.sweep(DAY1)
    (digest,) = stack.mail_to(ANN)
    assert digest["Subject"] == (f"SSL alerts for 2 certificates: {soon.address} expires in 3 days")
    text = text_of(digest)
    assert text.index(f"1. {soon.address} expires in 3 days") < text.index(
        f"2. {later.address} expires in 10 days"
    )
    assert text.count("unsubscribe.html?") == 2  # each certificate's own link
    assert "manage.html#user=" in text
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/unsubscribe-digest?token=" in digest["List-Unsubscribe"]
    # One email due: it stays the single alert of today.
    (alert,) = stack.mail_to(BOB)
    assert alert["Subject"] == f"SSL alert for {later.address}: certificate expires in 10 days"
    assert stack.lambdas.failures == []
    print("\n--- digest as rendered ---\nSubject:", digest["Subject"], "\n\n" + text)


def test_the_digest_is_sent_once_under_repeats_and_retries(stack, three_for_ann):
    stack.sweep(DAY1)
    stack.sweep(DAY1)  # cron run twice
    for call in [c for c in stack.lambdas.calls if c.function in ("checker", "mailer")]:
        handler = stack.lambdas._handler(f"sslnotify-test-{call.function}")[1]
        stack.lambdas.queue.append((call.function, handler, call.payload))
    stack.lambdas.drain()  # every checker and mailer invocation delivered again
    assert len(stack.mail_to(ANN)) == 1
    stack.sweep(DAY2)
    assert len(stack.mail_to(ANN)) == 2  # the next day's digest


def test_a_digest_that_fails_to_send_is_sent_by_the_retry(stack, three_for_ann, monkeypatch):
    ses = aws.client("ses")
    real_send = ses.send_raw_email
    failed = []

    def flaky_send(**arguments):
        if arguments["Destinations"] == [ANN] and not failed:
            failed.append(1)
            raise ClientError({"Error": {"Code": "ServiceUnavailable"}}, "SendRawEmail")
        return real_send(**arguments)

    monkeypatch.setattr(ses, "send_raw_email", flaky_send)
    stack.sweep(DAY1)
    assert failed == [1]
    (digest,) = stack.mail_to(ANN)
    assert digest["Subject"].startswith("SSL alerts for 2 certificates")


@pytest.mark.parametrize("good_last", [True, False], ids=["calm-result-last", "calm-result-first"])
def test_results_in_separate_batches_wait_for_the_last_one(
    stack, three_for_ann, monkeypatch, good_last
):
    # One target per checker, and each checker's mail sent before the next target is
    # checked: the first mailer sees one of Ann's results only, and must wait. When the
    # last result recorded is Ann's calm one (nothing due there), its checker still has
    # the kept notifications sent.
    _soon, _later, good = three_for_ann
    monkeypatch.setenv("SSLNOTIFY_CHECKER_BATCH", "1")
    reset_settings()
    invoke("cron", {"action": "sweep", "day": DAY1})
    queue = stack.lambdas.queue
    _cron, handler, payload = queue.popleft()
    handler(payload, None)  # cron: queues one checker per target
    checkers = sorted(
        queue, key=lambda c: (c[2]["targets"][0]["target"] == good.address) == good_last
    )
    queue.clear()
    for _key, checker, checker_payload in checkers:
        checker(checker_payload, None)
        while queue:  # this checker's mail, before the next checker runs
            _, mailer, mail_payload = queue.pop()
            mailer(mail_payload, None)
    (digest,) = stack.mail_to(ANN)
    assert digest["Subject"].startswith("SSL alerts for 2 certificates")
    assert "expires in 3 days" in digest["Subject"]
    assert len(stack.mail_to(BOB)) == 1


def test_one_click_on_a_digest_removes_every_subscription_it_lists(stack, three_for_ann, tmp_path):
    soon, later, good = three_for_ann
    stack.sweep(DAY1)
    (digest,) = stack.mail_to(ANN)
    url = urlsplit(digest["List-Unsubscribe"].strip("<>"))
    from app import app

    with Client(app, project_dir=str(tmp_path)) as client:
        answer = client.http.post(f"{url.path}?{url.query}", body=b"List-Unsubscribe=One-Click")
        assert answer.status_code == 200, answer.body
        assert sorted(json.loads(answer.body)["targets"]) == sorted([soon.address, later.address])
        left = [i["target"] for i in aws.table("subscriptions").scan()["Items"]]
        assert sorted(left) == sorted([good.address, later.address])  # Ann's good one, Bob's
        again = client.http.post(f"{url.path}?{url.query}")
        assert again.status_code == 200 and json.loads(again.body)["targets"] == []
        wrong = client.http.post(f"{url.path}?token={'A' * 44}")
        assert wrong.status_code == 404


def test_a_digest_claim_a_killed_attempt_never_confirmed_is_taken_over_after_its_lease(
    stack, monkeypatch
):
    from chalicelib import claims

    now = [1_800_000_000.0]
    monkeypatch.setattr(claims, "clock", lambda: now[0])

    def claim(batch):
        fields = {"day": DAY1, "subscriber": "a" * 32, "targets": ["x.test:443"], "batch": batch}
        return invoke("data", {"action": "claim_digest", **fields}, wait=True)["claimed"]

    def live():
        status = invoke(
            "data", {"action": "digest_status", "day": DAY1, "subscribers": ["a" * 32]}, wait=True
        )
        return status["a" * 32]["claimLive"]

    assert claim("killed-attempt")  # then killed before sending: never confirmed
    assert live() and not claim("retry")  # its lease still holds
    now[0] += claims.LEASE_SECONDS + 1
    assert not live() and claim("retry")  # AWS's retry, a minute later, takes it over
    invoke("data", {"action": "confirm_digest", "day": DAY1, "subscriber": "a" * 32,
                    "batch": "retry"}, wait=True)  # fmt: skip
    now[0] += 86_000
    assert live() and not claim("third")  # confirmed: sent for the day, whatever the clock
