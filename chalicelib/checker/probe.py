"""Network only: resolve, connect, handshake, and return the chain the server presented as Evidence.

The probe never verifies anything itself: it accepts any chain (expired, self-signed, weak) so the
evaluation can say what is wrong with it. One timeout bounds the whole probe, DNS included.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chalicelib.checker import handshake, ssrf, starttls
from chalicelib.checker.targets import TLS, Target
from chalicelib.errors import TargetNotAllowed

if TYPE_CHECKING:
    from chalicelib.checker.revocation import Revocation

DNS_ERROR = "dns_error"
CONNECT_ERROR = "connect_error"
TIMEOUT = "timeout"
TLS_ERROR = "tls_error"

# What an OpenSSL reason means, for a person reading the result.
_TLS_REASONS = {
    "WRONG_VERSION_NUMBER": "the server did not answer with TLS (is this a plain HTTP port?)",
    "UNSUPPORTED_PROTOCOL": "the server only speaks an obsolete TLS version",
    "TLSV1_ALERT_PROTOCOL_VERSION": "the server only speaks a TLS version this checker refuses",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the server refused the TLS handshake",
    "TLSV1_UNRECOGNIZED_NAME": "the server does not serve this host name (SNI)",
    "TLSV1_ALERT_INTERNAL_ERROR": "the server failed during the TLS handshake",
    "NO_SHARED_CIPHER": "the server shares no cipher with this checker",
}


@dataclass(frozen=True)
class Evidence:
    """What a probe saw: the served chain (DER, leaf first), or the failure that stopped it."""

    target: Target
    checked_at: datetime
    chain: tuple[bytes, ...] = ()
    address: str | None = None
    error: str | None = None  # dns_error, connect_error, timeout or tls_error
    message: str | None = None
    refused: bool = False  # the SSRF guard refused the target (error is connect_error then)
    tls_version: str | None = None
    stapled: bytes | None = None  # the OCSP response the server stapled in the handshake
    revocation: Revocation | None = None  # looked up after the probe (check.gather_evidence)

    @property
    def ok(self) -> bool:
        """Tell whether a chain was obtained."""
        return self.error is None and bool(self.chain)


def _failure(target: Target, checked_at: datetime, error: str, message: str, **extra) -> Evidence:
    return Evidence(target=target, checked_at=checked_at, error=error, message=message, **extra)


def _tls_message(error: handshake.HandshakeFailed) -> str:
    reason = getattr(error, "reason", None) or ""
    if reason in _TLS_REASONS:
        return _TLS_REASONS[reason]
    detail = reason.replace("_", " ").lower() if reason else str(error)
    return f"the TLS handshake failed ({detail})"


def _connect_message(error: OSError, address: str, port: int) -> str:
    if error.errno in (errno.EMFILE, errno.ENFILE):
        # A local limit (ulimit -n), not the server's fault: say so, never blame the target.
        return "this machine ran out of open files (ulimit -n), so the server was not reached"
    where = f"{address} port {port}" if ":" not in address else f"[{address}]:{port}"
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused by {where} (nothing listens there)"
    reason = error.strerror or str(error) or type(error).__name__
    return f"cannot connect to {where}: {reason}"


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():
        return  # the probe timed out meanwhile
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


async def in_daemon_thread(function, *args):
    """Run a blocking call (getaddrinfo) in a daemon thread and await its result.

    Not the loop's default executor: asyncio.run() and interpreter exit both wait for that
    executor's threads, so a hung DNS lookup would outlast the timeout that abandoned it.
    """
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def work() -> None:
        try:
            result, error = function(*args), None
        except BaseException as failure:  # handed to the awaiting coroutine
            result, error = None, failure
        with contextlib.suppress(RuntimeError):  # the loop may be closed by now
            loop.call_soon_threadsafe(_settle, future, result, error)

    threading.Thread(target=work, name="sslnotify-dns", daemon=True).start()
    return await future


async def _addresses(target: Target, ip: str | None, allow_private: bool, resolver) -> list[str]:
    if ip is not None:
        if not allow_private:
            ssrf.check_address(ip)
        return [ip]
    guard = ssrf.resolve if allow_private else ssrf.resolve_allowed
    if target.is_ip:
        return guard(target, resolver)  # no lookup needed
    addresses = await in_daemon_thread(guard, target, resolver)
    if not addresses:
        raise ssrf.ResolutionFailed(f"could not resolve {target.host}: it has no address")
    return addresses


async def _connect(addresses: list[str], port: int, stream: bool = False):
    """Connect to the first address that answers, in order; raise _ConnectFailed if none does.

    A STARTTLS dialogue needs a stream (`stream`); a plain TLS probe needs only the handshake,
    which handshake.open_connection runs with far less work per connection.
    """
    message = "no address to connect to"
    for address in addresses:
        try:
            if stream:
                reader, writer = await asyncio.open_connection(address, port)
                return address, reader, writer
            return address, None, await handshake.open_connection(address, port)
        except OSError as error:
            message = _connect_message(error, address, port)
    raise _ConnectFailed(message)


class _ConnectFailed(Exception):
    pass


async def probe(
    target: Target,
    *,
    ip: str | None = None,
    timeout: float = 10.0,
    allow_private: bool = True,
    resolver: ssrf.Resolver | None = None,
    deadline: float | None = None,
) -> Evidence:
    """Fetch the chain `target` presents; connect to `ip` instead of resolving when given.

    With allow_private False the SSRF guard approves the addresses first and the connection goes
    to exactly those. Never raises for a network failure: the failure is in the Evidence.
    `deadline` (loop time) ends the probe earlier than `timeout` would: the multi-address
    probe passes the end of its one overall timeout.
    """
    checked_at = datetime.now(UTC)
    phase = "resolving the name"
    address: str | None = None
    writer = stream = None
    limit = deadline if deadline is not None else asyncio.get_running_loop().time() + timeout
    try:
        async with asyncio.timeout_at(limit):
            addresses = await _addresses(target, ip, allow_private, resolver)
            phase = "connecting"
            address, reader, writer = await _connect(
                addresses, target.port, stream=target.protocol != TLS
            )
            if target.protocol != TLS:
                phase = f"asking the server to start TLS ({target.protocol})"
                await starttls.negotiate(target.protocol, reader, writer, target.host_ascii)
                # The same handshake as plain TLS, over the connection the dialogue used. The
                # stream writer is kept (`stream`): collected, it would close the transport.
                stream, writer = writer, handshake.adopt(writer.transport)
            phase = "waiting for the TLS handshake"
            served = await writer.handshake(target.host_ascii)
    except TargetNotAllowed as error:
        return _failure(target, checked_at, CONNECT_ERROR, error.message, refused=True)
    except ssrf.ResolutionFailed as error:
        return _failure(target, checked_at, DNS_ERROR, error.message)
    except TimeoutError:
        message = f"no answer within {timeout:g} s while {phase}"
        return _failure(target, checked_at, TIMEOUT, message, address=address)
    except _ConnectFailed as error:
        return _failure(target, checked_at, CONNECT_ERROR, str(error))
    except starttls.StartTLSFailed as error:
        return _failure(target, checked_at, TLS_ERROR, error.message, address=address)
    except handshake.HandshakeFailed as error:
        return _failure(target, checked_at, TLS_ERROR, _tls_message(error), address=address)
    except (ConnectionError, EOFError, asyncio.IncompleteReadError):
        message = "the server closed the connection during the TLS handshake"
        return _failure(target, checked_at, TLS_ERROR, message, address=address)
    except OSError as error:
        message = f"the connection failed during the TLS handshake ({error})"
        return _failure(target, checked_at, TLS_ERROR, message, address=address)
    finally:
        for end in (writer, stream):  # one transport (twice with STARTTLS): abort is idempotent
            if end is not None:
                end.transport.abort()
    if not served.chain:
        return _failure(target, checked_at, TLS_ERROR, "the server sent no certificate")
    return Evidence(
        target=target,
        checked_at=checked_at,
        chain=served.chain,
        address=address,
        tls_version=served.version,
        stapled=served.stapled,
    )
