"""The portfolio report page: both languages, charts, sortable tables, exports, who may read it."""

from __future__ import annotations

from tests.conftest import new_id
from tests.test_reports_portfolio import seeded_portfolio
from tests.web_support import signed_in


def projects_table(page: str) -> str:
    start = page.index('<table class="report-projects">')
    return page[start:page.index("</table>", start)]


async def test_the_page_in_english_and_chinese(app, pool, api):
    async with seeded_portfolio(app, pool) as p:
        async with signed_in(app, pool, ["leader"], p.department, language="en") as me:
            page = await me.get("/reports?period_start=2024-01-01")
            assert page.status_code == 200, page.text
            text = page.text
            assert "<h1>Portfolio report</h1>" in text
            assert all(p.titles[n] in text for n in ("P1", "P2", "P3"))
            assert 'href="/reports"' in text and 'aria-current="page"' in text  # the nav link
            assert text.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart') == 4
            assert "Milestones by punctuality: Done on time 1, Done late 1, Open, overdue 2, Open, not yet due 2" in text
            assert "CNY 80.00 m" in text  # committed in total
            assert "28.75%" in text
            assert "/api/v1/reports/portfolio.xlsx?period_start=2024-01-01" in text
            # The export link of the page answers with the workbook (session cookie).
            xlsx = await me.get("/api/v1/reports/portfolio.xlsx?period_start=2024-01-01")
            assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"

            # Sorting by query parameter: titles ascending, then descending.
            ascending = projects_table((await me.get("/reports?sort=title&order=asc")).text)
            names = sorted(p.titles.values())
            positions = [ascending.index(f">{name}</a></th>") for name in names]
            assert positions == sorted(positions)
            descending = projects_table((await me.get("/reports?sort=title&order=desc")).text)
            positions = [descending.index(f">{name}</a></th>") for name in names]
            assert positions == sorted(positions, reverse=True)
            assert 'aria-sort="descending"' in descending

            # What the page cannot use is ignored with a note, never an error.
            odd = await me.get("/reports?no_start_days=-5&as_of=yesterday&sort=nonsense&realized_below=abc")
            assert odd.status_code == 200
            assert odd.text.count("was not understood and is ignored") == 4

        async with signed_in(app, pool, ["liaison_officer"], p.department, language="zh") as me:
            page = await me.get("/reports")
            assert page.status_code == 200, page.text
            assert "<h1>项目统计报表</h1>" in page.text and "本期新增签约" in page.text
            assert "8,000.00 万元" in page.text
            assert p.titles["P2"] in page.text


async def test_who_may_open_the_page(app, pool, api):
    async with signed_in(app, pool, ["admin"], None, language="en") as admin:
        answer = await admin.get("/reports")
        assert answer.status_code == 403
        assert 'href="/reports"' not in answer.text
    async with signed_in(app, pool, ["reviewer"], None) as reviewer:
        assert (await reviewer.get("/reports")).status_code == 403
    async with signed_in(app, pool, ["liaison_officer"], f"Report Bureau {new_id()}") as officer:
        assert (await officer.get("/reports?department=Someone%20else")).status_code == 404
        assert (await officer.get("/reports")).status_code == 200
