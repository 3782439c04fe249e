"""The portfolio report: JSON, and the same report as .xlsx or .csv (reports/).

Who may read it: leaders, auditors and liaison officers, each over the departments they see
(domain/access.visible_departments: a liaison officer their own department, a leader their
department and those below it, an auditor every department). Reviewers (legal affairs) read
cooperations to review agreements, not the portfolio's figures; admins see no business
record: both are refused (403). Asking for a department outside one's view answers 404, as for
any record one may not see.

The parameters, all optional:

* `as_of`: the reporting date D (YYYY-MM-DD; the report reads the record as it stood at the end of D,
  office time) or an instant with its time zone (2026-09-30T18:00:00+08:00); default today.
  Never in the future;
* `period_start`: the first day of the period of new signings and realized-in-period
  (default 1 January of D's year);
* `department`: one department (default every department the reader sees);
* `no_start_days` (default 90) and `realized_below` (percent, default 30): the warning thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from api.errors import field_error
from api.services import ActorDep, ServicesDep, office_today
from domain import access
from domain.audit import OFFICE_TZ, Actor
from domain.types import Name
from reports import export
from reports.portfolio import DEFAULT_NO_START_DAYS, DEFAULT_REALIZED_BELOW, Parameters, PortfolioReport, portfolio_report

router = APIRouter(prefix="/reports", tags=["reports"])

READERS = frozenset({access.LEADER, access.AUDITOR, access.LIAISON_OFFICER})


def check_report_reader(actor: Actor) -> None:
    if not access.roles_of(actor) & READERS:
        raise access.Forbidden("only leaders, auditors and liaison officers may read the portfolio report")


def scope(actor: Actor, department: str | None) -> list[str] | None:
    """The departments the report covers: the one asked for (if the reader sees it), else the reader's view."""
    check_report_reader(actor)
    if department is None:
        return access.visible_departments(actor)
    access.check_visible(actor, [department], f"department {department}")
    return [department]


def parse_as_of(text: str | None, today: date) -> date | datetime:
    """A date or an instant with a time zone, not after today (office time). ValueError says why."""
    if not text:
        return today
    try:
        value: date | datetime = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("give a date (2026-09-30) or an instant with a time zone (2026-09-30T18:00:00+08:00)") \
            from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("give the instant's time zone, e.g. 2026-09-30T18:00:00+08:00")
        try:
            day = value.astimezone(UTC).astimezone(OFFICE_TZ).date()
        except OverflowError:
            raise ValueError("out of range") from None
    else:
        day = value
    if day > today:
        raise ValueError("as_of is in the future: a report describes what was recorded")
    return value


@dataclass
class Asked:
    as_of: date | datetime
    parameters: Parameters
    departments: list[str] | None


def asked(actor: ActorDep, as_of: str | None = None, period_start: date | None = None,
          department: Annotated[Name | None, Query()] = None,
          no_start_days: Annotated[int, Query(ge=0, le=36500)] = DEFAULT_NO_START_DAYS,
          realized_below: Annotated[Decimal, Query(ge=0, le=100, max_digits=5, decimal_places=2)]
          = DEFAULT_REALIZED_BELOW) -> Asked:
    try:
        when = parse_as_of(as_of, office_today())
    except ValueError as error:
        raise field_error(["query", "as_of"], str(error)) from None
    day = when.astimezone(OFFICE_TZ).date() if isinstance(when, datetime) else when
    start = period_start or date(day.year, 1, 1)
    if start > day:
        raise field_error(["query", "period_start"], "the period starts after as_of")
    parameters = Parameters(as_of=day, period_start=start, department=department, no_start_days=no_start_days,
                            realized_below=realized_below)
    return Asked(when, parameters, scope(actor, department))


AskedDep = Annotated[Asked, Depends(asked)]


async def _report(services, a: Asked) -> PortfolioReport:
    async with services.pool.acquire() as conn:
        return await portfolio_report(conn, a.as_of, a.parameters, a.departments)


@router.get("/portfolio", response_model=PortfolioReport)
async def portfolio(a: AskedDep, services: ServicesDep) -> PortfolioReport:
    """Cooperations by stage, new signings, committed against realized investment by project,
    department, partner and industry, warnings and milestone punctuality, as of a date."""
    return await _report(services, a)


@router.get("/portfolio.xlsx", response_class=Response)
async def portfolio_xlsx(a: AskedDep, services: ServicesDep) -> Response:
    report = await _report(services, a)
    return Response(export.xlsx(report), media_type=export.XLSX_TYPE,
                    headers=_attachment(report, "xlsx"))


@router.get("/portfolio.csv", response_class=Response)
async def portfolio_csv(a: AskedDep, services: ServicesDep) -> Response:
    report = await _report(services, a)
    return Response(export.csv_text(report).encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                    headers=_attachment(report, "csv"))


def _attachment(report: PortfolioReport, extension: str) -> dict[str, str]:
    name = f"portfolio-{report.parameters.as_of.isoformat()}.{extension}"
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
