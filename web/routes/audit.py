"""The audit trail for auditors: search with the API's filters, page through, export as CSV.

Everything runs through the API's own handlers (api/routes/audit.py): the same filter
checks, the same queries (db/audit_queries.py) and the same record of who searched or
exported what (`audit.searched`, `audit.exported`). Only the time range differs in form:
people pick days, which are read as whole days of office time (Asia/Shanghai).
Anyone but an auditor gets a 403 page, which the API's middleware records like any 403.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from api.routes import audit as api_audit
from db.audit_queries import AuditFilter
from domain import access
from domain.audit import OFFICE_TZ
from domain.types import Identifier, Name
from web.forms import FormErrors, validation_errors
from web.i18n import N_
from web.labels import action_label
from web.pages import render
from web.session import Viewer, services_of, viewer

router = APIRouter()
PAGE_SIZE = 50
FILTERS = ("q", "action", "outcome", "entity_type", "entity_id", "cooperation_id", "project_id", "actor_id",
           "actor_department", "since", "until")
OUTCOMES = {"succeeded": N_("Succeeded"), "refused": N_("Refused"), "failed": N_("Failed")}
SHOWN_CHANGES = 6
"""Changed fields listed in a row; the whole before and after are one click away."""


class AuditSearch(BaseModel):
    """The API's filters (api/routes/audit.py `audit_filter`) as a form sends them: days instead of instants."""

    model_config = ConfigDict(extra="ignore")

    q: Name | None = None
    action: Name | None = None
    outcome: Literal["succeeded", "refused", "failed"] | None = None
    entity_type: Name | None = None
    entity_id: Identifier | None = None
    cooperation_id: Identifier | None = None
    project_id: Identifier | None = None
    actor_id: Identifier | None = None
    actor_department: Name | None = None
    since: date | None = None
    """The first day, from 00:00 office time."""
    until: date | None = None
    """The last day, included."""


def _typed(request: Request) -> dict[str, str]:
    """The filters as typed (kept in the form), without empty ones."""
    return {name: value.strip() for name in FILTERS if (value := request.query_params.get(name, "")).strip()}


def _filter(values: dict[str, str], who: Viewer) -> AuditFilter:
    """The API's filter for what the form holds, or FormErrors to show next to the fields."""
    try:
        search = AuditSearch.model_validate(values)
    except ValidationError as error:
        raise validation_errors(error, who._) from None
    if search.since and search.until and search.until < search.since:
        raise FormErrors({"until": who._("The last day must not be before the first day.")})
    since = datetime.combine(search.since, time(0), OFFICE_TZ) if search.since else None
    until = datetime.combine(search.until + timedelta(days=1), time(0), OFFICE_TZ) if search.until else None
    fields = search.model_dump(exclude={"since", "until"})
    return api_audit.audit_filter(**fields, since=since, until=until)


async def _refuse_non_auditor(request: Request, who: Viewer) -> Response | None:
    """The 403 page for anyone the API would refuse (domain/access.py check_audit_reader)."""
    try:
        access.check_audit_reader(who.actor)
    except access.Forbidden:
        return await render(request, who, "error.html", 403, status=403, title=who._("You may not do this"),
                            message=who._("Only auditors may search or export the audit trail."))
    return None


def _cursor(text: str) -> int | None:
    """The `next_cursor` of a previous page; anything else starts at the newest event."""
    return int(text) if text.isdigit() and 0 < int(text) < 2**63 else None


async def _asked(request: Request, who: Viewer):  # noqa: ANN202  (values and filter, or the page to answer)
    """The search the query string asks for, or the answer instead: 403 for a non-auditor, the
    form again with its errors (422) for filters that do not parse."""
    if refused := await _refuse_non_auditor(request, who):
        return refused
    values = _typed(request)
    try:
        return values, _filter(values, who)
    except FormErrors as errors:
        return await _page(request, who, values, errors=errors, status_code=422)


@router.get("/audit")
async def audit_page(request: Request, cursor: str = "") -> Response:
    who = await viewer(request)
    asked = await _asked(request, who)
    if isinstance(asked, Response):
        return asked
    values, f = asked
    after = _cursor(cursor)
    page = await api_audit.search(request, f, services_of(request), who.actor, limit=PAGE_SIZE, cursor=after)
    return await _page(request, who, values, events=[_row(e, who) for e in page["items"]],
                       next_cursor=page["next_cursor"], paged=after is not None)


async def _page(request: Request, who: Viewer, values: dict[str, str], *, events: list | None = None,
                next_cursor: int | None = None, paged: bool = False, errors: FormErrors | None = None,
                status_code: int = 200) -> Response:
    query = urlencode(values)
    return await render(request, who, "audit.html", status_code, values=values, errors=errors,
                        events=events or [], searched=events is not None, next_cursor=next_cursor, paged=paged,
                        query=query, outcomes=[(k, who._(v)) for k, v in OUTCOMES.items()],
                        outcome_labels={k: who._(v) for k, v in OUTCOMES.items()})


@router.get("/audit/export.csv")
async def export_csv(request: Request) -> Response:
    """Every matching event as CSV (UTF-8 with BOM for Excel), named after the moment of export."""
    who = await viewer(request)
    asked = await _asked(request, who)
    if isinstance(asked, Response):
        return asked
    _values, f = asked
    response = await api_audit.export(request, f, services_of(request), who.actor, format="csv")
    stamp = datetime.now(OFFICE_TZ).strftime("%Y%m%d-%H%M%S")
    response.headers["Content-Disposition"] = f'attachment; filename="accord-audit-{stamp}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------- one event as a table row


def _row(event: dict[str, Any], who: Viewer) -> dict[str, Any]:
    before, after = event.get("before") or {}, event.get("after") or {}
    changes = _changes(before, after)
    return {**event, "action_label": action_label(event["action"], who._), "changes": changes[:SHOWN_CHANGES],
            "more_changes": max(0, len(changes) - SHOWN_CHANGES), "before_json": _pretty(before),
            "after_json": _pretty(after)}


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """(field, before, after) of each field the event names whose value differs, in a short form;
    before is None for a field the event only sets (a creation, an access's details)."""
    keys = list(before) + [k for k in after if k not in before]
    return [(k, _short(before[k]) if k in before else None, _short(after.get(k)))
            for k in keys if before.get(k) != after.get(k)]


def _short(value: Any, limit: int = 80) -> str:
    if value is None:
        return "–"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pretty(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str) if value else ""
