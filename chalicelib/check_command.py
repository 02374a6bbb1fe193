"""`sslnotify check TARGET… | --file FILE`: check certificates now, for people, scripts, monitors.

The options are read and checked in one place (`parse_options`); the targets come from the
command line and from files (`read_target_lines`); the results go out in one of FORMATS.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib import monitoring_output
from chalicelib.checker import ssrf
from chalicelib.checker.check import CheckRequest
from chalicelib.checker.processes import check_on_cores
from chalicelib.checker.targets import STARTTLS_PORTS, parse_target
from chalicelib.checker.trust import default_trust, read_bundle
from chalicelib.config import get_settings
from chalicelib.errors import BadInput, UsageError
from chalicelib.open_files import fit_concurrency
from chalicelib.progress import Progress

if TYPE_CHECKING:
    from chalicelib.checker.evaluate import CheckResult, Problem
    from chalicelib.checker.renewal_lookup import RenewalLookup

MAX_DAYS = 365
MAX_TIMEOUT = 300.0
MAX_CONCURRENCY = 10_000
MAX_PROCESSES = 256
FORMATS = ("text", "json", "nagios", "prometheus")
# Monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
EXIT_CODES = monitoring_output.STATUS_CODES
EXIT_BAD_LINE = 3
# ASCII digits only: str.isdigit() and int() also take "²" and "٣٦٠٥١".
_WHOLE = re.compile(r"[0-9]+", re.ASCII)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `sslnotify check` (read and checked in parse_options).

    A new option is declared here, read and checked in parse_options, carried in Options,
    and used where the requests are made (_request) or checked (run).
    """
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="host, host:port, [IPv6]:port, an IP address or a URL (smtp://host: STARTTLS)",
    )
    parser.add_argument(
        "-f",
        "--file",
        action="append",
        default=[],
        metavar="FILE",
        help="read targets from FILE, one a line ('-' for stdin; blank lines and # comments)",
    )
    parser.add_argument(
        "--days", default="30", help="alert this many days before expiry (1-365) or 'auto'"
    )
    parser.add_argument(
        "--critical",
        metavar="N",
        help="critical (exit 2) when fewer than N days are left (1-365, at most --days)",
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
    parser.add_argument(
        "--concurrency",
        metavar="N",
        help="targets checked at once (default SSLNOTIFY_PROBE_CONCURRENCY or 1000; "
        "fitted to the open-files limit)",
    )
    parser.add_argument(
        "--processes",
        metavar="N",
        help="processes sharing a long list (default: one per core, each with 100 targets "
        "and 250 at once at least; 1: this process only)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="text (default): a line per target; json: a result object per line; "
        "nagios: one plugin line with perfdata; prometheus: text exposition",
    )
    parser.add_argument("--json", action="store_true", help="same as --format json")
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


@dataclass(frozen=True)
class Options:
    """Everything `sslnotify check` was asked to do, read and checked."""

    tolerance: int | str
    critical: int | None
    port: int | None  # None: the protocol's own port (443 for plain TLS)
    protocol: str | None  # --starttls
    ip: str | None
    cafiles: tuple[str, ...]
    timeout: float
    concurrency: int
    output: str
    processes: int | None = None  # None: one per core (checker.processes decides)
    ct: bool = True
    ari: bool = True
    revocation: bool = True


def whole_number(text: str, option: str, low: int, high: int) -> int:
    """Read a whole number written in ASCII digits within [low, high], or raise UsageError."""
    text = str(text).strip()
    if not _WHOLE.fullmatch(text) or not low <= int(text) <= high:
        raise UsageError(f"{option} must be a whole number from {low} to {high}, not {text!r}")
    return int(text)


def parse_days(text: str) -> int | str:
    """Read a tolerance: a whole number of days 1-365, or "auto"."""
    if text.strip().lower() == "auto":
        return "auto"
    if not _WHOLE.fullmatch(text.strip()) or not 1 <= int(text) <= MAX_DAYS:
        raise UsageError(
            f"--days must be a whole number from 1 to {MAX_DAYS} or 'auto', not {text!r}"
        )
    return int(text)


def _parse_timeout(text: str) -> float:
    try:
        value = float(text) if re.fullmatch(r"[0-9.eE+-]+", text.strip(), re.ASCII) else -1.0
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_TIMEOUT:
        raise UsageError(
            f"--timeout must be a number of seconds above 0 and at most 300, not {text!r}"
        )
    return value


def _parse_starttls(text: str) -> str:
    name = text.strip().lower()
    name = "postgres" if name == "postgresql" else name
    if name not in STARTTLS_PORTS:
        raise UsageError(f"--starttls must be one of {', '.join(STARTTLS_PORTS)}, not {text!r}")
    return name


def _parse_ip(text: str) -> str:
    try:
        return str(ssrf.parse_address(text))
    except ValueError:
        raise UsageError(f"--ip must be an IP address, not {text!r}") from None


def parse_options(args: argparse.Namespace) -> Options:
    """Read and check every option; raise UsageError (exit 3) for the first bad one."""
    settings = get_settings()
    tolerance = parse_days(args.days)
    critical = None
    if args.critical is not None:
        critical = whole_number(args.critical, "--critical", 1, MAX_DAYS)
        if isinstance(tolerance, int) and critical > tolerance:
            raise UsageError(f"--critical ({critical}) must be at most --days ({tolerance})")
    if args.json and args.format not in (None, "json"):
        raise UsageError(f"--json and --format {args.format} disagree; give one")
    concurrency = settings.probe_concurrency
    if args.concurrency is not None:
        concurrency = whole_number(args.concurrency, "--concurrency", 1, MAX_CONCURRENCY)
    cafiles = tuple(path for path in (settings.ca_bundle, args.cafile) if path)
    for path in cafiles:
        try:
            read_bundle(path)  # fail early with a clear message, before any probe
        except BadInput as error:
            raise UsageError(error.message) from None
    return Options(
        tolerance=tolerance,
        critical=critical,
        port=whole_number(args.port, "--port", 1, 65535) if args.port is not None else None,
        protocol=_parse_starttls(args.starttls) if args.starttls else None,
        ip=_parse_ip(args.ip) if args.ip else None,
        cafiles=cafiles,
        timeout=_parse_timeout(args.timeout),
        concurrency=concurrency,
        output="json" if args.json else (args.format or "text"),
        processes=(
            whole_number(args.processes, "--processes", 1, MAX_PROCESSES)
            if args.processes is not None
            else None
        ),
        ct=not args.no_ct,
        ari=not args.no_ari,
        revocation=not args.no_revocation,
    )


@dataclass(frozen=True)
class TargetLine:
    """A target as written, and where: "FILE:LINE", or None for the command line."""

    text: str
    where: str | None = None


def _strip_comment(line: str) -> str:
    # A "#" starts a comment at the start of a line or after a space; a URL's #fragment stays.
    return re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()


def read_target_lines(name: str, lines: Iterable[str]) -> list[TargetLine]:
    """Return the targets of a list, one a line, skipping blank lines and # comments."""
    found = []
    for number, line in enumerate(lines, start=1):
        text = _strip_comment(line)
        if text:
            found.append(TargetLine(text, f"{name}:{number}"))
    return found


def _read_file(path: str) -> list[TargetLine]:
    if path == "-":
        return read_target_lines("<stdin>", sys.stdin)
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return read_target_lines(path, stream)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None


def _request(line: TargetLine, options: Options) -> CheckRequest:
    """Turn one target into a request; raise BadInput when it is not one."""
    target = parse_target(line.text, default_port=options.port, protocol=options.protocol)
    return CheckRequest(target=target, tolerance=options.tolerance, ip=options.ip)


def build_requests(
    args: argparse.Namespace, options: Options
) -> tuple[list[CheckRequest], list[str]]:
    """Return the requests and, for each bad line of a file, its complaint "FILE:LINE: why".

    A bad target on the command line is a usage error; a bad line of a file is reported and
    the file's good lines are still checked.
    """
    requests, complaints = [], []
    lines = [TargetLine(text) for text in args.targets]
    for path in args.file:
        lines += _read_file(path)
    for line in lines:
        try:
            requests.append(_request(line, options))
        except BadInput as error:
            if line.where is None:
                raise UsageError(error.message) from None
            complaints.append(f"{line.where}: {error.message}")
    if not requests and not complaints:
        raise UsageError("no target given (name one, or --file FILE)")
    return requests, complaints


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
        return head + printable(messages) + address_lines(result)
    day = result.not_after.strftime("%Y-%m-%d")
    if result.days_left is not None and result.days_left >= 0:
        text = f"{_plural(result.days_left)} left (expires {day}, issued by {result.issued_by})"
    else:
        text = f"expired on {day} (issued by {result.issued_by})"
    details = [p.message for p in result.problems if not _repeats_leaf_dates(p, result)]
    return head + printable("; ".join([text, *details])) + address_lines(result)


def printable(text: str) -> str:
    """Escape control and format characters: a served certificate's names are the server's
    words, and a terminal must not run its escape sequences or reorder the line (bidi)."""
    return "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in ("Cc", "Cf") else char
        for char in text
    )


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


