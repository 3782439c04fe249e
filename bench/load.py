"""The bench database: an embedded PostgreSQL, migrated, filled with a generated audit trail.

Loading is bulk: the secondary indexes are dropped, rows go in through binary COPY while
the generator computes the chain (PostgreSQL inserts on one core while Python hashes on
the other), then the indexes are rebuilt exactly as the migration defined them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

from bench.dataset import COPY_COLUMNS, Generator, Shape
from db.audit_chain import write_checkpoint
from db.migrate import migrate
from runtime.embedded import EmbeddedPostgres, start_embedded_postgres

BENCH_KEY = b"accord-bench-checkpoint-key"
COPY_BATCH = 500_000  # rows per COPY (and transaction): progress survives in steps this size


@dataclass
class Server:
    """An embedded server in a folder of its own; `keep` leaves the folder (and data) behind."""

    folder: Path
    keep: bool
    embedded: EmbeddedPostgres | None = None

    def start(self, database: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        # As root the server runs as its own system user, which must be able to enter the folder.
        self.folder.chmod(0o755)
        self.embedded = start_embedded_postgres(self.folder / "data", database=database)
        return self.embedded.url

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
        if not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def admin_url(self) -> str:
        """The `postgres` database: for dropping and recreating the bench database."""
        assert self.embedded is not None
        return self.embedded.server.get_uri()  # type: ignore[attr-defined]

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.folder / "data").rglob("*") if p.is_file())


def server_for(keep: Path | None) -> Server:
    if keep is not None:
        return Server(keep.resolve(), keep=True)
    return Server(Path(tempfile.mkdtemp(prefix="accord-bench-pg-")), keep=False)


def database_name(shape: Shape) -> str:
    """One database per shape, so a kept folder can hold a 2M and a 10M dataset side by side."""
    digest = hashlib.sha256(repr(shape).encode()).hexdigest()[:8]
    return f"accord_bench_{shape.events}_{digest}"


# ---------------------------------------------------------------- loading


async def dataset_ready(conn: asyncpg.Connection, shape: Shape) -> dict | None:
    """The record of a completed load of this shape, or None."""
    if not await conn.fetchval("SELECT to_regclass('bench_dataset') IS NOT NULL"):
        return None
    row = await conn.fetchrow("SELECT * FROM bench_dataset WHERE events = $1", shape.events)
    return dict(row) if row else None


async def reset_database(admin_url: str, name: str) -> None:
    """Drop a half-loaded database: the append-only triggers forbid emptying it any other way."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
    finally:
        await conn.close()


async def load(url: str, shape: Shape, progress=print) -> dict:
    """Migrate, fill, index, vacuum; return timings."""
    conn = await asyncpg.connect(url)
    try:
        await _binary_jsonb(conn)
        return await _load(conn, shape, progress)
    finally:
        await conn.close()


async def _binary_jsonb(conn: asyncpg.Connection) -> None:
    """COPY is binary, and the pool's jsonb codec is text: jsonb's binary form is a version byte and the text."""
    await conn.set_type_codec("jsonb", schema="pg_catalog", format="binary",
                              encoder=lambda value: b"\x01" + json.dumps(value, ensure_ascii=False).encode(),
                              decoder=lambda data: json.loads(data[1:]))


async def _load(conn: asyncpg.Connection, shape: Shape, progress) -> dict:
    await migrate(conn)
    started = time.perf_counter()
    generator = Generator(shape, datetime.now(timezone.utc))
    await ensure_partitions(conn, generator.months_used())
    indexes = await drop_secondary_indexes(conn)
    await conn.execute("SET synchronous_commit = off")  # bulk load: losing it on a crash is fine
    copy_seconds = await copy_rows(conn, generator, shape.events, progress)
    progress(f"rebuilding {len(indexes)} indexes ...")
    index_started = time.perf_counter()
    await rebuild_indexes(conn, indexes)
    index_seconds = time.perf_counter() - index_started
    progress(f"  indexes rebuilt in {index_seconds:.0f} s; vacuum and analyze ...")
    vacuum_started = time.perf_counter()
    # Sets hint bits and the visibility map now, so the first measured reads do not write,
    # and gives the planner statistics.
    await conn.execute("VACUUM (ANALYZE) audit_events")
    vacuum_seconds = time.perf_counter() - vacuum_started
    await finish_chain(conn, generator.head)
    result = {
        "events": shape.events, "seed": shape.seed, "first_recorded_at": generator.start,
        "last_recorded_at": generator.end, "copy_seconds": copy_seconds, "index_seconds": index_seconds,
        "vacuum_seconds": vacuum_seconds, "load_seconds": time.perf_counter() - started,
    }
    await record_dataset(conn, result)
    return result


