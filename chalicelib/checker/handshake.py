"""A TCP connection that runs one TLS client handshake over memory BIOs, to read what is served.

The handshake is pyOpenSSL's, so it runs on the OpenSSL that cryptography ships (4.0 here)
rather than the one Python's ssl module was built against (3.0 on Debian 12 and in
python.org's macOS builds): the client side of a handshake costs about a third less CPU there,
and pyOpenSSL can ask the server to staple its OCSP response, which Python's ssl cannot
(CPython #88946). A probe needs only the handshake, then drops the connection: no session, no
read buffer, no flow control. A STARTTLS dialogue runs over asyncio's streams first; `adopt`
then takes its transport over for the handshake.

Nothing is verified here: the context accepts any chain (expired, self-signed, weak: security
level 0) so the evaluation can say what is wrong with it.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from functools import cache

from OpenSSL import SSL, crypto

_READ = 1 << 16  # bytes taken from the outgoing BIO at once (a ClientHello is well under this)


@dataclass(frozen=True)
class Served:
    """What a completed handshake showed: the chain (DER, leaf first), the version, OCSP staple."""

    chain: tuple[bytes, ...]
    version: str | None
    stapled: bytes | None = None  # the OCSP response the server stapled, if it did


class HandshakeFailed(Exception):
    """The TLS handshake failed; `reason` is OpenSSL's reason code (e.g. WRONG_VERSION_NUMBER)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _keep_staple(connection: SSL.Connection, stapled: bytes, _data) -> bool:
    # Called during the handshake with the stapled response (b"" when none): kept, never judged
    # here. Returning True lets the handshake go on whatever the server stapled.
    state = connection.get_app_data()
    if state is not None:
        state.stapled = bytes(stapled) or None
    return True


@cache
def client_context() -> SSL.Context:
    """Return the probe's context: verifies nothing, accepts weak certificates (built once)."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE)
    # Level 0, so a server with an RSA-1024 or SHA-1 certificate still hands it over and the
    # evaluation can name the weakness instead of a handshake failure hiding it.
    context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_ocsp_client_callback(_keep_staple)
    return context


def _reason(error: SSL.Error) -> HandshakeFailed:
    """Turn pyOpenSSL's error (a list of (library, function, reason) tuples) into ours."""
    entries = error.args[0] if error.args and isinstance(error.args[0], list) else []
    reasons = [str(entry[-1]) for entry in entries if isinstance(entry, tuple) and entry]
    text = reasons[-1] if reasons else (str(error) or type(error).__name__)
    return HandshakeFailed(text.upper().replace(" ", "_"), text)


def _server_name(host: str | None) -> bytes | None:
    """Return the SNI to send: a host name as ASCII bytes, never an IP address (RFC 6066)."""
    if not host or not host.isascii():
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    name = host.rstrip(".").encode("ascii")
    return name if name and b"\x00" not in name else None


class HandshakeConnection(asyncio.Protocol):
    """One TCP connection; `await handshake(server_hostname)` runs the TLS client handshake."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._tls: SSL.Connection | None = None
        self._done: asyncio.Future | None = None
        self.stapled: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = transport  # type: ignore[assignment]

    async def handshake(self, server_hostname: str | None) -> Served:
        """Run the client handshake; raise HandshakeFailed or ConnectionError when it fails."""
        self._done = asyncio.get_running_loop().create_future()
        tls = SSL.Connection(client_context(), None)
        tls.set_app_data(self)
        tls.set_connect_state()
        name = _server_name(server_hostname)
        if name is not None:
            tls.set_tlsext_host_name(name)
        tls.request_ocsp()
        self._tls = tls
        self._step()
        await self._done
        chain = tls.get_peer_cert_chain() or []
        return Served(
            chain=tuple(crypto.dump_certificate(crypto.FILETYPE_ASN1, cert) for cert in chain),
            version=tls.get_protocol_version_name(),
            stapled=self.stapled,
        )

    def data_received(self, data: bytes) -> None:
        """Feed the server's bytes to the handshake (anything after it is ignored)."""
        if self._tls is not None and not self._finished:
            self._tls.bio_write(data)
            self._step()

    def eof_received(self) -> bool:
        """The server closed its side: a handshake still running has failed."""
        self._fail(ConnectionResetError("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection ended: a handshake still running has failed."""
        self._fail(exc or ConnectionResetError("the connection was lost"))

    @property
    def _finished(self) -> bool:
        return self._done is not None and self._done.done()

    def _fail(self, error: BaseException) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(error)

    def _step(self) -> None:
        try:
            self._tls.do_handshake()
            finished = True
        except SSL.WantReadError:
            finished = False
        except (SSL.ZeroReturnError, SSL.SysCallError):
            self._fail(ConnectionResetError("the server closed the connection"))
            return
        except SSL.Error as error:
            self._flush()  # the alert the client owes the server
            self._fail(_reason(error))
            return
        if finished:
            # The chain is in hand. TLS 1.3 leaves the client's Finished to send: it is not
            # sent, the probe drops the connection (one write less here, less for the server).
            if not self._done.done():
                self._done.set_result(None)
            return
        self._flush()

    def _flush(self) -> None:
        while True:
            try:
                pending = self._tls.bio_read(_READ)
            except SSL.WantReadError:
                return
            if not pending or self.transport is None or self.transport.is_closing():
                return
            self.transport.write(pending)


async def open_connection(host: str, port: int) -> HandshakeConnection:
    """Connect over TCP; return the connection, ready for `handshake`."""
    loop = asyncio.get_running_loop()
    _transport, connection = await loop.create_connection(HandshakeConnection, host, port)
    return connection


def adopt(transport: asyncio.Transport) -> HandshakeConnection:
    """Take over a connection whose plain-text part is done (STARTTLS), for `handshake`."""
    connection = HandshakeConnection()
    connection.transport = transport
    transport.set_protocol(connection)
    return connection
