"""Structured logs (observability/logs.py, api/request_log.py): JSON lines that carry their context.

Real parts: the app, PostgreSQL, the dev server and the session worker; a tiny workflow of
this module's own on its own task queue for a line written by `workflow.logger`.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import asyncpg
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from db.users import create_user
from domain.audit import OFFICE_TZ
from observability.logs import JsonFormatter, configure_logging
from runtime.settings import Settings
from tests.conftest import ApiUser, new_id
from tests.test_api_support import eventually, in_delivery, ok


@contextmanager
def json_lines(logger_name: str, level: int = logging.INFO) -> Iterator[list[dict[str, Any]]]:
    """Every record of `logger_name` (and below) as the JSON line the formatter writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(logger_name)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


async def test_one_json_line_per_request_with_its_context(api: ApiUser, pool: asyncpg.Pool) -> None:
    with json_lines("accord.request") as lines:
        created = ok(await api.http.post("/organizations", json={"name": f"Log Test Org {new_id()}",
                                                                 "kind": "company"}), 201)
        ok(await api.http.get(f"/organizations/{created['id']}"))
    post, get = lines
    assert set(post) >= {"time", "level", "logger", "message", "request_id", "actor", "method", "route", "path",
                         "status", "duration_ms"}
    assert (post["logger"], post["level"]) == ("accord.request", "INFO")
    assert (post["method"], post["route"], post["path"], post["status"]) == (
        "POST", "/api/v1/organizations", "/api/v1/organizations", 201)
    assert post["actor"] == api.user_id
    assert isinstance(post["duration_ms"], float) and post["duration_ms"] > 0
    assert post["message"].startswith("POST /api/v1/organizations 201 ")
    # The request id is the one the audit event of the same request carries.
    recorded = await pool.fetchval("SELECT request_id FROM audit_events WHERE action = 'organization.created' "
                                   "AND entity_id = $1", created["id"])
    assert post["request_id"] == recorded
    assert (get["route"], get["status"], get["actor"]) == ("/api/v1/organizations/{organization_id}", 200,
                                                           api.user_id)
    assert get["request_id"] and get["request_id"] != post["request_id"]


async def test_unauthenticated_and_unknown_requests_are_logged_without_an_actor(app) -> None:
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord.test") as http:
        with json_lines("accord.request", logging.DEBUG) as lines:
            assert (await http.get("/api/v1/me")).status_code == 401
            assert (await http.get(f"/api/v1/no-such-thing/{new_id()}")).status_code == 404
            assert (await http.get("/healthz")).status_code == 200
    refused, unknown, probe = lines
    assert (refused["actor"], refused["status"], refused["route"]) == ("anonymous", 401, "/api/v1/me")
    assert (unknown["status"], unknown["route"]) == (404, "unmatched")  # never the raw path as a route
    assert (probe["level"], probe["route"]) == ("DEBUG", "/healthz")  # probes only at DEBUG


def today() -> date:
    return datetime.now(OFFICE_TZ).date()


async def test_an_activity_log_line_carries_the_workflow_id_and_run_id(api: ApiUser, pool: asyncpg.Pool,
                                                                       client: Client) -> None:
    """A milestone due today is reminded at once (session calendar): the delivery activity logs it."""
    async with pool.acquire() as conn:
        officer = await create_user(conn, new_id("user-"), f"Officer Log {new_id()}", "liaison_officer")
    coop = await in_delivery(api.http)
    with json_lines("temporalio.activity") as lines:
        project_id = await coop.add_project(responsible_officer=officer.display_name,
                                            milestones=[{"name": "Due today", "due_date": today().isoformat()}])
        # Lines are parsed when the block ends: wait on the delivery row instead.
        await eventually(lambda: pool.fetchval(
            "SELECT count(*) FROM notice_deliveries WHERE project_id = $1 AND status = 'sent'", project_id),
            timeout=30)
    (line,) = [line for line in lines if project_id in line["message"] and "sent" in line["message"]]
    assert line["workflow_id"] == f"project-{project_id}"
    assert (line["workflow_type"], line["activity_type"]) == ("ProjectWorkflow", "deliver_notice")
    description = await client.get_workflow_handle(f"project-{project_id}").describe()
    assert line["run_id"] == description.run_id
    assert line["task_queue"] and line["attempt"] >= 1


@workflow.defn(sandboxed=False)
class LoggingWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        workflow.logger.info("workflow says %s", text)
        return text


async def test_a_workflow_log_line_carries_the_workflow_id_and_run_id(dev_env: WorkflowEnvironment) -> None:
    queue, workflow_id = new_id("accord-logs-"), new_id("logging-")
    with json_lines("temporalio.workflow") as lines:
        async with Worker(dev_env.client, task_queue=queue, workflows=[LoggingWorkflow],
                          workflow_runner=UnsandboxedWorkflowRunner()):
            handle = await dev_env.client.start_workflow(LoggingWorkflow.run, "hello", id=workflow_id,
                                                         task_queue=queue)
            assert await handle.result() == "hello"
    (line,) = [line for line in lines if line["message"].startswith("workflow says hello")]
    assert (line["workflow_id"], line["run_id"]) == (workflow_id, handle.result_run_id)
    assert (line["workflow_type"], line["task_queue"], line["level"]) == ("LoggingWorkflow", queue, "INFO")


def test_configure_logging_sends_everything_through_one_json_handler() -> None:
    from temporalio import activity

    root = logging.getLogger()
    saved = (list(root.handlers), root.level, workflow.logger.workflow_info_on_message,
             activity.logger.activity_info_on_message, logging.getLogger("uvicorn.access").disabled)
    try:
        configure_logging(Settings(_env_file=None, log_format="json", log_level="debug"))
        (handler,) = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert root.level == logging.DEBUG
        assert logging.getLogger("uvicorn.access").disabled  # api/request_log.py writes the request lines
        assert not workflow.logger.workflow_info_on_message  # the ids are fields, not appended to the text
        stream = io.StringIO()
        handler.setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("accord.test").warning("disk %s full", "/data", extra={"request_id": "r-1"})
        line = json.loads(stream.getvalue())
        assert (line["message"], line["level"], line["request_id"]) == ("disk /data full", "WARNING", "r-1")
        configure_logging(Settings(_env_file=None, log_format="text"))
        (handler,) = root.handlers
        assert not isinstance(handler.formatter, JsonFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        workflow.logger.workflow_info_on_message = saved[2]
        activity.logger.activity_info_on_message = saved[3]
        logging.getLogger("uvicorn.access").disabled = saved[4]


def test_exceptions_and_odd_values_still_make_one_json_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("accord.test.odd")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed for 李伟", extra={"when": date(2024, 1, 1), "ids": ("a", 1)})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    (raw,) = stream.getvalue().splitlines()
    line = json.loads(raw)
    assert line["message"] == "failed for 李伟"
    assert (line["when"], line["ids"]) == ("2024-01-01", ["a", 1])
    assert "ValueError: boom" in line["exception"]
