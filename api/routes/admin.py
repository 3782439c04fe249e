"""Administration: the department tree, users and their roles. Admins only; every change audited.

Admins manage who may do what; they make no business edits (issue 5's access rules keep
them out of cooperations and projects).
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, HTTPException, Query, status

from api.admin_schemas import (
    Department,
    DepartmentIn,
    DepartmentMove,
    Disabled,
    Role,
    RolesIn,
    User,
    UserChange,
    UserIn,
)
from api.audit_log import event_for
from api.errors import conflict, field_error, not_found
from api.services import ActorDep, RequestIdDep, ServicesDep
from db import departments as tree
from db.audit_chain import append
from db.users import create_user, find_user
from domain.audit import Actor
from domain.types import Identifier, Name

router = APIRouter(prefix="/admin", tags=["administration"])


def _admin_only(actor: Actor) -> None:
    if not actor.has_role("admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only an admin may manage departments and users")


async def _audit(conn: asyncpg.Connection, actor: Actor, request_id: str, action: str, entity_type: str,
                 entity_id: str, before: dict | None = None, after: dict | None = None) -> None:
    await append(conn, event_for(actor, request_id=request_id, action=action, entity_type=entity_type,
                                 entity_id=entity_id, before=before or {}, after=after or {}))


def _user_view(row: asyncpg.Record) -> dict:
    return {**dict(row), "roles": list(row["roles"])}


# ---------------------------------------------------------------- departments


@router.get("/departments", response_model=list[Department])
async def list_departments(services: ServicesDep, actor: ActorDep) -> list[dict]:
    """The tree, flattened in path order ("City/Bureau/Office")."""
    _admin_only(actor)
    async with services.pool.acquire() as conn:
        return [dict(r) for r in await tree.departments(conn)]


@router.post("/departments", status_code=status.HTTP_201_CREATED, response_model=Department)
async def create_department(body: DepartmentIn, services: ServicesDep, actor: ActorDep,
                            request_id: RequestIdDep) -> dict:
    _admin_only(actor)
    async with services.pool.acquire() as conn, conn.transaction():
        if body.parent is not None and await tree.department(conn, body.parent) is None:
            raise field_error(["body", "parent"], f"there is no department named {body.parent!r}")
        if not await tree.create_department(conn, body.name, body.parent, actor.name):
            raise conflict(f"a department named {body.name!r} exists already")
        await _audit(conn, actor, request_id, "department.created", "department", body.name,
                     after=body.model_dump())
        return next(dict(r) for r in await tree.departments(conn) if r["name"] == body.name)


@router.patch("/departments/{name}", response_model=Department)
async def move_department(name: Name, body: DepartmentMove, services: ServicesDep, actor: ActorDep,
                          request_id: RequestIdDep) -> dict:
    """Place a department under another (or at the top). A move under itself or its own
    descendants is refused: the tree would become a loop."""
    _admin_only(actor)
    async with services.pool.acquire() as conn, conn.transaction():
        current = await tree.department(conn, name)
        if current is None:
            raise not_found(f"department {name!r}")
        if body.parent is not None:
            if await tree.department(conn, body.parent) is None:
                raise field_error(["body", "parent"], f"there is no department named {body.parent!r}")
            if body.parent in await tree.below(conn, name):
                raise conflict(f"{body.parent!r} is {name!r} or under it: the tree would become a loop")
        await tree.move_department(conn, name, body.parent)
        await _audit(conn, actor, request_id, "department.moved", "department", name,
                     before={"parent": current["parent"]}, after={"parent": body.parent})
        return next(dict(r) for r in await tree.departments(conn) if r["name"] == name)


# ---------------------------------------------------------------- users


@router.get("/users", response_model=list[User])
async def list_users(services: ServicesDep, actor: ActorDep,
                     department: Annotated[Name | None, Query()] = None,
                     role: Annotated[Role | None, Query()] = None) -> list[dict]:
    _admin_only(actor)
    async with services.pool.acquire() as conn:
        return [_user_view(r) for r in await tree.users(conn, department, role)]


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=User)
async def create_account(body: UserIn, services: ServicesDep, actor: ActorDep, request_id: RequestIdDep) -> dict:
    """A new user in a department with one or more roles. The user then signs in with a password
    set by `accord user set-password` (or gets API tokens)."""
    _admin_only(actor)
    async with services.pool.acquire() as conn, conn.transaction():
        if await tree.department(conn, body.department) is None:
            raise field_error(["body", "department"], f"there is no department named {body.department!r}")
        if await find_user(conn, body.username) is not None:
            raise conflict(f"the username {body.username!r} is taken")
        created = await create_user(conn, body.username, body.display_name, body.roles, body.department,
                                    granted_by=actor.name)
        await conn.execute("UPDATE users SET email = $2, language = $3 WHERE id = $1",
                           created.id, body.email, body.language)
        await _audit(conn, actor, request_id, "user.created", "user", created.id, after=body.model_dump())
        row = await tree.user(conn, created.id)
    assert row is not None
    return _user_view(row)


async def _existing(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record:
    row = await tree.user(conn, user_id)
    if row is None:
        raise not_found(f"user {user_id}")
    return row


@router.patch("/users/{user_id}", response_model=User)
async def change_account(user_id: Identifier, body: UserChange, services: ServicesDep, actor: ActorDep,
                         request_id: RequestIdDep) -> dict:
    _admin_only(actor)
    changes = body.model_dump(exclude_unset=True)
    if "department" in changes and changes["department"] is None:
        raise field_error(["body", "department"], "a user belongs to a department")
    async with services.pool.acquire() as conn, conn.transaction():
        before = await _existing(conn, user_id)
        if "department" in changes and await tree.department(conn, changes["department"]) is None:
            raise field_error(["body", "department"], f"there is no department named {changes['department']!r}")
        await tree.update_user(conn, user_id, changes)
        await _audit(conn, actor, request_id, "user.changed", "user", user_id,
                     before={k: before[k] for k in changes}, after=changes)
        row = await tree.user(conn, user_id)
    assert row is not None
    return _user_view(row)


@router.put("/users/{user_id}/roles", response_model=User)
async def set_roles(user_id: Identifier, body: RolesIn, services: ServicesDep, actor: ActorDep,
                    request_id: RequestIdDep) -> dict:
    """Replace the user's roles. An admin cannot take the admin role from themselves, so the
    system never loses its last way to manage users by accident."""
    _admin_only(actor)
    if user_id == actor.user_id and "admin" not in body.roles:
        raise conflict("you cannot remove your own admin role; ask another admin")
    async with services.pool.acquire() as conn, conn.transaction():
        before = await _existing(conn, user_id)
        await tree.set_roles(conn, user_id, body.roles, actor.name)
        row = await tree.user(conn, user_id)
        assert row is not None
        await _audit(conn, actor, request_id, "user.roles_changed", "user", user_id,
                     before={"roles": list(before["roles"])}, after={"roles": list(row["roles"])})
    return _user_view(row)


@router.post("/users/{user_id}/disable", response_model=Disabled)
async def disable(user_id: Identifier, services: ServicesDep, actor: ActorDep, request_id: RequestIdDep) -> dict:
    """Disable an account: it can no longer sign in, its sessions and tokens are revoked at once."""
    _admin_only(actor)
    if user_id == actor.user_id:
        raise conflict("you cannot disable your own account")
    async with services.pool.acquire() as conn, conn.transaction():
        await _existing(conn, user_id)
        sessions, tokens = await tree.disable_user(conn, user_id)
        await _audit(conn, actor, request_id, "user.disabled", "user", user_id,
                     after={"sessions_revoked": sessions, "tokens_revoked": tokens})
        row = await tree.user(conn, user_id)
    assert row is not None
    return {**_user_view(row), "sessions_revoked": sessions, "tokens_revoked": tokens}


@router.post("/users/{user_id}/enable", response_model=User)
async def enable(user_id: Identifier, services: ServicesDep, actor: ActorDep, request_id: RequestIdDep) -> dict:
    _admin_only(actor)
    async with services.pool.acquire() as conn, conn.transaction():
        await _existing(conn, user_id)
        await tree.enable_user(conn, user_id)
        await _audit(conn, actor, request_id, "user.enabled", "user", user_id)
        row = await tree.user(conn, user_id)
    assert row is not None
    return _user_view(row)
