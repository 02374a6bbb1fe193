"""Loopback TLS endpoints on many ports that delay every handshake, to model real round trips.

    with Endpoints.start(count=1000, latency=0.1, workdir=path) as endpoints:
        endpoints.targets          # ["127.0.0.1:40001", ...]
        endpoints.kinds            # {"127.0.0.1:40001": "good", ...}
        endpoints.ca_file          # the root to trust (SSLNOTIFY_CA_BUNDLE)

With `multi_share=0.2` a fifth of the endpoints also listen on 127.0.0.2 (same port, same
certificate) and their target is a name, `multi-<n>.bench.test:PORT`, that `names` maps to both
addresses (the benchmark installs a resolver for them; the machine's DNS is never involved).

With `crl=True` the leaves and the intermediate name CRL Distribution Points on a loopback HTTP
server that the first endpoint process also runs (a realistic CRL: 1,000 revoked serials, none
of the bench's own), so the sweep's revocation lookups have something to fetch.

Certificates are generated relative to now under one test PKI; a few certificates per kind are
shared by all endpoints of that kind (the client's work per handshake is the same). The servers
run in child processes (`python -m bench.endpoints`), so their CPU is not the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from tests.certs import make_crl, make_leaf, make_pki, pem_bundle

HOST = "127.0.0.1"
SECOND_HOST = "127.0.0.2"  # loopback too: the second address of the multi-address names
MULTI_DOMAIN = "bench.test"
# Out of every 100 endpoints 6 alert (a heavy morning): 3 expiring, 1 expired, 1 self-signed,
# 1 wrong name; first in the cycle, so that even a quick run of 30 has every kind.
MIX = ("expiring", "expired", "self_signed", "mismatch", "expiring", "expiring") + ("good",) * 94
ALERTING = frozenset({"expiring", "expired", "self_signed", "mismatch"})
# How long a server keeps a connection the client does not close.
IDLE_SECONDS = 15.0
CRL_PATHS = ("/intermediate.crl", "/root.crl")
REVOKED_ON_CRL = 1000  # serials listed on the intermediate's CRL (none is a bench leaf's)


def kind_of(index: int) -> str:
    """Return the certificate kind of the endpoint at an index (a fixed, repeating mix)."""
    return MIX[index % len(MIX)]


def is_multi(index: int, share: float) -> bool:
    """Say whether the endpoint at an index has two addresses (spread evenly, `share` of all)."""
    return int((index + 1) * share) > int(index * share)


def write_certificates(
    workdir: Path, now: datetime | None = None, crl_base: str | None = None
) -> dict[str, Path]:
    """Generate the root, and one chain + key per kind; return {kind: chain file} (+ "ca").

    With `crl_base` ("http://127.0.0.1:PORT") the certificates name CRLs there, and the CRL
    files are written too (keys "/intermediate.crl", "/root.crl").
    """
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    root_crl = [f"{crl_base}/root.crl"] if crl_base else []
    pki = make_pki(now, name="sslnotify Bench", intermediate_crl_urls=root_crl)
    # The wildcard covers the multi-address names, so they judge as their kind intends.
    names: dict = {"dns": ["localhost", f"*.{MULTI_DOMAIN}"], "ips": [HOST, SECOND_HOST]}
    if crl_base:
        names["crl_urls"] = [f"{crl_base}/intermediate.crl"]
    day = timedelta(days=1)
    leaves = {
        "good": pki.leaf(**names, not_before=now - 30 * day, not_after=now + 60 * day),
        "expiring": pki.leaf(**names, not_before=now - 83 * day, not_after=now + 7 * day),
        "expired": pki.leaf(**names, not_before=now - 100 * day, not_after=now - 10 * day),
        "self_signed": make_leaf(None, **names, now=now, not_after=now + 60 * day),
        "mismatch": pki.leaf(
            dns=["elsewhere.bench.test"],
            not_after=now + 60 * day,
            crl_urls=names.get("crl_urls", ()),
        ),
    }
    workdir.mkdir(parents=True, exist_ok=True)
    files = {"ca": workdir / "ca.pem"}
    files["ca"].write_bytes(pki.root.pem)
    for kind, leaf in leaves.items():
        chain = pem_bundle(leaf) if kind == "self_signed" else pem_bundle(leaf, pki.intermediate)
        files[kind] = workdir / f"{kind}.pem"
        files[kind].write_bytes(chain + leaf.key_pem)
    if crl_base:
        serials = [x509.random_serial_number() for _ in range(REVOKED_ON_CRL)]
        files["/intermediate.crl"] = workdir / "intermediate.crl"
        files["/intermediate.crl"].write_bytes(make_crl(pki.intermediate, serials=serials, now=now))
        files["/root.crl"] = workdir / "root.crl"
        files["/root.crl"].write_bytes(make_crl(pki.root, now=now))
    return files


def server_context(chain_file: Path) -> ssl.SSLContext:
    """Return a server context serving one chain (its key in the same file)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_file)
    # No TLS 1.3 session tickets: they cost the server CPU and no probe resumes a session.
    context.num_tickets = 0
    return context


