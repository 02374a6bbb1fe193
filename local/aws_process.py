"""Emulated AWS in a process of its own: moto's server and the outbox of the mail it accepts.

The local stack runs the functions, the API and the Lambda API in its own process; the
emulated AWS answering them runs here, in a child process, so the two use two cores
instead of taking turns on one (Python runs one thread at a time per process), as the
functions and AWS do in the cloud. The outbox lives here because it reads moto's SES
backend directly; it announces each email on this process's standard output, which the
parent relays to its terminal, and hands mail to SES's simulator addresses to the
bounces function through the local Lambda API.

Protocol with the parent: the first line on standard output is `ready <url>` (or
`error <errno> <message>`); every later line is for the terminal. The child stops when
its standard input closes: when the parent stops it, or when the parent dies.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

READY = "ready"
ERROR = "error"
START_TIMEOUT = 60.0  # seconds: importing moto is the slow part


def main(argv: list[str] | None = None) -> int:
    """Serve emulated AWS on the given port until standard input closes."""
    parser = argparse.ArgumentParser(prog="python -m local.aws_process")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--outbox", type=Path, required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--bounces-function", required=True)
    parser.add_argument("--bounces-topic", required=True)
    parser.add_argument("--ses-rate", type=float, default=0.0, help="SES's max send rate; 0: none")
    args = parser.parse_args(argv)
    logging.getLogger("waitress").setLevel(logging.ERROR)

    from local import ses_quota
    from local.emulator import Emulator
    from local.outbox import Outbox

    if args.ses_rate > 0:
        ses_quota.install(args.ses_rate)
    stall = float(os.environ.get("SSLNOTIFY_LOCAL_SES_STALL") or 0)
    if stall > 0:
        ses_quota.stall_first_send(stall)

    try:
        emulator = Emulator(args.port, args.host)
    except OSError as error:
        _say(f"{ERROR} {error.errno or 0} {error}")
        return 1
    emulator.start()
    outbox = Outbox(
        args.outbox,
        args.region,
        announce=_say,
        on_sent=_feedback(args.bounces_function, args.bounces_topic),
    )
    outbox.start()
    _say(f"{READY} {emulator.url}")
    sys.stdin.read()  # until the parent closes it
    outbox.stop()
    emulator.stop()
    return 0


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _feedback(function: str, topic: str) -> Callable[[str, str, list[str]], None]:
    """Answer mail to SES's mailbox simulator as SES would: a bounce or complaint event."""

    def simulate(message_id: str, source: str, recipients: list[str]) -> None:
        from chalicelib import aws
        from local import mailbox_simulator

        for kind, address in mailbox_simulator.simulated(recipients):
            event = mailbox_simulator.notification(kind, address, message_id, source)
            _say(f"mailbox simulator: {kind.lower()} from {address}")
            aws.client("lambda").invoke(
                FunctionName=function,
                InvocationType="Event",
                Payload=json.dumps(mailbox_simulator.sns_event(topic, event)).encode(),
            )

    return simulate


class EmulatorProcess:
    """The parent's handle on the child process that serves emulated AWS."""

    def __init__(
        self,
        port: int,
        host: str,
        outbox: Path,
        region: str,
        bounces_function: str,
        bounces_topic: str,
        announce: Callable[[str], None],
        ses_rate: float = 0.0,
    ):
        command = [
            sys.executable,
            "-m",
            "local.aws_process",
            f"--host={host}",
            f"--port={port}",
            f"--outbox={outbox}",
            f"--region={region}",
            f"--bounces-function={bounces_function}",
            f"--bounces-topic={bounces_topic}",
            f"--ses-rate={ses_rate!r}",
        ]
        root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
            # Its own session: a Ctrl-C at the terminal goes to the stack alone, which saves
            # the state through this process before it stops it.
            start_new_session=True,
        )
        self._announce = announce
        first = self._first_line()
        kind, _, rest = first.partition(" ")
        if kind != READY:
            self._process.wait(timeout=10)
            number, _, message = rest.partition(" ")
            code = int(number) if number.isdigit() else 0
            raise OSError(code or errno.EIO, message or f"emulated AWS did not start: {first!r}")
        self.url = rest.strip()
        self.pid = self._process.pid
        self._relay = threading.Thread(target=self._relay_lines, name="aws-output", daemon=True)
        self._relay.start()

    def _first_line(self) -> str:
        answer: list[str] = []
        reader = threading.Thread(
            target=lambda: answer.append(self._process.stdout.readline()), daemon=True
        )
        reader.start()
        reader.join(START_TIMEOUT)
        if not answer or not answer[0]:
            self._process.kill()
            self._process.wait()
            raise OSError(errno.EIO, "emulated AWS did not start in time")
        return answer[0].rstrip("\n")

    def _relay_lines(self) -> None:
        for line in self._process.stdout:
            self._announce(line.rstrip("\n"))

    def start(self) -> None:
        """Nothing to do: the child serves from the moment it said it was ready."""

    def stop(self) -> None:
        """Let the child save the last emails to the outbox, then end it."""
        if self._process.poll() is None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._relay.join(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
