"""The whole local stack (`sslnotify local`) as a child process, for end-to-end and browser tests.

Fixtures:

    local_stack -> LocalStack (session-scoped, shared: use unique email addresses per test)
        .frontend_url  "http://127.0.0.1:P"      the website, /config.js, /outbox
        .api_url       "http://127.0.0.1:P+1"    the Chalice API
        .lambda_url, .aws_url                    the Lambda Invoke API (P+2), moto (P+3)
        .state_dir, .outbox_dir                  pathlib.Path
        .pki                                     tests.certs.TestPKI the stack trusts
        .ca_bundle                               path of that PKI's root (SSLNOTIFY_CA_BUNDLE)
        .serve(days_left=…, **leaf_options)      start a loopback TLS server with a leaf from .pki,
                                                 valid for 127.0.0.1 and localhost; returns
                                                 its TLSServer (closed with the stack)
        .trigger(job)                            run `sslnotify trigger cron|reporter|backup`,
                                                 waiting for the async work; returns stdout
        .messages()                              every saved email, oldest first (OutboxMessage)
        .wait_for_email(to=…, subject=…, timeout=20) -> OutboxMessage  (subject: a substring)
        .aws_client(service)                     boto3 client of the emulated AWS
        .table_name(key)                         e.g. "sslnotify-dev-subscriptions"
        .stop() (SIGTERM, waits), .start() (again, same state dir and ports), .output()

    local_stack_factory(state_dir=None, **environment) -> LocalStack   a private stack for one
                                                 test (stopped after it), e.g. to stop and
                                                 restart it; `environment`: extra variables

The child runs with SSLNOTIFY_ALLOW_PRIVATE_TARGETS=1 and the PKI's root as CA bundle, on
four consecutive free loopback ports; it is ready when its stack.json and website answer.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.certs import TestPKI, make_pki, pem_bundle
from tests.tls_servers import TLSServer

REPOSITORY = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
_URL = re.compile(r"https?://[^\s<>\"')\]]+")


@dataclass
class OutboxMessage:
    """One email the stack sent, read from its .eml file."""

    path: Path
    message: EmailMessage

    @property
    def to(self) -> str:
        return str(self.message.get("To", ""))

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def text(self) -> str:
        """Return the plain-text body."""
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    def links(self) -> list[str]:
        """Return every URL in the plain-text body, in order."""
        return [url.rstrip(".,;") for url in _URL.findall(self.text)]


def free_port_block(count: int = 4) -> int:
    """Return a port P such that P … P+count-1 are all free on loopback right now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65000:
            continue
        if all(_free(base + offset) for offset in range(count)):
            return base
    raise RuntimeError("no block of free ports found")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _child_environment(ca_bundle: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    # Nothing of the test process's own settings or AWS endpoints leaks into the stack.
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SSLNOTIFY_", "AWS_"))
    }
    environment.update(
        {
            "SSLNOTIFY_ALLOW_PRIVATE_TARGETS": "1",
            "SSLNOTIFY_CA_BUNDLE": ca_bundle,
            "SSLNOTIFY_CHECK_TIMEOUT": "5",
            "PYTHONUNBUFFERED": "1",
            **(extra or {}),
        }
    )
    return environment


