"""`accord reconcile` (runtime/reconcile.py): the read model against the workflows' state.

A whole lifecycle through the API reconciles with no difference. Rows changed behind the
workflows' back by direct SQL (a field changed, a row deleted, a row added) are each reported
with the workflow's and the read model's value, `--repair` rewrites them from the workflow with
one chained audit event per record, and then everything is clean again. The same through the
`accord reconcile` command and its exit codes. Every column of the read-model tables is one
reconciliation compares.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import date
from pathlib import Path

import asyncpg
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from db.audit_chain import event_hash
from runtime.reconcile import reconcile, unknown_columns
from tests.conftest import TASK_QUEUE
from tests.test_api_support import in_delivery, ok

ACCORD = Path(sys.executable).parent / "accord"


async def a_whole_lifecycle(api) -> tuple[str, str]:
    """A cooperation with a negotiation event, both agreements signed, a project with a completed
    milestone and money received: every read-model table has rows."""
    coop = await in_delivery(api.http, projects=1)
    await coop.post("/negotiation-events", {"kind": "meeting", "occurred_on": "2024-02-01", "place": "Mianyang",
                                            "participants": ["Xie Xuhui"], "summary": "terms"})
    (pid,) = coop.project_ids
    project = ok(await api.http.get(f"/projects/{pid}"))
    first = project["milestones"][0]["id"]
    ok(await api.http.post(f"/projects/{pid}/milestones/{first}/complete",
                           json={"completed_on": date.today().isoformat(), "evidence": "licence"}))
    ok(await api.http.post(f"/projects/{pid}/investments",
                           json={"received_on": "2024-07-01", "amount": "1000000.00", "source_note": "tranche 1"}))
    return coop.id, pid


async def test_a_clean_lifecycle_reconciles_with_no_difference(api, pool: asyncpg.Pool, client: Client) -> None:
    cid, pid = await a_whole_lifecycle(api)
    report = await reconcile(pool, client, cooperation_ids=[cid])
    assert (report.cooperations, report.projects) == (1, 1)
    assert report.clean, "\n".join(map(str, report.differences))
    assert report.summary() == "reconciled 1 cooperations and 1 projects: 0 differences in 0 records"


async def test_rows_changed_by_sql_are_reported_then_repaired(api, pool: asyncpg.Pool, client: Client) -> None:
    cid, pid = await a_whole_lifecycle(api)
    title = await pool.fetchval("SELECT title FROM cooperations WHERE id = $1", cid)
    done = await pool.fetchval("SELECT id FROM milestones WHERE project_id = $1 AND status = 'done'", pid)
    entry = await pool.fetchval("SELECT id FROM investments WHERE project_id = $1", pid)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE cooperations SET title = 'Altered by hand' WHERE id = $1", cid)
        await conn.execute("UPDATE milestones SET status = 'open', completed_on = NULL WHERE project_id = $1 "
                           "AND id = $2", pid, done)
        await conn.execute("DELETE FROM investments WHERE project_id = $1", pid)
        await conn.execute("UPDATE projects SET realized_investment = 0 WHERE id = $1", pid)
        await conn.execute("INSERT INTO negotiation_events (cooperation_id, id, kind, occurred_on, participants, "
                           "summary, recorded_by) VALUES ($1, 'n-forged', 'meeting', '2024-01-01', '{}', 'forged', "
                           "'nobody')", cid)

    report = await reconcile(pool, client, cooperation_ids=[cid])
    found = {(d.record, d.row, d.field): (d.workflow, d.read_model) for d in report.differences}
    assert found == {
        (f"cooperation {cid}", f"cooperations ({cid})", "title"): (title, "Altered by hand"),
        (f"cooperation {cid}", f"negotiation_events ({cid}, n-forged)", "(row)"): ("missing", "present"),
        (f"project {pid}", f"milestones ({pid}, {done})", "status"): ("done", "open"),
        (f"project {pid}", f"milestones ({pid}, {done})", "completed_on"): (date.today(), None),
        (f"project {pid}", f"investments ({pid}, {entry})", "(row)"): ("present", "missing"),
        (f"project {pid}", f"projects ({pid})", "realized_investment"):
            (found[(f"project {pid}", f"projects ({pid})", "realized_investment")][0], 0),
    }, "\n".join(map(str, report.differences))
    assert "Altered by hand" in "\n".join(map(str, report.differences))

    repaired = await reconcile(pool, client, cooperation_ids=[cid], repair=True)
    assert sorted(repaired.repaired) == sorted([f"cooperation {cid}", f"project {pid}"])
    after = await reconcile(pool, client, cooperation_ids=[cid])
    assert after.clean, "\n".join(map(str, after.differences))
    assert await pool.fetchval("SELECT title FROM cooperations WHERE id = $1", cid) == title
    again = await reconcile(pool, client, cooperation_ids=[cid], repair=True)
    assert again.clean and not again.repaired, "a second repair found something"

    # One audit event per repaired record, chained like every other; the workflow's numbering untouched.
    events = await pool.fetch("SELECT * FROM audit_events WHERE action = 'readmodel.repaired' "
                              "AND (cooperation_id = $1 OR project_id = $2) ORDER BY seq", cid, pid)
    assert [(e["entity_type"], e["entity_id"], e["actor_id"], e["event_seq"]) for e in events] == [
        ("cooperation", cid, "system", None), ("project", pid, "system", None)]
    assert events[0]["before"][f"cooperations ({cid}) title"] == "Altered by hand"
    assert events[0]["after"][f"cooperations ({cid}) title"] == title
    for event in events:
        row = dict(event)
        assert event_hash(row) == bytes(row["hash"]), "the repair event does not hash as the chain does"
        previous = await pool.fetchval("SELECT hash FROM audit_events WHERE seq = $1", row["seq"] - 1)
        assert bytes(previous) == bytes(row["prev_hash"]), "the repair event is not linked to its predecessor"


async def test_the_command_reports_repairs_and_exits_by_the_result(api, pool: asyncpg.Pool, pg_url: str,
                                                                    dev_env: WorkflowEnvironment) -> None:
    cid, pid = await a_whole_lifecycle(api)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")},
           "ACCORD_DATABASE_URL": pg_url, "ACCORD_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
           "ACCORD_TASK_QUEUE": TASK_QUEUE}

    async def run(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            str(ACCORD), "reconcile", "--cooperation", cid, *args, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(process.communicate(), 120)
        return process.returncode or 0, out.decode()

    code, out = await run()
    assert (code, out.strip()) == (0, "reconciled 1 cooperations and 1 projects: 0 differences in 0 records"), out
    await pool.execute("UPDATE projects SET status = 'cancelled' WHERE id = $1", pid)
    code, out = await run()
    assert code == 1, out
    assert f"project {pid}: projects ({pid}) status: workflow \"active\", read model \"cancelled\"" in out, out
    code, out = await run("--repair")
    assert code == 0, out
    assert "repaired 1 records" in out and "after the repair: reconciled 1 cooperations and 1 projects: " \
                                          "0 differences in 0 records" in out, out
    assert await pool.fetchval("SELECT status FROM projects WHERE id = $1", pid) == "active"


async def test_every_read_model_column_is_reconciled(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await unknown_columns(conn) == {}, "add these columns to runtime/reconcile.py (builders, KNOWN_COLUMNS)"
