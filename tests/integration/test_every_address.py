"""Every address behind a name (DESIGN 3.1b), probed for real on several loopback addresses.

Servers on 127.0.0.2, 127.0.0.3 (and ::1 where usable) share one port, as a name's addresses
do; an injected resolver returns them, so no test depends on the machine's DNS. Packets go to
loopback only: a private address appears in resolver answers and is asserted never dialled.
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.checker import ssrf
from chalicelib.checker.addresses import MAX_ADDRESSES, NO_IPV6_ROUTE, probe_name
from chalicelib.checker.check import CheckRequest, check_many, check_target, gather_evidence
from chalicelib.checker.combine import evaluate_name
from chalicelib.checker.targets import parse_target
from chalicelib.checker.trust import TrustStore
from chalicelib.errors import TargetNotAllowed
from tests.certs import make_pki
from tests.tls_servers import SilentListener, TLSServer

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
NAME = "multi.test"


@pytest.fixture(scope="module")
def now():
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def pki(now):
    return make_pki(now)


@pytest.fixture(scope="module")
def trust(pki):
    return TrustStore.from_pem(pki.root.pem)


@pytest.fixture(scope="module")
def renewed(pki, now):
    return pki.leaf(dns=[NAME], not_before=now - DAY, not_after=now + 89 * DAY + HOUR)


@pytest.fixture(scope="module")
def old(pki, now):
    # Three days and an hour left, so the whole days are 3 however long the test takes.
    return pki.leaf(dns=[NAME], not_before=now - 87 * DAY, not_after=now + 3 * DAY + HOUR)


@pytest.fixture
def same_port():
    """Start servers on several loopback hosts under one port: `same_port({host: factory})`.

    A factory takes (host, port) and returns a started server or listener. Retries with
    another port when one is taken on some host.
    """
    started: list = []

    def start(factories: dict):
        for _ in range(20):
            made = []
            try:
                port = 0
                for host, factory in factories.items():
                    made.append(factory(host, port))
                    port = made[-1].port
            except OSError:
                for server in made:
                    server.close()
                continue
            started.extend(made)
            return port, dict(zip(factories, made, strict=True))
        pytest.skip("no port free on every loopback host")

    yield start
    for server in started:
        server.close()


def serving(*chain):
    """Return a factory of TLS servers sending this chain."""
    return lambda host, port: TLSServer(chain, host=host, port=port)


def silent(host, port):
    return SilentListener(host, port)


def answering(*hosts):
    """Return a resolver that answers these addresses for NAME (and fails for anything else)."""

    def resolve(host, port):
        assert host == NAME
        return list(hosts)

    return resolve


def check(port, trust, resolver, *, tolerance=30, timeout=5.0, check_ipv6=True, **options):
    target = parse_target(f"{NAME}:{port}")
    evidence = asyncio.run(
        probe_name(target, timeout=timeout, resolver=resolver, check_ipv6=check_ipv6, **options)
    )
    return evaluate_name(evidence, None, tolerance, trust)


@pytest.fixture
def dials(monkeypatch):
    """Record every address the probe opens a connection to (either way it connects)."""
    from chalicelib.checker import handshake

    seen: list[str] = []

    def recording(real):
        async def connect(host, port, **options):
            seen.append(host)
            return await real(host, port, **options)

        return connect

    monkeypatch.setattr(asyncio, "open_connection", recording(asyncio.open_connection))
    monkeypatch.setattr(handshake, "open_connection", recording(handshake.open_connection))
    return seen


def test_every_address_serving_the_same_certificate_is_ok(
    same_port, pki, renewed, trust, ipv6_loopback
):
    hosts = ["127.0.0.2", "127.0.0.3"] + (["::1"] if ipv6_loopback else [])
    port, servers = same_port({host: serving(renewed, pki.intermediate) for host in hosts})
    result = check(port, trust, answering(*hosts))
    assert (result.status, result.codes) == ("ok", ())
    assert [(entry.address, entry.status) for entry in result.addresses] == [
        (host, "ok") for host in hosts
    ]
    assert len({entry.fingerprint for entry in result.addresses}) == 1
    assert result.response == f"SSL certificate for {NAME}:{port} will expire in 89 days"
    # Each address got its own handshake, each with the name as SNI.
    assert [server.server_names for server in servers.values()] == [[NAME]] * len(hosts)


def test_one_address_still_serving_an_old_certificate_makes_the_name_expiring(
    same_port, pki, renewed, old, trust
):
    port, _ = same_port(
        {
            "127.0.0.2": serving(renewed, pki.intermediate),
            "127.0.0.3": serving(old, pki.intermediate),
        }
    )
    result = check(port, trust, answering("127.0.0.2", "127.0.0.3"))
    assert result.status == "expiring" and result.alert
    assert (result.address, result.days_left) == ("127.0.0.3", 3)
    (problem,) = result.problems
    assert (problem.code, problem.addresses) == ("expiring", ("127.0.0.3",))
    assert problem.message.startswith("127.0.0.3 serves a certificate that expires in 3 days")
    assert "127.0.0.3 still serves the certificate that expires on" in result.response
    assert "127.0.0.2 serves the renewed one" in result.response
    entries = {entry.address: entry.to_dict() for entry in result.addresses}
    assert (entries["127.0.0.2"]["status"], entries["127.0.0.3"]["status"]) == ("ok", "expiring")
    assert entries["127.0.0.3"]["problems"] == ["expiring"]


def test_one_unreachable_address_is_an_error_on_that_address_only(same_port, pki, renewed, trust):
    port, _ = same_port({"127.0.0.2": serving(renewed, pki.intermediate)})
    if not port_is_free("127.0.0.3", port):
        pytest.skip("the port is taken on 127.0.0.3")
    result = check(port, trust, answering("127.0.0.2", "127.0.0.3"))
    assert result.status == "error"  # DESIGN 3.1b: invalid > expiring > error > ok
    (problem,) = result.problems
    assert (problem.code, problem.addresses) == ("connect_error", ("127.0.0.3",))
    assert "refused" in problem.message
    statuses = {entry.address: entry.status for entry in result.addresses}
    assert statuses == {"127.0.0.2": "ok", "127.0.0.3": "error"}
    assert result.response.endswith("127.0.0.3 could not be checked")


def port_is_free(host: str, port: int) -> bool:
    """Tell whether nothing listens on `port` at `host` (so connecting there is refused)."""
    with socket.socket() as probe_socket:
        try:
            probe_socket.bind((host, port))
        except OSError:
            return False
    return True


def test_without_an_ipv6_route_ipv6_addresses_are_listed_not_checked(
    same_port, pki, renewed, old, trust, ipv6_loopback
):
    factories = {"127.0.0.2": serving(renewed, pki.intermediate)}
    if ipv6_loopback:
        factories["::1"] = serving(old)  # would be invalid and expiring, were it checked
    port, servers = same_port(factories)
    result = check(port, trust, answering("127.0.0.2", "::1"), check_ipv6=False)
    assert (result.status, result.codes) == ("ok", ())
    entries = [entry.to_dict() for entry in result.addresses]
    assert [(e["address"], e["status"], e["reason"]) for e in entries] == [
        ("127.0.0.2", "ok", None),
        ("::1", "not_checked", NO_IPV6_ROUTE),
    ]
    if ipv6_loopback:
        assert servers["::1"].connections == 0


def test_with_an_ipv6_route_the_ipv6_address_is_checked(
    same_port, pki, renewed, old, trust, ipv6_loopback
):
    if not ipv6_loopback:
        pytest.skip("::1 is not usable here")
    port, _ = same_port(
        {"127.0.0.2": serving(renewed, pki.intermediate), "::1": serving(old, pki.intermediate)}
    )
    result = check(port, trust, answering("127.0.0.2", "::1"))
    assert (result.status, result.address) == ("expiring", "::1")
    assert result.problems[0].addresses == ("::1",)


def test_a_name_with_only_ipv6_addresses_and_no_route_cannot_be_checked(trust, dials):
    result = check(4433, trust, answering("::1"), check_ipv6=False)
    assert (result.status, result.codes) == ("error", ("connect_error",))
    assert NO_IPV6_ROUTE in result.problems[0].message
    assert [entry.status for entry in result.addresses] == ["not_checked"]
    assert dials == []


def test_at_most_sixteen_addresses_are_probed_the_rest_listed(
    same_port, pki, renewed, trust, dials
):
    hosts = [f"127.0.0.{n}" for n in range(2, 2 + MAX_ADDRESSES + 2)]
    port, servers = same_port({host: serving(renewed, pki.intermediate) for host in hosts})
    result = check(port, trust, answering(*hosts))
    assert result.status == "ok"
    checked = [entry.address for entry in result.addresses if entry.status == "ok"]
    skipped = [entry for entry in result.addresses if entry.status == "not_checked"]
    assert checked == hosts[:MAX_ADDRESSES]
    assert [entry.address for entry in skipped] == hosts[MAX_ADDRESSES:]
    assert MAX_ADDRESSES == 16
    assert all("first 16 addresses" in (entry.reason or "") for entry in skipped)
    assert sorted(dials) == sorted(hosts[:MAX_ADDRESSES])
    assert [servers[host].connections for host in hosts[MAX_ADDRESSES:]] == [0, 0]


def pretend_public(*public: str):
    """Return the guard's judgement with these loopback addresses standing in for public ones."""
    return lambda address: None if address in public else ssrf.refusal_reason(address)


