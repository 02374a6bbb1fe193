"""A long list checked on every core (checker/processes.py): forked workers, one share each."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chalicelib.checker import processes
from chalicelib.checker.check import CheckRequest
from chalicelib.checker.targets import parse_target
from tests.certs import make_leaf, make_pki

ROOT = Path(__file__).resolve().parents[2]
DAY = timedelta(days=1)

# Runs in a fresh process (no thread yet, so forking is allowed): checks the targets with
# check_on_cores and prints what happened. A spy on check_many logs which process checked how
# many requests; with "die", the worker whose share holds the first target exits at once.
SCRIPT = r"""
import json, os, sys
from chalicelib.checker import processes
from chalicelib.checker.check import CheckRequest
from chalicelib.checker.renewal_lookup import RenewalLookup
from chalicelib.checker.targets import parse_target
from chalicelib.checker.trust import default_trust

config = json.loads(sys.argv[1])
parent = os.getpid()
real = processes.check_many

async def spying(requests, **options):
    with open(config["log"], "a") as log:
        log.write(f"{os.getpid()} {len(requests)}\n")
    first = parse_target(config["targets"][0])
    if config["die"] and os.getpid() != parent and any(r.target == first for r in requests):
        os._exit(7)
    return await real(requests, **options)

processes.check_many = spying
ticks = []
results = processes.check_on_cores(
    [CheckRequest(parse_target(text), tolerance=30) for text in config["targets"]],
    processes=config["processes"],
    concurrency=4,
    timeout=5,
    allow_private=True,
    trust=default_trust(config["cafile"], system=False),
    renewal=RenewalLookup(),
    check_revocation=False,
    progress=lambda: ticks.append(1),
)
print(json.dumps({
    "parent": parent,
    "ticks": len(ticks),
    "results": [
        [r.host, r.port, r.status, r.days_left, [p.code for p in r.problems]] for r in results
    ],
}))
"""


@pytest.fixture(scope="module")
def pki():
    return make_pki(datetime.now(UTC))


@pytest.fixture
def targets(tls_server, pki, closed_port):
    """Five targets of four kinds, one of them twice: ok, expiring, self-signed, refused."""
    now = datetime.now(UTC)
    names = {"dns": ["localhost"], "ips": ["127.0.0.1"]}
    ok = tls_server([pki.leaf(**names), pki.intermediate])
    expiring = tls_server([pki.leaf(**names, not_after=now + 10.5 * DAY), pki.intermediate])
    invalid = tls_server([make_leaf(None, **names)])
    refused = f"127.0.0.1:{closed_port}"
    return [ok.address, expiring.address, invalid.address, refused, ok.address]


def _run(tmp_path, targets, cafile, count, die=False):
    log = tmp_path / f"log-{count}-{die}.txt"
    config = {"targets": targets, "processes": count, "cafile": cafile, "log": str(log)}
    config["die"] = die
    answer = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    found = json.loads(answer.stdout)
    calls = [line.split() for line in log.read_text().splitlines()]
    return found, [(int(pid), int(count)) for pid, count in calls]


def test_two_workers_give_the_results_one_process_gives_in_request_order(
    tmp_path, targets, pki, ca_file
):
    cafile = ca_file(pki.root)
    alone, alone_calls = _run(tmp_path, targets, cafile, 1)
    shared, shared_calls = _run(tmp_path, targets, cafile, 2)
    assert [call[0] for call in alone_calls] == [alone["parent"]]
    # Two workers, neither of them the parent, the five requests split between them.
    pids = [pid for pid, _count in shared_calls]
    assert len(set(pids)) == 2 and shared["parent"] not in pids
    assert sum(count for _pid, count in shared_calls) == len(targets)
    assert shared["results"] == alone["results"]
    statuses = [result[2] for result in shared["results"]]
    assert statuses == ["ok", "expiring", "invalid", "error", "ok"]
    assert shared["ticks"] == alone["ticks"] == len(targets)


def test_a_worker_that_dies_loses_nothing(tmp_path, targets, pki, ca_file):
    cafile = ca_file(pki.root)
    alone, _calls = _run(tmp_path, targets, cafile, 1)
    found, calls = _run(tmp_path, targets, cafile, 2, die=True)
    # The dead worker's share was checked again in the parent.
    assert found["parent"] in [pid for pid, _count in calls]
    assert found["results"] == alone["results"]
    assert found["ticks"] == len(targets)


def test_the_same_target_and_address_stay_in_one_share():
    a, b, c = (parse_target(f"127.0.0.1:{port}") for port in (1001, 1002, 1003))
    requests = [CheckRequest(a), CheckRequest(b), CheckRequest(a, tolerance=7), CheckRequest(c)]
    requests.append(CheckRequest(a, ip="127.0.0.2"))
    shares = processes.shares_of(requests, 2)
    assert sorted(index for share in shares for index in share) == list(range(len(requests)))
    holding_a = [share for share in shares if 0 in share]
    assert len(holding_a) == 1 and 2 in holding_a[0]


def test_the_number_of_processes_follows_the_cores_and_the_list(monkeypatch):
    monkeypatch.setattr(processes, "usable_cores", lambda: 4)
    assert processes.plan_processes(50, concurrency=1000) == 1  # too short a list
    assert processes.plan_processes(250, concurrency=1000) == 2
    assert processes.plan_processes(10_000, concurrency=1000) == 4
    # Few probes at once wait on the network: a second process would only halve each share.
    assert processes.plan_processes(10_000, concurrency=300) == 1
    assert processes.plan_processes(10_000, concurrency=500) == 2
    assert processes.plan_processes(3, wanted=8) == 3  # asked for: at most one per target
    assert processes.plan_processes(1000, wanted=1) == 1


def test_no_fork_while_another_thread_runs():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert not processes.can_fork()
    finally:
        stop.set()
        thread.join()


def test_the_command_prints_the_same_lines_with_one_process_or_two(tmp_path, targets, pki, ca_file):
    listed = tmp_path / "targets.txt"
    listed.write_text("\n".join(targets) + "\n")
    outputs = []
    command = [sys.executable, "-m", "chalicelib.cli", "check", "--file", str(listed)]
    command += ["--cafile", ca_file(pki.root), "--no-ct", "--no-ari"]
    for count in ("1", "2"):
        answer = subprocess.run(
            [*command, "--processes", count],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert answer.returncode == 3, answer.stderr  # the refused port is an error: UNKNOWN
        outputs.append(answer.stdout.splitlines())
    assert outputs[0] == outputs[1]
    assert [line.split()[1] for line in outputs[1]] == ["OK", "EXPIRING", "INVALID", "ERROR", "OK"]
