"""What the manage routes do: check the input, hold the rate limits, invoke data and mailer.

The API function keeps no state: data checks the tokens and changes the tables; the
mailer sends the manage link. The answer to a link request is the same whether or not
the address has subscriptions, so nobody learns who is subscribed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib import calendar_feed, validation
from chalicelib.api import HOUR, refuse_private
from chalicelib.api import rate_limit as count_request
from chalicelib.config import get_settings
from chalicelib.errors import BadInput
from chalicelib.invoke import invoke
from chalicelib.logs import get_logger

logger = get_logger(__name__)

LINK_MESSAGE = (
    "If this address has subscriptions, a link to manage them is on its way "
    "(valid for 24 hours). Please check your emails"
)
MAX_MANAGE_BODY = 2048
CALENDAR_HEADERS = {
    "Content-Type": "text/calendar; charset=utf-8",
    "Cache-Control": "private, max-age=3600",
    "Referrer-Policy": "no-referrer",
}


def _token(value: Any) -> str:
    return validation.token(value, "token")


def calendar_url(token: str | None) -> str | None:
    """Return the private URL of a calendar feed token (it names no address)."""
    return f"{get_settings().api_url}/calendar/{token}.ics" if token else None


def request_link(fields: Mapping[str, Any], client: str) -> dict[str, str]:
    """Mail a manage link when the address has subscriptions; answer alike either way."""
    address = validation.email_address(fields.get("email"))
    count_request("manage", client, get_settings().limits.subscribe_per_client_per_hour, HOUR)
    answer = invoke("data", {"action": "request_manage_link", "email": address}, wait=True)
    if answer.get("token"):
        # Queued, not awaited: the answer takes as long whether or not a mail is sent.
        invoke("mailer", {"action": "send_manage_link", "email": address, "token": answer["token"]})
    return {"Message": LINK_MESSAGE}


def listing(email: str, token: Any) -> dict[str, Any]:
    """List an address's subscriptions, with its calendar feed URL when one was just made."""
    address = validation.email_address(email)
    answer = invoke(
        "data",
        {"action": "list_subscriptions", "email": address, "token": _token(token)},
        wait=True,
        idempotent=True,
    )
    return {
        "subscriptions": answer["subscriptions"],
        "calendarUrl": calendar_url(answer.get("calendarToken")),
        "calendarActive": bool(answer.get("calendarActive")),
    }


def set_subscription(email: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Add a subscription or change its days at once (the manage token proved the address)."""
    if params.get("uuid") is not None:
        raise BadInput("give either token (to manage) or uuid (to confirm), not both")
    if params.get("domain") is None:
        raise BadInput("domain is missing")
    address = validation.email_address(email)
    target = validation.target(params.get("domain"))
    tolerance = validation.tolerance(params.get("days"))
    refuse_private(target)
    answer = invoke(
        "data",
        {
            "action": "set_subscription",
            "email": address,
            "token": _token(params.get("token")),
            "target": target.key,
            "tolerance": tolerance,
        },
        wait=True,
        idempotent=True,
    )
    verb = {"added": "added", "changed": "changed", "unchanged": "kept"}[answer["state"]]
    return {
        "Message": f"Subscription for {target.display} {verb}: {_days_words(tolerance)}",
        **answer,
    }


def remove(email: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Unsubscribe the target named by ?domain=, or every subscription of the address."""
    address = validation.email_address(email)
    fields: dict[str, Any] = {
        "action": "remove_subscriptions",
        "email": address,
        "token": _token(params.get("token")),
    }
    if params.get("domain") is not None:
        fields["target"] = validation.target(params["domain"]).key
    answer = invoke("data", fields, wait=True)
    count = len(answer["targets"])
    what = "this certificate" if "target" in fields else f"{count} certificate(s)"
    return {"Message": f"You will get no more emails about {what}", **answer}


def unsubscribe_digest(email: str, token: Any) -> dict[str, Any]:
    """End every subscription a digest email lists (its one-click List-Unsubscribe)."""
    address = validation.email_address(email)
    answer = invoke(
        "data", {"action": "unsubscribe_digest", "email": address, "token": _token(token)}, True
    )
    count = len(answer["targets"])
    return {"Message": f"You will get no more emails about {count} certificate(s)", **answer}


def renew_calendar(email: str, token: Any) -> dict[str, Any]:
    """Make a new private calendar URL; the previous one stops working."""
    address = validation.email_address(email)
    answer = invoke(
        "data", {"action": "renew_calendar", "email": address, "token": _token(token)}, wait=True
    )
    return {
        "Message": "Your new calendar URL is ready; the old one no longer works",
        "calendarUrl": calendar_url(answer["calendarToken"]),
    }


def calendar(name: str) -> str:
    """Return the iCalendar text of the feed a URL's last segment (TOKEN.ics) names."""
    token = _token(name[: -len(".ics")] if name.endswith(".ics") else name)
    answer = invoke("data", {"action": "calendar_feed", "token": token}, wait=True, idempotent=True)
    return calendar_feed.render(answer["subscriptions"], get_settings().site_url)


def _days_words(tolerance: str) -> str:
    if tolerance == "auto":
        return "emails when a third of the certificate's lifetime is left"
    return f"emails when fewer than {tolerance} days are left"
