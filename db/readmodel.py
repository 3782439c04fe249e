"""Writes of the read model and the audit trail, one accepted action per transaction.

Each write is keyed by (workflow id, event seq): the audit append is the gate, so
an activity retry after a commit finds its event and writes nothing. Rows carry the
event seq as `version` and an upsert never replaces a newer version, so the read
model only moves forward.
"""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from db.audit_chain import AuditEvent, append
from domain.cooperation import CooperationState
from domain.project import NewProject, ProjectState
from domain.records import CooperationEventRecord, ProjectEventRecord, project_workflow_id


def _audit_event(record: CooperationEventRecord | ProjectEventRecord, cooperation_id: str, project_id: str | None,
                 state: dict) -> AuditEvent:
    actor, change = record.actor, record.change
    return AuditEvent(
        actor_id=actor.user_id, actor_name=actor.name, actor_role=actor.role, auth_method=actor.auth_method,
        actor_department=actor.department, source_ip=actor.source_ip, user_agent=actor.user_agent,
        request_id=record.request_id, occurred_at=record.occurred_at, action=change.action,
        entity_type=change.entity_type, entity_id=change.entity_id, cooperation_id=cooperation_id,
        project_id=project_id, before=change.before, after=change.after, comment=change.comment,
        workflow_id=record.workflow_id, run_id=record.run_id, event_seq=record.seq, state=state,
    )


async def write_cooperation_event(conn: asyncpg.Connection, record: CooperationEventRecord) -> bool:
    """Audit row plus the cooperation's rows, in one transaction. False if already written."""
    state = record.state
    async with conn.transaction():
        project_id = record.new_project.project_id if record.new_project else None
        event = _audit_event(record, state.cooperation_id, project_id, state.model_dump(mode="json"))
        if record.new_project is not None:
            # The whole project as created (amount, site, milestones): auditors and as-of queries need it.
            event.after = {**event.after, "project": record.new_project.model_dump(mode="json")}
        seq = await append(conn, event)
        if seq is None:
            return False
        await _write_cooperation_rows(conn, record.workflow_id, state)
        if record.new_project is not None:
            await _insert_new_project(conn, record.new_project)
    return True


async def write_project_event(conn: asyncpg.Connection, record: ProjectEventRecord) -> bool:
    state = record.state
    async with conn.transaction():
        seq = await append(conn, _audit_event(record, state.cooperation_id, state.project_id,
                                              state.model_dump(mode="json")))
        if seq is None:
            return False
        await _write_project_rows(conn, state)
    return True


async def recorded_request(conn: asyncpg.Connection, workflow_id: str, seq: int) -> str | None:
    """The request id of the audit event recorded for (workflow, event seq), if any."""
    return await conn.fetchval("SELECT request_id FROM audit_events WHERE workflow_id = $1 AND event_seq = $2",
                               workflow_id, seq)


async def rewrite_cooperation_rows(conn: asyncpg.Connection, record: CooperationEventRecord) -> None:
    """The rows of an event already recorded, brought to `record`'s state: the same action run
    again by a new workflow task computed that state anew (its time), and the workflow keeps it.
    The audit event stays as first recorded; the upserts accept the same version again."""
    state = record.state
    async with conn.transaction():
        await _write_cooperation_rows(conn, record.workflow_id, state)
        if record.seq == 1:  # the creation ran again: the upsert never changes created_at, so set it here
            await conn.execute("UPDATE cooperations SET created_at = $2 WHERE id = $1 AND version = 1",
                               state.cooperation_id, state.created_at)


async def rewrite_project_rows(conn: asyncpg.Connection, record: ProjectEventRecord) -> None:
    """As `rewrite_cooperation_rows`, for a project's event."""
    async with conn.transaction():
        await _write_project_rows(conn, record.state)


async def _write_cooperation_rows(conn: asyncpg.Connection, workflow_id: str, state: CooperationState) -> None:
    if await _upsert_cooperation(conn, workflow_id, state):
        await _upsert_cooperation_children(conn, state)


async def _write_project_rows(conn: asyncpg.Connection, state: ProjectState) -> None:
    if await _upsert_project(conn, state):
        await _upsert_milestones(conn, state.project_id, state.cooperation_id, state.milestones)
        await conn.executemany(
            """
            INSERT INTO investments (project_id, id, cooperation_id, received_on, amount, source_note, recorded_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (project_id, id) DO NOTHING
            """,
            [(state.project_id, e.entry_id, state.cooperation_id, e.received_on, e.amount, e.source_note,
              e.recorded_by) for e in state.investments],
        )


def search_text(state: CooperationState) -> str:
    """What the list's text search (`q`) looks in, lower-cased."""
    parts = [state.title, state.partner_organization_name, state.lead_organization_name, state.liaison_officer,
             state.department or "", *state.areas]
    return " ".join(parts).lower()


