"""The website in headless Chromium against the whole local stack and loopback TLS servers.

Chromium is Debian's (`apt-get install chromium`; .ci/run installs it), driven by Playwright
for Python. Without it these tests skip loudly on a developer machine and fail in CI.
A failing test leaves a screenshot of its page in test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from cryptography import x509
from playwright.sync_api import expect, sync_playwright

from tests.certs import make_crl

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPOSITORY = Path(__file__).resolve().parents[2]
ARTIFACTS = REPOSITORY / "test-artifacts"
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
PAGES = ("index", "confirm", "unsubscribe", "manage", "feedback", "usage", "privacy")
XSS = "<img src=x onerror=window.__xss=1>"


def chromium_executable() -> str:
    """Return Debian's Chromium, or skip (fail in CI) saying loudly why the suite did not run."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = (
        "BROWSER TESTS NOT RUN: no `chromium` on PATH. Install Debian's with "
        "`apt-get install chromium` (Playwright's own browser download is not used)."
    )
    if IN_CI:
        pytest.fail(reason, pytrace=False)
    warnings.warn(reason, stacklevel=2)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Start one headless Chromium for this module (each test gets its own context).

    Module scope, not session: while Playwright's sync API is active it leaves its event loop
    marked as running, and later tests that call asyncio.run() would fail.
    """
    executable = chromium_executable()

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


def page_url(stack, name: str, query: str = "") -> str:
    """Return the URL of one of the site's pages on the local stack."""
    return f"{stack.frontend_url}/{name}.html" + (f"?{query}" if query else "")


def link_in(message, page: str) -> str:
    """Return the link to `page` (confirm.html, unsubscribe.html) in an email."""
    links = [link for link in message.links() if urlsplit(link).path.endswith(f"/{page}")]
    assert links, f"no {page} link in:\n{message.text}"
    return links[0]


@pytest.fixture
def watch():
    """Collect what the page reports that a user would never see: errors and CSP refusals."""
    return {"errors": [], "requests": []}


@pytest.fixture
def page(browser, local_stack, watch, request):
    """Open a fresh desktop-sized page; save a screenshot if the test fails."""
    context = browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="Europe/Berlin")
    context.set_default_timeout(20_000)
    tab = context.new_page()
    tab.on("pageerror", lambda error: watch["errors"].append(f"page error: {error}"))
    tab.on(
        "console",
        lambda message: message.type == "error" and watch["errors"].append(message.text),
    )
    tab.on("request", lambda sent: watch["requests"].append(sent.url))
    failed_before = request.session.testsfailed
    yield tab
    # The call phase's report is logged before teardown, so a failure shows up here; the hook
    # way (pytest_runtest_makereport) would need a conftest this module does not own.
    if request.session.testsfailed > failed_before:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()


def assert_quiet(watch, stack) -> None:
    """Assert no script error or CSP refusal happened and nothing went to another origin."""
    assert watch["errors"] == []
    for url in watch["requests"]:
        assert url.startswith((stack.frontend_url, stack.api_url, "data:")), url


def check(page, stack, host: str, *, days: str = "30") -> str:
    """Check a host from the home page and return the result's status attribute."""
    page.goto(page_url(stack, "index"))
    page.get_by_label("Host").fill(host)
    if days == "auto":
        page.get_by_label("Auto: a third of the certificate's lifetime").check()
    else:
        page.get_by_label("Days of warning").fill(days)
    page.get_by_role("button", name="Check now").click()
    page.locator("#result:not(.d-none)").wait_for()
    return page.locator("#result").get_attribute("data-status")


def test_check_now_shows_a_good_certificate(page, local_stack, watch):
    server = local_stack.serve(days_left=80)
    assert check(page, local_stack, f"127.0.0.1:{server.port}") == "ok"
    result = page.locator("#result")
    assert page.locator("#result-title").inner_text().startswith("OK:")
    assert page.locator("#result-days").inner_text() == "80 days"
    assert "UTC" in page.locator("#result-expiry-utc").inner_text()
    assert "(your time)" in page.locator("#result-expiry-local").inner_text()
    assert page.locator("#result-issuer").inner_text().startswith("sslnotify")
    assert "127.0.0.1" in page.locator("#result-names li").all_inner_texts()
    # The test leaf names no OCSP responder and no CRL: the card says so, without alarm.
    revocation = page.locator("#result-revocation").inner_text()
    assert revocation.startswith("Unknown: ") and "no OCSP responder and no CRL" in revocation
    assert page.locator("#result-chain li").count() == 2
    assert page.locator("#result-chain li.chain-earliest").count() == 1
    assert result.locator(".problem").count() == 0
    assert_quiet(watch, local_stack)


