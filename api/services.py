"""What request handlers need: the pool, the Temporal client, settings, the actor, the request id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from api.audit_log import with_origin
from db.users import user_for_token
from domain.audit import OFFICE_TZ, Actor


@dataclass
class Services:
    pool: asyncpg.Pool
    client: Client
    task_queue: str
    audit_key: bytes  # signs and checks audit checkpoints; never stored in the database
    public_url: str = "http://127.0.0.1:8000"  # links in notices, calendar-feed URLs
    allow_private_webhooks: bool = False  # see Settings.webhook_allow_private
    # The reminder settings the worker uses too, so previews match what is sent.
    reminder_hour: int = 9
    reminder_until_hour: int = 18
    leadership_department: str = "leadership-office"
    email_enabled: bool = False
    calendar_name: str = "China mainland"


def get_services(request: Request) -> Services:
    return request.app.state.services


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="An API token from `accord user create`.")


async def get_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    services: Annotated[Services, Depends(get_services)],
) -> Actor:
    """Every request acts for an authenticated user; 401 otherwise."""
    user = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        async with services.pool.acquire() as conn:
            user = await user_for_token(conn, credentials.credentials)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a valid API token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if user.scope == "read" and request.method not in SAFE_METHODS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this API token is read-only")
    actor = with_origin(Actor(user_id=user.id, name=user.display_name, role=user.role, roles=user.all_roles,
                              auth_method="api_token",
                              department=user.department), request)
    request.state.actor = actor
    return actor


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
RequestIdDep = Annotated[str, Depends(request_id)]
