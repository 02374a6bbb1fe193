"""The checkers' probing alone: four event loops in four threads against one loop, and the floor.

    .venv/bin/python -m bench.probe_threads [--targets M] [--latency-ms L] [--rounds R]

What the sweep's probing phase would cost with nothing else running: M loopback
endpoints, probed as the local stack runs four checker invocations (four threads,
M/4 targets each, each target judged as its probe ends), then as one loop, next
to the floor. Prints wall and CPU seconds of each pass.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import floor
from bench.endpoints import Endpoints
from chalicelib.checker.check import gather_evidence
from chalicelib.checker.targets import parse_target
from chalicelib.checker.trust import default_trust
from lambdas.checker import evaluate_group

CHECKERS = 4


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(label: str, run) -> None:
    cpu, started = _cpu(), time.perf_counter()
    run()
    print(f"{label:44}{time.perf_counter() - started:8.3f} s wall{_cpu() - cpu:8.3f} s CPU")


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(prog="python -m bench.probe_threads", description=__doc__)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory() as directory,
        Endpoints.start(args.targets, args.latency_ms / 1000, Path(directory)) as endpoints,
    ):
        targets = [parse_target(text) for text in endpoints.targets]
        trust = default_trust(str(endpoints.ca_file))
        tolerances = ("30", "14", "auto")
        groups = [
            {
                "target": text,
                "subscriptions": [
                    {"subscriber": f"s{n}-{k}", "tolerance": tolerances[k % 3]} for k in range(10)
                ],
            }
            for n, text in enumerate(endpoints.targets)
        ]
        now = datetime.now(UTC)
        share = -(-len(targets) // CHECKERS)

        def checker(part: int, judge: bool) -> None:
            first = part * share

            def judged(index: int, evidence) -> None:
                if judge:
                    evaluate_group(groups[first + index], evidence, now, trust)

            asyncio.run(
                gather_evidence(
                    targets[first : first + share],
                    timeout=10,
                    concurrency=250,
                    allow_private=True,
                    on_evidence=judged,
                )
            )

        def threads(judge: bool) -> None:
            running = [
                threading.Thread(target=checker, args=(part, judge)) for part in range(CHECKERS)
            ]
            for thread in running:
                thread.start()
            for thread in running:
                thread.join()

        def one_loop() -> None:
            def judged(index: int, evidence) -> None:
                evaluate_group(groups[index], evidence, now, trust)

            asyncio.run(
                gather_evidence(
                    targets, timeout=10, concurrency=500, allow_private=True, on_evidence=judged
                )
            )

        for _ in range(args.rounds):
            _timed(
                "floor (one loop, 500 at once)",
                lambda: asyncio.run(floor.handshakes(endpoints.targets, 500)),
            )
            _timed(f"{CHECKERS} threads, probes only", lambda: threads(False))
            _timed(f"{CHECKERS} threads, probes and judgement", lambda: threads(True))
            _timed("one loop, probes and judgement", one_loop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
