"""The frontend port: the website's files, a generated /config.js and the Outbox pages.

When the frontend has a build step (frontend/build.py), the site is built under
<state-dir>/ at start and again whenever a file of frontend/ changes, so the
pages are never stale; otherwise frontend/ is served as it is. Every answer
carries the security headers of security_headers.json.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from functools import cache, partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from local import outbox_page

REPOSITORY = Path(__file__).resolve().parent.parent
FRONTEND = REPOSITORY / "frontend"
HEADERS_FILE = Path(__file__).with_name("security_headers.json")


@cache
def _header_templates() -> dict[str, str]:
    return json.loads(HEADERS_FILE.read_text())["headers"]


def security_headers(api_origin: str) -> dict[str, str]:
    """Return the security headers every frontend answer carries (no HSTS over plain http)."""
    return {
        name: value.replace("{api_origin}", api_origin)
        for name, value in _header_templates().items()
    }


def config_js(api_url: str) -> str:
    """Return the config.js that tells the pages where the API is."""
    return f"window.SSLNOTIFY_CONFIG = {json.dumps({'apiUrl': api_url.rstrip('/')})};\n"


def _load_builder(build_script: Path) -> Any:
    spec = importlib.util.spec_from_file_location("sslnotify_frontend_build", build_script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class Site:
    """The directory to serve: the frontend as built by its build step, rebuilt on change.

    Builds alternate between two directories under the state directory, so a
    rebuild never pulls files from under a request being answered.
    """

    CHECK_PERIOD = 1.0  # seconds between looks at the sources' modification times

    def __init__(
        self, state_dir: Path, frontend: Path = FRONTEND, warn: Callable[[str], None] | None = None
    ):
        self._frontend = frontend
        self._targets = (state_dir / "site", state_dir / "site-next")
        self._warn = warn or (lambda line: None)
        self._lock = threading.Lock()
        self._checked = 0.0
        self._stamp = self._sources_stamp()
        self.path = self._build(self._targets[0]) if self._buildable else frontend

    @property
    def _buildable(self) -> bool:
        return (self._frontend / "build.py").is_file()

    def _sources_stamp(self) -> float:
        latest = 0.0
        for root, directories, files in os.walk(self._frontend):
            directories[:] = [d for d in directories if d != "node_modules" and d[0] != "."]
            for name in files:
                latest = max(latest, os.stat(os.path.join(root, name)).st_mtime)
        return latest

    def _build(self, target: Path) -> Path:
        builder = _load_builder(self._frontend / "build.py")
        return Path(builder.build(target))

    def current(self) -> Path:
        """Return the directory to serve now, rebuilding first if a source changed."""
        if not self._buildable or time.monotonic() - self._checked < self.CHECK_PERIOD:
            return self.path
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._sources_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                target = self._targets[1] if self.path == self._targets[0] else self._targets[0]
                try:
                    self.path = self._build(target)
                except Exception as error:  # keep serving the last good build
                    self._warn(f"warning: the website could not be rebuilt: {error}")
        return self.path


class StaticSite:
    """A directory served as it is."""

    def __init__(self, path: Path):
        self.path = path

    def current(self) -> Path:
        """Return the directory."""
        return self.path


class FrontendHandler(SimpleHTTPRequestHandler):
    """Serve the site's files, /config.js and /outbox, with the security headers."""

    def __init__(self, *args: Any, config: dict[str, Any], **kwargs: Any):
        self.config = config
        super().__init__(*args, directory=str(config["site"].current()), **kwargs)

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        if path == "/config.js":
            self._answer(200, config_js(self.config["api_url"]), "text/javascript; charset=utf-8")
        elif path == "/outbox.css":
            self._answer(200, outbox_page.STYLESHEET, "text/css; charset=utf-8")
        elif path in {"/outbox", "/outbox/"}:
            self._answer(
                200, outbox_page.list_page(self.config["outbox"]), "text/html; charset=utf-8"
            )
        elif path.startswith("/outbox/raw/"):
            self._saved(path.removeprefix("/outbox/raw/"), raw=True)
        elif path.startswith("/outbox/"):
            self._saved(path.removeprefix("/outbox/"), raw=False)
        else:
            super().do_GET()

    def _saved(self, name: str, raw: bool) -> None:
        found = outbox_page.find(self.config["outbox"], name)
        if found is None:
            self.send_error(404, "No such email")
        elif raw:
            # text/plain so a browser shows the source instead of downloading it.
            self._answer(200, found.read_bytes(), "text/plain; charset=utf-8")
        else:
            self._answer(200, outbox_page.message_page(found), "text/html; charset=utf-8")

    def _answer(self, status: int, body: str | bytes, content_type: str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def end_headers(self) -> None:
        for name, value in security_headers(self.config["api_origin"]).items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the terminal is for URLs, emails and errors."""


class FrontendServer(ThreadingHTTPServer):
    """The HTTP server of the frontend port."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], site: Path | Site, api_url: str, outbox: Path):
        config = {
            "site": StaticSite(site) if isinstance(site, Path) else site,
            "api_url": api_url,
            "api_origin": api_url.rstrip("/"),
            "outbox": outbox,
        }
        super().__init__(address, partial(FrontendHandler, config=config))
        self.url = f"http://{address[0]}:{self.server_port}"