def exit_status(results: Sequence[CheckResult], critical: int | None = None) -> int:
    """Return the worst exit status of the results (0 ok, 1 expiring, 2 invalid, 3 error).

    With `critical`, fewer days left than that count as 2, as in the Nagios output.
    """
    return max(
        (monitoring_output.plugin_state(_state_view(r), critical) for r in results), default=0
    )


def _state_view(result: CheckResult) -> dict:
    return {"status": result.status, "daysLeft": result.days_left}


def render(results: Sequence[CheckResult], options: Options) -> str:
    """Return the whole output for the results in the chosen format."""
    if options.output == "text":
        return "".join(human_line(result) + "\n" for result in results)
    dicts = [result.to_dict() for result in results]
    if options.output == "json":
        return "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dicts)
    if options.output == "nagios":
        return monitoring_output.nagios_line(dicts, options.critical)[0] + "\n"
    return monitoring_output.prometheus_text(dicts)


def write_output(text: str) -> None:
    """Write to stdout; a reader that went away (`| head -1`) ends the output quietly."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's last flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _renewal_sources(options: Options) -> Callable[[], RenewalLookup]:
    """Return how to get the CT and ARI clients the options ask for (made once the chains are in,
    so their imports wait with them; see checker.check)."""

    def sources() -> RenewalLookup:
        from chalicelib.checker.renewal_lookup import lookup_from

        settings = get_settings()
        return lookup_from(
            dataclasses.replace(
                settings,
                ct_enabled=settings.ct_enabled and options.ct,
                ari_enabled=settings.ari_enabled and options.ari,
            )
        )

    return sources


def run(args: argparse.Namespace) -> int:
    """Check the targets and print the results; return the exit status."""
    options = parse_options(args)
    requests, complaints = build_requests(args, options)
    for complaint in complaints:
        print(f"sslnotify: {complaint}", file=sys.stderr)
    results: list[CheckResult] = []
    if requests:
        progress = Progress(len(requests))
        try:
            # The command line checks what its user asks, private networks included.
            results = check_on_cores(
                requests,
                processes=options.processes,
                timeout=options.timeout,
                concurrency=fit_concurrency(options.concurrency),
                allow_private=True,
                trust=default_trust(options.cafiles),
                renewal=_renewal_sources(options),
                check_revocation=None if options.revocation else False,
                progress=progress.step,
            )
        finally:
            progress.close()
    write_output(render(results, options))
    status = exit_status(results, options.critical)
    return max(status, EXIT_BAD_LINE) if complaints else status
