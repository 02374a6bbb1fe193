"""Backups: every table to one S3 document, restored exactly; bad documents change nothing."""

from __future__ import annotations

import json
import re
import time

import pytest

from chalicelib import aws, backup, subscription_data
from chalicelib.backup import BackupRefused
from chalicelib.cli import main
from chalicelib.config import resources
from chalicelib.errors import NotFound
from chalicelib.privacy import AddressVault

ADDRESSES = ["first.person@example.com", "second.person@example.net"]


def typed_items() -> dict[str, list[dict]]:
    """Return every table's items as DynamoDB stores them (typed), in a stable order."""
    dynamodb = aws.client("dynamodb")
    tables = {}
    for key, spec in resources()["tables"].items():
        name = f"sslnotify-test-{key}"
        found, kwargs = [], {"TableName": name}
        while True:
            page = dynamodb.scan(**kwargs)
            found += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        keys = [spec["hash_key"], spec.get("range_key")]
        tables[key] = sorted(found, key=lambda item: [item[k]["S"] for k in keys if k])
    return tables


def wipe() -> None:
    """Delete every item of every table."""
    dynamodb = aws.client("dynamodb")
    for key, spec in resources()["tables"].items():
        name = f"sslnotify-test-{key}"
        names = [spec["hash_key"], *([spec["range_key"]] if "range_key" in spec else [])]
        while found := dynamodb.scan(TableName=name)["Items"]:
            for item in found:
                dynamodb.delete_item(TableName=name, Key={k: item[k] for k in names})


@pytest.fixture
def populated(emulated_aws):
    """Fill every table, with numbers, booleans, maps, lists, sets and binary among the values."""
    for address in ADDRESSES:
        token = subscription_data.subscribe(address, "example.org", "30")["token"]
        subscription_data.confirm(address, token)
        subscription_data.subscribe(address, "example.net:8443", "auto")
    subscription_data.suppress(ADDRESSES[1], "complaint")
    subscription_data.hit_rate_limit("check:203.0.113.9", 5, 60)
    aws.client("dynamodb").put_item(
        TableName="sslnotify-test-checkstate",
        Item={
            "subscriber": {"S": "0" * 32},
            "target": {"S": "example.org:443"},
            "status": {"S": "expiring"},
            "error_streak": {"N": "0"},
            "days_left": {"N": "-1.5"},
            "alerting": {"BOOL": True},
            "fixed_sent_day": {"NULL": True},
            "summary": {
                "M": {
                    "problems": {"L": [{"S": "expiring"}, {"N": "12345678901234567890"}]},
                    "flags": {"SS": ["a", "b"]},
                    "numbers": {"NS": ["1", "2.5"]},
                }
            },
            "raw": {"B": b"\x00\xffbinary"},
            "raws": {"BS": [b"\x01", b"\x02"]},
        },
    )
    return typed_items()


def saved_document(answer: dict) -> dict:
    body = aws.client("s3").get_object(Bucket=answer["bucket"], Key=answer["key"])["Body"].read()
    return json.loads(body)


def test_backup_then_restore_into_empty_tables_gives_back_identical_items(populated, settings):
    before = time.time()
    answer = subscription_data.backup_tables()
    assert answer["bucket"] == settings.backup_bucket
    assert re.fullmatch(r"dynamodb-\d+\.json", answer["key"])
    assert before - 1 <= int(answer["key"][9:-5]) <= time.time()
    assert answer["items"] == sum(len(items) for items in populated.values())
    wipe()
    assert all(items == [] for items in typed_items().values())
    restored = subscription_data.restore(answer["bucket"], answer["key"])
    assert restored["items"] == answer["items"]
    assert typed_items() == populated


def test_restored_subscriptions_still_work(populated):
    answer = subscription_data.backup_tables()
    wipe()
    subscription_data.restore(answer["bucket"], answer["key"])
    vault = AddressVault(b"test-deployment-secret-not-for-production")
    recipients = subscription_data.recipients(
        [{"subscriber": vault.pseudonym(a), "target": "example.org:443"} for a in ADDRESSES]
    )
    assert sorted(vault.open(r["address"], r["subscriber"]) for r in recipients) == ADDRESSES
    token = recipients[0]["token"]
    address = vault.open(recipients[0]["address"], recipients[0]["subscriber"])
    assert subscription_data.unsubscribe(address, token) == {"target": "example.org:443"}


def test_a_backup_holds_no_address_in_plain_text(populated):
    document = saved_document(subscription_data.backup_tables())
    text = json.dumps(document)
    assert document["format"] == "sslnotify-backup" and document["version"] == 1
    for address in ADDRESSES:
        assert address not in text
        assert address.split("@")[0] not in text


def test_restore_replaces_items_of_the_same_key_and_keeps_the_others(populated):
    answer = subscription_data.backup_tables()
    subscription_data.suppress("late.arrival@example.org", "bounce")
    aws.table("subscriptions").update_item(
        Key={
            "subscriber": populated["subscriptions"][0]["subscriber"]["S"],
            "target": "example.org:443",
        },
        UpdateExpression="SET tolerance = :t",
        ExpressionAttributeValues={":t": "99"},
    )
    subscription_data.restore(answer["bucket"], answer["key"])
    after = typed_items()
    assert after["subscriptions"] == populated["subscriptions"]
    assert len(after["suppression"]) == len(populated["suppression"]) + 1


def document_with(**changes) -> bytes:
    """Return a valid document of this deployment with some fields changed."""
    vault = AddressVault(b"test-deployment-secret-not-for-production")
    document = {
        "format": "sslnotify-backup",
        "version": 1,
        "created_at": 1,
        "fingerprint": backup.fingerprint(vault),
        "tables": {
            "suppression": [
                {"subscriber": {"S": "a" * 32}, "reason": {"S": "bounce"}, "at": {"S": "x"}}
            ]
        },
    }
    document.update(changes)
    return json.dumps(document).encode()


