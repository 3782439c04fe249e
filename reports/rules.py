"""The counting rules of the portfolio report, as pure, versioned code.

A report records `RULES_VERSION`; change any rule here and the version must change with it
(tests/test_reports_rules.py pins the version to the rules' behaviour), so that a figure can
always be traced to the rules that produced it.

Signings (新增签约) compare a project as the record stood at the start of the period with the
project as it stood at the end (`signings(before, after)`), never today's rows:

* a project counts once, at its first signing: when it first appears in the record, for its
  whole committed investment, dated by its investment agreement's signing date;
* an upgraded project (the same project under a new investment agreement with a higher
  committed investment) counts only the increment;
* a capital increase (the same agreement, a higher committed investment) counts only the new amount;
* a change of owner (the project's partner company changed) counts as a new signing of the
  whole committed investment;
* a lower committed investment is not a signing (nothing counts negative); nor is anything else.

A signing counts in the period in which it entered the record, so that every signing counts
exactly once over consecutive periods, even when it was recorded some days after it was signed
(the signing date is shown beside it). Changes within one period are netted: a raise and a
cut in the same period count as their sum.

Today no action raises a committed investment, moves a project to another agreement or changes
a cooperation's partner, so only "new" signings occur in practice; the other rules are ready
and tested on constructed states.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from domain.project import InvestmentEntry, Milestone, ProjectStatus

RULES_VERSION = "2026.1"
"""Year.revision of the rules below; recorded in every report."""

SigningKind = Literal["new", "upgrade", "capital_increase", "change_of_owner"]
Punctuality = Literal["on_time", "late", "open_overdue", "open"]
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class ProjectFacts:
    """What the signing rules need of a project at one instant."""

    project_id: str
    agreement_id: str
    owner_id: str
    """The partner company of the project's cooperation."""
    committed: Decimal
    signed_on: date | None
    """The signing date of the project's investment agreement."""


@dataclass(frozen=True)
class Signing:
    project_id: str
    kind: SigningKind
    amount: Decimal
    signed_on: date | None


def signings(before: ProjectFacts | None, after: ProjectFacts | None) -> list[Signing]:
    """The signings a project counts between two instants (see the module's rules)."""
    if after is None:
        return []
    whole = Signing(after.project_id, "new", after.committed, after.signed_on)
    if before is None:
        return [whole]
    if after.owner_id != before.owner_id:
        return [Signing(after.project_id, "change_of_owner", after.committed, after.signed_on)]
    increment = after.committed - before.committed
    if increment <= 0:
        return []
    kind: SigningKind = "upgrade" if after.agreement_id != before.agreement_id else "capital_increase"
    return [Signing(after.project_id, kind, increment, after.signed_on)]


def in_portfolio(status: ProjectStatus | str) -> bool:
    """A cancelled project leaves the portfolio's committed and realized figures and its warnings
    (its signing, once counted, stays counted in its period)."""
    return ProjectStatus(status) != ProjectStatus.cancelled


def realized(entries: Iterable[InvestmentEntry], as_of: date, since: date | None = None) -> Decimal:
    """Investment received on or before `as_of` (and on or after `since`); the caller passes the
    entries recorded by the report's instant, so an entry recorded later never counts."""
    return sum((e.amount for e in entries if e.received_on <= as_of and (since is None or e.received_on >= since)),
               ZERO)


def ratio(part: Decimal, whole: Decimal) -> Decimal | None:
    """Realized as a percentage of committed, two decimals; None when nothing is committed."""
    if whole <= 0:
        return None
    return (part * 100 / whole).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def started_on(milestones: Iterable[Milestone], entries: Iterable[InvestmentEntry]) -> date | None:
    """Construction counts as started at the first completed milestone or the first money in
    (the same events that make a planned project active, domain/project.py)."""
    days = [m.completed_on for m in milestones if m.completed_on] + [e.received_on for e in entries]
    return min(days) if days else None


def due_date(milestones: Iterable[Milestone]) -> date | None:
    """A project is due when its last milestone is due."""
    return max((m.due_date for m in milestones), default=None)


def punctuality(milestone: Milestone, as_of: date) -> Punctuality:
    """Against the due date in force (after any moves): done on or before it is on time."""
    if milestone.completed_on is not None:
        return "on_time" if milestone.completed_on <= milestone.due_date else "late"
    return "open_overdue" if milestone.due_date < as_of else "open"


def no_start(signed_on: date | None, started: date | None, as_of: date, days: int) -> bool:
    """Not started `days` days or more after signing."""
    return signed_on is not None and started is None and (as_of - signed_on).days >= days


def past_due(status: ProjectStatus | str, due: date | None, as_of: date) -> bool:
    """Not completed by its due date."""
    return due is not None and due < as_of and ProjectStatus(status) != ProjectStatus.completed


def realized_below(committed: Decimal, realized_amount: Decimal, threshold_percent: Decimal) -> bool:
    """Realized investment below `threshold_percent` of the committed investment."""
    share = ratio(realized_amount, committed)
    return share is not None and share < threshold_percent


def industry_of(areas: list[str]) -> str:
    """A cooperation's industry is its first area (the record has no separate industry field);
    "" when it has none. One industry per project, so the industry figures add up to the total."""
    return areas[0] if areas else ""
