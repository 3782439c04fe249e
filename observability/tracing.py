"""Optional OpenTelemetry tracing, API → workflow → activity. Off unless ACCORD_OTEL_ENDPOINT is set.

When on, one staff action is one trace: the API's span for the HTTP request
(api/request_log.py), the Temporal client's span for the Update, and, through Temporal's
`TracingInterceptor` on the worker, the workflow's Update handler, the activity that writes
the read model and any child workflow it starts. Spans go to an OTLP/HTTP collector
(`{endpoint}/v1/traces`).

Temporal's interceptor puts what a workflow does in the trace of the request that *started*
the workflow, and an Update only links to its caller's trace; a cooperation lives for years,
so `ActionTracingInterceptor` (a subclass) handles each Update in its caller's trace instead.
Workflow spans are made by the interceptor outside the sandbox, not on replay, and ended at
once: workflow code stays deterministic.

The interceptor is added to the Temporal client by `runtime.temporal.connect`, and to a
worker whose client has none by `runtime.temporal.build_worker`.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

import opentelemetry.context
from opentelemetry import trace
from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor

# Attach/detach that tolerates a workflow evicted mid-handler (temporalio is pinned in pyproject.toml).
from temporalio.contrib.opentelemetry._context import attached_context
from temporalio.worker import HandleUpdateInput, WorkflowInboundInterceptor, WorkflowInterceptorClassInput

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Client

    from runtime.settings import Settings

TRACER_NAME = "accord"
_provider: TracerProvider | None = None


def configure_tracing(settings: Settings) -> bool:
    """Export spans to `settings.otel_endpoint` over OTLP/HTTP; False (and nothing set up) without one."""
    if not settings.otel_endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = settings.otel_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    provider = TracerProvider(resource=Resource.create({
        "service.name": settings.otel_service_name,
        "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
    }))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    enable(provider)  # not the global provider: FastAPI's own telemetry stays off (api/app.py)
    return True


def enable(provider: TracerProvider) -> None:
    """Trace with `provider` from now on (tests pass one with an in-memory exporter)."""
    global _provider
    _provider = provider


def disable() -> None:
    """Stop making spans (a provider set globally by `configure_tracing` stays set)."""
    global _provider
    if _provider is not None:
        _provider.force_flush()
    _provider = None


def tracer() -> trace.Tracer | None:
    """The tracer for the API's request spans, None while tracing is off."""
    return _provider.get_tracer(TRACER_NAME) if _provider is not None else None


class ActionTracingInterceptor(TracingInterceptor):
    """Temporal's TracingInterceptor; a workflow's Updates are traced in their callers' traces."""

    def workflow_interceptor_class(
            self, input: WorkflowInterceptorClassInput) -> type[TracingWorkflowInboundInterceptor]:
        super().workflow_interceptor_class(input)  # registers the extern function that makes the spans
        return _UpdateInCallerTrace


class _UpdateInCallerTrace(TracingWorkflowInboundInterceptor):
    """ValidateUpdate and HandleUpdate spans, and everything the handler starts (the read-model
    write, a child workflow), become children of the client's Update span. An Update sent
    without trace context is traced as Temporal's interceptor does it."""

    def _caller(self, input: HandleUpdateInput) -> opentelemetry.context.Context | None:
        header = input.headers.get(self.header_key)
        carrier = self.payload_converter.from_payloads([header])[0] if header else None
        if not carrier:
            return None
        return self._set_on_context(self.text_map_propagator.extract(carrier))

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        caller = self._caller(input)
        if caller is None:
            return super().handle_update_validator(input)
        with attached_context(caller):
            self._completed_span(f"ValidateUpdate:{input.update}", kind=trace.SpanKind.SERVER)
            WorkflowInboundInterceptor.handle_update_validator(self, input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        caller = self._caller(input)
        if caller is None:
            return await super().handle_update_handler(input)
        with attached_context(caller):
            self._completed_span(f"HandleUpdate:{input.update}", kind=trace.SpanKind.SERVER)
            return await WorkflowInboundInterceptor.handle_update_handler(self, input)


def interceptors() -> list[TracingInterceptor]:
    """Temporal's tracing interceptor while tracing is on (for Client.connect), else none."""
    current = tracer()
    return [ActionTracingInterceptor(current)] if current is not None else []


def worker_interceptors(client: Client) -> list[TracingInterceptor]:
    """The interceptor for a worker whose client does not bring one (a client's reaches its workers)."""
    if any(isinstance(i, TracingInterceptor) for i in client.config().get("interceptors", [])):
        return []
    return interceptors()
