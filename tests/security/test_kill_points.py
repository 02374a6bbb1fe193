"""Crash at any instant, lose nothing: every function killed at every step boundary.

A small daily sweep runs once clean, counting each function's step boundaries: the
start and the end of each invocation, before and after each DynamoDB write, each SES
send and each Lambda invoke. Then, for each function and each of its boundaries, the
sweep runs again from the same start and the function is killed there once (a
BaseException, so no `except` of the code under test runs, as when Lambda stops a
function at its timeout). After AWS's retries (two for an asynchronous invocation,
a minute and two apart; a blocking caller sees the error and retries what is safe)
and the next scheduled run, every due alert has been delivered, at most one twice,
nothing is left in the dead-letter queue, and no claim is left unconfirmed.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

import lambdas.checker as checker_function
from chalicelib import aws, mailer
from chalicelib.config import get_settings, reset_settings
from chalicelib.invoke import invoke
from chalicelib.privacy import AddressVault
from tests.certs import make_pki, pem_bundle
from tests.security.conftest import record_figure, sent_messages, table_items
from tests.tls_servers import TLSServer

FUNCTIONS = ("cron", "checker", "mailer", "data")
DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "batch_write_item")
EXPIRING, FINE = 2, 1
SUBSCRIBERS_PER_TARGET = 2


class Killed(BaseException):
    """The Lambda runtime stopping a function: nothing of the function runs after it."""


@dataclass
class KillSwitch:
    """Count each function's step boundaries; kill the function at its n-th, once."""

    victim: str | None = None
    at: int = 0
    counts: Counter = field(default_factory=Counter)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (function, boundary) in order
    killed: list[str] = field(default_factory=list)
    top: str | None = None  # the function the Lambda service runs at the outermost level
    _local: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self) -> str | None:
        """Return the function running in this thread (a pool thread of cron: cron)."""
        stack = getattr(self._local, "stack", None)
        return stack[-1] if stack else self.top

    def enter(self, function: str) -> None:
        stack = self._local.__dict__.setdefault("stack", [])
        if not stack and threading.current_thread() is threading.main_thread():
            self.top = function
        stack.append(function)

    def leave(self) -> None:
        self._local.stack.pop()

    def boundary(self, what: str) -> None:
        """Pass one step boundary of the running function; die here if it is the chosen one."""
        function = self.current()
        if function is None:
            return
        key = function.split(":")[0]
        with self._lock:
            self.counts[key] += 1
            self.seen.append((key, f"{function} {what}"))
            strike = key == self.victim and self.counts[key] == self.at and not self.killed
            if strike:
                self.killed.append(f"{function} {what}")
        if strike:
            raise Killed(what)


def _due_world(pki, servers):
    """Write the subscriptions; return the addresses whose alert is due today."""
    settings = get_settings()
    vault = AddressVault(settings.require_secret())
    due = set()
    with aws.table("subscriptions").batch_writer() as writer:
        for index, server in enumerate(servers):
            for watcher in range(SUBSCRIBERS_PER_TARGET):
                address = f"s{index}-{watcher}@example.org"
                writer.put_item(
                    Item={
                        "subscriber": vault.pseudonym(address),
                        "target": server.address,
                        "address": vault.seal(address),
                        "tolerance": "30",
                        "token": f"unsubscribe-token-{index}-{watcher}-xxxxxxxxxxxx",
                        "created_at": "2026-11-01T00:00:00Z",
                        "confirmed_at": "2026-11-01T00:00:00Z",
                    }
                )
                if index < EXPIRING:
                    due.add(address)
    return due


@pytest.fixture(scope="module")
def servers():
    """Loopback TLS servers: EXPIRING certificates expiring in 5 days, FINE in 120."""
    pki = make_pki(name="sslnotify Kill Test")
    now = datetime.now(UTC).replace(microsecond=0)
    made = []
    for index in range(EXPIRING + FINE):
        days = 5 if index < EXPIRING else 120
        leaf = pki.leaf(now=now, not_after=now + timedelta(days=days), ips=["127.0.0.1"])
        made.append(TLSServer([leaf, pki.intermediate]))
    yield pki, made
    for server in made:
        server.close()


