"""The cooperation list page: filters, sorting and pages kept in the URL; bad values never fail it.

One department of its own (tests/test_web_dashboard.py `desk`) holds three cooperations built
through the API once for the module, so each test knows exactly which rows it should see:

  alpha   negotiating   "Alpha …"   no projects
  bravo   negotiating   "Bravo …"   no projects
  charlie in_delivery   "Charlie …" one project of 30,000,000.00 with a milestone 4 days overdue
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape

import pytest
import pytest_asyncio

from tests.conftest import new_id
from tests.test_api_support import Coop, open_cooperation
from tests.test_web_dashboard import Desk, delivering, desk, hrefs, milestones, opened
from tests.web_support import signed_in
from web.routes import cooperation_list


@dataclass
class Cast:
    desk: Desk
    tag: str  # in every title of this module, so a search finds only these
    alpha: Coop
    bravo: Coop
    charlie: Coop
    elsewhere: Coop  # another department's, with the same tag in its title

    def ids(self, *names: str) -> list[str]:
        return [getattr(self, n).id for n in names]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cast(app, pool, api):
    tag = new_id("tag")
    async with desk(app, pool, api) as d:
        alpha = await opened(d, title=f"Alpha <em>{tag}</em>", liaison_officer=f"Officer Alpha {tag}")
        bravo = await opened(d, title=f"Bravo {tag}")
        charlie = await delivering(d, title=f"Charlie {tag}")
        await charlie.add_project(committed_investment="30000000.00", milestones=milestones(("Late one", -4)))
        elsewhere = await open_cooperation(api.http, title=f"Elsewhere {tag}")
        yield Cast(d, tag, alpha, bravo, charlie, elsewhere)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def me(app, pool, cast):
    """A liaison officer of the cast's department, signed in once for the module (English pages)."""
    async with signed_in(app, pool, ["liaison_officer"], cast.desk.department, language="en") as client:
        yield client


def rows(page: str) -> list[str]:
    """The cooperations the table lists, in order."""
    table = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    return hrefs(table, "/cooperations/")


def links(page: str, text: str) -> list[str]:
    """The targets of the links whose text is `text` (as shown)."""
    return [unescape(h) for h, t in re.findall(r'<a href="([^"]*)"[^>]*>\s*([^<]*?)\s*<', page) if unescape(t) == text]


async def test_the_list_shows_only_the_departments_cooperations_with_their_figures(me, cast):
    page = await me.get("/cooperations")
    assert page.status_code == 200
    assert sorted(rows(page.text)) == sorted(cast.ids("alpha", "bravo", "charlie"))
    assert cast.elsewhere.id not in page.text
    assert f"Alpha &lt;em&gt;{cast.tag}&lt;/em&gt;" in page.text and "<em>" not in page.text
    assert "<caption>3 cooperations, sorted by Last change (descending); page 1 of 1</caption>" in page.text
    charlie = page.text.split(f'href="/cooperations/{cast.charlie.id}"', 1)[1].split("</tr>", 1)[0]
    assert "In delivery" in charlie and "CNY 30.00 m" in charlie
    assert '<span class="overdue">⚠ 1<span class="visually-hidden"> overdue</span>' in charlie
    assert cast.charlie.w.company["name"] in charlie and cast.charlie.w.government["name"] in charlie


@pytest.mark.parametrize(("query", "expected"), [
    ("stage=negotiating", ["alpha", "bravo"]),
    ("stage=in_delivery", ["charlie"]),
    ("overdue=yes", ["charlie"]),
    ("overdue=no", ["alpha", "bravo"]),
    ("q=ALPHA", ["alpha"]),
    ("q=%E2%80%8Bnothing-like-this", []),
])
async def test_filters_choose_the_rows(me, cast, query, expected):
    page = await me.get(f"/cooperations?{query}&sort=title&order=asc")
    assert page.status_code == 200
    assert rows(page.text) == cast.ids(*expected), query
    if not expected:
        assert "No cooperation matches these filters." in page.text


async def test_partner_officer_and_department_filters(app, pool, cast):
    async with signed_in(app, pool, ["auditor"], None, language="en") as auditor:  # sees every department
        page = await auditor.get(f"/cooperations?partner={cast.charlie.w.company_id}")
        assert rows(page.text) == cast.ids("charlie")
        page = await auditor.get("/cooperations", params={"officer": f"Officer Alpha {cast.tag}"})
        assert rows(page.text) == cast.ids("alpha")
        page = await auditor.get("/cooperations", params={"department": cast.desk.department, "sort": "title",
                                                         "order": "asc"})
        assert rows(page.text) == cast.ids("alpha", "bravo", "charlie")
        assert f'<option value="{cast.desk.department}" selected>' in page.text
        page = await auditor.get("/cooperations", params={"q": cast.tag, "sort": "title", "order": "desc"})
        assert rows(page.text) == cast.ids("elsewhere", "charlie", "bravo", "alpha")


