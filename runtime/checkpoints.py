"""Signing the audit chain's head now and then, from every worker process.

Several workers may race for the same head: the checkpoint's primary key (seq) lets
one win and the others find it done.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from db.audit_chain import write_checkpoint

log = logging.getLogger("accord.audit")


async def checkpoint_once(pool: asyncpg.Pool, key: bytes) -> int | None:
    """Sign the head if it moved; return the seq signed, or None."""
    async with pool.acquire() as conn:
        try:
            row = await write_checkpoint(conn, key)
        except asyncpg.UniqueViolationError:
            return None  # another process signed this head a moment ago
    return row["seq"] if row else None


async def checkpoint_periodically(pool: asyncpg.Pool, key: bytes, every_seconds: float) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        try:
            await checkpoint_once(pool, key)
        except (OSError, asyncpg.PostgresError):
            log.exception("audit checkpoint failed; retrying at the next interval")
