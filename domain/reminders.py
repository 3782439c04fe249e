"""Milestone reminders: policies, and which notices are owed when.

Everything here is a pure function of its inputs (policies, a `WorkingCalendar`,
milestones, `now` and the keys already delivered), so the project workflow can
recompute the schedule after every signal and on replay, sleep until
`next_wakeup`, and deliver `due_now`. Delivery records `Notice.key`; nothing
else has to be remembered.

The rules, and why:

* Fire days. "Before" offsets count working days back from the due date, so
  they always land on a working day (the previous one, when the due date is a
  holiday). The due-date notice, the overdue repeats and the escalations move
  forward to the next working day: nobody should be told a deadline passed
  before it did. Every notice goes out at `hour`:00 office time (UTC+8).
* One routine chain per milestone (before..., due, overdue...). A later notice
  makes the earlier ones stale, so when a holiday pushes two of them onto the
  same day only the later one is kept (it lists the other in `replaces`), and
  once a notice of the chain is delivered nothing earlier is owed.
* Outages. When several notices of the chain were missed, one `catch_up`
  notice replaces them (listing their kinds). Escalations go to different
  people, so each missed step is still sent, once. Missed notices go out at the
  next moment the office is open (`WorkingCalendar.send_slot`): now, or
  `hour`:00 of the next working day, never at night.
* Versions. The key holds the due-date version (the number of moves), so a move
  makes every notice of the old date obsolete at once. Notices whose day came
  before the current due date was set (`scheduled_since`) were never owed.
* Silence. Done milestones and suspended, cancelled or completed projects get
  nothing; a resumed project gets one catch-up for what fell due meanwhile.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from domain.calendar import WorkingCalendar, at_local_hour, check_hours, office_date
from domain.project import ProjectState, ProjectStatus
from domain.types import Name

DEFAULT_HOUR = 9
DEFAULT_UNTIL_HOUR = 18
MAX_OFFSET = 400
"""No offset beyond about a working year and a half: it bounds every loop and catches typos."""

SILENT_PROJECT_STATUSES = frozenset({ProjectStatus.suspended, ProjectStatus.cancelled, ProjectStatus.completed})


class RecipientRole(StrEnum):
    liaison_officer = "liaison_officer"
    """联络员: the project's responsible officer; gets routine notices when a milestone has no owner."""
    owner = "owner"
    department_leader = "department_leader"
    leadership_office = "leadership_office"


class NoticeRule(StrEnum):
    before = "before"
    due = "due"
    overdue = "overdue"
    escalation = "escalation"
    catch_up = "catch_up"


# ---------------------------------------------------------------- policies

WorkingDayOffset = Annotated[int, Field(ge=1, le=MAX_OFFSET)]
PolicyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,299}$")]
"""Stored policies are named after their scope: "organization:<id>", "milestone:<project>/<milestone>"."""


class EscalationStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    after_working_days: WorkingDayOffset
    recipient: RecipientRole


DEFAULT_ESCALATION = (
    EscalationStep(after_working_days=3, recipient=RecipientRole.department_leader),
    EscalationStep(after_working_days=10, recipient=RecipientRole.leadership_office),
)


