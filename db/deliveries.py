"""Delivery records of reminder notices, recipients, and the inbox.

A delivery row exists once per notice, recipient and channel (its id is built
from those), moves `pending` -> `sent` or `pending` -> `failed` exactly once,
and each move writes its audit event in the same transaction. A sender takes a
short lease before each attempt, so two workers that both think they own a
notice (a retry racing a slow attempt, a run restarted after continue-as-new)
never send it at the same time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from db.audit_chain import AuditEvent, append
from domain.reminders import Notice, RecipientRole

REMINDER_ACTOR = dict(actor_id="system", actor_name="Accord reminders", actor_role="system",
                      auth_method="workflow")


@dataclass(frozen=True)
class ProjectContext:
    project_id: str
    cooperation_id: str
    title: str
    department: str
    officer: str
    status: str
    milestone_owner: str | None


@dataclass(frozen=True)
class Person:
    user_id: str
    name: str
    email: str | None
    language: str


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    secret: str


async def project_context(conn: asyncpg.Connection, project_id: str, milestone_id: str) -> ProjectContext | None:
    row = await conn.fetchrow(
        """
        SELECT p.id, p.cooperation_id, p.title, p.responsible_department, p.responsible_officer, p.status, m.owner
        FROM projects p LEFT JOIN milestones m ON m.project_id = p.id AND m.id = $2
        WHERE p.id = $1
        """, project_id, milestone_id)
    return ProjectContext(*row.values()) if row is not None else None


async def people_named(conn: asyncpg.Connection, name: str) -> list[Person]:
    """Users whose display name or username is `name` (officers and owners are recorded by name)."""
    rows = await conn.fetch(
        "SELECT id, display_name, email, language FROM users WHERE display_name = $1 OR username = $1 ORDER BY id",
        name)
    return [Person(*r.values()) for r in rows]


async def leaders_of(conn: asyncpg.Connection, department: str) -> list[Person]:
    rows = await conn.fetch(
        """
        SELECT u.id, u.display_name, u.email, u.language FROM users u
        WHERE u.department = $1 AND u.disabled_at IS NULL
          AND EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id AND r.role = 'leader')
        ORDER BY u.id
        """,
        department)
    return [Person(*r.values()) for r in rows]


async def recipients(conn: asyncpg.Connection, ctx: ProjectContext, role: RecipientRole,
                     leadership_department: str) -> list[Person]:
    """The users a role names for one project. An owner nobody can be found for falls back to
    the liaison officer, so a routine notice is not lost to a typo in the owner's name."""
    if role is RecipientRole.owner and ctx.milestone_owner:
        found = await people_named(conn, ctx.milestone_owner)
        if found:
            return found
        role = RecipientRole.liaison_officer
    if role in (RecipientRole.owner, RecipientRole.liaison_officer):
        return await people_named(conn, ctx.officer)
    if role is RecipientRole.department_leader:
        return await leaders_of(conn, ctx.department)
    return await leaders_of(conn, leadership_department)


async def webhooks_of(conn: asyncpg.Connection, department: str) -> list[Webhook]:
    rows = await conn.fetch(
        "SELECT id, url, secret FROM webhooks WHERE department = $1 AND revoked_at IS NULL ORDER BY id", department)
    return [Webhook(*r.values()) for r in rows]


# ---------------------------------------------------------------- delivery rows


def delivery_id(notice_key: str, recipient_id: str, channel: str) -> str:
    """Business-derived: project/milestone/v<due version>/<kind>/<recipient>/<channel>."""
    return f"{notice_key}/{recipient_id}/{channel}"


async def open_delivery(conn: asyncpg.Connection, *, delivery_id: str, notice: Notice, recipient_id: str | None,
                        recipient_name: str | None, channel: str, dispatched_at: datetime) -> str:
    """Create the row if it is new; return its status (an existing row is never duplicated)."""
    await conn.execute(
        """
        INSERT INTO notice_deliveries (delivery_id, notice_key, project_id, milestone_id, recipient_role,
            recipient_id, recipient_name, channel, status, planned_for, scheduled_for, dispatched_at, notice)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $11, $12)
        ON CONFLICT (delivery_id) DO NOTHING
        """,
        delivery_id, notice.key, notice.project_id, notice.milestone_id, notice.recipient.value, recipient_id,
        recipient_name, channel, notice.planned_at or notice.fire_at, notice.fire_at, dispatched_at,
        json.loads(notice.model_dump_json()))
    return await conn.fetchval("SELECT status FROM notice_deliveries WHERE delivery_id = $1", delivery_id)


