"""`sslnotify local`: run the whole service on this machine over emulated AWS.

One process, one thread per server: the frontend (port P), the Chalice API
(P+1) and the Lambda Invoke API (P+2) whose worker threads run the functions; plus
threads that save state every 10 s, ship function logs and fire the schedules.
Emulated AWS (moto, P+3) and the outbox of sent mail run in a child process
(local/aws_process.py), so that AWS's work and the functions' use two cores.
SIGINT/SIGTERM stop it cleanly.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chalicelib import aws
from chalicelib.config import Settings, reset_settings, resources
from chalicelib.errors import UsageError
from local.environment import ACCOUNT_ID, function_environment, local_aws_environment, log_group

HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_STATE_DIR = ".sslnotify"
STACK_FILE = "stack.json"
OFFSETS = {"frontend": 0, "api": 1, "lambda": 2, "aws": 3}
LOCAL_SES_QUOTA = 14.0  # emails a second, a new SES production account's rate


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `sslnotify local`."""
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("SSLNOTIFY_PORT") or DEFAULT_PORT),
        help="frontend port; the API is on port+1, the Lambda API port+2, emulated AWS port+3 "
        "(default 8000, or SSLNOTIFY_PORT)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("SSLNOTIFY_STATE_DIR") or DEFAULT_STATE_DIR),
        help="where data, the outbox and the secret are kept (default .sslnotify, "
        "or SSLNOTIFY_STATE_DIR)",
    )
    parser.add_argument(
        "--allow-private-targets",
        action="store_true",
        default=_flag(os.environ.get("SSLNOTIFY_ALLOW_PRIVATE_TARGETS")),
        help="let the checker probe loopback and private addresses "
        "(or SSLNOTIFY_ALLOW_PRIVATE_TARGETS=1)",
    )
    parser.add_argument(
        "--ca-bundle",
        type=Path,
        default=os.environ.get("SSLNOTIFY_CA_BUNDLE") or None,
        help="extra trusted root certificates for the checker (or SSLNOTIFY_CA_BUNDLE)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="echo every function log line, not only warnings"
    )


def run(args: argparse.Namespace) -> int:
    """Start everything, print the URLs, and run until SIGINT or SIGTERM."""
    if not 1 <= args.port <= 65535 - len(OFFSETS):
        raise UsageError(f"--port must be between 1 and {65535 - len(OFFSETS)}")
    if args.ca_bundle is not None and not Path(args.ca_bundle).is_file():
        raise UsageError(f"--ca-bundle: no such file: {args.ca_bundle}")
    console = Console(sys.stdout)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stack = LocalStack(args, console)
    try:
        stack.start()
    except PortBusy as error:
        stack.stop(save=False)
        console.line(f"sslnotify local: {error}")
        return 1
    except Exception as error:
        stack.stop(save=False)
        console.line(f"sslnotify local: could not start: {type(error).__name__}: {error}")
        if os.environ.get("SSLNOTIFY_DEBUG"):
            raise
        return 1
    try:
        while not stop.wait(0.5):
            pass
    finally:
        # A second Ctrl-C while stopping gives up on the clean stop.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        console.line("stopping…")
        stack.stop(save=True)
        console.line(f"stopped; state saved in {stack.state_dir}")
    return 0


class PortBusy(Exception):
    """A port the stack needs is taken."""


class Console:
    """The terminal, kept apart from function output (which goes to log groups)."""

    def __init__(self, stream: Any):
        self._stream = stream
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        """Print one line."""
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()


def load_secret(state_dir: Path) -> str:
    """Return the local deployment secret, generating it (mode 600) on first start."""
    path = state_dir / "secret"
    if path.is_file():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    return value


def local_settings(args: argparse.Namespace, secret: str) -> Settings:
    """Return the settings of the local deployment: loopback URLs and the local secret."""
    site_url = f"http://{HOST}:{args.port}"
    deployed = Settings.from_env(os.environ)
    return Settings.from_env(
        os.environ,
        # As in AWS, mail goes out through a configuration set (provisioning creates it).
        ses_configuration_set=deployed.ses_configuration_set or f"{deployed.prefix}-mail",
        secret=secret,
        site_url=site_url,
        api_url=f"http://{HOST}:{args.port + OFFSETS['api']}",
        cors_origin=site_url,
        allow_private_targets=bool(args.allow_private_targets),
        ca_bundle=str(Path(args.ca_bundle).resolve()) if args.ca_bundle else None,
    )


