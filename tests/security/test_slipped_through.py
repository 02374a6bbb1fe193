"""Regressions a review found untested (issue 13): each test fails if its guard is weakened.

- a token must match whole, not by its first characters;
- log masking must hide every address on a line, not only the first (SES's error
  messages name the sender first and the recipient second);
- the probe must close every connection it opens.
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import ssl
import time
import warnings
from unittest import mock

import pytest

from chalicelib import logs
from chalicelib.checker.probe import probe
from chalicelib.checker.targets import parse_target
from chalicelib.errors import SslnotifyError
from chalicelib.invoke import invoke
from chalicelib.subscription_data import same_token
from tests import tls_servers
from tests.security.conftest import table_items
from tests.tls_servers import TLSServer

ADDRESS = "ann@example.org"
TARGET = "example.com:443"


def _near_misses(token: str) -> list[str]:
    """Tokens sharing all but the last characters with `token`, or one character more."""
    last = "A" if token[-1] != "A" else "B"
    return [token[:-1], token[:-1] + last, token + "x", token[: len(token) // 2]]


def test_same_token_accepts_only_the_whole_token():
    token = "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4"
    assert same_token(token, token)
    for near in _near_misses(token):
        assert not same_token(token, near), near


def test_confirm_and_unsubscribe_refuse_a_token_with_the_right_prefix(lambdas, network_jail):
    """The data actions themselves: a long shared prefix confirms and deletes nothing."""
    pending = invoke("data", {"action": "subscribe", "email": ADDRESS, "target": TARGET}, True)
    token = pending["token"]
    for near in _near_misses(token):
        with pytest.raises(SslnotifyError):
            invoke("data", {"action": "confirm", "email": ADDRESS, "token": near}, True)
    assert table_items("subscriptions") == []
    invoke("data", {"action": "confirm", "email": ADDRESS, "token": token}, True)
    (subscription,) = table_items("subscriptions")
    for near in _near_misses(subscription["token"]):
        with pytest.raises(SslnotifyError):
            invoke("data", {"action": "unsubscribe", "email": ADDRESS, "token": near}, True)
    assert len(table_items("subscriptions")) == 1


SES_ERROR = (
    "An error occurred (MessageRejected) when calling the SendRawEmail operation: Email "
    "address is not verified. The following identities failed the check in region "
    "US-EAST-1: noreply@sslnotify.test, ann.smith+alerts@example.org"
)


def test_masking_hides_every_address_on_a_line():
    masked = logs.redact(SES_ERROR)
    assert "@" not in masked
    assert masked.count("<address>") == 2


def test_a_logged_ses_error_shows_neither_sender_nor_recipient():
    stream = io.StringIO()
    logger = logging.getLogger("tests.masking")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError(SES_ERROR)
        except RuntimeError:
            logs.get_logger("tests.masking").exception("notification not sent", kind="alert")
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert "noreply@" not in line and "ann.smith" not in line and "@" not in line


class ClosingCounter(TLSServer):
    """A TLS server that keeps each connection open and counts those the client closes."""

    def __init__(self, chain):
        self.closed_by_client = 0
        # TLS 1.2: the probe, which skips TLS 1.3's client Finished (checker/handshake.py),
        # still completes the server's handshake, so the handler below runs for every probe.
        serve = tls_servers.server_context

        def tls12(*args):
            context = serve(*args)
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            return context

        with mock.patch.object(tls_servers, "server_context", tls12):
            super().__init__(chain)

    async def _handle(self, reader, writer) -> None:
        try:
            data = await asyncio.wait_for(reader.read(1024), 30)
        except (ConnectionError, OSError):
            data = b""  # an abortive close (RST) is a close too
        except TimeoutError:
            data = None
        if data == b"":
            self.closed_by_client += 1
        writer.close()


def test_the_probe_closes_every_connection_it_opens(test_pki):
    """Twenty probes against a server that never hangs up: it sees twenty closes at once."""
    leaf = test_pki.leaf(ips=["127.0.0.1"])
    server = ClosingCounter([leaf, test_pki.intermediate])
    target = parse_target(server.address)
    probes = 20

    async def run() -> list:
        found = await asyncio.gather(*(probe(target, timeout=5) for _ in range(probes)))
        # Wait while this loop still runs: its selector keeps any connection the probe left
        # open alive, so only the probe's own close can reach the server here.
        deadline = time.monotonic() + 3
        while server.closed_by_client < probes and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        closed.append(server.closed_by_client)
        return found

    closed: list[int] = []

    # With the cycle collector off, a connection the probe forgets stays open (asyncio's
    # transports sit in reference cycles) instead of being closed by luck at a collection.
    # A forgotten one freed by reference counting is closed by StreamWriter.__del__, which
    # warns: that warning counts as a leak too.
    gc.collect()
    gc.disable()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            found = asyncio.run(run())
    finally:
        gc.enable()
        gc.collect()
        server.close()
    assert all(evidence.chain for evidence in found)
    assert server.connections == probes
    assert closed == [probes]
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
