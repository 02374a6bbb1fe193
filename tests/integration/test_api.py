"""Every API route through chalice.test.Client, over emulated AWS and the real data and mailer."""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import re
from urllib.parse import quote

import pytest
from chalice.test import Client

from chalicelib import aws
from chalicelib.checker import ssrf
from chalicelib.config import reset_settings, resources
from chalicelib.logs import JsonFormatter

ADDRESS = "someone@example.com"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(lambdas, tmp_path):
    """Return a test client of the API whose invocations reach the real handlers."""
    from app import app

    with Client(app, project_dir=str(tmp_path)) as test_client:
        yield test_client


@pytest.fixture
def offline_client(monkeypatch, tmp_path):
    """Return a test client for requests refused before any AWS call (any call fails the test)."""
    from app import app

    def no_aws(service):
        raise AssertionError(f"a refused request reached AWS ({service})")

    monkeypatch.setattr(aws, "client", no_aws)
    monkeypatch.setattr(aws, "table", no_aws)
    with Client(app, project_dir=str(tmp_path)) as test_client:
        yield test_client


def sent_messages() -> list:
    """Return what the emulated SES has sent."""
    from moto.ses.models import ses_backends

    return ses_backends["123456789012"]["us-east-1"].sent_messages


def user_path(address: str = ADDRESS, **query: str) -> str:
    path = f"/user/{quote(address, safe='')}"
    return path + ("?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items()))


def body(response) -> dict:
    return json.loads(response.body)


def items(key: str) -> list[dict]:
    return aws.table(key).scan()["Items"]


def mailed_tokens(lambdas) -> list[str]:
    """Return the tokens handed to the mailer's send_confirmation, in order."""
    return [
        call.payload["token"]
        for call in lambdas.calls
        if call.function == "mailer" and call.payload["action"] == "send_confirmation"
    ]


def subscribe(client, address=ADDRESS, domain="example.org", days="30"):
    return client.http.put(user_path(address, domain=domain, days=days))


def subscribed(client, lambdas, address=ADDRESS, domain="example.org") -> dict:
    """Subscribe and confirm; return the confirmed subscription item."""
    assert subscribe(client, address, domain).status_code == 200
    token = mailed_tokens(lambdas)[-1]
    assert client.http.put(user_path(address, uuid=token)).status_code == 200
    target = [i for i in items("subscriptions") if i["target"].startswith(domain.lower())]
    return target[-1]


# Subscribe


def test_subscribe_stores_pending_and_mails_the_confirmation_link(client, lambdas, settings):
    response = subscribe(client, domain="Example.org:8443", days="auto")
    assert response.status_code == 200
    assert body(response) == {"Message": "Please check your emails to confirm your subscription"}
    (pending,) = items("pending")
    assert pending["target"] == "example.org:8443"
    assert pending["tolerance"] == "auto"
    (message,) = sent_messages()
    assert set(message.destinations) == {ADDRESS}
    raw = message.raw_data
    assert "Subject: Confirm your sslnotify subscription" in raw
    assert pending["token"] in raw
    assert lambdas.count("data", "RequestResponse") >= 2  # rate limit, subscribe
    assert lambdas.count("mailer", "RequestResponse") == 1


def test_subscribing_twice_is_harmless_and_resends_the_same_link(client, lambdas):
    assert subscribe(client).status_code == 200
    assert subscribe(client).status_code == 200
    first, second = mailed_tokens(lambdas)
    assert first == second
    assert len(items("pending")) == 1
    assert len(sent_messages()) == 2


def test_the_days_default_to_30(client):
    assert client.http.put(user_path(domain="example.org")).status_code == 200
    assert items("pending")[0]["tolerance"] == "30"


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        (user_path("not-an-address", domain="example.org"), "not valid"),
        (user_path(ADDRESS), "domain is missing"),
        (user_path(ADDRESS, domain=""), "domain is missing"),
        (user_path(ADDRESS, domain="exa mple.org"), "not a valid"),
        (user_path(ADDRESS, domain="example.org", days="0"), "days"),
        (user_path(ADDRESS, domain="example.org", days="366"), "days"),
        (user_path(ADDRESS, domain="example.org", days="ten"), "days"),
        (user_path(ADDRESS, domain="example.org:70000"), "port"),
        (user_path(ADDRESS, domain="example.org", uuid="A" * 32), "not both"),
        (user_path(ADDRESS + "\r\nBcc: x@example.com", domain="example.org"), "not allowed"),
        (user_path("a" * 300 + "@example.com", domain="example.org"), "too long"),
    ],
)
def test_subscribe_refuses_bad_input_with_a_clear_400(offline_client, path, fragment):
    response = offline_client.http.put(path)
    assert response.status_code == 400
    assert body(response)["Code"] == "BadRequestError"
    assert fragment in body(response)["Message"]


