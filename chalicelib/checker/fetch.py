"""Bounded plain-HTTP fetches of revocation sources (CRLs, OCSP), through the SSRF guard.

The URLs come from the checked server's own certificates, so every byte and every address is
hostile: only http:// is fetched, the body is capped, one deadline bounds the whole fetch (DNS,
connect, headers and a slow-drip body alike), and the connection goes to exactly the address the
guard approved, so a name cannot resolve once for the guard and again elsewhere (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import threading
import time
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import NewConnectionError

from chalicelib.checker import ssrf
from chalicelib.checker.fetch_policy import (  # noqa: F401  (part of this module's API)
    MAX_CRL_BYTES,
    MAX_OCSP_BYTES,
    FetchFailed,
    FetchPolicy,
)
from chalicelib.checker.targets import Target, parse_target
from chalicelib.errors import BadInput, TargetNotAllowed

MAX_REDIRECTS = 2
_CHUNK = 64 * 1024
_GRACE = 0.5  # seconds the awaiting side allows beyond the fetch's own deadline
_USER_AGENT = "sslnotify revocation check"


class _Watchdog:
    """Shut the fetch's sockets when the deadline passes, so no read can outlive it."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        """Return the seconds left before the deadline (raise FetchFailed when none)."""
        left = self.deadline - time.monotonic()
        if left <= 0 or self.expired:
            raise FetchFailed("no complete answer within the time allowed")
        return left

    def watch(self, sock: socket.socket) -> None:
        """Shut this socket down at the deadline (at once when it has passed)."""
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def stop(self) -> None:
        """Cancel the timer once the fetch is over."""
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    # shutdown() wakes a recv() blocked in another thread; close() alone would not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _PinnedConnection(HTTPConnection):
    """An HTTP connection to one approved address, whatever the URL's host resolves to now."""

    def __init__(self, *args, pinned: str, watchdog: _Watchdog, **kwargs):
        super().__init__(*args, **kwargs)
        self._pinned = pinned
        self._watchdog = watchdog

    def _new_conn(self) -> socket.socket:
        try:
            sock = open_socket(self._pinned, self.port, self._watchdog.remaining())
        except (OSError, FetchFailed) as error:
            raise NewConnectionError(self, f"cannot connect to {self._pinned}: {error}") from error
        self._watchdog.watch(sock)
        return sock


