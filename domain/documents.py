"""Agreement documents as the lifecycle sees them: kinds, and the reference that seals a version.

The files themselves (drafts, review comments, scans of the signed original) never enter a
workflow: they live in the document store, their metadata in PostgreSQL. What the workflow
keeps is a `DocumentRef`: which version of which document a review step decided on or a
party signed, with its SHA-256. Once that reference is in the workflow state it is in the
agreement's signing event and in the audit chain, and `verify` compares the stored bytes
against it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from domain.types import Identifier, Name


class DocumentKind(StrEnum):
    draft = "draft"  # an agreement's text, version after version (DOCX, PDF)
    review_comments = "review_comments"  # comments on a draft version (DOCX, PDF)
    signed_original = "signed_original"  # the scan with seals and signatures (PDF, images)
    material = "material"  # negotiation material: minutes, presentations, visit reports


AGREEMENT_KINDS = frozenset({DocumentKind.draft, DocumentKind.review_comments, DocumentKind.signed_original})
"""Kinds that belong to one agreement (material belongs to the negotiation record)."""

SINGLE_PER_AGREEMENT = frozenset({DocumentKind.draft, DocumentKind.signed_original})
"""An agreement has one draft and one signed original, each a stack of versions."""

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class DocumentRef(BaseModel):
    """One version of one document, fingerprinted: what a review or a signature refers to."""

    document_id: Identifier
    version: int = Field(ge=1)
    kind: DocumentKind
    agreement_id: Identifier | None = None
    sha256: Sha256
    file_name: Name
    size_bytes: int = Field(ge=0)

    def label(self) -> str:
        return f"{self.file_name} v{self.version} (sha256 {self.sha256[:12]}…)"