@pytest.mark.parametrize(("sort", "order", "expected"), [
    ("title", "asc", ["alpha", "bravo", "charlie"]),
    ("title", "desc", ["charlie", "bravo", "alpha"]),
    ("stage", "desc", ["charlie", "bravo", "alpha"]),  # in_delivery after negotiating; ties by id, same way
    ("committed", "desc", ["charlie"]),
    ("overdue", "desc", ["charlie"]),
    ("changed", "asc", ["alpha", "bravo", "charlie"]),
])
async def test_sorting(me, cast, sort, order, expected):
    page = await me.get(f"/cooperations?sort={sort}&order={order}")
    listed = rows(page.text)
    if sort == "stage":  # negotiating ones tie: only the stage order is certain
        assert listed[0] == cast.charlie.id and sorted(listed[1:]) == sorted(cast.ids("alpha", "bravo"))
    else:
        assert listed[:len(expected)] == cast.ids(*expected), (sort, order)
    assert f'aria-sort="{"descending" if order == "desc" else "ascending"}"' in page.text


async def test_column_headings_sort_and_keep_the_filters(me, cast):
    page = await me.get("/cooperations?stage=negotiating&q=a&sort=title&order=asc")
    (title_link,) = links(page.text, "Title")  # sorted by it already: the other way (descending is the default)
    assert title_link == "/cooperations?q=a&stage=negotiating&sort=title", title_link
    (partner_link,) = links(page.text, "Partner")
    assert partner_link == "/cooperations?q=a&stage=negotiating&sort=partner&order=asc", partner_link
    (amount_link,) = links(page.text, "Committed investment")  # amounts start with the largest
    assert amount_link == "/cooperations?q=a&stage=negotiating&sort=committed", amount_link
    (clear,) = links(page.text, "Clear filters")
    assert clear == "/cooperations?sort=title&order=asc"
    assert 'value="negotiating" selected' in page.text and 'name="q" value="a"' in page.text


async def test_pages_are_numbered_in_the_url_and_keep_filters_and_sort(me, cast, monkeypatch):
    monkeypatch.setattr(cooperation_list, "PAGE_SIZE", 2)
    first = await me.get("/cooperations?sort=title&order=asc&q=o")
    assert rows(first.text) == cast.ids("alpha", "bravo")
    assert "page 1 of 2" in first.text
    (following,) = links(first.text, "Next")
    assert following == "/cooperations?q=o&sort=title&order=asc&page=2"
    assert not links(first.text, "Previous")
    second = await me.get(following)
    assert rows(second.text) == cast.ids("charlie")
    (back,) = links(second.text, "Previous")
    assert back == "/cooperations?q=o&sort=title&order=asc"
    assert 'aria-current="page">2<' in second.text

    beyond = await me.get("/cooperations?sort=title&order=asc&q=o&page=7")
    assert beyond.status_code == 200 and rows(beyond.text) == cast.ids("charlie")
    assert "There is no page 7; this is the last page, 2." in beyond.text


@pytest.mark.parametrize("query", [
    "stage=shipped", "page=-1", "page=0", "page=abc", "page=99999999999999999999999", "page=²", "sort=foo",
    "sort=title;DROP TABLE cooperations", "order=sideways", "overdue=maybe", "partner=%3Cscript%3E",
    "q=a%00b", "q=" + "x" * 500, "department=%00", "officer=" + "y" * 201, "stage=&page=&sort=&q=",
    "stage=negotiating&stage=bogus", "unknown=1",
])
async def test_bad_values_in_the_address_are_ignored_and_said(me, cast, query):
    page = await me.get(f"/cooperations?{query}")
    assert page.status_code == 200, page.text
    assert sorted(rows(page.text)) == sorted(cast.ids("alpha", "bravo", "charlie")), query
    if query not in ("stage=&page=&sort=&q=", "unknown=1"):
        assert "in the address was not understood and is ignored." in page.text, query
    assert "<script>" not in page.text


async def test_bad_values_are_explained_in_chinese(app, pool, cast):
    async with signed_in(app, pool, ["liaison_officer"], cast.desk.department, language="zh") as me:
        page = await me.get("/cooperations?stage=shipped")
        assert page.status_code == 200 and "阶段：地址中的“shipped”无法识别，已忽略。" in page.text
