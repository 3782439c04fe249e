"""Document metadata: documents, their append-only versions, and the blobs they name.

The bytes are in the document store (documents/storage.py); these rows say which bytes
are which version of which document, who uploaded them, and their SHA-256. A version row
is written only after its blob is stored, so a version never names missing bytes unless
the store lost them (which `verify` reports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import BaseModel

from domain.documents import SINGLE_PER_AGREEMENT, DocumentKind, DocumentRef


class NewVersion(BaseModel):
    """One upload, staged and stored, to record as a version (the API's VersionView adds its number and time)."""

    sha256: str
    size_bytes: int
    content_type: str
    file_name: str
    note: str
    comments_on: int | None
    uploaded_by: str
    uploader_name: str


@dataclass
class Target:
    """Where an upload goes: an existing document, or a new one of this kind."""

    cooperation_id: str
    kind: DocumentKind
    document_id: str  # the id a new document gets (ignored for an agreement's draft or signed original if it exists)
    title: str
    agreement_id: str | None = None
    negotiation_event_id: str | None = None
    existing: bool = False  # add a version to `document_id`, which must exist


async def add_version(conn: asyncpg.Connection, target: Target, new: NewVersion,
                      created_by: str) -> tuple[asyncpg.Record, asyncpg.Record, bool]:
    """Record an upload as the next version of its document, in the caller's transaction.

    Returns (document, version, created). The same bytes as the document's latest version
    are that version (created False): a double click or a retried upload adds nothing."""
    await conn.execute(
        """
        INSERT INTO document_blobs (sha256, size_bytes, content_type) VALUES ($1, $2, $3)
        ON CONFLICT (sha256) DO NOTHING
        """, new.sha256, new.size_bytes, new.content_type)
    document = await _document_for_update(conn, target, created_by)
    latest = await conn.fetchrow(
        "SELECT * FROM document_versions WHERE document_id = $1 AND version = $2",
        document["id"], document["latest_version"])
    if latest is not None and latest["sha256"] == new.sha256:
        return document, latest, False
    number = document["latest_version"] + 1
    version = await conn.fetchrow(
        """
        INSERT INTO document_versions (document_id, version, cooperation_id, sha256, size_bytes, content_type,
            file_name, note, comments_on, uploaded_by, uploader_name)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        RETURNING *
        """,
        document["id"], number, target.cooperation_id, new.sha256, new.size_bytes, new.content_type, new.file_name,
        new.note, new.comments_on, new.uploaded_by, new.uploader_name)
    document = await conn.fetchrow("UPDATE documents SET latest_version = $2 WHERE id = $1 RETURNING *",
                                   document["id"], number)
    return document, version, True


async def _document_for_update(conn: asyncpg.Connection, target: Target, created_by: str) -> asyncpg.Record:
    """The target document, locked so that two uploads to it number their versions one after the other."""
    if target.existing:
        return await conn.fetchrow("SELECT * FROM documents WHERE id = $1 FOR UPDATE", target.document_id)
    if target.kind in SINGLE_PER_AGREEMENT:
        await conn.execute(
            """
            INSERT INTO documents (id, cooperation_id, agreement_id, kind, title, created_by)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (cooperation_id, agreement_id, kind) WHERE kind IN ('draft', 'signed_original') DO NOTHING
            """, target.document_id, target.cooperation_id, target.agreement_id, target.kind.value, target.title,
            created_by)
        return await conn.fetchrow(
            "SELECT * FROM documents WHERE cooperation_id = $1 AND agreement_id = $2 AND kind = $3 FOR UPDATE",
            target.cooperation_id, target.agreement_id, target.kind.value)
    return await conn.fetchrow(
        """
        INSERT INTO documents (id, cooperation_id, agreement_id, negotiation_event_id, kind, title, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id
        RETURNING *
        """, target.document_id, target.cooperation_id, target.agreement_id, target.negotiation_event_id,
        target.kind.value, target.title, created_by)


async def document(conn: asyncpg.Connection, cooperation_id: str, document_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM documents WHERE id = $1 AND cooperation_id = $2",
                               document_id, cooperation_id)


async def agreement_document(conn: asyncpg.Connection, cooperation_id: str, agreement_id: str,
                             kind: DocumentKind) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM documents WHERE cooperation_id = $1 AND agreement_id = $2 AND kind = $3",
        cooperation_id, agreement_id, kind.value)


