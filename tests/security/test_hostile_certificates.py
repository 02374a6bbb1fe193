"""Hostile certificates, built as raw DER where cryptography's builder refuses, never raise.

Each case is signed properly (tests/der.py) and fed through evaluate directly, the probe (a
loopback TLS server serves it, where OpenSSL agrees to load it), the checker's batch (a good
neighbour's result must still reach data), the CLI (both lines, no traceback) and check-now
(a 200 with the result, never a 500). An unreadable part is a problem on that target alone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lambdas.checker
from chalicelib import cli
from chalicelib.checker import evaluate as evaluate_module
from chalicelib.checker import trust as trust_module
from chalicelib.checker.check import CheckRequest, check_many
from chalicelib.checker.evaluate import (
    ERROR_CODES,
    EXPIRING_CODES,
    INVALID_CODES,
    CheckResult,
    evaluate,
    evaluate_tolerances,
)
from chalicelib.checker.probe import Evidence
from chalicelib.checker.targets import parse_target
from chalicelib.checker.trust import TrustStore
from chalicelib.config import reset_settings
from tests import der
from tests.certs import Issued, make_ca, make_key, make_leaf, make_pki
from tests.security.conftest import FUZZ_EXAMPLES, fuzz_examples, record_figure
from tests.tls_servers import TLSServer

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)
CODES = set(ERROR_CODES) | set(INVALID_CODES) | set(EXPIRING_CODES)
GOOD_SAN = der.san(["localhost"], ["127.0.0.1"])


@dataclass(frozen=True)
class Raw:
    """A certificate as DER that cryptography may not even load, with its private key."""

    der: bytes
    key: object

    @property
    def pem(self) -> bytes:
        """Return the PEM (written by hand: the DER may be unreadable to cryptography)."""
        body = base64.encodebytes(self.der).replace(b"\n", b"")
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"
        )

    @property
    def key_pem(self) -> bytes:
        """Return the private key in PEM, as tests.certs.Issued does."""
        return Issued(cert=None, key=self.key).key_pem


@pytest.fixture(scope="module")
def pki():
    return make_pki(NOW)


@pytest.fixture(scope="module")
def store(pki):
    return TrustStore.from_pem(pki.root.pem)


def leaf(pki, **parts) -> Raw:
    """Issue a leaf under the test intermediate from raw parts (defaults: a good leaf)."""
    key = make_key()
    options = {
        "subject": der.name(cn=der.utf8(b"localhost")),
        "issuer": pki.intermediate.cert.subject.public_bytes(),
        "not_before": der.time(NOW - DAY),
        "not_after": der.time(NOW + 60 * DAY),
        "extensions": [GOOD_SAN, der.basic_constraints(False), der.server_auth()],
    }
    options.update(parts)
    return Raw(der.certificate(issuer_key=pki.intermediate.key, public_key=key, **options), key)


def deep_chain(count: int, issuer: Issued) -> list[Raw]:
    """Return a leaf under `count` CAs in a row under `issuer`: leaf, then each CA's issuer."""
    chain: list[Raw] = []
    issuer_name, issuer_key = issuer.cert.subject.public_bytes(), issuer.key
    for number in range(count):
        key = make_key()
        subject = der.name(cn=der.utf8(f"Deep CA {number}".encode()))
        chain.insert(
            0,
            Raw(
                der.certificate(
                    issuer_key=issuer_key,
                    public_key=key,
                    subject=subject,
                    issuer=issuer_name,
                    not_before=der.time(NOW - DAY),
                    not_after=der.time(NOW + 365 * DAY),
                    extensions=[der.basic_constraints(True)],
                ),
                key,
            ),
        )
        issuer_name, issuer_key = subject, key
    return [signed_by(chain[0], issuer_name), *chain]


def signed_by(ca: Raw, subject: bytes, **parts) -> Raw:
    """Issue a good leaf (for localhost) under a Raw CA whose subject DER is `subject`."""
    key = make_key()
    options = {
        "subject": der.name(cn=der.utf8(b"localhost")),
        "issuer": subject,
        "not_before": der.time(NOW - DAY),
        "not_after": der.time(NOW + 60 * DAY),
        "extensions": [GOOD_SAN, der.basic_constraints(False), der.server_auth()],
    }
    options.update(parts)
    return Raw(der.certificate(issuer_key=ca.key, public_key=key, **options), key)