@pytest.fixture
def sweep(lambdas, monkeypatch, tmp_path, servers, atomic_dynamodb):
    """Return a function that runs one day's sweep, killing `victim` at its `at`-th boundary."""
    pki, made = servers
    bundle = tmp_path / "root.pem"
    bundle.write_bytes(pem_bundle(pki.root))
    monkeypatch.setenv("SSLNOTIFY_ALLOW_PRIVATE_TARGETS", "1")
    monkeypatch.setenv("SSLNOTIFY_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("SSLNOTIFY_CHECK_TIMEOUT", "5")
    monkeypatch.setenv("SSLNOTIFY_SES_RATE", "100000")
    monkeypatch.setenv("SSLNOTIFY_CHECKER_BATCH", "2")  # two checkers
    monkeypatch.setattr(checker_function, "MAILER_BATCH", 2)  # several mailer batches each
    # An email held by another attempt is waited for in real seconds; the retries here come
    # "a minute later" on the claims' clock at once, so waiting would only slow a failure.
    monkeypatch.setattr(mailer, "HOLD_WAIT_SECONDS", 0.5)
    reset_settings()
    switch = KillSwitch()
    _wire(monkeypatch, lambdas, switch)
    day = datetime.now(UTC).date().isoformat()

    def run(victim: str | None, at: int) -> dict:
        switch.victim, switch.top = None, None
        _wipe()
        due = _due_world(pki, made)
        switch.victim, switch.at = victim, at
        switch.counts.clear()
        switch.seen.clear()
        switch.killed.clear()
        lambdas.failures.clear()
        lambdas.elapsed = 0.0
        invoke("cron", {"action": "sweep", "day": day})  # EventBridge's event
        lambdas.drain()
        dead = [(key, type(error).__name__) for key, _, error in lambdas.failures]
        seen, killed = list(switch.seen), list(switch.killed)
        # The next scheduled run: the same day's sweep started again (a DLQ redrive or a
        # manual trigger does the same); it must send nothing more.
        switch.victim, switch.top = None, None
        before = len(sent_messages())
        invoke("cron", {"action": "sweep", "day": day})
        lambdas.drain()
        alerts = Counter(_recipients())
        leases = [
            item
            for item in table_items("checkstate")
            if any(name in item for name in ("alert_lease", "fixed_lease"))
        ]
        return {
            "due": due,
            "alerts": alerts,
            "dead": dead,
            "rerun_sent": len(sent_messages()) - before,
            "leases": leases,
            "killed": killed,
            "seen": seen,
        }

    return run


def _wipe() -> None:
    from moto.ses.models import ses_backends

    for key in ("subscriptions", "checkstate", "ratelimits"):
        spec_keys = {"ratelimits": ("key",)}.get(key, ("subscriber", "target"))
        with aws.table(key).batch_writer() as writer:
            for item in table_items(key):
                writer.delete_item(Key={name: item[name] for name in spec_keys})
    ses_backends["123456789012"]["us-east-1"].sent_messages.clear()


def _recipients() -> list[str]:
    found = []
    for message in sent_messages():
        parsed = email.message_from_string(message.raw_data, policy=email.policy.default)
        if "alert" in str(parsed["Subject"]).lower():
            found.append(str(parsed["To"]))
    return found


def _wire(monkeypatch, fake, switch: KillSwitch) -> None:
    """Put a boundary around every step: invocations, invokes, DynamoDB writes, SES sends."""
    real_handler = fake._handler

    def handler_for(function_name: str):
        key, handler = real_handler(function_name)

        def killable(event, context, __key=key, __handler=handler):
            action = event.get("action") if isinstance(event, dict) else None
            switch.enter(f"{__key}:{action}" if __key == "data" else __key)
            try:
                switch.boundary("start")
                answer = __handler(event, context)
                switch.boundary("end")
                return answer
            except Killed:
                # What AWS reports for a function stopped at its timeout.
                raise RuntimeError("Task timed out after 300.00 seconds") from None
            finally:
                switch.leave()

        return key, killable

    monkeypatch.setattr(fake, "_handler", handler_for)

    real_invoke = fake.invoke

    def invoke_with_boundaries(FunctionName, InvocationType, Payload):
        action = json.loads(Payload).get("action")
        function = FunctionName.rpartition("-")[2]
        switch.boundary(f"before invoke {function}.{action}")
        answer = real_invoke(FunctionName, InvocationType, Payload)
        switch.boundary(f"after invoke {function}.{action}")
        return answer

    monkeypatch.setattr(fake, "invoke", invoke_with_boundaries)

    from moto.dynamodb.responses import DynamoHandler

    for name in DYNAMODB_WRITES:
        original = getattr(DynamoHandler, name)

        def write(self, __original=original, __name=name):
            body = self.body if isinstance(self.body, dict) else json.loads(self.body)
            table = str(body.get("TableName", "")).rpartition("-")[2]
            switch.boundary(f"before {__name} {table}")
            answer = __original(self)
            switch.boundary(f"after {__name} {table}")
            return answer

        monkeypatch.setattr(DynamoHandler, name, write)

    ses = aws.client("ses")
    real_send = ses.send_raw_email

    def send_raw_email(**arguments):
        switch.boundary("before SES send")
        answer = real_send(**arguments)
        switch.boundary("after SES send")
        return answer

    monkeypatch.setattr(ses, "send_raw_email", send_raw_email)


def _judge(outcome: dict) -> str | None:
    """Return what went wrong in one run, or None."""
    alerts, due = outcome["alerts"], outcome["due"]
    missing = sorted(due - set(alerts))
    unexpected = sorted(set(alerts) - due)
    duplicates = sum(alerts.values()) - len(set(alerts))
    problems = []
    if missing:
        problems.append(f"{len(missing)} due alert(s) lost")
    if unexpected:
        problems.append(f"alerts to {unexpected}")
    if duplicates > 1:
        problems.append(f"{duplicates} duplicate emails for one kill")
    if outcome["dead"]:
        problems.append(f"left in the dead-letter queue: {outcome['dead']}")
    if outcome["rerun_sent"]:
        problems.append(f"the next run sent {outcome['rerun_sent']} more")
    if outcome["leases"]:
        problems.append(f"{len(outcome['leases'])} claim(s) never confirmed")
    return "; ".join(problems) or None


@pytest.fixture(scope="module")
def clean_run_boundaries() -> dict:
    """Each function's boundaries in a clean run (filled by the first test that runs one)."""
    return {}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_killed_at_any_step_boundary_loses_no_alert(
    sweep, function, clean_run_boundaries
):
    """The table: one run per (function, boundary); each must deliver every due alert."""
    clean = sweep(None, 0)
    assert _judge(clean) is None, _judge(clean)
    assert sum(clean["alerts"].values()) == len(clean["due"]) == EXPIRING * SUBSCRIBERS_PER_TARGET
    points = [label for key, label in clean["seen"] if key == function]
    assert points, f"{function} passed no boundary"
    failures = []
    for index, label in enumerate(points, start=1):
        outcome = sweep(function, index)
        assert outcome["killed"], f"{function} was not killed at boundary {index} ({label})"
        problem = _judge(outcome)
        if problem:
            failures.append(f"#{index} {outcome['killed'][0]}: {problem}")
    record_figure("kill points: a function killed at a step boundary, nothing lost", len(points))
    record_figure(f"kill points of {function}", len(points))
    assert failures == [], "\n".join(failures)
