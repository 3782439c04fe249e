"""Reads of the read model for the API: lists with filters and keyset pagination, detail views."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

# A milestone is overdue when it is open, past due, and its project is still running.
_OVERDUE = """
    SELECT 1 FROM milestones m JOIN projects p ON p.id = m.project_id
    WHERE m.cooperation_id = c.id AND m.status = 'open' AND m.due_date < $1
      AND p.status IN ('planned', 'active')
"""


# The `overdue` filter as a (semi- or anti-) join the planner can pull up, instead of
# `EXISTS (...) = $6`, which it can only evaluate row by row. `overdue=false` becomes an anti-join
# along the paging index (1 ms at 100,000 cooperations, bench/reads.py). `overdue=true` is still
# a probe per cooperation of the reader's departments (tens of ms at 100,000): the row-security
# qual is estimated to pass 0.5 % of the rows, so the planner does not walk the paging index.
_OVERDUE_IDS = """
    SELECT m.cooperation_id FROM milestones m JOIN projects p ON p.id = m.project_id
    WHERE m.status = 'open' AND m.due_date < $1 AND p.status IN ('planned', 'active')
"""
_OVERDUE_FILTER = {
    None: "AND $6::boolean IS NULL",
    True: f"AND $6::boolean AND c.id IN ({_OVERDUE_IDS})",
    False: f"AND NOT $6::boolean AND NOT EXISTS ({_OVERDUE})",
}


_CURSOR_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


class BadCursor(ValueError):
    pass


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None or not 1970 <= moment.year <= 9000 or not _CURSOR_ID.fullmatch(str(row_id)):
            raise ValueError("out of range")
        return moment, str(row_id)
    except (ValueError, TypeError, OverflowError) as error:
        raise BadCursor("cursor is not one this API returned") from error


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with LIKE's wildcards taken literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ---------------------------------------------------------------- organizations


async def insert_organization(conn: asyncpg.Connection, org_id: str, name: str, kind: str, region: str | None,
                              created_by: str) -> asyncpg.Record | None:
    """Insert, or None when an organization of that name exists already."""
    return await conn.fetchrow(
        """
        INSERT INTO organizations (id, name, kind, region, created_by) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT DO NOTHING
        RETURNING *
        """,
        org_id, name, kind, region, created_by,
    )


async def organization_by_name(conn: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM organizations WHERE lower(name) = lower($1)", name)


async def organization(conn: asyncpg.Connection, org_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM organizations WHERE id = $1", org_id)


async def organizations(conn: asyncpg.Connection, ids: list[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch("SELECT * FROM organizations WHERE id = ANY($1::text[])", ids)
    return {r["id"]: r for r in rows}


async def list_organizations(conn: asyncpg.Connection, kind: str | None, q: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT * FROM organizations
        WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR lower(name) LIKE $2)
        ORDER BY name LIMIT 500
        """,
        kind, like_pattern(q) if q else None,
    )


async def insert_person(conn: asyncpg.Connection, person_id: str, org_id: str, name: str,
                        title: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO people (id, organization_id, name, title) VALUES ($1, $2, $3, $4) RETURNING *",
        person_id, org_id, name, title,
    )


async def list_people(conn: asyncpg.Connection, org_id: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM people WHERE organization_id = $1 ORDER BY name", org_id)


# ---------------------------------------------------------------- cooperations


@dataclass
class CooperationFilter:
    stage: str | None = None
    partner_organization_id: str | None = None
    liaison_officer: str | None = None
    overdue: bool | None = None
    q: str | None = None
    departments: list[str] | None = None
    """Only these departments' cooperations (the reader's view); None: every department."""


async def list_cooperations(conn: asyncpg.Connection, f: CooperationFilter, today: date, limit: int,
                            cursor: str | None) -> tuple[list[asyncpg.Record], str | None]:
    after = decode_cursor(cursor) if cursor else None
    rows = await conn.fetch(
        f"""
        SELECT c.*, (SELECT count(*) FROM ({_OVERDUE}) o) AS overdue_milestones
        FROM cooperations c
        WHERE ($2::text IS NULL OR c.stage = $2)
          AND ($3::text IS NULL OR c.partner_organization_id = $3)
          AND ($4::text IS NULL OR c.liaison_officer = $4)
          AND ($5::text IS NULL OR c.search_text LIKE $5)
          {_OVERDUE_FILTER[f.overdue]}
          AND ($7::timestamptz IS NULL OR (c.created_at, c.id) < ($7, $8))
          AND ($10::text[] IS NULL OR c.department = ANY($10))
        ORDER BY c.created_at DESC, c.id DESC
        LIMIT $9
        """,
        today, f.stage, f.partner_organization_id, f.liaison_officer, like_pattern(f.q) if f.q else None,
        f.overdue, after[0] if after else None, after[1] if after else None, limit + 1, f.departments,
    )
    next_cursor = encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def cooperation(conn: asyncpg.Connection, cooperation_id: str, today: date) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT c.*, (SELECT count(*) FROM ({_OVERDUE}) o) AS overdue_milestones FROM cooperations c WHERE c.id = $2",
        today, cooperation_id,
    )


