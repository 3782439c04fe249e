"""The portfolio report: its model, and its builder from the record at two instants.

`build` is pure: the record at the end of the reporting date (`at_end`) and at the end of the day
before the period (`at_start`), both read from the audit trail (db/report_queries.py), plus
the parameters, give the whole report. `portfolio_report` reads those two snapshots in one
repeatable-read transaction and records the audit seq it read up to, so the same parameters give
the same report whenever it is produced (only `generated_at` differs).

The reporting date D means the end of D in office time (Asia/Shanghai); for today, the report
reads up to the moment it is produced (its `instant`). Amounts are exact Decimal yuan.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import asyncpg
from pydantic import BaseModel, Field, computed_field

from db import report_queries
from db.report_queries import Snapshot
from domain.audit import OFFICE_TZ
from domain.cooperation import AgreementKind, AgreementStatus, CooperationState, Stage
from domain.project import ProjectState
from reports import rules

DEFAULT_NO_START_DAYS = 90
DEFAULT_REALIZED_BELOW = Decimal("30")


class Parameters(BaseModel):
    as_of: date
    period_start: date
    department: str | None = None
    no_start_days: int = Field(DEFAULT_NO_START_DAYS, ge=0, le=36500)
    realized_below: Decimal = Field(DEFAULT_REALIZED_BELOW, ge=0, le=100, description="percent of committed")


class Punctuality(BaseModel):
    on_time: int = 0
    late: int = 0
    open_overdue: int = 0
    open: int = 0

    def add(self, other: Punctuality) -> None:
        for name in Punctuality.model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Investment(BaseModel):
    """Committed (signed) against realized (arrived) investment, in yuan."""

    projects: int = 0
    committed: Decimal = rules.ZERO
    realized: Decimal = rules.ZERO
    realized_in_period: Decimal = rules.ZERO

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ratio(self) -> Decimal | None:
        return rules.ratio(self.realized, self.committed)

    def add(self, row: ProjectRow) -> None:
        self.projects += 1
        self.committed += row.committed
        self.realized += row.realized
        self.realized_in_period += row.realized_in_period


class Group(Investment):
    """One department, partner or industry."""

    name: str


class ProjectRow(BaseModel):
    project_id: str
    title: str
    cooperation_id: str
    cooperation_title: str
    partner: str
    department: str
    industry: str
    status: str
    signed_on: date | None
    started_on: date | None
    due_date: date | None
    committed: Decimal
    realized: Decimal
    realized_in_period: Decimal
    ratio: Decimal | None
    milestones: Punctuality
    no_start: bool
    past_due: bool
    realized_below: bool


class SigningRow(BaseModel):
    project_id: str
    title: str
    department: str
    kind: rules.SigningKind
    amount: Decimal
    signed_on: date | None


class AgreementRow(BaseModel):
    cooperation_id: str
    cooperation_title: str
    agreement_id: str
    kind: AgreementKind
    title: str
    signed_on: date | None


class PortfolioReport(BaseModel):
    rules_version: str
    parameters: Parameters
    instant: datetime
    """The report read the record as it stood at this instant (the end of `as_of`, or when produced)."""
    read_up_to_seq: int
    """The last audit event recorded at or before `instant`."""
    generated_at: datetime
    stages: dict[str, int]
    signed_agreements: list[AgreementRow]
    signings: list[SigningRow]
    signed_total: Decimal
    totals: Investment
    by_department: list[Group]
    by_partner: list[Group]
    by_industry: list[Group]
    projects: list[ProjectRow]
    punctuality: Punctuality

    def figures(self) -> dict:
        """Everything but when it was produced: equal for equal parameters, whenever produced."""
        return self.model_dump(mode="json", exclude={"generated_at"})


# ---------------------------------------------------------------- instants


def end_of_day(day: date) -> datetime:
    """The last microsecond of `day` in office time (timestamps have microsecond precision)."""
    return datetime.combine(day + timedelta(days=1), time(), OFFICE_TZ) - timedelta(microseconds=1)


def report_instant(as_of: date | datetime, now: datetime) -> tuple[date, datetime]:
    """(D, the instant read): a date is its end of day, never later than now; a datetime is itself."""
    if isinstance(as_of, datetime):
        return as_of.astimezone(OFFICE_TZ).date(), as_of
    return as_of, min(end_of_day(as_of), now)


# ---------------------------------------------------------------- reading and building


async def portfolio_report(conn: asyncpg.Connection, as_of: date | datetime, parameters: Parameters,
                           departments: list[str] | None) -> PortfolioReport:
    """The report over `departments` (None: all), read in one consistent snapshot of the database."""
    now = datetime.now(UTC)
    _day, instant = report_instant(as_of, now)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        seq = await report_queries.read_up_to(conn, instant)
        at_end = await report_queries.snapshot(conn, instant, departments)
        at_start = Snapshot()  # nothing was recorded before the first day there is
        if parameters.period_start > date.min:
            start = end_of_day(parameters.period_start - timedelta(days=1))
            at_start = await report_queries.snapshot(conn, min(start, instant), departments)
    return build(at_end, at_start, parameters, instant=instant, read_up_to_seq=seq, generated_at=now)


def build(at_end: Snapshot, at_start: Snapshot, p: Parameters, *, instant: datetime, read_up_to_seq: int,
          generated_at: datetime) -> PortfolioReport:
    rows = sorted((_project_row(project, at_end, p) for project in at_end.projects.values()
                   if rules.in_portfolio(project.status)), key=lambda r: (r.department, r.title, r.project_id))
    totals, punctual = Investment(), Punctuality()
    for row in rows:
        totals.add(row)
        punctual.add(row.milestones)
    signing_rows = _signings(at_end, at_start)
    return PortfolioReport(
        rules_version=rules.RULES_VERSION, parameters=p, instant=instant, read_up_to_seq=read_up_to_seq,
        generated_at=generated_at,
        stages={stage.value: sum(c.stage == stage for c in at_end.cooperations.values()) for stage in Stage},
        signed_agreements=_new_agreements(at_end, at_start),
        signings=signing_rows, signed_total=sum((s.amount for s in signing_rows), rules.ZERO),
        totals=totals,
        by_department=_groups(rows, lambda r: r.department),
        by_partner=_groups(rows, lambda r: r.partner),
        by_industry=_groups(rows, lambda r: r.industry),
        projects=rows, punctuality=punctual,
    )


def _project_row(project: ProjectState, at: Snapshot, p: Parameters) -> ProjectRow:
    cooperation = at.cooperation_of(project)
    signed_on = _signed_on(cooperation, project.agreement_id)
    committed = project.committed_investment
    realized = rules.realized(project.investments, p.as_of)
    started = rules.started_on(project.milestones, project.investments)
    due = rules.due_date(project.milestones)
    milestones = Punctuality()
    for milestone in project.milestones:
        state = rules.punctuality(milestone, p.as_of)
        setattr(milestones, state, getattr(milestones, state) + 1)
    return ProjectRow(
        project_id=project.project_id, title=project.title, cooperation_id=project.cooperation_id,
        cooperation_title=cooperation.title if cooperation else "",
        partner=cooperation.partner_organization_name if cooperation else "",
        department=project.responsible_department,
        industry=rules.industry_of(cooperation.areas) if cooperation else "",
        status=project.status.value, signed_on=signed_on, started_on=started, due_date=due,
        committed=committed, realized=realized,
        realized_in_period=rules.realized(project.investments, p.as_of, since=p.period_start),
        ratio=rules.ratio(realized, committed), milestones=milestones,
        no_start=rules.no_start(signed_on, started, p.as_of, p.no_start_days),
        past_due=rules.past_due(project.status, due, p.as_of),
        realized_below=rules.realized_below(committed, realized, p.realized_below),
    )


def _signed_on(cooperation: CooperationState | None, agreement_id: str) -> date | None:
    if cooperation is None:
        return None
    agreement = next((a for a in cooperation.agreements if a.agreement_id == agreement_id), None)
    return agreement.signed_on if agreement else None


def _facts(project: ProjectState, at: Snapshot) -> rules.ProjectFacts:
    cooperation = at.cooperation_of(project)
    return rules.ProjectFacts(project.project_id, project.agreement_id,
                              cooperation.partner_organization_id if cooperation else "",
                              project.committed_investment, _signed_on(cooperation, project.agreement_id))


def _signings(at_end: Snapshot, at_start: Snapshot) -> list[SigningRow]:
    rows = []
    for project in at_end.projects.values():
        before = at_start.projects.get(project.project_id)
        for s in rules.signings(_facts(before, at_start) if before else None, _facts(project, at_end)):
            rows.append(SigningRow(project_id=s.project_id, title=project.title,
                                   department=project.responsible_department, kind=s.kind, amount=s.amount,
                                   signed_on=s.signed_on))
    return sorted(rows, key=lambda r: (r.signed_on or date.min, r.title, r.project_id))


def _new_agreements(at_end: Snapshot, at_start: Snapshot) -> list[AgreementRow]:
    """Agreements signed in the record at the end of the period and not at its start."""
    rows = []
    for cooperation in at_end.cooperations.values():
        before = at_start.cooperations.get(cooperation.cooperation_id)
        signed_before = {a.agreement_id for a in (before.agreements if before else [])
                         if a.status == AgreementStatus.signed}
        for agreement in cooperation.agreements:
            if agreement.status == AgreementStatus.signed and agreement.agreement_id not in signed_before:
                rows.append(AgreementRow(cooperation_id=cooperation.cooperation_id,
                                         cooperation_title=cooperation.title, agreement_id=agreement.agreement_id,
                                         kind=agreement.kind, title=agreement.title, signed_on=agreement.signed_on))
    return sorted(rows, key=lambda r: (r.signed_on or date.min, r.cooperation_title, r.agreement_id))


def _groups(rows: Iterable[ProjectRow], key: Callable[[ProjectRow], str]) -> list[Group]:
    groups: dict[str, Group] = defaultdict(lambda: Group(name=""))
    for row in rows:
        group = groups[key(row)]
        group.name = key(row)
        group.add(row)
    return sorted(groups.values(), key=lambda g: (-g.committed, g.name))
