"""Talk a mail, directory or database server into TLS (STARTTLS and its kin) before the handshake.

Each negotiation speaks just enough of its protocol to ask for TLS and to hear yes or no. The
server is a stranger: every read is capped (a line, and the whole conversation), and the probe's
overall timeout bounds the time, so an endless banner or a server that drips bytes cannot hold
the checker. Anything other than a clear yes raises StartTLSFailed with a sentence saying why.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

MAX_LINE = 4096  # bytes; SMTP allows 512, generous for the others
MAX_BYTES = 64 * 1024  # everything a server may send before agreeing to TLS
EHLO_NAME = "sslnotify.invalid"  # the checker has no mail domain of its own to announce
NOT_OFFERED = "the server does not offer STARTTLS"

_STREAMS = "http://etherx.jabber.org/streams"
_XMPP_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
# LDAPMessage { messageID 1, extendedReq [APPLICATION 23] { requestName [0] StartTLS OID } }
_LDAP_OID = b"1.3.6.1.4.1.1466.20037"
_LDAP_START_TLS = bytes([0x30, 0x1D, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16]) + _LDAP_OID
_LDAP_RESULTS = {
    1: "operationsError",
    2: "protocolError",
    51: "busy",
    52: "unavailable",
    53: "unwillingToPerform",
    80: "other",
}
_POSTGRES_SSL_REQUEST = struct.pack("!II", 8, 80877103)


class StartTLSFailed(Exception):
    """The server did not agree to TLS: it does not offer it, refused it, or answered nonsense."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _quote(text: str | bytes) -> str:
    """Return a server's words fit to repeat in a result: printable, one line, short."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    shown = "".join(c if c.isprintable() else " " for c in text).strip()
    return repr(shown[:120] + ("…" if len(shown) > 120 else ""))


class _Wire:
    """The plain-text conversation before TLS, read with caps on each line and on the total."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader = reader
        self._writer = writer
        self._buffer = bytearray()
        self._received = 0

    async def send(self, data: bytes) -> None:
        """Send a command."""
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as error:
            raise StartTLSFailed(f"the connection failed before TLS began ({error})") from error

    async def _fill(self) -> None:
        try:
            chunk = await self._reader.read(4096)
        except OSError as error:
            raise StartTLSFailed(f"the connection failed before TLS began ({error})") from error
        if not chunk:
            raise StartTLSFailed("the server closed the connection before agreeing to TLS")
        self._received += len(chunk)
        if self._received > MAX_BYTES:
            raise StartTLSFailed(
                f"the server sent more than {MAX_BYTES // 1024} KiB without agreeing to TLS"
            )
        self._buffer += chunk

    async def line(self) -> str:
        """Return the next line, without its CR LF."""
        while True:
            end = self._buffer.find(b"\n", 0, MAX_LINE + 1)
            if end >= 0:
                line = bytes(self._buffer[:end]).rstrip(b"\r")
                del self._buffer[: end + 1]
                return line.decode("utf-8", "replace")
            if len(self._buffer) > MAX_LINE:
                raise StartTLSFailed(f"the server sent a line longer than {MAX_LINE} bytes")
            await self._fill()

    async def exactly(self, count: int) -> bytes:
        """Return the next `count` bytes."""
        while len(self._buffer) < count:
            await self._fill()
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    async def some(self) -> bytes:
        """Return whatever arrived next (at least one byte)."""
        if not self._buffer:
            await self._fill()
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def require_quiet(self) -> None:
        """Refuse bytes that came after the server's yes: they would be read as if encrypted."""
        if self._buffer:
            raise StartTLSFailed("the server sent unexpected data after agreeing to TLS")


def _code(line: str, protocol: str) -> tuple[int, bool]:
    """Read an SMTP/FTP reply line's code and whether more lines follow ("250-")."""
    if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in ("", " ", "-"):
        raise StartTLSFailed(f"the server's answer is not {protocol}: {_quote(line)}")
    return int(line[:3]), line[3:4] == "-"


async def _smtp_reply(wire: _Wire) -> tuple[int, list[str]]:
    """Read one SMTP reply, every line of a multi-line one ("250-…" up to "250 …")."""
    lines = []
    while True:
        line = await wire.line()
        code, more = _code(line, "SMTP")
        lines.append(line[4:])
        if not more:
            return code, lines


async def _smtp(wire: _Wire, host: str) -> None:
    code, lines = await _smtp_reply(wire)
    if code != 220:
        raise StartTLSFailed(f"the server refused the connection: {code} {_quote(lines[-1])}")
    await wire.send(f"EHLO {EHLO_NAME}\r\n".encode())
    code, lines = await _smtp_reply(wire)
    if code != 250:
        raise StartTLSFailed(f"{NOT_OFFERED} (it answered EHLO with {code} {_quote(lines[-1])})")
    keywords = {line.split()[0].upper() for line in lines[1:] if line.split()}
    if "STARTTLS" not in keywords:
        raise StartTLSFailed(f"{NOT_OFFERED} (its EHLO answer does not list it)")
    await wire.send(b"STARTTLS\r\n")
    code, lines = await _smtp_reply(wire)
    if code != 220:
        raise StartTLSFailed(f"the server refused STARTTLS: {code} {_quote(lines[-1])}")


