"""EventBridge schedule expressions translate to the same firing times locally."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.config import resources
from local.scheduler import Schedule, Scheduler, jobs_from, translate

NOW = datetime(2026, 11, 27, 6, 10, tzinfo=UTC)  # a Friday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 6 * * ? *)", Schedule(cron="0 6 * * *")),
        ("cron(30 6 * * ? *)", Schedule(cron="30 6 * * *")),
        ("cron(0/15 * * * ? *)", Schedule(cron="0/15 * * * *")),
        ("cron(0 9 ? * MON-FRI *)", Schedule(cron="0 9 * * MON-FRI")),
        ("cron(0 9 ? * 2-6 *)", Schedule(cron="0 9 * * 1-5")),  # 1 = SUN in EventBridge
        ("cron(0 12 ? * 1,7 *)", Schedule(cron="0 12 * * 0,6")),
        ("cron(0 0 1 * ? *)", Schedule(cron="0 0 1 * *")),
        ("rate(1 hour)", Schedule(interval=3600)),
        ("rate(5 minutes)", Schedule(interval=300)),
        ("rate(2 days)", Schedule(interval=172800)),
        (" rate( 1 minute ) ", Schedule(interval=60)),
    ],
)
def test_translate(expression, expected):
    assert translate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "first"),
    [
        ("cron(0 6 * * ? *)", datetime(2026, 11, 28, 6, 0, tzinfo=UTC)),
        ("cron(30 6 * * ? *)", datetime(2026, 11, 27, 6, 30, tzinfo=UTC)),
        ("cron(0 9 ? * 2-6 *)", datetime(2026, 11, 27, 9, 0, tzinfo=UTC)),
        ("cron(0 9 ? * 2 *)", datetime(2026, 11, 30, 9, 0, tzinfo=UTC)),  # 2 = Monday
        ("rate(1 hour)", datetime(2026, 11, 27, 7, 10, tzinfo=UTC)),
    ],
)
def test_next_firing(expression, first):
    assert translate(expression).next_after(NOW) == first


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 6 * * *)",  # five fields: a Unix line, not EventBridge
        "cron(0 6 * * * *)",  # neither day field is ?
        "cron(0 6 ? * ? *)",  # both are
        "cron(0 6 * * ? 2027)",
        "cron(0 6 L * ? *)",
        "cron(0 6 ? * 6#3 *)",
        "cron(61 6 * * ? *)",
        "rate(1 hours)",
        "rate(2 hour)",
        "rate(0 minutes)",
        "rate(1 week)",
        "at(2026-11-27T06:00:00)",
        "",
    ],
)
def test_translate_refuses_what_it_cannot_honour(expression):
    with pytest.raises(ValueError):
        translate(expression)


def test_every_schedule_of_resources_json_translates():
    jobs = {job.function: job for job in jobs_from(resources()["functions"])}
    assert set(jobs) == {"cron", "reporter", "data"}
    assert jobs["cron"].payload == {"action": "sweep"}
    assert jobs["data"].payload == {"action": "backup"}
    assert jobs["reporter"].schedule.next_after(NOW) == datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


def test_the_scheduler_fires_each_job_once_when_due():
    moments = iter(
        [
            NOW,
            NOW,
            datetime(2026, 11, 27, 7, 0, tzinfo=UTC),
            datetime(2026, 11, 27, 7, 1, tzinfo=UTC),
        ]
    )
    fired: list[tuple[str, dict]] = []
    scheduler = Scheduler(
        jobs_from(resources()["functions"]),
        lambda function, payload: fired.append((function, payload)),
        clock=lambda: next(moments),
    )
    assert scheduler.tick() == []
    assert scheduler.tick() == ["reporter"]
    assert fired == [("reporter", {"action": "report"})]
    assert scheduler.tick() == []
    assert scheduler.due["reporter"] == datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
