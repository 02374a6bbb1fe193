"""Fixtures of the security tests: a network jail, a canary listener, the API over emulated AWS.

The network jail is autouse here: every test of this package runs with name resolution
answered from an in-memory table (no DNS packet leaves the machine) and with every outgoing
connection to anything but loopback recorded and refused before a packet is sent. A test
that expects an intercepted attempt takes it with `network_jail.take()`; any attempt left
over fails the test.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import boto3
import pytest

from chalicelib import aws
from chalicelib.config import RateLimits, get_settings

FUZZ_EXAMPLES = int(os.environ.get("SSLNOTIFY_FUZZ_EXAMPLES", "0") or 0)
_REAL_GETADDRINFO = socket.getaddrinfo
_REAL_CONNECT = socket.socket.connect
_REAL_CONNECT_EX = socket.socket.connect_ex


def is_loopback(host: str) -> bool:
    """Tell whether a socket address's host is a loopback address (127.0.0.0/8, ::1)."""
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@dataclass
class NetworkJail:
    """Fake DNS plus a connect() that lets only loopback through and records everything else."""

    dns: dict[str, Sequence[Sequence[str]]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    attempts: list[tuple[str, int]] = field(default_factory=list)
    connected: list[tuple[str, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, name: str, *answers: Sequence[str]) -> None:
        """Make `name` resolve to answers[0] on the first lookup, answers[1] on the second, …."""
        self.dns[name.lower().rstrip(".")] = [list(answer) for answer in answers]

    def take(self) -> list[tuple[str, int]]:
        """Return the intercepted non-loopback attempts and forget them (they were expected)."""
        with self._lock:
            taken, self.attempts[:] = list(self.attempts), []
        return taken

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        """Resolve numeric hosts locally and names from the table; never send a DNS query."""
        if host is None:
            return _REAL_GETADDRINFO(host, port, family, type, proto, flags)
        text = host.decode() if isinstance(host, bytes) else str(host)
        try:
            return _REAL_GETADDRINFO(text, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except (socket.gaierror, UnicodeError):
            pass
        name = text.lower().rstrip(".")
        with self._lock:
            self.lookups.append(name)
            count = self.lookups.count(name)
        answers = self.dns.get(name)
        if answers is None and name in {"localhost", "localhost.localdomain"}:
            answers = [["127.0.0.1"]]
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        chosen = answers[min(count, len(answers)) - 1]
        numeric_port = int(port) if port not in (None, "") else 0
        infos = []
        for address in chosen:
            if ":" in address:
                infos.append(
                    (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, numeric_port, 0, 0))
                )
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, numeric_port)))
        return infos

    def check(self, address) -> None:
        """Let a loopback (or Unix) destination through; record and refuse anything else."""
        if not isinstance(address, tuple):
            return
        host, port = str(address[0]), int(address[1])
        if is_loopback(host):
            with self._lock:
                self.connected.append((host, port))
            return
        with self._lock:
            self.attempts.append((host, port))
        raise ConnectionRefusedError(f"network jail: no packet to {host} port {port}")


@pytest.fixture(autouse=True)
def network_jail() -> Iterator[NetworkJail]:
    """Keep every packet of the test on loopback; fail the test on an unexpected attempt."""
    jail = NetworkJail()

    def connect(sock, address):
        jail.check(address)
        return _REAL_CONNECT(sock, address)

    def connect_ex(sock, address):
        jail.check(address)
        return _REAL_CONNECT_EX(sock, address)

    patch = pytest.MonkeyPatch()
    patch.setattr(socket, "getaddrinfo", jail.getaddrinfo)
    patch.setattr(socket.socket, "connect", connect)
    patch.setattr(socket.socket, "connect_ex", connect_ex)
    try:
        yield jail
    finally:
        patch.undo()
    if jail.attempts:
        pytest.fail(f"connections to non-loopback addresses were attempted: {jail.attempts}")


class Canary:
    """A TCP listener on loopback that counts every connection it accepts."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.bind((host, port))
        except OSError:
            self.socket.close()
            raise
        self.socket.listen(64)
        self.socket.settimeout(0.1)
        self.host, self.port = host, self.socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="canary")
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join(2)
        self.socket.close()


@pytest.fixture
def canary() -> Iterator[Callable[..., Canary]]:
    """Return a factory of canary listeners on loopback (closed after the test)."""
    made: list[Canary] = []

    def make(host: str = "127.0.0.1", port: int = 0) -> Canary:
        made.append(Canary(host, port))
        return made[-1]

    yield make
    for listener in made:
        listener.close()


@functools.cache
def _shared_session() -> boto3.session.Session:
    import moto  # noqa: F401  (moto hooks sessions made after its import only)

    return boto3.session.Session()


@pytest.fixture
def fast_boto(monkeypatch) -> None:
    """Share one boto3 session (each new one loads the service models again, ~0.2 s)."""
    shared = _shared_session()
    monkeypatch.setattr(boto3.session, "Session", lambda *args, **kwargs: shared)


@pytest.fixture
def lambdas(fast_boto, lambdas):
    """Return the in-process Lambda stand-in, over the shared boto3 session."""
    return lambdas


@pytest.fixture
def api(lambdas, tmp_path):
    """Return a chalice.test.Client of the API whose invocations reach the real handlers."""
    from chalice.test import Client

    from app import app

    with Client(app, project_dir=str(tmp_path)) as client:
        yield client


@pytest.fixture
def generous_limits() -> RateLimits:
    """Raise every rate limit so that a fuzz run reaches the code behind them."""
    limits = RateLimits(1_000_000, 1_000_000, 1_000_000)
    object.__setattr__(get_settings(), "limits", limits)  # the cached settings of this test
    return limits


def fuzz_examples(default: int) -> int:
    """Return how many generated examples a fuzz test runs (SSLNOTIFY_FUZZ_EXAMPLES overrides)."""
    return FUZZ_EXAMPLES or default


def sent_messages() -> list:
    """Return what the emulated SES has sent."""
    from moto.ses.models import ses_backends

    return ses_backends["123456789012"]["us-east-1"].sent_messages


def table_items(key: str) -> list[dict]:
    """Return every item of one of sslnotify's tables."""
    table = aws.table(key)
    items, kwargs = [], {}
    while True:
        page = table.scan(**kwargs)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


FIGURES: dict[str, int] = {}


def record_figure(name: str, count: int) -> None:
    """Add to one of the figures printed at the end of the run (and quoted in SECURITY.md)."""
    FIGURES[name] = FIGURES.get(name, 0) + count


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the security figures of this run."""
    if FIGURES:
        terminalreporter.section("sslnotify security figures")
        for name, count in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {count}")


def emulated_items(key: str) -> list[str]:
    """Return one emulated table's items as sorted JSON text, read from moto's memory (fast)."""
    import json

    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends["123456789012"][get_settings().region]
    table = backend.tables[get_settings().table_name(key)]
    return sorted(
        json.dumps(item.to_json(), sort_keys=True, default=repr) for item in table.all_items()
    )


@pytest.fixture
def atomic_dynamodb(monkeypatch) -> None:
    """Make each emulated DynamoDB write atomic, as DynamoDB's are (moto's are not, under threads).

    Only the single operation is serialised: the application's own read-then-write
    sequences still interleave freely between threads.
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "get_item", "scan", "query"):
        original = getattr(DynamoDBBackend, name)

        def locked(self, *args, __original=original, **kwargs):
            with lock:
                return __original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)
