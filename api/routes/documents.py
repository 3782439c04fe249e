"""Agreement documents: upload versions, list, download, verify, compare, seal the signed original.

Uploads are multipart (`file` plus small fields), streamed into the store's staging area
(api/uploads.py) and stored under their SHA-256 before a version row names them. Every
upload, download, view, verification and comparison is an audit event. Documents follow
their cooperation's access rules: another department's document answers 404.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import asyncpg
from fastapi import APIRouter, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from api.audit_log import event_for, record_access
from api.errors import ApiError, conflict, field_error, not_found
from api.document_schemas import (AuditSealCheck, ComparisonView, DocumentView, SealedCheck, UploadAnswer,
                                  UploadFields, Verification, VersionView)
from api.schemas import SealIn
from api.services import ActorDep, RequestIdDep, Services, ServicesDep, new_id
from api.uploads import Upload, receive_upload
from api.writes import cooperation_action
from db import documents as store_db
from db import queries
from db.audit_chain import append
from documents import filetypes
from documents.compare import compare
from documents.storage import BlobMissing, BlobStore, Stager, fingerprint
from documents.text import NoText, paragraphs
from domain import access
from domain.audit import Actor
from domain.cooperation import CooperationState, SealSignedOriginal
from domain.documents import AGREEMENT_KINDS, DocumentKind, DocumentRef
from domain.types import Identifier

router = APIRouter(prefix="/cooperations/{cooperation_id}", tags=["documents"])
COMPARE_MAX_BYTES = 50 * 1024 * 1024
"""Drafts are compared up to this size; a larger file is a scan, not a text to compare."""


# ---------------------------------------------------------------- upload


@router.post("/documents", status_code=status.HTTP_201_CREATED, response_model=UploadAnswer,
             openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["file", "kind"],
                 "properties": {"file": {"type": "string", "format": "binary"},
                                "kind": {"type": "string", "enum": [k.value for k in DocumentKind]},
                                "agreement_id": {"type": "string"}, "negotiation_event_id": {"type": "string"},
                                "title": {"type": "string"}, "note": {"type": "string"},
                                "comments_on": {"type": "integer"}}}}}}})
async def upload(cooperation_id: Identifier, request: Request, response: Response, services: ServicesDep,
                 actor: ActorDep, request_id: RequestIdDep) -> UploadAnswer:
    """Upload a document: an agreement's draft version, review comments or signed original
    (`agreement_id`), or negotiation material. An agreement's draft and signed original are
    one document each: every upload is their next version. The same bytes as the latest
    version add nothing (200 instead of 201)."""
    department = await visible_department(services, actor, cooperation_id)
    check_may_upload(actor, department)  # before reading a byte of the body
    received = await receive_upload(request, staging_dir(services), services.document_max_bytes)
    answer = await store_upload(services, actor, cooperation_id, received, request_id)
    if not answer.created:
        response.status_code = status.HTTP_200_OK
    return answer


@router.post("/documents/{document_id}/versions", status_code=status.HTTP_201_CREATED, response_model=UploadAnswer,
             openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["file"],
                 "properties": {"file": {"type": "string", "format": "binary"}, "note": {"type": "string"},
                                "comments_on": {"type": "integer"}}}}}}})
async def upload_version(cooperation_id: Identifier, document_id: Identifier, request: Request, response: Response,
                         services: ServicesDep, actor: ActorDep, request_id: RequestIdDep) -> UploadAnswer:
    """Add a version to an existing document."""
    department = await visible_department(services, actor, cooperation_id)
    check_may_upload(actor, department)
    received = await receive_upload(request, staging_dir(services), services.document_max_bytes)
    answer = await store_upload(services, actor, cooperation_id, received, request_id, document_id=document_id)
    if not answer.created:
        response.status_code = status.HTTP_200_OK
    return answer


async def store_upload(services: Services, actor: Actor, cooperation_id: str, received: Upload, request_id: str,
                       document_id: str | None = None) -> UploadAnswer:
    """Check a received upload, store its bytes, record the version and its audit event.

    The staged file is gone afterwards, stored or discarded, whatever happens."""
    try:
        return await _store(services, actor, cooperation_id, received, request_id, document_id)
    finally:
        received.discard()


async def _store(services: Services, actor: Actor, cooperation_id: str, received: Upload, request_id: str,
                 document_id: str | None) -> UploadAnswer:
    try:
        fields = UploadFields(**{k: (v if v != "" else None) for k, v in received.fields.items()
                                 if k not in ("csrf_token", "form_key")})
    except ValidationError as error:
        raise ApiError(422, [{**e, "loc": ["body", *e["loc"]]} for e in
                             json.loads(error.json(include_url=False, include_context=False))]) from None
    if received.file is None:
        raise field_error(["body", "file"], "choose a file to upload (the multipart field `file`)")
    async with services.pool.acquire() as conn:
        header = await queries.cooperation_header(conn, cooperation_id)
        assert header is not None  # visible_department found it before the body was read
        if header.status == "terminated":
            raise conflict("the cooperation is terminated; nothing can change any more")
        target = await _target(conn, actor, header.departments[0], cooperation_id, fields, document_id,
                               received, request_id)
    file_name = filetypes.clean_file_name(received.file_name or "")
    try:
        file_type = filetypes.check(target.kind, file_name, received.file.head, received.file.path)
    except filetypes.NotAllowed as error:
        raise ApiError(415, str(error)) from None
    staged = received.file
    await _require_store(services).put(staged, file_type.content_type)
    new = store_db.NewVersion(sha256=staged.sha256, size_bytes=staged.size, content_type=file_type.content_type,
                              file_name=file_name, note=fields.note or "", comments_on=fields.comments_on,
                              uploaded_by=actor.user_id, uploader_name=actor.name)
    async with services.pool.acquire() as conn, conn.transaction():
        document, version, created = await store_db.add_version(conn, target, new, actor.user_id)
        if created:
            await append(conn, event_for(
                actor, request_id=request_id, action="document.uploaded", entity_type="document_version",
                entity_id=f"{document['id']}/v{version['version']}", cooperation_id=cooperation_id,
                after={"document_id": document["id"], "kind": document["kind"], "title": document["title"],
                       "agreement_id": document["agreement_id"], "version": version["version"],
                       "sha256": version["sha256"], "size_bytes": version["size_bytes"],
                       "content_type": version["content_type"], "file_name": version["file_name"],
                       "note": version["note"], "comments_on": version["comments_on"]}))
        view = await store_db.documents_with_versions(conn, cooperation_id, document["id"])
    return UploadAnswer(document=DocumentView(**view[0]), version=VersionView(**dict(version)), created=created)


async def _target(conn: asyncpg.Connection, actor: Actor, department: str | None, cooperation_id: str,
                  fields: UploadFields, document_id: str | None, received: Upload,
                  request_id: str) -> store_db.Target:
    """Which document the upload becomes a version of, after the rules for its kind and agreement."""
    if document_id is not None:
        existing = await store_db.document(conn, cooperation_id, document_id)
        if existing is None:
            raise not_found(f"document {document_id}")
        kind, agreement_id = DocumentKind(existing["kind"]), existing["agreement_id"]
        target = store_db.Target(cooperation_id, kind, document_id, existing["title"], agreement_id,
                                 existing["negotiation_event_id"], existing=True)
    else:
        if fields.kind is None:
            raise field_error(["body", "kind"], "say what the document is: " + ", ".join(k.value for k in DocumentKind))
        kind, agreement_id = fields.kind, fields.agreement_id
        if kind in AGREEMENT_KINDS and agreement_id is None:
            raise field_error(["body", "agreement_id"], f"a {kind.value} document belongs to an agreement")
        if kind == DocumentKind.material and agreement_id is not None:
            raise field_error(["body", "agreement_id"], "negotiation material belongs to the negotiation record")
        title = fields.title or filetypes.clean_file_name(received.file_name or "")
        target = store_db.Target(cooperation_id, kind, new_id(request_id, "document"), title, agreement_id,
                                 fields.negotiation_event_id)
    access.check_document_upload(actor, kind.value, department, f"cooperation {cooperation_id}")
    if fields.negotiation_event_id is not None:
        found = await conn.fetchval("SELECT 1 FROM negotiation_events WHERE cooperation_id = $1 AND id = $2",
                                    cooperation_id, fields.negotiation_event_id)
        if not found:
            raise field_error(["body", "negotiation_event_id"], "no negotiation event of this cooperation has this id")
    if agreement_id is not None:
        await _check_agreement_accepts(conn, cooperation_id, agreement_id, kind, document_id is not None)
    if fields.comments_on is not None:
        await _check_comments_on(conn, cooperation_id, agreement_id, kind, fields.comments_on)
    return target


async def _check_agreement_accepts(conn: asyncpg.Connection, cooperation_id: str, agreement_id: str,
                                   kind: DocumentKind, named: bool) -> None:
    agreement = await queries.agreement(conn, cooperation_id, agreement_id)
    if agreement is None:
        raise (not_found(f"agreement {agreement_id}") if named
               else field_error(["body", "agreement_id"], "no agreement of this cooperation has this id"))
    state = agreement["status"]
    if kind == DocumentKind.draft and state in ("approved", "signed"):
        raise conflict(f"the agreement is {state}; its draft can change only after a rejection returns it to draft")
    if kind == DocumentKind.signed_original:
        if state not in ("approved", "signed"):
            raise conflict(f"the agreement is {state}; a signed original follows the approval of every review step")
        sealed = agreement.get("signed_document")
        if sealed:
            ref = DocumentRef(**sealed)
            raise conflict(f"the signed original is sealed ({ref.label()}); it cannot be replaced")


async def _check_comments_on(conn: asyncpg.Connection, cooperation_id: str, agreement_id: str | None,
                             kind: DocumentKind, number: int) -> None:
    if kind != DocumentKind.review_comments or agreement_id is None:
        raise field_error(["body", "comments_on"], "only review comments name the draft version they comment on")
    draft = await store_db.agreement_document(conn, cooperation_id, agreement_id, DocumentKind.draft)
    if draft is None or number > draft["latest_version"]:
        raise field_error(["body", "comments_on"], f"the agreement's draft has no version {number}")


# ---------------------------------------------------------------- reads


@router.get("/documents", response_model=list[DocumentView])
async def list_documents(cooperation_id: Identifier, services: ServicesDep, actor: ActorDep) -> list[dict]:
    """The cooperation's documents with every version, oldest first."""
    await visible_department(services, actor, cooperation_id)
    async with services.pool.acquire() as conn:
        return await store_db.documents_with_versions(conn, cooperation_id)


