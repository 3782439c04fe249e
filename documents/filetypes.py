"""What a file is, judged by its bytes: a name or a declared Content-Type proves nothing.

A file is accepted only if its content is of a type its document kind allows and its name,
when it has an extension, says the same type. A DOCX is a ZIP whose parts include
`word/document.xml`, so it is recognised by opening the staged file as a ZIP, never by name.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from domain.documents import DocumentKind


@dataclass(frozen=True)
class FileType:
    name: str
    content_type: str
    extensions: tuple[str, ...]


PDF = FileType("PDF", "application/pdf", (".pdf",))
DOCX = FileType("DOCX", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", (".docx",))
PNG = FileType("PNG", "image/png", (".png",))
JPEG = FileType("JPEG", "image/jpeg", (".jpg", ".jpeg"))
TIFF = FileType("TIFF", "image/tiff", (".tif", ".tiff"))

ALLOWED: dict[DocumentKind, tuple[FileType, ...]] = {
    DocumentKind.draft: (DOCX, PDF),
    DocumentKind.review_comments: (DOCX, PDF),
    DocumentKind.signed_original: (PDF, PNG, JPEG, TIFF),
    DocumentKind.material: (PDF, DOCX, PNG, JPEG, TIFF),
}
TEXT_TYPES = (DOCX, PDF)
"""Types whose text can be compared between versions."""


class NotAllowed(Exception):
    """The content is not a type this kind of document takes (HTTP 415)."""


def detect(head: bytes, path: Path) -> FileType | None:
    """The type of the staged file whose first bytes are `head`, or None if it is none we know."""
    if b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    if head.startswith(b"PK\x03\x04") and _is_docx(path):
        return DOCX
    return None


def _is_docx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return "word/document.xml" in names and "[Content_Types].xml" in names


def check(kind: DocumentKind, file_name: str, head: bytes, path: Path) -> FileType:
    """The file's type if `kind` allows it and the name agrees; NotAllowed says why not."""
    allowed = ALLOWED[kind]
    wanted = ", ".join(t.name for t in allowed)
    found = detect(head, path)
    if found is None:
        raise NotAllowed(f"the content of {file_name} is not a {wanted} file")
    if found not in allowed:
        raise NotAllowed(f"{file_name} is a {found.name} file; a {kind.value} document takes {wanted}")
    extension = Path(file_name).suffix.lower()
    if extension and extension not in found.extensions:
        raise NotAllowed(f"{file_name} is named {extension} but its content is {found.name}")
    return found


_UNSAFE = re.compile(r"[\x00-\x1f\x7f\"\\/<>:|?*]")


def clean_file_name(raw: str) -> str:
    """The file's own name as the user knows it, without any path, control characters or
    characters file systems refuse; Chinese and other letters are kept as they are."""
    name = PureWindowsPath(raw).name  # browsers on Windows may send C:\\fakepath\\name
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE.sub("_", name).strip(" .")
    return name[:200] or "document"
