"""Chat-robot webhooks per department: register (the secret is shown once), list, revoke.

The target URL is checked when it is saved, not only when a notice is sent: a URL that
points into the office network (loopback, private, link-local, cloud metadata) would
let anyone who can register a webhook make the server call internal services (SSRF),
so it is refused with a 422 naming `url` unless the deployment allows private targets.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Query, Response, status

from api.audit_log import event_for
from api.errors import ApiError, field_error, not_found
from api.notice_schemas import Webhook, WebhookCreated, WebhookIn
from api.services import ActorDep, RequestIdDep, ServicesDep, new_id
from channels.webhook import UnsafeUrl, check_url
from db import webhooks
from db.audit_chain import append
from domain import access
from domain.types import Identifier, Name

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def audit_view(url: str) -> dict[str, str]:
    """What the audit trail keeps of a URL: where it points and a fingerprint, not the URL itself.

    Chat-robot URLs carry their own credential (`?key=` of WeCom, `?access_token=` of
    DingTalk, a path token of Feishu), and the audit trail can never be edited: the
    fingerprint lets an auditor confirm a given URL without the trail holding it.
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # checked already by check_url; the audit must not fail on it anyway
        port = None
    origin = f"{parts.scheme}://{parts.hostname or ''}{f':{port}' if port else ''}"
    return {"url_origin": origin, "url_sha256": hashlib.sha256(url.encode()).hexdigest()}


async def _checked_url(url: str, allow_private: bool) -> None:
    """A 422 on `url` with the reason; a 503 when the resolver could not answer right now.

    ValueError covers UnsafeUrl and anything else a malformed URL might raise while parsed.
    """
    try:
        await check_url(url, allow_private)
    except UnsafeUrl as error:
        if error.temporary:
            raise ApiError(503, f"the URL's host could not be checked right now ({error}); nothing was saved, "
                                "try again") from None
        raise field_error(["body", "url"], str(error)) from None
    except ValueError as error:
        raise field_error(["body", "url"], f"not a usable URL: {error}") from None


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
async def create_webhook(body: WebhookIn, response: Response, services: ServicesDep, actor: ActorDep,
                         request_id: RequestIdDep) -> dict:
    """Register a webhook; the answer holds its signing secret, which is never shown again."""
    response.headers["Cache-Control"] = "no-store"  # a credential: no proxy or browser cache keeps it
    access.check_department_manager(actor, body.department)
    await _checked_url(body.url, services.allow_private_webhooks)
    webhook_id = new_id(request_id, "webhook")
    secret = secrets.token_urlsafe(32)
    async with services.pool.acquire() as conn, conn.transaction():
        row = await webhooks.insert(conn, webhook_id, body.department, body.url, secret, body.description,
                                    actor.user_id)
        if row is None:  # the retry of a request that created it: the same answer
            retried = await webhooks.secret_for_retry(conn, webhook_id, actor.user_id)
            if retried is None:
                raise not_found(f"webhook {webhook_id}")
            return dict(retried)
        await append(conn, event_for(
            actor, request_id=request_id, action="webhook.created", entity_type="webhook", entity_id=webhook_id,
            after={"department": body.department, "description": body.description, **audit_view(body.url)},
        ))
    return {**dict(row), "secret": secret}


@router.get("", response_model=list[Webhook])
async def list_webhooks(services: ServicesDep, actor: ActorDep,
                        department: Annotated[Name | None, Query(description="Only this department's")] = None,
                        ) -> list[dict]:
    """Active webhooks, without secrets: an admin sees all, a leader those of their departments.
    (A robot's URL often carries its own access key.)"""
    if not access.roles_of(actor) & {access.ADMIN, access.LEADER}:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only an admin or a leader may list webhooks")
    async with services.pool.acquire() as conn:
        rows = [dict(r) for r in await webhooks.active(conn, department)]
    return [r for r in rows if access.manages_department(actor, r["department"])]


@router.delete("/{webhook_id}", response_model=Webhook)
async def revoke_webhook(webhook_id: Identifier, services: ServicesDep, actor: ActorDep,
                         request_id: RequestIdDep) -> dict:
    """Revoke: no notice goes to it any more. A repeat answers the same and records nothing."""
    async with services.pool.acquire() as conn, conn.transaction():
        current = await webhooks.webhook(conn, webhook_id, lock=True)
        if current is None:
            raise not_found(f"webhook {webhook_id}")
        if not access.view_of(actor).sees([current["department"]]) and not access.has_admin(actor):
            raise not_found(f"webhook {webhook_id}")  # another department's: as if it did not exist
        access.check_department_manager(actor, current["department"])
        if current["revoked_at"] is not None:
            return dict(current)
        row = await webhooks.revoke(conn, webhook_id)
        await append(conn, event_for(
            actor, request_id=request_id, action="webhook.revoked", entity_type="webhook", entity_id=webhook_id,
            before={"revoked_at": None}, after={"department": row["department"],
                                                "revoked_at": row["revoked_at"].isoformat()},
        ))
    return dict(row)
