"""Hostile input: thousands of generated requests to every route and payloads to every Lambda.

Every HTTP answer is below 500; every rejection is a JSON 4xx with Code and Message; a
rejected request stores nothing and sends no mail. Every Lambda handler answers a
malformed payload with {"errorMessage"} instead of crashing. The run is short by default
and long with SSLNOTIFY_FUZZ_EXAMPLES=N (examples per test).
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import domains

from tests.security.conftest import (
    FUZZ_EXAMPLES,
    emulated_items,
    fuzz_examples,
    record_figure,
    sent_messages,
)

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
STORED_TABLES = ("subscriptions", "pending", "suppression", "checkstate")
FUZZ = settings(
    max_examples=1,  # replaced per test below
    deadline=None,
    database=None,
    derandomize=not FUZZ_EXAMPLES,  # the short default run is the same every time
    suppress_health_check=list(HealthCheck),
)

# Text that hurts: control characters, bidi overrides, zero-width and combining marks,
# homoglyphs, full-width forms, lone surrogates (where the channel can carry them), long runs.
TRICKS = [
    "\u202e",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\u0301",
    "\uff0e",
    "\u3002",
    "\u0430",
    "\x00",
    "\r\n",
    "\x1b[31m",
    "%00",
    "%",
    "%%",
    "%2F",
    "%C0%AE",
    "../",
    "'\"<script>",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "@",
    "@@",
    ":",
    "[",
    "]",
    "xn--",
    "xn--zz",
    ".",
    "..",
    "A" * 300,
    "9" * 40,
    "\U0001d7cf\U0001d7d0\U0001d7d5.\U0001d7ce.\U0001d7ce.\U0001d7cf",
    "例え.テスト",
]
trick = st.sampled_from(TRICKS)
wild_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=64
) | st.text(min_size=1, max_size=4000, alphabet=st.characters(codec="utf-8"))
hostile_text = st.one_of(
    wild_text,
    st.lists(st.one_of(trick, wild_text), min_size=1, max_size=6).map("".join),
    st.builds(lambda a, b: f"{a}@{b}", wild_text, wild_text),
    st.builds(lambda a, b: f"{a}.{b}", wild_text, st.sampled_from(["com", "localhost", "1"])),
)
path_segment = st.one_of(
    hostile_text.map(lambda text: quote(text, safe="")),
    st.emails().map(lambda text: quote(text, safe="")),
    st.binary(min_size=1, max_size=200).map(lambda raw: quote(raw, safe="")),
    st.sampled_from(["someone%40example.com", "a@b.co", "example.com", "127.0.0.1"]),
)
query_value = st.one_of(
    hostile_text,
    st.from_regex(r"[A-Za-z0-9_-]{16,128}", fullmatch=True),
    domains(),
    st.sampled_from(["", "0", "-1", "366", "auto", "AUTO", "1e3", "0x10", "30", "65536", "1"]),
    st.sampled_from(["smtp", "tls", "POSTGRESQL", "smtp://example.com:0", "gopher://x"]),
    st.integers(-(2**70), 2**70).map(str),
)
query = st.dictionaries(
    st.sampled_from(["domain", "days", "uuid", "token", "port", "protocol", "host", "email", "x"])
    | wild_text,
    query_value,
    max_size=4,
)
content_type = st.sampled_from(
    [
        None,
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "text/plain",
        "application/xml",
        "application/json; charset=latin-1",
        "application/x-www-form-urlencoded; charset=utf-16",
        "",
        "*/*",
        "application/octet-stream",
    ]
)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)
body = st.one_of(
    st.just(b""),
    json_value.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {},
        optional={"name": json_value, "email": json_value, "message": json_value, "x": json_value},
    ).map(lambda value: json.dumps(value).encode()),
    st.dictionaries(hostile_text, hostile_text, max_size=25).map(
        lambda value: urlencode(value).encode()
    ),
    st.binary(max_size=2000),
    st.sampled_from(
        [
            b"{",
            b'{"name": ',
            b"[" * 100_000,
            b'{"a":' * 5000,
            b"name=a&name=b&email=x&message=y",
            b"\xff\xfe\x00n\x00a",
            b'{"name":"a","email":"a@b.co","message":"' + b"x" * 20_000 + b'"}',
            b"x" * 2_000_000,
        ]
    ),
)
ROUTES = [
    ("GET", "/check/{}"),
    ("PUT", "/user/{}"),
    ("DELETE", "/user/{}"),
    ("POST", "/user/{}/unsubscribe"),
    ("POST", "/user/{}/unsubscribe-digest"),
    ("GET", "/user/{}/subscriptions"),
    ("DELETE", "/user/{}/subscriptions"),
    ("POST", "/user/{}/calendar"),
    ("GET", "/calendar/{}"),
    ("POST", "/manage"),
    ("POST", "/feedback"),
]
METHODS = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"]


@cache
def openapi() -> dict:
    """Return docs/openapi.yaml."""
    return yaml.safe_load(OPENAPI.read_text())


def documented_statuses(method: str, template: str) -> set[int]:
    """Return the statuses docs/openapi.yaml lists for a route (a wrong method: 405)."""
    name = {"/check": "{host}", "/calendar": "{name}"}.get(template[: template.find("/", 1)])
    path = template.replace("{}", name or "{email}")
    operation = openapi()["paths"][path].get(method.lower())
    return {int(code) for code in operation["responses"]} if operation else {405}


def stored_state() -> tuple:
    """Return what each stored table holds and how many emails went out."""
    return (*(tuple(emulated_items(key)) for key in STORED_TABLES), len(sent_messages()))


def assert_clear_answer(response, request: str) -> None:
    """No 5xx; a rejection is a JSON object with a Code and a readable Message."""
    assert response.status_code < 500, f"{request} -> {response.status_code} {response.body[:300]}"
    if response.status_code < 400:
        return
    try:
        answer = json.loads(response.body)
    except ValueError:
        pytest.fail(f"{request} -> {response.status_code} with a body that is not JSON")
    assert isinstance(answer, dict) and {"Code", "Message"} <= set(answer), (request, answer)
    message = answer["Message"]
    assert isinstance(message, str) and message.strip(), (request, answer)
    assert len(message) <= 1000, (request, len(message))
    assert not any(unicodedata.category(c) == "Cc" for c in message), (request, message)


@pytest.fixture
def fuzz_api(api, generous_limits, network_jail):
    """Return the API client with rate limits out of the way and the network jailed."""
    return api


def send(api, method: str, path: str, params: dict, content: str | None, payload: bytes):
    """Send one request; return the response and a short description of it."""
    if params:
        path += "?" + urlencode(params)
    headers = {} if content is None else {"Content-Type": content}
    return api.http.request(method, path, headers=headers, body=payload), f"{method} {path[:200]}"


def run_examples(test, count: int):
    """Run a hypothesis test with `count` examples (or SSLNOTIFY_FUZZ_EXAMPLES)."""
    return settings(FUZZ, max_examples=fuzz_examples(count))(test)


def test_every_route_survives_generated_requests(fuzz_api, network_jail):
    """Generated paths, queries, content types and bodies on every route: clear 4xx or 200."""
    tried = []

    @given(
        route=st.sampled_from(ROUTES),
        segment=path_segment,
        params=query,
        content=content_type,
        payload=body,
    )
    def one(route, segment, params, content, payload):
        method, template = route
        before = stored_state()
        response, request = send(
            fuzz_api, method, template.format(segment), params, content, payload
        )
        tried.append(1)
        assert_clear_answer(response, request)
        assert response.status_code in documented_statuses(method, template), request
        if response.status_code >= 400:
            assert stored_state() == before, f"{request} was refused but changed the tables"
        # Any dial the check made went to an address the guard allows (and was intercepted).
        for host, _port in network_jail.take():
            from chalicelib.checker.ssrf import refusal_reason

            assert refusal_reason(host) is None, (request, host)

    run_examples(one, 600)()
    record_figure("hostile HTTP requests", len(tried))


def test_wrong_methods_are_refused_clearly(fuzz_api):
    """Every route answered with a method it does not have: a JSON 405, nothing stored."""
    tried = 0
    before = stored_state()
    for _method, template in ROUTES:
        path = template.format("someone%40example.com")
        allowed = {m for m, t in ROUTES if t == template} | {"OPTIONS"}
        for method in METHODS:
            if method in allowed:
                continue
            response = fuzz_api.http.request(method, path, headers={}, body=b"")
            tried += 1
            assert response.status_code == 405, (method, path, response.status_code)
            assert_clear_answer(response, f"{method} {path}")
    assert stored_state() == before
    record_figure("hostile HTTP requests", tried)


BAD_FEEDBACK = [
    ("application/json", b"x" * 2_000_000),
    ("application/x-www-form-urlencoded", b"name=" + b"a" * 100_000),
    ("application/json", b"[" * 200_000),
    ("application/json", b'{"name": "\\ud800", "email": "a@b.co", "message": "m"}'),
    ("application/json", b'{"name": "a", "email": "a@b.co", "message": "m", "x": "b"}'),
    ("application/x-www-form-urlencoded", b"&".join(b"f%d=1" % i for i in range(5000))),
    ("application/x-www-form-urlencoded", b"name=a&name=b&email=a%40b.co&message=m"),
    ("text/xml", b"<feedback/>"),
    ("application/json", b"\xef\xbb\xbf{}"),
    ("application/json", b"null"),
    ("application/json", b'"just a string"'),
    ("application/json", b"1e999999"),
    ("application/json", b'{"name": "a", "email": "not an address", "message": "m"}'),
    ("application/json", b'{"name": "a\\u202e", "email": "a@b.co", "message": ""}'),
]


def test_feedback_refuses_huge_and_malformed_bodies(fuzz_api):
    """Huge, deep, duplicated or typeless bodies: a clear 4xx each and no mail."""
    for content, payload in BAD_FEEDBACK:
        response = fuzz_api.http.post("/feedback", headers={"Content-Type": content}, body=payload)
        assert 400 <= response.status_code < 500, (payload[:60], response.body[:200])
        assert_clear_answer(response, f"POST /feedback {payload[:40]!r}")
    assert sent_messages() == []
    record_figure("hostile HTTP requests", len(BAD_FEEDBACK))


@pytest.mark.parametrize(
    "payload", [b'{"\\u0000": "x"}', b'{"name\\u001b[2J": "x"}', b'{"\\r\\nX-Injected": 1}']
)
def test_feedback_error_messages_do_not_echo_control_characters(fuzz_api, payload):
    """An unknown field whose name holds control characters is named safely in the Message."""
    response = fuzz_api.http.post(
        "/feedback", headers={"Content-Type": "application/json"}, body=payload
    )
    message = json.loads(response.body)["Message"]
    assert response.status_code == 400
    assert not any(unicodedata.category(c) == "Cc" for c in message), message


def test_huge_path_and_query_values_are_refused(fuzz_api):
    """Megabyte-long addresses, hosts, tokens and days: 400 each, nothing stored."""
    huge = "a" * 1_000_000
    requests = [
        ("GET", f"/check/{huge}", {}),
        ("GET", "/check/example.com", {"days": huge}),
        ("GET", "/check/example.com", {"port": "9" * 10_000}),
        ("PUT", f"/user/{huge}%40example.com", {"domain": "example.com"}),
        ("PUT", "/user/a%40example.com", {"domain": huge}),
        ("PUT", "/user/a%40example.com", {"uuid": huge}),
        ("DELETE", "/user/a%40example.com", {"uuid": huge}),
        ("POST", "/user/a%40example.com/unsubscribe", {"uuid": huge}),
    ]
    for method, path, params in requests:
        content = "text/plain" if method == "POST" else None
        response, request = send(fuzz_api, method, path, params, content, b"")
        assert response.status_code == 400, request
        assert_clear_answer(response, request)
    assert stored_state() == ((), (), (), (), 0)
    record_figure("hostile HTTP requests", len(requests))


def test_the_openapi_document_lists_exactly_the_apps_routes():
    """docs/openapi.yaml and app.app's routing table name the same routes and methods."""
    from app import app

    routed = {(path, method.lower()) for path, views in app.routes.items() for method in views}
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    documented = {
        (path, method)
        for path, item in openapi()["paths"].items()
        for method in item
        if method in methods
    }
    assert documented == routed


