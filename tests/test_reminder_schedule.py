"""Unit tests of the reminder schedule and the working-day calendar: pure functions, no servers.

Dates are real: the 2024-2026 calendar comes from the `chinesecalendar` package
and is checked against it day by day; the expected ladders below were counted
by hand and, for the "before" offsets, cross-checked with the package's own
`find_workday`.
"""

from __future__ import annotations

import sys
from datetime import date, datetime, time, timedelta, timezone

import chinese_calendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain import project as proj
from domain.audit import OFFICE_TZ, ActionContext, Actor
from domain.calendar import WorkingCalendar
from domain.project import MilestoneSpec, MoveMilestone, NewProject, ProjectStatus
from domain.reminders import (
    DEFAULT_POLICY,
    EscalationStep,
    Notice,
    NoticeRule,
    PolicyBook,
    RecipientRole,
    ReminderMilestone,
    ReminderPolicy,
    due_now,
    next_wakeup,
    notice_key,
    notices_moved_by_calendar,
    reminder_milestones,
    upcoming_notices,
    what_if_due_date,
)

CAL = WorkingCalendar.from_chinesecalendar(range(2024, 2027))
BOOK = PolicyBook()
DUE = date(2026, 12, 15)  # a Tuesday with no holiday anywhere near
MS = ReminderMilestone(project_id="p1", milestone_id="site", name="Site secured", due_date=DUE, owner="Li Wei")


def local(y: int, mo: int, d: int, h: int = 9, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=OFFICE_TZ)


def key(kind: str, version: int = 0, milestone: str = "site") -> str:
    return notice_key("p1", milestone, version, kind)


def schedule(notices: list[Notice]) -> list[tuple[str, datetime]]:
    return [(n.kind, n.fire_at) for n in notices]


def upcoming(milestones: list[ReminderMilestone], now: datetime, sent: set[str] | frozenset[str] = frozenset(),
             calendar: WorkingCalendar = CAL, book: PolicyBook = BOOK) -> list[Notice]:
    return upcoming_notices(book, calendar, milestones, now, sent)


# ---------------------------------------------------------------- the calendar


def test_calendar_matches_the_chinesecalendar_package_day_by_day() -> None:
    day = date(2024, 1, 1)
    while day <= date(2026, 12, 31):
        assert CAL.is_working_day(day) == chinese_calendar.is_workday(day), day
        assert not CAL.is_estimated(day)
        day += timedelta(days=1)
    assert CAL.covered_years == {2024, 2025, 2026}


def test_spring_festival_2026_and_its_adjusted_working_saturdays() -> None:
    # 2026 Spring Festival: 15-23 February off; Saturdays 14 and 28 February are working days.
    for day in range(15, 24):
        assert not CAL.is_working_day(date(2026, 2, day))
    assert CAL.is_working_day(date(2026, 2, 14)) and date(2026, 2, 14).weekday() == 5
    assert CAL.is_working_day(date(2026, 2, 28)) and date(2026, 2, 28).weekday() == 5
    assert not CAL.is_working_day(date(2026, 2, 21))  # an ordinary Saturday inside the holiday
    assert CAL.next_working_day_on_or_after(date(2026, 2, 15)) == date(2026, 2, 24)
    assert CAL.previous_working_day_on_or_before(date(2026, 2, 23)) == date(2026, 2, 14)
    assert CAL.working_days_before(date(2026, 2, 24), 1) == date(2026, 2, 14)
    assert CAL.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert CAL.add_working_days(date(2026, 2, 14), 1) == date(2026, 2, 24)
    assert CAL.add_working_days(date(2026, 2, 27), 1) == date(2026, 2, 28)
    assert CAL.add_working_days(date(2026, 2, 24), -1) == date(2026, 2, 14)
    assert CAL.add_working_days(date(2026, 2, 15), 0) == date(2026, 2, 15)


