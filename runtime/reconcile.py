"""`accord reconcile`: the read model against the workflows, record by record, field by field.

The workflows hold the truth (README "Design"); the read model is written from their state by
db/readmodel.py, one versioned snapshot per accepted action. Reconciling asks every cooperation
and project workflow for its state (the `state` query), builds the rows that state stands for,
and compares them with the rows in PostgreSQL: every row of cooperations, negotiation_events,
agreements, signatures, projects, milestones and investments, every column. A difference is
(record, table and row, field, workflow value, read-model value); a row only one side has is a
difference of its own. A record whose state changes while it is compared (an action in flight)
is compared once more before anything is reported.

`--repair` rewrites the differing rows from the workflow's state, in one transaction per record,
together with one audit event `readmodel.repaired` (actor `system`, `accord reconcile`) that
holds each changed field's before and after. The event is appended through the audit chain like
every other (db/audit_chain.py), so the chain stays verifiable; it carries no workflow event
number, so the workflow's own numbering (1, 2, 3, ...) is untouched. Running it again finds
nothing and writes nothing.

The expected rows are built here from the state with the same derivations the writer uses
(`db.readmodel.search_text`, `project_workflow_id`, the realized investment the state computes),
and only columns that exist are compared. A column of these tables that this module does not
know is listed by `unknown_columns` (and tests/test_reconcile.py fails on it), so a new
read-model column cannot silently escape reconciliation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import asyncpg
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.service import RPCError

from db.audit_chain import AuditEvent, append
from db.readmodel import search_text
from domain.cooperation import CooperationState
from domain.project import ProjectState
from domain.records import project_workflow_id

QUERY_TIMEOUT = timedelta(seconds=30)
SETTLE_SECONDS = 1.0
ACTOR = dict(actor_id="system", actor_name="accord reconcile", actor_role="system", auth_method="cli")

# table -> its primary key columns, children after their parents (deletes go the other way).
COOPERATION_TABLES = {
    "cooperations": ("id",),
    "negotiation_events": ("cooperation_id", "id"),
    "agreements": ("cooperation_id", "id"),
    "signatures": ("cooperation_id", "agreement_id", "organization_id"),
}
PROJECT_TABLES = {
    "projects": ("id",),
    "milestones": ("project_id", "id"),
    "investments": ("project_id", "id"),
}
# Which rows of a table belong to one record.
_OWNER = {"cooperations": "id", "negotiation_events": "cooperation_id", "agreements": "cooperation_id",
          "signatures": "cooperation_id", "projects": "id", "milestones": "project_id", "investments": "project_id"}


# ---------------------------------------------------------------- rows a state stands for


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def cooperation_rows(workflow_id: str, s: CooperationState) -> dict[str, list[dict[str, Any]]]:
    """The rows of the read model that this cooperation state stands for (db/readmodel.py writes them)."""
    return {
        "cooperations": [dict(
            id=s.cooperation_id, workflow_id=workflow_id, title=s.title, stage=s.stage,
            lead_organization_id=s.lead_organization_id, lead_organization_name=s.lead_organization_name,
            partner_organization_id=s.partner_organization_id, partner_organization_name=s.partner_organization_name,
            areas=list(s.areas), liaison_officer=s.liaison_officer, department=s.department, started_on=s.started_on,
            target_signing_date=s.target_signing_date, description=s.description,
            termination_reason=s.termination_reason, search_text=search_text(s), version=s.seq,
            created_by=s.created_by, created_at=s.created_at, updated_at=s.updated_at)],
        "negotiation_events": [dict(
            cooperation_id=s.cooperation_id, id=e.event_id, kind=e.kind, occurred_on=e.occurred_on, ends_on=e.ends_on,
            place=e.place, participants=list(e.participants), summary=e.summary, recorded_by=e.recorded_by)
            for e in s.negotiation],
        "agreements": [dict(
            cooperation_id=s.cooperation_id, id=a.agreement_id, kind=a.kind, title=a.title, status=a.status,
            parties=a.parties, review_steps=a.review_steps, review_log=a.review_log, signed_on=a.signed_on,
            revision=a.revision, signed_document=a.signed_document)
            for a in s.agreements],
        "signatures": [dict(
            cooperation_id=s.cooperation_id, agreement_id=a.agreement_id, organization_id=g.organization_id,
            signatory_name=g.signatory_name, signatory_title=g.signatory_title, signed_on=g.signed_on,
            recorded_by=g.recorded_by, document=g.document)
            for a in s.agreements for g in a.signatures],
    }


def project_rows(s: ProjectState) -> dict[str, list[dict[str, Any]]]:
    """The rows of the read model that this project state stands for."""
    return {
        "projects": [dict(
            id=s.project_id, cooperation_id=s.cooperation_id, agreement_id=s.agreement_id,
            workflow_id=project_workflow_id(s.project_id), title=s.title, site=s.site,
            committed_investment=s.committed_investment, realized_investment=s.realized_investment,
            responsible_department=s.responsible_department, responsible_officer=s.responsible_officer,
            status=s.status, status_reason=s.status_reason, version=s.seq, created_at=s.created_at,
            updated_at=s.updated_at)],
        "milestones": [dict(
            project_id=s.project_id, id=m.milestone_id, cooperation_id=s.cooperation_id, position=i, name=m.name,
            due_date=m.due_date, owner=m.owner, status=m.status, completed_on=m.completed_on, evidence=m.evidence,
            completed_by=m.completed_by, moves=m.moves)
            for i, m in enumerate(s.milestones)],
        "investments": [dict(
            project_id=s.project_id, id=e.entry_id, cooperation_id=s.cooperation_id, received_on=e.received_on,
            amount=e.amount, source_note=e.source_note, recorded_by=e.recorded_by)
            for e in s.investments],
    }


# Every column of the read-model tables, as the builders above fill them.
KNOWN_COLUMNS = {
    "cooperations": {"id", "workflow_id", "title", "stage", "lead_organization_id", "lead_organization_name",
                     "partner_organization_id", "partner_organization_name", "areas", "liaison_officer",
                     "department", "started_on", "target_signing_date", "description", "termination_reason",
                     "search_text", "version", "created_by", "created_at", "updated_at"},
    "negotiation_events": {"cooperation_id", "id", "kind", "occurred_on", "ends_on", "place", "participants",
                           "summary", "recorded_by"},
    "agreements": {"cooperation_id", "id", "kind", "title", "status", "parties", "review_steps", "review_log",
                   "signed_on", "revision", "signed_document"},
    "signatures": {"cooperation_id", "agreement_id", "organization_id", "signatory_name", "signatory_title",
                   "signed_on", "recorded_by", "document"},
    "projects": {"id", "cooperation_id", "agreement_id", "workflow_id", "title", "site", "committed_investment",
                 "realized_investment", "responsible_department", "responsible_officer", "status", "status_reason",
                 "version", "created_at", "updated_at"},
    "milestones": {"project_id", "id", "cooperation_id", "position", "name", "due_date", "owner", "status",
                   "completed_on", "evidence", "completed_by", "moves"},
    "investments": {"project_id", "id", "cooperation_id", "received_on", "amount", "source_note", "recorded_by"},
}


# ---------------------------------------------------------------- comparing


def comparable(value: Any) -> Any:
    """One form for both sides: JSON values as canonical text, numbers exactly, enums as their value."""
    value = _dump(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if isinstance(value, Decimal):
        return value.normalize() if value else Decimal(0)
    return value


def shown(value: Any) -> Any:
    """A value as it is printed and recorded in the audit event (JSON-safe)."""
    value = _dump(value)
    if isinstance(value, (datetime, date, Decimal)):
        return str(value)
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


@dataclass(frozen=True)
class Difference:
    record: str  # "cooperation <id>" or "project <id>"
    row: str  # "agreements (c-1, a-2)"
    field: str  # a column, or "(row)" for a row only one side has
    workflow: Any
    read_model: Any

    def __str__(self) -> str:
        return (f"{self.record}: {self.row} {self.field}: workflow {json.dumps(shown(self.workflow), ensure_ascii=False)}"
                f", read model {json.dumps(shown(self.read_model), ensure_ascii=False)}")


@dataclass
class Report:
    cooperations: int = 0
    projects: int = 0
    differences: list[Difference] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # records rewritten from their workflow

    @property
    def clean(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        records = len({d.record for d in self.differences})
        text = (f"reconciled {self.cooperations} cooperations and {self.projects} projects: "
                f"{len(self.differences)} differences in {records} records")
        if self.repaired:
            text += f"; repaired {len(self.repaired)} records"
        return text


async def _columns(conn: asyncpg.Connection) -> dict[str, set[str]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ANY($1::text[])", list(_OWNER))
    columns: dict[str, set[str]] = {}
    for r in rows:
        columns.setdefault(r["table_name"], set()).add(r["column_name"])
    return columns


async def unknown_columns(conn: asyncpg.Connection) -> dict[str, set[str]]:
    """Columns of the read-model tables that reconciliation does not compare (should be none)."""
    return {t: cols - KNOWN_COLUMNS[t] for t, cols in (await _columns(conn)).items() if cols - KNOWN_COLUMNS[t]}


def _key(table: str, row: dict[str, Any], keys: dict[str, tuple[str, ...]]) -> tuple:
    return tuple(row[k] for k in keys[table])


def compare(record: str, expected: dict[str, list[dict[str, Any]]], actual: dict[str, list[dict[str, Any]]],
            keys: dict[str, tuple[str, ...]], columns: dict[str, set[str]]) -> list[Difference]:
    differences = []
    for table in keys:
        want = {_key(table, r, keys): r for r in expected.get(table, [])}
        have = {_key(table, r, keys): r for r in actual.get(table, [])}
        for key in sorted(want.keys() | have.keys(), key=str):
            row = f"{table} ({', '.join(map(str, key))})"
            if key not in have:
                differences.append(Difference(record, row, "(row)", "present", "missing"))
            elif key not in want:
                differences.append(Difference(record, row, "(row)", "missing", "present"))
            else:
                for column in sorted(columns.get(table, set()) & set(want[key])):
                    w, r = want[key][column], have[key].get(column)
                    if comparable(w) != comparable(r):
                        differences.append(Difference(record, row, column, w, r))
    return differences


async def _rows(conn: asyncpg.Connection, tables: Iterable[str], owner_id: str) -> dict[str, list[dict[str, Any]]]:
    return {t: [dict(r) for r in await conn.fetch(f"SELECT * FROM {t} WHERE {_OWNER[t]} = $1", owner_id)]
            for t in tables}


# ---------------------------------------------------------------- the workflows


@dataclass
class Record:
    kind: str  # "cooperation" | "project"
    record_id: str
    workflow_id: str

    @property
    def name(self) -> str:
        return f"{self.kind} {self.record_id}"

    @property
    def tables(self) -> dict[str, tuple[str, ...]]:
        return COOPERATION_TABLES if self.kind == "cooperation" else PROJECT_TABLES


async def _state(client: Client, record: Record) -> CooperationState | ProjectState | None:
    kind = CooperationState if record.kind == "cooperation" else ProjectState
    return await client.get_workflow_handle(record.workflow_id).query(
        "state", result_type=kind, rpc_timeout=QUERY_TIMEOUT)


def _expected(record: Record, state: CooperationState | ProjectState) -> dict[str, list[dict[str, Any]]]:
    if isinstance(state, CooperationState):
        return cooperation_rows(record.workflow_id, state)
    return project_rows(state)


async def records_to_check(conn: asyncpg.Connection, client: Client, task_queue: str | None,
                           cooperation_ids: list[str] | None) -> list[Record]:
    """Every cooperation and project of the read model, and every workflow of ours Temporal lists
    that the read model lacks. With `cooperation_ids`: those cooperations and their projects only."""
    if cooperation_ids:
        coops = await conn.fetch("SELECT id, workflow_id FROM cooperations WHERE id = ANY($1::text[])",
                                 cooperation_ids)
        projects = await conn.fetch("SELECT id, workflow_id FROM projects WHERE cooperation_id = ANY($1::text[])",
                                    cooperation_ids)
    else:
        coops = await conn.fetch("SELECT id, workflow_id FROM cooperations")
        projects = await conn.fetch("SELECT id, workflow_id FROM projects")
    records = [Record("cooperation", r["id"], r["workflow_id"]) for r in coops]
    records += [Record("project", r["id"], r["workflow_id"]) for r in projects]
    known = {r.workflow_id for r in records}
    if cooperation_ids:
        for cid in cooperation_ids:  # a cooperation the read model never heard of
            if f"cooperation-{cid}" not in known:
                records.append(Record("cooperation", cid, f"cooperation-{cid}"))
        return records
    query = "WorkflowType = 'CooperationWorkflow' OR WorkflowType = 'ProjectWorkflow'"
    if task_queue:
        query = f"TaskQueue = '{task_queue}' AND ({query})"
    async for execution in client.list_workflows(query):
        if execution.id in known:
            continue
        known.add(execution.id)
        kind = "cooperation" if execution.workflow_type == "CooperationWorkflow" else "project"
        records.append(Record(kind, execution.id.removeprefix(f"{kind}-"), execution.id))
    return records


# ---------------------------------------------------------------- one record


async def check_record(pool: asyncpg.Pool, client: Client, record: Record,
                       columns: dict[str, set[str]]) -> tuple[list[Difference], Any]:
    """The differences of one record, and the state they were found against. Compared twice when
    the first comparison differs: an action in flight moves both sides, a lasting difference stays."""
    differences: list[Difference] = []
    state = None
    for attempt in range(2):
        if attempt:
            await asyncio.sleep(SETTLE_SECONDS)
        try:
            state = await _state(client, record)
        except RPCError as error:
            return [Difference(record.name, record.workflow_id, "(state)", f"no answer: {error}", "-")], None
        if state is None:
            return [Difference(record.name, record.workflow_id, "(state)", "still being created", "-")], None
        async with pool.acquire() as conn:
            actual = await _rows(conn, record.tables, record.record_id)
        differences = compare(record.name, _expected(record, state), actual, record.tables, columns)
        if not differences:
            break
    return differences, state


async def repair_record(pool: asyncpg.Pool, client: Client, record: Record, columns: dict[str, set[str]]) -> bool:
    """Rewrite the rows of one record from its workflow's state, with one audit event; False when
    there was nothing to rewrite. The rows are compared again inside the transaction, so what is
    rewritten and recorded is exactly what differed."""
    state = await _state(client, record)
    if state is None:
        return False
    expected = _expected(record, state)
    async with pool.acquire() as conn, conn.transaction():
        # Lock the record's main row (if any): a writer of this record waits until we are done.
        await conn.execute(f"SELECT 1 FROM {next(iter(record.tables))} WHERE id = $1 FOR UPDATE", record.record_id)
        actual = await _rows(conn, record.tables, record.record_id)
        differences = compare(record.name, expected, actual, record.tables, columns)
        if not differences:
            return False
        tables = record.tables
        # Rows the workflow does not have: children first.
        for table in reversed(list(tables)):
            want = {_key(table, r, tables) for r in expected.get(table, [])}
            for row in actual.get(table, []):
                key = _key(table, row, tables)
                if key not in want:
                    where = " AND ".join(f"{k} = ${i + 1}" for i, k in enumerate(tables[table]))
                    await conn.execute(f"DELETE FROM {table} WHERE {where}", *key)
        # Rows that differ or are missing: parents first.
        for table in tables:
            have = {_key(table, r, tables): r for r in actual.get(table, [])}
            for row in expected.get(table, []):
                current = have.get(_key(table, row, tables))
                names = [c for c in row if c in columns.get(table, set())]
                if current is not None and all(comparable(row[c]) == comparable(current.get(c)) for c in names):
                    continue
                values = [_dump(row[c]) for c in names]  # jsonb takes Python objects (db/pool.py)
                updates = [c for c in names if c not in tables[table]]
                await conn.execute(
                    f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(names)))}) "
                    f"ON CONFLICT ({', '.join(tables[table])}) DO UPDATE SET "
                    + ", ".join(f"{c} = EXCLUDED.{c}" for c in updates), *values)
        is_coop = record.kind == "cooperation"
        await append(conn, AuditEvent(
            **ACTOR, action="readmodel.repaired", entity_type=record.kind, entity_id=record.record_id,
            cooperation_id=record.record_id if is_coop else getattr(state, "cooperation_id", None),
            project_id=None if is_coop else record.record_id,
            before={f"{d.row} {d.field}": shown(d.read_model) for d in differences},
            after={f"{d.row} {d.field}": shown(d.workflow) for d in differences},
            comment=f"rewritten from workflow {record.workflow_id} at version {state.seq}"))
    return True


# ---------------------------------------------------------------- everything


async def reconcile(pool: asyncpg.Pool, client: Client, *, repair: bool = False, task_queue: str | None = None,
                    cooperation_ids: list[str] | None = None, concurrency: int = 8) -> Report:
    """Compare (and with `repair`, rewrite) every record; see the module's docstring."""
    async with pool.acquire() as conn:
        columns = await _columns(conn)
        records = await records_to_check(conn, client, task_queue, cooperation_ids)
    report = Report(cooperations=sum(r.kind == "cooperation" for r in records),
                    projects=sum(r.kind == "project" for r in records))
    gate = asyncio.Semaphore(concurrency)

    async def one(record: Record) -> list[Difference]:
        async with gate:
            differences, state = await check_record(pool, client, record, columns)
            if differences and repair and state is not None:
                if await repair_record(pool, client, record, columns):
                    report.repaired.append(record.name)
            return differences

    # Cooperations first: a project row needs its cooperation's agreement row.
    for kind in ("cooperation", "project"):
        for found in await asyncio.gather(*(one(r) for r in records if r.kind == kind)):
            report.differences += found
    return report