def test_every_reference_in_the_openapi_document_resolves():
    """Each $ref of docs/openapi.yaml points at a component that exists."""
    document = openapi()
    assert document["openapi"].startswith("3.")
    text = OPENAPI.read_text()
    for reference in set(re.findall(r'\$ref: "#/([^"]+)"', text)):
        node = document
        for part in reference.split("/"):
            assert part in node, reference
            node = node[part]


def test_a_check_result_has_every_documented_field(fuzz_api):
    """The CheckResult schema's required fields are those of a real answer, and no fewer."""
    response = fuzz_api.http.get("/check/unresolvable.example")
    assert response.status_code == 200
    schema = openapi()["components"]["schemas"]["CheckResult"]
    answer = json.loads(response.body)
    assert set(schema["required"]) <= set(answer)
    assert set(answer) <= set(schema["properties"])


# Lambda payloads


def _handlers():
    from lambdas import bounces, checker, cron, data, mailer, reporter

    return {
        "data": (data.handler, sorted(data.ACTIONS)),
        "checker": (checker.handler, sorted(checker.ACTIONS)),
        "cron": (cron.handler, sorted(cron.ACTIONS)),
        "mailer": (mailer.handler, sorted(mailer.ACTIONS)),
        "reporter": (reporter.handler, sorted(reporter.ACTIONS)),
        "bounces": (bounces.handler, []),
    }


