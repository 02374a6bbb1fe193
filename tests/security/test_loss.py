"""Loss: backup → wipe → restore is identical; backups during writes are per-item consistent;
a malformed or foreign backup is refused whole, with a clear message, and changes nothing.
"""

from __future__ import annotations

import base64
import json
import os
import random
import threading
from decimal import Decimal

import pytest

from chalicelib import aws, backup
from chalicelib.cli import main
from chalicelib.config import get_settings, resources
from chalicelib.invoke import invoke
from chalicelib.privacy import AddressVault
from tests.security.conftest import emulated_items, record_figure

SEED = 20261127
# Items in all (SSLNOTIFY_LOSS_ITEMS for a longer run), shared out like a real deployment's.
TOTAL = int(os.environ.get("SSLNOTIFY_LOSS_ITEMS", "") or 2000)
SHARES = {"subscriptions": 0.4, "pending": 0.1, "suppression": 0.1, "ratelimits": 0.1}
SHARES["checkstate"] = 0.3
ITEMS = {key: int(TOTAL * share) for key, share in SHARES.items()}


@pytest.fixture(autouse=True)
def _atomic_operations(atomic_dynamodb):
    """Each emulated DynamoDB operation is atomic, as in DynamoDB."""


def raw_items(key: str) -> list[dict]:
    """Return a table's items in DynamoDB's typed form, sorted, read with the low-level client."""
    client = aws.client("dynamodb")
    name = get_settings().table_name(key)
    items, kwargs = [], {"TableName": name, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=repr))


def everything() -> dict[str, list[str]]:
    """Return every table's items (typed), the state a backup must reproduce."""
    return {key: emulated_items(key) for key in resources()["tables"]}


def populate(vault: AddressVault, rng: random.Random) -> int:
    """Fill every table with items shaped like the service's, plus every DynamoDB type once."""
    total = 0
    for key, count in ITEMS.items():
        spec = resources()["tables"][key]
        with aws.table(key).batch_writer() as writer:
            for index in range(count):
                address = f"user{index}@example{index % 7}.org"
                item = {spec["hash_key"]: vault.pseudonym(address) if key != "ratelimits" else ""}
                if key == "ratelimits":
                    item["key"] = f"check:{vault.pseudonym(str(index))}:{index}"
                    item.update(count=rng.randint(1, 20), expires=1_800_000_000 + index)
                if "range_key" in spec:
                    item[spec["range_key"]] = f"host{rng.randint(0, 10**6)}.example:{443 + index}"
                if key in {"subscriptions", "pending"}:
                    item.update(
                        address=vault.seal(address),
                        tolerance=rng.choice(["30", "auto", "7", "365"]),
                        token=base64.urlsafe_b64encode(rng.randbytes(24)).decode(),
                        expires=1_800_000_000 + index,
                    )
                if key == "checkstate":
                    item.update(
                        status=rng.choice(["ok", "expiring", "invalid", "error"]),
                        error_streak=rng.randint(0, 9),
                        alerting=rng.random() < 0.5,
                        summary={"daysLeft": Decimal(rng.randint(-5, 400)), "codes": ["expiring"]},
                        alert_sent_day=None,
                    )
                if index == 0:  # every type DynamoDB has, once per table
                    item.update(
                        blob=b"\x00\xff binary",
                        strings={"a", "b"},
                        numbers={Decimal(1), Decimal("2.5")},
                        blobs={b"x", b"y"},
                        nested={"list": [1, "two", None, True, {"deep": [Decimal("0.1")]}]},
                        empty_string="",
                        big=Decimal("123456789012345678901234567890.123"),
                    )
                writer.put_item(Item=item)
                total += 1
    return total


def wipe() -> None:
    """Delete every item of every table."""
    for key, spec in resources()["tables"].items():
        names = [spec["hash_key"], *([spec["range_key"]] if "range_key" in spec else [])]
        with aws.table(key).batch_writer() as writer:
            for item in raw_items(key):
                writer.delete_item(Key={name: item[name]["S"] for name in names})


def test_backup_wipe_restore_round_trip_is_identical(lambdas, settings):
    """Thousands of items of every table and type: backup, wipe, restore (twice), the same."""
    vault = AddressVault(settings.require_secret())
    written = populate(vault, random.Random(SEED))
    before = everything()
    assert sum(len(items) for items in before.values()) == written
    saved = invoke("data", {"action": "backup"}, wait=True)
    assert saved["items"] == written
    wipe()
    assert all(items == [] for items in everything().values())
    restored = invoke(
        "data", {"action": "restore", "bucket": saved["bucket"], "key": saved["key"]}, wait=True
    )
    assert restored["items"] == written
    assert everything() == before
    again = {"action": "restore", "bucket": saved["bucket"], "key": saved["key"]}
    invoke("data", again, wait=True)  # restoring over the same state is harmless
    assert everything() == before
    record_figure("items backed up, wiped and restored identically", written)


