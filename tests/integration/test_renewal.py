"""CT and ARI lookups against fake services on loopback, through check-now and the CLI's path."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chalicelib.checker.ari import RenewalInfo, certificate_id
from chalicelib.checker.check import check_target
from chalicelib.checker.ct import CTSearch
from chalicelib.checker.renewal_lookup import RenewalLookup
from chalicelib.checker.trust import TrustStore
from tests.certs import Issued, make_key, make_pki
from tests.renewal_services import issuance_json

DAY = timedelta(days=1)
NAMES = ["localhost", "www.localhost"]


@pytest.fixture(scope="module")
def now():
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def pki(now):
    return make_pki(now, name="Renewal Test")


@pytest.fixture(scope="module")
def trust(pki):
    return TrustStore.from_pem(pki.root.pem)


def leaf(pki, *, not_before, days, names=NAMES) -> Issued:
    """Issue a leaf with an authority key identifier (what ARI identifies a certificate by)."""
    key = make_key()
    issuer = pki.intermediate
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    return Issued(cert=builder.sign(issuer.key, hashes.SHA256()), key=key)


def lookup(services, *, ct=True, ari=True, timeout=2.0) -> RenewalLookup:
    return RenewalLookup(
        ct=CTSearch(url=services.ct_url, timeout=timeout) if ct else None,
        ari=RenewalInfo(
            directories={"Renewal Test Intermediate CA": services.directory_url}, timeout=timeout
        )
        if ari
        else None,
    )


def check(server, trust, renewal, *, days=30):
    return check_target(
        f"localhost:{server.port}",
        days,
        allow_private=True,
        trust=trust,
        resolver=lambda host, port: ["127.0.0.1"],
        renewal=renewal,
        timeout=5,
    )


def codes(result):
    return [problem["code"] for problem in result.to_dict()["problems"]]


def test_renewed_but_not_deployed_says_so_precisely(tls_server, pki, trust, now, renewal_services):
    served = leaf(pki, not_before=now - 80 * DAY, days=85)  # 5 days left
    renewed = leaf(pki, not_before=now - 2 * DAY, days=90)
    renewal_services.issuances["localhost"] = [
        issuance_json(served, NAMES),
        issuance_json(renewed, NAMES),
    ]
    result = check(tls_server([served, pki.intermediate]), trust, lookup(renewal_services))
    assert result.status == "expiring"
    assert codes(result) == ["expiring", "not_deployed"]
    message = result.problems[1].message
    day = renewed.cert.not_valid_before_utc
    assert f"a renewed certificate was issued on {day.day} {day:%B %Y}" in message
    assert f"serial {renewed.cert.serial_number:x}" in message
    assert "but 127.0.0.1 still serves the old one: reload or redeploy your server" in message
    ct = result.to_dict()["renewal"]["ct"]
    assert ct["newerIssued"] is True
    assert ct["serial"] == f"{renewed.cert.serial_number:x}"


def test_an_expired_certificate_with_an_undeployed_renewal_is_invalid(
    tls_server, pki, trust, now, renewal_services
):
    served = leaf(pki, not_before=now - 92 * DAY, days=90)
    renewed = leaf(pki, not_before=now - 30 * DAY, days=90)
    renewal_services.issuances["localhost"] = [issuance_json(renewed, NAMES)]
    result = check(tls_server([served, pki.intermediate]), trust, lookup(renewal_services))
    assert result.status == "invalid"
    assert codes(result) == ["expired", "not_deployed"]


def test_renewed_and_deployed_is_not_an_alert(tls_server, pki, trust, now, renewal_services):
    served = leaf(pki, not_before=now - 80 * DAY, days=85)
    renewal_services.issuances["localhost"] = [issuance_json(served, NAMES)]
    result = check(tls_server([served, pki.intermediate]), trust, lookup(renewal_services))
    assert codes(result) == ["expiring"]
    assert result.to_dict()["renewal"]["ct"] == {"newerIssued": False}


def test_a_renewal_for_other_names_is_not_this_ones(tls_server, pki, trust, now, renewal_services):
    served = leaf(pki, not_before=now - 80 * DAY, days=85)
    other = leaf(pki, not_before=now - 2 * DAY, days=90, names=["localhost", "api.localhost"])
    renewal_services.issuances["localhost"] = [issuance_json(other, ["localhost", "api.localhost"])]
    result = check(tls_server([served, pki.intermediate]), trust, lookup(renewal_services))
    assert codes(result) == ["expiring"]


def test_a_certificate_far_from_expiry_never_asks_ct(tls_server, pki, trust, now, renewal_services):
    served = leaf(pki, not_before=now - 10 * DAY, days=90)
    result = check(
        tls_server([served, pki.intermediate]), trust, lookup(renewal_services, ari=False)
    )
    assert result.status == "ok"
    assert renewal_services.count("/v1/issuances") == 0
    assert result.to_dict()["renewal"] is None


def test_ct_is_asked_once_per_name_a_day(tls_server, pki, trust, now, renewal_services):
    served = leaf(pki, not_before=now - 80 * DAY, days=85)
    server = tls_server([served, pki.intermediate])
    sources = lookup(renewal_services, ari=False)
    for _ in range(3):
        check(server, trust, sources)
    assert renewal_services.count("/v1/issuances") == 1
    assert sources.calls == 1


@pytest.mark.parametrize("mode", ["down", "rate_limited", "garbage", "slow"])
def test_a_failing_ct_service_makes_the_information_unknown_not_the_check(
    tls_server, pki, trust, now, renewal_services, mode
):
    served = leaf(pki, not_before=now - 80 * DAY, days=85)
    renewal_services.mode = mode
    started = time.monotonic()
    result = check(
        tls_server([served, pki.intermediate]), trust, lookup(renewal_services, timeout=1.0)
    )
    assert time.monotonic() - started < 4.5  # the slow service's 5 s answer is not waited for
    assert codes(result) == ["expiring"]
    assert result.status == "expiring"
    ct = result.to_dict()["renewal"]["ct"]
    assert ct["newerIssued"] is None
    assert ct["message"].startswith("the CT search is unavailable")
    assert result.renewal.unknown[0] == "ct"


def window(start, end, explanation=None):
    answer = {"suggestedWindow": {"start": start.isoformat(), "end": end.isoformat()}}
    if explanation:
        answer["explanationURL"] = explanation
    return answer


def test_ari_with_a_normal_window_is_shown_but_no_alert(
    tls_server, pki, trust, now, renewal_services
):
    served = leaf(pki, not_before=now - 10 * DAY, days=90)
    start = served.cert.not_valid_before_utc + 60 * DAY
    renewal_services.windows[certificate_id(served.cert)] = window(start, start + 2 * DAY)
    result = check(tls_server([served, pki.intermediate]), trust, lookup(renewal_services))
    assert result.status == "ok"
    ari = result.to_dict()["renewal"]["ari"]
    assert ari["windowStart"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ari["explanationURL"] is None


def test_an_early_window_asks_to_renew_with_the_cas_explanation(
    tls_server, pki, trust, now, renewal_services
):
    served = leaf(pki, not_before=now - 10 * DAY, days=90)
    explanation = "https://ca.example/incidents/2026-12"
    renewal_services.windows[certificate_id(served.cert)] = window(
        now - DAY, now + 2 * DAY, explanation
    )
    result = check(tls_server([served, pki.intermediate]), trust, lookup(renewal_services))
    assert result.status == "expiring"
    assert codes(result) == ["renewal_requested"]
    end = now + 2 * DAY
    assert result.problems[0].message == (
        f"your CA asks you to renew before {end.day} {end:%B %Y}, because of {explanation}"
    )
    assert result.to_dict()["renewal"]["ari"]["explanationURL"] == explanation


def test_ari_is_cached_until_retry_after(tls_server, pki, trust, now, renewal_services):
    served = leaf(pki, not_before=now - 10 * DAY, days=90)
    start = served.cert.not_valid_before_utc + 60 * DAY
    renewal_services.windows[certificate_id(served.cert)] = window(start, start + DAY)
    server, sources = tls_server([served, pki.intermediate]), lookup(renewal_services, ct=False)
    for _ in range(3):
        check(server, trust, sources)
    assert renewal_services.count("/ari/") == 1
    assert renewal_services.count("/acme/directory") == 1
    # Past the day (and the Retry-After of 6 h), the window is asked again.
    later = time.time() + 25 * 3600
    sources.ari.window(served.cert, now=later)
    assert renewal_services.count("/ari/") == 2


def test_an_issuer_without_an_acme_directory_is_not_asked(tls_server, renewal_services):
    stranger = make_pki(name="No ACME")
    served = leaf(stranger, not_before=datetime.now(UTC) - DAY, days=90)
    result = check_target(
        f"localhost:{tls_server([served, stranger.intermediate]).port}",
        30,
        allow_private=True,
        trust=TrustStore.from_pem(stranger.root.pem),
        resolver=lambda host, port: ["127.0.0.1"],
        renewal=lookup(renewal_services, ct=False),
    )
    assert result.status == "ok"
    assert renewal_services.requests == []
    assert result.renewal is None


@pytest.mark.parametrize(
    "answer",
    [b"not json", b"[]", b'{"suggestedWindow": {"start": "yesterday"}}', b'{"suggestedWindow": 5}'],
)
def test_a_malformed_ari_answer_is_unknown_never_an_alert(
    tls_server, pki, trust, now, renewal_services, answer
):
    served = leaf(pki, not_before=now - 10 * DAY, days=90)
    renewal_services.windows[certificate_id(served.cert)] = answer
    result = check(tls_server([served, pki.intermediate]), trust, lookup(renewal_services))
    assert result.status == "ok"
    ari = result.to_dict()["renewal"]["ari"]
    assert ari["windowStart"] is None
    assert "renewal information" in ari["message"]


@pytest.mark.parametrize(
    ("flags", "ct_asked", "ari_asked"),
    [([], 1, 1), (["--no-ct"], 0, 1), (["--no-ari"], 1, 0), (["--no-ct", "--no-ari"], 0, 0)],
)
def test_the_cli_consults_both_unless_told_not_to(
    capsys, monkeypatch, tls_server, pki, now, renewal_services, ca_file, flags, ct_asked, ari_asked
):
    from chalicelib import cli
    from chalicelib.config import reset_settings

    served = leaf(pki, not_before=now - 80 * DAY, days=85)
    renewed = leaf(pki, not_before=now - 2 * DAY, days=90)
    renewal_services.issuances["localhost"] = [issuance_json(renewed, NAMES)]
    monkeypatch.setenv("SSLNOTIFY_CT", "1")
    monkeypatch.setenv("SSLNOTIFY_ARI", "1")
    monkeypatch.setenv("SSLNOTIFY_CT_URL", renewal_services.ct_url)
    directories = f'{{"Renewal Test Intermediate CA": "{renewal_services.directory_url}"}}'
    monkeypatch.setenv("SSLNOTIFY_ACME_DIRECTORIES", directories)
    reset_settings()
    server = tls_server([served, pki.intermediate])
    target, root = f"localhost:{server.port}", ca_file(pki.root)
    status = cli.main(["check", target, "--ip", "127.0.0.1", "--cafile", root, *flags])
    out = capsys.readouterr().out
    assert status == 1
    assert renewal_services.count("/v1/issuances") == ct_asked
    assert renewal_services.count("/ari/") == ari_asked
    assert ("still serves the old one" in out) is bool(ct_asked)


def test_a_failing_service_is_asked_once_a_day_however_many_ask_at_once(pki, now, renewal_services):
    from concurrent.futures import ThreadPoolExecutor

    served = leaf(pki, not_before=now - 10 * DAY, days=90)
    sources = lookup(renewal_services, timeout=1.0)
    renewal_services.mode = "down"
    with ThreadPoolExecutor(8) as pool:
        windows = list(pool.map(lambda _: sources.ari.window(served.cert), range(16)))
        searches = list(pool.map(lambda _: _search_error(sources.ct), range(16)))
    assert all(window.error for window in windows)
    assert all(searches)
    assert renewal_services.count("/acme/directory") == 1
    assert renewal_services.count("/v1/issuances") == 1
    assert sources.calls == 2


def _search_error(ct) -> str | None:
    from chalicelib.checker.outside import OutsideUnavailable

    try:
        ct.issuances("localhost")
    except OutsideUnavailable as error:
        return error.message
    return None


def test_a_lookup_that_raises_leaves_the_results_as_judged(tls_server, pki, trust, now):

    class Exploding(RenewalLookup):
        def consult(self, evidence, results):
            raise RuntimeError("a surprise from a hostile certificate")

    served = leaf(pki, not_before=now - 80 * DAY, days=85)
    sources = Exploding(ct=CTSearch(url="http://127.0.0.1:9/"))
    result = check(tls_server([served, pki.intermediate]), trust, sources)
    assert codes(result) == ["expiring"]
    assert result.renewal is None


def test_with_several_addresses_the_message_names_those_serving_the_old_one(
    tls_server, pki, trust, now, renewal_services
):
    served = leaf(pki, not_before=now - 80 * DAY, days=85)
    renewed = leaf(pki, not_before=now - 2 * DAY, days=90)
    renewal_services.issuances["localhost"] = [issuance_json(renewed, NAMES)]
    old = tls_server([served, pki.intermediate], host="127.0.0.2")
    tls_server([renewed, pki.intermediate], host="127.0.0.3", port=old.port)
    result = check_target(
        f"localhost:{old.port}",
        30,
        allow_private=True,
        trust=trust,
        resolver=lambda host, port: ["127.0.0.2", "127.0.0.3"],
        renewal=lookup(renewal_services, ari=False),
        timeout=5,
    )
    assert result.status == "expiring"
    assert "not_deployed" in codes(result)
    message = next(p.message for p in result.problems if p.code == "not_deployed")
    assert message.endswith(
        "but 127.0.0.2 still serves the old one: reload or redeploy your server"
    )
