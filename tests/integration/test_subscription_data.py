"""The data function's subscription actions over emulated DynamoDB."""

from __future__ import annotations

import json
import time

import pytest

from chalicelib import aws
from chalicelib.config import resources
from chalicelib.errors import BadInput, NotFound, TooManyRequests
from chalicelib.privacy import AddressVault
from chalicelib.subscription_data import (
    PENDING_LIFETIME,
    RateLimiter,
    SubscriptionStore,
    confirm,
    counts,
    hit_rate_limit,
    recipients,
    scan_subscriptions,
    subscribe,
    suppress,
    unsubscribe,
)
from lambdas.data import handler

ADDRESS = "Someone@Example.com"
STORED = "Someone@example.com"  # the domain lower-cased, the local part as typed


@pytest.fixture
def vault(settings):
    return AddressVault(settings.require_secret())


def items(key: str) -> list[dict]:
    """Return every item of a table."""
    table = aws.table(key)
    found, kwargs = [], {}
    while True:
        page = table.scan(**kwargs)
        found += page["Items"]
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_subscribe_stores_a_sealed_pending_item_that_expires_in_48_hours(emulated_aws, vault):
    before = time.time()
    answer = subscribe(ADDRESS, "Example.org", "14")
    assert answer["state"] == "pending"
    assert len(answer["token"]) >= 32  # token_urlsafe(24): 192 bits
    (item,) = items("pending")
    assert item["subscriber"] == vault.pseudonym(ADDRESS)
    assert item["target"] == "example.org:443"
    assert item["tolerance"] == "14"
    assert item["token"] == answer["token"]
    assert before + PENDING_LIFETIME - 1 <= int(item["expires"]) <= time.time() + PENDING_LIFETIME
    assert resources()["tables"]["pending"]["ttl_attribute"] == "expires"
    assert vault.open(item["address"], item["subscriber"]) == STORED
    assert "example.com" not in json.dumps(item, default=str).lower()


def test_subscribing_twice_keeps_one_pending_item_and_the_same_link(emulated_aws):
    first = subscribe(ADDRESS, "example.org", "30")
    second = subscribe(ADDRESS.lower(), "example.org:443", "auto")
    assert second == first
    (item,) = items("pending")
    assert item["tolerance"] == "auto"  # the latest request wins; the link stays the same


def test_confirm_moves_the_subscription_and_a_second_click_says_so(emulated_aws, vault):
    token = subscribe(ADDRESS, "example.org", "30")["token"]
    assert confirm(ADDRESS, token) == {
        "target": "example.org:443",
        "tolerance": "30",
        "state": "confirmed",
    }
    assert items("pending") == []
    (item,) = items("subscriptions")
    assert item["confirm_token"] == token
    assert item["token"] != token and len(item["token"]) >= 32
    assert item["created_at"].endswith("Z") and item["confirmed_at"].endswith("Z")
    assert vault.open(item["address"], item["subscriber"]) == STORED
    assert confirm(ADDRESS, token)["state"] == "already_confirmed"


def test_subscribing_again_once_confirmed_resends_the_same_link(emulated_aws):
    token = subscribe(ADDRESS, "example.org", "30")["token"]
    confirm(ADDRESS, token)
    assert subscribe(ADDRESS, "example.org", "30") == {"token": token, "state": "subscribed"}
    assert items("pending") == []


def test_a_new_tolerance_takes_effect_on_confirmation_and_keeps_the_unsubscribe_link(
    emulated_aws,
):
    confirm(ADDRESS, subscribe(ADDRESS, "example.org", "30")["token"])
    (before,) = items("subscriptions")
    change = subscribe(ADDRESS, "example.org", "auto")
    assert change["state"] == "pending"
    confirm(ADDRESS, change["token"])
    (after,) = items("subscriptions")
    assert after["tolerance"] == "auto"
    assert after["token"] == before["token"]
    assert after["created_at"] == before["created_at"]


