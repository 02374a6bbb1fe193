"""Check many targets concurrently: probe each (target, ip) once, look up revocation, evaluate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib.checker import ssrf
from chalicelib.checker.evaluate import DEFAULT_TOLERANCE, CheckResult, evaluate
from chalicelib.checker.fetch import FetchPolicy
from chalicelib.checker.probe import Evidence, probe
from chalicelib.checker.revocation import TURNED_OFF, RevocationChecker
from chalicelib.checker.targets import Target, parse_target
from chalicelib.checker.trust import TrustStore, default_trust
from chalicelib.config import get_settings
from chalicelib.errors import TargetNotAllowed


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
    on_evidence: Callable[[int, Evidence], None] | None = None,
    trust: TrustStore | None = None,
    check_revocation: bool | None = None,
) -> list[Evidence]:
    """Probe every target concurrently (at most `concurrency` at once); one Evidence per target.

    Never raises for a network failure. A target the SSRF guard refuses (unless allow_private)
    yields Evidence with error "connect_error" and `refused=True`. Each probe's timeout starts
    when it gets a slot, so a slow target delays no other beyond its own timeout.
    `on_evidence(index, evidence)` is called as each probe ends, so the caller can judge a
    target while the others are still in flight.
    Each obtained chain's revocation is then looked up (outside the probe slots, within its own
    `timeout`, its fetches guarded like the probe) and set on its Evidence, unless
    `check_revocation` is False; `trust` finds the issuer to judge the answers by.
    Defaults come from the settings (check_timeout, probe_concurrency, allow_private_targets,
    check_revocation, ca_bundle).
    """
    timeout = _settings_default(timeout, "check_timeout")
    allow_private = _settings_default(allow_private, "allow_private_targets")
    slots = asyncio.Semaphore(max(1, _settings_default(concurrency, "probe_concurrency")))
    revocations = _revocation_checker(check_revocation, trust, allow_private, resolver, timeout)

    async def one(index: int, target: Target) -> Evidence:
        async with slots:
            found = await probe(
                target, ip=ip, timeout=timeout, allow_private=allow_private, resolver=resolver
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
) -> RevocationChecker | None:
    if not _settings_default(enabled, "check_revocation"):
        return None
    trust = trust if trust is not None else default_trust(get_settings().ca_bundle)
    policy = FetchPolicy(allow_private=allow_private, resolver=resolver)
    return RevocationChecker(trust, policy=policy, timeout=timeout)


async def _with_revocation(found: Evidence, checker: RevocationChecker | None) -> Evidence:
    """Return the Evidence with its chain's revocation status (TURNED_OFF without a checker)."""
    if not found.ok:
        return found
    if checker is None:
        return replace(found, revocation=TURNED_OFF)
    return replace(found, revocation=await checker.check(found.chain, found.checked_at))


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
    check_revocation: bool | None = None,
) -> list[CheckResult]:
    """Check every request concurrently; return the results in the order of the requests.

    Requests for the same target and address share one probe. `now` (default: when each probe
    ran) is the moment the certificates are judged at; `trust` defaults to the system roots
    plus SSLNOTIFY_CA_BUNDLE; `check_revocation` defaults to the setting.
    """
    items = [_request(item) for item in requests]
    trust = trust if trust is not None else default_trust(get_settings().ca_bundle)
    by_address: dict[str | None, list[Target]] = {}
    for item in items:
        pending = by_address.setdefault(item.ip, [])
        if item.target not in pending:
            pending.append(item.target)
    evidence: dict[tuple[Target, str | None], Evidence] = {}
    gathered = await asyncio.gather(
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
            )
            for ip, targets in by_address.items()
        )
    )
    for (ip, targets), found in zip(by_address.items(), gathered, strict=True):
        evidence.update(((target, ip), seen) for target, seen in zip(targets, found, strict=True))
    return [evaluate(evidence[item.target, item.ip], now, item.tolerance, trust) for item in items]


def check_target(
    text: str,
    tolerance: int | str = DEFAULT_TOLERANCE,
    *,
    allow_private: bool | None = None,
    timeout: float | None = None,
    trust: TrustStore | None = None,
    now: datetime | None = None,
    resolver: ssrf.Resolver | None = None,
    check_revocation: bool | None = None,
) -> CheckResult:
    """Check one target typed by a user, now; raise BadInput or TargetNotAllowed for bad targets."""
    target = parse_target(text)
    timeout = _settings_default(timeout, "check_timeout")
    allow_private = _settings_default(allow_private, "allow_private_targets")
    trust = trust if trust is not None else default_trust(get_settings().ca_bundle)
    revocations = _revocation_checker(check_revocation, trust, allow_private, resolver, timeout)

    async def probe_and_look_up() -> Evidence:
        found = await probe(target, timeout=timeout, allow_private=allow_private, resolver=resolver)
        return await _with_revocation(found, revocations)

    evidence = asyncio.run(probe_and_look_up())
    if evidence.refused:
        raise TargetNotAllowed(evidence.message or f"{target.host} may not be checked")
    return evaluate(evidence, now, tolerance, trust)
