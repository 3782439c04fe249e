"""One shape for every form that acts on a record: run it once, then redirect with a message,
or show the same page again with the typed values and the errors.

A page that holds several forms (the cooperation page has a dozen) is rendered again with
`FormState` naming the form that failed; its template opens that form, fills it with what
was typed and puts each error next to its field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response
from pydantic import ValidationError
from starlette.datastructures import FormData
from temporalio.service import RPCError

from api.errors import ApiError
from domain.errors import DomainError
from web.formats import parse_money
from web.forms import MONEY_MESSAGES, FormErrors, redirect, refusal, run_once, validation_errors
from web.session import Viewer, check_form


@dataclass
class FormState:
    """The form to show open, what was typed into it, and what was wrong."""

    name: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    errors: FormErrors | None = None

    def open(self, name: str) -> bool:
        return self.name == name

    def values_for(self, name: str) -> dict[str, str]:
        return self.values if self.name == name else {}

    def errors_for(self, name: str) -> FormErrors | None:
        return self.errors if self.name == name else None


async def read_form(request: Request, who: Viewer) -> dict[str, str]:
    """The posted fields as text (the last of repeated names), after the CSRF check."""
    return form_text(await posted_form(request, who))


async def posted_form(request: Request, who: Viewer) -> FormData:
    """The posted form after the CSRF check, for a form whose field repeats (checkboxes: `getlist`)."""
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    return form


def form_text(form: FormData) -> dict[str, str]:
    """The text fields of a posted form (the last of repeated names), as `perform` takes them."""
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def perform(request: Request, who: Viewer, form_name: str, values: dict[str, str],
                  action: Callable[[str], Awaitable[str]], done: str,
                  again: Callable[[FormState, int], Awaitable[Response]]) -> Response:
    """Run `action(request_id)` (once per form, web/forms.py) and redirect where it says with the
    message `done`; or call `again` with the form's state and the HTTP status to answer."""
    try:
        location = await run_once(request, who, values.get("form_key"), action)
    except ValidationError as error:
        errors = validation_errors(error, who._)
    except (ApiError, DomainError) as error:
        errors = refusal(error, who._)
    except FormErrors as error:
        errors = error
    except RPCError:
        errors = FormErrors(general=who._("The service is unavailable right now; nothing was changed. Try again."),
                            status=503)
    else:
        return redirect(location, who, done)
    # A form that lost a race shows the record as it is now, not the values typed over the old one.
    kept = {} if errors.stale else {k: v for k, v in values.items() if k not in ("csrf_token", "form_key")}
    return await again(FormState(form_name, kept, errors), errors.status)


# ---------------------------------------------------------------- reading typed values


def text(values: dict[str, str], name: str) -> str | None:
    """A text field: None when left empty (the model then says whether it is required)."""
    value = values.get(name, "").strip()
    return value or None


def day(values: dict[str, str], name: str) -> str | None:
    """A native date input sends YYYY-MM-DD; pydantic parses it (and words the error)."""
    return text(values, name)


def lines(values: dict[str, str], name: str) -> list[str]:
    """A textarea of one entry per line (participants, areas); also split on 、，, and ;."""
    raw = values.get(name, "")
    for separator in ("、", "，", ",", ";", "；"):
        raw = raw.replace(separator, "\n")
    return [part.strip() for part in raw.splitlines() if part.strip()]


def money(values: dict[str, str], name: str, who: Viewer) -> Any:
    """An amount typed in 元 or 万元 as exact yuan, or FormErrors naming the field."""
    try:
        return parse_money(values.get(name, ""), values.get(f"{name}_unit", "wan"))
    except ValueError as error:
        raise FormErrors({name: who._(MONEY_MESSAGES.get(str(error), MONEY_MESSAGES["not_a_number"]))}) from None


def version(values: dict[str, str]) -> int | None:
    """The record's version the form was rendered from (hidden `version`), for If-Match."""
    raw = values.get("version", "")
    return int(raw) if raw.isdigit() and len(raw) < 18 else None


def today_iso() -> str:
    from api.services import office_today

    return office_today().isoformat()