def test_check_now_shows_an_expiring_certificate_from_a_pasted_url(page, local_stack, watch):
    server = local_stack.serve(days_left=9)
    assert check(page, local_stack, f"https://127.0.0.1:{server.port}/login?next=/") == "expiring"
    assert page.locator("#result-title").inner_text().startswith("Expiring soon:")
    assert page.locator("#result-days").inner_text() == "9 days"
    problem = page.locator('.problem[data-code="expiring"]')
    assert "What to do: Renew the certificate" in problem.inner_text()
    earliest = page.locator("#result-chain li.chain-earliest")
    assert (
        "localhost" in earliest.inner_text() and "Expires first (9 days)" in earliest.inner_text()
    )
    assert_quiet(watch, local_stack)


def test_check_now_shows_a_revoked_certificate(page, local_stack, tls_server, http_source, watch):
    pki = local_stack.pki
    leaf = pki.leaf(ips=["127.0.0.1"], dns=["localhost"], crl_urls=[http_source.url("/ca.crl")])
    revoked = [(leaf, pki.now - timedelta(days=1), x509.ReasonFlags.key_compromise)]
    http_source.route("/ca.crl", make_crl(pki.intermediate, revoked=revoked, now=pki.now))
    server = tls_server([leaf, pki.intermediate])
    assert check(page, local_stack, f"127.0.0.1:{server.port}") == "invalid"
    problem = page.locator('.problem[data-code="revoked"]')
    assert "a new certificate is needed now" in problem.inner_text()
    assert "What to do: The certificate authority has withdrawn" in problem.inner_text()
    assert page.locator("#result-revocation").inner_text().startswith("REVOKED (CRL): ")
    assert_quiet(watch, local_stack)


def test_check_now_explains_an_unreachable_target(page, local_stack, closed_port, watch):
    assert check(page, local_stack, f"127.0.0.1:{closed_port()}") == "error"
    assert page.locator("#result-title").inner_text().startswith("Could not check:")
    problem = page.locator('.problem[data-code="connect_error"]')
    assert "Check the port" in problem.inner_text()
    assert page.locator("#result-days").inner_text().startswith("unknown")
    assert page.locator("#result-chain-block").is_hidden()
    assert_quiet(watch, local_stack)


def test_an_international_name_is_accepted_and_shown_in_unicode(page, local_stack, watch):
    # .example never resolves, so this also shows how a DNS failure is explained.
    assert check(page, local_stack, "https://BÜCHER.example/") == "error"
    assert page.locator("#result-title").inner_text() == "Could not check: bücher.example"
    assert "Check the spelling" in page.locator('.problem[data-code="dns_error"]').inner_text()
    assert_quiet(watch, local_stack)


def test_auto_threshold_is_sent_and_explained(page, local_stack):
    server = local_stack.serve(days_left=80)
    assert check(page, local_stack, f"127.0.0.1:{server.port}", days="auto") == "ok"
    assert "auto" in page.locator("#result-threshold").inner_text()


def test_the_form_is_checked_before_asking_the_api(page, local_stack, watch):
    page.goto(page_url(local_stack, "index"))
    page.get_by_role("button", name="Check now").click()
    assert page.locator("#host").get_attribute("aria-invalid") == "true"
    assert "Domain is missing" in page.locator("#host-error").inner_text()
    page.get_by_label("Host").fill("example.com")
    page.get_by_label("Days of warning").fill("400")
    page.get_by_role("button", name="Check now").click()
    assert page.locator("#days-error").inner_text() == (
        "Days must be a whole number from 1 to 365 or 'auto'."
    )
    assert not [url for url in watch["requests"] if url.startswith(local_stack.api_url)]


