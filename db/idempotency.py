"""Stored answers for Idempotency-Key: claim a key, then record the answer once it exists."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# A claim older than this with no answer belongs to a request that died mid-flight;
# a retry may take it over (the workflow still dedupes the action by its request id).
STALE_CLAIM_SECONDS = 60


@dataclass
class StoredAnswer:
    status_code: int
    body: bytes
    content_type: str


@dataclass
class Claim:
    """Outcome of claiming a key: ours to run, an answer to replay, or a reason to refuse."""

    ours: bool = False
    answer: StoredAnswer | None = None
    mismatch: bool = False
    in_progress: bool = False


async def claim(conn: asyncpg.Connection, user_id: str, key: str, request_hash: bytes) -> Claim:
    inserted = await conn.fetchval(
        """
        INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3)
        ON CONFLICT DO NOTHING RETURNING true
        """,
        user_id, key, request_hash,
    )
    if inserted:
        return Claim(ours=True)
    row = await conn.fetchrow(
        """
        SELECT request_hash, status_code, response_body, content_type,
               created_at < now() - make_interval(secs => $3) AS stale
        FROM idempotency_keys WHERE user_id = $1 AND key = $2
        """,
        user_id, key, STALE_CLAIM_SECONDS,
    )
    if row is None:  # released between our insert and select: try once more
        return await claim(conn, user_id, key, request_hash)
    if row["request_hash"] != request_hash:
        return Claim(mismatch=True)
    if row["status_code"] is not None:
        return Claim(answer=StoredAnswer(row["status_code"], row["response_body"], row["content_type"]))
    if row["stale"]:
        await conn.execute("UPDATE idempotency_keys SET created_at = now() WHERE user_id = $1 AND key = $2",
                           user_id, key)
        return Claim(ours=True)
    return Claim(in_progress=True)


async def store(conn: asyncpg.Connection, user_id: str, key: str, answer: StoredAnswer) -> None:
    await conn.execute(
        """
        UPDATE idempotency_keys SET status_code = $3, response_body = $4, content_type = $5
        WHERE user_id = $1 AND key = $2
        """,
        user_id, key, answer.status_code, answer.body, answer.content_type,
    )


async def release(conn: asyncpg.Connection, user_id: str, key: str) -> None:
    """Forget a claim whose request failed on our side (5xx): the client may retry."""
    await conn.execute("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2", user_id, key)
