"""Time what the sweep does by wrapping functions of the running stack: spans per name."""

from __future__ import annotations

import functools
import inspect
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Window:
    """Several spans of one name: how many, first start, last end, summed wall and CPU time.

    CPU time is the running thread's own (time.thread_time), so it leaves out waiting for
    the GIL, the network or another thread; it is zero for coroutines, whose thread also
    runs the other coroutines of its event loop.
    """

    count: int
    first: float
    last: float
    busy: float
    cpu: float

    @property
    def length(self) -> float:
        """Return the time from the first start to the last end."""
        return self.last - self.first


class Recorder:
    """Collect (start, end) spans by name from any thread; wall-clock times (time.time)."""

    def __init__(self) -> None:
        self._spans: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        self._counts: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []

    def add(self, name: str, start: float, end: float, cpu: float = 0.0) -> None:
        """Record one span (wall-clock start and end, and the thread's CPU seconds)."""
        with self._lock:
            self._spans[name].append((start, end, cpu))

    def tally(self, name: str, count: int) -> None:
        """Add to a counter."""
        with self._lock:
            self._counts[name] += count

    def counts(self) -> dict[str, int]:
        """Return every counter."""
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        """Forget every span and counter (between runs)."""
        with self._lock:
            self._spans.clear()
            self._counts.clear()

    def names(self) -> list[str]:
        """Return the names that have spans."""
        with self._lock:
            return sorted(self._spans)

    def window(self, *names: str) -> Window | None:
        """Summarise the spans of these names together; None when there are none."""
        with self._lock:
            spans = [span for name in names for span in self._spans.get(name, [])]
        if not spans:
            return None
        return Window(
            count=len(spans),
            first=min(start for start, _, _ in spans),
            last=max(end for _, end, _ in spans),
            busy=sum(end - start for start, end, _ in spans),
            cpu=sum(cpu for _, _, cpu in spans),
        )

    def wrap(self, owner: Any, attribute: str, name: str | Callable[..., str]) -> None:
        """Replace owner.attribute by a timed version; `name` may derive from the arguments."""
        original = getattr(owner, attribute)
        # A class attribute must be read raw, so a staticmethod stays one.
        raw = inspect.getattr_static(owner, attribute)
        label = name if callable(name) else (lambda *_a, **_k: name)
        record = self.add

        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                start = time.time()
                try:
                    return await original(*args, **kwargs)
                finally:
                    record(label(*args, **kwargs), start, time.time())

            replacement: Any = timed_async
        else:

            @functools.wraps(original)
            def timed(*args: Any, **kwargs: Any) -> Any:
                start, cpu = time.time(), time.thread_time()
                try:
                    return original(*args, **kwargs)
                finally:
                    record(label(*args, **kwargs), start, time.time(), time.thread_time() - cpu)

            replacement = timed
        setattr(owner, attribute, replacement)
        self._undo.append(lambda: setattr(owner, attribute, raw))

    def unwrap(self) -> None:
        """Put every wrapped function back."""
        while self._undo:
            self._undo.pop()()


def peak_rss_mb(pid: int | None = None) -> float:
    """Return a process's (default: this one's) peak resident memory since the last reset,
    in MiB (Linux)."""
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss(pid: int | None = None) -> None:
    """Reset a process's peak resident memory counter, so the next reading covers one run."""
    try:
        with open(f"/proc/{pid or 'self'}/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass  # not Linux, or not permitted: the peak then covers the whole process


def process_cpu_seconds(pid: int | None = None) -> float:
    """Return the user + system CPU seconds a process (default: this one) has used (Linux)."""
    fields = Path(f"/proc/{pid or 'self'}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
