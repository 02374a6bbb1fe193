"""Run the sweep benchmark for a baseline day and a changed day, alternating, and compare them.

    .venv/bin/python -m bench.compare [--rounds 2] [--quick] [--limit 0.10] -- [changed options]

Each round runs `bench.sweep` twice back to back in fresh processes, the baseline (today's
defaults) then the changed options (by default `--revocation crl --multi-address 0.2`, issue
12), so the machine's load weighs on both alike; the report prints every run's sweep wall and
probing phase, the load average, the best of each side and the ratio against `--limit`.
Exits 1 when a run missed an email or the best sweep of the changed day exceeds the limit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CHANGED = ["--revocation", "crl", "--multi-address", "0.2"]


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line; what follows `--` is the changed day's options."""
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="baseline+changed pairs (2)")
    parser.add_argument("--quick", action="store_true", help="quick-sized runs (300 over 30)")
    parser.add_argument("--limit", type=float, default=0.10, help="allowed slowdown (0.10)")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("changed", nargs="*", help="the changed day's bench.sweep options")
    args = parser.parse_args(argv)
    args.changed = args.changed or CHANGED
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def run_sweep(options: list[str], workdir: Path, number: int) -> dict[str, Any]:
    """Run one `bench.sweep` in a fresh process and return its figures (+ exit code)."""
    figures_file = workdir / f"run-{number}.json"
    command = [sys.executable, "-m", "bench.sweep", "--skip-coldstart", *options]
    done = subprocess.run(
        [*command, "--json", str(figures_file)], capture_output=True, text=True, check=False
    )
    if not figures_file.exists():
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr}")
    figures = json.loads(figures_file.read_text())
    figures["returncode"] = done.returncode
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the rounds, print the table and the ratio; exit 1 if incomplete or over the limit."""
    args = parse_arguments(argv)
    size = ["--quick"] if args.quick else []
    sides = {"baseline": size, "changed": [*size, *args.changed]}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sslnotify-compare-") as directory:
        for round_number in range(args.rounds):
            for side, options in sides.items():
                figures = run_sweep(options, Path(directory), len(runs))
                figures["side"], figures["round"] = side, round_number + 1
                runs.append(figures)
                print(row(figures), flush=True)
    print("")
    print(f"baseline: bench.sweep {' '.join(['--skip-coldstart', *sides['baseline']])}")
    print(f"changed:  bench.sweep {' '.join(['--skip-coldstart', *sides['changed']])}")
    print(header())
    for figures in runs:
        print(row(figures))
    best = {
        side: min((r for r in runs if r["side"] == side), key=lambda r: r["sweep"]["wall"])
        for side in sides
    }
    wall = best["changed"]["sweep"]["wall"] / best["baseline"]["sweep"]["wall"]
    probing = best["changed"]["sweep"]["probing"] / best["baseline"]["sweep"]["probing"]
    within = wall <= 1 + args.limit
    print(
        f"best changed / best baseline: sweep wall {wall:.3f}x, probing phase {probing:.3f}x; "
        f"{'within' if within else 'OVER'} the {args.limit:.0%} bound (on the sweep wall)"
    )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2, default=str) + "\n")
    complete = all(r["returncode"] == 0 for r in runs)
    if not complete:
        print("a run was incomplete (missed email, probe failure or probe count): see its JSON")
    return 0 if complete and within else 1


def header() -> str:
    """Return the table's header."""
    return (
        f"{'round':>5} {'side':9}{'sweep s':>9}{'probing s':>10}{'floor s':>9}{'probes':>7}"
        f"{'CRL':>5}  load before (1, 5, 15 min)"
    )


def row(figures: dict[str, Any]) -> str:
    """Return one run's line of the table."""
    sweep = figures["sweep"]
    load = ", ".join(f"{value:.1f}" for value in figures["load_before"])
    return (
        f"{figures['round']:>5} {figures['side']:9}{sweep['wall']:9.3f}{sweep['probing']:10.3f}"
        f"{figures['floor']['seconds']:9.3f}{sweep['probes']:7}{sweep['crl_fetches']:5}  {load}"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
