"""The FastAPI application: JSON API under /api/v1, OpenAPI at /openapi.json, docs at /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

import web.app as web
from api import errors, request_log
from api.audit_log import AttemptAuditMiddleware
from api.hardening import RequestLimitsMiddleware, add_security_headers
from api.idempotency import IdempotencyMiddleware
from api.routes import (admin, audit, cooperations, documents, feeds, health, imports, inbox, organizations, projects,
                        reminders, reports, tokens, webhooks)
from api.routes import auth as sign_in
from api.services import ActorDep, Services
from domain.audit import Actor

DESCRIPTION = """
Accord tracks a city's cooperation with a company for years: negotiation, review and
signing of the strategic cooperation framework agreement and project investment
agreements, then investment projects milestone by milestone.

Every request needs `Authorization: Bearer <token>` (`accord user create` or
`POST /me/tokens` makes one) or a session from `POST /auth/login` (writes then also need
the `X-CSRF-Token` header). Each role sees and does only its own department's records;
another department's record answers 404.
POST and PATCH accept an `Idempotency-Key` header: a retry with the same key is applied
once and answered with the same response.

`GET /cooperations/{id}` and `GET /projects/{id}` answer with an `ETag`; send it back as
`If-Match` with a write and the write is refused with 412 if someone changed the record
in between. Request bodies are limited (1 MiB, JSON nested at most 32 deep by default).
"""


def create_app(services: Services | None = None) -> FastAPI:
    """Build the app. Tests pass ready `services`; `accord api` lets the lifespan connect."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        from runtime.connections import open_services  # the API process's own connections

        async with open_services() as opened:
            app.state.services = opened
            yield

    if services is not None:
        environment = services.environment
    else:
        from runtime.settings import get_settings  # `accord api`: the lifespan opens the services later

        environment = get_settings().environment
    docs = environment != "production"  # no interactive API pages in production; /openapi.json stays
    # FastAPI's own OpenTelemetry is off: api/request_log.py makes the request span when tracing is on.
    app = FastAPI(title="Accord", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                  telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False})
    if services is not None:
        app.state.services = services
    errors.install(app)
    # The last added is outermost: the audit sees every answer, including the idempotency
    # middleware's own refusals; it skips replayed answers, which are not new attempts.
    # The request limits (body size, JSON depth) refuse before any token lookup or key claim.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(RequestLimitsMiddleware)
    app.add_middleware(AttemptAuditMiddleware)
    add_security_headers(app)  # around everything, Starlette's own 500 answer included
    request_log.install(app)  # outside even that: one log line and one latency sample per answer

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    app.include_router(health.router)  # GET /readyz (PostgreSQL, migrations, Temporal) and GET /metrics

    v1 = APIRouter(prefix="/api/v1")
    for router in (organizations.router, cooperations.router, documents.router, projects.router, audit.router,
                   audit.as_of_router,
                   reminders.router, admin.router, inbox.router, webhooks.router, feeds.router, reports.router,
                   imports.router,
                   feeds.public_router, sign_in.router, tokens.router):
        v1.include_router(router)

    @v1.get("/me", tags=["operations"], response_model=Actor)
    async def me(actor: ActorDep) -> Actor:
        """Who the token belongs to."""
        return actor

    app.include_router(v1)
    web.install(app)  # the pages staff use; after errors.install, whose JSON answers it keeps for /api
    return app
