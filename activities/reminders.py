"""Reminder activities: load the setup, deliver a notice on every channel, report a failure.

`deliver_notice` is safe to run any number of times for one notice: each
(recipient, channel) has one delivery row, a row that is sent or failed is
skipped, and a lease keeps two attempts from sending the same row at once.

The one window where a message can go out twice: an SMTP server (or a webhook
receiver) accepted it and the worker died before the row was marked sent. The
retry sends it again with the same `Message-ID` (the same `X-Accord-Delivery`
for webhooks), so mail clients and receivers can drop the copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from channels import ChannelError
from channels.email import SmtpSettings, build_email, message_id_for, send_email
from channels.messages import NoticeMessage, Recipient, render, render_failed_delivery, webhook_payload
from channels.webhook import post_webhook
from db import deliveries as rows
from db.deliveries import Person, ProjectContext
from db.reminder_settings import DEFAULT_CALENDAR, current_calendar, policy_book_for
from domain.records import DELIVER_NOTICE, LOAD_REMINDER_SETUP, REPORT_FAILED_DELIVERY
from domain.reminders import Dispatch, FailedDispatch, RecipientRole, ReminderSetup, SetupRequest
from observability.metrics import NOTICE_RETRIES, NOTICES_FAILED, NOTICES_SENT


@dataclass(frozen=True)
class ReminderConfig:
    """What the worker knows about reminders, from settings."""

    public_url: str = "http://127.0.0.1:8000"
    smtp: SmtpSettings | None = None
    """None: no email channel (inbox and webhooks only)."""
    allow_private_webhooks: bool = False
    leadership_department: str = "leadership-office"
    hour: int = 9
    until_hour: int = 18
    give_up_after: timedelta = timedelta(hours=72)
    attempt_timeout: timedelta = timedelta(minutes=2)
    first_retry: timedelta = timedelta(seconds=30)
    calendar_name: str = DEFAULT_CALENDAR

    @property
    def lease(self) -> timedelta:
        """Longer than one attempt may run (its start-to-close timeout): a lease never expires
        under an attempt that is still sending, and one that died frees its rows soon after."""
        return self.attempt_timeout * 1.5


@dataclass(frozen=True)
class _Target:
    delivery_id: str
    channel: str
    person: Person | None = None
    webhook: rows.Webhook | None = None

    @property
    def recipient_id(self) -> str | None:
        return self.person.user_id if self.person else self.webhook.id if self.webhook else None

    @property
    def recipient_name(self) -> str | None:
        return self.person.name if self.person else self.webhook.url if self.webhook else None


class ReminderActivities:
    def __init__(self, pool: asyncpg.Pool, config: ReminderConfig) -> None:
        self._pool = pool
        self._config = config

    def all(self) -> list:
        return [self.load_reminder_setup, self.deliver_notice, self.report_failed_delivery]

    @activity.defn(name=LOAD_REMINDER_SETUP)
    async def load_reminder_setup(self, request: SetupRequest) -> ReminderSetup:
        async with self._pool.acquire() as conn:
            return ReminderSetup(policies=await policy_book_for(conn, request.project_id, request.cooperation_id),
                                 calendar=await current_calendar(conn, self._config.calendar_name),
                                 hour=self._config.hour, until_hour=self._config.until_hour,
                                 give_up_after=self._config.give_up_after,
                                 attempt_timeout=self._config.attempt_timeout, first_retry=self._config.first_retry)

    @activity.defn(name=DELIVER_NOTICE)
    async def deliver_notice(self, dispatch: Dispatch) -> int:
        """Deliver on every channel still pending; returns how many went out in this attempt.

        A channel that is down makes the attempt fail (Temporal retries it with backoff);
        a permanent refusal (bad address, unsafe URL) fails that delivery at once and is
        reported to the liaison officer.
        """
        notice = dispatch.notice
        async with self._pool.acquire() as conn:
            ctx = await rows.project_context(conn, notice.project_id, notice.milestone_id)
            if ctx is None:
                # The cooperation starts a project's workflow just before committing the project's
                # row, so a notice due at once can arrive first: look again shortly.
                raise ApplicationError(f"project {notice.project_id} is not in the read model yet",
                                       type="ProjectNotRecorded", next_retry_delay=timedelta(seconds=2))
            targets = await self._targets(conn, ctx, dispatch)
        sent, retry = 0, []
        for target in targets:
            outcome = await self._deliver_one(ctx, dispatch, target)
            if outcome is True:
                sent += 1
                NOTICES_SENT.labels(target.channel).inc()
            elif isinstance(outcome, str):
                NOTICE_RETRIES.labels(target.channel).inc()
                retry.append(f"{target.channel} to {target.recipient_name}: {outcome}")
        if sent:  # the activity logger adds the workflow id and run id (JSON logs: fields)
            activity.logger.info("notice %s: %d of %d deliveries sent", notice.key, sent, len(targets))
        if retry:
            raise ApplicationError(f"{len(retry)} of {len(targets)} deliveries will be retried: " + "; ".join(retry),
                                   type="ChannelDown")
        return sent

    @activity.defn(name=REPORT_FAILED_DELIVERY)
    async def report_failed_delivery(self, failed: FailedDispatch) -> int:
        """The channels stayed down past the retry window: fail what is pending, tell the officer."""
        notice = failed.dispatch.notice
        async with self._pool.acquire() as conn:
            ctx = await rows.project_context(conn, notice.project_id, notice.milestone_id)
            pending = await rows.pending_of(conn, notice.key)
            if not pending:
                # Nothing was ever recorded (the project vanished, say): record that the notice was lost.
                target = _Target(rows.delivery_id(notice.key, "-", "none"), "none")
                await self._open(conn, dispatch=failed.dispatch, target=target)
                pending = await rows.pending_of(conn, notice.key)
            for row in pending:
                await self._fail(conn, ctx, failed.dispatch, row["delivery_id"], row["channel"],
                                 row["recipient_name"] or "-", f"gave up after retrying: {failed.reason}")
        return len(pending)

    # ------------------------------------------------------------ planning

    async def _targets(self, conn: asyncpg.Connection, ctx: ProjectContext, dispatch: Dispatch) -> list[_Target]:
        notice = dispatch.notice
        people = await rows.recipients(conn, ctx, notice.recipient, self._config.leadership_department)
        targets = []
        for person in people:
            targets.append(_Target(rows.delivery_id(notice.key, person.user_id, "inbox"), "inbox", person=person))
            if person.email and self._config.smtp is not None:
                targets.append(_Target(rows.delivery_id(notice.key, person.user_id, "email"), "email", person=person))
        if not people:
            targets.append(_Target(rows.delivery_id(notice.key, "-", "none"), "none"))
        # The department's chat robots see the routine notices; escalations go to people only.
        if notice.recipient not in (RecipientRole.department_leader, RecipientRole.leadership_office):
            for hook in await rows.webhooks_of(conn, ctx.department):
                targets.append(_Target(rows.delivery_id(notice.key, hook.id, "webhook"), "webhook", webhook=hook))
        return targets

    async def _open(self, conn: asyncpg.Connection, *, dispatch: Dispatch, target: _Target) -> str:
        return await rows.open_delivery(
            conn, delivery_id=target.delivery_id, notice=dispatch.notice, recipient_id=target.recipient_id,
            recipient_name=target.recipient_name, channel=target.channel, dispatched_at=dispatch.dispatched_at)

    # ------------------------------------------------------------ sending

    async def _deliver_one(self, ctx: ProjectContext, dispatch: Dispatch, target: _Target) -> bool | str | None:
        """True: sent now. A string: a transient failure to retry. None: nothing to do (done or failed)."""
        async with self._pool.acquire() as conn:
            if await self._open(conn, dispatch=dispatch, target=target) != "pending":
                return None
            if target.channel == "none":
                role = dispatch.notice.recipient.value
                await self._fail(conn, ctx, dispatch, target.delivery_id, "none", role,
                                 f"nobody holds the role {role} for department {ctx.department}")
                return None
            if not await rows.claim(conn, target.delivery_id, self._config.lease):
                return "another attempt holds the lease"
            if target.channel == "inbox":
                assert target.person is not None
                async with conn.transaction():
                    text = render(self._message(ctx, dispatch, target))
                    await rows.add_inbox_message(
                        conn, message_id=target.delivery_id, user_id=target.person.user_id, kind="notice",
                        project_id=ctx.project_id, notice_key=dispatch.notice.key, subject=text.subject,
                        body=text.body)
                    await rows.finish(conn, target.delivery_id, cooperation_id=ctx.cooperation_id, sent=True)
                return True
        try:
            message_id = await self._send_outside(ctx, dispatch, target)
        except ChannelError as error:
            async with self._pool.acquire() as conn:
                if error.permanent:
                    await self._fail(conn, ctx, dispatch, target.delivery_id, target.channel,
                                     target.recipient_name or "-", str(error))
                    return None
                await rows.release(conn, target.delivery_id, str(error))
            return str(error)
        async with self._pool.acquire() as conn, conn.transaction():
            await rows.finish(conn, target.delivery_id, cooperation_id=ctx.cooperation_id, sent=True,
                              message_id=message_id)
        return True

    async def _send_outside(self, ctx: ProjectContext, dispatch: Dispatch, target: _Target) -> str | None:
        """Email or webhook; returns the Message-ID of an email."""
        if target.channel == "email":
            smtp = self._config.smtp
            assert smtp is not None and target.person is not None
            email = build_email(self._message(ctx, dispatch, target), smtp, datetime.now(UTC))
            await send_email(email, smtp)
            return message_id_for(target.delivery_id, smtp.message_id_domain)
        assert target.webhook is not None
        await post_webhook(target.webhook.url, target.webhook.secret,
                           webhook_payload(self._message(ctx, dispatch, target)), target.delivery_id,
                           allow_private=self._config.allow_private_webhooks)
        return None

    def _message(self, ctx: ProjectContext, dispatch: Dispatch, target: _Target) -> NoticeMessage:
        person = target.person
        recipient = (Recipient(user_id=person.user_id, name=person.name, email=person.email,
                               language="en" if person.language == "en" else "zh")
                     if person else Recipient(user_id=target.recipient_id or "-", name=ctx.department))
        return NoticeMessage(delivery_id=target.delivery_id, notice=dispatch.notice, project_title=ctx.title,
                             recipient=recipient, link=f"{self._config.public_url}/projects/{ctx.project_id}")

    # ------------------------------------------------------------ failure

    async def _fail(self, conn: asyncpg.Connection, ctx: ProjectContext | None, dispatch: Dispatch,
                    delivery_id: str, channel: str, recipient_name: str, reason: str) -> None:
        """Mark the delivery failed and put the failure in the liaison officer's inbox, in one transaction.

        Never dropped silently: with no officer to tell, the department's leaders are told.
        """
        notice = dispatch.notice
        async with conn.transaction():
            if not await rows.finish(conn, delivery_id, cooperation_id=ctx.cooperation_id if ctx else None,
                                     sent=False, error=reason):
                return
            if ctx is not None:
                officers = await rows.people_named(conn, ctx.officer) or await rows.leaders_of(conn, ctx.department)
                for officer in officers:
                    text = render_failed_delivery(notice, ctx.title, channel, recipient_name, reason,
                                                  "en" if officer.language == "en" else "zh")
                    await rows.add_inbox_message(
                        conn, message_id=f"{delivery_id}/failed/{officer.user_id}", user_id=officer.user_id,
                        kind="delivery_failed", project_id=ctx.project_id, notice_key=notice.key,
                        subject=text.subject, body=text.body)
        NOTICES_FAILED.labels(channel).inc()  # committed
