"""A TCP connection that runs one TLS handshake over memory BIOs, only to read the served chain.

asyncio's own TLS transport (start_tls) is built for a whole session: a 256 KiB read buffer, flow
control and an application transport per connection. A probe needs only the handshake, then
drops the connection, so this does just that; it is most of the probe's CPU per target.
`open_connection(host, port)` stands in for asyncio.open_connection in the probe: the object it
returns offers the part of StreamWriter the probe uses (start_tls, get_extra_info, transport).
"""

from __future__ import annotations

import asyncio
import ssl


class HandshakeConnection(asyncio.Protocol):
    """One TCP connection; `await start_tls(context, server_hostname)` runs the TLS handshake."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._done: asyncio.Future | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = transport  # type: ignore[assignment]

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | bytes | None) -> None:
        """Run the client handshake; raise ssl.SSLError or ConnectionError when it fails."""
        self._done = asyncio.get_running_loop().create_future()
        if server_hostname is not None and server_hostname.isascii():
            # Already A-labels: as bytes, ssl skips its pure-Python IDNA codec (and its import).
            server_hostname = server_hostname.encode("ascii")
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_hostname
        )
        self._step()
        await self._done

    def get_extra_info(self, name: str, default=None):
        """Return the SSLObject for "ssl_object", else what the transport says."""
        if name == "ssl_object":
            return self._tls
        return self.transport.get_extra_info(name, default) if self.transport else default

    def data_received(self, data: bytes) -> None:
        """Feed the server's bytes to the handshake (anything before or after it is ignored)."""
        if self._tls is not None and not self._finished:
            self._incoming.write(data)
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
        except ssl.SSLWantReadError:
            finished = False
        except (ssl.SSLError, ValueError) as error:
            self._flush()  # the alert the client owes the server
            self._fail(error)
            return
        if finished:
            # The chain is in hand. TLS 1.3 leaves the client's Finished to send: it is not
            # sent, the probe drops the connection (one write less here, less for the server).
            if not self._done.done():
                self._done.set_result(None)
            return
        self._flush()

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending and self.transport is not None and not self.transport.is_closing():
            self.transport.write(pending)


async def open_connection(host: str, port: int) -> tuple[None, HandshakeConnection]:
    """Connect over TCP; return (None, connection) in the shape of asyncio.open_connection."""
    loop = asyncio.get_running_loop()
    _transport, connection = await loop.create_connection(HandshakeConnection, host, port)
    return None, connection
