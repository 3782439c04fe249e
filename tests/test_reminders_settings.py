"""Settings changes reach running projects: the two races the reminder bench found.

1. A new project's first setup load can run before its own row is committed: it must still
   find its organization's policy (through the cooperation).
2. A settings signal that arrives while a setup is loading must not be lost.

The second test holds the setup load of its own worker at a gate: the load reads the
database, then waits, so it returns the settings as they were before the edit that the
test makes meanwhile.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities.readmodel import ReadModelActivities
from activities.reminders import ReminderActivities
from db.reminder_settings import PolicyScope, save_policy
from db.users import create_user
from domain.audit import OFFICE_TZ
from domain.cooperation import CreateProject
from domain.project import MilestoneSpec
from domain.records import LOAD_REMINDER_SETUP
from domain.reminders import ReminderPolicy, ReminderSetup, SetupRequest
from runtime.mail_sink import MailSink
from runtime.reminders import tell_projects
from runtime.temporal import WORKFLOWS
from tests.conftest import TASK_QUEUE, new_id, session_reminders
from tests.test_workflow_lifecycle import Coop, eventually, in_delivery, open_cooperation

SILENT = ReminderPolicy(policy_id="silent", before_working_days=[], on_due_date=False, overdue_every_days=None,
                        escalation=[])
DUE_ONLY = SILENT.model_copy(update={"on_due_date": True})


async def cooperation_with_silent_lead(client: Client, pool: asyncpg.Pool, task_queue: str = TASK_QUEUE
                                       ) -> tuple[Coop, str, str]:
    """A cooperation in delivery whose lead organization's policy sends nothing, and an officer."""
    coop, _ = await open_cooperation(client, pool, task_queue=task_queue)
    async with pool.acquire() as conn, conn.transaction():
        await save_policy(conn, PolicyScope.organization, coop.lead_id, SILENT, "silent", "tests")
    await in_delivery(coop)
    suffix = new_id()
    officer, department = f"Officer {suffix}", f"Bureau {suffix}"
    async with pool.acquire() as conn:
        await create_user(conn, f"o-{suffix}", officer, "liaison_officer", department)
    return coop, officer, department


def due_today(coop: Coop, name: str, officer: str, department: str) -> CreateProject:
    return CreateProject(
        project_id=coop.pid(name), agreement_id=coop.inv, title=f"Project {name}", site="Park",
        committed_investment=Decimal("1000.00"), responsible_department=department, responsible_officer=officer,
        milestones=[MilestoneSpec(milestone_id="m1", name="Registration", due_date=datetime.now(OFFICE_TZ).date())])


async def deliveries(pool: asyncpg.Pool, project_ids: list[str]) -> int:
    return await pool.fetchval("SELECT count(*) FROM notice_deliveries WHERE project_id = ANY($1)", project_ids)


async def test_new_projects_follow_their_organization_policy_from_the_first_load(
        client: Client, pool: asyncpg.Pool) -> None:
    coop, officer, department = await cooperation_with_silent_lead(client, pool)
    names = [f"p{i}" for i in range(8)]
    for name in names:
        await coop.act(due_today(coop, name, officer, department))
    project_ids = [coop.pid(n) for n in names]
    # Each project has loaded its setup once its workflow has a reminder memory to show.
    for p in project_ids:
        await coop.project_handle(p).query("reminders")
    await asyncio.sleep(1.0)  # time for a wrongly reminded project to deliver
    assert await deliveries(pool, project_ids) == 0

    async with pool.acquire() as conn, conn.transaction():
        await save_policy(conn, PolicyScope.organization, coop.lead_id, DUE_ONLY, "on", "tests")
    await tell_projects(client, project_ids)

    async def all_reminded() -> bool:
        return await deliveries(pool, project_ids) == len(project_ids)
    await eventually(all_reminded, timeout=30)


class GatedSetup:
    """The real setup load, held after reading the database until the test opens the gate."""

    def __init__(self, real: ReminderActivities) -> None:
        self._real = real
        self.armed = False
        self.waiting = asyncio.Event()
        self.gate = asyncio.Event()

    @activity.defn(name=LOAD_REMINDER_SETUP)
    async def load(self, request: SetupRequest) -> ReminderSetup:
        setup = await self._real.load_reminder_setup(request)
        if self.armed:
            self.armed = False
            self.waiting.set()
            await self.gate.wait()
        return setup


async def test_a_settings_signal_during_a_setup_load_is_not_lost(client: Client, pool: asyncpg.Pool,
                                                                 mail_sink: MailSink) -> None:
    queue = f"accord-gated-{new_id()}"
    real = ReminderActivities(pool, session_reminders(mail_sink))
    gated = GatedSetup(real)
    worker = Worker(client, task_queue=queue, workflows=WORKFLOWS,
                    activities=[*ReadModelActivities(pool).all(), gated.load, real.deliver_notice,
                                real.report_failed_delivery])
    async with worker:
        coop, officer, department = await cooperation_with_silent_lead(client, pool, task_queue=queue)
        await coop.act(due_today(coop, "gated", officer, department))
        project_id = coop.pid("gated")
        await coop.project_handle(project_id).query("reminders")

        gated.armed = True
        await tell_projects(client, [project_id])  # reload 1 starts, reads SILENT, waits at the gate
        await asyncio.wait_for(gated.waiting.wait(), timeout=15)
        async with pool.acquire() as conn, conn.transaction():
            await save_policy(conn, PolicyScope.organization, coop.lead_id, DUE_ONLY, "on", "tests")
        await tell_projects(client, [project_id])  # arrives while reload 1 is running
        await asyncio.sleep(0.5)
        gated.gate.set()  # reload 1 returns the old, silent setup

        async def reminded() -> bool:
            return await deliveries(pool, [project_id]) > 0
        await eventually(reminded, timeout=30)  # reload 2 happened and found the due notice
