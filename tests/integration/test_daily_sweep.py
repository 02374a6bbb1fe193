"""The whole daily chain, cron → data → checker → mailer, against loopback TLS servers."""

import pytest
from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.checker import ssrf
from chalicelib.config import reset_settings
from chalicelib.invoke import invoke
from tests.integration import sweep_stack
from tests.integration.sweep_stack import DAY1, DAY2, DAY3, sent_messages, text_of
from tests.tls_servers import TLSServer, find_closed_port

# The stack's fixtures, made visible to this module's tests.
stack, sweep_pki, sweep_ca_bundle = (
    sweep_stack.stack,
    sweep_stack.sweep_pki,
    sweep_stack.sweep_ca_bundle,
)

ANN, BOB, CY = "ann@example.org", "bob@example.net", "cy@example.com"


def test_alert_for_an_expiring_certificate_and_none_for_a_good_one(stack):
    expiring, good = stack.serve(days_left=5), stack.serve(days_left=80)
    stack.subscribe(ANN, expiring.address)
    stack.subscribe(BOB, good.address)
    stack.sweep(DAY1)
    (alert,) = stack.mail_to(ANN)
    subject = f"SSL alert for {expiring.address}: certificate expires in 5 days"
    assert alert["Subject"] == subject
    assert "leaf certificate" in text_of(alert)
    assert "issued to localhost by sslnotify Test" in text_of(alert)
    assert alert["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert stack.mail_to(BOB) == []
    assert stack.lambdas.failures == []


def test_each_target_is_probed_once_however_many_watch_it(stack):
    server = stack.serve(days_left=5)
    for address in (ANN, BOB, "cy@example.com"):
        stack.subscribe(address, server.address, tolerance="30")
    stack.subscribe("dee@example.com", server.address, tolerance="3")
    stack.sweep(DAY1)
    assert server.connections == 1
    assert stack.lambdas.count("checker") == 1
    assert len(sent_messages()) == 3  # dee's tolerance of 3 days is not reached
    assert stack.mail_to("dee@example.com") == []


def test_no_second_alert_the_same_day(stack):
    server = stack.serve(days_left=5)
    stack.subscribe(ANN, server.address)
    stack.sweep(DAY1)
    stack.sweep(DAY1)  # cron run twice
    checker_payload = next(c.payload for c in stack.lambdas.calls if c.function == "checker")
    stack.lambdas.queue.append(
        ("checker", stack.lambdas._handler("sslnotify-test-checker")[1], checker_payload)
    )
    stack.lambdas.drain()  # the same checker invocation delivered again
    assert len(stack.mail_to(ANN)) == 1
    stack.sweep(DAY2)
    assert len(stack.mail_to(ANN)) == 2  # alerts repeat daily while the problem lasts


def test_a_retried_mailer_sends_only_what_is_unsent(stack, monkeypatch):
    server = stack.serve(days_left=5)
    stack.subscribe(ANN, server.address)
    stack.subscribe(BOB, server.address)
    ses = aws.client("ses")
    real_send = ses.send_raw_email
    attempts = []

    def flaky_send(**arguments):
        attempts.append(arguments["Destinations"][0])
        if len(attempts) == 2:
            raise ClientError({"Error": {"Code": "ServiceUnavailable"}}, "SendRawEmail")
        return real_send(**arguments)

    monkeypatch.setattr(ses, "send_raw_email", flaky_send)
    stack.sweep(DAY1)
    assert len(attempts) == 3  # first sent, second failed (released), then retried alone
    assert len(stack.mail_to(ANN)) == len(stack.mail_to(BOB)) == 1
    assert stack.lambdas.failures == []


def test_throttling_is_retried_with_backoff_and_nothing_is_dropped(stack, monkeypatch):
    import chalicelib.mailer

    monkeypatch.setattr(chalicelib.mailer, "BACKOFF_SECONDS", 0.001)
    server = stack.serve(days_left=5)
    stack.subscribe(ANN, server.address)
    ses = aws.client("ses")
    real_send = ses.send_raw_email
    refusals = iter(range(3))

    def throttled(**arguments):
        if next(refusals, None) is not None:
            error = {"Code": "Throttling", "Message": "Maximum sending rate exceeded."}
            raise ClientError({"Error": error}, "SendRawEmail")
        return real_send(**arguments)

    monkeypatch.setattr(ses, "send_raw_email", throttled)
    stack.sweep(DAY1)
    assert len(stack.mail_to(ANN)) == 1


def test_a_fixed_email_follows_a_renewal(stack):
    server = stack.serve(days_left=5)
    stack.subscribe(ANN, server.address)
    stack.sweep(DAY1)
    stack.renew(server, days_left=89)
    stack.sweep(DAY2)
    stack.sweep(DAY3)
    alert, fixed = stack.mail_to(ANN)
    assert "alert" in alert["Subject"]
    assert fixed["Subject"] == f"SSL certificate for {server.address} is fine again"
    assert "89 days left" in text_of(fixed)


def test_an_unreachable_target_alerts_from_the_second_failed_day(stack):
    target = f"127.0.0.1:{find_closed_port()}"
    stack.subscribe(ANN, target)
    stack.sweep(DAY1)
    assert stack.mail_to(ANN) == []
    stack.sweep(DAY2)
    (alert,) = stack.mail_to(ANN)
    assert alert["Subject"].endswith("could not check the certificate")
    assert "two daily checks in a row" in text_of(alert)
    stack.sweep(DAY3)
    assert len(stack.mail_to(ANN)) == 2


def test_a_suppressed_address_gets_no_mail(stack):
    server = stack.serve(days_left=5)
    stack.subscribe(ANN, server.address)
    stack.subscribe(BOB, server.address)
    stack.suppress(ANN, "complaint")
    stack.sweep(DAY1)
    assert stack.mail_to(ANN) == []
    assert len(stack.mail_to(BOB)) == 1


@pytest.mark.parametrize("segments", [1, 4])
def test_a_scan_larger_than_one_page(stack, monkeypatch, segments):
    import lambdas.cron

    monkeypatch.setattr(lambdas.cron, "SCAN_PAGE_LIMIT", 2)
    monkeypatch.setattr(lambdas.cron, "SCAN_SEGMENTS", segments)
    expiring, good = stack.serve(days_left=5), stack.serve(days_left=80)
    people = [f"person{n}@example.org" for n in range(9)]
    for n, address in enumerate(people):
        stack.subscribe(address, (expiring if n % 3 else good).address)
    stack.sweep(DAY1)
    scans = [c for c in stack.lambdas.calls if c.payload.get("action") == "scan_subscriptions"]
    assert len(scans) > segments  # more than one page per segment on average
    assert sum(len(stack.mail_to(address)) for address in people) == 6
    assert (expiring.connections, good.connections) == (1, 1)


def test_a_checker_that_fails_midway_is_retried_by_aws(stack, monkeypatch):
    import lambdas.data

    server = stack.serve(days_left=5)
    stack.subscribe(ANN, server.address)
    real_record = lambdas.data.ACTIONS["record_results"]
    calls = []

    def flaky_record(day, results=None, targets=None):
        calls.append(day)
        if len(calls) == 1:
            raise RuntimeError("DynamoDB had a bad moment")
        return real_record(day, results, targets)

    monkeypatch.setitem(lambdas.data.ACTIONS, "record_results", flaky_record)
    stack.sweep(DAY1)
    assert len(calls) == 2  # the checker failed, AWS ran it again
    assert len(stack.mail_to(ANN)) == 1
    assert stack.lambdas.failures == []


def test_a_sweep_that_cannot_scan_fails_loudly_for_a_retry(stack, monkeypatch):
    import lambdas.data

    def broken_scan(segment=0, total_segments=1, cursor=None, limit=1):
        raise RuntimeError("table unavailable")

    monkeypatch.setitem(lambdas.data.ACTIONS, "scan_subscriptions", broken_scan)
    stack.sweep(DAY1)
    ((function, _, error),) = stack.lambdas.failures
    assert (function, type(error).__name__) == ("cron", "SweepStepFailed")
    assert stack.lambdas.count("cron") == 1 and stack.lambdas.count("checker") == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"action": "check", "day": "yesterday", "targets": []},
        {"action": "check", "day": DAY1, "targets": "example.com:443"},
        {"action": "check", "day": DAY1, "targets": [{"target": 443}]},
        {"action": "check", "day": DAY1, "targets": [{"target": "a:443", "subscriptions": [1]}]},
        {"action": "check", "day": DAY1},
    ],
)
def test_the_checker_refuses_malformed_batches(payload):
    from lambdas.checker import handler

    assert handler(payload, None)["errorType"] == "PayloadError"