async def claim(conn: asyncpg.Connection, delivery_id: str, lease: timedelta) -> bool:
    """Take the sending lease of a pending delivery; False if it is sent, failed or leased by another attempt."""
    return await conn.fetchval(
        """
        UPDATE notice_deliveries SET claimed_until = now() + $2, attempts = attempts + 1
        WHERE delivery_id = $1 AND status = 'pending' AND (claimed_until IS NULL OR claimed_until < now())
        RETURNING true
        """, delivery_id, lease) or False


async def release(conn: asyncpg.Connection, delivery_id: str, error: str) -> None:
    """An attempt failed and will be retried: note why and give the lease back."""
    await conn.execute(
        "UPDATE notice_deliveries SET claimed_until = NULL, last_error = $2 WHERE delivery_id = $1",
        delivery_id, error[:2000])


async def finish(conn: asyncpg.Connection, delivery_id: str, *, cooperation_id: str | None, sent: bool,
                 message_id: str | None = None, error: str | None = None) -> bool:
    """Move a pending delivery to sent or failed and audit it, in the caller's transaction.

    Returns False when it was no longer pending (another attempt finished it first).
    """
    row = await conn.fetchrow(
        """
        UPDATE notice_deliveries
        SET status = $2, delivered_at = CASE WHEN $2 = 'sent' THEN now() END, message_id = $3,
            last_error = coalesce($4, last_error), claimed_until = NULL
        WHERE delivery_id = $1 AND status = 'pending'
        RETURNING *
        """, delivery_id, "sent" if sent else "failed", message_id, error and error[:2000])
    if row is None:
        return False
    await append(conn, delivery_event(row, cooperation_id))
    return True


def delivery_event(row: asyncpg.Record, cooperation_id: str | None) -> AuditEvent:
    notice: dict[str, Any] = row["notice"]
    return AuditEvent(
        **REMINDER_ACTOR,
        action="notice.delivered" if row["status"] == "sent" else "notice.delivery_failed",
        entity_type="notice_delivery", entity_id=row["delivery_id"], occurred_at=row["delivered_at"],
        cooperation_id=cooperation_id, project_id=row["project_id"],
        outcome="succeeded" if row["status"] == "sent" else "failed", error=row["last_error"]
        if row["status"] == "failed" else None,
        after={
            "notice_key": row["notice_key"], "channel": row["channel"], "recipient_role": row["recipient_role"],
            "recipient_id": row["recipient_id"], "recipient_name": row["recipient_name"],
            "message_id": row["message_id"], "attempts": row["attempts"],
            "planned_for": row["planned_for"].isoformat(), "scheduled_for": row["scheduled_for"].isoformat(),
            "rule": notice.get("rule"),
            "kind": notice.get("kind"), "policy": f"{notice.get('policy_id')} v{notice.get('policy_version')}",
            "calendar": f"{notice.get('calendar_name')} v{notice.get('calendar_version')}",
            "due_date": notice.get("due_date"), "due_version": notice.get("due_version"),
        },
    )


async def pending_of(conn: asyncpg.Connection, notice_key: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM notice_deliveries WHERE notice_key = $1 AND status = 'pending' ORDER BY delivery_id",
        notice_key)


async def add_inbox_message(conn: asyncpg.Connection, *, message_id: str, user_id: str, kind: str,
                            project_id: str, notice_key: str, subject: str, body: str) -> None:
    await conn.execute(
        """
        INSERT INTO inbox_messages (id, user_id, kind, project_id, notice_key, subject, body)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING
        """, message_id, user_id, kind, project_id, notice_key, subject, body)


async def deliveries_of_project(conn: asyncpg.Connection, project_id: str, limit: int = 500) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT delivery_id, notice_key, milestone_id, recipient_role, recipient_id, recipient_name, channel, status,
               planned_for, scheduled_for, dispatched_at, delivered_at, attempts, last_error, message_id, notice
        FROM notice_deliveries WHERE project_id = $1 ORDER BY scheduled_for DESC, delivery_id LIMIT $2
        """, project_id, limit)
