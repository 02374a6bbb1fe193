"""The SSRF guard's decisions, with a fake resolver: no packet leaves this machine here."""

from __future__ import annotations

import asyncio

import pytest

from chalicelib.checker import probe as probe_module
from chalicelib.checker import ssrf
from chalicelib.checker.check import check_target
from chalicelib.checker.probe import probe
from chalicelib.checker.targets import parse_target
from chalicelib.errors import TargetNotAllowed

# Documentation and well-known public addresses: decided on, never contacted.
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:8.8.8.8"]


class FakeResolver:
    """Answer from a table; count the questions."""

    def __init__(self, table: dict[str, list[str]]):
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise ssrf.ResolutionFailed(f"could not resolve {host}: no such host")
        return self.table[host]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("0.1.2.3", "address"),
        ("240.0.0.1", "address"),
        ("255.255.255.255", "address"),
        ("192.0.2.1", "address"),
        ("198.18.0.1", "address"),
        ("2001:db8::1", "address"),
        ("::127.0.0.1", "address"),
        # IPv4 inside IPv6: v4-mapped, 6to4 and NAT64 forms are judged by the IPv4 they carry.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:7f00:1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a00:1::1", "private"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("2001::1", "Teredo"),
        ("fec0::1", "site-local"),
        ("feff::1", "site-local"),
        # Loose IPv4 spellings that resolvers turn into loopback or private addresses.
        ("2130706433", "loopback"),
        ("0x7f.1", "loopback"),
        ("0x7f000001", "loopback"),
        ("127.1", "loopback"),
        ("0177.0.0.1", "loopback"),
        ("017700000001", "loopback"),
        ("127.0.0.1.", "loopback"),
        ("[::1]", "loopback"),
        ("10.1", "private"),
        ("0", "unspecified"),
    ],
)
def test_refused_addresses(address, reason):
    found = ssrf.refusal_reason(address)
    assert found is not None and reason in found


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert ssrf.refusal_reason(address) is None


@pytest.mark.parametrize(
    "text",
    ["127.0.0.1", "127.1", "2130706433", "0x7f.1", "0177.0.0.1", "[::1]:443", "[::ffff:127.0.0.1]",
     "[::ffff:7f00:1]", "[2002:7f00:1::]", "[64:ff9b::7f00:1]", "0.0.0.0", "[::]", "10.0.0.1",
     "169.254.169.254", "[fe80::1]", "100.64.0.1", "224.0.0.1", "https://192.168.0.1:8443/x",
     "localhost", "foo.localhost", "\uff11\uff12\uff17.\uff10.\uff10.\uff11", "[fec0::1]"],
)  # fmt: skip
def test_guard_refuses_every_spelling_of_a_private_target(text):
    resolver = FakeResolver({})
    with pytest.raises(TargetNotAllowed):
        ssrf.resolve_allowed(parse_target(text), resolver)
    assert resolver.asked == []  # decided without asking DNS


@pytest.mark.parametrize(
    "addresses",
    [["10.0.0.5"], ["93.184.216.34", "127.0.0.1"], ["::ffff:169.254.169.254"], ["fd00::1"],
     ["2606:2800:220:1:248:1893:25c8:1946", "fe80::1"]],
)  # fmt: skip
def test_guard_refuses_names_resolving_to_any_private_address(addresses):
    resolver = FakeResolver({"internal.example.com": addresses})
    with pytest.raises(TargetNotAllowed, match=r"internal\.example\.com resolves to"):
        ssrf.resolve_allowed(parse_target("internal.example.com"), resolver)


def test_guard_returns_the_approved_addresses_in_order():
    resolver = FakeResolver(
        {"example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]}
    )
    addresses = ssrf.resolve_allowed(parse_target("example.com"), resolver)
    assert addresses == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]


def test_resolution_failure_is_reported():
    with pytest.raises(ssrf.ResolutionFailed, match="no such host"):
        ssrf.resolve_allowed(parse_target("nowhere.invalid"), FakeResolver({}))


@pytest.fixture
def no_connections(monkeypatch):
    """Record where the probe would connect, and refuse instead of sending anything."""
    attempts: list[tuple[str, int]] = []

    async def open_connection(host, port, **options):
        attempts.append((host, port))
        raise ConnectionRefusedError("refused by the test")

    # Both ways the probe may open a connection: its handshake connection, and asyncio's.
    monkeypatch.setattr(probe_module.handshake, "open_connection", open_connection)
    monkeypatch.setattr(probe_module.asyncio, "open_connection", open_connection)
    return attempts


def test_probe_connects_to_exactly_the_approved_address(no_connections):
    resolver = FakeResolver({"example.com": ["93.184.216.34"]})
    evidence = asyncio.run(
        probe(parse_target("example.com"), allow_private=False, resolver=resolver, timeout=5)
    )
    assert resolver.asked == ["example.com"]  # one resolution, by the guard
    assert no_connections == [("93.184.216.34", 443)]
    assert evidence.error == "connect_error" and not evidence.refused


def test_probe_refuses_a_private_name_without_connecting(no_connections):
    resolver = FakeResolver({"rebind.example.com": ["10.0.0.1"]})
    evidence = asyncio.run(
        probe(parse_target("rebind.example.com"), allow_private=False, resolver=resolver)
    )
    assert (evidence.error, evidence.refused) == ("connect_error", True)
    assert no_connections == []


def test_probe_refuses_a_private_ip_override_without_connecting(no_connections):
    evidence = asyncio.run(probe(parse_target("example.com"), ip="10.0.0.1", allow_private=False))
    assert evidence.refused
    assert no_connections == []


def test_probe_reports_dns_failure(no_connections):
    evidence = asyncio.run(probe(parse_target("nowhere.invalid"), resolver=FakeResolver({})))
    assert evidence.error == "dns_error"
    assert "no such host" in evidence.message


def test_check_target_raises_when_the_guard_refuses(no_connections):
    with pytest.raises(TargetNotAllowed):
        check_target("https://169.254.169.254/latest/meta-data", allow_private=False)
    assert no_connections == []


def test_service_guard_is_on_by_default(no_connections):
    with pytest.raises(TargetNotAllowed):
        check_target("127.0.0.1")
    assert no_connections == []
