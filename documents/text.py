"""The text of a draft, paragraph by paragraph, for comparing two versions.

DOCX: the paragraphs of `word/document.xml` (tables included, cell by cell), with tracked
insertions kept and tracked deletions left out, as the document reads now. PDF: the text
layer of every page, line by line; a scan without one has no text to compare.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from documents.filetypes import DOCX, PDF, FileType

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
MAX_DOCUMENT_XML = 50 * 1024 * 1024  # a zip bomb stops here, not in memory


class NoText(Exception):
    """The file has no text layer to compare (a scan, an image, or a damaged file)."""


def paragraphs(path: Path, file_type: FileType) -> list[str]:
    if file_type == DOCX:
        return _docx_paragraphs(path)
    if file_type == PDF:
        return _pdf_lines(path)
    raise NoText(f"a {file_type.name} file has no text to compare")


def _docx_paragraphs(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("word/document.xml")
            if info.file_size > MAX_DOCUMENT_XML:
                raise NoText("the document's text part is too large to compare")
            root = ElementTree.fromstring(archive.read(info))
    except (KeyError, zipfile.BadZipFile, ElementTree.ParseError) as error:
        raise NoText(f"the DOCX file cannot be read: {error}") from None
    lines = []
    for paragraph in root.iter(f"{_W}p"):
        parts = []
        for node in paragraph.iter():
            if node.tag == f"{_W}t":
                parts.append(node.text or "")
            elif node.tag == f"{_W}tab":
                parts.append("\t")
            elif node.tag in (f"{_W}br", f"{_W}cr"):
                parts.append("\n")
        # Text inside tracked deletions (w:del) is w:delText, not w:t: it is not collected.
        text = "".join(parts).strip()
        if text:
            lines.extend(t for t in text.split("\n") if t.strip())
    return lines


def _pdf_lines(path: Path) -> list[str]:
    try:
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as error:
        raise NoText(f"the PDF file cannot be read: {error}") from None
    lines = [re.sub(r"\s+", " ", line).strip() for page in pages for line in page.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise NoText("the PDF has no text layer (a scan?): there is no text to compare")
    return lines
