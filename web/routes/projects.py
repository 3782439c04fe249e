"""The project page: milestones on a time axis, the reminder schedule and a what-if check,
realized against committed investment; and its forms: move a due date (reason required),
complete a milestone, record realized investment, suspend, resume, cancel.

Actions call the JSON API's handlers (api/routes/projects.py) as functions; the schedule and
the what-if come from the same functions as GET /projects/{id}/notices and …/what-if.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request, Response

from api.errors import ApiError
from api.routes import projects as api
from api.routes import reminders as api_reminders
from api.schemas import CommentIn, InvestmentIn, MilestoneCompletionIn, MilestoneMoveIn, ReasonIn
from api.services import office_today
from channels.messages import kind_phrase
from db import queries
from domain import access
from domain.errors import DomainError
from web.actions import FormState, day, money, perform, read_form, text, today_iso
from web.charts import milestone_timeline
from web.forms import FormErrors
from web.pages import render
from web.routes.cooperations import precondition_of
from web.session import Viewer, services_of, viewer

router = APIRouter()


@router.get("/projects/{project_id}")
async def project_page(request: Request, project_id: str) -> Response:
    who = await viewer(request)
    return await show(request, who, project_id, FormState())


async def show(request: Request, who: Viewer, project_id: str, state: FormState, status_code: int = 200) -> Response:
    services = services_of(request)
    project = await api.get_project(project_id, services, who.actor, Response())
    notices = await api_reminders.upcoming_notices(project_id, services, who.actor)
    today = office_today()
    return await render(
        request, who, "project.html", status_code, p=project, state=state, notices=notices[:30],
        what_if=await _what_if(request, who, project), today=today_iso(),
        timeline_svg=milestone_timeline(project["milestones"], today, who._, who.language),
        can_edit=project["status"] in ("planned", "active", "suspended") and await _may_edit(services, who, project_id),
        cooperation_title=await _cooperation_title(services, project["cooperation_id"]),
        phrase=lambda kind: kind_phrase(kind, who.language),  # the wording the notices themselves use
    )


async def _may_edit(services, who: Viewer, project_id: str) -> bool:  # noqa: ANN001
    """A liaison officer of the project's department or of its cooperation's (as the API decides)."""
    async with services.pool.acquire() as conn:
        header = await queries.project_header(conn, project_id)
    try:
        access.check_project_command(who.actor, "record_investment", header.departments if header else ())
    except DomainError:
        return False
    return True


async def _cooperation_title(services, cooperation_id: str) -> str:  # noqa: ANN001
    async with services.pool.acquire() as conn:
        return await conn.fetchval("SELECT title FROM cooperations WHERE id = $1", cooperation_id) or cooperation_id


async def _what_if(request: Request, who: Viewer, project: dict) -> dict | None:
    """The answer to "what if this date moved" asked in the query string (a GET form: nothing changes)."""
    milestone_id, raw = request.query_params.get("milestone"), request.query_params.get("due_date")
    if not milestone_id or not raw:
        return None
    try:
        due = date.fromisoformat(raw)
    except ValueError:
        return {"error": who._("Enter a date as YYYY-MM-DD."), "milestone": milestone_id, "due_date": raw}
    try:
        answer = await api_reminders.what_if(project["id"], milestone_id, services_of(request), who.actor, due)
    except ApiError:
        return {"error": who._("No such milestone in this project."), "milestone": milestone_id, "due_date": raw}
    return {"answer": answer, "milestone": milestone_id, "due_date": raw}


def again_on(request: Request, who: Viewer, project_id: str):  # noqa: ANN201
    async def again(state: FormState, status_code: int) -> Response:
        return await show(request, who, project_id, state, status_code)

    return again


@router.post("/projects/{project_id}/milestones/{milestone_id}/move")
async def move_milestone(request: Request, project_id: str, milestone_id: str) -> Response:
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        body = MilestoneMoveIn(new_due_date=day(values, "new_due_date"), reason=text(values, "reason"))
        await api.move_milestone(project_id, milestone_id, body, services, who.actor, precondition_of(values),
                                 request_id)
        return f"/projects/{project_id}#milestone-{milestone_id}"

    return await perform(request, who, f"move-{milestone_id}", values, act,
                         who._("Due date moved; reminders follow the new date."), again_on(request, who, project_id))


@router.post("/projects/{project_id}/milestones/{milestone_id}/complete")
async def complete_milestone(request: Request, project_id: str, milestone_id: str) -> Response:
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        body = MilestoneCompletionIn(completed_on=day(values, "completed_on"), evidence=text(values, "evidence"))
        await api.complete_milestone(project_id, milestone_id, body, services, who.actor, precondition_of({}),
                                     request_id)
        return f"/projects/{project_id}#milestone-{milestone_id}"

    return await perform(request, who, f"complete-{milestone_id}", values, act, who._("Milestone completed."),
                         again_on(request, who, project_id))


@router.post("/projects/{project_id}/investments")
async def record_investment(request: Request, project_id: str) -> Response:
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        body = InvestmentIn(received_on=day(values, "received_on"), amount=money(values, "amount", who),
                            source_note=text(values, "source_note"))
        await api.record_investment(project_id, body, services, who.actor, precondition_of({}), request_id)
        return f"/projects/{project_id}#investment"

    return await perform(request, who, "investment", values, act, who._("Realized investment recorded."),
                         again_on(request, who, project_id))


@router.post("/projects/{project_id}/status")
async def change_status(request: Request, project_id: str) -> Response:
    """Suspend (reason), resume (optional comment) or cancel (reason and a ticked confirmation)."""
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)
    change = values.get("change")

    async def act(request_id: str) -> str:
        precondition = precondition_of({})
        if change == "suspend":
            await api.suspend(project_id, ReasonIn(reason=text(values, "reason")), services, who.actor,
                              precondition, request_id)
        elif change == "resume":
            await api.resume(project_id, services, who.actor, precondition, request_id,
                             CommentIn(comment=text(values, "reason")))
        elif change == "cancel":
            if values.get("confirm") != "yes":
                raise FormErrors({"confirm": who._("Tick the box to confirm the cancellation.")})
            await api.cancel(project_id, ReasonIn(reason=text(values, "reason")), services, who.actor,
                             precondition, request_id)
        else:
            raise FormErrors({"change": who._("Choose one of the options.")})
        return f"/projects/{project_id}"

    done = {"suspend": who._("Project suspended; its reminders pause."), "resume": who._("Project resumed."),
            "cancel": who._("Project cancelled.")}.get(change or "", "")
    return await perform(request, who, "status", values, act, done, again_on(request, who, project_id))
