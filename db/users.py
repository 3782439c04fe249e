"""Users, their roles and departments, and API tokens.

A token is `acc_` + 43 url-safe characters (256 random bits); only its SHA-256 is
stored, so a database leak does not leak working tokens. A user holds one or more
roles (`user_roles`); `users.role` keeps the first one granted, for the audit trail's
`actor_role` column and older readers.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

TOKEN_PREFIX = "acc_"
ROLES = ("liaison_officer", "reviewer", "leader", "auditor", "admin")
TOKEN_SCOPES = ("read", "read_write")


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str
    role: str
    department: str | None = None
    roles: tuple[str, ...] = field(default=())
    scope: str = "read_write"
    """The credential's scope: a read-only token may not change anything."""
    reach: tuple[str, ...] = ()
    """The departments below the user's own (a leader's view covers them)."""
    language: str = "zh"
    """The pages' and the notices' language (PUT /me/notifications, the pages' language button)."""

    @property
    def all_roles(self) -> tuple[str, ...]:
        return self.roles or (self.role,)


async def ensure_department(conn: asyncpg.Connection, name: str, created_by: str = "system") -> None:
    """A department named in passing (a user's, a project's) exists at the top of the tree
    until an admin places it."""
    await conn.execute(
        "INSERT INTO departments (name, created_by) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, created_by)


async def create_user(conn: asyncpg.Connection, username: str, display_name: str, role: str | Iterable[str],
                      department: str | None = None, granted_by: str = "system") -> User:
    roles = (role,) if isinstance(role, str) else tuple(role)
    if not roles or any(r not in ROLES for r in roles):
        raise ValueError(f"roles must be some of {', '.join(ROLES)}")
    user_id = uuid.uuid4().hex
    async with conn.transaction():
        if department is not None:
            await ensure_department(conn, department, granted_by)
        await conn.execute(
            "INSERT INTO users (id, username, display_name, role, department) VALUES ($1, $2, $3, $4, $5)",
            user_id, username, display_name, roles[0], department,
        )
        await conn.executemany(
            "INSERT INTO user_roles (user_id, role, granted_by) VALUES ($1, $2, $3)",
            [(user_id, r, granted_by) for r in roles])
    return User(user_id, username, display_name, roles[0], department, roles)


_USER_COLUMNS = """
    u.id, u.username, u.display_name, u.role, u.department, u.language,
    coalesce((SELECT array_agg(r.role ORDER BY r.granted_at, r.role) FROM user_roles r WHERE r.user_id = u.id),
             ARRAY[u.role]) AS roles,
    coalesce((WITH RECURSIVE below AS (
                  SELECT d.name FROM departments d WHERE d.parent = u.department
                  UNION SELECT d.name FROM departments d JOIN below b ON d.parent = b.name)
              SELECT array_agg(name ORDER BY name) FROM below), ARRAY[]::text[]) AS reach
"""


def _user(row: asyncpg.Record, scope: str = "read_write") -> User:
    return _user_values(dict(row), scope)


def _user_values(values: dict, scope: str) -> User:
    values["roles"], values["reach"] = tuple(values["roles"]), tuple(values["reach"])
    return User(**values, scope=scope)


async def find_user(conn: asyncpg.Connection, username: str) -> User | None:
    row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users u WHERE u.username = $1", username)
    return _user(row) if row else None


async def user_by_id(conn: asyncpg.Connection, user_id: str) -> User | None:
    row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users u WHERE u.id = $1 AND u.disabled_at IS NULL",
                              user_id)
    return _user(row) if row else None


async def issue_token(conn: asyncpg.Connection, user_id: str, name: str, expires_at: datetime | None = None,
                      scope: str = "read_write") -> str:
    """Create a token and return its secret; this is the only time the secret exists in clear."""
    if scope not in TOKEN_SCOPES:
        raise ValueError(f"scope must be one of {', '.join(TOKEN_SCOPES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_tokens (id, user_id, token_hash, name, expires_at, scope) VALUES ($1, $2, $3, $4, $5, $6)",
        uuid.uuid4().hex, user_id, hash_token(token), name, expires_at, scope,
    )
    return token


async def user_for_token(conn: asyncpg.Connection, token: str) -> User | None:
    row = await conn.fetchrow(
        f"""
        SELECT {_USER_COLUMNS}, t.scope
        FROM api_tokens t JOIN users u ON u.id = t.user_id
        WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
          AND u.disabled_at IS NULL
        """,
        hash_token(token),
    )
    if row is None:
        return None
    values = dict(row)
    return _user_values(values, values.pop("scope"))
