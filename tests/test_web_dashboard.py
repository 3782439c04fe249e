"""The dashboard page: a user's stages, milestones due and overdue, investment, notices and activity,
only of the departments they see.

Each test works in a department of its own (a fresh name), with its own liaison officer and
leader on the API, so the counts on the page are exactly what the test built. The helpers
here are shared with tests/test_web_list.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from api.services import office_today
from tests.conftest import new_id, user_client
from tests.test_api_support import (
    FRAMEWORK_SIGNED_ON,
    INVESTMENT_SIGNED_ON,
    Coop,
    framework_body,
    investment_body,
    ok,
    open_cooperation,
)
from tests.web_support import signed_in


@dataclass
class Desk:
    """A department and the people who run its cooperations through the API."""

    department: str
    officer: httpx.AsyncClient
    leader: httpx.AsyncClient
    reviewer: httpx.AsyncClient


@asynccontextmanager
async def desk(app, pool, api) -> AsyncIterator[Desk]:
    """A fresh department with a liaison officer and a leader; legal review by the `api` fixture's
    reviewer (it must be requested, so tests/test_api_support.REVIEW_DESK is set)."""
    from tests.test_api_support import REVIEW_DESK

    department = f"Web test bureau {new_id()}"
    async with (user_client(app, pool, ["liaison_officer"], department, "Officer Desk") as officer,
                user_client(app, pool, ["leader"], department, "Director Desk") as leader):
        yield Desk(department, officer.http, leader.http, REVIEW_DESK["legal_review"])


async def opened(d: Desk, **overrides: Any) -> Coop:
    """A cooperation of the desk's department, in negotiation."""
    return await open_cooperation(d.officer, department=d.department, **overrides)


async def _approve(coop: Coop, d: Desk, agreement_id: str) -> None:
    coop.state = await coop.post(f"/agreements/{agreement_id}/submit")
    coop.state = await coop.decide(agreement_id, "legal_review", by=d.reviewer)
    coop.state = await coop.decide(agreement_id, "leadership_approval", by=d.leader)


async def delivering(d: Desk, **overrides: Any) -> Coop:
    """A cooperation of the desk's department with both agreements signed (stage in_delivery)."""
    coop = await open_cooperation(d.officer, department=d.department, **overrides)
    coop.framework_id = await coop.draft(framework_body(coop.w))
    await _approve(coop, d, coop.framework_id)
    await coop.sign(coop.framework_id, coop.w.gov_id, FRAMEWORK_SIGNED_ON)
    await coop.sign(coop.framework_id, coop.w.company_id, FRAMEWORK_SIGNED_ON)
    coop.investment_id = await coop.draft(investment_body(coop.w))
    await _approve(coop, d, coop.investment_id)
    await coop.sign(coop.investment_id, coop.w.park_id, INVESTMENT_SIGNED_ON)
    await coop.sign(coop.investment_id, coop.w.company_id, INVESTMENT_SIGNED_ON)
    return coop


def milestones(*entries: tuple[str, int]) -> list[dict[str, str]]:
    """Milestones due `days` from today (negative: already overdue)."""
    today = office_today()
    return [{"name": name, "due_date": (today + timedelta(days=days)).isoformat()} for name, days in entries]


async def add_investment(coop: Coop, project_id: str, amount: str) -> None:
    ok(await coop.http.post(f"/projects/{project_id}/investments", json={
        "received_on": (office_today() - timedelta(days=1)).isoformat(), "amount": amount,
        "source_note": "First tranche 首期资金"}))


def hrefs(page: str, prefix: str) -> list[str]:
    """The ids linked under `prefix` ("/cooperations/"), in page order."""
    return re.findall(rf'href="{re.escape(prefix)}([A-Za-z0-9_.:-]+)"', page)


def funnel_label(page: str) -> str:
    found = re.search(r'<svg[^>]*class="chart funnel"[^>]*aria-label="([^"]*)"', page)
    assert found is not None, "no funnel chart on the page"
    return found.group(1)


# ---------------------------------------------------------------- the tests


