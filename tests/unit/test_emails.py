"""Rendering every email: plain words, the right links, headers that cannot be injected."""

from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib import emails
from chalicelib.config import Settings

SETTINGS = Settings(site_url="https://sslnotify.test", api_url="https://api.sslnotify.test")
EMAIL = "Ann+certs@example.org"
TOKEN = "tok/en+=?&x"


def result(**overrides):
    base = {
        "host": "example.com",
        "port": 443,
        "status": "expiring",
        "alert": True,
        "daysLeft": 5,
        "notAfter": "2026-12-02T12:00:00Z",
        "issuedBy": "Test CA",
        "subject": "CN=example.com",
        "problems": [
            {"code": "expiring", "message": "The certificate expires in 5 days (tolerance 30)."}
        ],
        "earliestExpiry": {
            "subject": "CN=example.com",
            "notAfter": "2026-12-02T12:00:00Z",
            "daysLeft": 5,
        },
    }
    return {**base, **overrides}


def test_confirmation_carries_an_encoded_confirm_link():
    message = emails.confirmation(SETTINGS, EMAIL, "example.com:443", "30", TOKEN)
    assert message.kind == "confirmation"
    assert message.to == EMAIL
    assert "example.com" in message.subject
    link = next(line for line in message.text.splitlines() if "confirm.html" in line)
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://sslnotify.test/confirm.html"
    assert parse_qs(parts.query) == {
        "user": [EMAIL],
        "uuid": [TOKEN],
        "domain": ["example.com"],
        "days": ["30"],
    }
    assert "within 30 days" in message.text
    assert message.headers == ()


def test_confirmation_explains_the_auto_tolerance_and_a_port():
    message = emails.confirmation(SETTINGS, EMAIL, "example.com:8443", "auto", TOKEN)
    assert "example.com:8443" in message.text
    assert "a third of its lifetime" in message.text


def test_alert_says_which_certificate_when_and_how_to_unsubscribe():
    message = emails.alert(SETTINGS, EMAIL, TOKEN, "example.com:443", result())
    assert message.subject == "SSL alert for example.com: certificate expires in 5 days"
    text = message.text
    assert "leaf certificate" in text
    assert "in 5 days" in text
    assert "2 December 2026, 12:00 UTC" in text
    assert "Test CA" in text
    assert "The certificate expires in 5 days (tolerance 30)." in text
    link = next(line for line in text.splitlines() if "unsubscribe.html" in line)
    assert parse_qs(urlsplit(link).query) == {
        "user": [EMAIL],
        "uuid": [TOKEN],
        "domain": ["example.com"],
    }


def test_alert_carries_one_click_unsubscribe_headers():
    headers = dict(emails.alert(SETTINGS, EMAIL, TOKEN, "example.com:443", result()).headers)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = headers["List-Unsubscribe"]
    assert url.startswith("<https://api.sslnotify.test/user/Ann%2Bcerts%40example.org/unsubscribe?")
    assert parse_qs(urlsplit(url.strip("<>")).query) == {"uuid": [TOKEN]}


def test_alert_for_an_intermediate_names_the_intermediate():
    chain = result(
        daysLeft=80,
        notAfter="2027-02-15T00:00:00Z",
        problems=[{"code": "chain_expiring", "message": "Intermediate CA expires in 3 days."}],
        earliestExpiry={
            "subject": "CN=Test Intermediate",
            "notAfter": "2026-11-30T00:00:00Z",
            "daysLeft": 3,
        },
    )
    message = emails.alert(SETTINGS, EMAIL, TOKEN, "example.com:443", chain)
    assert (
        message.subject == "SSL alert for example.com: intermediate certificate expires in 3 days"
    )
    assert "An intermediate certificate" in message.text
    assert "CN=Test Intermediate" in message.text
    assert "30 November 2026" in message.text
    assert "still valid" in message.text


