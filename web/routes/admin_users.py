"""Administration of users: the list, a new user, and one user's details, roles and sign-in (admins only).

Each change runs the API's handler (api/routes/admin.py): its checks, among them that no admin
drops their own admin role or disables themselves, and its audit events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response

from api.admin_schemas import RolesIn, UserChange, UserIn
from api.errors import not_found
from api.routes import admin as api_admin
from db import departments as tree
from web.actions import posted_form
from web.admin_forms import (
    IDENTIFIER,
    admins_only,
    apply,
    department_options,
    filled,
    no_such_department,
    options,
    plain,
    typed,
)
from web.forms import FormErrors
from web.i18n import N_
from web.pages import render
from web.session import Viewer, services_of, viewer
from web.vocabulary import LABELS

router = APIRouter()

ROLE_LABELS = LABELS["role"]
LANGUAGE_LABELS = {"zh": "中文", "en": "English"}
DETAILS = ("display_name", "department", "email", "language")
"""The fields of a user's details form (the new-user form adds the username)."""


# ---------------------------------------------------------------- the list and a new user


@router.get("/admin/users")
async def users_page(request: Request, department: str = "", role: str = "") -> Response:
    who = await viewer(request)
    if refused := await admins_only(request, who):
        return refused
    department = plain(department)[:200]
    chosen_role = role if role in ROLE_LABELS else None
    users = await api_admin.list_users(services_of(request), who.actor, department=department or None,
                                       role=chosen_role)  # type: ignore[arg-type]
    return await render(request, who, "admin/users.html", users=users, section="users",
                        values={"department": department, "role": chosen_role or ""},
                        departments=await department_options(request, who),
                        roles=options(ROLE_LABELS, who), role_labels=dict(options(ROLE_LABELS, who)))


async def _new_user_page(request: Request, who: Viewer, values: dict[str, str], roles: list[str],
                         errors: FormErrors | None = None, status: int = 200) -> Response:
    return await render(request, who, "admin/user_new.html", status, section="users", values=values,
                        checked_roles=roles, errors=errors, departments=await department_options(request, who),
                        roles=options(ROLE_LABELS, who), languages=list(LANGUAGE_LABELS.items()))


@router.get("/admin/users/new")
async def new_user_page(request: Request) -> Response:
    who = await viewer(request)
    if refused := await admins_only(request, who):
        return refused
    return await _new_user_page(request, who, {"language": "zh"}, [])


@router.post("/admin/users")
async def create_user(request: Request) -> Response:
    who = await viewer(request)
    form = await posted_form(request, who)
    if refused := await admins_only(request, who):
        return refused
    values = typed(form, "username", *DETAILS)
    roles = [str(r) for r in form.getlist("roles")]

    async def action(request_id: str) -> str:
        body = UserIn.model_validate({**filled(values), **({"roles": roles} if roles else {})})
        created = await api_admin.create_account(body, services_of(request), who.actor, request_id)
        return f"/admin/users/{created['id']}"

    async def again(errors: FormErrors, status: int) -> Response:
        return await _new_user_page(request, who, values, roles, _details_errors(errors, status, values, who), status)

    return await apply(request, who, form, action,
                       who._("User %(username)s created. They sign in once a password is set "
                             "(accord user set-password).", username=values["username"]),
                       again, conflict=FormErrors({"username": who._("This username is taken.")}))


def _details_errors(errors: FormErrors, status: int, values: dict[str, str], who: Viewer) -> FormErrors:
    """The API's English words about a user's email and department, in the user's language."""
    if "email" in errors.fields:  # the address check explains itself in English (api/notice_schemas.py)
        errors.fields["email"] = who._("Enter one email address, e.g. li.wei@mianyang.gov.cn.")
    return no_such_department(errors, status, values, "department", who)


# ---------------------------------------------------------------- one user


async def _user_or_404(request: Request, user_id: str) -> Any:
    row = None
    if IDENTIFIER.match(user_id):
        async with services_of(request).pool.acquire() as conn:
            row = await tree.user(conn, user_id)
    if row is None:
        raise not_found("user")
    return row


