"""Web: the same security headers from the local frontend server and from CloudFront (Terraform),
a CSP without unsafe-inline that the pages obey, and CORS that admits only the site's origin.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from local import frontend_server

REPOSITORY = Path(__file__).resolve().parents[2]
TERRAFORM = REPOSITORY / "terraform"
HEADERS = json.loads((REPOSITORY / "local" / "security_headers.json").read_text())
API_ORIGIN = "http://127.0.0.1:8001"
REQUIRED = {"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"}


def skip_unless_ci(message: str) -> None:
    """Skip a check this machine cannot run; under CI=true that is a failure, never a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a check that cannot run fails)", pytrace=False)
    pytest.skip(message)


def csp_directives(policy: str) -> dict[str, list[str]]:
    """Return a Content-Security-Policy as {directive: [sources]}."""
    directives = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


@pytest.mark.parametrize(
    ("directive", "check"),
    [
        ("default-src", lambda sources: sources == ["'self'"]),
        ("script-src", lambda sources: sources == ["'self'"]),
        ("style-src", lambda sources: "'unsafe-inline'" not in sources),
        ("object-src", lambda sources: sources == ["'none'"]),
        ("frame-ancestors", lambda sources: sources == ["'none'"]),
        ("base-uri", lambda sources: sources in (["'self'"], ["'none'"])),
        ("form-action", lambda sources: "*" not in sources),
        ("connect-src", lambda sources: set(sources) <= {"'self'", "{api_origin}"}),
    ],
)
def test_the_csp_is_strict(directive, check):
    """Each directive of the shared CSP is as strict as the site allows."""
    directives = csp_directives(HEADERS["headers"]["Content-Security-Policy"])
    assert directive in directives
    assert check(directives[directive]), directives[directive]


def test_no_unsafe_source_anywhere_in_the_headers():
    """No 'unsafe-inline', 'unsafe-eval', wildcard or data: script source in any header."""
    text = json.dumps({key: value for key, value in HEADERS.items() if key != "_comment"})
    for word in ("unsafe-inline", "unsafe-eval", "unsafe-hashes", "strict-dynamic"):
        assert word not in text
    script = csp_directives(HEADERS["headers"]["Content-Security-Policy"])["script-src"]
    assert not {"*", "data:", "http:", "https:"} & set(script)


def test_hsts_is_long_and_https_only():
    """HSTS lasts at least a year, covers subdomains, and is sent only over HTTPS (CloudFront)."""
    hsts = HEADERS["https_only"]["Strict-Transport-Security"]
    assert int(re.search(r"max-age=(\d+)", hsts).group(1)) >= 31_536_000
    assert "includeSubDomains" in hsts
    assert "Strict-Transport-Security" not in HEADERS["headers"]
    assert HEADERS["headers"]["X-Content-Type-Options"] == "nosniff"
    assert HEADERS["headers"]["X-Frame-Options"] == "DENY"


