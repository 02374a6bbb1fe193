"""Backups: every table into one JSON document in S3, and that document loaded back.

Items are kept in DynamoDB's typed form ({"N": "30"}, {"BOOL": true}, binary as
base64), so a restore reproduces numbers, booleans and sets exactly. A document
is checked whole before anything is written: a malformed or foreign backup
changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.config import Settings, get_settings, resources
from chalicelib.errors import BadInput, NotFound, SslnotifyError
from chalicelib.logs import get_logger
from chalicelib.privacy import AddressVault

logger = get_logger(__name__)

FORMAT = "sslnotify-backup"
VERSION = 1
BATCH_WRITE_SIZE = 25  # DynamoDB's BatchWriteItem limit
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
_SCALAR_TYPES = {"S", "N", "B", "BOOL", "NULL"}
_SET_TYPES = {"SS", "NS", "BS"}
_TYPES = _SCALAR_TYPES | _SET_TYPES | {"M", "L"}


class BackupRefused(BadInput):
    """A backup document is malformed or belongs to another deployment."""


def fingerprint(vault: AddressVault) -> str:
    """Return the mark of this deployment's secret that every backup carries."""
    # Pseudonyms and sealed addresses only make sense under the secret that made them.
    return vault.pseudonym("sslnotify-backup-fingerprint")


def backup_key(moment: float) -> str:
    """Return the object key of a backup taken at this time, as the original named them."""
    return f"dynamodb-{int(moment)}.json"


