"""`sslnotify trigger` finds the local stack and names the job's function and payload."""

from __future__ import annotations

import argparse
import json

from chalicelib.config import resources
from local.trigger import JOBS, _find_stack


def args(tmp_path, port=None) -> argparse.Namespace:
    return argparse.Namespace(state_dir=tmp_path, port=port)


def test_every_job_is_a_schedule_of_resources_json():
    functions = resources()["functions"]
    assert {function for function in JOBS.values()} == {
        key for key, spec in functions.items() if spec.get("schedule")
    }
    assert functions[JOBS["backup"]]["schedule_payload"] == {"action": "backup"}


def test_the_stack_file_is_used_when_its_port_matches(tmp_path):
    info = {"ports": {"frontend": 9000}, "urls": {"lambda": "http://127.0.0.1:9002"}}
    (tmp_path / "stack.json").write_text(json.dumps(info))
    assert _find_stack(args(tmp_path)) == info
    assert _find_stack(args(tmp_path, 9000)) == info


def test_without_a_stack_file_the_lambda_api_is_at_port_plus_two(tmp_path, monkeypatch):
    monkeypatch.delenv("SSLNOTIFY_PORT", raising=False)
    assert _find_stack(args(tmp_path))["urls"]["lambda"] == "http://127.0.0.1:8002"
    assert _find_stack(args(tmp_path, 9100))["urls"]["lambda"] == "http://127.0.0.1:9102"
    monkeypatch.setenv("SSLNOTIFY_PORT", "9200")
    assert _find_stack(args(tmp_path))["urls"]["lambda"] == "http://127.0.0.1:9202"
