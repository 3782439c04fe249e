"""The project page through its forms: move a due date (reason required, the reminder schedule
follows), the what-if check that changes nothing, complete a milestone, record money in 万元
exactly, suspend and resume, and a lost race on a due date said plainly."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from tests.conftest import API_DEPARTMENT
from tests.test_api_support import in_delivery
from tests.web_support import signed_in


@pytest.fixture
async def officer(app, pool):
    async with signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT, "王联络") as me:
        yield me


async def project_of(api) -> tuple[str, dict]:
    coop = await in_delivery(api.http, projects=1)
    cooperation = await coop.get()
    project = cooperation["projects"][0]
    return project["id"], project


async def test_the_page_shows_milestones_schedule_and_investment(officer, api):
    project_id, project = await project_of(api)
    page = await officer.get(f"/projects/{project_id}")
    assert page.status_code == 200
    assert "<svg" in page.text and "公司注册" in page.text  # the template milestone, in the user's language
    assert "提醒计划" in page.text and "距截止日还有" in page.text  # the schedule, worded as the notices are


async def test_moving_a_due_date_needs_a_reason_and_moves_the_reminders(officer, api, pool):
    project_id, project = await project_of(api)
    milestone = project["milestones"][0]
    page = await officer.get(f"/projects/{project_id}")
    action = f"/projects/{project_id}/milestones/{milestone['id']}/move"
    new_date = (date.fromisoformat(milestone["due_date"]) + timedelta(days=45)).isoformat()
    refused = await officer.submit(page, action, {"new_due_date": new_date, "reason": ""})
    assert refused.status_code == 422 and f'value="{new_date}"' in refused.text and 'id="e-reason"' in refused.text
    moved = await officer.submit(refused, action, {"new_due_date": new_date, "reason": "用地手续延后"})
    assert moved.status_code == 303
    async with pool.acquire() as conn:
        due = await conn.fetchval("SELECT due_date FROM milestones WHERE project_id = $1 AND id = $2",
                                  project_id, milestone["id"])
    assert due.isoformat() == new_date
    page = await officer.get(f"/projects/{project_id}")
    assert "到期日已调整" in page.text and "用地手续延后" in page.text


async def test_what_if_changes_nothing(officer, api, pool):
    project_id, project = await project_of(api)
    milestone = project["milestones"][1]
    later = (date.fromisoformat(milestone["due_date"]) + timedelta(days=60)).isoformat()
    page = await officer.get(f"/projects/{project_id}", params={"milestone": milestone["id"], "due_date": later})
    assert page.status_code == 200 and "如果调整" in page.text
    bad = await officer.get(f"/projects/{project_id}", params={"milestone": milestone["id"], "due_date": "2026-02-30"})
    assert bad.status_code == 200 and "YYYY-MM-DD" in bad.text
    async with pool.acquire() as conn:
        due = await conn.fetchval("SELECT due_date FROM milestones WHERE project_id = $1 AND id = $2",
                                  project_id, milestone["id"])
    assert due.isoformat() == milestone["due_date"]


async def test_money_in_wan_is_stored_exactly_and_too_many_decimals_are_refused(officer, api, pool):
    project_id, _ = await project_of(api)
    page = await officer.get(f"/projects/{project_id}")
    action = f"/projects/{project_id}/investments"
    refused = await officer.submit(page, action, {"amount": "1.2345678", "amount_unit": "wan",
                                                  "received_on": "2026-06-01", "source_note": "银行到账凭证"})
    assert refused.status_code == 422 and 'value="1.2345678"' in refused.text and "两位小数" in refused.text
    saved = await officer.submit(refused, action, {"amount": "2,500.5", "amount_unit": "wan",
                                                   "received_on": "2026-06-01", "source_note": "银行到账凭证"})
    assert saved.status_code == 303
    async with pool.acquire() as conn:
        amount = await conn.fetchval("SELECT sum(amount) FROM investments WHERE project_id = $1", project_id)
    assert amount == Decimal("25005000.00")
    page = await officer.get(f"/projects/{project_id}")
    assert "25,005,000.00 元" in page.text and "2,500.50 万元" in page.text


async def test_complete_suspend_resume(officer, api, pool):
    project_id, project = await project_of(api)
    milestone = project["milestones"][0]
    page = await officer.get(f"/projects/{project_id}")
    done = await officer.submit(page, f"/projects/{project_id}/milestones/{milestone['id']}/complete",
                                {"completed_on": "2026-06-10", "evidence": "营业执照 91510700MA"})
    assert done.status_code == 303
    page = await officer.get(f"/projects/{project_id}")
    assert "营业执照 91510700MA" in page.text
    suspended = await officer.submit(page, f"/projects/{project_id}/status", {"change": "suspend", "reason": "企业融资延期"})
    assert suspended.status_code == 303
    page = await officer.get(f"/projects/{project_id}")
    assert "已暂停" in page.text
    cancel = await officer.submit(page, f"/projects/{project_id}/status", {"change": "cancel", "reason": "不再推进"})
    assert cancel.status_code == 422  # no confirmation ticked
    resumed = await officer.submit(cancel, f"/projects/{project_id}/status", {"change": "resume", "reason": ""})
    assert resumed.status_code == 303
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM projects WHERE id = $1", project_id) == "active"


async def test_a_due_date_moved_by_a_colleague_meanwhile_is_a_lost_race(officer, api, pool):
    project_id, project = await project_of(api)
    first, second = project["milestones"][0], project["milestones"][1]
    mine = await officer.get(f"/projects/{project_id}")
    theirs = await officer.get(f"/projects/{project_id}")
    later = (date.fromisoformat(second["due_date"]) + timedelta(days=10)).isoformat()
    assert (await officer.submit(theirs, f"/projects/{project_id}/milestones/{second['id']}/move",
                                 {"new_due_date": later, "reason": "同事调整"})).status_code == 303
    lost = await officer.submit(mine, f"/projects/{project_id}/milestones/{first['id']}/move",
                                {"new_due_date": later, "reason": "我的调整"})
    assert lost.status_code == 412 and "同事已修改" in lost.text
    assert re.search(r"同事调整", lost.text)  # the page shows the record as it is now
