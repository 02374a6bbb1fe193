"""Evaluation of evidence at a fixed time, with certificates generated here: no sockets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.checker.evaluate import (
    CheckResult,
    auto_tolerance,
    evaluate,
    evaluate_tolerances,
    matches_host,
    status_of,
)
from chalicelib.checker.probe import Evidence
from chalicelib.checker.targets import parse_target
from chalicelib.checker.trust import TrustStore
from tests.certs import make_ca, make_leaf, make_pki

NOW = datetime(2027, 1, 1, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
FIELDS = {
    "host", "hostAscii", "port", "daysTolerance", "toleranceMode", "status", "alert", "problems",
    "daysLeft", "notAfter", "notBefore", "issuedBy", "subject", "validHosts", "chain",
    "earliestExpiry", "response", "checkedAt",
}  # fmt: skip


@pytest.fixture(scope="module")
def pki():
    return make_pki(NOW)


@pytest.fixture(scope="module")
def rsa_pki():
    return make_pki(NOW, name="RSA Test", key="rsa2048")


@pytest.fixture(scope="module")
def trust(pki, rsa_pki):
    return TrustStore.from_pem(pki.root.pem, rsa_pki.root.pem)


def seen(target: str, *certificates, checked_at: datetime = NOW) -> Evidence:
    """Return the evidence of a server at `target` sending these certificates."""
    return Evidence(
        target=parse_target(target),
        checked_at=checked_at,
        chain=tuple(c.der for c in certificates),
        address="127.0.0.1",
    )


def judge(evidence, trust, tolerance=30, now=NOW) -> CheckResult:
    return evaluate(evidence, now, tolerance, trust)


# (description, leaf options, served after the leaf, target, tolerance, status, codes, daysLeft)
LEAF_CASES = [
    ("good", {"not_after": NOW + 72 * DAY}, "inter", "example.test", 30, "ok", [], 72),
    ("30 days 2 hours left, tolerance 30", {"not_after": NOW + 30 * DAY + timedelta(hours=2)},
     "inter", "example.test", 30, "ok", [], 30),
    ("29 days 22 hours left, tolerance 30", {"not_after": NOW + 29 * DAY + timedelta(hours=22)},
     "inter", "example.test", 30, "expiring", ["expiring"], 29),
    ("tolerance 7 ignores 20 days", {"not_after": NOW + 20 * DAY}, "inter", "example.test", 7,
     "ok", [], 20),
    ("expired an hour ago", {"not_after": NOW - timedelta(hours=1)}, "inter", "example.test", 30,
     "invalid", ["expired"], -1),
    ("expired and wrong host", {"not_after": NOW - 3 * DAY, "dns": ["other.test"]}, "inter",
     "example.test", 30, "invalid", ["expired", "hostname_mismatch"], -3),
    ("not yet valid", {"not_before": NOW + DAY, "not_after": NOW + 90 * DAY}, "inter",
     "example.test", 30, "invalid", ["not_yet_valid"], 90),
    ("wrong host", {"dns": ["other.test"]}, "inter", "example.test", 30, "invalid",
     ["hostname_mismatch"], 60),
    ("incomplete chain (leaf only)", {}, None, "example.test", 30, "invalid", ["untrusted"], 60),
    ("wildcard covers one label", {"dns": ["*.example.test"]}, "inter", "www.example.test", 30,
     "ok", [], 60),
    ("wildcard does not cover the bare domain", {"dns": ["*.example.test"]}, "inter",
     "example.test", 30, "invalid", ["hostname_mismatch"], 60),
    ("wildcard does not cover two labels", {"dns": ["*.example.test"]}, "inter",
     "a.b.example.test", 30, "invalid", ["hostname_mismatch"], 60),
    ("IPv4 SAN", {"dns": [], "ips": ["192.0.2.7"]}, "inter", "192.0.2.7", 30, "ok", [], 60),
    ("IPv6 SAN", {"dns": [], "ips": ["2001:db8::7"]}, "inter", "[2001:db8::7]:443", 30, "ok",
     [], 60),
    ("a DNS SAN does not cover an IP", {"dns": ["192.0.2.7"]}, "inter", "192.0.2.7", 30,
     "invalid", ["hostname_mismatch"], 60),
    ("IDN host against its A-label", {"dns": ["xn--bcher-kva.test"]}, "inter", "bücher.test",
     30, "ok", [], 60),
    ("CN only, no SAN: no fallback", {"san": False, "common_name": "example.test"}, "inter",
     "example.test", 30, "invalid", ["hostname_mismatch"], 60),
    ("weak EC key", {"key": "ec224"}, "inter", "example.test", 30, "invalid", ["weak_key"], 60),
]  # fmt: skip


@pytest.mark.parametrize(
    ("leaf_options", "served", "target", "tolerance", "status", "codes", "days_left"),
    [case[1:] for case in LEAF_CASES],
    ids=[case[0] for case in LEAF_CASES],
)
def test_leaf_cases(pki, trust, leaf_options, served, target, tolerance, status, codes, days_left):
    leaf = pki.leaf(**leaf_options)
    chain = [leaf, pki.intermediate] if served == "inter" else [leaf]
    result = judge(seen(target, *chain), trust, tolerance)
    assert (result.status, list(result.codes), result.days_left) == (status, codes, days_left)
    assert result.alert is (status in ("expiring", "invalid"))


def test_self_signed_leaf_is_untrusted_and_self_signed(trust):
    leaf = make_leaf(None, dns=["example.test"], now=NOW)
    result = judge(seen("example.test", leaf), trust)
    assert result.status == "invalid"
    assert set(result.codes) == {"untrusted", "self_signed"}


def test_self_signed_leaf_in_the_trust_store_is_still_self_signed(trust):
    leaf = make_leaf(None, dns=["example.test"], now=NOW)
    result = judge(seen("example.test", leaf), TrustStore.from_pem(leaf.pem))
    assert result.codes == ("self_signed",)


def test_unknown_root_is_untrusted(trust):
    stranger = make_pki(NOW, name="Unknown")
    leaf = stranger.leaf()
    result = judge(seen("example.test", leaf, stranger.intermediate, stranger.root), trust)
    assert result.codes == ("untrusted",)
    assert "Unknown Root CA" in result.problems[0].message


def test_expired_leaf_of_a_trusted_ca_is_expired_not_untrusted(pki, trust):
    leaf = pki.leaf(not_before=NOW - 100 * DAY, not_after=NOW - 10 * DAY)
    assert judge(seen("example.test", leaf, pki.intermediate), trust).codes == ("expired",)


@pytest.mark.parametrize(("hash_name", "label"), [("sha1", "SHA-1"), ("md5", "MD5")])
def test_weak_signature_is_judged_apart_from_trust(rsa_pki, trust, hash_name, label):
    leaf = rsa_pki.leaf(hash=hash_name)
    result = judge(seen("example.test", leaf, rsa_pki.intermediate), trust)
    assert result.codes == ("weak_signature",)
    assert label in result.problems[0].message


def test_weak_rsa_key(rsa_pki, trust):
    leaf = rsa_pki.leaf(key="rsa1024", hash="sha1")
    result = judge(seen("example.test", leaf, rsa_pki.intermediate), trust)
    assert result.codes == ("weak_signature", "weak_key")
    assert "1024 bits" in result.problems[1].message


def test_intermediate_expiring_within_tolerance(pki, trust):
    short = make_ca("Short Intermediate", issuer=pki.root, now=NOW, not_after=NOW + 10 * DAY)
    leaf = make_leaf(short, now=NOW, not_after=NOW + 60 * DAY)
    result = judge(seen("example.test", leaf, short), trust)
    assert (result.status, result.codes) == ("expiring", ("chain_expiring",))
    assert result.days_left == 60
    assert result.earliest_expiry.subject == "Short Intermediate"
    assert result.earliest_expiry.days_left == 10


def test_expired_intermediate_of_the_verified_path_is_expired(pki, trust):
    lapsed = make_ca("Lapsed Intermediate", issuer=pki.root, now=NOW, not_after=NOW - DAY)
    leaf = make_leaf(lapsed, now=NOW)
    result = judge(seen("example.test", leaf, lapsed), trust)
    assert (result.status, result.codes) == ("invalid", ("expired",))
    assert "Lapsed Intermediate" in result.problems[0].message


def test_superfluous_old_cross_sign_never_alerts(pki, trust):
    # The server also sends the root cross-signed by an old CA that expires in 5 days, as sites
    # once sent ISRG Root X1 signed by DST Root CA X3: the verified path ends at the anchor.
    old = make_ca("Old Root", now=NOW, not_after=NOW + 5 * DAY)
    cross = make_ca("sslnotify Test Root CA", issuer=old, now=NOW, not_after=NOW + 5 * DAY)
    cross_signed = type(cross)(cert=_cross_sign(pki.root, old, NOW + 5 * DAY), key=pki.root.key)
    leaf = pki.leaf()
    result = judge(seen("example.test", leaf, pki.intermediate, cross_signed, old), trust)
    assert result.status == "ok", result.problems
    assert len(result.chain) == 4
    assert result.earliest_expiry.days_left == 5  # listed, but no alert


def test_expiring_trust_anchor_sent_by_the_server_never_alerts(pki):
    root = make_ca("Ageing Root", now=NOW, not_after=NOW + 3 * DAY)
    inter = make_ca("Fresh Intermediate", issuer=root, now=NOW, not_after=NOW + 2 * 365 * DAY)
    leaf = make_leaf(inter, now=NOW)
    result = judge(seen("example.test", leaf, inter, root), TrustStore.from_pem(root.pem))
    assert result.codes == ()


def test_unverified_chain_counts_every_served_certificate(pki, trust):
    stranger = make_pki(NOW, name="Unknown")
    short = make_ca("Short Unknown", issuer=stranger.root, now=NOW, not_after=NOW + 10 * DAY)
    leaf = make_leaf(short, now=NOW)
    result = judge(seen("example.test", leaf, short), trust)
    assert set(result.codes) == {"chain_expiring", "untrusted"}
    assert result.status == "invalid"


def _cross_sign(subject_ca, issuer_ca, not_after):
    """Re-issue subject_ca's name and key under issuer_ca (a cross-certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_ca.cert.subject)
        .issuer_name(issuer_ca.cert.subject)
        .public_key(subject_ca.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 365 * DAY)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    return builder.sign(issuer_ca.key, hashes.SHA256())


