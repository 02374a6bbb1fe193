"""Network: probe every address behind a name concurrently, within the one overall timeout.

A round-robin name or a dual-stack host may serve a different certificate on each address, so
the name is resolved once, the SSRF guard judges each address on its own, and up to
MAX_ADDRESSES of them are probed at once; the others are listed as not checked with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from chalicelib.checker import ssrf
from chalicelib.checker.probe import CONNECT_ERROR, DNS_ERROR, TIMEOUT, Evidence, in_daemon_thread
from chalicelib.checker.probe import probe as probe_address
from chalicelib.checker.targets import Target
from chalicelib.errors import TargetNotAllowed

MAX_ADDRESSES = 16
NO_IPV6_ROUTE = "this checker has no IPv6 route"
# Why an address may not be probed by the service, or None: ssrf.refusal_reason, or a test's own.
Refusal = Callable[[str], str | None]


@dataclass(frozen=True)
class NotChecked:
    """An address of the name that was deliberately not probed, and why."""

    address: str
    reason: str
    refused: bool = False  # the SSRF guard refused it


@dataclass(frozen=True)
class NameEvidence:
    """What probing a name saw: one Evidence per address probed, and the addresses left out.

    When no address could be probed (no such name, all refused, none reachable), `probes` holds
    one failure Evidence without an address that says why.
    """

    target: Target
    checked_at: datetime
    probes: tuple[Evidence, ...]
    not_checked: tuple[NotChecked, ...] = ()

    @property
    def refused(self) -> bool:
        """Tell whether the SSRF guard refused the whole target (every address of it)."""
        return all(evidence.refused for evidence in self.probes)

    @property
    def message(self) -> str | None:
        """Return the first failure's message (the refusal when refused)."""
        return next((evidence.message for evidence in self.probes if evidence.message), None)


def _is_ipv6(address: str) -> bool:
    try:
        return ssrf.parse_address(address).version == 6
    except ValueError:
        return False


def _judged(refusal: Refusal, address: str) -> str | None:
    try:
        return refusal(address)
    except ValueError:  # a resolver answered something that is not an address
        return "not an IP address"


def _refusal_message(target: Target, address: str, reason: str) -> str:
    via = f"{target.host} resolves to {address}, which" if not target.is_ip else address
    return f"{via} is {reason}: sslnotify does not check private or reserved networks"


def _select(
    target: Target,
    addresses: list[str],
    allow_private: bool,
    check_ipv6: bool,
    refusal: Refusal,
    limit: int,
) -> tuple[list[str], list[NotChecked]]:
    """Split the resolved addresses into those to probe and those not checked (with why)."""
    chosen: list[str] = []
    skipped: list[NotChecked] = []
    for address in dict.fromkeys(addresses):
        reason = None if allow_private else _judged(refusal, address)
        if reason:
            message = f"refused: {reason}, which sslnotify does not check"
            skipped.append(NotChecked(address, message, refused=True))
        elif not check_ipv6 and _is_ipv6(address):
            skipped.append(NotChecked(address, NO_IPV6_ROUTE))
        elif len(chosen) >= limit:
            skipped.append(NotChecked(address, f"only the first {limit} addresses are checked"))
        else:
            chosen.append(address)
    return chosen, skipped


def _failure(target: Target, checked_at: datetime, error: str, message: str, **extra) -> Evidence:
    return Evidence(target=target, checked_at=checked_at, error=error, message=message, **extra)


def _none_checked(
    target: Target, checked_at: datetime, skipped: list[NotChecked], refusal: Refusal
) -> Evidence:
    """Say why no address was probed: the guard's refusal when it refused them all."""
    if skipped and all(entry.refused for entry in skipped):
        # Worded as the guard has always refused a target: by its first address.
        first = skipped[0].address
        message = _refusal_message(target, first, _judged(refusal, first) or "not allowed")
        return _failure(target, checked_at, CONNECT_ERROR, message, refused=True)
    reasons = "; ".join(f"{entry.address}: {entry.reason}" for entry in skipped)
    message = f"no address of {target.host} can be checked ({reasons})"
    return _failure(target, checked_at, CONNECT_ERROR, message)


async def probe_name(
    target: Target,
    *,
    timeout: float = 10.0,
    allow_private: bool = True,
    resolver: ssrf.Resolver | None = None,
    check_ipv6: bool = True,
    refusal: Refusal | None = None,
    limit: int = MAX_ADDRESSES,
) -> NameEvidence:
    """Probe every address of `target` (at most `limit`) concurrently, all within `timeout`.

    With allow_private False each address is judged by `refusal` first; a refused one is listed
    as not checked and never receives a packet. Without check_ipv6, IPv6 addresses are listed
    as not checked. Never raises for a network failure: the failures are in the evidence.
    `refusal` defaults to ssrf.refusal_reason.
    """
    refusal = refusal or ssrf.refusal_reason
    checked_at = datetime.now(UTC)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def failed(error: str, message: str, **extra) -> NameEvidence:
        evidence = _failure(target, checked_at, error, message, **extra)
        return NameEvidence(target, checked_at, (evidence,))

    try:
        if not allow_private:
            ssrf.check_name(target)
        if target.is_ip:
            addresses = ssrf.resolve(target)  # no lookup, nothing to time
        else:
            async with asyncio.timeout_at(deadline):
                addresses = await in_daemon_thread(ssrf.resolve, target, resolver)
    except TargetNotAllowed as error:
        return failed(CONNECT_ERROR, error.message, refused=True)
    except ssrf.ResolutionFailed as error:
        return failed(DNS_ERROR, error.message)
    except TimeoutError:
        return failed(TIMEOUT, f"no answer within {timeout:g} s while resolving the name")
    if not addresses:
        return failed(DNS_ERROR, f"could not resolve {target.host}: it has no address")
    chosen, skipped = _select(target, addresses, allow_private, check_ipv6, refusal, limit)
    if not chosen:
        probes = (_none_checked(target, checked_at, skipped, refusal),)
        return NameEvidence(target, checked_at, probes, tuple(skipped))
    # Each address was judged above; the probe connects to exactly that address (one address,
    # the usual case, is awaited directly: no task to schedule).
    probing = [
        probe_address(target, ip=address, timeout=timeout, deadline=deadline) for address in chosen
    ]
    probes = [await probing[0]] if len(probing) == 1 else await asyncio.gather(*probing)
    # A failure before the connection (refused, nothing listening) names no address: name it.
    named = tuple(
        evidence if evidence.address else replace(evidence, address=address)
        for address, evidence in zip(chosen, probes, strict=True)
    )
    return NameEvidence(target, checked_at, named, tuple(skipped))


async def probe_one_address(
    target: Target, ip: str, *, timeout: float = 10.0, allow_private: bool = True
) -> NameEvidence:
    """Probe exactly the address `ip` for `target` (the CLI's --ip), as NameEvidence."""
    checked_at = datetime.now(UTC)
    evidence = await probe_address(target, ip=ip, timeout=timeout, allow_private=allow_private)
    if evidence.address is None and not evidence.refused:
        evidence = replace(evidence, address=ip)
    return NameEvidence(target, checked_at, (evidence,))