@pytest.fixture
def frontend(tmp_path):
    """Run the local frontend server on loopback over a tiny site; return its URL."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>t</title>")
    server = frontend_server.FrontendServer(("127.0.0.1", 0), site, API_ORIGIN, tmp_path / "outbox")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path", ["/", "/index.html", "/config.js", "/outbox", "/nowhere", "/.."])
def test_the_local_frontend_server_sends_every_header(frontend, path):
    """Pages, generated files, the outbox and errors all carry the shared security headers."""
    try:
        with urllib.request.urlopen(frontend + path, timeout=10) as answer:
            headers = answer.headers
    except urllib.error.HTTPError as error:
        headers = error.headers
    expected = {
        name: value.replace("{api_origin}", API_ORIGIN)
        for name, value in HEADERS["headers"].items()
    }
    sent = {name: headers[name] for name in expected}
    assert sent == expected
    assert set(sent) >= REQUIRED
    assert "unsafe-inline" not in headers["Content-Security-Policy"]


def _terraform_console(expression: str, workdir: Path) -> str:
    """Evaluate one expression with `terraform console` in a copy of the configuration."""
    done = subprocess.run(
        [
            "terraform",
            "console",
            "-no-color",
            "-var",
            "domain_name=sslnotify.example",
            "-var",
            "operator_email=operator@sslnotify.example",
        ],
        input=expression,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"TF_CLI_CONFIG_FILE": "/dev/null", "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    if done.returncode != 0:
        skip_unless_ci(f"terraform console failed here: {done.stderr.strip()[:300]}")
    return json.loads(done.stdout.strip())


@pytest.fixture(scope="module")
def terraform_copy(tmp_path_factory) -> Path:
    """Copy the Terraform configuration (and what it reads) so evaluating it touches nothing."""
    plugins = Path(os.environ.get("SSLNOTIFY_TF_PLUGIN_DIR", "/opt/tf-plugins"))
    if shutil.which("terraform") is None or not plugins.is_dir():
        skip_unless_ci(f"TERRAFORM HEADER CHECK NOT RUN: terraform or {plugins} is missing")
    root = tmp_path_factory.mktemp("tf")
    shutil.copytree(
        TERRAFORM, root / "terraform", ignore=shutil.ignore_patterns("*.tfstate*", ".terraform")
    )
    for relative in ("local/security_headers.json", "chalicelib/resources.json"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPOSITORY / relative, root / relative)
    build = root / "build" / "lambda"
    build.mkdir(parents=True)
    for name in ("openapi.json", "openapi-emulated.json"):
        (build / name).write_text("{}")
    # Initialised here, offline, from the provider on disk: the check needs no `make plan`.
    subprocess.run(
        ["terraform", "init", "-backend=false", f"-plugin-dir={plugins}", "-input=false"],
        cwd=root / "terraform",
        capture_output=True,
        timeout=300,
        check=True,
        env={"TF_CLI_CONFIG_FILE": "/dev/null", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    return root / "terraform"


@pytest.mark.parametrize(("ci", "outcome"), [("true", "Failed"), ("", "Skipped")])
def test_a_console_that_fails_fails_the_run_under_ci(terraform_copy, monkeypatch, ci, outcome):
    """A header check that cannot evaluate must not pass quietly in CI as a skip."""
    monkeypatch.setenv("CI", ci)
    with pytest.raises(BaseException) as raised:  # pytest's outcomes are BaseExceptions
        _terraform_console("local.no_such_value", terraform_copy)
    assert type(raised.value).__name__ == outcome


def test_cloudfront_sends_the_same_headers_plus_hsts(terraform_copy):
    """Terraform's header set is the local server's plus HSTS, with the API's origin filled in."""
    expression = (
        "jsonencode({headers = local.security_headers, extra = local.extra_security_headers, "
        "enabled = var.enable_response_headers_policy, api = local.api_url, "
        "site = local.site_url})"
    )
    evaluated = json.loads(_terraform_console(expression, terraform_copy))
    api = evaluated["api"]
    expected = {
        name: value.replace("{api_origin}", api)
        for name, value in {**HEADERS["headers"], **HEADERS["https_only"]}.items()
    }
    assert evaluated["headers"] == expected
    assert evaluated["enabled"] is True
    assert api.startswith("https://") and evaluated["site"].startswith("https://")
    dedicated = {"Content-Security-Policy", "Strict-Transport-Security", "X-Content-Type-Options"}
    dedicated |= {"X-Frame-Options", "Referrer-Policy"}
    assert set(evaluated["extra"]) == set(expected) - dedicated


