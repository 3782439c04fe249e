"""The caller's own inbox, and where the caller wants notices (email address, language).

Each route works on the authenticated user only: a message id of someone else answers
404 exactly like an unknown one, so ids reveal nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.audit_log import event_for
from api.errors import field_error, not_found
from api.notice_schemas import InboxMessage, InboxPage, NotificationSettings, NotificationSettingsIn, ReadAll
from api.services import ActorDep, RequestIdDep, ServicesDep
from db import inbox
from db.audit_chain import append

router = APIRouter(tags=["inbox"])

@router.get("/inbox", response_model=InboxPage)
async def list_inbox(services: ServicesDep, actor: ActorDep,
                     unread: Annotated[bool, Query(description="Only unread messages")] = False,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50,
                     before: Annotated[str | None, Query(max_length=1000,
                                                         description="`next_before` of the previous page")] = None,
                     ) -> dict:
    """The caller's messages, newest first, with the count of all unread ones."""
    try:
        after = inbox.decode_cursor(before) if before is not None else None
    except inbox.BadCursor as error:
        raise field_error(["query", "before"], str(error)) from None
    async with services.pool.acquire() as conn:
        rows, next_before = await inbox.messages(conn, actor.user_id, unread_only=unread, limit=limit, before=after)
        count = await inbox.unread_count(conn, actor.user_id)
    return {"items": [dict(r) for r in rows], "unread_count": count, "next_before": next_before}


@router.post("/inbox/read-all", response_model=ReadAll)
async def read_all(services: ServicesDep, actor: ActorDep) -> dict:
    """Mark every message read. A repeat marks nothing and answers `marked: 0`."""
    async with services.pool.acquire() as conn:
        marked = await inbox.mark_all_read(conn, actor.user_id)
        count = await inbox.unread_count(conn, actor.user_id)
    return {"marked": marked, "unread_count": count}


@router.post("/inbox/{message_id}/read", response_model=InboxMessage)
async def read_one(message_id: str, services: ServicesDep, actor: ActorDep) -> dict:
    """Mark one message read; a repeat keeps the first read time."""
    if len(message_id) > 300 or "\x00" in message_id:  # no such id can exist: answer as for any unknown one
        raise not_found("message")
    async with services.pool.acquire() as conn:
        row = await inbox.mark_read(conn, actor.user_id, message_id)
    if row is None:
        raise not_found(f"message {message_id!r}")
    return dict(row)


@router.get("/me/notifications", response_model=NotificationSettings)
async def get_notifications(services: ServicesDep, actor: ActorDep) -> dict:
    async with services.pool.acquire() as conn:
        row = await inbox.notification_settings(conn, actor.user_id)
    if row is None:  # the token's user exists, so only a race with an administrator's cleanup
        raise not_found("user")
    return dict(row)


@router.put("/me/notifications", response_model=NotificationSettings)
async def put_notifications(body: NotificationSettingsIn, services: ServicesDep, actor: ActorDep,
                            request_id: RequestIdDep) -> dict:
    """Replace the caller's email address (null: inbox only) and language; a change is audited."""
    async with services.pool.acquire() as conn, conn.transaction():
        before, after = await inbox.set_notification_settings(conn, actor.user_id, body.email, body.language)
        if before is None or after is None:
            raise not_found("user")
        if dict(before) != dict(after):
            await append(conn, event_for(actor, request_id=request_id, action="user.notifications_changed",
                                         entity_type="user", entity_id=actor.user_id,
                                         before=dict(before), after=dict(after)))
    return dict(after)