def looping(pki) -> list[Raw]:
    """A leaf under A, with A issued by B and B issued by A."""
    key_a, key_b = make_key(), make_key()
    name_a, name_b = der.name(cn=der.utf8(b"Loop A")), der.name(cn=der.utf8(b"Loop B"))
    common = {
        "not_before": der.time(NOW - DAY),
        "not_after": der.time(NOW + 365 * DAY),
        "extensions": [der.basic_constraints(True)],
    }
    a = Raw(
        der.certificate(
            issuer_key=key_b, public_key=key_a, subject=name_a, issuer=name_b, **common
        ),
        key_a,
    )
    b = Raw(
        der.certificate(
            issuer_key=key_a, public_key=key_b, subject=name_b, issuer=name_a, **common
        ),
        key_b,
    )
    return [signed_by(a, name_a), a, b]


def chains(pki) -> dict[str, tuple[list, tuple[str, ...], str | None]]:
    """Each hostile case: (served chain, leaf first; expected codes; a phrase of a message)."""
    inter = pki.intermediate
    subject_unreadable = "the certificate's subject cannot be read"
    san_unreadable = "its subjectAltName cannot be read"
    many = [f"h{number}.test" for number in range(5000)]  # 55 kB: within OpenSSL's 100 kB
    huge = der.extension("1.3.6.1.4.1.99999.1", der.tlv(der.OCTET_STRING, b"\xaa" * 50_000))
    return {
        "IA5String with byte 0xff in the subject": (
            [leaf(pki, subject=der.name(cn=der.ia5(b"bad\xffname"))), inter],
            ("untrusted",),
            subject_unreadable,
        ),
        "invalid UTF8String in the subject": (
            [leaf(pki, subject=der.name(cn=der.utf8(b"bad\xc3\x28"))), inter],
            ("untrusted",),
            subject_unreadable,
        ),
        "BMPString of odd length in the subject": (
            [leaf(pki, subject=der.name(cn=der.tlv(der.BMP_STRING, b"\x00a\x00"))), inter],
            ("tls_error",),
            "cannot be read",
        ),
        "IA5String with byte 0xff in the issuer": (
            [leaf(pki, issuer=der.name(cn=der.ia5(b"\xff"))), inter],
            ("untrusted",),
            "the certificate's issuer cannot be read",
        ),
        "a 50 kB unknown extension": ([leaf(pki, extensions=[GOOD_SAN, huge]), inter], (), None),
        "duplicate subjectAltName": (
            [leaf(pki, extensions=[GOOD_SAN, GOOD_SAN]), inter],
            ("hostname_mismatch", "untrusted"),
            san_unreadable,
        ),
        "truncated subjectAltName": (
            [
                leaf(pki, extensions=[der.extension(der.SUBJECT_ALT_NAME, b"\x30\x05\x82\x09ab")]),
                inter,
            ],
            ("hostname_mismatch", "untrusted"),
            san_unreadable,
        ),
        "byte 0xff in a subjectAltName DNS name": (
            [
                leaf(
                    pki,
                    extensions=[
                        der.extension(der.SUBJECT_ALT_NAME, der.dns_names([b"local\xffhost"]))
                    ],
                ),
                inter,
            ],
            ("hostname_mismatch", "untrusted"),
            san_unreadable,
        ),
        "valid until year 9999, from year 0001": (
            [
                leaf(
                    pki,
                    not_before=der.time(datetime(1, 1, 1)),
                    not_after=der.time(datetime(9999, 12, 31, 23, 59, 59)),
                ),
                inter,
            ],
            (),
            None,
        ),
        "expired in year 0001": (
            [
                leaf(
                    pki,
                    not_before=der.time(datetime(1, 1, 1)),
                    not_after=der.time(datetime(1, 12, 31)),
                ),
                inter,
            ],
            ("expired",),
            "0001-12-31",
        ),
        "UTCTime 50 is 1950": (
            [leaf(pki, not_after=der.tlv(der.UTC_TIME, b"500101000000Z")), inter],
            ("expired",),
            "1950-01-01",
        ),
        "GeneralizedTime where UTCTime is due": (
            [leaf(pki, not_after=der.time(NOW + 60 * DAY, generalized=True)), inter],
            (),
            None,
        ),
        "negative serial": ([leaf(pki, serial=der.integer(-42)), inter], (), None),
        "zero-length serial": (
            [leaf(pki, serial=der.tlv(der.INTEGER, b"")), inter],
            ("tls_error",),
            "cannot be read",
        ),
        "5,000 subjectAltNames": (
            [leaf(pki, extensions=[der.san(["localhost", *many], ["127.0.0.1"])]), inter],
            (),
            None,
        ),
        "a chain 50 intermediates deep": (
            [*deep_chain(50, inter), inter],
            ("untrusted",),
            "longer than",
        ),
        "a looping chain (A issued by B issued by A)": (
            looping(pki),
            ("untrusted",),
            "the chain loops back to 'Loop A'",
        ),
    }


