"""Revocation against loopback CRL and OCSP servers: verdicts, hostile sources, guard, cache."""

from __future__ import annotations

import asyncio
import random
import socket
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from chalicelib.checker import fetch as fetch_module
from chalicelib.checker import fetch_policy
from chalicelib.checker.fetch import FetchFailed, FetchPolicy, fetch
from chalicelib.checker.revocation import (
    Revocation,
    RevocationCache,
    RevocationChecker,
    judge_crl,
    judge_ocsp,
    load_crl,
    shared_cache,
)
from chalicelib.checker.trust import TrustStore
from tests.certs import (
    make_crl,
    make_key,
    make_ocsp_responder,
    make_ocsp_response,
    make_pki,
)
from tests.http_servers import (
    DRIP,
    ENDLESS,
    GARBAGE,
    HEADER_DRIP,
    HEADER_FLOOD,
    SILENT,
    HTTPSourceServer,
    Redirect,
)

NOW = datetime.now(UTC).replace(microsecond=0)
LOOPBACK = FetchPolicy(allow_private=True)  # the CLI's policy: loopback servers are fine


@pytest.fixture(autouse=True)
def fresh_shared_cache():
    shared_cache().clear()
    yield
    shared_cache().clear()


@pytest.fixture(scope="module")
def pki():
    return make_pki(NOW, name="sslnotify Revocation Test")


@pytest.fixture(scope="module")
def trust(pki):
    return TrustStore(anchors=(pki.root.cert,))


def checker(trust, *, timeout: float = 3.0, policy=LOOPBACK, cache=None) -> RevocationChecker:
    return RevocationChecker(
        trust, policy=policy, timeout=timeout, cache=cache or RevocationCache()
    )


def run(checker: RevocationChecker, *chain, stapled: bytes | None = None) -> Revocation:
    return asyncio.run(checker.check([issued.der for issued in chain], NOW, stapled=stapled))


def revoked_entry(issued, days_ago=2, reason=x509.ReasonFlags.key_compromise):
    return (issued, NOW - timedelta(days=days_ago), reason)


# ---- CRL ----------------------------------------------------------------------------------


def test_a_certificate_absent_from_its_crl_is_good(pki, trust, http_source):
    leaf = pki.leaf(crl_urls=[http_source.url("/ca.crl")])
    other = pki.leaf()
    http_source.route("/ca.crl", make_crl(pki.intermediate, revoked=[revoked_entry(other)]))
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert (verdict.status, verdict.source) == ("good", "crl")
    assert verdict.to_dict() == {
        "status": "good",
        "source": "crl",
        "message": "the certificate is not revoked (according to its issuer's CRL)",
    }


def test_a_leaf_listed_in_its_crl_is_revoked_with_date_and_reason(pki, trust, http_source):
    leaf = pki.leaf(crl_urls=[http_source.url("/ca.crl")])
    http_source.route("/ca.crl", make_crl(pki.intermediate, revoked=[revoked_entry(leaf, 3)]))
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert (verdict.status, verdict.source) == ("revoked", "crl")
    day = (NOW - timedelta(days=3)).strftime("%Y-%m-%d")
    assert verdict.message == (
        f"the certificate was revoked on {day}, reason: key compromise "
        "(according to its issuer's CRL)"
    )


def test_a_revoked_intermediate_is_found_in_the_roots_crl(http_source):
    pki = make_pki(NOW, name="Revoked", intermediate_crl_urls=[http_source.url("/root.crl")])
    leaf = pki.leaf(crl_urls=[http_source.url("/inter.crl")])
    http_source.route("/root.crl", make_crl(pki.root, revoked=[revoked_entry(pki.intermediate)]))
    http_source.route("/inter.crl", make_crl(pki.intermediate))
    verdict = run(checker(TrustStore(anchors=(pki.root.cert,))), leaf, pki.intermediate)
    assert (verdict.status, verdict.source) == ("revoked", "crl")
    assert verdict.message.startswith("intermediate certificate 'Revoked Intermediate CA' was")
    assert http_source.requests == {"/root.crl": 1, "/inter.crl": 1}


