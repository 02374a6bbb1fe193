"""The whole service on one machine, over plain HTTP: check, subscribe, confirm, alert, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import boto3
import pytest

pytestmark = pytest.mark.slow


def call(method: str, url: str, origin: str | None = None) -> tuple[int, dict, dict]:
    """Send one request; return status, JSON answer and headers."""
    request = urllib.request.Request(
        url, method=method, headers={"Origin": origin} if origin else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null"), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), dict(error.headers)


def user_url(stack, address: str, **params: str) -> str:
    return f"{stack.api_url}/user/{quote(address, safe='')}?{urlencode(params)}"


def link_parameters(message, page: str) -> dict[str, str]:
    """Return the query parameters of the first link in the email that points at the page."""
    link = next(url for url in message.links() if urlsplit(url).path.endswith(page))
    return {key: values[0] for key, values in parse_qs(urlsplit(link).query).items()}


def subscribe_and_confirm(stack, address: str, target: str) -> str:
    """Subscribe an address to a target, confirm through the emailed link; return the token."""
    status, answer, headers = call(
        "PUT", user_url(stack, address, domain=target, days="30"), origin=stack.frontend_url
    )
    assert status == 200, answer
    assert headers.get("Access-Control-Allow-Origin") == stack.frontend_url
    confirmation = stack.wait_for_email(to=address)
    parameters = link_parameters(confirmation, "confirm.html")
    assert parameters["user"] == address
    status, answer, _ = call("PUT", user_url(stack, address, uuid=parameters["uuid"]))
    assert status == 200, answer
    return parameters["uuid"]


def subscribed_targets(stack) -> list[str]:
    """Return the targets of every confirmed subscription, read from the emulated DynamoDB."""
    items = stack.aws_client("dynamodb").scan(TableName=stack.table_name("subscriptions"))["Items"]
    return sorted(item["target"]["S"] for item in items)


def log_events(stack) -> dict[str, list[str]]:
    """Return the log lines of every function's log group, by function."""
    logs = stack.aws_client("logs")
    prefix = f"/aws/lambda/{stack.table_name('')}"
    found: dict[str, list[str]] = {}
    for group in logs.describe_log_groups(logGroupNamePrefix=prefix)["logGroups"]:
        name = group["logGroupName"]
        events = logs.filter_log_events(logGroupName=name).get("events", [])
        if events:
            found[name.removeprefix(prefix)] = [event["message"] for event in events]
    return found


