"""Row-level security, checked by direct SQL as the role the API reads with (`accord_app`).

The API sets `accord.view` for a person's reads (migration 005); here the same setting is
made by hand, so the database's own answer is tested, whatever the API's filters do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from tests.conftest import API_DEPARTMENT, new_id, user_client
from tests.test_api_support import in_delivery, open_cooperation


@pytest_asyncio.fixture(loop_scope="session")
async def as_app(pg_url: str, pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection as `accord_app` (the embedded server trusts its local socket)."""
    await pool.execute("ALTER ROLE accord_app LOGIN")
    conn = await asyncpg.connect(pg_url.replace("postgresql://postgres:@", "postgresql://accord_app:@", 1))
    try:
        yield conn
    finally:
        await conn.close()


async def seen(conn: asyncpg.Connection, view: str | None, sql: str, *args: object) -> set[str]:
    async with conn.transaction():
        if view is not None:
            await conn.execute("SELECT set_config('accord.view', $1, true)", view)
        return {r[0] for r in await conn.fetch(sql, *args)}


async def test_rows_of_other_departments_are_invisible_to_the_api_role(app, api, pool: asyncpg.Pool,
                                                                       as_app: asyncpg.Connection) -> None:
    home = await in_delivery(api.http, projects=1)
    await home.post("/negotiation-events", {"kind": "meeting", "occurred_on": "2024-01-20", "place": "City Hall",
                                            "participants": ["Xie Xuhui"], "summary": "First round"})
    other_department = f"RLS Bureau {new_id()}"
    async with user_client(app, pool, ["liaison_officer"], other_department) as other:
        away = await open_cooperation(other.http, department=other_department)
    pid = home.project_ids[0]
    park = await pool.fetchval("SELECT responsible_department FROM projects WHERE id = $1", pid)
    both = {home.id, away.id}
    cooperations = "SELECT id FROM cooperations WHERE id = ANY($1)"

    # The role's default and '*' see everything (the worker's reads); an empty view sees nothing.
    assert await seen(as_app, None, cooperations, list(both)) == both
    assert await seen(as_app, "*", cooperations, list(both)) == both
    assert await seen(as_app, "", cooperations, list(both)) == set()
    # A department's view sees its own rows, also with several departments listed.
    assert await seen(as_app, API_DEPARTMENT, cooperations, list(both)) == {home.id}
    assert await seen(as_app, other_department, cooperations, list(both)) == {away.id}
    assert await seen(as_app, f"{API_DEPARTMENT}\n{other_department}", cooperations, list(both)) == both

    # Children follow their cooperation or project.
    for table in ("negotiation_events", "agreements", "signatures"):
        sql = f"SELECT DISTINCT cooperation_id FROM {table} WHERE cooperation_id = ANY($1)"
        assert await seen(as_app, other_department, sql, [home.id]) == set(), table
        assert await seen(as_app, API_DEPARTMENT, sql, [home.id]) == {home.id}, table
    for table in ("projects", "milestones"):
        key = "id" if table == "projects" else "project_id"
        sql = f"SELECT DISTINCT {key} FROM {table} WHERE {key} = $1"
        assert await seen(as_app, other_department, sql, pid) == set(), table
        assert await seen(as_app, API_DEPARTMENT, sql, pid) == {pid}, table
        # The department running the project sees it, though not the cooperation it belongs to.
        assert await seen(as_app, park, sql, pid) == {pid}, table
    assert await seen(as_app, park, cooperations, [home.id]) == set()

    # The owner (migrations, operators) is not subject to the policies.
    assert await pool.fetchval("SELECT count(*) FROM cooperations WHERE id = ANY($1)", list(both)) == 2


async def test_writes_read_through_the_view_too(as_app: asyncpg.Connection, api) -> None:
    """The write policies let every write through, but an UPDATE's WHERE reads rows, and that reading
    is subject to the view: the worker, which moves the read model forward, keeps the role's default."""
    home = await open_cooperation(api.http)
    async with as_app.transaction():
        await as_app.execute("SELECT set_config('accord.view', '', true)")
        status = await as_app.execute("UPDATE cooperations SET description = description WHERE id = $1", home.id)
    # With nothing visible the UPDATE's WHERE finds no row (SELECT policies apply to it) ...
    assert status == "UPDATE 0"
    async with as_app.transaction():
        status = await as_app.execute("UPDATE cooperations SET description = description WHERE id = $1", home.id)
    # ... and with the role's default view ('*', the worker's) it does.
    assert status == "UPDATE 1"


async def test_the_api_reads_through_row_security_as_make_run_does(app, api, pg_url: str, pool: asyncpg.Pool,
                                                                   client) -> None:
    """`make run` reads as accord_app: the scoped reads (lists and details) work under the policies."""
    import httpx

    from api.app import create_app
    from api.services import Services
    from db.pool import create_pool
    from tests.conftest import AUDIT_KEY, TASK_QUEUE

    home = await in_delivery(api.http, projects=1)
    await pool.execute("ALTER ROLE accord_app LOGIN")
    app_pool = await create_pool(pg_url.replace("postgresql://postgres:@", "postgresql://accord_app:@", 1),
                                 max_size=2)
    try:
        as_app = create_app(Services(pool=app_pool, client=client, task_queue=TASK_QUEUE, audit_key=AUDIT_KEY))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=as_app), base_url="http://accord.test/api/v1",
                                     headers={"Authorization": f"Bearer {api.token}"}) as http:
            listed = (await http.get("/cooperations", params={"limit": 200})).json()["items"]
            assert home.id in {c["id"] for c in listed}
            detail = await http.get(f"/cooperations/{home.id}")
            assert detail.status_code == 200 and detail.json()["projects"][0]["milestones"]
            project = await http.get(f"/projects/{home.project_ids[0]}")
            assert project.status_code == 200 and project.json()["milestones"]
    finally:
        await app_pool.close()