def test_working_days_before_agrees_with_the_package() -> None:
    for due in (date(2026, 2, 18), date(2026, 10, 8), date(2025, 10, 1), date(2026, 1, 4)):
        for n in (1, 7, 30):
            assert CAL.working_days_before(due, n) == chinese_calendar.find_workday(-n, due)
        assert CAL.next_working_day_on_or_after(due) == chinese_calendar.find_workday(0, due)


def test_years_without_data_fall_back_to_weekdays_and_are_flagged_estimated() -> None:
    assert CAL.is_estimated(date(2027, 10, 1)) and CAL.is_working_day(date(2027, 10, 1))  # a Friday
    assert not CAL.is_working_day(date(2027, 10, 2))  # a Saturday
    assert CAL.any_estimated(date(2026, 12, 1), date(2027, 1, 5))
    assert not CAL.any_estimated(date(2026, 1, 1), date(2026, 12, 31))
    # The package knows 2004-2026: asking for more leaves the rest uncovered rather than failing.
    wide = WorkingCalendar.from_chinesecalendar([2026, 2027, 2030])
    assert wide.covered_years == {2026} and wide.is_estimated(date(2030, 5, 1))

    later = MS.model_copy(update={"due_date": date(2027, 3, 2)})
    notices = upcoming([later], local(2026, 11, 2, 10))
    assert notices and all(n.estimated for n in notices)
    assert not any(n.estimated for n in upcoming([MS], local(2026, 10, 20, 10)) if n.fire_at.year == 2026)


def test_the_office_enters_a_later_year_as_a_new_calendar_version() -> None:
    new = CAL.with_year(2027, holidays=[date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 3)])
    assert (CAL.version, new.version) == (1, 2)
    assert CAL.is_working_day(date(2027, 1, 1)) and CAL.is_estimated(date(2027, 1, 1))  # old one unchanged
    assert not new.is_working_day(date(2027, 1, 1)) and not new.is_estimated(date(2027, 1, 1))
    replaced = new.with_year(2027, holidays=[date(2027, 1, 1)])
    assert replaced.version == 3 and replaced.is_working_day(date(2027, 1, 1) + timedelta(days=3))
    with pytest.raises(ValueError, match="not in 2027"):
        CAL.with_year(2027, holidays=[date(2028, 1, 1)])


def test_calendar_validation() -> None:
    with pytest.raises(ValidationError, match="both a holiday"):
        WorkingCalendar(holidays={date(2026, 2, 14)}, workdays={date(2026, 2, 14)}, covered_years={2026})
    with pytest.raises(ValidationError, match="only a Saturday or Sunday"):
        WorkingCalendar(workdays={date(2026, 2, 13)}, covered_years={2026})
    with pytest.raises(ValidationError, match="does not list as covered"):
        WorkingCalendar(holidays={date(2027, 1, 1)}, covered_years={2026})


def test_calendar_is_plain_data_usable_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = CAL.model_dump_json()
    assert CAL.model_dump(mode="json")["holidays"] == sorted(CAL.model_dump(mode="json")["holidays"])
    monkeypatch.setitem(sys.modules, "chinese_calendar", None)  # any import of it now fails
    restored = WorkingCalendar.model_validate_json(payload)
    assert restored == CAL
    assert upcoming([MS], local(2026, 10, 20, 10), calendar=restored) == upcoming([MS], local(2026, 10, 20, 10))


def test_send_slot_is_now_inside_office_hours_and_the_next_opening_otherwise() -> None:
    assert CAL.send_slot(local(2026, 12, 16, 10, 30)) == local(2026, 12, 16, 10, 30)
    assert CAL.send_slot(local(2026, 12, 16, 7)) == local(2026, 12, 16, 9)
    assert CAL.send_slot(local(2026, 12, 16, 18)) == local(2026, 12, 17, 9)
    assert CAL.send_slot(local(2026, 12, 19, 11)) == local(2026, 12, 21, 9)  # Saturday
    assert CAL.send_slot(local(2026, 2, 13, 20)) == local(2026, 2, 14, 9)  # adjusted working Saturday
    assert CAL.send_slot(datetime(2026, 12, 16, 2, 30, tzinfo=timezone.utc)) == datetime(
        2026, 12, 16, 2, 30, tzinfo=timezone.utc)  # 10:30 in Shanghai
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.send_slot(datetime(2026, 12, 16, 10))
    with pytest.raises(ValueError, match="window"):
        CAL.send_slot(local(2026, 12, 16, 10), hour=18, until_hour=9)


