"""Every failure as a clear HTTP answer: 404, 409 with the reason, 412, 422 per field, 503, never a 500 for bad input."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.responses import Response
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from documents.storage import StoreUnavailable
from domain.errors import DomainError

log = logging.getLogger("accord.api")


class ApiError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status, self.detail = status, detail


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def conflict(reason: str) -> ApiError:
    return ApiError(409, reason)


def field_error(location: list[str | int], message: str) -> ApiError:
    """A 422 shaped like FastAPI's own validation errors, so clients parse one format."""
    return ApiError(422, [{"loc": location, "msg": message, "type": "value_error"}])


# Every 503 says when to come back: an outage (PostgreSQL or Temporal unreachable) is not the
# client's fault, and a retry with the same Idempotency-Key is safe.
RETRY_AFTER_SECONDS = 5
RETRY_AFTER = {"Retry-After": str(RETRY_AFTER_SECONDS)}

# What PostgreSQL being down, restarting or out of connections looks like to asyncpg. OSError
# covers a refused or missing socket and a connect timeout (TimeoutError is an OSError).
_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError, ConnectionFailureError, ...
    asyncpg.exceptions.OperatorInterventionError,  # AdminShutdownError, CannotConnectNowError, ...
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InterfaceError,  # "connection is closed", "pool is closing"
    # A connection the server dropped mid-operation, met again when the pool resets it on release
    # ("cannot switch to state 15; another operation (2) is in progress"): seen while PostgreSQL stops.
    asyncpg.exceptions.InternalClientError,
    OSError,
)
DATABASE_UNAVAILABLE = "the database is unavailable right now; nothing was changed, retry after Retry-After"


def is_outage(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is a dependency being unreachable, not a bug."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, _OUTAGES):
            return True
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo += [current.__cause__, current.__context__]
    return False


# "Stale": an If-Match version the record has moved on from (optimistic concurrency): 412.
_STATUS_BY_KIND = {"Refused": 409, "NotFound": 404, "Invalid": 422, "Stale": 412, "Forbidden": 403}


def from_update_failure(error: WorkflowUpdateFailedError) -> ApiError:
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type in _STATUS_BY_KIND:
        status = _STATUS_BY_KIND[cause.type]
        detail: Any = cause.message if status != 422 else [{"loc": ["body"], "msg": cause.message, "type": "value_error"}]
        return ApiError(status, detail)
    log.error("update failed: %r (cause %r)", error, cause)
    return ApiError(503, "the action could not be recorded right now; nothing was changed, try again")


def is_closed_workflow(error: RPCError) -> bool:
    return error.status == RPCStatusCode.NOT_FOUND or "already completed" in str(error).lower()


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status,
                        headers=RETRY_AFTER if exc.status == 503 else None)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """PostgreSQL unreachable while a route ran: 503 with Retry-After, never a 500."""
    if not is_outage(exc):
        raise exc
    log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    return JSONResponse({"detail": DATABASE_UNAVAILABLE}, status_code=503, headers=RETRY_AFTER)


async def _store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
    """The document store unreachable (or refusing): 503 with Retry-After; nothing was recorded."""
    log.warning("document store unavailable: %s", exc)
    return JSONResponse({"detail": "the document store is unavailable right now; nothing was changed, retry "
                                   "after Retry-After"}, status_code=503, headers=RETRY_AFTER)


