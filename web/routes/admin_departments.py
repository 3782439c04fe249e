"""Administration of the department tree: see it, add a department, move one (admins only).

Each change runs the API's handler (api/routes/admin.py): its checks, among them that the tree
never becomes a loop, and its audit events.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from api.admin_schemas import DepartmentIn, DepartmentMove
from api.routes import admin as api_admin
from web.actions import posted_form
from web.admin_forms import admins_only, apply, department_choices, no_such_department, typed
from web.forms import FormErrors
from web.pages import render
from web.session import Viewer, services_of, viewer

router = APIRouter()


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
    """The tree and its two forms; `failed` names the form ("create" or "move") `errors` belong to."""
    rows = await api_admin.list_departments(services_of(request), who.actor)
    return await render(request, who, "admin/departments.html", status, section="departments",
                        tree=_tree(rows), departments=department_choices(rows),
                        values=values or {}, errors=errors, failed=failed)


@router.get("/admin/departments")
async def departments_page(request: Request) -> Response:
    who = await viewer(request)
    if refused := await admins_only(request, who):
        return refused
    return await _departments_page(request, who)


@router.post("/admin/departments")
async def create_department(request: Request) -> Response:
    who = await viewer(request)
    form = await posted_form(request, who)
    if refused := await admins_only(request, who):
        return refused
    values = typed(form, "name", "parent")

    async def action(request_id: str) -> str:
        body = DepartmentIn.model_validate({"name": values["name"], "parent": values["parent"] or None})
        await api_admin.create_department(body, services_of(request), who.actor, request_id)
        return "/admin/departments"

    async def again(errors: FormErrors, status: int) -> Response:
        errors = no_such_department(errors, status, values, "parent", who)
        return await _departments_page(request, who, values, errors, "create", status)

    return await apply(request, who, form, action, who._("Department %(name)s created.", name=values["name"]),
                       again, conflict=FormErrors({"name": who._("A department of this name exists.")}))


@router.post("/admin/departments/move")
async def move_department(request: Request) -> Response:
    """Place a department under another, or at the top; never under itself or its own sub-departments."""
    who = await viewer(request)
    form = await posted_form(request, who)
    if refused := await admins_only(request, who):
        return refused
    values = typed(form, "department", "new_parent")

    async def action(request_id: str) -> str:
        if not values["department"]:
            raise FormErrors({"department": who._("This field is required.")})
        body = DepartmentMove.model_validate({"parent": values["new_parent"] or None})
        await api_admin.move_department(values["department"], body, services_of(request), who.actor, request_id)
        return "/admin/departments"

    async def again(errors: FormErrors, status: int) -> Response:
        if status == 404:  # the department to move is not in the tree (any more)
            errors, status = FormErrors({"department": who._("There is no such department.")}), 422
        errors = no_such_department(errors, status, values, "new_parent", who)
        return await _departments_page(request, who, values, errors, "move", status)

    loop = who._("A department cannot sit under itself or its own sub-departments.")
    return await apply(request, who, form, action, who._("Department %(name)s moved.", name=values["department"]),
                       again, names={"parent": "new_parent"}, conflict=FormErrors({"new_parent": loop}))