class ReminderPolicy(BaseModel):
    """When to remind, as data an office can edit. Identified by `policy_id`; every edit bumps `version`.

    A policy applies whole: overrides replace it rather than merge field by
    field, so "policy X version N" says exactly which rules produced a notice.
    """

    model_config = ConfigDict(extra="forbid")

    policy_id: PolicyId
    version: int = Field(default=1, ge=1)
    name: Name | None = None
    before_working_days: list[WorkingDayOffset] = Field(default_factory=lambda: [30, 7, 1])
    on_due_date: bool = True
    overdue_every_days: int | None = Field(default=7, ge=1, le=MAX_OFFSET)
    """Calendar days between overdue repeats (so weekly ones keep their weekday); None: no repeats."""
    escalation: list[EscalationStep] = Field(default_factory=lambda: list(DEFAULT_ESCALATION))
    recipient: RecipientRole = RecipientRole.owner
    """Who gets the routine (before/due/overdue) notices."""

    @field_validator("before_working_days")
    @classmethod
    def _distinct_offsets(cls, offsets: list[int]) -> list[int]:
        if len(set(offsets)) != len(offsets):
            raise ValueError("the same offset is listed twice")
        return sorted(offsets, reverse=True)

    @field_validator("escalation")
    @classmethod
    def _distinct_recipients(cls, steps: list[EscalationStep]) -> list[EscalationStep]:
        # A step is keyed by its recipient (it fires once per due date), so one step per recipient.
        recipients = [s.recipient for s in steps]
        if len(set(recipients)) != len(recipients):
            raise ValueError("each recipient can appear in only one escalation step")
        return sorted(steps, key=lambda s: s.after_working_days)


DEFAULT_POLICY = ReminderPolicy(policy_id="default", name="Office default")


class PolicyBook(BaseModel):
    """An organization's policies: resolution is milestone > project > organization > `DEFAULT_POLICY`."""

    model_config = ConfigDict(extra="forbid")

    organization: ReminderPolicy | None = None
    projects: dict[str, ReminderPolicy] = Field(default_factory=dict)
    milestones: dict[str, dict[str, ReminderPolicy]] = Field(default_factory=dict)
    """project_id -> milestone_id -> policy: milestone ids repeat across projects (template keys)."""

    def policy_for(self, project_id: str, milestone_id: str) -> ReminderPolicy:
        return (self.milestones.get(project_id, {}).get(milestone_id)
                or self.projects.get(project_id)
                or self.organization
                or DEFAULT_POLICY)


# ---------------------------------------------------------------- inputs and outputs


class ReminderMilestone(BaseModel):
    """What the schedule needs to know about one milestone and its project."""

    project_id: str
    milestone_id: str
    name: str
    due_date: date
    status: Literal["open", "done"] = "open"
    owner: str | None = None
    due_version: int = Field(default=0, ge=0)
    """The number of times the due date moved: part of every notice key."""
    project_status: ProjectStatus = ProjectStatus.active
    scheduled_since: AwareDatetime | None = None
    """When the current due date was set; notices for earlier days were never owed. None: all are."""


def reminder_milestones(state: ProjectState) -> list[ReminderMilestone]:
    """The milestones of a project as the schedule sees them.

    A due date counts as set at its last move, or else when the project was
    created (a milestone added later is not dated separately, so notices of its
    past days are owed and arrive as one catch-up).
    """
    return [
        ReminderMilestone(
            project_id=state.project_id, milestone_id=m.milestone_id, name=m.name, due_date=m.due_date,
            status=m.status, owner=m.owner, due_version=len(m.moves), project_status=state.status,
            scheduled_since=m.moves[-1].moved_at if m.moves else state.created_at,
        )
        for m in state.milestones
    ]


class Notice(BaseModel):
    """One reminder owed. Recipient names and channels are resolved at delivery."""

    model_config = ConfigDict(frozen=True)

    key: str
    """Business key: project/milestone/v<due version>/<kind>. Delivery records it; it is never owed twice."""
    project_id: str
    milestone_id: str
    milestone_name: str
    due_date: date
    due_version: int
    kind: str
    """before_30, due, overdue_14, escalation_department_leader, catch_up, ... (a catch-up's key ends
    in catch_up:<last kind replaced>)."""
    rule: NoticeRule
    rule_text: str
    nominal_day: date
    """The day the rule names, before moving to a working day."""
    fire_at: datetime
    """When it goes out: its planned time, or for a missed notice the moment it is caught up."""
    planned_at: datetime | None = None
    """When the rule placed it (for a catch-up: the last notice it replaces). Lateness is measured from here."""
    recipient: RecipientRole
    policy_id: str
    policy_version: int
    calendar_name: str
    calendar_version: int
    estimated: bool
    """The working-day count touched a year without official holiday data: the date may still move."""
    replaces: tuple[str, ...] = ()
    """Kinds this notice stands in for: the missed ones of a catch-up, or same-day ones of a holiday."""


