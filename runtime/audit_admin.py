"""`accord audit ...`: verify the chain, sign a checkpoint, create partitions, archive a month.

These run as the database owner (the application role cannot create or drop partitions).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import asyncpg

from db.audit_chain import AuditEvent, append, verify, write_checkpoint

SYSTEM = dict(actor_id="system", actor_name="accord audit", actor_role="system", auth_method="cli")


async def run_verify(conn: asyncpg.Connection, key: bytes, retired: tuple[bytes, ...] = ()) -> dict:
    verdict = await verify(conn, key, retired=retired)
    async with conn.transaction():
        await append(conn, AuditEvent(**SYSTEM, action="audit.verified", entity_type="audit_trail",
                                      entity_id="audit_events", after=verdict.as_dict()))
    return verdict.as_dict()


async def run_checkpoint(conn: asyncpg.Connection, key: bytes) -> dict | None:
    row = await write_checkpoint(conn, key)
    return {"seq": row["seq"], "hash": bytes(row["hash"]).hex()} if row else None


async def ensure_partitions(conn: asyncpg.Connection, months_ahead: int = 24) -> list[str]:
    rows = await conn.fetch(
        "SELECT audit_ensure_partition((date_trunc('month', now()) + make_interval(months => m))::date) AS name "
        "FROM generate_series(0, $1) AS m", months_ahead,
    )
    return [r["name"] for r in rows]


async def archive_month(conn: asyncpg.Connection, key: bytes, month: date, out_dir: Path,
                        retention_days: int, retired: tuple[bytes, ...] = ()) -> dict:
    """Export one month, check it, record it in audit_archives and drop its partition."""
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    cutoff = datetime.now(timezone.utc) - timedelta(days=retention_days)
    if datetime(following.year, following.month, 1, tzinfo=timezone.utc) > cutoff:
        raise SystemExit(f"{first:%Y-%m} is younger than the retention period ({retention_days} days): refused")
    name = f"audit_events_{first:%Y_%m}"
    if await conn.fetchval("SELECT to_regclass($1)", name) is None:
        raise SystemExit(f"no partition {name}")
    older = await conn.fetchval("SELECT count(*) FROM audit_events WHERE recorded_at < $1", first)
    if older:
        raise SystemExit("archive months oldest first: older events are still in place")
    verdict = await verify(conn, key, retired=retired)
    if not verdict.intact:
        raise SystemExit(f"the chain is not intact ({verdict.kind} at {verdict.first_bad_seq}): nothing archived")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"audit-{first:%Y-%m}.jsonl"
    digest, count, first_seq, last_seq, last_hash = hashlib.sha256(), 0, None, None, None
    with path.open("wb") as out:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            async for row in conn.cursor(f"SELECT * FROM {name} ORDER BY seq"):
                line = (json.dumps({k: (bytes(v).hex() if isinstance(v, (bytes, bytearray)) else v)
                                    for k, v in dict(row).items()}, default=str, ensure_ascii=False) + "\n").encode()
                out.write(line)
                digest.update(line)
                count += 1
                first_seq = first_seq or row["seq"]
                last_seq, last_hash = row["seq"], bytes(row["hash"])
    if count == 0:
        async with conn.transaction():
            await conn.execute(f"ALTER TABLE audit_events DETACH PARTITION {name}")
            await conn.execute(f"DROP TABLE {name}")
        return {"month": f"{first:%Y-%m}", "events": 0}
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO audit_archives (month, first_seq, last_seq, last_hash, events, export_sha256, archived_by) "
            "VALUES ($1, $2, $3, $4, $5, $6, 'accord audit archive')",
            first, first_seq, last_seq, last_hash, count, digest.hexdigest(),
        )
        await conn.execute(f"ALTER TABLE audit_events DETACH PARTITION {name}")
        await conn.execute(f"DROP TABLE {name}")
        await append(conn, AuditEvent(**SYSTEM, action="audit.archived", entity_type="audit_partition",
                                      entity_id=name, after={"events": count, "first_seq": first_seq,
                                                             "last_seq": last_seq, "file": str(path),
                                                             "sha256": digest.hexdigest()}))
    return {"month": f"{first:%Y-%m}", "events": count, "file": str(path), "sha256": digest.hexdigest()}
