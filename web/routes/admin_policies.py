"""Organizations' reminder policies: the office default and each organization's own, as versions.

Leaders read them (the API lets everyone read them); only admins change them, through the API's
handlers (api/routes/reminders.py), so an organization's open projects reschedule their reminders.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request, Response

from api.errors import not_found
from api.reminder_schemas import PolicyIn
from api.routes import reminders as api_reminders
from db import queries
from db.reminder_settings import PolicyScope, current_policy
from domain.reminders import DEFAULT_POLICY, RecipientRole, ReminderPolicy
from web.actions import posted_form
from web.admin_forms import IDENTIFIER, apply, forbidden, options, plain, typed
from web.forms import FormErrors
from web.i18n import N_
from web.pages import render
from web.session import Viewer, services_of, viewer

router = APIRouter()

RECIPIENT_LABELS = {RecipientRole.liaison_officer: N_("The project's liaison officer"),
                    RecipientRole.owner: N_("The milestone's owner"),
                    RecipientRole.department_leader: N_("The department's leaders"),
                    RecipientRole.leadership_office: N_("The leadership office")}
KIND_LABELS = {"government": N_("Government"), "park_committee": N_("Park committee"), "bureau": N_("Bureau"),
               "company": N_("Company")}
ESCALATION_ROWS = len(RecipientRole)
"""One escalation step per recipient at most (domain/reminders.py), so one row each."""
POLICY_FIELDS = ("name", "before_working_days", "on_due_date", "overdue_every_days", "recipient", "note",
                 *(f"escalation-{i}-{part}" for i in range(ESCALATION_ROWS)
                   for part in ("after_working_days", "recipient")))


async def _readers_only(request: Request, who: Viewer) -> Response | None:
    if who.may("admin", "leader"):
        return None
    return await forbidden(request, who, who._("Only administrators and leaders see the reminder policies here."))


async def _editors_only(request: Request, who: Viewer) -> Response | None:
    if who.may(*api_reminders.SETTINGS_EDITORS):
        return None
    return await forbidden(request, who, who._("Only administrators may change reminder policies."))


def _organization_id(text: str) -> str:
    """A path id the API would accept; anything else cannot exist."""
    if not IDENTIFIER.match(text):
        raise not_found("organization")
    return text


# ---------------------------------------------------------------- the pages


@router.get("/admin/policies")
async def policies_page(request: Request, q: str = "") -> Response:
    """The office default, and each organization with the policy its projects follow."""
    who = await viewer(request)
    if refused := await _readers_only(request, who):
        return refused
    q = plain(q)[:200]
    async with services_of(request).pool.acquire() as conn:
        organizations = await queries.list_organizations(conn, None, q or None)
        own = {o["id"]: await current_policy(conn, PolicyScope.organization, o["id"]) for o in organizations}
    return await render(request, who, "admin/policies.html", section="policies", organizations=organizations,
                        own=own, q=q, default=DEFAULT_POLICY, kinds=dict(options(KIND_LABELS, who)),
                        recipients=dict(options(RECIPIENT_LABELS, who)))


async def _policy_page(request: Request, who: Viewer, organization_id: str, values: dict[str, str] | None = None,
                       errors: FormErrors | None = None, status: int = 200) -> Response:
    organization_id = _organization_id(organization_id)
    view = await api_reminders.organization_policy(organization_id, services_of(request), who.actor)
    async with services_of(request).pool.acquire() as conn:
        organization = await queries.organization(conn, organization_id)
    return await render(request, who, "admin/policy.html", status, section="policies", organization=organization,
                        view=view, default=DEFAULT_POLICY, errors=errors,
                        values=values if values is not None else _policy_values(view.effective),
                        rows=range(ESCALATION_ROWS), recipients=dict(options(RECIPIENT_LABELS, who)),
                        recipient_options=options(RECIPIENT_LABELS, who), may_edit=who.may("admin"))


@router.get("/admin/policies/{organization_id}")
async def policy_page(request: Request, organization_id: str) -> Response:
    who = await viewer(request)
    if refused := await _readers_only(request, who):
        return refused
    return await _policy_page(request, who, organization_id)


# ---------------------------------------------------------------- the policy form and the API's PolicyIn


def _policy_values(own: ReminderPolicy | None) -> dict[str, str]:
    """The organization's policy as its form shows it; without one, the office default's rules, unnamed."""
    policy = own or DEFAULT_POLICY
    values = {"name": (own.name or "") if own else "",
              "before_working_days": ", ".join(map(str, policy.before_working_days)),
              "on_due_date": "on" if policy.on_due_date else "",
              "overdue_every_days": str(policy.overdue_every_days or ""), "recipient": policy.recipient.value,
              "note": ""}
    for i, step in enumerate(policy.escalation):
        values[f"escalation-{i}-after_working_days"] = str(step.after_working_days)
        values[f"escalation-{i}-recipient"] = step.recipient.value
    return values


def _policy_in(values: dict[str, str]) -> tuple[dict[str, Any], list[int]]:
    """The API's PolicyIn input from the form, and the form row of each escalation step kept.

    Blank escalation rows are left out; offsets may be separated by commas (either width), 、 or spaces."""
    data: dict[str, Any] = {
        "before_working_days": [p for p in re.split(r"[,，、\s]+", values["before_working_days"]) if p],
        "on_due_date": values["on_due_date"] == "on",
        "overdue_every_days": values["overdue_every_days"] or None,
        "recipient": values["recipient"],
        "escalation": [],
    }
    data.update({k: values[k] for k in ("name", "note") if values[k]})
    rows = []
    for i in range(ESCALATION_ROWS):
        after, recipient = values[f"escalation-{i}-after_working_days"], values[f"escalation-{i}-recipient"]
        if after or recipient:
            data["escalation"].append({"after_working_days": after, "recipient": recipient})
            rows.append(i)
    return data, rows


def _policy_errors(errors: FormErrors, rows: list[int], who: Viewer) -> FormErrors:
    """Errors under the form's own names: list items under their field, escalation steps under their row."""
    fields: dict[str, str] = {}
    for name, message in errors.fields.items():
        parts = name.split("-")
        if parts[0] == "before_working_days":
            message = message if len(parts) > 1 else who._("List each number of working days once.")
            name = "before_working_days"
        elif parts[0] == "escalation" and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(rows):
            name = f"escalation-{rows[int(parts[1])]}-{parts[2]}"
        elif parts[0] == "escalation":
            name, message = "escalation", who._("Each recipient can be in one escalation step only.")
        fields.setdefault(name, message)
    return FormErrors(fields, errors.general)


