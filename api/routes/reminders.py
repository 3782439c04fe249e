"""Reminders: a project's upcoming notices, what-if for a moved due date, sent notices with their
provenance, reminder policies per organization, project and milestone, and the working-day calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, HTTPException, Path, Query, status
from temporalio.service import RPCError, RPCStatusCode

from api.audit_log import event_for
from api.errors import conflict, not_found
from api.reminder_schemas import (
    CalendarView,
    CalendarYearIn,
    CalendarYearPreview,
    CalendarYearView,
    DeliveryView,
    NoticePreview,
    PolicyIn,
    PolicyView,
    Recipient,
    WhatIfView,
)
from api.services import ActorDep, RequestIdDep, Services, ServicesDep
from db import deliveries, queries
from db.audit_chain import append
from db.reminder_settings import (
    PolicyScope,
    PolicyVersion,
    calendar_versions,
    current_calendar,
    milestone_scope_id,
    policy_versions,
    save_calendar,
    save_policy,
)
from domain import access
from domain.audit import Actor
from domain.calendar import WorkingCalendar
from domain.reminders import DEFAULT_POLICY, Notice, ReminderPolicy
from domain.types import Identifier
from runtime import reminders as schedule

router = APIRouter(tags=["reminders"])

Year = Annotated[int, Path(ge=2000, le=2100, description="A calendar year")]

SETTINGS_EDITORS = {"admin"}
"""Who may change the calendar and organization-wide policies."""


def _require(actor: Actor, roles: set[str], what: str) -> None:
    if not actor.has_role(*roles):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"only {' or '.join(sorted(roles))} may {what}")


def _now() -> datetime:
    return datetime.now(UTC)


async def _schedule(services: Services, conn: asyncpg.Connection, project_id: str) -> schedule.ProjectSchedule:
    try:
        return await schedule.project_schedule(services.client, conn, project_id, services.calendar_name)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise  # Temporal is unreachable: a 503, not "no such project"
        raise not_found(f"project {project_id}") from None


async def _previews(conn: asyncpg.Connection, services: Services, notices: list[Notice]) -> list[NoticePreview]:
    """Each notice with the people and channels it would reach today (resolved as delivery resolves them).

    A milestone has many notices but few recipient roles: each (milestone, role) is resolved once.
    """
    out = []
    resolved: dict[tuple[str, str, str], list] = {}
    for notice in notices:
        key = (notice.project_id, notice.milestone_id, notice.recipient.value)
        if key not in resolved:
            ctx = await deliveries.project_context(conn, notice.project_id, notice.milestone_id)
            resolved[key] = (await deliveries.recipients(conn, ctx, notice.recipient, services.leadership_department)
                             if ctx else [])
        people = resolved[key]
        out.append(NoticePreview(
            **notice.model_dump(),
            recipients=[Recipient(user_id=p.user_id, name=p.name,
                                  channels=["inbox", "email"] if p.email and services.email_enabled else ["inbox"])
                        for p in people]))
    return out


# ---------------------------------------------------------------- a project's notices


@router.get("/projects/{project_id}/notices", response_model=list[NoticePreview])
async def upcoming_notices(project_id: Identifier, services: ServicesDep, actor: ActorDep) -> list[NoticePreview]:
    """The exact notices the project's workflow will send next, in order: time, recipients, channels,
    rule, and the policy, calendar and due-date versions behind each. Notices already due are listed
    with the time they go out (now, or the next office opening). Overdue repeats show only the next one."""
    async with services.pool.acquire() as conn:
        await _project_exists(conn, actor, project_id)
        found = await _schedule(services, conn, project_id)
        notices = schedule.upcoming(found, _now(), services.reminder_hour, services.reminder_until_hour)
        return await _previews(conn, services, notices)


@router.get("/projects/{project_id}/milestones/{milestone_id}/what-if", response_model=WhatIfView)
async def what_if(project_id: Identifier, milestone_id: Identifier, services: ServicesDep, actor: ActorDep,
                  due_date: Annotated[date, Query(description="The due date to try (YYYY-MM-DD)")]) -> WhatIfView:
    """If this milestone's due date moved to `due_date` now, which notices would be sent, when, to whom.
    Nothing is changed."""
    async with services.pool.acquire() as conn:
        await _project_exists(conn, actor, project_id)
        found = await _schedule(services, conn, project_id)
        now = _now()
        moved = schedule.what_if(found, milestone_id, due_date, now, services.reminder_hour,
                                 services.reminder_until_hour)
        if moved is None:
            raise not_found(f"milestone {milestone_id} of project {project_id}")
        current = [n for n in schedule.upcoming(found, now, services.reminder_hour, services.reminder_until_hour)
                   if n.milestone_id == milestone_id]
        milestone = next(m for m in found.state.milestones if m.milestone_id == milestone_id)
        return WhatIfView(milestone_id=milestone_id, current_due_date=milestone.due_date, new_due_date=due_date,
                          current=await _previews(conn, services, current),
                          if_moved=await _previews(conn, services, moved))


@router.get("/projects/{project_id}/deliveries", response_model=list[DeliveryView])
async def sent_notices(project_id: Identifier, services: ServicesDep, actor: ActorDep) -> list[dict]:
    """Every notice delivery of the project, newest first, with why it was sent: the rule, policy
    version, calendar version and due-date version that produced it."""
    async with services.pool.acquire() as conn:
        await _project_exists(conn, actor, project_id)
        return [dict(r) for r in await deliveries.deliveries_of_project(conn, project_id)]


# ---------------------------------------------------------------- policies


def _policy_view(scope: PolicyScope, scope_id: str, history: list[PolicyVersion]) -> PolicyView:
    current = history[0] if history and history[0].active else None
    return PolicyView(scope=scope, scope_id=scope_id, effective=current.policy if current else None,
                      inherits=current is None,
                      history=[dict(version=v.version, active=v.active, policy=v.policy, note=v.note,
                                    created_by=v.created_by, created_at=v.created_at) for v in history])


async def _set_policy(services: Services, actor: Actor, request_id: str, scope: PolicyScope, scope_id: str,
                      body: PolicyIn | None, project_ids: list[str] | None) -> PolicyView:
    policy = None if body is None else ReminderPolicy(policy_id="pending", **body.model_dump(exclude={"note"}))
    async with services.pool.acquire() as conn:
        async with conn.transaction():
            saved = await save_policy(conn, scope, scope_id, policy, body.note if body else None, actor.name)
            await append(conn, event_for(
                actor, request_id=request_id, action="reminder_policy.set" if policy else "reminder_policy.removed",
                entity_type="reminder_policy", entity_id=f"{scope.value}:{scope_id}",
                project_id=scope_id.split("/")[0] if scope is not PolicyScope.organization else None,
                after={"version": saved.version,
                       "policy": saved.policy.model_dump(mode="json") if saved.policy else None}))
        targets = project_ids if project_ids is not None else await schedule.open_project_ids(conn, scope_id)
        history = await policy_versions(conn, scope, scope_id)
    await schedule.tell_projects(services.client, targets)
    return _policy_view(scope, scope_id, history)


async def _project_exists(conn: asyncpg.Connection, actor: Actor, project_id: str, milestone_id: str | None = None,
                          *, editing: bool = False) -> None:
    """404 unless the project (and milestone) exists and the actor sees it; 403 when `editing` its
    reminders is not theirs (domain/access.py)."""
    header = await queries.project_header(conn, project_id)
    if header is None:
        raise not_found(f"project {project_id}")
    if editing:
        access.check_settings_edit(actor, header.departments, f"project {project_id}")
    else:
        access.check_visible(actor, header.departments, f"project {project_id}")
    if milestone_id is not None and not await conn.fetchval(
            "SELECT true FROM milestones WHERE project_id = $1 AND id = $2", project_id, milestone_id):
        raise not_found(f"project {project_id} milestone {milestone_id}")


@router.get("/reminder-policies/default", response_model=ReminderPolicy)
async def default_policy(actor: ActorDep) -> ReminderPolicy:
    """What applies where nothing else is set."""
    return DEFAULT_POLICY


@router.get("/organizations/{organization_id}/reminder-policy", response_model=PolicyView)
async def organization_policy(organization_id: Identifier, services: ServicesDep, actor: ActorDep) -> PolicyView:
    async with services.pool.acquire() as conn:
        if not await conn.fetchval("SELECT true FROM organizations WHERE id = $1", organization_id):
            raise not_found(f"organization {organization_id}")
        history = await policy_versions(conn, PolicyScope.organization, organization_id)
    return _policy_view(PolicyScope.organization, organization_id, history)


@router.put("/organizations/{organization_id}/reminder-policy", response_model=PolicyView)
async def set_organization_policy(organization_id: Identifier, body: PolicyIn, services: ServicesDep,
                                  actor: ActorDep, request_id: RequestIdDep) -> PolicyView:
    """A new version of the policy for every project of cooperations this organization leads."""
    _require(actor, SETTINGS_EDITORS, "set an organization's reminder policy")
    async with services.pool.acquire() as conn:
        if not await conn.fetchval("SELECT true FROM organizations WHERE id = $1", organization_id):
            raise not_found(f"organization {organization_id}")
    return await _set_policy(services, actor, request_id, PolicyScope.organization, organization_id, body, None)


@router.delete("/organizations/{organization_id}/reminder-policy", response_model=PolicyView)
async def remove_organization_policy(organization_id: Identifier, services: ServicesDep, actor: ActorDep,
                                     request_id: RequestIdDep) -> PolicyView:
    _require(actor, SETTINGS_EDITORS, "remove an organization's reminder policy")
    async with services.pool.acquire() as conn:
        if not await conn.fetchval("SELECT true FROM organizations WHERE id = $1", organization_id):
            raise not_found(f"organization {organization_id}")
    return await _set_policy(services, actor, request_id, PolicyScope.organization, organization_id, None, None)


@router.get("/projects/{project_id}/reminder-policy", response_model=PolicyView)
async def project_policy(project_id: Identifier, services: ServicesDep, actor: ActorDep) -> PolicyView:
    async with services.pool.acquire() as conn:
        await _project_exists(conn, actor, project_id)
        history = await policy_versions(conn, PolicyScope.project, project_id)
    return _policy_view(PolicyScope.project, project_id, history)


@router.put("/projects/{project_id}/reminder-policy", response_model=PolicyView)
async def set_project_policy(project_id: Identifier, body: PolicyIn, services: ServicesDep, actor: ActorDep,
                             request_id: RequestIdDep) -> PolicyView:
    async with services.pool.acquire() as conn:
        await _project_exists(conn, actor, project_id, editing=True)
    return await _set_policy(services, actor, request_id, PolicyScope.project, project_id, body, [project_id])


@router.delete("/projects/{project_id}/reminder-policy", response_model=PolicyView)
async def remove_project_policy(project_id: Identifier, services: ServicesDep, actor: ActorDep,
                                request_id: RequestIdDep) -> PolicyView:
    async with services.pool.acquire() as conn:
        await _project_exists(conn, actor, project_id, editing=True)
    return await _set_policy(services, actor, request_id, PolicyScope.project, project_id, None, [project_id])


@router.get("/projects/{project_id}/milestones/{milestone_id}/reminder-policy", response_model=PolicyView)
async def milestone_policy(project_id: Identifier, milestone_id: Identifier, services: ServicesDep,
                           actor: ActorDep) -> PolicyView:
    scope_id = milestone_scope_id(project_id, milestone_id)
    async with services.pool.acquire() as conn:
        await _project_exists(conn, actor, project_id, milestone_id)
        history = await policy_versions(conn, PolicyScope.milestone, scope_id)
    return _policy_view(PolicyScope.milestone, scope_id, history)


@router.put("/projects/{project_id}/milestones/{milestone_id}/reminder-policy", response_model=PolicyView)
async def set_milestone_policy(project_id: Identifier, milestone_id: Identifier, body: PolicyIn,
                               services: ServicesDep, actor: ActorDep, request_id: RequestIdDep) -> PolicyView:
    """Overrides the project's and the organization's policy for this one milestone."""
    async with services.pool.acquire() as conn:
        await _project_exists(conn, actor, project_id, milestone_id, editing=True)
    return await _set_policy(services, actor, request_id, PolicyScope.milestone,
                             milestone_scope_id(project_id, milestone_id), body, [project_id])


@router.delete("/projects/{project_id}/milestones/{milestone_id}/reminder-policy", response_model=PolicyView)
async def remove_milestone_policy(project_id: Identifier, milestone_id: Identifier, services: ServicesDep,
                                  actor: ActorDep, request_id: RequestIdDep) -> PolicyView:
    async with services.pool.acquire() as conn:
        await _project_exists(conn, actor, project_id, milestone_id, editing=True)
    return await _set_policy(services, actor, request_id, PolicyScope.milestone,
                             milestone_scope_id(project_id, milestone_id), None, [project_id])


# ---------------------------------------------------------------- the calendar


@router.get("/calendar", response_model=CalendarView)
async def calendar(services: ServicesDep, actor: ActorDep) -> CalendarView:
    """The working-day calendar in force, and its versions."""
    async with services.pool.acquire() as conn:
        current = await current_calendar(conn, services.calendar_name)
        versions = await calendar_versions(conn, current.name)
    return CalendarView(name=current.name, version=current.version, covered_years=sorted(current.covered_years),
                        versions=[dict(r) for r in versions])


@router.get("/calendar/years/{year}", response_model=CalendarYearView)
async def calendar_year(year: Year, services: ServicesDep, actor: ActorDep) -> CalendarYearView:
    async with services.pool.acquire() as conn:
        current = await current_calendar(conn, services.calendar_name)
    return _year_view(current, year)


def _year_view(calendar: WorkingCalendar, year: int) -> CalendarYearView:
    return CalendarYearView(
        year=year, version=calendar.version, official=year in calendar.covered_years,
        holidays=sorted(d for d in calendar.holidays if d.year == year),
        workdays=sorted(d for d in calendar.workdays if d.year == year))


def _with_year(current: WorkingCalendar, year: int, body: CalendarYearIn) -> WorkingCalendar:
    if body.expected_version != current.version:
        raise conflict(f"the calendar is at version {current.version}, not {body.expected_version}: "
                       "someone changed it meanwhile; review the current version and try again")
    try:
        return current.with_year(year, body.holidays, body.workdays)
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=[{"loc": ["body"], "msg": str(error), "type": "value_error"}]) from None


@router.post("/calendar/years/{year}/preview", response_model=CalendarYearPreview)
async def preview_calendar_year(year: Year, body: CalendarYearIn, services: ServicesDep,
                                actor: ActorDep) -> CalendarYearPreview:
    """Which open notices would move (or appear, or disappear) if this year's data were applied.
    Nothing is changed. An admin (who applies it) sees every move, by project and milestone id;
    anyone else the moves of the projects they see."""
    async with services.pool.acquire() as conn:
        current = await current_calendar(conn, services.calendar_name)
        proposed = _with_year(current, year, body)
        moves = await schedule.calendar_moves(conn, current, proposed, _now(), services.reminder_hour,
                                              services.reminder_until_hour)
        if not access.has_admin(actor):
            moves = await _visible_moves(conn, actor, moves)
    return CalendarYearPreview(current_version=current.version, new_version=proposed.version, moves=moves)


async def _visible_moves(conn: asyncpg.Connection, actor: Actor, moves: list) -> list:
    view = access.view_of(actor)
    seen: dict[str, bool] = {}
    for project_id in {m.project_id for m in moves}:
        header = await queries.project_header(conn, project_id)
        seen[project_id] = header is not None and view.sees(header.departments)
    return [m for m in moves if seen[m.project_id]]


@router.put("/calendar/years/{year}", response_model=CalendarYearPreview)
async def set_calendar_year(year: Year, body: CalendarYearIn, services: ServicesDep, actor: ActorDep,
                            request_id: RequestIdDep) -> CalendarYearPreview:
    """Enter or replace one year's holidays and adjusted working days: a new calendar version.
    `expected_version` must be the version previewed (409 otherwise). Every open project reschedules."""
    _require(actor, SETTINGS_EDITORS, "change the working-day calendar")
    async with services.pool.acquire() as conn:
        current = await current_calendar(conn, services.calendar_name)
        proposed = _with_year(current, year, body)
        moves = await schedule.calendar_moves(conn, current, proposed, _now(), services.reminder_hour,
                                              services.reminder_until_hour)
        async with conn.transaction():
            try:
                await save_calendar(conn, proposed, body.note, actor.name)
            except asyncpg.UniqueViolationError:
                raise conflict("someone saved a new calendar version meanwhile; preview again") from None
            await append(conn, event_for(
                actor, request_id=request_id, action="calendar.year_set", entity_type="working_calendar",
                entity_id=f"{proposed.name} v{proposed.version}", comment=body.note,
                after={"year": year, "holidays": [d.isoformat() for d in sorted(body.holidays)],
                       "workdays": [d.isoformat() for d in sorted(body.workdays)], "moved_notices": len(moves)}))
        targets = await schedule.open_project_ids(conn)
    await schedule.tell_projects(services.client, targets)
    return CalendarYearPreview(current_version=proposed.version, new_version=proposed.version, moves=moves)