def test_wrong_tokens_and_addresses_are_not_found(emulated_aws):
    token = subscribe(ADDRESS, "example.org", "30")["token"]
    with pytest.raises(NotFound):
        confirm(ADDRESS, "A" * 32)
    with pytest.raises(NotFound):
        confirm("other@example.com", token)
    with pytest.raises(BadInput):
        confirm(ADDRESS, "not a token")
    assert len(items("pending")) == 1


def test_an_expired_pending_subscription_is_treated_as_absent(emulated_aws):
    token = subscribe(ADDRESS, "example.org", "30")["token"]
    (item,) = items("pending")
    aws.table("pending").update_item(
        Key={"subscriber": item["subscriber"], "target": item["target"]},
        UpdateExpression="SET expires = :past",
        ExpressionAttributeValues={":past": int(time.time()) - 1},
    )
    with pytest.raises(NotFound, match="48 hours"):
        confirm(ADDRESS, token)
    assert items("subscriptions") == []
    assert counts()["pending"] == 0
    fresh = subscribe(ADDRESS, "example.org", "30")["token"]
    assert fresh != token  # the expired link is not revived
    assert confirm(ADDRESS, fresh)["state"] == "confirmed"


def test_the_store_reads_expiry_against_its_clock(emulated_aws, vault):
    now = [1_800_000_000.0]
    store = SubscriptionStore(
        aws.table("subscriptions"), aws.table("pending"), vault, clock=lambda: now[0]
    )
    token = store.subscribe(ADDRESS, "example.org:443", "30").token
    now[0] += PENDING_LIFETIME + 1
    with pytest.raises(NotFound):
        store.confirm(ADDRESS, token)


def test_only_the_unsubscribe_token_unsubscribes(emulated_aws):
    confirm_token = subscribe(ADDRESS, "example.org", "30")["token"]
    confirm(ADDRESS, confirm_token)
    (item,) = items("subscriptions")
    with pytest.raises(NotFound):
        unsubscribe(ADDRESS, confirm_token)
    with pytest.raises(NotFound):
        unsubscribe("other@example.com", item["token"])
    assert unsubscribe(ADDRESS, item["token"]) == {"target": "example.org:443"}
    assert items("subscriptions") == []
    with pytest.raises(NotFound):
        unsubscribe(ADDRESS, item["token"])


def test_unsubscribing_forgets_the_sweeps_state_of_that_subscription_only(emulated_aws, vault):
    tokens = {}
    for target in ("example.org", "example.net"):
        confirm(ADDRESS, subscribe(ADDRESS, target, "30")["token"])
    for item in items("subscriptions"):
        tokens[item["target"]] = item["token"]
        aws.table("checkstate").put_item(
            Item={"subscriber": item["subscriber"], "target": item["target"], "status": "ok"}
        )
    unsubscribe(ADDRESS, tokens["example.org:443"])
    assert [item["target"] for item in items("checkstate")] == ["example.net:443"]


def test_one_address_may_watch_several_targets(emulated_aws):
    targets = ["example.org", "example.org:8443", "[2001:db8::1]", "bücher.example"]
    for target in targets:
        confirm(ADDRESS, subscribe(ADDRESS, target, "30")["token"])
    stored = {item["target"]: item for item in items("subscriptions")}
    assert set(stored) == {
        "example.org:443",
        "example.org:8443",
        "[2001:db8::1]:443",
        "xn--bcher-kva.example:443",
    }
    assert len({item["token"] for item in stored.values()}) == 4
    unsubscribe(ADDRESS, stored["example.org:8443"]["token"])
    assert {item["target"] for item in items("subscriptions")} == set(stored) - {"example.org:8443"}


def test_confirmation_emails_are_capped_per_address_per_day(emulated_aws, settings):
    cap = settings.limits.confirmations_per_address_per_day
    for number in range(cap):
        subscribe(ADDRESS, f"host{number}.example.org", "30")
    with pytest.raises(TooManyRequests, match="tomorrow"):
        subscribe(ADDRESS.upper(), "another.example.org", "30")
    assert len(items("pending")) == cap
    subscribe("other@example.com", "another.example.org", "30")  # other addresses are not held


