"""Administration pages: users and their roles, the department tree, organizations' reminder policies.

Every change runs the API's own handler (api/routes/admin.py, api/routes/reminders.py) as a
Python function, so the checks (admins only; no admin can drop their own admin role or
disable themselves; no department loop) and the audit events are exactly the API's.
Users and departments are the admins' alone; leaders read the reminder policies (the API
lets everyone read them) but only admins change them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.admin_schemas import DepartmentIn, DepartmentMove, RolesIn, UserChange, UserIn
from api.errors import ApiError, not_found
from api.reminder_schemas import PolicyIn
from api.routes import admin as api_admin
from api.routes import reminders as api_reminders
from db import departments as tree
from db import queries
from db.reminder_settings import PolicyScope, current_policy
from domain.reminders import DEFAULT_POLICY, RecipientRole, ReminderPolicy
from web.forms import FormErrors, redirect, refusal, run_once, validation_errors
from web.i18n import N_
from web.pages import render
from web.session import Viewer, check_form, services_of, viewer

router = APIRouter()

ROLE_LABELS = {"liaison_officer": N_("Liaison officer"), "reviewer": N_("Reviewer (legal affairs)"),
               "leader": N_("Leader"), "auditor": N_("Auditor"), "admin": N_("Administrator")}
RECIPIENT_LABELS = {RecipientRole.liaison_officer: N_("The project's liaison officer"),
                    RecipientRole.owner: N_("The milestone's owner"),
                    RecipientRole.department_leader: N_("The department's leaders"),
                    RecipientRole.leadership_office: N_("The leadership office")}
KIND_LABELS = {"government": N_("Government"), "park_committee": N_("Park committee"), "bureau": N_("Bureau"),
               "company": N_("Company")}
LANGUAGE_LABELS = {"zh": "中文", "en": "English"}
ESCALATION_ROWS = len(RecipientRole)
"""One escalation step per recipient at most (domain/reminders.py), so one row each."""
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")  # domain.types.Identifier


# ---------------------------------------------------------------- shared


async def _forbidden(request: Request, who: Viewer, message: str) -> Response:
    return await render(request, who, "error.html", 403, status=403, title=who._("You may not do this"),
                        message=message)


async def _admins_only(request: Request, who: Viewer) -> Response | None:
    """The 403 page for anyone but an admin (the API's `_admin_only` would refuse them too)."""
    if who.may("admin"):
        return None
    return await _forbidden(request, who, who._("Only administrators may manage users and departments."))


def _renamed(errors: FormErrors, names: dict[str, str]) -> FormErrors:
    """The API's field names as this form names its inputs."""
    return FormErrors({names.get(k, k): v for k, v in errors.fields.items()}, errors.general)


async def _apply(request: Request, who: Viewer, form: FormData, action: Callable[[str], Awaitable[str]],
                 done: str, again: Callable[[FormErrors, int], Awaitable[Response]],
                 conflict: Callable[[ApiError], FormErrors] | None = None,
                 names: dict[str, str] | None = None) -> Response:
    """Run an API action once for this form and redirect with `done`, or show the form again with why not.

    `conflict` words a 409 of the action for the page (next to a field when one is to blame)."""
    try:
        location = await run_once(request, who, str(form.get("form_key", "")), action)
    except FormErrors as errors:
        return await again(errors, 422)
    except ValidationError as error:
        return await again(_renamed(validation_errors(error, who._), names or {}), 422)
    except ApiError as error:
        if conflict is not None and error.status == 409:
            return await again(conflict(error), 409)
        return await again(_renamed(refusal(error, who._), names or {}), error.status)
    return redirect(location, who, done)


def _plain(text: str) -> str:
    """Typed text as the database can hold it: stripped, and without NUL (never typed by a person)."""
    return text.replace("\x00", "").strip()


def _text(form: FormData, *names: str) -> dict[str, str]:
    """The typed values of these fields (to show again and to validate)."""
    return {name: _plain(str(form.get(name, ""))) for name in names}


def _filled(values: dict[str, str]) -> dict[str, str]:
    """Blank fields left out, so that a required one says "required" rather than "wrong format"."""
    return {k: v for k, v in values.items() if v}


def _options(labels: dict[Any, str], who: Viewer) -> list[tuple[str, str]]:
    return [(str(k), who._(v)) for k, v in labels.items()]


async def _department_options(request: Request, who: Viewer) -> list[tuple[str, str]]:
    rows = await api_admin.list_departments(services_of(request), who.actor)
    return [(d["name"], d["path"].replace("/", " / ")) for d in rows]


@router.get("/admin")
async def admin_home(request: Request) -> Response:
    """The first administration page this user may use."""
    who = await viewer(request)
    if who.may("admin"):
        return redirect("/admin/users")
    if who.may("leader"):
        return redirect("/admin/policies")
    return await _forbidden(request, who, who._("Only administrators may manage users and departments."))


# ---------------------------------------------------------------- users


@router.get("/admin/users")
async def users_page(request: Request, department: str = "", role: str = "") -> Response:
    who = await viewer(request)
    if refused := await _admins_only(request, who):
        return refused
    department = _plain(department)[:200]
    chosen_role = role if role in ROLE_LABELS else None
    users = await api_admin.list_users(services_of(request), who.actor, department=department or None,
                                       role=chosen_role)  # type: ignore[arg-type]
    return await render(request, who, "admin/users.html", users=users, section="users",
                        values={"department": department, "role": chosen_role or ""},
                        departments=await _department_options(request, who),
                        roles=_options(ROLE_LABELS, who), role_labels=dict(_options(ROLE_LABELS, who)))


async def _new_user_page(request: Request, who: Viewer, values: dict[str, str], roles: list[str],
                         errors: FormErrors | None = None, status: int = 200) -> Response:
    return await render(request, who, "admin/user_new.html", status, section="users", values=values,
                        checked_roles=roles, errors=errors, departments=await _department_options(request, who),
                        roles=_options(ROLE_LABELS, who), languages=list(LANGUAGE_LABELS.items()))


@router.get("/admin/users/new")
async def new_user_page(request: Request) -> Response:
    who = await viewer(request)
    if refused := await _admins_only(request, who):
        return refused
    return await _new_user_page(request, who, {"language": "zh"}, [])


@router.post("/admin/users")
async def create_user(request: Request) -> Response:
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    if refused := await _admins_only(request, who):
        return refused
    values = _text(form, "username", "display_name", "department", "email", "language")
    roles = [str(r) for r in form.getlist("roles")]

    async def action(request_id: str) -> str:
        body = UserIn.model_validate({**_filled(values), **({"roles": roles} if roles else {})})
        created = await api_admin.create_account(body, services_of(request), who.actor, request_id)
        return f"/admin/users/{created['id']}"

    async def again(errors: FormErrors, status: int) -> Response:
        errors = _no_such_department(_email_worded(errors, who), status, values, "department", who)
        return await _new_user_page(request, who, values, roles, errors, status)

    return await _apply(request, who, form, action,
                        who._("User %(username)s created. They sign in once a password is set "
                              "(accord user set-password).", username=values["username"]),
                        again, conflict=lambda _e: FormErrors({"username": who._("This username is taken.")}))


def _no_such_department(errors: FormErrors, status: int, values: dict[str, str], field: str,
                        who: Viewer) -> FormErrors:
    """A department chosen from the list that is not in the tree (any more): the API's 422 says so in English."""
    if status == 422 and values.get(field) and field in errors.fields:
        errors.fields[field] = who._("There is no such department.")
    return errors


def _email_worded(errors: FormErrors, who: Viewer) -> FormErrors:
    """The address check explains itself in English (api/notice_schemas.py); say it in the user's language."""
    if "email" in errors.fields:
        errors.fields["email"] = who._("Enter one email address, e.g. li.wei@mianyang.gov.cn.")
    return errors


async def _user_or_404(request: Request, user_id: str) -> Any:
    row = None
    if _ID.match(user_id):
        async with services_of(request).pool.acquire() as conn:
            row = await tree.user(conn, user_id)
    if row is None:
        raise not_found("user")
    return row


async def _user_page(request: Request, who: Viewer, user_id: str, *, values: dict[str, str] | None = None,
                     roles: list[str] | None = None, errors: FormErrors | None = None, form: str = "",
                     status: int = 200) -> Response:
    """One user: details, roles, disable/enable. `form` names the form `errors` and `values` belong to."""
    user = await _user_or_404(request, user_id)
    details = {"display_name": user["display_name"], "department": user["department"] or "",
               "email": user["email"] or "", "language": user["language"]}
    return await render(request, who, "admin/user.html", status, section="users", user=user,
                        values=values if form == "details" and values is not None else details,
                        checked_roles=roles if form == "roles" and roles is not None else list(user["roles"]),
                        errors=errors, failed=form, departments=await _department_options(request, who),
                        roles=_options(ROLE_LABELS, who), role_labels=dict(_options(ROLE_LABELS, who)),
                        languages=list(LANGUAGE_LABELS.items()), is_self=user["id"] == who.user.id)


@router.get("/admin/users/{user_id}")
async def user_page(request: Request, user_id: str) -> Response:
    who = await viewer(request)
    if refused := await _admins_only(request, who):
        return refused
    return await _user_page(request, who, user_id)


@router.post("/admin/users/{user_id}")
async def change_user(request: Request, user_id: str) -> Response:
    """Name, department, email, language: only the fields that differ are sent (and audited)."""
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    if refused := await _admins_only(request, who):
        return refused
    user = await _user_or_404(request, user_id)
    values = _text(form, "display_name", "department", "email", "language")
    current = {"display_name": user["display_name"], "department": user["department"] or "",
               "email": user["email"] or "", "language": user["language"]}
    changes = {k: (v or None) for k, v in values.items() if v != current[k]}

    async def action(request_id: str) -> str:
        required = {k: who._("This field is required.") for k, v in values.items() if not v and k != "email"}
        if required:
            raise FormErrors(required)
        body = UserChange.model_validate(changes)
        if changes:
            await api_admin.change_account(user_id, body, services_of(request), who.actor, request_id)
        return f"/admin/users/{user_id}"

    async def again(errors: FormErrors, status: int) -> Response:
        errors = _no_such_department(_email_worded(errors, who), status, values, "department", who)
        return await _user_page(request, who, user_id, values=values, errors=errors, form="details", status=status)

    done = who._("The user's details are saved.") if changes else who._("Nothing was changed.")
    return await _apply(request, who, form, action, done, again)


@router.post("/admin/users/{user_id}/roles")
async def change_roles(request: Request, user_id: str) -> Response:
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    if refused := await _admins_only(request, who):
        return refused
    await _user_or_404(request, user_id)
    roles = [str(r) for r in form.getlist("roles")]

    async def action(request_id: str) -> str:
        body = RolesIn.model_validate({"roles": roles} if roles else {})
        await api_admin.set_roles(user_id, body, services_of(request), who.actor, request_id)
        return f"/admin/users/{user_id}"

    async def again(errors: FormErrors, status: int) -> Response:
        return await _user_page(request, who, user_id, roles=roles, errors=errors, form="roles", status=status)

    own_admin_role = who._("You cannot remove your own administrator role; ask another administrator.")
    return await _apply(request, who, form, action, who._("The roles are saved."), again,
                        conflict=lambda _e: FormErrors({"roles": own_admin_role}))


@router.post("/admin/users/{user_id}/disable")
async def disable_user(request: Request, user_id: str) -> Response:
    """No more sign-in; the user's sessions and API tokens end at once."""
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    if refused := await _admins_only(request, who):
        return refused
    await _user_or_404(request, user_id)

    async def action(request_id: str) -> str:
        await api_admin.disable(user_id, services_of(request), who.actor, request_id)
        return f"/admin/users/{user_id}"

    async def again(errors: FormErrors, status: int) -> Response:
        return await _user_page(request, who, user_id, errors=errors, form="status", status=status)

    return await _apply(request, who, form, action,
                        who._("The account is disabled; its sessions and API tokens are revoked."), again,
                        conflict=lambda _e: FormErrors(general=who._("You cannot disable your own account.")))


@router.post("/admin/users/{user_id}/enable")
async def enable_user(request: Request, user_id: str) -> Response:
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    if refused := await _admins_only(request, who):
        return refused
    await _user_or_404(request, user_id)

    async def action(request_id: str) -> str:
        await api_admin.enable(user_id, services_of(request), who.actor, request_id)
        return f"/admin/users/{user_id}"

    async def again(errors: FormErrors, status: int) -> Response:
        return await _user_page(request, who, user_id, errors=errors, form="status", status=status)

    return await _apply(request, who, form, action, who._("The account is enabled again."), again)


# ---------------------------------------------------------------- departments


def _tree(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The flat list (path order) as nested nodes, for a nested list on the page."""
    nodes = {r["name"]: {**r, "children": []} for r in rows}
    roots = []
    for row in rows:
        parent = nodes.get(row["parent"]) if row["parent"] else None
        (parent["children"] if parent else roots).append(nodes[row["name"]])
    return roots


async def _departments_page(request: Request, who: Viewer, values: dict[str, str] | None = None,
                            errors: FormErrors | None = None, failed: str = "", status: int = 200) -> Response:
    rows = await api_admin.list_departments(services_of(request), who.actor)
    return await render(request, who, "admin/departments.html", status, section="departments",
                        tree=_tree(rows), departments=[(d["name"], d["path"].replace("/", " / ")) for d in rows],
                        values=values or {}, errors=errors, failed=failed)


@router.get("/admin/departments")
async def departments_page(request: Request) -> Response:
    who = await viewer(request)
    if refused := await _admins_only(request, who):
        return refused
    return await _departments_page(request, who)


@router.post("/admin/departments")
async def create_department(request: Request) -> Response:
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    if refused := await _admins_only(request, who):
        return refused
    values = _text(form, "name", "parent")

    async def action(request_id: str) -> str:
        body = DepartmentIn.model_validate({"name": values["name"], "parent": values["parent"] or None})
        await api_admin.create_department(body, services_of(request), who.actor, request_id)
        return "/admin/departments"

    async def again(errors: FormErrors, status: int) -> Response:
        errors = _no_such_department(errors, status, values, "parent", who)
        return await _departments_page(request, who, values, errors, "create", status)

    return await _apply(request, who, form, action, who._("Department %(name)s created.", name=values["name"]),
                        again, conflict=lambda _e: FormErrors({"name": who._("A department of this name exists.")}))


@router.post("/admin/departments/move")
async def move_department(request: Request) -> Response:
    """Place a department under another, or at the top; never under itself or its own sub-departments."""
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    if refused := await _admins_only(request, who):
        return refused
    values = _text(form, "department", "new_parent")

    async def action(request_id: str) -> str:
        if not values["department"]:
            raise FormErrors({"department": who._("This field is required.")})
        body = DepartmentMove.model_validate({"parent": values["new_parent"] or None})
        await api_admin.move_department(values["department"], body, services_of(request), who.actor, request_id)
        return "/admin/departments"

    async def again(errors: FormErrors, status: int) -> Response:
        if status == 404:  # the department to move is not in the tree (any more)
            errors, status = FormErrors({"department": who._("There is no such department.")}), 422
        errors = _no_such_department(errors, status, values, "new_parent", who)
        return await _departments_page(request, who, values, errors, "move", status)

    return await _apply(request, who, form, action,
                        who._("Department %(name)s moved.", name=values["department"]), again,
                        names={"parent": "new_parent"}, conflict=lambda _e: FormErrors(
                            {"new_parent": who._("A department cannot sit under itself or its own sub-departments.")}))


# ---------------------------------------------------------------- reminder policies


async def _policy_readers_only(request: Request, who: Viewer) -> Response | None:
    if who.may("admin", "leader"):
        return None
    return await _forbidden(request, who, who._("Only administrators and leaders see the reminder policies here."))


async def _policy_editors_only(request: Request, who: Viewer) -> Response | None:
    if who.may(*api_reminders.SETTINGS_EDITORS):
        return None
    return await _forbidden(request, who, who._("Only administrators may change reminder policies."))


@router.get("/admin/policies")
async def policies_page(request: Request, q: str = "") -> Response:
    """The office default, and each organization with the policy its projects follow."""
    who = await viewer(request)
    if refused := await _policy_readers_only(request, who):
        return refused
    q = _plain(q)[:200]
    async with services_of(request).pool.acquire() as conn:
        organizations = await queries.list_organizations(conn, None, q or None)
        own = {o["id"]: await current_policy(conn, PolicyScope.organization, o["id"]) for o in organizations}
    return await render(request, who, "admin/policies.html", section="policies", organizations=organizations,
                        own=own, q=q, default=DEFAULT_POLICY, kinds=dict(_options(KIND_LABELS, who)),
                        recipients=dict(_options(RECIPIENT_LABELS, who)))


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


def _organization_id(text: str) -> str:
    """A path id the API would accept (domain.types.Identifier); anything else cannot exist."""
    if not _ID.match(text):
        raise not_found("organization")
    return text


async def _policy_page(request: Request, who: Viewer, organization_id: str, values: dict[str, str] | None = None,
                       errors: FormErrors | None = None, status: int = 200) -> Response:
    organization_id = _organization_id(organization_id)
    view = await api_reminders.organization_policy(organization_id, services_of(request), who.actor)
    async with services_of(request).pool.acquire() as conn:
        organization = await queries.organization(conn, organization_id)
    return await render(request, who, "admin/policy.html", status, section="policies", organization=organization,
                        view=view, default=DEFAULT_POLICY, errors=errors,
                        values=values if values is not None else _policy_values(view.effective),
                        rows=range(ESCALATION_ROWS), recipients=dict(_options(RECIPIENT_LABELS, who)),
                        recipient_options=_options(RECIPIENT_LABELS, who), may_edit=who.may("admin"))


@router.get("/admin/policies/{organization_id}")
async def policy_page(request: Request, organization_id: str) -> Response:
    who = await viewer(request)
    if refused := await _policy_readers_only(request, who):
        return refused
    return await _policy_page(request, who, organization_id)


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


POLICY_FIELDS = ("name", "before_working_days", "on_due_date", "overdue_every_days", "recipient", "note",
                 *(f"escalation-{i}-{part}" for i in range(ESCALATION_ROWS)
                   for part in ("after_working_days", "recipient")))


@router.post("/admin/policies/{organization_id}")
async def set_policy(request: Request, organization_id: str) -> Response:
    """A new version of the organization's policy; its open projects reschedule their reminders."""
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    if refused := await _policy_editors_only(request, who):
        return refused
    organization_id = _organization_id(organization_id)
    values = _text(form, *POLICY_FIELDS)
    data, rows = _policy_in(values)

    async def action(request_id: str) -> str:
        body = PolicyIn.model_validate(data)
        await api_reminders.set_organization_policy(organization_id, body, services_of(request), who.actor,
                                                    request_id)
        return f"/admin/policies/{organization_id}"

    async def again(errors: FormErrors, status: int) -> Response:
        return await _policy_page(request, who, organization_id, values, _policy_errors(errors, rows, who), status)

    return await _apply(request, who, form, action, who._("The reminder policy is saved as a new version."), again)


@router.post("/admin/policies/{organization_id}/remove")
async def remove_policy(request: Request, organization_id: str) -> Response:
    """The organization's projects go back to the office default (a new, empty version: history stays)."""
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    if refused := await _policy_editors_only(request, who):
        return refused
    organization_id = _organization_id(organization_id)

    async def action(request_id: str) -> str:
        await api_reminders.remove_organization_policy(organization_id, services_of(request), who.actor, request_id)
        return f"/admin/policies/{organization_id}"

    async def again(errors: FormErrors, status: int) -> Response:
        return await _policy_page(request, who, organization_id, None, errors, status)

    return await _apply(request, who, form, action,
                        who._("The organization's projects now follow the office default policy."), again)
