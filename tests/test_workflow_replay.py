"""Replay recorded histories against the current workflow code.

Every file under tests/histories (written by `python -m tests.record_histories`)
is replayed with the workflows the worker registers. A change that makes the code
issue different commands for the same history (nondeterminism) fails here before
it can break the workflows running in production. The file name is the workflow
id, optionally followed by `@label`.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from domain.cooperation import CooperationState
from domain.records import CooperationInput
from workflows.cooperation import CooperationWorkflow
from workflows.project import ProjectWorkflow

HISTORIES = Path(__file__).parent / "histories"
FILES = sorted(HISTORIES.glob("*/*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem.split("@")[0], path.read_text(encoding="utf-8"))


def workflow_type(path: Path) -> str:
    started = json.loads(path.read_text(encoding="utf-8"))["events"][0]
    return started["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]


def last_event(path: Path) -> str:
    return json.loads(path.read_text(encoding="utf-8"))["events"][-1]["eventType"]


def test_recorded_histories_cover_both_workflows() -> None:
    types = [workflow_type(path) for path in FILES]
    assert types.count("CooperationWorkflow") >= 1 and types.count("ProjectWorkflow") >= 1, FILES
    endings = {last_event(path) for path in FILES}
    # Completed runs and a continue-as-new run are among them.
    assert {"EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED", "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"} <= endings


@pytest.mark.parametrize("path", FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=[CooperationWorkflow, ProjectWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(load(path))  # raises on nondeterminism
    assert result.replay_failure is None


@workflow.defn(name="CooperationWorkflow")
class TimerFirstCooperationWorkflow(CooperationWorkflow):
    """A deliberately incompatible change: a timer before anything else."""

    @workflow.run
    async def run(self, input: CooperationInput) -> CooperationState:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(input)


async def test_replay_detects_an_incompatible_change() -> None:
    """Guard of the guard: the replayer does fail when the code no longer matches a history."""
    path = HISTORIES / "v1-initial" / "cooperation-rec-completed.json"
    replayer = Replayer(workflows=[TimerFirstCooperationWorkflow, ProjectWorkflow],
                        data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError), result.replay_failure
