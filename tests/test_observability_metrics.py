"""Prometheus metrics (observability/metrics.py): the API's /metrics, the worker's /metrics and
/healthz, and the Temporal SDK's own endpoint.

Real parts only. The session worker runs in this process, so the API's /metrics also shows
what it does (audit writes of the read model, notices), as under `accord dev`.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from db.users import create_user
from domain.audit import OFFICE_TZ
from observability.metrics import MetricsServer
from runtime.cli import worker_health
from runtime.temporal import connect, sdk_runtime
from tests.conftest import ApiUser, new_id
from tests.test_api_support import eventually, framework_body, in_delivery, ok, open_cooperation

Samples = dict[tuple[str, frozenset], float]


def parse(text: str) -> Samples:
    """Every sample by (name, labels); the parser refuses anything not in the text format."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(app) -> Samples:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord.test") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


AGREEMENTS = "/api/v1/cooperations/{cooperation_id}/agreements"


async def test_api_metrics_move_with_a_real_action(app, api: ApiUser) -> None:
    coop = await open_cooperation(api.http)
    before = await scrape(app)
    await coop.draft(framework_body(coop.w))
    refused = await api.http.post(f"{coop.path}/agreements/{new_id('no-such-agreement-')}/submit")
    assert refused.status_code in (404, 409)
    after = await scrape(app)

    # The request histogram, by method, route template and status.
    labels = {"method": "POST", "route": AGREEMENTS, "status": "200"}
    assert value(after, "accord_http_request_duration_seconds_count", **labels) == \
        value(before, "accord_http_request_duration_seconds_count", **labels) + 1
    assert value(after, "accord_http_request_duration_seconds_sum", **labels) > \
        value(before, "accord_http_request_duration_seconds_sum", **labels)
    assert value(after, "accord_http_request_duration_seconds_bucket", le="+Inf", **labels) == \
        value(after, "accord_http_request_duration_seconds_count", **labels)
    # Actions by kind and outcome.
    for kind, outcome in (("draft_agreement", "accepted"), ("submit_agreement", "refused")):
        assert value(after, "accord_actions_total", kind=kind, outcome=outcome) == \
            value(before, "accord_actions_total", kind=kind, outcome=outcome) + 1
    # The draft's audit event (written by the read-model activity) and the refusal's (by the API).
    assert value(after, "accord_audit_write_seconds_count") >= value(before, "accord_audit_write_seconds_count") + 2
    assert value(after, "accord_audit_write_seconds_sum") > value(before, "accord_audit_write_seconds_sum")


async def test_a_created_cooperation_is_counted(app, api: ApiUser) -> None:
    before = await scrape(app)
    await open_cooperation(api.http)
    after = await scrape(app)
    assert value(after, "accord_actions_total", kind="create_cooperation", outcome="accepted") == \
        value(before, "accord_actions_total", kind="create_cooperation", outcome="accepted") + 1
    labels = {"method": "POST", "route": "/api/v1/cooperations", "status": "201"}
    assert value(after, "accord_http_request_duration_seconds_count", **labels) == \
        value(before, "accord_http_request_duration_seconds_count", **labels) + 1


async def test_notices_sent_and_failed_are_counted_by_channel(app, api: ApiUser, pool: asyncpg.Pool) -> None:
    """Due today: reminded at once. An officer who is a user gets it in the inbox; a name nobody
    has makes the delivery fail (channel `none`), which the officer's inbox would be told."""
    async with pool.acquire() as conn:
        officer = await create_user(conn, new_id("user-"), f"Officer Metrics {new_id()}", "liaison_officer")
    coop = await in_delivery(api.http)
    today = datetime.now(OFFICE_TZ).date().isoformat()
    before = await scrape(app)
    delivered = await coop.add_project(responsible_officer=officer.display_name,
                                       milestones=[{"name": "Due today", "due_date": today}])
    orphan = await coop.add_project(responsible_officer=f"Nobody {new_id()}",
                                    milestones=[{"name": "Due today", "due_date": today}])

    async def settled() -> bool:
        statuses = {r["project_id"]: r["status"] for r in await pool.fetch(
            "SELECT project_id, status FROM notice_deliveries WHERE project_id = ANY($1)", [delivered, orphan])}
        return statuses.get(delivered) == "sent" and statuses.get(orphan) == "failed"

    await eventually(settled, timeout=30)
    after = await scrape(app)
    assert value(after, "accord_notices_sent_total", channel="inbox") >= \
        value(before, "accord_notices_sent_total", channel="inbox") + 1
    assert value(after, "accord_notices_failed_total", channel="none") >= \
        value(before, "accord_notices_failed_total", channel="none") + 1


async def test_the_worker_metrics_server_answers_metrics_and_healthz() -> None:
    """The server `accord worker` starts, on a free port."""
    running = asyncio.get_running_loop().create_future()
    async with MetricsServer(0, host="127.0.0.1", health=lambda: worker_health(running)) as server:
        assert server.port > 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200
            names = {family.name for family in text_string_to_metric_families(metrics.text)}
            assert {"accord_actions", "accord_notices_sent", "accord_notices_failed", "accord_audit_write_seconds",
                    "accord_http_request_duration_seconds"} <= names
            healthy = await http.get("/healthz")
            assert (healthy.status_code, healthy.json()["status"]) == (200, "ok")
            running.set_exception(RuntimeError("lost the connection"))  # the worker stopped on an error
            sick = await http.get("/healthz")
            assert sick.status_code == 503
            assert "lost the connection" in sick.json()["detail"]
            assert (await http.get("/nothing")).status_code == 404
            assert (await http.post("/metrics")).status_code == 405
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0  # stopped


async def test_a_port_in_use_fails_at_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = MetricsServer(taken.getsockname()[1], host="127.0.0.1")
        try:
            await server.start()
        except OSError as error:
            assert "ACCORD_WORKER_METRICS_PORT" in str(error)
        else:
            await server.stop()
            raise AssertionError("started on a port in use")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_the_temporal_sdk_serves_its_own_metrics(dev_env: WorkflowEnvironment) -> None:
    port = free_port()
    client = await connect(dev_env.client.service_client.config.target_host, dev_env.client.namespace,
                           runtime=sdk_runtime(port, "127.0.0.1"))
    await client.count_workflows()

    async def scraped() -> Samples | None:
        async with httpx.AsyncClient() as http:
            try:
                response = await http.get(f"http://127.0.0.1:{port}/metrics")
            except httpx.TransportError:
                return None
        samples = parse(response.text)
        return samples if any(name.startswith("temporal_request") for name, _ in samples) else None

    samples = await eventually(scraped, timeout=15)
    assert any(name == "temporal_request_total" for name, _ in samples)


async def test_readiness_and_metrics_routes_are_not_actions(app) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord.test") as http:
        assert ok(await http.get("/readyz"))["status"] == "ready"
    samples = await scrape(app)
    assert value(samples, "accord_http_request_duration_seconds_count", method="GET", route="/readyz",
                 status="200") >= 1
