"""Parsing targets as users type them."""

from __future__ import annotations

import pytest

from chalicelib.checker.targets import Target, parse_target
from chalicelib.errors import BadInput


@pytest.mark.parametrize(
    ("text", "host", "host_ascii", "port", "is_ip"),
    [
        ("example.com", "example.com", "example.com", 443, False),
        ("EXAMPLE.com.", "example.com", "example.com", 443, False),
        ("example.com:8443", "example.com", "example.com", 8443, False),
        ("  example.com  ", "example.com", "example.com", 443, False),
        ("https://example.com:8443/path?x=1#y", "example.com", "example.com", 8443, False),
        ("https://example.com/", "example.com", "example.com", 443, False),
        ("example.com/path", "example.com", "example.com", 443, False),
        ("bücher.de", "bücher.de", "xn--bcher-kva.de", 443, False),
        ("Bücher.DE:8443", "bücher.de", "xn--bcher-kva.de", 8443, False),
        ("xn--bcher-kva.de", "bücher.de", "xn--bcher-kva.de", 443, False),
        ("https://bücher.de/x", "bücher.de", "xn--bcher-kva.de", 443, False),
        ("例え.テスト", "例え.テスト", "xn--r8jz45g.xn--zckzah", 443, False),
        ("_acme.example.com", "_acme.example.com", "_acme.example.com", 443, False),
        ("localhost", "localhost", "localhost", 443, False),
        ("192.0.2.1", "192.0.2.1", "192.0.2.1", 443, True),
        ("192.0.2.1:8443", "192.0.2.1", "192.0.2.1", 8443, True),
        ("[::1]:8443", "::1", "::1", 8443, True),
        ("[2001:DB8::1]", "2001:db8::1", "2001:db8::1", 443, True),
        ("2001:db8::1", "2001:db8::1", "2001:db8::1", 443, True),
        ("https://[2001:db8::1]:8443/", "2001:db8::1", "2001:db8::1", 8443, True),
        # Spellings of IPv4 that resolvers accept are normalised, so nothing hides behind them.
        ("2130706433", "127.0.0.1", "127.0.0.1", 443, True),
        ("0x7f.1", "127.0.0.1", "127.0.0.1", 443, True),
        ("127.1", "127.0.0.1", "127.0.0.1", 443, True),
        ("0177.0.0.1", "127.0.0.1", "127.0.0.1", 443, True),
        ("127.0.0.1.", "127.0.0.1", "127.0.0.1", 443, True),
        ("0x7f000001:8443", "127.0.0.1", "127.0.0.1", 8443, True),
        # Full-width digits and ideographic dots map (UTS 46) to an address, as resolvers do.
        ("\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127.0.0.1", "127.0.0.1", 443, True),
        ("127\u30020\u30020\u30021:8443", "127.0.0.1", "127.0.0.1", 8443, True),
        (
            "\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com",
            "example.com",
            "example.com",
            443,
            False,
        ),
    ],
)
def test_parse_target(text, host, host_ascii, port, is_ip):
    assert parse_target(text) == Target(host=host, host_ascii=host_ascii, port=port, is_ip=is_ip)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "example.com:0",
        "example.com:65536",
        "example.com:https",
        "example.com:",
        "http://",
        "https://example.com:99999/",
        "[::1",
        "[::1]8443",
        "[example.com]:443",
        "exa mple.com",
        "-example.com",
        "example..com",
        "a" * 64 + ".com",
        "1.2.3.256",
        "1.2.3.4.5",
        "example.0x1",
        "xn--zz.com",
        "fe80::1%eth0",
    ],
)
def test_malformed_targets_are_bad_input(text):
    with pytest.raises(BadInput):
        parse_target(text)


def test_default_port_applies_only_without_a_port():
    assert parse_target("example.com", default_port=8443).port == 8443
    assert parse_target("example.com:9443", default_port=8443).port == 9443


def test_key_and_display():
    assert parse_target("bücher.de").key == "xn--bcher-kva.de:443"
    assert parse_target("bücher.de").display == "bücher.de:443"
    assert parse_target("[::1]:8443").key == "[::1]:8443"


