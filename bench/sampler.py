"""A sampling profiler for every thread of this process: where the stack spends its CPU.

Every `interval` seconds a thread reads all other threads' stacks (sys._current_frames).
A thread whose innermost frame is a blocking call (socket, select, lock, sleep) is
waiting, not computing, and is left out; the rest are counted per module and function,
so the table approximates CPU time per place in the code, across threads. It cannot tell
a thread that computes from one that waits to take the GIL back after a C call: read the
figures as "threads were here", an upper bound on CPU time.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from pathlib import Path

# Innermost functions that mean "waiting": the GIL is released in them.
WAITING = frozenset(
    {
        "select",
        "poll",
        "wait",
        "_wait_for_tstate_lock",
        "recv",
        "recv_into",
        "readinto",
        "accept",
        "sleep",
        "serve_forever",
        "_worker",
        "get",
        "acquire",
        "readline",
        "_run_once",
        "connect",
        "create_connection",
        "write",
        "send",
        "sendall",
        "flush",
    }
)


class Sampler:
    """Sample every thread's stack in a background thread; count busy frames."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.samples = 0
        self.leaf: Counter[str] = Counter()  # innermost busy frame: self time
        self.area: Counter[str] = Counter()  # first frame in an interesting package
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident == me or frame.f_code.co_name in WAITING:
                    continue
                self.leaf[_where(frame)] += 1
                self.area[_area(frame)] += 1

    def report(self, top: int = 25) -> list[str]:
        """Return the busiest places, as lines: share of samples and place."""
        if not self.samples:
            return []
        seconds = self.samples * self.interval
        lines = [f"sampled {self.samples} times over ≈ {seconds:.1f} s (busy threads per sample)"]
        lines.append("by file (innermost frame of sslnotify, moto, botocore, ...):")
        for place, count in self.area.most_common(top):
            lines.append(f"  {count * self.interval:8.2f} s  {place}")
        lines.append("by innermost function (self time):")
        for place, count in self.leaf.most_common(top):
            lines.append(f"  {count * self.interval:8.2f} s  {place}")
        return lines


def _where(frame) -> str:
    code = frame.f_code
    return f"{_short(code.co_filename)}:{code.co_name}"


AREAS = ("chalicelib", "lambdas", "local", "moto", "botocore", "boto3", "werkzeug", "chalice")


def _area(frame) -> str:
    """Return the file of the innermost frame in one of AREAS (the library doing the work)."""
    while frame is not None:
        path = frame.f_code.co_filename
        if any(f"/{area}/" in path for area in AREAS):
            return _short(path)
        frame = frame.f_back
    return "other"


def _short(path: str) -> str:
    parts = Path(path).parts
    for anchor in ("site-packages", "main", "lib"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            return "/".join(parts[index + 1 :])
    return path


def sampled(interval: float = 0.005) -> Sampler:
    """Return a started sampler."""
    sampler = Sampler(interval)
    sampler.start()
    return sampler
