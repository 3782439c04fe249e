"""Rendering a page: the template, the values every page needs, and the headers pages carry."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from db import inbox
from web.forms import FLASH_COOKIE, flash_message
from web.i18n import gettext_for
from web.labels import milestone_label
from web.session import Viewer, here, services_of
from web.templating import render_template
from web.vocabulary import labeller


async def render(request: Request, who: Viewer, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """A page for a signed-in user, with the navigation, the unread count and any message left by
    the last redirect (shown once)."""
    async with services_of(request).pool.acquire() as conn:
        unread = await inbox.unread_count(conn, who.user.id)
    flash = flash_message(request, who)
    response = html(who.language, template, status_code, who=who, csrf_token=who.csrf_token, flash=flash,
                    unread=unread, path=request.url.path, here=here(request), **values)
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def html(language: str, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Any page, signed in or not. No caching: pages show records of a signed-in user."""
    values.setdefault("who", None)
    values.setdefault("flash", None)
    values.setdefault("unread", 0)
    values.setdefault("path", "")
    values.setdefault("here", "/")
    values.setdefault("csrf_token", "")
    values["_"] = gettext_for(language)
    values["label"] = labeller(values["_"])
    values["milestone"] = lambda name: milestone_label(name, values["_"])  # template names in the user's language
    body = render_template(language, template, values)
    return HTMLResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})
