"""The investment project: milestones, realized investment, suspension and cancellation.

Same contract as `domain.cooperation.apply`: mutate in place, return the audit
`Change`, or raise a `DomainError`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, computed_field

from domain.audit import ActionContext, Change, change_of
from domain.errors import Invalid, NotFound, Refused, check_record_size
from domain.types import Identifier, Money, Name, PositiveMoney, ShortText


class ProjectStatus(StrEnum):
    planned = "planned"
    active = "active"
    suspended = "suspended"
    completed = "completed"
    cancelled = "cancelled"


CLOSED_STATUSES = {ProjectStatus.completed, ProjectStatus.cancelled}
MAX_TOTAL = Decimal("99999999999999.99")  # what numeric(16, 2) holds


class MilestoneSpec(BaseModel):
    """A milestone as planned: created with the project or added later."""

    milestone_id: Identifier
    name: Name
    due_date: date
    owner: Name | None = None


class DueDateMove(BaseModel):
    old_due_date: date
    new_due_date: date
    reason: str
    moved_by: str
    moved_at: datetime


class Milestone(BaseModel):
    milestone_id: str
    name: str
    due_date: date
    owner: str | None = None
    status: Literal["open", "done"] = "open"
    completed_on: date | None = None
    evidence: str | None = None
    completed_by: str | None = None
    # Every move of the due date is kept; reminders key on len(moves) as the due-date version.
    moves: list[DueDateMove] = Field(default_factory=list)


class InvestmentEntry(BaseModel):
    entry_id: str
    received_on: date
    amount: Decimal
    source_note: str
    recorded_by: str


class ProjectState(BaseModel):
    project_id: str
    cooperation_id: str
    cooperation_workflow_id: str
    agreement_id: str
    title: str
    site: str | None = None
    committed_investment: Decimal
    responsible_department: str
    responsible_officer: str
    cooperation_department: str | None = None
    """The department leading the cooperation: its liaison officers may act on the project too."""
    status: ProjectStatus = ProjectStatus.planned
    status_before_suspension: ProjectStatus | None = None
    status_reason: str | None = None
    milestones: list[Milestone] = Field(default_factory=list)
    investments: list[InvestmentEntry] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    seq: int = 0

    def milestone(self, milestone_id: str) -> Milestone:
        found = next((m for m in self.milestones if m.milestone_id == milestone_id), None)
        if found is None:
            raise NotFound(f"milestone {milestone_id} is not part of this project")
        return found

    @computed_field  # type: ignore[prop-decorator]
    @property
    def realized_investment(self) -> Decimal:
        return sum((e.amount for e in self.investments), Decimal("0.00"))


# ---------------------------------------------------------------- commands


class AddMilestone(BaseModel):
    kind: Literal["add_milestone"] = "add_milestone"
    milestone: MilestoneSpec


class MoveMilestone(BaseModel):
    kind: Literal["move_milestone"] = "move_milestone"
    milestone_id: Identifier
    new_due_date: date
    reason: ShortText


class CompleteMilestone(BaseModel):
    kind: Literal["complete_milestone"] = "complete_milestone"
    milestone_id: Identifier
    completed_on: date
    evidence: ShortText


class RecordInvestment(BaseModel):
    kind: Literal["record_investment"] = "record_investment"
    entry_id: Identifier
    received_on: date
    amount: PositiveMoney
    source_note: ShortText


class SuspendProject(BaseModel):
    kind: Literal["suspend"] = "suspend"
    reason: ShortText


class ResumeProject(BaseModel):
    kind: Literal["resume"] = "resume"
    comment: ShortText | None = None


class CancelProject(BaseModel):
    kind: Literal["cancel"] = "cancel"
    reason: ShortText


ProjectCommand = Annotated[
    Union[AddMilestone, MoveMilestone, CompleteMilestone, RecordInvestment, SuspendProject, ResumeProject, CancelProject],
    Field(discriminator="kind"),
]


class NewProject(BaseModel):
    """The child workflow's input on first start."""

    project_id: str
    cooperation_id: str
    cooperation_workflow_id: str
    agreement_id: str
    title: str
    site: str | None = None
    committed_investment: Money
    responsible_department: str
    responsible_officer: str
    milestones: list[MilestoneSpec]
    created_at: datetime
    cooperation_department: str | None = None


def new_project(spec: NewProject) -> ProjectState:
    return ProjectState(
        **spec.model_dump(exclude={"milestones"}),
        milestones=[Milestone(**m.model_dump()) for m in spec.milestones],
        updated_at=spec.created_at,
    )


# ---------------------------------------------------------------- the state machine


def apply(state: ProjectState, cmd: ProjectCommand, ctx: ActionContext) -> Change:
    if state.status in CLOSED_STATUSES:
        raise Refused(f"the project is {state.status.value}; nothing can change any more")
    if state.status == ProjectStatus.suspended and not isinstance(cmd, (ResumeProject, CancelProject)):
        raise Refused(f"the project is suspended ({state.status_reason}); resume it first")
    change = _HANDLERS[type(cmd)](state, cmd, ctx)
    state.updated_at = ctx.now
    check_record_size(state, "project")
    return change


