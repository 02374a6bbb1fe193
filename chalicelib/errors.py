"""Every error sslnotify raises on purpose, each with the HTTP status and exit code it maps to."""


class SslnotifyError(Exception):
    """Base of sslnotify's own errors; the message is safe to show to a user."""

    status = 500
    code = "InternalError"
    exit_code = 3
    # A retryable error propagates out of a Lambda handler so that AWS retries the
    # asynchronous invocation; the others are answered as {"errorMessage": ...}.
    retryable = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadInput(SslnotifyError):
    """Something a user or caller typed is not acceptable."""

    status = 400
    code = "BadRequestError"


class UsageError(BadInput):
    """The command line is not usable as given."""


class PayloadError(BadInput):
    """A Lambda invocation payload is malformed or names an unknown action."""


class NotFound(SslnotifyError):
    """The thing asked for does not exist (or the token does not match it)."""

    status = 404
    code = "NotFoundError"


class TargetNotAllowed(SslnotifyError):
    """The public service refuses to probe this target (private or reserved address)."""

    status = 403
    code = "ForbiddenError"


class TooManyRequests(SslnotifyError):
    """A rate limit was reached."""

    status = 429
    code = "TooManyRequestsError"


class Throttled(SslnotifyError):
    """An AWS service kept refusing work for now; the caller should retry later."""

    status = 503
    code = "ServiceUnavailableError"
    retryable = True


class MailUnavailable(SslnotifyError):
    """A mail the request needs could not be sent now (SES refused or failed); try later."""

    status = 503
    code = "ServiceUnavailableError"


class InvocationError(SslnotifyError):
    """Another Lambda function answered with an error or could not be invoked."""

    status = 502
    code = "BadGatewayError"
    retryable = True


class ConfigurationError(SslnotifyError):
    """The deployment is missing a setting it needs."""
