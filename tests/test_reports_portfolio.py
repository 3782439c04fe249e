"""The portfolio report through the API: a portfolio seeded in a department of its own, its
figures computed by hand here; reproducibility across later changes; the exports read back."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx
from openpyxl import load_workbook

from api.services import office_today
from reports import export
from tests.conftest import new_id, user_client
from tests.test_api_support import Coop, ok, open_cooperation, world

AREAS_A = ["Electronics 电子信息", "Intellectual property 知识产权"]
AREAS_B = ["Biomedicine 生物医药"]


@dataclass
class DeptCoop(Coop):
    """A cooperation of the seeded department: its leader decides the leadership step."""

    leader: httpx.AsyncClient | None = None

    async def approve_all(self, agreement_id: str) -> None:
        self.state = await self.post(f"/agreements/{agreement_id}/submit")
        self.state = await self.decide(agreement_id, "legal_review")
        self.state = await self.decide(agreement_id, "leadership_approval", by=self.leader)


@dataclass
class Portfolio:
    department: str
    other_department: str
    officer: httpx.AsyncClient
    leader: httpx.AsyncClient
    coops: dict[str, DeptCoop] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=dict)
    """P1, P2, P3 → project id."""
    titles: dict[str, str] = field(default_factory=dict)
    milestones: dict[str, dict[str, str]] = field(default_factory=dict)


async def _coop(p: Portfolio, areas: list[str], signed: bool) -> DeptCoop:
    w = await world(p.officer, company_name=f"Partner {new_id()} Co., Ltd.")
    opened = await open_cooperation(p.officer, w, department=p.department, areas=areas)
    coop = DeptCoop(p.officer, w, opened.id, opened.state, leader=p.leader)
    if signed:
        await coop.sign_framework()
        await coop.sign_investment()
    return coop


async def _project(p: Portfolio, name: str, coop: DeptCoop, committed: str, due: list[str],
                   department: str | None = None) -> str:
    title = f"{name} {new_id()}"
    project_id = await coop.add_project(
        title=title, committed_investment=committed, responsible_department=department or p.department,
        milestones=[{"name": f"step {i}", "due_date": d} for i, d in enumerate(due, 1)])
    state = ok(await p.officer.get(f"/projects/{project_id}"))
    p.projects[name], p.titles[name] = project_id, title
    p.milestones[name] = {m["name"]: m["id"] for m in state["milestones"]}
    return project_id


async def invest(p: Portfolio, name: str, received_on: str, amount: str) -> None:
    ok(await p.officer.post(f"/projects/{p.projects[name]}/investments",
                            json={"received_on": received_on, "amount": amount, "source_note": "bank transfer"}))


async def complete(p: Portfolio, name: str, step: str, on: str) -> None:
    ok(await p.officer.post(f"/projects/{p.projects[name]}/milestones/{p.milestones[name][step]}/complete",
                            json={"completed_on": on, "evidence": "site visit"}))


@asynccontextmanager
async def seeded_portfolio(app, pool) -> AsyncIterator[Portfolio]:
    """Cooperation A (two projects), B (one project, run by another department), C (negotiating).

    Every agreement is signed on 2024-03-01 (framework) and 2024-06-15 (investment), and
    everything is recorded today, so every signing counts in this year's period.
    P1: 50,000,000.00 committed; 10,000,000 on 2024-08-01 and 5,000,000 on 2025-02-01 arrived;
        step 1 due 2024-09-01 done 2024-08-20 (on time), step 2 due 2099-12-31 open.
    P2: 20,000,000.00; nothing arrived, nothing done; steps due 2024-07-01 and 2025-01-01 (both overdue).
    P3 (other department): 10,000,000.00; 8,000,000 on 2024-09-01; step 1 due 2024-07-01 done
        2024-07-15 (late), step 2 due 2099-01-01 open.
    """
    department, other = f"Report Bureau {new_id()}", f"Report Park {new_id()}"
    async with (user_client(app, pool, ["liaison_officer"], department) as officer,
                user_client(app, pool, ["leader"], department) as leader):
        p = Portfolio(department, other, officer.http, leader.http)
        p.coops["A"] = await _coop(p, AREAS_A, signed=True)
        p.coops["B"] = await _coop(p, AREAS_B, signed=True)
        p.coops["C"] = await _coop(p, [], signed=False)
        await _project(p, "P1", p.coops["A"], "50000000.00", ["2024-09-01", "2099-12-31"])
        await _project(p, "P2", p.coops["A"], "20000000.00", ["2024-07-01", "2025-01-01"])
        await _project(p, "P3", p.coops["B"], "10000000.00", ["2024-07-01", "2099-01-01"], department=other)
        await invest(p, "P1", "2024-08-01", "10000000.00")
        await invest(p, "P1", "2025-02-01", "5000000.00")
        await complete(p, "P1", "step 1", "2024-08-20")
        await invest(p, "P3", "2024-09-01", "8000000.00")
        await complete(p, "P3", "step 1", "2024-07-15")
        yield p


async def report(http: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    return ok(await http.get("/reports/portfolio", params=params))


def figures(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "generated_at"}


def by_name(groups: list[dict[str, Any]]) -> dict[str, tuple[int, str, str]]:
    return {g["name"]: (g["projects"], g["committed"], g["realized"]) for g in groups}


async def test_the_report_of_a_seeded_portfolio(app, pool, api):
    async with seeded_portfolio(app, pool) as p:
        r = await report(p.officer, period_start="2024-01-01")
        today = office_today()
        assert r["rules_version"] == "2026.1"
        assert r["parameters"]["as_of"] == today.isoformat()
        assert r["read_up_to_seq"] > 0
        assert r["stages"] == {"negotiating": 1, "framework_signed": 0, "in_delivery": 2, "completed": 0,
                               "terminated": 0}
        assert len(r["signed_agreements"]) == 4
        assert sorted((s["kind"], s["amount"]) for s in r["signings"]) == [
            ("new", "10000000.00"), ("new", "20000000.00"), ("new", "50000000.00")]
        assert Decimal(r["signed_total"]) == Decimal("80000000.00")
        totals = r["totals"]
        assert totals["projects"] == 3
        assert Decimal(totals["committed"]) == Decimal("80000000.00")
        assert Decimal(totals["realized"]) == Decimal("23000000.00")
        assert Decimal(totals["realized_in_period"]) == Decimal("23000000.00")  # the period starts in 2024
        assert Decimal(totals["ratio"]) == Decimal("28.75")  # 23 / 80
        assert {k: (n, Decimal(c), Decimal(x)) for k, (n, c, x) in by_name(r["by_department"]).items()} == {
            p.department: (2, Decimal("70000000.00"), Decimal("15000000.00")),
            p.other_department: (1, Decimal("10000000.00"), Decimal("8000000.00"))}
        partners = {k: (n, Decimal(c), Decimal(x)) for k, (n, c, x) in by_name(r["by_partner"]).items()}
        assert partners == {p.coops["A"].w.company["name"]: (2, Decimal("70000000.00"), Decimal("15000000.00")),
                            p.coops["B"].w.company["name"]: (1, Decimal("10000000.00"), Decimal("8000000.00"))}
        assert {k: n for k, (n, _c, _x) in by_name(r["by_industry"]).items()} == {AREAS_A[0]: 2, AREAS_B[0]: 1}
        rows = {row["title"]: row for row in r["projects"]}
        p1, p2, p3 = (rows[p.titles[n]] for n in ("P1", "P2", "P3"))
        assert p1["signed_on"] == "2024-06-15" and p1["started_on"] == "2024-08-01"
        assert Decimal(p1["ratio"]) == Decimal("30.00") and Decimal(p3["ratio"]) == Decimal("80.00")
        assert p2["ratio"] is not None and Decimal(p2["ratio"]) == 0
        assert p1["milestones"] == {"on_time": 1, "late": 0, "open_overdue": 0, "open": 1}
        assert p2["milestones"] == {"on_time": 0, "late": 0, "open_overdue": 2, "open": 0}
        assert p3["milestones"] == {"on_time": 0, "late": 1, "open_overdue": 0, "open": 1}
        assert r["punctuality"] == {"on_time": 1, "late": 1, "open_overdue": 2, "open": 2}
        # Warnings: only P2 is unstarted 90 days after signing and past due; P1 sits exactly on the
        # 30 % threshold, which is not below it.
        flagged = {name: [row["title"] for row in r["projects"] if row[name]]
                   for name in ("no_start", "past_due", "realized_below")}
        assert flagged == {"no_start": [p.titles["P2"]], "past_due": [p.titles["P2"]],
                           "realized_below": [p.titles["P2"]]}

        # This year's period: the same signings (recorded this year), no money arrived in it.
        this_year = await report(p.officer)
        assert this_year["parameters"]["period_start"] == date(today.year, 1, 1).isoformat()
        assert Decimal(this_year["signed_total"]) == Decimal("80000000.00")
        assert Decimal(this_year["totals"]["realized_in_period"]) == 0
        # A higher threshold flags P1 too; one department narrows the report.
        assert sum(row["realized_below"] for row in (await report(p.officer, realized_below="30.01"))["projects"]) == 2
        narrowed = await report(p.leader, department=p.department)
        assert narrowed["totals"]["projects"] == 3  # P3 is under a cooperation of the department


async def test_a_report_as_of_an_instant_does_not_change_with_later_data(app, pool, api):
    async with seeded_portfolio(app, pool) as p:
        t1: datetime = await pool.fetchval("SELECT clock_timestamp()")
        before = await report(p.officer, as_of=t1.isoformat())
        today_before = await report(p.officer)
        assert figures(before)["totals"] == figures(today_before)["totals"]

        await invest(p, "P1", "2024-10-01", "1000000.00")  # received before t1, recorded after it
        await complete(p, "P3", "step 2", office_today().isoformat())
        ok(await p.officer.post(f"/cooperations/{p.coops['C'].id}/terminate", json={"reason": "partner withdrew"}))

        again = await report(p.officer, as_of=t1.isoformat())
        assert figures(again) == figures(before)
        assert again["generated_at"] != before["generated_at"]
        now = await report(p.officer)
        assert Decimal(now["totals"]["realized"]) == Decimal("24000000.00")
        assert now["stages"]["terminated"] == 1 and now["stages"]["negotiating"] == 0
        assert now["punctuality"]["on_time"] == 2
        assert now["read_up_to_seq"] > before["read_up_to_seq"]


async def test_the_exports_read_back(app, pool, api):
    async with seeded_portfolio(app, pool) as p:
        answer = await p.officer.get("/reports/portfolio.xlsx", params={"period_start": "2024-01-01"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == export.XLSX_TYPE
        book = load_workbook(io.BytesIO(answer.content))
        assert book.sheetnames == ["概况", "项目", "部门", "合作方", "行业", "新增签约", "新签协议", "里程碑"]
        sheet = book["项目"]
        headers = [c.value for c in sheet[1]]
        assert headers[:3] == ["项目编号", "项目名称", "合作事项"]
        assert sheet.freeze_panes == "A2"
        assert all(book[name].freeze_panes == "A2" for name in book.sheetnames)
        committed = headers.index("签约投资额（万元）") + 1
        ratio = headers.index("资金到位率") + 1
        rows = {sheet.cell(row=i, column=2).value: i for i in range(2, sheet.max_row + 1)}
        p1 = rows[p.titles["P1"]]
        assert sheet.cell(row=p1, column=committed).value == 5000
        assert sheet.cell(row=p1, column=committed).number_format == export.WAN_FORMAT
        assert sheet.cell(row=p1, column=ratio).value == 0.3
        assert sheet.cell(row=p1, column=ratio).number_format == export.PERCENT_FORMAT
        assert sheet.cell(row=p1, column=headers.index("签约日期") + 1).value == datetime(2024, 6, 15)
        summary = {row[0].value: row[1] for row in book["概况"].iter_rows(min_row=2)}
        assert summary["统计规则版本"].value == "2026.1"
        assert summary["签约投资额（万元）"].value == 8000
        assert summary["签约投资额（万元）"].number_format == export.WAN_FORMAT

        answer = await p.officer.get("/reports/portfolio.csv")
        assert answer.status_code == 200, answer.text
        assert answer.content.startswith("\ufeff".encode())
        table = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
        assert table[0] == [header for header, _value, _format in export.PROJECT_COLUMNS]
        line = next(row for row in table if row[1] == p.titles["P1"])
        assert line[table[0].index("签约投资额（万元）")] == "5000.00"
        assert line[table[0].index("资金到位率")] == "30.00%"


async def test_who_may_read_the_report(app, pool, api):
    department = f"Report Bureau {new_id()}"
    async with (user_client(app, pool, ["admin"], None) as admin,
                user_client(app, pool, ["reviewer"], None) as reviewer,
                user_client(app, pool, ["liaison_officer"], department) as officer,
                user_client(app, pool, ["auditor"], None) as auditor):
        assert (await admin.http.get("/reports/portfolio")).status_code == 403
        assert (await reviewer.http.get("/reports/portfolio.xlsx")).status_code == 403
        assert (await officer.http.get("/reports/portfolio", params={"department": "Somebody else"})).status_code \
            == 404
        empty = await report(officer.http)
        assert empty["totals"]["projects"] == 0 and sum(empty["stages"].values()) == 0
        assert (await auditor.http.get("/reports/portfolio", params={"department": department})).status_code == 200


async def test_bad_parameters_are_refused_plainly(app, pool, api):
    for params in ({"as_of": "2026-13-01"}, {"as_of": "2999-01-01"}, {"as_of": "2026-01-01T00:00:00"},
                   {"as_of": "0001-01-01T00:00:00+08:00"}, {"as_of": "2026-01-01", "period_start": "2026-02-01"},
                   {"no_start_days": "-1"}, {"realized_below": "101"}, {"realized_below": "NaN"}):
        answer = await api.http.get("/reports/portfolio", params=params)
        assert answer.status_code == 422, f"{params}: {answer.status_code} {answer.text}"
    assert (await api.http.get("/reports/portfolio", params={"as_of": "0001-01-01"})).status_code == 200
