"""SSRF: no spelling of a loopback, private, link-local or reserved address gets probed.

Every form is refused by the guard (with an injected resolver), by the check-now route
(403) and by the subscription route or, for names that only resolve privately, by the
sweep's checker, which never connects. Only loopback is ever reached for real: a canary
listener on 127.0.0.1 (or ::1) proves nothing connected. Every other destination is
intercepted by the network jail (tests/security/conftest.py) before a packet leaves.
A name with a public address among private ones is checked on the public one only (DESIGN
3.1b): its private addresses are listed as refused and never dialled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

import pytest

from chalicelib.checker import ssrf
from chalicelib.checker.targets import parse_target
from chalicelib.errors import BadInput, TargetNotAllowed
from chalicelib.invoke import invoke
from tests.security.conftest import record_figure, sent_messages, table_items

PUBLIC = "93.184.215.14"  # a public address: the jail intercepts any attempt to reach it
ADDRESS = "ssrf-tester@example.com"


@dataclass(frozen=True)
class Form:
    """One way of writing a forbidden destination."""

    text: str
    kind: str  # what it reaches, for the report
    resolves_to: tuple[str, ...] = ()  # for names: what the (fake) DNS answers
    loopback: bool = False  # reachable live on loopback: the canary must stay untouched
    subscribe_refused: bool = True  # the subscription route refuses it without resolving
    partly_public: bool = False  # a public address too: checked there, refused on the others


def name(text: str, kind: str, *addresses: str, loopback: bool = False) -> Form:
    """Return a form that is a DNS name resolving to these addresses."""
    return Form(text, kind, addresses, loopback, False, partly_public=PUBLIC in addresses)


FORMS = [
    # IPv4 literals, one per special range
    Form("127.0.0.1", "loopback", loopback=True),
    Form("127.255.255.254", "loopback (top of 127/8)"),
    Form("10.0.0.1", "private 10/8"),
    Form("172.16.0.1", "private 172.16/12"),
    Form("172.31.255.254", "private 172.16/12, top"),
    Form("192.168.1.1", "private 192.168/16"),
    Form("169.254.169.254", "link-local: cloud metadata"),
    Form("169.254.0.1", "link-local"),
    Form("100.64.0.1", "CGNAT 100.64/10"),
    Form("100.127.255.254", "CGNAT 100.64/10, top"),
    Form("224.0.0.1", "multicast"),
    Form("239.255.255.250", "multicast (SSDP)"),
    Form("240.0.0.1", "reserved 240/4"),
    Form("255.255.255.255", "broadcast"),
    Form("0.0.0.0", "unspecified"),
    Form("0.1.2.3", "this network 0/8"),
    Form("192.0.0.1", "IETF protocol assignments"),
    Form("192.0.2.1", "documentation TEST-NET-1"),
    Form("198.18.0.1", "benchmarking 198.18/15"),
    Form("198.51.100.1", "documentation TEST-NET-2"),
    # IPv4 spellings that resolvers (inet_aton) accept
    Form("2130706433", "loopback, decimal", loopback=True),
    Form("0177.0.0.1", "loopback, octal", loopback=True),
    Form("0x7f.0.0.1", "loopback, hex", loopback=True),
    Form("0x7f000001", "loopback, one hex number", loopback=True),
    Form("017700000001", "loopback, one octal number", loopback=True),
    Form("127.1", "loopback, short", loopback=True),
    Form("127.0.1", "loopback, three parts", loopback=True),
    Form("0x7f.1", "loopback, hex and short", loopback=True),
    Form("127.000.000.001", "loopback, zero-padded", loopback=True),
    Form("127.0.0.1.", "loopback, trailing dot", loopback=True),
    Form("0", "unspecified, one number"),
    Form("0.0.0.0.", "unspecified, trailing dot"),
    Form("10.1", "private, short"),
    Form("3232235777", "private 192.168.1.1, decimal"),
    Form("2852039166", "metadata, decimal"),
    Form("0xa9.0xfe.0xa9.0xfe", "metadata, hex"),
    Form("0251.0376.0251.0376", "metadata, octal"),
    # IPv6
    Form("::1", "IPv6 loopback", loopback=True),
    Form("[::1]", "IPv6 loopback, bracketed", loopback=True),
    Form("0:0:0:0:0:0:0:1", "IPv6 loopback, long form", loopback=True),
    Form("::", "IPv6 unspecified"),
    Form("fc00::1", "IPv6 ULA"),
    Form("fd12:3456::1", "IPv6 ULA"),
    Form("fe80::1", "IPv6 link-local"),
    Form("fe80::1%25eth0", "IPv6 link-local, zoned"),
    Form("ff02::1", "IPv6 multicast"),
    Form("::ffff:127.0.0.1", "v4-mapped loopback", loopback=True),
    Form("::ffff:7f00:1", "v4-mapped loopback, hex", loopback=True),
    Form("[::ffff:127.0.0.1]:443", "v4-mapped loopback, bracketed with port"),
    Form("::ffff:169.254.169.254", "v4-mapped metadata"),
    Form("::ffff:a9fe:a9fe", "v4-mapped metadata, hex"),
    Form("::ffff:10.0.0.1", "v4-mapped private"),
    Form("::127.0.0.1", "v4-compatible loopback"),
    Form("::ffff:0:7f00:1", "v4-translated loopback"),
    Form("2002:7f00:1::", "6to4 of loopback"),
    Form("2002:a9fe:a9fe::", "6to4 of metadata"),
    Form("2002:c0a8:101::1", "6to4 of 192.168.1.1"),
    Form("64:ff9b::7f00:1", "NAT64 of loopback"),
    Form("64:ff9b::169.254.169.254", "NAT64 of metadata"),
    Form("64:ff9b:1::a00:1", "local-use NAT64 of 10.0.0.1"),
    Form("2001:db8::1", "IPv6 documentation"),
    Form("100::1", "IPv6 discard-only"),
    Form("2001::1", "Teredo"),
    # Pasted URLs
    Form("https://127.0.0.1/path", "URL to loopback", loopback=True),
    Form("https://user@169.254.169.254/latest/meta-data/", "URL with userinfo to metadata"),
    Form("https://good.example@127.0.0.1/", "URL whose userinfo looks like a host", loopback=True),
    Form("http://[::1]:8443/", "URL to IPv6 loopback"),
    # Local names, refused without a lookup
    Form("localhost", "local name", loopback=True),
    Form("LOCALHOST.", "local name, upper case, trailing dot", loopback=True),
    Form("api.localhost", "subdomain of localhost"),
    Form("localhost.localdomain", "local name"),
    # Names whose DNS answer is private
    name("loopback.attacker.example", "name to loopback", "127.0.0.1", loopback=True),
    name("metadata.attacker.example", "name to metadata", "169.254.169.254"),
    name("intranet.attacker.example.", "name to 10/8, trailing dot", "10.1.2.3"),
    name("cgnat.attacker.example", "name to CGNAT", "100.64.1.1"),
    name("v6.attacker.example", "name to IPv6 loopback", "::1"),
    name("ula.attacker.example", "name to IPv6 ULA", "fd00::5"),
    name("mapped.attacker.example", "name to v4-mapped private", "::ffff:192.168.0.1"),
    name("nat64.attacker.example", "name to NAT64 of metadata", "64:ff9b::a9fe:a9fe"),
    name("mixed.attacker.example", "name to public and private", PUBLIC, "10.0.0.7"),
    name("bücher.attacker.example", "IDN name to loopback", "127.0.0.1", loopback=True),
    # Unicode spellings of an IPv4 address
    Form("\uff11\uff12\uff17.\uff10.\uff10.\uff11", "loopback in full-width digits"),
    Form("127\u30020\u30020\u30021", "loopback with ideographic full stops"),
    Form("10\uff0e0\uff0e0\uff0e1", "private with full-width full stops"),
    # Deprecated site-local IPv6 (RFC 3879), still routed inside some networks
    Form("fec0::1", "IPv6 site-local"),
    Form("feff::1", "IPv6 site-local, top"),
]
NAMES = [form for form in FORMS if not form.subscribe_refused]
LOOPBACK = [form for form in FORMS if form.loopback]


def resolver_for(form: Form):
    """Return a resolver answering this form's addresses (a public one for literals)."""
    return lambda host, port: list(form.resolves_to or (PUBLIC,))


