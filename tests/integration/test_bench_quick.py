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
@pytest.mark.parametrize(
    ("options", "addresses", "original_probes"),
    [
        ([], 30, 100),
        # Issue 12's day: CRLs on loopback, and 6 of the 30 targets names with two addresses
        # (the bench's resolver answers them); every address is probed once.
        # The original design's 100 checks include 20 of those names (20 second addresses).
        (["--revocation", "crl", "--multi-address", "0.2"], 36, 120),
    ],
    ids=["baseline", "crl-multi-address"],
)
def test_quick_benchmark_sends_every_due_email_and_probes_each_target_once(
    tmp_path, options, addresses, original_probes
):
    figures_file = tmp_path / "figures.json"
    # A clean environment: the benchmark starts its own stack with its own settings.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SSLNOTIFY_", "AWS_"))
    }
    command = [sys.executable, "-m", "bench.sweep", "--quick", "--skip-coldstart", *options]
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
    assert figures["addresses"] == addresses
    for run in ("first_sweep", "sweep"):
        sweep = figures[run]
        assert sweep["due"] > 0
        assert sweep["emails"] == sweep["due"] == sweep["claimed"], run
        assert sweep["probes"] == addresses, run
    original = figures["original"]
    assert original["emails"] == original["due"]
    assert original["extra"]["sample"] == 100
    assert original["probes"] == original_probes
    assert figures["floor"]["failures"] == 0
    assert figures["checknow"]["requests"] == 20
    # CT and ARI ran against the loopback stand-ins, never the internet, and were counted.
    assert set(figures["outside_calls"]) == {"ct", "ari", "acme_directory"}
    assert all(isinstance(count, int) for count in figures["outside_calls"].values())
