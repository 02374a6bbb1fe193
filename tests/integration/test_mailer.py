"""The mailer function with emulated SES: every kind, tags, pacing, claims, suppression."""

import pytest
from botocore.exceptions import ClientError

from chalicelib import aws, mailer
from chalicelib.invoke import invoke
from chalicelib.mailer import Pacer
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
    claim = {"action": "claim_notification", "day": DAY1, "kind": "alert"}
    key = {"subscriber": due[0]["subscriber"], "target": TARGET}
    assert invoke("data", {**claim, **key}, wait=True) is True  # released, so claimable again


def test_malformed_notifications_are_refused(stack):
    answer = invoke("mailer", {"action": "send_notifications", "day": DAY1, "notifications": [{}]})
    assert answer is None  # asynchronous: nothing to read
    from lambdas.mailer import handler

    refused = handler({"action": "send_notifications", "day": DAY1, "notifications": [{}]}, None)
    assert refused["errorType"] == "PayloadError"
    assert handler({"action": "send_everything"}, None)["errorType"] == "PayloadError"


def test_pacer_spaces_sends_to_the_rate():
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(rate=4, clock=lambda: now[0], sleep=sleep)
    for _ in range(9):
        pacer.wait()
    assert now[0] == pytest.approx(2.0)  # nine sends at 4/s take two seconds
    assert len(slept) == 8


def test_a_batch_is_claimed_in_one_data_call_and_each_claim_holds_once(stack):
    due = due_notifications(stack, ANN, "bob@example.net")
    entries = [{"subscriber": n["subscriber"], "target": TARGET, "kind": "alert"} for n in due]
    claim = {"action": "claim_notifications", "day": DAY1}
    first = invoke("data", {**claim, "notifications": entries}, True)
    assert sorted(c["subscriber"] for c in first) == sorted(n["subscriber"] for n in due)
    assert invoke("data", {**claim, "notifications": entries}, True) == []
    tally = mail("send_notifications", day=DAY1, notifications=due)
    assert (tally["sent"], tally["already_sent"]) == (0, 2)


def test_a_failed_data_call_fails_the_attempt_for_aws_to_retry(stack, monkeypatch):
    due = due_notifications(stack, ANN)
    real_invoke = mailer.invoke

    def data_down(function, payload, wait=False, **options):
        if payload.get("action") == "claim_notifications":
            raise mailer.InvocationError("data did not answer")
        return real_invoke(function, payload, wait, **options)

    monkeypatch.setattr(mailer, "invoke", data_down)
    with pytest.raises(mailer.InvocationError):
        mailer.Mailer().send_notifications(DAY1, due)
    monkeypatch.setattr(mailer, "invoke", real_invoke)
    assert mailer.Mailer().send_notifications(DAY1, due)["sent"] == 1


def test_an_attempt_may_take_its_own_claims_again_and_no_other_may(stack):
    due = due_notifications(stack, ANN)
    entries = [{"subscriber": n["subscriber"], "target": TARGET, "kind": "alert"} for n in due]

    def claim(batch):
        payload = {"action": "claim_notifications", "day": DAY1, "notifications": entries}
        return len(invoke("data", {**payload, "batch": batch}, True))

    assert claim("attempt-1") == 1
    assert claim("attempt-1") == 1  # its answer was lost: the same attempt asks again
    assert claim("attempt-2") == 0  # a concurrent duplicate of the event gets nothing
    assert claim(None) == 0  # nor a claim without an attempt
    assert claim("attempt-1") == 1


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
