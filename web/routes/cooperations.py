"""The cooperation page and its forms: open a cooperation, record negotiation, create projects,
terminate. Agreement forms are in web/routes/agreements.py.

Every action calls the JSON API's own handler (api/routes/cooperations.py) as a function, so
a form and an API call go through exactly the same validation, access checks, workflow Update
and audit event.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from api.concurrency import Precondition
from api.routes import cooperations as api
from api.routes import organizations as api_organizations
from api.schemas import CooperationIn, MilestoneIn, NegotiationEventIn, OrganizationIn, ProjectIn, TerminationIn
from api.services import new_id
from domain.cooperation import NegotiationKind
from web import cooperation_view as view
from web.actions import FormState, day, lines, money, perform, read_form, text, today_iso, version
from web.forms import FormErrors, validation_errors
from web.pages import render
from web.session import Viewer, services_of, viewer

router = APIRouter()

NEGOTIATION_KINDS = [k.value for k in NegotiationKind]
MILESTONE_ROWS_EXTRA = 2  # blank rows under the template's, for milestones of the project's own
ORGANIZATION_KINDS = ("government", "park_committee", "bureau", "company")


# ---------------------------------------------------------------- open a cooperation


@router.get("/cooperations/new")
async def new_cooperation_page(request: Request) -> Response:
    who = await viewer(request)
    values = {"liaison_officer": who.user.display_name, "started_on": today_iso()}
    for name in ("lead_organization_id", "partner_organization_id"):
        chosen = request.query_params.get(name)
        if chosen:
            values[name] = chosen
    return await _new_page(request, who, FormState("cooperation", values))


async def _new_page(request: Request, who: Viewer, state: FormState, status_code: int = 200) -> Response:
    return await render(request, who, "cooperation_new.html", status_code, state=state,
                        kinds=ORGANIZATION_KINDS, **await view.choices(services_of(request)))


@router.post("/cooperations/new")
async def create_cooperation(request: Request) -> Response:
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        body = CooperationIn(title=text(values, "title"), lead_organization_id=text(values, "lead_organization_id"),
                             partner_organization_id=text(values, "partner_organization_id"),
                             areas=lines(values, "areas"), liaison_officer=text(values, "liaison_officer"),
                             started_on=day(values, "started_on"),
                             target_signing_date=day(values, "target_signing_date"),
                             description=values.get("description", "").strip())
        state = await api.create(body, services, who.actor, request_id, Response())
        return f"/cooperations/{state.cooperation_id}"

    async def again(state: FormState, status_code: int) -> Response:
        return await _new_page(request, who, state, status_code)

    return await perform(request, who, "cooperation", values, act, who._("Cooperation opened."), again)


@router.post("/organizations/new")
async def create_organization(request: Request) -> Response:
    """Register a company or government body from the new-cooperation page, then return to it
    with the new organization chosen."""
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        body = OrganizationIn(name=text(values, "org_name"), kind=values.get("org_kind") or None,
                              region=text(values, "org_region"))
        created = await api_organizations.create_organization(body, services, who.actor, request_id)
        role = "partner_organization_id" if body.kind == "company" else "lead_organization_id"
        return f"/cooperations/new?{role}={created['id']}"

    async def again(state: FormState, status_code: int) -> Response:
        # The model names its fields name/kind/region; on the page they are org_*.
        if state.errors:
            state.errors.fields = {f"org_{k}": v for k, v in state.errors.fields.items()}
        state.name = "organization"
        return await _new_page(request, who, state, status_code)

    return await perform(request, who, "organization", values, act, who._("Organization registered."), again)


# ---------------------------------------------------------------- the page


@router.get("/cooperations/{cooperation_id}")
async def cooperation_page(request: Request, cooperation_id: str) -> Response:
    who = await viewer(request)
    return await show(request, who, cooperation_id, FormState())


async def show(request: Request, who: Viewer, cooperation_id: str, state: FormState,
               status_code: int = 200) -> Response:
    """The page, with `state`'s form open and filled when it came back with errors."""
    services = services_of(request)
    cooperation = await view.load(services, who, cooperation_id)
    return await render(
        request, who, "cooperation.html", status_code, c=cooperation, state=state,
        timeline=view.timeline(cooperation, who._), can=view.permissions(who, cooperation),
        may_review_step=lambda step: view.may_review_step(who, step), negotiation_kinds=NEGOTIATION_KINDS,
        milestone_template=view.template_milestones(cooperation), extra_rows=MILESTONE_ROWS_EXTRA, today=today_iso(),
        **await view.choices(services),
    )


