"""ACME Renewal Information (RFC 9773): the renewal window a CA suggests for one certificate.

The CA is found from the leaf's issuer name in a table of ACME directories kept in configuration
(acme_directories.json, or SSLNOTIFY_ACME_DIRECTORIES). The directory names the renewalInfo
endpoint; the certificate is identified by its authority key identifier and serial number.
Answers are cached until their Retry-After, and at least a day, so each certificate costs at
most one request a day.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from chalicelib.checker.outside import OutsideUnavailable, get_json
from chalicelib.checker.renewal import RenewalWindow

DIRECTORIES_FILE = Path(__file__).with_name("acme_directories.json")
DAY = 24 * 3600.0
MAX_CACHE_SECONDS = 7 * DAY  # a far Retry-After is clamped: revocation plans change
MAX_CACHED = 100_000


@cache
def default_directories() -> dict[str, str]:
    """Return the shipped table from issuer name to ACME directory URL."""
    table = json.loads(DIRECTORIES_FILE.read_text())
    return {name.lower(): url for name, url in table["directories"].items()}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def certificate_id(leaf: x509.Certificate) -> str | None:
    """Return the RFC 9773 identifier "base64url(AKI keyIdentifier).base64url(serial)", or None."""
    try:
        key_id = leaf.extensions.get_extension_for_class(
            x509.AuthorityKeyIdentifier
        ).value.key_identifier
        serial = leaf.serial_number
    except (x509.ExtensionNotFound, ValueError):
        return None
    if not key_id or serial <= 0:
        return None
    # The DER INTEGER's content octets: big-endian two's complement, a leading zero when needed.
    serial_bytes = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
    return f"{_b64url(key_id)}.{_b64url(serial_bytes)}"


def issuer_names(leaf: x509.Certificate) -> list[str]:
    """Return the issuer's organisation and common names, lower-cased (unreadable: none)."""
    try:
        attributes = leaf.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        attributes += leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        return [str(attribute.value).lower() for attribute in attributes]
    except ValueError:
        return []


def _moment(text) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a date without a time zone")
    return moment


def parse_renewal_info(data) -> RenewalWindow:
    """Read a renewalInfo answer; a malformed one is an unknown window, never an exception."""
    try:
        window = data["suggestedWindow"]
        start, end = _moment(window["start"]), _moment(window["end"])
    except (KeyError, TypeError, ValueError):
        return RenewalWindow(error="the CA's renewal information is malformed")
    if end < start:
        return RenewalWindow(error="the CA's renewal window ends before it starts")
    explanation = data.get("explanationURL") if isinstance(data, dict) else None
    if not (isinstance(explanation, str) and explanation.startswith(("https://", "http://"))):
        explanation = None
    return RenewalWindow(start=start, end=end, explanation_url=explanation)


@dataclass
class RenewalInfo:
    """An ARI client over a table of ACME directories; `calls` counts requests actually sent."""

    directories: Mapping[str, str] = field(default_factory=default_directories)
    timeout: float = 5.0
    session: Any = None  # a requests.Session; None: the process's shared one (outside.py)
    calls: int = 0
    _endpoints: dict[str, tuple[float, str]] = field(default_factory=dict)
    _cache: dict[str, tuple[float, RenewalWindow]] = field(default_factory=dict)
    _flights: dict[str, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._table = {name.lower(): url for name, url in self.directories.items()}

    def directory_for(self, leaf: x509.Certificate) -> str | None:
        """Return the ACME directory of the leaf's issuer, when the table knows it."""
        return next((self._table[name] for name in issuer_names(leaf) if name in self._table), None)

    def applies(self, leaf: x509.Certificate) -> bool:
        """Tell, without a request, whether window() would ask the CA about this leaf."""
        return self._lookup_key(leaf) is not None

    def _lookup_key(self, leaf: x509.Certificate) -> tuple[str, str] | None:
        """Return (ACME directory, RFC 9773 certificate id), or None when either is unknown."""
        directory = self.directory_for(leaf)
        cert_id = certificate_id(leaf)
        return None if directory is None or cert_id is None else (directory, cert_id)

    def window(self, leaf: x509.Certificate, now: float | None = None) -> RenewalWindow | None:
        """Return the CA's window for this leaf; None when its issuer has no known ACME directory.

        A failed lookup gives a window with `error` set (the information is unknown).
        """
        key = self._lookup_key(leaf)
        if key is None:
            return None
        directory, cert_id = key
        moment = time.time() if now is None else now
        with self._flight(cert_id):  # one request per certificate, however many ask at once
            with self._lock:
                cached = self._cache.get(cert_id)
            if cached and moment < cached[0]:
                return cached[1]
            try:
                endpoint = self._endpoint(directory, moment)
                answer = self._get(f"{endpoint.rstrip('/')}/{cert_id}")
                found = parse_renewal_info(answer.data)
                wait = min(max(answer.retry_after or 0.0, DAY), MAX_CACHE_SECONDS)
            except OutsideUnavailable as error:
                # Remembered for a day too: a failing CA costs one request a certificate a day.
                found = RenewalWindow(error=f"the CA's renewal information is unavailable: {error}")
                wait = DAY
            with self._lock:
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
                self._cache[cert_id] = (moment + wait, found)
            return found

    def _flight(self, key: str) -> threading.Lock:
        with self._lock:
            if len(self._flights) >= MAX_CACHED:
                self._flights.clear()
            return self._flights.setdefault(key, threading.Lock())

    def _get(self, url: str):
        with self._lock:
            self.calls += 1
        return get_json(self.session, url, timeout=self.timeout)

    def _endpoint(self, directory: str, moment: float) -> str:
        with self._lock:
            known = self._endpoints.get(directory)
        if known and moment < known[0]:
            return known[1]
        answer = self._get(directory)
        endpoint = answer.data.get("renewalInfo") if isinstance(answer.data, dict) else None
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise OutsideUnavailable("the CA's ACME directory offers no renewalInfo")
        with self._lock:
            self._endpoints[directory] = (moment + DAY, endpoint)
        return endpoint
