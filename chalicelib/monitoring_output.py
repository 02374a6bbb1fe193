"""Check results as monitors read them: a Nagios/Icinga plugin line and Prometheus text exposition.

Both work from the result JSON (DESIGN 3.1), the contract every result keeps; per-address
entries (`addresses`, DESIGN 3.1b) are used where a result has them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

# Monitoring-plugin states, worst last (the exit status is the number).
STATE_WORDS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
STATUS_CODES = {"ok": 0, "expiring": 1, "invalid": 2, "error": 3}
STATUSES = tuple(STATUS_CODES)
MAX_NAMED = 5  # targets named in a Nagios summary line, worst first
_UNSAFE = re.compile(r"[\x00-\x1f\x7f|]+")


def plugin_state(result: Mapping[str, Any], critical: int | None) -> int:
    """Return the result's monitoring-plugin state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

    With `critical`, a certificate with fewer days left than that is CRITICAL even when its
    only problem is that it expires soon.
    """
    state = STATUS_CODES[result["status"]]
    days = result.get("daysLeft")
    if critical is not None and state < 2 and days is not None and days < critical:
        return 2
    return state


def _clean(text: Any) -> str:
    # Certificate names are attacker-controlled: no line breaks, and no "|" (it starts perfdata).
    return _UNSAFE.sub(" ", str(text)).strip()


def _target(result: Mapping[str, Any], field: str = "host") -> str:
    host = result.get(field) or result["host"]
    return f"[{host}]:{result['port']}" if ":" in host else f"{host}:{result['port']}"


def _summary(result: Mapping[str, Any]) -> str:
    days = result.get("daysLeft")
    if result["status"] == "error" or days is None:
        detail = "; ".join(problem["message"] for problem in result["problems"])
    elif days >= 0:
        detail = f"{days} day{'s' if days != 1 else ''} left, issued by {result['issuedBy']}"
        others = [p["message"] for p in result["problems"] if p["code"] != "expiring"]
        detail = "; ".join([detail, *others])
    else:
        detail = "; ".join(problem["message"] for problem in result["problems"])
    return _clean(f"{_target(result)} {detail}")


def _perf_label(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _perfdata(result: Mapping[str, Any], label: str, critical: int | None) -> str:
    days = result.get("daysLeft")
    value = "U" if days is None else str(days)
    # Thresholds in the plugins' range format: "30:" alerts when the value falls below 30.
    warn = f"{result['daysTolerance']}:" if result.get("daysTolerance") is not None else ""
    crit = f"{critical}:" if critical is not None else ""
    return f"{label}={value};{warn};{crit}".rstrip(";")


def nagios_line(results: Sequence[Mapping[str, Any]], critical: int | None) -> tuple[str, int]:
    """Return the plugin output line (status word, summary, perfdata) and its exit status."""
    if not results:
        return "SSLNOTIFY UNKNOWN - no target to check", 3
    states = [plugin_state(result, critical) for result in results]
    worst = max(states, default=3)
    if len(results) == 1:
        summary = _summary(results[0])
        perfdata = _perfdata(results[0], "days", critical)
    else:
        counts = [
            f"{states.count(state)} {STATE_WORDS[state].lower()}"
            for state in (2, 1, 3, 0)
            if states.count(state)
        ]
        ranked = sorted(zip(states, results, strict=True), key=lambda pair: -pair[0])
        named = [_summary(result) for state, result in ranked if state][:MAX_NAMED]
        more = sum(1 for state in states if state) - len(named)
        summary = f"{len(results)} targets: " + ", ".join(counts)
        if named:
            summary += "; " + "; ".join(named) + (f"; and {more} more" if more > 0 else "")
        perfdata = " ".join(
            _perfdata(result, _perf_label(f"days_{_target(result)}"), critical)
            for result in results
        )
    return f"SSLNOTIFY {STATE_WORDS[worst]} - {summary} | {perfdata}", worst


# (name, type, help) of each Prometheus family, in the order they are written.
FAMILIES = (
    (
        "sslnotify_certificate_expiry_timestamp_seconds",
        "gauge",
        "When the served leaf certificate expires (notAfter), as a Unix time.",
    ),
    (
        "sslnotify_certificate_days_left",
        "gauge",
        "Whole days until the leaf certificate expires, rounded down, as the alerts count them.",
    ),
    (
        "sslnotify_chain_expiry_timestamp_seconds",
        "gauge",
        "When the first certificate of the served chain expires, as a Unix time.",
    ),
    (
        "sslnotify_check_status",
        "gauge",
        "1 for the status the check found (ok, expiring, invalid, error), 0 for the others.",
    ),
    ("sslnotify_check_success", "gauge", "1 when a certificate was obtained, else 0."),
    ("sslnotify_check_timestamp_seconds", "gauge", "When the check ran, as a Unix time."),
)


def _label_value(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, Any]) -> str:
    return "{" + ",".join(f'{key}="{_label_value(value)}"' for key, value in labels.items()) + "}"


def _unix(moment: str | None) -> str | None:
    return None if moment is None else f"{datetime.fromisoformat(moment).timestamp():.0f}"


def _observations(result: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    """One observation per address: the result's `addresses` when it has them, else itself."""
    addresses = result.get("addresses") or [result]
    for entry in addresses:
        status = entry.get("status", result["status"])
        yield {
            "address": entry.get("address") or "",
            "status": status,
            "daysLeft": entry.get("daysLeft"),
            "notAfter": entry.get("notAfter"),
            "earliest": (result.get("earliestExpiry") or {}).get("notAfter")
            if entry is result
            else None,
            "checkedAt": result.get("checkedAt"),
        }


def prometheus_text(results: Sequence[Mapping[str, Any]]) -> str:
    """Return Prometheus text exposition (for node_exporter's textfile collector)."""
    samples: dict[str, list[str]] = {name: [] for name, _, _ in FAMILIES}
    seen: set[tuple[str, str]] = set()
    for result in results:
        for seen_at in _observations(result):
            key = (_target(result, "hostAscii"), seen_at["address"])
            if key in seen:
                continue  # a target listed twice: one series, as Prometheus requires
            seen.add(key)
            labels = {"target": key[0], "address": key[1]}
            values = {
                "sslnotify_certificate_expiry_timestamp_seconds": _unix(seen_at["notAfter"]),
                "sslnotify_certificate_days_left": seen_at["daysLeft"],
                "sslnotify_chain_expiry_timestamp_seconds": _unix(seen_at["earliest"]),
                "sslnotify_check_success": int(seen_at["notAfter"] is not None),
                "sslnotify_check_timestamp_seconds": _unix(seen_at["checkedAt"]),
            }
            for name, value in values.items():
                if value is not None:
                    samples[name].append(f"{name}{_labels(labels)} {value}")
            for status in STATUSES:
                flag = int(seen_at["status"] == status)
                sample = f"sslnotify_check_status{_labels({**labels, 'status': status})} {flag}"
                samples["sslnotify_check_status"].append(sample)
    lines = []
    for name, kind, help_text in FAMILIES:
        if samples[name]:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples[name]]
    return "\n".join(lines) + "\n" if lines else ""
