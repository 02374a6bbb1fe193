"""`sslnotify check` against loopback servers: output lines, --json, exit codes, usage errors."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import cli
from chalicelib.config import reset_settings
from tests.certs import make_leaf, make_pki

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def only_check(monkeypatch):
    # Assemble just this subcommand: the others belong to other modules and are tested there.
    monkeypatch.setattr(cli, "COMMANDS", {"check": cli.COMMANDS["check"]})


@pytest.fixture(scope="module")
def pki():
    return make_pki(datetime.now(UTC))


@pytest.fixture
def root_file(pki, ca_file):
    return ca_file(pki.root)


@pytest.fixture
def servers(tls_server, pki):
    """Start one server per status: ok, expiring (20 days left), invalid (self-signed)."""
    now = datetime.now(UTC)
    ok = tls_server([pki.leaf(dns=["localhost"], ips=["127.0.0.1"]), pki.intermediate])
    soon = pki.leaf(dns=["localhost"], ips=["127.0.0.1"], not_after=now + 20.5 * DAY)
    expiring = tls_server([soon, pki.intermediate])
    invalid = tls_server([make_leaf(None, dns=["localhost"], ips=["127.0.0.1"])])
    return {"ok": ok, "expiring": expiring, "invalid": invalid}


def run(capsys, *args):
    status = cli.main(["check", *args])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def test_ok_line(capsys, servers, root_file):
    status, out, err = run(capsys, f"127.0.0.1:{servers['ok'].port}", "--cafile", root_file)
    assert status == 0, out
    expected = r"127\.0\.0\.1:\d+  OK  59 days left \(expires [0-9-]+, issued by sslnotify Test\)"
    assert re.fullmatch(expected, out[0]), out
    assert err == []


@pytest.mark.parametrize(("name", "expected"), [("ok", 0), ("expiring", 1), ("invalid", 2)])
def test_exit_status_per_status(capsys, servers, root_file, name, expected):
    status, out, _ = run(capsys, f"127.0.0.1:{servers[name].port}", "--cafile", root_file)
    assert status == expected
    assert f"  {name.upper()}  " in out[0]


def test_error_exit_status(capsys, closed_port):
    status, out, _ = run(capsys, f"127.0.0.1:{closed_port()}")
    assert status == 3
    assert re.fullmatch(r"127\.0\.0\.1:\d+  ERROR  connection refused .*", out[0])


def test_worst_status_wins(capsys, servers, root_file, closed_port):
    ports = [servers[name].port for name in ("ok", "expiring", "invalid")]
    targets = [f"127.0.0.1:{port}" for port in ports]
    assert run(capsys, *targets[:2], "--cafile", root_file)[0] == 1
    assert run(capsys, *targets, "--cafile", root_file)[0] == 2
    status, out, _ = run(capsys, *targets, f"127.0.0.1:{closed_port()}", "--cafile", root_file)
    assert status == 3
    assert [line.split("  ")[1] for line in out] == ["OK", "EXPIRING", "INVALID", "ERROR"]


def test_json_lines(capsys, servers, root_file):
    targets = [f"127.0.0.1:{servers[name].port}" for name in ("ok", "invalid")]
    status, out, _ = run(capsys, *targets, "--json", "--cafile", root_file, "--days", "auto")
    assert status == 2
    results = [json.loads(line) for line in out]
    assert [r["status"] for r in results] == ["ok", "invalid"]
    assert results[0]["toleranceMode"] == "auto" and results[0]["daysTolerance"] == 20
    assert results[0]["notAfter"].endswith("Z") and results[0]["checkedAt"].endswith("Z")
    assert {p["code"] for p in results[1]["problems"]} == {"untrusted", "self_signed"}


def test_days_sets_the_tolerance(capsys, servers, root_file):
    target = f"127.0.0.1:{servers['expiring'].port}"
    assert run(capsys, target, "--cafile", root_file, "--days", "14")[0] == 0
    assert run(capsys, target, "--cafile", root_file, "--days", "21")[0] == 1


def test_ca_bundle_from_the_environment(capsys, servers, root_file, monkeypatch):
    target = f"127.0.0.1:{servers['ok'].port}"
    assert run(capsys, target)[0] == 2  # the test root is unknown to the system store
    monkeypatch.setenv("SSLNOTIFY_CA_BUNDLE", root_file)
    reset_settings()
    assert run(capsys, target)[0] == 0


def test_port_option_and_ip_override(capsys, servers, root_file):
    port = str(servers["ok"].port)
    status, out, _ = run(capsys, "localhost", "--port", port, "--ip", "127.0.0.1", "--cafile",
                         root_file)  # fmt: skip
    assert status == 0
    assert out[0].startswith(f"localhost:{port}  OK")


def test_idn_output_in_unicode(capsys, tls_server, pki, root_file):
    server = tls_server([pki.leaf(dns=["xn--bcher-kva.test"]), pki.intermediate])
    args = [f"bücher.test:{server.port}", "--ip", "127.0.0.1", "--cafile", root_file, "--json"]
    status, out, _ = run(capsys, *args)
    result = json.loads(out[0])
    assert status == 0
    assert (result["host"], result["hostAscii"]) == ("bücher.test", "xn--bcher-kva.test")


def test_a_servers_escape_sequences_never_reach_the_terminal(capsys, tls_server):
    from tests.certs import make_ca

    evil = make_ca("Evil\x1b[2J CA", organisation="Evil\x1b]0;pwned\x07\u202eCA")
    leaf = make_leaf(evil, dns=["localhost"], ips=["127.0.0.1"])
    server = tls_server([leaf])
    status, out, _ = run(capsys, f"127.0.0.1:{server.port}")
    assert status == 2  # untrusted: an unknown CA
    assert "\x1b" not in out[0] and "\x07" not in out[0] and "\u202e" not in out[0]
    assert "issued by Evil\\u001b]0;pwned\\u0007\\u202eCA" in out[0]


@pytest.mark.parametrize(
    "args",
    [
        ["--days", "0", "localhost"],
        ["--days", "abc", "localhost"],
        ["--days", "366", "localhost"],
        ["--days", "-5", "localhost"],
        ["localhost:99999"],
        ["https://"],
        ["exa mple.com"],
        ["--port", "0", "localhost"],
        ["--timeout", "0", "localhost"],
        ["--timeout", "soon", "localhost"],
        ["--ip", "not-an-ip", "localhost"],
        ["--cafile", "/nonexistent/roots.pem", "localhost"],
        ["--no-such-option", "localhost"],
        [],
    ],
)
def test_usage_errors_exit_3_with_one_line(capsys, args):
    status, out, err = run(capsys, *args)
    assert status == 3
    assert out == []
    assert len(err) == 1 and err[0].startswith("sslnotify: error: "), err


def test_private_targets_are_allowed_on_the_command_line(capsys, servers, root_file):
    assert run(capsys, f"127.0.0.1:{servers['ok'].port}", "--cafile", root_file)[0] == 0


@pytest.mark.parametrize("protocol", ["smtp", "ldap", "postgres"])
def test_starttls_option(capsys, starttls_server, pki, root_file, protocol):
    server = starttls_server(protocol, [pki.leaf(ips=["127.0.0.1"]), pki.intermediate])
    args = (f"127.0.0.1:{server.port}", "--starttls", protocol, "--cafile", root_file)
    status, out, _ = run(capsys, *args)
    assert status == 0, out
    assert out[0].startswith(f"{protocol}://127.0.0.1:{server.port}  OK  "), out
    status, out, _ = run(capsys, *args, "--json")
    assert json.loads(out[0])["protocol"] == protocol


def test_starttls_url_and_port_option(capsys, starttls_server, pki, root_file):
    server = starttls_server("pop3", [pki.leaf(ips=["127.0.0.1"]), pki.intermediate])
    status, out, _ = run(
        capsys, "pop3://127.0.0.1", "--port", str(server.port), "--cafile", root_file
    )
    assert status == 0, out


def test_server_without_starttls_exits_3(capsys, starttls_server, pki):
    server = starttls_server("smtp", [pki.leaf(ips=["127.0.0.1"])], "not_offered")
    status, out, _ = run(capsys, f"127.0.0.1:{server.port}", "--starttls", "smtp")
    assert status == 3
    assert "the server does not offer STARTTLS" in out[0]


@pytest.mark.parametrize(
    "args",
    [
        ["--starttls", "telnet", "localhost"],
        ["--starttls", "tls", "localhost"],
        ["--starttls", "smtp", "imap://localhost"],
        ["gopher://localhost"],
        ["https://localhost:0/"],
        ["--starttls", "smtp", "localhost:0"],
    ],
)
def test_starttls_usage_errors(capsys, args):
    status, out, err = run(capsys, *args)
    assert status == 3
    assert out == [] and err[0].startswith("sslnotify: error: "), err
