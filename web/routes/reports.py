"""The portfolio report page (GET /reports): filters, figures, charts, sortable tables, exports.

The same report as GET /api/v1/reports/portfolio (reports/portfolio.py), for the same readers
(api/routes/reports.check_report_reader: leaders, auditors, liaison officers, over the departments
they see; others get 403, a department outside the reader's view 404). Everything is in the
URL: the filter form submits with GET, the tables' headings are links sorting by one column
(`sort`, `order`) and keep the filters, and the export links ask the API for the same report as
.xlsx or .csv. A value the page cannot use (a malformed date, a negative number of days) is
ignored with a note, never an error page.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from starlette.datastructures import QueryParams

from api.routes.reports import parse_as_of, scope
from api.services import office_today
from domain.audit import OFFICE_TZ
from reports.portfolio import DEFAULT_NO_START_DAYS, DEFAULT_REALIZED_BELOW, Parameters, ProjectRow, portfolio_report
from web import charts, labels
from web.i18n import N_
from web.pages import render
from web.session import Viewer, services_of, viewer

router = APIRouter()

PROJECTS_CHARTED = 10
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

SORTS: dict[str, Any] = {
    "title": lambda r: (r.title, r.project_id),
    "department": lambda r: (r.department, r.title),
    "partner": lambda r: (r.partner, r.title),
    "signed_on": lambda r: (r.signed_on or date.min, r.title),
    "committed": lambda r: (r.committed, r.title),
    "realized": lambda r: (r.realized, r.title),
    "ratio": lambda r: (r.ratio if r.ratio is not None else Decimal(-1), r.title),
}
DESCENDING_FIRST = {"signed_on", "committed", "realized", "ratio"}
FILTER_LABELS = {
    "as_of": N_("As of"), "period_start": N_("Period from"), "department": N_("Department"),
    "no_start_days": N_("Not started after (days)"), "realized_below": N_("Realized below (%)"),
    "sort": N_("Sort by"), "order": N_("Order"),
}


@dataclass(frozen=True)
class ReportQuery:
    """The report as the URL asks for it; empty means the default."""

    as_of: str = ""
    period_start: str = ""
    department: str = ""
    no_start_days: str = ""
    realized_below: str = ""
    sort: str = "committed"
    order: str = "desc"

    def url(self, path: str = "/reports", **changes: Any) -> str:
        defaults = asdict(ReportQuery())
        params = {k: v for k, v in asdict(replace(self, **changes)).items() if v != defaults[k]}
        return path + (f"?{urlencode(params)}" if params else "")

    def sort_url(self, key: str) -> str:
        if key == self.sort:
            return self.url(order="asc" if self.order == "desc" else "desc")
        return self.url(sort=key, order="desc" if key in DESCENDING_FIRST else "asc")

    def export_url(self, extension: str) -> str:
        return self.url(f"/api/v1/reports/portfolio.{extension}", sort="committed", order="desc")


def parse(params: QueryParams, who: Viewer, notes: list[str]) -> tuple[ReportQuery, date | datetime, Parameters]:
    """What the URL asks for; each value the page cannot use is noted and left at its default."""

    def ignored(name: str, value: str) -> str:
        shown = _CONTROL.sub("", value)[:40]
        notes.append(who._("%(filter)s: “%(value)s” in the address was not understood and is ignored.",
                           filter=who._(FILTER_LABELS[name]), value=shown))
        return ""

    text = {name: params.get(name, "").strip()[:200] for name in FILTER_LABELS}
    today = office_today()
    try:
        as_of = parse_as_of(text["as_of"], today)
    except ValueError:
        as_of, text["as_of"] = today, ignored("as_of", text["as_of"])
    day = as_of.astimezone(OFFICE_TZ).date() if isinstance(as_of, datetime) else as_of
    start = date(day.year, 1, 1)
    if text["period_start"]:
        try:
            start = date.fromisoformat(text["period_start"])
            if start > day:
                raise ValueError
        except ValueError:
            start, text["period_start"] = date(day.year, 1, 1), ignored("period_start", text["period_start"])
    days = _number(text["no_start_days"], int, 0, 36500) if text["no_start_days"] else DEFAULT_NO_START_DAYS
    if days is None:
        days, text["no_start_days"] = DEFAULT_NO_START_DAYS, ignored("no_start_days", text["no_start_days"])
    below = _number(text["realized_below"], Decimal, 0, 100) if text["realized_below"] else DEFAULT_REALIZED_BELOW
    if below is None:
        below, text["realized_below"] = DEFAULT_REALIZED_BELOW, ignored("realized_below", text["realized_below"])
    department = _CONTROL.sub("", text["department"]) or None
    for name, allowed, default in (("sort", SORTS, "committed"), ("order", ("asc", "desc"), "desc")):
        if text[name] and text[name] not in allowed:
            ignored(name, text[name])
        if text[name] not in allowed:
            text[name] = default
    asked = ReportQuery(**text)
    return asked, as_of, Parameters(as_of=day, period_start=start, department=department, no_start_days=days,
                                    realized_below=below)


def _number(text: str, kind: type, low: int, high: int) -> Any:
    """`text` as an int or Decimal within [low, high], else None."""
    try:
        value = kind(text)
    except (ValueError, InvalidOperation):
        return None
    if isinstance(value, Decimal) and not value.is_finite():
        return None
    return value if low <= value <= high else None


@router.get("/reports")
async def portfolio_page(request: Request) -> Response:
    who = await viewer(request)
    notes: list[str] = []
    asked, as_of, parameters = parse(request.query_params, who, notes)
    departments = scope(who.actor, parameters.department)
    async with services_of(request).pool.acquire() as conn:
        report = await portfolio_report(conn, as_of, parameters, departments)
    _ = who._
    projects = sorted(report.projects, key=SORTS[asked.sort], reverse=asked.order == "desc")
    largest = sorted(report.projects, key=lambda r: (-r.committed, r.title))[:PROJECTS_CHARTED]
    return await render(
        request, who, "reports.html", report=report, asked=asked, notes=notes,
        values={**asdict(asked), "as_of": asked.as_of or parameters.as_of.isoformat(),
                "period_start": asked.period_start or parameters.period_start.isoformat(),
                "no_start_days": str(parameters.no_start_days), "realized_below": str(parameters.realized_below)},
        projects=projects, charted=PROJECTS_CHARTED,
        funnel=charts.stage_funnel(report.stages, _, who.language),
        investment=charts.investment_bars(largest, _, who.language) if largest else None,
        departments_chart=charts.investment_bars([_bar(g.name, g) for g in report.by_department], _, who.language)
        if report.by_department else None,
        punctuality_chart=charts.punctuality_bars(report.punctuality.model_dump(), _, who.language),
        stages=[(s.value, labels.stage_label(s, _), report.stages.get(s.value, 0)) for s in labels.STAGE_ORDER],
        warnings=_warnings(report.projects),
        signing_kinds={"new": _("New signing"), "upgrade": _("Upgrade (increment)"),
                       "capital_increase": _("Capital increase"), "change_of_owner": _("Change of owner")},
        sort_labels={"title": _("Project"), "department": _("Department"), "partner": _("Partner"),
                     "signed_on": _("Signed"), "committed": _("Committed investment"),
                     "realized": _("Realized investment"), "ratio": _("Realized ratio")},
    )


def _bar(name: str, group: Any) -> dict[str, Any]:
    return {"title": name or "–", "committed": group.committed, "realized": group.realized}


def _warnings(rows: list[ProjectRow]) -> dict[str, list[ProjectRow]]:
    return {"no_start": [r for r in rows if r.no_start], "past_due": [r for r in rows if r.past_due],
            "realized_below": [r for r in rows if r.realized_below]}