@pytest.fixture(scope="module")
def cases(pki):
    return chains(pki)


def evidence_of(chain, host="localhost") -> Evidence:
    return Evidence(
        target=parse_target(host),
        checked_at=NOW,
        chain=tuple(c.der for c in chain),
        address="127.0.0.1",
    )


def assert_sound(result: CheckResult) -> dict:
    """Assert a result keeps the contract: known codes, JSON that reads back the same."""
    assert set(result.codes) <= CODES
    data = json.loads(json.dumps(result.to_dict()))
    assert CheckResult.from_dict(data).to_dict() == data
    return data


CASES = (
    "IA5String with byte 0xff in the subject",
    "invalid UTF8String in the subject",
    "BMPString of odd length in the subject",
    "IA5String with byte 0xff in the issuer",
    "a 50 kB unknown extension",
    "duplicate subjectAltName",
    "truncated subjectAltName",
    "byte 0xff in a subjectAltName DNS name",
    "valid until year 9999, from year 0001",
    "expired in year 0001",
    "UTCTime 50 is 1950",
    "GeneralizedTime where UTCTime is due",
    "negative serial",
    "zero-length serial",
    "5,000 subjectAltNames",
    "a chain 50 intermediates deep",
    "a looping chain (A issued by B issued by A)",
)


def test_every_case_is_listed(cases):
    assert set(cases) == set(CASES)


@pytest.fixture(autouse=True)
def quiet_negative_serials():
    # cryptography warns (and will one day refuse) when it reads a negative serial.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


@pytest.mark.parametrize("name", CASES)
def test_evaluate_judges_each_hostile_certificate_without_raising(cases, store, name):
    chain, codes, phrase = cases[name]
    result, auto = evaluate_tolerances(evidence_of(chain), [30, "auto"], NOW, store)
    assert_sound(auto)
    data = assert_sound(result)
    assert result.codes == codes, result.problems
    if phrase:
        assert any(phrase in p.message for p in result.problems), result.problems
    if result.status != "error":
        # The rest of the result is filled where it can be: dates, names, the chain.
        assert data["notAfter"] and data["chain"] and data["earliestExpiry"]


def test_an_unreadable_subject_still_shows_the_rest(cases, store):
    chain, _, _ = cases["IA5String with byte 0xff in the subject"]
    result = evaluate(evidence_of(chain), NOW, 30, store)
    assert result.subject == "(unreadable name)"
    assert result.issued_by == "sslnotify Test"
    assert result.valid_hosts == ("localhost", "127.0.0.1")
    assert result.days_left == 60
    assert result.response.startswith("SSL certificate for localhost will expire in 60 days, but")


def test_thousands_of_names_and_deep_chains_cost_bounded_work(cases, store, monkeypatch):
    # Counted, not timed: the signature checks of path building stay bounded however many
    # names or certificates a server sends.
    calls = []
    real = trust_module._signed_by
    monkeypatch.setattr(trust_module, "_signed_by", lambda c, i: calls.append(1) or real(c, i))
    for name in ("5,000 subjectAltNames", "a chain 50 intermediates deep"):
        trust_module.signs.cache_clear()
        calls.clear()
        evaluate(evidence_of(cases[name][0]), NOW, 30, store)
        assert len(calls) <= trust_module.MAX_CANDIDATES + 2 * trust_module.MAX_SERVED, name
    result = evaluate(evidence_of(cases["5,000 subjectAltNames"][0], "elsewhere.test"), NOW)
    assert "it covers localhost, h0.test" in result.problems[0].message
    assert result.problems[0].message.endswith(", …)")


def serve(chain):
    """Serve a chain from loopback, or None when OpenSSL refuses to load it."""
    try:
        return TLSServer(chain, chain[0])
    except ssl.SSLError:
        return None


# OpenSSL refuses to load these (a hostile server with its own TLS stack could still send
# them): they are judged from their DER above.
UNSERVABLE = {
    "BMPString of odd length in the subject",
    "zero-length serial",
    "invalid UTF8String in the subject",
    "duplicate subjectAltName",
    "truncated subjectAltName",
}


