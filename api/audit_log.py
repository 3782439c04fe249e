"""Audit events written by the API itself: reads of the audit trail, and refused or failed attempts.

Accepted lifecycle actions are recorded by the workflow's write (one event each, in
the same transaction as the change). What never reaches a workflow is recorded here:
an attempt the API refused (401, 403, 404, 409, 422) or could not carry out (5xx), and
every search or export of the audit trail.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db.audit_chain import AuditEvent, append
from domain.audit import Actor

log = logging.getLogger("accord.audit")

ANONYMOUS = Actor(user_id="anonymous", name="(not authenticated)", role="none", auth_method="none")
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_MAX_ERROR = 2000


def origin(headers: dict[str, str], client: tuple[str, int] | None) -> tuple[str | None, str | None]:
    """Source IP and user agent. X-Forwarded-For is trusted only as uvicorn's proxy settings allow.
    A NUL in the User-Agent is kept as a visible mark (`_text`): PostgreSQL text cannot hold it."""
    agent = headers.get("user-agent")
    return (client[0] if client else None), (_text(agent) if agent else None)


def with_origin(actor: Actor, request: Request) -> Actor:
    """The actor plus where the request came from, as recorded by every event it causes."""
    ip, agent = origin({k.lower(): v for k, v in request.headers.items()},
                       (request.client.host, request.client.port) if request.client else None)
    return actor.model_copy(update={"source_ip": ip, "user_agent": agent[:500] if agent else None})


def event_for(actor: Actor, **fields: Any) -> AuditEvent:
    return AuditEvent(
        actor_id=actor.user_id, actor_name=actor.name, actor_role=actor.role, auth_method=actor.auth_method,
        actor_department=actor.department, source_ip=actor.source_ip, user_agent=actor.user_agent, **fields,
    )


async def record_access(conn: asyncpg.Connection, request: Request, actor: Actor, action: str,
                        details: dict[str, Any], entity_type: str = "audit_trail", entity_id: str = "audit_events",
                        cooperation_id: str | None = None) -> None:
    """One event for a read that is itself on the record: a search, export or verification of the
    audit trail (the default entity), a document's download, view, verification or comparison."""
    async with conn.transaction():
        await append(conn, event_for(
            with_origin(actor, request), request_id=getattr(request.state, "request_id", None), action=action,
            entity_type=entity_type, entity_id=entity_id, cooperation_id=cooperation_id,
            after=json.loads(json.dumps(details, default=str)),
        ))


class AttemptAuditMiddleware:
    """Records every write the API refused or failed, every rejected credential, and every request
    refused for want of a right (403), reads included: an audit search by a non-auditor is recorded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        body: list[bytes] = []

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                replayed = any(k.lower() == b"idempotent-replayed" for k, _ in message.get("headers", []))
                status = 0 if replayed else message["status"]  # a replay is not a new attempt
            elif message["type"] == "http.response.body" and status >= 400:
                body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as error:
            # Unhandled: the 500 is answered outside this middleware, but the attempt failed all the same.
            if scope["method"] in _WRITES:
                detail = f"internal error: {type(error).__name__}: {error}"
                await self._record_safely(scope, 500, json.dumps({"detail": detail}).encode())
            raise
        if status >= 400 and (scope["method"] in _WRITES or status in (401, 403)):
            await self._record_safely(scope, status, b"".join(body))

    async def _record_safely(self, scope: Scope, status: int, body: bytes) -> None:
        try:
            await self._record(scope, status, body)
        except Exception:  # the answer is already sent; losing the record must be loud
            log.exception("could not record a refused attempt")

    async def _record(self, scope: Scope, status: int, body: bytes) -> None:
        state = scope.get("state", {})
        actor: Actor = state.get("actor") or ANONYMOUS
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        ip, agent = origin(headers, scope.get("client"))
        route = scope.get("route")
        # What the client sent is bounded like the error: a refused megabyte-long URL must not
        # become megabytes of append-only audit trail.
        endpoint = _text(f"{scope['method']} {getattr(route, 'path', scope['path'])}")[:_MAX_ERROR]
        params = {k: _text(str(v))[:_MAX_ERROR] for k, v in (scope.get("path_params") or {}).items()}
        entity_type, entity_id = _entity(params)
        pool = scope["app"].state.services.pool
        async with pool.acquire() as conn, conn.transaction():
            await append(conn, AuditEvent(
                actor_id=actor.user_id, actor_name=actor.name, actor_role=actor.role,
                auth_method=actor.auth_method, actor_department=actor.department, source_ip=ip,
                user_agent=agent[:500] if agent else None, request_id=state.get("request_id"),
                action="auth.rejected" if status == 401 else f"api:{endpoint}",
                entity_type=entity_type, entity_id=entity_id,
                cooperation_id=params.get("cooperation_id"), project_id=params.get("project_id"),
                after={"method": scope["method"], "path": _text(scope["path"])[:_MAX_ERROR], "status": status},
                outcome="failed" if status >= 500 else "refused",
                error=_text(_detail(body))[:_MAX_ERROR],
            ))


def _entity(params: dict[str, str]) -> tuple[str, str]:
    """The most specific record the path names."""
    for key in ("milestone_id", "agreement_id", "project_id", "cooperation_id", "organization_id"):
        if key in params:
            return key.removesuffix("_id"), params[key]
    return "request", "-"


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: keep a visible mark of it instead of losing the event."""
    return value.replace("\x00", "\\x00")


def _detail(body: bytes) -> str:
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace")
    return detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