def states_by_port():
    return {
        item["target"].rpartition(":")[2]: item
        for item in aws.table("checkstate").scan()["Items"]
        if not item["subscriber"].startswith("#")  # per-day tallies, per-target facts
    }


def test_a_calm_subscription_keeps_no_state_yet_the_day_is_counted(stack):
    good, expiring = stack.serve(days_left=80), stack.serve(days_left=5)
    flaky = stack.serve(days_left=80)
    stack.subscribe(ANN, good.address)
    stack.subscribe(BOB, expiring.address)
    stack.subscribe(CY, flaky.address)
    stack.sweep(DAY1)
    # Only what must be remembered is stored: the alert (for its claim and tomorrow's "fixed").
    assert {port: s["checked_day"] for port, s in states_by_port().items()} == {
        str(expiring.port): DAY1,
    }
    flaky.close()
    stack.sweep(DAY2)
    assert sorted(states_by_port()) == sorted([str(expiring.port), str(flaky.port)])
    assert states_by_port()[str(flaky.port)]["error_streak"] == 1  # one failure: no alert yet
    since = f"{DAY1}T00:00:00Z"
    counts = invoke_data("report_counts", day=DAY2, since=since)
    assert (counts["checked"], counts["targets"], counts["alerts"]) == (3, 3, 1)
    stack.sweep(DAY2)  # a repeated sweep overwrites its own tally instead of adding to it
    assert invoke_data("report_counts", day=DAY2, since=since)["checked"] == 3
    assert stack.mail_to(CY) == []


