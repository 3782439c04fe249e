"""Projects: read, milestones, realized investment, suspension, resumption and cancellation.

Reads carry an ETag and every write accepts If-Match (optimistic concurrency, api/concurrency.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.concurrency import IfMatchDep, tag
from api.errors import not_found
from api.schemas import (
    CommentIn,
    InvestmentIn,
    MilestoneCompletionIn,
    MilestoneIn,
    MilestoneMoveIn,
    ProjectView,
    ReasonIn,
)
from api.services import ActorDep, RequestIdDep, ServicesDep, new_id, office_today
from api.writes import project_action
from db import queries
from domain import access
from domain.project import (
    AddMilestone,
    CancelProject,
    CompleteMilestone,
    MilestoneSpec,
    MoveMilestone,
    ProjectState,
    ProjectStatus,
    RecordInvestment,
    ResumeProject,
    SuspendProject,
)
from domain.types import Identifier

router = APIRouter(prefix="/projects", tags=["projects"])


@router.get("", response_model=list[ProjectView])
async def list_projects(services: ServicesDep, actor: ActorDep, cooperation_id: Identifier | None = None,
                        status: ProjectStatus | None = None) -> list[dict]:
    departments = access.visible_departments(actor)
    async with services.pool.acquire() as conn, conn.transaction():
        await queries.limit_view(conn, departments)
        return await queries.projects(conn, office_today(), cooperation_id=cooperation_id,
                                      status=status.value if status else None, departments=departments)


@router.get("/{project_id}", response_model=ProjectView)
async def get_project(project_id: Identifier, services: ServicesDep, actor: ActorDep, response: Response) -> dict:
    """One project; its `ETag` is the version to send as `If-Match` with a write."""
    departments = access.visible_departments(actor)
    async with services.pool.acquire() as conn, conn.transaction():
        await queries.limit_view(conn, departments)
        found = await queries.projects(conn, office_today(), project_id=project_id, departments=departments)
    if not found:  # missing or another department's: the same answer
        raise not_found(f"project {project_id}")
    tag(response, found[0]["version"])
    return found[0]


@router.post("/{project_id}/milestones", response_model=ProjectState)
async def add_milestone(project_id: Identifier, body: MilestoneIn, services: ServicesDep, actor: ActorDep,
                        precondition: IfMatchDep, request_id: RequestIdDep) -> ProjectState:
    milestone = MilestoneSpec(milestone_id=new_id(request_id, "milestone"), **body.model_dump())
    return await project_action(services, project_id, actor, AddMilestone(milestone=milestone), request_id,
                                precondition)


@router.post("/{project_id}/milestones/{milestone_id}/move", response_model=ProjectState)
async def move_milestone(project_id: Identifier, milestone_id: Identifier, body: MilestoneMoveIn,
                         services: ServicesDep, actor: ActorDep, precondition: IfMatchDep,
                         request_id: RequestIdDep) -> ProjectState:
    """Move a due date; the reason is required and every move is kept."""
    command = MoveMilestone(milestone_id=milestone_id, **body.model_dump())
    return await project_action(services, project_id, actor, command, request_id, precondition)


@router.post("/{project_id}/milestones/{milestone_id}/complete", response_model=ProjectState)
async def complete_milestone(project_id: Identifier, milestone_id: Identifier, body: MilestoneCompletionIn,
                             services: ServicesDep, actor: ActorDep, precondition: IfMatchDep,
                             request_id: RequestIdDep) -> ProjectState:
    command = CompleteMilestone(milestone_id=milestone_id, **body.model_dump())
    return await project_action(services, project_id, actor, command, request_id, precondition)


@router.post("/{project_id}/investments", response_model=ProjectState)
async def record_investment(project_id: Identifier, body: InvestmentIn, services: ServicesDep, actor: ActorDep,
                            precondition: IfMatchDep, request_id: RequestIdDep) -> ProjectState:
    """Record a tranche of money actually invested (实际到位资金)."""
    command = RecordInvestment(entry_id=new_id(request_id, "investment"), **body.model_dump())
    return await project_action(services, project_id, actor, command, request_id, precondition)


@router.post("/{project_id}/suspend", response_model=ProjectState)
async def suspend(project_id: Identifier, body: ReasonIn, services: ServicesDep, actor: ActorDep,
                  precondition: IfMatchDep, request_id: RequestIdDep) -> ProjectState:
    return await project_action(services, project_id, actor, SuspendProject(reason=body.reason), request_id,
                                precondition)


@router.post("/{project_id}/resume", response_model=ProjectState)
async def resume(project_id: Identifier, services: ServicesDep, actor: ActorDep, precondition: IfMatchDep,
                 request_id: RequestIdDep, body: CommentIn | None = None) -> ProjectState:
    return await project_action(services, project_id, actor, ResumeProject(comment=body.comment if body else None),
                                request_id, precondition)


@router.post("/{project_id}/cancel", response_model=ProjectState)
async def cancel(project_id: Identifier, body: ReasonIn, services: ServicesDep, actor: ActorDep,
                 precondition: IfMatchDep, request_id: RequestIdDep) -> ProjectState:
    return await project_action(services, project_id, actor, CancelProject(reason=body.reason), request_id,
                                precondition)
