"""An in-process stand-in for the Lambda service, so invoke() reaches the real handlers in tests.

Blocking invocations run the handler at once; asynchronous ones are queued and run
by `drain()`, with AWS's two retries for a handler that raises. AWS waits a minute
before the first retry and two before the second; `drain()` does not wait, it moves
`elapsed` on instead, which the claims' clock reads (the lambdas fixture), so a
killed attempt's leases have run out when its retry comes, as in AWS.
"""

from __future__ import annotations

import importlib
import io
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from chalicelib.config import Settings, resources

ASYNC_RETRIES = 2
RETRY_DELAYS = (60.0, 120.0)  # seconds AWS waits before the first and the second retry


@dataclass
class Invocation:
    """One recorded call: which function, how, with what payload."""

    function: str
    invocation_type: str
    payload: Any


@dataclass
class InProcessLambda:
    """A boto3-lambda-client look-alike that runs sslnotify's handlers in this process."""

    settings: Settings
    calls: list[Invocation] = field(default_factory=list)
    queue: deque = field(default_factory=deque)
    failures: list[tuple[str, Any, Exception]] = field(default_factory=list)
    elapsed: float = 0.0  # seconds of AWS's retry delays that drain() skipped

    def _handler(self, function_name: str):
        for key, spec in resources()["functions"].items():
            if self.settings.function_name(key) == function_name:
                module_name, _, attribute = spec["handler"].rpartition(".")
                if key == "api":
                    raise ValueError("the API is not invoked through Lambda")
                return key, getattr(importlib.import_module(module_name), attribute)
        raise ValueError(f"Function not found: {function_name}")

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict:
        key, handler = self._handler(FunctionName)
        payload = json.loads(Payload)
        self.calls.append(Invocation(key, InvocationType, payload))
        if InvocationType == "Event":
            self.queue.append((key, handler, payload))
            return {"StatusCode": 202, "Payload": io.BytesIO(b"")}
        try:
            answer = handler(payload, None)
        except Exception as error:  # the Lambda service reports an unhandled error
            body = {"errorMessage": str(error), "errorType": type(error).__name__}
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": io.BytesIO(json.dumps(body).encode()),
            }
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())}

    def drain(self) -> int:
        """Run queued asynchronous invocations (and those they queue); return how many ran."""
        ran = 0
        while self.queue:
            key, handler, payload = self.queue.popleft()
            for attempt in range(1 + ASYNC_RETRIES):
                if attempt:
                    self.elapsed += RETRY_DELAYS[attempt - 1]
                ran += 1
                try:
                    handler(payload, None)
                    break
                except Exception as error:
                    if attempt == ASYNC_RETRIES:
                        self.failures.append((key, payload, error))
        return ran

    def count(self, function: str, invocation_type: str | None = None) -> int:
        """Count the recorded invocations of a function."""
        return sum(
            1
            for call in self.calls
            if call.function == function
            and (invocation_type is None or call.invocation_type == invocation_type)
        )
