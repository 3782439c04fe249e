"""What the administration pages (web/routes/admin*.py) share: who may use them, how their forms
read what was typed, and how a form runs the API's action and words what went wrong.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import Request, Response
from starlette.datastructures import FormData

from api.routes import admin as api_admin
from web.actions import FormState, form_text, perform
from web.forms import FormErrors
from web.i18n import N_
from web.pages import render
from web.session import Viewer, services_of

IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
"""A path id the API would accept (domain.types.Identifier); anything else cannot exist."""
ADMINS_ONLY = N_("Only administrators may manage users and departments.")

Again = Callable[[FormErrors, int], Awaitable[Response]]
"""Show the form again with these errors, answering this HTTP status."""


# ---------------------------------------------------------------- who may


async def forbidden(request: Request, who: Viewer, message: str) -> Response:
    return await render(request, who, "error.html", 403, status=403, title=who._("You may not do this"),
                        message=message)


async def admins_only(request: Request, who: Viewer) -> Response | None:
    """The 403 page for anyone but an admin (the API's `_admin_only` would refuse them too)."""
    if who.may("admin"):
        return None
    return await forbidden(request, who, who._(ADMINS_ONLY))


# ---------------------------------------------------------------- running a form


async def apply(request: Request, who: Viewer, form: FormData, action: Callable[[str], Awaitable[str]],
                done: str, again: Again, *, conflict: FormErrors | None = None,
                names: Mapping[str, str] | None = None) -> Response:
    """`perform` (web/actions.py) for an admin form: run the API's action once and redirect with `done`,
    or show the form again through `again`.

    It differs only in what `again` is given. The admin pages show their own cleaned values
    again (`typed`), not perform's raw ones, so `again` gets the errors alone. `names` moves an
    error from the API's field name to this form's input; `conflict` replaces a 409, whose reason
    the API gives in English and for no field, by the page's own words (next to the field to blame)."""

    async def shown(state: FormState, status: int) -> Response:
        if conflict is not None and status == 409:
            return await again(conflict, status)
        return await again(renamed(state.errors or FormErrors(), names or {}), status)

    return await perform(request, who, "", form_text(form), action, done, shown)


def renamed(errors: FormErrors, names: Mapping[str, str]) -> FormErrors:
    """The API's field names as this form names its inputs."""
    return FormErrors({names.get(k, k): v for k, v in errors.fields.items()}, errors.general)


def no_such_department(errors: FormErrors, status: int, values: dict[str, str], field: str,
                       who: Viewer) -> FormErrors:
    """A department chosen from the list that is not in the tree (any more): the API's 422 says so in English."""
    if status == 422 and values.get(field) and field in errors.fields:
        errors.fields[field] = who._("There is no such department.")
    return errors


# ---------------------------------------------------------------- what was typed


def plain(text: str) -> str:
    """Typed text as the database can hold it: stripped, and without NUL (never typed by a person)."""
    return text.replace("\x00", "").strip()


def typed(form: FormData, *names: str) -> dict[str, str]:
    """The typed values of these fields (to show again and to validate)."""
    return {name: plain(str(form.get(name, ""))) for name in names}


def filled(values: dict[str, str]) -> dict[str, str]:
    """Blank fields left out, so that a required one says "required" rather than "wrong format"."""
    return {k: v for k, v in values.items() if v}


# ---------------------------------------------------------------- choices


def options(labels: dict[Any, str], who: Viewer) -> list[tuple[str, str]]:
    return [(str(k), who._(v)) for k, v in labels.items()]


def department_choices(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Departments as a select's options: the name, labelled by its path from the top."""
    return [(d["name"], d["path"].replace("/", " / ")) for d in rows]


async def department_options(request: Request, who: Viewer) -> list[tuple[str, str]]:
    return department_choices(await api_admin.list_departments(services_of(request), who.actor))
