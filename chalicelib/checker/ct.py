"""Certificate Transparency search: the unexpired issuances logged for a name (Cert Spotter API v1).

Cert Spotter's API was chosen over crt.sh's JSON: it is a documented, versioned interface with
stated rate limits (hourly quotas, higher with an API key), it coalesces a certificate and its
precertificate into one issuance with the DNS names listed, and it answers a single name quickly.
Any service answering the same JSON can be configured instead (SSLNOTIFY_CT_URL), as tests do.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from chalicelib.checker.outside import OutsideUnavailable, get_json
from chalicelib.checker.renewal import Issuance

DEFAULT_URL = "https://api.certspotter.com/v1/issuances"
CACHE_SECONDS = 24 * 3600  # at most one search per name per day
MAX_PAGES = 3
FULL_PAGE = 100  # a shorter page is the last one: no request just to find an empty page
MAX_CACHED = 10_000


def _moment(text) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a date without a time zone")
    return moment


def _serial_and_digest(item: dict) -> tuple[str | None, str | None]:
    """Read the serial from the logged (pre)certificate, when the answer includes it."""
    cert = item.get("cert") if isinstance(item.get("cert"), dict) else {}
    data = cert.get("data") or item.get("cert_der")
    digest = cert.get("sha256") or item.get("cert_sha256")
    if not isinstance(data, str):
        return None, digest if isinstance(digest, str) else None
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(data, validate=True))
        serial = format(certificate.serial_number, "x")
    except (ValueError, TypeError):
        serial = None
    return serial, digest if isinstance(digest, str) else None


def parse_issuances(data) -> list[Issuance]:
    """Read a Cert Spotter answer; skip any issuance that is malformed rather than fail."""
    if not isinstance(data, list):
        raise OutsideUnavailable("the CT search answered something other than a list")
    found = []
    for item in data:
        if not isinstance(item, dict):
            continue
        try:
            names = tuple(str(name).lower() for name in item.get("dns_names") or ())
            not_before, not_after = _moment(item["not_before"]), _moment(item["not_after"])
        except (KeyError, ValueError, TypeError):
            continue
        serial, digest = _serial_and_digest(item)
        found.append(Issuance(names, not_before, not_after, serial=serial, sha256=digest))
    return found


@dataclass
class CTSearch:
    """A CT search client with a per-name daily cache; `calls` counts requests actually sent."""

    url: str = DEFAULT_URL
    timeout: float = 5.0
    api_key: str | None = None
    session: Any = None  # a requests.Session; None: the process's shared one (outside.py)
    calls: int = 0
    _cache: dict[str, tuple[float, list[Issuance] | OutsideUnavailable]] = field(
        default_factory=dict
    )
    _flights: dict[str, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def issuances(self, host_ascii: str, now: float | None = None) -> list[Issuance]:
        """Return the unexpired issuances logged for a name; raise OutsideUnavailable."""
        moment = time.time() if now is None else now
        with self._flight(host_ascii):  # one search per name, however many ask at once
            with self._lock:
                cached = self._cache.get(host_ascii)
            if cached and moment - cached[0] < CACHE_SECONDS:
                if isinstance(cached[1], OutsideUnavailable):
                    raise cached[1]
                return cached[1]
            try:
                found: list[Issuance] | OutsideUnavailable = self._search(host_ascii)
            except OutsideUnavailable as error:
                found = error  # remembered too: a failing service costs one search a name a day
            with self._lock:
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
                self._cache[host_ascii] = (moment, found)
            if isinstance(found, OutsideUnavailable):
                raise found
            return found

    def _flight(self, key: str) -> threading.Lock:
        with self._lock:
            if len(self._flights) >= MAX_CACHED:
                self._flights.clear()
            return self._flights.setdefault(key, threading.Lock())

    def _search(self, host_ascii: str) -> list[Issuance]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        found: list[Issuance] = []
        after = None
        for _page in range(MAX_PAGES):
            params = [("domain", host_ascii), ("match_wildcards", "true")]
            params += [("expand", "dns_names"), ("expand", "cert")]
            if after:
                params.append(("after", after))
            with self._lock:
                self.calls += 1
            answer = get_json(
                self.session, self.url, timeout=self.timeout, params=params, headers=headers
            )
            page = parse_issuances(answer.data)
            found += page
            last = answer.data[-1] if answer.data else None
            after = last.get("id") if isinstance(last, dict) else None
            if len(answer.data) < FULL_PAGE or not isinstance(after, str):
                break
        return found
