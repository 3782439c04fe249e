"""Every filter of GET /cooperations and GET /projects is served by an index at a realistic size.

A database of its own on the session's PostgreSQL, loaded with 20,000 generated cooperations
(bench/reads.py: the shapes the workflows write, with their projects and milestones) and
analyzed. The exact SQL the API sends (db/queries.py, captured from the functions themselves) is
EXPLAINed as `accord_app` inside the view a liaison officer of one department gets: no plan reads
a list table sequentially, and the table the list is about is reached through an index. Inside
the view of someone who sees every department (an auditor) the same must hold with sequential
scans priced out (see `explain`).
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from bench import actions, reads
from db import queries
from db.migrate import migrate
from db.pool import connect

SIZE = 20_000
LIST_TABLES = {"cooperations", "projects", "milestones", "investments"}


class Recorder:
    """Stands in for a connection: keeps every statement and its arguments, answers nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list:
        self.calls.append((sql, args))
        return []


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def explain_db(pg_url: str):
    name = f"accord_explain_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
    finally:
        await admin.close()
    base, _, options = pg_url.partition("?")
    owner_url = f"{base.rsplit('/', 1)[0]}/{name}?{options}"
    conn = await connect(owner_url)
    try:
        await migrate(conn)
        await conn.execute("ALTER ROLE accord_app LOGIN")
    finally:
        await conn.close()
    await reads.load_step(owner_url, 0, SIZE, actions.DEPARTMENT)
    owner = await asyncpg.connect(owner_url)
    try:
        samples = {
            "partner": await owner.fetchval(
                "SELECT partner_organization_id FROM cooperations WHERE department = $1 LIMIT 1", actions.DEPARTMENT),
            "officer": await owner.fetchval(
                "SELECT liaison_officer FROM cooperations WHERE department = $1 LIMIT 1", actions.DEPARTMENT),
            "cooperation": await owner.fetchval("SELECT cooperation_id FROM projects LIMIT 1"),
            "cursor": await owner.fetchrow("SELECT created_at, id FROM cooperations ORDER BY created_at DESC "
                                           "OFFSET 500 LIMIT 1"),
        }
    finally:
        await owner.close()
    app = await connect(owner_url.replace("postgresql://postgres:@", "postgresql://accord_app:@", 1))
    yield app, samples
    await app.close()
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


async def explain(conn: asyncpg.Connection, departments: list[str] | None, sql: str, args: tuple,
                  every_department: bool = False) -> list[dict]:
    async with conn.transaction():
        await queries.limit_view(conn, departments)
        # A custom plan for these values, as the pool's plan_cache_mode = force_custom_plan gives.
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        if every_department:
            # Seeing every department, a filter matching a third of the rows (a stage) or none at
            # all may fairly be answered by a sequential scan and a top-N sort at this size: the
            # row-security qual is estimated to pass 0.5 % of the rows, so the planner expects to
            # read far. With sequential scans priced out, an index must serve each filter.
            await conn.execute("SET LOCAL enable_seqscan = off")
        raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    document = json.loads(raw) if isinstance(raw, str) else raw
    return plan_nodes(document[0]["Plan"])


def check(nodes: list[dict], about: str, what: str, index: str | None = None) -> None:
    sequential = [n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"
                  and n.get("Relation Name") in LIST_TABLES]
    assert not sequential, f"{what}: sequential scan of {sequential}"
    # Index Scan, Index Only Scan, or a Bitmap Heap Scan over its Bitmap Index Scans.
    indexed = {n.get("Relation Name") for n in nodes if "Index" in n["Node Type"] or n["Node Type"] == "Bitmap Heap Scan"}
    assert about in indexed, f"{what}: {about} not read through an index ({sorted(filter(None, indexed))})"
    if index is not None:  # the filter's own index (migration 010), not a scan of the department's rows
        names = {n.get("Index Name") for n in nodes}
        assert index in names, f"{what}: {index} not used ({sorted(filter(None, names))})"


OWN_INDEX = {"liaison_officer": "cooperations_officer", "partner_organization_id": "cooperations_partner",
             "projects status (rare)": "projects_status", "projects cooperation_id": "projects_cooperation"}
VIEWS = {"one department": [actions.DEPARTMENT], "every department": None}


def cooperation_filters(s: dict) -> dict[str, dict]:
    return {
        "no filter": {},
        "stage": {"stage": "in_delivery"},
        "partner_organization_id": {"partner_organization_id": s["partner"]},
        "liaison_officer": {"liaison_officer": s["officer"]},
        "overdue=true": {"overdue": True},
        "overdue=false": {"overdue": False},
        "q (Chinese)": {"q": "知识产权"},
        "q (rare)": {"q": "cooperation 4242 "},
    }


@pytest.mark.parametrize("view", VIEWS)
async def test_each_cooperation_list_filter_uses_an_index(explain_db, view):
    conn, samples = explain_db
    departments = VIEWS[view]
    cursor = queries.encode_cursor(samples["cursor"]["created_at"], samples["cursor"]["id"])
    for name, fields in cooperation_filters(samples).items():
        for page in (None, cursor):
            recorder = Recorder()
            await queries.list_cooperations(recorder, queries.CooperationFilter(**fields, departments=departments),
                                            date.today(), 50, page)
            ((sql, args),) = recorder.calls
            check(await explain(conn, departments, sql, args, every_department=departments is None),
                  "cooperations", f"GET /cooperations {name}{' (next page)' if page else ''}, {view}",
                  OWN_INDEX.get(name))


@pytest.mark.parametrize("view", VIEWS)
async def test_each_project_list_filter_uses_an_index(explain_db, view):
    conn, samples = explain_db
    departments = VIEWS[view]
    for name, fields in {"no filter": {}, "cooperation_id": {"cooperation_id": samples["cooperation"]},
                         "status": {"status": "active"}, "status (rare)": {"status": "suspended"}}.items():
        recorder = Recorder()
        await queries.projects(recorder, date.today(), departments=departments, **fields)
        project_sql, *children = recorder.calls
        check(await explain(conn, departments, *project_sql, every_department=departments is None),
              "projects", f"GET /projects {name}, {view}", OWN_INDEX.get(f"projects {name}"))
        # Then the page's milestones and investments, by project id.
        for (sql, _), table in zip(children, ("milestones", "investments"), strict=True):
            check(await explain(conn, departments, sql, (["p1", "p2"],)), table, f"GET /projects {name}: {table}")
