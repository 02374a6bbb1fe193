"""The manage page in headless Chromium against the whole local stack: the journey, and no leaks.

Fixtures and helpers come from test_browser.py (the same Chromium setup). With
SCREENSHOTS_DIR=DIR set, the journey also saves the manage page at desktop and
phone width there (for people reviewing the page; not an assertion).
"""

# ruff: noqa: F811  (the fixtures imported from test_browser.py are requested by name)
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import icalendar
import pytest

from tests.e2e.test_browser import (  # noqa: F401  (fixtures are found by name)
    DESKTOP,
    PHONE,
    assert_quiet_except_api_errors,
    browser,
    link_in,
    page,
    page_url,
    watch,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def subscribe_confirmed(page, stack, address: str, target: str, days: str) -> None:
    """Subscribe through the API and confirm with the emailed token (not what is tested here)."""
    query = urlencode({"domain": target, "days": days})
    assert page.request.put(f"{stack.api_url}/user/{address}?{query}").ok
    message = stack.wait_for_email(
        to=address, subject=f"Confirm your sslnotify subscription for {target}"
    )
    token = parse_qs(urlsplit(link_in(message, "confirm.html")).query)["uuid"][0]
    assert page.request.put(f"{stack.api_url}/user/{address}?{urlencode({'uuid': token})}").ok


def card(page, target: str):
    return page.locator(f'article.subscription[data-target="{target}"]')


def wait_loaded(page) -> None:
    page.locator('#manage-section[data-loaded="true"]').wait_for()


def open_manage_link(page, stack, address: str) -> str:
    """Ask for a link on the manage page, take it from the Outbox, open it; return it."""
    page.goto(page_url(stack, "manage"))
    page.get_by_label("Email address").fill(address)
    page.get_by_role("button", name="Email me a link").click()
    page.locator("#request-status.alert-success").wait_for()
    assert "24 hours" in page.locator("#request-status").inner_text()
    message = stack.wait_for_email(to=address, subject="manage your sslnotify")
    link = link_in(message, "manage.html")
    page.goto(link)
    wait_loaded(page)
    return link


def screenshot(page, name: str) -> None:
    folder = os.environ.get("SCREENSHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_the_whole_manage_journey(page, local_stack, watch):
    good, expiring, extra = (
        local_stack.serve(days_left=80),
        local_stack.serve(days_left=9),
        local_stack.serve(days_left=50),
    )
    address = f"manager-{good.port}@example.com"
    first, second, third = (f"127.0.0.1:{s.port}" for s in (good, expiring, extra))
    subscribe_confirmed(page, local_stack, address, first, "30")
    subscribe_confirmed(page, local_stack, address, second, "20")
    local_stack.trigger("cron")
    local_stack.wait_for_email(to=address, subject="SSL alert for", timeout=60)

    link = open_manage_link(page, local_stack, address)
    assert "token=" in urlsplit(link).fragment and not urlsplit(link).query
    assert page.locator("#manage-subject").inner_text() == f"For {address}"
    assert page.locator("article.subscription").count() == 2
    ok_card, alert_card = card(page, first), card(page, second)
    assert ok_card.locator("[data-status]").inner_text() == "OK"
    assert ok_card.locator('[data-fact="daysLeft"]').inner_text() in ("79 days", "80 days")
    assert ok_card.locator('[data-fact="protocol"]').inner_text().startswith("TLS (HTTPS), port")
    assert "UTC" in ok_card.locator('[data-fact="notAfter"]').inner_text()
    assert "not yet" not in ok_card.locator('[data-fact="checkedAt"]').inner_text()
    assert alert_card.locator("[data-status]").inner_text() == "Expiring soon"
    assert alert_card.locator('[data-fact="days"]').inner_text() == "20 days before"
    calendar_url = page.locator("#calendar-url").input_value()
    assert calendar_url.startswith(f"{local_stack.api_url}/calendar/")
    assert address.split("@")[0] not in calendar_url
    screenshot(page, "manage-desktop.png")
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "manage-360px.png")
    page.set_viewport_size(DESKTOP)

    # The calendar feed, served by the local API, parses back.
    feed = page.request.get(calendar_url)
    assert feed.ok and feed.headers["content-type"].startswith("text/calendar")
    events = list(icalendar.Calendar.from_ical(feed.text()).walk("VEVENT"))
    assert len(events) == 4  # two certificates: the expiry day and the warning day of each

    # Change the days.
    days = ok_card.get_by_label(f"Days of warning for {first}")
    days.fill("15")
    ok_card.get_by_role("button", name=f"Save days for {first}").click()
    page.locator("#manage-status.alert-success").wait_for()
    wait_loaded(page)
    assert card(page, first).locator('[data-fact="days"]').inner_text() == "15 days before"

    # Add a domain: watched at once, no confirmation email.
    mails_before = len(local_stack.messages())
    page.get_by_label("Host").fill(third)
    page.get_by_label("Days of warning", exact=True).fill("40")
    page.get_by_role("button", name="Add this domain").click()
    card(page, third).wait_for()
    wait_loaded(page)
    assert card(page, third).locator('[data-fact="days"]').inner_text() == "40 days before"
    assert len(local_stack.messages()) == mails_before

    # Unsubscribe one.
    card(page, second).get_by_role("button", name=f"Unsubscribe from {second}").click()
    card(page, second).wait_for(state="detached")
    wait_loaded(page)
    assert page.locator("article.subscription").count() == 2

    # Unsubscribe from all.
    page.get_by_role("button", name="Unsubscribe from all").click()
    page.get_by_role("button", name="Yes, stop every reminder").click()
    page.locator("#empty:not(.d-none)").wait_for()
    assert page.locator("article.subscription").count() == 0
    assert "no more emails about 2 certificate" in page.locator("#manage-status").inner_text()
    assert page.request.get(calendar_url).status == 404  # the feed went with them
    assert_quiet_except_api_errors(watch, local_stack)


def test_the_manage_pages_leak_no_token_to_another_origin(page, local_stack, watch):
    server = local_stack.serve(days_left=80)
    address = f"leak-{server.port}@example.com"
    subscribe_confirmed(page, local_stack, address, f"127.0.0.1:{server.port}", "30")
    sent = []
    page.on("request", lambda request: sent.append((request.url, request.all_headers())))
    link = open_manage_link(page, local_stack, address)
    token = parse_qs(urlsplit(link).fragment)["token"][0]
    # Leave through every link on the page, as a visitor would, and record what is sent.
    for href in page.locator("a[href]").evaluate_all("links => links.map(a => a.href)"):
        page.goto(link)
        wait_loaded(page)
        page.goto(href)
    for url, headers in sent:
        assert url.startswith((local_stack.frontend_url, local_stack.api_url, "data:")), url
        # Playwright reports a withheld Referer as an empty one.
        assert not {k.lower(): v for k, v in headers.items()}.get("referer"), (url, headers)
        assert not [value for value in headers.values() if token in value], (url, headers)
        if token in url:
            assert url.startswith(f"{local_stack.api_url}/user/"), url
    response = page.request.get(page_url(local_stack, "manage"))
    assert response.headers["referrer-policy"] == "no-referrer"
    assert page.locator('meta[name="referrer"]').get_attribute("content") == "no-referrer"


def test_an_unknown_address_gets_the_same_answer_and_no_email(page, local_stack):
    address = "nobody-here@example.com"
    page.goto(page_url(local_stack, "manage"))
    page.get_by_label("Email address").fill(address)
    page.get_by_role("button", name="Email me a link").click()
    page.locator("#request-status.alert-success").wait_for()
    assert "If this address has subscriptions" in page.locator("#request-status").inner_text()
    page.wait_for_timeout(1500)
    assert not [m for m in local_stack.messages() if address in m.to]


def test_a_bad_manage_link_says_so_and_offers_a_new_one(page, local_stack):
    page.goto(
        page_url(local_stack, "manage")
        + "#"
        + urlencode({"user": "x@example.com", "token": "A" * 44})
    )
    page.locator("#manage-status.alert-danger").wait_for()
    assert "not valid" in page.locator("#manage-status").inner_text()
    assert page.get_by_role("button", name="Email me a link").is_visible()


def test_the_local_stack_sends_one_digest_for_two_due_alerts(page, local_stack):
    first, second = local_stack.serve(days_left=5), local_stack.serve(days_left=12)
    address = f"digest-{first.port}@example.com"
    for server in (first, second):
        subscribe_confirmed(page, local_stack, address, f"127.0.0.1:{server.port}", "30")
    local_stack.trigger("cron")
    digest = local_stack.wait_for_email(to=address, subject="SSL alerts for 2 certificates")
    assert f"127.0.0.1:{first.port} expires in 5 days" in digest.subject
    assert len([m for m in local_stack.messages() if address in m.to and "alert" in m.subject]) == 1
    assert "unsubscribe-digest?token=" in str(digest.message["List-Unsubscribe"])
