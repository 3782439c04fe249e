"""The audit trail for auditors: search, export (CSV, JSON Lines), verification, checkpoints, as-of state.

Searches and exports are audited themselves: who looked at what is part of the record.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.audit_log import record_access
from api.errors import field_error, not_found
from api.services import ActorDep, ServicesDep
from db import audit_chain, audit_queries
from db.audit_queries import COLUMNS, AuditFilter
from domain import access
from domain.audit import Actor
from domain.cooperation import CooperationState
from domain.project import NewProject, ProjectState, new_project
from domain.records import cooperation_workflow_id, project_workflow_id
from domain.types import Identifier, Name

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditEvent(BaseModel):
    seq: int
    event_id: str
    recorded_at: datetime
    occurred_at: datetime
    actor_id: str
    actor_name: str
    actor_role: str
    actor_department: str | None
    auth_method: str
    source_ip: str | None
    user_agent: str | None
    request_id: str | None
    action: str
    entity_type: str
    entity_id: str
    cooperation_id: str | None
    project_id: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    comment: str | None
    outcome: str
    error: str | None
    workflow_id: str | None
    run_id: str | None
    event_seq: int | None


class AuditPage(BaseModel):
    items: list[AuditEvent]
    next_cursor: int | None


class VerifyResult(BaseModel):
    intact: bool
    events: int
    first_bad_seq: int | None
    kind: Literal["changed", "deleted", "inserted", "reordered", "truncated", "rewritten"] | None
    detail: str | None
    checkpoints: int


class Checkpoint(BaseModel):
    seq: int
    hash: str
    key_id: str
    signature: str
    created_at: datetime


def audit_filter(
    cooperation_id: Identifier | None = None,
    project_id: Identifier | None = None,
    entity_type: Name | None = None,
    entity_id: Identifier | None = None,
    actor_id: Identifier | None = None,
    actor_department: Name | None = None,
    action: Name | None = None,
    outcome: Literal["succeeded", "refused", "failed"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: Annotated[Name | None, Query(description="free text: actor, action, record, comment, values")] = None,
) -> AuditFilter:
    for name, moment in (("since", since), ("until", until)):
        if moment is not None:
            _require_zone(moment, name)
    if since and until and until <= since:
        raise field_error(["query", "until"], "until must be after since")
    return AuditFilter(cooperation_id, project_id, entity_type, entity_id, actor_id, actor_department, action,
                       outcome, since, until, q)


FilterDep = Annotated[AuditFilter, Depends(audit_filter)]


def auditor(actor: ActorDep) -> Actor:
    """The audit trail is the auditors' (domain/access.py): everyone else gets a 403."""
    access.check_audit_reader(actor)
    return actor


AuditorDep = Annotated[Actor, Depends(auditor)]


@router.get("", response_model=AuditPage)
async def search(request: Request, f: FilterDep, services: ServicesDep, actor: AuditorDep,
                 limit: Annotated[int, Query(ge=1, le=500)] = 100,
                 cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1,  # a bigint seq
                                                     description="next_cursor of the previous page")] = None,
                 ) -> dict:
    """Audit events, newest first, filtered; page on with `cursor`."""
    async with services.pool.acquire() as conn:
        items, next_cursor = await audit_queries.search(conn, f, limit, cursor)
        await record_access(conn, request, actor, "audit.searched", {**f.as_dict(), "cursor": cursor})
    return {"items": [json_ready(i) for i in items], "next_cursor": next_cursor}


