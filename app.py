"""The sslnotify HTTP API (Chalice): thin routes over chalicelib.api."""

from __future__ import annotations

from chalice import Chalice

from chalicelib import api, logs, validation, web

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
    """Subscribe (?domain=…&days=…[&protocol=…]) or confirm (?uuid=…)."""
    request = app.current_request
    return api.change_user(email, web.query(request), web.client(request))


@route("/user/{email}", methods=["DELETE"], cors=cors, content_types=ANY_BODY)
def unsubscribe(email):
    """Unsubscribe from the subscription a link names (?uuid=…)."""
    return api.unsubscribe(email, web.query(app.current_request).get("uuid"))


@route("/user/{email}/unsubscribe", methods=["POST"], content_types=ANY_BODY)
def unsubscribe_one_click(email):
    """Unsubscribe in one click from a mail client (RFC 8058); the token, not the body, decides."""
    return api.unsubscribe(email, web.query(app.current_request).get("uuid"))


@route("/feedback", methods=["POST"], cors=cors, content_types=FORM_OR_JSON)
def feedback():
    """Forward the feedback form."""
    request = app.current_request
    fields = web.body_fields(request, validation.MAX_FEEDBACK_BODY)
    return api.send_feedback(fields, web.client(request))
