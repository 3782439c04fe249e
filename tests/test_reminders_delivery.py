"""Reminder delivery end to end on the dev server: inbox, email (real aiosmtpd) and a signed webhook
(a real HTTP receiver), then the guarantees: one record per notice, recipient and channel whatever
runs twice, the crash window that resends with the same Message-ID, and failures that are reported.

The session worker uses an always-open calendar (tests/conftest.py), so a milestone due today is
reminded as soon as its project starts.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import icalendar
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.reminders import ReminderActivities, ReminderConfig
from channels.email import SmtpSettings, build_email, message_id_for, send_email
from channels.messages import NoticeMessage, Recipient
from db import deliveries as rows
from db.users import create_user
from domain.audit import OFFICE_TZ
from domain.cooperation import CreateProject
from domain.project import MilestoneSpec
from domain.reminders import Dispatch, Notice
from runtime.mail_sink import MailSink
from tests.conftest import new_id, session_reminders
from tests.test_channels import SECRET, http_receiver
from tests.test_workflow_lifecycle import Coop, eventually, in_delivery, open_cooperation


async def project_due_today(client: Client, pool: asyncpg.Pool, *, email_language: str = "en",
                            webhook_url: str | None = None) -> tuple[Coop, str, str, str]:
    """A project with one milestone due today, its officer (with an email address) and department."""
    suffix = new_id()
    officer, department = f"Officer {suffix}", f"Bureau {suffix}"
    async with pool.acquire() as conn:
        user = await create_user(conn, f"o-{suffix}", officer, "liaison_officer", department)
        await conn.execute("UPDATE users SET email = $2, language = $3 WHERE id = $1",
                           user.id, f"o-{suffix}@gov.example", email_language)
        if webhook_url:
            await conn.execute(
                "INSERT INTO webhooks (id, department, url, secret, created_by) VALUES ($1, $2, $3, $4, 'tests')",
                f"hook-{suffix}", department, webhook_url, SECRET)
    coop, _ = await open_cooperation(client, pool)
    await in_delivery(coop)
    project_id = coop.pid("due")
    today = datetime.now(OFFICE_TZ).date()
    await coop.act(CreateProject(
        project_id=project_id, agreement_id=coop.inv, title="新能源电池项目 Battery plant", site="High-tech park",
        committed_investment=Decimal("500000000.00"), responsible_department=department,
        responsible_officer=officer,
        milestones=[MilestoneSpec(milestone_id="reg", name="公司注册 Company registration", due_date=today)]))
    return coop, project_id, user.id, department


async def delivered(pool: asyncpg.Pool, project_id: str, count: int) -> list[asyncpg.Record]:
    async def probe() -> list[asyncpg.Record] | None:
        found = await pool.fetch(
            "SELECT * FROM notice_deliveries WHERE project_id = $1 AND status <> 'pending' ORDER BY channel",
            project_id)
        return found if len(found) >= count else None
    return await eventually(probe, timeout=30)


def mails_for(sink: MailSink, address: str) -> list[email.message.EmailMessage]:
    parsed = [email.message_from_bytes(raw, policy=email.policy.default) for raw in list(sink.messages)]
    return [m for m in parsed if address in str(m["To"])]


async def test_a_due_notice_reaches_inbox_email_and_webhook(client: Client, pool: asyncpg.Pool,
                                                            mail_sink: MailSink) -> None:
    async with http_receiver() as receiver:
        coop, project_id, user_id, _ = await project_due_today(client, pool, webhook_url=f"{receiver.base}/hook")
        records = await delivered(pool, project_id, 3)
    assert [(r["channel"], r["status"]) for r in records] == [("email", "sent"), ("inbox", "sent"),
                                                               ("webhook", "sent")]
    assert {r["notice_key"] for r in records} == {f"{project_id}/reg/v0/due"}
    by_channel = {r["channel"]: r for r in records}

    # Email: English for this recipient, Message-ID derived from the delivery id, the milestone as .ics.
    address = (await pool.fetchval("SELECT email FROM users WHERE id = $1", user_id))
    [mail] = mails_for(mail_sink, address)
    assert mail["Message-ID"] == message_id_for(by_channel["email"]["delivery_id"])
    assert by_channel["email"]["message_id"] == mail["Message-ID"]
    assert "due" in mail["Subject"].lower() and "公司注册" in mail["Subject"] + mail.get_body().get_content()
    [attachment] = [part for part in mail.iter_attachments() if part.get_content_type() == "text/calendar"]
    [event] = icalendar.Calendar.from_ical(attachment.get_payload(decode=True)).walk("VEVENT")
    assert str(event["UID"]) == f"{project_id}.reg@accord"
    assert event.decoded("DTSTART") == datetime.now(OFFICE_TZ).date()

    # Inbox: one message for the officer, with the provenance in its body.
    inbox = await pool.fetch("SELECT * FROM inbox_messages WHERE user_id = $1", user_id)
    assert [m["id"] for m in inbox] == [by_channel["inbox"]["delivery_id"]]
    assert "v1" in inbox[0]["body"] or "version" in inbox[0]["body"].lower()

    # Webhook: signed, with a delivery id that stays the same on a retry.
    [request] = receiver.requests
    assert request.signature_ok
    assert request.headers["x-accord-delivery"] == by_channel["webhook"]["delivery_id"]
    assert json.loads(request.body)["kind"] == "due"

    # Every delivery is an audit row.
    audited = await pool.fetch(
        "SELECT entity_id, action FROM audit_events WHERE project_id = $1 AND entity_type = 'notice_delivery'",
        project_id)
    assert sorted(a["entity_id"] for a in audited) == sorted(r["delivery_id"] for r in records)
    assert {a["action"] for a in audited} == {"notice.delivered"}


def dispatch_of(record: asyncpg.Record) -> Dispatch:
    return Dispatch(notice=Notice.model_validate(record["notice"]), dispatched_at=record["dispatched_at"])


async def test_running_a_delivery_again_or_twice_at_once_sends_nothing_more(
        client: Client, pool: asyncpg.Pool, mail_sink: MailSink) -> None:
    coop, project_id, user_id, _ = await project_due_today(client, pool)
    records = await delivered(pool, project_id, 2)
    address = await pool.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    activities = ReminderActivities(pool, session_reminders(mail_sink))
    env = ActivityEnvironment()

    # A retry after success (a duplicate wake-up, a lost activity result) and two racing attempts.
    again = await env.run(activities.deliver_notice, dispatch_of(records[0]))
    racing = await asyncio.gather(*(env.run(activities.deliver_notice, dispatch_of(records[0])) for _ in range(3)))
    assert again == 0 and racing == [0, 0, 0]
    assert await pool.fetchval("SELECT count(*) FROM notice_deliveries WHERE project_id = $1", project_id) == 2
    assert len(mails_for(mail_sink, address)) == 1
    assert await pool.fetchval("SELECT count(*) FROM inbox_messages WHERE user_id = $1", user_id) == 1


async def test_the_crash_window_resends_with_the_same_message_id(client: Client, pool: asyncpg.Pool,
                                                                 mail_sink: MailSink) -> None:
    """The one place delivery is at-least-once: the server took the mail, the worker died before
    recording it. The retry sends a copy with the same Message-ID (which mail clients collapse)."""
    coop, project_id, user_id, _ = await project_due_today(client, pool)
    records = await delivered(pool, project_id, 2)
    address = await pool.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    config = session_reminders(mail_sink)
    assert config.smtp is not None
    # Replay the first attempt of a fresh notice up to the crash: rows opened, lease taken, mail sent.
    notice = Notice.model_validate({**records[0]["notice"], "key": f"{project_id}/reg/v0/overdue_7",
                                    "kind": "overdue_7", "rule": "overdue"})
    dispatch = Dispatch(notice=notice, dispatched_at=datetime.now(UTC))
    delivery_id = rows.delivery_id(notice.key, user_id, "email")
    async with pool.acquire() as conn:
        await rows.open_delivery(conn, delivery_id=delivery_id, notice=notice, recipient_id=user_id,
                                 recipient_name="officer", channel="email", dispatched_at=dispatch.dispatched_at)
        assert await rows.claim(conn, delivery_id, timedelta(minutes=3))
    message = NoticeMessage(delivery_id=delivery_id, notice=notice, project_title="crash",
                            recipient=Recipient(user_id=user_id, name="officer", email=address, language="en"))
    await send_email(build_email(message, config.smtp, datetime.now(UTC)), config.smtp)
    # ... the worker dies here. While its lease runs, a retry does not send.
    env = ActivityEnvironment()
    activities = ReminderActivities(pool, config)
    try:
        await env.run(activities.deliver_notice, dispatch)
        raise AssertionError("a retry inside the lease must wait")
    except Exception as error:  # noqa: BLE001 - the activity asks Temporal to retry
        assert "lease" in str(error)
    # The lease expires (the attempt's timeout); the retry sends again and records it.
    await pool.execute("UPDATE notice_deliveries SET claimed_until = now() - interval '1 second' "
                       "WHERE delivery_id = $1", delivery_id)
    assert await env.run(activities.deliver_notice, dispatch) == 1  # the email again (the inbox went first time)
    copies = [m for m in mails_for(mail_sink, address) if "overdue" in str(m["X-Accord-Notice-Key"])]
    assert len(copies) == 2 and copies[0]["Message-ID"] == copies[1]["Message-ID"] == message_id_for(delivery_id)
    record = await pool.fetchrow("SELECT status, attempts FROM notice_deliveries WHERE delivery_id = $1",
                                 delivery_id)
    assert (record["status"], record["attempts"]) == ("sent", 2)


async def test_an_unsafe_webhook_fails_at_send_time_and_the_officer_is_told(
        client: Client, pool: asyncpg.Pool, mail_sink: MailSink) -> None:
    # The session worker allows private addresses (its test receivers are local); this one does not.
    coop, project_id, user_id, department = await project_due_today(
        client, pool, webhook_url="http://169.254.169.254/latest/meta-data")
    records = await delivered(pool, project_id, 2)
    strict = ReminderActivities(pool, ReminderConfig(smtp=SmtpSettings(port=mail_sink.port),
                                                     calendar_name=session_reminders(mail_sink).calendar_name))
    notice = Notice.model_validate({**records[0]["notice"], "key": f"{project_id}/reg/v0/overdue_7",
                                    "kind": "overdue_7", "rule": "overdue"})
    sent = await ActivityEnvironment().run(strict.deliver_notice,
                                           Dispatch(notice=notice, dispatched_at=datetime.now(UTC)))
    assert sent == 2  # inbox and email; the webhook is refused, not retried
    hook = await pool.fetchrow("SELECT status, last_error FROM notice_deliveries WHERE notice_key = $1 "
                               "AND channel = 'webhook'", notice.key)
    assert hook["status"] == "failed" and "169.254.169.254" in hook["last_error"]
    told = await pool.fetch("SELECT * FROM inbox_messages WHERE user_id = $1 AND kind = 'delivery_failed' "
                            "AND notice_key = $2", user_id, notice.key)
    assert len(told) == 1 and "169.254.169.254" in told[0]["body"]
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE action = 'notice.delivery_failed' "
                               "AND entity_id LIKE $1", f"{notice.key}/%") == 1
