"""Cold start: how long each handler module takes to import in a fresh interpreter (boto3 too)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from chalicelib.config import resources

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5


@dataclass(frozen=True)
class ImportTime:
    """The median import time of one handler module over RUNS fresh interpreters."""

    function: str
    module: str
    milliseconds: float
    boto3_included: bool
    error: str | None = None


def handler_modules() -> dict[str, str]:
    """Return {function: module} for every function of resources.json."""
    return {
        key: spec["handler"].rpartition(".")[0] for key, spec in resources()["functions"].items()
    }


def _top_level(stderr: str) -> dict[str, int]:
    """Return {module: cumulative µs} of the top-level imports in `-X importtime` output."""
    times: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line[len("import time:") :].split("|", 2)
        if not name.startswith(" ") or name.startswith("  "):
            continue  # nested: already counted in its parent's cumulative time
        times[name.strip()] = int(cumulative)
    return times


def _importtime(statement: str) -> tuple[dict[str, int], set[str], str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SSLNOTIFY_")}
    env.update({"AWS_REGION": "us-east-1", "PYTHONPATH": str(ROOT)})
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
    )
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    error = done.stderr.strip().splitlines()[-1] if done.returncode else ""
    return _top_level(done.stderr), names, error


def measure(module: str, function: str = "") -> ImportTime:
    """Import `module` in RUNS fresh interpreters; return the median of its own import time."""
    baseline, _, _ = _importtime("pass")  # the interpreter's own start-up imports
    samples = []
    names: set[str] = set()
    for _ in range(RUNS):
        times, names, error = _importtime(f"import {module}")
        if error:
            return ImportTime(function, module, float("nan"), False, error)
        samples.append(sum(us for name, us in times.items() if name not in baseline) / 1000)
    return ImportTime(function, module, statistics.median(samples), "boto3" in names)


def measure_all() -> list[ImportTime]:
    """Measure every handler module of resources.json."""
    return [measure(module, function) for function, module in handler_modules().items()]


if __name__ == "__main__":
    for row in measure_all():
        note = row.error or ("boto3 included" if row.boto3_included else "boto3 NOT imported")
        print(f"{row.function:10} {row.module:18} {row.milliseconds:7.1f} ms  {note}")
