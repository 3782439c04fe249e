"""Chat-robot webhooks per department.

The secret signs each outgoing request, so it is stored as it is; but no listing
returns it: the API shows it once, when the webhook is created (or to the retry of
that same request).
"""

from __future__ import annotations

import asyncpg

_PUBLIC = "id, department, url, description, created_at, revoked_at"


async def insert(conn: asyncpg.Connection, webhook_id: str, department: str, url: str, secret: str,
                 description: str | None, created_by: str) -> asyncpg.Record | None:
    """The new webhook (without the secret, which the caller has), or None when the id exists already."""
    return await conn.fetchrow(
        f"""
        INSERT INTO webhooks (id, department, url, secret, description, created_by)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (id) DO NOTHING
        RETURNING {_PUBLIC}
        """,
        webhook_id, department, url, secret, description, created_by,
    )


async def secret_for_retry(conn: asyncpg.Connection, webhook_id: str, created_by: str) -> asyncpg.Record | None:
    """The webhook with its secret, for the retry of the request that created it (same id, same user)."""
    return await conn.fetchrow(f"SELECT {_PUBLIC}, secret FROM webhooks WHERE id = $1 AND created_by = $2",
                               webhook_id, created_by)


async def active(conn: asyncpg.Connection, department: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""
        SELECT {_PUBLIC} FROM webhooks
        WHERE revoked_at IS NULL AND ($1::text IS NULL OR department = $1)
        ORDER BY department, created_at, id
        """,
        department,
    )


async def webhook(conn: asyncpg.Connection, webhook_id: str, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_PUBLIC} FROM webhooks WHERE id = $1{' FOR UPDATE' if lock else ''}",
                               webhook_id)


async def revoke(conn: asyncpg.Connection, webhook_id: str) -> asyncpg.Record | None:
    """Revoke now; None when it was revoked already (or does not exist), so a repeat changes nothing."""
    return await conn.fetchrow(
        f"UPDATE webhooks SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING {_PUBLIC}",
        webhook_id,
    )
