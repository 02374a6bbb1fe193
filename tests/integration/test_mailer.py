"""The mailer function with emulated SES: every kind, tags, leased claims, suppression."""

import pytest
from botocore.exceptions import ClientError

from chalicelib import aws, mailer
from chalicelib.invoke import invoke
from tests.integration import sweep_stack
from tests.integration.sweep_stack import DAY1, sent_messages, text_of

stack, sweep_pki, sweep_ca_bundle = (
    sweep_stack.stack,
    sweep_stack.sweep_pki,
    sweep_stack.sweep_ca_bundle,
)

ANN = "ann@example.org"
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
def ses_calls(stack, monkeypatch):
    """Record the arguments of every send_raw_email call (moto keeps no tags)."""
    ses = aws.client("ses")
    real_send, calls = ses.send_raw_email, []

    def recording_send(**arguments):
        calls.append(arguments)
        return real_send(**arguments)

    monkeypatch.setattr(ses, "send_raw_email", recording_send)
    return calls


def mail(action, **fields):
    return invoke("mailer", {"action": action, **fields}, wait=True)


def due_notifications(stack, *addresses):
    """Subscribe addresses to TARGET and record an expiring result: return what is due."""
    for address in addresses:
        stack.subscribe(address, TARGET)
    subscribers = [
        item["subscriber"]
        for item in invoke("data", {"action": "scan_subscriptions"}, True)["items"]
    ]
    results = [{"subscriber": s, "target": TARGET, "result": RESULT} for s in subscribers]
    return invoke("data", {"action": "record_results", "day": DAY1, "results": results}, True)


def test_confirmation_is_sent_with_its_tag_and_configuration_set(stack, ses_calls, settings):
    assert mail("send_confirmation", email=ANN, target=TARGET, tolerance="30", token="t0k") == {
        "sent": 1,
        "suppressed": 0,
    }
    (message,) = sent_messages()
    assert message["To"] == ANN
    assert message["From"] == settings.sender
    assert "confirm.html?user=ann%40example.org&uuid=t0k" in text_of(message)
    assert message.get_body(preferencelist=("html",)) is not None
    assert ses_calls[0]["Tags"] == [{"Name": "emailType", "Value": "confirmation"}]
    assert ses_calls[0]["ConfigurationSetName"] == "sslnotify-test"


def test_no_confirmation_to_a_suppressed_address(stack):
    stack.suppress(ANN.upper(), "complaint")
    assert (
        mail("send_confirmation", email=ANN, target=TARGET, tolerance="30", token="t")["suppressed"]
        == 1
    )
    assert sent_messages() == []


def test_feedback_and_report_go_to_their_mailboxes(stack, ses_calls, settings):
    mail("send_feedback", name="Ann", email=ANN, message="Lovely service")
    mail("send_report", text="All quiet")
    feedback, report = sent_messages()
    assert (feedback["To"], feedback["Reply-To"]) == (settings.feedback_email, ANN)
    assert "Lovely service" in text_of(feedback)
    assert report["To"] == settings.operator_email
    assert [call["Tags"][0]["Value"] for call in ses_calls] == ["feedback", "report"]


def test_notifications_are_sent_once_per_day(stack, ses_calls):
    due = due_notifications(stack, ANN, "bob@example.net")
    assert mail("send_notifications", day=DAY1, notifications=due)["sent"] == 2
    again = mail("send_notifications", day=DAY1, notifications=due)
    assert (again["sent"], again["already_sent"]) == (0, 2)
    assert len(sent_messages()) == 2
    assert {call["Tags"][0]["Value"] for call in ses_calls} == {"alert"}
    (alert,) = stack.mail_to(ANN)
    assert alert["Subject"] == "SSL alert for example.com: certificate expires in 4 days"
    assert alert["List-Unsubscribe"].startswith(
        "<https://api.sslnotify.test/user/ann%40example.org/"
    )


def test_suppressed_and_unsubscribed_subscribers_are_skipped(stack):
    due = due_notifications(stack, ANN, "bob@example.net")
    stack.suppress(ANN)
    keys = [{"subscriber": n["subscriber"], "target": TARGET} for n in due]
    (bob,) = [
        r
        for r in invoke("data", {"action": "recipients", "keys": keys}, True)
        if not r["suppressed"]
    ]
    invoke(
        "data", {"action": "unsubscribe", "email": "bob@example.net", "token": bob["token"]}, True
    )
    tally = mail("send_notifications", day=DAY1, notifications=due)
    assert (tally["sent"], tally["suppressed"], tally["unsubscribed"]) == (0, 1, 1)
    assert sent_messages() == []


