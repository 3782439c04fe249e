"""Helpers shared by the audit-trail tests (`test_audit_*.py`); this module holds no tests itself.

Tamper tests never touch the session's shared database: each works on a database of
its own on the same server (`scratch_database`), created from a migrated template
when one is given (`CREATE DATABASE ... TEMPLATE`, a file copy: much faster than
migrating again) and dropped afterwards.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from db import audit_chain
from db.audit_chain import HASHED_FIELDS, AuditEvent, append, event_hash, write_checkpoint
from db.migrate import migrate
from db.pool import connect

KEY = b"tamper-test-checkpoint-key"
WRONG_KEY = b"not-the-checkpoint-key"


# ---------------------------------------------------------------- databases of their own


def database_url(pg_url: str, name: str) -> str:
    """pg_url (`postgresql://postgres:@/accord_test?host=/path`) with another database name."""
    parts = urlsplit(pg_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def create_database(pg_url: str, name: str, template: str | None = None) -> str:
    admin = await asyncpg.connect(pg_url)
    try:
        clause = f' TEMPLATE "{template}"' if template else " TEMPLATE template0 ENCODING 'UTF8'"
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()
    return database_url(pg_url, name)


async def drop_database(pg_url: str, name: str) -> None:
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def scratch_database(pg_url: str, template: str | None = None,
                           prefix: str = "tamper") -> AsyncIterator[str]:
    """A fresh database (migrated, or a copy of `template`); yields its URL and drops it after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = await create_database(pg_url, name, template)
    try:
        if template is None:
            conn = await connect(url)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        yield url
    finally:
        await drop_database(pg_url, name)


# ---------------------------------------------------------------- a chain to tamper with


ACTIONS = ["cooperation.created", "negotiation.recorded", "agreement.drafted", "agreement.submitted",
           "agreement.review_approved", "agreement.signed", "project.created", "milestone.moved",
           "investment.recorded", "api.submit_agreement", "audit.searched"]
NAMES = ["Liaison Officer Wang 王", "Reviewer Li 李审查", "Leader Sun 孙副市长", "Auditor Zhao"]


def sample_event(rng: random.Random, i: int) -> AuditEvent:
    """A varied but deterministic event: Chinese text, nested JSON, workflow ids, refusals."""
    action = ACTIONS[i % len(ACTIONS)]
    refused = action.startswith("api.")
    workflow = not refused and not action.startswith("audit.")
    amount = f"{rng.randint(1, 10_000_000)}.{rng.randint(0, 99):02d}"
    return AuditEvent(
        actor_id=f"user-{i % 4}", actor_name=NAMES[i % 4], actor_role="liaison_officer", auth_method="api_token",
        actor_department="投资促进局 Investment Promotion Bureau" if i % 3 else None,
        source_ip=f"10.0.0.{i % 250 + 1}", user_agent="tamper-test/1.0", request_id=f"req-{i}",
        action=action, entity_type=action.split(".")[0], entity_id=f"entity-{i}",
        cooperation_id="coop-tamper", project_id="proj-tamper" if i % 2 else None,
        before={} if i % 5 == 0 else {"status": "draft", "amount": amount, "nested": {"list": [1, 2, i]}},
        after={"status": "signed", "amount": amount, "note": f"第{i}条 clause {i}", "flag": bool(i % 2)},
        comment=f"同意 approved #{i}" if i % 4 == 0 else None,
        outcome="refused" if refused else "succeeded",
        error="agreement is in_review; only a draft can be submitted" if refused else None,
        workflow_id="cooperation-coop-tamper" if workflow else None,
        run_id="run-1" if workflow else None,
        event_seq=i if workflow else None,
        state={"stage": "negotiating", "seq": i, "agreements": [{"id": "a1", "status": "draft"}]} if workflow else None,
    )


async def build_chain(conn: asyncpg.Connection, events: int = 60, checkpoint_every: int = 20,
                      key: bytes = KEY, seed: int = 2017) -> list[int]:
    """Append `events` events, one transaction each, signing a checkpoint every `checkpoint_every`."""
    rng = random.Random(seed)
    signed = []
    for i in range(1, events + 1):
        async with conn.transaction():
            seq = await append(conn, sample_event(rng, i))
        assert seq == i
        if checkpoint_every and i % checkpoint_every == 0:
            row = await write_checkpoint(conn, key)
            assert row is not None and row["seq"] == i
            signed.append(i)
    return signed


