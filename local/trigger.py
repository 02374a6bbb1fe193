"""`sslnotify trigger cron|reporter|backup|redrive`: run a scheduled job now, locally or in AWS.

Locally the job is invoked through the running stack's Lambda API (found from
<state-dir>/stack.json, or at frontend port + 2), blocking, and then the command
waits until the asynchronous work it started (checkers, mailer) is finished.
With `--stage NAME` it invokes `sslnotify-<stage>-<function>` in AWS with the
caller's credentials (`--prefix P` for `P-<function>`, Terraform's var.prefix).

`redrive` replays the dead-letter queue: each failed event is invoked again,
asynchronously, on its function, and deleted from the queue once invoked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from chalicelib import dead_letters
from chalicelib.config import resources
from chalicelib.errors import SslnotifyError, UsageError
from local import redrive
from local.stack import DEFAULT_PORT, DEFAULT_STATE_DIR, OFFSETS, STACK_FILE

# Job name → the function whose schedule it is (its payload is resources.json's).
JOBS = {"cron": "cron", "reporter": "reporter", "backup": "data"}
REDRIVE = "redrive"
IDLE_TIMEOUT = 300.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `sslnotify trigger`."""
    parser.add_argument(
        "job",
        choices=[*sorted(JOBS), REDRIVE],
        help="the scheduled job to run now, or redrive: replay the dead-letter queue",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="the local stack's frontend port (default: from the state dir, else 8000 "
        "or SSLNOTIFY_PORT)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("SSLNOTIFY_STATE_DIR") or DEFAULT_STATE_DIR),
        help="the local stack's state directory (default .sslnotify or SSLNOTIFY_STATE_DIR)",
    )
    parser.add_argument("--stage", help="invoke the job in AWS: function sslnotify-<STAGE>-<fn>")
    parser.add_argument(
        "--prefix", help="invoke the job in AWS: function <PREFIX>-<fn> (Terraform's var.prefix)"
    )
    parser.add_argument("--region", help="AWS region with --stage (default: your AWS config)")
    parser.add_argument(
        "--no-wait", action="store_true", help="locally, do not wait for the async work it started"
    )


def run(args: argparse.Namespace) -> int:
    """Invoke the job's function and print its answer; 0 when it succeeded."""
    if args.job == REDRIVE:
        return _redrive(args)
    function = JOBS[args.job]
    payload = resources()["functions"][function]["schedule_payload"]
    if args.stage or args.prefix:
        if args.stage and args.prefix:
            raise UsageError("give --stage or --prefix, not both")
        prefix = args.prefix or f"sslnotify-{args.stage}"
        name = f"{prefix}-{function}"
        client = boto3.client(
            "lambda",
            region_name=args.region,
            config=Config(read_timeout=900, retries={"mode": "standard"}),
        )
        return _invoke(client, name, payload, "AWS")
    stack = _find_stack(args)
    client = boto3.client(
        "lambda",
        endpoint_url=stack["urls"]["lambda"],
        region_name=stack.get("region", "us-east-1"),
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the local Lambda API checks no signature
        config=Config(read_timeout=900, retries={"max_attempts": 1}),
    )
    status = _invoke(client, f"{stack['prefix']}-{function}", payload, "the local stack")
    if status == 0 and not args.no_wait:
        _wait_idle(stack["urls"]["lambda"])
    return status