async def limit_view(conn: asyncpg.Connection, departments: list[str] | None) -> None:
    """Row-level security for the rest of this transaction (migration 005): only these departments'
    rows are visible to SELECT (None: every department). A third line behind the SQL filters."""
    await conn.execute("SELECT set_config('accord.view', $1, true)",
                       "*" if departments is None else "\n".join(departments))


@dataclass(frozen=True)
class Header:
    """What access checks and write answers need to know of a record: its state and departments."""

    status: str
    reason: str | None
    departments: tuple[str | None, ...]


async def cooperation_header(conn: asyncpg.Connection, cooperation_id: str) -> Header | None:
    row = await conn.fetchrow("SELECT stage, termination_reason, department FROM cooperations WHERE id = $1",
                              cooperation_id)
    return Header(row["stage"], row["termination_reason"], (row["department"],)) if row else None


async def negotiation_events(conn: asyncpg.Connection, cooperation_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM negotiation_events WHERE cooperation_id = $1 ORDER BY occurred_on, id", cooperation_id
    )


async def agreements(conn: asyncpg.Connection, cooperation_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM agreements WHERE cooperation_id = $1 ORDER BY id", cooperation_id)
    signatures = await conn.fetch(
        "SELECT * FROM signatures WHERE cooperation_id = $1 ORDER BY signed_on, organization_id", cooperation_id
    )
    return [_agreement_view(r, [s for s in signatures if s["agreement_id"] == r["id"]]) for r in rows]


async def agreement(conn: asyncpg.Connection, cooperation_id: str, agreement_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM agreements WHERE cooperation_id = $1 AND id = $2",
                              cooperation_id, agreement_id)
    if row is None:
        return None
    signatures = await conn.fetch(
        "SELECT * FROM signatures WHERE cooperation_id = $1 AND agreement_id = $2 ORDER BY signed_on",
        cooperation_id, agreement_id,
    )
    return _agreement_view(row, signatures)


def _agreement_view(row: asyncpg.Record, signatures: list[asyncpg.Record]) -> dict[str, Any]:
    signed = {s["organization_id"] for s in signatures}
    view = dict(row)
    view["signatures"] = [dict(s) for s in signatures]
    view["unsigned_parties"] = [p["organization_name"] for p in row["parties"] if p["organization_id"] not in signed]
    return view


# ---------------------------------------------------------------- projects


async def projects(conn: asyncpg.Connection, today: date, *, cooperation_id: str | None = None,
                   project_id: str | None = None, status: str | None = None,
                   departments: list[str] | None = None) -> list[dict[str, Any]]:
    """`departments`: only projects run by, or under a cooperation of, these departments (None: all)."""
    rows = await conn.fetch(
        """
        SELECT p.* FROM projects p
        WHERE ($1::text IS NULL OR p.cooperation_id = $1) AND ($2::text IS NULL OR p.id = $2)
          AND ($3::text IS NULL OR p.status = $3)
          AND ($4::text[] IS NULL OR p.responsible_department = ANY($4)
               OR EXISTS (SELECT 1 FROM cooperations c WHERE c.id = p.cooperation_id AND c.department = ANY($4)))
        ORDER BY p.created_at, p.id LIMIT 1000
        """,
        cooperation_id, project_id, status, departments,
    )
    ids = [r["id"] for r in rows]
    milestones = await conn.fetch(
        "SELECT * FROM milestones WHERE project_id = ANY($1::text[]) ORDER BY project_id, position", ids
    )
    investments = await conn.fetch(
        "SELECT * FROM investments WHERE project_id = ANY($1::text[]) ORDER BY project_id, received_on, id", ids
    )
    views = []
    for r in rows:
        running = r["status"] in ("planned", "active")
        view = dict(r)
        view["milestones"] = [
            {**dict(m), "overdue_days": (today - m["due_date"]).days
             if running and m["status"] == "open" and m["due_date"] < today else 0}
            for m in milestones if m["project_id"] == r["id"]
        ]
        view["investments"] = [dict(i) for i in investments if i["project_id"] == r["id"]]
        views.append(view)
    return views


async def project_header(conn: asyncpg.Connection, project_id: str) -> Header | None:
    """A project belongs to its responsible department and to its cooperation's department."""
    row = await conn.fetchrow(
        """
        SELECT p.status, p.status_reason, p.responsible_department, c.department
        FROM projects p JOIN cooperations c ON c.id = p.cooperation_id WHERE p.id = $1
        """, project_id)
    return Header(row["status"], row["status_reason"], (row["responsible_department"], row["department"])) \
        if row else None
