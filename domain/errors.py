"""Why an action is refused. The API maps each kind to an HTTP status."""


class DomainError(Exception):
    """Base of every rule violation; `kind` names it across process boundaries."""

    kind = "DomainError"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Refused(DomainError):
    """The current state forbids the action (HTTP 409)."""

    kind = "Refused"


class NotFound(DomainError):
    """The action names something the record does not hold (HTTP 404)."""

    kind = "NotFound"


class Invalid(DomainError):
    """The input is well-formed but makes no sense against the record (HTTP 422)."""

    kind = "Invalid"



# The whole state of a record travels in Temporal payloads (2 MB each) and in every
# Update's answer in history: a bound well below keeps a years-long record healthy.
MAX_RECORD_BYTES = 256_000


def check_record_size(state: object, what: str) -> None:
    size = len(state.model_dump_json())  # type: ignore[attr-defined]
    if size > MAX_RECORD_BYTES:
        raise Invalid(f"this {what} record would grow to {size:,} bytes, over the {MAX_RECORD_BYTES:,} one record "
                      "may hold; shorten the text or split the record")
