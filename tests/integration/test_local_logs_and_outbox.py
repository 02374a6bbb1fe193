"""The local stack's plumbing: function output to log groups, sent mail to the outbox."""

from __future__ import annotations

import io
import threading
from email.message import EmailMessage

from chalicelib import aws
from local.function_logs import LogShipper, RoutedStream, running
from local.outbox import Outbox, entries


def test_a_functions_lines_go_to_its_log_group_and_the_rest_to_the_terminal(emulated_aws):
    settings = emulated_aws
    group = f"/aws/lambda/{settings.function_name('data')}"
    terminal = io.StringIO()
    echoed: list[tuple[str, str]] = []
    shipper = LogShipper({"data": group}, echo=lambda key, line: echoed.append((key, line)))
    stream = RoutedStream(terminal, shipper)

    print("stack line", file=stream)
    with running("data"):
        print('{"level": "INFO", "message": "backed up"}', file=stream)
        stream.write('{"level": "ERROR", "message": "failed for ann@example.com"}')
        stream.write("\n")
    shipper.flush()

    assert terminal.getvalue() == "stack line\n"
    events = aws.client("logs").filter_log_events(logGroupName=group)["events"]
    messages = [event["message"] for event in events]
    assert messages == [
        '{"level": "INFO", "message": "backed up"}',
        '{"level": "ERROR", "message": "failed for <address>"}',
    ]
    assert echoed == [("data", messages[1])]


def test_each_thread_keeps_its_own_function(emulated_aws):
    settings = emulated_aws
    groups = {key: f"/aws/lambda/{settings.function_name(key)}" for key in ("cron", "mailer")}
    shipper = LogShipper(groups)
    stream = RoutedStream(io.StringIO(), shipper)

    def work(key: str) -> None:
        with running(key):
            for number in range(50):
                stream.write(f"{key} ")
                stream.write(f"{number}\n")

    threads = [threading.Thread(target=work, args=(key,)) for key in groups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shipper.flush()

    for key, group in groups.items():
        events = aws.client("logs").filter_log_events(logGroupName=group)["events"]
        assert [event["message"] for event in events] == [f"{key} {n}" for n in range(50)]


def test_every_sent_email_becomes_an_eml_file(emulated_aws, tmp_path):
    settings = emulated_aws
    announced: list[str] = []
    outbox = Outbox(tmp_path / "outbox", settings.region, announce=announced.append)
    outbox.directory.mkdir()
    outbox.collect()  # whatever earlier tests sent is not ours

    message = EmailMessage()
    message["From"] = "noreply@sslnotify.test"
    message["To"] = "dora@example.com"
    message["Subject"] = "Confirm your subscription"
    message.set_content("Confirm: https://sslnotify.test/confirm.html?user=dora&uuid=abc\n")
    aws.client("ses").send_raw_email(RawMessage={"Data": message.as_bytes()})
    aws.client("ses").send_email(
        Source="noreply@sslnotify.test",
        Destination={"ToAddresses": ["erin@example.com"]},
        Message={"Subject": {"Data": "Plain"}, "Body": {"Text": {"Data": "hello"}}},
    )

    written = outbox.collect()
    assert len(written) == 2
    listed = entries(outbox.directory)
    assert [entry.subject for entry in listed] == ["Plain", "Confirm your subscription"]
    assert listed[1].recipients == "dora@example.com"
    assert "uuid=abc" in written[0].read_text()
    assert announced[0].startswith("email: 'Confirm your subscription' to dora@example.com")
    assert outbox.collect() == []