def test_a_good_intermediate_and_leaf(http_source):
    pki = make_pki(NOW, intermediate_crl_urls=[http_source.url("/root.crl")])
    leaf = pki.leaf(crl_urls=[http_source.url("/inter.crl")])
    http_source.route("/root.crl", make_crl(pki.root))
    http_source.route("/inter.crl", make_crl(pki.intermediate))
    verdict = run(checker(TrustStore(anchors=(pki.root.cert,))), leaf, pki.intermediate)
    assert (verdict.status, verdict.source) == ("good", "crl")


def test_a_crl_signed_by_another_key_is_unknown(pki, trust, http_source):
    leaf = pki.leaf(crl_urls=[http_source.url("/ca.crl")])
    forged = make_crl(pki.intermediate, revoked=[revoked_entry(leaf)], signer_key=make_key())
    http_source.route("/ca.crl", forged)
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert (verdict.status, verdict.source) == ("unknown", None)
    assert "not signed by the certificate's issuer" in verdict.message


def test_a_stale_crl_is_unknown(pki, trust, http_source):
    leaf = pki.leaf(crl_urls=[http_source.url("/ca.crl")])
    stale = make_crl(
        pki.intermediate,
        revoked=[revoked_entry(leaf, 10)],
        last_update=NOW - timedelta(days=9),
        next_update=NOW - timedelta(days=2),
    )
    http_source.route("/ca.crl", stale)
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert verdict.status == "unknown"
    assert "is stale" in verdict.message


def test_a_crl_of_another_shard_is_unknown(pki, trust, http_source):
    leaf = pki.leaf(crl_urls=[http_source.url("/shard-1.crl")])
    other_shard = make_crl(pki.intermediate, url=http_source.url("/shard-2.crl"))
    http_source.route("/shard-1.crl", other_shard)
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert verdict.status == "unknown"
    assert "/shard-2.crl, not of" in verdict.message


def test_a_crl_naming_its_own_url_is_used(pki, trust, http_source):
    url = http_source.url("/shard-1.crl")
    leaf = pki.leaf(crl_urls=[url])
    http_source.route("/shard-1.crl", make_crl(pki.intermediate, url=url))
    assert run(checker(trust), leaf, pki.intermediate).status == "good"


@pytest.mark.parametrize(
    "answer", [b"", b"not a crl", b"\x30\x82\xff\xff" + b"\x00" * 50, b"-----BEGIN X509 CRL-----"]
)
def test_garbage_in_place_of_a_crl_is_unknown(pki, trust, http_source, answer):
    leaf = pki.leaf(crl_urls=[http_source.url("/ca.crl")])
    http_source.route("/ca.crl", answer)
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert verdict.status == "unknown"
    assert "not a readable CRL" in verdict.message


def test_an_http_error_is_unknown(pki, trust, http_source):
    leaf = pki.leaf(crl_urls=[http_source.url("/missing.crl")])
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert verdict.status == "unknown"
    assert "answered HTTP 404" in verdict.message


def test_an_untrusted_chain_is_unknown_without_any_fetch(pki, http_source):
    leaf = pki.leaf(crl_urls=[http_source.url("/ca.crl")])
    verdict = run(checker(TrustStore(anchors=())), leaf, pki.intermediate)
    assert verdict.status == "unknown"
    assert "no verified path" in verdict.message
    assert http_source.requests == {}


def test_a_leaf_without_sources_is_unknown(pki, trust):
    verdict = run(checker(trust), pki.leaf(), pki.intermediate)
    assert verdict == Revocation(
        "unknown",
        None,
        "revocation could not be checked: the certificate names no OCSP responder and no CRL",
    )


def test_unreadable_served_bytes_are_unknown(trust):
    verdict = asyncio.run(checker(trust).check([b"\x30\x03\x02\x01\x00"], NOW))
    assert verdict.status == "unknown"


# ---- OCSP ---------------------------------------------------------------------------------


def ocsp_route(server, leaf, issuer, **options):
    requests = []

    def answer(body: bytes) -> bytes:
        requests.append(x509.ocsp.load_der_ocsp_request(body))
        return make_ocsp_response(leaf, issuer, now=NOW, **options)

    server.route("/ocsp", answer)
    return requests


