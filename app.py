"""The sslnotify HTTP API (Chalice): thin routes over chalicelib.api."""

from __future__ import annotations

from chalice import Chalice, Response

from chalicelib import api, logs, manage, validation, web

logs.setup()
app = Chalice(app_name="sslnotify")
cors = web.SiteCORS(max_age=600)
ANY_BODY = ["*/*"]  # these routes read no body, so its type does not matter
FORM_OR_JSON = ["application/json", "application/x-www-form-urlencoded"]


def route(path: str, **options):
    """Register a view whose sslnotify errors are answered as JSON 4xx (one place: web.py)."""

    def register(view):
        return app.route(path, **options)(web.answers_errors(view))

    return register


@route("/check/{host}", methods=["GET"], cors=cors, content_types=ANY_BODY)
def check_now(host):
    """Check a target now."""
    request = app.current_request
    params = web.query(request)
    return api.check_now(
        host, params.get("days"), params.get("port"), web.client(request), params.get("protocol")
    )


@route("/user/{email}", methods=["PUT"], cors=cors, content_types=ANY_BODY)
def subscribe_or_confirm(email):
    """Subscribe (?domain=…&days=…[&protocol=…]), confirm (?uuid=…), or set at once with a
    manage token (&token=…)."""
    request = app.current_request
    params = web.query(request)
    if params.get("token") is not None:
        return manage.set_subscription(email, params)
    return api.change_user(email, params, web.client(request))


@route("/user/{email}", methods=["DELETE"], cors=cors, content_types=ANY_BODY)
def unsubscribe(email):
    """Unsubscribe from the subscription a link names (?uuid=…)."""
    return api.unsubscribe(email, web.query(app.current_request).get("uuid"))


@route("/user/{email}/unsubscribe", methods=["POST"], content_types=ANY_BODY)
def unsubscribe_one_click(email):
    """Unsubscribe in one click from a mail client (RFC 8058); the token, not the body, decides."""
    return api.unsubscribe(email, web.query(app.current_request).get("uuid"))


@route("/user/{email}/unsubscribe-digest", methods=["POST"], content_types=ANY_BODY)
def unsubscribe_digest_one_click(email):
    """Unsubscribe in one click (RFC 8058) from every certificate a digest email lists."""
    return manage.unsubscribe_digest(email, web.query(app.current_request).get("token"))


@route("/feedback", methods=["POST"], cors=cors, content_types=FORM_OR_JSON)
def feedback():
    """Forward the feedback form."""
    request = app.current_request
    fields = web.body_fields(request, validation.MAX_FEEDBACK_BODY)
    return api.send_feedback(fields, web.client(request))


@route("/manage", methods=["POST"], cors=cors, content_types=FORM_OR_JSON)
def request_manage_link():
    """Mail a link to the manage page (the same answer whether or not the address is known)."""
    request = app.current_request
    fields = web.body_fields(request, manage.MAX_MANAGE_BODY)
    return manage.request_link(fields, web.client(request))


@route("/user/{email}/subscriptions", methods=["GET"], cors=cors, content_types=ANY_BODY)
def list_subscriptions(email):
    """List every subscription of an address (?token= a manage token)."""
    return manage.listing(email, web.query(app.current_request).get("token"))


@route("/user/{email}/subscriptions", methods=["DELETE"], cors=cors, content_types=ANY_BODY)
def remove_subscriptions(email):
    """Unsubscribe from all (or from ?domain=… alone) with a manage token."""
    return manage.remove(email, web.query(app.current_request))


@route("/user/{email}/calendar", methods=["POST"], cors=cors, content_types=ANY_BODY)
def renew_calendar(email):
    """Make a new private calendar URL (?token= a manage token); the old one stops working."""
    return manage.renew_calendar(email, web.query(app.current_request).get("token"))


@route("/calendar/{name}", methods=["GET"], content_types=ANY_BODY)
def calendar(name):
    """Serve a private calendar feed (TOKEN.ics): each certificate's expiry and warning days."""
    return Response(body=manage.calendar(name), headers=manage.CALENDAR_HEADERS)
