"""The audit tables are append-only: by grants for the application role, by triggers for everyone.

These run on the shared session database, so every statement that must be refused runs
inside a transaction that is rolled back whatever happens: a missing guard fails the
test without changing anything the other tests rely on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from db.audit_chain import AuditEvent, append, verify, write_checkpoint
from runtime.checkpoints import checkpoint_once
from tests.conftest import AUDIT_KEY, new_id

REFUSED = (asyncpg.InsufficientPrivilegeError,)


@asynccontextmanager
async def as_app_role(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A shared-pool connection acting as `accord_app`, the role the API and workers connect as."""
    async with pool.acquire() as conn:
        await conn.execute("SET ROLE accord_app")
        try:
            assert await conn.fetchval("SELECT current_user") == "accord_app"
            yield conn
        finally:
            await conn.execute("RESET ROLE")
        assert await conn.fetchval("SELECT current_user") == "postgres"


async def refused(conn: asyncpg.Connection, sql: str, *args: object) -> str:
    """Run `sql` in a transaction that is always rolled back; it must fail with insufficient privilege."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute("SET LOCAL lock_timeout = '5s'")
        with pytest.raises(REFUSED) as caught:
            await conn.execute(sql, *args)
    finally:
        await transaction.rollback()
    return str(caught.value)


async def some_event(pool: asyncpg.Pool) -> tuple[int, str]:
    """Append one event (so rows exist for row triggers to fire on) and sign a checkpoint."""
    async with pool.acquire() as conn, conn.transaction():
        seq = await append(conn, AuditEvent(
            actor_id="immutability-test", actor_name="Immutability test", actor_role="system", auth_method="cli",
            action="test.immutability", entity_type="audit_trail", entity_id=new_id("probe-")))
    await checkpoint_once(pool, AUDIT_KEY)
    partition = await pool.fetchval("SELECT tableoid::regclass::text FROM audit_events WHERE seq = $1", seq)
    assert partition.startswith("audit_events_2") and partition != "audit_events_default"
    return seq, partition


# ---------------------------------------------------------------- the application role


async def test_app_role_may_append_and_sign(pool: asyncpg.Pool) -> None:
    async with as_app_role(pool) as conn:
        async with conn.transaction():
            seq = await append(conn, AuditEvent(
                actor_id="immutability-test", actor_name="应用角色 App role", actor_role="system",
                auth_method="cli", action="test.app_role_append", entity_type="audit_trail",
                entity_id=new_id("append-"), after={"note": "appended as accord_app"}))
        assert seq is not None
        assert await conn.fetchval("SELECT action FROM audit_events WHERE seq = $1", seq) == "test.app_role_append"
        assert await conn.fetchval("SELECT seq FROM audit_chain_head") >= seq
        # Workers sign checkpoints as accord_app too.
        try:
            row = await write_checkpoint(conn, AUDIT_KEY)
        except asyncpg.UniqueViolationError:  # a concurrent signer won: fine
            row = None
        assert row is None or row["seq"] >= seq
        assert await conn.fetchval("SELECT max(seq) FROM audit_checkpoints") >= seq


async def test_app_role_can_neither_update_delete_nor_truncate(pool: asyncpg.Pool) -> None:
    seq, partition = await some_event(pool)
    statements = [
        ("UPDATE audit_events SET actor_name = 'Mallory' WHERE seq = $1", seq),
        ("UPDATE audit_events SET outcome = 'refused'", None),
        ("DELETE FROM audit_events WHERE seq = $1", seq),
        ("TRUNCATE audit_events", None),
        (f"UPDATE {partition} SET actor_name = 'Mallory' WHERE seq = $1", seq),
        (f"DELETE FROM {partition} WHERE seq = $1", seq),
        (f"TRUNCATE {partition}", None),
        ("UPDATE audit_events_default SET actor_name = 'Mallory'", None),
        ("DELETE FROM audit_events_default", None),
        ("TRUNCATE audit_events_default", None),
        ("UPDATE audit_checkpoints SET hash = sha256(hash)", None),
        ("DELETE FROM audit_checkpoints", None),
        ("TRUNCATE audit_checkpoints", None),
        ("UPDATE audit_archives SET events = 0", None),
        ("DELETE FROM audit_archives", None),
        ("TRUNCATE audit_archives", None),
        ("DELETE FROM audit_chain_head", None),
        ("TRUNCATE audit_chain_head", None),
        ("INSERT INTO audit_chain_head (id, seq, hash) VALUES (true, 0, '\\x00')", None),
        # Nor can it get around the grants: no dropping, detaching, disabling triggers or replica mode.
        (f"DROP TABLE {partition}", None),
        (f"ALTER TABLE audit_events DETACH PARTITION {partition}", None),
        ("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only", None),
        ("SET session_replication_role = replica", None),
        ("SELECT audit_ensure_partition('2199-01-01')", None),
    ]
    async with as_app_role(pool) as conn:
        for sql, arg in statements:
            message = await refused(conn, sql, *([arg] if arg is not None else []))
            assert "permission denied" in message or "must be owner" in message, (sql, message)
    # Nothing changed.
    assert await pool.fetchval("SELECT actor_name FROM audit_events WHERE seq = $1", seq) == "Immutability test"


async def test_app_role_can_still_verify(pool: asyncpg.Pool) -> None:
    await some_event(pool)
    async with as_app_role(pool) as conn:
        verdict = await verify(conn, AUDIT_KEY)
    assert verdict.intact, verdict.detail


# ---------------------------------------------------------------- the owner, through the triggers


async def test_owner_is_refused_by_the_triggers(pool: asyncpg.Pool) -> None:
    seq, partition = await some_event(pool)
    checkpoint = await pool.fetchval("SELECT max(seq) FROM audit_checkpoints")
    statements = [
        ("UPDATE audit_events SET actor_name = 'Mallory' WHERE seq = $1", seq, "UPDATE"),
        ("DELETE FROM audit_events WHERE seq = $1", seq, "DELETE"),
        ("TRUNCATE audit_events", None, "TRUNCATE"),
        (f"UPDATE {partition} SET actor_name = 'Mallory' WHERE seq = $1", seq, "UPDATE"),
        (f"DELETE FROM {partition} WHERE seq = $1", seq, "DELETE"),
        (f"TRUNCATE {partition}", None, "TRUNCATE"),
        ("TRUNCATE audit_events_default", None, "TRUNCATE"),
        ("UPDATE audit_checkpoints SET hash = sha256(hash) WHERE seq = $1", checkpoint, "UPDATE"),
        ("DELETE FROM audit_checkpoints WHERE seq = $1", checkpoint, "DELETE"),
        ("TRUNCATE audit_checkpoints", None, "TRUNCATE"),
    ]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        for sql, arg, operation in statements:
            message = await refused(conn, sql, *([arg] if arg is not None else []))
            assert f"the audit trail is append-only: {operation}" in message, (sql, message)
    assert await pool.fetchval("SELECT actor_name FROM audit_events WHERE seq = $1", seq) == "Immutability test"


async def test_owner_cannot_rewrite_an_archive_record(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("SET LOCAL lock_timeout = '5s'")
            await conn.execute(
                "INSERT INTO audit_archives (month, first_seq, last_seq, last_hash, events, export_sha256, archived_by) "
                "VALUES ('1999-01-01', 1, 1, '\\x00', 1, 'x', 'immutability test')")
            for sql in ("UPDATE audit_archives SET events = 0 WHERE month = '1999-01-01'",
                        "DELETE FROM audit_archives WHERE month = '1999-01-01'"):
                with pytest.raises(REFUSED, match="append-only"):
                    async with conn.transaction():  # a savepoint: the outer transaction goes on
                        await conn.execute(sql)
        finally:
            await transaction.rollback()


async def test_partitions_created_later_are_guarded_too(pool: asyncpg.Pool) -> None:
    """`accord audit partitions` creates months ahead: each gets the TRUNCATE guard and the grants."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("SET LOCAL lock_timeout = '5s'")
            name = await conn.fetchval("SELECT audit_ensure_partition('2199-01-15')")
            assert name == "audit_events_2199_01"
            assert await conn.fetchval("SELECT audit_ensure_partition('2199-01-01')") == name  # idempotent
            grants = {r["privilege_type"] for r in await conn.fetch(
                "SELECT privilege_type FROM information_schema.role_table_grants "
                "WHERE table_name = $1 AND grantee = 'accord_app'", name)}
            assert grants == {"SELECT", "INSERT"}
            with pytest.raises(REFUSED, match="append-only: TRUNCATE"):
                async with conn.transaction():
                    await conn.execute(f"TRUNCATE {name}")
            # Row triggers are cloned from the parent onto every new partition.
            triggers = {r["tgname"] for r in await conn.fetch(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass", name)}
            assert "audit_events_append_only" in triggers and f"{name}_no_truncate" in triggers
        finally:
            await transaction.rollback()


async def test_owner_cannot_truncate_the_archive_records(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await refused(conn, "TRUNCATE audit_archives")
