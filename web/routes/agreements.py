"""Agreement forms on the cooperation page: draft, edit, submit, decide a review step, sign.

The review chain and signatures are the workflow's (domain/cooperation.py); these handlers
only turn form fields into the API's request bodies and call its handlers.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from api.routes import cooperations as api
from api.schemas import AgreementEdit, AgreementIn, PartyIn, RejectionIn, ReviewDecisionIn, SignatureIn
from api.services import office_today
from web import cooperation_view as view
from web.actions import FormState, day, perform, read_form, text
from web.forms import FormErrors, validation_errors
from web.pages import render
from web.routes.cooperations import again_on, precondition_of
from web.session import Viewer, services_of, viewer

router = APIRouter()
PARTY_ROWS = 4  # rows offered on the form; most agreements have two or three parties


def party_rows(values: dict[str, str], who: Viewer) -> list[PartyIn]:
    """The filled party rows (an organization chosen); each row's errors next to its fields."""
    parties, errors = [], {}
    for index in range(PARTY_ROWS):
        prefix = f"parties-{index}-"
        organization = text(values, prefix + "organization_id")
        if organization is None:
            continue
        try:
            parties.append(PartyIn(organization_id=organization, signatory_name=text(values, prefix + "signatory_name"),
                                   signatory_title=text(values, prefix + "signatory_title")))
        except ValidationError as error:
            errors.update(validation_errors(error, who._, prefix=prefix).fields)
    if errors:
        raise FormErrors(errors)
    if len(parties) < 2:
        raise FormErrors({"parties-1-organization_id": who._("An agreement needs at least two parties.")})
    return parties


@router.post("/cooperations/{cooperation_id}/agreements")
async def draft(request: Request, cooperation_id: str) -> Response:
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        body = AgreementIn(kind=values.get("kind") or None, title=text(values, "title"),
                           parties=party_rows(values, who))
        await api.draft_agreement(cooperation_id, body, services, who.actor, precondition_of({}), request_id)
        return f"/cooperations/{cooperation_id}#agreements"

    return await perform(request, who, "agreement", values, act, who._("Agreement drafted."),
                         again_on(request, who, cooperation_id))


@router.get("/cooperations/{cooperation_id}/agreements/{agreement_id}/edit")
async def edit_page(request: Request, cooperation_id: str, agreement_id: str) -> Response:
    who = await viewer(request)
    return await _edit_page(request, who, cooperation_id, agreement_id, FormState("edit"))


async def _edit_page(request: Request, who: Viewer, cooperation_id: str, agreement_id: str, state: FormState,
                     status_code: int = 200) -> Response:
    services = services_of(request)
    cooperation = await view.load(services, who, cooperation_id)
    agreement = next((a for a in cooperation["agreements"] if a["id"] == agreement_id), None)
    if agreement is None:
        from api.errors import not_found

        raise not_found(f"agreement {agreement_id}")
    if not state.values:  # first view, or a lost race: the agreement as it is now
        state.values = {"title": agreement["title"], "version": str(cooperation["version"])}
        for index, party in enumerate(agreement["parties"]):
            for key in ("organization_id", "signatory_name", "signatory_title"):
                state.values[f"parties-{index}-{key}"] = party[key]
    return await render(request, who, "agreement_edit.html", status_code, c=cooperation, a=agreement, state=state,
                        party_rows=PARTY_ROWS, **await view.choices(services))


@router.post("/cooperations/{cooperation_id}/agreements/{agreement_id}/edit")
async def edit(request: Request, cooperation_id: str, agreement_id: str) -> Response:
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        body = AgreementEdit(title=text(values, "title"), parties=party_rows(values, who))
        await api.edit_agreement(cooperation_id, agreement_id, body, services, who.actor, precondition_of(values),
                                 request_id)
        return f"/cooperations/{cooperation_id}#agreement-{agreement_id}"

    async def again(state: FormState, status_code: int) -> Response:
        return await _edit_page(request, who, cooperation_id, agreement_id, state, status_code)

    return await perform(request, who, "edit", values, act, who._("Agreement saved."), again)


@router.post("/cooperations/{cooperation_id}/agreements/{agreement_id}/submit")
async def submit(request: Request, cooperation_id: str, agreement_id: str) -> Response:
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        await api.submit_agreement(cooperation_id, agreement_id, services, who.actor, precondition_of({}), request_id)
        return f"/cooperations/{cooperation_id}#agreement-{agreement_id}"

    return await perform(request, who, f"submit-{agreement_id}", values, act,
                         who._("Agreement submitted for review."), again_on(request, who, cooperation_id))


@router.post("/cooperations/{cooperation_id}/agreements/{agreement_id}/review")
async def review(request: Request, cooperation_id: str, agreement_id: str) -> Response:
    """Approve or reject the current review step (a rejection needs a comment and returns the
    agreement to draft)."""
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)
    step, decision, comment = values.get("step", ""), values.get("decision"), text(values, "comment")
    draft_version = text(values, "draft_version")  # the draft version shown on the form (None: no draft uploaded)

    async def act(request_id: str) -> str:
        if decision == "reject":
            await api.reject_step(cooperation_id, agreement_id, step,
                                  RejectionIn(comment=comment, draft_version=draft_version), services,
                                  who.actor, precondition_of({}), request_id)
        else:
            await api.approve_step(cooperation_id, agreement_id, step, services, who.actor, precondition_of({}),
                                   request_id, ReviewDecisionIn(comment=comment, draft_version=draft_version))
        return f"/cooperations/{cooperation_id}#agreement-{agreement_id}"

    done = who._("Review step rejected; the agreement is back in draft.") if decision == "reject" \
        else who._("Review step approved.")
    return await perform(request, who, f"review-{agreement_id}", values, act, done,
                         again_on(request, who, cooperation_id))


@router.post("/cooperations/{cooperation_id}/agreements/{agreement_id}/sign")
async def sign(request: Request, cooperation_id: str, agreement_id: str) -> Response:
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        body = SignatureIn(organization_id=text(values, "organization_id"),
                           signed_on=day(values, "signed_on") or office_today().isoformat(),
                           signatory_name=text(values, "signatory_name"),
                           signatory_title=text(values, "signatory_title"),
                           signed_original_version=text(values, "signed_original_version"))
        await api.sign_agreement(cooperation_id, agreement_id, body, services, who.actor, precondition_of({}),
                                 request_id)
        return f"/cooperations/{cooperation_id}#agreement-{agreement_id}"

    return await perform(request, who, f"sign-{agreement_id}", values, act, who._("Signature recorded."),
                         again_on(request, who, cooperation_id))