@pytest.mark.parametrize(
    ("lifetime", "expected"),
    [(timedelta(days=90) - timedelta(seconds=1), 30), (timedelta(days=90), 30),
     (timedelta(days=47), 15), (timedelta(days=6), 2), (timedelta(days=398), 132)],
)  # fmt: skip
def test_auto_tolerance_is_a_third_of_the_lifetime(lifetime, expected):
    assert auto_tolerance(NOW, NOW + lifetime) == expected


def test_auto_tolerance_on_a_short_lived_certificate(pki, trust):
    # A 6-day certificate with 3 days left is fine under auto (threshold 2), not under 30.
    leaf = pki.leaf(not_before=NOW - 3 * DAY, not_after=NOW + 3 * DAY)
    auto = judge(seen("example.test", leaf, pki.intermediate), trust, "auto")
    fixed = judge(seen("example.test", leaf, pki.intermediate), trust, 30)
    assert (auto.status, auto.days_tolerance, auto.tolerance_mode) == ("ok", 2, "auto")
    assert (fixed.status, fixed.days_tolerance, fixed.tolerance_mode) == ("expiring", 30, "days")


@pytest.mark.parametrize("code", ["dns_error", "connect_error", "timeout", "tls_error"])
def test_failures_are_errors_with_every_field(trust, code):
    evidence = Evidence(
        target=parse_target("example.test"), checked_at=NOW, error=code, message="it failed"
    )
    result = judge(evidence, trust)
    data = result.to_dict()
    assert set(data) >= FIELDS
    assert data["status"] == "error" and data["alert"] is False
    assert data["problems"] == [{"code": code, "message": "it failed"}]
    assert data["daysLeft"] is None and data["notAfter"] is None and data["chain"] == []
    assert data["checkedAt"] == "2027-01-01T12:00:00Z"


