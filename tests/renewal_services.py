"""A fake CT search service and a fake ACME server (directory + renewalInfo) on loopback.

    services = RenewalServices()           # or the `renewal_services` fixture
    services.issuances["example.test"] = [issuance_json(cert, dns=[...])]
    services.windows[certificate_id(leaf)] = {"suggestedWindow": {...}, "explanationURL": ...}
    services.ct_url, services.directory_url  # point the clients here
    services.requests                        # every path asked, in order
    services.mode = "down" | "rate_limited" | "slow" | "garbage"   # misbehave

Served from one ThreadingHTTPServer on 127.0.0.1 in a daemon thread; closed by the fixture.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509

from tests.certs import Issued


def issuance_json(issued: Issued | x509.Certificate, dns: Sequence[str]) -> dict[str, Any]:
    """Describe a certificate as Cert Spotter's API does (expand=dns_names, expand=cert)."""
    from cryptography.hazmat.primitives import serialization

    cert = issued.cert if isinstance(issued, Issued) else issued
    der = cert.public_bytes(serialization.Encoding.DER)
    return {
        "id": str(cert.serial_number % 10**12),
        "dns_names": list(dns),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "cert": {"type": "cert", "data": base64.b64encode(der).decode()},
    }


class RenewalServices:
    """The fake CT search and ACME services, with what each is told to answer."""

    def __init__(self) -> None:
        self.issuances: dict[str, list[dict[str, Any]]] = {}
        self.windows: dict[str, Any] = {}
        self.retry_after = "21600"
        self.mode = "ok"
        self.requests: list[str] = []
        services = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                services.requests.append(self.path)
                services.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        """Return the services' base URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def ct_url(self) -> str:
        """Return the CT search endpoint."""
        return f"{self.base}/v1/issuances"

    @property
    def directory_url(self) -> str:
        """Return the ACME directory URL."""
        return f"{self.base}/acme/directory"

    def count(self, prefix: str) -> int:
        """Count the requests whose path starts with prefix."""
        return sum(1 for path in self.requests if path.startswith(prefix))

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one request as the current mode says."""
        if self.mode == "down":
            return self._send(handler, 503, b"unavailable")
        if self.mode == "rate_limited":
            return self._send(handler, 429, b"slow down", {"Retry-After": "3600"})
        if self.mode == "slow":
            time.sleep(5)
        if self.mode == "garbage":
            return self._send(handler, 200, b"\xff<html>not json")
        url = urlsplit(handler.path)
        if url.path == "/v1/issuances":
            domain = parse_qs(url.query).get("domain", [""])[0]
            after = parse_qs(url.query).get("after")
            body = [] if after else self.issuances.get(domain, [])
            return self._send(handler, 200, json.dumps(body).encode())
        if url.path == "/acme/directory":
            directory = {"newNonce": f"{self.base}/acme/nonce", "renewalInfo": f"{self.base}/ari"}
            return self._send(handler, 200, json.dumps(directory).encode())
        if url.path.startswith("/ari/"):
            window = self.windows.get(url.path[len("/ari/") :])
            if window is None:
                return self._send(handler, 404, b"{}")
            body = window if isinstance(window, bytes) else json.dumps(window).encode()
            return self._send(handler, 200, body, {"Retry-After": self.retry_after})
        return self._send(handler, 404, b"{}")

    @staticmethod
    def _send(handler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def renewal_services() -> Iterator[RenewalServices]:
    """Start the fake CT and ACME services for one test."""
    services = RenewalServices()
    yield services
    services.close()
