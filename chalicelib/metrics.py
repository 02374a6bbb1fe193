"""Write sslnotify's own CloudWatch metrics as log lines (Embedded Metric Format).

In Lambda, CloudWatch Logs turns such a line of the function's log into a metric: no
API call, no IAM permission, nothing to fail. Terraform's alarms (terraform/alarms.tf)
watch these names; locally the line is simply a log line of the function.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

NAMESPACE = "sslnotify"
SWEEP_UNFINISHED = "SweepUnfinished"


def sweep_document(stage: str, finished: bool, now: float | None = None) -> dict[str, Any]:
    """Return the EMF document saying whether today's sweep finished (0) or not (1)."""
    return {
        "_aws": {
            "Timestamp": int((time.time() if now is None else now) * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Stage"]],
                    "Metrics": [{"Name": SWEEP_UNFINISHED, "Unit": "Count"}],
                }
            ],
        },
        # A level, so that the report's log reading counts the line as routine.
        "level": "INFO",
        "message": "sweep finished" if finished else "sweep NOT finished",
        "Stage": stage,
        SWEEP_UNFINISHED: 0 if finished else 1,
    }


def emit(document: dict[str, Any]) -> None:
    """Write one EMF document as a single line of the function's log (stdout in Lambda)."""
    sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
    sys.stdout.flush()
