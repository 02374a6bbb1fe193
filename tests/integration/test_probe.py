"""The probe against real TLS servers on loopback, judged end to end with a test trust store."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.checker import ssrf
from chalicelib.checker.check import CheckRequest, check_many, check_target, gather_evidence
from chalicelib.checker.probe import probe
from chalicelib.checker.targets import parse_target
from chalicelib.checker.trust import TrustStore
from tests.certs import make_leaf, make_pki

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def now():
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def pki(now):
    return make_pki(now)


@pytest.fixture(scope="module")
def rsa_pki(now):
    return make_pki(now, name="RSA Test", key="rsa2048")


@pytest.fixture(scope="module")
def trust(pki, rsa_pki):
    return TrustStore.from_pem(pki.root.pem, rsa_pki.root.pem)


def check(text, trust, *, ip=None, tolerance=30, timeout=5.0, resolver=None):
    """Check one target on loopback, private addresses allowed."""
    request = CheckRequest(target=parse_target(text), tolerance=tolerance, ip=ip)
    results = asyncio.run(
        check_many([request], timeout=timeout, allow_private=True, trust=trust, resolver=resolver)
    )
    return results[0]


def test_good_chain_via_an_intermediate(tls_server, pki, trust):
    server = tls_server([pki.leaf(dns=["localhost"]), pki.intermediate])
    result = check(f"localhost:{server.port}", trust)
    assert (result.status, result.codes) == ("ok", ())
    assert len(result.chain) == 2
    assert result.address in ("127.0.0.1", "::1")
    assert server.server_names == ["localhost"]  # SNI sent for a name


def test_incomplete_chain_is_untrusted(tls_server, pki, trust):
    server = tls_server([pki.leaf(dns=["localhost"])])
    result = check(f"localhost:{server.port}", trust)
    assert result.codes == ("untrusted",)
    assert "incomplete chain" in result.problems[0].message


def test_self_signed(tls_server, trust):
    server = tls_server([make_leaf(None, dns=["localhost"])])
    result = check(f"localhost:{server.port}", trust)
    assert (result.status, set(result.codes)) == ("invalid", {"untrusted", "self_signed"})


def test_unknown_root(tls_server, now, trust):
    stranger = make_pki(now, name="Stranger")
    server = tls_server([stranger.leaf(dns=["localhost"]), stranger.intermediate, stranger.root])
    assert check(f"localhost:{server.port}", trust).codes == ("untrusted",)


def test_wrong_host(tls_server, pki, trust):
    server = tls_server([pki.leaf(dns=["other.test"]), pki.intermediate])
    result = check(f"localhost:{server.port}", trust)
    assert result.codes == ("hostname_mismatch",)
    assert result.valid_hosts == ("other.test",)


def test_expired_and_wrong_host(tls_server, pki, now, trust):
    leaf = pki.leaf(dns=["other.test"], not_after=now - 2 * DAY)
    server = tls_server([leaf, pki.intermediate])
    result = check(f"localhost:{server.port}", trust)
    assert (result.status, result.codes) == ("invalid", ("expired", "hostname_mismatch"))
    assert result.days_left <= -2


def test_wildcard_via_ip_override(tls_server, pki, trust):
    server = tls_server([pki.leaf(dns=["*.example.test"]), pki.intermediate])
    good = check(f"www.example.test:{server.port}", trust, ip="127.0.0.1")
    bare = check(f"example.test:{server.port}", trust, ip="127.0.0.1")
    assert good.codes == () and bare.codes == ("hostname_mismatch",)
    assert server.server_names == ["www.example.test", "example.test"]


def test_ip_san(tls_server, pki, trust):
    server = tls_server([pki.leaf(dns=[], ips=["127.0.0.1"]), pki.intermediate])
    result = check(f"127.0.0.1:{server.port}", trust)
    assert (result.status, result.valid_hosts) == ("ok", ("127.0.0.1",))
    assert server.server_names == [None]  # no SNI for an address


def test_idn_via_ip_override(tls_server, pki, trust):
    server = tls_server([pki.leaf(dns=["xn--bcher-kva.test"]), pki.intermediate])
    result = check(f"bücher.test:{server.port}", trust, ip="127.0.0.1")
    assert (result.status, result.host, result.host_ascii) == (
        "ok",
        "bücher.test",
        "xn--bcher-kva.test",
    )
    assert server.server_names == ["xn--bcher-kva.test"]


def test_ipv6_loopback(tls_server, pki, trust, ipv6_loopback):
    if not ipv6_loopback:
        pytest.skip("::1 is not available here")
    server = tls_server([pki.leaf(dns=[], ips=["::1"]), pki.intermediate], host="::1")
    result = check(f"[::1]:{server.port}", trust)
    assert (result.status, result.address) == ("ok", "::1")


def test_weak_key(tls_server, pki, trust):
    server = tls_server([pki.leaf(dns=["localhost"], key="rsa1024"), pki.intermediate])
    assert check(f"localhost:{server.port}", trust).codes == ("weak_key",)


def test_sha1_signature(tls_server, rsa_pki, trust):
    server = tls_server([rsa_pki.leaf(dns=["localhost"], hash="sha1"), rsa_pki.intermediate])
    assert check(f"localhost:{server.port}", trust).codes == ("weak_signature",)


def test_expiring_intermediate(tls_server, pki, now, trust):
    from tests.certs import make_ca

    short = make_ca("Short Intermediate", issuer=pki.root, now=now, not_after=now + 9 * DAY)
    server = tls_server([make_leaf(short, dns=["localhost"], now=now), short])
    result = check(f"localhost:{server.port}", trust)
    assert (result.status, result.codes) == ("expiring", ("chain_expiring",))


def test_auto_tolerance(tls_server, pki, now, trust):
    leaf = pki.leaf(dns=["localhost"], not_before=now - 3 * DAY, not_after=now + 3 * DAY)
    server = tls_server([leaf, pki.intermediate])
    result = check(f"localhost:{server.port}", trust, tolerance="auto")
    assert (result.status, result.days_tolerance) == ("ok", 2)


def test_closed_port(closed_port, trust):
    result = check(f"127.0.0.1:{closed_port()}", trust)
    assert result.codes == ("connect_error",)
    assert "refused" in result.problems[0].message


def test_silent_listener_times_out(silent_listener, trust):
    listener = silent_listener()
    started = time.monotonic()
    result = check(f"127.0.0.1:{listener.port}", trust, timeout=0.5)
    assert result.codes == ("timeout",)
    assert "TLS handshake" in result.problems[0].message
    assert time.monotonic() - started < 2


def test_plain_http_port_is_a_tls_error(plain_tcp_listener, trust):
    listener = plain_tcp_listener()
    result = check(f"127.0.0.1:{listener.port}", trust)
    assert result.codes == ("tls_error",)
    assert "plain HTTP" in result.problems[0].message


def test_unresolvable_name(trust):
    def resolver(host, port):
        raise ssrf.ResolutionFailed(f"could not resolve {host}: no such host")

    result = check("nowhere.invalid", trust, resolver=resolver)
    assert (result.status, result.codes) == ("error", ("dns_error",))


def test_dns_is_inside_the_timeout(trust):
    def slow_resolver(host, port):
        time.sleep(2)
        return ["127.0.0.1"]

    started = time.monotonic()
    result = check("slow.test", trust, resolver=slow_resolver, timeout=0.3)
    assert result.codes == ("timeout",)
    assert "resolving" in result.problems[0].message
    assert time.monotonic() - started < 1.5


def test_a_slow_target_does_not_delay_the_others(tls_server, silent_listener, pki, trust):
    server = tls_server([pki.leaf(dns=[], ips=["127.0.0.1"]), pki.intermediate])
    listeners = [silent_listener() for _ in range(6)]
    targets = [parse_target(f"127.0.0.1:{listener.port}") for listener in listeners]
    targets.append(parse_target(f"127.0.0.1:{server.port}"))
    started = time.monotonic()
    evidence = asyncio.run(
        gather_evidence(targets, timeout=0.5, concurrency=10, allow_private=True)
    )
    elapsed = time.monotonic() - started
    assert [e.probes[0].error for e in evidence] == ["timeout"] * 6 + [None]
    assert elapsed < 1.5  # all at once, not 6 x 0.5 s


def test_concurrency_is_bounded(silent_listener):
    targets = [parse_target(f"127.0.0.1:{silent_listener().port}") for _ in range(4)]
    started = time.monotonic()
    asyncio.run(gather_evidence(targets, timeout=0.3, concurrency=2, allow_private=True))
    assert time.monotonic() - started >= 0.55  # two rounds of 0.3 s


def test_requests_for_the_same_target_share_one_probe(tls_server, pki, trust):
    server = tls_server([pki.leaf(dns=["localhost"]), pki.intermediate])
    target = parse_target(f"localhost:{server.port}")
    requests = [CheckRequest(target, 30), CheckRequest(target, "auto"), CheckRequest(target, 90)]
    results = asyncio.run(check_many(requests, allow_private=True, trust=trust, timeout=5))
    assert [r.status for r in results] == ["ok", "ok", "expiring"]
    assert server.connections == 1


def test_probe_returns_the_served_chain_in_order(tls_server, pki):
    leaf = pki.leaf(dns=["localhost"])
    server = tls_server([leaf, pki.intermediate, pki.root])
    evidence = asyncio.run(probe(parse_target(f"127.0.0.1:{server.port}"), timeout=5))
    assert evidence.chain == (leaf.der, pki.intermediate.der, pki.root.der)
    assert evidence.address == "127.0.0.1" and evidence.tls_version


def test_check_target_sync(tls_server, pki, trust):
    server = tls_server([pki.leaf(dns=["localhost"]), pki.intermediate])
    result = check_target(f"https://localhost:{server.port}/", "auto", allow_private=True,
                          trust=trust, timeout=5)  # fmt: skip
    assert (result.status, result.tolerance_mode) == ("ok", "auto")


def test_the_guard_refuses_loopback_in_a_batch_without_connecting(tls_server, pki):
    server = tls_server([pki.leaf(dns=[], ips=["127.0.0.1"]), pki.intermediate])
    targets = [parse_target(f"127.0.0.1:{server.port}"), parse_target(f"0x7f.1:{server.port}")]
    evidence = asyncio.run(gather_evidence(targets, timeout=5, concurrency=2, allow_private=False))
    assert [(e.probes[0].error, e.refused) for e in evidence] == [("connect_error", True)] * 2
    assert server.connections == 0
