"""The shapes of the document API (api/routes/documents.py): versions, documents, uploads,
verification and comparison answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from db.documents import NewVersion
from documents.compare import Comparison
from domain.documents import DocumentKind
from domain.types import Identifier, Name, ShortText


class VersionView(NewVersion):
    version: int
    uploaded_at: datetime


class DocumentView(BaseModel):
    id: str
    cooperation_id: str
    agreement_id: str | None
    negotiation_event_id: str | None
    kind: DocumentKind
    title: str
    created_by: str
    created_at: datetime
    latest_version: int
    versions: list[VersionView]


class UploadAnswer(BaseModel):
    document: DocumentView
    version: VersionView
    created: bool = Field(description="False when the file equals the document's latest version (nothing added)")


class UploadFields(BaseModel):
    """The form fields beside the file (multipart/form-data)."""

    model_config = {"extra": "forbid"}
    kind: DocumentKind | None = None
    agreement_id: Identifier | None = None
    negotiation_event_id: Identifier | None = None
    title: Name | None = None
    note: ShortText | None = None
    comments_on: int | None = Field(default=None, ge=1)


class SealedCheck(BaseModel):
    """One place of the read model that records the version, and whether its fingerprint matches."""

    kind: Literal["signed_original", "signature", "review_step"]
    agreement_id: str
    agreement_title: str
    organization_id: str | None = None  # a signature: the party that signed
    step: str | None = None  # a review step: its name
    place: str  # the same in words
    sha256: str
    matches: bool


class AuditSealCheck(BaseModel):
    audit_seq: int
    action: str
    occurred_at: datetime
    sha256: str
    matches: bool


class Verification(BaseModel):
    document_id: str
    version: int
    file_name: str
    status: Literal["intact", "altered", "missing"]
    expected_sha256: str
    expected_size: int
    stored_sha256: str | None
    stored_size: int | None
    sealed_in_record: list[SealedCheck]
    sealed_in_audit: list[AuditSealCheck]
    checked_at: datetime
    store: str

    @property
    def ok(self) -> bool:
        return self.status == "intact" and all(s.matches for s in self.sealed_in_record) \
            and all(s.matches for s in self.sealed_in_audit)


class ComparisonView(Comparison):
    document_id: str
    from_version: int
    to_version: int