def test_the_matrix_is_wide_enough():
    """The matrix holds at least 40 forms, with loopback forms exercised live."""
    assert len(FORMS) >= 40
    assert len({form.text for form in FORMS}) == len(FORMS)
    assert len(LOOPBACK) >= 10
    record_figure("SSRF address forms", len(FORMS))


@pytest.mark.parametrize("form", FORMS, ids=lambda form: form.text)
def test_the_guard_refuses_every_form(form):
    """The guard's decision: each form is refused (or not even a valid target)."""
    text = form.text.replace("%25", "%")
    with pytest.raises((TargetNotAllowed, BadInput)):
        ssrf.resolve_allowed(parse_target(text), resolver=resolver_for(form))


def test_a_public_address_is_allowed_by_the_same_guard():
    """The control: a public address and a name resolving publicly pass the guard."""
    assert ssrf.resolve_allowed(parse_target(PUBLIC)) == [PUBLIC]
    target = parse_target("www.example.com")
    assert ssrf.resolve_allowed(target, resolver=lambda host, port: [PUBLIC]) == [PUBLIC]


def check_path(text: str, port: int | None = None) -> str:
    """Return the check-now path for a target (percent-encoded, as a browser sends it)."""
    path = f"/check/{quote(text, safe='%')}"
    return path + (f"?port={port}" if port else "")


