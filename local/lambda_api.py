"""A local implementation of the Lambda Invoke API, so boto3's `lambda.invoke` works unchanged.

`POST /2015-03-31/functions/{name}/invocations` runs the function's handler from
resources.json. RequestResponse runs it on the request's thread and answers its
JSON (`X-Amz-Function-Error: Unhandled` when it raises); Event queues it to a
worker pool, answers 202, and retries a failed invocation twice, as AWS does.

With `isolated` (what `sslnotify local` runs), each invocation runs as in Lambda:
in a worker process of its function (local/lambda_worker.py), one invocation at a
time per process, the processes of a function kept warm in a pool and new ones
started when all are busy. No module state is shared between functions, and an
invocation that outlives the function's timeout is ended: its process is killed
(and replaced at the next invocation), and the caller gets "Task timed out", as
from Lambda. A worker costs a cold start (about a second) and some 60 MB.

Without it (tests and the benchmark, whose instruments must see inside the
handlers), handlers run as threads of this process; a timeout is then only
reported. Every function is deployed with the same variables (local/environment.py):
the stack puts them in os.environ once, before any handler is imported or any
worker started. What differs per function, its name and log group, reaches the
handler through the context object and a context variable (local/function_logs.py).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

from chalicelib.config import Settings, resources
from local.environment import ACCOUNT_ID, log_group
from local.function_logs import running

ASYNC_RETRIES = 2
RETRY_DELAYS = (1.0, 2.0)  # AWS waits about 1 and 2 minutes; locally seconds are enough
EVENT_PAYLOAD_LIMIT = 256 * 1024
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
WORKERS = 8

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")


@dataclass
class LambdaContext:
    """What a handler's `context` argument offers in AWS."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    log_group_name: str
    log_stream_name: str = "local"
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Return the milliseconds left before the function's timeout."""
        elapsed = time.monotonic() - self.started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


class FunctionFailed(Exception):
    """An invocation in a worker process ended in an error (its record as Lambda reports it)."""

    def __init__(self, record: dict[str, Any]):
        super().__init__(str(record.get("errorMessage", "")))
        self.error_type = str(record.get("errorType", "Exception"))