def _details(user: Any) -> dict[str, str]:
    """The user's details as their form shows them (no department or email: empty)."""
    return {"display_name": user["display_name"], "department": user["department"] or "",
            "email": user["email"] or "", "language": user["language"]}


async def _user_page(request: Request, who: Viewer, user_id: str, *, values: dict[str, str] | None = None,
                     roles: list[str] | None = None, errors: FormErrors | None = None, form: str = "",
                     status: int = 200) -> Response:
    """One user: details, roles, disable/enable. `form` names the form `errors` and `values` belong to."""
    user = await _user_or_404(request, user_id)
    return await render(request, who, "admin/user.html", status, section="users", user=user,
                        values=values if form == "details" and values is not None else _details(user),
                        checked_roles=roles if form == "roles" and roles is not None else list(user["roles"]),
                        errors=errors, failed=form, departments=await department_options(request, who),
                        roles=options(ROLE_LABELS, who), role_labels=dict(options(ROLE_LABELS, who)),
                        languages=list(LANGUAGE_LABELS.items()), is_self=user["id"] == who.user.id)


@router.get("/admin/users/{user_id}")
async def user_page(request: Request, user_id: str) -> Response:
    who = await viewer(request)
    if refused := await admins_only(request, who):
        return refused
    return await _user_page(request, who, user_id)


@router.post("/admin/users/{user_id}")
async def change_user(request: Request, user_id: str) -> Response:
    """Name, department, email, language: only the fields that differ are sent (and audited)."""
    who = await viewer(request)
    form = await posted_form(request, who)
    if refused := await admins_only(request, who):
        return refused
    current = _details(await _user_or_404(request, user_id))
    values = typed(form, *DETAILS)
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
        errors = _details_errors(errors, status, values, who)
        return await _user_page(request, who, user_id, values=values, errors=errors, form="details", status=status)

    done = who._("The user's details are saved.") if changes else who._("Nothing was changed.")
    return await apply(request, who, form, action, done, again)


@router.post("/admin/users/{user_id}/roles")
async def change_roles(request: Request, user_id: str) -> Response:
    who = await viewer(request)
    form = await posted_form(request, who)
    if refused := await admins_only(request, who):
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
    return await apply(request, who, form, action, who._("The roles are saved."), again,
                       conflict=FormErrors({"roles": own_admin_role}))


# ---------------------------------------------------------------- sign-in: disable and enable


@router.post("/admin/users/{user_id}/disable")
async def disable_user(request: Request, user_id: str) -> Response:
    """No more sign-in; the user's sessions and API tokens end at once."""
    return await _set_sign_in(request, user_id, api_admin.disable,
                              N_("The account is disabled; its sessions and API tokens are revoked."),
                              refused_self=N_("You cannot disable your own account."))


@router.post("/admin/users/{user_id}/enable")
async def enable_user(request: Request, user_id: str) -> Response:
    return await _set_sign_in(request, user_id, api_admin.enable, N_("The account is enabled again."))


async def _set_sign_in(request: Request, user_id: str, change: Callable[..., Awaitable[Any]], done: str,
                       refused_self: str | None = None) -> Response:
    """The user page's status form: `change` is the API's disable or enable; `done` and
    `refused_self` (the API's 409: an admin may not do this to their own account) are message ids."""
    who = await viewer(request)
    form = await posted_form(request, who)
    if refused := await admins_only(request, who):
        return refused
    await _user_or_404(request, user_id)

    async def action(request_id: str) -> str:
        await change(user_id, services_of(request), who.actor, request_id)
        return f"/admin/users/{user_id}"

    async def again(errors: FormErrors, status: int) -> Response:
        return await _user_page(request, who, user_id, errors=errors, form="status", status=status)

    return await apply(request, who, form, action, who._(done), again,
                       conflict=FormErrors(general=who._(refused_self)) if refused_self else None)
