"""Operators' view: the Temporal CLI sees our workflows on the dev server.

`temporal workflow list` goes through visibility (which can lag), `temporal
workflow show` through the history service; the JSON history the CLI prints
replays against the workflow code, the way an operator would check a production
history for nondeterminism.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from tests.test_workflow_lifecycle import eventually, meeting, open_cooperation
from workflows.cooperation import CooperationWorkflow
from workflows.project import ProjectWorkflow

TEMPORAL = Path(sys.executable).parent / "temporal"


async def temporal_cli(dev_env: WorkflowEnvironment, *args: str) -> Any:
    """Run the Temporal CLI against the dev server with JSON output and return the parsed output."""
    address = dev_env.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        str(TEMPORAL), *args, "--address", address, "--namespace", "default", "--output", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()
    return json.loads(out) if out.strip() else None


async def test_cli_lists_and_shows_cooperation_workflow(
    client: Client, pool: asyncpg.Pool, dev_env: WorkflowEnvironment
) -> None:
    coop, _ = await open_cooperation(client, pool)
    await coop.act(meeting())
    run_id = (await coop.handle().describe()).run_id

    async def listed() -> list[dict[str, Any]] | None:
        return await temporal_cli(dev_env, "workflow", "list", "--query", f"WorkflowId='{coop.workflow_id}'")

    (execution,) = await eventually(listed, timeout=20, interval=0.5)
    assert execution["execution"] == {"workflowId": coop.workflow_id, "runId": run_id}
    assert execution["type"]["name"] == "CooperationWorkflow"
    assert execution["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"
    assert execution["taskQueue"] == "accord-test"

    history = await temporal_cli(dev_env, "workflow", "show", "--workflow-id", coop.workflow_id)
    events = history["events"]
    started = events[0]
    assert started["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"
    assert started["workflowExecutionStartedEventAttributes"]["workflowType"]["name"] == "CooperationWorkflow"
    updates = [e["workflowExecutionUpdateAcceptedEventAttributes"]["acceptedRequest"]["input"]["name"]
               for e in events if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED"]
    assert updates == ["opened", "act"]
    # Each event's read-model write is one activity, scheduled once the task is in history (the
    # creation's and the meeting's); the one marker is the `write-after-accept` patch.
    written = [e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
               for e in events if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"]
    assert written == ["record_cooperation_event", "record_cooperation_event"]
    markers = [e for e in events if e["eventType"] == "EVENT_TYPE_MARKER_RECORDED"]
    assert len(markers) == 1

    # The CLI's JSON history replays against the current workflow code.
    replayer = Replayer(workflows=[CooperationWorkflow, ProjectWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(WorkflowHistory.from_json(coop.workflow_id, history))
    assert result.replay_failure is None
