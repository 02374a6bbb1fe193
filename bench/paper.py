"""Unit figures for docs/scaling.md: cron's planning at 1 M subscriptions, the backup's memory.

.venv/bin/python -m bench.paper [--subscriptions 1000000] [--targets 300000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import secrets
import time
import tracemalloc
from typing import Any

from chalicelib.backup import _to_document
from chalicelib.sweep import json_size, plan_batches

SAMPLE = 20_000  # items measured with tracemalloc (slow), then scaled per subscription


def scanned(count: int, targets: int) -> list[dict[str, str]]:
    """Return subscriptions as cron receives them from data.scan_subscriptions."""
    return [
        {
            "subscriber": secrets.token_hex(16),
            "target": f"www.host-{index % targets}.example.com:443",
            "tolerance": ("30", "14", "auto")[index % 3],
        }
        for index in range(count)
    ]


def planning(count: int, targets: int) -> dict[str, Any]:
    """Time plan_batches over `count` subscriptions; bytes per subscription held and at peak."""
    tracemalloc.start()
    sample = json.loads(json.dumps(scanned(SAMPLE, max(1, targets * SAMPLE // count))))
    held = tracemalloc.get_traced_memory()[0]
    plan_batches(sample, 250)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del sample
    items = json.loads(json.dumps(scanned(count, targets)))  # decoded, as from the pages
    started = time.perf_counter()
    batches = plan_batches(items, 250)
    seconds = time.perf_counter() - started
    sizes = [json_size({"action": "check", "day": "2026-11-27", "targets": b}) for b in batches]
    return {
        "subscriptions": count,
        "targets": targets,
        "plan_seconds": seconds,
        "batches": len(batches),
        "payload_kb_mean": sum(sizes) / len(sizes) / 1024,
        "payload_kb_max": max(sizes) / 1024,
        "bytes_held_per_subscription": held / SAMPLE,
        "bytes_peak_per_subscription": peak / SAMPLE,
        "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _subscription_item() -> dict[str, Any]:
    sealed = base64.b64encode(os.urandom(58)).decode()  # nonce + a 30-byte address + tag
    return {
        "subscriber": {"S": secrets.token_hex(16)},
        "target": {"S": "www.example-shop.com:443"},
        "address": {"S": sealed},
        "tolerance": {"S": "30"},
        "token": {"S": secrets.token_urlsafe(24)},
        "confirm_token": {"S": secrets.token_urlsafe(24)},
        "created_at": {"S": "2026-11-27T06:00:00Z"},
        "confirmed_at": {"S": "2026-11-27T06:00:00Z"},
    }


def _state_item() -> dict[str, Any]:
    summary = {"status": {"S": "ok"}, "daysLeft": {"N": "54"}, "problems": {"L": []}}
    summary["notAfter"] = {"S": "2027-01-20T12:00:00Z"}
    return {
        "subscriber": {"S": secrets.token_hex(16)},
        "target": {"S": "www.example-shop.com:443"},
        "status": {"S": "ok"},
        "checked_day": {"S": "2026-11-27"},
        "error_streak": {"N": "0"},
        "alerting": {"BOOL": False},
        "alert_sent_day": {"S": "2026-11-20"},
        "summary": {"M": summary},
    }


def backup_memory() -> dict[str, float]:
    """Peak bytes per subscription while backup.py holds and serialises both tables."""
    tracemalloc.start()
    documents = [_to_document(_subscription_item()) for _ in range(SAMPLE)]
    documents += [_to_document(_state_item()) for _ in range(SAMPLE)]
    body = json.dumps({"tables": documents}, separators=(",", ":"), sort_keys=True).encode()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "peak_bytes_per_subscription": peak / SAMPLE,
        "json_bytes_per_subscription": len(body) / SAMPLE,
    }


def main() -> None:
    """Print the unit figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.paper", description=__doc__)
    parser.add_argument("--subscriptions", type=int, default=1_000_000)
    parser.add_argument("--targets", type=int, default=300_000)
    args = parser.parse_args()
    figures = {
        "backup": backup_memory(),
        "planning": planning(args.subscriptions, args.targets),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
