"""What each API route does: check the input, hold the rate limits, invoke data and mailer.

The API function neither touches the tables nor sends mail itself: it invokes the
data and mailer functions (blocking), whose errors come back as sslnotify's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib import validation
from chalicelib.checker import check, ssrf
from chalicelib.checker.targets import Target, parse_target
from chalicelib.config import get_settings
from chalicelib.errors import BadInput, MailUnavailable, SslnotifyError
from chalicelib.invoke import invoke
from chalicelib.logs import get_logger

logger = get_logger(__name__)

MINUTE = 60
HOUR = 3600
SUBSCRIBE_MESSAGE = "Please check your emails to confirm your subscription"
CONFIRMATION_UNSENT = "The confirmation email could not be sent just now; please try again later"


def rate_limit(scope: str, client: str, limit: int, window_seconds: int) -> None:
    """Count a client's request in the data function; raise TooManyRequests past the limit."""
    invoke(
        "data",
        {
            "action": "hit_rate_limit",
            "key": f"{scope}:{client}",
            "limit": limit,
            "window_seconds": window_seconds,
        },
        wait=True,
    )


def check_now(host: str, days: Any, port: Any, client: str, protocol: Any = None) -> dict[str, Any]:
    """Check a target now and return the check result (also when the check found an error)."""
    settings = get_settings()
    target = validation.target(host, validation.port(port), protocol)
    tolerance = validation.tolerance(days)
    rate_limit("check", client, settings.limits.check_per_client_per_minute, MINUTE)
    result = check.check_target(
        target.key,
        validation.tolerance_value(tolerance),
        allow_private=settings.allow_private_targets,
        timeout=settings.check_timeout,
    )
    logger.info("checked now", target=target.key, status=result.status)
    return result.to_dict()


def refuse_private(target: Target) -> None:
    """Refuse a target that is a private or local address or name (no DNS lookup here)."""
    if not get_settings().allow_private_targets:
        ssrf.resolve_allowed(target, resolver=lambda host, port: [])


def subscribe(
    email: str, domain: Any, days: Any, client: str, protocol: Any = None
) -> dict[str, str]:
    """Store a pending subscription and mail its confirmation link (harmless to repeat)."""
    settings = get_settings()
    address = validation.email_address(email)
    target = validation.target(domain, protocol_text=protocol)
    tolerance = validation.tolerance(days)
    refuse_private(target)
    rate_limit("subscribe", client, settings.limits.subscribe_per_client_per_hour, HOUR)
    fields = {"email": address, "target": target.key, "tolerance": tolerance}
    pending = invoke("data", {"action": "subscribe", **fields}, wait=True)
    try:
        invoke("mailer", {"action": "send_confirmation", **fields, "token": pending["token"]}, True)
    except SslnotifyError as error:
        if error.status < 500:
            raise
        # SES refused (in its sandbox: an unverified recipient) or failed. Its message
        # names the address, so the visitor gets a plain one and the log the error's kind.
        logger.error("confirmation not sent", target=target.key, error=type(error).__name__)
        raise MailUnavailable(CONFIRMATION_UNSENT) from error
    logger.info("subscription requested", target=target.key, state=pending["state"])
    return {"Message": SUBSCRIBE_MESSAGE}


def confirm(email: str, token: Any) -> dict[str, str]:
    """Confirm the subscription a confirmation link names."""
    address = validation.email_address(email)
    answer = invoke(
        "data", {"action": "confirm", "email": address, "token": validation.token(token)}, True
    )
    shown = _shown(answer["target"])
    if answer["state"] == "already_confirmed":
        message = f"Your subscription for {shown} was already confirmed"
    else:
        message = f"Your subscription for {shown} is confirmed"
    return {"Message": message, "target": answer["target"], "days": answer["tolerance"]}


def unsubscribe(email: str, token: Any) -> dict[str, str]:
    """Delete the subscription an unsubscribe link names."""
    address = validation.email_address(email)
    answer = invoke(
        "data", {"action": "unsubscribe", "email": address, "token": validation.token(token)}, True
    )
    return {
        "Message": f"You will get no more emails about {_shown(answer['target'])}",
        "target": answer["target"],
    }


def change_user(email: str, params: Mapping[str, Any], client: str) -> dict[str, str]:
    """Answer PUT /user/{email}: subscribe when given a domain, confirm when given a uuid."""
    if params.get("uuid") and params.get("domain"):
        raise BadInput("give either domain (to subscribe) or uuid (to confirm), not both")
    if params.get("uuid") is not None:
        return confirm(email, params["uuid"])
    if params.get("domain") is not None:
        return subscribe(
            email, params["domain"], params.get("days"), client, params.get("protocol")
        )
    raise BadInput("domain is missing (or uuid, to confirm a subscription)")


def send_feedback(fields: Mapping[str, Any], client: str) -> dict[str, str]:
    """Forward a feedback form to the feedback mailbox."""
    feedback = validation.feedback(fields)
    limit = get_settings().limits.subscribe_per_client_per_hour
    rate_limit("feedback", client, limit, HOUR)
    invoke("mailer", {"action": "send_feedback", **feedback.to_dict()}, wait=True)
    return {"Message": "Thank you for your feedback"}


def _shown(target_key: str) -> str:
    """Return a stored target as a person reads it (Unicode host, default port left out)."""
    try:
        return parse_target(target_key).shown
    except BadInput:
        return target_key
