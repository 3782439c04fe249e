"""Delivery channels for milestone reminders: e-mail (with a calendar attachment) and signed webhooks.

The reminder schedule (`domain.reminders`) decides *what* is owed; this package
only turns one owed notice into bytes on a wire. Every channel reports failure
the same way, as a `ChannelError`, so the delivery activity can decide between
"try again later" and "give up and tell the liaison officer" without knowing
anything about SMTP reply codes or HTTP statuses.
"""

from __future__ import annotations


class ChannelError(Exception):
    """A delivery attempt failed.

    `permanent` is True when trying again cannot help: the mail server refused
    the address with a 5xx reply, the receiver answered 404, the URL points
    into the internal network. Transient failures (connection refused,
    timeouts, 4xx SMTP replies, HTTP 5xx) are worth retrying.
    """

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent

    def __reduce__(self) -> tuple[object, ...]:
        # Keep `permanent` when the error is pickled or copied (activity frameworks do both).
        return (type(self), (str(self), self.permanent))
