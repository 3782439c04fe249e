"""A worker process killed (SIGKILL) in the middle of sending a reminder email.

The mail server here takes the message and then holds its answer, so the worker is
inside `send_email` when it dies: the crash window. A second worker takes over once
the attempt times out. Expected: still one delivery record per notice, recipient and
channel, marked sent once; the mail server holds two copies with the same Message-ID
(the documented resend, which mail clients collapse); the inbox message exists once.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from temporalio.testing import WorkflowEnvironment

from activities.reminders import ReminderConfig
from channels.email import SmtpSettings, message_id_for
from db.users import create_user
from domain.audit import OFFICE_TZ
from domain.cooperation import CreateProject
from domain.project import MilestoneSpec
from runtime.mail_sink import free_port
from runtime.temporal import build_worker
from tests.conftest import ALWAYS_OPEN, new_id
from tests.test_workflow_lifecycle import eventually, in_delivery, open_cooperation

QUEUE = "accord-crash"
ATTEMPT = timedelta(seconds=6)


class StallingServer:
    """Accepts mail but answers DATA only once released: the sender waits inside its send."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.release = threading.Event()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        self.received.append(envelope.original_content)  # type: ignore[attr-defined]
        while not self.release.is_set():
            await asyncio.sleep(0.05)
        return "250 OK"


@pytest.fixture
def stalling_smtp() -> Iterator[tuple[StallingServer, int]]:
    handler, port = StallingServer(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    handler.release.set()
    controller.stop()


def worker_process(dev_env: WorkflowEnvironment, pg_url: str, smtp_port: int, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ACCORD_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "ACCORD_DATABASE_URL": pg_url, "ACCORD_TASK_QUEUE": QUEUE, "ACCORD_DATA_DIR": str(data_dir),
        "ACCORD_AUDIT_CHECKPOINT_KEY": "crash-test-key", "ACCORD_SMTP_HOST": "127.0.0.1",
        "ACCORD_SMTP_PORT": str(smtp_port), "ACCORD_REMINDER_HOUR": "0", "ACCORD_REMINDER_UNTIL_HOUR": "24",
        "ACCORD_REMINDER_CALENDAR": ALWAYS_OPEN, "ACCORD_DELIVERY_ATTEMPT_SECONDS": str(ATTEMPT.total_seconds()),
        "ACCORD_DELIVERY_FIRST_RETRY_SECONDS": "1",
    }


async def test_a_worker_killed_while_sending_leaves_one_delivery_record(
        dev_env: WorkflowEnvironment, pg_url: str, pool: asyncpg.Pool,
        stalling_smtp: tuple[StallingServer, int]) -> None:
    server, port = stalling_smtp
    suffix = new_id()
    officer, department, address = f"Officer {suffix}", f"Bureau {suffix}", f"o-{suffix}@gov.example"
    async with pool.acquire() as conn:
        user = await create_user(conn, f"o-{suffix}", officer, "liaison_officer", department)
        await conn.execute("UPDATE users SET email = $2 WHERE id = $1", user.id, address)

    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "accord"), "worker",
        env=worker_process(dev_env, pg_url, port, Path(tempfile.mkdtemp(prefix="accord-crash-"))),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        client = dev_env.client
        coop, _ = await open_cooperation(client, pool, task_queue=QUEUE)
        await in_delivery(coop)
        project_id = coop.pid("crash")
        await coop.act(CreateProject(
            project_id=project_id, agreement_id=coop.inv, title="Crash project", site="Park",
            committed_investment=Decimal("1000000.00"), responsible_department=department,
            responsible_officer=officer,
            milestones=[MilestoneSpec(milestone_id="m1", name="Registration",
                                      due_date=datetime.now(OFFICE_TZ).date())]))

        async def mail_in_flight() -> bool:
            return bool(server.received)
        await eventually(mail_in_flight, timeout=60)
    finally:
        process.send_signal(signal.SIGKILL)  # inside send_email, before the row is marked sent
        await process.wait()
    server.release.set()  # the server did take the message: the window this test is about

    email_row = "SELECT * FROM notice_deliveries WHERE project_id = $1 AND channel = 'email'"
    pending = await pool.fetchrow(email_row, project_id)
    assert pending["status"] == "pending" and pending["attempts"] == 1

    config = ReminderConfig(smtp=SmtpSettings(port=port), hour=0, until_hour=24, calendar_name=ALWAYS_OPEN,
                            attempt_timeout=ATTEMPT, first_retry=timedelta(seconds=1))
    async with build_worker(dev_env.client, pool, QUEUE, reminders=config):
        async def sent() -> asyncpg.Record | None:
            row = await pool.fetchrow(email_row, project_id)
            return row if row["status"] == "sent" else None
        row = await eventually(sent, timeout=60)

    assert row["attempts"] == 2 and row["message_id"] == message_id_for(row["delivery_id"])
    rows = await pool.fetch("SELECT channel, status FROM notice_deliveries WHERE project_id = $1 ORDER BY channel",
                            project_id)
    assert [(r["channel"], r["status"]) for r in rows] == [("email", "sent"), ("inbox", "sent")]
    copies = [email.message_from_bytes(raw, policy=email.policy.default) for raw in server.received]
    assert len(copies) == 2 and {c["Message-ID"] for c in copies} == {row["message_id"]}
    assert await pool.fetchval("SELECT count(*) FROM inbox_messages WHERE user_id = $1", user.id) == 1
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE action = 'notice.delivered' "
                               "AND project_id = $1", project_id) == 2