async def version(conn: asyncpg.Connection, document_id: str, number: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM document_versions WHERE document_id = $1 AND version = $2",
                               document_id, number)


async def documents_with_versions(conn: asyncpg.Connection, cooperation_id: str,
                                  document_id: str | None = None) -> list[dict[str, Any]]:
    """A cooperation's documents (or one of them), each with its versions, oldest first."""
    docs = await conn.fetch(
        """
        SELECT * FROM documents WHERE cooperation_id = $1 AND ($2::text IS NULL OR id = $2)
        ORDER BY created_at, id
        """, cooperation_id, document_id)
    versions = await conn.fetch(
        """
        SELECT * FROM document_versions WHERE cooperation_id = $1 AND ($2::text IS NULL OR document_id = $2)
        ORDER BY document_id, version
        """, cooperation_id, document_id)
    by_document: dict[str, list[dict[str, Any]]] = {}
    for v in versions:
        by_document.setdefault(v["document_id"], []).append(dict(v))
    return [{**dict(d), "versions": by_document.get(d["id"], [])} for d in docs]


def ref_of(document: asyncpg.Record, version: asyncpg.Record) -> DocumentRef:
    """The fingerprinted reference a review step or a signature records."""
    return DocumentRef(document_id=document["id"], version=version["version"], kind=DocumentKind(document["kind"]),
                       agreement_id=document["agreement_id"], sha256=version["sha256"],
                       file_name=version["file_name"], size_bytes=version["size_bytes"])


async def sealed_references(conn: asyncpg.Connection, cooperation_id: str, document_id: str,
                            number: int) -> list[dict[str, Any]]:
    """Where the read model records this version as decided on, signed or sealed, with the fingerprint
    it records there: the agreement's signed original, a party's signature, a review step."""
    rows = await conn.fetch(
        """
        SELECT 'signed_original' AS kind, a.id AS agreement_id, a.title AS agreement_title,
               NULL::text AS organization_id, NULL::text AS step, a.signed_document AS ref
          FROM agreements a WHERE a.cooperation_id = $1 AND a.signed_document->>'document_id' = $2
               AND (a.signed_document->>'version')::int = $3
        UNION ALL
        SELECT 'signature', a.id, a.title, s.organization_id, NULL, s.document
          FROM signatures s JOIN agreements a ON a.cooperation_id = s.cooperation_id AND a.id = s.agreement_id
         WHERE s.cooperation_id = $1 AND s.document->>'document_id' = $2 AND (s.document->>'version')::int = $3
        UNION ALL
        SELECT 'review_step', a.id, a.title, NULL, step->>'name', step->'document'
          FROM agreements a, jsonb_array_elements(a.review_steps) step
         WHERE a.cooperation_id = $1 AND step->'document'->>'document_id' = $2
               AND (step->'document'->>'version')::int = $3
        """, cooperation_id, document_id, number)
    return [{"kind": r["kind"], "agreement_id": r["agreement_id"], "agreement_title": r["agreement_title"],
             "organization_id": r["organization_id"], "step": r["step"], "sha256": r["ref"]["sha256"],
             "place": _place(r)} for r in rows]


def _place(row: asyncpg.Record) -> str:
    """The place in words (English; pages word it from the structured fields)."""
    if row["kind"] == "signature":
        return f"signature of {row['organization_id']} on {row['agreement_title']}"
    if row["kind"] == "review_step":
        return f"review step {row['step']} of {row['agreement_title']}"
    return f"signed original of {row['agreement_title']}"


async def sealing_events(conn: asyncpg.Connection, cooperation_id: str, document_id: str,
                         number: int) -> list[dict[str, Any]]:
    """Audit events (hash-chained) whose recorded agreement state seals this version."""
    rows = await conn.fetch(
        """
        SELECT seq, action, occurred_at, after->'signed_document' AS ref FROM audit_events
         WHERE cooperation_id = $1 AND action IN ('agreement.signed', 'agreement.original_sealed')
               AND after->'signed_document'->>'document_id' = $2
               AND (after->'signed_document'->>'version')::int = $3
         ORDER BY seq
        """, cooperation_id, document_id, number)
    return [{"audit_seq": r["seq"], "action": r["action"], "occurred_at": r["occurred_at"],
             "sha256": r["ref"]["sha256"]} for r in rows]
