"""The Chalice API on loopback, through chalice's own local server (API Gateway's stand-in).

Requests are handled in threads; each runs as the `api` function for logging,
so the app's log lines reach `/aws/lambda/<prefix>-api`. The server's access
lines are never logged anywhere: the API's paths hold email addresses.
"""

from __future__ import annotations

import importlib
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    CustomLocalChalice,
    LocalChalice,
    LocalDevServer,
    ThreadedHTTPServer,
)

from chalicelib.config import Settings, resources
from local.function_logs import running


class ApiRequestHandler(ChaliceRequestHandler):
    """Chalice's request handler, attributing output to the api function and logging no paths."""

    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per answer

    def handle_one_request(self) -> None:
        with running("api"):
            super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: an access line would hold the address in /user/{email}."""


class UnavailableHandler(BaseHTTPRequestHandler):
    """Answer 503 to everything when app.py cannot be imported, saying why."""

    reason = "the API is not available"

    def _answer(self) -> None:
        body = json.dumps({"Code": "ServiceUnavailable", "Message": self.reason}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_OPTIONS = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""


class QuietThreadedServer(ThreadedHTTPServer):
    """Chalice's threaded server without tracebacks for clients that hang up."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore a dropped connection; the browser retries."""


def load_app() -> Any:
    """Import the Chalice app named by resources.json's api handler."""
    module_name, _, attribute = resources()["functions"]["api"]["handler"].rpartition(".")
    with running("api"):
        return getattr(importlib.import_module(module_name), attribute)


def create_api_server(settings: Settings, host: str, port: int) -> tuple[Any, str | None]:
    """Bind the API's port and return (server with serve_forever/shutdown, problem or None)."""
    spec = resources()["functions"]["api"]
    try:
        app = load_app()
    except Exception as error:  # whatever app.py's state, the rest of the stack still runs
        reason = f"app.py could not be loaded: {type(error).__name__}: {error}"
        handler = type("Unavailable", (UnavailableHandler,), {"reason": reason})
        server = ThreadingHTTPServer((host, port), handler)
        server.daemon_threads = True
        return server, reason
    config = Config.create(
        chalice_stage="local",
        app_name=app.app_name,
        function_name=settings.function_name("api"),
        lambda_timeout=int(spec.get("timeout", 30)),
        lambda_memory_size=int(spec.get("memory", 512)),
    )
    # As `chalice local` does: make app.current_request thread-local, since requests are threads.
    if not isinstance(app, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    local = LocalDevServer(
        app, config, host, port, handler_cls=ApiRequestHandler, server_cls=QuietThreadedServer
    )
    # LocalDevServer would print its own banner from serve_forever; serve its server directly.
    return local.server, None
