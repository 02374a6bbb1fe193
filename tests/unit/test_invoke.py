"""The invocation dispatcher: named fields, clear errors for malformed payloads."""

import pytest

from chalicelib.errors import InvocationError, NotFound
from chalicelib.invoke import dispatch


def greet(name, punctuation="!"):
    return f"hello {name}{punctuation}"


def missing(name):
    raise NotFound(f"no {name}")


ACTIONS = {"greet": greet, "missing": missing}


def test_dispatch_runs_the_named_action_with_its_fields():
    assert dispatch({"action": "greet", "name": "x"}, ACTIONS) == {"response": "hello x!"}


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (None, "JSON object"),
        ([], "JSON object"),
        ("greet", "JSON object"),
        ({}, "unknown action"),
        ({"action": ["greet"]}, "unknown action"),
        ({"action": "nope"}, "unknown action"),
        ({"action": "greet"}, "missing field(s): name"),
        ({"action": "greet", "name": "x", "extra": 1}, "unexpected field(s): extra"),
    ],
)
def test_dispatch_answers_malformed_payloads_with_an_error(payload, fragment):
    answer = dispatch(payload, ACTIONS)
    assert fragment in answer["errorMessage"]
    assert answer["errorType"] == "PayloadError"


def test_dispatch_reports_domain_errors_by_type():
    assert dispatch({"action": "missing", "name": "x"}, ACTIONS) == {
        "errorMessage": "no x",
        "errorType": "NotFound",
    }


def test_dispatch_lets_a_failed_downstream_call_propagate_so_aws_retries():
    def flaky():
        raise InvocationError("data did not answer")

    with pytest.raises(InvocationError):
        dispatch({"action": "flaky"}, {"flaky": flaky})
