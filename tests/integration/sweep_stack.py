"""Fixtures and helpers for the daily sweep's tests: the in-process stack, subscriptions, mail.

Import the fixtures into a test module: `from tests.integration.sweep_stack import stack`.
"""

from __future__ import annotations

import email
import email.policy
import functools
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.config import get_settings, reset_settings
from chalicelib.invoke import invoke
from tests.certs import Issued, TestPKI, make_pki, pem_bundle
from tests.inprocess_lambda import InProcessLambda
from tests.tls_servers import TLSServer

DAY1, DAY2, DAY3 = "2026-11-20", "2026-11-21", "2026-11-22"


@pytest.fixture(scope="session")
def sweep_pki() -> TestPKI:
    """Return a root and an intermediate for the sweep's servers."""
    return make_pki(name="sslnotify Sweep Test")


@pytest.fixture(scope="session")
def sweep_ca_bundle(sweep_pki, tmp_path_factory) -> str:
    """Write the test root to a file once per session (the trust store caches it by path)."""
    path = tmp_path_factory.mktemp("ca") / "root.pem"
    path.write_bytes(pem_bundle(sweep_pki.root))
    return str(path)


def sent_messages() -> list[EmailMessage]:
    """Return every email moto's SES accepted, parsed."""
    from moto.ses.models import ses_backends

    backend = ses_backends["123456789012"]["us-east-1"]
    return [
        email.message_from_string(message.raw_data, policy=email.policy.default)
        for message in backend.sent_messages
        if hasattr(message, "raw_data")
    ]


def text_of(message: EmailMessage) -> str:
    """Return the plain-text body of a parsed email."""
    return message.get_body(preferencelist=("plain",)).get_content()


@dataclass
class Stack:
    """The in-process service: subscribe people, run a day's sweep, read the mail back."""

    lambdas: InProcessLambda
    pki: TestPKI
    servers: list[TLSServer] = field(default_factory=list)

    def serve(self, days_left: float, **options: Any) -> TLSServer:
        """Start a loopback server whose leaf (for 127.0.0.1) expires in `days_left` days."""
        leaf = self.leaf(days_left, **options)
        server = TLSServer([leaf, self.pki.intermediate])
        self.servers.append(server)
        return server

    def leaf(self, days_left: float, **options: Any) -> Issued:
        """Issue a leaf for 127.0.0.1 expiring in `days_left` days (plus an hour of slack)."""
        now = datetime.now(UTC).replace(microsecond=0)
        options.setdefault("dns", ["localhost"])
        options.setdefault("ips", ["127.0.0.1"])
        return self.pki.leaf(now=now, not_after=now + timedelta(days=days_left, hours=1), **options)

    def renew(self, server: TLSServer, days_left: float) -> None:
        """Make a running server present a fresh certificate from its next handshake on."""
        leaf = self.leaf(days_left)
        # Every handshake of the server uses this one SSLContext: reload its chain in place.
        context = server._server._ssl_context
        with tempfile.TemporaryDirectory() as directory:
            chain_path, key_path = Path(directory, "chain.pem"), Path(directory, "key.pem")
            chain_path.write_bytes(pem_bundle(leaf, self.pki.intermediate))
            key_path.write_bytes(leaf.key_pem)
            context.load_cert_chain(chain_path, key_path)

    def subscribe(self, address: str, target: str, tolerance: str = "30") -> None:
        """Subscribe and confirm through the data function, as the API does."""
        answer = invoke(
            "data",
            {"action": "subscribe", "email": address, "target": target, "tolerance": tolerance},
            wait=True,
        )
        invoke("data", {"action": "confirm", "email": address, "token": answer["token"]}, True)

    def suppress(self, address: str, reason: str = "bounce") -> None:
        """Put an address on the suppression list."""
        invoke("data", {"action": "suppress", "email": address, "reason": reason}, wait=True)

    def sweep(self, day: str) -> None:
        """Run one day's sweep the way EventBridge does, and everything it sets off."""
        invoke("cron", {"action": "sweep", "day": day})
        self.lambdas.drain()

    def mail_to(self, address: str) -> list[EmailMessage]:
        """Return the emails sent to one address, oldest first."""
        return [message for message in sent_messages() if message["To"] == address]

    def close(self) -> None:
        """Stop the servers."""
        for server in self.servers:
            server.close()


@functools.cache
def _shared_session() -> boto3.session.Session:
    return boto3.session.Session()


@pytest.fixture
def stack(monkeypatch, sweep_pki, sweep_ca_bundle, lambdas):
    """Return the in-process stack with private targets allowed and the test root trusted."""
    # chalicelib.aws builds a new boto3 Session per client, and each loads the service
    # models again (~0.2 s): share one across tests to keep them fast.
    shared = _shared_session()
    monkeypatch.setattr(boto3.session, "Session", lambda *args, **kwargs: shared)
    monkeypatch.setenv("SSLNOTIFY_ALLOW_PRIVATE_TARGETS", "1")
    monkeypatch.setenv("SSLNOTIFY_CA_BUNDLE", sweep_ca_bundle)
    monkeypatch.setenv("SSLNOTIFY_CHECK_TIMEOUT", "3")
    monkeypatch.setenv("SSLNOTIFY_SES_RATE", "1000")
    reset_settings()
    assert get_settings().allow_private_targets
    running = Stack(lambdas, sweep_pki)
    yield running
    running.close()
    # Undo the patched aws.client now: emulated_aws's teardown resets the real one's cache.
    monkeypatch.undo()