def test_ocsp_good(pki, trust, http_source):
    leaf = pki.leaf(ocsp_urls=[http_source.url("/ocsp")])
    requests = ocsp_route(http_source, leaf, pki.intermediate, status="good")
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert (verdict.status, verdict.source) == ("good", "ocsp")
    assert [request.serial_number for request in requests] == [leaf.cert.serial_number]


def test_ocsp_revoked(pki, trust, http_source):
    leaf = pki.leaf(ocsp_urls=[http_source.url("/ocsp")])
    ocsp_route(
        http_source,
        leaf,
        pki.intermediate,
        status="revoked",
        revoked_at=NOW - timedelta(days=1),
        reason=x509.ReasonFlags.superseded,
    )
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert (verdict.status, verdict.source) == ("revoked", "ocsp")
    assert "reason: superseded (according to its OCSP responder)" in verdict.message


def test_ocsp_by_a_delegated_responder_is_believed(pki, trust, http_source):
    leaf = pki.leaf(ocsp_urls=[http_source.url("/ocsp")])
    responder = make_ocsp_responder(pki.intermediate, now=NOW)
    ocsp_route(http_source, leaf, pki.intermediate, status="revoked", responder=responder)
    assert run(checker(trust), leaf, pki.intermediate).status == "revoked"


def test_ocsp_by_a_responder_without_the_ocsp_signing_eku_is_unknown(pki, trust, http_source):
    leaf = pki.leaf(ocsp_urls=[http_source.url("/ocsp")])
    responder = make_ocsp_responder(pki.intermediate, now=NOW, eku=False)
    ocsp_route(http_source, leaf, pki.intermediate, status="revoked", responder=responder)
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert verdict.status == "unknown"
    assert "not signed by the issuer" in verdict.message


def test_ocsp_signed_by_a_stranger_is_unknown(pki, trust, http_source):
    leaf = pki.leaf(ocsp_urls=[http_source.url("/ocsp")])
    stranger = make_pki(NOW, name="Stranger").intermediate
    responder = make_ocsp_responder(stranger, now=NOW)
    ocsp_route(http_source, leaf, pki.intermediate, status="revoked", responder=responder)
    assert run(checker(trust), leaf, pki.intermediate).status == "unknown"


def test_stale_ocsp_is_unknown(pki, trust, http_source):
    leaf = pki.leaf(ocsp_urls=[http_source.url("/ocsp")])
    ocsp_route(
        http_source,
        leaf,
        pki.intermediate,
        status="revoked",
        this_update=NOW - timedelta(days=5),
        next_update=NOW - timedelta(days=1),
    )
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert verdict.status == "unknown"
    assert "stale answer" in verdict.message


def test_ocsp_about_another_certificate_is_unknown(pki, trust, http_source):
    leaf, other = pki.leaf(ocsp_urls=[http_source.url("/ocsp")]), pki.leaf()
    ocsp_route(http_source, other, pki.intermediate, status="revoked")
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert verdict.status == "unknown"
    assert "another certificate" in verdict.message


def test_an_ocsp_responder_that_never_answers_is_unknown_within_the_deadline(
    pki, trust, http_source
):
    leaf = pki.leaf(ocsp_urls=[http_source.url("/ocsp")])
    http_source.route("/ocsp", SILENT)
    started = time.monotonic()
    verdict = run(checker(trust, timeout=1.0), leaf, pki.intermediate)
    elapsed = time.monotonic() - started
    assert verdict.status == "unknown"
    assert "within the time allowed" in verdict.message
    assert elapsed < 2.5  # the deadline plus slack for a loaded machine


def test_revoked_in_the_crl_beats_good_from_ocsp(pki, trust, http_source):
    leaf = pki.leaf(ocsp_urls=[http_source.url("/ocsp")], crl_urls=[http_source.url("/ca.crl")])
    ocsp_route(http_source, leaf, pki.intermediate, status="good")
    http_source.route("/ca.crl", make_crl(pki.intermediate, revoked=[revoked_entry(leaf)]))
    verdict = run(checker(trust), leaf, pki.intermediate)
    assert (verdict.status, verdict.source) == ("revoked", "crl")