def test_the_service_refuses_a_private_address_and_checks_the_others(
    same_port, pki, renewed, trust, dials
):
    port, _ = same_port({"127.0.0.2": serving(renewed, pki.intermediate)})
    result = check(
        port,
        trust,
        answering("10.0.0.5", "127.0.0.2", "127.0.0.9"),
        allow_private=False,
        refusal=pretend_public("127.0.0.2"),
    )
    assert (result.status, result.address) == ("ok", "127.0.0.2")
    entries = {entry.address: entry for entry in result.addresses}
    assert entries["127.0.0.2"].status == "ok"
    assert entries["10.0.0.5"].status == "not_checked"
    assert entries["10.0.0.5"].reason == (
        "refused: a private address, which sslnotify does not check"
    )
    assert entries["127.0.0.9"].reason.startswith("refused: a loopback address")
    assert dials == ["127.0.0.2"]  # no connection attempt to a refused address


def test_the_service_refuses_a_name_whose_every_address_is_refused(trust, dials):
    target = f"{NAME}:4433"
    with pytest.raises(TargetNotAllowed) as refused:
        check_target(
            target, allow_private=False, trust=trust, resolver=answering("10.0.0.5", "127.0.0.2")
        )
    assert refused.value.message == (
        f"{NAME} resolves to 10.0.0.5, which is a private address: "
        "sslnotify does not check private or reserved networks"
    )
    assert dials == []


