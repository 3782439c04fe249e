"""Importing a project list from a page: upload (.xlsx or CSV) → preview with every error by row and
column → confirm → what each row became, with links.

Everything goes through the API's own functions (api/routes/imports.py): the same parsing,
validation, limits, access rule (a liaison officer, for their own department) and workflow
actions; the page only turns the form into a call and the answer into a page. A batch is its
uploader's: anyone else's answers the 404 page.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, Response

from api.errors import ApiError
from api.routes import imports as api_imports
from domain.errors import DomainError
from imports.columns import COLUMNS
from web.forms import FormErrors, redirect, refusal, run_once
from web.pages import render
from web.session import Viewer, check_form, services_of, viewer

router = APIRouter()
SHOWN_ROWS = 200
"""Rows listed on the preview page; every error is listed whatever the file's length."""


@router.get("/imports")
async def upload_page(request: Request) -> Response:
    who = await viewer(request)
    return await render(request, who, "imports.html", batch=None, columns=COLUMNS, errors=None)


@router.post("/imports")
async def upload(request: Request) -> Response:
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    file = form.get("file")
    if file is None or isinstance(file, str) or not file.filename:
        return await _upload_again(request, who, FormErrors({"file": who._("Choose a .xlsx or CSV file.")}))
    data = await file.read(services_of(request).max_body_bytes + 1)

    async def action(request_id: str) -> str:
        api_imports.check_importer(who.actor)
        answer = await api_imports.preview(services_of(request), who.actor, file.filename, data)
        return f"/imports/{answer['id']}"

    try:
        location = await run_once(request, who, str(form.get("form_key", "")), action)
    except (ApiError, DomainError) as error:
        return await _upload_again(request, who, _upload_refusal(error, who))
    return redirect(location, who, who._("The file was read. Check the rows below, then confirm the import."))


def _upload_refusal(error: ApiError | DomainError, who: Viewer) -> FormErrors:
    """An unreadable (422) or too big (413) file is the file field's error; the rest as any refusal."""
    if isinstance(error, ApiError) and error.status == 413:
        return FormErrors({"file": who._("The file is too big: %(reason)s", reason=error.detail)}, status=413)
    if isinstance(error, ApiError) and error.status == 422:
        return FormErrors({"file": who._("This file cannot be read: %(reason)s", reason=error.detail)})
    return refusal(error, who._)


async def _upload_again(request: Request, who: Viewer, errors: FormErrors) -> Response:
    return await render(request, who, "imports.html", status_code=errors.status, batch=None, columns=COLUMNS,
                        errors=errors)


@router.get("/imports/{batch_id}")
async def batch_page(request: Request, batch_id: str) -> Response:
    who = await viewer(request)
    return await _batch(request, who, batch_id)


async def _batch(request: Request, who: Viewer, batch_id: str, errors: FormErrors | None = None) -> Response:
    batch = await api_imports.answer(services_of(request), who.actor, batch_id)  # 404 unless the uploader's
    return await render(request, who, "imports.html", status_code=errors.status if errors else 200,
                        batch=batch, shown_rows=[_typed(r) for r in batch["rows"][:SHOWN_ROWS]],
                        results=_results(batch), errors=errors)


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row with its amount as the exact Decimal the money filters take (JSON keeps it as text)."""
    committed = row["values"].get("committed")
    return {**row, "values": {**row["values"], "committed": Decimal(committed) if committed else None}}


def _results(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Each result with its row's values, for the links and titles of the result table."""
    rows = {r["row"]: r for r in batch["rows"]}
    return [{**result, "values": rows.get(result["row"], {}).get("values", {})} for result in batch["results"]]


@router.post("/imports/{batch_id}/confirm")
async def confirm(request: Request, batch_id: str) -> Response:
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    skip_invalid = form.get("skip_invalid") in ("1", "on", "true")

    async def action(request_id: str) -> str:
        await api_imports.apply_batch(services_of(request), who.actor, batch_id, skip_invalid)
        return f"/imports/{batch_id}"

    try:
        location = await run_once(request, who, str(form.get("form_key", "")), action)
    except (ApiError, DomainError) as error:
        if isinstance(error, ApiError) and error.status == 404:
            raise
        return await _batch(request, who, batch_id, refusal(error, who._))
    batch = await api_imports.answer(services_of(request), who.actor, batch_id)
    outcomes = [r["outcome"] for r in batch["results"]]
    return redirect(location, who, who._(
        "Import done: %(created)s created, %(existing)s already in Accord, %(skipped)s skipped, %(failed)s refused.",
        created=outcomes.count("created"), existing=outcomes.count("existing"), skipped=outcomes.count("skipped"),
        failed=outcomes.count("failed")))
