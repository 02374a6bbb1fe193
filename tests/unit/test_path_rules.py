"""The path is judged as a browser judges it: one scenario per rule, with generated PKIs.

Each scenario is a chain `openssl verify` (and a browser) refuses, or accepts, and the words
the `untrusted` problem says. No sockets: the served chain is given to evaluate directly.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from chalicelib.checker import trust as trust_module
from chalicelib.checker.evaluate import evaluate
from chalicelib.checker.probe import Evidence
from chalicelib.checker.targets import parse_target
from chalicelib.checker.trust import TrustStore, build_path
from tests.certs import make_ca, make_leaf

NOW = datetime(2027, 1, 1, 12, 0, 0, tzinfo=UTC)
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


@pytest.fixture(scope="module")
def root():
    return make_ca("Rules Root", now=NOW)


@pytest.fixture(scope="module")
def store(root):
    return TrustStore.from_pem(root.pem)


def judge(store, *certificates, host="example.test"):
    evidence = Evidence(
        target=parse_target(host),
        checked_at=NOW,
        chain=tuple(c.der for c in certificates),
        address="127.0.0.1",
    )
    return evaluate(evidence, NOW, 30, store)


def untrusted_reason(result) -> str | None:
    return next((p.message for p in result.problems if p.code == "untrusted"), None)


# --- basicConstraints: the CA flag ---------------------------------------------------------


def test_a_leaf_may_not_issue_certificates(root, store):
    # The classic attack: a site's own valid leaf signs a certificate for someone else's name.
    # This test fails if path building stops checking the CA flag.
    inter = make_ca("Honest Intermediate", issuer=root, now=NOW)
    own = make_leaf(inter, now=NOW, dns=["attacker.test"], common_name="attacker.test")
    forged = make_leaf(own, now=NOW, dns=["example.test"])
    result = judge(store, forged, own, inter)
    assert result.codes == ("untrusted",)
    assert untrusted_reason(result) == (
        "intermediate 'attacker.test' is not a CA certificate (basic constraints), so it may"
        " not issue"
    )


def test_an_intermediate_flagged_not_a_ca_may_not_issue(root, store):
    not_ca = make_ca("Not A CA", issuer=root, now=NOW, ca=False)
    result = judge(store, make_leaf(not_ca, now=NOW), not_ca)
    assert result.codes == ("untrusted",)
    assert "'Not A CA' is not a CA certificate (basic constraints)" in untrusted_reason(result)


def test_an_intermediate_without_basic_constraints_may_not_issue(root, store):
    bare = make_ca("Bare Intermediate", issuer=root, now=NOW, ca=None)
    result = judge(store, make_leaf(bare, now=NOW), bare)
    assert result.codes == ("untrusted",)
    assert "'Bare Intermediate' does not say it is a CA" in untrusted_reason(result)


def test_a_root_of_the_store_without_extensions_still_issues():
    # Old v1 roots carry no extensions at all; the anchor is trusted as a CA by being one.
    v1_root = make_ca("Old v1 Root", now=NOW, ca=None)
    leaf = make_leaf(v1_root, now=NOW)
    assert judge(TrustStore.from_pem(v1_root.pem), leaf).codes == ()


# --- basicConstraints: the path length -----------------------------------------------------


def test_path_length_zero_forbids_a_sub_ca(root, store):
    # The chain of the review: root -> intermediate (pathLen 0) -> sub-CA -> leaf.
    zero = make_ca("Zero Intermediate", issuer=root, now=NOW, path_length=0)
    sub = make_ca("Sub CA", issuer=zero, now=NOW)
    result = judge(store, make_leaf(sub, now=NOW), sub, zero)
    assert result.codes == ("untrusted",)
    assert untrusted_reason(result) == (
        "intermediate 'Zero Intermediate' may not issue further CAs (path length constraint)"
    )
    assert result.response.endswith(
        ", but intermediate 'Zero Intermediate' may not issue further CAs (path length constraint)"
    )


def test_path_length_zero_still_issues_leaves_and_one_allows_a_sub_ca(root, store):
    zero = make_ca("Zero Intermediate", issuer=root, now=NOW, path_length=0)
    assert judge(store, make_leaf(zero, now=NOW), zero).codes == ()
    one = make_ca("One Intermediate", issuer=root, now=NOW, path_length=1)
    sub = make_ca("Sub CA", issuer=one, now=NOW)
    assert judge(store, make_leaf(sub, now=NOW), sub, one).codes == ()


def test_a_root_path_length_counts_every_intermediate():
    tight = make_ca("Tight Root", now=NOW, path_length=1)
    first = make_ca("First", issuer=tight, now=NOW)
    second = make_ca("Second", issuer=first, now=NOW)
    result = judge(TrustStore.from_pem(tight.pem), make_leaf(second, now=NOW), second, first)
    assert untrusted_reason(result) == (
        "root 'Tight Root' allows at most 1 CA(s) below it (path length constraint)"
    )


def test_a_cross_sign_that_satisfies_the_constraints_is_found(root, store):
    # The sub-CA is sent twice: under the pathLen-0 intermediate (listed first, refused) and
    # cross-signed directly by the root. A browser backtracks and trusts the second path.
    zero = make_ca("Zero Intermediate", issuer=root, now=NOW, path_length=0)
    sub = make_ca("Sub CA", issuer=zero, now=NOW)
    cross = make_ca("Sub CA", issuer=root, now=NOW, same_key=sub)
    leaf = make_leaf(sub, now=NOW)
    path = build_path((leaf.cert, sub.cert, zero.cert, cross.cert), store)
    assert path.verified
    assert path.certificates == (leaf.cert, cross.cert, root.cert)
    assert judge(store, leaf, sub, zero, cross).codes == ()


# --- keyUsage --------------------------------------------------------------------------------


def test_an_intermediate_whose_key_usage_lacks_key_cert_sign_may_not_issue(root, store):
    signer = make_ca("Signing Only", issuer=root, now=NOW, key_cert_sign=False)
    result = judge(store, make_leaf(signer, now=NOW), signer)
    assert untrusted_reason(result) == (
        "intermediate 'Signing Only' may not sign certificates (its key usage lacks keyCertSign)"
    )


# --- extendedKeyUsage ------------------------------------------------------------------------


def test_a_client_only_leaf_is_not_for_tls_servers(root, store):
    inter = make_ca("EKU Intermediate", issuer=root, now=NOW)
    result = judge(store, make_leaf(inter, now=NOW, usages=[CLIENT]), inter)
    assert result.codes == ("untrusted",)
    assert untrusted_reason(result) == (
        "the certificate is not allowed for TLS servers (extended key usage allows only client"
        " authentication)"
    )


@pytest.mark.parametrize(
    "usages",
    [None, [SERVER], [CLIENT, SERVER], [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]],
    ids=["no EKU", "serverAuth", "client and server", "anyExtendedKeyUsage"],
)
def test_leaf_usages_a_browser_accepts(root, store, usages):
    inter = make_ca("EKU Intermediate", issuer=root, now=NOW)
    assert judge(store, make_leaf(inter, now=NOW, usages=usages), inter).codes == ()


def test_an_intermediate_restricted_to_email_may_not_issue_for_servers(root, store):
    mail = make_ca("Mail CA", issuer=root, now=NOW, usages=[ExtendedKeyUsageOID.EMAIL_PROTECTION])
    result = judge(store, make_leaf(mail, now=NOW), mail)
    assert untrusted_reason(result) == (
        "intermediate 'Mail CA' may not issue certificates for TLS servers (its extended key"
        " usage allows only email protection)"
    )
    server_ca = make_ca("Server CA", issuer=root, now=NOW, usages=[SERVER, CLIENT])
    assert judge(store, make_leaf(server_ca, now=NOW), server_ca).codes == ()


# --- name constraints ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scoped(root):
    return make_ca(
        "Scoped CA",
        issuer=root,
        now=NOW,
        permitted=[
            x509.DNSName("example.test"),
            x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        ],
        excluded=[x509.DNSName("secret.example.test")],
    )


@pytest.mark.parametrize(
    ("dns", "ips", "refused"),
    [
        (["example.test", "www.example.test", "*.www.example.test"], ["127.0.0.1"], None),
        (["example.test", "evil.test"], [], "may not issue for evil.test (it is outside"),
        (["example.test", "notexample.test"], [], "may not issue for notexample.test"),
        (["example.test", "secret.example.test"], [], "for secret.example.test (its name"),
        (["a.secret.example.test"], [], "for a.secret.example.test (its name constraints"),
        (["example.test", "*.example.test"], [], "for *.example.test (its name constraints"),
        (["example.test"], ["10.0.0.1"], "may not issue for 10.0.0.1 (it is outside"),
        # IP subtrees constrain both versions, as in Chromium: none permits ::1.
        (["example.test"], ["::1"], "may not issue for ::1 (it is outside"),
    ],
)
def test_name_constraints_apply_to_every_name_of_the_leaf(store, scoped, dns, ips, refused):
    result = judge(store, make_leaf(scoped, now=NOW, dns=dns, ips=ips), scoped)
    reason = untrusted_reason(result)
    if refused is None:
        assert result.codes == (), result.problems
    else:
        assert reason.startswith("intermediate 'Scoped CA' ") and refused in reason, reason


def test_name_constraints_of_the_root_apply_too():
    scoped_root = make_ca("Scoped Root", now=NOW, permitted=[x509.DNSName(".corp.test")])
    inter = make_ca("Corp Intermediate", issuer=scoped_root, now=NOW)
    store = TrustStore.from_pem(scoped_root.pem)
    good = make_leaf(inter, now=NOW, dns=["www.corp.test"])
    assert judge(store, good, inter, host="www.corp.test").codes == ()
    # ".corp.test" (leading dot) covers the subdomains only, not corp.test itself.
    bare = make_leaf(inter, now=NOW, dns=["corp.test"])
    assert "root 'Scoped Root' may not issue for corp.test" in untrusted_reason(
        judge(store, bare, inter, host="corp.test")
    )


# --- bounded work ----------------------------------------------------------------------------


def test_a_mesh_of_same_named_cross_signs_costs_a_bounded_number_of_checks(
    root, store, monkeypatch
):
    # 30 CAs all named "Mesh" with one key: each one validly issued every other, so an
    # unbounded depth-first search would weigh 29^7 paths before giving up. It stops at
    # MAX_CANDIDATES, and the explanation of the failure is bounded too.
    first = make_ca("Mesh", now=NOW)
    mesh = [first, *(make_ca("Mesh", issuer=first, same_key=first, now=NOW) for _ in range(29))]
    leaf = make_leaf(first, now=NOW)
    calls = []
    real = trust_module._signed_by
    monkeypatch.setattr(trust_module, "_signed_by", lambda c, i: calls.append(1) or real(c, i))
    trust_module.signs.cache_clear()
    path = build_path((leaf.cert, *(ca.cert for ca in reversed(mesh))), store)
    assert not path.verified
    assert path.reason == "the chain ends at 'Mesh', which is not a trusted root"
    assert len(calls) <= trust_module.MAX_CANDIDATES + 2 * trust_module.MAX_SERVED
