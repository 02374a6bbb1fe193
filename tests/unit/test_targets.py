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
