"""Unit tests of the pure domain rules: no servers, just `apply(state, command, ctx)`.

Each test names one rule. Commands are applied the way the workflow applies them:
to a deep copy that is kept only when no DomainError was raised (`act` below), so
a refused command is also checked to leave the kept state untouched.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from domain import cooperation as coop
from domain import project as proj
from domain.audit import ActionContext, Actor, Change
from domain.cooperation import (
    AgreementKind,
    AgreementStatus,
    CooperationState,
    CreateCooperation,
    CreateProject,
    DecideReviewStep,
    DraftAgreement,
    EditAgreement,
    NegotiationEvent,
    PartyInput,
    ProjectClosed,
    RecordNegotiation,
    SignAgreement,
    Stage,
    StepStatus,
    SubmitAgreement,
    TerminateCooperation,
)
from domain.errors import DomainError, Invalid, NotFound, Refused
from domain.project import (
    AddMilestone,
    CancelProject,
    CompleteMilestone,
    MilestoneSpec,
    MoveMilestone,
    NewProject,
    ProjectState,
    ProjectStatus,
    RecordInvestment,
    ResumeProject,
    SuspendProject,
)
from domain.templates import DEFAULT_REVIEW_CHAIN

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=timezone.utc)
CTX = ActionContext(actor=Actor(user_id="u", name="Tester"), request_id="r", now=NOW)
TODAY = date(2026, 11, 25)  # 12:00 in Shanghai
TOMORROW = TODAY + timedelta(days=1)
LEAD, PARTNER, THIRD = "gov", "acme", "bank"
NAMES = {LEAD: "City Government", PARTNER: "Acme Ltd", THIRD: "Bank of Somewhere"}


# ---------------------------------------------------------------- helpers


def party(org: str) -> PartyInput:
    return PartyInput(organization_id=org, organization_name=NAMES.get(org, org),
                      signatory_name=f"Signer {org}", signatory_title="Director")


def new_cooperation() -> CooperationState:
    cmd = CreateCooperation(title="Headquarters cooperation", lead_organization_id=LEAD,
                            lead_organization_name=NAMES[LEAD], partner_organization_id=PARTNER,
                            partner_organization_name=NAMES[PARTNER], liaison_officer="Officer Li")
    state, change = coop.new_cooperation("c1", cmd, CTX)
    assert change.action == "cooperation.created"
    return state


def act(state: BaseModel, cmd: Any, module: Any = coop) -> tuple[Any, Change]:
    """Apply like the workflow: on a deep copy, returned only if accepted."""
    draft = state.model_copy(deep=True)
    change = module.apply(draft, cmd, CTX)
    assert isinstance(change, Change)
    return draft, change


def refuse(state: BaseModel, cmd: Any, error: type[DomainError], module: Any = coop) -> DomainError:
    """The command raises `error` and the state the workflow keeps is untouched."""
    before = state.model_dump(mode="json")
    with pytest.raises(error) as caught:
        module.apply(state.model_copy(deep=True), cmd, CTX)
    assert type(caught.value) is error
    assert state.model_dump(mode="json") == before
    return caught.value


def assert_delta(change: Change, old: dict[str, Any], new: dict[str, Any], ignore: set[str] = frozenset()) -> None:
    """`change` holds exactly the fields that differ between `old` and `new`, with their values."""
    keys = (set(old) | set(new)) - set(ignore)
    changed = {k for k in keys if old.get(k) != new.get(k)}
    assert set(change.before) | set(change.after) == changed
    assert change.before == {k: old[k] for k in changed if k in old}
    assert change.after == {k: new[k] for k in changed if k in new}


def agreement_dump(state: CooperationState, agreement_id: str) -> dict[str, Any]:
    return state.agreement(agreement_id).model_dump(mode="json")


def draft(state: CooperationState, agreement_id: str, kind: AgreementKind,
          orgs: tuple[str, ...] = (LEAD, PARTNER), steps: list[str] | None = None) -> CooperationState:
    extra = {} if steps is None else {"review_steps": steps}
    state, change = act(state, DraftAgreement(agreement_id=agreement_id, agreement_kind=kind,
                                              title=f"Agreement {agreement_id}",
                                              parties=[party(o) for o in orgs], **extra))
    assert change.action == "agreement.drafted"
    return state


def review(state: CooperationState, agreement_id: str) -> CooperationState:
    """Submit and approve every step in order."""
    state, _ = act(state, SubmitAgreement(agreement_id=agreement_id))
    for step in [s.name for s in state.agreement(agreement_id).review_steps]:
        state, _ = act(state, DecideReviewStep(agreement_id=agreement_id, step=step, decision="approve"))
    assert state.agreement(agreement_id).status == AgreementStatus.approved
    return state


def sign_all(state: CooperationState, agreement_id: str, on: date = TODAY) -> CooperationState:
    for p in state.agreement(agreement_id).parties:
        state, _ = act(state, SignAgreement(agreement_id=agreement_id, organization_id=p.organization_id,
                                            signed_on=on))
    assert state.agreement(agreement_id).status == AgreementStatus.signed
    return state


def with_signed_framework() -> CooperationState:
    state = draft(new_cooperation(), "fw", AgreementKind.framework)
    return sign_all(review(state, "fw"), "fw")


def with_signed_investment(agreement_id: str = "inv") -> CooperationState:
    state = draft(with_signed_framework(), agreement_id, AgreementKind.investment)
    return sign_all(review(state, agreement_id), agreement_id)


def milestone(mid: str, due: date = date(2027, 6, 1)) -> MilestoneSpec:
    return MilestoneSpec(milestone_id=mid, name=f"Milestone {mid}", due_date=due)


def create_project(project_id: str, agreement_id: str = "inv") -> CreateProject:
    return CreateProject(project_id=project_id, agreement_id=agreement_id, title=f"Project {project_id}",
                         committed_investment=Decimal("1000000.00"), responsible_department="Investment Office",
                         responsible_officer="Officer Wang", milestones=[milestone("m1")])


# ---------------------------------------------------------------- agreement lifecycle


def test_new_cooperation_starts_negotiating_with_creation_audited() -> None:
    cmd = CreateCooperation(title="T", lead_organization_id=LEAD, lead_organization_name="Gov",
                            partner_organization_id=PARTNER, partner_organization_name="Acme", liaison_officer="Li")
    state, change = coop.new_cooperation("c9", cmd, CTX)
    assert state.stage == Stage.negotiating
    assert (state.created_by, state.created_at, state.updated_at, state.seq) == ("Tester", NOW, NOW, 0)
    assert (change.entity_type, change.entity_id, change.before) == ("cooperation", "c9", {})
    assert change.after["partner_organization_id"] == PARTNER
    assert not {"negotiation", "agreements", "projects", "seq"} & set(change.after)


def test_agreement_goes_draft_submit_review_steps_in_order_approved_signed() -> None:
    state = draft(new_cooperation(), "fw", AgreementKind.framework)
    a = state.agreement("fw")
    assert a.status == AgreementStatus.draft
    assert [s.name for s in a.review_steps] == list(DEFAULT_REVIEW_CHAIN)

    old = agreement_dump(state, "fw")
    state, change = act(state, SubmitAgreement(agreement_id="fw"))
    assert change.action == "agreement.submitted"
    assert change.before == {"status": "draft"} and change.after == {"status": "in_review"}
    assert_delta(change, old, agreement_dump(state, "fw"))
    assert state.agreement("fw").current_step().name == "legal_review"

    old = agreement_dump(state, "fw")
    state, change = act(state, DecideReviewStep(agreement_id="fw", step="legal_review", decision="approve",
                                                comment="lawful"))
    assert change.action == "agreement.review_approved" and change.comment == "lawful"
    assert set(change.after) == {"review_steps"}  # still in review: status unchanged
    assert_delta(change, old, agreement_dump(state, "fw"), ignore={"review_log"})
    a = state.agreement("fw")
    assert a.status == AgreementStatus.in_review
    assert (a.review_steps[0].status, a.review_steps[0].decided_by, a.review_steps[0].decided_at) == (
        StepStatus.approved, "Tester", NOW)
    assert a.current_step().name == "leadership_approval"

    state, change = act(state, DecideReviewStep(agreement_id="fw", step="leadership_approval", decision="approve"))
    assert change.action == "agreement.review_approved"
    assert change.before["status"] == "in_review" and change.after["status"] == "approved"
    a = state.agreement("fw")
    assert a.status == AgreementStatus.approved and a.current_step() is None
    assert [(d.step, d.decision) for d in a.review_log] == [("legal_review", "approved"),
                                                            ("leadership_approval", "approved")]

    old = agreement_dump(state, "fw")
    state, change = act(state, SignAgreement(agreement_id="fw", organization_id=LEAD, signed_on=TODAY - timedelta(3)))
    assert change.action == "agreement.party_signed"
    assert set(change.after) == {"signatures"}
    assert_delta(change, old, agreement_dump(state, "fw"))
    assert state.agreement("fw").status == AgreementStatus.approved
    assert state.stage == Stage.negotiating

    old = agreement_dump(state, "fw")
    state, change = act(state, SignAgreement(agreement_id="fw", organization_id=PARTNER, signed_on=TODAY - timedelta(1)))
    assert change.action == "agreement.signed"
    assert set(change.after) == {"signatures", "status", "signed_on"}
    assert_delta(change, old, agreement_dump(state, "fw"))
    a = state.agreement("fw")
    assert a.status == AgreementStatus.signed
    assert a.signed_on == TODAY - timedelta(1)  # the last party's date
    assert {s.organization_id for s in a.signatures} == {LEAD, PARTNER}
    assert state.stage == Stage.framework_signed


def test_agreement_without_review_steps_is_approved_on_submit() -> None:
    state = draft(new_cooperation(), "fw", AgreementKind.framework, steps=[])
    state, change = act(state, SubmitAgreement(agreement_id="fw"))
    assert change.after == {"status": "approved"}
    refuse(state, DecideReviewStep(agreement_id="fw", step="legal_review", decision="approve"), Refused)


def test_approving_a_later_step_first_is_refused_naming_the_waiting_step() -> None:
    state = draft(new_cooperation(), "fw", AgreementKind.framework, steps=["legal_review", "finance", "leadership"])
    state, _ = act(state, SubmitAgreement(agreement_id="fw"))
    error = refuse(state, DecideReviewStep(agreement_id="fw", step="finance", decision="approve"), Refused)
    assert "'legal_review'" in error.reason and "'finance'" in error.reason
    state, _ = act(state, DecideReviewStep(agreement_id="fw", step="legal_review", decision="approve"))
    error = refuse(state, DecideReviewStep(agreement_id="fw", step="leadership", decision="approve"), Refused)
    assert "waits for 'finance'" in error.reason
    # An already approved step is not the current one either.
    error = refuse(state, DecideReviewStep(agreement_id="fw", step="legal_review", decision="approve"), Refused)
    assert "waits for 'finance'" in error.reason


def test_deciding_a_step_missing_from_the_chain_is_not_found() -> None:
    state = draft(new_cooperation(), "fw", AgreementKind.framework)
    state, _ = act(state, SubmitAgreement(agreement_id="fw"))
    refuse(state, DecideReviewStep(agreement_id="fw", step="no_such_step", decision="approve"), NotFound)


def test_deciding_outside_review_is_refused() -> None:
    state = draft(new_cooperation(), "fw", AgreementKind.framework)
    refuse(state, DecideReviewStep(agreement_id="fw", step="legal_review", decision="approve"), Refused)
    state = review(state, "fw")
    refuse(state, DecideReviewStep(agreement_id="fw", step="leadership_approval", decision="approve"), Refused)


def test_commands_on_unknown_agreement_are_not_found() -> None:
    state = new_cooperation()
    for cmd in (SubmitAgreement(agreement_id="nope"), EditAgreement(agreement_id="nope", title="x"),
                DecideReviewStep(agreement_id="nope", step="legal_review", decision="approve"),
                SignAgreement(agreement_id="nope", organization_id=LEAD, signed_on=TODAY),
                create_project("p1", "nope")):
        refuse(state, cmd, NotFound)


@pytest.mark.parametrize("comment", [None, "", "   "])
def test_reject_needs_a_comment(comment: str | None) -> None:
    with pytest.raises(ValidationError):
        DecideReviewStep(agreement_id="fw", step="legal_review", decision="reject", comment=comment)
    # Approval needs none.
    assert DecideReviewStep(agreement_id="fw", step="legal_review", decision="approve").comment is None


def test_reject_returns_agreement_to_draft_resets_steps_and_keeps_the_decision() -> None:
    state = draft(new_cooperation(), "fw", AgreementKind.framework)
    state, _ = act(state, SubmitAgreement(agreement_id="fw"))
    state, _ = act(state, DecideReviewStep(agreement_id="fw", step="legal_review", decision="approve"))
    old = agreement_dump(state, "fw")
    state, change = act(state, DecideReviewStep(agreement_id="fw", step="leadership_approval", decision="reject",
                                                comment="clause 4 is too vague"))
    assert change.action == "agreement.review_rejected"
    assert change.comment == "clause 4 is too vague"
    assert change.before["status"] == "in_review" and change.after["status"] == "draft"
    assert_delta(change, old, agreement_dump(state, "fw"), ignore={"review_log"})
    a = state.agreement("fw")
    assert a.status == AgreementStatus.draft
    assert all(s.status == StepStatus.pending and s.decided_by is None and s.decided_at is None
               for s in a.review_steps)
    assert [(d.step, d.decision, d.comment) for d in a.review_log] == [
        ("legal_review", "approved", None),
        ("leadership_approval", "rejected", "clause 4 is too vague"),
    ]
    # The next round starts from the first step again and the log keeps growing.
    state, _ = act(state, EditAgreement(agreement_id="fw", title="Revised agreement"))
    state, _ = act(state, SubmitAgreement(agreement_id="fw"))
    refuse(state, DecideReviewStep(agreement_id="fw", step="leadership_approval", decision="approve"), Refused)
    state = review_rest(state, "fw")
    assert len(state.agreement("fw").review_log) == 4


def review_rest(state: CooperationState, agreement_id: str) -> CooperationState:
    while (step := state.agreement(agreement_id).current_step()) is not None:
        state, _ = act(state, DecideReviewStep(agreement_id=agreement_id, step=step.name, decision="approve"))
    assert state.agreement(agreement_id).status == AgreementStatus.approved
    return state


def test_edit_in_draft_changes_only_named_fields_and_bumps_revision() -> None:
    state = draft(new_cooperation(), "fw", AgreementKind.framework)
    old = agreement_dump(state, "fw")
    state, change = act(state, EditAgreement(agreement_id="fw", title="New title"))
    assert change.action == "agreement.edited"
    assert change.before == {"title": "Agreement fw", "revision": 1}
    assert change.after == {"title": "New title", "revision": 2}
    assert_delta(change, old, agreement_dump(state, "fw"))

    state, change = act(state, EditAgreement(agreement_id="fw", parties=[party(LEAD), party(PARTNER), party(THIRD)],
                                             review_steps=["legal_review"]))
    assert set(change.after) == {"parties", "review_steps", "revision"}
    a = state.agreement("fw")
    assert [p.organization_id for p in a.parties] == [LEAD, PARTNER, THIRD]
    assert [s.name for s in a.review_steps] == ["legal_review"]
    assert a.revision == 3


def test_edit_is_refused_outside_draft() -> None:
    state = draft(new_cooperation(), "fw", AgreementKind.framework)
    state, _ = act(state, SubmitAgreement(agreement_id="fw"))
    assert "in_review" in refuse(state, EditAgreement(agreement_id="fw", title="x"), Refused).reason
    state = review_rest(state, "fw")
    refuse(state, EditAgreement(agreement_id="fw", title="x"), Refused)
    state = sign_all(state, "fw")
    refuse(state, EditAgreement(agreement_id="fw", title="x"), Refused)


def test_submit_is_refused_outside_draft() -> None:
    state = draft(new_cooperation(), "fw", AgreementKind.framework)
    state, _ = act(state, SubmitAgreement(agreement_id="fw"))
    refuse(state, SubmitAgreement(agreement_id="fw"), Refused)
    state = sign_all(review_rest(state, "fw"), "fw")
    refuse(state, SubmitAgreement(agreement_id="fw"), Refused)


def test_only_one_framework_agreement_per_cooperation() -> None:
    state = draft(new_cooperation(), "fw", AgreementKind.framework)
    error = refuse(state, DraftAgreement(agreement_id="fw2", agreement_kind=AgreementKind.framework, title="Second",
                                         parties=[party(LEAD), party(PARTNER)]), Refused)
    assert "framework" in error.reason
    # Several investment agreements are fine.
    state = draft(state, "inv1", AgreementKind.investment)
    state = draft(state, "inv2", AgreementKind.investment)
    assert len(state.agreements) == 3


def test_agreement_ids_are_unique() -> None:
    state = draft(new_cooperation(), "a1", AgreementKind.investment)
    refuse(state, DraftAgreement(agreement_id="a1", agreement_kind=AgreementKind.framework, title="Dup",
                                 parties=[party(LEAD), party(PARTNER)]), Refused)


def test_partner_must_be_a_party_when_drafting_and_editing() -> None:
    state = new_cooperation()
    error = refuse(state, DraftAgreement(agreement_id="fw", agreement_kind=AgreementKind.framework, title="T",
                                         parties=[party(LEAD), party(THIRD)]), Invalid)
    assert NAMES[PARTNER] in error.reason
    state = draft(state, "fw", AgreementKind.framework)
    refuse(state, EditAgreement(agreement_id="fw", parties=[party(LEAD), party(THIRD)]), Invalid)
    # The partner without the lead is allowed: the rule names only the partner.
    state = draft(state, "inv", AgreementKind.investment, orgs=(PARTNER, THIRD))
    assert [p.organization_id for p in state.agreement("inv").parties] == [PARTNER, THIRD]


def test_parties_are_at_least_two_and_distinct() -> None:
    with pytest.raises(ValidationError):
        DraftAgreement(agreement_id="a", agreement_kind="framework", title="T", parties=[party(PARTNER)])
    with pytest.raises(ValidationError):
        DraftAgreement(agreement_id="a", agreement_kind="framework", title="T",
                       parties=[party(PARTNER), party(PARTNER)])
    with pytest.raises(ValidationError):
        EditAgreement(agreement_id="a", parties=[party(LEAD), party(LEAD)])


# ---------------------------------------------------------------- signing


def test_signing_needs_an_approved_agreement() -> None:
    state = draft(new_cooperation(), "fw", AgreementKind.framework)
    refuse(state, SignAgreement(agreement_id="fw", organization_id=LEAD, signed_on=TODAY), Refused)
    state, _ = act(state, SubmitAgreement(agreement_id="fw"))
    refuse(state, SignAgreement(agreement_id="fw", organization_id=LEAD, signed_on=TODAY), Refused)


def test_investment_agreement_cannot_be_signed_before_the_framework_agreement() -> None:
    state = draft(new_cooperation(), "inv", AgreementKind.investment)
    state = review(state, "inv")
    error = refuse(state, SignAgreement(agreement_id="inv", organization_id=PARTNER, signed_on=TODAY), Refused)
    assert "framework" in error.reason
    # A framework agreement that is merely approved, or half-signed, is not enough.
    state = review(draft(state, "fw", AgreementKind.framework), "fw")
    state, _ = act(state, SignAgreement(agreement_id="fw", organization_id=LEAD, signed_on=TODAY))
    refuse(state, SignAgreement(agreement_id="inv", organization_id=PARTNER, signed_on=TODAY), Refused)
    state, _ = act(state, SignAgreement(agreement_id="fw", organization_id=PARTNER, signed_on=TODAY))
    state = sign_all(state, "inv")
    assert state.stage == Stage.in_delivery


def test_only_parties_sign_and_each_only_once() -> None:
    state = review(draft(new_cooperation(), "fw", AgreementKind.framework), "fw")
    refuse(state, SignAgreement(agreement_id="fw", organization_id=THIRD, signed_on=TODAY), Invalid)
    state, _ = act(state, SignAgreement(agreement_id="fw", organization_id=LEAD, signed_on=TODAY))
    refuse(state, SignAgreement(agreement_id="fw", organization_id=LEAD, signed_on=TODAY), Refused)
    state = sign_all_remaining(state, "fw")
    refuse(state, SignAgreement(agreement_id="fw", organization_id=LEAD, signed_on=TODAY), Refused)
    assert len(state.agreement("fw").signatures) == 2


def sign_all_remaining(state: CooperationState, agreement_id: str) -> CooperationState:
    a = state.agreement(agreement_id)
    for p in a.parties:
        if a.signature_of(p.organization_id) is None:
            state, _ = act(state, SignAgreement(agreement_id=agreement_id, organization_id=p.organization_id,
                                                signed_on=TODAY))
    return state


def test_three_party_agreement_is_signed_only_by_the_last_signature() -> None:
    state = review(draft(new_cooperation(), "fw", AgreementKind.framework, orgs=(LEAD, PARTNER, THIRD)), "fw")
    for org, status in ((THIRD, AgreementStatus.approved), (LEAD, AgreementStatus.approved),
                        (PARTNER, AgreementStatus.signed)):
        state, _ = act(state, SignAgreement(agreement_id="fw", organization_id=org, signed_on=TODAY))
        assert state.agreement("fw").status == status
    assert state.stage == Stage.framework_signed


def test_signatory_defaults_to_the_designated_one_and_can_be_overridden() -> None:
    state = review(draft(new_cooperation(), "fw", AgreementKind.framework), "fw")
    state, _ = act(state, SignAgreement(agreement_id="fw", organization_id=LEAD, signed_on=TODAY))
    state, _ = act(state, SignAgreement(agreement_id="fw", organization_id=PARTNER, signed_on=TODAY,
                                        signatory_name="Deputy Zhang", signatory_title="Vice Director"))
    lead, partner = state.agreement("fw").signatures
    assert (lead.signatory_name, lead.signatory_title, lead.recorded_by) == (f"Signer {LEAD}", "Director", "Tester")
    assert (partner.signatory_name, partner.signatory_title) == ("Deputy Zhang", "Vice Director")


def test_signed_on_in_the_future_is_refused() -> None:
    state = review(draft(new_cooperation(), "fw", AgreementKind.framework), "fw")
    error = refuse(state, SignAgreement(agreement_id="fw", organization_id=LEAD, signed_on=TOMORROW), Invalid)
    assert "future" in error.reason
    act(state, SignAgreement(agreement_id="fw", organization_id=LEAD, signed_on=TODAY))  # today is fine


def test_today_is_the_office_date_in_china() -> None:
    # 20:00 UTC on 25 November is already 26 November in Guangzhou.
    late = ActionContext(actor=CTX.actor, request_id="r", now=datetime(2026, 11, 25, 20, 0, tzinfo=timezone.utc))
    assert late.today() == TOMORROW
    state = review(draft(new_cooperation(), "fw", AgreementKind.framework), "fw")
    coop.apply(state.model_copy(deep=True), SignAgreement(agreement_id="fw", organization_id=LEAD,
                                                          signed_on=TOMORROW), late)
    with pytest.raises(Invalid):
        coop.apply(state.model_copy(deep=True), SignAgreement(agreement_id="fw", organization_id=LEAD,
                                                              signed_on=TOMORROW + timedelta(1)), late)


# ---------------------------------------------------------------- stage, projects, closing


def test_stage_moves_negotiating_framework_signed_in_delivery() -> None:
    state = new_cooperation()
    assert state.stage == Stage.negotiating
    state = review(draft(state, "inv1", AgreementKind.investment), "inv1")
    state = review(draft(state, "fw", AgreementKind.framework), "fw")
    assert state.stage == Stage.negotiating
    state = sign_all(state, "fw")
    assert state.stage == Stage.framework_signed
    state = sign_all(state, "inv1")
    assert state.stage == Stage.in_delivery
    state = sign_all(review(draft(state, "inv2", AgreementKind.investment), "inv2"), "inv2")
    assert state.stage == Stage.in_delivery


def test_project_is_created_only_under_a_signed_investment_agreement() -> None:
    state = with_signed_framework()
    error = refuse(state, create_project("p1", "fw"), Refused)
    assert "investment agreement" in error.reason
    state = draft(state, "inv", AgreementKind.investment)
    refuse(state, create_project("p1", "inv"), Refused)
    state = review(state, "inv")
    refuse(state, create_project("p1", "inv"), Refused)
    state = sign_all(state, "inv")
    state, change = act(state, create_project("p1", "inv"))
    assert change.action == "project.created"
    assert (change.entity_type, change.entity_id, change.before) == ("project", "p1", {})
    assert change.after == {"project_id": "p1", "agreement_id": "inv", "title": "Project p1", "status": "planned"}
    assert [(p.project_id, p.agreement_id, p.status) for p in state.projects] == [("p1", "inv", ProjectStatus.planned)]
    refuse(state, create_project("p1", "inv"), Refused)


def test_create_project_needs_at_least_one_milestone() -> None:
    with pytest.raises(ValidationError):
        CreateProject(**{**create_project("p1").model_dump(), "milestones": []})


def test_terminate_then_every_later_command_is_refused() -> None:
    state = with_signed_investment()
    state, _ = act(state, create_project("p1"))
    state = draft(state, "inv2", AgreementKind.investment)
    state, change = act(state, TerminateCooperation(reason="the company withdrew"))
    assert change.action == "cooperation.terminated"
    assert (change.before, change.after, change.comment) == ({"stage": "in_delivery"}, {"stage": "terminated"},
                                                             "the company withdrew")
    assert state.stage == Stage.terminated and state.termination_reason == "the company withdrew"
    commands = [
        RecordNegotiation(event=NegotiationEvent(event_id="e1", kind="meeting", occurred_on=TODAY)),
        DraftAgreement(agreement_id="inv3", agreement_kind="investment", title="T", parties=[party(LEAD), party(PARTNER)]),
        EditAgreement(agreement_id="inv2", title="x"),
        SubmitAgreement(agreement_id="inv2"),
        DecideReviewStep(agreement_id="inv2", step="legal_review", decision="approve"),
        SignAgreement(agreement_id="inv", organization_id=LEAD, signed_on=TODAY),
        create_project("p2"),
        TerminateCooperation(reason="again"),
    ]
    for cmd in commands:
        error = refuse(state, cmd, Refused)
        assert "terminated" in error.reason and "the company withdrew" in error.reason
    # The child's closing message is still bookkept, and the stage stays terminated.
    state, change = act(state, ProjectClosed(project_id="p1", status=ProjectStatus.cancelled))
    assert state.stage == Stage.terminated
    assert state.project("p1").status == ProjectStatus.cancelled
    assert change.before == {"stage": "terminated"} and change.after["stage"] == "terminated"


def test_terminate_is_possible_in_negotiation() -> None:
    state, _ = act(new_cooperation(), TerminateCooperation(reason="no deal"))
    assert state.stage == Stage.terminated
    with pytest.raises(ValidationError):
        TerminateCooperation(reason="")


def test_closing_the_last_open_project_completes_an_in_delivery_cooperation() -> None:
    state = with_signed_investment()
    state, _ = act(state, create_project("p1"))
    state, _ = act(state, create_project("p2"))
    state, change = act(state, ProjectClosed(project_id="p1", status=ProjectStatus.completed))
    assert change.action == "cooperation.project_closed"
    assert change.after == {"stage": "in_delivery", "project_id": "p1", "project_status": "completed"}
    assert state.stage == Stage.in_delivery
    state, change = act(state, ProjectClosed(project_id="p2", status=ProjectStatus.cancelled))
    assert change.before == {"stage": "in_delivery"}
    assert change.after == {"stage": "completed", "project_id": "p2", "project_status": "cancelled"}
    assert state.stage == Stage.completed
    # A completed cooperation takes nothing but more closing bookkeeping.
    refuse(state, TerminateCooperation(reason="late"), Refused)
    refuse(state, create_project("p3"), Refused)
    state, _ = act(state, ProjectClosed(project_id="p1", status=ProjectStatus.completed))
    assert state.stage == Stage.completed


def test_project_closed_for_an_unknown_project_is_not_found() -> None:
    state = with_signed_investment()
    refuse(state, ProjectClosed(project_id="ghost", status=ProjectStatus.completed), NotFound)


# ---------------------------------------------------------------- negotiation and dates


def test_negotiation_event_is_recorded_once_and_not_in_the_future() -> None:
    event = NegotiationEvent(event_id="e1", kind="inspection_visit", occurred_on=TODAY, place="Site A",
                             participants=["Li", "Wang"], summary="Visited the plot")
    state, change = act(new_cooperation(), RecordNegotiation(event=event))
    assert change.action == "negotiation.recorded"
    assert (change.entity_type, change.entity_id, change.before) == ("negotiation_event", "e1", {})
    assert change.after["recorded_by"] == "Tester"
    assert state.negotiation[0].recorded_by == "Tester"
    refuse(state, RecordNegotiation(event=event), Refused)
    future = NegotiationEvent(event_id="e2", kind="meeting", occurred_on=TOMORROW)
    assert "future" in refuse(state, RecordNegotiation(event=future), Invalid).reason


def test_negotiation_event_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValidationError):
        RecordNegotiation(event=NegotiationEvent(event_id="e1", kind="forum", occurred_on=TODAY,
                                                 ends_on=TODAY - timedelta(1)))


def test_cooperation_input_dates_and_organizations_are_checked() -> None:
    base = dict(title="T", lead_organization_id=LEAD, lead_organization_name="Gov", partner_organization_id=PARTNER,
                partner_organization_name="Acme", liaison_officer="Li")
    with pytest.raises(ValidationError):
        CreateCooperation(**{**base, "partner_organization_id": LEAD})
    with pytest.raises(ValidationError):
        CreateCooperation(**base, started_on=TODAY, target_signing_date=TODAY - timedelta(1))
    CreateCooperation(**base, started_on=TODAY, target_signing_date=TODAY)


# ---------------------------------------------------------------- field types


@pytest.mark.parametrize("make", [
    lambda v: TerminateCooperation(reason=v),
    lambda v: NegotiationEvent(event_id="e1", kind="meeting", occurred_on=TODAY, summary=v),
    lambda v: NegotiationEvent(event_id="e1", kind="meeting", occurred_on=TODAY, place=v),
    lambda v: PartyInput(organization_id="o", organization_name=v, signatory_name="s", signatory_title="t"),
    lambda v: MoveMilestone(milestone_id="m1", new_due_date=TODAY, reason=v),
])
def test_nul_bytes_are_rejected_in_text(make: Any) -> None:
    for bad in ("a\x00b", "\x00", "tail\x00"):
        with pytest.raises(ValidationError):
            make(bad)
    make("fine")


@pytest.mark.parametrize("make, limit", [
    (lambda v: DraftAgreement(agreement_id="a", agreement_kind="framework", title=v,
                              parties=[party(LEAD), party(PARTNER)]), 200),
    (lambda v: TerminateCooperation(reason=v), 500),
    (lambda v: DecideReviewStep(agreement_id="a", step="s", decision="reject", comment=v), 500),
    (lambda v: NegotiationEvent(event_id="e1", kind="meeting", occurred_on=TODAY, summary=v), 10_000),
])
def test_overlong_text_is_rejected(make: Any, limit: int) -> None:
    make("x" * limit)
    with pytest.raises(ValidationError):
        make("x" * (limit + 1))


def test_identifiers_follow_the_pattern() -> None:
    for bad in ("", "-a", "a b", "a\n", "a\x00", "a" * 101, "é"):
        with pytest.raises(ValidationError):
            SubmitAgreement(agreement_id=bad)
    for good in ("a", "A-1_b.c:d", "a" * 100, "3f2504e0-4f89-11d3-9a0c-0305e82c3301"):
        assert SubmitAgreement(agreement_id=good).agreement_id == good


def test_blank_names_are_rejected_and_names_are_stripped() -> None:
    with pytest.raises(ValidationError):
        TerminateCooperation(reason="   ")
    assert TerminateCooperation(reason="  withdrawn  ").reason == "withdrawn"


@pytest.mark.parametrize("amount", ["-0.01", "-1000", "0.001", "NaN", "Infinity", "100000000000000.00"])
def test_bad_money_is_rejected(amount: str) -> None:
    with pytest.raises(ValidationError):
        CreateProject(**{**create_project("p1").model_dump(), "committed_investment": Decimal(amount)})
    with pytest.raises(ValidationError):
        RecordInvestment(entry_id="e", received_on=TODAY, amount=Decimal(amount), source_note="n")


def test_money_bounds() -> None:
    spec = create_project("p1").model_dump()
    assert CreateProject(**{**spec, "committed_investment": Decimal("0")}).committed_investment == 0
    assert CreateProject(**{**spec, "committed_investment": "99999999999999.99"}).committed_investment == Decimal(
        "99999999999999.99")
    with pytest.raises(ValidationError):  # an investment entry must be positive
        RecordInvestment(entry_id="e", received_on=TODAY, amount=Decimal("0"), source_note="n")
    assert RecordInvestment(entry_id="e", received_on=TODAY, amount="0.01", source_note="n").amount == Decimal("0.01")


# ================================================================ projects


def new_project(*milestone_ids: str) -> ProjectState:
    ids = milestone_ids or ("m1", "m2")
    return proj.new_project(NewProject(
        project_id="p1", cooperation_id="c1", cooperation_workflow_id="cooperation-c1", agreement_id="inv",
        title="Factory", committed_investment=Decimal("5000000.00"), responsible_department="Investment Office",
        responsible_officer="Officer Wang", milestones=[milestone(m) for m in ids], created_at=NOW,
    ))


def pact(state: ProjectState, cmd: Any) -> tuple[ProjectState, Change]:
    return act(state, cmd, proj)


def prefuse(state: ProjectState, cmd: Any, error: type[DomainError]) -> DomainError:
    return refuse(state, cmd, error, proj)


def complete(mid: str, on: date = TODAY) -> CompleteMilestone:
    return CompleteMilestone(milestone_id=mid, completed_on=on, evidence="photo of the licence")


def invest(entry_id: str, amount: str, on: date = TODAY) -> RecordInvestment:
    return RecordInvestment(entry_id=entry_id, received_on=on, amount=Decimal(amount), source_note="bank transfer")


def test_new_project_is_planned_with_open_milestones() -> None:
    state = new_project()
    assert state.status == ProjectStatus.planned
    assert [(m.milestone_id, m.status, m.moves) for m in state.milestones] == [("m1", "open", []), ("m2", "open", [])]
    assert state.realized_investment == Decimal("0.00") and state.updated_at == NOW


def test_first_completed_milestone_activates_a_planned_project() -> None:
    state = new_project()
    old = state.milestone("m1").model_dump(mode="json")
    state, change = pact(state, complete("m1", TODAY - timedelta(2)))
    assert change.action == "milestone.completed" and change.comment == "photo of the licence"
    assert (change.entity_type, change.entity_id) == ("milestone", "m1")
    assert set(change.after) == {"status", "completed_on", "evidence", "completed_by"}
    assert_delta(change, old, state.milestone("m1").model_dump(mode="json"))
    assert state.status == ProjectStatus.active
    m1 = state.milestone("m1")
    assert (m1.status, m1.completed_on, m1.completed_by) == ("done", TODAY - timedelta(2), "Tester")


def test_first_investment_activates_a_planned_project() -> None:
    state, change = pact(new_project(), invest("e1", "250000.50"))
    assert change.action == "investment.recorded"
    assert (change.entity_type, change.entity_id, change.before) == ("investment", "e1", {})
    assert change.after["amount"] == "250000.50" and change.after["recorded_by"] == "Tester"
    assert state.status == ProjectStatus.active
    prefuse(state, invest("e1", "1.00"), Refused)


def test_completing_all_milestones_completes_the_project() -> None:
    state, _ = pact(new_project("m1", "m2", "m3"), complete("m1"))
    state, _ = pact(state, complete("m3"))
    assert state.status == ProjectStatus.active
    state, _ = pact(state, AddMilestone(milestone=milestone("m4")))
    state, _ = pact(state, complete("m2"))
    assert state.status == ProjectStatus.active  # m4 is still open
    state, _ = pact(state, complete("m4"))
    assert state.status == ProjectStatus.completed


def test_single_milestone_project_completes_straight_from_planned() -> None:
    state, _ = pact(new_project("only"), complete("only"))
    assert state.status == ProjectStatus.completed


def test_add_milestone_rejects_duplicates() -> None:
    state, change = pact(new_project(), AddMilestone(milestone=milestone("m3", date(2028, 1, 1))))
    assert change.action == "milestone.added" and change.before == {}
    assert change.after["due_date"] == "2028-01-01" and change.after["status"] == "open"
    prefuse(state, AddMilestone(milestone=milestone("m3")), Refused)


def test_moving_a_due_date_keeps_every_move_and_needs_a_different_date() -> None:
    state = new_project()
    first, second = date(2027, 7, 1), date(2027, 5, 15)
    old = state.milestone("m1").model_dump(mode="json")
    state, change = pact(state, MoveMilestone(milestone_id="m1", new_due_date=first, reason="land permit late"))
    assert change.action == "milestone.moved" and change.comment == "land permit late"
    assert change.before == {"due_date": "2027-06-01"} and change.after == {"due_date": "2027-07-01"}
    assert_delta(change, old, state.milestone("m1").model_dump(mode="json"), ignore={"moves"})
    state, _ = pact(state, MoveMilestone(milestone_id="m1", new_due_date=second, reason="permit came early"))
    m1 = state.milestone("m1")
    assert m1.due_date == second
    assert [(mv.old_due_date, mv.new_due_date, mv.reason, mv.moved_by, mv.moved_at) for mv in m1.moves] == [
        (date(2027, 6, 1), first, "land permit late", "Tester", NOW),
        (first, second, "permit came early", "Tester", NOW),
    ]
    error = prefuse(state, MoveMilestone(milestone_id="m1", new_due_date=second, reason="same"), Invalid)
    assert "2027-05-15" in error.reason
    assert state.status == ProjectStatus.planned  # moving is not progress
    prefuse(state, MoveMilestone(milestone_id="ghost", new_due_date=first, reason="x"), NotFound)


def test_a_completed_milestone_cannot_move_or_complete_again() -> None:
    state, _ = pact(new_project(), complete("m1"))
    prefuse(state, MoveMilestone(milestone_id="m1", new_due_date=date(2030, 1, 1), reason="x"), Refused)
    assert "already completed" in prefuse(state, complete("m1"), Refused).reason
    prefuse(state, complete("ghost"), NotFound)


def test_project_dates_in_the_future_are_refused() -> None:
    state = new_project()
    prefuse(state, complete("m1", TOMORROW), Invalid)
    prefuse(state, invest("e1", "1.00", TOMORROW), Invalid)
    # A due date is a plan: it may well lie in the future.
    pact(state, MoveMilestone(milestone_id="m1", new_due_date=date(2030, 1, 1), reason="later"))


@pytest.mark.parametrize("prior", [ProjectStatus.planned, ProjectStatus.active])
def test_suspended_project_refuses_all_but_resume_and_cancel(prior: ProjectStatus) -> None:
    state = new_project()
    if prior == ProjectStatus.active:
        state, _ = pact(state, invest("e1", "10.00"))
    state, change = pact(state, SuspendProject(reason="environmental review"))
    assert change.action == "project.suspended"
    assert (change.before, change.after, change.comment) == ({"status": prior.value}, {"status": "suspended"},
                                                             "environmental review")
    assert state.status == ProjectStatus.suspended
    for cmd in (AddMilestone(milestone=milestone("m9")), MoveMilestone(milestone_id="m1", new_due_date=TODAY, reason="x"),
                complete("m1"), invest("e2", "1.00"), SuspendProject(reason="again")):
        assert "suspended" in prefuse(state, cmd, Refused).reason
    resumed, change = pact(state, ResumeProject(comment="review passed"))
    assert change.action == "project.resumed"
    assert (change.before, change.after) == ({"status": "suspended"}, {"status": prior.value})
    assert resumed.status == prior and resumed.status_before_suspension is None
    cancelled, change = pact(state, CancelProject(reason="review failed"))
    assert change.action == "project.cancelled" and cancelled.status == ProjectStatus.cancelled


def test_resume_needs_a_suspended_project() -> None:
    prefuse(new_project(), ResumeProject(), Refused)


@pytest.mark.parametrize("closing", ["completed", "cancelled"])
def test_closed_project_refuses_everything(closing: str) -> None:
    state = new_project("m1")
    if closing == "completed":
        state, _ = pact(state, complete("m1"))
    else:
        state, change = pact(state, CancelProject(reason="company left"))
        assert change.after == {"status": "cancelled"} and state.status_reason == "company left"
    assert state.status == ProjectStatus(closing)
    for cmd in (AddMilestone(milestone=milestone("m9")), MoveMilestone(milestone_id="m1", new_due_date=TODAY, reason="x"),
                complete("m1"), invest("e2", "1.00"), SuspendProject(reason="s"), ResumeProject(),
                CancelProject(reason="again")):
        assert closing in prefuse(state, cmd, Refused).reason


def test_realized_investment_sums_exactly() -> None:
    state = new_project()
    for i, amount in enumerate(["0.10", "0.20", "99999999999999.00", "0.69"]):
        state, _ = pact(state, invest(f"e{i}", amount))
    total = state.realized_investment
    assert isinstance(total, Decimal)
    assert total == Decimal("99999999999999.99")
    assert str(total) == "99999999999999.99"
    # One fen more would not fit numeric(16, 2): refused, not silently wrapped or rounded.
    with pytest.raises(Invalid, match="would exceed"):
        pact(state, invest("e9", "0.01"))
    assert pact(new_project(), invest("a", "0.10"))[0].realized_investment + Decimal("0.20") == Decimal("0.30")