def test_unreadable_certificate_is_a_tls_error(trust):
    evidence = Evidence(target=parse_target("example.test"), checked_at=NOW, chain=(b"junk",))
    assert judge(evidence, trust).codes == ("tls_error",)


def test_result_json(pki, trust):
    leaf = pki.leaf(dns=["xn--bcher-kva.test", "www.xn--bcher-kva.test"], ips=["192.0.2.1"],
                    not_after=NOW + 72 * DAY)  # fmt: skip
    result = judge(seen("https://Bücher.test:8443/path", leaf, pki.intermediate), trust)
    data = result.to_dict()
    assert set(data) >= FIELDS
    assert data["host"] == "bücher.test" and data["hostAscii"] == "xn--bcher-kva.test"
    assert data["port"] == 8443
    assert data["notAfter"] == "2027-03-14T12:00:00Z"
    assert data["notBefore"] == "2026-12-31T12:00:00Z"
    assert data["issuedBy"] == "sslnotify Test"
    assert data["subject"] == "xn--bcher-kva.test"
    assert data["validHosts"] == ["xn--bcher-kva.test", "www.xn--bcher-kva.test", "192.0.2.1"]
    assert [entry["subject"] for entry in data["chain"]] == [
        "xn--bcher-kva.test",
        "sslnotify Test Intermediate CA",
    ]
    assert data["chain"][0]["issuer"] == "sslnotify Test Intermediate CA"
    assert data["earliestExpiry"] == {
        "subject": "xn--bcher-kva.test",
        "notAfter": "2027-03-14T12:00:00Z",
        "daysLeft": 72,
    }
    assert data["response"] == "SSL certificate for bücher.test:8443 will expire in 72 days"
    assert CheckResult.from_dict(data) == result


