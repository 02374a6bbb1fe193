"""Bounded HTTP GETs of JSON from the outside services the operator configured (CT search, ACME).

These services are optional evidence: whatever they do (slow, down, rate-limiting, answering
garbage), a call ends within its deadline and raises OutsideUnavailable with a plain reason,
never anything else, so a check is never delayed past the bound nor failed by them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a request is sent: a check that sends none never loads it
    import requests

MAX_BODY = 4 * 1024 * 1024  # a CT search for a busy name can list thousands of issuances
USER_AGENT = "sslnotify (certificate expiry monitor)"


class OutsideUnavailable(Exception):
    """An outside service could not give an answer in time; the message says why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Answer:
    """A successful JSON answer and the headers that matter (Retry-After)."""

    data: Any
    retry_after: float | None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare for these services, treated as "no hint"
    return seconds if seconds >= 0 else None


@cache
def shared_session() -> requests.Session:
    """Return this process's HTTP session, made on first use (requests is imported then)."""
    import requests

    return requests.Session()


def get_json(
    session: requests.Session | None,
    url: str,
    *,
    timeout: float,
    params: Any = None,
    headers=None,
) -> Answer:
    """GET url and decode its JSON body within `timeout` seconds in all, at most MAX_BODY bytes.

    `session` None: the process's shared session.
    """
    import requests

    session = session if session is not None else shared_session()
    deadline = time.monotonic() + timeout
    try:
        with session.get(
            url,
            params=params,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            timeout=(min(timeout, 5.0), timeout),
            stream=True,
            allow_redirects=False,
        ) as response:
            if response.status_code == 429:
                raise OutsideUnavailable("the service is rate-limiting us (HTTP 429)")
            if response.status_code != 200:
                raise OutsideUnavailable(f"the service answered HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_content(chunk_size=65536):
                body += chunk
                if len(body) > MAX_BODY:
                    raise OutsideUnavailable("the service's answer is too large")
                if time.monotonic() > deadline:
                    raise OutsideUnavailable(f"no complete answer within {timeout:g} s")
            retry_after = _retry_after(response.headers.get("Retry-After"))
    except requests.Timeout:
        raise OutsideUnavailable(f"no answer within {timeout:g} s") from None
    except requests.RequestException as error:
        reason = type(error).__name__
        raise OutsideUnavailable(f"the service cannot be reached ({reason})") from None
    try:
        return Answer(json.loads(bytes(body)), retry_after)
    except (ValueError, UnicodeDecodeError):
        raise OutsideUnavailable("the service's answer is not JSON") from None