async def ensure_partitions(conn: asyncpg.Connection, months: list[datetime]) -> None:
    # The migration creates last month onwards; the generated past needs its own months.
    for month in months:
        await conn.execute("SELECT audit_ensure_partition($1)", month.date())


async def drop_secondary_indexes(conn: asyncpg.Connection) -> list[str]:
    """Drop every index on audit_events but the primary key; return their definitions."""
    rows = await conn.fetch(
        """
        SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'audit_events'::regclass AND NOT i.indisprimary
        ORDER BY c.relname
        """
    )
    for row in rows:
        await conn.execute(f'DROP INDEX "{row["name"]}"')  # drops the partitions' indexes too
    # The definition of a partitioned index reads "ON ONLY audit_events", which would build
    # an empty, invalid parent index; without ONLY every partition gets its own.
    return [row["definition"].replace(" ON ONLY ", " ON ", 1) for row in rows]


async def rebuild_indexes(conn: asyncpg.Connection, definitions: list[str]) -> None:
    await conn.execute("SET maintenance_work_mem = '512MB'")
    for definition in definitions:
        await conn.execute(definition)
    await conn.execute("RESET maintenance_work_mem")
    invalid = await conn.fetchval("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
    if invalid:
        raise RuntimeError(f"{invalid} indexes are invalid after the rebuild")


async def copy_rows(conn: asyncpg.Connection, generator: Generator, total: int, progress) -> float:
    """COPY the generated chain in batches; return the seconds spent."""
    rows = generator.rows()
    started = time.perf_counter()
    done = 0
    while done < total:
        size = min(COPY_BATCH, total - done)
        async with conn.transaction():
            await conn.copy_records_to_table("audit_events", records=_take(rows, size), columns=list(COPY_COLUMNS))
        done += size
        elapsed = time.perf_counter() - started
        progress(f"  {done:>12,} / {total:,} events   {done / elapsed:>9,.0f} events/s   {elapsed:>7.0f} s")
    return time.perf_counter() - started


async def _take(rows: Iterator[tuple], count: int) -> AsyncIterator[tuple]:
    """An async iterable, so asyncpg streams the COPY while rows are still being made."""
    for _ in range(count):
        yield next(rows)


async def finish_chain(conn: asyncpg.Connection, head: tuple[int, bytes]) -> None:
    """Move the chain head to the last row loaded and sign it, as the running system would."""
    seq, chain_hash = head
    await conn.execute("UPDATE audit_chain_head SET seq = $1, hash = $2", seq, chain_hash)
    await write_checkpoint(conn, BENCH_KEY)


async def record_dataset(conn: asyncpg.Connection, result: dict) -> None:
    """Marks the load complete: a kept folder is reused only when this row exists."""
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS bench_dataset (
            events bigint PRIMARY KEY, seed bigint NOT NULL, first_recorded_at timestamptz NOT NULL,
            last_recorded_at timestamptz NOT NULL, copy_seconds float8 NOT NULL, index_seconds float8 NOT NULL,
            vacuum_seconds float8 NOT NULL, load_seconds float8 NOT NULL,
            loaded_at timestamptz NOT NULL DEFAULT now())
        """
    )
    await conn.execute(
        "INSERT INTO bench_dataset (events, seed, first_recorded_at, last_recorded_at, copy_seconds, "
        "index_seconds, vacuum_seconds, load_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        *(result[k] for k in ("events", "seed", "first_recorded_at", "last_recorded_at", "copy_seconds",
                              "index_seconds", "vacuum_seconds", "load_seconds")),
    )
