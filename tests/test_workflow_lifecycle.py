"""The cooperation lifecycle end to end on the Temporal dev server and PostgreSQL.

Every test drives the real `CooperationWorkflow` / `ProjectWorkflow` through the
write path the API uses (`runtime.lifecycle`) and checks three views of the
result: the workflow state (query `state` or the workflow result), the read-model
tables and the audit trail.

The helpers at the top (`Coop`, `open_cooperation`, `sign_through`, ...) are shared
with the other workflow tests and with `tests/record_histories.py`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from domain.audit import Actor
from domain.cooperation import (
    AgreementKind,
    CooperationCommand,
    CooperationState,
    CreateCooperation,
    CreateProject,
    DecideReviewStep,
    DraftAgreement,
    EditAgreement,
    NegotiationEvent,
    PartyInput,
    RecordNegotiation,
    SignAgreement,
    SubmitAgreement,
    TerminateCooperation,
)
from domain.project import (
    CompleteMilestone,
    MilestoneSpec,
    MoveMilestone,
    ProjectCommand,
    ProjectState,
    RecordInvestment,
    ResumeProject,
    SuspendProject,
)
from domain.records import cooperation_workflow_id, project_workflow_id
from domain.templates import DEFAULT_REVIEW_CHAIN
from runtime.lifecycle import act_on_cooperation, act_on_project, create_cooperation
from tests.conftest import TASK_QUEUE, new_id
from workflows.cooperation import CooperationWorkflow
from workflows.project import ProjectWorkflow

DEPARTMENT = "Investment Promotion Bureau"
OFFICER = Actor(user_id="u-officer", name="Officer Wang", role="liaison_officer", roles=("liaison_officer",),
                department=DEPARTMENT)
COUNSEL = Actor(user_id="u-counsel", name="Counsel Li", role="reviewer", roles=("reviewer",),
                department="Legal Affairs Office")
LEADER = Actor(user_id="u-leader", name="Director Zhao", role="leader", roles=("leader",), department=DEPARTMENT)

FRAMEWORK_SIGNED_ON = date(2024, 6, 3)
INVESTMENT_SIGNED_ON = date(2024, 9, 18)

T = TypeVar("T")


# ---------------------------------------------------------------- helpers (shared)


async def register_organizations(pool: asyncpg.Pool) -> tuple[str, str, str, str]:
    """A fresh government/company pair; cooperations reference organizations by FK."""
    suffix = new_id()
    lead_id, partner_id = f"gov-{suffix}", f"co-{suffix}"
    lead_name, partner_name = f"Municipal Government {suffix}", f"Partner Holdings {suffix}"
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO organizations (id, name, kind, created_by) VALUES ($1, $2, $3, 'tests')",
            [(lead_id, lead_name, "government"), (partner_id, partner_name, "company")],
        )
    return lead_id, lead_name, partner_id, partner_name


@dataclass
class Coop:
    """One cooperation under test and the ways to act on it."""

    client: Client
    cooperation_id: str
    lead_id: str
    lead_name: str
    partner_id: str
    partner_name: str
    _requests: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def workflow_id(self) -> str:
        return cooperation_workflow_id(self.cooperation_id)

    # Agreement and project ids are unique across cooperations (the read model keys them globally).
    @property
    def fw(self) -> str:
        return f"fw-{self.cooperation_id}"

    @property
    def inv(self) -> str:
        return f"inv-{self.cooperation_id}"

    def pid(self, name: str) -> str:
        return f"{name}-{self.cooperation_id}"

    def handle(self, run_id: str | None = None):  # noqa: ANN201 - a typed WorkflowHandle
        return self.client.get_workflow_handle_for(CooperationWorkflow.run, self.workflow_id, run_id=run_id)

    def project_handle(self, project_id: str):  # noqa: ANN201
        return self.client.get_workflow_handle_for(ProjectWorkflow.run, project_workflow_id(project_id))

    def request_id(self) -> str:
        return f"req-{self.cooperation_id}-{next(self._requests)}"

    async def act(self, command: CooperationCommand, request_id: str | None = None,
                  actor: Actor = OFFICER) -> CooperationState:
        return await act_on_cooperation(self.client, self.cooperation_id, actor, command,
                                        request_id or self.request_id())

    async def act_project(self, project_id: str, command: ProjectCommand, request_id: str | None = None,
                          actor: Actor = OFFICER) -> ProjectState:
        return await act_on_project(self.client, project_id, actor, command, request_id or self.request_id())

    async def state(self) -> CooperationState:
        state = await self.handle().query(CooperationWorkflow.state)
        assert state is not None
        return state

    async def project_state(self, project_id: str) -> ProjectState:
        return await self.project_handle(project_id).query(ProjectWorkflow.state)

    def parties(self) -> list[PartyInput]:
        return [
            PartyInput(organization_id=self.lead_id, organization_name=self.lead_name,
                       signatory_name="Mayor Chen", signatory_title="Mayor"),
            PartyInput(organization_id=self.partner_id, organization_name=self.partner_name,
                       signatory_name="Chairwoman Liu", signatory_title="Chair of the Board"),
        ]


def creation_of(lead_id: str, lead_name: str, partner_id: str, partner_name: str) -> CreateCooperation:
    return CreateCooperation(
        title="Regional headquarters and battery plant 区域总部及电池工厂",
        lead_organization_id=lead_id,
        lead_organization_name=lead_name,
        partner_organization_id=partner_id,
        partner_organization_name=partner_name,
        areas=["new energy", "advanced manufacturing"],
        liaison_officer="Officer Wang",
        department=DEPARTMENT,
        started_on=date(2024, 3, 1),
        target_signing_date=date(2024, 6, 30),
        description="Strategic cooperation on a regional HQ and a battery plant.",
    )


async def open_cooperation(
    client: Client,
    pool: asyncpg.Pool,
    *,
    task_queue: str = TASK_QUEUE,
    continue_as_new_after: int | None = None,
) -> tuple[Coop, CooperationState]:
    """Register the two organizations and create the cooperation via update-with-start."""
    lead_id, lead_name, partner_id, partner_name = await register_organizations(pool)
    coop = Coop(client, new_id("coop-"), lead_id, lead_name, partner_id, partner_name)
    state = await create_cooperation(
        client, task_queue, coop.cooperation_id, creation_of(lead_id, lead_name, partner_id, partner_name),
        OFFICER, f"create-{coop.cooperation_id}", continue_as_new_after=continue_as_new_after,
    )
    return coop, state


def meeting(event_id: str = "neg-1", on: date = date(2024, 3, 12)) -> RecordNegotiation:
    return RecordNegotiation(event=NegotiationEvent(
        event_id=event_id, kind="meeting", occurred_on=on, place="City Hall, room 301",
        participants=["Mayor Chen", "Chairwoman Liu"], summary="First round on land and tax terms.",
    ))


def draft(coop: Coop, agreement_id: str, kind: AgreementKind) -> DraftAgreement:
    title = "Strategic cooperation framework agreement" if kind == AgreementKind.framework \
        else "Battery plant project investment agreement"
    return DraftAgreement(agreement_id=agreement_id, agreement_kind=kind, title=title, parties=coop.parties())


def approve(agreement_id: str, step: str) -> DecideReviewStep:
    return DecideReviewStep(agreement_id=agreement_id, step=step, decision="approve", comment=f"{step} ok")


def sign(coop: Coop, agreement_id: str, organization_id: str, on: date) -> SignAgreement:
    return SignAgreement(agreement_id=agreement_id, organization_id=organization_id, signed_on=on)


async def review(coop: Coop, agreement_id: str) -> CooperationState:
    """Submit a draft and approve every default review step."""
    state = await coop.act(SubmitAgreement(agreement_id=agreement_id))
    for step, actor in zip(DEFAULT_REVIEW_CHAIN, (COUNSEL, LEADER), strict=True):
        state = await coop.act(approve(agreement_id, step), actor=actor)
    return state


async def sign_through(coop: Coop, agreement_id: str, kind: AgreementKind, on: date) -> CooperationState:
    """Draft → submit → both review steps → signed by both parties."""
    await coop.act(draft(coop, agreement_id, kind))
    await review(coop, agreement_id)
    await coop.act(sign(coop, agreement_id, coop.lead_id, on))
    return await coop.act(sign(coop, agreement_id, coop.partner_id, on))


def milestone_specs(prefix: str, count: int) -> list[MilestoneSpec]:
    return [
        MilestoneSpec(milestone_id=f"{prefix}-m{i}", name=f"Milestone {i} of {prefix}",
                      due_date=date(2025, 1, 1) + timedelta(days=90 * i), owner="Site office")
        for i in range(1, count + 1)
    ]


def new_project(project_id: str, agreement_id: str, count: int,
                committed: str = "250000000.00") -> CreateProject:
    return CreateProject(
        project_id=project_id, agreement_id=agreement_id, title=f"Project {project_id}", site="Eastern industrial park",
        committed_investment=Decimal(committed), responsible_department="Development Zone Committee",
        responsible_officer="Officer Sun", milestones=milestone_specs(project_id, count),
    )


def complete(milestone_id: str, on: date = date(2025, 2, 1)) -> CompleteMilestone:
    return CompleteMilestone(milestone_id=milestone_id, completed_on=on, evidence=f"inspection report for {milestone_id}")


def invest(entry_id: str, amount: str, on: date = date(2025, 1, 15)) -> RecordInvestment:
    return RecordInvestment(entry_id=entry_id, received_on=on, amount=Decimal(amount), source_note="bank statement")


async def in_delivery(coop: Coop) -> CooperationState:
    """Negotiate, sign the framework and the investment agreement: the stage is then in_delivery."""
    await coop.act(meeting())
    await sign_through(coop, coop.fw, AgreementKind.framework, FRAMEWORK_SIGNED_ON)
    state = await sign_through(coop, coop.inv, AgreementKind.investment, INVESTMENT_SIGNED_ON)
    assert state.stage == "in_delivery"
    return state


async def eventually(probe: Callable[[], Awaitable[T]], timeout: float = 15.0, interval: float = 0.05) -> T:
    """Poll `probe` until it returns something truthy (asynchronous signals, visibility lag)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value {result!r}")
        await asyncio.sleep(interval)


