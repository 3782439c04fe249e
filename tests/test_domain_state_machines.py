
"""Stateful property tests: random command sequences against the domain state machines.

Commands are applied exactly as the workflows apply them: `apply` runs on a deep
copy, the copy is kept (and `seq` bumped) only when no DomainError was raised.
Arguments come from small fixed pools of ids, so sequences hit both the valid
paths and every kind of refusal (unknown ids, wrong order, wrong parties, future
dates). After every step the invariants below must hold, and every accepted
transition is checked against the one before it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import pairwise
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain import cooperation as coop
from domain import project as proj
from domain.audit import ActionContext, Actor, Change
from domain.cooperation import (
    CLOSED_STAGES,
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
from domain.errors import DomainError
from domain.project import (
    CLOSED_STATUSES,
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

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=timezone.utc)
CTX = ActionContext(actor=Actor(user_id="u", name="Tester"), request_id="r", now=NOW)
TODAY = CTX.today()
assert date(2026, 11, 25) == TODAY

SETTINGS = settings(max_examples=200, stateful_step_count=30, deadline=None)

LEAD, PARTNER, THIRD, STRANGER = "gov", "acme", "bank", "nobody"
AGREEMENT_IDS = ["fw", "inv1", "inv2", "ghost"]
STEP_NAMES = ["legal_review", "leadership_approval", "finance"]
PROJECT_IDS = ["p1", "p2", "p3"]
CURRENT_STEP = "<current>"  # resolved to the step the agreement waits for

# An agreement reference: a fixed id (maybe unknown), or an index into the agreements drafted so far.
agreement_ref = st.sampled_from(AGREEMENT_IDS) | st.integers(min_value=0, max_value=3)

# Days before today; -1 is tomorrow, which every "happened on" date must refuse.
past_or_future = st.integers(min_value=-1, max_value=40).map(lambda d: TODAY - timedelta(days=d))


def party(org: str) -> PartyInput:
    return PartyInput(organization_id=org, organization_name=f"Org {org}", signatory_name=f"Signer {org}",
                      signatory_title="Director")


def assert_delta(change: Change, old: dict[str, Any], new: dict[str, Any], ignore: set[str] = frozenset()) -> None:
    """The change holds exactly the fields that differ between old and new, with their values."""
    keys = (set(old) | set(new)) - set(ignore)
    changed = {k for k in keys if old.get(k) != new.get(k)}
    assert set(change.before) | set(change.after) == changed, (change, changed)
    assert change.before == {k: old[k] for k in changed if k in old}
    assert change.after == {k: new[k] for k in changed if k in new}


def without(dump: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in dump.items() if k not in keys}


# ================================================================ cooperation


COOPERATION_ACTIONS: dict[type, set[str]] = {
    RecordNegotiation: {"negotiation.recorded"},
    DraftAgreement: {"agreement.drafted"},
    EditAgreement: {"agreement.edited"},
    SubmitAgreement: {"agreement.submitted"},
    DecideReviewStep: {"agreement.review_approved", "agreement.review_rejected"},
    SignAgreement: {"agreement.party_signed", "agreement.signed"},
    CreateProject: {"project.created"},
    TerminateCooperation: {"cooperation.terminated"},
    ProjectClosed: {"cooperation.project_closed"},
}

ALLOWED_AGREEMENT_MOVES = {
    ("draft", "draft"), ("draft", "in_review"), ("draft", "approved"),
    ("in_review", "in_review"), ("in_review", "approved"), ("in_review", "draft"),
    ("approved", "approved"), ("approved", "signed"),
    ("signed", "signed"),
}

STAGE_RANK = {Stage.negotiating: 0, Stage.framework_signed: 1, Stage.in_delivery: 2, Stage.completed: 3}


def fresh_cooperation() -> CooperationState:
    cmd = CreateCooperation(title="Headquarters", lead_organization_id=LEAD, lead_organization_name="Gov",
                            partner_organization_id=PARTNER, partner_organization_name="Acme",
                            liaison_officer="Officer Li")
    state, _ = coop.new_cooperation("c1", cmd, CTX)
    return state


def project_command(project_id: str, agreement_id: str) -> CreateProject:
    return CreateProject(project_id=project_id, agreement_id=agreement_id, title=f"Project {project_id}",
                         committed_investment=Decimal("1000.00"), responsible_department="Office",
                         responsible_officer="Wang",
                         milestones=[MilestoneSpec(milestone_id="m1", name="Registration", due_date=TODAY)])


class AppliesLikeTheWorkflow:
    """Applies a command the way the workflow does: to a deep copy, kept only if accepted."""

    domain_rules: Any  # the domain module whose `apply` runs (not `rules`: hypothesis owns that name)
    label: str
    state: Any

    def progress(self) -> str:
        raise NotImplementedError

    def check_transition(self, old: Any, new: Any, cmd: Any, change: Change) -> None:
        raise NotImplementedError

    def execute(self, cmd: Any) -> Change | None:
        old = self.state
        before = old.model_dump(mode="json")
        draft = old.model_copy(deep=True)
        try:
            change = self.domain_rules.apply(draft, cmd, CTX)
        except DomainError as error:
            event(f"{self.label} {type(cmd).__name__}: {error.kind}")
            # The kept state is exactly as it was.
            assert self.state is old
            assert old.model_dump(mode="json") == before
            return None
        draft.seq += 1
        event(f"{self.label} {type(cmd).__name__}: accepted")
        self.check_transition(old, draft, cmd, change)
        self.state = draft
        event(f"{self.label} {self.progress()}")
        return change


class CooperationMachine(AppliesLikeTheWorkflow, RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = fresh_cooperation()

    # ------------------------------------------------------------ the workflow's way of applying

    domain_rules = coop
    label = "cooperation"

    def progress(self) -> str:
        return f"stage {self.state.stage.value}"

    def check_transition(self, old: CooperationState, new: CooperationState, cmd: Any, change: Change) -> None:
        assert isinstance(change, Change)
        assert change.action in COOPERATION_ACTIONS[type(cmd)], (cmd, change.action)
        assert new.seq == old.seq + 1
        assert new.updated_at == NOW

        if old.stage in CLOSED_STAGES:
            # Once terminated or completed, only a child's closing message is taken, and it
            # changes nothing but that project's status.
            assert isinstance(cmd, ProjectClosed)
            assert new.stage == old.stage
            o, n = old.model_dump(mode="json"), new.model_dump(mode="json")
            assert without(o, "projects", "updated_at", "seq") == without(n, "projects", "updated_at", "seq")
            assert [without(p, "status") for p in o["projects"]] == [without(p, "status") for p in n["projects"]]

        # Nothing is ever removed; records only grow.
        assert new.negotiation[: len(old.negotiation)] == old.negotiation
        assert [a.agreement_id for a in new.agreements[: len(old.agreements)]] == [a.agreement_id for a in old.agreements]
        assert [p.project_id for p in new.projects[: len(old.projects)]] == [p.project_id for p in old.projects]
        for a in old.agreements:
            b = new.agreement(a.agreement_id)
            assert b.review_log[: len(a.review_log)] == a.review_log
            assert b.signatures[: len(a.signatures)] == a.signatures
            assert b.revision >= a.revision
            assert (a.status.value, b.status.value) in ALLOWED_AGREEMENT_MOVES
            if a.status == AgreementStatus.signed:
                assert b == a  # a signed agreement never changes again
            if getattr(cmd, "agreement_id", None) != a.agreement_id or isinstance(cmd, CreateProject):
                assert b == a  # a command touches only the agreement it names

        if isinstance(cmd, DecideReviewStep):
            # The decision is about the step it names, which was the one the agreement waited for.
            a, b = old.agreement(cmd.agreement_id), new.agreement(cmd.agreement_id)
            assert a.current_step() is not None and a.current_step().name == cmd.step
            assert b.review_log[-1].step == cmd.step and len(b.review_log) == len(a.review_log) + 1
            if cmd.decision == "approve":
                index = next(i for i, st_ in enumerate(a.review_steps) if st_.status == StepStatus.pending)
                assert b.review_steps[index].status == StepStatus.approved
                assert [x.status for x in b.review_steps[index + 1:]] == [x.status for x in a.review_steps[index + 1:]]
            else:
                assert b.status == AgreementStatus.draft
                assert all(x.status == StepStatus.pending for x in b.review_steps)

        if isinstance(cmd, SignAgreement) and new.agreement(cmd.agreement_id).kind == AgreementKind.investment:
            assert old.framework_signed()  # not even one party signs ahead of the framework agreement

        # The stage only moves forward (or to terminated).
        if new.stage != old.stage:
            assert new.stage == Stage.terminated or STAGE_RANK[new.stage] == STAGE_RANK[old.stage] + 1

        # The audit change carries exactly the delta of the entity it names.
        if change.entity_type == "agreement":
            assert change.entity_id == cmd.agreement_id
            previous = next((a for a in old.agreements if a.agreement_id == cmd.agreement_id), None)
            old_dump = previous.model_dump(mode="json") if previous else {}
            ignore = {"review_log"} if isinstance(cmd, (SubmitAgreement, DecideReviewStep)) else set()
            assert_delta(change, old_dump, new.agreement(cmd.agreement_id).model_dump(mode="json"), ignore)
        elif change.action == "negotiation.recorded":
            assert_delta(change, {}, new.negotiation[-1].model_dump(mode="json"))
        elif change.action == "project.created":
            assert_delta(change, {}, new.projects[-1].model_dump(mode="json"))
        elif change.action == "cooperation.terminated":
            assert change.before == {"stage": old.stage.value} and change.after == {"stage": "terminated"}
            assert change.comment == cmd.reason == new.termination_reason
        elif change.action == "cooperation.project_closed":
            assert change.before == {"stage": old.stage.value}
            assert change.after == {"stage": new.stage.value, "project_id": cmd.project_id,
                                    "project_status": cmd.status.value}
            assert new.project(cmd.project_id).status == cmd.status

    # ------------------------------------------------------------ starting points

    @initialize(level=st.integers(min_value=0, max_value=4), partial=st.integers(min_value=0, max_value=7),
                ended=st.integers(min_value=0, max_value=5))
    def start(self, level: int, partial: int, ended: int) -> None:
        """Begin at a random depth so long valid paths get explored, not only their first steps:
        `level` signs agreements and creates a project, `partial` takes one more agreement
        part-way through its review or signing (7: as far as the rules allow), `ended == 0`
        terminates the cooperation."""
        if level >= 1:
            self.must(DraftAgreement(agreement_id="fw", agreement_kind="framework", title="Framework",
                                     parties=[party(LEAD), party(PARTNER)]))
        if level >= 2:
            self.push_through("fw")
        if level >= 3:
            self.must(DraftAgreement(agreement_id="inv1", agreement_kind="investment", title="Investment",
                                     parties=[party(LEAD), party(PARTNER), party(THIRD)], review_steps=["finance"]))
            self.push_through("inv1")
        if level >= 4:
            self.must(project_command("p1", "inv1"))
        if partial:
            # Level 0 gets an investment agreement ahead of any framework agreement.
            kind = AgreementKind.framework if level == 1 else AgreementKind.investment
            target = "fw" if kind == AgreementKind.framework else "inv2"
            if target not in {a.agreement_id for a in self.state.agreements}:
                self.must(DraftAgreement(agreement_id=target, agreement_kind=kind, title="Pending",
                                         parties=[party(PARTNER), party(THIRD)],
                                         review_steps=["legal_review", "finance", "leadership_approval"]))
            for _ in range(partial - 1):
                a = self.state.agreement(target)
                if a.status == AgreementStatus.signed or (
                        partial < 7 and a.status == AgreementStatus.approved
                        and len(a.signatures) == len(a.parties) - 1):
                    break  # stop one signature short, unless asked for the whole way
                if self.execute(self.next_valid(a)) is None:
                    break  # an investment agreement waits for the framework agreement
        if ended == 0:
            self.terminate_like_the_workflow()
        event(f"cooperation start level {level} partial {partial} ended {ended == 0}")

    def must(self, cmd: Any) -> None:
        assert self.execute(cmd) is not None, cmd

    def push_through(self, agreement_id: str) -> None:
        while self.state.agreement(agreement_id).status != AgreementStatus.signed:
            self.must(self.next_valid(self.state.agreement(agreement_id)))

    @staticmethod
    def next_valid(agreement: coop.Agreement) -> Any:
        if agreement.status == AgreementStatus.draft:
            return SubmitAgreement(agreement_id=agreement.agreement_id)
        if agreement.status == AgreementStatus.in_review:
            return DecideReviewStep(agreement_id=agreement.agreement_id, step=agreement.current_step().name,
                                    decision="approve")
        unsigned = next(p for p in agreement.parties if agreement.signature_of(p.organization_id) is None)
        return SignAgreement(agreement_id=agreement.agreement_id, organization_id=unsigned.organization_id,
                             signed_on=TODAY)

    # ------------------------------------------------------------ random commands

    def resolve(self, ref: str | int) -> str:
        if isinstance(ref, str):
            return ref
        agreements = self.state.agreements
        return agreements[ref % len(agreements)].agreement_id if agreements else "ghost"

    @rule(event_id=st.sampled_from(["e1", "e2"]), on=past_or_future,
          kind=st.sampled_from(["meeting", "inspection_visit", "forum", "draft_version", "note"]))
    def negotiate(self, event_id: str, on: date, kind: str) -> None:
        self.execute(RecordNegotiation(event=NegotiationEvent(event_id=event_id, kind=kind, occurred_on=on)))

    @rule(agreement_id=st.sampled_from(AGREEMENT_IDS), kind=st.sampled_from(list(AgreementKind)),
          orgs=st.lists(st.sampled_from([LEAD, PARTNER, THIRD]), min_size=2, max_size=3, unique=True),
          steps=st.lists(st.sampled_from(STEP_NAMES), max_size=3))
    def draft_agreement(self, agreement_id: str, kind: AgreementKind, orgs: list[str], steps: list[str]) -> None:
        self.execute(DraftAgreement(agreement_id=agreement_id, agreement_kind=kind, title=f"Agreement {agreement_id}",
                                    parties=[party(o) for o in orgs], review_steps=steps))

    @rule(ref=agreement_ref, title=st.none() | st.sampled_from(["Revised", "Final"]),
          orgs=st.none() | st.lists(st.sampled_from([LEAD, PARTNER, THIRD]), min_size=2, max_size=3, unique=True),
          steps=st.none() | st.lists(st.sampled_from(STEP_NAMES), max_size=3))
    def edit_agreement(self, ref: str | int, title: str | None, orgs: list[str] | None,
                       steps: list[str] | None) -> None:
        agreement_id = self.resolve(ref)
        self.execute(EditAgreement(agreement_id=agreement_id, title=title,
                                   parties=None if orgs is None else [party(o) for o in orgs], review_steps=steps))

    @rule(ref=agreement_ref)
    def submit(self, ref: str | int) -> None:
        agreement_id = self.resolve(ref)
        self.execute(SubmitAgreement(agreement_id=agreement_id))

    @rule(ref=agreement_ref, step=st.sampled_from(STEP_NAMES + ["no_such_step", CURRENT_STEP]),
          decision=st.sampled_from(["approve", "reject"]))
    def decide(self, ref: str | int, step: str, decision: str) -> None:
        agreement_id = self.resolve(ref)
        if step == CURRENT_STEP:
            found = next((a for a in self.state.agreements if a.agreement_id == agreement_id), None)
            current = found.current_step() if found else None
            step = current.name if current else "legal_review"
        self.execute(DecideReviewStep(agreement_id=agreement_id, step=step, decision=decision,
                                      comment="please revise" if decision == "reject" else None))

    @rule(ref=agreement_ref, org=st.sampled_from([LEAD, PARTNER, THIRD, STRANGER]),
          on=past_or_future)
    def sign(self, ref: str | int, org: str, on: date) -> None:
        agreement_id = self.resolve(ref)
        self.execute(SignAgreement(agreement_id=agreement_id, organization_id=org, signed_on=on))

    @rule(pick=st.integers(min_value=0, max_value=3), twist=st.integers(min_value=0, max_value=3))
    def advance(self, pick: int, twist: int) -> None:
        """Act on some unsigned agreement at its frontier: first try the near-misses the rules
        must refuse there, then send its next valid step (or, by `twist`, a rejection / an edit)."""
        open_agreements = [a for a in self.state.agreements if a.status != AgreementStatus.signed]
        if not open_agreements:
            return
        agreement = open_agreements[pick % len(open_agreements)]
        for near_miss in self.near_misses(agreement):
            self.execute(near_miss)
        agreement = self.state.agreement(agreement.agreement_id)
        if agreement.status == AgreementStatus.signed:
            return  # a near-miss was taken; the invariants have had their say
        cmd = self.next_valid(agreement)
        if twist == 2:
            if agreement.status == AgreementStatus.in_review:
                cmd = cmd.model_copy(update={"decision": "reject", "comment": "not yet"})
            elif agreement.status == AgreementStatus.draft:
                cmd = EditAgreement(agreement_id=agreement.agreement_id, title="Edited at the frontier")
        elif twist == 3 and agreement.status == AgreementStatus.draft:
            cmd = EditAgreement(agreement_id=agreement.agreement_id,
                                parties=[party(PARTNER), party(LEAD), party(THIRD)], review_steps=STEP_NAMES)
        self.execute(cmd)

    def near_misses(self, agreement: coop.Agreement) -> list[Any]:
        """Commands one small step off the valid path of this agreement."""
        aid = agreement.agreement_id
        misses: list[Any] = []
        if agreement.status == AgreementStatus.draft:
            misses.append(EditAgreement(agreement_id=aid, parties=[party(LEAD), party(THIRD)]))
            misses.append(SignAgreement(agreement_id=aid, organization_id=PARTNER, signed_on=TODAY))
        elif agreement.status == AgreementStatus.in_review:
            current = agreement.current_step().name
            misses += [DecideReviewStep(agreement_id=aid, step=s.name, decision="approve")
                       for s in agreement.review_steps if s.name != current]
            misses.append(EditAgreement(agreement_id=aid, title="Too late"))
            misses.append(SubmitAgreement(agreement_id=aid))
        elif agreement.status == AgreementStatus.approved:
            misses += [SignAgreement(agreement_id=aid, organization_id=s.organization_id, signed_on=TODAY)
                       for s in agreement.signatures]
            misses.append(SignAgreement(agreement_id=aid, organization_id=STRANGER, signed_on=TODAY))
            unsigned = [p for p in agreement.parties if agreement.signature_of(p.organization_id) is None]
            misses += [SignAgreement(agreement_id=aid, organization_id=p.organization_id,
                                     signed_on=TODAY + timedelta(days=1)) for p in unsigned[:1]]
            misses.append(DecideReviewStep(agreement_id=aid, step=agreement.review_steps[-1].name
                                           if agreement.review_steps else "legal_review", decision="approve"))
        return misses

    @rule(project_id=st.sampled_from(PROJECT_IDS), ref=agreement_ref)
    def create_project(self, project_id: str, ref: str | int) -> None:
        agreement_id = self.resolve(ref)
        self.execute(project_command(project_id, agreement_id))

    @rule(ref=st.sampled_from(PROJECT_IDS + ["ghost"]) | st.integers(min_value=0, max_value=2),
          status=st.sampled_from([ProjectStatus.completed, ProjectStatus.cancelled]))
    def project_closed(self, ref: str | int, status: ProjectStatus) -> None:
        projects = self.state.projects
        if isinstance(ref, int):
            ref = projects[ref % len(projects)].project_id if projects else "ghost"
        project_id = ref
        # A child project reports only a closed status (see ProjectWorkflow._tell_cooperation).
        self.execute(ProjectClosed(project_id=project_id, status=status))

    @rule(roll=st.integers(min_value=0, max_value=3))
    def terminate(self, roll: int) -> None:
        # Rare, so that most sequences get deep before the cooperation ends.
        if roll == 0:
            self.terminate_like_the_workflow()

    def terminate_like_the_workflow(self) -> None:
        """Terminate; the workflow then cancels each open project, which reports back as closed."""
        if self.execute(TerminateCooperation(reason="the company withdrew")) is None:
            return
        for ref in list(self.state.projects):
            if ref.status not in CLOSED_STATUSES:
                self.must(ProjectClosed(project_id=ref.project_id, status=ProjectStatus.cancelled))
                assert self.state.stage == Stage.terminated

    # ------------------------------------------------------------ invariants

    @invariant()
    def investment_signed_only_after_framework(self) -> None:
        if any(a.kind == AgreementKind.investment and a.status == AgreementStatus.signed
               for a in self.state.agreements):
            assert self.state.framework_signed()
            fw = next(a for a in self.state.agreements if a.kind == AgreementKind.framework)
            inv_dates = [a.signed_on for a in self.state.agreements
                         if a.kind == AgreementKind.investment and a.status == AgreementStatus.signed]
            assert all(d is not None for d in inv_dates) and fw.signed_on is not None

    @invariant()
    def at_most_one_framework_and_unique_ids(self) -> None:
        agreements = self.state.agreements
        assert sum(a.kind == AgreementKind.framework for a in agreements) <= 1
        assert len({a.agreement_id for a in agreements}) == len(agreements)
        assert len({p.project_id for p in self.state.projects}) == len(self.state.projects)
        assert len({e.event_id for e in self.state.negotiation}) == len(self.state.negotiation)

    @invariant()
    def partner_is_a_party_to_every_agreement(self) -> None:
        for a in self.state.agreements:
            assert PARTNER in {p.organization_id for p in a.parties}

    @invariant()
    def projects_stand_on_signed_investment_agreements(self) -> None:
        for p in self.state.projects:
            a = self.state.agreement(p.agreement_id)
            assert a.kind == AgreementKind.investment and a.status == AgreementStatus.signed

    @invariant()
    def stage_agrees_with_agreements(self) -> None:
        s = self.state
        investment_signed = any(a.kind == AgreementKind.investment and a.status == AgreementStatus.signed
                                for a in s.agreements)
        if s.stage == Stage.terminated:
            assert s.termination_reason
            return
        assert s.termination_reason is None
        assert (s.stage != Stage.negotiating) == s.framework_signed()
        assert (s.stage in {Stage.in_delivery, Stage.completed}) == investment_signed
        if s.projects and s.stage != Stage.completed:
            assert s.stage == Stage.in_delivery
            assert not all(p.status in CLOSED_STATUSES for p in s.projects)
        if s.stage == Stage.completed:
            assert s.projects and all(p.status in CLOSED_STATUSES for p in s.projects)

    @invariant()
    def signatures_match_status(self) -> None:
        for a in self.state.agreements:
            party_ids = [p.organization_id for p in a.parties]
            signer_ids = [s.organization_id for s in a.signatures]
            assert len(set(signer_ids)) == len(signer_ids) and set(signer_ids) <= set(party_ids)
            assert all(s.signed_on <= TODAY for s in a.signatures)
            if a.status == AgreementStatus.signed:
                assert sorted(signer_ids) == sorted(party_ids)
                assert a.signed_on == max(s.signed_on for s in a.signatures)
            else:
                assert len(signer_ids) < len(party_ids) and a.signed_on is None
                if a.status != AgreementStatus.approved:
                    assert not a.signatures

    @invariant()
    def review_steps_match_status(self) -> None:
        for a in self.state.agreements:
            flags = [s.status == StepStatus.approved for s in a.review_steps]
            assert flags == sorted(flags, reverse=True)  # approved steps form a prefix
            if a.status == AgreementStatus.draft:
                assert not any(flags)
            elif a.status == AgreementStatus.in_review:
                assert a.current_step() is not None
            else:
                assert all(flags)
            assert all(s.decided_by is not None for s in a.review_steps if s.status == StepStatus.approved)
            assert all(d.step in {s.name for s in a.review_steps} or d.decision for d in a.review_log)
            assert sum(d.decision == "approved" for d in a.review_log) >= sum(flags)

    @invariant()
    def events_never_in_the_future(self) -> None:
        assert all(e.occurred_on <= TODAY for e in self.state.negotiation)


CooperationMachine.TestCase.settings = SETTINGS
TestCooperationStateMachine = CooperationMachine.TestCase


# ================================================================ project


MILESTONE_IDS = ["m1", "m2", "m3", "ghost"]
ENTRY_IDS = ["e1", "e2", "e3", "e4"]
# A milestone reference: a fixed id (maybe unknown), or an index into the project's milestones.
milestone_ref = st.sampled_from(MILESTONE_IDS) | st.integers(min_value=0, max_value=3)
DUE_DATES = [date(2027, 1, 1), date(2027, 6, 1), date(2028, 1, 1)]

PROJECT_ACTIONS: dict[type, str] = {
    AddMilestone: "milestone.added",
    MoveMilestone: "milestone.moved",
    CompleteMilestone: "milestone.completed",
    RecordInvestment: "investment.recorded",
    SuspendProject: "project.suspended",
    ResumeProject: "project.resumed",
    CancelProject: "project.cancelled",
}


class ProjectMachine(AppliesLikeTheWorkflow, RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = self.fresh(["m1"])
        self.realized = Decimal("0.00")

    @staticmethod
    def fresh(milestone_ids: list[str]) -> ProjectState:
        return proj.new_project(NewProject(
            project_id="p1", cooperation_id="c1", cooperation_workflow_id="cooperation-c1", agreement_id="inv1",
            title="Factory", committed_investment=Decimal("5000000.00"), responsible_department="Office",
            responsible_officer="Wang", created_at=NOW,
            milestones=[MilestoneSpec(milestone_id=m, name=f"Milestone {m}", due_date=DUE_DATES[1])
                        for m in milestone_ids],
        ))

    @initialize(milestone_ids=st.sampled_from([["m1"], ["m1", "m2"], ["m2", "m3", "m1"]]))
    def start(self, milestone_ids: list[str]) -> None:
        self.state = self.fresh(milestone_ids)

    # ------------------------------------------------------------ the workflow's way of applying

    domain_rules = proj
    label = "project"

    def progress(self) -> str:
        return f"status {self.state.status.value}"

    def check_transition(self, old: ProjectState, new: ProjectState, cmd: Any, change: Change) -> None:
        assert old.status not in CLOSED_STATUSES, "a closed project accepted a command"
        if old.status == ProjectStatus.suspended:
            assert isinstance(cmd, (ResumeProject, CancelProject))
        assert change.action == PROJECT_ACTIONS[type(cmd)]
        assert new.seq == old.seq + 1
        assert new.updated_at == NOW

        # Milestones and money are only ever added; moves only grow; done stays done.
        assert [m.milestone_id for m in new.milestones[: len(old.milestones)]] == [m.milestone_id for m in old.milestones]
        assert new.investments[: len(old.investments)] == old.investments
        for m in old.milestones:
            n = new.milestone(m.milestone_id)
            assert n.moves[: len(m.moves)] == m.moves
            if m.status == "done":
                assert n == m
        touched = getattr(cmd, "milestone_id", None) or (cmd.milestone.milestone_id
                                                         if isinstance(cmd, AddMilestone) else None)
        for m in old.milestones:
            if m.milestone_id != touched:
                assert new.milestone(m.milestone_id) == m

        if isinstance(cmd, RecordInvestment):
            self.realized += cmd.amount
        if isinstance(cmd, ResumeProject):
            assert new.status == (old.status_before_suspension or ProjectStatus.active)
        if isinstance(cmd, SuspendProject):
            assert new.status_before_suspension == old.status
        if isinstance(cmd, MoveMilestone):
            n = new.milestone(cmd.milestone_id)
            assert len(n.moves) == len(old.milestone(cmd.milestone_id).moves) + 1
            assert n.moves[-1].reason == cmd.reason and n.moves[-1].old_due_date != n.moves[-1].new_due_date
            assert new.status == old.status

        # The audit change carries exactly the delta of the entity it names.
        if change.entity_type == "milestone":
            previous = next((m for m in old.milestones if m.milestone_id == change.entity_id), None)
            old_dump = previous.model_dump(mode="json") if previous else {}
            ignore = set() if isinstance(cmd, AddMilestone) else {"moves"}
            assert_delta(change, old_dump, new.milestone(change.entity_id).model_dump(mode="json"), ignore)
        elif change.entity_type == "investment":
            assert_delta(change, {}, new.investments[-1].model_dump(mode="json"))
        else:
            assert change.entity_type == "project" and change.entity_id == "p1"
            assert change.before == {"status": old.status.value} and change.after == {"status": new.status.value}

    # ------------------------------------------------------------ random commands

    @rule(milestone_id=st.sampled_from(MILESTONE_IDS), due=st.sampled_from(DUE_DATES))
    def add_milestone(self, milestone_id: str, due: date) -> None:
        self.execute(AddMilestone(milestone=MilestoneSpec(milestone_id=milestone_id, name="Added", due_date=due)))

    def resolve(self, ref: str | int) -> str:
        return ref if isinstance(ref, str) else self.state.milestones[ref % len(self.state.milestones)].milestone_id

    @rule(ref=milestone_ref, due=st.sampled_from(DUE_DATES))
    def move_milestone(self, ref: str | int, due: date) -> None:
        milestone_id = self.resolve(ref)
        self.execute(MoveMilestone(milestone_id=milestone_id, new_due_date=due, reason=f"moved to {due}"))

    @rule(ref=milestone_ref, on=past_or_future)
    def complete_milestone(self, ref: str | int, on: date) -> None:
        milestone_id = self.resolve(ref)
        if self.execute(CompleteMilestone(milestone_id=milestone_id, completed_on=on, evidence="site photos")):
            # Near-misses right away: a done milestone neither moves nor completes again.
            self.execute(MoveMilestone(milestone_id=milestone_id, new_due_date=DUE_DATES[0], reason="after the fact"))
            self.execute(CompleteMilestone(milestone_id=milestone_id, completed_on=TODAY, evidence="again"))

    @rule(entry_id=st.sampled_from(ENTRY_IDS), on=past_or_future,
          amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999999.99"), places=2))
    def record_investment(self, entry_id: str, on: date, amount: Decimal) -> None:
        self.execute(RecordInvestment(entry_id=entry_id, received_on=on, amount=amount, source_note="transfer"))

    @rule()
    def suspend(self) -> None:
        self.execute(SuspendProject(reason="permit review"))

    @rule(comment=st.none() | st.just("permit granted"))
    def resume(self, comment: str | None) -> None:
        self.execute(ResumeProject(comment=comment))

    @rule(roll=st.integers(min_value=0, max_value=3))
    def cancel(self, roll: int) -> None:
        if roll == 0:
            self.execute(CancelProject(reason="the company withdrew"))

    # ------------------------------------------------------------ invariants

    @invariant()
    def completed_iff_all_milestones_done(self) -> None:
        all_done = all(m.status == "done" for m in self.state.milestones)
        if self.state.status not in {ProjectStatus.cancelled, ProjectStatus.suspended}:
            assert (self.state.status == ProjectStatus.completed) == all_done
        # Completion happens on the last milestone, so no other status ever sees them all done.
        assert (self.state.status == ProjectStatus.completed) == all_done

    @invariant()
    def planned_means_no_progress_and_active_means_some(self) -> None:
        progress = bool(self.state.investments) or any(m.status == "done" for m in self.state.milestones)
        if self.state.status == ProjectStatus.planned:
            assert not progress
        if self.state.status in {ProjectStatus.active, ProjectStatus.completed}:
            assert progress

    @invariant()
    def suspension_remembers_the_previous_status(self) -> None:
        if self.state.status == ProjectStatus.suspended:
            assert self.state.status_before_suspension in {ProjectStatus.planned, ProjectStatus.active}
        elif self.state.status != ProjectStatus.cancelled:
            assert self.state.status_before_suspension is None

    @invariant()
    def realized_investment_is_the_exact_sum(self) -> None:
        total = self.state.realized_investment
        assert isinstance(total, Decimal) and total == self.realized
        assert total == sum((e.amount for e in self.state.investments), Decimal(0))
        assert len({e.entry_id for e in self.state.investments}) == len(self.state.investments)
        assert all(e.received_on <= TODAY for e in self.state.investments)

    @invariant()
    def milestones_are_consistent(self) -> None:
        assert len({m.milestone_id for m in self.state.milestones}) == len(self.state.milestones)
        for m in self.state.milestones:
            if m.status == "done":
                assert m.completed_on is not None and m.completed_on <= TODAY and m.completed_by == "Tester"
            else:
                assert m.completed_on is None and m.evidence is None
            # Every move is kept and the moves chain up to the current due date.
            for a, b in pairwise(m.moves):
                assert a.new_due_date == b.old_due_date
            assert all(mv.old_due_date != mv.new_due_date for mv in m.moves)
            if m.moves:
                assert m.moves[-1].new_due_date == m.due_date


ProjectMachine.TestCase.settings = SETTINGS
TestProjectStateMachine = ProjectMachine.TestCase
