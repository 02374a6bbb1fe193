"""Render an address's private calendar feed (iCalendar, RFC 5545) with the icalendar library.

Pure: takes the dates data answers for a feed token and returns the text. Each
certificate gets an all-day event on the day it expires and one on the day its
reminders start. Nothing in the feed names the address.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from icalendar import Calendar, Event

from chalicelib.emails import display_target

PRODUCT = "-//sslnotify//certificate expiry feed//EN"


def _day(value: Any) -> date | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date()


def _uid(target: str, kind: str, day: date) -> str:
    # Stable across refreshes (calendar apps update rather than duplicate), and opaque.
    digest = hashlib.sha256(f"{target}|{kind}|{day.isoformat()}".encode()).hexdigest()[:32]
    return f"{digest}@sslnotify"


def _event(target: str, kind: str, day: date, summary: str, text: str, stamp: datetime) -> Event:
    event = Event()
    event.add("uid", _uid(target, kind, day))
    event.add("dtstamp", stamp)
    event.add("dtstart", day)
    event.add("dtend", day + timedelta(days=1))
    event.add("summary", summary)
    event.add("description", text)
    event.add("transp", "TRANSPARENT")  # a reminder, not a busy slot
    return event


def render(
    subscriptions: Iterable[Mapping[str, Any]], site_url: str, now: datetime | None = None
) -> str:
    """Return the feed: per certificate, its expiry day and the day its reminders start."""
    stamp = now or datetime.now(UTC)
    calendar = Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", "TLS certificate expiry (sslnotify)")
    calendar.add("refresh-interval", timedelta(hours=12), parameters={"VALUE": "DURATION"})
    manage = f"{site_url}/manage.html"
    for entry in subscriptions:
        target = str(entry.get("target") or "")
        name = display_target(target)
        expires = _day(entry.get("notAfter"))
        if expires is None:
            continue  # not checked yet, or never reached: no date to show
        calendar.add_component(
            _event(
                target,
                "expires",
                expires,
                f"TLS certificate of {name} expires",
                f"The certificate of {name} expires on {expires.isoformat()} (UTC). "
                f"Manage your reminders: {manage}",
                stamp,
            )
        )
        warning = _day(entry.get("warningStarts"))
        if warning is not None and warning < expires:
            calendar.add_component(
                _event(
                    target,
                    "warning",
                    warning,
                    f"Renew the TLS certificate of {name} (reminders start)",
                    f"From today sslnotify emails you daily about {name} until its "
                    f"certificate is renewed; it expires on {expires.isoformat()} (UTC).",
                    stamp,
                )
            )
    return calendar.to_ical().decode()
