"""Importing an existing project list: upload (preview), read a preview, confirm.

`POST /imports` (multipart, field `file`: .xlsx or CSV) parses and validates the file and
stores the result as a batch, writing nothing else: 201 with the counts, every row's status
and every error as (row, column, reason). `POST /imports/{id}/confirm` applies the valid rows
through the normal workflow actions (imports/apply.py); while the file has errors it refuses
(409) unless `skip_invalid=true`. A batch is its uploader's: anyone else gets 404.

The same file twice does not duplicate: rows whose partner already has a project of the same
title are "existing" at preview and again at confirmation, a confirmed batch answers its
results again, and every action of a row has a request id derived from the file's SHA-256
and the row number, so even two confirmations racing each other name the same records.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile, status
from pydantic import ValidationError

from api.errors import ApiError, conflict, field_error, not_found
from api.services import ActorDep, Services, ServicesDep, office_today
from db import imports as store
from domain import access
from domain.audit import Actor
from domain.errors import DomainError
from domain.types import Identifier
from imports.apply import Source, apply_row
from imports.parse import Unreadable, read
from imports.validate import TooManyRows, validate

router = APIRouter(prefix="/imports", tags=["imports"])
MAX_ROWS = 10_000
"""Data rows one import takes; a longer list is split (413)."""
SkipInvalid = Annotated[bool, Query(description="Import the valid rows of a file that has errors, skip the others")]


def check_importer(actor: Actor) -> None:
    """Importing opens cooperations: a liaison officer, for their own department."""
    access.check_create_cooperation(actor, actor.department)


@router.post("", status_code=status.HTTP_201_CREATED)
async def upload(services: ServicesDep, actor: ActorDep,
                 file: Annotated[UploadFile | None, File(description="The project list: .xlsx or CSV")] = None,
                 ) -> dict[str, Any]:
    """Parse and validate a project list; nothing but the preview is written."""
    check_importer(actor)  # before the body is looked at: who may not import learns nothing else
    if file is None:
        raise field_error(["body", "file"], "send the project list (.xlsx or CSV) as the multipart field `file`")
    data = await file.read(services.max_body_bytes + 1)
    return await preview(services, actor, file.filename or "upload", data)


async def preview(services: Services, actor: Actor, file_name: str, data: bytes) -> dict[str, Any]:
    """The preview of one uploaded file, stored as a new batch (pages call this too)."""
    if len(data) > services.max_body_bytes:
        raise ApiError(413, f"the file is larger than {services.max_body_bytes} bytes; split it")
    file_name = file_name.replace("\\", "/").rsplit("/", 1)[-1][:200] or "upload"
    try:
        sheet = read(data, file_name)
        async with services.pool.acquire() as conn:
            checked = await validate(conn, sheet, office_today(), MAX_ROWS)
    except Unreadable as error:
        raise ApiError(422, f"cannot read {file_name}: {error}") from None
    except TooManyRows as error:
        raise ApiError(413, str(error)) from None
    batch_id = uuid.uuid4().hex
    async with services.pool.acquire() as conn:
        await store.insert_batch(conn, batch_id, actor.user_id, actor.name, actor.department, file_name, len(data),
                                 hashlib.sha256(data).hexdigest(), checked.headers, checked.rows,
                                 [e.as_json() for e in checked.errors], checked.counts())
    return await answer(services, actor, batch_id)


@router.get("/{batch_id}")
async def get_import(batch_id: Identifier, services: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    return await answer(services, actor, batch_id)


async def answer(services: Services, actor: Actor, batch_id: str) -> dict[str, Any]:
    """A batch as its uploader sees it, with earlier confirmed uploads of the same file."""
    async with services.pool.acquire() as conn:
        batch = await _own(conn, actor, batch_id)
        earlier = await store.confirmed_with_sha256(conn, batch["sha256"])
    return {**_visible_links(actor, batch),
            "earlier_imports": [dict(e) for e in earlier if e["id"] != batch_id]}


async def _own(conn: Any, actor: Actor, batch_id: str, for_update: bool = False) -> dict[str, Any]:
    batch = await store.batch(conn, batch_id, for_update=for_update)
    if batch is None or batch["uploaded_by"] != actor.user_id:
        raise not_found(f"import {batch_id}")
    return batch


def _visible_links(actor: Actor, batch: dict[str, Any]) -> dict[str, Any]:
    """Ids of records the uploader may not see are left out (they are another department's)."""
    view = access.view_of(actor)
    for item in [r.get("result") for r in batch["rows"]] + batch["results"]:
        if item and not view.sees([item.get("department")]):
            item.pop("cooperation_id", None)
            item.pop("project_id", None)
    return batch


@router.post("/{batch_id}/confirm")
async def confirm(batch_id: Identifier, services: ServicesDep, actor: ActorDep,
                  skip_invalid: SkipInvalid = False) -> dict[str, Any]:
    """Apply the valid rows, in order, through the normal workflow actions; a confirmed batch answers again."""
    await apply_batch(services, actor, batch_id, skip_invalid)
    return await answer(services, actor, batch_id)


async def apply_batch(services: Services, actor: Actor, batch_id: str, skip_invalid: bool) -> None:
    """The batch row stays locked while its rows are applied: a second confirmation waits, then finds it done."""
    async with services.pool.acquire() as conn, conn.transaction():
        batch = await _own(conn, actor, batch_id, for_update=True)
        check_importer(actor)  # still a liaison officer of the department the batch was made for
        if batch["department"] != actor.department:
            raise access.Forbidden(f"this import was made for {batch['department']}; you are now in {actor.department}")
        if batch["status"] == "confirmed":
            return
        if not batch["rows"]:
            raise conflict("the file has no rows to import" + ("; see its errors" if batch["errors"] else ""))
        if batch["errors"] and not skip_invalid:
            raise conflict(f"the file has {len(batch['errors'])} errors: correct them and upload it again, "
                           "or confirm with skip_invalid=true to import only the valid rows")
        valid = [r for r in batch["rows"] if r["status"] == "valid"]
        existing = await store.existing_projects(
            conn, [(r["values"]["partner_id"], r["values"]["project_title"]) for r in valid])
        results = []
        for row in batch["rows"]:
            results.append(await _apply(services, actor, batch, row, existing))
        await store.confirm(conn, batch_id, actor.user_id, results)


async def _apply(services: Services, actor: Actor, batch: dict[str, Any], row: dict[str, Any],
                 existing: dict[tuple[str, str], dict[str, str]]) -> dict[str, Any]:
    """One row's outcome: created, existing (imported before), skipped (invalid) or failed (refused, why)."""
    number, values = row["row"], row["values"]
    if row["status"] == "invalid":
        return {"row": number, "outcome": "skipped"}
    found = row.get("result") or existing.get((values["partner_id"], values["project_title"].lower()))
    if found is not None:
        return {"row": number, "outcome": "existing", **found}
    source = Source(batch["id"], batch["file_name"], batch["sha256"], number)
    try:
        made = await apply_row(services, actor, source, values)
    except ApiError as error:
        return {"row": number, "outcome": "failed", "detail": str(error.detail)}
    except (DomainError, ValidationError) as error:
        return {"row": number, "outcome": "failed", "detail": str(error)}
    return {"row": number, "outcome": "created", "department": actor.department, **made}
