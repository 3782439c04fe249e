"""iCalendar feeds behind a secret URL, and the open milestones a feed shows.

Only SHA-256 of a feed's secret is stored: whoever reads the table (a backup, a
leaked dump) cannot subscribe to anyone's calendar. `created_by` holds the creator's
user id, because only the creator may revoke a feed, and a department feed has no
other owner to act for when it is fetched.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import TypedDict

import asyncpg

_PUBLIC = """id, CASE WHEN user_id IS NULL THEN 'department' ELSE 'me' END AS scope, department,
             created_at, revoked_at"""

# A milestone is on a calendar while it is open and its project still runs (planned, active, suspended).
_OPEN = "m.status = 'open' AND p.status NOT IN ('completed', 'cancelled')"


class FeedMilestone(TypedDict):
    project_id: str
    milestone_id: str
    project_title: str
    milestone_name: str
    due_date: date
    due_version: int
    owner: str | None
    responsible_department: str
    responsible_officer: str


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def insert(conn: asyncpg.Connection, feed_id: str, secret: str, user_id: str | None, department: str | None,
                 created_by: str) -> asyncpg.Record | None:
    """The new feed, or None when the id exists already (a retried request)."""
    return await conn.fetchrow(
        f"""
        INSERT INTO calendar_feeds (id, secret_hash, user_id, department, created_by) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (id) DO NOTHING
        RETURNING {_PUBLIC}
        """,
        feed_id, hash_secret(secret), user_id, department, created_by,
    )


async def feeds_of(conn: asyncpg.Connection, created_by: str) -> list[asyncpg.Record]:
    """The active feeds a user created."""
    return await conn.fetch(
        f"SELECT {_PUBLIC} FROM calendar_feeds WHERE created_by = $1 AND revoked_at IS NULL ORDER BY created_at, id",
        created_by,
    )


async def feed_of(conn: asyncpg.Connection, feed_id: str, created_by: str) -> asyncpg.Record | None:
    """A feed if this user created it (locked for a revocation), else None: others' feeds stay unseen."""
    return await conn.fetchrow(
        f"SELECT {_PUBLIC} FROM calendar_feeds WHERE id = $1 AND created_by = $2 FOR UPDATE",
        feed_id, created_by,
    )


async def revoke(conn: asyncpg.Connection, feed_id: str) -> asyncpg.Record:
    return await conn.fetchrow(
        f"UPDATE calendar_feeds SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {_PUBLIC}",
        feed_id,
    )


async def by_secret(conn: asyncpg.Connection, secret: str) -> asyncpg.Record | None:
    """An active feed and its owner (the user of a personal feed, the creator of a department feed).

    A revoked feed answers None like an unknown one: the caller cannot tell them apart.
    """
    return await conn.fetchrow(
        """
        SELECT f.id, f.user_id, f.department, u.id AS owner_id, u.username, u.display_name, u.role,
               u.department AS owner_department
        FROM calendar_feeds f JOIN users u ON u.id = coalesce(f.user_id, f.created_by)
        WHERE f.secret_hash = $1 AND f.revoked_at IS NULL
        """,
        hash_secret(secret),
    )


_MILESTONES = f"""
    SELECT p.id AS project_id, m.id AS milestone_id, p.title AS project_title, m.name AS milestone_name,
           m.due_date, jsonb_array_length(m.moves) AS due_version, m.owner,
           p.responsible_department, p.responsible_officer
    FROM milestones m JOIN projects p ON p.id = m.project_id
    WHERE {_OPEN} AND ({{who}})
      AND ($2::text[] IS NULL OR p.responsible_department = ANY($2)
           OR EXISTS (SELECT 1 FROM cooperations c WHERE c.id = p.cooperation_id AND c.department = ANY($2)))
    ORDER BY m.due_date, p.id, m.position
"""


async def milestones_for_person(conn: asyncpg.Connection, names: list[str],
                                departments: list[str] | None) -> list[FeedMilestone]:
    """Open milestones of projects this person is responsible for, or that this person owns, among
    the departments they see (None: all).

    The read model names people as free text (display name or username), so both are matched; the
    department filter keeps a namesake's milestones in another department out.
    """
    rows = await conn.fetch(
        _MILESTONES.format(who="p.responsible_officer = ANY($1::text[]) OR m.owner = ANY($1::text[])"), names,
        departments,
    )
    return [FeedMilestone(**dict(r)) for r in rows]


async def milestones_for_department(conn: asyncpg.Connection, department: str) -> list[FeedMilestone]:
    rows = await conn.fetch(_MILESTONES.format(who="p.responsible_department = $1"), department, None)
    return [FeedMilestone(**dict(r)) for r in rows]