async def _upsert_cooperation(conn: asyncpg.Connection, workflow_id: str, s: CooperationState) -> bool:
    written = await conn.fetchval(
        """
        INSERT INTO cooperations (id, workflow_id, title, stage, lead_organization_id, lead_organization_name,
            partner_organization_id, partner_organization_name, areas, liaison_officer, department, started_on,
            target_signing_date, description, termination_reason, search_text, version, created_by, created_at,
            updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
        ON CONFLICT (id) DO UPDATE SET
            title = EXCLUDED.title, stage = EXCLUDED.stage, areas = EXCLUDED.areas,
            liaison_officer = EXCLUDED.liaison_officer, department = EXCLUDED.department,
            target_signing_date = EXCLUDED.target_signing_date, description = EXCLUDED.description,
            termination_reason = EXCLUDED.termination_reason, search_text = EXCLUDED.search_text,
            version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
        WHERE cooperations.version <= EXCLUDED.version
        RETURNING true
        """,
        s.cooperation_id, workflow_id, s.title, s.stage.value, s.lead_organization_id, s.lead_organization_name,
        s.partner_organization_id, s.partner_organization_name, s.areas, s.liaison_officer, s.department,
        s.started_on, s.target_signing_date, s.description, s.termination_reason, search_text(s), s.seq,
        s.created_by, s.created_at, s.updated_at,
    )
    return bool(written)


async def _upsert_cooperation_children(conn: asyncpg.Connection, s: CooperationState) -> None:
    await conn.executemany(
        """
        INSERT INTO negotiation_events (cooperation_id, id, kind, occurred_on, ends_on, place, participants,
            summary, recorded_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (cooperation_id, id) DO NOTHING
        """,
        [(s.cooperation_id, e.event_id, e.kind.value, e.occurred_on, e.ends_on, e.place, e.participants, e.summary,
          e.recorded_by) for e in s.negotiation],
    )
    await conn.executemany(
        """
        INSERT INTO agreements (id, cooperation_id, kind, title, status, parties, review_steps, review_log,
            signed_on, revision, signed_document)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (cooperation_id, id) DO UPDATE SET
            title = EXCLUDED.title, status = EXCLUDED.status, parties = EXCLUDED.parties,
            review_steps = EXCLUDED.review_steps, review_log = EXCLUDED.review_log,
            signed_on = EXCLUDED.signed_on, revision = EXCLUDED.revision,
            signed_document = EXCLUDED.signed_document
        """,
        [(a.agreement_id, s.cooperation_id, a.kind.value, a.title, a.status.value,
          [p.model_dump(mode="json") for p in a.parties], [r.model_dump(mode="json") for r in a.review_steps],
          [d.model_dump(mode="json") for d in a.review_log], a.signed_on, a.revision,
          _json_or_none(a.signed_document)) for a in s.agreements],
    )
    await conn.executemany(
        """
        INSERT INTO signatures (cooperation_id, agreement_id, organization_id, signatory_name, signatory_title,
            signed_on, recorded_by, document)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (cooperation_id, agreement_id, organization_id) DO NOTHING
        """,
        [(s.cooperation_id, a.agreement_id, sig.organization_id, sig.signatory_name, sig.signatory_title, sig.signed_on,
          sig.recorded_by, _json_or_none(sig.document)) for a in s.agreements for sig in a.signatures],
    )


def _json_or_none(model: BaseModel | None) -> dict | None:
    return model.model_dump(mode="json") if model is not None else None


async def _insert_new_project(conn: asyncpg.Connection, p: NewProject) -> None:
    """The parent writes a new project's first rows so the API answer already shows them."""
    await conn.execute(
        """
        INSERT INTO projects (id, cooperation_id, agreement_id, workflow_id, title, site, committed_investment,
            realized_investment, responsible_department, responsible_officer, status, version, created_at,
            updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, 'planned', 0, $10, $10)
        ON CONFLICT (id) DO NOTHING
        """,
        p.project_id, p.cooperation_id, p.agreement_id, project_workflow_id(p.project_id), p.title, p.site,
        p.committed_investment, p.responsible_department, p.responsible_officer, p.created_at,
    )
    await conn.executemany(
        """
        INSERT INTO milestones (project_id, id, cooperation_id, position, name, due_date, owner, status, moves)
        VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', '[]'::jsonb)
        ON CONFLICT (project_id, id) DO NOTHING
        """,
        [(p.project_id, m.milestone_id, p.cooperation_id, i, m.name, m.due_date, m.owner)
         for i, m in enumerate(p.milestones)],
    )


async def _upsert_project(conn: asyncpg.Connection, s: ProjectState) -> bool:
    written = await conn.fetchval(
        """
        UPDATE projects SET status = $2, status_reason = $3, realized_investment = $4, version = $5,
            updated_at = $6
        WHERE id = $1 AND version <= $5
        RETURNING true
        """,
        s.project_id, s.status.value, s.status_reason, s.realized_investment, s.seq, s.updated_at,
    )
    return bool(written)


async def _upsert_milestones(conn: asyncpg.Connection, project_id: str, cooperation_id: str,
                             milestones: list) -> None:
    await conn.executemany(
        """
        INSERT INTO milestones (project_id, id, cooperation_id, position, name, due_date, owner, status,
            completed_on, evidence, completed_by, moves)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        ON CONFLICT (project_id, id) DO UPDATE SET
            due_date = EXCLUDED.due_date, owner = EXCLUDED.owner, status = EXCLUDED.status,
            completed_on = EXCLUDED.completed_on, evidence = EXCLUDED.evidence,
            completed_by = EXCLUDED.completed_by, moves = EXCLUDED.moves
        """,
        [(project_id, m.milestone_id, cooperation_id, i, m.name, m.due_date, m.owner, m.status, m.completed_on,
          m.evidence, m.completed_by, [mv.model_dump(mode="json") for mv in m.moves])
         for i, m in enumerate(milestones)],
    )