def test_rate_limits_count_per_key_and_window_without_storing_the_subject(emulated_aws):
    assert hit_rate_limit("check:203.0.113.7", 2, 60) == {"remaining": 1}
    assert hit_rate_limit("check:203.0.113.7", 2, 60) == {"remaining": 0}
    with pytest.raises(TooManyRequests, match="try again in"):
        hit_rate_limit("check:203.0.113.7", 2, 60)
    assert hit_rate_limit("check:198.51.100.1", 2, 60) == {"remaining": 1}
    stored = items("ratelimits")
    assert len(stored) == 2
    assert all("203.0.113.7" not in item["key"] for item in stored)
    assert all(item["key"].startswith("check:") for item in stored)
    assert all(int(item["expires"]) > time.time() for item in stored)


def test_a_new_window_starts_a_new_count(emulated_aws):
    now = [1_800_000_000.0]
    limiter = RateLimiter(aws.table("ratelimits"), clock=lambda: now[0])
    limiter.hit("k", 1, 60)
    with pytest.raises(TooManyRequests):
        limiter.hit("k", 1, 60)
    now[0] += 60
    assert limiter.hit("k", 1, 60) == 0


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"key": "no-scope", "limit": 1, "window_seconds": 60}, "scope:subject"),
        ({"key": "a:b", "limit": 0, "window_seconds": 60}, "limit"),
        ({"key": "a:b", "limit": True, "window_seconds": 60}, "limit"),
        ({"key": "a:b", "limit": 1, "window_seconds": "60"}, "window_seconds"),
    ],
)
def test_rate_limit_fields_are_validated(fields, fragment):
    with pytest.raises(BadInput, match=fragment):
        hit_rate_limit(**fields)


def fill_subscriptions(count: int) -> set[tuple[str, str]]:
    """Write confirmed subscriptions straight to the table; return their keys."""
    keys = set()
    with aws.table("subscriptions").batch_writer() as batch:
        for number in range(count):
            key = (f"{number:032x}", f"host{number}.example.org:443")
            keys.add(key)
            batch.put_item(
                Item={
                    "subscriber": key[0],
                    "target": key[1],
                    "tolerance": "30",
                    "address": "c2VhbGVk",
                    "token": f"token-{number}",
                }
            )
    return keys


def scan_all(segment: int, total_segments: int, limit: int) -> tuple[list[dict], int]:
    found, cursor, pages = [], None, 0
    while True:
        page = scan_subscriptions(segment, total_segments, cursor, limit)
        json.dumps(page)  # the cursor must cross a Lambda boundary
        found += page["items"]
        pages += 1
        cursor = page["cursor"]
        if cursor is None:
            return found, pages


def test_the_scan_pages_through_every_subscription(emulated_aws):
    keys = fill_subscriptions(57)
    found, pages = scan_all(0, 1, 10)
    assert pages >= 6
    assert {(item["subscriber"], item["target"]) for item in found} == keys
    assert len(found) == len(keys)
    assert set(found[0]) == {"subscriber", "target", "tolerance"}


def test_parallel_segments_cover_every_subscription_once(emulated_aws):
    keys = fill_subscriptions(40)
    seen = []
    for segment in range(3):
        found, _ = scan_all(segment, 3, 7)
        seen += [(item["subscriber"], item["target"]) for item in found]
    assert sorted(seen) == sorted(keys)


def test_a_scan_larger_than_one_megabyte_pages(emulated_aws):
    padding = "x" * 20_000  # ~60 items make a megabyte
    with aws.table("subscriptions").batch_writer() as batch:
        for number in range(80):
            batch.put_item(
                Item={
                    "subscriber": f"{number:032x}",
                    "target": f"host{number}.example.org:443",
                    "tolerance": "30",
                    "address": padding,
                    "token": "t",
                }
            )
    found, pages = scan_all(0, 1, 10_000)
    assert len(found) == 80
    assert pages >= 2


