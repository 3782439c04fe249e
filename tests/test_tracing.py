"""OpenTelemetry tracing across API → workflow → activity (observability/tracing.py).

Real parts only: a worker and a Temporal client of this test's own (its own task queue),
both with the tracing interceptor, the real app on them, the dev server and PostgreSQL of
the session. Spans go to an in-memory exporter. Tracing is off again after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.services import Services
from observability import tracing
from runtime.temporal import build_worker, connect
from tests.conftest import API_DEPARTMENT, AUDIT_KEY, new_id, user_client
from tests.test_api_support import framework_body, open_cooperation, world


@dataclass
class Traced:
    exporter: InMemorySpanExporter
    app: object


@pytest_asyncio.fixture(loop_scope="session")
async def traced(dev_env: WorkflowEnvironment, pool: asyncpg.Pool) -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        queue = new_id("accord-traced-")
        client = await connect(dev_env.client.service_client.config.target_host, dev_env.client.namespace)
        assert [type(i).__name__ for i in client.config()["interceptors"]] == ["ActionTracingInterceptor"]
        worker = build_worker(client, pool, queue)
        assert tracing.worker_interceptors(client) == []  # the client's interceptor reaches the worker
        async with worker:
            app = create_app(Services(pool=pool, client=client, task_queue=queue, audit_key=AUDIT_KEY,
                                      public_url="http://accord.test"))
            yield Traced(exporter, app)
    finally:
        tracing.disable()
        provider.shutdown()


def by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_one_action_is_one_trace_from_the_request_to_the_activity(traced: Traced, pool) -> None:
    async with user_client(traced.app, pool, ["liaison_officer"], API_DEPARTMENT) as officer:
        w = await world(officer.http)
        coop = await open_cooperation(officer.http, w)
        traced.exporter.clear()
        await coop.draft(framework_body(w))

    spans = by_name(list(traced.exporter.get_finished_spans()))
    http = spans["POST /api/v1/cooperations/{cooperation_id}/agreements"]
    update = spans["StartWorkflowUpdate:act"]
    handled = spans["HandleUpdate:act"]
    validated = spans["ValidateUpdate:act"]
    started = spans["StartActivity:record_cooperation_event"]
    ran = spans["RunActivity:record_cooperation_event"]

    # One trace: the request is its root, everything else descends from the client's Update.
    trace_id = http.context.trace_id
    assert http.parent is None
    assert {s.context.trace_id for s in (update, handled, validated, started, ran)} == {trace_id}
    assert parent_of(update) == http.context.span_id
    assert parent_of(handled) == update.context.span_id
    assert parent_of(validated) == update.context.span_id
    assert parent_of(started) == update.context.span_id
    assert parent_of(ran) == started.context.span_id

    assert http.kind == SpanKind.SERVER
    assert http.attributes["http.route"] == "/api/v1/cooperations/{cooperation_id}/agreements"
    assert http.attributes["http.response.status_code"] == 200
    workflow_id = f"cooperation-{coop.id}"
    assert handled.attributes["temporalWorkflowID"] == workflow_id
    assert ran.attributes["temporalWorkflowID"] == workflow_id
    assert ran.attributes["temporalRunID"] == handled.attributes["temporalRunID"]


async def test_creating_a_cooperation_traces_the_workflow_start_in_the_same_trace(traced: Traced, pool) -> None:
    async with user_client(traced.app, pool, ["liaison_officer"], API_DEPARTMENT) as officer:
        w = await world(officer.http)
        traced.exporter.clear()
        await open_cooperation(officer.http, w)

    spans = by_name(list(traced.exporter.get_finished_spans()))
    http = spans["POST /api/v1/cooperations"]
    names = {"StartUpdateWithStartWorkflow:CooperationWorkflow", "RunWorkflow:CooperationWorkflow",
             "HandleUpdate:opened", "StartActivity:record_cooperation_event", "RunActivity:record_cooperation_event"}
    assert names <= set(spans)
    assert {spans[name].context.trace_id for name in names} == {http.context.trace_id}


async def test_a_caller_traceparent_is_continued(traced: Traced, pool) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with user_client(traced.app, pool, ["liaison_officer"], API_DEPARTMENT) as officer:
        traced.exporter.clear()
        response = await officer.http.get("/me", headers={"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"})
    assert response.status_code == 200
    (span,) = [s for s in traced.exporter.get_finished_spans() if s.name == "GET /api/v1/me"]
    assert format(span.context.trace_id, "032x") == caller_trace
    assert span.parent is not None and span.parent.span_id == 0x00F067AA0BA902B7


async def test_tracing_is_off_by_default() -> None:
    from runtime.settings import Settings

    assert Settings(_env_file=None).otel_endpoint is None
    assert tracing.tracer() is None
    assert tracing.interceptors() == []
