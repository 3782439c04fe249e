"""The counting rules (reports/rules.py) on constructed states: pure, no database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from domain.project import InvestmentEntry, Milestone
from reports import rules
from reports.rules import ProjectFacts, Signing

SIGNED = date(2026, 3, 1)


def facts(committed: str, agreement: str = "inv-1", owner: str = "company-a") -> ProjectFacts:
    return ProjectFacts("p1", agreement, owner, Decimal(committed), SIGNED)


def test_the_rules_version_is_recorded():
    # Changing a rule below changes the figures: bump RULES_VERSION with it, and this test.
    assert rules.RULES_VERSION == "2026.1"


def test_a_project_counts_once_at_its_first_signing():
    first = rules.signings(None, facts("5000000.00"))
    assert first == [Signing("p1", "new", Decimal("5000000.00"), SIGNED)]
    # The next period sees it at its start already: nothing counts again.
    assert rules.signings(facts("5000000.00"), facts("5000000.00")) == []
    assert rules.signings(facts("5000000.00"), None) == []


def test_an_upgraded_project_counts_the_increment():
    counted = rules.signings(facts("5000000.00"), facts("8000000.00", agreement="inv-2"))
    assert counted == [Signing("p1", "upgrade", Decimal("3000000.00"), SIGNED)]


def test_a_capital_increase_counts_only_the_new_amount():
    counted = rules.signings(facts("5000000.00"), facts("5500000.00"))
    assert counted == [Signing("p1", "capital_increase", Decimal("500000.00"), SIGNED)]


def test_a_change_of_owner_counts_as_a_new_signing():
    counted = rules.signings(facts("5000000.00"), facts("5000000.00", owner="company-b"))
    assert counted == [Signing("p1", "change_of_owner", Decimal("5000000.00"), SIGNED)]


def test_a_lower_commitment_is_not_a_signing():
    assert rules.signings(facts("5000000.00"), facts("4000000.00")) == []
    assert rules.signings(facts("5000000.00"), facts("4000000.00", agreement="inv-2")) == []


def entry(received_on: date, amount: str) -> InvestmentEntry:
    return InvestmentEntry(entry_id=f"e-{received_on}", received_on=received_on, amount=Decimal(amount),
                           source_note="bank", recorded_by="x")


def test_realized_investment_counts_money_received_by_the_date():
    entries = [entry(date(2026, 1, 5), "100.00"), entry(date(2026, 4, 1), "250.50"), entry(date(2026, 9, 30), "1.00")]
    assert rules.realized(entries, date(2026, 9, 29)) == Decimal("350.50")
    assert rules.realized(entries, date(2026, 9, 30)) == Decimal("351.50")
    assert rules.realized(entries, date(2026, 9, 30), since=date(2026, 4, 1)) == Decimal("251.50")
    assert rules.realized([], date(2026, 9, 30)) == Decimal("0.00")


def test_ratio_is_a_rounded_percentage_or_none():
    assert rules.ratio(Decimal("1"), Decimal("3")) == Decimal("33.33")
    assert rules.ratio(Decimal("2"), Decimal("3")) == Decimal("66.67")
    assert rules.ratio(Decimal("1"), Decimal("0")) is None


def milestone(due: date, done: date | None = None) -> Milestone:
    return Milestone(milestone_id=f"m-{due}", name="site", due_date=due, completed_on=done,
                     status="done" if done else "open")


def test_milestone_punctuality_against_the_due_date_in_force():
    as_of = date(2026, 6, 30)
    assert rules.punctuality(milestone(date(2026, 5, 1), date(2026, 5, 1)), as_of) == "on_time"
    assert rules.punctuality(milestone(date(2026, 5, 1), date(2026, 5, 2)), as_of) == "late"
    assert rules.punctuality(milestone(date(2026, 6, 29)), as_of) == "open_overdue"
    assert rules.punctuality(milestone(date(2026, 6, 30)), as_of) == "open"


def test_warnings():
    as_of = date(2026, 6, 30)
    # Started: the first completed milestone or the first money in.
    assert rules.started_on([milestone(date(2026, 5, 1), date(2026, 4, 20))], [entry(date(2026, 4, 25), "1")]) \
        == date(2026, 4, 20)
    assert rules.started_on([milestone(date(2026, 5, 1))], []) is None
    assert rules.no_start(date(2026, 4, 1), None, as_of, 90) is True   # 90 days exactly
    assert rules.no_start(date(2026, 4, 2), None, as_of, 90) is False
    assert rules.no_start(date(2026, 1, 1), date(2026, 2, 1), as_of, 90) is False
    assert rules.past_due("active", date(2026, 6, 29), as_of) is True
    assert rules.past_due("completed", date(2026, 6, 29), as_of) is False
    assert rules.past_due("active", date(2026, 6, 30), as_of) is False
    assert rules.realized_below(Decimal("100"), Decimal("29.99"), Decimal("30")) is True
    assert rules.realized_below(Decimal("100"), Decimal("30"), Decimal("30")) is False
    assert rules.realized_below(Decimal("0"), Decimal("0"), Decimal("30")) is False


def test_portfolio_membership_and_industry():
    assert rules.in_portfolio("active") and not rules.in_portfolio("cancelled")
    assert rules.industry_of(["Electronics 电子信息", "IP"]) == "Electronics 电子信息"
    assert rules.industry_of([]) == ""


def test_exported_text_is_never_a_formula():
    from datetime import UTC, datetime
    from io import BytesIO

    from openpyxl import load_workbook

    from db.report_queries import Snapshot
    from reports import export
    from reports.portfolio import Parameters, build

    report = build(Snapshot(), Snapshot(), Parameters(as_of=date(2026, 9, 30), period_start=date(2026, 1, 1),
                                                      department="=HYPERLINK(\"http://x\")"),
                   instant=datetime(2026, 9, 30, tzinfo=UTC), read_up_to_seq=7, generated_at=datetime.now(UTC))
    book = load_workbook(BytesIO(export.xlsx(report)))
    summary = {row[0].value: row[1] for row in book["概况"].iter_rows(min_row=2)}
    assert summary["部门"].value == "=HYPERLINK(\"http://x\")" and summary["部门"].data_type == "s"
    assert summary["审计记录读取至序号"].value == 7
    assert export.csv_text(report).splitlines()[0].startswith("项目编号,项目名称")
