"""The manage routes and the calendar feed through chalice.test.Client, over emulated AWS."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import icalendar
import pytest
from chalice.test import Client

from chalicelib import aws, manage_data, tokens
from chalicelib.logs import JsonFormatter
from chalicelib.sweep_data import record_results

ADDRESS = "owner@example.com"
OTHER = "stranger@example.com"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(lambdas, tmp_path):
    from app import app

    with Client(app, project_dir=str(tmp_path)) as test_client:
        yield test_client


def body(response) -> dict:
    return json.loads(response.body)


def path(address: str, suffix: str = "", **query: str) -> str:
    url = f"/user/{quote(address, safe='')}{suffix}"
    return url + ("?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items()))


def subscribe_confirmed(client, lambdas, address: str, domain: str, days: str = "30") -> None:
    assert client.http.put(path(address, domain=domain, days=days)).status_code == 200
    token = [
        call.payload["token"]
        for call in lambdas.calls
        if call.function == "mailer" and call.payload["action"] == "send_confirmation"
    ][-1]
    assert client.http.put(path(address, uuid=token)).status_code == 200


def request_link(client, address: str):
    return client.http.post("/manage", headers=JSON, body=json.dumps({"email": address}))


def mailed_manage_token(lambdas) -> str:
    lambdas.drain()
    calls = [c for c in lambdas.calls if c.payload.get("action") == "send_manage_link"]
    return calls[-1].payload["token"]


@pytest.fixture
def owner(client, lambdas):
    """An address with two subscriptions and a manage token from its link."""
    subscribe_confirmed(client, lambdas, ADDRESS, "a.example", "30")
    subscribe_confirmed(client, lambdas, ADDRESS, "b.example:8443", "auto")
    assert request_link(client, ADDRESS).status_code == 200
    return mailed_manage_token(lambdas)


def test_the_link_answer_is_the_same_whether_or_not_the_address_is_known(client, lambdas):
    subscribe_confirmed(client, lambdas, ADDRESS, "a.example")
    known, unknown = request_link(client, ADDRESS), request_link(client, OTHER)
    assert known.status_code == unknown.status_code == 200
    assert body(known) == body(unknown)
    assert "24 hours" in body(known)["Message"]
    lambdas.drain()
    sent = [c.payload for c in lambdas.calls if c.payload.get("action") == "send_manage_link"]
    assert [payload["email"] for payload in sent] == [ADDRESS]
    from moto.ses.models import ses_backends

    (message,) = [
        m
        for m in ses_backends["123456789012"]["us-east-1"].sent_messages
        if "manage your sslnotify" in m.raw_data
    ]
    assert "manage.html#user=" in message.raw_data.replace("=\r\n", "")


def test_tokens_are_stored_only_as_hashes(client, lambdas, owner):
    stored = json.dumps(aws.table("tokens").scan()["Items"], default=str)
    assert owner not in stored and owner[tokens.SELECTOR_CHARACTERS :] not in stored
    assert ADDRESS not in stored


def test_link_requests_are_capped_per_address_per_day_alike_for_unknown_ones(client, lambdas):
    subscribe_confirmed(client, lambdas, ADDRESS, "a.example")
    for address in (ADDRESS, OTHER):
        answers = [request_link(client, address).status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]


def test_link_requests_are_capped_per_client(client, lambdas):
    answers = [request_link(client, f"n{i}@example.com").status_code for i in range(11)]
    assert answers == [200] * 10 + [429]


def test_the_listing_shows_every_subscription_with_the_last_check(client, lambdas, owner):
    checked = "2027-03-01T06:00:05Z"
    not_after = (datetime.now(UTC) + timedelta(days=40, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = {
        "status": "ok",
        "notAfter": not_after,
        "notBefore": "2027-01-01T00:00:00Z",
        "checkedAt": checked,
        "problems": [],
    }
    subscriber = manage_data._vault().pseudonym(ADDRESS)
    record_results(
        "2027-03-01",
        results=[{"subscriber": subscriber, "target": "a.example:443", "result": result}],
    )
    answer = client.http.get(path(ADDRESS, "/subscriptions", token=owner))
    assert answer.status_code == 200
    listing = body(answer)
    first, second = listing["subscriptions"]
    assert first == {
        "target": "a.example:443",
        "protocol": "tls",
        "days": "30",
        "status": "ok",
        "daysLeft": 40,
        "notAfter": not_after,
        "checkedAt": checked,
        "problems": [],
    }
    assert second["target"] == "b.example:8443" and second["days"] == "auto"
    assert second["status"] is None and second["notAfter"] is None
    feed_url = listing["calendarUrl"]
    assert feed_url.startswith("https://api.sslnotify.test/calendar/") and feed_url.endswith(".ics")
    assert "owner" not in feed_url and "example.com" not in feed_url
    # Shown once: the hash alone is kept, so a second listing cannot show it again.
    again = body(client.http.get(path(ADDRESS, "/subscriptions", token=owner)))
    assert again["calendarUrl"] is None and again["calendarActive"] is True


@pytest.mark.parametrize(
    "token",
    ["", "short", "A" * 44, "x" * 129],
)
def test_a_wrong_token_is_refused_with_a_4xx(client, lambdas, owner, token):
    answer = client.http.get(path(ADDRESS, "/subscriptions", token=token))
    assert answer.status_code in (400, 404)
    assert body(answer)["Message"]


def test_a_token_works_only_for_its_own_address_and_purpose(client, lambdas, owner):
    subscribe_confirmed(client, lambdas, OTHER, "c.example")
    assert client.http.get(path(OTHER, "/subscriptions", token=owner)).status_code == 404
    subscription_token = aws.table("subscriptions").scan()["Items"][0]["token"]
    assert client.http.get(
        path(ADDRESS, "/subscriptions", token=subscription_token)
    ).status_code in (400, 404)
    feed = body(client.http.get(path(ADDRESS, "/subscriptions", token=owner)))["calendarUrl"]
    feed_token = feed.rsplit("/", 1)[1].removesuffix(".ics")
    assert client.http.get(path(ADDRESS, "/subscriptions", token=feed_token)).status_code == 404


def test_a_manage_token_expires_after_24_hours(client, lambdas, owner, monkeypatch):
    later = datetime.now(UTC).timestamp() + tokens.MANAGE_LIFETIME + 1
    monkeypatch.setattr(manage_data.time, "time", lambda: later)
    answer = client.http.get(path(ADDRESS, "/subscriptions", token=owner))
    assert answer.status_code == 404
    assert "24 hours" in body(answer)["Message"]


def test_change_days_and_add_a_domain_at_once(client, lambdas, owner):
    mails_before = len([c for c in lambdas.calls if c.function == "mailer"])
    changed = client.http.put(path(ADDRESS, domain="a.example", days="12", token=owner))
    assert changed.status_code == 200 and body(changed)["state"] == "changed"
    added = client.http.put(path(ADDRESS, domain="new.example", days="auto", token=owner))
    assert added.status_code == 200 and body(added)["state"] == "added"
    assert len([c for c in lambdas.calls if c.function == "mailer"]) == mails_before
    rows = {i["target"]: i for i in aws.table("subscriptions").scan()["Items"]}
    assert rows["a.example:443"]["tolerance"] == "12"
    assert rows["new.example:443"]["tolerance"] == "auto"
    assert ADDRESS not in json.dumps(rows["new.example:443"], default=str)  # sealed
    bad = client.http.put(path(ADDRESS, domain="new.example", days="999", token=owner))
    assert bad.status_code == 400
    private = client.http.put(path(ADDRESS, domain="10.0.0.1", days="5", token=owner))
    assert private.status_code == 403
    both = client.http.put(path(ADDRESS, domain="x.example", uuid=owner, token=owner))
    assert both.status_code == 400 and "not both" in body(both)["Message"]
    assert client.http.put(path(ADDRESS, token=owner)).status_code == 400


def test_unsubscribe_one_then_all(client, lambdas, owner):
    one = client.http.delete(path(ADDRESS, "/subscriptions", token=owner, domain="a.example"))
    assert one.status_code == 200 and body(one)["targets"] == ["a.example:443"]
    assert (
        client.http.delete(
            path(ADDRESS, "/subscriptions", token=owner, domain="a.example")
        ).status_code
        == 404
    )
    everything = client.http.delete(path(ADDRESS, "/subscriptions", token=owner))
    assert body(everything)["targets"] == ["b.example:8443"]
    assert aws.table("subscriptions").scan()["Items"] == []
    listing = body(client.http.get(path(ADDRESS, "/subscriptions", token=owner)))
    assert listing["subscriptions"] == []


def test_the_calendar_feed_parses_back_and_is_revocable(client, lambdas, owner):
    subscriber = manage_data._vault().pseudonym(ADDRESS)
    record_results(
        "2027-03-01",
        results=[
            {
                "subscriber": subscriber,
                "target": "a.example:443",
                "result": {
                    "status": "ok",
                    "notAfter": "2027-05-30T12:00:00Z",
                    "notBefore": "2027-03-01T12:00:00Z",
                    "problems": [],
                },
            },
            {
                "subscriber": subscriber,
                "target": "b.example:8443",
                "result": {
                    "status": "ok",
                    "notAfter": "2027-06-01T00:00:00Z",
                    "notBefore": "2027-03-03T00:00:00Z",
                    "problems": [],
                },
            },
        ],
    )
    feed_url = body(client.http.get(path(ADDRESS, "/subscriptions", token=owner)))["calendarUrl"]
    feed_path = urlsplit(feed_url).path
    answer = client.http.get(feed_path)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/calendar")
    text = answer.body.decode() if isinstance(answer.body, bytes) else answer.body
    assert ADDRESS not in text and "owner" not in text
    parsed = icalendar.Calendar.from_ical(text)
    events = sorted(
        (event.decoded("dtstart"), str(event["summary"])) for event in parsed.walk("VEVENT")
    )
    from datetime import date

    assert events == [
        (date(2027, 4, 30), "Renew the TLS certificate of a.example (reminders start)"),
        (date(2027, 5, 2), "Renew the TLS certificate of b.example:8443 (reminders start)"),
        (date(2027, 5, 30), "TLS certificate of a.example expires"),
        (date(2027, 6, 1), "TLS certificate of b.example:8443 expires"),
    ]
    renewed = client.http.post(path(ADDRESS, "/calendar", token=owner))
    assert renewed.status_code == 200
    new_path = urlsplit(body(renewed)["calendarUrl"]).path
    assert client.http.get(feed_path).status_code == 404
    assert client.http.get(new_path).status_code == 200
    assert client.http.get("/calendar/not-a-token.ics").status_code in (400, 404)


def test_logs_carry_pseudonyms_not_addresses(client, lambdas, caplog):
    caplog.set_level(logging.INFO)
    subscribe_confirmed(client, lambdas, ADDRESS, "a.example")
    request_link(client, ADDRESS)
    token = mailed_manage_token(lambdas)
    client.http.get(path(ADDRESS, "/subscriptions", token=token))
    client.http.put(path(ADDRESS, domain="z.example", days="9", token=token))
    client.http.delete(path(ADDRESS, "/subscriptions", token=token))
    formatter = JsonFormatter()
    lines = "\n".join(formatter.format(record) for record in caplog.records)
    assert "manage link issued" in lines
    assert ADDRESS not in lines and token not in lines
    assert not re.search(r"owner(@|%40)", lines)


def test_manage_link_email_carries_the_token_in_the_fragment(settings):
    from chalicelib import emails

    message = emails.manage_link(settings, ADDRESS, "T" * 44)
    link = next(line for line in message.text.splitlines() if "manage.html" in line)
    parts = urlsplit(link)
    assert parts.query == ""
    assert parse_qs(parts.fragment) == {"user": [ADDRESS], "token": ["T" * 44]}