@router.get("/documents/{document_id}", response_model=DocumentView)
async def get_document(cooperation_id: Identifier, document_id: Identifier, services: ServicesDep,
                       actor: ActorDep) -> dict:
    await visible_department(services, actor, cooperation_id)
    async with services.pool.acquire() as conn:
        found = await store_db.documents_with_versions(conn, cooperation_id, document_id)
    if not found:
        raise not_found(f"document {document_id}")
    return found[0]


@router.get("/documents/{document_id}/versions/{version}/content", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "The file, byte for byte"},
                       410: {"description": "The stored bytes are missing from the document store"}})
async def download(cooperation_id: Identifier, document_id: Identifier, version: Annotated[int, PathParam(ge=1)],
                   request: Request, services: ServicesDep, actor: ActorDep,
                   disposition: Annotated[Literal["attachment", "inline"], Query(
                       description="attachment: save the file; inline: view it in the browser")] = "attachment",
                   ) -> StreamingResponse:
    """The file of one version, as uploaded. Every download and view is an audit event."""
    await visible_department(services, actor, cooperation_id)
    store = _require_store(services)
    async with services.pool.acquire() as conn:
        row = await _version(conn, cooperation_id, document_id, version)
        chunks = store.read(row["sha256"])
        try:
            first = await anext(chunks, b"")
        except BlobMissing:
            await _audit(conn, request, actor, "document.download_failed", row,
                         {"reason": "the stored bytes are missing"})
            raise ApiError(410, f"the stored bytes of {row['file_name']} v{version} are missing from the document "
                                "store; verify reports the loss") from None
        await _audit(conn, request, actor, "document.viewed" if disposition == "inline" else "document.downloaded",
                     row, {})

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    digest = base64.b64encode(bytes.fromhex(row["sha256"])).decode()
    headers = {"Content-Disposition": content_disposition(disposition, row["file_name"]),
               "Content-Length": str(row["size_bytes"]), "ETag": f'"{row["sha256"]}"',
               "Repr-Digest": f"sha-256=:{digest}:", "Cache-Control": "private, no-store"}
    return StreamingResponse(body(), media_type=row["content_type"], headers=headers)


