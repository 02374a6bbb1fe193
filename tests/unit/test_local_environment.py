"""The functions' environment is one list: from it, every function builds the same settings."""

from __future__ import annotations

import re
from pathlib import Path

from chalicelib.config import Settings
from local.environment import DEPLOYED, function_environment, runtime_environment


def test_the_environment_rebuilds_the_same_settings():
    settings = Settings.from_env(
        {},
        secret="s3cret",
        site_url="http://127.0.0.1:9000",
        api_url="http://127.0.0.1:9001",
        cors_origin="http://127.0.0.1:9000",
        allow_private_targets=True,
        ca_bundle="/tmp/root.pem",
        ses_configuration_set="events",
        check_timeout=4.5,
        ct_enabled=False,
        ct_search_url="http://127.0.0.1:9/v1/issuances",
        acme_directories=(("Test CA", "http://127.0.0.1:9/directory"),),
        outside_timeout=1.5,
        check_ipv6=False,
        check_revocation=False,
    )
    assert Settings.from_env(function_environment(settings)) == settings


def test_ipv6_is_checked_unless_the_setting_says_there_is_no_route():
    assert Settings.from_env({}).check_ipv6 is True
    assert Settings.from_env({"SSLNOTIFY_CHECK_IPV6": "0"}).check_ipv6 is False
    assert Settings.from_env({"SSLNOTIFY_CHECK_IPV6": "1"}).check_ipv6 is True
    assert "SSLNOTIFY_CHECK_IPV6" not in function_environment(Settings.from_env({}))


def test_the_defaults_rebuild_too():
    settings = Settings.from_env({})
    environment = function_environment(settings)
    assert "SSLNOTIFY_ALLOW_PRIVATE_TARGETS" not in environment
    assert Settings.from_env(environment) == settings


def test_the_runtime_names_the_function_and_its_log_group():
    runtime = runtime_environment(Settings.from_env({}), "checker")
    assert runtime["AWS_LAMBDA_FUNCTION_NAME"] == "sslnotify-dev-checker"
    assert runtime["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/sslnotify-dev-checker"
    assert runtime["_HANDLER"] == "lambdas.checker.handler"


def test_terraform_gives_every_function_the_same_variables():
    terraform = (Path(__file__).parents[2] / "terraform" / "lambda.tf").read_text()
    block = terraform.split("function_environment = {", 1)[1].split("}", 1)[0]
    shared = set(re.findall(r"\b(SSLNOTIFY_[A-Z_]+)\s*=", block))
    # The secret goes only to the functions whose code uses it (terraform/permissions.json).
    assert shared == set(DEPLOYED) - {"SSLNOTIFY_SECRET"}
    assert re.search(r"SSLNOTIFY_SECRET\s*=\s*aws_secretsmanager_secret_version", terraform)


def test_only_deployed_variables_are_set_when_nothing_is_tuned():
    settings = Settings.from_env({}, secret="s", ses_configuration_set="events")
    assert set(function_environment(settings)) == set(DEPLOYED)
