"""The floor: raw concurrent TLS handshakes to every endpoint, with no service around them."""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class FloorRun:
    """One pass over the endpoints: how long it took and how many handshakes succeeded."""

    concurrency: int
    seconds: float
    handshakes: int
    failures: int
    client_cpu: float = 0.0  # CPU seconds of this process during the pass
    server_cpu: float = 0.0  # CPU seconds of the endpoint servers during the pass


class _Grab(asyncio.Protocol):
    """Take the served chain once the handshake completes, then drop the connection."""

    def __init__(self, done: asyncio.Future):
        self.done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tls = transport.get_extra_info("ssl_object")
        chain = tls.get_unverified_chain() if tls else None
        # Abort: a polite close_notify exchange adds a round trip the probe does not need.
        transport.abort()
        if not self.done.done():
            self.done.set_result(chain)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed before the handshake"))


def client_context() -> ssl.SSLContext:
    """Return a client context that accepts any certificate (the probe judges it later)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _handshake(context: ssl.SSLContext, target: str, timeout: float) -> bool:
    host, _, port = target.rpartition(":")
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: _Grab(done), host, int(port), ssl=context)
            return bool(await done)
    except (OSError, ssl.SSLError, TimeoutError):
        return False


async def handshakes(targets: list[str], concurrency: int, timeout: float = 10.0) -> FloorRun:
    """Handshake with every target once, at most `concurrency` at a time."""
    context = client_context()
    queue = list(reversed(targets))
    ok = 0

    async def worker() -> None:
        nonlocal ok
        while queue:
            # Await first: `ok += await ...` would read `ok` before the await and lose counts.
            succeeded = await _handshake(context, queue.pop(), timeout)
            ok += succeeded

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(targets)))))
    seconds = time.perf_counter() - started
    return FloorRun(concurrency, seconds, ok, len(targets) - ok)


def measure(
    targets: list[str],
    server_pids: list[int] = (),
    concurrencies: tuple[int, ...] = (250, 500, 1000),
) -> FloorRun:
    """Return the fastest pass over a few concurrency bounds (the floor is the best we can do).

    Each pass also notes the CPU seconds it took, here and in the servers `server_pids`.
    """
    runs = []
    for concurrency in concurrencies:
        before = _cpu(os.getpid()), sum(_cpu(pid) for pid in server_pids)
        run = asyncio.run(handshakes(targets, concurrency))
        client = _cpu(os.getpid()) - before[0]
        server = sum(_cpu(pid) for pid in server_pids) - before[1]
        runs.append(replace(run, client_cpu=client, server_cpu=server))
    return min(runs, key=lambda run: run.seconds)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
