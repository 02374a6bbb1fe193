"""Run the real local stack (`sslnotify local`) in this process, with its functions timed.

In-process so the benchmark can wrap the functions the stack runs (spans per Lambda
invocation and action, per probe, per email) without changing them; the endpoints run
in child processes, so the stack and its clients have this process to themselves.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.instrument import Recorder
from chalicelib.config import Settings

HOST = "127.0.0.1"
INVOKE = "invoke:"  # span names of Lambda invocations: "invoke:<function>.<action>"


@dataclass
class Running:
    """The running stack: its settings, its Lambda service, URLs and the span recorder."""

    stack: Any
    service: Any
    settings: Settings
    recorder: Recorder
    console: io.StringIO
    outside: Any = None  # the loopback stand-ins for the CT search and the CA's ARI

    def outside_calls(self) -> dict[str, int]:
        """Count the requests the functions sent to the CT and ARI stand-ins so far."""
        if self.outside is None:
            return {}
        return {
            "ct": self.outside.count("/v1/issuances"),
            "ari": self.outside.count("/ari/"),
            "acme_directory": self.outside.count("/acme/directory"),
        }

    def console_lines(self) -> list[str]:
        """Return what the stack printed: emails, retries, function warnings and errors."""
        return self.console.getvalue().splitlines()

    @property
    def api_port(self) -> int:
        """Return the port the Chalice API listens on."""
        return self.stack.ports["api"]

    def function(self, key: str) -> Any:
        """Return the local Lambda service's function of a resources.json key."""
        return self.service.function(self.settings.function_name(key))

    def invoke_async(self, key: str, payload: dict[str, Any]) -> None:
        """Queue an invocation as EventBridge (the local scheduler) does."""
        self.service.invoke_async(self.function(key), payload)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every asynchronous invocation (and its retries) is done."""
        return self.service.wait_idle(timeout)

    def emails_sent(self) -> int:
        """Return how many emails the emulated SES accepted so far, once the outbox has them.

        The outbox (in the emulated AWS process) announces each email on the stack's
        console within its poll period; wait until the count stops growing.
        """
        from local.outbox import POLL_PERIOD

        count, deadline = -1, time.monotonic() + 30
        while time.monotonic() < deadline:
            now = sum(1 for line in self.console_lines() if line.startswith("email: "))
            if now == count:
                return now
            count = now
            time.sleep(POLL_PERIOD * 2.5)
        return count

    @property
    def aws_pid(self) -> int:
        """Return the process id of emulated AWS (a child of this process)."""
        return self.stack.aws_pid


def free_base_port(count: int = 4, start: int = 21000, stop: int = 60000) -> int:
    """Return a port P such that P..P+count-1 are all free on loopback."""
    for base in range(start, stop, count + 1):
        sockets = []
        try:
            for offset in range(count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((HOST, base + offset))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free ports on loopback")


def _instrument(recorder: Recorder) -> None:
    """Wrap what the sweep runs; before any handler module is imported, so imports see it."""
    from chalicelib import emails, mailer
    from chalicelib.checker import check, revocation
    from local import lambda_api

    def invocation(_service: Any, function: Any, payload: Any) -> str:
        action = payload.get("action") if isinstance(payload, dict) else None
        return f"{INVOKE}{function.key}.{action}"

    recorder.wrap(lambda_api.LambdaService, "run", invocation)
    recorder.wrap(check, "probe_name", "probe")
    recorder.wrap(check, "gather_evidence", "gather_evidence")
    recorder.wrap(revocation.RevocationChecker, "check", "revocation")
    timed_gather = check.gather_evidence

    async def gather_counting_failures(*args: Any, **kwargs: Any) -> Any:
        evidence = await timed_gather(*args, **kwargs)
        # A probe that failed (a timeout under load, say) would silently skew the figures.
        failures = sum(1 for seen in evidence for probe in seen.probes if probe.error)
        recorder.tally("probe failures", failures)
        revocations = [
            probe.revocation.status
            for seen in evidence
            for probe in seen.probes
            if probe.revocation
        ]
        for status in ("good", "revoked", "unknown"):
            recorder.tally(f"revocation {status}", revocations.count(status))
        return evidence

    check.gather_evidence = gather_counting_failures
    recorder.wrap(mailer.Mailer, "deliver", "ses.deliver")
    recorder.wrap(mailer, "to_mime", "mail.mime")
    recorder.wrap(emails, "alert", "mail.render")

    def mailer_call(function: str, payload: Any, wait: bool = False, **options: Any) -> str:
        return f"mailer→{function}.{payload.get('action')}"

    # The mailer's own view of its blocking calls to data: the round trip, not the handler.
    recorder.wrap(mailer, "invoke", mailer_call)

    # The checker's evaluation and cron's scan are module functions the handlers call by name.
    import lambdas.checker
    import lambdas.cron

    recorder.wrap(lambdas.checker, "judge_group", "checker.evaluate")
    recorder.wrap(lambdas.cron, "scan_all", "cron.scan")
    recorder.wrap(lambdas.cron, "plan_batches", "cron.plan")


@contextmanager
def bench_resolver(names: dict[str, list[str]]) -> Iterator[None]:
    """Answer the benchmark's multi-address names from `names` while the stack runs in-process.

    Patches `ssrf.system_resolver`, which `ssrf.resolve` looks up at each call when the checker
    is given no resolver (as the daily checker is); every other name goes to the real one. Only
    loopback addresses may be installed: the bench never sends a packet elsewhere.
    """
    import ipaddress

    from chalicelib.checker import ssrf

    for addresses in names.values():
        for address in addresses:
            if not ipaddress.ip_address(address).is_loopback:
                raise ValueError(f"the bench resolver maps only to loopback, not {address}")
    system = ssrf.system_resolver

    def resolver(host: str, port: int) -> list[str]:
        known = names.get(host.lower().rstrip("."))
        return list(known) if known is not None else system(host, port)

    ssrf.system_resolver = resolver
    try:
        yield
    finally:
        ssrf.system_resolver = system


def lift_rate_limits() -> None:
    """Let the benchmark's many check-now requests through the API's per-client limits.

    chalice's local server reports every client as 127.0.0.1, so the 20 checks a minute
    would apply to the whole benchmark. The limit is still counted (the data function is
    still invoked for it); only its ceiling is raised.
    """
    from chalicelib import config

    from_env = config.Settings.from_env.__func__
    lifted = config.RateLimits(
        check_per_client_per_minute=1_000_000,
        subscribe_per_client_per_hour=1_000_000,
        confirmations_per_address_per_day=1_000_000,
    )

    def with_lifted_limits(cls: type, environ: Any = None, **overrides: Any) -> Settings:
        return from_env(cls, environ, **{"limits": lifted, **overrides})

    config.Settings.from_env = classmethod(with_lifted_limits)
    config.reset_settings()


@contextmanager
def local_stack(
    workdir: Path,
    ca_file: Path,
    ses_rate: float,
    keep_state_saver: bool = False,
    isolated: bool = False,
    names: dict[str, list[str]] | None = None,
) -> Iterator[Running]:
    """Start `sslnotify local` in this process on free ports with a fresh state directory.

    `names` (multi-address name → loopback addresses) are answered by `bench_resolver`; that
    patch reaches only this process, so it is refused with `isolated` worker processes.
    """
    if names and isolated:
        raise ValueError("multi-address names need the in-process stack (not --isolated)")
    from local.stack import Console, LocalStack
    from tests.renewal_services import RenewalServices

    # The stack reads these through Settings.from_env; every function gets them.
    os.environ["SSLNOTIFY_SES_RATE"] = repr(ses_rate)
    os.environ["SSLNOTIFY_PREFIX"] = "sslnotify-bench"
    # CT and ARI are on, as in AWS, but answered on loopback: the bench counts the calls.
    outside = RenewalServices()
    os.environ["SSLNOTIFY_CT"] = os.environ["SSLNOTIFY_ARI"] = "1"
    os.environ["SSLNOTIFY_CT_URL"] = outside.ct_url
    os.environ["SSLNOTIFY_ACME_DIRECTORIES"] = json.dumps(
        {"sslnotify Bench Intermediate CA": outside.directory_url}
    )
    args = argparse.Namespace(
        port=free_base_port(),
        state_dir=workdir / "state",
        allow_private_targets=True,
        ca_bundle=ca_file,
        verbose=False,
        # Handlers as threads of this process, where the recorder's wrappers see inside
        # them, unless `isolated`: then each runs in a worker process of its function, as
        # `sslnotify local` runs them, and only the invocations are timed.
        in_process=not isolated,
    )
    # The stack announces every email on its console; keep the benchmark's output readable.
    console = io.StringIO()
    stack = LocalStack(args, Console(console))
    captured: dict[str, Any] = {}
    start_lambda = stack._start_lambda

    def keep_service() -> Any:
        captured["service"] = start_lambda()
        return captured["service"]

    stack._start_lambda = keep_service
    if not keep_state_saver:
        # The local stack dumps every table to disk every 10 s, a cost AWS does not have;
        # left out of the timed runs (measured once on its own, see measure_state_save).
        from local import emulator

        emulator.PeriodicSaver.start = lambda self: None
    recorder = Recorder()
    stack.start()
    resolving = bench_resolver(names or {})
    resolving.__enter__()
    try:
        _instrument(recorder)
        lift_rate_limits()
        yield Running(stack, captured["service"], stack.settings, recorder, console, outside)
    finally:
        resolving.__exit__(None, None, None)
        outside.close()
        recorder.unwrap()
        with suppress(Exception):
            stack.stop(save=False)


def measure_state_save(running: Running) -> float:
    """Time one save of every table to the state directory, as the stack does every 10 s."""
    from local.emulator import StateStore

    store = StateStore(running.settings, running.stack.state_dir / "data")
    started = time.perf_counter()
    store.save()
    return time.perf_counter() - started
