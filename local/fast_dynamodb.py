"""Answer emulated DynamoDB's item operations with plain JSON instead of moto's serializer.

moto 5 writes every answer through a generic serializer that walks the operation's output
shape value by value, trying each member of every AttributeValue under several spellings:
about 1 ms per item returned, which made reading 10,000 items cost seconds of the local
stack's one CPU. For the item operations the answer moto builds is already DynamoDB's wire
JSON (`{"S": "…"}` values), so `json.dumps` of it gives the same body; only binary values
need base64, and `None`s are left out as the serializer leaves them out. Anything else
(errors, table operations, timestamps) still goes through moto's serializer.

Every scan (each segment of it) also sorts the whole table, comparing moto's typed key
values pair by pair, each comparison converting both values again; sorting by the values
converted once per item gives the same order. And a projection of top-level attributes
takes them from the item as they are, instead of converting the whole item to plain
values and back.
`tests/local/test_fast_dynamodb.py` holds the two answers equal for every operation here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoResult

OPERATIONS = frozenset(
    {
        "BatchGetItem",
        "BatchWriteItem",
        "DeleteItem",
        "GetItem",
        "PutItem",
        "Query",
        "Scan",
        "TransactGetItems",
        "TransactWriteItems",
        "UpdateItem",
    }
)
CONTENT_TYPE = "application/x-amz-json-1.0"

_original: Callable[..., Any] | None = None
_original_all_items: Callable[..., Any] | None = None
_original_project: Callable[..., Any] | None = None


class _NotPlain(TypeError):
    """The answer holds a value the fast path does not write (a timestamp, an object)."""


def _plain(value: Any) -> Any:
    """Return the value as the JSON the serializer writes: no Nones, bytes in base64."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise _NotPlain(type(value).__name__)


def _execute_result(self: DynamoResult, context: Any) -> Any:
    assert _original is not None
    result = self.result
    if context.operation_model.name in OPERATIONS and isinstance(result, dict):
        try:
            body = json.dumps(_plain(result))
        except _NotPlain:
            return _original(self, context)
        return 200, {"Content-Type": CONTENT_TYPE}, body
    return _original(self, context)


def _all_items(self: Table) -> list[Any]:
    items = [
        item
        for hash_set in self.items.values()
        for item in (hash_set.values() if self.range_key_attr else (hash_set,))
    ]

    def key(item: Any) -> Any:
        if item.range_key:
            return (item.hash_key.cast_value, item.range_key.cast_value)
        return item.hash_key.cast_value

    return sorted(items, key=key)


def _project(self: Item, projection_expressions: list[list[str]]) -> Item:
    assert _original_project is not None
    if any(len(path) != 1 for path in projection_expressions):
        return _original_project(self, projection_expressions)  # nested paths: moto's way
    names = dict.fromkeys(path[0] for path in projection_expressions)
    attrs = {name: self.attrs[name].to_json() for name in names if name in self.attrs}
    return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=attrs)


def install() -> None:
    """Use the fast path for every emulated DynamoDB item operation in this process."""
    global _original, _original_all_items, _original_project
    if _original is None:
        _original = DynamoResult.execute_result
        _original_all_items = Table.all_items
        _original_project = Item.project
        DynamoResult.execute_result = _execute_result  # type: ignore[method-assign]
        Table.all_items = _all_items  # type: ignore[method-assign]
        Item.project = _project  # type: ignore[method-assign]


def uninstall() -> None:
    """Go back to moto's serializer, sort and projection."""
    global _original, _original_all_items, _original_project
    if _original is not None:
        DynamoResult.execute_result = _original  # type: ignore[method-assign]
        Table.all_items = _original_all_items  # type: ignore[method-assign]
        Item.project = _original_project  # type: ignore[method-assign]
        _original = _original_all_items = _original_project = None


@contextmanager
def installed() -> Iterator[None]:
    """Use the fast path for the duration of a block."""
    already = _original is not None
    install()
    try:
        yield
    finally:
        if not already:
            uninstall()