@pytest.mark.parametrize("name", CASES)
def test_the_probe_fetches_each_hostile_certificate_and_judges_it(cases, store, name):
    chain, codes, _ = cases[name]
    server = serve(chain)
    if server is None:
        assert name in UNSERVABLE
        return
    assert name not in UNSERVABLE
    with server:
        target = parse_target(f"localhost:{server.port}")
        request = CheckRequest(target=target, tolerance=30, ip="127.0.0.1")
        [result] = asyncio.run(check_many([request], timeout=5, allow_private=True, trust=store))
    assert_sound(result)
    assert result.codes == codes, result.problems


@pytest.fixture
def hostile_servers(cases, pki, tls_server):
    """A good server and one server per servable hostile case, all on loopback."""
    good = tls_server([pki.leaf(dns=["localhost"], ips=["127.0.0.1"]), pki.intermediate])
    servers = {"good": good}
    for name in CASES:
        server = serve(cases[name][0])
        if server is not None:
            servers[name] = server
    yield servers
    for name, server in servers.items():
        if name != "good":
            server.close()


@pytest.fixture
def service_trusts_the_test_root(monkeypatch, ca_file, pki):
    monkeypatch.setenv("SSLNOTIFY_ALLOW_PRIVATE_TARGETS", "1")
    monkeypatch.setenv("SSLNOTIFY_CA_BUNDLE", ca_file(pki.root))
    reset_settings()


def test_the_checker_batch_records_every_target_beside_hostile_ones(
    hostile_servers, service_trusts_the_test_root, monkeypatch
):
    # The good target sorts first and last, as a neighbour of the hostile ones in a batch.
    ports = {name: server.port for name, server in hostile_servers.items()}
    order = ["good", *(name for name in ports if name != "good"), "good"]
    targets = [
        {
            "target": f"127.0.0.1:{ports[name]}",
            "subscriptions": [{"subscriber": f"s{n}", "tolerance": "30"}],
        }
        for n, name in enumerate(order)
    ]
    recorded = []

    def invoke(function, payload, wait=False, **options):
        if function == "data":
            recorded.extend(payload["targets"])
            return []
        return None

    monkeypatch.setattr(lambdas.checker, "invoke", invoke)
    summary = lambdas.checker.check(NOW.date().isoformat(), targets)
    assert summary["targets"] == len(targets)
    by_target = {entry["target"]: entry["results"]["30"] for entry in recorded}
    assert set(by_target) == {f"127.0.0.1:{port}" for port in ports.values()}
    assert by_target[f"127.0.0.1:{ports['good']}"]["status"] == "ok"
    hostile = by_target[f"127.0.0.1:{ports['IA5String with byte 0xff in the subject']}"]
    assert {key: hostile[key] for key in ("status", "daysLeft", "notAfter", "problems")} == {
        "status": "invalid",
        "daysLeft": 59,  # judged a moment after NOW
        "notAfter": evaluate_module.iso(NOW + 60 * DAY),
        "problems": [{"code": "untrusted"}],
    }


def test_the_cli_prints_the_good_target_and_the_hostile_one(
    hostile_servers, service_trusts_the_test_root, monkeypatch, capsys
):
    monkeypatch.setattr(cli, "COMMANDS", {"check": cli.COMMANDS["check"]})
    good = hostile_servers["good"].port
    bad = hostile_servers["IA5String with byte 0xff in the subject"].port
    status = cli.main(["check", f"127.0.0.1:{good}", f"127.0.0.1:{bad}"])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert status == 2
    assert len(lines) == 2, out
    assert lines[0].startswith(f"127.0.0.1:{good}  OK  ")
    assert lines[1].startswith(f"127.0.0.1:{bad}  INVALID  ")
    assert "the certificate's subject cannot be read" in lines[1]
    assert "Traceback" not in err


def test_check_now_answers_each_hostile_certificate(
    api, generous_limits, hostile_servers, service_trusts_the_test_root, cases
):
    for name, server in hostile_servers.items():
        response = api.http.get(f"/check/127.0.0.1?port={server.port}&days=30")
        assert response.status_code == 200, (name, response.body)
        result = json.loads(response.body)
        expected = () if name == "good" else cases[name][1]
        codes = tuple(p["code"] for p in result["problems"])
        # Served to 127.0.0.1: localhost-only names add a hostname mismatch, nothing else.
        assert tuple(c for c in codes if c != "hostname_mismatch") == tuple(
            c for c in expected if c != "hostname_mismatch"
        ), (name, result["problems"])


