"""SES's sending rate shared by every concurrent mailer: one counter per second in DynamoDB.

Run by the data function. SES's maximum send rate is per account, so each send
first reserves a place in a one-second window of the ratelimits table (a
conditional counter, expired by TTL); when this second is full, the next second
with room is reserved and the mailer waits for it. However many mailers run, no
second holds more sends than the rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.errors import PayloadError

TABLE = "ratelimits"
# How far ahead a reservation may land. Each waiting mailer holds at most one place, so
# this is room for MAX_AHEAD_SECONDS x rate mailers at once; past that, the send is
# deferred to the invocation's retry.
MAX_AHEAD_SECONDS = 20
KEEP_SECONDS = 120  # a window's counter outlives it by this much, then TTL removes it

clock: Callable[[], float] = time.time


def _rate(rate: Any) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        raise PayloadError("rate must be a positive number of emails per second")
    # Whole emails per second window: at 0.5/s, one per window (SES quotas are whole numbers).
    return max(1, math.floor(rate))


def reserve_send(rate: float, now: float | None = None) -> float | None:
    """Reserve a place for one email; return when it may be sent (epoch seconds).

    None when every window up to MAX_AHEAD_SECONDS is full: send later.
    """
    per_window = _rate(rate)
    now = clock() if now is None else now
    table = aws.table(TABLE)
    first = int(now)
    for window in range(first, first + MAX_AHEAD_SECONDS + 1):
        try:
            table.update_item(
                Key={"key": f"ses:{window}"},
                UpdateExpression="SET #expires = if_not_exists(#expires, :expires) ADD #count :one",
                ConditionExpression="attribute_not_exists(#count) OR #count < :rate",
                ExpressionAttributeNames={"#expires": "expires", "#count": "count"},
                ExpressionAttributeValues={
                    ":expires": window + KEEP_SECONDS,
                    ":one": 1,
                    ":rate": per_window,
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            continue
        return max(now, float(window))
    return None


ACTIONS = {"reserve_send": reserve_send}
