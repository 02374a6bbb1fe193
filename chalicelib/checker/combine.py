"""Pure: judge every address behind a name and combine their verdicts into one result (DESIGN 3.1b).

The worst address decides (invalid > expiring > error > ok) and lends the result its certificate
fields; a problem seen on some addresses only names them, and when the addresses serve different
certificates the response says which serves what. Addresses not checked are listed, never counted.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from chalicelib.checker.addresses import NameEvidence
from chalicelib.checker.evaluate import (
    DEFAULT_TOLERANCE,
    AddressResult,
    CheckResult,
    Problem,
    evaluate_tolerances,
)
from chalicelib.checker.probe import Evidence
from chalicelib.checker.trust import TrustStore, default_trust

# Across addresses an unreachable node weighs less than a certificate that is bad or expiring:
# the reachable ones still show what the name serves.
RANK = {"ok": 0, "error": 1, "expiring": 2, "invalid": 3}
NOT_CHECKED = "not_checked"
_THE_CERTIFICATE = "the certificate "


def fingerprint(der: bytes) -> str:
    """Return a certificate's SHA-256 fingerprint as lower-case hex."""
    return hashlib.sha256(der).hexdigest()


def evaluate_name(
    evidence: NameEvidence,
    now: datetime | None = None,
    days_tolerance: int | str = DEFAULT_TOLERANCE,
    trust: TrustStore | None = None,
) -> CheckResult:
    """Judge every address of a name at `now` and return the combined result."""
    return evaluate_name_tolerances(evidence, (days_tolerance,), now, trust)[0]


def evaluate_name_tolerances(
    evidence: NameEvidence,
    tolerances: Sequence[int | str],
    now: datetime | None = None,
    trust: TrustStore | None = None,
) -> list[CheckResult]:
    """Judge each address once, then give the combined result for each tolerance, in order."""
    now = now or evidence.checked_at  # one moment for every address, so their days agree
    trust = trust if trust is not None else default_trust()
    judged = []
    # Round-robin addresses mostly serve the same chain: judge each distinct one once. The key is
    # the whole evidence but for where and when it was seen, so nothing else can differ.
    seen: dict[Evidence, list[CheckResult]] = {}
    for probe in evidence.probes:
        if len(evidence.probes) == 1:  # the common case: nothing to share
            judged.append(evaluate_tolerances(probe, tolerances, now, trust))
            break
        key = replace(probe, address=None, checked_at=evidence.checked_at)
        if key not in seen:
            seen[key] = evaluate_tolerances(probe, tolerances, now, trust)
            judged.append(seen[key])
        else:
            judged.append(
                [_with(r, address=probe.address, checked_at=probe.checked_at) for r in seen[key]]
            )
    prints = [fingerprint(probe.chain[0]) if probe.chain else None for probe in evidence.probes]
    skipped = tuple(
        AddressResult(entry.address, NOT_CHECKED, reason=entry.reason)
        for entry in evidence.not_checked
    )
    pairs = list(zip(judged, prints, strict=True))
    return [
        combine([(results[index], print_) for results, print_ in pairs], skipped)
        for index in range(len(tolerances))
    ]


def _with(result: CheckResult, **changes) -> CheckResult:
    """Return a copy of a result with some fields changed.

    dataclasses.replace() runs __init__ over all twenty fields again (about 12 µs) and the sweep
    makes a copy per target and tolerance, so the fields are copied directly instead; the result
    is frozen, hence object.__setattr__.
    """
    copy = object.__new__(CheckResult)
    copy.__dict__.update(result.__dict__)
    for name, value in changes.items():
        object.__setattr__(copy, name, value)
    return copy


def _entry(result: CheckResult, print_: str | None) -> AddressResult:
    return AddressResult(
        address=result.address or "",
        status=result.status,
        problems=result.codes,
        days_left=result.days_left,
        not_after=result.not_after,
        fingerprint=print_,
    )


def _severity(result: CheckResult) -> tuple[int, float]:
    # Worst status first; among equals, the certificate that runs out first.
    days = result.days_left if result.days_left is not None else math.inf
    return (-RANK.get(result.status, RANK["error"]), days)