def test_a_failed_ocsp_falls_back_to_the_crl(pki, trust, http_source):
    leaf = pki.leaf(ocsp_urls=[http_source.url("/ocsp")], crl_urls=[http_source.url("/ca.crl")])
    http_source.route("/ocsp", b"garbage")
    http_source.route("/ca.crl", make_crl(pki.intermediate))
    assert run(checker(trust), leaf, pki.intermediate).to_dict()["source"] == "crl"


# ---- stapled OCSP -------------------------------------------------------------------------


def test_a_stapled_response_is_judged_first(pki, trust, http_source):
    leaf = pki.leaf(crl_urls=[http_source.url("/ca.crl")])
    stapled = make_ocsp_response(leaf, pki.intermediate, status="revoked", now=NOW)
    verdict = run(checker(trust), leaf, pki.intermediate, stapled=stapled)
    assert (verdict.status, verdict.source) == ("revoked", "stapled")
    assert "according to the OCSP response the server stapled" in verdict.message
    assert http_source.requests == {}  # a definite stapled answer needs no fetch


def test_a_good_stapled_response_without_other_sources(pki, trust):
    leaf = pki.leaf()
    stapled = make_ocsp_response(leaf, pki.intermediate, status="good", now=NOW)
    verdict = run(checker(trust), leaf, pki.intermediate, stapled=stapled)
    assert (verdict.status, verdict.source) == ("good", "stapled")


def test_a_forged_stapled_response_is_set_aside_for_the_crl(pki, trust, http_source):
    leaf = pki.leaf(crl_urls=[http_source.url("/ca.crl")])
    forged = make_ocsp_response(
        leaf, pki.intermediate, status="good", now=NOW, responder=make_ocsp_responder(pki.root)
    )
    http_source.route("/ca.crl", make_crl(pki.intermediate, revoked=[revoked_entry(leaf)]))
    verdict = run(checker(trust), leaf, pki.intermediate, stapled=forged)
    assert (verdict.status, verdict.source) == ("revoked", "crl")


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x03\x0a\x01\x00", bytes(range(256))])
def test_judging_garbage_ocsp_never_raises(pki, data):
    leaf = pki.leaf()
    verdict, holds_until = judge_ocsp(data, leaf.cert, pki.intermediate.cert, NOW)
    assert verdict.status == "unknown" and holds_until is None


def test_judging_mutated_answers_never_raises(pki):
    leaf = pki.leaf(crl_urls=["http://crl.test/ca.crl"])
    good_ocsp = make_ocsp_response(leaf, pki.intermediate, status="revoked", now=NOW)
    crl = make_crl(pki.intermediate, revoked=[revoked_entry(leaf)])
    randomness = random.Random(12)
    for _ in range(300):
        mutated = bytearray(good_ocsp)
        for _ in range(randomness.randint(1, 4)):
            mutated[randomness.randrange(len(mutated))] = randomness.randrange(256)
        verdict, _until = judge_ocsp(bytes(mutated), leaf.cert, pki.intermediate.cert, NOW)
        assert verdict.status in ("revoked", "unknown")
        mutated = bytearray(crl)
        mutated[randomness.randrange(len(mutated))] = randomness.randrange(256)
        try:
            parsed = load_crl(bytes(mutated))
        except ValueError:
            continue
        verdict = judge_crl(parsed, leaf.cert, pki.intermediate.cert, "http://crl.test/ca.crl", NOW)
        assert verdict.status in ("revoked", "unknown")


# ---- bounded fetches ----------------------------------------------------------------------


def test_an_endless_crl_body_is_cut_at_the_size_cap(pki, trust, http_source, monkeypatch):
    monkeypatch.setattr(fetch_policy, "MAX_CRL_BYTES", 1024 * 1024)
    leaf = pki.leaf(crl_urls=[http_source.url("/endless.crl")])
    http_source.route("/endless.crl", ENDLESS)
    started = time.monotonic()
    verdict = run(checker(trust, timeout=5.0), leaf, pki.intermediate)
    assert verdict.status == "unknown"
    assert "larger than 1048576 bytes" in verdict.message
    assert time.monotonic() - started < 3.0
    # The client hung up soon after the cap: the server wrote little more than that.
    time.sleep(0.2)
    assert http_source.bytes_sent < 8 * 1024 * 1024


