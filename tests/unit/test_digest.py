"""The digest's order, words and headers, from check summaries (pure)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from chalicelib import digest
from chalicelib.config import Settings

SETTINGS = Settings(site_url="https://sslnotify.test", api_url="https://api.sslnotify.test")


def item(target, kind="alert", status="expiring", days_left=10, problems=("expiring",)):
    return digest.DigestItem(
        target=target,
        kind=kind,
        status=status,
        days_left=days_left,
        not_after="2027-02-05T12:00:00Z",
        problems=tuple(problems),
        token=f"token-of-{target.split(':')[0]}-xxxxxxxx",
    )


MIXED = [
    item("fine.example:443", kind="fixed", status="ok", days_left=80, problems=()),
    item("later.example:443", days_left=12),
    item("down.example:443", status="error", days_left=None, problems=("connect_error",)),
    item("gone.example:443", status="invalid", days_left=-2, problems=("expired",)),
    item("soon.example:8443", days_left=1),
    item("wrong.example:443", status="invalid", days_left=200, problems=("hostname_mismatch",)),
]


def test_items_are_ordered_broken_unreachable_soonest_then_fixed():
    names = [entry.name for entry in digest.ordered(MIXED)]
    assert names == [
        "gone.example",
        "wrong.example",
        "down.example",
        "soon.example:8443",
        "later.example",
        "fine.example",
    ]


def test_the_subject_names_the_count_and_the_worst_problem():
    assert digest.subject(MIXED) == "SSL alerts for 6 certificates: gone.example expired 2 days ago"
    fixed_only = [MIXED[0], item("also.example:443", kind="fixed", status="ok", problems=())]
    assert digest.subject(fixed_only).startswith("2 SSL certificates are fine again")


def test_each_problem_is_in_plain_words_with_its_own_unsubscribe_link():
    message = digest.render(SETTINGS, "ann@example.org", MIXED, "D" * 44)
    text = message.text
    assert "1. gone.example expired 2 days ago\nThe certificate expired on 5 February 2027" in text
    assert "wrong.example has a problem: the certificate is not valid for this name" in text
    assert "down.example could not be checked\nNothing answers on its port." in text
    assert "fine.example is fine again" in text
    links = [line.rsplit(" ", 1)[1] for line in text.splitlines() if "unsubscribe.html" in line]
    assert len(links) == 6
    assert {parse_qs(urlsplit(link).query)["uuid"][0] for link in links} == {
        entry.token for entry in MIXED
    }
    headers = dict(message.headers)
    assert headers["List-Unsubscribe"] == (
        "<https://api.sslnotify.test/user/ann%40example.org/unsubscribe-digest?token="
        + "D" * 44
        + ">"
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.kind == "digest" and message.to == "ann@example.org"