def content_disposition(disposition: str, file_name: str) -> str:
    """RFC 6266: an ASCII fallback for old clients, and the real name (Chinese kept) as `filename*`."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in file_name)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


@router.get("/documents/{document_id}/versions/{version}/verify", response_model=Verification)
async def verify(cooperation_id: Identifier, document_id: Identifier, version: Annotated[int, PathParam(ge=1)],
                 request: Request, services: ServicesDep, actor: ActorDep) -> Verification:
    """Recompute the version's SHA-256 from the store and compare it with the recorded one and with
    every place the record sealed it: the agreement's signed original, signatures and review steps
    in the read model, and the hash-chained audit events of the signing."""
    await visible_department(services, actor, cooperation_id)
    async with services.pool.acquire() as conn:
        row = await _version(conn, cooperation_id, document_id, version)
        result = await verify_version(conn, _require_store(services), cooperation_id, row)
        await _audit(conn, request, actor, "document.verified", row,
                     {"status": result.status, "ok": result.ok, "stored_sha256": result.stored_sha256})
    return result


async def verify_version(conn: asyncpg.Connection, store: BlobStore, cooperation_id: str,
                         row: asyncpg.Record) -> Verification:
    expected = row["sha256"]
    try:
        stored_sha256, stored_size = await fingerprint(store, expected)
        state = "intact" if stored_sha256 == expected and stored_size == row["size_bytes"] else "altered"
    except BlobMissing:
        stored_sha256, stored_size, state = None, None, "missing"
    in_record = await store_db.sealed_references(conn, cooperation_id, row["document_id"], row["version"])
    in_audit = await store_db.sealing_events(conn, cooperation_id, row["document_id"], row["version"])
    return Verification(
        document_id=row["document_id"], version=row["version"], file_name=row["file_name"], status=state,
        expected_sha256=expected, expected_size=row["size_bytes"], stored_sha256=stored_sha256,
        stored_size=stored_size, checked_at=datetime.now(UTC), store=store.description,
        sealed_in_record=[SealedCheck(**s, matches=s["sha256"] == expected == stored_sha256) for s in in_record],
        sealed_in_audit=[AuditSealCheck(**s, matches=s["sha256"] == expected == stored_sha256) for s in in_audit],
    )


@router.get("/documents/{document_id}/compare", response_model=ComparisonView,
            responses={422: {"description": "A version has no text layer (a scan) or is too large to compare"}})
async def compare_versions(cooperation_id: Identifier, document_id: Identifier, request: Request,
                           services: ServicesDep, actor: ActorDep,
                           from_version: Annotated[int, Query(alias="from", ge=1)],
                           to_version: Annotated[int, Query(alias="to", ge=1)]) -> ComparisonView:
    """What changed in the text between two versions of a DOCX or PDF (with a text layer) draft."""
    await visible_department(services, actor, cooperation_id)
    store = _require_store(services)
    async with services.pool.acquire() as conn:
        old = await _version(conn, cooperation_id, document_id, from_version)
        new = await _version(conn, cooperation_id, document_id, to_version)
        texts = [await _paragraphs(store, row, loc) for row, loc in ((old, "from"), (new, "to"))]
        await _audit(conn, request, actor, "document.compared", old, {"to_version": to_version})
    return ComparisonView(document_id=document_id, from_version=from_version, to_version=to_version,
                          **compare(*texts).model_dump())


async def _paragraphs(store: BlobStore, row: asyncpg.Record, location: str) -> list[str]:
    file_type = next((t for t in filetypes.TEXT_TYPES if t.content_type == row["content_type"]), None)
    if file_type is None:
        raise field_error(["query", location], f"version {row['version']} is a {row['content_type']} file, "
                                               "which has no text to compare")
    if row["size_bytes"] > COMPARE_MAX_BYTES:
        raise field_error(["query", location], f"version {row['version']} is too large to compare")
    with tempfile.TemporaryDirectory(prefix="accord-compare-") as folder:
        stager = Stager(Path(folder), COMPARE_MAX_BYTES)
        try:
            async for chunk in store.read(row["sha256"]):
                stager.write(chunk)
        except BlobMissing:
            stager.abandon()
            raise ApiError(410, f"the stored bytes of version {row['version']} are missing") from None
        staged = stager.finish()
        try:
            return await asyncio.to_thread(paragraphs, staged.path, file_type)
        except NoText as error:
            raise field_error(["query", location], f"version {row['version']}: {error}") from None


# ---------------------------------------------------------------- sealing after signing


@router.post("/agreements/{agreement_id}/seal", response_model=CooperationState)
async def seal(cooperation_id: Identifier, agreement_id: Identifier, services: ServicesDep, actor: ActorDep,
               request_id: RequestIdDep, body: SealIn | None = None) -> CooperationState:
    """Seal the signed original of an agreement that was signed before its scan was uploaded."""
    number = body.signed_original_version if body else None
    ref = await document_ref(services, actor, "seal_signed_original", cooperation_id, agreement_id,
                             DocumentKind.signed_original, number, "signed_original_version")
    if ref is None:
        raise conflict("the agreement has no signed original yet: upload the scan first")
    return await cooperation_action(services, cooperation_id, actor,
                                    SealSignedOriginal(agreement_id=agreement_id, document=ref), request_id)


async def document_ref(services: Services, actor: Actor, command_kind: str, cooperation_id: str, agreement_id: str,
                       kind: DocumentKind, number: int | None, field: str, step: str | None = None,
                       ) -> DocumentRef | None:
    """The agreement's `kind` document at version `number` (the latest if None) as a sealed
    reference for a `command_kind` action; None if it has none. A version that does not exist
    is a 422 on `field`. Whoever may not take the action learns nothing of the documents: the
    access check comes first (and again with the action, api/writes.py)."""
    async with services.pool.acquire() as conn:
        header = await queries.cooperation_header(conn, cooperation_id)
        if header is None:
            return None  # the action answers 404
        access.check_cooperation_command(actor, command_kind, header.departments[0], step=step,
                                         what=f"cooperation {cooperation_id}")
        document = await store_db.agreement_document(conn, cooperation_id, agreement_id, kind)
        if document is None or document["latest_version"] == 0:
            if number is not None:
                raise field_error(["body", field], f"the agreement has no {kind.value} document yet")
            return None
        row = await store_db.version(conn, document["id"], number or document["latest_version"])
    if row is None:
        raise field_error(["body", field], f"the {kind.value} document has no version {number}")
    return store_db.ref_of(document, row)


# ---------------------------------------------------------------- helpers


async def visible_department(services: Services, actor: Actor, cooperation_id: str) -> str | None:
    """The cooperation's department; 404 for one that does not exist or the actor may not see."""
    async with services.pool.acquire() as conn:
        header = await queries.cooperation_header(conn, cooperation_id)
    if header is None:
        raise not_found(f"cooperation {cooperation_id}")
    access.check_visible(actor, header.departments, f"cooperation {cooperation_id}")
    return header.departments[0]