# ---------------------------------------------------------------- policies


def test_default_policy() -> None:
    assert DEFAULT_POLICY.before_working_days == [30, 7, 1]
    assert DEFAULT_POLICY.on_due_date and DEFAULT_POLICY.overdue_every_days == 7
    assert [(s.after_working_days, s.recipient) for s in DEFAULT_POLICY.escalation] == [
        (3, RecipientRole.department_leader), (10, RecipientRole.leadership_office)]


@pytest.mark.parametrize("fields, message", [
    ({"before_working_days": [30, -7]}, "greater than or equal to 1"),
    ({"before_working_days": [0]}, "greater than or equal to 1"),
    ({"before_working_days": [7, 30, 7]}, "listed twice"),
    ({"overdue_every_days": 0}, "greater than or equal to 1"),
    ({"escalation": [{"after_working_days": -3, "recipient": "department_leader"}]}, "greater than or equal to 1"),
    ({"escalation": [{"after_working_days": 3, "recipient": "mayor"}]}, "Input should be"),
    ({"recipient": "mayor"}, "Input should be"),
    ({"escalation": [{"after_working_days": 3, "recipient": "department_leader"},
                     {"after_working_days": 5, "recipient": "department_leader"}]}, "only one escalation step"),
    ({"version": 0}, "greater than or equal to 1"),
    ({"policy_id": "no spaces allowed"}, "should match pattern"),
    ({"overdue_evry_days": 3}, "Extra inputs"),
])
def test_policy_validation(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ReminderPolicy.model_validate({"policy_id": "p", **fields})


def test_policy_normalises_order_and_round_trips() -> None:
    policy = ReminderPolicy(policy_id="fast", version=3, before_working_days=[1, 10, 5], overdue_every_days=None,
                            escalation=[EscalationStep(after_working_days=9, recipient="leadership_office"),
                                        EscalationStep(after_working_days=2, recipient="department_leader")])
    assert policy.before_working_days == [10, 5, 1]
    assert [s.after_working_days for s in policy.escalation] == [2, 9]
    book = PolicyBook(organization=policy)
    assert PolicyBook.model_validate_json(book.model_dump_json()) == book


def test_override_resolution_milestone_over_project_over_organization_over_default() -> None:
    org = ReminderPolicy(policy_id="org", version=2, before_working_days=[10])
    prj = ReminderPolicy(policy_id="prj", version=5, before_working_days=[5])
    mil = ReminderPolicy(policy_id="mil", version=1, before_working_days=[2], overdue_every_days=None, escalation=[])
    assert PolicyBook().policy_for("p1", "site") is DEFAULT_POLICY
    assert PolicyBook(organization=org).policy_for("p1", "site") is org
    book = PolicyBook(organization=org, projects={"p1": prj}, milestones={"p1": {"site": mil}})
    assert book.policy_for("p1", "site") is mil
    assert book.policy_for("p1", "other") is prj
    assert book.policy_for("p2", "site") is org  # the same template key in another project

    notices = upcoming([MS], local(2026, 10, 20, 10), book=book)
    assert schedule(notices) == [("before_2", local(2026, 12, 11)), ("due", local(2026, 12, 15))]
    assert {(n.policy_id, n.policy_version) for n in notices} == {("mil", 1)}
    other = MS.model_copy(update={"milestone_id": "other"})
    assert {(n.policy_id, n.policy_version) for n in upcoming([other], local(2026, 10, 20, 10), book=book)} == {
        ("prj", 5)}


# ---------------------------------------------------------------- the schedule


def test_default_ladder_with_exact_local_times() -> None:
    notices = upcoming([MS], local(2026, 10, 20, 10))
    assert schedule(notices) == [
        ("before_30", local(2026, 11, 3)),
        ("before_7", local(2026, 12, 4)),
        ("before_1", local(2026, 12, 14)),
        ("due", local(2026, 12, 15)),
        ("escalation_department_leader", local(2026, 12, 18)),
        ("overdue_7", local(2026, 12, 22)),  # the endless overdue series shows its next repeat only
        ("escalation_leadership_office", local(2026, 12, 29)),
    ]
    by_kind = {n.kind: n for n in notices}
    assert by_kind["before_30"].key == "p1/site/v0/before_30"
    assert by_kind["before_30"].rule == NoticeRule.before and by_kind["due"].rule == NoticeRule.due
    assert by_kind["overdue_7"].rule == NoticeRule.overdue
    assert by_kind["before_7"].recipient == RecipientRole.owner
    assert by_kind["escalation_department_leader"].recipient == RecipientRole.department_leader
    assert by_kind["escalation_leadership_office"].recipient == RecipientRole.leadership_office
    assert {(n.policy_id, n.policy_version, n.calendar_version) for n in notices} == {("default", 1, 1)}
    assert all(n.fire_at.utcoffset() == timedelta(hours=8) and not n.estimated for n in notices)
    assert next_wakeup(notices, local(2026, 10, 20, 10)) == local(2026, 11, 3)
    assert due_now(notices, local(2026, 10, 20, 10)) == []

    no_owner = MS.model_copy(update={"owner": None})
    assert {n.recipient for n in upcoming([no_owner], local(2026, 10, 20, 10)) if n.rule != "escalation"} == {
        RecipientRole.liaison_officer}


def test_spring_festival_holidays_are_skipped_and_adjusted_saturdays_count() -> None:
    due = date(2026, 2, 18)  # a Wednesday inside the holiday
    notices = upcoming([MS.model_copy(update={"due_date": due})], local(2025, 12, 1, 10))
    assert schedule(notices) == [
        ("before_30", local(2026, 1, 6)),
        ("before_7", local(2026, 2, 6)),
        ("before_1", local(2026, 2, 14)),  # the adjusted working Saturday is the last working day before
        ("due", local(2026, 2, 24)),  # the due notice waits for the first working day after the holiday
        ("overdue_7", local(2026, 2, 25)),
        ("escalation_department_leader", local(2026, 2, 26)),
        ("escalation_leadership_office", local(2026, 3, 6)),  # counts Saturday 28 February as working
    ]
    for n in notices:
        if n.rule == NoticeRule.before:
            assert n.fire_at.date() == chinese_calendar.find_workday(-int(n.kind.split("_")[1]), due)


def test_notices_stacked_by_a_holiday_merge_into_the_later_one() -> None:
    # Due on Sunday 15 February 2026: the due notice and the first overdue repeat (22 February)
    # both wait until Tuesday the 24th; one notice goes out and names the other.
    notices = upcoming([MS.model_copy(update={"due_date": date(2026, 2, 15)})], local(2026, 2, 1, 10))
    merged = [n for n in notices if n.fire_at == local(2026, 2, 24)]
    assert [(n.kind, n.replaces, n.nominal_day) for n in merged] == [("overdue_7", ("due",), date(2026, 2, 22))]
    assert "due" not in {n.kind for n in notices}


def test_a_completed_milestone_gets_nothing() -> None:
    done = MS.model_copy(update={"status": "done"})
    assert upcoming([done], local(2026, 10, 20, 10)) == []
    assert upcoming([done], local(2026, 12, 30, 10)) == []


@pytest.mark.parametrize("status", [ProjectStatus.suspended, ProjectStatus.cancelled, ProjectStatus.completed])
def test_a_suspended_or_closed_project_gets_nothing(status: ProjectStatus) -> None:
    assert upcoming([MS.model_copy(update={"project_status": status})], local(2026, 12, 16, 10)) == []


def test_a_planned_project_is_reminded_and_a_resumed_one_catches_up() -> None:
    assert upcoming([MS.model_copy(update={"project_status": ProjectStatus.planned})], local(2026, 10, 20, 10))
    # Suspended over the due date, resumed on 21 December: one catch-up for what fell due meanwhile.
    sent = {key("before_30"), key("before_7")}
    resumed = upcoming([MS], local(2026, 12, 21, 14), sent)
    assert [(n.kind, n.replaces) for n in due_now(resumed, local(2026, 12, 21, 14))] == [
        ("catch_up", ("before_1", "due")), ("escalation_department_leader", ())]


def test_a_moved_due_date_supersedes_the_old_version() -> None:
    ctx = ActionContext(actor=Actor(user_id="u", name="Tester"), request_id="r", now=local(2026, 11, 20, 10))
    state = proj.new_project(NewProject(
        project_id="p1", cooperation_id="c1", cooperation_workflow_id="w1", agreement_id="a1", title="Plant",
        committed_investment="1000.00", responsible_department="Investment Office", responsible_officer="Zhang",
        milestones=[MilestoneSpec(milestone_id="site", name="Site secured", due_date=DUE, owner="Li Wei")],
        created_at=local(2026, 1, 5, 10)))
    [before] = reminder_milestones(state)
    assert (before.due_version, before.scheduled_since) == (0, local(2026, 1, 5, 10))
    old = upcoming([before], local(2026, 11, 20, 10), {key("before_30")})
    assert {n.due_version for n in old} == {0}

    proj.apply(state, MoveMilestone(milestone_id="site", new_due_date=date(2027, 1, 26), reason="land"), ctx)
    [moved] = reminder_milestones(state)
    assert (moved.due_version, moved.scheduled_since) == (1, ctx.now)
    sent = {n.key for n in old} | {key("before_30")}  # everything of the old date, even if delivered
    new = upcoming([moved], ctx.now, sent)
    assert new and {n.due_version for n in new} == {1} and not {n.key for n in new} & sent
    assert all(n.key.startswith("p1/site/v1/") and n.due_date == date(2027, 1, 26) for n in new)
    assert (new[0].kind, new[0].fire_at) == ("before_30", local(2026, 12, 15))


def test_catch_up_after_an_outage_collapses_routine_notices_but_fires_each_escalation() -> None:
    now = local(2026, 12, 30, 10)  # a Wednesday: everything up to overdue_14 (29 December) was missed
    notices = upcoming([MS], now, {key("before_30")})
    assert [(n.kind, n.fire_at, n.recipient) for n in notices] == [
        ("catch_up", now, RecipientRole.owner),
        ("escalation_department_leader", now, RecipientRole.department_leader),
        ("escalation_leadership_office", now, RecipientRole.leadership_office),
        ("overdue_21", local(2027, 1, 5), RecipientRole.owner),
    ]
    catch_up = notices[0]
    assert catch_up.rule == NoticeRule.catch_up and catch_up.key == "p1/site/v0/catch_up:overdue_14"
    assert catch_up.replaces == ("before_7", "before_1", "due", "overdue_7", "overdue_14")
    assert notices[-1].estimated  # 2027 has no official data in this calendar

    delivered = {n.key for n in due_now(notices, now)} | {key("before_30")}
    after = upcoming([MS], now + timedelta(minutes=1), delivered)
    assert schedule(after) == [("overdue_21", local(2027, 1, 5))]
    # A second outage gets its own catch-up key, so the first one does not silence it.
    again = upcoming([MS], local(2027, 1, 20, 11), delivered)
    assert [(n.kind, n.replaces) for n in again if n.fire_at <= local(2027, 1, 20, 11)] == [
        ("catch_up", ("overdue_21", "overdue_28", "overdue_35"))]
    assert again[0].key == "p1/site/v0/catch_up:overdue_35"


def test_catch_up_waits_for_office_hours() -> None:
    now = local(2026, 12, 19, 20)  # Saturday evening; the worker was down since Thursday
    notices = upcoming([MS], now, {key("before_30")})
    assert [(n.kind, n.fire_at, n.replaces) for n in notices] == [
        ("catch_up", local(2026, 12, 21), ("before_7", "before_1", "due")),
        ("escalation_department_leader", local(2026, 12, 21), ()),
        ("overdue_7", local(2026, 12, 22), ()),
        ("escalation_leadership_office", local(2026, 12, 29), ()),
    ]
    assert due_now(notices, now) == [] and next_wakeup(notices, now) == local(2026, 12, 21)
    # Monday morning gives the same answer, now due.
    monday = upcoming([MS], local(2026, 12, 21), {key("before_30")})
    assert [n.key for n in due_now(monday, local(2026, 12, 21))] == [n.key for n in notices[:2]]


def test_a_single_late_notice_goes_out_as_itself() -> None:
    now = local(2026, 12, 15, 9, 5)  # the timer fired five minutes late
    notices = upcoming([MS], now, {key("before_30"), key("before_7"), key("before_1")})
    assert [(n.kind, n.fire_at) for n in due_now(notices, now)] == [("due", now)]
    # Delivered notices of the chain also settle the ones before them.
    assert due_now(upcoming([MS], now, {key("before_1")}), now)[0].kind == "due"
    assert due_now(upcoming([MS], now, {key("due")}), now) == []


def test_each_escalation_step_fires_once() -> None:
    sent = {key(k) for k in ("before_30", "before_7", "before_1", "due")}
    at_step = local(2026, 12, 18)
    [step] = due_now(upcoming([MS], at_step, sent), at_step)
    assert (step.kind, step.recipient) == ("escalation_department_leader", RecipientRole.department_leader)
    sent.add(step.key)
    for later in (local(2026, 12, 18, 15), local(2026, 12, 28, 10), local(2027, 3, 1, 10)):
        assert "escalation_department_leader" not in {n.kind for n in upcoming([MS], later, sent)}
    final = upcoming([MS], local(2026, 12, 29), sent | {key("overdue_7")})
    assert {n.kind for n in due_now(final, local(2026, 12, 29))} == {"overdue_14", "escalation_leadership_office"}


def test_what_if_a_due_date_moves() -> None:
    now = local(2026, 11, 20, 10)  # a Friday
    notices = what_if_due_date(BOOK, CAL, MS, date(2026, 12, 1), now, {key("before_30")})
    # before_30 of 1 December was in October: not owed for a date set today. before_7 is today: owed now.
    assert schedule(notices) == [
        ("before_7", now),
        ("before_1", local(2026, 11, 30)),
        ("due", local(2026, 12, 1)),
        ("escalation_department_leader", local(2026, 12, 4)),
        ("overdue_7", local(2026, 12, 8)),
        ("escalation_leadership_office", local(2026, 12, 15)),
    ]
    assert {n.due_version for n in notices} == {1}
    assert upcoming([MS], now, {key("before_30")}) == what_if_due_date(BOOK, CAL, MS, DUE, now, {key("before_30")})


def test_changing_the_calendar_shows_which_notices_move() -> None:
    now = local(2026, 12, 1, 10)
    new_year = MS.model_copy(update={"milestone_id": "ny", "due_date": date(2027, 1, 1)})
    new = CAL.with_year(2027, holidays=[date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 3)])
    moves = notices_moved_by_calendar(CAL, new, BOOK, [MS, new_year], now, set())
    assert [(m.key, m.before, m.after) for m in moves] == [
        (key("due", milestone="ny"), local(2027, 1, 1), local(2027, 1, 4))]
    assert notices_moved_by_calendar(CAL, CAL, BOOK, [MS, new_year], now, set()) == []
    # A change that stacks two notices on one day shows one disappearing.
    ten_off = CAL.with_year(2027, holidays=[date(2027, 1, 1) + timedelta(days=i) for i in range(10)])
    stacked = {(m.kind, m.before, m.after) for m in notices_moved_by_calendar(CAL, ten_off, BOOK, [new_year], now,
                                                                                set())}
    assert ("due", local(2027, 1, 1), None) in stacked
    assert ("overdue_7", local(2027, 1, 8), local(2027, 1, 11)) in stacked


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        upcoming([MS], datetime(2026, 12, 1, 10))


