"""Loopback TLS servers serving a chosen chain, and misbehaving listeners, for tests.

Everything listens on loopback only: 127.0.0.1 by default, any 127.x.y.z or ::1 on request.
Servers run on one asyncio loop in a daemon thread shared by the whole test session, so a test
may start dozens cheaply.

Fixtures (import them in your conftest with `pytest_plugins = ["tests.tls_servers"]`, or rely on
tests/conftest.py doing so):

    tls_server(chain, key, *, host="127.0.0.1", port=0) -> TLSServer
        `chain` is a sequence of tests.certs.Issued, leaf first, exactly what the server sends
        (leave out the intermediate for an incomplete chain); `key` defaults to chain[0]'s key.
        Weak keys and SHA-1/MD5 certificates are served (OpenSSL security level 0).
        TLSServer has .host, .port, .address ("127.0.0.1:PORT" or "[::1]:PORT"), .connections
        (handshakes begun) and .server_names (the SNI each handshake sent, None when none was).
        `port` (default: any free one) lets servers on 127.0.0.2, 127.0.0.3 and ::1 share one
        port number, as the several addresses of one name do.
    silent_listener(host="127.0.0.1", port=0) -> Listener   accepts TCP, never answers
    plain_tcp_listener(host="127.0.0.1") -> Listener answers "HTTP/1.1 400" and closes
    closed_port -> int, callable                    a port nothing listens on (refused) on
                                                    127.0.0.1; `closed_port(host)` for ::1
    ipv6_loopback -> bool                           whether ::1 is usable (skip IPv6 tests if not)
    test_pki -> tests.certs.TestPKI                 a root + intermediate valid around now
    ca_file(*issued) -> str                         writes a PEM bundle to a temp file, returns path

All servers close at the end of the test that made them. Without pytest, use the context
managers `TLSServer(...)`, `SilentListener(...)`, `PlainTCPListener(...)` directly, e.g. in a
benchmark: `with TLSServer([leaf, inter]) as server: ...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

import pytest

from tests.certs import Issued, TestPKI, make_pki, pem_bundle

LOOPBACK = ("127.0.0.1", "::1")  # the usual hosts; any 127.x.y.z is loopback too


class _Loop:
    """One asyncio loop in a daemon thread, shared by every server of the session."""

    _instance: _Loop | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # Handshake failures against misbehaving probes are expected; keep them quiet.
        self.loop.set_exception_handler(lambda loop, context: None)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="tls")
        self.thread.start()

    @classmethod
    def get(cls) -> _Loop:
        """Return the shared loop, starting it on first use."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = _Loop()
            return cls._instance

    def run(self, coroutine, timeout: float = 10.0):
        """Run a coroutine on the shared loop and wait for its result."""
        future: Future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)


def _check_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"test servers listen on loopback only, not {host!r}")


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def server_context(chain: Sequence[Issued], key=None) -> ssl.SSLContext:
    """Build a server SSL context serving `chain` (leaf first), weak certificates allowed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Level 0 so RSA-1024 and SHA-1 certificates load and are served.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    key_pem = (key if key is not None else chain[0]).key_pem
    with tempfile.TemporaryDirectory() as directory:
        cert_path = Path(directory, "chain.pem")
        key_path = Path(directory, "key.pem")
        cert_path.write_bytes(pem_bundle(*chain))
        key_path.write_bytes(key_pem)
        context.load_cert_chain(cert_path, key_path)
    return context


class _Server:
    """An asyncio server on the shared loop, as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        _check_loopback(host)
        self.host = host
        self.port = port
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._loop = _Loop.get()

    @property
    def address(self) -> str:
        """Return host:port, IPv6 in brackets."""
        return _address(self.host, self.port)

    async def _start(self, ssl_context: ssl.SSLContext | None) -> None:
        options = {"ssl": ssl_context, "ssl_handshake_timeout": 10} if ssl_context else {}
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, backlog=1024, **options
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server.close_clients()

    def close(self) -> None:
        """Stop listening and drop open connections."""
        self._loop.run(self._stop())

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class TLSServer(_Server):
    """A TLS server sending `chain` (leaf first) signed by `key`; reads until the client leaves."""

    def __init__(
        self, chain: Sequence[Issued], key: Issued | None = None, *, host="127.0.0.1", port=0
    ):
        super().__init__(host, port)
        self.server_names: list[str | None] = []  # the SNI of each handshake (None: none sent)
        context = server_context(chain, key)
        context.sni_callback = self._record_name
        self._loop.run(self._start(context))

    def _record_name(self, ssl_object, server_name, context) -> None:
        # Counted at the ClientHello: a probe that leaves right after the handshake may be gone
        # before the server's connection handler ever runs.
        self.connections += 1
        self.server_names.append(server_name)

    async def _handle(self, reader, writer) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.read(1024), 5)
        writer.close()


