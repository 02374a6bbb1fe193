"""`sslnotify check` against blackbox_exporter and a bare asyncio loop, on the same endpoints.

    .venv/bin/python -m bench.side_by_side [--targets 1000] [--latency-ms 100] [--rounds 1]
        [--blackbox PATH] [--profile FILE] [--cli-option=--processes=1 ...]

One run starts M loopback TLS endpoints (bench.endpoints: each waits L ms before its
handshake) and, in turn, measures over all of them:

- `sslnotify check --file TARGETS --cafile ROOT --no-ct --no-ari` in a fresh process (start,
  probes, evaluation and output all counted; default concurrency and processes; CT and ARI
  off because a benchmark sends packets to loopback only);
- Prometheus blackbox_exporter, tcp prober with `tls: true`, driven with 200 probes at a
  time over kept-alive HTTP connections (skipped with a message where it is not installed:
  `apt-get install prometheus-blackbox-exporter`);
- a bare asyncio handshake loop (bench.floor, 200 at a time), in this process;
- the checker's probes alone (gather_evidence), then the daily checker's path
  (gather_evidence + lambdas.checker.evaluate_group, one tolerance per target), in this
  process, with their CPU per target next to the bare loop's.

`--profile FILE` also runs the CLI once under cProfile and writes its statistics there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import floor
from bench.endpoints import Endpoints

BLACKBOX_NAMES = ("blackbox_exporter", "prometheus-blackbox-exporter")
BLACKBOX_CONCURRENCY = 200
FLOOR_CONCURRENCY = 200
BLACKBOX_CONFIG = """\
modules:
  tls_connect:
    prober: tcp
    timeout: 10s
    tcp:
      tls: true
      tls_config:
        insecure_skip_verify: true
"""


@dataclass
class Row:
    """One measured column: wall seconds, CPU seconds of the measured process(es), successes."""

    name: str
    seconds: float
    cpu: float | None
    succeeded: int
    note: str = ""
    server_cpu: float | None = None  # CPU seconds of the endpoint servers meanwhile


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_cli(
    endpoints: Endpoints, workdir: Path, profile: Path | None = None, extra: tuple[str, ...] = ()
) -> Row:
    """Run `sslnotify check` over every endpoint in a new process; count its OK lines."""
    targets = workdir / "targets.txt"
    targets.write_text("\n".join(endpoints.targets) + "\n")
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    command = [sys.executable, *profiler, "-m", "chalicelib.cli", "check", "--file", str(targets)]
    # No CT search and no ARI: a benchmark sends packets to loopback only (and blackbox_exporter
    # consults neither). Revocation stays on: the endpoints' certificates name no source.
    command += ["--cafile", str(endpoints.ca_file), "--no-ct", "--no-ari", *extra]
    before, started = _children_cpu(), time.perf_counter()
    answer = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    lines = answer.stdout.splitlines()
    ok = sum(1 for line in lines if "  ERROR  " not in line)
    note = "" if len(lines) == len(endpoints.targets) else f"{len(lines)} lines, {answer.stderr}"
    return Row("sslnotify check (new process)", seconds, _children_cpu() - before, ok, note)


def find_blackbox(given: str | None) -> str | None:
    """Return the blackbox_exporter executable: the given path, or one on PATH."""
    if given:
        return given if Path(given).is_file() else None
    return next(filter(None, map(shutil.which, BLACKBOX_NAMES)), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _drive_blackbox(port: int, targets: list[str]) -> int:
    """GET /probe for every target, BLACKBOX_CONCURRENCY at once; return probe_success count."""
    queue = list(reversed(targets))
    succeeded = 0

    async def worker() -> None:
        nonlocal succeeded
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                target = queue.pop()
                writer.write(
                    f"GET /probe?module=tls_connect&target={target} HTTP/1.1\r\n"
                    "Host: 127.0.0.1\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                succeeded += b"\nprobe_success 1\n" in body
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(BLACKBOX_CONCURRENCY)))
    return succeeded


def run_blackbox(executable: str, endpoints: Endpoints, workdir: Path) -> Row:
    """Start blackbox_exporter, probe every endpoint through it, and stop it."""
    config = workdir / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    port = _free_port()
    command = [executable, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        cpu, started = _proc_cpu(process.pid), time.perf_counter()
        ok = asyncio.run(_drive_blackbox(port, endpoints.targets))
        seconds = time.perf_counter() - started
        cpu = _proc_cpu(process.pid) - cpu
    finally:
        process.terminate()
        process.wait(timeout=10)
    note = f"{BLACKBOX_CONCURRENCY} at once; exporter CPU only"
    return Row("blackbox_exporter (tcp, tls: true)", seconds, cpu, ok, note)


def run_floor(endpoints: Endpoints) -> Row:
    """The bare asyncio handshake loop (bench.floor), in this process."""
    cpu = _self_cpu()
    run = asyncio.run(floor.handshakes(endpoints.targets, FLOOR_CONCURRENCY))
    note = f"{FLOOR_CONCURRENCY} at once"
    return Row("bare asyncio handshakes", run.seconds, _self_cpu() - cpu, run.handshakes, note)


def run_probes(endpoints: Endpoints) -> Row:
    """The checker's probes alone (gather_evidence, nothing judged), in this process."""
    from chalicelib.checker.check import gather_evidence
    from chalicelib.checker.targets import parse_target

    targets = [parse_target(text) for text in endpoints.targets]
    cpu, started = _self_cpu(), time.perf_counter()
    found = asyncio.run(gather_evidence(targets, timeout=10, concurrency=250, allow_private=True))
    seconds = time.perf_counter() - started
    ok = sum(any(probe.ok for probe in evidence.probes) for evidence in found)
    return Row("probes alone (gather_evidence)", seconds, _self_cpu() - cpu, ok, "250 at once")