class LocalStack:
    """Every part of the local service, started and stopped in order."""

    def __init__(self, args: argparse.Namespace, console: Console):
        self.args = args
        self.console = console
        self.state_dir = Path(args.state_dir).resolve()
        self.ports = {name: args.port + offset for name, offset in OFFSETS.items()}
        self._stoppers: list[Callable[[], None]] = []
        self._saver: Any = None
        self._terminal = (sys.stdout, sys.stderr)
        self._wrote_stack_file = False
        self._service: Any = None
        self.aws_pid: int | None = None

    def start(self) -> None:
        """Bind every port, bring up emulated AWS with the saved state, then serve."""
        started = time.monotonic()
        self._check_ports()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.settings = local_settings(self.args, load_secret(self.state_dir))
        urls = {name: f"http://{HOST}:{port}" for name, port in self.ports.items()}
        self._apply_environment(urls)

        from local.aws_process import EmulatorProcess
        from local.emulator import PeriodicSaver, StateStore

        emulator = self._bind(
            "aws",
            lambda: EmulatorProcess(
                self.ports["aws"],
                HOST,
                outbox=self.state_dir / "outbox",
                region=self.settings.region,
                bounces_function=self.settings.function_name("bounces"),
                bounces_topic=(
                    f"arn:aws:sns:{self.settings.region}:{ACCOUNT_ID}:"
                    f"{self.settings.prefix}-bounces"
                ),
                announce=self.console.line,
                # Emulated SES refuses what the account's rate would refuse.
                ses_rate=self.settings.ses_send_rate or LOCAL_SES_QUOTA,
            ),
        )
        self.aws_pid = emulator.pid
        self._stoppers.append(emulator.stop)
        self._route_output()

        from local.provision import provision

        _warm_clients()
        provision(self.settings)
        store = StateStore(self.settings, self.state_dir / "data")
        restored = store.restore()
        self._saver = PeriodicSaver(store, on_error=self._save_failed)
        self._saver.start()

        # Started in this order so that stopping in reverse lets the functions finish their
        # work before the log shipper stops; emulated AWS (and its outbox) stops last.
        service = self._start_lambda()
        self._start_api()
        self._start_frontend()
        self._start_scheduler(service)
        self._write_stack_file(urls)
        self._announce(urls, restored, time.monotonic() - started)

    def _apply_environment(self, urls: dict[str, str]) -> None:
        # Set once, before any function is imported; identical for every function.
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            os.environ.pop(name, None)
        os.environ.update(function_environment(self.settings))
        os.environ.update(local_aws_environment(self.settings.region, urls["aws"], urls["lambda"]))
        reset_settings()
        aws.reset_clients()

    def _route_output(self) -> None:
        from local import function_logs

        groups = {key: log_group(self.settings, key) for key in resources()["functions"]}
        shipper = function_logs.LogShipper(
            groups, echo=self._echo, echo_all=bool(getattr(self.args, "verbose", False))
        )
        shipper.start()
        self._stoppers.append(shipper.stop)
        sys.stdout = function_logs.RoutedStream(self._terminal[0], shipper)
        sys.stderr = function_logs.RoutedStream(self._terminal[1], shipper)
        from chalicelib import logs

        logs.setup(stream=sys.stdout)

    def _start_lambda(self) -> Any:
        from local.lambda_api import LambdaServer, LambdaService

        # Each invocation in a worker process of its function, timeouts enforced, as in
        # Lambda; `in_process` (the benchmark, whose instruments look inside the handlers)
        # runs them as threads here instead.
        service = LambdaService(
            self.settings,
            report=lambda text: self.console.line(text),
            isolated=not getattr(self.args, "in_process", False),
            timeouts=_timeouts(os.environ.get("SSLNOTIFY_LOCAL_TIMEOUTS", "")),
            dead_letter=self._send_dead_letter,
        )
        self._service = service
        server = self._bind("lambda", lambda: LambdaServer((HOST, self.ports["lambda"]), service))
        self._serve(server, "lambda-api")
        self._stoppers.append(service.stop)
        return service

    def _send_dead_letter(self, function: Any, payload: Any, error: Exception) -> None:
        """Keep a failed event in the emulated dead-letter queue, as Lambda does in AWS."""
        from chalicelib import dead_letters

        sqs = aws.client("sqs")
        sqs.send_message(
            QueueUrl=dead_letters.queue_url(sqs, self.settings.prefix),
            MessageBody=json.dumps(payload),
            MessageAttributes=dead_letters.dead_letter_attributes(str(uuid.uuid4()), error),
        )

    def _start_api(self) -> None:
        from local.api_server import create_api_server

        server, problem = self._bind(
            "api", lambda: create_api_server(self.settings, HOST, self.ports["api"])
        )
        if problem:
            self.console.line(f"warning: the API answers 503: {problem}")
        self._serve(server, "api")

    def _start_frontend(self) -> None:
        from local.frontend_server import FRONTEND, FrontendServer, Site

        try:
            site: Any = Site(self.state_dir, warn=self.console.line)
        except Exception as error:  # a half-edited page must not keep the service down
            site = FRONTEND
            self.console.line(
                f"warning: the website could not be built ({error}); serving frontend/"
            )
        server = self._bind(
            "frontend",
            lambda: FrontendServer(
                (HOST, self.ports["frontend"]),
                site=site,
                api_url=self.settings.api_url,
                outbox=self.state_dir / "outbox",
            ),
        )
        self._serve(server, "frontend")

    def _start_scheduler(self, service: Any) -> None:
        from local.scheduler import Scheduler, jobs_from

        def fire(key: str, payload: dict[str, Any]) -> None:
            self.console.line(f"schedule: {key} {json.dumps(payload)}")
            service.invoke_async(service.function(self.settings.function_name(key)), payload)

        scheduler = Scheduler(jobs_from(resources()["functions"]), fire)
        scheduler.start()
        self._stoppers.append(scheduler.stop)

    def _check_ports(self) -> None:
        # Fail in one line before the slow part when a port is taken (binding again later
        # still catches a port taken in between).
        for name in OFFSETS:
            self._bind(name, lambda name=name: _probe_port(self.ports[name]))

    def _bind(self, name: str, factory: Callable[[], Any]) -> Any:
        try:
            return factory()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortBusy(
                    f"port {self.ports[name]} ({name}) is already in use; is another "
                    f"`sslnotify local` running? Choose other ports with --port"
                ) from error
            raise

    def _serve(self, server: Any, name: str) -> None:
        # A short poll interval: shutdown() waits up to one interval per server.
        thread = threading.Thread(target=server.serve_forever, args=(0.1,), name=name, daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()

        self._stoppers.append(stop)

    def _write_stack_file(self, urls: dict[str, str]) -> None:
        info = {
            "pid": os.getpid(),
            "ports": self.ports,
            "urls": {**urls, "outbox": f"{urls['frontend']}/outbox"},
            "prefix": self.settings.prefix,
            "region": self.settings.region,
            "outbox_dir": str(self.state_dir / "outbox"),
        }
        (self.state_dir / STACK_FILE).write_text(json.dumps(info, indent=2) + "\n")
        self._wrote_stack_file = True

    def _announce(self, urls: dict[str, str], restored: dict[str, int], took: float) -> None:
        line = self.console.line
        line(f"sslnotify is running locally (state in {self.state_dir}):")
        line(f"  website     {urls['frontend']}/")
        line(f"  outbox      {urls['frontend']}/outbox")
        line(f"  API         {urls['api']}/")
        line(f"  Lambda API  {urls['lambda']}/   emulated AWS  {urls['aws']}/")
        if restored["items"] or restored["objects"]:
            line(f"restored {restored['items']} items and {restored['objects']} objects")
        if self.settings.allow_private_targets:
            line("private targets are allowed (loopback and internal addresses can be checked)")
        line(f"ready in {took:.1f} s; run a job now with `sslnotify trigger cron`; Ctrl-C stops")

    def _echo(self, function_key: str, text: str) -> None:
        self.console.line(f"[{function_key}] {_readable(text)[:400]}")

    def _save_failed(self, error: Exception) -> None:
        self.console.line(f"warning: could not save state: {type(error).__name__}: {error}")

    def stop(self, save: bool) -> None:
        """Stop every part in reverse order, saving the state once more when asked."""
        stoppers, self._stoppers = self._stoppers, []
        emulator_stop = stoppers.pop(0) if stoppers else None
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception as error:  # stop the rest regardless
                self.console.line(f"warning: while stopping: {type(error).__name__}: {error}")
        if self._saver is not None:
            self._saver.stop(save=save)
        if emulator_stop:
            emulator_stop()
        sys.stdout, sys.stderr = self._terminal
        if self._wrote_stack_file:
            (self.state_dir / STACK_FILE).unlink(missing_ok=True)


def _probe_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((HOST, port))


def _warm_clients() -> None:
    # Functions run as threads sharing chalicelib.aws's one boto3 session, and creating
    # clients from one session in several threads at once is not safe: create them all now.
    for service in ("dynamodb", "s3", "ses", "logs", "lambda"):
        aws.client(service)
    for key in resources()["tables"]:
        aws.table(key)


def _readable(line: str) -> str:
    # Functions log JSON lines; the terminal shows them as "LEVEL message key=value …".
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict) or "message" not in entry:
        return line
    fields = " ".join(
        f"{key}={value}"
        for key, value in entry.items()
        if key not in {"level", "logger", "message", "exception", "stackTrace"}
    )
    return f"{entry.get('level', '')} {entry['message']} {fields}".strip()


def _timeouts(text: str) -> dict[str, float]:
    """Read function timeouts that override resources.json locally: "mailer=5,checker=30".

    For trying a timeout by hand, and for the test that kills a mailer at its timeout.
    """
    found = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        key, _, seconds = part.partition("=")
        found[key.strip()] = float(seconds)
    return found
