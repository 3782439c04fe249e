"""Request and response shapes of the reminder side of the API: inbox, notification
settings, webhooks and calendar feeds.

Kept apart from `api/schemas.py` (the lifecycle's shapes) so that the two grow
independently. Request bodies forbid unknown fields, like every body of this API.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from domain.types import Name, ShortText


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- notification settings

# The local part in the dot-atom form of RFC 5322 (no quoted strings, no comments): what mail
# servers of government offices accept, and nothing that could split an SMTP header.
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _email(value: str) -> str:
    """A deliverable address `local@domain`, domain lower-cased and in its ASCII (punycode) form.

    Chinese domain names (例子.中国) are accepted and stored as punycode, because an SMTP
    server without SMTPUTF8 refuses them otherwise. No display names, no lists: the
    value goes into one `To:` header.
    """
    local, at, domain = value.rpartition("@")
    if not at or not _LOCAL.fullmatch(local) or len(local) > 64:
        raise ValueError("must be an email address like name@example.gov.cn")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError("the domain after @ is not a valid domain name") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise ValueError("the domain after @ is not a valid domain name")
    address = f"{local}@{ascii_domain}"
    if len(address) > 254:
        raise ValueError("must be at most 254 characters")
    return address


EmailAddress = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254),
                         AfterValidator(_email)]

Language = Literal["zh", "en"]


class NotificationSettingsIn(Body):
    """Email is optional: without it notices go to the inbox only."""

    email: EmailAddress | None = None
    language: Language


class NotificationSettings(BaseModel):
    email: str | None
    language: Language


# ---------------------------------------------------------------- inbox


class InboxMessage(BaseModel):
    id: str
    kind: Literal["notice", "delivery_failed"]
    project_id: str | None
    notice_key: str | None
    subject: str
    body: str
    created_at: datetime
    read_at: datetime | None


class InboxPage(BaseModel):
    items: list[InboxMessage]
    unread_count: int = Field(description="All unread messages of the caller, not only this page's.")
    next_before: str | None = Field(description="Pass as `before` for the next (older) page; null on the last.")


class ReadAll(BaseModel):
    marked: int = Field(description="Messages that were unread until now.")
    unread_count: int


# ---------------------------------------------------------------- webhooks


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    return value


WebhookUrl = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
                       AfterValidator(_no_nul)]


class WebhookIn(Body):
    department: Name
    url: WebhookUrl = Field(description="http(s) URL of the chat robot; private and loopback targets are refused.")
    description: ShortText | None = None


class Webhook(BaseModel):
    id: str
    department: str
    url: str
    description: str | None
    created_at: datetime
    revoked_at: datetime | None = None


class WebhookCreated(Webhook):
    secret: str = Field(description="Signs every request (HMAC-SHA256). Shown only in this answer.")


# ---------------------------------------------------------------- calendar feeds


class CalendarFeedIn(Body):
    scope: Literal["me", "department"]
    department: Name | None = Field(default=None, validate_default=True,
                                    description="Required for scope `department`, absent for `me`.")

    @field_validator("department")
    @classmethod
    def _department_fits_scope(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Checked on the field itself, so the 422 names `department` rather than the whole body."""
        scope = info.data.get("scope")
        if scope == "department" and value is None:
            raise ValueError("required for a department feed")
        if scope == "me" and value is not None:
            raise ValueError("only a department feed has a department")
        return value


class CalendarFeed(BaseModel):
    id: str
    scope: Literal["me", "department"]
    department: str | None
    created_at: datetime
    revoked_at: datetime | None = None


class CalendarFeedCreated(CalendarFeed):
    url: str = Field(description="The feed's address; the secret in it is the credential. Shown only in this answer.")
