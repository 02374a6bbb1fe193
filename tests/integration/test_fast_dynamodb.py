"""The local stack's DynamoDB fast path answers exactly what moto's serializer answers."""

from __future__ import annotations

import socket
from decimal import Decimal

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local import fast_dynamodb
from local.emulator import Emulator

TABLE = "items"


def _table(client):
    client.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "subscriber", "KeyType": "HASH"},
            {"AttributeName": "target", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "subscriber", "AttributeType": "S"},
            {"AttributeName": "target", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


ITEM = {
    "subscriber": "a" * 64,
    "target": "example.org:443",
    "status": "expiring",
    "error_streak": Decimal(2),
    "alerting": True,
    "nothing": None,
    "blob": b"\x00\x01binary\xff",
    "tags": {"x", "y"},
    "numbers": {Decimal(1), Decimal("2.5")},
    "summary": {"daysLeft": Decimal(5), "problems": ["expiring", "weak_key"], "ok": False},
}
KEY = {"subscriber": ITEM["subscriber"], "target": ITEM["target"]}


def _operations(client) -> list:
    """Run every fast-path operation once; return the answers without request metadata."""
    resource = boto3.resource("dynamodb", region_name="us-east-1")
    table = resource.Table(TABLE)
    answers = [
        table.put_item(Item=ITEM, ReturnValues="ALL_OLD"),
        table.put_item(Item=ITEM, ReturnValues="ALL_OLD"),
        table.get_item(Key=KEY, ConsistentRead=True),
        table.get_item(Key={**KEY, "target": "missing:443"}),
        table.update_item(
            Key=KEY,
            UpdateExpression="SET #s = :s ADD error_streak :one",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": "ok", ":one": 1},
            ReturnValues="ALL_NEW",
        ),
        resource.batch_get_item(
            RequestItems={TABLE: {"Keys": [KEY, {**KEY, "target": "missing:443"}]}}
        ),
        resource.batch_write_item(
            RequestItems={
                TABLE: [
                    {"PutRequest": {"Item": {**ITEM, "subscriber": who, "target": f"t{n}:443"}}}
                    for n, who in enumerate(["m", "c", "x", "c", "a", ITEM["subscriber"]])
                ]
            }
        ),
        table.query(
            KeyConditionExpression="subscriber = :s",
            ExpressionAttributeValues={":s": ITEM["subscriber"]},
        ),
        table.scan(Limit=2),
        table.scan(ProjectionExpression="subscriber, target, summary.problems"),
        table.scan(
            ProjectionExpression="target, #s, #b, numbers, absent",
            ExpressionAttributeNames={"#s": "status", "#b": "blob"},
            Segment=1,
            TotalSegments=2,
        ),
        table.query(
            KeyConditionExpression="subscriber = :s",
            ExpressionAttributeValues={":s": ITEM["subscriber"]},
            ProjectionExpression="tags, summary",
        ),
        client.transact_get_items(
            TransactItems=[
                {
                    "Get": {
                        "TableName": TABLE,
                        "Key": {
                            "subscriber": {"S": KEY["subscriber"]},
                            "target": {"S": KEY["target"]},
                        },
                    }
                }
            ]
        ),
        client.transact_write_items(
            TransactItems=[
                {
                    "Delete": {
                        "TableName": TABLE,
                        "Key": {"subscriber": {"S": KEY["subscriber"]}, "target": {"S": "t0:443"}},
                    }
                }
            ]
        ),
        table.delete_item(Key=KEY, ReturnValues="ALL_OLD"),
    ]
    for answer in answers:
        answer.pop("ResponseMetadata", None)
    try:
        table.update_item(
            Key=KEY,
            UpdateExpression="SET a = :a",
            ConditionExpression="attribute_exists(subscriber)",
            ExpressionAttributeValues={":a": 1},
        )
    except ClientError as error:
        answers.append(error.response["Error"])
    return answers


def _run(fast: bool) -> list:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _table(client)
        if fast:
            with fast_dynamodb.installed():
                return _operations(client)
        return _operations(client)


def test_every_fast_operation_answers_what_moto_answers():
    slow, fast = _run(fast=False), _run(fast=True)
    assert len(fast) == len(slow) == 16
    assert fast == slow
    assert slow[-1]["Code"] == "ConditionalCheckFailedException"  # errors still moto's own
    assert slow[2]["Item"]["blob"].value == ITEM["blob"]


def test_the_fast_path_is_used_and_can_be_removed():
    with mock_aws():
        _table(boto3.client("dynamodb", region_name="us-east-1"))
        calls = []
        original = fast_dynamodb._plain

        def counting(value):
            calls.append(1)
            return original(value)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fast_dynamodb, "_plain", counting)
            with fast_dynamodb.installed():
                boto3.resource("dynamodb", region_name="us-east-1").Table(TABLE).scan()
            assert calls
            calls.clear()
            boto3.resource("dynamodb", region_name="us-east-1").Table(TABLE).scan()
            assert not calls


def test_the_emulator_keeps_connections_alive(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    emulator = Emulator(0)
    emulator.start()
    connects = []
    real_connect = socket.socket.connect

    def counting(self, address):
        connects.append(address)
        return real_connect(self, address)

    try:
        monkeypatch.setattr(socket.socket, "connect", counting)
        client = boto3.client("dynamodb", endpoint_url=emulator.url, region_name="us-east-1")
        _table(client)
        for number in range(20):
            client.put_item(
                TableName=TABLE, Item={"subscriber": {"S": "s"}, "target": {"S": str(number)}}
            )
        assert client.scan(TableName=TABLE)["Count"] == 20
    finally:
        emulator.stop()
    assert len(connects) == 1  # 22 calls over one kept-alive connection