def test_the_whole_flow_survives_a_restart(local_stack_factory, tmp_path):
    stack = local_stack_factory(tmp_path / "state")
    server = stack.serve(days_left=10)
    target = f"127.0.0.1:{server.port}"

    # The website and its generated configuration.
    with urllib.request.urlopen(f"{stack.frontend_url}/config.js") as answer:
        assert stack.api_url in answer.read().decode()
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"

    # Check now.
    status, result, _ = call("GET", f"{stack.api_url}/check/127.0.0.1?port={server.port}&days=30")
    assert status == 200, result
    assert result["status"] == "expiring"
    assert result["daysLeft"] == 10

    # Subscribe two people; confirm both through their emails.
    alice, bob = "alice@example.com", "bob@example.com"
    subscribe_and_confirm(stack, alice, target)
    bob_token = subscribe_and_confirm(stack, bob, target)
    assert len(subscribed_targets(stack)) == 2
    # A stale confirmation link is refused, and its warning is what the operator's report shows.
    status, answer, _ = call("PUT", user_url(stack, "carol@example.com", uuid="x" * 32))
    assert status in {400, 404}, answer

    # The daily run alerts both about the expiring certificate.
    stack.trigger("cron")
    alert = stack.wait_for_email(to=alice, subject="expire")
    assert "10 days" in alert.text
    assert alert.message["List-Unsubscribe"]
    stack.wait_for_email(to=bob, subject="expire")

    # Alice follows her unsubscribe link.
    parameters = link_parameters(alert, "unsubscribe.html")
    status, answer, _ = call("DELETE", user_url(stack, alice, uuid=parameters["uuid"]))
    assert status == 200, answer
    assert len(subscribed_targets(stack)) == 1

    # SES's mailbox simulator: the confirmation bounces, and the address is suppressed.
    bouncing = "bounce@simulator.amazonses.com"
    status, answer, _ = call("PUT", user_url(stack, bouncing, domain=target, days="30"))
    assert status == 200, answer
    stack.wait_for_email(to=bouncing)
    suppression = stack.table_name("suppression")
    deadline = time.monotonic() + 10
    while not stack.aws_client("dynamodb").scan(TableName=suppression)["Items"]:
        assert time.monotonic() < deadline, stack.output()
        time.sleep(0.2)

    # The operator's daily report.
    stack.trigger("reporter")
    report = stack.wait_for_email(to="operator@", subject="report")
    assert "data" in report.text
    # Every function logged to its own group, and no address reached any log.
    expected = {"api", "data", "cron", "checker", "mailer", "reporter"}
    deadline = time.monotonic() + 5  # lines are shipped once a second
    while not expected <= set(events := log_events(stack)) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert expected <= set(events)
    assert not [line for lines in events.values() for line in lines if "example.com" in line]

    # A clean stop saves the state; a new start on the same directory restores it.
    assert stack.stop() == 0
    assert not (stack.state_dir / "stack.json").exists()
    stack.start()
    assert subscribed_targets(stack) == [target]
    status, answer, _ = call("PUT", user_url(stack, bob, uuid=bob_token))
    assert status == 200, answer
    assert "already" in json.dumps(answer).lower()
    # The outbox kept its mail across the restart and lists it on its page.
    with urllib.request.urlopen(f"{stack.frontend_url}/outbox") as answer:
        page = answer.read().decode()
    assert page.count(".eml") >= 5

    # A second stack on the same ports says so in one line.
    busy = subprocess.run(
        [sys.executable, "-m", "chalicelib.cli", "local", "--port", str(stack.port)],
        cwd=stack.state_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert busy.returncode == 1
    assert busy.stdout.count("\n") == 1
    assert "already in use" in busy.stdout


def test_ctrl_c_stops_everything_and_saves_the_state(local_stack_factory, tmp_path):
    stack = local_stack_factory(tmp_path / "state")
    target = f"127.0.0.1:{stack.serve(days_left=40).port}"
    subscribe_and_confirm(stack, "dora@example.com", target)
    children = _children(stack.process.pid)
    assert children, "emulated AWS runs in a child process"
    # Ctrl-C at a terminal: SIGINT to the whole foreground process group.
    os.killpg(stack.process.pid, signal.SIGINT)
    assert stack.process.wait(30) == 0, stack.output()
    assert "state saved" in stack.output()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in children):
        assert time.monotonic() < deadline, "a child of the stack outlived it"
        time.sleep(0.1)
    stack.start()
    assert subscribed_targets(stack) == [target]


def _children(pid: int) -> list[int]:
    """Return the process ids of a process's children (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_redrive_replays_the_dead_letter_queue(local_stack):
    """`sslnotify trigger redrive` invokes each kept event's function again, emptying the queue."""
    sqs = local_stack.aws_client("sqs")
    url = sqs.get_queue_url(QueueName=local_stack.table_name("dead-letter"))["QueueUrl"]
    marker = f"replayed report {time.time_ns()}"
    # As Lambda leaves an event after its third failed attempt: the body is the event.
    sqs.send_message(
        QueueUrl=url, MessageBody=json.dumps({"action": "send_report", "text": marker})
    )
    output = local_stack.trigger("redrive")
    assert json.loads(output.strip().splitlines()[-1]) == {"replayed": {"mailer": 1}, "unknown": 0}
    message = local_stack.wait_for_email(subject="daily report")
    assert marker in message.text
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_a_mailer_killed_at_its_timeout_is_retried_and_its_alert_delivered(local_stack_factory):
    """A real kill: SES hangs on the alert past the mailer's 3 s timeout, the local Lambda
    service kills the mailer's process, and the retry a second later sends the alert."""
    stack = local_stack_factory(SSLNOTIFY_LOCAL_TIMEOUTS="mailer=3", SSLNOTIFY_LOCAL_SES_STALL="5")
    server = stack.serve(days_left=10)
    address = "killed-mailer@example.org"
    lambdas = boto3.client(
        "lambda",
        endpoint_url=stack.lambda_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )

    def data(**payload):
        answer = lambdas.invoke(
            FunctionName=f"{stack.table_name('data')}", Payload=json.dumps(payload).encode()
        )
        return json.loads(answer["Payload"].read())["response"]

    # Subscribed through the data function: no confirmation email to wait for.
    pending = data(action="subscribe", email=address, target=f"127.0.0.1:{server.port}")
    data(action="confirm", email=address, token=pending["token"])
    stack.trigger("cron")
    alert = stack.wait_for_email(to=address, subject="alert", timeout=30)
    assert "expire" in alert.subject
    output = stack.output()
    assert "mailer: Task timed out after 3.00 seconds; its process was killed" in output
    alerts = [m for m in stack.messages() if address in m.to and "alert" in m.subject.lower()]
    assert 1 <= len(alerts) <= 2  # the hung send may land too: one duplicate at most
