"""The cooperation list (GET /cooperations): filters, sorting and numbered pages, all in the URL.

Everything the list shows is chosen by the query string (stage, partner, department,
officer, overdue, q, sort, order, page), so a link can be shared and the back button
returns to the same list. The filter form submits with GET; page and sort links keep the
filters. A value the page does not understand (an unknown stage, page=-1, sort=foo, text
too long) is ignored and the page says so: a hand-edited URL never fails the page.

The rows are the cooperations the user sees (domain/access.py), read by db/dashboard.py
with the API's definition of an overdue milestone and its text search.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from starlette.datastructures import QueryParams

from api.services import office_today
from db import dashboard as reads
from db import queries
from domain import access
from web import labels
from web.i18n import N_
from web.pages import render
from web.session import Viewer, services_of, viewer

router = APIRouter()

PAGE_SIZE = 25
MAX_TEXT = 200  # as the API's Name: titles, names and search text
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

SORT_LABELS = {
    "changed": N_("Last change"),
    "title": N_("Title"),
    "partner": N_("Partner"),
    "stage": N_("Stage"),
    "committed": N_("Committed investment"),
    "overdue": N_("Overdue milestones"),
}
NUMERIC_SORTS = {"changed", "committed", "overdue"}
"""Sorted newest or largest first when chosen; text and stage start ascending."""
FILTER_LABELS = {
    "q": N_("Search"), "stage": N_("Stage"), "partner": N_("Partner"), "department": N_("Department"),
    "officer": N_("Liaison officer"), "overdue": N_("Overdue milestones"), "sort": N_("Sort by"),
    "order": N_("Order"), "page": N_("Page"),
}


@dataclass(frozen=True)
class ListQuery:
    """The list as the URL asks for it; defaults are left out of links."""

    q: str = ""
    stage: str = ""
    partner: str = ""
    department: str = ""
    officer: str = ""
    overdue: str = ""  # "yes", "no" or "" (either)
    sort: str = "changed"
    order: str = "desc"
    page: int = 1

    def url(self, **changes: Any) -> str:
        """This list with some parameters changed; unless a page is given, from the first page
        (other filters or another order make other pages)."""
        changed = replace(self, **{"page": 1, **changes})
        defaults = asdict(ListQuery())
        params = {k: v for k, v in asdict(changed).items() if v != defaults[k]}
        return "/cooperations" + (f"?{urlencode(params)}" if params else "")

    def sort_url(self, key: str) -> str:
        """A column heading's link: the other direction if already sorted by it, else its natural one."""
        if key == self.sort:
            return self.url(order="asc" if self.order == "desc" else "desc")
        return self.url(sort=key, order="desc" if key in NUMERIC_SORTS else "asc")

    @property
    def filtered(self) -> bool:
        return any((self.q, self.stage, self.partner, self.department, self.officer, self.overdue))


@dataclass
class Notes:
    """What the URL asked for that the page ignored, in the user's words."""

    who: Viewer
    messages: list[str] = field(default_factory=list)

    def ignored(self, name: str, value: str) -> str:
        shown = value if len(value) <= 40 else value[:40] + "…"
        self.messages.append(self.who._("%(filter)s: “%(value)s” in the address was not understood and is "
                                        "ignored.", filter=self.who._(FILTER_LABELS[name]), value=shown))
        return ""


def parse(params: QueryParams, notes: Notes) -> ListQuery:
    """The list the URL asks for; what it cannot use is noted and left at its default."""

    def text(name: str) -> str:
        value = params.get(name, "").strip()
        if len(value) > MAX_TEXT or _CONTROL.search(value):
            return notes.ignored(name, _CONTROL.sub("", value))
        return value

    def choice(name: str, allowed: Any, default: str = "") -> str:
        value = params.get(name, "").strip()
        if not value or value in allowed:
            return value or default
        notes.ignored(name, _CONTROL.sub("", value))
        return default

    q, stage, partner = text("q"), choice("stage", labels.STAGES), text("partner")
    if partner and not _IDENTIFIER.fullmatch(partner):
        partner = notes.ignored("partner", partner)
    department, officer, overdue = text("department"), text("officer"), choice("overdue", ("yes", "no"))
    sort, order = choice("sort", reads.SORTS, "changed"), choice("order", ("asc", "desc"), "desc")
    page_text = params.get("page", "").strip()
    page = int(page_text) if page_text.isascii() and page_text.isdigit() and len(page_text) <= 9 else 0
    if page_text and page < 1:
        notes.ignored("page", _CONTROL.sub("", page_text))
    return ListQuery(q, stage, partner, department, officer, overdue, sort, order, max(page, 1))


@router.get("/cooperations")
async def cooperation_list(request: Request) -> Response:
    who = await viewer(request)
    notes = Notes(who)
    asked = parse(request.query_params, notes)
    departments = access.visible_departments(who.actor)
    f = reads.ListFilter(asked.stage or None, asked.partner or None, asked.department or None, asked.officer or None,
                         {"yes": True, "no": False}.get(asked.overdue), asked.q or None, departments)
    today = office_today()
    async with services_of(request).pool.acquire() as conn, conn.transaction():
        await queries.limit_view(conn, departments)
        total = await reads.count_cooperations(conn, f, today)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        if asked.page > pages:
            notes.messages.append(who._("There is no page %(page)s; this is the last page, %(pages)s.",
                                        page=asked.page, pages=pages))
            asked = replace(asked, page=pages)
        rows = await reads.cooperation_page(conn, f, today, asked.sort, asked.order == "desc",
                                            [s.value for s in labels.STAGE_ORDER], PAGE_SIZE,
                                            (asked.page - 1) * PAGE_SIZE)
        choices = await reads.list_choices(conn, departments)
    return await render(request, who, "cooperation_list.html", asked=asked, notes=notes.messages, total=total,
                        pages=pages, page_numbers=page_numbers(asked.page, pages),
                        rows=[{**dict(r), "stage_label": labels.stage_label(r["stage"], who._)} for r in rows],
                        values=asdict(asked), options=_options(choices, asked, who),
                        sort_labels={k: who._(v) for k, v in SORT_LABELS.items()})


def page_numbers(page: int, pages: int) -> list[int | None]:
    """The page links: the first, the last and two either side of the current; None marks a gap."""
    numbers: list[int | None] = []
    previous = 0
    for n in sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)}):
        if previous and n - previous > 1:
            numbers.append(None)
        numbers.append(n)
        previous = n
    return numbers


def _options(choices: dict[str, list[Any]], asked: ListQuery, who: Viewer) -> dict[str, list[tuple[str, str]]]:
    """The filters' options. A value from the URL that none of the visible cooperations has (a link
    from a colleague who sees more) is offered too, so the form shows the filter that applies."""
    _ = who._

    def with_asked(options: list[tuple[str, str]], value: str) -> list[tuple[str, str]]:
        return options if not value or value in {v for v, _text in options} else [*options, (value, value)]

    return {
        "stage": [(s.value, labels.stage_label(s, _)) for s in labels.STAGE_ORDER],
        "partner": with_asked(choices["partners"], asked.partner),
        "department": with_asked([(d, d) for d in choices["departments"]], asked.department),
        "officer": with_asked([(o, o) for o in choices["officers"]], asked.officer),
        "overdue": [("yes", _("With overdue milestones")), ("no", _("Without overdue milestones"))],
        "sort": [(k, _(v)) for k, v in SORT_LABELS.items()],
        "order": [("desc", _("Descending")), ("asc", _("Ascending"))],
    }
