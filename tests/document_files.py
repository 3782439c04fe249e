"""Real files for the document tests: the builders of documents/samples.py (DOCX, PDF, PNG)."""

from documents.samples import docx, pdf, png

__all__ = ["docx", "pdf", "png"]
