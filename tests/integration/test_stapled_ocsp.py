"""OCSP stapling end to end: the probe asks for the staple, and a stapled answer is judged first.

Plain TLS and STARTTLS alike.

The servers here are pyOpenSSL's (Python's ssl cannot staple), on loopback, one thread each.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from chalicelib.checker.check import CheckRequest, check_many
from chalicelib.checker.probe import probe
from chalicelib.checker.renewal_lookup import RenewalLookup
from chalicelib.checker.targets import parse_target
from chalicelib.checker.trust import TrustStore
from tests.certs import make_ocsp_response, make_pki

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def pki():
    return make_pki(NOW, name="sslnotify Stapling Test")


def _smtp_upgrade(plain: socket.socket) -> None:
    """Speak SMTP up to an agreed STARTTLS (the greeting, EHLO, STARTTLS)."""
    reader = plain.makefile("rb")
    plain.sendall(b"220 mail.test ESMTP\r\n")
    reader.readline()  # EHLO
    plain.sendall(b"250-mail.test\r\n250 STARTTLS\r\n")
    reader.readline()  # STARTTLS
    plain.sendall(b"220 go ahead\r\n")


@contextmanager
def stapling_server(chain, staple: bytes | None, smtp: bool = False):
    """Serve `chain` (leaf first) on 127.0.0.1, stapling `staple` when a client asks for it;
    with `smtp`, after an SMTP STARTTLS dialogue."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate(chain[0].cert)
    for extra in chain[1:]:
        context.add_extra_chain_cert(extra.cert)
    context.use_privatekey(chain[0].key)
    asked: list[bool] = []

    def staple_for(_connection, _data) -> bytes:
        asked.append(True)
        return staple or b""

    context.set_ocsp_server_callback(staple_for)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                plain, _ = listener.accept()
            except OSError:
                return
            with plain, contextlib.suppress(SSL.Error, OSError):
                if smtp:
                    _smtp_upgrade(plain)
                tls = SSL.Connection(context, plain)
                tls.set_accept_state()
                tls.do_handshake()
                tls.recv(1)  # until the probe goes away

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], asked
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() that close() alone would not
        listener.close()
        thread.join(timeout=5)


def _check(text: str, trust: TrustStore):
    """Check one loopback target as the CLI and the sweep do, revocation on, no CT or ARI."""
    request = CheckRequest(parse_target(text))
    return asyncio.run(
        check_many(
            [request],
            timeout=5,
            allow_private=True,
            trust=trust,
            renewal=RenewalLookup(),
            check_revocation=True,
        )
    )[0]


def _leaf(pki, **extra):
    return pki.leaf(dns=["localhost"], ips=["127.0.0.1"], **extra)


def test_the_probe_asks_for_and_keeps_the_staple(pki):
    leaf = _leaf(pki)
    staple = make_ocsp_response(leaf, pki.intermediate, status="good", now=NOW)
    with stapling_server([leaf, pki.intermediate], staple) as (port, asked):
        evidence = asyncio.run(probe(parse_target(f"127.0.0.1:{port}"), timeout=5))
    assert evidence.ok, evidence.message
    assert asked == [True]
    assert evidence.stapled == staple


def test_no_staple_is_none(pki):
    with stapling_server([_leaf(pki), pki.intermediate], None) as (port, _asked):
        evidence = asyncio.run(probe(parse_target(f"127.0.0.1:{port}"), timeout=5))
    assert evidence.ok and evidence.stapled is None


@pytest.mark.parametrize(("status", "verdict"), [("good", "ok"), ("revoked", "invalid")])
def test_a_stapled_answer_decides_without_asking_the_responder(pki, closed_port, status, verdict):
    # The leaf names a responder where nothing listens: only the staple can answer.
    leaf = _leaf(pki, ocsp_urls=[f"http://127.0.0.1:{closed_port}/ocsp"])
    staple = make_ocsp_response(leaf, pki.intermediate, status=status, now=NOW)
    trust = TrustStore(anchors=(pki.root.cert,))
    with stapling_server([leaf, pki.intermediate], staple) as (port, _asked):
        result = _check(f"127.0.0.1:{port}", trust)
    assert result.revocation.source == "stapled"
    assert result.revocation.status == status
    assert result.status == verdict
    assert ("revoked" in result.codes) == (status == "revoked")


def test_a_garbage_staple_is_unknown_and_the_handshake_goes_on(pki):
    leaf = _leaf(pki)
    trust = TrustStore(anchors=(pki.root.cert,))
    garbage = leaf.cert.public_bytes(serialization.Encoding.DER)  # not an OCSP response
    with stapling_server([leaf, pki.intermediate], garbage) as (port, _asked):
        result = _check(f"127.0.0.1:{port}", trust)
    assert result.status == "ok"
    assert result.revocation.status == "unknown"


def test_a_starttls_server_staples_too(pki):
    """STARTTLS targets get the same handshake as plain TLS: the staple is asked for there too."""
    leaf = _leaf(pki)
    staple = make_ocsp_response(leaf, pki.intermediate, status="revoked", now=NOW)
    trust = TrustStore(anchors=(pki.root.cert,))
    with stapling_server([leaf, pki.intermediate], staple, smtp=True) as (port, asked):
        result = _check(f"smtp://127.0.0.1:{port}", trust)
    assert asked == [True]
    assert result.protocol == "smtp"
    assert (result.revocation.source, result.revocation.status) == ("stapled", "revoked")
    assert result.status == "invalid"
