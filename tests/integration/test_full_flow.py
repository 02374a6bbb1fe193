"""A whole subscriber's story through the API and the daily sweep, and where addresses never go.

Run with `-s` to see the transcript (subscribe, confirm, daily run, alert, unsubscribe).
"""

import json
import logging
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from chalice.test import Client

import app  # noqa: F401  (handlers call logs.setup() on import: before caplog attaches)
import lambdas.checker
import lambdas.cron
import lambdas.data
import lambdas.mailer  # noqa: F401
from app import app as api_app
from chalicelib import aws
from chalicelib.config import resources
from chalicelib.invoke import invoke
from tests.integration import sweep_stack
from tests.integration.sweep_stack import DAY1, DAY2, sent_messages, text_of

stack, sweep_pki, sweep_ca_bundle = (
    sweep_stack.stack,
    sweep_stack.sweep_pki,
    sweep_stack.sweep_ca_bundle,
)

ADDRESS = "Ann.Example+certs@example.org"
# Calls that must carry the plain address: from the API (and bounces) to data and the mailer.
ADDRESS_BEARING = {"subscribe", "confirm", "unsubscribe", "send_confirmation", "suppress"}


@pytest.fixture
def api(stack, tmp_path):
    """Return a test client of the real API, whose invocations reach the real handlers."""
    with Client(api_app, project_dir=str(tmp_path)) as client:
        yield client


def link_query(text, page):
    """Return the query of the first link to a site page in an email's text."""
    link = next(word for word in text.split() if f"/{page}?" in word)
    return {key: values[0] for key, values in parse_qs(urlsplit(link).query).items()}


def mentions_address(value) -> bool:
    text = json.dumps(value, default=str).lower()
    return ADDRESS.lower() in text or quote(ADDRESS.lower(), safe="").lower() in text


def test_full_flow_with_no_address_in_logs_tables_payloads_or_backups(
    stack, api, caplog, capsys, settings
):
    caplog.set_level(logging.INFO)
    transcript = []
    server = stack.serve(days_left=5)
    user = f"/user/{quote(ADDRESS, safe='')}"

    def request(method, path):
        response = getattr(api.http, method.lower())(path)
        transcript.append(f"$ {method} {path}\n{response.status_code} {response.body.decode()}")
        assert response.status_code == 200, response.body
        return json.loads(response.body)

    def show(message):
        transcript.append(
            f"--- email to {message['To']}\nSubject: {message['Subject']}\n"
            + "".join(
                f"{name}: {message[name]}\n" for name in ("List-Unsubscribe",) if message[name]
            )
            + f"\n{text_of(message)}---"
        )

    request("PUT", f"{user}?domain={server.address}&days=30")
    (confirmation,) = sent_messages()
    show(confirmation)
    token = link_query(text_of(confirmation), "confirm.html")["uuid"]
    request("PUT", f"{user}?uuid={token}")

    transcript.append(f"$ daily run for {DAY1} (EventBridge → cron → data → checker → mailer)")
    summary = invoke("cron", {"action": "sweep", "day": DAY1}, wait=True)
    stack.lambdas.drain()
    transcript.append(json.dumps(summary))
    alert = sent_messages()[-1]
    assert alert["Subject"] == f"SSL alert for {server.address}: certificate expires in 5 days"
    show(alert)

    unsubscribe = link_query(text_of(alert), "unsubscribe.html")
    assert unsubscribe["user"] == ADDRESS
    request("DELETE", f"{user}?uuid={unsubscribe['uuid']}")
    transcript.append(f"$ daily run for {DAY2}")
    invoke("cron", {"action": "sweep", "day": DAY2})
    stack.lambdas.drain()
    transcript.append(f"emails sent in all: {len(sent_messages())} (none after unsubscribing)")
    assert len(sent_messages()) == 2

    stack.suppress(ADDRESS, "bounce")  # a suppression entry too, for the table check
    backup = invoke("data", {"action": "backup"}, wait=True)
    printed = capsys.readouterr().out

    # Logs: the raw records (before the formatter's redaction) and what reached stdout.
    for record in caplog.records:
        fields = getattr(record, "fields", {})
        assert not mentions_address([record.getMessage(), fields, record.exc_text]), record
    assert ADDRESS.lower() not in printed.lower()
    assert {"chalicelib.mailer", "lambdas.checker"} <= {r.name for r in caplog.records}
    # Tables.
    for key in resources()["tables"]:
        items = aws.table(key).scan()["Items"]
        assert not mentions_address(items), key
    # The backup document.
    document = aws.client("s3").get_object(Bucket=backup["bucket"], Key=backup["key"])
    assert not mentions_address(document["Body"].read().decode())
    # Payloads between functions, but those that must carry the address from the API.
    for call in stack.lambdas.calls:
        if call.payload.get("action") not in ADDRESS_BEARING:
            assert not mentions_address(call.payload), call.function
    assert {call.function for call in stack.lambdas.calls} >= {"cron", "checker", "mailer", "data"}
    print("\n\n".join(transcript))
