"""The website's build: every page assembled, the shared layout, no inline code, valid HTML."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
PAGE_NAMES = ("index", "confirm", "unsubscribe", "manage", "feedback", "usage", "privacy", "404")
FOOTER_LINKS = {"manage.html", "usage.html", "privacy.html", "feedback.html"}
IN_CI = os.environ.get("CI", "").lower() == "true"


def load_build_module():
    spec = importlib.util.spec_from_file_location("sslnotify_frontend_build", FRONTEND / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_module = load_build_module()


class PageOutline(HTMLParser):
    """Collect what the tests look at: scripts, styles, links, inline code, labels and inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str | None] = []
        self.inline_script_text: list[str] = []
        self.stylesheets: list[str] = []
        self.style_elements = 0
        self.style_attributes = 0
        self.event_handlers: list[str] = []
        self.links: list[str] = []
        self.footer_links: set[str] = set()
        self.label_targets: set[str] = set()
        self.fields: list[str] = []
        self.has_header = False
        self.has_main = False
        self._in_footer = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "style" in attributes:
            self.style_attributes += 1
        self.event_handlers += [name for name in attributes if name.startswith("on")]
        if tag == "script":
            self.scripts.append(attributes.get("src"))
            self._in_script = True
        elif tag == "style":
            self.style_elements += 1
        elif tag == "link" and attributes.get("rel") == "stylesheet":
            self.stylesheets.append(attributes["href"] or "")
        elif tag == "a":
            self.links.append(attributes.get("href") or "")
            if self._in_footer:
                self.footer_links.add(attributes.get("href") or "")
        elif tag == "label" and attributes.get("for"):
            self.label_targets.add(attributes["for"])
        elif tag in {"input", "textarea", "select"} and attributes.get("type") != "hidden":
            self.fields.append(attributes.get("id") or "")
        elif tag == "footer":
            self._in_footer = True
        elif tag == "header":
            self.has_header = True
        elif tag == "main":
            self.has_main = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "footer":
            self._in_footer = False
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script_text.append(data)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Build the site once for the module, with a config.js pointing at a test API."""
    return build_module.build(tmp_path_factory.mktemp("site"), api_url="https://api.example.test/")


def outline(site: Path, name: str) -> PageOutline:
    parser = PageOutline()
    parser.feed((site / f"{name}.html").read_text(encoding="utf-8"))
    return parser


def test_build_writes_every_page_and_the_assets(site):
    for name in PAGE_NAMES:
        assert (site / f"{name}.html").is_file(), name
    for asset in (
        "css/site.css",
        "js/api.js",
        "vendor/bootstrap/css/bootstrap.min.css",
        "vendor/bootstrap/js/bootstrap.bundle.min.js",
        "vendor/bootstrap/LICENSE",
        "vendor/jquery/jquery.min.js",
        "vendor/jquery/LICENSE.txt",
    ):
        assert (site / asset).is_file(), asset
    assert {page.name for page in build_module.PAGES} == set(PAGE_NAMES)


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_every_page_has_the_shared_layout(site, name):
    page = outline(site, name)
    assert page.has_header and page.has_main
    assert page.footer_links >= FOOTER_LINKS
    assert "index.html" in page.links  # the brand link home
    html = (site / f"{name}.html").read_text(encoding="utf-8")
    assert "{{" not in html, "a layout placeholder was left unfilled"
    assert re.search(r"<title>[^<]+ · sslnotify</title>", html)


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_no_inline_code_so_a_strict_csp_holds(site, name):
    page = outline(site, name)
    assert page.inline_script_text == []
    assert None not in page.scripts, "every script has a src"
    assert page.style_elements == 0
    assert page.style_attributes == 0
    assert page.event_handlers == []


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_config_js_comes_before_the_code_that_reads_it(site, name):
    scripts = outline(site, name).scripts
    assert scripts.index("config.js") < scripts.index("js/api.js")
    assert scripts[:2] == [
        "vendor/jquery/jquery.min.js",
        "vendor/bootstrap/js/bootstrap.bundle.min.js",
    ]


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_nothing_is_loaded_from_another_site(site, name):
    page = outline(site, name)
    for reference in [*page.scripts, *page.stylesheets]:
        assert reference and not re.match(r"(https?:)?//", reference), reference


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_every_field_has_a_label(site, name):
    page = outline(site, name)
    assert set(page.fields) <= page.label_targets


def test_the_error_page_links_from_the_root_wherever_it_is_served(site):
    """CloudFront serves 404.html at the missing path: its relative URLs must start at /."""
    html = (site / "404.html").read_text(encoding="utf-8")
    assert '<base href="/">' in html.split("<title>")[0]
    assert "Page not found" in html
    assert "<base" not in (site / "index.html").read_text(encoding="utf-8")


def test_config_js_names_the_api_given(site):
    text = (site / "config.js").read_text()
    prefix = "window.SSLNOTIFY_CONFIG = "
    assert text.startswith(prefix)
    assert json.loads(text.removeprefix(prefix).rstrip().rstrip(";")) == {
        "apiUrl": "https://api.example.test"
    }


def test_without_an_api_url_no_config_is_invented_and_a_generated_one_is_kept(tmp_path):
    out = build_module.build(tmp_path / "site")
    assert not (out / "config.js").exists()
    (out / "config.js").write_text("window.SSLNOTIFY_CONFIG = {};\n")
    build_module.build(out)
    assert (out / "config.js").read_text() == "window.SSLNOTIFY_CONFIG = {};\n"


def test_no_api_url_is_written_into_the_sources():
    for path in [*FRONTEND.glob("pages/*.html"), *FRONTEND.glob("static/js/*.js")]:
        assert not re.search(
            r"https?://(127\.|localhost|[a-z0-9-]+\.execute-api)", path.read_text()
        )


def test_scripts_insert_text_never_html():
    # Markup is built only from constant tags ($("<li>")) filled with .text(); anything that
    # parses a string as HTML would let an API message or a URL parameter run script.
    for path in FRONTEND.glob("static/js/*.js"):
        code = path.read_text()
        assert ".html(" not in code, path.name
        assert not re.search(r"\.(append|prepend|after|before|replaceWith)\(\s*(?!\$)", code), (
            path.name
        )
        assert not re.search(r"\$\(\s*(?![\"']|this\))", code), path.name
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in code, f"{path.name}: {sink}"


def test_vendored_versions_are_recorded():
    readme = (FRONTEND / "vendor" / "README.md").read_text()
    bootstrap = (FRONTEND / "vendor/bootstrap/js/bootstrap.bundle.min.js").read_text()[:200]
    jquery = (FRONTEND / "vendor/jquery/jquery.min.js").read_text()[:200]
    for library, header in (("Bootstrap", bootstrap), ("jQuery", jquery)):
        version = re.search(r"v(\d+\.\d+\.\d+)", header).group(1)
        assert f"| {library} | {version} |" in readme


def html_validate() -> Path | None:
    """Return the pinned html-validate, installing it with npm when it is not there yet."""
    binary = FRONTEND / "node_modules" / ".bin" / "html-validate"
    if not binary.exists() and shutil.which("npm"):
        subprocess.run(
            ["npm", "ci", "--prefix", str(FRONTEND), "--no-audit", "--no-fund", "--silent"],
            check=True,
            timeout=300,
        )
    return binary if binary.exists() else None


@pytest.mark.slow
def test_every_page_is_valid_html(site):
    validator = html_validate()
    if validator is None:
        message = "html-validate is not installed and npm is missing: HTML NOT VALIDATED"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    pages = sorted(str(path) for path in site.glob("*.html"))
    result = subprocess.run(
        [str(validator), "--config", str(FRONTEND / ".htmlvalidate.json"), *pages],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
