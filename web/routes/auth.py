"""Sign-in and sign-out pages, and the language switch.

Sign-in runs the API's own handler (api/routes/auth.py `login`): the same throttling,
lockout, session fixation defence and audit events; this page only turns its answers
into a page and its cookie into a redirect to where the user was going.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError

from api.auth import COOKIE, credential
from api.errors import ApiError
from api.routes import auth as api_auth
from api.services import request_id
from web.forms import redirect
from web.i18n import LANGUAGES, gettext_for
from web.pages import html
from web.session import LANGUAGE_COOKIE, anonymous_language, check_form, safe_next, services_of, viewer

router = APIRouter()


@router.get("/login")
async def login_page(request: Request, next: str = "/", expired: bool = False) -> Response:
    language = anonymous_language(request)
    return html(language, "login.html", next=safe_next(next), expired=expired, values={}, errors=None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    target = safe_next(str(form.get("next", "/")))
    language = anonymous_language(request)
    _ = gettext_for(language)

    def again(status: int, general: str | None = None, fields: dict | None = None) -> Response:
        errors = {"general": general, "fields": fields or {}}
        return html(language, "login.html", status, next=target, expired=False, values={"username": username},
                    errors=errors)

    try:
        body = api_auth.LoginIn(username=username, password=password)
    except ValidationError:
        fields = {}
        if not username:
            fields["username"] = _("Enter your username.")
        if not password:
            fields["password"] = _("Enter your password.")
        return again(422, fields=fields or {"username": _("Enter your username.")})
    answer = Response()
    try:
        await api_auth.login(body, request, answer, services_of(request), request_id(request))
    except ApiError as error:
        if error.status == 401:
            return again(401, _("Wrong username or password."))
        return again(error.status, _("Sign-in refused: %(reason)s", reason=error.detail))
    except HTTPException as error:  # 429: too many failures
        wait = (error.headers or {}).get("Retry-After", "?")
        return again(error.status_code, _("Too many failed sign-ins. Wait %(seconds)s seconds and try again.",
                                          seconds=wait))
    return redirect_with_cookies(target, answer)


def redirect_with_cookies(location: str, answer: Response) -> Response:
    """A redirect carrying the cookies the API's handler set on `answer` (the session cookie)."""
    response = redirect(location)
    response.raw_headers.extend((name, value) for name, value in answer.raw_headers if name == b"set-cookie")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    who = await viewer(request)
    form = await request.form()
    check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
    answer = Response()
    await api_auth.logout(request, answer, services_of(request), who.actor, request_id(request))
    return redirect_with_cookies("/login", answer)


@router.post("/language")
async def choose_language(request: Request) -> Response:
    """Switch between Chinese and English: the user's own setting once signed in (it also
    chooses the language of their notices), a cookie before."""
    form = await request.form()
    chosen = str(form.get("language", ""))
    target = safe_next(str(form.get("next", "/")))
    if chosen not in LANGUAGES:
        return redirect(target)
    signed_in = await credential(request, services_of(request))
    if signed_in is not None and signed_in.session is not None and COOKIE in request.cookies:
        who = await viewer(request)
        check_form(request, who, form.get("csrf_token"))  # type: ignore[arg-type]
        async with services_of(request).pool.acquire() as conn:
            await conn.execute("UPDATE users SET language = $2 WHERE id = $1", who.user.id, chosen)
    response = redirect(target)
    response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=365 * 24 * 3600, path="/", samesite="Lax")
    return response
