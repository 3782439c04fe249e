"""Searching and exporting the audit trail: filters, keyset pages newest first, streamed exports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from db.queries import like_pattern

COLUMNS = (
    "seq", "event_id", "recorded_at", "occurred_at", "actor_id", "actor_name", "actor_role", "actor_department",
    "auth_method", "source_ip", "user_agent", "request_id", "action", "entity_type", "entity_id", "cooperation_id",
    "project_id", "before", "after", "comment", "outcome", "error", "workflow_id", "run_id", "event_seq",
)


@dataclass
class AuditFilter:
    cooperation_id: str | None = None
    project_id: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    actor_id: str | None = None
    actor_department: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def _where(f: AuditFilter, before_seq: int | None) -> tuple[str, list[Any]]:
    """WHERE clause with only the filters in use, so each query can use its own index."""
    clauses: list[str] = []
    args: list[Any] = []

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.format(f"${len(args)}"))

    for column in ("cooperation_id", "project_id", "entity_type", "entity_id", "actor_id", "actor_department",
                   "action", "outcome"):
        if getattr(f, column) is not None:
            add(f"{column} = {{}}", getattr(f, column))
    if f.since is not None:
        add("recorded_at >= {}", f.since)
    if f.until is not None:
        add("recorded_at < {}", f.until)
    if f.q:
        # Free text over who, what, which record and why (Chinese works: a plain substring match).
        add("lower(concat_ws(' ', actor_name, action, entity_type, entity_id, comment, error, before::text, "
            "after::text)) LIKE {}", like_pattern(f.q))
    if before_seq is not None:
        add("seq < {}", before_seq)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


async def search(conn: asyncpg.Connection, f: AuditFilter, limit: int,
                 before_seq: int | None) -> tuple[list[dict[str, Any]], int | None]:
    """One page, newest first; the next page starts below the last seq returned."""
    where, args = _where(f, before_seq)
    rows = await conn.fetch(
        f"SELECT {', '.join(COLUMNS)} FROM audit_events {where} ORDER BY seq DESC LIMIT {int(limit) + 1}", *args
    )
    items = [dict(r) for r in rows[:limit]]
    return items, (items[-1]["seq"] if len(rows) > limit else None)


async def stream(conn: asyncpg.Connection, f: AuditFilter, batch: int = 2000) -> AsyncIterator[dict[str, Any]]:
    """Every matching event, newest first, through a server-side cursor: constant memory."""
    where, args = _where(f, None)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = conn.cursor(f"SELECT {', '.join(COLUMNS)} FROM audit_events {where} ORDER BY seq DESC", *args,
                             prefetch=batch)
        async for row in cursor:
            yield dict(row)


async def latest_state(conn: asyncpg.Connection, workflow_id: str, at: datetime) -> dict[str, Any] | None:
    """The state recorded by the last event of one workflow at or before `at`."""
    return await conn.fetchrow(
        """
        SELECT seq, recorded_at, action, state FROM audit_events
        WHERE workflow_id = $1 AND recorded_at <= $2 AND state IS NOT NULL
        ORDER BY event_seq DESC LIMIT 1
        """,
        workflow_id, at,
    )


async def project_creation(conn: asyncpg.Connection, project_id: str, at: datetime) -> dict[str, Any] | None:
    """The parent's `project.created` event, whose `after` holds the project as created."""
    return await conn.fetchrow(
        """
        SELECT seq, recorded_at, after FROM audit_events
        WHERE project_id = $1 AND action = 'project.created' AND recorded_at <= $2
        ORDER BY seq LIMIT 1
        """,
        project_id, at,
    )
