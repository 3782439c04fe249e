"""Reminder policies and working-day calendars: versioned rows, never edited in place.

A notice names the policy and calendar versions that produced it, so every
version stays readable for as long as the audit trail does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from domain.calendar import WorkingCalendar
from domain.reminders import PolicyBook, ReminderPolicy

DEFAULT_CALENDAR = "China mainland"


class PolicyScope(StrEnum):
    organization = "organization"
    project = "project"
    milestone = "milestone"


def milestone_scope_id(project_id: str, milestone_id: str) -> str:
    return f"{project_id}/{milestone_id}"


@dataclass(frozen=True)
class PolicyVersion:
    scope: PolicyScope
    scope_id: str
    version: int
    active: bool
    policy: ReminderPolicy | None
    note: str | None
    created_by: str
    created_at: object


def _policy_version(row: asyncpg.Record) -> PolicyVersion:
    policy = ReminderPolicy.model_validate(row["policy"]) if row["policy"] is not None else None
    return PolicyVersion(PolicyScope(row["scope"]), row["scope_id"], row["version"], row["active"], policy,
                         row["note"], row["created_by"], row["created_at"])


async def save_policy(conn: asyncpg.Connection, scope: PolicyScope, scope_id: str, policy: ReminderPolicy | None,
                      note: str | None, created_by: str) -> PolicyVersion:
    """Add the next version of a scope's policy (None removes the override). Call inside a transaction.

    The policy is stored with its id and version filled in, exactly as notices will name it.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('reminder_policies:' || $1 || ':' || $2))",
                       scope.value, scope_id)
    version = await conn.fetchval(
        "SELECT coalesce(max(version), 0) + 1 FROM reminder_policies WHERE scope = $1 AND scope_id = $2",
        scope.value, scope_id)
    stored = None
    if policy is not None:
        stored = policy.model_copy(update={"policy_id": f"{scope.value}:{scope_id}", "version": version})
    row = await conn.fetchrow(
        """
        INSERT INTO reminder_policies (scope, scope_id, version, active, policy, note, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *
        """,
        scope.value, scope_id, version, stored is not None,
        stored.model_dump(mode="json") if stored is not None else None, note, created_by)
    return _policy_version(row)


async def policy_versions(conn: asyncpg.Connection, scope: PolicyScope, scope_id: str) -> list[PolicyVersion]:
    rows = await conn.fetch(
        "SELECT * FROM reminder_policies WHERE scope = $1 AND scope_id = $2 ORDER BY version DESC",
        scope.value, scope_id)
    return [_policy_version(r) for r in rows]


async def current_policy(conn: asyncpg.Connection, scope: PolicyScope, scope_id: str) -> ReminderPolicy | None:
    row = await conn.fetchrow(
        """
        SELECT * FROM reminder_policies WHERE scope = $1 AND scope_id = $2 ORDER BY version DESC LIMIT 1
        """, scope.value, scope_id)
    return _policy_version(row).policy if row is not None else None


async def policy_book_for(conn: asyncpg.Connection, project_id: str, cooperation_id: str) -> PolicyBook:
    """The policies that can apply to one project: its organization's, its own and its milestones'.

    The organization is the cooperation's lead party (the city government or committee
    whose office runs the cooperation). It is found through the cooperation, whose row
    exists before any of its projects: the project's own row may still be on its way
    when the project's workflow first loads its setup.
    """
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (p.scope, p.scope_id) p.*
        FROM reminder_policies p
        WHERE (p.scope = 'organization' AND p.scope_id = (
                   SELECT c.lead_organization_id FROM cooperations c WHERE c.id = $3))
           OR (p.scope = 'project' AND p.scope_id = $1)
           OR (p.scope = 'milestone' AND p.scope_id LIKE $2)
        ORDER BY p.scope, p.scope_id, p.version DESC
        """,
        project_id, project_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%",
        cooperation_id)
    book = PolicyBook()
    for row in rows:
        version = _policy_version(row)
        if version.policy is None:
            continue
        if version.scope is PolicyScope.organization:
            book.organization = version.policy
        elif version.scope is PolicyScope.project:
            book.projects[project_id] = version.policy
        else:
            milestone_id = version.scope_id.split("/", 1)[1]
            book.milestones.setdefault(project_id, {})[milestone_id] = version.policy
    return book


# ---------------------------------------------------------------- calendars


async def current_calendar(conn: asyncpg.Connection, name: str = DEFAULT_CALENDAR) -> WorkingCalendar:
    """The newest version; on first use, version 1 is the official table of `chinesecalendar`."""
    row = await conn.fetchrow(
        "SELECT calendar FROM working_calendars WHERE name = $1 ORDER BY version DESC LIMIT 1", name)
    if row is not None:
        return WorkingCalendar.model_validate(row["calendar"])
    first = WorkingCalendar.from_chinesecalendar(name=name)
    await conn.execute(
        """
        INSERT INTO working_calendars (name, version, calendar, note, created_by)
        VALUES ($1, 1, $2, 'official table of the chinesecalendar package', 'system')
        ON CONFLICT (name, version) DO NOTHING
        """, name, json.loads(first.model_dump_json()))
    return await current_calendar(conn, name)


async def save_calendar(conn: asyncpg.Connection, calendar: WorkingCalendar, note: str | None,
                        created_by: str) -> WorkingCalendar:
    """Store `calendar` as the next version of its name. Call inside a transaction.

    The caller built it from the current version (`with_year`); if someone else saved a
    version meanwhile, the version number is taken and this raises UniqueViolationError.
    """
    await conn.execute(
        "INSERT INTO working_calendars (name, version, calendar, note, created_by) VALUES ($1, $2, $3, $4, $5)",
        calendar.name, calendar.version, json.loads(calendar.model_dump_json()), note, created_by)
    return calendar


async def calendar_versions(conn: asyncpg.Connection, name: str = DEFAULT_CALENDAR) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT version, note, created_by, created_at,
               (SELECT array_agg(y::int ORDER BY y::int) FROM jsonb_array_elements_text(calendar -> 'covered_years') y)
                   AS covered_years
        FROM working_calendars WHERE name = $1 ORDER BY version DESC
        """, name)
