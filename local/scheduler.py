"""Fire resources.json's schedules as EventBridge would, using croniter for the cron ones.

EventBridge writes `cron(minutes hours day-of-month month day-of-week year)` with
`?` for "any", days of the week numbered 1 (SUN) to 7 (SAT), and `rate(N unit)`.
`translate` turns one into a `Schedule` (a standard 5-field cron line, or an
interval); `Scheduler` fires each function's payload asynchronously when due.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Schedule:
    """When a job is due: a 5-field cron line (UTC) or a fixed interval in seconds."""

    cron: str | None = None
    interval: int | None = None

    def next_after(self, moment: datetime) -> datetime:
        """Return the first firing time strictly after moment (UTC)."""
        if self.interval is not None:
            return moment + timedelta(seconds=self.interval)
        return croniter(self.cron, moment).get_next(datetime)


def translate(expression: str) -> Schedule:
    """Turn an EventBridge schedule expression into a Schedule; raise ValueError if unsupported."""
    text = expression.strip()
    rate = _RATE.match(text)
    if rate:
        value, unit = int(rate[1]), rate[2].rstrip("s")
        if value < 1 or (value == 1) != (rate[2] == unit):
            raise ValueError(f"bad rate expression {expression!r} (rate(1 hour), rate(5 hours))")
        return Schedule(interval=value * _UNITS[unit])
    cron = _CRON.match(text)
    if not cron:
        raise ValueError(f"not an EventBridge schedule expression: {expression!r}")
    fields = cron[1].split()
    if len(fields) != 6:
        raise ValueError(f"cron() needs 6 fields, got {len(fields)}: {expression!r}")
    minutes, hours, day_of_month, month, day_of_week, year = fields
    if year not in {"*", "?"}:
        raise ValueError(f"a year other than * is not supported locally: {expression!r}")
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ValueError(f"exactly one of day-of-month and day-of-week must be ?: {expression!r}")
    if re.search(r"[LW]", day_of_month) or re.search(r"#|\dL|^L$", day_of_week):
        raise ValueError(f"L, W and # are not supported locally: {expression!r}")
    line = " ".join(
        [
            minutes,
            hours,
            "*" if day_of_month == "?" else day_of_month,
            month,
            "*" if day_of_week == "?" else _weekdays(day_of_week),
        ]
    )
    if not croniter.is_valid(line):
        raise ValueError(f"not a valid schedule: {expression!r}")
    return Schedule(cron=line)


def _weekdays(field: str) -> str:
    # EventBridge counts 1 = SUN … 7 = SAT; cron counts 0 = SUN … 6 = SAT. Names are the same.
    return re.sub(r"\d+", lambda number: str(int(number[0]) - 1), field)


@dataclass(frozen=True)
class Job:
    """One schedule: which function gets which payload when."""

    function: str
    payload: dict[str, Any]
    schedule: Schedule
    expression: str


def jobs_from(functions: dict[str, dict[str, Any]]) -> list[Job]:
    """Return the scheduled jobs of resources.json's functions."""
    return [
        Job(
            key,
            dict(spec.get("schedule_payload", {})),
            translate(spec["schedule"]),
            spec["schedule"],
        )
        for key, spec in functions.items()
        if spec.get("schedule")
    ]


class Scheduler:
    """Fire each job when due, in a background thread, by calling fire(function, payload)."""

    def __init__(
        self,
        jobs: list[Job],
        fire: Callable[[str, dict[str, Any]], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.jobs = jobs
        self._fire = fire
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        now = clock()
        self.due = {job.function: job.schedule.next_after(now) for job in jobs}

    def start(self) -> None:
        """Start firing."""
        if self.jobs:
            self._thread.start()

    def stop(self) -> None:
        """Stop firing."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def tick(self) -> list[str]:
        """Fire every job that is due now; return which fired."""
        now = self._clock()
        fired = []
        for job in self.jobs:
            if self.due[job.function] <= now:
                # A laptop that slept through a firing fires once, then resumes the schedule.
                self.due[job.function] = job.schedule.next_after(now)
                self._fire(job.function, job.payload)
                fired.append(job.function)
        return fired

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            wait = min(self.due.values()) - self._clock()
            self._stop.wait(min(max(wait.total_seconds(), 0.05), 30.0))
