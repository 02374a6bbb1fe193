"""The local frontend port: site files, config.js, the Outbox pages, security headers."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest

from local.frontend_server import HEADERS_FILE, FrontendServer, Site

API = "http://127.0.0.1:9001"


@pytest.fixture
def frontend(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!DOCTYPE html><title>home</title>")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    message = EmailMessage()
    message["From"] = "noreply@sslnotify.test"
    message["To"] = "fay@example.com"
    message["Subject"] = "Confirm <now>"
    message.set_content("Open https://site.test/confirm.html?user=fay%40example.com&uuid=t0k3n now")
    (outbox / "20261127T061000.000001Z-abc.eml").write_bytes(message.as_bytes())
    (outbox / "20261127T050000.000001Z-old.eml").write_bytes(message.as_bytes())
    server = FrontendServer(("127.0.0.1", 0), site=site, api_url=API, outbox=outbox)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.url
    server.shutdown()
    server.server_close()


def get(url: str) -> tuple[int, str, dict]:
    try:
        with urllib.request.urlopen(url) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, "", dict(error.headers)


def test_config_js_points_at_the_api(frontend):
    status, body, headers = get(f"{frontend}/config.js")
    assert status == 200
    assert body == 'window.SSLNOTIFY_CONFIG = {"apiUrl": "http://127.0.0.1:9001"};\n'
    assert headers["Content-Type"].startswith("text/javascript")


def test_every_answer_carries_the_security_headers(frontend):
    for path in ("/", "/index.html", "/config.js", "/outbox", "/missing"):
        _, _, headers = get(f"{frontend}{path}")
        policy = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy
        assert f"connect-src 'self' {API}" in policy
        assert "unsafe-inline" not in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "Strict-Transport-Security" not in headers


def test_the_header_file_is_the_one_definition():
    defined = json.loads(Path(HEADERS_FILE).read_text())
    assert "{api_origin}" in defined["headers"]["Content-Security-Policy"]
    assert "Strict-Transport-Security" in defined["https_only"]


def test_the_outbox_lists_newest_first_and_links_each_email(frontend):
    status, page, _ = get(f"{frontend}/outbox")
    assert status == 200
    assert page.index("-abc.eml") < page.index("-old.eml")
    assert "Confirm &lt;now&gt;" in page
    assert "fay@example.com" in page


def test_an_email_page_makes_its_links_clickable(frontend):
    status, page, _ = get(f"{frontend}/outbox/20261127T061000.000001Z-abc.eml")
    assert status == 200
    assert '<a href="https://site.test/confirm.html?user=fay%40example.com&amp;uuid=t0k3n">' in page
    status, raw, headers = get(f"{frontend}/outbox/raw/20261127T061000.000001Z-abc.eml")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert "Subject: Confirm <now>" in raw


@pytest.mark.parametrize("name", ["../secret", "..%2Fsecret.eml", "nothing.eml", "x.txt"])
def test_only_saved_emails_are_served(frontend, name):
    assert get(f"{frontend}/outbox/{name}")[0] == 404


BUILD_SCRIPT = """
from pathlib import Path

def build(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = Path(__file__).with_name("page.txt").read_text()
    (out / "index.html").write_text(source)
    return out
"""


def test_the_site_is_rebuilt_when_a_source_changes(tmp_path, monkeypatch):
    frontend = tmp_path / "frontend"
    frontend.mkdir()
    (frontend / "build.py").write_text(BUILD_SCRIPT)
    page = frontend / "page.txt"
    page.write_text("first")
    monkeypatch.setattr(Site, "CHECK_PERIOD", 0.0)
    site = Site(tmp_path / "state", frontend=frontend)
    assert (site.current() / "index.html").read_text() == "first"

    page.write_text("second")
    os.utime(page, (time.time() + 5, time.time() + 5))  # a coarse clock must still see it
    served = site.current()
    assert (served / "index.html").read_text() == "second"
    assert site.current() == served  # nothing changed since: no rebuild


def test_a_frontend_without_a_build_step_is_served_as_it_is(tmp_path):
    assert Site(tmp_path / "state", frontend=tmp_path).current() == tmp_path