@pytest.mark.parametrize(
    ("text", "protocol", "port", "key"),
    [
        ("smtp://mail.example.com", "smtp", 25, "smtp://mail.example.com:25"),
        ("SMTP://Mail.Example.com/", "smtp", 25, "smtp://mail.example.com:25"),
        ("submission://mail.example.com", "submission", 587, "submission://mail.example.com:587"),
        ("imap://mail.example.com", "imap", 143, "imap://mail.example.com:143"),
        ("pop3://mail.example.com", "pop3", 110, "pop3://mail.example.com:110"),
        ("ftp://files.example.com/pub/x", "ftp", 21, "ftp://files.example.com:21"),
        ("xmpp://chat.example.com", "xmpp", 5222, "xmpp://chat.example.com:5222"),
        ("ldap://dir.example.com", "ldap", 389, "ldap://dir.example.com:389"),
        ("postgres://db.example.com", "postgres", 5432, "postgres://db.example.com:5432"),
        (
            "postgresql://user@db.example.com/app",
            "postgres",
            5432,
            "postgres://db.example.com:5432",
        ),
        ("smtp://mail.example.com:2525", "smtp", 2525, "smtp://mail.example.com:2525"),
        ("smtp://[2001:db8::1]", "smtp", 25, "smtp://[2001:db8::1]:25"),
        ("smtp://bücher.de", "smtp", 25, "smtp://xn--bcher-kva.de:25"),
        ("https://example.com", "tls", 443, "example.com:443"),
        ("http://example.com/page", "tls", 443, "example.com:443"),
        ("smtps://mail.example.com", "tls", 465, "mail.example.com:465"),
        ("imaps://mail.example.com", "tls", 993, "mail.example.com:993"),
        ("pop3s://mail.example.com", "tls", 995, "mail.example.com:995"),
        ("ldaps://dir.example.com", "tls", 636, "dir.example.com:636"),
        ("imaps://mail.example.com:9993", "tls", 9993, "mail.example.com:9993"),
    ],
)
def test_url_schemes_name_the_protocol_and_default_port(text, protocol, port, key):
    target = parse_target(text)
    assert (target.protocol, target.port, target.key) == (protocol, port, key)
    assert parse_target(target.key) == target  # the storage key reads back as the same target


@pytest.mark.parametrize("protocol", ["smtp", "submission", "imap", "pop3", "ftp", "xmpp", "ldap"])
def test_protocol_applies_to_a_target_without_scheme(protocol):
    default = parse_target(f"{protocol}://example.com").port
    assert parse_target("example.com", protocol=protocol).port == default
    assert parse_target("example.com:10000", protocol=protocol) == Target(
        "example.com", "example.com", 10000, False, protocol
    )
    assert parse_target(f"{protocol}://example.com", protocol=protocol.upper()).port == default


def test_protocol_tls_and_aliases():
    assert parse_target("example.com", protocol="tls").key == "example.com:443"
    assert (
        parse_target("db.example.com", protocol="postgresql").key
        == "postgres://db.example.com:5432"
    )
    assert parse_target("https://example.com", protocol="tls").protocol == "tls"


def test_explicit_default_port_beats_the_schemes():
    assert parse_target("smtp://mail.example.com", default_port=2525).port == 2525
    assert parse_target("https://example.com/", default_port=8443).port == 8443


@pytest.mark.parametrize(
    ("text", "protocol"),
    [
        ("gopher://example.com", None),
        ("ssh://example.com", None),
        ("smtp://mail.example.com", "imap"),
        ("https://example.com", "smtp"),
        ("example.com", "telnet"),
        ("example.com", ""),
        ("smtp://", None),
    ],
)
def test_unknown_or_conflicting_protocols_are_bad_input(text, protocol):
    with pytest.raises(BadInput):
        parse_target(text, protocol=protocol)


@pytest.mark.parametrize(
    "text",
    [
        "example.com:0",
        "example.com:00",
        "[2001:db8::1]:0",
        "192.0.2.1:0",
        "https://example.com:0/",
        "https://example.com:00000/",
        "https://[2001:db8::1]:0/",
        "smtp://mail.example.com:0",
        "imaps://mail.example.com:0",
    ],
)
def test_port_zero_is_refused_in_every_form(text):
    with pytest.raises(BadInput, match="port"):
        parse_target(text)


def test_port_zero_as_default_is_refused():
    with pytest.raises(BadInput, match="port"):
        parse_target("example.com", default_port=0)


def test_display_and_shown_name_the_protocol():
    smtp = parse_target("smtp://bücher.de")
    assert smtp.display == "smtp://bücher.de:25"
    assert smtp.shown == "smtp://bücher.de"
    assert parse_target("smtp://bücher.de:2525").shown == "smtp://bücher.de:2525"
    assert parse_target("smtp://[::1]").shown == "smtp://[::1]"
    assert parse_target("example.com").shown == "example.com"
    assert parse_target("example.com:8443").shown == "example.com:8443"
    assert parse_target("imaps://example.com").shown == "example.com:993"
