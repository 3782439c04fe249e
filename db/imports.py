"""Import batches (migration 008): an uploaded file, its preview and, once confirmed, what each row became.

The pool's codecs (db/pool.py) turn jsonb into Python objects both ways."""

from __future__ import annotations

from typing import Any

import asyncpg

_COLUMNS = ("id, uploaded_by, uploader, department, file_name, size_bytes, sha256, created_at, status, headers, "
            "rows, errors, counts, results, confirmed_by, confirmed_at")


async def insert_batch(conn: asyncpg.Connection, batch_id: str, uploaded_by: str, uploader: str,
                       department: str | None, file_name: str, size_bytes: int, sha256: str,
                       headers: dict[str, str], rows: list[dict[str, Any]], errors: list[dict[str, Any]],
                       counts: dict[str, int]) -> None:
    await conn.execute(
        """INSERT INTO import_batches (id, uploaded_by, uploader, department, file_name, size_bytes, sha256, status,
                                       headers, rows, errors, counts)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'previewed', $8, $9, $10, $11)""",
        batch_id, uploaded_by, uploader, department, file_name, size_bytes, sha256, headers, rows, errors, counts)


async def batch(conn: asyncpg.Connection, batch_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM import_batches WHERE id = $1"
                              + (" FOR UPDATE" if for_update else ""), batch_id)
    return None if row is None else dict(row)


async def confirmed_with_sha256(conn: asyncpg.Connection, sha256: str) -> list[asyncpg.Record]:
    """Earlier confirmed uploads of the same bytes, oldest first."""
    return await conn.fetch(
        "SELECT id, file_name, uploader, confirmed_at FROM import_batches "
        "WHERE sha256 = $1 AND status = 'confirmed' ORDER BY confirmed_at", sha256)


async def confirm(conn: asyncpg.Connection, batch_id: str, confirmed_by: str,
                  results: list[dict[str, Any]]) -> None:
    await conn.execute(
        "UPDATE import_batches SET status = 'confirmed', confirmed_by = $2, confirmed_at = now(), "
        "results = $3 WHERE id = $1", batch_id, confirmed_by, results)


async def existing_projects(conn: asyncpg.Connection,
                            keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    """Projects that already exist by natural key (partner organization id, project title, case ignored).

    → {(partner id, lower title): {cooperation_id, project_id}}. Read with the pool's own view
    (every department): a project of another department is a duplicate too, even if the
    importer cannot open it."""
    if not keys:
        return {}
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (c.partner_organization_id, lower(p.title))
               c.partner_organization_id AS partner_id, lower(p.title) AS title, p.id AS project_id,
               p.cooperation_id, c.department
        FROM projects p JOIN cooperations c ON c.id = p.cooperation_id
        JOIN unnest($1::text[], $2::text[]) AS k(partner_id, title)
          ON c.partner_organization_id = k.partner_id AND lower(p.title) = lower(k.title)
        ORDER BY c.partner_organization_id, lower(p.title), p.created_at
        """, [k[0] for k in keys], [k[1] for k in keys])
    return {(r["partner_id"], r["title"]): {"cooperation_id": r["cooperation_id"], "project_id": r["project_id"],
                                            "department": r["department"]} for r in rows}
