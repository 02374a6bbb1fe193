"""Assemble the static website: page bodies wrapped in the shared layout, plus assets.

    python frontend/build.py [--out build/site] [--api-url URL]

Each page body in `pages/` is a fragment; `layout.html` adds the head, header, footer and
scripts, so boilerplate lives in one place. `static/` and `vendor/` are copied as they are.
`config.js` (the API's base URL) is written only when `--api-url` is given: the local stack
and the deployment each generate their own, and no URL is ever baked into a page.
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
from pathlib import Path
from typing import NamedTuple

FRONTEND = Path(__file__).resolve().parent
DEFAULT_OUT = FRONTEND.parent / "build" / "site"


# A NamedTuple, not a dataclass: local/frontend_server.py loads this file by path without
# registering it in sys.modules, and dataclasses need that registration.
class Page(NamedTuple):
    """One page of the site: its file name, title and page script (body in pages/NAME.html)."""

    name: str
    title: str
    script: str
    nav: str = ""  # which header link is the current page, if any
    # The error page is served at whatever path was missing (CloudFront's custom error
    # response), so its relative links and assets must resolve from the site's root.
    base: str = ""


PAGES = (
    Page("index", "Certificate expiry reminders", "index.js", nav="index"),
    Page("confirm", "Confirm your subscription", "confirm.js"),
    Page("unsubscribe", "Unsubscribe", "unsubscribe.js"),
    Page("manage", "Manage your reminders", "manage.js"),
    Page("feedback", "Feedback", "feedback.js", nav="feedback"),
    Page("usage", "How it works", "", nav="usage"),
    Page("privacy", "Privacy", "", nav="privacy"),
    Page("404", "Page not found", "", base="/"),
)

NAV = (("index", "Check a certificate"), ("usage", "How it works"), ("privacy", "Privacy"))


def render_nav(current: str) -> str:
    """Return the header's links, marking the current page for assistive technology."""
    items = []
    for name, label in NAV:
        here = ' aria-current="page"' if name == current else ""
        active = " active" if name == current else ""
        items.append(
            f'<li class="nav-item"><a class="nav-link{active}" href="{name}.html"{here}>'
            f"{html.escape(label)}</a></li>"
        )
    return "\n          ".join(items)


def render_page(page: Page, layout: str, body: str) -> str:
    """Return the full HTML document of one page."""
    script = f'<script src="js/{page.script}"></script>' if page.script else ""
    # Plain replace, not str.format: page bodies contain braces only by accident, never on purpose.
    document = layout
    for key, value in (
        ("{{title}}", html.escape(page.title)),
        ("{{nav}}", render_nav(page.nav)),
        ("{{page}}", page.name),
        ("{{script}}", script),
        ("{{body}}", body.strip()),
    ):
        document = document.replace(key, value)
    if page.base:
        base = f'<base href="{html.escape(page.base)}">'
        charset = '<meta charset="utf-8">'
        document = document.replace(charset, f"{charset}\n  {base}", 1)
    return document


def config_js(api_url: str) -> str:
    """Return the config.js that tells every page where the API is."""
    config = json.dumps({"apiUrl": api_url.rstrip("/")})
    return f"window.SSLNOTIFY_CONFIG = {config};\n"


def build(out: Path = DEFAULT_OUT, api_url: str | None = None) -> Path:
    """Write the whole site to `out` (replacing what was there) and return `out`."""
    # Keep a config.js someone generated into `out` (the local stack may): rebuilding must not
    # silently cut the pages off from the API.
    kept_config = (out / "config.js").read_text() if (out / "config.js").is_file() else None
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    layout = (FRONTEND / "layout.html").read_text(encoding="utf-8")
    for page in PAGES:
        body = (FRONTEND / "pages" / f"{page.name}.html").read_text(encoding="utf-8")
        (out / f"{page.name}.html").write_text(render_page(page, layout, body), encoding="utf-8")
    shutil.copytree(FRONTEND / "static", out, dirs_exist_ok=True)
    shutil.copytree(FRONTEND / "vendor", out / "vendor", ignore=shutil.ignore_patterns("*.md"))
    if api_url is not None:
        (out / "config.js").write_text(config_js(api_url), encoding="utf-8")
    elif kept_config is not None:
        (out / "config.js").write_text(kept_config, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    """Build the site from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--api-url", help="write config.js pointing the pages at this API")
    args = parser.parse_args(argv)
    out = build(args.out, args.api_url)
    print(f"built {len(PAGES)} pages into {out}")


if __name__ == "__main__":
    main()