# ---------------------------------------------------------------- reading and forging rows as the owner


async def tamper_session(conn: asyncpg.Connection) -> None:
    """Switch this superuser session's triggers off: what an attacker with the owner's password does."""
    await conn.execute("SET session_replication_role = replica")


async def row(conn: asyncpg.Connection, seq: int) -> dict[str, Any]:
    found = await conn.fetchrow(f"SELECT {', '.join(HASHED_FIELDS)}, hash FROM audit_events WHERE seq = $1", seq)
    assert found is not None, f"no event {seq}"
    return dict(found)


async def rows(conn: asyncpg.Connection, first: int = 1) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(
        f"SELECT {', '.join(HASHED_FIELDS)}, hash FROM audit_events WHERE seq >= $1 ORDER BY seq", first)]


async def insert_row(conn: asyncpg.Connection, values: dict[str, Any]) -> None:
    columns = [*HASHED_FIELDS, "hash"]
    await conn.execute(
        f"INSERT INTO audit_events ({', '.join(columns)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})",
        *[values[c] for c in columns],
    )


async def replace_row(conn: asyncpg.Connection, old_seq: int, old_recorded_at: datetime,
                      values: dict[str, Any]) -> None:
    """Replace one stored event by `values` (delete + insert: also moves it between partitions)."""
    await conn.execute("DELETE FROM audit_events WHERE seq = $1 AND recorded_at = $2", old_seq, old_recorded_at)
    await insert_row(conn, values)


def forged(prev: dict[str, Any] | None, seq: int, recorded_at: datetime, **fields: Any) -> dict[str, Any]:
    """A new event that links correctly to `prev` (None: the genesis) and carries a correct hash."""
    values: dict[str, Any] = {name: None for name in HASHED_FIELDS}
    values.update(
        seq=seq, event_id=uuid.uuid4(), recorded_at=recorded_at, occurred_at=recorded_at,
        actor_id="mallory", actor_name="Mallory", actor_role="admin", auth_method="api_token",
        action="investment.recorded", entity_type="investment", entity_id="forged",
        before={}, after={"amount": "99999999.00"}, outcome="succeeded",
        prev_hash=bytes(prev["hash"]) if prev else audit_chain.GENESIS,
    )
    values.update(fields)
    values["hash"] = event_hash(values)
    return values


async def recompute_from(conn: asyncpg.Connection, first: int, move_head: bool = True) -> None:
    """Relink and rehash every event from `first` on, as a careful forger would; optionally move the head."""
    prev = bytes((await row(conn, first - 1))["hash"]) if first > 1 else audit_chain.GENESIS
    last = None
    for r in await rows(conn, first):
        r["prev_hash"] = prev
        new_hash = event_hash(r)
        await conn.execute("UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE seq = $3 AND recorded_at = $4",
                           prev, new_hash, r["seq"], r["recorded_at"])
        prev, last = new_hash, r["seq"]
    if move_head and last is not None:
        await conn.execute("UPDATE audit_chain_head SET seq = $1, hash = $2", last, prev)


async def sign_checkpoint(conn: asyncpg.Connection, seq: int, chain_hash: bytes, key: bytes) -> None:
    await conn.execute(
        "INSERT INTO audit_checkpoints (seq, hash, key_id, signature) VALUES ($1, $2, $3, $4)",
        seq, chain_hash, audit_chain.key_id(key), audit_chain.checkpoint_signature(key, seq, chain_hash),
    )


# ---------------------------------------------------------------- the HTTP side


def idempotent_request_id(user_id: str, key: str) -> str:
    """The request id the API derives from an Idempotency-Key (api/idempotency.py)."""
    return "idem-" + hashlib.sha256(f"{user_id}\n{key}".encode()).hexdigest()[:32]


def agent() -> str:
    """A User-Agent no other request sends: finds exactly the events one request caused."""
    return f"accord-audit-test/{uuid.uuid4().hex}"


def error_text(detail: Any) -> str:
    """How AttemptAuditMiddleware stores a response's `detail` as the event's error."""
    return detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)


async def events_by_agent(pool: asyncpg.Pool, user_agent: str) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(
        "SELECT * FROM audit_events WHERE user_agent = $1 ORDER BY seq", user_agent)]


async def db_now(pool: asyncpg.Pool) -> datetime:
    return await pool.fetchval("SELECT clock_timestamp()")


def microsecond_later(t: datetime) -> datetime:
    return t + timedelta(microseconds=1)
