"""The sweep benchmark's quick run as a smoke test: it completes and misses nothing.

Figures are printed by the benchmark, never asserted: timing depends on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_benchmark_sends_every_due_email_and_probes_each_target_once(tmp_path):
    figures_file = tmp_path / "figures.json"
    # A clean environment: the benchmark starts its own stack with its own settings.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SSLNOTIFY_", "AWS_"))
    }
    command = [sys.executable, "-m", "bench.sweep", "--quick", "--skip-coldstart"]
    done = subprocess.run(
        [*command, "--json", str(figures_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(figures_file.read_text())
    for run in ("first_sweep", "sweep"):
        sweep = figures[run]
        assert sweep["due"] > 0
        assert sweep["emails"] == sweep["due"] == sweep["claimed"], run
        assert sweep["probes"] == figures["targets"], run
    original = figures["original"]
    assert original["emails"] == original["due"]
    assert original["probes"] == original["extra"]["sample"]
    assert figures["floor"]["failures"] == 0
    assert figures["checknow"]["requests"] == 20
    # CT and ARI ran against the loopback stand-ins, never the internet, and were counted.
    assert set(figures["outside_calls"]) == {"ct", "ari", "acme_directory"}
    assert all(isinstance(count, int) for count in figures["outside_calls"].values())