def test_an_endless_body_costs_memory_of_the_cap_only(http_source):
    http_source.route("/endless.crl", ENDLESS)
    tracemalloc.start()
    try:
        with pytest.raises(FetchFailed, match="larger than"):
            fetch(http_source.url("/endless.crl"), max_bytes=2 << 20, timeout=5, policy=LOOPBACK)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * (2 << 20)  # the body (up to the cap), a chunk, one copy at most


def test_a_slow_drip_body_is_cut_at_the_deadline(http_source):
    http_source.route("/drip.crl", DRIP)
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="within the time allowed"):
        fetch(http_source.url("/drip.crl"), max_bytes=1 << 20, timeout=1.0, policy=LOOPBACK)
    assert time.monotonic() - started < 2.0


def test_a_server_that_never_answers_is_cut_at_the_deadline(http_source):
    http_source.route("/silent", SILENT)
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="within the time allowed"):
        fetch(http_source.url("/silent"), max_bytes=1024, timeout=0.5, policy=LOOPBACK)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (HEADER_FLOOD, "did not answer with valid HTTP"),
        (HEADER_DRIP, "within the time allowed"),
        (GARBAGE, "did not answer with valid HTTP"),
    ],
)
def test_broken_http_fails_cleanly_within_the_deadline(http_source, behaviour, reason):
    http_source.route("/broken", behaviour)
    started = time.monotonic()
    with pytest.raises(FetchFailed, match=reason):
        fetch(http_source.url("/broken"), max_bytes=1024, timeout=1.0, policy=LOOPBACK)
    assert time.monotonic() - started < 2.0


def test_a_declared_length_over_the_cap_is_refused_before_reading(http_source):
    http_source.route("/big.crl", b"x" * 5000)
    with pytest.raises(FetchFailed, match="larger than 1000 bytes"):
        fetch(http_source.url("/big.crl"), max_bytes=1000, timeout=2, policy=LOOPBACK)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/ca.crl",
        "ldap://127.0.0.1/cn=ca",
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1/ca.crl",
        "http://127.0.0.1:0/ca.crl",
        "http:///ca.crl",
    ],
)
def test_only_plain_http_urls_are_fetched(url):
    with pytest.raises(FetchFailed):
        fetch(url, max_bytes=1024, timeout=1, policy=LOOPBACK)


@pytest.mark.parametrize("path", ["/a\r\nX-Injected: 1", "/a b", "/\x00"])
def test_a_url_with_control_characters_is_refused_cleanly(http_source, path):
    with pytest.raises(FetchFailed):
        fetch(http_source.url(path), max_bytes=100, timeout=1, policy=LOOPBACK)
    assert not any("X-Injected" in str(host) for host in http_source.hosts)


def test_a_redirect_is_followed_once_more_through_the_same_checks(http_source):
    http_source.route("/old.crl", Redirect(http_source.url("/new.crl")))
    http_source.route("/new.crl", b"the crl")
    assert fetch(http_source.url("/old.crl"), max_bytes=100, timeout=2, policy=LOOPBACK) == (
        b"the crl"
    )


def test_a_redirect_to_https_is_refused(http_source):
    http_source.route("/old.crl", Redirect("https://127.0.0.1/new.crl"))
    with pytest.raises(FetchFailed, match="only plain http"):
        fetch(http_source.url("/old.crl"), max_bytes=100, timeout=2, policy=LOOPBACK)


def test_endless_redirects_stop(http_source):
    http_source.route("/loop.crl", Redirect(http_source.url("/loop.crl")))
    with pytest.raises(FetchFailed, match="redirects"):
        fetch(http_source.url("/loop.crl"), max_bytes=100, timeout=2, policy=LOOPBACK)


# ---- the SSRF guard -------------------------------------------------------------------------