def item(**values) -> dict:
    return {"subscriber": {"S": "b" * 32}, **values}


BAD_DOCUMENTS = {
    "not JSON": (b"{nope", "not a JSON document"),
    "not an object": (b"[]", "not an sslnotify backup"),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, "not a JSON document"),
    "foreign format": (document_with(format="something-else"), "not an sslnotify backup"),
    "future version": (document_with(version=2), "unsupported backup version"),
    "another deployment": (document_with(fingerprint="0" * 32), "another secret"),
    "no tables": (document_with(tables={}), "no tables"),
    "unknown table": (document_with(tables={"users": []}), "unknown tables: users"),
    "items not a list": (document_with(tables={"suppression": {}}), "must be a list"),
    "missing key": (
        document_with(tables={"suppression": [{"reason": {"S": "bounce"}}]}),
        "key attribute subscriber",
    ),
    "numeric key": (
        document_with(tables={"suppression": [{"subscriber": {"N": "1"}}]}),
        "key attribute subscriber",
    ),
    "untyped value": (
        document_with(tables={"suppression": [item(reason="bounce")]}),
        "not a typed DynamoDB value",
    ),
    "bad number": (document_with(tables={"suppression": [item(n={"N": "abc"})]}), "malformed N"),
    "infinite number": (
        document_with(tables={"suppression": [item(n={"N": "Infinity"})]}),
        "malformed N",
    ),
    "bad binary": (document_with(tables={"suppression": [item(b={"B": "***"})]}), "malformed B"),
    "bad nested": (
        document_with(tables={"suppression": [item(m={"M": {"x": {"Q": 1}}})]}),
        "not a typed",
    ),
    "duplicate key": (
        document_with(tables={"suppression": [item(), item()]}),
        "the same key appears twice",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_DOCUMENTS))
def test_restore_refuses_a_bad_document_and_changes_nothing(populated, name):
    content, message = BAD_DOCUMENTS[name]
    aws.client("s3").put_object(Bucket="sslnotify-test-backups", Key="bad.json", Body=content)
    with pytest.raises(BackupRefused, match=message):
        subscription_data.restore("sslnotify-test-backups", "bad.json")
    assert typed_items() == populated


def test_a_document_is_checked_whole_before_anything_is_written(populated):
    good = [item(reason={"S": "bounce"}) for _ in range(1)]
    tables = {"suppression": good, "subscriptions": [{"subscriber": {"S": "x"}}]}
    aws.client("s3").put_object(
        Bucket="sslnotify-test-backups", Key="half.json", Body=document_with(tables=tables)
    )
    with pytest.raises(BackupRefused, match="key attribute target"):
        subscription_data.restore("sslnotify-test-backups", "half.json")
    assert typed_items() == populated


def test_restoring_a_missing_backup_is_not_found(emulated_aws):
    with pytest.raises(NotFound):
        subscription_data.restore("sslnotify-test-backups", "dynamodb-1.json")


def test_the_restore_command_loads_a_local_file(populated, tmp_path, capsys):
    answer = subscription_data.backup_tables()
    path = tmp_path / "backup.json"
    path.write_bytes(json.dumps(saved_document(answer)).encode())
    wipe()
    assert main(["restore", str(path), "--check"]) == 0
    assert "a whole sslnotify backup" in capsys.readouterr().out
    assert all(items == [] for items in typed_items().values())
    assert main(["restore", str(path)]) == 0
    assert f"restored {answer['items']} item(s)" in capsys.readouterr().out
    assert typed_items() == populated


def test_the_restore_command_loads_from_s3(populated, capsys):
    answer = subscription_data.backup_tables()
    wipe()
    assert main(["restore", f"s3://{answer['bucket']}/{answer['key']}"]) == 0
    assert typed_items() == populated


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("s3://only-a-bucket", "s3://bucket/key"),
        ("s3://sslnotify-test-backups/nothing.json", "no backup readable"),
        ("/nonexistent/backup.json", "no backup file"),
    ],
)
def test_the_restore_command_explains_what_is_wrong(emulated_aws, capsys, argument, message):
    assert main(["restore", argument]) == 3
    assert message in capsys.readouterr().err


def test_the_restore_command_refuses_a_foreign_file(populated, tmp_path, capsys):
    path = tmp_path / "foreign.json"
    path.write_bytes(document_with(fingerprint="f" * 32))
    assert main(["restore", str(path)]) == 3
    assert "another secret" in capsys.readouterr().err
    assert typed_items() == populated


def test_the_data_function_backs_up_on_its_hourly_schedule(populated, lambda_context):
    from lambdas.data import handler

    payload = resources()["functions"]["data"]["schedule_payload"]
    answer = handler(payload, lambda_context)["response"]
    assert saved_document(answer)["tables"]["subscriptions"]


def test_a_backup_larger_than_a_scan_page_round_trips(emulated_aws):
    padding = "p" * 20_000  # ~60 items fill the 1 MB a scan page holds
    with aws.table("checkstate").batch_writer() as batch:
        for number in range(90):
            batch.put_item(
                Item={
                    "subscriber": f"{number:032x}",
                    "target": "example.org:443",
                    "summary": padding,
                }
            )
    before = typed_items()
    answer = subscription_data.backup_tables()
    assert answer["items"] == 90
    wipe()
    assert typed_items()["checkstate"] == []
    assert subscription_data.restore(answer["bucket"], answer["key"])["tables"]["checkstate"] == 90
    assert typed_items() == before
