"""The cooperation pages through their forms, as staff use them: open a cooperation, record the
inspection visit, draft, review and sign both agreements, create a project; plus what forms owe
the user: typed values kept on an error, one effect per form, a lost race said plainly,
another department's page unreachable. (The same flow in a real browser: tests/browser/.)"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from tests.conftest import API_DEPARTMENT, LEGAL_DEPARTMENT
from tests.test_api_support import world
from tests.web_support import PageClient, signed_in


def created_id(answer) -> str:
    assert answer.status_code == 303, answer.text[:2000]
    found = re.fullmatch(r"/cooperations/([0-9a-f]+)", answer.headers["location"])
    assert found is not None, answer.headers["location"]
    return found.group(1)


async def follow(me: PageClient, answer):
    assert answer.status_code == 303, answer.text[:3000]
    return await me.get(answer.headers["location"].split("#")[0])


async def open_cooperation(me: PageClient, w, title: str = "绵阳市人民政府与博奥中恒战略合作") -> str:
    page = await me.get("/cooperations/new")
    assert page.status_code == 200
    answer = await me.submit(page, "/cooperations/new", {
        "title": title, "lead_organization_id": w.gov_id, "partner_organization_id": w.company_id,
        "areas": "数字经济、智能制造", "liaison_officer": "王联络", "started_on": "2026-03-01",
        "target_signing_date": "2026-06-30", "description": ""})
    return created_id(answer)


async def agreement_ids(pool, cooperation_id: str) -> dict[str, str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT kind, id FROM agreements WHERE cooperation_id = $1", cooperation_id)
    return {r["kind"]: r["id"] for r in rows}


async def review_and_sign(officer: PageClient, reviewer: PageClient, leader: PageClient, cooperation_id: str,
                          agreement_id: str, parties: list[str]) -> None:
    page = await officer.get(f"/cooperations/{cooperation_id}")
    await follow(officer, await officer.submit(page, f"/cooperations/{cooperation_id}/agreements/{agreement_id}/submit", {}))
    for desk, step in ((reviewer, "legal_review"), (leader, "leadership_approval")):
        page = await desk.get(f"/cooperations/{cooperation_id}")
        action = f"/cooperations/{cooperation_id}/agreements/{agreement_id}/review"
        assert f'action="{action}"' in page.text
        await follow(desk, await desk.submit(page, action, {"step": step, "decision": "approve", "comment": "同意"}))
    for organization_id in parties:
        page = await officer.get(f"/cooperations/{cooperation_id}")
        action = f"/cooperations/{cooperation_id}/agreements/{agreement_id}/sign"
        await follow(officer, await officer.submit(page, action, {"organization_id": organization_id,
                                                                  "signed_on": "2026-05-20"}))


@pytest.fixture
async def desks(app, pool):
    async with (signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT, "王联络") as officer,
                signed_in(app, pool, ["reviewer"], LEGAL_DEPARTMENT, "李法务") as reviewer,
                signed_in(app, pool, ["leader"], API_DEPARTMENT, "张局长") as leader):
        yield officer, reviewer, leader


async def test_the_seed_flow_through_the_forms(desks, api, pool):
    officer, reviewer, leader = desks
    w = await world(api.http, "Boao Zhongheng 博奥中恒")
    cooperation_id = await open_cooperation(officer, w)
    page = await officer.get(f"/cooperations/{cooperation_id}")
    assert "合作事项已创建" in page.text and "洽谈中" in page.text  # the message, then the stage in Chinese

    visit = await officer.submit(page, f"/cooperations/{cooperation_id}/negotiation", {
        "kind": "inspection_visit", "occurred_on": "2026-04-09", "place": "博奥中恒 广州总部",
        "participants": "市长、市投促局局长", "summary": "考察企业总部及研发中心"})
    page = await follow(officer, visit)
    assert "考察企业总部及研发中心" in page.text and "考察" in page.text

    drafted = await officer.submit(page, f"/cooperations/{cooperation_id}/agreements", {
        "kind": "framework", "title": "战略合作框架协议",
        "parties-0-organization_id": w.gov_id, "parties-0-signatory_name": "市长", "parties-0-signatory_title": "市长",
        "parties-1-organization_id": w.company_id, "parties-1-signatory_name": "董事长",
        "parties-1-signatory_title": "董事长"})
    await follow(officer, drafted)
    framework = (await agreement_ids(pool, cooperation_id))["framework"]
    await review_and_sign(officer, reviewer, leader, cooperation_id, framework, [w.gov_id, w.company_id])

    page = await officer.get(f"/cooperations/{cooperation_id}")
    drafted = await officer.submit(page, f"/cooperations/{cooperation_id}/agreements", {
        "kind": "investment", "title": "项目投资协议",
        "parties-0-organization_id": w.park_id, "parties-0-signatory_name": "主任", "parties-0-signatory_title": "管委会主任",
        "parties-1-organization_id": w.company_id, "parties-1-signatory_name": "总经理",
        "parties-1-signatory_title": "总经理"})
    await follow(officer, drafted)
    investment = (await agreement_ids(pool, cooperation_id))["investment"]
    await review_and_sign(officer, reviewer, leader, cooperation_id, investment, [w.park_id, w.company_id])

    page = await officer.get(f"/cooperations/{cooperation_id}")
    assert "2026-06-19" in page.text  # company registration: 30 days after the signing (2026-05-20)
    form = {"agreement_id": investment, "title": "博奥中恒西南总部项目", "site": "绵阳高新区",
            "committed_investment": "12,345.6789", "committed_investment_unit": "wan",
            "responsible_department": API_DEPARTMENT, "responsible_officer": "王联络"}
    for i in range(6):  # the template rows as the page prefilled them
        form[f"milestones-{i}-name"] = re.search(rf'name="milestones-{i}-name" value="([^"]*)"', page.text).group(1)
        form[f"milestones-{i}-due_date"] = re.search(rf'name="milestones-{i}-due_date" value="([^"]*)"',
                                                     page.text).group(1)
    created = await officer.submit(page, f"/cooperations/{cooperation_id}/projects", form)
    assert created.status_code == 303 and created.headers["location"].startswith("/projects/")
    async with pool.acquire() as conn:
        project = await conn.fetchrow("SELECT * FROM projects WHERE cooperation_id = $1", cooperation_id)
        milestones = await conn.fetchval("SELECT count(*) FROM milestones WHERE project_id = $1", project["id"])
    assert project["committed_investment"] == Decimal("123456789.00") and milestones == 6
    page = await officer.get(f"/cooperations/{cooperation_id}")
    assert "实施中" in page.text or "In delivery" in page.text  # the stage moved on with the first project
    assert "12,345.68 万元" in page.text


async def test_an_error_keeps_what_was_typed_next_to_the_field(desks, api):
    officer, _, _ = desks
    w = await world(api.http)
    page = await officer.get("/cooperations/new")
    answer = await officer.submit(page, "/cooperations/new", {
        "title": "", "lead_organization_id": w.gov_id, "partner_organization_id": w.company_id,
        "areas": "新能源", "liaison_officer": "赵六", "started_on": "2026-05-01", "target_signing_date": "2026-04-01"})
    assert answer.status_code == 422
    assert 'value="赵六"' in answer.text and "新能源" in answer.text
    assert 'id="e-title"' in answer.text and "此项为必填项" in answer.text


async def test_money_is_refused_rather_than_rounded(desks, api, pool):
    officer, reviewer, leader = desks
    w = await world(api.http)
    cooperation_id = await open_cooperation(officer, w, "金额测试")
    page = await officer.get(f"/cooperations/{cooperation_id}")
    answer = await officer.submit(page, f"/cooperations/{cooperation_id}/agreements", {
        "kind": "framework", "title": "框架协议", "parties-0-organization_id": w.gov_id,
        "parties-0-signatory_name": "", "parties-0-signatory_title": "市长",
        "parties-1-organization_id": w.company_id, "parties-1-signatory_name": "董事长",
        "parties-1-signatory_title": "董事长"})
    assert answer.status_code == 422 and 'id="e-parties-0-signatory_name"' in answer.text
    assert 'value="董事长"' in answer.text  # the other rows kept


async def test_a_double_submit_creates_one_record(desks, api, pool):
    officer, _, _ = desks
    w = await world(api.http)
    page = await officer.get("/cooperations/new")
    form = {"title": "双击测试", "lead_organization_id": w.gov_id, "partner_organization_id": w.company_id,
            "liaison_officer": "王联络"}
    first = await officer.submit(page, "/cooperations/new", form)
    second = await officer.submit(page, "/cooperations/new", form)  # the same page, the same form_key
    assert created_id(first) == created_id(second)
    async with pool.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM cooperations WHERE partner_organization_id = $1",
                                    w.company_id)
    assert count == 1


async def test_a_lost_race_says_so_and_shows_the_current_values(desks, api, pool):
    officer, _, _ = desks
    w = await world(api.http)
    cooperation_id = await open_cooperation(officer, w, "并发测试")
    page = await officer.get(f"/cooperations/{cooperation_id}")
    await follow(officer, await officer.submit(page, f"/cooperations/{cooperation_id}/agreements", {
        "kind": "framework", "title": "原标题", "parties-0-organization_id": w.gov_id,
        "parties-0-signatory_name": "市长", "parties-0-signatory_title": "市长",
        "parties-1-organization_id": w.company_id, "parties-1-signatory_name": "董事长",
        "parties-1-signatory_title": "董事长"}))
    agreement_id = (await agreement_ids(pool, cooperation_id))["framework"]
    edit_url = f"/cooperations/{cooperation_id}/agreements/{agreement_id}/edit"
    mine = await officer.get(edit_url)
    colleague = await officer.get(edit_url)
    saved = await officer.submit(colleague, edit_url, {"title": "同事改的标题"} | _parties(colleague.text))
    assert saved.status_code == 303
    lost = await officer.submit(mine, edit_url, {"title": "我改的标题"} | _parties(mine.text))
    assert lost.status_code == 412
    assert "同事已修改" in lost.text and 'value="同事改的标题"' in lost.text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT title FROM agreements WHERE id = $1", agreement_id) == "同事改的标题"


def _parties(page: str) -> dict[str, str]:
    fields = {}
    for name in re.findall(r'name="(parties-\d-signatory_(?:name|title))" value="([^"]*)"', page):
        fields[name[0]] = name[1]
    for name, value in re.findall(r'<select id="f-(parties-\d-organization_id)"[^>]*>.*?<option value="([^"]+)" selected',
                                  page, re.S):
        fields[name] = value
    return fields


async def test_terminating_needs_a_confirmation(desks, api, pool):
    officer, _, _ = desks
    w = await world(api.http)
    cooperation_id = await open_cooperation(officer, w, "终止测试")
    page = await officer.get(f"/cooperations/{cooperation_id}/terminate")
    unconfirmed = await officer.submit(page, f"/cooperations/{cooperation_id}/terminate", {"reason": "企业战略调整"})
    assert unconfirmed.status_code == 422 and "企业战略调整" in unconfirmed.text
    done = await officer.submit(unconfirmed, f"/cooperations/{cooperation_id}/terminate",
                                {"reason": "企业战略调整", "confirm": "yes"})
    page = await follow(officer, done)
    assert "已终止" in page.text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT stage FROM cooperations WHERE id = $1", cooperation_id) == "terminated"


async def test_another_departments_cooperation_is_not_found(desks, app, api, pool):
    officer, _, _ = desks
    w = await world(api.http)
    cooperation_id = await open_cooperation(officer, w, "部门隔离测试")
    async with signed_in(app, pool, ["liaison_officer"], "Another Bureau 其他局") as stranger:
        page = await stranger.get(f"/cooperations/{cooperation_id}")
        assert page.status_code == 404 and "部门隔离测试" not in page.text
        answer = await stranger.http.post(f"/cooperations/{cooperation_id}/negotiation", data={
            "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', (await stranger.get("/")).text).group(1),
            "kind": "meeting", "occurred_on": "2026-05-01"}, headers={"Origin": "http://accord.test"})
        assert answer.status_code == 404
