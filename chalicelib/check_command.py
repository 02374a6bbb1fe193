"""`sslnotify check TARGET…`: check certificates now, print one line (or JSON object) per target."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys

from chalicelib.checker import ssrf
from chalicelib.checker.check import CheckRequest, check_many
from chalicelib.checker.evaluate import CheckResult, Problem
from chalicelib.checker.renewal_lookup import lookup_from
from chalicelib.checker.targets import STARTTLS_PORTS, parse_target
from chalicelib.checker.trust import default_trust, read_bundle
from chalicelib.config import get_settings
from chalicelib.errors import BadInput, UsageError

MAX_DAYS = 365
MAX_TIMEOUT = 300.0
# Monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
EXIT_CODES = {"ok": 0, "expiring": 1, "invalid": 2, "error": 3}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `sslnotify check`."""
    parser.add_argument(
        "targets",
        nargs="+",
        metavar="TARGET",
        help="host, host:port, [IPv6]:port, an IP address or a URL (smtp://host: STARTTLS)",
    )
    parser.add_argument(
        "--days", default="30", help="alert this many days before expiry (1-365) or 'auto'"
    )
    parser.add_argument(
        "--port", help="port for targets that name none (443, or the --starttls protocol's)"
    )
    parser.add_argument(
        "--starttls",
        metavar="PROTO",
        help=f"upgrade to TLS with STARTTLS first: {', '.join(STARTTLS_PORTS)}",
    )
    parser.add_argument("--ip", help="connect to this address, still matching the host name")
    parser.add_argument("--cafile", help="PEM file of extra trusted root certificates")
    parser.add_argument("--timeout", default="10", help="seconds allowed per target (10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument(
        "--no-ct",
        action="store_true",
        help="do not search Certificate Transparency logs for an undeployed renewal",
    )
    parser.add_argument(
        "--no-ari",
        action="store_true",
        help="do not ask the CA for its renewal window (ACME Renewal Information)",
    )
    parser.add_argument(
        "--no-revocation",
        action="store_true",
        help="do not look up whether the certificates are revoked (OCSP, CRLs)",
    )


def parse_days(text: str) -> int | str:
    """Read a tolerance: a whole number of days 1-365, or "auto"."""
    if text.strip().lower() == "auto":
        return "auto"
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise UsageError(
            f"--days must be a whole number from 1 to {MAX_DAYS} or 'auto', not {text!r}"
        )
    return int(text)


def _parse_port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise UsageError(f"--port must be a port number from 1 to 65535, not {text!r}")
    return int(text)


def _parse_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_TIMEOUT:
        raise UsageError(
            f"--timeout must be a number of seconds above 0 and at most 300, not {text!r}"
        )
    return value


def _parse_ip(text: str) -> str:
    try:
        return str(ssrf.parse_address(text))
    except ValueError:
        raise UsageError(f"--ip must be an IP address, not {text!r}") from None


def _parse_starttls(text: str) -> str:
    name = text.strip().lower()
    name = "postgres" if name == "postgresql" else name
    if name not in STARTTLS_PORTS:
        raise UsageError(f"--starttls must be one of {', '.join(STARTTLS_PORTS)}, not {text!r}")
    return name


def _requests(args: argparse.Namespace) -> list[CheckRequest]:
    tolerance = parse_days(args.days)
    port = _parse_port(args.port) if args.port is not None else None
    protocol = _parse_starttls(args.starttls) if args.starttls else None
    ip = _parse_ip(args.ip) if args.ip else None
    requests = []
    for text in args.targets:
        try:
            target = parse_target(text, default_port=port, protocol=protocol)
        except BadInput as error:
            raise UsageError(error.message) from None
        requests.append(CheckRequest(target=target, tolerance=tolerance, ip=ip))
    return requests


def _plural(days: int) -> str:
    return f"{days} day" if days == 1 else f"{days} days"


def human_line(result: CheckResult) -> str:
    """Format a result as one line: target, status, days left, expiry, issuer and problems."""
    host = f"[{result.host}]" if ":" in result.host else result.host
    where = f"{host}:{result.port}"
    if result.protocol != "tls":
        where = f"{result.protocol}://{where}"
    head = f"{where}  {result.status.upper()}  "
    if result.status == "error" or result.not_after is None:
        messages = "; ".join(problem.message for problem in result.problems)
        return head + messages + address_lines(result)
    day = result.not_after.strftime("%Y-%m-%d")
    if result.days_left is not None and result.days_left >= 0:
        text = f"{_plural(result.days_left)} left (expires {day}, issued by {result.issued_by})"
    else:
        text = f"expired on {day} (issued by {result.issued_by})"
    details = [p.message for p in result.problems if not _repeats_leaf_dates(p, result)]
    return head + "; ".join([text, *details]) + address_lines(result)


def address_lines(result: CheckResult) -> str:
    """Return one indented line per address when the name has several, else nothing."""
    if len(result.addresses) < 2:
        return ""
    lines = []
    for entry in result.addresses:
        status = entry.status.replace("_", " ").upper()
        if entry.status == "not_checked":
            detail = entry.reason or ""
        elif entry.not_after is not None and entry.days_left is not None:
            day = entry.not_after.strftime("%Y-%m-%d")
            left = f"{_plural(entry.days_left)} left" if entry.days_left >= 0 else "expired"
            detail = f"{left} (expires {day}, sha256 {(entry.fingerprint or '')[:16]}…)"
        else:
            detail = ", ".join(entry.problems)
        lines.append(f"\n  {entry.address}  {status}  {detail}".rstrip())
    return "".join(lines)


def _repeats_leaf_dates(problem: Problem, result: CheckResult) -> bool:
    # The leaf's own expiring/expired message only repeats what the line already says,
    # unless it names the addresses that serve that leaf.
    if problem.addresses:
        return False
    if problem.code == "expiring":
        return True
    leaf_expired = result.days_left is not None and result.days_left < 0
    return problem.code == "expired" and leaf_expired and problem.message.startswith("the ")


def exit_status(results: list[CheckResult]) -> int:
    """Return the worst exit status of the results (0 ok, 1 expiring, 2 invalid, 3 error)."""
    return max((EXIT_CODES[result.status] for result in results), default=0)


def run(args: argparse.Namespace) -> int:
    """Check the targets and print the results; return the exit status."""
    requests = _requests(args)
    timeout = _parse_timeout(args.timeout)
    settings = get_settings()
    bundles = [path for path in (settings.ca_bundle, args.cafile) if path]
    for path in bundles:
        try:
            read_bundle(path)  # fail early with a clear message, before any probe
        except BadInput as error:
            raise UsageError(error.message) from None
    trust = default_trust(bundles)
    # The command line checks what its user asks, private networks included.
    results = asyncio.run(
        check_many(
            requests,
            timeout=timeout,
            concurrency=settings.probe_concurrency,
            allow_private=True,
            trust=trust,
            renewal=lookup_from(
                dataclasses.replace(
                    settings,
                    ct_enabled=settings.ct_enabled and not args.no_ct,
                    ari_enabled=settings.ari_enabled and not args.no_ari,
                )
            ),
            check_revocation=False if args.no_revocation else None,
        )
    )
    for result in results:
        line = json.dumps(result.to_dict(), ensure_ascii=False) if args.json else human_line(result)
        print(line)
    sys.stdout.flush()
    return exit_status(results)
