"""Reads for the dashboard and the cooperation list pages (web/routes/dashboard.py, cooperation_list.py).

Every function takes `departments`, the reader's view (`domain.access.visible_departments`:
None for every department), and filters by it in SQL, as db/queries.py does; callers also
run inside a transaction with `queries.limit_view` set, so row-level security backs it up.
A project is visible through its responsible department or its cooperation's department.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

# The list's overdue count and filter must agree with the API's and the cooperation page's:
# one definition of "overdue" (an open milestone past due in a running project), kept in
# db/queries.py. It reads `today` as $1 and the cooperation as `c`.
from db.queries import _OVERDUE as OVERDUE_MILESTONES
from db.queries import like_pattern

_RUNNING = "('planned', 'active')"
"""Project statuses whose open milestones are still expected: a suspended project's are not late."""

_VISIBLE_PROJECT = "($1::text[] IS NULL OR p.responsible_department = ANY($1) OR c.department = ANY($1))"


# ---------------------------------------------------------------- dashboard


async def stage_counts(conn: asyncpg.Connection, departments: list[str] | None) -> dict[str, int]:
    """Visible cooperations by stage."""
    rows = await conn.fetch(
        "SELECT stage, count(*) AS n FROM cooperations WHERE $1::text[] IS NULL OR department = ANY($1) "
        "GROUP BY stage", departments)
    return {r["stage"]: r["n"] for r in rows}


async def milestones_due(conn: asyncpg.Connection, departments: list[str] | None, today: date, *,
                         due_from: date | None, due_until: date, limit: int) -> tuple[list[asyncpg.Record], int]:
    """Open milestones of running projects due between `due_from` (None: any time before) and
    `due_until`, earliest first, each with `days_late` counted from `today` (negative: days left);
    and how many there are in all (the page shows the first `limit`)."""
    rows = await conn.fetch(
        f"""
        SELECT m.project_id, m.id, m.name, m.due_date, $2::date - m.due_date AS days_late,
               p.title AS project_title, p.cooperation_id, c.title AS cooperation_title,
               count(*) OVER () AS total
        FROM milestones m
        JOIN projects p ON p.id = m.project_id
        LEFT JOIN cooperations c ON c.id = p.cooperation_id
        WHERE m.status = 'open' AND ($3::date IS NULL OR m.due_date >= $3) AND m.due_date <= $4
          AND p.status IN {_RUNNING} AND {_VISIBLE_PROJECT}
        ORDER BY m.due_date, p.title, m.position
        LIMIT $5
        """,
        departments, today, due_from, due_until, limit)
    return rows, rows[0]["total"] if rows else 0


async def investment_by_project(conn: asyncpg.Connection, departments: list[str] | None,
                                limit: int) -> tuple[list[asyncpg.Record], dict[str, Any]]:
    """The largest commitments first (cancelled projects left out: their commitment no longer
    stands); and the totals over every such visible project: count, committed, realized."""
    rows = await conn.fetch(
        f"""
        SELECT p.id, p.title, p.committed_investment AS committed, p.realized_investment AS realized,
               count(*) OVER () AS total_projects, sum(p.committed_investment) OVER () AS total_committed,
               sum(p.realized_investment) OVER () AS total_realized
        FROM projects p LEFT JOIN cooperations c ON c.id = p.cooperation_id
        WHERE p.status <> 'cancelled' AND {_VISIBLE_PROJECT}
        ORDER BY p.committed_investment DESC, p.id
        LIMIT $2
        """,
        departments, limit)
    first = rows[0] if rows else None
    totals = {"projects": first["total_projects"] if first else 0,
              "committed": first["total_committed"] if first else Decimal(0),
              "realized": first["total_realized"] if first else Decimal(0)}
    return rows, totals


_ACTIVITY_COLUMNS = "a.seq, a.recorded_at, a.actor_name, a.action, a.entity_type, a.entity_id, a.cooperation_id, " \
                    "a.project_id"


async def recent_activity(conn: asyncpg.Connection, departments: list[str] | None, actions: Sequence[str],
                          limit: int) -> list[asyncpg.Record]:
    """The latest accepted lifecycle `actions` on visible cooperations and projects, newest first,
    with the titles of their records.

    For a reader of some departments it takes each visible record's latest events from its own
    index (audit_events_cooperation / _project) and merges them, so it reads little however long
    the trail is; for a reader of everything, the newest events in order."""
    lifecycle = "a.outcome = 'succeeded' AND a.action = ANY($1::text[])"
    if departments is None:
        source = f"SELECT {_ACTIVITY_COLUMNS} FROM audit_events a WHERE a.cooperation_id IS NOT NULL AND {lifecycle} " \
                 "ORDER BY a.seq DESC LIMIT $2"
        args: list[Any] = [list(actions), limit]
    else:
        source = f"""
            SELECT e.* FROM cooperations c CROSS JOIN LATERAL (
                SELECT {_ACTIVITY_COLUMNS} FROM audit_events a WHERE a.cooperation_id = c.id AND {lifecycle}
                ORDER BY a.seq DESC LIMIT $2) e
            WHERE c.department = ANY($3::text[])
            UNION
            SELECT e.* FROM projects p CROSS JOIN LATERAL (
                SELECT {_ACTIVITY_COLUMNS} FROM audit_events a WHERE a.project_id = p.id AND {lifecycle}
                ORDER BY a.seq DESC LIMIT $2) e
            WHERE p.responsible_department = ANY($3::text[])
        """
        args = [list(actions), limit, departments]
    return await conn.fetch(
        f"""
        SELECT e.*, c.title AS cooperation_title, p.title AS project_title
        FROM ({source}) e
        LEFT JOIN cooperations c ON c.id = e.cooperation_id
        LEFT JOIN projects p ON p.id = e.project_id
        ORDER BY e.seq DESC LIMIT $2
        """,
        *args)


