"""Opening the pool and the Temporal client for a standalone `accord api` or `accord worker`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from api.services import Services
from db.pool import create_pool
from runtime.settings import Settings, get_settings
from runtime.temporal import connect


def require_audit_key(settings: Settings) -> bytes:
    key = settings.resolved_audit_key()
    if key is None:
        raise SystemExit("set ACCORD_AUDIT_CHECKPOINT_KEY (a long random secret kept outside the database)")
    return key


def require(settings: Settings) -> tuple[str, str]:
    """The database URL and Temporal address: configured, or those of a running `accord dev`."""
    database_url = settings.resolved_database_url()
    if database_url is None:
        raise SystemExit("set ACCORD_DATABASE_URL (environment or .env), or start `make run` first")
    return database_url, settings.resolved_temporal_address()


@asynccontextmanager
async def open_services(settings: Settings | None = None) -> AsyncIterator[Services]:
    settings = settings or get_settings()
    database_url, temporal_address = require(settings)
    pool = await create_pool(database_url, max_size=settings.database_pool_size)
    try:
        client = await connect(temporal_address, settings.temporal_namespace)
        yield Services(pool=pool, client=client, task_queue=settings.task_queue,
                       audit_key=require_audit_key(settings))
    finally:
        await pool.close()