@pytest.mark.parametrize("domain", ["127.0.0.1", "localhost", "10.1.2.3", "[::1]:8443", "0x7f.1"])
def test_subscribe_refuses_private_targets(offline_client, domain):
    response = subscribe(offline_client, domain=domain)
    assert response.status_code == 403
    assert body(response)["Code"] == "ForbiddenError"


def test_private_targets_may_be_watched_when_allowed(client, monkeypatch):
    monkeypatch.setenv("SSLNOTIFY_ALLOW_PRIVATE_TARGETS", "1")
    reset_settings()
    assert subscribe(client, domain="127.0.0.1:8443").status_code == 200


def test_subscribing_is_rate_limited_per_client(client, settings):
    limit = settings.limits.subscribe_per_client_per_hour
    for number in range(limit):
        assert subscribe(client, f"person{number}@example.com").status_code == 200
    response = subscribe(client, "one.more@example.com")
    assert response.status_code == 429
    assert body(response)["Code"] == "TooManyRequestsError"
    assert "try again in" in body(response)["Message"]
    assert len(sent_messages()) == limit


def test_confirmation_emails_are_capped_per_address(client, lambdas, settings, monkeypatch):
    cap = settings.limits.confirmations_per_address_per_day
    for number in range(cap):
        lambdas.calls.clear()
        # Each request from another client, so only the per-address cap applies.
        monkeypatch.setattr("chalicelib.web.client", lambda request, n=number: f"192.0.2.{n}")
        assert subscribe(client, domain=f"host{number}.example.org").status_code == 200
    monkeypatch.setattr("chalicelib.web.client", lambda request: "192.0.2.200")
    response = subscribe(client, domain="another.example.org")
    assert response.status_code == 429
    assert "tomorrow" in body(response)["Message"]
    assert len(sent_messages()) == cap


def test_a_confirmation_ses_refuses_is_a_clear_503(client, monkeypatch):
    """SES's sandbox refuses an unverified recipient: the visitor gets a 503 that says so."""
    from botocore.exceptions import ClientError

    def refuse(**arguments):
        recipient = arguments["Destinations"][0]
        message = f"Email address is not verified. The following identities failed: {recipient}"
        error = {"Error": {"Code": "MessageRejected", "Message": message}}
        raise ClientError(error, "SendRawEmail")

    monkeypatch.setattr(aws.client("ses"), "send_raw_email", refuse)
    response = subscribe(client, "not.verified@example.com")
    assert response.status_code == 503
    assert body(response) == {
        "Code": "ServiceUnavailableError",
        "Message": "The confirmation email could not be sent just now; please try again later",
    }
    assert "not.verified" not in response.body.decode()
    assert sent_messages() == []


# Confirm and unsubscribe