def test_a_backup_taken_during_writes_is_consistent_per_item(lambdas, settings):
    """Writers keep rewriting items whose fields must agree while the backup runs."""
    table = aws.table("checkstate")
    keys = [{"subscriber": f"s{index:04d}", "target": "t.example:443"} for index in range(600)]
    with table.batch_writer() as writer:
        for key in keys:
            writer.put_item(Item={**key, "version": 0, "status": "v0", "checked_day": "v0"})
    stop = threading.Event()
    writes = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        version = 0
        while not stop.is_set():
            version += 1
            key = rng.choice(keys)
            tag = f"v{seed}-{version}"
            if version % 2:
                table.put_item(Item={**key, "version": version, "status": tag, "checked_day": tag})
            else:
                table.update_item(
                    Key=key,
                    UpdateExpression="SET version = :v, #s = :t, checked_day = :t",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":v": version, ":t": tag},
                )
            writes.append(1)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    try:
        saved = [invoke("data", {"action": "backup"}, wait=True) for _ in range(3)]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert len(writes) > 100, "the writers barely ran during the backups"
    s3 = aws.client("s3")
    for location in saved:
        body = s3.get_object(Bucket=location["bucket"], Key=location["key"])["Body"].read()
        items = json.loads(body)["tables"]["checkstate"]
        assert len(items) == len(keys)  # no item lost or doubled while being rewritten
        for item in items:
            assert item["status"] == item["checked_day"], item  # never half of one write
    record_figure("writes racing the backups", len(writes))


def _document(settings, **changes) -> dict:
    """Return a small valid backup document of this deployment, with changes applied."""
    vault = AddressVault(settings.require_secret())
    document = {
        "format": backup.FORMAT,
        "version": backup.VERSION,
        "created_at": 1_800_000_000,
        "fingerprint": backup.fingerprint(vault),
        "tables": {
            "suppression": [
                {"subscriber": {"S": f"p{index}"}, "reason": {"S": "bounce"}} for index in range(60)
            ],
        },
    }
    document.update(changes)
    return document


def _foreign(settings) -> dict:
    return _document(settings, fingerprint=backup.fingerprint(AddressVault(b"another secret")))


def _bad_last_item(settings) -> dict:
    document = _document(settings)
    document["tables"]["subscriptions"] = [
        {"subscriber": {"S": "p"}, "target": {"S": f"h{index}:443"}} for index in range(40)
    ] + [{"subscriber": {"S": "p"}, "target": {"S": "last:443"}, "x": {"N": "not a number"}}]
    return document


MALFORMED = [
    ("not JSON", lambda s: b"\x89PNG\r\n\x1a\n", "not a JSON document"),
    ("truncated", lambda s: json.dumps(_document(s)).encode()[:-40], "not a JSON document"),
    ("a list", lambda s: b"[]", "not an sslnotify backup"),
    ("another format", lambda s: _document(s, format="dynamodb-export"), "not an sslnotify"),
    ("a future version", lambda s: _document(s, version=2), "unsupported backup version"),
    ("another deployment", _foreign, "another secret"),
    ("no tables", lambda s: _document(s, tables={}), "no tables"),
    ("an unknown table", lambda s: _document(s, tables={"users": []}), "unknown tables"),
    ("a bad value in the last item", _bad_last_item, "malformed N value"),
    (
        "an item without its key",
        lambda s: _document(s, tables={"suppression": [{"reason": {"S": "bounce"}}]}),
        "key attribute subscriber",
    ),
    (
        "a duplicated key",
        lambda s: _document(s, tables={"suppression": [{"subscriber": {"S": "p"}}] * 2}),
        "same key appears twice",
    ),
    (
        "an untyped value",
        lambda s: _document(s, tables={"suppression": [{"subscriber": "p"}]}),
        "not a typed DynamoDB value",
    ),
    (
        "nesting too deep",
        lambda s: b'{"format": "sslnotify-backup", "tables": ' + b"[" * 100_000 + b"]" * 100_000,
        "not a JSON document",
    ),
]


@pytest.mark.parametrize(("what", "make", "says"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_restore_refuses_a_malformed_or_foreign_backup_and_changes_nothing(
    lambdas, settings, what, make, says
):
    """The data function's restore refuses the whole document with a clear message."""
    populate_small = [{"subscriber": f"kept{index}", "reason": "complaint"} for index in range(5)]
    for item in populate_small:
        aws.table("suppression").put_item(Item=item)
    before = everything()
    made = make(settings)
    body = made if isinstance(made, bytes) else json.dumps(made).encode()
    aws.client("s3").put_object(Bucket=settings.backup_bucket, Key="evil.json", Body=body)
    answer = lambdas.invoke(
        FunctionName=settings.function_name("data"),
        InvocationType="RequestResponse",
        Payload=json.dumps(
            {"action": "restore", "bucket": settings.backup_bucket, "key": "evil.json"}
        ).encode(),
    )
    reply = json.loads(answer["Payload"].read())
    assert says in reply.get("errorMessage", ""), reply
    assert reply["errorType"] in {"BackupRefused", "BadInput"}
    assert everything() == before
    record_figure("malformed or foreign backups refused", 1)


def test_the_restore_command_refuses_a_foreign_file_and_writes_nothing(
    lambdas, settings, tmp_path, capsys
):
    """`sslnotify restore FILE` with another deployment's backup: exit 3, a message, no change."""
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(_foreign(settings)))
    before = everything()
    assert main(["restore", str(path)]) != 0
    assert "another secret" in capsys.readouterr().err
    assert everything() == before