async def refused(action: Awaitable[Any], kind: str = "Refused", says: str | None = None) -> ApplicationError:
    """Assert that an Update was refused by the workflow's validator with the given failure type."""
    with pytest.raises(WorkflowUpdateFailedError) as raised:
        await action
    cause = raised.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert cause.type == kind, (cause.type, cause.message)
    assert cause.non_retryable
    if says is not None:
        assert says in cause.message, cause.message
    return cause


async def audit_rows(pool: asyncpg.Pool, workflow_id: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch("SELECT * FROM audit_events WHERE workflow_id = $1 ORDER BY seq", workflow_id)


async def assert_audit_trail(pool: asyncpg.Pool, workflow_id: str, last_seq: int) -> list[asyncpg.Record]:
    """One audit row per event: seq 1..last_seq in insertion order, no gap, no duplicate."""
    rows = await audit_rows(pool, workflow_id)
    assert [r["event_seq"] for r in rows] == list(range(1, last_seq + 1))
    assert all(r["outcome"] == "succeeded" for r in rows)
    return rows


async def read_model(pool: asyncpg.Pool, cooperation_id: str) -> dict[str, Any]:
    """Every read-model row of one cooperation, plus its audit row count, as plain data."""
    async with pool.acquire() as conn:
        def rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
            return [dict(r) for r in records]

        return {
            "cooperation": rows(await conn.fetch("SELECT * FROM cooperations WHERE id = $1", cooperation_id)),
            "negotiation": rows(await conn.fetch(
                "SELECT * FROM negotiation_events WHERE cooperation_id = $1 ORDER BY id", cooperation_id)),
            "agreements": rows(await conn.fetch(
                "SELECT * FROM agreements WHERE cooperation_id = $1 ORDER BY id", cooperation_id)),
            "signatures": rows(await conn.fetch(
                "SELECT s.* FROM signatures s JOIN agreements a ON a.id = s.agreement_id "
                "WHERE a.cooperation_id = $1 ORDER BY s.agreement_id, s.organization_id", cooperation_id)),
            "projects": rows(await conn.fetch(
                "SELECT * FROM projects WHERE cooperation_id = $1 ORDER BY id", cooperation_id)),
            "milestones": rows(await conn.fetch(
                "SELECT * FROM milestones WHERE cooperation_id = $1 ORDER BY project_id, position", cooperation_id)),
            # Reminder notices (notice.*) of overdue milestones come whenever the worker gets to them:
            # they are not actions on the records, and not counted here.
            "audit_count": await conn.fetchval(
                "SELECT count(*) FROM audit_events WHERE cooperation_id = $1 AND action NOT LIKE 'notice.%'",
                cooperation_id),
        }


async def accepted_update_ids(handle: Any) -> set[str]:
    """Request ids of the Updates the workflow accepted into its history (refused ones never get
    there). An Update id is the request id plus an attempt suffix (runtime.lifecycle.attempt_id)."""
    history = await handle.fetch_history()
    return {
        e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id.split("#")[0]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    }


async def run_chain(coop: Coop, first_run_id: str) -> list[str]:
    """Follow ContinueAsNew links from the first run to the current one; return the run ids."""
    runs = [first_run_id]
    while True:
        history = await coop.handle(run_id=runs[-1]).fetch_history()
        last = history.events[-1]
        if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return runs
        runs.append(last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id)


# ---------------------------------------------------------------- tests


async def test_full_lifecycle_from_negotiation_to_completion(client: Client, pool: asyncpg.Pool) -> None:
    coop, state = await open_cooperation(client, pool)
    cid, fw, inv, p1, p2 = coop.cooperation_id, coop.fw, coop.inv, coop.pid("p1"), coop.pid("p2")
    assert (state.stage, state.seq, state.created_by) == ("negotiating", 1, OFFICER.name)
    rm = await read_model(pool, cid)
    assert (rm["cooperation"][0]["stage"], rm["cooperation"][0]["version"]) == ("negotiating", 1)
    assert rm["cooperation"][0]["workflow_id"] == coop.workflow_id

    # Negotiation.
    state = await coop.act(meeting())
    assert [e.event_id for e in state.negotiation] == ["neg-1"]
    assert state.negotiation[0].recorded_by == OFFICER.name

    # Framework agreement: drafted, submitted, both review steps, signed by each party.
    state = await coop.act(draft(coop, fw, AgreementKind.framework))
    assert state.agreement(fw).status == "draft"
    state = await coop.act(SubmitAgreement(agreement_id=fw))
    assert state.agreement(fw).status == "in_review"
    state = await coop.act(approve(fw, "legal_review"), actor=COUNSEL)
    assert state.agreement(fw).status == "in_review"
    assert state.agreement(fw).current_step().name == "leadership_approval"
    state = await coop.act(approve(fw, "leadership_approval"), actor=LEADER)
    assert state.agreement(fw).status == "approved"
    state = await coop.act(sign(coop, fw, coop.lead_id, date(2024, 6, 1)))
    assert (state.agreement(fw).status, state.stage) == ("approved", "negotiating")
    state = await coop.act(sign(coop, fw, coop.partner_id, FRAMEWORK_SIGNED_ON))
    agreement = state.agreement(fw)
    assert (agreement.status, agreement.signed_on, state.stage) == ("signed", FRAMEWORK_SIGNED_ON, "framework_signed")
    assert [(s.organization_id, s.signatory_name) for s in agreement.signatures] == [
        (coop.lead_id, "Mayor Chen"), (coop.partner_id, "Chairwoman Liu")]
    assert [d.by for d in agreement.review_log] == [COUNSEL.name, LEADER.name]

    # Investment agreement, the same way.
    state = await sign_through(coop, inv, AgreementKind.investment, INVESTMENT_SIGNED_ON)
    assert (state.agreement(inv).status, state.stage) == ("signed", "in_delivery")

    # Two projects, each a child workflow with its milestones.
    state = await coop.act(new_project(p1, inv, 2, committed="300000000.00"))
    state = await coop.act(new_project(p2, inv, 1, committed="80000000.00"))
    assert [(p.project_id, p.status) for p in state.projects] == [(p1, "planned"), (p2, "planned")]
    project = await coop.project_state(p1)
    assert (project.status, [m.milestone_id for m in project.milestones]) == ("planned", [f"{p1}-m1", f"{p1}-m2"])
    rm = await read_model(pool, cid)
    assert [(p["id"], p["status"], p["workflow_id"]) for p in rm["projects"]] == [
        (p1, "planned", f"project-{p1}"), (p2, "planned", f"project-{p2}")]
    assert [(m["id"], m["status"]) for m in rm["milestones"]] == [
        (f"{p1}-m1", "open"), (f"{p1}-m2", "open"), (f"{p2}-m1", "open")]

    # Delivery: money in, milestones done. The first event makes a planned project active.
    project = await coop.act_project(p1, invest("i1", "120000000.00"))
    assert project.status == "active"
    await coop.act_project(p1, invest("i2", "60000000.50"))
    project = await coop.act_project(p1, complete(f"{p1}-m1"))
    assert project.status == "active"
    project = await coop.act_project(p1, complete(f"{p1}-m2", on=date(2025, 3, 1)))
    assert (project.status, project.realized_investment, project.seq) == ("completed", Decimal("180000000.50"), 4)
    assert (await asyncio.wait_for(coop.project_handle(p1).result(), timeout=15)).status == "completed"

    # p1's project_closed signal reaches the parent, which still waits for p2.
    state = await eventually(lambda: _with_project_status(coop, p1, "completed"))
    assert state.stage == "in_delivery"

    await coop.act_project(p2, invest("i1", "80000000.00"))
    project = await coop.act_project(p2, complete(f"{p2}-m1"))
    assert project.status == "completed"

    # The last closed project completes the cooperation, and its workflow ends.
    final = await asyncio.wait_for(coop.handle().result(), timeout=15)
    assert final.stage == "completed"
    assert [(p.project_id, p.status) for p in final.projects] == [(p1, "completed"), (p2, "completed")]
    # 1 created + 1 negotiation + 2 × (draft, submit, 2 approvals, 2 signatures) + 2 projects + 2 closures
    assert final.seq == 18

    # Read model.
    rm = await read_model(pool, cid)
    row = rm["cooperation"][0]
    assert (row["stage"], row["version"], row["termination_reason"]) == ("completed", 18, None)
    assert [n["id"] for n in rm["negotiation"]] == ["neg-1"]
    assert [(a["id"], a["kind"], a["status"], a["signed_on"]) for a in rm["agreements"]] == [
        (fw, "framework", "signed", FRAMEWORK_SIGNED_ON),
        (inv, "investment", "signed", INVESTMENT_SIGNED_ON),
    ]
    assert all([s["status"] for s in a["review_steps"]] == ["approved", "approved"] for a in rm["agreements"])
    assert [(s["agreement_id"], s["organization_id"], s["signatory_name"], s["signed_on"])
            for s in rm["signatures"]] == sorted([
                (fw, coop.lead_id, "Mayor Chen", date(2024, 6, 1)),
                (fw, coop.partner_id, "Chairwoman Liu", FRAMEWORK_SIGNED_ON),
                (inv, coop.lead_id, "Mayor Chen", INVESTMENT_SIGNED_ON),
                (inv, coop.partner_id, "Chairwoman Liu", INVESTMENT_SIGNED_ON),
            ])
    assert [(p["id"], p["status"], p["realized_investment"], p["committed_investment"], p["version"])
            for p in rm["projects"]] == [
        (p1, "completed", Decimal("180000000.50"), Decimal("300000000.00"), 4),
        (p2, "completed", Decimal("80000000.00"), Decimal("80000000.00"), 2),
    ]
    assert [(m["id"], m["status"], m["completed_on"], m["completed_by"], m["evidence"])
            for m in rm["milestones"]] == [
        (f"{p1}-m1", "done", date(2025, 2, 1), OFFICER.name, f"inspection report for {p1}-m1"),
        (f"{p1}-m2", "done", date(2025, 3, 1), OFFICER.name, f"inspection report for {p1}-m2"),
        (f"{p2}-m1", "done", date(2025, 2, 1), OFFICER.name, f"inspection report for {p2}-m1"),
    ]
    async with pool.acquire() as conn:
        investments = await conn.fetch(
            "SELECT project_id, id, amount FROM investments WHERE cooperation_id = $1 ORDER BY project_id, id", cid)
    assert [tuple(r) for r in investments] == [
        (p1, "i1", Decimal("120000000.00")), (p1, "i2", Decimal("60000000.50")), (p2, "i1", Decimal("80000000.00"))]

    # Audit trail: one row per event and workflow, seq 1..n, nothing twice.
    rows = await assert_audit_trail(pool, coop.workflow_id, 18)
    signing = ["agreement.drafted", "agreement.submitted", "agreement.review_approved", "agreement.review_approved",
               "agreement.party_signed", "agreement.signed"]
    assert [r["action"] for r in rows] == [
        "cooperation.created", "negotiation.recorded", *signing, *signing,
        "project.created", "project.created", "cooperation.project_closed", "cooperation.project_closed"]
    assert [r["actor_id"] for r in rows[4:6]] == [COUNSEL.user_id, LEADER.user_id]
    assert rows[-1]["actor_id"] == "system" and rows[-1]["after"]["stage"] == "completed"
    assert all(r["cooperation_id"] == cid for r in rows)
    assert [r["project_id"] for r in rows if r["action"] == "project.created"] == [p1, p2]
    p1_rows = await assert_audit_trail(pool, project_workflow_id(p1), 4)
    assert [r["action"] for r in p1_rows] == ["investment.recorded", "investment.recorded",
                                              "milestone.completed", "milestone.completed"]
    assert all((r["cooperation_id"], r["project_id"]) == (cid, p1) for r in p1_rows)
    await assert_audit_trail(pool, project_workflow_id(p2), 2)
    assert rm["audit_count"] == 18 + 4 + 2

    # A completed cooperation takes no more actions: its run is closed, the server rejects the Update.
    with pytest.raises(RPCError, match="(?i)completed"):
        await coop.act(meeting("neg-late"))
    assert await read_model(pool, cid) == rm


async def _with_project_status(coop: Coop, project_id: str, status: str) -> CooperationState | None:
    state = await coop.state()
    ref = state.project(project_id)
    return state if ref is not None and ref.status == status else None


async def review_rest(coop: Coop, agreement_id: str) -> None:
    for step, actor in zip(DEFAULT_REVIEW_CHAIN, (COUNSEL, LEADER), strict=True):
        await coop.act(approve(agreement_id, step), actor=actor)


async def test_refused_actions_change_nothing(client: Client, pool: asyncpg.Pool) -> None:
    coop, _ = await open_cooperation(client, pool)
    fw, inv = coop.fw, coop.inv
    await coop.act(meeting())
    await coop.act(draft(coop, fw, AgreementKind.framework))
    await coop.act(SubmitAgreement(agreement_id=fw))

    async def snapshot() -> tuple[dict[str, Any], dict[str, Any]]:
        return (await coop.state()).model_dump(), await read_model(pool, coop.cooperation_id)

    refused_ids: list[str] = []

    async def attempt(command: CooperationCommand, kind: str, says: str, actor: Actor = OFFICER) -> None:
        before = await snapshot()
        request_id = coop.request_id()
        refused_ids.append(request_id)
        await refused(coop.act(command, request_id=request_id, actor=actor), kind, says)
        assert await snapshot() == before

    # The framework agreement is in review: nobody may sign it yet.
    await attempt(sign(coop, fw, coop.lead_id, FRAMEWORK_SIGNED_ON), "Refused", "only after every review step")
    # The chain is ordered; unknown steps and agreements are NotFound; a future date is Invalid.
    await attempt(approve(fw, "leadership_approval"), "Refused", "waits for 'legal_review'", actor=LEADER)
    await attempt(approve(fw, "board_vote"), "NotFound", "no step named", actor=LEADER)
    # The second line of access control: the drafter cannot decide a step, a leader not a legal one.
    await attempt(approve(fw, "legal_review"), "Forbidden", "drafted or edited")
    await attempt(approve(fw, "legal_review"), "Forbidden", "decided by a reviewer", actor=LEADER)
    stranger = OFFICER.model_copy(update={"user_id": "u-elsewhere", "department": "Another Bureau"})
    await attempt(meeting("neg-9"), "NotFound", f"cooperation {coop.cooperation_id} not found", actor=stranger)
    await attempt(SubmitAgreement(agreement_id="nope"), "NotFound", "not part of this cooperation")
    await attempt(meeting("neg-2", on=date.today() + timedelta(days=30)), "Invalid", "in the future")
    await attempt(meeting("neg-1"), "Refused", "already recorded")
    await attempt(draft(coop, f"{fw}-2", AgreementKind.framework), "Refused", "already has")

    # Framework approved but unsigned; the investment agreement approved too.
    await review_rest(coop, fw)
    await coop.act(draft(coop, inv, AgreementKind.investment))
    await review(coop, inv)
    state = await coop.state()
    assert (state.agreement(fw).status, state.agreement(inv).status) == ("approved", "approved")
    await attempt(sign(coop, inv, coop.partner_id, INVESTMENT_SIGNED_ON), "Refused",
                  "before the framework agreement is signed")
    await attempt(new_project(coop.pid("early"), inv, 1), "Refused", "needs a signed one")
    await attempt(sign(coop, fw, "someone-else", FRAMEWORK_SIGNED_ON), "Invalid", "not a party")

    # Signing twice for the same party is refused too.
    await coop.act(sign(coop, fw, coop.lead_id, FRAMEWORK_SIGNED_ON))
    await attempt(sign(coop, fw, coop.lead_id, FRAMEWORK_SIGNED_ON), "Refused", "already signed")

    # A refused Update never enters history: the validator rejected it before acceptance.
    accepted = await accepted_update_ids(coop.handle())
    assert accepted and not accepted & set(refused_ids)
    state = await coop.state()
    assert state.seq == 11  # created, meeting, draft, submit, 2 approvals, draft, submit, 2 approvals, 1 signature
    await assert_audit_trail(pool, coop.workflow_id, state.seq)


async def test_rejected_review_returns_agreement_to_draft(client: Client, pool: asyncpg.Pool) -> None:
    coop, _ = await open_cooperation(client, pool)
    fw = coop.fw
    await coop.act(draft(coop, fw, AgreementKind.framework))
    await coop.act(SubmitAgreement(agreement_id=fw))
    await coop.act(approve(fw, "legal_review"), actor=COUNSEL)
    state = await coop.act(DecideReviewStep(agreement_id=fw, step="leadership_approval", decision="reject",
                                            comment="land price clause needs rework"), actor=LEADER)
    agreement = state.agreement(fw)
    assert agreement.status == "draft" and all(s.status == "pending" for s in agreement.review_steps)
    assert [(d.step, d.decision) for d in agreement.review_log] == [
        ("legal_review", "approved"), ("leadership_approval", "rejected")]
    await refused(coop.act(sign(coop, fw, coop.lead_id, FRAMEWORK_SIGNED_ON)), "Refused", "draft")
    state = await coop.act(EditAgreement(agreement_id=fw, title="Framework agreement, revised land terms"))
    assert state.agreement(fw).revision == 2
    await review(coop, fw)
    await coop.act(sign(coop, fw, coop.lead_id, FRAMEWORK_SIGNED_ON))
    state = await coop.act(sign(coop, fw, coop.partner_id, FRAMEWORK_SIGNED_ON))
    assert (state.stage, state.agreement(fw).status) == ("framework_signed", "signed")
    assert len(state.agreement(fw).review_log) == 4

    rm = await read_model(pool, coop.cooperation_id)
    (row,) = rm["agreements"]
    assert (row["status"], row["revision"], row["title"]) == ("signed", 2, "Framework agreement, revised land terms")
    assert [d["decision"] for d in row["review_log"]] == ["approved", "rejected", "approved", "approved"]
    rows = await assert_audit_trail(pool, coop.workflow_id, state.seq)
    rejected = [r for r in rows if r["action"] == "agreement.review_rejected"]
    assert len(rejected) == 1 and rejected[0]["comment"] == "land price clause needs rework"
    assert (rejected[0]["before"]["status"], rejected[0]["after"]["status"]) == ("in_review", "draft")


async def test_terminate_cancels_open_projects(client: Client, pool: asyncpg.Pool) -> None:
    coop, _ = await open_cooperation(client, pool)
    t1, t2 = coop.pid("t1"), coop.pid("t2")
    reason = "partner withdrew after restructuring"
    await in_delivery(coop)
    await coop.act(new_project(t1, coop.inv, 2))
    await coop.act(new_project(t2, coop.inv, 1))
    assert (await coop.act_project(t1, complete(f"{t1}-m1"))).status == "active"
    assert (await coop.act_project(t2, SuspendProject(reason="land dispute"))).status == "suspended"

    state = await coop.act(TerminateCooperation(reason=reason))
    assert (state.stage, state.termination_reason) == ("terminated", reason)

    # Both open projects (one active, one suspended) are cancelled by the parent's signal.
    for project_id in (t1, t2):
        final_project = await asyncio.wait_for(coop.project_handle(project_id).result(), timeout=15)
        assert (final_project.status, final_project.status_reason) == ("cancelled", f"cooperation terminated: {reason}")

    async def cancelled_in_read_model() -> list[dict[str, Any]] | None:
        projects = (await read_model(pool, coop.cooperation_id))["projects"]
        return projects if all(p["status"] == "cancelled" for p in projects) else None

    projects = await eventually(cancelled_in_read_model)
    assert [(p["id"], p["status_reason"]) for p in projects] == [
        (t1, f"cooperation terminated: {reason}"), (t2, f"cooperation terminated: {reason}")]
    async with pool.acquire() as conn:
        milestones = await conn.fetch(
            "SELECT id, status FROM milestones WHERE cooperation_id = $1 ORDER BY project_id, position",
            coop.cooperation_id)
    assert [tuple(m) for m in milestones] == [(f"{t1}-m1", "done"), (f"{t1}-m2", "open"), (f"{t2}-m1", "open")]
    assert [(r["action"], r["actor_id"]) for r in await assert_audit_trail(pool, project_workflow_id(t2), 2)] == [
        ("project.suspended", OFFICER.user_id), ("project.cancelled", "system")]
    await assert_audit_trail(pool, project_workflow_id(t1), 2)

    final = await asyncio.wait_for(coop.handle().result(), timeout=15)
    assert final.stage == "terminated"
    rm = await read_model(pool, coop.cooperation_id)
    assert (rm["cooperation"][0]["stage"], rm["cooperation"][0]["termination_reason"]) == ("terminated", reason)
    rows = await assert_audit_trail(pool, coop.workflow_id, final.seq)
    assert "cooperation.terminated" in [r["action"] for r in rows]

    # Nothing changes any more, on the cooperation or on its projects: their runs are closed.
    with pytest.raises(RPCError, match="(?i)completed"):
        await coop.act(meeting("neg-after"))
    with pytest.raises(RPCError, match="(?i)completed"):
        await coop.act_project(t1, complete(f"{t1}-m2"))
    assert await read_model(pool, coop.cooperation_id) == rm


async def test_terminate_in_negotiation_ends_the_workflow(client: Client, pool: asyncpg.Pool) -> None:
    coop, _ = await open_cooperation(client, pool)
    await coop.act(meeting())
    state = await coop.act(TerminateCooperation(reason="no agreement on land price"))
    assert state.stage == "terminated"
    final = await asyncio.wait_for(coop.handle().result(), timeout=15)
    assert (final.stage, final.seq, final.termination_reason) == ("terminated", 3, "no agreement on land price")
    rm = await read_model(pool, coop.cooperation_id)
    with pytest.raises(RPCError, match="(?i)completed"):
        await coop.act(draft(coop, coop.fw, AgreementKind.framework))
    assert await read_model(pool, coop.cooperation_id) == rm
    rows = await assert_audit_trail(pool, coop.workflow_id, 3)
    assert (rows[-1]["action"], rows[-1]["comment"]) == ("cooperation.terminated", "no agreement on land price")


async def test_resent_request_id_applies_once(client: Client, pool: asyncpg.Pool) -> None:
    coop, created = await open_cooperation(client, pool)

    # Retrying the creation (same request id) reuses the running workflow: no second record.
    again = await create_cooperation(
        client, TASK_QUEUE, coop.cooperation_id,
        creation_of(coop.lead_id, coop.lead_name, coop.partner_id, coop.partner_name),
        OFFICER, f"create-{coop.cooperation_id}",
    )
    assert again.seq == created.seq == 1

    first = await coop.act(meeting("neg-1"), request_id="resend-1")
    assert first.seq == 2
    resent = await coop.act(meeting("neg-1"), request_id="resend-1")
    assert resent.seq == 2 and len(resent.negotiation) == 1
    # The request id decides, not the payload: a different command under the same id is the same request.
    resent = await coop.act(meeting("neg-other"), request_id="resend-1")
    assert resent.seq == 2 and [e.event_id for e in resent.negotiation] == ["neg-1"]
    assert (await coop.state()).seq == 2

    # The same holds for project actions.
    await sign_through(coop, coop.fw, AgreementKind.framework, FRAMEWORK_SIGNED_ON)
    await sign_through(coop, coop.inv, AgreementKind.investment, INVESTMENT_SIGNED_ON)
    r1 = coop.pid("r1")
    await coop.act(new_project(r1, coop.inv, 2))
    once = await coop.act_project(r1, invest("i1", "1000.00"), request_id="money-1")
    twice = await coop.act_project(r1, invest("i1", "1000.00"), request_id="money-1")
    assert once.seq == twice.seq == 1 and twice.realized_investment == Decimal("1000.00")

    state = await coop.state()
    rm = await read_model(pool, coop.cooperation_id)
    assert len(rm["cooperation"]) == 1 and rm["projects"][0]["realized_investment"] == Decimal("1000.00")
    actions = [r["action"] for r in await assert_audit_trail(pool, coop.workflow_id, state.seq)]
    assert actions.count("cooperation.created") == 1 and actions.count("negotiation.recorded") == 1
    await assert_audit_trail(pool, project_workflow_id(r1), 1)


async def test_continue_as_new_carries_state_and_request_memory(client: Client, pool: asyncpg.Pool) -> None:
    coop, state = await open_cooperation(client, pool, continue_as_new_after=3)
    fw = coop.fw
    first_run_id = (await coop.handle().describe()).run_id

    commands: list[tuple[CooperationCommand, Actor]] = [
        (meeting("neg-1", on=date(2024, 3, 12)), OFFICER),
        (meeting("neg-2", on=date(2024, 4, 2)), OFFICER),
        (RecordNegotiation(event=NegotiationEvent(event_id="visit-1", kind="inspection_visit",
                                                  occurred_on=date(2024, 4, 20), ends_on=date(2024, 4, 22))),
         OFFICER),
        (draft(coop, fw, AgreementKind.framework), OFFICER),
        (SubmitAgreement(agreement_id=fw), OFFICER),
        (approve(fw, "legal_review"), COUNSEL),
        (approve(fw, "leadership_approval"), LEADER),
        (sign(coop, fw, coop.lead_id, FRAMEWORK_SIGNED_ON), OFFICER),
    ]
    request_ids = []
    for command, actor in commands:
        request_ids.append(coop.request_id())
        state = await coop.act(command, request_id=request_ids[-1], actor=actor)
    assert state.seq == 1 + len(commands)

    # The workflow rolled over: the first run ended in ContinueAsNew and later runs followed it.
    describe = await coop.handle().describe()
    assert describe.run_id != first_run_id
    runs = await run_chain(coop, first_run_id)
    assert len(runs) >= 3 and runs[-1] == describe.run_id
    # Every run holds at most `continue_as_new_after` events (audit rows carry the run id).
    rows = await assert_audit_trail(pool, coop.workflow_id, state.seq)
    per_run = {run: [r["event_seq"] for r in rows if r["run_id"] == run] for run in runs}
    assert per_run[first_run_id] == [1, 2, 3]
    assert all(len(seqs) <= 3 for seqs in per_run.values())
    assert sum(len(seqs) for seqs in per_run.values()) == len(rows)

    # State and seq carried over into the current run.
    current = await coop.state()
    assert current.model_dump() == state.model_dump()
    assert [e.event_id for e in current.negotiation] == ["neg-1", "neg-2", "visit-1"]
    assert current.agreement(fw).status == "approved" and len(current.agreement(fw).signatures) == 1

    # A resend from before the rollover (its Update id is unknown to the new run) is still a no-op.
    resent = await coop.act(meeting("neg-2", on=date(2024, 4, 2)), request_id=request_ids[1])
    assert resent.seq == state.seq and len(resent.negotiation) == 3
    # ... and the rules still apply to the carried state.
    await refused(coop.act(sign(coop, fw, coop.lead_id, FRAMEWORK_SIGNED_ON)), "Refused", "already signed")
    state = await coop.act(sign(coop, fw, coop.partner_id, FRAMEWORK_SIGNED_ON))
    assert (state.seq, state.stage) == (len(commands) + 2, "framework_signed")
    await assert_audit_trail(pool, coop.workflow_id, state.seq)
    assert (await read_model(pool, coop.cooperation_id))["cooperation"][0]["version"] == state.seq


async def test_project_outlives_cooperation_rollover(client: Client, pool: asyncpg.Pool) -> None:
    """Projects are ABANDON children: they survive the parent's continue-as-new and still close it."""
    coop, _ = await open_cooperation(client, pool, continue_as_new_after=4)
    ro1 = coop.pid("ro1")
    first_run_id = (await coop.handle().describe()).run_id
    await in_delivery(coop)
    await coop.act(new_project(ro1, coop.inv, 1))
    # More parent events while the project runs: the parent rolls over again.
    await coop.act(meeting("neg-late", on=date(2024, 10, 1)))
    before_close = await run_chain(coop, first_run_id)
    assert len(before_close) >= 4
    await coop.act_project(ro1, MoveMilestone(milestone_id=f"{ro1}-m1", new_due_date=date(2026, 6, 30),
                                              reason="permit delayed"))
    project = await coop.act_project(ro1, complete(f"{ro1}-m1"))
    assert project.status == "completed"
    assert (project.milestones[0].moves[0].old_due_date, project.milestones[0].due_date) == (
        date(2025, 4, 1), date(2026, 6, 30))

    final = await asyncio.wait_for(coop.handle().result(), timeout=15)
    assert final.stage == "completed" and final.projects[0].status == "completed"
    await assert_audit_trail(pool, coop.workflow_id, final.seq)
    rm = await read_model(pool, coop.cooperation_id)
    assert rm["cooperation"][0]["stage"] == "completed"
    assert (rm["milestones"][0]["due_date"], rm["milestones"][0]["status"]) == (date(2026, 6, 30), "done")
    assert rm["milestones"][0]["moves"][0]["reason"] == "permit delayed"


async def test_suspended_project_refuses_work_until_resumed(client: Client, pool: asyncpg.Pool) -> None:
    coop, _ = await open_cooperation(client, pool)
    s1 = coop.pid("s1")
    await in_delivery(coop)
    await coop.act(new_project(s1, coop.inv, 1))
    await coop.act_project(s1, invest("i1", "500.00"))
    await coop.act_project(s1, SuspendProject(reason="environmental review"))
    before = (await coop.project_state(s1)).model_dump()
    await refused(coop.act_project(s1, complete(f"{s1}-m1")), "Refused", "suspended")
    await refused(coop.act_project(s1, invest("i2", "1.00")), "Refused", "resume it first")
    assert (await coop.project_state(s1)).model_dump() == before
    resumed = await coop.act_project(s1, ResumeProject(comment="review passed"))
    assert resumed.status == "active"  # the status it had before the suspension
    await refused(coop.act_project(s1, complete("nope")), "NotFound", "not part of this project")
    await refused(coop.act_project(s1, invest("i1", "1.00")), "Refused", "already recorded")
    assert (await coop.act_project(s1, complete(f"{s1}-m1"))).status == "completed"
    final = await asyncio.wait_for(coop.handle().result(), timeout=15)
    assert final.stage == "completed"
    rows = await assert_audit_trail(pool, project_workflow_id(s1), 4)
    assert [r["action"] for r in rows] == [
        "investment.recorded", "project.suspended", "project.resumed", "milestone.completed"]


async def test_agreement_ids_are_scoped_to_their_cooperation(client: Client, pool: asyncpg.Pool) -> None:
    first, _ = await open_cooperation(client, pool)
    second, _ = await open_cooperation(client, pool)
    shared = f"shared-{new_id()}"
    await first.act(draft(first, shared, AgreementKind.framework))
    await second.act(draft(second, shared, AgreementKind.framework))  # accepted: the rule sees only `second`
    await second.act(SubmitAgreement(agreement_id=shared))
    assert [a["status"] for a in (await read_model(pool, first.cooperation_id))["agreements"]] == ["draft"]
    assert [a["status"] for a in (await read_model(pool, second.cooperation_id))["agreements"]] == ["in_review"]


async def test_project_that_cannot_start_leaves_no_trace(client: Client, pool: asyncpg.Pool) -> None:
    first, _ = await open_cooperation(client, pool)
    second, _ = await open_cooperation(client, pool)
    await in_delivery(first)
    before = await in_delivery(second)
    shared = f"shared-{new_id()}"
    await first.act(new_project(shared, first.inv, 1))
    with pytest.raises(WorkflowUpdateFailedError):
        await second.act(new_project(shared, second.inv, 1))
    assert (await second.state()).model_dump() == before.model_dump()
    await assert_audit_trail(pool, second.workflow_id, before.seq)