@pytest.mark.parametrize(
    ("overrides", "subject_end", "phrase"),
    [
        (
            {
                "status": "invalid",
                "daysLeft": -3,
                "problems": [{"code": "expired", "message": "x"}],
            },
            "certificate expired",
            "expired 3 days ago",
        ),
        (
            {"status": "invalid", "problems": [{"code": "hostname_mismatch", "message": "m"}]},
            "certificate problem",
            "has a problem",
        ),
        (
            {
                "status": "error",
                "daysLeft": None,
                "notAfter": None,
                "issuedBy": None,
                "problems": [{"code": "timeout", "message": "No answer within 10 s."}],
            },
            "could not check the certificate",
            "two daily checks in a row",
        ),
    ],
)
def test_alert_words_for_each_kind_of_problem(overrides, subject_end, phrase):
    message = emails.alert(SETTINGS, EMAIL, TOKEN, "example.com:443", result(**overrides))
    assert message.subject == f"SSL alert for example.com: {subject_end}"
    assert phrase in message.text


def test_fixed_is_short_and_keeps_the_unsubscribe_link():
    fine = result(
        status="ok", alert=False, daysLeft=89, notAfter="2027-02-24T12:00:00Z", problems=[]
    )
    message = emails.fixed(SETTINGS, EMAIL, TOKEN, "example.com:443", fine)
    assert message.kind == "fixed"
    assert message.subject == "SSL certificate for example.com is fine again"
    assert "89 days left" in message.text
    assert "unsubscribe.html" in message.text
    assert dict(message.headers)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_html_part_is_escaped_and_links_are_clickable():
    evil = result(problems=[{"code": "expiring", "message": "<script>alert(1)</script>"}])
    message = emails.alert(SETTINGS, EMAIL, TOKEN, "example.com:443", evil)
    assert "<script>" not in message.html
    assert "&lt;script&gt;" in message.html
    assert '<a href="https://sslnotify.test/unsubscribe.html?user=' in message.html
    assert "<ul><li>" in message.html


def test_feedback_goes_to_the_feedback_mailbox_and_replies_to_its_author():
    message = emails.feedback(SETTINGS, "Ann\r\nBcc: x@evil.test", "ann@example.org", "Thanks!")
    assert message.to == SETTINGS.feedback_email
    assert message.reply_to == "ann@example.org"
    assert "\n" not in message.subject and "\r" not in message.subject
    assert "Thanks!" in message.text


def test_report_goes_to_the_operator():
    message = emails.report(SETTINGS, "3 errors")
    assert (message.to, message.kind, message.text) == (
        SETTINGS.operator_email,
        "report",
        "3 errors\n",
    )


@pytest.mark.parametrize(
    ("target", "result_", "shown"),
    [
        ("example.com:443", None, "example.com"),
        ("example.com:8443", None, "example.com:8443"),
        ("[::1]:443", None, "[::1]"),
        ("[::1]:8443", {"host": "::1", "port": 8443}, "[::1]:8443"),
        ("xn--bcher-kva.example:8443", None, "bücher.example:8443"),
        ("xn--bcher-kva.example:443", {"host": "bücher.example", "port": 443}, "bücher.example"),
        ("smtp://mail.example:25", None, "smtp://mail.example"),
        ("smtp://mail.example:2525", None, "smtp://mail.example:2525"),
        (
            "imap://xn--bcher-kva.example:143",
            {"host": "bücher.example", "port": 143, "protocol": "imap"},
            "imap://bücher.example",
        ),
        (
            "mail.example:993",
            {"host": "mail.example", "port": 993, "protocol": "tls"},
            "mail.example:993",
        ),
    ],
)
def test_display_target(target, result_, shown):
    assert emails.display_target(target, result_) == shown