@pytest.fixture
def loopback_canaries(canary):
    """Return canaries on 127.0.0.1 and ::1 sharing one port number."""
    for _ in range(20):
        v4 = canary("127.0.0.1")
        try:
            return v4, canary("::1", v4.port)
        except OSError:
            continue
    pytest.skip("no port free on both 127.0.0.1 and ::1")


def answer_for(jail, form: Form) -> None:
    """Make the fake DNS answer a name form's addresses (under its Unicode and A-label names)."""
    if form.resolves_to:
        jail.answer(form.text, form.resolves_to)
        jail.answer(parse_target(form.text).host_ascii, form.resolves_to)


def test_check_now_refuses_every_form_with_403(
    api, network_jail, loopback_canaries, generous_limits
):
    """GET /check/{form}: 403 (400 for a zoned address), and nothing connected anywhere."""
    v4, v6 = loopback_canaries
    wrong = []
    for form in FORMS:
        if form.partly_public:
            continue  # checked on its public address: see the test after this one
        answer_for(network_jail, form)
        with_port = ":" not in form.text.replace("::", "") and "/" not in form.text
        response = api.http.get(check_path(form.text, v4.port if with_port else None))
        body = json.loads(response.body)
        expected = 400 if "%25" in form.text else 403
        if response.status_code != expected or set(body) != {"Code", "Message"}:
            wrong.append((form.text, response.status_code, body))
    assert wrong == []
    assert v4.connections == 0 and v6.connections == 0
    assert network_jail.attempts == [] and network_jail.connected == []


def test_a_name_with_public_and_private_addresses_is_checked_on_the_public_one_only(
    api, network_jail, generous_limits
):
    """DESIGN 3.1b: the private address is listed as refused, never dialled; the public one is."""
    form = next(form for form in FORMS if form.partly_public)
    answer_for(network_jail, form)
    response = api.http.get(check_path(form.text, 4443))
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    private = [address for address in form.resolves_to if address != PUBLIC]
    entries = {entry["address"]: entry for entry in body["addresses"]}
    assert set(entries) == {PUBLIC, *private}
    for address in private:
        assert entries[address]["status"] == "not_checked"
        assert entries[address]["reason"].startswith("refused: a private address")
    assert entries[PUBLIC]["status"] == "error"  # the jail refused the public dial
    assert network_jail.take() == [(PUBLIC, 4443)]  # only the public address was dialled
    assert network_jail.connected == []


def test_loopback_forms_are_refused_live_with_the_canary_listening(
    api, network_jail, canary, generous_limits
):
    """The loopback forms, aimed at a live listener's port: the listener sees no connection."""
    listener = canary("127.0.0.1")
    wrong = []
    for form in LOOPBACK:
        answer_for(network_jail, form)
        text = form.text.replace("127.0.0.1/", f"127.0.0.1:{listener.port}/")
        port = None if "://" in text else listener.port
        response = api.http.get(check_path(text, port))
        if response.status_code != 403:
            wrong.append((form.text, response.status_code, response.body))
    assert wrong == []
    assert listener.connections == 0
    assert network_jail.connected == []


def user_path(domain: str, address: str = ADDRESS) -> str:
    """Return the subscribe path for a domain."""
    return f"/user/{quote(address, safe='')}?domain={quote(domain, safe='%')}&days=30"


def test_subscribing_to_a_forbidden_address_is_refused(api, generous_limits):
    """PUT /user/{email}?domain={form}: refused with a JSON 4xx, nothing stored, no mail."""
    wrong = []
    for form in FORMS:
        if not form.subscribe_refused:
            continue
        response = api.http.put(user_path(form.text))
        body = json.loads(response.body)
        if response.status_code not in {400, 403} or set(body) != {"Code", "Message"}:
            wrong.append((form.text, response.status_code, body))
    assert wrong == []
    assert table_items("pending") == []
    assert table_items("subscriptions") == []
    assert sent_messages() == []


