"""Users and API tokens. A token is `acc_` + 43 url-safe characters (256 random bits);
only its SHA-256 is stored, so a database leak does not leak working tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

TOKEN_PREFIX = "acc_"


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str
    role: str
    department: str | None = None


async def create_user(conn: asyncpg.Connection, username: str, display_name: str, role: str,
                      department: str | None = None) -> User:
    user_id = uuid.uuid4().hex
    await conn.execute(
        "INSERT INTO users (id, username, display_name, role, department) VALUES ($1, $2, $3, $4, $5)",
        user_id, username, display_name, role, department,
    )
    return User(user_id, username, display_name, role, department)


async def find_user(conn: asyncpg.Connection, username: str) -> User | None:
    row = await conn.fetchrow("SELECT id, username, display_name, role, department FROM users WHERE username = $1", username)
    return User(**dict(row)) if row else None


async def issue_token(conn: asyncpg.Connection, user_id: str, name: str, expires_at: datetime | None = None) -> str:
    """Create a token and return its secret; this is the only time the secret exists in clear."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_tokens (id, user_id, token_hash, name, expires_at) VALUES ($1, $2, $3, $4, $5)",
        uuid.uuid4().hex, user_id, hash_token(token), name, expires_at,
    )
    return token


async def user_for_token(conn: asyncpg.Connection, token: str) -> User | None:
    row = await conn.fetchrow(
        """
        SELECT u.id, u.username, u.display_name, u.role, u.department
        FROM api_tokens t JOIN users u ON u.id = t.user_id
        WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
        """,
        hash_token(token),
    )
    return User(**dict(row)) if row else None
