"""The cooperation: its stage, negotiation record, agreements, review chain and signatures.

`apply(state, command, ctx)` is the whole state machine. It mutates `state` in
place and returns the audit `Change`, or raises a `DomainError` and leaves the
caller to discard the copy it passed. The workflow runs it twice: once on a copy
in the Update validator (so a refused action never enters history) and once for
real in the handler.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, model_validator

from domain.audit import ActionContext, Change, change_of
from domain.documents import DocumentKind, DocumentRef
from domain.errors import Invalid, NotFound, Refused, check_record_size
from domain.project import MilestoneSpec, ProjectStatus
from domain.templates import DEFAULT_REVIEW_CHAIN
from domain.types import Identifier, LongText, Money, Name, ShortText


class Stage(StrEnum):
    negotiating = "negotiating"
    framework_signed = "framework_signed"
    in_delivery = "in_delivery"
    completed = "completed"
    terminated = "terminated"


CLOSED_STAGES = {Stage.completed, Stage.terminated}



class NegotiationKind(StrEnum):
    meeting = "meeting"
    inspection_visit = "inspection_visit"
    forum = "forum"
    draft_version = "draft_version"
    note = "note"


class AgreementKind(StrEnum):
    framework = "framework"  # 战略合作框架协议
    investment = "investment"  # 项目投资协议


class AgreementStatus(StrEnum):
    draft = "draft"
    in_review = "in_review"
    approved = "approved"
    signed = "signed"


class StepStatus(StrEnum):
    pending = "pending"
    approved = "approved"


# ---------------------------------------------------------------- entities


class NegotiationDetails(BaseModel):
    """A meeting, visit, forum, draft version or note as staff enter it."""

    kind: NegotiationKind
    occurred_on: date
    ends_on: date | None = None
    place: Name | None = None
    participants: list[Name] = Field(default_factory=list, max_length=100)
    summary: LongText = ""

    @model_validator(mode="after")
    def _dates_in_order(self) -> NegotiationDetails:
        if self.ends_on and self.ends_on < self.occurred_on:
            raise ValueError("ends_on must not be before occurred_on")
        return self


class NegotiationEvent(NegotiationDetails):
    event_id: Identifier
    recorded_by: str = ""


class Party(BaseModel):
    """One party to an agreement and the person designated to sign for it."""

    organization_id: Identifier
    organization_name: Name
    signatory_name: Name
    signatory_title: Name


class ReviewStep(BaseModel):
    name: Name
    status: StepStatus = StepStatus.pending
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None
    document: DocumentRef | None = None  # the draft version the step approved


class ReviewDecision(BaseModel):
    """Every approve/reject stays in the agreement's log, including rejected rounds."""

    step: str
    decision: Literal["approved", "rejected"]
    by: str
    at: datetime
    comment: str | None = None
    document: DocumentRef | None = None  # the draft version decided on


class Signature(BaseModel):
    organization_id: str
    signatory_name: str
    signatory_title: str
    signed_on: date
    recorded_by: str
    document: DocumentRef | None = None  # the signed original this signature was recorded with


class Agreement(BaseModel):
    agreement_id: Identifier
    kind: AgreementKind
    title: Name
    parties: list[Party]
    review_steps: list[ReviewStep]
    status: AgreementStatus = AgreementStatus.draft
    review_log: list[ReviewDecision] = Field(default_factory=list)
    signatures: list[Signature] = Field(default_factory=list)
    signed_on: date | None = None
    revision: int = 1
    authors: list[str] = Field(default_factory=list)
    """User ids of whoever drafted or edited it: they may not decide its review steps."""
    signed_document: DocumentRef | None = None
    """The signed original, sealed: set by the last signature or by `seal_signed_original`, never replaced."""

    def current_step(self) -> ReviewStep | None:
        return next((s for s in self.review_steps if s.status == StepStatus.pending), None)

    def signature_of(self, organization_id: str) -> Signature | None:
        return next((s for s in self.signatures if s.organization_id == organization_id), None)


class ProjectRef(BaseModel):
    """What the cooperation knows of a child project: enough to decide completion."""

    project_id: str
    agreement_id: str
    title: str
    status: ProjectStatus = ProjectStatus.planned