def test_confirm_then_confirm_again(client, lambdas):
    subscribe(client, domain="bücher.example")
    token = mailed_tokens(lambdas)[0]
    response = client.http.put(user_path(uuid=token))
    assert response.status_code == 200
    assert body(response) == {
        "Message": "Your subscription for bücher.example is confirmed",
        "target": "xn--bcher-kva.example:443",
        "days": "30",
    }
    assert items("pending") == []
    assert len(items("subscriptions")) == 1
    again = client.http.put(user_path(uuid=token))
    assert again.status_code == 200
    assert "already confirmed" in body(again)["Message"]


def test_the_address_in_the_path_may_arrive_percent_encoded_or_not(client, lambdas):
    subscribe(client)
    token = mailed_tokens(lambdas)[0]
    response = client.http.put(f"/user/{ADDRESS}?uuid={token}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("token", "status"),
    [("A" * 32, 404), ("", 400), ("not a token!", 400), ("x" * 500, 400)],
)
def test_confirm_refuses_wrong_tokens(client, token, status):
    subscribe(client)
    response = client.http.put(user_path(uuid=token))
    assert response.status_code == status
    assert body(response)["Code"] == {404: "NotFoundError", 400: "BadRequestError"}[status]
    assert items("subscriptions") == []


def test_confirm_refuses_another_addresss_token(client, lambdas):
    subscribe(client)
    token = mailed_tokens(lambdas)[0]
    response = client.http.put(user_path("intruder@example.net", uuid=token))
    assert response.status_code == 404


def test_an_expired_confirmation_link_is_refused(client, lambdas):
    subscribe(client)
    token = mailed_tokens(lambdas)[0]
    (pending,) = items("pending")
    aws.table("pending").update_item(
        Key={"subscriber": pending["subscriber"], "target": pending["target"]},
        UpdateExpression="SET expires = :past",
        ExpressionAttributeValues={":past": 1_000_000_000},
    )
    response = client.http.put(user_path(uuid=token))
    assert response.status_code == 404
    assert "48 hours" in body(response)["Message"]
    assert items("subscriptions") == []


def test_unsubscribe_with_the_unsubscribe_token_only(client, lambdas):
    subscription = subscribed(client, lambdas)
    confirm_token = mailed_tokens(lambdas)[-1]
    assert client.http.delete(user_path(uuid=confirm_token)).status_code == 404
    response = client.http.delete(user_path(uuid=subscription["token"]))
    assert response.status_code == 200
    assert body(response)["Message"] == "You will get no more emails about example.org"
    assert items("subscriptions") == []
    assert client.http.delete(user_path(uuid=subscription["token"])).status_code == 404
    assert client.http.delete(user_path()).status_code == 400


def test_several_targets_per_address_each_with_its_own_token(client, lambdas):
    first = subscribed(client, lambdas, domain="example.org")
    second = subscribed(client, lambdas, domain="example.net")
    assert first["token"] != second["token"]
    assert client.http.delete(user_path(uuid=first["token"])).status_code == 200
    assert [item["target"] for item in items("subscriptions")] == ["example.net:443"]


def test_one_click_unsubscribe(client, lambdas):
    subscription = subscribed(client, lambdas)
    path = user_path(uuid=subscription["token"]).replace("?", "/unsubscribe?")
    response = client.http.post(path, headers=FORM, body=b"List-Unsubscribe=One-Click")
    assert response.status_code == 200
    assert "location" not in {name.lower() for name in response.headers}
    assert items("subscriptions") == []
    assert (
        client.http.post(path, headers=FORM, body=b"List-Unsubscribe=One-Click").status_code == 404
    )