def test_the_wire_form_keeps_the_unsubscribe_url_whole_and_encodes_other_words():
    import email
    import email.policy
    import re

    from chalicelib.mailer import to_mime

    long_address = "ann.example.with.a.long.name+certificates@mail.example.org"
    message = emails.alert(
        SETTINGS, long_address, TOKEN, "bücher.example:443", result(host="bücher.example")
    )
    raw = to_mime(message, "sslnotify <noreply@sslnotify.test>")
    unsubscribe = next(line for line in raw.split(b"\n") if line.startswith(b"List-Unsub"))
    assert unsubscribe == f"List-Unsubscribe: {dict(message.headers)['List-Unsubscribe']}".encode()
    words = re.findall(rb"=\?utf-8\?q\?[^?]*\?=", raw)
    assert words and all(len(word) <= 75 for word in words)  # RFC 2047's limit
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == message.subject
    assert parsed["To"] == long_address
    assert parsed.get_body(("plain",)).get_content() == message.text
    assert parsed.get_body(("html",)).get_content() == message.html


def test_an_early_renewal_request_names_the_deadline_the_reason_and_what_to_do():
    asked = result(
        daysLeft=50,
        problems=[
            {
                "code": "renewal_requested",
                "message": "your CA asks you to renew before 3 December 2026, because of "
                "https://ca.example/incident",
            }
        ],
        renewal={
            "ct": None,
            "ari": {
                "windowStart": "2026-11-30T00:00:00Z",
                "windowEnd": "2026-12-03T00:00:00Z",
                "explanationURL": "https://ca.example/incident",
            },
        },
    )
    message = emails.alert(SETTINGS, EMAIL, TOKEN, "example.com:443", asked)
    assert message.subject == "SSL alert for example.com: your CA asks for an early renewal"
    text = " ".join(message.text.split())
    assert "asks you to renew it early, before 3 December 2026" in text
    assert "because of https://ca.example/incident" in text
    assert "What to do: renew the certificate now with your ACME client" in text
    assert '<a href="https://ca.example/incident">' in message.html


def test_an_expiring_certificate_without_outside_evidence_gets_no_advice_paragraph():
    message = emails.alert(SETTINGS, EMAIL, TOKEN, "example.com:443", result())
    assert "What to do" not in message.text


def test_alert_says_which_address_serves_what():
    """DESIGN 3.1b: the IPv4 server renewed, the IPv6 one forgotten."""
    dual_stack = result(
        daysLeft=3,
        notAfter="2026-12-03T12:00:00Z",
        problems=[
            {
                "code": "expiring",
                "message": "2001:db8::7 serves a certificate that expires in 3 days (2026-12-03)",
                "addresses": ["2001:db8::7"],
            }
        ],
        addresses=[
            {"address": "2001:db8::7", "status": "expiring", "problems": ["expiring"],
             "daysLeft": 3, "notAfter": "2026-12-03T12:00:00Z", "fingerprint": "aa" * 32,
             "reason": None},
            {"address": "192.0.2.7", "status": "ok", "problems": [], "daysLeft": 89,
             "notAfter": "2027-02-27T12:00:00Z", "fingerprint": "bb" * 32, "reason": None},
            {"address": "2001:db8::8", "status": "not_checked", "problems": [],
             "daysLeft": None, "notAfter": None, "fingerprint": None,
             "reason": "this checker has no IPv6 route"},
        ],
    )  # fmt: skip
    text = emails.alert(SETTINGS, EMAIL, TOKEN, "example.com:443", dual_stack).text
    assert "example.com has several addresses; each serves:" in text
    assert (
        "- 2001:db8::7 serves a certificate valid until 3 December 2026, 12:00 UTC "
        "(3 days left, expiring soon)." in text
    )
    assert (
        "- 192.0.2.7 serves a certificate valid until 27 February 2027, 12:00 UTC (89 days left)."
        in text
    )
    assert "- 2001:db8::8: not checked (this checker has no IPv6 route)." in text
    assert "- 2001:db8::7 serves a certificate that expires in 3 days (2026-12-03)." in text
    single = emails.alert(SETTINGS, EMAIL, TOKEN, "example.com:443", result()).text
    assert "several addresses" not in single
