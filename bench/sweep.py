"""The sweep benchmark: the real daily sweep, the original design and the floor, in one run.

    .venv/bin/python -m bench.sweep [--quick] [--subscriptions N] [--targets M] [--latency-ms L]
        [--ses-rate R]

Prints the figures and the ratios; `--json FILE` also writes them. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import checknow, coldstart, floor, runs, seed
from bench.endpoints import Endpoints
from bench.sampler import sampled
from bench.stack import local_stack, measure_state_save
from chalicelib.checker.revocation import shared_cache
from chalicelib.privacy import AddressVault

FULL = {"subscriptions": 10_000, "targets": 1_000}
QUICK = {"subscriptions": 300, "targets": 30}
# The account's SES rate: emulated SES refuses sends past it (per second, across all
# mailers), and the mailers share it. Well above AWS's 14/s by default, so mail does not
# hide the sweep; `--ses-rate 14` is a new account. docs/scaling.md works out 14/s and 200/s.
BENCH_SES_RATE = 1000.0


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small smoke run (300 over 30)")
    parser.add_argument("--subscriptions", type=int, help="N (default 10,000; quick 300)")
    parser.add_argument("--targets", type=int, help="M distinct targets (default 1,000; quick 30)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="handshake delay")
    parser.add_argument(
        "--original-sample",
        type=int,
        help="subscriptions the original design is run on (default 1,000; quick 100), then scaled",
    )
    parser.add_argument("--checknow-requests", type=int, help="default 200 (quick 20)")
    parser.add_argument(
        "--ses-rate",
        type=float,
        default=BENCH_SES_RATE,
        help="the SES account's send rate, enforced by emulated SES (default 1,000/s; 14 is real)",
    )
    parser.add_argument("--endpoint-processes", type=int, default=1)
    parser.add_argument(
        "--isolated",
        action="store_true",
        help="run each invocation in a worker process of its function, as `sslnotify local` "
        "does (the steps inside handlers are then not timed; the sweep ends when all is idle)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample every thread of the stack (emulated AWS not included) during the timed sweep",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="trace allocations during the timed sweep (slow): retained and peak, by file",
    )
    parser.add_argument(
        "--revocation",
        choices=("none", "crl", "off"),
        default="none",
        help="none: certificates name no revocation source (the lookup finds none); crl: they "
        "name CRLs served by a loopback HTTP server; off: SSLNOTIFY_CHECK_REVOCATION=0",
    )
    parser.add_argument(
        "--multi-address",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="this share of endpoints (0 to 1) also listen on 127.0.0.2 and are targeted by a "
        "name resolving to both addresses (in-process stack only; probes count per address)",
    )
    parser.add_argument("--skip-coldstart", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if not 0.0 <= args.multi_address <= 1.0:
        parser.error("--multi-address is a share between 0 and 1")
    if args.multi_address and args.isolated:
        parser.error(
            "--multi-address needs the in-process stack: its names are answered by a resolver "
            "patched into this process, which --isolated worker processes do not see"
        )
    size = QUICK if args.quick else FULL
    args.subscriptions = args.subscriptions or size["subscriptions"]
    args.targets = min(args.targets or size["targets"], args.subscriptions)
    default_sample = 100 if args.quick else 1000
    args.original_sample = min(args.original_sample or default_sample, args.subscriptions)
    args.checknow_requests = args.checknow_requests or (20 if args.quick else 200)
    return args


def say(text: str) -> None:
    """Print a progress line at once (the stack redirects nothing of the main thread)."""
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print the report; exit 1 when an email was missing."""
    args = parse_arguments(argv)
    figures: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.sweep " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "subscriptions": args.subscriptions,
        "targets": args.targets,
        "latency_ms": args.latency_ms,
        "ses_rate": args.ses_rate,
        "revocation": args.revocation,
        "multi_address": args.multi_address,
        "load_before": os.getloadavg(),
    }
    # The stack's functions read it through Settings.from_env.
    os.environ["SSLNOTIFY_CHECK_REVOCATION"] = "0" if args.revocation == "off" else "1"
    with tempfile.TemporaryDirectory(prefix="sslnotify-bench-") as directory:
        workdir = Path(directory)
        latency = args.latency_ms / 1000
        with Endpoints.start(
            args.targets,
            latency,
            workdir / "certs",
            args.endpoint_processes,
            crl=args.revocation == "crl",
            multi_share=args.multi_address,
        ) as endpoints:
            # Probes are counted per address: a multi-address name is two connections.
            figures["addresses"] = len(endpoints.addresses)
            figures["multi_address_targets"] = len(endpoints.names)
            say(f"endpoints: {args.targets} on loopback, {args.latency_ms:g} ms per handshake")
            with (
                Endpoints.start(1, 0.0, workdir / "checknow") as direct,
                local_stack(
                    workdir,
                    endpoints.ca_file,
                    args.ses_rate,
                    isolated=args.isolated,
                    names=endpoints.names,
                ) as running,
            ):
                measure_stack(args, figures, running, endpoints, direct)
    figures["load_after"] = os.getloadavg()
    if not args.skip_coldstart:
        say("cold start: importing each handler module in fresh interpreters…")
        figures["imports"] = [asdict(row) for row in coldstart.measure_all()]
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    sweep = figures["sweep"]
    complete = sweep["emails"] == sweep["due"] == sweep["claimed"]
    complete = complete and sweep["probes"] == figures["addresses"]
    complete = complete and not sweep["probe_failures"]
    return 0 if complete else 1