class Worker:
    """One warm container: a process running one function's handler (local/lambda_worker.py)."""

    def __init__(self, function: Function, relay: Callable[[str, str], None]):
        self.function = function
        request_read, self._request_write = os.pipe()
        self._answer_read, answer_write = os.pipe()
        root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local.lambda_worker",
                function.handler_path,
                str(request_read),
                str(answer_write),
            ],
            pass_fds=(request_read, answer_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": path, **function.environment},
            text=True,
        )
        os.close(request_read)
        os.close(answer_write)
        self._requests: IO[str] = os.fdopen(self._request_write, "w", encoding="utf-8")
        self._answers: IO[str] = os.fdopen(self._answer_read, "r", encoding="utf-8")
        self._output = threading.Thread(
            target=self._relay, args=(relay,), daemon=True, name=f"{function.key}-output"
        )
        self._output.start()

    def _relay(self, relay: Callable[[str, str], None]) -> None:
        for line in self.process.stdout:
            relay(self.function.key, line.rstrip("\n"))

    def invoke(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send one invocation; return its answer, or None when it outlived `timeout`."""
        answer: list[str] = []
        reader = threading.Thread(target=lambda: answer.append(self._answers.readline()))
        reader.daemon = True
        self._requests.write(json.dumps(request) + "\n")
        self._requests.flush()
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            return None
        if not answer or not answer[0]:
            code = self.process.wait()
            return {
                "error": {
                    "errorMessage": f"Runtime exited with error: exit status {code}",
                    "errorType": "Runtime.ExitError",
                }
            }
        return json.loads(answer[0])

    def kill(self) -> None:
        """End the process at once, as Lambda ends a container at a timeout."""
        self.process.kill()
        self.process.wait()
        self.close()

    def close(self) -> None:
        """Let the process end (its request pipe closes), then forget it."""
        for stream in (self._requests, self._answers):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class WorkerPool:
    """The warm containers of one function: reuse an idle one, start one when all are busy."""

    def __init__(self, function: Function, relay: Callable[[str, str], None]):
        self.function = function
        self._relay = relay
        self._idle: list[Worker] = []
        self._all: list[Worker] = []
        self._lock = threading.Lock()

    def acquire(self) -> Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                self._all.remove(worker)
        worker = Worker(self.function, self._relay)
        with self._lock:
            self._all.append(worker)
        return worker

    def release(self, worker: Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def discard(self, worker: Worker) -> None:
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)

    def close(self) -> None:
        with self._lock:
            workers, self._all, self._idle = list(self._all), [], []
        for worker in workers:
            worker.close()

    @property
    def size(self) -> int:
        """How many worker processes the pool holds (idle or busy)."""
        return len(self._all)


class UnknownFunction(LookupError):
    """No function of that name is deployed."""


@dataclass(frozen=True)
class Function:
    """One function of resources.json as the local Lambda service runs it."""

    key: str
    name: str
    handler_path: str
    timeout: float
    memory: int
    log_group: str
    environment: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


class LambdaService:
    """Run the functions of resources.json: blocking, or queued with retries."""

    def __init__(
        self,
        settings: Settings,
        workers: int = WORKERS,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        report: Callable[[str], None] | None = None,
        loader: Callable[[str], Callable[[Any, Any], Any]] | None = None,
        dead_letter: Callable[[Function, Any, Exception], None] | None = None,
        isolated: bool = False,
        timeouts: dict[str, float] | None = None,
    ):
        from local.environment import runtime_environment

        self.functions = {
            settings.function_name(key): Function(
                key=key,
                name=settings.function_name(key),
                handler_path=spec["handler"],
                timeout=float((timeouts or {}).get(key, spec.get("timeout", 3))),
                memory=int(spec.get("memory", 128)),
                log_group=log_group(settings, key),
                environment=runtime_environment(settings, key),
            )
            for key, spec in resources()["functions"].items()
            if key != "api"  # the API is served over HTTP, not invoked
        }
        self.isolated = isolated
        self.pools = {
            function.key: WorkerPool(function, _print_as) for function in self.functions.values()
        }
        self.retry_delays = retry_delays
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda")
        self._report = report or (lambda line: None)
        self._load = loader or _load_handler
        # Where an event goes after its last failed attempt, as Lambda's dead-letter queue.
        self._dead_letter = dead_letter
        self._in_flight = 0
        self._idle = threading.Condition()
        self._stopping = False

    def function(self, name_or_arn: str) -> Function:
        """Find a function by name, partial or full ARN (a qualifier is ignored)."""
        name = name_or_arn
        if name.startswith("arn:"):
            name = name.split(":")[6] if name.count(":") >= 6 else name
        name = name.split(":")[0]
        if name not in self.functions:
            raise UnknownFunction(name_or_arn)
        return self.functions[name]

    def run(self, function: Function, payload: Any) -> Any:
        """Run a handler once (in a worker process when isolated); its exception propagates."""
        if self.isolated:
            return self._run_isolated(function, payload)
        return self._run_here(function, payload)

    def _run_isolated(self, function: Function, payload: Any) -> Any:
        pool = self.pools[function.key]
        worker = pool.acquire()
        request_id = str(uuid.uuid4())
        request = {
            "payload": payload,
            "function_name": function.name,
            "memory": function.memory,
            "timeout": function.timeout,
            "log_group": function.log_group,
            "request_id": request_id,
        }
        with running(function.key):
            print(f"START RequestId: {request_id} Version: $LATEST")
        started = time.monotonic()
        answer = worker.invoke(request, function.timeout)
        duration = (time.monotonic() - started) * 1000
        with running(function.key):
            if answer is None:
                # Lambda ends the container; the next invocation gets a fresh one.
                pool.discard(worker)
                worker.kill()
                message = f"Task timed out after {function.timeout:.2f} seconds"
                print(json.dumps({"level": "ERROR", "message": message, "requestId": request_id}))
                self._report(f"{function.key}: {message}; its process was killed")
            print(f"END RequestId: {request_id}")
            print(f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms")
        if answer is None:
            raise FunctionFailed({"errorMessage": message, "errorType": "Sandbox.Timedout"})
        if "error" in answer:
            if not worker.alive:
                pool.discard(worker)
            else:
                pool.release(worker)
            raise FunctionFailed(answer["error"])
        pool.release(worker)
        return answer["answer"]

    def _run_here(self, function: Function, payload: Any) -> Any:
        """Run a handler once in this thread; its exception propagates."""
        context = LambdaContext(
            function_name=function.name,
            memory_limit_in_mb=function.memory,
            timeout_seconds=function.timeout,
            log_group_name=function.log_group,
        )
        with running(function.key):
            print(f"START RequestId: {context.aws_request_id} Version: $LATEST")
            started = time.monotonic()
            # A thread cannot be stopped as Lambda stops a function at its timeout; say so
            # instead, in the function's log (where the report sees it) and on the terminal.
            overrun = threading.Timer(function.timeout, self._overran, (function, context))
            overrun.daemon = True
            overrun.start()
            try:
                handler = self._load(function.handler_path)
                return handler(payload, context)
            except Exception as error:
                print(json.dumps(_error_record(error, with_trace=True)))
                raise
            finally:
                overrun.cancel()
                duration = (time.monotonic() - started) * 1000
                print(f"END RequestId: {context.aws_request_id}")
                print(f"REPORT RequestId: {context.aws_request_id}\tDuration: {duration:.2f} ms")

    def _overran(self, function: Function, context: LambdaContext) -> None:
        message = f"Task timed out after {function.timeout:.2f} seconds"
        with running(function.key):
            record = {"level": "ERROR", "message": message, "requestId": context.aws_request_id}
            print(json.dumps(record))
        self._report(f"{function.key}: {message} (AWS would have stopped it; it goes on here)")

    def invoke_sync(self, function: Function, payload: Any) -> tuple[bytes, bool]:
        """Run a handler now; return its JSON answer and whether it failed."""
        try:
            answer = self.run(function, payload)
        except Exception as error:
            return json.dumps(_error_record(error)).encode(), True
        return json.dumps(answer).encode(), False

    def invoke_async(self, function: Function, payload: Any) -> None:
        """Queue an invocation; a failure is retried twice, after RETRY_DELAYS."""
        with self._idle:
            self._in_flight += 1
        try:
            self._pool.submit(self._attempt, function, payload, 0)
        except RuntimeError:  # the pool is shut down: the stack is stopping
            self._done()
            raise

    def _attempt(self, function: Function, payload: Any, attempt: int) -> None:
        try:
            self.run(function, payload)
        except Exception as error:
            if attempt < ASYNC_RETRIES and not self._stopping:
                delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                self._report(
                    f"{function.key} failed ({type(error).__name__}); retry {attempt + 1} "
                    f"of {ASYNC_RETRIES} in {delay:g} s"
                )
                timer = threading.Timer(delay, self._retry, (function, payload, attempt + 1))
                timer.daemon = True
                timer.start()
                return
            self._give_up(function, payload, error, attempt + 1)
        self._done()

    def _give_up(self, function: Function, payload: Any, error: Exception, attempts: int) -> None:
        if self._dead_letter is None:
            self._report(f"{function.key} failed after {attempts} attempts; dropped")
            return
        try:
            self._dead_letter(function, payload, error)
        except Exception as failure:  # the queue is gone: say so, as nothing else will
            self._report(f"{function.key} failed after {attempts} attempts; lost: {failure}")
            return
        self._report(
            f"{function.key} failed after {attempts} attempts; kept in the dead-letter queue "
            "(sslnotify trigger redrive replays it)"
        )

    def _retry(self, function: Function, payload: Any, attempt: int) -> None:
        try:
            self._pool.submit(self._attempt, function, payload, attempt)
        except RuntimeError:  # the pool is shut down: the stack is stopping
            self._done()

    def _done(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no asynchronous invocation is queued, running or awaiting a retry."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    @property
    def in_flight(self) -> int:
        """How many asynchronous invocations are not finished."""
        return self._in_flight

    def stop(self, timeout: float = 5.0) -> None:
        """Let queued and running invocations finish (up to timeout), then drop the rest."""
        with self._idle:
            self._stopping = True
        self.wait_idle(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for pool in self.pools.values():
            pool.close()


def _print_as(function_key: str, line: str) -> None:
    """Print a worker's output line as its function's (the stack ships it to the log group)."""
    with running(function_key):
        print(line)


class HandlerNotLoadable(Exception):
    """The handler's module cannot be imported or has no such function (as Lambda reports it)."""

    def __init__(self, message: str, error_type: str):
        super().__init__(message)
        self.error_type = error_type


def _load_handler(path: str) -> Callable[[Any, Any], Any]:
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise HandlerNotLoadable(
            f"Unable to import module '{module_name}': {error}", "Runtime.ImportModuleError"
        ) from error
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise HandlerNotLoadable(
            f"Handler '{attribute}' missing on module '{module_name}'", "Runtime.HandlerNotFound"
        )
    return handler


def _error_record(error: BaseException, with_trace: bool = False) -> dict[str, Any]:
    record: dict[str, Any] = {
        "level": "ERROR",
        "message": "Unhandled exception",
        "errorMessage": str(error),
        "errorType": getattr(error, "error_type", type(error).__name__),
    }
    if with_trace:
        record["stackTrace"] = traceback.format_exception(error)
    else:
        record["stackTrace"] = []
    return record


class LambdaRequestHandler(BaseHTTPRequestHandler):
    """Answer Invoke requests as the Lambda service does (the parts boto3 relies on)."""

    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per answer

    protocol_version = "HTTP/1.1"
    server: LambdaServer

    def do_POST(self) -> None:
        match = _INVOKE_PATH.match(self.path.split("?")[0])
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not match:
            self._error(404, "UnknownOperationException", f"no such operation: {self.path}")
            return
        service = self.server.service
        try:
            function = service.function(unquote(match["name"]))
        except UnknownFunction:
            name = unquote(match["name"])
            arn = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{name}"
            self._error(404, "ResourceNotFoundException", f"Function not found: {arn}")
            return
        kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        limit = EVENT_PAYLOAD_LIMIT if kind == "Event" else SYNC_PAYLOAD_LIMIT
        if len(body) > limit:
            self._error(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
            )
            return
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            self._error(400, "InvalidRequestContentException", "Could not parse request body")
            return
        if kind == "DryRun":
            self._send(204, b"", {})
        elif kind == "Event":
            try:
                service.invoke_async(function, payload)
            except RuntimeError as error:
                self._error(503, "ServiceException", str(error))
                return
            self._send(202, b"", {})
        elif kind == "RequestResponse":
            answer, failed = service.invoke_sync(function, payload)
            headers = {"X-Amz-Executed-Version": "$LATEST"}
            if failed:
                headers["X-Amz-Function-Error"] = "Unhandled"
            self._send(200, answer, headers)
        else:
            self._error(400, "InvalidParameterValueException", f"bad invocation type {kind!r}")

    def do_GET(self) -> None:
        # Not part of AWS: `sslnotify trigger` and tests wait here until async work is done.
        if self.path.startswith("/_local/idle"):
            timeout = 120.0
            if "timeout=" in self.path:
                timeout = float(self.path.split("timeout=")[1].split("&")[0])
            idle = self.server.service.wait_idle(timeout)
            answer = {"idle": idle, "inFlight": self.server.service.in_flight}
            self._send(200 if idle else 504, json.dumps(answer).encode(), {})
        else:
            self._error(404, "UnknownOperationException", f"no such operation: {self.path}")

    def _error(self, status: int, kind: str, message: str) -> None:
        body = json.dumps({"Type": "User", "message": message}).encode()
        self._send(status, body, {"X-Amzn-ErrorType": kind})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Amzn-RequestId", str(uuid.uuid4()))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the terminal is for URLs, emails and errors."""


class LambdaServer(ThreadingHTTPServer):
    """The HTTP server of the local Lambda API."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: LambdaService):
        super().__init__(address, LambdaRequestHandler)
        self.service = service
        self.url = f"http://{address[0]}:{self.server_port}"
