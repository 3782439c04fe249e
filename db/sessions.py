"""Server-side sessions, and the API tokens a user manages for themselves.

A session id is 256 random bits (43 url-safe characters) that only the browser's cookie
holds; the table keeps its SHA-256 (`id_hash`), so reading the table does not yield a
working session. Sessions are listed by `ref`, a short prefix of that hash, which names
a session without being usable as one. Expiry (idle and absolute) is decided by the
caller's clock (api/auth.py), which tests replace.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from db.users import User, hash_token, issue_token, user_by_id

REF_LENGTH = 12


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def hash_session_id(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


def ref(id_hash: bytes) -> str:
    """What a session is called in answers and the audit trail: never its id, nor its whole hash."""
    return bytes(id_hash).hex()[:REF_LENGTH]


@dataclass(frozen=True)
class Session:
    id_hash: bytes
    user: User
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    source_ip: str | None
    user_agent: str | None

    @property
    def ref(self) -> str:
        return ref(self.id_hash)


async def create(conn: asyncpg.Connection, user_id: str, now: datetime, expires_at: datetime,
                 source_ip: str | None, user_agent: str | None) -> tuple[str, bytes, str]:
    """A new session: (the id for the cookie, its hash, its CSRF token)."""
    session_id, csrf_token = new_session_id(), secrets.token_urlsafe(32)
    id_hash = hash_session_id(session_id)
    await conn.execute(
        """
        INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, source_ip, user_agent)
        VALUES ($1, $2, $3, $4, $4, $5, $6, $7)
        """,
        id_hash, user_id, csrf_token, now, expires_at, source_ip, user_agent)
    return session_id, id_hash, csrf_token


async def find(conn: asyncpg.Connection, session_id: str) -> Session | None:
    """The unrevoked session of an enabled user with this id; whether it has expired is the caller's call."""
    row = await conn.fetchrow(
        """
        SELECT id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, source_ip, user_agent
        FROM sessions WHERE id_hash = $1 AND revoked_at IS NULL
        """, hash_session_id(session_id))
    if row is None:
        return None
    user = await user_by_id(conn, row["user_id"])  # None when the user is disabled
    if user is None:
        return None
    values = dict(row)
    del values["user_id"]
    values["id_hash"] = bytes(values["id_hash"])
    return Session(user=user, **values)


async def touch(conn: asyncpg.Connection, id_hash: bytes, now: datetime) -> None:
    await conn.execute("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2",
                       id_hash, now)


async def revoke(conn: asyncpg.Connection, id_hash: bytes, now: datetime) -> bool:
    revoked = await conn.fetchval(
        "UPDATE sessions SET revoked_at = $2 WHERE id_hash = $1 AND revoked_at IS NULL RETURNING true",
        id_hash, now)
    return bool(revoked)


async def revoke_all(conn: asyncpg.Connection, user_id: str, now: datetime, keep: bytes | None = None) -> int:
    """Revoke every unrevoked session of the user but `keep`; how many were still live."""
    rows = await conn.fetch(
        """
        UPDATE sessions SET revoked_at = $2
        WHERE user_id = $1 AND revoked_at IS NULL AND id_hash IS DISTINCT FROM $3
        RETURNING expires_at > $2 AS live
        """, user_id, now, keep)
    return sum(1 for r in rows if r["live"])


async def active(conn: asyncpg.Connection, user_id: str, now: datetime, idle_since: datetime) -> list[asyncpg.Record]:
    """The user's sessions that still work at `now` (seen after `idle_since`), newest first."""
    return await conn.fetch(
        """
        SELECT id_hash, created_at, last_seen_at, expires_at, source_ip, user_agent
        FROM sessions
        WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND last_seen_at > $3
        ORDER BY created_at DESC
        """, user_id, now, idle_since)


# ---------------------------------------------------------------- API tokens


_TOKEN_COLUMNS = "id, name, scope, created_at, expires_at, revoked_at"


async def create_token(conn: asyncpg.Connection, user_id: str, name: str, scope: str,
                       expires_at: datetime) -> tuple[str, asyncpg.Record]:
    """A new token: its secret (the only time it exists in clear) and its row."""
    secret = await issue_token(conn, user_id, name, expires_at=expires_at, scope=scope)
    row = await conn.fetchrow(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1", hash_token(secret))
    return secret, row


async def tokens(conn: asyncpg.Connection, user_id: str, now: datetime) -> list[asyncpg.Record]:
    """The user's tokens that still work (not revoked, not expired), newest first."""
    return await conn.fetch(
        f"""
        SELECT {_TOKEN_COLUMNS} FROM api_tokens
        WHERE user_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)
        ORDER BY created_at DESC, id
        """, user_id, now)


async def token(conn: asyncpg.Connection, user_id: str, token_id: str) -> asyncpg.Record | None:
    """One of the user's tokens, locked for a change; None for another user's or an unknown one."""
    return await conn.fetchrow(
        f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE id = $1 AND user_id = $2 FOR UPDATE", token_id, user_id)


async def revoke_token(conn: asyncpg.Connection, token_id: str, now: datetime) -> asyncpg.Record:
    return await conn.fetchrow(
        f"UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 RETURNING {_TOKEN_COLUMNS}", token_id, now)