FIELD_NAMES = [
    "email",
    "target",
    "tolerance",
    "token",
    "key",
    "limit",
    "window_seconds",
    "segment",
    "total_segments",
    "cursor",
    "keys",
    "reason",
    "bucket",
    "day",
    "results",
    "subscriber",
    "kind",
    "since",
    "targets",
    "notifications",
    "name",
    "message",
    "text",
    "now",
    "Records",
]
field_value = st.one_of(
    json_value,
    st.sampled_from(["2026-11-27", "auto", "30", "a@b.co", "example.com:443", "alert", ""]),
    st.lists(st.dictionaries(st.sampled_from(FIELD_NAMES), json_value, max_size=4), max_size=3),
)


def payloads(actions: list[str]):
    """Return a strategy of malformed payloads for a function with these actions."""
    named = st.fixed_dictionaries(
        {"action": st.sampled_from(actions) if actions else st.just("none")},
        optional={name: field_value for name in FIELD_NAMES},
    )
    return st.one_of(
        named,
        json_value,
        st.dictionaries(hostile_text, json_value, max_size=4),
        st.fixed_dictionaries({"action": json_value}),
        st.fixed_dictionaries({"Records": st.lists(json_value, max_size=3)}),
    )


@pytest.mark.parametrize("function", list(_handlers()))
def test_every_lambda_answers_malformed_payloads_without_crashing(
    function, lambdas, generous_limits, network_jail, lambda_context
):
    """Generated payloads to a handler: an answer ({"errorMessage"} when refused), never a raise."""
    handler, actions = _handlers()[function]
    tried = []

    @given(payload=payloads(actions))
    def one(payload):
        tried.append(1)
        try:
            answer = handler(payload, lambda_context)
        except Exception as error:
            pytest.fail(f"{function} crashed on {json.dumps(payload)[:300]}: {error!r}")
        assert isinstance(answer, dict), (function, answer)
        if function != "bounces":
            assert ("errorMessage" in answer) != ("response" in answer), answer
            if "errorMessage" in answer:
                assert isinstance(answer["errorMessage"], str) and answer["errorMessage"]
        network_jail.take()  # a checker given a public target dialled it: intercepted
        lambdas.drain()  # run what the payload set off (a malformed one sets off nothing)
        lambdas.failures.clear()

    run_examples(one, 40)()
    record_figure("malformed Lambda payloads", len(tried))


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "Ann\r\nBcc: victim@example.net", "email": "ann@example.org", "message": "hi"},
        {"name": "Ann", "email": "ann@example.org\r\nBcc: victim@example.net", "message": "hi"},
        {"name": "Ann", "email": "ann@example.org, victim@example.net", "message": "hi"},
        {"name": "Ann", "email": "Ann <ann@example.org>", "message": "hi"},
    ],
)
def test_feedback_refuses_header_injection(fuzz_api, fields):
    """A name or reply address carrying another header or recipient is refused; no mail."""
    response = fuzz_api.http.post(
        "/feedback", headers={"Content-Type": "application/json"}, body=json.dumps(fields).encode()
    )
    assert response.status_code == 400, response.body
    assert_clear_answer(response, f"POST /feedback {fields}")
    assert sent_messages() == []


def test_a_message_body_cannot_add_headers_or_recipients(fuzz_api, settings):
    """Line breaks are allowed in the message, but stay in the body: one recipient, no Bcc."""
    import email
    import email.policy

    message = "hello\r\nBcc: victim@example.net\r\n\r\nTo: victim@example.net\r\n.\r\nmore"
    fields = {"name": "Ann", "email": "ann@example.org", "message": message}
    response = fuzz_api.http.post(
        "/feedback", headers={"Content-Type": "application/json"}, body=json.dumps(fields).encode()
    )
    assert response.status_code == 200, response.body
    (sent,) = sent_messages()
    assert set(sent.destinations) == {settings.feedback_email}  # the envelope: one recipient
    parsed = email.message_from_string(sent.raw_data, policy=email.policy.default)
    assert parsed["To"] == settings.feedback_email
    assert parsed["Bcc"] is None and parsed["Cc"] is None
    assert "victim" not in str(parsed["To"]) + str(parsed.get("Reply-To", ""))
