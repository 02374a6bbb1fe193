"""Every address behind a name, judged and combined at a fixed time (DESIGN 3.1b): no sockets."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.check_command import human_line
from chalicelib.checker import combine as combine_module
from chalicelib.checker.addresses import NameEvidence, NotChecked
from chalicelib.checker.combine import (
    NOT_CHECKED,
    combine,
    evaluate_name,
    evaluate_name_tolerances,
)
from chalicelib.checker.evaluate import CheckResult, evaluate
from chalicelib.checker.probe import Evidence
from chalicelib.checker.targets import parse_target
from chalicelib.checker.trust import TrustStore
from tests.certs import make_pki

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TARGET = parse_target("example.test")
ENTRY_FIELDS = {"address", "status", "problems", "daysLeft", "notAfter", "fingerprint", "reason"}


@pytest.fixture(scope="module")
def pki():
    return make_pki(NOW)


@pytest.fixture(scope="module")
def trust(pki):
    return TrustStore.from_pem(pki.root.pem)


@pytest.fixture(scope="module")
def renewed(pki):
    return pki.leaf(dns=["example.test"], not_before=NOW - DAY, not_after=NOW + 89 * DAY)


@pytest.fixture(scope="module")
def old(pki):
    # Expires on 3 December 2026 at 12:00, three days from NOW.
    return pki.leaf(dns=["example.test"], not_before=NOW - 87 * DAY, not_after=NOW + 3 * DAY)


def served(address: str, *certificates) -> Evidence:
    """Return the evidence of one address sending these certificates."""
    chain = tuple(certificate.der for certificate in certificates)
    return Evidence(target=TARGET, checked_at=NOW, chain=chain, address=address)


def failed(address: str, error: str = "connect_error", message: str | None = None) -> Evidence:
    """Return the evidence of an address that gave no certificate."""
    message = message or f"connection refused by {address} port 443 (nothing listens there)"
    return Evidence(target=TARGET, checked_at=NOW, error=error, message=message, address=address)


def name(*probes: Evidence, not_checked: tuple[NotChecked, ...] = ()) -> NameEvidence:
    return NameEvidence(TARGET, NOW, tuple(probes), not_checked)


def judge(evidence: NameEvidence, trust, tolerance=30) -> CheckResult:
    return evaluate_name(evidence, NOW, tolerance, trust)


def test_one_address_is_judged_as_before_plus_its_entry(pki, renewed, trust):
    single = served("192.0.2.7", renewed, pki.intermediate)
    result = judge(name(single), trust)
    before = evaluate(single, NOW, 30, trust).to_dict()
    after = result.to_dict()
    assert after.pop("addresses") == [
        {
            "address": "192.0.2.7",
            "status": "ok",
            "problems": [],
            "daysLeft": 89,
            "notAfter": "2027-02-27T12:00:00Z",
            "fingerprint": hashlib.sha256(renewed.der).hexdigest(),
            "reason": None,
        }
    ]
    assert before.pop("addresses") == []  # a lone probe's own result names no addresses
    assert after == before


def test_every_address_serving_the_same_certificate_reads_like_one(pki, renewed, trust):
    probes = [served(a, renewed, pki.intermediate) for a in ("192.0.2.7", "192.0.2.8")]
    result = judge(name(*probes), trust)
    assert (result.status, result.codes) == ("ok", ())
    assert result.response == "SSL certificate for example.test will expire in 89 days"
    assert [entry.address for entry in result.addresses] == ["192.0.2.7", "192.0.2.8"]
    assert len({entry.fingerprint for entry in result.addresses}) == 1


def test_an_address_still_serving_the_old_certificate_decides(pki, renewed, old, trust):
    """The dual-stack case of issue 12: the IPv4 server renewed, the IPv6 one forgotten."""
    result = judge(
        name(
            served("192.0.2.7", renewed, pki.intermediate),
            served("2001:db8::7", old, pki.intermediate),
        ),
        trust,
    )
    assert result.status == "expiring" and result.alert
    # The top-level certificate fields describe the address that decided.
    assert (result.address, result.days_left) == ("2001:db8::7", 3)
    assert result.not_after == NOW + 3 * DAY
    expiring = result.problems[0]
    assert expiring.code == "expiring" and expiring.addresses == ("2001:db8::7",)
    assert expiring.message == (
        "2001:db8::7 serves a certificate that expires in 3 days (2026-12-03)"
    )
    assert result.response == (
        "SSL certificate for example.test will expire in 3 days; "
        "2001:db8::7 still serves the certificate that expires on 3 December 2026; "
        "192.0.2.7 serves the renewed one, which expires on 27 February 2027"
    )
    entries = {entry.address: entry for entry in result.addresses}
    assert entries["192.0.2.7"].status == "ok" and entries["2001:db8::7"].status == "expiring"
    assert entries["2001:db8::7"].problems == ("expiring",)
    assert entries["192.0.2.7"].fingerprint != entries["2001:db8::7"].fingerprint


def test_a_problem_that_is_not_about_the_leaf_names_its_address_first(pki, renewed, trust):
    result = judge(
        name(served("192.0.2.7", renewed, pki.intermediate), served("192.0.2.8", renewed)), trust
    )
    assert result.status == "invalid" and result.address == "192.0.2.8"
    (untrusted,) = result.problems
    assert (untrusted.code, untrusted.addresses) == ("untrusted", ("192.0.2.8",))
    assert untrusted.message.startswith("192.0.2.8: ")  # an incomplete chain there
    assert result.response == "SSL certificate for example.test will expire in 89 days, but " + (
        untrusted.message.removeprefix("192.0.2.8: ") + " (on 192.0.2.8 only)"
    )


def test_a_problem_on_every_address_names_none(pki, old, trust):
    probes = [served(a, old, pki.intermediate) for a in ("192.0.2.7", "192.0.2.8")]
    result = judge(name(*probes), trust)
    assert result.codes == ("expiring",)
    assert result.problems[0].addresses == ()
    assert result.problems[0].message == "the certificate expires in 3 days (2026-12-03)"
    assert "addresses" not in result.problems[0].to_dict()


def test_an_unreachable_address_among_good_ones_is_an_error_on_that_address(pki, renewed, trust):
    good = served("192.0.2.7", renewed, pki.intermediate)
    result = judge(name(good, failed("192.0.2.9")), trust)
    assert result.status == "error" and not result.alert
    assert result.address == "192.0.2.9" and result.days_left is None
    (problem,) = result.problems
    assert (problem.code, problem.addresses) == ("connect_error", ("192.0.2.9",))
    assert problem.message.startswith("192.0.2.9: connection refused")
    assert result.response.endswith(
        "; 192.0.2.7 serves the certificate that expires on 27 February 2027; "
        "192.0.2.9 could not be checked"
    )
    statuses = [(entry.address, entry.status) for entry in result.addresses]
    assert statuses == [("192.0.2.7", "ok"), ("192.0.2.9", "error")]


def test_worst_over_addresses_is_invalid_then_expiring_then_error(pki, renewed, old, trust):
    wrong_name = pki.leaf(dns=["other.test"], not_after=NOW + 60 * DAY)
    unreachable = failed("192.0.2.1")
    expiring = served("192.0.2.2", old, pki.intermediate)
    invalid = served("192.0.2.3", wrong_name, pki.intermediate)
    ok = served("192.0.2.4", renewed, pki.intermediate)
    assert judge(name(ok, unreachable), trust).status == "error"
    assert judge(name(unreachable, expiring, ok), trust).status == "expiring"
    worst = judge(name(unreachable, expiring, invalid, ok), trust)
    assert (worst.status, worst.address) == ("invalid", "192.0.2.3")
    assert worst.codes[0] == "hostname_mismatch"  # the decider's problems come first


def test_the_sooner_expiry_decides_among_equals(pki, trust):
    soon = pki.leaf(dns=["example.test"], not_after=NOW + 5 * DAY)
    sooner = pki.leaf(dns=["example.test"], not_after=NOW + 2 * DAY)
    result = judge(
        name(served("192.0.2.1", soon, pki.intermediate), served("192.0.2.2", sooner)), trust, 7
    )
    assert (result.address, result.days_left) == ("192.0.2.2", 2)


def test_not_checked_addresses_are_listed_and_never_count(pki, old, renewed, trust):
    skipped = (
        NotChecked("2001:db8::7", "this checker has no IPv6 route"),
        NotChecked("10.0.0.5", "refused: a private address, which sslnotify does not check", True),
    )
    result = judge(name(served("192.0.2.7", renewed, pki.intermediate), not_checked=skipped), trust)
    assert (result.status, result.codes) == ("ok", ())
    entries = [entry.to_dict() for entry in result.addresses]
    assert [entry["status"] for entry in entries] == ["ok", NOT_CHECKED, NOT_CHECKED]
    assert entries[1] == {
        "address": "2001:db8::7",
        "status": "not_checked",
        "problems": [],
        "daysLeft": None,
        "notAfter": None,
        "fingerprint": None,
        "reason": "this checker has no IPv6 route",
    }
    assert result.response == "SSL certificate for example.test will expire in 89 days"


def test_a_name_that_did_not_resolve_lists_no_address(trust):
    nowhere = Evidence(TARGET, NOW, error="dns_error", message="could not resolve example.test")
    result = judge(name(nowhere), trust)
    assert (result.status, result.codes, result.addresses) == ("error", ("dns_error",), ())


def test_the_result_round_trips_through_json(pki, renewed, old, trust):
    skipped = (NotChecked("::1", "this checker has no IPv6 route"),)
    evidence = name(
        served("192.0.2.7", renewed, pki.intermediate),
        served("192.0.2.8", old),
        not_checked=skipped,
    )
    result = judge(evidence, trust)
    shape = json.loads(json.dumps(result.to_dict()))
    assert all(set(entry) == ENTRY_FIELDS for entry in shape["addresses"])
    assert shape["problems"][0]["addresses"] == ["192.0.2.8"]
    rebuilt = CheckResult.from_dict(shape)
    assert rebuilt == result
    assert rebuilt.to_dict() == shape


def test_each_tolerance_gets_its_own_combined_result(pki, renewed, old, trust):
    evidence = name(
        served("192.0.2.7", renewed, pki.intermediate), served("192.0.2.8", old, pki.intermediate)
    )
    results = evaluate_name_tolerances(evidence, [30, 2, "auto"], NOW, trust)
    assert [r.to_dict() for r in results] == [
        judge(evidence, trust, tolerance).to_dict() for tolerance in (30, 2, "auto")
    ]
    assert [r.status for r in results] == ["expiring", "ok", "expiring"]  # auto: 30 of 90 days


def test_combine_needs_a_result():
    with pytest.raises(ValueError):
        combine([])


def test_combining_many_tolerances_stays_cheap(pki, renewed, old, trust):
    """The daily sweep judges each target for each tolerance of its watchers: stay fast."""
    one = name(served("192.0.2.7", renewed, pki.intermediate))
    tolerances = [*range(1, 60), "auto"]
    evaluate_name_tolerances(one, tolerances, NOW, trust)  # warm caches
    started = time.perf_counter()
    for _ in range(20):
        evaluate_name_tolerances(one, tolerances, NOW, trust)
    per_result = (time.perf_counter() - started) / (20 * len(tolerances))
    assert per_result < 0.0005  # about 20 µs on the shared test machine; a tenth of a ms is a bug


def test_the_command_line_lists_each_address_under_the_target(pki, renewed, old, trust):
    evidence = name(
        served("192.0.2.7", renewed, pki.intermediate),
        served("2001:db8::7", old, pki.intermediate),
        not_checked=(NotChecked("2001:db8::8", "this checker has no IPv6 route"),),
    )
    lines = human_line(judge(evidence, trust)).split("\n")
    assert lines[0].startswith("example.test:443  EXPIRING  3 days left (expires 2026-12-03")
    assert "2001:db8::7 serves a certificate that expires in 3 days" in lines[0]
    short = hashlib.sha256(renewed.der).hexdigest()[:16]
    assert lines[1:] == [
        f"  192.0.2.7  OK  89 days left (expires 2027-02-27, sha256 {short}…)",
        "  2001:db8::7  EXPIRING  3 days left (expires 2026-12-03, sha256 "
        + hashlib.sha256(old.der).hexdigest()[:16]
        + "…)",
        "  2001:db8::8  NOT CHECKED  this checker has no IPv6 route",
    ]
    single = judge(name(served("192.0.2.7", renewed, pki.intermediate)), trust)
    assert "\n" not in human_line(single)  # one address: the one line of before


def test_addresses_serving_the_same_chain_are_judged_once(pki, renewed, old, trust, monkeypatch):
    calls = []
    real = combine_module.evaluate_tolerances

    def counting(probe, *args):
        calls.append(probe.address)
        return real(probe, *args)

    monkeypatch.setattr(combine_module, "evaluate_tolerances", counting)
    probes = [served(f"192.0.2.{n}", renewed, pki.intermediate) for n in (1, 2, 3)]
    probes.append(served("192.0.2.4", old, pki.intermediate))
    result = judge(name(*probes), trust)
    assert calls == ["192.0.2.1", "192.0.2.4"]
    assert [entry.address for entry in result.addresses] == [f"192.0.2.{n}" for n in (1, 2, 3, 4)]
    assert [entry.status for entry in result.addresses] == ["ok", "ok", "ok", "expiring"]