@dataclass
class Stats:
    """What the servers saw since the last reading: connections, first opened, last closed.

    A server cannot count completed handshakes: a probe that aborts right after its side of
    the handshake resets the connection before the server reads the client's Finished.
    """

    connections: int = 0
    crl_requests: int = 0
    first_connection: float | None = None
    last_close: float | None = None

    def connected(self) -> None:
        """Count a connection (wall clock, so the parent can line it up with its own)."""
        self.connections += 1
        if self.first_connection is None:
            self.first_connection = time.time()

    def closed(self) -> None:
        """Note when a connection ended."""
        self.last_close = time.time()


class DelayedTLS(asyncio.Protocol):
    """Accept a connection, wait `latency` seconds, then run the TLS handshake and hold on."""

    def __init__(self, context: ssl.SSLContext, latency: float, stats: Stats):
        self.context = context
        self.latency = latency
        self.stats = stats
        self.transport: asyncio.BaseTransport | None = None
        self.task: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Leave the ClientHello in the kernel buffer until the handshake starts.
        transport.pause_reading()
        self.transport = transport
        self.stats.connected()
        self.task = asyncio.get_running_loop().create_task(self._handshake())

    async def _handshake(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.latency)
        try:
            tls = await loop.start_tls(
                self.transport, self, self.context, server_side=True, ssl_handshake_timeout=10
            )
        except (OSError, ssl.SSLError, TimeoutError):
            self.transport.abort()
            return
        if tls is not None:
            self.transport = tls
            loop.call_later(IDLE_SECONDS, tls.abort)

    def data_received(self, data: bytes) -> None:
        """Ignore application data: probes send none."""

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.closed()
        if self.task and not self.task.done():
            self.task.cancel()


async def _answer_crl(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    crls: dict[str, bytes],
    latency: float,
    stats: list[Stats],
) -> None:
    """Answer one plain HTTP GET for a CRL after `latency` seconds, then close."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode("ascii", "replace")
        stats[0].crl_requests += 1
        await asyncio.sleep(latency)
        body = crls.get(path)
        status = b"200 OK" if body is not None else b"404 Not Found"
        body = body or b""
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/pkix-crl\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
        )
        writer.write(body)
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, IndexError):
        pass
    finally:
        writer.close()


async def _serve(
    kinds: list[str],
    files: dict[str, str],
    latency: float,
    crl_port: int | None = None,
    multi: list[bool] | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    contexts = {kind: server_context(Path(files[kind])) for kind in set(kinds)}
    stats = [Stats()]
    servers = []
    if crl_port is not None:
        crls = {path: Path(files[path]).read_bytes() for path in CRL_PATHS}
        servers.append(
            await asyncio.start_server(
                lambda reader, writer: _answer_crl(reader, writer, crls, latency, stats),
                HOST,
                crl_port,
            )
        )

    ports = []
    for number, kind in enumerate(kinds):
        context = contexts[kind]
        server = await loop.create_server(
            lambda context=context: DelayedTLS(context, latency, stats[0]),
            HOST,
            0,
            backlog=1024,
        )
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
        if multi and multi[number]:
            # The same port on the second loopback address: one name, two addresses.
            servers.append(
                await loop.create_server(
                    lambda context=context: DelayedTLS(context, latency, stats[0]),
                    SECOND_HOST,
                    ports[-1],
                    backlog=1024,
                )
            )
    print(json.dumps({"ports": ports}), flush=True)

    def report() -> None:
        # SIGUSR1: print the stats since the last reading as one JSON line, and start afresh.
        print(json.dumps(asdict(stats[0])), flush=True)
        stats[0] = Stats()

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, report)
    await stop.wait()


def serve_main(argv: list[str] | None = None) -> None:
    """Serve the endpoints a parent asked for; print their ports as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.endpoints")
    parser.add_argument("--spec", required=True, help="JSON: {kinds: [...], files: {...}}")
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    asyncio.run(
        _serve(spec["kinds"], spec["files"], args.latency, spec.get("crl_port"), spec.get("multi"))
    )