def test_keyboard_only_check(page, local_stack):
    server = local_stack.serve(days_left=80)
    page.goto(page_url(local_stack, "index"))
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.locator("#host").focus()
    page.keyboard.type(f"127.0.0.1:{server.port}")
    page.keyboard.press("Enter")
    page.locator("#result:not(.d-none)").wait_for()
    assert page.locator("#result").get_attribute("data-status") == "ok"


def test_subscribe_confirm_and_unsubscribe(page, local_stack, watch):
    server = local_stack.serve(days_left=9)
    address = f"journey-{server.port}@example.com"
    target = f"127.0.0.1:{server.port}"
    page.goto(page_url(local_stack, "index"))
    page.get_by_label("Host").fill(target)
    page.get_by_label("Days of warning").fill("20")
    page.get_by_role("button", name="Remind me").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    expect(page.locator("#email")).to_be_focused()  # once the fade ends
    page.keyboard.type(address)
    summary = page.locator("#remind-summary").inner_text()
    assert f"We'll email you at {address} when the certificate of {target}" in summary
    assert "fewer than 20 days left" in summary
    assert "You'll first get a confirmation email" in dialog.inner_text()
    dialog.get_by_role("button", name="Send the confirmation email").click()
    page.locator("#remind-status.alert-success").wait_for()
    assert "check your emails" in page.locator("#remind-status").inner_text()
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")

    confirmation = local_stack.wait_for_email(to=address, subject="Confirm")
    confirm_url = link_in(confirmation, "confirm.html")
    query = parse_qs(urlsplit(confirm_url).query)
    assert query["user"] == [address] and query["uuid"]
    page.goto(page_url(local_stack, "confirm", urlsplit(confirm_url).query))
    assert target in page.locator("#link-action").inner_text()
    page.get_by_role("button", name="Confirm my subscription").click()
    page.locator("#outcome.alert-success").wait_for()
    assert "is confirmed" in page.locator("#outcome").inner_text()
    assert page.get_by_role("link", name="Back to the home page").is_visible()
    page.reload()  # a second click on the link says so instead of failing
    page.get_by_role("button", name="Confirm my subscription").click()
    page.locator("#outcome.alert-success").wait_for()
    assert "already confirmed" in page.locator("#outcome").inner_text()

    local_stack.trigger("cron")
    alert = local_stack.wait_for_email(to=address, subject="SSL alert for", timeout=60)
    unsubscribe_url = link_in(alert, "unsubscribe.html")
    page.goto(page_url(local_stack, "unsubscribe", urlsplit(unsubscribe_url).query))
    page.get_by_role("button", name="Unsubscribe").click()
    page.locator("#outcome.alert-success").wait_for()
    assert "no more emails" in page.locator("#outcome").inner_text()
    page.reload()  # the subscription is gone now: the page says so in words
    page.get_by_role("button", name="Unsubscribe").click()
    page.locator("#outcome.alert-danger").wait_for()
    assert page.locator("#outcome").inner_text().strip()
    assert_quiet_except_api_errors(watch, local_stack)


def starttls_server(stack, protocol: str, days_left: int):
    """Start a loopback STARTTLS server whose leaf, from the stack's PKI, expires in days_left."""
    from datetime import timedelta

    from tests.starttls_servers import StartTLSServer

    leaf = stack.pki.leaf(
        ips=("127.0.0.1",), dns=("localhost",), not_after=stack.pki.now + timedelta(days=days_left)
    )
    return StartTLSServer(protocol, [leaf, stack.pki.intermediate])


def test_check_now_of_a_mail_server_over_starttls(page, local_stack, watch):
    with starttls_server(local_stack, "smtp", 80) as server:
        assert check(page, local_stack, f"smtp://127.0.0.1:{server.port}") == "ok"
        assert server.agreed == 1
    title = page.locator("#result-title").inner_text()
    assert title == f"OK: smtp://127.0.0.1:{server.port}"
    assert f"smtp://127.0.0.1:{server.port}" in page.locator("#result-sentence").inner_text()
    assert_quiet(watch, local_stack)


def test_an_unknown_scheme_is_refused_in_the_form(page, local_stack, watch):
    page.goto(page_url(local_stack, "index"))
    page.get_by_label("Host").fill("gopher://example.com")
    page.get_by_role("button", name="Check now").click()
    assert "Unknown scheme gopher://" in page.locator("#host-error").inner_text()
    assert not [url for url in watch["requests"] if url.startswith(local_stack.api_url)]


