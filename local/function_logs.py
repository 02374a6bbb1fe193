"""Each function's output goes to its own emulated log group, as Lambda sends stdout to CloudWatch.

Functions run as threads of this process, so the stack replaces sys.stdout and
sys.stderr with a stream that looks at which function the current thread (or
asyncio task) is running, kept in a context variable, and hands that function's
complete lines to a shipper; output of no function goes to the terminal as before.
The shipper puts the lines to `/aws/lambda/<function>` once a second.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from chalicelib import aws
from chalicelib.logs import redact

current_function: ContextVar[str | None] = ContextVar("current_function", default=None)

FLUSH_PERIOD = 1.0
_MAX_BATCH = 5000  # PutLogEvents allows 10,000 events and 1 MB a call


@contextlib.contextmanager
def running(function_key: str) -> Iterator[None]:
    """Attribute this thread's output to a function while the block runs."""
    token = current_function.set(function_key)
    try:
        yield
    finally:
        current_function.reset(token)


class LogShipper:
    """Collect function log lines and put them to their log groups once a second."""

    def __init__(
        self,
        log_groups: dict[str, str],
        echo: Callable[[str, str], None] | None = None,
        echo_all: bool = False,
        period: float = FLUSH_PERIOD,
    ):
        self.log_groups = log_groups
        self.period = period
        self._echo = echo
        self._echo_all = echo_all
        self._pending: dict[str, list[dict[str, Any]]] = {key: [] for key in log_groups}
        self._streams: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)

    def add(self, function_key: str, line: str) -> None:
        """Queue one line of a function's output."""
        # Defence in depth: the API's paths hold addresses; nothing shaped like one is shipped.
        line = redact(line.rstrip("\r\n"))
        if not line:
            return
        with self._lock:
            self._pending.setdefault(function_key, []).append(
                {"timestamp": int(time.time() * 1000), "message": line}
            )
        if self._echo and (
            self._echo_all or '"level": "ERROR"' in line or '"level": "WARNING"' in line
        ):
            self._echo(function_key, line)

    def start(self) -> None:
        """Ship in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ship what is left and stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.flush()

    def flush(self) -> None:
        """Put every queued line to its log group now."""
        with self._lock:
            batches, self._pending = self._pending, {key: [] for key in self.log_groups}
        for key, events in batches.items():
            if events and key in self.log_groups:
                with contextlib.suppress(Exception):  # a lost log line must not stop the stack
                    self._put(key, events)

    def _put(self, key: str, events: list[dict[str, Any]]) -> None:
        logs = aws.client("logs")
        group = self.log_groups[key]
        stream = self._streams.get(key)
        if stream is None:
            stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            self._streams[key] = stream
        events.sort(key=lambda event: event["timestamp"])
        for start in range(0, len(events), _MAX_BATCH):
            logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=events[start : start + _MAX_BATCH],
            )


class RoutedStream(io.TextIOBase):
    """A text stream that sends a function's lines to the shipper and the rest to the terminal."""

    def __init__(self, terminal: TextIO, shipper: LogShipper):
        self._terminal = terminal
        self._shipper = shipper
        self._partial = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        function_key = current_function.get()
        if function_key is None:
            return self._terminal.write(text)
        # print() writes the text and the newline separately: keep lines whole per thread.
        buffered = getattr(self._partial, "text", "") + text
        *lines, rest = buffered.split("\n")
        self._partial.text = rest
        for line in lines:
            self._shipper.add(function_key, line)
        return len(text)

    def flush(self) -> None:
        self._terminal.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._terminal, "encoding", "utf-8")
