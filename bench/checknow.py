"""Check-now: the API's latency over a bare probe of the same loopback endpoint."""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import statistics
import time
from dataclasses import dataclass

from chalicelib.checker.probe import probe
from chalicelib.checker.targets import parse_target

# The API limits checks per client address and minute: spread the requests over loopback
# source addresses (all of 127.0.0.0/8 is this machine), a few requests each.
REQUESTS_PER_SOURCE = 10
_sources = itertools.count()  # never reuse a source address within one process


@dataclass(frozen=True)
class Latency:
    """p50 and p99 (milliseconds) of the API and of the bare probe, and the API's addition."""

    requests: int
    api_p50: float
    api_p99: float
    probe_p50: float
    probe_p99: float

    @property
    def added_p50(self) -> float:
        """Return what the API adds at the median."""
        return self.api_p50 - self.probe_p50

    @property
    def added_p99(self) -> float:
        """Return what the API adds at the 99th percentile."""
        return self.api_p99 - self.probe_p99


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _api_once(api_port: int, target: str, source: str) -> float:
    host, _, port = target.rpartition(":")
    connection = http.client.HTTPConnection("127.0.0.1", api_port, source_address=(source, 0))
    started = time.perf_counter()
    connection.request("GET", f"/check/{host}?port={port}&days=30")
    answer = connection.getresponse()
    body = answer.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if answer.status != 200:
        raise RuntimeError(f"check-now answered {answer.status}: {body[:200]!r}")
    # Its own test CA is not the stack's trusted one: what matters is that a chain was seen.
    if json.loads(body).get("status") == "error":
        raise RuntimeError(f"check-now could not probe the endpoint: {body[:300]!r}")
    return elapsed


def measure(api_port: int, target: str, requests: int = 200, timeout: float = 10.0) -> Latency:
    """Alternate `requests` bare probes and API checks of one target; return the percentiles."""
    parsed = parse_target(target)
    loop = asyncio.new_event_loop()
    api: list[float] = []
    bare: list[float] = []
    try:
        for index in range(requests):
            started = time.perf_counter()
            evidence = loop.run_until_complete(probe(parsed, timeout=timeout, allow_private=True))
            bare.append(time.perf_counter() - started)
            if not evidence.ok:
                raise RuntimeError(f"the bare probe failed: {evidence.message}")
            if index % REQUESTS_PER_SOURCE == 0:
                number = next(_sources)
                source = f"127.0.{10 + number // 250}.{number % 250 + 1}"
            api.append(_api_once(api_port, target, source))
    finally:
        loop.close()
    return Latency(
        requests=requests,
        api_p50=1000 * statistics.median(api),
        api_p99=1000 * _percentile(api, 0.99),
        probe_p50=1000 * statistics.median(bare),
        probe_p99=1000 * _percentile(bare, 0.99),
    )