def test_subscribe_to_a_mail_server_from_the_form(page, local_stack, watch):
    with starttls_server(local_stack, "smtp", 9) as server:
        address = f"mail-{server.port}@example.com"
        target = f"smtp://127.0.0.1:{server.port}"
        page.goto(page_url(local_stack, "index"))
        page.get_by_label("Host").fill(target)
        page.get_by_role("button", name="Remind me").click()
        page.get_by_role("dialog").wait_for()
        page.locator("#email").fill(address)
        assert f"when the certificate of {target}" in page.locator("#remind-summary").inner_text()
        page.get_by_role("button", name="Send the confirmation email").click()
        page.locator("#remind-status.alert-success").wait_for()
        confirmation = local_stack.wait_for_email(to=address, subject="Confirm")
        assert target in confirmation.text
        confirm_url = link_in(confirmation, "confirm.html")
        page.goto(page_url(local_stack, "confirm", urlsplit(confirm_url).query))
        page.get_by_role("button", name="Confirm my subscription").click()
        page.locator("#outcome.alert-success").wait_for()
        assert f"{target} is confirmed" in page.locator("#outcome").inner_text()
        local_stack.trigger("cron")
        alert = local_stack.wait_for_email(
            to=address, subject=f"SSL alert for {target}", timeout=60
        )
        assert server.agreed >= 1
    assert "expires in 9 days" in alert.subject or "expires in 8 days" in alert.subject
    assert_quiet(watch, local_stack)


def assert_quiet_except_api_errors(watch, stack) -> None:
    """Like assert_quiet, but a 4xx the page showed in words is an expected console line."""
    watch["errors"] = [line for line in watch["errors"] if not re.search(r"status of 4\d\d", line)]
    assert_quiet(watch, stack)


def items_of(stack, table: str) -> list[dict]:
    """Return every item of one of the stack's tables (emulated DynamoDB)."""
    answer = stack.aws_client("dynamodb").scan(TableName=stack.table_name(table))
    return answer.get("Items", [])


def test_the_confirm_and_unsubscribe_pages_act_only_on_a_click(page, local_stack, watch):
    # A mail scanner opens every link, some run scripts: loading the page must change nothing.
    server = local_stack.serve(days_left=80)
    address = f"scanner-{server.port}@example.com"
    target = f"127.0.0.1:{server.port}"
    page.request.put(
        f"{local_stack.api_url}/user/{address}?{urlencode({'domain': target, 'days': '15'})}"
    )
    confirm_url = link_in(local_stack.wait_for_email(to=address, subject="Confirm"), "confirm.html")
    subscriptions_before = len(items_of(local_stack, "subscriptions"))
    watch["requests"].clear()
    page.goto(page_url(local_stack, "confirm", urlsplit(confirm_url).query))
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    assert (
        f"{target} and email you when fewer than 15 days"
        in page.locator("#link-action").inner_text()
    )
    assert page.locator("#outcome").is_hidden()
    assert not [url for url in watch["requests"] if url.startswith(local_stack.api_url)]
    assert len(items_of(local_stack, "subscriptions")) == subscriptions_before
    page.get_by_role("button", name="Confirm my subscription").click()
    page.locator("#outcome.alert-success").wait_for()
    assert len(items_of(local_stack, "subscriptions")) == subscriptions_before + 1

    token = next(
        item["token"]["S"]
        for item in items_of(local_stack, "subscriptions")
        if item["target"]["S"] == target
    )
    query = urlencode({"user": address, "uuid": token, "domain": target})
    watch["requests"].clear()
    page.goto(page_url(local_stack, "unsubscribe", query))
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    assert f"emails about the certificate of {target}" in page.locator("#link-action").inner_text()
    assert not [url for url in watch["requests"] if url.startswith(local_stack.api_url)]
    assert len(items_of(local_stack, "subscriptions")) == subscriptions_before + 1
    page.get_by_role("button", name="Unsubscribe").click()
    page.locator("#outcome.alert-success").wait_for()
    assert page.get_by_role("button", name="Unsubscribe").is_hidden()
    assert len(items_of(local_stack, "subscriptions")) == subscriptions_before
    assert_quiet(watch, local_stack)