async def test_the_dashboard_shows_the_departments_stages_milestones_and_investment(app, pool, api):
    async with desk(app, pool, api) as d:
        building = await delivering(d)
        project = await building.add_project(
            title=f"Smart factory <b>{new_id()}</b>", committed_investment="50000000.00",
            milestones=milestones(("Site handover <i>&", -5), ("Construction start 开工", 10),
                                  ("Trial production far ahead", 90)))
        await add_investment(building, project, "12000000.00")
        talking = await opened(d)
        elsewhere = await open_cooperation(api.http, title=f"Another bureau's secret {new_id()}")

        async with signed_in(app, pool, ["liaison_officer"], d.department, language="en") as me:
            page = await me.get("/")
            assert page.status_code == 200, page.text
            text = page.text

            # Stages: exactly this department's two cooperations, each stage named and counted.
            label = funnel_label(text)
            assert "Negotiating 1" in label and "In delivery 1" in label, label
            assert "Framework signed 0" in label and "Terminated 0" in label, label
            assert 'href="/cooperations?stage=in_delivery"' in text

            # Milestones: the overdue one in words and linked to its project; the next one in ten
            # days, named in the user's language; nothing beyond thirty days.
            assert "Overdue (1)" in text and "Due within 30 days (1)" in text
            assert "Site handover &lt;i&gt;&amp;" in text
            assert "5 days overdue" in text
            assert f'href="/projects/{project}"' in text
            assert "Construction start" in text and "Due in 10 days" in text
            assert "Trial production far ahead" not in text
            assert re.search(r'class="overdue">⚠ 5 days overdue', text), "the overdue milestone is not marked"

            # Investment: the project's bar with both amounts as text.
            assert "committed CNY 50.00 m, realized CNY 12.00 m (24% realized)" in text
            assert "&lt;b&gt;" in text and "<b>" not in text.split("<main", 1)[1]

            # Activity: the latest actions, on this department's records only.
            assert "Investment recorded" in text
            assert f'href="/cooperations/{talking.id}"' in text
            assert elsewhere.id not in text and "Another bureau" not in text


async def test_the_dashboard_speaks_chinese_and_amounts_are_in_wan(app, pool, api):
    async with desk(app, pool, api) as d:
        building = await delivering(d)
        project = await building.add_project(committed_investment="50000000.00",
                                             milestones=milestones(("公司注册 late registration", -3)))
        await add_investment(building, project, "12000000.00")
        async with signed_in(app, pool, ["liaison_officer"], d.department, language="zh") as me:
            text = (await me.get("/")).text
            assert "实施中 1" in funnel_label(text)
            assert "已逾期 3 天" in text
            assert "协议投资 5,000.00 万元，已到位 1,200.00 万元（到位率 24%）" in text


async def test_unread_notices_show_the_latest_five_with_a_link_to_the_inbox(app, pool, api):
    async with desk(app, pool, api) as d, signed_in(app, pool, ["liaison_officer"], d.department,
                                                    language="en") as me:
        async with pool.acquire() as conn:
            for i in range(7):
                await conn.execute(
                    "INSERT INTO inbox_messages (id, user_id, kind, subject, body, created_at) "
                    "VALUES ($1, $2, 'notice', $3, 'body', now() - make_interval(mins => $4))",
                    uuid.uuid4().hex, me.user_id, f"Reminder number {i} <x>", i)
        text = (await me.get("/")).text
        section = text.split('id="h-notices"', 1)[1].split("</section>", 1)[0]
        shown = re.findall(r"Reminder number (\d) &lt;x&gt;", section)
        assert shown == ["0", "1", "2", "3", "4"], shown
        assert 'href="/inbox"' in section


async def test_a_leader_sees_the_department_and_an_admin_sees_no_business_record(app, pool, api):
    async with desk(app, pool, api) as d:
        await opened(d)
        async with signed_in(app, pool, ["leader"], d.department, language="en") as leader:
            assert "Negotiating 1" in funnel_label((await leader.get("/")).text)
        async with signed_in(app, pool, ["admin"], None, language="en") as admin:
            page = await admin.get("/")
            assert page.status_code == 200
            assert "Negotiating 0" in funnel_label(page.text)
            assert "Nothing has happened yet in the records you see." in page.text


async def test_the_dashboard_asks_to_sign_in_first(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord.test") as http:
        answer = await http.get("/")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")