def check_may_upload(actor: Actor, department: str | None) -> None:
    """Refuse before the body is read anyone who may add no kind of document here."""
    access.check_document_upload(actor, DocumentKind.review_comments.value, department)


async def _version(conn: asyncpg.Connection, cooperation_id: str, document_id: str,
                   number: int) -> asyncpg.Record:
    document = await store_db.document(conn, cooperation_id, document_id)
    row = await store_db.version(conn, document_id, number) if document is not None else None
    if row is None:
        raise not_found(f"document {document_id} version {number}")
    return row


async def _audit(conn: asyncpg.Connection, request: Request, actor: Actor, action: str, row: asyncpg.Record,
                 details: dict[str, Any]) -> None:
    await record_access(conn, request, actor, action,
                        {"document_id": row["document_id"], "version": row["version"], "sha256": row["sha256"],
                         "file_name": row["file_name"], **details},
                        entity_type="document_version", entity_id=f"{row['document_id']}/v{row['version']}",
                        cooperation_id=row["cooperation_id"])


def staging_dir(services: Services) -> Path:
    store = _require_store(services)
    staging = getattr(store, "staging", None)
    return staging if staging is not None else Path(tempfile.gettempdir()) / "accord-uploads"


def _require_store(services: Services) -> BlobStore:
    if services.documents is None:
        raise ApiError(503, "no document store is configured (ACCORD_DOCUMENT_STORE)")
    return services.documents
