"""Privacy: over a full run of the local stack, no email address appears in plain text anywhere
the operator or an attacker with a dump could read it: log groups, tables, backups, the daily
report, error answers. The addresses are looked for raw, upper-cased and percent-encoded.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

from tests.e2e.conftest import local_stack, local_stack_ca_bundle, local_stack_pki  # noqa: F401
from tests.security.conftest import record_figure

pytestmark = pytest.mark.slow

PEOPLE = ["privacy.ann+tag@example.org", "Privacy.Bob@Example.NET", "zoe.privacy@bücher.example"]
QUIET = "never.subscribed@example.org"  # only ever typed into failing requests


def forms_of(address: str) -> set[str]:
    """Return the spellings of an address that must never appear (case-folded)."""
    local, _, domain = address.partition("@")
    spellings = {address, quote(address, safe=""), quote(address), f"{local}%40{domain}"}
    with contextlib.suppress(UnicodeError):
        spellings.add(f"{local}@{domain.encode('idna').decode()}")
    return {spelling.lower() for spelling in spellings}


def call(method: str, url: str, body: bytes | None = None, headers=None):
    """Send one request; return status and decoded body text."""
    request = urllib.request.Request(url, method=method, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def user_url(stack, address: str, **params: str) -> str:
    """Return the API URL of /user/{address}?params."""
    return f"{stack.api_url}/user/{quote(address, safe='')}?{urlencode(params)}"


def link_parameters(message, page: str) -> dict[str, str]:
    """Return the query parameters of the first link of an email pointing at a page."""
    link = next(url for url in message.links() if urlsplit(url).path.endswith(page))
    return {key: values[0] for key, values in parse_qs(urlsplit(link).query).items()}


def everything_readable(stack) -> dict[str, str]:
    """Return every log line, table item and stored object of the stack, by where it was."""
    found: dict[str, str] = {}
    logs = stack.aws_client("logs")
    for group in logs.describe_log_groups()["logGroups"]:
        name = group["logGroupName"]
        pages = logs.get_paginator("filter_log_events").paginate(logGroupName=name)
        lines = [event["message"] for page in pages for event in page["events"]]
        found[f"log group {name}"] = "\n".join(lines)
    dynamodb = stack.aws_client("dynamodb")
    for table in dynamodb.list_tables()["TableNames"]:
        items = dynamodb.scan(TableName=table)["Items"]
        found[f"table {table}"] = json.dumps(items)
    s3 = stack.aws_client("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        for entry in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            body = s3.get_object(Bucket=bucket["Name"], Key=entry["Key"])["Body"].read()
            if not entry["Key"].endswith((".eml", ".html", ".css", ".js")):
                found[f"s3://{bucket['Name']}/{entry['Key']}"] = body.decode(errors="replace")
    return found


def wait_for_lines(stack, needle: str, timeout: float = 10.0) -> None:
    """Wait until the log shipper (once a second) has put a line containing needle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = stack.aws_client("logs")
        for group in logs.describe_log_groups()["logGroups"]:
            events = logs.filter_log_events(logGroupName=group["logGroupName"])["events"]
            if any(needle in event["message"] for event in events):
                return
        time.sleep(0.3)


def test_no_address_in_plain_text_anywhere_after_a_full_run(local_stack):  # noqa: F811
    """Subscribe, confirm, fail, feedback, alert, back up, report, unsubscribe; then look."""
    stack = local_stack
    server = stack.serve(days_left=4)
    target = f"127.0.0.1:{server.port}"
    answers: list[str] = []
    for address in PEOPLE:
        status, text = call("PUT", user_url(stack, address, domain=target, days="30"))
        assert status == 200, text
        confirmation = stack.wait_for_email(to=address.split("@")[0], subject="confirm")
        uuid = link_parameters(confirmation, "confirm.html")["uuid"]
        status, text = call("PUT", user_url(stack, address, uuid=uuid))
        assert status == 200, text
        answers.append(text)
    # Requests that fail, each carrying an address: their answers and logs must not echo it.
    failing = [
        ("PUT", user_url(stack, QUIET, domain="bad..name")),  # the stack allows private targets
        ("PUT", user_url(stack, QUIET, domain="not a host")),
        ("PUT", user_url(stack, QUIET, uuid="x" * 32)),
        ("DELETE", user_url(stack, QUIET, uuid="y" * 32)),
        ("PUT", user_url(stack, QUIET + "\x01", domain="example.com")),
        ("POST", f"{stack.api_url}/user/{quote(QUIET)}/unsubscribe?uuid=z"),
    ]
    for method, url in failing:
        status, text = call(method, url.replace("\x01", "%01"))
        assert 400 <= status < 500, (url, status, text)
        answers.append(text)
    # Typed as a host name, it is shown back to whoever typed it; it must still stay out of logs.
    status, _ = call("GET", f"{stack.api_url}/check/{quote(QUIET)}")
    assert status == 400
    feedback = json.dumps({"name": "Ann", "email": QUIET, "message": f"write me: {QUIET}"})
    status, text = call(
        "POST", f"{stack.api_url}/feedback", feedback.encode(), {"Content-Type": "application/json"}
    )
    assert status == 200, text
    stack.trigger("cron")
    alert = stack.wait_for_email(to=PEOPLE[0].split("@")[0], subject="expire")
    stack.trigger("backup")
    unsubscribe = link_parameters(alert, "unsubscribe.html")
    status, text = call("DELETE", user_url(stack, PEOPLE[0], uuid=unsubscribe["uuid"]))
    assert status == 200, text
    stack.trigger("reporter")
    wait_for_lines(stack, "report done")
    # The outbox writes an email up to half a second after SES took it: wait for the file.
    stack.wait_for_email(subject="report", timeout=20)
    reports = [m for m in stack.messages() if "report" in m.subject.lower()]
    readable = everything_readable(stack)
    readable["API answers"] = "\n".join(answers)
    readable.update({f"report {m.path.name}": m.text for m in reports})
    assert any(name.startswith("s3://") for name in readable), "no backup was written"
    assert any(name.startswith("log group") and text for name, text in readable.items())
    leaks = {
        (where, spelling)
        for where, text in readable.items()
        for address in [*PEOPLE, QUIET]
        for spelling in forms_of(address)
        if spelling in text.lower()
    }
    assert leaks == set()
    record_figure(
        "places searched for addresses (log groups, tables, objects, reports)", len(readable)
    )
