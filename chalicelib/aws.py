"""The one place that builds boto3 clients: lazily, once per warm container.

Endpoints come from botocore's own AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>
variables, so the same code talks to AWS or to the local emulation.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.config import get_settings

# Standard retry mode backs off on throttling (SES, DynamoDB) with jitter.
_RETRIES = {"mode": "standard", "max_attempts": 5}
_TIMEOUTS = {
    # A blocking invoke of a sweep-sized data call may take minutes.
    "lambda": Config(retries=_RETRIES, connect_timeout=5, read_timeout=900),
}


@cache
def client(service: str) -> Any:
    """Return the boto3 client for a service, built once per process."""
    config = _TIMEOUTS.get(service, Config(retries=_RETRIES, connect_timeout=5, read_timeout=60))
    return boto3.session.Session().client(service, region_name=get_settings().region, config=config)


@cache
def table(key: str) -> Any:
    """Return the DynamoDB Table resource for a table of resources.json."""
    settings = get_settings()
    resource = boto3.session.Session().resource(
        "dynamodb", region_name=settings.region, config=Config(retries=_RETRIES)
    )
    return resource.Table(settings.table_name(key))


def reset_clients() -> None:
    """Forget every client (tests switch endpoints and credentials)."""
    client.cache_clear()
    table.cache_clear()