class NoticeMove(BaseModel):
    """A notice whose time a calendar change would alter (None: it would appear or disappear)."""

    key: str
    project_id: str
    milestone_id: str
    kind: str
    before: datetime | None
    after: datetime | None


def notice_key(project_id: str, milestone_id: str, due_version: int, kind: str) -> str:
    return f"{project_id}/{milestone_id}/v{due_version}/{kind}"


def catch_up_suffix(through: str) -> str:
    """The key suffix of a catch-up: named after the last notice it replaces, so a second outage gets a new key."""
    return f"catch_up:{through}"


# ---------------------------------------------------------------- the schedule


@dataclass(frozen=True)
class _Planned:
    kind: str
    rule: NoticeRule
    rule_text: str
    nominal_day: date
    fire_day: date
    recipient: RecipientRole
    replaces: tuple[str, ...] = ()


def upcoming_notices(
    policies: PolicyBook,
    calendar: WorkingCalendar,
    milestones: Iterable[ReminderMilestone],
    now: datetime,
    sent_keys: Collection[str],
    hour: int = DEFAULT_HOUR,
    until_hour: int = DEFAULT_UNTIL_HOUR,
) -> list[Notice]:
    """Every notice still owed, by fire time: those with `fire_at` <= `now` are due now.

    The overdue series is endless, so only its next repeat is listed.
    """
    check_hours(hour, until_hour)
    office_date(now)  # refuses a naive `now`
    sent = set(sent_keys)
    notices = [
        notice
        for m in milestones
        for notice in _milestone_notices(policies.policy_for(m.project_id, m.milestone_id), calendar, m,
                                         now, sent, hour, until_hour)
    ]
    return sorted(notices, key=lambda n: (n.fire_at, n.project_id, n.milestone_id, n.key))


def due_now(notices: Iterable[Notice], now: datetime) -> list[Notice]:
    """The notices to deliver at `now`."""
    return [n for n in notices if n.fire_at <= now]


def next_wakeup(notices: Iterable[Notice], now: datetime) -> datetime | None:
    """The earliest `fire_at` after `now`: the workflow's wait_condition timeout. None: nothing pending."""
    return min((n.fire_at for n in notices if n.fire_at > now), default=None)


def what_if_due_date(
    policies: PolicyBook,
    calendar: WorkingCalendar,
    milestone: ReminderMilestone,
    new_due_date: date,
    now: datetime,
    sent_keys: Collection[str] = (),
    hour: int = DEFAULT_HOUR,
    until_hour: int = DEFAULT_UNTIL_HOUR,
) -> list[Notice]:
    """The notices that would be owed if the due date moved to `new_due_date` at `now`.

    A move starts a new due-date version set at `now`, so past notices of the
    new date are not owed and `sent_keys` (of the old version) do not apply;
    with the same date nothing moves and `sent_keys` count as usual.
    """
    if new_due_date != milestone.due_date:
        milestone = milestone.model_copy(update={"due_date": new_due_date, "due_version": milestone.due_version + 1,
                                                 "scheduled_since": now})
        sent_keys = ()
    return upcoming_notices(policies, calendar, [milestone], now, sent_keys, hour, until_hour)


