"""Who is looking at a page, and may this form act for them.

Pages use the same server-side sessions as the JSON API (api/auth.py): the `accord_session`
cookie, its idle and absolute expiry, the same audit events. A form proves it comes from our
own pages with the session's CSRF token in a hidden `csrf_token` field (the API takes it
from the X-CSRF-Token header), plus the same Origin and Sec-Fetch-Site checks.

Without a live session a page redirects to the sign-in page, with `next` set to where the
user was and, when a session cookie was sent but has ended, `expired=1`, so the page says
why instead of just asking for a password again.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from fastapi import Request

from api.auth import COOKIE, actor_for, credential, origin_refusal
from api.services import Services
from db.sessions import Session
from db.users import User
from domain.audit import Actor
from web.i18n import gettext_for, language_or_default

LANGUAGE_COOKIE = "accord_lang"
"""The language chosen before signing in (the sign-in page); after, the user's own setting."""


class SignInRequired(Exception):
    """No live session: answered by a redirect to the sign-in page (web/app.py)."""

    def __init__(self, next_url: str, expired: bool) -> None:
        super().__init__(next_url)
        self.next_url, self.expired = next_url, expired

    @property
    def location(self) -> str:
        return f"/login?next={quote(self.next_url, safe='/')}" + ("&expired=1" if self.expired else "")


class FormRefused(Exception):
    """A form without a valid CSRF proof: answered 403 with a page saying to reload and retry."""


@dataclass
class Viewer:
    """The signed-in user as the pages need them."""

    user: User
    actor: Actor
    session: Session
    language: str
    _: object = field(repr=False)  # the gettext of `language`

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token

    def may(self, *roles: str) -> bool:
        return any(role in self.user.all_roles for role in roles)


def services_of(request: Request) -> Services:
    return request.app.state.services


def safe_next(url: str | None) -> str:
    """Only a path of ours: never an open redirect to another site."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return "/"
    return url


def here(request: Request) -> str:
    """Where the user was: this page, or for a form post the page the form was on."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        if parts.netloc == request.url.netloc:
            return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.url.path


async def viewer(request: Request) -> Viewer:
    """The signed-in user of a page, or SignInRequired."""
    services = services_of(request)
    found = await credential(request, services)
    if found is None or found.session is None:
        raise SignInRequired(here(request), expired=COOKIE in request.cookies)
    language = language_or_default(found.user.language)  # read with the session: no query of its own
    actor = actor_for(found.user, "session", request)
    request.state.actor = actor
    request.state.viewer_language = language  # error pages speak it too
    return Viewer(found.user, actor, found.session, language, gettext_for(language))


def check_form(request: Request, who: Viewer, sent_token: str | None) -> None:
    """A form post must come from our own page of this session."""
    refused = origin_refusal(request, services_of(request))
    if refused or not sent_token or not hmac.compare_digest(sent_token.encode(), who.csrf_token.encode()):
        raise FormRefused(refused or "csrf")


def anonymous_language(request: Request) -> str:
    """Before sign-in: the language cookie, else the browser's first choice of ours, else Chinese."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen:
        return language_or_default(chosen)
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return language_or_default(None)
