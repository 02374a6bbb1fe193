"""Check many targets concurrently: probe each (target, ip) once, then evaluate per request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from chalicelib.checker import ssrf
from chalicelib.checker.evaluate import DEFAULT_TOLERANCE, CheckResult, evaluate
from chalicelib.checker.probe import Evidence, probe
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
) -> list[Evidence]:
    """Probe every target concurrently (at most `concurrency` at once); one Evidence per target.

    Never raises for a network failure. A target the SSRF guard refuses (unless allow_private)
    yields Evidence with error "connect_error" and `refused=True`. Each probe's timeout starts
    when it gets a slot, so a slow target delays no other beyond its own timeout.
    `on_evidence(index, evidence)` is called as each probe ends, so the caller can judge a
    target while the others are still in flight.
    Defaults come from the settings (check_timeout, probe_concurrency, allow_private_targets).
    """
    timeout = _settings_default(timeout, "check_timeout")
    allow_private = _settings_default(allow_private, "allow_private_targets")
    slots = asyncio.Semaphore(max(1, _settings_default(concurrency, "probe_concurrency")))

    async def one(index: int, target: Target) -> Evidence:
        async with slots:
            found = await probe(
                target, ip=ip, timeout=timeout, allow_private=allow_private, resolver=resolver
            )
        if on_evidence is not None:
            on_evidence(index, found)
        return found

    return list(await asyncio.gather(*(one(n, target) for n, target in enumerate(targets))))


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
    progress: Callable[[], None] | None = None,
) -> list[CheckResult]:
    """Check every request concurrently; return the results in the order of the requests.

    Requests for the same target and address share one probe. `now` (default: when each probe
    ran) is the moment the certificates are judged at; `trust` defaults to the system roots
    plus SSLNOTIFY_CA_BUNDLE. `progress()` is called as each probe ends.
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

    def judge_as_it_ends(ip: str | None, targets: list[Target]):
        # Judged as each probe ends, while the other handshakes wait on the network.
        def judge(index: int, found: Evidence) -> None:
            for number in waiting[targets[index], ip]:
                results[number] = evaluate(found, now, items[number].tolerance, trust)
            if progress is not None:
                progress()

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
                on_evidence=judge_as_it_ends(ip, targets),
            )
            for ip, targets in by_address.items()
        )
    )
    return results  # type: ignore[return-value]  # every slot is filled by its probe


def check_target(
    text: str,
    tolerance: int | str = DEFAULT_TOLERANCE,
    *,
    allow_private: bool | None = None,
    timeout: float | None = None,
    trust: TrustStore | None = None,
    now: datetime | None = None,
    resolver: ssrf.Resolver | None = None,
) -> CheckResult:
    """Check one target typed by a user, now; raise BadInput or TargetNotAllowed for bad targets."""
    target = parse_target(text)
    timeout = _settings_default(timeout, "check_timeout")
    allow_private = _settings_default(allow_private, "allow_private_targets")
    trust = trust if trust is not None else default_trust(get_settings().ca_bundle)
    evidence = asyncio.run(
        probe(target, timeout=timeout, allow_private=allow_private, resolver=resolver)
    )
    if evidence.refused:
        raise TargetNotAllowed(evidence.message or f"{target.host} may not be checked")
    return evaluate(evidence, now, tolerance, trust)