def test_a_bug_in_judging_one_target_spares_its_neighbours(
    hostile_servers, service_trusts_the_test_root, monkeypatch, caplog
):
    # The last-resort guard: whatever judging raises becomes an error on that target alone,
    # logged with its traceback; the batch goes on and records the neighbour.
    bad_port = hostile_servers["negative serial"].port
    real = evaluate_module._judge

    def judge(evidence, served, now, trust):
        if evidence.target.port == bad_port:
            raise RuntimeError("a bug nobody foresaw")
        return real(evidence, served, now, trust)

    monkeypatch.setattr(evaluate_module, "_judge", judge)
    recorded = []

    def invoke(function, payload, wait=False, **options):
        recorded.extend(payload.get("targets", []))
        return []

    monkeypatch.setattr(lambdas.checker, "invoke", invoke)
    good = hostile_servers["good"].port
    targets = [
        {"target": f"127.0.0.1:{port}", "subscriptions": [{"subscriber": "s", "tolerance": "30"}]}
        for port in (good, bad_port)
    ]
    with caplog.at_level(logging.ERROR):
        lambdas.checker.check(NOW.date().isoformat(), targets)
    results = {entry["target"]: entry["results"]["30"] for entry in recorded}
    assert results[f"127.0.0.1:{good}"]["status"] == "ok"
    assert results[f"127.0.0.1:{bad_port}"] == {
        "status": "error",
        "daysLeft": None,
        "notAfter": None,
        "problems": [{"code": "tls_error"}],
    }
    assert "a bug nobody foresaw" in caplog.text


@pytest.fixture(scope="module")
def rich_tbs(pki):
    """The TBSCertificate of a leaf with many kinds of extensions, to mutate."""
    scoped = make_ca(
        "Scoped",
        issuer=pki.root,
        now=NOW,
        path_length=0,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        permitted=[x509.DNSName("localhost")],
    )
    leaf = make_leaf(scoped, now=NOW, dns=["localhost", "*.localhost"], ips=["127.0.0.1", "::1"])
    return scoped, leaf.cert.tbs_certificate_bytes


@settings(
    max_examples=fuzz_examples(200),
    deadline=None,
    database=None,
    derandomize=not FUZZ_EXAMPLES,
    suppress_health_check=list(HealthCheck),
)
@given(
    changes=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4)
)
def test_mutated_certificates_properly_signed_never_raise(rich_tbs, store, changes):
    # Bytes of the TBSCertificate changed, then signed again: the certificate reaches every
    # lazy parser of cryptography (names, extensions, dates) instead of failing at the outer
    # signature, as a hostile CA's own certificate would.
    scoped, tbs = rich_tbs
    mutated = bytearray(tbs)
    for position, value in changes:
        mutated[position % len(mutated)] = value
    algorithm = der.sequence(der.oid(der.ECDSA_WITH_SHA256))
    signature = scoped.key.sign(bytes(mutated), ec.ECDSA(hashes.SHA256()))
    raw = der.sequence(bytes(mutated), algorithm, der.tlv(der.BIT_STRING, b"\x00" + signature))
    evidence = Evidence(
        target=parse_target("localhost"),
        checked_at=NOW,
        chain=(raw, scoped.der),
        address="127.0.0.1",
    )
    for result in evaluate_tolerances(evidence, [30, "auto"], NOW, store):
        assert_sound(result)
        # certparts caught it: the last-resort guard (a bug) never had to.
        assert "internal error" not in " ".join(p.message for p in result.problems)
    record_figure("mutated certificates judged without raising", 1)


def test_the_checker_function_over_emulated_aws_records_the_good_neighbour(
    lambdas, hostile_servers, service_trusts_the_test_root
):
    # The real path: the checker's handler, its data call answered by the data function
    # over moto. Both targets are recorded; the hostile one's subscriber is now alerted.
    from chalicelib.invoke import invoke

    good = hostile_servers["good"].port
    bad = hostile_servers["IA5String with byte 0xff in the subject"].port
    day = NOW.date().isoformat()
    targets = [
        {"target": f"127.0.0.1:{port}", "subscriptions": [{"subscriber": name, "tolerance": "30"}]}
        for name, port in (("good-subscriber", good), ("bad-subscriber", bad))
    ]
    summary = invoke("checker", {"action": "check", "day": day, "targets": targets}, wait=True)
    assert summary["targets"] == 2 and summary["errors"] == 0
    [data_call] = [call for call in lambdas.calls if call.function == "data"]
    recorded = {entry["target"]: entry for entry in data_call.payload["targets"]}
    assert recorded[f"127.0.0.1:{good}"]["results"]["30"]["status"] == "ok"
    assert recorded[f"127.0.0.1:{bad}"]["results"]["30"]["status"] == "invalid"
    assert summary["notifications"] == 1  # the hostile target's alert, due to its subscriber
