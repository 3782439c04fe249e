"""Administration over HTTP: the department tree, users and roles; admins only, every change audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest_asyncio

from db.users import create_user, issue_token
from tests.conftest import ApiUser, new_id


@asynccontextmanager
async def client_as(app, pool: asyncpg.Pool, roles: list[str], department: str | None = None
                    ) -> AsyncIterator[ApiUser]:
    async with pool.acquire() as conn:
        user = await create_user(conn, new_id("u-"), f"User {new_id()}", roles, department)
        token = await issue_token(conn, user.id, "tests")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord.test/api/v1",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        yield ApiUser(token=token, user_id=user.id, http=http)


@pytest_asyncio.fixture(loop_scope="session")
async def admin(app, pool: asyncpg.Pool) -> AsyncIterator[ApiUser]:
    async with client_as(app, pool, ["admin"]) as user:
        yield user


async def audit_actions(pool: asyncpg.Pool, entity_id: str) -> list[str]:
    rows = await pool.fetch("SELECT action FROM audit_events WHERE entity_id = $1 ORDER BY seq", entity_id)
    return [r["action"] for r in rows]


async def test_the_department_tree_is_built_and_moved_without_loops(admin: ApiUser, pool: asyncpg.Pool) -> None:
    city, bureau, office = (f"{n} {new_id()}" for n in ("City", "Bureau", "Office"))
    assert (await admin.http.post("/admin/departments", json={"name": city})).status_code == 201
    made = await admin.http.post("/admin/departments", json={"name": bureau, "parent": city})
    assert made.status_code == 201 and made.json()["path"] == f"{city}/{bureau}"
    office_made = await admin.http.post("/admin/departments", json={"name": office, "parent": bureau})
    assert office_made.json()["depth"] == 2

    again = await admin.http.post("/admin/departments", json={"name": city})
    assert again.status_code == 409
    orphan = await admin.http.post("/admin/departments", json={"name": new_id("x"), "parent": "no such"})
    assert orphan.status_code == 422 and orphan.json()["detail"][0]["loc"] == ["body", "parent"]

    loop = await admin.http.patch(f"/admin/departments/{city}", json={"parent": office})
    assert loop.status_code == 409 and "loop" in loop.json()["detail"]
    itself = await admin.http.patch(f"/admin/departments/{city}", json={"parent": city})
    assert itself.status_code == 409
    moved = await admin.http.patch(f"/admin/departments/{office}", json={"parent": city})
    assert moved.status_code == 200 and moved.json()["path"] == f"{city}/{office}"
    assert (await admin.http.patch("/admin/departments/nowhere", json={"parent": None})).status_code == 404

    paths = {d["name"]: d["path"] for d in (await admin.http.get("/admin/departments")).json()}
    assert paths[bureau] == f"{city}/{bureau}" and paths[office] == f"{city}/{office}"
    assert await audit_actions(pool, office) == ["department.created", "department.moved"]


async def test_users_are_created_with_roles_changed_and_disabled(app, admin: ApiUser, pool: asyncpg.Pool) -> None:
    department = f"Bureau {new_id()}"
    await admin.http.post("/admin/departments", json={"name": department})
    username = new_id("wang-")
    created = await admin.http.post("/admin/users", json={
        "username": username, "display_name": "王伟 Wang Wei", "department": department,
        "roles": ["liaison_officer", "reviewer"], "email": "wang@example.gov.cn", "language": "en"})
    assert created.status_code == 201
    user = created.json()
    assert user["roles"] == ["liaison_officer", "reviewer"] and user["has_password"] is False
    taken = await admin.http.post("/admin/users", json={
        "username": username, "display_name": "x", "department": department, "roles": ["leader"]})
    assert taken.status_code == 409
    nowhere = await admin.http.post("/admin/users", json={
        "username": new_id("u"), "display_name": "x", "department": "no such bureau", "roles": ["leader"]})
    assert nowhere.status_code == 422 and nowhere.json()["detail"][0]["loc"] == ["body", "department"]
    for bad in ({"roles": []}, {"roles": ["mayor"]}, {"email": "not an address"}, {"colour": "red"}):
        body = {"username": new_id("u"), "display_name": "x", "department": department,
                "roles": ["leader"], **bad}
        assert (await admin.http.post("/admin/users", json=body)).status_code == 422

    roles = await admin.http.put(f"/admin/users/{user['id']}/roles", json={"roles": ["leader"]})
    assert roles.status_code == 200 and roles.json()["roles"] == ["leader"]
    assert await pool.fetchval("SELECT role FROM users WHERE id = $1", user["id"]) == "leader"
    changed = await admin.http.patch(f"/admin/users/{user['id']}", json={"display_name": "Wang Wei"})
    assert changed.json()["display_name"] == "Wang Wei" and changed.json()["email"] == "wang@example.gov.cn"
    listed = await admin.http.get("/admin/users", params={"department": department, "role": "leader"})
    assert [u["username"] for u in listed.json()] == [username]

    # Disabling ends every way in at once.
    async with pool.acquire() as conn:
        token = await issue_token(conn, user["id"], "automation")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord.test/api/v1",
                                 headers={"Authorization": f"Bearer {token}"}) as theirs:
        assert (await theirs.get("/me")).status_code == 200
        disabled = await admin.http.post(f"/admin/users/{user['id']}/disable")
        assert disabled.status_code == 200 and disabled.json()["tokens_revoked"] == 1
        assert (await theirs.get("/me")).status_code == 401
    enabled = await admin.http.post(f"/admin/users/{user['id']}/enable")
    assert enabled.json()["disabled_at"] is None
    assert await audit_actions(pool, user["id"]) == [
        "user.created", "user.roles_changed", "user.changed", "user.disabled", "user.enabled"]
    roles_event = await pool.fetchrow("SELECT before, after FROM audit_events WHERE entity_id = $1 "
                                      "AND action = 'user.roles_changed'", user["id"])
    assert roles_event["before"] == {"roles": ["liaison_officer", "reviewer"]}
    assert roles_event["after"] == {"roles": ["leader"]}


async def test_an_admin_cannot_lock_themselves_out(admin: ApiUser) -> None:
    drop = await admin.http.put(f"/admin/users/{admin.user_id}/roles", json={"roles": ["auditor"]})
    assert drop.status_code == 409
    assert (await admin.http.post(f"/admin/users/{admin.user_id}/disable")).status_code == 409


async def test_only_admins_administer(app, pool: asyncpg.Pool) -> None:
    for roles in (["liaison_officer"], ["leader"], ["auditor"], ["reviewer", "leader"]):
        async with client_as(app, pool, roles) as someone:
            answers = [
                await someone.http.get("/admin/departments"),
                await someone.http.post("/admin/departments", json={"name": new_id("d")}),
                await someone.http.get("/admin/users"),
                await someone.http.post("/admin/users", json={
                    "username": new_id("u"), "display_name": "x", "department": "d", "roles": ["admin"]}),
                await someone.http.put(f"/admin/users/{someone.user_id}/roles", json={"roles": ["admin"]}),
            ]
            assert {a.status_code for a in answers} == {403}
            assert await pool.fetchval("SELECT array_agg(role) FROM user_roles WHERE user_id = $1",
                                       someone.user_id) == roles
