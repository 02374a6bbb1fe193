"""The probe's own handshake connection (checker/handshake.py) against servers that behave oddly."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from chalicelib.checker.probe import probe
from chalicelib.checker.targets import parse_target
from tests.certs import make_pki, pem_bundle


@pytest.fixture(scope="module")
def pki():
    return make_pki(datetime.now(UTC))


@contextmanager
def one_connection_server(handle):
    """Serve one connection on 127.0.0.1 with `handle(sock)` in a thread; yield the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        connection, _ = listener.accept()
        # The probe drops the connection as soon as it has the chain.
        with connection, contextlib.suppress(OSError, ssl.SSLError):
            handle(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(timeout=5)


def _context(pki, tmp_path, maximum: ssl.TLSVersion) -> ssl.SSLContext:
    leaf = pki.leaf(dns=["localhost"], ips=["127.0.0.1"])
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pem_bundle(leaf, pki.intermediate) + leaf.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    context.maximum_version = maximum
    return context


def _probe(port: int, timeout: float = 5.0):
    return asyncio.run(probe(parse_target(f"127.0.0.1:{port}"), timeout=timeout))


@pytest.mark.parametrize(
    ("maximum", "version"),
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
)
def test_the_chain_is_read_over_each_tls_version(pki, tmp_path, maximum, version):
    context = _context(pki, tmp_path, maximum)

    def handle(connection):
        with context.wrap_socket(connection, server_side=True) as tls:
            tls.recv(1)  # until the probe goes away

    with one_connection_server(handle) as port:
        evidence = _probe(port)
    assert evidence.ok, evidence.message
    assert evidence.tls_version == version
    assert len(evidence.chain) == 2


def test_a_server_that_closes_mid_handshake_is_a_tls_error():
    def handle(connection):
        connection.recv(1024)  # the ClientHello, then close without answering

    with one_connection_server(handle) as port:
        evidence = _probe(port)
    assert evidence.error == "tls_error"
    assert evidence.message == "the server closed the connection during the TLS handshake"


def test_garbage_instead_of_a_server_hello_is_a_tls_error():
    def handle(connection):
        connection.recv(1024)
        connection.sendall(b"\x16\x03\x03\x00\x05garbage-garbage-garbage")
        connection.recv(1024)

    with one_connection_server(handle) as port:
        evidence = _probe(port)
    assert evidence.error == "tls_error"
    assert evidence.message.startswith("the TLS handshake failed")


def test_a_server_that_stalls_mid_handshake_times_out():
    stop = threading.Event()

    def handle(connection):
        connection.recv(1024)
        connection.sendall(b"\x16\x03\x03\x00\x40")  # a record header, then nothing
        stop.wait(5)

    with one_connection_server(handle) as port:
        evidence = _probe(port, timeout=0.5)
        stop.set()
    assert evidence.error == "timeout"
    assert "waiting for the TLS handshake" in evidence.message
