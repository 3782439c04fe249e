"""The write path: sending staff actions to the workflows as Temporal Updates.

The API, the tests and scripts all write through these functions, so there is
exactly one way an action reaches the lifecycle.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from domain.audit import ActionContext, Actor
from domain.cooperation import CooperationCommand, CooperationState, CreateCooperation
from domain.project import ProjectCommand, ProjectState
from domain.records import (
    CooperationAction,
    CooperationInput,
    ProjectAction,
    cooperation_workflow_id,
    project_workflow_id,
)
from workflows.cooperation import CooperationWorkflow
from workflows.project import ProjectWorkflow


async def create_cooperation(
    client: Client,
    task_queue: str,
    cooperation_id: str,
    create: CreateCooperation,
    actor: Actor,
    request_id: str,
    continue_as_new_after: int | None = None,
) -> CooperationState:
    """Start the workflow and wait until its creation is in the read model: one round trip.

    The workflow id is derived from the cooperation id and an existing run is reused,
    so a retried creation answers with the record that exists instead of a second one.
    """
    start = WithStartWorkflowOperation(
        CooperationWorkflow.run,
        CooperationInput(
            cooperation_id=cooperation_id,
            create=create,
            creator=ActionContext(actor=actor, request_id=request_id, now=datetime.now(timezone.utc)),
            continue_as_new_after=continue_as_new_after,
        ),
        id=cooperation_workflow_id(cooperation_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return await client.execute_update_with_start_workflow(
        CooperationWorkflow.opened, start_workflow_operation=start, id=f"open:{request_id}"
    )


async def act_on_cooperation(
    client: Client, cooperation_id: str, actor: Actor, command: CooperationCommand, request_id: str,
    expected_seq: int | None = None,
) -> CooperationState:
    """`expected_seq`: the version the actor saw (If-Match); the workflow refuses the action if it moved on."""
    handle = client.get_workflow_handle_for(CooperationWorkflow.run, cooperation_workflow_id(cooperation_id))
    action = CooperationAction(request_id=request_id, actor=actor, command=command, expected_seq=expected_seq)
    return await handle.execute_update(CooperationWorkflow.act, action, id=attempt_id(request_id))


async def act_on_project(
    client: Client, project_id: str, actor: Actor, command: ProjectCommand, request_id: str,
    expected_seq: int | None = None,
) -> ProjectState:
    handle = client.get_workflow_handle_for(ProjectWorkflow.run, project_workflow_id(project_id))
    action = ProjectAction(request_id=request_id, actor=actor, command=command, expected_seq=expected_seq)
    return await handle.execute_update(ProjectWorkflow.act, action, id=attempt_id(request_id))


def attempt_id(request_id: str) -> str:
    """The Update id of one attempt at an action: its request id plus a fresh suffix.

    Applying an action once is the workflow's job: it remembers the request ids it applied
    (`RequestMemory`, across continue-as-new) and answers a resend with the state. Temporal
    would also dedupe an Update id, but it keeps a *failed* Update's outcome for the run: a
    write that timed out while PostgreSQL was down would then answer every retry with the same
    failure (the fault suite's outage showed it). Each attempt is therefore an Update of its own."""
    return f"{request_id}#{uuid.uuid4().hex[:12]}"