class PlainTCPListener(_Server):
    """A plain-TCP (HTTP-like) server: reads a little, answers HTTP 400 and closes."""

    def __init__(self, host: str = "127.0.0.1"):
        super().__init__(host)
        self._loop.run(self._start(None))

    async def _handle(self, reader, writer) -> None:
        self.connections += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.read(1024), 2)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()


class SilentListener:
    """A socket that listens but never accepts: TCP connects, TLS never answers."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        _check_loopback(host)
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.bind((host, port))
        self._socket.listen(1024)
        self.port = self._socket.getsockname()[1]

    @property
    def address(self) -> str:
        """Return host:port, IPv6 in brackets."""
        return _address(self.host, self.port)

    def close(self) -> None:
        """Stop listening."""
        self._socket.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def find_closed_port(host: str = "127.0.0.1") -> int:
    """Return a loopback port that nothing listens on (connecting is refused)."""
    _check_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe_socket:
        probe_socket.bind((host, 0))
        return probe_socket.getsockname()[1]


def has_ipv6_loopback() -> bool:
    """Tell whether a server can listen on ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe_socket:
            probe_socket.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def tls_server():
    """Start TLS servers serving a chosen chain: `tls_server(chain, key=None, host=..., port=0)`."""
    servers: list[_Server] = []

    def start(
        chain: Sequence[Issued], key: Issued | None = None, *, host: str = "127.0.0.1", port=0
    ):
        server = TLSServer(chain, key, host=host, port=port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def silent_listener():
    """Start listeners that accept TCP and never speak: `silent_listener(host=..., port=0)`."""
    listeners: list[SilentListener] = []

    def start(host: str = "127.0.0.1", port: int = 0) -> SilentListener:
        listener = SilentListener(host, port)
        listeners.append(listener)
        return listener

    yield start
    for listener in listeners:
        listener.close()


@pytest.fixture
def plain_tcp_listener():
    """Start plain-TCP listeners that answer like an HTTP server: `plain_tcp_listener(host=...)`."""
    listeners: list[PlainTCPListener] = []

    def start(host: str = "127.0.0.1") -> PlainTCPListener:
        listener = PlainTCPListener(host)
        listeners.append(listener)
        return listener

    yield start
    for listener in listeners:
        listener.close()


class ClosedPort(int):
    """A closed port on 127.0.0.1 that, called, also gives one on another loopback host."""

    def __call__(self, host: str = "127.0.0.1") -> int:
        return int(self) if host == "127.0.0.1" else find_closed_port(host)


@pytest.fixture
def closed_port():
    """Return a port nothing listens on: use it as an int, or call `closed_port(host=...)`.

    The port stays bound (never listening) for the whole test, so a server the test starts
    later on port 0 cannot be handed the same number: connecting is refused throughout.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield ClosedPort(held.getsockname()[1])


@pytest.fixture(scope="session")
def ipv6_loopback() -> bool:
    """Tell whether ::1 is usable here."""
    return has_ipv6_loopback()


@pytest.fixture(scope="session")
def test_pki() -> TestPKI:
    """Return a root and an intermediate CA valid around the current time."""
    return make_pki()


@pytest.fixture
def ca_file(tmp_path):
    """Write certificates to a PEM file and return its path: `ca_file(root, ...)`."""
    counter = iter(range(1_000_000))

    def write(*certificates: Issued) -> str:
        path = tmp_path / f"ca-{next(counter)}.pem"
        path.write_bytes(pem_bundle(*certificates))
        return str(path)

    return write
