"""The local Lambda service, isolated: a warm worker process per function, timeouts enforced."""

from __future__ import annotations

import dataclasses
import os

import pytest

from local.lambda_api import FunctionFailed, LambdaService


@pytest.fixture
def service(settings):
    """An isolated service whose cron and data functions run the stand-in handlers."""
    reports: list[str] = []
    running = LambdaService(settings, report=reports.append, isolated=True)
    for name, function in list(running.functions.items()):
        path = {"cron": "remember", "data": "remember", "checker": "sleepy", "mailer": "failing"}
        if function.key in path:
            changed = dataclasses.replace(
                function,
                handler_path=f"tests.integration.worker_handlers.{path[function.key]}",
                timeout=1.0 if function.key == "checker" else function.timeout,
            )
            running.functions[name] = changed
            running.pools[function.key].function = changed
    running.reports = reports
    yield running
    running.stop(timeout=1)


def function(service, key):
    return next(f for f in service.functions.values() if f.key == key)


def test_each_function_runs_in_its_own_warm_process_with_its_own_module_state(service):
    cron, data = function(service, "cron"), function(service, "data")
    first = service.run(cron, {"note": "a"})
    again = service.run(cron, {"note": "b"})
    other = service.run(data, {"note": "c"})
    assert first["pid"] == again["pid"] != os.getpid()  # warm: the same container again
    assert again["calls"] == ["a", "b"]
    assert other["pid"] != first["pid"] and other["calls"] == ["c"]  # nothing shared
    assert other["function"].endswith("-data")


def test_an_invocation_past_its_timeout_is_killed_and_the_next_gets_a_fresh_process(service):
    checker = function(service, "checker")
    warm = service.run(checker, {"seconds": 0})
    with pytest.raises(FunctionFailed, match=r"Task timed out after 1\.00 seconds"):
        service.run(checker, {"seconds": 30})
    assert any("its process was killed" in line for line in service.reports)
    assert not os.path.exists(f"/proc/{warm['pid']}")  # the container is gone
    fresh = service.run(checker, {"seconds": 0})
    assert fresh["pid"] != warm["pid"]


def test_a_raising_handler_reports_its_error_type_and_keeps_its_process(service):
    mailer = function(service, "mailer")
    with pytest.raises(FunctionFailed, match="deliberate failure") as raised:
        service.run(mailer, {})
    assert raised.value.error_type == "ValueError"
    assert service.pools["mailer"].size == 1
