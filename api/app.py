"""The FastAPI application: JSON API under /api/v1, OpenAPI at /openapi.json, docs at /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from api import errors
from api.audit_log import AttemptAuditMiddleware
from api.idempotency import IdempotencyMiddleware
from api.routes import admin, audit, cooperations, feeds, inbox, organizations, projects, reminders, webhooks
from api.services import ActorDep, Services
from domain.audit import Actor

DESCRIPTION = """
Accord tracks a city's cooperation with a company for years: negotiation, review and
signing of the strategic cooperation framework agreement and project investment
agreements, then investment projects milestone by milestone.

Every request needs `Authorization: Bearer <token>` (`accord user create` makes one).
POST and PATCH accept an `Idempotency-Key` header: a retry with the same key is applied
once and answered with the same response.
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

    app = FastAPI(title="Accord", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    if services is not None:
        app.state.services = services
    errors.install(app)
    # The last added is outermost: the audit sees every answer, including the idempotency
    # middleware's own refusals; it skips replayed answers, which are not new attempts.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(AttemptAuditMiddleware)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    v1 = APIRouter(prefix="/api/v1")
    v1.include_router(organizations.router)
    v1.include_router(cooperations.router)
    v1.include_router(projects.router)
    v1.include_router(audit.router)
    v1.include_router(audit.as_of_router)
    v1.include_router(reminders.router)
    v1.include_router(admin.router)
    v1.include_router(inbox.router)
    v1.include_router(webhooks.router)
    v1.include_router(feeds.router)
    v1.include_router(feeds.public_router)

    @v1.get("/me", tags=["operations"], response_model=Actor)
    async def me(actor: ActorDep) -> Actor:
        """Who the token belongs to."""
        return actor

    app.include_router(v1)
    return app