@dataclass(frozen=True)
class RestoreSummary:
    """How many items a restore wrote, per table."""

    tables: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as the restore action answers it."""
        return {"tables": self.tables, "items": sum(self.tables.values())}


class TableBackup:
    """Dump the tables of resources.json to a document and load one back (a client per service)."""

    def __init__(self, dynamodb: Any, s3: Any, settings: Settings, vault: AddressVault):
        self.dynamodb = dynamodb
        self.s3 = s3
        self.settings = settings
        self.fingerprint = fingerprint(vault)

    def dump(self, now: float | None = None) -> dict[str, Any]:
        """Return every table's items as one backup document."""
        moment = time.time() if now is None else now
        tables = {key: list(self._scan(key)) for key in resources()["tables"]}
        return {
            "format": FORMAT,
            "version": VERSION,
            "created_at": int(moment),
            "fingerprint": self.fingerprint,
            "tables": tables,
        }

    def save(self, bucket: str, now: float | None = None) -> dict[str, Any]:
        """Write a backup document to the bucket; return where and how many items."""
        moment = time.time() if now is None else now
        document = self.dump(moment)
        key = backup_key(moment)
        body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        items = sum(len(items) for items in document["tables"].values())
        logger.info("backup written", bucket=bucket, key=key, items=items, bytes=len(body))
        return {"bucket": bucket, "key": key, "items": items}

    def fetch(self, bucket: str, key: str) -> bytes:
        """Return the backup document stored at s3://bucket/key."""
        try:
            answer = self.s3.get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in {"NoSuchKey", "NoSuchBucket", "404", "AccessDenied"}:
                raise NotFound(f"no backup readable at s3://{bucket}/{key} ({code})") from None
            raise
        return answer["Body"].read()

    def restore_object(self, bucket: str, key: str) -> dict[str, Any]:
        """Load the backup stored at s3://bucket/key into the tables."""
        return self.restore_bytes(self.fetch(bucket, key)).to_dict()

    def restore_bytes(self, body: bytes) -> RestoreSummary:
        """Check a backup document whole, then write its items to the tables."""
        return self.restore(parse(body, self.fingerprint))

    def restore(self, tables: Mapping[str, list[dict[str, Any]]]) -> RestoreSummary:
        """Write checked items to their tables, 25 per request, replacing items of the same key."""
        written = {}
        for key, items in tables.items():
            name = self.settings.table_name(key)
            for start in range(0, len(items), BATCH_WRITE_SIZE):
                chunk = items[start : start + BATCH_WRITE_SIZE]
                self._write(name, [{"PutRequest": {"Item": _to_wire(item)}} for item in chunk])
            written[key] = len(items)
        logger.info("backup restored", items=sum(written.values()), tables=written)
        return RestoreSummary(written)

    def _scan(self, key: str):
        kwargs: dict[str, Any] = {
            "TableName": self.settings.table_name(key),
            "ConsistentRead": True,
        }
        while True:
            page = self.dynamodb.scan(**kwargs)
            for item in page.get("Items", []):
                yield _to_document(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _write(self, table_name: str, requests: list[dict[str, Any]]) -> None:
        pending = {table_name: requests}
        for attempt in range(10):
            answer = self.dynamodb.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(min(0.05 * 2**attempt, 5.0))
        raise SslnotifyError(f"{table_name} kept refusing writes; the restore is incomplete")


def from_settings() -> TableBackup:
    """Return the backup of this deployment's tables, with its clients."""
    settings = get_settings()
    vault = AddressVault(settings.require_secret())
    return TableBackup(aws.client("dynamodb"), aws.client("s3"), settings, vault)


def parse(body: bytes | str, expected_fingerprint: str) -> dict[str, list[dict[str, Any]]]:
    """Return a backup document's items by table, or refuse the whole document."""
    if len(body) > MAX_DOCUMENT_BYTES:
        raise BackupRefused("the backup is larger than any sslnotify backup should be")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise BackupRefused("the backup is not a JSON document") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BackupRefused(f'not an sslnotify backup (no "format": "{FORMAT}")')
    if document.get("version") != VERSION:
        raise BackupRefused(f"unsupported backup version {str(document.get('version'))[:20]}")
    if document.get("fingerprint") != expected_fingerprint:
        raise BackupRefused(
            "this backup was made by a deployment with another secret: its addresses and "
            "pseudonyms would not be usable here"
        )
    tables = document.get("tables")
    specs = resources()["tables"]
    if not isinstance(tables, dict) or not tables:
        raise BackupRefused("the backup holds no tables")
    unknown = sorted(str(name)[:40] for name in tables if name not in specs)
    if unknown:
        raise BackupRefused(f"the backup holds unknown tables: {', '.join(unknown)}")
    try:
        return {name: _check_items(name, items, specs[name]) for name, items in tables.items()}
    except RecursionError:
        raise BackupRefused("the backup nests values deeper than any item can") from None


def _check_items(name: str, items: Any, spec: Mapping[str, str]) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise BackupRefused(f"table {name}: items must be a list")
    key_names = [spec["hash_key"], *([spec["range_key"]] if "range_key" in spec else [])]
    seen: set[tuple[str, ...]] = set()
    for number, item in enumerate(items):
        where = f"table {name}, item {number}"
        if not isinstance(item, dict) or not item:
            raise BackupRefused(f"{where}: not an item")
        for attribute, value in item.items():
            _check_value(value, f"{where}, attribute {str(attribute)[:40]}")
        key = []
        for key_name in key_names:
            value = item.get(key_name)
            if not isinstance(value, dict) or set(value) != {"S"} or not value["S"]:
                raise BackupRefused(f"{where}: key attribute {key_name} is missing or not text")
            key.append(value["S"])
        if tuple(key) in seen:
            raise BackupRefused(f"{where}: the same key appears twice")
        seen.add(tuple(key))
    return items


def _check_value(value: Any, where: str) -> None:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in _TYPES:
        raise BackupRefused(f"{where}: not a typed DynamoDB value")
    kind, inner = next(iter(value.items()))
    valid = {
        "S": lambda: isinstance(inner, str),
        "N": lambda: isinstance(inner, str) and _is_number(inner),
        "B": lambda: isinstance(inner, str) and _is_base64(inner),
        "BOOL": lambda: isinstance(inner, bool),
        "NULL": lambda: inner is True,
        "SS": lambda: _is_set(inner, lambda v: isinstance(v, str)),
        "NS": lambda: _is_set(inner, lambda v: isinstance(v, str) and _is_number(v)),
        "BS": lambda: _is_set(inner, lambda v: isinstance(v, str) and _is_base64(v)),
        "L": lambda: isinstance(inner, list),
        "M": lambda: isinstance(inner, dict),
    }[kind]()
    if not valid:
        raise BackupRefused(f"{where}: malformed {kind} value")
    if kind == "L":
        for index, element in enumerate(inner):
            _check_value(element, f"{where}[{index}]")
    if kind == "M":
        for name, element in inner.items():
            _check_value(element, f"{where}.{str(name)[:40]}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in {"nan", "inf", "-inf", "+inf", "infinity", "-infinity"}


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_set(values: Any, check: Any) -> bool:
    return isinstance(values, list) and bool(values) and all(check(v) for v in values)


def _to_document(value: dict[str, Any]) -> dict[str, Any]:
    """Return an item (or typed value) from the DynamoDB client in JSON-safe form."""
    return {name: _value_to_document(inner) for name, inner in value.items()}


def _value_to_document(value: dict[str, Any]) -> dict[str, Any]:
    kind, inner = next(iter(value.items()))
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(v).decode() for v in inner]}
    if kind == "M":
        return {"M": _to_document(inner)}
    if kind == "L":
        return {"L": [_value_to_document(v) for v in inner]}
    return {kind: inner}


def _to_wire(item: dict[str, Any]) -> dict[str, Any]:
    """Return a checked document item in the form the DynamoDB client sends."""
    return {name: _value_to_wire(inner) for name, inner in item.items()}


def _value_to_wire(value: dict[str, Any]) -> dict[str, Any]:
    kind, inner = next(iter(value.items()))
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(v) for v in inner]}
    if kind == "M":
        return {"M": _to_wire(inner)}
    if kind == "L":
        return {"L": [_value_to_wire(v) for v in inner]}
    return {kind: inner}
