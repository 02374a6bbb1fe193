"""A one-line progress count on stderr while many targets are checked, shown only on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

MIN_TARGETS = 10  # below this the answer comes before a count would help
INTERVAL = 0.1  # seconds between redraws: a terminal is slower than a thousand handshakes


class Progress:
    """Count finished targets and redraw "checked N of M" in place, if `stream` is a terminal."""

    def __init__(self, total: int, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.done = 0
        self._drawn_at = 0.0
        try:
            self.enabled = total >= MIN_TARGETS and self.stream.isatty()
        except (AttributeError, ValueError):
            self.enabled = False

    def step(self) -> None:
        """Count one finished target; redraw at most every INTERVAL seconds."""
        self.done += 1
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn_at >= INTERVAL or self.done == self.total:
            self._drawn_at = now
            self._write(f"\rsslnotify: checked {self.done} of {self.total}")

    def close(self) -> None:
        """Erase the count, so the results printed next start on a clean line."""
        if self.enabled and self._drawn_at:
            self._write("\r\x1b[K")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except OSError:
            self.enabled = False  # the terminal went away; the check goes on
