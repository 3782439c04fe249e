"""Opening the pool and the Temporal client for a standalone `accord api` or `accord worker`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
from temporalio.client import Client

from activities.reminders import ReminderConfig
from api.services import Services
from channels.email import SmtpSettings
from db.pool import create_pool
from documents.s3 import S3Store
from documents.storage import BlobStore, LocalStore
from runtime.settings import Settings, get_settings
from runtime.temporal import connect_with


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
    services = None
    try:
        client = await connect_with(settings, temporal_address)
        services = services_for(settings, pool, client, require_audit_key(settings))
        yield services
    finally:
        if services is not None and isinstance(services.documents, S3Store):
            await services.documents.close()
        await pool.close()


def open_document_store(settings: Settings) -> BlobStore:
    """The document store the settings name: a local directory, or an S3-compatible bucket."""
    if settings.document_store == "local":
        return LocalStore(settings.resolved_document_dir())
    if not (settings.s3_endpoint and settings.s3_access_key and settings.s3_secret_key):
        raise SystemExit("ACCORD_DOCUMENT_STORE=s3 needs ACCORD_S3_ENDPOINT, ACCORD_S3_ACCESS_KEY and "
                         "ACCORD_S3_SECRET_KEY")
    return S3Store(settings.s3_endpoint, settings.s3_bucket, settings.s3_access_key,
                   settings.s3_secret_key.get_secret_value(), region=settings.s3_region, prefix=settings.s3_prefix)


def services_for(settings: Settings, pool: asyncpg.Pool, client: Client, audit_key: bytes,
                 email_enabled: bool | None = None) -> Services:
    return Services(pool=pool, client=client, task_queue=settings.task_queue, audit_key=audit_key,
                    public_url=settings.public_url, allow_private_webhooks=settings.webhook_allow_private,
                    reminder_hour=settings.reminder_hour, reminder_until_hour=settings.reminder_until_hour,
                    leadership_department=settings.leadership_department, calendar_name=settings.reminder_calendar,
                    email_enabled=bool(settings.smtp_host) if email_enabled is None else email_enabled,
                    environment=settings.environment, max_body_bytes=settings.max_body_bytes,
                    max_json_depth=settings.max_json_depth, retired_audit_keys=settings.retired_audit_keys(),
                    documents=open_document_store(settings), document_max_bytes=settings.document_max_bytes)


def reminder_config(settings: Settings, smtp_port: int | None = None) -> ReminderConfig:
    """The worker's reminder settings. `smtp_port` points email at the local sink of `accord dev`;
    otherwise email is on only when ACCORD_SMTP_HOST names a relay."""
    smtp = None
    if settings.smtp_host or smtp_port is not None:
        smtp = SmtpSettings(
            host=settings.smtp_host or "127.0.0.1", port=smtp_port or settings.smtp_port,
            starttls=settings.smtp_starttls, use_tls=settings.smtp_tls, username=settings.smtp_username,
            password=settings.smtp_password, sender=settings.smtp_sender)
    return ReminderConfig(
        public_url=settings.public_url, smtp=smtp, allow_private_webhooks=settings.webhook_allow_private,
        leadership_department=settings.leadership_department, hour=settings.reminder_hour,
        until_hour=settings.reminder_until_hour, give_up_after=timedelta(hours=settings.delivery_retry_hours),
        attempt_timeout=timedelta(seconds=settings.delivery_attempt_seconds),
        first_retry=timedelta(seconds=settings.delivery_first_retry_seconds), calendar_name=settings.reminder_calendar)
