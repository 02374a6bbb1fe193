"""Emulated SES's maximum send rate, enforced as SES does: per account, per second.

moto's SES accepts any number of emails a second. With a quota installed, every
send of the second past `rate` is refused with SES's own error (Throttling,
"Maximum sending rate exceeded."), however many mailers send at once, and
GetSendQuota answers that rate. Used by the local stack's emulated AWS and by tests.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any


class SendRateQuota:
    """Count sends per one-second window; admit at most `rate` in each."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.time):
        self.rate = rate
        self.per_window = max(1, math.floor(rate))
        self._clock = clock
        self._lock = threading.Lock()
        self._window = -1
        self._count = 0
        self.admitted = 0
        self.throttled = 0
        self.busiest = 0  # the most sends admitted in one second

    def admit(self) -> bool:
        """Count one send now; tell whether the account's rate allows it."""
        with self._lock:
            window = int(self._clock())
            if window != self._window:
                self._window, self._count = window, 0
            if self._count >= self.per_window:
                self.throttled += 1
                return False
            self._count += 1
            self.admitted += 1
            self.busiest = max(self.busiest, self._count)
            return True


def throttling_error() -> Exception:
    """Return SES's answer to a send over the account's maximum send rate."""
    from moto.ses.exceptions import SesError

    class Throttling(SesError):
        code = "Throttling"

    return Throttling("Maximum sending rate exceeded.")


def install(rate: float, patch: Callable[[Any, str, Any], None] = setattr) -> SendRateQuota:
    """Make moto's SES enforce `rate` emails a second; return the counter.

    `patch(owner, name, value)` sets the attributes (pytest's monkeypatch.setattr undoes
    them after a test).
    """
    from moto.ses.models import SESBackend, SESQuota

    # moto's SES model lists no Throttling error shape; SES sends it all the same.
    warnings.filterwarnings("ignore", message=r"Exception\(Throttling\)")
    quota = SendRateQuota(rate)
    for name in ("send_raw_email", "send_email", "send_templated_email"):
        original = getattr(SESBackend, name)

        def limited(self, *args: Any, __original=original, **kwargs: Any) -> Any:
            if not quota.admit():
                raise throttling_error()
            return __original(self, *args, **kwargs)

        patch(SESBackend, name, limited)

    def get_send_quota(self: Any) -> SESQuota:
        answer = SESQuota(self.sent_message_count)
        answer.max_send_rate = rate
        return answer

    patch(SESBackend, "get_send_quota", get_send_quota)
    return quota


def stall_first_send(seconds: float) -> None:
    """Hold the first alert email this long before SES accepts it, as a hung connection would.

    For trying a mailer's timeout by hand (SSLNOTIFY_LOCAL_SES_STALL) and for the test
    that kills a mailer there.
    """
    from moto.ses.models import SESBackend

    original = SESBackend.send_raw_email
    stalled = threading.Event()

    def send_raw_email(self: Any, *args: Any, **kwargs: Any) -> Any:
        raw = str(kwargs.get("raw_data", args[2] if len(args) > 2 else ""))
        if "Subject: SSL alert" in raw and not stalled.is_set():
            stalled.set()
            time.sleep(seconds)
        return original(self, *args, **kwargs)

    SESBackend.send_raw_email = send_raw_email