# ---------------------------------------------------------------- the cooperation list

SORTS = {
    "changed": "c.updated_at",
    "title": "lower(c.title)",
    "partner": "lower(c.partner_organization_name)",
    "stage": "stage_rank",
    "committed": "committed",
    "overdue": "overdue_milestones",
}
"""What the list sorts by: a fixed set of expressions, never text from the request."""


@dataclass
class ListFilter:
    stage: str | None = None
    partner_organization_id: str | None = None
    department: str | None = None
    liaison_officer: str | None = None
    overdue: bool | None = None
    q: str | None = None
    departments: list[str] | None = None
    """The reader's view: only these departments' cooperations (None: every department)."""


_LIST_WHERE = f"""
    ($2::text IS NULL OR c.stage = $2)
    AND ($3::text IS NULL OR c.partner_organization_id = $3)
    AND ($4::text IS NULL OR c.department = $4)
    AND ($5::text IS NULL OR c.liaison_officer = $5)
    AND ($6::text IS NULL OR c.search_text LIKE $6)
    AND ($7::boolean IS NULL OR EXISTS ({OVERDUE_MILESTONES}) = $7)
    AND ($8::text[] IS NULL OR c.department = ANY($8))
"""


def _list_args(f: ListFilter, today: date) -> list[Any]:
    return [today, f.stage, f.partner_organization_id, f.department, f.liaison_officer,
            like_pattern(f.q) if f.q else None, f.overdue, f.departments]


async def count_cooperations(conn: asyncpg.Connection, f: ListFilter, today: date) -> int:
    return await conn.fetchval(f"SELECT count(*) FROM cooperations c WHERE {_LIST_WHERE}", *_list_args(f, today))


async def cooperation_page(conn: asyncpg.Connection, f: ListFilter, today: date, sort: str, descending: bool,
                           stage_order: Sequence[str], limit: int, offset: int) -> list[asyncpg.Record]:
    """One page of the list, with each cooperation's projects, overdue milestones and committed
    investment (of its projects not cancelled). `sort` is a key of SORTS."""
    direction = "DESC" if descending else "ASC"
    return await conn.fetch(
        f"""
        SELECT * FROM (
            SELECT c.id, c.title, c.stage, c.partner_organization_id, c.partner_organization_name,
                   c.lead_organization_name, c.liaison_officer, c.department, c.updated_at,
                   array_position($9::text[], c.stage) AS stage_rank,
                   (SELECT count(*) FROM projects p WHERE p.cooperation_id = c.id) AS projects,
                   (SELECT count(*) FROM ({OVERDUE_MILESTONES}) o) AS overdue_milestones,
                   (SELECT coalesce(sum(p.committed_investment), 0) FROM projects p
                    WHERE p.cooperation_id = c.id AND p.status <> 'cancelled') AS committed
            FROM cooperations c
            WHERE {_LIST_WHERE}
        ) c
        ORDER BY {SORTS[sort]} {direction}, c.id {direction}
        LIMIT $10 OFFSET $11
        """,
        *_list_args(f, today), list(stage_order), limit, offset)


async def list_choices(conn: asyncpg.Connection, departments: list[str] | None) -> dict[str, list[Any]]:
    """What the list's filters offer: the partners, departments and liaison officers of the
    visible cooperations (so a filter never offers what the reader cannot see)."""
    visible = "$1::text[] IS NULL OR department = ANY($1)"
    partners = await conn.fetch(
        f"SELECT DISTINCT partner_organization_id AS id, partner_organization_name AS name FROM cooperations "
        f"WHERE {visible} ORDER BY name, id", departments)
    found = await conn.fetch(
        f"SELECT DISTINCT department FROM cooperations WHERE ({visible}) AND department IS NOT NULL "
        f"ORDER BY department", departments)
    officers = await conn.fetch(
        f"SELECT DISTINCT liaison_officer FROM cooperations WHERE {visible} ORDER BY liaison_officer", departments)
    return {"partners": [(r["id"], r["name"]) for r in partners],
            "departments": [r["department"] for r in found],
            "officers": [r["liaison_officer"] for r in officers]}
