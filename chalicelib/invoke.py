"""The one place that invokes Lambda functions, and the dispatcher that answers invocations.

Payloads are JSON objects: {"action": NAME, ...named fields}. Answers are
{"response": ...} or {"errorMessage": ...}, as the original's functions spoke.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib import aws, errors
from chalicelib.config import get_settings
from chalicelib.errors import InvocationError, PayloadError, SslnotifyError
from chalicelib.logs import get_logger

logger = get_logger(__name__)

ATTEMPTS = 3  # for events and idempotent blocking calls
BACKOFF_SECONDS = 0.2


def invoke(
    function: str, payload: Mapping[str, Any], wait: bool = False, idempotent: bool = False
) -> Any:
    """Invoke a function of resources.json; with wait, return its response or raise.

    `idempotent` marks a blocking call that may safely run twice (a read, or a write
    that repeats to the same effect): it is tried again when it fails.
    """
    name = get_settings().function_name(function)
    body = json.dumps(payload).encode()
    # Queuing an event again is safe (every receiver is idempotent), and so is repeating
    # an idempotent blocking call; any other blocking call is not: its action may have
    # run before the answer was lost.
    attempts = ATTEMPTS if idempotent or not wait else 1
    for attempt in range(1, attempts + 1):
        try:
            return _invoke_once(function, name, body, wait)
        except SslnotifyError as error:
            if not error.retryable:
                raise
            logger.warning(
                "invoke failed",
                function=function,
                action=payload.get("action"),
                attempt=attempt,
                reason=error.message,
            )
            if attempt == attempts:
                raise
            time.sleep(BACKOFF_SECONDS * attempt)
    return None


def _invoke_once(function: str, name: str, body: bytes, wait: bool) -> Any:
    try:
        answer = aws.client("lambda").invoke(
            FunctionName=name,
            InvocationType="RequestResponse" if wait else "Event",
            Payload=body,
        )
    except Exception as error:  # botocore's errors have no common useful base
        raise InvocationError(f"could not invoke {function}") from error
    if not wait:
        return None
    body = answer["Payload"].read()
    try:
        decoded = json.loads(body) if body else None
    except ValueError as error:
        raise InvocationError(f"{function} answered with something that is not JSON") from error
    if answer.get("FunctionError") or (isinstance(decoded, dict) and "errorMessage" in decoded):
        raise _error_from(function, decoded)
    if isinstance(decoded, dict) and "response" in decoded:
        return decoded["response"]
    return decoded


def _error_from(function: str, answer: Any) -> SslnotifyError:
    """Rebuild the error another function answered with (NotFound stays NotFound)."""
    if not isinstance(answer, dict):
        return InvocationError(f"{function} failed")
    message = str(answer.get("errorMessage") or f"{function} failed")
    kind = getattr(errors, str(answer.get("errorType")), None)
    if isinstance(kind, type) and issubclass(kind, SslnotifyError) and kind is not PayloadError:
        return kind(message)
    return InvocationError(message)


Action = Callable[..., Any]


def dispatch(event: Any, actions: Mapping[str, Action]) -> dict[str, Any]:
    """Run the action an invocation payload names with its named fields.

    A malformed payload or one of sslnotify's own errors becomes {"errorMessage": ...};
    a retryable error (another function failed) and anything unexpected propagate,
    so that AWS records the failure and retries an asynchronous invocation.
    """
    try:
        action, fields = _parse(event, actions)
        return {"response": action(**fields)}
    except SslnotifyError as error:
        if error.retryable:
            raise
        logger.warning("action refused", error=type(error).__name__, reason=error.message)
        return {"errorMessage": error.message, "errorType": type(error).__name__}


def _parse(event: Any, actions: Mapping[str, Action]) -> tuple[Action, dict[str, Any]]:
    if not isinstance(event, Mapping):
        raise PayloadError("payload must be a JSON object")
    name = event.get("action")
    if not isinstance(name, str) or name not in actions:
        known = ", ".join(sorted(actions))
        raise PayloadError(f"unknown action {str(name)[:40]!r}; expected one of: {known}")
    action = actions[name]
    fields = {key: value for key, value in event.items() if key != "action"}
    parameters = inspect.signature(action).parameters
    unknown = sorted(set(fields) - set(parameters))
    if unknown:
        raise PayloadError(f"{name}: unexpected field(s): {', '.join(u[:40] for u in unknown)}")
    missing = sorted(
        key
        for key, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind is not inspect.Parameter.VAR_KEYWORD
        and key not in fields
    )
    if missing:
        raise PayloadError(f"{name}: missing field(s): {', '.join(missing)}")
    return action, fields