# ---------------------------------------------------------------- changes (admins)


@router.post("/admin/policies/{organization_id}")
async def set_policy(request: Request, organization_id: str) -> Response:
    """A new version of the organization's policy; its open projects reschedule their reminders."""
    who = await viewer(request)
    form = await posted_form(request, who)
    if refused := await _editors_only(request, who):
        return refused
    organization_id = _organization_id(organization_id)
    values = typed(form, *POLICY_FIELDS)
    data, rows = _policy_in(values)

    async def action(request_id: str) -> str:
        body = PolicyIn.model_validate(data)
        await api_reminders.set_organization_policy(organization_id, body, services_of(request), who.actor,
                                                    request_id)
        return f"/admin/policies/{organization_id}"

    async def again(errors: FormErrors, status: int) -> Response:
        return await _policy_page(request, who, organization_id, values, _policy_errors(errors, rows, who), status)

    return await apply(request, who, form, action, who._("The reminder policy is saved as a new version."), again)


@router.post("/admin/policies/{organization_id}/remove")
async def remove_policy(request: Request, organization_id: str) -> Response:
    """The organization's projects go back to the office default (a new, empty version: history stays)."""
    who = await viewer(request)
    form = await posted_form(request, who)
    if refused := await _editors_only(request, who):
        return refused
    organization_id = _organization_id(organization_id)

    async def action(request_id: str) -> str:
        await api_reminders.remove_organization_policy(organization_id, services_of(request), who.actor, request_id)
        return f"/admin/policies/{organization_id}"

    async def again(errors: FormErrors, status: int) -> Response:
        return await _policy_page(request, who, organization_id, None, errors, status)

    return await apply(request, who, form, action,
                       who._("The organization's projects now follow the office default policy."), again)
