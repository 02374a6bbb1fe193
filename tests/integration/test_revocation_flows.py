"""A revoked certificate through every path that checks one: check-now, the CLI, the daily sweep."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from chalicelib import cli
from chalicelib.checker.revocation import shared_cache
from chalicelib.config import reset_settings
from tests.certs import make_crl
from tests.integration import sweep_stack, test_api
from tests.integration.sweep_stack import DAY1, DAY2, text_of
from tests.tls_servers import TLSServer

# Fixtures of other modules, made visible to this module's tests.
client, private_allowed = test_api.client, test_api.private_allowed
stack, sweep_pki, sweep_ca_bundle = (
    sweep_stack.stack,
    sweep_stack.sweep_pki,
    sweep_stack.sweep_ca_bundle,
)

ANN, BOB = "ann@example.org", "bob@example.net"


@pytest.fixture(autouse=True)
def fresh_shared_cache():
    shared_cache().clear()
    yield
    shared_cache().clear()


def revoked_entry(issued):
    return (issued, datetime.now(UTC) - timedelta(days=1), x509.ReasonFlags.key_compromise)


def test_check_now_reports_a_revoked_certificate(
    client, private_allowed, tls_server, test_pki, http_source
):
    leaf = test_pki.leaf(dns=["localhost"], ips=["127.0.0.1"], crl_urls=[http_source.url("/c.crl")])
    http_source.route("/c.crl", make_crl(test_pki.intermediate, revoked=[revoked_entry(leaf)]))
    server = tls_server([leaf, test_pki.intermediate])
    response = client.http.get(f"/check/127.0.0.1?port={server.port}")
    assert response.status_code == 200
    result = json.loads(response.body)
    assert result["status"] == "invalid" and result["alert"] is True
    assert [problem["code"] for problem in result["problems"]] == ["revoked"]
    assert result["problems"][0]["message"].endswith("a new certificate is needed now")
    assert result["revocation"]["status"] == "revoked"
    assert result["revocation"]["source"] == "crl"


@pytest.fixture
def only_check(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", {"check": cli.COMMANDS["check"]})


def test_the_cli_reports_revocation_and_no_revocation_turns_it_off(
    capsys, only_check, tls_server, test_pki, ca_file, http_source
):
    leaf = test_pki.leaf(dns=["localhost"], ips=["127.0.0.1"], crl_urls=[http_source.url("/c.crl")])
    http_source.route("/c.crl", make_crl(test_pki.intermediate, revoked=[revoked_entry(leaf)]))
    server = tls_server([leaf, test_pki.intermediate])
    target, root = f"127.0.0.1:{server.port}", ca_file(test_pki.root)

    assert cli.main(["check", target, "--cafile", root]) == 2
    line = capsys.readouterr().out.strip()
    assert (
        "INVALID" in line and "was revoked on" in line and "a new certificate is needed now" in line
    )

    assert cli.main(["check", target, "--cafile", root, "--json", "--no-revocation"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["revocation"] == {
        "status": "unknown",
        "source": None,
        "message": "revocation checking is turned off",
    }
    assert http_source.requests["/c.crl"] == 1  # the second run fetched nothing


def test_the_daily_sweep_alerts_a_revoked_certificate_by_email(stack, http_source):
    url = http_source.url("/sweep.crl")
    revoked, fine = stack.leaf(80, crl_urls=[url]), stack.leaf(80, crl_urls=[url])
    http_source.route(
        "/sweep.crl", make_crl(stack.pki.intermediate, revoked=[revoked_entry(revoked)])
    )
    servers = [TLSServer([leaf, stack.pki.intermediate]) for leaf in (revoked, fine)]
    stack.servers.extend(servers)
    stack.subscribe(ANN, servers[0].address)
    stack.subscribe(BOB, servers[1].address)
    stack.sweep(DAY1)
    (alert,) = stack.mail_to(ANN)
    assert alert["Subject"] == f"SSL alert for {servers[0].address}: certificate revoked"
    text = " ".join(text_of(alert).split())
    assert "has been revoked: its certificate authority withdrew it" in text
    assert "Get a new certificate now" in text
    assert "reason: key compromise" in text
    assert stack.mail_to(BOB) == []
    assert http_source.requests["/sweep.crl"] == 1  # one fetch for both targets
    # The next morning the CRL cannot be fetched: no "fixed" email for a revoked certificate.
    http_source.routes.pop("/sweep.crl")
    shared_cache().clear()
    stack.sweep(DAY2)
    assert len(stack.mail_to(ANN)) == 1
    assert stack.lambdas.failures == []


def test_the_sweep_can_be_told_not_to_check_revocation(stack, http_source, monkeypatch):
    monkeypatch.setenv("SSLNOTIFY_CHECK_REVOCATION", "off")
    reset_settings()
    url = http_source.url("/sweep.crl")
    revoked = stack.leaf(80, crl_urls=[url])
    http_source.route(
        "/sweep.crl", make_crl(stack.pki.intermediate, revoked=[revoked_entry(revoked)])
    )
    server = TLSServer([revoked, stack.pki.intermediate])
    stack.servers.append(server)
    stack.subscribe(ANN, server.address)
    stack.sweep(DAY1)
    assert stack.mail_to(ANN) == []
    assert http_source.requests == {}
