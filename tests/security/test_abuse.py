"""Abuse: rate limits under concurrency, capped confirmation mail, single-purpose expiring tokens.

Concurrency is exercised at the data function, where the shared counters live (API
instances are separate Lambda containers; one Chalice app object serves one request at
a time), with many threads invoking it at once over the emulated DynamoDB.
"""

from __future__ import annotations

import ast
import hmac
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest

from chalicelib import aws, subscription_data
from chalicelib.errors import TooManyRequests
from chalicelib.invoke import invoke
from tests.security.conftest import record_figure, sent_messages, table_items

REPOSITORY = Path(__file__).resolve().parents[2]
THREADS = 16


def user_path(address: str, **query: str) -> str:
    """Return /user/{address}?query, percent-encoded as the frontend sends it."""
    params = "&".join(f"{name}={quote(value, safe='')}" for name, value in query.items())
    return f"/user/{quote(address, safe='')}?{params}"


def confirmation_tokens(lambdas) -> list[str]:
    """Return the tokens handed to the mailer for confirmation emails, oldest first."""
    return [
        call.payload["token"]
        for call in lambdas.calls
        if call.function == "mailer" and call.payload.get("action") == "send_confirmation"
    ]


def subscribe_and_confirm(api, lambdas, address: str, domain: str) -> dict:
    """Subscribe and confirm through the API; return the stored subscription."""
    assert api.http.put(user_path(address, domain=domain)).status_code == 200
    token = confirmation_tokens(lambdas)[-1]
    assert api.http.put(user_path(address, uuid=token)).status_code == 200
    (item,) = [i for i in table_items("subscriptions") if i["target"] == f"{domain}:443"]
    return item


@pytest.fixture(autouse=True)
def _atomic_writes(atomic_dynamodb):
    """Every test here runs on an emulated DynamoDB whose single writes are atomic."""


def hit_concurrently(calls: list[dict]) -> list[str]:
    """Invoke the data function with each payload from many threads at once; return outcomes."""

    def one(payload: dict) -> str:
        try:
            invoke("data", payload, wait=True)
        except TooManyRequests:
            return "limited"
        return "allowed"

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, calls))


@pytest.mark.parametrize(("limit", "requests"), [(1, 30), (5, 40), (20, 80)])
def test_a_rate_limit_holds_across_concurrent_requests(lambdas, limit, requests):
    """Many simultaneous requests for one key: exactly `limit` get through."""
    payload = {"action": "hit_rate_limit", "key": "check:198.51.100.7", "limit": limit}
    outcomes = hit_concurrently([{**payload, "window_seconds": 3600}] * requests)
    assert outcomes.count("allowed") == limit
    assert outcomes.count("limited") == requests - limit
    record_figure("concurrent rate-limited requests", requests)


def test_rate_limits_are_per_client_and_store_no_address(lambdas):
    """Two clients have separate counters; the stored key holds a pseudonym, not the address."""
    payloads = [
        {"action": "hit_rate_limit", "key": f"check:{client}", "limit": 3, "window_seconds": 60}
        for client in ["203.0.113.1", "203.0.113.2"] * 6
    ]
    outcomes = hit_concurrently(payloads)
    assert outcomes.count("allowed") == 6
    keys = [item["key"] for item in table_items("ratelimits")]
    assert len(keys) == 2
    assert not any("203.0.113" in key for key in keys)


def test_confirmation_emails_to_one_address_are_capped_per_day(lambdas, settings):
    """Subscribing one address to many domains at once: only the daily cap of mails goes out."""
    cap = settings.limits.confirmations_per_address_per_day
    spellings = ["victim@example.com", "VICTIM@example.com", "Victim@Example.COM"]
    calls = [
        {
            "action": "subscribe",
            "email": spellings[index % 3],
            "target": f"site{index}.example",
            "tolerance": "30",
        }
        for index in range(cap * 4)
    ]
    outcomes = hit_concurrently(calls)
    assert outcomes.count("allowed") == cap
    assert len(table_items("pending")) == cap


def test_the_api_answers_429_past_the_confirmation_cap_and_sends_no_more_mail(api, settings):
    """Through the API: the cap answers a JSON 429 and the emulated SES sees `cap` mails."""
    cap = settings.limits.confirmations_per_address_per_day
    statuses = []
    for index in range(cap + 3):
        address = "target-of-spam@example.com"
        response = api.http.put(user_path(address, domain=f"spam{index}.example"))
        statuses.append(response.status_code)
    assert statuses == [200] * cap + [429] * 3
    assert json.loads(response.body)["Code"] == "TooManyRequestsError"
    assert len(sent_messages()) == cap


@pytest.mark.parametrize(
    ("path", "limit_name", "method"),
    [
        ("/check/example.com", "check_per_client_per_minute", "GET"),
        (user_path("a@example.com", domain="x.example"), "subscribe_per_client_per_hour", "PUT"),
    ],
)
def test_the_api_rate_limits_one_client(api, settings, network_jail, path, limit_name, method):
    """One client past its limit gets JSON 429s with a Code and a Message."""
    limit = getattr(settings.limits, limit_name)
    statuses = []
    for index in range(limit + 2):
        request_path = path.replace("x.example", f"x{index}.example").replace(
            "a%40", f"a{index}%40"
        )
        response = api.http.request(method, request_path, headers={}, body=b"")
        statuses.append(response.status_code)
    assert statuses[-2:] == [429, 429]
    assert statuses.count(429) == 2
    assert set(json.loads(response.body)) == {"Code", "Message"}


