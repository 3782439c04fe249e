"""The department tree and user administration.

A leader reads what their department and every department below it owns, so the
tree matters: `below` answers it with one recursive query, and a move that would
put a department under itself is refused before it reaches the table.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from db.users import ROLES


async def departments(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every department with its path from the root ("City/Bureau/Office"), in tree order."""
    return await conn.fetch(
        """
        WITH RECURSIVE tree AS (
            SELECT name, parent, name AS path, 0 AS depth FROM departments WHERE parent IS NULL
            UNION ALL
            SELECT d.name, d.parent, t.path || '/' || d.name, t.depth + 1
            FROM departments d JOIN tree t ON d.parent = t.name
        )
        SELECT t.name, t.parent, t.path, t.depth,
               (SELECT count(*) FROM users u WHERE u.department = t.name) AS users
        FROM tree t ORDER BY t.path
        """)


async def department(conn: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT name, parent, created_by, created_at FROM departments WHERE name = $1", name)


async def below(conn: asyncpg.Connection, name: str) -> set[str]:
    """`name` and every department under it."""
    rows = await conn.fetch(
        """
        WITH RECURSIVE sub AS (
            SELECT name FROM departments WHERE name = $1
            UNION
            SELECT d.name FROM departments d JOIN sub s ON d.parent = s.name
        )
        SELECT name FROM sub
        """, name)
    return {r["name"] for r in rows}


async def create_department(conn: asyncpg.Connection, name: str, parent: str | None, created_by: str) -> bool:
    """False if the name is taken."""
    return await conn.fetchval(
        """
        INSERT INTO departments (name, parent, created_by) VALUES ($1, $2, $3)
        ON CONFLICT (name) DO NOTHING RETURNING true
        """, name, parent, created_by) or False


async def move_department(conn: asyncpg.Connection, name: str, parent: str | None) -> None:
    """Place `name` under `parent` (None: at the top). The caller checked for cycles."""
    await conn.execute("UPDATE departments SET parent = $2 WHERE name = $1", name, parent)


# ---------------------------------------------------------------- users


USER_VIEW = """
    SELECT u.id, u.username, u.display_name, u.department, u.email, u.language, u.created_at, u.disabled_at,
           u.password_hash IS NOT NULL AS has_password,
           coalesce((SELECT array_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = u.id),
                    ARRAY[]::text[]) AS roles
    FROM users u
"""


async def users(conn: asyncpg.Connection, department: str | None, role: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        USER_VIEW + """
        WHERE ($1::text IS NULL OR u.department = $1)
          AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id AND r.role = $2))
        ORDER BY u.username
        """, department, role)


async def user(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(USER_VIEW + " WHERE u.id = $1", user_id)


async def set_roles(conn: asyncpg.Connection, user_id: str, roles: Iterable[str], granted_by: str) -> None:
    """Replace the user's roles (call inside a transaction). `users.role` follows the first."""
    roles = sorted(set(roles), key=ROLES.index)
    await conn.execute("DELETE FROM user_roles WHERE user_id = $1 AND role <> ALL($2::text[])", user_id, roles)
    await conn.executemany(
        "INSERT INTO user_roles (user_id, role, granted_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [(user_id, r, granted_by) for r in roles])
    await conn.execute("UPDATE users SET role = $2 WHERE id = $1", user_id, roles[0])


async def update_user(conn: asyncpg.Connection, user_id: str, changes: dict[str, object]) -> None:
    columns = {"display_name", "department", "email", "language"}
    assert set(changes) <= columns
    for column, value in changes.items():
        await conn.execute(f"UPDATE users SET {column} = $2 WHERE id = $1", user_id, value)


async def disable_user(conn: asyncpg.Connection, user_id: str) -> tuple[int, int]:
    """Disable the account and end every way in: sessions and tokens. Returns (sessions, tokens) revoked."""
    await conn.execute("UPDATE users SET disabled_at = coalesce(disabled_at, now()) WHERE id = $1", user_id)
    sessions = await conn.fetchval(
        "WITH r AS (UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL RETURNING 1) "
        "SELECT count(*) FROM r", user_id)
    tokens = await conn.fetchval(
        "WITH r AS (UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL RETURNING 1) "
        "SELECT count(*) FROM r", user_id)
    return sessions, tokens


async def enable_user(conn: asyncpg.Connection, user_id: str) -> None:
    await conn.execute("UPDATE users SET disabled_at = NULL WHERE id = $1", user_id)
