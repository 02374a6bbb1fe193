"""HTTP glue for the Chalice app: sslnotify's errors as responses, request reading, CORS."""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from chalice import (
    BadRequestError,
    ChaliceViewError,
    CORSConfig,
    ForbiddenError,
    NotFoundError,
    Response,
    TooManyRequestsError,
)
from chalice.app import Request

from chalicelib.config import get_settings
from chalicelib.errors import BadInput, SslnotifyError
from chalicelib.logs import get_logger

logger = get_logger(__name__)

CHALICE_ERRORS = {
    400: BadRequestError,
    403: ForbiddenError,
    404: NotFoundError,
    429: TooManyRequestsError,
}
MAX_FORM_FIELDS = 20


class PayloadTooLargeError(ChaliceViewError):
    """The request body is larger than the route accepts (413)."""

    STATUS_CODE = 413


class SiteCORS(CORSConfig):
    """CORS that admits only the frontend's origin, read from the settings when answering."""

    @property
    def allow_origin(self) -> str:  # type: ignore[override]
        return get_settings().cors_origin

    @allow_origin.setter
    def allow_origin(self, value: str) -> None:
        """Ignore the constructor's value: the settings are the one source."""


def answers_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a view so sslnotify's errors become {"Code", "Message"} answers with their status."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except SslnotifyError as error:
            return error_response(error)

    return wrapper


def error_response(error: SslnotifyError) -> Response:
    """Raise Chalice's error class for an sslnotify error's status, or answer one it lacks (502)."""
    if error.status >= 500:
        logger.error("request failed", error=type(error).__name__, reason=error.message)
    else:
        logger.info("request refused", error=type(error).__name__, reason=error.message[:200])
    chalice_error = CHALICE_ERRORS.get(error.status)
    if chalice_error is not None:
        raise chalice_error(error.message) from error
    return Response(body={"Code": error.code, "Message": error.message}, status_code=error.status)


def query(request: Request) -> dict[str, str]:
    """Return the query parameters (the last value of a repeated one)."""
    params = request.query_params or {}
    return {name: params.get(name) for name in params}


def client(request: Request) -> str:
    """Return the key of the client a request came from, for per-client rate limits."""
    identity = (request.context or {}).get("identity") or {}
    return client_key(str(identity.get("sourceIp") or "unknown"))


def client_key(source: str) -> str:
    """Return an IPv4 address as it is, an IPv6 one as its /64 (IPv4-mapped as IPv4).

    One IPv6 client holds at least a /64 (often a /56), so keying the exact address would
    give it a fresh allowance per address.
    """
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return source
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def body_fields(request: Request, max_bytes: int) -> dict[str, Any]:
    """Return the fields of a JSON or form-encoded body, refusing anything else clearly."""
    try:
        raw = request.raw_body or b""
    except (UnicodeError, ValueError):
        raise BadInput("the request body could not be read") from None
    if len(raw) > max_bytes:
        raise PayloadTooLargeError(f"the request body is larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise BadInput("the request body is not UTF-8 text") from None
    content_type = (request.headers.get("content-type") or "application/json").lower()
    if content_type.split(";")[0].strip() == "application/x-www-form-urlencoded":
        return _form(text)
    try:
        fields = json.loads(text, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):
        raise BadInput("the request body is not valid JSON") from None
    if not isinstance(fields, dict):
        raise BadInput("the request body must be a JSON object")
    return fields


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing one that names a field twice (which value would count?)."""
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise BadInput("the request body names a field more than once")
    return dict(pairs)


def _form(text: str) -> dict[str, str]:
    try:
        parsed = parse_qs(
            text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict"
        )
    except (ValueError, UnicodeError):
        raise BadInput("the form is not valid (too many fields, or not UTF-8)") from None
    repeated = sorted(repr(name[:40]) for name, values in parsed.items() if len(values) > 1)
    if repeated:
        raise BadInput(f"field(s) given more than once: {', '.join(repeated)}")
    return {name: values[0] for name, values in parsed.items()}
