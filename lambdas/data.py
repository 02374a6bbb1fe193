"""The data function: every DynamoDB access, plus the hourly backup."""

from __future__ import annotations

from typing import Any

from chalicelib import logs
from chalicelib.claims import ACTIONS as CLAIM_ACTIONS
from chalicelib.digest_data import ACTIONS as DIGEST_ACTIONS
from chalicelib.invoke import dispatch
from chalicelib.manage_data import ACTIONS as MANAGE_ACTIONS
from chalicelib.send_rate import ACTIONS as SEND_RATE_ACTIONS
from chalicelib.subscription_data import ACTIONS as SUBSCRIPTION_ACTIONS
from chalicelib.sweep_data import ACTIONS as SWEEP_ACTIONS

logs.setup()
ACTIONS = {
    **SUBSCRIPTION_ACTIONS,
    **SWEEP_ACTIONS,
    **MANAGE_ACTIONS,
    **DIGEST_ACTIONS,
    **CLAIM_ACTIONS,
    **SEND_RATE_ACTIONS,
}


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Answer one data action."""
    return dispatch(event, ACTIONS)
