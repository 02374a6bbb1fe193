"""The one place that reads configuration: Settings.from_env() and the resource names."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from chalicelib.errors import ConfigurationError

RESOURCES_FILE = Path(__file__).with_name("resources.json")
DEFAULT_TOLERANCE = 30  # days of warning when a check names none (DESIGN: the default 30)


@cache
def resources() -> dict[str, Any]:
    """Return the shared definition of tables, buckets and functions (resources.json)."""
    return json.loads(RESOURCES_FILE.read_text())


def _number(env: Mapping[str, str], name: str, default: float, kind: type = int) -> Any:
    """Read a positive number from the environment; a clear error, not a traceback, when not."""
    text = env.get(name)
    if text is None:
        return default
    try:
        value = kind(text.strip()) if text.strip().isascii() else None
    except ValueError:
        value = None
    if value is None or not value > 0 or value == float("inf"):
        raise ConfigurationError(f"{name} must be a positive number, not {text!r}")
    return value


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _directories(text: str | None) -> tuple[tuple[str, str], ...] | None:
    """Read SSLNOTIFY_ACME_DIRECTORIES: a JSON object from issuer name to ACME directory URL."""
    if not text:
        return None
    try:
        table = json.loads(text)
    except ValueError as error:
        raise ConfigurationError(f"SSLNOTIFY_ACME_DIRECTORIES is not JSON: {error}") from None
    if not isinstance(table, dict) or not all(
        isinstance(name, str) and isinstance(url, str) for name, url in table.items()
    ):
        raise ConfigurationError("SSLNOTIFY_ACME_DIRECTORIES must map issuer names to URLs")
    return tuple(table.items())


def _send_rate(env: Mapping[str, str]) -> float | None:
    # "quota": pace to what SES says the account may send (GetSendQuota's MaxSendRate).
    value = env.get("SSLNOTIFY_SES_RATE")
    if value is not None and value.strip().lower() == "quota":
        return None
    return _number(env, "SSLNOTIFY_SES_RATE", Settings.ses_send_rate, float)


@dataclass(frozen=True)
class RateLimits:
    """How many requests a client or an address may make per window."""

    check_per_client_per_minute: int = 20
    subscribe_per_client_per_hour: int = 10
    confirmations_per_address_per_day: int = 5
    manage_links_per_address_per_day: int = 3


@dataclass(frozen=True)
class Settings:
    """Everything a function, the API or the CLI needs to know about its deployment."""

    prefix: str = "sslnotify-dev"
    region: str = "us-east-1"
    secret: str | None = None
    site_url: str = "http://127.0.0.1:8000"
    api_url: str = "http://127.0.0.1:8001"
    sender: str = "sslnotify <noreply@sslnotify.localhost>"
    operator_email: str = "operator@sslnotify.localhost"
    feedback_email: str = "feedback@sslnotify.localhost"
    ses_configuration_set: str | None = None
    backup_bucket: str = "sslnotify-dev-backups"
    inbound_bucket: str = "sslnotify-dev-inbound"
    cors_origin: str = "http://127.0.0.1:8000"
    allow_private_targets: bool = False
    ca_bundle: str | None = None
    # Whether the checker has a route to IPv6 addresses: a Lambda outside a VPC has none.
    check_ipv6: bool = True
    check_timeout: float = 10.0
    check_revocation: bool = True
    checker_batch_size: int = 250
    probe_concurrency: int = 1000
    ses_send_rate: float | None = 14.0  # None: read the account's quota (GetSendQuota)
    # Evidence from outside the handshake (checker/ct.py, checker/ari.py): on unless switched off.
    ct_enabled: bool = True
    ct_search_url: str = "https://api.certspotter.com/v1/issuances"
    ct_api_key: str | None = None
    ari_enabled: bool = True
    acme_directories: tuple[tuple[str, str], ...] | None = None  # None: the shipped table
    outside_timeout: float = 3.0
    limits: RateLimits = field(default_factory=RateLimits)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build the settings from environment variables (SSLNOTIFY_*), then apply overrides."""
        env = os.environ if environ is None else environ
        prefix = env.get("SSLNOTIFY_PREFIX", cls.prefix)
        site_url = env.get("SSLNOTIFY_SITE_URL", cls.site_url).rstrip("/")
        operator = env.get("SSLNOTIFY_OPERATOR_EMAIL", cls.operator_email)
        values: dict[str, Any] = {
            "prefix": prefix,
            "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or cls.region,
            "secret": env.get("SSLNOTIFY_SECRET") or None,
            "site_url": site_url,
            "api_url": env.get("SSLNOTIFY_API_URL", cls.api_url).rstrip("/"),
            "sender": env.get("SSLNOTIFY_SENDER", cls.sender),
            "operator_email": operator,
            "feedback_email": env.get("SSLNOTIFY_FEEDBACK_EMAIL", operator),
            "ses_configuration_set": env.get("SSLNOTIFY_SES_CONFIGURATION_SET") or None,
            "backup_bucket": env.get("SSLNOTIFY_BACKUP_BUCKET", f"{prefix}-backups"),
            "inbound_bucket": env.get("SSLNOTIFY_INBOUND_BUCKET", f"{prefix}-inbound"),
            "cors_origin": env.get("SSLNOTIFY_CORS_ORIGIN", site_url),
            "allow_private_targets": _flag(env.get("SSLNOTIFY_ALLOW_PRIVATE_TARGETS")),
            "ca_bundle": env.get("SSLNOTIFY_CA_BUNDLE") or None,
            "check_ipv6": _flag(env.get("SSLNOTIFY_CHECK_IPV6", "1")),
            "check_timeout": _number(env, "SSLNOTIFY_CHECK_TIMEOUT", cls.check_timeout, float),
            # On unless turned off: a revoked certificate is an outage the dates do not show.
            "check_revocation": _flag(env.get("SSLNOTIFY_CHECK_REVOCATION", "on")),
            "checker_batch_size": _number(env, "SSLNOTIFY_CHECKER_BATCH", cls.checker_batch_size),
            "probe_concurrency": _number(env, "SSLNOTIFY_PROBE_CONCURRENCY", cls.probe_concurrency),
            "ses_send_rate": _send_rate(env),
            "ct_enabled": _flag(env.get("SSLNOTIFY_CT", "1")),
            "ct_search_url": env.get("SSLNOTIFY_CT_URL") or cls.ct_search_url,
            "ct_api_key": env.get("SSLNOTIFY_CT_API_KEY") or None,
            "ari_enabled": _flag(env.get("SSLNOTIFY_ARI", "1")),
            "acme_directories": _directories(env.get("SSLNOTIFY_ACME_DIRECTORIES")),
            "outside_timeout": _number(
                env, "SSLNOTIFY_OUTSIDE_TIMEOUT", cls.outside_timeout, float
            ),
        }
        values.update(overrides)
        return cls(**values)

    def table_name(self, key: str) -> str:
        """Return the DynamoDB table name for a table of resources.json."""
        if key not in resources()["tables"]:
            raise ConfigurationError(f"unknown table {key!r}")
        return f"{self.prefix}-{key}"

    def function_name(self, key: str) -> str:
        """Return the Lambda function name for a function of resources.json."""
        if key not in resources()["functions"]:
            raise ConfigurationError(f"unknown function {key!r}")
        return f"{self.prefix}-{key}"

    def require_secret(self) -> bytes:
        """Return the deployment secret, or fail clearly when it is not configured."""
        if not self.secret:
            raise ConfigurationError("SSLNOTIFY_SECRET is not set")
        return self.secret.encode()


@cache
def get_settings() -> Settings:
    """Return the settings of this process (read once per warm container)."""
    return Settings.from_env()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
