"""A mail server that is down, on the time-skipping server: retried with backoff, delivered once
after recovery, and reported to the liaison officer's inbox when it stays down past the window.

The worker here uses the always-open calendar (every day a working day, office open around the
clock), so the notices fall on known instants: 1 working day before a due date is the day before,
at 00:00 office time.
"""

from __future__ import annotations

import email
import email.policy
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.reminders import ReminderConfig
from channels.email import SmtpSettings
from db.users import create_user
from domain.audit import OFFICE_TZ
from domain.cooperation import CreateProject
from domain.project import CompleteMilestone, MilestoneSpec
from runtime.mail_sink import MailSink, free_port
from tests.conftest import ALWAYS_OPEN, new_id
from tests.test_workflow_lifecycle import in_delivery, open_cooperation
from tests.time_skipping import skip_to, time_skipping_worker

QUEUE = "accord-reminders-outage"
GIVE_UP_AFTER = timedelta(days=3)


@pytest_asyncio.fixture(loop_scope="session")
async def outage(pool: asyncpg.Pool) -> AsyncIterator[tuple[WorkflowEnvironment, int]]:
    """A time-skipping server and a worker whose SMTP server is not running yet."""
    port = free_port()
    config = ReminderConfig(smtp=SmtpSettings(port=port, timeout=5), hour=0, until_hour=24,
                            give_up_after=GIVE_UP_AFTER, calendar_name=ALWAYS_OPEN)
    async with time_skipping_worker(pool, QUEUE, config) as env:
        yield env, port


async def email_rows(pool: asyncpg.Pool, project_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT notice ->> 'kind' AS kind, status, attempts, message_id, last_error FROM notice_deliveries "
        "WHERE project_id = $1 AND channel = 'email' ORDER BY planned_for", project_id)


async def test_smtp_down_for_a_day_then_up_delivers_each_notice_once(
        outage: tuple[WorkflowEnvironment, int], pool: asyncpg.Pool) -> None:
    env, port = outage
    client: Client = env.client
    suffix = new_id()
    officer, department = f"Officer {suffix}", f"Bureau {suffix}"
    address = f"o-{suffix}@gov.example"
    async with pool.acquire() as conn:
        user = await create_user(conn, f"o-{suffix}", officer, "liaison_officer", department)
        await conn.execute("UPDATE users SET email = $2 WHERE id = $1", user.id, address)

    start = (await env.get_current_time()).astimezone(OFFICE_TZ)
    day = start.date()
    midnight = lambda n: datetime.combine(day + timedelta(days=n), time(0), tzinfo=OFFICE_TZ)  # noqa: E731
    coop, _ = await open_cooperation(client, pool, task_queue=QUEUE)
    await in_delivery(coop)
    project_id = coop.pid("outage")
    await coop.act(CreateProject(
        project_id=project_id, agreement_id=coop.inv, title="Outage project", site="Park",
        committed_investment=Decimal("1000000.00"), responsible_department=department, responsible_officer=officer,
        milestones=[MilestoneSpec(milestone_id="m1", name="Site handed over", due_date=day + timedelta(days=3)),
                    MilestoneSpec(milestone_id="m2", name="Construction start", due_date=day + timedelta(days=20))]))

    # Day 2, 00:00: m1's before_1 is due and the mail server is down all day; at day 3, 00:00 m1's
    # due notice is due as well. Inbox copies go out on time; email keeps failing.
    await skip_to(env, midnight(3) + timedelta(hours=8))
    down = await email_rows(pool, project_id)
    assert [(r["kind"], r["status"]) for r in down] == [("before_1", "pending"), ("due", "pending")]
    assert all(r["attempts"] > 3 and r["last_error"] for r in down)
    inbox = await pool.fetch("SELECT notice ->> 'kind' AS kind, status FROM notice_deliveries "
                             "WHERE project_id = $1 AND channel = 'inbox' ORDER BY planned_for", project_id)
    assert [(r["kind"], r["status"]) for r in inbox] == [("before_1", "sent"), ("due", "sent")]

    # The server comes back; within the hour (the longest backoff) each mail arrives, once.
    with MailSink(Path(tempfile.mkdtemp(prefix="accord-outage-mail-")), port=port) as sink:
        await skip_to(env, midnight(3) + timedelta(hours=10))
        up = await email_rows(pool, project_id)
        assert [(r["kind"], r["status"]) for r in up] == [("before_1", "sent"), ("due", "sent")]
        mails = [email.message_from_bytes(raw, policy=email.policy.default) for raw in sink.messages]
        assert sorted(m["Message-ID"] for m in mails) == sorted(r["message_id"] for r in up)
        assert all(address in str(m["To"]) for m in mails)
    await coop.act_project(project_id, CompleteMilestone(milestone_id="m1", completed_on=day + timedelta(days=3),
                                                         evidence="handover record"))

    # Down again, for longer than the retry window: m2's before_7 (day 13) fails for good and the
    # officer finds the failure in the inbox.
    await skip_to(env, midnight(13) + GIVE_UP_AFTER + timedelta(hours=2))
    failed = [r for r in await email_rows(pool, project_id) if r["kind"] == "before_7"]
    assert [(r["status"]) for r in failed] == ["failed"]
    told = await pool.fetch("SELECT notice_key, subject, body FROM inbox_messages "
                            "WHERE user_id = $1 AND kind = 'delivery_failed'", user.id)
    assert [t["notice_key"] for t in told] == [f"{project_id}/m2/v0/before_7"]
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_events WHERE action = 'notice.delivery_failed' AND project_id = $1",
        project_id) == 1