def test_a_confirm_token_cannot_unsubscribe(api, lambdas):
    """The confirmation link's token is not an unsubscribe token (of this or any subscription)."""
    first = subscribe_and_confirm(api, lambdas, "ann@example.com", "one.example")
    second = subscribe_and_confirm(api, lambdas, "ann@example.com", "two.example")
    for token in (first["confirm_token"], second["confirm_token"]):
        response = api.http.delete(user_path("ann@example.com", uuid=token))
        assert response.status_code == 404, response.body
    assert len(table_items("subscriptions")) == 2


def test_an_unsubscribe_token_removes_only_its_own_subscription(api, lambdas):
    """Each subscription has its own unsubscribe token: one link removes one subscription."""
    first = subscribe_and_confirm(api, lambdas, "bob@example.com", "one.example")
    subscribe_and_confirm(api, lambdas, "bob@example.com", "two.example")
    response = api.http.delete(user_path("bob@example.com", uuid=first["token"]))
    assert response.status_code == 200
    assert [item["target"] for item in table_items("subscriptions")] == ["two.example:443"]
    again = api.http.delete(user_path("bob@example.com", uuid=first["token"]))
    assert again.status_code == 404


def test_tokens_are_bound_to_their_address(api, lambdas):
    """Another address's token neither confirms nor unsubscribes: 404, nothing changes."""
    carol = subscribe_and_confirm(api, lambdas, "carol@example.com", "one.example")
    assert api.http.put(user_path("dave@example.com", domain="two.example")).status_code == 200
    dave_pending = confirmation_tokens(lambdas)[-1]
    attempts = [
        ("DELETE", user_path("mallory@example.com", uuid=carol["token"])),
        ("PUT", user_path("mallory@example.com", uuid=dave_pending)),
        ("PUT", user_path("carol@example.com", uuid=dave_pending)),
        ("DELETE", user_path("dave@example.com", uuid=carol["token"])),
    ]
    for method, path in attempts:
        response = api.http.request(method, path, headers={}, body=b"")
        assert response.status_code == 404, (method, path, response.body)
    assert len(table_items("subscriptions")) == 1
    assert len(table_items("pending")) == 1


def test_an_unsubscribe_token_cannot_confirm_a_pending_subscription(api, lambdas):
    """A live unsubscribe token does not confirm another pending subscription of the address."""
    confirmed = subscribe_and_confirm(api, lambdas, "erin@example.com", "one.example")
    assert api.http.put(user_path("erin@example.com", domain="two.example")).status_code == 200
    response = api.http.put(user_path("erin@example.com", uuid=confirmed["token"]))
    assert response.status_code == 404
    assert len(table_items("subscriptions")) == 1


def test_a_confirmation_link_expires_after_48_hours(api, lambdas):
    """A pending subscription past its expiry (TTL not yet run) cannot be confirmed."""
    assert api.http.put(user_path("finn@example.com", domain="one.example")).status_code == 200
    token = confirmation_tokens(lambdas)[-1]
    (pending,) = table_items("pending")
    age = subscription_data.PENDING_LIFETIME + 1
    aws.table("pending").put_item(Item={**pending, "expires": int(pending["expires"]) - age})
    response = api.http.put(user_path("finn@example.com", uuid=token))
    assert response.status_code == 404
    assert "expire" in json.loads(response.body)["Message"]
    assert table_items("subscriptions") == []


def test_tokens_are_compared_with_compare_digest(api, lambdas, monkeypatch):
    """Confirm and unsubscribe compare tokens with hmac.compare_digest (constant time)."""
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    item = subscribe_and_confirm(api, lambdas, "gail@example.com", "one.example")
    assert (item["confirm_token"].encode(), item["confirm_token"].encode()) in calls
    calls.clear()
    assert api.http.delete(user_path("gail@example.com", uuid=item["token"])).status_code == 200
    assert (item["token"].encode(), item["token"].encode()) in calls


def _token_comparisons(tree: ast.AST) -> list[str]:
    """Return the source of every ==/!= comparison that involves a name mentioning a token."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
        ):
            text = ast.unparse(node)
            if "token" in text.lower():
                found.append(text)
    return found


def test_no_token_is_compared_with_equality_anywhere():
    """No module compares a token with == or != (a timing leak): compare_digest only."""
    sources = [*REPOSITORY.glob("chalicelib/*.py"), *REPOSITORY.glob("lambdas/*.py")]
    sources.append(REPOSITORY / "app.py")
    found = {
        str(path.relative_to(REPOSITORY)): comparisons
        for path in sources
        if (comparisons := _token_comparisons(ast.parse(path.read_text())))
    }
    assert found == {}