@pytest.mark.parametrize(
    "fields",
    [
        {"segment": 3, "total_segments": 3},
        {"segment": -1},
        {"total_segments": 0},
        {"limit": 0},
        {"limit": "10"},
        {"cursor": "abc"},
        {"cursor": {"subscriber": 1, "target": "x"}},
        {"cursor": {"subscriber": "a", "target": "b", "extra": "c"}},
    ],
)
def test_scan_fields_are_validated(fields):
    with pytest.raises(BadInput):
        scan_subscriptions(**fields)


def test_recipients_answers_sealed_addresses_tokens_and_suppression(emulated_aws, vault):
    confirm(ADDRESS, subscribe(ADDRESS, "example.org", "30")["token"])
    confirm("bounced@example.net", subscribe("bounced@example.net", "example.org", "30")["token"])
    subscriptions = {item["subscriber"]: item for item in items("subscriptions")}
    suppress("bounced@example.net", "bounce")
    keys = [{"subscriber": s, "target": "example.org:443"} for s in subscriptions]
    keys.append({"subscriber": "f" * 32, "target": "gone.example.org:443"})
    answer = {entry["subscriber"]: entry for entry in recipients(keys)}
    assert set(answer) == set(subscriptions)
    me = answer[vault.pseudonym(ADDRESS)]
    assert vault.open(me["address"], me["subscriber"]) == STORED
    assert me["token"] == subscriptions[me["subscriber"]]["token"]
    assert me["suppressed"] is False
    assert answer[vault.pseudonym("bounced@example.net")]["suppressed"] is True
    json.dumps(list(answer.values()))


def test_recipients_reads_more_than_one_batch(emulated_aws):
    keys = fill_subscriptions(230)
    answer = recipients([{"subscriber": s, "target": t} for s, t in keys])
    assert {(entry["subscriber"], entry["target"]) for entry in answer} == keys


@pytest.mark.parametrize(
    "keys", [None, "x", [{"subscriber": "a"}], [{"subscriber": "a", "target": 1}], [[1, 2]]]
)
def test_recipients_keys_are_validated(keys):
    with pytest.raises(BadInput):
        recipients(keys)


def test_suppress_and_counts(emulated_aws, vault):
    confirm(ADDRESS, subscribe(ADDRESS, "example.org", "30")["token"])
    subscribe(ADDRESS, "example.net", "30")
    assert suppress(ADDRESS, "complaint") == {"subscriber": vault.pseudonym(ADDRESS)}
    (item,) = items("suppression")
    assert item["reason"] == "complaint" and item["at"].endswith("Z")
    assert counts() == {"subscriptions": 1, "pending": 1, "suppressed": 1}
    with pytest.raises(BadInput, match="reason"):
        suppress(ADDRESS, "annoyed")


def test_the_data_function_answers_malformed_payloads_with_an_error(emulated_aws):
    assert handler({"action": "subscribe", "email": ADDRESS}, None)["errorType"] == "PayloadError"
    assert (
        handler({"action": "confirm", "email": "x", "token": "y" * 32}, None)["errorType"]
        == "BadInput"
    )
    answer = handler({"action": "subscribe", "email": ADDRESS, "target": "example.org"}, None)
    assert answer["response"]["state"] == "pending"


def test_no_table_item_holds_an_address_in_plain_text(emulated_aws):
    addresses = [ADDRESS, "second.person@example.net"]
    for address in addresses:
        confirm(address, subscribe(address, "example.org", "30")["token"])
        subscribe(address, "example.net", "auto")
        suppress(address, "bounce")
    dump = json.dumps({key: items(key) for key in resources()["tables"]}, default=str).lower()
    for address in addresses:
        assert address.lower() not in dump
        assert address.split("@")[0].lower() not in dump