class OutageGuard:
    """Inside Starlette's ServerErrorMiddleware, outside every middleware of ours: an outage met in a
    middleware (the token lookup, the Idempotency-Key claim, the attempt audit) is answered 503 with
    Retry-After, like one met in a route, and the connection stays usable. Anything else goes on to
    the plain 500; an outage after the answer started can only end the connection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as error:
            if started or not is_outage(error):
                raise
            log.warning("database unavailable: %s: %s", type(error).__name__, error)
            response = JSONResponse({"detail": DATABASE_UNAVAILABLE}, status_code=503, headers=RETRY_AFTER)
            await response(scope, receive, send)


def guard_outages(app: FastAPI) -> None:
    build = app.build_middleware_stack

    def build_with_guard() -> Any:
        stack = build()
        if isinstance(stack, ServerErrorMiddleware):
            stack.app = OutageGuard(stack.app)
            return stack
        return OutageGuard(stack)

    app.build_middleware_stack = build_with_guard  # type: ignore[method-assign]


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Never echo the raw input back: it may be huge or hold NUL bytes.
    errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _model_error(request: Request, exc: ValidationError) -> JSONResponse:
    """A domain command refused the input the API passed on: still the client's input, so 422."""
    errors = [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _rpc_error(request: Request, exc: RPCError) -> JSONResponse:
    if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED:  # e.g. over 10 Updates in flight on one workflow
        return JSONResponse({"detail": "too many actions in progress on this record; nothing was changed, retry"},
                            status_code=429, headers={"Retry-After": "1"})
    log.error("Temporal call failed: %s (%s)", exc, exc.status)
    return JSONResponse({"detail": "the workflow service is unavailable; nothing was changed, try again"},
                        status_code=503, headers=RETRY_AFTER)


async def _domain_error(request: Request, exc: DomainError) -> JSONResponse:
    """A rule the API checked before sending anything (domain/access.py): 403, or 404 for a record
    the actor may not see, answered exactly as one that does not exist."""
    return JSONResponse({"detail": exc.reason}, status_code=_STATUS_BY_KIND.get(exc.kind, 409))


# ---------------------------------------------------------------- the error answers in /openapi.json

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {
        "title": "Detail",
        "description": "Why, as a sentence; or, for malformed input, one entry per field (`loc` names it).",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}],
    }},
}
ERROR_ANSWERS = {
    "400": "Malformed beyond its fields: an If-Match that is not an ETag, a Content-Length that is not a number, "
           "or the wrong kind of credential for the action.",
    "401": "No token or session, or a revoked, expired or unknown one; or a failed sign-in.",
    "403": "The actor's roles or department do not allow this, or a cookie-authenticated write lacks its CSRF token.",
    "404": "An unknown record, or one of a department the actor does not see.",
    "409": "The record's state forbids the action (`detail` says why), or a request with this Idempotency-Key "
           "is still in progress.",
    "412": "If-Match names a version the record has moved on from; nothing was changed.",
    "413": "The request body is larger than the limit (1 MiB by default); nothing was read.",
    "422": "Malformed input, field by field (`detail[].loc`), a bad Idempotency-Key, or JSON nested too deep.",
    "429": "Too many actions in flight on one record, or too many failed sign-ins; nothing was changed, retry "
           "after Retry-After.",
    "503": "Temporal or PostgreSQL unreachable, or the database refused the record; nothing was changed, retry "
           "after Retry-After (seconds).",
}
_BODY_METHODS = {"post", "put", "patch", "delete"}


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[str]:
    """The error statuses an operation of /api/v1 can answer with (see ERROR_ANSWERS)."""
    if not path.startswith("/api/v1/"):
        return set()
    statuses = {"503"}
    if operation.get("security") or method != "get":  # all but the public calendar feed authenticate
        statuses |= {"401", "403"}
    parameters = {(p.get("in"), p.get("name", "").lower()) for p in operation.get("parameters", [])}
    if any(where == "path" for where, _ in parameters):
        statuses.add("404")
    if method in _BODY_METHODS:
        statuses |= {"400", "409", "413", "422", "429"}
    if ("header", "if-match") in parameters:
        statuses.add("412")
    return statuses


def document_error_answers(app: FastAPI) -> None:
    """List in /openapi.json the error answers each operation can give, with their body: `{"detail": …}`.

    FastAPI documents only the success answer and the 422 of its own validation; the rest
    come from exception handlers and middlewares it cannot see.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        document = build()
        if first:
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.setdefault("Error", ERROR_SCHEMA)
            for path, item in document.get("paths", {}).items():
                for method, operation in item.items():
                    answers = operation.setdefault("responses", {})
                    for status in sorted(error_statuses(method, path, operation)):
                        answers.setdefault(status, {
                            "description": ERROR_ANSWERS[status],
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                        })
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    document_error_answers(app)
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(DomainError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(ValidationError, _model_error)  # type: ignore[arg-type]
    app.add_exception_handler(RPCError, _rpc_error)  # type: ignore[arg-type]
    for outage in _OUTAGES:
        app.add_exception_handler(outage, _database_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(StoreUnavailable, _store_unavailable)  # type: ignore[arg-type]
    guard_outages(app)
