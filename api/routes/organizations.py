"""Organizations (government bodies, park committees, companies) and their people."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from api.audit_log import event_for
from api.errors import conflict, not_found
from api.schemas import Organization, OrganizationIn, OrganizationKind, Person, PersonIn
from api.services import ActorDep, RequestIdDep, ServicesDep, new_id
from db import queries
from db.audit_chain import append
from domain import access
from domain.types import Identifier, Name

router = APIRouter(prefix="/organizations", tags=["organizations"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Organization)
async def create_organization(body: OrganizationIn, services: ServicesDep, actor: ActorDep,
                              request_id: RequestIdDep) -> dict:
    """Register an organization. Names are unique (case-insensitive): a second one is a 409."""
    access.check_reference_data_edit(actor)
    org_id = new_id(request_id, "organization")
    async with services.pool.acquire() as conn, conn.transaction():
        row = await queries.insert_organization(conn, org_id, body.name, body.kind.value, body.region, actor.name)
        if row is None:
            existing = await queries.organization_by_name(conn, body.name)
            raise conflict(f"an organization named {body.name!r} exists already (id {existing['id'] if existing else '?'})")
        await append(conn, event_for(actor, request_id=request_id, action="organization.created",
                                     entity_type="organization", entity_id=org_id, after=body.model_dump(mode="json")))
    return dict(row)


@router.get("", response_model=list[Organization])
async def list_organizations(services: ServicesDep, actor: ActorDep,
                             kind: OrganizationKind | None = None,
                             q: Annotated[Name | None, Query(description="Part of the name")] = None) -> list[dict]:
    async with services.pool.acquire() as conn:
        return [dict(r) for r in await queries.list_organizations(conn, kind.value if kind else None, q)]


@router.get("/{organization_id}", response_model=Organization)
async def get_organization(organization_id: Identifier, services: ServicesDep, actor: ActorDep) -> dict:
    async with services.pool.acquire() as conn:
        row = await queries.organization(conn, organization_id)
    if row is None:
        raise not_found(f"organization {organization_id}")
    return dict(row)


@router.post("/{organization_id}/people", status_code=status.HTTP_201_CREATED, response_model=Person)
async def add_person(organization_id: Identifier, body: PersonIn, services: ServicesDep, actor: ActorDep,
                     request_id: RequestIdDep) -> dict:
    """Record someone with a title in an organization (a mayor, a company's CPO)."""
    access.check_reference_data_edit(actor)
    person_id = new_id(request_id, "person")
    async with services.pool.acquire() as conn, conn.transaction():
        if await queries.organization(conn, organization_id) is None:
            raise not_found(f"organization {organization_id}")
        row = await queries.insert_person(conn, person_id, organization_id, body.name, body.title)
        await append(conn, event_for(actor, request_id=request_id, action="person.created", entity_type="person",
                                     entity_id=person_id,
                                     after={"organization_id": organization_id, **body.model_dump(mode="json")}))
    return dict(row)


@router.get("/{organization_id}/people", response_model=list[Person])
async def list_people(organization_id: Identifier, services: ServicesDep, actor: ActorDep) -> list[dict]:
    async with services.pool.acquire() as conn:
        if await queries.organization(conn, organization_id) is None:
            raise not_found(f"organization {organization_id}")
        return [dict(r) for r in await queries.list_people(conn, organization_id)]