def _redrive(args: argparse.Namespace) -> int:
    """Replay the dead-letter queue of AWS or of the local stack; 0 when all were replayed."""
    if args.stage or args.prefix:
        if args.stage and args.prefix:
            raise UsageError("give --stage or --prefix, not both")
        prefix = args.prefix or f"sslnotify-{args.stage}"
        config = Config(retries={"mode": "standard"})
        sqs = boto3.client("sqs", region_name=args.region, config=config)
        lambda_client = boto3.client("lambda", region_name=args.region, config=config)
        stack = None
    else:
        stack = _find_stack(args)
        prefix = stack["prefix"]
        local = {
            "region_name": stack.get("region", "us-east-1"),
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
        sqs = boto3.client("sqs", endpoint_url=stack["urls"]["aws"], **local)
        lambda_client = boto3.client("lambda", endpoint_url=stack["urls"]["lambda"], **local)

    def invoke_async(function: str, event: Any) -> None:
        lambda_client.invoke(
            FunctionName=f"{prefix}-{function}",
            InvocationType="Event",
            Payload=json.dumps(event).encode(),
        )

    try:
        url = dead_letters.queue_url(sqs, prefix)
        if url is None:
            raise SslnotifyError(f"there is no queue {dead_letters.queue_name(prefix)}")
        outcome = redrive.redrive(sqs, url, redrive.function_for_event(), invoke_async)
    except EndpointConnectionError as error:
        raise SslnotifyError(
            f"nothing answers at {error.kwargs.get('endpoint_url')}: is `sslnotify local` running?"
        ) from error
    except (BotoCoreError, ClientError) as error:
        raise SslnotifyError(f"could not replay the dead-letter queue: {error}") from error
    print(json.dumps({"replayed": outcome.replayed, "unknown": outcome.unknown}))
    if outcome.unknown:
        print(
            f"{outcome.unknown} event(s) name no known function and stay in the queue",
            file=sys.stderr,
        )
    if stack is not None and outcome.total and not args.no_wait:
        _wait_idle(stack["urls"]["lambda"])
    return 1 if outcome.unknown else 0


def _invoke(client: Any, name: str, payload: dict[str, Any], where: str) -> int:
    try:
        answer = client.invoke(
            FunctionName=name,
            InvocationType="RequestResponse",
            Payload=json.dumps(payload).encode(),
        )
    except EndpointConnectionError as error:
        raise SslnotifyError(
            f"nothing answers at {error.kwargs.get('endpoint_url')}: is `sslnotify local` "
            "running (make run)? Give its --port or --state-dir"
        ) from error
    except (BotoCoreError, ClientError) as error:
        raise SslnotifyError(f"could not invoke {name} on {where}: {error}") from error
    body = answer["Payload"].read().decode() or "null"
    print(body)
    decoded = json.loads(body)
    failed = answer.get("FunctionError") or (
        isinstance(decoded, dict) and "errorMessage" in decoded
    )
    return 1 if failed else 0


def _find_stack(args: argparse.Namespace) -> dict[str, Any]:
    """Return the running stack's description: its stack.json, or the default port layout."""
    stack_file = Path(args.state_dir) / STACK_FILE
    if stack_file.is_file():
        info = json.loads(stack_file.read_text())
        if args.port is None or info["ports"]["frontend"] == args.port:
            return info
    port = args.port or int(os.environ.get("SSLNOTIFY_PORT") or DEFAULT_PORT)
    if not 1 <= port <= 65535 - len(OFFSETS):
        raise UsageError(f"--port must be between 1 and {65535 - len(OFFSETS)}")
    return {
        "urls": {
            "lambda": f"http://127.0.0.1:{port + OFFSETS['lambda']}",
            "aws": f"http://127.0.0.1:{port + OFFSETS['aws']}",
        },
        "prefix": os.environ.get("SSLNOTIFY_PREFIX", "sslnotify-dev"),
        "region": "us-east-1",
    }


def _wait_idle(lambda_url: str) -> None:
    url = f"{lambda_url}/_local/idle?timeout={IDLE_TIMEOUT:g}"
    try:
        with urllib.request.urlopen(url, timeout=IDLE_TIMEOUT + 10) as answer:  # noqa: S310
            json.load(answer)
    except urllib.error.HTTPError as error:
        print("the asynchronous work it started is still running", file=sys.stderr)
        raise SslnotifyError("timed out waiting for the local stack to finish the job") from error
    except OSError as error:
        raise SslnotifyError(f"lost the local stack while waiting: {error}") from error
