"""One warm container of one function: a process that runs its handler, one invocation at a time.

The local Lambda service (local/lambda_api.py) starts these, one pool per function, and
talks to each over two pipes: a JSON line per request in, a JSON line per answer out.
Whatever the handler prints goes to this process's standard output, which the service
ships to the function's log group. A process shares no module state with any other
function, and the service kills it when an invocation outlives the function's timeout,
as Lambda does.

    python -m local.lambda_worker HANDLER_PATH REQUEST_FD ANSWER_FD
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def serve(handler_path: str, requests: Any, answers: Any) -> None:
    """Answer requests until the service closes the request pipe."""
    from local.lambda_api import LambdaContext, _error_record, _load_handler

    handler = None
    for line in requests:
        request = json.loads(line)
        context = LambdaContext(
            function_name=request["function_name"],
            memory_limit_in_mb=request["memory"],
            timeout_seconds=request["timeout"],
            log_group_name=request["log_group"],
            aws_request_id=request["request_id"],
            started=time.monotonic(),
        )
        try:
            if handler is None:  # imported at the first invocation: the cold start
                handler = _load_handler(handler_path)
            answer: dict[str, Any] = {"answer": handler(request["payload"], context)}
            json.dumps(answer)  # an answer that is not JSON fails here, as it would in Lambda
        except Exception as error:
            print(json.dumps(_error_record(error, with_trace=True)), flush=True)
            answer = {"error": _error_record(error)}
        sys.stdout.flush()
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def main(argv: list[str] | None = None) -> int:
    """Serve one function's invocations over the inherited pipes."""
    handler_path, request_fd, answer_fd = (argv or sys.argv[1:])[:3]
    with (
        os.fdopen(int(request_fd), "r", encoding="utf-8") as requests,
        os.fdopen(int(answer_fd), "w", encoding="utf-8") as answers,
    ):
        serve(handler_path, requests, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
