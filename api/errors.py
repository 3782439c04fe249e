"""Every failure as a clear HTTP answer: 404, 409 with the reason, 412, 422 per field, 503, never a 500 for bad input."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

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
    return JSONResponse({"detail": exc.detail}, status_code=exc.status)


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
                        status_code=503)


async def _domain_error(request: Request, exc: DomainError) -> JSONResponse:
    """A rule the API checked before sending anything (domain/access.py): 403, or 404 for a record
    the actor may not see, answered exactly as one that does not exist."""
    return JSONResponse({"detail": exc.reason}, status_code=_STATUS_BY_KIND.get(exc.kind, 409))


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(DomainError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(ValidationError, _model_error)  # type: ignore[arg-type]
    app.add_exception_handler(RPCError, _rpc_error)  # type: ignore[arg-type]