def measure_stack(
    args: argparse.Namespace,
    figures: dict[str, Any],
    running: Any,
    endpoints: Endpoints,
    direct: Endpoints,
) -> None:
    """Seed the tables, then run the sweep, the original design and check-now on the stack."""
    vault = AddressVault(running.settings.require_secret())
    subscriptions = seed.plan(args.subscriptions, endpoints.targets, vault)
    started = time.perf_counter()
    seed.write(running.settings, subscriptions, vault)
    figures["seed_seconds"] = time.perf_counter() - started
    say(f"seeded {len(subscriptions)} subscriptions in {figures['seed_seconds']:.1f} s")
    day = datetime.now(UTC).date().isoformat()

    # Yesterday's sweep first: it pays the functions' cold starts and leaves the check state
    # every later day finds, so the timed sweep is an ordinary morning.
    first = runs.run_sweep(running, endpoints, runs.next_day(day, -1), subscriptions)
    figures["first_sweep"] = asdict(first)
    say(f"first sweep (cold functions, empty state): last email after {first.wall:.2f} s")
    # The floor right before and right after the timed sweep, the best pass counting: the
    # machine's load then weighs on both sides of the ratio alike.
    before = measure_floor(endpoints)
    # A new day: the warm process's CRLs are a day old (the cache keeps them 6 hours at most).
    shared_cache().clear()
    sampler = sampled() if args.profile else None
    if args.tracemalloc:
        tracemalloc.start()
        baseline = tracemalloc.take_snapshot()
    calls_before = running.outside_calls()
    sweep = runs.run_sweep(running, endpoints, day, subscriptions)
    calls_after = running.outside_calls()
    figures["outside_calls"] = {
        name: count - calls_before.get(name, 0) for name, count in calls_after.items()
    }
    if args.tracemalloc:
        figures["memory"] = memory_report(baseline)
    if sampler:
        sampler.stop()
        figures["profile"] = sampler.report()
    after = measure_floor(endpoints)
    figures["floor"] = asdict(min(before, after, key=lambda run: run.seconds))
    figures["floor_passes"] = [asdict(before), asdict(after)]
    figures["sweep"] = asdict(sweep)
    say(f"sweep: last email after {sweep.wall:.2f} s ({sweep.emails} emails)")

    original = runs.run_original(
        running, endpoints, runs.next_day(day), subscriptions, args.original_sample
    )
    scale = args.subscriptions / original.extra["sample"]
    original.extra["scaled"] = original.extra["scan"] + original.extra["invocation_phase"] * scale
    figures["original"] = asdict(original)
    say(
        f"original design: {original.extra['sample']} subscriptions in "
        f"{original.wall:.2f} s; scaled to {args.subscriptions}: {original.extra['scaled']:.1f} s"
    )

    latency = checknow.measure(running.api_port, direct.targets[0], args.checknow_requests)
    figures["checknow"] = {**asdict(latency), "added_p50": latency.added_p50}
    figures["checknow"]["added_p99"] = latency.added_p99
    figures["state_save_seconds"] = measure_state_save(running)
    problems = [line for line in running.console_lines() if not line.startswith("email: ")]
    figures["stack_messages"] = problems[:50]