def run_checker(endpoints: Endpoints) -> Row:
    """The daily checker's probing and judgement (lambdas.checker's path), in this process."""
    from chalicelib.checker.check import gather_evidence
    from chalicelib.checker.targets import parse_target
    from chalicelib.checker.trust import default_trust
    from lambdas.checker import evaluate_group

    targets = [parse_target(text) for text in endpoints.targets]
    groups = [
        {"target": text, "subscriptions": [{"subscriber": "s", "tolerance": "30"}]}
        for text in endpoints.targets
    ]
    trust = default_trust(str(endpoints.ca_file))
    now = datetime.now(UTC)
    judged = []

    def judge(index: int, evidence) -> None:
        judged.append(evaluate_group(groups[index], evidence, now, trust))

    cpu, started = _self_cpu(), time.perf_counter()
    asyncio.run(
        gather_evidence(targets, timeout=10, concurrency=250, allow_private=True, on_evidence=judge)
    )
    seconds = time.perf_counter() - started
    ok = sum(1 for entry in judged if entry["results"]["30"]["status"] != "error")
    return Row("checker: probe + evaluate_group", seconds, _self_cpu() - cpu, ok, "250 at once")


def print_table(rows: list[Row], count: int) -> None:
    """Print the rows as a Markdown table, with CPU per target and its ratio to the bare loop."""
    bare = next((row for row in rows if row.name.startswith("bare")), None)
    print("| | wall | CPU | CPU per target | CPU / bare loop's | succeeded | servers' CPU | note |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        per = f"{row.cpu / count * 1000:.2f} ms" if row.cpu is not None else "-"
        ratio = f"{row.cpu / bare.cpu:.2f} x" if bare and bare.cpu and row.cpu else "-"
        print(
            f"| {row.name} | {row.seconds:.2f} s | {row.cpu:.2f} s | {per} | {ratio} "
            f"| {row.succeeded} / {count} | {row.server_cpu or 0:.2f} s | {row.note} |"
        )


def race_summary(rounds: list[list[Row]]) -> str:
    """Say in how many rounds the command finished before blackbox_exporter, with the medians."""
    pairs = [(rows[0].seconds, rows[1].seconds) for rows in rounds]
    won = sum(1 for cli, exporter in pairs if cli < exporter)
    cli_median = statistics.median(cli for cli, _exporter in pairs)
    exporter_median = statistics.median(exporter for _cli, exporter in pairs)
    return (
        f"sslnotify check finished before blackbox_exporter in {won} of {len(pairs)} rounds; "
        f"medians {cli_median:.2f} s and {exporter_median:.2f} s"
    )


def main(argv: list[str] | None = None) -> int:
    """Start the endpoints, measure every column, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.side_by_side", description=__doc__)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--blackbox", help="path of blackbox_exporter (default: found on PATH)")
    parser.add_argument("--profile", type=Path, help="also profile one CLI run into this file")
    parser.add_argument(
        "--cli-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="pass this option to `sslnotify check` (repeatable; e.g. --cli-option=--processes=1)",
    )
    args = parser.parse_args(argv)
    blackbox = find_blackbox(args.blackbox)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with (
        tempfile.TemporaryDirectory() as directory,
        Endpoints.start(args.targets, args.latency_ms / 1000, Path(directory)) as endpoints,
    ):
        workdir = Path(directory)
        asyncio.run(floor.handshakes(endpoints.targets, FLOOR_CONCURRENCY))  # warm the servers
        rounds: list[list[Row]] = []
        extra = tuple(args.cli_option)
        for round_number in range(args.rounds):
            columns = [lambda: run_cli(endpoints, workdir, extra=extra)]
            if blackbox:
                columns.append(lambda: run_blackbox(blackbox, endpoints, workdir))
            columns += [
                lambda: run_floor(endpoints),
                lambda: run_probes(endpoints),
                lambda: run_checker(endpoints),
            ]
            rows = []
            for column in columns:
                server = sum(map(_proc_cpu, endpoints.pids))
                row = column()
                row.server_cpu = sum(map(_proc_cpu, endpoints.pids)) - server
                rows.append(row)
            print(f"\nround {round_number + 1}: {args.targets} endpoints, {args.latency_ms:g} ms")
            print_table(rows, args.targets)
            rounds.append(rows)
        if blackbox:
            print(f"\n{race_summary(rounds)}")
        if not blackbox:
            print(
                "\nblackbox_exporter not found: its column is skipped "
                "(apt-get install prometheus-blackbox-exporter, or --blackbox PATH)"
            )
        if args.profile:
            run_cli(endpoints, workdir, profile=args.profile, extra=tuple(args.cli_option))
            print(f"\nprofile of one CLI run written to {args.profile}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
