"""The signed-in user's inbox: their notices, newest first, unread ones marked, with "mark read".

Reads and marks go through the API's own handlers (api/routes/inbox.py), which only ever
touch the caller's messages: someone else's message id answers 404 like an unknown one.
A notice names its project; the page links to it, and to its cooperation, when the user
sees that project (the department rules of domain/access.py, as every page applies them).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from api.routes import inbox as api_inbox
from db import deliveries, inbox, queries
from domain import access
from web.forms import redirect, run_once
from web.pages import render
from web.session import Viewer, check_form, safe_next, services_of, viewer

router = APIRouter()
PAGE_SIZE = 20


@router.get("/inbox")
async def inbox_page(request: Request, unread: str = "", before: str = "") -> Response:
    who = await viewer(request)
    unread_only = unread in ("1", "true", "on")
    page = await _page(request, who, unread_only, before)
    async with services_of(request).pool.acquire() as conn:
        projects = await _projects(conn, who, {m["project_id"] for m in page["items"] if m["project_id"]})
    return await render(request, who, "inbox.html", messages=page["items"], unread_count=page["unread_count"],
                        next_before=page["next_before"], unread_only=unread_only, first_page=not before,
                        projects=projects)


async def _page(request: Request, who: Viewer, unread_only: bool, before: str) -> dict[str, Any]:
    """A page of messages as the API lists them; a cursor no page of ours made shows the first page."""
    services = services_of(request)
    cursor = before or None
    if cursor is not None:
        try:
            inbox.decode_cursor(cursor)
        except inbox.BadCursor:
            cursor = None
    return await api_inbox.list_inbox(services, who.actor, unread=unread_only, limit=PAGE_SIZE, before=cursor)


async def _projects(conn: Any, who: Viewer, project_ids: set[str]) -> dict[str, Any]:
    """Title and cooperation of each project the user sees, by id; the others are left out (no link)."""
    view = access.view_of(who.actor)
    found: dict[str, Any] = {}
    async with conn.transaction(readonly=True):
        await queries.limit_view(conn, access.visible_departments(who.actor))
        for project_id in sorted(project_ids):
            header = await queries.project_header(conn, project_id)
            if header is None or not view.sees(header.departments):
                continue
            found[project_id] = await deliveries.project_context(conn, project_id, "")
    return found


@router.post("/inbox/read-all")
async def read_all(request: Request) -> Response:
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    back = safe_next(str(form.get("next", "/inbox")))
    marked = 0

    async def action(request_id: str) -> str:
        nonlocal marked
        answer = await api_inbox.read_all(services_of(request), who.actor)
        marked = answer["marked"]
        return back

    location = await run_once(request, who, str(form.get("form_key", "")), action)
    return redirect(location, who, who._("Messages marked as read: %(count)s.", count=marked))


@router.post("/inbox/{message_id}/read")
async def read_one(request: Request, message_id: str) -> Response:
    """Mark one message read; someone else's or an unknown id is the 404 page (api_inbox.read_one)."""
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    back = safe_next(str(form.get("next", "/inbox")))

    async def action(request_id: str) -> str:
        await api_inbox.read_one(message_id, services_of(request), who.actor)
        return back

    location = await run_once(request, who, str(form.get("form_key", "")), action)
    return redirect(location, who, who._("The message is marked as read."))
