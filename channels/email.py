"""E-mail reminders over SMTP: a plain-text message with the milestone as a calendar attachment.

Building and sending are separate steps: `build_email` is a pure function of
the message, the settings and a timestamp (so a retry resends the very same
message), and `send_email` does the network part and translates aiosmtplib's
exceptions into `ChannelError`, permanent or not.

Deduplication is the receiver's job, made possible here: the Message-ID is
derived from the delivery id, so if the worker crashes after the server
accepted the message but before the delivery was recorded, the resend carries
the same Message-ID and mail systems that deduplicate on it drop the copy.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
from pydantic import BaseModel, SecretStr, model_validator

from channels import ChannelError
from channels.ics import calendar_bytes, milestone_event
from channels.messages import NoticeMessage, render

CONTENT_LANGUAGES = {"zh": "zh-CN", "en": "en"}
ATTACHMENT_NAME = "milestone.ics"


class SmtpSettings(BaseModel):
    """Where to hand mail over. The defaults point at the local sink that `make run` starts."""

    host: str = "127.0.0.1"
    port: int = 8025
    starttls: bool = False
    """Require STARTTLS after connecting (port 587). False: never upgrade."""
    use_tls: bool = False
    """TLS from the first byte (port 465)."""
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "Accord <accord@localhost>"
    timeout: float = 30.0
    message_id_domain: str = "accord.local"

    @model_validator(mode="after")
    def _one_tls_mode(self) -> SmtpSettings:
        if self.starttls and self.use_tls:
            raise ValueError("choose either starttls (upgrade a plain connection) or use_tls (TLS from the start)")
        return self


def message_id_for(delivery_id: str, domain: str = "accord.local") -> str:
    """The Message-ID of a delivery: the same for every attempt, distinct across deliveries."""
    digest = hashlib.sha256(delivery_id.encode("utf-8")).hexdigest()
    return f"<{digest}@{domain}>"


def _one_line(text: str) -> str:
    # Header values must not contain line breaks; a multi-line milestone name must not break the message.
    return " ".join(text.split())


def build_email(message: NoticeMessage, settings: SmtpSettings, stamp: datetime) -> EmailMessage:
    """The complete e-mail for one delivery. `stamp` is the Date header and the event's DTSTAMP."""
    recipient = message.recipient
    if not recipient.email:
        raise ValueError(f"recipient {recipient.user_id} has no e-mail address")
    if stamp.tzinfo is None or stamp.utcoffset() is None:
        raise ValueError("stamp must be timezone-aware")
    notice = message.notice
    rendered = render(message)

    email = EmailMessage()
    email["From"] = settings.sender
    # Address quotes the display name and RFC 2047-encodes it (UTF-8) when the message is serialised.
    email["To"] = Address(display_name=_one_line(recipient.name), addr_spec=recipient.email.strip())
    email["Subject"] = _one_line(rendered.subject)
    email["Date"] = format_datetime(stamp)
    email["Message-ID"] = message_id_for(message.delivery_id, settings.message_id_domain)
    # RFC 3834: out-of-office robots must not answer machine-sent mail.
    email["Auto-Submitted"] = "auto-generated"
    email["X-Accord-Notice-Key"] = notice.key
    email["X-Accord-Delivery"] = _one_line(message.delivery_id)
    # Base64 rather than 8bit: Chinese text survives relays that do not announce 8BITMIME.
    email.set_content(rendered.body, charset="utf-8", cte="base64")

    event = milestone_event(
        project_id=notice.project_id,
        milestone_id=notice.milestone_id,
        project_title=message.project_title,
        milestone_name=notice.milestone_name,
        due_date=notice.due_date,
        due_version=notice.due_version,
        stamp=stamp,
        description="\n".join(part for part in (message.project_title, message.link) if part),
    )
    ics = calendar_bytes("Accord", [event], method="PUBLISH")
    # Passed as bytes so the calendar keeps its CRLF line ends (RFC 5545) inside the base64 part.
    email.add_attachment(ics, maintype="text", subtype="calendar", filename=ATTACHMENT_NAME,
                         params={"method": "PUBLISH", "charset": "utf-8"})
    # Set last: making the message multipart moves every Content-* header into the first part.
    email["Content-Language"] = CONTENT_LANGUAGES[recipient.language]
    return email


async def send_email(email: EmailMessage, settings: SmtpSettings) -> None:
    """Hand `email` to the SMTP server; raise `ChannelError` when it was not accepted.

    Permanent: the server refused the recipients or answered 5xx (bad address,
    authentication or policy failure), or lacks a required extension such as
    STARTTLS. Everything else (refused connection, timeout, dropped
    connection, 4xx such as greylisting) is worth another try. Error texts name
    the server only; the password never appears in them.
    """
    password = settings.password.get_secret_value() if settings.password is not None else None
    where = f"SMTP {settings.host}:{settings.port}"
    try:
        await aiosmtplib.send(
            email,
            hostname=settings.host,
            port=settings.port,
            start_tls=settings.starttls,
            use_tls=settings.use_tls,
            username=settings.username,
            password=password,
            timeout=settings.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [refusal.code for refusal in exc.recipients]
        # Only "every refusal was temporary" (450 mailbox busy, 451 greylisting) is worth retrying.
        temporary = bool(codes) and all(400 <= code < 500 for code in codes)
        details = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        raise ChannelError(f"{where} refused the recipients ({details})", permanent=not temporary) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise ChannelError(f"{where} answered {exc.code} {exc.message}",
                           permanent=500 <= exc.code < 600) from exc
    except aiosmtplib.SMTPNotSupported as exc:
        raise ChannelError(f"{where} does not support what the settings require: {exc.message}",
                           permanent=True) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        # Connection refused or reset, DNS failure, timeouts (TimeoutError is an OSError too).
        raise ChannelError(f"{where} unreachable: {exc}", permanent=False) from exc
