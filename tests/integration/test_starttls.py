"""STARTTLS against loopback servers of every protocol: yes, no, nonsense, floods and drips."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from chalicelib.checker.check import CheckRequest, check_many
from chalicelib.checker.targets import parse_target
from chalicelib.checker.trust import TrustStore
from tests.certs import make_pki
from tests.starttls_servers import PROTOCOLS, StartTLSServer

NAME = "mail.test"


@pytest.fixture(scope="module")
def pki():
    return make_pki(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(scope="module")
def trust(pki):
    return TrustStore.from_pem(pki.root.pem)


@pytest.fixture(scope="module")
def chain(pki):
    return [pki.leaf(dns=[NAME]), pki.intermediate]


def loopback(host, port):
    return ["127.0.0.1"]  # every test name lives on loopback; no DNS involved


def check(text, trust, timeout=5.0):
    """Check one target typed as a user would, its name resolved to 127.0.0.1."""
    request = CheckRequest(target=parse_target(text))
    return asyncio.run(
        check_many([request], timeout=timeout, allow_private=True, trust=trust, resolver=loopback)
    )[0]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_good_certificate_over_starttls(starttls_server, chain, trust, protocol):
    server = starttls_server(protocol, chain)
    result = check(f"{protocol}://{NAME}:{server.port}", trust)
    assert (result.status, result.codes, result.protocol) == ("ok", (), protocol)
    assert server.agreed == 1
    assert result.to_dict()["protocol"] == protocol
    assert result.response.startswith(f"SSL certificate for {protocol}://{NAME}:{server.port} ")


def test_xmpp_names_the_host_in_its_stream_header(starttls_server, chain, trust):
    server = starttls_server("xmpp", chain)
    check(f"xmpp://{NAME}:{server.port}", trust)
    assert f"to='{NAME}'".encode() in server.seen


def test_smtp_says_ehlo_then_starttls(starttls_server, chain, trust):
    server = starttls_server("smtp", chain)
    check(f"smtp://{NAME}:{server.port}", trust)
    assert server.seen == b"EHLO sslnotify.invalid\r\nSTARTTLS\r\n"


NOT_OFFERED = {
    "smtp": "the server does not offer STARTTLS (its EHLO answer does not list it)",
    "submission": "the server does not offer STARTTLS (its EHLO answer does not list it)",
    "imap": "the server does not offer STARTTLS (its CAPABILITY answer does not list it)",
    "pop3": "the server does not offer STARTTLS (it answered STLS with '-ERR unknown command')",
    "ftp": "the server does not offer STARTTLS (it answered AUTH TLS with 502 "
    "'command not implemented')",
    "xmpp": "the server does not offer STARTTLS (its stream features do not list it)",
    "ldap": "the server does not offer STARTTLS (LDAP result 2, protocolError: "
    "'unsupported extended operation')",
    "postgres": "the server does not offer TLS (it answered the SSL request with N)",
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_without_starttls_is_a_clear_tls_error(starttls_server, chain, trust, protocol):
    server = starttls_server(protocol, chain, "not_offered")
    result = check(f"{protocol}://{NAME}:{server.port}", trust)
    assert (result.status, result.codes) == ("error", ("tls_error",))
    assert result.problems[0].message == NOT_OFFERED[protocol]
    assert result.protocol == protocol
    assert server.agreed == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_garbage_answer_is_a_tls_error(starttls_server, chain, trust, protocol):
    server = starttls_server(protocol, chain, "garbage")
    started = time.monotonic()
    result = check(f"{protocol}://{NAME}:{server.port}", trust)
    assert result.codes == ("tls_error",)
    assert time.monotonic() - started < 2.0  # judged at once, not left to the timeout
    assert "not" in result.problems[0].message or "refused" in result.problems[0].message


@pytest.mark.parametrize("behaviour", ["endless_line", "endless"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_endless_banner_is_bounded(starttls_server, chain, trust, protocol, behaviour):
    server = starttls_server(protocol, chain, behaviour)
    started = time.monotonic()
    result = check(f"{protocol}://{NAME}:{server.port}", trust, timeout=3.0)
    elapsed = time.monotonic() - started
    # A flood is cut by the caps on a line and on the whole conversation, not by the clock.
    assert result.codes == ("tls_error",), result.problems
    assert elapsed < 2.5


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dripping_server_ends_within_the_timeout(starttls_server, chain, trust, protocol):
    server = starttls_server(protocol, chain, "drip")
    started = time.monotonic()
    result = check(f"{protocol}://{NAME}:{server.port}", trust, timeout=1.0)
    elapsed = time.monotonic() - started
    assert elapsed < 1.8
    if protocol != "postgres":  # PostgreSQL's one-byte yes arrives before the first pause
        assert result.codes == ("timeout",)
        assert "asking the server to start TLS" in result.problems[0].message


def test_smtp_refusing_starttls_after_offering_it(chain, trust):
    class Refusing(StartTLSServer):
        async def _smtp(self, reader, writer):
            await self._say(writer, b"220 ready\r\n")
            await self._hear(reader)
            await self._say(writer, b"250-mail.test\r\n250 STARTTLS\r\n")
            await self._hear(reader)
            await self._say(writer, b"454 TLS not available due to temporary reason\r\n")
            return False

    with Refusing("smtp", chain) as server:
        result = check(f"smtp://{NAME}:{server.port}", trust)
    assert result.problems[0].message == (
        "the server refused STARTTLS: 454 'TLS not available due to temporary reason'"
    )


def test_postgres_data_after_yes_is_refused(chain, trust):
    # Bytes sent after 'S' would be taken as part of the TLS session (CVE-2021-23222's lesson).
    class Injecting(StartTLSServer):
        async def _postgres(self, reader, writer):
            await reader.readexactly(8)
            await self._say(writer, b"SE injected")
            return False

    with Injecting("postgres", chain) as server:
        result = check(f"postgres://{NAME}:{server.port}", trust)
    assert result.problems[0].message == "the server sent unexpected data after agreeing to TLS"


def test_plain_tls_target_is_not_negotiated(tls_server, chain, trust):
    server = tls_server(chain)
    result = check(f"{NAME}:{server.port}", trust)
    assert (result.status, result.protocol) == ("ok", "tls")
    assert "protocol" in result.to_dict()


def test_starttls_on_a_direct_tls_port_fails_clearly(tls_server, chain, trust):
    server = tls_server(chain)  # waits for a ClientHello, never greets
    result = check(f"smtp://{NAME}:{server.port}", trust, timeout=1.0)
    assert result.codes == ("timeout",)
    assert "asking the server to start TLS (smtp)" in result.problems[0].message
