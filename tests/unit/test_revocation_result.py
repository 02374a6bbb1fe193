"""A revocation verdict in the result, the status rules, the alert email, the setting."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from chalicelib import emails
from chalicelib.checker.evaluate import CheckResult, evaluate, status_of
from chalicelib.checker.probe import Evidence
from chalicelib.checker.revocation import NOT_CHECKED, TURNED_OFF, Revocation
from chalicelib.checker.targets import parse_target
from chalicelib.checker.trust import TrustStore
from chalicelib.config import Settings
from tests.certs import make_pki

NOW = datetime(2027, 1, 1, 12, 0, 0, tzinfo=UTC)
REVOKED = Revocation(
    "revoked",
    "crl",
    "the certificate was revoked on 2026-12-30, reason: key compromise "
    "(according to its issuer's CRL)",
)
GOOD = Revocation(
    "good", "ocsp", "the certificate is not revoked (according to its OCSP responder)"
)


@pytest.fixture(scope="module")
def pki():
    return make_pki(NOW)


@pytest.fixture(scope="module")
def trust(pki):
    return TrustStore(anchors=(pki.root.cert,))


def evidence(pki, revocation: Revocation | None) -> Evidence:
    leaf = pki.leaf(dns=["example.test"])
    return Evidence(
        target=parse_target("example.test"),
        checked_at=NOW,
        chain=(leaf.der, pki.intermediate.der),
        address="127.0.0.1",
        revocation=revocation,
    )


def test_a_revoked_certificate_is_invalid_and_says_a_new_one_is_needed(pki, trust):
    result = evaluate(evidence(pki, REVOKED), NOW, 30, trust)
    assert result.status == "invalid" and result.alert
    assert result.codes == ("revoked",)
    (problem,) = result.problems
    assert problem.message == f"{REVOKED.message}: a new certificate is needed now"
    assert "but the certificate was revoked on 2026-12-30" in result.response
    assert result.to_dict()["revocation"] == REVOKED.to_dict()


def test_a_good_certificate_carries_its_revocation_status(pki, trust):
    result = evaluate(evidence(pki, GOOD), NOW, 30, trust)
    assert result.status == "ok"
    assert result.to_dict()["revocation"] == {
        "status": "good",
        "source": "ocsp",
        "message": "the certificate is not revoked (according to its OCSP responder)",
    }


@pytest.mark.parametrize("revocation", [TURNED_OFF, Revocation("unknown", None, "unreachable")])
def test_unknown_never_alerts(pki, trust, revocation):
    result = evaluate(evidence(pki, revocation), NOW, 30, trust)
    assert result.status == "ok" and not result.alert
    assert result.to_dict()["revocation"]["status"] == "unknown"


def test_evidence_without_a_lookup_says_not_checked(pki, trust):
    result = evaluate(evidence(pki, None), NOW, 30, trust)
    assert result.revocation == NOT_CHECKED


def test_no_certificate_means_no_revocation(pki, trust):
    failed = replace(evidence(pki, None), chain=(), error="timeout", message="no answer")
    assert evaluate(failed, NOW, 30, trust).to_dict()["revocation"] is None


def test_the_result_json_round_trips_with_its_revocation(pki, trust):
    result = evaluate(evidence(pki, REVOKED), NOW, 30, trust)
    assert CheckResult.from_dict(result.to_dict()) == result


def test_revoked_is_an_invalid_code():
    assert status_of(["revoked"]) == "invalid"
    assert status_of(["revoked", "expiring"]) == "invalid"


def test_the_alert_email_says_what_revocation_means_and_what_to_do(pki, trust):
    result = evaluate(evidence(pki, REVOKED), NOW, 30, trust).to_dict()
    settings = Settings(site_url="https://sslnotify.test", api_url="https://api.sslnotify.test")
    message = emails.alert(settings, "ann@example.org", "token", "example.test:443", result)
    assert message.subject == "SSL alert for example.test: certificate revoked"
    assert "has been revoked: its certificate authority withdrew it" in message.text
    assert "Get a new certificate now" in message.text
    assert "reason: key compromise" in message.text


@pytest.mark.parametrize(
    ("value", "enabled"), [(None, True), ("1", True), ("on", True), ("0", False), ("off", False)]
)
def test_the_setting_turns_revocation_checking_off(value, enabled):
    environ = {} if value is None else {"SSLNOTIFY_CHECK_REVOCATION": value}
    assert Settings.from_env(environ).check_revocation is enabled
