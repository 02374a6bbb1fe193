"""Loopback servers speaking just enough SMTP, IMAP, POP3, FTP, XMPP, LDAP, PostgreSQL for STARTTLS.

    StartTLSServer(protocol, chain, behaviour="good", host="127.0.0.1")

`behaviour` is one of BEHAVIOURS:
    good         offers STARTTLS, agrees, then does the TLS handshake serving `chain`
    not_offered  answers as a server without STARTTLS (or one that refuses it)
    garbage      answers "HTTP/1.1 400 Bad Request" whatever is asked
    endless_line sends bytes without a newline (or a length) forever
    endless      sends well-formed protocol lines forever (220- continuations, untagged lines...)
    drip         speaks the good script, one byte every 100 ms

Attributes: .port, .address, .connections, .agreed (times it said yes to TLS), .seen (what
the client sent before TLS, as bytes). Fixture `starttls_server(protocol, chain, behaviour)`.
Everything runs on the shared loop of tests/tls_servers.py and listens on loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

from tests.certs import Issued
from tests.tls_servers import _Server, server_context

PROTOCOLS = ("smtp", "submission", "imap", "pop3", "ftp", "xmpp", "ldap", "postgres")
BEHAVIOURS = ("good", "not_offered", "garbage", "endless_line", "endless", "drip")
GARBAGE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
STREAMS = "http://etherx.jabber.org/streams"
XMPP_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
LDAP_REQUEST = bytes.fromhex("301d02010177188016") + b"1.3.6.1.4.1.1466.20037"


def ldap_response(code: int, diagnostic: bytes = b"") -> bytes:
    """Return an LDAP ExtendedResponse (messageID 1) with a result code and diagnostic message."""
    body = bytes([0x0A, 1, code, 0x04, 0, 0x04, len(diagnostic)]) + diagnostic
    message = bytes([0x02, 1, 1, 0x78, len(body)]) + body
    return bytes([0x30, len(message)]) + message


# What each protocol sends forever when `endless`: valid lines (or elements) that never conclude.
ENDLESS = {
    "smtp": (b"220-", b"220-welcome to a banner that never ends\r\n"),
    "submission": (b"220-", b"220-welcome to a banner that never ends\r\n"),
    "ftp": (b"220-welcome\r\n", b"  and more welcome text, forever\r\n"),
    "imap": (b"* OK ready\r\n", b"* OK still here\r\n"),
    "pop3": (b"+OK ready\r\n", b"+OK and more\r\n"),
    "xmpp": (
        f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='{STREAMS}' "
        f"version='1.0'><stream:features>".encode(),
        b"<x xmlns='urn:example'/>",
    ),
    "ldap": (bytes([0x30, 0x84, 0x7F, 0xFF, 0xFF, 0xFF]), b"\x04\x00" * 64),
    "postgres": (b"S", b"S" * 64),
}


class StartTLSServer(_Server):
    """A plain-text server that upgrades to TLS the way `protocol` does."""

    def __init__(
        self,
        protocol: str,
        chain: Sequence[Issued],
        behaviour: str = "good",
        *,
        host: str = "127.0.0.1",
    ):
        if protocol not in PROTOCOLS or behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown protocol or behaviour: {protocol}, {behaviour}")
        super().__init__(host)
        self.protocol = protocol
        self.behaviour = behaviour
        self.agreed = 0
        self.seen = b""
        self._context = server_context(chain)
        self._loop.run(self._start(None))

    async def _say(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if self.behaviour == "drip":
            for index in range(len(data)):
                writer.write(data[index : index + 1])
                await writer.drain()
                await asyncio.sleep(0.1)
        else:
            writer.write(data)
            await writer.drain()

    async def _hear(self, reader: asyncio.StreamReader, until: bytes = b"\n") -> bytes:
        data = await reader.readuntil(until)
        self.seen += data
        return data

    async def _handle(self, reader, writer) -> None:
        self.connections += 1
        with contextlib.suppress(Exception):
            async with asyncio.timeout(15):
                if self.behaviour == "garbage":
                    await self._say(writer, GARBAGE)
                    await reader.read(1024)
                elif self.behaviour in ("endless_line", "endless"):
                    await self._flood(writer)
                elif await getattr(self, f"_{self.protocol}")(reader, writer):
                    # Counted before the handshake: the probe may leave before it settles here.
                    self.agreed += 1
                    await writer.start_tls(self._context)
                    await reader.read(1024)
        writer.close()

    async def _flood(self, writer) -> None:
        if self.behaviour == "endless_line":
            first, more = b"", b"A" * 1024
        else:
            first, more = ENDLESS[self.protocol]
        writer.write(first)
        while True:  # until the client hangs up (the write fails) or the handler times out
            writer.write(more)
            await writer.drain()
            await asyncio.sleep(0)

    @property
    def _offers(self) -> bool:
        return self.behaviour != "not_offered"

    async def _smtp(self, reader, writer) -> bool:
        await self._say(writer, b"220-mail.test ESMTP\r\n220 ready\r\n")
        await self._hear(reader)  # EHLO
        extensions = b"250-PIPELINING\r\n250-STARTTLS\r\n" if self._offers else b""
        await self._say(writer, b"250-mail.test greets you\r\n" + extensions + b"250 8BITMIME\r\n")
        await self._hear(reader)  # STARTTLS
        await self._say(writer, b"220 go ahead\r\n")
        return True

    _submission = _smtp

    async def _imap(self, reader, writer) -> bool:
        await self._say(writer, b"* OK IMAP4rev1 ready\r\n")
        await self._hear(reader)  # a1 CAPABILITY
        words = b"IMAP4rev1 STARTTLS LOGINDISABLED" if self._offers else b"IMAP4rev1 AUTH=PLAIN"
        await self._say(writer, b"* CAPABILITY " + words + b"\r\na1 OK done\r\n")
        await self._hear(reader)  # a2 STARTTLS
        await self._say(writer, b"a2 OK begin TLS now\r\n")
        return True

    async def _pop3(self, reader, writer) -> bool:
        await self._say(writer, b"+OK POP3 ready\r\n")
        await self._hear(reader)  # STLS
        if not self._offers:
            await self._say(writer, b"-ERR unknown command\r\n")
            return False
        await self._say(writer, b"+OK begin TLS\r\n")
        return True

    async def _ftp(self, reader, writer) -> bool:
        await self._say(writer, b"220-Welcome\r\n to the test FTP server\r\n220 ready\r\n")
        await self._hear(reader)  # AUTH TLS
        if not self._offers:
            await self._say(writer, b"502 command not implemented\r\n")
            return False
        await self._say(writer, b"234 AUTH TLS successful\r\n")
        return True

    async def _xmpp(self, reader, writer) -> bool:
        await self._hear(reader, b"streams'>")  # the client's stream header
        starttls = f"<starttls xmlns='{XMPP_TLS}'><required/></starttls>" if self._offers else ""
        await self._say(
            writer,
            (
                f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                f"xmlns:stream='{STREAMS}' id='s1' from='xmpp.test' version='1.0'>"
                f"<stream:features>{starttls}"
                "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>"
                "</mechanisms></stream:features>"
            ).encode(),
        )
        await self._hear(reader, b"/>")  # <starttls .../>
        await self._say(writer, f"<proceed xmlns='{XMPP_TLS}'/>".encode())
        return True

    async def _ldap(self, reader, writer) -> bool:
        self.seen += await reader.readexactly(len(LDAP_REQUEST))
        if not self._offers:
            await self._say(writer, ldap_response(2, b"unsupported extended operation"))
            return False
        await self._say(writer, ldap_response(0))
        return True

    async def _postgres(self, reader, writer) -> bool:
        self.seen += await reader.readexactly(8)
        await self._say(writer, b"S" if self._offers else b"N")
        return self._offers


@pytest.fixture
def starttls_server():
    """Start STARTTLS servers: `starttls_server(protocol, chain, behaviour="good")`."""
    servers: list[StartTLSServer] = []

    def start(protocol: str, chain: Sequence[Issued], behaviour: str = "good", **options):
        server = StartTLSServer(protocol, chain, behaviour, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