def test_persistent_throttling_releases_the_claim_and_fails_for_a_retry(stack, monkeypatch):
    monkeypatch.setattr(mailer, "BACKOFF_SECONDS", 0.0001)
    due = due_notifications(stack, ANN)
    ses = aws.client("ses")

    def always_throttled(**arguments):
        raise ClientError({"Error": {"Code": "Throttling", "Message": "rate"}}, "SendRawEmail")

    monkeypatch.setattr(ses, "send_raw_email", always_throttled)
    with pytest.raises(mailer.DeliveryFailed):
        mailer.Mailer().send_notifications(DAY1, due)
    assert take(due[0], "the-retry")["state"] == "claimed"  # released, so claimable at once


def test_malformed_notifications_are_refused(stack):
    answer = invoke("mailer", {"action": "send_notifications", "day": DAY1, "notifications": [{}]})
    assert answer is None  # asynchronous: nothing to read
    from lambdas.mailer import handler

    refused = handler({"action": "send_notifications", "day": DAY1, "notifications": [{}]}, None)
    assert refused["errorType"] == "PayloadError"
    assert handler({"action": "send_everything"}, None)["errorType"] == "PayloadError"


def take(notification, batch, **fields):
    """Claim one due notification for an attempt, as the mailer does before sending it."""
    entry = {"subscriber": notification["subscriber"], "target": TARGET, "kind": "alert"}
    payload = {"action": "step_notifications", "day": DAY1, "batch": batch, "claim": entry}
    return invoke("data", {**payload, **fields}, True)


def test_each_email_is_claimed_and_confirmed_in_one_data_call_each(stack, monkeypatch):
    due = due_notifications(stack, ANN, "bob@example.net")
    real_invoke, steps = mailer.invoke, []

    def counting(function, payload, wait=False, **options):
        steps.append(payload["action"])
        return real_invoke(function, payload, wait, **options)

    monkeypatch.setattr(mailer, "invoke", counting)
    tally = mailer.Mailer().send_notifications(DAY1, due)
    assert tally["sent"] == 2
    assert steps == ["recipients"] + ["step_notifications"] * 3  # n claims, then one confirm
    again = mail("send_notifications", day=DAY1, notifications=due)
    assert (again["sent"], again["already_sent"]) == (0, 2)


def test_a_failed_data_call_fails_the_attempt_for_aws_to_retry(stack, monkeypatch):
    due = due_notifications(stack, ANN)
    real_invoke = mailer.invoke

    def data_down(function, payload, wait=False, **options):
        if payload.get("action") == "step_notifications":
            raise mailer.InvocationError("data did not answer")
        return real_invoke(function, payload, wait, **options)

    monkeypatch.setattr(mailer, "invoke", data_down)
    with pytest.raises(mailer.InvocationError):
        mailer.Mailer().send_notifications(DAY1, due)
    monkeypatch.setattr(mailer, "invoke", real_invoke)
    assert mailer.Mailer().send_notifications(DAY1, due)["sent"] == 1


def test_an_attempt_may_take_its_own_claim_again_and_no_other_while_its_lease_lasts(
    stack, monkeypatch
):
    from chalicelib import claims

    (due,) = due_notifications(stack, ANN)
    now = [1_900_000_000.0]
    monkeypatch.setattr(claims, "clock", lambda: now[0])
    assert take(due, "attempt-1")["state"] == "claimed"
    assert take(due, "attempt-1")["state"] == "claimed"  # its answer was lost: asked again
    held = take(due, "attempt-2")  # a concurrent duplicate of the event must wait
    assert held == {"confirmed": 0, "state": "held", "until": now[0] + claims.LEASE_SECONDS}
    now[0] += claims.LEASE_SECONDS + 1  # attempt-1 was killed: its lease ran out
    assert take(due, "attempt-2")["state"] == "claimed"
    entry = {"subscriber": due["subscriber"], "target": TARGET, "kind": "alert"}
    step = {"action": "step_notifications", "day": DAY1}
    assert invoke("data", {**step, "batch": "attempt-1", "sent": [entry]}, True)["confirmed"] == 0
    assert invoke("data", {**step, "batch": "attempt-2", "sent": [entry]}, True)["confirmed"] == 1
    now[0] += 10 * claims.LEASE_SECONDS
    assert take(due, "attempt-3")["state"] == "sent"  # confirmed: never again today
    assert take(due, "attempt-2")["state"] == "sent"


