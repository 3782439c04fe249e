"""Two years of one project on the time-skipping server: exactly the notices owed, when owed.

The project's workflow sleeps on durable timers; the test skips the server's clock
from one staff action to the next (a Spring Festival, a suspension, a moved due
date, completions) and then compares the delivery records with a list written
out by hand from the policy and the calendar below, not computed by the code
under test.

Calendar data for 2027 is entered here as an office would enter it when the State
Council publishes it (the `chinesecalendar` package stops at 2026). The dates are
illustrative: Spring Festival 6-14 February, Saturday 20 February an adjusted
working day. 2028 has no data, so it counts Monday to Friday.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.reminders import ReminderConfig
from db.reminder_settings import PolicyScope, current_calendar, save_calendar, save_policy
from db.users import create_user
from domain.audit import OFFICE_TZ
from domain.cooperation import CreateProject
from domain.project import CompleteMilestone, MilestoneSpec, MoveMilestone, ResumeProject, SuspendProject
from domain.reminders import EscalationStep, RecipientRole, ReminderPolicy
from tests.conftest import new_id
from tests.test_workflow_lifecycle import in_delivery, open_cooperation
from tests.time_skipping import skip_to, time_skipping_worker

QUEUE = "accord-reminders-timeline"

SPRING_FESTIVAL_2027 = {date(2027, 2, 6) + timedelta(days=i) for i in range(9)}  # Sat 6 .. Sun 14 Feb
ADJUSTED_WORKDAY_2027 = date(2027, 2, 20)  # a Saturday
NEW_YEAR_2027 = {date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 3)}

POLICY = ReminderPolicy(
    policy_id="timeline", before_working_days=[3], on_due_date=True, overdue_every_days=14,
    escalation=[EscalationStep(after_working_days=3, recipient=RecipientRole.department_leader)],
    recipient=RecipientRole.liaison_officer,
)


def local(y: int, m: int, d: int, hour: int = 9) -> datetime:
    return datetime(y, m, d, hour, tzinfo=OFFICE_TZ)


@pytest_asyncio.fixture(loop_scope="session")
async def skipping(pool: asyncpg.Pool) -> AsyncIterator[tuple[WorkflowEnvironment, Client]]:
    async with time_skipping_worker(pool, QUEUE, ReminderConfig()) as env:
        yield env, env.client


async def enter_2027_holidays(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        current = await current_calendar(conn)
        if 2027 in current.covered_years:
            return
        await save_calendar(conn, current.with_year(2027, NEW_YEAR_2027 | SPRING_FESTIVAL_2027,
                                                    [ADJUSTED_WORKDAY_2027]), "2027 (test data)", "tests")


async def inbox_deliveries(pool: asyncpg.Pool, project_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        """
        SELECT milestone_id, notice ->> 'kind' AS kind, (notice ->> 'due_version')::int AS due_version,
               recipient_role, recipient_name, status, planned_for, scheduled_for, dispatched_at, notice
        FROM notice_deliveries WHERE project_id = $1 AND channel = 'inbox'
        ORDER BY planned_for, milestone_id, kind
        """, project_id)


async def test_two_years_of_reminders(skipping: tuple[WorkflowEnvironment, Client], pool: asyncpg.Pool) -> None:
    env, client = skipping
    await enter_2027_holidays(pool)
    suffix = new_id()
    officer, department = f"Officer {suffix}", f"Park committee {suffix}"
    async with pool.acquire() as conn:
        await create_user(conn, f"officer-{suffix}", officer, "liaison_officer", department)
        await create_user(conn, f"leader-{suffix}", f"Director {suffix}", "leader", department)

    coop, _ = await open_cooperation(client, pool, task_queue=QUEUE)
    await in_delivery(coop)
    project_id = coop.pid("timeline")
    async with pool.acquire() as conn, conn.transaction():
        await save_policy(conn, PolicyScope.project, project_id, POLICY, "test policy", "tests")
    milestones = [MilestoneSpec(milestone_id=m, name=f"Milestone {m}", due_date=due)
                  for m, due in (("a", date(2027, 2, 17)), ("b", date(2027, 3, 10)), ("c", date(2028, 6, 30)))]
    await coop.act(CreateProject(
        project_id=project_id, agreement_id=coop.inv, title="Timeline project", site="West park",
        committed_investment=Decimal("100000000.00"), responsible_department=department,
        responsible_officer=officer, milestones=milestones))

    async def act(command: object) -> None:
        await coop.act_project(project_id, command)  # type: ignore[arg-type]

    await skip_to(env, local(2027, 2, 22, 10))
    await act(CompleteMilestone(milestone_id="a", completed_on=date(2027, 2, 22), evidence="licence"))
    await skip_to(env, local(2027, 3, 1, 10))
    await act(SuspendProject(reason="land dispute"))
    await skip_to(env, local(2027, 3, 15, 10))
    await act(ResumeProject(comment="dispute settled"))
    await skip_to(env, local(2027, 3, 16, 10))
    await act(MoveMilestone(milestone_id="b", new_due_date=date(2027, 6, 30), reason="land handed over late"))
    await skip_to(env, local(2027, 7, 1, 10))
    await act(CompleteMilestone(milestone_id="b", completed_on=date(2027, 7, 1), evidence="permit"))
    await skip_to(env, local(2028, 8, 1, 10))
    state = await coop.project_state(project_id)
    await act(CompleteMilestone(milestone_id="c", completed_on=date(2028, 8, 1), evidence="acceptance"))
    await skip_to(env, local(2028, 10, 2, 10))

    rows = await inbox_deliveries(pool, project_id)
    got = [(r["milestone_id"], r["kind"], r["due_version"], r["recipient_role"],
            r["planned_for"].astimezone(OFFICE_TZ)) for r in rows]
    officer_role, leader_role = "liaison_officer", "department_leader"
    expected = [
        # A: 3 working days before 17 Feb skips the whole Spring Festival, back to Friday 5 Feb.
        ("a", "before_3", 0, officer_role, local(2027, 2, 5)),
        ("a", "due", 0, officer_role, local(2027, 2, 17)),
        # 3 working days after 17 Feb: Thu 18, Fri 19, and the adjusted working Saturday 20 Feb.
        ("a", "escalation_department_leader", 0, leader_role, local(2027, 2, 20)),
        # B: before_3 (5 Mar) and due (10 Mar) fell in the suspension: one catch-up at resumption
        # (planned as the last one it replaces), with the escalation due an hour before resumption.
        ("b", "catch_up", 0, officer_role, local(2027, 3, 10)),
        ("b", "escalation_department_leader", 0, leader_role, local(2027, 3, 15)),
        # B moved to 30 June: the new due-date version starts over.
        ("b", "before_3", 1, officer_role, local(2027, 6, 25)),
        ("b", "due", 1, officer_role, local(2027, 6, 30)),
        # C in 2028: no official data yet, Monday to Friday (and flagged estimated).
        ("c", "before_3", 0, officer_role, local(2028, 6, 27)),
        ("c", "due", 0, officer_role, local(2028, 6, 30)),
        ("c", "escalation_department_leader", 0, leader_role, local(2028, 7, 5)),
        ("c", "overdue_14", 0, officer_role, local(2028, 7, 14)),
        ("c", "overdue_28", 0, officer_role, local(2028, 7, 28)),
    ]
    assert sorted(got, key=lambda g: (g[4], g[0], g[1])) == sorted(expected, key=lambda g: (g[4], g[0], g[1]))
    assert state.status == "active"
    assert (await coop.project_state(project_id)).status == "completed"

    resumed = local(2027, 3, 15, 10)
    for r in rows:
        assert r["status"] == "sent"
        # Timers fire on time in workflow time, and each notice is handed over as soon as it is due.
        assert timedelta(0) <= r["dispatched_at"] - r["scheduled_for"] < timedelta(seconds=5)
        late = r["scheduled_for"] - r["planned_for"]
        if r["milestone_id"] == "b" and r["due_version"] == 0:
            # What fell due during the suspension goes out at the moment of resumption.
            assert resumed <= r["scheduled_for"] < resumed + timedelta(minutes=1)
        else:
            assert timedelta(0) <= late < timedelta(seconds=5)
    catch_up = next(r for r in rows if r["kind"] == "catch_up")
    assert catch_up["notice"]["replaces"] == ["before_3", "due"]
    estimated = {(r["milestone_id"], r["kind"]): r["notice"]["estimated"] for r in rows}
    assert estimated[("c", "due")] is True and estimated[("a", "due")] is False
    provenance = rows[0]["notice"]
    assert provenance["policy_id"] == f"project:{project_id}" and provenance["policy_version"] == 1
    assert provenance["calendar_version"] >= 2  # the version with 2027 entered