def _block(text: str, start: str) -> str:
    """Return the body of the HCL block that begins with `start` (balanced braces)."""
    index = text.index(start)
    depth = 0
    for position in range(text.index("{", index), len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0:
            return text[index : position + 1]
    raise AssertionError(f"unbalanced block {start}")


@pytest.mark.parametrize(
    ("block", "must_contain"),
    [
        ("content_security_policy {", 'local.security_headers["Content-Security-Policy"]'),
        ("strict_transport_security {", "local.hsts"),
        ("content_type_options {", "override = true"),
        ("frame_options {", 'local.security_headers["X-Frame-Options"]'),
        ("referrer_policy {", 'local.security_headers["Referrer-Policy"]'),
        ('dynamic "custom_headers_config" {', "local.extra_security_headers"),
    ],
)
def test_the_cloudfront_policy_sets_each_header_with_override(block, must_contain):
    """Every header block of the response headers policy reads the shared file and overrides."""
    text = (TERRAFORM / "cloudfront.tf").read_text()
    body = _block(text, block)
    assert must_contain in body
    assert re.search(r"override\s*=\s*true", body)


def test_the_distribution_uses_the_policy_and_https_only():
    """The site's cache behaviour points at the headers policy and redirects HTTP to HTTPS."""
    text = (TERRAFORM / "cloudfront.tf").read_text()
    behaviour = _block(text, "default_cache_behavior {")
    assert "aws_cloudfront_response_headers_policy.security" in behaviour
    assert re.search(r'viewer_protocol_policy\s*=\s*"redirect-to-https"', behaviour)
    assert re.search(r'minimum_protocol_version\s*=\s*"TLSv1\.2_2021"', text)
    assert 'file("${path.module}/../local/security_headers.json")' in text


def _load(name: str, path: Path):
    """Import a script that is not part of a package (frontend/build.py, tools/package.py)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    __import__("sys").modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _site_pages(tmp_path) -> list[Path]:
    """Build the website as it is deployed; return its HTML pages."""
    site = _load("sslnotify_site_build", REPOSITORY / "frontend" / "build.py").build(tmp_path / "s")
    return sorted(Path(site).rglob("*.html"))


def test_the_pages_need_no_inline_script_or_style(tmp_path):
    """The CSP forbids inline code, so no page may carry any: it would silently break."""
    pages = _site_pages(tmp_path)
    assert pages
    offences = []
    for page in pages:
        html = page.read_text()
        if "outbox" in str(page):
            continue
        for pattern in (
            r"<script(?![^>]*\bsrc=)[^>]*>\s*\S",  # a script element with a body
            r"\son[a-z]+\s*=",  # onclick= and friends
            r"\sstyle\s*=",  # style attributes
            r"<style\b",  # style elements
            r"javascript:",
        ):
            offences += [(page.name, match) for match in re.findall(pattern, html, re.I)]
    assert offences == []


# CORS


CORS_ROUTES = [
    ("GET", "/check/example.com?days=x"),
    ("PUT", "/user/a%40example.com?domain=bad..name"),
    ("DELETE", "/user/a%40example.com?uuid=short"),
    ("POST", "/feedback"),
]


@pytest.mark.parametrize("origin", [None, "https://evil.example", "null", "https://sslnotify.test"])
@pytest.mark.parametrize(("method", "path"), CORS_ROUTES)
def test_cors_admits_only_the_site_origin(api, settings, method, path, origin):
    """Whatever Origin a request claims, the answer allows the site's origin alone."""
    headers = {"Origin": origin} if origin else {}
    if method == "POST":
        headers["Content-Type"] = "application/json"
    response = api.http.request(method, path, headers=headers, body=b"{}")
    allowed = response.headers.get("Access-Control-Allow-Origin")
    assert allowed == settings.cors_origin == "https://sslnotify.test"
    assert response.headers.get("Access-Control-Allow-Credentials") in (None, "false")


def test_the_one_click_route_allows_no_browser_origin(api):
    """The RFC 8058 route is for mail providers: it sends no CORS header at all."""
    response = api.http.post(
        "/user/a%40example.com/unsubscribe?uuid=" + "A" * 32,
        headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
        body=b"List-Unsubscribe=One-Click",
    )
    assert "Access-Control-Allow-Origin" not in response.headers


def test_api_gateway_preflights_answer_the_site_origin_only(monkeypatch):
    """The OpenAPI document API Gateway imports: every preflight names the placeholder origin."""
    spec = importlib.util.spec_from_file_location(
        "sslnotify_package", REPOSITORY / "tools/package.py"
    )
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)
    monkeypatch.setenv("SSLNOTIFY_CORS_ORIGIN", "unused")
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    document = json.dumps(package.openapi_document())
    origins = re.findall(r'Access-Control-Allow-Origin"\s*:\s*"([^"]*)"', document)
    assert origins, "no CORS headers in the generated document"
    assert set(origins) == {f"'{package.CORS_ORIGIN_PLACEHOLDER}'"}
    assert "'*'" not in document
    api_tf = (TERRAFORM / "api.tf").read_text()
    assert re.search(r'"@@CORS_ORIGIN@@",[^\n]*\n\s*local\.site_url', api_tf)
