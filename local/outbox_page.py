"""The Outbox pages: the saved emails newest first, and one email with its links clickable.

Plain HTML with no inline script or style, so the site's strict CSP holds here too.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
from pathlib import Path

from local.outbox import entries

_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_HREF = re.compile(r"""href=["']([^"']+)["']""", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+\.eml$")

# Served as a file, not inline, so the strict CSP (style-src 'self') holds.
STYLESHEET = "pre { white-space: pre-wrap; overflow-wrap: anywhere; }\n"


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)} · sslnotify local</title>\n"
        '<link rel="stylesheet" href="/vendor/bootstrap/css/bootstrap.min.css">\n'
        '<link rel="stylesheet" href="/outbox.css">\n'
        '</head>\n<body class="container py-4">\n'
        f"{body}\n</body>\n</html>\n"
    )


def list_page(directory: Path) -> str:
    """Return the Outbox page: every saved email, newest first."""
    rows = [
        "<tr>"
        f"<td>{html.escape(entry.sent_at)}</td>"
        f"<td>{html.escape(entry.recipients)}</td>"
        f'<td><a href="/outbox/{html.escape(entry.name)}">'
        f"{html.escape(entry.subject or '(no subject)')}</a></td>"
        f'<td><a href="/outbox/raw/{html.escape(entry.name)}">.eml</a></td>'
        "</tr>"
        for entry in entries(directory)
    ]
    table = (
        '<table class="table table-sm" id="outbox">\n<thead><tr><th>Sent</th><th>To</th>'
        "<th>Subject</th><th>File</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
        if rows
        else '<p id="outbox-empty">No email yet. Subscribe on the <a href="/">home page</a>.</p>'
    )
    intro = (
        "<h1>Outbox</h1>\n<p>Every email the local service sends is kept here (and as an .eml "
        f"file under <code>{html.escape(str(directory))}</code>). Reload to see new ones.</p>"
    )
    return _document("Outbox", f"{intro}\n{table}")


def message_page(path: Path) -> str:
    """Return one email: its headers and its text with every link clickable."""
    with path.open("rb") as handle:
        message = email.message_from_binary_file(handle, policy=email.policy.default)
    headers = "\n".join(
        f"<dt>{name}</dt><dd>{html.escape(str(message.get(name, '')))}</dd>"
        for name in ("Subject", "From", "To", "Date", "List-Unsubscribe")
        if message.get(name)
    )
    text = _text_of(message)
    linked = _link(html.escape(text, quote=False))
    body = (
        f'<p><a href="/outbox">Back to the Outbox</a> · <a href="/outbox/raw/{path.name}">'
        f"raw .eml</a></p>\n<h1>{html.escape(str(message.get('Subject', '')))}</h1>\n"
        f'<dl>{headers}</dl>\n<pre id="message-text">{linked}</pre>'
    )
    return _document(str(message.get("Subject", "Email")), body)


def _text_of(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is not None:
        return part.get_content()
    part = message.get_body(preferencelist=("html",))
    if part is None:
        return ""
    markup = part.get_content()
    # No text part: show the HTML's words, and its links after them, rather than run its markup.
    links = "\n".join(html.unescape(href) for href in _HREF.findall(markup))
    return html.unescape(_TAG.sub(" ", markup)) + "\n\nLinks:\n" + links


def _link(escaped: str) -> str:
    # The text is already escaped, so a URL's "&" is "&amp;" here: keep it so in the href too.
    return _URL.sub(lambda url: f'<a href="{url[0]}">{url[0]}</a>', escaped)


def find(directory: Path, name: str) -> Path | None:
    """Return the saved email of that name, refusing anything that is not a plain file name."""
    if not _SAFE_NAME.match(name):
        return None
    path = directory / name
    return path if path.is_file() else None