def test_a_state_is_forgotten_once_its_subscription_is_calm_again(stack):
    server = stack.serve(days_left=5)
    stack.subscribe(ANN, server.address)
    stack.sweep(DAY1)
    stack.renew(server, days_left=80)
    stack.sweep(DAY2)  # fixed: the state stays for the day, for the "fixed" email's claim
    assert states_by_port()[str(server.port)]["fixed_sent_day"] == DAY2
    stack.sweep(DAY3)
    assert states_by_port() == {}
    alert, fixed = stack.mail_to(ANN)
    assert alert["Subject"].startswith("SSL alert")
    assert fixed["Subject"] == f"SSL certificate for {server.address} is fine again"


def invoke_data(action, **fields):
    return invoke("data", {"action": action, **fields}, wait=True)


def test_the_checker_sends_each_result_once_per_tolerance(stack):
    server = stack.serve(days_left=5)
    for address, tolerance in ((ANN, "30"), (BOB, "30"), ("cy@example.com", "auto")):
        stack.subscribe(address, server.address, tolerance=tolerance)
    stack.sweep(DAY1)
    payloads = [c.payload for c in stack.lambdas.calls]
    (record,) = [p for p in payloads if p.get("action") == "record_results"]
    (group,) = record["targets"]
    # Data gets a brief result once per tolerance: what it keeps of it, no more.
    assert sorted(group["results"]) == ["30", "auto"]
    assert group["results"]["30"] == {
        "status": "expiring",
        "daysLeft": 5,
        "notAfter": group["results"]["30"]["notAfter"],
        "problems": [{"code": "expiring"}],
        # The test leaf names no revocation source; kept so a revoked alert is not undone.
        "revocation": {"status": "unknown"},
    }
    assert sorted(s["tolerance"] for s in group["subscriptions"]) == ["30", "30", "auto"]
    # The mailer gets each due notification with the whole result its email describes.
    (mail,) = [p for p in payloads if p.get("action") == "send_notifications"]
    results = [n["result"] for n in mail["notifications"]]
    assert [(r["daysTolerance"], r["toleranceMode"]) for r in results] == [(30, "days")] * 2
    assert all(r["chain"] and r["issuedBy"] == "sslnotify Test" for r in results)
    # The test certificate lives 6 days: "auto" wants to hear 2 days ahead, so cy waits.
    assert group["results"]["auto"]["status"] == "ok"
    assert sorted(message["To"] for message in sent_messages()) == [ANN, BOB]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"results": [], "targets": []},
        {"targets": "x"},
        {
            "targets": [
                {
                    "target": "a:443",
                    "results": {},
                    "subscriptions": [{"subscriber": "s", "tolerance": "30"}],
                }
            ]
        },
        {"targets": [{"target": "a:443", "results": {"30": {}}, "subscriptions": ["s"]}]},
        {
            "targets": [
                {"target": "a:443", "results": {"30": {}}, "subscriptions": [{"tolerance": "30"}]}
            ]
        },
        {"targets": [{"results": {"30": {}}, "subscriptions": []}]},
        {"targets": [{"target": "a:443", "results": [], "subscriptions": []}]},
    ],
)
def test_record_results_refuses_malformed_batches_and_writes_nothing(stack, fields):
    from lambdas.data import handler

    answer = handler({"action": "record_results", "day": DAY1, **fields}, None)
    assert answer["errorType"] == "PayloadError"
    assert aws.table("checkstate").scan()["Items"] == []


