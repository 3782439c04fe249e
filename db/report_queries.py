"""Reading the record as it stood at an instant, for the portfolio report (reports/portfolio.py).

Every figure comes from the audit trail's history, not from today's rows: each accepted action
wrote one event carrying its workflow's whole state (`audit_events.state`), so the latest state
of each workflow recorded at or before the instant is the record as it stood then.

One query picks, per workflow, the latest state at or before the instant
(DISTINCT ON (workflow_id) ... ORDER BY workflow_id, event_seq DESC, which the index
audit_events_workflow (workflow_id, event_seq) serves in order; `recorded_at <= $1` also prunes
the monthly partitions after the instant). A project started but without an action of its own yet
is known from its cooperation's `project.created` event, whose `after.project` holds it as created.

audit_events has no row-level security (it is the auditors' table), so the department scope
(domain/access.visible_departments, or the one department asked for) is applied here in SQL on
the states' own departments: a cooperation's `department`, a project's `responsible_department`
or `cooperation_department`, as every other read decides visibility.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from domain.cooperation import CooperationState
from domain.project import NewProject, ProjectState, new_project
from domain.records import cooperation_workflow_id

_LATEST = """
SELECT workflow_id, state FROM (
    SELECT DISTINCT ON (workflow_id) workflow_id, state FROM audit_events
    WHERE workflow_id IS NOT NULL AND state IS NOT NULL AND recorded_at <= $1 {only}
    ORDER BY workflow_id, event_seq DESC
) latest
WHERE $2::text[] IS NULL
   OR (workflow_id LIKE 'cooperation-%' AND state->>'department' = ANY ($2))
   OR (workflow_id LIKE 'project-%' AND (state->>'responsible_department' = ANY ($2)
                                         OR state->>'cooperation_department' = ANY ($2)))
"""

_CREATED = """
SELECT DISTINCT ON (project_id) project_id, after->'project' AS project FROM audit_events
WHERE action = 'project.created' AND outcome = 'succeeded' AND recorded_at <= $1
  AND ($2::text[] IS NULL OR after->'project'->>'responsible_department' = ANY ($2)
       OR after->'project'->>'cooperation_department' = ANY ($2))
ORDER BY project_id, seq
"""


@dataclass
class Snapshot:
    """The record at one instant, within a department scope."""

    cooperations: dict[str, CooperationState] = field(default_factory=dict)
    """The cooperations in scope, by id: the ones counted by stage."""
    projects: dict[str, ProjectState] = field(default_factory=dict)
    context: dict[str, CooperationState] = field(default_factory=dict)
    """Cooperations out of scope whose projects are in scope (a project run by one of the scope's
    departments under another department's cooperation): read for the project's partner and
    industry only, never counted."""

    def cooperation_of(self, project: ProjectState) -> CooperationState | None:
        return self.cooperations.get(project.cooperation_id) or self.context.get(project.cooperation_id)


async def snapshot(conn: asyncpg.Connection, at: datetime, departments: list[str] | None) -> Snapshot:
    """The latest state of every cooperation and project in scope recorded at or before `at`.
    Call inside one repeatable-read transaction with `read_up_to` for a consistent report."""
    found = Snapshot()
    for row in await conn.fetch(_LATEST.format(only=""), at, departments):
        _add(found, row["workflow_id"], row["state"])
    for row in await conn.fetch(_CREATED, at, departments):
        if row["project_id"] not in found.projects:  # created, nothing recorded on the project itself yet
            found.projects[row["project_id"]] = new_project(NewProject.model_validate(row["project"]))
    missing = {p.cooperation_id for p in found.projects.values()} - set(found.cooperations)
    if missing:
        workflows = sorted(cooperation_workflow_id(c) for c in missing)
        for row in await conn.fetch(_LATEST.format(only="AND workflow_id = ANY ($3)"), at, None, workflows):
            state = CooperationState.model_validate(row["state"])
            found.context[state.cooperation_id] = state
    return found


async def read_up_to(conn: asyncpg.Connection, at: datetime) -> int:
    """The last audit seq recorded at or before `at` (0 if none): what a report read up to."""
    return await conn.fetchval("SELECT coalesce(max(seq), 0) FROM audit_events WHERE recorded_at <= $1", at)


def _add(found: Snapshot, workflow_id: str, state: Any) -> None:
    if workflow_id.startswith("cooperation-"):
        cooperation = CooperationState.model_validate(state)
        found.cooperations[cooperation.cooperation_id] = cooperation
    elif workflow_id.startswith("project-"):
        project = ProjectState.model_validate(state)
        found.projects[project.project_id] = project

