"""One log line per request, the request-latency histogram, and the request's trace span.

Pure ASGI, wrapped around the whole built stack (outside the security headers and
Starlette's own 500 answer), so it sees every answer with its final status. The line
(logger `accord.request`) carries the request id (the one audit events carry), the actor
(user id, `anonymous` before authentication), the method, the route template, the path,
the status and the duration in milliseconds. Probes and scrapes (/healthz, /readyz,
/metrics) are logged at DEBUG, answers of 500 and above at WARNING, the rest at INFO.

While tracing is on (observability/tracing.py) each request is a SERVER span, continuing a
W3C `traceparent` sent by the caller; the Temporal client's spans for the Update it sends
are its children.
"""

from __future__ import annotations

import logging
import weakref
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability import tracing
from observability.metrics import HTTP_REQUEST_SECONDS

log = logging.getLogger("accord.request")
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def route_of(scope: Scope) -> str:
    """The route template with its router's prefix (`/api/v1/cooperations/{cooperation_id}`),
    bounded for metric labels: never the raw path of an unknown URL."""
    route = scope.get("route")
    if route is not None:
        return _full_paths(scope.get("app")).get(id(route)) or getattr(route, "path", None) or "unmatched"
    if scope.get("path", "").startswith("/static/"):
        return "/static"
    return "unmatched"


_PATHS: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()


def _full_paths(app: Any) -> dict[int, str]:
    """Route object -> its path as served. FastAPI keeps an included router's routes with their own
    path (`scope["route"].path` lacks the prefix); its route contexts know the full one."""
    if app is None:
        return {}
    paths = _PATHS.get(app)
    if paths is None:
        paths = {}
        try:
            from fastapi.routing import iter_route_contexts
        except ImportError:  # a FastAPI whose routes carry their full path
            pass
        else:
            for context in iter_route_contexts(app.routes):
                if context.path:
                    paths.setdefault(id(context.original_route), context.path)
        _PATHS[app] = paths
    return paths


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        tracer = tracing.tracer()
        if tracer is None:
            try:
                await self.app(scope, receive, watch)
            finally:
                self._record(scope, status, perf_counter() - start, None)
            return

        from opentelemetry import propagate, trace

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with tracer.start_as_current_span(
            f"{scope['method']} {scope['path']}", context=propagate.extract(carrier), kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        ) as span:
            try:
                await self.app(scope, receive, watch)
            finally:
                route = route_of(scope)
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(trace.Status(trace.StatusCode.ERROR))
                self._record(scope, status, perf_counter() - start, format(span.get_span_context().trace_id, "032x"))

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float, trace_id: str | None) -> None:
        route = route_of(scope)
        HTTP_REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(seconds)
        level = logging.DEBUG if scope["path"] in QUIET_PATHS else logging.WARNING if status >= 500 else logging.INFO
        if not log.isEnabledFor(level):
            return
        state = scope.get("state") or {}
        actor = state.get("actor")
        fields: dict[str, Any] = {
            "request_id": state.get("request_id"),
            "actor": getattr(actor, "user_id", None) or "anonymous",
            "method": scope["method"], "route": route, "path": scope["path"], "status": status,
            "duration_ms": round(seconds * 1000, 1),
        }
        if trace_id is not None:
            fields["trace_id"] = trace_id
        log.log(level, "%s %s %s %.1fms", scope["method"], scope["path"], status, seconds * 1000, extra=fields)


def install(app: Any) -> None:
    """Wrap the app's whole built middleware stack (call after api.hardening.add_security_headers)."""
    build = app.build_middleware_stack

    def build_with_request_log() -> ASGIApp:
        return RequestLogMiddleware(build())

    app.build_middleware_stack = build_with_request_log
