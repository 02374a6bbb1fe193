"""The environment every function runs with: the one list Terraform must give each function too.

`function_environment(settings)` is what a deployed function sees as SSLNOTIFY_*
variables; `Settings.from_env(function_environment(s)) == s` holds (a unit test
proves it), so nothing a function needs can be forgotten here or in Terraform.
The variables are the same for every function; only the Lambda runtime's own
(`AWS_LAMBDA_FUNCTION_NAME`, …) differ, and those `runtime_environment` lists.
"""

from __future__ import annotations

from chalicelib.config import Settings, resources

ACCOUNT_ID = "123456789012"  # moto's default account


def function_environment(settings: Settings) -> dict[str, str]:
    """Return the SSLNOTIFY_* variables every function (and the API) is deployed with."""
    variables = {
        "SSLNOTIFY_PREFIX": settings.prefix,
        "SSLNOTIFY_SITE_URL": settings.site_url,
        "SSLNOTIFY_API_URL": settings.api_url,
        "SSLNOTIFY_SENDER": settings.sender,
        "SSLNOTIFY_OPERATOR_EMAIL": settings.operator_email,
        "SSLNOTIFY_FEEDBACK_EMAIL": settings.feedback_email,
        "SSLNOTIFY_BACKUP_BUCKET": settings.backup_bucket,
        "SSLNOTIFY_INBOUND_BUCKET": settings.inbound_bucket,
        "SSLNOTIFY_CORS_ORIGIN": settings.cors_origin,
        "SSLNOTIFY_CHECK_TIMEOUT": repr(settings.check_timeout),
        "SSLNOTIFY_CHECKER_BATCH": str(settings.checker_batch_size),
        "SSLNOTIFY_PROBE_CONCURRENCY": str(settings.probe_concurrency),
        "SSLNOTIFY_SES_RATE": repr(settings.ses_send_rate),
    }
    # Optional ones are left out when unset, as Terraform leaves them out.
    if settings.secret:
        variables["SSLNOTIFY_SECRET"] = settings.secret
    if settings.ses_configuration_set:
        variables["SSLNOTIFY_SES_CONFIGURATION_SET"] = settings.ses_configuration_set
    if settings.allow_private_targets:
        variables["SSLNOTIFY_ALLOW_PRIVATE_TARGETS"] = "1"
    if settings.ca_bundle:
        variables["SSLNOTIFY_CA_BUNDLE"] = settings.ca_bundle
    return variables


def runtime_environment(settings: Settings, key: str) -> dict[str, str]:
    """Return the variables the Lambda runtime itself sets for one function."""
    spec = resources()["functions"][key]
    name = settings.function_name(key)
    return {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.get("memory", 128)),
        "AWS_LAMBDA_LOG_GROUP_NAME": log_group(settings, key),
        "_HANDLER": spec["handler"],
    }


def local_aws_environment(region: str, moto_url: str, lambda_url: str) -> dict[str, str]:
    """Return the variables that point boto3 at the emulated AWS and the local Lambda API."""
    return {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_SESSION_TOKEN": "local",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ENDPOINT_URL_LAMBDA": lambda_url,
        # A developer's ~/.aws must not redirect or sign anything here.
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


def log_group(settings: Settings, key: str) -> str:
    """Return the CloudWatch log group of a function, as Lambda names it."""
    return f"/aws/lambda/{settings.function_name(key)}"
