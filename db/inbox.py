"""The in-app inbox and where a user wants notices: reads and read marks, email and language.

Inbox rows are written by the reminder delivery activity; this module only reads them
and marks them read. Every query is scoped to one user id, so a message of someone
else is indistinguishable from one that does not exist.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

import asyncpg

_COLUMNS = "id, kind, project_id, notice_key, subject, body, created_at, read_at"


class BadCursor(ValueError):
    pass


def encode_cursor(created_at: datetime, message_id: str) -> str:
    """(created_at, id) of the last message of a page: ties in created_at never skip a message."""
    raw = json.dumps([created_at.isoformat(), message_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The inverse of encode_cursor; anything else is a BadCursor (a 422, never a 500)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, message_id = json.loads(raw)
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None or not 1970 <= moment.year <= 9000:
            raise ValueError("out of range")
        if not isinstance(message_id, str) or not 0 < len(message_id) <= 300 or "\x00" in message_id:
            raise ValueError("not a message id")
        return moment, message_id
    except (ValueError, TypeError, OverflowError) as error:
        raise BadCursor("cursor is not one this API returned") from error


async def messages(conn: asyncpg.Connection, user_id: str, *, unread_only: bool, limit: int,
                   before: tuple[datetime, str] | None) -> tuple[list[asyncpg.Record], str | None]:
    """A page of the user's messages, newest first, and the cursor of the next page."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM inbox_messages
        WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL)
          AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
        ORDER BY created_at DESC, id DESC
        LIMIT $5
        """,
        user_id, unread_only, before[0] if before else None, before[1] if before else None, limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None


async def unread_count(conn: asyncpg.Connection, user_id: str) -> int:
    return await conn.fetchval("SELECT count(*) FROM inbox_messages WHERE user_id = $1 AND read_at IS NULL",
                               user_id)


async def mark_read(conn: asyncpg.Connection, user_id: str, message_id: str) -> asyncpg.Record | None:
    """Mark one message read (keeping the first read time), or None if the user has no such message."""
    return await conn.fetchrow(
        f"""
        UPDATE inbox_messages SET read_at = coalesce(read_at, now())
        WHERE id = $1 AND user_id = $2
        RETURNING {_COLUMNS}
        """,
        message_id, user_id,
    )


async def mark_all_read(conn: asyncpg.Connection, user_id: str) -> int:
    """Mark every unread message read; the number that were unread."""
    status = await conn.execute("UPDATE inbox_messages SET read_at = now() WHERE user_id = $1 AND read_at IS NULL",
                                user_id)
    return int(status.split()[-1])


# ---------------------------------------------------------------- notification settings


async def notification_settings(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT email, language FROM users WHERE id = $1", user_id)


async def set_notification_settings(conn: asyncpg.Connection, user_id: str, email: str | None,
                                    language: str) -> tuple[asyncpg.Record, asyncpg.Record]:
    """Store the settings; (before, after), the row locked so the audit's `before` is exact."""
    before = await conn.fetchrow("SELECT email, language FROM users WHERE id = $1 FOR UPDATE", user_id)
    after = await conn.fetchrow("UPDATE users SET email = $2, language = $3 WHERE id = $1 RETURNING email, language",
                                user_id, email, language)
    return before, after
