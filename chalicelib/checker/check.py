"""Check many targets concurrently: probe each (target, ip) once, look up revocation, evaluate.

The judging half (combine/evaluate, revocation, renewal_lookup: some 45 ms of imports) is
imported where it is first used, once the first probe has its chain: a command-line check opens
its connections that much sooner and imports it while they wait on the network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from chalicelib.checker import ssrf
from chalicelib.checker.addresses import NameEvidence, Refusal, probe_name, probe_one_address
from chalicelib.checker.fetch_policy import FetchPolicy
from chalicelib.checker.probe import Evidence
from chalicelib.checker.targets import Target, parse_target
from chalicelib.checker.trust import TrustStore, default_trust
from chalicelib.config import DEFAULT_TOLERANCE, get_settings
from chalicelib.errors import TargetNotAllowed

if TYPE_CHECKING:
    from chalicelib.checker.evaluate import CheckResult
    from chalicelib.checker.renewal_lookup import RenewalLookup
    from chalicelib.checker.revocation import RevocationChecker


@dataclass(frozen=True)
class CheckRequest:
    """One target to check with its tolerance (days or "auto"), optionally at a given address."""

    target: Target
    tolerance: int | str = DEFAULT_TOLERANCE
    ip: str | None = None


def _settings_default(value, name: str):
    return getattr(get_settings(), name) if value is None else value


async def gather_evidence(
    targets: Sequence[Target],
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    allow_private: bool | None = None,
    ip: str | None = None,
    resolver: ssrf.Resolver | None = None,
    on_evidence: Callable[[int, NameEvidence], None] | None = None,
    check_ipv6: bool | None = None,
    refusal: Refusal | None = None,
    trust: TrustStore | None = None,
    check_revocation: bool | None = None,
) -> list[NameEvidence]:
    """Probe every target concurrently (at most `concurrency` at once); one NameEvidence each.

    Every address of a name is probed (at most 16), within the target's one timeout; with `ip`,
    exactly that address. Never raises for a network failure. A target whose every address
    the SSRF guard refuses (unless allow_private) yields evidence with `refused` true. Each
    probe's timeout starts when it gets a slot, so a slow target delays no other beyond its
    own timeout. `on_evidence(index, evidence)` is called as each probe ends, so the caller
    can judge a target while the others are still in flight. Defaults come from the settings
    (check_timeout, probe_concurrency, allow_private_targets, check_ipv6); `refusal` judges
    an address for the guard (tests let a loopback address pass for a public one).
    Each obtained chain's revocation is then looked up (outside the probe slots, within its own
    `timeout`, its fetches guarded like the probe; addresses serving the same chain share one
    lookup) and set on its Evidence, unless `check_revocation` is False (setting
    check_revocation); `trust` finds the issuer to judge the answers by.
    """
    timeout = _settings_default(timeout, "check_timeout")
    allow_private = _settings_default(allow_private, "allow_private_targets")
    check_ipv6 = _settings_default(check_ipv6, "check_ipv6")
    slots = asyncio.Semaphore(max(1, _settings_default(concurrency, "probe_concurrency")))
    revocations = _revocation_checker(check_revocation, trust, allow_private, resolver, timeout)

    async def one(index: int, target: Target) -> NameEvidence:
        async with slots:
            if ip is not None:
                found = await probe_one_address(
                    target, ip, timeout=timeout, allow_private=allow_private
                )
            else:
                found = await probe_name(
                    target,
                    timeout=timeout,
                    allow_private=allow_private,
                    resolver=resolver,
                    check_ipv6=check_ipv6,
                    refusal=refusal,
                )
        found = await _with_revocation(found, revocations)
        if on_evidence is not None:
            on_evidence(index, found)
        return found

    return list(await asyncio.gather(*(one(n, target) for n, target in enumerate(targets))))


def _revocation_checker(
    enabled: bool | None,
    trust: TrustStore | None,
    allow_private: bool,
    resolver: ssrf.Resolver | None,
    timeout: float,
) -> Callable[[], RevocationChecker] | None:
    """Return how to get the run's one revocation checker (made when first needed), or None."""
    if not _settings_default(enabled, "check_revocation"):
        return None
    trust = trust if trust is not None else default_trust(get_settings().ca_bundle)
    policy = FetchPolicy(allow_private=allow_private, resolver=resolver)

    @cache
    def checker() -> RevocationChecker:
        from chalicelib.checker.revocation import RevocationChecker

        return RevocationChecker(trust, policy=policy, timeout=timeout)

    return checker


async def _with_revocation(
    found: NameEvidence, checker: Callable[[], RevocationChecker] | None
) -> NameEvidence:
    """Return the evidence with each address's chain revocation status (TURNED_OFF without a
    checker); addresses serving the same chain share one lookup (the checker coalesces)."""
    if not any(probe.ok for probe in found.probes):
        return found
    revocations = checker() if checker is not None else None
    looking = [_revoked(probe, revocations) for probe in found.probes]
    probes = [await looking[0]] if len(looking) == 1 else await asyncio.gather(*looking)
    return replace(found, probes=tuple(probes))


async def _revoked(probe: Evidence, checker: RevocationChecker | None) -> Evidence:
    if not probe.ok:
        return probe
    if checker is None:
        from chalicelib.checker.revocation import TURNED_OFF

        return replace(probe, revocation=TURNED_OFF)
    verdict = await checker.check(probe.chain, probe.checked_at, stapled=probe.stapled)
    return replace(probe, revocation=verdict)