class NoConnections:
    """Fail the test if anything opens a connection."""

    def __init__(self, monkeypatch):
        self.attempts = []
        monkeypatch.setattr(fetch_module, "open_socket", self._refuse)

    def _refuse(self, address, port, timeout):
        self.attempts.append(address)
        raise AssertionError(f"a connection to {address} was attempted")


def test_a_crl_url_resolving_to_a_private_address_is_refused_without_a_packet(
    pki, trust, monkeypatch
):
    looked_up = []

    def resolver(host, port):
        looked_up.append((host, port))
        return ["10.0.0.1"]

    guard = NoConnections(monkeypatch)
    leaf = pki.leaf(crl_urls=["http://crl.evil.test/ca.crl"])
    service = FetchPolicy(allow_private=False, resolver=resolver)
    verdict = run(checker(trust, policy=service), leaf, pki.intermediate)
    assert verdict.status == "unknown"
    assert "refused" in verdict.message and "10.0.0.1" in verdict.message
    assert looked_up == [("crl.evil.test", 80)]
    assert guard.attempts == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/ca.crl",
        "http://127.0.0.1:8080/ca.crl",
        "http://[::1]/ca.crl",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/ca.crl",
        "http://0x7f.1/ca.crl",
    ],
)
def test_private_source_urls_are_refused_in_the_service(url, monkeypatch):
    guard = NoConnections(monkeypatch)
    with pytest.raises(FetchFailed, match="refused"):
        fetch(url, max_bytes=100, timeout=1, policy=FetchPolicy(allow_private=False))
    assert guard.attempts == []


def test_a_redirect_to_a_private_address_is_refused_in_the_service(http_source, monkeypatch):
    # The service's guard, except that this one loopback server counts as public.
    http_source.route("/old.crl", Redirect("http://10.0.0.1/new.crl"))
    real_check = fetch_module.ssrf.check_address

    def lenient(address, shown_as=None):
        if address != "127.0.0.1":
            real_check(address, shown_as)

    monkeypatch.setattr(fetch_module.ssrf, "check_address", lenient)
    with pytest.raises(FetchFailed, match="refused"):
        fetch(
            f"http://crl.test:{http_source.port}/old.crl",
            max_bytes=100,
            timeout=2,
            policy=FetchPolicy(allow_private=False, resolver=lambda host, port: ["127.0.0.1"]),
        )
    assert http_source.requests == {"/old.crl": 1}


