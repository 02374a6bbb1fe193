"""A loopback HTTP server for revocation tests: serves CRLs and OCSP answers, or misbehaves.

    server = HTTPSourceServer()            # 127.0.0.1, a free port; a context manager
    server.url("/ca.crl")                  # "http://127.0.0.1:PORT/ca.crl"
    server.route("/ca.crl", crl_der)       # GET answers these bytes
    server.route("/ocsp", lambda body: ocsp_der)   # POST: the answer computed from the request
    server.route("/slow", SILENT)          # accepts, never answers
    server.route("/endless", ENDLESS)      # headers, then a body that never ends
    server.route("/drip", DRIP)            # one byte every 0.2 s, forever
    server.route("/old", Redirect(url))    # 302 to url
    server.route("/h", HEADER_FLOOD)       # also HEADER_DRIP, GARBAGE: broken HTTP
    server.requests["/ca.crl"]             # how many requests each path got

Fixture: `http_source` gives a started server, stopped at the end of the test.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

SILENT = object()
ENDLESS = object()
DRIP = object()
HEADER_FLOOD = object()  # a status line, then one header line that never ends
HEADER_DRIP = object()  # a status line, then header bytes one every 0.2 s
GARBAGE = object()  # not HTTP at all


class Redirect:
    """Answer 302 with this Location."""

    def __init__(self, location: str):
        self.location = location


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format, *args):  # quiet
        pass

    def _answer(self, body_in: bytes | None) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        with owner.lock:
            owner.requests[path] += 1
            owner.hosts.append(self.headers.get("Host"))
            behaviour = owner.routes.get(path)
        if behaviour is None:
            self.send_error(404)
            return
        if isinstance(behaviour, Redirect):
            self.send_response(302)
            self.send_header("Location", behaviour.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if behaviour in (HEADER_FLOOD, HEADER_DRIP, GARBAGE):
            self._raw(behaviour)
            return
        if behaviour is SILENT:
            owner.stopping.wait(30)
            return
        if behaviour in (ENDLESS, DRIP):
            self.send_response(200)
            self.send_header("Content-Type", "application/pkix-crl")
            self.end_headers()
            chunk = b"\x30" * (64 * 1024) if behaviour is ENDLESS else b"\x30"
            try:
                while not owner.stopping.is_set():
                    self.wfile.write(chunk)
                    owner.bytes_sent += len(chunk)
                    if behaviour is DRIP:
                        time.sleep(0.2)
            except OSError:
                pass  # the client hung up: what a bounded client does
            return
        body = behaviour(body_in) if callable(behaviour) else behaviour
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _raw(self, behaviour: object) -> None:
        owner = self.server.owner
        try:
            if behaviour is GARBAGE:
                self.wfile.write(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
                return
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Long: ")
            while not owner.stopping.is_set():
                self.wfile.write(b"a" * (64 * 1024) if behaviour is HEADER_FLOOD else b"a")
                if behaviour is HEADER_DRIP:
                    time.sleep(0.2)
        except OSError:
            pass

    def do_GET(self):
        self._answer(None)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(self.rfile.read(length))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: HTTPSourceServer


class HTTPSourceServer:
    """A loopback HTTP server with routes set by the test; counts requests per path."""

    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, object] = {}
        self.requests: Counter[str] = Counter()
        self.hosts: list[str | None] = []  # the Host header of each request
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.bytes_sent = 0
        self._server = _Server((host, 0), _Handler)
        self._server.owner = self
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        """Return the URL of a path on this server."""
        return f"http://{self.host}:{self.port}{path}"

    def route(self, path: str, behaviour: object) -> None:
        """Answer `path` with bytes, a function of the body, a Redirect, SILENT, ENDLESS or DRIP."""
        with self.lock:
            self.routes[path] = behaviour

    def start(self) -> HTTPSourceServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HTTPSourceServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def http_source():
    """Return a started loopback HTTP server for CRLs and OCSP answers."""
    with HTTPSourceServer() as server:
        yield server