def test_an_attempt_near_its_timeout_holds_a_claim_no_longer_than_it_lives(stack, monkeypatch):
    from chalicelib import claims
    from lambdas.mailer import handler
    from tests.conftest import FakeLambdaContext

    (due,) = due_notifications(stack, ANN)
    now = [1_900_000_000.0]
    monkeypatch.setattr(claims, "clock", lambda: now[0])
    assert take(due, "attempt-1", lease=3)["state"] == "claimed"
    assert take(due, "attempt-2")["until"] == now[0] + 3
    now[0] += 4  # attempt-1 was killed at its timeout: the email is free at once
    answer = handler(
        {"action": "send_notifications", "day": DAY1, "notifications": [due]},
        FakeLambdaContext(),
    )
    assert answer["response"]["sent"] == 1


def test_a_failed_release_loses_nothing(stack, monkeypatch):
    """Defect 2 of issue 13: SES rejects one email and data fails every release; the retry
    of the invocation still sends it, and the rest of the batch went in the first attempt."""
    from chalicelib import claims

    monkeypatch.setattr(mailer.time, "sleep", lambda seconds: None)
    due = due_notifications(stack, ANN, "bob@example.net", "cy@example.com", "di@example.com")
    ses = aws.client("ses")
    real_send, rejected = ses.send_raw_email, []

    def reject_the_first(**arguments):
        if not rejected:
            rejected.append(arguments["Destinations"][0])
            raise ClientError({"Error": {"Code": "MessageRejected", "Message": "no"}}, "Send")
        return real_send(**arguments)

    real_invoke = mailer.invoke

    def releases_fail(function, payload, wait=False, **options):
        if payload["action"] == "release_notification":
            raise mailer.InvocationError("data did not answer")
        return real_invoke(function, payload, wait, **options)

    monkeypatch.setattr(ses, "send_raw_email", reject_the_first)
    monkeypatch.setattr(mailer, "invoke", releases_fail)
    with pytest.raises(mailer.DeliveryFailed):
        mailer.Mailer().send_notifications(DAY1, due)
    assert len(sent_messages()) == 3  # the rest of the batch was not lost with the release
    later = claims.clock() + 60  # AWS retries an asynchronous invocation a minute later
    monkeypatch.setattr(claims, "clock", lambda: later)
    tally = mailer.Mailer().send_notifications(DAY1, due)
    assert (tally["sent"], tally["already_sent"]) == (1, 3)
    assert len(sent_messages()) == 4


def test_a_throttled_batch_releases_what_it_did_not_reach(stack, monkeypatch):
    monkeypatch.setattr(mailer, "BACKOFF_SECONDS", 0.0001)
    due = due_notifications(stack, ANN, "bob@example.net", "cy@example.com")
    ses = aws.client("ses")
    real_send = ses.send_raw_email

    def always_throttled(**arguments):
        raise ClientError({"Error": {"Code": "Throttling", "Message": "rate"}}, "SendRawEmail")

    monkeypatch.setattr(ses, "send_raw_email", always_throttled)
    with pytest.raises(mailer.DeliveryFailed):
        mailer.Mailer().send_notifications(DAY1, due)
    monkeypatch.setattr(ses, "send_raw_email", real_send)
    assert mailer.Mailer().send_notifications(DAY1, due)["sent"] == 3  # the retry sends all


def test_a_mailer_near_its_deadline_leaves_the_rest_to_the_retry(stack):
    import time

    due = due_notifications(stack, ANN, "bob@example.net")
    with pytest.raises(mailer.DeliveryFailed):
        mailer.Mailer(deadline=time.monotonic() - 1).send_notifications(DAY1, due)
    assert sent_messages() == []
    assert mailer.Mailer().send_notifications(DAY1, due)["sent"] == 2