def test_response_sentences(pki, trust):
    def response(target, **options):
        return judge(seen(target, pki.leaf(**options), pki.intermediate), trust).response

    assert response("example.test", not_after=NOW + 72 * DAY) == (
        "SSL certificate for example.test will expire in 72 days"
    )
    assert response("example.test", not_after=NOW + DAY) == (
        "SSL certificate for example.test will expire in 1 day"
    )
    assert response("example.test", not_after=NOW - 3 * DAY) == (
        "SSL certificate for example.test expired 3 days ago (on 2026-12-29)"
    )
    assert response("wrong.test", not_after=NOW + 72 * DAY).startswith(
        "SSL certificate for wrong.test will expire in 72 days, but the certificate is not valid"
    )
    # Said once, without contradicting itself ("not valid until X, but ... valid from X").
    assert response("example.test", not_before=NOW + DAY, not_after=NOW + 90 * DAY) == (
        "SSL certificate for example.test is not valid until 2027-01-02T12:00:00Z"
    )
    assert response("wrong.test", not_before=NOW + DAY, not_after=NOW + 90 * DAY) == (
        "SSL certificate for wrong.test is not valid until 2027-01-02T12:00:00Z, and the "
        "certificate is not valid for wrong.test (it covers example.test)"
    )


def test_one_judgement_gives_each_tolerance_its_own_result(pki, trust):
    # The leaf has 20 days left and the intermediate 10: each tolerance sees its own problems.
    short = make_ca("Short Intermediate", issuer=pki.root, now=NOW, not_after=NOW + 10 * DAY)
    leaf = make_leaf(
        short, now=NOW, not_before=NOW - 40 * DAY, not_after=NOW + 20 * DAY, dns=["other.test"]
    )
    evidence = seen("example.test", leaf, short)
    results = evaluate_tolerances(evidence, [30, 14, 7, "auto"], NOW, trust)
    assert [r.codes for r in results] == [
        ("expiring", "chain_expiring", "hostname_mismatch"),
        ("chain_expiring", "hostname_mismatch"),
        ("hostname_mismatch",),
        ("chain_expiring", "hostname_mismatch"),  # auto: a third of 60 days is 20
    ]
    assert [(r.days_tolerance, r.tolerance_mode) for r in results] == [
        (30, "days"), (14, "days"), (7, "days"), (20, "auto"),
    ]  # fmt: skip
    assert [r.to_dict() for r in results] == [
        judge(evidence, trust, tolerance).to_dict() for tolerance in (30, 14, 7, "auto")
    ]
    failed = Evidence(parse_target("example.test"), NOW, error="timeout", message="timed out")
    assert [r.codes for r in evaluate_tolerances(failed, [30, "auto"], NOW, trust)] == [
        ("timeout",),
        ("timeout",),
    ]


@pytest.mark.parametrize(
    ("codes", "status"),
    [
        ([], "ok"),
        (["expiring"], "expiring"),
        (["chain_expiring"], "expiring"),
        (["expiring", "hostname_mismatch"], "invalid"),
        (["weak_key"], "invalid"),
        (["weak_signature", "chain_expiring"], "invalid"),
        (["untrusted", "self_signed"], "invalid"),
        (["not_yet_valid"], "invalid"),
        (["timeout"], "error"),
        (["tls_error", "expired"], "error"),
    ],
)
def test_status_rules(codes, status):
    assert status_of(codes) == status


@pytest.mark.parametrize(
    ("names", "host", "matches"),
    [
        (["example.test"], "EXAMPLE.test", True),
        (["example.test."], "example.test", True),
        (["*.example.test"], "a.example.test", True),
        (["*.example.test"], "example.test", False),
        (["*.example.test"], "a.b.example.test", False),
        (["*.test"], "example.test", False),
        (["a*.example.test"], "ab.example.test", False),
        (["www.*.test"], "www.example.test", False),
        (["*.xn--bcher-kva.test"], "www.xn--bcher-kva.test", True),
    ],
)
def test_hostname_matching(names, host, matches):
    leaf = make_leaf(None, dns=names, now=NOW)
    assert matches_host(leaf.cert, host, is_ip=False) is matches


def test_now_defaults_to_when_the_probe_ran(pki, trust):
    leaf = pki.leaf(not_after=NOW + 10 * DAY)
    evidence = seen("example.test", leaf, pki.intermediate, checked_at=NOW + 5 * DAY)
    assert evaluate(evidence, None, 30, trust).days_left == 5
