"""Plain SQL migrations, applied in file-name order, once each, under an advisory lock.

Any number of processes may call `migrate` at start-up: the lock serialises them,
and the second finds nothing left to do.
"""

from __future__ import annotations

from importlib import resources

import asyncpg

_LOCK_ID = 0x4143_434F_5244  # "ACCORD"


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("db") / "migrations"
    files = sorted((f.name, f.read_text(encoding="utf-8")) for f in folder.iterdir() if f.name.endswith(".sql"))
    return files


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; return the names applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, sql in migration_files():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied_now


async def pending(conn: asyncpg.Connection) -> list[str]:
    """Migrations not yet applied (readiness checks use this)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")} if exists else set()
    return [name for name, _ in migration_files() if name not in done]
