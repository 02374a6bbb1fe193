"""The one place that builds boto3 clients: lazily, once per warm container.

Endpoints come from botocore's own AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>
variables, so the same code talks to AWS or to the local emulation.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.config import get_settings

# Standard retry mode backs off on throttling (SES, DynamoDB) with jitter.
_RETRIES = {"mode": "standard", "max_attempts": 5}
# Connections kept per client. A Lambda container runs one invocation at a time, but the
# cron reads scan segments in threads, and the local stack runs every function as threads
# of one process sharing these clients: past the pool's size each call opens a new socket.
_POOL = 32
_TIMEOUTS = {
    # A blocking invoke of a sweep-sized data call may take minutes.
    "lambda": Config(
        retries=_RETRIES, connect_timeout=5, read_timeout=900, max_pool_connections=_POOL
    ),
}


def _session() -> boto3.session.Session:
    """Return the session for the current AWS environment (credentials, endpoints)."""
    # A session caches the service models its clients load (about 100 ms each); keying it
    # on the AWS_* variables keeps that cache while credentials or endpoints stay the same.
    return _session_for(
        tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    )


@cache
def _session_for(environment: tuple[tuple[str, str], ...]) -> boto3.session.Session:
    return boto3.session.Session()


def client(service: str) -> Any:
    """Return the boto3 client for a service, built once per process."""
    return _client(service)


@cache
def _client(service: str) -> Any:
    config = _TIMEOUTS.get(
        service,
        Config(retries=_RETRIES, connect_timeout=5, read_timeout=60, max_pool_connections=_POOL),
    )
    return _session().client(service, region_name=get_settings().region, config=config)


def table(key: str) -> Any:
    """Return the DynamoDB Table resource for a table of resources.json."""
    return _table(key)


@cache
def _table(key: str) -> Any:
    settings = get_settings()
    resource = _session().resource(
        "dynamodb",
        region_name=settings.region,
        config=Config(retries=_RETRIES, max_pool_connections=_POOL),
    )
    return resource.Table(settings.table_name(key))


def reset_clients() -> None:
    """Forget every client (tests switch endpoints and credentials)."""
    # The cached builders, not the public getters: tests may replace those with stand-ins.
    _client.cache_clear()
    _table.cache_clear()