@router.get("/export", response_class=StreamingResponse)
async def export(request: Request, f: FilterDep, services: ServicesDep, actor: AuditorDep,
                 format: Literal["csv", "jsonl"] = "csv") -> StreamingResponse:
    """Every matching event as CSV (UTF-8 with BOM, opens in Excel) or JSON Lines, streamed."""
    async with services.pool.acquire() as conn:
        await record_access(conn, request, actor, "audit.exported", {**f.as_dict(), "format": format})
    body = _csv_lines(services, f) if format == "csv" else _json_lines(services, f)
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    filename = f"accord-audit.{format}"
    return StreamingResponse(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def _rows(services: Any, f: AuditFilter) -> AsyncIterator[dict[str, Any]]:
    async with services.pool.acquire() as conn:
        async for row in audit_queries.stream(conn, f):
            yield json_ready(row)


async def _csv_lines(services: Any, f: AuditFilter) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # the BOM: Excel then reads the Chinese text as UTF-8
    writer.writerow(COLUMNS)
    async for row in _rows(services, f):
        writer.writerow([_cell(row[c]) for c in COLUMNS])
        if buffer.tell() > 64_000:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _cell(value: Any) -> Any:
    """A CSV cell that Excel shows as text: staff-entered text starting with = + - @ is not a formula."""
    if value is None:
        return ""
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# Line breaks to Unicode (and to str.splitlines) that JSON leaves unescaped inside strings: escaped,
# so that each line of the export is one event whichever way a reader splits lines.
_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


async def _json_lines(services: Any, f: AuditFilter) -> AsyncIterator[bytes]:
    chunk: list[str] = []
    async for row in _rows(services, f):
        chunk.append(json.dumps(row, ensure_ascii=False, default=str).translate(_LINE_BREAKS))
        if len(chunk) >= 500:
            yield ("\n".join(chunk) + "\n").encode()
            chunk = []
    if chunk:
        yield ("\n".join(chunk) + "\n").encode()


def json_ready(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if k == "event_id" else v.isoformat() if isinstance(v, datetime) else v)
            for k, v in row.items()}


@router.get("/verify", response_model=VerifyResult)
async def verify(request: Request, services: ServicesDep, actor: AuditorDep) -> dict:
    """Recompute the hash chain and hold it against the head and every signed checkpoint."""
    async with services.pool.acquire() as conn:
        verdict = await audit_chain.verify(conn, services.audit_key, retired=services.retired_audit_keys)
        await record_access(conn, request, actor, "audit.verified", verdict.as_dict())
    return verdict.as_dict()


@router.get("/checkpoints", response_model=list[Checkpoint])
async def checkpoints(services: ServicesDep, actor: AuditorDep) -> list[dict]:
    """The signed checkpoints, to keep outside the system (they prove the chain up to each)."""
    async with services.pool.acquire() as conn:
        rows = await conn.fetch("SELECT seq, hash, key_id, signature, created_at FROM audit_checkpoints ORDER BY seq")
    return [{**dict(r), "hash": bytes(r["hash"]).hex(), "signature": bytes(r["signature"]).hex()} for r in rows]


# ---------------------------------------------------------------- state as of an instant

as_of_router = APIRouter(tags=["audit"])


@as_of_router.get("/cooperations/{cooperation_id}/as-of", response_model=CooperationState)
async def cooperation_as_of(cooperation_id: Identifier, at: datetime, services: ServicesDep,
                            actor: AuditorDep) -> dict:
    """The cooperation as it stood at `at`, rebuilt from the audit trail (not from today's rows)."""
    _require_zone(at)
    async with services.pool.acquire() as conn:
        row = await audit_queries.latest_state(conn, cooperation_workflow_id(cooperation_id), at)
    if row is None:
        raise not_found(f"cooperation {cooperation_id} at {at.isoformat()}")
    return row["state"]


@as_of_router.get("/projects/{project_id}/as-of", response_model=ProjectState)
async def project_as_of(project_id: Identifier, at: datetime, services: ServicesDep, actor: AuditorDep) -> Any:
    """The project as it stood at `at`: its last event then, or its creation if nothing followed yet."""
    _require_zone(at)
    async with services.pool.acquire() as conn:
        row = await audit_queries.latest_state(conn, project_workflow_id(project_id), at)
        created = None if row else await audit_queries.project_creation(conn, project_id, at)
    if row is not None:
        return row["state"]
    if created is None:
        raise not_found(f"project {project_id} at {at.isoformat()}")
    return new_project(NewProject.model_validate(created["after"]["project"]))


def _require_zone(at: datetime, name: str = "at") -> None:
    """An instant with a time zone, and one that exists in UTC (the database's clock): 0001-01-01T00:00+01:00
    is 31 December of the year 0, which neither Python nor the database driver can send."""
    if at.tzinfo is None:
        raise field_error(["query", name], "give a time zone, e.g. 2026-06-30T00:00:00+08:00")
    try:
        at.astimezone(UTC)
    except OverflowError:
        raise field_error(["query", name], "out of range: give an instant between the years 1 and 9999 in UTC") from None