def again_on(request: Request, who: Viewer, cooperation_id: str):  # noqa: ANN201
    """The `again` of a form on the cooperation page: the page with that form open."""

    async def again(state: FormState, status_code: int) -> Response:
        return await show(request, who, cooperation_id, state, status_code)

    return again


# ---------------------------------------------------------------- negotiation


@router.post("/cooperations/{cooperation_id}/negotiation")
async def record_negotiation(request: Request, cooperation_id: str) -> Response:
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        body = NegotiationEventIn(kind=values.get("kind") or None, occurred_on=day(values, "occurred_on"),
                                  ends_on=day(values, "ends_on"), place=text(values, "place"),
                                  participants=lines(values, "participants"),
                                  summary=values.get("summary", "").strip())
        await api.record_negotiation(cooperation_id, body, services, who.actor, precondition_of({}), request_id)
        return f"/cooperations/{cooperation_id}#timeline"

    return await perform(request, who, "negotiation", values, act, who._("Negotiation event recorded."),
                         again_on(request, who, cooperation_id))


def precondition_of(values: dict[str, str]) -> Precondition:
    """If-Match from the form: the version of the record the form was rendered from (none when
    the form carries no version: an action that adds to the record rather than edits it)."""
    return Precondition(version(values), Response())


# ---------------------------------------------------------------- projects


@router.post("/cooperations/{cooperation_id}/projects")
async def create_project(request: Request, cooperation_id: str) -> Response:
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        committed = money(values, "committed_investment", who)
        body = ProjectIn(agreement_id=text(values, "agreement_id"), title=text(values, "title"),
                         site=text(values, "site"), committed_investment=committed,
                         responsible_department=text(values, "responsible_department"),
                         responsible_officer=text(values, "responsible_officer"),
                         milestones=milestone_rows(values, who))
        await api.create_project(cooperation_id, body, services, who.actor, precondition_of({}), request_id)
        return f"/projects/{new_id(request_id, 'project')}"  # the id the API gave it

    return await perform(request, who, "project", values, act, who._("Project created with its milestones."),
                         again_on(request, who, cooperation_id))


def milestone_rows(values: dict[str, str], who: Viewer) -> list[MilestoneIn]:
    """The milestone rows of the project form; a row with neither name nor date is skipped.
    Every row's errors are reported at once, each next to its own field."""
    rows, errors = [], {}
    index = 0
    while f"milestones-{index}-name" in values or f"milestones-{index}-due_date" in values:
        name, due = text(values, f"milestones-{index}-name"), day(values, f"milestones-{index}-due_date")
        if name or due:
            try:
                rows.append(MilestoneIn(name=name, due_date=due))
            except ValidationError as error:
                errors.update(validation_errors(error, who._, prefix=f"milestones-{index}-").fields)
        index += 1
    if errors:
        raise FormErrors(errors)
    if not rows:
        raise FormErrors({"milestones-0-name": who._("A project needs at least one milestone.")})
    return rows


# ---------------------------------------------------------------- termination


@router.get("/cooperations/{cooperation_id}/terminate")
async def terminate_page(request: Request, cooperation_id: str) -> Response:
    """Terminating ends the cooperation and cancels its open projects: a page of its own to confirm."""
    who = await viewer(request)
    return await _terminate_page(request, who, cooperation_id, FormState("terminate"))


async def _terminate_page(request: Request, who: Viewer, cooperation_id: str, state: FormState,
                          status_code: int = 200) -> Response:
    cooperation = await view.load(services_of(request), who, cooperation_id)
    open_projects = [p for p in cooperation["projects"] if p["status"] in ("planned", "active", "suspended")]
    return await render(request, who, "cooperation_terminate.html", status_code, c=cooperation, state=state,
                        open_projects=open_projects)


@router.post("/cooperations/{cooperation_id}/terminate")
async def terminate(request: Request, cooperation_id: str) -> Response:
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        if values.get("confirm") != "yes":
            raise FormErrors({"confirm": who._("Tick the box to confirm that the cooperation ends.")})
        body = TerminationIn(reason=text(values, "reason"))
        await api.terminate(cooperation_id, body, services, who.actor, precondition_of(values), request_id)
        return f"/cooperations/{cooperation_id}"

    async def again(state: FormState, status_code: int) -> Response:
        return await _terminate_page(request, who, cooperation_id, state, status_code)

    return await perform(request, who, "terminate", values, act, who._("The cooperation was terminated."), again)