def test_the_batch_check_passes_the_guard_judgement_through(same_port, pki, renewed, trust, dials):
    port, _ = same_port({"127.0.0.2": serving(renewed, pki.intermediate)})
    evidence = asyncio.run(
        gather_evidence(
            [parse_target(f"{NAME}:{port}")],
            timeout=5,
            allow_private=False,
            resolver=answering("192.168.7.7", "127.0.0.2"),
            check_ipv6=True,
            refusal=pretend_public("127.0.0.2"),
        )
    )
    (seen,) = evidence
    assert [probe.address for probe in seen.probes] == ["127.0.0.2"]
    assert [entry.address for entry in seen.not_checked] == ["192.168.7.7"]
    assert not seen.refused
    assert dials == ["127.0.0.2"]


def test_one_silent_address_ends_within_the_one_overall_timeout(same_port, pki, renewed, trust):
    port, _ = same_port({"127.0.0.2": serving(renewed, pki.intermediate), "127.0.0.3": silent})

    def slow(host, port):
        time.sleep(0.6)  # the lookup spends part of the one timeout
        return ["127.0.0.2", "127.0.0.3"]

    started = time.monotonic()
    result = check(port, trust, slow, timeout=1.2)
    elapsed = time.monotonic() - started
    assert elapsed < 1.7  # one 1.2 s budget for DNS and every address, not 0.6 + 1.2
    assert result.status == "error"
    statuses = {entry.address: entry.status for entry in result.addresses}
    assert statuses == {"127.0.0.2": "ok", "127.0.0.3": "error"}
    (problem,) = result.problems
    assert (problem.code, problem.addresses) == ("timeout", ("127.0.0.3",))
    assert "no answer within 1.2 s while waiting for the TLS handshake" in problem.message


def test_ip_still_probes_exactly_the_one_address(same_port, pki, renewed, old, trust):
    port, servers = same_port(
        {
            "127.0.0.2": serving(renewed, pki.intermediate),
            "127.0.0.3": serving(old, pki.intermediate),
        }
    )

    def no_lookup(host, port):
        raise AssertionError("--ip must not resolve the name")

    request = CheckRequest(parse_target(f"{NAME}:{port}"), 30, ip="127.0.0.2")
    (result,) = asyncio.run(
        check_many([request], timeout=5, allow_private=True, trust=trust, resolver=no_lookup)
    )
    assert (result.status, [e.address for e in result.addresses]) == ("ok", ["127.0.0.2"])
    assert servers["127.0.0.3"].connections == 0


def test_a_resolver_answering_garbage_is_refused_not_raised(trust, dials):
    result = check(4433, trust, answering("not-an-address"), allow_private=False)
    assert (result.status, result.codes) == ("error", ("connect_error",))
    assert result.addresses[0].reason.startswith("refused: not an IP address")
    assert dials == []
