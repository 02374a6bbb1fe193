"""The local stack's state: table items and bucket objects survive a save and a restore."""

from __future__ import annotations

import json
import time

import pytest

from chalicelib import aws
from local.emulator import PeriodicSaver, StateStore


def _put_things(settings) -> None:
    dynamodb = aws.client("dynamodb")
    for number in range(30):  # more than one BatchWriteItem
        dynamodb.put_item(
            TableName=settings.table_name("subscriptions"),
            Item={
                "subscriber": {"S": f"p{number:02d}"},
                "target": {"S": "example.com:443"},
                "tolerance": {"S": "30"},
                "expires": {"N": "1795738197"},
                "flags": {"SS": ["a", "b"]},
            },
        )
    aws.client("s3").put_object(
        Bucket=settings.backup_bucket, Key="dynamodb-1.json", Body=b"\x00binary\xff"
    )


def _wipe(settings) -> None:
    dynamodb = aws.client("dynamodb")
    table = settings.table_name("subscriptions")
    for item in dynamodb.scan(TableName=table)["Items"]:
        dynamodb.delete_item(
            TableName=table, Key={"subscriber": item["subscriber"], "target": item["target"]}
        )
    aws.client("s3").delete_object(Bucket=settings.backup_bucket, Key="dynamodb-1.json")


def test_items_and_objects_come_back_exactly(emulated_aws, tmp_path):
    settings = emulated_aws
    _put_things(settings)
    store = StateStore(settings, tmp_path)
    store.save()
    before = aws.client("dynamodb").scan(TableName=settings.table_name("subscriptions"))["Items"]
    _wipe(settings)

    assert StateStore(settings, tmp_path).restore() == {"items": 30, "objects": 1}

    after = aws.client("dynamodb").scan(TableName=settings.table_name("subscriptions"))["Items"]
    key = lambda item: item["subscriber"]["S"]  # noqa: E731
    assert sorted(after, key=key) == sorted(before, key=key)
    body = aws.client("s3").get_object(Bucket=settings.backup_bucket, Key="dynamodb-1.json")
    assert body["Body"].read() == b"\x00binary\xff"


def test_nothing_saved_restores_nothing(emulated_aws, tmp_path):
    assert StateStore(emulated_aws, tmp_path / "none").restore() == {"items": 0, "objects": 0}


def test_the_saver_saves_on_stop_and_leaves_no_temporary_file(emulated_aws, tmp_path):
    settings = emulated_aws
    saver = PeriodicSaver(StateStore(settings, tmp_path), period=3600)
    saver.start()
    _put_things(settings)
    saver.stop()
    saved = json.loads((tmp_path / "dynamodb.json").read_text())
    assert len(saved["tables"]["subscriptions"]) == 30
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dynamodb.json", "s3.json"]


def test_the_saver_saves_periodically_without_being_stopped(emulated_aws, tmp_path):
    # What a kill -9 leaves behind: the last periodic save.
    settings = emulated_aws
    saver = PeriodicSaver(StateStore(settings, tmp_path), period=0.2)
    saver.start()
    _put_things(settings)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        saved_file = tmp_path / "dynamodb.json"
        if saved_file.exists():
            saved = json.loads(saved_file.read_text())
            if len(saved["tables"]["subscriptions"]) == 30:
                break
        time.sleep(0.1)
    else:
        pytest.fail("no periodic save within 10 s")
    saver.stop(save=False)