def _request(item: CheckRequest | Target) -> CheckRequest:
    return item if isinstance(item, CheckRequest) else CheckRequest(target=item)


async def check_many(
    requests: Sequence[CheckRequest | Target],
    *,
    now: datetime | None = None,
    timeout: float | None = None,
    concurrency: int | None = None,
    allow_private: bool | None = None,
    trust: TrustStore | None = None,
    resolver: ssrf.Resolver | None = None,
    renewal: RenewalLookup | Callable[[], RenewalLookup] | None = None,
    check_revocation: bool | None = None,
    progress: Callable[[], None] | None = None,
) -> list[CheckResult]:
    """Check every request concurrently; return the results in the order of the requests.

    Requests for the same target and address share one probe. `now` (default: when each probe
    ran) is the moment the certificates are judged at; `trust` defaults to the system roots
    plus SSLNOTIFY_CA_BUNDLE; `renewal` (CT and ARI, or a function making them once the probes
    are done) defaults to the settings' sources;
    `check_revocation` defaults to the setting. `progress()` is called once per request, as its
    probe ends.
    """
    items = [_request(item) for item in requests]
    trust = trust if trust is not None else default_trust(get_settings().ca_bundle)
    # Each (target, address) is probed once for all the requests that name it.
    waiting: dict[tuple[Target, str | None], list[int]] = {}
    for number, item in enumerate(items):
        waiting.setdefault((item.target, item.ip), []).append(number)
    by_address: dict[str | None, list[Target]] = {}
    for target, ip in waiting:
        by_address.setdefault(ip, []).append(target)
    results: list[CheckResult | None] = [None] * len(items)
    seen: list[NameEvidence | None] = [None] * len(items)

    def judge_as_it_ends(ip: str | None, targets: list[Target]):
        # Judged as each probe ends, while the other handshakes wait on the network.
        def judge(index: int, found: NameEvidence) -> None:
            from chalicelib.checker.combine import evaluate_name

            for number in waiting[targets[index], ip]:
                results[number] = evaluate_name(found, now, items[number].tolerance, trust)
                seen[number] = found
                if progress is not None:
                    progress()  # once per request: the count shown is of the requests

        return judge

    await asyncio.gather(
        *(
            gather_evidence(
                targets,
                timeout=timeout,
                concurrency=concurrency,
                allow_private=allow_private,
                ip=ip,
                resolver=resolver,
                trust=trust,
                check_revocation=check_revocation,
                on_evidence=judge_as_it_ends(ip, targets),
            )
            for ip, targets in by_address.items()
        )
    )
    # Every slot is filled by its probe.
    return _with_renewal(renewal, seen, results)  # type: ignore[arg-type]


def _with_renewal(
    lookup: RenewalLookup | Callable[[], RenewalLookup] | None,
    evidence: Sequence[NameEvidence],
    results: list[CheckResult],
) -> list[CheckResult]:
    """Amend each result with CT and ARI evidence (one lookup per distinct probe)."""
    from chalicelib.checker.renewal_lookup import RenewalLookup, amend_all, lookup_from

    if lookup is None:
        lookup = lookup_from(get_settings())
    elif not isinstance(lookup, RenewalLookup):
        lookup = lookup()
    if not lookup.enabled:
        return results
    by_probe: dict[int, list[int]] = {}
    for index, found in enumerate(evidence):
        by_probe.setdefault(id(found), []).append(index)
    groups = list(by_probe.values())
    judged = [(evidence[group[0]], [results[index] for index in group]) for group in groups]
    amended = list(results)
    for group, changed in zip(groups, amend_all(lookup, judged), strict=True):
        for index, result in zip(group, changed, strict=True):
            amended[index] = result
    return amended


def check_target(
    text: str,
    tolerance: int | str = DEFAULT_TOLERANCE,
    *,
    allow_private: bool | None = None,
    timeout: float | None = None,
    trust: TrustStore | None = None,
    now: datetime | None = None,
    resolver: ssrf.Resolver | None = None,
    renewal: RenewalLookup | None = None,
    check_revocation: bool | None = None,
) -> CheckResult:
    """Check one target typed by a user, now; raise BadInput or TargetNotAllowed for bad targets."""
    from chalicelib.checker.combine import evaluate_name

    target = parse_target(text)
    timeout = _settings_default(timeout, "check_timeout")
    allow_private = _settings_default(allow_private, "allow_private_targets")
    trust = trust if trust is not None else default_trust(get_settings().ca_bundle)
    revocations = _revocation_checker(check_revocation, trust, allow_private, resolver, timeout)

    async def probe_and_look_up() -> NameEvidence:
        found = await probe_name(
            target,
            timeout=timeout,
            allow_private=allow_private,
            resolver=resolver,
            check_ipv6=get_settings().check_ipv6,
        )
        return await _with_revocation(found, revocations)

    evidence = asyncio.run(probe_and_look_up())
    if evidence.refused:
        # Only when every address is refused: otherwise the others are checked.
        raise TargetNotAllowed(evidence.message or f"{target.host} may not be checked")
    return _with_renewal(renewal, [evidence], [evaluate_name(evidence, now, tolerance, trust)])[0]
