"""STARTTLS negotiations against scripted server bytes, without sockets."""

from __future__ import annotations

import asyncio

import pytest

from chalicelib.checker import starttls
from chalicelib.checker.starttls import StartTLSFailed, negotiate


class Recorder:
    """A stand-in StreamWriter that keeps what the client sent."""

    def __init__(self):
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        pass


def talk(protocol: str, server_bytes: bytes, host: str = "mail.test") -> bytes:
    """Run a negotiation against everything the server says at once; return what was sent."""

    async def run() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(server_bytes)
        reader.feed_eof()
        writer = Recorder()
        await negotiate(protocol, reader, writer, host)
        return writer.sent

    return asyncio.run(run())


def refusal(protocol: str, server_bytes: bytes) -> str:
    with pytest.raises(StartTLSFailed) as caught:
        talk(protocol, server_bytes)
    return caught.value.message


def ldap_response(message_id: int, code: int, diagnostic: bytes = b"", long_form=False) -> bytes:
    body = bytes([0x0A, 1, code, 0x04, 0, 0x04, len(diagnostic)]) + diagnostic
    message = bytes([0x02, 1, message_id, 0x78, len(body)]) + body
    head = bytes([0x30, 0x82, 0, len(message)]) if long_form else bytes([0x30, len(message)])
    return head + message


@pytest.mark.parametrize(
    ("protocol", "server", "sent"),
    [
        (
            "smtp",
            b"220-first\r\n220 ready\r\n250-hi\r\n250-starttls\r\n250 SIZE 1\r\n220 go\r\n",
            b"EHLO sslnotify.invalid\r\nSTARTTLS\r\n",
        ),
        ("ftp", b"120 soon\r\n220-a\r\nfree text\r\n220 ok\r\n234 go\r\n", b"AUTH TLS\r\n"),
        (
            "imap",
            b"* OK [CAPABILITY IMAP4rev1] hi\r\n* CAPABILITY IMAP4rev1 StartTLS\r\na1 OK\r\n"
            b"* OK noise\r\na2 OK begin\r\n",
            b"a1 CAPABILITY\r\na2 STARTTLS\r\n",
        ),
        ("pop3", b"+OK hi\r\n+OK go\r\n", b"STLS\r\n"),
        ("ldap", ldap_response(1, 0, long_form=True), starttls._LDAP_START_TLS),
        ("postgres", b"S", b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
    ],
)
def test_a_yes_in_each_protocol(protocol, server, sent):
    assert talk(protocol, server) == sent


def test_ldap_request_is_the_start_tls_extended_operation():
    request = starttls._LDAP_START_TLS
    assert request[0] == 0x30 and request[1] == len(request) - 2
    assert request.endswith(b"1.3.6.1.4.1.1466.20037")


def test_xmpp_yes_and_the_stream_header_names_the_host():
    server = (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
        b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"
        b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    )
    sent = talk("xmpp", server, host="chat.example")
    assert b"to='chat.example'" in sent
    assert sent.endswith(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")


STREAM = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


@pytest.mark.parametrize(
    ("protocol", "server", "message"),
    [
        ("smtp", b"554 go away\r\n", "the server refused the connection: 554 'go away'"),
        ("smtp", b"220 hi\r\n500 what\r\n", "the server does not offer STARTTLS (it answered"),
        ("smtp", b"220 hi\r\n250-x\r\n250 STARTTLS\r\n454 later\r\n", "refused STARTTLS: 454"),
        ("smtp", b"220 hi\r\n2", "closed the connection before agreeing to TLS"),
        ("smtp", b"SSH-2.0-OpenSSH_9.6\r\n", "the server's answer is not SMTP"),
        ("imap", b"* PREAUTH welcome\r\n", "pre-authenticated"),
        ("imap", b"* BYE busy\r\n", "refused the connection"),
        ("imap", b"* OK hi\r\nnonsense\r\n", "not IMAP"),
        ("imap", b"* OK hi\r\n* CAPABILITY X STARTTLS\r\na1 OK\r\na2 NO\r\n", "refused STARTTLS"),
        ("pop3", b"-ERR busy\r\n", "refused the connection"),
        ("ftp", b"220 hi\r\n530 no\r\n", "does not offer STARTTLS"),
        ("ldap", ldap_response(1, 53, b"no"), "refused StartTLS (LDAP result 53, unwilling"),
        ("ldap", ldap_response(0, 52, b"bye"), "ended the LDAP session: 'bye'"),
        ("ldap", b"\x30\x85\x01\x02\x03\x04\x05", "invalid length"),
        ("ldap", b"\x30\x84\x00\x10\x00\x00", "longer than 64 KiB"),
        ("ldap", b"\x30\x03\x02\x01\x01", "not a readable LDAP response"),
        ("ldap", b"\x30\x03\x04\x01\x01", "not a readable LDAP response"),
        ("postgres", b"E", "answered the SSL request with an error"),
        ("postgres", b"SX", "unexpected data after agreeing to TLS"),
        ("xmpp", STREAM + b"<stream:error><host-unknown/></stream:error>", "'host-unknown'"),
        ("xmpp", STREAM + b"<stream:features/>", "does not offer STARTTLS"),
        ("xmpp", b"<html><body>hi</body></html>", "not an XMPP stream"),
        ("xmpp", b"<!DOCTYPE x [<!ENTITY a 'b'>]>" + STREAM, "DTD or comment"),
        ("xmpp", STREAM + b"<stream:features><", "closed the connection"),
        ("xmpp", STREAM + b"</stream:stream>", "closed the XMPP stream"),
        (
            "xmpp",
            STREAM + b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
            b"</stream:features><failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
            "refused STARTTLS",
        ),
    ],
)
def test_refusals_and_nonsense_say_what_happened(protocol, server, message):
    assert message in refusal(protocol, server)


def test_a_line_without_end_is_cut_at_the_cap():
    message = refusal("smtp", b"220" + b"x" * (starttls.MAX_LINE + 10))
    assert message == f"the server sent a line longer than {starttls.MAX_LINE} bytes"


def test_endless_continuation_lines_are_cut_at_the_total_cap():
    message = refusal("smtp", b"220-banner line\r\n" * 10_000)
    assert message == "the server sent more than 64 KiB without agreeing to TLS"


def test_server_words_are_quoted_printable_and_short():
    message = refusal("smtp", b"554 \x1b[31m<script>" + b"y" * 300 + b"\r\n")
    assert "\x1b" not in message and len(message) < 200
    assert "<script>" in message  # shown as text; the website and emails never render HTML
