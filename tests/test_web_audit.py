"""The audit pages: search by the API's filters, CSV export, both recorded; auditors only."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

from db.audit_chain import AuditEvent, append
from db.audit_queries import COLUMNS
from domain.audit import OFFICE_TZ
from tests.conftest import API_DEPARTMENT, new_id
from tests.web_support import signed_in


async def recorded_event(pool, entity_id: str) -> None:
    """An event of a department's change, with Chinese text, as the admin routes record it."""
    async with pool.acquire() as conn, conn.transaction():
        await append(conn, AuditEvent(
            actor_id="admin-test", actor_name="管理员 Admin", actor_role="admin", auth_method="session",
            action="department.moved", entity_type="department", entity_id=entity_id,
            before={"parent": "市政府"}, after={"parent": "高新区管委会"}))


async def reads_of(pool, user_id: str, action: str) -> list[dict]:
    rows = await pool.fetch("SELECT after FROM audit_events WHERE actor_id = $1 AND action = $2 ORDER BY seq",
                            user_id, action)
    return [r["after"] for r in rows]


async def test_an_auditor_finds_an_event_by_filter_and_the_search_is_recorded(app, pool):
    entity_id = new_id("dept-")
    await recorded_event(pool, entity_id)
    today = datetime.now(OFFICE_TZ).date()
    async with signed_in(app, pool, ["auditor"], None) as me:
        page = await me.get(f"/audit?entity_type=department&entity_id={entity_id}"
                            f"&since={today}&until={today}&outcome=succeeded")
        assert page.status_code == 200
        assert entity_id in page.text and "管理员 Admin" in page.text
        assert "市政府 → 高新区管委会" in page.text
        assert "department.moved" in page.text

        tomorrow = today + timedelta(days=1)
        later = await me.get(f"/audit?entity_id={entity_id}&since={tomorrow}")
        assert later.status_code == 200 and "管理员 Admin" not in later.text
    searches = await reads_of(pool, me.user_id, "audit.searched")
    assert len(searches) == 2
    assert searches[0]["entity_id"] == entity_id and searches[0]["outcome"] == "succeeded"
    assert str(today) in searches[0]["since"] and "+08:00" in searches[0]["since"]


async def test_the_csv_export_has_the_header_and_rows_and_is_recorded(app, pool):
    entity_id = new_id("dept-")
    await recorded_event(pool, entity_id)
    async with signed_in(app, pool, ["auditor"], None) as me:
        answer = await me.get(f"/audit/export.csv?entity_id={entity_id}")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        disposition = answer.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="accord-audit-') and disposition.endswith('.csv"')
        assert answer.content.startswith("\ufeff".encode())
        rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
        assert rows[0] == list(COLUMNS)
        assert len(rows) == 2
        row = dict(zip(rows[0], rows[1], strict=True))
        assert row["entity_id"] == entity_id and row["actor_name"] == "管理员 Admin"
        assert "高新区管委会" in row["after"]
    exports = await reads_of(pool, me.user_id, "audit.exported")
    assert exports == [{"entity_id": entity_id, "format": "csv"}]


async def test_a_bad_filter_keeps_the_typed_values_and_says_why(app, pool):
    async with signed_in(app, pool, ["auditor"], None, language="en") as me:
        page = await me.get("/audit?since=2026-05-10&until=2026-05-01&entity_id=bad id&q=博奥")
        assert page.status_code == 422
        assert "The last day must not be before the first day." not in page.text  # the id is checked first
        assert "Letters, digits, dots, dashes and underscores only." in page.text
        assert 'value="bad id"' in page.text and 'value="博奥"' in page.text
        page = await me.get("/audit?since=2026-05-10&until=2026-05-01")
        assert page.status_code == 422 and "The last day must not be before the first day." in page.text
        assert 'value="2026-05-01"' in page.text
        export = await me.get("/audit/export.csv?since=not-a-day")
        assert export.status_code == 422 and "Enter a date as YYYY-MM-DD." in export.text
    assert await reads_of(pool, me.user_id, "audit.searched") == []
    assert await reads_of(pool, me.user_id, "audit.exported") == []


async def test_pages_follow_the_cursor(app, pool):
    entity_type = new_id("kind-")
    async with pool.acquire() as conn, conn.transaction():
        for i in range(55):
            await append(conn, AuditEvent(actor_id="t", actor_name="Tester", actor_role="admin",
                                          auth_method="session", action="test.paged", entity_type=entity_type,
                                          entity_id=f"record-{i:02d}"))
    async with signed_in(app, pool, ["auditor"], None, language="en") as me:
        first = await me.get(f"/audit?entity_type={entity_type}")
        assert "record-54" in first.text and "record-04" not in first.text
        older = first.text.split("cursor=")[1].split('"')[0]
        second = await me.get(f"/audit?entity_type={entity_type}&cursor={older}")
        assert "record-04" in second.text and "record-54" not in second.text
        assert "Newest events" in second.text
        ignored = await me.get(f"/audit?entity_type={entity_type}&cursor=-5")
        assert ignored.status_code == 200 and "record-54" in ignored.text


async def test_someone_who_is_not_an_auditor_gets_a_403_page_and_the_attempt_is_recorded(app, pool):
    async with signed_in(app, pool, ["liaison_officer", "leader", "admin"], API_DEPARTMENT) as me:
        page = await me.get("/audit")
        assert page.status_code == 403 and "只有审计人员" in page.text
        export = await me.get("/audit/export.csv")
        assert export.status_code == 403 and "text/html" in export.headers["content-type"]
    refused = await pool.fetch("SELECT action, outcome FROM audit_events WHERE actor_id = $1 AND outcome = 'refused'",
                               me.user_id)
    assert sorted(r["action"] for r in refused) == ["api:GET /audit", "api:GET /audit/export.csv"]
    assert await reads_of(pool, me.user_id, "audit.searched") == []