def combine(
    checked: Sequence[tuple[CheckResult, str | None]], skipped: Sequence[AddressResult] = ()
) -> CheckResult:
    """Combine the results of the addresses probed (each with its leaf's fingerprint).

    One address probed: its result as it is, with the addresses listed. Several: the worst
    decides the status and the certificate fields.
    """
    if not checked:
        raise ValueError("combine needs the result of at least one address")
    entries = tuple(_entry(result, print_) for result, print_ in checked if result.address)
    entries += tuple(skipped)
    results = [result for result, _ in checked]
    if len(results) == 1:
        return _with(results[0], addresses=entries)
    decider = min(results, key=_severity)
    return _with(
        decider,
        problems=_problems(decider, results),
        response=_response(decider, checked),
        addresses=entries,
    )


def _words(addresses: Sequence[str]) -> str:
    """List addresses as a sentence does: "a", "a and b", "a, b and c"."""
    if len(addresses) <= 1:
        return "".join(addresses)
    return ", ".join(addresses[:-1]) + " and " + addresses[-1]


def _serve(addresses: Sequence[str]) -> str:
    return "serves" if len(addresses) == 1 else "serve"


def _on_some(addresses: Sequence[str], message: str) -> str:
    """Say on which addresses a problem was seen: "127.0.0.3 serves a certificate that …"."""
    if message.startswith(_THE_CERTIFICATE):
        rest = message.removeprefix(_THE_CERTIFICATE)
        return f"{_words(addresses)} {_serve(addresses)} a certificate that {rest}"
    return f"{_words(addresses)}: {message}"


def _problems(decider: CheckResult, results: Sequence[CheckResult]) -> tuple[Problem, ...]:
    """Merge the problems of every address: once each, naming the addresses when not all."""
    order = {result.address: index for index, result in enumerate(results)}
    seen: dict[tuple[str, str], list[str]] = {}
    for result in [decider, *(other for other in results if other is not decider)]:
        for problem in result.problems:
            where = seen.setdefault((problem.code, problem.message), [])
            if (result.address or "") not in where:
                where.append(result.address or "")
    merged = []
    for (code, message), where in seen.items():
        if len(where) == len(results):
            merged.append(Problem(code, message))
        else:
            where.sort(key=lambda address: order.get(address, 0))
            merged.append(Problem(code, _on_some(where, message), tuple(where)))
    return tuple(merged)


def _long_day(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"


def _response(decider: CheckResult, checked: Sequence[tuple[CheckResult, str | None]]) -> str:
    """Return the decider's sentence, then which address serves what when they differ."""
    by_print: dict[str, list[CheckResult]] = {}
    failed: list[str] = []
    for result, print_ in checked:
        if print_ and result.not_after is not None:
            by_print.setdefault(print_, []).append(result)
        else:
            failed.append(result.address or "")
    if len(by_print) < 2 and not (by_print and failed):
        # One certificate everywhere, yet the verdicts differ (another chain, say).
        alike = [result.address or "" for result, _ in checked if result.status == decider.status]
        if len(alike) < len(checked):
            return f"{decider.response} (on {_words(alike)} only)"
        return decider.response
    groups = sorted(by_print.values(), key=lambda group: group[0].not_after or datetime.min)
    oldest, newest = groups[0][0].not_after, groups[-1][0].not_after
    parts = []
    for index, group in enumerate(groups):
        names = [result.address or "" for result in group]
        not_after = group[0].not_after
        when = _long_day(not_after) if not_after else "an unknown date"
        serve = _serve(names)
        if index == 0 and oldest != newest:
            parts.append(f"{_words(names)} still {serve} the certificate that expires on {when}")
        elif index > 0 and not_after != oldest:
            one = "the renewed one" if len(groups) == 2 else "a newer one"
            parts.append(f"{_words(names)} {serve} {one}, which expires on {when}")
        else:
            article = "a" if len(groups) > 1 else "the"
            parts.append(f"{_words(names)} {serve} {article} certificate that expires on {when}")
    if failed:
        parts.append(f"{_words(failed)} could not be checked")
    return f"{decider.response}; " + "; ".join(parts)