def test_one_click_unsubscribe_accepts_a_multipart_body(client, lambdas):
    subscription = subscribed(client, lambdas)
    path = user_path(uuid=subscription["token"]).replace("?", "/unsubscribe?")
    multipart = (
        b'--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        b"One-Click\r\n--b--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    assert client.http.post(path, headers=headers, body=multipart).status_code == 200


# Feedback


def test_feedback_as_a_form_reaches_the_feedback_mailbox(client, settings):
    response = client.http.post(
        "/feedback",
        headers=FORM,
        body=b"name=Ada&email=ada%40example.com&message=Thanks%21%0AIt+works.",
    )
    assert response.status_code == 200
    assert body(response) == {"Message": "Thank you for your feedback"}
    (message,) = sent_messages()
    assert set(message.destinations) == {settings.feedback_email}
    assert "Ada" in message.raw_data


def test_feedback_as_json(client, lambdas):
    fields = {"name": "Ada", "email": "ada@example.com", "message": "Hello"}
    response = client.http.post("/feedback", headers=JSON, body=json.dumps(fields).encode())
    assert response.status_code == 200
    (call,) = [c for c in lambdas.calls if c.function == "mailer"]
    assert call.payload == {"action": "send_feedback", **fields}


@pytest.mark.parametrize(
    ("headers", "payload", "status"),
    [
        (JSON, b"{not json", 400),
        (JSON, b"[1, 2]", 400),
        (JSON, b'"text"', 400),
        (JSON, b"[" * 5000 + b"]" * 5000, 400),
        (JSON, b"\xff\xfe", 400),
        (JSON, json.dumps({"name": "Ada", "email": "ada@example.com"}).encode(), 400),
        (JSON, json.dumps({"name": "Ada", "email": "x", "message": "m"}).encode(), 400),
        (JSON, json.dumps({"name": 5, "email": "ada@example.com", "message": "m"}).encode(), 400),
        (JSON, b'{"name": "\\ud800", "email": "ada@example.com", "message": "m"}', 400),
        (
            JSON,
            json.dumps({"name": "A", "email": "a@example.com", "message": "m" * 6000}).encode(),
            400,
        ),
        (JSON, b'{"name": "A", "email": "a@example.com", "message": "m", "name": "B"}', 400),
        (JSON, b"\xef\xbb\xbf{}", 400),
        (JSON, b"1e999999", 400),
        (JSON, b"x" * 100_000, 413),
        (FORM, b"name=Ada&name=Eve&email=ada%40example.com&message=m", 400),
        (FORM, b"name=%ff&email=ada%40example.com&message=m", 400),
        (FORM, b"&".join(b"f%d=1" % n for n in range(100)), 400),
        (FORM, b"", 400),
        ({"Content-Type": "text/plain"}, b"name=Ada", 415),
        ({"Content-Type": "application/xml"}, b"<x/>", 415),
        ({}, b"", 400),
    ],
)
def test_feedback_refuses_bad_bodies_clearly(offline_client, headers, payload, status):
    response = offline_client.http.post("/feedback", headers=headers, body=payload)
    assert response.status_code == status
    assert set(body(response)) == {"Code", "Message"}


# Check now


@pytest.fixture
def private_allowed(monkeypatch, ca_file, test_pki):
    """Let the API check loopback servers whose roots the test PKI holds."""
    monkeypatch.setenv("SSLNOTIFY_ALLOW_PRIVATE_TARGETS", "1")
    monkeypatch.setenv("SSLNOTIFY_CA_BUNDLE", ca_file(test_pki.root))
    reset_settings()


def test_check_now_answers_the_check_result(client, private_allowed, tls_server, test_pki):
    leaf = test_pki.leaf(dns=["localhost"], ips=["127.0.0.1"])
    server = tls_server([leaf, test_pki.intermediate])
    response = client.http.get(f"/check/127.0.0.1?port={server.port}&days=20")
    assert response.status_code == 200
    result = body(response)
    assert result["host"] == "127.0.0.1" and result["port"] == server.port
    assert result["daysTolerance"] == 20
    assert result["status"] == "ok" and result["alert"] is False
    (entry,) = result["addresses"]  # DESIGN 3.1b: one address, listed once
    assert entry == {
        "address": "127.0.0.1",
        "status": "ok",
        "problems": [],
        "daysLeft": result["daysLeft"],
        "notAfter": result["notAfter"],
        "fingerprint": hashlib.sha256(leaf.der).hexdigest(),
        "reason": None,
    }


def test_check_now_checks_every_address_of_a_name(
    client, private_allowed, tls_server, test_pki, monkeypatch
):
    leaf = test_pki.leaf(dns=["multi.test"])
    first = tls_server([leaf, test_pki.intermediate], host="127.0.0.2")
    try:
        tls_server([leaf, test_pki.intermediate], host="127.0.0.3", port=first.port)
    except OSError:
        pytest.skip("the port is taken on 127.0.0.3")
    monkeypatch.setattr(ssrf, "system_resolver", lambda host, port: ["127.0.0.2", "127.0.0.3"])
    result = body(client.http.get(f"/check/multi.test?port={first.port}"))
    assert result["status"] == "ok"
    assert [entry["address"] for entry in result["addresses"]] == ["127.0.0.2", "127.0.0.3"]


def test_check_now_answers_200_when_the_check_fails(client, private_allowed, closed_port):
    response = client.http.get(f"/check/127.0.0.1:{closed_port}")
    assert response.status_code == 200
    assert body(response)["status"] == "error"


@pytest.mark.parametrize(
    "path",
    ["/check/127.0.0.1", "/check/localhost?port=8443", "/check/169.254.169.254", "/check/[::1]"],
)
def test_check_now_refuses_private_targets(client, path):
    response = client.http.get(path)
    assert response.status_code == 403
    assert body(response)["Code"] == "ForbiddenError"


@pytest.mark.parametrize(
    "path",
    [
        "/check/exa%20mple.org",
        "/check/example.org?days=0",
        "/check/example.org?days=abc",
        "/check/example.org?port=0",
        "/check/example.org?port=99999",
        "/check/example.org:8443?port=443",
        "/check/%ff",
        "/check/" + "a" * 400,
    ],
)
def test_check_now_refuses_bad_input(offline_client, path):
    response = offline_client.http.get(path)
    assert response.status_code == 400
    assert body(response)["Code"] == "BadRequestError"


def test_check_now_is_rate_limited_per_client(client, settings, monkeypatch):
    monkeypatch.setattr("chalicelib.checker.check.check_target", fake_check)
    limit = settings.limits.check_per_client_per_minute
    statuses = [client.http.get("/check/example.org").status_code for _ in range(limit + 1)]
    assert statuses == [200] * limit + [429]


def test_an_ipv6_client_is_limited_by_its_64_not_its_address(client, settings, monkeypatch):
    """Every address of one /64 shares one allowance; another /64 has its own."""
    from chalice.local import LambdaEventConverter

    monkeypatch.setattr("chalicelib.checker.check.check_target", fake_check)
    limit = settings.limits.check_per_client_per_minute

    def get_from(source: str) -> int:
        monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", source)
        return client.http.get("/check/example.org").status_code

    statuses = [get_from(f"2001:db8:1:2:{n:x}::{n + 1:x}") for n in range(limit + 1)]
    assert statuses == [200] * limit + [429]
    assert get_from("2001:db8:1:3::1") == 200  # the next /64 is another client
    assert get_from("::ffff:192.0.2.7") == 200  # IPv4-mapped: keyed as the IPv4 address
    assert [get_from("192.0.2.7") for _ in range(limit - 1)] == [200] * (limit - 1)
    assert get_from("192.0.2.7") == 429


def fake_check(text, tolerance, **options):
    class Result:
        status = "ok"

        def to_dict(self):
            return {"host": text, "status": "ok"}

    return Result()


# The whole API


def test_cors_admits_only_the_configured_origin(client, settings):
    evil = {"Origin": "https://evil.example"}
    response = client.http.put(user_path(domain="example.org"), headers=evil)
    assert response.headers["Access-Control-Allow-Origin"] == settings.cors_origin
    assert settings.cors_origin == "https://sslnotify.test"
    refused = client.http.put(user_path(), headers=evil)
    assert refused.headers["Access-Control-Allow-Origin"] == settings.cors_origin
    assert (
        "Access-Control-Allow-Origin"
        not in client.http.post(
            user_path(uuid="A" * 32).replace("?", "/unsubscribe?"), headers=FORM
        ).headers
    )  # the one-click route is for mail providers, not browsers


def test_wrong_methods_and_unknown_paths_are_4xx(offline_client):
    assert offline_client.http.get(user_path()).status_code == 405
    assert offline_client.http.get("/feedback").status_code == 405
    assert offline_client.http.get("/nowhere").status_code == 403


@pytest.mark.parametrize(
    "text",
    [
        "\x00",
        "\u202e",
        "\ufeff@example.com",
        "a@b@c",
        "%00",
        "%",
        "%%",
        "..",
        "a" * 5000,
        "\U0001d4ea@example.com",  # mathematical script a
        "ﬁ@example.com",
        "user@xn--.com",
        "user@" + "a" * 64 + ".com",
    ],
)
def test_hostile_text_never_yields_a_server_error(offline_client, text):
    encoded = quote(text, safe="")
    responses = [
        offline_client.http.put(f"/user/{encoded}?domain={encoded}&days={encoded}"),
        offline_client.http.put(f"/user/{encoded}?uuid={encoded}"),
        offline_client.http.delete(f"/user/{encoded}?uuid={encoded}"),
        offline_client.http.post(f"/user/{encoded}/unsubscribe?uuid={encoded}", headers=FORM),
        offline_client.http.get(f"/check/{encoded}?days={encoded}&port={encoded}"),
        offline_client.http.post(
            "/feedback",
            headers=JSON,
            body=json.dumps({"name": text, "email": text, "message": text}).encode(),
        ),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, response.body
        assert set(body(response)) == {"Code", "Message"}


def test_no_address_is_stored_or_logged_in_plain_text(client, lambdas, caplog):
    caplog.set_level(logging.INFO)
    addresses = ["first.person@example.com", "second.person@example.net"]
    for address in addresses:
        subscription = subscribed(client, lambdas, address=address)
        subscribe(client, address, domain="example.net")
        client.http.delete(user_path(address, uuid=subscription["token"]))
    dump = json.dumps(
        {key: aws.table(key).scan()["Items"] for key in resources()["tables"]}, default=str
    )
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    for address in addresses:
        assert address not in dump
        assert address.split("@")[0] not in dump
        assert address not in logged
    assert re.search(r'"subscriber": "[0-9a-f]{32}"', logged)


def test_a_failing_mailer_is_a_503_and_a_retry_sends_the_same_link(client, lambdas, monkeypatch):
    mailer_function = importlib.import_module("lambdas.mailer")
    real_handler = mailer_function.handler

    def broken(event, context):
        raise RuntimeError("SES is down")

    monkeypatch.setattr(mailer_function, "handler", broken)
    response = subscribe(client)
    assert response.status_code == 503
    assert body(response)["Code"] == "ServiceUnavailableError"
    assert sent_messages() == []
    monkeypatch.setattr(mailer_function, "handler", real_handler)
    assert subscribe(client).status_code == 200
    first, second = mailed_tokens(lambdas)
    assert first == second
    assert len(sent_messages()) == 1


def test_check_now_with_auto_tolerance(client, monkeypatch):
    seen = {}

    def check(text, tolerance, **options):
        seen.update(text=text, tolerance=tolerance, **options)
        return fake_check(text, tolerance)

    monkeypatch.setattr("chalicelib.checker.check.check_target", check)
    response = client.http.get("/check/B%C3%BCcher.example?days=auto&port=8443")
    assert response.status_code == 200
    assert seen == {
        "text": "xn--bcher-kva.example:8443",
        "tolerance": "auto",
        "allow_private": False,
        "timeout": 10.0,
    }


# STARTTLS services


def test_subscribe_to_an_smtp_server_keeps_the_protocol(client, lambdas):
    response = subscribe(client, domain="smtp://Mail.Example.org")
    assert response.status_code == 200
    (pending,) = items("pending")
    assert pending["target"] == "smtp://mail.example.org:25"
    (message,) = sent_messages()
    assert "smtp://mail.example.org" in message.raw_data
    confirmed = client.http.put(user_path(uuid=mailed_tokens(lambdas)[0]))
    assert (
        body(confirmed)["Message"] == "Your subscription for smtp://mail.example.org is confirmed"
    )
    assert body(confirmed)["target"] == "smtp://mail.example.org:25"
    (subscription,) = items("subscriptions")
    assert subscription["target"] == "smtp://mail.example.org:25"
    gone = client.http.delete(user_path(uuid=subscription["token"]))
    assert body(gone)["Message"] == "You will get no more emails about smtp://mail.example.org"
    assert items("subscriptions") == []


def test_subscribe_with_a_protocol_parameter(client):
    response = client.http.put(user_path(domain="mail.example.org", protocol="imap", days="7"))
    assert response.status_code == 200
    assert items("pending")[0]["target"] == "imap://mail.example.org:143"


def test_a_direct_tls_scheme_is_stored_as_plain_tls(client):
    assert subscribe(client, domain="imaps://mail.example.org").status_code == 200
    assert items("pending")[0]["target"] == "mail.example.org:993"


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"domain": "gopher://example.org"}, "unknown scheme"),
        ({"domain": "example.org", "protocol": "telnet"}, "unknown protocol"),
        ({"domain": "smtp://example.org", "protocol": "imap"}, "differs"),
        ({"domain": "https://example.org:0/"}, "port"),
        ({"domain": "smtp://example.org:0"}, "port"),
    ],
)
def test_subscribe_refuses_bad_protocols(offline_client, query, fragment):
    response = offline_client.http.put(user_path(**query))
    assert response.status_code == 400
    assert fragment in body(response)["Message"]