class LocalStack:
    """A running `sslnotify local` child process and helpers to drive it."""

    def __init__(
        self,
        state_dir: Path,
        pki: TestPKI,
        ca_bundle: str,
        port: int | None = None,
        environment: dict[str, str] | None = None,
    ):
        self.environment = environment or {}  # extra variables of the stack's process
        self.state_dir = state_dir
        self.outbox_dir = state_dir / "outbox"
        self.pki = pki
        self.ca_bundle = ca_bundle
        self.port = port or free_port_block()
        self.frontend_url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"http://127.0.0.1:{self.port + 1}"
        self.lambda_url = f"http://127.0.0.1:{self.port + 2}"
        self.aws_url = f"http://127.0.0.1:{self.port + 3}"
        self.process: subprocess.Popen | None = None
        self._servers: list[TLSServer] = []
        self._log = state_dir.parent / f"{state_dir.name}-output.log"
        self.info: dict[str, Any] = {}

    def start(self) -> LocalStack:
        """Start the child and wait until it serves."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "stack.json").unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "chalicelib.cli",
            "local",
            "--port",
            str(self.port),
            "--state-dir",
            str(self.state_dir),
        ]
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPOSITORY,
                env=_child_environment(self.ca_bundle, self.environment),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, as a shell runs a job
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        stack_file = self.state_dir / "stack.json"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sslnotify local exited early:\n{self.output()}")
            if stack_file.is_file():
                info = json.loads(stack_file.read_text())
                if info.get("pid") == self.process.pid and self._answers():
                    self.info = info
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sslnotify local was not ready in {START_TIMEOUT} s:\n{self.output()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.frontend_url}/config.js", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop the child with SIGTERM (as a clean stop) and return its exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"sslnotify local ignored SIGTERM:\n{self.output()}") from None

    def close(self) -> None:
        """Stop the child and every TLS server made for it."""
        try:
            self.stop()
        finally:
            for server in self._servers:
                server.close()

    def output(self) -> str:
        """Return what the child printed so far."""
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def serve(self, days_left: int = 10, **leaf_options: Any) -> TLSServer:
        """Start a loopback TLS server whose leaf (127.0.0.1, localhost) expires in days_left."""
        leaf_options.setdefault("ips", ("127.0.0.1",))
        leaf_options.setdefault("dns", ("localhost",))
        leaf_options.setdefault("not_after", self.pki.now + timedelta(days=days_left, hours=12))
        leaf = self.pki.leaf(**leaf_options)
        server = TLSServer([leaf, self.pki.intermediate])
        self._servers.append(server)
        return server

    def trigger(self, job: str, timeout: float = 120.0) -> str:
        """Run `sslnotify trigger JOB` against this stack; return its output or fail."""
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "chalicelib.cli",
                "trigger",
                job,
                "--state-dir",
                str(self.state_dir),
            ],
            cwd=REPOSITORY,
            env=_child_environment(self.ca_bundle),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"trigger {job} exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n"
                f"stack output:\n{self.output()}"
            )
        return done.stdout

    def messages(self) -> list[OutboxMessage]:
        """Return every email saved in the outbox, oldest first."""
        if not self.outbox_dir.is_dir():
            return []
        found = []
        for path in sorted(self.outbox_dir.glob("*.eml")):
            with path.open("rb") as handle:
                parsed = email.message_from_binary_file(handle, policy=email.policy.default)
            found.append(OutboxMessage(path, parsed))
        return found

    def wait_for_email(
        self, to: str | None = None, subject: str | None = None, timeout: float = 20.0
    ) -> OutboxMessage:
        """Wait for an email to that recipient whose subject contains that text; return it."""
        deadline = time.monotonic() + timeout
        while True:
            for message in reversed(self.messages()):
                if (to is None or to in message.to) and (
                    subject is None or subject.lower() in message.subject.lower()
                ):
                    return message
            if time.monotonic() > deadline:
                seen = [(m.to, m.subject) for m in self.messages()]
                raise AssertionError(
                    f"no email to {to!r} about {subject!r} within {timeout} s; outbox: {seen}\n"
                    f"stack output:\n{self.output()}"
                )
            time.sleep(0.2)

    def aws_client(self, service: str) -> Any:
        """Return a boto3 client of the stack's emulated AWS."""
        return boto3.client(
            service,
            endpoint_url=self.aws_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def table_name(self, key: str) -> str:
        """Return the name of one of resources.json's tables in this stack."""
        return f"{self.info.get('prefix', 'sslnotify-dev')}-{key}"


@pytest.fixture(scope="session")
def local_stack_pki() -> TestPKI:
    """Return the PKI whose root every local stack of the session trusts."""
    return make_pki(name="sslnotify E2E")


@pytest.fixture(scope="session")
def local_stack_ca_bundle(local_stack_pki, tmp_path_factory) -> str:
    """Write the PKI's root to a file, the stack's SSLNOTIFY_CA_BUNDLE."""
    path = tmp_path_factory.mktemp("e2e-ca") / "root.pem"
    path.write_bytes(pem_bundle(local_stack_pki.root))
    return str(path)


@pytest.fixture(scope="session")
def local_stack(local_stack_pki, local_stack_ca_bundle, tmp_path_factory) -> Iterator[LocalStack]:
    """Run one local stack for the whole session (tests must use distinct addresses)."""
    state_dir = tmp_path_factory.mktemp("e2e-shared") / "state"
    stack = LocalStack(state_dir, local_stack_pki, local_stack_ca_bundle)
    stack.start()
    yield stack
    stack.close()


@pytest.fixture
def local_stack_factory(local_stack_pki, local_stack_ca_bundle, tmp_path):
    """Start private local stacks for one test; every one is stopped after it."""
    started: list[LocalStack] = []

    def start(state_dir: Path | None = None, **environment: str) -> LocalStack:
        stack = LocalStack(
            state_dir or tmp_path / f"state{len(started)}",
            local_stack_pki,
            local_stack_ca_bundle,
            environment=environment,
        )
        started.append(stack)
        return stack.start()

    yield start
    for stack in started:
        stack.close()