def test_names_resolving_privately_are_never_probed_by_the_sweep(api, lambdas, network_jail):
    """Subscriptions to names that resolve privately: the sweep's checker refuses to connect."""
    for index, form in enumerate(NAMES):
        answer_for(network_jail, form)
        subscriber = f"watcher{index}@example.com"
        if api.http.put(user_path(form.text, subscriber)).status_code != 200:
            continue  # refused at the door already: even better
        token = [c for c in lambdas.calls if c.function == "mailer"][-1].payload["token"]
        confirmed = api.http.put(f"/user/{quote(subscriber)}?uuid={token}")
        assert confirmed.status_code == 200, confirmed.body
    stored = table_items("subscriptions")
    assert stored, "expected at least one name to be accepted (resolution happens at check time)"
    invoke("cron", {"action": "sweep", "day": "2026-11-27"})
    lambdas.drain()
    assert lambdas.failures == []
    states = [s for s in table_items("checkstate") if not s["subscriber"].startswith("#")]
    assert len(states) == len(stored)
    assert {state["status"] for state in states} == {"error"}
    # Only a name's public address is ever dialled (and the jail intercepts that dial).
    assert {host for host, _port in network_jail.take()} <= {PUBLIC}
    assert network_jail.connected == []


def test_dns_rebinding_the_probe_connects_to_the_address_the_guard_checked(
    api, network_jail, canary
):
    """Public on the first lookup, loopback on the second: one lookup, the public one dialled."""
    listener = canary("127.0.0.1")
    network_jail.answer("rebind.attacker.example", [PUBLIC], ["127.0.0.1"])
    response = api.http.get(check_path("rebind.attacker.example", listener.port))
    assert response.status_code == 200
    assert json.loads(response.body)["status"] == "error"
    assert network_jail.lookups.count("rebind.attacker.example") == 1
    assert network_jail.take() == [(PUBLIC, listener.port)]  # intercepted, never sent
    assert listener.connections == 0


def test_dns_rebinding_live_on_loopback(api, network_jail, canary, monkeypatch):
    """With 127.0.0.2 standing in for a public address: the approved address gets the dial."""
    approved = canary("127.0.0.2")
    try:
        forbidden = canary("127.0.0.1", approved.port)
    except OSError:
        pytest.skip("the approved listener's port is taken on 127.0.0.1")
    real_reason = ssrf.refusal_reason
    monkeypatch.setattr(
        ssrf,
        "refusal_reason",
        lambda address: None if str(address) == "127.0.0.2" else real_reason(address),
    )
    network_jail.answer("rebind2.attacker.example", ["127.0.0.2"], ["127.0.0.1"])
    response = api.http.get(check_path("rebind2.attacker.example", approved.port))
    assert response.status_code == 200
    assert approved.connections == 1
    assert forbidden.connections == 0
    assert network_jail.lookups.count("rebind2.attacker.example") == 1


def test_private_first_then_public_is_refused_without_a_connection(api, network_jail):
    """A name answering privately first is refused, whatever it would answer next."""
    network_jail.answer("flip.attacker.example", ["10.9.8.7"], [PUBLIC])
    response = api.http.get(check_path("flip.attacker.example"))
    assert response.status_code == 403
    assert network_jail.attempts == [] and network_jail.connected == []


def source_url(form: Form) -> str:
    """Return a CRL URL on this form's host, spelled as a certificate could spell it."""
    raw = form.text.replace("%25", "%")
    if "://" in raw:
        return "http://" + raw.split("://", 1)[1]
    if raw.count(":") > 1 and not raw.startswith("["):
        return f"http://[{raw}]/ca.crl"
    return f"http://{raw}/ca.crl"


def test_revocation_sources_on_every_form_are_refused_without_a_connection(network_jail):
    """A certificate's CRL/OCSP URL on any forbidden address: refused, nothing connected."""
    from chalicelib.checker.fetch import FetchFailed, FetchPolicy, fetch

    fetched = []
    for form in FORMS:
        answer_for(network_jail, form)
        try:
            fetch(source_url(form), max_bytes=1024, timeout=2, policy=FetchPolicy())
            fetched.append(form.text)
        except FetchFailed:
            pass
    assert fetched == []
    assert network_jail.attempts == [] and network_jail.connected == []
    record_figure("SSRF address forms refused as revocation sources", len(FORMS))
