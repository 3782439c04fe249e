"""Reminder questions and commands outside the workflow: previews, what-ifs, settings broadcasts.

A project's preview asks its workflow (state and handled keys), then runs the same
pure schedule function the workflow runs, so "what will be sent" and "what is
sent" cannot drift apart. Calendar previews span every open project, so they read
the read model instead of querying thousands of workflows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError

from db.reminder_settings import current_calendar, policy_book_for
from domain.calendar import WorkingCalendar
from domain.project import ProjectState, ProjectStatus
from domain.records import project_workflow_id
from domain.reminders import (
    Notice,
    NoticeMove,
    PolicyBook,
    ReminderMemory,
    ReminderMilestone,
    ReminderPolicy,
    notices_moved_by_calendar,
    reminder_milestones,
    upcoming_notices,
    what_if_due_date,
)
from workflows.project import ProjectWorkflow

BROADCAST_CONCURRENCY = 32


@dataclass(frozen=True)
class ProjectSchedule:
    state: ProjectState
    memory: ReminderMemory
    policies: PolicyBook
    calendar: WorkingCalendar

    @property
    def handled(self) -> set[str]:
        return set(self.memory.sent_keys) | {d.notice.key for d in self.memory.in_flight}


async def project_schedule(client: Client, conn: asyncpg.Connection, project_id: str,
                           calendar_name: str) -> ProjectSchedule:
    handle = client.get_workflow_handle_for(ProjectWorkflow.run, project_workflow_id(project_id))
    state, memory = await asyncio.gather(handle.query(ProjectWorkflow.state), handle.query(ProjectWorkflow.reminders))
    return ProjectSchedule(state, memory, await policy_book_for(conn, project_id, state.cooperation_id),
                           await current_calendar(conn, calendar_name))


def upcoming(schedule: ProjectSchedule, now: datetime, hour: int, until_hour: int) -> list[Notice]:
    return upcoming_notices(schedule.policies, schedule.calendar, reminder_milestones(schedule.state), now,
                            schedule.handled, hour, until_hour)


def what_if(schedule: ProjectSchedule, milestone_id: str, new_due_date: date, now: datetime, hour: int,
            until_hour: int) -> list[Notice] | None:
    """None if the project has no such milestone."""
    milestone = next((m for m in reminder_milestones(schedule.state) if m.milestone_id == milestone_id), None)
    if milestone is None:
        return None
    return what_if_due_date(schedule.policies, schedule.calendar, milestone, new_due_date, now, schedule.handled,
                            hour, until_hour)


# ---------------------------------------------------------------- across projects


async def open_reminder_milestones(conn: asyncpg.Connection) -> dict[str, list[ReminderMilestone]]:
    """Open milestones of projects that can still be reminded (planned or active), by lead organization,
    from the read model."""
    rows = await conn.fetch(
        """
        SELECT c.lead_organization_id AS organization_id, p.id AS project_id, p.status, p.created_at,
               m.id AS milestone_id, m.name, m.due_date, m.owner, m.moves
        FROM milestones m JOIN projects p ON p.id = m.project_id JOIN cooperations c ON c.id = p.cooperation_id
        WHERE m.status = 'open' AND p.status IN ('planned', 'active')
        ORDER BY p.id, m.position
        """)
    grouped: dict[str, list[ReminderMilestone]] = {}
    for r in rows:
        moves = r["moves"] or []
        grouped.setdefault(r["organization_id"], []).append(ReminderMilestone(
            project_id=r["project_id"], milestone_id=r["milestone_id"], name=r["name"], due_date=r["due_date"],
            owner=r["owner"], due_version=len(moves), project_status=ProjectStatus(r["status"]),
            scheduled_since=datetime.fromisoformat(moves[-1]["moved_at"]) if moves else r["created_at"]))
    return grouped


async def handled_keys(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT DISTINCT notice_key FROM notice_deliveries")
    return {r["notice_key"] for r in rows}


async def all_policies(conn: asyncpg.Connection, organization_ids: Iterable[str]) -> dict[str, PolicyBook]:
    """One PolicyBook per organization, holding every project and milestone override."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (scope, scope_id) scope, scope_id, active, policy
        FROM reminder_policies ORDER BY scope, scope_id, version DESC
        """)
    shared = PolicyBook()
    organizations: dict[str, ReminderPolicy] = {}
    for r in rows:
        if not r["active"]:
            continue
        policy = ReminderPolicy.model_validate(r["policy"])
        if r["scope"] == "organization":
            organizations[r["scope_id"]] = policy
        elif r["scope"] == "project":
            shared.projects[r["scope_id"]] = policy
        else:
            project_id, milestone_id = r["scope_id"].split("/", 1)
            shared.milestones.setdefault(project_id, {})[milestone_id] = policy
    return {org: shared.model_copy(update={"organization": organizations.get(org)}) for org in organization_ids}


async def calendar_moves(conn: asyncpg.Connection, old: WorkingCalendar, new: WorkingCalendar, now: datetime,
                         hour: int, until_hour: int) -> list[NoticeMove]:
    """Which open notices of all projects a calendar change would move, before it is applied."""
    grouped = await open_reminder_milestones(conn)
    books = await all_policies(conn, grouped)
    handled = await handled_keys(conn)
    moves: list[NoticeMove] = []
    for organization_id, milestones in grouped.items():
        moves += notices_moved_by_calendar(old, new, books[organization_id], milestones, now, handled, hour,
                                           until_hour)
    return sorted(moves, key=lambda m: (min(t for t in (m.before, m.after) if t is not None), m.key))


# ---------------------------------------------------------------- telling workflows


async def tell_projects(client: Client, project_ids: Iterable[str]) -> int:
    """Signal `reminder_settings_changed` to each project; returns how many took it.

    A closed project's workflow has ended and cannot take a signal; that is not an error.
    """
    gate = asyncio.Semaphore(BROADCAST_CONCURRENCY)

    async def tell(project_id: str) -> bool:
        async with gate:
            handle = client.get_workflow_handle_for(ProjectWorkflow.run, project_workflow_id(project_id))
            try:
                await handle.signal(ProjectWorkflow.reminder_settings_changed)
            except RPCError:
                return False
            return True

    return sum(await asyncio.gather(*(tell(p) for p in project_ids)))


async def open_project_ids(conn: asyncpg.Connection, organization_id: str | None = None) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT p.id FROM projects p JOIN cooperations c ON c.id = p.cooperation_id
        WHERE p.status IN ('planned', 'active', 'suspended') AND ($1::text IS NULL OR c.lead_organization_id = $1)
        ORDER BY p.id
        """, organization_id)
    return [r["id"] for r in rows]