# ---------------------------------------------------------------- property


RECIPIENTS = [RecipientRole.department_leader, RecipientRole.leadership_office, RecipientRole.owner,
              RecipientRole.liaison_officer]


@st.composite
def policies(draw: st.DrawFn) -> ReminderPolicy:
    recipients = draw(st.lists(st.sampled_from(RECIPIENTS), unique=True, max_size=3))
    return ReminderPolicy(
        policy_id="random",
        version=draw(st.integers(1, 9)),
        before_working_days=draw(st.lists(st.integers(1, 45), unique=True, max_size=4)),
        on_due_date=draw(st.booleans()),
        overdue_every_days=draw(st.none() | st.integers(1, 30)),
        escalation=[EscalationStep(after_working_days=draw(st.integers(1, 25)), recipient=r) for r in recipients],
        recipient=draw(st.sampled_from(RECIPIENTS)),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=policies(),
    due=st.dates(date(2024, 1, 1), date(2027, 12, 31)),
    now=st.datetimes(datetime(2023, 10, 1), datetime(2028, 6, 30), timezones=st.just(timezone.utc)),
    hours=st.integers(0, 22).flatmap(lambda h: st.tuples(st.just(h), st.integers(h + 1, 24))),
    since_days=st.none() | st.integers(-400, 30),
    data=st.data(),
)
def test_property_notices_fire_on_working_days_in_office_hours_and_never_twice(
    policy: ReminderPolicy, due: date, now: datetime, hours: tuple[int, int], since_days: int | None,
    data: st.DataObject,
) -> None:
    hour, until_hour = hours
    book = PolicyBook(projects={"p1": policy})
    since = None if since_days is None else now + timedelta(days=since_days)
    milestone = MS.model_copy(update={"due_date": due, "scheduled_since": since})
    everything = upcoming_notices(book, CAL, [milestone], now, set(), hour, until_hour)
    sent = set(data.draw(st.lists(st.sampled_from([n.key for n in everything]), unique=True)
                         if everything else st.just([])))
    sent |= {"p1/site/v0/unrelated", key("due", version=7)}

    notices = upcoming_notices(book, CAL, [milestone], now, sent, hour, until_hour)

    assert len({n.key for n in notices}) == len(notices)
    assert not {n.key for n in notices} & sent
    for n in notices:
        moment = n.fire_at.astimezone(OFFICE_TZ)
        assert CAL.is_working_day(moment.date())
        assert time(hour) <= moment.time() and (until_hour == 24 or moment.time() < time(until_hour))
        assert moment.time() == time(hour) or n.fire_at == now  # on the hour, or a late notice sent at once
        assert n.fire_at >= now
        assert (n.policy_id, n.policy_version) == ("random", policy.version)
    routine_now = [n for n in due_now(notices, now) if n.rule != NoticeRule.escalation]
    assert len(routine_now) <= 1  # never a flood from one milestone
    wakeup = next_wakeup(notices, now)
    assert wakeup is None or wakeup == min(n.fire_at for n in notices if n.fire_at > now)

    # Delivering what is due leaves nothing due at the same moment.
    delivered = sent | {n.key for n in due_now(notices, now)}
    assert due_now(upcoming_notices(book, CAL, [milestone], now, delivered, hour, until_hour), now) == []
