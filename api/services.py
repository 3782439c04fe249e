"""What request handlers need: the pool, the Temporal client, settings, the actor, the request id."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from api.auth import SAFE_METHODS as SAFE_METHODS  # re-exported: defined with the rest of authentication
from api.auth import COOKIE, AuthConfig, require_actor
from documents.storage import BlobStore
from domain.audit import OFFICE_TZ, Actor


@dataclass
class Services:
    pool: asyncpg.Pool
    client: Client
    task_queue: str
    audit_key: bytes  # signs and checks audit checkpoints; never stored in the database
    retired_audit_keys: tuple[bytes, ...] = ()  # check the checkpoints signed before a key rotation
    public_url: str = "http://127.0.0.1:8000"  # links in notices, calendar-feed URLs
    allow_private_webhooks: bool = False  # see Settings.webhook_allow_private
    # The reminder settings the worker uses too, so previews match what is sent.
    reminder_hour: int = 9
    reminder_until_hour: int = 18
    leadership_department: str = "leadership-office"
    email_enabled: bool = False
    calendar_name: str = "China mainland"
    # Sign-in and sessions (api/auth.py): every expiry and throttling decision reads this clock.
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    auth: AuthConfig | None = None  # None: from Settings (ACCORD_SESSION_*, ACCORD_LOGIN_*, ACCORD_COOKIE_SECURE)
    # Web hardening (api/hardening.py), from Settings of the same names.
    environment: str = "development"  # "production": no /docs or /redoc
    max_body_bytes: int = 1024 * 1024
    max_json_depth: int = 32
    # Agreement documents (documents/storage.py): None answers 503 on every document route.
    documents: BlobStore | None = None
    document_max_bytes: int = 512 * 1024 * 1024


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a hop per request for nothing.
    return request.app.state.services


_bearer = HTTPBearer(auto_error=False, description="An API token (`accord user create`, POST /api/v1/me/tokens).")
_session_cookie = APIKeyCookie(name=COOKIE, auto_error=False,
                               description="The session of POST /api/v1/auth/login; writes also need X-CSRF-Token.")


async def get_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: Annotated[str | None, Depends(_session_cookie)],
    services: Annotated[Services, Depends(get_services)],
) -> Actor:
    """Every request acts for an authenticated user (401 otherwise): a bearer token or a session cookie.

    The security dependencies only document both schemes in OpenAPI; `api.auth` decides."""
    return await require_actor(request, services)


def request_id(request: Request) -> str:
    """Set by the idempotency middleware: derived from Idempotency-Key, or fresh per request."""
    return getattr(request.state, "request_id", None) or uuid.uuid4().hex


def new_id(request_id: str, purpose: str) -> str:
    """An id for a new record, stable for a given request: a retried POST names the same record."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"accord:{request_id}:{purpose}").hex


def office_today() -> date:
    return datetime.now(OFFICE_TZ).date()


ServicesDep = Annotated[Services, Depends(get_services)]
ActorDep = Annotated[Actor, Depends(get_actor)]
async def _request_id(request: Request) -> str:
    """`request_id` as a dependency; async so that FastAPI calls it on the loop, not in its thread pool."""
    return request_id(request)


RequestIdDep = Annotated[str, Depends(_request_id)]