def notices_moved_by_calendar(
    old: WorkingCalendar,
    new: WorkingCalendar,
    policies: PolicyBook,
    milestones: Iterable[ReminderMilestone],
    now: datetime,
    sent_keys: Collection[str],
    hour: int = DEFAULT_HOUR,
    until_hour: int = DEFAULT_UNTIL_HOUR,
) -> list[NoticeMove]:
    """The owed notices whose time would change if `new` replaced `old`, before it is applied."""
    milestones = list(milestones)
    before = {n.key: n for n in upcoming_notices(policies, old, milestones, now, sent_keys, hour, until_hour)}
    after = {n.key: n for n in upcoming_notices(policies, new, milestones, now, sent_keys, hour, until_hour)}
    moves = []
    for key in before.keys() | after.keys():
        was, will = before.get(key), after.get(key)
        if was is not None and will is not None and was.fire_at == will.fire_at:
            continue
        some = was or will
        assert some is not None
        moves.append(NoticeMove(key=key, project_id=some.project_id, milestone_id=some.milestone_id, kind=some.kind,
                                before=was and was.fire_at, after=will and will.fire_at))
    return sorted(moves, key=lambda m: (min(t for t in (m.before, m.after) if t is not None), m.key))


def _milestone_notices(policy: ReminderPolicy, calendar: WorkingCalendar, m: ReminderMilestone, now: datetime,
                       sent: set[str], hour: int, until_hour: int) -> list[Notice]:
    if m.status == "done" or m.project_status in SILENT_PROJECT_STATUSES:
        return []
    slot = calendar.send_slot(now, hour, until_hour)

    def key(kind: str) -> str:
        return notice_key(m.project_id, m.milestone_id, m.due_version, kind)

    def late(p: _Planned) -> bool:
        # The slot is now, or the next opening; anything due by then goes out together.
        return at_local_hour(p.fire_day, hour) <= slot

    def notice(p: _Planned, fire_at: datetime | None = None, key_kind: str | None = None) -> Notice:
        return Notice(
            key=key(key_kind or p.kind), project_id=m.project_id, milestone_id=m.milestone_id, milestone_name=m.name,
            due_date=m.due_date, due_version=m.due_version, kind=p.kind, rule=p.rule, rule_text=p.rule_text,
            nominal_day=p.nominal_day, fire_at=fire_at or at_local_hour(p.fire_day, hour),
            planned_at=at_local_hour(p.fire_day, hour), recipient=p.recipient,
            policy_id=policy.policy_id, policy_version=policy.version, calendar_name=calendar.name,
            calendar_version=calendar.version, estimated=calendar.any_estimated(p.fire_day, m.due_date),
            replaces=p.replaces,
        )

    since = office_date(m.scheduled_since) if m.scheduled_since is not None else None
    owed = [p for p in _routine_chain(policy, calendar, m, slot, hour) if since is None or p.fire_day >= since]
    delivered = [i for i, p in enumerate(owed) if key(p.kind) in sent or key(catch_up_suffix(p.kind)) in sent]
    pending = owed[delivered[-1] + 1:] if delivered else owed
    missed = [p for p in pending if late(p)]
    out = [notice(p) for p in pending if not late(p)]
    if len(missed) == 1:
        out.append(notice(missed[0], fire_at=slot))
    elif missed:
        last = missed[-1]
        replaced = tuple(kind for p in missed for kind in (*p.replaces, p.kind))
        catch_up = replace(last, kind=NoticeRule.catch_up.value, rule=NoticeRule.catch_up, replaces=replaced,
                           rule_text=f"catch-up for {len(replaced)} missed notices, the last one: {last.rule_text}")
        out.append(notice(catch_up, fire_at=slot, key_kind=catch_up_suffix(last.kind)))

    for p in _escalations(policy, calendar, m):
        if (since is None or p.fire_day >= since) and key(p.kind) not in sent:
            out.append(notice(p, fire_at=slot if late(p) else None))
    return out