class CooperationState(BaseModel):
    cooperation_id: Identifier
    title: Name
    lead_organization_id: Identifier
    lead_organization_name: Name
    partner_organization_id: Identifier
    partner_organization_name: Name
    areas: list[Name] = Field(default_factory=list)
    liaison_officer: Name
    department: Name | None = None
    started_on: date | None = None
    target_signing_date: date | None = None
    description: LongText = ""
    stage: Stage = Stage.negotiating
    termination_reason: str | None = None
    negotiation: list[NegotiationEvent] = Field(default_factory=list)
    agreements: list[Agreement] = Field(default_factory=list)
    projects: list[ProjectRef] = Field(default_factory=list)
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Event sequence: (workflow id, seq) keys every read-model write and audit row.
    seq: int = 0

    def agreement(self, agreement_id: str) -> Agreement:
        found = next((a for a in self.agreements if a.agreement_id == agreement_id), None)
        if found is None:
            raise NotFound(f"agreement {agreement_id} is not part of this cooperation")
        return found

    def project(self, project_id: str) -> ProjectRef | None:
        return next((p for p in self.projects if p.project_id == project_id), None)

    def framework_signed(self) -> bool:
        return any(a.kind == AgreementKind.framework and a.status == AgreementStatus.signed for a in self.agreements)


# ---------------------------------------------------------------- commands


class CooperationDetails(BaseModel):
    """What staff enter to open a cooperation (the API's request body extends it)."""

    title: Name
    lead_organization_id: Identifier
    partner_organization_id: Identifier
    areas: list[Name] = Field(default_factory=list, max_length=50)
    liaison_officer: Name
    department: Name | None = None
    started_on: date | None = None
    target_signing_date: date | None = None
    description: LongText = ""

    @model_validator(mode="after")
    def _consistent(self) -> CooperationDetails:
        if self.started_on and self.target_signing_date and self.target_signing_date < self.started_on:
            raise ValueError("target_signing_date must not be before started_on")
        if self.lead_organization_id == self.partner_organization_id:
            raise ValueError("lead and partner must be different organizations")
        return self


class CreateCooperation(CooperationDetails):
    """Input that opens a cooperation; the API fills in organization names from the registry."""

    kind: Literal["create_cooperation"] = "create_cooperation"
    lead_organization_name: Name
    partner_organization_name: Name


class RecordNegotiation(BaseModel):
    kind: Literal["record_negotiation"] = "record_negotiation"
    event: NegotiationEvent


class PartyInput(BaseModel):
    organization_id: Identifier
    organization_name: Name
    signatory_name: Name
    signatory_title: Name


def _check_parties(parties: list[PartyInput]) -> None:
    ids = [p.organization_id for p in parties]
    if len(set(ids)) != len(ids):
        raise ValueError("each organization may appear only once among the parties")


class DraftAgreement(BaseModel):
    kind: Literal["draft_agreement"] = "draft_agreement"
    agreement_id: Identifier
    agreement_kind: AgreementKind
    title: Name
    parties: list[PartyInput] = Field(min_length=2, max_length=20)
    review_steps: list[Name] = Field(default_factory=lambda: list(DEFAULT_REVIEW_CHAIN), max_length=10)

    @model_validator(mode="after")
    def _unique_parties(self) -> DraftAgreement:
        _check_parties(self.parties)
        return self


class EditAgreement(BaseModel):
    kind: Literal["edit_agreement"] = "edit_agreement"
    agreement_id: Identifier
    title: Name | None = None
    parties: list[PartyInput] | None = Field(default=None, min_length=2, max_length=20)
    review_steps: list[Name] | None = Field(default=None, max_length=10)

    @model_validator(mode="after")
    def _unique_parties(self) -> EditAgreement:
        if self.parties is not None:
            _check_parties(self.parties)
        return self


class SubmitAgreement(BaseModel):
    kind: Literal["submit_agreement"] = "submit_agreement"
    agreement_id: Identifier


class DecideReviewStep(BaseModel):
    kind: Literal["decide_review_step"] = "decide_review_step"
    agreement_id: Identifier
    step: Name
    decision: Literal["approve", "reject"]
    comment: ShortText | None = None
    document: DocumentRef | None = None  # the draft version the reviewer read (the API fills in the latest)

    @model_validator(mode="after")
    def _reject_needs_comment(self) -> DecideReviewStep:
        if self.decision == "reject" and not self.comment:
            raise ValueError("a rejection needs a comment saying what to change")
        return self


class SignAgreement(BaseModel):
    kind: Literal["sign_agreement"] = "sign_agreement"
    agreement_id: Identifier
    organization_id: Identifier
    signed_on: date
    # Defaults to the party's designated signatory; set when someone else signs on its behalf.
    signatory_name: Name | None = None
    signatory_title: Name | None = None
    # The signed original as uploaded so far (the API fills in the latest version, if any); the
    # last signature seals it into the agreement.
    document: DocumentRef | None = None


