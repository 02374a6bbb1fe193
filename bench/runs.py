"""The two measured runs over the same data: today's sweep, and the original design's."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from bench.endpoints import Endpoints
from bench.instrument import peak_rss_mb, process_cpu_seconds, reset_peak_rss
from bench.seed import Subscription
from bench.stack import INVOKE, Running
from chalicelib import aws
from chalicelib.invoke import invoke

IDLE_TIMEOUT = 1800.0  # seconds: far beyond any expected run, so a hang ends the benchmark


@dataclass
class SweepRun:
    """What one run of the daily sweep did and how long each part took (seconds)."""

    day: str
    wall: float  # trigger to the last email accepted by SES
    idle: float  # trigger to no invocation left
    probing: float  # first probe started to the last result evaluated
    probe_window: float  # first probe started to the last probe done
    probes: int  # connections the endpoints saw
    invocations: dict[str, int]  # per function
    busy: dict[str, float]  # summed time per function.action and per step
    cpu: dict[str, float]  # summed CPU time of the step's own thread
    calls: dict[str, int]  # spans per step
    timeline: dict[str, float]  # seconds after the trigger
    emails: int
    due: int
    claimed: int  # subscriptions whose alert of the day was claimed (sent)
    peak_rss_mb: float  # the stack process's peak
    cpu_seconds: float  # the stack process's CPU time during the run (both cores count)
    endpoint_cpu_seconds: float  # the endpoint servers' CPU time during the run
    aws_cpu_seconds: float = 0.0  # the emulated AWS process's CPU time during the run
    aws_peak_rss_mb: float = 0.0
    probe_failures: int = 0
    crl_fetches: int = 0  # CRL requests the endpoints' HTTP server answered
    revocations: dict[str, int] = field(default_factory=dict)  # targets per revocation status
    extra: dict[str, Any] = field(default_factory=dict)


def due_alerts(subscriptions: list[Subscription], endpoints: Endpoints) -> int:
    """Return how many subscriptions watch a target that should alert."""
    alerting = endpoints.alerting
    return sum(1 for subscription in subscriptions if subscription.target in alerting)


def claimed_alerts(day: str) -> int:
    """Count the subscriptions whose alert of `day` was claimed in the checkstate table."""
    table = aws.table("checkstate")
    arguments: dict[str, Any] = {"ProjectionExpression": "alert_sent_day"}
    count = 0
    while True:
        page = table.scan(**arguments)
        count += sum(1 for item in page.get("Items", []) if item.get("alert_sent_day") == day)
        if "LastEvaluatedKey" not in page:
            return count
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _summarise(
    running: Running,
    endpoints: Endpoints,
    day: str,
    started: float,
    idle: float,
    due: int,
    cpu_before: tuple[float, float, float],
) -> SweepRun:
    recorder = running.recorder
    seen = endpoints.stats()
    invocations: dict[str, int] = {}
    busy: dict[str, float] = {}
    cpu: dict[str, float] = {}
    calls: dict[str, int] = {}
    for name in recorder.names():
        window = recorder.window(name)
        busy[name] = window.busy
        cpu[name] = window.cpu
        calls[name] = window.count
        if name.startswith(INVOKE):
            function = name.removeprefix(INVOKE).split(".")[0]
            invocations[function] = invocations.get(function, 0) + window.count
    mail = recorder.window("ses.deliver")
    probes = recorder.window("probe")
    results = recorder.window("checker.evaluate")
    # Isolated (worker processes), the sends are not seen: the sweep ends when all is idle.
    last_email = mail.last if mail else idle
    timeline = {}
    for label, name, edge in (
        ("cron started", "invoke:cron.sweep", "first"),
        ("scan done", "cron.scan", "last"),
        ("cron done", "invoke:cron.sweep", "last"),
        ("first probe", "probe", "first"),
        ("last probe", "probe", "last"),
        ("last result evaluated", "checker.evaluate", "last"),
        ("last record_results", "invoke:data.record_results", "last"),
        ("first email", "ses.deliver", "first"),
        ("last email", "ses.deliver", "last"),
    ):
        window = recorder.window(name)
        if window:
            timeline[label] = getattr(window, edge) - started
    timeline["idle"] = idle - started
    return SweepRun(
        day=day,
        wall=last_email - started,
        idle=idle - started,
        probing=(results.last - probes.first) if probes and results else float("nan"),
        probe_window=probes.length if probes else float("nan"),
        probes=seen.connections,
        invocations=invocations,
        busy=busy,
        cpu=cpu,
        calls=calls,
        timeline=timeline,
        emails=running.emails_sent(),
        due=due,
        claimed=claimed_alerts(day),
        peak_rss_mb=peak_rss_mb(),
        cpu_seconds=process_cpu_seconds() - cpu_before[0],
        endpoint_cpu_seconds=_endpoint_cpu(endpoints) - cpu_before[1],
        aws_cpu_seconds=process_cpu_seconds(running.aws_pid) - cpu_before[2],
        aws_peak_rss_mb=peak_rss_mb(running.aws_pid),
        probe_failures=recorder.counts().get("probe failures", 0),
        crl_fetches=seen.crl_requests,
        revocations={
            status: recorder.counts().get(f"revocation {status}", 0)
            for status in ("good", "revoked", "unknown")
        },
    )


def run_sweep(
    running: Running, endpoints: Endpoints, day: str, subscriptions: list[Subscription]
) -> SweepRun:
    """Trigger the daily sweep as the schedule does and wait for its last email."""
    endpoints.stats()  # start the endpoints' counts afresh
    running.recorder.clear()
    sent_before, cpu_before = _begin(running, endpoints)
    started = time.time()
    running.invoke_async("cron", {"action": "sweep", "day": day})
    if not running.wait_idle(IDLE_TIMEOUT):
        raise RuntimeError("the sweep did not finish")
    idle = time.time()
    due = due_alerts(subscriptions, endpoints)
    run = _summarise(running, endpoints, day, started, idle, due, cpu_before)
    run.emails -= sent_before
    return run


def run_original(
    running: Running, endpoints: Endpoints, day: str, subscriptions: list[Subscription], sample: int
) -> SweepRun:
    """Run the original design: cron scans, then invokes one checker per subscription in turn.

    Only the first `sample` subscriptions are invoked; `extra` holds the scan time and the
    invocation phase, from which the caller scales to all subscriptions.
    """
    chosen = subscriptions[:sample]
    endpoints.stats()
    running.recorder.clear()
    sent_before, cpu_before = _begin(running, endpoints)
    started = time.time()
    # As the original: one blocking data call for all subscriptions (paginated here).
    cursor, scanned = None, 0
    while True:
        page = invoke(
            "data",
            {
                "action": "scan_subscriptions",
                "segment": 0,
                "total_segments": 1,
                "cursor": cursor,
                "limit": 5000,
            },
            wait=True,
        )
        scanned += len(page["items"])
        cursor = page.get("cursor")
        if not cursor:
            break
    scan_done = time.time()
    for subscription in chosen:
        group = {
            "target": subscription.target,
            "subscriptions": [
                {"subscriber": subscription.subscriber, "tolerance": subscription.tolerance}
            ],
        }
        invoke("checker", {"action": "check", "day": day, "targets": [group]})
    loop_done = time.time()
    if not running.wait_idle(IDLE_TIMEOUT):
        raise RuntimeError("the original design's run did not finish")
    idle = time.time()
    due = due_alerts(chosen, endpoints)
    run = _summarise(running, endpoints, day, started, idle, due, cpu_before)
    run.emails -= sent_before
    mail = running.recorder.window("ses.deliver")
    run.extra = {
        "sample": len(chosen),
        "scanned": scanned,
        "scan": scan_done - started,
        "invoke_loop": loop_done - scan_done,
        "invocation_phase": (mail.last if mail else idle) - scan_done,
    }
    return run


def _begin(running: Running, endpoints: Endpoints) -> tuple[int, tuple[float, float, float]]:
    """Start a run's counters: emails sent so far, peak memory, CPU of every process."""
    sent = running.emails_sent()  # waits for the outbox to settle: before the CPU counts
    reset_peak_rss()
    reset_peak_rss(running.aws_pid)
    cpu = (
        process_cpu_seconds(),
        _endpoint_cpu(endpoints),
        process_cpu_seconds(running.aws_pid),
    )
    return sent, cpu


def next_day(day: str, days: int = 1) -> str:
    """Return the ISO date `days` after `day`."""
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def _endpoint_cpu(endpoints: Endpoints) -> float:
    return sum(process_cpu_seconds(pid) for pid in endpoints.pids)