def _routine_chain(policy: ReminderPolicy, calendar: WorkingCalendar, m: ReminderMilestone, slot: datetime,
                   hour: int) -> list[_Planned]:
    """Before, due and overdue notices in fire order, same-day ones merged into the later.

    Overdue repeats are listed up to the first fire day after `slot` (all of its
    repeats, should a holiday stack several on it).
    """
    recipient = policy.recipient
    if recipient == RecipientRole.owner and not m.owner:
        recipient = RecipientRole.liaison_officer
    chain = []
    for n in policy.before_working_days:
        day = calendar.working_days_before(m.due_date, n)
        chain.append(_Planned(f"before_{n}", NoticeRule.before, f"{n} working days before the due date",
                              day, day, recipient))
    if policy.on_due_date:
        chain.append(_Planned("due", NoticeRule.due, "on the due date", m.due_date,
                              calendar.next_working_day_on_or_after(m.due_date), recipient))
    if policy.overdue_every_days:
        first_future: date | None = None
        days = policy.overdue_every_days
        while True:
            nominal = m.due_date + timedelta(days=days)
            fire_day = calendar.next_working_day_on_or_after(nominal)
            if at_local_hour(fire_day, hour) > slot:
                if first_future is None:
                    first_future = fire_day
                elif fire_day != first_future:
                    break
            chain.append(_Planned(f"overdue_{days}", NoticeRule.overdue,
                                  f"every {policy.overdue_every_days} days while overdue ({days} days)",
                                  nominal, fire_day, recipient))
            days += policy.overdue_every_days

    merged: list[_Planned] = []
    for p in chain:
        if merged and merged[-1].fire_day == p.fire_day:
            earlier = merged.pop()
            p = replace(p, replaces=(*earlier.replaces, earlier.kind, *p.replaces))
        merged.append(p)
    return merged


def _escalations(policy: ReminderPolicy, calendar: WorkingCalendar, m: ReminderMilestone) -> list[_Planned]:
    steps = []
    for step in policy.escalation:
        day = calendar.add_working_days(m.due_date, step.after_working_days)
        steps.append(_Planned(f"escalation_{step.recipient.value}", NoticeRule.escalation,
                              f"{step.after_working_days} working days overdue: escalate to {step.recipient.value}",
                              day, day, step.recipient))
    return steps


# ---------------------------------------------------------------- what the workflow carries


class ReminderSetup(BaseModel):
    """Everything the schedule needs besides the project: loaded by an activity, so the workflow
    replays with the policies and calendar it actually used, and reloaded when they change."""

    policies: PolicyBook = Field(default_factory=PolicyBook)
    calendar: WorkingCalendar
    hour: int = DEFAULT_HOUR
    until_hour: int = DEFAULT_UNTIL_HOUR
    give_up_after: timedelta = timedelta(hours=72)
    """How long a channel that is down is retried before the failure is reported."""
    attempt_timeout: timedelta = timedelta(minutes=2)
    """One delivery attempt; a worker that dies mid-attempt is noticed after this long."""
    first_retry: timedelta = timedelta(seconds=30)
    """The first retry interval; it doubles up to an hour."""


class SetupRequest(BaseModel):
    project_id: str
    cooperation_id: str


class Dispatch(BaseModel):
    """A notice handed to delivery, and the workflow time it was handed over."""

    notice: Notice
    dispatched_at: AwareDatetime


class FailedDispatch(BaseModel):
    """A dispatch whose channels stayed down past `give_up_after`."""

    dispatch: Dispatch
    reason: str


class ReminderMemory(BaseModel):
    """What the reminder loop carries through continue-as-new."""

    sent_keys: list[str] = Field(default_factory=list)
    in_flight: list[Dispatch] = Field(default_factory=list)
    """Dispatches not finished when the run ended: restarted by the next run (delivery is idempotent)."""


def keys_still_relevant(keys: Iterable[str], milestones: Iterable[ReminderMilestone]) -> list[str]:
    """The sent keys that can still matter: those of the current due-date version of open milestones.

    A completed milestone or a superseded due date owes nothing more, so its keys can go; this
    keeps the workflow's memory bounded over years of moves.
    """
    prefixes = tuple(notice_key(m.project_id, m.milestone_id, m.due_version, "")
                     for m in milestones if m.status == "open")
    return sorted(k for k in keys if k.startswith(prefixes))
