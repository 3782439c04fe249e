"""The web pages inside the API's app: routes, static files, and errors answered as pages.

The pages live at the root (/, /cooperations, …), the JSON API under /api/v1. Error
handlers are shared with the API: for a page path they answer an HTML page in the user's
language; for an API path they hand over to the JSON answers of api/errors.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from api.errors import ApiError
from domain.errors import DomainError
from web.i18n import gettext_for
from web.pages import html
from web.routes import auth
from web.session import FormRefused, SignInRequired, anonymous_language

log = logging.getLogger("accord.web")
STATIC = Path(__file__).parent / "static"
_FASTAPI_DEFAULTS = {StarletteHTTPException: http_exception_handler,
                     RequestValidationError: request_validation_exception_handler}
_API_PREFIXES = ("/api/", "/docs", "/redoc", "/openapi.json", "/healthz")


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(_API_PREFIXES)


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in _routers():
        app.include_router(module.router, include_in_schema=False)
    _install_error_pages(app)


def _routers() -> list:
    from web.routes import (admin, admin_departments, admin_policies, admin_users, agreements, audit, cooperation_list,
                            cooperations, dashboard, documents, imports, inbox, projects, reports)

    return [auth, dashboard, cooperation_list, cooperations, agreements, documents, projects, inbox, audit,
            admin, admin_users, admin_departments, admin_policies, reports, imports]


def _language(request: Request) -> str:
    who = getattr(request.state, "viewer_language", None)
    return who or anonymous_language(request)


def error_page(request: Request, status: int, message: str | None = None) -> Response:
    language = _language(request)
    _ = gettext_for(language)
    titles = {403: _("You may not do this"), 404: _("Not found"), 409: _("This cannot be done now"),
              422: _("The request was not understood"), 503: _("The service is unavailable")}
    title = titles.get(status, _("Something went wrong"))
    return html(language, "error.html", status, title=title, message=message, status=status)


def _install_error_pages(app: FastAPI) -> None:
    """Wrap each JSON handler: page paths get a page instead."""
    handlers = dict(app.exception_handlers)

    def wrap(kind: type, page):  # noqa: ANN001, ANN202
        json_handler = handlers.get(kind) or _FASTAPI_DEFAULTS[kind]

        async def handler(request: Request, exc: Exception) -> Response:
            if is_page(request):
                return await page(request, exc)
            return await json_handler(request, exc)

        app.add_exception_handler(kind, handler)

    async def sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    async def refused_form(request: Request, exc: FormRefused) -> Response:
        _ = gettext_for(_language(request))
        return error_page(request, 403, _("This form is out of date or did not come from this site. "
                                          "Go back, reload the page and submit it again."))

    async def api_error(request: Request, exc: ApiError) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else None
        return error_page(request, exc.status, message)

    async def domain_error(request: Request, exc: DomainError) -> Response:
        status = {"Forbidden": 403, "NotFound": 404}.get(exc.kind, 409)
        return error_page(request, status, exc.reason)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_page(request, exc.status_code, None)

    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        # Page routes take their input from forms parsed by hand; what fails here is a path or
        # query parameter in a URL no page of ours makes: say "not found" rather than a stack of fields.
        return error_page(request, 404, None)

    async def unavailable(request: Request, exc: RPCError) -> Response:
        log.error("Temporal call failed on a page: %s", exc)
        return error_page(request, 503, None)

    app.add_exception_handler(SignInRequired, sign_in)
    app.add_exception_handler(FormRefused, refused_form)
    wrap(ApiError, api_error)
    wrap(DomainError, domain_error)
    wrap(StarletteHTTPException, http_error)
    wrap(RequestValidationError, bad_request)
    wrap(RPCError, unavailable)
