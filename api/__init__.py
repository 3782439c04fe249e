"""The HTTP layer: FastAPI JSON API under /api/v1 (and, later, the staff web pages)."""
