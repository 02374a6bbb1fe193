"""Input checks at the edge: what is accepted, in what form, and the clear refusals."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import validation
from chalicelib.errors import BadInput


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("someone@example.com", "someone@example.com"),
        ("  Some.One+tag@Example.COM ", "Some.One+tag@example.com"),
        ("someone%40example.com", "someone@example.com"),  # a path segment left encoded
        ("user@bücher.de", "user@xn--bcher-kva.de"),
    ],
)
def test_email_addresses_are_accepted_in_one_form(typed, stored):
    assert validation.email_address(typed) == stored


@pytest.mark.parametrize(
    ("typed", "fragment"),
    [
        ("", "missing"),
        (None, "must be text"),
        (42, "must be text"),
        ("someone", "not valid"),
        ("someone@", "not valid"),
        ("@example.com", "not valid"),
        ("some one@example.com", "not valid"),
        ("someone@localhost", "not valid"),
        ("someone@[127.0.0.1]", "not valid"),
        ('"quoted"@example.com', "not valid"),
        ("ü@example.com", "not valid"),
        ("someone@example.com\r\nBcc: x@example.com", "not allowed"),
        ("some\x00one@example.com", "not allowed"),
        ("some\ud800one@example.com", "not allowed"),
        ("someone%ff%40example.com", "UTF-8"),
        ("a" * 250 + "@example.com", "too long"),
        ("x" * 2000, "too long"),
        ("someone@example.com, other@example.com", "not valid"),
        ("Some One <someone@example.com>", "not valid"),
    ],
)
def test_bad_email_addresses_are_refused_clearly(typed, fragment):
    with pytest.raises(BadInput, match=fragment):
        validation.email_address(typed)


@pytest.mark.parametrize(
    ("typed", "tolerance"),
    [
        (None, "30"),
        ("", "30"),
        ("1", "1"),
        ("365", "365"),
        ("07", "7"),
        ("auto", "auto"),
        ("AUTO", "auto"),
        (14, "14"),
    ],
)
def test_tolerance_is_a_day_count_or_auto(typed, tolerance):
    assert validation.tolerance(typed) == tolerance


@pytest.mark.parametrize(
    "typed", ["0", "366", "-1", "1.5", "1e2", "thirty", "٣", " ", "+5", "1000", True, [], 3.0]
)
def test_other_tolerances_are_refused(typed):
    with pytest.raises(BadInput, match="days must be a whole number from 1 to 365 or 'auto'"):
        validation.tolerance(typed)


def test_tolerance_value_is_what_evaluate_takes():
    assert validation.tolerance_value("30") == 30
    assert validation.tolerance_value("auto") == "auto"


@pytest.mark.parametrize(("typed", "port"), [(None, None), ("", None), ("443", 443), (8443, 8443)])
def test_ports(typed, port):
    assert validation.port(typed) == port


@pytest.mark.parametrize("typed", ["0", "65536", "-1", "https", "44 3", True])
def test_bad_ports_are_refused(typed):
    with pytest.raises(BadInput, match="port"):
        validation.port(typed)


@pytest.mark.parametrize(
    ("typed", "port", "key"),
    [
        ("example.com", None, "example.com:443"),
        ("Example.COM.", None, "example.com:443"),
        ("example.com:8443", None, "example.com:8443"),
        ("example.com", 8443, "example.com:8443"),
        ("https://example.com:8443/path?q=1", None, "example.com:8443"),
        ("[2001:db8::1]:443", None, "[2001:db8::1]:443"),
        ("bücher.example", None, "xn--bcher-kva.example:443"),
        ("example.com%3A8443", None, "example.com:8443"),
    ],
)
def test_targets_are_parsed_to_their_key(typed, port, key):
    assert validation.target(typed, port).key == key


@pytest.mark.parametrize(
    ("typed", "port", "fragment"),
    [
        ("", None, "missing"),
        (None, None, "must be text"),
        ("example.com:8443", 443, "differs"),
        ("exa mple.com", None, "not a valid"),
        ("example.com:99999", None, "port"),
        ("x" * 400, None, "too long"),
        ("example.com\n", None, "not allowed"),
        ("example%ff.com", None, "UTF-8"),
    ],
)
def test_bad_targets_are_refused_clearly(typed, port, fragment):
    with pytest.raises(BadInput, match=fragment):
        validation.target(typed, port)


def test_tokens_look_like_ours():
    import secrets

    token = secrets.token_urlsafe(24)
    assert validation.token(token) == token


@pytest.mark.parametrize(
    "typed", [None, "", "short", "x" * 200, "abc def ghi jkl mno", "é" * 20, 5]
)
def test_other_tokens_are_refused(typed):
    with pytest.raises(BadInput, match="uuid"):
        validation.token(typed)


def test_feedback_fields_are_checked_and_kept():
    feedback = validation.feedback(
        {"name": " Ada ", "email": "ada@example.com", "message": "Line one\nLine two\t!"}
    )
    assert feedback == validation.Feedback("Ada", "ada@example.com", "Line one\nLine two\t!")
    assert feedback.to_dict() == {
        "name": "Ada",
        "email": "ada@example.com",
        "message": "Line one\nLine two\t!",
    }


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ([], "object"),
        ({"email": "ada@example.com", "message": "hi"}, "name is missing"),
        ({"name": "Ada", "email": "ada@example.com"}, "message is missing"),
        ({"name": "Ada", "message": "hi"}, "email address is missing"),
        ({"name": "Ada", "email": "nope", "message": "hi"}, "not valid"),
        ({"name": "A" * 101, "email": "ada@example.com", "message": "hi"}, "too long"),
        ({"name": "Ada", "email": "ada@example.com", "message": "m" * 5001}, "too long"),
        ({"name": "Ada\r\nBcc: x", "email": "ada@example.com", "message": "hi"}, "not allowed"),
        ({"name": "Ada", "email": "ada@example.com", "message": "a\x1b[31m"}, "not allowed"),
        ({"name": "Ada", "email": "ada@example.com", "message": "\udfff"}, "not allowed"),
        ({"name": ["Ada"], "email": "ada@example.com", "message": "hi"}, "must be text"),
        ({"name": "Ada\u202egnp.exe", "email": "ada@example.com", "message": "hi"}, "not allowed"),
        ({"name": "Ada\u2028Eve", "email": "ada@example.com", "message": "hi"}, "not allowed"),
        ({"name": "Ada", "email": "ada@example.com", "message": "a\u2067b"}, "not allowed"),
        ({"name": "Ada", "email": "ada@example.com", "message": "hi", "x": 1}, "unexpected"),
        (
            {"name": "Ada", "email": "a@example.com", "message": "hi", "\r\nX: y": 1},
            r"'\\r\\nX: y'",
        ),
    ],
)
def test_bad_feedback_is_refused_clearly(fields, fragment):
    with pytest.raises(BadInput, match=fragment):
        validation.feedback(fields)


TEXT = st.one_of(
    st.text(max_size=400),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40).map(lambda t: t + "@example.com"),
    st.from_regex(r"[a-z0-9.%:\[\]/@-]{0,60}", fullmatch=True),
)
ANYTHING = st.one_of(TEXT, st.none(), st.integers(), st.booleans(), st.lists(st.integers()))


@settings(max_examples=300, deadline=None)
@given(value=ANYTHING, port=st.one_of(st.none(), st.integers(1, 65535)))
def test_every_check_answers_a_value_or_a_clear_refusal(value, port):
    checks = [
        validation.email_address,
        validation.tolerance,
        validation.port,
        validation.token,
        lambda v: validation.target(v, port),
        lambda v: validation.feedback({"name": v, "email": v, "message": v}),
    ]
    for check in checks:
        try:
            check(value)
        except BadInput as error:
            assert error.message and len(error.message) < 2000


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("", None), ("SMTP", "smtp"), ("postgresql", "postgres")]
)
def test_protocol(value, expected):
    assert validation.protocol(value) == expected


@pytest.mark.parametrize("value", ["telnet", "smtp\r\n", "x" * 50, 25])
def test_protocol_refuses_unknown_names(value):
    with pytest.raises(BadInput):
        validation.protocol(value)


def test_target_with_protocol_and_port():
    assert validation.target("mail.example.com", None, "smtp").key == "smtp://mail.example.com:25"
    assert validation.target("mail.example.com", 2525, "smtp").key == "smtp://mail.example.com:2525"
    assert validation.target("smtp://mail.example.com", 25).key == "smtp://mail.example.com:25"
    assert validation.target("smtp://mail.example.com", 587).port == 587  # port= fills a gap
    with pytest.raises(BadInput, match="differs"):
        validation.target("smtp://mail.example.com:25", 587)
