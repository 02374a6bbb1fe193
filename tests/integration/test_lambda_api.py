"""The local Lambda Invoke API answers boto3 as AWS does: blocking, async with retries, 404."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter

import boto3
import pytest
from botocore.config import Config

from chalicelib import aws
from chalicelib.errors import NotFound
from chalicelib.invoke import invoke
from local.lambda_api import LambdaServer, LambdaService

DATA = "lambdas.data.handler"
MAILER = "lambdas.mailer.handler"


class Handlers:
    """Stand-in handlers, looked up by resources.json's handler paths, counting their calls."""

    def __init__(self):
        self.calls: Counter[str] = Counter()
        self.contexts: list = []
        self.failures_left = 0
        self.lock = threading.Lock()
        self.table = {DATA: self.data, MAILER: self.mailer}

    def load(self, path: str):
        return self.table[path]

    def data(self, event, context):
        with self.lock:
            self.calls["data"] += 1
            self.contexts.append(context)
        if event.get("action") == "explode":
            raise RuntimeError("boom")
        if event.get("action") == "missing":
            return {"errorMessage": "no such subscription", "errorType": "NotFound"}
        return {"response": {"echo": event}}

    def mailer(self, event, context):
        with self.lock:
            self.calls["mailer"] += 1
            failing = self.failures_left > 0
            self.failures_left -= 1
        if failing:
            raise ConnectionError("SES is down")
        return {"response": "sent"}


@pytest.fixture
def handlers():
    return Handlers()


@pytest.fixture
def lambda_api(settings, handlers):
    """Serve the local Lambda API on a free port with stand-in handlers and short retry delays."""
    reports: list[str] = []
    service = LambdaService(
        settings, retry_delays=(0.05, 0.1), report=reports.append, loader=handlers.load
    )
    server = LambdaServer(("127.0.0.1", 0), service)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    server.reports = reports
    yield server
    service.stop()
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(lambda_api):
    return boto3.client(
        "lambda",
        endpoint_url=lambda_api.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


def test_request_response_answers_the_handlers_json(client, settings, handlers):
    answer = client.invoke(
        FunctionName=settings.function_name("data"),
        InvocationType="RequestResponse",
        Payload=json.dumps({"action": "ping"}).encode(),
    )
    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    assert json.loads(answer["Payload"].read()) == {"response": {"echo": {"action": "ping"}}}
    context = handlers.contexts[0]
    assert context.function_name == settings.function_name("data")
    assert 0 < context.get_remaining_time_in_millis() <= 300_000
    assert context.aws_request_id


def test_a_raising_handler_is_an_unhandled_function_error(client, settings):
    answer = client.invoke(
        FunctionName=settings.function_name("data"), Payload=b'{"action": "explode"}'
    )
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    body = json.loads(answer["Payload"].read())
    assert body["errorType"] == "RuntimeError"
    assert body["errorMessage"] == "boom"


def test_an_event_is_accepted_with_202_and_run_later(client, lambda_api, settings, handlers):
    answer = client.invoke(
        FunctionName=settings.function_name("mailer"),
        InvocationType="Event",
        Payload=b'{"action": "send"}',
    )
    assert answer["StatusCode"] == 202
    assert lambda_api.service.wait_idle(5)
    assert handlers.calls["mailer"] == 1


def test_a_failed_event_is_retried_twice(client, lambda_api, settings, handlers):
    handlers.failures_left = 2
    client.invoke(
        FunctionName=settings.function_name("mailer"), InvocationType="Event", Payload=b"{}"
    )
    assert lambda_api.service.wait_idle(5)
    assert handlers.calls["mailer"] == 3  # two failures, then the retry that succeeds
    assert len(lambda_api.reports) == 2


def test_an_event_failing_every_time_is_dropped_after_three_attempts(
    client, lambda_api, settings, handlers
):
    handlers.failures_left = 10
    client.invoke(
        FunctionName=settings.function_name("mailer"), InvocationType="Event", Payload=b"{}"
    )
    assert lambda_api.service.wait_idle(5)
    assert handlers.calls["mailer"] == 3
    assert "dropped" in lambda_api.reports[-1]


def test_an_event_failing_every_time_goes_to_the_dead_letter_sink(settings, handlers):
    """As Lambda's dead-letter queue: after the third failed attempt, the event is kept."""
    kept: list[tuple[str, object, str]] = []
    service = LambdaService(
        settings,
        retry_delays=(0.05, 0.1),
        loader=handlers.load,
        dead_letter=lambda function, payload, error: kept.append(
            (function.key, payload, str(error))
        ),
    )
    handlers.failures_left = 10
    service.invoke_async(service.function(settings.function_name("mailer")), {"action": "x"})
    assert service.wait_idle(5)
    service.stop()
    assert handlers.calls["mailer"] == 3
    assert [(key, payload) for key, payload, _ in kept] == [("mailer", {"action": "x"})]


def test_an_unknown_function_is_not_found(client):
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        client.invoke(FunctionName="sslnotify-test-nothing", Payload=b"{}")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "Function not found" in raised.value.response["Error"]["Message"]


def test_the_api_is_not_invokable(client, settings):
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=settings.function_name("api"), Payload=b"{}")


def test_an_event_over_256_kb_is_refused(client, settings):
    payload = json.dumps({"action": "send", "blob": "x" * (256 * 1024)}).encode()
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(
            FunctionName=settings.function_name("mailer"), InvocationType="Event", Payload=payload
        )


def test_a_function_is_found_by_its_arn(client, settings):
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{settings.function_name('data')}"
    answer = client.invoke(FunctionName=arn, Payload=b'{"action": "ping"}')
    assert answer["StatusCode"] == 200


def test_sslnotify_invoke_works_unchanged_through_the_endpoint_variable(lambda_api, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_api.url)
    aws.reset_clients()
    assert invoke("data", {"action": "ping"}, wait=True) == {"echo": {"action": "ping"}}
    with pytest.raises(NotFound):
        invoke("data", {"action": "missing"}, wait=True)
    assert invoke("mailer", {"action": "send"}) is None
    assert lambda_api.service.wait_idle(5)


def test_a_missing_handler_module_is_reported_as_lambda_does(settings):
    service = LambdaService(settings)
    function = service.function(settings.function_name("data"))
    broken = dataclasses.replace(function, handler_path="lambdas.nothing_here.handler")
    answer, failed = service.invoke_sync(broken, {})
    assert failed
    assert json.loads(answer)["errorType"] == "Runtime.ImportModuleError"
    service.stop()


def test_a_handler_running_past_its_timeout_is_reported(settings):
    reports: list[str] = []
    service = LambdaService(settings, report=reports.append, loader=lambda path: slow_handler)
    function = dataclasses.replace(service.function(settings.function_name("data")), timeout=0.05)
    assert service.invoke_sync(function, {}) == (b'"late"', False)
    assert reports == [
        "data: Task timed out after 0.05 seconds (AWS would have stopped it; it goes on here)"
    ]
    service.stop()


def slow_handler(event, context):
    time.sleep(0.3)
    return "late"