async def _ftp_reply(wire: _Wire) -> tuple[int, str]:
    """Read one FTP reply; a multi-line one ends at a line with the same code and a space."""
    first = await wire.line()
    code, more = _code(first, "FTP")
    last = first
    while more:
        last = await wire.line()
        more = not (last[:3] == first[:3] and last[3:4] in (" ", ""))
    return code, last[4:]


async def _ftp(wire: _Wire, host: str) -> None:
    code, text = await _ftp_reply(wire)
    while 100 <= code < 200:  # "120 ready in a minute": the real greeting follows
        code, text = await _ftp_reply(wire)
    if code != 220:
        raise StartTLSFailed(f"the server refused the connection: {code} {_quote(text)}")
    await wire.send(b"AUTH TLS\r\n")
    code, text = await _ftp_reply(wire)
    if code != 234:
        raise StartTLSFailed(f"{NOT_OFFERED} (it answered AUTH TLS with {code} {_quote(text)})")


async def _imap_tagged(wire: _Wire, tag: str) -> tuple[str, list[str]]:
    """Read up to the tagged answer of a command: its status line and the untagged lines."""
    untagged = []
    while True:
        line = await wire.line()
        if line.startswith(f"{tag} "):
            return line[len(tag) + 1 :], untagged
        if not line.startswith(("* ", "+")):
            raise StartTLSFailed(f"the server's answer is not IMAP: {_quote(line)}")
        untagged.append(line)


async def _imap(wire: _Wire, host: str) -> None:
    greeting = await wire.line()
    word = greeting.split(" ", 2)[1].upper() if greeting.startswith("* ") else ""
    if word == "BYE":
        raise StartTLSFailed(f"the server refused the connection: {_quote(greeting)}")
    if word == "PREAUTH":
        raise StartTLSFailed(f"{NOT_OFFERED} (it pre-authenticated the connection)")
    if word != "OK":
        raise StartTLSFailed(f"the server's greeting is not IMAP: {_quote(greeting)}")
    await wire.send(b"a1 CAPABILITY\r\n")
    status, untagged = await _imap_tagged(wire, "a1")
    capabilities = {
        word.upper()
        for line in untagged
        if line.upper().startswith("* CAPABILITY ")
        for word in line.split()[2:]
    }
    if not status.upper().startswith("OK") or "STARTTLS" not in capabilities:
        raise StartTLSFailed(f"{NOT_OFFERED} (its CAPABILITY answer does not list it)")
    await wire.send(b"a2 STARTTLS\r\n")
    status, _ = await _imap_tagged(wire, "a2")
    if not status.upper().startswith("OK"):
        raise StartTLSFailed(f"the server refused STARTTLS: {_quote(status)}")


async def _pop3(wire: _Wire, host: str) -> None:
    greeting = await wire.line()
    if greeting.startswith("-ERR"):
        raise StartTLSFailed(f"the server refused the connection: {_quote(greeting)}")
    if not greeting.startswith("+OK"):
        raise StartTLSFailed(f"the server's greeting is not POP3: {_quote(greeting)}")
    await wire.send(b"STLS\r\n")
    answer = await wire.line()
    if answer.startswith("-ERR"):
        raise StartTLSFailed(f"{NOT_OFFERED} (it answered STLS with {_quote(answer)})")
    if not answer.startswith("+OK"):
        raise StartTLSFailed(f"the server's answer is not POP3: {_quote(answer)}")


class _XMPPStream:
    """The server's side of an XMPP stream, read element by element under the stream root."""

    def __init__(self, wire: _Wire):
        self._wire = wire
        self._parser = XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._seen = b""
        self._events: deque = deque()

    async def next_element(self) -> Element:
        """Return the next complete child of <stream:stream> (features, proceed, error...)."""
        while True:
            while self._events:
                event, element = self._events.popleft()
                if event == "start":
                    self._depth += 1
                    if self._depth == 1 and element.tag != f"{{{_STREAMS}}}stream":
                        raise StartTLSFailed("the server's answer is not an XMPP stream")
                    continue
                self._depth -= 1
                if self._depth == 0:
                    raise StartTLSFailed("the server closed the XMPP stream")
                if self._depth == 1:
                    return element
            data = await self._wire.some()
            # RFC 6120 forbids DTDs, entities and comments in a stream; refuse them unparsed.
            self._seen = self._seen[-1:] + data
            if b"<!" in self._seen:
                raise StartTLSFailed("the server's XMPP stream carries a DTD or comment")
            try:
                self._parser.feed(data)
                # A parse error may surface among the events rather than from feed().
                self._events.extend(self._parser.read_events())
            except ParseError as error:
                raise StartTLSFailed(f"the server's answer is not XML ({error})") from error