def test_a_link_without_its_parameters_says_so(page, local_stack):
    page.goto(page_url(local_stack, "confirm"))
    assert "incomplete" in page.locator("#outcome.alert-warning").inner_text()
    page.goto(page_url(local_stack, "unsubscribe", "user=someone%40example.com"))
    assert "incomplete" in page.locator("#outcome.alert-warning").inner_text()


def test_feedback_is_checked_then_sent(page, local_stack, watch):
    page.goto(page_url(local_stack, "feedback"))
    assert page.locator("#message-help").inner_text() == "0 of 5000 characters."
    page.get_by_role("button", name="Send feedback").click()
    assert page.locator("#name-error").inner_text() == "Name is missing."
    assert page.evaluate("document.activeElement.id") == "name"
    page.get_by_label("Name").fill("Ada")
    page.get_by_label("Email address").fill("ada@example.com")
    page.get_by_label("Message").fill("The chain view is lovely.")
    assert page.locator("#message-help").inner_text() == "25 of 5000 characters."
    page.get_by_role("button", name="Send feedback").click()
    page.locator("#feedback-status.alert-success").wait_for()
    assert "Thank you for your feedback" in page.locator("#feedback-status").inner_text()
    message = local_stack.wait_for_email(subject="sslnotify feedback from Ada")
    assert "The chain view is lovely." in message.text
    assert_quiet(watch, local_stack)


def test_a_url_parameter_is_shown_as_text(page, local_stack, watch):

    page.goto(
        page_url(
            local_stack,
            "confirm",
            urlencode({"user": XSS, "uuid": "<script>x</script>", "domain": XSS}),
        )
    )
    page.get_by_role("button", name="Confirm my subscription").click()
    page.locator("#outcome.alert-danger").wait_for()
    assert page.locator("#link-subject").inner_text() == f"For {XSS}"
    assert XSS in page.locator("#link-action").inner_text()
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("window.__xss") is None
    page.goto(page_url(local_stack, "index", urlencode({"host": XSS})))
    page.locator("#host.is-invalid, #check-status:not(.d-none)").first.wait_for()
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__xss") is None
    assert_quiet_except_api_errors(watch, local_stack)


def test_a_host_name_with_markup_is_shown_as_text(page, local_stack):
    page.goto(page_url(local_stack, "index"))
    page.get_by_label("Host").fill('"><svg onload=window.__xss=1><b>bold')
    page.get_by_role("button", name="Check now").click()
    page.locator("#host.is-invalid, #check-status:not(.d-none)").first.wait_for()
    page.get_by_label("Host").fill("<b>bold</b><svg>.example")
    page.get_by_role("button", name="Check now").click()
    status = page.locator("#check-status.alert-danger")
    status.wait_for()
    assert "<b>bold" in status.inner_text()  # the API's message, shown literally
    assert page.locator("main b, main svg").count() == 0
    assert page.evaluate("window.__xss") is None


@pytest.mark.parametrize("name", PAGES)
def test_every_page_fits_a_phone_without_sideways_scrolling(page, local_stack, name, watch):
    page.set_viewport_size(PHONE)
    page.goto(page_url(local_stack, name))
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    menu = page.get_by_role("button", name="Show the menu")
    assert menu.is_visible()
    menu.click()
    assert page.get_by_role("link", name="How it works").first.is_visible()
    assert_quiet_except_api_errors(watch, local_stack)


