"""The environment every function runs with: the same list Terraform gives each function.

`function_environment(settings)` is what a function sees as SSLNOTIFY_* variables;
`Settings.from_env(function_environment(s)) == s` holds, and DEPLOYED names those
terraform/lambda.tf must set (unit tests prove both). The variables are the same
for every function; only the Lambda runtime's own (`AWS_LAMBDA_FUNCTION_NAME`, …)
differ, and `runtime_environment` lists those.
"""

from __future__ import annotations

import json

from chalicelib.config import Settings, resources

ACCOUNT_ID = "123456789012"  # moto's default account


# What every deployed function must be given (terraform/lambda.tf's function_environment);
# a unit test holds the two lists together.
DEPLOYED = (
    "SSLNOTIFY_PREFIX",
    "SSLNOTIFY_SECRET",
    "SSLNOTIFY_SITE_URL",
    "SSLNOTIFY_API_URL",
    "SSLNOTIFY_CORS_ORIGIN",
    "SSLNOTIFY_SENDER",
    "SSLNOTIFY_OPERATOR_EMAIL",
    "SSLNOTIFY_FEEDBACK_EMAIL",
    "SSLNOTIFY_SES_CONFIGURATION_SET",
    "SSLNOTIFY_BACKUP_BUCKET",
    "SSLNOTIFY_INBOUND_BUCKET",
    "SSLNOTIFY_SES_RATE",
)


def function_environment(settings: Settings) -> dict[str, str]:
    """Return the SSLNOTIFY_* variables every function (and the API) runs with."""
    values = {
        "SSLNOTIFY_PREFIX": settings.prefix,
        "SSLNOTIFY_SECRET": settings.secret,
        "SSLNOTIFY_SITE_URL": settings.site_url,
        "SSLNOTIFY_API_URL": settings.api_url,
        "SSLNOTIFY_CORS_ORIGIN": settings.cors_origin,
        "SSLNOTIFY_SENDER": settings.sender,
        "SSLNOTIFY_OPERATOR_EMAIL": settings.operator_email,
        "SSLNOTIFY_FEEDBACK_EMAIL": settings.feedback_email,
        "SSLNOTIFY_SES_CONFIGURATION_SET": settings.ses_configuration_set,
        "SSLNOTIFY_BACKUP_BUCKET": settings.backup_bucket,
        "SSLNOTIFY_INBOUND_BUCKET": settings.inbound_bucket,
        # AWS paces to the account's quota ("quota"); the local stack to its emulated SES's.
        "SSLNOTIFY_SES_RATE": (
            "quota" if settings.ses_send_rate is None else repr(settings.ses_send_rate)
        ),
    }
    # Only the local stack and tests change these; AWS runs with the defaults.
    defaults = Settings()
    tunables = {
        "SSLNOTIFY_ALLOW_PRIVATE_TARGETS": ("allow_private_targets", lambda v: "1" if v else ""),
        "SSLNOTIFY_CA_BUNDLE": ("ca_bundle", str),
        "SSLNOTIFY_CHECK_TIMEOUT": ("check_timeout", repr),
        "SSLNOTIFY_CHECK_IPV6": ("check_ipv6", lambda v: "1" if v else "0"),
        "SSLNOTIFY_CHECK_REVOCATION": ("check_revocation", lambda v: "1" if v else "0"),
        "SSLNOTIFY_CHECKER_BATCH": ("checker_batch_size", str),
        "SSLNOTIFY_PROBE_CONCURRENCY": ("probe_concurrency", str),
        "SSLNOTIFY_CT": ("ct_enabled", lambda v: "1" if v else "0"),
        "SSLNOTIFY_CT_URL": ("ct_search_url", str),
        "SSLNOTIFY_CT_API_KEY": ("ct_api_key", str),
        "SSLNOTIFY_ARI": ("ari_enabled", lambda v: "1" if v else "0"),
        "SSLNOTIFY_ACME_DIRECTORIES": ("acme_directories", lambda v: json.dumps(dict(v))),
        "SSLNOTIFY_OUTSIDE_TIMEOUT": ("outside_timeout", repr),
    }
    for name, (attribute, text) in tunables.items():
        if getattr(settings, attribute) != getattr(defaults, attribute):
            values[name] = text(getattr(settings, attribute))
    return {name: value for name, value in values.items() if value}


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