def test_the_connection_goes_to_the_address_the_guard_approved(http_source, monkeypatch):
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])  # a rebinding name: public once, then private
    lookups = []

    def rebinding(host, port):
        lookups.append(host)
        return next(answers)

    real_getaddrinfo = socket.getaddrinfo

    def numeric_only(host, port, *args, flags=0, **kwargs):
        if not flags & socket.AI_NUMERICHOST:
            raise AssertionError(f"a second name lookup was made for {host}")
        return real_getaddrinfo(host, port, *args, flags=flags, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    http_source.route("/ca.crl", b"crl bytes")
    url = f"http://crl.test:{http_source.port}/ca.crl"
    policy = FetchPolicy(allow_private=True, resolver=rebinding)
    assert fetch(url, max_bytes=100, timeout=2, policy=policy) == b"crl bytes"
    assert lookups == ["crl.test"]
    assert http_source.hosts == [f"crl.test:{http_source.port}"]


# ---- the cache ----------------------------------------------------------------------------


def test_many_targets_sharing_a_crl_fetch_it_once(pki, trust, http_source):
    url = http_source.url("/shared.crl")
    leaves = [pki.leaf(crl_urls=[url], dns=[f"site{n}.test"]) for n in range(30)]
    http_source.route("/shared.crl", make_crl(pki.intermediate, revoked=[revoked_entry(leaves[7])]))
    one_run = checker(trust)

    async def sweep():
        return await asyncio.gather(
            *(one_run.check([leaf.der, pki.intermediate.der], NOW) for leaf in leaves)
        )

    verdicts = asyncio.run(sweep())
    assert [v.status for v in verdicts].count("revoked") == 1
    assert verdicts[7].status == "revoked"
    assert http_source.requests["/shared.crl"] == 1
    # A later run in the same process (the next batch of the sweep) uses the cached CRL.
    again = run(checker(trust, cache=one_run.cache), leaves[3], pki.intermediate)
    assert again.status == "good"
    assert http_source.requests["/shared.crl"] == 1


def test_a_crl_is_fetched_again_after_its_next_update(pki, trust, http_source):
    url = http_source.url("/short.crl")
    leaf = pki.leaf(crl_urls=[url])
    http_source.route(
        "/short.crl", make_crl(pki.intermediate, next_update=NOW + timedelta(hours=1))
    )
    cache = RevocationCache()
    asyncio.run(checker(trust, cache=cache).check([leaf.der, pki.intermediate.der], NOW))
    later = NOW + timedelta(hours=2)
    http_source.route("/short.crl", make_crl(pki.intermediate, now=later))
    asyncio.run(checker(trust, cache=cache).check([leaf.der, pki.intermediate.der], later))
    assert http_source.requests["/short.crl"] == 2


def test_a_warm_process_fetches_the_crl_again_for_the_next_sweep(pki, trust, http_source):
    url = http_source.url("/daily.crl")
    leaf = pki.leaf(crl_urls=[url])
    http_source.route("/daily.crl", make_crl(pki.intermediate))
    cache = RevocationCache(max_age=0.2)
    assert run(checker(trust, cache=cache), leaf, pki.intermediate).status == "good"
    assert run(checker(trust, cache=cache), leaf, pki.intermediate).status == "good"
    assert http_source.requests["/daily.crl"] == 1
    time.sleep(0.3)  # the next day's sweep, in the same warm process
    http_source.route("/daily.crl", make_crl(pki.intermediate, revoked=[revoked_entry(leaf)]))
    assert run(checker(trust, cache=cache), leaf, pki.intermediate).status == "revoked"
    assert http_source.requests["/daily.crl"] == 2


def test_an_unreachable_crl_is_not_retried_by_every_target(pki, trust, http_source):
    url = http_source.url("/silent.crl")
    http_source.route("/silent.crl", SILENT)
    leaves = [pki.leaf(crl_urls=[url], dns=[f"site{n}.test"]) for n in range(10)]
    one_run = checker(trust, timeout=0.5)

    async def sweep():
        return await asyncio.gather(
            *(one_run.check([leaf.der, pki.intermediate.der], NOW) for leaf in leaves)
        )

    assert {v.status for v in asyncio.run(sweep())} == {"unknown"}
    run(one_run, leaves[0], pki.intermediate)
    assert http_source.requests["/silent.crl"] == 1


def test_the_same_chain_served_many_times_is_looked_up_once(pki, trust, http_source):
    leaf = pki.leaf(ocsp_urls=[http_source.url("/ocsp")])
    requests = ocsp_route(http_source, leaf, pki.intermediate, status="good")
    one_run = checker(trust)
    chain = [leaf.der, pki.intermediate.der]

    async def addresses():
        return await asyncio.gather(*(one_run.check(chain, NOW) for _ in range(5)))

    assert {verdict.status for verdict in asyncio.run(addresses())} == {"good"}
    assert len(requests) == 1


def test_ocsp_answers_are_cached_until_their_next_update(pki, trust, http_source):
    leaf = pki.leaf(ocsp_urls=[http_source.url("/ocsp")])
    requests = ocsp_route(http_source, leaf, pki.intermediate, status="good")
    cache = RevocationCache()
    for _ in range(3):
        assert run(checker(trust, cache=cache), leaf, pki.intermediate).status == "good"
    assert len(requests) == 1


def test_the_cache_is_bounded(pki, trust, http_source):
    cache = RevocationCache(max_entries=3)
    for n in range(6):
        url = http_source.url(f"/ca{n}.crl")
        http_source.route(f"/ca{n}.crl", make_crl(pki.intermediate))
        run(checker(trust, cache=cache), pki.leaf(crl_urls=[url]), pki.intermediate)
    assert len(cache._crls) == 3


def test_the_source_server_works_as_a_context_manager():
    with HTTPSourceServer() as server:
        server.route("/x", b"y")
        assert fetch(server.url("/x"), max_bytes=10, timeout=2, policy=LOOPBACK) == b"y"
