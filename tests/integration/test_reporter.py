"""The daily report: unusual log lines, bounces and complaints, counts; silent on quiet days."""

import json
from datetime import UTC, datetime, timedelta

from chalicelib import aws, report
from chalicelib.invoke import invoke
from tests.integration import sweep_stack
from tests.integration.sweep_stack import sent_messages, text_of

stack, sweep_pki, sweep_ca_bundle = (
    sweep_stack.stack,
    sweep_stack.sweep_pki,
    sweep_stack.sweep_ca_bundle,
)

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date().isoformat()


def write_logs(settings, function, *messages, at=None):
    """Put log events into a function's log group, as Lambda would."""
    logs = aws.client("logs")
    group = report.log_group(settings, function)
    stream = f"stream-{len(messages)}-{(at or NOW).timestamp()}"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    when = int(((at or NOW) - timedelta(minutes=30)).timestamp() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": when + n, "message": m} for n, m in enumerate(messages)],
    )


def run_report():
    return invoke("reporter", {"action": "report", "now": NOW.isoformat()}, wait=True)


def info(message):
    return json.dumps({"level": "INFO", "logger": "lambdas.cron", "message": message})


def test_a_quiet_day_sends_nothing(stack, settings):
    write_logs(
        settings,
        "cron",
        "START RequestId: 1 Version: $LATEST",
        "INIT_START Runtime Version: python:3.13",
        info("sweep started"),
        "END RequestId: 1",
        "REPORT RequestId: 1\tDuration: 12.3 ms",
    )
    assert run_report() == {"sent": False, "lines": 0, "suppressions": 0}
    assert sent_messages() == []


def test_unusual_lines_bounces_and_counts_are_reported(stack, settings):
    server = stack.serve(days_left=5)
    stack.subscribe("ann@example.org", server.address)
    stack.sweep(TODAY)
    stack.suppress("gone@example.org", "bounce")
    warning = {"level": "WARNING", "logger": "x", "message": "odd", "to": "leak@example.org"}
    write_logs(settings, "checker", info("batch checked"), json.dumps(warning))
    write_logs(settings, "mailer", "Traceback (most recent call last):", "KeyError: 'x'")
    write_logs(settings, "data", "ERROR from yesterday", at=NOW - timedelta(hours=30))
    outcome = run_report()
    assert outcome == {"sent": True, "lines": 3, "suppressions": 1}
    (mail,) = [m for m in sent_messages() if m["To"] == settings.operator_email]
    text = text_of(mail)
    assert "- Subscriptions: 1 confirmed" in text
    assert "- Checked today: 1 subscription over 1 target; 0 could not be checked" in text
    assert "- Sent today: 1 alert, 0 fixed emails" in text
    assert "1 suppressed address\n" in text
    assert "New bounces and complaints (1), by pseudonym:" in text
    assert "KeyError: 'x'" in text
    assert '"level": "WARNING"' in text
    assert "batch checked" not in text
    assert "from yesterday" not in text  # older than 25 hours
    assert "@" not in text.replace(settings.operator_email, "")


def test_a_sweep_that_did_not_run_is_reported(stack, settings):
    stack.subscribe("ann@example.org", "example.com:443")
    assert run_report()["sent"] is True
    (mail,) = sent_messages()
    assert "today's sweep checked nothing" in text_of(mail)


def test_log_queries_paginate(stack, settings, monkeypatch):
    monkeypatch.setattr(report, "LOG_PAGE_SIZE", 2)
    write_logs(settings, "bounces", *[f"plain line {n}" for n in range(7)])
    lines = report.unusual_lines(settings, NOW - report.WINDOW, NOW)
    kept, total = lines["bounces"]
    assert total == 7
    assert [line.message for line in kept] == [f"plain line {n}" for n in range(7)]


def test_routine_lines():
    assert report.is_routine("START RequestId: x")
    assert report.is_routine(info("fine"))
    assert report.is_routine(json.dumps({"level": "DEBUG", "message": "x"}))
    assert not report.is_routine(json.dumps({"level": "ERROR", "message": "x"}))
    assert not report.is_routine("{not json")
    assert not report.is_routine("[ERROR] Runtime.ImportModuleError")


def test_the_report_shows_what_the_alarms_watch(stack, settings, capsys):
    """Dead letters, an unfinished sweep: the report says so and writes the alarm's metric."""
    from chalicelib import dead_letters, metrics

    sqs = aws.client("sqs")
    url = dead_letters.queue_url(sqs, settings.prefix)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"action": "sweep"}))
    stack.subscribe("ann@example.org", "example.com:443")
    # The cron planned one subscription, and no checker recorded it: unfinished at 07:00.
    invoke("data", {"action": "record_sweep_plan", "day": TODAY, "subscriptions": 1}, True)
    capsys.readouterr()
    assert run_report()["sent"] is True
    (mail,) = sent_messages()
    text = text_of(mail)
    assert "- Sweep: NOT finished: 0 of 1 subscriptions checked" in text
    assert "- Dead-letter queue: 1 failed invocations wait (sslnotify trigger redrive)" in text
    written = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    (document,) = [d for d in written if metrics.SWEEP_UNFINISHED in d]
    assert document[metrics.SWEEP_UNFINISHED] == 1
    assert document["Stage"] == settings.prefix


def test_a_finished_sweep_and_rates_under_the_levels_are_calm():
    day_counts = {"planned": 3, "sweeps": 1, "checked": 3, "alerts": 100, "fixed": 0}
    bounce = {"reason": "bounce", "at": "x", "subscriber": "p"}
    composed = report.compose(
        NOW, {"subscriptions": 3}, {**day_counts, "suppressions": []}, {}, dead_letter_count=0
    )
    assert composed.sweep_finished and not composed.worth_sending
    assert "- Sweep: finished: 3 of 3 subscriptions checked" in composed.text
    assert "- Bounce rate: 0.00% (0 of 100 emails)" in composed.text
    four = {**day_counts, "suppressions": [bounce] * 4}
    composed = report.compose(NOW, {"subscriptions": 3}, four, {}, dead_letter_count=0)
    assert "- Bounce rate: 4.00% (4 of 100 emails) - AT OR ABOVE the 4.00% warning level" in (
        composed.text
    )
    assert composed.worth_sending
    none_started = report.compose(NOW, {"subscriptions": 3}, {}, {}, dead_letter_count=0)
    assert not none_started.sweep_finished
    assert "NOT started today" in none_started.text
