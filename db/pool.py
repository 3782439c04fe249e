"""The asyncpg pool, with JSON codecs so jsonb columns take and give Python objects."""

from __future__ import annotations

import json

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    # Custom plans for every execution: asyncpg prepares each query, and after five runs
    # PostgreSQL may switch to a generic plan that ignores which value (e.g. a rare or a
    # common audit action) is asked for (`make bench`, 1M events: one action type p95 66 ms).
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                                     server_settings={"plan_cache_mode": "force_custom_plan"})
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection with the same codecs as the pool (for CLI commands and migrations)."""
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn
