"""Shared fixtures: a clean environment per test, settings, emulated AWS, a Lambda context."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from chalicelib import aws
from chalicelib.config import get_settings, reset_settings

pytest_plugins = [
    "tests.tls_servers",
    "tests.starttls_servers",
    "tests.renewal_services",
    "tests.http_servers",
]


def _import_moto_backends() -> None:
    # moto imports a service's backend on first use; two threads doing that at once
    # (a handler thread and the test) can deadlock on the import lock, so import them now.
    import moto.dynamodb.models
    import moto.logs.models
    import moto.s3.models
    import moto.ses.models
    import moto.sns.models
    import moto.sqs.models  # noqa: F401


_import_moto_backends()

TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "SSLNOTIFY_PREFIX": "sslnotify-test",
    "SSLNOTIFY_SECRET": "test-deployment-secret-not-for-production",
    "SSLNOTIFY_SITE_URL": "https://sslnotify.test",
    "SSLNOTIFY_API_URL": "https://api.sslnotify.test",
    "SSLNOTIFY_SENDER": "sslnotify <noreply@sslnotify.test>",
    "SSLNOTIFY_OPERATOR_EMAIL": "operator@sslnotify.test",
    "SSLNOTIFY_FEEDBACK_EMAIL": "feedback@sslnotify.test",
    "SSLNOTIFY_SES_CONFIGURATION_SET": "sslnotify-test",
    # No test reaches the internet: CT and ARI are on only where a test points them at fakes.
    "SSLNOTIFY_CT": "0",
    "SSLNOTIFY_ARI": "0",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Give every test the same environment and fresh caches, so no test leaks into another."""
    for name in list(os.environ):
        if name.startswith(("SSLNOTIFY_", "AWS_ENDPOINT_URL")):
            monkeypatch.delenv(name)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    aws.reset_clients()
    yield
    reset_settings()
    aws.reset_clients()


@pytest.fixture(autouse=True)
def still_rate_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold the rate limiter's clock still, so no test straddles a window boundary by luck."""
    from chalicelib import subscription_data

    frozen = time.time()
    monkeypatch.setattr(
        subscription_data,
        "_limiter",
        lambda: subscription_data.RateLimiter(aws.table("ratelimits"), lambda: frozen),
    )


@pytest.fixture
def settings():
    """Return the settings of the test environment."""
    return get_settings()


@pytest.fixture
def emulated_aws(settings):
    """Run the test inside moto's emulation with every sslnotify resource provisioned."""
    from moto import mock_aws

    from local.provision import provision

    with mock_aws():
        aws.reset_clients()
        provision(settings)
        yield settings
    aws.reset_clients()


@dataclass
class FakeLambdaContext:
    """The parts of a Lambda context object that handlers use."""

    function_name: str = "sslnotify-test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    memory_limit_in_mb: int = 256

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    """Return a Lambda-like context object."""
    return FakeLambdaContext()


@pytest.fixture
def lambdas(emulated_aws, monkeypatch):
    """Route invoke() to the real handlers in this process, over the emulated AWS."""
    from chalicelib import claims
    from tests.inprocess_lambda import InProcessLambda

    fake = InProcessLambda(emulated_aws)
    real_client = aws.client
    monkeypatch.setattr(claims, "clock", lambda: time.time() + fake.elapsed)

    def client(service):
        return fake if service == "lambda" else real_client(service)

    monkeypatch.setattr(aws, "client", client)
    return fake