async def _xmpp(wire: _Wire, host: str) -> None:
    header = (
        f"<?xml version='1.0'?><stream:stream to='{host}' version='1.0' xmlns='jabber:client' "
        f"xmlns:stream='{_STREAMS}'>"
    )
    await wire.send(header.encode())
    stream = _XMPPStream(wire)
    while True:
        element = await stream.next_element()
        if element.tag == f"{{{_STREAMS}}}error":
            condition = element[0].tag.rpartition("}")[2] if len(element) else "unknown"
            raise StartTLSFailed(f"the server refused the stream ({_quote(condition)})")
        if element.tag == f"{{{_STREAMS}}}features":
            break
    if element.find(f"{{{_XMPP_TLS}}}starttls") is None:
        raise StartTLSFailed(f"{NOT_OFFERED} (its stream features do not list it)")
    await wire.send(f"<starttls xmlns='{_XMPP_TLS}'/>".encode())
    element = await stream.next_element()
    if element.tag == f"{{{_XMPP_TLS}}}failure":
        raise StartTLSFailed("the server refused STARTTLS (it answered <failure/>)")
    if element.tag != f"{{{_XMPP_TLS}}}proceed":
        raise StartTLSFailed(f"the server answered STARTTLS with {_quote(element.tag)}")


def _ber(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """Read one BER element (definite length) at `offset`: its tag, its value, the next offset."""
    if offset + 2 > len(data):
        raise ValueError("truncated")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 4 or offset + size > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[offset : offset + size], "big")
        offset += size
    if offset + length > len(data):
        raise ValueError("truncated")
    return tag, data[offset : offset + length], offset + length


async def _ldap_message(wire: _Wire) -> bytes:
    """Read one LDAPMessage (a BER SEQUENCE) whole."""
    head = await wire.exactly(2)
    if head[0] != 0x30:
        raise StartTLSFailed(f"the server's answer is not LDAP: {_quote(head)}")
    length = head[1]
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 4:
            raise StartTLSFailed("the server's LDAP answer has an invalid length")
        length = int.from_bytes(await wire.exactly(size), "big")
    if length > MAX_BYTES:
        raise StartTLSFailed(f"the server's LDAP answer is longer than {MAX_BYTES // 1024} KiB")
    return await wire.exactly(length)


async def _ldap(wire: _Wire, host: str) -> None:
    await wire.send(_LDAP_START_TLS)
    message = await _ldap_message(wire)
    try:
        id_tag, message_id, offset = _ber(message)
        op_tag, response, _ = _ber(message, offset)
        code_tag, code, offset = _ber(response)
        _, _matched, offset = _ber(response, offset)
        _, diagnostic, _ = _ber(response, offset)
    except ValueError:
        raise StartTLSFailed("the server's answer is not a readable LDAP response") from None
    if id_tag != 0x02 or op_tag != 0x78 or code_tag != 0x0A or len(code) != 1:
        raise StartTLSFailed("the server's answer is not an LDAP extended response")
    result = code[0]
    detail = f": {_quote(diagnostic)}" if diagnostic else ""
    if message_id == b"\x00":  # an unsolicited notice of disconnection
        raise StartTLSFailed(f"the server ended the LDAP session{detail}")
    if result == 2:  # protocolError: how a server answers an extended operation it lacks
        raise StartTLSFailed(f"{NOT_OFFERED} (LDAP result 2, protocolError{detail})")
    if result != 0:
        name = _LDAP_RESULTS.get(result, "error")
        raise StartTLSFailed(f"the server refused StartTLS (LDAP result {result}, {name}{detail})")


async def _postgres(wire: _Wire, host: str) -> None:
    await wire.send(_POSTGRES_SSL_REQUEST)
    answer = await wire.exactly(1)
    if answer == b"N":
        raise StartTLSFailed("the server does not offer TLS (it answered the SSL request with N)")
    if answer == b"E":
        raise StartTLSFailed("the server answered the SSL request with an error")
    if answer != b"S":
        raise StartTLSFailed(f"the server's answer is not PostgreSQL: {_quote(answer)}")


_NEGOTIATIONS: dict[str, Callable[[_Wire, str], Awaitable[None]]] = {
    "smtp": _smtp,
    "submission": _smtp,
    "imap": _imap,
    "pop3": _pop3,
    "ftp": _ftp,
    "xmpp": _xmpp,
    "ldap": _ldap,
    "postgres": _postgres,
}


async def negotiate(
    protocol: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
) -> None:
    """Ask the server at the other end of (reader, writer) to start TLS, speaking `protocol`.

    Returns when the server agreed and the TLS handshake may begin; raises StartTLSFailed
    otherwise. `host` (the A-label form) is named where the protocol names one (XMPP).
    """
    wire = _Wire(reader, writer)
    await _NEGOTIATIONS[protocol](wire, host)
    wire.require_quiet()
