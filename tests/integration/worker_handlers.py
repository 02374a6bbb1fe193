"""Stand-in handlers the local Lambda service runs in worker processes (test_lambda_workers)."""

from __future__ import annotations

import os
import time

CALLS: list[str] = []  # module state: one per worker process, never shared


def remember(event, context):
    """Record the event in this module's state; answer the process and what it remembers."""
    CALLS.append(event.get("note", ""))
    return {"pid": os.getpid(), "calls": list(CALLS), "function": context.function_name}


def sleepy(event, context):
    """Sleep as long as asked (past the function's timeout, when a test wants it killed)."""
    time.sleep(float(event.get("seconds", 0)))
    return {"pid": os.getpid(), "slept": event.get("seconds", 0)}


def failing(event, context):
    """Raise, as a handler with a bug does."""
    raise ValueError("deliberate failure")