def test_the_sweep_checks_starttls_subscriptions_over_their_protocol(stack):
    from tests.starttls_servers import StartTLSServer

    mail = StartTLSServer("smtp", [stack.leaf(days_left=5), stack.pki.intermediate])
    directory = StartTLSServer("ldap", [stack.leaf(days_left=80), stack.pki.intermediate])
    stack.servers += [mail, directory]
    smtp_target = f"smtp://127.0.0.1:{mail.port}"
    stack.subscribe(ANN, smtp_target)
    stack.subscribe(BOB, smtp_target)
    stack.subscribe(CY, f"ldap://127.0.0.1:{directory.port}")
    stack.sweep(DAY1)
    assert mail.agreed == 1  # one STARTTLS probe for both watchers
    assert directory.agreed == 1
    (alert,) = stack.mail_to(ANN)
    assert alert["Subject"] == f"SSL alert for {smtp_target}: certificate expires in 5 days"
    assert smtp_target in text_of(alert)
    assert len(stack.mail_to(BOB)) == 1
    assert stack.mail_to(CY) == []
    assert stack.lambdas.failures == []
    checked = [c.payload for c in stack.lambdas.calls if c.function == "checker"]
    keys = {group["target"] for payload in checked for group in payload["targets"]}
    assert keys == {smtp_target, f"ldap://127.0.0.1:{directory.port}"}