def memory_report(baseline: tracemalloc.Snapshot, top: int = 8) -> list[str]:
    """Describe what the timed sweep allocated: retained, peak, and the files holding most."""
    retained, peak = tracemalloc.get_traced_memory()
    grown = tracemalloc.take_snapshot().compare_to(baseline, "filename")
    tracemalloc.stop()
    lines = [f"traced: {retained / 2**20:.1f} MiB retained, {peak / 2**20:.1f} MiB at the peak"]
    lines += [f"  {stat.size_diff / 2**20:+8.1f} MiB  {stat.traceback}" for stat in grown[:top]]
    return lines


def measure_floor(endpoints: Endpoints) -> floor.FloorRun:
    """Measure the floor (best of three concurrency bounds) and say it."""
    # Every address, as the sweep probes every address of a multi-address name.
    best = floor.measure(endpoints.addresses, endpoints.pids)
    say(
        f"floor: {best.handshakes} handshakes in {best.seconds:.3f} s (CPU: client "
        f"{best.client_cpu:.2f} s, servers {best.server_cpu:.2f} s)"
    )
    return best


def machine() -> str:
    """Describe this machine: CPU model and count, memory, OS, Python."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} x {model}, {memory:.0f} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def report(figures: dict[str, Any]) -> None:
    """Print the figures and the ratios."""
    sweep, original, best = figures["sweep"], figures["original"], figures["floor"]
    scaled = original["extra"]["scaled"]
    say("")
    say(f"== sslnotify sweep benchmark, {figures['date']}")
    say(f"machine: {figures['machine']}")
    loads = [f"{load:.1f}" for load in (*figures["load_before"], *figures["load_after"])]
    before, after = ", ".join(loads[:3]), ", ".join(loads[3:])
    say(f"load average (1, 5, 15 min) before: {before}; after: {after}")
    say(f"command: {figures['command']}")
    say(
        f"data: {figures['subscriptions']} subscriptions over {figures['targets']} targets, "
        f"{figures['latency_ms']:g} ms per handshake, emulated SES limited to "
        f"{figures['ses_rate']:g} emails/s (the account's rate, shared by every mailer)"
    )
    say("")
    say(f"{'':34}{'seconds':>10}")
    first = figures["first_sweep"]
    say(f"{'sweep, trigger to last email':34}{sweep['wall']:10.3f}")
    say(f"{'  probing phase':34}{sweep['probing']:10.3f}   (first probe to last result)")
    say(f"{'original design (scaled)':34}{scaled:10.3f}   ({original_note(original)})")
    say(
        f"{'first sweep (cold, empty state)':34}{first['wall']:10.3f}   "
        f"(probing {first['probing']:.3f})"
    )
    concurrency = best["concurrency"]
    say(
        f"{'floor: raw handshakes':34}{best['seconds']:10.3f}   (concurrency {concurrency}; "
        f"CPU {best['client_cpu']:.2f} s client, {best['server_cpu']:.2f} s servers)"
    )
    say("")
    say(f"probing phase / floor:    {sweep['probing'] / best['seconds']:6.2f}x   (target ≤ 2)")
    say(f"original / sweep:         {scaled / sweep['wall']:6.1f}x   (target ≥ 20)")
    say(f"sweep / floor:            {sweep['wall'] / best['seconds']:6.2f}x")
    say("")
    say(
        f"probes {sweep['probes']} (targets {figures['targets']}, "
        f"{figures.get('multi_address_targets', 0)} of them names with two addresses: "
        f"{figures.get('addresses', figures['targets'])} addresses), invocations "
        f"{sum(sweep['invocations'].values())} {sweep['invocations']}, emails {sweep['emails']} "
        f"of {sweep['due']} due ({sweep['claimed']} claimed), peak RSS "
        f"{sweep['peak_rss_mb']:.0f} MiB (emulated AWS {sweep['aws_peak_rss_mb']:.0f} MiB)"
    )
    say(
        f"revocation ({figures['revocation']}): {sweep['revocations']} targets by status, "
        f"{sweep['crl_fetches']} CRL fetches"
    )
    say(
        f"probe failures {sweep['probe_failures']}; the local stack's state save "
        f"(every 10 s, left out of the runs) takes {figures['state_save_seconds']:.2f} s once"
    )
    calls = figures.get("outside_calls") or {}
    say(
        f"outside calls in the timed sweep: CT searches {calls.get('ct', 0)}, ARI "
        f"{calls.get('ari', 0)}, ACME directories {calls.get('acme_directory', 0)} (loopback "
        "stand-ins; per-name and per-certificate caches warm from the first sweep)"
    )
    say("timeline (s after the trigger): " + timeline(sweep["timeline"]))
    say(
        f"CPU: stack process {sweep['cpu_seconds']:.2f} s and emulated AWS "
        f"{sweep['aws_cpu_seconds']:.2f} s over {sweep['idle']:.2f} s of wall time; endpoint "
        f"servers {sweep['endpoint_cpu_seconds']:.2f} s"
    )
    say(f"{'time by step (s, summed over threads)':40}{'wall':>9}{'own CPU':>9}{'calls':>7}")
    for name, seconds in sorted(sweep["busy"].items(), key=lambda item: -item[1]):
        calls = sweep["calls"].get(name, 0)
        say(f"  {name:38}{seconds:9.3f}{sweep['cpu'][name]:9.3f}{calls:7}")
    checks = figures["checknow"]
    say(
        f"check-now over {checks['requests']} requests: API p50 {checks['api_p50']:.1f} ms, "
        f"p99 {checks['api_p99']:.1f} ms; bare probe p50 {checks['probe_p50']:.1f} ms, "
        f"p99 {checks['probe_p99']:.1f} ms; added p50 {checks['added_p50']:.1f} ms, "
        f"p99 {checks['added_p99']:.1f} ms"
    )
    for row in figures.get("imports", []):
        note = row["error"] or ("with boto3" if row["boto3_included"] else "boto3 not imported")
        say(f"import {row['module']:18}{row['milliseconds']:8.1f} ms  ({note})")
    for line in figures.get("memory", []):
        say(f"memory: {line}")
    for line in figures.get("profile", []):
        say(f"profile: {line}")
    for line in figures.get("stack_messages", []):
        say(f"stack: {line[:200]}")


def original_note(original: dict[str, Any]) -> str:
    """Describe how the original design's figure was obtained."""
    extra = original["extra"]
    return (
        f"scan {extra['scan']:.2f} s + {extra['invocation_phase']:.2f} s for "
        f"{extra['sample']} invocations, scaled linearly"
    )


def timeline(points: dict[str, float]) -> str:
    """Format the timeline in order."""
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in sorted(points.items(), key=_at))


def _at(item: tuple[str, float]) -> float:
    return item[1]


if __name__ == "__main__":
    sys.exit(main())
