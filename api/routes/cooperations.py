"""Cooperations: create, list, read, and every lifecycle action up to projects and termination.

Reads carry an ETag and every write accepts If-Match (optimistic concurrency, api/concurrency.py).
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query, Request, Response, status
from temporalio.client import WorkflowUpdateFailedError

from api.audit_log import record_access
from api.concurrency import IfMatchDep, tag
from api.errors import ApiError, field_error, from_update_failure, not_found
from api.routes.audit import AuditEvent, json_ready
from api.routes.documents import document_ref
from api.schemas import (
    AgreementEdit,
    AgreementIn,
    AgreementView,
    CooperationDetail,
    CooperationIn,
    CooperationSummary,
    NegotiationEventIn,
    Page,
    PartyIn,
    ProjectIn,
    RejectionIn,
    ReviewDecisionIn,
    SignatureIn,
    TerminationIn,
)
from api.services import ActorDep, RequestIdDep, Services, ServicesDep, new_id, office_today
from api.writes import cooperation_action, counted
from db import audit_queries, queries
from db.audit_queries import AuditFilter
from domain import access
from domain.audit import Actor
from domain.cooperation import (
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
    Stage,
    SubmitAgreement,
    TerminateCooperation,
)
from domain.documents import DocumentKind
from domain.project import MilestoneSpec
from domain.templates import DEFAULT_REVIEW_CHAIN, default_milestone_dates
from domain.types import Identifier, Name
from runtime.lifecycle import create_cooperation

router = APIRouter(prefix="/cooperations", tags=["cooperations"])


# ---------------------------------------------------------------- create and read


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CooperationState)
async def create(body: CooperationIn, services: ServicesDep, actor: ActorDep,
                 request_id: RequestIdDep, response: Response) -> CooperationState:
    """Open a cooperation with a partner company; it starts in `negotiating`."""
    async with services.pool.acquire() as conn:
        orgs = await queries.organizations(conn, [body.lead_organization_id, body.partner_organization_id])
    for field in ("lead_organization_id", "partner_organization_id"):
        if getattr(body, field) not in orgs:
            raise field_error(["body", field], "no organization has this id")
    lead, partner = orgs[body.lead_organization_id], orgs[body.partner_organization_id]
    if partner["kind"] != "company":
        raise field_error(["body", "partner_organization_id"], "the partner must be a company")
    if lead["kind"] == "company":
        raise field_error(["body", "lead_organization_id"], "the lead party must be a government body")
    # A liaison officer opens cooperations for their own department (the default when none is named).
    department = body.department or actor.department
    access.check_create_cooperation(actor, department)
    command = CreateCooperation(
        **body.model_dump(exclude={"department"}), department=department, lead_organization_name=lead["name"],
        partner_organization_name=partner["name"],
    )
    with counted(command.kind):  # accord_actions_total{kind="create_cooperation"}
        try:
            state = await create_cooperation(services.client, services.task_queue, new_id(request_id, "cooperation"),
                                             command, actor, request_id)
        except WorkflowUpdateFailedError as error:
            raise from_update_failure(error) from None
    tag(response, state.seq)
    return state


@router.get("", response_model=Page[CooperationSummary])
async def list_cooperations(
    services: ServicesDep,
    actor: ActorDep,
    stage: Stage | None = None,
    partner_organization_id: Identifier | None = None,
    liaison_officer: Name | None = None,
    overdue: Annotated[bool | None, Query(description="Only those with (true) or without (false) overdue milestones")] = None,
    q: Annotated[Name | None, Query(description="Text search in title, parties, areas, officer (Chinese or English)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict:
    filters = queries.CooperationFilter(stage.value if stage else None, partner_organization_id, liaison_officer,
                                        overdue, q, access.visible_departments(actor))
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            await queries.limit_view(conn, filters.departments)
            rows, next_cursor = await queries.list_cooperations(conn, filters, office_today(), limit, cursor)
    except queries.BadCursor as error:
        raise field_error(["query", "cursor"], str(error)) from None
    return {"items": [dict(r) for r in rows], "next_cursor": next_cursor}


@router.get("/{cooperation_id}", response_model=CooperationDetail)
async def get_cooperation(cooperation_id: Identifier, services: ServicesDep, actor: ActorDep,
                          response: Response) -> dict:
    """Everything about one cooperation: negotiation record, agreements with review and signatures, projects.

    Its `ETag` is the version to send as `If-Match` with a write on the cooperation.
    """
    today = office_today()
    async with services.pool.acquire() as conn, conn.transaction():
        await queries.limit_view(conn, access.visible_departments(actor))
        row = await queries.cooperation(conn, cooperation_id, today)
        if row is None:
            raise not_found(f"cooperation {cooperation_id}")
        access.check_visible(actor, [row["department"]], f"cooperation {cooperation_id}")
        negotiation = await queries.negotiation_events(conn, cooperation_id)
        agreements = await queries.agreements(conn, cooperation_id)
        projects = await queries.projects(conn, today, cooperation_id=cooperation_id)
    tag(response, row["version"])
    return {**dict(row), "negotiation": [dict(e) for e in negotiation], "agreements": agreements,
            "projects": projects}


@router.get("/{cooperation_id}/agreements/{agreement_id}", response_model=AgreementView)
async def get_agreement(cooperation_id: Identifier, agreement_id: Identifier, services: ServicesDep,
                        actor: ActorDep) -> dict:
    async with services.pool.acquire() as conn:
        await _visible(conn, actor, cooperation_id)
        view = await queries.agreement(conn, cooperation_id, agreement_id)
    if view is None:
        raise not_found(f"agreement {agreement_id}")
    return view


@router.get("/{cooperation_id}/audit", response_model=list[AuditEvent])
async def cooperation_audit(cooperation_id: Identifier, request: Request, services: ServicesDep,
                            actor: ActorDep) -> list[dict]:
    """The audit events of a cooperation and its projects, oldest first (the last 1,000; /audit pages on)."""
    async with services.pool.acquire() as conn:
        await _visible(conn, actor, cooperation_id)
        items, _ = await audit_queries.search(conn, AuditFilter(cooperation_id=cooperation_id), 1000, None)
        await record_access(conn, request, actor, "audit.searched", {"cooperation_id": cooperation_id})
    return [json_ready(i) for i in reversed(items)]


async def _visible(conn: asyncpg.Connection, actor: Actor, cooperation_id: str) -> None:
    """404 for a cooperation that does not exist or that the actor may not see (the same answer)."""
    header = await queries.cooperation_header(conn, cooperation_id)
    if header is None:
        raise not_found(f"cooperation {cooperation_id}")
    access.check_visible(actor, header.departments, f"cooperation {cooperation_id}")


# ---------------------------------------------------------------- negotiation and agreements


@router.post("/{cooperation_id}/negotiation-events", response_model=CooperationState)
async def record_negotiation(cooperation_id: Identifier, body: NegotiationEventIn, services: ServicesDep,
                             actor: ActorDep, precondition: IfMatchDep, request_id: RequestIdDep) -> CooperationState:
    """Record a meeting, inspection visit, forum, draft version or note."""
    event = NegotiationEvent(event_id=new_id(request_id, "negotiation"), **body.model_dump())
    return await cooperation_action(services, cooperation_id, actor, RecordNegotiation(event=event), request_id,
                                    precondition)


async def _parties(services: Services, parties: list[PartyIn]) -> list[PartyInput]:
    """Resolve party organizations; the agreement keeps their names as signed."""
    async with services.pool.acquire() as conn:
        orgs = await queries.organizations(conn, [p.organization_id for p in parties])
    for i, party in enumerate(parties):
        if party.organization_id not in orgs:
            raise field_error(["body", "parties", i, "organization_id"], "no organization has this id")
    return [PartyInput(organization_name=orgs[p.organization_id]["name"], **p.model_dump()) for p in parties]


@router.post("/{cooperation_id}/agreements", response_model=CooperationState)
async def draft_agreement(cooperation_id: Identifier, body: AgreementIn, services: ServicesDep, actor: ActorDep,
                          precondition: IfMatchDep, request_id: RequestIdDep) -> CooperationState:
    """Draft a framework or project investment agreement with its parties, signatories and review chain."""
    command = DraftAgreement(
        agreement_id=new_id(request_id, "agreement"),
        agreement_kind=body.kind,
        title=body.title,
        parties=await _parties(services, body.parties),
        review_steps=body.review_steps if body.review_steps is not None else list(DEFAULT_REVIEW_CHAIN),
    )
    return await cooperation_action(services, cooperation_id, actor, command, request_id, precondition)


@router.patch("/{cooperation_id}/agreements/{agreement_id}", response_model=CooperationState)
async def edit_agreement(cooperation_id: Identifier, agreement_id: Identifier, body: AgreementEdit,
                         services: ServicesDep, actor: ActorDep, precondition: IfMatchDep,
                         request_id: RequestIdDep) -> CooperationState:
    """Edit a draft (also after a rejection returned it to draft)."""
    parties = await _parties(services, body.parties) if body.parties is not None else None
    command = EditAgreement(agreement_id=agreement_id, title=body.title, parties=parties,
                            review_steps=body.review_steps)
    return await cooperation_action(services, cooperation_id, actor, command, request_id, precondition)


@router.post("/{cooperation_id}/agreements/{agreement_id}/submit", response_model=CooperationState)
async def submit_agreement(cooperation_id: Identifier, agreement_id: Identifier, services: ServicesDep,
                           actor: ActorDep, precondition: IfMatchDep, request_id: RequestIdDep) -> CooperationState:
    """Send a draft into its review chain."""
    return await cooperation_action(services, cooperation_id, actor, SubmitAgreement(agreement_id=agreement_id),
                                    request_id, precondition)


@router.post("/{cooperation_id}/agreements/{agreement_id}/review-steps/{step}/approve",
             response_model=CooperationState)
async def approve_step(cooperation_id: Identifier, agreement_id: Identifier, step: Name,
                       services: ServicesDep, actor: ActorDep, precondition: IfMatchDep, request_id: RequestIdDep,
                       body: ReviewDecisionIn | None = None) -> CooperationState:
    """Approve the current review step; after the last one the agreement is ready to sign.

    The step records the draft version approved (`draft_version`, or the latest uploaded)."""
    document = await document_ref(services, actor, "decide_review_step", cooperation_id, agreement_id,
                                  DocumentKind.draft, body.draft_version if body else None, "draft_version", step)
    command = DecideReviewStep(agreement_id=agreement_id, step=step, decision="approve",
                               comment=body.comment if body else None, document=document)
    return await cooperation_action(services, cooperation_id, actor, command, request_id, precondition)


@router.post("/{cooperation_id}/agreements/{agreement_id}/review-steps/{step}/reject",
             response_model=CooperationState)
async def reject_step(cooperation_id: Identifier, agreement_id: Identifier, step: Name, body: RejectionIn,
                      services: ServicesDep, actor: ActorDep, precondition: IfMatchDep,
                      request_id: RequestIdDep) -> CooperationState:
    """Reject the current review step with a comment; the agreement returns to draft."""
    document = await document_ref(services, actor, "decide_review_step", cooperation_id, agreement_id,
                                  DocumentKind.draft, body.draft_version, "draft_version", step)
    command = DecideReviewStep(agreement_id=agreement_id, step=step, decision="reject", comment=body.comment,
                               document=document)
    return await cooperation_action(services, cooperation_id, actor, command, request_id, precondition)


@router.post("/{cooperation_id}/agreements/{agreement_id}/signatures", response_model=CooperationState)
async def sign_agreement(cooperation_id: Identifier, agreement_id: Identifier, body: SignatureIn,
                         services: ServicesDep, actor: ActorDep, precondition: IfMatchDep,
                         request_id: RequestIdDep) -> CooperationState:
    """Record one party's signature; when every party has signed, the agreement is signed.

    The signature records the signed original uploaded so far (`signed_original_version`, or the
    latest); the last signature seals it into the agreement, its signing event and the audit chain."""
    document = await document_ref(services, actor, "sign_agreement", cooperation_id, agreement_id,
                                  DocumentKind.signed_original, body.signed_original_version, "signed_original_version")
    command = SignAgreement(agreement_id=agreement_id, document=document,
                            **body.model_dump(exclude={"signed_original_version"}))
    return await cooperation_action(services, cooperation_id, actor, command, request_id, precondition)


# ---------------------------------------------------------------- projects and termination


@router.post("/{cooperation_id}/projects", status_code=status.HTTP_201_CREATED, response_model=CooperationState)
async def create_project(cooperation_id: Identifier, body: ProjectIn, services: ServicesDep, actor: ActorDep,
                         precondition: IfMatchDep, request_id: RequestIdDep) -> CooperationState:
    """Create a project under a signed project investment agreement, with its milestones."""
    project_id = new_id(request_id, "project")
    if body.milestones is not None:
        milestones = [MilestoneSpec(milestone_id=f"m{i + 1}", **m.model_dump()) for i, m in enumerate(body.milestones)]
    else:
        milestones = await _template_milestones(services, actor, cooperation_id, body.agreement_id)
    command = CreateProject(project_id=project_id, milestones=milestones,
                            **body.model_dump(exclude={"milestones"}))
    return await cooperation_action(services, cooperation_id, actor, command, request_id, precondition)


async def _template_milestones(services: Services, actor: Actor, cooperation_id: str,
                               agreement_id: str) -> list[MilestoneSpec]:
    """The default template, dated from the agreement's signing (or today if it is not signed yet)."""
    async with services.pool.acquire() as conn:
        await _visible(conn, actor, cooperation_id)
        agreement = await queries.agreement(conn, cooperation_id, agreement_id)
    if agreement is None:
        raise ApiError(404, f"agreement {agreement_id} not found in this cooperation")
    start = agreement["signed_on"] or office_today()
    return [MilestoneSpec(milestone_id=key, name=name, due_date=due)
            for key, name, due in default_milestone_dates(start)]


@router.post("/{cooperation_id}/terminate", response_model=CooperationState)
async def terminate(cooperation_id: Identifier, body: TerminationIn, services: ServicesDep, actor: ActorDep,
                    precondition: IfMatchDep, request_id: RequestIdDep) -> CooperationState:
    """End the cooperation at any stage, with a reason; its open projects are cancelled."""
    return await cooperation_action(services, cooperation_id, actor, TerminateCooperation(reason=body.reason),
                                    request_id, precondition)