class SealSignedOriginal(BaseModel):
    """Seal the signed original of an agreement signed before its scan was uploaded."""

    kind: Literal["seal_signed_original"] = "seal_signed_original"
    agreement_id: Identifier
    document: DocumentRef


class CreateProject(BaseModel):
    """Create a project under a signed investment agreement; it becomes a child workflow."""

    kind: Literal["create_project"] = "create_project"
    project_id: Identifier
    agreement_id: Identifier
    title: Name
    site: Name | None = None
    committed_investment: Money
    responsible_department: Name
    responsible_officer: Name
    milestones: list[MilestoneSpec] = Field(min_length=1, max_length=100)


class TerminateCooperation(BaseModel):
    kind: Literal["terminate"] = "terminate"
    reason: ShortText


class ProjectClosed(BaseModel):
    """Sent by a child project when it completes or is cancelled (system action)."""

    kind: Literal["project_closed"] = "project_closed"
    project_id: Identifier
    status: ProjectStatus


CooperationCommand = Annotated[
    Union[
        RecordNegotiation,
        DraftAgreement,
        EditAgreement,
        SubmitAgreement,
        DecideReviewStep,
        SignAgreement,
        SealSignedOriginal,
        CreateProject,
        TerminateCooperation,
        ProjectClosed,
    ],
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------- the state machine


def new_cooperation(cooperation_id: str, cmd: CreateCooperation, ctx: ActionContext) -> tuple[CooperationState, Change]:
    state = CooperationState(
        cooperation_id=cooperation_id,
        **cmd.model_dump(exclude={"kind"}),
        created_by=ctx.actor.name,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    change = change_of(
        "cooperation.created", "cooperation", cooperation_id, None, state,
        exclude={"negotiation", "agreements", "projects", "seq"},
    )
    return state, change


def apply(state: CooperationState, cmd: CooperationCommand, ctx: ActionContext) -> Change:
    """Apply one command to `state` in place; raise a DomainError when it is not allowed."""
    if state.stage in CLOSED_STAGES and not isinstance(cmd, ProjectClosed):
        why = f" ({state.termination_reason})" if state.termination_reason else ""
        raise Refused(f"the cooperation is {state.stage.value}{why}; nothing can change any more")
    handler = _HANDLERS[type(cmd)]
    change = handler(state, cmd, ctx)
    state.updated_at = ctx.now
    check_record_size(state, "cooperation")
    return change


def _record_negotiation(state: CooperationState, cmd: RecordNegotiation, ctx: ActionContext) -> Change:
    if any(e.event_id == cmd.event.event_id for e in state.negotiation):
        raise Refused(f"negotiation event {cmd.event.event_id} is already recorded")
    if cmd.event.occurred_on > ctx.today():
        raise Invalid("occurred_on is in the future; record events once they have happened")
    event = cmd.event.model_copy(update={"recorded_by": ctx.actor.name})
    state.negotiation.append(event)
    return change_of("negotiation.recorded", "negotiation_event", event.event_id, None, event)


def _draft_agreement(state: CooperationState, cmd: DraftAgreement, ctx: ActionContext) -> Change:
    if any(a.agreement_id == cmd.agreement_id for a in state.agreements):
        raise Refused(f"agreement {cmd.agreement_id} already exists")
    if cmd.agreement_kind == AgreementKind.framework and any(
        a.kind == AgreementKind.framework for a in state.agreements
    ):
        raise Refused("this cooperation already has a strategic cooperation framework agreement")
    _require_both_sides(state, cmd.parties)
    agreement = Agreement(
        agreement_id=cmd.agreement_id,
        kind=cmd.agreement_kind,
        title=cmd.title,
        parties=[Party(**p.model_dump()) for p in cmd.parties],
        review_steps=[ReviewStep(name=n) for n in cmd.review_steps],
        authors=[ctx.actor.user_id],
    )
    state.agreements.append(agreement)
    return change_of("agreement.drafted", "agreement", agreement.agreement_id, None, agreement)


def _require_both_sides(state: CooperationState, parties: list[PartyInput]) -> None:
    """The partner company is a party to every agreement of its cooperation."""
    if state.partner_organization_id not in {p.organization_id for p in parties}:
        raise Invalid(f"the partner {state.partner_organization_name} must be one of the parties")


def _edit_agreement(state: CooperationState, cmd: EditAgreement, ctx: ActionContext) -> Change:
    agreement = state.agreement(cmd.agreement_id)
    if agreement.status != AgreementStatus.draft:
        raise Refused(f"agreement is {agreement.status.value}; only a draft can be edited (a rejection returns it to draft)")
    before = agreement.model_copy(deep=True)
    if cmd.title is not None:
        agreement.title = cmd.title
    if cmd.parties is not None:
        _require_both_sides(state, cmd.parties)
        agreement.parties = [Party(**p.model_dump()) for p in cmd.parties]
    if cmd.review_steps is not None:
        agreement.review_steps = [ReviewStep(name=n) for n in cmd.review_steps]
    agreement.revision += 1
    if ctx.actor.user_id not in agreement.authors:
        agreement.authors.append(ctx.actor.user_id)
    return change_of("agreement.edited", "agreement", agreement.agreement_id, before, agreement)


def _submit_agreement(state: CooperationState, cmd: SubmitAgreement, ctx: ActionContext) -> Change:
    agreement = state.agreement(cmd.agreement_id)
    if agreement.status != AgreementStatus.draft:
        raise Refused(f"agreement is {agreement.status.value}; only a draft can be submitted for review")
    before = agreement.model_copy(deep=True)
    agreement.review_steps = [ReviewStep(name=s.name) for s in agreement.review_steps]
    agreement.status = AgreementStatus.in_review if agreement.review_steps else AgreementStatus.approved
    return change_of("agreement.submitted", "agreement", agreement.agreement_id, before, agreement,
                     exclude={"review_log"})


def _decide_review_step(state: CooperationState, cmd: DecideReviewStep, ctx: ActionContext) -> Change:
    agreement = state.agreement(cmd.agreement_id)
    if agreement.status != AgreementStatus.in_review:
        raise Refused(f"agreement is {agreement.status.value}, not in review")
    step = agreement.current_step()
    assert step is not None  # in_review always has a pending step
    if step.name != cmd.step:
        if cmd.step not in {s.name for s in agreement.review_steps}:
            raise NotFound(f"the review chain has no step named {cmd.step!r}")
        raise Refused(f"step {cmd.step!r} is not the current one; the agreement waits for {step.name!r}")
    _check_document(agreement, cmd.document, DocumentKind.draft)
    before = agreement.model_copy(deep=True)
    decision = "approved" if cmd.decision == "approve" else "rejected"
    agreement.review_log.append(
        ReviewDecision(step=step.name, decision=decision, by=ctx.actor.name, at=ctx.now, comment=cmd.comment,
                       document=cmd.document)
    )
    if cmd.decision == "approve":
        step.status = StepStatus.approved
        step.decided_by, step.decided_at, step.comment = ctx.actor.name, ctx.now, cmd.comment
        step.document = cmd.document
        if agreement.current_step() is None:
            agreement.status = AgreementStatus.approved
    else:
        agreement.status = AgreementStatus.draft
        agreement.review_steps = [ReviewStep(name=s.name) for s in agreement.review_steps]
    return change_of(f"agreement.review_{decision}", "agreement", agreement.agreement_id, before, agreement,
                     comment=cmd.comment, exclude={"review_log"})


def _sign_agreement(state: CooperationState, cmd: SignAgreement, ctx: ActionContext) -> Change:
    agreement = state.agreement(cmd.agreement_id)
    if agreement.status != AgreementStatus.approved:
        raise Refused(f"agreement is {agreement.status.value}; it can be signed only after every review step approved it")
    if agreement.kind == AgreementKind.investment and not state.framework_signed():
        raise Refused("a project investment agreement cannot be signed before the framework agreement is signed")
    party = next((p for p in agreement.parties if p.organization_id == cmd.organization_id), None)
    if party is None:
        raise Invalid(f"organization {cmd.organization_id} is not a party to this agreement")
    if agreement.signature_of(cmd.organization_id):
        raise Refused(f"{party.organization_name} has already signed this agreement")
    if cmd.signed_on > ctx.today():
        raise Invalid("signed_on is in the future")
    _check_document(agreement, cmd.document, DocumentKind.signed_original)
    before = agreement.model_copy(deep=True)
    agreement.signatures.append(
        Signature(
            organization_id=party.organization_id,
            signatory_name=cmd.signatory_name or party.signatory_name,
            signatory_title=cmd.signatory_title or party.signatory_title,
            signed_on=cmd.signed_on,
            recorded_by=ctx.actor.name,
            document=cmd.document,
        )
    )
    action = "agreement.party_signed"
    if len(agreement.signatures) == len(agreement.parties):
        agreement.status = AgreementStatus.signed
        agreement.signed_on = max(s.signed_on for s in agreement.signatures)
        agreement.signed_document = cmd.document  # sealed: the fingerprint is now in the signing event
        action = "agreement.signed"
        _advance_stage_on_signing(state, agreement)
    return change_of(action, "agreement", agreement.agreement_id, before, agreement)


def _seal_signed_original(state: CooperationState, cmd: SealSignedOriginal, ctx: ActionContext) -> Change:
    agreement = state.agreement(cmd.agreement_id)
    if agreement.status != AgreementStatus.signed:
        raise Refused(f"agreement is {agreement.status.value}; the last signature seals its signed original")
    if agreement.signed_document is not None:
        raise Refused(f"the signed original is already sealed: {agreement.signed_document.label()}")
    _check_document(agreement, cmd.document, DocumentKind.signed_original)
    before = agreement.model_copy(deep=True)
    agreement.signed_document = cmd.document
    return change_of("agreement.original_sealed", "agreement", agreement.agreement_id, before, agreement)


def _check_document(agreement: Agreement, document: DocumentRef | None, kind: DocumentKind) -> None:
    """A review decides on a draft of this agreement; a signature is given on its signed original."""
    if document is None:
        return
    if document.kind != kind:
        raise Invalid(f"{document.label()} is a {document.kind.value} document, not a {kind.value}")
    if document.agreement_id != agreement.agreement_id:
        raise Invalid(f"{document.label()} belongs to another agreement")


def _advance_stage_on_signing(state: CooperationState, agreement: Agreement) -> None:
    if agreement.kind == AgreementKind.framework and state.stage == Stage.negotiating:
        state.stage = Stage.framework_signed
    elif agreement.kind == AgreementKind.investment and state.stage == Stage.framework_signed:
        state.stage = Stage.in_delivery


def _create_project(state: CooperationState, cmd: CreateProject, ctx: ActionContext) -> Change:
    agreement = state.agreement(cmd.agreement_id)
    if agreement.kind != AgreementKind.investment:
        raise Refused("projects are created under a project investment agreement, not a framework agreement")
    if agreement.status != AgreementStatus.signed:
        raise Refused(f"the investment agreement is {agreement.status.value}; a project needs a signed one")
    if state.project(cmd.project_id) is not None:
        raise Refused(f"project {cmd.project_id} already exists")
    ref = ProjectRef(project_id=cmd.project_id, agreement_id=cmd.agreement_id, title=cmd.title)
    state.projects.append(ref)
    return change_of("project.created", "project", cmd.project_id, None, ref)


def _terminate(state: CooperationState, cmd: TerminateCooperation, ctx: ActionContext) -> Change:
    before = {"stage": state.stage.value}
    state.stage = Stage.terminated
    state.termination_reason = cmd.reason
    return Change(action="cooperation.terminated", entity_type="cooperation", entity_id=state.cooperation_id,
                  before=before, after={"stage": state.stage.value}, comment=cmd.reason)


def _project_closed(state: CooperationState, cmd: ProjectClosed, ctx: ActionContext) -> Change:
    ref = state.project(cmd.project_id)
    if ref is None:
        raise NotFound(f"project {cmd.project_id} is not part of this cooperation")
    before_stage = state.stage
    ref.status = cmd.status
    if state.stage == Stage.in_delivery and all(p.status in {ProjectStatus.completed, ProjectStatus.cancelled}
                                                for p in state.projects):
        state.stage = Stage.completed
    return Change(action="cooperation.project_closed", entity_type="cooperation", entity_id=state.cooperation_id,
                  before={"stage": before_stage.value}, after={"stage": state.stage.value, "project_id": cmd.project_id,
                                                              "project_status": cmd.status.value})


_HANDLERS = {
    RecordNegotiation: _record_negotiation,
    DraftAgreement: _draft_agreement,
    EditAgreement: _edit_agreement,
    SubmitAgreement: _submit_agreement,
    DecideReviewStep: _decide_review_step,
    SignAgreement: _sign_agreement,
    SealSignedOriginal: _seal_signed_original,
    CreateProject: _create_project,
    TerminateCooperation: _terminate,
    ProjectClosed: _project_closed,
}