def test_subscribe_refuses_a_private_smtp_server(offline_client):
    response = subscribe(offline_client, domain="smtp://10.0.0.25")
    assert response.status_code == 403


def test_check_now_over_starttls(client, private_allowed, starttls_server, test_pki):
    leaf = test_pki.leaf(dns=["localhost"], ips=["127.0.0.1"])
    server = starttls_server("smtp", [leaf, test_pki.intermediate])
    response = client.http.get(f"/check/127.0.0.1?port={server.port}&protocol=smtp")
    assert response.status_code == 200
    result = body(response)
    assert (result["status"], result["protocol"]) == ("ok", "smtp")
    assert result["response"].startswith(f"SSL certificate for smtp://127.0.0.1:{server.port} ")
    assert server.agreed == 1


def test_check_now_of_a_server_without_starttls(client, private_allowed, starttls_server, test_pki):
    leaf = test_pki.leaf(dns=["localhost"], ips=["127.0.0.1"])
    server = starttls_server("imap", [leaf, test_pki.intermediate], "not_offered")
    path = quote(f"imap://127.0.0.1:{server.port}", safe="")
    result = body(client.http.get(f"/check/{path}"))
    assert (result["status"], result["protocol"]) == ("error", "imap")
    assert result["problems"][0]["code"] == "tls_error"
    assert "does not offer STARTTLS" in result["problems"][0]["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/check/example.org?protocol=telnet",
        "/check/example.org:0?protocol=smtp",
        "/check/example.org?protocol=smtp&port=0",
        "/check/" + quote("https://example.org:0/", safe=""),
        "/check/" + quote("smtp://example.org", safe="") + "?protocol=pop3",
    ],
)
def test_check_now_refuses_bad_protocols(offline_client, path):
    response = offline_client.http.get(path)
    assert response.status_code == 400
