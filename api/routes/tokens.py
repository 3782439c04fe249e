"""API tokens a user makes for their own scripts: create (the secret is shown once), list, revoke.

Only the token's SHA-256 is stored, so the answer to POST is the one time the secret
exists in clear: it is marked `Cache-Control: no-store` and kept out of the idempotency
store (a retried POST says it was applied, without the secret). A `read` token can
read everything its user can and change nothing; it cannot make tokens either (a
write). Another user's token answers 404 exactly like an unknown one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from api.audit_log import event_for
from api.errors import not_found
from api.idempotency import WITHHOLD_REPLAY
from api.schemas import Body
from api.services import ActorDep, RequestIdDep, ServicesDep
from db import sessions
from db.audit_chain import append
from domain.types import Identifier, Name

router = APIRouter(prefix="/me/tokens", tags=["sign-in"])


class TokenIn(Body):
    name: Name = Field(description="What the token is for, e.g. the script that uses it")
    scope: Literal["read", "read_write"] = Field(description="`read`: GET only; `read_write`: everything the user may do")
    expires_in_days: int = Field(default=90, ge=1, le=365)


class Token(BaseModel):
    id: str
    name: str
    scope: Literal["read", "read_write"]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None = None


class TokenCreated(Token):
    token: str = Field(description="The secret, for `Authorization: Bearer <token>`. Shown only in this answer.")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
async def create_token(body: TokenIn, request: Request, response: Response, services: ServicesDep,
                       actor: ActorDep, request_id: RequestIdDep) -> dict:
    """Make an API token for the caller; the answer holds its secret, which is never shown again."""
    response.headers["Cache-Control"] = "no-store"
    setattr(request.state, WITHHOLD_REPLAY, True)
    expires_at = services.clock() + timedelta(days=body.expires_in_days)
    async with services.pool.acquire() as conn, conn.transaction():
        secret, row = await sessions.create_token(conn, actor.user_id, body.name, body.scope, expires_at)
        await append(conn, event_for(
            actor, request_id=request_id, action="token.created", entity_type="api_token", entity_id=row["id"],
            after={"name": body.name, "scope": body.scope, "expires_at": expires_at.isoformat(),
                   "token": "issued (secret not recorded)"}))
    return {**dict(row), "token": secret}


@router.get("", response_model=list[Token])
async def list_tokens(services: ServicesDep, actor: ActorDep) -> list[dict]:
    """The caller's tokens that still work, newest first; never their secrets."""
    async with services.pool.acquire() as conn:
        return [dict(r) for r in await sessions.tokens(conn, actor.user_id, services.clock())]


@router.delete("/{token_id}", response_model=Token)
async def revoke_token(token_id: Identifier, services: ServicesDep, actor: ActorDep,
                       request_id: RequestIdDep) -> dict:
    """Revoke one of the caller's tokens: it stops working at once. A repeat answers the same."""
    async with services.pool.acquire() as conn, conn.transaction():
        current = await sessions.token(conn, actor.user_id, token_id)
        if current is None:
            raise not_found(f"token {token_id}")
        if current["revoked_at"] is not None:
            return dict(current)
        row = await sessions.revoke_token(conn, token_id, services.clock())
        await append(conn, event_for(
            actor, request_id=request_id, action="token.revoked", entity_type="api_token", entity_id=token_id,
            before={"revoked_at": None}, after={"name": row["name"], "scope": row["scope"],
                                                "revoked_at": row["revoked_at"].isoformat()}))
    return dict(row)