@dataclass
class Endpoints:
    """Running endpoints: their targets, kinds and the root certificate to trust."""

    targets: list[str]
    kinds: dict[str, str]
    ca_file: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    # Every host:port a probe of all targets connects to (two for a multi-address name).
    addresses: list[str] = field(default_factory=list)
    # The multi-address names and their addresses, for the benchmark's resolver.
    names: dict[str, list[str]] = field(default_factory=dict)

    @property
    def alerting(self) -> set[str]:
        """Return the targets whose certificate should raise an alert."""
        return {target for target, kind in self.kinds.items() if kind in ALERTING}

    @property
    def pids(self) -> list[int]:
        """Return the server processes' ids."""
        return [process.pid for process in self.processes]

    def stats(self) -> Stats:
        """Return what every server saw since the last call (and reset their counts)."""
        total = Stats()
        for process in self.processes:
            process.send_signal(signal.SIGUSR1)
        for process in self.processes:
            seen = Stats(**json.loads(process.stdout.readline()))
            total.connections += seen.connections
            total.crl_requests += seen.crl_requests
            firsts = [t for t in (total.first_connection, seen.first_connection) if t]
            lasts = [t for t in (total.last_close, seen.last_close) if t]
            total.first_connection = min(firsts) if firsts else None
            total.last_close = max(lasts) if lasts else None
        return total

    @classmethod
    @contextmanager
    def start(
        cls,
        count: int,
        latency: float,
        workdir: Path,
        processes: int = 1,
        crl: bool = False,
        multi_share: float = 0.0,
    ) -> Iterator[Endpoints]:
        """Generate certificates, start `processes` servers sharing `count` ports; stop on exit.

        With `crl`, the certificates name CRLs that the first server process serves over HTTP.
        """
        crl_port = _free_port() if crl else None
        crl_base = f"http://{HOST}:{crl_port}" if crl else None
        written = write_certificates(workdir, crl_base=crl_base)
        files = {key: str(path) for key, path in written.items()}
        kinds = [kind_of(index) for index in range(count)]
        multi = [is_multi(index, multi_share) for index in range(count)]
        shares = [kinds[share::processes] for share in range(processes)]
        multi_shares = [multi[share::processes] for share in range(processes)]
        children: list[subprocess.Popen] = []
        try:
            for number, share in enumerate(shares):
                spec = workdir / f"spec-{number}.json"
                served = {"kinds": share, "files": files, "multi": multi_shares[number]}
                if number == 0 and crl_port is not None:
                    served["crl_port"] = crl_port
                spec.write_text(json.dumps(served))
                command = [sys.executable, "-m", "bench.endpoints", "--spec", str(spec)]
                command += ["--latency", str(latency)]
                children.append(
                    subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=_env())
                )
            targets: list[str] = []
            by_target: dict[str, str] = {}
            addresses: list[str] = []
            names: dict[str, list[str]] = {}
            for child, share, multi_share_of in zip(children, shares, multi_shares, strict=True):
                line = child.stdout.readline()
                if not line:
                    raise RuntimeError("an endpoint server failed to start")
                ports = json.loads(line)["ports"]
                for port, kind, two in zip(ports, share, multi_share_of, strict=True):
                    target = f"{HOST}:{port}"
                    addresses.append(target)
                    if two:
                        name = f"multi-{len(names)}.{MULTI_DOMAIN}"
                        names[name] = [HOST, SECOND_HOST]
                        addresses.append(f"{SECOND_HOST}:{port}")
                        target = f"{name}:{port}"
                    targets.append(target)
                    by_target[target] = kind
            yield cls(targets, by_target, Path(files["ca"]), children, addresses, names)
        finally:
            for child in children:
                child.terminate()
            for child in children:
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    child.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


if __name__ == "__main__":
    serve_main()