def open_socket(address: str, port: int, timeout: float) -> socket.socket:
    """Connect to an IP address; AI_NUMERICHOST makes sure no name lookup happens here."""
    family, kind, protocol, _name, where = socket.getaddrinfo(
        address, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
    )[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(where)
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedPool(HTTPConnectionPool):
    ConnectionCls = _PinnedConnection


class _PinnedAdapter(HTTPAdapter):
    """A requests transport that sends every request to the approved address, no proxy, no retry."""

    def __init__(self, pinned: str, watchdog: _Watchdog):
        super().__init__(max_retries=0)
        self._pinned = pinned
        self._watchdog = watchdog
        self._pools: list[_PinnedPool] = []

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        url = urlsplit(request.url)
        pool = _PinnedPool(
            url.hostname,
            url.port or 80,
            maxsize=1,
            pinned=self._pinned,
            watchdog=self._watchdog,
        )
        self._pools.append(pool)
        return pool

    def close(self) -> None:
        for pool in self._pools:
            pool.close()
        super().close()


def _target(url: str) -> tuple[Target, str]:
    """Validate a source URL (plain http only); return its host as a Target and the URL."""
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError as error:
        raise FetchFailed(f"not a usable URL: {url[:200]!r}") from error
    if parts.scheme.lower() != "http":
        raise FetchFailed(f"only plain http:// sources are fetched, not {url[:200]!r}")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise FetchFailed(f"not a usable URL: {url[:200]!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        return parse_target(f"{host}:{port}"), url
    except BadInput as error:
        raise FetchFailed(f"not a usable URL: {url[:200]!r} ({error.message})") from error


def _addresses(target: Target, policy: FetchPolicy) -> list[str]:
    try:
        if policy.allow_private:
            addresses = ssrf.resolve(target, policy.resolver)
        else:
            addresses = ssrf.resolve_allowed(target, policy.resolver)
    except TargetNotAllowed as error:
        raise FetchFailed(f"refused: {error.message}") from error
    except ssrf.ResolutionFailed as error:
        raise FetchFailed(error.message) from error
    if not addresses:
        raise FetchFailed(f"could not resolve {target.host}: it has no address")
    return addresses


def _read_body(response: requests.Response, max_bytes: int, watchdog: _Watchdog) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed(f"the answer is larger than {max_bytes} bytes")
    body = bytearray()
    while True:
        watchdog.remaining()
        # read1: returns what has arrived, so the deadline is checked between small reads.
        chunk = response.raw.read1(_CHUNK, decode_content=False)
        if not chunk:
            break
        body += chunk
        if len(body) > max_bytes:
            raise FetchFailed(f"the answer is larger than {max_bytes} bytes")
    if watchdog.expired:  # the watchdog's shutdown looks like the end of the body
        raise FetchFailed("no complete answer within the time allowed")
    return bytes(body)


def _exchange(
    method: str,
    url: str,
    address: str,
    body: bytes | None,
    headers: dict[str, str],
    max_bytes: int,
    watchdog: _Watchdog,
) -> tuple[int, str | None, bytes]:
    """Make one request to one address; return (status, Location, body)."""
    session = requests.Session()
    session.trust_env = False  # no proxy or netrc from the environment
    adapter = _PinnedAdapter(address, watchdog)
    session.mount("http://", adapter)
    try:
        remaining = watchdog.remaining()
        response = session.request(
            method,
            url,
            data=body,
            headers=headers,
            timeout=(remaining, remaining),
            allow_redirects=False,
            stream=True,
        )
        with response:
            if response.is_redirect:
                return response.status_code, response.headers.get("Location"), b""
            if response.status_code != 200:
                return response.status_code, None, b""
            return 200, None, _read_body(response, max_bytes, watchdog)
    except requests.RequestException as error:
        if watchdog.expired or isinstance(error, requests.Timeout):
            raise FetchFailed("no complete answer within the time allowed") from error
        raise _Unreachable(_reason(error, address)) from error
    except (ValueError, http.client.HTTPException) as error:
        # http.client refuses a URL with control characters (header injection) this way.
        raise FetchFailed(f"not a usable URL or answer ({type(error).__name__})") from error
    finally:
        session.close()


class _Unreachable(Exception):
    pass


def _reason(error: BaseException, address: str) -> str:
    """Say in words why a request failed (the innermost OS error, not urllib3's repr)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return f"cannot connect to {address}: {seen.strerror.lower()}"
        if isinstance(seen, http.client.HTTPException):
            return f"{address} did not answer with valid HTTP"
        seen = seen.__cause__ or seen.__context__
    if isinstance(error, requests.ConnectionError):
        return f"the connection to {address} failed"
    return f"the request to {address} failed ({type(error).__name__})"


def fetch(
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    policy: FetchPolicy,
    body: bytes | None = None,
    content_type: str | None = None,
) -> bytes:
    """GET (or POST `body`) a plain-http URL and return the body of its 200 answer.

    Blocking; one deadline of `timeout` seconds covers everything. Redirects (GET only) are
    followed at most MAX_REDIRECTS times, each to a plain-http URL the guard approves again.
    Raise FetchFailed for anything else: refused, unreachable, slow, too large, not 200.
    """
    watchdog = _Watchdog(time.monotonic() + timeout)
    method = "POST" if body is not None else "GET"
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if content_type:
        headers["Content-Type"] = content_type
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            target, url = _target(url)
            failure = "no address to connect to"
            for address in _addresses(target, policy):
                try:
                    status, location, answer = _exchange(
                        method, url, address, body, headers, max_bytes, watchdog
                    )
                    break
                except _Unreachable as error:
                    failure = str(error)
            else:
                raise FetchFailed(failure)
            if status == 200:
                return answer
            if location and method == "GET":
                url = urljoin(url, location)
                continue
            raise FetchFailed(f"{target.host} answered HTTP {status}")
        raise FetchFailed(f"more than {MAX_REDIRECTS} redirects")
    finally:
        watchdog.stop()


async def fetch_async(url: str, **options) -> bytes:
    """Run fetch() in a daemon thread and await it (options as fetch).

    The await is bounded too: a name lookup is the one step the fetch's own watchdog cannot cut
    short, so the caller stops waiting at the deadline and the thread ends on its own.
    """
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result: bytes | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        try:
            result, error = fetch(url, **options), None
        except BaseException as failure:  # handed to the awaiting coroutine
            result, error = None, failure
        with contextlib.suppress(RuntimeError):  # the loop may be closed by now
            loop.call_soon_threadsafe(settle, result, error)

    # A daemon thread, not the loop's executor: a DNS lookup that hangs past the deadline
    # must not hold up asyncio.run() or the interpreter's exit.
    threading.Thread(target=work, name="sslnotify-fetch", daemon=True).start()
    try:
        async with asyncio.timeout(options["timeout"] + _GRACE):
            return await future
    except TimeoutError:
        raise FetchFailed("no complete answer within the time allowed") from None
