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


class RefusingLambda:
    """A Lambda client stand-in that refuses the first `failures` calls."""

    def __init__(self, failures):
        self.failures, self.calls = failures, 0

    def invoke(self, **arguments):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("Lambda was unable to run this")
        return {"StatusCode": 202}


@pytest.mark.parametrize(("failures", "delivered"), [(0, True), (2, True), (3, False)])
def test_an_event_is_queued_again_when_lambda_refuses_it(monkeypatch, failures, delivered):
    from chalicelib import aws, invoke

    refusing = RefusingLambda(failures)
    monkeypatch.setattr(aws, "client", lambda service: refusing)
    monkeypatch.setattr(invoke, "BACKOFF_SECONDS", 0)
    if delivered:
        assert invoke.invoke("mailer", {"action": "x"}) is None
    else:
        with pytest.raises(InvocationError):
            invoke.invoke("mailer", {"action": "x"})
    assert refusing.calls == min(failures + 1, 3)


def test_a_blocking_call_is_never_repeated(monkeypatch):
    from chalicelib import aws, invoke

    refusing = RefusingLambda(1)
    monkeypatch.setattr(aws, "client", lambda service: refusing)
    with pytest.raises(InvocationError):
        invoke.invoke("data", {"action": "x"}, wait=True)
    assert refusing.calls == 1


def test_an_idempotent_blocking_call_is_tried_again(monkeypatch):
    import io

    from chalicelib import aws, invoke

    class FlakyThenAnswering(RefusingLambda):
        def invoke(self, **arguments):
            super().invoke(**arguments)
            return {"StatusCode": 200, "Payload": io.BytesIO(b'{"response": 7}')}

    flaky = FlakyThenAnswering(2)
    monkeypatch.setattr(aws, "client", lambda service: flaky)
    monkeypatch.setattr(invoke, "BACKOFF_SECONDS", 0)
    assert invoke.invoke("data", {"action": "x"}, wait=True, idempotent=True) == 7
    assert flaky.calls == 3
