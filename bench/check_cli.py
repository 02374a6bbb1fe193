"""Measure how many targets per second `sslnotify check` handles on loopback.

Usage: .venv/bin/python -m bench.check_cli [N]   (N distinct names over 4 local TLS servers)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.certs import make_pki
from tests.tls_servers import TLSServer

SERVERS = 4
RUNS = 3


def main(count: int) -> None:
    """Run `sslnotify check` over `count` targets RUNS times and print the rate of each run."""
    pki = make_pki()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory, "root.pem")
        root.write_bytes(pki.root.pem)
        servers = [
            TLSServer([pki.leaf(dns=["*.bench.test"]), pki.intermediate]) for _ in range(SERVERS)
        ]
        targets = [f"h{i}.bench.test:{servers[i % SERVERS].port}" for i in range(count)]
        command = [
            str(Path(sys.executable).with_name("sslnotify")),
            "check",
            *targets,
            "--ip",
            "127.0.0.1",
            "--cafile",
            str(root),
        ]
        for run in range(RUNS):
            started = time.perf_counter()
            answer = subprocess.run(command, capture_output=True, text=True, check=False)
            elapsed = time.perf_counter() - started
            ok = sum("  OK  " in line for line in answer.stdout.splitlines())
            print(
                f"run {run}: {count} targets, {ok} OK, exit {answer.returncode}, "
                f"{elapsed:.2f} s, {count / elapsed:.0f} targets/s (process start included)"
            )
        for server in servers:
            server.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