def test_a_result_fits_a_phone(page, local_stack):
    server = local_stack.serve(days_left=9)
    page.set_viewport_size(PHONE)
    assert (
        check(page, local_stack, f"https://127.0.0.1:{server.port}/a/very/long/path") == "expiring"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("button", name="Remind me").click()
    page.get_by_role("dialog").wait_for()
    page.keyboard.type("someone.with.a.rather.long.address@subdomain.example.com")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_card_shows_an_undeployed_renewal_and_the_cas_window(page, local_stack, watch):
    server = local_stack.serve(days_left=9)
    renewal = {
        "ct": {
            "newerIssued": True,
            "notBefore": "2026-11-14T08:00:00Z",
            "notAfter": "2027-02-12T08:00:00Z",
            "serial": "0f3a",
        },
        "ari": {
            "windowStart": "2026-11-30T00:00:00Z",
            "windowEnd": "2026-12-03T00:00:00Z",
            "explanationURL": "https://ca.example/incident",
        },
    }
    problem = {"code": "not_deployed", "message": "a renewed certificate was issued on …"}

    def add_renewal(route):
        # The API's own answer, as the local CT and ARI services would have amended it.
        answer = route.fetch().json()
        answer["renewal"] = renewal
        answer["problems"].append(problem)
        route.fulfill(json=answer, headers={"Access-Control-Allow-Origin": "*"})

    page.route(f"{local_stack.api_url}/check/**", add_renewal)
    assert check(page, local_stack, f"127.0.0.1:{server.port}") == "expiring"
    assert "2026-11-14" in page.locator("#result-ct").inner_text()
    assert "serial 0f3a" in page.locator("#result-ct").inner_text()
    link = page.locator("#result-ari a")
    assert link.get_attribute("href") == "https://ca.example/incident"
    advice = page.locator('.problem[data-code="not_deployed"]').inner_text()
    assert "Reload or restart the server" in advice
    assert_quiet(watch, local_stack)


def test_check_now_lists_which_address_serves_what(page, local_stack, watch):
    """DESIGN 3.1b: a name with several addresses shows each one's verdict on the card."""
    served = {
        "host": "dual.example", "hostAscii": "dual.example", "port": 443,
        "daysTolerance": 30, "toleranceMode": "days", "status": "expiring", "alert": True,
        "problems": [{
            "code": "expiring", "addresses": ["2001:db8::7"],
            "message": "2001:db8::7 serves a certificate that expires in 3 days (2026-12-03)",
        }],
        "daysLeft": 3, "notAfter": "2026-12-03T12:00:00Z", "notBefore": "2026-09-04T12:00:00Z",
        "issuedBy": "Demo CA", "subject": "dual.example", "validHosts": ["dual.example"],
        "chain": [], "earliestExpiry": None, "checkedAt": "2026-11-30T12:00:00Z",
        "response": "SSL certificate for dual.example will expire in 3 days; 2001:db8::7 still "
        "serves the certificate that expires on 3 December 2026; 192.0.2.7 serves the renewed "
        "one, which expires on 27 February 2027",
        "address": "2001:db8::7",
        "addresses": [
            {"address": "2001:db8::7", "status": "expiring", "problems": ["expiring"],
             "daysLeft": 3, "notAfter": "2026-12-03T12:00:00Z", "fingerprint": "ab" * 32,
             "reason": None},
            {"address": "192.0.2.7", "status": "ok", "problems": [], "daysLeft": 89,
             "notAfter": "2027-02-27T12:00:00Z", "fingerprint": "cd" * 32, "reason": None},
            {"address": "2001:db8::8", "status": "not_checked", "problems": [],
             "daysLeft": None, "notAfter": None, "fingerprint": None,
             "reason": "this checker has no IPv6 route"},
        ],
    }  # fmt: skip
    # The API's answer is stood in for: no test may reach these documentation addresses.
    page.route(
        f"{local_stack.api_url}/check/**",
        lambda route: route.fulfill(
            status=200,
            json=served,
            headers={"Access-Control-Allow-Origin": local_stack.frontend_url},
        ),
    )
    assert check(page, local_stack, "dual.example") == "expiring"
    entries = page.locator("#result-addresses li.address-entry")
    assert entries.count() == 3
    assert [entries.nth(n).get_attribute("data-status") for n in range(3)] == [
        "expiring", "ok", "not_checked",
    ]  # fmt: skip
    assert "2001:db8::7" in entries.nth(0).inner_text()
    assert "(3 days)" in entries.nth(0).inner_text()
    assert "SHA-256 abababababababab" in entries.nth(0).inner_text()
    assert "this checker has no IPv6 route" in entries.nth(2).inner_text()
    assert "192.0.2.7 serves the renewed one" in page.locator("#result-sentence").inner_text()
    assert page.locator('.problem[data-code="expiring"]').inner_text().count("2001:db8::7") == 1
    assert_quiet(watch, local_stack)


def test_a_single_address_shows_no_address_list(page, local_stack):
    server = local_stack.serve(days_left=80)
    assert check(page, local_stack, f"127.0.0.1:{server.port}") == "ok"
    assert page.locator("#result-addresses-block").is_hidden()