def test_the_sweep_says_when_a_renewal_was_not_deployed(stack, monkeypatch, renewal_services):
    from datetime import UTC, datetime, timedelta

    from chalicelib.config import reset_settings
    from tests.renewal_services import issuance_json

    now = datetime.now(UTC).replace(microsecond=0)
    server = stack.serve(days_left=5, not_before=now - timedelta(days=80))
    renewed = stack.leaf(80)
    renewal_services.issuances["localhost"] = [issuance_json(renewed, ["localhost", "127.0.0.1"])]
    monkeypatch.setenv("SSLNOTIFY_CT", "1")
    monkeypatch.setenv("SSLNOTIFY_CT_URL", renewal_services.ct_url)
    reset_settings()
    stack.subscribe(ANN, server.address)
    stack.sweep(DAY1)
    (alert,) = stack.mail_to(ANN)
    text = " ".join(text_of(alert).split())
    assert "A renewed certificate was issued on" in text
    assert f"serial {renewed.cert.serial_number:x}" in text
    assert "but 127.0.0.1 still serves the old one: reload or redeploy your server" in text
    assert "What to do: the renewal has already happened" in text
    assert renewal_services.count("/v1/issuances") == 1
    assert stack.lambdas.failures == []


def test_a_ct_service_that_is_down_fails_no_check_and_the_report_counts_it(
    stack, monkeypatch, renewal_services
):
    from chalicelib.config import reset_settings
    from chalicelib.report import compose

    renewal_services.mode = "down"
    monkeypatch.setenv("SSLNOTIFY_CT", "1")
    monkeypatch.setenv("SSLNOTIFY_CT_URL", renewal_services.ct_url)
    reset_settings()
    expiring, good = stack.serve(days_left=5), stack.serve(days_left=80)
    stack.subscribe(ANN, expiring.address)
    stack.subscribe(BOB, good.address)
    stack.sweep(DAY1)
    (alert,) = stack.mail_to(ANN)
    assert alert["Subject"] == f"SSL alert for {expiring.address}: certificate expires in 5 days"
    counts = invoke_data("report_counts", day=DAY1, since=f"{DAY1}T00:00:00Z")
    assert counts["renewal_unknown"] == 1  # only the expiring target asked CT
    assert counts["errors"] == 0
    from datetime import UTC, datetime

    report = compose(datetime(2026, 11, 20, 7, tzinfo=UTC), {"subscriptions": 2}, counts, {})
    assert "renewal information (CT logs, the CA's ARI) unknown for 1 target" in report.text


def test_a_name_whose_one_address_serves_an_old_certificate_alerts_and_says_which(
    stack, monkeypatch
):
    """DESIGN 3.1b in the sweep: every address probed, the mail says which serves what."""
    name = "multi.test"
    renewed = stack.leaf(80, dns=[name], ips=[])
    old = stack.leaf(5, dns=[name], ips=[])
    for _ in range(20):
        fresh = TLSServer([renewed, stack.pki.intermediate], host="127.0.0.2")
        try:
            stale = TLSServer([old, stack.pki.intermediate], host="127.0.0.3", port=fresh.port)
        except OSError:
            fresh.close()
            continue
        break
    stack.servers += [fresh, stale]
    monkeypatch.setattr(
        ssrf, "system_resolver", lambda host, port: ["127.0.0.2", "127.0.0.3", "::1"]
    )
    monkeypatch.setenv("SSLNOTIFY_CHECK_IPV6", "0")  # as in AWS: a Lambda without IPv6 egress
    reset_settings()
    stack.subscribe(ANN, f"{name}:{fresh.port}")
    stack.sweep(DAY1)
    (alert,) = stack.mail_to(ANN)
    assert alert["Subject"] == f"SSL alert for {name}:{fresh.port}: certificate expires in 5 days"
    text = " ".join(text_of(alert).split())
    assert f"{name}:{fresh.port} has several addresses; each serves:" in text
    assert "- 127.0.0.3 serves a certificate valid until" in text
    assert "(5 days left, expiring soon)." in text
    assert "(80 days left)." in text
    assert "- ::1: not checked (this checker has no IPv6 route)." in text
    assert "127.0.0.3 serves a certificate that expires in 5 days" in text
    assert (fresh.connections, stale.connections) == (1, 1)
    assert stack.lambdas.failures == []