def _add_milestone(state: ProjectState, cmd: AddMilestone, ctx: ActionContext) -> Change:
    if any(m.milestone_id == cmd.milestone.milestone_id for m in state.milestones):
        raise Refused(f"milestone {cmd.milestone.milestone_id} already exists")
    milestone = Milestone(**cmd.milestone.model_dump())
    state.milestones.append(milestone)
    return change_of("milestone.added", "milestone", milestone.milestone_id, None, milestone)


def _move_milestone(state: ProjectState, cmd: MoveMilestone, ctx: ActionContext) -> Change:
    milestone = state.milestone(cmd.milestone_id)
    if milestone.status == "done":
        raise Refused(f"milestone {milestone.name!r} is done; its due date no longer moves")
    if cmd.new_due_date == milestone.due_date:
        raise Invalid(f"the milestone is already due on {milestone.due_date.isoformat()}")
    before = milestone.model_copy(deep=True)
    milestone.moves.append(DueDateMove(old_due_date=milestone.due_date, new_due_date=cmd.new_due_date,
                                       reason=cmd.reason, moved_by=ctx.actor.name, moved_at=ctx.now))
    milestone.due_date = cmd.new_due_date
    return change_of("milestone.moved", "milestone", milestone.milestone_id, before, milestone,
                     comment=cmd.reason, exclude={"moves"})


def _complete_milestone(state: ProjectState, cmd: CompleteMilestone, ctx: ActionContext) -> Change:
    milestone = state.milestone(cmd.milestone_id)
    if milestone.status == "done":
        raise Refused(f"milestone {milestone.name!r} was already completed on {milestone.completed_on}")
    if cmd.completed_on > ctx.today():
        raise Invalid("completed_on is in the future")
    before = milestone.model_copy(deep=True)
    milestone.status = "done"
    milestone.completed_on, milestone.evidence, milestone.completed_by = cmd.completed_on, cmd.evidence, ctx.actor.name
    _activate(state)
    if all(m.status == "done" for m in state.milestones):
        state.status = ProjectStatus.completed
    return change_of("milestone.completed", "milestone", milestone.milestone_id, before, milestone,
                     comment=cmd.evidence, exclude={"moves"})


def _activate(state: ProjectState) -> None:
    """The first completed milestone or first money in makes a planned project active."""
    if state.status == ProjectStatus.planned:
        state.status = ProjectStatus.active


def _record_investment(state: ProjectState, cmd: RecordInvestment, ctx: ActionContext) -> Change:
    if any(e.entry_id == cmd.entry_id for e in state.investments):
        raise Refused(f"investment entry {cmd.entry_id} is already recorded")
    if cmd.received_on > ctx.today():
        raise Invalid("received_on is in the future")
    if state.realized_investment + cmd.amount > MAX_TOTAL:
        raise Invalid(f"the realized total would exceed CNY {MAX_TOTAL:,}; check the amount")
    entry = InvestmentEntry(entry_id=cmd.entry_id, received_on=cmd.received_on, amount=cmd.amount,
                            source_note=cmd.source_note, recorded_by=ctx.actor.name)
    state.investments.append(entry)
    _activate(state)
    return change_of("investment.recorded", "investment", entry.entry_id, None, entry)


def _set_status(state: ProjectState, action: str, status: ProjectStatus, reason: str | None) -> Change:
    before = {"status": state.status.value}
    state.status = status
    state.status_reason = reason
    return Change(action=action, entity_type="project", entity_id=state.project_id, before=before,
                  after={"status": status.value}, comment=reason)


def _suspend(state: ProjectState, cmd: SuspendProject, ctx: ActionContext) -> Change:
    state.status_before_suspension = state.status
    return _set_status(state, "project.suspended", ProjectStatus.suspended, cmd.reason)


def _resume(state: ProjectState, cmd: ResumeProject, ctx: ActionContext) -> Change:
    if state.status != ProjectStatus.suspended:
        raise Refused(f"the project is {state.status.value}, not suspended")
    previous = state.status_before_suspension or ProjectStatus.active
    state.status_before_suspension = None
    return _set_status(state, "project.resumed", previous, cmd.comment)


def _cancel(state: ProjectState, cmd: CancelProject, ctx: ActionContext) -> Change:
    return _set_status(state, "project.cancelled", ProjectStatus.cancelled, cmd.reason)


_HANDLERS = {
    AddMilestone: _add_milestone,
    MoveMilestone: _move_milestone,
    CompleteMilestone: _complete_milestone,
    RecordInvestment: _record_investment,
    SuspendProject: _suspend,
    ResumeProject: _resume,
    CancelProject: _cancel,
}
